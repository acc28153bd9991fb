//! The release binary (`scripts/release`): static, small, and it runs with
//! no dynamic loader: in an empty chroot, and as a whole server with an
//! empty `LD_LIBRARY_PATH`. `scripts/test` builds it and passes its path in
//! `TETHER_RELEASE_BIN`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tether_e2e::*;

/// The most the release binary may weigh: 16.2 MB with the ACP protocol's
/// types (issue 26: one adapter for every ACP agent); the cap keeps that
/// growth a decision, not a drift.
const MAX_BYTES: u64 = 17 * 1024 * 1024;

fn release_bin() -> PathBuf {
    let path = std::env::var_os("TETHER_RELEASE_BIN").unwrap_or_else(|| {
        panic!("TETHER_RELEASE_BIN is not set: run the suite with scripts/test, which builds it with scripts/release")
    });
    let path = PathBuf::from(path);
    assert!(path.is_file(), "{} does not exist", path.display());
    path
}

/// The ELF program header types of `bytes` (64-bit little endian only).
fn program_headers(bytes: &[u8]) -> Vec<u32> {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(bytes[4], 2, "not a 64-bit ELF");
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap());
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36) as usize, u16_at(0x38) as usize);
    (0..phnum).map(|i| u32::from_le_bytes(bytes[phoff + i * phentsize..][..4].try_into().unwrap())).collect()
}

/// chroot(8) (in /usr/sbin, which a test's PATH may lack).
fn chroot() -> &'static str {
    ["/usr/sbin/chroot", "/usr/bin/chroot"].into_iter().find(|p| std::path::Path::new(p).exists()).unwrap_or("chroot")
}

#[test]
fn the_release_binary_is_static_and_small() {
    let bin = release_bin();
    let bytes = std::fs::read(&bin).unwrap();
    assert!(bytes.len() as u64 <= MAX_BYTES, "{} is {} bytes, over {MAX_BYTES}", bin.display(), bytes.len());
    const PT_INTERP: u32 = 3;
    assert!(!program_headers(&bytes).contains(&PT_INTERP), "the binary names a dynamic loader (PT_INTERP)");
    let file = Command::new("file").arg("-b").arg(&bin).output().expect("run file(1)");
    let said = String::from_utf8_lossy(&file.stdout);
    // A static position-independent executable (ASLR kept) is what file(1) calls "static-pie linked".
    assert!(said.contains("statically linked") || said.contains("static-pie linked"), "file(1) says: {said}");
    assert!(!said.contains("interpreter"), "file(1) says: {said}");
    let out = Command::new(&bin).arg("--version").env_clear().output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("tether {} (commit ", env!("CARGO_PKG_VERSION"))));
}

#[tokio::test]
async fn the_release_binary_serves_from_an_empty_chroot() {
    let bin = release_bin();
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(&bin, root.path().join("tether")).unwrap();
    for d in ["data", "ws"] {
        std::fs::create_dir(root.path().join(d)).unwrap();
    }
    // Nothing else in the root: no libc, no loader, no /etc, no /proc, no /dev.
    let entries: Vec<_> = std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries.len(), 3);
    let out = Command::new(chroot()).arg(root.path()).args(["/tether", "--version"]).env_clear().output().unwrap();
    assert!(out.status.success(), "in an empty chroot: {}", String::from_utf8_lossy(&out.stderr));

    let mut child = Command::new(chroot())
        .arg(root.path())
        .args(["/tether", "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", "/data", "--workspace", "/ws"])
        .args(["--token", "chroot-token"])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(20), line).await.expect("an address line").unwrap().unwrap();
    let url = line.trim().rsplit_once(" listening on ").map(|(_, u)| u.to_string());
    let result = async {
        let url = url.ok_or_else(|| format!("no address in {line:?}"))?;
        let client = tether_sdk::Client::new(url).with_token("chroot-token");
        // The address line comes as soon as the port is bound; health says `starting` until the store is open.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let health = loop {
            match client.health().await {
                Ok(h) => break h,
                Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("starting") => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        let info = client.info().await.map_err(|e| e.to_string())?;
        let sessions = client.list_sessions(&Default::default()).await.map_err(|e| e.to_string())?;
        // The terminal client in the same root (no CA certificates there either).
        let out = Command::new(chroot())
            .arg(root.path())
            .args(["/tether", "sessions", "--url", client.base_url(), "--token", "chroot-token"])
            .env_clear()
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("no sessions") {
            return Err(format!(
                "tether sessions in the chroot: {:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok::<_, String>((health, info, sessions))
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let (health, info, sessions) = result.unwrap();
    assert_eq!(health.status, "ok");
    assert_eq!(info.data_dir, "/data");
    assert!(sessions.sessions.is_empty());
    assert!(root.path().join("data/tether.db").is_file(), "the store was created inside the chroot");
}

#[tokio::test]
async fn the_release_binary_runs_a_mock_turn_with_no_library_path() {
    let server = TestServer::start_with(ServerOptions {
        bin: Some(release_bin()),
        env: vec![("LD_LIBRARY_PATH".into(), String::new())],
        ..Default::default()
    })
    .await;
    let client = server.client();
    let session = mock_session(&client).await;
    client.send_text(&session.id, "static hello").await.unwrap();
    let turn = collect_turn(&client, &session.id, 0).await;
    assert_well_formed(&turn);
    assert!(events::final_text(&turn).contains("static hello"), "{}", events::describe_tail(&turn, 10));
}
