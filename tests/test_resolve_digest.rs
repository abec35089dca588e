//! `resolve_digest` against a real distribution registry (and, for what it
//! cannot show, the fault server in front of it).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fault::{Action, FaultServer, Req, Resp};
use common::*;
use image_lifecycle::fixture::ImageSpec;
use image_lifecycle::image::Platform;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_resolve_digest");

fn resolve(env: &Env, args: &[&str]) -> (i32, String, String) {
    let o = env.run(BIN, args);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

fn facts(env: &Env, args: &[&str]) -> Value {
    let (code, out, err) = resolve(env, args);
    assert_eq!(code, 0, "exit {code}; stderr:\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn oci_image_by_tag_gives_exact_facts() {
    let reg = Registry::start();
    let rev = revision("eb53023");
    let digest = push(
        &reg.repo("rednaw/hello-world:eb53023"),
        &labelled(&rev, "add healthcheck", "2026-01-25T01:01:33Z"),
    );
    let f = facts(
        &Env::new(),
        &[
            &reg.repo("rednaw/hello-world:eb53023"),
            "--workspace",
            "dev",
            "--deployed-by",
            "wander@casa",
        ],
    );
    assert_eq!(
        f,
        json!({
            "app": "hello-world", "workspace": "dev", "image": reg.repo("rednaw/hello-world"),
            "tag": "eb53023", "digest": digest.to_string(), "description": "add healthcheck",
            "built_at": "2026-01-25T01:01:33Z", "revision": rev,
            "source": "https://github.com/acme/web", "deployed_by": "wander@casa"
        })
    );
    // Key order is the documented one.
    let (_, out, _) = resolve(&Env::new(), &[&reg.repo("rednaw/hello-world:eb53023")]);
    let keys: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .collect();
    assert_eq!(
        keys,
        [
            "app",
            "workspace",
            "image",
            "tag",
            "digest",
            "description",
            "built_at",
            "revision",
            "source",
            "deployed_by"
        ]
    );
}

#[test]
fn default_app_and_deployed_by() {
    let reg = Registry::start();
    push(
        &reg.repo("acme/web:v1"),
        &labelled(&revision("aaaaaaa"), "x", "2026-01-25T01:01:33Z"),
    );
    let host = hostname::get().unwrap().into_string().unwrap();
    let f = facts(&Env::new().set("USER", "alice"), &[&reg.repo("acme/web:v1")]);
    assert_eq!(f["app"], "web");
    assert_eq!(f["workspace"], Value::Null);
    assert_eq!(f["deployed_by"], format!("alice@{host}"));
    let f = facts(&Env::new(), &[&reg.repo("acme/web:v1"), "--app", "frontend"]);
    assert_eq!(f["app"], "frontend");
}

#[test]
fn docker_v2_image() {
    let reg = Registry::start();
    let spec = ImageSpec {
        docker: true,
        ..labelled(&revision("d0c4e12"), "docker build", "2026-02-01T10:00:00Z")
    };
    let digest = push(&reg.repo("acme/legacy:d0c4e12"), &spec);
    let f = facts(&Env::new(), &[&reg.repo("acme/legacy:d0c4e12")]);
    assert_eq!(f["digest"], digest.to_string());
    assert_eq!(f["description"], "docker build");
    assert_eq!(f["built_at"], "2026-02-01T10:00:00Z");
    // A second opinion on the digest.
    let out = std::process::Command::new(skopeo())
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{}", reg.repo("acme/legacy:d0c4e12")))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        digest.to_string(),
        "{}",
        stderr(&out)
    );
}

#[test]
fn two_platform_index_digest_and_platform_labels() {
    let reg = Registry::start();
    let rev = revision("1ndex00");
    let amd = ImageSpec {
        platform: Platform::default(),
        ..labelled(&rev, "amd64 build", "2026-03-01T00:00:00Z")
    };
    let arm = ImageSpec {
        platform: "linux/arm64".parse().unwrap(),
        ..labelled(&rev, "arm64 build", "2026-03-02T00:00:00Z")
    };
    let digest = push_multi(&reg.repo("acme/multi:1ndex00"), &[arm, amd], &BTreeMap::new());
    let f = facts(&Env::new(), &[&reg.repo("acme/multi:1ndex00")]);
    assert_eq!(f["digest"], digest.to_string(), "the tag's digest is the index digest");
    assert_eq!(f["description"], "amd64 build", "linux/amd64 child by default");
    let f = facts(
        &Env::new(),
        &[&reg.repo("acme/multi:1ndex00"), "--platform", "linux/arm64"],
    );
    assert_eq!(f["digest"], digest.to_string());
    assert_eq!(f["description"], "arm64 build");
    assert_eq!(f["built_at"], "2026-03-02T00:00:00Z");
    // A platform the index lacks: the first child, with a warning.
    let (code, out, err) = resolve(
        &Env::new(),
        &[&reg.repo("acme/multi:1ndex00"), "--platform", "linux/s390x"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["description"],
        "arm64 build"
    );
    assert!(err.contains("no `linux/s390x` child"), "{err}");
}

#[test]
fn by_digest_prefers_revision_tag_then_any_tag_then_null() {
    let reg = Registry::start();
    let rev = revision("abcdef1");
    let spec = labelled(&rev, "shared", "2026-01-25T01:01:33Z");
    let d = push(&reg.repo("acme/web:latest"), &spec);
    assert_eq!(push(&reg.repo("acme/web:abcdef1"), &spec), d, "two tags on one digest");
    assert_eq!(push(&reg.repo("acme/web:aaa-first-sorted"), &spec), d);
    let by_digest = format!("{}@{d}", reg.repo("acme/web"));
    let f = facts(&Env::new(), &[&by_digest]);
    assert_eq!(f["tag"], "abcdef1", "revision[:7] is preferred");
    assert_eq!(f["digest"], d.to_string());

    // No revision tag: the first tag (sorted) that points to it.
    let rev2 = revision("1234567");
    let spec2 = labelled(&rev2, "other", "2026-01-26T00:00:00Z");
    let d2 = push(&reg.repo("acme/web:zeta"), &spec2);
    push(&reg.repo("acme/web:beta"), &spec2);
    let f = facts(&Env::new(), &[&format!("{}@{d2}", reg.repo("acme/web"))]);
    assert_eq!(f["tag"], "beta");

    // Pushed by digest only: no tag.
    let d3 = push(
        &reg.repo("acme/web"),
        &labelled(&revision("7777777"), "untagged", "2026-01-27T00:00:00Z"),
    );
    let f = facts(&Env::new(), &[&format!("{}@{d3}", reg.repo("acme/web"))]);
    assert_eq!(f["tag"], Value::Null);
    assert_eq!(f["description"], "untagged");
}

/// Deploy by digest asks the registry every time whether this repository
/// holds the digest: the content cache (keyed by digest) knows what a
/// digest is, not where it is. A digest of another repository, or one
/// deleted since the last run, is not found (3) with a warm cache too; a
/// repository of manifests pushed by digest only (no tag list at all)
/// gives the facts with `tag: null`.
#[test]
fn by_digest_is_checked_in_the_repository_whatever_the_cache_holds() {
    let reg = Registry::start();
    let d = push(
        &reg.repo("acme/web:v1"),
        &labelled(&revision("1111111"), "web", "2026-01-25T01:01:33Z"),
    );
    push(
        &reg.repo("acme/api:v1"),
        &labelled(&revision("2222222"), "api", "2026-01-25T01:01:33Z"),
    );
    let env = Env::new();
    let web = format!("{}@{d}", reg.repo("acme/web"));
    assert_eq!(facts(&env, &[&web])["description"], "web", "the cache is warm now");

    let (code, out, err) = resolve(&env, &[&format!("{}@{d}", reg.repo("acme/api"))]);
    assert_eq!((code, out.as_str()), (3, ""), "another repository's digest: {err}");
    assert!(err.contains("acme/api"), "{err}");

    let deleted = reqwest::blocking::Client::new()
        .delete(format!("http://{}/v2/acme/web/manifests/{d}", reg.host))
        .send()
        .unwrap();
    assert_eq!(deleted.status(), 202);
    let (code, out, err) = resolve(&env, &[&web]);
    assert_eq!((code, out.as_str()), (3, ""), "deleted since the last run: {err}");

    let untagged = push(
        &reg.repo("acme/bare"),
        &labelled(&revision("3333333"), "bare", "2026-01-25T01:01:33Z"),
    );
    let f = facts(&env, &[&format!("{}@{untagged}", reg.repo("acme/bare"))]);
    assert_eq!((&f["tag"], &f["description"]), (&Value::Null, &json!("bare")));
}

#[test]
fn tag_and_digest_must_agree() {
    let reg = Registry::start();
    let d1 = push(
        &reg.repo("acme/web:one"),
        &labelled(&revision("1111111"), "one", "2026-01-25T01:01:33Z"),
    );
    let d2 = push(
        &reg.repo("acme/web:two"),
        &labelled(&revision("2222222"), "two", "2026-01-25T01:01:33Z"),
    );
    let f = facts(&Env::new(), &[&format!("{}:one@{d1}", reg.repo("acme/web"))]);
    assert_eq!(
        (f["tag"].as_str(), f["digest"].as_str()),
        (Some("one"), Some(d1.to_string().as_str()))
    );
    let (code, out, err) = resolve(&Env::new(), &[&format!("{}:one@{d2}", reg.repo("acme/web"))]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "", "no JSON on a mismatch");
    assert!(err.starts_with("error: tag `one`"), "{err}");
    assert!(err.contains(&d1.to_string()) && err.contains(&d2.to_string()), "{err}");
}

#[test]
fn annotations_only_no_labels_and_legacy_created() {
    let reg = Registry::start();
    let rev = revision("a770000");
    let annotated = ImageSpec {
        annotations: image_lifecycle::fixture::ci_labels(
            &rev,
            "from annotations",
            "2026-04-01T12:00:00+02:00",
            "https://x/y",
        ),
        layer: b"annotated".to_vec(),
        ..Default::default()
    };
    push(&reg.repo("acme/ann:a770000"), &annotated);
    let f = facts(&Env::new(), &[&reg.repo("acme/ann:a770000")]);
    assert_eq!(f["description"], "from annotations");
    assert_eq!(f["built_at"], "2026-04-01T10:00:00Z", "normalised to UTC");
    assert_eq!(f["revision"], rev);
    assert_eq!(f["source"], "https://x/y");

    push(
        &reg.repo("acme/bare:v1"),
        &ImageSpec {
            layer: b"bare".to_vec(),
            ..Default::default()
        },
    );
    let (code, out, err) = resolve(&Env::new(), &[&reg.repo("acme/bare:v1")]);
    assert_eq!(code, 0, "missing labels are not a failure: {err}");
    let f: Value = serde_json::from_str(&out).unwrap();
    for k in ["description", "built_at", "revision", "source"] {
        assert_eq!(f[k], Value::Null, "{k}");
    }
    assert_eq!(err.matches("warning: ").count(), 4, "{err}");

    push(
        &reg.repo("acme/legacy:v1"),
        &labelled(&revision("1e9ac70"), "legacy", "2026-01-25 01:01:33"),
    );
    let (code, out, err) = resolve(&Env::new(), &[&reg.repo("acme/legacy:v1")]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["built_at"],
        "2026-01-25T01:01:33Z"
    );
    assert!(err.contains("without a timezone; read as UTC"), "{err}");
}

#[test]
fn hostile_descriptions_round_trip_exactly() {
    let reg = Registry::start();
    let hostile = "fix: \"quotes\" 'single' key: value\nsecond line $HOME $(rm -rf /) `id` \\ ünïcødé 🚀 {{ jinja }}";
    push(
        &reg.repo("acme/web:h0571le"),
        &labelled(&revision("h0571le"), hostile, "2026-01-25T01:01:33Z"),
    );
    let f = facts(&Env::new(), &[&reg.repo("acme/web:h0571le")]);
    assert_eq!(f["description"], hostile);
}

#[test]
fn out_file_is_written_atomically_and_equals_stdout() {
    let reg = Registry::start();
    push(
        &reg.repo("acme/web:v1"),
        &labelled(&revision("0u7f11e"), "out", "2026-01-25T01:01:33Z"),
    );
    let env = Env::new();
    let path = env.home.path().join("facts.json");
    std::fs::write(&path, "old").unwrap();
    let (code, out, err) = resolve(
        &env,
        &[
            &reg.repo("acme/web:v1"),
            "--out",
            path.to_str().unwrap(),
            "--deployed-by",
            "a@b",
        ],
    );
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (_, stdout_json, _) = resolve(&env, &[&reg.repo("acme/web:v1"), "--deployed-by", "a@b"]);
    assert_eq!(read(&path), stdout_json);
    let leftovers: Vec<_> = std::fs::read_dir(env.home.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "facts.json" && n != "cache")
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    // A failed resolve leaves the old file alone.
    let (code, _, _) = resolve(&env, &[&reg.repo("acme/web:nope"), "--out", path.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert_eq!(read(&path), stdout_json);
}

#[test]
fn not_found_exits_3() {
    let reg = Registry::start();
    push(
        &reg.repo("acme/web:v1"),
        &labelled(&revision("1111111"), "x", "2026-01-25T01:01:33Z"),
    );
    let env = Env::new();
    let (code, out, err) = resolve(&env, &[&reg.repo("acme/web:missing")]);
    assert_eq!((code, out.as_str()), (3, ""));
    assert!(err.starts_with("error: tag `missing` of `"), "{err}");
    assert!(err.contains("; hint: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let (code, _, err) = resolve(&env, &[&reg.repo("acme/nothing:v1")]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("acme/nothing"), "{err}");
    let (code, _, err) = resolve(&env, &[&format!("{}@sha256:{}", reg.repo("acme/web"), "0".repeat(64))]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn invalid_input_exits_2() {
    let env = Env::new();
    for bad in [
        "",
        "127.0.0.1:1/UPPER:v1",
        "127.0.0.1:1/acme/web@sha256:short",
        "127.0.0.1:1/acme/web",
        // No registry host: never sent to Docker Hub.
        "acme/web:v1",
        "nginx",
        "127.0.0.1:1",
    ] {
        let (code, out, err) = resolve(&env, &[bad]);
        assert_eq!((code, out.as_str()), (2, ""), "{bad:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let (_, _, err) = resolve(&env, &["acme/web:v1"]);
    assert!(err.contains("names no registry host"), "{err}");
    let (code, _, err) = resolve(&env, &["127.0.0.1:1/acme/web:v1", "--workspace", "../etc"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = resolve(&env, &["127.0.0.1:1/acme/web:v1", "--platform", "linux"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = resolve(&env, &["--no-such-flag"]);
    assert_eq!(code, 2);
}

#[test]
fn refused_credentials_exit_4_and_never_show_the_password() {
    let reg = Registry::start_with_auth();
    // Push with the right credentials through our own client path is not
    // needed: an empty repository answers 401 before 404 when refused.
    let wrong = "wr0ng-hunter2-password";
    let env = Env::new()
        .set("REGISTRY_USERNAME", AUTH_USER)
        .set("REGISTRY_PASSWORD", wrong);
    let (code, out, err) = resolve(&env, &[&reg.repo("acme/web:v1")]);
    assert_eq!(code, 4, "{err}");
    assert!(!out.contains(wrong) && !err.contains(wrong), "{out}{err}");
    assert!(err.contains("hint: check the credentials"), "{err}");
    // Anonymous is refused the same way.
    let (code, _, err) = resolve(&Env::new(), &[&reg.repo("acme/web:v1")]);
    assert_eq!(code, 4, "{err}");
    // The right password gets through to a 404 (nothing pushed), and is never shown.
    let env = Env::new()
        .set("REGISTRY_USERNAME", AUTH_USER)
        .set("REGISTRY_PASSWORD", AUTH_PASSWORD);
    let (code, out, err) = resolve(&env, &[&reg.repo("acme/web:v1")]);
    assert_eq!(code, 3, "{err}");
    assert!(!out.contains(AUTH_PASSWORD) && !err.contains(AUTH_PASSWORD));
}

#[test]
fn credentials_from_docker_config_reach_the_registry() {
    use base64::Engine;
    let reg = Registry::start_with_auth();
    let env = Env::new();
    let cfg = env.home.path().join(".docker");
    std::fs::create_dir_all(&cfg).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_USER}:{AUTH_PASSWORD}"));
    std::fs::write(
        cfg.join("config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, reg.host),
    )
    .unwrap();
    let (code, out, err) = resolve(&env, &[&reg.repo("acme/web:v1")]);
    assert_eq!(code, 3, "authenticated, then not found: {err}");
    assert!(!format!("{out}{err}").contains(AUTH_PASSWORD));
    // A podman auth file with a wrong password comes first and is refused.
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_USER}:nope-wrong"));
    let authfile = env.home.path().join("auth.json");
    std::fs::write(
        &authfile,
        format!(r#"{{"auths": {{"{}": {{"auth": "{wrong}"}}}}}}"#, reg.host),
    )
    .unwrap();
    let env = env.set("REGISTRY_AUTH_FILE", authfile.to_str().unwrap());
    let (code, _, err) = resolve(&env, &[&reg.repo("acme/web:v1")]);
    assert_eq!(code, 4, "{err}");
}

#[test]
fn bearer_challenge_is_followed_with_credentials() {
    let reg = Registry::start();
    let digest = push(
        &reg.repo("acme/web:b3a7e20"),
        &labelled(&revision("b3a7e20"), "bearer", "2026-01-25T01:01:33Z"),
    );
    let expected_basic = {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_USER}:{AUTH_PASSWORD}"))
        )
    };
    let host_cell: Arc<std::sync::OnceLock<String>> = Arc::new(std::sync::OnceLock::new());
    let hc = host_cell.clone();
    let server = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(move |req: &Req| {
            if req.path.starts_with("/token") {
                return if req.header("authorization") == Some(expected_basic.as_str()) {
                    Action::Respond(Resp::new(200, r#"{"token": "good-token", "expires_in": 300}"#))
                } else {
                    Action::Respond(Resp::new(401, "{}"))
                };
            }
            if req.header("authorization") == Some("Bearer good-token") {
                return Action::Forward;
            }
            let realm = format!("http://{}/token", hc.get().unwrap());
            Action::Respond(
                Resp::new(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}"#).header(
                    "WWW-Authenticate",
                    &format!(r#"Bearer realm="{realm}",service="test-registry",scope="repository:acme/web:pull""#),
                ),
            )
        }),
    );
    host_cell.set(server.host.clone()).unwrap();
    let env = Env::new()
        .set("REGISTRY_USERNAME", AUTH_USER)
        .set("REGISTRY_PASSWORD", AUTH_PASSWORD);
    let f = facts(&env, &[&format!("{}/acme/web:b3a7e20", server.host)]);
    assert_eq!(f["digest"], digest.to_string());
    let reqs = server.requests();
    let token_reqs: Vec<&Req> = reqs.iter().filter(|r| r.path.starts_with("/token")).collect();
    assert_eq!(
        token_reqs.len(),
        1,
        "one token, reused: {:?}",
        reqs.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert!(
        token_reqs[0].path.contains("service=test-registry"),
        "{}",
        token_reqs[0].path
    );
    assert!(
        token_reqs[0].path.contains("scope=repository%3Aacme%2Fweb%3Apull"),
        "{}",
        token_reqs[0].path
    );
    // Without credentials the token endpoint refuses: exit 4.
    let (code, _, err) = resolve(&Env::new(), &[&format!("{}/acme/web:b3a7e20", server.host)]);
    assert_eq!(code, 4, "{err}");
}

#[test]
fn manifest_not_matching_its_digest_is_an_error_never_a_result() {
    let reg = Registry::start();
    let digest = push(
        &reg.repo("acme/web:v1"),
        &labelled(&revision("c0ffee0"), "x", "2026-01-25T01:01:33Z"),
    );
    // The proxy changes manifest bodies but keeps the registry's digest header.
    let server = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(|req: &Req| {
            if req.path.contains("/manifests/") && req.method == "GET" {
                Action::Mutate(Box::new(|mut r: Resp| {
                    let s = String::from_utf8(r.body)
                        .unwrap()
                        .replace("\"schemaVersion\":2", "\"schemaVersion\": 2");
                    r.body = s.into_bytes();
                    r
                }))
            } else {
                Action::Forward
            }
        }),
    );
    let env = Env::new();
    for target in [
        format!("{}/acme/web:v1", server.host),
        format!("{}/acme/web@{digest}", server.host),
    ] {
        let (code, out, err) = resolve(&env, &[&target]);
        assert_eq!(code, 5, "{target}: {err}");
        assert_eq!(out, "");
        assert!(err.contains("does not match its digest"), "{err}");
    }
}

#[test]
fn unreachable_registry_exits_5_within_the_timeout() {
    let port = free_port();
    let start = Instant::now();
    let (code, out, err) = resolve(
        &Env::new(),
        &[&format!("127.0.0.1:{port}/acme/web:v1"), "--timeout", "2"],
    );
    assert_eq!((code, out.as_str()), (5, ""), "{err}");
    assert!(err.contains("cannot reach"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(4), "took {:?}", start.elapsed());

    // A server that accepts and never answers.
    let hang = FaultServer::start(None, Arc::new(|_: &Req| Action::Hang));
    let start = Instant::now();
    let (code, _, err) = resolve(&Env::new(), &[&format!("{}/acme/web:v1", hang.host), "--timeout", "2s"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("within 2 s"), "{err}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "took {took:?}"
    );
}

#[test]
fn transient_failures_are_retried() {
    let reg = Registry::start();
    let digest = push(
        &reg.repo("acme/web:v1"),
        &labelled(&revision("7e57000"), "retry", "2026-01-25T01:01:33Z"),
    );
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    let server = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(move |req: &Req| {
            if req.path.contains("/manifests/") {
                match c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                    0 => return Action::Respond(Resp::new(503, "busy")),
                    1 => return Action::Respond(Resp::new(429, "slow down").header("Retry-After", "1")),
                    2 => return Action::Truncate(10),
                    _ => {}
                }
            }
            Action::Forward
        }),
    );
    let start = Instant::now();
    let f = facts(&Env::new(), &[&format!("{}/acme/web:v1", server.host)]);
    assert_eq!(f["digest"], digest.to_string());
    assert!(count.load(std::sync::atomic::Ordering::SeqCst) >= 4);
    assert!(start.elapsed() >= Duration::from_secs(1), "Retry-After was honoured");
    // A non-transient error is not retried.
    let before = server.requests().len();
    let (code, _, _) = resolve(&Env::new(), &[&format!("{}/acme/web:nope", server.host)]);
    assert_eq!(code, 3);
    let manifest_reqs = server.requests()[before..]
        .iter()
        .filter(|r| r.path.contains("/manifests/"))
        .count();
    assert_eq!(manifest_reqs, 1);
}
