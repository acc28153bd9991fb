//! `cargo run --release -p tether-e2e --bin bench-overhead [-- --turns N --agents claude,codex --max-secs S --json]`:
//! tether's latency over the bare agent CLI. For Claude Code and Codex (the
//! pinned real CLIs, against one scripted model server whose every turn is
//! the same short streamed text answer), turns go three ways, alternated
//! round by round (the order rotated) so the noisy machine's drift falls on
//! all of them alike:
//!
//! - **direct, pipes**: the bench spawns the CLI itself with exactly the
//!   command line, environment and working directory tether gave it (read
//!   back from `/proc` of the agent tether started), all stdio on pipes,
//!   writes a user turn in the CLI's own protocol (Claude Code's stream-json
//!   `user` line; Codex app-server's `turn/start` request) and times, from
//!   the write, the first text-delta line read (Claude `stream_event` with a
//!   `text_delta`, Codex `item/agentMessage/delta`) and the turn's end line
//!   (Claude `result`, Codex `turn/completed`);
//! - **direct, as tether**: the same, with stdio wired as tether wires it (a
//!   raw PTY, 200x50, the controlling terminal, for stdout and stderr, and
//!   for Codex stdin too; Claude's stdin a pipe);
//! - **tether**: a session of the agent in a tether server (`TETHER_BIN` for
//!   the release binary), an SSE stream (`session_events`) open on it from
//!   the start; from the `POST` of the message, the first `item.delta` and
//!   `turn.completed` read off the stream.
//!
//! Each way keeps one process (one session) for all its turns (`--turns`,
//! 100 by default; all agents within `--max-secs`, 900 by default), so the
//! conversation grows alike; the first turn of each is a warm-up, not
//! counted. It prints p50/p99 of both times per way, tether's added latency
//! (p50 and p99 of the per-round difference from "direct, as tether") and
//! its share of a turn, between `<!-- bench-overhead -->` markers. No loss:
//! the events tether streamed are gap-free from seq 1 and equal the stored
//! ones (`GET` the session's events after), every turn's delta text arrived,
//! and every direct turn's answer is the same text as tether's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tether_e2e::anthropic::{claude_env, ScriptedAnthropic};
use tether_e2e::benchkit::percentile;
use tether_e2e::events::read_all;
use tether_e2e::openai::{codex_env, ScriptedOpenAI};
use tether_e2e::procs::processes_of_session;
use tether_e2e::{ServerOptions, TestServer};
use tether_sdk::{Client, CreateSession, Delta, Event, EventBody};
use tokio::sync::mpsc;

/// Longest a single turn may take, in any way.
const TURN_TIMEOUT: Duration = Duration::from_secs(120);

struct Args {
    turns: usize,
    agents: Vec<Agent>,
    max_secs: u64,
    json: bool,
}

fn args() -> Args {
    let mut a = Args { turns: 100, agents: vec![Agent::Claude, Agent::Codex], max_secs: 900, json: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--turns" => a.turns = it.next().and_then(|v| v.parse().ok()).expect("a number after --turns"),
            "--max-secs" => a.max_secs = it.next().and_then(|v| v.parse().ok()).expect("a number after --max-secs"),
            "--agents" => {
                let list = it.next().expect("a list after --agents");
                a.agents = list
                    .split(',')
                    .map(|name| match name {
                        "claude" => Agent::Claude,
                        "codex" => Agent::Codex,
                        other => panic!("unknown agent {other:?} (claude, codex)"),
                    })
                    .collect();
            }
            "--json" => a.json = true,
            other => panic!("unknown argument {other:?}"),
        }
    }
    assert!(a.turns >= 1, "--turns must be at least 1");
    a
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agent {
    Claude,
    Codex,
}

impl Agent {
    fn name(self) -> &'static str {
        match self {
            Agent::Claude => "claude",
            Agent::Codex => "codex",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Agent::Claude => "Claude Code",
            Agent::Codex => "Codex",
        }
    }

    /// The prompt of every turn: the scripted model's plain text script (a
    /// few 12-character deltas echoing the prompt), the same each time.
    fn prompt(self) -> &'static str {
        match self {
            Agent::Claude => "[claude:text] overhead",
            Agent::Codex => "[codex:text] overhead",
        }
    }
}

/// How a direct process's stdio is wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wiring {
    Pipes,
    /// As tether does: a raw PTY for stdout/stderr (and stdin where tether puts it there).
    AsTether,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Direct(Wiring),
    Tether,
}

impl Way {
    const ALL: [Way; 3] = [Way::Direct(Wiring::Pipes), Way::Direct(Wiring::AsTether), Way::Tether];

    fn label(self) -> &'static str {
        match self {
            Way::Direct(Wiring::Pipes) => "direct, pipes",
            Way::Direct(Wiring::AsTether) => "direct, stdio as tether",
            Way::Tether => "through tether (POST → SSE)",
        }
    }
}

/// One turn's times from the write (or POST), and its answer's text.
#[derive(Debug, Clone)]
struct Turn {
    /// Direct ways: to the first line of any kind the CLI wrote (tether: to the POST's answer).
    first_line: Duration,
    first_delta: Duration,
    end: Duration,
    text: String,
}

// ---- direct ---------------------------------------------------------------

/// How tether ran its agent: program, arguments, environment and working directory.
#[derive(Debug, Clone)]
struct CommandLine {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
}

fn proc_strings(pid: i32, file: &str) -> Vec<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/{file}")).unwrap();
    bytes.split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

fn parent_pid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|v| v.trim().parse().ok())
}

/// The command line of the agent tether started for `session`: the
/// session's process whose parent is not one of the session's (the server,
/// or whatever runs it: `TETHER_BIN` may be a wrapper such as strace).
fn agent_command_line(session: &str) -> CommandLine {
    let pids = processes_of_session(session);
    let pid = *pids
        .iter()
        .find(|&&p| parent_pid(p).is_some_and(|parent| !pids.contains(&(parent as i32))))
        .unwrap_or_else(|| panic!("no agent process of session {session} (found {pids:?})"));
    let argv = proc_strings(pid, "cmdline");
    let program = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let env = proc_strings(pid, "environ")
        .into_iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        // The tag by which tether finds its own agents: this one is not tether's.
        .map(|(k, v)| if k == "TETHER_SESSION_ID" { (k, "ses_bench_direct".to_owned()) } else { (k, v) })
        .collect();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    CommandLine { program, args: argv.into_iter().skip(1).collect(), env, cwd }
}

/// A raw PTY (as tether's `open_pty(200, 50, raw)`): (master, slave).
#[allow(unsafe_code)]
fn open_raw_pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let ws = libc::winsize { ws_row: 50, ws_col: 200, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: valid out-pointers; name and termios may be null.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty succeeded: two fresh descriptors nobody else owns.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // SAFETY: termios is plain data, filled by tcgetattr from a valid fd.
    let mut tio: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and pointer; cfmakeraw on an initialised termios.
    unsafe {
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut tio), 0);
        libc::cfmakeraw(&mut tio);
        assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &tio), 0);
    }
    (master, slave)
}

/// In the child, as tether's `child_setup`: a new session whose controlling terminal is fd 1.
#[allow(unsafe_code)]
fn controlling_terminal_on_stdout(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::ioctl(1, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// An agent CLI the bench drives itself.
struct Direct {
    agent: Agent,
    child: Child,
    input: Box<dyn Write + Send>,
    /// Each output line, stamped when read.
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
    /// Codex: the thread opened, and the next request id.
    thread_id: Option<String>,
    next_id: u64,
}

impl Direct {
    async fn start(agent: Agent, cl: &CommandLine, wiring: Wiring) -> Direct {
        let mut cmd = Command::new(&cl.program);
        cmd.args(&cl.args).env_clear().envs(cl.env.iter().map(|(k, v)| (k, v))).current_dir(&cl.cwd);
        let (tx, lines) = mpsc::unbounded_channel();
        let (child, input, output): (Child, Box<dyn Write + Send>, Box<dyn Read + Send>) = match wiring {
            Wiring::Pipes => {
                cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
                let mut child = cmd.spawn().expect("spawn the agent CLI");
                let input = Box::new(child.stdin.take().unwrap());
                let output = Box::new(child.stdout.take().unwrap());
                (child, input, output)
            }
            Wiring::AsTether => {
                let (master, slave) = open_raw_pty();
                cmd.stdout(Stdio::from(slave.try_clone().unwrap())).stderr(Stdio::from(slave.try_clone().unwrap()));
                // Claude Code refuses a terminal on stdin: tether gives it a pipe there.
                let stdin_on_pty = agent == Agent::Codex;
                if stdin_on_pty {
                    cmd.stdin(Stdio::from(slave));
                } else {
                    cmd.stdin(Stdio::piped());
                    drop(slave);
                }
                controlling_terminal_on_stdout(&mut cmd);
                let mut child = cmd.spawn().expect("spawn the agent CLI on a PTY");
                drop(cmd);
                let master = std::fs::File::from(master);
                let input: Box<dyn Write + Send> = if stdin_on_pty {
                    Box::new(master.try_clone().unwrap())
                } else {
                    Box::new(child.stdin.take().unwrap())
                };
                (child, input, Box::new(master))
            }
        };
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(64 * 1024, output);
            let mut line = String::new();
            loop {
                line.clear();
                // EOF, or EIO once the PTY's other side is closed.
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let at = Instant::now();
                        if tx.send((at, line.trim_end_matches(['\n', '\r']).to_owned())).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut direct = Direct { agent, child, input, lines, thread_id: None, next_id: 0 };
        if agent == Agent::Codex {
            direct.open_codex_thread(&cl.cwd).await;
        }
        direct
    }

    fn write(&mut self, v: &Value) {
        let mut bytes = serde_json::to_vec(v).unwrap();
        bytes.push(b'\n');
        self.input.write_all(&bytes).unwrap();
        self.input.flush().unwrap();
    }

    fn request(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.write(&json!({"id": id, "method": method, "params": params}));
        id
    }

    async fn next_line(&mut self, deadline: tokio::time::Instant) -> (Instant, String) {
        match tokio::time::timeout_at(deadline, self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("{} closed its output (exit: {:?})", self.agent.title(), self.child.try_wait()),
            Err(_) => panic!("{} said nothing in time", self.agent.title()),
        }
    }

    /// As tether's Codex adapter: initialize, initialized, thread/start (no
    /// MCP servers, no skills, the workspace not in a git repository: no config).
    async fn open_codex_thread(&mut self, cwd: &Path) {
        self.request("initialize", json!({"clientInfo": {"name": "tether", "title": "tether", "version": "bench"}}));
        self.write(&json!({"method": "initialized"}));
        let id = self.request(
            "thread/start",
            json!({"cwd": cwd.display().to_string(), "approvalPolicy": "untrusted", "sandbox": "workspace-write"}),
        );
        let deadline = tokio::time::Instant::now() + TURN_TIMEOUT;
        loop {
            let (_, line) = self.next_line(deadline).await;
            let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
            if v["id"] == json!(id) && v.get("method").is_none() {
                let thread = v["result"]["thread"]["id"].as_str();
                self.thread_id = Some(thread.unwrap_or_else(|| panic!("thread/start answered {line}")).to_owned());
                return;
            }
        }
    }

    async fn turn(&mut self, text: &str) -> Turn {
        let t0 = Instant::now();
        match self.agent {
            Agent::Claude => self.write(&json!({"type": "user",
                "message": {"role": "user", "content": [{"type": "text", "text": text}]},
                "parent_tool_use_id": null, "session_id": ""})),
            Agent::Codex => {
                let thread_id = self.thread_id.clone().unwrap();
                self.request("turn/start", json!({"threadId": thread_id, "input": [{"type": "text", "text": text}]}));
            }
        }
        let deadline = tokio::time::Instant::now() + TURN_TIMEOUT;
        let mut first = None;
        let mut first_line = None;
        let mut answer = String::new();
        loop {
            let (at, line) = self.next_line(deadline).await;
            first_line.get_or_insert(at - t0);
            let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
            let (delta, end) = match self.agent {
                Agent::Claude => {
                    let delta = (v["type"] == "stream_event" && v["event"]["delta"]["type"] == "text_delta")
                        .then(|| v["event"]["delta"]["text"].as_str().unwrap_or_default().to_owned());
                    (delta, v["type"] == "result")
                }
                Agent::Codex => {
                    let method = v["method"].as_str().unwrap_or_default();
                    let delta = (method == "item/agentMessage/delta")
                        .then(|| v["params"]["delta"].as_str().unwrap_or_default().to_owned());
                    (delta, method == "turn/completed")
                }
            };
            if let Some(delta) = delta {
                first.get_or_insert(at - t0);
                answer.push_str(&delta);
            }
            if end {
                let first = first.unwrap_or_else(|| panic!("{} ended a turn without a text delta", self.agent.title()));
                let first_line = first_line.unwrap_or_default();
                return Turn { first_line, first_delta: first, end: at - t0, text: answer };
            }
        }
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- through tether ---------------------------------------------------------

/// A session of the agent in a tether server, with one SSE stream open on it from the start.
struct ThroughTether {
    client: Client,
    session: String,
    events: mpsc::UnboundedReceiver<(Instant, Event)>,
    /// Every event the stream brought, in order.
    seen: Vec<Event>,
}

impl ThroughTether {
    async fn start(client: Client, agent: Agent) -> ThroughTether {
        let create = CreateSession { agent: agent.name().into(), ..Default::default() };
        let session = client.create_session(&create).await.expect("create a session").id;
        let mut stream = client.session_events(&session, Some(0));
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = stream.next_event().await {
                let at = Instant::now();
                if tx.send((at, event.expect("the event stream failed"))).is_err() {
                    break;
                }
            }
        });
        ThroughTether { client, session, events, seen: Vec::new() }
    }

    async fn turn(&mut self, text: &str) -> Turn {
        let t0 = Instant::now();
        self.client.send_text(&self.session, text).await.expect("POST the message");
        let first_line = t0.elapsed();
        let deadline = tokio::time::Instant::now() + TURN_TIMEOUT;
        let mut first = None;
        let mut answer = String::new();
        loop {
            let (at, event) = match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => e,
                Ok(None) => panic!("the event stream ended"),
                Err(_) => panic!("no turn.completed within {TURN_TIMEOUT:?}"),
            };
            if let EventBody::ItemDelta(d) = &event.body {
                first.get_or_insert(at - t0);
                if let Delta::Text(text) = &d.delta {
                    answer.push_str(text);
                }
            }
            let end = matches!(event.body, EventBody::TurnCompleted(_));
            self.seen.push(event);
            if end {
                let first = first.expect("a turn without an item.delta");
                return Turn { first_line, first_delta: first, end: at - t0, text: answer };
            }
        }
    }

    /// No loss: the streamed events are gap-free from seq 1 and equal the stored ones.
    async fn check_no_loss(&self) -> usize {
        let stored = read_all(&self.client, &self.session).await;
        for (i, e) in self.seen.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1, "a gap in the streamed seqs at position {i}");
        }
        assert!(stored.len() >= self.seen.len(), "fewer stored events than streamed");
        for (got, kept) in self.seen.iter().zip(&stored) {
            assert_eq!(
                serde_json::to_value(got).unwrap(),
                serde_json::to_value(kept).unwrap(),
                "streamed event {} differs from the stored one",
                got.seq
            );
        }
        self.seen.len()
    }
}

// ---- the runs ---------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU time (user + system) a process has used so far, all its threads, in ms
/// (`/proc/PID/stat`, in clock ticks of 10 ms).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let field = |n: usize| rest.split_whitespace().nth(n).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    (field(11) + field(12)) * 10.0
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// What one agent's run measured: per way, its counted turns (rounds in order).
struct AgentRun {
    agent: Agent,
    turns: Vec<[Turn; 3]>,
    events: usize,
    argv: String,
    /// The tether server's CPU time per counted tether turn, in ms.
    server_cpu_per_turn: f64,
}

async fn run_agent(agent: Agent, rounds: usize, deadline: Instant) -> AgentRun {
    let home = tempfile::Builder::new().prefix("tether-overhead-home-").tempdir().unwrap();
    let (_anthropic, _openai, env) = match agent {
        Agent::Claude => {
            let model = ScriptedAnthropic::start().await;
            let env = claude_env(&model, home.path());
            (Some(model), None, env)
        }
        Agent::Codex => {
            let model = ScriptedOpenAI::start().await;
            let env = codex_env(&model, home.path());
            (None, Some(model), env)
        }
    };
    let mut env = env;
    env.push(("TETHER_LOG".into(), "warn".into()));
    let server = TestServer::start_with(ServerOptions { env, ..Default::default() }).await;
    let prompt = agent.prompt();

    // Tether first: its agent's command line is what the direct ways run.
    let mut tether = ThroughTether::start(server.client(), agent).await;
    let warm = tether.turn(prompt).await;
    let cl = agent_command_line(&tether.session);
    let argv = format!("{} {}", cl.program.display(), cl.args.join(" "));
    let mut pipes = Direct::start(agent, &cl, Wiring::Pipes).await;
    let mut pty = Direct::start(agent, &cl, Wiring::AsTether).await;
    for d in [&mut pipes, &mut pty] {
        let t = d.turn(prompt).await;
        assert_eq!(t.text, warm.text, "{}: the direct answer differs from tether's", agent.title());
    }

    let cpu_before = cpu_ms(server.pid);
    let mut turns = Vec::new();
    for round in 0..rounds {
        if Instant::now() > deadline {
            eprintln!("{}: out of time after {round} rounds", agent.title());
            break;
        }
        let mut got: [Option<Turn>; 3] = [None, None, None];
        // Rotate which way goes first, so none always follows another.
        for k in 0..3 {
            let i = (round + k) % 3;
            let t = match Way::ALL[i] {
                Way::Direct(Wiring::Pipes) => pipes.turn(prompt).await,
                Way::Direct(Wiring::AsTether) => pty.turn(prompt).await,
                Way::Tether => tether.turn(prompt).await,
            };
            assert_eq!(t.text, warm.text, "{}: turn {round} {:?} answered differently", agent.title(), Way::ALL[i]);
            got[i] = Some(t);
        }
        turns.push(got.map(Option::unwrap));
        eprint!("\r{}: {}/{rounds} rounds", agent.title(), round + 1);
    }
    eprintln!();
    let server_cpu_per_turn = (cpu_ms(server.pid) - cpu_before) / turns.len().max(1) as f64;
    let events = tether.check_no_loss().await;
    drop(pipes);
    drop(pty);
    AgentRun { agent, turns, events, argv, server_cpu_per_turn }
}

struct Row {
    agent: &'static str,
    way: &'static str,
    first_p50: f64,
    first_p99: f64,
    end_p50: f64,
    end_p99: f64,
}

fn rows(run: &AgentRun) -> Vec<Row> {
    Way::ALL
        .iter()
        .enumerate()
        .map(|(i, way)| {
            let first = sorted(run.turns.iter().map(|r| ms(r[i].first_delta)).collect());
            let end = sorted(run.turns.iter().map(|r| ms(r[i].end)).collect());
            Row {
                agent: run.agent.title(),
                way: way.label(),
                first_p50: percentile(&first, 0.5),
                first_p99: percentile(&first, 0.99),
                end_p50: percentile(&end, 0.5),
                end_p99: percentile(&end, 0.99),
            }
        })
        .collect()
}

/// Tether's added latency: per round, tether's time less direct-as-tether's.
struct Added {
    first_p50: f64,
    first_p99: f64,
    end_p50: f64,
    end_p99: f64,
    /// The p50 added to a turn's end as a share of the direct turn's p50.
    share: f64,
}

fn added(run: &AgentRun, base: usize) -> Added {
    let tether = 2;
    let first = sorted(run.turns.iter().map(|r| ms(r[tether].first_delta) - ms(r[base].first_delta)).collect());
    let end = sorted(run.turns.iter().map(|r| ms(r[tether].end) - ms(r[base].end)).collect());
    let base_end = sorted(run.turns.iter().map(|r| ms(r[base].end)).collect());
    let end_p50 = percentile(&end, 0.5);
    Added {
        first_p50: percentile(&first, 0.5),
        first_p99: percentile(&first, 0.99),
        end_p50,
        end_p99: percentile(&end, 0.99),
        share: end_p50 / percentile(&base_end, 0.5),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let deadline = Instant::now() + Duration::from_secs(a.max_secs);
    let per_agent = |left: usize| {
        let left_time = deadline.saturating_duration_since(Instant::now());
        Instant::now() + left_time / left as u32
    };
    let mut runs = Vec::new();
    for (n, agent) in a.agents.iter().enumerate() {
        let agent_deadline = per_agent(a.agents.len() - n);
        runs.push(run_agent(*agent, a.turns, agent_deadline).await);
    }

    if a.json {
        let out: Vec<Value> = runs
            .iter()
            .map(|r| {
                let ways: Vec<Value> = rows(r)
                    .iter()
                    .map(|row| {
                        json!({"way": row.way, "first_delta_p50_ms": row.first_p50, "first_delta_p99_ms": row.first_p99,
                               "turn_p50_ms": row.end_p50, "turn_p99_ms": row.end_p99})
                    })
                    .collect();
                let add = added(r, 1);
                json!({"agent": r.agent.name(), "turns": r.turns.len(), "events": r.events, "ways": ways,
                       "added_first_delta_p50_ms": add.first_p50, "added_first_delta_p99_ms": add.first_p99,
                       "added_turn_p50_ms": add.end_p50, "added_turn_p99_ms": add.end_p99, "added_share": add.share,
                       "server_cpu_ms_per_turn": r.server_cpu_per_turn})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
        return;
    }

    println!("<!-- bench-overhead -->");
    println!("| agent | way | turns | to first text delta p50 / p99 | to turn end p50 / p99 |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for run in &runs {
        for row in rows(run) {
            println!(
                "| {} | {} | {} | {:.1} / {:.1} ms | {:.1} / {:.1} ms |",
                row.agent,
                row.way,
                run.turns.len(),
                row.first_p50,
                row.first_p99,
                row.end_p50,
                row.end_p99
            );
        }
        for (base, name) in [(1, "stdio as tether"), (0, "pipes")] {
            let add = added(run, base);
            println!(
                "| {} | **tether's added latency** (per round, vs direct {name}) | {} | {:+.1} / {:+.1} ms | {:+.1} / {:+.1} ms ({:+.1} % of a turn) |",
                run.agent.title(),
                run.turns.len(),
                add.first_p50,
                add.first_p99,
                add.end_p50,
                add.end_p99,
                add.share * 100.0
            );
        }
    }
    println!();
    println!(
        "Targets (issue 28): at most 5 ms added to the first delta and 2 % to a turn. Every turn: one short streamed text answer from the scripted model (the same script each way); the \
         first turn of each way a warm-up, not counted; ways alternated round by round. No loss: {}.",
        runs.iter()
            .map(|r| format!("{} {} events streamed gap-free = stored", r.agent.title(), r.events))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("<!-- /bench-overhead -->");
    for run in &runs {
        eprintln!("{}: tether ran `{}`", run.agent.title(), run.argv);
        eprintln!("  the tether server's CPU time per turn: {:.2} ms", run.server_cpu_per_turn);
        for (i, way) in Way::ALL.iter().enumerate() {
            let first = sorted(run.turns.iter().map(|r| ms(r[i].first_line)).collect());
            let what = if *way == Way::Tether { "the POST answered" } else { "first line of output" };
            eprintln!(
                "  {}: {what} p50 {:.1} ms, p99 {:.1} ms",
                way.label(),
                percentile(&first, 0.5),
                percentile(&first, 0.99)
            );
        }
    }
}
