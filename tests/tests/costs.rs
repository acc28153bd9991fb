//! What an event costs the server, counted, not timed: the allocations its
//! whole path makes (the agent's PTY read, decode, normalize, store, bus,
//! SSE frames), from the counting allocator's `tether_allocations_total`
//! on `/metrics`. A count is the same on any machine, so it can hold the
//! line in CI where a throughput figure could not.

use tether_e2e::benchkit::read_turn;
use tether_e2e::{mock_session, TestServer};

/// `tether_allocations_total` now.
async fn allocations(server: &TestServer) -> u64 {
    let text = reqwest::get(server.endpoint("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("tether_allocations_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no tether_allocations_total in /metrics:\n{text}"))
}

/// Allocations per event of a `[mock:flood:N]` turn read by `clients` SSE clients.
async fn per_event(server: &TestServer, events: u64, clients: usize) -> f64 {
    let client = server.client();
    let session = mock_session(&client).await.id;
    let after = client.get_session(&session).await.unwrap().last_seq;
    let readers: Vec<_> =
        (0..clients).map(|_| tokio::spawn(read_turn(server.url.clone(), session.clone(), after))).collect();
    // Each reader is connected once the server counts its stream.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = reqwest::get(server.endpoint("/metrics")).await.unwrap().text().await.unwrap();
        if text.lines().any(|l| l == format!("tether_sse_clients {clients}")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the readers never connected");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let before = allocations(server).await;
    client.send_text(&session, format!("[mock:flood:{events}]")).await.unwrap();
    for r in readers {
        let (last, _) = r.await.unwrap();
        assert!(last >= after + events, "a client stopped at {last}");
    }
    let spent = allocations(server).await - before;
    spent as f64 / events as f64
}

/// The bounds are the counts measured when this test was written (about
/// 1.5 times them): a change that adds allocations per event, to the path
/// every event takes or to what each client costs, fails here.
#[tokio::test]
async fn an_event_costs_a_bounded_number_of_allocations() {
    let server = TestServer::start().await;
    let one = per_event(&server, 20_000, 1).await;
    let ten = per_event(&server, 20_000, 10).await;
    eprintln!("allocations per event: 1 client {one:.1}, 10 clients {ten:.1}");
    assert!(one > 1.0, "the counting allocator counts nothing ({one:.2} per event)");
    assert!(one <= ONE_CLIENT, "{one:.1} allocations per event with one client (bound {ONE_CLIENT})");
    let per_client = (ten - one) / 9.0;
    assert!(per_client <= PER_CLIENT, "{per_client:.1} allocations per event per extra client (bound {PER_CLIENT})");
}

const ONE_CLIENT: f64 = 18.0;
const PER_CLIENT: f64 = 1.0;
