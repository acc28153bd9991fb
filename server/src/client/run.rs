//! `tether run`: one turn, shown as it streams, steered from the terminal.

use std::collections::VecDeque;
use std::io::{BufRead, IsTerminal, Write};

use tether_sdk::{
    Client, CreateSession, Decision, Error as SdkError, Event, EventBody, PermissionMode, PermissionReply,
    PermissionRequested, QuestionReply, QuestionRequested, StopReason,
};
use tokio::sync::mpsc;

use super::failure::{self, Target};
use super::{exit, report, stdout_style, CommandError, Renderer, Style};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The prompt.
    prompt: String,
    /// The agent of the new session (claude, codex, opencode, amp, pi, mock).
    #[arg(long, short, default_value = "claude")]
    agent: String,
    /// Send to this existing session instead of creating one.
    #[arg(long, short, conflicts_with_all = ["cwd", "model", "permission_mode", "title"])]
    session: Option<String>,
    /// The new session's working directory (relative to the workspace root).
    #[arg(long)]
    cwd: Option<String>,
    /// The model.
    #[arg(long)]
    model: Option<String>,
    /// default (ask), accept_edits, bypass or plan.
    #[arg(long)]
    permission_mode: Option<String>,
    /// The new session's title.
    #[arg(long)]
    title: Option<String>,
    /// The universal events as JSON lines on stdout (prompts, if any, on stderr).
    #[arg(long)]
    json: bool,
    /// Delete the session after the turn.
    #[arg(long)]
    rm: bool,
}

/// A request waiting for the person at the terminal.
enum Pending {
    Permission(PermissionRequested),
    /// The questions, and the answers typed so far (one list per question).
    Question(QuestionRequested, Vec<Vec<String>>),
}

impl Pending {
    fn id(&self) -> &str {
        match self {
            Pending::Permission(p) => &p.permission_id,
            Pending::Question(q, _) => &q.question_id,
        }
    }
}

/// What one typed line did to the front request.
enum Answer {
    Permission(Decision),
    /// An answer to one question; the request is complete when every question has one.
    Choice(Vec<String>),
    Invalid(String),
}

pub async fn run(client: &Client, target: &Target, args: RunArgs) -> u8 {
    match turn(client, target, &args).await {
        Ok(code) => code,
        Err(e) => report(&e, target),
    }
}

async fn turn(client: &Client, target: &Target, args: &RunArgs) -> Result<u8, CommandError> {
    let (session, after) = match &args.session {
        Some(id) => {
            let s = client.get_session(id).await?;
            (s.id, s.last_seq)
        }
        None => {
            let permission_mode = match &args.permission_mode {
                Some(m) => serde_json::from_value::<PermissionMode>(serde_json::Value::String(m.clone()))
                    .map_err(|_| CommandError::Usage(format!("unknown permission mode {m:?}")))?,
                None => PermissionMode::Default,
            };
            let body = CreateSession {
                agent: args.agent.clone(),
                cwd: args.cwd.clone(),
                model: args.model.clone(),
                permission_mode,
                title: args.title.clone(),
                ..Default::default()
            };
            (client.create_session(&body).await?.id, 0)
        }
    };
    let style = stdout_style();
    let err_style = Style { color: std::io::stderr().is_terminal() && super::colour_allowed() };
    let stdout = std::io::stdout();
    // Prompts and notes go to stderr, coloured by stderr's own terminal-ness.
    let mut renderer = Renderer::new(stdout.lock(), std::io::stderr(), if args.json { err_style } else { style });
    if !args.json {
        renderer.note(&err_style.dim(&format!("session {session}")))?;
    }

    // Connect the stream before sending, so nothing of the turn is missed.
    let mut stream = client.session_events(&session, Some(after));
    let turn_id = client.send_text(&session, args.prompt.clone()).await?.turn_id;

    let mut lines = spawn_stdin_reader();
    let mut stdin_open = true;
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut interrupts = 0u32;
    // Installed once, before the turn starts: a Ctrl-C is never missed between two polls.
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| CommandError::Usage(format!("cannot handle Ctrl-C: {e}")))?;
    let code = loop {
        tokio::select! {
            next = stream.next_event() => {
                let event = match next {
                    Some(Ok(event)) => event,
                    Some(Err(SdkError::Decode(e))) => {
                        renderer.note(&format!("tether: {}", failure::skipped_event(&e)))?;
                        continue;
                    }
                    Some(Err(SdkError::CursorAhead(reset))) => {
                        renderer.note(&format!("tether: {}", failure::store_restored(&reset)))?;
                        continue;
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None => {
                        renderer.note(&format!(
                            "tether: the server stopped sending this turn before it ended. See what happened \
                             with: tether events {session} --text"
                        ))?;
                        break exit::UNREACHABLE;
                    }
                };
                if args.json {
                    show_json(&event)?;
                } else {
                    renderer.event(&event)?;
                }
                match &event.body {
                    EventBody::PermissionRequested(p) => {
                        queue.push_back(Pending::Permission(p.clone()));
                        if queue.len() == 1 { ask(&mut renderer, &queue, args.json)?; }
                    }
                    EventBody::QuestionRequested(q) => {
                        queue.push_back(Pending::Question(q.clone(), Vec::new()));
                        if queue.len() == 1 { ask(&mut renderer, &queue, args.json)?; }
                    }
                    EventBody::PermissionResolved(r) => resolved(&mut renderer, &mut queue, &r.permission_id, args.json)?,
                    EventBody::QuestionResolved(r) => resolved(&mut renderer, &mut queue, &r.question_id, args.json)?,
                    EventBody::TurnCompleted(t) if t.turn_id == turn_id => {
                        break match t.stop_reason {
                            StopReason::EndTurn => exit::OK,
                            StopReason::Interrupted => exit::INTERRUPTED,
                            StopReason::Error | StopReason::MaxTurns | StopReason::Refused => exit::TURN_FAILED,
                        };
                    }
                    EventBody::SessionEnded(_) => break exit::TURN_FAILED,
                    _ => {}
                }
            }
            line = lines.recv(), if stdin_open && !queue.is_empty() => {
                let Some(line) = line else {
                    // No one can answer: refuse what is asked rather than wait forever.
                    stdin_open = false;
                    renderer.note("tether: nothing more can be typed here (stdin is closed), so what is asked is denied")?;
                    while let Some(pending) = queue.pop_front() {
                        decline(client, &session, &pending).await?;
                    }
                    continue;
                };
                answer(client, &session, &mut renderer, &mut queue, line.trim(), args.json).await?;
            }
            _ = sigint.recv() => {
                interrupts += 1;
                if interrupts > 1 {
                    break exit::INTERRUPTED;
                }
                renderer.note(&err_style.yellow("^C interrupting the turn (Ctrl-C again to quit)"))?;
                if let Err(e) = client.interrupt(&session).await {
                    let (_, why) = failure::describe(&e, target);
                    renderer.note(&format!("tether: cannot interrupt the turn: {why}"))?;
                }
            }
        }
    };
    if args.rm {
        if let Err(e) = client.delete_session(&session, false).await {
            let (_, why) = failure::describe(&e, target);
            renderer.note(&format!("tether: cannot delete the session {session}: {why}"))?;
        }
    }
    Ok(code)
}

fn show_json(event: &Event) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(event).unwrap_or_default())?;
    out.flush()
}

/// Lines typed on stdin, read on a thread of their own (a read cannot be
/// cancelled; the thread is left behind at exit).
fn spawn_stdin_reader() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Shows the prompt for the front request.
fn ask<O: Write, E: Write>(r: &mut Renderer<O, E>, queue: &VecDeque<Pending>, json: bool) -> std::io::Result<()> {
    let Some(front) = queue.front() else { return Ok(()) };
    match front {
        Pending::Permission(p) => {
            if json {
                r.permission(p)?;
            }
            let mut choices = Vec::new();
            for option in &p.options {
                choices.push(match option {
                    Decision::AllowOnce => "[y]es",
                    Decision::AllowAlways => "[a]lways",
                    Decision::Deny => "[n]o",
                });
            }
            r.ask(&format!("allow? {}: ", choices.join(" / ")))
        }
        Pending::Question(q, answered) => {
            if json && answered.is_empty() {
                r.question(q)?;
            }
            let Some(question) = q.questions.get(answered.len()) else { return Ok(()) };
            let many = if question.multi_select { " (or several, like 1,3)" } else { "" };
            let which = if q.questions.len() > 1 {
                format!("{} ({} of {})", question.prompt, answered.len() + 1, q.questions.len())
            } else {
                question.prompt.clone()
            };
            r.ask(&format!("{which} Type a number{many}, or your own answer: "))
        }
    }
}

/// A request was resolved (by this terminal, another client, or the agent).
fn resolved<O: Write, E: Write>(
    r: &mut Renderer<O, E>,
    queue: &mut VecDeque<Pending>,
    id: &str,
    json: bool,
) -> std::io::Result<()> {
    let was_front = queue.front().is_some_and(|p| p.id() == id);
    queue.retain(|p| p.id() != id);
    if was_front {
        ask(r, queue, json)?;
    }
    Ok(())
}

async fn answer<O: Write, E: Write>(
    client: &Client,
    session: &str,
    r: &mut Renderer<O, E>,
    queue: &mut VecDeque<Pending>,
    line: &str,
    json: bool,
) -> Result<(), CommandError> {
    let Some(front) = queue.front_mut() else { return Ok(()) };
    match (parse(front, line), front) {
        (Answer::Invalid(why), _) => {
            r.note(&r.style().red(&why))?;
            ask(r, queue, json)?;
        }
        (Answer::Permission(decision), Pending::Permission(p)) => {
            let id = p.permission_id.clone();
            queue.pop_front();
            reply_permission(client, session, &id, decision).await?;
            ask(r, queue, json)?;
        }
        (Answer::Choice(choice), Pending::Question(q, answered)) => {
            answered.push(choice);
            if answered.len() < q.questions.len() {
                ask(r, queue, json)?;
            } else {
                let id = q.question_id.clone();
                let reply = QuestionReply { answers: Some(std::mem::take(answered)), reject: false };
                queue.pop_front();
                tolerate_resolved(client.reply_question(session, &id, &reply).await)?;
                ask(r, queue, json)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn parse(pending: &Pending, line: &str) -> Answer {
    match pending {
        Pending::Permission(p) => {
            let decision = match line.to_ascii_lowercase().as_str() {
                "y" | "yes" | "allow" | "allow_once" => Decision::AllowOnce,
                "a" | "always" | "allow_always" => Decision::AllowAlways,
                "n" | "no" | "d" | "deny" => Decision::Deny,
                _ => return Answer::Invalid(format!("type y, a or n (not {line:?})")),
            };
            if p.options.contains(&decision) {
                Answer::Permission(decision)
            } else {
                Answer::Invalid("that choice is not offered".to_owned())
            }
        }
        Pending::Question(q, answered) => {
            let Some(question) = q.questions.get(answered.len()) else {
                return Answer::Invalid("nothing is asked".to_owned());
            };
            if line.is_empty() {
                return Answer::Invalid("type a number or your own answer".to_owned());
            }
            let numbers: Option<Vec<usize>> =
                line.split(',').map(|n| n.trim().parse::<usize>().ok()).collect::<Option<Vec<_>>>();
            match numbers {
                Some(numbers) => {
                    if numbers.len() > 1 && !question.multi_select {
                        return Answer::Invalid("choose only one".to_owned());
                    }
                    let mut labels = Vec::new();
                    for n in numbers {
                        match n.checked_sub(1).and_then(|i| question.options.get(i)) {
                            Some(option) => labels.push(option.label.clone()),
                            None => return Answer::Invalid(format!("there is no choice {n}")),
                        }
                    }
                    Answer::Choice(labels)
                }
                None => Answer::Choice(vec![line.to_owned()]),
            }
        }
    }
}

async fn reply_permission(client: &Client, session: &str, id: &str, decision: Decision) -> Result<(), CommandError> {
    let reply = PermissionReply { decision, message: None };
    tolerate_resolved(client.reply_permission(session, id, &reply).await)
}

async fn decline(client: &Client, session: &str, pending: &Pending) -> Result<(), CommandError> {
    match pending {
        Pending::Permission(p) => reply_permission(client, session, &p.permission_id, Decision::Deny).await,
        Pending::Question(q, _) => {
            let reply = QuestionReply { answers: None, reject: true };
            tolerate_resolved(client.reply_question(session, &q.question_id, &reply).await)
        }
    }
}

/// A request resolved meanwhile (elsewhere, or by an interrupt) is not an error of this terminal.
fn tolerate_resolved(result: tether_sdk::Result<()>) -> Result<(), CommandError> {
    match result {
        Ok(()) => Ok(()),
        Err(SdkError::Api { status: 404 | 409, .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn question(multi: bool) -> Pending {
        let q: QuestionRequested = serde_json::from_value(json!({"question_id":"qst_1","questions":[
            {"prompt":"Colour?","options":[{"label":"Red"},{"label":"Blue"}],"multi_select":multi}]}))
        .unwrap();
        Pending::Question(q, Vec::new())
    }

    #[test]
    fn answers_are_parsed_against_what_is_offered() {
        let p: PermissionRequested = serde_json::from_value(json!({"permission_id":"prm_1","action":"file_write",
            "title":"Write","options":["allow_once","deny"]}))
        .unwrap();
        let p = Pending::Permission(p);
        assert!(matches!(parse(&p, "Y"), Answer::Permission(Decision::AllowOnce)));
        assert!(matches!(parse(&p, "n"), Answer::Permission(Decision::Deny)));
        assert!(matches!(parse(&p, "a"), Answer::Invalid(_)), "allow_always is not offered");
        assert!(matches!(parse(&p, "maybe"), Answer::Invalid(_)));

        assert!(matches!(parse(&question(false), "2"), Answer::Choice(c) if c == ["Blue"]));
        assert!(matches!(parse(&question(false), "1,2"), Answer::Invalid(_)));
        assert!(matches!(parse(&question(true), "1, 2"), Answer::Choice(c) if c == ["Red", "Blue"]));
        assert!(matches!(parse(&question(false), "3"), Answer::Invalid(_)));
        assert!(matches!(parse(&question(false), "Green"), Answer::Choice(c) if c == ["Green"]));
        assert!(matches!(parse(&question(false), ""), Answer::Invalid(_)));
    }
}
