//! The mock's script selector and its deterministic texts. Pure functions:
//! which `[mock:...]` tag a user text carries, what the reply says, how it is
//! split into deltas.

use std::ops::Range;

/// What a turn does, chosen by the first recognised `[mock:...]` tag of the
/// user text; [`Tag::Text`] when there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Text,
    Tool,
    Permission,
    Question,
    Slow,
    Error,
    Crash,
    Flood(usize),
    /// N deltas, 1 ms apart, each the agent's wall clock at its write
    /// (`t<unix micros>`): for latency measurements.
    Timed(usize),
    EchoSize,
    /// A call of the first MCP server's `echo` tool (answered by the mock itself).
    Mcp,
    /// A reply naming the MCP servers and skills the mock was given.
    Skills,
    /// A `Bash` tool call running the rest of the user text as a shell
    /// command (`[mock:bash] python3 -m http.server 8000 &`), as an agent
    /// runs what it decided to.
    Bash,
    /// A `Task` call whose subagent runs the `tool` script: its lines carry
    /// the Task call's id as `parent_tool_use_id`, as Claude Code's do.
    Subagent,
}

impl Tag {
    fn from_name(name: &str) -> Option<Tag> {
        Some(match name {
            "text" => Tag::Text,
            "tool" => Tag::Tool,
            "permission" => Tag::Permission,
            "question" => Tag::Question,
            "slow" => Tag::Slow,
            "error" => Tag::Error,
            "crash" => Tag::Crash,
            "echo-size" => Tag::EchoSize,
            "mcp" => Tag::Mcp,
            "skills" => Tag::Skills,
            "bash" => Tag::Bash,
            "subagent" => Tag::Subagent,
            _ => match name.split_once(':')? {
                ("flood", n) => Tag::Flood(n.parse().ok()?),
                ("timed", n) => Tag::Timed(n.parse().ok()?),
                _ => return None,
            },
        })
    }
}

const OPEN: &str = "[mock:";

/// The first recognised tag and where it is in `text` (unknown tags are skipped).
pub fn find_tag(text: &str) -> Option<(Tag, Range<usize>)> {
    let mut from = 0;
    while let Some(rel) = text[from..].find(OPEN) {
        let start = from + rel;
        let body = start + OPEN.len();
        let close = body + text[body..].find(']')?;
        if let Some(tag) = Tag::from_name(&text[body..close]) {
            return Some((tag, start..close + 1));
        }
        from = body;
    }
    None
}

/// The tag that drives a turn for this user text.
pub fn tag_of(text: &str) -> Tag {
    find_tag(text).map_or(Tag::Text, |(tag, _)| tag)
}

/// The user text without its tag, trimmed, cut to 40 characters.
pub fn echo(text: &str) -> String {
    let cut: String = untagged(text).chars().take(40).collect();
    cut.trim_end().to_string()
}

/// The user text without its tag, trimmed: `[mock:bash]`'s command.
pub fn untagged(text: &str) -> String {
    let stripped = match find_tag(text) {
        Some((_, span)) => format!("{}{}", &text[..span.start], &text[span.end..]),
        None => text.to_string(),
    };
    stripped.trim().to_string()
}

/// The `[mock:text]` reply: `Mock reply to turn N: <echo>`.
pub fn reply_text(turn: u64, user_text: &str) -> String {
    format!("Mock reply to turn {turn}: {}", echo(user_text))
}

/// The `[mock:echo-size]` reply: byte length and FNV-1a 64 of the user text.
pub fn echo_size_text(user_text: &str) -> String {
    format!("received {} bytes, fnv1a64 {:016x}", user_text.len(), fnv1a64(user_text.as_bytes()))
}

/// FNV-1a, 64-bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// `text` cut into pieces of at most `max_chars` characters (never splitting one).
pub fn chunks(text: &str, max_chars: usize) -> Vec<&str> {
    let max_chars = max_chars.max(1);
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, _) in text.char_indices() {
        if count == max_chars {
            pieces.push(&text[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(tag_of("hello"), Tag::Text);
        assert_eq!(tag_of("[mock:text] hi"), Tag::Text);
        assert_eq!(tag_of("run [mock:tool] please"), Tag::Tool);
        assert_eq!(tag_of("[mock:permission]"), Tag::Permission);
        assert_eq!(tag_of("[mock:question]"), Tag::Question);
        assert_eq!(tag_of("[mock:slow]"), Tag::Slow);
        assert_eq!(tag_of("[mock:error]"), Tag::Error);
        assert_eq!(tag_of("[mock:crash]"), Tag::Crash);
        assert_eq!(tag_of("[mock:echo-size] xxx"), Tag::EchoSize);
        assert_eq!(tag_of("[mock:bash] ls -l"), Tag::Bash);
        assert_eq!(
            untagged("[mock:bash]  python3 -m http.server 8000 >/dev/null 2>&1 & "),
            "python3 -m http.server 8000 >/dev/null 2>&1 &"
        );
        assert_eq!(tag_of("[mock:flood:200000]"), Tag::Flood(200_000));
        assert_eq!(tag_of("[mock:flood:0]"), Tag::Flood(0));
        assert_eq!(tag_of("[mock:timed:500]"), Tag::Timed(500));
    }

    #[test]
    fn first_recognised_tag_wins() {
        assert_eq!(tag_of("[mock:slow] then [mock:tool]"), Tag::Slow);
        assert_eq!(tag_of("[mock:bogus] [mock:tool]"), Tag::Tool);
        assert_eq!(tag_of("[mock:flood:x] [mock:flood:-1] [mock:error]"), Tag::Error);
        assert_eq!(tag_of("[mock:[mock:question]"), Tag::Question);
        assert_eq!(tag_of("[mock:tool"), Tag::Text);
        assert_eq!(find_tag("ab[mock:tool]cd"), Some((Tag::Tool, 2..13)));
    }

    #[test]
    fn reply_texts() {
        assert_eq!(reply_text(1, "hello"), "Mock reply to turn 1: hello");
        assert_eq!(reply_text(3, "  [mock:text]   what is up?  "), "Mock reply to turn 3: what is up?");
        assert_eq!(reply_text(2, "say [mock:text] hi"), "Mock reply to turn 2: say  hi");
        let long = "abcdefghij klmnopqrst uvwxyzabcd efghijklm nopq";
        assert_eq!(reply_text(7, long), "Mock reply to turn 7: abcdefghij klmnopqrst uvwxyzabcd efghijk");
        // 40 characters, not bytes; trailing space after the cut is trimmed
        assert_eq!(echo(&"é".repeat(50)), "é".repeat(40));
        assert_eq!(echo(&format!("{} tail", "a".repeat(39))), "a".repeat(39));
        assert_eq!(reply_text(1, "[mock:text]"), "Mock reply to turn 1: ");
    }

    #[test]
    fn fnv() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(echo_size_text("a"), "received 1 bytes, fnv1a64 af63dc4c8601ec8c");
        assert_eq!(echo_size_text(""), "received 0 bytes, fnv1a64 cbf29ce484222325");
    }

    #[test]
    fn chunking() {
        assert_eq!(chunks("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(chunks("abcd", 4), vec!["abcd"]);
        assert!(chunks("", 8).is_empty());
        assert_eq!(chunks("ééé", 2), vec!["éé", "é"]);
        let text = reply_text(12, "some words to echo back here");
        let pieces = chunks(&text, 8);
        assert!(pieces.len() >= 3 && pieces.iter().all(|p| p.chars().count() <= 8));
        assert_eq!(pieces.concat(), text);
    }
}
