//! The shape of the code, checked on its source text: rules docs/ARCHITECTURE.md
//! states that a refactor could quietly break. Each test names the rule,
//! and a failure names the file and line that breaks it.
//!
//! - the server's top-level modules import each other without a cycle;
//! - `ApiError` exists only in `http/` (everything else returns its own
//!   error, mapped once at the edge);
//! - the agents' converters read typed wire messages, never dig in JSON;
//! - each event type name is spelled in one hand-written place.
//!
//! Test code is left out of every rule (`tests.rs`, `tests/` folders, and
//! items under `#[cfg(test)]`): tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every file under `dir` ending in one of `exts`, sorted.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if exts.iter().any(|x| p.extension().is_some_and(|e| e == *x)) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn is_test_file(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n == "tests.rs" || n == "snapshots.rs")
        || p.components().any(|c| c.as_os_str() == "tests" || c.as_os_str() == "testdata")
}

/// The lines of a Rust file that are not test code, with their numbers:
/// an item under `#[cfg(test)]` is skipped (one line if it ends in `;`,
/// else up to its closing brace).
fn code_lines(p: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(p).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]" {
            i += 1;
            let mut depth = 0i32;
            while i < lines.len() {
                let l = lines[i];
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                i += 1;
                if depth <= 0 && (l.trim_end().ends_with(';') || l.trim_end().ends_with('}')) {
                    break;
                }
            }
            continue;
        }
        out.push((i + 1, lines[i].to_string()));
        i += 1;
    }
    out
}

/// A line without its `//` comment (doc comments included).
fn without_comment(line: &str) -> &str {
    match line.find("//") {
        Some(i) if !line[..i].ends_with(':') => &line[..i],
        _ => line,
    }
}

/// Whether `word` stands in `text` as a whole identifier.
fn has_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        !text[..i].chars().next_back().is_some_and(ident) && !text[i + word.len()..].chars().next().is_some_and(ident)
    })
}

/// The top-level modules of the server crate, each with its non-test files.
fn server_modules() -> BTreeMap<String, Vec<PathBuf>> {
    let src = repo().join("server/src");
    let mut mods = BTreeMap::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let fs: Vec<PathBuf> = if p.is_dir() { files(&p, &["rs"]) } else { vec![p] };
        mods.insert(name, fs.into_iter().filter(|f| !is_test_file(f)).collect());
    }
    mods
}

/// The crate's modules `line` names: `crate::x` and `crate::{x, y::z}`.
fn named_modules(line: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or(group);
            for part in inner.split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                out.push(name);
            }
        } else {
            out.push(rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect());
        }
    }
    out
}

#[test]
fn server_modules_import_each_other_without_a_cycle() {
    let mods = server_modules();
    // module → module it uses → where (the first place).
    let mut uses: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (m, fs) in &mods {
        let edges = uses.entry(m.clone()).or_default();
        for f in fs {
            for (n, line) in code_lines(f) {
                for other in named_modules(without_comment(&line)) {
                    if &other != m && mods.contains_key(&other) {
                        let at = format!("{}:{n}", f.strip_prefix(repo()).unwrap().display());
                        edges.entry(other).or_insert(at);
                    }
                }
            }
        }
    }
    // Depth-first search for a back edge; the path on the stack is the cycle.
    fn visit(
        m: &str,
        uses: &BTreeMap<String, BTreeMap<String, String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.to_string());
        for next in uses.get(m).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, uses, done, stack) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in mods.keys() {
        if let Some(cycle) = visit(m, &uses, &mut done, &mut vec![]) {
            let how: Vec<String> =
                cycle.windows(2).map(|w| format!("{} → {} ({})", w[0], w[1], uses[&w[0]][&w[1]])).collect();
            panic!("the server's modules import each other in a cycle:\n  {}", how.join("\n  "));
        }
    }
    // The rule holds for the modules that exist, so make sure they were read.
    let edges: usize = uses.values().map(|e| e.len()).sum();
    assert!(uses.len() >= 15 && edges >= 30, "the module graph was not read: {uses:?}");
}

#[test]
fn api_error_exists_only_at_the_http_edge() {
    let mut found = vec![];
    for (m, fs) in server_modules() {
        if m == "http" {
            continue;
        }
        for f in fs {
            for (n, line) in code_lines(&f) {
                if has_word(without_comment(&line), "ApiError") {
                    found.push(format!("{}:{n}: {}", f.strip_prefix(repo()).unwrap().display(), line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "ApiError outside server/src/http/ (return the module's own error):\n{}",
        found.join("\n")
    );
    assert!(
        files(&repo().join("server/src/http"), &["rs"])
            .iter()
            .any(|f| std::fs::read_to_string(f).unwrap().contains("pub struct ApiError")),
        "ApiError is no longer defined in http/"
    );
}

#[test]
fn converters_read_typed_wire_messages() {
    // Indexing or probing a serde_json::Value by hand.
    const DIGS: &[&str] =
        &["[\"", ".get(\"", ".pointer(", "as_object()", "as_array()", "as_u64()", "as_i64()", "as_f64()", "as_bool()"];
    let agents = repo().join("server/src/agents");
    let mut converters = vec![];
    for f in files(&agents, &["rs"]).into_iter().filter(|f| !is_test_file(f)) {
        let rel = f.strip_prefix(&agents).unwrap().to_string_lossy().into_owned();
        if rel.ends_with("/convert.rs") || rel.contains("/convert/") {
            converters.push(f);
        }
    }
    assert!(converters.len() >= 3, "no converters found under {}", agents.display());
    let mut found = vec![];
    for f in &converters {
        for (n, line) in code_lines(f) {
            let code = without_comment(&line);
            if let Some(dig) = DIGS.iter().find(|d| code.contains(*d)) {
                found.push(format!("{}:{n}: {dig} in {}", f.strip_prefix(repo()).unwrap().display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "converters dig through untyped JSON (decode into the agent's wire types):\n{}",
        found.join("\n")
    );
}

/// The event type `error` is also an ordinary word in code (SSE frames of
/// installs, problem fields, CSS classes): it is left out of the count.
const COMMON_WORD: &str = "error";

#[test]
fn each_event_type_name_is_spelled_in_one_place() {
    let names = tether_protocol::EVENT_TYPES;
    assert!(names.len() >= 20, "{names:?}");
    let root = repo();
    // The hand-written sources that speak tether's events (not the agents'
    // native protocols, not tests, not generated files).
    let mut sources: Vec<PathBuf> = vec![];
    for dir in ["schemas/src", "sdk-rs/src", "server/src"] {
        sources.extend(files(&root.join(dir), &["rs"]).into_iter().filter(|f| !is_test_file(f)));
    }
    sources.retain(|f| !f.starts_with(root.join("server/src/agents")));
    sources.extend(files(&root.join("ui"), &["js"]).into_iter().filter(|f| {
        let text = std::fs::read_to_string(f).unwrap();
        !text.starts_with("// Generated")
    }));
    let mut places: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in &sources {
        let is_rust = f.extension().is_some_and(|e| e == "rs");
        let lines = if is_rust {
            code_lines(f)
        } else {
            std::fs::read_to_string(f).unwrap().lines().enumerate().map(|(i, l)| (i + 1, l.to_string())).collect()
        };
        for (n, line) in lines {
            // Prose may name an event; code spells it. JS block comments are `*` lines.
            let code = without_comment(&line);
            if code.trim_start().starts_with('*') {
                continue;
            }
            for name in names.iter().filter(|n| **n != COMMON_WORD) {
                if ['"', '\''].iter().any(|q| code.contains(&format!("{q}{name}{q}"))) {
                    places.entry(name).or_default().push(format!("{}:{n}", f.strip_prefix(&root).unwrap().display()));
                }
            }
        }
    }
    let mut wrong = vec![];
    for name in names.iter().filter(|n| **n != COMMON_WORD) {
        let at = places.get(name).cloned().unwrap_or_default();
        if at.len() != 1 {
            wrong.push(format!("{name}: {} places {at:?}", at.len()));
        }
    }
    assert!(
        wrong.is_empty(),
        "event type names spelled other than once (use the generated list):\n{}",
        wrong.join("\n")
    );
}
