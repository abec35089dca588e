//! `write_deploy_info`: through real `ansible-playbook` on localhost, and by
//! running the module binary directly where Ansible would only get in the
//! way (broken args files, crashes, races).

mod common;
#[path = "ansible/harness.rs"]
mod harness;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Instant;

use harness::{IMAGE, READ_BIN, WRITE_BIN, Workdir, as_list_item, digest, module_output, tree, venv_tool};
use serde_json::{Value, json};

fn expected_a(d: &str) -> String {
    format!(
        "app: hello-world\nworkspace: dev\nimage: registry.rednaw.nl/rednaw/hello-world\ntag: eb53023\n\
         digest: {d}\ndescription: add healthcheck + fix nginx proxy header\ndeployed_at: \"2026-01-25T01:10:00Z\"\n\
         deployed_by: wander@casa\nbuilt_at: \"2026-01-25T01:01:33Z\"\nrevision: eb53023c8f4d9b1e2a7f6c5d4e3b2a1f0e9d8c7b\n\
         source: https://github.com/rednaw/hello-world\n"
    )
}

fn expected_b(d: &str) -> String {
    format!(
        "app: hello-world\nworkspace: dev\nimage: registry.rednaw.nl/rednaw/hello-world\ntag: \"6350192\"\n\
         digest: {d}\ndescription: version 0.0.2\ndeployed_at: \"2026-01-26T00:00:00Z\"\n\
         deployed_by: null\nbuilt_at: null\nrevision: null\nsource: null\n"
    )
}

fn expected_c(d: &str, deployed_at: &str) -> String {
    format!(
        "app: hello-world\nworkspace: dev\nimage: registry.rednaw.nl/rednaw/hello-world\ntag: null\n\
         digest: {d}\ndescription: null\ndeployed_at: \"{deployed_at}\"\n\
         deployed_by: null\nbuilt_at: null\nrevision: null\nsource: null\n"
    )
}

#[test]
fn playbook_check_run_idempotent_history_force() {
    let w = Workdir::new();
    let (a, b, c) = (digest('a'), digest('b'), digest('c'));
    let vars = json!({
        "deploy_root": w.root(), "digest_a": a, "digest_b": b, "digest_c": c,
        "expected_a": expected_a(&a), "expected_b": expected_b(&b),
    });
    w.playbook("write_deploy_info.yml", &vars).assert_ok();

    let app = w.root().join("rednaw/hello-world");
    let c_forced = expected_c(&c, "2026-01-28T00:00:00Z");
    assert_eq!(fs::read_to_string(app.join("deploy-info.yml")).unwrap(), c_forced);
    assert_eq!(
        fs::read_to_string(app.join("deploy-history.yml")).unwrap(),
        as_list_item(&expected_c(&c, "2026-01-27T00:00:00Z")) + &as_list_item(&c_forced)
    );
    let mode = |p: &str| fs::metadata(w.root().join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("rednaw/hello-world/deploy-info.yml"), 0o644);
    assert_eq!(mode("rednaw/hello-world"), 0o755);
    assert_eq!(mode("explicit/deploy-info.yml"), 0o600);
    assert_eq!(
        tree(&w.root()),
        [
            "explicit",
            "explicit/deploy-info.yml",
            "rednaw",
            "rednaw/hello-world",
            "rednaw/hello-world/deploy-history.yml",
            "rednaw/hello-world/deploy-info.yml",
        ]
    );
}

#[test]
fn playbook_hostile_arguments_fail_and_write_nothing() {
    let w = Workdir::new();
    let run = w.playbook(
        "write_deploy_info_hostile.yml",
        &json!({"deploy_root": w.root(), "digest_a": digest('a')}),
    );
    run.assert_ok();
    // 22 refused in the loop, one unknown argument, one read traversal.
    assert!(run.stdout.contains("ok=4 "), "{}", run.stdout);
    assert!(!w.root().exists());
    assert!(tree(&w.path().join("etc")).is_empty());
}

/// Texts a commit subject can hold that trip up naive YAML writers.
fn hostile_texts() -> Vec<String> {
    let mut big = String::new();
    while big.len() < 300 * 1024 {
        big.push_str("line with \"quotes\", 'single', key: value, $HOME, `id`, ünïcødé 🚀 # not a comment\n");
    }
    vec![
        "plain".into(),
        "\"double\" and 'single' quotes".into(),
        "key: value: more".into(),
        "first line\nsecond line\n\nfourth\n".into(),
        "no final newline\nend".into(),
        "$HOME ${PATH} $(reboot) `rm -rf /`".into(),
        "ünïcødé — 日本語 — 🚀 — \u{200b}zero width".into(),
        "- looks like a list".into(),
        "# looks like a comment".into(),
        "&anchor *alias !!tag %directive".into(),
        "---".into(),
        "".into(),
        "  leading and trailing spaces  ".into(),
        "tab\tand\rcarriage return\r\n".into(),
        "yes".into(),
        "null".into(),
        "0123".into(),
        "2026-01-25T01:10:00Z".into(),
        // What YAML 1.1 readers (PyYAML, Ansible's from_yaml) take for
        // booleans, numbers and dates when plain.
        "on".into(),
        "No".into(),
        "12:30:00".into(),
        "2026-01-25".into(),
        "12e4567".into(),
        "1_234".into(),
        "~".into(),
        big,
    ]
}

#[test]
fn playbook_descriptions_round_trip_exactly() {
    let w = Workdir::new();
    let texts = hostile_texts();
    let mut by_path: Vec<(String, &String)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("text-{i}"), t))
        .collect();
    by_path.sort();
    let (apps_by_path, descriptions_by_path): (Vec<_>, Vec<_>) = by_path.into_iter().unzip();
    let vars = json!({"deploy_root": w.root(), "digest_a": digest('a'), "descriptions": texts,
                      "apps_by_path": apps_by_path, "descriptions_by_path": descriptions_by_path});
    w.playbook("round_trip.yml", &vars).assert_ok();
    // And once more without Ansible in between, through the files.
    let read = w.module(READ_BIN, &json!({"root": w.root(), "org": "texts"}));
    read.assert_ok();
    let records = read.result["deploy_info"].as_array().unwrap();
    assert_eq!(records.len(), texts.len());
    for r in records {
        let n: usize = r["app"].as_str().unwrap()["text-".len()..].parse().unwrap();
        assert_eq!(r["description"], Value::String(texts[n].clone()), "text-{n}");
        assert_eq!(
            r["history"][0]["description"],
            Value::String(texts[n].clone()),
            "text-{n} history"
        );
    }
}

#[test]
fn direct_texts_beyond_ansible_round_trip() {
    // Texts Ansible would template or refuse, straight to the binary.
    let w = Workdir::new();
    let texts = [
        "{{ lookup('pipe', 'id') }}",
        "{% raw %}",
        "nul\0byte",
        "\u{1b}[31mred",
        "\u{feff}bom \u{85}nel \u{2028}ls \u{2029}ps",
        "\u{7f}del \u{9b}csi \u{fffe}",
    ];
    for (i, t) in texts.iter().enumerate() {
        let mut args = w.write_args(&digest('a'));
        args["app"] = json!(format!("t{i}"));
        args["description"] = json!(t);
        w.module(WRITE_BIN, &args).assert_ok();
        let read = w.module(
            READ_BIN,
            &json!({"root": w.root(), "org": "rednaw", "app": format!("t{i}")}),
        );
        assert_eq!(read.result["deploy_info"][0]["description"], json!(t), "{t:?}");
        let file = w.root().join(format!("rednaw/t{i}/deploy-info.yml"));
        assert_eq!(pyyaml_load(&file)["description"], json!(t), "{t:?} through PyYAML");
        let history = pyyaml_load(&file.with_file_name("deploy-history.yml"));
        assert_eq!(
            history[0]["description"],
            json!(t),
            "{t:?} in the history through PyYAML"
        );
        assert_eq!(history[0]["deployed_at"], json!("2026-01-25T01:10:00Z"), "a string");
    }
}

/// The file as PyYAML (the venv's, as Ansible reads YAML) loads it, as JSON.
fn pyyaml_load(path: &std::path::Path) -> Value {
    let out = Command::new(venv_tool("python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8')), default=repr))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "PyYAML cannot read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn direct_hostile_args_files_fail_cleanly() {
    let w = Workdir::new();
    let run = |args: &[&std::ffi::OsStr]| module_output(Command::new(WRITE_BIN).args(args).output().unwrap());

    run(&[]).assert_failed_with("usage: write_deploy_info ARGS_FILE");
    let missing = w.path().join("no-such-args.json");
    run(&[missing.as_os_str()]).assert_failed_with(&format!(
        "cannot read the module arguments file `{}`",
        missing.display()
    ));
    run(&[w.path().as_os_str()]).assert_failed_with("cannot read the module arguments file");
    for (text, needle) in [
        ("org=rednaw app=hello-world", "is not a JSON object: expected value"),
        ("", "is not a JSON object: EOF"),
        ("[1, 2]", "is not a JSON object: expected an object, got a list"),
        ("{\"org\": \"rednaw\",", "is not a JSON object"),
        (
            "{\"org\": \"a\"} {\"org\": \"b\"}",
            "is not a JSON object: trailing characters",
        ),
        (
            "{\"_ansible_check_mode\": \"sometimes\"}",
            "`_ansible_check_mode` must be a boolean",
        ),
    ] {
        let file = w.path().join("bad-args.json");
        fs::write(&file, text).unwrap();
        run(&[file.as_os_str()]).assert_failed_with(needle);
    }
    fs::write(w.path().join("binary-args"), [0xff, 0xfe, 0x00]).unwrap();
    run(&[w.path().join("binary-args").as_os_str()]).assert_failed_with("cannot read the module arguments file");
    let a = w.args_file(&json!({}));
    run(&[a.as_os_str(), a.as_os_str()]).assert_failed_with("usage:");

    let base = w.write_args(&digest('a'));
    let cases: Vec<(Value, &str)> = vec![
        (json!({"org": "a/b"}), "argument `org`"),
        (
            json!({"org": "x\u{0}y"}),
            "argument `org`: `x\\0y` must not contain control characters",
        ),
        (json!({"app": "hello\nworld"}), "argument `app`"),
        (json!({"workspace": ".."}), "argument `workspace`"),
        (
            json!({"digest": format!("sha256:{}", "g".repeat(64))}),
            "argument `digest`",
        ),
        (
            json!({"digest": format!("sha256:{}", "A".repeat(64))}),
            "argument `digest`",
        ),
        (json!({"digest": 42}), "argument `digest`: invalid digest `42`"),
        (
            json!({"digest": true}),
            "argument `digest` must be a string, got the boolean true",
        ),
        (json!({"tag": ".hidden"}), "argument `tag`"),
        (
            json!({"tag": 1.5}),
            "argument `tag` must be a string, got the number 1.5",
        ),
        (json!({"image": format!("{IMAGE}@{}", digest('a'))}), "argument `image`"),
        (
            json!({"image": "registry.example.com/UPPER"}),
            "argument `image`: invalid repository name",
        ),
        (json!({"image": null}), "missing required argument `image`"),
        (json!({"org": null}), "missing required argument `org`"),
        (
            json!({"root": "relative/opt"}),
            "argument `root`: `relative/opt` must be an absolute path",
        ),
        (json!({"path": "/tmp/../etc/passwd"}), "argument `path`"),
        (json!({"history_limit": -3}), "argument `history_limit`"),
        (json!({"history_limit": [1]}), "argument `history_limit`"),
        (json!({"mode": 644}), "argument `mode`: 644 is not a file mode"),
        (json!({"mode": "0999"}), "argument `mode`"),
        (
            json!({"force": {"yes": true}}),
            "argument `force` must be a boolean, got a dictionary",
        ),
        (json!({"deployed_at": "2026-13-01T00:00:00Z"}), "argument `deployed_at`"),
        (
            json!({"description": "x".repeat(512 * 1024 + 1)}),
            "argument `description`",
        ),
        (json!({"revision": "x".repeat(5000)}), "argument `revision`"),
        (json!({"Org": "rednaw"}), "unsupported argument `Org`"),
    ];
    for (extra, needle) in cases {
        let mut args = base.clone();
        args.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        w.module(WRITE_BIN, &args).assert_failed_with(needle);
    }
    assert!(!w.root().exists(), "something was written: {:?}", tree(&w.root()));
    // Unknown `_ansible_*` keys are Ansible's business, not an error.
    let mut args = base.clone();
    args["_ansible_some_future_key"] = json!({"x": 1});
    args["_ansible_check_mode"] = json!(true);
    let run = w.module(WRITE_BIN, &args);
    run.assert_ok();
    assert_eq!(run.result["changed"], json!(true));
    assert!(!w.root().exists(), "check mode wrote something");
}

#[test]
fn direct_symlink_out_of_the_app_directory_is_refused() {
    let w = Workdir::new();
    let app = w.root().join("rednaw/hello-world");
    fs::create_dir_all(&app).unwrap();
    let victim = w.path().join("victim.conf");
    fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, app.join("deploy-info.yml")).unwrap();
    let run = w.module(WRITE_BIN, &w.write_args(&digest('a')));
    run.assert_failed_with("deploy-info.yml` is a symlink to");
    assert!(run.msg().contains("outside the app directory"), "{}", run.msg());
    assert_eq!(run.result["path"], json!(app.join("deploy-info.yml")));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    // The history file is held to the same rule.
    fs::remove_file(app.join("deploy-info.yml")).unwrap();
    std::os::unix::fs::symlink(&victim, app.join("deploy-history.yml")).unwrap();
    w.module(WRITE_BIN, &w.write_args(&digest('a')))
        .assert_failed_with("deploy-history.yml` is a symlink to");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(!app.join("deploy-info.yml").exists());
}

#[test]
fn direct_unwritable_targets_fail_naming_the_path() {
    let w = Workdir::new();
    // The root is a regular file: its directories cannot be created.
    fs::write(w.root(), "a file, not a directory\n").unwrap();
    let run = w.module(WRITE_BIN, &w.write_args(&digest('a')));
    run.assert_failed_with(&format!(
        "cannot create directory `{}`",
        w.root().join("rednaw/hello-world").display()
    ));
    assert_eq!(fs::read_to_string(w.root()).unwrap(), "a file, not a directory\n");
    fs::remove_file(w.root()).unwrap();
    // The record path is a directory.
    let record = w.root().join("rednaw/hello-world/deploy-info.yml");
    fs::create_dir_all(&record).unwrap();
    w.module(WRITE_BIN, &w.write_args(&digest('a')))
        .assert_failed_with(&format!("`{}` is not a regular file", record.display()));
    assert_eq!(tree(&w.root().join("rednaw/hello-world")), ["deploy-info.yml"]);
}

/// `<root>/<org>` replaced by a symlink out of the root: the module (run
/// as Ansible runs it) refuses, in check mode too, and writes nothing there.
#[test]
fn direct_org_directory_linked_out_of_the_root_is_refused() {
    let w = Workdir::new();
    let outside = w.path().join("etc");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(w.root()).unwrap();
    std::os::unix::fs::symlink(&outside, w.root().join("rednaw")).unwrap();
    let mut args = w.write_args(&digest('a'));
    for check_mode in [true, false] {
        args["_ansible_check_mode"] = json!(check_mode);
        w.module(WRITE_BIN, &args)
            .assert_failed_with(&format!("`{}` resolves to `", w.root().join("rednaw").display()));
    }
    assert_eq!(tree(&outside), Vec::<String>::new(), "nothing written outside the root");
}

/// Kills writers of a large record at moments spread over a whole write;
/// every time, the record on disk must be exactly the old one or exactly
/// the new one.
#[test]
fn direct_killed_writer_leaves_previous_record_intact() {
    let w = Workdir::new();
    let path = w.root().join("rednaw/hello-world/deploy-info.yml");
    w.module(WRITE_BIN, &w.write_args(&digest('a'))).assert_ok();
    let old = fs::read_to_string(&path).unwrap();
    let mut args = w.write_args(&digest('b'));
    args["description"] = json!("0123456789abcdef".repeat(16 * 1024));
    args["history_limit"] = json!(0);
    let args_file = w.args_file(&args);
    // How long one write takes here (debug builds are far slower).
    let started = Instant::now();
    let full = module_output(Command::new(WRITE_BIN).arg(&args_file).output().unwrap());
    full.assert_ok();
    let whole = started.elapsed();
    let new = fs::read_to_string(&path).unwrap();
    assert!(new.contains(&format!("digest: {}\n", digest('b'))));

    // The files are written at the end of a run: kill from its middle on.
    let rounds = 20;
    let (mut killed, mut replaced, mut temps_left) = (0, 0, 0);
    for i in 0..rounds {
        fs::write(&path, &old).unwrap();
        let delay = whole * (40 + 70 * i) / (100 * rounds);
        let mut child = Command::new(WRITE_BIN)
            .arg(&args_file)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        if child.wait().unwrap().signal() == Some(9) {
            killed += 1;
        }
        let now = fs::read_to_string(&path).unwrap();
        assert!(now == old || now == new, "torn record after a kill at {delay:?}");
        replaced += usize::from(now == new);
        temps_left += tree(&w.root()).iter().filter(|p| p.ends_with(".tmp")).count();
    }
    eprintln!("{killed}/{rounds} killed, {replaced} had replaced the record, {temps_left} temp files seen");
    assert!(killed > 0, "no writer was killed; the test proved nothing");
    // A later writer removes the temp files the killed ones left behind.
    w.module(WRITE_BIN, &w.write_args(&digest('c'))).assert_ok();
    let left: Vec<String> = tree(&w.root()).into_iter().filter(|p| p.ends_with(".tmp")).collect();
    assert!(left.is_empty(), "stale temp files: {left:?}");
}

/// Several writers at once: all succeed, one complete record wins, and the
/// history holds every deploy exactly once.
#[test]
fn direct_concurrent_writers_leave_one_complete_record() {
    let w = Workdir::new();
    w.module(WRITE_BIN, &w.write_args(&digest('0'))).assert_ok();
    let writers: Vec<_> = ['1', '2', '3', '4', '5', '6', '7', '8']
        .iter()
        .map(|&c| {
            let mut args = w.write_args(&digest(c));
            args["description"] = json!(c.to_string().repeat(100_000));
            let file = w.args_file(&args);
            Command::new(WRITE_BIN)
                .arg(file)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in writers {
        let run = module_output(child.wait_with_output().unwrap());
        run.assert_ok();
        assert_eq!(run.result["changed"], json!(true));
    }
    let read = w.module(READ_BIN, &json!({"root": w.root()}));
    read.assert_ok();
    let record = &read.result["deploy_info"][0];
    let history: Vec<&str> = record["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["digest"].as_str().unwrap())
        .collect();
    assert_eq!(history.len(), 9, "{history:?}");
    assert_eq!(history[0], digest('0'));
    let mut sorted = history.clone();
    sorted.sort();
    assert_eq!(sorted, ['0', '1', '2', '3', '4', '5', '6', '7', '8'].map(digest));
    assert_eq!(
        record["digest"].as_str(),
        history.last().copied(),
        "the record is the last deploy"
    );
    let winner = record["digest"].as_str().unwrap().chars().last().unwrap();
    assert_eq!(record["description"], json!(winner.to_string().repeat(100_000)));
}
