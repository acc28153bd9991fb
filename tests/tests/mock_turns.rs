//! One full turn per `[mock:...]` tag, each checked event by event.

use std::time::{Duration, Instant};

use tether_e2e::events::*;
use tether_e2e::*;
use tether_sdk::{
    Decision, Event, EventBody, ItemKind, ItemStatus, Part, PermissionAction, PermissionReply, PermissionRequested,
    QuestionReply, QuestionRequested, ResolvedBy, Role, SessionStatus, Source, StopReason, ToolKind,
};

fn permission_of(e: &Event) -> &PermissionRequested {
    match &e.body {
        EventBody::PermissionRequested(p) => p,
        other => panic!("not a permission request: {other:?}"),
    }
}

fn question_of(e: &Event) -> &QuestionRequested {
    match &e.body {
        EventBody::QuestionRequested(q) => q,
        other => panic!("not a question: {other:?}"),
    }
}

#[tokio::test]
async fn text_turn_streams_the_reply_in_deltas() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    assert_eq!(session.agent, "mock");
    assert_eq!(session.cwd, server.workspace().to_str().unwrap());

    let text = "[mock:text] hello world";
    let accepted = client.send_text(&session.id, text).await.unwrap();
    let events = collect_turn(&client, &session.id, 0).await;

    let started = of_type(&events, "turn.started");
    assert_eq!(started.len(), 1);
    match &started[0].body {
        EventBody::TurnStarted(t) => {
            assert_eq!(t.turn_id, accepted.turn_id);
            assert_eq!(t.input, vec![Part::text(text)]);
        }
        _ => unreachable!(),
    }
    let reply = "Mock reply to turn 1: hello world";
    let messages = assistant_messages(&events);
    assert_eq!(messages.len(), 1, "{}", describe(&events));
    let item = messages[0];
    assert_eq!(item.status, ItemStatus::Completed);
    assert_eq!(item.turn_id, accepted.turn_id);
    assert_eq!(item_text(item), reply);
    let deltas = events.iter().filter(|e| matches!(&e.body, EventBody::ItemDelta(d) if d.item_id == item.item_id));
    assert!(deltas.count() > 1, "the reply came in one piece:\n{}", describe(&events));
    assert_eq!(delta_text(&events, &item.item_id), reply);

    let done = the_turn_completed(&events);
    assert_eq!(done.turn_id, accepted.turn_id);
    assert_eq!(done.stop_reason, StopReason::EndTurn);
    assert!(done.error.is_none());

    // session.started names the agent and its native conversation id, which the session keeps.
    let announced = of_type(&events, "session.started");
    assert_eq!(announced.len(), 1, "{}", describe(&events));
    let EventBody::SessionStarted(s) = &announced[0].body else { unreachable!() };
    assert_eq!(s.agent, "mock");
    assert!(s.native_session_id.is_some());
    wait_status(&client, &session.id, SessionStatus::Idle, Duration::from_secs(5)).await;
    let session = client.get_session(&session.id).await.unwrap();
    assert_eq!(session.native_session_id, s.native_session_id);

    let all = read_all(&client, &session.id).await;
    assert_well_formed(&all);
    assert_eq!(session.last_seq, all.last().unwrap().seq);
    assert!(all.iter().filter(|e| e.event_type().starts_with("item.")).all(|e| e.source == Source::Agent));
}

#[tokio::test]
async fn tool_turn_reports_the_shell_call_as_one_item() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    client.send_text(&session.id, "[mock:tool] run it").await.unwrap();
    let events = collect_turn(&client, &session.id, 0).await;

    let items = completed_items(&events);
    assert_eq!(items.len(), 2, "{}", describe(&events));
    let tool_item = items[0];
    assert_eq!(tool_item.kind, ItemKind::ToolCall);
    assert_eq!(tool_item.status, ItemStatus::Completed);
    let tool = tool_item.tool.as_ref().expect("tool details");
    assert_eq!(tool.name, "Bash");
    assert_eq!(tool.kind, ToolKind::Shell);
    assert_eq!(tool.input["command"], "echo mock-tool-output");
    assert_eq!(tool.output.as_deref(), Some("mock-tool-output"));
    // The call and its result are one item: one start, one completion.
    let starts =
        events.iter().filter(|e| matches!(&e.body, EventBody::ItemStarted(i) if i.item.item_id == tool_item.item_id));
    assert_eq!(starts.count(), 1);

    let message = items[1];
    assert_eq!(message.role, Some(Role::Assistant));
    assert_eq!(item_text(message), "The command printed: mock-tool-output");
    // The tool completed before the reply started.
    let tool_done =
        position(&events, |e| matches!(&e.body, EventBody::ItemCompleted(i) if i.item.item_id == tool_item.item_id));
    let reply_start =
        position(&events, |e| matches!(&e.body, EventBody::ItemStarted(i) if i.item.item_id == message.item_id));
    assert!(tool_done.unwrap() < reply_start.unwrap());
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    assert_well_formed(&read_all(&client, &session.id).await);
}

/// `[mock:subagent]`: a Task call whose subagent runs a shell call and
/// answers; the subagent's items name the Task item as their parent, from
/// their `item.started` on, and the main agent's items name none.
#[tokio::test]
async fn a_subagents_items_are_children_of_its_task_call() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    client.send_text(&session.id, "[mock:subagent] go").await.unwrap();
    let events = collect_turn(&client, &session.id, 0).await;

    let items = completed_items(&events);
    assert_eq!(items.len(), 4, "{}", describe(&events));
    // Completed in this order: the subagent's call, its answer, the Task call, the reply.
    let (shell, reply) = (items[0], items[3]);
    let task = items.iter().find(|i| i.tool.as_ref().is_some_and(|t| t.kind == ToolKind::Task)).unwrap();
    assert_eq!(task.parent_item_id, None);
    assert_eq!(task.status, ItemStatus::Completed);
    assert_eq!(task.tool.as_ref().unwrap().output.as_deref(), Some("The command printed: mock-tool-output"));
    assert_eq!(shell.tool.as_ref().unwrap().name, "Bash");
    assert_eq!(shell.parent_item_id.as_deref(), Some(task.item_id.as_str()));
    let sub_reply = items.iter().find(|i| item_text(i) == "The command printed: mock-tool-output").unwrap();
    assert_eq!(sub_reply.parent_item_id.as_deref(), Some(task.item_id.as_str()));
    assert_eq!(reply.parent_item_id, None);
    assert_eq!(item_text(reply), "The subagent said: The command printed: mock-tool-output");
    for e in &events {
        if let EventBody::ItemStarted(i) = &e.body {
            let nested = i.item.item_id == shell.item_id || i.item.item_id == sub_reply.item_id;
            let want = nested.then_some(task.item_id.as_str());
            assert_eq!(i.item.parent_item_id.as_deref(), want, "{e:?}");
        }
    }
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    assert_well_formed(&read_all(&client, &session.id).await);
}

/// Runs `[mock:permission]` up to the permission request and answers it with
/// `decision`; returns the request and every event of the turn.
async fn permission_turn(server: &TestServer, decision: Decision) -> (PermissionRequested, Vec<Event>) {
    let client = server.client();
    let session = mock_session(&client).await;
    let mut stream = client.session_events(&session.id, Some(0));
    client.send_text(&session.id, "[mock:permission] write the file").await.unwrap();
    let mut events = wait_for_type(&mut stream, TURN_TIMEOUT, "permission.requested").await;
    let request = permission_of(events.last().unwrap()).clone();

    let file = server.workspace().join("mock-permission.txt");
    assert_eq!(request.action, PermissionAction::FileWrite);
    assert_eq!(request.path.as_deref(), Some(file.to_str().unwrap()));
    assert!(request.options.contains(&Decision::AllowOnce) && request.options.contains(&Decision::Deny));
    let item_id = request.item_id.clone().expect("the request names its tool item");
    let tool_started = started_items(&events).iter().any(|i| i.item_id == item_id && i.kind == ItemKind::ToolCall);
    assert!(tool_started, "the tool item did not start before the request:\n{}", describe(&events));
    assert!(!file.exists(), "the file was written before the permission was granted");
    wait_status(&client, &session.id, SessionStatus::Waiting, Duration::from_secs(5)).await;

    let reply = PermissionReply { decision, message: None };
    client.reply_permission(&session.id, &request.permission_id, &reply).await.unwrap();
    events.extend(wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await);

    let resolved = permissions_resolved(&events);
    assert_eq!(resolved.len(), 1, "{}", describe(&events));
    assert_eq!(resolved[0].permission_id, request.permission_id);
    assert_eq!(resolved[0].decision, decision);
    assert_eq!(resolved[0].by, ResolvedBy::Client);
    // Answered once: a second answer finds nothing open.
    let again = client.reply_permission(&session.id, &request.permission_id, &reply).await.unwrap_err();
    assert_eq!((again.status(), again.code()), (Some(404), Some("not_found")), "{again}");
    wait_status(&client, &session.id, SessionStatus::Idle, Duration::from_secs(5)).await;
    assert_well_formed(&read_all(&client, &session.id).await);
    (request, events)
}

#[tokio::test]
async fn permission_allowed_writes_the_file() {
    let server = TestServer::start().await;
    let (request, events) = permission_turn(&server, Decision::AllowOnce).await;
    let file = server.workspace().join("mock-permission.txt");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "written by the mock agent\n");
    let tool_item =
        completed_items(&events).into_iter().find(|i| Some(&i.item_id) == request.item_id.as_ref()).unwrap();
    assert_eq!(tool_item.status, ItemStatus::Completed);
    assert_eq!(final_text(&events), "I wrote the file.");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
}

#[tokio::test]
async fn permission_denied_declines_the_tool_and_the_turn_goes_on() {
    let server = TestServer::start().await;
    let (request, events) = permission_turn(&server, Decision::Deny).await;
    assert!(!server.workspace().join("mock-permission.txt").exists(), "the file was written despite the deny");
    let tool_item =
        completed_items(&events).into_iter().find(|i| Some(&i.item_id) == request.item_id.as_ref()).unwrap();
    assert_eq!(tool_item.status, ItemStatus::Declined);
    assert_eq!(final_text(&events), "The write was denied.");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
}

/// Runs `[mock:question]` up to the question and answers it with `reply`.
async fn question_turn(server: &TestServer, reply: QuestionReply) -> (QuestionRequested, Vec<Event>) {
    let client = server.client();
    let session = mock_session(&client).await;
    let mut stream = client.session_events(&session.id, Some(0));
    client.send_text(&session.id, "[mock:question] pick one").await.unwrap();
    let mut events = wait_for_type(&mut stream, TURN_TIMEOUT, "question.requested").await;
    let question = question_of(events.last().unwrap()).clone();
    assert_eq!(question.questions.len(), 1);
    let q = &question.questions[0];
    assert_eq!(q.prompt, "Which colour?");
    let labels: Vec<&str> = q.options.iter().map(|o| o.label.as_str()).collect();
    assert_eq!(labels, ["Red", "Blue"]);
    assert!(!q.multi_select);
    wait_status(&client, &session.id, SessionStatus::Waiting, Duration::from_secs(5)).await;

    client.reply_question(&session.id, &question.question_id, &reply).await.unwrap();
    events.extend(wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await);
    let resolved = questions_resolved(&events);
    assert_eq!(resolved.len(), 1, "{}", describe(&events));
    assert_eq!(resolved[0].question_id, question.question_id);
    assert_eq!(resolved[0].rejected, reply.reject);
    assert_eq!(resolved[0].answers, reply.answers);
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    wait_status(&client, &session.id, SessionStatus::Idle, Duration::from_secs(5)).await;
    assert_well_formed(&read_all(&client, &session.id).await);
    (question, events)
}

#[tokio::test]
async fn question_answered_reaches_the_agent() {
    let server = TestServer::start().await;
    let reply = QuestionReply { answers: Some(vec![vec!["Blue".into()]]), reject: false };
    let (_, events) = question_turn(&server, reply).await;
    assert_eq!(final_text(&events), "You chose: Blue");
}

#[tokio::test]
async fn question_rejected_lets_the_turn_finish() {
    let server = TestServer::start().await;
    let reply = QuestionReply { answers: None, reject: true };
    let (_, events) = question_turn(&server, reply).await;
    assert_eq!(final_text(&events), "The question was rejected.");
}

#[tokio::test]
async fn slow_turn_is_interrupted_through_the_api() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let mut stream = client.session_events(&session.id, Some(0));
    let accepted = client.send_text(&session.id, "[mock:slow]").await.unwrap();
    let mut events = wait_for_count(&mut stream, TURN_TIMEOUT, "item.delta", 3).await;
    let EventBody::ItemDelta(delta) = &events.last().unwrap().body else { unreachable!() };
    let item_id = delta.item_id.clone();

    let asked = Instant::now();
    client.interrupt(&session.id).await.unwrap();
    // The slow script runs ~10 s; an interrupt ends it at once.
    events.extend(wait_for_type(&mut stream, Duration::from_secs(5), "turn.completed").await);
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(5), "the turn ended {took:?} after the interrupt");

    let done = the_turn_completed(&events);
    assert_eq!(done.turn_id, accepted.turn_id);
    assert_eq!(done.stop_reason, StopReason::Interrupted, "{}", describe(&events));
    let item = completed_items(&events).into_iter().find(|i| i.item_id == item_id).expect("the open item completed");
    assert_eq!(item.status, ItemStatus::Cancelled, "the item left open by the interrupt:\n{}", describe(&events));
    let deltas = of_type(&events, "item.delta").len();
    assert!(deltas < 100, "all {deltas} deltas were streamed: the interrupt did nothing");

    wait_status(&client, &session.id, SessionStatus::Idle, Duration::from_secs(5)).await;
    // The session goes on.
    let after = read_all(&client, &session.id).await.last().unwrap().seq;
    client.send_text(&session.id, "[mock:text] after").await.unwrap();
    let next = collect_turn(&client, &session.id, after).await;
    assert_eq!(the_turn_completed(&next).stop_reason, StopReason::EndTurn);
    assert_eq!(final_text(&next), "Mock reply to turn 2: after");
    assert_well_formed(&read_all(&client, &session.id).await);
}

#[tokio::test]
async fn error_turn_reports_an_error_event() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    client.send_text(&session.id, "[mock:error]").await.unwrap();
    let events = collect_turn(&client, &session.id, 0).await;

    let errors = of_type(&events, "error");
    assert_eq!(errors.len(), 1, "{}", describe(&events));
    let EventBody::Error(error) = &errors[0].body else { unreachable!() };
    assert!(!error.code.is_empty());
    assert!(error.message.contains("mock upstream failure"), "{error:?}");
    let done = the_turn_completed(&events);
    assert_eq!(done.stop_reason, StopReason::Error);
    assert!(errors[0].seq < events.last().unwrap().seq);
    wait_status(&client, &session.id, SessionStatus::Idle, Duration::from_secs(5)).await;
    assert_well_formed(&read_all(&client, &session.id).await);
}

#[tokio::test]
async fn crash_mid_turn_closes_everything_and_next_message_respawns() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.as_str();
    client.send_text(id, "[mock:text] one").await.unwrap();
    let first = collect_turn(&client, id, 0).await;
    assert_eq!(final_text(&first), "Mock reply to turn 1: one");
    let first_pids = processes_of_session(id);
    assert!(!first_pids.is_empty(), "no agent process tagged with the session id");

    let after = first.last().unwrap().seq;
    let mut stream = client.session_events(id, Some(after));
    let crash = client.send_text(id, "[mock:crash] boom").await.unwrap();
    let mut events = wait_for_type(&mut stream, TURN_TIMEOUT, "agent.exited").await;
    events.extend(
        wait_for(
            &mut stream,
            Duration::from_secs(5),
            |e| matches!(&e.body, EventBody::SessionStatus(s) if s.status == SessionStatus::Idle),
        )
        .await,
    );

    let failed_item =
        position(&events, |e| matches!(&e.body, EventBody::ItemCompleted(i) if i.item.status == ItemStatus::Failed));
    let error = position(&events, |e| e.event_type() == "error");
    let completed = position(&events, |e| e.event_type() == "turn.completed");
    let exited = position(&events, |e| e.event_type() == "agent.exited");
    let (Some(failed_item), Some(error), Some(completed), Some(exited)) = (failed_item, error, completed, exited)
    else {
        panic!("missing events of the crash:\n{}", describe(&events));
    };
    assert!(failed_item < error && error < completed && completed < exited, "wrong order:\n{}", describe(&events));
    let done = the_turn_completed(&events);
    assert_eq!(done.turn_id, crash.turn_id);
    assert_eq!(done.stop_reason, StopReason::Error);
    let EventBody::AgentExited(exit) = &events[exited].body else { unreachable!() };
    assert_eq!(exit.exit_code, Some(3));
    assert!(!exit.expected);
    let tail = exit.stderr_tail.as_deref().unwrap_or("");
    assert!(tail.contains("fatal"), "stderr tail {tail:?}");
    assert_eq!(client.get_session(id).await.unwrap().status, SessionStatus::Idle);
    wait_no_processes(id, Duration::from_secs(5)).await;

    // The next message respawns the agent, which resumes the conversation
    // (the crashed turn never completed, so this is its 2nd completed turn).
    let after = events.last().unwrap().seq;
    client.send_text(id, "[mock:text] again").await.unwrap();
    let next = collect_turn(&client, id, after).await;
    assert_eq!(the_turn_completed(&next).stop_reason, StopReason::EndTurn);
    assert_eq!(final_text(&next), "Mock reply to turn 2: again");
    let pids = processes_of_session(id);
    assert!(!pids.is_empty() && pids.iter().all(|p| !first_pids.contains(p)), "{pids:?} vs {first_pids:?}");
    assert_well_formed(&read_all(&client, id).await);
}

#[tokio::test]
async fn echo_size_of_a_one_mebibyte_prompt() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    // 1 MiB exactly, with quotes, backslashes, newlines and multi-byte characters.
    const SIZE: usize = 1 << 20;
    let mut text = String::from("[mock:echo-size] ");
    let filler = "The quick brown fox \"jumps\" over the lazy dog \\ naïve café ✓ 🦀\n";
    while text.len() + filler.len() <= SIZE {
        text.push_str(filler);
    }
    while text.len() < SIZE {
        text.push('.');
    }
    assert_eq!(text.len(), SIZE);
    let expected = format!("received {SIZE} bytes, fnv1a64 {:016x}", fnv1a64(text.as_bytes()));

    client.send_text(&session.id, text.clone()).await.unwrap();
    let events = collect_turn(&client, &session.id, 0).await;
    let EventBody::TurnStarted(started) = &of_type(&events, "turn.started")[0].body else { unreachable!() };
    assert!(started.input == vec![Part::text(text)], "the stored input differs from the prompt");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    assert_eq!(final_text(&events), expected);
}

#[tokio::test]
async fn non_protocol_output_becomes_agent_log_and_parsing_goes_on() {
    // The mock prints an ANSI-coloured banner and a stderr line before any protocol.
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    client.send_text(&session.id, "[mock:text] after the banner").await.unwrap();
    let events = collect_turn(&client, &session.id, 0).await;
    let logs: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::AgentLog(l) => Some(l.text.clone()),
            _ => None,
        })
        .collect();
    assert!(logs.contains(&"mock agent ready".to_string()), "ANSI codes not stripped or banner lost: {logs:?}");
    assert!(logs.contains(&"mock: started".to_string()), "{logs:?}");
    assert!(of_type(&events, "agent.unparsed").is_empty(), "{}", describe(&events));
    assert_eq!(final_text(&events), "Mock reply to turn 1: after the banner");
    assert_well_formed(&events);
}
