//! The skills embedded in the binary from the repo's top-level `skills/`
//! folder (by `server/build.rs`). Read-only; validated by a unit test, and
//! again on first use (a skill that fails is logged and left out).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::{validate, Files, SkillContents, SkillFile};

/// One embedded file.
pub(super) struct BundledFile {
    skill: &'static str,
    path: &'static str,
    executable: bool,
    bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/bundled_skills.rs"));

/// Every bundled skill that validates, sorted by name.
pub(super) fn all() -> &'static [SkillContents] {
    static ALL: OnceLock<Vec<SkillContents>> = OnceLock::new();
    ALL.get_or_init(|| {
        raw()
            .into_iter()
            .filter_map(|(name, files)| match validate::validate(name, &files, true) {
                Ok(skill) => Some(SkillContents { skill, files }),
                Err(e) => {
                    tracing::error!(skill = name, error = %e, "bundled skill is invalid; left out");
                    None
                }
            })
            .collect()
    })
}

/// The bundled skill `name`.
pub(super) fn get(name: &str) -> Option<SkillContents> {
    all().iter().find(|c| c.skill.name == name).cloned()
}

/// Whether `name` is a bundled skill (read-only through the API).
pub fn is_bundled(name: &str) -> bool {
    FILES.iter().any(|f| f.skill == name)
}

/// The embedded skills' files by skill name, unvalidated.
pub(super) fn raw() -> BTreeMap<&'static str, Files> {
    let mut by_skill: BTreeMap<&str, Files> = BTreeMap::new();
    for f in FILES {
        by_skill
            .entry(f.skill)
            .or_default()
            .insert(f.path.to_string(), SkillFile { bytes: f.bytes.to_vec(), executable: f.executable });
    }
    by_skill
}
