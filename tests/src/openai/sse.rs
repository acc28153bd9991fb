//! OpenAI's Responses stream, encoded: `response.created`, one
//! `output_item.added` … `output_item.done` run per item (message,
//! reasoning, function, custom tool and tool-search calls), each event
//! numbered, then `response.completed` (with the usage) or `response.failed`.
//! What to say is decided in [`super`]; this only writes the frames.

use super::*;

/// A Responses SSE reply being built: events with the pause before each.
pub(super) struct Sse<'a> {
    pub(super) shared: &'a Recorder,
    pub(super) frames: Frames,
    pub(super) response: Value,
    pub(super) output: Vec<Value>,
    pub(super) sequence: u64,
    pub(super) input_tokens: usize,
    pub(super) output_tokens: usize,
    pub(super) reasoning_tokens: usize,
}

impl<'a> Sse<'a> {
    pub(super) fn new(shared: &'a Recorder, id: &str, model: &str, input_tokens: usize) -> Self {
        let response = json!({
            "id": id, "object": "response", "created_at": scripted::now_secs(), "status": "in_progress",
            "model": model, "output": [], "usage": null, "error": null,
        });
        let mut sse = Self {
            shared,
            frames: Frames::default(),
            response: response.clone(),
            output: Vec::new(),
            sequence: 0,
            input_tokens,
            output_tokens: 1,
            reasoning_tokens: 0,
        };
        sse.event("response.created", json!({"response": response.clone()}));
        sse.event("response.in_progress", json!({"response": response}));
        sse
    }

    pub(super) fn event(&mut self, name: &str, data: Value) {
        self.event_after(Duration::ZERO, name, data);
    }

    pub(super) fn event_after(&mut self, pause: Duration, name: &str, mut data: Value) {
        if let Value::Object(map) = &mut data {
            map.insert("type".into(), json!(name));
            map.insert("sequence_number".into(), json!(self.sequence));
        }
        self.sequence += 1;
        self.frames.event(pause, name, &data);
    }

    /// Adds `item` (as it is when done) to the output: `output_item.added`
    /// with `added`, the events of `body(self, item_id, output_index)`, then
    /// `output_item.done`.
    pub(super) fn item(&mut self, added: Value, done: Value, body: impl FnOnce(&mut Self, &str, usize)) {
        let index = self.output.len();
        let id = added.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        self.event("response.output_item.added", json!({"output_index": index, "item": added}));
        body(self, &id, index);
        self.event("response.output_item.done", json!({"output_index": index, "item": done.clone()}));
        self.output.push(done);
    }

    pub(super) fn text(&mut self, pieces: &[String]) {
        self.text_paced(pieces, Duration::ZERO);
    }

    pub(super) fn text_paced(&mut self, pieces: &[String], pause: Duration) {
        let id = self.shared.next_id("msg");
        let full: String = pieces.concat();
        let added = json!({"type": "message", "id": id, "role": "assistant", "status": "in_progress", "content": []});
        let part = json!({"type": "output_text", "text": full, "annotations": []});
        let done =
            json!({"type": "message", "id": id, "role": "assistant", "status": "completed", "content": [part.clone()]});
        self.item(added, done, |sse, id, index| {
            let at = |extra: Value| {
                let mut v = json!({"item_id": id, "output_index": index, "content_index": 0});
                if let (Value::Object(map), Value::Object(extra)) = (&mut v, extra) {
                    map.extend(extra);
                }
                v
            };
            sse.event(
                "response.content_part.added",
                at(json!({"part": {"type": "output_text", "text": "", "annotations": []}})),
            );
            for piece in pieces {
                sse.output_tokens += 1;
                sse.event_after(pause, "response.output_text.delta", at(json!({"delta": piece})));
            }
            sse.event("response.output_text.done", at(json!({"text": full})));
            sse.event("response.content_part.done", at(json!({"part": part})));
        });
    }

    pub(super) fn reasoning(&mut self, pieces: &[&str]) {
        let id = self.shared.next_id("rs");
        let full: String = pieces.concat();
        let added = json!({"type": "reasoning", "id": id, "summary": []});
        let done = json!({
            "type": "reasoning", "id": id,
            "summary": [{"type": "summary_text", "text": full}],
            "encrypted_content": "c2NyaXB0ZWQtcmVhc29uaW5n",
        });
        self.item(added, done, |sse, id, index| {
            let at = |extra: Value| {
                let mut v = json!({"item_id": id, "output_index": index, "summary_index": 0});
                if let (Value::Object(map), Value::Object(extra)) = (&mut v, extra) {
                    map.extend(extra);
                }
                v
            };
            sse.event(
                "response.reasoning_summary_part.added",
                at(json!({"part": {"type": "summary_text", "text": ""}})),
            );
            for piece in pieces {
                sse.reasoning_tokens += 1;
                sse.event("response.reasoning_summary_text.delta", at(json!({"delta": piece})));
            }
            sse.event("response.reasoning_summary_text.done", at(json!({"text": full})));
            sse.event(
                "response.reasoning_summary_part.done",
                at(json!({"part": {"type": "summary_text", "text": full}})),
            );
        });
    }

    pub(super) fn function_call(&mut self, name: &str, arguments: &str) {
        self.streamed_call("function_call", "fc", "arguments", "response.function_call_arguments", name, arguments);
    }

    /// A call whose `field` (`arguments`, `input`) streams in deltas: an
    /// item of `kind` (ids `<prefix>_…`), then `<events>.delta` per piece and `<events>.done`.
    pub(super) fn streamed_call(
        &mut self,
        kind: &str,
        prefix: &str,
        field: &str,
        events: &str,
        name: &str,
        value: &str,
    ) {
        let id = self.shared.next_id(prefix);
        let call_id = self.shared.next_id("call");
        let item = |value: &str, status: &str| json!({"type": kind, "id": id, "call_id": call_id, "name": name, field: value, "status": status});
        self.item(item("", "in_progress"), item(value, "completed"), |sse, id, index| {
            for piece in pieces(value) {
                sse.output_tokens += 1;
                sse.event(&format!("{events}.delta"), json!({"item_id": id, "output_index": index, "delta": piece}));
            }
            sse.event(&format!("{events}.done"), json!({"item_id": id, "output_index": index, field: value}));
        });
    }

    /// A `tool_search_call` (Codex runs the search: `execution: "client"`).
    pub(super) fn tool_search_call(&mut self, arguments: &Value) {
        let id = self.shared.next_id("tsc");
        let call_id = self.shared.next_id("call");
        let item = |status: &str| {
            json!({
                "type": "tool_search_call", "id": id, "call_id": call_id, "execution": "client",
                "arguments": arguments, "status": status,
            })
        };
        self.item(item("in_progress"), item("completed"), |_, _, _| {});
    }

    /// A function call, in `namespace` when given (how deferred tools are called).
    pub(super) fn namespaced_function_call(&mut self, namespace: Option<&str>, name: &str, arguments: &str) {
        let id = self.shared.next_id("fc");
        let call_id = self.shared.next_id("call");
        let mut added = json!({
            "type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": "",
            "status": "in_progress",
        });
        let mut done = json!({
            "type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments,
            "status": "completed",
        });
        if let Some(ns) = namespace {
            added["namespace"] = json!(ns);
            done["namespace"] = json!(ns);
        }
        self.item(added, done, |sse, id, index| {
            sse.event(
                "response.function_call_arguments.done",
                json!({"item_id": id, "output_index": index, "arguments": arguments}),
            );
        });
    }

    pub(super) fn custom_tool_call(&mut self, name: &str, input: &str) {
        self.streamed_call("custom_tool_call", "ctc", "input", "response.custom_tool_call_input", name, input);
    }

    pub(super) fn completed(&mut self) {
        let mut response = self.response.clone();
        response["status"] = json!("completed");
        response["output"] = Value::Array(self.output.clone());
        response["usage"] = usage(self.input_tokens, self.output_tokens + self.reasoning_tokens, self.reasoning_tokens);
        self.event("response.completed", json!({"response": response}));
    }

    pub(super) fn failed(&mut self, code: &str, message: &str) {
        let mut response = self.response.clone();
        response["status"] = json!("failed");
        response["output"] = Value::Array(self.output.clone());
        response["error"] = json!({"code": code, "message": message});
        self.event("response.failed", json!({"response": response}));
    }
}
