//! An orchestrator's loop: create a session, run turns to their end while a
//! policy decides permissions (shell commands allowed, everything else
//! denied), and act on typed errors.
//!
//! ```sh
//! tether serve --port 7419 --token "$TETHER_TOKEN" &
//! TETHER_URL=http://127.0.0.1:7419 cargo run -p tether-sdk --example run_turn -- mock "[mock:permission] hello"
//! ```
//! (`TETHER_URL` may be `https://…`; the default features carry TLS.)

use tether_sdk::{
    Client, CreateSession, DecideWith, Decision, Error, ErrorCode, PermissionAction, PermissionReply, QuestionReply,
    StopReason,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("TETHER_URL").unwrap_or_else(|_| "http://127.0.0.1:7419".into());
    let mut client = Client::new(url);
    if let Ok(token) = std::env::var("TETHER_TOKEN") {
        client = client.with_token(token);
    }
    let mut args = std::env::args().skip(1);
    let agent = args.next().unwrap_or_else(|| "mock".into());
    let prompt = args.next().unwrap_or_else(|| "Say hello".into());

    let session = match client.create_session(&CreateSession { agent: agent.clone(), ..Default::default() }).await {
        Ok(session) => session,
        // Typed errors: match on the problem's code, not on strings.
        Err(Error::Api { code: ErrorCode::AgentNotInstalled, .. }) => {
            eprintln!("{agent} is not installed: POST /v1/agents/{agent}/install first");
            std::process::exit(1);
        }
        Err(e) => return Err(e.into()),
    };

    let mut policy = DecideWith {
        permission: |request: &tether_sdk::PermissionRequested| {
            let decision = if request.action == PermissionAction::Shell { Decision::AllowOnce } else { Decision::Deny };
            println!("permission {:?} → {decision:?}", request.title);
            PermissionReply { decision, message: None }
        },
        // Pick the first option of every question.
        question: |request: &tether_sdk::QuestionRequested| QuestionReply {
            answers: Some(
                request.questions.iter().map(|q| q.options.iter().take(1).map(|o| o.label.clone()).collect()).collect(),
            ),
            reject: false,
        },
    };
    let report = client.run_turn(&session.id, prompt, &mut policy).await?;
    println!("{}", report.text);
    for tool in report.tool_calls() {
        let name = tool.tool.as_ref().map(|t| t.name.as_str()).unwrap_or("?");
        println!("tool {name}: {:?}", tool.status);
    }
    if let Some(usage) = &report.usage {
        println!("tokens in {:?}, out {:?}", usage.input_tokens, usage.output_tokens);
    }
    client.delete_session(&session.id, false).await?;
    if report.stop_reason != StopReason::EndTurn {
        eprintln!("the turn ended with {:?}: {:?}", report.stop_reason, report.error);
        std::process::exit(1);
    }
    Ok(())
}
