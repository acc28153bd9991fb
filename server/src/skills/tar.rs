//! A skill as a tar: reading an install body (in memory, every limit checked
//! as entries arrive, only regular files and folders accepted) and writing
//! a skill's folder as `<name>/...`.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use super::validate::{check_file_size, check_total, validate_segments, SKILL_MD};
use super::{Files, SkillContents, SkillError, SkillFile, MAX_DEPTH, MAX_FILES, MAX_REQUEST_BYTES};

/// The files of the tar `input` (gzip-compressed when `gzip`), at its root
/// or inside one top folder named `name` (both layouts people make). Paths
/// are checked here; the rest of the rules by `validate`.
pub(super) fn read(name: &str, input: &[u8], gzip: bool) -> Result<Files, SkillError> {
    let decoded: Box<dyn Read + '_> =
        if gzip { Box::new(flate2::read::GzDecoder::new(input)) } else { Box::new(input) };
    let exceeded = Rc::new(Cell::new(false));
    let mut archive =
        ::tar::Archive::new(Bounded { inner: decoded, left: MAX_REQUEST_BYTES as u64, exceeded: exceeded.clone() });
    let not_a_tar = |e: io::Error| {
        if exceeded.get() {
            return SkillError::TooLarge(format!(
                "the archive unpacks to more than {MAX_REQUEST_BYTES} bytes (MAX_REQUEST_BYTES)"
            ));
        }
        SkillError::Archive(format!("the body is not a valid tar archive: {e}"))
    };
    let mut files = Files::new();
    let mut total: usize = 0;
    let entries = archive.entries().map_err(not_a_tar)?;
    for entry in entries {
        let mut entry = entry.map_err(not_a_tar)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        use ::tar::EntryType as K;
        let refuse = |what: &str| {
            SkillError::Archive(format!("tar entry {shown:?} is {what}; a skill holds regular files and folders only"))
        };
        let is_dir = match kind {
            K::Regular | K::Continuous => false,
            K::Directory => true,
            // Metadata entries (`git archive` writes a global pax header).
            K::XGlobalHeader | K::XHeader | K::GNULongName | K::GNULongLink => continue,
            K::Symlink => return Err(refuse("a symbolic link")),
            K::Link => return Err(refuse("a hard link")),
            K::Char | K::Block => return Err(refuse("a device")),
            K::Fifo => return Err(refuse("a fifo")),
            _ => return Err(refuse("of an unsupported type")),
        };
        let path = std::str::from_utf8(&raw)
            .map_err(|_| SkillError::InvalidPath { path: shown.clone(), reason: "it is not UTF-8".into() })?;
        let mut path = path;
        while let Some(rest) = path.strip_prefix("./") {
            path = rest;
        }
        if is_dir {
            path = path.trim_end_matches('/');
        }
        if path.is_empty() || path == "." {
            // The archive's root folder itself.
            continue;
        }
        // The depth is checked once the layout is known (by `validate`).
        let segments = validate_segments(path).map_err(|e| match e {
            SkillError::InvalidPath { reason, .. } => SkillError::InvalidPath { path: shown.clone(), reason },
            other => other,
        })?;
        if segments > MAX_DEPTH + 1 {
            return Err(SkillError::TooLarge(format!(
                "tar entry {shown:?} is {segments} path segments deep; at most {MAX_DEPTH} are allowed (MAX_DEPTH)"
            )));
        }
        if is_dir {
            continue;
        }
        if files.len() >= MAX_FILES {
            return Err(SkillError::TooLarge(format!(
                "the archive holds more than {MAX_FILES} files; at most {MAX_FILES} are allowed (MAX_FILES)"
            )));
        }
        let size = usize::try_from(entry.size()).unwrap_or(usize::MAX);
        check_file_size(path, size)?;
        total = total.saturating_add(size);
        check_total(total)?;
        let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
        let mut bytes = Vec::with_capacity(size);
        entry.read_to_end(&mut bytes).map_err(not_a_tar)?;
        if files.insert(path.to_string(), SkillFile { bytes, executable }).is_some() {
            return Err(SkillError::InvalidPath {
                path: path.to_string(),
                reason: "it appears twice in the archive".into(),
            });
        }
    }
    if files.contains_key(SKILL_MD) {
        return Ok(files);
    }
    // One top folder holding everything: it must be named like the skill.
    let tops: std::collections::BTreeSet<&str> = files.keys().map(|p| p.split('/').next().unwrap_or("")).collect();
    if tops.len() == 1 && files.keys().all(|p| p.contains('/')) {
        let top = tops.into_iter().next().unwrap_or("").to_string();
        if top != name {
            return Err(SkillError::SkillMd(format!(
                "the archive holds one top folder {top:?}; it must be named like the skill ({name:?}), or hold SKILL.md at its root"
            )));
        }
        let prefix = format!("{top}/");
        return Ok(files.into_iter().map(|(p, f)| (p[prefix.len()..].to_string(), f)).collect());
    }
    // No SKILL.md at the root: `validate` says so.
    Ok(files)
}

/// A reader that fails past `left` bytes (a gzip bomb stops there), and says so in `exceeded`.
struct Bounded<R> {
    inner: R,
    left: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // Only an error if there is more to read.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.exceeded.set(true);
                    Err(io::Error::other("the archive is too large"))
                }
            };
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The skill's files as a tar, inside a top folder named like the skill
/// (`tar -xf` makes the folder); modes 0644, or 0755 for executables.
pub(super) fn write(contents: &SkillContents) -> Result<Vec<u8>, SkillError> {
    let name = &contents.skill.name;
    let fail = SkillError::io(format!("building the tar of skill {name:?}"));
    let mut builder = ::tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    dirs.insert(name.clone());
    for path in contents.files.keys() {
        let mut prefix = path.as_str();
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            dirs.insert(format!("{name}/{parent}"));
            prefix = parent;
        }
    }
    let result = (|| -> io::Result<Vec<u8>> {
        for dir in &dirs {
            let mut header = ::tar::Header::new_gnu();
            header.set_entry_type(::tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder.append_data(&mut header, format!("{dir}/"), io::empty())?;
        }
        for (path, file) in &contents.files {
            let mut header = ::tar::Header::new_gnu();
            header.set_entry_type(::tar::EntryType::Regular);
            header.set_mode(if file.executable { 0o755 } else { 0o644 });
            header.set_size(file.bytes.len() as u64);
            builder.append_data(&mut header, format!("{name}/{path}"), file.bytes.as_slice())?;
        }
        builder.into_inner()
    })();
    result.map_err(fail)
}
