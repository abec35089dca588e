//! A small HTTP/1.1 server for the protocol corners the real registry
//! cannot show: injected faults in front of it (wrong bodies, 5xx, 429,
//! resets, truncation, hangs, latency), bearer-token challenges, and
//! tag-list paging. One request per connection (`Connection: close`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as received.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When it was read in full, before the handler saw it.
    pub at: Instant,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response to send.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Resp {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// What to do with one request.
pub enum Action {
    /// Pass it to the upstream registry and return its answer.
    Forward,
    /// Answer this instead.
    Respond(Resp),
    /// Forward, then change the answer.
    Mutate(Box<dyn FnOnce(Resp) -> Resp + Send>),
    /// Forward, then send the headers and only this many body bytes, then reset.
    Truncate(usize),
    /// Accept and never answer.
    Hang,
    /// Wait, then forward.
    Delay(Duration),
    /// Wait, then do the other action (a fault that comes late).
    After(Duration, Box<Action>),
}

pub type Handler = Arc<dyn Fn(&Req) -> Action + Send + Sync>;

/// A running fault server; it stops when the test process ends.
pub struct FaultServer {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Every request received, in order.
    pub log: Arc<Mutex<Vec<Req>>>,
}

impl FaultServer {
    /// Starts the server in front of `upstream` (`HOST:PORT`, plain HTTP).
    pub fn start(upstream: Option<String>, handler: Handler) -> FaultServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let host = std_listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let http = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap();
                loop {
                    let Ok((sock, _)) = listener.accept().await else {
                        continue;
                    };
                    let handler = handler.clone();
                    let log = log2.clone();
                    let http = http.clone();
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let _ = serve(sock, handler, log, http, upstream).await;
                    });
                }
            });
        });
        FaultServer { host, log }
    }

    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

async fn read_request(sock: &mut TcpStream) -> std::io::Result<Option<Req>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Req {
        method,
        path,
        headers,
        body,
        at: Instant::now(),
    }))
}

async fn forward(http: &reqwest::Client, upstream: &Option<String>, req: &Req) -> Resp {
    let Some(up) = upstream else {
        return Resp::new(502, "no upstream");
    };
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
    let mut r = http.request(method, format!("http://{up}{}", req.path));
    for (k, v) in &req.headers {
        if !matches!(
            k.to_ascii_lowercase().as_str(),
            "host" | "content-length" | "connection"
        ) {
            r = r.header(k, v);
        }
    }
    if !req.body.is_empty() {
        r = r.body(req.body.clone());
    }
    match r.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "connection" | "transfer-encoding"))
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            Resp { status, headers, body }
        }
        Err(e) => Resp::new(502, e.to_string()),
    }
}

async fn write_response(
    sock: &mut TcpStream,
    req: &Req,
    resp: &Resp,
    body_limit: Option<usize>,
) -> std::io::Result<()> {
    let head_only = req.method == "HEAD";
    let mut out = format!("HTTP/1.1 {} X\r\n", resp.status);
    let mut has_len = false;
    for (k, v) in &resp.headers {
        if k.eq_ignore_ascii_case("content-length") {
            if !head_only {
                continue;
            }
            has_len = true;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !head_only || !has_len {
        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    sock.write_all(out.as_bytes()).await?;
    if !head_only {
        let n = body_limit.unwrap_or(resp.body.len()).min(resp.body.len());
        sock.write_all(&resp.body[..n]).await?;
    }
    sock.flush().await
}

async fn serve(
    mut sock: TcpStream,
    handler: Handler,
    log: Arc<Mutex<Vec<Req>>>,
    http: reqwest::Client,
    upstream: Option<String>,
) -> std::io::Result<()> {
    let Some(req) = read_request(&mut sock).await? else {
        return Ok(());
    };
    log.lock().unwrap().push(req.clone());
    let mut action = handler(&req);
    while let Action::After(d, then) = action {
        tokio::time::sleep(d).await;
        action = *then;
    }
    match action {
        Action::Forward => {
            let resp = forward(&http, &upstream, &req).await;
            write_response(&mut sock, &req, &resp, None).await?;
        }
        Action::Respond(resp) => write_response(&mut sock, &req, &resp, None).await?,
        Action::Mutate(f) => {
            let resp = f(forward(&http, &upstream, &req).await);
            write_response(&mut sock, &req, &resp, None).await?;
        }
        Action::Truncate(n) => {
            let resp = forward(&http, &upstream, &req).await;
            write_response(&mut sock, &req, &resp, Some(n)).await?;
            // Linger 0 resets the connection at once (it never blocks).
            #[allow(deprecated)]
            let _ = sock.set_linger(Some(Duration::ZERO));
        }
        Action::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Action::Delay(d) => {
            tokio::time::sleep(d).await;
            let resp = forward(&http, &upstream, &req).await;
            write_response(&mut sock, &req, &resp, None).await?;
        }
        Action::After(..) => unreachable!("waited for above"),
    }
    let _ = sock.shutdown().await;
    Ok(())
}
