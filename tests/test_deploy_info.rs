//! `deploy_info`: through real `ansible-playbook` on localhost, and by
//! running the module binary directly for files Ansible cannot easily make
//! (sparse giants, invalid UTF-8).

mod common;
#[path = "ansible/harness.rs"]
mod harness;

use std::fs;

use harness::{IMAGE, READ_BIN, WRITE_BIN, Workdir, digest};
use serde_json::json;

/// Records under the root, written by the real writer: acme/web (digest 1
/// then 2), acme/api (3), other/web (4); plus a malformed broken/app and
/// directories that are not apps.
fn populate(w: &Workdir) {
    for (org, app, d, at) in [
        ("acme", "web", '1', "2026-01-24T00:00:00Z"),
        ("acme", "web", '2', "2026-01-25T01:10:00Z"),
        ("acme", "api", '3', "2026-01-25T01:10:00Z"),
        ("other", "web", '4', "2026-01-25T01:10:00Z"),
    ] {
        let mut args = w.write_args(&digest(d));
        args["org"] = json!(org);
        args["app"] = json!(app);
        args["deployed_at"] = json!(at);
        w.module(WRITE_BIN, &args).assert_ok();
    }
    let root = w.root();
    fs::create_dir_all(root.join("broken/app")).unwrap();
    fs::write(root.join("broken/app/deploy-info.yml"), "app: [unclosed\n").unwrap();
    fs::create_dir_all(root.join("containerd/bin")).unwrap();
    fs::write(root.join("containerd/bin/containerd"), "").unwrap();
    fs::create_dir_all(root.join(".hidden/app")).unwrap();
    fs::write(root.join(".hidden/app/deploy-info.yml"), "not: read\n").unwrap();
    fs::write(root.join("stray-file"), "").unwrap();
}

#[test]
fn playbook_lists_filters_history_and_strictness() {
    let w = Workdir::new();
    populate(&w);
    let vars = json!({
        "deploy_root": w.root(),
        "digest_1": digest('1'), "digest_2": digest('2'), "digest_3": digest('3'), "digest_4": digest('4'),
        "broken_path": w.root().join("broken/app/deploy-info.yml"),
    });
    let run = w.playbook("deploy_info.yml", &vars);
    run.assert_ok();
    assert!(run.stdout.contains("changed=0 "), "{}", run.stdout);
}

#[test]
fn direct_result_is_the_exact_record_with_path_and_history() {
    let w = Workdir::new();
    let mut args = w.write_args(&digest('a'));
    args["description"] = json!("add healthcheck");
    args["deployed_by"] = json!("wander@casa");
    w.module(WRITE_BIN, &args).assert_ok();
    let path = w.root().join("rednaw/hello-world/deploy-info.yml");
    let record = json!({
        "app": "hello-world", "workspace": "dev", "image": IMAGE, "tag": "eb53023",
        "digest": digest('a'), "description": "add healthcheck", "deployed_at": "2026-01-25T01:10:00Z",
        "deployed_by": "wander@casa", "built_at": null, "revision": null, "source": null,
    });
    let mut expected = record.clone();
    expected["path"] = json!(path);
    expected["history"] = json!([record]);
    for check_mode in [true, false] {
        let run = w.module(READ_BIN, &json!({"root": w.root(), "_ansible_check_mode": check_mode}));
        run.assert_ok();
        assert_eq!(run.result, json!({"changed": false, "deploy_info": [expected]}));
    }
}

#[test]
fn direct_oversized_and_binary_files_fail_naming_the_file() {
    let w = Workdir::new();
    w.module(WRITE_BIN, &w.write_args(&digest('a'))).assert_ok();
    let record = w.root().join("rednaw/hello-world/deploy-info.yml");
    let history = w.root().join("rednaw/hello-world/deploy-history.yml");

    // A 17 MiB (sparse) history: refused without being read.
    fs::File::create(&history).unwrap().set_len(17 * 1024 * 1024).unwrap();
    let run = w.module(READ_BIN, &json!({"root": w.root()}));
    run.assert_failed_with(&format!(
        "`{}` is larger than 16777216 bytes; refusing to read it",
        history.display()
    ));
    assert_eq!(run.result["path"], json!(history));
    w.module(READ_BIN, &json!({"root": w.root(), "history": false}))
        .assert_ok();
    // The writer refuses to build on it too, and leaves both files alone.
    let before = fs::read_to_string(&record).unwrap();
    w.module(WRITE_BIN, &w.write_args(&digest('b')))
        .assert_failed_with("is larger than");
    assert_eq!(fs::read_to_string(&record).unwrap(), before);
    assert_eq!(fs::metadata(&history).unwrap().len(), 17 * 1024 * 1024);
    fs::remove_file(&history).unwrap();

    fs::write(&record, b"app: \xff\xfe\n").unwrap();
    let run = w.module(READ_BIN, &json!({"root": w.root()}));
    run.assert_failed_with(&format!(
        "`{}` is not a valid deploy-info file: not UTF-8 text",
        record.display()
    ));
    let run = w.module(READ_BIN, &json!({"root": w.root(), "strict": "no"}));
    run.assert_ok();
    assert_eq!(run.result["deploy_info"], json!([]));
    assert_eq!(run.result["warnings"].as_array().unwrap().len(), 1);

    fs::remove_file(&record).unwrap();
    fs::create_dir(&record).unwrap();
    w.module(READ_BIN, &json!({"root": w.root()}))
        .assert_failed_with("deploy-info.yml` is not a regular file");
}

#[test]
fn direct_hostile_args_fail_cleanly() {
    let w = Workdir::new();
    for (args, needle) in [
        (json!({"org": "../etc"}), "argument `org`"),
        (json!({"app": ".."}), "argument `app`"),
        (json!({"root": "opt"}), "argument `root`"),
        (json!({"path": "deploy-info.yml"}), "argument `path`"),
        (json!({"strict": "sometimes"}), "argument `strict` must be a boolean"),
        (json!({"history": 2}), "argument `history` must be a boolean"),
        (json!({"roots": "/opt"}), "unsupported argument `roots`"),
    ] {
        w.module(READ_BIN, &args).assert_failed_with(needle);
    }
    let file = w.path().join("args.txt");
    fs::write(&file, "root=/opt").unwrap();
    let out = std::process::Command::new(READ_BIN).arg(&file).output().unwrap();
    harness::module_output(out).assert_failed_with("is not a JSON object");
    let out = std::process::Command::new(READ_BIN)
        .arg(w.path().join("missing"))
        .output()
        .unwrap();
    harness::module_output(out).assert_failed_with("cannot read the module arguments file");
}
