//! The query parameters of the HTTP API, one struct per route that takes
//! any. The server decodes them (unknown parameters refused) and the OpenAPI
//! document lists their properties as the route's parameters, so the two
//! cannot disagree on a name, a type or a range. The SDK sends the same
//! structs (flags that are off, and fields that are absent, are left out of
//! the query string; such a flag keeps its `default: false` in the schema
//! by `extend`), so client and server share them too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::SessionStatus;
use crate::event::EVENT_TYPES;

/// `GET /v1/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionListQuery {
    /// Only sessions in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SessionStatus>,
    /// Only sessions of this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Sessions per page (50 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
    /// A previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(SESSION_CURSOR_PATTERN))]
    pub cursor: Option<String>,
}

/// What a session list cursor looks like: `<created_at ms>.<session id>`.
/// Only the part up to the dot is checked (anchored at the start only).
pub const SESSION_CURSOR_PATTERN: &str = "^[0-9]{1,18}\\.";

/// A session list cursor's parts (`created_at` in ms, session id), or `None`
/// when it does not match [`SESSION_CURSOR_PATTERN`].
pub fn parse_session_cursor(cursor: &str) -> Option<(i64, &str)> {
    let (at, id) = cursor.split_once('.')?;
    if at.is_empty() || at.len() > 18 || !at.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((at.parse().ok()?, id))
}

/// `DELETE /v1/sessions/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionDeleteQuery {
    /// Also delete the session's history.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("default" = false))]
    pub purge: bool,
}

/// `GET /v1/sessions/{id}/events`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventPageQuery {
    /// The events after this `seq` (0: from the first).
    #[serde(default)]
    pub after: u64,
    /// Events per page (100 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub limit: Option<u32>,
    /// Include each event's native message (`raw`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("default" = false))]
    pub include_raw: bool,
}

/// Every event stream, SSE or WebSocket, of one session or of all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The cursor to resume after (`Last-Event-ID` wins when both are sent):
    /// a `seq` on a session's stream, a `gseq` on the global one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Include each event's native message (`raw`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("default" = false))]
    pub include_raw: bool,
    /// Comma-separated event types: only these are sent (the cursor moves
    /// past the others all the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = stream_types_pattern()))]
    pub types: Option<String>,
}

impl StreamQuery {
    /// The `types` filter: known event types, each once, in the order given;
    /// `Err` names the first that is not one.
    pub fn types(&self) -> Result<Option<Vec<&'static str>>, String> {
        let Some(list) = &self.types else { return Ok(None) };
        let mut types: Vec<&'static str> = Vec::new();
        for t in list.split(',') {
            let Some(known) = EVENT_TYPES.iter().find(|k| **k == t) else {
                return Err(format!(
                    "`types`: {t:?} is not an event type (give a comma-separated list of: {})",
                    EVENT_TYPES.join(", ")
                ));
            };
            if !types.contains(known) {
                types.push(known);
            }
        }
        Ok(Some(types))
    }
}

/// `^(a|b|..)(,(a|b|..))*$` over the event types, dots escaped.
pub fn stream_types_pattern() -> String {
    let one = EVENT_TYPES.iter().map(|t| t.replace('.', "\\.")).collect::<Vec<_>>().join("|");
    format!("^({one})(,({one}))*$")
}

/// The file routes that name one path (`GET /v1/fs/entries`, `stat`,
/// `file`, `upload`, `download`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsPathQuery {
    /// Relative to the workspace root (or absolute inside it), `/`-separated;
    /// `""` (the default) is the root. No NUL byte; names of at most 255 bytes.
    #[serde(default)]
    #[schemars(pattern(FS_PATH_PATTERN))]
    pub path: String,
}

/// A workspace path as the API takes it: no NUL byte. (Names longer than
/// 255 bytes are refused too, `name_too_long`; JSON Schema counts
/// characters, not bytes, so that rule is stated in words.)
pub const FS_PATH_PATTERN: &str = "^[^\\x00]*$";

/// `DELETE /v1/fs/entries`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsDeleteQuery {
    /// The entry to delete (not the root).
    #[schemars(pattern(FS_PATH_PATTERN))]
    pub path: String,
    /// Delete a non-empty directory with everything in it.
    #[serde(default)]
    pub recursive: bool,
}

/// `GET /v1/fs/watch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsWatchQuery {
    /// The directory (or file) to watch; `""` is the root.
    #[serde(default)]
    #[schemars(pattern(FS_PATH_PATTERN))]
    pub path: String,
    /// Watch the whole tree under `path` (the default), or only its entries.
    #[serde(default = "yes")]
    pub recursive: bool,
    /// The change id to resume after (`Last-Event-ID` wins when both are sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
}

fn yes() -> bool {
    true
}

/// `GET /v1/mcp/servers/{name}/tools`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpToolsQuery {
    /// How long to wait for the server, in ms (10000 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 60000))]
    pub timeout_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cursors_are_digits_a_dot_and_an_id() {
        assert_eq!(parse_session_cursor("1765000000000.ses_x"), Some((1765000000000, "ses_x")));
        assert_eq!(parse_session_cursor("12."), Some((12, "")));
        for bad in ["", ".x", "+1.x", "-1.x", "1x.y", "1234567890123456789.x", "12"] {
            assert_eq!(parse_session_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stream_types_are_known_types_without_spaces() {
        let q = |t: &str| StreamQuery { types: Some(t.into()), ..Default::default() };
        assert_eq!(q("turn.started,turn.started,error").types().unwrap(), Some(vec!["turn.started", "error"]));
        for bad in ["", "turn.started,", "turn.started, error", "nope"] {
            assert!(q(bad).types().is_err(), "{bad:?}");
        }
        assert!(stream_types_pattern().starts_with("^(session\\.started|"));
    }
}
