//! Turns into spans: a follower of the event log (off the event path, like
//! the webhooks) that reads the events about turns, tools and waits and
//! builds one trace per turn following the OpenTelemetry GenAI conventions:
//!
//! - `invoke_agent {agent}`: the turn, from `turn.started` to `turn.completed`,
//!   with the ids `turn.started` recorded (so a client, a webhook receiver
//!   and the collector name the same trace); a child of the caller's span
//!   when it sent a `traceparent`;
//! - `execute_tool {tool}`: each tool call (inside the task that ran it when
//!   a subagent did), its kind, MCP server and exit code;
//! - `chat {model}`: the model's messages and reasoning, where the agent reports them;
//! - `permission {action}` and `question`: how long a person took to answer.
//!
//! Prompts, outputs, tool arguments and results are attributes only when
//! content capture was asked for. Every measure also goes to [`Stats`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Array, Context, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SamplingDecision, ShouldSample, SpanData, SpanEvents, SpanLinks,
};
use tether_protocol::{event_type, Event, EventBody, ItemKind, ItemStatus, Role, StopReason, TurnTrace, Usage};

use super::stats::Stats;
use crate::store::follow::{Follower, Live, Page, Scope};
use crate::store::{Committed, Store};

/// Where finished spans go (the exporter's bounded queue).
pub trait SpanSink: Send {
    fn send(&self, span: SpanData);
}

struct OpenSpan {
    span_id: SpanId,
    parent: SpanId,
    name: String,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    events: SpanEvents,
    /// For the metrics: the tool's kind (tool calls only).
    tool_kind: Option<&'static str>,
}

struct OpenTurn {
    turn_id: String,
    trace_id: TraceId,
    /// The caller's span, when the turn joined its trace.
    remote_parent: Option<SpanId>,
    sampled: bool,
    span: OpenSpan,
    /// Tool calls and model messages by item id.
    items: HashMap<String, OpenSpan>,
    /// Permission requests and questions by their id.
    waits: HashMap<String, OpenSpan>,
    usage: Option<Usage>,
    output: String,
}

#[derive(Default)]
struct SessionState {
    agent: String,
    model: Option<String>,
    turn: Option<OpenTurn>,
}

pub struct Turns {
    store: Store,
    stats: Arc<Stats>,
    sink: Option<Box<dyn SpanSink>>,
    sampler: Option<Box<dyn ShouldSample>>,
    content: bool,
    scope: InstrumentationScope,
    sessions: HashMap<Arc<str>, SessionState>,
    ids: RandomIdGenerator,
}

impl Turns {
    /// Spans go to `sink` (none: only the metrics are kept), sampled by
    /// `sampler`; `content`: prompts, outputs and tool data are attributes.
    pub fn new(
        store: Store,
        stats: Arc<Stats>,
        sink: Option<Box<dyn SpanSink>>,
        sampler: Option<Box<dyn ShouldSample>>,
        content: bool,
    ) -> Turns {
        let scope = InstrumentationScope::builder("tether").with_version(env!("CARGO_PKG_VERSION")).build();
        Turns {
            store,
            stats,
            sink,
            sampler,
            content,
            scope,
            sessions: HashMap::new(),
            ids: RandomIdGenerator::default(),
        }
    }

    /// Follows the log from its end until the store closes.
    pub async fn run(mut self) {
        let store = self.store.clone();
        let mut follower = Follower::subscribe(&store, Scope::Global);
        let end = match store.read(crate::store::reader::last_gseq).await {
            Ok(end) => end,
            Err(e) => {
                tracing::warn!(error = %e, "telemetry: cannot read the store; no turns are measured");
                return;
            }
        };
        follower = follower.at(end);
        loop {
            match follower.recv().await {
                Live::Event(e) => self.take(&e).await,
                Live::Behind => loop {
                    match follower.page(Page::rows(1000)).await {
                        Ok((events, more)) => {
                            for e in &events {
                                self.take(e).await;
                            }
                            if !more {
                                break;
                            }
                        }
                        Err(e) => {
                            // A stalled store: try again in a moment rather than spin.
                            tracing::warn!(error = %e, "telemetry: cannot read the events it missed");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                },
                Live::Closed => break,
            }
        }
    }

    async fn take(&mut self, e: &Committed) {
        self.stats.events(1);
        let wanted = [
            event_type::SESSION_STARTED,
            event_type::SESSION_ENDED,
            event_type::TURN_STARTED,
            event_type::TURN_COMPLETED,
            event_type::ITEM_STARTED,
            event_type::ITEM_COMPLETED,
            event_type::PERMISSION_REQUESTED,
            event_type::PERMISSION_RESOLVED,
            event_type::QUESTION_REQUESTED,
            event_type::QUESTION_RESOLVED,
            event_type::USAGE_UPDATED,
            event_type::ERROR,
        ];
        if !wanted.contains(&e.etype) {
            return;
        }
        // An agent reports itself (session.started) once it has its first
        // message: the session's record says which agent and model it is.
        if e.etype == event_type::TURN_STARTED && self.sessions.get(&*e.session_id).is_none_or(|s| s.agent.is_empty()) {
            let id = e.session_id.to_string();
            if let Ok(Some(row)) = self.store.read(move |c| crate::store::reader::get_session(c, &id)).await {
                let state = self.sessions.entry(e.session_id.clone()).or_default();
                state.agent = row.agent;
                state.model = state.model.take().or(row.model);
            }
        }
        if e.etype == event_type::SESSION_ENDED {
            // Its turns are over (the normalizer closed them first): nothing to keep.
            self.sessions.remove(&*e.session_id);
            return;
        }
        let Ok(event) = serde_json::from_str::<Event>(&e.json) else { return };
        self.event(event);
    }

    /// One event of the log (the ones about turns; others are ignored).
    fn event(&mut self, event: Event) {
        let at = parse_time(&event.time);
        let session: Arc<str> = event.session_id.as_str().into();
        let state = self.sessions.entry(session.clone()).or_default();
        match event.body {
            EventBody::SessionStarted(s) => {
                if let (Some(turn), Some(model)) = (state.turn.as_mut(), &s.model) {
                    turn.span.attributes.push(KeyValue::new("gen_ai.response.model", model.clone()));
                }
                state.agent = s.agent;
                state.model = s.model.or(state.model.take());
            }
            EventBody::TurnStarted(t) => {
                let input = self.content.then(|| serde_json::to_string(&t.input).unwrap_or_default());
                let turn = self.open_turn(&session, t.turn_id, t.trace, at, input);
                if let Some(state) = self.sessions.get_mut(&session) {
                    state.turn = turn;
                }
            }
            EventBody::ItemStarted(i) => {
                let item = i.item;
                let model = state.model.clone().unwrap_or_else(|| state.agent.clone());
                let Some(turn) = state.turn.as_mut().filter(|t| t.turn_id == item.turn_id) else { return };
                let parent = item
                    .parent_item_id
                    .as_ref()
                    .and_then(|p| turn.items.get(p))
                    .map(|s| s.span_id)
                    .unwrap_or(turn.span.span_id);
                let span = match (item.kind, &item.tool, item.role) {
                    (ItemKind::ToolCall, Some(tool), _) => {
                        let kind = tool_kind(tool.kind);
                        let mut attrs = vec![
                            KeyValue::new("gen_ai.operation.name", "execute_tool"),
                            KeyValue::new("gen_ai.tool.name", tool.name.clone()),
                            KeyValue::new(
                                "gen_ai.tool.call.id",
                                item.native_id.clone().unwrap_or(item.item_id.clone()),
                            ),
                            KeyValue::new(
                                "gen_ai.tool.type",
                                if tool.kind == tether_protocol::ToolKind::Mcp { "extension" } else { "function" },
                            ),
                            KeyValue::new("tether.tool.kind", kind),
                            KeyValue::new("tether.item.id", item.item_id.clone()),
                        ];
                        if let Some(server) = &tool.server {
                            attrs.push(KeyValue::new("tether.mcp.server", server.clone()));
                        }
                        let mut s = self_span(&self.ids, parent, format!("execute_tool {}", tool.name), at, attrs);
                        s.tool_kind = Some(kind);
                        s
                    }
                    (ItemKind::Message, _, Some(Role::Assistant)) | (ItemKind::Reasoning, _, _) => {
                        let kind = if item.kind == ItemKind::Message { "message" } else { "reasoning" };
                        let attrs = vec![
                            KeyValue::new("gen_ai.operation.name", "chat"),
                            KeyValue::new("tether.item.kind", kind),
                            KeyValue::new("tether.item.id", item.item_id.clone()),
                        ];
                        self_span(&self.ids, parent, format!("chat {model}"), at, attrs)
                    }
                    _ => return,
                };
                turn.items.insert(item.item_id, span);
            }
            EventBody::ItemCompleted(i) => {
                let item = i.item;
                let content = self.content;
                let Some(turn) = state.turn.as_mut().filter(|t| t.turn_id == item.turn_id) else { return };
                let Some(mut span) = turn.items.remove(&item.item_id) else { return };
                let status = item_status(item.status);
                let mut failed = None;
                if let Some(tool) = &item.tool {
                    span.attributes.push(KeyValue::new("tether.tool.status", status));
                    if let Some(code) = tool.exit_code {
                        span.attributes.push(KeyValue::new("process.exit.code", code as i64));
                    }
                    if content {
                        // Complete only now: agents stream a call's arguments.
                        if !tool.input.is_null() {
                            span.attributes.push(KeyValue::new("gen_ai.tool.call.arguments", tool.input.to_string()));
                        }
                        if let Some(output) = &tool.output {
                            span.attributes.push(KeyValue::new("gen_ai.tool.call.result", output.clone()));
                        }
                    }
                    if item.status == ItemStatus::Failed {
                        failed = Some(tool.output.clone().unwrap_or_else(|| "the tool call failed".into()));
                    }
                    if let Some(kind) = span.tool_kind {
                        self.stats.tool(kind, status, secs(span.start, at));
                    }
                } else if item.kind == ItemKind::Message {
                    let text = item.text();
                    if content && !text.is_empty() {
                        turn.output.push_str(&text);
                        let messages =
                            serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": text}]}]);
                        span.attributes.push(KeyValue::new("gen_ai.output.messages", messages.to_string()));
                    }
                }
                let status = match failed {
                    Some(why) => {
                        span.attributes.push(KeyValue::new("error.type", "tool_failed"));
                        Status::error(why)
                    }
                    None => Status::Unset,
                };
                let (trace_id, sampled) = (turn.trace_id, turn.sampled);
                self.emit(trace_id, sampled, false, span, at, status);
            }
            EventBody::PermissionRequested(p) => {
                let content = self.content;
                let Some(turn) = state.turn.as_mut() else { return };
                let parent =
                    p.item_id.as_ref().and_then(|i| turn.items.get(i)).map(|s| s.span_id).unwrap_or(turn.span.span_id);
                let action = serde_json::to_value(p.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let mut attrs = vec![
                    KeyValue::new("tether.permission.id", p.permission_id.clone()),
                    KeyValue::new("tether.permission.action", action.clone()),
                ];
                if content {
                    attrs.push(KeyValue::new("tether.permission.title", p.title.clone()));
                    if let Some(c) = &p.command {
                        attrs.push(KeyValue::new("tether.permission.command", c.clone()));
                    }
                }
                let span = self_span(&self.ids, parent, format!("permission {action}"), at, attrs);
                turn.waits.insert(p.permission_id, span);
            }
            EventBody::PermissionResolved(p) => {
                let Some(turn) = state.turn.as_mut() else { return };
                let Some(mut span) = turn.waits.remove(&p.permission_id) else { return };
                let decision = match p.decision {
                    tether_protocol::Decision::AllowOnce => "allow_once",
                    tether_protocol::Decision::AllowAlways => "allow_always",
                    tether_protocol::Decision::Deny => "deny",
                };
                let by = match p.by {
                    tether_protocol::ResolvedBy::Client => "client",
                    tether_protocol::ResolvedBy::Mode => "mode",
                    tether_protocol::ResolvedBy::Agent => "agent",
                };
                span.attributes.push(KeyValue::new("tether.permission.decision", decision));
                span.attributes.push(KeyValue::new("tether.permission.resolved_by", by));
                self.stats.permission_wait(decision, secs(span.start, at));
                let (trace_id, sampled) = (turn.trace_id, turn.sampled);
                self.emit(trace_id, sampled, false, span, at, Status::Unset);
            }
            EventBody::QuestionRequested(q) => {
                let Some(turn) = state.turn.as_mut() else { return };
                let attrs = vec![
                    KeyValue::new("tether.question.id", q.question_id.clone()),
                    KeyValue::new("tether.question.count", q.questions.len() as i64),
                ];
                let span = self_span(&self.ids, turn.span.span_id, "question".to_string(), at, attrs);
                turn.waits.insert(q.question_id, span);
            }
            EventBody::QuestionResolved(q) => {
                let Some(turn) = state.turn.as_mut() else { return };
                let Some(mut span) = turn.waits.remove(&q.question_id) else { return };
                let outcome = if q.rejected { "rejected" } else { "answered" };
                span.attributes.push(KeyValue::new("tether.question.outcome", outcome));
                self.stats.question_wait(outcome, secs(span.start, at));
                let (trace_id, sampled) = (turn.trace_id, turn.sampled);
                self.emit(trace_id, sampled, false, span, at, Status::Unset);
            }
            EventBody::UsageUpdated(u) => {
                if let Some(turn) = state.turn.as_mut() {
                    turn.usage = Some(u);
                }
            }
            EventBody::Error(e) => {
                if let Some(turn) = state.turn.as_mut() {
                    turn.span.events.events.push(opentelemetry::trace::Event::new(
                        "error",
                        at,
                        vec![
                            KeyValue::new("error.type", e.code),
                            KeyValue::new("error.message", e.message),
                            KeyValue::new("tether.error.retryable", e.retryable),
                        ],
                        0,
                    ));
                }
            }
            EventBody::TurnCompleted(c) => {
                let Some(mut turn) = state.turn.take().filter(|t| t.turn_id == c.turn_id) else { return };
                let agent = state.agent.clone();
                let model = state.model.clone().unwrap_or_default();
                // What is still open ends with the turn.
                let (trace_id, sampled) = (turn.trace_id, turn.sampled);
                for (_, span) in turn.items.drain().chain(turn.waits.drain()) {
                    self.emit(trace_id, sampled, false, span, at, Status::Unset);
                }
                let stop = stop_reason(c.stop_reason);
                let usage = c.usage.or(turn.usage.take());
                let span = &mut turn.span;
                span.attributes.push(KeyValue::new(
                    "gen_ai.response.finish_reasons",
                    Value::Array(Array::String(vec![StringValue::from(stop)])),
                ));
                if let Some(u) = &usage {
                    if let Some(n) = u.input_tokens {
                        span.attributes.push(KeyValue::new("gen_ai.usage.input_tokens", n as i64));
                    }
                    if let Some(n) = u.output_tokens {
                        span.attributes.push(KeyValue::new("gen_ai.usage.output_tokens", n as i64));
                    }
                    if let Some(n) = u.cached_input_tokens {
                        span.attributes.push(KeyValue::new("gen_ai.usage.cache_read.input_tokens", n as i64));
                    }
                    if let Some(cost) = u.cost_usd {
                        span.attributes.push(KeyValue::new("tether.usage.cost_usd", cost));
                    }
                    self.stats.usage(&agent, &model, u);
                }
                if self.content && !turn.output.is_empty() {
                    let messages =
                        serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": turn.output}]}]);
                    span.attributes.push(KeyValue::new("gen_ai.output.messages", messages.to_string()));
                }
                let status = match (&c.stop_reason, &c.error) {
                    (StopReason::Error, Some(err)) => {
                        span.attributes.push(KeyValue::new("error.type", err.code.clone()));
                        Status::error(err.message.clone())
                    }
                    (StopReason::Error, None) => {
                        span.attributes.push(KeyValue::new("error.type", "error"));
                        Status::error("the turn ended with an error")
                    }
                    _ => Status::Unset,
                };
                self.stats.turn(&agent, stop, secs(turn.span.start, at));
                let remote = turn.remote_parent.is_some();
                self.emit(trace_id, sampled, remote, turn.span, at, status);
            }
            _ => {}
        }
    }

    fn open_turn(
        &mut self,
        session: &Arc<str>,
        turn_id: String,
        trace: Option<TurnTrace>,
        at: SystemTime,
        input: Option<String>,
    ) -> Option<OpenTurn> {
        let state = self.sessions.get(session)?;
        let trace_id =
            trace.as_ref().and_then(|t| TraceId::from_hex(&t.trace_id).ok()).unwrap_or_else(|| self.ids.new_trace_id());
        let span_id =
            trace.as_ref().and_then(|t| SpanId::from_hex(&t.span_id).ok()).unwrap_or_else(|| self.ids.new_span_id());
        let remote_parent =
            trace.as_ref().and_then(|t| t.parent_span_id.as_deref()).and_then(|p| SpanId::from_hex(p).ok());
        let mut attrs = vec![
            KeyValue::new("gen_ai.operation.name", "invoke_agent"),
            KeyValue::new("gen_ai.agent.name", state.agent.clone()),
            KeyValue::new("gen_ai.provider.name", provider(&state.agent)),
            KeyValue::new("gen_ai.system", provider(&state.agent)),
            KeyValue::new("gen_ai.conversation.id", session.to_string()),
            KeyValue::new("tether.session.id", session.to_string()),
            KeyValue::new("tether.turn.id", turn_id.clone()),
        ];
        if let Some(model) = &state.model {
            attrs.push(KeyValue::new("gen_ai.request.model", model.clone()));
        }
        if let Some(input) = input {
            attrs.push(KeyValue::new("gen_ai.input.messages", input));
        }
        let name = format!("invoke_agent {}", state.agent);
        // The caller's sampling decision, then the configured sampler's.
        let mut sampled = trace.as_ref().is_none_or(|t| t.sampled);
        if let Some(sampler) = &self.sampler {
            let parent = remote_parent.map(|p| {
                let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
                Context::new().with_remote_span_context(SpanContext::new(
                    trace_id,
                    p,
                    flags,
                    true,
                    TraceState::default(),
                ))
            });
            let decision = sampler.should_sample(parent.as_ref(), trace_id, &name, &SpanKind::Internal, &attrs, &[]);
            sampled = decision.decision == SamplingDecision::RecordAndSample;
        }
        let span = OpenSpan {
            span_id,
            parent: remote_parent.unwrap_or(SpanId::INVALID),
            name,
            start: at,
            attributes: attrs,
            events: SpanEvents::default(),
            tool_kind: None,
        };
        Some(OpenTurn {
            turn_id,
            trace_id,
            remote_parent,
            sampled,
            span,
            items: HashMap::new(),
            waits: HashMap::new(),
            usage: None,
            output: String::new(),
        })
    }

    fn emit(
        &self,
        trace_id: TraceId,
        sampled: bool,
        remote_parent: bool,
        span: OpenSpan,
        end: SystemTime,
        status: Status,
    ) {
        let Some(sink) = self.sink.as_ref().filter(|_| sampled) else { return };
        sink.send(SpanData {
            span_context: SpanContext::new(trace_id, span.span_id, TraceFlags::SAMPLED, false, TraceState::default()),
            parent_span_id: span.parent,
            parent_span_is_remote: remote_parent,
            span_kind: SpanKind::Internal,
            name: Cow::Owned(span.name),
            start_time: span.start,
            end_time: end.max(span.start),
            attributes: span.attributes,
            dropped_attributes_count: 0,
            events: span.events,
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        });
    }
}

fn self_span(
    ids: &RandomIdGenerator,
    parent: SpanId,
    name: String,
    start: SystemTime,
    attributes: Vec<KeyValue>,
) -> OpenSpan {
    OpenSpan {
        span_id: ids.new_span_id(),
        parent,
        name,
        start,
        attributes,
        events: SpanEvents::default(),
        tool_kind: None,
    }
}

/// Who serves the model the agent talks to (`gen_ai.provider.name`), as the registry says.
fn provider(agent: &str) -> &'static str {
    crate::agents::find(agent).map_or("_OTHER", |a| a.provider)
}

fn tool_kind(kind: tether_protocol::ToolKind) -> &'static str {
    use tether_protocol::ToolKind::*;
    match kind {
        Shell => "shell",
        FileEdit => "file_edit",
        FileRead => "file_read",
        Search => "search",
        Web => "web",
        Mcp => "mcp",
        Task => "task",
        Other => "other",
    }
}

fn item_status(status: ItemStatus) -> &'static str {
    match status {
        ItemStatus::InProgress => "in_progress",
        ItemStatus::Completed => "completed",
        ItemStatus::Failed => "failed",
        ItemStatus::Declined => "declined",
        ItemStatus::Cancelled => "cancelled",
    }
}

fn stop_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::EndTurn => "end_turn",
        StopReason::Interrupted => "interrupted",
        StopReason::Error => "error",
        StopReason::MaxTurns => "max_turns",
        StopReason::Refused => "refused",
    }
}

fn secs(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from).unwrap_or_default().as_secs_f64()
}

/// An event's `time` (RFC 3339 with milliseconds, as the server writes it).
fn parse_time(time: &str) -> SystemTime {
    crate::store::stored::time_ms(time)
        .and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
        .unwrap_or_else(SystemTime::now)
}
