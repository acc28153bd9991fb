//! Random ids for the mock's messages, tool calls and requests: every process
//! invents its own from the OS random source, no counters shared with anyone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `N` random bytes; if the OS source fails (it should not), a time-based
/// mix that is still unique within this process.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if getrandom::fill(&mut buf).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or_default();
        let mut state = nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed);
        for chunk in buf.chunks_mut(8) {
            state = splitmix64(state);
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
    buf
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// A random UUID v4 in its usual 8-4-4-4-12 form.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// `msg_<24 hex>`, an Anthropic-style message id.
pub fn message_id() -> String {
    format!("msg_{}", hex(&random_bytes::<12>()))
}

/// `toolu_<24 hex>`, an Anthropic-style tool use id.
pub fn tool_use_id() -> String {
    format!("toolu_{}", hex(&random_bytes::<12>()))
}

/// `req_<16 hex>`, the id of a control request the mock sends to the host.
pub fn request_id() -> String {
    format!("req_{}", hex(&random_bytes::<8>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_the_v4_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        let groups: Vec<&str> = u.split('-').collect();
        assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
        assert!(groups[2].starts_with('4'));
        assert!(matches!(groups[3].chars().next(), Some('8' | '9' | 'a' | 'b')));
        assert_ne!(uuid_v4(), u);
    }

    #[test]
    fn prefixed_ids() {
        assert!(message_id().starts_with("msg_") && message_id().len() == 28);
        assert!(tool_use_id().starts_with("toolu_") && tool_use_id().len() == 30);
        assert!(request_id().starts_with("req_") && request_id().len() == 20);
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }

    #[test]
    fn fallback_mixer_spreads_bits() {
        assert_ne!(splitmix64(1), splitmix64(2));
    }
}
