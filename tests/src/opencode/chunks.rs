//! OpenAI's Chat Completions stream, encoded: `chat.completion.chunk`s
//! (role, content and `reasoning_content` deltas, `tool_calls` whose
//! arguments stream), a finish reason, an optional usage chunk, then
//! `[DONE]`; or a whole `chat.completion`. What to say is decided in
//! [`super`] (and by Pi's model, [`crate::pi`]); this only writes the chunks.

use super::*;

/// A Chat Completions SSE reply being built: chunks with the pause before each.
pub(crate) struct Chunks<'a> {
    pub(crate) shared: &'a Recorder,
    pub(crate) id: String,
    pub(crate) model: String,
    pub(crate) created: u64,
    pub(crate) chunks: Vec<(Duration, Value)>,
    pub(crate) prompt_tokens: usize,
    pub(crate) completion_tokens: usize,
    pub(crate) reasoning_tokens: usize,
}

impl<'a> Chunks<'a> {
    pub(crate) fn new(shared: &'a Recorder, model: &str, prompt_tokens: usize) -> Self {
        let mut chunks = Self {
            shared,
            id: shared.next_id("chatcmpl"),
            model: model.to_owned(),
            created: scripted::now_secs(),
            chunks: Vec::new(),
            prompt_tokens,
            completion_tokens: 0,
            reasoning_tokens: 0,
        };
        chunks.delta(Duration::ZERO, json!({"role": "assistant", "content": ""}), None);
        chunks
    }

    pub(crate) fn delta(&mut self, pause: Duration, delta: Value, finish_reason: Option<&str>) {
        let chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        });
        self.chunks.push((pause, chunk));
    }

    pub(crate) fn usage(&self) -> Value {
        let completion = self.completion_tokens.max(1) + self.reasoning_tokens;
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        })
    }

    /// A whole (non-streamed) `chat.completion` with `text`.
    pub(crate) fn completion(&self, text: &str) -> Value {
        json!({
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": self.usage(),
        })
    }

    pub(crate) fn text(&mut self, pieces: &[String], pause: Duration) {
        for piece in pieces {
            self.completion_tokens += 1;
            self.delta(pause, json!({"content": piece}), None);
        }
    }

    pub(crate) fn reasoning(&mut self, pieces: &[&str]) {
        for piece in pieces {
            self.reasoning_tokens += 1;
            self.delta(Duration::ZERO, json!({"reasoning_content": piece}), None);
        }
    }

    pub(crate) fn tool_call(&mut self, name: &str, arguments: &str) {
        let call_id = self.shared.next_id("call");
        self.delta(
            Duration::ZERO,
            json!({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            None,
        );
        for piece in pieces(arguments) {
            self.completion_tokens += 1;
            self.delta(Duration::ZERO, json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), None);
        }
    }

    pub(crate) fn finish(&mut self, reason: &str) {
        self.delta(Duration::ZERO, json!({}), Some(reason));
    }

    /// Streams the chunks (a usage chunk too when asked for), then
    /// `data: [DONE]`, each after its pause; cut short (the connection
    /// aborted) when the server stops.
    pub(crate) fn into_response(mut self, shared: &Recorder, request_id: &str, include_usage: bool) -> Response {
        let mut frames = Frames::default();
        for (pause, chunk) in self.chunks.drain(..) {
            frames.data(pause, &chunk.to_string());
        }
        if include_usage {
            let chunk = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": self.usage(),
            });
            frames.data(Duration::ZERO, &chunk.to_string());
        }
        frames.data(Duration::ZERO, "[DONE]");
        shared.sse_response(frames, request_id)
    }
}
