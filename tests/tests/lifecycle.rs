//! Ending things: DELETE of a session (with and without purge), and SIGTERM
//! of the server while an agent runs.

use std::time::{Duration, Instant};

use tether_e2e::events::*;
use tether_e2e::http::{expect_problem, send};
use tether_e2e::*;
use tether_sdk::reqwest::Method;
use tether_sdk::{EndReason, EventBody, ListSessions, SessionStatus, StopReason};

#[tokio::test]
async fn delete_during_a_slow_turn_ends_the_session_and_its_processes() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.as_str();
    let mut stream = client.session_events(id, Some(0));
    let turn = client.send_text(id, "[mock:slow]").await.unwrap();
    wait_for_count(&mut stream, TURN_TIMEOUT, "item.delta", 2).await;
    assert!(!processes_of_session(id).is_empty(), "no agent process tagged with the session id");

    let asked = Instant::now();
    let deleted = client.delete_session(id, false).await.unwrap();
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(5), "DELETE took {took:?}");
    assert_eq!(deleted.status, SessionStatus::Ended);
    wait_for_type(&mut stream, Duration::from_secs(5), "session.ended").await;
    wait_no_processes(id, Duration::from_secs(5)).await;

    let all = read_all(&client, id).await;
    assert_well_formed(&all);
    let n = all.len();
    assert!(
        matches!(&all[n - 2].body, EventBody::SessionStatus(s) if s.status == SessionStatus::Ended),
        "{}",
        describe_tail(&all, 10)
    );
    let EventBody::SessionEnded(ended) = &all[n - 1].body else { panic!("{}", describe_tail(&all, 10)) };
    assert_eq!(ended.reason, EndReason::Terminated);
    // The running turn was closed, and the agent's exit was expected.
    let done = turns_completed(&all);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].turn_id, turn.turn_id);
    assert_eq!(done[0].stop_reason, StopReason::Interrupted);
    let exits = of_type(&all, "agent.exited");
    assert_eq!(exits.len(), 1, "{}", describe_tail(&all, 10));
    let EventBody::AgentExited(exit) = &exits[0].body else { unreachable!() };
    assert!(exit.expected);

    // An ended session takes no more messages, but keeps its history.
    let resp = send(
        client.request(Method::POST, &format!("/v1/sessions/{id}/messages")).json(&serde_json::json!({"text": "hi"})),
    )
    .await;
    expect_problem(resp, 409, "conflict", &[]).await;
    let err = client.interrupt(id).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(409), Some("conflict")), "{err}");
    assert_eq!(client.get_session(id).await.unwrap().status, SessionStatus::Ended);
    assert_eq!(read_all(&client, id).await.len(), n, "events were added after session.ended");
    assert!(processes_of_session(id).is_empty(), "a message to an ended session respawned the agent");
    // Deleting again is harmless.
    assert_eq!(client.delete_session(id, false).await.unwrap().status, SessionStatus::Ended);
}

#[tokio::test]
async fn delete_with_purge_forgets_the_session() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.as_str();
    client.send_text(id, "[mock:text] remember me").await.unwrap();
    collect_turn(&client, id, 0).await;
    let keep = mock_session(&client).await;

    client.delete_session(id, true).await.unwrap();
    wait_no_processes(id, Duration::from_secs(5)).await;
    let resp = send(client.request(Method::GET, &format!("/v1/sessions/{id}"))).await;
    expect_problem(resp, 404, "session_not_found", &[id]).await;
    let resp = send(client.request(Method::GET, &format!("/v1/sessions/{id}/events"))).await;
    expect_problem(resp, 404, "session_not_found", &[id]).await;
    let resp = send(client.request(Method::GET, &format!("/v1/sessions/{id}/events/stream"))).await;
    expect_problem(resp, 404, "session_not_found", &[id]).await;
    let err = client.send_text(id, "hello?").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("session_not_found")), "{err}");
    let listed = client.list_sessions(&ListSessions::default()).await.unwrap();
    let ids: Vec<&str> = listed.sessions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [keep.id.as_str()]);
}

#[tokio::test]
async fn sigterm_with_a_live_agent_stops_everything_within_two_seconds() {
    let mut server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.clone();
    let mut stream = client.session_events(&id, Some(0));
    let turn = client.send_text(&id, "[mock:slow]").await.unwrap();
    wait_for_count(&mut stream, TURN_TIMEOUT, "item.delta", 2).await;
    assert!(!processes_of_session(&id).is_empty(), "no agent process tagged with the session id");

    let (status, took) = server.sigterm().await;
    assert!(took < Duration::from_secs(2), "the server took {took:?} to exit");
    assert_eq!(status.code(), Some(0), "exit status {status}");
    let left = processes_of_session(&id);
    assert!(left.is_empty(), "agent processes left after the server exited: {left:?}");
    let inspector = format!("inspector: {}/ui/\n", server.url);
    assert_eq!(server.stdout_rest(), inspector, "the server printed more than its address and inspector lines");

    // The shutdown closed the turn and recorded the agent's (expected) exit.
    server.restart().await;
    let client = server.client();
    let all = read_all(&client, &id).await;
    assert_well_formed(&all);
    let done = the_turn_completed(&all);
    assert_eq!(done.turn_id, turn.turn_id);
    assert_ne!(done.stop_reason, StopReason::EndTurn, "{}", describe_tail(&all, 10));
    let exits = of_type(&all, "agent.exited");
    assert_eq!(
        exits.len(),
        1,
        "SIGTERM did not stop the agent gracefully (no agent.exited; crash recovery ran instead):\n{}",
        describe_tail(&all, 10)
    );
    let EventBody::AgentExited(exit) = &exits[0].body else { unreachable!() };
    assert!(exit.expected, "{exit:?}");
    assert_eq!(client.get_session(&id).await.unwrap().status, SessionStatus::Idle);
}

#[tokio::test]
async fn an_agent_that_cannot_start_fails_its_session() {
    // A file that exists but cannot be executed stands in for a broken install.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("not-a-program");
    std::fs::write(&broken, "not a program").unwrap();
    let server = TestServer::start_with(ServerOptions {
        env: vec![("TETHER_MOCK_PATH".into(), broken.display().to_string())],
        ..Default::default()
    })
    .await;
    let client = server.client();
    let err = client
        .create_session(&tether_sdk::CreateSession { agent: "mock".into(), ..Default::default() })
        .await
        .expect_err("the agent cannot start");
    assert_eq!(err.code(), Some("agent_unavailable"), "{err}");
    let sessions = client.list_sessions(&Default::default()).await.unwrap().sessions;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].status, tether_sdk::SessionStatus::Failed);
    let events = read_all(&client, &sessions[0].id).await;
    assert_well_formed(&events);
    assert_eq!(events.last().unwrap().event_type(), "session.ended");
    // The server keeps serving.
    assert_eq!(client.health().await.unwrap().status, "ok");
}
