//! `registry_untag` against the real distribution registry (2.x, which has no
//! DELETE by tag, so the placeholder method is what runs here).

mod common;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_registry_untag");

fn tags(reg: &Registry, repo: &str) -> Vec<String> {
    let body = reqwest::blocking::get(format!("http://{}/v2/{repo}/tags/list", reg.host))
        .unwrap()
        .text()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut t: Vec<String> = v["tags"]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    t.sort();
    t
}

fn manifest_status(reg: &Registry, repo: &str, reference: &str) -> u16 {
    reqwest::blocking::Client::new()
        .get(format!("http://{}/v2/{repo}/manifests/{reference}", reg.host))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn removes_a_tag_and_keeps_the_digest_and_its_other_tags() {
    let reg = Registry::start();
    let spec = labelled(&revision("a1b2c3d"), "shared", "2026-01-25T01:01:33Z");
    let d = push(&reg.repo("acme/web:a1b2c3d"), &spec);
    push(&reg.repo("acme/web:latest"), &spec);
    push(&reg.repo("acme/web:old"), &spec);
    let env = Env::new();

    let o = env.run(BIN, &[&reg.repo("acme/web:old")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "would untag {}; `{d}` keeps tags: a1b2c3d, latest\n\
             dry run: nothing changed; run again with --apply to remove these tags\n",
            reg.repo("acme/web:old")
        )
    );
    assert_eq!(
        tags(&reg, "acme/web"),
        ["a1b2c3d", "latest", "old"],
        "a dry run changes nothing"
    );

    let o = env.run(BIN, &[&reg.repo("acme/web:old"), "--apply"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!("untagged {} (re-pointed", reg.repo("acme/web:old"))),
        "{}",
        stdout(&o)
    );
    assert_eq!(tags(&reg, "acme/web"), ["a1b2c3d", "latest"]);
    assert_eq!(
        manifest_status(&reg, "acme/web", &d.to_string()),
        200,
        "the digest stays"
    );
    // A second opinion: the remaining tags still point to the digest.
    for t in ["a1b2c3d", "latest"] {
        let out = std::process::Command::new(skopeo())
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{}", reg.repo(&format!("acme/web:{t}"))))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), d.to_string());
    }
}

#[test]
fn the_last_tag_leaves_the_digest_untagged_but_present() {
    let reg = Registry::start();
    let d = push(
        &reg.repo("acme/web:only"),
        &labelled(&revision("0411111"), "only", "2026-01-25T01:01:33Z"),
    );
    push(
        &reg.repo("acme/web:other"),
        &labelled(&revision("0422222"), "other", "2026-01-25T01:01:33Z"),
    );
    let o = Env::new().run(BIN, &[&reg.repo("acme/web:only"), "--apply", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["digest"], d.to_string());
    assert_eq!(v[0]["remaining_tags"], serde_json::json!([]));
    assert_eq!(v[0]["method"], "placeholder");
    assert_eq!(v[0]["applied"], true);
    assert_eq!(tags(&reg, "acme/web"), ["other"]);
    assert_eq!(manifest_status(&reg, "acme/web", &d.to_string()), 200);
}

#[test]
fn missing_tags_and_bad_arguments() {
    let reg = Registry::start();
    push(
        &reg.repo("acme/web:v1"),
        &labelled(&revision("1111111"), "x", "2026-01-25T01:01:33Z"),
    );
    let env = Env::new();
    let o = env.run(BIN, &[&reg.repo("acme/web:nope"), "--apply"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(tags(&reg, "acme/web"), ["v1"]);
    let o = env.run(BIN, &[&reg.repo("acme/web")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not REGISTRY/REPO:TAG"), "{}", stderr(&o));
    let o = env.run(BIN, &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = env.run(BIN, &["acme/web:v1", "--apply"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("names no registry host"), "{}", stderr(&o));
}

/// Distribution 2.x refuses deletes unless `storage.delete.enabled`; the
/// untag must then fail without touching the tag, not leave it on the
/// placeholder manifest (found by an audit: it did).
#[test]
fn a_registry_without_deletes_keeps_the_tag_where_it_was() {
    let reg = Registry::start_without_delete();
    let d = push(
        &reg.repo("acme/web:v1"),
        &labelled(&revision("1111111"), "x", "2026-01-25T01:01:33Z"),
    );
    let o = Env::new().run(BIN, &[&reg.repo("acme/web:v1"), "--apply"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("storage.delete.enabled"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not support deleting manifests of `"),
        "names the operation, not the probe's digest: {}",
        stderr(&o)
    );
    assert_eq!(tags(&reg, "acme/web"), ["v1"]);
    let now = reqwest::blocking::Client::new()
        .head(format!("http://{}/v2/acme/web/manifests/v1", reg.host))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_eq!(
        now.headers()["docker-content-digest"].to_str().unwrap(),
        d.to_string(),
        "the tag moved"
    );
}
