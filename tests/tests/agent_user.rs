//! `--agent-user`: tether run as root starts its agents as an unprivileged
//! user. The real Claude Code CLI, run that way, tries in a tool call what a
//! careless or hostile agent would: read tether's token file and store,
//! signal tether. Each is refused by the kernel, and the workspace stays
//! the agent's to write.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use tether_e2e::anthropic::{claude_bin, claude_env, ScriptedAnthropic};
use tether_e2e::events::*;
use tether_e2e::rig::tool_items;
use tether_e2e::*;
use tether_sdk::{CreateSession, PermissionMode};

/// The unprivileged user agents run as here (created if missing).
const AGENT_USER: &str = "tether-e2e-agent";
const TOKEN: &str = "agent-user-test-token-0123456789";

/// The uid of [`AGENT_USER`], created as a system user if this machine has none.
fn agent_uid() -> u32 {
    let id = |name: &str| -> Option<u32> {
        let out = Command::new("id").args(["-u", name]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok().filter(|_| out.status.success())
    };
    if let Some(uid) = id(AGENT_USER) {
        return uid;
    }
    let status = Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home", "--shell", "/bin/sh", AGENT_USER])
        .status()
        .expect("run useradd");
    // 9: created meanwhile by another run.
    assert!(status.success() || status.code() == Some(9), "useradd {AGENT_USER}: {status}");
    id(AGENT_USER).expect("the agent user exists")
}

/// Copies `from` to `to`, hard-linking files when both are on one file system.
fn copy_tree(from: &Path, to: &Path) {
    let linked = Command::new("cp").arg("-al").arg(from).arg(to).status().is_ok_and(|s| s.success());
    if !linked {
        let _ = std::fs::remove_dir_all(to);
        let status = Command::new("cp").arg("-a").arg(from).arg(to).status().expect("run cp");
        assert!(status.success(), "cp -a {} {}", from.display(), to.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_run_as_the_agent_user_cannot_read_the_token_or_the_store_nor_signal_tether() {
    let me = Command::new("id").arg("-u").output().expect("run id");
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        eprintln!("skipped: --agent-user needs the tests to run as root (CI does)");
        return;
    }
    let uid = agent_uid();
    let base = tempfile::Builder::new().prefix("tether-e2e-agent-user-").tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The pinned Claude Code, where the agent user can run it (the install is under root's home).
    let installed = claude_bin();
    let install_root = installed.ancestors().nth(3).expect("<root>/node_modules/.bin/claude");
    let claude_dir = base.path().join("claude");
    copy_tree(install_root, &claude_dir);
    let claude = claude_dir.join(installed.strip_prefix(install_root).unwrap());
    // The agent's own home.
    let home = base.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(uid), None).unwrap();
    // The data dir with its token file, as `tether sprite install` leaves it.
    let data = base.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let token_file = data.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();

    let model = ScriptedAnthropic::start().await;
    let mut env = claude_env(&model, &home);
    env.retain(|(k, _)| k != "TETHER_CLAUDE_PATH");
    env.push(("TETHER_CLAUDE_PATH".into(), claude.display().to_string()));
    let server = TestServer::start_with(ServerOptions {
        data_dir: Some(data.clone()),
        extra_args: vec![
            "--agent-user".into(),
            AGENT_USER.into(),
            "--token-file".into(),
            token_file.display().to_string(),
        ],
        env,
        ..Default::default()
    })
    .await;
    let client = server.client().with_token(TOKEN);

    // What tether did to its own files.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o711, "the data dir: traversable to reach a session's folder, not listable");
    assert_eq!(mode(&token_file), 0o600);
    assert_eq!(mode(&data.join("tether.db")), 0o600);
    assert_eq!(std::fs::metadata(server.workspace()).unwrap().uid(), uid, "the workspace is the agent user's");

    // What a client puts in the workspace through tether is the agent's to change too.
    client.fs_write("from-api/notes.txt", "from the API\n").await.unwrap();
    client.fs_mkdir("from-api/empty").await.unwrap();

    let create = CreateSession {
        agent: "claude".into(),
        permission_mode: PermissionMode::Bypass,
        env: [("HOME".to_string(), home.display().to_string())].into(),
        ..Default::default()
    };
    let session = client.create_session(&create).await.unwrap();
    let command = format!(
        "id -un; cat {token}; echo token=$?; head -c 16 {db}; echo store=$?; ls {data}; echo list=$?; \
         kill -0 {pid}; echo signal=$?; echo agent > agent-was-here.txt; echo wrote=$?; \
         echo more >> from-api/notes.txt; echo appended=$?; touch from-api/empty/x; echo created=$?",
        token = token_file.display(),
        db = data.join("tether.db").display(),
        data = data.display(),
        pid = server.pid,
    );
    client.send_text(&session.id, &format!("[claude:sh] {command}")).await.unwrap();
    let mut stream = client.session_events(&session.id, Some(0));
    let events = wait_for(&mut stream, TURN_TIMEOUT, |e| e.event_type() == "turn.completed").await;
    let tools = tool_items(&events);
    let output = tools
        .iter()
        .find_map(|t| t.tool.as_ref().and_then(|tool| tool.output.clone()))
        .unwrap_or_else(|| panic!("no tool output\n{}", describe(&events)));

    assert!(output.lines().next() == Some(AGENT_USER), "the agent runs as {AGENT_USER}: {output}");
    assert!(!output.contains(TOKEN), "the agent read the token: {output}");
    for refused in ["token=1", "store=1", "list=2", "signal=1"] {
        assert!(output.contains(refused), "expected {refused}: {output}");
    }
    assert!(output.contains("Permission denied"), "{output}");
    assert!(output.contains("Operation not permitted"), "the signal is refused: {output}");
    for allowed in ["wrote=0", "appended=0", "created=0"] {
        assert!(output.contains(allowed), "the workspace is writable to the agent ({allowed}): {output}");
    }
    let written = server.workspace().join("agent-was-here.txt");
    assert_eq!(std::fs::metadata(&written).unwrap().uid(), uid);
    // tether is still there and serving.
    assert_eq!(client.get_session(&session.id).await.unwrap().id, session.id);
}
