//! `registry_overview` against the real distribution registry: every
//! repository of the catalog (paged with a small page size, which the real
//! registry honours for the catalog) under its own header, tags newest
//! first, the summary line (tags, distinct digests, size of distinct
//! blobs, counted from the pushed content), CI contract flags, `--repo`,
//! the JSON shape, and the library scan the cleanup planner shares.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::{Env, Registry, labelled, push, revision, rt, stderr, stdout};
use image_lifecycle::fixture::ImageSpec;
use image_lifecycle::image::Platform;
use image_lifecycle::reference::Reference;
use image_lifecycle::registry::{Client, ClientOptions, MANIFEST_ACCEPT};
use image_lifecycle::scan::{CatalogFilter, Progress, ScanEvent, scan_registry, scan_repository};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_registry_overview");

fn run(env: &Env, args: &[&str]) -> (i32, String, String) {
    let o = env.run(BIN, args);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

fn client(cache: &std::path::Path) -> Client {
    Client::new(ClientOptions {
        cache_dir: Some(cache.to_path_buf()),
        ..Default::default()
    })
    .unwrap()
}

/// Bytes of a manifest plus its config and layers, read back from the
/// registry: what `size_bytes` must add up (each blob once).
fn stored_sizes(reg: &Registry, repo: &str, tag: &str) -> BTreeMap<String, u64> {
    let http = reqwest::blocking::Client::new();
    let body = http
        .get(format!("http://{}/v2/{repo}/manifests/{tag}", reg.host))
        .header("Accept", MANIFEST_ACCEPT)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let m: Value = serde_json::from_slice(&body).unwrap();
    let mut out = BTreeMap::new();
    out.insert(format!("manifest {tag}"), body.len() as u64);
    for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
        out.insert(d["digest"].as_str().unwrap().to_string(), d["size"].as_u64().unwrap());
    }
    out
}

/// `acme/web`: two CI images, one also tagged `latest`; `acme/api`: one
/// image without labels; `tools/ci`: one image tagged other than its
/// revision. Plus `other/one` … for the filter.
fn registry() -> Registry {
    let reg = Registry::start();
    let web = |t: &str| format!("{}:{t}", reg.repo("acme/web"));
    let v1 = labelled(&revision("eb53023"), "simple deploy", "2026-01-25T01:01:33Z");
    let v2 = labelled(&revision("6350192"), "version 0.0.2", "2026-01-25T01:10:00Z");
    push(&web("eb53023"), &v1);
    push(&web("6350192"), &v2);
    push(&web("latest"), &v2);
    push(
        &format!("{}:1.0", reg.repo("acme/api")),
        &ImageSpec {
            layer: b"api".to_vec(),
            ..Default::default()
        },
    );
    push(
        &format!("{}:release", reg.repo("tools/ci")),
        &labelled(&revision("abcdef1"), "ci tools", "2026-01-20T10:00:00Z"),
    );
    reg
}

#[test]
fn human_output_snapshot() {
    let reg = registry();
    let env = Env::new();
    let (code, out, err) = run(&env, &[&reg.host]);
    assert_eq!(code, 0, "{err}");
    let host = &reg.host;
    let size = |repo: &str, tags: &[&str]| -> u64 {
        let mut all = BTreeMap::new();
        for t in tags {
            all.extend(stored_sizes(&reg, repo, t));
        }
        // Two tags of one digest share one manifest.
        if tags.contains(&"latest") {
            all.remove("manifest latest");
        }
        all.values().sum()
    };
    let human = |n: u64| image_lifecycle::human::bytes(n);
    let expected = format!(
        "REGISTRY: {host}

IMAGE: {host}/acme/api
    TAG   CREATED              DESCRIPTION
!   1.0   -                    -
    1 tag, 1 digest, {api} in distinct blobs, 1 tag breaking the CI contract
!   1.0: missing label revision, description, created, source

IMAGE: {host}/acme/web
    TAG       CREATED              DESCRIPTION
    6350192   2026-01-25 01:10:00  version 0.0.2
!   latest    2026-01-25 01:10:00  version 0.0.2
    eb53023   2026-01-25 01:01:33  simple deploy
    3 tags, 2 digests, {web} in distinct blobs, 1 tag breaking the CI contract
!   latest: tag is not revision[:7] (`6350192`)

IMAGE: {host}/tools/ci
    TAG       CREATED              DESCRIPTION
!   release   2026-01-20 10:00:00  ci tools
    1 tag, 1 digest, {ci} in distinct blobs, 1 tag breaking the CI contract
!   release: tag is not revision[:7] (`abcdef1`)
",
        api = human(size("acme/api", &["1.0"])),
        web = human(size("acme/web", &["eb53023", "6350192", "latest"])),
        ci = human(size("tools/ci", &["release"])),
    );
    assert_eq!(out, expected);
    assert!(!out.contains('\x1b'));
}

#[test]
fn json_shape_sizes_and_repo_filter() {
    let reg = registry();
    let env = Env::new();
    let (code, out, err) = run(&env, &[&reg.host, "--json", "--repo", "^acme/"]);
    assert_eq!(code, 0, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["registry"], reg.host.as_str());
    let names: Vec<&str> = j["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme/api", "acme/web"]);
    let web = &j["repositories"][1];
    let mut blobs = stored_sizes(&reg, "acme/web", "eb53023");
    blobs.extend(stored_sizes(&reg, "acme/web", "6350192"));
    // The two images share no layer (distinct content) but `latest` adds nothing.
    assert_eq!(web["size_bytes"].as_u64().unwrap(), blobs.values().sum::<u64>());
    assert_eq!(web["digests"], 2);
    let t = &web["tags"][0];
    let keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    for k in ["tag", "digest", "created", "description", "revision", "source"] {
        assert!(keys.contains(&k), "missing `{k}` in {t}");
    }
    assert!(t.get("deployed").is_none(), "no deploy state in registry_overview: {t}");
    assert_eq!(t["tag"], "6350192");
    assert_eq!(t["created"], "2026-01-25T01:10:00Z");
    assert_eq!(t["problems"], serde_json::json!([]));
    assert_eq!(web["tags"][1]["tag"], "latest");
    assert_eq!(
        web["tags"][1]["problems"],
        serde_json::json!(["tag is not revision[:7] (`6350192`)"])
    );
    // A regex that is not one: usage error.
    let (code, _, err) = run(&env, &[&reg.host, "--repo", "(unclosed"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.lines().next(),
        Some(
            "error: invalid `--repo` regular expression `(unclosed`: unclosed group; hint: `--repo` takes a \
             regular expression (unanchored), e.g. `^acme/` or `web$`"
        ),
        "{err}"
    );
}

/// The real registry honours `n` for the catalog: with pages of 2, seven
/// repositories take four pages and all are scanned.
#[test]
fn catalog_pages_with_a_small_page_size() {
    let reg = Registry::start();
    let names = ["a/one", "a/two", "b/three", "b/four", "c/five", "c/six", "d/seven"];
    for (i, n) in names.iter().enumerate() {
        push(
            &format!("{}:t{i}", reg.repo(n)),
            &labelled(&revision(&format!("{i:07}")), n, "2026-01-25T01:01:33Z"),
        );
    }
    let cache = tempfile::tempdir().unwrap();
    let client = client(cache.path());
    let all = rt().block_on(client.catalog_list(&reg.host, Some(2))).unwrap();
    let mut sorted = names.to_vec();
    sorted.sort();
    assert_eq!(all, sorted);
    let filter = CatalogFilter {
        repo: Some(regex::Regex::new("^[abc]/").unwrap()),
        page_size: Some(2),
    };
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let progress = Progress::callback(move |e| {
        ev.lock().unwrap().push(match e {
            ScanEvent::Listed { repository, tags } => format!("listed {repository} {tags}"),
            ScanEvent::Scanned { tag, .. } => format!("scanned {tag}"),
            ScanEvent::Warning(w) => format!("warning {w}"),
            ScanEvent::Finished => "finished".to_string(),
        })
    });
    let listings = rt()
        .block_on(scan_registry(
            &client,
            &reg.host,
            &filter,
            &Platform::default(),
            &progress,
        ))
        .unwrap();
    let got: Vec<(&str, Vec<&str>)> = listings
        .iter()
        .map(|l| (l.repository.as_str(), l.tags.keys().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        got,
        [
            ("a/one", vec!["t0"]),
            ("a/two", vec!["t1"]),
            ("b/four", vec!["t3"]),
            ("b/three", vec!["t2"]),
            ("c/five", vec!["t4"]),
            ("c/six", vec!["t5"]),
        ]
    );
    let events = events.lock().unwrap();
    assert_eq!(events.iter().filter(|e| e.starts_with("listed ")).count(), 6);
    assert_eq!(events.iter().filter(|e| e.starts_with("scanned ")).count(), 6);
    assert_eq!(events.last().map(String::as_str), Some("finished"));
    assert!(!events.iter().any(|e| e.starts_with("warning")), "{events:?}");
}

/// What the cleanup planner gets from `scan_repository`: tags to digests,
/// an index with its children as entries, a repository whose tags were all
/// deleted shows empty in the registry scan.
#[test]
fn scan_repository_lists_index_children_and_empty_repositories() {
    let reg = Registry::start();
    let image = reg.repo("acme/multi");
    let child = |p: &str| ImageSpec {
        platform: p.parse::<Platform>().unwrap(),
        ..labelled(&revision("a1b2c3d"), &format!("for {p}"), "2026-01-25T01:05:00Z")
    };
    let index = common::push_multi(
        &format!("{image}:a1b2c3d"),
        &[child("linux/amd64"), child("linux/arm64")],
        &BTreeMap::new(),
    );
    let gone = push(
        &format!("{}:old", reg.repo("acme/gone")),
        &labelled(&revision("0000001"), "gone", "2026-01-01T00:00:00Z"),
    );
    let cache = tempfile::tempdir().unwrap();
    let client = client(cache.path());
    let repo: Reference = image.parse().unwrap();
    let arm: Platform = "linux/arm64".parse().unwrap();
    let l = rt()
        .block_on(scan_repository(&client, &repo, &arm, &Progress::callback(|_| {})))
        .unwrap();
    assert_eq!(l.tags.get("a1b2c3d"), Some(&index));
    assert_eq!(l.images.len(), 3, "the index and its two children");
    let entry = &l.images[&index];
    assert_eq!(entry.children.len(), 2);
    assert_eq!(entry.metadata.description.as_deref(), Some("for linux/arm64"));
    for c in &entry.children {
        assert!(l.images.contains_key(c), "child {c} listed");
    }
    // Delete the only manifest of acme/gone: its tag goes with it.
    let gone_repo: Reference = reg.repo("acme/gone").parse().unwrap();
    rt().block_on(client.manifest_delete(&gone_repo, &gone.to_string()))
        .unwrap();
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let w = warnings.clone();
    let progress = Progress::callback(move |e| {
        if let ScanEvent::Warning(m) = e {
            w.lock().unwrap().push(m.to_string());
        }
    });
    let all = rt()
        .block_on(scan_registry(
            &client,
            &reg.host,
            &CatalogFilter::default(),
            &Platform::default(),
            &progress,
        ))
        .unwrap();
    let summary: Vec<(&str, usize)> = all.iter().map(|l| (l.repository.as_str(), l.tags.len())).collect();
    assert_eq!(summary, [("acme/gone", 0), ("acme/multi", 1)]);
    let (code, out, err) = run(&Env::new(), &[&reg.host, "--repo", "gone"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "REGISTRY: {h}\n\nIMAGE: {h}/acme/gone\n    (no tags)\n    0 tags, 0 digests, 0 B in distinct blobs\n",
            h = reg.host
        )
    );
    // The registry answers 200 with `"tags": null`: nothing to warn about.
    assert_eq!(*warnings.lock().unwrap(), Vec::<String>::new());
}

#[test]
fn exit_codes() {
    let env = Env::new();
    let (code, _, err) = run(&env, &["127.0.0.1:1/acme/web"]);
    assert_eq!(code, 2, "a repository is not a registry: {err}");
    let port = common::free_port();
    let (code, out, err) = run(&env, &[&format!("127.0.0.1:{port}"), "--timeout", "2"]);
    assert_eq!((code, out.as_str()), (5, ""), "{err}");
    assert!(err.starts_with("error: "), "{err}");
}
