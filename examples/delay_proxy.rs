//! A loopback HTTP proxy that adds a fixed delay to every request before
//! passing it to an upstream registry: a stand-in for a registry across a
//! network, for the overview benchmark (`bench/overview.sh`).
//!
//! ```text
//! delay_proxy LISTEN_PORT UPSTREAM_HOST:PORT DELAY_MS
//! ```
//! Listens on 127.0.0.1 only; the upstream must be on loopback too. Keeps
//! connections alive (HTTP/1.1), so the delay is per request, as a network
//! round trip would be once connections are open. Counts the requests it
//! passes on: `GET /_delay_proxy/count` answers the count (not delayed,
//! not counted, not passed on).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

type Body = Full<Bytes>;

async fn handle(
    req: Request<Incoming>,
    upstream: Arc<String>,
    http: reqwest::Client,
    delay: Duration,
    count: Arc<AtomicU64>,
) -> Result<Response<Body>, Infallible> {
    if req.uri().path() == "/_delay_proxy/count" {
        let n = count.load(Ordering::Relaxed);
        return Ok(Response::new(Full::new(Bytes::from(format!("{n}\n")))));
    }
    count.fetch_add(1, Ordering::Relaxed);
    tokio::time::sleep(delay).await;
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
    let mut out = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if k != "connection" && k != "transfer-encoding" {
            out = out.header(k, v);
        }
    }
    let body = resp.bytes().await.unwrap_or_default();
    Ok(out.body(Full::new(body)).unwrap())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(port), Some(upstream), Some(ms)) = (
        args.first().and_then(|p| p.parse::<u16>().ok()),
        args.get(1).cloned(),
        args.get(2).and_then(|m| m.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: delay_proxy LISTEN_PORT UPSTREAM_HOST:PORT DELAY_MS");
        std::process::exit(2);
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
            let (upstream, http, count) = (upstream.clone(), http.clone(), count.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(req, upstream.clone(), http.clone(), delay, count.clone()));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(sock), svc).await;
            });
        }
    });
}
