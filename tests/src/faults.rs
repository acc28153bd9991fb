//! A `kill -9` fault loop (issue 27): the real server, started with
//! `--retain 1` and a webhook to a [`Receiver`] that fails now and then, is
//! killed with SIGKILL at a random point of one operation in flight —
//! session create, delete (`?purge=true` or not), a retention purge, a
//! webhook delivery, a skill install, a turn that writes many events — then
//! restarted on the same data dir, and checked:
//!
//! - the store file (a copy, taken while the server is down) passes `PRAGMA
//!   integrity_check` (with the `sqlite3` CLI; skipped, and said so, without it);
//! - the server is healthy; no session is left `starting`, `running` or `waiting`;
//! - every listed session reads back whole: well formed ([`assert_well_formed`]),
//!   seqs gap-free from 1 up to the session's `last_seq`;
//! - a session whose purge was in flight is wholly gone (404) or wholly there;
//! - a skill whose install was in flight is absent or exactly one of the
//!   versions sent (the last acknowledged one or the one in flight), never half-written;
//! - at the end, the webhook deliveries of all the runs together hold every
//!   event of every session that still exists, at least once.
//!
//! Kill points are chosen by waiting for what the operation shows (events
//! on a stream, a delivery at the receiver) with deadlines, or after a
//! random short delay: a random delay is the kill point, never a
//! synchronization. The randomness is a xorshift PRNG from a printed seed,
//! so a failing run replays with the same seed (the timing of the machine
//! aside). The e2e test (`tests/tests/faults.rs`) runs a few kills, the
//! bench (`bench-faults`) hundreds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_sdk::{Client, CreateSession, Event, ListSessions, SessionStatus, SkillFiles};

use crate::events::{assert_well_formed, wait_for};
use crate::webhook_receiver::Receiver;
use crate::{ServerOptions, TestServer};

/// The webhook's signing secret.
const SECRET: &str = "whsec-faults-5b1e7c20";
/// The deadline of any wait of the loop.
const WAIT: Duration = Duration::from_secs(30);

/// A xorshift64* generator: small, seeded, replayable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..hi` (`lo` if the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }

    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// A seed from the clock.
pub fn time_seed() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (now.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// What was in flight when the server was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Create,
    Delete,
    DeletePurge,
    Retention,
    Webhook,
    SkillInstall,
    Flood,
}

impl Op {
    pub const ALL: [Op; 7] =
        [Op::Create, Op::Delete, Op::DeletePurge, Op::Retention, Op::Webhook, Op::SkillInstall, Op::Flood];

    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "session create",
            Op::Delete => "session delete",
            Op::DeletePurge => "session delete ?purge=true",
            Op::Retention => "retention purge",
            Op::Webhook => "webhook delivery",
            Op::SkillInstall => "skill install",
            Op::Flood => "flood turn",
        }
    }
}

/// The loop's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub kills: usize,
    pub seed: u64,
    /// The largest flood (`[mock:flood:N]`) a turn writes.
    pub max_flood: u64,
}

/// What the loop did and found.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub kills: usize,
    pub by_op: BTreeMap<Op, usize>,
    /// Events read back and checked, over all the checks.
    pub events_checked: u64,
    /// Sessions read back and checked, over all the checks.
    pub sessions_checked: u64,
    /// Sessions created (acknowledged or not).
    pub sessions_created: u64,
    /// Whether `PRAGMA integrity_check` ran (the `sqlite3` CLI was found).
    pub integrity_checks: usize,
    /// Events of the surviving sessions the webhook deliveries were checked to cover.
    pub webhook_events_covered: u64,
    pub webhook_requests: usize,
    /// Ended sessions read back part-purged by retention (which purges in
    /// steps, oldest events first), then gone within the deadline.
    pub seen_mid_purge: u64,
    /// From the start of each restart to `GET /v1/health` answering 200.
    pub recoveries: Vec<Duration>,
    pub elapsed: Duration,
    /// The first violation: which kill, the operation in flight, what was wrong.
    pub violation: Option<String>,
}

impl Report {
    /// The `p`-th percentile (0..=100) of the recovery times.
    pub fn recovery_percentile(&self, p: usize) -> Duration {
        let mut v = self.recoveries.clone();
        v.sort();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let i = ((v.len() - 1) * p).div_ceil(100);
        v[i.min(v.len() - 1)]
    }

    /// A Markdown summary.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "kill -9 fault loop: seed {}, {} kills in {:.1} s\n\n",
            self.seed,
            self.kills,
            self.elapsed.as_secs_f64()
        ));
        out.push_str("| operation in flight | kills |\n|---|---:|\n");
        for (op, n) in &self.by_op {
            out.push_str(&format!("| {} | {n} |\n", op.name()));
        }
        out.push_str(&format!(
            "\n| check | result |\n|---|---|\n\
             | sessions read back (over all checks) | {} |\n\
             | events checked well formed, gap-free from 1 | {} |\n\
             | sessions created | {} |\n\
             | store `PRAGMA integrity_check` ok | {} of {} |\n\
             | ended sessions read back part-purged by retention (then gone) | {} |\n\
             | webhook: events of surviving sessions covered | {} (in {} requests) |\n\
             | recovery (restart to healthy) p50 / p99 / max | {} / {} / {} ms |\n\
             | violations | {} |\n",
            self.sessions_checked,
            self.events_checked,
            self.sessions_created,
            self.integrity_checks,
            self.kills,
            self.seen_mid_purge,
            self.webhook_events_covered,
            self.webhook_requests,
            self.recovery_percentile(50).as_millis(),
            self.recovery_percentile(99).as_millis(),
            self.recovery_percentile(100).as_millis(),
            match &self.violation {
                None => "none".to_string(),
                Some(v) => format!("**{}** (seed {})", v.replace('\n', " "), self.seed),
            }
        ));
        out
    }
}

/// A skill install the loop sent: the version acknowledged last, and the one in flight at the kill.
#[derive(Debug, Default)]
struct SkillState {
    acked: Option<BTreeMap<String, String>>,
    in_flight: Option<BTreeMap<String, String>>,
}

struct Loop {
    server: TestServer,
    receiver: Receiver,
    rng: Rng,
    cfg: Config,
    report: Report,
    skills: BTreeMap<String, SkillState>,
    /// Sessions whose `?purge=true` was sent (acknowledged or not).
    purge_sent: BTreeSet<String>,
    /// Sessions whose purge was acknowledged: they must stay gone.
    purged: BTreeSet<String>,
    kill_no: usize,
    op: Op,
}

/// Runs the loop; the first violation ends it (in `report.violation`).
pub async fn run(cfg: Config) -> Report {
    let started = Instant::now();
    let server = TestServer::start_with(ServerOptions {
        extra_args: ["--retain", "1", "--webhook-retry-min-ms", "20", "--webhook-retry-max-ms", "200"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start(SECRET).await;
    let body = json!({"url": receiver.url(), "secret": SECRET, "from": "start"});
    let resp = server.client().request(tether_sdk::reqwest::Method::POST, "/v1/webhooks").json(&body).send().await;
    let status = resp.map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(status, 201, "creating the webhook");
    let mut l = Loop {
        server,
        receiver,
        rng: Rng::new(cfg.seed),
        report: Report { seed: cfg.seed, ..Default::default() },
        cfg,
        skills: BTreeMap::new(),
        purge_sent: BTreeSet::new(),
        purged: BTreeSet::new(),
        kill_no: 0,
        op: Op::Create,
    };
    let result = l.run().await;
    if let Err(why) = result {
        l.report.violation = Some(format!("kill #{} during {}: {why}", l.kill_no, l.op.name()));
    }
    l.report.webhook_requests = l.receiver.deliveries().len();
    l.report.elapsed = started.elapsed();
    l.report
}

/// Runs `f`, turning a panic (an assertion of [`crate::events`]) into an `Err`.
fn no_panic(f: impl FnOnce()) -> Result<(), String> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into())
    })
}

fn skill_md(name: &str, version: u64) -> String {
    format!("---\nname: {name}\ndescription: Version {version} of a skill installed under faults.\n---\n\n# {name}\n")
}

impl Loop {
    fn client(&self) -> Client {
        self.server.client()
    }

    async fn run(&mut self) -> Result<(), String> {
        for i in 0..self.cfg.kills {
            self.kill_no = i + 1;
            // Dead sessions' agents are gone on restart, but idle ones stay: keep a few.
            let live =
                self.sessions_with(|s| !matches!(s.status, SessionStatus::Ended | SessionStatus::Failed)).await?;
            self.op = if live.len() > 4 {
                if self.rng.chance(50) {
                    Op::Delete
                } else {
                    Op::DeletePurge
                }
            } else {
                Op::ALL[self.rng.range(0, Op::ALL.len() as u64) as usize]
            };
            // Now and then the receiver fails a few requests (retried, 20 to 200 ms apart).
            if self.rng.chance(30) {
                self.receiver.fail_next(self.rng.range(1, 4) as u32);
            }
            self.operate_and_kill().await?;
            *self.report.by_op.entry(self.op).or_default() += 1;
            self.report.kills += 1;
            self.check_store()?;
            let t = Instant::now();
            self.server.restart().await;
            self.report.recoveries.push(t.elapsed());
            self.check().await?;
        }
        self.check_webhooks().await
    }

    async fn sessions_with(&self, pred: impl Fn(&tether_sdk::Session) -> bool) -> Result<Vec<String>, String> {
        let list = self
            .client()
            .list_sessions(&ListSessions { limit: Some(1000), ..Default::default() })
            .await
            .map_err(|e| format!("listing sessions: {e}"))?;
        Ok(list.sessions.iter().filter(|s| pred(s)).map(|s| s.id.clone()).collect())
    }

    /// A session that ran a short turn (created now).
    async fn session_with_a_turn(&mut self, prompt: &str) -> Result<String, String> {
        let client = self.client();
        let create = CreateSession { agent: "mock".into(), prompt: Some(prompt.into()), ..Default::default() };
        let s = client.create_session(&create).await.map_err(|e| format!("create: {e}"))?;
        self.report.sessions_created += 1;
        let mut stream = client.session_events(&s.id, Some(0));
        wait_for(&mut stream, WAIT, |e| e.event_type() == "turn.completed").await;
        Ok(s.id)
    }

    async fn kill(&mut self) {
        self.server.kill9().await;
    }

    /// Starts the operation, waits for its kill point and kills the server.
    async fn operate_and_kill(&mut self) -> Result<(), String> {
        let client = self.client();
        match self.op {
            Op::Create => {
                let prompt = if self.rng.chance(50) { Some("[mock:text] created".to_string()) } else { None };
                let create = CreateSession { agent: "mock".into(), prompt, ..Default::default() };
                let task = tokio::spawn(async move { client.create_session(&create).await });
                self.report.sessions_created += 1;
                tokio::time::sleep(self.rng.millis(0, 40)).await;
                self.kill().await;
                let _ = task.await;
            }
            Op::Delete | Op::DeletePurge => {
                let purge = self.op == Op::DeletePurge;
                let candidates = self.sessions_with(|s| s.status != SessionStatus::Ended).await?;
                let id = match candidates.first() {
                    Some(id) if self.rng.chance(70) => id.clone(),
                    _ => {
                        let n = self.rng.range(10, 3000);
                        self.session_with_a_turn(&format!("[mock:flood:{n}]")).await?
                    }
                };
                if purge {
                    self.purge_sent.insert(id.clone());
                }
                let del = id.clone();
                let task = tokio::spawn(async move { client.delete_session(&del, purge).await });
                tokio::time::sleep(self.rng.millis(0, 30)).await;
                self.kill().await;
                if purge && matches!(task.await, Ok(Ok(_))) {
                    self.purged.insert(id);
                }
            }
            Op::Retention => {
                // Ended sessions beyond the newest one are purged in the background:
                // end two or three with thousands of events (more than one purge step).
                let n = self.rng.range(2, 4);
                let mut ids = Vec::new();
                for _ in 0..n {
                    let flood = self.rng.range(1000, self.cfg.max_flood.max(1001));
                    ids.push(self.session_with_a_turn(&format!("[mock:flood:{flood}]")).await?);
                }
                for id in &ids {
                    client.delete_session(id, false).await.map_err(|e| format!("end {id}: {e}"))?;
                }
                tokio::time::sleep(self.rng.millis(0, 60)).await;
                self.kill().await;
            }
            Op::Webhook => {
                // Events to deliver, then the kill at a delivery (or a little after it).
                let before = self.receiver.deliveries().len();
                let slow = self.rng.chance(30);
                if slow {
                    self.receiver.hold_after(self.rng.range(0, 3) as u32);
                }
                let flood = self.rng.range(200, 3000);
                let create = CreateSession {
                    agent: "mock".into(),
                    prompt: Some(format!("[mock:flood:{flood}]")),
                    ..Default::default()
                };
                client.create_session(&create).await.map_err(|e| format!("create: {e}"))?;
                self.report.sessions_created += 1;
                let want = before + self.rng.range(1, 4) as usize;
                self.receiver.wait_until(WAIT, "a delivery", |d| d.len() >= want).await;
                tokio::time::sleep(self.rng.millis(0, 20)).await;
                self.kill().await;
                if slow {
                    self.receiver.release();
                }
            }
            Op::SkillInstall => {
                let name = format!("fault-{}", self.rng.range(0, 3));
                let version = self.rng.next_u64() % 1_000_000;
                let mut files = BTreeMap::from([("SKILL.md".to_string(), skill_md(&name, version))]);
                for f in 0..self.rng.range(1, 12) {
                    let size = self.rng.range(10, 200_000) as usize;
                    let line = format!("v{version} file {f}\n");
                    files.insert(format!("ref/part-{f}.md"), line.repeat(size / line.len() + 1));
                }
                self.skills.entry(name.clone()).or_default().in_flight = Some(files.clone());
                let put = name.clone();
                let task = tokio::spawn(async move { client.put_skill_files(&put, &SkillFiles { files }).await });
                tokio::time::sleep(self.rng.millis(0, 30)).await;
                self.kill().await;
                if matches!(task.await, Ok(Ok(_))) {
                    let state = self.skills.entry(name).or_default();
                    state.acked = state.in_flight.take();
                }
            }
            Op::Flood => {
                let flood = self.rng.range(500, self.cfg.max_flood.max(501));
                let create = CreateSession {
                    agent: "mock".into(),
                    prompt: Some(format!("[mock:flood:{flood}]")),
                    ..Default::default()
                };
                let s = client.create_session(&create).await.map_err(|e| format!("create: {e}"))?;
                self.report.sessions_created += 1;
                let at = self.rng.range(1, flood);
                let mut stream = client.session_events(&s.id, Some(0));
                let mut deltas = 0;
                wait_for(&mut stream, WAIT, |e| {
                    deltas += u64::from(e.event_type() == "item.delta");
                    deltas >= at || e.event_type() == "turn.completed"
                })
                .await;
                self.kill().await;
            }
        }
        Ok(())
    }

    /// `PRAGMA integrity_check` on a copy of the store as the crash left it.
    fn check_store(&mut self) -> Result<(), String> {
        if !have_sqlite3() {
            return Ok(());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data = self.server.data_dir();
        for suffix in ["", "-wal", "-shm"] {
            let from = data.join(format!("tether.db{suffix}"));
            if from.exists() {
                std::fs::copy(&from, dir.path().join(format!("tether.db{suffix}")))
                    .map_err(|e| format!("copying {}: {e}", from.display()))?;
            }
        }
        let out = integrity_check(&dir.path().join("tether.db"))?;
        if out != "ok" {
            return Err(format!("PRAGMA integrity_check: {out}"));
        }
        self.report.integrity_checks += 1;
        Ok(())
    }

    /// Every check after a restart.
    async fn check(&mut self) -> Result<(), String> {
        let client = self.client();
        client.health().await.map_err(|e| format!("health: {e}"))?;
        let list = client
            .list_sessions(&ListSessions { limit: Some(1000), ..Default::default() })
            .await
            .map_err(|e| format!("listing sessions: {e}"))?;
        for s in &list.sessions {
            if matches!(s.status, SessionStatus::Starting | SessionStatus::Running | SessionStatus::Waiting) {
                return Err(format!("session {} is {:?} after recovery", s.id, s.status));
            }
        }
        for s in &list.sessions {
            self.check_session(&client, &s.id).await?;
        }
        for id in self.purge_sent.clone() {
            match client.get_session(&id).await {
                Ok(_) if self.purged.contains(&id) => {
                    return Err(format!("session {id} is back after its purge was acknowledged"))
                }
                Ok(_) => self.check_session(&client, &id).await?,
                Err(e) if e.status() == Some(404) => {
                    // Wholly gone: its events too.
                    if let Ok(page) = client.events_page(&id, 0, Some(10), false).await {
                        return Err(format!(
                            "purged session {id} is 404 but {} of its events read back",
                            page.events.len()
                        ));
                    }
                    self.purge_sent.remove(&id);
                }
                Err(e) => return Err(format!("get purged session {id}: {e}")),
            }
        }
        for (name, state) in &mut self.skills {
            let got = match client.get_skill(name).await {
                Ok(d) => Some(d.files),
                Err(e) if e.status() == Some(404) => None,
                Err(e) => return Err(format!("get skill {name}: {e}")),
            };
            let whole = got.as_ref() == state.acked.as_ref()
                || (state.in_flight.is_some() && got.as_ref() == state.in_flight.as_ref());
            if !whole {
                let files = got.map(|f| f.iter().map(|(k, v)| format!("{k} ({} B)", v.len())).collect::<Vec<_>>());
                return Err(format!(
                    "skill {name} is neither the acknowledged version nor the one in flight: {files:?}"
                ));
            }
            // What is there now is what a later check must find, unless replaced.
            state.acked = got;
            state.in_flight = None;
        }
        Ok(())
    }

    /// The session reads back whole: well formed, gap-free from 1 to its `last_seq`.
    async fn check_session(&mut self, client: &Client, id: &str) -> Result<(), String> {
        let session = match client.get_session(id).await {
            Ok(s) => s,
            // Purged by retention between the listing and now.
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(e) => return Err(format!("get session {id}: {e}")),
        };
        let events = read_events(client, id).await?;
        let problem = if events.first().is_none_or(|e| e.seq != 1)
            || events.last().is_none_or(|e| e.seq < session.last_seq)
            || events.iter().zip(1..).any(|(e, want)| e.seq != want)
        {
            let range = (events.first().map(|e| e.seq), events.last().map(|e| e.seq));
            Some(format!(
                "session {id} ({:?}, last_seq {}) reads back {} events, seqs {range:?}: not whole, or not gap-free",
                session.status,
                session.last_seq,
                events.len()
            ))
        } else {
            no_panic(|| assert_well_formed(&events)).err().map(|why| format!("session {id}: {why}"))
        };
        if let Some(problem) = problem {
            if !matches!(session.status, SessionStatus::Ended | SessionStatus::Failed) {
                return Err(problem);
            }
            // Retention purges an ended session in steps, oldest events first
            // (and goes on at start after a crash), so a read can cross a
            // purge: the session must then be wholly gone soon.
            let deadline = Instant::now() + WAIT;
            loop {
                match client.get_session(id).await {
                    Err(e) if e.status() == Some(404) => break,
                    _ if Instant::now() > deadline => {
                        return Err(format!("{problem}; and it was not purged within {WAIT:?}"))
                    }
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            self.report.seen_mid_purge += 1;
            return Ok(());
        }
        self.report.sessions_checked += 1;
        self.report.events_checked += events.len() as u64;
        Ok(())
    }

    /// Every event of every session still there was delivered, at least once.
    async fn check_webhooks(&mut self) -> Result<(), String> {
        self.receiver.release();
        let client = self.client();
        let mut last = BTreeMap::new();
        for id in self.sessions_with(|_| true).await? {
            if let Ok(s) = client.get_session(&id).await {
                last.insert(id, s.last_seq);
            }
        }
        let covered = |d: &[crate::webhook_receiver::Delivery]| {
            let mut seen: HashMap<&str, BTreeSet<u64>> = HashMap::new();
            for d in d.iter().filter(|d| d.acknowledged()) {
                for e in &d.events {
                    seen.entry(e.session_id.as_str()).or_default().insert(e.seq);
                }
            }
            last.iter().all(|(id, &n)| seen.get(id.as_str()).is_some_and(|s| (1..=n).all(|q| s.contains(&q))))
        };
        let deadline = Instant::now() + WAIT;
        while !covered(&self.receiver.deliveries()) {
            if Instant::now() > deadline {
                let acked = self.receiver.acknowledged_by_session();
                let mut missing = Vec::new();
                for (id, &n) in &last {
                    let seqs: BTreeSet<u64> =
                        acked.get(id.as_str()).map(|v| v.iter().map(|e| e.seq).collect()).unwrap_or_default();
                    let gaps: Vec<u64> = (1..=n).filter(|q| !seqs.contains(q)).collect();
                    if let (Some(first), Some(end)) = (gaps.first(), gaps.last()) {
                        let events = read_events(&client, id).await.unwrap_or_default();
                        let gseq = |q: u64| events.iter().find(|e| e.seq == q).map(|e| e.gseq);
                        let g = gseq(*first).unwrap_or(0);
                        // Who the receiver was sent that gseq as (a gseq given twice shows here).
                        let sent_as: Vec<String> = self
                            .receiver
                            .deliveries()
                            .iter()
                            .filter(|d| d.event_ids.contains(&g))
                            .flat_map(|d| {
                                d.events
                                    .iter()
                                    .filter(|e| e.gseq == g)
                                    .map(move |e| format!("{} {}#{}", d.status, e.session_id, e.seq))
                            })
                            .collect();
                        missing.push(format!(
                            "{id} (last_seq {n}): {} seqs missing, {first} (gseq {g}) to {end} (gseq {:?}); \
                             gseq {g} was delivered as {sent_as:?}",
                            gaps.len(),
                            gseq(*end)
                        ));
                    }
                }
                let hooks = match client.request(tether_sdk::reqwest::Method::GET, "/v1/webhooks").send().await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                return Err(format!("webhook deliveries miss events after {WAIT:?}: {missing:?}; webhooks: {hooks}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        no_panic(|| self.receiver.assert_all_signed())?;
        self.report.webhook_events_covered = last.values().sum();
        Ok(())
    }
}

/// Every stored event of a session, page by page (an error instead of a panic).
async fn read_events(client: &Client, id: &str) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    let mut cursor = 0;
    loop {
        let page = match client.events_page(id, cursor, Some(10_000), false).await {
            Ok(p) => p,
            Err(e) if e.status() == Some(404) => return Ok(Vec::new()),
            Err(e) => return Err(format!("events of {id} after {cursor}: {e}")),
        };
        events.extend(page.events);
        if !page.has_more {
            return Ok(events);
        }
        if page.next_after <= cursor {
            return Err(format!("events of {id}: next_after did not advance past {cursor}"));
        }
        cursor = page.next_after;
    }
}

/// `PRAGMA integrity_check` with the `sqlite3` CLI, on a file nobody else has open.
fn integrity_check(db: &Path) -> Result<String, String> {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("PRAGMA integrity_check;")
        .output()
        .map_err(|e| format!("running sqlite3: {e}"))?;
    if !out.status.success() {
        return Err(format!("sqlite3 failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether the `sqlite3` CLI is on the `PATH` (the integrity check needs it).
pub fn have_sqlite3() -> bool {
    Command::new("sqlite3").arg("-version").output().is_ok_and(|o| o.status.success())
}
