//! A loopback HTTP proxy that adds a fixed delay to every request before
//! passing it to an upstream registry: a stand-in for a registry across a
//! network, for the overview benchmark (`bench/overview.sh`).
//!
//! ```text
//! delay_proxy LISTEN_PORT UPSTREAM_HOST:PORT DELAY_MS [replay]
//! ```
//! Listens on 127.0.0.1 only; the upstream must be on loopback too. Keeps
//! connections alive (HTTP/1.1), so the delay is per request, as a network
//! round trip would be once connections are open. Counts the requests it
//! passes on: `GET /_delay_proxy/count` answers the count (not delayed,
//! not counted, not passed on).
//!
//! With `replay`, a successful GET or HEAD answer is remembered (by method,
//! path and `Accept`) and the same request is answered from memory after
//! the delay, without the upstream: the benchmark then measures the client
//! against the latency alone, not against a registry that shares the
//! client's CPU cores.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

type Body = Full<Bytes>;

/// A remembered answer: status, headers, body.
type Stored = (
    hyper::StatusCode,
    Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    Bytes,
);

/// Remembered answers by `METHOD path accept`, when replaying.
type Replay = Option<Arc<Mutex<HashMap<String, Stored>>>>;

fn answer(stored: &Stored) -> Response<Body> {
    let mut out = Response::builder().status(stored.0);
    for (k, v) in &stored.1 {
        out = out.header(k, v);
    }
    out.body(Full::new(stored.2.clone())).unwrap()
}

async fn handle(
    req: Request<Incoming>,
    upstream: Arc<String>,
    http: reqwest::Client,
    delay: Duration,
    count: Arc<AtomicU64>,
    replay: Replay,
) -> Result<Response<Body>, Infallible> {
    if req.uri().path() == "/_delay_proxy/count" {
        let n = count.load(Ordering::Relaxed);
        return Ok(Response::new(Full::new(Bytes::from(format!("{n}\n")))));
    }
    count.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(delay).await;
    let key = replay.as_ref().and_then(|_| {
        let m = req.method();
        (m == hyper::Method::GET || m == hyper::Method::HEAD).then(|| {
            let accept = req.headers().get("accept").and_then(|v| v.to_str().ok()).unwrap_or("");
            format!("{m} {} {accept}", req.uri())
        })
    });
    if let (Some(memory), Some(key)) = (&replay, &key)
        && let Some(stored) = memory.lock().unwrap().get(key)
    {
        return Ok(answer(stored));
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut r = http.request(parts.method.clone(), format!("http://{upstream}{path}"));
    for (k, v) in &parts.headers {
        if k != "host" && k != "connection" && k != "content-length" {
            r = r.header(k, v);
        }
    }
    if !body.is_empty() {
        r = r.body(body);
    }
    let resp = match r.send().await {
        Ok(resp) => resp,
        Err(e) => {
            let mut out = Response::new(Full::new(Bytes::from(e.to_string())));
            *out.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            return Ok(out);
        }
    };
    let status = resp.status();
    let headers: Vec<_> = resp
        .headers()
        .iter()
        .filter(|(k, _)| *k != "connection" && *k != "transfer-encoding")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let body = resp.bytes().await.unwrap_or_default();
    let stored = (status, headers, body);
    if let (Some(memory), Some(key), true) = (&replay, key, status.is_success()) {
        memory.lock().unwrap().insert(key, stored.clone());
    }
    Ok(answer(&stored))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(port), Some(upstream), Some(ms)) = (
        args.first().and_then(|p| p.parse::<u16>().ok()),
        args.get(1).cloned(),
        args.get(2).and_then(|m| m.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: delay_proxy LISTEN_PORT UPSTREAM_HOST:PORT DELAY_MS [replay]");
        std::process::exit(2);
    };
    let replay: Replay = match args.get(3).map(String::as_str) {
        None => None,
        Some("replay") => Some(Arc::default()),
        Some(other) => {
            eprintln!("error: the fourth argument is `replay` or nothing, not `{other}`");
            std::process::exit(2);
        }
    };
    let host = upstream.rsplit_once(':').map_or(upstream.as_str(), |(h, _)| h);
    if !(host == "localhost" || host.starts_with("127.")) {
        eprintln!("error: the upstream must be on loopback, not `{upstream}`");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let upstream = Arc::new(upstream);
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let delay = Duration::from_millis(ms);
        let count = Arc::new(AtomicU64::new(0));
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let (upstream, http, count, replay) = (upstream.clone(), http.clone(), count.clone(), replay.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    handle(
                        req,
                        upstream.clone(),
                        http.clone(),
                        delay,
                        count.clone(),
                        replay.clone(),
                    )
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(sock), svc).await;
            });
        }
    });
}
