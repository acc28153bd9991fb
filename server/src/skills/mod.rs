//! Skills: folders holding a `SKILL.md` (YAML front matter with `name` and
//! `description`) and the files it refers to, given to agents by name.
//!
//! Installed skills live under `<data_dir>/skills/<name>/`; bundled ones are
//! embedded in the binary ([`bundled`]) and read-only. Every install is
//! validated whole ([`validate`]) before anything is written, then built in a
//! temporary folder beside the old version and renamed over it, so a refused
//! or failed install leaves the previous version as it was.
//!
//! This module owns storage and validation only: it knows nothing of HTTP
//! (errors are [`SkillError`], whose code and status `crate::error::AsProblem`
//! gives, turned into problem+json in `http/`) nor of
//! how each agent is given its skills (the session layer calls
//! [`materialize`]). Everything here is blocking.

mod bundled;
mod store;
mod tar;
mod validate;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use tether_protocol::Skill;

pub use bundled::is_bundled;
pub use validate::{validate_name, validate_path};

/// At most this many files in a skill (folders do not count).
pub const MAX_FILES: usize = 256;
/// At most this many bytes in one file of a skill (1 MiB).
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// At most this many bytes in all the files of a skill together (8 MiB).
pub const MAX_TOTAL_BYTES: usize = 8 << 20;
/// At most this many segments in a file's path (`a/b/SKILL.md` has 3).
pub const MAX_DEPTH: usize = 16;
/// At most this many characters in a skill name.
pub const MAX_NAME_LEN: usize = 64;
/// At most this many characters in the front matter's `description`.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// The largest install body read (JSON, or a tar once un-gzipped): the 8 MiB
/// of content plus room for JSON escapes and tar headers (24 MiB).
pub const MAX_REQUEST_BYTES: usize = 24 << 20;

/// One file of a skill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillFile {
    pub bytes: Vec<u8>,
    /// Written with mode 0755 rather than 0644 (scripts).
    pub executable: bool,
}

impl SkillFile {
    pub fn text(text: impl Into<String>) -> SkillFile {
        SkillFile { bytes: text.into().into_bytes(), executable: false }
    }
}

/// A skill's files by `/`-separated relative path.
pub type Files = BTreeMap<String, SkillFile>;

/// A skill and the contents of its files.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillContents {
    pub skill: Skill,
    pub files: Files,
}

/// What an install did.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    pub skill: Skill,
    /// An installed version of the same name was replaced.
    pub replaced: bool,
}

/// Why a skill operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    #[error("invalid skill name {name:?}: {reason} (names are 1-64 characters: lowercase letters a-z, digits and single hyphens, not at either end)")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid file path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    /// `SKILL.md` is missing, not UTF-8, or its front matter is wrong.
    #[error("{0}")]
    SkillMd(String),
    /// The tar body is not a tar, or holds an entry a skill may not have.
    #[error("{0}")]
    Archive(String),
    /// Past one of the limits ([`MAX_FILES`], [`MAX_FILE_BYTES`],
    /// [`MAX_TOTAL_BYTES`], [`MAX_DEPTH`], [`MAX_REQUEST_BYTES`]).
    #[error("{0}")]
    TooLarge(String),
    #[error("no skill named {0:?}")]
    NotFound(String),
    #[error("skill {0:?} is bundled with tether and read-only; install yours under another name")]
    Bundled(String),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

/// The code and status each failure is answered with, by the HTTP API.
impl crate::error::AsProblem for SkillError {
    fn code(&self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        match self {
            SkillError::InvalidName { .. }
            | SkillError::InvalidPath { .. }
            | SkillError::SkillMd(_)
            | SkillError::Archive(_) => ErrorCode::InvalidRequest,
            SkillError::TooLarge(_) => ErrorCode::PayloadTooLarge,
            SkillError::NotFound(_) => ErrorCode::NotFound,
            SkillError::Bundled(_) => ErrorCode::Conflict,
            SkillError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => ErrorCode::NoSpace,
            SkillError::Io { .. } => ErrorCode::Internal,
        }
    }

    fn detail(&self) -> String {
        match self {
            SkillError::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                "no space left on device".to_string()
            }
            other => other.to_string(),
        }
    }
}

impl SkillError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> SkillError {
        let context = context.into();
        move |source| SkillError::Io { context, source }
    }
}

/// Every skill, installed and bundled, sorted by name; an installed skill
/// shadows a bundled one of the same name (as [`find`] does). An installed
/// folder that no longer validates is left out (and logged).
pub fn list(data_dir: &Path) -> Result<Vec<Skill>, SkillError> {
    let mut by_name: BTreeMap<String, Skill> =
        bundled::all().iter().map(|c| (c.skill.name.clone(), c.skill.clone())).collect();
    for contents in store::list(data_dir)? {
        by_name.insert(contents.skill.name.clone(), contents.skill);
    }
    Ok(by_name.into_values().collect())
}

/// The skill and its files: installed under the data dir, else bundled.
pub fn get(data_dir: &Path, name: &str) -> Result<SkillContents, SkillError> {
    validate_name(name)?;
    if let Some(contents) = store::get(data_dir, name)? {
        return Ok(contents);
    }
    bundled::get(name).ok_or_else(|| SkillError::NotFound(name.to_string()))
}

/// The skill by name: installed under the data dir, else bundled; None if neither.
pub fn find(data_dir: &Path, name: &str) -> Option<Skill> {
    match get(data_dir, name) {
        Ok(contents) => Some(contents.skill),
        Err(SkillError::NotFound(_) | SkillError::InvalidName { .. }) => None,
        Err(e) => {
            tracing::warn!(skill = name, error = %e, "cannot read skill");
            None
        }
    }
}

/// Installs (or replaces) `name` from text files (the JSON form of PUT).
pub fn install_files(data_dir: &Path, name: &str, files: &BTreeMap<String, String>) -> Result<Installed, SkillError> {
    let files = files.iter().map(|(path, text)| (path.clone(), SkillFile::text(text.as_str()))).collect();
    install(data_dir, name, files)
}

/// Installs (or replaces) `name` from a tar (gzip-compressed when `gzip`)
/// holding the skill's files at its root or inside one top folder `name/`.
/// Regular files and folders only: links, devices and fifos are refused.
pub fn install_tar(data_dir: &Path, name: &str, tar: &[u8], gzip: bool) -> Result<Installed, SkillError> {
    validate_name(name)?;
    refuse_bundled(name)?;
    let files = tar::read(name, tar, gzip)?;
    install(data_dir, name, files)
}

/// Installs (or replaces) `name` with `files`, validated whole first.
pub fn install(data_dir: &Path, name: &str, files: Files) -> Result<Installed, SkillError> {
    validate_name(name)?;
    refuse_bundled(name)?;
    let skill = validate::validate(name, &files, false)?;
    let replaced = store::install(data_dir, name, &files)?;
    Ok(Installed { skill, replaced })
}

/// Removes the installed skill `name` and answers it. A bundled skill cannot
/// be removed (an installed copy shadowing one can).
pub fn remove(data_dir: &Path, name: &str) -> Result<Skill, SkillError> {
    validate_name(name)?;
    match store::remove(data_dir, name)? {
        Some(skill) => Ok(skill),
        None if is_bundled(name) => Err(SkillError::Bundled(name.to_string())),
        None => Err(SkillError::NotFound(name.to_string())),
    }
}

/// Writes each named skill's folder as `dest/<name>/...` (installed or bundled),
/// replacing whatever `dest` held before; fails if a name is unknown.
///
/// `dest` is built beside itself and renamed into place, so it is either
/// the old folder or the complete new one; pass a folder tether owns (its
/// whole content is replaced).
pub fn materialize(data_dir: &Path, names: &[String], dest: &Path) -> Result<(), SkillError> {
    let mut skills: Vec<SkillContents> = Vec::new();
    for name in names {
        if skills.iter().any(|s| &s.skill.name == name) {
            continue;
        }
        skills.push(get(data_dir, name)?);
    }
    store::materialize(&skills, dest)
}

/// The skill's folder as a tar: its files under `<name>/`.
pub fn archive(contents: &SkillContents) -> Result<Vec<u8>, SkillError> {
    tar::write(contents)
}

fn refuse_bundled(name: &str) -> Result<(), SkillError> {
    if is_bundled(name) {
        return Err(SkillError::Bundled(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
