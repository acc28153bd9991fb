//! The converter kit's snapshots: what each agent's adapter makes of every
//! recorded fixture (`agents/<agent>/testdata`), kept as text in
//! `agents/<agent>/testdata/snapshots/<case>.drafts`. A replay that no longer
//! equals its snapshot fails with the first line that differs; after an
//! intended change, `TETHER_BLESS=1 cargo test -p tether --lib snapshot`
//! writes them again (and the diff shows what changed).

use std::path::PathBuf;

use super::Draft;

fn testdata(agent: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/agents").join(agent).join("testdata")
}

/// The cases recorded for `agent`: the names of its fixtures ending in
/// `suffix` (`.jsonl`, `.out.jsonl`, ...), sorted.
pub fn cases(agent: &str, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(testdata(agent))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(suffix).map(str::to_string))
        .filter(|case| !case.contains('.'))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no {suffix} fixtures for {agent}");
    names
}

/// Checks `drafts`, the replay of `agent`'s fixture `case`, against its snapshot.
pub fn check(agent: &str, case: &str, drafts: &[Draft]) {
    let path = testdata(agent).join("snapshots").join(format!("{case}.drafts"));
    let text = format!("{drafts:#?}\n");
    if std::env::var("TETHER_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let saved = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{agent} {case}: no snapshot at {} ({e}); write it with TETHER_BLESS=1", path.display())
    });
    if saved != text {
        let (line, (was, now)) = saved
            .lines()
            .zip(text.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, pair)| (i + 1, pair))
            .unwrap_or((saved.lines().count().min(text.lines().count()) + 1, ("(end)", "(end)")));
        panic!(
            "{agent} {case}: the replay differs from {} at line {line}:\n  snapshot: {was}\n  now:      {now}\n\
             (an intended change: TETHER_BLESS=1 to write it again)",
            path.display()
        );
    }
}
