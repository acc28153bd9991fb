//! The built-in `mock` agent: a real child process (the tether binary run
//! with a hidden subcommand that calls [`run`]) that speaks exactly Claude
//! Code's stream-json dialect (`claude -p --input-format stream-json
//! --output-format stream-json --verbose --include-partial-messages
//! --permission-prompt-tool stdio`), so the whole Claude path of the server —
//! PTY, parsing, permissions, questions, interrupts, resume — runs in tests
//! without a model or a network.
//!
//! What a turn does is chosen by the first `[mock:...]` tag in the user text:
//! `text` (the default), `tool`, `permission`, `question`, `slow`, `error`,
//! `crash`, `flood:N`, `timed:N`, `echo-size`, `mcp`, `skills`, and
//! `bash` (a `Bash` call running the rest of the text as a command). Replies are deterministic
//! (`Mock reply to turn N: <echo>`), only ids are random.
//!
//! Layout: `launch` is how the server starts it (the server side);
//! `input` decodes stdin lines, `script` plays the turns against any
//! `Write`, `tag` holds the pure texts, `state` persists the turn count per
//! conversation (`TETHER_MOCK_STATE_DIR`), `ids` makes ids. This module only
//! wires them to the real stdin, stdout and stderr. It must not print
//! anything but protocol lines, the startup banner and stderr diagnostics.

mod ids;
mod input;
pub mod launch;
mod script;
mod state;
mod tag;
#[cfg(test)]
mod tests;

use std::io::{self, BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::Duration;

use input::Input;
use script::{Config, Exit, Mock};
use state::StateFile;

/// Directory where the mock keeps `<session_id>.json` (turns so far), so that
/// `--resume` in a new process continues the count. Optional.
pub const STATE_DIR_ENV: &str = "TETHER_MOCK_STATE_DIR";

/// The first thing on stdout: not JSON, coloured, so the host's log-line path is exercised.
const BANNER: &str = "\x1b[2mmock agent ready\x1b[0m\n";
/// The model reported when `--model` is not given.
const DEFAULT_MODEL: &str = "mock-model";
const PERMISSION_MODES: [&str; 4] = ["default", "acceptEdits", "bypassPermissions", "plan"];
/// Claude Code options the mock accepts and ignores, so a launcher may pass
/// Claude's command line unchanged.
const IGNORED_WITH_VALUE: [&str; 9] = [
    "--input-format",
    "--output-format",
    "--permission-prompt-tool",
    "--append-system-prompt",
    "--system-prompt",
    "--allowedTools",
    "--disallowedTools",
    "--max-turns",
    "--setting-sources",
];
const IGNORED_FLAGS: [&str; 4] = ["-p", "--print", "--verbose", "--include-partial-messages"];
const OUT_BUFFER: usize = 256 * 1024;
const SLOW_TICK: Duration = Duration::from_millis(100);

/// Runs the mock agent until stdin closes; returns the process exit code
/// (0 on end of input or when stdout is gone, 2 on bad arguments, 3 after
/// `[mock:crash]`). `args` are the arguments after the subcommand:
/// `[--resume <session_id>] [--permission-mode <mode>] [--model <m>]`.
pub fn run(args: &[String]) -> i32 {
    let mut stderr = io::stderr();
    let opts = match Options::parse(args) {
        Ok(opts) => opts,
        Err(e) => {
            let _ = writeln!(stderr, "mock: {e}");
            return 2;
        }
    };
    for warning in &opts.warnings {
        let _ = writeln!(stderr, "mock: {warning}");
    }
    let session_id = opts.resume.clone().unwrap_or_else(ids::uuid_v4);
    let state = std::env::var_os(STATE_DIR_ENV).filter(|dir| !dir.is_empty()).and_then(|dir| {
        let state = StateFile::new(PathBuf::from(dir), &session_id);
        if state.is_none() {
            let _ = writeln!(stderr, "mock: session id {session_id:?} cannot name a state file; not saving state");
        }
        state
    });
    let mut turns_done = 0;
    if let (Some(state), Some(_)) = (&state, &opts.resume) {
        match state.load() {
            Ok(turns) => turns_done = turns,
            Err(e) => {
                let _ = writeln!(stderr, "mock: cannot read {}: {e}; counting turns from 1", state.path().display());
            }
        }
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));

    let mut out = BufWriter::with_capacity(OUT_BUFFER, io::stdout().lock());
    if out.write_all(BANNER.as_bytes()).and_then(|()| out.flush()).is_err() {
        return 0;
    }
    let _ = writeln!(stderr, "mock: started");

    let (tx, rx) = mpsc::channel();
    if let Err(e) = spawn_reader(tx) {
        let _ = writeln!(stderr, "mock: cannot start the stdin reader: {e}");
        return 1;
    }
    let mcp_servers = opts.mcp_config.as_deref().map(mcp_server_names).unwrap_or_default();
    let skills = opts.plugin_dir.as_deref().map(skill_names).unwrap_or_default();
    let cfg = Config {
        session_id,
        model: opts.model,
        permission_mode: opts.permission_mode,
        cwd,
        turns_done,
        state,
        tick: SLOW_TICK,
        mcp_servers,
        skills,
    };
    match Mock::new(cfg, out, rx).serve() {
        Ok(Exit::Eof) => 0,
        Ok(Exit::Crash { code, message }) => {
            let _ = writeln!(stderr, "{message}");
            let _ = stderr.flush();
            code
        }
        // stdout is gone (broken pipe, closed terminal): nobody to talk to.
        Err(_) => 0,
    }
}

/// The server names of a Claude `--mcp-config` file (none if it cannot be read).
fn mcp_server_names(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["mcpServers"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// The skills of a plugin folder: `<dir>/skills/<name>/SKILL.md`, sorted.
fn skill_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("skills"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().join("SKILL.md").is_file())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads stdin lines on their own thread, so a turn can notice an interrupt
/// while it streams. Dropping the sender at end of input tells the mock.
fn spawn_reader(tx: Sender<Input>) -> io::Result<()> {
    thread::Builder::new().name("mock-stdin".into()).spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => match input::parse_line(&line) {
                    Ok(Some(input)) => {
                        if tx.send(input).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ =
                            writeln!(io::stderr(), "mock: ignoring malformed input line ({} bytes): {e}", line.len());
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = writeln!(io::stderr(), "mock: cannot read stdin: {e}");
                    return;
                }
            }
        }
    })?;
    Ok(())
}

/// The command line.
#[derive(Debug, PartialEq)]
struct Options {
    resume: Option<String>,
    permission_mode: String,
    model: String,
    /// `--mcp-config FILE`: Claude's `{"mcpServers":{..}}`; the mock lists their names.
    mcp_config: Option<PathBuf>,
    /// `--plugin-dir DIR`: a plugin whose `skills/<name>/SKILL.md` the mock lists.
    plugin_dir: Option<PathBuf>,
    /// Unknown options, reported on stderr and otherwise ignored.
    warnings: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut opts = Options {
            resume: None,
            permission_mode: "default".to_string(),
            model: DEFAULT_MODEL.to_string(),
            mcp_config: None,
            plugin_dir: None,
            warnings: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value)),
                _ => (arg.as_str(), None),
            };
            match name {
                "--resume" | "-r" => opts.resume = Some(value(name, inline, &mut it)?),
                "--permission-mode" => {
                    let mode = value(name, inline, &mut it)?;
                    if !PERMISSION_MODES.contains(&mode.as_str()) {
                        return Err(format!(
                            "invalid --permission-mode {mode:?} (expected one of {})",
                            PERMISSION_MODES.join(", ")
                        ));
                    }
                    opts.permission_mode = mode;
                }
                "--model" => opts.model = value(name, inline, &mut it)?,
                "--mcp-config" => opts.mcp_config = Some(PathBuf::from(value(name, inline, &mut it)?)),
                "--plugin-dir" => opts.plugin_dir = Some(PathBuf::from(value(name, inline, &mut it)?)),
                "--dangerously-skip-permissions" => opts.permission_mode = "bypassPermissions".to_string(),
                _ if IGNORED_WITH_VALUE.contains(&name) => {
                    value(name, inline, &mut it)?;
                }
                _ if IGNORED_FLAGS.contains(&name) => {}
                _ if name.starts_with('-') => opts.warnings.push(format!("ignoring unknown option {arg}")),
                // A positional argument (such as the subcommand's own name): ignored.
                _ => {}
            }
        }
        Ok(opts)
    }
}

/// The value of option `name`: after `=`, or the next argument; never empty.
fn value(name: &str, inline: Option<&str>, rest: &mut std::slice::Iter<'_, String>) -> Result<String, String> {
    let value = match inline {
        Some(v) => Some(v.to_string()),
        None => rest.next().cloned(),
    };
    value.filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} needs a value"))
}
