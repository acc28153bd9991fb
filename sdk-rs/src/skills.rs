//! Skill routes of [`Client`]: skills are folders with a `SKILL.md`,
//! installed by name (as text files or a tar of the folder) and given to
//! sessions with `CreateSession::skills`.

use bytes::Bytes;
use reqwest::Method;

use super::{json, path, send, Client, Result};
use crate::{Skill, SkillDetail, SkillFiles, SkillList};

impl Client {
    /// `GET /v1/skills`: installed and bundled skills, sorted by name.
    pub async fn list_skills(&self) -> Result<SkillList> {
        json(self.request(Method::GET, "/v1/skills")).await
    }

    /// `GET /v1/skills/{name}`: the skill with the text of its files (a
    /// file that is not UTF-8 comes with empty text; see
    /// [`get_skill_tar`](Self::get_skill_tar)).
    pub async fn get_skill(&self, name: impl AsRef<str>) -> Result<SkillDetail> {
        json(self.request(Method::GET, &skill_path(name.as_ref()))).await
    }

    /// `GET /v1/skills/{name}` with `Accept: application/x-tar`: the skill's
    /// folder as a tar (entries under `<name>/`).
    pub async fn get_skill_tar(&self, name: impl AsRef<str>) -> Result<Bytes> {
        let request = self.request(Method::GET, &skill_path(name.as_ref())).header("accept", "application/x-tar");
        Ok(send(request).await?.bytes().await?)
    }

    /// `PUT /v1/skills/{name}` with text files (`SKILL.md` required):
    /// installs or replaces the skill.
    pub async fn put_skill_files(&self, name: impl AsRef<str>, files: &SkillFiles) -> Result<Skill> {
        json(self.request(Method::PUT, &skill_path(name.as_ref())).json(files)).await
    }

    /// `PUT /v1/skills/{name}` with a tar of the skill folder (files at its
    /// root or inside one top folder `<name>/`); gzip-compressed bytes are
    /// recognised by their magic number and sent as `application/gzip`.
    pub async fn put_skill_tar(&self, name: impl AsRef<str>, tar: impl Into<Bytes>) -> Result<Skill> {
        let tar: Bytes = tar.into();
        let content_type = if tar.starts_with(&[0x1f, 0x8b]) { "application/gzip" } else { "application/x-tar" };
        let request =
            self.request(Method::PUT, &skill_path(name.as_ref())).header("content-type", content_type).body(tar);
        json(request).await
    }

    /// `DELETE /v1/skills/{name}`: removes an installed skill and answers it.
    pub async fn delete_skill(&self, name: impl AsRef<str>) -> Result<Skill> {
        json(self.request(Method::DELETE, &skill_path(name.as_ref()))).await
    }
}

fn skill_path(name: &str) -> String {
    path(&["v1", "skills", name])
}
