//! TEMPORARY stand-in until the MCP registry lands (branch `mcp`).
use crate::store::{Store, StoreError};
use std::collections::BTreeMap;
use tether_protocol::McpServer;

pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("empty name".into())
    } else {
        Ok(())
    }
}
pub fn validate(_name: &str, _server: &McpServer) -> Result<(), String> {
    Ok(())
}
pub async fn global_servers(_store: &Store) -> Result<BTreeMap<String, McpServer>, StoreError> {
    Ok(BTreeMap::new())
}
