//! Port routes of [`Client`]: the TCP ports listening in the sandbox and
//! signed preview links to them.

use reqwest::Method;

use super::{json, path, Client, Result};
use crate::{CreatePreviewLink, PortList, PreviewLink};

impl Client {
    /// `GET /v1/ports`: the listening TCP ports (tether's own excluded), with
    /// their owners where `/proc` shows them.
    pub async fn ports(&self) -> Result<PortList> {
        json(self.request(Method::GET, "/v1/ports")).await
    }

    /// `POST /v1/ports/{port}/links` (201): a signed, expiring link a browser
    /// opens without a header. Its `url` is a path on the server:
    /// [`preview_url`](Self::preview_url) makes it whole.
    pub async fn create_preview_link(&self, port: u16, body: &CreatePreviewLink) -> Result<PreviewLink> {
        let port = port.to_string();
        json(self.request(Method::POST, &path(&["v1", "ports", &port, "links"])).json(body)).await
    }

    /// The link's URL on this client's base URL. Through the Sprites TCP
    /// proxy the base URL is the local relay's (`http://localhost`): a
    /// browser elsewhere needs the Sprite URL in front of the path instead.
    pub fn preview_url(&self, link: &PreviewLink) -> String {
        if link.url.contains("://") {
            link.url.clone()
        } else {
            format!("{}/{}", self.base_url, link.url.trim_start_matches('/'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_link_is_made_whole_on_the_base_url() {
        let client = Client::new("https://tether.example/");
        let link = PreviewLink {
            port: 5173,
            url: "/v1/ports/5173/open?sig=abc".into(),
            expires_at: "2026-01-01T00:00:00Z".into(),
        };
        assert_eq!(client.preview_url(&link), "https://tether.example/v1/ports/5173/open?sig=abc");
        let absolute = PreviewLink { url: "https://elsewhere/x".into(), ..link };
        assert_eq!(client.preview_url(&absolute), "https://elsewhere/x");
    }
}
