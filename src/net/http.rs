//! Shared HTTP plumbing for Recall's registry clients (npm, crates.io, PyPI, OCI, GitHub).
//!
//! The central type is [`RequestRecord`]: a request as plain data. The live path builds a
//! record and sends it (re-adding credentials at send time, see [`send_record`]); a rehearsal
//! builds the very same record and stores it instead. Credentials therefore never live in a
//! record: sensitive headers are stored as [`REDACTED`] and skipped when sending.
//!
//! Secrets are [`SecretString`]s. They never appear in a record, in an [`HttpError`]
//! (response bodies are truncated and scrubbed with [`scrub`]), in a `Debug` output or in a
//! log line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Placeholder stored instead of any credential-bearing header value or secret text.
pub const REDACTED: &str = "<redacted>";

/// How many characters of a response body an [`HttpError::Status`] keeps.
pub const ERROR_BODY_LIMIT: usize = 512;

/// User agent sent by every Recall client.
pub const USER_AGENT: &str = concat!("recall/", env!("CARGO_PKG_VERSION"));

/// A request as data: what the live path sends, and what a rehearsal records instead of sending.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    /// Upper-case HTTP method.
    pub method: String,
    /// Absolute URL, path already percent-escaped as it goes on the wire.
    pub url: String,
    /// Extra headers. Credential headers (see [`is_sensitive_header`]) hold [`REDACTED`].
    pub headers: Vec<(String, String)>,
    /// JSON body, if any (sent as `application/json` unless a `content-type` header says
    /// otherwise).
    pub body: Option<serde_json::Value>,
    /// A body that must go on the wire byte for byte (an OCI manifest whose digest is the
    /// hash of these exact bytes). Sent instead of `body` when set; `content-type` comes from
    /// the headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_body: Option<String>,
}

impl RequestRecord {
    /// A record without headers or body. The method is upper-cased.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        RequestRecord {
            method: method.to_ascii_uppercase(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            raw_body: None,
        }
    }

    /// Sets a body sent byte for byte, with its content type.
    pub fn with_raw(mut self, content_type: &str, body: impl Into<String>) -> Self {
        self.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        self.headers
            .push(("content-type".to_string(), content_type.to_string()));
        self.raw_body = Some(body.into());
        self
    }

    /// The value of a (non-sensitive) header of this record.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Adds a header; the value of a sensitive header is replaced by [`REDACTED`].
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let value = if is_sensitive_header(name) {
            REDACTED.to_string()
        } else {
            value.to_string()
        };
        self.headers.push((name.to_ascii_lowercase(), value));
        self
    }

    /// Sets the JSON body.
    pub fn with_json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// True unless the method is GET/HEAD/OPTIONS.
    pub fn is_mutating(&self) -> bool {
        is_mutating(&self.method)
    }
}

/// Errors of a registry HTTP exchange. Never contains credentials.
#[derive(thiserror::Error, Debug)]
pub enum HttpError {
    /// Connect, TLS, timeout or reset: transient.
    #[error("transport error: {0}")]
    Transport(String),
    /// The registry answered with a non-success status.
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        status: u16,
        method: String,
        url: String,
        /// First [`ERROR_BODY_LIMIT`] characters of the body, secrets scrubbed.
        body: String,
        retry_after_ms: Option<u64>,
    },
    /// The answer (or a request we were asked to build) could not be understood.
    #[error("decode error: {0}")]
    Decode(String),
}

impl HttpError {
    /// Transport errors, 429 and 5xx except 501 are worth retrying.
    pub fn is_transient(&self) -> bool {
        match self {
            HttpError::Transport(_) => true,
            HttpError::Status { status, .. } => {
                *status == 429 || (*status >= 500 && *status <= 599 && *status != 501)
            }
            HttpError::Decode(_) => false,
        }
    }

    /// The HTTP status, if the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The registry's `Retry-After`, in milliseconds from when the answer arrived.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            HttpError::Status { retry_after_ms, .. } => *retry_after_ms,
            _ => None,
        }
    }

    /// True for 401/403: the credential was refused.
    pub fn is_auth_refused(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }
}

/// Anything but GET/HEAD/OPTIONS changes state on the registry.
pub fn is_mutating(method: &str) -> bool {
    !matches!(
        method.to_ascii_uppercase().as_str(),
        "GET" | "HEAD" | "OPTIONS"
    )
}

/// Headers whose values are credentials and must never be stored or logged.
pub fn is_sensitive_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization"
            | "proxy-authorization"
            | "cookie"
            | "set-cookie"
            | "npm-otp"
            | "x-api-key"
            | "private-token"
            | "x-auth-token"
    ) || n.contains("token")
        || n.contains("secret")
        || n.contains("password")
}

/// A reqwest client with rustls, the `recall/<version>` user agent and the given timeout.
pub fn build_client(timeout: Duration) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)));
    match builder.build() {
        Ok(c) => c,
        // Building only fails if the TLS backend cannot initialise; fall back to the
        // defaults rather than panic (the default client uses the same backend).
        Err(e) => {
            tracing::warn!(error = %e, "custom HTTP client failed to build; using defaults");
            reqwest::Client::new()
        }
    }
}

/// Replaces every occurrence of each secret (and of `Bearer <anything>`) in `text` by
/// [`REDACTED`].
pub fn scrub(text: &str, secrets: &[&SecretString]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        let s = s.expose_secret();
        if s.len() >= 4 {
            out = out.replace(s, REDACTED);
        }
    }
    // Belt and braces: an echoed Authorization header of some other credential.
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(pos) = find_ascii_ci(rest, "bearer ") {
        let after = pos + "bearer ".len();
        result.push_str(&rest[..after]);
        let tail = &rest[after..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
            .unwrap_or(tail.len());
        if end > 0 {
            result.push_str(REDACTED);
        }
        rest = &tail[end..];
    }
    result.push_str(rest);
    result
}

fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// First `limit` characters of `text`.
pub fn truncate_chars(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Parses a `Retry-After` value (delta-seconds or an HTTP date) into milliseconds from now.
/// A date in the past gives `Some(0)`.
pub fn parse_retry_after(v: &str) -> Option<u64> {
    parse_retry_after_at(v, SystemTime::now())
}

/// [`parse_retry_after`] relative to `now` (for tests).
pub fn parse_retry_after_at(v: &str, now: SystemTime) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(|s| s.saturating_mul(1000));
    }
    let when = parse_http_date(v)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_millis();
    let when_ms = u128::from(when) * 1000;
    Some(u64::try_from(when_ms.saturating_sub(now)).unwrap_or(u64::MAX))
}

/// Parses the three HTTP date formats of RFC 9110 §5.6.7 into Unix seconds:
/// IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`
/// and asctime `Sun Nov  6 08:49:37 1994`.
pub fn parse_http_date(v: &str) -> Option<u64> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        // IMF-fixdate
        [wd, d, m, y, t, "GMT"] if wd.ends_with(',') => {
            (d.parse::<u32>().ok()?, *m, y.parse::<i64>().ok()?, *t)
        }
        // RFC 850
        [wd, dmy, t, "GMT"] if wd.ends_with(',') => {
            let mut it = dmy.split('-');
            let d = it.next()?.parse::<u32>().ok()?;
            let m = it.next()?;
            let y2 = it.next()?.parse::<i64>().ok()?;
            if it.next().is_some() {
                return None;
            }
            let y = if y2 < 100 {
                if y2 < 70 { 2000 + y2 } else { 1900 + y2 }
            } else {
                y2
            };
            (d, m, y, *t)
        }
        // asctime
        [_wd, m, d, t, y] => (d.parse::<u32>().ok()?, *m, y.parse::<i64>().ok()?, *t),
        _ => return None,
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))?;
    let mut hms = time.split(':');
    let h = hms.next()?.parse::<u64>().ok()?;
    let mi = hms.next()?.parse::<u64>().ok()?;
    let s = hms.next()?.parse::<u64>().ok()?;
    if hms.next().is_some() || h > 23 || mi > 59 || s > 60 || day == 0 || day > 31 {
        return None;
    }
    let days = days_from_civil(year, month as u32 + 1, day);
    if days < 0 {
        return None;
    }
    Some(days as u64 * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Response headers (digests, pagination links, content types).
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl HttpResponse {
    /// The body as JSON; an empty body is `null`.
    pub fn json(&self) -> Result<serde_json::Value, HttpError> {
        if self.body.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&self.body).map_err(|e| {
            HttpError::Decode(format!(
                "response is not JSON ({e}): {}",
                truncate_chars(&self.body, 120)
            ))
        })
    }
}

/// Sends `rec` with `client`, adding `secret_headers` (e.g. `Authorization`) at send time.
///
/// Headers stored as [`REDACTED`] in the record are skipped: credentials come only from
/// `secret_headers`. Non-2xx answers become [`HttpError::Status`] with a truncated body in
/// which every secret in `secret_headers` is scrubbed.
pub async fn send_record(
    client: &reqwest::Client,
    rec: &RequestRecord,
    secret_headers: &[(&str, &SecretString)],
) -> Result<HttpResponse, HttpError> {
    let method = reqwest::Method::from_bytes(rec.method.as_bytes())
        .map_err(|_| HttpError::Decode(format!("invalid HTTP method {:?}", rec.method)))?;
    let url = reqwest::Url::parse(&rec.url)
        .map_err(|e| HttpError::Decode(format!("invalid URL {:?}: {e}", rec.url)))?;
    let mut req = client.request(method, url);
    for (k, v) in &rec.headers {
        if v == REDACTED {
            continue;
        }
        req = req.header(k.as_str(), v.as_str());
    }
    for (k, v) in secret_headers {
        let mut value =
            reqwest::header::HeaderValue::from_str(v.expose_secret()).map_err(|_| {
                HttpError::Decode(format!(
                    "credential for header {k} is not a valid header value"
                ))
            })?;
        value.set_sensitive(true);
        req = req.header(*k, value);
    }
    if let Some(raw) = &rec.raw_body {
        req = req.body(raw.clone().into_bytes());
    } else if let Some(body) = &rec.body {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| HttpError::Decode(format!("cannot serialise request body: {e}")))?;
        if rec.header("content-type").is_none() {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        req = req.body(bytes);
    }
    if rec.header("accept").is_none() {
        req = req.header(reqwest::header::ACCEPT, "application/json");
    }

    tracing::debug!(method = %rec.method, url = %rec.url, "registry request");
    let resp = req.send().await.map_err(transport_error)?;
    let status = resp.status().as_u16();
    let retry_after_ms = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let headers = resp.headers().clone();
    let body = resp.text().await.map_err(transport_error)?;
    tracing::debug!(method = %rec.method, url = %rec.url, status, "registry answer");
    if (200..300).contains(&status) {
        return Ok(HttpResponse {
            status,
            headers,
            body,
        });
    }
    let secrets: Vec<&SecretString> = secret_headers.iter().map(|(_, s)| *s).collect();
    Err(HttpError::Status {
        status,
        method: rec.method.clone(),
        url: rec.url.clone(),
        body: truncate_chars(&scrub(&body, &secrets), ERROR_BODY_LIMIT),
        retry_after_ms,
    })
}

pub fn transport_error(e: reqwest::Error) -> HttpError {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    let url = e.url().map(|u| u.to_string()).unwrap_or_default();
    // `without_url` keeps URLs (which never carry credentials: those go in headers, and
    // registry URLs with userinfo are refused) out of the inner message; we add it once.
    let inner = e.without_url();
    let mut msg = format!("{kind}: {inner}");
    let mut src = std::error::Error::source(&inner);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    if url.is_empty() {
        HttpError::Transport(msg)
    } else {
        HttpError::Transport(format!("{url}: {msg}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutating_methods() {
        for m in ["GET", "head", "OPTIONS"] {
            assert!(!is_mutating(m), "{m}");
        }
        for m in ["PUT", "post", "DELETE", "PATCH"] {
            assert!(is_mutating(m), "{m}");
        }
    }

    #[test]
    fn transient_classification() {
        let st = |status| HttpError::Status {
            status,
            method: "GET".into(),
            url: "u".into(),
            body: String::new(),
            retry_after_ms: None,
        };
        assert!(HttpError::Transport("x".into()).is_transient());
        assert!(st(429).is_transient());
        assert!(st(500).is_transient());
        assert!(st(503).is_transient());
        assert!(!st(501).is_transient());
        assert!(!st(404).is_transient());
        assert!(!st(403).is_transient());
        assert!(!HttpError::Decode("x".into()).is_transient());
        assert_eq!(st(403).status(), Some(403));
        assert!(st(401).is_auth_refused());
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after_at("120", now), Some(120_000));
        assert_eq!(parse_retry_after_at(" 0 ", now), Some(0));
        assert_eq!(
            parse_retry_after_at("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(0)
        );
        assert_eq!(
            parse_retry_after_at("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(30_000)
        );
        assert_eq!(
            parse_retry_after_at("Sunday, 06-Nov-94 08:49:47 GMT", now),
            Some(10_000)
        );
        assert_eq!(
            parse_retry_after_at("Sun Nov  6 08:49:57 1994", now),
            Some(20_000)
        );
        // in the past
        assert_eq!(
            parse_retry_after_at("Sat, 05 Nov 1994 08:49:37 GMT", now),
            Some(0)
        );
        assert_eq!(parse_retry_after_at("", now), None);
        assert_eq!(parse_retry_after_at("-5", now), None);
        assert_eq!(parse_retry_after_at("soon", now), None);
        assert_eq!(
            parse_retry_after_at("Sun, 06 Foo 1994 08:49:37 GMT", now),
            None
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        assert!(parse_retry_after("60").is_some());
    }

    #[test]
    fn records_redact_sensitive_headers() {
        let r = RequestRecord::new("put", "https://r.example/x")
            .with_header("Authorization", "Bearer npm_supersecret")
            .with_header("npm-otp", "123456")
            .with_header("Accept", "application/json");
        assert_eq!(r.method, "PUT");
        let s = serde_json::to_string(&r).unwrap_or_default();
        assert!(!s.contains("supersecret"));
        assert!(!s.contains("123456"));
        assert!(s.contains(REDACTED));
        assert!(s.contains("application/json"));
        assert!(!format!("{r:?}").contains("supersecret"));
    }

    #[test]
    fn scrub_removes_secrets_and_bearer_values() {
        let t = SecretString::from("npm_TOKENTOKENTOKEN");
        let s = scrub(
            "bad token npm_TOKENTOKENTOKEN; header was 'Authorization: Bearer abc.def'",
            &[&t],
        );
        assert!(!s.contains("TOKENTOKEN"));
        assert!(!s.contains("abc.def"));
        assert_eq!(truncate_chars("ééééé", 2), "éé…");
        assert_eq!(truncate_chars("abc", 5), "abc");
    }
}
