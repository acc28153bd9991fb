//! Reach a tether inside a Fly.io Sprite from anywhere, given the Sprite's
//! name and a Sprites token: every HTTP connection is a tunnel through the
//! Sprites TCP proxy, so the global event stream below resumes after its
//! last event whenever a tunnel drops.
//!
//! ```sh
//! SPRITES_TOKEN=… cargo run -p tether-sdk --example sprite -- my-sprite   # after `tether sprite deploy my-sprite`
//! ```

use tether_sdk::{Client, EventBody, ListSessions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).ok_or("usage: sprite NAME")?;
    let sprites_token = std::env::var("SPRITES_TOKEN")?;
    // tether's token: the one `tether sprite deploy NAME` saved on this machine, unless TETHER_TOKEN is set.
    let mut client = Client::sprite(name, sprites_token)?;
    if let Ok(token) = std::env::var("TETHER_TOKEN") {
        client = client.with_token(token);
    }
    // The same through the Sprite's URL instead, with its edge auth:
    // Client::sprite_url("https://my-sprite-org.sprites.app", sprites_token).with_token(token)

    println!("tether {}", client.info().await?.version);
    for session in client.list_sessions(&ListSessions::default()).await?.sessions {
        println!("{} {} {}", session.id, session.agent, session.status.as_str());
    }
    // Every session's turns as they end; Ctrl-C to stop.
    let mut events = client.all_events(None);
    while let Some(event) = events.next_event().await {
        let event = event?;
        if let EventBody::TurnCompleted(done) = &event.body {
            println!("{} {} {:?}", event.session_id, done.turn_id, done.stop_reason);
        }
    }
    Ok(())
}
