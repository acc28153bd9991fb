//! The single writer: group commit, seq/gseq assignment, derived state,
//! publish after commit — and never a lost event: a batch that fails to
//! commit (disk full, I/O error) is kept and retried with back-off until it
//! commits. While it is retried the writer takes no more appends, so the
//! bounded queue fills and holds the agents back (their PTYs stop being
//! read); control commands (create, purge, MCP and webhook writes), which cannot wait
//! that long, are answered at once with the stall.
//!
//! The log `tether_protocol::SANDBOX_LOG` (events of no session, such as a
//! port a process opened) has no row in `sessions`: its seqs follow its own
//! newest event, and no session's derived state is touched by it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{broadcast, mpsc};

use super::health::StoreHealth;
use super::stored::{source_code, StoredEvent, StoredTime};
use super::tail::Tail;
use super::{Committed, Effect, StoreError, WriteCmd};

/// Most events committed in one transaction.
const MAX_BATCH_EVENTS: usize = 8192;
/// First wait before a failed commit is tried again; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub(crate) struct Writer {
    conn: Connection,
    bus: broadcast::Sender<Arc<Committed>>,
    tail: Arc<Tail>,
    health: Arc<StoreHealth>,
    next_gseq: u64,
    last_seq: HashMap<Arc<str>, u64>,
    /// Each log's key in `session_keys` (its events' `session_key`).
    keys: HashMap<Arc<str>, i64>,
}

/// The two queues the writer reads: appends and flushes (bounded: this is
/// the back-pressure on the agents), and control commands (read first, and
/// answered at once while the store is stalled).
pub(crate) struct Queues {
    pub appends: mpsc::Receiver<WriteCmd>,
    pub control: mpsc::Receiver<WriteCmd>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        bus: broadcast::Sender<Arc<Committed>>,
        tail: Arc<Tail>,
        health: Arc<StoreHealth>,
    ) -> Result<Self, StoreError> {
        // Not just the newest stored event's: a purge may have taken it.
        let last = super::reader::last_gseq(&conn)?;
        Ok(Writer { conn, bus, tail, health, next_gseq: last + 1, last_seq: HashMap::new(), keys: HashMap::new() })
    }

    pub(crate) fn run(mut self, mut q: Queues) {
        // Only to wait on both queues and on back-off timers from this thread.
        let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "the store writer cannot start");
                return;
            }
        };
        let mut batch = Vec::new();
        loop {
            let first = rt.block_on(async {
                tokio::select! {
                    biased;
                    Some(c) = q.control.recv() => Some(c),
                    Some(a) = q.appends.recv() => Some(a),
                    else => None,
                }
            });
            let Some(first) = first else { break };
            batch.push(first);
            while let Ok(cmd) = q.control.try_recv() {
                batch.push(cmd);
            }
            fill(&mut batch, &mut q.appends);
            self.commit_batch(&mut batch, &rt, &mut q);
        }
        tracing::debug!("store writer stopped");
    }

    /// Commits `batch`, retrying what must not be lost until it commits.
    fn commit_batch(&mut self, batch: &mut Vec<WriteCmd>, rt: &tokio::runtime::Runtime, q: &mut Queues) {
        let mut backoff = BACKOFF_MIN;
        let mut retrying = false;
        loop {
            let saved_gseq = self.next_gseq;
            let mut published = Vec::new();
            // A retry with nothing to write proves the disk takes writes again with a probe.
            let probe = if retrying && !batch.iter().any(|c| matches!(c, WriteCmd::Append { .. })) {
                self.probe()
            } else {
                Ok(())
            };
            let result = probe.and_then(|()| self.write_all(batch, &mut published));
            match result {
                Ok(()) => {
                    if let Some(ended) = self.health.committed() {
                        tracing::warn!(
                            seconds = ended.duration.as_secs_f64(),
                            "the store commits again after a stall; the events held back are written"
                        );
                    }
                    if batch.iter().any(|c| matches!(c, WriteCmd::Purge { .. } | WriteCmd::PurgeSome { .. })) {
                        // Purged events must not be served from memory.
                        self.tail.clear();
                    }
                    // Before the bus: a follower the bus lapped finds them there.
                    self.tail.push(&published);
                    for c in published {
                        // No receivers is fine: the event is durable and replayable.
                        let _ = self.bus.send(c);
                    }
                    answer(batch);
                    return;
                }
                Err(e) => {
                    self.next_gseq = saved_gseq;
                    // Recomputed from the committed rows at the next use.
                    self.last_seq.clear();
                    self.keys.clear();
                    let has_control =
                        batch.iter().any(|c| !matches!(c, WriteCmd::Append { .. } | WriteCmd::Flush { .. }));
                    if has_control && !is_storage_error(&e) {
                        // A command of its own failed (a constraint, say), not the disk:
                        // it gets its error, and the rest is committed without it.
                        tracing::warn!(error = %e, "a store command failed; the batch is committed without it");
                        let msg = e.to_string();
                        answer_control(batch, || StoreError::Io(std::io::Error::other(msg.clone())));
                        if batch.is_empty() {
                            return;
                        }
                        continue;
                    }
                    let first = !self.health.is_stalled();
                    let stall = self.health.failed(&e, held_events(batch));
                    if first {
                        tracing::error!(error = %e, kind = stall.kind.as_str(),
                            "the store cannot commit; events are held back and retried until it can");
                    } else {
                        tracing::debug!(error = %e, attempts = stall.attempts, "commit retry failed");
                    }
                    // Commands that cannot wait are answered now; appends and flushes stay.
                    answer_control(batch, || StoreError::Stalled(stall.clone()));
                    if batch.is_empty() {
                        // Retry with what is queued, or with a probe when nothing is.
                        fill(batch, &mut q.appends);
                    }
                    rt.block_on(async {
                        let wait = tokio::time::sleep(backoff);
                        tokio::pin!(wait);
                        loop {
                            tokio::select! {
                                _ = &mut wait => break,
                                Some(c) = q.control.recv() => self.refuse(c, &stall),
                            }
                        }
                    });
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    retrying = true;
                }
            }
        }
    }

    /// Answers a control command that arrived during a stall (tests' `Exec` runs at once).
    fn refuse(&mut self, cmd: WriteCmd, stall: &super::health::Stall) {
        #[cfg(test)]
        if let WriteCmd::Exec { sql, ack } = cmd {
            let _ = ack.send(self.conn.execute_batch(&sql).map_err(StoreError::from));
            return;
        }
        let mut one = vec![cmd];
        answer_control(&mut one, || StoreError::Stalled(stall.clone()));
    }

    /// A tiny write that tells whether the store can commit again.
    fn probe(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('writable_at', ?1)",
            [crate::ids::now_ms().to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn write_all(&mut self, batch: &mut [WriteCmd], published: &mut Vec<Arc<Committed>>) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (gseq, session_key, seq, type, source, time, data, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            // Sessions that got events: their new last activity, if any of
            // those events was activity (not [`Effect::Quiet`]).
            let mut touched: HashMap<Arc<str>, Option<i64>> = HashMap::new();
            for cmd in batch.iter_mut() {
                match cmd {
                    WriteCmd::Append { session_id, events } => {
                        let sandbox = &**session_id == tether_protocol::SANDBOX_LOG;
                        let mut last = match self.last_seq.get(session_id) {
                            Some(v) => *v,
                            // The sandbox log has no session row: its last seq is its newest event's.
                            None if sandbox => tx.query_row(
                                "SELECT COALESCE(MAX(seq), 0) FROM events
                                 WHERE session_key = (SELECT key FROM session_keys WHERE id = ?1)",
                                [&**session_id],
                                |r| r.get::<_, i64>(0),
                            )? as u64,
                            None => {
                                let v: Option<i64> = tx
                                    .query_row("SELECT last_seq FROM sessions WHERE id = ?1", [&**session_id], |r| {
                                        r.get(0)
                                    })
                                    .optional()?;
                                match v {
                                    Some(v) => v as u64,
                                    None => {
                                        tracing::warn!(session = %session_id, "events for an unknown session ignored");
                                        continue;
                                    }
                                }
                            }
                        };
                        let key = match self.keys.get(session_id) {
                            Some(k) => *k,
                            None => {
                                let k = log_key(&tx, session_id)?;
                                self.keys.insert(session_id.clone(), k);
                                k
                            }
                        };
                        for ev in events.iter() {
                            last += 1;
                            let gseq = self.next_gseq;
                            self.next_gseq += 1;
                            let time = StoredTime::of(&ev.time);
                            insert.execute(params![
                                gseq as i64,
                                key,
                                last as i64,
                                ev.etype,
                                source_code(ev.source),
                                time,
                                ev.data_json,
                                ev.raw.as_deref()
                            ])?;
                            let json = StoredEvent {
                                seq: last,
                                gseq,
                                session_id,
                                time,
                                etype: ev.etype,
                                source: ev.source,
                                data_json: &ev.data_json,
                            }
                            .to_json();
                            if !sandbox {
                                for effect in &ev.effects {
                                    apply_effect(&tx, session_id, effect)?;
                                }
                                let at = touched.entry(session_id.clone()).or_default();
                                if !ev.effects.iter().any(|e| matches!(e, Effect::Quiet)) {
                                    *at = Some(crate::ids::now_ms());
                                }
                            }
                            published.push(Arc::new(Committed {
                                session_id: session_id.clone(),
                                seq: last,
                                gseq,
                                etype: ev.etype,
                                json,
                                raw: ev.raw.clone(),
                            }));
                        }
                        self.last_seq.insert(session_id.clone(), last);
                    }
                    WriteCmd::CreateSession { row, .. } => {
                        tx.execute(
                            "INSERT INTO sessions (id, agent, status, cwd, model, permission_mode, title, native_session_id,
                               created_at, updated_at, last_seq, metadata, config, agent_live, open_turn)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11, ?12, 0, NULL)",
                            params![
                                row.id,
                                row.agent,
                                row.status.as_str(),
                                row.cwd,
                                row.model,
                                row.permission_mode.as_str(),
                                row.title,
                                row.native_session_id,
                                row.created_at,
                                row.updated_at,
                                row.metadata.as_ref().map(|m| m.to_string()),
                                row.config,
                            ],
                        )?;
                        self.last_seq.insert(Arc::from(row.id.as_str()), 0);
                    }
                    WriteCmd::Purge { session_id, .. } => {
                        keep_last_gseq(&tx, self.next_gseq)?;
                        tx.execute(
                            "DELETE FROM events WHERE session_key = (SELECT key FROM session_keys WHERE id = ?1)",
                            [&*session_id],
                        )?;
                        tx.execute("DELETE FROM session_keys WHERE id = ?1", [&*session_id])?;
                        tx.execute("DELETE FROM open_items WHERE session_id = ?1", [&*session_id])?;
                        tx.execute("DELETE FROM sessions WHERE id = ?1", [&*session_id])?;
                        self.last_seq.remove(session_id.as_str());
                        self.keys.remove(session_id.as_str());
                    }
                    WriteCmd::PurgeSome { session_id, max, deleted, gone, .. } => {
                        keep_last_gseq(&tx, self.next_gseq)?;
                        let n = tx.execute(
                            "DELETE FROM events WHERE gseq IN
                               (SELECT gseq FROM events
                                WHERE session_key = (SELECT key FROM session_keys WHERE id = ?1)
                                ORDER BY seq LIMIT ?2)",
                            params![&*session_id, *max as i64],
                        )? as u64;
                        *deleted = n;
                        if n < *max {
                            tx.execute("DELETE FROM session_keys WHERE id = ?1", [&*session_id])?;
                            tx.execute("DELETE FROM open_items WHERE session_id = ?1", [&*session_id])?;
                            tx.execute("DELETE FROM sessions WHERE id = ?1", [&*session_id])?;
                            self.last_seq.remove(session_id.as_str());
                            self.keys.remove(session_id.as_str());
                            *gone = true;
                        }
                    }
                    WriteCmd::Vacuum { pages, .. } => {
                        // Each step of the statement frees a page: run it to the end.
                        let mut stmt = tx.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
                        let mut rows = stmt.query([])?;
                        while rows.next()?.is_some() {}
                    }
                    WriteCmd::PutMcpServer { name, config, previous, .. } => {
                        *previous = tx
                            .query_row("SELECT config FROM mcp_servers WHERE name = ?1", [&*name], |r| r.get(0))
                            .optional()?;
                        tx.execute(
                            "INSERT INTO mcp_servers (name, config, updated_at) VALUES (?1, ?2, ?3)
                             ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
                            params![&*name, &*config, crate::ids::now_ms()],
                        )?;
                    }
                    WriteCmd::DeleteMcpServer { name, previous, .. } => {
                        *previous = tx
                            .query_row("SELECT config FROM mcp_servers WHERE name = ?1", [&*name], |r| r.get(0))
                            .optional()?;
                        tx.execute("DELETE FROM mcp_servers WHERE name = ?1", [&*name])?;
                    }
                    WriteCmd::CreateWebhook { row, .. } => {
                        let p = &row.progress;
                        tx.execute(
                            "INSERT INTO webhooks (id, url, secret, filters, cursor, delivered_events,
                               consecutive_failures, state, last_error, created_at, last_attempt_at, last_success_at,
                               inflight_to)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                            params![
                                row.id,
                                row.url,
                                row.secret,
                                row.filters,
                                p.cursor as i64,
                                p.delivered_events as i64,
                                p.consecutive_failures as i64,
                                p.state,
                                p.last_error,
                                row.created_at,
                                p.last_attempt_at,
                                p.last_success_at,
                                p.inflight_to.map(|g| g as i64),
                            ],
                        )?;
                    }
                    WriteCmd::WebhookProgress { progress: p, .. } => {
                        // A webhook deleted meanwhile updates nothing.
                        tx.prepare_cached(
                            "UPDATE webhooks SET cursor = ?2, delivered_events = ?3, consecutive_failures = ?4,
                               state = ?5, last_error = ?6, last_attempt_at = ?7, last_success_at = ?8,
                               inflight_to = ?9
                             WHERE id = ?1",
                        )?
                        .execute(params![
                            p.id,
                            p.cursor as i64,
                            p.delivered_events as i64,
                            p.consecutive_failures as i64,
                            p.state,
                            p.last_error,
                            p.last_attempt_at,
                            p.last_success_at,
                            p.inflight_to.map(|g| g as i64),
                        ])?;
                    }
                    WriteCmd::DeleteWebhook { id, existed, .. } => {
                        *existed = tx.execute("DELETE FROM webhooks WHERE id = ?1", [&*id])? > 0;
                    }
                    WriteCmd::Flush { .. } => {}
                    #[cfg(test)]
                    WriteCmd::Exec { sql, .. } => tx.execute_batch(sql)?,
                }
            }
            let mut update = tx.prepare_cached(
                "UPDATE sessions SET last_seq = ?2, updated_at = coalesce(?3, updated_at) WHERE id = ?1",
            )?;
            for (sid, now) in touched {
                let last = self.last_seq.get(&sid).copied().unwrap_or(0);
                update.execute(params![&*sid, last as i64, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Before events are deleted: the highest gseq given so far (the one before
/// `next_gseq`) goes to `meta`, so that after a purge of the newest events
/// (and a restart) gseqs go on from it instead of being given again — a
/// webhook's cursor or a client's `Last-Event-ID` past them would skip the
/// new events.
fn keep_last_gseq(tx: &rusqlite::Transaction<'_>, next_gseq: u64) -> Result<(), StoreError> {
    let last = next_gseq.saturating_sub(1);
    tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_gseq', ?1)", [last.to_string()])?;
    Ok(())
}

fn apply_effect(tx: &rusqlite::Transaction<'_>, sid: &str, effect: &Effect) -> Result<(), StoreError> {
    match effect {
        Effect::Status(s) => {
            tx.execute("UPDATE sessions SET status = ?2 WHERE id = ?1", params![sid, s.as_str()])?;
        }
        Effect::ItemOpen { item_id, item_json } => {
            tx.execute(
                "INSERT OR REPLACE INTO open_items (session_id, item_id, item) VALUES (?1, ?2, ?3)",
                params![sid, item_id, item_json],
            )?;
        }
        Effect::ItemClose { item_id } => {
            tx.execute("DELETE FROM open_items WHERE session_id = ?1 AND item_id = ?2", params![sid, item_id])?;
        }
        Effect::TurnOpen(turn) => {
            tx.execute("UPDATE sessions SET open_turn = ?2 WHERE id = ?1", params![sid, turn])?;
        }
        Effect::TurnClose => {
            tx.execute("UPDATE sessions SET open_turn = NULL WHERE id = ?1", params![sid])?;
        }
        Effect::NativeSession(native) => {
            tx.execute("UPDATE sessions SET native_session_id = ?2 WHERE id = ?1", params![sid, native])?;
        }
        Effect::AgentLive(live) => {
            tx.execute("UPDATE sessions SET agent_live = ?2 WHERE id = ?1", params![sid, *live as i64])?;
        }
        Effect::TurnStarted { text } => {
            tx.prepare_cached(
                "UPDATE sessions SET turns = turns + 1, first_prompt = coalesce(first_prompt, ?2) WHERE id = ?1",
            )?
            .execute(params![sid, text])?;
        }
        Effect::Usage { input_tokens, output_tokens, cost_usd } => {
            tx.prepare_cached(
                "UPDATE sessions SET input_tokens = input_tokens + ?2, output_tokens = output_tokens + ?3,
                   cost_usd = CASE WHEN ?4 IS NULL THEN cost_usd ELSE coalesce(cost_usd, 0) + ?4 END
                 WHERE id = ?1",
            )?
            .execute(params![sid, *input_tokens as i64, *output_tokens as i64, cost_usd])?;
        }
        Effect::LastText(text) => {
            tx.prepare_cached("UPDATE sessions SET last_text = ?2 WHERE id = ?1")?.execute(params![sid, text])?;
        }
        Effect::Quiet => {}
    }
    Ok(())
}

/// Adds queued appends to `batch`, up to [`MAX_BATCH_EVENTS`] events.
fn fill(batch: &mut Vec<WriteCmd>, appends: &mut mpsc::Receiver<WriteCmd>) {
    let mut n_events = held_events(batch) as usize;
    while n_events < MAX_BATCH_EVENTS {
        match appends.try_recv() {
            Ok(cmd) => {
                if let WriteCmd::Append { events, .. } = &cmd {
                    n_events += events.len();
                }
                batch.push(cmd);
            }
            Err(_) => break,
        }
    }
}

fn held_events(batch: &[WriteCmd]) -> u64 {
    batch
        .iter()
        .map(|c| match c {
            WriteCmd::Append { events, .. } => events.len() as u64,
            _ => 0,
        })
        .sum()
}

/// Answers every command of a committed batch (acks only after the commit,
/// so a caller that waits sees its write durable).
fn answer(batch: &mut Vec<WriteCmd>) {
    for cmd in batch.drain(..) {
        match cmd {
            WriteCmd::Append { .. } => {}
            WriteCmd::Flush { ack } => {
                let _ = ack.send(());
            }
            WriteCmd::CreateSession { ack, .. }
            | WriteCmd::Purge { ack, .. }
            | WriteCmd::Vacuum { ack, .. }
            | WriteCmd::CreateWebhook { ack, .. }
            | WriteCmd::WebhookProgress { ack, .. } => {
                let _ = ack.send(Ok(()));
            }
            WriteCmd::PurgeSome { ack, deleted, gone, .. } => {
                let _ = ack.send(Ok((deleted, gone)));
            }
            WriteCmd::PutMcpServer { ack, previous, .. } | WriteCmd::DeleteMcpServer { ack, previous, .. } => {
                let _ = ack.send(Ok(previous));
            }
            WriteCmd::DeleteWebhook { ack, existed, .. } => {
                let _ = ack.send(Ok(existed));
            }
            #[cfg(test)]
            WriteCmd::Exec { ack, .. } => {
                let _ = ack.send(Ok(()));
            }
        }
    }
}

/// Takes the control commands out of `batch` and answers each with `error()`.
fn answer_control(batch: &mut Vec<WriteCmd>, error: impl Fn() -> StoreError) {
    let mut keep = Vec::with_capacity(batch.len());
    for cmd in batch.drain(..) {
        match cmd {
            WriteCmd::Append { .. } | WriteCmd::Flush { .. } => keep.push(cmd),
            WriteCmd::CreateSession { ack, .. }
            | WriteCmd::Purge { ack, .. }
            | WriteCmd::Vacuum { ack, .. }
            | WriteCmd::CreateWebhook { ack, .. }
            | WriteCmd::WebhookProgress { ack, .. } => {
                let _ = ack.send(Err(error()));
            }
            WriteCmd::PurgeSome { ack, .. } => {
                let _ = ack.send(Err(error()));
            }
            WriteCmd::PutMcpServer { ack, .. } | WriteCmd::DeleteMcpServer { ack, .. } => {
                let _ = ack.send(Err(error()));
            }
            WriteCmd::DeleteWebhook { ack, .. } => {
                let _ = ack.send(Err(error()));
            }
            #[cfg(test)]
            WriteCmd::Exec { ack, .. } => {
                let _ = ack.send(Err(error()));
            }
        }
    }
    *batch = keep;
}

/// Whether a failed commit is the disk's doing (worth waiting for), not the command's.
fn is_storage_error(e: &StoreError) -> bool {
    use rusqlite::ErrorCode::*;
    match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
            f.code,
            DiskFull
                | ReadOnly
                | SystemIoFailure
                | CannotOpen
                | DatabaseBusy
                | DatabaseLocked
                | OutOfMemory
                | FileLockingProtocolFailed
        ),
        StoreError::Io(_) => true,
        _ => false,
    }
}

/// The key of the log `id` in `session_keys` (its events' `session_key`),
/// given on its first event.
fn log_key(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<i64, StoreError> {
    tx.execute("INSERT OR IGNORE INTO session_keys (id) VALUES (?1)", [id])?;
    Ok(tx.query_row("SELECT key FROM session_keys WHERE id = ?1", [id], |r| r.get(0))?)
}
