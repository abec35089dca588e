//! `registry_untag` against the real distribution registry (2.x, which has no
//! DELETE by tag, so the placeholder method is what runs here).

mod common;

use std::collections::BTreeMap;

use common::*;
use image_lifecycle::fixture::ImageSpec;
use image_lifecycle::image::Platform;

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

/// `--protected`: the last tag of a digest a host runs, or may roll back
/// to, is not removed (exit 2, nothing changed, dry run or not); the same
/// untag with another tag left on the digest, or of a digest no record
/// names, goes ahead. Tags are taken in order: removing two tags of one
/// deployed digest is refused at the second.
#[test]
fn protected_state_keeps_a_tag_on_what_hosts_run_or_may_roll_back_to() {
    let reg = Registry::start();
    let spec = |rev: &str, what: &str| labelled(&revision(rev), what, "2026-01-25T01:01:33Z");
    let running = push(&reg.repo("acme/web:0511111"), &spec("0511111", "running"));
    push(&reg.repo("acme/web:stable"), &spec("0511111", "running"));
    let previous = push(&reg.repo("acme/web:0522222"), &spec("0522222", "previous"));
    push(&reg.repo("acme/web:0533333"), &spec("0533333", "unused"));
    let env = Env::new();
    let image = reg.repo("acme/web");
    let state = env.home.path().join("dev.json");
    std::fs::write(
        &state,
        serde_json::json!({"workspace": "dev", "collected_at": "2026-01-25T02:00:00Z", "hosts": ["web1"],
            "records": [{"host": "web1", "path": "/opt/acme/web/deploy-info.yml", "app": "web", "workspace": "dev",
                "image": image, "tag": "0511111", "digest": running.to_string(),
                "history": [{"digest": previous.to_string(), "tag": "0522222"},
                            {"digest": running.to_string(), "tag": "0511111"}]}]})
        .to_string(),
    )
    .unwrap();
    let state = state.to_str().unwrap();
    let all = ["0511111", "0522222", "0533333", "stable"];

    for (tags_given, refused_at, at) in [
        (vec!["0522222"], "0522222", "rollback target on dev/web1 (web)"),
        (vec!["stable", "0511111"], "0511111", "deployed on dev/web1 (web)"),
    ] {
        for apply in [false, true] {
            let mut args: Vec<String> = tags_given.iter().map(|t| format!("{image}:{t}")).collect();
            args.extend(["--protected".into(), state.into()]);
            if apply {
                args.push("--apply".into());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = env.run(BIN, &args);
            let err = stderr(&o);
            assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(2), ""), "{err}");
            let digest = if refused_at == "0522222" { &previous } else { &running };
            assert!(
                err.starts_with(&format!(
                    "error: refusing to untag `{image}:{refused_at}`: it is the last tag of `{digest}`, which is {at}"
                )),
                "{err}"
            );
            assert!(
                err.contains("hint: keep a tag on what hosts run or may roll back to"),
                "{err}"
            );
            assert_eq!(tags(&reg, "acme/web"), all, "nothing changed");
        }
    }

    // Another tag stays on the running digest; a digest nobody deployed.
    let o = env.run(
        BIN,
        &[
            &format!("{image}:stable"),
            &format!("{image}:0533333"),
            "--protected",
            state,
            "--apply",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(tags(&reg, "acme/web"), ["0511111", "0522222"]);
    // Without deploy state, untagging is not checked against it.
    let o = env.run(BIN, &[&format!("{image}:0522222"), "--apply"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(tags(&reg, "acme/web"), ["0511111"]);
}

/// `--protected` also keeps the last tag of an index whose platform image
/// a host runs (deployed by that image's digest), and matches records that
/// name the registry another way (`localhost:PORT` for `127.0.0.1:PORT`);
/// deploy state naming nothing of this registry is a warning.
#[test]
fn protected_state_reaches_platform_images_and_other_names_of_the_registry() {
    let reg = Registry::start();
    let rev = revision("0611111");
    let amd = ImageSpec {
        platform: Platform::default(),
        ..labelled(&rev, "amd64", "2026-03-01T00:00:00Z")
    };
    let arm = ImageSpec {
        platform: "linux/arm64".parse().unwrap(),
        ..labelled(&rev, "arm64", "2026-03-01T00:00:00Z")
    };
    let index = push_multi(&reg.repo("acme/multi:0611111"), &[arm, amd], &BTreeMap::new());
    let body: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("http://{}/v2/acme/multi/manifests/{index}", reg.host))
        .header("Accept", "application/vnd.oci.image.index.v1+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let child = body["manifests"][1]["digest"].as_str().unwrap().to_string();
    let port = reg.host.rsplit_once(':').unwrap().1;
    let env = Env::new();
    let write_state = |name: &str, image: String, digest: &str| state_running(&env, name, &image, digest);
    let state = write_state("dev.json", format!("localhost:{port}/acme/multi"), &child);
    refused_for_platform_image(&env, &reg.repo("acme/multi:0611111"), &state, &index, &child);
    assert_eq!(tags(&reg, "acme/multi"), ["0611111"]);

    let elsewhere = write_state("other.json", "registry.example.com/acme/api".into(), &child);
    let o = env.run(
        BIN,
        &[
            &reg.repo("acme/multi:0611111"),
            "--protected",
            elsewhere.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "warning: the deploy state given names nothing in `{}`: it protects only what its records name by \
             repository (the wrong workspaces?)\n",
            reg.host
        )
    );

    // A rollback target in this registry (the app moved away from it)
    // counts as naming it: no warning.
    let moved = env.home.path().join("moved.json");
    let state = serde_json::json!({"workspace": "dev", "hosts": ["web1"], "records": [{"host": "web1",
        "app": "web", "workspace": "dev", "image": "registry.example.com/acme/api", "digest": child,
        "history": [{"digest": index, "image": format!("{}/acme/old-name", reg.host),
                     "deployed_at": "2026-01-25T01:01:33Z"}]}]});
    std::fs::write(&moved, state.to_string()).unwrap();
    let o = env.run(
        BIN,
        &[&reg.repo("acme/multi:0611111"), "--protected", moved.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
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

/// `--protected` follows an index in an index down to the platform image a
/// host runs; an index nested deeper than the scan reads
/// (`MAX_INDEX_DEPTH`) is refused, since what it holds is unknown.
#[test]
fn protected_state_follows_indexes_in_indexes_to_their_bound() {
    let reg = Registry::start();
    let amd = ImageSpec {
        platform: Platform::default(),
        ..labelled(&revision("0811111"), "amd64", "2026-03-01T00:00:00Z")
    };
    let (outer, inner) = push_nested(&reg.repo("acme/nest:0811111"), std::slice::from_ref(&amd));
    let body: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("http://{}/v2/acme/nest/manifests/{inner}", reg.host))
        .header("Accept", image_lifecycle::registry::MEDIA_OCI_INDEX)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let platform_image = body["manifests"][0]["digest"].as_str().unwrap().to_string();
    let env = Env::new();
    let state = state_running(&env, "dev.json", &reg.repo("acme/nest"), &platform_image);
    refused_for_platform_image(&env, &reg.repo("acme/nest:0811111"), &state, &outer, &platform_image);
    assert_eq!(tags(&reg, "acme/nest"), ["0811111"]);

    // One index more than the bound above the one that holds the image.
    let holder = push_multi(&reg.repo("acme/deep"), std::slice::from_ref(&amd), &BTreeMap::new());
    push_chain(
        &reg.repo("acme/deep:0811111"),
        &holder,
        image_lifecycle::image::MAX_INDEX_DEPTH + 1,
    );
    let o = env.run(
        BIN,
        &[
            &reg.repo("acme/deep:0811111"),
            "--apply",
            "--protected",
            state.to_str().unwrap(),
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("indexes nested more than 4 deep"), "{err}");
    assert_eq!(tags(&reg, "acme/deep"), ["0811111"]);
}

/// Deploy state `name` in `env`'s home: host web1 of dev runs app `web` at
/// `digest` of `image`.
fn state_running(env: &Env, name: &str, image: &str, digest: &str) -> std::path::PathBuf {
    let path = env.home.path().join(name);
    let state = serde_json::json!({"workspace": "dev", "hosts": ["web1"], "records": [{"host": "web1",
        "app": "web", "workspace": "dev", "image": image, "digest": digest}]});
    std::fs::write(&path, state.to_string()).unwrap();
    path
}

/// `registry_untag REFERENCE --apply --protected STATE` is refused (exit 2)
/// because the last tag of `index` goes and web1 runs its `platform_image`.
fn refused_for_platform_image(
    env: &Env,
    reference: &str,
    state: &std::path::Path,
    index: &impl std::fmt::Display,
    platform_image: &str,
) {
    let o = env.run(BIN, &[reference, "--apply", "--protected", state.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(&format!(
            "error: refusing to untag `{reference}`: it is the last tag of `{index}`, which is deployed on \
             dev/web1 (web) (its platform image `{platform_image}`)"
        )),
        "{err}"
    );
}
