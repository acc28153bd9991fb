//! Per-conversation state the mock keeps between processes, so that a process
//! started with `--resume <id>` goes on counting turns: `<dir>/<id>.json`
//! holding `{"session_id":..,"turns":N}`, written atomically after each turn.

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Saved {
    session_id: String,
    turns: u64,
}

#[derive(Debug, Clone)]
pub struct StateFile {
    dir: PathBuf,
    session_id: String,
}

impl StateFile {
    /// `None` when the session id cannot be a file name (it comes from the
    /// command line: only letters, digits, `-` and `_` are accepted).
    pub fn new(dir: PathBuf, session_id: &str) -> Option<StateFile> {
        let safe = !session_id.is_empty()
            && session_id.len() <= 128
            && session_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        safe.then(|| StateFile { dir, session_id: session_id.to_string() })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.session_id))
    }

    /// Completed turns saved for this conversation; `Ok(0)` when none were.
    pub fn load(&self) -> io::Result<u64> {
        match fs::read(self.path()) {
            Ok(bytes) => {
                let saved: Saved = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
                Ok(saved.turns)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    pub fn save(&self, turns: u64) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let saved = Saved { session_id: self.session_id.clone(), turns };
        let bytes = serde_json::to_vec(&saved).map_err(io::Error::other)?;
        let tmp = self.dir.join(format!(".{}.json.{}.tmp", self.session_id, std::process::id()));
        fs::write(&tmp, bytes)?;
        fs::rename(&tmp, self.path()).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::ids;
    use super::*;

    #[test]
    fn round_trip_and_missing() {
        let dir = std::env::temp_dir().join(format!("tether-mock-state-{}", ids::hex(&ids::random_bytes::<8>())));
        let state = StateFile::new(dir.clone(), "abc-123_X").unwrap();
        assert_eq!(state.load().unwrap(), 0);
        state.save(4).unwrap();
        assert_eq!(state.load().unwrap(), 4);
        state.save(5).unwrap();
        assert_eq!(StateFile::new(dir.clone(), "abc-123_X").unwrap().load().unwrap(), 5);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unsafe_ids_are_refused() {
        let dir = std::env::temp_dir();
        assert!(StateFile::new(dir.clone(), "").is_none());
        assert!(StateFile::new(dir.clone(), "../etc/passwd").is_none());
        assert!(StateFile::new(dir.clone(), "a/b").is_none());
        assert!(StateFile::new(dir, "3f2a-..").is_none());
    }
}
