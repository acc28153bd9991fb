//! schemathesis (pinned, `scripts/install-tools`) against the OpenAPI
//! document the server serves: every check, the example, coverage, fuzzing
//! and stateful phases (stateful through the document's links, so routes
//! that need an id get one), with a bounded budget. Any failure fails the
//! test with schemathesis' report. The operations it cannot fuzz sanely are
//! listed, each with its reason, in `tests/schemathesis.toml`.

use std::time::Duration;

use tether_e2e::pinned_tools::schemathesis_bin;
use tether_e2e::{ServerOptions, TestServer};

const TOKEN: &str = "schemathesis-token";
/// Cases per operation and phase: the run stays near a minute on 2 cores.
const MAX_EXAMPLES: &str = "15";
/// The whole run's deadline (schemathesis is killed past it).
const DEADLINE: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_server_and_its_openapi_document_in_agreement() {
    let schemathesis = schemathesis_bin();
    // Every outgoing request of the server (webhook deliveries to URLs the
    // fuzzer made up) goes to this proxy on the loopback, which never
    // answers: nothing leaves the machine.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", black_hole.local_addr().unwrap());
    let mut env: Vec<(String, String)> =
        ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]
            .iter()
            .map(|k| (k.to_string(), proxy.clone()))
            .collect();
    env.push(("NO_PROXY".into(), String::new()));
    env.push(("no_proxy".into(), String::new()));
    // Only the mock agent is installed: sessions of the real ones are 422, never a real CLI.
    for agent in ["CLAUDE", "CODEX", "OPENCODE"] {
        env.push((format!("TETHER_{agent}_PATH"), "/nonexistent/agent-not-installed".into()));
    }
    let server = TestServer::start_with(ServerOptions {
        token: Some(TOKEN.into()),
        extra_args: vec!["--stream-idle-secs".into(), "1".into()],
        env,
        ..Default::default()
    })
    .await;

    let config = tether_e2e::workspace_root().join("tests").join("schemathesis.toml");
    let seed = std::env::var("TETHER_SCHEMATHESIS_SEED").unwrap_or_else(|_| "23".into());
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(&schemathesis);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(server.endpoint("/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        // Sent too, so a fuzzed `X-Tether-Token` (checked first) never replaces the real one.
        .args(["--header", &format!("X-Tether-Token: {TOKEN}")])
        // Every check is on by default; `--checks all` would also override the
        // per-operation exceptions of the config file.
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", &seed])
        .args(["--workers", "2"])
        .args(["--generation-database", "none"])
        .args(["--max-failures", "50"])
        .arg("--no-color")
        .current_dir(scratch.path())
        .env("HOME", scratch.path())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish in {DEADLINE:?}"))
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("schemathesis ran {:.0?} (seed {seed})", started.elapsed());
    assert!(
        out.status.success(),
        "schemathesis found the server and its document in disagreement ({}; seed {seed}; rerun with \
         TETHER_SCHEMATHESIS_SEED=<n> for another):\n{report}\n{stderr}",
        out.status
    );
    // It really ran: operations were tested and the stateful phase followed links.
    assert!(report.contains("Stateful"), "{report}");
    assert!(
        !report.contains("appears to supply the data"),
        "every route that needs an id is linked from the operation that creates it:\n{report}"
    );
    drop(black_hole);
}
