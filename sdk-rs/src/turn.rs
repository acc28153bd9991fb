//! Helpers an orchestrator wants on top of the routes: run a whole turn
//! (deciding its permissions and questions through a [`Decider`]) and wait
//! for a session status. Both follow the session's event stream from the
//! session's last `seq` before acting, so nothing that happens in between
//! is missed.

use std::time::Duration;

use tether_protocol::{
    Decision, EventBody, Item, ItemKind, PermissionReply, PermissionRequested, QuestionReply, QuestionRequested, Role,
    SendMessage, Session, SessionStatus, StopReason, TurnError, Usage,
};

use crate::error::{Error, Result};
use crate::Client;

/// Decides the permissions and questions a turn opens, as they come.
pub trait Decider {
    /// The answer to a permission request.
    fn permission(&mut self, request: &PermissionRequested) -> PermissionReply;

    /// The answer to a question; by default the question is rejected.
    fn question(&mut self, request: &QuestionRequested) -> QuestionReply {
        let _ = request;
        QuestionReply { answers: None, reject: true }
    }
}

/// Allows every permission once and rejects every question.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Decider for AllowAll {
    fn permission(&mut self, request: &PermissionRequested) -> PermissionReply {
        let decision =
            if request.options.contains(&Decision::AllowOnce) { Decision::AllowOnce } else { Decision::AllowAlways };
        PermissionReply { decision, message: None }
    }
}

/// Denies every permission and rejects every question.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenyAll;

impl Decider for DenyAll {
    fn permission(&mut self, _: &PermissionRequested) -> PermissionReply {
        PermissionReply { decision: Decision::Deny, message: None }
    }
}

/// A [`Decider`] made of two closures.
pub struct DecideWith<P, Q> {
    pub permission: P,
    pub question: Q,
}

impl<P, Q> Decider for DecideWith<P, Q>
where
    P: FnMut(&PermissionRequested) -> PermissionReply,
    Q: FnMut(&QuestionRequested) -> QuestionReply,
{
    fn permission(&mut self, request: &PermissionRequested) -> PermissionReply {
        (self.permission)(request)
    }
    fn question(&mut self, request: &QuestionRequested) -> QuestionReply {
        (self.question)(request)
    }
}

/// Options of [`Client::run_turn_with`].
#[derive(Debug, Clone)]
pub struct TurnOptions {
    /// Give up (with [`Error::Timeout`]) when the turn has not completed by
    /// then; the turn goes on on the server. Default 10 minutes.
    pub timeout: Duration,
    /// Interrupt the turn when the timeout passes. Default false.
    pub interrupt_on_timeout: bool,
}

impl Default for TurnOptions {
    fn default() -> Self {
        TurnOptions { timeout: Duration::from_secs(600), interrupt_on_timeout: false }
    }
}

/// A finished turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnReport {
    pub session_id: String,
    pub turn_id: String,
    pub stop_reason: StopReason,
    /// Set when `stop_reason` is `error`.
    pub error: Option<TurnError>,
    /// The turn's items as they completed (messages, reasoning, tool calls,
    /// plans), in order.
    pub items: Vec<Item>,
    /// The text of the turn's last assistant message ("" when there is none).
    pub text: String,
    pub usage: Option<Usage>,
    /// Every permission the turn asked, with the decision sent.
    pub permissions: Vec<(PermissionRequested, Decision)>,
    /// Every question the turn asked, with the reply sent.
    pub questions: Vec<(QuestionRequested, QuestionReply)>,
    /// The `seq` of the turn's `turn.completed`.
    pub last_seq: u64,
}

impl TurnReport {
    /// The tool calls of the turn.
    pub fn tool_calls(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|item| item.kind == ItemKind::ToolCall)
    }
}

impl Client {
    /// Sends `text` to the session and follows the turn to its end:
    /// permissions and questions it opens are answered by `decider` as
    /// they come. See [`run_turn_with`](Self::run_turn_with).
    pub async fn run_turn(
        &self,
        session_id: impl AsRef<str>,
        text: impl Into<String>,
        decider: &mut impl Decider,
    ) -> Result<TurnReport> {
        self.run_turn_with(session_id, &SendMessage::text(text), decider, &TurnOptions::default()).await
    }

    /// Sends `message` and follows the turn it starts to its
    /// `turn.completed`, answering permissions and questions through
    /// `decider`. A reply the server refuses because the request was
    /// already resolved (by another client, a timeout) is not an error.
    /// Errors: the send's own (409 `conflict` while another turn runs),
    /// [`Error::Timeout`] after `options.timeout`, [`Error::SessionEnded`]
    /// when the session ends first, or the stream's fatal error.
    pub async fn run_turn_with(
        &self,
        session_id: impl AsRef<str>,
        message: &SendMessage,
        decider: &mut impl Decider,
        options: &TurnOptions,
    ) -> Result<TurnReport> {
        let id = session_id.as_ref();
        let deadline = tokio::time::Instant::now() + options.timeout;
        let session = self.get_session(id).await?;
        let mut events = self.session_events(id, Some(session.last_seq));
        let turn_id = self.send_message(id, message).await?.turn_id;
        let mut report = TurnReport {
            session_id: id.to_owned(),
            turn_id: turn_id.clone(),
            stop_reason: StopReason::EndTurn,
            error: None,
            items: Vec::new(),
            text: String::new(),
            usage: None,
            permissions: Vec::new(),
            questions: Vec::new(),
            last_seq: 0,
        };
        // Permissions and questions belong to the turn running when they
        // open: ours once its turn.started has been seen.
        let mut ours = false;
        loop {
            let next = match tokio::time::timeout_at(deadline, events.next_event()).await {
                Ok(next) => next,
                Err(_) => {
                    if options.interrupt_on_timeout {
                        let _ = self.interrupt(id).await;
                    }
                    let secs = options.timeout.as_secs_f64();
                    return Err(Error::Timeout(format!("turn {turn_id} of {id} not completed within {secs} s")));
                }
            };
            let event = match next {
                Some(Ok(event)) => event,
                // The stream goes on by itself after these.
                Some(Err(Error::CursorAhead(_) | Error::Decode(_))) => continue,
                Some(Err(e)) => return Err(e),
                None => return Err(Error::Decode(format!("the event stream of {id} ended"))),
            };
            match event.body {
                EventBody::TurnStarted(started) => ours = started.turn_id == turn_id,
                EventBody::ItemCompleted(done) if done.item.turn_id == turn_id => {
                    if done.item.kind == ItemKind::Message && done.item.role == Some(Role::Assistant) {
                        report.text = done.item.text();
                    }
                    match report.items.iter_mut().find(|item| item.item_id == done.item.item_id) {
                        Some(item) => *item = done.item,
                        None => report.items.push(done.item),
                    }
                }
                EventBody::UsageUpdated(usage) if ours => report.usage = Some(usage),
                EventBody::PermissionRequested(request) if ours => {
                    let reply = decider.permission(&request);
                    self.reply_or_resolved(self.reply_permission(id, &request.permission_id, &reply).await)?;
                    report.permissions.push((request, reply.decision));
                }
                EventBody::QuestionRequested(request) if ours => {
                    let reply = decider.question(&request);
                    self.reply_or_resolved(self.reply_question(id, &request.question_id, &reply).await)?;
                    report.questions.push((request, reply));
                }
                EventBody::TurnCompleted(done) if done.turn_id == turn_id => {
                    report.stop_reason = done.stop_reason;
                    report.error = done.error;
                    if done.usage.is_some() {
                        report.usage = done.usage;
                    }
                    report.last_seq = event.seq;
                    return Ok(report);
                }
                EventBody::SessionEnded(_) => return Err(Error::SessionEnded(id.to_owned())),
                _ => {}
            }
        }
    }

    /// A reply refused as `conflict` (already resolved) is fine.
    fn reply_or_resolved(&self, result: Result<()>) -> Result<()> {
        match result {
            Err(Error::Api { code: tether_protocol::ErrorCode::Conflict, .. }) => Ok(()),
            other => other,
        }
    }

    /// Waits until the session's status is one of `statuses` and answers the
    /// session then; at once if it already is. [`Error::Timeout`] after
    /// `timeout`.
    pub async fn wait_for_status(
        &self,
        session_id: impl AsRef<str>,
        statuses: &[SessionStatus],
        timeout: Duration,
    ) -> Result<Session> {
        let id = session_id.as_ref();
        let deadline = tokio::time::Instant::now() + timeout;
        let session = self.get_session(id).await?;
        if statuses.contains(&session.status) {
            return Ok(session);
        }
        let mut events = self.session_events(id, Some(session.last_seq));
        loop {
            let next = tokio::time::timeout_at(deadline, events.next_event()).await.map_err(|_| {
                let wanted: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
                Error::Timeout(format!("{id} not {} within {} s", wanted.join("|"), timeout.as_secs_f64()))
            })?;
            let status = match next {
                Some(Ok(event)) => match event.body {
                    EventBody::SessionStatus(data) => data.status,
                    EventBody::SessionEnded(_) => SessionStatus::Ended,
                    _ => continue,
                },
                Some(Err(Error::CursorAhead(_) | Error::Decode(_))) => continue,
                Some(Err(e)) => return Err(e),
                None => return Err(Error::Decode(format!("the event stream of {id} ended"))),
            };
            if statuses.contains(&status) {
                let session = self.get_session(id).await?;
                // The status may have moved on again since; the event said it was reached.
                return Ok(Session { status, ..session });
            }
            if status == SessionStatus::Ended {
                return Err(Error::SessionEnded(id.to_owned()));
            }
        }
    }
}
