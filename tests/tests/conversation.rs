//! Conversations over several turns: in one process, queued while a turn
//! runs, and across a graceful server restart.

use std::time::Duration;

use tether_e2e::events::*;
use tether_e2e::*;
use tether_sdk::{Decision, EventBody, PermissionReply, SessionStatus, StopReason};

#[tokio::test]
async fn two_turns_in_one_session() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.as_str();

    let first_id = client.send_text(id, "[mock:text] first").await.unwrap().turn_id;
    let first = collect_turn(&client, id, 0).await;
    assert_eq!(the_turn_completed(&first).turn_id, first_id);
    assert_eq!(final_text(&first), "Mock reply to turn 1: first");

    let second_id = client.send_text(id, "second, untagged").await.unwrap().turn_id;
    assert_ne!(first_id, second_id);
    let second = collect_turn(&client, id, first.last().unwrap().seq).await;
    assert_eq!(the_turn_completed(&second).turn_id, second_id);
    assert_eq!(final_text(&second), "Mock reply to turn 2: second, untagged");

    wait_status(&client, id, SessionStatus::Idle, Duration::from_secs(5)).await;
    let all = read_all(&client, id).await;
    assert_well_formed(&all);
    assert_eq!(turns_completed(&all).len(), 2);
    // One agent process served both turns.
    assert_eq!(of_type(&all, "agent.exited").len(), 0, "{}", describe(&all));
}

#[tokio::test]
async fn message_sent_during_a_turn_is_queued_and_runs_next() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.as_str();
    let mut stream = client.session_events(id, Some(0));

    // The first turn blocks on a permission request: it is certainly running.
    let first_id = client.send_text(id, "[mock:permission] first").await.unwrap().turn_id;
    let mut events = wait_for_type(&mut stream, TURN_TIMEOUT, "permission.requested").await;
    let EventBody::PermissionRequested(request) = &events.last().unwrap().body else { unreachable!() };
    let request = request.clone();

    let queued_id = client.send_text(id, "[mock:text] queued").await.unwrap().turn_id;
    assert_ne!(first_id, queued_id);
    // Accepted, but not started: only the first turn has started.
    let stored = read_all(&client, id).await;
    assert_eq!(of_type(&stored, "turn.started").len(), 1, "{}", describe(&stored));
    assert_eq!(client.get_session(id).await.unwrap().status, SessionStatus::Waiting);

    let allow = PermissionReply { decision: Decision::AllowOnce, message: None };
    client.reply_permission(id, &request.permission_id, &allow).await.unwrap();
    events.extend(wait_for_count(&mut stream, TURN_TIMEOUT, "turn.completed", 2).await);

    let completed = turns_completed(&events);
    assert_eq!(completed.iter().map(|t| t.turn_id.as_str()).collect::<Vec<_>>(), [&first_id, &queued_id]);
    assert!(completed.iter().all(|t| t.stop_reason == StopReason::EndTurn));
    let first_done = position(&events, |e| matches!(&e.body, EventBody::TurnCompleted(t) if t.turn_id == first_id));
    let queued_start = position(&events, |e| matches!(&e.body, EventBody::TurnStarted(t) if t.turn_id == queued_id));
    assert!(first_done.unwrap() < queued_start.unwrap(), "{}", describe(&events));
    assert_eq!(assistant_texts(&events), ["I wrote the file.", "Mock reply to turn 2: queued"]);
    wait_status(&client, id, SessionStatus::Idle, Duration::from_secs(5)).await;
    assert_well_formed(&read_all(&client, id).await);
}

#[tokio::test]
async fn graceful_restart_between_turns_continues_the_conversation() {
    let mut server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.clone();
    let mut after = 0;
    for (n, word) in [(1, "one"), (2, "two")] {
        client.send_text(&id, format!("[mock:text] {word}")).await.unwrap();
        let turn = collect_turn(&client, &id, after).await;
        assert_eq!(final_text(&turn), format!("Mock reply to turn {n}: {word}"));
        after = turn.last().unwrap().seq;
    }
    wait_status(&client, &id, SessionStatus::Idle, Duration::from_secs(5)).await;

    let (status, _) = server.sigterm().await;
    assert!(status.success(), "SIGTERM exit: {status}");
    server.restart().await;
    let client = server.client();

    let session = client.get_session(&id).await.unwrap();
    assert_eq!(session.status, SessionStatus::Idle);
    let before = read_all(&client, &id).await;
    assert_well_formed(&before);
    // The shutdown stopped the agent, and said so.
    let exits = of_type(&before, "agent.exited");
    assert_eq!(
        exits.len(),
        1,
        "SIGTERM did not stop the agent gracefully (no agent.exited; crash recovery ran instead):\n{}",
        describe(&before)
    );
    let EventBody::AgentExited(exit) = &exits[0].body else { unreachable!() };
    assert!(exit.expected, "{exit:?}");

    client.send_text(&id, "[mock:text] three").await.unwrap();
    let third = collect_turn(&client, &id, before.last().unwrap().seq).await;
    assert_eq!(the_turn_completed(&third).stop_reason, StopReason::EndTurn);
    assert_eq!(final_text(&third), "Mock reply to turn 3: three");
    assert_well_formed(&read_all(&client, &id).await);
}
