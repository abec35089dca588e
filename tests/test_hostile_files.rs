//! The Ansible modules against hostile files and a hostile file system.
//!
//! `deploy_info` reads files any process on a host may have damaged or
//! planted: deeply nested YAML, alias bombs, huge files, invalid UTF-8,
//! FIFOs and devices in place of files. Each gives a clean failure (one JSON
//! object, `failed: true`, a `msg` and `path` naming the file) within
//! bounded time and memory: every run here is under `ulimit -v` (address
//! space) and a wall-clock limit.
//!
//! `write_deploy_info` runs as root: it keeps the file mode asked for
//! whatever the umask, refuses symlinks that lead out of the app directory,
//! and on a full disk or a read-only file system fails cleanly with the old
//! files intact (real tmpfs mounts: the tests run as root, as CI does).

mod common;
#[path = "ansible/harness.rs"]
mod harness;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{ModuleRun, READ_BIN, WRITE_BIN, Workdir, digest, module_output, tree};
use serde_json::{Value, json};

/// Address space a module run may use (`ulimit -v`, KiB): far below what
/// any of the hostile inputs would take if expanded or read whole.
const MEMORY_LIMIT_KIB: u64 = 512 * 1024;
/// Wall-clock time after which a run is killed and the test fails.
const KILL_AFTER: Duration = Duration::from_secs(30);

/// Runs a module binary on `args` under the memory limit, with `umask`,
/// killing it after [`KILL_AFTER`]; returns its result and how long it took.
fn bounded(w: &Workdir, bin: &str, args: &Value, umask: u32) -> (ModuleRun, Duration) {
    let file = w.args_file(args);
    let script = format!("ulimit -v {MEMORY_LIMIT_KIB} && umask {umask:03o} && exec \"$0\" \"$1\"");
    let start = Instant::now();
    let out = Command::new("timeout")
        .args([
            "-s",
            "KILL",
            &KILL_AFTER.as_secs().to_string(),
            "sh",
            "-c",
            &script,
            bin,
        ])
        .arg(&file)
        .output()
        .expect("`timeout` (coreutils) and `sh` are needed");
    let took = start.elapsed();
    assert!(
        out.status.signal() != Some(9) && out.status.code() != Some(137),
        "`{bin}` did not finish within {KILL_AFTER:?}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (module_output(out), took)
}

/// Asserts a clean strict failure naming `file`, and that the non-strict
/// run skips it with one warning. Returns the failure message.
fn refused(w: &Workdir, file: &Path, needle: &str) -> String {
    let (run, took) = bounded(w, READ_BIN, &json!({"root": w.root()}), 0o022);
    run.assert_failed_with(needle);
    let msg = run.msg().to_string();
    assert!(
        msg.contains(&format!("`{}`", file.display())),
        "msg does not name the file: {msg}"
    );
    assert_eq!(run.result["path"], json!(file), "{msg}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {msg}");
    let (run, _) = bounded(w, READ_BIN, &json!({"root": w.root(), "strict": false}), 0o022);
    run.assert_ok();
    let warnings = run.result["warnings"].as_array().cloned().unwrap_or_default();
    assert_eq!(warnings.len(), 1, "{}", run.result);
    assert!(warnings[0].as_str().unwrap().contains(&file.display().to_string()));
    msg
}

/// The app directory of the base arguments, with a valid record written.
fn app_with_record(w: &Workdir) -> PathBuf {
    w.module(WRITE_BIN, &w.write_args(&digest('a'))).assert_ok();
    w.root().join("rednaw/hello-world")
}

const RECORD: &str = "app: hello-world\nworkspace: dev\nimage: registry.rednaw.nl/rednaw/hello-world\n\
                      tag: eb53023\ndigest: sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\
                      deployed_at: 2026-01-25T01:10:00Z\n";

fn record_item(extra: &str) -> String {
    let mut s = String::new();
    for (i, line) in RECORD.lines().enumerate() {
        s.push_str(if i == 0 { "- " } else { "  " });
        s.push_str(line);
        s.push('\n');
    }
    for line in extra.lines() {
        s.push_str("  ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

// ---- deploy_info: hostile content ----------------------------------------------

#[test]
fn deeply_nested_yaml_is_refused_naming_the_file() {
    let w = Workdir::new();
    let app = app_with_record(&w);
    let record = app.join("deploy-info.yml");
    let history = app.join("deploy-history.yml");
    fs::remove_file(&history).unwrap();
    // Flow collections 200 000 deep (400 KB): libyaml alone would take hours.
    let n = 200_000;
    for text in [
        format!("{RECORD}junk: {}{}\n", "[".repeat(n), "]".repeat(n)),
        format!("{RECORD}junk: {}x{}\n", "{a: ".repeat(n), "}".repeat(n)),
        format!("{RECORD}description: {}\n", "[".repeat(n)),
        // Behind a multi-line plain scalar, a quote and a CR line break.
        format!("{RECORD}junk: x\n  'y\rz: {}{}\n", "[".repeat(n), "]".repeat(n)),
    ] {
        fs::write(&record, &text).unwrap();
        let msg = refused(&w, &record, "is not a valid deploy-info file");
        assert!(msg.contains("nested 200000 deep, more than 32"), "{msg}");
    }
    // Block mappings 2 000 deep in a field the record does not have: ignored.
    let mut text = format!("{RECORD}junk:\n");
    for depth in 1..2000 {
        text.push_str(&" ".repeat(depth));
        text.push_str("k:\n");
    }
    fs::write(&record, &text).unwrap();
    let (run, took) = bounded(&w, READ_BIN, &json!({"root": w.root()}), 0o022);
    run.assert_ok();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // Nested too deep where the record has a field: the parser's own limit.
    fs::write(
        &record,
        format!(
            "{RECORD}description:\n{text}",
            text = {
                let mut t = String::new();
                for depth in 1..200 {
                    t.push_str(&" ".repeat(depth));
                    t.push_str("- \n");
                }
                t
            }
        ),
    )
    .unwrap();
    let msg = refused(&w, &record, "is not a valid deploy-info file");
    assert!(msg.contains("description"), "{msg}");
    // The same in the history.
    fs::write(&record, RECORD).unwrap();
    fs::write(&history, format!("- {}{}\n", "[".repeat(n), "]".repeat(n))).unwrap();
    let msg = refused(&w, &history, "is not a valid deploy-info file");
    assert!(msg.contains("more than 32"), "{msg}");
}

#[test]
fn alias_bombs_are_refused_within_bounded_memory() {
    let w = Workdir::new();
    let app = app_with_record(&w);
    let record = app.join("deploy-info.yml");
    let history = app.join("deploy-history.yml");

    // "Billion laughs": nine levels of nine aliases, 10^9 strings expanded.
    let mut lol = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        lol.push_str(&format!(
            "{name}: &{name} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
    }
    fs::write(&record, format!("{RECORD}{lol}")).unwrap();
    let msg = refused(&w, &record, "is not a valid deploy-info file");
    assert!(msg.contains("expand it to more than twice its size"), "{msg}");
    // As the value of a field.
    fs::write(&record, format!("{lol}{RECORD}description: *i\n")).unwrap();
    refused(&w, &record, "is not a valid deploy-info file");
    fs::write(&record, RECORD).unwrap();

    // One 1 MiB description referenced by 3 000 history entries: a 1.6 MB
    // file that would expand to 3 GB of strings.
    let big = "A".repeat(1 << 20);
    let mut text = record_item(&format!("description: &big \"{big}\""));
    for _ in 0..3000 {
        text.push_str(&record_item("description: *big"));
    }
    fs::write(&history, &text).unwrap();
    let msg = refused(&w, &history, "is not a valid deploy-info file");
    assert!(msg.contains("its aliases expand it"), "{msg}");

    // One record repeated 200 000 times by alias.
    let mut text = String::from("- &r\n");
    for line in RECORD.lines() {
        text.push_str(&format!("  {line}\n"));
    }
    text.push_str(&"- *r\n".repeat(200_000));
    fs::write(&history, &text).unwrap();
    let msg = refused(&w, &history, "is not a valid deploy-info file");
    assert!(msg.contains("its aliases expand it"), "{msg}");

    // An alias that does not amplify is still fine (a hand-edited history).
    let mut text = record_item("description: &d shared");
    text.push_str(&record_item("description: *d"));
    fs::write(&history, &text).unwrap();
    let (run, _) = bounded(&w, READ_BIN, &json!({"root": w.root()}), 0o022);
    run.assert_ok();
    let h = &run.result["deploy_info"][0]["history"];
    assert_eq!(
        (h[0]["description"].as_str(), h[1]["description"].as_str()),
        (Some("shared"), Some("shared"))
    );
}

#[test]
fn huge_files_are_refused_or_read_within_bounds() {
    let w = Workdir::new();
    let app = app_with_record(&w);
    let history = app.join("deploy-history.yml");

    // One byte over the cap, dense (not sparse): refused before it is read.
    let limit = 16 * 1024 * 1024;
    fs::write(&history, vec![b'#'; limit + 1]).unwrap();
    let msg = refused(&w, &history, "is larger than 16777216 bytes");
    assert!(msg.contains("refusing to read it"), "{msg}");

    // A long but legitimate history (4 MiB): read whole, within the limits.
    let item = record_item(&format!("description: {}", "x".repeat(300)));
    let n = (4 << 20) / item.len();
    fs::write(&history, item.repeat(n)).unwrap();
    let (run, took) = bounded(&w, READ_BIN, &json!({"root": w.root()}), 0o022);
    run.assert_ok();
    assert_eq!(run.result["deploy_info"][0]["history"].as_array().unwrap().len(), n);
    assert!(took < Duration::from_secs(20), "took {took:?}");

    // A single 15 MiB line.
    fs::write(
        &history,
        record_item(&format!("description: \"{}\"", "y".repeat(15 << 20))),
    )
    .unwrap();
    let (run, _) = bounded(&w, READ_BIN, &json!({"root": w.root()}), 0o022);
    run.assert_ok();
    assert_eq!(
        run.result["deploy_info"][0]["history"][0]["description"]
            .as_str()
            .map(str::len),
        Some(15 << 20)
    );
}

#[test]
fn invalid_text_is_refused_naming_the_file() {
    let w = Workdir::new();
    let app = app_with_record(&w);
    let record = app.join("deploy-info.yml");
    let history = app.join("deploy-history.yml");
    let good_history = fs::read(&history).unwrap();
    let cases: Vec<(&Path, Vec<u8>, &str)> = vec![
        // Invalid UTF-8 inside a quoted string of the history.
        (
            &history,
            [&good_history[..], b"- description: \"caf\xc3\x28\"\n"].concat(),
            "not UTF-8 text",
        ),
        // Latin-1.
        (
            &record,
            [RECORD.as_bytes(), b"description: d\xe9ploy\n"].concat(),
            "not UTF-8 text",
        ),
        // UTF-16 with a BOM.
        (
            &record,
            "\u{feff}app: x\n".encode_utf16().flat_map(u16::to_le_bytes).collect(),
            "not UTF-8 text",
        ),
        // NUL and other control characters: UTF-8, but not YAML.
        (
            &record,
            [RECORD.as_bytes(), b"description: \x00\x01\x02\n"].concat(),
            "is not a valid deploy-info file",
        ),
        // Two documents.
        (
            &record,
            format!("{RECORD}---\n{RECORD}").into_bytes(),
            "is not a valid deploy-info file",
        ),
        // The wrong shape: a list, a scalar, a record missing its digest.
        (&record, b"- a\n- b\n".to_vec(), "is not a valid deploy-info file"),
        (&record, b"just text\n".to_vec(), "is not a valid deploy-info file"),
        (
            &record,
            RECORD.replace("digest:", "dygest:").into_bytes(),
            "missing field `digest`",
        ),
        // A value that breaks the record's own rules.
        (
            &record,
            RECORD.replace("sha256:a", "sha256:A").into_bytes(),
            "invalid digest",
        ),
        (
            &record,
            format!("{RECORD}digest: sha256:{}\n", "b".repeat(64)).into_bytes(),
            "duplicate field",
        ),
    ];
    for (file, bytes, needle) in cases {
        let (keep, keep_bytes) = if file == record.as_path() {
            (&history, good_history.clone())
        } else {
            (&record, RECORD.as_bytes().to_vec())
        };
        fs::write(keep, &keep_bytes).unwrap();
        fs::write(file, &bytes).unwrap();
        refused(&w, file, needle);
    }
}

// ---- deploy_info: hostile file types ---------------------------------------------

#[test]
fn fifos_devices_and_loops_in_place_of_files_are_refused_at_once() {
    let w = Workdir::new();
    let app = app_with_record(&w);
    let record = app.join("deploy-info.yml");
    let history = app.join("deploy-history.yml");
    let mkfifo = |p: &Path| {
        let st = Command::new("mkfifo")
            .arg(p)
            .status()
            .expect("mkfifo (coreutils) is needed");
        assert!(st.success());
    };
    // A FIFO nobody writes to would block an open() for ever.
    fs::remove_file(&history).unwrap();
    mkfifo(&history);
    refused(&w, &history, "is not a regular file");
    fs::remove_file(&history).unwrap();
    fs::remove_file(&record).unwrap();
    mkfifo(&record);
    refused(&w, &record, "is not a regular file");
    // Through a symlink, and named with `path`.
    fs::remove_file(&record).unwrap();
    let fifo = w.path().join("fifo");
    mkfifo(&fifo);
    std::os::unix::fs::symlink(&fifo, &record).unwrap();
    refused(&w, &record, "is not a regular file");
    let (run, took) = bounded(&w, READ_BIN, &json!({"path": fifo}), 0o022);
    run.assert_failed_with("is not a regular file");
    assert!(took < Duration::from_secs(10));
    // Endless devices and a symlink loop.
    for (target, needle) in [
        (PathBuf::from("/dev/zero"), "is not a regular file"),
        (PathBuf::from("/dev/urandom"), "is not a regular file"),
        (record.clone(), "cannot open"),
    ] {
        fs::remove_file(&record).unwrap();
        std::os::unix::fs::symlink(&target, &record).unwrap();
        refused(&w, &record, needle);
    }
    // The writer refuses them too, at once, and writes nothing.
    fs::remove_file(&record).unwrap();
    mkfifo(&record);
    let (run, took) = bounded(&w, WRITE_BIN, &w.write_args(&digest('b')), 0o022);
    run.assert_failed_with("is not a regular file");
    assert!(took < Duration::from_secs(10));
    for target in [fifo.as_path(), Path::new("/dev/zero")] {
        fs::remove_file(&record).unwrap();
        std::os::unix::fs::symlink(target, &record).unwrap();
        let (run, took) = bounded(&w, WRITE_BIN, &w.write_args(&digest('b')), 0o022);
        run.assert_failed_with("outside the app directory");
        assert!(took < Duration::from_secs(10));
    }
}

// ---- write_deploy_info: modes and symlinks ---------------------------------------

fn mode_of(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn written_files_have_exactly_the_mode_asked_for_whatever_the_umask() {
    let w = Workdir::new();
    for umask in [0o000, 0o022, 0o077, 0o777] {
        for mode in ["0600", "0640", "0644", "0444", "0755", "0000"] {
            let want = u32::from_str_radix(mode, 8).unwrap();
            let app_name = format!("app-{umask:03o}-{mode}");
            let mut args = w.write_args(&digest('a'));
            args["app"] = json!(app_name);
            args["mode"] = json!(mode);
            let (run, _) = bounded(&w, WRITE_BIN, &args, umask);
            run.assert_ok();
            let app = w.root().join("rednaw").join(&app_name);
            for f in ["deploy-info.yml", "deploy-history.yml"] {
                assert_eq!(mode_of(&app.join(f)), want, "{f}, mode {mode}, umask {umask:03o}");
            }
            // A new deploy replaces the files: the mode asked for this time.
            let mut args = w.write_args(&digest('b'));
            args["app"] = json!(app_name);
            args["mode"] = json!("0640");
            let (run, _) = bounded(&w, WRITE_BIN, &args, umask);
            run.assert_ok();
            for f in ["deploy-info.yml", "deploy-history.yml"] {
                assert_eq!(mode_of(&app.join(f)), 0o640, "{f}, rewrite, umask {umask:03o}");
            }
        }
    }
}

#[test]
fn an_unchanged_deploy_still_gets_the_mode_asked_for() {
    let w = Workdir::new();
    let app = app_with_record(&w);
    let record = app.join("deploy-info.yml");
    let before = fs::read_to_string(&record).unwrap();
    fs::set_permissions(&record, fs::Permissions::from_mode(0o600)).unwrap();
    let mut args = w.write_args(&digest('a'));
    args["mode"] = json!("0644");
    args["deployed_at"] = json!("2030-01-01T00:00:00Z");
    // Check mode predicts the change and changes nothing.
    args["_ansible_check_mode"] = json!(true);
    let (run, _) = bounded(&w, WRITE_BIN, &args, 0o022);
    run.assert_ok();
    assert_eq!(run.result["changed"], json!(true), "{}", run.result);
    assert_eq!(mode_of(&record), 0o600);
    args["_ansible_check_mode"] = json!(false);
    let (run, _) = bounded(&w, WRITE_BIN, &args, 0o022);
    run.assert_ok();
    assert_eq!(run.result["changed"], json!(true), "{}", run.result);
    assert_eq!(mode_of(&record), 0o644);
    assert_eq!(
        fs::read_to_string(&record).unwrap(),
        before,
        "the same deploy: deployed_at stays"
    );
    let (run, _) = bounded(&w, WRITE_BIN, &args, 0o022);
    assert_eq!(run.result["changed"], json!(false), "idempotent: {}", run.result);
}

#[test]
fn symlinks_out_of_the_app_directory_are_refused_in_every_form() {
    let w = Workdir::new();
    let app = app_with_record(&w);
    let record = app.join("deploy-info.yml");
    let outside = w.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let victim = outside.join("victim.conf");
    let links: Vec<(&str, PathBuf)> = vec![
        ("relative, climbing out", PathBuf::from("../../../outside/victim.conf")),
        ("absolute", victim.clone()),
        ("dangling, outside", outside.join("new-file.yml")),
        (
            "dangling relative, outside",
            PathBuf::from("../../../outside/new-file.yml"),
        ),
        ("to the app directory itself", PathBuf::from(".")),
        (
            "through a symlinked directory inside",
            app.join("sub/../../../outside/victim.conf"),
        ),
    ];
    for (what, target) in links {
        fs::write(&victim, "precious\n").unwrap();
        let _ = fs::remove_file(&record);
        std::os::unix::fs::symlink(&target, &record).unwrap();
        let (run, _) = bounded(&w, WRITE_BIN, &w.write_args(&digest('b')), 0o022);
        assert_eq!(run.result["failed"], json!(true), "{what}: {}", run.result);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n", "{what}");
        assert!(
            !outside.join("new-file.yml").exists(),
            "{what}: a file was created outside"
        );
        assert_eq!(fs::read_link(&record).unwrap(), target, "{what}: the link itself stays");
    }
    // A chain: a link inside to a link that leads out.
    fs::remove_file(&record).unwrap();
    std::os::unix::fs::symlink(&victim, app.join("hop")).unwrap();
    std::os::unix::fs::symlink("hop", &record).unwrap();
    let (run, _) = bounded(&w, WRITE_BIN, &w.write_args(&digest('b')), 0o022);
    run.assert_failed_with("outside the app directory");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    // A link to a file inside is followed, and that file gets the mode.
    fs::remove_file(&record).unwrap();
    fs::remove_file(app.join("hop")).unwrap();
    fs::write(app.join("real.yml"), RECORD).unwrap();
    std::os::unix::fs::symlink("real.yml", &record).unwrap();
    let mut args = w.write_args(&digest('c'));
    args["mode"] = json!("0600");
    let (run, _) = bounded(&w, WRITE_BIN, &args, 0o022);
    run.assert_ok();
    assert!(fs::symlink_metadata(&record).unwrap().file_type().is_symlink());
    assert!(fs::read_to_string(app.join("real.yml")).unwrap().contains(&digest('c')));
    assert_eq!(mode_of(&app.join("real.yml")), 0o600);
}

// ---- write_deploy_info: full disk, read-only file system ----------------------------

/// A tmpfs mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("`mount` (util-linux) is needed");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs ({}); these tests need root, as CI runs them: {}",
            options,
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(st.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Fills the file system of `dir` until a write fails; returns the filler.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 1024];
    while f.write_all(&chunk).and_then(|_| f.sync_all()).is_ok() {}
    filler
}

/// The write arguments with `root` on `fs`.
fn args_on(w: &Workdir, root: &Path, d: &str) -> Value {
    let mut args = w.write_args(d);
    args["root"] = json!(root);
    args["description"] = json!("a description long enough to need a new block: ".repeat(200));
    args
}

#[test]
fn a_full_disk_fails_cleanly_and_keeps_the_old_files() {
    let w = Workdir::new();
    let fs_ = Tmpfs::mount("size=256k");
    let root = fs_.path().join("opt");
    bounded(&w, WRITE_BIN, &args_on(&w, &root, &digest('a')), 0o022)
        .0
        .assert_ok();
    let app = root.join("rednaw/hello-world");
    let (record, history) = (app.join("deploy-info.yml"), app.join("deploy-history.yml"));
    let (old_record, old_history) = (fs::read(&record).unwrap(), fs::read(&history).unwrap());
    let filler = fill(fs_.path());

    let (run, _) = bounded(&w, WRITE_BIN, &args_on(&w, &root, &digest('b')), 0o022);
    run.assert_failed_with(&format!("cannot write deploy-info files in `{}`", app.display()));
    assert!(run.msg().contains("No space left on device"), "{}", run.msg());
    assert_eq!(run.result["path"], json!(app));
    assert_eq!(fs::read(&record).unwrap(), old_record);
    assert_eq!(fs::read(&history).unwrap(), old_history);
    assert_eq!(
        tree(&app),
        ["deploy-history.yml", "deploy-info.yml"],
        "no temp file left"
    );
    // The reader still reads the old state.
    let (run, _) = bounded(&w, READ_BIN, &json!({"root": root}), 0o022);
    run.assert_ok();
    assert_eq!(run.result["deploy_info"][0]["digest"], json!(digest('a')));
    // A new app directory cannot be made either: a clean failure too.
    let mut other = args_on(&w, &root, &digest('b'));
    other["app"] = json!("other-app");
    let (run, _) = bounded(&w, WRITE_BIN, &other, 0o022);
    assert_eq!(run.result["failed"], json!(true), "{}", run.result);
    assert!(run.msg().contains("No space left on device"), "{}", run.msg());
    // Space again: the rerun completes.
    fs::remove_file(&filler).unwrap();
    let (run, _) = bounded(&w, WRITE_BIN, &args_on(&w, &root, &digest('b')), 0o022);
    run.assert_ok();
    assert!(fs::read_to_string(&record).unwrap().contains(&digest('b')));
}

#[test]
fn no_free_inodes_fails_cleanly_and_keeps_the_old_files() {
    let w = Workdir::new();
    let fs_ = Tmpfs::mount("size=1m,nr_inodes=8");
    let root = fs_.path().join("opt");
    bounded(&w, WRITE_BIN, &args_on(&w, &root, &digest('a')), 0o022)
        .0
        .assert_ok();
    let app = root.join("rednaw/hello-world");
    let record = app.join("deploy-info.yml");
    let old = fs::read(&record).unwrap();
    // Use up the remaining inodes.
    let mut n = 0;
    while fs::write(fs_.path().join(format!("i{n}")), b"").is_ok() {
        n += 1;
        assert!(n < 100, "nr_inodes was not applied");
    }
    let (run, _) = bounded(&w, WRITE_BIN, &args_on(&w, &root, &digest('b')), 0o022);
    run.assert_failed_with(&format!("`{}`", app.display()));
    assert!(run.msg().contains("No space left on device"), "{}", run.msg());
    assert_eq!(fs::read(&record).unwrap(), old);
    assert_eq!(tree(&app), ["deploy-history.yml", "deploy-info.yml"]);
}

#[test]
fn a_read_only_file_system_fails_cleanly_and_keeps_the_old_files() {
    let w = Workdir::new();
    let fs_ = Tmpfs::mount("size=1m");
    let root = fs_.path().join("opt");
    bounded(&w, WRITE_BIN, &args_on(&w, &root, &digest('a')), 0o022)
        .0
        .assert_ok();
    let app = root.join("rednaw/hello-world");
    let record = app.join("deploy-info.yml");
    let old = fs::read(&record).unwrap();
    fs_.remount("ro");
    let (run, _) = bounded(&w, WRITE_BIN, &args_on(&w, &root, &digest('b')), 0o022);
    run.assert_failed_with(&format!("`{}`", app.display()));
    assert!(run.msg().contains("Read-only file system"), "{}", run.msg());
    assert_eq!(run.result["path"], json!(app));
    assert_eq!(fs::read(&record).unwrap(), old);
    // Reading works, and check mode predicts without writing.
    let (run, _) = bounded(&w, READ_BIN, &json!({"root": root}), 0o022);
    run.assert_ok();
    let mut check = args_on(&w, &root, &digest('b'));
    check["_ansible_check_mode"] = json!(true);
    let (run, _) = bounded(&w, WRITE_BIN, &check, 0o022);
    run.assert_ok();
    assert_eq!(run.result["changed"], json!(true));
    // Writable again: the rerun completes.
    fs_.remount("rw");
    bounded(&w, WRITE_BIN, &args_on(&w, &root, &digest('b')), 0o022)
        .0
        .assert_ok();
    assert!(fs::read_to_string(&record).unwrap().contains(&digest('b')));
}
