//! Fly.io Sprites: the in-Sprite API (`api`), keeping the Sprite awake while
//! agents work (`keepawake`), and `tether sprite install|status|uninstall`
//! (`install`). Outside a Sprite (no API socket) none of this runs.

pub mod api;
pub mod install;
pub mod keepawake;

pub use api::{SpriteApi, DEFAULT_SOCKET};
pub use keepawake::{KeepAwakeConfig, Keeper};
