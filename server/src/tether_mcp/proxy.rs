//! `tether mcp`: tether's tools over stdio, for MCP clients that only start
//! commands. It holds no tools of its own: every JSON-RPC message from stdin
//! goes to a running tether's `/mcp` (streamable HTTP, with the token), and
//! every message from there comes back on stdout, as is — the handshake,
//! tool calls, progress and cancellations alike. It ends when stdin closes
//! or the server goes away.

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, Transport};
use rmcp::{RoleClient, RoleServer};

/// The `/mcp` endpoint of a tether base URL (`http://host:port`), or the URL
/// itself when it already names a path.
pub fn endpoint(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("--url {url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("--url {url:?} must be an http:// or https:// URL"));
    }
    let mut parsed = parsed;
    if parsed.path() == "/" || parsed.path().is_empty() {
        parsed.set_path("/mcp");
    }
    Ok(parsed.to_string())
}

/// Bridges stdin/stdout to `url` until either side ends.
pub async fn run(url: &str, token: Option<&str>) -> Result<(), String> {
    let endpoint = endpoint(url)?;
    // No redirects (`client_builder`): the token goes nowhere but to tether.
    let http = tether_sdk::http_client(tether_sdk::client_builder)
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut config = StreamableHttpClientTransportConfig::with_uri(endpoint.as_str());
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    let mut remote: StreamableHttpClientTransport<reqwest::Client> =
        StreamableHttpClientTransport::with_client(http, config);
    let mut local: AsyncRwTransport<RoleServer, _, _> =
        AsyncRwTransport::new_server(tokio::io::stdin(), tokio::io::stdout());
    // Sends run beside the loop: a long tool call must not hold up the next message.
    let mut to_remote = FuturesUnordered::new();
    let mut to_local = FuturesUnordered::new();
    let outcome = loop {
        tokio::select! {
            m = Transport::<RoleServer>::receive(&mut local) => match m {
                Some(m) => to_remote.push(Transport::<RoleClient>::send(&mut remote, m)),
                None => break Ok(()),
            },
            m = Transport::<RoleClient>::receive(&mut remote) => match m {
                Some(m) => to_local.push(Transport::<RoleServer>::send(&mut local, m)),
                None => {
                    // The transport ended: a failed send says why.
                    let mut why = format!("the connection to {endpoint} ended");
                    while let Some(r) = to_remote.next().await {
                        if let Err(e) = r {
                            why = format!("cannot reach {endpoint}: {e}");
                        }
                    }
                    break Err(why);
                }
            },
            Some(r) = to_remote.next(), if !to_remote.is_empty() => {
                if let Err(e) = r {
                    break Err(format!("cannot reach {endpoint}: {e}"));
                }
            }
            Some(r) = to_local.next(), if !to_local.is_empty() => {
                if r.is_err() {
                    break Ok(());
                }
            }
        }
    };
    // Flush what is on its way out before closing.
    while to_local.next().await.is_some() {}
    let _ = Transport::<RoleClient>::close(&mut remote).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_mcp_path_and_a_full_one_is_kept() {
        assert_eq!(endpoint("http://127.0.0.1:7419").unwrap(), "http://127.0.0.1:7419/mcp");
        assert_eq!(endpoint("http://127.0.0.1:7419/").unwrap(), "http://127.0.0.1:7419/mcp");
        assert_eq!(endpoint("https://x.sprites.app/mcp").unwrap(), "https://x.sprites.app/mcp");
        assert!(endpoint("ftp://x").unwrap_err().contains("http://"));
        assert!(endpoint("not a url").unwrap_err().contains("not a URL"));
    }
}
