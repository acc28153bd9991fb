//! [`Rig`]: a tether server whose agent sessions talk to a scripted model
//! server, with a HOME of their own — what every real-agent test starts from.

use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;
use tether_sdk::{CreateSession, Event, Item, ItemKind, PermissionMode, Session};

use crate::events::{assert_contiguous, assert_well_formed, completed_items, describe, of_type, read_all, wait_for};
use crate::{ServerOptions, TestServer};

pub struct Rig<M> {
    pub model: M,
    pub server: TestServer,
    pub agent: &'static str,
    /// How long a turn may take (OpenCode starts slower than the others).
    pub turn_timeout: Duration,
    _home: TempDir,
}

impl<M> Rig<M> {
    /// Starts a server with the env `env(model, home)` gives for `agent`.
    pub async fn start(agent: &'static str, model: M, env: impl FnOnce(&M, &Path) -> Vec<(String, String)>) -> Rig<M> {
        let home = tempfile::Builder::new().prefix(&format!("tether-{agent}-home-")).tempdir().unwrap();
        let env = env(&model, home.path());
        let server = TestServer::start_with(ServerOptions { env, ..Default::default() }).await;
        Rig { model, server, agent, turn_timeout: crate::TURN_TIMEOUT, _home: home }
    }

    pub fn with_turn_timeout(mut self, timeout: Duration) -> Self {
        self.turn_timeout = timeout;
        self
    }

    /// A session of the rig's agent.
    pub async fn session(&self, mode: PermissionMode) -> Session {
        let create = CreateSession { agent: self.agent.into(), permission_mode: mode, ..Default::default() };
        self.server.client().create_session(&create).await.expect("create a session")
    }

    /// Events from `after` through the next `turn.completed`; none unparsed.
    pub async fn until_turn_ends(&self, session: &str, after: u64) -> Vec<Event> {
        let mut stream = self.server.client().session_events(session, Some(after));
        let events = wait_for(&mut stream, self.turn_timeout, |e| e.event_type() == "turn.completed").await;
        assert!(of_type(&events, "agent.unparsed").is_empty(), "{}", describe(&events));
        events
    }

    /// Sends `text` and returns its turn, checking the whole history stays well formed.
    pub async fn turn(&self, session: &str, text: &str) -> Vec<Event> {
        let client = self.server.client();
        let after = client.get_session(session).await.unwrap().last_seq;
        client.send_text(session, text).await.unwrap();
        let events = self.until_turn_ends(session, after).await;
        assert_contiguous(&events, after + 1);
        assert_well_formed(&read_all(&client, session).await);
        events
    }

    /// The next event of `event_type` in a session, from its start.
    pub async fn until(&self, session: &str, event_type: &str) -> Event {
        let mut stream = self.server.client().session_events(session, Some(0));
        let events = wait_for(&mut stream, self.turn_timeout, |e| e.event_type() == event_type).await;
        events.last().cloned().expect("at least the awaited event")
    }
}

/// The tool-call items completed in `events`.
pub fn tool_items(events: &[Event]) -> Vec<&Item> {
    completed_items(events).into_iter().filter(|i| i.kind == ItemKind::ToolCall).collect()
}
