//! The stored form of an event, written in this one place.
//!
//! An event is served as the JSON text of its envelope,
//! `{"seq":..,"gseq":..,"session_id":..,"time":..,"type":..,"source":..,"data":{..}}`
//! (a [`tether_protocol::Event`] without `raw`), and its agent's native
//! message (`raw`) spliced in as the last field only for a client that asks
//! for it. That text is what every reader sends as it is: the pages, the
//! streams (SSE and WebSocket) and the webhooks never decode or rebuild it.
//!
//! The database keeps only what its columns do not (migration 0006): a row
//! holds the session's integer key, `seq`, `type`, `source` (1 agent, 0
//! server), `time` as unix milliseconds ([`time_ms`]: when the text is the
//! millisecond RFC 3339 those milliseconds print as; else the text) and the
//! `data` JSON; [`StoredEvent::to_json`] rebuilds the envelope around it,
//! the same bytes the writer published. `raw` has a column of its own.
//!
//! The way in is typed: the normalizer hands an [`EventBody`] to
//! [`NewEvent::new`] (its `data`, serialized by the protocol crate), the
//! writer stamps it with [`StoredEvent`] once `seq` and `gseq` are known.
//! Lists of events (a page, a webhook delivery) are joined by [`write_array`].
//! Nothing here does I/O.

use std::borrow::Cow;
use std::sync::Arc;

pub use crate::ids::time_ms;
use crate::ids::write_time;
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
    /// RFC 3339 with milliseconds (server-made).
    pub time: StoredTime<'a>,
    pub etype: &'a str,
    pub source: Source,
    /// The serialized `data` object.
    pub data_json: &'a str,
}

impl StoredEvent<'_> {
    /// The event's JSON text (without `raw`): what is published and served.
    pub fn to_json(&self) -> String {
        let mut json = String::with_capacity(self.data_json.len() + 160);
        json.push_str("{\"seq\":");
        push_u64(&mut json, self.seq);
        json.push_str(",\"gseq\":");
        push_u64(&mut json, self.gseq);
        json.push_str(",\"session_id\":\"");
        json.push_str(self.session_id);
        json.push_str("\",\"time\":\"");
        match self.time {
            StoredTime::Text(t) => json.push_str(t),
            StoredTime::Ms(ms) => write_time(&mut json, ms),
        }
        json.push_str("\",\"type\":\"");
        json.push_str(self.etype);
        json.push_str("\",\"source\":\"");
        json.push_str(source_str(self.source));
        json.push_str("\",\"data\":");
        json.push_str(self.data_json);
        json.push('}');
        json
    }
}

/// An event's time as a row holds it: unix milliseconds, or the text as it
/// was when the milliseconds would not print it back ([`time_ms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredTime<'a> {
    Ms(i64),
    Text(&'a str),
}

impl<'a> StoredTime<'a> {
    /// How `time` is kept: as milliseconds when they print back to it exactly.
    pub fn of(time: &'a str) -> Self {
        time_ms(time).map_or(StoredTime::Text(time), StoredTime::Ms)
    }
}

impl rusqlite::ToSql for StoredTime<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match *self {
            StoredTime::Ms(ms) => ToSqlOutput::Owned(Value::Integer(ms)),
            StoredTime::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

/// The column value of a source: 1 for the agent, 0 for the server.
pub fn source_code(source: Source) -> i64 {
    match source {
        Source::Agent => 1,
        Source::Server => 0,
    }
}

/// The source a column value stands for ([`source_code`]).
pub fn source_of(code: i64) -> Source {
    if code == 1 {
        Source::Agent
    } else {
        Source::Server
    }
}

fn source_str(source: Source) -> &'static str {
    match source {
        Source::Agent => "agent",
        Source::Server => "server",
    }
}

/// Appends `n` in decimal.
fn push_u64(out: &mut String, n: u64) {
    out.push_str(std::str::from_utf8(decimal(n, &mut [0; 20])).unwrap_or_default());
}

/// `n`'s decimal digits, written into the end of `buf` (by hand, not
/// core::fmt: this runs several times for every event served).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
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
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(decimal(cursor, &mut [0; 20]));
        out.extend_from_slice(b"\nevent: ");
        out.extend_from_slice(self.etype.as_bytes());
        out.extend_from_slice(b"\ndata: ");
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
            time: StoredTime::of(&new.time),
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
        let mut sse = Vec::new();
        committed.write_sse(1234, false, &mut sse);
        assert_eq!(sse, format!("id: 1234\nevent: session.status\ndata: {}\n\n", committed.json).into_bytes());
        let mut digits = String::new();
        for n in [0, 7, 10, 99, 100, u64::MAX] {
            push_u64(&mut digits, n);
            digits.push(' ');
        }
        assert_eq!(digits, format!("0 7 10 99 100 {} ", u64::MAX));
        let mut list = String::new();
        write_array(&mut list, ["{}", "{\"a\":1}"]);
        assert_eq!(list, r#"[{},{"a":1}]"#);
    }

    #[test]
    fn a_time_is_kept_as_milliseconds_only_when_they_print_it_back() {
        // Across days, months, leap years and centuries, as the server writes times.
        let mut ms = 0i64;
        while ms < 8_000_000_000_000 {
            let text = crate::ids::rfc3339_ms(ms);
            assert_eq!(time_ms(&text), Some(ms), "{text}");
            let mut back = String::new();
            write_time(&mut back, ms);
            assert_eq!(back, text);
            ms += 86_399_999 + 3_600_000 * 7 + 17;
        }
        for kept_as_text in [
            "2026-12-06T00:00:00Z",
            "2026-12-06T00:00:00.000+00:00",
            "2026-02-29T00:00:00.000Z",
            "2024-13-01T00:00:00.000Z",
            "2024-01-01T24:00:00.000Z",
            "1969-12-31T23:59:59.999Z",
            "2026-12-06t00:00:00.000Z",
            "2026-12-06T00:00:00.00aZ",
            "",
        ] {
            assert_eq!(time_ms(kept_as_text), None, "{kept_as_text}");
            assert_eq!(StoredTime::of(kept_as_text), StoredTime::Text(kept_as_text));
        }
        assert_eq!(time_ms("2024-02-29T23:59:59.999Z"), Some(1_709_251_199_999));
        let event = |time| StoredEvent {
            seq: 1,
            gseq: 2,
            session_id: "ses_1",
            time,
            etype: tether_protocol::event_type::SESSION_STATUS,
            source: Source::Agent,
            data_json: "{}",
        };
        assert_eq!(
            event(StoredTime::of("2024-02-29T23:59:59.999Z")).to_json(),
            event(StoredTime::Text("2024-02-29T23:59:59.999Z")).to_json()
        );
        assert!(event(StoredTime::Text("then")).to_json().contains(r#""time":"then","#));
        assert_eq!(
            (source_of(source_code(Source::Agent)), source_of(source_code(Source::Server))),
            (Source::Agent, Source::Server)
        );
    }
}
