//! The `X-Tether-Signature` of a delivery: `t=<unix seconds>,v1=<hex>`, the
//! hex being the lowercase HMAC-SHA256 of `"<t>.<body>"` keyed with the
//! webhook's secret. Pure: the caller gives the time.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The header value for `body` sent at `t` (unix seconds).
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex(&mac(secret, t, body)))
}

/// HMAC-SHA256(secret, "<t>.<body>").
fn mac(secret: &[u8], t: u64, body: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable_key(),
    };
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

#[cold]
fn unreachable_key() -> ! {
    unreachable!("HMAC accepts keys of every length")
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[(b >> 4) as usize]));
        s.push(char::from(HEX[(b & 15) as usize]));
    }
    s
}

/// Whether `header` is a valid signature of `body` with `secret` (constant-time
/// comparison of the MAC), and its `t`. What a receiver does; used by the tests.
pub fn verify(secret: &[u8], header: &str, body: &[u8]) -> Option<u64> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let t = t?;
    let expected = hex(&mac(secret, t, body));
    crate::token::constant_time_eq(expected.as_bytes(), v1?.as_bytes()).then_some(t)
}
