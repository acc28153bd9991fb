//! Unit tests of the scripted Chat Completions model (tags, steps, the
//! working directory, served scripts) and the recorder of `opencode serve`
//! transcripts (ignored: run by hand after a version bump).

use super::*;
use crate::scripted::{chat_deltas as joined, sse_data as chunks};

fn user(text: &str) -> Value {
    json!({"role": "user", "content": [{"type": "text", "text": text}]})
}

#[test]
fn tags_steps_and_cwd() {
    let r = json!({"messages": [
        {"role": "system", "content": "You are opencode.\n<env>\n  Working directory: /work/x\n</env>"},
        user("[opencode:bash] hi"),
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "scripted-bash-output\n"},
    ]});
    let p = latest_prompt(&r);
    assert_eq!((p.tag.as_str(), p.tool_messages, p.last_tool.as_str()), ("bash", 1, "scripted-bash-output\n"));
    assert_eq!(working_directory(&r), PathBuf::from("/work/x"));
    assert_eq!(working_directory(&json!({"messages": []})), PathBuf::from("/tmp"));
    let r = json!({"messages": [user("[opencode:bash] hi"), {"role": "user", "content": "  plain words  "}]});
    let p = latest_prompt(&r);
    assert_eq!((p.tag.as_str(), p.echo().as_str()), ("text", "plain words"));
    let p =
        latest_prompt(&json!({"messages": [user("[opencode:TEXT]  a very long prompt that goes on and on and on")]}));
    assert_eq!((p.tag.as_str(), p.echo().as_str()), ("text", "a very long prompt that goes on and on a"));
    // The ACP mode's tags pick the same scripts; the first tag of either kind counts.
    let p = latest_prompt(&json!({"messages": [user("go [opencode-acp:Bash] now [opencode:write]")]}));
    assert_eq!((p.tag.as_str(), p.echo().as_str()), ("bash", "go  now [opencode:write]"));
    let p = latest_prompt(&json!({"messages": [user("[opencode-acp:write-to] /tmp/x/Some File.txt ")]}));
    assert_eq!((p.tag.as_str(), p.rest().as_str()), ("write-to", "/tmp/x/Some File.txt"));
}

/// The arguments of the tool call of `chunks`, parsed.
fn arguments(chunks: &[Value]) -> Value {
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    serde_json::from_str(&args).unwrap()
}

async fn post(url: &str, body: &Value) -> (u16, String) {
    let response = reqwest::Client::new().post(format!("{url}/v1/chat/completions")).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn serves_scripts() {
    let server = ScriptedChat::start().await;
    let url = server.url();
    let tools = json!([
        {"type": "function", "function": {"name": "bash", "parameters": {}}},
        {"type": "function", "function": {"name": "write", "parameters": {}}},
        {"type": "function", "function": {"name": "question", "parameters": {}}},
    ]);
    let system = json!({"role": "system", "content": "x\n  Working directory: /w/d\n"});
    let req = |messages: Value| {
        json!({"model": "mock-model", "stream": true, "stream_options": {"include_usage": true},
            "tools": tools, "messages": messages})
    };
    let (status, text) = post(&url, &req(json!([system, user("[opencode:text] Hello there")]))).await;
    assert_eq!(status, 200);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let cs = chunks(&text);
    assert_eq!(joined(&cs, "content"), "Scripted reply: Hello there");
    assert_eq!(cs[cs.len() - 2]["choices"][0]["finish_reason"], "stop");
    assert!(cs.last().unwrap()["usage"]["prompt_tokens"].is_number());

    let (_, text) = post(&url, &req(json!([system, user("[opencode:write] go")]))).await;
    let cs = chunks(&text);
    let args = arguments(&cs);
    assert_eq!(args, json!({"filePath": "/w/d/opencode-written.txt", "content": WRITTEN_CONTENT}));
    assert_eq!(cs[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "write");
    assert!(cs.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));

    let (_, text) = post(
        &url,
        &req(json!([system, user("[opencode:bash] go"),
        {"role": "tool", "tool_call_id": "c", "content": "scripted-bash-output\n"}])),
    )
    .await;
    assert_eq!(joined(&chunks(&text), "content"), "The command printed: scripted-bash-output");

    let (_, text) = post(&url, &req(json!([user("[opencode:reasoning] go")]))).await;
    let cs = chunks(&text);
    assert_eq!(joined(&cs, "reasoning_content"), "Let me think about this scripted request.");
    let (_, text) = post(&url, &req(json!([user("[opencode:question] go")]))).await;
    assert_eq!(arguments(&chunks(&text))["questions"][0]["question"], "Which colour?");

    let (status, text) = post(&url, &req(json!([user("[opencode:500] go")]))).await;
    assert_eq!(status, 500);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["code"], "server_error");
    let (status, _) = post(&url, &req(json!([user("[opencode:401] go")]))).await;
    assert_eq!(status, 401);
    // A title request (no tools) gets a title whatever the tag.
    let title = json!({"model": "m", "stream": true, "messages": [
        {"role": "system", "content": "You are a title generator."}, user("[opencode:500] go")]});
    let (status, text) = post(&url, &title).await;
    assert_eq!((status, joined(&chunks(&text), "content").as_str()), (200, "Scripted title"));
    assert_eq!(server.requests().len(), 8);
    let models = reqwest::get(format!("{url}/v1/models")).await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(models["data"][0]["id"], OPENCODE_MODEL);
    assert_eq!(server.all_requests().len(), 9);
    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(reqwest::Client::new().head(format!("{url}/")).send().await.is_err(), "stopped when dropped");
}

#[tokio::test]
async fn serves_mcp_and_skill_scripts() {
    let server = ScriptedChat::start().await;
    let url = server.url();
    let tools = json!([
        {"type": "function", "function": {"name": "my_srv_echo", "parameters": {}}},
        {"type": "function", "function": {"name": "skill", "parameters": {}}},
    ]);
    let req = |messages: Value| json!({"model": "m", "stream": true, "tools": tools, "messages": messages});
    let (_, text) = post(&url, &req(json!([user("[opencode:mcp:my.srv:echo] say hi")]))).await;
    let cs = chunks(&text);
    assert_eq!(cs[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "my_srv_echo");
    assert_eq!(arguments(&cs), json!({"text": "say hi"}));
    let after = json!([user("[opencode:mcp:my.srv:echo] say hi"), {"role": "tool", "content": "echo: say hi"}]);
    assert_eq!(joined(&chunks(&post(&url, &req(after)).await.1), "content"), "MCP said: echo: say hi");
    let (_, text) = post(&url, &req(json!([user("[opencode:mcp:other:echo] x")]))).await;
    assert!(joined(&chunks(&text), "content").starts_with("No tool other_echo among: my_srv_echo"), "{text}");
    let (_, text) = post(&url, &req(json!([user("[opencode:skill:s-1] load")]))).await;
    assert_eq!(arguments(&chunks(&text)), json!({"name": "s-1"}));
}

#[tokio::test]
async fn refuses_connect() {
    crate::scripted::assert_refuses_connect(&ScriptedChat::start().await, "models.dev:443").await;
}

#[tokio::test]
async fn env_writes_the_config() {
    if std::env::var_os("TETHER_OPENCODE_PATH").is_none()
        && !agents_dir().join(format!("opencode-{OPENCODE_VERSION}")).exists()
    {
        eprintln!("skipped: opencode is not installed (scripts/install-agents)");
        return;
    }
    let server = ScriptedChat::start().await;
    let home = tempfile::tempdir().unwrap();
    let env = opencode_env(&server, home.path());
    let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
    let config_path = home.path().join("config/opencode.json");
    assert_eq!(get("OPENCODE_CONFIG"), config_path.display().to_string());
    let config: Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    assert_eq!(config["provider"]["mock"]["options"]["baseURL"], format!("{}/v1", server.url()));
    assert_eq!(get("XDG_DATA_HOME"), home.path().join("data").display().to_string());
    assert!(home.path().join("config/opencode/package-lock.json").is_file());
    assert_eq!(get("NO_PROXY"), "127.0.0.1,localhost");
}

// ---- recording the real `opencode serve` ----

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

const PASSWORD: &str = "scripted-password";

struct Serve {
    child: tokio::process::Child,
    base: String,
    http: reqwest::Client,
    calls: Vec<Value>,
    events: Arc<Mutex<Vec<String>>>,
    rx: mpsc::UnboundedReceiver<Value>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Serve {
    async fn spawn(env: &[(String, String)], cwd: &Path, logs: &Path) -> Self {
        let port = free_port();
        let mut command = tokio::process::Command::new(opencode_bin());
        command
            .args(["serve", "--hostname", "127.0.0.1", "--port", &port.to_string(), "--print-logs"])
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("OPENCODE_SERVER_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(logs.with_extension("stdout.txt")).unwrap())
            .stderr(std::fs::File::create(logs.with_extension("stderr.txt")).unwrap())
            .kill_on_drop(true);
        let child = command.spawn().expect("spawn opencode serve");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = std::time::Instant::now();
        loop {
            let answer = http
                .get(format!("{base}/global/health"))
                .basic_auth("opencode", Some(PASSWORD))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(r) = answer {
                if r.status().is_success() {
                    eprintln!("healthy after {:?}: {}", started.elapsed(), r.text().await.unwrap_or_default());
                    break;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(60), "opencode serve not healthy in 60 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let response =
            http.get(format!("{base}/event")).basic_auth("opencode", Some(PASSWORD)).send().await.expect("GET /event");
        assert!(response.status().is_success(), "GET /event: {}", response.status());
        let sink = Arc::clone(&events);
        let reader = tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut stream = response.bytes_stream();
            let mut buf = Vec::new();
            while let Some(Ok(bytes)) = stream.next().await {
                buf.extend_from_slice(&bytes);
                while let Some(at) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=at).collect();
                    let line = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned();
                    if let Some(data) = line.strip_prefix("data:") {
                        let data = data.strip_prefix(' ').unwrap_or(data).to_owned();
                        sink.lock().unwrap().push(data.clone());
                        if let Ok(v) = serde_json::from_str::<Value>(&data) {
                            let _ = tx.send(v);
                        }
                    }
                }
            }
        });
        Self { child, base, http, calls: Vec::new(), events, rx, reader: Some(reader) }
    }

    async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method_value = axum::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method_value, format!("{}{path}", self.base))
            .basic_auth("opencode", Some(PASSWORD))
            .timeout(Duration::from_secs(30));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let parsed = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
        self.calls.push(json!({"method": method, "path": path, "body": body, "status": status, "response": parsed}));
        (status, parsed)
    }

    /// Sends a prompt and handles the session's events until it is idle.
    async fn turn(&mut self, session: &str, text: &str, case: &str) -> Vec<Value> {
        let body = json!({
            "parts": [{"type": "text", "text": text}],
            "model": {"providerID": OPENCODE_PROVIDER, "modelID": OPENCODE_MODEL},
        });
        let (status, answer) = self.call("POST", &format!("/session/{session}/prompt_async"), Some(body)).await;
        assert!((200..300).contains(&status), "prompt_async: {status} {answer}");
        let mut seen = Vec::new();
        let mut deltas = 0;
        let mut aborted = false;
        let mut retries = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let event = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{case}: no session.idle in 90 s"))
                .expect("the event stream ended");
            let kind = event["type"].as_str().unwrap_or_default().to_owned();
            let props = &event["properties"];
            let sid = props["sessionID"].as_str().or_else(|| props["info"]["sessionID"].as_str());
            if sid.is_some_and(|s| s != session) {
                continue;
            }
            seen.push(event.clone());
            match kind.as_str() {
                "permission.asked" => {
                    let id = props["id"].as_str().unwrap().to_owned();
                    let reply = if case.contains("denied") { "reject" } else { "once" };
                    let (status, answer) =
                        self.call("POST", &format!("/permission/{id}/reply"), Some(json!({"reply": reply}))).await;
                    assert!((200..300).contains(&status), "permission reply: {status} {answer}");
                }
                "question.asked" => {
                    let id = props["id"].as_str().unwrap().to_owned();
                    let (status, answer) =
                        self.call("POST", &format!("/question/{id}/reply"), Some(json!({"answers": [["Red"]]}))).await;
                    assert!((200..300).contains(&status), "question reply: {status} {answer}");
                }
                "message.part.delta" if case.contains("abort") && !aborted => {
                    deltas += 1;
                    if deltas == 5 {
                        aborted = true;
                        let (status, answer) = self.call("POST", &format!("/session/{session}/abort"), None).await;
                        assert!((200..300).contains(&status), "abort: {status} {answer}");
                    }
                }
                // A 500 is retried with a growing backoff (2, 4, 8, .. s): abort on the second retry.
                "session.status" if props["status"]["type"] == "retry" && case.contains("500") => {
                    retries += 1;
                    if retries == 2 {
                        let (status, answer) = self.call("POST", &format!("/session/{session}/abort"), None).await;
                        assert!((200..300).contains(&status), "abort: {status} {answer}");
                    }
                }
                "session.idle" => break,
                _ => {}
            }
        }
        seen
    }

    async fn stop(mut self) -> (Vec<Value>, Vec<String>) {
        // Events still in flight after idle belong to the recording.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = self.child.kill().await;
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
        let events = self.events.lock().unwrap().clone();
        (std::mem::take(&mut self.calls), events)
    }
}

fn text_of(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "message.part.updated" && e["properties"]["part"]["type"] == "text")
        .filter_map(|e| e["properties"]["part"]["text"].as_str().map(str::to_owned))
        .next_back()
        .unwrap_or_default()
}

/// Records the real `opencode serve` for each case into
/// `server/src/agents/opencode/testdata/<name>.events.jsonl` (the `data:`
/// of every `GET /event` line, verbatim) and `<name>.calls.jsonl` (the HTTP
/// calls made and their answers), `openapi.json` (`GET /doc`), and the
/// model requests and opencode's logs into `$TMPDIR/tether-opencode-recordings/`.
/// Re-run after a version bump:
/// `cargo test -p tether-e2e --lib record_opencode -- --ignored --nocapture`
/// (`TETHER_RECORD_ONLY=text,bash` records only those cases).
#[tokio::test]
#[ignore = "needs scripts/install-agents; rewrites the recordings"]
async fn record_opencode_transcripts() {
    let recording = crate::scripted::Recording::new("opencode");
    let (out_dir, side_dir) = (&recording.out_dir, &recording.side_dir);
    let wanted = |name: &str| recording.wanted(name);
    let save = |name: &str, calls: &[Value], events: &[String], model: &ScriptedChat| {
        let calls: Vec<String> = calls.iter().map(Value::to_string).collect();
        std::fs::write(out_dir.join(format!("{name}.calls.jsonl")), crate::scripted::jsonl(&calls)).unwrap();
        std::fs::write(out_dir.join(format!("{name}.events.jsonl")), crate::scripted::jsonl(events)).unwrap();
        recording.save_requests(name, model);
        eprintln!("recorded {name}: {} events, {} calls", events.len(), calls.len());
    };

    let cases: &[(&str, &[&str])] = &[
        ("text", &["[opencode:text] Hello from the recorder"]),
        ("reasoning", &["[opencode:reasoning] Think first"]),
        ("bash", &["[opencode:bash] Run a command"]),
        ("write_allowed", &["[opencode:write] Write a file"]),
        ("write_denied", &["[opencode:write] Write a file"]),
        ("question", &["[opencode:question] Ask me"]),
        ("slow_abort", &["[opencode:slow] Take your time"]),
        ("error_500", &["[opencode:500] Fail upstream"]),
        ("error_401", &["[opencode:401] Fail auth"]),
        ("two_turns", &["[opencode:text] First turn", "[opencode:bash] Second turn"]),
    ];
    for (name, prompts) in cases {
        if !wanted(name) {
            continue;
        }
        let model = ScriptedChat::start().await;
        let home = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let env = opencode_env(&model, home.path());
        let mut serve = Serve::spawn(&env, cwd.path(), &side_dir.join(name)).await;
        if *name == "text" {
            let (status, doc) = serve.call("GET", "/doc", None).await;
            assert_eq!(status, 200);
            serve.calls.pop();
            std::fs::write(out_dir.join("openapi.json"), format!("{doc:#}\n")).unwrap();
            let unauth = serve.http.get(format!("{}/session", serve.base)).send().await.unwrap();
            eprintln!("GET /session without auth: {}", unauth.status());
        }
        let (status, session) = serve.call("POST", "/session", Some(json!({}))).await;
        assert_eq!(status, 200, "{session}");
        let id = session["id"].as_str().unwrap().to_owned();
        let mut last = Vec::new();
        for prompt in *prompts {
            last = serve.turn(&id, prompt, name).await;
        }
        let (calls, events) = serve.stop().await;
        save(name, &calls, &events, &model);
        let written = cwd.path().join(WRITTEN_FILE);
        eprintln!("{name}: last text {:?}", text_of(&last));
        match *name {
            "bash" | "two_turns" => assert!(text_of(&last).contains("scripted-bash-output"), "{name}"),
            "write_allowed" => assert_eq!(std::fs::read_to_string(&written).unwrap(), WRITTEN_CONTENT),
            "write_denied" => assert!(!written.exists(), "write_denied: the file exists"),
            _ => {}
        }
    }

    if wanted("mcp") {
        // A stdio MCP server through OPENCODE_CONFIG_CONTENT, its tools asking
        // (as tether's rules make them in `default`), and a skill loaded.
        let model = ScriptedChat::start().await;
        let home = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let skills = tempfile::tempdir().unwrap();
        let skill = skills.path().join("rec-skill");
        std::fs::create_dir_all(&skill).unwrap();
        let md = "---\nname: rec-skill\ndescription: A recorded skill\n---\n\nREC-SKILL-BODY\n";
        std::fs::write(skill.join("SKILL.md"), md).unwrap();
        let mut env = opencode_env(&model, home.path());
        let bin = crate::mcp::mcp_test_server_bin().display().to_string();
        let log = home.path().join("mcp-calls.jsonl").display().to_string();
        let content = json!({
            "mcp": {"tt": {"type": "local", "command": [bin, "--log", log, "--label", "rec"], "enabled": true}},
            "skills": {"paths": [skills.path().display().to_string()]},
        });
        env.push(("OPENCODE_CONFIG_CONTENT".into(), content.to_string()));
        let mut serve = Serve::spawn(&env, cwd.path(), &side_dir.join("mcp")).await;
        let rules = json!({"permission": [{"permission": "tt_*", "pattern": "*", "action": "ask"}]});
        let (status, session) = serve.call("POST", "/session", Some(rules)).await;
        assert_eq!(status, 200, "{session}");
        let id = session["id"].as_str().unwrap().to_owned();
        let (status, mcp) = serve.call("GET", "/mcp", None).await;
        assert_eq!((status, &mcp["tt"]["status"]), (200, &json!("connected")), "{mcp}");
        let first = serve.turn(&id, "[opencode:mcp:tt:echo] hello mcp", "mcp").await;
        let second = serve.turn(&id, "[opencode:skill:rec-skill] load it", "mcp").await;
        let (calls, events) = serve.stop().await;
        save("mcp", &calls, &events, &model);
        assert_eq!(text_of(&first), "MCP said: echo: hello mcp");
        assert!(text_of(&second).contains("REC-SKILL-BODY"), "{}", text_of(&second));
    }

    if wanted("resume") {
        let model = ScriptedChat::start().await;
        let home = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let env = opencode_env(&model, home.path());
        let mut first = Serve::spawn(&env, cwd.path(), &side_dir.join("resume_first")).await;
        let (_, session) = first.call("POST", "/session", Some(json!({}))).await;
        let id = session["id"].as_str().unwrap().to_owned();
        first.turn(&id, "[opencode:text] Remember the word pomegranate", "resume").await;
        let (calls, events) = first.stop().await;
        save("resume_first", &calls, &events, &model);
        let mut second = Serve::spawn(&env, cwd.path(), &side_dir.join("resume")).await;
        let (status, answer) = second.call("GET", &format!("/session/{id}"), None).await;
        assert_eq!(status, 200, "{answer}");
        let _ = second.call("GET", &format!("/session/{id}/message"), None).await;
        let last = second.turn(&id, "[opencode:text] What was the word?", "resume").await;
        let (calls, events) = second.stop().await;
        save("resume", &calls, &events, &model);
        eprintln!("resume: last text {:?}", text_of(&last));
        let request = model.requests().into_iter().rfind(|r| !is_title_request(r)).unwrap();
        assert!(request["messages"].to_string().contains("pomegranate"), "resumed request: {request}");
    }
}
