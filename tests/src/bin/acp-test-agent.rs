//! `acp-test-agent`: a tiny agent that speaks the Agent Client Protocol over
//! stdio, written with the protocol crate's agent side — what a user
//! declares in tether's agents file (tests/tests/acp.rs). Its turns, by the
//! prompt's text:
//!
//! - `[acp:write PATH]`: a tool call (kind `edit`, a diff creating PATH with
//!   [`WRITTEN`]), a permission request (allow once / always / reject), then
//!   the client's `fs/write_text_file`; says `Write result: ok`, `Write
//!   result: denied` or `Write result: error: <the client's message>`.
//! - `[acp:read PATH]`: the client's `fs/read_text_file`; says `Read: <text>`
//!   or `Read error: <message>`.
//! - anything else: `Echo: <prompt>`, in two chunks.
//!
//! Every turn ends `end_turn`; a cancel ends the running one `cancelled`.
#![allow(clippy::print_stderr)]

use agent_client_protocol::v1::schema::{
    AgentCapabilities, CancelNotification, ContentBlock, ContentChunk, Diff, Implementation, InitializeRequest,
    InitializeResponse, NewSessionRequest, NewSessionResponse, PermissionOption, PermissionOptionKind, PromptRequest,
    PromptResponse, ReadTextFileRequest, RequestPermissionOutcome, RequestPermissionRequest, SessionId,
    SessionNotification, SessionUpdate, StopReason, ToolCall, ToolCallContent, ToolCallLocation, ToolCallStatus,
    ToolCallUpdate, ToolCallUpdateFields, ToolKind, WriteTextFileRequest,
};
use agent_client_protocol::{on_receive_notification, on_receive_request, Agent, Result, Stdio};

/// What `[acp:write PATH]` writes.
const WRITTEN: &str = "written by the acp test agent\n";

/// `[acp:TAG ARG]` in `text`: (TAG, ARG).
fn tag(text: &str) -> Option<(&str, &str)> {
    let start = text.find("[acp:")? + 5;
    let end = start + text[start..].find(']')?;
    let inner = &text[start..end];
    Some(inner.split_once(' ').unwrap_or((inner, "")))
}

fn say(text: &str) -> SessionUpdate {
    SessionUpdate::AgentMessageChunk(ContentChunk::new(ContentBlock::from(text.to_string())))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    Agent
        .v1()
        .name("acp-test-agent")
        .on_receive_request(
            async |req: InitializeRequest, responder, _cx| {
                responder.respond(
                    InitializeResponse::new(req.protocol_version)
                        .agent_capabilities(AgentCapabilities::new().load_session(false))
                        .agent_info(Implementation::new("acp-test-agent", "0.1.0")),
                )
            },
            on_receive_request!(),
        )
        .on_receive_request(
            async |_req: NewSessionRequest, responder, _cx| {
                responder.respond(NewSessionResponse::new(format!("acp-test-{}", std::process::id())))
            },
            on_receive_request!(),
        )
        .on_receive_request(
            async |req: PromptRequest, responder, cx| {
                // A handler holds the dispatch loop: the turn, which waits on
                // the client, runs in a task of its own.
                let cx2 = cx.clone();
                cx.spawn(async move {
                    let sid: SessionId = req.session_id.clone();
                    let text: String = req
                        .prompt
                        .iter()
                        .filter_map(|b| match b {
                            ContentBlock::Text(t) => Some(t.text.clone()),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .join("\n");
                    let notify =
                        |update: SessionUpdate| cx2.send_notification(SessionNotification::new(sid.clone(), update));
                    match tag(&text) {
                        Some(("write", path)) => {
                            let call = ToolCall::new("write-1", format!("Write {path}"))
                                .kind(ToolKind::Edit)
                                .status(ToolCallStatus::Pending)
                                .locations(vec![ToolCallLocation::new(path)])
                                .content(vec![ToolCallContent::Diff(Diff::new(path, WRITTEN))]);
                            notify(SessionUpdate::ToolCall(call))?;
                            let ask = RequestPermissionRequest::new(
                                sid.clone(),
                                ToolCallUpdate::new("write-1", ToolCallUpdateFields::new()),
                                vec![
                                    PermissionOption::new("allow", "Allow", PermissionOptionKind::AllowOnce),
                                    PermissionOption::new("always", "Always allow", PermissionOptionKind::AllowAlways),
                                    PermissionOption::new("reject", "Reject", PermissionOptionKind::RejectOnce),
                                ],
                            );
                            let answer = cx2.send_request(ask).block_task().await?;
                            let (status, said) = match &answer.outcome {
                                RequestPermissionOutcome::Selected(s) if s.option_id.0.as_ref() != "reject" => {
                                    let write = WriteTextFileRequest::new(sid.clone(), path, WRITTEN);
                                    match cx2.send_request(write).block_task().await {
                                        Ok(_) => (ToolCallStatus::Completed, "Write result: ok".to_string()),
                                        Err(e) => {
                                            (ToolCallStatus::Failed, format!("Write result: error: {}", e.message))
                                        }
                                    }
                                }
                                RequestPermissionOutcome::Selected(_) => {
                                    (ToolCallStatus::Failed, "Write result: denied".to_string())
                                }
                                _ => return responder.respond(PromptResponse::new(StopReason::Cancelled)),
                            };
                            let done = ToolCallUpdate::new(
                                "write-1",
                                ToolCallUpdateFields::new()
                                    .status(status)
                                    .content(vec![ToolCallContent::from(ContentBlock::from(said.clone()))]),
                            );
                            notify(SessionUpdate::ToolCallUpdate(done))?;
                            notify(say(&said))?;
                        }
                        Some(("read", path)) => {
                            let read = ReadTextFileRequest::new(sid.clone(), path);
                            let said = match cx2.send_request(read).block_task().await {
                                Ok(r) => format!("Read: {}", r.content),
                                Err(e) => format!("Read error: {}", e.message),
                            };
                            notify(say(&said))?;
                        }
                        _ => {
                            notify(say("Echo: "))?;
                            notify(say(&text))?;
                        }
                    }
                    responder.respond(PromptResponse::new(StopReason::EndTurn))
                })
            },
            on_receive_request!(),
        )
        .on_receive_notification(async |_n: CancelNotification, _cx| Ok(()), on_receive_notification!())
        .connect_to(Stdio::new())
        .await
}
