//! The patterns tether-protocol documents for fields (URLs, names), compiled
//! once: what the OpenAPI document says a field must match is exactly what
//! the server checks, with the same expression. Only the syntax that
//! JSON Schema's regular expressions (ECMA-262) and the `regex` crate read
//! alike is used there: classes, groups, alternation, counted repeats,
//! `^`/`$`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;

/// Whether `text` matches `pattern`, one of tether-protocol's `*_PATTERN`
/// constants. A pattern that does not compile matches nothing (a unit test
/// compiles every one).
pub fn matches(pattern: &'static str, text: &str) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let Ok(mut compiled) = cache.lock() else { return false };
    let re = compiled.entry(pattern).or_insert_with(|| Regex::new(pattern).ok());
    re.as_ref().is_some_and(|re| re.is_match(text))
}

#[cfg(test)]
mod tests {
    use tether_protocol as p;

    use super::*;

    #[test]
    fn every_documented_pattern_compiles() {
        for pattern in [
            p::NO_NUL_PATTERN,
            p::COMMAND_PATTERN,
            p::ENV_NAME_PATTERN,
            p::HEADER_NAME_PATTERN,
            p::HEADER_VALUE_PATTERN,
            p::MCP_SERVER_NAME_PATTERN,
            p::SKILL_NAME_PATTERN,
            p::SKILL_PATH_PATTERN,
            p::SESSION_ID_PATTERN,
            p::HTTP_URL_PATTERN,
            p::SESSION_CURSOR_PATTERN,
            p::FS_PATH_PATTERN,
        ] {
            Regex::new(pattern).unwrap();
        }
        Regex::new(&p::stream_types_pattern()).unwrap();
    }

    #[test]
    fn urls_that_match_are_ones_the_url_parser_takes() {
        let good = [
            "http://127.0.0.1:8080/hook",
            "https://example.com",
            "http://user:pw@h.example:65535/p?q=1#f",
            "http://[::1]:9/x",
            "http://[fd00:1::2]/",
            "http://[1:2:3:4:5:6:7:8]/",
            "http://localhost/a%zz<>^",
            "http://a-b.c1/",
        ];
        for url in good {
            assert!(matches(p::HTTP_URL_PATTERN, url), "{url}");
            let parsed = url::Url::parse(url).unwrap();
            assert!(parsed.host_str().is_some_and(|h| !h.is_empty()), "{url}");
        }
        let bad = [
            "ftp://h",
            "http://",
            "http:///x",
            "http://1.2.3.4.5/",
            "http://h:65536/",
            "http://xn--zz/",
            " http://h/",
            "http://h/ x",
            "http://h\t/",
            "HTTP://h",
            "http://a.1/",
        ];
        for url in bad {
            assert!(!matches(p::HTTP_URL_PATTERN, url), "{url}");
        }
    }

    #[test]
    fn mcp_server_names_match_as_the_validator_says() {
        for name in ["a", "a-b", "a_b", "A9", "x_", "a_-b", "0"] {
            assert!(
                matches(p::MCP_SERVER_NAME_PATTERN, name) && crate::mcp_servers::validate_name(name).is_ok(),
                "{name}"
            );
        }
        for name in ["", "_a", "-a", "a__b", "a b", "é"] {
            assert!(
                !matches(p::MCP_SERVER_NAME_PATTERN, name) && crate::mcp_servers::validate_name(name).is_err(),
                "{name}"
            );
        }
    }
}
