//! The rules of a skill: its name (the Agent Skills rule), the paths of its
//! files (relative, confined to the skill folder), the limits, and the
//! front matter of its `SKILL.md`. Pure: no I/O.

use tether_protocol::Skill;

use super::{
    Files, SkillError, MAX_DEPTH, MAX_DESCRIPTION_CHARS, MAX_FILES, MAX_FILE_BYTES, MAX_NAME_LEN, MAX_TOTAL_BYTES,
};

/// The skill's entry point, required at the top of its folder.
pub const SKILL_MD: &str = "SKILL.md";

/// `^[a-z0-9]+(-[a-z0-9]+)*$`, 1 to [`MAX_NAME_LEN`] characters.
pub fn validate_name(name: &str) -> Result<(), SkillError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 64 characters")
    } else if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        Some("only lowercase letters a-z, digits and hyphens are allowed")
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("it may not start or end with a hyphen")
    } else if name.contains("--") {
        Some("it may not hold two hyphens in a row")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SkillError::InvalidName { name: name.to_string(), reason }),
        None => Ok(()),
    }
}

/// A file's path inside a skill: relative, `/`-separated, no empty, `.` or
/// `..` segment (nor one made only of dots), no NUL, backslash or other
/// control character, at most [`MAX_DEPTH`] segments of at most 255 bytes.
pub fn validate_path(path: &str) -> Result<(), SkillError> {
    let segments = validate_segments(path)?;
    if segments > MAX_DEPTH {
        return Err(SkillError::TooLarge(format!(
            "file {path:?} is {segments} path segments deep; at most {MAX_DEPTH} are allowed (MAX_DEPTH)"
        )));
    }
    Ok(())
}

/// [`validate_path`] but the depth; answers the number of segments.
pub fn validate_segments(path: &str) -> Result<usize, SkillError> {
    let bad = |reason: &str| SkillError::InvalidPath { path: path.to_string(), reason: reason.to_string() };
    if path.is_empty() {
        return Err(bad("it is empty"));
    }
    if path.contains('\0') {
        return Err(bad("it holds a NUL byte"));
    }
    if path.contains('\\') {
        return Err(bad("it holds a backslash (separate folders with `/`)"));
    }
    if path.chars().any(char::is_control) {
        return Err(bad("it holds a control character"));
    }
    if path.starts_with('/') {
        return Err(bad("it is absolute; paths are relative to the skill folder"));
    }
    let mut count = 0;
    for segment in path.split('/') {
        count += 1;
        if segment.is_empty() {
            return Err(bad("it has an empty segment (`//` or a trailing `/`)"));
        }
        if segment == ".." {
            return Err(bad("`..` would climb out of the skill folder"));
        }
        if segment.bytes().all(|b| b == b'.') {
            return Err(bad("a segment made only of dots is not a file name"));
        }
        if segment.len() > 255 {
            return Err(bad("a segment is longer than 255 bytes"));
        }
    }
    Ok(count)
}

/// The whole skill: limits, every path, no file that is also a folder,
/// `SKILL.md` and its front matter. Answers the skill it describes.
pub fn validate(name: &str, files: &Files, bundled: bool) -> Result<Skill, SkillError> {
    validate_name(name)?;
    if files.len() > MAX_FILES {
        return Err(SkillError::TooLarge(format!(
            "the skill has {} files; at most {MAX_FILES} are allowed (MAX_FILES)",
            files.len()
        )));
    }
    let mut total: usize = 0;
    for (path, file) in files {
        validate_path(path)?;
        check_file_size(path, file.bytes.len())?;
        total += file.bytes.len();
    }
    check_total(total)?;
    // `a` and `a/b` cannot both be files.
    for path in files.keys() {
        let mut prefix = path.as_str();
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            if files.contains_key(parent) {
                return Err(SkillError::InvalidPath {
                    path: path.clone(),
                    reason: format!("{parent:?} is a file, so it cannot also be a folder"),
                });
            }
            prefix = parent;
        }
    }
    let Some(skill_md) = files.get(SKILL_MD) else {
        let near = files.keys().find(|p| p.rsplit('/').next().is_some_and(|n| n.eq_ignore_ascii_case(SKILL_MD)));
        let hint = match near {
            Some(p) => format!(" (found {p:?}: it must be exactly `SKILL.md`, at the top)"),
            None => String::new(),
        };
        return Err(SkillError::SkillMd(format!("the skill has no SKILL.md at the top of its folder{hint}")));
    };
    let text =
        std::str::from_utf8(&skill_md.bytes).map_err(|_| SkillError::SkillMd("SKILL.md is not UTF-8 text".into()))?;
    let front = front_matter(text)?;
    if front.name != name {
        return Err(SkillError::SkillMd(format!(
            "SKILL.md front matter field `name` is {:?} but the skill is named {name:?}; they must be equal",
            front.name
        )));
    }
    Ok(Skill {
        name: name.to_string(),
        description: front.description,
        files: files.keys().cloned().collect(),
        bundled,
    })
}

pub fn check_file_size(path: &str, len: usize) -> Result<(), SkillError> {
    if len > MAX_FILE_BYTES {
        return Err(SkillError::TooLarge(format!(
            "file {path:?} is {len} bytes; at most {MAX_FILE_BYTES} bytes (1 MiB) per file are allowed (MAX_FILE_BYTES)"
        )));
    }
    Ok(())
}

pub fn check_total(total: usize) -> Result<(), SkillError> {
    if total > MAX_TOTAL_BYTES {
        return Err(SkillError::TooLarge(format!(
            "the skill's files hold more than {MAX_TOTAL_BYTES} bytes (8 MiB) in all (MAX_TOTAL_BYTES)"
        )));
    }
    Ok(())
}

/// What tether reads from `SKILL.md`'s front matter; other keys
/// (`allowed-tools`, `license`, `metadata`, ...) are allowed and kept in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontMatter {
    pub name: String,
    /// Trimmed.
    pub description: String,
}

/// The YAML between a `---` line at the very start of `SKILL.md` and the next
/// `---` (or `...`) line, parsed with `serde_yaml_ng`: plain, quoted, folded
/// (`>`) and literal (`|`) scalars all work.
pub fn front_matter(text: &str) -> Result<FrontMatter, SkillError> {
    let err = |m: String| SkillError::SkillMd(m);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_end() != "---" {
        return Err(err(
            "SKILL.md must start with YAML front matter: a `---` line, `name:` and `description:`, then `---`".into(),
        ));
    }
    let mut yaml = String::new();
    let mut closed = false;
    for line in lines {
        let bare = line.trim_end();
        if bare == "---" || bare == "..." {
            closed = true;
            break;
        }
        yaml.push_str(line);
    }
    if !closed {
        return Err(err("SKILL.md front matter has no closing `---` line".into()));
    }
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&yaml).map_err(|e| err(format!("SKILL.md front matter is not valid YAML: {e}")))?;
    let serde_yaml_ng::Value::Mapping(map) = value else {
        return Err(err("SKILL.md front matter must be a YAML mapping with `name` and `description`".into()));
    };
    let field = |key: &str| -> Result<String, SkillError> {
        match map.get(key) {
            None | Some(serde_yaml_ng::Value::Null) => {
                Err(err(format!("SKILL.md front matter has no `{key}` field (it needs `name` and `description`)")))
            }
            Some(serde_yaml_ng::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(err(format!("SKILL.md front matter field `{key}` must be a string"))),
        }
    };
    let name = field("name")?;
    let description = field("description")?.trim().to_string();
    if description.is_empty() {
        return Err(err(
            "SKILL.md front matter field `description` is empty; say what the skill does and when to use it".into(),
        ));
    }
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(err(format!(
            "SKILL.md front matter field `description` is {chars} characters long; at most {MAX_DESCRIPTION_CHARS} are allowed"
        )));
    }
    Ok(FrontMatter { name, description })
}
