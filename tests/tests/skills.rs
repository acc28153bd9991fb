//! The skills API on the real binary, through the SDK: installs as JSON and
//! as a tar (gzip too), the bundled skill listed read-only, installs that
//! survive a restart, removal, and bad input answered as problem+json with
//! the server serving on.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;
use tether_e2e::http::{expect_problem, send};
use tether_e2e::tar::{archive, entry, entry_with_mode};
use tether_e2e::*;
use tether_sdk::reqwest::Method;
use tether_sdk::{Client, SkillFiles};

const BUNDLED: &str = "sandbox-dev-servers";
const ORCHESTRATION: &str = "tether-orchestration";

fn skill_md(name: &str, description: &str) -> String {
    format!("---\nname: {name}\ndescription: >\n  {description}\nlicense: MIT\n---\n\n# {name}\n\nSteps.\n")
}

fn gzip(input: &[u8]) -> Vec<u8> {
    let mut child =
        Command::new("gzip").arg("-c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("run gzip");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

async fn names(client: &Client) -> Vec<(String, bool)> {
    client.list_skills().await.unwrap().skills.into_iter().map(|s| (s.name, s.bundled)).collect()
}

#[tokio::test]
async fn skills_install_as_json_and_tar_survive_a_restart_and_delete() {
    let mut server = TestServer::start().await;
    let client = server.client();
    assert_eq!(names(&client).await, [(BUNDLED.to_string(), true), (ORCHESTRATION.to_string(), true)]);

    let notes_md = skill_md("notes", "Keeps notes in NOTES.md.");
    let files = SkillFiles {
        files: BTreeMap::from([("SKILL.md".to_string(), notes_md.clone()), ("ref/style.md".into(), "Short.".into())]),
    };
    let notes = client.put_skill_files("notes", &files).await.unwrap();
    assert_eq!((notes.name.as_str(), notes.description.as_str()), ("notes", "Keeps notes in NOTES.md."));
    assert_eq!(notes.files, ["SKILL.md", "ref/style.md"]);
    assert!(!notes.bundled);

    // A tar of the folder (`tar -czf tools.tar.gz tools`), with an executable script.
    let tools_md = skill_md("tools", "Runs the tools.");
    let tar = archive(&[
        entry("tools/", b'5', b"", ""),
        entry("tools/SKILL.md", b'0', tools_md.as_bytes(), ""),
        entry_with_mode("tools/bin/run.sh", b'0', b"#!/bin/sh\necho run\n", 0o755, ""),
    ]);
    let tools = client.put_skill_tar("tools", gzip(&tar)).await.unwrap();
    assert_eq!(tools.files, ["SKILL.md", "bin/run.sh"]);
    // Files at the root of the tar, replacing it (200).
    let flat = archive(&[
        entry("SKILL.md", b'0', tools_md.as_bytes(), ""),
        entry_with_mode("bin/run.sh", b'0', b"#!/bin/sh\necho v2\n", 0o755, ""),
    ]);
    let resp =
        send(client.request(Method::PUT, "/v1/skills/tools").header("content-type", "application/x-tar").body(flat))
            .await;
    assert_eq!(resp.status().as_u16(), 200);
    let on_disk = server.data_dir().join("skills/tools/bin/run.sh");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&on_disk).unwrap().permissions().mode() & 0o777, 0o755);
    }

    let listed = client.list_skills().await.unwrap().skills;
    let summary: Vec<(&str, bool)> = listed.iter().map(|s| (s.name.as_str(), s.bundled)).collect();
    assert_eq!(summary, [("notes", false), (BUNDLED, true), (ORCHESTRATION, true), ("tools", false)]);
    let dev = listed.iter().find(|s| s.name == BUNDLED).unwrap();
    assert!(dev.files.contains(&"SKILL.md".to_string()) && !dev.description.is_empty());

    let detail = client.get_skill("tools").await.unwrap();
    assert_eq!(detail.files["bin/run.sh"], "#!/bin/sh\necho v2\n");
    let folder = client.get_skill_tar("notes").await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut untar =
        Command::new("tar").arg("-xf").arg("-").arg("-C").arg(out.path()).stdin(Stdio::piped()).spawn().unwrap();
    untar.stdin.take().unwrap().write_all(&folder).unwrap();
    assert!(untar.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(out.path().join("notes/SKILL.md")).unwrap(), notes_md);
    assert_eq!(std::fs::read_to_string(out.path().join("notes/ref/style.md")).unwrap(), "Short.");

    server.restart().await;
    let client = server.client();
    assert_eq!(client.list_skills().await.unwrap().skills, listed);
    assert_eq!(client.get_skill("notes").await.unwrap().files, files.files);

    let removed = client.delete_skill("notes").await.unwrap();
    assert_eq!(removed, notes);
    let err = client.get_skill("notes").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("not_found")));
    let err = client.delete_skill("notes").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("not_found")));
    assert_eq!(
        names(&client).await,
        [(BUNDLED.to_string(), true), (ORCHESTRATION.to_string(), true), ("tools".to_string(), false)]
    );
    assert!(!server.data_dir().join("skills/notes").exists());
}

#[tokio::test]
async fn skills_bad_input_is_problem_json_and_the_server_serves_on() {
    let server = TestServer::start().await;
    let client = server.client();
    let put_json =
        |name: &str, body: serde_json::Value| client.request(Method::PUT, &format!("/v1/skills/{name}")).json(&body);
    let put_tar = |name: &str, tar: Vec<u8>| {
        client.request(Method::PUT, &format!("/v1/skills/{name}")).header("content-type", "application/x-tar").body(tar)
    };
    let ok = skill_md("good", "Good.");
    expect_problem(
        send(put_json("Bad_Name", json!({"files": {"SKILL.md": ok}}))).await,
        400,
        "invalid_request",
        &["invalid skill name", "\"Bad_Name\""],
    )
    .await;
    expect_problem(
        send(put_json("good", json!({"files": {"SKILL.md": ok}, "x": 1}))).await,
        400,
        "invalid_request",
        &["unknown field `x`"],
    )
    .await;
    expect_problem(
        send(put_json("good", json!({"files": {"notes.md": "x"}}))).await,
        400,
        "invalid_request",
        &["SKILL.md"],
    )
    .await;
    expect_problem(
        send(put_json("good", json!({"files": {"SKILL.md": "---\nname: good\ndescription: \"\"\n---\n"}}))).await,
        400,
        "invalid_request",
        &["`description`", "empty"],
    )
    .await;
    expect_problem(
        send(put_json("good", json!({"files": {"SKILL.md": ok, "../../etc/x": "x"}}))).await,
        400,
        "invalid_request",
        &["\"../../etc/x\"", "`..`"],
    )
    .await;
    let link = archive(&[entry("SKILL.md", b'0', ok.as_bytes(), ""), entry("x", b'2', b"", "/etc/passwd")]);
    expect_problem(send(put_tar("good", link)).await, 400, "invalid_request", &["\"x\"", "symbolic link"]).await;
    let big = "x".repeat((1 << 20) + 1);
    expect_problem(
        send(put_json("good", json!({"files": {"SKILL.md": ok, "big.txt": big}}))).await,
        413,
        "payload_too_large",
        &["\"big.txt\"", "1 MiB"],
    )
    .await;
    let text = client.request(Method::PUT, "/v1/skills/good").header("content-type", "text/plain").body("x");
    expect_problem(send(text).await, 415, "unsupported_media_type", &["tar"]).await;
    expect_problem(send(put_json(BUNDLED, json!({"files": {"SKILL.md": ok}}))).await, 409, "conflict", &["bundled"])
        .await;
    let err = client.delete_skill(BUNDLED).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(409), Some("conflict")));
    let err = client.delete_skill("never-installed").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("not_found")));
    // Nothing was installed, and the server still serves.
    assert_eq!(names(&client).await, [(BUNDLED.to_string(), true), (ORCHESTRATION.to_string(), true)]);
    assert_eq!(client.health().await.unwrap().status, "ok");
    let files = SkillFiles { files: BTreeMap::from([("SKILL.md".to_string(), ok)]) };
    assert_eq!(client.put_skill_files("good", &files).await.unwrap().name, "good");
}
