//! Whole turns driven in-process: a [`Mock`] on a thread, input sent as the
//! host's JSON lines, output read back line by line.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{json, Value};

use super::input::{parse_line, Input};
use super::script::{Config, Exit, Mock};
use super::state::StateFile;
use super::tag::{echo_size_text, fnv1a64};
use super::{ids, Options};

/// A `Write` that sends every complete line over a channel.
struct LineSink {
    tx: Sender<String>,
    buf: Vec<u8>,
}

impl Write for LineSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let had = self.buf.len();
        self.buf.extend_from_slice(data);
        if !data.contains(&b'\n') {
            return Ok(data.len());
        }
        let mut start = 0;
        for i in had..self.buf.len() {
            if self.buf[i] == b'\n' {
                let line = String::from_utf8(self.buf[start..i].to_vec()).map_err(io::Error::other)?;
                let _ = self.tx.send(line);
                start = i + 1;
            }
        }
        self.buf.drain(..start);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Harness {
    input: Sender<Input>,
    lines: Receiver<String>,
    handle: JoinHandle<io::Result<Exit>>,
}

fn start(cfg: Config) -> Harness {
    start_with(cfg, &[])
}

/// Starts the mock with `first` already waiting on its stdin (no race with its first turn).
fn start_with(cfg: Config, first: &[Value]) -> Harness {
    let (input, rx) = mpsc::channel();
    for line in first {
        input.send(decode(line)).unwrap();
    }
    let (tx, lines) = mpsc::channel();
    let handle = thread::spawn(move || Mock::new(cfg, LineSink { tx, buf: Vec::new() }, rx).serve());
    Harness { input, lines, handle }
}

fn decode(line: &Value) -> Input {
    parse_line(format!("{line}\n").as_bytes()).unwrap().unwrap()
}

fn user_line(text: &str) -> Value {
    json!({"type":"user","message":{"role":"user","content":text},"parent_tool_use_id":null,"session_id":""})
}

fn interrupt_line(id: &str) -> Value {
    json!({"type":"control_request","request_id":id,"request":{"subtype":"interrupt"}})
}

impl Harness {
    /// Sends a line as the host writes it (through the real decoder).
    fn send(&self, line: Value) {
        self.input.send(decode(&line)).unwrap();
    }

    fn user(&self, text: &str) {
        self.send(user_line(text));
    }

    fn interrupt(&self, id: &str) {
        self.send(interrupt_line(id));
    }

    fn answer(&self, request_id: &Value, response: Value) {
        self.send(json!({"type":"control_response","response":{"subtype":"success","request_id":request_id,"response":response}}));
    }

    fn next(&self) -> Value {
        let line = self.lines.recv_timeout(Duration::from_secs(30)).expect("a line from the mock");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Lines up to and including the first one that matches.
    fn until(&self, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut lines = Vec::new();
        loop {
            let line = self.next();
            let done = stop(&line);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    fn turn(&self) -> Vec<Value> {
        self.until(|v| v["type"] == "result")
    }

    /// Closes stdin and returns how the mock ended and what it still wrote.
    fn finish(self) -> (Exit, Vec<Value>) {
        drop(self.input);
        let exit = self.handle.join().unwrap().unwrap();
        let rest = self.lines.try_iter().map(|l| serde_json::from_str(&l).unwrap()).collect();
        (exit, rest)
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tether-mock-test-{}", ids::hex(&ids::random_bytes::<8>())));
    fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

fn config(cwd: &Path) -> Config {
    Config {
        session_id: "sess-test".into(),
        model: "mock-model".into(),
        permission_mode: "default".into(),
        cwd: cwd.to_path_buf(),
        turns_done: 0,
        state: None,
        tick: Duration::from_millis(100),
        mcp_servers: vec![],
        skills: vec![],
    }
}

fn kind(v: &Value) -> String {
    let t = v["type"].as_str().unwrap();
    match t {
        "stream_event" => v["event"]["type"].as_str().unwrap().to_string(),
        "system" | "result" => format!("{t}/{}", v["subtype"].as_str().unwrap()),
        "control_request" => format!("control_request/{}", v["request"]["subtype"].as_str().unwrap()),
        _ => t.to_string(),
    }
}

/// Line kinds, runs of deltas collapsed into `delta*`.
fn kinds(lines: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        let k = kind(line);
        if k == "content_block_delta" {
            if out.last().map(String::as_str) != Some("delta*") {
                out.push("delta*".into());
            }
        } else {
            out.push(k);
        }
    }
    out
}

const MESSAGE: [&str; 7] = [
    "message_start",
    "content_block_start",
    "delta*",
    "content_block_stop",
    "assistant",
    "message_delta",
    "message_stop",
];

fn seq(parts: &[&[&str]]) -> Vec<String> {
    parts.iter().flat_map(|p| p.iter().map(|s| s.to_string())).collect()
}

fn deltas(lines: &[Value], field: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["type"] == "stream_event" && l["event"]["type"] == "content_block_delta")
        .filter_map(|l| l["event"]["delta"][field].as_str().map(str::to_string))
        .collect()
}

fn find<'a>(lines: &'a [Value], k: &str) -> &'a Value {
    lines.iter().find(|l| kind(l) == k).unwrap_or_else(|| panic!("no {k} line"))
}

fn find_last<'a>(lines: &'a [Value], k: &str) -> &'a Value {
    lines.iter().rev().find(|l| kind(l) == k).unwrap_or_else(|| panic!("no {k} line"))
}

#[test]
fn text_turns_count_and_echo() {
    let dir = temp_dir();
    let h = start(config(&dir));
    h.user("[mock:text]   hello there  ");
    let lines = h.turn();
    assert_eq!(kinds(&lines), seq(&[&["system/init"], &MESSAGE, &["result/success"]]));

    let init = &lines[0];
    assert_eq!(init["session_id"], "sess-test");
    assert_eq!(init["model"], "mock-model");
    assert_eq!(init["permissionMode"], "default");
    assert_eq!(init["tools"], json!(["Bash", "Write", "AskUserQuestion"]));
    assert_eq!(init["mcp_servers"], json!([]));
    assert_eq!(init["cwd"], dir.to_string_lossy().as_ref());

    let expected = "Mock reply to turn 1: hello there";
    let pieces = deltas(&lines, "text");
    assert!(pieces.len() >= 3 && pieces.iter().all(|p| p.chars().count() <= 8));
    assert_eq!(pieces.concat(), expected);

    let start_msg = find(&lines, "message_start");
    let assistant = find(&lines, "assistant");
    let id = start_msg["event"]["message"]["id"].as_str().unwrap();
    assert!(id.starts_with("msg_"));
    assert_eq!(assistant["message"]["id"], id);
    assert_eq!(assistant["message"]["content"], json!([{"type":"text","text":expected}]));
    assert_eq!(assistant["parent_tool_use_id"], Value::Null);
    assert_eq!(find(&lines, "message_delta")["event"]["delta"]["stop_reason"], "end_turn");
    assert!(lines.iter().all(|l| l["type"] != "stream_event" || l["session_id"] == "sess-test"));

    let result = lines.last().unwrap();
    assert_eq!(result["result"], expected);
    assert_eq!(result["is_error"], false);
    assert_eq!(result["num_turns"], 1);
    assert_eq!(result["stop_reason"], "end_turn");
    assert_eq!(result["usage"]["input_tokens"], 10);
    assert_eq!(result["usage"]["output_tokens"], pieces.len());

    h.user("no tag at all");
    let lines = h.turn();
    assert_eq!(lines.last().unwrap()["result"], "Mock reply to turn 2: no tag at all");
    let (exit, rest) = h.finish();
    assert_eq!(exit, Exit::Eof);
    assert!(rest.is_empty());
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn tool_runs_the_command() {
    let dir = temp_dir();
    let h = start(config(&dir));
    h.user("[mock:tool]");
    let lines = h.turn();
    assert_eq!(kinds(&lines), seq(&[&["system/init"], &MESSAGE, &["user"], &MESSAGE, &["result/success"]]));

    let block = &find(&lines, "content_block_start")["event"]["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "Bash");
    assert_eq!(block["input"], json!({}));
    let tool_id = block["id"].as_str().unwrap();
    assert!(tool_id.starts_with("toolu_"));
    let input = json!({"command":"echo mock-tool-output","description":"Print a line"});
    let partial = deltas(&lines, "partial_json");
    assert!(partial.len() >= 2);
    assert_eq!(serde_json::from_str::<Value>(&partial.concat()).unwrap(), input);
    let first_assistant = find(&lines, "assistant");
    assert_eq!(
        first_assistant["message"]["content"],
        json!([{"type":"tool_use","id":tool_id,"name":"Bash","input":input}])
    );
    assert_eq!(find(&lines, "message_delta")["event"]["delta"]["stop_reason"], "tool_use");

    let user = find(&lines, "user");
    assert_eq!(
        user["message"],
        json!({"role":"user","content":[{"tool_use_id":tool_id,"type":"tool_result","content":"mock-tool-output","is_error":false}]})
    );
    assert_eq!(user["tool_use_result"]["stdout"], "mock-tool-output");
    assert_eq!(user["tool_use_result"]["stderr"], "");
    assert_eq!(user["tool_use_result"]["interrupted"], false);

    let second = find_last(&lines, "assistant");
    assert_ne!(second["message"]["id"], first_assistant["message"]["id"]);
    let result = lines.last().unwrap();
    assert_eq!(result["result"], "The command printed: mock-tool-output");
    assert_eq!(result["num_turns"], 2);
    h.finish();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn permission_allowed_with_updated_input_and_set_mode() {
    let dir = temp_dir();
    let h = start(config(&dir));
    h.user("[mock:permission]");
    let lines = h.until(|v| v["type"] == "control_request");
    assert_eq!(kinds(&lines), seq(&[&["system/init"], &MESSAGE, &["control_request/can_use_tool"]]));
    let path = dir.join("mock-permission.txt");
    let input = json!({"file_path": path.to_string_lossy(), "content": "written by the mock agent\n"});
    let tool_id = find(&lines, "content_block_start")["event"]["content_block"]["id"].clone();
    let request = lines.last().unwrap();
    let request_id = &request["request_id"];
    assert!(request_id.as_str().unwrap().starts_with("req_"));
    assert_eq!(
        request["request"],
        json!({"subtype":"can_use_tool","tool_name":"Write","input":input,"tool_use_id":tool_id,
               "permission_suggestions":[{"type":"setMode","mode":"acceptEdits","destination":"session"}]})
    );
    assert!(!path.exists());

    // An answer to another request is not this one.
    h.answer(&json!("req_other"), json!({"behavior":"deny","message":"wrong"}));
    h.answer(
        request_id,
        json!({"behavior":"allow","updatedInput":{"file_path": path.to_string_lossy(),"content":"edited\n"},
               "updatedPermissions":[{"type":"setMode","mode":"acceptEdits","destination":"session"}]}),
    );
    let lines = h.turn();
    assert_eq!(kinds(&lines), seq(&[&["user"], &MESSAGE, &["result/success"]]));
    let result_block = &lines[0]["message"]["content"][0];
    assert_eq!(result_block["tool_use_id"], tool_id);
    assert_eq!(result_block["is_error"], false);
    assert_eq!(result_block["content"], format!("File created successfully at: {}", path.display()));
    assert_eq!(fs::read_to_string(&path).unwrap(), "edited\n");
    assert_eq!(lines.last().unwrap()["result"], "I wrote the file.");
    assert_eq!(lines.last().unwrap()["permission_denials"], json!([]));

    // The session is now in acceptEdits: no more asking.
    fs::remove_file(&path).unwrap();
    h.user("[mock:permission] again");
    let lines = h.turn();
    assert_eq!(lines[0]["permissionMode"], "acceptEdits");
    assert_eq!(kinds(&lines), seq(&[&["system/init"], &MESSAGE, &["user"], &MESSAGE, &["result/success"]]));
    assert_eq!(fs::read_to_string(&path).unwrap(), "written by the mock agent\n");
    h.finish();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn permission_denied() {
    let dir = temp_dir();
    let h = start(config(&dir));
    h.user("[mock:permission]");
    let request = h.until(|v| v["type"] == "control_request").pop().unwrap();
    h.answer(&request["request_id"], json!({"behavior":"deny","message":"not today"}));
    let lines = h.turn();
    assert_eq!(kinds(&lines), seq(&[&["user"], &MESSAGE, &["result/success"]]));
    let block = &lines[0]["message"]["content"][0];
    assert_eq!(block["is_error"], true);
    assert_eq!(block["content"], "not today");
    let result = lines.last().unwrap();
    assert_eq!(result["result"], "The write was denied.");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["permission_denials"].as_array().unwrap().len(), 1);
    assert!(!dir.join("mock-permission.txt").exists());

    // A deny without a message, and the host failing to answer, are both denials.
    h.user("[mock:permission]");
    let request = h.until(|v| v["type"] == "control_request").pop().unwrap();
    h.answer(&request["request_id"], json!({"behavior":"deny"}));
    let lines = h.turn();
    assert_eq!(lines[0]["message"]["content"][0]["content"], "Permission denied");
    h.user("[mock:permission]");
    let request = h.until(|v| v["type"] == "control_request").pop().unwrap();
    h.send(json!({"type":"control_response","response":{"subtype":"error","request_id":request["request_id"],"error":"host gave up"}}));
    let lines = h.turn();
    assert_eq!(lines[0]["message"]["content"][0]["content"], "host gave up");
    assert!(!dir.join("mock-permission.txt").exists());
    h.finish();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bypass_permissions_writes_without_asking() {
    let dir = temp_dir();
    let h = start(Config { permission_mode: "bypassPermissions".into(), ..config(&dir) });
    h.user("[mock:permission]");
    let lines = h.turn();
    assert_eq!(kinds(&lines), seq(&[&["system/init"], &MESSAGE, &["user"], &MESSAGE, &["result/success"]]));
    assert_eq!(fs::read_to_string(dir.join("mock-permission.txt")).unwrap(), "written by the mock agent\n");
    assert_eq!(lines.last().unwrap()["result"], "I wrote the file.");
    h.finish();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn question_answered_and_rejected() {
    let dir = temp_dir();
    // Questions are asked even when permissions are bypassed.
    let h = start(Config { permission_mode: "bypassPermissions".into(), ..config(&dir) });
    h.user("[mock:question]");
    let lines = h.until(|v| v["type"] == "control_request");
    assert_eq!(kinds(&lines), seq(&[&["system/init"], &MESSAGE, &["control_request/can_use_tool"]]));
    let questions = json!([{"question":"Which colour?","header":"Colour",
        "options":[{"label":"Red","description":"warm"},{"label":"Blue","description":"cool"}],"multiSelect":false}]);
    let block = &find(&lines, "content_block_start")["event"]["content_block"];
    assert_eq!(block["name"], "AskUserQuestion");
    let request = lines.last().unwrap();
    assert_eq!(request["request"]["tool_name"], "AskUserQuestion");
    assert_eq!(request["request"]["input"], json!({"questions": questions}));
    assert_eq!(request["request"]["tool_use_id"], block["id"]);
    h.answer(
        &request["request_id"],
        json!({"behavior":"allow","updatedInput":{"questions":questions,"answers":{"Which colour?":"Blue"}}}),
    );
    let lines = h.turn();
    assert_eq!(kinds(&lines), seq(&[&["user"], &MESSAGE, &["result/success"]]));
    let result_block = &lines[0]["message"]["content"][0];
    assert_eq!(result_block["content"], r#"User has answered your questions: "Which colour?"="Blue"."#);
    assert_eq!(result_block["is_error"], false);
    assert_eq!(lines.last().unwrap()["result"], "You chose: Blue");

    h.user("[mock:question]");
    let request = h.until(|v| v["type"] == "control_request").pop().unwrap();
    h.answer(&request["request_id"], json!({"behavior":"deny","message":"User rejected"}));
    let lines = h.turn();
    assert_eq!(kinds(&lines), seq(&[&["user"], &MESSAGE, &["result/success"]]));
    assert_eq!(lines[0]["message"]["content"][0]["is_error"], true);
    assert_eq!(lines.last().unwrap()["result"], "The question was rejected.");
    h.finish();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn interrupt_during_slow_stops_at_once() {
    let dir = temp_dir();
    let h = start_with(config(&dir), &[user_line("[mock:slow]"), interrupt_line("int_1")]);
    let lines = h.turn();
    assert_eq!(
        kinds(&lines),
        seq(&[&[
            "system/init",
            "message_start",
            "content_block_start",
            "delta*",
            "control_response",
            "assistant",
            "user",
            "result/error_during_execution"
        ]])
    );
    assert_eq!(deltas(&lines, "text"), vec!["tick 1 "]);
    assert_eq!(
        find(&lines, "control_response")["response"],
        json!({"subtype":"success","request_id":"int_1","response":{}})
    );
    let assistant = find(&lines, "assistant");
    assert_eq!(assistant["message"]["content"], json!([{"type":"text","text":"tick 1 "}]));
    assert_eq!(assistant["message"]["id"], find(&lines, "message_start")["event"]["message"]["id"]);
    let result = lines.last().unwrap();
    assert_eq!(result["is_error"], true);
    assert_eq!(result["num_turns"], 1);
    assert_eq!(result["session_id"], "sess-test");

    // The conversation goes on, the interrupted turn counted.
    h.user("after");
    assert_eq!(h.turn().last().unwrap()["result"], "Mock reply to turn 2: after");
    h.finish();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn interrupt_while_waiting_for_permission() {
    let dir = temp_dir();
    let h = start(config(&dir));
    h.user("[mock:permission]");
    h.until(|v| v["type"] == "control_request");
    h.interrupt("int_2");
    let lines = h.turn();
    assert_eq!(kinds(&lines), seq(&[&["control_response", "result/error_during_execution"]]));
    assert_eq!(lines[0]["response"]["request_id"], "int_2");
    assert!(!dir.join("mock-permission.txt").exists());
    h.finish();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn slow_completes_and_queues_the_next_message() {
    let dir = temp_dir();
    let h = start(Config { tick: Duration::from_millis(1), ..config(&dir) });
    h.user("[mock:slow]");
    h.user("queued");
    let lines = h.turn();
    assert_eq!(kinds(&lines), seq(&[&["system/init"], &MESSAGE, &["result/success"]]));
    let pieces = deltas(&lines, "text");
    assert_eq!(pieces.len(), 100);
    assert_eq!(pieces[99], "tick 100 ");
    assert_eq!(lines.last().unwrap()["result"], pieces.concat());
    assert_eq!(h.turn().last().unwrap()["result"], "Mock reply to turn 2: queued");
    h.finish();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn api_error() {
    let dir = temp_dir();
    let h = start(config(&dir));
    h.user("[mock:error]");
    let lines = h.turn();
    assert_eq!(kinds(&lines), seq(&[&["system/init", "assistant", "result/success"]]));
    let text = r#"API Error: 500 {"type":"error","error":{"type":"api_error","message":"mock upstream failure"}}"#;
    let assistant = &lines[1];
    assert_eq!(assistant["isApiErrorMessage"], true);
    assert_eq!(assistant["error"], "unknown");
    assert_eq!(assistant["message"]["model"], "<synthetic>");
    assert_eq!(assistant["message"]["content"], json!([{"type":"text","text":text}]));
    let result = &lines[2];
    assert_eq!(result["is_error"], true);
    assert_eq!(result["result"], text);
    assert_eq!(result["stop_reason"], "stop_sequence");
    h.finish();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn crash_exits_mid_message() {
    let dir = temp_dir();
    let h = start_with(config(&dir), &[user_line("[mock:crash] now"), user_line("never answered")]);
    let (exit, lines) = h.finish();
    assert_eq!(exit, Exit::Crash { code: 3, message: "mock: fatal error, exiting" });
    assert_eq!(kinds(&lines), seq(&[&["system/init", "message_start", "content_block_start", "delta*"]]));
    assert_eq!(deltas(&lines, "text"), vec!["Mock rep", "ly to tu"]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn flood_lines_are_valid_and_complete() {
    let dir = temp_dir();
    let h = start(Config { session_id: "odd\"id\\".into(), ..config(&dir) });
    h.user("[mock:flood:2500]");
    let lines = h.turn();
    assert_eq!(kinds(&lines), seq(&[&["system/init"], &MESSAGE, &["result/success"]]));
    let flood: Vec<&Value> = lines.iter().filter(|l| kind(l) == "content_block_delta").collect();
    assert_eq!(flood.len(), 2500);
    for line in &flood {
        assert_eq!(
            line["event"],
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}})
        );
        assert_eq!(line["session_id"], "odd\"id\\");
        assert_eq!(line["parent_tool_use_id"], Value::Null);
    }
    let uuids: std::collections::HashSet<&str> = flood.iter().map(|l| l["uuid"].as_str().unwrap()).collect();
    assert_eq!(uuids.len(), 2500);
    assert!(uuids.iter().all(|u| u.len() == 36));
    let text = "x".repeat(2500);
    assert_eq!(find(&lines, "assistant")["message"]["content"][0]["text"], text.as_str());
    assert_eq!(lines.last().unwrap()["result"], text.as_str());
    h.finish();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn flood_interrupt_between_batches() {
    let dir = temp_dir();
    let h = start_with(config(&dir), &[user_line("[mock:flood:1000000]"), interrupt_line("int_3")]);
    let lines = h.turn();
    assert_eq!(
        kinds(&lines),
        seq(&[&[
            "system/init",
            "message_start",
            "content_block_start",
            "delta*",
            "control_response",
            "assistant",
            "user",
            "result/error_during_execution"
        ]])
    );
    assert_eq!(deltas(&lines, "text").len(), 1000);
    assert_eq!(find(&lines, "assistant")["message"]["content"][0]["text"], "x".repeat(1000).as_str());
    h.finish();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn echo_size_of_a_large_input() {
    let dir = temp_dir();
    let h = start(config(&dir));
    let text = format!("[mock:echo-size] {}", "é".repeat(150_000));
    h.user(&text);
    let lines = h.turn();
    assert_eq!(kinds(&lines), seq(&[&["system/init"], &MESSAGE, &["result/success"]]));
    let expected = format!("received {} bytes, fnv1a64 {:016x}", text.len(), fnv1a64(text.as_bytes()));
    assert_eq!(expected, echo_size_text(&text));
    assert_eq!(lines.last().unwrap()["result"], expected.as_str());
    assert_eq!(deltas(&lines, "text").concat(), expected);
    h.finish();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn host_requests_between_turns() {
    let dir = temp_dir();
    let h = start(config(&dir));
    h.send(json!({"type":"control_request","request_id":"init_1","request":{"subtype":"initialize"}}));
    let reply = h.next();
    assert_eq!(reply["type"], "control_response");
    assert_eq!(reply["response"]["subtype"], "success");
    assert_eq!(reply["response"]["request_id"], "init_1");
    assert_eq!(reply["response"]["response"]["commands"], json!([]));
    assert_eq!(reply["response"]["response"]["models"], json!([]));
    assert_eq!(reply["response"]["response"]["pid"], std::process::id());
    h.send(json!({"type":"control_request","request_id":7,"request":{"subtype":"set_model","model":"m"}}));
    assert_eq!(h.next()["response"], json!({"subtype":"error","request_id":7,"error":"unsupported"}));
    h.interrupt("idle");
    assert_eq!(h.next()["response"], json!({"subtype":"success","request_id":"idle","response":{}}));
    let (exit, rest) = h.finish();
    assert_eq!(exit, Exit::Eof);
    assert!(rest.is_empty());
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn resume_continues_the_turn_count() {
    let dir = temp_dir();
    let state_dir = dir.join("state");
    let state = StateFile::new(state_dir.clone(), "sess-resume").unwrap();
    let cfg = Config { session_id: "sess-resume".into(), state: Some(state.clone()), ..config(&dir) };
    let h = start(cfg.clone());
    h.user("one");
    h.turn();
    h.user("[mock:slow]");
    h.interrupt("i");
    h.turn();
    h.finish();
    assert_eq!(state.load().unwrap(), 2);
    let saved: Value = serde_json::from_slice(&fs::read(state_dir.join("sess-resume.json")).unwrap()).unwrap();
    assert_eq!(saved, json!({"session_id":"sess-resume","turns":2}));

    let h = start(Config { turns_done: state.load().unwrap(), ..cfg });
    h.user("three");
    let lines = h.turn();
    assert_eq!(lines[0]["session_id"], "sess-resume");
    assert_eq!(lines.last().unwrap()["result"], "Mock reply to turn 3: three");
    h.finish();
    assert_eq!(state.load().unwrap(), 3);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn options() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let opts = Options::parse(&args(&[])).unwrap();
    assert_eq!(opts.resume, None);
    assert_eq!(opts.permission_mode, "default");
    assert_eq!(opts.model, "mock-model");

    let opts = Options::parse(&args(&["--resume", "abc", "--permission-mode=plan", "--model", "m1"])).unwrap();
    assert_eq!(
        (opts.resume.as_deref(), opts.permission_mode.as_str(), opts.model.as_str()),
        (Some("abc"), "plan", "m1")
    );
    assert!(opts.warnings.is_empty());

    // Claude's own flags pass through; unknown ones only warn.
    let claude = args(&[
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
        "acceptEdits",
        "--frobnicate",
    ]);
    let opts = Options::parse(&claude).unwrap();
    assert_eq!(opts.permission_mode, "acceptEdits");
    assert_eq!(opts.warnings, vec!["ignoring unknown option --frobnicate".to_string()]);

    assert!(Options::parse(&args(&["--permission-mode", "yolo"])).is_err());
    assert!(Options::parse(&args(&["--resume"])).is_err());
    assert!(Options::parse(&args(&["--model="])).is_err());
}
