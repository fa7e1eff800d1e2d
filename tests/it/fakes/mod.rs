//! Loopback fakes of registry web APIs, for tests that must not touch the network.
//!
//! [`FakeServer`] is a minimal HTTP/1.1 server on `127.0.0.1:<random port>` (one request per
//! connection, `Connection: close`, `Content-Length` bodies) that hands each request to a
//! [`Handler`], logs it, and can be told to misbehave: [`FakeServer::inject`] queues
//! [`Fault`]s per route pattern, each applying to the next matching request only.
//! Dropping the server stops it (pending delayed answers are abandoned).
//!
//! * [`crates`] — a contract fake of the crates.io web API.
//! * [`pypi`] — a static PyPI (JSON API and Simple API).
//! * [`proxy`] — a fault-injecting proxy in front of a real registry.

#![allow(dead_code)]

pub mod crates;
pub mod github;
pub mod kube;
pub mod proxy;
pub mod pypi;
pub mod slack;
pub mod vap;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The body [`Fault::Malformed`] answers with: a JSON document cut short.
pub const MALFORMED_BODY: &str = r#"{"version":{"num":"1.0.0","yanked":tr"#;

/// Largest request head (request line + headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// A request as the fake received it.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Upper-case method.
    pub method: String,
    /// Path and query, exactly as sent (`/api/v1/crates/foo?x=1`).
    pub target: String,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The raw query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// A query parameter, percent-decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| {
                percent_encoding::percent_decode_str(&v.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
    }

    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Anything but GET/HEAD/OPTIONS.
    pub fn is_mutating(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }
}

/// An answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// `application/json` answer.
    pub fn json(status: u16, v: &Value) -> Self {
        Self::text(status, "application/json", v.to_string())
    }

    /// An answer with the given content type.
    pub fn text(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into().into_bytes(),
        }
    }

    /// No body (e.g. 204).
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::empty(status).with_header("location", location)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }
}

/// A scripted misbehaviour, applied to the next request matching its route pattern.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Answer `code` with `body` (as `application/json`) and an optional `Retry-After`.
    Status {
        code: u16,
        retry_after: Option<String>,
        body: String,
    },
    /// Wait this long before answering normally (longer than the client's timeout → the
    /// client times out).
    Delay(Duration),
    /// Close the connection (with a TCP reset) without answering.
    Reset,
    /// Answer `200 application/json` with [`MALFORMED_BODY`].
    Malformed,
}

/// Serves requests for a [`FakeServer`].
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: &Request) -> Response;

    /// A fault for `req` when none is queued: lets a handler model a lasting outage (e.g.
    /// [`Fault::Reset`] on every request while it is "down"). Default: none.
    fn fault(&self, _req: &Request) -> Option<Fault> {
        None
    }
}

impl<F> Handler for F
where
    F: Fn(&Request) -> Response + Send + Sync + 'static,
{
    fn handle(&self, req: &Request) -> Response {
        self(req)
    }
}

/// `"[METHOD ]/path/glob"`: `*` matches any run of characters (also `/`); the method, when
/// given, must match (case-insensitive). Matched against the path without the query.
#[derive(Clone, Debug)]
struct RoutePattern {
    method: Option<String>,
    glob: String,
}

impl RoutePattern {
    fn parse(p: &str) -> Self {
        let p = p.trim();
        match p.split_once(' ') {
            Some((m, g)) if !m.starts_with('/') && m != "*" => RoutePattern {
                method: Some(m.to_ascii_uppercase()),
                glob: g.trim().to_string(),
            },
            _ => RoutePattern {
                method: None,
                glob: p.to_string(),
            },
        }
    }

    fn matches(&self, req: &Request) -> bool {
        self.method.as_deref().is_none_or(|m| m == req.method) && glob(&self.glob, req.path())
    }
}

/// Wildcard match where `*` matches any (possibly empty) run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<Request>>,
    faults: Mutex<Vec<(RoutePattern, VecDeque<Fault>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler must not hide the log from the assertions that follow.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn take_fault(&self, req: &Request) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        faults
            .iter_mut()
            .find(|(p, q)| !q.is_empty() && p.matches(req))
            .and_then(|(_, q)| q.pop_front())
    }
}

/// A loopback HTTP/1.1 server. See the module doc.
pub struct FakeServer {
    url: String,
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Binds `127.0.0.1:0` and serves `handler` until dropped. Must run inside a tokio
    /// runtime.
    pub async fn start(handler: impl Handler) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the fake server");
        let addr = listener.local_addr().expect("fake server address");
        let shared = Arc::new(Shared::default());
        let handler: Arc<dyn Handler> = Arc::new(handler);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let accept_shared = shared.clone();
        let accept_task = tokio::spawn(async move {
            let mut stop_rx = stop_rx;
            loop {
                tokio::select! {
                    _ = stop_rx.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        tokio::spawn(serve_connection(
                            stream,
                            accept_shared.clone(),
                            handler.clone(),
                            stop_rx.clone(),
                        ));
                    }
                }
            }
        });
        FakeServer {
            url: format!("http://{addr}"),
            shared,
            stop,
            accept_task,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queues `fault` for the next request matching `route` (`"PATCH /api/v1/crates/*"`,
    /// `"/simple/*"`, `"*"`). Faults of one pattern apply in the order queued; when several
    /// patterns match, the one injected first wins.
    pub fn inject(&self, route: &str, fault: Fault) {
        let pattern = RoutePattern::parse(route);
        let mut faults = lock(&self.shared.faults);
        match faults
            .iter_mut()
            .find(|(p, _)| p.method == pattern.method && p.glob == pattern.glob)
        {
            Some((_, q)) => q.push_back(fault),
            None => faults.push((pattern, VecDeque::from([fault]))),
        }
    }

    /// Faults queued and not yet applied.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).iter().map(|(_, q)| q.len()).sum()
    }

    /// Every request received so far (faulted ones included), in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.log).clone()
    }

    /// Number of requests received.
    pub fn calls(&self) -> usize {
        lock(&self.shared.log).len()
    }

    /// Number of requests received with a method other than GET/HEAD/OPTIONS.
    pub fn mutating_calls(&self) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.is_mutating())
            .count()
    }

    /// Requests whose method and path (without query) match `route` (same syntax as
    /// [`Self::inject`]).
    pub fn requests_matching(&self, route: &str) -> Vec<Request> {
        let p = RoutePattern::parse(route);
        lock(&self.shared.log)
            .iter()
            .filter(|r| p.matches(r))
            .cloned()
            .collect()
    }

    /// Forgets the request log (not the queued faults).
    pub fn clear_log(&self) {
        lock(&self.shared.log).clear();
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.accept_task.abort();
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    handler: Arc<dyn Handler>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let req = match tokio::time::timeout(Duration::from_secs(30), read_request(&mut stream)).await {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return,
        Ok(Err(msg)) => {
            let resp = Response::text(400, "text/plain", msg);
            let _ = write_response(&mut stream, "GET", &resp).await;
            return;
        }
        Err(_) => return,
    };
    lock(&shared.log).push(req.clone());
    let resp = match shared.take_fault(&req).or_else(|| handler.fault(&req)) {
        None => handler.handle(&req),
        Some(Fault::Reset) => {
            let _ = stream.set_zero_linger();
            drop(stream);
            return;
        }
        Some(Fault::Status {
            code,
            retry_after,
            body,
        }) => {
            let mut r = Response::text(code, "application/json", body);
            if let Some(ra) = retry_after {
                r = r.with_header("retry-after", &ra);
            }
            r
        }
        Some(Fault::Malformed) => Response::text(200, "application/json", MALFORMED_BODY),
        Some(Fault::Delay(d)) => {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = stop.changed() => return,
            }
            handler.handle(&req)
        }
    };
    let _ = write_response(&mut stream, &req.method, &resp).await;
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Reads one request. `Ok(None)`: the client closed without sending one.
async fn read_request(stream: &mut TcpStream) -> Result<Option<Request>, String> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find_head_end(&buf) {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err("request head too large".into());
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err("connection closed mid-request".into())
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line {request_line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported protocol {version:?}"));
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}"));
        };
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    if header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        return Err("chunked request bodies are not supported by the fake".into());
    }
    let len = match header("content-length") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| format!("bad content-length {l:?}"))?,
        None => 0,
    };
    if len > MAX_BODY {
        return Err("request body too large".into());
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed mid-body".into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Ok(Some(Request {
        method: method.to_ascii_uppercase(),
        target: target.to_string(),
        headers,
        body,
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

async fn write_response(
    stream: &mut TcpStream,
    method: &str,
    resp: &Response,
) -> std::io::Result<()> {
    let no_body = method == "HEAD" || resp.status == 204 || resp.status == 304;
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !no_body {
        head.push_str(&format!("content-length: {}\r\n", resp.body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    if !no_body {
        stream.write_all(&resp.body).await?;
    }
    stream.flush().await?;
    stream.shutdown().await
}

#[cfg(test)]
mod glob_tests {
    use super::glob;

    #[test]
    fn globbing() {
        assert!(glob("*", "/anything/at/all"));
        assert!(glob("/api/v1/crates/*", "/api/v1/crates/foo/1.0.0"));
        assert!(glob("/api/*/yank", "/api/v1/crates/foo/1.0.0/yank"));
        assert!(!glob("/api/*/yank", "/api/v1/crates/foo/1.0.0/unyank/x"));
        assert!(glob("/simple/foo/", "/simple/foo/"));
        assert!(!glob("/simple/foo/", "/simple/foo"));
    }
}
