//! Unit tests of Pi's scripted model (tags, steps, served scripts) and the
//! recorder of `pi --mode rpc` transcripts (ignored: run by hand after a
//! version bump).

use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;
use crate::scripted::{chat_deltas as joined, sse_data as chunks};

fn user(text: &str) -> Value {
    json!({"role": "user", "content": [{"type": "text", "text": text}]})
}

fn arguments(chunks: &[Value]) -> (String, Value) {
    let name = chunks.iter().find_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"].as_str());
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    (name.unwrap().to_owned(), serde_json::from_str(&args).unwrap())
}

async fn post(url: &str, body: &Value) -> (u16, String) {
    let response = reqwest::Client::new().post(format!("{url}/v1/chat/completions")).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn request(messages: Vec<Value>) -> Value {
    let mut all =
        vec![json!({"role": "developer", "content": "You are an expert coding assistant operating inside pi"})];
    all.extend(messages);
    json!({"model": PI_MODEL, "stream": true, "stream_options": {"include_usage": true}, "messages": all})
}

#[tokio::test]
async fn serves_scripts() {
    let model = ScriptedPi::start().await;
    let url = model.url();

    let (status, body) = post(&url, &request(vec![user("[pi:text] hello there")])).await;
    assert_eq!(status, 200);
    let c = chunks(&body);
    assert_eq!(joined(&c, "content"), "Scripted reply: hello there");
    assert!(c.last().unwrap()["usage"]["completion_tokens"].as_u64().unwrap() > 0, "the usage chunk");

    let (_, body) = post(&url, &request(vec![user("[pi:thinking] why")])).await;
    let c = chunks(&body);
    assert_eq!(joined(&c, "reasoning_content"), "Let me think about this scripted request.");
    assert_eq!(joined(&c, "content"), "Thought about it: why");

    let (_, body) = post(&url, &request(vec![user("[pi:bash] go")])).await;
    assert_eq!(arguments(&chunks(&body)), ("bash".into(), json!({"command": BASH_COMMAND})));
    let call = json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]});
    let result = json!({"role": "tool", "content": "scripted-bash-output\n", "tool_call_id": "c"});
    let (_, body) = post(&url, &request(vec![user("[pi:bash] go"), call.clone(), result])).await;
    assert_eq!(joined(&chunks(&body), "content"), "The command printed: scripted-bash-output");

    let (_, body) = post(&url, &request(vec![user("[pi:write] go")])).await;
    assert_eq!(arguments(&chunks(&body)), ("write".into(), json!({"path": WRITTEN_FILE, "content": WRITTEN_CONTENT})));
    let (_, body) = post(&url, &request(vec![user("[pi:edit] go")])).await;
    let edits = json!([{"oldText": "written by pi", "newText": "edited by pi"}]);
    assert_eq!(arguments(&chunks(&body)), ("edit".into(), json!({"path": WRITTEN_FILE, "edits": edits})));
    let done =
        json!({"role": "tool", "content": "Successfully replaced 1 block(s) in pi-written.txt.", "tool_call_id": "c"});
    let (_, body) = post(&url, &request(vec![user("[pi:edit] go"), call, done])).await;
    assert_eq!(joined(&chunks(&body), "content"), "Edit result: Successfully replaced 1 block(s) in pi-written.txt.");

    let (status, body) = post(&url, &request(vec![user("[pi:401] no")])).await;
    assert_eq!(status, 401);
    assert!(body.contains("invalid_api_key"), "{body}");
    assert_eq!(model.requests().len(), 8);
}

#[tokio::test]
async fn refuses_connect() {
    let model = ScriptedPi::start().await;
    crate::scripted::assert_refuses_connect(&model, "registry.npmjs.org:443").await;
}

#[test]
fn env_points_pi_at_the_model() {
    if std::env::var_os("TETHER_PI_PATH").is_none() && !crate::pinned_tools::agents_dir().join("pi-0.73.1").exists() {
        eprintln!("Pi is not installed: run scripts/install-agents");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let model = rt.block_on(ScriptedPi::start());
    let home = tempfile::tempdir().unwrap();
    let env = pi_env(&model, home.path());
    let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
    let dir = PathBuf::from(get("PI_CODING_AGENT_DIR"));
    let models: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("models.json")).unwrap()).unwrap();
    assert_eq!(models["providers"]["mock"]["baseUrl"], format!("{}/v1", model.url()));
    assert_eq!(get("PI_OFFLINE"), "1");
    assert_eq!(get("HTTPS_PROXY"), model.url());
}

/// A `pi --mode rpc` the recorder talks to: every line it writes is kept.
struct Rpc {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    out: Vec<String>,
    next: u64,
}

impl Rpc {
    fn spawn(env: &[(String, String)], cwd: &Path, resume: Option<&str>) -> Rpc {
        let mut cmd = tokio::process::Command::new(pi_bin());
        cmd.args(["--mode", "rpc", "--provider", PI_PROVIDER, "--model", PI_MODEL]);
        if let Some(session) = resume {
            cmd.args(["--session", session]);
        }
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(cwd)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Rpc { child, stdin, lines, out: Vec::new(), next: 0 }
    }

    async fn send(&mut self, mut command: Value) {
        self.next += 1;
        command["id"] = json!(format!("rec-{}", self.next));
        self.stdin.write_all(format!("{command}\n").as_bytes()).await.unwrap();
    }

    /// Reads lines until one satisfies `done` (30 s deadline).
    async fn until(&mut self, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = tokio::time::timeout(left, self.lines.next_line())
                .await
                .expect("pi answered in time")
                .unwrap()
                .expect("pi's stdout open");
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            self.out.push(line);
            if done(&v) {
                return v;
            }
        }
    }

    async fn state(&mut self) -> Value {
        self.send(json!({"type": "get_state"})).await;
        self.until(|v| v["command"] == "get_state").await
    }

    async fn prompt(&mut self, text: &str) {
        self.send(json!({"type": "prompt", "message": text})).await;
        self.until(|v| v["type"] == "agent_end").await;
    }

    async fn stop(mut self) -> Vec<String> {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let _ = self.child.kill().await;
        self.out
    }
}

/// Runs the real Pi against [`ScriptedPi`] and writes what it says to
/// `server/src/agents/pi/testdata/<case>.jsonl` (model requests to
/// `$TMPDIR/tether-pi-recordings`). Run after a version bump with
/// `cargo test -p tether-e2e --lib record_pi -- --ignored --nocapture`
/// (`TETHER_RECORD_ONLY=text,bash` records only those cases), then
/// `TETHER_BLESS=1 cargo test -p tether --lib snapshot`.
#[tokio::test]
#[ignore = "needs scripts/install-agents; rewrites the recordings"]
async fn record_pi_transcripts() {
    let recording = crate::scripted::Recording::new("pi");
    let cases: &[(&str, &[&str])] = &[
        ("text", &["[pi:text] Hello from the recorder"]),
        ("thinking", &["[pi:thinking] Think first"]),
        ("bash", &["[pi:bash] Run a command"]),
        ("edit", &["[pi:write] Write a file", "[pi:edit] Edit it"]),
        ("abort", &["[pi:slow] Take your time", "[pi:text] After the abort"]),
        ("error_401", &["[pi:401] Fail auth", "[pi:text] After the error"]),
    ];
    for (name, prompts) in cases {
        if !recording.wanted(name) {
            continue;
        }
        let model = ScriptedPi::start().await;
        let home = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let env = pi_env(&model, home.path());
        let mut pi = Rpc::spawn(&env, cwd.path(), None);
        pi.state().await;
        for prompt in *prompts {
            if prompt.contains("[pi:slow]") {
                pi.send(json!({"type": "prompt", "message": prompt})).await;
                let deltas = std::cell::Cell::new(0);
                pi.until(|v| {
                    if v["assistantMessageEvent"]["type"] == "text_delta" {
                        deltas.set(deltas.get() + 1);
                    }
                    deltas.get() >= 3
                })
                .await;
                pi.send(json!({"type": "abort"})).await;
                pi.until(|v| v["type"] == "agent_end").await;
            } else {
                pi.prompt(prompt).await;
            }
        }
        let out = pi.stop().await;
        std::fs::write(recording.out_dir.join(format!("{name}.jsonl")), crate::scripted::jsonl(&out)).unwrap();
        recording.save_requests(name, &model);
        eprintln!("recorded {name}: {} lines", out.len());
        if *name == "edit" {
            assert_eq!(std::fs::read_to_string(cwd.path().join(WRITTEN_FILE)).unwrap(), EDITED_CONTENT);
        }
    }
}

#[test]
fn skills_are_found_where_pi_lists_them() {
    let system = "You are pi.\n<available_skills>\n  <skill>\n    <name>other</name>\n    <description>x</description>\n    <location>/a/other/SKILL.md</location>\n  </skill>\n  <skill>\n    <name>tester-skill</name>\n    <description>Checks</description>\n    <location>/s/skills/tester-skill/SKILL.md</location>\n  </skill>\n</available_skills>";
    let r = json!({"messages": [{"role": "developer", "content": system}, user("[pi:skill:tester-skill] go")]});
    assert_eq!(skill_location(&r, "tester-skill").as_deref(), Some("/s/skills/tester-skill/SKILL.md"));
    assert_eq!(skill_location(&r, "missing"), None);
}
