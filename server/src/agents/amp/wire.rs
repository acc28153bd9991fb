//! What Amp writes that Claude's stream-json types do not cover
//! (Amp 0.0.1767830505-ga62310): its tools' inputs and the JSON inside its
//! tool results' text. The lines themselves are [`crate::agents::claude::wire`]'s.

use serde::Deserialize;

use crate::agents::lenient::Lenient;

/// The fields of a tool's input that tether reads (`create_file`: `path`,
/// `content`; `edit_file`: `path`, `old_str`, `new_str`); each is absent
/// when of another type.
#[derive(Debug, Default, Deserialize)]
pub struct ToolInput {
    #[serde(default)]
    pub path: Lenient<String>,
    #[serde(default)]
    pub content: Lenient<String>,
    #[serde(default)]
    pub old_str: Lenient<String>,
    #[serde(default)]
    pub new_str: Lenient<String>,
}

/// A tool result's text when it is JSON.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ResultJson {
    /// `Bash`: `{"output": "hi\n", "exitCode": 0}`.
    Shell {
        output: String,
        #[serde(default, rename = "exitCode")]
        exit_code: Option<Lenient<i64>>,
    },
    /// `edit_file`: `{"diff": "```diff\n…```", "lineRange": [1, 1]}`.
    Edit { diff: String },
    /// An MCP tool: its content blocks, `[{"type": "text", "text": …}]`.
    Blocks(Vec<TextBlock>),
}

/// One content block of an MCP tool's result.
#[derive(Debug, Deserialize)]
pub struct TextBlock {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Lenient<String>,
}
