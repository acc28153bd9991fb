//! TEMPORARY stand-in until the skills store lands (branch `skills`).
use std::path::Path;
use tether_protocol::Skill;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SkillError(String);

pub fn find(data_dir: &Path, name: &str) -> Option<Skill> {
    let dir = data_dir.join("skills").join(name);
    dir.join("SKILL.md").is_file().then(|| Skill {
        name: name.into(),
        description: String::new(),
        files: vec![],
        bundled: false,
    })
}
pub fn materialize(data_dir: &Path, names: &[String], dest: &Path) -> Result<(), SkillError> {
    let _ = std::fs::remove_dir_all(dest);
    for n in names {
        let src = data_dir.join("skills").join(n);
        let to = dest.join(n);
        std::fs::create_dir_all(&to).map_err(|e| SkillError(e.to_string()))?;
        for e in std::fs::read_dir(&src).map_err(|e| SkillError(e.to_string()))?.flatten() {
            std::fs::copy(e.path(), to.join(e.file_name())).map_err(|e| SkillError(e.to_string()))?;
        }
    }
    Ok(())
}
