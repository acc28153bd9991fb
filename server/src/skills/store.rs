//! Installed skills on disk: `<data_dir>/skills/<name>/`.
//!
//! A write builds the new version in `.<name>.new-<id>` beside the old one,
//! renames the old one to `.<name>.old`, the new one to `<name>`, then
//! deletes `.<name>.old`. Writers and readers share one lock, so no reader
//! sees the moment between the two renames; after a crash there, the
//! leftover `.<name>.old` is read as the current version until the next
//! write replaces it. Nothing here follows or creates a symlink: files are
//! created with `O_EXCL | O_NOFOLLOW` in folders this module just made, and
//! reads skip anything that is not a regular file or a folder.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::{validate, Files, SkillContents, SkillError, SkillFile, MAX_DEPTH, MAX_FILES, MAX_FILE_BYTES};

/// Serializes writes, and keeps reads out of a write's two renames.
static LOCK: RwLock<()> = RwLock::new(());

fn read_lock() -> std::sync::RwLockReadGuard<'static, ()> {
    LOCK.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write_lock() -> std::sync::RwLockWriteGuard<'static, ()> {
    LOCK.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("skills")
}

fn backup_of(root: &Path, name: &str) -> PathBuf {
    root.join(format!(".{name}.old"))
}

fn is_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// The folder holding the current version of `name`, if installed.
fn current(root: &Path, name: &str) -> Option<PathBuf> {
    let dir = root.join(name);
    if is_dir(&dir) {
        return Some(dir);
    }
    let backup = backup_of(root, name);
    is_dir(&backup).then_some(backup)
}

/// Every installed skill that validates, by name.
pub(super) fn list(data_dir: &Path) -> Result<Vec<SkillContents>, SkillError> {
    let root = root(data_dir);
    let _guard = read_lock();
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SkillError::io(format!("reading {}", root.display()))(e)),
    };
    let mut names = std::collections::BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(SkillError::io(format!("reading {}", root.display())))?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else { continue };
        // `<name>`, or `.<name>.old` left by a crash between the two renames.
        let name = file_name.strip_prefix('.').and_then(|n| n.strip_suffix(".old")).unwrap_or(&file_name);
        if validate::validate_name(name).is_ok() {
            names.insert(name.to_string());
        }
    }
    let mut out = Vec::new();
    for name in names {
        let Some(dir) = current(&root, &name) else { continue };
        match load(&dir, &name) {
            Ok(contents) => out.push(contents),
            Err(e) => tracing::warn!(skill = %name, error = %e, "installed skill does not validate; not listed"),
        }
    }
    Ok(out)
}

/// The installed skill `name`, if there is one.
pub(super) fn get(data_dir: &Path, name: &str) -> Result<Option<SkillContents>, SkillError> {
    let root = root(data_dir);
    let _guard = read_lock();
    match current(&root, name) {
        Some(dir) => load(&dir, name).map(Some),
        None => Ok(None),
    }
}

/// Reads and validates the skill folder `dir`.
fn load(dir: &Path, name: &str) -> Result<SkillContents, SkillError> {
    let mut files = Files::new();
    read_tree(dir, "", 1, &mut files)?;
    let skill = validate::validate(name, &files, false)?;
    Ok(SkillContents { skill, files })
}

fn read_tree(dir: &Path, prefix: &str, depth: usize, files: &mut Files) -> Result<(), SkillError> {
    let context = || format!("reading {}", dir.display());
    for entry in std::fs::read_dir(dir).map_err(SkillError::io(context()))? {
        let entry = entry.map_err(SkillError::io(context()))?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_string) else { continue };
        let rel = format!("{prefix}{file_name}");
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(SkillError::io(context()))?;
        if meta.is_dir() && depth < MAX_DEPTH {
            read_tree(&path, &format!("{rel}/"), depth + 1, files)?;
        } else if meta.is_file() && files.len() < MAX_FILES + 1 && meta.len() <= MAX_FILE_BYTES as u64 {
            let mut file = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&path)
                .map_err(SkillError::io(format!("reading {}", path.display())))?;
            let mut bytes = Vec::new();
            Read::by_ref(&mut file)
                .take(MAX_FILE_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(SkillError::io(format!("reading {}", path.display())))?;
            files.insert(rel, SkillFile { bytes, executable: meta.permissions().mode() & 0o111 != 0 });
        }
        // Symlinks, sockets, devices, and what is past the limits: not part of the skill.
    }
    Ok(())
}

/// Writes `files` (validated) as the installed skill `name`; answers
/// whether an installed version was replaced.
pub(super) fn install(data_dir: &Path, name: &str, files: &Files) -> Result<bool, SkillError> {
    let root = root(data_dir);
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&root)
        .map_err(SkillError::io(format!("creating {}", root.display())))?;
    let _guard = write_lock();
    remove_stale(&root, name);
    let staging = root.join(format!(".{name}.new-{}", crate::ids::new_id("tmp")));
    let guard = RemoveOnDrop(Some(staging.clone()));
    write_tree(&staging, files)?;
    let target = root.join(name);
    let backup = backup_of(&root, name);
    let replaced = if is_dir(&target) {
        remove_any(&backup).map_err(SkillError::io(format!("removing {}", backup.display())))?;
        std::fs::rename(&target, &backup).map_err(SkillError::io(format!("moving {} aside", target.display())))?;
        true
    } else {
        // A leftover `.<name>.old` (a crash mid-swap) is the current version.
        is_dir(&backup)
    };
    if let Err(e) = std::fs::rename(&staging, &target) {
        if is_dir(&backup) && !is_dir(&target) {
            let _ = std::fs::rename(&backup, &target);
        }
        return Err(SkillError::io(format!("moving the new {name:?} into place"))(e));
    }
    drop(guard.disarm());
    if let Err(e) = remove_any(&backup) {
        tracing::warn!(path = %backup.display(), error = %e, "could not remove the replaced skill");
    }
    sync_dir(&root);
    Ok(replaced)
}

/// Removes the installed skill `name`; answers it, or None if not installed.
pub(super) fn remove(data_dir: &Path, name: &str) -> Result<Option<tether_protocol::Skill>, SkillError> {
    let root = root(data_dir);
    let _guard = write_lock();
    let Some(dir) = current(&root, name) else { return Ok(None) };
    let skill = match load(&dir, name) {
        Ok(contents) => contents.skill,
        // A folder that no longer validates can still be removed.
        Err(_) => tether_protocol::Skill {
            name: name.to_string(),
            description: String::new(),
            files: Vec::new(),
            bundled: false,
        },
    };
    // Renamed away first, so the name is gone at once even if deleting is slow or fails halfway.
    let doomed = root.join(format!(".{name}.del-{}", crate::ids::new_id("tmp")));
    std::fs::rename(&dir, &doomed).map_err(SkillError::io(format!("removing {}", dir.display())))?;
    let _ = remove_any(&backup_of(&root, name));
    if let Err(e) = remove_any(&doomed) {
        tracing::warn!(path = %doomed.display(), error = %e, "could not delete a removed skill's folder");
    }
    sync_dir(&root);
    Ok(Some(skill))
}

/// `dest` replaced by a folder holding `<name>/...` for each skill.
pub(super) fn materialize(skills: &[SkillContents], dest: &Path) -> Result<(), SkillError> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let leaf = dest.file_name().and_then(|n| n.to_str()).unwrap_or("skills");
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)
        .map_err(SkillError::io(format!("creating {}", parent.display())))?;
    let staging = parent.join(format!(".{leaf}.new-{}", crate::ids::new_id("tmp")));
    let guard = RemoveOnDrop(Some(staging.clone()));
    create_dir(&staging)?;
    for contents in skills {
        write_tree(&staging.join(&contents.skill.name), &contents.files)?;
    }
    remove_any(dest).map_err(SkillError::io(format!("removing {}", dest.display())))?;
    std::fs::rename(&staging, dest).map_err(SkillError::io(format!("moving skills into {}", dest.display())))?;
    drop(guard.disarm());
    Ok(())
}

/// Creates `dir` (which must not exist) and writes `files` under it.
fn write_tree(dir: &Path, files: &Files) -> Result<(), SkillError> {
    create_dir(dir)?;
    for (rel, file) in files {
        // The paths were validated: relative, no `..`, no empty segment.
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(SkillError::io(format!("creating {}", parent.display())))?;
        }
        let context = || format!("writing {}", path.display());
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if file.executable { 0o755 } else { 0o644 })
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(SkillError::io(context()))?;
        out.write_all(&file.bytes).map_err(SkillError::io(context()))?;
        out.sync_all().map_err(SkillError::io(context()))?;
    }
    sync_dir(dir);
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), SkillError> {
    DirBuilder::new().mode(0o755).create(dir).map_err(SkillError::io(format!("creating {}", dir.display())))
}

/// Removes what `path` is (a folder with its content, or a file or link
/// itself, never what a link points to); nothing there is fine.
fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Staging and deleted folders of `name` left by a crash.
fn remove_stale(root: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let new = format!(".{name}.new-");
    let del = format!(".{name}.del-");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else { continue };
        if file_name.starts_with(&new) || file_name.starts_with(&del) {
            let _ = remove_any(&entry.path());
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Removes a staging folder unless disarmed (an error, or a panic).
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) -> Self {
        self.0 = None;
        self
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = remove_any(&path);
        }
    }
}
