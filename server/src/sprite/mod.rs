//! Fly.io Sprites: the in-Sprite API (`api`), keeping the Sprite awake while
//! agents work (`keepawake`), and `tether sprite install|status|uninstall`
//! (`install`). Outside a Sprite (no API socket) none of this runs, except
//! `tether sprite deploy` (`deploy`), which reaches a Sprite from a laptop
//! through the Sprites REST API (`rest`), and its live check `tether sprite
//! smoke` (`smoke`).

pub mod api;
pub mod deploy;
pub mod install;
pub mod keepawake;
pub mod rest;
pub mod smoke;

use std::path::PathBuf;
use std::time::Duration;

pub use api::{SpriteApi, DEFAULT_SOCKET};
pub use keepawake::{KeepAwakeConfig, Keeper};
use tether_protocol::{NetworkPolicy, SpriteStatus};

/// The Sprite tether runs in, as `/v1/info` shows it.
pub struct Here {
    api: SpriteApi,
    keep_awake: bool,
    wait: Duration,
    /// `GET /info` on the socket, asked once.
    identity: tokio::sync::OnceCell<Option<api::SpriteInfo>>,
}

impl Here {
    pub fn new(api: SpriteApi, keep_awake: bool, wait: Duration) -> Here {
        Here { api, keep_awake, wait, identity: tokio::sync::OnceCell::new() }
    }

    /// The Sprite URL's host, once the Sprite's identity has been read
    /// (`status()` reads it; the server asks once at start).
    pub fn url_host(&self) -> Option<String> {
        let url = self.identity.get()?.as_ref()?.sprite_url.as_deref()?;
        reqwest::Url::parse(url).ok()?.host_str().map(str::to_ascii_lowercase)
    }

    /// The network policy file: `policy/network.json` beside the socket
    /// (`/.sprite/policy/network.json`).
    fn policy_file(&self) -> Option<PathBuf> {
        self.api.socket().parent().map(|d| d.join("policy").join("network.json"))
    }

    pub async fn status(&self) -> SpriteStatus {
        let identity = self
            .identity
            .get_or_init(|| async { tokio::time::timeout(Duration::from_secs(2), self.api.info()).await.ok()?.ok() })
            .await;
        let mut status = SpriteStatus {
            name: identity.as_ref().and_then(|i| i.sprite_name.clone()),
            url: identity.as_ref().and_then(|i| i.sprite_url.clone()),
            keep_awake: self.keep_awake,
            keep_awake_wait_secs: self.wait.as_secs(),
            ..Default::default()
        };
        if let Some(file) = self.policy_file() {
            match tokio::fs::read(&file).await {
                Ok(bytes) => match serde_json::from_slice::<NetworkPolicy>(&bytes) {
                    Ok(policy) => status.network_policy = Some(policy),
                    Err(e) => status.network_policy_error = Some(format!("{} is not a policy: {e}", file.display())),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => status.network_policy_error = Some(format!("cannot read {}: {e}", file.display())),
            }
        }
        status
    }
}
