//! Registry credentials never leak: with a password set through each
//! supported source, no stream of any binary that talks to a registry
//! (stdout, stderr, JSON result, error or panic message) and no file it
//! writes holds the password or its base64 forms, on success and on every
//! kind of failure; and credentials go only to the registry they are for:
//! not to the target of a redirect to another host, not to the host of a
//! `Link` to another host, not over plain HTTP to a bearer-token realm that
//! is neither loopback nor named with `--plain-http`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use common::fault::{Action, FaultServer, Req, Resp};
use common::*;
use serde_json::Value;

const RESOLVE: &str = env!("CARGO_BIN_EXE_resolve_digest");
const IMAGES: &str = env!("CARGO_BIN_EXE_images_overview");
const REGISTRY: &str = env!("CARGO_BIN_EXE_registry_overview");
const UNTAG: &str = env!("CARGO_BIN_EXE_registry_untag");

/// Every form in which `password` could leak: as is, URL-encoded, and
/// base64 of `user:password` and of the password alone in every alphabet
/// and padding (the `Authorization: Basic` value and the `auth` field of
/// auth files).
fn secret_forms(user: &str, password: &str) -> Vec<String> {
    let mut forms = vec![
        password.to_string(),
        url::form_urlencoded::byte_serialize(password.as_bytes()).collect(),
    ];
    for raw in [format!("{user}:{password}"), password.to_string()] {
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            forms.push(engine.encode(&raw));
        }
    }
    forms.sort();
    forms.dedup();
    forms
}

/// Fails naming the stream and the form when `text` holds any of `forms`.
fn assert_clean(what: &str, stream: &str, text: &str, forms: &[String]) {
    for f in forms {
        assert!(
            !text.contains(f.as_str()),
            "{what}: {stream} holds the secret (as `{f}`):\n{text}"
        );
    }
}

/// Every file under `dir` except the credential files the test wrote.
fn files_under(dir: &Path, skip: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if skip.contains(&p) {
            continue;
        }
        if p.is_dir() {
            out.extend(files_under(&p, skip));
        } else {
            out.push(p);
        }
    }
    out
}

/// A credential source configured in a clean environment.
struct Configured {
    env: Env,
    /// Files holding the secret on purpose (auth files, helper scripts).
    secret_files: Vec<PathBuf>,
}

fn auth_json(registry: &str, user: &str, password: &str) -> String {
    let auth = STANDARD.encode(format!("{user}:{password}"));
    format!(r#"{{"auths": {{"{registry}": {{"auth": "{auth}"}}}}}}"#)
}

/// A credential helper script answering `user`/`password` for any server.
fn helper(env: &Env, name: &str, user: &str, password: &str) -> PathBuf {
    let bin = env.home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let p = bin.join(format!("docker-credential-{name}"));
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\ncat >/dev/null\nprintf '%s' '{{\"ServerURL\":\"x\",\"Username\":\"{user}\",\"Secret\":\"{password}\"}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn with_path(env: Env) -> Env {
    let path = format!(
        "{}:{}",
        env.home.path().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.set("PATH", &path)
}

const SOURCES: [&str; 8] = [
    "env REGISTRY_USERNAME/REGISTRY_PASSWORD",
    "REGISTRY_AUTH_FILE",
    "podman $XDG_RUNTIME_DIR/containers/auth.json",
    "podman ~/.config/containers/auth.json",
    "$DOCKER_CONFIG/config.json",
    "~/.docker/config.json",
    "credHelpers helper",
    "credsStore helper",
];

/// A clean environment whose only credential for `registry` is
/// `user`/`password`, from `source` (one of [`SOURCES`]).
fn configure(source: &str, registry: &str, user: &str, password: &str) -> Configured {
    let env = Env::new();
    let home = env.home.path().to_path_buf();
    let write = |rel: &str, text: String| {
        let p = home.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    };
    match source {
        "env REGISTRY_USERNAME/REGISTRY_PASSWORD" => Configured {
            env: env.set("REGISTRY_USERNAME", user).set("REGISTRY_PASSWORD", password),
            secret_files: vec![],
        },
        "REGISTRY_AUTH_FILE" => {
            let p = write("auth/my-auth.json", auth_json(registry, user, password));
            Configured {
                env: env.set("REGISTRY_AUTH_FILE", p.to_str().unwrap()),
                secret_files: vec![p],
            }
        }
        "podman $XDG_RUNTIME_DIR/containers/auth.json" => {
            let p = write("run/containers/auth.json", auth_json(registry, user, password));
            let run = home.join("run");
            Configured {
                env: env.set("XDG_RUNTIME_DIR", run.to_str().unwrap()),
                secret_files: vec![p],
            }
        }
        "podman ~/.config/containers/auth.json" => {
            let p = write(".config/containers/auth.json", auth_json(registry, user, password));
            Configured {
                env,
                secret_files: vec![p],
            }
        }
        "$DOCKER_CONFIG/config.json" => {
            let p = write(
                "dockercfg/config.json",
                auth_json(&format!("https://{registry}"), user, password),
            );
            let dir = home.join("dockercfg");
            Configured {
                env: env.set("DOCKER_CONFIG", dir.to_str().unwrap()),
                secret_files: vec![p],
            }
        }
        "~/.docker/config.json" => {
            let p = write(".docker/config.json", auth_json(registry, user, password));
            Configured {
                env,
                secret_files: vec![p],
            }
        }
        "credHelpers helper" => {
            let h = helper(&env, "iltest", user, password);
            write(
                ".docker/config.json",
                format!(r#"{{"credHelpers": {{"{registry}": "iltest"}}}}"#),
            );
            Configured {
                env: with_path(env),
                secret_files: vec![h],
            }
        }
        "credsStore helper" => {
            let h = helper(&env, "ilstore", user, password);
            write(".docker/config.json", r#"{"credsStore": "ilstore"}"#.to_string());
            Configured {
                env: with_path(env),
                secret_files: vec![h],
            }
        }
        other => panic!("unknown source {other}"),
    }
}

/// Runs `bin` and checks that no stream and no file it left under HOME
/// holds the secret; returns the exit code and the streams.
fn run_clean(c: &Configured, what: &str, bin: &str, args: &[&str], forms: &[String]) -> (i32, String, String) {
    let o = c.env.run(bin, args);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_clean(what, "stdout", &out, forms);
    assert_clean(what, "stderr", &err, forms);
    assert!(!err.contains("panicked"), "{what}: {err}");
    for f in files_under(c.env.home.path(), &c.secret_files) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert_clean(what, &f.display().to_string(), &String::from_utf8_lossy(&bytes), forms);
    }
    (o.status.code().unwrap_or(-1), out, err)
}

/// An authenticated registry holding `acme/web:1111111` (and `latest`),
/// copied in with skopeo from a plain one.
fn auth_registry_with_image() -> Registry {
    let plain = Registry::start();
    let spec = labelled(&revision("1111111"), "first", "2026-01-25T01:00:00Z");
    push(&plain.repo("acme/web:1111111"), &spec);
    push(&plain.repo("acme/web:latest"), &spec);
    let reg = Registry::start_with_auth();
    for tag in ["1111111", "latest"] {
        let o = std::process::Command::new(skopeo())
            .args(["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .arg(format!("--dest-creds={AUTH_USER}:{AUTH_PASSWORD}"))
            .arg(format!("docker://{}", plain.repo(&format!("acme/web:{tag}"))))
            .arg(format!("docker://{}", reg.repo(&format!("acme/web:{tag}"))))
            .output()
            .unwrap();
        assert!(o.status.success(), "skopeo copy: {}", stderr(&o));
    }
    reg
}

/// The four registry binaries with arguments that succeed on `reg`.
fn invocations(host: &str) -> Vec<(&'static str, &'static str, Vec<String>)> {
    vec![
        ("resolve_digest", RESOLVE, vec![format!("{host}/acme/web:1111111")]),
        (
            "images_overview",
            IMAGES,
            vec!["dev".into(), format!("{host}/acme/web"), "--json".into()],
        ),
        ("registry_overview", REGISTRY, vec![host.to_string(), "--json".into()]),
        (
            "registry_untag",
            UNTAG,
            vec![format!("{host}/acme/web:latest"), "--json".into()],
        ),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn no_binary_shows_the_password_from_any_source_on_success_or_refusal() {
    let reg = auth_registry_with_image();
    let right = secret_forms(AUTH_USER, AUTH_PASSWORD);
    for source in SOURCES {
        // The right password: every binary succeeds, and says nothing of it.
        let c = configure(source, &reg.host, AUTH_USER, AUTH_PASSWORD);
        for (name, bin, args) in invocations(&reg.host) {
            let what = format!("{name} with {source}");
            let (code, out, err) = run_clean(&c, &what, bin, &strs(&args), &right);
            assert_eq!(code, 0, "{what}: {err}");
            let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}: {out}"));
            assert!(!v.is_null(), "{what}");
        }
        // A wrong password (the secret now): refused, exit 4, still unseen.
        let wrong = format!("Wr0ng-{}-pa55", source.len());
        let forms = secret_forms(AUTH_USER, &wrong);
        let c = configure(source, &reg.host, AUTH_USER, &wrong);
        for (name, bin, args) in invocations(&reg.host) {
            let what = format!("{name} with a wrong password from {source}");
            let (code, out, err) = run_clean(&c, &what, bin, &strs(&args), &forms);
            assert_eq!(code, 4, "{what}: {err}");
            assert_eq!(out, "", "{what}");
            assert!(
                err.starts_with("error: ") && err.contains("hint: check the credentials"),
                "{what}: {err}"
            );
        }
    }
}

#[test]
fn no_binary_shows_the_password_on_other_failures() {
    let reg = auth_registry_with_image();
    let forms = secret_forms(AUTH_USER, AUTH_PASSWORD);
    // A broken registry that echoes the request's `Authorization` in its
    // error messages (after the real registry's challenge made the client
    // send it): what it reflects must not reach the user either.
    let echo_body = |status: u16| {
        move |req: &Req| {
            let Some(auth) = req.header("authorization") else {
                return Action::Forward;
            };
            Action::Respond(Resp::new(
                status,
                format!(r#"{{"errors":[{{"code":"DENIED","message":"cannot handle Authorization: {auth}"}}]}}"#),
            ))
        }
    };
    let echo400 = FaultServer::start(Some(reg.host.clone()), Arc::new(echo_body(400)));
    let echo403 = FaultServer::start(Some(reg.host.clone()), Arc::new(echo_body(403)));
    // Not found (3), and the echoing registries (5, 4), with the password
    // from the environment and from a helper (how it was found does not
    // change what an error says; the test above runs every source).
    for source in [SOURCES[0], SOURCES[6]] {
        for (host, missing, want) in [
            (reg.host.as_str(), true, 3),
            (echo400.host.as_str(), false, 5),
            (echo403.host.as_str(), false, 4),
        ] {
            let c = configure(source, host, AUTH_USER, AUTH_PASSWORD);
            for (name, bin, mut args) in invocations(host) {
                if missing {
                    if name == "registry_overview" {
                        continue;
                    }
                    for a in args.iter_mut() {
                        *a = a.replace("acme/web", "acme/none");
                    }
                }
                let what = format!("{name} with {source} against {host}");
                let (code, out, err) = run_clean(&c, &what, bin, &strs(&args), &forms);
                assert_eq!(code, want, "{what}: {err}");
                assert_eq!(out, "", "{what}");
            }
        }
    }
    // Unreachable and hanging registries (slow: the timeout runs out), with
    // the password in the environment.
    let hang = FaultServer::start(None, Arc::new(|_: &Req| Action::Hang));
    let free = format!("127.0.0.1:{}", free_port());
    for host in [hang.host.as_str(), free.as_str()] {
        let c = configure(SOURCES[0], host, AUTH_USER, AUTH_PASSWORD);
        for (name, bin, mut args) in invocations(host) {
            args.extend(["--timeout".to_string(), "500ms".to_string()]);
            let what = format!("{name} against {host}");
            let (code, out, err) = run_clean(&c, &what, bin, &strs(&args), &forms);
            assert_eq!((code, out.as_str()), (5, ""), "{what}: {err}");
        }
    }
}

#[test]
fn failing_or_garbled_credential_helpers_never_show_what_they_printed() {
    let reg = auth_registry_with_image();
    let forms = secret_forms(AUTH_USER, AUTH_PASSWORD);
    let scripts = [
        // Fails, printing the secret on both streams.
        format!("cat >/dev/null\necho '{AUTH_PASSWORD}'\necho 'denied {AUTH_PASSWORD}' >&2\nexit 1"),
        // Succeeds with an answer that is not the helper protocol.
        format!("cat >/dev/null\necho 'Secret: {AUTH_PASSWORD} {{'"),
    ];
    for script in scripts {
        let env = Env::new();
        let bin = env.home.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let h = bin.join("docker-credential-broken");
        std::fs::write(&h, format!("#!/bin/sh\n{script}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = env.home.path().join(".docker/config.json");
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(&cfg, format!(r#"{{"credHelpers": {{"{}": "broken"}}}}"#, reg.host)).unwrap();
        let c = Configured {
            env: with_path(env),
            secret_files: vec![h],
        };
        for (name, bin, args) in invocations(&reg.host) {
            let what = format!("{name} with a broken helper ({script:?})");
            let (code, out, err) = run_clean(&c, &what, bin, &strs(&args), &forms);
            assert_eq!((code, out.as_str()), (4, ""), "{what}: {err}");
            assert!(err.contains("credential helper"), "{what}: {err}");
        }
    }
}

#[test]
fn a_credential_helper_that_never_answers_is_bounded_by_the_timeout() {
    let reg = auth_registry_with_image();
    let env = Env::new();
    let bin = env.home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let h = bin.join("docker-credential-stuck");
    std::fs::write(&h, "#!/bin/sh\nexec sleep 30\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = env.home.path().join(".docker/config.json");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, format!(r#"{{"credHelpers": {{"{}": "stuck"}}}}"#, reg.host)).unwrap();
    let env = with_path(env);
    let start = Instant::now();
    let o = env.run(RESOLVE, &[&reg.repo("acme/web:1111111"), "--timeout", "2"]);
    let took = start.elapsed();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("docker-credential-stuck"), "{}", stderr(&o));
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

// ---- where credentials go -----------------------------------------------------

/// The config blob of `acme/web:1111111` of the authenticated registry:
/// its path and content.
fn config_blob(reg: &Registry) -> (String, Vec<u8>) {
    let http = reqwest::blocking::Client::new();
    let m: Value = http
        .get(format!("http://{}/v2/acme/web/manifests/1111111", reg.host))
        .basic_auth(AUTH_USER, Some(AUTH_PASSWORD))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let digest = m["config"]["digest"].as_str().unwrap().to_string();
    let path = format!("/v2/acme/web/blobs/{digest}");
    let body = http
        .get(format!("http://{}{path}", reg.host))
        .basic_auth(AUTH_USER, Some(AUTH_PASSWORD))
        .send()
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
    (path, body)
}

fn creds_env() -> Env {
    Env::new()
        .set("REGISTRY_USERNAME", AUTH_USER)
        .set("REGISTRY_PASSWORD", AUTH_PASSWORD)
}

fn authorized(reqs: &[Req]) -> Vec<String> {
    reqs.iter()
        .filter(|r| r.header("authorization").is_some())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[test]
fn a_redirect_to_another_host_never_receives_the_credentials() {
    let reg = auth_registry_with_image();
    let (blob_path, blob) = config_blob(&reg);
    // Where blobs are redirected (as registries do to object storage): it
    // serves the blob to anyone.
    let (bp, b) = (blob_path.clone(), blob.clone());
    let storage = FaultServer::start(
        None,
        Arc::new(move |req: &Req| {
            if req.path == bp {
                Action::Respond(Resp::new(200, b.clone()).header("Content-Type", "application/octet-stream"))
            } else {
                Action::Respond(Resp::new(404, "{}"))
            }
        }),
    );
    let storage_host = storage.host.clone();
    for status in [307, 302, 301, 308] {
        let target = format!("http://{storage_host}{blob_path}");
        let front = FaultServer::start(
            Some(reg.host.clone()),
            Arc::new(move |req: &Req| {
                if req.path.contains("/blobs/") && req.header("authorization").is_some() {
                    Action::Respond(Resp::new(status, "").header("Location", &target))
                } else {
                    Action::Forward
                }
            }),
        );
        let before = storage.requests().len();
        let o = creds_env().run(
            RESOLVE,
            &[&format!("{}/acme/web:1111111", front.host), "--timeout", "5"],
        );
        assert_eq!(o.status.code(), Some(0), "{status}: {}", stderr(&o));
        let f: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(
            f["description"], "first",
            "{status}: the blob came through the redirect"
        );
        let got = storage.requests()[before..].to_vec();
        assert_eq!(got.len(), 1, "{status}: {got:?}");
        assert_eq!(
            authorized(&got),
            Vec::<String>::new(),
            "{status}: the other host got credentials"
        );
        assert!(
            !authorized(&front.requests()).is_empty(),
            "{status}: the registry itself was sent credentials"
        );
    }
}

#[test]
fn a_link_to_another_host_is_refused_and_that_host_receives_nothing() {
    let reg = auth_registry_with_image();
    let elsewhere = FaultServer::start(Some(reg.host.clone()), Arc::new(|_: &Req| Action::Forward));
    let other = elsewhere.host.clone();
    let front = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(move |req: &Req| {
            let next = if req.path.contains("/tags/list") {
                format!("<http://{other}/v2/acme/web/tags/list?last=1111111&n=1>; rel=\"next\"")
            } else if req.path.contains("/_catalog") {
                format!("<http://{other}/v2/_catalog?last=acme%2Fweb&n=1>; rel=\"next\"")
            } else {
                return Action::Forward;
            };
            Action::Mutate(Box::new(move |r: Resp| r.header("Link", &next)))
        }),
    );
    for (name, bin, args) in [
        (
            "images_overview",
            IMAGES,
            vec!["dev".to_string(), format!("{}/acme/web", front.host)],
        ),
        ("registry_overview", REGISTRY, vec![front.host.clone()]),
        ("registry_untag", UNTAG, vec![format!("{}/acme/web:latest", front.host)]),
    ] {
        let mut args = args;
        args.extend(["--timeout".into(), "5".into()]);
        let o = creds_env().run(bin, &strs(&args));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(5), "{name}: {err}");
        assert!(err.contains("next page on another host"), "{name}: {err}");
        assert!(elsewhere.requests().is_empty(), "{name}: {:?}", elsewhere.requests());
        assert!(
            !authorized(&front.requests()).is_empty(),
            "{name}: credentials were in use"
        );
    }
}

#[test]
fn credentials_go_to_a_plain_http_token_realm_only_on_loopback_or_when_named() {
    let reg = Registry::start();
    push(
        &reg.repo("acme/web:b3a7e20"),
        &labelled(&revision("b3a7e20"), "bearer", "2026-01-25T01:01:33Z"),
    );
    // A name for this machine that is not `localhost` and not an IP, but
    // resolves to loopback, so a realm there would be reachable: the rule,
    // not the network, must stop the credentials.
    let name = hostname::get().unwrap().into_string().unwrap();
    let resolves_to_loopback = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), 1))
        .map(|mut a| a.all(|a| a.ip().is_loopback()))
        .unwrap_or(false);
    assert!(
        resolves_to_loopback && name != "localhost",
        "this test needs the host name (`{name}`) to resolve to 127.0.0.1, as /etc/hosts makes it on \
         Debian; add `127.0.0.1 {name}` to /etc/hosts"
    );
    let basic = format!("Basic {}", STANDARD.encode(format!("{AUTH_USER}:{AUTH_PASSWORD}")));
    let me: Arc<OnceLock<String>> = Arc::default();
    let me2 = me.clone();
    let realm_name = name.clone();
    let server = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(move |req: &Req| {
            if req.path.starts_with("/token") {
                return if req.header("authorization") == Some(basic.as_str()) {
                    Action::Respond(Resp::new(200, r#"{"token": "t0ken-never-shown", "expires_in": 300}"#))
                } else {
                    Action::Respond(Resp::new(401, "{}"))
                };
            }
            if req.header("authorization") == Some("Bearer t0ken-never-shown") {
                return Action::Forward;
            }
            let port = me2.get().unwrap().rsplit(':').next().unwrap().to_string();
            Action::Respond(
                Resp::new(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}"#).header(
                    "WWW-Authenticate",
                    &format!(r#"Bearer realm="http://{realm_name}:{port}/token",service="reg",scope="repository:acme/web:pull""#),
                ),
            )
        }),
    );
    me.set(server.host.clone()).unwrap();
    let target = format!("{}/acme/web:b3a7e20", server.host);
    let mut forms = secret_forms(AUTH_USER, AUTH_PASSWORD);
    forms.push("t0ken-never-shown".into());

    let o = creds_env().run(RESOLVE, &[&target, "--timeout", "5"]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains(&format!("credentials over plain HTTP to token realm `{name}:")),
        "{err}"
    );
    assert!(err.contains("not sent: the realm is not HTTPS"), "{err}");
    assert_clean("refused realm", "stderr", &err, &forms);
    assert_clean("refused realm", "stdout", &out, &forms);
    let token_reqs: Vec<Req> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/token"))
        .collect();
    assert!(token_reqs.is_empty(), "the realm was contacted: {token_reqs:?}");
    assert_eq!(authorized(&server.requests()), Vec::<String>::new());

    // Named with --plain-http, the same realm gets the credentials: the
    // refusal above was the rule, not the network.
    let o = creds_env().run(RESOLVE, &[&target, "--timeout", "5", "--plain-http", &name]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_clean("allowed realm", "stdout", &stdout(&o), &forms);
    assert_clean("allowed realm", "stderr", &stderr(&o), &forms);
    let token_reqs: Vec<Req> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/token"))
        .collect();
    assert_eq!(token_reqs.len(), 1);

    // Named in IMAGE_LIFECYCLE_PLAIN_HTTP, it stays allowed when
    // `--plain-http` names another host: the flag adds to the list.
    let o = creds_env()
        .set("IMAGE_LIFECYCLE_PLAIN_HTTP", &name)
        .run(RESOLVE, &[&target, "--timeout", "5", "--plain-http", "other.example"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_clean("allowed realm (env)", "stderr", &stderr(&o), &forms);

    // Anonymous: the realm may be asked, without credentials.
    let o = Env::new().run(RESOLVE, &[&target, "--timeout", "5"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
}

#[test]
fn absurd_token_lifetimes_never_panic() {
    let reg = Registry::start();
    push(
        &reg.repo("acme/web:b3a7e20"),
        &labelled(&revision("b3a7e20"), "bearer", "2026-01-25T01:01:33Z"),
    );
    for expires_in in ["18446744073709551615", "0", "2049638230412172401"] {
        let me: Arc<OnceLock<String>> = Arc::default();
        let me2 = me.clone();
        let body = format!(r#"{{"token": "tok", "expires_in": {expires_in}}}"#);
        let server = FaultServer::start(
            Some(reg.host.clone()),
            Arc::new(move |req: &Req| {
                if req.path.starts_with("/token") {
                    return Action::Respond(Resp::new(200, body.clone()));
                }
                if req.header("authorization") == Some("Bearer tok") {
                    return Action::Forward;
                }
                Action::Respond(Resp::new(401, "{}").header(
                    "WWW-Authenticate",
                    &format!(r#"Bearer realm="http://{}/token",service="reg""#, me2.get().unwrap()),
                ))
            }),
        );
        me.set(server.host.clone()).unwrap();
        let o = creds_env().run(
            RESOLVE,
            &[&format!("{}/acme/web:b3a7e20", server.host), "--timeout", "5"],
        );
        assert_eq!(o.status.code(), Some(0), "expires_in {expires_in}: {}", stderr(&o));
    }
}

#[test]
fn registry_cleanup_never_shows_the_password_from_any_source() {
    let reg = auth_registry_with_image();
    const CLEANUP: &str = env!("CARGO_BIN_EXE_registry_cleanup");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yml");
    std::fs::write(&policy, "workspaces: [dev]\ndefaults: {keep_last: 1}\n").unwrap();
    let state = dir.path().join("dev.json");
    std::fs::write(
        &state,
        r#"{"workspace": "dev", "collected_at": "2025-03-02T00:00:00Z", "hosts": [], "records": []}"#,
    )
    .unwrap();
    let args = [
        reg.host.as_str(),
        "--policy",
        policy.to_str().unwrap(),
        "--protected",
        state.to_str().unwrap(),
        "--json",
    ];
    for source in SOURCES {
        let c = configure(source, &reg.host, AUTH_USER, AUTH_PASSWORD);
        let what = format!("registry_cleanup with {source}");
        let (code, out, err) = run_clean(&c, &what, CLEANUP, &args, &secret_forms(AUTH_USER, AUTH_PASSWORD));
        assert_eq!(code, 0, "{what}: {err}");
        assert!(serde_json::from_str::<Value>(&out).is_ok(), "{what}: {out}");
        let wrong = "Wr0ng-cleanup-pa55";
        let c = configure(source, &reg.host, AUTH_USER, wrong);
        let what = format!("registry_cleanup with a wrong password from {source}");
        let (code, out, err) = run_clean(&c, &what, CLEANUP, &args, &secret_forms(AUTH_USER, wrong));
        assert_eq!((code, out.as_str()), (4, ""), "{what}: {err}");
    }
}
