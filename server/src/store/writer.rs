//! The single writer: group commit, seq/gseq assignment, derived state, publish after commit.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{broadcast, mpsc};

use super::{Committed, Effect, StoreError, WriteCmd};

/// Most events committed in one transaction.
const MAX_BATCH_EVENTS: usize = 8192;

pub(crate) struct Writer {
    conn: Connection,
    bus: broadcast::Sender<Arc<Committed>>,
    next_gseq: u64,
    last_seq: HashMap<Arc<str>, u64>,
}

impl Writer {
    pub(crate) fn new(conn: Connection, bus: broadcast::Sender<Arc<Committed>>) -> Result<Self, StoreError> {
        let max: Option<i64> = conn.query_row("SELECT MAX(gseq) FROM events", [], |r| r.get(0))?;
        Ok(Writer { conn, bus, next_gseq: max.unwrap_or(0) as u64 + 1, last_seq: HashMap::new() })
    }

    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<WriteCmd>) {
        let mut batch = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            let mut n_events = 0;
            while n_events < MAX_BATCH_EVENTS {
                match rx.try_recv() {
                    Ok(cmd) => {
                        if let WriteCmd::Append { events, .. } = &cmd {
                            n_events += events.len();
                        }
                        batch.push(cmd);
                    }
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
        tracing::debug!("store writer stopped");
    }

    fn commit_batch(&mut self, batch: &mut Vec<WriteCmd>) {
        let mut published = Vec::new();
        let saved_gseq = self.next_gseq;
        let saved_seqs: Vec<(Arc<str>, Option<u64>)> = batch
            .iter()
            .filter_map(|c| match c {
                WriteCmd::Append { session_id, .. } => Some(session_id.clone()),
                _ => None,
            })
            .map(|s| {
                let v = self.last_seq.get(&s).copied();
                (s, v)
            })
            .collect();
        let result = self.write_all(batch, &mut published);
        let ok = result.is_ok();
        match result {
            Ok(()) => {
                for c in published {
                    // No receivers is fine: the event is durable and replayable.
                    let _ = self.bus.send(c);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "event batch failed to commit; events dropped from the live stream");
                self.next_gseq = saved_gseq;
                for (s, v) in saved_seqs {
                    match v {
                        Some(v) => self.last_seq.insert(s, v),
                        None => self.last_seq.remove(&s),
                    };
                }
            }
        }
        // Answer acks only after the commit, so a caller that waits sees its write durable.
        for cmd in batch.drain(..) {
            match cmd {
                WriteCmd::Append { .. } => {}
                WriteCmd::Flush { ack } => {
                    let _ = ack.send(());
                }
                WriteCmd::CreateSession { ack, .. } | WriteCmd::Purge { ack, .. } => {
                    let _ =
                        ack.send(if ok { Ok(()) } else { Err(StoreError::Io(std::io::Error::other("commit failed"))) });
                }
                WriteCmd::PutMcpServer { ack, previous, .. } | WriteCmd::DeleteMcpServer { ack, previous, .. } => {
                    let _ = ack.send(if ok {
                        Ok(previous)
                    } else {
                        Err(StoreError::Io(std::io::Error::other("commit failed")))
                    });
                }
            }
        }
    }

    fn write_all(&mut self, batch: &mut [WriteCmd], published: &mut Vec<Arc<Committed>>) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO events (gseq, session_id, seq, type, json, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut touched: HashMap<Arc<str>, i64> = HashMap::new();
            for cmd in batch.iter_mut() {
                match cmd {
                    WriteCmd::Append { session_id, events } => {
                        let mut last = match self.last_seq.get(session_id) {
                            Some(v) => *v,
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
                        for ev in events.drain(..) {
                            last += 1;
                            let gseq = self.next_gseq;
                            self.next_gseq += 1;
                            let mut json = String::with_capacity(ev.data_json.len() + 160);
                            let _ = write!(
                                json,
                                "{{\"seq\":{last},\"gseq\":{gseq},\"session_id\":\"{session_id}\",\"time\":\"{}\",\"type\":\"{}\",\"source\":\"{}\",\"data\":{}}}",
                                ev.time,
                                ev.etype,
                                match ev.source {
                                    tether_protocol::Source::Agent => "agent",
                                    tether_protocol::Source::Server => "server",
                                },
                                ev.data_json
                            );
                            insert.execute(params![
                                gseq as i64,
                                &**session_id,
                                last as i64,
                                ev.etype,
                                json,
                                ev.raw.as_deref()
                            ])?;
                            for effect in &ev.effects {
                                apply_effect(&tx, session_id, effect)?;
                            }
                            touched.insert(session_id.clone(), crate::util::now_ms());
                            published.push(Arc::new(Committed {
                                session_id: session_id.clone(),
                                seq: last,
                                gseq,
                                etype: ev.etype,
                                json,
                                raw: ev.raw,
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
                        tx.execute("DELETE FROM events WHERE session_id = ?1", [&*session_id])?;
                        tx.execute("DELETE FROM open_items WHERE session_id = ?1", [&*session_id])?;
                        tx.execute("DELETE FROM sessions WHERE id = ?1", [&*session_id])?;
                        self.last_seq.remove(session_id.as_str());
                    }
                    WriteCmd::PutMcpServer { name, config, previous, .. } => {
                        *previous = tx
                            .query_row("SELECT config FROM mcp_servers WHERE name = ?1", [&*name], |r| r.get(0))
                            .optional()?;
                        tx.execute(
                            "INSERT INTO mcp_servers (name, config, updated_at) VALUES (?1, ?2, ?3)
                             ON CONFLICT (name) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
                            params![&*name, &*config, crate::util::now_ms()],
                        )?;
                    }
                    WriteCmd::DeleteMcpServer { name, previous, .. } => {
                        *previous = tx
                            .query_row("SELECT config FROM mcp_servers WHERE name = ?1", [&*name], |r| r.get(0))
                            .optional()?;
                        tx.execute("DELETE FROM mcp_servers WHERE name = ?1", [&*name])?;
                    }
                    WriteCmd::Flush { .. } => {}
                }
            }
            let mut update = tx.prepare_cached("UPDATE sessions SET last_seq = ?2, updated_at = ?3 WHERE id = ?1")?;
            for (sid, now) in touched {
                let last = self.last_seq.get(&sid).copied().unwrap_or(0);
                update.execute(params![&*sid, last as i64, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
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
    }
    Ok(())
}
