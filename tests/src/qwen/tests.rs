//! Unit tests of Qwen Code's scripted model: what it reads of Qwen's
//! requests (the prompt among reminders, tool results by call id) and the
//! steps of its MCP scripts.

use super::*;

fn reminder_user(prompt: &str) -> Value {
    json!({"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>\nskills\n</system-reminder>"},
        {"type": "text", "text": "<system-reminder>\nI'm currently working in the directory: /work/proj\n</system-reminder>"},
        {"type": "text", "text": prompt},
    ]})
}

fn call(id: &str, name: &str, arguments: Value) -> Value {
    json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}},
    ]})
}

fn result(id: &str, text: &str) -> Value {
    json!({"role": "tool", "tool_call_id": id, "content": [{"type": "text", "text": text}]})
}

fn request(messages: Vec<Value>) -> Value {
    let mut all = vec![json!({"role": "system", "content": "You are Qwen Code"})];
    all.extend(messages);
    json!({"model": QWEN_MODEL, "stream": true, "messages": all, "tools": [
        {"type": "function", "function": {"name": "tool_search"}},
        {"type": "function", "function": {"name": "tool_call"}},
    ]})
}

fn echo_script() -> McpScript {
    McpScript::single("tt", "echo", "hello mcp")
}

#[test]
fn the_prompt_is_the_last_tagged_line_without_reminders() {
    let user = reminder_user("[qwen:400] fail please\n[qwen:text] recovered");
    assert_eq!(latest_segment(&prompt_text(&user)), "[qwen:text] recovered");
    assert_eq!(latest_segment("no tag here "), "no tag here");
    let request = request(vec![reminder_user("[qwen:write] go")]);
    assert_eq!(working_directory(&request), Some(PathBuf::from("/work/proj")));
}

#[test]
fn an_mcp_tool_is_searched_for_then_called_through_tool_call() {
    let first = request(vec![reminder_user("[qwen:mcp:tt:echo] hello mcp")]);
    let search = json!({"query": "select:mcp__tt__echo", "max_results": 1});
    assert_eq!(mcp_step(&first, &echo_script()), Step::Call("tool_search".into(), search.clone()));

    let found = r#"<functions>
<function>{"name":"mcp__tt__echo","description":"echo"}</function>
</functions>"#;
    let after_search = request(vec![
        reminder_user("[qwen:mcp:tt:echo] hello mcp"),
        call("call_1", "tool_search", search.clone()),
        result("call_1", found),
    ]);
    let through = json!({"name": "mcp__tt__echo", "arguments": {"text": "hello mcp"}});
    assert_eq!(mcp_step(&after_search, &echo_script()), Step::Call("tool_call".into(), through.clone()));

    let mut messages = after_search["messages"].as_array().unwrap()[1..].to_vec();
    messages.push(call("call_2", "tool_call", through));
    messages.push(result("call_2", "echo: hello mcp"));
    assert_eq!(mcp_step(&request(messages), &echo_script()), Step::Text("MCP said: echo: hello mcp".into()));
}

#[test]
fn a_tool_the_search_did_not_find_is_not_there_yet() {
    let search = json!({"query": "select:mcp__tt__echo", "max_results": 1});
    let not_found = request(vec![
        reminder_user("[qwen:mcp:tt:echo] hello mcp"),
        call("call_1", "tool_search", search),
        result("call_1", "Not found: mcp__tt__echo"),
    ]);
    let Step::Text(text) = mcp_step(&not_found, &echo_script()) else { panic!("a text step expected") };
    assert!(text.starts_with(NOT_YET), "{text}");
    assert_eq!(text, "No tool mcp__tt__echo yet");
}

#[tokio::test]
async fn serves_text_and_side_replies() {
    let model = ScriptedQwen::start().await;
    let post = |body: Value| {
        let url = format!("{}/v1/chat/completions", model.url());
        async move {
            let response = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, body) = post(request(vec![reminder_user("[qwen:text] hello there")])).await;
    assert_eq!(status, 200);
    let text: String = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Scripted reply: hello there");

    let mut side = request(vec![reminder_user("[qwen:touch] classify this")]);
    side["stream"] = json!(false);
    let (status, body) = post(side).await;
    assert_eq!(status, 200);
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["choices"][0]["message"]["content"], "Scripted side reply.");

    let (status, _) = post(request(vec![reminder_user("[qwen:400] fail")])).await;
    assert_eq!(status, 400);
}
