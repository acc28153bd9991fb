//! Anthropic's Messages stream, encoded: `message_start`, one
//! `content_block_start`/`_delta`/`_stop` run per block (text, thinking,
//! tool_use), `message_delta` with the usage, `message_stop`. What to say
//! is decided in [`super`]; this only writes the frames.

use super::*;

/// An SSE reply being built: its frames, block index and output tokens.
pub(crate) struct Sse {
    pub(crate) frames: Frames,
    pub(crate) index: usize,
    pub(crate) output_tokens: usize,
}

impl Sse {
    pub(crate) fn new(id: &str, model: &str, input_tokens: usize) -> Self {
        let mut sse = Self { frames: Frames::default(), index: 0, output_tokens: 1 };
        sse.event(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1},
            }}),
        );
        sse.event("ping", json!({"type": "ping"}));
        sse
    }

    pub(crate) fn event(&mut self, name: &str, data: Value) {
        self.event_after(Duration::ZERO, name, data);
    }

    pub(crate) fn event_after(&mut self, pause: Duration, name: &str, data: Value) {
        self.frames.event(pause, name, &data);
    }

    pub(crate) fn block(&mut self, start: Value, deltas: Vec<(Duration, Value)>) {
        let index = self.index;
        self.index += 1;
        self.event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        for (pause, delta) in deltas {
            self.output_tokens += 1;
            self.event_after(
                pause,
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        self.event("content_block_stop", json!({"type": "content_block_stop", "index": index}));
    }

    pub(crate) fn text(&mut self, pieces: &[String]) {
        self.text_paced(pieces, Duration::ZERO);
    }

    pub(crate) fn text_paced(&mut self, pieces: &[String], pause: Duration) {
        let deltas = pieces.iter().map(|p| (pause, json!({"type": "text_delta", "text": p}))).collect();
        self.block(json!({"type": "text", "text": ""}), deltas);
    }

    pub(crate) fn thinking(&mut self, pieces: &[&str]) {
        let mut deltas: Vec<(Duration, Value)> =
            pieces.iter().map(|p| (Duration::ZERO, json!({"type": "thinking_delta", "thinking": p}))).collect();
        deltas.push((Duration::ZERO, json!({"type": "signature_delta", "signature": "c2NyaXB0ZWQtc2lnbmF0dXJl"})));
        self.block(json!({"type": "thinking", "thinking": "", "signature": ""}), deltas);
    }

    pub(crate) fn tool_use(&mut self, id: &str, name: &str, input: &Value) {
        let json_text = input.to_string();
        let mut deltas = vec![(Duration::ZERO, json!({"type": "input_json_delta", "partial_json": ""}))];
        for piece in pieces(&json_text) {
            deltas.push((Duration::ZERO, json!({"type": "input_json_delta", "partial_json": piece})));
        }
        self.block(json!({"type": "tool_use", "id": id, "name": name, "input": {}}), deltas);
    }

    pub(crate) fn finish(&mut self, stop_reason: &str) {
        let output_tokens = self.output_tokens;
        self.event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                   "usage": {"output_tokens": output_tokens}}),
        );
        self.event("message_stop", json!({"type": "message_stop"}));
    }
}
