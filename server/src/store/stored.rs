//! The stored form of an event, written in this one place.
//!
//! An event is kept as the JSON text of its envelope,
//! `{"seq":..,"gseq":..,"session_id":..,"time":..,"type":..,"source":..,"data":{..}}`
//! (a [`tether_protocol::Event`] without `raw`), and its agent's native
//! message (`raw`) beside it in a column of its own, spliced in as the last
//! field only for a client that asks for it. That text is what the database
//! holds and what every reader sends as it is: the pages, the streams (SSE
//! and WebSocket) and the webhooks never decode or rebuild it.
//!
//! The way in is typed: the normalizer hands an [`EventBody`] to
//! [`NewEvent::new`] (its `data`, serialized by the protocol crate), the
//! writer stamps it with [`StoredEvent`] once `seq` and `gseq` are known.
//! Lists of events (a page, a webhook delivery) are joined by [`write_array`].
//! Nothing here does I/O.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use tether_protocol::{EventBody, Source};

use super::{Committed, Effect, NewEvent};

impl NewEvent {
    /// An event ready to be committed: its type and `data` taken from `body`.
    pub fn new(source: Source, time: Arc<str>, body: &EventBody, raw: Option<Arc<str>>, effects: Vec<Effect>) -> Self {
        NewEvent { etype: body.event_type(), source, time, data_json: body.data_json(), raw, effects }
    }
}

/// An event's envelope once committed: everything but its `data`, which is
/// already JSON text.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    pub seq: u64,
    pub gseq: u64,
    /// Server-made ids (`ses_…`): written as they are, no escaping needed.
    pub session_id: &'a str,
    /// RFC 3339 (server-made): written as it is.
    pub time: &'a str,
    pub etype: &'a str,
    pub source: Source,
    /// The serialized `data` object.
    pub data_json: &'a str,
}

impl StoredEvent<'_> {
    /// The stored JSON text (without `raw`).
    pub fn to_json(&self) -> String {
        let mut json = String::with_capacity(self.data_json.len() + 160);
        let _ = write!(
            json,
            "{{\"seq\":{},\"gseq\":{},\"session_id\":\"{}\",\"time\":\"{}\",\"type\":\"{}\",\"source\":\"{}\",\"data\":{}}}",
            self.seq,
            self.gseq,
            self.session_id,
            self.time,
            self.etype,
            source_str(self.source),
            self.data_json
        );
        json
    }
}

fn source_str(source: Source) -> &'static str {
    match source {
        Source::Agent => "agent",
        Source::Server => "server",
    }
}

impl Committed {
    /// The event JSON, with `raw` spliced in when asked for and present.
    pub fn json_with(&self, include_raw: bool) -> Cow<'_, str> {
        match (&self.raw, include_raw) {
            (Some(raw), true) => {
                let body = self.json.strip_suffix('}').unwrap_or(&self.json);
                Cow::Owned(format!("{body},\"raw\":{raw}}}"))
            }
            _ => Cow::Borrowed(&self.json),
        }
    }

    /// Appends one SSE frame for this event, with `cursor` as its id.
    pub fn write_sse(&self, cursor: u64, include_raw: bool, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(out, "id: {cursor}\nevent: {}\ndata: ", self.etype);
        out.extend_from_slice(self.json_with(include_raw).as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}

/// Appends `[e1,e2,..]`: stored event texts as a JSON array.
pub fn write_array<S: AsRef<str>>(out: &mut String, events: impl IntoIterator<Item = S>) {
    out.push('[');
    for (i, json) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(json.as_ref());
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_protocol::{event_type, Event, SessionStatus, SessionStatusData};

    #[test]
    fn the_stored_text_is_the_protocol_event_and_raw_goes_last() {
        let body = EventBody::SessionStatus(SessionStatusData { status: SessionStatus::Idle });
        let new = NewEvent::new(Source::Server, Arc::from("2026-12-06T00:00:00.000Z"), &body, None, Vec::new());
        assert_eq!(new.etype, event_type::SESSION_STATUS);
        let stored = StoredEvent {
            seq: 3,
            gseq: 9,
            session_id: "ses_1",
            time: &new.time,
            etype: new.etype,
            source: new.source,
            data_json: &new.data_json,
        };
        let json = stored.to_json();
        assert_eq!(
            json,
            r#"{"seq":3,"gseq":9,"session_id":"ses_1","time":"2026-12-06T00:00:00.000Z","type":"session.status","source":"server","data":{"status":"idle"}}"#
        );
        let event: Event = serde_json::from_str(&json).unwrap();
        assert_eq!((event.seq, event.gseq, event.body), (3, 9, body));
        let committed = Committed {
            session_id: Arc::from("ses_1"),
            seq: 3,
            gseq: 9,
            etype: new.etype,
            json,
            raw: Some(Arc::from(r#"{"n":1}"#)),
        };
        assert!(committed.json_with(true).ends_with(r#""data":{"status":"idle"},"raw":{"n":1}}"#));
        assert_eq!(committed.json_with(false), committed.json);
        let mut list = String::new();
        write_array(&mut list, ["{}", "{\"a\":1}"]);
        assert_eq!(list, r#"[{},{"a":1}]"#);
    }
}
