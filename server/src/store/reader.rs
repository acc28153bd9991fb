//! Read connections and the queries that use them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};
use tether_protocol::{PermissionMode, SessionStatus, SessionSummary};

use super::stored::{source_of, StoredEvent, StoredTime};
use super::{open_connection, Committed, SessionRow, StoreError, WebhookProgress, WebhookRow};

/// Read connections kept open, and reads run at once through `Store::read`.
pub const READERS: usize = 8;

/// A small pool of read-only connections (WAL lets them read while the writer writes).
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf) -> Self {
        ReadPool { path, idle: Mutex::new(Vec::new()) }
    }

    /// Runs `f` on a pooled connection (blocking; call from a blocking context).
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match conn {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        let out = f(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < READERS {
                idle.push(conn);
            }
        }
        out
    }
}

const SESSION_COLUMNS: &str = "id, agent, status, cwd, model, permission_mode, title, native_session_id, created_at, \
     updated_at, last_seq, metadata, config, agent_live, open_turn, first_prompt, last_text, turns, input_tokens, \
     output_tokens, cost_usd";

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    let status: String = r.get(2)?;
    let mode: String = r.get(5)?;
    let metadata: Option<String> = r.get(11)?;
    Ok(SessionRow {
        id: r.get(0)?,
        agent: r.get(1)?,
        status: SessionStatus::parse(&status).unwrap_or(SessionStatus::Failed),
        cwd: r.get(3)?,
        model: r.get(4)?,
        permission_mode: serde_json::from_value(serde_json::Value::String(mode)).unwrap_or(PermissionMode::Default),
        title: r.get(6)?,
        native_session_id: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        last_seq: r.get::<_, i64>(10)? as u64,
        metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
        config: r.get(12)?,
        agent_live: r.get::<_, i64>(13)? != 0,
        open_turn: r.get(14)?,
        summary: SessionSummary {
            first_prompt: r.get(15)?,
            last_text: r.get(16)?,
            turns: r.get::<_, i64>(17)? as u64,
            input_tokens: r.get::<_, i64>(18)? as u64,
            output_tokens: r.get::<_, i64>(19)? as u64,
            cost_usd: r.get(20)?,
        },
    })
}

pub fn get_session(conn: &Connection, id: &str) -> Result<Option<SessionRow>, StoreError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], session_from_row).optional()?)
}

/// Sessions newest first, after an optional `(created_at, id)` cursor.
pub fn list_sessions(
    conn: &Connection,
    status: Option<SessionStatus>,
    agent: Option<&str>,
    cursor: Option<(i64, String)>,
    limit: u32,
) -> Result<Vec<SessionRow>, StoreError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR agent = ?2)
           AND (?3 IS NULL OR created_at < ?3 OR (created_at = ?3 AND id < ?4))
         ORDER BY created_at DESC, id DESC LIMIT ?5"
    );
    let (c_at, c_id) = match cursor {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![status.map(|s| s.as_str()), agent, c_at, c_id, limit], session_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sessions that had a live agent or an open turn when the server last stopped.
pub fn interrupted_sessions(conn: &Connection) -> Result<Vec<SessionRow>, StoreError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE status NOT IN ('ended', 'failed') AND (agent_live = 1 OR open_turn IS NOT NULL
               OR status IN ('running', 'waiting', 'starting'))"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], session_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Ids of the sessions whose agent is working: a turn running or a permission or question open.
pub fn busy_sessions(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT id, status FROM sessions WHERE status IN ('running', 'waiting')")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The ended (or failed) sessions past a retention rule, oldest last: those
/// that ended before `ended_before` (ms) and those beyond the newest `keep`.
/// Each with the gseq of its last event (0 without events).
pub fn retention_candidates(
    conn: &Connection,
    ended_before: Option<i64>,
    keep: Option<u64>,
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, updated_at FROM sessions WHERE status IN ('ended', 'failed') ORDER BY updated_at DESC, id DESC",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut last = conn.prepare(&format!("SELECT e.gseq {FROM_SESSION} ORDER BY e.seq DESC LIMIT 1"))?;
    let mut first = conn.prepare(&format!("SELECT e.seq {FROM_SESSION} ORDER BY e.seq LIMIT 1"))?;
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        let (id, ended_at) = row?;
        let too_many = keep.is_some_and(|k| i as u64 >= k);
        let too_old = ended_before.is_some_and(|t| ended_at < t);
        // A purge in steps (oldest events first) cut short by a crash is
        // finished whatever the rule says now (the sessions newer than this
        // one may have gone since): a session is never left half there.
        let mut begun = || -> Result<bool, StoreError> {
            Ok(first.query_row([&id], |r| r.get::<_, i64>(0)).optional()?.is_some_and(|seq| seq > 1))
        };
        if too_many || too_old || begun()? {
            let gseq: Option<i64> = last.query_row([&id], |r| r.get(0)).optional()?;
            out.push((id, gseq.unwrap_or(0) as u64));
        }
    }
    Ok(out)
}

/// Pages of the database file that are free (given back by an incremental vacuum).
pub fn freelist_count(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.pragma_query_value(None, "freelist_count", |r| r.get::<_, i64>(0))? as u64)
}

/// The JSON of each item a session left open, oldest first.
pub fn open_items(conn: &Connection, session_id: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT item FROM open_items WHERE session_id = ?1 ORDER BY rowid")?;
    let rows = stmt.query_map([session_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn committed_from_row(r: &Row<'_>) -> rusqlite::Result<Committed> {
    committed_from_row_sharing(r, &mut None)
}

/// The columns [`committed_from_row_sharing`] reads, `raw` last (not read
/// past `data` when not asked for).
const EVENT_COLUMNS: &str = "k.id, e.seq, e.gseq, e.type, e.source, e.time, e.data";
/// Events of the session `?1` (its id), joined to their log's key.
const FROM_SESSION: &str = "FROM session_keys k JOIN events e ON e.session_key = k.key WHERE k.id = ?1";
/// Events of every session, with their session's id.
const FROM_ALL: &str = "FROM events e JOIN session_keys k ON k.key = e.session_key";

/// Events of one session with `seq > after`, in order.
pub fn session_events(
    conn: &Connection,
    session_id: &str,
    after: u64,
    limit: u32,
) -> Result<Vec<Committed>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS}, e.raw {FROM_SESSION} AND e.seq > ?2 ORDER BY e.seq LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![session_id, after as i64, limit], committed_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Events of every session with `gseq > after`, in order.
pub fn global_events(conn: &Connection, after: u64, limit: u32) -> Result<Vec<Committed>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS}, e.raw {FROM_ALL} WHERE e.gseq > ?1 ORDER BY e.gseq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after as i64, limit], committed_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One catch-up page of an event stream: the events after `after` (of the
/// session `session`, else of every session over `gseq`), in order, until
/// `max_rows` or until their JSON reaches `max_bytes` (a page holds at least
/// one event), so a stream waiting on a slow client holds a small page
/// however large its events are. `raw` is read only when `with_raw`. The
/// flag says whether the page stopped at a limit (more may follow).
pub fn stream_page(
    conn: &Connection,
    session: Option<&Arc<str>>,
    after: u64,
    max_rows: u32,
    max_bytes: usize,
    with_raw: bool,
) -> Result<(Vec<Arc<Committed>>, bool), StoreError> {
    let mut stmt;
    let mut rows = match session {
        Some(id) => {
            stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS}, CASE WHEN ?4 THEN e.raw END {FROM_SESSION} AND e.seq > ?2
                 ORDER BY e.seq LIMIT ?3"
            ))?;
            stmt.query(params![&**id, after as i64, max_rows, with_raw])?
        }
        None => {
            stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS}, CASE WHEN ?3 THEN e.raw END {FROM_ALL} WHERE e.gseq > ?1
                 ORDER BY e.gseq LIMIT ?2"
            ))?;
            stmt.query(params![after as i64, max_rows, with_raw])?
        }
    };
    let (mut page, mut bytes) = (Vec::new(), 0usize);
    // One session's page shares its id; the global one shares each run of one session's events.
    let mut sid: Option<Arc<str>> = session.cloned();
    while let Some(row) = rows.next()? {
        let e = committed_from_row_sharing(row, &mut sid)?;
        bytes += e.json.len() + e.raw.as_ref().map_or(0, |r| r.len());
        page.push(Arc::new(e));
        if bytes >= max_bytes {
            return Ok((page, true));
        }
    }
    let full = page.len() == max_rows as usize;
    Ok((page, full))
}

/// An event read back, without an allocation for its session id when it is
/// the one in `sid` (which becomes this row's).
fn committed_from_row_sharing(r: &Row<'_>, sid: &mut Option<Arc<str>>) -> rusqlite::Result<Committed> {
    let id = r.get_ref(0)?.as_str()?;
    let session_id = match sid {
        Some(s) if **s == *id => s.clone(),
        _ => {
            let s: Arc<str> = Arc::from(id);
            *sid = Some(s.clone());
            s
        }
    };
    let raw = match r.get_ref(7)? {
        ValueRef::Null => None,
        v => Some(Arc::from(v.as_str()?)),
    };
    let (seq, gseq) = (r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64);
    let type_text = r.get_ref(3)?.as_str()?;
    let etype = super::intern_type(type_text);
    let data_json = r.get_ref(6)?.as_str()?;
    let time = match r.get_ref(5)? {
        ValueRef::Integer(ms) => StoredTime::Ms(ms),
        ValueRef::Text(t) => StoredTime::Text(std::str::from_utf8(t).map_err(|e| utf8_error(5, e))?),
        // Carried over whole by migration 0006: `data` is the event's JSON.
        _ => return Ok(Committed { session_id, seq, gseq, etype, json: data_json.to_owned(), raw }),
    };
    let source = source_of(r.get(4)?);
    let json = StoredEvent { seq, gseq, session_id: &session_id, time, etype: type_text, source, data_json }.to_json();
    Ok(Committed { session_id, seq, gseq, etype, json, raw })
}

/// The highest `gseq` ever given (0 when none was): the newest event's, or
/// the one a purge of the newest events left in `meta` (`last_gseq`), so a
/// gseq is never given twice, across purges and restarts.
pub fn last_gseq(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row(
        "SELECT MAX(COALESCE((SELECT MAX(gseq) FROM events), 0),
                    COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_gseq'), 0))",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Number of events in the store.
pub fn event_count(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))? as u64)
}

/// Every webhook, oldest first.
pub fn webhooks(conn: &Connection) -> Result<Vec<WebhookRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, url, secret, filters, cursor, delivered_events, consecutive_failures, state, last_error,
                created_at, last_attempt_at, last_success_at, inflight_to
         FROM webhooks ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([], |r| {
        let state: String = r.get(7)?;
        let id: String = r.get(0)?;
        Ok(WebhookRow {
            id: id.clone(),
            url: r.get(1)?,
            secret: r.get(2)?,
            filters: r.get(3)?,
            created_at: r.get(9)?,
            progress: WebhookProgress {
                id,
                cursor: r.get::<_, i64>(4)? as u64,
                delivered_events: r.get::<_, i64>(5)? as u64,
                consecutive_failures: r.get::<_, i64>(6)? as u64,
                state: if state == "failing" { "failing" } else { "active" },
                last_error: r.get(8)?,
                last_attempt_at: r.get(10)?,
                last_success_at: r.get(11)?,
                inflight_to: r.get::<_, Option<i64>>(12)?.map(|g| g as u64),
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Number of events with `gseq > after`.
pub fn events_after_count(conn: &Connection, after: u64) -> Result<u64, StoreError> {
    let n: i64 =
        conn.prepare_cached("SELECT COUNT(*) FROM events WHERE gseq > ?1")?.query_row([after as i64], |r| r.get(0))?;
    Ok(n as u64)
}

fn utf8_error(column: usize, e: std::str::Utf8Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}
