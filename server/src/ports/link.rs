//! Signed preview links and the cookie they set. Pure: the caller gives the
//! time. A link names a port, an expiry, a proxy style and a path; its
//! signature is the lowercase hex HMAC-SHA256 of those, keyed by the
//! server's [`Key`]. The cookie a link sets holds the port, the same expiry
//! and a signature of its own (another message, so a cookie's signature is
//! never a link's): it lets a browser into that port's preview, and nowhere
//! else, until the link would have expired.
//!
//! Nothing here logs or answers the key.

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use tether_protocol::ProxyStyle;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The key links and cookies are signed with: derived from the token when
/// the server has one (links then outlive a restart and die with the
/// token), random at every start otherwise.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn new(token: Option<&str>) -> Key {
        let mut key = [0u8; 32];
        match token {
            Some(token) => key.copy_from_slice(&mac(token.as_bytes(), &[b"tether preview links"])),
            None => {
                if getrandom::fill(&mut key).is_err() {
                    // No randomness: a key no one can guess still, from the time and the pid.
                    let seed =
                        format!("{}:{}:{:?}", crate::ids::now_ms(), std::process::id(), std::time::Instant::now());
                    key.copy_from_slice(&mac(seed.as_bytes(), &[b"tether preview links"]));
                }
            }
        }
        Key(key)
    }

    /// The signature of a link.
    pub fn link_sig(&self, port: u16, exp: u64, style: ProxyStyle, path: &str) -> String {
        let (port, exp) = (port.to_string(), exp.to_string());
        hex(&mac(&self.0, &[b"link", port.as_bytes(), exp.as_bytes(), style_name(style).as_bytes(), path.as_bytes()]))
    }

    /// Whether `sig` signs this link and `exp` is after `now` (unix seconds).
    pub fn check_link(
        &self,
        port: u16,
        exp: u64,
        style: ProxyStyle,
        path: &str,
        sig: &str,
        now: u64,
    ) -> Result<(), LinkFault> {
        let good = self.link_sig(port, exp, style, path);
        if !crate::token::constant_time_eq(good.as_bytes(), sig.as_bytes()) {
            return Err(LinkFault::Forged);
        }
        if exp <= now {
            return Err(LinkFault::Expired);
        }
        Ok(())
    }

    /// The value of the cookie a link for `port` sets: `<port>.<exp>.<sig>`.
    pub fn cookie_value(&self, port: u16, exp: u64) -> String {
        format!("{port}.{exp}.{}", self.cookie_sig(port, exp))
    }

    fn cookie_sig(&self, port: u16, exp: u64) -> String {
        let (port, exp) = (port.to_string(), exp.to_string());
        hex(&mac(&self.0, &[b"cookie", port.as_bytes(), exp.as_bytes()]))
    }

    /// Whether a cookie value lets a request into `port`'s preview at `now`.
    pub fn check_cookie(&self, value: &str, port: u16, now: u64) -> Result<(), LinkFault> {
        let mut parts = value.splitn(3, '.');
        let (Some(p), Some(exp), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(LinkFault::Forged);
        };
        let (Ok(p), Ok(exp)) = (p.parse::<u16>(), exp.parse::<u64>()) else { return Err(LinkFault::Forged) };
        let good = self.cookie_sig(p, exp);
        if !crate::token::constant_time_eq(good.as_bytes(), sig.as_bytes()) {
            return Err(LinkFault::Forged);
        }
        if p != port {
            return Err(LinkFault::OtherPort { signed_for: p });
        }
        if exp <= now {
            return Err(LinkFault::Expired);
        }
        Ok(())
    }
}

/// Why a link or a cookie is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// The signature is not the server's (or the link was changed, or was
    /// made for another port or by an earlier start without a token).
    Forged,
    /// A genuine cookie of another port's preview.
    OtherPort {
        signed_for: u16,
    },
    Expired,
}

/// The name of the cookie of `port`'s preview.
pub fn cookie_name(port: u16) -> String {
    format!("tether_preview_{port}")
}

/// `proxy` or `absproxy`: the path segment of a style.
pub fn style_name(style: ProxyStyle) -> &'static str {
    match style {
        ProxyStyle::Proxy => "proxy",
        ProxyStyle::Absproxy => "absproxy",
    }
}

/// HMAC-SHA256 of the parts, each followed by a NUL (no part has one), so
/// no two lists of parts sign alike.
fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut m) = HmacSha256::new_from_slice(key) else { unreachable!("HMAC accepts keys of every length") };
    for part in parts {
        m.update(part);
        m.update(&[0]);
    }
    m.finalize().into_bytes().into()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_good_until_it_expires_and_only_as_signed() {
        let key = Key::new(Some("t0ken"));
        let sig = key.link_sig(3000, 1_000, ProxyStyle::Proxy, "/index.html");
        assert_eq!(sig.len(), 64);
        assert_eq!(key.check_link(3000, 1_000, ProxyStyle::Proxy, "/index.html", &sig, 999), Ok(()));
        assert_eq!(key.check_link(3000, 1_000, ProxyStyle::Proxy, "/index.html", &sig, 1_000), Err(LinkFault::Expired));
        // Any part changed, or another key: forged.
        assert_eq!(key.check_link(3001, 1_000, ProxyStyle::Proxy, "/index.html", &sig, 0), Err(LinkFault::Forged));
        assert_eq!(key.check_link(3000, 2_000, ProxyStyle::Proxy, "/index.html", &sig, 0), Err(LinkFault::Forged));
        assert_eq!(key.check_link(3000, 1_000, ProxyStyle::Absproxy, "/index.html", &sig, 0), Err(LinkFault::Forged));
        assert_eq!(key.check_link(3000, 1_000, ProxyStyle::Proxy, "/other", &sig, 0), Err(LinkFault::Forged));
        let other = Key::new(Some("another"));
        assert_eq!(other.check_link(3000, 1_000, ProxyStyle::Proxy, "/index.html", &sig, 0), Err(LinkFault::Forged));
        // The same token gives the same key (links outlive a restart); no token, a random one.
        assert_eq!(Key::new(Some("t0ken")).link_sig(3000, 1_000, ProxyStyle::Proxy, "/index.html"), sig);
        assert_ne!(Key::new(None).0, Key::new(None).0);
    }

    #[test]
    fn a_cookie_opens_its_own_port_only_until_it_expires() {
        let key = Key::new(None);
        let value = key.cookie_value(3000, 500);
        assert_eq!(key.check_cookie(&value, 3000, 499), Ok(()));
        assert_eq!(key.check_cookie(&value, 3000, 500), Err(LinkFault::Expired));
        assert_eq!(key.check_cookie(&value, 4000, 0), Err(LinkFault::OtherPort { signed_for: 3000 }));
        let forged = value.replace("3000.", "4000.");
        assert_eq!(key.check_cookie(&forged, 4000, 0), Err(LinkFault::Forged));
        for bad in ["", "3000", "3000.500", "x.500.ab", "3000.500.", "3000.9999999999.00"] {
            assert_eq!(key.check_cookie(bad, 3000, 0), Err(LinkFault::Forged), "{bad:?}");
        }
        // A link's signature is not a cookie's.
        let link = key.link_sig(3000, 500, ProxyStyle::Proxy, "");
        assert_eq!(key.check_cookie(&format!("3000.500.{link}"), 3000, 0), Err(LinkFault::Forged));
    }
}
