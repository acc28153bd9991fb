//! The listening sockets of `/proc/net/tcp` and `/proc/net/tcp6`, parsed.
//! Pure: text in, sockets out; reading the files is the scanner's business.
//!
//! A line is `sl local_address rem_address st tx:rx tr:when retrnsmt uid
//! timeout inode ...`. Addresses are hex as the kernel prints them: the
//! IPv4 address one 32-bit word and an IPv6 address four, each word in the
//! machine's byte order; the port is hex in network order. State `0A` is
//! `LISTEN`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kernel's `TCP_LISTEN` state, as `/proc/net/tcp` prints it.
const LISTEN: &str = "0A";

/// One listening TCP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    /// The address it listens on; an IPv4-mapped IPv6 address is given as IPv4.
    pub address: IpAddr,
    pub port: u16,
    /// The socket's inode (`socket:[inode]` among a process's fds); 0 when
    /// the kernel hides it.
    pub inode: u64,
}

/// The listening sockets of one `/proc/net/tcp` or `/proc/net/tcp6` text
/// (the header line and malformed lines are skipped).
pub fn listeners(text: &str) -> Vec<Listener> {
    text.lines().filter_map(listener).collect()
}

fn listener(line: &str) -> Option<Listener> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 10 || fields[3] != LISTEN {
        return None;
    }
    let (addr, port) = fields[1].split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let address = address(addr)?;
    let inode = fields[9].parse().ok()?;
    Some(Listener { address, port, inode })
}

/// An address as the kernel prints it: 8 hex digits (IPv4) or 32 (IPv6).
fn address(hex: &str) -> Option<IpAddr> {
    let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::to_ne_bytes);
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(hex)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(hex.get(i * 8..i * 8 + 8)?)?);
            }
            let v6 = Ipv6Addr::from(bytes);
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words as a little-endian machine prints them (the tests' machines are).
    fn le(text: &str) -> String {
        if cfg!(target_endian = "little") {
            return text.to_string();
        }
        // On a big-endian machine each word is printed the other way round.
        text.split(' ')
            .map(|field| match field.split_once(':') {
                Some((addr, port)) if addr.len() % 8 == 0 && addr.chars().all(|c| c.is_ascii_hexdigit()) => {
                    let words: Vec<String> = (0..addr.len() / 8)
                        .map(|i| {
                            let w = u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).unwrap();
                            format!("{:08X}", w.swap_bytes())
                        })
                        .collect();
                    format!("{}:{port}", words.concat())
                }
                _ => field.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 999 1 0000000000000000 20 4 30 10 -1
   3: 0F02000A:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 42 1 0000000000000000 100 0 0 10 0
garbage line";

    #[test]
    fn ipv4_listeners_with_their_port_and_inode() {
        let got = listeners(&le(TCP));
        assert_eq!(
            got,
            vec![
                Listener { address: "127.0.0.1".parse().unwrap(), port: 8080, inode: 123456 },
                Listener { address: "0.0.0.0".parse().unwrap(), port: 22, inode: 777 },
                Listener { address: "10.0.2.15".parse().unwrap(), port: 3000, inode: 42 },
            ],
            "the ESTABLISHED line (01) and the garbage are skipped"
        );
    }

    #[test]
    fn ipv6_and_v4_mapped_listeners() {
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5001 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5002 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5003 1 0000000000000000 100 0 0 10 0
   3: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5004 1 0000000000000000 100 0 0 10 0
   4: 00000000000000000000000001000000:0BB8 00000000000000000000000001000000:A000 01 00000000:00000000 00:00000000 00000000  1000        0 5005 1 0000000000000000 100 0 0 10 0";
        let got = listeners(&le(tcp6));
        let addrs: Vec<(String, u16, u64)> = got.iter().map(|l| (l.address.to_string(), l.port, l.inode)).collect();
        assert_eq!(
            addrs,
            vec![
                ("::".to_string(), 5432, 5001),
                ("::1".to_string(), 3000, 5002),
                ("127.0.0.1".to_string(), 9000, 5003),
                ("2001:db8::1".to_string(), 80, 5004),
            ]
        );
    }

    #[test]
    fn malformed_fields_are_skipped() {
        for line in [
            "0: 0100007F:ZZZZ 00000000:0000 0A 0:0 0:0 0 0 0 1",
            "0: 0100007:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1",
            "0: 0100007F1F90 00000000:0000 0A 0:0 0:0 0 0 0 1",
            "0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 x",
            "0: 0100007F:1F90 00000000:0000 0A",
        ] {
            assert_eq!(listeners(line), vec![], "{line}");
        }
    }
}
