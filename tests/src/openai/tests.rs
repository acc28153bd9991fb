//! Unit tests of the scripted Responses model (tags, steps, tool shapes,
//! served scripts) and the recorder of `codex app-server` transcripts
//! (ignored: run by hand after a version bump).

use super::*;
use crate::pinned_tools::agents_dir;

fn request(input: Value) -> Value {
    json!({"model": "m", "stream": true, "input": input})
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

#[test]
fn tags_and_steps() {
    let p = latest_prompt(&request(json!([user("[codex:shell] hi")])));
    assert_eq!((p.tag.as_str(), p.tool_outputs), ("shell", 0));
    let r = request(json!([
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "[codex:401]"}]},
        user("<environment_context>\n  <cwd>/x</cwd>\n</environment_context>"),
        user("[codex:patch] hi"),
        {"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": "x"},
        {"type": "custom_tool_call_output", "call_id": "c", "output": "Success."},
        {"type": "function_call", "call_id": "d", "name": "exec_command", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "d", "output": "Exit code: 0\nOutput:\nout\n"},
    ]));
    let p = latest_prompt(&r);
    assert_eq!((p.tag.as_str(), p.tool_outputs), ("patch", 2));
    assert_eq!(command_output(&p.last_output), "out");
    // A later untagged prompt wins over an earlier tagged one (resumed threads).
    let r = request(json!([
        user("[codex:shell] hi"),
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "x"}]},
        {"role": "user", "content": "  plain words  "},
        user("<turn_aborted>\nx\n</turn_aborted>"),
    ]));
    let p = latest_prompt(&r);
    assert_eq!((p.tag.as_str(), p.echo().as_str()), ("text", "plain words"));
    let p = latest_prompt(&request(json!([user("[codex:TEXT]  a very long prompt that goes on and on and on")])));
    assert_eq!(p.tag, "text");
    assert_eq!(p.echo(), "a very long prompt that goes on and on a");
    assert_eq!(latest_prompt(&json!({"input": "[codex:slow] go"})).tag, "slow");
    assert_eq!(command_output("plain\n"), "plain");
}

/// The next step of `[codex:mcp:tt:TOOL]` in `r`.
fn single_step(r: &Value, tool: &str) -> McpStep {
    let prompt = latest_prompt(r);
    mcp_step(r, &prompt, &McpScript::single("tt", tool, &prompt.echo()))
}

#[test]
fn mcp_tools_are_searched_then_called_in_their_namespace() {
    let prompt = user("[codex:mcp:tt:echo] hi there");
    let r = request(json!([prompt]));
    assert_eq!(single_step(&r, "echo"), McpStep::Search("tt echo".into()));
    let found = json!({"type": "tool_search_output", "call_id": "s", "execution": "client", "tools": [
        {"type": "namespace", "name": "mcp__tt", "tools": [{"type": "function", "name": "echo"}]},
    ]});
    let search = json!({"type": "tool_search_call", "call_id": "s", "arguments": {"query": "tt echo"}});
    let r = request(json!([prompt, search, found]));
    let call = McpStep::Call {
        namespace: Some("mcp__tt".into()),
        name: "echo".into(),
        arguments: json!({"text": "hi there"}),
    };
    assert_eq!(single_step(&r, "echo"), call);
    let r = request(json!([prompt, search, found,
        {"type": "function_call", "call_id": "c", "name": "echo", "namespace": "mcp__tt", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": [
            {"type": "input_text", "text": "Wall time: 0.01 seconds\nOutput:"},
            {"type": "input_text", "text": "echo: hi there"},
        ]},
    ]));
    assert_eq!(single_step(&r, "echo"), McpStep::Text("MCP said: echo: hi there".into()));
    // Searched, but the namespace lacks the tool: say so rather than loop.
    let search = json!({"type": "tool_search_call", "call_id": "s", "arguments": {"query": "tt nope"}});
    let r = request(json!([prompt, search, found]));
    assert!(matches!(single_step(&r, "nope"), McpStep::Text(t) if t.starts_with("No tool")));
}

#[test]
fn mcp_sequences_search_each_deferred_tool_then_call_in_order() {
    let step = |items: &[Value]| {
        let r = request(json!(items));
        let prompt = latest_prompt(&r);
        let script = mcp_script(prompt.open, &prompt.tag, &prompt.text, &prompt.echo()).unwrap().unwrap();
        mcp_step(&r, &prompt, &script)
    };
    let search = |id: &str, query: &str| {
        let arguments = json!({"query": query, "limit": 8}).to_string();
        json!({"type": "tool_search_call", "call_id": id, "execution": "client", "arguments": arguments})
    };
    let found = |id: &str, tools: &[&str]| {
        let functions: Vec<Value> = tools.iter().map(|t| json!({"type": "function", "name": t})).collect();
        json!({"type": "tool_search_output", "call_id": id, "execution": "client", "tools": [
            {"type": "namespace", "name": "mcp__tt", "tools": functions}]})
    };
    let called = |id: &str, name: &str, output: &str| {
        [
            json!({"type": "function_call", "call_id": id, "name": name, "namespace": "mcp__tt", "arguments": "{}"}),
            json!({"type": "function_call_output", "call_id": id, "output": [
                {"type": "input_text", "text": "Wall time: 0.01 seconds\nOutput:"},
                {"type": "input_text", "text": output},
            ]}),
        ]
    };
    let call = |name: &str, arguments: Value| McpStep::Call {
        namespace: Some("mcp__tt".into()),
        name: name.into(),
        arguments,
    };
    let mut items = vec![user(r#"[codex:mcp-seq:tt] mint ;; echo {"text": "$token"}"#)];
    assert_eq!(step(&items), McpStep::Search("tt mint".into()));
    items.extend([search("s1", "tt mint"), found("s1", &["mint"])]);
    assert_eq!(step(&items), call("mint", json!({})));
    items.extend(called("c1", "mint", r#"{"token":"tok-1"}"#));
    // echo was not in the first search's output: searched for before its step.
    assert_eq!(step(&items), McpStep::Search("tt echo".into()));
    items.extend([search("s2", "tt echo"), found("s2", &["echo"])]);
    assert_eq!(step(&items), call("echo", json!({"text": "tok-1"})));
    items.extend(called("c2", "echo", "echo: tok-1"));
    assert_eq!(step(&items), McpStep::Text("MCP said: echo: tok-1".into()));
    // A first result without the field: say so, call nothing.
    let mut items = vec![user(r#"[codex:mcp-seq:tt] mint ;; echo {"text": "$nope"}"#), found("s", &["mint", "echo"])];
    items.extend(called("c1", "mint", r#"{"token":"tok-1"}"#));
    let McpStep::Text(text) = step(&items) else { panic!("a text expected") };
    assert!(text.starts_with("MCP sequence stopped at step 2 (echo): the result of mint has no field nope"), "{text}");
}

#[test]
fn tool_shapes_follow_the_request() {
    let tools = |t: Value| json!({"tools": t});
    let exec = tools(json!([{"type": "function", "name": "exec_command"}, {"type": "custom", "name": "apply_patch"}]));
    assert_eq!((shell_tool(&exec), patch_tool(&exec)), (ShellTool::ExecCommand, PatchTool::Custom));
    let old = tools(json!([{"type": "function", "name": "shell"}, {"type": "function", "name": "apply_patch"}]));
    assert_eq!((shell_tool(&old), patch_tool(&old)), (ShellTool::Shell, PatchTool::Function));
    assert_eq!(shell_tool(&tools(json!([{"type": "function", "name": "shell_command"}]))), ShellTool::ShellCommand);
}

/// The `data:` objects of an SSE body.
fn events(text: &str) -> Vec<Value> {
    text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect()
}

async fn post(url: &str, body: &str) -> (u16, String, String) {
    crate::scripted::post_json(&format!("{url}/v1/responses"), body).await
}

#[tokio::test]
async fn serves_scripts() {
    let server = ScriptedOpenAI::start().await;
    let url = server.url();
    let tools = json!([{"type": "function", "name": "exec_command"}, {"type": "custom", "name": "apply_patch"}]);
    let with_tools = |input: Value| json!({"model": "m", "stream": true, "tools": tools, "input": input}).to_string();

    let (status, kind, text) = post(&url, &with_tools(json!([user("[codex:text] Hello there")]))).await;
    assert_eq!((status, kind.as_str()), (200, "text/event-stream; charset=utf-8"));
    assert!(text.starts_with("event: response.created\ndata: {"), "{text}");
    let evs = events(&text);
    let deltas: String = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "Scripted reply: Hello there");
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    assert_eq!(last["response"]["output"][0]["content"][0]["text"], "Scripted reply: Hello there");
    assert!(last["response"]["usage"]["input_tokens_details"]["cached_tokens"].is_number());
    let seq: Vec<u64> = evs.iter().map(|e| e["sequence_number"].as_u64().unwrap()).collect();
    assert_eq!(seq, (0..evs.len() as u64).collect::<Vec<_>>());

    let (_, _, text) = post(&url, &with_tools(json!([user("[codex:shell] go")]))).await;
    let evs = events(&text);
    let done = evs.iter().find(|e| e["type"] == "response.output_item.done").unwrap();
    assert_eq!(done["item"]["name"], "exec_command");
    let args: Value = serde_json::from_str(done["item"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["cmd"], "echo scripted-shell-output");
    let (_, _, text) = post(
        &url,
        &with_tools(json!([
            user("[codex:shell] go"),
            {"type": "function_call", "call_id": "c", "name": "exec_command", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "Wall time: 0 s\nOutput:\nscripted-shell-output\n"},
        ])),
    )
    .await;
    let last = events(&text).pop().unwrap();
    assert_eq!(last["response"]["output"][0]["content"][0]["text"], "The command printed: scripted-shell-output");

    let (_, _, text) = post(&url, &with_tools(json!([user("[codex:patch] go")]))).await;
    let evs = events(&text);
    let input: String = evs
        .iter()
        .filter(|e| e["type"] == "response.custom_tool_call_input.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(input, SCRIPTED_PATCH);
    let done = evs.iter().find(|e| e["type"] == "response.output_item.done").unwrap();
    assert_eq!(
        (done["item"]["type"].as_str(), done["item"]["input"].as_str()),
        (Some("custom_tool_call"), Some(SCRIPTED_PATCH))
    );

    let (_, _, text) = post(&url, &with_tools(json!([user("[codex:edit] go")]))).await;
    let done = events(&text).into_iter().find(|e| e["type"] == "response.output_item.done").unwrap();
    assert_eq!(done["item"]["input"], SCRIPTED_EDIT);
    let old_tools = json!([{"type": "function", "name": "shell"}, {"type": "function", "name": "apply_patch"}]);
    let body = json!({"model": "m", "stream": true, "tools": old_tools, "input": [user("[codex:patch] go")]});
    let (_, _, text) = post(&url, &body.to_string()).await;
    let done = events(&text).into_iter().find(|e| e["type"] == "response.output_item.done").unwrap();
    assert_eq!(done["item"]["type"], "function_call");
    let args: Value = serde_json::from_str(done["item"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["input"], SCRIPTED_PATCH);

    let (_, _, text) = post(&url, &with_tools(json!([user("[codex:reasoning] go")]))).await;
    let evs = events(&text);
    assert!(evs.iter().any(|e| e["type"] == "response.reasoning_summary_text.delta"));
    assert_eq!(evs.last().unwrap()["response"]["output"][0]["type"], "reasoning");

    let (_, _, text) = post(&url, &with_tools(json!([user("[codex:failed] go")]))).await;
    let last = events(&text).pop().unwrap();
    assert_eq!(
        (last["type"].as_str(), last["response"]["error"]["code"].as_str()),
        (Some("response.failed"), Some("server_error"))
    );

    let (status, _, text) = post(&url, &with_tools(json!([user("[codex:401]")]))).await;
    assert_eq!(status, 401);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["code"], "invalid_api_key");
    let (status, _, _) = post(&url, &with_tools(json!([user("[codex:500]")]))).await;
    assert_eq!(status, 500);
    let (status, kind, text) = post(&url, &json!({"model": "m", "input": "title?"}).to_string()).await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["object"], "response");
    let (status, _, _) = post(&url, "not json").await;
    assert_eq!(status, 400);
    assert_eq!(server.requests().len(), 11);
    let models = reqwest::get(format!("{url}/v1/models")).await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(models["data"][0]["id"], CODEX_MODEL);
    assert_eq!(server.all_requests().len(), 13);
    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(reqwest::Client::new().head(format!("{url}/")).send().await.is_err(), "stopped when dropped");
}

#[tokio::test]
async fn refuses_connect() {
    crate::scripted::assert_refuses_connect(&ScriptedOpenAI::start().await, "api.openai.com:443").await;
}

#[tokio::test]
async fn env_writes_the_config() {
    if std::env::var_os("TETHER_CODEX_PATH").is_none() && !agents_dir().join(format!("codex-{CODEX_VERSION}")).exists()
    {
        eprintln!("skipped: codex is not installed (scripts/install-agents)");
        return;
    }
    let server = ScriptedOpenAI::start().await;
    let home = tempfile::tempdir().unwrap();
    let env = codex_env(&server, home.path());
    let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("CODEX_HOME"), home.path().join(".codex").display().to_string());
    let config = std::fs::read_to_string(home.path().join(".codex/config.toml")).unwrap();
    assert!(config.contains(&format!("base_url = \"{}/v1\"", server.url())), "{config}");
    assert_eq!(get("NO_PROXY"), "127.0.0.1,localhost");
}

// ---- the recorder: the real `codex app-server` over stdio ----

/// A running `codex app-server` and everything that crossed its stdio.
struct AppServer {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
    /// Lines the client wrote, in order.
    sent: Vec<String>,
    /// Lines codex wrote on stdout, verbatim, in order.
    received: Vec<String>,
    next_id: u64,
    /// The answer to approval requests (`interrupt`: a `turn/interrupt` instead).
    decision: &'static str,
    /// Sends `turn/interrupt` after this many `item/agentMessage/delta`.
    interrupt_after: Option<usize>,
    deltas: usize,
    interrupted: bool,
    thread_id: String,
    turn_id: String,
}

impl AppServer {
    fn spawn(model: &ScriptedOpenAI, home: &Path, cwd: &Path) -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let mut child = tokio::process::Command::new(codex_bin())
            .arg("app-server")
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(codex_env(model, home))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut err = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text).await;
            text
        });
        Self {
            child,
            stdin,
            stdout,
            stderr,
            sent: Vec::new(),
            received: Vec::new(),
            next_id: 0,
            decision: "accept",
            interrupt_after: None,
            deltas: 0,
            interrupted: false,
            thread_id: String::new(),
            turn_id: String::new(),
        }
    }

    async fn send(&mut self, message: &Value) {
        use tokio::io::AsyncWriteExt;
        let line = message.to_string();
        self.sent.push(line.clone());
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// Sends a request; returns its id.
    async fn send_request(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"id": id, "method": method, "params": params})).await;
        id
    }

    /// The next stdout line codex writes (parsed; `Null` when it is no
    /// JSON), after reacting to it: approvals answered, interrupts sent.
    async fn next(&mut self) -> Value {
        let Some(line) = self.stdout.next_line().await.unwrap() else {
            panic!("codex closed stdout; its output:\n{}", self.received.join("\n"));
        };
        self.received.push(line.clone());
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            eprintln!("codex wrote a non-JSON line: {line:?}");
            return Value::Null;
        };
        let method = message.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
        if let Some(id) = message.get("id").filter(|_| !method.is_empty()) {
            // A server request.
            let reply = if method.ends_with("requestApproval") && self.decision == "interrupt" {
                // Leaves the request unanswered and interrupts the turn instead.
                let params = json!({"threadId": self.thread_id, "turnId": self.turn_id});
                self.send_request("turn/interrupt", params).await;
                return message;
            } else if method.ends_with("requestApproval") {
                json!({"id": id, "result": {"decision": self.decision}})
            } else if method == "mcpServer/elicitation/request" {
                json!({"id": id, "result": {"action": self.decision, "content": null}})
            } else {
                json!({"id": id, "error": {"code": -32601, "message": format!("the recorder does not answer {method}")}})
            };
            self.send(&reply).await;
        }
        match method.as_str() {
            "turn/started" => {
                self.turn_id = message["params"]["turn"]["id"].as_str().unwrap_or_default().to_owned();
            }
            "item/agentMessage/delta" => {
                self.deltas += 1;
                if !self.interrupted && self.interrupt_after.is_some_and(|n| self.deltas >= n) {
                    self.interrupted = true;
                    let params = json!({"threadId": self.thread_id, "turnId": self.turn_id});
                    self.send_request("turn/interrupt", params).await;
                }
            }
            _ => {}
        }
        message
    }

    /// Sends a request and reads until its response; returns the response.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params).await;
        loop {
            let message = self.next().await;
            if message.get("method").is_none() && message.get("id") == Some(&json!(id)) {
                return message;
            }
        }
    }

    async fn initialize(&mut self) {
        let reply = self.request("initialize", json!({"clientInfo": {"name": "tether", "version": "0.1.0"}})).await;
        assert!(reply.get("result").is_some(), "initialize: {reply}");
        self.send(&json!({"method": "initialized"})).await;
    }

    async fn start_thread(&mut self, cwd: &Path, approval: &str, sandbox: &str) -> String {
        self.start_thread_with(cwd, approval, sandbox, None).await
    }

    /// `thread/start` with `config` (layered over config.toml) when given.
    async fn start_thread_with(&mut self, cwd: &Path, approval: &str, sandbox: &str, config: Option<Value>) -> String {
        let mut params = json!({"cwd": cwd.display().to_string(), "approvalPolicy": approval, "sandbox": sandbox});
        if let Some(config) = config {
            params["config"] = config;
        }
        let reply = self.request("thread/start", params).await;
        self.thread_id = reply["result"]["thread"]["id"].as_str().expect("thread/start: a thread id").to_owned();
        self.thread_id.clone()
    }

    /// Runs one turn to its `turn/completed`; returns that notification's params.
    async fn turn(&mut self, text: &str) -> Value {
        self.deltas = 0;
        self.interrupted = false;
        let params = json!({"threadId": self.thread_id, "input": [{"type": "text", "text": text}]});
        let reply = self.request("turn/start", params).await;
        assert!(reply.get("result").is_some(), "turn/start: {reply}");
        loop {
            let message = self.next().await;
            if message["method"] == "turn/completed" {
                return message["params"].clone();
            }
        }
    }

    /// Closes stdin, waits for the exit; returns (stdin lines, stdout lines, stderr).
    async fn finish(mut self) -> (Vec<String>, Vec<String>, String) {
        drop(self.stdin.take());
        // Whatever codex still writes after stdin closes belongs to the recording.
        let drain = async {
            while let Ok(Some(line)) = self.stdout.next_line().await {
                self.received.push(line);
            }
        };
        if tokio::time::timeout(Duration::from_secs(15), drain).await.is_err() {
            eprintln!("codex app-server did not close stdout 15 s after stdin closed; killing it");
            let _ = self.child.kill().await;
        }
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
        eprintln!("codex app-server exited: {status:?}");
        let stderr = tokio::time::timeout(Duration::from_secs(5), self.stderr).await.ok().and_then(Result::ok);
        (self.sent, self.received, stderr.unwrap_or_default())
    }
}

struct Case {
    name: &'static str,
    approval: &'static str,
    sandbox: &'static str,
    prompts: &'static [&'static str],
    decision: &'static str,
    interrupt_after: Option<usize>,
    /// Extra arguments of a test MCP server `tt` given in `config.mcp_servers` (none: no server).
    mcp: Option<&'static [&'static str]>,
}

const fn case(name: &'static str, prompts: &'static [&'static str]) -> Case {
    Case {
        name,
        approval: "never",
        sandbox: "danger-full-access",
        prompts,
        decision: "accept",
        interrupt_after: None,
        mcp: None,
    }
}

const fn untrusted(name: &'static str, prompt: &'static [&'static str], decision: &'static str) -> Case {
    Case {
        name,
        approval: "untrusted",
        sandbox: "workspace-write",
        prompts: prompt,
        decision,
        interrupt_after: None,
        mcp: None,
    }
}

/// The text of the last completed agentMessage item of `lines`.
fn last_agent_text(lines: &[String]) -> String {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["method"] == "item/completed" && v["params"]["item"]["type"] == "agentMessage")
        .filter_map(|v| v["params"]["item"]["text"].as_str().map(str::to_owned))
        .next_back()
        .unwrap_or_default()
}

/// Records the real `codex app-server` for each case into
/// `server/src/agents/codex/testdata/<name>.out.jsonl` (its stdout lines,
/// verbatim) and `<name>.in.jsonl` (the lines the client sent), the model
/// requests and codex's stderr into `$TMPDIR/tether-codex-recordings/`, and
/// the app-server's JSON schema into `testdata/schema/`. Re-run after a
/// version bump: `cargo test -p tether-e2e --lib record_codex -- --ignored --nocapture`
/// (`TETHER_RECORD_ONLY=text,shell` records only those cases).
#[tokio::test]
#[ignore = "needs scripts/install-agents; rewrites the recordings"]
async fn record_codex_transcripts() {
    let recording = crate::scripted::Recording::new("codex");
    let (out_dir, side_dir) = (&recording.out_dir, &recording.side_dir);
    let wanted = |name: &str| recording.wanted(name);
    let save = |name: &str, recorded: &(Vec<String>, Vec<String>, String), model: &ScriptedOpenAI| {
        let (sent, received, stderr) = recorded;
        std::fs::write(out_dir.join(format!("{name}.out.jsonl")), crate::scripted::jsonl(received)).unwrap();
        std::fs::write(out_dir.join(format!("{name}.in.jsonl")), crate::scripted::jsonl(sent)).unwrap();
        recording.save_requests(name, model);
        std::fs::write(side_dir.join(format!("{name}.stderr.txt")), stderr).unwrap();
        eprintln!("recorded {name}: {} lines out, {} in", received.len(), sent.len());
    };

    if wanted("schema") {
        save_schema(&out_dir.join("schema")).await;
    }

    let cases = [
        case("text", &["[codex:text] Hello from the recorder"]),
        case("reasoning", &["[codex:reasoning] Think first"]),
        case("shell", &["[codex:shell] Run a command"]),
        case("shell_output_deltas", &["[codex:ticks] Run a slow command"]),
        untrusted("touch_approved", &["[codex:touch] Touch a file"], "accept"),
        untrusted("touch_declined", &["[codex:touch] Touch a file"], "decline"),
        untrusted("patch_approved", &["[codex:patch] Patch a file"], "accept"),
        untrusted("patch_declined", &["[codex:patch] Patch a file"], "decline"),
        case("patch_update", &["[codex:patch] Create a file", "[codex:edit] Edit it"]),
        untrusted("touch_interrupted", &["[codex:touch] Touch a file"], "interrupt"),
        Case { interrupt_after: Some(5), ..case("slow_interrupt", &["[codex:slow] Take your time"]) },
        case("failed", &["[codex:failed] Fail the stream"]),
        case("http_500", &["[codex:500] Fail upstream"]),
        case("http_401", &["[codex:401] Fail auth"]),
        case("two_turns", &["[codex:text] First turn", "[codex:shell] Second turn"]),
        Case { mcp: Some(&[]), ..case("mcp_bypass", &["[codex:mcp:tt:echo] hello mcp"]) },
        Case { mcp: Some(&[]), ..untrusted("mcp_approved", &["[codex:mcp:tt:echo] hello mcp"], "accept") },
        Case { mcp: Some(&[]), ..untrusted("mcp_declined", &["[codex:mcp:tt:echo] hello mcp"], "decline") },
        Case { mcp: Some(&["--exit-at-once"]), ..case("mcp_failed", &["[codex:text] no server"]) },
    ];
    for c in &cases {
        if !wanted(c.name) {
            continue;
        }
        let model = ScriptedOpenAI::start().await;
        let home = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let run = async {
            let mut app = AppServer::spawn(&model, home.path(), cwd.path());
            app.decision = c.decision;
            app.interrupt_after = c.interrupt_after;
            app.initialize().await;
            let config = c.mcp.map(|extra| {
                let mut args = vec!["--log".to_owned(), cwd.path().join("mcp-calls.jsonl").display().to_string()];
                args.extend(extra.iter().map(|a| (*a).to_owned()));
                let mut server =
                    json!({"command": crate::mcp::mcp_test_server_bin().display().to_string(), "args": args});
                if c.approval == "never" {
                    server["default_tools_approval_mode"] = json!("approve");
                }
                json!({"mcp_servers": {"tt": server}})
            });
            app.start_thread_with(cwd.path(), c.approval, c.sandbox, config).await;
            let mut statuses = Vec::new();
            for prompt in c.prompts {
                let done = app.turn(prompt).await;
                statuses.push(done["turn"]["status"].as_str().unwrap_or_default().to_owned());
            }
            (app.finish().await, statuses)
        };
        let (recording, statuses) = tokio::time::timeout(Duration::from_secs(180), run)
            .await
            .unwrap_or_else(|_| panic!("{}: codex did not finish in 180 s", c.name));
        save(c.name, &recording, &model);
        eprintln!("{}: turn statuses {statuses:?}; last text {:?}", c.name, last_agent_text(&recording.1));
        let touched = cwd.path().join("codex-touched.txt");
        let patched = cwd.path().join("codex-patched.txt");
        match c.name {
            "mcp_bypass" | "mcp_approved" => {
                assert_eq!(last_agent_text(&recording.1), "MCP said: echo: hello mcp", "{}", c.name);
            }
            "shell" | "two_turns" => {
                assert!(last_agent_text(&recording.1).contains("scripted-shell-output"), "{}", c.name);
            }
            "touch_approved" => assert!(touched.exists(), "touch_approved: no file"),
            "touch_declined" => assert!(!touched.exists(), "touch_declined: the file exists"),
            "shell_output_deltas" => {
                assert!(last_agent_text(&recording.1).contains("tick-3"), "{}", c.name);
            }
            "patch_approved" => assert_eq!(std::fs::read_to_string(&patched).unwrap(), "patched by codex\n"),
            "patch_update" => assert_eq!(std::fs::read_to_string(&patched).unwrap(), "edited by codex\n"),
            "patch_declined" => assert!(!patched.exists(), "patch_declined: the file exists"),
            "slow_interrupt" => assert_eq!(statuses, ["interrupted"]),
            "touch_interrupted" => {
                assert_eq!(statuses, ["interrupted"]);
                assert!(!touched.exists(), "touch_interrupted: the file exists");
            }
            "failed" | "http_500" | "http_401" => assert_eq!(statuses, ["failed"], "{}", c.name),
            _ => assert!(statuses.iter().all(|s| s == "completed"), "{}: {statuses:?}", c.name),
        }
    }

    if wanted("resume") {
        // A second process resumes the first one's thread (same CODEX_HOME and cwd).
        let model = ScriptedOpenAI::start().await;
        let home = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let mut first = AppServer::spawn(&model, home.path(), cwd.path());
        first.initialize().await;
        let thread_id = first.start_thread(cwd.path(), "never", "danger-full-access").await;
        first.turn("[codex:text] Remember the word pomegranate").await;
        let recording = first.finish().await;
        save("resume_first", &recording, &model);

        // `excludeTurns: true` is the recommended form; without it the reply
        // carries the whole history and codex adds a `deprecationNotice`.
        for (name, exclude_turns) in [("resume", true), ("resume_full_history", false)] {
            let mut second = AppServer::spawn(&model, home.path(), cwd.path());
            second.initialize().await;
            let mut params = json!({
                "threadId": thread_id, "cwd": cwd.path().display().to_string(),
                "approvalPolicy": "never", "sandbox": "danger-full-access",
            });
            if exclude_turns {
                params["excludeTurns"] = json!(true);
            }
            let reply = second.request("thread/resume", params).await;
            assert_eq!(reply["result"]["thread"]["id"], json!(thread_id), "thread/resume: {reply}");
            second.thread_id.clone_from(&thread_id);
            let done = second.turn("[codex:text] What was the word?").await;
            assert_eq!(done["turn"]["status"], "completed");
            let recording = second.finish().await;
            save(name, &recording, &model);
            let last = model.requests().into_iter().rfind(|r| r["stream"] == true).unwrap();
            assert!(last["input"].to_string().contains("Remember the word pomegranate"), "resumed request: {last}");
        }
    }
}

/// Writes the part of `codex app-server generate-json-schema` that
/// describes threads, turns, items, approvals and token usage into `dir`.
async fn save_schema(dir: &Path) {
    let full = tempfile::tempdir().unwrap();
    let status = tokio::process::Command::new(codex_bin())
        .args(["app-server", "generate-json-schema", "--out"])
        .arg(full.path())
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "generate-json-schema: {status}");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("v1")).unwrap();
    std::fs::create_dir_all(dir.join("v2")).unwrap();
    let top = [
        "ClientRequest",
        "ClientNotification",
        "ServerNotification",
        "ServerRequest",
        "CommandExecutionRequestApprovalParams",
        "CommandExecutionRequestApprovalResponse",
        "FileChangeRequestApprovalParams",
        "FileChangeRequestApprovalResponse",
        "JSONRPCMessage",
        "JSONRPCError",
        "JSONRPCErrorError",
        "RequestId",
    ];
    for name in top {
        let file = format!("{name}.json");
        std::fs::copy(full.path().join(&file), dir.join(&file)).unwrap();
    }
    for name in ["InitializeParams", "InitializeResponse"] {
        let file = format!("v1/{name}.json");
        std::fs::copy(full.path().join(&file), dir.join(&file)).unwrap();
    }
    let v2 = [
        "Thread(Start|Resume)(Params|Response)",
        "Thread(Started|StatusChanged|TokenUsageUpdated|Closed)Notification",
        "Turn(Start|Interrupt)(Params|Response)",
        "Turn(Started|Completed|DiffUpdated|PlanUpdated)Notification",
        "Item(Started|Completed)Notification",
        "AgentMessageDeltaNotification",
        "Reasoning(SummaryTextDelta|SummaryPartAdded|TextDelta)Notification",
        "CommandExecutionOutputDeltaNotification",
        "FileChange(OutputDelta|PatchUpdated)Notification",
        "(Error|Warning|ConfigWarning|DeprecationNotice|ServerRequestResolved)Notification",
    ];
    let matches = |file: &str| {
        let Some(stem) = file.strip_suffix(".json") else { return false };
        v2.iter().any(|pattern| alternatives(pattern).iter().any(|a| a == stem))
    };
    for entry in std::fs::read_dir(full.path().join("v2")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if matches(&name) {
            std::fs::copy(full.path().join("v2").join(&name), dir.join("v2").join(&name)).unwrap();
        }
    }
    std::fs::write(
        dir.join("README.md"),
        format!(
            "Part of `codex app-server generate-json-schema --out DIR` (codex-cli {CODEX_VERSION}):\n\
             the requests, notifications and server requests, and the v2 types of threads,\n\
             turns, items, approvals and token usage. Written by `record_codex_transcripts`\n\
             (tests/src/openai.rs).\n"
        ),
    )
    .unwrap();
}

/// The words a pattern like `A(B|C)D(E|F)` stands for: ABDE, ABDF, ACDE, ACDF.
fn alternatives(pattern: &str) -> Vec<String> {
    let mut words = vec![String::new()];
    let mut rest = pattern;
    while !rest.is_empty() {
        if let Some(group) = rest.strip_prefix('(') {
            let close = group.find(')').unwrap();
            let options: Vec<&str> = group[..close].split('|').collect();
            words = words.iter().flat_map(|w| options.iter().map(move |o| format!("{w}{o}"))).collect();
            rest = &group[close + 1..];
        } else {
            let end = rest.find('(').unwrap_or(rest.len());
            for w in &mut words {
                w.push_str(&rest[..end]);
            }
            rest = &rest[end..];
        }
    }
    words
}

#[test]
fn alternatives_expand() {
    assert_eq!(alternatives("A(B|C)D(E|F)"), ["ABDE", "ABDF", "ACDE", "ACDF"]);
    assert_eq!(alternatives("Plain"), ["Plain"]);
}

#[test]
fn context_elements_around_a_prompt_are_not_the_prompt() {
    let text =
        "<current_datetime>2026-12-07T05:38:01</current_datetime>\n\n[copilot:text] hello\n\n<reminder>x</reminder>";
    assert_eq!(super::without_context(text), "[copilot:text] hello");
    assert_eq!(super::without_context("<environment_context>a</environment_context>"), "");
    assert_eq!(super::without_context("plain <b>text</b> here"), "plain <b>text</b> here");
}

/// The Codex ACP adapter's title request quotes the user's first message,
/// tag and all: it is a title request (not the session's turn), whatever it quotes.
#[test]
fn the_adapters_title_request_is_told_apart() {
    let title = format!("{TITLE_PROMPT}. The title must be short.\n\nUser's first message:\n[codex-acp:touch] please");
    assert!(is_title_request(&request(json!([user(&title)]))));
    assert!(!is_title_request(&request(json!([user("[codex-acp:touch] please")]))));
}

/// A subagent's prompt is the task its parent sent it (an `agent_message`
/// addressed to it, the task in `encrypted_content`); the subagent's report
/// to `/root` is not a prompt.
#[test]
fn a_subagents_task_is_its_prompt() {
    let task = json!({"type": "agent_message", "author": "/root", "recipient": "/root/check_shell", "content": [
        {"type": "input_text", "text": "Message Type: NEW_TASK\nTask name: /root/check_shell\nSender: /root\nPayload:\n"},
        {"type": "encrypted_content", "encrypted_content": SUBAGENT_TASK}]});
    let env = user("<environment_context>\n  <cwd>/x</cwd>\n</environment_context>");
    let p = latest_prompt(&request(json!([env, task])));
    assert_eq!((p.tag.as_str(), p.tool_outputs), ("shell", 0));
    let report = json!({"type": "agent_message", "author": "/root/check_shell", "recipient": "/root",
        "content": [{"type": "input_text", "text": "[codex:text] done"}]});
    let p = latest_prompt(&request(json!([user("[codex:agent] go"), report])));
    assert_eq!(p.tag, "agent");
}
