//! Why a client command failed, said in one sentence that names where the
//! client went and what to do about it.
//!
//! Transport errors are sorted by their cause (nothing listening, a name
//! that does not resolve, no answer in time, a failed TLS handshake), and
//! the server's `401` by whether a token was sent. This module only words
//! failures; it must not retry, log or decide exit codes beyond mapping
//! each failure to the documented one.

use std::error::Error as StdError;
use std::time::Duration;

use tether_sdk::{Error as SdkError, ErrorCode, StreamReset, UNKNOWN_PROBLEM_TYPE};

use super::exit;

/// How long a client waits for a connection (TCP and TLS) before it says
/// the server cannot be reached.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a client command goes and with what credentials, for the messages.
#[derive(Debug, Clone)]
pub struct Target {
    pub place: Place,
    /// A tether token was given (`--token`, `--token-file`, `TETHER_TOKEN`).
    pub token_sent: bool,
    /// A Sprites token goes to an edge in front of tether (a Sprite URL).
    pub edge_token_sent: bool,
    /// The token sent is the one `tether sprite deploy` saved in this file.
    pub saved_token: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub enum Place {
    Url(String),
    Sprite { name: String, port: u16 },
}

impl Target {
    /// "tether at http://…" or "tether in the Sprite NAME".
    fn tether(&self) -> String {
        match &self.place {
            Place::Url(url) => format!("tether at {url}"),
            Place::Sprite { name, .. } => format!("tether in the Sprite {name}"),
        }
    }

    /// "the server at http://…" or "the tether in the Sprite NAME".
    fn server(&self) -> String {
        match &self.place {
            Place::Url(url) => format!("the server at {url}"),
            Place::Sprite { name, .. } => format!("the tether in the Sprite {name}"),
        }
    }

    fn is_https(&self) -> bool {
        matches!(&self.place, Place::Url(url) if url.starts_with("https://"))
    }

    fn host(&self) -> Option<&str> {
        let Place::Url(url) = &self.place else { return None };
        let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        };
        Some(host)
    }
}

/// Why a server could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreachable {
    /// Nothing listens at the address (connection refused).
    Refused,
    /// The host name does not resolve.
    Dns,
    /// No connection (or no answer) within the time allowed.
    Timeout,
    /// No network route to the host.
    NoRoute,
    /// The TLS handshake failed; the detail says why.
    Tls(String),
    /// Anything else; the detail is the innermost cause.
    Other(String),
}

/// Sorts a transport error by its cause, walking its sources.
pub fn classify(e: &(dyn StdError + 'static), https: bool) -> Unreachable {
    let mut timeout = e.downcast_ref::<reqwest::Error>().is_some_and(reqwest::Error::is_timeout);
    let mut messages = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Unreachable::Refused,
                std::io::ErrorKind::TimedOut => timeout = true,
                std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                    return Unreachable::NoRoute
                }
                _ => {}
            }
        }
        messages.push(err.to_string());
        next = err.source();
    }
    if timeout {
        return Unreachable::Timeout;
    }
    let all = messages.join(": ").to_ascii_lowercase();
    if all.contains("dns error")
        || all.contains("failed to lookup address")
        || all.contains("name or service not known")
    {
        return Unreachable::Dns;
    }
    let innermost = messages.last().cloned().unwrap_or_default();
    const TLS_WORDS: [&str; 6] = ["certificate", "tls", "handshake", "corrupt message", "alert", "invalidcontenttype"];
    if https && TLS_WORDS.iter().any(|w| all.contains(w)) {
        return Unreachable::Tls(innermost);
    }
    Unreachable::Other(innermost)
}

/// The sentence for a server that could not be reached.
pub fn unreachable_message(target: &Target, why: &Unreachable) -> String {
    let tether = target.tether();
    let elsewhere = "or pass --url / TETHER_URL";
    if let Place::Sprite { port, .. } = &target.place {
        return match why {
            Unreachable::Refused => format!(
                "cannot reach {tether}: nothing is listening on port {port} there. Start it in the Sprite with \
                 tether sprite install, or pass --sprite-port."
            ),
            Unreachable::Timeout => format!(
                "cannot reach {tether}: no answer within {} s. Check the Sprite's name and that it is running.",
                CONNECT_TIMEOUT.as_secs()
            ),
            other => format!(
                "cannot reach {tether} through the Sprites proxy ({}). Check the Sprite's name, SPRITES_TOKEN \
                 and --sprites-api.",
                detail(other)
            ),
        };
    }
    match why {
        Unreachable::Refused => format!(
            "cannot reach {tether}: nothing is listening there. Start it with ./scripts/serve (or tether serve), \
             {elsewhere}."
        ),
        Unreachable::Dns => {
            let host = target.host().unwrap_or("its host");
            format!("cannot reach {tether}: the name {host} does not resolve. Check the host name, {elsewhere}.")
        }
        Unreachable::Timeout => format!(
            "cannot reach {tether}: no answer within {} s. Check the address and that no firewall is in the way, \
             {elsewhere}.",
            CONNECT_TIMEOUT.as_secs()
        ),
        Unreachable::NoRoute => {
            format!("cannot reach {tether}: this machine has no network route to it. Check the network, {elsewhere}.")
        }
        Unreachable::Tls(why) => format!(
            "cannot reach {tether}: the TLS handshake failed ({why}). Use http:// if the server does not speak TLS, \
             or make its certificate trusted on this machine."
        ),
        Unreachable::Other(why) => {
            format!("lost the connection to {tether} ({why}). Check that the server is still running, then try again.")
        }
    }
}

fn detail(why: &Unreachable) -> &str {
    match why {
        Unreachable::Refused => "connection refused",
        Unreachable::Dns => "the name does not resolve",
        Unreachable::Timeout => "no answer in time",
        Unreachable::NoRoute => "no network route",
        Unreachable::Tls(d) | Unreachable::Other(d) => d,
    }
}

/// The exit code and the sentence for an error of the SDK.
pub fn describe(e: &SdkError, target: &Target) -> (u8, String) {
    match e {
        SdkError::Api { code: ErrorCode::SpritesTokenRefused, .. } => (
            exit::REFUSED,
            if let Place::Sprite { name, .. } = &target.place {
                format!(
                    "the Sprites API refused the Sprites token for the Sprite {name}: check SPRITES_TOKEN or \
                     --sprites-token, and that this token's organization owns the Sprite."
                )
            } else if target.edge_token_sent {
                format!(
                    "the Sprite URL's edge in front of {} refused the Sprites token (it redirected to the Sprites \
                     login): check SPRITES_TOKEN or --sprites-token, and that this token's organization may reach \
                     the Sprite.",
                    target.tether()
                )
            } else {
                format!(
                    "the Sprite URL's edge in front of {} asks for a Sprites token (it redirected to the Sprites \
                     login): pass --sprites-token or set SPRITES_TOKEN.",
                    target.tether()
                )
            },
        ),
        SdkError::Api { code: ErrorCode::Redirected, problem, .. } => (
            exit::REFUSED,
            format!(
                "{} sent this client elsewhere ({}); it does not follow, so the token never goes anywhere but to \
                 tether. Check that --url or TETHER_URL is tether's own address.",
                target.server(),
                problem.detail
            ),
        ),
        SdkError::Api { code: ErrorCode::SpriteNotFound, .. } => {
            let name = match &target.place {
                Place::Sprite { name, .. } => name.as_str(),
                Place::Url(_) => "asked for",
            };
            (
                exit::REFUSED,
                format!(
                    "there is no Sprite named {name}: check the name (sprite list shows yours), and that \
                     SPRITES_TOKEN belongs to its organization."
                ),
            )
        }
        SdkError::Api { status: 401, code: ErrorCode::Unauthorized, .. } => (
            exit::REFUSED,
            match (&target.saved_token, &target.place) {
                (Some(file), Place::Sprite { name, .. }) => format!(
                    "{} refused the token saved in {}: run `tether sprite deploy {name}` again to save its current \
                     one, or pass --token.",
                    target.server(),
                    file.display()
                ),
                _ if target.token_sent => format!(
                    "{} refused this token: pass the token it was started with (--token, --token-file or \
                     TETHER_TOKEN).",
                    target.server()
                ),
                (_, Place::Sprite { name, .. }) => format!(
                    "{} needs a token: run `tether sprite deploy {name}` (it saves the token on this machine), or \
                     pass --token (or --token-file) or set TETHER_TOKEN.",
                    target.server()
                ),
                _ => format!("{} needs a token: pass --token (or --token-file) or set TETHER_TOKEN.", target.server()),
            },
        ),
        SdkError::Api { status: 401 | 403, problem, .. } if target.edge_token_sent => (
            exit::REFUSED,
            format!(
                "the Sprites edge in front of {} refused SPRITES_TOKEN ({}). Check SPRITES_TOKEN or --sprites-token.",
                target.tether(),
                shown_detail(problem)
            ),
        ),
        SdkError::Api { status, problem, .. } if problem.type_ == UNKNOWN_PROBLEM_TYPE => {
            let body = problem.detail.lines().next().unwrap_or("").trim();
            let body = if body.is_empty() || body.starts_with('<') || body.chars().count() > 120 {
                String::new()
            } else {
                format!(" ({body})")
            };
            (
                exit::REFUSED,
                format!(
                    "{} answered {status} {}{body}, which is not an answer from tether. Check that --url or \
                     TETHER_URL points at tether.",
                    target.server(),
                    problem.title
                ),
            )
        }
        SdkError::Api { status, problem, .. } => {
            (exit::REFUSED, format!("{} ({status} {})", shown_detail(problem), problem.code()))
        }
        SdkError::Http(e) => (exit::UNREACHABLE, unreachable_message(target, &classify(e, target.is_https()))),
        SdkError::Tunnel(why) => (exit::UNREACHABLE, unreachable_message(target, &Unreachable::Other(why.clone()))),
        SdkError::Timeout(what) => (exit::UNREACHABLE, format!("{} did not answer in time ({what}).", target.tether())),
        SdkError::Decode(why) => (
            exit::REFUSED,
            format!(
                "{} answered something this client does not understand ({why}). Check that --url points at \
                 tether and that both run the same version.",
                target.server()
            ),
        ),
        SdkError::CursorAhead(reset) => (exit::REFUSED, store_restored(reset)),
        SdkError::SessionEnded(id) => (exit::TURN_FAILED, format!("the session {id} ended.")),
        SdkError::WebSocket(why) => {
            (exit::UNREACHABLE, format!("the terminal connection to {} was lost ({why}).", target.tether()))
        }
    }
}

/// The problem's detail, or its title when it has none.
fn shown_detail(problem: &tether_sdk::Problem) -> &str {
    if problem.detail.is_empty() {
        &problem.title
    } else {
        &problem.detail
    }
}

/// The note for an event this client cannot read (newer than it, most likely).
pub fn skipped_event(why: &str) -> String {
    format!("skipped an event this version of tether cannot read ({why}); a newer tether shows it.")
}

/// The note for a `stream.reset`: the store went back to an older copy.
pub fn store_restored(reset: &StreamReset) -> String {
    format!(
        "the server's data was restored from an older copy: events after {} are gone, going on from there.",
        reset.last_seq
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(url: &str, token_sent: bool) -> Target {
        Target { place: Place::Url(url.to_owned()), token_sent, edge_token_sent: false, saved_token: None }
    }

    #[test]
    fn each_cause_has_a_sentence_that_names_the_url_and_the_fix() {
        let t = at("http://127.0.0.1:7419", false);
        assert_eq!(
            unreachable_message(&t, &Unreachable::Refused),
            "cannot reach tether at http://127.0.0.1:7419: nothing is listening there. Start it with \
             ./scripts/serve (or tether serve), or pass --url / TETHER_URL."
        );
        let t = at("https://user@tether.example.invalid:8443/base", false);
        assert!(unreachable_message(&t, &Unreachable::Dns).contains(": the name tether.example.invalid does not"));
        assert_eq!(at("http://[::1]:7419", false).host(), Some("::1"));
        assert_eq!(at("http://localhost", false).host(), Some("localhost"));
        let timeout = unreachable_message(&t, &Unreachable::Timeout);
        assert!(timeout.contains("no answer within 10 s") && timeout.contains("TETHER_URL"), "{timeout}");
        let tls = unreachable_message(&t, &Unreachable::Tls("invalid peer certificate: UnknownIssuer".into()));
        assert!(tls.contains("TLS handshake failed (invalid peer certificate: UnknownIssuer)"), "{tls}");
        assert!(tls.contains("Use http://"), "{tls}");
        let sprite = Target {
            place: Place::Sprite { name: "box".into(), port: 8080 },
            token_sent: true,
            edge_token_sent: false,
            saved_token: None,
        };
        let refused = unreachable_message(&sprite, &Unreachable::Refused);
        assert!(refused.starts_with("cannot reach tether in the Sprite box: nothing is listening on port 8080"));
        for why in [Unreachable::Refused, Unreachable::Dns, Unreachable::Timeout, Unreachable::Other("x".into())] {
            let m = unreachable_message(&t, &why);
            assert!(m.ends_with('.') && !m.contains("os error"), "{m}");
        }
    }

    #[test]
    fn a_refused_connection_is_recognised_through_the_error_chain() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&refused, false), Unreachable::Refused);
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(classify(&timed_out, false), Unreachable::Timeout);
        let dns = std::io::Error::other("dns error: failed to lookup address information");
        assert_eq!(classify(&dns, true), Unreachable::Dns);
        let tls = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert_eq!(classify(&tls, true), Unreachable::Tls("invalid peer certificate: UnknownIssuer".into()));
        assert_eq!(classify(&tls, false), Unreachable::Other("invalid peer certificate: UnknownIssuer".into()));
    }

    #[tokio::test]
    async fn a_real_refused_connection_is_classified_as_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = tether_sdk::Client::new(&url);
        let e = client.list_sessions(&tether_sdk::ListSessions::default()).await.unwrap_err();
        let (code, message) = describe(&e, &at(&url, false));
        assert_eq!(code, exit::UNREACHABLE);
        assert!(message.starts_with(&format!("cannot reach tether at {url}: nothing is listening")), "{message}");
    }

    fn sdk_problem(status: u16, code: ErrorCode, detail: &str) -> SdkError {
        let problem = tether_sdk::Problem {
            type_: format!("urn:tether:error:{code}"),
            title: String::new(),
            status,
            detail: detail.to_owned(),
            last_seq: None,
            store_id: None,
        };
        SdkError::Api { status, code, problem }
    }

    #[test]
    fn a_redirect_to_the_sprites_login_says_which_token_to_check() {
        let e = sdk_problem(302, ErrorCode::SpritesTokenRefused, "the Sprite URL's edge redirected");
        let mut t = at("https://box-org.sprites.app", true);
        t.edge_token_sent = true;
        let (code, refused) = describe(&e, &t);
        assert_eq!(code, exit::REFUSED);
        assert_eq!(
            refused,
            "the Sprite URL's edge in front of tether at https://box-org.sprites.app refused the Sprites token (it \
             redirected to the Sprites login): check SPRITES_TOKEN or --sprites-token, and that this token's \
             organization may reach the Sprite."
        );
        t.edge_token_sent = false;
        let (code, missing) = describe(&e, &t);
        assert_eq!(code, exit::REFUSED);
        assert!(
            missing.ends_with(
                "asks for a Sprites token (it redirected to the Sprites login): pass \
             --sprites-token or set SPRITES_TOKEN."
            ),
            "{missing}"
        );
        let elsewhere = sdk_problem(301, ErrorCode::Redirected, "redirected to https://x.example/ (not followed)");
        let (code, message) = describe(&elsewhere, &t);
        assert_eq!(code, exit::REFUSED);
        assert!(message.contains("(redirected to https://x.example/ (not followed))"), "{message}");
    }

    #[test]
    fn an_unknown_sprite_is_named() {
        let e = sdk_problem(404, ErrorCode::SpriteNotFound, "the Sprites API has no Sprite named \"box\"");
        let t = Target {
            place: Place::Sprite { name: "box".into(), port: 8080 },
            token_sent: true,
            edge_token_sent: false,
            saved_token: None,
        };
        let (code, message) = describe(&e, &t);
        assert_eq!(code, exit::REFUSED);
        assert!(message.starts_with("there is no Sprite named box: check the name (sprite list"), "{message}");

        // The proxy refused the Sprites token: that token is named, not tether's.
        let e = sdk_problem(401, ErrorCode::SpritesTokenRefused, "the Sprites API refused the token (401)");
        let (code, message) = describe(&e, &t);
        assert_eq!(code, exit::REFUSED);
        assert!(message.starts_with("the Sprites API refused the Sprites token for the Sprite box"), "{message}");
    }

    #[test]
    fn a_401_says_whether_a_token_is_missing_or_refused() {
        let problem: tether_sdk::Problem = serde_json::from_value(serde_json::json!({
            "type": "urn:tether:error:unauthorized", "title": "Unauthorized", "status": 401,
            "detail": "missing header"
        }))
        .unwrap();
        let e = SdkError::Api { status: 401, code: ErrorCode::Unauthorized, problem };
        let (code, missing) = describe(&e, &at("http://h:1", false));
        assert_eq!(code, exit::REFUSED);
        assert_eq!(
            missing,
            "the server at http://h:1 needs a token: pass --token (or --token-file) or set TETHER_TOKEN."
        );
        let (_, refused) = describe(&e, &at("http://h:1", true));
        assert!(refused.starts_with("the server at http://h:1 refused this token: pass the token"), "{refused}");
        let sprite = |saved: Option<&str>| Target {
            place: Place::Sprite { name: "box".into(), port: 8080 },
            token_sent: saved.is_some(),
            edge_token_sent: false,
            saved_token: saved.map(Into::into),
        };
        let (_, stale) = describe(&e, &sprite(Some("/cfg/tether/sprites/box/token")));
        assert!(stale.contains("refused the token saved in /cfg/tether/sprites/box/token"), "{stale}");
        assert!(stale.contains("`tether sprite deploy box`"), "{stale}");
        let (_, none) = describe(&e, &sprite(None));
        assert!(none.contains("needs a token: run `tether sprite deploy box`"), "{none}");
    }
}
