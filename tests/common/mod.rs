//! Shared test helpers: a real distribution registry (the Debian package
//! `docker-registry`) on a free loopback port with its own data directory,
//! fixture pushing, running the binaries, and a small fault/paging HTTP
//! server for what the real registry cannot show.
#![allow(dead_code)]

pub mod fault;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use image_lifecycle::fixture::{ImageSpec, ci_labels, oci_client, push_image, push_index};
use image_lifecycle::reference::Digest;

/// The user and password of the registry started with [`Registry::start_with_auth`].
pub const AUTH_USER: &str = "tester";
pub const AUTH_PASSWORD: &str = "s3cr3t-Pa55word";
/// bcrypt of AUTH_PASSWORD (cost 5), for the registry's htpasswd file.
pub const AUTH_HTPASSWD: &str = "tester:$2b$05$q3MI5xZ5E0O5COrC7GLPkOh3iZJo//OQPSel5h4/usyQ89ekc.2i6";

/// The registry binary, or a failure saying how to install it.
pub fn registry_binary() -> PathBuf {
    for p in ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!(
        "the distribution registry is not installed: run `scripts/setup` \
         (it runs `apt-get install docker-registry`)"
    );
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running registry, stopped on drop.
pub struct Registry {
    /// `127.0.0.1:PORT`.
    pub host: String,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_config("")
    }

    /// With htpasswd authentication: AUTH_USER / AUTH_PASSWORD.
    pub fn start_with_auth() -> Registry {
        Self::start_config("auth")
    }

    fn start_config(kind: &str) -> Registry {
        let bin = registry_binary();
        let dir = tempfile::tempdir().unwrap();
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            let auth = if kind == "auth" {
                std::fs::write(dir.path().join("htpasswd"), format!("{AUTH_HTPASSWD}\n")).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                )
            } else {
                String::new()
            };
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n{auth}http:\n  addr: {host}\n  secret: test-secret\n",
                dir.path().join("data").display()
            );
            let cfg = dir.path().join("config.yml");
            std::fs::write(&cfg, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new(&bin)
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(&host).is_ok() {
                    return Registry { host, dir, child };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        }
        panic!("the registry did not start; its log:\n{last_log}");
    }

    /// `127.0.0.1:PORT/REPO`.
    pub fn repo(&self, repo: &str) -> String {
        format!("{}/{}", self.host, repo)
    }

    /// Bytes stored under the data directory.
    pub fn storage_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else { return 0 };
            rd.flatten()
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() { walk(&e.path()) } else { m.len() }
                })
                .sum()
        }
        walk(&self.dir.path().join("data"))
    }

    /// Runs the registry's garbage collection over its data (the registry
    /// may keep running: tests call this when nothing writes).
    pub fn garbage_collect(&self) -> Output {
        Command::new(registry_binary())
            .args(["garbage-collect"])
            .arg(self.dir.path().join("config.yml"))
            .output()
            .unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A current-thread runtime for pushing fixtures.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An image with the four CI labels.
pub fn labelled(revision: &str, description: &str, created: &str) -> ImageSpec {
    ImageSpec {
        labels: ci_labels(revision, description, created, "https://github.com/acme/web"),
        layer: format!("layer of {revision} {description}").into_bytes(),
        ..Default::default()
    }
}

/// Pushes `spec` to `target` (`HOST:PORT/REPO:TAG`, or `HOST:PORT/REPO` by digest only).
pub fn push(target: &str, spec: &ImageSpec) -> Digest {
    rt().block_on(push_image(&oci_client(), target, spec)).unwrap()
}

/// Pushes an index of `children` to `target`.
pub fn push_multi(target: &str, children: &[ImageSpec], annotations: &BTreeMap<String, String>) -> Digest {
    rt().block_on(push_index(&oci_client(), target, children, annotations, false))
        .unwrap()
}

/// Pushes an index of `children` by digest into `target`'s repository, then
/// an index holding only that one (no platform, as buildx nests them) under
/// `target`. Returns (outer, inner).
pub fn push_nested(target: &str, children: &[ImageSpec]) -> (Digest, Digest) {
    let inner = push_multi(repo_of(target), children, &BTreeMap::new());
    (push_wrapper(target, &inner, 1), inner)
}

/// `HOST:PORT/REPO` of `HOST:PORT/REPO[:TAG]`.
fn repo_of(target: &str) -> &str {
    target
        .rsplit_once(':')
        .filter(|(r, _)| r.contains('/'))
        .map_or(target, |(r, _)| r)
}

/// Pushes to `target` (`HOST:PORT/REPO[:TAG]`) an index holding only index
/// `inner` of the same repository, listed `times` times, without a platform.
pub fn push_wrapper(target: &str, inner: &Digest, times: usize) -> Digest {
    push_wrapper_with(target, inner, times, &BTreeMap::new())
}

/// A chain of `levels` indexes above index `inner`, each holding only the
/// one below: the top one pushed to `target` (`HOST:PORT/REPO[:TAG]`), the
/// others untagged to its repository. The indexes, bottom to top.
pub fn push_chain(target: &str, inner: &Digest, levels: usize) -> Vec<Digest> {
    let mut chain: Vec<Digest> = Vec::with_capacity(levels);
    for i in 0..levels {
        let to = if i + 1 == levels { target } else { repo_of(target) };
        chain.push(push_wrapper(to, chain.last().unwrap_or(inner), 1));
    }
    chain
}

/// [`push_wrapper`], the outer index with `annotations`.
pub fn push_wrapper_with(target: &str, inner: &Digest, times: usize, annotations: &BTreeMap<String, String>) -> Digest {
    let entry = (inner.clone(), image_lifecycle::registry::MEDIA_OCI_INDEX, None);
    push_index_of(target, &vec![entry; times], annotations)
}

/// Pushes to `target` (`HOST:PORT/REPO[:TAG]`) an OCI index of `entries`,
/// manifests already in the same repository: (digest, media type,
/// `os/arch` of the descriptor if any).
pub fn push_index_of(
    target: &str,
    entries: &[(Digest, &str, Option<&str>)],
    annotations: &BTreeMap<String, String>,
) -> Digest {
    let index = image_lifecycle::registry::MEDIA_OCI_INDEX;
    let (host, path) = repo_of(target).split_once('/').unwrap();
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(d, media_type, platform)| {
            let body = reqwest::blocking::Client::new()
                .get(format!("http://{host}/v2/{path}/manifests/{d}"))
                .header("Accept", *media_type)
                .send()
                .unwrap()
                .error_for_status()
                .unwrap()
                .bytes()
                .unwrap();
            let mut e = serde_json::json!({"mediaType": media_type, "digest": d.to_string(), "size": body.len()});
            if let Some((os, arch)) = platform.and_then(|p| p.split_once('/')) {
                e["platform"] = serde_json::json!({"os": os, "architecture": arch});
            }
            e
        })
        .collect();
    let mut outer = serde_json::json!({"schemaVersion": 2, "mediaType": index, "manifests": manifests});
    if !annotations.is_empty() {
        outer["annotations"] = serde_json::json!(annotations);
    }
    let body = serde_json::to_vec(&outer).unwrap();
    rt().block_on(image_lifecycle::fixture::push_manifest(
        &oci_client(),
        target,
        &body,
        index,
    ))
    .unwrap()
}

/// A 40-hex revision starting with `short`.
pub fn revision(short: &str) -> String {
    format!("{short}{}", "0".repeat(40 - short.len()))
}

/// A clean environment for running a binary: no credentials from the
/// machine, a private cache.
pub struct Env {
    pub home: tempfile::TempDir,
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        let home = tempfile::tempdir().unwrap();
        let vars = vec![
            ("HOME".into(), home.path().display().to_string()),
            (
                "IMAGE_LIFECYCLE_CACHE_DIR".into(),
                home.path().join("cache").display().to_string(),
            ),
            ("USER".into(), "tester".into()),
            // Podman's primary auth file, here and not in the machine's
            // /run/containers/$UID (the default without XDG_RUNTIME_DIR).
            ("XDG_RUNTIME_DIR".into(), home.path().join("run").display().to_string()),
        ];
        Env { home, vars }
    }

    pub fn set(mut self, k: &str, v: &str) -> Env {
        self.vars.push((k.into(), v.into()));
        self
    }

    /// Runs binary `name` (built by cargo for the tests) with `args`.
    pub fn run(&self, exe: &str, args: &[&str]) -> Output {
        self.command(exe, args).output().unwrap()
    }

    /// The command [`Env::run`] runs, to spawn it instead.
    pub fn command(&self, exe: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(exe);
        cmd.args(args).stdin(Stdio::null());
        for k in [
            "REGISTRY_USERNAME",
            "REGISTRY_PASSWORD",
            "REGISTRY_AUTH_FILE",
            "DOCKER_CONFIG",
            "XDG_RUNTIME_DIR",
            "XDG_CONFIG_HOME",
            "XDG_CACHE_HOME",
            "IMAGE_LIFECYCLE_PLAIN_HTTP",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Reads a whole file.
pub fn read(p: &Path) -> String {
    let mut s = String::new();
    std::fs::File::open(p).unwrap().read_to_string(&mut s).unwrap();
    s
}

/// The `.venv/bin/NAME` tool of the project, or a failure saying how to get it.
pub fn venv_tool(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin").join(name);
    assert!(
        p.exists(),
        "`{}` is missing: run `scripts/setup` (it creates .venv/ from requirements.txt)",
        p.display()
    );
    p
}

/// `skopeo`, or a failure saying how to install it.
pub fn skopeo() -> PathBuf {
    for p in ["/usr/bin/skopeo", "/usr/local/bin/skopeo"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("skopeo is not installed: run `scripts/setup` (it runs `apt-get install skopeo`)");
}

impl Registry {
    /// A registry that refuses deletes (`storage.delete.enabled: false`),
    /// as the distribution registry is configured by default.
    pub fn start_without_delete() -> Registry {
        let mut reg = Registry::start();
        reg.reconfigure(|c| c.replace("  delete:\n    enabled: true\n", "  delete:\n    enabled: false\n"));
        reg
    }

    /// Stops the registry, rewrites its config with `edit`, and starts it
    /// again on the same address and data.
    pub fn reconfigure(&mut self, edit: impl FnOnce(String) -> String) {
        let cfg = self.dir.path().join("config.yml");
        let before = read(&cfg);
        let after = edit(before.clone());
        assert_ne!(before, after, "the edit changed nothing in the registry config");
        std::fs::write(&cfg, after).unwrap();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::fs::File::create(self.dir.path().join("registry.log")).unwrap();
        self.child = Command::new(registry_binary())
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the registry did not start again; its log:\n{}",
                read(&self.dir.path().join("registry.log"))
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the registry did not listen again on {}", self.host);
    }
}
