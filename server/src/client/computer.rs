//! `tether ps` and `tether ports`: the processes run beside the agents and
//! the ports listening in the sandbox, as tables (or JSON), and preview
//! links printed as whole URLs.

use std::io::Write;

use tether_sdk::{Client, CreatePreviewLink, Process, ProcessEnd, ProcessStatus, ProxyStyle};

use super::{render, stdout_style, CommandError};

#[derive(clap::Subcommand)]
pub enum PortsCommand {
    /// Make a signed, expiring preview link to PORT and print it as a URL a browser opens without a token.
    Link {
        port: u16,
        /// How long the link is good for, in seconds [default: the server's, one hour].
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
        /// The path inside the app to open.
        #[arg(long, default_value = "/")]
        path: String,
        /// Forward the whole path (`/v1/ports/PORT/absproxy/…`), for an app told that base path.
        #[arg(long)]
        absproxy: bool,
    },
}

/// `tether ps`.
pub async fn ps(client: &Client, json: bool) -> Result<(), CommandError> {
    let list = client.list_processes().await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list).unwrap_or_default())?;
        return Ok(());
    }
    let style = stdout_style();
    if list.processes.is_empty() {
        writeln!(out, "{}", style.dim("no processes"))?;
        return Ok(());
    }
    writeln!(out, "{}", style.bold(&format!("{:<28} {:<16} {:>7} {:>5}  TITLE", "ID", "STATUS", "PID", "AGE")))?;
    let now = now_ms();
    for p in &list.processes {
        let age = parse_rfc3339_ms(&p.started_at).map_or_else(|| "-".to_owned(), |t| age(now - t));
        writeln!(out, "{:<28} {:<16} {:>7} {:>5}  {}", p.id, status(p), p.pid, age, p.title)?;
    }
    Ok(())
}

/// `tether ports` and `tether ports link`.
pub async fn ports(client: &Client, json: bool, command: Option<PortsCommand>) -> Result<(), CommandError> {
    let mut out = std::io::stdout().lock();
    if let Some(PortsCommand::Link { port, ttl, path, absproxy }) = command {
        let body = CreatePreviewLink {
            ttl_secs: ttl,
            style: if absproxy { ProxyStyle::Absproxy } else { ProxyStyle::Proxy },
            path: Some(path),
        };
        let link = client.create_preview_link(port, &body).await?;
        if json {
            writeln!(out, "{}", serde_json::to_string_pretty(&link).unwrap_or_default())?;
        } else {
            writeln!(out, "{}", client.preview_url(&link))?;
            eprintln!("{}", stdout_style().dim(&format!("good until {}", render::when(&link.expires_at))));
        }
        return Ok(());
    }
    let list = client.ports().await?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list).unwrap_or_default())?;
        return Ok(());
    }
    let style = stdout_style();
    if list.ports.is_empty() {
        writeln!(out, "{}", style.dim("no ports listening"))?;
    } else {
        writeln!(
            out,
            "{}",
            style.bold(&format!(
                "{:<6} {:<16} {:>7} {:<30} {:<12} PREVIEW",
                "PORT", "ADDRESS", "PID", "OWNER", "PROGRAM"
            ))
        )?;
        for p in &list.ports {
            let owner = p.process_id.as_deref().or(p.session_id.as_deref()).unwrap_or("-");
            let pid = p.pid.map_or_else(|| "-".to_owned(), |pid| pid.to_string());
            writeln!(
                out,
                "{:<6} {:<16} {:>7} {:<30} {:<12} {}{}",
                p.port,
                p.addresses.join(","),
                pid,
                owner,
                p.program.as_deref().unwrap_or("-"),
                client.base_url(),
                p.proxy_path
            )?;
        }
    }
    if !list.attributed {
        eprintln!(
            "{}",
            style.dim("the server cannot see which process owns each port here (/proc hides other processes' sockets)")
        );
    }
    Ok(())
}

/// `running`, `exited 3`, `killed SIGTERM`, `stopped`, `server stopped`.
fn status(p: &Process) -> String {
    match (p.status, p.ended, p.exit_code, &p.signal) {
        (ProcessStatus::Running, ..) => "running".to_owned(),
        (_, Some(ProcessEnd::Stopped), ..) => "stopped".to_owned(),
        (_, Some(ProcessEnd::ServerStopped), ..) => "server stopped".to_owned(),
        (_, _, _, Some(signal)) => format!("killed {signal}"),
        (_, _, Some(code), None) => format!("exited {code}"),
        _ => "exited".to_owned(),
    }
}

/// `42s`, `5m`, `3h`, `2d`.
fn age(ms: i64) -> String {
    let secs = (ms / 1000).max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn now_ms() -> i64 {
    crate::ids::now_ms()
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as tether writes
/// them (`2026-11-23T12:00:00.123Z`, the fraction optional).
fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|n| n.parse::<i64>().ok());
    let (y, m, d) = (date.next()??, date.next()??, date.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.splitn(3, ':').map(|n| n.parse::<i64>().ok());
    let (h, min, s) = (hms.next()??, hms.next()??, hms.next()??);
    let millis: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Howard Hinnant's days-from-civil (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + min * 60 + s) * 1000) + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_ages() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("2026-11-23T12:00:00.123Z"), Some(1_795_435_200_123));
        assert_eq!(parse_rfc3339_ms("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(crate::ids::rfc3339_ms(1_795_435_200_123), "2026-11-23T12:00:00.123Z");
        assert_eq!(age(42_000), "42s");
        assert_eq!(age(5 * 60_000), "5m");
        assert_eq!(age(3 * 3_600_000), "3h");
        assert_eq!(age(2 * 86_400_000), "2d");
        assert_eq!(age(-5), "0s");
    }

    #[test]
    fn statuses_in_words() {
        let p: Process = serde_json::from_value(serde_json::json!({
            "id": "prc_1", "command": "bash", "args": [], "cwd": "/w", "tty": true, "title": "bash", "pid": 7,
            "status": "exited", "ended": "exited", "exit_code": 3, "started_at": "2026-01-01T00:00:00Z",
            "output": {"start": 0, "end": 0}
        }))
        .unwrap();
        assert_eq!(status(&p), "exited 3");
        let killed = Process { exit_code: None, signal: Some("SIGTERM".into()), ..p.clone() };
        assert_eq!(status(&killed), "killed SIGTERM");
        let stopped = Process { ended: Some(ProcessEnd::Stopped), ..killed };
        assert_eq!(status(&stopped), "stopped");
        let running = Process { status: ProcessStatus::Running, ended: None, exit_code: None, ..p };
        assert_eq!(status(&running), "running");
    }
}
