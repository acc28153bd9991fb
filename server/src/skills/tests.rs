//! Skills: the validation rules one by one, the bundled skills, storage
//! (atomic replace, crash leftovers, no symlink followed), `materialize`, and
//! the routes in-process (JSON and tar installs, every refusal as
//! problem+json, limits as 413, bundled skills read-only).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::validate::{front_matter, FrontMatter};
use super::*;

const BUNDLED: &str = "sandbox-dev-servers";
const ORCHESTRATION: &str = "tether-orchestration";

fn skill_md(name: &str, description: &str) -> String {
    format!("---\nname: {name}\ndescription: {description}\n---\n\n# {name}\n\nDo the thing.\n")
}

fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect()
}

// Rules, as pure functions.

#[test]
fn names_follow_the_agent_skills_rule() {
    for good in ["a", "pdf", "pdf-tools", "a1-b2-c3", "0", &"x".repeat(64)] {
        validate_name(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
    let cases = [
        ("", "empty"),
        ("Foo", "lowercase"),
        ("a_b", "lowercase"),
        ("a.b", "lowercase"),
        ("..", "lowercase"),
        ("a/b", "lowercase"),
        ("é", "lowercase"),
        ("-a", "hyphen"),
        ("a-", "hyphen"),
        ("a--b", "two hyphens"),
    ];
    for (bad, why) in cases {
        let e = validate_name(bad).unwrap_err().to_string();
        assert!(e.contains(why) && e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
    }
    assert!(validate_name(&"x".repeat(65)).unwrap_err().to_string().contains("longer than 64"));
}

#[test]
fn paths_stay_inside_the_skill_folder() {
    for good in ["SKILL.md", "scripts/run.sh", ".gitignore", "a/b/c.txt", "a..b", "dir.d/x"] {
        validate_path(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
    }
    let cases = [
        ("../x", "`..`"),
        ("a/../../b", "`..`"),
        ("a/..", "`..`"),
        ("/etc/passwd", "absolute"),
        ("a\0b", "NUL"),
        ("a\\b", "backslash"),
        ("..\\x", "backslash"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("", "empty"),
        (".", "dots"),
        ("a/./b", "dots"),
        ("...", "dots"),
        ("a\nb", "control"),
    ];
    for (bad, why) in cases {
        let e = validate_path(bad).unwrap_err();
        assert!(matches!(e, SkillError::InvalidPath { .. }), "{bad:?}: {e:?}");
        assert!(e.to_string().contains(why), "{bad:?}: {e}");
    }
    let deep = vec!["d"; MAX_DEPTH].join("/");
    validate_path(&deep).unwrap();
    let too_deep = format!("{deep}/f");
    assert!(matches!(validate_path(&too_deep), Err(SkillError::TooLarge(m)) if m.contains("MAX_DEPTH")));
}

#[test]
fn front_matter_accepts_the_yaml_people_write() {
    let want = |d: &str| FrontMatter { name: "my-skill".into(), description: d.into() };
    let cases = [
        ("---\nname: my-skill\ndescription: Does things.\n---\nbody", "Does things."),
        ("---\nname: \"my-skill\"\ndescription: 'Quoted: with a colon'\n---\n", "Quoted: with a colon"),
        ("---\nname: my-skill\ndescription: >\n  Folded over\n  two lines.\n---\n", "Folded over two lines."),
        ("---\nname: my-skill\ndescription: >-\n  Folded, stripped.\n---\n", "Folded, stripped."),
        ("---\nname: my-skill\ndescription: |\n  Line one.\n  Line two.\n---\n", "Line one.\nLine two."),
        ("---\r\nname: my-skill\r\ndescription: CRLF endings.\r\n---\r\nbody", "CRLF endings."),
        ("\u{feff}---\nname: my-skill\ndescription: After a BOM.\n...\n", "After a BOM."),
        (
            "---\nname: my-skill\ndescription: Extra keys.\nlicense: MIT\nallowed-tools: [Bash, Read]\n\
             metadata:\n  version: \"1.0\"\n---\n",
            "Extra keys.",
        ),
        ("---\n# a comment\nname: my-skill   # trailing comment\ndescription: \"Escapes \\u00e9\"\n---\n", "Escapes é"),
    ];
    for (text, description) in cases {
        assert_eq!(front_matter(text).unwrap_or_else(|e| panic!("{text:?}: {e}")), want(description), "{text:?}");
    }
    let long = "x".repeat(MAX_DESCRIPTION_CHARS);
    assert_eq!(front_matter(&skill_md("my-skill", &long)).unwrap().description, long);
    let refused = [
        ("# no front matter\n".to_string(), "must start with YAML front matter"),
        ("---\nname: my-skill\ndescription: never closed\n".into(), "no closing"),
        ("---\nname: [unclosed\ndescription: x\n---\n".into(), "not valid YAML"),
        ("---\n- a list\n---\n".into(), "mapping"),
        ("---\n---\n".into(), "mapping"),
        ("---\ndescription: x\n---\n".into(), "no `name`"),
        ("---\nname: my-skill\n---\n".into(), "no `description`"),
        ("---\nname: my-skill\ndescription:\n---\n".into(), "no `description`"),
        ("---\nname: my-skill\ndescription: \"  \"\n---\n".into(), "`description` is empty"),
        ("---\nname: 42\ndescription: x\n---\n".into(), "`name` must be a string"),
        ("---\nname: my-skill\ndescription: [a]\n---\n".into(), "`description` must be a string"),
        (skill_md("my-skill", &"é".repeat(MAX_DESCRIPTION_CHARS + 1)), "1025 characters"),
    ];
    for (text, why) in refused {
        let e = front_matter(&text).unwrap_err().to_string();
        assert!(e.contains(why), "{text:?}: {e}");
    }
}

#[test]
fn bundled_skills_are_valid() {
    let raw = bundled::raw();
    assert!(raw.contains_key(BUNDLED), "{:?}", raw.keys().collect::<Vec<_>>());
    for (name, files) in &raw {
        let skill = validate::validate(name, files, true).unwrap_or_else(|e| panic!("bundled skill {name}: {e}"));
        assert_eq!(&skill.name, name);
        assert!(skill.bundled);
        assert!(skill.description.len() > 40, "{name}: say what it does and when to use it");
        assert!(is_bundled(name));
    }
    // Every bundled skill validates, so none was left out at run time.
    assert_eq!(bundled::all().len(), raw.len());
    let dev = &raw[BUNDLED];
    assert!(dev["scripts/dev-server.sh"].executable);
    let text = String::from_utf8(dev["SKILL.md"].bytes.clone()).unwrap();
    for needle in ["0.0.0.0", "curl", "setsid", "8080", "kill -TERM", "scripts/dev-server.sh"] {
        assert!(text.contains(needle), "the dev-server skill should mention {needle:?}");
    }
}

// Storage.

fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Every file under `dir` with its bytes and exec bit, and every folder.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.push((rel + "/", Vec::new(), false));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap(), meta.permissions().mode() & 0o111 != 0));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn install_get_find_list_remove() {
    let data = data_dir();
    let d = data.path();
    let v1 = files(&[("SKILL.md", &skill_md("notes", "Keeps notes.")), ("ref/a.md", "A")]);
    let first = install_files(d, "notes", &v1).unwrap();
    assert!(!first.replaced);
    assert_eq!(first.skill.files, ["SKILL.md", "ref/a.md"]);
    assert_eq!(first.skill.description, "Keeps notes.");
    assert!(!first.skill.bundled);
    assert_eq!(std::fs::read_to_string(d.join("skills/notes/ref/a.md")).unwrap(), "A");
    let v2 = files(&[("SKILL.md", &skill_md("notes", "Keeps notes, v2.")), ("b.md", "B")]);
    assert!(install_files(d, "notes", &v2).unwrap().replaced);
    // Replaced whole: the old file is gone, and nothing is left beside it.
    assert!(!d.join("skills/notes/ref").exists());
    let names: Vec<String> =
        std::fs::read_dir(d.join("skills")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["notes"]);
    let got = get(d, "notes").unwrap();
    assert_eq!(got.skill.description, "Keeps notes, v2.");
    assert_eq!(got.files["b.md"], SkillFile::text("B"));
    assert_eq!(find(d, "notes").unwrap().files, ["SKILL.md", "b.md"]);
    assert!(find(d, BUNDLED).unwrap().bundled);
    assert!(find(d, "nope").is_none());
    assert!(find(d, "Bad Name").is_none());
    let listed: Vec<(String, bool)> = list(d).unwrap().into_iter().map(|s| (s.name, s.bundled)).collect();
    assert_eq!(listed, [("notes".to_string(), false), (BUNDLED.to_string(), true), (ORCHESTRATION.to_string(), true)]);
    assert_eq!(remove(d, "notes").unwrap().description, "Keeps notes, v2.");
    assert!(!d.join("skills/notes").exists());
    assert!(matches!(remove(d, "notes"), Err(SkillError::NotFound(_))));
    assert!(matches!(remove(d, BUNDLED), Err(SkillError::Bundled(_))));
    assert!(matches!(install_files(d, BUNDLED, &v1), Err(SkillError::Bundled(_))));
}

#[test]
fn a_crash_between_the_two_renames_loses_nothing() {
    let data = data_dir();
    let d = data.path();
    install_files(d, "notes", &files(&[("SKILL.md", &skill_md("notes", "Old."))])).unwrap();
    // As a crash after `notes` → `.notes.old` and before the new one took its place.
    std::fs::rename(d.join("skills/notes"), d.join("skills/.notes.old")).unwrap();
    std::fs::create_dir(d.join("skills/.notes.new-tmp_stale")).unwrap();
    assert_eq!(get(d, "notes").unwrap().skill.description, "Old.");
    assert_eq!(list(d).unwrap().iter().filter(|s| s.name == "notes").count(), 1);
    let again = install_files(d, "notes", &files(&[("SKILL.md", &skill_md("notes", "New."))])).unwrap();
    assert!(again.replaced);
    let names: Vec<String> =
        std::fs::read_dir(d.join("skills")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["notes"]);
    assert_eq!(get(d, "notes").unwrap().skill.description, "New.");
}

#[test]
fn symlinks_on_disk_are_not_followed() {
    let data = data_dir();
    let d = data.path();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "secret").unwrap();
    install_files(d, "notes", &files(&[("SKILL.md", &skill_md("notes", "Notes."))])).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), d.join("skills/notes/leak")).unwrap();
    std::os::unix::fs::symlink(outside.path(), d.join("skills/notes/dir")).unwrap();
    let got = get(d, "notes").unwrap();
    assert_eq!(got.files.keys().collect::<Vec<_>>(), ["SKILL.md"]);
    let dest = data.path().join("out");
    materialize(d, &["notes".to_string()], &dest).unwrap();
    assert_eq!(snapshot(&dest).into_iter().map(|f| f.0).collect::<Vec<_>>(), ["notes/", "notes/SKILL.md"]);
}

#[test]
fn materialize_writes_exactly_the_files() {
    let data = data_dir();
    let d = data.path();
    let md = skill_md("notes", "Notes.");
    install_files(d, "notes", &files(&[("SKILL.md", &md), ("ref/deep/a.md", "A")])).unwrap();
    let dest = d.join("session/.claude/skills");
    std::fs::create_dir_all(dest.join("stale")).unwrap();
    std::fs::write(dest.join("stale/SKILL.md"), "old").unwrap();
    let names = vec!["notes".to_string(), BUNDLED.to_string(), "notes".to_string()];
    materialize(d, &names, &dest).unwrap();
    let mut want: Vec<(String, Vec<u8>, bool)> = vec![
        ("notes/".into(), vec![], false),
        ("notes/SKILL.md".into(), md.clone().into_bytes(), false),
        ("notes/ref/".into(), vec![], false),
        ("notes/ref/deep/".into(), vec![], false),
        ("notes/ref/deep/a.md".into(), b"A".to_vec(), false),
        (format!("{BUNDLED}/"), vec![], false),
        (format!("{BUNDLED}/scripts/"), vec![], false),
    ];
    for (path, file) in &bundled::raw()[BUNDLED] {
        want.push((format!("{BUNDLED}/{path}"), file.bytes.clone(), file.executable));
    }
    want.sort();
    assert_eq!(snapshot(&dest), want);
    // Nothing left beside `dest`.
    let siblings: Vec<String> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(siblings, ["skills"]);
    // An unknown name fails before `dest` is touched.
    let before = snapshot(&dest);
    let e = materialize(d, &["notes".to_string(), "ghost".to_string()], &dest).unwrap_err();
    assert!(matches!(&e, SkillError::NotFound(n) if n == "ghost"), "{e:?}");
    assert_eq!(snapshot(&dest), before);
    // No names: an empty folder.
    materialize(d, &[], &dest).unwrap();
    assert!(snapshot(&dest).is_empty());
}

// The routes, in-process.

type App = crate::http::TestApp;

/// The whole router (a small `--max-body-bytes`, so tar bodies past it show
/// the skill routes' own limit). No session is started: no agent binary needed.
async fn app() -> App {
    App::new(None, 1 << 20).await
}

struct Answer {
    status: StatusCode,
    content_type: String,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    /// Asserts a problem+json with this status and code whose detail mentions each of `needles`.
    fn problem(&self, status: u16, code: &str, needles: &[&str]) {
        let body = self.json();
        assert_eq!(self.status.as_u16(), status, "{body}");
        assert_eq!(self.content_type, "application/problem+json");
        assert_eq!(body["type"], format!("urn:tether:error:{code}"), "{body}");
        let detail = body["detail"].as_str().unwrap();
        for needle in needles {
            assert!(detail.contains(needle), "detail {detail:?} should mention {needle:?}");
        }
    }
}

async fn call(app: &App, req: Request<Body>) -> Answer {
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let content_type = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    Answer { status, content_type, bytes }
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn put_json(name: &str, body: Value) -> Request<Body> {
    Request::put(format!("/v1/skills/{name}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn put_tar(name: &str, tar: Vec<u8>, content_type: &str, encoding: Option<&str>) -> Request<Body> {
    let mut req = Request::put(format!("/v1/skills/{name}")).header("content-type", content_type);
    if let Some(encoding) = encoding {
        req = req.header("content-encoding", encoding);
    }
    req.body(Body::from(tar)).unwrap()
}

fn delete_req(name: &str) -> Request<Body> {
    Request::delete(format!("/v1/skills/{name}")).body(Body::empty()).unwrap()
}

/// One raw ustar entry (any name, even `../x`): `kind` b'0' file, b'5'
/// folder, b'2' symlink, b'1' hard link (to `link`), b'3' char device, b'6' fifo.
fn entry(name: &str, kind: u8, data: &[u8], mode: &[u8; 7], link: &str) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(mode);
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    entry(name, b'0', data, b"0000644", "")
}

fn dir(name: &str) -> Vec<u8> {
    entry(name, b'5', b"", b"0000755", "")
}

fn archive(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// The files of a tar, by path (folders end with `/`), with exec bits.
fn untar(bytes: &[u8]) -> BTreeMap<String, (Vec<u8>, bool)> {
    use std::io::Read;
    let mut out = BTreeMap::new();
    let mut archive = ::tar::Archive::new(bytes);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let exec = e.header().mode().unwrap() & 0o111 != 0;
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(path, (data, exec));
    }
    out
}

#[tokio::test]
async fn skills_json_round_trip_and_list() {
    let app = app().await;
    let md = skill_md("notes", "Keeps notes.");
    let body = json!({"files": {"SKILL.md": md, "ref/a.md": "A"}});
    let created = call(&app, put_json("notes", body.clone())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json());
    assert_eq!(
        created.json(),
        json!({"name": "notes", "description": "Keeps notes.", "files": ["SKILL.md", "ref/a.md"], "bundled": false})
    );
    let replaced = call(&app, put_json("notes", body)).await;
    assert_eq!(replaced.status, StatusCode::OK);
    let detail = call(&app, get_req("/v1/skills/notes")).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert_eq!(
        detail.json(),
        json!({"name": "notes", "description": "Keeps notes.", "bundled": false,
               "files": {"SKILL.md": md, "ref/a.md": "A"}})
    );
    // A non-UTF-8 file (put there by a tar) is listed with empty content.
    let tar = archive(&[file("SKILL.md", skill_md("bin", "Binary.").as_bytes()), file("blob", &[0xff, 0xfe, 0])]);
    assert_eq!(call(&app, put_tar("bin", tar, "application/x-tar", None)).await.status, StatusCode::CREATED);
    assert_eq!(call(&app, get_req("/v1/skills/bin")).await.json()["files"]["blob"], "");
    let listed = call(&app, get_req("/v1/skills")).await.json();
    let names: Vec<(&str, bool)> = listed["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["bundled"].as_bool().unwrap()))
        .collect();
    assert_eq!(names, [("bin", false), ("notes", false), (BUNDLED, true), (ORCHESTRATION, true)]);
    // As a tar: the folder, under `notes/`.
    let tar =
        call(&app, Request::get("/v1/skills/notes").header("accept", "application/x-tar").body(Body::empty()).unwrap())
            .await;
    assert_eq!((tar.status, tar.content_type.as_str()), (StatusCode::OK, "application/x-tar"));
    let got = untar(&tar.bytes);
    assert_eq!(got.keys().collect::<Vec<_>>(), ["notes/", "notes/SKILL.md", "notes/ref/", "notes/ref/a.md"]);
    assert_eq!(got["notes/SKILL.md"].0, md.as_bytes());
    // The tar goes back in as it came out.
    let back = call(&app, put_tar("notes", tar.bytes.clone(), "application/x-tar", None)).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.json());
    let deleted = call(&app, delete_req("notes")).await;
    assert_eq!((deleted.status, deleted.json()["name"].clone()), (StatusCode::OK, json!("notes")));
    call(&app, get_req("/v1/skills/notes")).await.problem(404, "not_found", &["notes"]);
    call(&app, delete_req("notes")).await.problem(404, "not_found", &["notes"]);
}

#[tokio::test]
async fn skills_tar_layouts_and_gzip() {
    let app = app().await;
    let md = skill_md("tools", "Tools.");
    let script = entry("scripts/run.sh", b'0', b"#!/bin/sh\necho hi\n", b"0000755", "");
    let at_root = archive(&[dir("./"), file("./SKILL.md", md.as_bytes()), dir("scripts/"), script.clone()]);
    let put = call(&app, put_tar("tools", at_root.clone(), "application/x-tar", None)).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.json());
    assert_eq!(put.json()["files"], json!(["SKILL.md", "scripts/run.sh"]));
    let on_disk = app.data.join("skills/tools/scripts/run.sh");
    assert_eq!(std::fs::metadata(&on_disk).unwrap().permissions().mode() & 0o777, 0o755);
    let folder = archive(&[
        dir("tools/"),
        file("tools/SKILL.md", md.as_bytes()),
        entry("tools/scripts/run.sh", b'0', b"#!/bin/sh\necho v2\n", b"0000755", ""),
    ]);
    let put = call(&app, put_tar("tools", folder.clone(), "application/x-tar", None)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.json());
    assert_eq!(std::fs::read_to_string(&on_disk).unwrap(), "#!/bin/sh\necho v2\n");
    let detail = call(&app, get_req("/v1/skills/tools")).await.json();
    assert_eq!(detail["files"], json!({"SKILL.md": md, "scripts/run.sh": "#!/bin/sh\necho v2\n"}));
    // gzip, both ways of saying so.
    let put = call(&app, put_tar("tools", gzip(&at_root), "application/gzip", None)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.json());
    let put = call(&app, put_tar("tools", gzip(&folder), "application/x-tar", Some("gzip"))).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.json());
    // A top folder named otherwise.
    let other = archive(&[file("tools-v2/SKILL.md", md.as_bytes())]);
    call(&app, put_tar("tools", other, "application/x-tar", None)).await.problem(
        400,
        "invalid_request",
        &["\"tools-v2\"", "named like the skill"],
    );
    // `git archive` output starts with a global pax header: skipped.
    let pax =
        entry("pax_global_header", b'g', b"52 comment=0123456789abcdef0123456789abcdef01234567\n", b"0000666", "");
    let put =
        call(&app, put_tar("tools", archive(&[pax, file("SKILL.md", md.as_bytes())]), "application/x-tar", None)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.json());
}

#[tokio::test]
async fn skills_bad_requests_say_what_was_wrong() {
    let app = app().await;
    let ok_md = skill_md("good", "Good.");
    // Names in the path.
    let too_long = "a".repeat(65);
    for (name, needle) in [
        ("Foo", "lowercase"),
        ("..", "lowercase"),
        ("%2E%2E", "lowercase"),
        ("-lead", "hyphen"),
        ("my_skill", "lowercase"),
        (too_long.as_str(), "longer than 64"),
    ] {
        call(&app, put_json(name, json!({"files": {"SKILL.md": ok_md}}))).await.problem(
            400,
            "invalid_request",
            &["invalid skill name", needle],
        );
        call(&app, get_req(&format!("/v1/skills/{name}"))).await.problem(400, "invalid_request", &[needle]);
        call(&app, delete_req(name)).await.problem(400, "invalid_request", &[needle]);
    }
    // The JSON body.
    call(&app, put_json("good", json!({"files": {"SKILL.md": ok_md}, "mode": "x"}))).await.problem(
        400,
        "invalid_request",
        &["unknown field `mode`"],
    );
    call(&app, put_json("good", json!({"files": {"SKILL.md": 7}}))).await.problem(
        400,
        "invalid_request",
        &["files.SKILL.md", "invalid type"],
    );
    call(&app, put_json("good", json!({}))).await.problem(400, "invalid_request", &["missing field `files`"]);
    let text = Request::put("/v1/skills/good").header("content-type", "text/plain").body(Body::from("x")).unwrap();
    call(&app, text).await.problem(415, "unsupported_media_type", &["JSON", "tar"]);
    // SKILL.md and its front matter.
    call(&app, put_json("good", json!({"files": {"README.md": "x"}}))).await.problem(
        400,
        "invalid_request",
        &["no SKILL.md"],
    );
    call(&app, put_json("good", json!({"files": {"skill.md": ok_md}}))).await.problem(
        400,
        "invalid_request",
        &["no SKILL.md", "\"skill.md\""],
    );
    call(&app, put_json("good", json!({"files": {"SKILL.md": "---\nname: good\n---\n"}}))).await.problem(
        400,
        "invalid_request",
        &["no `description`"],
    );
    call(&app, put_json("good", json!({"files": {"SKILL.md": "---\nname: good\ndescription: ''\n---\n"}})))
        .await
        .problem(400, "invalid_request", &["`description` is empty"]);
    call(&app, put_json("good", json!({"files": {"SKILL.md": skill_md("other", "x")}}))).await.problem(
        400,
        "invalid_request",
        &["`name`", "\"other\"", "\"good\""],
    );
    // Paths of files.
    for (path, needle) in [
        ("../x", "`..`"),
        ("/etc/passwd", "absolute"),
        ("a/../../b", "`..`"),
        ("a\0b", "NUL"),
        ("a\\b", "backslash"),
        ("a//b", "empty segment"),
        ("./SKILL.md", "dots"),
    ] {
        let body = json!({"files": {"SKILL.md": ok_md, path: "x"}});
        let shown = format!("{path:?}");
        call(&app, put_json("good", body)).await.problem(
            400,
            "invalid_request",
            &["invalid file path", &shown, needle],
        );
    }
    call(&app, put_json("good", json!({"files": {"SKILL.md": ok_md, "a": "x", "a/b": "y"}}))).await.problem(
        400,
        "invalid_request",
        &["\"a\" is a file"],
    );
    // Nothing was installed by any of that.
    assert!(!app.data.join("skills/good").exists());
    assert_eq!(call(&app, put_json("good", json!({"files": {"SKILL.md": ok_md}}))).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn skills_tar_entries_that_are_not_plain_files_or_climb_out_are_refused() {
    let app = app().await;
    let outside = tempfile::tempdir().unwrap();
    let md = skill_md("evil", "Evil.");
    let md_entry = file("SKILL.md", md.as_bytes());
    let abs = outside.path().join("x").to_string_lossy().into_owned();
    let cases: Vec<(Vec<u8>, &str, Vec<&str>)> = vec![
        (archive(&[md_entry.clone(), file("../x", b"x")]), "invalid_request", vec!["\"../x\"", "`..`"]),
        (archive(&[md_entry.clone(), file("a/../../x", b"x")]), "invalid_request", vec!["`..`"]),
        (archive(&[md_entry.clone(), file(&abs, b"x")]), "invalid_request", vec!["absolute"]),
        (
            archive(&[md_entry.clone(), file("/etc/passwd", b"x")]),
            "invalid_request",
            vec!["\"/etc/passwd\"", "absolute"],
        ),
        (archive(&[md_entry.clone(), dir("../up/")]), "invalid_request", vec!["`..`"]),
        (
            archive(&[md_entry.clone(), entry("link", b'2', b"", b"0000777", "/etc/passwd")]),
            "invalid_request",
            vec!["\"link\"", "symbolic link"],
        ),
        (
            archive(&[md_entry.clone(), entry("rel", b'2', b"", b"0000777", "SKILL.md")]),
            "invalid_request",
            vec!["symbolic link"],
        ),
        (
            archive(&[md_entry.clone(), entry("hard", b'1', b"", b"0000644", "SKILL.md")]),
            "invalid_request",
            vec!["\"hard\"", "hard link"],
        ),
        (archive(&[md_entry.clone(), entry("dev", b'3', b"", b"0000644", "")]), "invalid_request", vec!["device"]),
        (archive(&[md_entry.clone(), entry("fifo", b'6', b"", b"0000644", "")]), "invalid_request", vec!["fifo"]),
        (archive(&[md_entry.clone(), file("SKILL.md", b"again")]), "invalid_request", vec!["twice"]),
        (b"this is not a tar archive at all, just text".repeat(20), "invalid_request", vec!["not a valid tar"]),
    ];
    for (tar, code, needles) in cases {
        call(&app, put_tar("evil", tar, "application/x-tar", None)).await.problem(400, code, &needles);
    }
    call(&app, put_tar("evil", vec![1u8; 600], "application/gzip", None)).await.problem(
        400,
        "invalid_request",
        &["tar"],
    );
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
    assert!(!app.data.join("skills/evil").exists());
    assert!(!app.data.join("x").exists());
}

#[tokio::test]
async fn skills_past_a_limit_are_413_naming_it() {
    let app = app().await;
    let md = skill_md("big", "Big.");
    // Too many files (JSON).
    let mut many: BTreeMap<String, String> = (0..MAX_FILES).map(|i| (format!("f/{i}.txt"), "x".into())).collect();
    many.insert("SKILL.md".into(), md.clone());
    call(&app, put_json("big", json!({"files": many}))).await.problem(
        413,
        "payload_too_large",
        &["257 files", "MAX_FILES"],
    );
    // ... and as a tar, stopped as the entries arrive.
    let mut entries = vec![file("SKILL.md", md.as_bytes())];
    entries.extend((0..MAX_FILES).map(|i| file(&format!("f/{i}"), b"x")));
    call(&app, put_tar("big", archive(&entries), "application/x-tar", None)).await.problem(
        413,
        "payload_too_large",
        &["MAX_FILES"],
    );
    // One file over 1 MiB.
    let over = "x".repeat(MAX_FILE_BYTES + 1);
    call(&app, put_json("big", json!({"files": {"SKILL.md": md, "huge.txt": over}}))).await.problem(
        413,
        "payload_too_large",
        &["\"huge.txt\"", "1 MiB", "MAX_FILE_BYTES"],
    );
    // Over 8 MiB in all: nine files of 1 MiB, as a tar (far past --max-body-bytes, 1 MiB here).
    let one_mib = vec![b'y'; MAX_FILE_BYTES];
    let mut entries = vec![file("SKILL.md", md.as_bytes())];
    entries.extend((0..9).map(|i| file(&format!("part{i}.bin"), &one_mib)));
    call(&app, put_tar("big", archive(&entries), "application/x-tar", None)).await.problem(
        413,
        "payload_too_large",
        &["8 MiB", "MAX_TOTAL_BYTES"],
    );
    // Too deep.
    let deep = format!("{}/f.txt", vec!["d"; MAX_DEPTH].join("/"));
    call(&app, put_json("big", json!({"files": {"SKILL.md": md, deep: "x"}}))).await.problem(
        413,
        "payload_too_large",
        &["MAX_DEPTH"],
    );
    // A gzip bomb: tiny on the wire, past MAX_REQUEST_BYTES unpacked.
    let padding = entry("pax_global_header", b'g', &vec![0u8; MAX_REQUEST_BYTES + 4096], b"0000666", "");
    let bomb = gzip(&archive(&[padding, file("SKILL.md", md.as_bytes())]));
    assert!(bomb.len() < 1 << 20);
    call(&app, put_tar("big", bomb, "application/gzip", None)).await.problem(
        413,
        "payload_too_large",
        &["MAX_REQUEST_BYTES"],
    );
    // A body past MAX_REQUEST_BYTES.
    call(&app, put_tar("big", vec![0u8; MAX_REQUEST_BYTES + 1], "application/x-tar", None)).await.problem(
        413,
        "payload_too_large",
        &["MAX_REQUEST_BYTES"],
    );
    assert!(!app.data.join("skills/big").exists());
    // Up to the limits is fine: eight files of 1 MiB less SKILL.md's share, in a 8 MiB tar.
    let mut entries = vec![file("SKILL.md", md.as_bytes())];
    entries.extend((0..7).map(|i| file(&format!("part{i}.bin"), &one_mib)));
    entries.push(file("last.bin", &vec![b'z'; MAX_FILE_BYTES - md.len()]));
    let put = call(&app, put_tar("big", archive(&entries), "application/x-tar", None)).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.json());
    assert_eq!(put.json()["files"].as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn skills_bundled_are_listed_and_read_only() {
    let app = app().await;
    let listed = call(&app, get_req("/v1/skills")).await.json();
    let dev = listed["skills"].as_array().unwrap().iter().find(|s| s["name"] == BUNDLED).unwrap().clone();
    assert_eq!(dev["bundled"], true);
    assert!(dev["files"].as_array().unwrap().contains(&json!("SKILL.md")));
    let detail = call(&app, get_req(&format!("/v1/skills/{BUNDLED}"))).await.json();
    assert_eq!(detail["bundled"], true);
    assert!(detail["files"]["SKILL.md"].as_str().unwrap().starts_with("---\nname: sandbox-dev-servers\n"));
    let body = json!({"files": {"SKILL.md": skill_md(BUNDLED, "Mine.")}});
    call(&app, put_json(BUNDLED, body)).await.problem(409, "conflict", &["bundled", "read-only"]);
    call(&app, put_tar(BUNDLED, vec![0u8; 1024], "application/x-tar", None)).await.problem(
        409,
        "conflict",
        &["bundled"],
    );
    call(&app, delete_req(BUNDLED)).await.problem(409, "conflict", &["bundled"]);
    let tar = call(
        &app,
        Request::get(format!("/v1/skills/{BUNDLED}"))
            .header("accept", "application/x-tar")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let got = untar(&tar.bytes);
    assert!(got[&format!("{BUNDLED}/scripts/dev-server.sh")].1, "the script keeps its exec bit");
}

#[tokio::test]
async fn skills_refused_installs_keep_the_previous_version_byte_identical() {
    let app = app().await;
    let md = skill_md("keep", "Version one.");
    let v1 = archive(&[
        file("SKILL.md", md.as_bytes()),
        entry("scripts/x.sh", b'0', b"#!/bin/sh\n", b"0000755", ""),
        file("data.bin", &[0, 1, 2, 255]),
    ]);
    assert_eq!(call(&app, put_tar("keep", v1, "application/x-tar", None)).await.status, StatusCode::CREATED);
    let folder = app.data.join("skills/keep");
    let before = snapshot(&folder);
    let detail_before = call(&app, get_req("/v1/skills/keep")).await.bytes;
    let refusals: Vec<Request<Body>> = vec![
        put_json("keep", json!({"files": {"SKILL.md": "---\nname: keep\n---\n"}})),
        put_json("keep", json!({"files": {"SKILL.md": skill_md("other", "x")}})),
        put_json("keep", json!({"files": {"SKILL.md": md, "../escape": "x"}})),
        put_json("keep", json!({"files": {"SKILL.md": md, "big": "x".repeat(MAX_FILE_BYTES + 1)}})),
        put_json("keep", json!({"files": {"SKILL.md": md}, "extra": true})),
        put_tar(
            "keep",
            archive(&[file("SKILL.md", md.as_bytes()), entry("l", b'2', b"", b"0000777", "/")]),
            "application/x-tar",
            None,
        ),
        put_tar("keep", b"garbage".repeat(200), "application/x-tar", None),
        put_tar("keep", vec![0u8; MAX_REQUEST_BYTES + 1], "application/x-tar", None),
    ];
    for req in refusals {
        let answer = call(&app, req).await;
        assert!(answer.status.is_client_error(), "{}: {}", answer.status, answer.json());
        assert_eq!(snapshot(&folder), before);
    }
    assert_eq!(call(&app, get_req("/v1/skills/keep")).await.bytes, detail_before);
    let names: Vec<String> = std::fs::read_dir(app.data.join("skills"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["keep"], "no staging folder left behind");
}
