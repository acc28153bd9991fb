//! A lean SSE reader, as a client that only forwards events would be: it
//! splits frames and reads ids, decodes no event, and checks every id.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

/// Every read must see progress within this.
const DEADLINE: Duration = Duration::from_secs(300);

/// Reads a session's SSE stream after `after` until `turn.completed`, the
/// way a lean client does (frames split and ids read, no event decoded), and
/// checks that its ids are exactly `after + 1, after + 2, ...`: nothing lost,
/// nothing twice. Returns (the last id, when `turn.completed` arrived).
pub async fn read_turn(server_url: String, session: String, after: u64) -> (u64, Instant) {
    let url = format!("{server_url}/v1/sessions/{session}/events/stream?after={after}");
    let resp = reqwest::get(&url).await.unwrap().error_for_status().unwrap();
    let mut body = resp.bytes_stream();
    let (mut buf, mut expect, mut completed) = (Vec::<u8>::new(), after + 1, false);
    while let Some(chunk) = tokio::time::timeout(DEADLINE, body.next()).await.expect("the stream stalled") {
        buf.extend_from_slice(&chunk.unwrap());
        // Whole frames only; a partial one waits for the next chunk.
        let Some(end) = buf.windows(2).rposition(|w| w == b"\n\n") else { continue };
        for line in buf[..end].split(|b| *b == b'\n') {
            if let Some(id) = line.strip_prefix(b"id: ") {
                let id: u64 = std::str::from_utf8(id).unwrap().parse().unwrap();
                assert_eq!(id, expect, "a client got seq {id} where {expect} was next");
                expect += 1;
            } else if line == b"event: turn.completed" {
                completed = true;
            }
        }
        buf.drain(..end + 2);
        if completed {
            return (expect - 1, Instant::now());
        }
    }
    panic!("stream ended before turn.completed");
}
