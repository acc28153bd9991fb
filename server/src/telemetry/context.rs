//! The trace a turn joins: the caller's W3C `traceparent` (read with
//! OpenTelemetry's own propagator), or a new trace when it sent none. The
//! ids are decided when the message is accepted and written into
//! `turn.started`, so the spans exported later, webhook deliveries and a
//! client reading the event all name the same trace.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tether_protocol::TurnTrace;

/// The header a caller names its span with.
pub const TRACEPARENT: &str = "traceparent";

struct OneHeader<'a>(&'a str);

impl Extractor for OneHeader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// The trace of a new turn: a child of `traceparent` when it names a valid
/// span, else the root of a new trace. An invalid `traceparent` is ignored,
/// as the W3C recommendation says (the turn starts a trace of its own).
pub fn turn_trace(traceparent: Option<&str>) -> TurnTrace {
    let ids = RandomIdGenerator::default();
    let span_id = ids.new_span_id().to_string();
    let parent = traceparent.map(|value| TraceContextPropagator::new().extract(&OneHeader(value.trim())));
    match parent.as_ref().map(|cx| cx.span().span_context().clone()).filter(|sc| sc.is_valid()) {
        Some(sc) => TurnTrace {
            trace_id: sc.trace_id().to_string(),
            span_id,
            parent_span_id: Some(sc.span_id().to_string()),
            sampled: sc.is_sampled(),
        },
        None => TurnTrace { trace_id: ids.new_trace_id().to_string(), span_id, parent_span_id: None, sampled: true },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_joined() {
        let t = turn_trace(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(t.sampled);
        assert_eq!(t.span_id.len(), 16);
        assert_ne!(t.span_id, "00f067aa0ba902b7");
        assert_eq!(t.traceparent(), format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", t.span_id));
    }

    #[test]
    fn an_unsampled_parent_stays_unsampled() {
        let t = turn_trace(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
        assert!(!t.sampled);
        assert!(t.traceparent().ends_with("-00"));
    }

    #[test]
    fn no_or_a_broken_traceparent_starts_a_new_trace() {
        for value in [None, Some("garbage"), Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01")] {
            let t = turn_trace(value);
            assert_eq!(t.trace_id.len(), 32, "{value:?}");
            assert_ne!(t.trace_id, "00000000000000000000000000000000");
            assert_eq!(t.parent_span_id, None);
            assert!(t.sampled);
        }
        assert_ne!(turn_trace(None).trace_id, turn_trace(None).trace_id);
    }
}
