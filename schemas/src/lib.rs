//! tether-protocol: the wire types of the tether HTTP API and its universal
//! event. Serde + schemars only: no I/O, no async, no business logic.
//!
//! The JSON Schema of the event envelope (`event.schema.json`) and the
//! OpenAPI 3.1 document (`openapi.json`) are generated from these types and
//! committed next to this crate, as is the inspector's list of event types
//! (`ui/js/event-types.js`); a test fails with a diff when they are stale.
#![forbid(unsafe_code)]

pub mod api;
pub mod computer;
pub mod event;
pub mod openapi;
pub mod query;
pub mod tools;

pub use api::*;
pub use computer::*;
pub use event::*;
pub use query::*;

/// The version of this API, as served in the OpenAPI document.
pub const API_VERSION: &str = "1.0.0";

/// The header that carries the token where `Authorization: Bearer` cannot
/// (the Sprites URL edge consumes `Authorization` in its default auth mode).
pub const TOKEN_HEADER: &str = "x-tether-token";
