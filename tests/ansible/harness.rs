//! Shared by `tests/test_write_deploy_info.rs`, `tests/test_deploy_info.rs` and `tests/test_hostile_files.rs`
//! (included with `#[path]`, beside `mod common`): a temporary work directory holding the
//! test-built module binaries as an Ansible library, a root for
//! `<org>/<app>/` directories, and its own Ansible config and temp dirs, so
//! tests run in parallel without touching `~/.ansible`, the repository's
//! `library/` or `task build`.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");
pub const WRITE_BIN: &str = env!("CARGO_BIN_EXE_write_deploy_info");
pub const READ_BIN: &str = env!("CARGO_BIN_EXE_deploy_info");

pub const IMAGE: &str = "registry.rednaw.nl/rednaw/hello-world";

/// A sha256 digest made of one repeated hex character.
pub fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// A tool from the project venv; tests fail (not skip) without it.
pub use crate::common::venv_tool;

pub struct Workdir {
    dir: tempfile::TempDir,
    counter: AtomicUsize,
}

/// A finished `ansible-playbook` run.
pub struct PlaybookRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl PlaybookRun {
    /// Panics with the whole output unless the playbook (and its asserts)
    /// succeeded.
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.status.success(),
            "playbook failed ({}):\n{}\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A finished direct run of a module binary.
pub struct ModuleRun {
    pub status: ExitStatus,
    /// Stdout parsed as the one JSON object it must be.
    pub result: Value,
}

impl ModuleRun {
    pub fn msg(&self) -> &str {
        self.result["msg"].as_str().unwrap_or_default()
    }

    /// Asserts a clean failure whose `msg` contains `needle`.
    pub fn assert_failed_with(&self, needle: &str) -> &Self {
        assert_eq!(self.result["failed"], Value::Bool(true), "not failed: {}", self.result);
        assert_eq!(self.status.code(), Some(1), "{}", self.result);
        assert!(self.msg().contains(needle), "msg {:?} lacks {needle:?}", self.msg());
        self
    }

    pub fn assert_ok(&self) -> &Self {
        assert!(self.result.get("failed").is_none(), "failed: {}", self.result);
        assert_eq!(self.status.code(), Some(0), "{}", self.result);
        self
    }
}

impl Workdir {
    pub fn new() -> Workdir {
        let dir = tempfile::Builder::new().prefix("deploy-info-test").tempdir().unwrap();
        let w = Workdir {
            dir,
            counter: AtomicUsize::new(0),
        };
        let lib = w.library();
        fs::create_dir(&lib).unwrap();
        for bin in [WRITE_BIN, READ_BIN] {
            let name = Path::new(bin).file_name().unwrap();
            fs::copy(bin, lib.join(name)).unwrap();
        }
        for doc in ["write_deploy_info.yml", "deploy_info.yml"] {
            fs::copy(Path::new(REPO).join("library").join(doc), lib.join(doc)).unwrap();
        }
        for d in ["ansible-home", "local-tmp", "remote-tmp", "home"] {
            fs::create_dir(w.path().join(d)).unwrap();
        }
        let cfg = format!(
            "[defaults]\nlibrary = {lib}\nlocal_tmp = {dir}/local-tmp\nremote_tmp = {dir}/remote-tmp\n\
             retry_files_enabled = false\nnocolor = true\n",
            lib = lib.display(),
            dir = w.path().display()
        );
        fs::write(w.path().join("ansible.cfg"), cfg).unwrap();
        w
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The module path handed to Ansible.
    pub fn library(&self) -> PathBuf {
        self.path().join("library")
    }

    /// The `root` of the modules under test (not created up front).
    pub fn root(&self) -> PathBuf {
        self.path().join("opt")
    }

    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `tests/ansible/<playbook>` on localhost with `vars` as extra vars.
    pub fn playbook(&self, playbook: &str, vars: &Value) -> PlaybookRun {
        let vars_file = self.path().join(format!("vars-{}.json", self.next()));
        fs::write(&vars_file, vars.to_string()).unwrap();
        let mut cmd = Command::new(venv_tool("ansible-playbook"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ANSIBLE_") {
                cmd.env_remove(key);
            }
        }
        let out = cmd
            .current_dir(self.path())
            .env("ANSIBLE_CONFIG", self.path().join("ansible.cfg"))
            .env("ANSIBLE_HOME", self.path().join("ansible-home"))
            .env("ANSIBLE_LIBRARY", self.library())
            .env("ANSIBLE_LOCAL_TEMP", self.path().join("local-tmp"))
            .env("ANSIBLE_REMOTE_TEMP", self.path().join("remote-tmp"))
            .env("HOME", self.path().join("home"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .arg("-i")
            .arg("localhost,")
            .arg(Path::new(REPO).join("tests/ansible").join(playbook))
            .arg("-e")
            .arg(format!("@{}", vars_file.display()))
            .output()
            .unwrap();
        PlaybookRun {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Writes `args` to an args file, as Ansible would.
    pub fn args_file(&self, args: &Value) -> PathBuf {
        let path = self.path().join(format!("args-{}.json", self.next()));
        fs::write(&path, args.to_string()).unwrap();
        path
    }

    /// Runs a module binary directly with `args`.
    pub fn module(&self, bin: &str, args: &Value) -> ModuleRun {
        let file = self.args_file(args);
        module_output(Command::new(bin).arg(file).output().unwrap())
    }

    /// The base arguments of a valid `write_deploy_info` call under `root`.
    pub fn write_args(&self, digest: &str) -> Value {
        serde_json::json!({
            "org": "rednaw", "app": "hello-world", "workspace": "dev", "image": IMAGE,
            "digest": digest, "tag": "eb53023", "root": self.root(),
            "deployed_at": "2026-01-25T01:10:00Z",
        })
    }
}

/// Parses a module's stdout, which must be exactly one JSON object.
pub fn module_output(out: Output) -> ModuleRun {
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let result: Value = serde_json::from_str(stdout.trim_end())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout:?}"));
    assert!(result.is_object(), "stdout is not an object: {stdout}");
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ModuleRun {
        status: out.status,
        result,
    }
}

/// Every file and directory under `dir`, relative, sorted; empty if `dir`
/// does not exist.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `record` (the text of a deploy-info.yml with plain one-line values) as
/// an item of a YAML list, as it appears in deploy-history.yml.
pub fn as_list_item(record: &str) -> String {
    record
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { format!("- {l}\n") } else { format!("  {l}\n") })
        .collect()
}
