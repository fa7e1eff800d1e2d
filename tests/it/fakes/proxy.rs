//! A fault-injecting forward proxy in front of a *real* registry (Verdaccio, distribution):
//! requests pass through unchanged unless a [`super::Fault`] is queued for their route, so
//! fault tests exercise real registry behaviour and the registry's own log still shows which
//! requests reached it. Forwarding uses a blocking socket inside the fake's task: fine for
//! tests (the upstream is another process), one request per connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::{FakeServer, Request, Response};

/// Starts a [`FakeServer`] that forwards to `upstream` (`127.0.0.1:PORT`).
pub async fn start(upstream: &str) -> FakeServer {
    let upstream = upstream.to_string();
    FakeServer::start(move |req: &Request| forward(&upstream, req)).await
}

/// Sends `req` to `upstream` as is and returns its answer (502 when it cannot): for fakes
/// that put their own behaviour (auth, say) in front of a real registry.
pub fn forward(upstream: &str, req: &Request) -> Response {
    match try_forward(upstream, req) {
        Ok(r) => r,
        Err(e) => Response::text(502, "text/plain", format!("proxy: {e}")),
    }
}

fn try_forward(upstream: &str, req: &Request) -> Result<Response, String> {
    let mut s = TcpStream::connect(upstream).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {upstream}\r\n",
        req.method, req.target
    );
    for (k, v) in &req.headers {
        if matches!(
            k.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive"
        ) {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "connection: close\r\ncontent-length: {}\r\n\r\n",
        req.body.len()
    ));
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(&req.body).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    parse_response(&raw, &req.method)
}

fn parse_response(raw: &[u8], method: &str) -> Result<Response, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no response head")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("bad status line")?;
    let mut headers = Vec::new();
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim().to_string();
        if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
            continue;
        }
        // The fake writes its own Content-Length, except for HEAD (no body): keep the
        // registry's there, it is the manifest size.
        if (k == "content-length" && method != "HEAD") || k == "connection" || k == "keep-alive" {
            continue;
        }
        headers.push((k, v));
    }
    let body = &raw[end + 4..];
    let body = if method == "HEAD" {
        Vec::new()
    } else if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&b[..nl]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size: {e}"))?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}
