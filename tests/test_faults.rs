//! Every binary that talks to a registry, through the fault server in front
//! of the real registry: added latency, 5xx bursts, 429 with and without
//! `Retry-After`, connections reset mid-body, a stalled body, bodies that do
//! not match their digest, a server that accepts and never answers.
//!
//! What holds (DESIGN.md, "Registry access"): transient faults are retried
//! and the answer is the one the registry gives without faults; what retries
//! cannot cure ends within `--timeout` with the documented exit code (5:
//! registry unreachable or broken), one `error:` line on stderr and nothing
//! on stdout; a body that does not match its digest is an error, never a
//! result, and is never cached; an interrupted `--apply` leaves the digests
//! it must keep, and a rerun completes.
//!
//! `tests/test_resolve_digest.rs` already shows the simplest cases for
//! `resolve_digest` (one 503, one 429 with `Retry-After: 1`, one truncated
//! manifest, a mismatching manifest, a server that hangs at once); these
//! tests go further and cover the other binaries.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fault::{Action, FaultServer, Req, Resp};
use common::*;
use serde_json::Value;

const RESOLVE: &str = env!("CARGO_BIN_EXE_resolve_digest");
const IMAGES: &str = env!("CARGO_BIN_EXE_images_overview");
const REGISTRY: &str = env!("CARGO_BIN_EXE_registry_overview");
const UNTAG: &str = env!("CARGO_BIN_EXE_registry_untag");

/// One injected fault.
#[derive(Debug, Clone)]
enum Fault {
    /// Answer this status with a registry error body, without forwarding.
    Status(u16),
    /// Answer this status with this `Retry-After` value.
    RetryAfter(u16, String),
    /// Forward, send the headers and this many body bytes, then reset.
    Reset(usize),
    /// Accept and never answer.
    Hang,
    /// Wait, then forward.
    Delay(Duration),
    /// Forward and append a byte to the body (headers kept): the body no
    /// longer matches its digest.
    Corrupt,
    /// Forward (the registry acts on it), then lose the answer: 503.
    LoseAnswer,
    /// Wait, then this fault.
    Late(Duration, Box<Fault>),
    /// Forward, and leave this tag out of the tag list: a list that lags
    /// behind the registry (a cache, an eventually consistent store).
    Unlisted(&'static str),
    /// First point tag `.2` of `acme/web` in the registry at `.0` at the
    /// image of tag `.1` (another client's push), then forward, or answer
    /// with fault `.3`.
    MoveTag(String, &'static str, &'static str, Option<Box<Fault>>),
    /// Forward (the registry acts on it), then answer this status instead,
    /// with a registry error body: an error the client cannot take back.
    ActedThenStatus(u16),
    /// This fault, and from now on `.0` is set.
    Arm(Arc<AtomicBool>, Box<Fault>),
    /// Once `.0` is set, this fault; until then, forward.
    IfArmed(Arc<AtomicBool>, Box<Fault>),
}

impl Fault {
    fn action(&self) -> Action {
        match self {
            Fault::Status(s) => Action::Respond(injected(*s)),
            Fault::ActedThenStatus(s) => {
                let s = *s;
                Action::Mutate(Box::new(move |_| injected(s)))
            }
            Fault::Arm(flag, fault) => {
                flag.store(true, Ordering::SeqCst);
                fault.action()
            }
            Fault::IfArmed(flag, fault) => {
                if flag.load(Ordering::SeqCst) {
                    fault.action()
                } else {
                    Action::Forward
                }
            }
            Fault::RetryAfter(s, v) => Action::Respond(Resp::new(*s, "slow down").header("Retry-After", v)),
            Fault::Reset(n) => Action::Truncate(*n),
            Fault::Hang => Action::Hang,
            Fault::Delay(d) => Action::Delay(*d),
            Fault::Corrupt => Action::Mutate(Box::new(|mut r: Resp| {
                r.body.push(b' ');
                r
            })),
            Fault::LoseAnswer => Action::Mutate(Box::new(|_| Resp::new(503, "answer lost"))),
            Fault::Late(d, fault) => Action::After(*d, Box::new(fault.action())),
            Fault::MoveTag(host, from, tag, then) => {
                move_tag(host, from, tag);
                then.as_ref().map_or(Action::Forward, |f| f.action())
            }
            Fault::Unlisted(tag) => {
                let tag = *tag;
                Action::Mutate(Box::new(move |mut r: Resp| {
                    let mut list: Value = serde_json::from_slice(&r.body).unwrap();
                    list["tags"].as_array_mut().unwrap().retain(|t| t != tag);
                    r.body = list.to_string().into_bytes();
                    r
                }))
            }
        }
    }
}

/// A registry error answer with `status`.
fn injected(status: u16) -> Resp {
    Resp::new(
        status,
        format!(r#"{{"errors":[{{"code":"UNAVAILABLE","message":"injected {status}"}}]}}"#),
    )
}

/// Which requests a rule applies to, and how many times.
struct Rule {
    method: &'static str,
    path: &'static str,
    fault: Fault,
    left: usize,
}

/// `times` of `fault` on requests with `method` (`*` for any) whose path
/// contains `path`; `usize::MAX` for always.
fn rule(method: &'static str, path: &'static str, fault: Fault, times: usize) -> Rule {
    Rule {
        method,
        path,
        fault,
        left: times,
    }
}

/// A fault server in front of `upstream` that applies the first matching
/// rule with uses left (consuming one), else forwards. `on` turns all
/// faults off for a rerun.
struct Faulty {
    server: FaultServer,
    on: Arc<AtomicBool>,
}

impl Faulty {
    fn start(upstream: &str, rules: Vec<Rule>) -> Faulty {
        let rules = Arc::new(Mutex::new(rules));
        let on = Arc::new(AtomicBool::new(true));
        let on2 = on.clone();
        let me: Arc<std::sync::OnceLock<String>> = Arc::default();
        let me2 = me.clone();
        let upstream_url = format!("http://{upstream}/");
        let server = FaultServer::start(
            Some(upstream.to_string()),
            Arc::new(move |req: &Req| {
                // The registry's upload `Location` names the host it was
                // asked on, which is the upstream: point it back here, as
                // a reverse proxy would.
                if req.path.contains("/blobs/uploads") {
                    let (from, to) = (upstream_url.clone(), format!("http://{}/", me2.get().unwrap()));
                    return Action::Mutate(Box::new(move |mut r: Resp| {
                        for (k, v) in r.headers.iter_mut() {
                            if k.eq_ignore_ascii_case("location") {
                                *v = v.replace(&from, &to);
                            }
                        }
                        r
                    }));
                }
                if !on2.load(Ordering::SeqCst) {
                    return Action::Forward;
                }
                let mut rules = rules.lock().unwrap();
                for r in rules.iter_mut() {
                    if r.left > 0 && (r.method == "*" || r.method == req.method) && req.path.contains(r.path) {
                        r.left = r.left.saturating_sub(if r.left == usize::MAX { 0 } else { 1 });
                        return r.fault.action();
                    }
                }
                Action::Forward
            }),
        );
        me.set(server.host.clone()).unwrap();
        Faulty { server, on }
    }

    fn host(&self) -> &str {
        &self.server.host
    }

    fn off(&self) {
        self.on.store(false, Ordering::SeqCst);
    }

    /// Requests received whose method is `method` and path contains `path`.
    fn count(&self, method: &str, path: &str) -> usize {
        self.count_since(0, method, path)
    }

    /// The same, among the requests after the first `before`.
    fn count_since(&self, before: usize, method: &str, path: &str) -> usize {
        self.server.requests()[before..]
            .iter()
            .filter(|r| (method == "*" || r.method == method) && r.path.contains(path))
            .count()
    }
}

struct Run {
    code: i32,
    out: String,
    err: String,
    took: Duration,
}

fn run(env: &Env, bin: &str, args: &[&str]) -> Run {
    let start = Instant::now();
    let o = env.run(bin, args);
    Run {
        code: o.status.code().unwrap_or(-1),
        out: stdout(&o),
        err: stderr(&o),
        took: start.elapsed(),
    }
}

/// [`run`], but a run still going after `limit` is killed and fails the
/// test: a hang is a failure, not a test that never ends.
fn run_within(env: &Env, bin: &str, args: &[&str], limit: Duration) -> Run {
    let (out, err) = (env.home.path().join("stdout"), env.home.path().join("stderr"));
    let start = Instant::now();
    let mut child = env
        .command(bin, args)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{bin} {args:?} was still running after {limit:?}; stderr:\n{}",
                read(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        out: read(&out),
        err: read(&err),
        took: start.elapsed(),
    }
}

/// A failure as DESIGN.md says: `code`, nothing on stdout, one `error:`
/// line first on stderr, no panic.
fn assert_failure(r: &Run, code: i32, what: &str) {
    assert_eq!(r.code, code, "{what}: exit {}; stderr:\n{}", r.code, r.err);
    assert_eq!(r.out, "", "{what}: nothing on stdout on failure");
    assert!(r.err.starts_with("error: "), "{what}: {}", r.err);
    assert_eq!(r.err.lines().count(), 1, "{what}: the error is one line: {}", r.err);
    assert!(!r.err.contains("panicked"), "{what}: {}", r.err);
}

fn json(r: &Run, what: &str) -> Value {
    assert_eq!(r.code, 0, "{what}: exit {}; stderr:\n{}", r.code, r.err);
    serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", r.out))
}

/// A registry with `acme/web` (tags `1111111`, `2222222`, `latest` = the
/// second) and `acme/api` (tag `3333333`).
fn registry_with_images() -> Registry {
    let reg = Registry::start();
    push(
        &reg.repo("acme/web:1111111"),
        &labelled(&revision("1111111"), "first", "2026-01-25T01:00:00Z"),
    );
    let second = labelled(&revision("2222222"), "second", "2026-01-26T01:00:00Z");
    push(&reg.repo("acme/web:2222222"), &second);
    push(&reg.repo("acme/web:latest"), &second);
    push(
        &reg.repo("acme/api:3333333"),
        &labelled(&revision("3333333"), "api", "2026-01-27T01:00:00Z"),
    );
    reg
}

/// A server that answers every request with headers announcing 1000 body
/// bytes, sends 10, and then stalls with the connection open.
fn stalling_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf);
                let _ = sock.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                      Content-Length: 1000\r\n\r\n{\"schemaV",
                );
                let _ = sock.flush();
                std::thread::sleep(Duration::from_secs(60));
            });
        }
    });
    host
}

// ---- resolve_digest -------------------------------------------------------

#[test]
fn resolve_digest_recovers_from_latency_5xx_bursts_429s_and_resets_with_the_exact_facts() {
    let reg = registry_with_images();
    let baseline = json(
        &run(
            &Env::new(),
            RESOLVE,
            &[&reg.repo("acme/web:2222222"), "--deployed-by", "a@b"],
        ),
        "without faults",
    );
    let faulty = Faulty::start(
        &reg.host,
        vec![
            rule("GET", "/manifests/", Fault::Status(502), 1),
            rule("GET", "/manifests/", Fault::Status(504), 1),
            rule("GET", "/manifests/", Fault::Status(429), 1),
            rule("GET", "/manifests/", Fault::Reset(5), 1),
            rule("GET", "/blobs/", Fault::RetryAfter(503, "0".into()), 1),
            rule("GET", "/blobs/", Fault::Reset(0), 1),
            rule("GET", "/blobs/", Fault::Status(408), 1),
            rule("*", "/", Fault::Delay(Duration::from_millis(150)), usize::MAX),
        ],
    );
    let r = run(
        &Env::new(),
        RESOLVE,
        &[
            &format!("{}/acme/web:2222222", faulty.host()),
            "--deployed-by",
            "a@b",
            "--timeout",
            "20",
        ],
    );
    let mut got = json(&r, "under faults");
    assert_eq!(got["image"], format!("{}/acme/web", faulty.host()));
    got["image"] = baseline["image"].clone();
    assert_eq!(got, baseline, "the same facts as without faults");
    // Four failed manifest GETs, then the good one; three failed blob GETs, then the good one.
    assert_eq!(faulty.count("GET", "/manifests/"), 5);
    assert_eq!(faulty.count("GET", "/blobs/"), 4);
    assert!(!r.err.contains("error"), "{}", r.err);
}

#[test]
fn resolve_digest_429_without_retry_after_backs_off() {
    let reg = registry_with_images();
    let faulty = Faulty::start(&reg.host, vec![rule("GET", "/manifests/", Fault::Status(429), 3)]);
    let r = run(
        &Env::new(),
        RESOLVE,
        &[&format!("{}/acme/web:1111111", faulty.host()), "--timeout", "20"],
    );
    let f = json(&r, "429 x3");
    assert_eq!(f["tag"], "1111111");
    assert_eq!(faulty.count("GET", "/manifests/"), 4);
    // Backoff 100 ms, 200 ms, 400 ms (plus jitter): not hammered, not slow.
    assert!(
        r.took >= Duration::from_millis(700) && r.took < Duration::from_secs(5),
        "took {:?}",
        r.took
    );
}

#[test]
fn resolve_digest_retry_after_beyond_the_deadline_gives_up_at_once_with_exit_5() {
    let reg = registry_with_images();
    for retry_after in ["30", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        let faulty = Faulty::start(
            &reg.host,
            vec![rule(
                "*",
                "/manifests/",
                Fault::RetryAfter(429, retry_after.into()),
                usize::MAX,
            )],
        );
        let r = run(
            &Env::new(),
            RESOLVE,
            &[&format!("{}/acme/web:1111111", faulty.host()), "--timeout", "2"],
        );
        assert_failure(&r, 5, retry_after);
        assert!(r.err.contains("answered 429"), "{}", r.err);
        assert!(r.err.contains("gave up after 1 attempts within 2 s"), "{}", r.err);
        assert!(
            r.took < Duration::from_secs(2),
            "waiting cannot help: took {:?}",
            r.took
        );
        assert_eq!(faulty.count("*", "/manifests/"), 1);
    }
}

#[test]
fn resolve_digest_absurd_retry_after_values_never_panic() {
    let reg = registry_with_images();
    // Larger than any deadline `Instant` can hold, a negative number, junk.
    for retry_after in ["18446744073709551615", "99999999999999999999", "-1", "soon", ""] {
        let faulty = Faulty::start(
            &reg.host,
            vec![rule(
                "*",
                "/manifests/",
                Fault::RetryAfter(503, retry_after.into()),
                usize::MAX,
            )],
        );
        let r = run(
            &Env::new(),
            RESOLVE,
            &[&format!("{}/acme/web:1111111", faulty.host()), "--timeout", "1"],
        );
        assert_failure(&r, 5, retry_after);
        assert!(r.err.contains("answered 503"), "{retry_after:?}: {}", r.err);
        assert!(r.took < Duration::from_secs(3), "{retry_after:?}: took {:?}", r.took);
    }
}

#[test]
fn resolve_digest_persistent_faults_end_within_the_timeout_with_exit_5() {
    let reg = registry_with_images();
    let target = |f: &Faulty| format!("{}/acme/web:1111111", f.host());
    // Every manifest request fails: retried with backoff until the deadline.
    let faulty = Faulty::start(
        &reg.host,
        vec![rule("*", "/manifests/", Fault::Status(503), usize::MAX)],
    );
    let r = run(&Env::new(), RESOLVE, &[&target(&faulty), "--timeout", "2"]);
    assert_failure(&r, 5, "persistent 503");
    assert!(
        r.err.contains("answered 503 to GET /v2/acme/web/manifests/1111111"),
        "{}",
        r.err
    );
    assert!(r.err.contains("gave up after"), "{}", r.err);
    assert!(r.took < Duration::from_millis(3500), "took {:?}", r.took);
    let attempts = faulty.count("*", "/manifests/");
    assert!(
        (3..=12).contains(&attempts),
        "retried with backoff: {attempts} attempts"
    );

    // Every connection reset mid-body.
    let faulty = Faulty::start(&reg.host, vec![rule("*", "/manifests/", Fault::Reset(3), usize::MAX)]);
    let r = run(&Env::new(), RESOLVE, &[&target(&faulty), "--timeout", "2"]);
    assert_failure(&r, 5, "persistent reset");
    assert!(
        r.err.contains("cannot reach") || r.err.contains("within 2 s"),
        "{}",
        r.err
    );
    assert!(r.took < Duration::from_millis(3500), "took {:?}", r.took);

    // The manifest is served, then the config blob request hangs.
    let faulty = Faulty::start(&reg.host, vec![rule("*", "/blobs/", Fault::Hang, usize::MAX)]);
    let r = run(&Env::new(), RESOLVE, &[&target(&faulty), "--timeout", "2"]);
    assert_failure(&r, 5, "hang on the blob");
    assert!(r.err.contains("gave no usable answer within 2 s"), "{}", r.err);
    assert!(
        r.took >= Duration::from_secs(2) && r.took < Duration::from_secs(4),
        "took {:?}",
        r.took
    );

    // Every answer takes longer than the deadline.
    let faulty = Faulty::start(
        &reg.host,
        vec![rule("*", "/", Fault::Delay(Duration::from_secs(5)), usize::MAX)],
    );
    let r = run(&Env::new(), RESOLVE, &[&target(&faulty), "--timeout", "1500ms"]);
    assert_failure(&r, 5, "latency beyond the deadline");
    assert!(r.err.contains("within 1.5 s"), "the deadline as given: {}", r.err);
    assert!(r.took < Duration::from_secs(3), "took {:?}", r.took);

    // Headers, a few body bytes, then silence with the connection open.
    let stall = stalling_server();
    let r = run(
        &Env::new(),
        RESOLVE,
        &[&format!("{stall}/acme/web:1111111"), "--timeout", "2"],
    );
    assert_failure(&r, 5, "stalled body");
    assert!(r.took < Duration::from_secs(4), "took {:?}", r.took);

    // Not transient: 501 and 400 are not retried.
    for status in [501, 400] {
        let faulty = Faulty::start(
            &reg.host,
            vec![rule("*", "/manifests/", Fault::Status(status), usize::MAX)],
        );
        let r = run(&Env::new(), RESOLVE, &[&target(&faulty), "--timeout", "5"]);
        assert_failure(&r, 5, &format!("{status}"));
        assert_eq!(faulty.count("*", "/manifests/"), 1, "{status} is not retried");
    }
}

#[test]
fn resolve_digest_config_blob_not_matching_its_digest_is_never_used_nor_cached() {
    let reg = registry_with_images();
    let baseline = json(
        &run(
            &Env::new(),
            RESOLVE,
            &[&reg.repo("acme/web:1111111"), "--deployed-by", "a@b"],
        ),
        "without faults",
    );
    let faulty = Faulty::start(&reg.host, vec![rule("GET", "/blobs/", Fault::Corrupt, usize::MAX)]);
    // One environment, so one cache, for both runs.
    let env = Env::new();
    let target = format!("{}/acme/web:1111111", faulty.host());
    let r = run(&env, RESOLVE, &[&target, "--deployed-by", "a@b", "--timeout", "5"]);
    assert_failure(&r, 5, "corrupt blob");
    assert!(r.err.contains("blob `"), "{}", r.err);
    assert!(r.err.contains("does not match its digest"), "{}", r.err);
    assert_eq!(
        faulty.count("GET", "/blobs/"),
        1,
        "a wrong body is not a transient fault"
    );
    // Faults gone: the rerun completes with the registry's answer, so the
    // corrupt body was not cached.
    faulty.off();
    let mut f = json(&run(&env, RESOLVE, &[&target, "--deployed-by", "a@b"]), "rerun");
    f["image"] = baseline["image"].clone();
    assert_eq!(f, baseline);
}

// ---- images_overview --------------------------------------------------------

fn images_tags(r: &Run, what: &str) -> Value {
    json(r, what)["tags"].clone()
}

#[test]
fn images_overview_under_transient_faults_gives_the_fault_free_answer() {
    let reg = registry_with_images();
    let baseline = images_tags(
        &run(&Env::new(), IMAGES, &["dev", &reg.repo("acme/web"), "--json"]),
        "without faults",
    );
    assert_eq!(baseline.as_array().unwrap().len(), 3);
    let faulty = Faulty::start(
        &reg.host,
        vec![
            rule("GET", "/tags/list", Fault::Status(503), 2),
            rule("GET", "/tags/list", Fault::Reset(4), 1),
            rule("GET", "/manifests/", Fault::Status(502), 2),
            rule("GET", "/manifests/", Fault::RetryAfter(429, "1".into()), 1),
            rule("GET", "/manifests/", Fault::Reset(10), 2),
            rule("GET", "/blobs/", Fault::Status(500), 2),
            rule("GET", "/blobs/", Fault::Reset(1), 1),
            rule("*", "/", Fault::Delay(Duration::from_millis(100)), usize::MAX),
        ],
    );
    let r = run(
        &Env::new(),
        IMAGES,
        &[
            "dev",
            &format!("{}/acme/web", faulty.host()),
            "--json",
            "--timeout",
            "20",
        ],
    );
    assert_eq!(images_tags(&r, "under faults"), baseline);
    assert_eq!(faulty.count("GET", "/tags/list"), 4);
    assert!(
        r.took >= Duration::from_secs(1),
        "Retry-After: 1 was honoured: {:?}",
        r.took
    );
}

#[test]
fn images_overview_persistent_faults_exit_5_within_the_timeout() {
    let reg = registry_with_images();
    let cases: Vec<(&str, Vec<Rule>, &str)> = vec![
        (
            "tag list always 500",
            vec![rule("*", "/tags/list", Fault::Status(500), usize::MAX)],
            "answered 500",
        ),
        (
            "manifests hang",
            vec![rule("*", "/manifests/", Fault::Hang, usize::MAX)],
            "within 2 s",
        ),
        (
            "manifest bodies do not match their digest",
            vec![rule("GET", "/manifests/", Fault::Corrupt, usize::MAX)],
            "does not match its digest",
        ),
        (
            "config blobs do not match their digest",
            vec![rule("GET", "/blobs/", Fault::Corrupt, usize::MAX)],
            "does not match its digest",
        ),
        (
            "config blobs reset",
            vec![rule("GET", "/blobs/", Fault::Reset(2), usize::MAX)],
            "",
        ),
    ];
    for (what, rules, message) in cases {
        let faulty = Faulty::start(&reg.host, rules);
        let r = run(
            &Env::new(),
            IMAGES,
            &[
                "dev",
                &format!("{}/acme/web", faulty.host()),
                "--json",
                "--timeout",
                "2",
            ],
        );
        assert_failure(&r, 5, what);
        assert!(r.err.contains(message), "{what}: {}", r.err);
        // Each operation has its own deadline; the tags are read side by side.
        assert!(r.took < Duration::from_secs(5), "{what}: took {:?}", r.took);
        // The rerun without faults completes.
        faulty.off();
        let again = run(
            &Env::new(),
            IMAGES,
            &["dev", &format!("{}/acme/web", faulty.host()), "--json"],
        );
        assert_eq!(images_tags(&again, what).as_array().unwrap().len(), 3);
    }
}

/// Three manifests that share their config, read side by side: one task
/// fetches the config while the others wait for it (`Client::blob_get`).
/// Here that fetch fails, late (a 404 after a second, as from a mirror or
/// store that has not caught up). The waiting tasks then fetch it
/// themselves, side by side: their tags get their labels, only the tag of
/// the failed fetch is shown without them (with a warning), and the run
/// ends.
#[test]
fn images_overview_a_shared_config_whose_first_fetch_fails_is_fetched_by_the_tasks_that_waited() {
    let reg = Registry::start();
    let shared = labelled(&revision("5a5a5a5"), "shared config", "2026-01-25T01:01:33Z");
    let mut manifests = Vec::new();
    for build in ["b1", "b2", "b3"] {
        let mut spec = shared.clone();
        spec.annotations.insert("vnd.example.build".into(), build.into());
        manifests.push(push(&reg.repo(&format!("acme/web:{build}")), &spec));
    }
    manifests.sort();
    manifests.dedup();
    assert_eq!(manifests.len(), 3, "three manifests, one config");
    let (late, slow) = (Duration::from_secs(1), Duration::from_secs(3));
    let faulty = Faulty::start(
        &reg.host,
        vec![
            rule("GET", "/blobs/", Fault::Late(late, Box::new(Fault::Status(404))), 1),
            rule("GET", "/blobs/", Fault::Delay(slow), usize::MAX),
        ],
    );
    let r = run_within(
        &Env::new(),
        IMAGES,
        &[
            "dev",
            &format!("{}/acme/web", faulty.host()),
            "--json",
            "--concurrency",
            "3",
            "--timeout",
            "10",
        ],
        Duration::from_secs(30),
    );
    let tags = images_tags(&r, "the first fetch of the shared config fails");
    let without: Vec<&str> = tags
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["description"].is_null())
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(without.len(), 1, "only the failed fetch's tag lacks labels: {tags}");
    for t in tags.as_array().unwrap().iter().filter(|t| t["tag"] != without[0]) {
        assert_eq!(t["description"], "shared config", "{tags}");
        assert_eq!(t["created"], "2026-01-25T01:01:33Z", "{tags}");
    }
    let warnings: Vec<&str> = r.err.lines().filter(|l| l.contains("shown without metadata")).collect();
    assert_eq!(warnings.len(), 1, "{}", r.err);
    assert!(
        warnings[0].contains(&format!("(tag `{}`)", without[0])) && warnings[0].contains("not found"),
        "{}",
        r.err
    );

    // The failed fetch, then one per waiting task, all of the one config.
    let requests = faulty.server.requests();
    let blob_gets: Vec<&Req> = requests
        .iter()
        .filter(|q| q.method == "GET" && q.path.contains("/blobs/"))
        .collect();
    assert_eq!(blob_gets.len(), 3, "{blob_gets:?}");
    assert!(blob_gets.iter().all(|q| q.path == blob_gets[0].path), "{blob_gets:?}");
    let (first, waited) = (blob_gets[0], &blob_gets[1..]);
    for q in waited {
        let after = q.at.duration_since(first.at);
        assert!(
            after >= late,
            "asked again only once the first fetch failed, not {after:?} after it"
        );
    }
    let apart = waited[0].at.max(waited[1].at) - waited[0].at.min(waited[1].at);
    assert!(
        apart < slow,
        "the waiting tasks fetch side by side, not one after the other: {apart:?} apart"
    );
    assert_eq!(faulty.count("GET", "/manifests/"), 3);
    assert_eq!(faulty.count("GET", "/tags/list"), 1);
}

#[test]
fn images_overview_refuses_a_next_page_on_another_host_which_receives_nothing() {
    let reg = registry_with_images();
    let elsewhere = FaultServer::start(Some(reg.host.clone()), Arc::new(|_: &Req| Action::Forward));
    let link = format!(
        "<http://{}/v2/acme/web/tags/list?last=1111111&n=1>; rel=\"next\"",
        elsewhere.host
    );
    let server = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(move |req: &Req| {
            if req.path.contains("/tags/list") {
                Action::Respond(
                    Resp::new(200, r#"{"name":"acme/web","tags":["1111111"]}"#)
                        .header("Content-Type", "application/json")
                        .header("Link", &link),
                )
            } else {
                Action::Forward
            }
        }),
    );
    let r = run(
        &Env::new(),
        IMAGES,
        &["dev", &format!("{}/acme/web", server.host), "--json", "--timeout", "5"],
    );
    assert_failure(&r, 5, "Link to another host");
    assert!(r.err.contains("next page on another host"), "{}", r.err);
    assert!(elsewhere.requests().is_empty(), "{:?}", elsewhere.requests());
}

#[test]
fn a_tag_list_with_names_that_are_not_tags_is_refused_and_never_reaches_the_terminal() {
    let reg = registry_with_images();
    for bad in [
        r"\u001b]0;pwned\u0007\u001b[31mEVIL",
        "../../acme/api/manifests/3333333",
    ] {
        let body = format!(r#"{{"name":"acme/web","tags":["1111111","{bad}"]}}"#);
        let server = FaultServer::start(
            Some(reg.host.clone()),
            Arc::new(move |req: &Req| {
                if req.path.contains("/tags/list") {
                    Action::Respond(Resp::new(200, body.clone()).header("Content-Type", "application/json"))
                } else {
                    Action::Forward
                }
            }),
        );
        for (bin, args) in [
            (IMAGES, vec!["dev".to_string(), format!("{}/acme/web", server.host)]),
            (REGISTRY, vec![server.host.clone(), "--repo".into(), "acme/web".into()]),
        ] {
            let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
            all.extend(["--timeout", "5"]);
            let r = run(&Env::new(), bin, &all);
            if bin == REGISTRY {
                // One repository among others: shown as unreadable, exit 5 after the output.
                assert_eq!(r.code, 5, "{bad}: {}", r.err);
                let unreadable = format!("IMAGE: {}/acme/web\n!   cannot be read: ", server.host);
                assert!(
                    r.out.contains(&unreadable) && r.out.contains("which is not a tag"),
                    "{}",
                    r.out
                );
                assert!(!r.out.contains('\u{1b}') && !r.out.contains('\u{7}'), "{:?}", r.out);
            } else {
                assert_failure(&r, 5, bad);
            }
            assert!(r.err.contains("which is not a tag"), "{}", r.err);
            assert!(!r.err.contains('\u{1b}') && !r.err.contains('\u{7}'), "{:?}", r.err);
        }
        // Nothing was asked for the bad name: `../..` would have been
        // resolved by the URL parser into a request for acme/api.
        assert!(
            server
                .requests()
                .iter()
                .all(|q| !q.path.contains("acme/api") && !q.path.contains("%1B") && !q.path.contains('\u{1b}')),
            "{:?}",
            server.requests()
        );
    }
}

// ---- registry_overview ------------------------------------------------------

#[test]
fn registry_overview_under_transient_faults_gives_the_fault_free_answer() {
    let reg = registry_with_images();
    let repos = |r: &Run, what: &str| json(r, what)["repositories"].clone();
    let baseline = repos(&run(&Env::new(), REGISTRY, &[&reg.host, "--json"]), "without faults");
    assert_eq!(baseline.as_array().unwrap().len(), 2);
    let faulty = Faulty::start(
        &reg.host,
        vec![
            rule("GET", "/_catalog", Fault::Status(503), 2),
            rule("GET", "/_catalog", Fault::RetryAfter(429, "0".into()), 1),
            rule("GET", "/_catalog", Fault::Reset(3), 1),
            rule("GET", "/tags/list", Fault::Status(500), 2),
            rule("GET", "/manifests/", Fault::Reset(7), 3),
            rule("GET", "/blobs/", Fault::Status(504), 3),
            rule("*", "/", Fault::Delay(Duration::from_millis(50)), usize::MAX),
        ],
    );
    let r = run(&Env::new(), REGISTRY, &[faulty.host(), "--json", "--timeout", "20"]);
    assert_eq!(repos(&r, "under faults"), baseline);
    assert_eq!(faulty.count("GET", "/_catalog"), 5);
}

#[test]
fn registry_overview_persistent_faults_exit_5_within_the_timeout() {
    let reg = registry_with_images();
    for (what, rules) in [
        ("catalog hangs", vec![rule("*", "/_catalog", Fault::Hang, usize::MAX)]),
        (
            "catalog always 503",
            vec![rule("*", "/_catalog", Fault::Status(503), usize::MAX)],
        ),
        (
            "manifests do not match their digest",
            vec![rule("GET", "/manifests/", Fault::Corrupt, usize::MAX)],
        ),
        ("blobs hang", vec![rule("*", "/blobs/", Fault::Hang, usize::MAX)]),
        // Not one repository's problem: the whole run stops.
        (
            "tag lists always 503",
            vec![rule("*", "/tags/list", Fault::Status(503), usize::MAX)],
        ),
    ] {
        let faulty = Faulty::start(&reg.host, rules);
        let r = run(&Env::new(), REGISTRY, &[faulty.host(), "--json", "--timeout", "2"]);
        assert_failure(&r, 5, what);
        assert!(r.took < Duration::from_secs(5), "{what}: took {:?}", r.took);
    }
}

#[test]
fn registry_overview_shows_a_repository_it_may_not_read_and_reads_the_others() {
    let reg = registry_with_images();
    // As a catalog that lists repositories the credentials may not pull.
    let faulty = Faulty::start(
        &reg.host,
        vec![rule("GET", "/acme/api/tags/list", Fault::Status(403), usize::MAX)],
    );
    let r = run(&Env::new(), REGISTRY, &[faulty.host(), "--json", "--timeout", "10"]);
    assert_eq!(r.code, 4, "refused: exit 4 after the output; stderr:\n{}", r.err);
    let v: Value = serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.out));
    let repos = v["repositories"].as_array().unwrap();
    let names: Vec<&str> = repos.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["acme/api", "acme/web"]);
    let error = repos[0]["error"].as_str().unwrap();
    assert!(error.contains("refused") && error.contains("403"), "{error}");
    assert_eq!(repos[0]["tags"], serde_json::json!([]));
    assert_eq!(repos[1]["tags"].as_array().unwrap().len(), 3);
    assert!(repos[1].get("error").is_none(), "{}", repos[1]);
    let err: Vec<&str> = r.err.lines().collect();
    assert_eq!(err.len(), 2, "{}", r.err);
    assert!(
        err[0].starts_with("warning: repository `acme/api` cannot be read"),
        "{}",
        r.err
    );
    assert!(
        err[1]
            .starts_with("error: 1 of 2 repositories could not be read (shown as unreadable); the first, `acme/api`: "),
        "{}",
        r.err
    );

    let r = run(&Env::new(), REGISTRY, &[faulty.host(), "--timeout", "10"]);
    assert_eq!(r.code, 4, "{}", r.err);
    let api = format!("IMAGE: {}/acme/api\n!   cannot be read: ", faulty.host());
    assert!(r.out.contains(&api), "{}", r.out);
    let web = format!("IMAGE: {}/acme/web\n    TAG ", faulty.host());
    assert!(r.out.contains(&web) && r.out.contains("3 tags, 2 digests"), "{}", r.out);
}

#[test]
fn registry_overview_without_a_catalog_says_so_and_what_reads_one_repository() {
    let reg = registry_with_images();
    let server = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(|req: &Req| {
            if req.path.contains("/_catalog") {
                Action::Respond(Resp::new(
                    404,
                    r#"{"errors":[{"code":"UNSUPPORTED","message":"catalog is disabled"}]}"#,
                ))
            } else {
                Action::Forward
            }
        }),
    );
    let r = run(&Env::new(), REGISTRY, &[&server.host, "--timeout", "5"]);
    assert_failure(&r, 3, "catalog disabled");
    assert!(r.err.contains("does not serve its catalog"), "{}", r.err);
    assert!(
        !r.err.contains("`registry_overview REGISTRY` lists what exists"),
        "{}",
        r.err
    );
}

/// A host that is not a registry (a web server, a proxy with nothing
/// behind it) answers 404 to every path: a missing tag (exit 3) and a
/// DELETE "already gone" would be wrong. Its `/v2/` answering 404 too says
/// it is not a registry (exit 5), asked once per run, whatever the size of
/// its 404 page; a registry's own 404 (a HEAD has no error body) stays
/// "not found" after the same one GET.
#[test]
fn a_host_answering_404_everywhere_is_not_a_registry() {
    let page = format!("<html><body>Not Found{}</body></html>", " ".repeat(100_000));
    let web = FaultServer::start(
        None,
        Arc::new(move |_: &Req| Action::Respond(Resp::new(404, page.clone()))),
    );
    let api_root = |s: &FaultServer| s.requests().iter().filter(|r| r.path == "/v2/").count();
    let cases: [(&str, Vec<String>); 4] = [
        (RESOLVE, vec![format!("{}/acme/web:1111111", web.host)]),
        (
            RESOLVE,
            vec![format!(
                "{}/acme/web@{}",
                web.host,
                image_lifecycle::reference::Digest::sha256_of(b"x")
            )],
        ),
        (IMAGES, vec!["dev".into(), format!("{}/acme/web", web.host)]),
        (REGISTRY, vec![web.host.clone()]),
    ];
    for (bin, args) in &cases {
        let before = api_root(&web);
        let args: Vec<&str> = args.iter().map(String::as_str).chain(["--timeout", "5"]).collect();
        let r = run(&Env::new(), bin, &args);
        assert_failure(&r, 5, &format!("{bin} {args:?}"));
        assert!(
            r.err.contains(&format!(
                "`{}` does not answer as a registry: `http://{}/v2/` answered 404",
                web.host, web.host
            )),
            "{}",
            r.err
        );
        assert!(r.err.contains("check the host, port and scheme"), "{}", r.err);
        assert_eq!(api_root(&web) - before, 1, "{bin}: `/v2/` asked once");
    }
    // registry_untag and registry_cleanup: nothing is taken for deleted.
    let untag = run(
        &Env::new(),
        UNTAG,
        &[&format!("{}/acme/web:1111111", web.host), "--apply"],
    );
    assert_failure(&untag, 5, "untag");
    assert!(untag.err.contains("does not answer as a registry"), "{}", untag.err);
    assert_eq!(web.requests().iter().filter(|r| r.method == "DELETE").count(), 0);

    // A registry's own 404: not found. With its error body (to a GET) as
    // it is; without (to a HEAD), after one GET of `/v2/`.
    let reg = registry_with_images();
    let faulty = Faulty::start(&reg.host, vec![]);
    let r = run(&Env::new(), RESOLVE, &[&format!("{}/acme/web:0000000", faulty.host())]);
    assert_failure(&r, 3, "a missing tag");
    assert_eq!(api_root(&faulty.server), 0, "a 404 with a registry's error body");
    let r = run(&Env::new(), UNTAG, &[&format!("{}/acme/web:0000000", faulty.host())]);
    assert_failure(&r, 3, "a missing tag");
    assert_eq!(faulty.count("HEAD", "/manifests/0000000"), 1);
    assert_eq!(api_root(&faulty.server), 1);
    // Two tags listed but gone when read (a 404 without a body): left
    // out, `/v2/` asked once.
    let lagging = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(|req: &Req| {
            if req.path.ends_with("/manifests/1111111") || req.path.ends_with("/manifests/latest") {
                Action::Respond(Resp::new(404, ""))
            } else {
                Action::Forward
            }
        }),
    );
    let r = run(
        &Env::new(),
        IMAGES,
        &["dev", &format!("{}/acme/web", lagging.host), "--json"],
    );
    let listed = json(&r, "two tags gone");
    let tags: Vec<&str> = listed["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["2222222"]);
    assert_eq!(api_root(&lagging), 1, "once per run");
}

#[test]
fn registry_overview_refuses_a_catalog_page_on_another_host_which_receives_nothing() {
    let reg = registry_with_images();
    let elsewhere = FaultServer::start(Some(reg.host.clone()), Arc::new(|_: &Req| Action::Forward));
    // Same address, other port: another origin all the same.
    let link = format!(
        "<http://{}/v2/_catalog?last=acme%2Fapi&n=1>; rel=\"next\"",
        elsewhere.host
    );
    let server = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(move |req: &Req| {
            if req.path.contains("/_catalog") {
                Action::Respond(
                    Resp::new(200, r#"{"repositories":["acme/api"]}"#)
                        .header("Content-Type", "application/json")
                        .header("Link", &link),
                )
            } else {
                Action::Forward
            }
        }),
    );
    let r = run(&Env::new(), REGISTRY, &[&server.host, "--json", "--timeout", "5"]);
    assert_failure(&r, 5, "catalog Link to another host");
    assert!(r.err.contains("next page on another host `127.0.0.1`"), "{}", r.err);
    assert!(elsewhere.requests().is_empty(), "{:?}", elsewhere.requests());
}

// ---- registry_untag -----------------------------------------------------------

fn tags(reg: &Registry, repo: &str) -> Vec<String> {
    let body = reqwest::blocking::get(format!("http://{}/v2/{repo}/tags/list", reg.host))
        .unwrap()
        .text()
        .unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    let mut t: Vec<String> = v["tags"]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    t.sort();
    t
}

/// The digest `reference` (tag or digest) resolves to, straight from the registry.
fn manifest_digest(reg: &Registry, repo: &str, reference: &str) -> Option<String> {
    let r = reqwest::blocking::Client::new()
        .head(format!("http://{}/v2/{repo}/manifests/{reference}", reg.host))
        .header(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
        )
        .send()
        .unwrap();
    r.status()
        .is_success()
        .then(|| r.headers()["docker-content-digest"].to_str().unwrap().to_string())
}

/// Untagging many tags of one repository reads its tag list once and each
/// tag once, probes delete support once, and says in the dry run what the
/// apply then does (the last of a digest's tags leaves it untagged).
#[test]
fn registry_untag_of_many_tags_reads_the_repository_once() {
    let reg = Registry::start();
    let shared = labelled(&revision("5555555"), "shared", "2026-01-25T01:01:33Z");
    let d = push(&reg.repo("acme/web:5555555"), &shared);
    for t in ["b1", "b2", "b3"] {
        push(&reg.repo(&format!("acme/web:{t}")), &shared);
    }
    push(
        &reg.repo("acme/web:6666666"),
        &labelled(&revision("6666666"), "other", "2026-01-25T01:01:33Z"),
    );
    let faulty = Faulty::start(&reg.host, vec![]);
    let names: Vec<String> = ["b1", "b2", "b3", "5555555"]
        .iter()
        .map(|t| format!("{}/acme/web:{t}", faulty.host()))
        .collect();
    let args: Vec<&str> = names.iter().map(String::as_str).collect();
    // One of them missing: refused before anything is printed or changed.
    let missing = format!("{}/acme/web:nope", faulty.host());
    let refused = run(&Env::new(), UNTAG, &[args.as_slice(), &[&missing, "--apply"]].concat());
    assert_failure(&refused, 3, "a missing tag among them");
    assert!(refused.err.contains("nope"), "{}", refused.err);
    assert_eq!(tags(&reg, "acme/web"), ["5555555", "6666666", "b1", "b2", "b3"]);
    assert_eq!(faulty.count("DELETE", "/"), 0);

    let before = faulty.server.requests().len();
    let dry = run(&Env::new(), UNTAG, &args);
    assert_eq!(dry.code, 0, "{}", dry.err);
    let expected = |verb: &str| {
        format!(
            "{verb} {n0}{how}; `{d}` keeps tags: 5555555, b2, b3\n\
             {verb} {n1}{how}; `{d}` keeps tags: 5555555, b3\n\
             {verb} {n2}{how}; `{d}` keeps tags: 5555555\n\
             {verb} {n3}{how}; `{d}` is left without tags: it no longer shows in tag lists, and the registry's \
             collection of untagged manifests reclaims it (distribution 3: `garbage-collect --delete-untagged`)\n",
            n0 = names[0],
            n1 = names[1],
            n2 = names[2],
            n3 = names[3],
            how = if verb == "untagged" {
                " (re-pointed to a placeholder manifest, which was deleted)"
            } else {
                ""
            },
        )
    };
    assert_eq!(
        dry.out,
        expected("would untag") + "dry run: nothing changed; run again with --apply to remove these tags\n"
    );
    let count = |method: &str, path: &str| faulty.count_since(before, method, path);
    assert_eq!(count("GET", "/tags/list"), 1, "one tag list for the run");
    // 5 listed, then the 4 named as they are untagged: one HEAD each.
    assert_eq!(count("HEAD", "/manifests/"), 5 + 4);
    assert_eq!(tags(&reg, "acme/web"), ["5555555", "6666666", "b1", "b2", "b3"]);

    // With deploy state (naming another digest), the check is the dry run:
    // the same output and reads, and the manifest of the digest left
    // without tags, for what it holds.
    let env = Env::new();
    let state = env.home.path().join("dev.json");
    let other = manifest_digest(&reg, "acme/web", "6666666").unwrap();
    std::fs::write(
        &state,
        serde_json::json!({"workspace": "dev", "hosts": ["web1"], "records": [{"host": "web1", "app": "web",
            "workspace": "dev", "image": format!("{}/acme/web", faulty.host()), "digest": other}]})
        .to_string(),
    )
    .unwrap();
    let before = faulty.server.requests().len();
    let checked = run(
        &env,
        UNTAG,
        &[args.as_slice(), &["--protected", state.to_str().unwrap()]].concat(),
    );
    assert_eq!(checked.code, 0, "{}", checked.err);
    assert_eq!(checked.out, dry.out);
    let count = |method: &str, path: &str| faulty.count_since(before, method, path);
    assert_eq!(count("GET", "/tags/list"), 1, "one tag list for the run");
    assert_eq!(count("HEAD", "/manifests/"), 5 + 4);
    assert_eq!(count("GET", "/manifests/"), 1);

    // A tag named twice is untagged once.
    let before = faulty.server.requests().len();
    let twice = [&args[..1], args.as_slice(), &["--apply"]].concat();
    let applied = run(&Env::new(), UNTAG, &twice);
    assert_eq!(applied.code, 0, "{}", applied.err);
    assert_eq!(applied.out, expected("untagged"));
    assert_eq!(tags(&reg, "acme/web"), ["6666666"]);
    assert_eq!(manifest_digest(&reg, "acme/web", &d.to_string()), Some(d.to_string()));
    let count = |method: &str, path: &str| faulty.count_since(before, method, path);
    assert_eq!(count("GET", "/tags/list"), 1);
    // One DELETE by tag (refused by distribution 2.x), one probe, then one
    // placeholder per tag.
    assert_eq!(
        count("DELETE", "/manifests/"),
        1 + 1 + 4,
        "{:?}",
        &faulty.server.requests()[before..]
    );
    assert_eq!(count("POST", "/blobs/uploads/"), 1, "the empty blob pushed once");
}

/// A 404 to the DELETE of a tag that exists (a registry or proxy without
/// deletes by tag answering so): not taken for "untagged"; a HEAD finds the
/// tag still there, so the placeholder method removes it, and the digest
/// stays.
#[test]
fn registry_untag_does_not_take_a_404_to_a_delete_by_tag_for_done() {
    let reg = registry_with_images();
    let d2 = manifest_digest(&reg, "acme/web", "latest").unwrap();
    let faulty = Faulty::start(
        &reg.host,
        vec![rule("DELETE", "/manifests/latest", Fault::Status(404), usize::MAX)],
    );
    let target = format!("{}/acme/web:latest", faulty.host());
    let before = faulty.server.requests().len();
    let v = json(&run(&Env::new(), UNTAG, &[&target, "--apply", "--json"]), "404 by tag");
    assert_eq!(v[0]["applied"], true, "{v}");
    assert_eq!(v[0]["method"], "placeholder", "{v}");
    assert_eq!(tags(&reg, "acme/web"), ["1111111", "2222222"]);
    assert_eq!(manifest_digest(&reg, "acme/web", &d2).as_deref(), Some(d2.as_str()));
    assert_eq!(faulty.count_since(before, "DELETE", "/manifests/latest"), 1);
}

/// A proxy that answers 404 to every DELETE: the probe of delete support
/// passes (a 404 is what a registry with deletes answers for it), but the
/// placeholder's DELETE is not taken for done while the tag still points
/// to the placeholder: the tag is put back on its digest, exit 5.
#[test]
fn registry_untag_puts_the_tag_back_when_every_delete_answers_404() {
    let reg = registry_with_images();
    let d2 = manifest_digest(&reg, "acme/web", "latest").unwrap();
    let faulty = Faulty::start(
        &reg.host,
        vec![rule("DELETE", "/manifests/", Fault::Status(404), usize::MAX)],
    );
    let target = format!("{}/acme/web:latest", faulty.host());
    let r = run(&Env::new(), UNTAG, &[&target, "--apply"]);
    assert_failure(&r, 5, "every DELETE answered 404");
    assert!(
        r.err
            .contains(&format!("cannot untag `{target}` (the tag points to `{d2}` again)"))
            && r.err.contains("yet the tag still points to the placeholder"),
        "{}",
        r.err
    );
    assert_eq!(tags(&reg, "acme/web"), ["1111111", "2222222", "latest"]);
    assert_eq!(
        manifest_digest(&reg, "acme/web", "latest").as_deref(),
        Some(d2.as_str())
    );
}

/// A 404 to the DELETE by tag, and meanwhile someone pushed to the tag (here
/// `latest` is moved to the image of `1111111` in the real registry while
/// the DELETE is answered): the new push is left as it is, no placeholder
/// is written, exit 1 naming both digests.
#[test]
fn registry_untag_leaves_a_tag_pushed_again_while_it_was_untagged() {
    let reg = registry_with_images();
    let d1 = manifest_digest(&reg, "acme/web", "1111111").unwrap();
    let d2 = manifest_digest(&reg, "acme/web", "latest").unwrap();
    let host = reg.host.clone();
    let server = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(move |r: &Req| {
            if r.method == "DELETE" && r.path.ends_with("/manifests/latest") {
                move_tag(&host, "1111111", "latest");
                return Action::Respond(Resp::new(404, "404 page not found\n"));
            }
            Action::Forward
        }),
    );
    let target = format!("{}/acme/web:latest", server.host);
    let r = run(&Env::new(), UNTAG, &[&target, "--apply"]);
    assert_failure(&r, 1, "tag moved meanwhile");
    assert!(
        r.err.contains(&format!(
            "cannot untag `{target}`: the tag moved from `{d2}` to `{d1}` while being untagged"
        )),
        "{}",
        r.err
    );
    assert_eq!(
        manifest_digest(&reg, "acme/web", "latest").as_deref(),
        Some(d1.as_str())
    );
    assert_eq!(manifest_digest(&reg, "acme/web", &d2).as_deref(), Some(d2.as_str()));
    let puts = server.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 0, "no placeholder");
}

/// Points `tag` of `acme/web` at the image of tag `from`, as another
/// client's push would (on a thread of its own: fault handlers run on the
/// server's async workers).
fn move_tag(host: &str, from: &str, tag: &str) {
    let (host, from, tag) = (host.to_string(), from.to_string(), tag.to_string());
    std::thread::spawn(move || {
        let c = reqwest::blocking::Client::new();
        let url = |reference: &str| format!("http://{host}/v2/acme/web/manifests/{reference}");
        let m = c
            .get(url(&from))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap();
        let media_type = m.headers()["content-type"].to_str().unwrap().to_string();
        let body = m.bytes().unwrap();
        let put = c
            .put(url(&tag))
            .header("Content-Type", media_type)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(put.status(), 201);
    })
    .join()
    .unwrap();
}

/// The placeholder method (distribution 2.x has no DELETE by tag) takes a
/// few requests before the placeholder is put: a push to the tag in that
/// gap (here during the probe of delete support) is not overwritten:
/// exit 1, the tag stays on the new image, no placeholder is put.
#[test]
fn registry_untag_does_not_put_its_placeholder_over_a_push_made_meanwhile() {
    let reg = registry_with_images();
    let faulty = Faulty::start(
        &reg.host,
        vec![rule(
            "DELETE",
            "/manifests/sha256:",
            Fault::MoveTag(reg.host.clone(), "1111111", "latest", None),
            1,
        )],
    );
    untag_leaves_the_new_push(&reg, &faulty, "tag moved during the probe");
    assert_eq!(faulty.count("PUT", "/manifests/"), 0, "no placeholder");
}

/// Untags `latest` through `faulty`, which moves it from the image of
/// `latest` to that of `1111111` meanwhile: exit 1 naming both, and the tag
/// stays on the new image.
fn untag_leaves_the_new_push(reg: &Registry, faulty: &Faulty, what: &str) {
    let d1 = manifest_digest(reg, "acme/web", "1111111").unwrap();
    let d2 = manifest_digest(reg, "acme/web", "latest").unwrap();
    let target = format!("{}/acme/web:latest", faulty.host());
    let r = run(&Env::new(), UNTAG, &[&target, "--apply"]);
    assert_failure(&r, 1, what);
    assert!(
        r.err
            .contains(&format!("the tag moved from `{d2}` to `{d1}` while being untagged")),
        "{}",
        r.err
    );
    assert_eq!(manifest_digest(reg, "acme/web", "latest").as_deref(), Some(d1.as_str()));
}

/// A fault server in front of `reg` whose second DELETE by digest (the
/// placeholder's, after the probe of delete support) first moves `latest`
/// to the image of `1111111`, as another client's push would, then is
/// answered `status`.
fn push_during_placeholder_delete(reg: &Registry, status: u16) -> Faulty {
    let moved = Fault::MoveTag(
        reg.host.clone(),
        "1111111",
        "latest",
        Some(Box::new(Fault::Status(status))),
    );
    Faulty::start(
        &reg.host,
        vec![
            rule("DELETE", "/manifests/sha256:", Fault::Delay(Duration::ZERO), 1),
            rule("DELETE", "/manifests/sha256:", moved, 1),
        ],
    )
}

/// The placeholder's DELETE fails, and someone pushed to the tag after the
/// placeholder was put: the tag is not put back over the new push (exit 1,
/// the tag stays on the new image).
#[test]
fn registry_untag_does_not_put_the_tag_back_over_a_push_made_meanwhile() {
    let reg = registry_with_images();
    let faulty = push_during_placeholder_delete(&reg, 403);
    untag_leaves_the_new_push(&reg, &faulty, "tag moved before the put-back");
    assert_eq!(
        faulty.count("PUT", "/manifests/latest"),
        1,
        "the placeholder, and nothing put back"
    );
}

/// The placeholder's DELETE answers 404 and the tag, looked at again, is
/// on a third image: someone pushed to it meanwhile, which is not taken
/// for "untagged" (exit 1, the tag stays on the new image).
#[test]
fn registry_untag_does_not_report_untagged_when_a_push_took_the_tag_from_the_placeholder() {
    let reg = registry_with_images();
    let faulty = push_during_placeholder_delete(&reg, 404);
    untag_leaves_the_new_push(&reg, &faulty, "tag taken from the placeholder");
}

/// The other side: a 404 to the DELETE by tag when the tag is gone indeed
/// (another client took it first; here the proxy answers for the registry
/// as one with deletes by tag would: 404 to the DELETE, then 404 to HEADs
/// of the tag) is done, by tag, without the placeholder.
#[test]
fn registry_untag_takes_a_404_to_a_delete_by_tag_for_done_when_the_tag_is_gone() {
    let reg = registry_with_images();
    let deleted = Arc::new(AtomicBool::new(false));
    let d2 = deleted.clone();
    let server = FaultServer::start(
        Some(reg.host.clone()),
        Arc::new(move |r: &Req| {
            let unknown = || Resp::new(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"gone"}]}"#);
            if r.path.ends_with("/manifests/latest") {
                if r.method == "DELETE" {
                    d2.store(true, Ordering::SeqCst);
                    return Action::Respond(unknown());
                }
                if d2.load(Ordering::SeqCst) {
                    return Action::Respond(unknown());
                }
            }
            Action::Forward
        }),
    );
    let target = format!("{}/acme/web:latest", server.host);
    let v = json(
        &run(&Env::new(), UNTAG, &[&target, "--apply", "--json"]),
        "tag gone meanwhile",
    );
    assert_eq!(v[0]["applied"], true, "{v}");
    assert_eq!(v[0]["method"], "delete-tag", "{v}");
    assert!(deleted.load(Ordering::SeqCst));
    let puts = server.requests().iter().filter(|r| r.method == "PUT").count();
    assert_eq!(puts, 0, "no placeholder");
}

/// A tag that exists (HEAD finds it) but that the repository's tag list
/// does not name yet is untagged all the same, as crane or regctl would
/// (they never read the list); a tag missing for real is still refused
/// (exit 3) before anything changes.
#[test]
fn registry_untag_removes_a_tag_the_tag_list_does_not_show_yet() {
    let reg = registry_with_images();
    let d2 = manifest_digest(&reg, "acme/web", "latest").unwrap();
    let faulty = Faulty::start(
        &reg.host,
        vec![rule("GET", "/tags/list", Fault::Unlisted("latest"), usize::MAX)],
    );
    let target = format!("{}/acme/web:latest", faulty.host());
    let missing = format!("{}/acme/web:nope", faulty.host());

    let refused = run(&Env::new(), UNTAG, &[&target, &missing, "--apply"]);
    assert_failure(&refused, 3, "a missing tag beside an unlisted one");
    assert!(refused.err.contains("tag `nope` of `"), "{}", refused.err);

    let dry = run(&Env::new(), UNTAG, &[&target]);
    assert_eq!(dry.code, 0, "{}", dry.err);
    assert_eq!(
        dry.out,
        format!(
            "would untag {target}; `{d2}` keeps tags: 2222222\n\
             dry run: nothing changed; run again with --apply to remove these tags\n"
        )
    );
    assert_eq!(tags(&reg, "acme/web"), ["1111111", "2222222", "latest"]);

    let before = faulty.server.requests().len();
    let v = json(
        &run(&Env::new(), UNTAG, &[&target, "--apply", "--json"]),
        "unlisted tag",
    );
    assert_eq!(v[0]["digest"], d2);
    assert_eq!(v[0]["remaining_tags"], serde_json::json!(["2222222"]));
    assert_eq!(v[0]["applied"], true);
    assert_eq!(tags(&reg, "acme/web"), ["1111111", "2222222"]);
    assert_eq!(manifest_digest(&reg, "acme/web", &d2).as_deref(), Some(d2.as_str()));
    // Asked for by itself before any tag is touched, then once more when its
    // removal starts, and just before the placeholder is put over it.
    assert_eq!(faulty.count_since(before, "HEAD", "/manifests/latest"), 3);
}

/// A tag list that has not seen the repository yet (404, as a cache
/// in front of the registry may answer for a while after the first push):
/// each named tag is asked for by itself, so an existing one is untagged
/// and a repository that does not exist is still refused (exit 3).
#[test]
fn registry_untag_removes_a_tag_of_a_repository_the_tag_list_does_not_know_yet() {
    let reg = registry_with_images();
    let d1 = manifest_digest(&reg, "acme/web", "1111111").unwrap();
    let faulty = Faulty::start(
        &reg.host,
        vec![rule("GET", "/tags/list", Fault::Status(404), usize::MAX)],
    );
    let target = format!("{}/acme/web:1111111", faulty.host());

    let missing = run(
        &Env::new(),
        UNTAG,
        &[&format!("{}/acme/nope:v1", faulty.host()), "--apply"],
    );
    assert_failure(&missing, 3, "a repository that does not exist");
    assert!(
        missing.err.contains("repository") && missing.err.contains("acme/nope"),
        "the list's own answer: {}",
        missing.err
    );

    let dry = run(&Env::new(), UNTAG, &[&target]);
    assert_eq!(dry.code, 0, "{}", dry.err);
    assert!(
        dry.out.contains(&format!(
            "`{d1}` is kept; its other tags are unknown (the tag list answered 404)"
        )),
        "never `left without tags` when the list said nothing: {}",
        dry.out
    );
    // With deploy state naming the digest, unknown other tags are not
    // taken for some: refused, nothing changed.
    let env = Env::new();
    let state = env.home.path().join("dev.json");
    std::fs::write(
        &state,
        serde_json::json!({"workspace": "dev", "hosts": ["web1"], "records": [{"host": "web1", "app": "web",
            "workspace": "dev", "image": format!("{}/acme/web", faulty.host()), "digest": d1}]})
        .to_string(),
    )
    .unwrap();
    let refused = run(
        &env,
        UNTAG,
        &[&target, "--apply", "--protected", state.to_str().unwrap()],
    );
    assert_failure(&refused, 2, "deployed, other tags unknown");
    assert!(
        refused.err.starts_with(&format!(
            "error: refusing to untag `{target}`: `{d1}` is deployed on dev/web1 (web), and its other tags are \
             unknown (the tag list answered 404)"
        )),
        "{}",
        refused.err
    );
    assert_eq!(tags(&reg, "acme/web"), ["1111111", "2222222", "latest"]);

    let v = json(
        &run(&Env::new(), UNTAG, &[&target, "--apply", "--json"]),
        "unknown to the list",
    );
    assert_eq!(v[0]["digest"], d1);
    assert_eq!(v[0]["remaining_tags"], Value::Null, "unknown, not []");
    assert_eq!(v[0]["applied"], true);
    assert_eq!(tags(&reg, "acme/web"), ["2222222", "latest"]);
    assert_eq!(manifest_digest(&reg, "acme/web", &d1).as_deref(), Some(d1.as_str()));
    assert_eq!(
        faulty.count("DELETE", "/manifests/1111111"),
        1,
        "the DELETE by tag was tried"
    );
}

#[test]
fn registry_untag_under_transient_faults_and_lost_answers_removes_only_the_tag() {
    let reg = registry_with_images();
    let d2 = manifest_digest(&reg, "acme/web", "2222222").unwrap();
    let faulty = Faulty::start(
        &reg.host,
        vec![
            rule("HEAD", "/manifests/", Fault::Status(503), 2),
            rule("GET", "/tags/list", Fault::Reset(2), 1),
            rule("DELETE", "/manifests/", Fault::Status(502), 1),
            // The registry acts, the answer is lost: the retry must cope.
            rule("PUT", "/manifests/", Fault::LoseAnswer, 1),
            // The probe of delete support passes; the placeholder's DELETE
            // loses its answer.
            rule("DELETE", "/manifests/sha256:", Fault::Delay(Duration::ZERO), 1),
            rule("DELETE", "/manifests/sha256:", Fault::LoseAnswer, 1),
            rule("*", "/", Fault::Delay(Duration::from_millis(50)), usize::MAX),
        ],
    );
    let r = run(
        &Env::new(),
        UNTAG,
        &[
            &format!("{}/acme/web:latest", faulty.host()),
            "--apply",
            "--json",
            "--timeout",
            "20",
        ],
    );
    let v = json(&r, "untag under faults");
    assert_eq!(v[0]["digest"], d2);
    assert_eq!(v[0]["remaining_tags"], serde_json::json!(["2222222"]));
    assert_eq!(v[0]["applied"], true);
    assert_eq!(tags(&reg, "acme/web"), ["1111111", "2222222"]);
    assert_eq!(
        manifest_digest(&reg, "acme/web", &d2).as_deref(),
        Some(d2.as_str()),
        "the digest stays"
    );
    assert_eq!(
        manifest_digest(&reg, "acme/web", "2222222").as_deref(),
        Some(d2.as_str()),
        "its other tag still points to it"
    );
}

#[test]
fn registry_untag_interrupted_keeps_the_digest_and_a_rerun_completes() {
    let reg = registry_with_images();
    let d2 = manifest_digest(&reg, "acme/web", "2222222").unwrap();
    let d1 = manifest_digest(&reg, "acme/web", "1111111").unwrap();
    // Each stage in turn never answers; then a rerun without faults.
    for (stage, method, path) in [
        ("HEAD of the tag", "HEAD", "/manifests/latest"),
        ("tag list", "GET", "/tags/list"),
        ("probe of delete support", "DELETE", "/manifests/sha256:"),
        ("placeholder PUT", "PUT", "/manifests/latest"),
        ("placeholder DELETE", "DELETE", "/manifests/sha256:"),
    ] {
        push(
            &reg.repo("acme/web:latest"),
            &labelled(&revision("2222222"), "second", "2026-01-26T01:00:00Z"),
        );
        assert_eq!(
            manifest_digest(&reg, "acme/web", "latest").as_deref(),
            Some(d2.as_str())
        );
        let mut rules = vec![rule(method, path, Fault::Hang, usize::MAX)];
        if stage == "placeholder DELETE" {
            // The probe before it passes.
            rules.insert(0, rule(method, path, Fault::Delay(Duration::ZERO), 1));
        }
        let faulty = Faulty::start(&reg.host, rules);
        let target = format!("{}/acme/web:latest", faulty.host());
        let r = run(&Env::new(), UNTAG, &[&target, "--apply", "--timeout", "1"]);
        assert_failure(&r, 5, stage);
        if stage == "placeholder DELETE" {
            assert!(r.err.contains("the tag points to `"), "{stage}: {}", r.err);
            assert_eq!(
                manifest_digest(&reg, "acme/web", "latest").as_deref(),
                Some(d2.as_str()),
                "{stage}: the tag is back on its digest"
            );
        }
        assert!(r.took < Duration::from_secs(3), "{stage}: took {:?}", r.took);
        for d in [&d1, &d2] {
            assert_eq!(
                manifest_digest(&reg, "acme/web", d).as_deref(),
                Some(d.as_str()),
                "{stage}: digest {d} stays"
            );
        }
        faulty.off();
        let r = run(&Env::new(), UNTAG, &[&target, "--apply", "--json"]);
        assert_eq!(json(&r, stage)[0]["applied"], true, "{stage}");
        assert_eq!(tags(&reg, "acme/web"), ["1111111", "2222222"], "{stage}");
        assert_eq!(
            manifest_digest(&reg, "acme/web", "2222222").as_deref(),
            Some(d2.as_str())
        );
    }
}

/// `registry_untag --apply` of `acme/web:latest` where the probe of delete
/// support passes and the placeholder's DELETE answers 405, with `more`
/// rules after those: the registry, the digest `latest` pointed to, the
/// fault server and the run.
fn untag_latest_with_the_placeholder_delete_refused(more: Vec<Rule>) -> (Registry, String, Faulty, Run) {
    let reg = registry_with_images();
    let d2 = manifest_digest(&reg, "acme/web", "latest").unwrap();
    let mut rules = vec![
        rule("DELETE", "/manifests/sha256:", Fault::Delay(Duration::ZERO), 1),
        rule("DELETE", "/manifests/sha256:", Fault::Status(405), 1),
    ];
    rules.extend(more);
    let faulty = Faulty::start(&reg.host, rules);
    let target = format!("{}/acme/web:latest", faulty.host());
    let r = run(&Env::new(), UNTAG, &[&target, "--apply"]);
    (reg, d2, faulty, r)
}

/// Deletes pass the probe but the placeholder's DELETE is refused (a proxy
/// or policy that allows some deletes): the tag is put back on its digest
/// and the run fails, rather than leaving the tag on the placeholder.
#[test]
fn registry_untag_puts_the_tag_back_when_the_placeholder_cannot_be_deleted() {
    let (reg, d2, _, r) = untag_latest_with_the_placeholder_delete_refused(vec![]);
    assert_failure(&r, 1, "placeholder DELETE refused");
    assert!(
        r.err.contains("deleting the placeholder manifest `sha256:")
            && r.err.contains(&format!("the tag points to `{d2}` again")),
        "{}",
        r.err
    );
    assert_eq!(tags(&reg, "acme/web"), ["1111111", "2222222", "latest"]);
    assert_eq!(
        manifest_digest(&reg, "acme/web", "latest").as_deref(),
        Some(d2.as_str()),
        "the tag is back on its digest"
    );
}

/// The placeholder's DELETE is refused, yet the registry deleted it (and
/// with it the tag, as distribution 2.x does): looked at again, the tag is
/// gone, so it is untagged; nothing is put back.
#[test]
fn registry_untag_counts_a_tag_gone_after_a_refused_placeholder_delete_as_untagged() {
    let reg = registry_with_images();
    let d2 = manifest_digest(&reg, "acme/web", "latest").unwrap();
    let faulty = Faulty::start(
        &reg.host,
        vec![
            rule("DELETE", "/manifests/sha256:", Fault::Delay(Duration::ZERO), 1),
            rule("DELETE", "/manifests/sha256:", Fault::ActedThenStatus(403), 1),
        ],
    );
    let target = format!("{}/acme/web:latest", faulty.host());
    let r = run(&Env::new(), UNTAG, &[&target, "--apply", "--json"]);
    let v = json(&r, "placeholder deleted, answer refused");
    assert_eq!(v[0]["applied"], true, "{v}");
    assert_eq!(v[0]["method"], "placeholder", "{v}");
    assert_eq!(tags(&reg, "acme/web"), ["1111111", "2222222"]);
    assert_eq!(manifest_digest(&reg, "acme/web", &d2).as_deref(), Some(d2.as_str()));
    assert_eq!(
        faulty.count("PUT", "/manifests/latest"),
        1,
        "the placeholder, nothing put back"
    );
}

/// The placeholder's DELETE is refused, and someone else already pointed
/// the tag back at its digest: it is left so (exit 4, the DELETE's 403),
/// and nothing is written over it.
#[test]
fn registry_untag_leaves_a_tag_already_back_on_its_digest() {
    let reg = registry_with_images();
    let d2 = manifest_digest(&reg, "acme/web", "latest").unwrap();
    let back = Fault::MoveTag(
        reg.host.clone(),
        "2222222",
        "latest",
        Some(Box::new(Fault::Status(403))),
    );
    let faulty = Faulty::start(
        &reg.host,
        vec![
            rule("DELETE", "/manifests/sha256:", Fault::Delay(Duration::ZERO), 1),
            rule("DELETE", "/manifests/sha256:", back, 1),
        ],
    );
    let target = format!("{}/acme/web:latest", faulty.host());
    let r = run(&Env::new(), UNTAG, &[&target, "--apply"]);
    assert_failure(&r, 4, "tag back on its digest");
    assert!(r.err.contains(&format!("the tag points to `{d2}` again")), "{}", r.err);
    assert_eq!(
        manifest_digest(&reg, "acme/web", "latest").as_deref(),
        Some(d2.as_str())
    );
    assert_eq!(
        faulty.count("PUT", "/manifests/latest"),
        1,
        "the placeholder, nothing put back"
    );
}

/// The placeholder's DELETE is refused and the tag cannot be read again:
/// it is not written blind (exit 5), and the error says how to look and
/// how to point it back.
#[test]
fn registry_untag_does_not_put_back_a_tag_it_cannot_read() {
    let reg = registry_with_images();
    let d2 = manifest_digest(&reg, "acme/web", "latest").unwrap();
    let deleted = Arc::new(AtomicBool::new(false));
    let faulty = Faulty::start(
        &reg.host,
        vec![
            rule("DELETE", "/manifests/sha256:", Fault::Delay(Duration::ZERO), 1),
            rule(
                "DELETE",
                "/manifests/sha256:",
                Fault::Arm(deleted.clone(), Box::new(Fault::Status(403))),
                1,
            ),
            rule(
                "HEAD",
                "/manifests/latest",
                Fault::IfArmed(deleted, Box::new(Fault::Status(403))),
                usize::MAX,
            ),
        ],
    );
    let target = format!("{}/acme/web:latest", faulty.host());
    let r = run(&Env::new(), UNTAG, &[&target, "--apply"]);
    assert_failure(&r, 5, "tag unreadable after the refused DELETE");
    assert!(
        r.err
            .contains(&format!("and the tag could not be read again to put it back on `{d2}`")),
        "{}",
        r.err
    );
    assert!(
        r.err.contains(&format!("`crane digest {target}`"))
            && r.err
                .contains(&format!("`crane tag {}/acme/web@{d2} latest`", faulty.host())),
        "{}",
        r.err
    );
    assert_eq!(
        faulty.count("PUT", "/manifests/latest"),
        1,
        "the placeholder, nothing put back"
    );
    let now = manifest_digest(&reg, "acme/web", "latest").unwrap();
    assert_ne!(now, d2, "the tag is on the placeholder, as the error says");
}

/// Neither the placeholder's DELETE nor putting the tag back works: exit 5,
/// and the error says where the tag points and how to point it back.
#[test]
fn registry_untag_says_so_when_the_tag_is_left_on_the_placeholder() {
    let (reg, d2, faulty, r) = untag_latest_with_the_placeholder_delete_refused(vec![
        rule("PUT", "/manifests/latest", Fault::Delay(Duration::ZERO), 1),
        rule("PUT", "/manifests/latest", Fault::Status(403), 1),
    ]);
    assert_failure(&r, 5, "placeholder DELETE and restore refused");
    assert!(r.err.contains("the tag now points to the placeholder"), "{}", r.err);
    assert!(
        r.err.contains(&format!(
            "hint: point the tag back by hand, e.g. `crane tag {}/acme/web@{d2} latest`",
            faulty.host()
        )),
        "{}",
        r.err
    );
    let now = manifest_digest(&reg, "acme/web", "latest").unwrap();
    assert_ne!(now, d2, "the fault left the tag on the placeholder, as the error says");
}

// ---- registry_cleanup -----------------------------------------------------------

const CLEANUP: &str = env!("CARGO_BIN_EXE_registry_cleanup");

/// `acme/web` with `p1` (deployed in dev), `latest` (kept by tag), `n1` (the
/// newest: kept by keep_last 1) and `o1`..`o3` (to delete); a policy and the
/// dev deploy state naming images on `host` (the fault server's).
struct CleanupFixture {
    reg: Registry,
    dir: tempfile::TempDir,
    digests: std::collections::BTreeMap<&'static str, String>,
}

impl CleanupFixture {
    fn new() -> CleanupFixture {
        let reg = Registry::start();
        let mut digests = std::collections::BTreeMap::new();
        for (name, day) in [("p1", 1), ("latest", 2), ("o1", 3), ("o2", 4), ("o3", 5), ("n1", 10)] {
            let d = push(
                &reg.repo(&format!("acme/web:{name}")),
                &labelled(
                    &revision(&format!("{day:07}")),
                    name,
                    &format!("2025-01-{day:02}T00:00:00Z"),
                ),
            );
            digests.insert(name, d.to_string());
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("policy.yml"),
            "workspaces: [dev]\ndefaults: {keep_last: 1, keep_younger_than: 0s, keep_tags: ['^latest$'], \
             protect_history: 1, keep_undated: true}\n",
        )
        .unwrap();
        CleanupFixture { reg, dir, digests }
    }

    fn run(&self, host: &str, args: &[&str]) -> Run {
        let state = serde_json::json!({"workspace": "dev", "collected_at": "2025-03-02T00:00:00Z", "hosts": ["web1"],
            "records": [{"host": "web1", "path": "/opt/acme/web/deploy-info.yml", "app": "web", "workspace": "dev",
                "image": format!("{host}/acme/web"), "tag": "p1", "digest": self.digests["p1"],
                "deployed_at": "2025-03-01T00:00:00Z", "history": []}]});
        let state_file = self.dir.path().join("dev.json");
        std::fs::write(&state_file, state.to_string()).unwrap();
        let policy = self.dir.path().join("policy.yml");
        let mut all = vec![
            host,
            "--policy",
            policy.to_str().unwrap(),
            "--protected",
            state_file.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        run(&Env::new(), CLEANUP, &all)
    }

    /// The fixture names whose digest is still served.
    fn present(&self) -> Vec<&'static str> {
        self.digests
            .iter()
            .filter(|(_, d)| manifest_digest(&self.reg, "acme/web", d).is_some())
            .map(|(n, _)| *n)
            .collect()
    }
}

#[test]
fn registry_cleanup_apply_under_faults_never_deletes_what_it_keeps_and_a_rerun_completes() {
    let f = CleanupFixture::new();
    let all = ["latest", "n1", "o1", "o2", "o3", "p1"];
    let kept = ["latest", "n1", "p1"];
    // A scan that cannot be trusted (a manifest body that does not match its
    // digest): exit 5 and not one DELETE.
    let faulty = Faulty::start(
        &f.reg.host,
        vec![rule("GET", "/manifests/", Fault::Corrupt, usize::MAX)],
    );
    let r = f.run(faulty.host(), &["--apply", "--timeout", "2"]);
    assert_failure(&r, 5, "corrupt manifests");
    assert_eq!(faulty.count("DELETE", "/"), 0);
    assert_eq!(f.present(), all);

    // Transient faults everywhere, answers lost after the registry acted,
    // and one DELETE that never returns.
    let faulty = Faulty::start(
        &f.reg.host,
        vec![
            rule("GET", "/_catalog", Fault::Status(503), 2),
            rule("GET", "/tags/list", Fault::Status(502), 2),
            rule("GET", "/tags/list", Fault::Reset(3), 1),
            rule("GET", "/manifests/", Fault::Reset(8), 2),
            rule("HEAD", "/manifests/", Fault::Status(503), 2),
            rule("GET", "/blobs/", Fault::RetryAfter(429, "0".into()), 2),
            rule("DELETE", "/manifests/", Fault::Status(503), 1),
            rule("DELETE", "/manifests/", Fault::LoseAnswer, 1),
            rule("DELETE", "/manifests/", Fault::Hang, 1),
            rule("*", "/", Fault::Delay(Duration::from_millis(30)), usize::MAX),
        ],
    );
    let r = f.run(
        faulty.host(),
        &["--apply", "--json", "--timeout", "2", "--concurrency", "1"],
    );
    assert_eq!(r.code, 5, "a DELETE that never answered: {}", r.err);
    assert!(!r.err.contains("panicked"), "{}", r.err);
    let present = f.present();
    for k in kept {
        assert!(
            present.contains(&k),
            "`{k}` must never be deleted: present {present:?}\n{}",
            r.err
        );
    }
    // Faults gone: the rerun completes, and deletes exactly the rest.
    faulty.off();
    let r = f.run(faulty.host(), &["--apply", "--json"]);
    let v = json(&r, "rerun");
    assert_eq!(f.present(), kept, "{v}");
    // A third run has nothing left to do.
    let r = f.run(faulty.host(), &["--apply", "--json"]);
    json(&r, "third run");
    assert_eq!(f.present(), kept);
}
