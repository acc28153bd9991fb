//! `mcp-test-server --log FILE [--label L]`: the test MCP server (tools
//! `echo`, `add`, `whoami`, `mint`; see `tether_e2e::mcp`) over stdio.
//!
//! - `--http`: serve the same tools over streamable HTTP on 127.0.0.1:0
//!   instead; the first stdout line is `listening on http://127.0.0.1:PORT/mcp`.
//! - `--require-header NAME=VALUE` (with `--http`): answer 401 without it.
//!
//! Broken modes, for tests of clients: `--exit-at-once` (a line on stderr,
//! then exit 1), `--hang` (read stdin forever, never answer), `--garbage`
//! (print non-JSON lines on stdout and keep running).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tether_e2e::mcp::{http_router, serve_stdio, TestTools};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Args {
    log: Option<PathBuf>,
    label: String,
    http: bool,
    require_header: Option<(String, String)>,
    exit_at_once: bool,
    hang: bool,
    garbage: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args { label: "test".into(), ..Default::default() };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--log" => args.log = Some(it.next().ok_or("--log needs a file")?.into()),
            "--label" => args.label = it.next().ok_or("--label needs a value")?,
            "--http" => args.http = true,
            "--require-header" => {
                let spec = it.next().ok_or("--require-header needs NAME=VALUE")?;
                let (name, value) = spec.split_once('=').ok_or("--require-header needs NAME=VALUE")?;
                args.require_header = Some((name.to_string(), value.to_string()));
            }
            "--exit-at-once" => args.exit_at_once = true,
            "--hang" => args.hang = true,
            "--garbage" => args.garbage = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("mcp-test-server: {e}");
            return ExitCode::from(2);
        }
    };
    if args.exit_at_once {
        eprintln!("mcp-test-server: exiting at once, as asked");
        return ExitCode::from(1);
    }
    if args.hang {
        // Read (and ignore) everything, never answer.
        let mut sink = Vec::new();
        let mut stdin = std::io::stdin().lock();
        while stdin.read_until(b'\n', &mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if args.garbage {
        let mut out = std::io::stdout();
        loop {
            if writeln!(out, "this is not JSON-RPC, {{ nor anything else").and_then(|_| out.flush()).is_err() {
                return ExitCode::SUCCESS;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let Some(log) = args.log else {
        eprintln!("mcp-test-server: --log FILE is required");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-test-server: no runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let tools = TestTools::new(&args.label, log);
    let result = runtime.block_on(async move {
        if args.http {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            println!("listening on http://{addr}/mcp");
            std::io::stdout().flush()?;
            let router = http_router(tools, args.require_header, CancellationToken::new());
            axum::serve(listener, router).await?;
            Ok(())
        } else {
            serve_stdio(tools).await
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-test-server: {e}");
            ExitCode::from(1)
        }
    }
}
