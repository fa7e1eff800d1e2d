//! The GitHub REST API (github.com or GitHub Enterprise Server), through octocrab.
//!
//! octocrab is the transport: it owns authentication (a fine-grained token, or a GitHub App
//! whose installation tokens it mints and renews), the base URL (GHES serves the API under
//! `/api/v3`) and the connection. Recall sends raw requests through it and reads statuses
//! and headers itself, because the parts that matter on an incident are not in the typed
//! API: secondary rate limits, pagination links and the permission a 403 names.
//!
//! Facts this client relies on (docs.github.com, REST API version 2022-11-28):
//! * every request carries `X-GitHub-Api-Version` and `Accept: application/vnd.github+json`;
//! * lists are paginated with `per_page` (≤ 100) and a `Link` header whose `rel="next"` is
//!   the next page's absolute URL;
//! * rate limits: `403`/`429` with `Retry-After` (secondary limit: wait that long) or with
//!   `x-ratelimit-remaining: 0` (primary limit: wait until `x-ratelimit-reset`, epoch
//!   seconds). A refused request changed nothing, so repeating it is safe even for a PUT;
//! * a fine-grained token lacking a permission gets `403` with
//!   `x-accepted-github-permissions: secrets=write` naming what it needs;
//! * Actions secrets are sealed with libsodium's sealed box (X25519 + XSalsa20-Poly1305)
//!   to the repository's (environment's, organisation's) public key, sent with its `key_id`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http_body_util::BodyExt;
use octocrab::Octocrab;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::GitHubConfig;
use crate::duration::parse_duration_ms;
use crate::net::http::{ERROR_BODY_LIMIT, HttpError, RequestRecord, truncate_chars};

/// How many times one request is repeated after a rate-limit answer it waited out.
const RATE_LIMIT_RETRIES: u32 = 5;
/// A secondary rate limit without `Retry-After`: GitHub asks for at least a minute.
const SECONDARY_DEFAULT_WAIT_MS: u64 = 60_000;
/// Pages followed at most by [`GitHubClient::list`] (100 items each).
const MAX_PAGES: usize = 1000;

/// A successful answer.
#[derive(Debug, Clone)]
pub struct GitHubResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl GitHubResponse {
    pub fn json(&self) -> Result<Value, HttpError> {
        if self.body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&self.body).map_err(|e| {
            HttpError::Decode(format!(
                "GitHub answer is not JSON ({e}): {}",
                truncate_chars(&self.body, 120)
            ))
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How the client authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthKind {
    /// No token set: public reads only.
    Anonymous,
    /// A token; `kind` says what its prefix shows (never the token itself).
    Token { kind: TokenKind },
    /// A GitHub App installation (tokens minted by octocrab).
    App { app_id: u64, installation_id: u64 },
}

/// What a token's documented prefix says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// `github_pat_`: a fine-grained personal access token.
    FineGrained,
    /// `ghp_`: a personal access token (classic).
    Classic,
    /// `ghs_`: an installation token, e.g. an Actions `GITHUB_TOKEN`.
    Installation,
    /// `gho_` / `ghu_`: an OAuth or user-to-server token.
    OAuth,
    /// Any other form (an old 40-hex classic token, a GHES token).
    Other,
}

impl TokenKind {
    fn of(token: &str) -> Self {
        if token.starts_with("github_pat_") {
            Self::FineGrained
        } else if token.starts_with("ghp_") {
            Self::Classic
        } else if token.starts_with("ghs_") {
            Self::Installation
        } else if token.starts_with("gho_") || token.starts_with("ghu_") {
            Self::OAuth
        } else {
            Self::Other
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::FineGrained => "fine-grained personal access token",
            Self::Classic => "personal access token (classic)",
            Self::Installation => "installation token (like an Actions GITHUB_TOKEN)",
            Self::OAuth => "OAuth token",
            Self::Other => "token",
        }
    }
}

pub struct GitHubClient {
    oc: Octocrab,
    /// A GitHub App's own client (its requests carry the App's JWT), for the `/app`
    /// endpoints; `oc` acts as the installation.
    app_oc: Option<Octocrab>,
    auth: AuthKind,
    /// `api_url` without a trailing slash: the prefix of every recorded URL.
    base: String,
    api_version: String,
    max_wait_ms: u64,
    /// The configured token (if any), only to scrub it from error bodies.
    token: Option<SecretString>,
}

impl std::fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Where the configured credential comes from, for error messages (never the value).
pub fn credential_source(cfg: &GitHubConfig) -> String {
    if let Some(app) = cfg.app_id {
        let key = cfg
            .app_key_env
            .as_ref()
            .map(|e| format!("env {e}"))
            .or_else(|| cfg.app_key_file.as_ref().map(|f| format!("file {f}")))
            .unwrap_or_default();
        return format!(
            "[github] GitHub App {app} installation {} (key from {key})",
            cfg.installation_id.unwrap_or_default()
        );
    }
    match (&cfg.token_env, &cfg.token_file) {
        (_, Some(f)) => format!("[github] token_file = {f}"),
        (Some(e), None) => format!("[github] token_env = {e}"),
        (None, None) => "[github] (no credential configured)".into(),
    }
}

fn header_safe(s: &SecretString) -> bool {
    // octocrab turns the token into a header value and would panic on anything else.
    s.expose_secret().bytes().all(|b| (0x21..0x7f).contains(&b))
}

impl GitHubClient {
    pub fn new(cfg: &GitHubConfig) -> Result<Self, HttpError> {
        let base = cfg.api_url.trim_end_matches('/').to_string();
        let timeout = Duration::from_millis(parse_duration_ms(&cfg.timeout).unwrap_or(30_000));
        let mut b = Octocrab::builder()
            .base_uri(base.as_str())
            .map_err(|e| HttpError::Decode(format!("github.api_url {base:?}: {e}")))?
            .add_header(
                http::header::ACCEPT,
                "application/vnd.github+json".to_string(),
            )
            .add_header(
                http::HeaderName::from_static("x-github-api-version"),
                cfg.api_version.clone(),
            )
            .set_connect_timeout(Some(timeout.min(Duration::from_secs(10))))
            .set_read_timeout(Some(timeout))
            .set_write_timeout(Some(timeout));
        let mut token = None;
        let app = match (cfg.app_id, cfg.installation_id) {
            (Some(app), Some(inst)) => {
                let pem = match (&cfg.app_key_env, &cfg.app_key_file) {
                    (_, Some(f)) => std::fs::read(f).map_err(|e| {
                        HttpError::Decode(format!(
                            "github.app_key_file {f}: cannot read: {}",
                            e.kind()
                        ))
                    })?,
                    (Some(e), None) => std::env::var(e)
                        .map_err(|_| {
                            HttpError::Decode(format!(
                                "environment variable `{e}` (github.app_key_env) is not set"
                            ))
                        })?
                        .into_bytes(),
                    (None, None) => {
                        return Err(HttpError::Decode(
                            "github: a GitHub App needs app_key_env or app_key_file".into(),
                        ));
                    }
                };
                let key = octocrab::EncodingKey::from_rsa_pem(&pem).map_err(|_| {
                    HttpError::Decode(
                        "github: the App private key is not an RSA key in PEM form".into(),
                    )
                })?;
                Some((app, inst, key))
            }
            _ => None,
        };
        if app.is_none() {
            let t = match (&cfg.token_env, &cfg.token_file) {
                (_, Some(f)) => Some(crate::secrets::from_file(f)),
                (Some(e), None) => Some(crate::secrets::from_env(e)),
                (None, None) => None,
            };
            // No token set: anonymous (public reads work; a write gets GitHub's 401, which
            // names the credential source). A token that is set but unreadable is an error.
            let t = match t {
                Some(Err(crate::secrets::SecretError::MissingEnv(_))) => None,
                other => other,
            };
            if let Some(t) = t {
                let t = t.map_err(|e| HttpError::Decode(format!("github token: {e}")))?;
                if !header_safe(&t) {
                    return Err(HttpError::Decode(format!(
                        "the GitHub token from {} contains characters a header cannot carry",
                        credential_source(cfg)
                    )));
                }
                b = b.personal_token(t.clone());
                token = Some(t);
            }
        }
        if let Some((app, _, key)) = &app {
            b = b.app(octocrab::models::AppId(*app), key.clone());
        }
        let mut oc = b
            .build()
            .map_err(|e| HttpError::Decode(format!("github client: {e}")))?;
        let mut app_oc = None;
        let auth = match (&app, &token) {
            (Some((app_id, inst, _)), _) => AuthKind::App {
                app_id: *app_id,
                installation_id: *inst,
            },
            (None, Some(t)) => AuthKind::Token {
                kind: TokenKind::of(t.expose_secret()),
            },
            (None, None) => AuthKind::Anonymous,
        };
        if let Some((_, inst, _)) = app {
            let installation = oc
                .installation(octocrab::models::InstallationId(inst))
                .map_err(|e| HttpError::Decode(format!("github App installation: {e}")))?;
            app_oc = Some(std::mem::replace(&mut oc, installation));
        }
        Ok(Self {
            oc,
            app_oc,
            auth,
            base,
            api_version: cfg.api_version.clone(),
            max_wait_ms: parse_duration_ms(&cfg.rate_limit_max_wait).unwrap_or(60_000),
            token,
        })
    }

    /// How this client authenticates.
    pub fn auth(&self) -> &AuthKind {
        &self.auth
    }

    /// The absolute URL of an API path (`/repos/o/r`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request as data, for the timeline and for rehearsals.
    pub fn record(&self, method: &str, path: &str) -> RequestRecord {
        RequestRecord::new(method, self.url(path))
            .with_header("x-github-api-version", &self.api_version)
    }

    /// The path to send for a recorded URL: its part after the base.
    fn path_of<'a>(&self, url: &'a str) -> Result<&'a str, HttpError> {
        url.strip_prefix(&self.base)
            .filter(|p| p.starts_with('/'))
            .ok_or_else(|| {
                HttpError::Decode(format!(
                    "{url} is not under the configured GitHub API {}",
                    self.base
                ))
            })
    }

    async fn once(
        &self,
        oc: &Octocrab,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<GitHubResponse, HttpError> {
        let t = |e: octocrab::Error| HttpError::Transport(self.scrub(&transport_text(&e)));
        let resp = match method {
            "GET" => oc._get(path).await,
            "PUT" => oc._put(path, body).await,
            "PATCH" => oc._patch(path, body).await,
            "POST" => oc._post(path, body).await,
            "DELETE" => oc._delete(path, body).await,
            m => {
                return Err(HttpError::Decode(format!("unsupported GitHub method {m}")));
            }
        }
        .map_err(t)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| HttpError::Transport(self.scrub(&format!("body: {e}"))))?
            .to_bytes();
        Ok(GitHubResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    fn scrub(&self, text: &str) -> String {
        let secrets: Vec<&SecretString> = self.token.iter().collect();
        crate::secrets::scrub(&crate::net::http::scrub(text, &secrets))
    }

    /// Sends `rec` (its body, or `body` when the recorded one is redacted), waiting out
    /// rate limits up to `rate_limit_max_wait`. Non-2xx answers become [`HttpError::Status`];
    /// a rate limit not waited out is reported as 429 with its `Retry-After`, transient.
    pub async fn execute(
        &self,
        rec: &RequestRecord,
        body: Option<&Value>,
    ) -> Result<GitHubResponse, HttpError> {
        let r = self.answer_with(&self.oc, rec, body).await?;
        if r.ok() {
            return Ok(r);
        }
        let mut text = truncate_chars(&r.body, ERROR_BODY_LIMIT);
        if let Some(p) = r.header("x-accepted-github-permissions") {
            text = format!("{text} (the token needs the permission {p})");
        }
        Err(HttpError::Status {
            status: r.status,
            method: rec.method.clone(),
            url: rec.url.clone(),
            body: text,
            retry_after_ms: None,
        })
    }

    /// GitHub's final answer to `rec`, whatever its status (rate limits waited out as in
    /// [`Self::execute`]; the body of a non-2xx answer scrubbed): for callers that read the
    /// headers of a refusal, like preflight checks.
    pub async fn answer(&self, rec: &RequestRecord) -> Result<GitHubResponse, HttpError> {
        self.answer_with(&self.oc, rec, None).await
    }

    /// `GET /app/installations/{installation_id}` authenticated as the App itself (its
    /// JWT): the installation's account, repository selection and `permissions`. `None`
    /// unless the client acts as a GitHub App.
    pub async fn installation(&self) -> Option<Result<GitHubResponse, HttpError>> {
        let (
            AuthKind::App {
                installation_id, ..
            },
            Some(app_oc),
        ) = (&self.auth, &self.app_oc)
        else {
            return None;
        };
        let rec = self.record("GET", &format!("/app/installations/{installation_id}"));
        Some(self.answer_with(app_oc, &rec, None).await)
    }

    async fn answer_with(
        &self,
        oc: &Octocrab,
        rec: &RequestRecord,
        body: Option<&Value>,
    ) -> Result<GitHubResponse, HttpError> {
        let path = self.path_of(&rec.url)?;
        let body = body.or(rec.body.as_ref());
        let mut tries = 0;
        loop {
            let mut r = self.once(oc, &rec.method, path, body).await?;
            if r.ok() {
                return Ok(r);
            }
            if let Some(wait) = rate_limit_wait(&r, SystemTime::now()) {
                tries += 1;
                if wait <= self.max_wait_ms && tries <= RATE_LIMIT_RETRIES {
                    tracing::warn!(method = %rec.method, url = %rec.url, wait_ms = wait, "GitHub rate limit; waiting");
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    continue;
                }
                return Err(HttpError::Status {
                    status: 429,
                    method: rec.method.clone(),
                    url: rec.url.clone(),
                    body: format!(
                        "rate limited by GitHub (answered {}; retry in {} s): {}",
                        r.status,
                        wait.div_ceil(1000),
                        truncate_chars(&self.scrub(&r.body), ERROR_BODY_LIMIT)
                    ),
                    retry_after_ms: Some(wait),
                });
            }
            r.body = self.scrub(&r.body);
            return Ok(r);
        }
    }

    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, HttpError> {
        self.execute(&self.record("GET", path), None).await?.json()
    }

    /// `GET path`, `None` on 404.
    pub async fn get_opt(&self, path: &str) -> Result<Option<Value>, HttpError> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every item of a paginated list: `key` names the array in a wrapped answer
    /// (`{"total_count":…,"workflows":[…]}`), `None` for a bare array. Follows
    /// `Link: rel="next"` on the same API only.
    pub async fn list(&self, path: &str, key: Option<&str>) -> Result<Vec<Value>, HttpError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut url = self.url(&format!("{path}{sep}per_page=100"));
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let rec = RequestRecord::new("GET", url.clone())
                .with_header("x-github-api-version", &self.api_version);
            let r = self.execute(&rec, None).await?;
            let v = r.json()?;
            let items = match key {
                Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
                None => v,
            };
            match items {
                Value::Array(a) => out.extend(a),
                other => {
                    return Err(HttpError::Decode(format!(
                        "GET {url}: expected a list{}, got {}",
                        key.map(|k| format!(" in `{k}`")).unwrap_or_default(),
                        truncate_chars(&other.to_string(), 80)
                    )));
                }
            }
            match r.header("link").and_then(next_link) {
                Some(next) if self.path_of(&next).is_ok() => url = next,
                Some(next) => {
                    return Err(HttpError::Decode(format!(
                        "GitHub's next page {next} is not under {}",
                        self.base
                    )));
                }
                None => return Ok(out),
            }
        }
        Err(HttpError::Decode(format!(
            "GET {path}: more than {MAX_PAGES} pages"
        )))
    }

    /// The public key Actions secrets of `scope_path` are sealed to:
    /// `/repos/o/r/actions/secrets`, `/repos/o/r/environments/e/secrets` or
    /// `/orgs/o/actions/secrets`.
    pub async fn public_key(&self, scope_path: &str) -> Result<(String, String), HttpError> {
        let v = self.get(&format!("{scope_path}/public-key")).await?;
        let key_id = match v.get("key_id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(HttpError::Decode(
                    "the Actions public key has no `key_id`".into(),
                ));
            }
        };
        let key = v
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| HttpError::Decode("the Actions public key has no `key`".into()))?;
        Ok((key_id, key.to_string()))
    }
}

fn transport_text(e: &octocrab::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// How long a rate-limited answer asks us to wait, or `None` if it is not one.
pub fn rate_limit_wait(r: &GitHubResponse, now: SystemTime) -> Option<u64> {
    if !matches!(r.status, 403 | 429) {
        return None;
    }
    if let Some(ms) = r
        .header("retry-after")
        .and_then(crate::net::http::parse_retry_after)
    {
        return Some(ms);
    }
    if r.header("x-ratelimit-remaining") == Some("0") {
        let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let reset = r
            .header("x-ratelimit-reset")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(now_s + 60);
        return Some(reset.saturating_sub(now_s).max(1) * 1000);
    }
    let lower = r.body.to_ascii_lowercase();
    if lower.contains("secondary rate limit") || r.status == 429 {
        return Some(SECONDARY_DEFAULT_WAIT_MS);
    }
    None
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// libsodium `crypto_box_seal` of `plaintext` to a base64 X25519 public key, as base64:
/// what `PUT …/actions/secrets/{name}` takes as `encrypted_value`.
pub fn seal(public_key_b64: &str, plaintext: &SecretString) -> Result<String, HttpError> {
    let raw = B64
        .decode(public_key_b64.trim())
        .map_err(|_| HttpError::Decode("the Actions public key is not base64".into()))?;
    let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
        HttpError::Decode(format!(
            "the Actions public key is {} bytes, expected 32",
            raw.len()
        ))
    })?;
    let pk = crypto_box::PublicKey::from(bytes);
    let sealed = pk
        .seal(
            &mut crypto_box::aead::OsRng,
            plaintext.expose_secret().as_bytes(),
        )
        .map_err(|_| HttpError::Decode("sealing the secret failed".into()))?;
    Ok(B64.encode(sealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> GitHubResponse {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        GitHubResponse {
            status,
            headers: h,
            body: body.into(),
        }
    }

    #[test]
    fn next_link_is_found_among_others() {
        let l = r#"<https://api.github.com/repositories/1/releases?page=1>; rel="prev", <https://api.github.com/repositories/1/releases?page=3>; rel="next", <https://api.github.com/repositories/1/releases?page=5>; rel="last""#;
        assert_eq!(
            next_link(l).as_deref(),
            Some("https://api.github.com/repositories/1/releases?page=3")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="first""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn rate_limits_are_recognised() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(
            rate_limit_wait(&resp(403, &[("retry-after", "3")], "{}"), now),
            Some(3000)
        );
        assert_eq!(
            rate_limit_wait(
                &resp(
                    403,
                    &[
                        ("x-ratelimit-remaining", "0"),
                        ("x-ratelimit-reset", "1010")
                    ],
                    "{}"
                ),
                now
            ),
            Some(10_000)
        );
        assert_eq!(
            rate_limit_wait(
                &resp(
                    403,
                    &[],
                    r#"{"message":"You have exceeded a secondary rate limit."}"#
                ),
                now
            ),
            Some(SECONDARY_DEFAULT_WAIT_MS)
        );
        // A permission refusal is not a rate limit: never waited out or retried.
        assert_eq!(
            rate_limit_wait(
                &resp(
                    403,
                    &[("x-accepted-github-permissions", "secrets=write")],
                    r#"{"message":"Resource not accessible by personal access token"}"#
                ),
                now
            ),
            None
        );
        assert_eq!(rate_limit_wait(&resp(404, &[], "{}"), now), None);
    }

    #[test]
    fn sealed_box_opens_with_the_secret_key() {
        let sk = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
        let pk = B64.encode(sk.public_key().as_bytes());
        let s = seal(&pk, &SecretString::from("npm_s3cret".to_string())).unwrap();
        let opened = sk.unseal(&B64.decode(s).unwrap()).unwrap();
        assert_eq!(opened, b"npm_s3cret");
        assert!(seal("not base64!", &SecretString::from("x".to_string())).is_err());
        assert!(seal(&B64.encode([1u8; 31]), &SecretString::from("x".to_string())).is_err());
    }
}
