//! What the host writes on the mock's stdin (Claude Code's stream-json input
//! dialect), decoded into [`Input`]. Pure: no I/O.

use serde::Deserialize;
use serde_json::Value;

/// One decoded stdin line.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A user message: a new turn (queued if one is running).
    User { text: String },
    /// A request from the host, answered with a `control_response`.
    Control { request_id: Value, request: Control },
    /// The host's answer to a `can_use_tool` request the mock made.
    Answer { request_id: Value, answer: Answer },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    Interrupt,
    Initialize,
    /// Any other subtype: answered with an error.
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Allow {
        updated_input: Option<Value>,
        /// Rules to apply, e.g. `{"type":"setMode","mode":"acceptEdits"}`.
        updated_permissions: Vec<Value>,
    },
    Deny {
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    User { message: WireUserMessage },
    ControlRequest { request_id: Value, request: WireControlRequest },
    ControlResponse { response: WireControlResponse },
}

#[derive(Deserialize)]
struct WireUserMessage {
    content: WireContent,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireContent {
    Text(String),
    Blocks(Vec<WireBlock>),
}

#[derive(Deserialize)]
struct WireBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct WireControlRequest {
    subtype: String,
}

#[derive(Deserialize)]
struct WireControlResponse {
    subtype: String,
    request_id: Value,
    #[serde(default)]
    response: Option<WireDecision>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "behavior", rename_all = "lowercase")]
enum WireDecision {
    Allow {
        #[serde(default, rename = "updatedInput")]
        updated_input: Option<Value>,
        #[serde(default, rename = "updatedPermissions")]
        updated_permissions: Option<Vec<Value>>,
    },
    Deny {
        #[serde(default)]
        message: Option<String>,
    },
}

/// Decodes one stdin line. `Ok(None)` for a blank line; `Err` describes a
/// line the mock cannot use (the caller reports it on stderr and goes on).
pub fn parse_line(line: &[u8]) -> Result<Option<Input>, String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let wire: Wire = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let input = match wire {
        Wire::User { message } => Input::User { text: user_text(message.content) },
        Wire::ControlRequest { request_id, request } => {
            let request = match request.subtype.as_str() {
                "interrupt" => Control::Interrupt,
                "initialize" => Control::Initialize,
                _ => Control::Other(request.subtype),
            };
            Input::Control { request_id, request }
        }
        Wire::ControlResponse { response } => {
            let answer = match (response.subtype.as_str(), response.response) {
                ("success", Some(WireDecision::Allow { updated_input, updated_permissions })) => {
                    Answer::Allow { updated_input, updated_permissions: updated_permissions.unwrap_or_default() }
                }
                ("success", Some(WireDecision::Deny { message })) => {
                    Answer::Deny { message: message.unwrap_or_default() }
                }
                ("success", None) => return Err("control_response success without a response".to_string()),
                // The host failed to decide: the tool is not allowed.
                _ => Answer::Deny { message: response.error.unwrap_or_default() },
            };
            Input::Answer { request_id: response.request_id, answer }
        }
    };
    Ok(Some(input))
}

/// All text content of a user message, blocks joined by a newline.
fn user_text(content: WireContent) -> String {
    match content {
        WireContent::Text(text) => text,
        WireContent::Blocks(blocks) => {
            blocks.into_iter().filter(|b| b.kind == "text").filter_map(|b| b.text).collect::<Vec<_>>().join("\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Input {
        parse_line(v.to_string().as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn user_messages() {
        let plain = json!({"type":"user","message":{"role":"user","content":"[mock:tool] go"},"parent_tool_use_id":null,"session_id":""});
        assert_eq!(parse(plain), Input::User { text: "[mock:tool] go".into() });
        let blocks = json!({"type":"user","message":{"role":"user","content":[
            {"type":"text","text":"a"},{"type":"image","source":{}},{"type":"text","text":"b"}]},"session_id":""});
        assert_eq!(parse(blocks), Input::User { text: "a\nb".into() });
    }

    #[test]
    fn control_requests() {
        let v = json!({"type":"control_request","request_id":"r1","request":{"subtype":"interrupt"}});
        assert_eq!(parse(v), Input::Control { request_id: json!("r1"), request: Control::Interrupt });
        let v = json!({"type":"control_request","request_id":"r2","request":{"subtype":"initialize","hooks":null}});
        assert_eq!(parse(v), Input::Control { request_id: json!("r2"), request: Control::Initialize });
        let v = json!({"type":"control_request","request_id":"r3","request":{"subtype":"set_model","model":"x"}});
        assert_eq!(parse(v), Input::Control { request_id: json!("r3"), request: Control::Other("set_model".into()) });
    }

    #[test]
    fn answers() {
        let v = json!({"type":"control_response","response":{"subtype":"success","request_id":"req_1",
            "response":{"behavior":"allow","updatedInput":{"a":1},"updatedPermissions":[{"type":"setMode","mode":"acceptEdits","destination":"session"}]}}});
        assert_eq!(
            parse(v),
            Input::Answer {
                request_id: json!("req_1"),
                answer: Answer::Allow {
                    updated_input: Some(json!({"a":1})),
                    updated_permissions: vec![json!({"type":"setMode","mode":"acceptEdits","destination":"session"})],
                },
            }
        );
        let v = json!({"type":"control_response","response":{"subtype":"success","request_id":"req_2","response":{"behavior":"deny","message":"no"}}});
        assert_eq!(
            parse(v),
            Input::Answer { request_id: json!("req_2"), answer: Answer::Deny { message: "no".into() } }
        );
        let v = json!({"type":"control_response","response":{"subtype":"error","request_id":"req_3","error":"boom"}});
        assert_eq!(
            parse(v),
            Input::Answer { request_id: json!("req_3"), answer: Answer::Deny { message: "boom".into() } }
        );
    }

    #[test]
    fn blank_and_malformed_lines() {
        assert_eq!(parse_line(b"\r\n").unwrap(), None);
        assert!(parse_line(b"not json\n").is_err());
        assert!(parse_line(br#"{"type":"keep_alive"}"#).is_err());
        assert!(parse_line(br#"{"type":"user","message":{}}"#).is_err());
        assert!(parse_line(b"\xff\xfe").is_err());
    }
}
