//! `playbooks/cleanup.yml` through real `ansible-playbook` against the real
//! registry: it gathers the deploy state of every host first and ends the
//! play before anything is planned or deleted when one host cannot answer;
//! it applies the cleanup with the state it gathered; and it runs the
//! registry's garbage collection with the registry read-only meanwhile.
//!
//! The registry is reached through a forwarding fault server, so "nothing
//! reached the registry" is a count of requests, not a guess.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fault::{Action, FaultServer, Req, Resp};
use common::*;
use image_lifecycle::reference::Digest;
use serde_json::{Value, json};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const CLEANUP_BIN: &str = env!("CARGO_BIN_EXE_registry_cleanup");
const READ_BIN: &str = env!("CARGO_BIN_EXE_deploy_info");
const WRITE_BIN: &str = env!("CARGO_BIN_EXE_write_deploy_info");

const POLICY: &str = "workspaces: [dev, prod]
defaults: {keep_last: 0, keep_younger_than: 0s, keep_tags: [], protect_history: 2}
";

/// How a host of an inventory is reached.
enum Host {
    /// `ansible_connection: local`, with its own root under the workdir.
    Local,
    /// ssh to a loopback port nothing listens on: unreachable, at once.
    Unreachable,
}

/// A workdir with the module binaries as the Ansible library, the
/// registry_cleanup binary, inventories, a policy and a state directory.
struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new(policy: &str) -> Workdir {
        let dir = tempfile::Builder::new().prefix("cleanup-playbook").tempdir().unwrap();
        let w = Workdir { dir };
        for d in [
            "library",
            "bin",
            "ansible-home",
            "local-tmp",
            "remote-tmp",
            "home",
            "state",
        ] {
            fs::create_dir(w.path().join(d)).unwrap();
        }
        fs::copy(READ_BIN, w.path().join("library/deploy_info")).unwrap();
        fs::copy(CLEANUP_BIN, w.path().join("bin/registry_cleanup")).unwrap();
        fs::write(
            w.path().join("ansible.cfg"),
            format!(
                "[defaults]\nlibrary = {dir}/library\nlocal_tmp = {dir}/local-tmp\nremote_tmp = {dir}/remote-tmp\n\
                 retry_files_enabled = false\nnocolor = true\ninterpreter_python = auto_silent\n\
                 [ssh_connection]\nssh_args = -o ConnectTimeout=5 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null\n",
                dir = w.path().display()
            ),
        )
        .unwrap();
        fs::write(w.path().join("policy.yml"), policy).unwrap();
        w
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn root(&self, host: &str) -> PathBuf {
        self.path().join("hosts").join(host).join("opt")
    }

    /// `inventories/<ws>/hosts.yml` with `hosts`.
    fn inventory(&self, workspace: &str, hosts: &[(&str, Host)]) {
        let dir = self.path().join("inventories").join(workspace);
        fs::create_dir_all(&dir).unwrap();
        let mut entries = serde_json::Map::new();
        for (name, how) in hosts {
            let vars = match how {
                Host::Local => json!({
                    "ansible_connection": "local",
                    "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                    "deploy_app_root": self.root(name),
                }),
                Host::Unreachable => json!({
                    "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1,
                    "ansible_user": "nobody",
                }),
            };
            entries.insert(name.to_string(), vars);
        }
        let inv = json!({ workspace: {"hosts": entries} });
        // JSON is YAML.
        fs::write(dir.join("hosts.yml"), inv.to_string()).unwrap();
    }

    /// Deploys `digests` of `image` one after another on `host` (the last is
    /// current), with the real write_deploy_info module.
    fn deploy(&self, host: &str, workspace: &str, image: &str, digests: &[&Digest]) {
        for (i, d) in digests.iter().enumerate() {
            let args = self.path().join(format!("args-{host}-{i}.json"));
            let a = json!({"org": "acme", "app": "web", "workspace": workspace, "image": image,
                           "digest": d.to_string(), "root": self.root(host),
                           "deployed_at": format!("2025-03-0{}T00:00:00Z", i + 1)});
            fs::write(&args, a.to_string()).unwrap();
            let o = Command::new(WRITE_BIN).arg(&args).output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        }
    }

    /// `ansible-playbook -i inventories/<ws>… playbooks/cleanup.yml -e @vars`.
    fn playbook(&self, workspaces: &[&str], vars: &Value) -> Output {
        self.playbook_with(workspaces, vars, &[])
    }

    /// The same with more `ansible-playbook` arguments.
    fn playbook_with(&self, workspaces: &[&str], vars: &Value, extra: &[&str]) -> Output {
        let vars_file = self.path().join("vars.json");
        let mut all = json!({
            "cleanup_policy": self.path().join("policy.yml"),
            "cleanup_state_dir": self.path().join("state"),
            "cleanup_bin_dir": self.path().join("bin"),
        });
        for (k, v) in vars.as_object().unwrap() {
            all[k] = v.clone();
        }
        fs::write(&vars_file, all.to_string()).unwrap();
        let mut cmd = Command::new(venv_tool("ansible-playbook"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ANSIBLE_") {
                cmd.env_remove(key);
            }
        }
        for ws in workspaces {
            cmd.arg("-i").arg(self.path().join("inventories").join(ws));
        }
        cmd.current_dir(self.path())
            .env("ANSIBLE_CONFIG", self.path().join("ansible.cfg"))
            .env("ANSIBLE_HOME", self.path().join("ansible-home"))
            .env("ANSIBLE_LIBRARY", self.path().join("library"))
            .env("ANSIBLE_LOCAL_TEMP", self.path().join("local-tmp"))
            .env("ANSIBLE_REMOTE_TEMP", self.path().join("remote-tmp"))
            .env("HOME", self.path().join("home"))
            .env("IMAGE_LIFECYCLE_CACHE_DIR", self.path().join("cache"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("REGISTRY_USERNAME")
            .env_remove("REGISTRY_PASSWORD")
            .env_remove("IMAGE_LIFECYCLE_PLAIN_HTTP")
            .arg(Path::new(REPO).join("playbooks/cleanup.yml"))
            .arg("-e")
            .arg(format!("@{}", vars_file.display()))
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn state_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.path().join("state")).unwrap() {
            let p = e.unwrap().path().join("deploy-state.json");
            if p.exists() {
                out.push(p.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned());
            }
        }
        out.sort();
        out
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn manifest_status(host: &str, repo: &str, d: &Digest) -> u16 {
    reqwest::blocking::Client::new()
        .get(format!("http://{host}/v2/{repo}/manifests/{d}"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// Four old images in `acme/web` of `host`: v1…v4, oldest first.
fn push_images(host: &str) -> BTreeMap<&'static str, Digest> {
    ["v1", "v2", "v3", "v4"]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let d = push(
                &format!("{host}/acme/web:{t}"),
                &labelled(
                    &revision(&format!("{t}00000")),
                    t,
                    &format!("2025-01-0{}T00:00:00Z", i + 1),
                ),
            );
            (*t, d)
        })
        .collect()
}

/// A registry and a fault server forwarding to it (the playbook talks to
/// the fault server, so its log counts every request).
fn registry() -> (Registry, FaultServer) {
    let reg = Registry::start();
    let server = FaultServer::start(Some(reg.host.clone()), Arc::new(|_: &Req| Action::Forward));
    (reg, server)
}

#[test]
fn an_unreachable_host_ends_the_play_before_anything_is_read_or_deleted() {
    let (reg, server) = registry();
    let d = push_images(&reg.host);
    let w = Workdir::new(POLICY);
    let image = format!("{}/acme/web", server.host);
    w.inventory("dev", &[("web1", Host::Local)]);
    w.inventory("prod", &[("web2", Host::Local), ("web3", Host::Unreachable)]);
    w.deploy("web1", "dev", &image, &[&d["v1"], &d["v2"]]);
    w.deploy("web2", "prod", &image, &[&d["v3"]]);

    let started = Instant::now();
    let o = w.playbook(
        &["dev", "prod"],
        &json!({"cleanup_registry": server.host, "cleanup_apply": true}),
    );
    assert!(!o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("UNREACHABLE!"), "{out}");
    assert!(out.contains("web3"), "{out}");
    assert!(!out.contains("Run registry_cleanup on the controller"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(60), "it fails fast");
    assert_eq!(server.requests().len(), 0, "not one request reached the registry");
    assert_eq!(
        w.state_files(),
        Vec::<String>::new(),
        "no partial deploy state is written"
    );
    for (t, digest) in &d {
        assert_eq!(manifest_status(&reg.host, "acme/web", digest), 200, "{t}");
    }
}

#[test]
fn an_unreadable_deploy_info_file_ends_the_play_before_anything_is_deleted() {
    let (reg, server) = registry();
    let d = push_images(&reg.host);
    let w = Workdir::new(POLICY);
    let image = format!("{}/acme/web", server.host);
    w.inventory("dev", &[("web1", Host::Local)]);
    w.inventory("prod", &[("web2", Host::Local)]);
    w.deploy("web1", "dev", &image, &[&d["v2"]]);
    let broken = w.root("web2").join("acme/other");
    fs::create_dir_all(&broken).unwrap();
    fs::write(broken.join("deploy-info.yml"), "app: [unterminated\n").unwrap();

    let o = w.playbook(
        &["dev", "prod"],
        &json!({"cleanup_registry": server.host, "cleanup_apply": true}),
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("acme/other/deploy-info.yml"), "{}", text(&o));
    assert_eq!(server.requests().len(), 0, "not one request reached the registry");
    assert_eq!(w.state_files(), Vec::<String>::new());
    for digest in d.values() {
        assert_eq!(manifest_status(&reg.host, "acme/web", digest), 200);
    }
}

#[test]
fn a_policy_workspace_without_inventory_ends_the_play_first() {
    let (reg, server) = registry();
    push_images(&reg.host);
    let w = Workdir::new("workspaces: [dev, prod, staging]\n");
    w.inventory("dev", &[("web1", Host::Local)]);
    w.inventory("prod", &[("web2", Host::Local)]);
    let o = w.playbook(
        &["dev", "prod"],
        &json!({"cleanup_registry": server.host, "cleanup_apply": true}),
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("names workspaces staging without hosts in the inventories given"),
        "{}",
        text(&o)
    );
    assert_eq!(server.requests().len(), 0);
    assert_eq!(w.state_files(), Vec::<String>::new());
}

#[test]
fn a_limited_run_is_refused_before_any_state_is_written() {
    let (reg, server) = registry();
    let d = push_images(&reg.host);
    let w = Workdir::new(POLICY);
    let image = format!("{}/acme/web", server.host);
    w.inventory("dev", &[("web1", Host::Local)]);
    w.inventory("prod", &[("web2", Host::Local)]);
    w.deploy("web1", "dev", &image, &[&d["v1"]]);
    w.deploy("web2", "prod", &image, &[&d["v2"]]);
    // Without web2's state, v2 would look unprotected.
    let o = w.playbook_with(
        &["dev", "prod"],
        &json!({"cleanup_registry": server.host, "cleanup_apply": true}),
        &["--limit", "web1,localhost"],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("hosts web2 were left out (--limit)"), "{}", text(&o));
    assert_eq!(server.requests().len(), 0);
    assert_eq!(w.state_files(), Vec::<String>::new());
    for digest in d.values() {
        assert_eq!(manifest_status(&reg.host, "acme/web", digest), 200);
    }
}

#[test]
fn the_playbook_gathers_the_state_then_plans_and_applies() {
    let (reg, server) = registry();
    let d = push_images(&reg.host);
    let w = Workdir::new(POLICY);
    let image = format!("{}/acme/web", server.host);
    w.inventory("dev", &[("web1", Host::Local)]);
    w.inventory("prod", &[("web2", Host::Local)]);
    // web1 ran v1, then v2, now v3: protect_history 2 keeps v3 and v2.
    w.deploy("web1", "dev", &image, &[&d["v1"], &d["v2"], &d["v3"]]);
    w.deploy("web2", "prod", &image, &[&d["v3"]]);

    // Dry run: state written, plan printed and saved for review, nothing
    // deleted.
    let reviewed = w.path().join("reviewed.json");
    let o = w.playbook(
        &["dev", "prod"],
        &json!({"cleanup_registry": server.host, "cleanup_plan": reviewed}),
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("total: 2 digests to delete, 2 kept"), "{out}");
    assert!(out.contains("dry run: nothing deleted"), "{out}");
    // The whole plan is shown, each digest under its image.
    assert!(out.contains(&format!("IMAGE: {image}")), "{out}");
    for tag in ["v1", "v2", "v3", "v4"] {
        let short = d[tag].short(12);
        assert!(out.contains(short), "{tag} ({short}) is in the plan: {out}");
    }
    assert!(!server.requests().iter().any(|r| r.method == "DELETE"));
    assert_eq!(w.state_files(), ["dev", "prod"]);
    let dev: Value = serde_json::from_str(&read(&w.path().join("state/dev/deploy-state.json"))).unwrap();
    assert_eq!(dev["workspace"], "dev");
    assert_eq!(dev["hosts"], json!(["web1"]));
    assert_eq!(dev["records"][0]["host"], "web1");
    assert_eq!(dev["records"][0]["digest"], d["v3"].to_string());
    assert_eq!(dev["records"][0]["image"], image);
    for digest in d.values() {
        assert_eq!(manifest_status(&reg.host, "acme/web", digest), 200);
    }
    let mut plan: Value = serde_json::from_str(&read(&reviewed)).unwrap();
    assert_eq!(plan["applied"], false);
    let deleted: BTreeSet<String> = plan["plan"]["repositories"][0]["digests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["decision"] == "delete")
        .map(|x| x["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deleted, BTreeSet::from([d["v1"].to_string(), d["v4"].to_string()]));

    // Check mode with cleanup_apply: still only a dry run, and the reviewed
    // plan is read, not written over.
    fs::remove_dir_all(w.path().join("state")).unwrap();
    // The reviewer keeps v4.
    for x in plan["plan"]["repositories"][0]["digests"].as_array_mut().unwrap() {
        if x["digest"] == d["v4"].to_string().as_str() {
            x["decision"] = "keep".into();
        }
    }
    let plan = plan.to_string();
    fs::write(&reviewed, &plan).unwrap();
    let o = w.playbook_with(
        &["dev", "prod"],
        &json!({"cleanup_registry": server.host, "cleanup_apply": true, "cleanup_plan": reviewed}),
        &["--check"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("dry run: nothing deleted"), "{}", text(&o));
    assert!(text(&o).contains("not deleted by the reviewed plan"), "{}", text(&o));
    assert_eq!(read(&reviewed), plan);
    assert_eq!(w.state_files(), ["dev", "prod"], "fresh state for the dry run");
    // Check mode without cleanup_apply: a dry run that saves no plan.
    let o = w.playbook_with(
        &["dev", "prod"],
        &json!({"cleanup_registry": server.host, "cleanup_plan": reviewed}),
        &["--check"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("dry run: nothing deleted"), "{}", text(&o));
    assert_eq!(read(&reviewed), plan, "check mode wrote over the reviewed plan");
    assert!(!server.requests().iter().any(|r| r.method == "DELETE"));

    // Apply: what the reviewed plan deleted, no more.
    let o = w.playbook(
        &["dev", "prod"],
        &json!({"cleanup_registry": server.host, "cleanup_apply": true, "cleanup_plan": reviewed}),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("result: 1 digest deleted, 0 already gone, 0 skipped, 0 failed"),
        "{}",
        text(&o)
    );
    assert_eq!(read(&reviewed), plan);
    assert_eq!(manifest_status(&reg.host, "acme/web", &d["v1"]), 404);
    assert_eq!(manifest_status(&reg.host, "acme/web", &d["v4"]), 200);

    // Apply without it: the rest of the plan.
    let o = w.playbook(
        &["dev", "prod"],
        &json!({"cleanup_registry": server.host, "cleanup_apply": true}),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("result: 1 digest deleted, 0 already gone, 0 skipped, 0 failed"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("changed=1"), "{}", text(&o));
    let status: BTreeMap<&str, u16> = d
        .iter()
        .map(|(t, digest)| (*t, manifest_status(&reg.host, "acme/web", digest)))
        .collect();
    assert_eq!(
        status,
        BTreeMap::from([("v1", 404), ("v2", 200), ("v3", 200), ("v4", 404)])
    );
}

/// A registry run by a shell loop that starts it again whenever it exits,
/// so that the playbook can restart it with a command (there is no systemd
/// here). Each start appends whether the config is read-only to `starts`.
struct Supervised {
    host: String,
    dir: tempfile::TempDir,
    loop_: Child,
}

impl Supervised {
    fn start() -> Supervised {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let script = format!(
            "cd {d}; while [ ! -e stop ]; do \
               if grep -q readonly config.yml; then echo readonly >> starts; else echo writable >> starts; fi; \
               {bin} serve config.yml >> registry.log 2>&1 & echo $! > pid; wait $!; done",
            d = dir.path().display(),
            bin = registry_binary().display()
        );
        let loop_ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            // The shell's "Terminated" notes on each restart.
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Supervised { host, dir, loop_ };
        s.wait_up();
        s
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the supervised registry did not start: {}",
            read(&self.dir.path().join("registry.log"))
        );
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    fn storage_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = fs::read_dir(p) else { return 0 };
            rd.flatten()
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() { walk(&e.path()) } else { m.len() }
                })
                .sum()
        }
        walk(&self.dir.path().join("data"))
    }

    /// Requires htpasswd authentication (AUTH_USER / AUTH_PASSWORD) from
    /// now on, and restarts the registry so that it does.
    fn require_auth(&self) {
        let htpasswd = self.dir.path().join("htpasswd");
        fs::write(&htpasswd, format!("{AUTH_HTPASSWD}\n")).unwrap();
        let mut config = read(&self.config());
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
            htpasswd.display()
        ));
        fs::write(self.config(), config).unwrap();
        let restart = self.restart_command();
        assert!(
            Command::new(&restart[0])
                .args(&restart[1..])
                .status()
                .unwrap()
                .success()
        );
        self.wait_up();
        let anonymous = reqwest::blocking::get(format!("http://{}/v2/", self.host)).unwrap();
        assert_eq!(
            anonymous.status().as_u16(),
            401,
            "the registry now asks for credentials"
        );
    }

    /// Upload sessions the registry holds open, in every repository: those
    /// with a `startedat` file (a cancelled upload loses it; distribution
    /// 2.8 leaves its hash state behind, for the upload purger).
    fn open_uploads(&self) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            let Ok(rd) = fs::read_dir(p) else { return };
            for e in rd.flatten() {
                let path = e.path();
                if path.file_name().is_some_and(|n| n == "_uploads") {
                    out.extend(
                        fs::read_dir(&path)
                            .unwrap()
                            .flatten()
                            .map(|u| u.path())
                            .filter(|u| u.join("startedat").exists()),
                    );
                } else if path.is_dir() {
                    walk(&path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.path().join("data"), &mut out);
        out
    }

    /// Kills the registry and waits until it is gone; the loop starts it again.
    fn restart_command(&self) -> Vec<String> {
        let pid = self.dir.path().join("pid");
        vec![
            "sh".into(),
            "-c".into(),
            format!(
                "p=$(cat {}); kill $p; while kill -0 $p 2>/dev/null; do sleep 0.1; done",
                pid.display()
            ),
        ]
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = fs::write(self.dir.path().join("stop"), "");
        if let Ok(pid) = fs::read_to_string(self.dir.path().join("pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.loop_.kill();
        let _ = self.loop_.wait();
    }
}

/// The garbage-collection setup the tests below share: v1…v4 pushed to
/// `reg`, workspaces dev (web1 runs v3) and prod (web2 runs v4), and the
/// playbook variables for an apply with garbage collection on `localhost`,
/// restarting the registry with `restart`.
fn gc_setup(reg: &Supervised, restart: Vec<String>) -> (Workdir, BTreeMap<&'static str, Digest>, Value) {
    let d = push_images(&reg.host);
    let w = Workdir::new(POLICY);
    let image = format!("{}/acme/web", reg.host);
    w.inventory("dev", &[("web1", Host::Local)]);
    w.inventory("prod", &[("web2", Host::Local)]);
    w.deploy("web1", "dev", &image, &[&d["v3"]]);
    w.deploy("web2", "prod", &image, &[&d["v4"]]);
    let vars = json!({"cleanup_registry": reg.host, "cleanup_apply": true, "cleanup_garbage_collect": true,
                      "cleanup_registry_host": "localhost", "cleanup_registry_become": false,
                      "cleanup_registry_config": reg.config(),
                      "cleanup_registry_command": [registry_binary()],
                      "cleanup_registry_restart_command": restart});
    (w, d, vars)
}

#[test]
fn garbage_collection_runs_read_only_and_restores_the_registry() {
    let reg = Supervised::start();
    let (w, d, vars) = gc_setup(&reg, reg.restart_command());
    let config_before = read(&reg.config());
    let storage_before = reg.storage_bytes();

    let o = w.playbook(&["dev", "prod"], &vars);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("result: 2 digests deleted"), "{out}");
    assert!(out.contains("blobs marked, "), "{out}");
    assert_eq!(
        read(&reg.dir.path().join("starts")),
        "writable\nreadonly\nwritable\n",
        "collected while read-only, then restored"
    );
    assert_eq!(
        read(&reg.config()),
        config_before,
        "the configuration is restored byte for byte"
    );
    assert!(reg.storage_bytes() < storage_before, "the collection reclaimed storage");
    assert_eq!(manifest_status(&reg.host, "acme/web", &d["v1"]), 404);
    for t in ["v3", "v4"] {
        let dir = tempfile::tempdir().unwrap();
        let c = Command::new(skopeo())
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{}/acme/web:{t}", reg.host))
            .arg(format!("dir:{}", dir.path().join("x").display()))
            .output()
            .unwrap();
        assert!(c.status.success(), "{t}: {}", String::from_utf8_lossy(&c.stderr));
    }
    // Writable again.
    push(
        &format!("{}/acme/web:v5", reg.host),
        &labelled(&revision("v500000"), "v5", "2025-01-05T00:00:00Z"),
    );
}

#[test]
fn a_registry_still_writable_after_the_restart_is_not_collected() {
    let reg = Supervised::start();
    // A "restart" that restarts nothing: the registry keeps its writable
    // configuration, as when the unit reads another file than the one given.
    let (w, _, vars) = gc_setup(&reg, vec!["true".into()]);
    let config_before = read(&reg.config());

    let o = w.playbook(&["dev", "prod"], &vars);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("result: 2 digests deleted"),
        "the cleanup itself ran: {out}"
    );
    assert!(out.contains("still accepts uploads after the restart"), "{out}");
    assert!(!out.contains("blobs marked"), "nothing was collected: {out}");
    assert_eq!(read(&reg.dir.path().join("starts")), "writable\n", "never restarted");
    assert_eq!(read(&reg.config()), config_before, "the configuration is put back");
    assert_eq!(
        reg.open_uploads(),
        Vec::<PathBuf>::new(),
        "the probe's upload was cancelled: {out}"
    );
}

#[test]
fn a_registry_with_auth_is_checked_with_the_probe_credentials() {
    let reg = Supervised::start();
    let (w, _, vars) = gc_setup(&reg, reg.restart_command());
    reg.require_auth();
    // registry_cleanup reads its credentials from the Docker config.
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_USER}:{AUTH_PASSWORD}"));
    fs::create_dir_all(w.path().join("home/.docker")).unwrap();
    fs::write(
        w.path().join("home/.docker/config.json"),
        json!({"auths": {reg.host.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();

    // Without probe credentials: the check cannot tell, says so, and the
    // collection runs on the strength of the restart.
    let o = w.playbook(&["dev", "prod"], &vars);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("result: 2 digests deleted"), "{out}");
    assert!(out.contains("cannot check that it is read-only"), "{out}");
    assert!(out.contains("blobs marked, "), "{out}");

    // With them: checked (a read-only registry answers the user's upload
    // with 405), no warning, and the password never shown.
    let mut vars = vars;
    vars["cleanup_registry_probe_username"] = json!(AUTH_USER);
    vars["cleanup_registry_probe_password"] = json!(AUTH_PASSWORD);
    let o = w.playbook(&["dev", "prod"], &vars);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("cannot check that it is read-only"), "{out}");
    assert!(out.contains("blobs marked, "), "{out}");
    assert!(!out.contains(AUTH_PASSWORD), "{out}");

    // Credentials the registry refuses: the play cannot check, and stops.
    let config_before = read(&reg.config());
    vars["cleanup_registry_probe_password"] = json!("not-the-password");
    let o = w.playbook(&["dev", "prod"], &vars);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("refused the upload of"), "{out}");
    assert!(!out.contains("blobs marked"), "{out}");
    assert_eq!(read(&reg.config()), config_before, "the configuration is put back");
    assert_eq!(
        read(&reg.dir.path().join("starts")),
        "writable\nwritable\nreadonly\nwritable\nreadonly\nwritable\nreadonly\nwritable\n",
        "collected read-only twice, restored each time"
    );
    assert_eq!(reg.open_uploads(), Vec::<PathBuf>::new());
}

/// A 403 to the probe's upload (a proxy or token service that forbids
/// anonymous pushes, where distribution's htpasswd says 401), without probe
/// credentials: the same warning as a 401, and the collection runs on the
/// strength of the restart.
#[test]
fn a_403_to_the_probe_without_credentials_warns_as_a_401_does() {
    let reg = Supervised::start();
    let (w, _, mut vars) = gc_setup(&reg, reg.restart_command());
    let config_before = read(&reg.config());
    // The play checks the registry through this proxy, which forbids the
    // probe's upload and forwards the rest.
    let proxy = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(|req: &Req| {
            if req.method == "POST" && req.path.contains("/readonly-probe/blobs/uploads/") {
                Action::Respond(Resp::new(
                    403,
                    r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
                ))
            } else {
                Action::Forward
            }
        }),
    );
    vars["cleanup_registry_url"] = json!(format!("http://{}", proxy.host));

    let o = w.playbook(&["dev", "prod"], &vars);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("result: 2 digests deleted"), "{out}");
    assert!(
        out.contains("asks for credentials (HTTP 403), so the play cannot check that it is read-only"),
        "{out}"
    );
    assert!(out.contains("blobs marked, "), "{out}");
    assert_eq!(
        proxy.requests().iter().filter(|r| r.method == "POST").count(),
        1,
        "one probe, through the proxy: {:?}",
        proxy.requests()
    );
    assert_eq!(
        read(&reg.dir.path().join("starts")),
        "writable\nreadonly\nwritable\n",
        "collected while read-only, then restored"
    );
    assert_eq!(read(&reg.config()), config_before, "the configuration is put back");
    assert_eq!(reg.open_uploads(), Vec::<PathBuf>::new());
}
