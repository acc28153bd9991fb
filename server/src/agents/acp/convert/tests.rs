//! The ACP adapter replayed against real agents' transcripts (Gemini CLI
//! 0.61.0, Qwen Code 0.24.4, `opencode acp` 1.18.33 and Claude's adapter
//! `claude-agent-acp` 0.101.0, recorded offline against scripted models,
//! OpenCode's and Claude's with an MCP server `echo`:
//! `testdata/<agent>_<case>.jsonl` holds what the agent sent), and the
//! client side of the protocol: permission answers, the `fs` methods inside
//! the workspace, cancel.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use tether_protocol::{Decision, ItemKind, ItemStatus, Part, PermissionMode, StopReason, ToolKind};

use crate::agents::acp::{AcpAdapter, CLAUDE, CODEX, COPILOT, GEMINI, OPENCODE, QWEN};
use crate::agents::{snapshots, Adapter, Draft, LaunchContext};

fn context<'a>(
    cwd: &'a Path,
    resume: Option<&'a str>,
    mcp: &'a BTreeMap<String, tether_protocol::McpServer>,
    env: &'a BTreeMap<String, String>,
) -> LaunchContext<'a> {
    LaunchContext { resume, ..LaunchContext::for_test(cwd, env, mcp) }
}

/// What the adapter sent, one JSON value per line.
fn sent(adapter: &mut AcpAdapter) -> Vec<Value> {
    let out = adapter.take_output();
    String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Replays one transcript: a prompt, the agent's lines in order; a
/// permission is allowed (denied in `reject` cases); `cancel` cases cancel
/// after the first text; after each turn, if the agent said more, a new prompt.
fn replay(case: &str) -> Vec<Draft> {
    let (agent, _) = case.split_once('_').unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/agents/acp/testdata").join(format!("{case}.jsonl")),
    )
    .unwrap();
    let cwd = format!("$WORK/runs/{agent}/{}/proj", case.split_once('_').unwrap().1.replace('_', "-"));
    let (mut mcp, env) = (BTreeMap::new(), BTreeMap::new());
    let declared = match agent {
        "opencode" => &OPENCODE,
        "claude" => &CLAUDE,
        "qwen" => &QWEN,
        _ => &GEMINI,
    };
    if agent == "opencode" || agent == "claude" {
        let echo = tether_protocol::McpServer::Stdio {
            command: "python3".into(),
            args: vec!["echo_mcp.py".into()],
            env: BTreeMap::new(),
            cwd: None,
        };
        mcp.insert("echo".to_string(), echo);
    }
    // The recorded cwd as the agent knew it; what the adapter writes (the
    // files the agent asks for, what it announced) goes to a scratch folder.
    let scratch = tempfile::tempdir().unwrap();
    let mut ctx = context(scratch.path(), None, &mcp, &env);
    ctx.cwd = Path::new(&cwd);
    let mut adapter = AcpAdapter::new("/agent".into(), declared);
    adapter.launch(&ctx);
    adapter.started();
    adapter.user_message(&[Part::text("hello")]);
    let lines: Vec<&str> = text.lines().collect();
    let mut all = vec![];
    let mut cancelled = false;
    // Answers to our requests after a `session/set_mode` the recording did
    // not have come one id later: (from which id, by how much).
    let mut shift = (u64::MAX, 0);
    for (i, line) in lines.iter().enumerate() {
        let mut value: Value = serde_json::from_str(line).unwrap();
        let answer = value.get("method").is_none() && (value.get("result").is_some() || value.get("error").is_some());
        let line = match value["id"].as_u64() {
            Some(id) if answer && id >= shift.0 => {
                value["id"] = json!(id + shift.1);
                value.to_string()
            }
            _ => line.to_string(),
        };
        let drafts = adapter.convert(&line);
        for d in &drafts {
            match d {
                Draft::PermissionRequested { native, .. } => {
                    let decision = if case.contains("reject") { Decision::Deny } else { Decision::AllowOnce };
                    adapter.permission_reply(native, decision, None);
                }
                Draft::ItemDelta { .. } if case.contains("cancel") && !cancelled => {
                    cancelled = adapter.interrupt();
                }
                Draft::TurnCompleted { .. } if i + 1 < lines.len() => adapter.user_message(&[Part::text("again")]),
                _ => {}
            }
        }
        all.extend(drafts);
        // A mode the recording's agent did not start in (Qwen's `auto` for
        // tether's default): the agent takes it, as Qwen does.
        for request in sent(&mut adapter) {
            if request["method"] == "session/set_mode" {
                let id = request["id"].as_u64().unwrap();
                shift = (id.min(shift.0), shift.1 + 1);
                let answer = json!({"jsonrpc": "2.0", "id": id, "result": {}});
                all.extend(adapter.convert(&answer.to_string()));
            }
        }
    }
    all
}

#[test]
fn recorded_acp_sessions_replay_to_their_snapshots() {
    for agent in ["gemini", "qwen", "opencode", "claude"] {
        for case in snapshots::cases("acp", ".jsonl").into_iter().filter(|c| c.starts_with(agent)) {
            let drafts = replay(&case);
            assert!(
                !drafts.iter().any(|d| matches!(d, Draft::Unparsed { .. })),
                "{case}: every line placed: {drafts:#?}"
            );
            assert!(matches!(drafts.last(), Some(Draft::TurnCompleted { .. })), "{case} ends its turn");
            snapshots::check("acp", &case, &drafts);
        }
    }
}

fn turns(drafts: &[Draft]) -> Vec<(StopReason, Option<(String, String)>)> {
    drafts
        .iter()
        .filter_map(|d| match d {
            Draft::TurnCompleted { stop_reason, error, .. } => Some((*stop_reason, error.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn texts_tools_permissions_errors_and_cancels_become_the_universal_shape() {
    // Text: deltas of one message, completed before the turn ends.
    let text = replay("gemini_text");
    let ids: std::collections::BTreeSet<&str> = text
        .iter()
        .filter_map(|d| match d {
            Draft::ItemDelta { native_id, delta: tether_protocol::Delta::Text(_) } => Some(native_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 1, "one message: {text:#?}");
    assert!(ids.iter().all(|id| id.starts_with("msg-")));
    assert_eq!(turns(&text), vec![(StopReason::EndTurn, None)]);
    // Gemini asks with no tool_call first: the call starts with the request, as a shell call.
    let shell = replay("gemini_shell2");
    let asked = shell.iter().position(|d| matches!(d, Draft::PermissionRequested { .. })).unwrap();
    assert!(matches!(&shell[asked - 1], Draft::ItemStarted { tool: Some(t), .. } if t.kind == ToolKind::Shell));
    match &shell[asked] {
        Draft::PermissionRequested { command, action, .. } => {
            assert_eq!(*action, tether_protocol::PermissionAction::Shell);
            assert!(command.as_deref().unwrap().contains("touch made_by_shell.txt"), "{command:?}");
        }
        _ => unreachable!(),
    }
    // A write: its diff and path, asked as a file write.
    let write = replay("gemini_write");
    let diff = write.iter().find_map(|d| match d {
        Draft::PermissionRequested { diff, path, action, .. } => Some((diff.clone(), path.clone(), *action)),
        _ => None,
    });
    let (diff, path, action) = diff.unwrap();
    assert_eq!(action, tether_protocol::PermissionAction::FileWrite);
    assert!(diff.unwrap().contains("+hello from mock"));
    assert!(path.unwrap().ends_with("mock_hello.txt"));
    // Qwen's shell output comes in content: the tool's output.
    let qwen = replay("qwen_shell2_default");
    let done = qwen.iter().find_map(|d| match d {
        Draft::ItemCompleted { kind: ItemKind::ToolCall, tool: Some(t), status, .. } if t.kind == ToolKind::Shell => {
            Some((t.clone(), *status))
        }
        _ => None,
    });
    let (tool, status) = done.unwrap();
    assert_eq!(status, ItemStatus::Completed);
    assert!(tool.output.as_deref().unwrap().contains("made_by_shell.txt"), "{tool:?}");
    assert_eq!(tool.exit_code, Some(0));
    // MCP: the server and the tool's own name.
    for case in ["gemini_mcp", "qwen_mcp", "opencode_mcp"] {
        let mcp = replay(case);
        let tool = mcp
            .iter()
            .find_map(|d| match d {
                Draft::ItemCompleted { tool: Some(t), .. } if t.kind == ToolKind::Mcp => Some(t.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{case}: {mcp:#?}"));
        assert_eq!((tool.server.as_deref(), tool.name.as_str()), (Some("echo"), "echo_upper"), "{case}");
        assert_eq!(tool.output.as_deref(), Some("HELLO MCP"), "{case}");
    }
    // A model error: the turn fails with the model's own message.
    for case in ["gemini_http400", "qwen_http400", "opencode_http400"] {
        let (stop, error) = turns(&replay(case)).remove(0);
        assert_eq!(stop, StopReason::Error, "{case}");
        let (code, message) = error.unwrap();
        assert_eq!(code, "model_error", "{case}");
        assert!(message.contains("mock induced failure"), "{case}: {message}");
    }
    // Cancelled at our request: interrupted; the next prompt runs.
    for case in ["gemini_cancel", "qwen_cancel"] {
        assert_eq!(turns(&replay(case)), vec![(StopReason::Interrupted, None), (StopReason::EndTurn, None)], "{case}");
    }
    // Two turns in one session.
    assert_eq!(turns(&replay("gemini_twoturn_load")).len(), 2);
}

/// The tool items `drafts` completed, with their status.
fn completed_tools(drafts: &[Draft]) -> Vec<(tether_protocol::Tool, ItemStatus)> {
    drafts
        .iter()
        .filter_map(|d| match d {
            Draft::ItemCompleted { kind: ItemKind::ToolCall, tool: Some(t), status, .. } => Some((t.clone(), *status)),
            _ => None,
        })
        .collect()
}

/// What OpenCode does its own way: a call that starts `pending` with no
/// input and is filled in by updates; its shell's exit code in
/// `rawOutput.metadata.exit`; a write asked with a diff that its last update
/// replaces (the item keeps it); a rejection that fails the call and ends the
/// turn; MCP tools named `SERVER_TOOL`; a cancel with one turn.
#[test]
fn opencode_calls_are_filled_in_by_updates_and_keep_their_diff() {
    let shell = replay("opencode_shell");
    let [(tool, status)] = completed_tools(&shell).try_into().unwrap();
    assert_eq!((tool.kind, status), (ToolKind::Shell, ItemStatus::Completed));
    assert_eq!(tool.input["command"], "echo hello-from-mock");
    assert_eq!((tool.output.as_deref(), tool.exit_code), (Some("hello-from-mock\n"), Some(0)));
    let asked = shell.iter().find_map(|d| match d {
        Draft::PermissionRequested { action, command, .. } => Some((*action, command.clone())),
        _ => None,
    });
    assert_eq!(asked, Some((tether_protocol::PermissionAction::Shell, Some("echo hello-from-mock".into()))));

    for (case, want) in [("opencode_write", ItemStatus::Completed), ("opencode_write_reject", ItemStatus::Failed)] {
        let drafts = replay(case);
        let action = drafts.iter().find_map(|d| match d {
            Draft::PermissionRequested { action, diff, .. } => Some((*action, diff.clone().unwrap_or_default())),
            _ => None,
        });
        let (action, diff) = action.unwrap_or_else(|| panic!("{case}: {drafts:#?}"));
        assert_eq!(action, tether_protocol::PermissionAction::FileWrite, "{case}");
        assert!(diff.starts_with("--- /dev/null") && diff.contains("+hello from mock"), "{case}: {diff}");
        let [(tool, status)] = completed_tools(&drafts).try_into().unwrap();
        assert_eq!((tool.kind, status), (ToolKind::FileEdit, want), "{case}");
        assert_eq!(tool.diff.as_deref(), Some(&*diff), "{case}: the item keeps the diff it asked with");
        assert_eq!(turns(&drafts), vec![(StopReason::EndTurn, None)], "{case}");
    }
    let rejected = completed_tools(&replay("opencode_shell_reject"));
    assert_eq!(rejected.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [ItemStatus::Failed]);
    // An edit of a file that was there: old and new lines.
    let tools = completed_tools(&replay("opencode_edit"));
    let (edit, _) = tools.iter().find(|(t, _)| t.name == "edit").unwrap();
    assert!(edit.diff.as_deref().is_some_and(|d| d.contains("-line one") && d.contains("+line two")), "{edit:?}");

    assert_eq!(turns(&replay("opencode_cancel")), vec![(StopReason::Interrupted, None)]);
    assert_eq!(turns(&replay("opencode_twoturn")).len(), 2);
}

/// Claude's adapter: calls filled in by updates without a status; a
/// write's diff on the item; a rejection fails the call and the model goes
/// on (`end_turn`); a model error is its text, then a JSON-RPC error with
/// `data.errorKind`; MCP tools are `mcp__SERVER__TOOL` after a `ToolSearch`;
/// a subagent's calls come on the session marked
/// `_meta.claudeCode.parentToolUseId`, and are the `Agent` call's children.
#[test]
fn claude_adapter_calls_errors_and_a_subagents_calls_under_the_agent_call() {
    let shell = replay("claude_shell");
    let [(tool, status)] = completed_tools(&shell).try_into().unwrap();
    assert_eq!((tool.kind, tool.name.as_str(), status), (ToolKind::Shell, "Bash", ItemStatus::Completed));
    assert_eq!(tool.input["command"], "touch mock_touched.txt");
    let rejected = replay("claude_shell_reject");
    assert_eq!(completed_tools(&rejected).iter().map(|(_, s)| *s).collect::<Vec<_>>(), [ItemStatus::Failed]);
    assert_eq!(turns(&rejected), vec![(StopReason::EndTurn, None)], "the model goes on after a rejection");

    let write = replay("claude_write");
    let [(tool, _)] = completed_tools(&write).try_into().unwrap();
    assert_eq!(tool.kind, ToolKind::FileEdit);
    assert!(tool.diff.as_deref().is_some_and(|d| d.starts_with("--- /dev/null") && d.contains("+hello from mock")));

    let failed = turns(&replay("claude_http500"));
    let [(stop, Some((code, message)))] = failed.as_slice() else { panic!("one failed turn: {failed:?}") };
    assert_eq!((*stop, code.as_str()), (StopReason::Error, "model_error"));
    assert!(message.contains("500"), "{message}");
    assert_eq!(turns(&replay("claude_cancel")), vec![(StopReason::Interrupted, None)]);

    let mcp = completed_tools(&replay("claude_mcp"));
    let (call, _) = mcp.iter().find(|(t, _)| t.kind == ToolKind::Mcp).unwrap();
    assert_eq!((call.server.as_deref(), call.name.as_str()), (Some("echo"), "echo_upper"));

    let sub = replay("claude_subagent");
    let agent = completed_tools(&sub).into_iter().find(|(t, _)| t.name == "Agent").unwrap();
    assert_eq!((agent.0.kind, agent.1), (ToolKind::Task, ItemStatus::Completed));
    let parents: Vec<(String, String)> = sub
        .iter()
        .filter_map(|d| match d {
            Draft::ItemParent { native_id, parent_native_id } => Some((native_id.clone(), parent_native_id.clone())),
            _ => None,
        })
        .collect();
    let agent_id = "toolu_mock000003".to_string();
    assert_eq!(
        parents,
        [("toolu_mock000006".to_string(), agent_id.clone()), ("toolu_mock000009".to_string(), agent_id)],
        "each of the subagent's calls names the Agent call once, before it starts"
    );
    for (child, _) in &parents {
        let first = sub.iter().position(|d| match d {
            Draft::ItemStarted { native_id, .. } | Draft::ItemUpdated { native_id, .. } => native_id == child,
            _ => false,
        });
        let parent = sub.iter().position(|d| matches!(d, Draft::ItemParent { native_id, .. } if native_id == child));
        assert!(parent < first, "{child}: its parent before its first draft");
    }
}

/// Claude's adapter (`claude-acp`): no arguments; it runs the `claude`
/// agent's binary (`TETHER_CLAUDE_PATH` or its install), never its own;
/// no prompt suggestions; `IS_SANDBOX` only for bypass as root (any other
/// non-empty value breaks its `session/new` as root); the session's model as
/// `ANTHROPIC_MODEL`. Its own default mode (`auto`) approves by itself:
/// tether's default asks it for `default`, and a turn waits for that.
#[test]
fn claude_adapter_runs_the_claude_agents_binary_in_the_mode_asked_for() {
    let data = tempfile::tempdir().unwrap();
    let installed = data.path().join("agents/claude/node_modules/.bin/claude");
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::write(&installed, "").unwrap();
    let (mcp, env) = (BTreeMap::new(), BTreeMap::new());
    let mut ctx = context(data.path(), None, &mcp, &env);
    let launched = |ctx: &LaunchContext<'_>| {
        let spec = crate::agents::acp::launch::launch(Path::new("/bin/claude-agent-acp"), &CLAUDE, ctx);
        assert!(spec.args.is_empty(), "{:?}", spec.args);
        spec.env.into_iter().collect::<BTreeMap<String, String>>()
    };
    let env = launched(&ctx);
    let claude = match std::env::var_os("TETHER_CLAUDE_PATH") {
        Some(path) => Some(std::path::PathBuf::from(path)).filter(|p| p.is_file()),
        None => Some(installed.clone()),
    };
    assert_eq!(env.get("CLAUDE_CODE_EXECUTABLE"), claude.map(|p| p.display().to_string()).as_ref());
    assert_eq!(env["CLAUDE_CODE_ENABLE_PROMPT_SUGGESTION"], "false");
    assert_eq!(env["IS_SANDBOX"], "");
    assert!(!env.contains_key("ANTHROPIC_MODEL"));
    ctx.model = Some("claude-scripted");
    ctx.permission_mode = PermissionMode::Bypass;
    let env = launched(&ctx);
    assert_eq!(env["ANTHROPIC_MODEL"], "claude-scripted");
    let root = crate::agents::claude::launch::running_as_root();
    assert_eq!(env["IS_SANDBOX"], if root { "1" } else { "" });

    // Opened in `auto`: `session/set_mode` `default` goes out, and the prompt waits for its answer.
    let (mcp, env) = (BTreeMap::new(), BTreeMap::new());
    let mut adapter = AcpAdapter::new("/agent".into(), &CLAUDE);
    adapter.launch(&context(data.path(), None, &mcp, &env));
    adapter.started();
    adapter.convert(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{}}}"#);
    adapter.user_message(&[Part::text("hello")]);
    let modes = r#"{"currentModeId":"auto","availableModes":[{"id":"default","name":"Manual"},{"id":"acceptEdits","name":"Accept edits"},{"id":"plan","name":"Plan"},{"id":"auto","name":"Auto"}]}"#;
    adapter.convert(&format!(r#"{{"jsonrpc":"2.0","id":2,"result":{{"sessionId":"s1","modes":{modes}}}}}"#));
    let out = sent(&mut adapter);
    let methods: Vec<&str> = out.iter().filter_map(|m| m["method"].as_str()).collect();
    assert_eq!(methods, ["initialize", "session/new", "session/set_mode"], "{out:?}");
    assert_eq!(out[2]["params"]["modeId"], "default");
    adapter.convert(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
    let out = sent(&mut adapter);
    assert_eq!(out.iter().filter_map(|m| m["method"].as_str()).collect::<Vec<_>>(), ["session/prompt"]);
}

/// Codex's adapter (`codex-acp`): no arguments; it runs `codex app-server`
/// of the `codex` agent (`CODEX_PATH`), the session's model in
/// `CODEX_CONFIG`. Its own default mode (`agent`) has a model review
/// approvals: tether's default asks it for `read-only`, `accept_edits` for
/// `workspace-write`, `bypass` for `agent-full-access`.
#[test]
fn codex_adapter_runs_the_codex_agents_binary_in_the_mode_asked_for() {
    let data = tempfile::tempdir().unwrap();
    let installed = data.path().join("agents/codex/node_modules/.bin/codex");
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::write(&installed, "").unwrap();
    let (mcp, env) = (BTreeMap::new(), BTreeMap::new());
    let mut ctx = context(data.path(), None, &mcp, &env);
    let launched = |ctx: &LaunchContext<'_>| {
        let spec = crate::agents::acp::launch::launch(Path::new("/bin/codex-acp"), &CODEX, ctx);
        assert!(spec.args.is_empty(), "{:?}", spec.args);
        spec.env.into_iter().collect::<BTreeMap<String, String>>()
    };
    let env = launched(&ctx);
    let codex = match std::env::var_os("TETHER_CODEX_PATH") {
        Some(path) => Some(std::path::PathBuf::from(path)).filter(|p| p.is_file()),
        None => Some(installed.clone()),
    };
    assert_eq!(env.get("CODEX_PATH"), codex.map(|p| p.display().to_string()).as_ref());
    assert!(!env.contains_key("CODEX_CONFIG"));
    ctx.model = Some("gpt-scripted");
    assert_eq!(launched(&ctx)["CODEX_CONFIG"], r#"{"model":"gpt-scripted"}"#);

    let modes = r#"{"currentModeId":"agent","availableModes":[{"id":"read-only","name":"Read-only"},{"id":"workspace-write","name":"Workspace access"},{"id":"agent","name":"Auto review"},{"id":"agent-full-access","name":"Full access"}]}"#;
    for (mode, id) in [
        (PermissionMode::Default, "read-only"),
        (PermissionMode::AcceptEdits, "workspace-write"),
        (PermissionMode::Bypass, "agent-full-access"),
        (PermissionMode::Plan, "read-only"),
    ] {
        let (mcp, env) = (BTreeMap::new(), BTreeMap::new());
        let mut adapter = AcpAdapter::new("/agent".into(), &CODEX);
        let mut ctx = context(data.path(), None, &mcp, &env);
        ctx.permission_mode = mode;
        adapter.launch(&ctx);
        adapter.started();
        adapter.convert(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{}}}"#);
        adapter.convert(&format!(r#"{{"jsonrpc":"2.0","id":2,"result":{{"sessionId":"s1","modes":{modes}}}}}"#));
        let out = sent(&mut adapter);
        assert_eq!(out.last().unwrap()["params"]["modeId"], id, "{mode:?}: {out:?}");
    }
}

/// What Codex's adapter does its own way (lines as `codex-acp` 2.6.0 sent
/// them, running Codex 0.169.0): a reasoning summary that opens with a
/// blank chunk; a command's output only in `_meta`, in
/// pieces, and its exit code there; an MCP call titled `mcp.SERVER.TOOL`
/// with `rawInput` `{server, tool, arguments}` and its result's content in
/// `rawOutput`, asked for with a `toolCall` that has only its id and kind.
#[test]
fn codex_adapter_output_in_meta_and_its_mcp_calls() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mcp, env) = (BTreeMap::new(), BTreeMap::new());
    let echo =
        tether_protocol::McpServer::Stdio { command: "python3".into(), args: vec![], env: BTreeMap::new(), cwd: None };
    mcp.insert("echo".to_string(), echo);
    let mut adapter = AcpAdapter::new("/agent".into(), &CODEX);
    adapter.launch(&context(dir.path(), None, &mcp, &env));
    adapter.started();
    adapter.convert(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{}}}"#);
    adapter.convert(r#"{"jsonrpc":"2.0","id":2,"result":{"sessionId":"s1"}}"#);
    adapter.user_message(&[Part::text("go")]);
    let update = |u: Value| {
        json!({"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"s1","update":u}}).to_string()
    };
    // Each reasoning summary opens with a blank chunk: the thought is what follows.
    let mut drafts = vec![];
    for text in ["\n\n", "Let me think."] {
        let thought = json!({"sessionUpdate":"agent_thought_chunk","content":{"type":"text","text":text}});
        drafts.extend(adapter.convert(&update(thought)));
    }
    let thought: Vec<&Draft> = drafts.iter().filter(|d| matches!(d, Draft::ItemDelta { .. })).collect();
    assert_eq!(
        thought,
        [&Draft::ItemDelta {
            native_id: "thought-1".into(),
            delta: tether_protocol::Delta::Reasoning("Let me think.".into())
        }]
    );
    for line in [
        update(json!({"sessionUpdate":"tool_call","toolCallId":"c1","name":"exec_command","kind":"execute",
            "title":"echo hi","status":"in_progress","content":[{"type":"terminal","terminalId":"c1"}],
            "rawInput":{"command":"echo hi; echo there","cwd":"/p"},"_meta":{"terminal_info":{"cwd":"/p","terminal_id":"c1"}}})),
        update(json!({"sessionUpdate":"tool_call_update","toolCallId":"c1",
            "_meta":{"terminal_output_delta":{"data":"hi\n","terminal_id":"c1"}}})),
        update(json!({"sessionUpdate":"tool_call_update","toolCallId":"c1","status":"completed",
            "_meta":{"terminal_output_delta":{"data":"there\n","terminal_id":"c1"},
                     "terminal_exit":{"exit_code":3,"signal":null,"terminal_id":"c1"}}})),
        update(json!({"sessionUpdate":"tool_call","toolCallId":"c2","kind":"execute","title":"mcp.echo.echo_upper",
            "status":"in_progress","rawInput":{"server":"echo","tool":"echo_upper","arguments":{"text":"hello mcp"}},
            "_meta":{"is_mcp_tool_call":true}})),
    ] {
        drafts.extend(adapter.convert(&line));
    }
    let asked = adapter.convert(
        &json!({"jsonrpc":"2.0","id":0,"method":"session/request_permission","params":{"sessionId":"s1",
            "toolCall":{"toolCallId":"c2","kind":"execute","status":"pending"},"_meta":{"is_mcp_tool_approval":true},
            "options":[{"optionId":"allow_once","name":"Allow","kind":"allow_once"},
                       {"optionId":"cancel","name":"Cancel","kind":"reject_once"}]}})
        .to_string(),
    );
    let Some(Draft::PermissionRequested { action, title, native_item_id, .. }) = asked.last() else {
        panic!("{asked:?}")
    };
    assert_eq!(
        (*action, title.as_str(), native_item_id.as_deref()),
        (tether_protocol::PermissionAction::Mcp, "Call echo_upper on the MCP server echo", Some("c2"))
    );
    drafts.extend(adapter.convert(&update(json!({"sessionUpdate":"tool_call_update","toolCallId":"c2",
        "status":"completed","rawOutput":{"result":{"content":[{"type":"text","text":"HELLO MCP"}],
        "structuredContent":null,"_meta":null},"error":null}}))));
    let [(shell, _), (call, status)] = completed_tools(&drafts).try_into().unwrap();
    assert_eq!((shell.kind, shell.output.as_deref(), shell.exit_code), (ToolKind::Shell, Some("hi\nthere\n"), Some(3)));
    assert_eq!(shell.input["command"], "echo hi; echo there");
    assert_eq!((call.kind, call.server.as_deref(), call.name.as_str()), (ToolKind::Mcp, Some("echo"), "echo_upper"));
    assert_eq!(
        (call.input.clone(), call.output.as_deref(), status),
        (json!({"text":"hello mcp"}), Some("HELLO MCP"), ItemStatus::Completed)
    );
    // A failed turn: its error as a chunk without a `messageId`, `end_turn` with no usage.
    let failure =
        json!({"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"stream disconnected: boom\n\n"}});
    adapter.convert(&update(failure));
    let ended = adapter.convert(r#"{"jsonrpc":"2.0","id":3,"result":{"stopReason":"end_turn","usage":null}}"#);
    let Some(Draft::TurnCompleted { stop_reason, error: Some((code, message)), .. }) = ended.last() else {
        panic!("{ended:?}")
    };
    assert_eq!(
        (*stop_reason, code.as_str(), message.as_str()),
        (StopReason::Error, "model_error", "stream disconnected: boom")
    );
    // A reply's chunks have a `messageId`: a turn that ends with one is not a failure.
    adapter.user_message(&[Part::text("again")]);
    let reply = json!({"sessionUpdate":"agent_message_chunk","messageId":"m1","content":{"type":"text","text":"fine"}});
    adapter.convert(&update(reply));
    let ended = adapter.convert(r#"{"jsonrpc":"2.0","id":4,"result":{"stopReason":"end_turn","usage":null}}"#);
    assert!(
        matches!(ended.last(), Some(Draft::TurnCompleted { stop_reason: StopReason::EndTurn, error: None, .. })),
        "{ended:?}"
    );
}

/// OpenCode names an MCP tool `SERVER_TOOL` (kind `other`): it is an MCP call
/// when SERVER is one of the session's servers, as OpenCode spells it, the
/// longest that fits; anything else stays a tool.
#[test]
fn a_tool_named_after_a_sessions_mcp_server_is_an_mcp_call() {
    use super::super::wire::ToolCall;
    use agent_client_protocol_schema::v1::ToolCallId;
    let servers = vec!["a".to_string(), "a.b".to_string(), "web".to_string()];
    let call = |title: &str, kind: super::super::wire::ToolKind| {
        let mut c = ToolCall::new(ToolCallId::new("c"), title);
        c.kind = kind;
        super::tool_of(&c, &servers)
    };
    let other = super::super::wire::ToolKind::Other;
    let t = call("a_b_echo", other);
    assert_eq!((t.kind, t.server.as_deref(), t.name.as_str()), (ToolKind::Mcp, Some("a.b"), "echo"));
    let t = call("a_echo", other);
    assert_eq!((t.kind, t.server.as_deref(), t.name.as_str()), (ToolKind::Mcp, Some("a"), "echo"));
    for (title, kind) in [("webfetch", other), ("web_", other), ("web_x", super::super::wire::ToolKind::Fetch)] {
        let t = call(title, kind);
        assert_ne!(t.kind, ToolKind::Mcp, "{title}");
        assert_eq!(t.server, None, "{title}");
    }
}

/// An adapter whose session is open, in a real workspace.
fn open(workspace: &Path) -> AcpAdapter {
    let (mcp, env) = (BTreeMap::new(), BTreeMap::new());
    let mut adapter = AcpAdapter::new("/agent".into(), &GEMINI);
    adapter.launch(&context(workspace, None, &mcp, &env));
    adapter.started();
    assert!(adapter
        .convert(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{}}}"#)
        .is_empty());
    adapter.convert(r#"{"jsonrpc":"2.0","id":2,"result":{"sessionId":"s1"}}"#);
    adapter.take_output();
    adapter
}

#[test]
fn the_client_fs_methods_stay_inside_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let mut adapter = open(&root);
    let file = root.join("sub/new.txt");
    let write = json!({"jsonrpc":"2.0","id":0,"method":"fs/write_text_file",
        "params":{"sessionId":"s1","path":file,"content":"one\ntwo\nthree\n"}});
    assert!(adapter.convert(&write.to_string()).is_empty());
    assert_eq!(sent(&mut adapter), vec![json!({"jsonrpc":"2.0","id":0,"result":{}})]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "one\ntwo\nthree\n");
    // Read back, a range of lines, and a missing file as empty text.
    let read = |path: &Path, extra: Value| {
        let mut params = json!({"sessionId":"s1","path":path});
        params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"jsonrpc":"2.0","id":"r","method":"fs/read_text_file","params":params}).to_string()
    };
    adapter.convert(&read(&file, json!({})));
    assert_eq!(sent(&mut adapter)[0]["result"]["content"], "one\ntwo\nthree\n");
    adapter.convert(&read(&file, json!({"line": 2, "limit": 1})));
    assert_eq!(sent(&mut adapter)[0]["result"]["content"], "two\n");
    adapter.convert(&read(&root.join("missing.txt"), json!({})));
    assert_eq!(sent(&mut adapter)[0]["result"]["content"], "");
    // Outside the workspace, by path or through a symlink: refused, nothing written.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
    for path in [outside.path().join("x.txt"), root.join("../escape.txt"), root.join("link/x.txt")] {
        let write = json!({"jsonrpc":"2.0","id":7,"method":"fs/write_text_file",
            "params":{"sessionId":"s1","path":path,"content":"no"}});
        adapter.convert(&write.to_string());
        let answer = sent(&mut adapter).remove(0);
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("outside") || answer["error"].is_object(),
            "{answer}"
        );
        assert!(answer.get("result").is_none(), "{path:?}: {answer}");
        adapter.convert(&read(&path, json!({})));
        assert!(sent(&mut adapter)[0].get("error").is_some(), "{path:?}");
    }
    assert!(!outside.path().join("x.txt").exists());
    assert!(!root.parent().unwrap().join("escape.txt").exists());
    // What tether does not offer is answered, not left hanging.
    adapter.convert(r#"{"jsonrpc":"2.0","id":9,"method":"terminal/create","params":{}}"#);
    assert_eq!(sent(&mut adapter)[0]["error"]["code"], -32601);
}

#[test]
fn permission_answers_pick_the_option_by_kind_and_a_cancel_answers_what_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut adapter = open(dir.path());
    adapter.user_message(&[Part::text("go")]);
    assert_eq!(sent(&mut adapter)[0]["method"], "session/prompt");
    // Qwen's options: two "always" that write settings, and "once".
    let ask = |id: u64| {
        json!({"jsonrpc":"2.0","id":id,"method":"session/request_permission","params":{"sessionId":"s1",
            "toolCall":{"toolCallId":format!("t{id}"),"title":"touch x","kind":"execute","status":"pending"},
            "options":[
                {"optionId":"proceed_always_project","name":"Always in project","kind":"allow_always"},
                {"optionId":"proceed_always_user","name":"Always for user","kind":"allow_always"},
                {"optionId":"proceed_once","name":"Allow","kind":"allow_once"},
                {"optionId":"cancel","name":"Reject","kind":"reject_once"}]}})
        .to_string()
    };
    let native = |drafts: Vec<Draft>| {
        drafts
            .into_iter()
            .find_map(|d| match d {
                Draft::PermissionRequested { native, .. } => Some(native),
                _ => None,
            })
            .unwrap()
    };
    let chosen = |adapter: &mut AcpAdapter| sent(adapter)[0]["result"]["outcome"].clone();
    let n = native(adapter.convert(&ask(0)));
    adapter.permission_reply(&n, Decision::AllowAlways, None);
    // "Always" for tether is this session: not an option that writes settings.
    assert_eq!(chosen(&mut adapter), json!({"outcome":"selected","optionId":"proceed_once"}));
    let n = native(adapter.convert(&ask(1)));
    adapter.permission_reply(&n, Decision::Deny, None);
    assert_eq!(chosen(&mut adapter), json!({"outcome":"selected","optionId":"cancel"}));
    // Open at a cancel: answered `cancelled` with it; a later answer is not sent.
    let n = native(adapter.convert(&ask(2)));
    assert!(adapter.interrupt());
    let out = sent(&mut adapter);
    assert_eq!(out[0]["method"], "session/cancel");
    assert_eq!(out[1], json!({"jsonrpc":"2.0","id":2,"result":{"outcome":{"outcome":"cancelled"}}}));
    adapter.permission_reply(&n, Decision::AllowOnce, None);
    assert!(sent(&mut adapter).is_empty());
    // The agent withdraws a request: the session hears of it.
    adapter.convert(&ask(3));
    let drafts = adapter.convert(r#"{"jsonrpc":"2.0","method":"$/cancel_request","params":{"requestId":3}}"#);
    assert_eq!(drafts, vec![Draft::RequestCancelled { native_request_id: "3".into() }]);
}

#[test]
fn a_resumed_session_is_loaded_and_its_replay_is_not_shown_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mcp, env) = (BTreeMap::new(), BTreeMap::new());
    let mut adapter = AcpAdapter::new("/agent".into(), &GEMINI);
    adapter.launch(&context(dir.path(), Some("old-session"), &mcp, &env));
    adapter.started();
    adapter.user_message(&[Part::text("next")]);
    adapter.take_output();
    adapter
        .convert(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{"loadSession":true}}}"#);
    let load = sent(&mut adapter);
    assert_eq!(load[0]["method"], "session/load");
    assert_eq!(load[0]["params"]["sessionId"], "old-session");
    let replayed = r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"old-session","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"old answer"}}}}"#;
    assert!(adapter.convert(replayed).is_empty());
    let drafts = adapter.convert(r#"{"jsonrpc":"2.0","id":2,"result":{}}"#);
    assert!(matches!(&drafts[0], Draft::SessionStarted { native_session_id: Some(id), .. } if id == "old-session"));
    let prompt = sent(&mut adapter);
    assert_eq!(prompt[0]["method"], "session/prompt");
    assert_eq!(prompt[0]["params"]["sessionId"], "old-session");
    // A load that fails opens a new session and says so.
    let mut adapter = AcpAdapter::new("/agent".into(), &GEMINI);
    adapter.launch(&context(dir.path(), Some("gone"), &mcp, &env));
    adapter.started();
    adapter
        .convert(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{"loadSession":true}}}"#);
    adapter.take_output();
    let drafts = adapter.convert(r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32603,"message":"Internal error","data":{"details":"No previous sessions found for this project."}}}"#);
    assert!(
        matches!(&drafts[0], Draft::Error { code, message, .. } if code == "resume_failed" && message.contains("No previous sessions"))
    );
    assert_eq!(sent(&mut adapter)[0]["method"], "session/new");
}

#[test]
fn an_interrupt_cancels_the_prompt_it_meant_and_no_later_one() {
    let dir = tempfile::tempdir().unwrap();
    // Before the session is open: the queued prompt goes out, then its cancel.
    let (mcp, env) = (BTreeMap::new(), BTreeMap::new());
    let mut adapter = AcpAdapter::new("/agent".into(), &GEMINI);
    adapter.launch(&context(dir.path(), None, &mcp, &env));
    adapter.started();
    adapter.user_message(&[Part::text("go")]);
    assert!(adapter.interrupt());
    adapter.convert(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{}}}"#);
    adapter.take_output();
    adapter.convert(r#"{"jsonrpc":"2.0","id":2,"result":{"sessionId":"s1"}}"#);
    let methods: Vec<Value> = sent(&mut adapter).into_iter().map(|m| m["method"].clone()).collect();
    assert_eq!(methods, vec![json!("session/prompt"), json!("session/cancel")]);
    let drafts = adapter.convert(r#"{"jsonrpc":"2.0","id":3,"result":{"stopReason":"cancelled"}}"#);
    assert_eq!(turns(&drafts), vec![(StopReason::Interrupted, None)]);
    // Just after a turn ended: nothing to cancel, and the next prompt runs.
    assert!(adapter.interrupt());
    assert!(sent(&mut adapter).is_empty());
    adapter.user_message(&[Part::text("next")]);
    let methods: Vec<Value> = sent(&mut adapter).into_iter().map(|m| m["method"].clone()).collect();
    assert_eq!(methods, vec![json!("session/prompt")]);
    // A `cancelled` we did not ask for (a rejected call, for some agents) is not an interrupt.
    let drafts = adapter.convert(r#"{"jsonrpc":"2.0","id":4,"result":{"stopReason":"cancelled"}}"#);
    assert_eq!(turns(&drafts), vec![(StopReason::EndTurn, None)]);
}

#[test]
fn a_session_the_agent_could_not_open_fails_its_turn_and_is_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut adapter = open_failing(dir.path());
    // The message that waited fails with the agent's reason.
    let drafts = adapter.convert(
        r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32000,"message":"Gemini API key is missing or not configured."}}"#,
    );
    let (stop, error) = turns(&drafts).remove(0);
    assert_eq!(stop, StopReason::Error);
    assert!(error.unwrap().1.contains("API key is missing"));
    // The next message opens the session again, then goes out.
    adapter.user_message(&[Part::text("again")]);
    assert_eq!(sent(&mut adapter)[0]["method"], "session/new");
    adapter.convert(r#"{"jsonrpc":"2.0","id":3,"result":{"sessionId":"s2"}}"#);
    let prompt = sent(&mut adapter);
    assert_eq!(
        (prompt[0]["method"].as_str(), prompt[0]["params"]["sessionId"].as_str()),
        (Some("session/prompt"), Some("s2"))
    );
}

/// An adapter whose `initialize` was answered and whose first message waits on `session/new` (id 2).
fn open_failing(workspace: &Path) -> AcpAdapter {
    let (mcp, env) = (BTreeMap::new(), BTreeMap::new());
    let mut adapter = AcpAdapter::new("/agent".into(), &GEMINI);
    adapter.launch(&context(workspace, None, &mcp, &env));
    adapter.started();
    adapter.user_message(&[Part::text("first")]);
    adapter.convert(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{}}}"#);
    adapter.take_output();
    adapter
}

/// Copilot 1.0.102's lines (from `shared/agents/acp/captures/copilot`): its
/// plan mode is a URL; an MCP call named `SERVER-TOOL` keeps its server when
/// the permission request names the bare tool; a write asks with a git diff
/// in its input; a command's exit code is in `rawOutput.contents`; a model
/// error is a message `Error: …` and `end_turn` without usage.
#[test]
fn copilot_modes_mcp_calls_writes_exit_codes_and_errors_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let http = tether_protocol::McpServer::Http { url: "http://127.0.0.1:1/mcp".into(), headers: BTreeMap::new() };
    let (mcp, env) = (BTreeMap::from([("echo".to_string(), http)]), BTreeMap::new());
    let mut adapter = AcpAdapter::new("/agent".into(), &COPILOT);
    let ctx = LaunchContext { permission_mode: PermissionMode::Plan, ..context(dir.path(), None, &mcp, &env) };
    let spec = adapter.launch(&ctx);
    assert!(spec.env.contains(&("COPILOT_ALLOW_ALL".to_string(), "off".to_string())), "{:?}", spec.env);
    adapter.started();
    adapter.convert(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{}}}"#);
    adapter.take_output();
    let modes = r#"{"availableModes":[{"id":"https://agentclientprotocol.com/protocol/session-modes#agent","name":"Agent"},{"id":"https://agentclientprotocol.com/protocol/session-modes#plan","name":"Plan"}],"currentModeId":"https://agentclientprotocol.com/protocol/session-modes#agent"}"#;
    adapter.convert(&format!(r#"{{"jsonrpc":"2.0","id":2,"result":{{"sessionId":"s1","modes":{modes}}}}}"#));
    let set = sent(&mut adapter);
    assert_eq!(set[0]["params"]["modeId"], "https://agentclientprotocol.com/protocol/session-modes#plan");
    adapter.convert(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
    adapter.user_message(&[Part::text("go")]);
    adapter.take_output();
    let update = |u: &str| {
        format!(r#"{{"jsonrpc":"2.0","method":"session/update","params":{{"sessionId":"s1","update":{u}}}}}"#)
    };
    let mut drafts = Vec::new();
    for line in [
        update(r#"{"sessionUpdate":"tool_call","toolCallId":"m1","title":"echo-echo_upper","kind":"other","status":"pending","rawInput":{"text":"hi"}}"#),
        r#"{"jsonrpc":"2.0","id":0,"method":"session/request_permission","params":{"sessionId":"s1","toolCall":{"toolCallId":"m1","title":"echo_upper","kind":"other","status":"pending","rawInput":{"text":"hi"}},"options":[{"optionId":"allow_once","kind":"allow_once","name":"Allow once"}]}}"#.to_string(),
        update(r#"{"sessionUpdate":"tool_call_update","toolCallId":"m1","status":"completed","content":[{"type":"content","content":{"type":"text","text":"HI"}}]}"#),
        update(r#"{"sessionUpdate":"tool_call","toolCallId":"w1","title":"apply_patch","kind":"edit","status":"pending","rawInput":"*** Begin Patch"}"#),
        r#"{"jsonrpc":"2.0","id":1,"method":"session/request_permission","params":{"sessionId":"s1","toolCall":{"toolCallId":"w1","title":"Create file","kind":"edit","status":"pending","rawInput":{"fileName":"/p/new.txt","diff":"\ndiff --git a/p/new.txt b/p/new.txt\ncreate file mode 100644\nindex 0000000..0000000\n--- a/dev/null\n+++ b/p/new.txt\n@@ -1,0 +1,2 @@\n+hello\n"}},"options":[{"optionId":"allow_once","kind":"allow_once","name":"Allow once"}]}}"#.to_string(),
        update(r#"{"sessionUpdate":"tool_call","toolCallId":"b1","title":"Prints","kind":"execute","status":"pending","rawInput":{"command":"echo hi"}}"#),
        update(r#"{"sessionUpdate":"tool_call_update","toolCallId":"b1","status":"completed","content":[{"type":"content","content":{"type":"text","text":"hi\n<shellId: 0 completed with exit code 0>"}}],"rawOutput":{"content":"hi","contents":[{"type":"shell_exit","shellId":"0","exitCode":3}]}}"#),
        update(r#"{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"Error: 400 scripted bad request"}}"#),
        update(r#"{"sessionUpdate":"usage_update","used":9459,"size":922000}"#),
        r#"{"jsonrpc":"2.0","id":4,"result":{"stopReason":"end_turn"}}"#.to_string(),
    ] {
        drafts.extend(adapter.convert(&line));
    }
    let mcp_tools: Vec<_> = drafts
        .iter()
        .filter_map(|d| match d {
            Draft::ItemStarted { tool: Some(t), .. }
            | Draft::ItemUpdated { tool: Some(t), .. }
            | Draft::ItemCompleted { tool: Some(t), .. }
                if t.name == "echo_upper" =>
            {
                Some(t)
            }
            _ => None,
        })
        .collect();
    assert!(
        mcp_tools.len() >= 2
            && mcp_tools.iter().all(|t| t.kind == ToolKind::Mcp && t.server.as_deref() == Some("echo")),
        "{mcp_tools:?}"
    );
    let asked: Vec<_> = drafts
        .iter()
        .filter_map(|d| match d {
            Draft::PermissionRequested { action, title, diff, .. } => Some((*action, title.clone(), diff.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(asked[0].1, "Call echo_upper on the MCP server echo");
    assert_eq!(asked[1].0, tether_protocol::PermissionAction::FileWrite);
    assert!(
        asked[1].2.as_deref().unwrap_or("").starts_with("diff --git")
            && asked[1].2.as_deref().unwrap().contains("+hello"),
        "{asked:?}"
    );
    let shell = completed_tools(&drafts).into_iter().find(|(t, _)| t.kind == ToolKind::Shell).unwrap();
    assert_eq!(shell.0.exit_code, Some(3));
    assert_eq!(
        turns(&drafts),
        vec![(StopReason::Error, Some(("model_error".into(), "400 scripted bad request".into())))]
    );
    // The same text from a turn that answered with usage is the model's own.
    adapter.user_message(&[Part::text("again")]);
    adapter.take_output();
    adapter.convert(&update(
        r#"{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"Error: is a word"}}"#,
    ));
    let drafts = adapter.convert(r#"{"jsonrpc":"2.0","id":5,"result":{"stopReason":"end_turn","usage":{"inputTokens":4,"outputTokens":2,"totalTokens":6}}}"#);
    assert_eq!(turns(&drafts), vec![(StopReason::EndTurn, None)]);
}
