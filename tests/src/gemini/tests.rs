//! Unit tests of the scripted Gemini model (tags, steps, the workspace,
//! schemas, served scripts).

use super::*;
use crate::scripted::sse_data as chunks;

/// The `<session_context>` block Gemini CLI 0.61.0 puts first in the first user content.
const CONTEXT: &str = "<session_context>\nThis is the Gemini CLI. We are setting up the context for our chat.\n\
My operating system is: linux\n- **Workspace Directories:**\n  - /tmp/proj dir\n- **Directory Structure:**\n\n\
/tmp/proj dir/\n\u{2514}\u{2500}\u{2500}\u{2500}README.md [gemini:400]\n\n</session_context>";

fn request(contents: Value) -> Value {
    json!({
        "contents": contents,
        "tools": [{"functionDeclarations": [
            {"name": "run_shell_command"}, {"name": "write_file"}, {"name": "mcp_tt_echo"}, {"name": "mcp_Tether_mint"},
        ]}],
        "generationConfig": {"temperature": 1, "thinkingConfig": {"includeThoughts": true}},
    })
}

fn user(texts: &[&str]) -> Value {
    json!({"role": "user", "parts": texts.iter().map(|t| json!({"text": t})).collect::<Vec<_>>()})
}

fn call(name: &str, args: Value) -> Value {
    json!({"role": "model", "parts": [{"functionCall": {"id": format!("{name}_1_0"), "name": name, "args": args}}]})
}

fn response(name: &str, response: Value) -> Value {
    json!({"role": "user", "parts": [{"functionResponse": {"id": format!("{name}_1_0"), "name": name, "response": response}}]})
}

fn output(text: &str) -> Value {
    json!({"output": format!("<untrusted_context>\n{text}\n</untrusted_context>")})
}

#[test]
fn tags_and_steps() {
    let p = latest_prompt(&request(json!([user(&[CONTEXT, "Run it [gemini:SHELL]"])])));
    assert_eq!((p.tag.as_str(), p.responses.len(), p.echo().as_str()), ("shell", 0, "Run it"));
    let r = request(json!([
        user(&[CONTEXT, "Run it [gemini:shell]"]),
        call("run_shell_command", json!({"command": "echo x"})),
        response("run_shell_command", output("Output: x\nProcess Group PGID: 7")),
    ]));
    let p = latest_prompt(&r);
    assert_eq!((p.tag.as_str(), p.responses.len()), ("shell", 1));
    assert_eq!(p.last_response(), "Output: x\nProcess Group PGID: 7");
    assert_eq!(command_output(p.last_response()), "x");
    // A later untagged prompt wins over an earlier tagged one (the next turn).
    let r = request(json!([
        user(&[CONTEXT, "[gemini:shell] hi"]),
        {"role": "model", "parts": [{"text": "x"}]},
        user(&["  plain words  "]),
    ]));
    let p = latest_prompt(&r);
    assert_eq!((p.tag.as_str(), p.echo().as_str()), ("text", "plain words"));
    // The tag may be in any text part of the prompt; thoughts are not the prompt.
    let r = request(json!([{"role": "user", "parts": [
        {"text": CONTEXT}, {"text": "first part"}, {"text": "[gemini:write] second", "thought": true}, {"text": "[gemini:touch]"},
    ]}]));
    assert_eq!(latest_prompt(&r).tag, "touch");
    let p = latest_prompt(&request(json!([user(&["[gemini:TEXT]  a very long prompt that goes on and on and on"])])));
    assert_eq!(p.tag, "text");
    assert_eq!(p.echo(), "a very long prompt that goes on and on a");
    assert_eq!(latest_prompt(&json!({})).tag, "text");
}

#[test]
fn responses_and_command_output() {
    assert_eq!(
        response_text(&json!({"error": "Tool \"x\" was canceled by the user."})),
        "Tool \"x\" was canceled by the user."
    );
    assert_eq!(response_text(&output("HELLO")), "HELLO");
    assert_eq!(response_text(&json!({"llmContent": 3})), r#"{"llmContent":3}"#);
    let shell = "Output: line 1\nline 2\nExit Code: 1\nProcess Group PGID: 31345";
    assert_eq!(command_output(shell), "line 1\nline 2");
    assert_eq!(command_output("Output: (empty)\nProcess Group PGID: 1"), "(empty)");
    assert_eq!(command_output(" no fields \n"), "no fields");
}

#[test]
fn workspace_from_the_session_context() {
    assert_eq!(
        working_directory(&request(json!([user(&[CONTEXT, "[gemini:write]"])]))).as_deref(),
        Some("/tmp/proj dir")
    );
    let old = user(&["I'm currently working in the directory: /w/x\nbye"]);
    assert_eq!(working_directory(&request(json!([old]))).as_deref(), Some("/w/x"));
    assert_eq!(working_directory(&request(json!([user(&["[gemini:write]"])]))), None);
}

#[test]
fn values_fit_the_schema() {
    // The model router's schema (when `model.name` is unset).
    let router = json!({"type": "object", "properties": {
        "complexity_reasoning": {"type": "string"}, "complexity_score": {"type": "integer"}},
        "required": ["complexity_reasoning", "complexity_score"]});
    assert_eq!(value_from_schema(&router), json!({"complexity_reasoning": "scripted", "complexity_score": 1}));
    let api = json!({"type": "OBJECT", "properties": {
        "next_speaker": {"type": "STRING", "enum": ["user", "model"]},
        "tags": {"type": "ARRAY", "items": {"type": "NUMBER"}},
        "maybe": {"type": ["null", "boolean"]}, "any": {"anyOf": [{"type": "integer"}]}}});
    assert_eq!(value_from_schema(&api), json!({"next_speaker": "user", "tags": [1], "maybe": false, "any": 1}));
}

#[test]
fn mcp_tools_are_called_as_declared() {
    let step = |contents: Value| {
        let r = request(contents);
        let prompt = latest_prompt(&r);
        let script = mcp_script(TAG_OPEN, &prompt.tag, &prompt.text, &prompt.echo()).unwrap().unwrap();
        mcp_step(&r, &prompt, &script)
    };
    let prompt = user(&[CONTEXT, "[gemini:mcp:tt:echo] hi there"]);
    assert_eq!(step(json!([prompt])), Step::Call("mcp_tt_echo".into(), json!({"text": "hi there"})));
    let answered = json!([
        prompt,
        call("mcp_tt_echo", json!({"text": "hi there"})),
        response("mcp_tt_echo", output("echo: hi there"))
    ]);
    assert_eq!(step(answered), Step::Text("MCP said: echo: hi there".into()));
    let Step::Text(text) = step(json!([user(&["[gemini:mcp:tt:nope]"])])) else { panic!("a text expected") };
    assert_eq!(text, "No tool mcp_tt_nope among: mcp_tt_echo, mcp_Tether_mint");
    // Tags are lower case; the declared name keeps its case. A sequence takes fields of the last response.
    let seq = user(&[r#"[gemini:mcp-seq:Tether] mint ;; echo {"text": "$token"}"#]);
    assert_eq!(step(json!([seq])), Step::Call("mcp_Tether_mint".into(), json!({})));
    let minted =
        json!([seq, call("mcp_Tether_mint", json!({})), response("mcp_Tether_mint", output(r#"{"token":"t-1"}"#))]);
    let Step::Text(text) = step(minted) else { panic!("a text expected") };
    assert!(text.starts_with("No tool mcp_tether_echo among"), "{text}");
}

#[test]
fn paths_name_the_model_and_the_method() {
    assert_eq!(
        model_method("/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
        Some(("gemini-2.5-flash", "streamGenerateContent"))
    );
    assert_eq!(model_method("/v1/models/m:countTokens"), Some(("m", "countTokens")));
    assert_eq!(model_method("/v1beta/models"), None);
    assert_eq!(model_method("/v1beta/models/a/b:generateContent"), None);
}

/// The parts of every chunk, in order.
fn all_parts(chunks: &[Value]) -> Vec<Value> {
    chunks.iter().flat_map(|c| c["candidates"][0]["content"]["parts"].as_array().unwrap().clone()).collect()
}

async fn post(url: &str, method: &str, body: &Value) -> (u16, String, String) {
    let path = format!("{url}/v1beta/models/gemini-2.5-flash:{method}");
    crate::scripted::post_json(&path, &body.to_string()).await
}

#[tokio::test]
async fn serves_scripts() {
    let server = ScriptedGemini::start().await;
    let url = server.url();
    let stream = "streamGenerateContent?alt=sse";

    let (status, kind, text) =
        post(&url, stream, &request(json!([user(&[CONTEXT, "Hello there [gemini:text]"])]))).await;
    assert_eq!((status, kind.as_str()), (200, "text/event-stream"));
    assert!(text.starts_with("data: {"), "{text}");
    let cs = chunks(&text);
    assert!(cs.len() > 1, "several chunks: {text}");
    let said: String = all_parts(&cs).iter().map(|p| p["text"].as_str().unwrap()).collect();
    assert_eq!(said, "Scripted reply: Hello there");
    let (last, before) = cs.split_last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(before
        .iter()
        .all(|c| c["candidates"][0].get("finishReason").is_none() && c.get("usageMetadata").is_none()));
    let usage = &last["usageMetadata"];
    assert_eq!(
        usage["totalTokenCount"].as_u64().unwrap(),
        usage["promptTokenCount"].as_u64().unwrap() + usage["candidatesTokenCount"].as_u64().unwrap()
    );
    assert_eq!(last["modelVersion"], "gemini-2.5-flash");

    // shell: a function call, then (after its response) the text.
    let first = json!([user(&[CONTEXT, "[gemini:shell] go"])]);
    let cs = chunks(&post(&url, stream, &request(first.clone())).await.2);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0]["candidates"][0]["finishReason"], "STOP");
    let fc = &cs[0]["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(
        (fc["name"].as_str(), fc["args"]["command"].as_str()),
        (Some("run_shell_command"), Some("echo scripted-shell-output"))
    );
    let mut second = first.as_array().unwrap().clone();
    second.push(call("run_shell_command", fc["args"].clone()));
    second.push(response("run_shell_command", output("Output: scripted-shell-output\nProcess Group PGID: 9")));
    let cs = chunks(&post(&url, stream, &request(json!(second))).await.2);
    let said: String = all_parts(&cs).iter().map(|p| p["text"].as_str().unwrap()).collect();
    assert_eq!(said, "The command printed: scripted-shell-output");
    assert_eq!(cs.last().unwrap()["candidates"][0]["finishReason"], "STOP");

    // touch: the command's output, without the fields after it.
    let touched = json!([
        user(&[CONTEXT, "[gemini:touch]"]),
        call("run_shell_command", json!({"command": "touch gemini-touched.txt"})),
        response("run_shell_command", output("Output: (empty)\nProcess Group PGID: 9")),
    ]);
    let cs = chunks(&post(&url, stream, &request(touched)).await.2);
    let said: String = all_parts(&cs).iter().map(|p| p["text"].as_str().unwrap()).collect();
    assert_eq!(said, "Touch result: (empty)");

    // write: the absolute path in the workspace.
    let cs = chunks(&post(&url, stream, &request(json!([user(&[CONTEXT, "[gemini:write]"])]))).await.2);
    let args = &cs[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"];
    assert_eq!(args, &json!({"file_path": "/tmp/proj dir/gemini-written.txt", "content": "written by gemini\n"}));

    // reasoning: thoughts, then text; badstream: no finish reason.
    let cs = chunks(&post(&url, stream, &request(json!([user(&["[gemini:reasoning] why"])]))).await.2);
    let parts = all_parts(&cs);
    assert_eq!((parts[0]["thought"].as_bool(), parts.last().unwrap().get("thought")), (Some(true), None));
    assert_eq!(cs.last().unwrap()["usageMetadata"]["thoughtsTokenCount"], 3);
    let cs = chunks(&post(&url, stream, &request(json!([user(&["[gemini:badstream]"])]))).await.2);
    assert!(!cs.is_empty() && cs.iter().all(|c| c["candidates"][0].get("finishReason").is_none()));

    // Injected errors: Google's error JSON.
    for (tag, code, status_text) in
        [("400", 400, "INVALID_ARGUMENT"), ("429", 429, "RESOURCE_EXHAUSTED"), ("500", 500, "INTERNAL")]
    {
        let (status, kind, text) =
            post(&url, stream, &request(json!([user(&[CONTEXT, &format!("[gemini:{tag}] fail")])]))).await;
        assert_eq!((status, kind.as_str()), (code, "application/json"));
        let expected = json!({"error": {"code": code, "message": "scripted failure", "status": status_text}});
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), expected);
    }

    // Not streamed: JSON, from the schema in JSON mode.
    let mut side = request(json!([user(&["[gemini:400] route me"])]));
    side["generationConfig"]["responseJsonSchema"] =
        json!({"type": "object", "properties": {"score": {"type": "integer"}}});
    let (status, kind, text) = post(&url, "generateContent", &side).await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["candidates"][0]["finishReason"], "STOP");
    let said = reply["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(said).unwrap(), json!({"score": 1}));
    let (_, _, text) = post(&url, "generateContent", &request(json!([user(&["hi"])]))).await;
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["candidates"][0]["content"]["parts"][0]["text"], "Scripted side reply.");

    let (status, _, text) = post(&url, "countTokens", &json!({"contents": []})).await;
    assert_eq!((status, serde_json::from_str::<Value>(&text).unwrap()), (200, json!({"totalTokens": 10})));
    let (status, _, text) =
        crate::scripted::post_json(&format!("{url}/v1beta/models/m:streamGenerateContent"), "not json").await;
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["status"], "INVALID_ARGUMENT");
    let models: Value = reqwest::get(format!("{url}/v1beta/models")).await.unwrap().json().await.unwrap();
    assert_eq!(models["models"][0]["name"], "models/gemini-2.5-flash");
    let one: Value = reqwest::get(format!("{url}/v1beta/models/gemini-x")).await.unwrap().json().await.unwrap();
    assert_eq!(one["name"], "models/gemini-x");

    // Model requests: the streamed and the JSON ones (not countTokens, not the body that was no JSON).
    assert_eq!(server.requests().len(), 12);
    assert_eq!(server.all_requests().len(), 16);
    assert_eq!(server.all_requests()[0].api_key, None);
    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(reqwest::Client::new().head(format!("{url}/")).send().await.is_err(), "stopped when dropped");
}

#[tokio::test]
async fn slow_streams_a_tick_every_100_ms() {
    let server = ScriptedGemini::start().await;
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", server.url()))
        .header("x-goog-api-key", "scripted-key")
        .json(&request(json!([user(&["[gemini:slow]"])])))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    use futures_util::StreamExt;
    let first = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.contains(r#""text":"tick 1 ""#), "{first}");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(server.all_requests()[0].api_key.as_deref(), Some("scripted-key"));
}

#[tokio::test]
async fn refuses_connect() {
    crate::scripted::assert_refuses_connect(&ScriptedGemini::start().await, "play.googleapis.com:443").await;
}

#[test]
fn env_writes_the_settings() {
    if std::env::var_os("TETHER_GEMINI_PATH").is_none()
        && !crate::pinned_tools::agents_dir().join(format!("gemini-{GEMINI_VERSION}")).exists()
    {
        eprintln!("skipped: Gemini CLI {GEMINI_VERSION} is not installed (scripts/install-agents)");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(ScriptedGemini::start());
    let home = tempfile::tempdir().unwrap();
    let env = gemini_env(&server, home.path());
    let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    assert_eq!(get("GOOGLE_GEMINI_BASE_URL"), Some(server.url().as_str()));
    assert_eq!(get("GEMINI_CLI_NO_RELAUNCH"), Some("true"));
    assert!(home.path().join("tmp").is_dir());
    let settings = std::fs::read_to_string(home.path().join(".gemini/settings.json")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&settings).unwrap(), gemini_settings());
}
