//! Gemini's `streamGenerateContent?alt=sse` stream, encoded: one
//! `GenerateContentResponse` per `data:` frame, each with one candidate
//! whose `content.parts` hold what that chunk adds (a text piece, a thought
//! piece, a whole function call); the last also carries
//! `finishReason: "STOP"` and the `usageMetadata`. What to say is decided
//! in [`super`]; this only writes the chunks.

use super::*;

/// A streamed reply being built: its chunks (the parts of each, with the
/// pause before it) and token counts.
pub(super) struct Sse {
    response_id: String,
    model: String,
    input_tokens: usize,
    output_tokens: usize,
    thought_tokens: usize,
    chunks: Vec<(Duration, Value)>,
}

impl Sse {
    pub(super) fn new(response_id: &str, model: &str, input_tokens: usize) -> Self {
        Self {
            response_id: response_id.to_owned(),
            model: model.to_owned(),
            input_tokens,
            output_tokens: 0,
            thought_tokens: 0,
            chunks: Vec::new(),
        }
    }

    /// A response with one candidate of `parts`, finished when `finished`.
    fn response(&self, parts: Value, finished: bool) -> Value {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        let mut response = json!({"modelVersion": self.model, "responseId": self.response_id});
        if finished {
            candidate["finishReason"] = json!("STOP");
            let output = self.output_tokens.max(1);
            let mut usage = json!({
                "promptTokenCount": self.input_tokens,
                "candidatesTokenCount": output,
                "totalTokenCount": self.input_tokens + output + self.thought_tokens,
            });
            if self.thought_tokens > 0 {
                usage["thoughtsTokenCount"] = json!(self.thought_tokens);
            }
            response["usageMetadata"] = usage;
        }
        response["candidates"] = json!([candidate]);
        response
    }

    /// The whole reply of a request that is not streamed: one finished response of `parts`.
    pub(super) fn single(mut self, parts: Value) -> Value {
        self.output_tokens += parts.as_array().map_or(1, Vec::len);
        self.response(parts, true)
    }

    pub(super) fn text(&mut self, pieces: &[String]) {
        self.text_paced(pieces, Duration::ZERO);
    }

    /// One chunk per piece, each after `pause`.
    pub(super) fn text_paced(&mut self, pieces: &[String], pause: Duration) {
        for piece in pieces {
            self.output_tokens += 1;
            self.chunks.push((pause, json!([{"text": piece}])));
        }
    }

    /// One chunk per piece, each a `thought: true` part (a thought summary).
    pub(super) fn thought(&mut self, pieces: &[&str]) {
        for piece in pieces {
            self.thought_tokens += 1;
            self.chunks.push((Duration::ZERO, json!([{"text": piece, "thought": true}])));
        }
    }

    /// A chunk of one function call (the API streams a call whole; the
    /// CLI gives it its id).
    pub(super) fn function_call(&mut self, name: &str, args: &Value) {
        self.output_tokens += 1;
        self.chunks.push((Duration::ZERO, json!([{"functionCall": {"name": name, "args": args}}])));
    }

    /// The frames, the last chunk finished (`finishReason`, `usageMetadata`).
    pub(super) fn finish(self) -> Frames {
        self.frames(true)
    }

    /// The frames, none finished: a stream the CLI counts as invalid.
    pub(super) fn unfinished(self) -> Frames {
        self.frames(false)
    }

    fn frames(self, finish: bool) -> Frames {
        let mut frames = Frames::default();
        let last = self.chunks.len().saturating_sub(1);
        for (i, (pause, parts)) in self.chunks.iter().enumerate() {
            let response = self.response(parts.clone(), finish && i == last);
            frames.data(*pause, &response.to_string());
        }
        frames
    }
}
