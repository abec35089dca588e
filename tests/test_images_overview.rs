//! `images_overview` against the real distribution registry: crafted
//! fixtures (index, Docker v2, shared digest, annotations only, no labels,
//! legacy and unparseable `created`) show with the right digests, dates and
//! descriptions, sorted newest first; deploy state marks digests, reports
//! untagged deploys and hosts that differ; the human output is compared
//! whole; the cost model (a warm run is the tag list plus one HEAD per tag)
//! is counted through a logging proxy; tag-list paging, a tag deleted
//! mid-scan and the exit codes are checked.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use common::fault::{Action, FaultServer, Req, Resp};
use common::{Env, Registry, labelled, push, push_multi, revision, stderr, stdout};
use image_lifecycle::fixture::{ImageSpec, ci_labels};
use image_lifecycle::image::Platform;
use image_lifecycle::reference::Digest;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_images_overview");

/// Digests of the fixture repository `acme/web`.
struct Fixtures {
    reg: Registry,
    eb: Digest,
    v2: Digest,
    index: Digest,
    docker: Digest,
    annotated: Digest,
    bare: Digest,
    legacy: Digest,
    raw: Digest,
    /// Pushed by digest only: no tag points to it.
    untagged: Digest,
}

fn spec(short: &str, description: &str, created: &str) -> ImageSpec {
    labelled(&revision(short), description, created)
}

/// The fixture repository. Newest first it reads: 6350192 and latest (one
/// digest, 01:10:00), a1b2c3d (index, 01:05), eb53023 (01:01:33), annot1
/// (00:30, labels in annotations only), legacy1 (legacy `created`, 00:00),
/// d0c4e12 (Docker v2, the day before); undated: nolabel, rawdate.
fn fixtures() -> Fixtures {
    let reg = Registry::start();
    let r = |t: &str| format!("{}:{t}", reg.repo("acme/web"));
    let eb = push(&r("eb53023"), &spec("eb53023", "simple deploy", "2026-01-25T01:01:33Z"));
    let v2_spec = spec(
        "6350192",
        "version 0.0.2\n\nwith a body line",
        "2026-01-25T03:10:00+02:00",
    );
    let v2 = push(&r("6350192"), &v2_spec);
    assert_eq!(push(&r("latest"), &v2_spec), v2, "same content, same digest");
    let child = |p: &str, d: &str| ImageSpec {
        platform: p.parse::<Platform>().unwrap(),
        ..spec("a1b2c3d", d, "2026-01-25T01:05:00Z")
    };
    let index = push_multi(
        &r("a1b2c3d"),
        &[child("linux/arm64", "multi arm64"), child("linux/amd64", "multi amd64")],
        &BTreeMap::new(),
    );
    let docker = push(
        &r("d0c4e12"),
        &ImageSpec {
            docker: true,
            ..spec("d0c4e12", "docker image", "2026-01-24T23:00:00Z")
        },
    );
    let annotated = push(
        &r("annot1"),
        &ImageSpec {
            annotations: ci_labels(
                &revision("a000001"),
                "from annotations",
                "2026-01-25T00:30:00Z",
                "https://github.com/acme/web",
            ),
            layer: b"annotated".to_vec(),
            ..Default::default()
        },
    );
    let bare = push(
        &r("nolabel"),
        &ImageSpec {
            layer: b"no labels at all".to_vec(),
            ..Default::default()
        },
    );
    let legacy = push(&r("legacy1"), &spec("1e9ac10", "legacy created", "2026-01-25 00:00:00"));
    let raw = push(&r("rawdate"), &spec("4a3d0a7", "raw created", "yesterday"));
    let untagged = push(
        &reg.repo("acme/web"),
        &spec("0ld0000", "never tagged", "2026-01-20T00:00:00Z"),
    );
    Fixtures {
        reg,
        eb,
        v2,
        index,
        docker,
        annotated,
        bare,
        legacy,
        raw,
        untagged,
    }
}

/// A deploy state file of workspace `dev` in `env`'s home.
fn deploy_state(env: &Env, image: &str, records: &[(&str, &Digest, &str)]) -> PathBuf {
    let recs: Vec<Value> = records
        .iter()
        .map(|(host, digest, tag)| {
            serde_json::json!({
                "host": host, "path": "/opt/acme/web/deploy-info.yml", "app": "web",
                "workspace": "dev", "image": image, "tag": tag, "digest": digest.to_string(),
                "deployed_at": "2026-01-25T02:00:00Z",
                "history": [{"digest": digest.to_string(), "tag": tag, "deployed_at": "2026-01-25T02:00:00Z"}],
            })
        })
        .collect();
    let mut hosts: Vec<&str> = records.iter().map(|r| r.0).collect();
    hosts.push("web3");
    let state = serde_json::json!({
        "workspace": "dev", "collected_at": "2026-01-25T02:05:00Z",
        "hosts": hosts, "records": recs,
    });
    let p = env.home.path().join("dev.json");
    std::fs::write(&p, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    p
}

fn run(env: &Env, args: &[&str]) -> (i32, String, String) {
    let o = env.run(BIN, args);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

fn json_run(env: &Env, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = run(env, &a);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn fixtures_show_with_their_digests_dates_and_descriptions() {
    let f = fixtures();
    let env = Env::new();
    let image = f.reg.repo("acme/web");
    let j = json_run(&env, &["dev", &image]);
    let tags = j["tags"].as_array().unwrap();
    let order: Vec<&str> = tags.iter().map(|t| t["tag"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        [
            "6350192", "latest", "a1b2c3d", "eb53023", "annot1", "legacy1", "d0c4e12", "nolabel", "rawdate"
        ]
    );
    let by_tag: BTreeMap<&str, &Value> = tags.iter().map(|t| (t["tag"].as_str().unwrap(), t)).collect();
    let row = |t: &str| -> (String, Value, Value) {
        let v = by_tag[t];
        (
            v["digest"].as_str().unwrap().to_string(),
            v["created"].clone(),
            v["description"].clone(),
        )
    };
    let s = |x: &str| Value::String(x.to_string());
    assert_eq!(
        row("6350192"),
        (
            f.v2.to_string(),
            s("2026-01-25T01:10:00Z"),
            s("version 0.0.2\n\nwith a body line")
        )
    );
    assert_eq!(row("latest").0, f.v2.to_string());
    // An index: its own digest, the labels of the linux/amd64 child.
    assert_eq!(
        row("a1b2c3d"),
        (f.index.to_string(), s("2026-01-25T01:05:00Z"), s("multi amd64"))
    );
    assert_eq!(
        row("eb53023"),
        (f.eb.to_string(), s("2026-01-25T01:01:33Z"), s("simple deploy"))
    );
    assert_eq!(
        row("d0c4e12"),
        (f.docker.to_string(), s("2026-01-24T23:00:00Z"), s("docker image"))
    );
    assert_eq!(
        row("annot1"),
        (
            f.annotated.to_string(),
            s("2026-01-25T00:30:00Z"),
            s("from annotations")
        )
    );
    assert_eq!(by_tag["annot1"]["revision"], s(&revision("a000001")));
    assert_eq!(row("nolabel"), (f.bare.to_string(), Value::Null, Value::Null));
    assert_eq!(by_tag["nolabel"]["source"], Value::Null);
    assert_eq!(
        row("legacy1"),
        (f.legacy.to_string(), s("2026-01-25T00:00:00Z"), s("legacy created"))
    );
    assert!(
        by_tag["legacy1"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("read as UTC")
    );
    assert_eq!(row("rawdate"), (f.raw.to_string(), s("yesterday"), s("raw created")));
    assert!(tags.iter().all(|t| t["deployed"] == Value::Bool(false)));
}

#[test]
fn human_output_with_deploy_state_snapshot() {
    let f = fixtures();
    let env = Env::new();
    let image = f.reg.repo("acme/web");
    // web1 runs eb53023, web2 runs a digest no tag points to.
    let state = deploy_state(
        &env,
        &image,
        &[("web1", &f.eb, "eb53023"), ("web2", &f.untagged, "0ld0000")],
    );
    let (code, out, err) = run(&env, &["dev", &image, "--deployed", state.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let expected = format!(
        "IMAGE: {image}   workspace: dev
    TAG       CREATED              DESCRIPTION
    6350192   2026-01-25 01:10:00  version 0.0.2
    latest    2026-01-25 01:10:00  version 0.0.2
    a1b2c3d   2026-01-25 01:05:00  multi amd64
→   eb53023   2026-01-25 01:01:33  simple deploy
    annot1    2026-01-25 00:30:00  from annotations
    legacy1   2026-01-25 00:00:00  legacy created
    d0c4e12   2026-01-24 23:00:00  docker image
    nolabel   -                    -
    rawdate   yesterday            raw created
Deployed, but no tag points to the digest:
→   web2  (deployed as 0ld0000)  {untagged}
Hosts of workspace dev run different digests:
    web1   eb53023      {eb}
    web2   (untagged)   {untagged}
",
        untagged = f.untagged,
        eb = f.eb
    );
    assert_eq!(out, expected);
    // Warnings go to stderr, one line per image with label problems.
    assert!(
        err.contains(&format!(
            "warning: `{image}:legacy1`: label `org.opencontainers.image.created` is `2026-01-25 00:00:00`"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "warning: `{image}:nolabel`: label `org.opencontainers.image.revision` is missing"
        )),
        "{err}"
    );
    assert!(!out.contains('\x1b'), "no colour when stdout is not a terminal");
    assert!(!err.contains("has no record of"), "{err}");

    // The same state with the registry written another way: nothing can be
    // marked, and the overview says why instead of looking undeployed.
    let other_name = image.replacen("127.0.0.1", "localhost", 1);
    let state = deploy_state(&env, &other_name, &[("web1", &f.eb, "eb53023")]);
    let (code, out, err) = run(&env, &["dev", &image, "--deployed", state.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains('→'), "{out}");
    assert!(
        err.contains(&format!(
            "warning: deploy state `{}` has no record of `{image}` (it records `{other_name}`): no tag is marked",
            state.display()
        )),
        "{err}"
    );
}

#[test]
fn every_tag_of_a_deployed_digest_is_marked_and_limit_keeps_deployed_rows() {
    let f = fixtures();
    let env = Env::new();
    let image = f.reg.repo("acme/web");
    let state = deploy_state(
        &env,
        &image,
        &[
            ("web1", &f.v2, "6350192"),
            ("web2", &f.v2, "6350192"),
            ("web3", &f.docker, "d0c4e12"),
        ],
    );
    let state = state.to_str().unwrap();
    let j = json_run(&env, &["dev", &image, "--deployed", state, "--limit", "1"]);
    let rows: Vec<(&str, bool, Vec<&str>)> = j["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tag"].as_str().unwrap(),
                t["deployed"].as_bool().unwrap(),
                t["hosts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h.as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("6350192", true, vec!["web1", "web2"]),
            ("latest", true, vec!["web1", "web2"]),
            ("d0c4e12", true, vec!["web3"]),
        ]
    );
    assert_eq!(j["omitted_tags"], 6);
    assert_eq!(j["untagged_deployed"], serde_json::json!([]));
    let hosts: Vec<&str> = j["hosts_differ"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["web1", "web2", "web3"]);
    let (code, out, _) = run(&env, &["dev", &image, "--deployed", state, "--limit", "1"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().skip(2).take(4).collect();
    assert_eq!(
        lines,
        [
            "→   6350192   2026-01-25 01:10:00  version 0.0.2",
            "→   latest    2026-01-25 01:10:00  version 0.0.2",
            "→   d0c4e12   2026-01-24 23:00:00  docker image",
            "    … 6 older tags not shown (--limit)",
        ]
    );
}

#[test]
fn json_has_the_documented_fields() {
    let reg = Registry::start();
    let image = reg.repo("acme/web");
    let d = push(
        &format!("{image}:eb53023"),
        &spec("eb53023", "simple deploy", "2026-01-25T01:01:33Z"),
    );
    let env = Env::new();
    let state = deploy_state(&env, &image, &[("web1", &d, "eb53023")]);
    let j = json_run(&env, &["dev", &image, "--deployed", state.to_str().unwrap()]);
    for key in ["image", "workspace", "deployed", "tags"] {
        assert!(j.get(key).is_some(), "missing `{key}` in {j}");
    }
    assert_eq!(j["image"], image.as_str());
    assert_eq!(j["workspace"], "dev");
    assert_eq!(j["deployed"][0]["host"], "web1");
    assert_eq!(j["deployed"][0]["digest"], d.to_string());
    assert_eq!(j["deployed"][0]["tag"], "eb53023");
    assert_eq!(
        j["tags"][0],
        serde_json::json!({
            "tag": "eb53023", "digest": d.to_string(), "created": "2026-01-25T01:01:33Z",
            "description": "simple deploy", "revision": revision("eb53023"),
            "source": "https://github.com/acme/web", "deployed": true, "hosts": ["web1"],
        })
    );
}

#[test]
fn descriptions_are_cut_to_columns() {
    let reg = Registry::start();
    let image = reg.repo("acme/web");
    push(
        &format!("{image}:eb53023"),
        &spec(
            "eb53023",
            "a long description that will not fit in fifty columns\nsecond line",
            "2026-01-25T01:01:33Z",
        ),
    );
    let env = Env::new().set("COLUMNS", "50");
    let (code, out, _) = run(&env, &["dev", &image]);
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().nth(2).unwrap(),
        "    eb53023   2026-01-25 01:01:33  a long descrip…"
    );
    // Without COLUMNS and not on a terminal: the whole first line.
    let (_, out, _) = run(&Env::new(), &["dev", &image]);
    assert_eq!(
        out.lines().nth(2).unwrap(),
        "    eb53023   2026-01-25 01:01:33  a long description that will not fit in fifty columns"
    );
}

/// Counts requests through a forwarding proxy: the first run reads each
/// tag with one GET (digest and manifest at once) and each distinct config
/// once; the second, with the same cache, only lists tags and HEADs each
/// tag once.
#[test]
fn warm_run_costs_the_tag_list_and_one_head_per_tag() {
    let f = fixtures();
    let proxy = FaultServer::start(Some(f.reg.host.clone()), Arc::new(|_: &Req| Action::Forward));
    let env = Env::new();
    let image = format!("{}/acme/web", proxy.host);
    let count = |reqs: &[Req], method: &str, part: &str| {
        reqs.iter()
            .filter(|r| r.method == method && r.path.contains(part))
            .count()
    };
    let (code, _, err) = run(&env, &["dev", &image, "--json"]);
    assert_eq!(code, 0, "{err}");
    let cold = proxy.requests();
    assert_eq!(count(&cold, "GET", "/tags/list"), 1);
    assert_eq!(count(&cold, "HEAD", "/manifests/"), 0);
    // One GET per tag, plus the two children of the index by digest.
    assert_eq!(count(&cold, "GET", "/manifests/"), 9 + 2);
    assert_eq!(count(&cold, "GET", "/manifests/sha256:"), 2);
    // Configs: one per image manifest (6350192 and latest share one).
    assert_eq!(count(&cold, "GET", "/blobs/"), 9);
    assert_eq!(cold.len(), 1 + 11 + 9);
    let n_cold = cold.len();
    let (code, _, err) = run(&env, &["dev", &image, "--json"]);
    assert_eq!(code, 0, "{err}");
    let warm: Vec<Req> = proxy.requests()[n_cold..].to_vec();
    let paths: Vec<String> = warm.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(warm.len(), 10, "{paths:#?}");
    assert_eq!(count(&warm, "GET", "/tags/list"), 1);
    assert_eq!(count(&warm, "HEAD", "/manifests/"), 9);

    // The content is in one pack file for the repository, not one file per
    // manifest and config.
    let cache = env.home.path().join("cache");
    let packs: Vec<PathBuf> = std::fs::read_dir(cache.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    assert!(!cache.join("manifests").exists() && !cache.join("blobs").exists());

    // A damaged pack is not trusted: every body in it changed, the answer
    // is the same and the content is fetched again (then packed again).
    let want = json_run(&env, &["dev", &image]);
    let mut raw = std::fs::read(&packs[0]).unwrap();
    for b in raw.iter_mut() {
        if *b == b'"' {
            *b = b'\'';
        }
    }
    std::fs::write(&packs[0], &raw).unwrap();
    let before = proxy.requests().len();
    assert_eq!(json_run(&env, &["dev", &image]), want);
    let again = proxy.requests()[before..].to_vec();
    assert_eq!(count(&again, "HEAD", "/manifests/"), 9);
    // Eight distinct digests among the nine tags, and the two children.
    assert_eq!(
        count(&again, "GET", "/manifests/sha256:"),
        10,
        "manifests fetched again"
    );
    assert!(count(&again, "GET", "/blobs/") >= 8, "configs fetched again");
    let before = proxy.requests().len();
    assert_eq!(json_run(&env, &["dev", &image]), want);
    assert_eq!(proxy.requests().len() - before, 10, "then warm again");
}

/// The real registry ignores `n` for tag lists and answers in one page;
/// this server pages them (2 per page, `Link` with `rel="next"`), out of
/// order, and passes the rest to the real registry.
#[test]
fn tag_list_pages_are_followed() {
    let f = fixtures();
    let pages = Arc::new(|req: &Req| -> Action {
        let page = |tags: &[&str], next: Option<&str>| {
            let body = serde_json::json!({"name": "acme/web", "tags": tags}).to_string();
            let mut r = Resp::new(200, body).header("Content-Type", "application/json");
            if let Some(n) = next {
                r = r.header("Link", &format!("<{n}>; rel=\"next\""));
            }
            Action::Respond(r)
        };
        match req.path.as_str() {
            "/v2/acme/web/tags/list" => page(&["rawdate", "eb53023"], Some("/v2/acme/web/tags/list?n=2&last=eb53023")),
            "/v2/acme/web/tags/list?n=2&last=eb53023" => {
                page(&["6350192", "a1b2c3d"], Some("/v2/acme/web/tags/list?n=2&last=a1b2c3d"))
            }
            "/v2/acme/web/tags/list?n=2&last=a1b2c3d" => page(&["latest"], None),
            p if p.contains("/tags/list") => Action::Respond(Resp::new(500, "unexpected page")),
            _ => Action::Forward,
        }
    });
    let server = FaultServer::start(Some(f.reg.host.clone()), pages);
    let env = Env::new();
    let j = json_run(&env, &["dev", &format!("{}/acme/web", server.host)]);
    let tags: Vec<(&str, &str)> = j["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tag"].as_str().unwrap(), t["digest"].as_str().unwrap()))
        .collect();
    let (v2, index, eb, raw) = (
        f.v2.to_string(),
        f.index.to_string(),
        f.eb.to_string(),
        f.raw.to_string(),
    );
    assert_eq!(
        tags,
        [
            ("6350192", v2.as_str()),
            ("latest", v2.as_str()),
            ("a1b2c3d", index.as_str()),
            ("eb53023", eb.as_str()),
            ("rawdate", raw.as_str()),
        ]
    );
    let lists = server
        .requests()
        .iter()
        .filter(|r| r.path.contains("/tags/list"))
        .count();
    assert_eq!(lists, 3);
}

#[test]
fn a_tag_deleted_during_the_scan_is_skipped_with_a_warning() {
    let f = fixtures();
    // The tag list names `ghost`, which the registry does not have.
    let server = FaultServer::start(
        Some(f.reg.host.clone()),
        Arc::new(|req: &Req| {
            if req.path.contains("/tags/list") {
                let body = serde_json::json!({"name": "acme/web", "tags": ["eb53023", "ghost"]}).to_string();
                Action::Respond(Resp::new(200, body).header("Content-Type", "application/json"))
            } else {
                Action::Forward
            }
        }),
    );
    let env = Env::new();
    let image = format!("{}/acme/web", server.host);
    let (code, out, err) = run(&env, &["dev", &image]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "IMAGE: {image}   workspace: dev\n    TAG       CREATED              DESCRIPTION\n    eb53023   2026-01-25 01:01:33  simple deploy\n"
        )
    );
    assert!(
        err.contains(&format!(
            "warning: tag `ghost` of `{image}` was deleted while the repository was read; skipped"
        )),
        "{err}"
    );
}

#[test]
fn exit_codes() {
    let reg = Registry::start();
    let image = reg.repo("acme/web");
    push(
        &format!("{image}:v1"),
        &labelled(&revision("c0ffee0"), "x", "2026-01-25T01:01:33Z"),
    );
    let env = Env::new();
    // Repository not found: 3.
    let (code, out, err) = run(&env, &["dev", &reg.repo("acme/nothing")]);
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    // Invalid reference: 2.
    let (code, _, err) = run(&env, &["dev", "not a reference"]);
    assert_eq!(code, 2, "{err}");
    // Unreadable or foreign deploy state: 2, naming the file.
    let missing = env.home.path().join("missing.json");
    let (code, _, err) = run(&env, &["dev", &image, "--deployed", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.json"), "{err}");
    assert!(err.contains("; hint: collect the deploy state again"), "{err}");
    let prod = env.home.path().join("prod.json");
    std::fs::write(&prod, r#"{"workspace": "prod", "hosts": [], "records": []}"#).unwrap();
    let (code, _, err) = run(&env, &["dev", &image, "--deployed", prod.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is for workspace `prod`, not `dev`"), "{err}");
    // Nothing listens: 5.
    let port = common::free_port();
    let (code, _, err) = run(&env, &["dev", &format!("127.0.0.1:{port}/acme/web"), "--timeout", "2"]);
    assert_eq!(code, 5, "{err}");
    // A tag in the image: listed all the same, with a warning.
    let (code, out, err) = run(&env, &["dev", &format!("{image}:v9")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\n    v1    2026-01-25 01:01:33  x\n"), "{out}");
    assert!(
        err.contains(&format!(
            "warning: `{image}:v9` names a tag or digest, which is ignored: the overview lists every tag of `{image}`"
        )),
        "{err}"
    );
    // Bad --limit: 2.
    let (code, _, _) = run(&env, &["dev", &image, "--limit", "0"]);
    assert_eq!(code, 2);
    // No registry host (the repository forgotten, or Docker Hub implied): 2,
    // at once, one line.
    for bad in [format!("127.0.0.1:{port}"), "acme/web".to_string()] {
        let (code, out, err) = run(&env, &["dev", &bad]);
        assert_eq!((code, out.as_str()), (2, ""), "{bad}: {err}");
        assert!(err.contains("names no registry host"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// A tag moved to another image between two runs: the second run HEADs it
/// (it was seen before), finds a digest it has not cached, reads it, and
/// shows the new image; the hint never decides the result.
#[test]
fn a_moved_tag_shows_its_new_image() {
    let reg = Registry::start();
    let image = reg.repo("acme/web");
    let env = Env::new();
    push(
        &format!("{image}:stable"),
        &spec("1111111", "first", "2026-01-25T01:00:00Z"),
    );
    let j = json_run(&env, &["dev", &image]);
    assert_eq!(j["tags"][0]["description"], "first");
    let second = push(
        &format!("{image}:stable"),
        &spec("2222222", "second", "2026-01-25T02:00:00Z"),
    );
    let j = json_run(&env, &["dev", &image]);
    assert_eq!(j["tags"][0]["digest"], second.to_string());
    assert_eq!(j["tags"][0]["description"], "second");
    assert_eq!(j["tags"][0]["created"], "2026-01-25T02:00:00Z");
}

/// `s` quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn the_progress_bar_is_drawn_on_a_terminal_and_only_there() {
    let f = fixtures();
    // 150 ms per manifest request, so that the bar has time to be drawn.
    let slow = FaultServer::start(
        Some(f.reg.host.clone()),
        Arc::new(|req: &Req| {
            if req.path.contains("/manifests/") {
                Action::Delay(std::time::Duration::from_millis(150))
            } else {
                Action::Forward
            }
        }),
    );
    let image = format!("{}/acme/web", slow.host);
    let env = Env::new().set("TERM", "xterm");
    let piped = run(&env, &["dev", &image]);
    assert_eq!(piped.0, 0, "{}", piped.2);

    let bar = regex::Regex::new(r"\[[=> ]{25}\] \d+/9 tags").unwrap();
    // stderr on a terminal (util-linux `script` gives the command a pty),
    // stdout to a file: the bar is drawn on the terminal, the table alone
    // goes to the file.
    for json in [false, true] {
        let work = tempfile::tempdir().unwrap();
        let out_file = work.path().join("out");
        let cache = work.path().join("cache");
        let line = format!(
            "{} dev {}{} > {}",
            sh_quote(BIN),
            sh_quote(&image),
            if json { " --json" } else { "" },
            sh_quote(&out_file.display().to_string())
        );
        let o = env
            .command("script", &["-qec", &line, "/dev/null"])
            .env("IMAGE_LIFECYCLE_CACHE_DIR", &cache)
            .output()
            .expect("`script` (util-linux) runs a command on a pseudo-terminal: apt-get install bsdutils");
        let terminal = stdout(&o);
        assert!(o.status.success(), "{terminal}{}", stderr(&o));
        let table = std::fs::read_to_string(&out_file).unwrap();
        if json {
            assert!(!terminal.contains(" tags"), "no bar with --json: {terminal:?}");
            assert!(table.starts_with('{'), "{table}");
        } else {
            assert!(bar.is_match(&terminal), "a bar on the terminal: {terminal:?}");
            assert!(!terminal.contains("0/0 tags"), "{terminal:?}");
            assert_eq!(table, piped.1, "the table is the same as without a terminal");
        }
    }
    // stderr not a terminal: warnings only, no bar and no escape sequence.
    assert!(
        !piped.2.contains(" tags,") && !piped.2.contains('\x1b'),
        "{:?}",
        piped.2
    );
}

/// Two manifests that share their config (they differ only in an
/// annotation) read it once, even when both are read at the same time.
#[test]
fn a_config_shared_by_two_manifests_is_fetched_once() {
    let reg = Registry::start();
    let mut first = spec("5a5a5a5", "shared config", "2026-01-25T01:01:33Z");
    first.annotations.insert("vnd.example.build".into(), "1".into());
    let mut second = first.clone();
    second.annotations.insert("vnd.example.build".into(), "2".into());
    let d1 = push(&format!("{}:5a5a5a5", reg.repo("acme/web")), &first);
    let d2 = push(&format!("{}:rebuilt", reg.repo("acme/web")), &second);
    assert_ne!(d1, d2);
    // Blob GETs answered slowly, so that both tags reach their config while
    // the first GET of it is still running.
    let slow = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(|req: &Req| {
            if req.method == "GET" && req.path.contains("/blobs/") {
                Action::Delay(std::time::Duration::from_millis(300))
            } else {
                Action::Forward
            }
        }),
    );
    let j = json_run(&Env::new(), &["dev", &format!("{}/acme/web", slow.host)]);
    let descriptions: Vec<&str> = j["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["description"].as_str().unwrap())
        .collect();
    assert_eq!(descriptions, ["shared config", "shared config"]);
    let blob_gets = slow
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .count();
    assert_eq!(blob_gets, 1, "{:?}", slow.requests());
}

/// Label warnings are of an image: one line per digest, naming its other
/// tags, not one per tag.
#[test]
fn label_warnings_come_once_per_image() {
    let reg = Registry::start();
    let bare = ImageSpec {
        layer: b"no labels".to_vec(),
        ..Default::default()
    };
    let d = push(&reg.repo("acme/web:first"), &bare);
    assert_eq!(push(&reg.repo("acme/web:second"), &bare), d);
    let image = reg.repo("acme/web");
    let (code, _, err) = run(&Env::new(), &["dev", &image]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("is missing")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    let one_of = |a: &str, b: &str| format!("warning: `{image}:{a}` (also `{b}`): label ");
    assert!(
        lines[0].starts_with(&one_of("first", "second")) || lines[0].starts_with(&one_of("second", "first")),
        "{err}"
    );
}

/// An index in an index (as buildx nests them) shows the labels of its
/// `linux/amd64` grandchild (the default `--platform`), without a warning
/// that the outer index has no such child of its own; one whose inner
/// index has no such child either says so once.
#[test]
fn a_nested_index_shows_its_platform_grandchild() {
    let reg = Registry::start();
    let child = |p: &str, d: &str, created: &str| ImageSpec {
        platform: p.parse::<Platform>().unwrap(),
        ..spec("0ae5ed1", d, created)
    };
    let (outer, _) = common::push_nested(
        &reg.repo("acme/web:0ae5ed1"),
        &[
            child("linux/arm64", "nested arm64", "2026-01-25T01:19:00Z"),
            child("linux/amd64", "nested amd64", "2026-01-25T01:20:00Z"),
        ],
    );
    let (arm_only, _) = common::push_nested(
        &reg.repo("acme/web:a4a4a4a"),
        &[child("linux/arm64", "arm only", "2026-01-25T01:00:00Z")],
    );
    let image = reg.repo("acme/web");
    let (code, out, err) = run(&Env::new(), &["dev", &image, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err,
        format!("warning: `{image}:a4a4a4a`: index has no `linux/amd64` child; labels read from the first child\n")
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let t = &v["tags"][0];
    assert_eq!(t["digest"], outer.to_string());
    assert_eq!(t["description"], "nested amd64");
    assert_eq!(t["created"], "2026-01-25T01:20:00Z");
    assert_eq!(t["revision"], revision("0ae5ed1"));
    assert_eq!(v["tags"][1]["digest"], arm_only.to_string());
    assert_eq!(v["tags"][1]["description"], "arm only");
}

/// Indexes that list the one below many times are read once each: a few
/// small manifests must not cost a request (or a description) per path
/// through them.
#[test]
fn an_index_listed_many_times_is_read_once() {
    let reg = Registry::start();
    let repo = reg.repo("acme/fan");
    let amd = ImageSpec {
        platform: "linux/amd64".parse::<Platform>().unwrap(),
        ..spec("fa1fa1f", "fan out", "2026-01-25T01:00:00Z")
    };
    // 8 × 8 × 8 × 8 paths from the tag to the image.
    let mut inner = push_multi(&repo, &vec![amd; 8], &BTreeMap::new());
    for _ in 0..2 {
        inner = common::push_wrapper(&repo, &inner, 8);
    }
    let top = common::push_wrapper(&format!("{repo}:fa1fa1f"), &inner, 8);
    let proxy = FaultServer::start(Some(reg.host.clone()), Arc::new(|_: &Req| Action::Forward));
    let mut env = Env::new();
    env.vars.push(("IMAGE_LIFECYCLE_CACHE_DIR".into(), "off".into()));
    let (code, out, err) = run(&env, &["dev", &format!("{}/acme/fan", proxy.host), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tags"][0]["digest"], top.to_string());
    assert_eq!(v["tags"][0]["description"], "fan out");
    let requests: Vec<String> = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && (r.path.contains("/manifests/") || r.path.contains("/blobs/")))
        .map(|r| r.path.clone())
        .collect();
    // The tag, three indexes below it, the image and its config.
    assert_eq!(requests.len(), 6, "{requests:#?}");
}

/// Labels missing from an image in an index in an index come from the
/// annotations of the indexes above it, the inner one's first.
#[test]
fn a_nested_index_takes_missing_labels_from_the_annotations_above() {
    let reg = Registry::start();
    let repo = reg.repo("acme/web");
    let bare = ImageSpec {
        platform: Platform::default(),
        layer: b"no labels".to_vec(),
        ..Default::default()
    };
    let inner_annotations = BTreeMap::from([(
        "org.opencontainers.image.description".to_string(),
        "from the inner index".to_string(),
    )]);
    let inner = push_multi(&repo, &[bare], &inner_annotations);
    let labels = ci_labels(
        &revision("0b0b0b0"),
        "from the outer index",
        "2026-01-25T01:30:00Z",
        "https://github.com/acme/web",
    );
    let outer = common::push_wrapper_with(&format!("{repo}:0b0b0b0"), &inner, 1, &labels);
    let (code, out, err) = run(&Env::new(), &["dev", &repo, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "");
    let v: Value = serde_json::from_str(&out).unwrap();
    let t = &v["tags"][0];
    assert_eq!(t["digest"], outer.to_string());
    assert_eq!(t["description"], "from the inner index");
    assert_eq!(t["created"], "2026-01-25T01:30:00Z");
    assert_eq!(t["revision"], revision("0b0b0b0"));
    assert_eq!(t["source"], "https://github.com/acme/web");
}

/// An image met first through an inner index, and chosen by the outer one
/// too, takes its missing labels from the outer index's annotations when
/// read for the outer one (not from wherever it was met first).
#[test]
fn an_image_in_two_indexes_takes_the_annotations_of_the_one_reading_it() {
    let reg = Registry::start();
    let repo = reg.repo("acme/web");
    let (oci_image, oci_index) = (
        image_lifecycle::registry::MEDIA_OCI_MANIFEST,
        image_lifecycle::registry::MEDIA_OCI_INDEX,
    );
    let bare = push(
        &repo,
        &ImageSpec {
            platform: Platform::default(),
            layer: b"no labels".to_vec(),
            ..Default::default()
        },
    );
    let labelled_one = push(
        &repo,
        &ImageSpec {
            platform: Platform::default(),
            ..spec("1111111", "inner amd64", "2020-01-01T00:00:00Z")
        },
    );
    // The inner index chooses the labelled image; it lists the bare one
    // (first met here) without a platform.
    let inner = common::push_index_of(
        &repo,
        &[
            (labelled_one, oci_image, Some("linux/amd64")),
            (bare.clone(), oci_image, None),
        ],
        &BTreeMap::new(),
    );
    let labels = ci_labels(
        &revision("2222222"),
        "from the outer index",
        "2026-01-25T01:40:00Z",
        "https://github.com/acme/web",
    );
    let outer = common::push_index_of(
        &format!("{repo}:2222222"),
        &[(inner, oci_index, None), (bare, oci_image, Some("linux/amd64"))],
        &labels,
    );
    let (code, out, err) = run(&Env::new(), &["dev", &repo, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "");
    let v: Value = serde_json::from_str(&out).unwrap();
    let t = &v["tags"][0];
    assert_eq!(t["digest"], outer.to_string());
    assert_eq!(t["description"], "from the outer index");
    assert_eq!(t["created"], "2026-01-25T01:40:00Z");
}

/// An index reached at the end of the walk for labels (read nearer the top
/// on another path, so no steps are left to follow it) still gives the
/// annotations above it: here the tagged index's date.
#[test]
fn an_index_at_the_end_of_the_label_walk_keeps_the_annotations_above() {
    let reg = Registry::start();
    let repo = reg.repo("acme/web");
    let arm = ImageSpec {
        platform: "linux/arm64".parse::<Platform>().unwrap(),
        layer: b"no labels".to_vec(),
        ..Default::default()
    };
    // `x` has no linux/amd64 child, so every index picks its first child.
    let x = push_multi(&repo, &[arm], &BTreeMap::new());
    // The walk from the tag reaches `x` through the chain after
    // MAX_INDEX_DEPTH + 1 steps; `x` itself is read one level down.
    let chain = common::push_chain(&repo, &x, image_lifecycle::image::MAX_INDEX_DEPTH)
        .pop()
        .unwrap();
    let index = image_lifecycle::registry::MEDIA_OCI_INDEX;
    let labels = ci_labels(
        &revision("0c0c0c0"),
        "end of the walk",
        "2026-01-25T01:50:00Z",
        "https://github.com/acme/web",
    );
    let top = common::push_index_of(
        &format!("{repo}:0c0c0c0"),
        &[(chain, index, None), (x, index, None)],
        &labels,
    );
    let v = json_run(&Env::new(), &["dev", &repo]);
    let t = &v["tags"][0];
    assert_eq!(t["digest"], top.to_string());
    assert_eq!(t["created"], "2026-01-25T01:50:00Z");
    assert_eq!(t["description"], "end of the walk");
}
