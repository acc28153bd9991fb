//! The API token as every command reads it (`--token`, `TETHER_TOKEN`,
//! `--token-file`), and comparing a token without leaking it through time.
//! Nothing here logs a token.

/// The token given on the command line, else the one in `file` (trimmed):
/// what `--token` / `TETHER_TOKEN` and `--token-file` mean to every command.
pub fn read_token(token: Option<&str>, file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    match (token, file) {
        (Some(t), _) => Ok(Some(t.trim().to_owned())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|t| Some(t.trim().to_owned()))
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display())),
        (None, None) => Ok(None),
    }
}

/// Constant-time comparison of two secrets (their length is not hidden).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_comes_from_the_flag_or_the_file_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        assert_eq!(read_token(Some(" flag "), Some(&file)).unwrap().as_deref(), Some("flag"));
        assert_eq!(read_token(None, Some(&file)).unwrap().as_deref(), Some("from-file"));
        assert_eq!(read_token(None, None).unwrap(), None);
        let missing = dir.path().join("missing");
        assert!(read_token(None, Some(&missing)).unwrap_err().contains("cannot read the token file"));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
