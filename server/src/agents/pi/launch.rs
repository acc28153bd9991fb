//! How Pi starts for a session: `pi --mode rpc`, its commands on a stdin
//! pipe, its events on the PTY. A session's `model` of the form
//! `provider/model` is `--provider provider --model model` (anything else is
//! Pi's own `--model` pattern); a stored conversation is reopened with
//! `--session <its file>`. Pi asks no permissions: in `plan` mode it gets
//! only its read-only tools (`--tools read,grep,find,ls`), in every other
//! mode all of them, run without asking. The session's skills folder is
//! `--skill <folder>` (Pi lists each `<name>/SKILL.md` in its system prompt
//! and its model loads one with `read`). tether writes no file of Pi's: its
//! providers, keys and sessions stay in the user's `~/.pi/agent`
//! (`$PI_CODING_AGENT_DIR`).

use std::path::Path;

use tether_protocol::{Part, PermissionMode};

use super::wire::Image;
use crate::agents::LaunchContext;
use crate::process::{LaunchSpec, StdinMode};

/// Pi's read-only built-in tools, for `plan` mode.
pub const READ_ONLY_TOOLS: &str = "read,grep,find,ls";

/// `--provider`/`--model` for a session's `model`: `provider/model` (split at
/// the first `/`, so a model id may hold more) names both; anything else is
/// a pattern Pi resolves itself.
pub fn model_args(model: &str) -> Vec<String> {
    match model.split_once('/') {
        Some((provider, id)) if !provider.is_empty() && !id.is_empty() => {
            vec!["--provider".into(), provider.into(), "--model".into(), id.into()]
        }
        _ => vec!["--model".into(), model.into()],
    }
}

pub fn launch(program: &Path, ctx: &LaunchContext<'_>) -> LaunchSpec {
    let mut args: Vec<String> = vec!["--mode".into(), "rpc".into()];
    if let Some(model) = ctx.model.filter(|m| !m.trim().is_empty()) {
        args.extend(model_args(model.trim()));
    }
    if let Some(session) = ctx.resume {
        // A file path: Pi reopens it (or starts a new conversation there if it is gone).
        args.extend(["--session".into(), session.to_string()]);
    }
    if let Some(skills) = ctx.skills_dir {
        args.extend(["--skill".into(), skills.display().to_string()]);
    }
    if ctx.permission_mode == PermissionMode::Plan {
        args.extend(["--tools".into(), READ_ONLY_TOOLS.into()]);
    }
    LaunchSpec {
        program: program.to_path_buf(),
        args,
        env: vec![],
        // Its protocol on a pipe: a terminal on stdin is for Pi's interactive UI.
        stdin: StdinMode::Pipe,
    }
}

/// A user message as one `prompt`: the text parts joined by blank lines,
/// files and images given by path as `@path` mentions, inline images as
/// Pi's `ImageContent`.
pub fn prompt(parts: &[Part]) -> (String, Vec<Image>) {
    let mut texts = Vec::new();
    let mut images = Vec::new();
    for part in parts {
        match part {
            Part::Text { text } => texts.push(text.clone()),
            Part::Image { mime, data: Some(data), .. } => {
                images.push(Image { kind: "image", data: data.clone(), mime_type: mime.clone() })
            }
            Part::Image { path: Some(path), .. } | Part::File { path } => texts.push(format!("@{path}")),
            Part::Image { .. } => {}
        }
    }
    (texts.join("\n\n"), images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_slash_model_names_both() {
        assert_eq!(model_args("mock/mock-model"), ["--provider", "mock", "--model", "mock-model"]);
        assert_eq!(
            model_args("openrouter/anthropic/claude-sonnet-4"),
            ["--provider", "openrouter", "--model", "anthropic/claude-sonnet-4"]
        );
        assert_eq!(model_args("sonnet:high"), ["--model", "sonnet:high"]);
        assert_eq!(model_args("/odd"), ["--model", "/odd"]);
    }

    #[test]
    fn a_message_is_one_prompt() {
        let parts = vec![
            Part::text("look"),
            Part::File { path: "src/main.rs".into() },
            Part::Image { mime: "image/png".into(), data: Some("AAAA".into()), path: None },
        ];
        let (text, images) = prompt(&parts);
        assert_eq!(text, "look\n\n@src/main.rs");
        assert_eq!(images, [Image { kind: "image", data: "AAAA".into(), mime_type: "image/png".into() }]);
    }
}
