//! The cross-agent conformance table: each scenario (a text turn, a tool
//! call, a permission allowed or denied, a question, an interrupt, a model
//! error, a resume after a killed server, an MCP call, a skill) written once
//! and run against every real agent CLI that has a script for it, each
//! against its own scripted model (`tether_e2e::{anthropic, openai,
//! opencode}`), and against the built-in mock where its `[mock:...]`
//! scripts do the same thing. One test per (scenario, agent), named
//! `conformance::SCENARIO::AGENT`, generated from [`table!`].
//!
//! A scenario makes the checks every agent must pass, then, in a `match` on
//! the agent, the checks an agent's own test made before the table (kept
//! exactly: nothing was dropped when the per-agent copies moved here). Each
//! scenario first asks `GET /v1/agents/{id}` whether the agent claims the
//! capability it exercises. Checks with no cross-agent meaning (install
//! routes, plan mode, the user's own config, broken MCP servers) stay in
//! `claude.rs`, `codex.rs` and `opencode.rs`; the mock agent's turns in
//! `mock_turns.rs`.
//!
//! `every_claiming_agent_runs_each_scenario` keeps the table honest: an
//! installed agent that claims a core scenario's capability is in its row,
//! or in [`GAPS`] with the reason it is not.
//!
//! To add an agent: a rig in [`rigs`] (its scripted model and env), its
//! [`Spec`] (which tags do what), and its name in the rows it passes.
//!
//! Must not: sleep to synchronise (every wait is on an event, with the rig's
//! deadline), or run a scenario more often than the per-agent files did.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tether_e2e::events::*;
use tether_e2e::mcp::McpLog;
use tether_e2e::rig::{install_skill, mcp_statuses, remote_mcp_server, stdio_mcp_server, the_mcp_item, tool_items};
use tether_e2e::rig::{Rig, ScriptedModel};
use tether_e2e::*;
use tether_sdk::{
    Capabilities, Decision, EventBody, ItemKind, ItemStatus, McpServerState, PermissionAction, PermissionMode,
    PermissionReply, QuestionReply, SessionStatus, StopReason, ToolKind,
};

/// The table: each scenario and the agents it runs against. Every row is a
/// module of tests, one per agent: `conformance::text_turn::claude`, ...;
/// the rows are also kept as data ([`TABLE`]) for [`every_claiming_agent_runs_each_scenario`].
macro_rules! table {
    ($($scenario:ident: $($agent:ident),+;)+) => {
        $(mod $scenario {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $agent() {
                    super::$scenario(super::rigs::$agent().await).await;
                }
            )+
        })+

        /// (scenario, the agents it runs against), as in the table.
        const TABLE: &[(&str, &[&str])] = &[$((stringify!($scenario), &[$(stringify!($agent)),+])),+];
    };
}

table! {
    text_turn: claude, codex, opencode, gemini, opencode_acp, claude_acp, codex_acp, qwen, copilot, pi, amp, mock;
    tool_call: claude, codex, opencode, gemini, opencode_acp, claude_acp, codex_acp, qwen, copilot, pi, amp, mock;
    permission_allow: claude, codex, opencode, gemini, opencode_acp, claude_acp, codex_acp, qwen, copilot, mock;
    permission_deny: claude, codex, opencode, gemini, opencode_acp, claude_acp, codex_acp, qwen, copilot, mock;
    shell_permission_allow: claude, codex, opencode, gemini, opencode_acp, claude_acp, codex_acp, qwen, copilot;
    shell_permission_deny: claude, codex, gemini, claude_acp, codex_acp, qwen, copilot;
    question: claude, opencode, mock;
    interrupt: claude, codex, opencode, gemini, opencode_acp, claude_acp, codex_acp, qwen, copilot, pi, amp, mock;
    model_error: claude, codex, opencode, gemini, opencode_acp, claude_acp, codex_acp, qwen, copilot, pi, amp, mock;
    model_error_500: claude;
    resume: claude, codex, opencode, opencode_acp, claude_acp, codex_acp, qwen, copilot, pi, amp, mock;
    reasoning: pi, claude_acp, codex_acp, copilot;
    edit_diff: pi;
    mcp_call: claude, codex, opencode, gemini, opencode_acp, claude_acp, codex_acp, qwen, copilot;
    mcp_sequence: claude, codex, gemini, claude_acp, codex_acp, qwen, copilot;
    mcp_deny: codex, opencode, gemini, opencode_acp, claude_acp, codex_acp, qwen, copilot;
    mcp_remote_bypass: claude, opencode, gemini, opencode_acp, claude_acp, codex_acp, qwen, copilot, amp;
    mcp_global: claude, opencode, gemini, opencode_acp, claude_acp, codex_acp, qwen, amp;
    skill: claude, opencode, pi;
    subagent: claude, claude_acp, codex;
    idle_agent_stop: claude, mock;
}

/// An agent's id as the table names it (a Rust identifier: `opencode_acp` is `opencode-acp`).
fn table_id(ident: &str) -> String {
    ident.replace('_', "-")
}

/// Whether an agent's capabilities claim a scenario.
type Claim = fn(&Capabilities) -> bool;

/// The scenarios of issue 24, each with the capability an agent claims for it.
const CORE: &[(&str, Claim)] = &[
    ("text_turn", text_turns),
    ("tool_call", |c| c.tool_calls),
    ("permission_allow", |c| c.permissions),
    ("permission_deny", |c| c.permissions),
    ("question", |c| c.questions),
    ("interrupt", |c| c.interrupt),
    ("model_error", text_turns),
    ("resume", |c| c.resume),
    ("mcp_call", |c| c.mcp),
    ("skill", |c| c.skills),
];

/// (scenario, agent) pairs an agent claims but the table does not run, and why.
const GAPS: &[(&str, &str, &str)] = &[
    ("question", "codex", "the scripted Responses model has no question script (Codex asks through its own tool)"),
    ("skill", "codex", "Codex has no skill tool: codex.rs checks its skills are listed to the model"),
    ("mcp_call", "mock", "the mock answers `[mock:mcp]` itself, without a permission or an MCP server"),
    ("skill", "mock", "the mock only names the skills it was given (`[mock:skills]`, mock_turns.rs)"),
    (
        "mcp_call",
        "amp",
        "Amp cannot ask over stream-json: its MCP tools run without asking (its rows: mcp_remote_bypass, mcp_global)",
    ),
    (
        "resume",
        "gemini",
        "Gemini CLI 0.61.0 loses a session loaded in the wall-clock minute it was created (its chat recorder \
         reopens the same file); tether then starts a new one and says so (`resume_failed`, acp replay tests)",
    ),
];

/// Every installed agent that claims a core scenario's capability
/// (`GET /v1/agents`) runs it in the table, or is a listed gap.
#[tokio::test]
async fn every_claiming_agent_runs_each_scenario() {
    let env = [
        ("TETHER_CLAUDE_PATH", claude_bin()),
        ("TETHER_CODEX_PATH", codex_bin()),
        ("TETHER_OPENCODE_PATH", opencode_bin()),
        ("TETHER_GEMINI_PATH", gemini_bin()),
        ("TETHER_QWEN_PATH", qwen_bin()),
        ("TETHER_PI_PATH", pi_bin()),
        ("TETHER_CLAUDE_ACP_PATH", claude_acp_bin()),
        ("TETHER_COPILOT_PATH", copilot_bin()),
        ("TETHER_AMP_PATH", amp_bin()),
        ("TETHER_CODEX_ACP_PATH", codex_acp_bin()),
    ];
    let env = env.into_iter().map(|(k, v)| (k.to_owned(), v.display().to_string())).collect();
    let server = TestServer::start_with(ServerOptions { env, ..Default::default() }).await;
    let agents = server.client().agents().await.unwrap().agents;
    let installed: Vec<&str> = agents.iter().filter(|a| a.installed).map(|a| a.id.as_str()).collect();
    let all = [
        "mock",
        "claude",
        "codex",
        "opencode",
        "gemini",
        "opencode-acp",
        "claude-acp",
        "codex-acp",
        "qwen",
        "copilot",
        "pi",
        "amp",
    ];
    for agent in all {
        assert!(installed.contains(&agent), "{agent} is not installed: {installed:?}");
    }
    let mut missing = Vec::new();
    for (scenario, claims) in CORE {
        let row = TABLE.iter().find(|(s, _)| s == scenario).map_or(&[][..], |(_, agents)| *agents);
        for agent in agents.iter().filter(|a| a.installed && claims(&a.capabilities)) {
            let gap = GAPS.iter().any(|(s, a, _)| s == scenario && *a == agent.id);
            if !row.iter().any(|a| table_id(a) == agent.id) && !gap {
                missing.push(format!("{scenario}::{}", agent.id));
            }
        }
    }
    assert!(missing.is_empty(), "claimed but not in the conformance table: {missing:?}");
}

/// Each agent's rig: its scripted model, and the env that runs its CLI against it.
mod rigs {
    use tether_e2e::rig::Rig;
    use tether_e2e::*;

    pub async fn claude() -> Rig<ScriptedAnthropic> {
        Rig::start("claude", ScriptedAnthropic::start().await, claude_env).await
    }

    pub async fn codex() -> Rig<ScriptedOpenAI> {
        Rig::start("codex", ScriptedOpenAI::start().await, codex_env).await
    }

    pub async fn opencode() -> Rig<ScriptedChat> {
        Rig::start("opencode", ScriptedChat::start().await, opencode_env).await.with_turn_timeout(OPENCODE_TURN)
    }

    pub async fn gemini() -> Rig<ScriptedGemini> {
        Rig::start("gemini", ScriptedGemini::start().await, gemini_env).await
    }

    /// OpenCode's ACP mode: the same CLI, config and scripted model as `opencode`.
    pub async fn opencode_acp() -> Rig<ScriptedChat> {
        Rig::start("opencode-acp", ScriptedChat::start().await, opencode_env).await.with_turn_timeout(OPENCODE_TURN)
    }

    /// Claude Code's ACP adapter, running the pinned Claude Code against the same scripted model as `claude`.
    pub async fn claude_acp() -> Rig<ScriptedAnthropic> {
        Rig::start("claude-acp", ScriptedAnthropic::start().await, claude_acp_env).await
    }

    /// Codex's ACP adapter, running the pinned Codex against the same scripted model and config as `codex`.
    pub async fn codex_acp() -> Rig<ScriptedOpenAI> {
        Rig::start("codex-acp", ScriptedOpenAI::start().await, codex_acp_env).await
    }

    pub async fn qwen() -> Rig<ScriptedQwen> {
        Rig::start("qwen", ScriptedQwen::start().await, qwen_env).await
    }

    /// The Copilot CLI over ACP, against the Codex rig's scripted Responses model.
    pub async fn copilot() -> Rig<ScriptedOpenAI> {
        Rig::start("copilot", ScriptedOpenAI::start().await, copilot_env).await
    }

    pub async fn pi() -> Rig<ScriptedPi> {
        Rig::start("pi", ScriptedPi::start().await, pi_env).await
    }

    pub async fn amp() -> Rig<ScriptedAmp> {
        Rig::start("amp", ScriptedAmp::start().await, amp_env).await
    }

    /// The built-in mock agent: no model behind it.
    pub async fn mock() -> Rig<super::NoModel> {
        Rig::start("mock", super::NoModel, |_, _| Vec::new()).await
    }

    /// OpenCode takes a few seconds to start; a turn gets more time than the default.
    pub const OPENCODE_TURN: std::time::Duration = std::time::Duration::from_secs(90);
}

/// The mock agent's model: there is none (it scripts itself).
struct NoModel;

impl ScriptedModel for NoModel {
    fn requests(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }
}

/// What differs between the agents' scripts for the same scenario.
struct Spec {
    /// The pinned CLI version `GET /v1/agents/{id}` must report (none for the mock).
    version: Option<&'static str>,
    /// The text reply to `[AGENT:text] ECHO` in the session's turn N.
    reply: fn(u64, &str) -> String,
    /// A shell call the agent runs without asking: its tag, the mode, and
    /// what its command prints.
    shell: (&'static str, PermissionMode, &'static str),
    /// A file write that asks first: its tag, the file (in the session's
    /// cwd), its content and the action asked for.
    write: (&'static str, &'static str, &'static str, PermissionAction),
    /// A shell command that asks first: its tag, what the request's command
    /// holds, and the file it creates in the session's cwd (if it does).
    shell_ask: (&'static str, &'static str, Option<&'static str>),
    /// A model error: its tag.
    error: &'static str,
    /// How the reply to an answered question starts.
    answered: &'static str,
}

fn scripted_reply(_turn: u64, echo: &str) -> String {
    format!("Scripted reply: {echo}")
}

fn spec(agent: &str) -> Spec {
    match agent {
        "claude" => Spec {
            version: Some(CLAUDE_VERSION),
            reply: scripted_reply,
            shell: ("bash", PermissionMode::Default, "scripted-bash-output"),
            write: ("write", "claude-written.txt", "written by claude\n", PermissionAction::FileWrite),
            shell_ask: ("touch", "touch claude-touched.txt", Some(tether_e2e::anthropic::TOUCHED_FILE)),
            error: "401",
            answered: "Answer seen:",
        },
        "codex" => Spec {
            version: Some(CODEX_VERSION),
            reply: scripted_reply,
            shell: ("shell", PermissionMode::Bypass, "scripted-shell-output"),
            write: ("patch", "codex-patched.txt", "patched by codex\n", PermissionAction::FileEdit),
            shell_ask: ("touch", "touch codex-touched.txt", Some("codex-touched.txt")),
            error: "failed",
            answered: "Answer seen:",
        },
        "opencode" => Spec {
            version: Some(OPENCODE_VERSION),
            reply: scripted_reply,
            shell: ("bash", PermissionMode::Bypass, "scripted-bash-output"),
            write: (
                "write",
                tether_e2e::opencode::WRITTEN_FILE,
                tether_e2e::opencode::WRITTEN_CONTENT,
                PermissionAction::FileEdit,
            ),
            shell_ask: ("bash", "echo scripted-bash-output", None),
            error: "401",
            answered: "Answer seen:",
        },
        // The same CLI and scripted model as `opencode`; it asks to write a new
        // file (the request's diff is from /dev/null) and answers no questions.
        "opencode-acp" => Spec {
            write: (
                "write",
                tether_e2e::opencode::WRITTEN_FILE,
                tether_e2e::opencode::WRITTEN_CONTENT,
                PermissionAction::FileWrite,
            ),
            answered: "",
            ..spec("opencode")
        },
        // The same CLI (behind the adapter) and scripted model as `claude`; its error row is a 500.
        "claude-acp" => Spec { version: Some(CLAUDE_ACP_VERSION), error: "500", answered: "", ..spec("claude") },
        // The same CLI (behind the adapter) and scripted model as `codex`. Tether's default
        // mode is its `read-only`: the patch asks (a new file, so a write), and so does a
        // command that asks to leave the sandbox.
        "codex-acp" => Spec {
            version: Some(CODEX_ACP_VERSION),
            write: ("patch", "codex-patched.txt", "patched by codex\n", PermissionAction::FileWrite),
            shell_ask: ("touch-escalated", "touch codex-touched.txt", Some("codex-touched.txt")),
            answered: "",
            ..spec("codex")
        },
        "mock" => Spec {
            version: None,
            reply: |turn, echo| format!("Mock reply to turn {turn}: {echo}"),
            shell: ("tool", PermissionMode::Default, "mock-tool-output"),
            write: ("permission", "mock-permission.txt", "written by the mock agent\n", PermissionAction::FileWrite),
            shell_ask: ("", "", None),
            error: "error",
            answered: "You chose:",
        },
        "gemini" => Spec {
            version: Some(GEMINI_VERSION),
            reply: scripted_reply,
            // Gemini runs read-only commands (`echo`) without asking.
            shell: ("shell", PermissionMode::Default, "scripted-shell-output"),
            write: ("write", tether_e2e::gemini::WRITTEN_FILE, "written by gemini\n", PermissionAction::FileWrite),
            shell_ask: ("touch", "touch gemini-touched.txt", Some("gemini-touched.txt")),
            error: "400",
            answered: "",
        },
        "qwen" => Spec {
            version: Some(QWEN_VERSION),
            reply: scripted_reply,
            // Qwen runs read-only commands (`echo`) without asking.
            shell: ("shell", PermissionMode::Default, "scripted-shell-output"),
            write: (
                "write",
                tether_e2e::qwen::WRITTEN_FILE,
                tether_e2e::qwen::WRITTEN_CONTENT,
                PermissionAction::FileWrite,
            ),
            shell_ask: ("touch", "touch qwen-touched.txt", Some(tether_e2e::qwen::TOUCHED_FILE)),
            // Qwen retries a 500 for about 100 s; a 400 fails at once.
            error: "400",
            answered: "",
        },
        // The Codex rig's scripted model; Copilot asks before any command (even `echo`)
        // and writes with `apply_patch`, asking with a git diff of the new file.
        "copilot" => Spec {
            version: Some(COPILOT_VERSION),
            reply: scripted_reply,
            shell: ("shell", PermissionMode::Bypass, "scripted-shell-output"),
            write: ("patch", "codex-patched.txt", "patched by codex\n", PermissionAction::FileWrite),
            shell_ask: ("touch", "touch codex-touched.txt", Some("codex-touched.txt")),
            error: "401",
            answered: "",
        },
        // Pi has no permissions and asks no questions: `write` and `shell_ask` are never asked for.
        "pi" => Spec {
            version: Some(PI_VERSION),
            reply: scripted_reply,
            shell: ("bash", PermissionMode::Default, "scripted-bash-output"),
            write: ("write", tether_e2e::pi::WRITTEN_FILE, tether_e2e::pi::WRITTEN_CONTENT, PermissionAction::FileEdit),
            shell_ask: ("", "", None),
            error: "401",
            answered: "",
        },
        // Amp cannot ask over stream-json: `write` and `shell_ask` are never asked for.
        "amp" => Spec {
            version: Some(AMP_VERSION),
            reply: scripted_reply,
            // Amp's own rules let `echo` run without asking.
            shell: ("bash", PermissionMode::Default, "scripted-bash-output"),
            write: (
                "write",
                tether_e2e::amp::WRITTEN_FILE,
                tether_e2e::amp::WRITTEN_CONTENT,
                PermissionAction::FileWrite,
            ),
            shell_ask: ("", "", None),
            error: "401",
            answered: "",
        },
        other => panic!("no conformance spec for {other}"),
    }
}

/// Checks the agent claims `capability` (`GET /v1/agents/{id}`), and answers its spec.
async fn claims<M>(rig: &Rig<M>, what: &str, capability: impl Fn(&Capabilities) -> bool) -> Spec {
    let agent = rig.server.client().agent(rig.agent).await.unwrap();
    assert!(capability(&agent.capabilities), "{} does not claim {what}: {:?}", rig.agent, agent.capabilities);
    spec(rig.agent)
}

/// `[AGENT:TAG] rest`.
fn tagged<M>(rig: &Rig<M>, tag: &str, rest: &str) -> String {
    format!("[{}:{tag}] {rest}", rig.agent)
}

/// Every agent has text turns; `streaming_text` says whether the text comes
/// in pieces: Amp's comes whole, as one delta per message.
fn text_turns(c: &Capabilities) -> bool {
    c.streaming_text || c.tool_calls
}

async fn text_turn<M: ScriptedModel>(rig: Rig<M>) {
    let spec = claims(&rig, "text turns", text_turns).await;
    let agent = rig.server.client().agent(rig.agent).await.unwrap();
    assert!(agent.installed, "{agent:?}");
    if let Some(version) = spec.version {
        assert_eq!(agent.version.as_deref(), Some(version));
    }
    let s = rig.session(PermissionMode::Default).await;
    let echo = format!("hello {}", rig.agent);
    let events = rig.turn(&s.id, &tagged(&rig, "text", &echo)).await;
    let reply = (spec.reply)(1, &echo);
    let started: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::SessionStarted(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 1, "{}", describe(&events));
    let messages = assistant_messages(&events);
    assert_eq!(messages.len(), 1, "{}", describe(&events));
    assert_eq!(item_text(messages[0]), reply);
    assert_eq!(delta_text(&events, &messages[0].item_id), reply);
    let done = the_turn_completed(&events);
    assert_eq!(done.stop_reason, StopReason::EndTurn);
    let session = rig.server.client().get_session(&s.id).await.unwrap();
    assert!(session.native_session_id.is_some());
    match rig.agent {
        "claude" => {
            assert!(started[0].native_session_id.is_some());
            assert_eq!(started[0].agent_version.as_deref(), spec.version);
            assert!(of_type(&events, "item.delta").len() >= 3);
            let usage = done.usage.as_ref().expect("usage on turn.completed");
            assert!(usage.output_tokens.unwrap_or(0) > 0, "{usage:?}");
            assert_eq!(session.status, SessionStatus::Idle);
            assert_eq!(session.native_session_id.as_deref(), started[0].native_session_id.as_deref());
        }
        "codex" => {
            assert!(done.usage.as_ref().and_then(|u| u.output_tokens).unwrap_or(0) > 0, "{done:?}");
            assert!(of_type(&events, "agent.unparsed").is_empty(), "{}", describe(&events));
        }
        // Qwen's token counts come in its chunks' `_meta.usage`.
        "qwen" => {
            assert!(done.usage.as_ref().and_then(|u| u.output_tokens).unwrap_or(0) > 0, "{done:?}");
            assert!(of_type(&events, "agent.unparsed").is_empty(), "{}", describe(&events));
        }
        "amp" => {
            // The native session is Amp's thread; its text comes whole (one delta), with the usage.
            let thread = started[0].native_session_id.as_deref().unwrap_or("");
            assert!(thread.starts_with("T-"), "{:?}", started[0]);
            assert_eq!(of_type(&events, "item.delta").len(), 1, "{}", describe(&events));
            assert!(done.usage.as_ref().and_then(|u| u.output_tokens).unwrap_or(0) > 0, "{done:?}");
            assert!(of_type(&events, "agent.unparsed").is_empty(), "{}", describe(&events));
        }
        "pi" => {
            // The native session is Pi's session file (what `--session` reopens); the model its default.
            let file = started[0].native_session_id.as_deref().unwrap_or("");
            assert!(file.ends_with(".jsonl") && std::path::Path::new(file).is_file(), "{:?}", started[0]);
            assert_eq!(started[0].model.as_deref(), Some("mock/mock-model"));
            assert!(done.usage.as_ref().and_then(|u| u.output_tokens).unwrap_or(0) > 0, "{done:?}");
        }
        _ => {}
    }
}

/// A shell call the agent runs without asking: one shell item with its output.
async fn tool_call<M: ScriptedModel>(rig: Rig<M>) {
    let spec = claims(&rig, "tool calls", |c| c.tool_calls).await;
    let (tag, mode, printed) = spec.shell;
    let s = rig.session(mode).await;
    let events = rig.turn(&s.id, &tagged(&rig, tag, "run it")).await;
    assert!(of_type(&events, "permission.requested").is_empty(), "{}", describe(&events));
    let tools = tool_items(&events);
    assert_eq!(tools.len(), 1, "{}", describe(&events));
    let tool = tools[0].tool.as_ref().unwrap();
    assert_eq!(tool.kind, ToolKind::Shell);
    // Amp's `Bash` names its command `cmd`.
    let command = if rig.agent == "amp" { &tool.input["cmd"] } else { &tool.input["command"] };
    assert!(command.as_str().unwrap_or("").contains(&format!("echo {printed}")), "{tool:?}");
    // Gemini never gives a command's output or exit code to its client (only to its model).
    if rig.agent != "gemini" {
        assert!(tool.output.as_deref().unwrap_or("").contains(printed), "{tool:?}");
    }
    assert_eq!(tools[0].status, ItemStatus::Completed);
    assert!(final_text(&events).contains(printed), "{}", final_text(&events));
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    match rig.agent {
        "claude" | "claude-acp" | "mock" => {
            assert_eq!(tool.name, "Bash");
            assert_eq!(tool.input["command"], format!("echo {printed}").as_str());
            let text = final_text(&events);
            assert!(text.starts_with(&format!("The command printed: {printed}")), "{text}");
        }
        "gemini" => assert_eq!(tool.output, None, "{tool:?}"),
        "amp" => {
            assert_eq!((tool.name.as_str(), tool.exit_code), ("Bash", Some(0)), "{tool:?}");
            assert_eq!(tool.output.as_deref(), Some("scripted-bash-output\n"), "{tool:?}");
        }
        _ => assert_eq!(tool.exit_code, Some(0)),
    }
}

/// A file write that asks first, answered with `decision`: the request
/// (before anything is written), the turn after the answer, and the target.
async fn write_asked<M: ScriptedModel>(rig: &Rig<M>, decision: Decision) -> (Vec<tether_sdk::Event>, PathBuf) {
    let spec = claims(rig, "permissions", |c| c.permissions).await;
    let (tag, file, content, action) = spec.write;
    let client = rig.server.client();
    let s = rig.session(PermissionMode::Default).await;
    let target = PathBuf::from(&s.cwd).join(file);
    client.send_text(&s.id, &tagged(rig, tag, "please")).await.unwrap();
    let asked = rig.until(&s.id, "permission.requested").await;
    let EventBody::PermissionRequested(p) = &asked.body else { unreachable!() };
    assert_eq!(p.action, action);
    assert!(p.diff.as_deref().unwrap_or("").contains(content.trim_end()), "{p:?}");
    assert!(p.item_id.is_some(), "the request names its tool item: {p:?}");
    assert!(!target.exists(), "written before the permission was answered");
    assert_eq!(client.get_session(&s.id).await.unwrap().status, SessionStatus::Waiting);
    if rig.agent == "claude" {
        assert!(p.path.as_deref().unwrap_or("").ends_with(file), "{p:?}");
        assert!(p.diff.as_deref().unwrap_or("").contains("+written by claude"), "{p:?}");
    }
    client.reply_permission(&s.id, &p.permission_id, &PermissionReply { decision, message: None }).await.unwrap();
    let events = rig.until_turn_ends(&s.id, 0).await;
    assert_well_formed(&events);
    assert!(of_type(&events, "agent.unparsed").is_empty(), "{}", describe(&events));
    (events, target)
}

async fn permission_allow<M: ScriptedModel>(rig: Rig<M>) {
    let (events, target) = write_asked(&rig, Decision::AllowOnce).await;
    let content = spec(rig.agent).write.2;
    assert_eq!(std::fs::read_to_string(&target).unwrap(), content);
    let tools = tool_items(&events);
    assert_eq!(tools.len(), 1, "{}", describe(&events));
    assert_eq!(tools[0].status, ItemStatus::Completed);
    assert_eq!(tools[0].tool.as_ref().unwrap().kind, ToolKind::FileEdit);
    assert_eq!(of_type(&events, "permission.resolved").len(), 1);
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn, "{}", describe(&events));
    if rig.agent == "opencode-acp" {
        // The diff it asked with stays on the item (its last update carries only the result).
        let tool = tools[0].tool.as_ref().unwrap();
        assert!(tool.diff.as_deref().unwrap_or("").contains(&format!("+{}", content.trim_end())), "{tool:?}");
        assert!(tool.output.as_deref().unwrap_or("").contains("Wrote file successfully"), "{tool:?}");
    }
    if rig.agent == "qwen" {
        let tool = tools[0].tool.as_ref().unwrap();
        assert!(tool.diff.as_deref().unwrap_or("").contains(&format!("+{}", content.trim_end())), "{tool:?}");
        assert_no_qwen_classifier(&rig);
    }
}

/// Qwen's own default mode (`auto`) asks a model classifier (a request that
/// is not streamed) before a mutating call; tether's default permission
/// mode opens its session in the mode `default`, which asks the user instead.
fn assert_no_qwen_classifier<M: ScriptedModel>(rig: &Rig<M>) {
    let side: Vec<_> = rig.model.requests().into_iter().filter(|r| r["stream"] != serde_json::json!(true)).collect();
    assert!(side.is_empty(), "Qwen asked its classifier: {side:?}");
}

async fn permission_deny<M: ScriptedModel>(rig: Rig<M>) {
    let (events, target) = write_asked(&rig, Decision::Deny).await;
    assert!(!target.exists());
    let tools = tool_items(&events);
    assert_eq!(tools.len(), 1, "{}", describe(&events));
    assert_eq!(tools[0].status, ItemStatus::Declined, "{}", describe(&events));
    let stop = the_turn_completed(&events).stop_reason;
    match rig.agent {
        // OpenCode may end a turn whose only tool was rejected with an error.
        "opencode" => assert!(matches!(stop, StopReason::EndTurn | StopReason::Error)),
        _ => assert_eq!(stop, StopReason::EndTurn, "{}", describe(&events)),
    }
    match rig.agent {
        // Claude's model is told the call was refused, and goes on.
        "claude" => assert!(final_text(&events).starts_with("Write result:"), "{}", final_text(&events)),
        // The adapter's model goes on too; the declined item keeps the diff it asked with.
        "claude-acp" => {
            assert!(final_text(&events).starts_with("Write result:"), "{}", final_text(&events));
            let diff = tools[0].tool.as_ref().unwrap().diff.as_deref().unwrap_or("");
            assert!(diff.starts_with("--- /dev/null") && diff.contains("+written by claude"), "{:?}", tools[0]);
        }
        // Copilot ends its turn itself with a message of its own; the model is not asked again.
        "copilot" => {
            assert_eq!(final_text(&events), "Info: Operation cancelled by user", "{}", describe(&events));
            let asked = rig.model.requests().into_iter().filter(|r| r.to_string().contains("[copilot:patch]")).count();
            assert_eq!(asked, 1, "the model was asked again after the refusal");
        }
        // A rejected call ends OpenCode's turn: the model is not asked again; the item keeps its diff.
        // So does Qwen's (it reports the call failed).
        "opencode-acp" | "qwen" => {
            assert!(assistant_messages(&events).is_empty(), "{}", describe(&events));
            let diff = tools[0].tool.as_ref().unwrap().diff.as_deref().unwrap_or("");
            assert!(diff.starts_with("--- /dev/null"), "{:?}", tools[0]);
        }
        _ => {}
    }
}

/// A shell command that asks first, answered with `decision`.
async fn shell_asked<M: ScriptedModel>(rig: &Rig<M>, decision: Decision) -> (Vec<tether_sdk::Event>, PathBuf) {
    let spec = claims(rig, "permissions", |c| c.permissions).await;
    let (tag, command, _) = spec.shell_ask;
    let client = rig.server.client();
    let s = rig.session(PermissionMode::Default).await;
    client.send_text(&s.id, &tagged(rig, tag, "please")).await.unwrap();
    let asked = rig.until(&s.id, "permission.requested").await;
    let EventBody::PermissionRequested(p) = &asked.body else { unreachable!() };
    assert_eq!(p.action, PermissionAction::Shell);
    assert!(p.command.as_deref().unwrap_or("").contains(command), "{p:?}");
    assert!(p.item_id.is_some(), "{p:?}");
    assert_eq!(client.get_session(&s.id).await.unwrap().status, SessionStatus::Waiting);
    client.reply_permission(&s.id, &p.permission_id, &PermissionReply { decision, message: None }).await.unwrap();
    let events = rig.until_turn_ends(&s.id, 0).await;
    assert_well_formed(&events);
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn, "{}", describe(&events));
    (events, PathBuf::from(&s.cwd))
}

async fn shell_permission_allow<M: ScriptedModel>(rig: Rig<M>) {
    let (events, cwd) = shell_asked(&rig, Decision::AllowOnce).await;
    if rig.agent == "qwen" {
        assert_no_qwen_classifier(&rig);
    }
    match spec(rig.agent).shell_ask.2 {
        Some(touched) => assert!(cwd.join(touched).exists()),
        None => {
            let tools = tool_items(&events);
            assert_eq!(tools.len(), 1, "{}", describe(&events));
            let tool = tools[0].tool.as_ref().unwrap();
            assert_eq!(tool.kind, ToolKind::Shell);
            assert!(tool.output.as_deref().unwrap_or("").contains("scripted-bash-output"), "{tool:?}");
            assert_eq!(tool.exit_code, Some(0));
            assert!(final_text(&events).contains("scripted-bash-output"));
        }
    }
}

async fn shell_permission_deny<M: ScriptedModel>(rig: Rig<M>) {
    let (events, cwd) = shell_asked(&rig, Decision::Deny).await;
    let touched = spec(rig.agent).shell_ask.2.expect("a shell_ask that creates a file");
    assert!(!cwd.join(touched).exists());
    assert!(tool_items(&events).iter().any(|i| i.status == ItemStatus::Declined), "{}", describe(&events));
}

/// A question (`Which colour?`, Red / Blue) answered `Blue`: the model sees the answer.
async fn question<M: ScriptedModel>(rig: Rig<M>) {
    let spec = claims(&rig, "questions", |c| c.questions).await;
    let client = rig.server.client();
    let s = rig.session(PermissionMode::Default).await;
    client.send_text(&s.id, &tagged(&rig, "question", "pick")).await.unwrap();
    let asked = rig.until(&s.id, "question.requested").await;
    let EventBody::QuestionRequested(q) = &asked.body else { unreachable!() };
    assert_eq!(q.questions.len(), 1);
    assert_eq!(q.questions[0].prompt, "Which colour?");
    assert_eq!(q.questions[0].options.iter().map(|o| o.label.as_str()).collect::<Vec<_>>(), vec!["Red", "Blue"]);
    let answer = QuestionReply { answers: Some(vec![vec!["Blue".into()]]), reject: false };
    client.reply_question(&s.id, &q.question_id, &answer).await.unwrap();
    let events = rig.until_turn_ends(&s.id, 0).await;
    assert_eq!(of_type(&events, "question.resolved").len(), 1);
    let text = final_text(&events);
    assert!(text.starts_with(spec.answered) && text.contains("Blue"), "{text}");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
}

/// An interrupt while the model streams slowly ends the turn `interrupted`
/// in time; the next message runs in the same session.
async fn interrupt<M: ScriptedModel>(rig: Rig<M>) {
    let spec = claims(&rig, "interrupt", |c| c.interrupt).await;
    let client = rig.server.client();
    let s = rig.session(PermissionMode::Default).await;
    let mut stream = client.session_events(&s.id, Some(0));
    if rig.agent == "amp" {
        // Amp writes no partial messages: it is interrupted while a command runs (`tail -f /dev/null`).
        client.send_text(&s.id, &tagged(&rig, "hang", "go")).await.unwrap();
        wait_for(
            &mut stream,
            rig.turn_timeout,
            |e| matches!(&e.body, EventBody::ItemStarted(i) if i.item.kind == ItemKind::ToolCall),
        )
        .await;
    } else {
        client.send_text(&s.id, &tagged(&rig, "slow", "go")).await.unwrap();
        wait_for_count(&mut stream, rig.turn_timeout, "item.delta", 3).await;
    }
    let asked = std::time::Instant::now();
    client.interrupt(&s.id).await.unwrap();
    let events = rig.until_turn_ends(&s.id, 0).await;
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::Interrupted, "{}", describe(&events));
    assert_well_formed(&events);
    if rig.agent == "amp" {
        // The command's item ends with the turn, not completed.
        assert!(asked.elapsed() < Duration::from_secs(8), "the interrupt took {:?}", asked.elapsed());
        let tools = tool_items(&events);
        assert_eq!(tools.len(), 1, "{}", describe(&events));
        assert_ne!(tools[0].status, ItemStatus::Completed, "{}", describe(&events));
    } else if rig.agent != "opencode" {
        assert!(asked.elapsed() < Duration::from_secs(8), "the interrupt took {:?}", asked.elapsed());
        let messages = assistant_messages(&events);
        assert!(
            !messages.is_empty() && messages.iter().all(|m| m.status == ItemStatus::Cancelled),
            "{}",
            describe(&events)
        );
    }
    let next = rig.turn(&s.id, &tagged(&rig, "text", "after")).await;
    assert_eq!(final_text(&next), (spec.reply)(2, "after"));
}

/// A model error ends the turn with `error`; the session stays usable.
async fn model_error<M: ScriptedModel>(rig: Rig<M>) {
    let tag = spec(rig.agent).error;
    model_error_of(rig, tag).await;
}

async fn model_error_500<M: ScriptedModel>(rig: Rig<M>) {
    model_error_of(rig, "500").await;
}

async fn model_error_of<M: ScriptedModel>(rig: Rig<M>, tag: &str) {
    let spec = claims(&rig, "text turns", text_turns).await;
    let s = rig.session(PermissionMode::Default).await;
    let events = rig.turn(&s.id, &tagged(&rig, tag, "fail please")).await;
    assert!(!of_type(&events, "error").is_empty(), "{}", describe(&events));
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::Error, "{}", describe(&events));
    if ["opencode-acp", "claude-acp", "codex-acp", "qwen", "copilot"].contains(&rig.agent) {
        // OpenCode's JSON-RPC error names an `APIError`, the Claude adapter's an `errorKind`,
        // Qwen's the HTTP status, Copilot's text opens with `Error: `, the Codex adapter's text
        // comes without a `messageId`: the model failed, not the agent.
        let error = the_turn_completed(&events).error.clone().expect("the turn's error");
        assert_eq!(error.code, "model_error", "{error:?}");
    }
    if rig.agent == "codex-acp" {
        let error = the_turn_completed(&events).error.clone().expect("the turn's error");
        assert!(error.message.contains("scripted failure"), "{error:?}");
    }
    let next = rig.turn(&s.id, &tagged(&rig, "text", "recovered")).await;
    assert_eq!(final_text(&next), (spec.reply)(2, "recovered"));
}

/// Two turns, the server killed (-9) and restarted: the third turn continues
/// the same native conversation, whose whole history reaches the model.
async fn resume<M: ScriptedModel>(mut rig: Rig<M>) {
    let spec = claims(&rig, "resume", |c| c.resume).await;
    let s = rig.session(PermissionMode::Default).await;
    let first = rig.turn(&s.id, &tagged(&rig, "text", "first turn")).await;
    assert_eq!(final_text(&first), (spec.reply)(1, "first turn"));
    let second = rig.turn(&s.id, &tagged(&rig, "text", "second turn")).await;
    assert_eq!(final_text(&second), (spec.reply)(2, "second turn"));
    let native = rig.server.client().get_session(&s.id).await.unwrap().native_session_id.unwrap();
    if rig.agent == "amp" {
        // Amp writes its thread 100 ms after the last change: a crash sooner loses the turn.
        tether_e2e::amp::wait_thread_saved(rig.home(), &native, "second turn", Duration::from_secs(5)).await;
    }

    rig.server.kill9().await;
    wait_no_processes(&s.id, Duration::from_secs(5)).await;
    rig.server.restart().await;
    let after_restart = rig.server.client().get_session(&s.id).await.unwrap();
    assert_eq!(after_restart.status, SessionStatus::Idle);

    let third = rig.turn(&s.id, &tagged(&rig, "text", "third turn")).await;
    assert_eq!(final_text(&third), (spec.reply)(3, "third turn"));
    assert_eq!(rig.server.client().get_session(&s.id).await.unwrap().native_session_id.as_deref(), Some(&*native));
    if rig.agent != "mock" {
        // The model saw the whole conversation: the resumed CLI sent the earlier turns.
        // (Side requests, like the Codex adapter's title request, quote only a prompt.)
        let last = rig.model.agent_requests().into_iter().rfind(|r| r.to_string().contains("third turn"));
        let body = last.expect("no request for the third turn").to_string();
        assert!(body.contains("first turn") && body.contains("second turn"), "the resumed request lacks history");
    }
    let all = read_all(&rig.server.client(), &s.id).await;
    assert_well_formed(&all);
    assert_eq!(of_type(&all, "server.restarted").len(), 1);
}

/// An idle session's agent is stopped after `--agent-idle-secs` (shortened
/// here): `agent.exited` says why, no process of the session is left, the
/// session stays idle, and the next message starts the agent again with the
/// conversation resumed.
async fn idle_agent_stop<M: ScriptedModel>(mut rig: Rig<M>) {
    let spec = claims(&rig, "resume", |c| c.resume).await;
    rig.server.restart_with_args(&["--agent-idle-secs", "2"]).await;
    let client = rig.server.client();
    let s = rig.session(PermissionMode::Default).await;
    let first = rig.turn(&s.id, &tagged(&rig, "text", "first turn")).await;
    assert_eq!(final_text(&first), (spec.reply)(1, "first turn"));
    let after = first.last().unwrap().seq;
    let native = client.get_session(&s.id).await.unwrap().native_session_id;

    let mut stream = client.session_events(&s.id, Some(after));
    let got = wait_for(&mut stream, Duration::from_secs(30), |e| e.event_type() == "agent.exited").await;
    let EventBody::AgentExited(exited) = &got.last().unwrap().body else { unreachable!() };
    assert!(exited.expected, "{exited:?}");
    assert_eq!(exited.reason, Some(tether_sdk::AgentStopReason::Idle), "{exited:?}");
    assert_eq!(exited.idle_ms, Some(2000));
    assert!(of_type(&got, "turn.started").is_empty(), "nothing ran meanwhile: {}", describe(&got));
    wait_no_processes(&s.id, Duration::from_secs(5)).await;
    assert_eq!(client.get_session(&s.id).await.unwrap().status, SessionStatus::Idle);

    let second = rig.turn(&s.id, &tagged(&rig, "text", "second turn")).await;
    assert_eq!(final_text(&second), (spec.reply)(2, "second turn"));
    assert_eq!(client.get_session(&s.id).await.unwrap().native_session_id, native);
    if rig.agent != "mock" {
        // The restarted CLI resumed the conversation: its request holds the first turn.
        let last = rig.model.requests().into_iter().rfind(|r| r.to_string().contains("second turn"));
        let body = last.expect("no request for the second turn").to_string();
        assert!(body.contains("first turn"), "the resumed request lacks the first turn");
    }
    let all = read_all(&client, &s.id).await;
    assert_well_formed(&all);
    assert!(of_type(&all, "server.restarted").is_empty(), "an idle stop is not a restart");
}

/// A reply that thinks first, in a session given the model `provider/model`:
/// the thinking streams as `reasoning` deltas into a reasoning item before
/// the answer. (Pi: `[pi:thinking]`, `reasoning_content` from the model.)
async fn reasoning<M: ScriptedModel>(rig: Rig<M>) {
    claims(&rig, "reasoning", |c| c.reasoning && c.models).await;
    let (tag, model, thought) = match rig.agent {
        "pi" => ("thinking", "mock/mock-model", "Let me think about this scripted request."),
        "claude-acp" => ("thinking", "claude-scripted-model", "Let me think about this scripted request."),
        // Not the model its environment names (`COPILOT_MODEL`): the session's, as `--model`.
        "copilot" => ("reasoning", "gpt-5.5", "Let me think about this scripted request."),
        "codex-acp" => ("reasoning", "gpt-5.4", "Let me think about this scripted request."),
        other => panic!("no reasoning script for {other}"),
    };
    let create = tether_sdk::CreateSession { agent: rig.agent.into(), model: Some(model.into()), ..Default::default() };
    let s = rig.server.client().create_session(&create).await.unwrap();
    let events = rig.turn(&s.id, &tagged(&rig, tag, "why")).await;
    let reasoning: Vec<_> = completed_items(&events).into_iter().filter(|i| i.kind == ItemKind::Reasoning).collect();
    assert_eq!(reasoning.len(), 1, "{}", describe(&events));
    assert_eq!(item_text(reasoning[0]), thought);
    let streamed: String = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ItemDelta(d) if d.item_id == reasoning[0].item_id => match &d.delta {
                tether_sdk::Delta::Reasoning(t) => Some(t.as_str()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(streamed, thought);
    assert_eq!(final_text(&events), "Thought about it: why");
    let EventBody::SessionStarted(started) = &of_type(&events, "session.started")[0].body else { unreachable!() };
    match rig.agent {
        // The Codex adapter's model ids carry the reasoning effort: `gpt-5.4[medium]`.
        "codex-acp" => assert_eq!(started.model.as_deref(), Some(&*format!("{model}[medium]")), "{started:?}"),
        _ => assert_eq!(started.model.as_deref(), Some(model), "{started:?}"),
    }
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    if rig.agent == "codex-acp" {
        // The session's model reached Codex behind the adapter (`CODEX_CONFIG`).
        let asked = rig.model.agent_requests().into_iter().rfind(|r| r.to_string().contains("[codex-acp:reasoning]"));
        assert_eq!(asked.expect("no request for the turn")["model"], model);
    }
    if rig.agent == "claude-acp" || rig.agent == "copilot" {
        // The session's model reached the CLI (`ANTHROPIC_MODEL` behind the adapter; Copilot's `--model`).
        let asked =
            rig.model.requests().into_iter().rfind(|r| r.to_string().contains(&format!("[{}:{tag}]", rig.agent)));
        assert_eq!(asked.expect("no request for the turn")["model"], model);
    }
}

/// A file written, then edited, in two turns of one session: both are
/// `file_edit` items naming the file, the edit carries its diff, and the file
/// holds the edit. (Pi: `[pi:write]`, then `[pi:edit]`.)
async fn edit_diff<M: ScriptedModel>(rig: Rig<M>) {
    claims(&rig, "tool calls", |c| c.tool_calls).await;
    let (file, written, edited, diff) = match rig.agent {
        "pi" => (
            tether_e2e::pi::WRITTEN_FILE,
            tether_e2e::pi::WRITTEN_CONTENT,
            tether_e2e::pi::EDITED_CONTENT,
            // Pi's own diff: `-N old` / `+N new` per changed line.
            "-1 written by pi\n+1 edited by pi",
        ),
        other => panic!("no edit script for {other}"),
    };
    let s = rig.session(PermissionMode::Default).await;
    let target = PathBuf::from(&s.cwd).join(file);
    let first = rig.turn(&s.id, &tagged(&rig, "write", "make it")).await;
    assert_eq!(std::fs::read_to_string(&target).unwrap(), written);
    let second = rig.turn(&s.id, &tagged(&rig, "edit", "change it")).await;
    assert_eq!(std::fs::read_to_string(&target).unwrap(), edited);
    for (events, name) in [(&first, "write"), (&second, "edit")] {
        let tools = tool_items(events);
        assert_eq!(tools.len(), 1, "{}", describe(events));
        let tool = tools[0].tool.as_ref().unwrap();
        assert_eq!((tool.name.as_str(), tool.kind, tools[0].status), (name, ToolKind::FileEdit, ItemStatus::Completed));
        assert_eq!(tool.paths, [file], "{tool:?}");
        assert_eq!(the_turn_completed(events).stop_reason, StopReason::EndTurn);
    }
    let edit = tool_items(&second)[0].tool.clone().unwrap();
    assert_eq!(edit.diff.as_deref(), Some(diff), "{edit:?}");
    assert!(final_text(&second).starts_with("Edit result: Successfully replaced"), "{}", final_text(&second));
}

/// A turn of an MCP script, answering its permission requests with
/// `decision`. Qwen connects a session's MCP servers in the background after
/// its session opens: while its search does not find the tool, its scripted
/// model answers `No tool … yet` ([`tether_e2e::qwen::NOT_YET`]) and the
/// turn is sent again, until the rig's turn deadline.
async fn mcp_turn<M: ScriptedModel>(
    rig: &Rig<M>,
    session: &str,
    prompt: &str,
    decision: Decision,
) -> (Vec<tether_sdk::Event>, Vec<tether_sdk::PermissionRequested>) {
    let deadline = std::time::Instant::now() + rig.turn_timeout;
    loop {
        let (events, asked) = rig.turn_answering(session, prompt, decision).await;
        let not_yet = assistant_texts(&events).last().is_some_and(|t| t.starts_with(tether_e2e::qwen::NOT_YET));
        if rig.agent != "qwen" || !not_yet {
            return (events, asked);
        }
        assert!(std::time::Instant::now() < deadline, "Qwen never found the MCP tool: {}", describe(&events));
    }
}

/// The test MCP server as the session's `tt`, logging to `log`: over stdio,
/// or for an agent that takes only remote servers (Copilot) over streamable
/// HTTP (served while the first value lives); and the label its calls log.
fn tt_server<M>(
    rig: &Rig<M>,
    log: &McpLog,
) -> (Option<McpHttpServer>, BTreeMap<String, tether_sdk::McpServer>, &'static str) {
    if rig.agent == "copilot" {
        let (http, entry) = remote_mcp_server(log.path(), "http");
        return (Some(http), BTreeMap::from([("tt".to_string(), entry)]), "http");
    }
    (None, BTreeMap::from([("tt".to_string(), stdio_mcp_server(log.path(), "stdio", "s3cret"))]), "stdio")
}

/// A session MCP server's `echo`, asked for and allowed: one completed
/// `mcp` item with the server's answer, which the model gets back.
async fn mcp_call<M: ScriptedModel>(rig: Rig<M>) {
    claims(&rig, "mcp", |c| c.mcp).await;
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let (_http, servers, label) = tt_server(&rig, &log);
    let s = rig.session_with(PermissionMode::Default, servers, vec![]).await;
    let (events, asked) = mcp_turn(&rig, &s.id, &tagged(&rig, "mcp:tt:echo", "hello mcp"), Decision::AllowOnce).await;
    assert_eq!(asked.len(), 1, "{}", describe(&events));
    assert_eq!(asked[0].action, PermissionAction::Mcp);
    assert_eq!(asked[0].title, "Call echo on the MCP server tt");
    let item = the_mcp_item(&events, "tt", "echo");
    let tool = item.tool.as_ref().unwrap();
    assert_eq!(tool.input["text"], "hello mcp");
    assert_eq!(tool.output.as_deref(), Some("echo: hello mcp"), "{tool:?}");
    assert_eq!(item.status, ItemStatus::Completed);
    assert_eq!(final_text(&events), "MCP said: echo: hello mcp", "{}", describe(&events));
    let calls = log.calls_of("echo");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!((calls[0]["label"].as_str(), calls[0]["arguments"]["text"].as_str()), (Some(label), Some("hello mcp")));
    if rig.agent != "claude" {
        assert_eq!(asked[0].item_id.as_deref(), Some(item.item_id.as_str()), "the permission names its call");
    }
    match rig.agent {
        "opencode" => {
            assert_eq!(rig.settled_mcp_status(&s.id, "tt").await, (McpServerState::Connected, None));
            // The model was offered the server's tools by their OpenCode names.
            let request = rig.model.agent_requests().into_iter().rfind(|r| r.to_string().contains("hello mcp"));
            let offered = request.unwrap()["tools"].to_string();
            assert!(offered.contains("\"tt_echo\"") && offered.contains("\"tt_whoami\""), "{offered}");
        }
        // ACP reports nothing of an MCP server's connection: no `mcp.status`.
        "gemini" | "opencode-acp" | "claude-acp" | "codex-acp" | "qwen" | "copilot" => {
            let all = read_all(&rig.server.client(), &s.id).await;
            assert!(mcp_statuses(&all).is_empty(), "{}", describe(&all));
        }
        _ => {
            let all = read_all(&rig.server.client(), &s.id).await;
            let connected = ("tt".into(), McpServerState::Connected, None);
            assert!(mcp_statuses(&all).contains(&connected), "{}", describe(&all));
        }
    }
    if rig.agent == "qwen" {
        // Qwen's MCP tools are deferred: searched for by name, then called through `tool_call`.
        let last = rig.model.requests().into_iter().rfind(|r| r.to_string().contains("hello mcp")).unwrap();
        let calls: Vec<(String, String)> = last["messages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["tool_calls"].as_array().cloned().unwrap_or_default())
            .map(|c| (c["function"]["name"].as_str().unwrap().to_owned(), c["function"]["arguments"].to_string()))
            .collect();
        let names: Vec<&str> = calls.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.last(), Some(&"tool_call"), "{calls:?}");
        assert!(names.contains(&"tool_search") && calls.iter().any(|(_, a)| a.contains("select:mcp__tt__echo")));
    }
    if rig.agent == "codex" {
        // Codex asks through an `mcpServer/elicitation/request` of its own kind (`mcp_tool_call`).
        assert_eq!(asked[0].input.as_ref().map(|i| &i["text"]), Some(&serde_json::json!("hello mcp")));
        let searched = tether_e2e::openai::searched_mcp_namespace(&rig.model.requests(), "tt");
        assert!(searched, "no tool_search_output with the namespace mcp__tt reached the model");
    }
}

/// `[AGENT:mcp-seq:tt] mint ;; echo {"text": "$token"}`: `mint`'s JSON
/// result feeds `echo` (the deferred tools searched for first).
async fn mcp_sequence<M: ScriptedModel>(rig: Rig<M>) {
    claims(&rig, "mcp", |c| c.mcp).await;
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let (_http, servers, _) = tt_server(&rig, &log);
    let s = rig.session_with(PermissionMode::Default, servers, vec![]).await;
    let prompt = tagged(&rig, "mcp-seq:tt", r#"mint ;; echo {"text": "$token"}"#);
    let (events, asked) = mcp_turn(&rig, &s.id, &prompt, Decision::AllowOnce).await;
    tether_e2e::rig::assert_minted_token_echoed(&events, &asked, &log);
    if rig.agent == "claude" {
        // Both tools came from one ToolSearch (`select:` takes a comma-separated list).
        let last = rig.model.requests().into_iter().rfind(|r| r.to_string().contains("[claude:mcp-seq:tt]")).unwrap();
        let searches: Vec<serde_json::Value> = last["messages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .filter(|b| b["type"] == "tool_use" && b["name"] == "ToolSearch")
            .map(|b| b["input"]["query"].clone())
            .collect();
        assert_eq!(searches, [serde_json::json!("select:mcp__tt__mint,mcp__tt__echo")]);
    }
}

/// A denied MCP call is one declined `mcp` item and never reaches the server.
async fn mcp_deny<M: ScriptedModel>(rig: Rig<M>) {
    claims(&rig, "mcp", |c| c.mcp).await;
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let (_http, servers, _) = tt_server(&rig, &log);
    let s = rig.session_with(PermissionMode::Default, servers, vec![]).await;
    let (events, asked) = mcp_turn(&rig, &s.id, &tagged(&rig, "mcp:tt:echo", "not this"), Decision::Deny).await;
    assert_eq!(asked.len(), 1, "{}", describe(&events));
    let mcp: Vec<_> = tool_items(&events)
        .into_iter()
        .filter(|i| i.tool.as_ref().is_some_and(|t| t.kind == ToolKind::Mcp && t.name == "echo"))
        .collect();
    assert_eq!(mcp.len(), 1, "{}", describe(&events));
    assert_eq!(mcp[0].status, ItemStatus::Declined, "{:?}", mcp[0]);
    assert!(log.calls().is_empty(), "the denied call reached the server: {:?}", log.calls());
    if rig.agent == "codex" {
        the_mcp_item(&events, "tt", "echo");
        assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    }
}

/// A remote (streamable HTTP) MCP server gets the session's headers; in
/// bypass mode nothing asks.
async fn mcp_remote_bypass<M: ScriptedModel>(rig: Rig<M>) {
    claims(&rig, "mcp", |c| c.mcp).await;
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let (_http, entry) = remote_mcp_server(log.path(), "http");
    let servers = BTreeMap::from([("remote".to_string(), entry)]);
    let s = rig.session_with(PermissionMode::Bypass, servers, vec![]).await;
    let (events, asked) = mcp_turn(&rig, &s.id, &tagged(&rig, "mcp:remote:echo", "over http"), Decision::Deny).await;
    assert!(asked.is_empty(), "bypass asked: {asked:?}");
    let item = the_mcp_item(&events, "remote", "echo");
    assert_eq!(item.tool.as_ref().unwrap().output.as_deref(), Some("echo: over http"));
    let calls = log.calls_of("echo");
    assert_eq!((calls.len(), calls[0]["label"].as_str()), (1, Some("http")), "{calls:?}");
    if rig.agent == "opencode" {
        assert_eq!(rig.settled_mcp_status(&s.id, "remote").await, (McpServerState::Connected, None));
    }
}

/// A global MCP server (`PUT /v1/mcp/servers`) reaches a new session, and
/// the session's own entry of the same name wins over the global one.
async fn mcp_global<M: ScriptedModel>(rig: Rig<M>) {
    claims(&rig, "mcp", |c| c.mcp).await;
    let client = rig.server.client();
    let dir = tempfile::tempdir().unwrap();
    let global_log = McpLog::new(dir.path().join("global.jsonl"));
    let own_log = McpLog::new(dir.path().join("own.jsonl"));
    client.put_mcp_server("shared", &stdio_mcp_server(global_log.path(), "global", "g")).await.unwrap();
    client.put_mcp_server("over", &stdio_mcp_server(global_log.path(), "global-over", "g")).await.unwrap();
    let own = BTreeMap::from([("over".to_string(), stdio_mcp_server(own_log.path(), "own-over", "o"))]);
    // Claude's old test ran in bypass; OpenCode's asked and checked the request.
    let mode = if rig.agent == "claude" { PermissionMode::Bypass } else { PermissionMode::Default };
    let s = rig.session_with(mode, own, vec![]).await;
    let prompt = tagged(&rig, "mcp:shared:echo", "via the global");
    let (events, asked) = mcp_turn(&rig, &s.id, &prompt, Decision::AllowOnce).await;
    if rig.agent == "opencode" || rig.agent == "opencode-acp" {
        assert_eq!(asked.len(), 1, "a global server's tools ask too: {}", describe(&events));
        assert_eq!(asked[0].title, "Call echo on the MCP server shared");
    }
    assert_eq!(
        the_mcp_item(&events, "shared", "echo").tool.as_ref().unwrap().output.as_deref(),
        Some("echo: via the global")
    );
    let (events, _) = mcp_turn(&rig, &s.id, &tagged(&rig, "mcp:over:echo", "which one"), Decision::AllowOnce).await;
    the_mcp_item(&events, "over", "echo");
    let labels = |log: &McpLog| {
        log.calls_of("echo").iter().map(|c| c["label"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(labels(&global_log), vec!["global"]);
    assert_eq!(labels(&own_log), vec!["own-over"], "the session's own entry wins over the global one");
    if rig.agent == "opencode" {
        assert_eq!(rig.settled_mcp_status(&s.id, "shared").await, (McpServerState::Connected, None));
    }
}

/// An agent that takes no MCP servers (Pi) runs beside the global ones
/// (they are for the sessions that can take them), and a session that
/// gives it its own is refused with a sentence saying what to remove.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_takes_no_mcp_runs_beside_global_servers_and_refuses_its_own() {
    let rig = rigs::pi().await;
    let client = rig.server.client();
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("global.jsonl"));
    client.put_mcp_server("shared", &stdio_mcp_server(log.path(), "global", "g")).await.unwrap();
    let s = rig.session(PermissionMode::Default).await;
    let events = rig.turn(&s.id, &tagged(&rig, "text", "beside a global server")).await;
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn, "{}", describe(&events));
    assert!(mcp_statuses(&events).is_empty(), "{}", describe(&events));
    let own = BTreeMap::from([("mine".to_string(), stdio_mcp_server(log.path(), "own", "o"))]);
    let create = tether_sdk::CreateSession { agent: "pi".into(), mcp_servers: own, ..Default::default() };
    let err = client.create_session(&create).await.unwrap_err();
    let tether_sdk::Error::Api { status, problem, .. } = &err else { panic!("{err:?}") };
    assert_eq!((*status, problem.code()), (400, "invalid_request"), "{err:?}");
    assert!(problem.detail.contains("pi agent takes no local (stdio) MCP servers: remove `mine`"), "{problem:?}");
}

/// Copilot takes only remote MCP servers (it drops a stdio one from
/// `session/new`, as its `mcpCapabilities` say): `GET /v1/agents` says it
/// claims MCP, and a session that gives it a stdio server of its own is
/// refused with a sentence saying what to remove.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copilot_refuses_a_sessions_own_stdio_mcp_server() {
    let rig = rigs::copilot().await;
    let client = rig.server.client();
    assert!(client.agent("copilot").await.unwrap().capabilities.mcp);
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("own.jsonl"));
    let own = BTreeMap::from([("mine".to_string(), stdio_mcp_server(log.path(), "own", "o"))]);
    let create = tether_sdk::CreateSession { agent: "copilot".into(), mcp_servers: own, ..Default::default() };
    let err = client.create_session(&create).await.unwrap_err();
    let tether_sdk::Error::Api { status, problem, .. } = &err else { panic!("{err:?}") };
    assert_eq!((*status, problem.code()), (400, "invalid_request"), "{err:?}");
    assert!(problem.detail.contains("copilot agent takes no local (stdio) MCP servers: remove `mine`"), "{problem:?}");
}

/// A subagent (`[AGENT:agent]`: Claude's `Agent` tool running a
/// general-purpose subagent whose prompt is `[claude:bash]`): the
/// subagent's Bash call is an item whose `parent_item_id` is the Agent
/// call's item from its first event; the Agent call and the main agent's
/// answer have none. (Claude Code marks every line of its subagent with the
/// Agent call's id, `parent_tool_use_id`; the Claude adapter sends the
/// subagent's calls on the session, marked `parentToolUseId`. Codex:
/// `spawn_agent` of a subagent whose task is `[codex:shell]`, the
/// subagent's items on a thread of its own.)
async fn subagent<M: ScriptedModel>(rig: Rig<M>) {
    claims(&rig, "tool calls", |c| c.tool_calls).await;
    // (the subagent's tool call, and what it printed)
    let (call, printed) = match rig.agent {
        // Codex's `spawn_agent` (its `multi_agent_v2` feature) runs a subagent whose
        // task is `[codex:shell]`; its shell call is a `shell` item.
        "codex" => {
            let config = rig.home().join(".codex/config.toml");
            let text = std::fs::read_to_string(&config).unwrap();
            std::fs::write(&config, text.replace("[features]\n", "[features]\nmulti_agent_v2 = true\n")).unwrap();
            ("shell", "scripted-shell-output")
        }
        _ => ("Bash", "scripted-bash-output"),
    };
    let s = rig.session(PermissionMode::Default).await;
    // (Codex's subagent asks before its shell call, as Codex does in tether's default mode.)
    let (events, _) = rig.turn_answering(&s.id, &tagged(&rig, "agent", "check the shell"), Decision::AllowOnce).await;
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn, "{}", describe(&events));
    let tools = tool_items(&events);
    let named = |name: &str| tools.iter().find(|i| i.tool.as_ref().is_some_and(|t| t.name == name)).copied();
    let agent = tools
        .iter()
        .find(|i| i.tool.as_ref().is_some_and(|t| t.kind == ToolKind::Task))
        .unwrap_or_else(|| panic!("no task item:\n{}", describe(&events)));
    assert_eq!((agent.parent_item_id.as_deref(), agent.status), (None, ItemStatus::Completed), "{agent:?}");
    assert!(["Agent", "Task", "spawn_agent"].contains(&agent.tool.as_ref().unwrap().name.as_str()), "{agent:?}");
    let bash =
        named(call).unwrap_or_else(|| panic!("the subagent's {call} call is not an item:\n{}", describe(&events)));
    assert_eq!(bash.parent_item_id.as_deref(), Some(agent.item_id.as_str()), "{}", describe(&events));
    let output = bash.tool.as_ref().unwrap().output.clone().unwrap_or_default();
    assert!(output.contains(printed), "{bash:?}");
    let started: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ItemStarted(i) if i.item.item_id == bash.item_id => Some(&i.item),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].parent_item_id.as_deref(), Some(agent.item_id.as_str()), "from its first event");
    let messages = assistant_messages(&events);
    let last = messages.last().unwrap();
    assert_eq!(last.parent_item_id, None);
    assert!(item_text(last).starts_with("Subagent said:"), "{}", describe(&events));
    if rig.agent == "claude" {
        // Claude Code 2.1.330 streams a subagent's tool calls, not its final
        // text: the subagent hands back through the Task call's output.
        let handed_back = agent.tool.as_ref().unwrap().output.clone().unwrap_or_default();
        assert!(handed_back.contains("Subagent hand"), "{agent:?}");
        assert_eq!(bash.tool.as_ref().unwrap().output.as_deref().map(str::trim), Some("scripted-bash-output"));
    }
}

/// A skill given to the session is listed to the model, and the agent's
/// skill tool loads its body.
async fn skill<M: ScriptedModel>(rig: Rig<M>) {
    claims(&rig, "skills", |c| c.skills).await;
    if rig.agent == "opencode" {
        assert!(
            tether_e2e::opencode::ripgrep().is_some(),
            "OpenCode's skill tool needs rg: run scripts/install-agents"
        );
    }
    let client = rig.server.client();
    install_skill(&client, "tester-skill", "Checks the frobnicator before every release", "FROBNICATE-CAREFULLY-42")
        .await;
    // Claude's old test ran in bypass (its Skill tool asks otherwise); OpenCode's in default.
    let mode = if rig.agent == "claude" { PermissionMode::Bypass } else { PermissionMode::Default };
    let s = rig.session_with(mode, BTreeMap::new(), vec!["tester-skill".into()]).await;
    let prompt = tagged(&rig, "skill:tester-skill", "go");
    let (events, _) = rig.turn_answering(&s.id, &prompt, Decision::AllowOnce).await;
    // Pi has no skill tool: its model reads the SKILL.md it lists.
    let tool_name = match rig.agent {
        "claude" => "Skill",
        "pi" => "read",
        _ => "skill",
    };
    let skill: Vec<_> =
        tool_items(&events).into_iter().filter(|i| i.tool.as_ref().is_some_and(|t| t.name == tool_name)).collect();
    assert_eq!(skill.len(), 1, "{}", describe(&events));
    assert_eq!(skill[0].status, ItemStatus::Completed, "{:?}", skill[0]);
    match rig.agent {
        "claude" => {
            let listed = rig.model.requests().iter().any(|r| {
                let t = r.to_string();
                t.contains("tether:tester-skill") && t.contains("Checks the frobnicator before every release")
            });
            assert!(listed, "no model request lists the skill");
            // The skill's body reached the model after the tool ran.
            let last = rig.model.requests().into_iter().rfind(|r| r.to_string().contains(&prompt));
            let last = last.unwrap().to_string();
            assert!(last.contains("FROBNICATE-CAREFULLY-42"), "the skill body never reached the model");
            assert!(final_text(&events).starts_with("Skill said:"), "{}", final_text(&events));
        }
        _ => {
            let first = rig.model.agent_requests().into_iter().find(|r| r.to_string().contains(&prompt));
            let system = tether_e2e::opencode::system_text(&first.expect("a model request of the turn"));
            assert!(
                system.contains("<available_skills>")
                    && system.contains("<name>tester-skill</name>")
                    && system.contains("<description>Checks the frobnicator before every release</description>"),
                "the skill is not in <available_skills>: {system}"
            );
            let output = skill[0].tool.as_ref().unwrap().output.as_deref().unwrap_or("");
            assert!(output.contains("FROBNICATE-CAREFULLY-42"), "the skill tool's output lacks the body: {output}");
            assert!(final_text(&events).contains("FROBNICATE-CAREFULLY-42"), "{}", final_text(&events));
        }
    }
}
