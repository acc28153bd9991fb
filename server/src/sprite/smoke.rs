//! `tether sprite smoke NAME`: a live check of tether in a real Sprite, for
//! someone with a Sprite and `SPRITES_TOKEN` (`scripts/sprite-smoke`). The
//! e2e suite runs exactly this against its fakes.
//!
//! Each check says whether it held: the deploy ([`super::deploy`]); the
//! Sprite URL with the Sprites token as the edge's bearer and tether's as
//! `X-Tether-Token`; the TCP proxy with the token the deploy saved; and
//! slow mock turns (`[mock:slow]`, queued back to back) left with no client
//! attached for a while, which must all have finished with no pause seen
//! (no `server.resumed`): keep-awake holding the Sprite; and a checkpoint
//! restored behind a client's back, which the client is told about
//! (`stream.reset`). This module only
//! runs the checks and prints the table; it must not print a token.

use std::io::Write;
use std::time::{Duration, Instant};

use tether_sdk::{Client, CreateSession, EventBody, SessionStatus, StopReason};

use super::deploy::{deploy, DeployOptions};

/// What `tether sprite smoke` does.
#[derive(Debug, Clone)]
pub struct SmokeOptions {
    pub deploy: DeployOptions,
    /// How long the turns are left with no client (a Sprite pauses about
    /// 30 s after its last client leaves).
    pub idle: Duration,
    /// How many `[mock:slow]` turns (about 10 s each) to queue.
    pub turns: u32,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Check {
    pub what: String,
    pub held: bool,
    pub detail: String,
}

/// Runs the checks, printing progress and then the table; answers whether all held.
pub async fn smoke(o: &SmokeOptions, out: &mut impl Write) -> bool {
    let checks = run(o, out).await;
    let width = checks.iter().map(|c| c.what.chars().count()).max().unwrap_or(5).max(5);
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<width$}  HELD  DETAIL", "CHECK");
    for c in &checks {
        let _ = writeln!(out, "{:<width$}  {:<4}  {}", c.what, if c.held { "yes" } else { "NO" }, c.detail);
    }
    let _ = out.flush();
    checks.iter().all(|c| c.held)
}

fn check(what: impl Into<String>, result: Result<String, String>) -> Check {
    match result {
        Ok(detail) => Check { what: what.into(), held: true, detail },
        Err(detail) => Check { what: what.into(), held: false, detail },
    }
}

async fn run(o: &SmokeOptions, out: &mut impl Write) -> Vec<Check> {
    let mut checks = Vec::new();
    let sprites_token = o.deploy.sprites_token.clone().unwrap_or_default();
    let deployed = match deploy(&o.deploy, out).await {
        Ok(d) => d,
        Err(e) => {
            checks.push(check("deploy", Err(e)));
            return checks;
        }
    };
    checks.push(check("deploy", Ok(if deployed.changed_nothing() { "already in place" } else { "deployed" }.into())));
    let token = match std::fs::read_to_string(&deployed.token_file) {
        Ok(t) => t.trim().to_owned(),
        Err(e) => {
            checks.push(check("the saved token", Err(format!("{}: {e}", deployed.token_file.display()))));
            return checks;
        }
    };

    let url_check = match &deployed.url {
        Some(url) => {
            let client = Client::sprite_url(url, &sprites_token).with_token(&token);
            match client.info().await {
                Ok(info) => Ok(format!("{url} answers /v1/info (tether {})", info.version)),
                Err(e) => Err(format!("{url}: {e}")),
            }
        }
        None => Err("the Sprites API gave no URL".into()),
    };
    checks.push(check("the Sprite URL with X-Tether-Token", url_check));

    // A new client each time, sending the token the deploy saved.
    let proxy = || {
        let proxy = tether_sdk::sprites::SpritesProxy::new(&o.deploy.sprite, &sprites_token)
            .with_api_url(&o.deploy.api_url)
            .with_target("localhost", o.deploy.port);
        Client::through_sprites_proxy(proxy).map_err(|e| e.to_string())
    };
    let proxy_check = match proxy() {
        Ok(client) => match client.list_sessions(&Default::default()).await {
            Ok(list) => Ok(format!("{} session(s) listed with the saved token", list.sessions.len())),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e),
    };
    let proxy_ok = proxy_check.is_ok();
    checks.push(check("the TCP proxy", proxy_check));
    if proxy_ok {
        let what = format!("{} slow turn(s) with no client attached finish", o.turns.max(1));
        checks.push(check(what, turns_alone(o, &proxy, out).await));
        checks.push(check("a checkpoint restored gives stream.reset", restored(o, &sprites_token, &proxy, out).await));
    }
    checks
}

/// A turn, a checkpoint, another turn, then a restore: the store goes back
/// in time, and a client that saw the second turn is told so (`409
/// cursor_ahead` on a page, a `stream.reset` frame on a stream) instead of
/// silently getting new events under numbers it already had.
async fn restored(
    o: &SmokeOptions,
    sprites_token: &str,
    proxy: &impl Fn() -> Result<Client, String>,
    out: &mut impl Write,
) -> Result<String, String> {
    let rest = super::rest::SpritesRest::new(&o.deploy.api_url, sprites_token, &o.deploy.sprite)?;
    let client = proxy()?;
    let session = client
        .create_session(&CreateSession { agent: "mock".into(), ..Default::default() })
        .await
        .map_err(|e| format!("creating a mock session: {e}"))?;
    let first = client
        .run_turn(&session.id, "before the checkpoint", &mut tether_sdk::DenyAll)
        .await
        .map_err(|e| format!("the first turn: {e}"))?;
    let comment = format!("tether smoke {}", session.id);
    let checkpoint = rest.checkpoint(&comment).await.map_err(|e| e.to_string())?;
    let second = client
        .run_turn(&session.id, "after the checkpoint", &mut tether_sdk::DenyAll)
        .await
        .map_err(|e| format!("the second turn: {e}"))?;
    let seen = second.last_seq;
    let _ = writeln!(out, "smoke: restoring checkpoint {checkpoint} (events up to {seen} seen)");
    let _ = out.flush();
    rest.restore(&checkpoint).await.map_err(|e| e.to_string())?;

    // The Sprite restarts like a cold boot: wait for tether to answer again.
    let deadline = Instant::now() + Duration::from_secs(90);
    let reset = loop {
        let answer = match proxy() {
            Ok(client) => client.events_page(&session.id, seen, Some(1), false).await,
            Err(e) => Err(tether_sdk::Error::Tunnel(e)),
        };
        match answer {
            // What is wanted: the page refuses the cursor, saying where the store is now.
            Err(tether_sdk::Error::CursorAhead(r)) => break r.last_seq,
            Ok(page) => {
                return Err(format!(
                    "after the restore, events after {seen} were served as if nothing went back ({} of them)",
                    page.events.len()
                ))
            }
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => return Err(format!("tether did not answer after the restore: {e}")),
        }
    };
    if !(first.last_seq..seen).contains(&reset) {
        return Err(format!("the store went back to {reset}, not between {} and {seen}", first.last_seq));
    }
    // A stream from the same cursor opens with `stream.reset`.
    let client = proxy()?;
    let mut stream = client.session_events(&session.id, Some(seen));
    match tokio::time::timeout(Duration::from_secs(30), stream.next_event()).await {
        Ok(Some(Err(tether_sdk::Error::CursorAhead(r)))) if r.last_seq == reset => {}
        other => return Err(format!("a stream after {seen} did not open with stream.reset: {other:?}")),
    }
    Ok(format!("checkpoint {checkpoint}: events {seen} → {reset}, told by cursor_ahead and stream.reset"))
}

/// Queues the slow turns, lets every connection go for `o.idle`, then
/// checks that they all ended well and that no pause was seen.
async fn turns_alone(
    o: &SmokeOptions,
    proxy: &impl Fn() -> Result<Client, String>,
    out: &mut impl Write,
) -> Result<String, String> {
    let turns = o.turns.max(1);
    let session = {
        // This client, and with it every tunnel it opened, is gone before the wait.
        let client = proxy()?;
        let session = client
            .create_session(&CreateSession { agent: "mock".into(), ..Default::default() })
            .await
            .map_err(|e| format!("creating a mock session: {e}"))?;
        for i in 1..=turns {
            client.send_text(&session.id, format!("[mock:slow] smoke {i}")).await.map_err(|e| e.to_string())?;
        }
        session.id
    };
    let _ = writeln!(out, "smoke: {turns} slow turn(s) queued in {session}; no client for {} s", o.idle.as_secs());
    let _ = out.flush();
    tokio::time::sleep(o.idle).await;

    let client = proxy()?;
    let deadline = Instant::now() + Duration::from_secs(30) + Duration::from_secs(15) * turns;
    loop {
        let (completed, failed, resumed) = tally(&client, &session).await?;
        if let Some(why) = failed {
            return Err(why);
        }
        if resumed {
            return Err("the server saw a pause (server.resumed): keep-awake did not hold the Sprite".into());
        }
        let status = client.get_session(&session).await.map_err(|e| e.to_string())?.status;
        if completed >= turns && status == SessionStatus::Idle {
            return Ok(format!("{completed} ended end_turn after {} s alone; no pause seen", o.idle.as_secs()));
        }
        if Instant::now() > deadline {
            return Err(format!("{completed} of {turns} turns ended; the session is {}", status.as_str()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Turns that ended well, the first that did not, and whether a pause was seen.
async fn tally(client: &Client, session: &str) -> Result<(u32, Option<String>, bool), String> {
    let (mut completed, mut failed, mut resumed, mut after) = (0, None, false, 0);
    loop {
        let page = client.events_page(session, after, Some(1000), false).await.map_err(|e| e.to_string())?;
        for event in &page.events {
            match &event.body {
                EventBody::TurnCompleted(t) if t.stop_reason == StopReason::EndTurn => completed += 1,
                EventBody::TurnCompleted(t) => {
                    failed.get_or_insert(format!("turn {} ended {:?}", t.turn_id, t.stop_reason));
                }
                EventBody::ServerResumed(_) => resumed = true,
                _ => {}
            }
        }
        after = page.next_after;
        if !page.has_more {
            return Ok((completed, failed, resumed));
        }
    }
}
