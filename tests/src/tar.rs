//! Raw ustar archives built byte by byte, so a test can send what a
//! well-behaved tar library refuses to write (`..` names, absolute names,
//! links to anywhere, devices).

/// One ustar entry: `kind` b'0' file, b'5' dir, b'2' symlink and b'1' hard
/// link (to `link`), b'3' char device, b'6' fifo.
pub fn entry(name: &str, kind: u8, data: &[u8], link: &str) -> Vec<u8> {
    entry_with_mode(name, kind, data, if kind == b'5' { 0o755 } else { 0o644 }, link)
}

/// [`entry`] with these permission bits.
pub fn entry_with_mode(name: &str, kind: u8, data: &[u8], mode: u32, link: &str) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(format!("{mode:07o}").as_bytes());
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// The entries, then the two zero blocks that end an archive.
pub fn archive(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}
