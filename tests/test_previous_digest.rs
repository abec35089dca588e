//! `scripts/previous-digest`, which `task rollback -- WS REPO` (without a
//! target) runs with the venv's python to find the digest to go back to: run
//! as a subprocess on deploy state files (the format documented in
//! `src/deploy_state.rs`) written into a temporary directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{stderr, stdout, venv_tool};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/previous-digest");
const WS: &str = "dev";
const IMAGE: &str = "registry.rednaw.nl/rednaw/hello-world";
/// The repository the app was deployed from before.
const OLD_IMAGE: &str = "registry.rednaw.nl/rednaw/hello";
/// Another app's image in the same workspace.
const OTHER_IMAGE: &str = "registry.rednaw.nl/rednaw/hello-world-admin";
const USAGE: &str = "usage: previous-digest STATE_FILE IMAGE";
const NAME_TARGET_HINT: &str = "hint: name the TAG or DIGEST to roll back to: task rollback -- WS REPO TARGET";

/// The (realistic) digest of the image built from revision `rev`.
fn digest(rev: &str) -> String {
    let hash = Sha256::digest(format!("image built from {rev}").as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex.len(), 64);
    format!("sha256:{hex}")
}

/// A history entry of revision `rev` (tag `rev`), of the record's image.
fn h(rev: &str) -> Value {
    h_at(rev, "2026-01-20T10:00:00Z")
}

fn h_at(rev: &str, deployed_at: &str) -> Value {
    json!({"digest": digest(rev), "tag": rev, "deployed_at": deployed_at})
}

/// A history entry of revision `rev` with `"image": image`.
fn h_image(rev: &str, image: Value) -> Value {
    let mut e = h(rev);
    e["image"] = image;
    e
}

/// A record of `IMAGE` on `host` currently running revision `rev`.
fn record(host: &str, rev: &str, history: Vec<Value>) -> Value {
    record_of(IMAGE, host, rev, history)
}

fn record_of(image: &str, host: &str, rev: &str, history: Vec<Value>) -> Value {
    let app = image.rsplit('/').next().unwrap();
    json!({
        "host": host,
        "path": format!("/opt/rednaw/{app}/deploy-info.yml"),
        "app": app,
        "workspace": WS,
        "image": image,
        "tag": rev,
        "digest": digest(rev),
        "deployed_at": "2026-01-24T09:30:00Z",
        "history": history,
    })
}

/// A deploy state of workspace `WS` holding `records`.
fn state(records: Vec<Value>) -> Value {
    let mut hosts: Vec<&str> = records.iter().map(|r| r["host"].as_str().unwrap()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    json!({"workspace": WS, "collected_at": "2026-01-25T02:00:00Z", "hosts": hosts, "records": records})
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

/// Runs the script with the venv's python (as the Taskfile does).
fn run(args: &[&str]) -> Run {
    let o = Command::new(venv_tool("python"))
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        out: stdout(&o),
        err: stderr(&o),
    }
}

/// Writes `text` as a deploy state file and runs the script on it for `image`.
fn run_text(text: &str, image: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(WS).join("deploy-state.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    run(&[path.to_str().unwrap(), image])
}

fn run_state(state: &Value, image: &str) -> Run {
    run_text(&serde_json::to_string_pretty(state).unwrap(), image)
}

/// The script printed `rev`'s digest (and only that) and exited 0.
fn assert_prints(r: &Run, rev: &str) {
    assert_eq!(r.code, 0, "exit {}; stderr:\n{}", r.code, r.err);
    assert_eq!(r.out, format!("{}\n", digest(rev)), "stderr:\n{}", r.err);
    assert!(
        r.err.starts_with(&format!("rollback: {WS} runs {IMAGE}@sha256:")),
        "stderr:\n{}",
        r.err
    );
}

/// The script failed with exit 1, printing nothing on stdout and one error
/// line with a hint on stderr containing every one of `parts`.
fn assert_fails(r: &Run, parts: &[&str]) {
    assert_eq!(r.code, 1, "exit {}; stdout:\n{}\nstderr:\n{}", r.code, r.out, r.err);
    assert_eq!(r.out, "", "stderr:\n{}", r.err);
    assert!(r.err.starts_with("previous-digest: error: "), "stderr:\n{}", r.err);
    assert!(r.err.contains("; hint: "), "stderr:\n{}", r.err);
    assert_eq!(r.err.lines().count(), 1, "one line (no traceback); stderr:\n{}", r.err);
    for p in parts {
        assert!(r.err.contains(p), "stderr lacks {p:?}:\n{}", r.err);
    }
}

#[test]
fn digests_are_realistic_and_distinct() {
    let a = digest("a1b2c3d");
    assert!(a.starts_with("sha256:"));
    assert_eq!(a.len(), "sha256:".len() + 64);
    assert!(
        a["sha256:".len()..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_ne!(a, digest("e4f5a6b"));
}

#[test]
fn one_host_prints_the_digest_deployed_before_the_current_one() {
    let history = vec![
        h_at("1111aaa", "2026-01-10T08:00:00Z"),
        h_at("2222bbb", "2026-01-17T08:00:00Z"),
        h_at("3333ccc", "2026-01-24T09:30:00Z"),
    ];
    let r = run_state(&state(vec![record("web1", "3333ccc", history)]), IMAGE);
    assert_prints(&r, "2222bbb");
    // What it is, on stderr: the current digest, and the tag, digest and
    // time of the previous deploy.
    assert_eq!(
        r.err,
        format!(
            "rollback: {WS} runs {IMAGE}@{}; previous deploy was tag 2222bbb {} at 2026-01-17T08:00:00Z\n",
            digest("3333ccc"),
            digest("2222bbb")
        )
    );
}

#[test]
fn the_newest_history_entry_that_differs_from_the_current_digest_wins() {
    // The current digest last in the history, and repeated: skipped.
    let history = vec![h("1111aaa"), h("2222bbb"), h("2222bbb"), h("3333ccc"), h("3333ccc")];
    assert_prints(
        &run_state(&state(vec![record("web1", "3333ccc", history)]), IMAGE),
        "2222bbb",
    );

    // Not the oldest differing one, nor the first one after the current
    // digest's first deploy: the newest.
    let history = vec![h("1111aaa"), h("3333ccc"), h("2222bbb"), h("3333ccc")];
    assert_prints(
        &run_state(&state(vec![record("web1", "3333ccc", history)]), IMAGE),
        "2222bbb",
    );

    // After a rollback to 1111aaa (its digest deployed again), the next
    // rollback goes to what was rolled back from.
    let history = vec![h("1111aaa"), h("2222bbb"), h("1111aaa")];
    assert_prints(
        &run_state(&state(vec![record("web1", "1111aaa", history)]), IMAGE),
        "2222bbb",
    );

    // The current deploy not (yet) in the history.
    let history = vec![h("1111aaa"), h("2222bbb")];
    assert_prints(
        &run_state(&state(vec![record("web1", "3333ccc", history)]), IMAGE),
        "2222bbb",
    );
}

#[test]
fn history_entries_of_another_repository_are_skipped_even_when_newer() {
    // The app came from OLD_IMAGE: its digests there are no rollback target
    // of IMAGE, however recent.
    let history = vec![
        h("1111aaa"),
        h_image("2222bbb", json!(OLD_IMAGE)),
        h_image("4444ddd", json!(OLD_IMAGE)),
        h("3333ccc"),
    ];
    assert_prints(
        &run_state(&state(vec![record("web1", "3333ccc", history)]), IMAGE),
        "1111aaa",
    );

    // An entry naming the record's own image counts.
    let history = vec![
        h("1111aaa"),
        h_image("2222bbb", json!(IMAGE)),
        h_image("4444ddd", json!(OLD_IMAGE)),
    ];
    assert_prints(
        &run_state(&state(vec![record("web1", "3333ccc", history)]), IMAGE),
        "2222bbb",
    );

    // Only other repositories' digests besides the current one: nothing to
    // roll back to.
    let history = vec![
        h_image("1111aaa", json!(OLD_IMAGE)),
        h_image("2222bbb", json!(OLD_IMAGE)),
    ];
    let r = run_state(&state(vec![record("web1", "3333ccc", history)]), IMAGE);
    assert_fails(
        &r,
        &[&format!(
            "host web1 has no earlier deploy of {IMAGE} than {}",
            digest("3333ccc")
        )],
    );
}

#[test]
fn history_entries_with_null_or_empty_image_are_the_records_own() {
    let history = vec![
        h("1111aaa"),
        h_image("2222bbb", Value::Null),
        h_image("4444ddd", json!(OLD_IMAGE)),
        h_image("3333ccc", json!("")),
    ];
    assert_prints(
        &run_state(&state(vec![record("web1", "3333ccc", history)]), IMAGE),
        "2222bbb",
    );

    let history = vec![
        h("1111aaa"),
        h_image("2222bbb", Value::Null),
        h_image("5555eee", json!("")),
        h_image("4444ddd", json!(OLD_IMAGE)),
    ];
    assert_prints(
        &run_state(&state(vec![record("web1", "3333ccc", history)]), IMAGE),
        "5555eee",
    );
}

#[test]
fn hosts_running_the_same_digest_with_the_same_previous_agree() {
    let r = run_state(
        &state(vec![
            record("web1", "3333ccc", vec![h("1111aaa"), h("2222bbb"), h("3333ccc")]),
            // A shorter history (a newer host), the same previous digest.
            record("web2", "3333ccc", vec![h("2222bbb"), h("3333ccc")]),
        ]),
        IMAGE,
    );
    assert_prints(&r, "2222bbb");
}

#[test]
fn hosts_that_disagree_on_the_previous_digest_fail() {
    let r = run_state(
        &state(vec![
            record("web1", "3333ccc", vec![h("1111aaa"), h("2222bbb"), h("3333ccc")]),
            record("web2", "3333ccc", vec![h("1111aaa"), h("3333ccc")]),
        ]),
        IMAGE,
    );
    assert_fails(
        &r,
        &[
            &format!("hosts of workspace {WS} disagree on the previous deploy of {IMAGE}: "),
            &format!("web1 had {}", digest("2222bbb")),
            &format!("web2 had {}", digest("1111aaa")),
            NAME_TARGET_HINT,
        ],
    );
}

#[test]
fn hosts_running_different_digests_fail_naming_both() {
    let r = run_state(
        &state(vec![
            record("web1", "3333ccc", vec![h("1111aaa"), h("2222bbb"), h("3333ccc")]),
            record("web2", "2222bbb", vec![h("1111aaa"), h("2222bbb")]),
        ]),
        IMAGE,
    );
    assert_fails(
        &r,
        &[
            &format!("hosts of workspace {WS} run different digests of {IMAGE}: "),
            &format!("web1 runs {}", digest("3333ccc")),
            &format!("web2 runs {}", digest("2222bbb")),
            NAME_TARGET_HINT,
        ],
    );
}

#[test]
fn records_of_other_images_are_ignored() {
    let r = run_state(
        &state(vec![
            // Another app on the same host, running something else, with
            // nothing to roll back to.
            record_of(OTHER_IMAGE, "web1", "9999fff", vec![]),
            record("web1", "3333ccc", vec![h("2222bbb"), h("3333ccc")]),
            // The same repository from another registry, another digest.
            record_of("ghcr.io/rednaw/hello-world", "web2", "8888eee", vec![h("7777ddd")]),
            // The app's old repository, on a host still running it.
            record_of(OLD_IMAGE, "web3", "4444ddd", vec![h("1111aaa")]),
        ]),
        IMAGE,
    );
    assert_prints(&r, "2222bbb");

    // And asked for the other image, IMAGE's records are the ignored ones.
    let r = run_state(
        &state(vec![
            record("web1", "3333ccc", vec![]),
            record_of(OLD_IMAGE, "web3", "4444ddd", vec![h("1111aaa"), h("4444ddd")]),
        ]),
        OLD_IMAGE,
    );
    assert_eq!(r.code, 0, "stderr:\n{}", r.err);
    assert_eq!(r.out, format!("{}\n", digest("1111aaa")));
}

#[test]
fn no_record_of_the_image_fails() {
    let expected = format!("no host of workspace {WS} has a deploy of {IMAGE} recorded");
    let r = run_state(
        &state(vec![record_of(OTHER_IMAGE, "web1", "3333ccc", vec![h("2222bbb")])]),
        IMAGE,
    );
    assert_fails(&r, &[&expected, "hint: nothing to roll back from"]);

    // No records at all.
    assert_fails(&run_state(&state(vec![]), IMAGE), &[&expected]);

    // A repository given without its registry is not the image.
    let r = run_state(
        &state(vec![record("web1", "3333ccc", vec![h("2222bbb")])]),
        "rednaw/hello-world",
    );
    assert_fails(&r, &["has a deploy of rednaw/hello-world recorded"]);
}

#[test]
fn no_earlier_digest_fails() {
    let expected = format!("host web1 has no earlier deploy of {IMAGE} than {}", digest("3333ccc"));
    for history in [
        json!([]),
        json!(null),
        json!([h("3333ccc")]),
        json!([h("3333ccc"), h("3333ccc")]),
    ] {
        let mut rec = record("web1", "3333ccc", vec![]);
        rec["history"] = history.clone();
        let r = run_state(&state(vec![rec]), IMAGE);
        assert_fails(&r, &[&expected, NAME_TARGET_HINT]);
    }
    // No history key at all.
    let mut rec = record("web1", "3333ccc", vec![]);
    rec.as_object_mut().unwrap().remove("history");
    assert_fails(&run_state(&state(vec![rec]), IMAGE), &[&expected]);

    // One host of two without one: that host is named.
    let r = run_state(
        &state(vec![
            record("web1", "3333ccc", vec![h("2222bbb"), h("3333ccc")]),
            record("web2", "3333ccc", vec![h("3333ccc")]),
        ]),
        IMAGE,
    );
    assert_fails(
        &r,
        &[&format!(
            "host web2 has no earlier deploy of {IMAGE} than {}",
            digest("3333ccc")
        )],
    );
}

#[test]
fn an_unreadable_or_invalid_state_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let check = |path: &Path| {
        let r = run(&[path.to_str().unwrap(), IMAGE]);
        assert_fails(
            &r,
            &[
                &format!("cannot read deploy state file `{}`", path.display()),
                "hint: collect it first: task collect -- WS",
            ],
        );
    };

    // Missing.
    check(&dir.path().join("nonexistent/deploy-state.json"));
    // A directory.
    check(dir.path());
    // Not JSON, truncated JSON, empty.
    for (name, bytes) in [
        ("yaml.json", &b"workspace: dev\nrecords: []\n"[..]),
        ("truncated.json", &br#"{"workspace": "dev", "records": [{"host": "#[..]),
        ("empty.json", &b""[..]),
    ] {
        let path: PathBuf = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        check(&path);
    }
}

/// JSON of the wrong shape (not written by the playbook) is refused with
/// one line naming what is wrong, never a traceback.
#[test]
fn json_that_is_not_a_deploy_state_is_refused_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy-state.json");
    let d = digest("1111aaa");
    for (text, says) in [
        ("[]".to_string(), "not a JSON object"),
        (r#"{"workspace": "dev"}"#.to_string(), "no `records` list"),
        (r#"{"records": {"host": "web1"}}"#.to_string(), "no `records` list"),
        (r#"{"records": [7]}"#.to_string(), "records[0] is not an object"),
        (
            format!(r#"{{"records": [{{"image": "{IMAGE}", "digest": "{d}"}}]}}"#),
            "records[0] has no `host`",
        ),
        (
            format!(r#"{{"records": [{{"host": "web1", "image": "{IMAGE}"}}]}}"#),
            "records[0] has no `digest`",
        ),
        (
            format!(r#"{{"records": [{{"host": "web1", "digest": "{d}"}}]}}"#),
            "records[0] has no `image`",
        ),
        (
            format!(r#"{{"records": [{{"host": "web1", "image": "{IMAGE}", "digest": "{d}", "history": {{}}}}]}}"#),
            "records[0].history is not a list",
        ),
        (
            format!(r#"{{"records": [{{"host": "web1", "image": "{IMAGE}", "digest": "{d}", "history": ["x"]}}]}}"#),
            "records[0].history[0] is not an object",
        ),
        (
            format!(
                r#"{{"records": [{{"host": "web1", "image": "{IMAGE}", "digest": "{d}", "history": [{{"image": 1}}]}}]}}"#
            ),
            "records[0].history[0].image is not a string",
        ),
        (
            format!(r#"{{"records": [{{"host": "web1", "image": "{IMAGE}", "digest": "v1"}}]}}"#),
            "records[0].digest `v1` is not a digest",
        ),
        (
            format!(
                r#"{{"records": [{{"host": "web1", "image": "{IMAGE}", "digest": "{d}", "history": [{{"digest": "v0"}}]}}]}}"#
            ),
            "records[0].history[0].digest `v0` is not a digest",
        ),
        (
            format!(
                r#"{{"records": [{{"host": "web1", "image": "{IMAGE}", "digest": "{d}", "history": [{{"digest": ["x"]}}]}}]}}"#
            ),
            "records[0].history[0].digest `['x']` is not a digest",
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        let r = run(&[path.to_str().unwrap(), IMAGE]);
        assert_fails(
            &r,
            &[
                &format!("deploy state file `{}` is not a deploy state: {says}", path.display()),
                "hint: collect it again: task collect -- WS",
            ],
        );
    }
}

#[test]
fn a_wrong_argument_count_prints_usage_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy-state.json");
    std::fs::write(&path, serde_json::to_string(&state(vec![])).unwrap()).unwrap();
    let p = path.to_str().unwrap();
    for args in [&[][..], &[p][..], &[p, IMAGE, "extra"][..]] {
        let r = run(args);
        assert_eq!(r.code, 2, "args {args:?}; stderr:\n{}", r.err);
        assert_eq!(r.out, "", "args {args:?}");
        assert_eq!(r.err, format!("{USAGE}\n"), "args {args:?}");
    }
}
