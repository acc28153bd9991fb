//! Unit tests of the scripted Anthropic model (tags, steps, served
//! scripts) and the recorder of Claude Code's transcripts (ignored: run by
//! hand after a version bump).

use super::*;

fn request(messages: Value) -> Value {
    json!({"model": "m", "stream": true, "messages": messages})
}

#[test]
fn tags_and_steps() {
    let r = request(json!([{"role": "user", "content": "[claude:bash] hi"}]));
    let p = latest_prompt(&r);
    assert_eq!((p.tag.as_str(), p.tool_results), ("bash", 0));
    let r = request(json!([
        {"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\nx [claude:401]\n</system-reminder>\n"},
            {"type": "text", "text": "[claude:bash] hi"}]},
        {"role": "system", "content": [{"type": "text", "text": "env"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "out\n"}]},
            {"type": "text", "text": "<system-reminder>later</system-reminder>"}]},
    ]));
    let p = latest_prompt(&r);
    assert_eq!((p.tag.as_str(), p.tool_results, p.last_result.as_str()), ("bash", 1, "out\n"));
    // A later untagged prompt wins over an earlier tagged one (resumed conversations).
    let r = request(json!([
        {"role": "user", "content": "[claude:bash] hi"},
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": [{"type": "text", "text": "[Request interrupted by user]"}, {"type": "text", "text": "  plain words  "}]},
    ]));
    let p = latest_prompt(&r);
    assert_eq!((p.tag.as_str(), p.echo().as_str()), ("text", "plain words"));
    let p = latest_prompt(&request(
        json!([{"role": "user", "content": "[claude:TEXT]  a very long prompt that goes on and on and on"}]),
    ));
    assert_eq!(p.tag, "text");
    assert_eq!(p.echo(), "a very long prompt that goes on and on a");
    // The same CLI through its ACP adapter: `[claude-acp:TAG]`, echoed without its tag.
    let p = latest_prompt(&request(json!([{"role": "user", "content": "[claude-acp:bash] from acp"}])));
    assert_eq!((p.tag.as_str(), p.open, p.echo().as_str()), ("bash", "[claude-acp:", "from acp"));
}

#[test]
fn mcp_sequences_search_once_then_call_in_order() {
    let prompt = json!({"role": "user", "content": r#"[claude:mcp-seq:tt] mint ;; echo {"text": "$token"}"#});
    let use_ = |id: &str, name: &str, input: Value| json!({"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": name, "input": input}]});
    let result = |id: &str, text: &str| {
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": id, "content": [{"type": "text", "text": text}]}]})
    };
    let step = |messages: Value, tools: &[&str]| {
        let mut r = request(messages);
        r["tools"] = tools.iter().map(|t| json!({"name": t})).collect();
        let prompt = latest_prompt(&r);
        let script = mcp_script(prompt.open, &prompt.tag, &prompt.text, &prompt.echo()).unwrap().unwrap();
        mcp_step(&r, &prompt, &script)
    };
    let select = json!({"query": "select:mcp__tt__mint,mcp__tt__echo", "max_results": 2});
    assert_eq!(step(json!([prompt]), &["Bash"]), Step::Tool("ToolSearch".into(), select.clone()));
    let searched = [prompt.clone(), use_("s", "ToolSearch", select), result("s", "")];
    let loaded = ["Bash", "mcp__tt__mint", "mcp__tt__echo"];
    assert_eq!(step(json!(searched), &loaded), Step::Tool("mcp__tt__mint".into(), json!({})));
    let e = step(json!(searched), &["Bash"]);
    assert!(matches!(&e, Step::Text(t) if t.starts_with("No tool mcp__tt__mint after ToolSearch")), "{e:?}");
    let mut minted = searched.to_vec();
    minted.extend([use_("m", "mcp__tt__mint", json!({})), result("m", r#"{"token":"tok-1"}"#)]);
    assert_eq!(step(json!(minted), &loaded), Step::Tool("mcp__tt__echo".into(), json!({"text": "tok-1"})));
    let mut echoed = minted.clone();
    echoed.extend([use_("e", "mcp__tt__echo", json!({"text": "tok-1"})), result("e", "echo: tok-1")]);
    assert_eq!(step(json!(echoed), &loaded), Step::Text("MCP said: echo: tok-1".into()));
    // The single call of [claude:mcp:SERVER:TOOL] is a one-step script.
    let single = json!([{"role": "user", "content": "[claude:mcp:tt:echo] hi"}]);
    assert_eq!(step(single, &["mcp__tt__echo"]), Step::Tool("mcp__tt__echo".into(), json!({"text": "hi"})));
}

#[test]
fn working_directory_from_the_prompt() {
    let r = json!({
        "system": [{"type": "text", "text": "Working directory: /old\nother"}],
        "messages": [{"role": "system", "content": [{"type": "text", "text": "# Environment\n - Primary working directory: /tmp/x y\n - Is a git repository: false"}]}],
    });
    assert_eq!(working_directory(&r), "/tmp/x y");
    assert_eq!(working_directory(&json!({"system": "Working directory: /w\n"})), "/w");
    assert_eq!(working_directory(&json!({})), "/tmp");
}

async fn post(url: &str, body: &str) -> (u16, String, String) {
    crate::scripted::post_json(&format!("{url}/v1/messages?beta=true"), body).await
}

#[tokio::test]
async fn serves_scripts() {
    let server = ScriptedAnthropic::start().await;
    let url = server.url();
    let (status, kind, text) = post(
        &url,
        &json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "[claude:bash] go"}]})
            .to_string(),
    )
    .await;
    assert_eq!((status, kind.as_str()), (200, "text/event-stream; charset=utf-8"));
    assert!(text.starts_with("event: message_start\ndata: {"), "{text}");
    let json: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|v| v["delta"]["partial_json"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap()["command"], "echo scripted-bash-output");
    assert!(text.contains(r#""stop_reason":"tool_use""#));
    let (status, _, text) =
        post(&url, &request(json!([{"role": "user", "content": "[claude:401]"}])).to_string()).await;
    assert_eq!(status, 401);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["type"], "authentication_error");
    let (status, _, _) =
        post(&url, &request(json!([{"role": "user", "content": "[claude:overloaded]"}])).to_string()).await;
    assert_eq!(status, 529);
    let (status, kind, text) = post(&url, r#"{"model":"m","messages":[{"role":"user","content":"title?"}]}"#).await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["type"], "message");
    let (status, _, _) = post(&url, "not json").await;
    assert_eq!(status, 400);
    assert_eq!(server.requests().len(), 4);
    let count = reqwest::Client::new().post(format!("{url}/v1/messages/count_tokens")).body("{}").send().await.unwrap();
    assert_eq!(count.json::<Value>().await.unwrap()["input_tokens"], 10);
    let head = reqwest::Client::new().head(format!("{url}/")).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(server.all_requests().len(), 7);
    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(reqwest::Client::new().head(format!("{url}/")).send().await.is_err(), "stopped when dropped");
}

#[tokio::test]
async fn refuses_connect() {
    crate::scripted::assert_refuses_connect(&ScriptedAnthropic::start().await, "example.com:443").await;
}

/// How the recorder answers `can_use_tool` requests.
#[derive(Clone, Copy)]
enum Answer {
    Allow,
    Deny,
    /// Allows with the answers of `[claude:question]` added to the input.
    ChooseBlue,
    /// Leaves the request unanswered and interrupts the turn instead.
    Interrupt,
}

struct Run<'a> {
    model: &'a ScriptedAnthropic,
    home: &'a Path,
    cwd: &'a Path,
    args: Vec<String>,
    prompts: Vec<&'a str>,
    answer: Answer,
    /// Sends an interrupt after this many text deltas.
    interrupt_after: Option<usize>,
    /// Added to [`claude_env`].
    env: Vec<(String, String)>,
}

fn user_line(text: &str) -> String {
    json!({"type": "user", "message": {"role": "user", "content": text}, "parent_tool_use_id": null, "session_id": ""})
        .to_string()
}

/// Runs the real CLI in stream-json mode through `run.prompts`, answering
/// its control requests; returns its stdout lines.
async fn run_claude(run: Run<'_>) -> Vec<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut cmd = tokio::process::Command::new(claude_bin());
    cmd.args([
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--permission-prompt-tool",
        "stdio",
        "--permission-mode",
        "default",
    ])
    .args(&run.args)
    .current_dir(run.cwd)
    .env_clear()
    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
    .envs(claude_env(run.model, run.home))
    .envs(run.env.iter().map(|(k, v)| (k, v)))
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::inherit())
    .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut prompts = run.prompts.iter();
    let mut lines = Vec::new();
    let mut deltas = 0;
    let mut interrupted = false;
    async fn send(stdin: &mut Option<tokio::process::ChildStdin>, line: &str) {
        let stdin = stdin.as_mut().expect("stdin still open");
        stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }
    send(&mut stdin, &user_line(prompts.next().unwrap())).await;
    let read = async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            lines.push(line.clone());
            let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
            match v["type"].as_str() {
                Some("control_request") if v["request"]["subtype"] == "can_use_tool" => {
                    let input = v["request"]["input"].clone();
                    if let Answer::Interrupt = run.answer {
                        let int = json!({"type": "control_request", "request_id": "int_1",
                                         "request": {"subtype": "interrupt"}});
                        send(&mut stdin, &int.to_string()).await;
                        continue;
                    }
                    let response = match run.answer {
                        Answer::Allow => json!({"behavior": "allow", "updatedInput": input}),
                        Answer::Deny | Answer::Interrupt => json!({"behavior": "deny", "message": "no"}),
                        Answer::ChooseBlue => {
                            let mut input = input;
                            input["answers"] = json!({"Which colour?": "Blue"});
                            json!({"behavior": "allow", "updatedInput": input})
                        }
                    };
                    let reply = json!({"type": "control_response", "response": {
                        "subtype": "success", "request_id": v["request_id"], "response": response}});
                    send(&mut stdin, &reply.to_string()).await;
                }
                Some("stream_event") if v["event"]["delta"]["type"] == "text_delta" => {
                    deltas += 1;
                    if !interrupted && run.interrupt_after.is_some_and(|n| deltas >= n) {
                        interrupted = true;
                        let int = json!({"type": "control_request", "request_id": "int_1",
                                         "request": {"subtype": "interrupt"}});
                        send(&mut stdin, &int.to_string()).await;
                    }
                }
                Some("result") => match prompts.next() {
                    Some(prompt) => send(&mut stdin, &user_line(prompt)).await,
                    None => drop(stdin.take()),
                },
                _ => {}
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(120), read).await.is_err() {
        let _ = child.kill().await;
        panic!("claude did not finish in 120 s; its output:\n{}", lines.join("\n"));
    }
    let status = child.wait().await.unwrap();
    eprintln!("claude {:?} exited with {status}", run.prompts);
    lines
}

fn session_id(lines: &[String]) -> String {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "system" && v["subtype"] == "init")
        .and_then(|v| v["session_id"].as_str().map(str::to_owned))
        .expect("a system/init line")
}

fn has_result(lines: &[String]) -> bool {
    lines.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).any(|v| v["type"] == "result")
}

/// Records the real CLI's stdout for each tag into
/// `server/src/agents/claude/testdata/<name>.jsonl` (the converter's unit
/// tests read them) and the requests it sent into
/// `$TMPDIR/tether-claude-recordings/<name>.requests.json`. Re-run after a
/// version bump: `cargo test -p tether-e2e --lib record_claude -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "needs scripts/install-agents; rewrites the recordings"]
async fn record_claude_transcripts() {
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src/agents/claude/testdata");
    let req_dir = std::env::temp_dir().join("tether-claude-recordings");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::create_dir_all(&req_dir).unwrap();
    let only = std::env::var("TETHER_RECORD_ONLY").ok();
    let save = |name: &str, lines: &[String], model: &ScriptedAnthropic| {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(out_dir.join(format!("{name}.jsonl")), text).unwrap();
        let all: Vec<Value> = model
            .all_requests()
            .into_iter()
            .map(|r| json!({"method": r.method, "uri": r.uri, "body": r.body}))
            .collect();
        std::fs::write(req_dir.join(format!("{name}.requests.json")), serde_json::to_string_pretty(&all).unwrap())
            .unwrap();
        assert!(has_result(lines), "{name}: no result line");
        eprintln!("recorded {name}: {} lines", lines.len());
    };
    type Case<'a> = (&'a str, &'a [&'a str], Answer, Option<usize>, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        ("text", &["[claude:text] Hello from the recorder"], Answer::Allow, None, &[]),
        ("thinking", &["[claude:thinking] Think first"], Answer::Allow, None, &[]),
        ("bash", &["[claude:bash] Run a command"], Answer::Allow, None, &[]),
        ("write_allowed", &["[claude:write] Write a file"], Answer::Allow, None, &[]),
        ("write_denied", &["[claude:write] Write a file"], Answer::Deny, None, &[]),
        ("question", &["[claude:question] Ask me"], Answer::ChooseBlue, None, &[]),
        ("todo", &["[claude:todo] Plan it"], Answer::Allow, None, &[]),
        ("task", &["[claude:task] Plan it"], Answer::Allow, None, &[("CLAUDE_CODE_ENABLE_TODO_TOOLS", "1")]),
        ("task_disabled", &["[claude:task] Plan it"], Answer::Allow, None, &[]),
        ("error_401", &["[claude:401] Fail auth"], Answer::Allow, None, &[]),
        ("error_500", &["[claude:500] Fail upstream"], Answer::Allow, None, &[]),
        ("error_overloaded", &["[claude:overloaded] Overload"], Answer::Allow, None, &[]),
        ("error_500_retry", &["[claude:500] Fail upstream"], Answer::Allow, None, &[("CLAUDE_CODE_MAX_RETRIES", "1")]),
        ("interrupt_during_permission", &["[claude:write] Write a file"], Answer::Interrupt, None, &[]),
        ("interrupt", &["[claude:slow] Take your time"], Answer::Allow, Some(5), &[]),
        (
            "interrupt_then_prompt",
            &["[claude:slow] Take your time", "[claude:text] After the interrupt"],
            Answer::Allow,
            Some(5),
            &[],
        ),
        ("two_turns", &["[claude:text] First turn", "[claude:bash] Second turn"], Answer::Allow, None, &[]),
    ];
    for &(name, prompts, answer, interrupt_after, env) in cases {
        if only.as_deref().is_some_and(|o| !o.split(',').any(|n| n == name)) {
            continue;
        }
        let model = ScriptedAnthropic::start().await;
        let home = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let lines = run_claude(Run {
            model: &model,
            home: home.path(),
            cwd: cwd.path(),
            args: Vec::new(),
            prompts: prompts.to_vec(),
            answer,
            interrupt_after,
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        })
        .await;
        save(name, &lines, &model);
        if name == "write_allowed" {
            let written = std::fs::read_to_string(cwd.path().join("claude-written.txt")).unwrap();
            assert_eq!(written, "written by claude\n");
        }
        if name == "write_denied" {
            assert!(!cwd.path().join("claude-written.txt").exists());
        }
    }
    if only.as_deref().is_none_or(|o| o.split(',').any(|n| n == "resume")) {
        // A second process resumes the first one's session (same HOME and cwd).
        let model = ScriptedAnthropic::start().await;
        let home = tempfile::tempdir().unwrap();
        let cwd = tempfile::tempdir().unwrap();
        let run = |args: Vec<String>, prompt| Run {
            model: &model,
            home: home.path(),
            cwd: cwd.path(),
            args,
            prompts: vec![prompt],
            answer: Answer::Allow,
            interrupt_after: None,
            env: Vec::new(),
        };
        let first = run_claude(run(Vec::new(), "[claude:text] Remember the word pomegranate")).await;
        save("resume_first", &first, &model);
        let id = session_id(&first);
        let second = run_claude(run(vec!["--resume".into(), id.clone()], "[claude:text] What was the word?")).await;
        save("resume", &second, &model);
        let last = model.requests().into_iter().rfind(|r| r["stream"] == true).unwrap();
        assert!(last["messages"].to_string().contains("Remember the word pomegranate"), "resumed request: {last}");
        assert_eq!(session_id(&second), id, "the resumed process keeps the session id");
    }
}
