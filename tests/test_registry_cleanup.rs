//! `registry_cleanup` end to end against the real distribution registry
//! (Debian `docker-registry` 2.8, deletes enabled): what the dry run and
//! `--apply` do to the registry, what its garbage collection leaves
//! pullable, and the safety rules under faults. Cases that need the plan
//! and the apply apart (a tag moved in between) call the library.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::fault::{Action, FaultServer, Req, Resp};
use common::*;
use image_lifecycle::cleanup::{Decision, Plan, Planning, Reason};
use image_lifecycle::credentials::LookupEnv;
use image_lifecycle::deploy_state::DeployState;
use image_lifecycle::fixture::ImageSpec;
use image_lifecycle::image::{MAX_INDEX_DEPTH, Platform};
use image_lifecycle::policy::Policy;
use image_lifecycle::prune::{DeleteProgress, Interrupt, SkipCause, apply, scan_and_plan};
use image_lifecycle::reference::Digest;
use image_lifecycle::registry::{Client, ClientOptions};
use image_lifecycle::scan::Progress;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_registry_cleanup");

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json";

const POLICY: &str = "workspaces: [dev, prod]
defaults:
  keep_last: 2
  keep_younger_than: 7d
  keep_tags: ['^latest$']
  protect_history: 2
repositories:
  acme/api: {keep_last: 1}
  'other/*': {keep_last: 10}
";

/// A registry holding one digest for each rule, the policy above, and the
/// deploy state of `dev` (web1 runs t3, ran t2 and t1 before) and `prod`
/// (web2 runs t7).
///
/// | digest | tags | created | decision |
/// |---|---|---|---|
/// | acme/web t1 | t1 | 2025-01-01 | delete: third in web1's history, protect_history 2 |
/// | acme/web t2 | t2 | 2025-01-02 | keep: rollback target on dev/web1 |
/// | acme/web t3 | t3 | 2025-01-03 | keep: deployed on dev/web1 |
/// | acme/web t4 | t4, t4-alias | 2025-01-04 | delete |
/// | acme/web t5 | t5 (index of 2 children) | 2025-01-05 | delete, with both children |
/// | acme/web t6 | t6, latest | 2025-01-06 | keep: keep_tags |
/// | acme/web t7 | t7 | 2025-01-07 | keep: deployed on prod/web2 |
/// | acme/web t8 | t8 | 2025-01-08 | keep: keep_last #2 |
/// | acme/web t9 | t9 | now | keep: keep_last #1, younger than 7d |
/// | acme/api a1, a2 | a1, a2 | 2025-02-0x | delete (keep_last 1) |
/// | acme/api a3 | a3 | 2025-02-03 | keep: keep_last #1 |
/// | other/tool o1 | o1 | 2024-06-01 | keep: keep_last 10 |
struct Fixture {
    reg: Registry,
    dir: tempfile::TempDir,
    /// Name (t1…, a1…, o1, t5/amd64, t5/arm64) → digest.
    d: BTreeMap<String, Digest>,
}

const REPOS: [&str; 3] = ["acme/web", "acme/api", "other/tool"];

fn now_utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn image(name: &str, created: &str) -> ImageSpec {
    labelled(&revision(&format!("{:0>7}", name.replace('/', ""))), name, created)
}

impl Fixture {
    fn new() -> Fixture {
        Self::on(Registry::start())
    }

    fn on(reg: Registry) -> Fixture {
        let mut d = BTreeMap::new();
        let web = reg.repo("acme/web");
        for (name, day) in [
            ("t1", 1),
            ("t2", 2),
            ("t3", 3),
            ("t4", 4),
            ("t6", 6),
            ("t7", 7),
            ("t8", 8),
        ] {
            let created = format!("2025-01-0{day}T00:00:00Z");
            d.insert(name.to_string(), push(&format!("{web}:{name}"), &image(name, &created)));
        }
        push(&format!("{web}:t4-alias"), &image("t4", "2025-01-04T00:00:00Z"));
        push(&format!("{web}:latest"), &image("t6", "2025-01-06T00:00:00Z"));
        d.insert("t9".into(), push(&format!("{web}:t9"), &image("t9", &now_utc())));
        let child = |p: &str| ImageSpec {
            platform: p.parse::<Platform>().unwrap(),
            ..image(&format!("t5 {p}"), "2025-01-05T00:00:00Z")
        };
        let children = [child("linux/amd64"), child("linux/arm64")];
        d.insert(
            "t5".into(),
            push_multi(&format!("{web}:t5"), &children, &BTreeMap::new()),
        );
        for (c, p) in children.iter().zip(["t5/amd64", "t5/arm64"]) {
            // The same spec pushed again gives the same digest: read it back.
            let digest = push(&web, &ImageSpec { ..c.clone() });
            d.insert(p.into(), digest);
        }
        let api = reg.repo("acme/api");
        for (name, day) in [("a1", 1), ("a2", 2), ("a3", 3)] {
            let created = format!("2025-02-0{day}T00:00:00Z");
            d.insert(name.into(), push(&format!("{api}:{name}"), &image(name, &created)));
        }
        d.insert(
            "o1".into(),
            push(&reg.repo("other/tool:o1"), &image("o1", "2024-06-01T00:00:00Z")),
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.yml"), POLICY).unwrap();
        let f = Fixture { reg, dir, d };
        f.write_states(&f.reg.host.clone());
        f
    }

    fn digest(&self, name: &str) -> &Digest {
        &self.d[name]
    }

    /// The digests of `names`, sorted.
    fn digests(&self, names: &[&str]) -> BTreeSet<Digest> {
        names.iter().map(|n| self.digest(n).clone()).collect()
    }

    /// Writes `dev.json` and `prod.json` naming images on `host`.
    fn write_states(&self, host: &str) {
        let record = |h: &str, ws: &str, current: &str, history: &[&str]| {
            serde_json::json!({
                "host": h, "path": "/opt/acme/web/deploy-info.yml", "app": "web", "workspace": ws,
                "image": format!("{host}/acme/web"), "tag": current, "digest": self.digest(current).to_string(),
                "deployed_at": "2025-03-01T00:00:00Z",
                "history": history.iter().map(|n| serde_json::json!({
                    "digest": self.digest(n).to_string(), "tag": n, "deployed_at": "2025-02-01T00:00:00Z"}))
                    .collect::<Vec<_>>(),
            })
        };
        let dev = serde_json::json!({"workspace": "dev", "collected_at": "2025-03-02T00:00:00Z", "hosts": ["web1"],
            "records": [record("web1", "dev", "t3", &["t1", "t2", "t3"])]});
        let prod = serde_json::json!({"workspace": "prod", "collected_at": "2025-03-02T00:00:00Z", "hosts": ["web2"],
            "records": [record("web2", "prod", "t7", &["t7"])]});
        std::fs::write(self.path("dev.json"), dev.to_string()).unwrap();
        std::fs::write(self.path("prod.json"), prod.to_string()).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `registry_cleanup HOST --policy … --protected dev.json --protected prod.json ARGS…`.
    fn run(&self, host: &str, args: &[&str]) -> std::process::Output {
        self.command(host, args).output().unwrap()
    }

    /// The command [`Fixture::run`] runs.
    fn command(&self, host: &str, args: &[&str]) -> Command {
        let policy = self.path("policy.yml");
        let dev = self.path("dev.json");
        let prod = self.path("prod.json");
        let mut all: Vec<&str> = vec![
            host,
            "--policy",
            policy.to_str().unwrap(),
            "--protected",
            dev.to_str().unwrap(),
            "--protected",
            prod.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        Env::new().command(BIN, &all)
    }

    /// A policy under which no rule keeps anything: only deploy state does
    /// (protect_history 2).
    fn keep_only_what_deploys_protect(&self) {
        std::fs::write(
            self.path("policy.yml"),
            "workspaces: [dev, prod]\ndefaults: {keep_last: 0, keep_younger_than: 0s, keep_tags: [], protect_history: 2}\n",
        )
        .unwrap();
    }

    /// Under [`Fixture::keep_only_what_deploys_protect`], `o` (an `--apply
    /// --json` run) deleted all but what web1 and web2 run and may go back
    /// to (t2, t3, t7), and those still pull completely.
    fn assert_only_deploys_kept(&self, o: &std::process::Output) {
        let kept = self.digests(&["t2", "t3", "t7"]);
        let all: BTreeSet<Digest> = self.d.values().cloned().collect();
        let deleted: BTreeSet<Digest> = all.difference(&kept).cloned().collect();
        assert_eq!(result_digests(&json(o), "deleted"), deleted);
        assert_eq!(self.gone(), deleted);
        for t in ["t2", "t3", "t7"] {
            pulls_completely(&self.reg.repo(&format!("acme/web:{t}"))).unwrap();
        }
    }

    /// What the planner must delete.
    fn expected_deletions(&self) -> BTreeSet<Digest> {
        self.digests(&["t1", "t4", "t5", "t5/amd64", "t5/arm64", "a1", "a2"])
    }

    /// Every fixture digest that must survive.
    fn expected_kept(&self) -> BTreeSet<Digest> {
        let del = self.expected_deletions();
        self.d.values().filter(|d| !del.contains(*d)).cloned().collect()
    }

    /// The repository of a fixture digest.
    fn repo_of(&self, name: &str) -> &'static str {
        match name.chars().next() {
            Some('t') => "acme/web",
            Some('a') => "acme/api",
            _ => "other/tool",
        }
    }

    /// The fixture digests whose manifest now answers 404.
    fn gone(&self) -> BTreeSet<Digest> {
        self.d
            .iter()
            .filter(|(n, d)| manifest_status(&self.reg.host, self.repo_of(n), d) == 404)
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// Every tag of every repository with the digest it points to, and the
    /// GET status of every fixture manifest: what must not change.
    fn snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for repo in REPOS {
            for (tag, d) in tags(&self.reg.host, repo) {
                out.insert(format!("{repo}:{tag}"), d.to_string());
            }
        }
        for (n, d) in &self.d {
            out.insert(
                format!("{n}@{d}"),
                manifest_status(&self.reg.host, self.repo_of(n), d).to_string(),
            );
        }
        out
    }

    fn policy(&self) -> Policy {
        Policy::load(&self.path("policy.yml")).unwrap()
    }

    fn states(&self) -> Vec<DeployState> {
        ["dev.json", "prod.json"]
            .iter()
            .map(|f| DeployState::load(&self.path(f)).unwrap())
            .collect()
    }

    /// The plan, made by the library as the binary makes it.
    fn plan(&self, client: &Client) -> Plan {
        let (policy, states) = (self.policy(), self.states());
        let planning = Planning {
            policy: &policy,
            states: &states,
            now: chrono::Utc::now(),
            reviewed: None,
        };
        rt().block_on(scan_and_plan(
            client,
            &self.reg.host,
            &Platform::default(),
            &Progress::quiet(),
            &planning,
        ))
        .unwrap()
    }
}

fn client() -> Client {
    Client::new(ClientOptions {
        cache_dir: None,
        lookup_env: LookupEnv::default(),
        ..Default::default()
    })
    .unwrap()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::new()
}

fn manifest_status(host: &str, repo: &str, reference: &Digest) -> u16 {
    http()
        .get(format!("http://{host}/v2/{repo}/manifests/{reference}"))
        .header("Accept", ACCEPT)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// Tag → digest, read with plain HTTP (not with the code under test).
fn tags(host: &str, repo: &str) -> BTreeMap<String, Digest> {
    let v: Value = http()
        .get(format!("http://{host}/v2/{repo}/tags/list"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<String> = v["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    names
        .into_iter()
        .map(|t| {
            let r = http()
                .head(format!("http://{host}/v2/{repo}/manifests/{t}"))
                .header("Accept", ACCEPT)
                .send()
                .unwrap();
            let d = r.headers()["docker-content-digest"].to_str().unwrap().parse().unwrap();
            (t, d)
        })
        .collect()
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

/// The digests the `--json` plan decides to delete.
fn planned_deletions(v: &Value) -> BTreeSet<Digest> {
    v["plan"]["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["digests"].as_array().unwrap())
        .filter(|d| d["decision"] == "delete")
        .map(|d| d["digest"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// The plan entry of `digest` in a `--json` report, in any repository.
fn planned(v: &Value, digest: &Digest) -> Value {
    v["plan"]["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["digests"].as_array().unwrap())
        .find(|d| d["digest"] == digest.to_string().as_str())
        .unwrap_or_else(|| panic!("{digest} is not in the plan"))
        .clone()
}

fn result_digests(v: &Value, list: &str) -> BTreeSet<Digest> {
    v["result"][list]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// `skopeo copy` of `reference` into a fresh directory: every blob is read.
fn pulls_completely(reference: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(skopeo())
        .args(["copy", "--src-tls-verify=false", "--all"])
        .arg(format!("docker://{reference}"))
        .arg(format!("dir:{}", dir.path().join("x").display()))
        .output()
        .unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

#[test]
fn dry_run_changes_nothing_and_plans_every_digest_with_its_reason() {
    let f = Fixture::new();
    let before = f.snapshot();
    let o = f.run(&f.reg.host, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["applied"], false);
    assert_eq!(v["result"], Value::Null);
    assert_eq!(planned_deletions(&v), f.expected_deletions());
    assert_eq!(v["plan"]["delete_count"], 7);
    assert_eq!(v["plan"]["keep_count"], 8);
    assert_eq!(v["plan"]["workspaces"], serde_json::json!(["dev", "prod"]));

    // Every digest with its tags, created date, decision and first reason.
    let mut rows = BTreeMap::new();
    for r in v["plan"]["repositories"].as_array().unwrap() {
        for d in r["digests"].as_array().unwrap() {
            let name =
                f.d.iter()
                    .find(|(_, x)| x.to_string() == d["digest"].as_str().unwrap())
                    .map(|(n, _)| n.clone())
                    .unwrap_or_else(|| panic!("unknown digest {d}"));
            let tags: Vec<&str> = d["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            rows.insert(
                name,
                format!(
                    "{} [{}] {} {}",
                    d["decision"].as_str().unwrap(),
                    tags.join(","),
                    d["created"].as_str().unwrap_or("-").get(..10).unwrap_or("-"),
                    d["reasons"][0]["rule"].as_str().unwrap()
                ),
            );
        }
    }
    let today = &now_utc()[..10];
    let expected: BTreeMap<String, String> = [
        ("a1", "delete [a1] 2025-02-01 expired".to_string()),
        ("a2", "delete [a2] 2025-02-02 expired".into()),
        ("a3", "keep [a3] 2025-02-03 keep_last".into()),
        ("o1", "keep [o1] 2024-06-01 keep_last".into()),
        ("t1", "delete [t1] 2025-01-01 expired".into()),
        ("t2", "keep [t2] 2025-01-02 rollback_target".into()),
        ("t3", "keep [t3] 2025-01-03 deployed".into()),
        ("t4", "delete [t4,t4-alias] 2025-01-04 expired".into()),
        ("t5", "delete [t5] 2025-01-05 expired".into()),
        ("t5/amd64", "delete [] 2025-01-05 only_in_deleted_indexes".into()),
        ("t5/arm64", "delete [] 2025-01-05 only_in_deleted_indexes".into()),
        ("t6", "keep [latest,t6] 2025-01-06 kept_tag".into()),
        ("t7", "keep [t7] 2025-01-07 deployed".into()),
        ("t8", "keep [t8] 2025-01-08 keep_last".into()),
        ("t9", format!("keep [t9] {today} keep_last")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(rows, expected);
    assert!(v["plan"]["reclaim_bytes"].as_u64().unwrap() > 0);
    assert_eq!(f.snapshot(), before, "a dry run changes nothing");

    // The same plan for people, and a dry run note.
    let o = f.run(&f.reg.host, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains(&format!("IMAGE: {}/acme/api   policy: acme/api\n", f.reg.host)),
        "{text}"
    );
    let t4 = format!(
        "\n    {}    t4, t4-alias  2025-01-04 00:00:00  delete    older than 7d, newest #6 beyond keep_last 2\n",
        f.digest("t4").short(12)
    );
    assert!(text.contains(&t4), "{text}");
    assert!(
        text.contains(&format!("└ {}", f.digest("t5/amd64").short(12))),
        "{text}"
    );
    assert!(text.contains("total: 7 digests to delete, 8 kept, "), "{text}");
    assert!(
        text.ends_with("dry run: nothing deleted; run again with --apply to delete 7 digests\n"),
        "{text}"
    );
    assert_eq!(f.snapshot(), before, "a dry run changes nothing");
}

#[test]
fn apply_deletes_exactly_the_plan_and_after_gc_the_rest_still_pulls() {
    let f = Fixture::new();
    let o = f.run(&f.reg.host, &["--json"]);
    let planned = planned_deletions(&json(&o));
    assert_eq!(planned, f.expected_deletions());
    let storage_before = f.reg.storage_bytes();

    let o = f.run(&f.reg.host, &["--apply", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["applied"], true);
    assert_eq!(planned_deletions(&v), planned);
    assert_eq!(result_digests(&v, "deleted"), planned);
    assert_eq!(v["result"]["deleted_count"], 7);
    assert_eq!(v["result"]["already_gone_count"], 0);
    assert_eq!(v["result"]["skipped"], serde_json::json!([]));
    assert_eq!(v["result"]["failed"], serde_json::json!([]));
    assert_eq!(v["result"]["stopped"], Value::Null);
    assert_eq!(f.gone(), planned, "exactly the planned digests are gone");
    let web: Vec<String> = tags(&f.reg.host, "acme/web").into_keys().collect();
    assert_eq!(web, ["latest", "t2", "t3", "t6", "t7", "t8", "t9"]);
    let api: Vec<String> = tags(&f.reg.host, "acme/api").into_keys().collect();
    assert_eq!(api, ["a3"]);

    let gc = f.reg.garbage_collect();
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    let storage_after = f.reg.storage_bytes();
    assert!(
        storage_after < storage_before,
        "storage did not shrink: {storage_before} → {storage_after}"
    );
    for (name, d) in &f.d {
        if f.expected_kept().contains(d) {
            let r = format!("{}@{d}", f.reg.repo(f.repo_of(name)));
            pulls_completely(&r).unwrap_or_else(|e| panic!("{name} ({r}) no longer pulls: {e}"));
        }
    }
    for t in ["latest", "t2", "t3", "t7"] {
        pulls_completely(&f.reg.repo(&format!("acme/web:{t}"))).unwrap();
    }
    assert!(pulls_completely(&format!("{}@{}", f.reg.repo("acme/web"), f.digest("t1"))).is_err());

    // Nothing is left to do.
    let o = f.run(&f.reg.host, &["--apply", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["plan"]["delete_count"], 0);
    assert_eq!(v["result"]["deleted"], serde_json::json!([]));
}

#[test]
fn deploy_state_alone_protects_the_current_and_recent_digests() {
    let f = Fixture::new();
    // No rule keeps anything: only deploy state does.
    f.keep_only_what_deploys_protect();
    let o = f.run(&f.reg.host, &["--apply", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    f.assert_only_deploys_kept(&o);
    // protect_history 3 would have kept t1 as well: it is only the history.
    let v = json(&o);
    let t1 = planned(&v, f.digest("t1"));
    assert_eq!(t1["decision"], "delete");
    assert_eq!(t1["reasons"][0]["rule"], "expired");
}

/// The deploy state names the registry `localhost:PORT`, the cleanup runs
/// on `127.0.0.1:PORT`: one registry, two names. What the hosts run and
/// may go back to stays, with a warning naming the other name.
#[test]
fn deploy_state_naming_the_registry_another_way_protects_all_the_same() {
    let f = Fixture::new();
    let alias = f.reg.host.replacen("127.0.0.1", "localhost", 1);
    assert_ne!(alias, f.reg.host);
    f.write_states(&alias);
    f.keep_only_what_deploys_protect();
    let o = f.run(&f.reg.host, &["--apply", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "2 deploy records name images on `{alias}`, not on `{}`",
            f.reg.host
        )),
        "{}",
        stderr(&o)
    );
    f.assert_only_deploys_kept(&o);
}

#[test]
fn apply_refuses_without_deploy_state_for_every_workspace_and_touches_nothing() {
    let f = Fixture::new();
    let before = f.snapshot();
    let server = FaultServer::start(Some(f.reg.host.clone()), Arc::new(|_: &Req| Action::Forward));
    let policy = f.path("policy.yml");
    let dev = f.path("dev.json");
    let o = Env::new().run(
        BIN,
        &[
            &server.host,
            "--policy",
            policy.to_str().unwrap(),
            "--protected",
            dev.to_str().unwrap(),
            "--apply",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with(
            "error: refusing to apply: no deploy state for workspace `prod`; \
             hint: collect the deploy state of those workspaces"
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(stdout(&o), "");
    assert_eq!(server.requests().len(), 0, "not one request reached the registry");
    assert_eq!(f.snapshot(), before);

    // A dry run without it plans, and says what --apply would refuse.
    let o = Env::new().run(
        BIN,
        &[
            &f.reg.host,
            "--policy",
            policy.to_str().unwrap(),
            "--protected",
            dev.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: refusing to apply: no deploy state for workspace `prod`; this dry run"),
        "{}",
        stderr(&o)
    );
    assert_eq!(f.snapshot(), before);

    // A policy that lists no workspaces plans, and never applies.
    let bare = f.path("bare-policy.yml");
    std::fs::write(&bare, "defaults: {keep_last: 1, keep_younger_than: 0d}\n").unwrap();
    let args = [
        server.host.as_str(),
        "--policy",
        bare.to_str().unwrap(),
        "--protected",
        dev.to_str().unwrap(),
    ];
    let o = Env::new().run(BIN, &[&args[..], &["--apply"]].concat());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("error: refusing to apply: the policy lists no `workspaces`; hint: list in the policy"),
        "{}",
        stderr(&o)
    );
    assert_eq!(server.requests().len(), 0, "not one request reached the registry");
    let o = Env::new().run(BIN, &[&args[..], &["--json"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!planned_deletions(&json(&o)).is_empty(), "{}", stdout(&o));
    assert_eq!(f.snapshot(), before);
}

/// `REGISTRY=prod task cleanup -- --apply` with the demo's workspaces:
/// the deploy state names another registry and nothing of it is in this
/// one, so it would protect nothing here. `--apply` refuses; a dry run
/// plans and warns; a policy that names this registry is trusted; a policy
/// that names another one is refused before anything is read.
#[test]
fn apply_refuses_deploy_state_that_protects_nothing_in_this_registry() {
    let f = Fixture::new();
    let prod = Registry::start();
    let p1 = push(&prod.repo("acme/web:p1"), &image("p1", "2025-01-01T00:00:00Z"));
    let p2 = push(&prod.repo("acme/web:p2"), &image("p2", "2025-01-02T00:00:00Z"));
    let status = |d: &Digest| manifest_status(&prod.host, "acme/web", d);
    std::fs::write(
        f.path("policy.yml"),
        "workspaces: [dev, prod]\ndefaults: {keep_last: 1, keep_younger_than: 0s, keep_tags: []}\n",
    )
    .unwrap();

    let o = f.run(&prod.host, &["--apply"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    let refusal = format!(
        "error: refusing to apply: the deploy state of `dev`, `prod` protects nothing in `{}`: its 2 deploy \
         records name images on `{}` only, and no digest they name is here; hint: check the registry and the \
         workspaces",
        prod.host, f.reg.host
    );
    assert!(err.contains(&refusal), "{err}");
    assert!(err.contains("nothing was deleted"), "{err}");
    assert_eq!(stdout(&o), "");
    assert_eq!((status(&p1), status(&p2)), (200, 200));

    // A fresh checkout's workspace: no records at all. Refused the same way.
    let empty = |ws: &str| serde_json::json!({"workspace": ws, "collected_at": now_utc(), "hosts": [], "records": []});
    std::fs::write(f.path("dev.json"), empty("dev").to_string()).unwrap();
    std::fs::write(f.path("prod.json"), empty("prod").to_string()).unwrap();
    let o = f.run(&prod.host, &["--apply"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "error: refusing to apply: the deploy state of `dev`, `prod` protects nothing in `{}`: it holds no \
             deploy records; hint:",
            prod.host
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!((status(&p1), status(&p2)), (200, 200));
    f.write_states(&f.reg.host.clone());

    let o = f.run(&prod.host, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "warning: refusing to apply: the deploy state of `dev`, `prod` protects nothing in `{}`",
            prod.host
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(planned_deletions(&json(&o)), BTreeSet::from([p1.clone()]));
    assert_eq!((status(&p1), status(&p2)), (200, 200));
    // The fixture's state was collected long ago: said too.
    assert!(
        stderr(&o).contains("warning: the deploy state of workspace `dev` was collected ")
            && stderr(&o).contains("ago (2025-03-02T00:00:00Z): what was deployed since then is not protected"),
        "{}",
        stderr(&o)
    );

    // The operator says the policy is for prod: its workspaces are trusted.
    std::fs::write(
        f.path("policy.yml"),
        format!(
            "registry: '{}'\nworkspaces: [dev, prod]\ndefaults: {{keep_last: 1, keep_younger_than: 0s, keep_tags: []}}\n",
            prod.host
        ),
    )
    .unwrap();
    let o = f.run(&prod.host, &["--apply", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("protects nothing"), "{}", stderr(&o));
    assert_eq!(result_digests(&json(&o), "deleted"), BTreeSet::from([p1.clone()]));
    assert_eq!((status(&p1), status(&p2)), (404, 200));

    // The same policy against the fixture's registry: refused up front.
    let before = f.snapshot();
    let o = f.run(&f.reg.host, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with(&format!(
            "error: the policy `{}` is for registry `{}`, not `{}`; hint: run it against that registry",
            f.path("policy.yml").display(),
            prod.host,
            f.reg.host
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
    assert_eq!(f.snapshot(), before);
}

/// A dry run saved with `--save-plan`, reviewed, then applied with
/// `--plan`: what goes is what the reviewed plan deleted, tagged as it was
/// then, and the rules still delete. A push in between (a newer digest
/// moves t8 beyond keep_last) deletes nothing more; a deploy in between
/// (web1 now runs t4) keeps what it runs; a tag added in between (a1 is
/// also `hotfix`) keeps the digest the reviewer saw otherwise. A plan that is not a dry run of this registry is
/// refused before anything is deleted.
#[test]
fn apply_with_a_reviewed_plan_deletes_no_more_than_it() {
    let f = Fixture::new();
    let saved = f.path("reviewed.json");
    let o = f.run(&f.reg.host, &["--save-plan", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("dry run: nothing deleted"), "{}", stdout(&o));
    let reviewed: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(reviewed["registry"], f.reg.host.as_str());
    assert_eq!(reviewed["applied"], false);
    assert_eq!(planned_deletions(&reviewed), f.expected_deletions());

    // Not a dry run of this registry: refused, nothing deleted.
    let before = f.snapshot();
    let mut other = reviewed.clone();
    other["registry"] = "registry.example.com".into();
    std::fs::write(f.path("other.json"), other.to_string()).unwrap();
    let mut applied = reviewed.clone();
    applied["applied"] = true.into();
    std::fs::write(f.path("applied.json"), applied.to_string()).unwrap();
    std::fs::write(f.path("policy-as-plan.json"), "{\"workspaces\": [\"dev\"]}").unwrap();
    for (file, says) in [
        (
            "other.json",
            format!("is of registry `registry.example.com`, not `{}`", f.reg.host),
        ),
        (
            "applied.json",
            "is the report of an --apply run, not a dry run's plan".to_string(),
        ),
        ("policy-as-plan.json", "is not a plan of registry_cleanup".to_string()),
        ("missing.json", "cannot read the reviewed plan".to_string()),
    ] {
        let path = f.path(file);
        let o = f.run(&f.reg.host, &["--apply", "--plan", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{file}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with("error: ")
                && stderr(&o).contains(&says)
                && stderr(&o).contains("nothing was deleted"),
            "{file}: {}",
            stderr(&o)
        );
    }
    let o = f.run(&f.reg.host, &["--apply", "--save-plan", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--save-plan"), "{}", stderr(&o));
    assert_eq!(f.snapshot(), before);

    // Meanwhile: a newer push, a deploy of t4 on web1, and a1 tagged
    // `hotfix` too (the reviewer saw it tagged a1 only).
    let web = f.reg.repo("acme/web");
    let t10 = push(&format!("{web}:t10"), &image("t10", &now_utc()));
    let hotfix = push(
        &format!("{}:hotfix", f.reg.repo("acme/api")),
        &image("a1", "2025-02-01T00:00:00Z"),
    );
    assert_eq!(&hotfix, f.digest("a1"));
    let fresh = f.run(&f.reg.host, &["--json"]);
    assert!(
        planned_deletions(&json(&fresh)).contains(f.digest("t8")),
        "t8 is beyond keep_last now"
    );
    let mut dev: Value = serde_json::from_slice(&std::fs::read(f.path("dev.json")).unwrap()).unwrap();
    dev["records"][0]["digest"] = f.digest("t4").to_string().into();
    std::fs::write(f.path("dev.json"), dev.to_string()).unwrap();

    let o = f.run(&f.reg.host, &["--apply", "--plan", saved.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert!(
        planned_deletions(&json(&fresh)).contains(f.digest("a1")),
        "a1 still goes by the rules"
    );
    let mut expected = f.expected_deletions();
    expected.remove(f.digest("t4"));
    expected.remove(f.digest("a1"));
    assert_eq!(planned_deletions(&v), expected);
    assert_eq!(result_digests(&v, "deleted"), expected);
    assert_eq!(f.gone(), expected);
    let t8 = planned(&v, f.digest("t8"));
    assert_eq!(t8["decision"], "keep");
    assert_eq!(t8["reasons"][0]["rule"], "not_in_reviewed_plan", "{t8}");
    assert_eq!(t8["reasons"][0]["text"], "not deleted by the reviewed plan");
    for d in [f.digest("t4"), f.digest("t8"), &t10] {
        assert_eq!(manifest_status(&f.reg.host, "acme/web", d), 200, "{d}");
    }
}

#[test]
fn bad_policy_or_deploy_state_exit_2_naming_the_file() {
    let f = Fixture::new();
    std::fs::write(f.path("bad.yml"), "workspaces: [dev]\ndefaults: {keep_last: -1}\n").unwrap();
    std::fs::write(f.path("bad.json"), "{\"workspace\": \"dev\", \"records\": [{}]}").unwrap();
    let policy = f.path("policy.yml");
    let dev = f.path("dev.json");
    let env = Env::new();
    // registry_cleanup HOST --policy POLICY --protected STATE EXTRA...
    let cleanup = |policy: &std::path::Path, state: &std::path::Path, extra: &[&str]| {
        let (policy, state) = (policy.to_str().unwrap(), state.to_str().unwrap());
        let mut args = vec![f.reg.host.as_str(), "--policy", policy, "--protected", state];
        args.extend_from_slice(extra);
        env.run(BIN, &args)
    };
    let o = cleanup(&f.path("bad.yml"), &dev, &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("bad.yml") && err.contains("`defaults.keep_last`"), "{err}");
    let o = cleanup(&policy, &f.path("bad.json"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.json"), "{}", stderr(&o));
    // Not a deploy state (an images_overview --json): refused, not taken
    // for a workspace without deploys that would unlock --apply.
    let overview = f.path("overview.json");
    std::fs::write(
        &overview,
        r#"{"image": "x/y", "workspace": "dev", "deployed": [], "tags": []}"#,
    )
    .unwrap();
    let o = cleanup(&policy, &overview, &["--apply"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("overview.json") && stderr(&o).contains("missing field"),
        "{}",
        stderr(&o)
    );
    assert_eq!(f.gone(), BTreeSet::new(), "nothing deleted");
    let o = env.run(BIN, &[&f.reg.host, "--policy", policy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "--protected is required");
    let o = env.run(
        BIN,
        &[
            &f.reg.repo("acme/web"),
            "--policy",
            policy.to_str().unwrap(),
            "--protected",
            dev.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn an_interrupted_apply_run_again_finishes_the_job() {
    let f = Fixture::new();
    // DELETEs fail (400, not retried) after the first two, until healed.
    let deletes = Arc::new(AtomicUsize::new(0));
    let healed = Arc::new(AtomicBool::new(false));
    let (d2, h2) = (deletes.clone(), healed.clone());
    let server = FaultServer::start(
        Some(f.reg.host.clone()),
        Arc::new(move |r: &Req| {
            if r.method == "DELETE" && !h2.load(Ordering::SeqCst) && d2.fetch_add(1, Ordering::SeqCst) >= 2 {
                Action::Respond(Resp::new(
                    400,
                    r#"{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}"#,
                ))
            } else {
                Action::Forward
            }
        }),
    );
    f.write_states(&server.host);
    let o = f.run(&server.host, &["--apply", "--json", "--concurrency", "1"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let v = json(&o);
    let first = result_digests(&v, "deleted");
    assert_eq!(first.len(), 2, "{v}");
    assert!(first.is_subset(&f.expected_deletions()));
    assert_eq!(f.gone(), first);
    // A failed index keeps its children; the rest failed and stays.
    let failed = result_digests(&v, "failed");
    let skipped = result_digests(&v, "skipped");
    assert_eq!(
        failed.union(&skipped).cloned().collect::<BTreeSet<_>>(),
        f.expected_deletions().difference(&first).cloned().collect()
    );
    for s in v["result"]["skipped"].as_array().unwrap() {
        assert_eq!(s["skip"], "index_not_deleted", "{s}");
        assert_eq!(s["index"], f.digest("t5").to_string());
    }
    let err = stderr(&o);
    assert!(err.contains("error: cleanup incomplete: "), "{err}");
    assert!(err.contains("injected failure"), "{err}");
    assert!(
        err.contains("hint: nothing kept or protected was touched; run again"),
        "{err}"
    );

    healed.store(true, Ordering::SeqCst);
    let o = f.run(&server.host, &["--apply", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(
        result_digests(&v, "deleted"),
        f.expected_deletions().difference(&first).cloned().collect()
    );
    assert_eq!(f.gone(), f.expected_deletions(), "the rerun finished the job");
}

#[test]
fn ctrl_c_during_apply_finishes_the_children_of_a_deleted_index_then_stops_and_a_rerun_finishes() {
    let f = Fixture::new();
    // SIGINT arrives while the index t5 is being deleted (one DELETE at a
    // time: a2, a1, t5, its two children, t4, t1).
    let pid = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let index_path = format!("/v2/acme/web/manifests/{}", f.digest("t5"));
    let p2 = pid.clone();
    let server = FaultServer::start(
        Some(f.reg.host.clone()),
        Arc::new(move |r: &Req| {
            if r.method == "DELETE" && r.path == index_path {
                let pid = p2.load(Ordering::SeqCst);
                assert!(pid > 0);
                let killed = Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
                assert!(killed.success());
                // Let the signal land before the DELETE is answered.
                return Action::Delay(std::time::Duration::from_millis(500));
            }
            Action::Forward
        }),
    );
    f.write_states(&server.host);
    let child = f
        .command(&server.host, &["--apply", "--json", "--concurrency", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    pid.store(child.id(), Ordering::SeqCst);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("warning: interrupted: finishing the DELETEs in flight"),
        "{err}"
    );
    assert!(
        err.contains("error: interrupted: 5 digests deleted, 2 planned deletions not started"),
        "{err}"
    );
    assert!(err.contains("hint: nothing kept or protected was touched"), "{err}");
    let v = json(&o);
    assert_eq!(v["result"]["interrupted"], true, "{v}");
    // The index went, so its children went with it; nothing else started.
    let first = f.digests(&["a1", "a2", "t5", "t5/amd64", "t5/arm64"]);
    assert_eq!(result_digests(&v, "deleted"), first);
    assert_eq!(result_digests(&v, "skipped"), f.digests(&["t1", "t4"]));
    for s in v["result"]["skipped"].as_array().unwrap() {
        assert_eq!(s["skip"], "interrupted", "{s}");
    }
    assert_eq!(f.gone(), first);

    let o = f.run(&server.host, &["--apply", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(result_digests(&json(&o), "deleted"), f.digests(&["t1", "t4"]));
    assert_eq!(f.gone(), f.expected_deletions(), "the rerun finished the job");
}

#[test]
fn a_digest_deleted_meanwhile_counts_as_already_gone_and_its_children_follow() {
    let f = Fixture::new();
    let client = client();
    let plan = f.plan(&client);
    // Someone deletes the index t5 and a1 between the plan and the apply.
    for (repo, name) in [("acme/web", "t5"), ("acme/api", "a1")] {
        let s = http()
            .delete(format!("http://{}/v2/{repo}/manifests/{}", f.reg.host, f.digest(name)))
            .send()
            .unwrap()
            .status();
        assert_eq!(s.as_u16(), 202);
    }
    let applied = rt().block_on(apply(&client, &plan, &DeleteProgress::quiet(), &Interrupt::new()));
    let r = &applied.result;
    assert!(applied.first_error.is_none() && applied.stopped.is_none());
    let gone: BTreeSet<Digest> = r
        .deleted
        .iter()
        .filter(|d| d.already_gone)
        .map(|d| d.digest.clone())
        .collect();
    assert_eq!(gone, f.digests(&["t5", "a1"]));
    assert_eq!(r.already_gone_count, 2);
    assert_eq!(r.deleted_count, 5);
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(f.gone(), f.expected_deletions());
    assert!(applied.outcome().is_ok());

    // The same plan once more: everything is already gone.
    let again = rt().block_on(apply(&client, &plan, &DeleteProgress::quiet(), &Interrupt::new()));
    assert_eq!(again.result.already_gone_count, 7, "{:?}", again.result);
    assert_eq!(again.result.deleted_count, 0);
    assert!(again.result.skipped.is_empty() && again.result.failed.is_empty());
}

/// A DELETE answered 404 while the registry still serves the manifest (a
/// proxy routing DELETEs elsewhere): not counted as gone, so the index t5
/// keeps its children; the rest goes, and the run exits 5 naming it.
#[test]
fn a_404_to_a_delete_of_a_manifest_still_there_is_a_failure_and_its_children_stay() {
    let f = Fixture::new();
    let t5 = f.digest("t5").to_string();
    let server = FaultServer::start(
        Some(f.reg.host.clone()),
        Arc::new(move |r: &Req| {
            if r.method == "DELETE" && r.path.ends_with(&t5) {
                return Action::Respond(Resp::new(404, "404 page not found\n"));
            }
            Action::Forward
        }),
    );
    f.write_states(&server.host);
    let o = f.run(&server.host, &["--apply", "--json"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let v = json(&o);
    let failed = result_digests(&v, "failed");
    assert_eq!(failed, f.digests(&["t5"]));
    let error = v["result"]["failed"][0]["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("answered 404 to DELETE") && error.contains("yet a HEAD of the manifest still finds it"),
        "{error}"
    );
    let mut deleted = f.expected_deletions();
    for n in ["t5", "t5/amd64", "t5/arm64"] {
        deleted.remove(f.digest(n));
    }
    assert_eq!(result_digests(&v, "deleted"), deleted);
    assert_eq!(f.gone(), deleted);
    assert!(
        stderr(&o).contains("yet a HEAD of the manifest still finds it"),
        "{}",
        stderr(&o)
    );
    pulls_completely(&f.reg.repo("acme/web:t5")).unwrap();
}

/// The index t5 is deleted but the answer says 404 (a lost answer, then a
/// retry), and a cache in front still serves it to the first HEAD: asked
/// again after a pause, it is gone; counted as already gone, its children
/// follow, exit 0.
#[test]
fn a_404_behind_a_lagging_cache_is_confirmed_after_a_pause() {
    let f = Fixture::new();
    let t5 = f.digest("t5").to_string();
    let deleted = Arc::new(AtomicBool::new(false));
    let stale = Arc::new(AtomicUsize::new(0));
    let (d2, s2, t) = (deleted.clone(), stale.clone(), t5.clone());
    let server = FaultServer::start(
        Some(f.reg.host.clone()),
        Arc::new(move |r: &Req| {
            if r.method == "DELETE" && r.path.ends_with(&t) {
                d2.store(true, Ordering::SeqCst);
                return Action::Mutate(Box::new(|_| {
                    Resp::new(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"gone"}]}"#)
                }));
            }
            if r.method == "HEAD"
                && r.path.ends_with(&t)
                && d2.load(Ordering::SeqCst)
                && s2.fetch_add(1, Ordering::SeqCst) == 0
            {
                return Action::Respond(Resp::new(200, "").header("Docker-Content-Digest", &t));
            }
            Action::Forward
        }),
    );
    f.write_states(&server.host);
    let o = f.run(&server.host, &["--apply", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(result_digests(&v, "deleted"), f.expected_deletions());
    assert_eq!(f.gone(), f.expected_deletions());
    let gone: Vec<&Value> = v["result"]["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["already_gone"] == true)
        .collect();
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0]["digest"], t5.as_str());
    assert_eq!(
        stale.load(Ordering::SeqCst),
        2,
        "one stale HEAD, then one that finds it gone"
    );
}

#[test]
fn a_tag_moved_between_plan_and_apply_is_not_deleted() {
    let f = Fixture::new();
    let client = client();
    let plan = f.plan(&client);
    let planned: BTreeSet<Digest> = plan
        .repositories
        .iter()
        .flat_map(|r| &r.digests)
        .filter(|d| d.decision == Decision::Delete)
        .map(|d| d.digest.clone())
        .collect();
    assert_eq!(planned, f.expected_deletions());
    // `t4-alias` moves from t4 to t1 (both planned): both have other tags now.
    push(&f.reg.repo("acme/web:t4-alias"), &image("t1", "2025-01-01T00:00:00Z"));
    // `a2` is pushed again as a new image: the old a2 digest lost its tag.
    let new_a2 = push(&f.reg.repo("acme/api:a2"), &image("a2 rebuilt", "2025-02-02T00:00:00Z"));
    // A new index takes t5's amd64 child: it must stay with it.
    let web = f.reg.repo("acme/web");
    let amd = ImageSpec {
        platform: "linux/amd64".parse().unwrap(),
        ..image("t5 linux/amd64", "2025-01-05T00:00:00Z")
    };
    let new_index = push_multi(&format!("{web}:t5-new"), &[amd], &BTreeMap::new());

    let applied = rt().block_on(apply(&client, &plan, &DeleteProgress::quiet(), &Interrupt::new()));
    let r = &applied.result;
    let skipped: BTreeMap<Digest, SkipCause> = r.skipped.iter().map(|s| (s.digest.clone(), s.cause.clone())).collect();
    assert_eq!(
        skipped.get(f.digest("t4")),
        Some(&SkipCause::TagsChanged {
            planned: vec!["t4".into(), "t4-alias".into()],
            now: vec!["t4".into()]
        })
    );
    assert_eq!(
        skipped.get(f.digest("t1")),
        Some(&SkipCause::TagsChanged {
            planned: vec!["t1".into()],
            now: vec!["t1".into(), "t4-alias".into()]
        })
    );
    assert_eq!(
        skipped.get(f.digest("a2")),
        Some(&SkipCause::TagsChanged {
            planned: vec!["a2".into()],
            now: vec![]
        })
    );
    assert_eq!(
        skipped.get(f.digest("t5/amd64")),
        Some(&SkipCause::InNewIndex {
            index: new_index.clone()
        })
    );
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    let deleted: BTreeSet<Digest> = r.deleted.iter().map(|d| d.digest.clone()).collect();
    assert_eq!(deleted, f.digests(&["t5", "t5/arm64", "a1"]));
    assert_eq!(f.gone(), deleted);
    for (repo, d) in [
        ("acme/web", f.digest("t4")),
        ("acme/web", f.digest("t1")),
        ("acme/api", f.digest("a2")),
        ("acme/api", &new_a2),
        ("acme/web", f.digest("t5/amd64")),
    ] {
        assert_eq!(manifest_status(&f.reg.host, repo, d), 200, "{repo}@{d}");
    }
    pulls_completely(&format!("{web}:t5-new")).unwrap();
    assert!(applied.outcome().is_ok(), "skips for moved tags are not failures");
}

#[test]
fn a_repository_that_cannot_be_read_again_keeps_all_its_digests() {
    let f = Fixture::new();
    // The second tag list of acme/api (the recheck) fails; HEADs of
    // acme/web by tag fail after the scan.
    let lists = Arc::new(AtomicUsize::new(0));
    let scanned = Arc::new(AtomicBool::new(false));
    let (l2, s2) = (lists.clone(), scanned.clone());
    let server = FaultServer::start(
        Some(f.reg.host.clone()),
        Arc::new(move |r: &Req| {
            if r.path.starts_with("/v2/acme/api/tags/list") && l2.fetch_add(1, Ordering::SeqCst) >= 1 {
                return Action::Respond(Resp::new(
                    404,
                    r#"{"errors":[{"code":"NAME_UNKNOWN","message":"gone"}]}"#,
                ));
            }
            if s2.load(Ordering::SeqCst) && r.method == "HEAD" && r.path.starts_with("/v2/acme/web/manifests/t") {
                return Action::Respond(Resp::new(403, r#"{"errors":[{"code":"DENIED","message":"no"}]}"#));
            }
            Action::Forward
        }),
    );
    f.write_states(&server.host);
    let client = client();
    let policy = f.policy();
    let states = f.states();
    let plan = rt()
        .block_on(scan_and_plan(
            &client,
            &server.host,
            &Platform::default(),
            &Progress::quiet(),
            &Planning {
                policy: &policy,
                states: &states,
                now: chrono::Utc::now(),
                reviewed: None,
            },
        ))
        .unwrap();
    assert_eq!(plan.delete_count, 7);
    scanned.store(true, Ordering::SeqCst);
    let applied = rt().block_on(apply(&client, &plan, &DeleteProgress::quiet(), &Interrupt::new()));
    let r = &applied.result;
    assert!(r.deleted.is_empty(), "{:?}", r.deleted);
    assert_eq!(r.skipped.len(), 7);
    for s in &r.skipped {
        let SkipCause::RecheckFailed { error } = &s.cause else {
            panic!("{s:?}")
        };
        if s.image.ends_with("acme/api") {
            assert!(error.contains("not found"), "{error}");
        } else {
            assert!(error.contains("refused"), "{error}");
        }
    }
    assert!(
        !server.requests().iter().any(|r| r.method == "DELETE"),
        "not one DELETE was sent"
    );
    assert_eq!(f.gone(), BTreeSet::new());
    let e = applied.outcome().unwrap_err();
    assert!(e.message.contains("7 planned deletions skipped"), "{}", e.message);
}

#[test]
fn a_registry_without_deletes_stops_with_the_storage_delete_hint() {
    let f = Fixture::on(Registry::start_without_delete());
    let before = f.snapshot();
    let o = f.run(&f.reg.host, &["--apply", "--json", "--concurrency", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("does not support deleting"), "{err}");
    assert!(
        err.contains("hint: enable deletes in the registry configuration (`storage.delete.enabled: true`"),
        "{err}"
    );
    let v = json(&o);
    assert!(v["result"]["stopped"].as_str().unwrap().contains("405"), "{v}");
    assert_eq!(v["result"]["deleted"], serde_json::json!([]));
    assert_eq!(v["result"]["failed_count"], 1);
    let skipped: Vec<&str> = v["result"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["skip"].as_str().unwrap())
        .collect();
    assert_eq!(skipped.len(), 6, "{v}");
    assert!(
        skipped.iter().all(|s| *s == "stopped" || *s == "index_not_deleted"),
        "{skipped:?}"
    );
    assert_eq!(f.snapshot(), before);
}

#[test]
fn apply_deletes_an_index_then_its_children_and_lists_what_it_deleted() {
    let f = Fixture::new();
    let server = FaultServer::start(Some(f.reg.host.clone()), Arc::new(|_: &Req| Action::Forward));
    f.write_states(&server.host);
    let o = f.run(&server.host, &["--apply", "--concurrency", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // One at a time: repositories in order, newest first, children right
    // after their index.
    let deletes: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect();
    let expected: Vec<String> = ["a2", "a1", "t5", "t5/amd64", "t5/arm64", "t4", "t1"]
        .iter()
        .map(|n| format!("/v2/{}/manifests/{}", f.repo_of(n), f.digest(n)))
        .collect();
    let mut children = deletes[3..5].to_vec();
    children.sort();
    let mut expected_children = expected[3..5].to_vec();
    expected_children.sort();
    assert_eq!(children, expected_children, "{deletes:#?}");
    assert_eq!(
        [&deletes[..3], &deletes[5..]].concat(),
        [&expected[..3], &expected[5..]].concat()
    );
    assert_eq!(f.gone(), f.expected_deletions());

    let text = stdout(&o);
    assert!(text.contains("total: 7 digests to delete, 8 kept, "), "{text}");
    for n in ["t1", "t4", "t5", "t5/amd64", "t5/arm64", "a1", "a2"] {
        let line = format!("\ndeleted       {}/{}@{}\n", server.host, f.repo_of(n), f.digest(n));
        assert!(text.contains(&line), "{line:?} missing:\n{text}");
    }
    assert!(
        text.ends_with("result: 7 digests deleted, 0 already gone, 0 skipped, 0 failed\n"),
        "{text}"
    );
}

/// An index in an index (as buildx nests them) is described to its
/// platform images: the plan deletes the whole tree, outer index first,
/// with the labels of the `linux/amd64` grandchild, and holds nothing else
/// of the repository. An index pushed between plan and apply that reaches
/// a planned image through a new index of its own keeps that image.
#[test]
fn a_nested_index_is_planned_to_its_platform_images_and_a_new_one_keeps_them() {
    let reg = Registry::start();
    let repo = reg.repo("acme/nest");
    let platform_image = |p: &str, name: &str, created: &str| ImageSpec {
        platform: p.parse().unwrap(),
        ..image(name, created)
    };
    let amd = platform_image("linux/amd64", "n1 amd64", "2025-01-01T00:00:00Z");
    // Older, so that the outer index's date shows whose labels it took.
    let arm = platform_image("linux/arm64", "n1 arm64", "2024-12-31T00:00:00Z");
    let (outer, inner) = push_nested(&format!("{repo}:n1"), &[amd.clone(), arm.clone()]);
    let newer = push(&format!("{repo}:n2"), &image("n2", "2025-01-02T00:00:00Z"));
    let client = client();
    let plan = plan_keep_last_1(&client, &reg);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let rp = &plan.repositories[0];
    let decided: BTreeMap<&Digest, (Decision, Option<&str>)> = rp
        .digests
        .iter()
        .map(|d| (&d.digest, (d.decision, d.created.as_deref())))
        .collect();
    let (amd_digest, arm_digest) = {
        let children: Vec<&Digest> = rp
            .digests
            .iter()
            .filter(|d| d.parents == [inner.clone()])
            .map(|d| &d.digest)
            .collect();
        assert_eq!(children.len(), 2, "{:#?}", rp.digests);
        let is_amd = |d: &Digest| manifest_config_arch(&reg.host, "acme/nest", d) == "amd64";
        if is_amd(children[0]) {
            (children[0].clone(), children[1].clone())
        } else {
            (children[1].clone(), children[0].clone())
        }
    };
    let old = Some("2025-01-01T00:00:00Z");
    assert_eq!(
        decided[&outer],
        (Decision::Delete, old),
        "the labels of the amd64 grandchild"
    );
    assert_eq!(decided[&inner], (Decision::Delete, old));
    assert_eq!(decided[&amd_digest], (Decision::Delete, old));
    assert_eq!(decided[&arm_digest], (Decision::Delete, Some("2024-12-31T00:00:00Z")));
    assert_eq!(decided[&newer].0, Decision::Keep);
    assert_eq!(rp.digests.len(), 5);
    let order: Vec<&Digest> = rp.deletions().into_iter().map(|d| &d.digest).collect();
    assert_eq!(order[..2], [&outer, &inner], "outer index first, then the inner one");

    // Between plan and apply: a new index reaches the amd64 image through
    // a new inner index.
    let (again, again_inner) = push_nested(&format!("{repo}:n1-again"), &[amd]);
    let applied = rt().block_on(apply(&client, &plan, &DeleteProgress::quiet(), &Interrupt::new()));
    let r = &applied.result;
    let skipped: BTreeMap<Digest, SkipCause> = r.skipped.iter().map(|s| (s.digest.clone(), s.cause.clone())).collect();
    assert_eq!(
        skipped,
        BTreeMap::from([(
            amd_digest.clone(),
            SkipCause::InNewIndex {
                index: again_inner.clone()
            }
        )])
    );
    let deleted: BTreeSet<Digest> = r.deleted.iter().map(|d| d.digest.clone()).collect();
    assert_eq!(
        deleted,
        BTreeSet::from([outer.clone(), inner.clone(), arm_digest.clone()])
    );
    for d in [&outer, &inner, &arm_digest] {
        assert_eq!(manifest_status(&reg.host, "acme/nest", d), 404, "{d}");
    }
    assert_eq!(manifest_status(&reg.host, "acme/nest", &amd_digest), 200);
    assert_eq!(manifest_status(&reg.host, "acme/nest", &again), 200);
    assert_eq!(manifest_status(&reg.host, "acme/nest", &again_inner), 200);
    // skopeo cannot copy an index in an index: the platform image alone.
    pulls_completely(&format!("{repo}@{amd_digest}")).unwrap();
}

/// Indexes in indexes are followed to `MAX_INDEX_DEPTH` levels below the
/// tagged one; one level deeper, what the deepest holds is unknown, and
/// nothing of its repository is deleted.
#[test]
fn index_nesting_is_followed_to_its_bound_and_deeper_holds_the_repository() {
    let reg = Registry::start();
    let mut chains = BTreeMap::new();
    for (name, wraps) in [
        ("acme/deep-ok", MAX_INDEX_DEPTH),
        ("acme/deep-too", MAX_INDEX_DEPTH + 1),
    ] {
        let repo = reg.repo(name);
        let (image_digest, holder) = push_holder(&repo, "d1");
        let mut chain = vec![image_digest, holder.clone()];
        chain.extend(push_chain(&format!("{repo}:d1"), &holder, wraps));
        push(&format!("{repo}:d2"), &image("d2", "2025-01-02T00:00:00Z"));
        chains.insert(name, chain);
    }
    let plan = plan_keep_last_1(&client(), &reg);
    let deleted = |name: &str| -> BTreeSet<Digest> {
        let rp = plan.repositories.iter().find(|r| r.repository == name).unwrap();
        rp.digests
            .iter()
            .filter(|d| d.decision == Decision::Delete)
            .map(|d| d.digest.clone())
            .collect()
    };
    let ok = &chains["acme/deep-ok"];
    assert_eq!(ok.len(), MAX_INDEX_DEPTH + 2);
    assert_eq!(deleted("acme/deep-ok"), ok.iter().cloned().collect());
    assert_eq!(deleted("acme/deep-too"), BTreeSet::new());
    let too = plan
        .repositories
        .iter()
        .find(|r| r.repository == "acme/deep-too")
        .unwrap();
    let top = too.digests.iter().find(|d| d.tags == ["d1"]).unwrap();
    // (Undated too: its labels would come from the image it cannot see.)
    assert!(
        top.reasons.contains(&Reason::MaybeInUnreadable {
            indexes: vec![chains["acme/deep-too"][1].clone()]
        }),
        "{:?}",
        top.reasons
    );
}

/// Pushes to `repo` a linux/amd64 image labelled `name`, built
/// 2025-01-01, and an untagged index of it: (image, index).
fn push_holder(repo: &str, name: &str) -> (Digest, Digest) {
    let amd = ImageSpec {
        platform: "linux/amd64".parse().unwrap(),
        ..image(name, "2025-01-01T00:00:00Z")
    };
    (push(repo, &amd), push_multi(repo, &[amd], &BTreeMap::new()))
}

/// An index met too deep in one branch of a tree, and near the top in
/// another (or in another tag's tree), is read where it is near: nothing
/// holds the repository.
#[test]
fn an_index_met_too_deep_and_near_the_top_is_read() {
    let reg = Registry::start();
    let repo = reg.repo("acme/both");
    let (image_digest, holder) = push_holder(&repo, "b1");
    let chain = push_chain(&repo, &holder, MAX_INDEX_DEPTH).pop().unwrap();
    let index = image_lifecycle::registry::MEDIA_OCI_INDEX;
    // The chain first: `holder` is met 5 levels down, then 1 level down.
    let top = push_index_of(
        &format!("{repo}:b1"),
        &[(chain.clone(), index, None), (holder.clone(), index, None)],
        &BTreeMap::new(),
    );
    // Another tag: the chain alone, where `holder` is too deep.
    let deep_only = push_wrapper(&format!("{repo}:b1-deep"), &chain, 1);
    push(&format!("{repo}:b2"), &image("b2", "2025-01-02T00:00:00Z"));
    // (`b1-deep` has no labels it can read: undated, not kept for that.)
    let plan = plan_with(
        &client(),
        &reg,
        "{keep_last: 1, keep_younger_than: 0s, keep_tags: [], keep_undated: false}",
    );
    let rp = &plan.repositories[0];
    let holder_plan = rp.digests.iter().find(|d| d.digest == holder).unwrap();
    assert_eq!(holder_plan.kind, Some(image_lifecycle::listing::ManifestKind::Index));
    // No hold and no warning: the tree was read to the image.
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let deleted: BTreeSet<&Digest> = rp
        .digests
        .iter()
        .filter(|d| d.decision == Decision::Delete)
        .map(|d| &d.digest)
        .collect();
    assert!(
        [&top, &deep_only, &holder, &image_digest]
            .iter()
            .all(|d| deleted.contains(d)),
        "{:#?}",
        rp.digests
    );
}

/// The same with the index above the one holding the image met near the
/// top, the only tree of its repository: what is below it is read from
/// there (each digest is read where it is nearest the tagged index).
#[test]
fn an_index_read_at_the_bound_and_met_again_near_the_top_is_read_through() {
    let reg = Registry::start();
    let repo = reg.repo("acme/mid");
    let (image_digest, holder) = push_holder(&repo, "m1");
    let mut wrappers = vec![holder.clone()];
    wrappers.extend(push_chain(&repo, &holder, MAX_INDEX_DEPTH));
    let index = image_lifecycle::registry::MEDIA_OCI_INDEX;
    // The chain first: the index just above `holder` is met 4 levels down,
    // then 1 level down.
    let top = push_index_of(
        &format!("{repo}:m1"),
        &[
            (wrappers[MAX_INDEX_DEPTH].clone(), index, None),
            (wrappers[1].clone(), index, None),
        ],
        &BTreeMap::new(),
    );
    push(&format!("{repo}:m2"), &image("m2", "2025-01-02T00:00:00Z"));
    let plan = plan_keep_last_1(&client(), &reg);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let deleted: BTreeSet<&Digest> = plan.repositories[0]
        .digests
        .iter()
        .filter(|d| d.decision == Decision::Delete)
        .map(|d| &d.digest)
        .collect();
    let mut expected: BTreeSet<&Digest> = wrappers.iter().collect();
    expected.extend([&top, &image_digest]);
    assert_eq!(deleted, expected);
}

/// An index pushed between plan and apply, nested deeper than the recheck
/// reads: what it holds is unknown, so nothing of its repository is
/// deleted (the planned image it holds among them).
#[test]
fn a_new_index_nested_too_deep_stops_the_deletes_of_its_repository() {
    let reg = Registry::start();
    let repo = reg.repo("acme/re");
    let amd = ImageSpec {
        platform: "linux/amd64".parse().unwrap(),
        ..image("r1", "2025-01-01T00:00:00Z")
    };
    let old = push(&format!("{repo}:r1"), &amd);
    push(&format!("{repo}:r2"), &image("r2", "2025-01-02T00:00:00Z"));
    let client = client();
    let plan = plan_keep_last_1(&client, &reg);
    assert_eq!(plan.delete_count, 1);
    let holder = push_multi(&repo, &[amd], &BTreeMap::new());
    push_chain(&format!("{repo}:deep"), &holder, MAX_INDEX_DEPTH + 1);
    let applied = rt().block_on(apply(&client, &plan, &DeleteProgress::quiet(), &Interrupt::new()));
    let r = &applied.result;
    assert!(r.deleted.is_empty(), "{:?}", r.deleted);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].digest, old);
    let SkipCause::RecheckFailed { error } = &r.skipped[0].cause else {
        panic!("{:?}", r.skipped[0])
    };
    assert!(error.contains("indexes nested more than 4 deep"), "{error}");
    assert_eq!(manifest_status(&reg.host, "acme/re", &old), 200);
}

/// An image chosen by two indexes of one tree takes its missing labels from
/// the one reading it: the tagged index, annotated as built now, is within
/// the grace period although the inner index holding the same image is
/// annotated as built in 2020.
#[test]
fn an_index_dated_by_its_own_annotations_is_kept_in_its_grace_period() {
    let reg = Registry::start();
    let repo = reg.repo("acme/grace");
    let bare = push(
        &repo,
        &ImageSpec {
            platform: Platform::default(),
            layer: b"no labels".to_vec(),
            ..Default::default()
        },
    );
    let (oci_image, oci_index) = (
        image_lifecycle::registry::MEDIA_OCI_MANIFEST,
        image_lifecycle::registry::MEDIA_OCI_INDEX,
    );
    let labels = |created: &str| {
        image_lifecycle::fixture::ci_labels(&revision("2222222"), "x", created, "https://github.com/acme/web")
    };
    let inner = push_index_of(
        &repo,
        &[(bare.clone(), oci_image, Some("linux/amd64"))],
        &labels("2020-01-01T00:00:00Z"),
    );
    let built = now_utc();
    let outer = push_index_of(
        &format!("{repo}:2222222"),
        &[(inner, oci_index, None), (bare, oci_image, Some("linux/amd64"))],
        &labels(&built),
    );
    let plan = plan_with(&client(), &reg, "{keep_last: 0, keep_younger_than: 30d, keep_tags: []}");
    let top = plan.repositories[0].digests.iter().find(|d| d.digest == outer).unwrap();
    assert_eq!(top.decision, Decision::Keep, "{top:#?}");
    assert!(top.created.as_deref() == Some(built.as_str()), "{top:#?}");
}

/// An entry two indexes down takes its missing labels from every index
/// above it, not only from its parent: an untagged inner index built now
/// (by the tagged index's annotations) is in its grace period while the
/// tagged index is dated by the old image it chooses. The young one keeps
/// the indexes above it (deleted, they would leave it with nothing pointing
/// to it), and with them the old image.
#[test]
fn an_entry_deep_in_a_tree_takes_the_annotations_of_every_index_above() {
    let reg = Registry::start();
    let repo = reg.repo("acme/deep-labels");
    let (oci_image, oci_index) = (
        image_lifecycle::registry::MEDIA_OCI_MANIFEST,
        image_lifecycle::registry::MEDIA_OCI_INDEX,
    );
    let old = push(
        &repo,
        &ImageSpec {
            platform: Platform::default(),
            ..image("j1", "2020-01-01T00:00:00Z")
        },
    );
    let bare = push(
        &repo,
        &ImageSpec {
            platform: Platform::default(),
            layer: b"no labels".to_vec(),
            ..Default::default()
        },
    );
    let j2 = push_index_of(
        &repo,
        &[(bare.clone(), oci_image, Some("linux/amd64"))],
        &BTreeMap::new(),
    );
    let i = push_index_of(
        &repo,
        &[
            (old.clone(), oci_image, Some("linux/amd64")),
            (j2.clone(), oci_index, None),
        ],
        &BTreeMap::new(),
    );
    let built = now_utc();
    let labels = image_lifecycle::fixture::ci_labels(&revision("7777777"), "t", &built, "https://github.com/acme/web");
    let top = push_index_of(&format!("{repo}:7777777"), &[(i.clone(), oci_index, None)], &labels);
    let plan = plan_with(&client(), &reg, "{keep_last: 0, keep_younger_than: 30d, keep_tags: []}");
    let by_digest: BTreeMap<&Digest, (Decision, Option<&str>)> = plan.repositories[0]
        .digests
        .iter()
        .map(|d| (&d.digest, (d.decision, d.created.as_deref())))
        .collect();
    let old_date = Some("2020-01-01T00:00:00Z");
    assert_eq!(
        by_digest[&top],
        (Decision::Keep, old_date),
        "dated by the image it chooses, held by the young one"
    );
    assert_eq!(by_digest[&i], (Decision::Keep, old_date));
    assert_eq!(by_digest[&old], (Decision::Keep, old_date));
    let reasons = |d: &Digest| {
        &plan.repositories[0]
            .digests
            .iter()
            .find(|x| &x.digest == d)
            .unwrap()
            .reasons
    };
    assert_eq!(reasons(&top), &[Reason::HoldsKept { digest: i.clone() }]);
    assert!(
        reasons(&i).contains(&Reason::HoldsKept { digest: j2.clone() }),
        "{:?}",
        reasons(&i)
    );
    assert_eq!(
        by_digest[&j2],
        (Decision::Keep, Some(built.as_str())),
        "two indexes down"
    );
    assert_eq!(
        by_digest[&bare],
        (Decision::Keep, Some(built.as_str())),
        "three indexes down"
    );
}

/// The plan of everything in `reg` under `keep_last: 1` and no other rule.
fn plan_keep_last_1(client: &Client, reg: &Registry) -> Plan {
    plan_with(
        client,
        reg,
        "{keep_last: 1, keep_younger_than: 0s, keep_tags: [], protect_history: 1}",
    )
}

/// The plan of everything in `reg` under policy `defaults` and no deploy
/// state.
fn plan_with(client: &Client, reg: &Registry, defaults: &str) -> Plan {
    let dir = tempfile::tempdir().unwrap();
    let policy_path = dir.path().join("policy.yml");
    std::fs::write(&policy_path, format!("workspaces: [dev]\ndefaults: {defaults}\n")).unwrap();
    let policy = Policy::load(&policy_path).unwrap();
    let planning = Planning {
        policy: &policy,
        states: &[],
        now: chrono::Utc::now(),
        reviewed: None,
    };
    rt().block_on(scan_and_plan(
        client,
        &reg.host,
        &Platform::default(),
        &Progress::quiet(),
        &planning,
    ))
    .unwrap()
}

/// The `architecture` of the config of image manifest `digest`.
fn manifest_config_arch(host: &str, repo: &str, digest: &Digest) -> String {
    let m: Value = http()
        .get(format!("http://{host}/v2/{repo}/manifests/{digest}"))
        .header("Accept", ACCEPT)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let config = m["config"]["digest"].as_str().unwrap();
    let c: Value = http()
        .get(format!("http://{host}/v2/{repo}/blobs/{config}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    c["architecture"].as_str().unwrap().to_string()
}
