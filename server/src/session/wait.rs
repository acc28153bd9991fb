//! Waiting for a turn: folds a session's committed events into a
//! [`TurnProgress`] and follows the live bus until the turn ends, asks for an
//! answer (a permission or a question), the session ends, or a deadline
//! passes. It reads the log through the store's follower, as the event
//! streams do ([`crate::store::follow`]: subscribe first, then catch up from
//! the store, back to the store when the bus laps it or skips a `seq`), so
//! no event between the two is missed. It never changes a session.

use std::sync::Arc;

use tether_protocol::tools::{ToolBrief, TurnProgress, TurnState};
use tether_protocol::{
    event_type, Event, EventBody, Item, ItemKind, PermissionRequested, QuestionRequested, Role, SessionStatus,
    TurnCompleted, Usage,
};
use tokio::time::Instant;

use super::SessionError;
use super::Sessions;
use crate::store::follow::{Follower, Live, Page, Scope};
use crate::store::Committed;

/// Events read from the store per catch-up query.
const PAGE: u32 = 2000;
/// Characters kept of a tool's input and output in a report.
const BRIEF_CHARS: usize = 400;

/// One turn's story so far.
#[derive(Debug, Default)]
struct TurnSoFar {
    turn_id: String,
    completed: Option<TurnCompleted>,
    text: String,
    tools: Vec<ToolBrief>,
    usage: Option<Usage>,
}

/// The fold of a session's events for one wait.
#[derive(Debug)]
pub struct TurnFold {
    session_id: String,
    /// The turn asked for; `None` follows the latest turn.
    want: Option<String>,
    turn: Option<TurnSoFar>,
    permissions: Vec<PermissionRequested>,
    questions: Vec<QuestionRequested>,
    status: SessionStatus,
    session_ended: bool,
    /// Another turn started after the one followed completed (a queued message).
    next_turn_started: bool,
    last_seq: u64,
}

impl TurnFold {
    pub fn new(session_id: &str, want: Option<String>, status: SessionStatus) -> Self {
        TurnFold {
            session_id: session_id.to_string(),
            want,
            turn: None,
            permissions: Vec::new(),
            questions: Vec::new(),
            status,
            session_ended: false,
            next_turn_started: false,
            last_seq: 0,
        }
    }

    /// Whether an event of this type can change the report (deltas, logs and the like cannot).
    fn matters(etype: &str) -> bool {
        !matches!(etype, event_type::ITEM_DELTA | event_type::AGENT_LOG | event_type::AGENT_UNPARSED)
    }

    /// Takes in one committed event of the session.
    pub fn apply(&mut self, e: &Committed) {
        self.last_seq = self.last_seq.max(e.seq);
        if !Self::matters(e.etype) {
            return;
        }
        match serde_json::from_str::<Event>(&e.json) {
            Ok(event) => self.apply_body(event.body),
            Err(err) => {
                tracing::warn!(session = %self.session_id, seq = e.seq, error = %err, "unreadable stored event")
            }
        }
    }

    fn apply_body(&mut self, body: EventBody) {
        match body {
            EventBody::TurnStarted(t) if self.want.as_deref().is_none_or(|w| w == t.turn_id) => {
                self.turn = Some(TurnSoFar { turn_id: t.turn_id, ..TurnSoFar::default() });
            }
            EventBody::TurnStarted(_) if self.turn.as_ref().is_some_and(|t| t.completed.is_some()) => {
                self.next_turn_started = true;
            }
            EventBody::TurnCompleted(t) => {
                if let Some(turn) = self.turn.as_mut().filter(|turn| turn.turn_id == t.turn_id) {
                    if t.usage.is_some() {
                        turn.usage = t.usage.clone();
                    }
                    turn.completed = Some(t);
                }
            }
            EventBody::ItemStarted(i) | EventBody::ItemCompleted(i) => self.item(i.item),
            EventBody::UsageUpdated(u) => {
                if let Some(turn) = self.turn.as_mut().filter(|t| t.completed.is_none()) {
                    turn.usage = Some(u);
                }
            }
            EventBody::PermissionRequested(p) => self.permissions.push(p),
            EventBody::PermissionResolved(p) => self.permissions.retain(|o| o.permission_id != p.permission_id),
            EventBody::QuestionRequested(q) => self.questions.push(q),
            EventBody::QuestionResolved(q) => self.questions.retain(|o| o.question_id != q.question_id),
            EventBody::SessionStatus(s) => self.status = s.status,
            EventBody::SessionEnded(_) => {
                self.session_ended = true;
                self.permissions.clear();
                self.questions.clear();
            }
            _ => {}
        }
    }

    fn item(&mut self, item: Item) {
        let Some(turn) = self.turn.as_mut().filter(|t| t.turn_id == item.turn_id) else { return };
        match item.kind {
            ItemKind::Message if item.role == Some(Role::Assistant) => {
                let text = item.text();
                if !text.trim().is_empty() {
                    turn.text = text;
                }
            }
            ItemKind::ToolCall => {
                let Some(tool) = item.tool else { return };
                let input = (!tool.input.is_null()).then(|| brief(&tool.input.to_string()));
                let brief = ToolBrief {
                    item_id: item.item_id,
                    name: tool.name,
                    kind: tool.kind,
                    status: item.status,
                    server: tool.server,
                    input,
                    output: tool.output.as_deref().map(brief),
                };
                match turn.tools.iter_mut().find(|t| t.item_id == brief.item_id) {
                    Some(t) => *t = brief,
                    None => turn.tools.push(brief),
                }
            }
            _ => {}
        }
    }

    /// Nothing more will come for this wait: the turn is over or waits for
    /// an answer, there is no turn to follow, or the session is over.
    pub fn settled(&self) -> bool {
        match self.state() {
            _ if self.session_ended => true,
            TurnState::Running | TurnState::Queued => false,
            // The session's status after the turn (idle, or running the next
            // queued turn) follows `turn.completed`: report that one, not the
            // `running` of the turn that just ended.
            TurnState::Completed => self.status != SessionStatus::Running || self.next_turn_started,
            TurnState::Waiting | TurnState::None => true,
        }
    }

    fn state(&self) -> TurnState {
        match &self.turn {
            None if self.want.is_some() => TurnState::Queued,
            None => TurnState::None,
            Some(t) if t.completed.is_some() => TurnState::Completed,
            Some(_) if !self.permissions.is_empty() || !self.questions.is_empty() => TurnState::Waiting,
            Some(_) => TurnState::Running,
        }
    }

    pub fn report(&self, timed_out: bool) -> TurnProgress {
        let state = self.state();
        let turn = self.turn.as_ref();
        let completed = turn.and_then(|t| t.completed.as_ref());
        TurnProgress {
            session_id: self.session_id.clone(),
            turn_id: turn.map(|t| t.turn_id.clone()).or_else(|| self.want.clone()),
            state,
            done: state == TurnState::Completed,
            timed_out,
            session_status: self.status,
            stop_reason: completed.map(|c| c.stop_reason),
            text: turn.map(|t| t.text.clone()).unwrap_or_default(),
            tools: turn.map(|t| t.tools.clone()).unwrap_or_default(),
            usage: turn.and_then(|t| t.usage.clone()),
            error: completed.and_then(|c| c.error.as_ref()).map(|e| format!("{}: {}", e.code, e.message)),
            permissions: self.permissions.clone(),
            questions: self.questions.clone(),
            last_seq: self.last_seq,
        }
    }
}

/// The first `BRIEF_CHARS` characters of `s`, with an ellipsis when cut.
fn brief(s: &str) -> String {
    match s.char_indices().nth(BRIEF_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// A short line for a progress notification, for events worth one.
pub fn progress_line(e: &Committed) -> Option<String> {
    TurnFold::matters(e.etype).then(|| e.etype.to_string())
}

impl Sessions {
    /// Waits for a turn of a session (`turn_id`, or its latest) to settle or
    /// for `deadline`, calling `progress` with each event that matters while
    /// it waits. Dropping the future stops the wait.
    pub async fn wait_turn(
        self: &Arc<Self>,
        session_id: &str,
        turn_id: Option<String>,
        deadline: Instant,
        mut progress: impl FnMut(&Committed),
    ) -> Result<TurnProgress, SessionError> {
        // Subscribed before the first store read, so nothing committed in between is missed.
        let mut follower = Follower::subscribe(&self.store, Scope::Session(Arc::from(session_id)));
        let row = self.get(session_id).await?;
        let mut fold = TurnFold::new(session_id, turn_id, row.status);
        'outer: loop {
            loop {
                let (page, full) = follower.page(Page::rows(PAGE)).await?;
                for e in &page {
                    fold.apply(e);
                }
                if !full {
                    break;
                }
            }
            loop {
                if fold.settled() {
                    return Ok(fold.report(false));
                }
                let next = tokio::select! {
                    live = follower.recv() => live,
                    _ = tokio::time::sleep_until(deadline) => return Ok(fold.report(true)),
                };
                match next {
                    Live::Event(e) => {
                        fold.apply(&e);
                        progress(&e);
                    }
                    // Missed events (a lag, a skipped seq): read them from the store.
                    Live::Behind => continue 'outer,
                    Live::Closed => return Ok(fold.report(false)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn committed(seq: u64, etype: &'static str, data: serde_json::Value) -> Committed {
        let json = json!({"seq": seq, "gseq": seq, "session_id": "ses_1", "time": "2026-12-02T00:00:00.000Z",
            "source": "agent", "type": etype, "data": data})
        .to_string();
        Committed { session_id: Arc::from("ses_1"), seq, gseq: seq, etype, json, raw: None }
    }

    fn message(turn: &str, text: &str, status: &str) -> serde_json::Value {
        json!({"item": {"item_id": format!("itm_{text}"), "turn_id": turn, "kind": "message", "role": "assistant",
            "status": status, "content": [{"type": "text", "text": text}]}})
    }

    fn feed(fold: &mut TurnFold, events: &[Committed]) {
        for e in events {
            fold.apply(e);
        }
    }

    #[test]
    fn the_latest_turn_is_followed_to_its_end_with_its_last_assistant_text_and_tools() {
        let mut fold = TurnFold::new("ses_1", None, SessionStatus::Idle);
        assert_eq!(fold.report(false).state, TurnState::None);
        assert!(fold.settled(), "no turn: nothing to wait for");
        feed(
            &mut fold,
            &[
                committed(1, event_type::TURN_STARTED, json!({"turn_id": "trn_a", "input": []})),
                committed(2, event_type::ITEM_COMPLETED, message("trn_a", "old", "completed")),
                committed(3, event_type::TURN_COMPLETED, json!({"turn_id": "trn_a", "stop_reason": "end_turn"})),
                committed(4, event_type::TURN_STARTED, json!({"turn_id": "trn_b", "input": []})),
                committed(5, event_type::ITEM_COMPLETED, message("trn_b", "first", "completed")),
                committed(
                    6,
                    event_type::ITEM_STARTED,
                    json!({"item": {"item_id": "itm_t", "turn_id": "trn_b", "kind": "tool_call",
                    "status": "in_progress", "tool": {"name": "Bash", "kind": "shell", "input": {"command": "ls"}}}}),
                ),
                committed(7, event_type::ITEM_DELTA, json!({"item_id": "itm_t", "delta": {"output": "a"}})),
            ],
        );
        let r = fold.report(false);
        assert_eq!(
            (r.state, r.done, r.turn_id.as_deref(), r.text.as_str()),
            (TurnState::Running, false, Some("trn_b"), "first")
        );
        assert_eq!(r.tools.len(), 1);
        assert_eq!(r.tools[0].input.as_deref(), Some(r#"{"command":"ls"}"#));
        assert_eq!(r.last_seq, 7);
        assert!(!fold.settled());
        feed(
            &mut fold,
            &[
                committed(
                    8,
                    event_type::ITEM_COMPLETED,
                    json!({"item": {"item_id": "itm_t", "turn_id": "trn_b", "kind": "tool_call",
                    "status": "completed", "tool": {"name": "Bash", "kind": "shell", "input": {"command": "ls"}, "output": "a\n"}}}),
                ),
                committed(9, event_type::ITEM_COMPLETED, message("trn_b", "last", "completed")),
                committed(
                    10,
                    event_type::TURN_COMPLETED,
                    json!({"turn_id": "trn_b", "stop_reason": "end_turn",
                    "usage": {"input_tokens": 3, "output_tokens": 4}}),
                ),
            ],
        );
        let r = fold.report(false);
        assert!(fold.settled());
        assert_eq!((r.state, r.done, r.text.as_str()), (TurnState::Completed, true, "last"));
        assert_eq!(r.tools.len(), 1, "a tool call and its result are one brief");
        assert_eq!(r.tools[0].output.as_deref(), Some("a\n"));
        assert_eq!(r.usage.and_then(|u| u.output_tokens), Some(4));
    }

    #[test]
    fn a_named_turn_is_queued_until_it_starts_and_later_turns_do_not_replace_it() {
        let mut fold = TurnFold::new("ses_1", Some("trn_b".into()), SessionStatus::Running);
        feed(&mut fold, &[committed(1, event_type::TURN_STARTED, json!({"turn_id": "trn_a", "input": []}))]);
        assert_eq!(fold.report(false).state, TurnState::Queued);
        assert!(!fold.settled());
        feed(
            &mut fold,
            &[
                committed(2, event_type::TURN_COMPLETED, json!({"turn_id": "trn_a", "stop_reason": "end_turn"})),
                committed(3, event_type::TURN_STARTED, json!({"turn_id": "trn_b", "input": []})),
                committed(4, event_type::TURN_COMPLETED, json!({"turn_id": "trn_b", "stop_reason": "interrupted"})),
                committed(5, event_type::TURN_STARTED, json!({"turn_id": "trn_c", "input": []})),
            ],
        );
        let r = fold.report(false);
        assert_eq!(
            (r.turn_id.as_deref(), r.state, r.stop_reason),
            (Some("trn_b"), TurnState::Completed, Some(tether_protocol::StopReason::Interrupted))
        );
    }

    #[test]
    fn an_open_permission_or_question_settles_the_wait_until_it_is_answered() {
        let mut fold = TurnFold::new("ses_1", None, SessionStatus::Running);
        feed(
            &mut fold,
            &[
                committed(1, event_type::TURN_STARTED, json!({"turn_id": "trn_a", "input": []})),
                committed(
                    2,
                    event_type::PERMISSION_REQUESTED,
                    json!({"permission_id": "per_1", "action": "shell", "title": "Run ls",
                    "options": ["allow_once", "deny"]}),
                ),
            ],
        );
        let r = fold.report(false);
        assert_eq!((r.state, r.permissions.len()), (TurnState::Waiting, 1));
        assert!(fold.settled());
        feed(
            &mut fold,
            &[committed(
                3,
                event_type::PERMISSION_RESOLVED,
                json!({"permission_id": "per_1", "decision": "allow_once", "by": "client"}),
            )],
        );
        assert_eq!(fold.report(false).state, TurnState::Running);
        feed(
            &mut fold,
            &[committed(4, event_type::QUESTION_REQUESTED, json!({"question_id": "qst_1", "questions": []}))],
        );
        assert_eq!(fold.report(false).questions.len(), 1);
        assert!(fold.settled());
    }

    #[test]
    fn a_completed_turn_is_reported_with_the_status_that_follows_it() {
        let mut fold = TurnFold::new("ses_x", Some("trn_a".into()), SessionStatus::Running);
        feed(
            &mut fold,
            &[
                committed(1, event_type::TURN_STARTED, json!({"turn_id": "trn_a", "input": []})),
                committed(2, event_type::TURN_COMPLETED, json!({"turn_id": "trn_a", "stop_reason": "end_turn"})),
            ],
        );
        assert!(!fold.settled(), "the session still says running: its status after the turn is on its way");
        feed(&mut fold, &[committed(3, event_type::SESSION_STATUS, json!({"status": "idle"}))]);
        assert!(fold.settled());
        let r = fold.report(false);
        assert_eq!((r.done, r.session_status), (true, SessionStatus::Idle));

        // A queued message starts the next turn at once: that is the status to report.
        let mut fold = TurnFold::new("ses_x", Some("trn_a".into()), SessionStatus::Running);
        feed(
            &mut fold,
            &[
                committed(1, event_type::TURN_STARTED, json!({"turn_id": "trn_a", "input": []})),
                committed(2, event_type::TURN_COMPLETED, json!({"turn_id": "trn_a", "stop_reason": "end_turn"})),
                committed(3, event_type::TURN_STARTED, json!({"turn_id": "trn_b", "input": []})),
            ],
        );
        assert!(fold.settled());
        assert_eq!(fold.report(false).turn_id.as_deref(), Some("trn_a"));
    }
}
