//! Cargo registry web API client: crates.io or any registry speaking cargo's web API
//! (`/api/v1/...` under the `api` URL of the registry's `config.json`).
//!
//! Mutations are built as [`RequestRecord`]s by pure functions (`*_request`) and sent with
//! [`CratesClient::send`] (the client's token) or [`CratesClient::send_with`] (a given token,
//! e.g. the leaked one being revoked), so a rehearsal can record the exact request instead of
//! sending it. The token is added at send time only, only to URLs under the configured API
//! base, and is scrubbed from every error.
//!
//! # Wire facts (from crates.io's source, `rust-lang/crates.io`, and cargo's
//! `registry-web-api.md`; exercised against the contract fake in `tests/it/fakes/crates.rs`,
//! not against the live service)
//!
//! * **Auth** is the raw token in `Authorization` (no `Bearer`). crates.io tokens start
//!   with `cio`; a token without that prefix gets `401` with a long "does not match the
//!   format used by crates.io" detail. A missing header → `403 "this action requires
//!   authentication"` (older deployments: `"must be logged in to perform that action"`); an
//!   unknown or revoked token → `403 "authentication failed"`; a token whose scopes don't
//!   cover the action → `403 "this token does not have the required permissions to perform
//!   this action"`; not an owner → `403 "must already be an owner to yank or unyank"`.
//!   crates.io also refuses requests without a `User-Agent` (we always send one).
//! * **Errors** are `{"errors":[{"detail":"…"}]}`. Per cargo's document that shape is an
//!   error *even with a 200 status* (legacy `cargo_err`), so a 2xx carrying `errors` is
//!   reported as [`CratesError::Api`]. Unknown crate → `404 "crate `x` does not exist"`,
//!   unknown version → `404 "crate `x` does not have a version `1.2.3`"`. The version
//!   endpoints look the crate/version up *before* checking auth, so a 404 comes first.
//! * **Yank** = `DELETE /api/v1/crates/{name}/{version}/yank` → `200 {"ok":true}`;
//!   **unyank** = `PUT …/unyank` → `200 {"ok":true}`. Both are idempotent (re-yanking a
//!   yanked version answers the same) and both clear the yank message.
//! * **Yank with a message** is crates.io-only: `PATCH /api/v1/crates/{name}/{version}`
//!   with `{"version":{"yanked":true,"yank_message":"…"}}` → `200 {"version":{…}}`.
//!   `yank_message` together with `yanked:false` → `400 "Cannot set yank message when
//!   unyanking"`. A registry without the route answers 405 (router with a GET on the same
//!   path), 404 (generic, not crates.io's crate/version wording) or 501;
//!   [`CratesClient::yank`] then falls back to the plain `DELETE …/yank` and reports the
//!   message as dropped. A 404 naming the crate/version is a real "does not exist": no
//!   fallback.
//! * **Version info** = `GET /api/v1/crates/{name}/{version}` (no auth) →
//!   `{"version":{"id","crate","num","created_at","updated_at","yanked","yank_message",…}}`,
//!   times RFC 3339 (`2019-12-13T13:46:41Z`, older deployments `+00:00` with microseconds).
//!   Lookups are case/`-`/`_`-insensitive; `crate` gives the canonical name.
//! * **Rate limit** (yank/unyank: burst 100, then 1/min): `429` with
//!   `Retry-After: <HTTP date>` and "You have yanked or unyanked too many versions in a
//!   short period of time. Please try again after …".
//! * **Tokens**: `DELETE /api/v1/tokens/current` revokes the token that authenticates the
//!   request → `204` (no body); afterwards the token gets `403 "authentication failed"`.
//!   `DELETE /api/v1/me/tokens/{id}` → `200 {}` — also for an id that is not yours or does
//!   not exist (nothing tells you it worked; check the token instead).
//!   `GET /api/v1/me/tokens` → `{"api_tokens":[{"id","name","created_at","last_used_at",
//!   "crate_scopes","endpoint_scopes","expired_at"}]}` is **cookie-only on crates.io**: an
//!   API token gets `403 "this action can only be performed on the crates.io website"`.
//!   `GET /api/v1/me/tokens/{id}` accepts API tokens and changes nothing: we use it (with
//!   id 0, which never exists → `404 "Not Found"`) to probe whether a token is still
//!   accepted. Endpoints without an endpoint scope (`/tokens/current`, `/me/tokens/*`)
//!   refuse *scoped* tokens with the scope detail (crates.io's `AuthCheck::default()`): a
//!   scoped token cannot revoke itself through the API, yet it is alive.
//! * **Trusted publishing**: `GET /api/v1/trusted_publishing/github_configs?crate=NAME` →
//!   `{"github_configs":[{"id","crate","repository_owner","repository_owner_id",
//!   "repository_name","workflow_filename","environment","created_at"}]}` (owners only,
//!   else `400 "You are not an owner of this crate"`);
//!   `DELETE /api/v1/trusted_publishing/github_configs/{id}` → `204`, unknown id → `404`.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::net::http::{self, HttpError, RequestRecord};

/// The crates.io API base.
pub const CRATES_IO_API: &str = "https://crates.io";

/// crates.io's maximum crate name length.
pub const MAX_CRATE_NAME_LEN: usize = 64;

/// Errors of the cargo registry client. Never contains a token.
#[derive(thiserror::Error, Debug)]
pub enum CratesError {
    #[error("invalid crate name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid crate version {version:?}: {reason}")]
    InvalidVersion { version: String, reason: String },
    /// A URL, id or message we were asked to use is unusable.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The registry answered with an error: a non-2xx status, or a 2xx whose body carries
    /// cargo's `errors` array. `detail` is the registry's `errors[].detail` text (joined
    /// with `; `) or, when the body has no such shape, the scrubbed, truncated body.
    #[error("{method} {url} answered {status}: {detail}")]
    Api {
        status: u16,
        method: String,
        url: String,
        detail: String,
        retry_after_ms: Option<u64>,
    },
    /// Connect, TLS, timeout or reset.
    #[error("transport error: {0}")]
    Transport(String),
    /// The answer could not be understood.
    #[error("decode error: {0}")]
    Decode(String),
}

impl CratesError {
    /// Transport errors, 429 and 5xx except 501 are worth retrying.
    pub fn is_transient(&self) -> bool {
        match self {
            CratesError::Transport(_) => true,
            CratesError::Api { status, .. } => {
                *status == 429 || ((500..=599).contains(status) && *status != 501)
            }
            _ => false,
        }
    }

    /// The HTTP status, if the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            CratesError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The registry's `Retry-After`, in milliseconds from when the answer arrived.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            CratesError::Api { retry_after_ms, .. } => *retry_after_ms,
            _ => None,
        }
    }

    /// True for 401/403: the credential (or the lack of one) was refused.
    pub fn is_auth_refused(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    /// True for a 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The registry's error text, if it answered.
    pub fn detail(&self) -> Option<&str> {
        match self {
            CratesError::Api { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

impl From<HttpError> for CratesError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Transport(m) => CratesError::Transport(m),
            HttpError::Decode(m) => CratesError::Decode(m),
            HttpError::Status {
                status,
                method,
                url,
                body,
                retry_after_ms,
            } => {
                let detail = error_detail(&body).unwrap_or_else(|| {
                    if body.trim().is_empty() {
                        "(empty body)".to_string()
                    } else {
                        body
                    }
                });
                CratesError::Api {
                    status,
                    method,
                    url,
                    detail,
                    retry_after_ms,
                }
            }
        }
    }
}

/// The `errors[].detail` texts of a cargo-registry error body, joined with `; `.
///
/// Lenient: a body cut short (error bodies are truncated) still yields the first detail.
/// `None` when the body has no non-empty `errors` array.
pub fn error_detail(body: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let errors = v.get("errors")?.as_array()?;
        let details: Vec<String> = errors
            .iter()
            .map(|e| match e.get("detail") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => e.to_string(),
            })
            .collect();
        return if details.is_empty() {
            None
        } else {
            Some(details.join("; "))
        };
    }
    // Truncated JSON: take the first `"detail":"…` string by hand.
    if !body.contains("\"errors\"") {
        return None;
    }
    let start = body.find("\"detail\"")? + "\"detail\"".len();
    let rest = body[start..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// True when a 404 detail is crates.io's "this crate/version does not exist" wording, as
/// opposed to a router's generic "Not Found" for a route it doesn't have.
pub fn is_missing_crate_or_version(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    d.contains("does not exist") || d.contains("does not have a version")
}

/// Whether a failed `PATCH /api/v1/crates/{name}/{version}` means "this registry has no
/// such route" (so the plain `DELETE …/yank` should be used), as opposed to a real error.
///
/// 405 and 501 always; 404 unless the detail names a missing crate/version; 400 only with
/// an empty body or a detail that talks about the route/method being unknown or unsupported.
pub fn is_patch_unsupported(e: &CratesError) -> bool {
    let CratesError::Api { status, detail, .. } = e else {
        return false;
    };
    match status {
        405 | 501 => true,
        404 => !is_missing_crate_or_version(detail),
        400 => {
            let d = detail.to_ascii_lowercase();
            d == "(empty body)"
                || [
                    "unknown route",
                    "no route",
                    "not supported",
                    "unsupported",
                    "not implemented",
                    "method not allowed",
                    "unknown method",
                    "invalid method",
                ]
                .iter()
                .any(|p| d.contains(p))
        }
        _ => false,
    }
}

/// Validates a crate name by crates.io's rules: 1–64 characters, ASCII letters, digits,
/// `-` and `_`, starting with a letter.
pub fn validate_crate_name(name: &str) -> Result<(), CratesError> {
    let bad = |reason: &str| CratesError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if name.len() > MAX_CRATE_NAME_LEN {
        return Err(bad("longer than 64 characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(bad("must start with an ASCII letter"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(bad(&format!(
            "character {c:?} is not allowed (ASCII letters, digits, `-` and `_` only)"
        )));
    }
    Ok(())
}

fn semver_identifiers(part: &str, what: &str, numeric_rule: bool) -> Result<(), String> {
    for id in part.split('.') {
        if id.is_empty() {
            return Err(format!("empty {what} identifier"));
        }
        if let Some(c) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!("character {c:?} is not allowed in {what}"));
        }
        if numeric_rule
            && id.len() > 1
            && id.starts_with('0')
            && id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(format!(
                "numeric {what} identifier {id:?} has a leading zero"
            ));
        }
    }
    Ok(())
}

/// Validates a version as strict SemVer 2.0 (`MAJOR.MINOR.PATCH[-pre][+build]`, no leading
/// `v` or `=`, no leading zeros), which is what cargo publishes and crates.io stores.
pub fn validate_version(version: &str) -> Result<(), CratesError> {
    let bad = |reason: String| CratesError::InvalidVersion {
        version: version.to_string(),
        reason,
    };
    if version.is_empty() {
        return Err(bad("empty version".into()));
    }
    if version.len() > 256 {
        return Err(bad("longer than 256 characters".into()));
    }
    let (rest, build) = match version.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    if nums.len() != 3 {
        return Err(bad("expected MAJOR.MINOR.PATCH".into()));
    }
    for n in &nums {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("{n:?} is not a number")));
        }
        if n.len() > 1 && n.starts_with('0') {
            return Err(bad(format!("{n:?} has a leading zero")));
        }
        if n.parse::<u64>().is_err() {
            return Err(bad(format!("{n:?} is too large")));
        }
    }
    if let Some(p) = pre {
        semver_identifiers(p, "pre-release", true).map_err(bad)?;
    }
    if let Some(b) = build {
        semver_identifiers(b, "build metadata", false).map_err(bad)?;
    }
    Ok(())
}

/// `sha256(token)` as hex, first 16 characters: identifies a token in logs without leaking it.
pub fn token_fingerprint(token: &SecretString) -> String {
    let digest = Sha256::digest(token.expose_secret().as_bytes());
    let mut h = hex::encode(digest);
    h.truncate(16);
    h
}

/// RFC 3339 (or crates.io's old offset-less form) to Unix milliseconds.
pub fn rfc3339_to_ms(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s.trim()) {
        return Some(t.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// One version as `GET /api/v1/crates/{name}/{version}` describes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VersionInfo {
    /// Canonical crate name as the registry spells it (`crate`), when given.
    pub name: Option<String>,
    pub num: String,
    pub yanked: bool,
    pub yank_message: Option<String>,
    /// RFC 3339, as given.
    pub created_at: Option<String>,
    /// `created_at` in Unix milliseconds, when it parses.
    pub created_at_ms: Option<i64>,
    /// RFC 3339, as given (changes on yank/unyank).
    pub updated_at: Option<String>,
}

impl VersionInfo {
    /// Parses the `{"version":{…}}` answer (or the inner object).
    pub fn from_json(v: &Value) -> Result<Self, CratesError> {
        let inner = v.get("version").filter(|x| x.is_object()).unwrap_or(v);
        let obj = inner
            .as_object()
            .ok_or_else(|| CratesError::Decode("version answer is not an object".into()))?;
        let num = obj
            .get("num")
            .and_then(Value::as_str)
            .ok_or_else(|| CratesError::Decode("version answer has no `num`".into()))?
            .to_string();
        let yanked = obj
            .get("yanked")
            .and_then(Value::as_bool)
            .ok_or_else(|| CratesError::Decode("version answer has no boolean `yanked`".into()))?;
        let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let created_at = s("created_at");
        Ok(VersionInfo {
            name: s("crate"),
            num,
            yanked,
            yank_message: s("yank_message").filter(|m| !m.is_empty()),
            created_at_ms: created_at.as_deref().and_then(rfc3339_to_ms),
            created_at,
            updated_at: s("updated_at"),
        })
    }
}

/// What [`CratesClient::yank`] sent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct YankResult {
    /// Every request sent, in order (the PATCH, then the DELETE when falling back).
    pub requests_sent: Vec<RequestRecord>,
    /// The registry has no PATCH route; the plain `DELETE …/yank` was used.
    pub used_fallback: bool,
    /// A yank message was asked for but the registry could not store it.
    pub message_dropped: bool,
}

/// One API token as `GET /api/v1/me/tokens` lists it (never the secret).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApiToken {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub last_used_at: Option<String>,
    /// `None` = legacy token valid for every crate.
    #[serde(default)]
    pub crate_scopes: Option<Vec<String>>,
    /// `None` = legacy token valid for every endpoint.
    #[serde(default)]
    pub endpoint_scopes: Option<Vec<String>>,
    #[serde(default)]
    pub expired_at: Option<String>,
}

/// One trusted-publishing (GitHub Actions) configuration of a crate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GithubConfig {
    pub id: u64,
    #[serde(rename = "crate")]
    pub krate: String,
    pub repository_owner: String,
    #[serde(default)]
    pub repository_owner_id: Option<u64>,
    pub repository_name: String,
    pub workflow_filename: String,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// What a registry says about a token (see [`CratesClient::token_state`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum TokenState {
    /// The registry authenticated the token (it is alive). A scoped token refused for
    /// lack of scope is alive too.
    Accepted,
    /// The registry refused the token (401, or 403 other than a scope refusal).
    Refused { status: u16, detail: String },
    /// The answer doesn't tell (e.g. a registry without the probe endpoint).
    Inconclusive { status: u16, detail: String },
}

/// Classifies a non-2xx answer to the token probe.
pub fn classify_probe(status: u16, detail: String) -> TokenState {
    let d = detail.to_ascii_lowercase();
    match status {
        // crates.io's `not_found()`: authenticated, then no token 0.
        404 if detail == "Not Found" => TokenState::Accepted,
        403 if d.contains("does not have the required permissions") => TokenState::Accepted,
        401 | 403 => TokenState::Refused { status, detail },
        _ => TokenState::Inconclusive { status, detail },
    }
}

/// Client for one cargo registry web API.
pub struct CratesClient {
    /// API base, always ending in `/` (a path prefix is kept).
    base: url::Url,
    token: Option<SecretString>,
    client: reqwest::Client,
}

impl fmt::Debug for CratesClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CratesClient")
            .field("api", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| http::REDACTED))
            .finish()
    }
}

impl CratesClient {
    /// A client for `api_base` (`https://crates.io`, `http://127.0.0.1:PORT`, or a private
    /// registry's `api` URL with a path prefix). URLs with credentials are refused.
    pub fn new(
        api_base: &str,
        token: Option<SecretString>,
        timeout: Duration,
    ) -> Result<Self, CratesError> {
        let mut base = url::Url::parse(api_base.trim()).map_err(|e| {
            CratesError::InvalidInput(format!("invalid registry API URL {api_base:?}: {e}"))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(CratesError::InvalidInput(format!(
                "registry API URL must be http(s), got {:?}",
                base.scheme()
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(CratesError::InvalidInput(
                "registry API URL must not embed credentials; pass a token instead".into(),
            ));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(CratesError::InvalidInput(format!(
                "registry API URL {api_base:?} has no host"
            )));
        }
        base.set_query(None);
        base.set_fragment(None);
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        Ok(CratesClient {
            base,
            token,
            client: http::build_client(timeout),
        })
    }

    /// Replaces the HTTP client.
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// The API base URL, ending in `/`.
    pub fn api_base(&self) -> &str {
        self.base.as_str()
    }

    /// Fingerprint of the configured token, if any (safe to log).
    pub fn token_fingerprint(&self) -> Option<String> {
        self.token.as_ref().map(token_fingerprint)
    }

    /// Absolute URL of an API path (no leading `/`), e.g. `api/v1/tokens/current`.
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str(), path.trim_start_matches('/'))
    }

    fn version_path(name: &str, version: &str) -> Result<String, CratesError> {
        validate_crate_name(name)?;
        validate_version(version)?;
        // Both are validated to URL-safe characters (`+` is literal in a path).
        Ok(format!("api/v1/crates/{name}/{version}"))
    }

    /// Builds `GET /api/v1/crates/{name}/{version}`.
    pub fn version_info_request(
        &self,
        name: &str,
        version: &str,
    ) -> Result<RequestRecord, CratesError> {
        Ok(RequestRecord::new(
            "GET",
            self.url(&Self::version_path(name, version)?),
        ))
    }

    /// The version's state; `None` on 404. (A registry without this endpoint also answers
    /// 404, so `None` alone doesn't prove the version is absent there.)
    pub async fn version_info(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<VersionInfo>, CratesError> {
        let rec = self.version_info_request(name, version)?;
        match self.send(&rec).await {
            Ok(v) => VersionInfo::from_json(&v).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Builds the yank: with a (non-blank) `message`, crates.io's
    /// `PATCH /api/v1/crates/{name}/{version}` `{"version":{"yanked":true,"yank_message":…}}`;
    /// without, cargo's `DELETE …/yank`.
    pub fn yank_request(
        &self,
        name: &str,
        version: &str,
        message: Option<&str>,
    ) -> Result<RequestRecord, CratesError> {
        let path = Self::version_path(name, version)?;
        let message = message.map(str::trim).filter(|m| !m.is_empty());
        match message {
            Some(m) => {
                if m.contains('\0') {
                    return Err(CratesError::InvalidInput(
                        "yank message contains a NUL character".into(),
                    ));
                }
                Ok(
                    RequestRecord::new("PATCH", self.url(&path)).with_json(json!({
                        "version": {"yanked": true, "yank_message": m}
                    })),
                )
            }
            None => Ok(RequestRecord::new(
                "DELETE",
                self.url(&format!("{path}/yank")),
            )),
        }
    }

    /// Builds cargo's `DELETE /api/v1/crates/{name}/{version}/yank` (no message).
    pub fn yank_fallback_request(
        &self,
        name: &str,
        version: &str,
    ) -> Result<RequestRecord, CratesError> {
        self.yank_request(name, version, None)
    }

    /// Builds cargo's `PUT /api/v1/crates/{name}/{version}/unyank` (every registry).
    pub fn unyank_request(&self, name: &str, version: &str) -> Result<RequestRecord, CratesError> {
        let path = Self::version_path(name, version)?;
        Ok(RequestRecord::new(
            "PUT",
            self.url(&format!("{path}/unyank")),
        ))
    }

    /// Builds crates.io's `PATCH /api/v1/crates/{name}/{version}` `{"version":{"yanked":false}}`.
    pub fn unyank_patch_request(
        &self,
        name: &str,
        version: &str,
    ) -> Result<RequestRecord, CratesError> {
        let path = Self::version_path(name, version)?;
        Ok(RequestRecord::new("PATCH", self.url(&path))
            .with_json(json!({"version": {"yanked": false}})))
    }

    /// Yanks `name@version`, with `message` where the registry supports it.
    ///
    /// Sends [`Self::yank_request`]; when that is the PATCH form and the registry answers
    /// that it has no such route (see [`is_patch_unsupported`]), sends
    /// [`Self::yank_fallback_request`] and reports `used_fallback` / `message_dropped`.
    /// A 404 naming the crate or version is returned as is (no fallback).
    pub async fn yank(
        &self,
        name: &str,
        version: &str,
        message: Option<&str>,
    ) -> Result<YankResult, CratesError> {
        let first = self.yank_request(name, version, message)?;
        let is_patch = first.method == "PATCH";
        match self.send(&first).await {
            Ok(_) => Ok(YankResult {
                requests_sent: vec![first],
                used_fallback: false,
                message_dropped: false,
            }),
            Err(e) if is_patch && is_patch_unsupported(&e) => {
                tracing::warn!(
                    registry = %self.base,
                    status = ?e.status(),
                    "registry has no PATCH version route; yanking without the message"
                );
                let fallback = self.yank_fallback_request(name, version)?;
                self.send(&fallback).await?;
                Ok(YankResult {
                    requests_sent: vec![first, fallback],
                    used_fallback: true,
                    message_dropped: true,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Unyanks `name@version` with [`Self::unyank_request`].
    pub async fn unyank(&self, name: &str, version: &str) -> Result<RequestRecord, CratesError> {
        let rec = self.unyank_request(name, version)?;
        self.send(&rec).await?;
        Ok(rec)
    }

    /// Builds `DELETE /api/v1/tokens/current`: revokes whichever token authenticates it, so
    /// send it with [`Self::send_with`] and the token to revoke.
    pub fn revoke_current_request(&self) -> RequestRecord {
        RequestRecord::new("DELETE", self.url("api/v1/tokens/current"))
    }

    /// Builds `DELETE /api/v1/me/tokens/{id}` (revokes one of the authenticating user's
    /// tokens; crates.io answers `200 {}` even when the id matches nothing).
    pub fn revoke_token_by_id_request(&self, id: u64) -> RequestRecord {
        RequestRecord::new("DELETE", self.url(&format!("api/v1/me/tokens/{id}")))
    }

    /// `GET /api/v1/me/tokens`. On crates.io this is website-only (an API token gets 403);
    /// other registries may allow it.
    pub async fn list_tokens(&self) -> Result<Vec<ApiToken>, CratesError> {
        let v = self
            .send(&RequestRecord::new("GET", self.url("api/v1/me/tokens")))
            .await?;
        let list = v
            .get("api_tokens")
            .cloned()
            .ok_or_else(|| CratesError::Decode("token list has no `api_tokens`".into()))?;
        serde_json::from_value(list)
            .map_err(|e| CratesError::Decode(format!("bad `api_tokens` entry: {e}")))
    }

    /// Whether the registry still accepts `token`, without changing anything:
    /// `GET /api/v1/me/tokens/0` (crates.io: read-only, open to API tokens; id 0 never
    /// exists, so a live token gets crates.io's `404 "Not Found"`). See [`TokenState`].
    /// 429/5xx and transport failures are errors (retry them).
    pub async fn token_state(&self, token: &SecretString) -> Result<TokenState, CratesError> {
        let rec = RequestRecord::new("GET", self.url("api/v1/me/tokens/0"));
        match self.send_inner(&rec, Some(token)).await {
            Ok(_) => Ok(TokenState::Accepted),
            Err(e) if e.is_transient() => Err(e),
            Err(CratesError::Api { status, detail, .. }) => Ok(classify_probe(status, detail)),
            Err(e) => Err(e),
        }
    }

    /// Builds `GET /api/v1/trusted_publishing/github_configs?crate=NAME`.
    pub fn trusted_publishers_request(&self, name: &str) -> Result<RequestRecord, CratesError> {
        validate_crate_name(name)?;
        Ok(RequestRecord::new(
            "GET",
            self.url(&format!(
                "api/v1/trusted_publishing/github_configs?crate={name}"
            )),
        ))
    }

    /// The crate's GitHub trusted-publishing configurations (owners only).
    pub async fn trusted_publishers(&self, name: &str) -> Result<Vec<GithubConfig>, CratesError> {
        let v = self.send(&self.trusted_publishers_request(name)?).await?;
        let list = v
            .get("github_configs")
            .cloned()
            .ok_or_else(|| CratesError::Decode("answer has no `github_configs`".into()))?;
        serde_json::from_value(list)
            .map_err(|e| CratesError::Decode(format!("bad `github_configs` entry: {e}")))
    }

    /// Builds `DELETE /api/v1/trusted_publishing/github_configs/{id}`.
    pub fn remove_trusted_publisher_request(&self, id: u64) -> RequestRecord {
        RequestRecord::new(
            "DELETE",
            self.url(&format!("api/v1/trusted_publishing/github_configs/{id}")),
        )
    }

    /// Sends `rec` with the client's token (if any). Returns the JSON answer (`null` for
    /// an empty body, e.g. a 204).
    pub async fn send(&self, rec: &RequestRecord) -> Result<Value, CratesError> {
        let resp = self.send_inner(rec, self.token.as_ref()).await?;
        Ok(resp.json()?)
    }

    /// Sends `rec` authenticated with `token` instead of the client's own.
    pub async fn send_with(
        &self,
        rec: &RequestRecord,
        token: &SecretString,
    ) -> Result<Value, CratesError> {
        let resp = self.send_inner(rec, Some(token)).await?;
        Ok(resp.json()?)
    }

    async fn send_inner(
        &self,
        rec: &RequestRecord,
        token: Option<&SecretString>,
    ) -> Result<http::HttpResponse, CratesError> {
        if !rec.url.starts_with(self.base.as_str()) {
            return Err(CratesError::InvalidInput(format!(
                "refusing to send {} {}: not under registry API {}",
                rec.method,
                rec.url,
                self.base.as_str()
            )));
        }
        let mut secret_headers: Vec<(&str, &SecretString)> = Vec::new();
        if let Some(t) = token {
            secret_headers.push(("authorization", t));
        }
        let resp = http::send_record(&self.client, rec, &secret_headers).await?;
        // cargo: an `errors` array is an error whatever the status.
        if let Some(detail) = error_detail(&resp.body) {
            let secrets: Vec<&SecretString> = token.into_iter().collect();
            return Err(CratesError::Api {
                status: resp.status,
                method: rec.method.clone(),
                url: rec.url.clone(),
                detail: http::truncate_chars(
                    &http::scrub(&detail, &secrets),
                    http::ERROR_BODY_LIMIT,
                ),
                retry_after_ms: None,
            });
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> CratesClient {
        match CratesClient::new("https://crates.io", None, Duration::from_secs(5)) {
            Ok(c) => c,
            Err(e) => panic!("client: {e}"),
        }
    }

    #[test]
    fn crate_names() {
        for ok in ["serde", "a", "foo-bar_baz9", "X", &"a".repeat(64)] {
            assert!(validate_crate_name(ok).is_ok(), "{ok:?} refused");
        }
        for bad in [
            "",
            "1abc",
            "-x",
            "_x",
            "a b",
            "a/b",
            "é",
            "a.b",
            "../x",
            "a%2f",
            "a\n",
            &"a".repeat(65),
        ] {
            assert!(validate_crate_name(bad).is_err(), "{bad:?} accepted");
        }
        let e = validate_crate_name("a/b").map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("'/'"), "{e}");
    }

    #[test]
    fn versions() {
        for ok in [
            "0.0.0",
            "1.2.3",
            "10.20.30",
            "1.0.0-alpha.1",
            "1.0.0-0.3.7",
            "1.0.0-x-y-z.--",
            "1.0.0+build.1",
            "1.0.0-rc.1+sha.5114f85",
            "1.0.0+001",
        ] {
            assert!(validate_version(ok).is_ok(), "{ok:?} refused");
        }
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "v1.2.3",
            "=1.2.3",
            "01.2.3",
            "1.02.3",
            "1.2.3-",
            "1.2.3-01",
            "1.2.3-a..b",
            "1.2.3+",
            "1.2.3 ",
            " 1.2.3",
            "1.2.3/..",
            "1.2.x",
            "1.2.3-é",
            "99999999999999999999.0.0",
        ] {
            assert!(validate_version(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn request_shapes() -> Result<(), CratesError> {
        let c = client();
        assert_eq!(c.api_base(), "https://crates.io/");
        let r = c.yank_request("foo", "1.0.0", Some("  compromised  "))?;
        assert_eq!(r.method, "PATCH");
        assert_eq!(r.url, "https://crates.io/api/v1/crates/foo/1.0.0");
        assert_eq!(
            r.body,
            Some(json!({"version": {"yanked": true, "yank_message": "compromised"}}))
        );
        for m in [None, Some(""), Some("   ")] {
            let r = c.yank_request("foo", "1.0.0", m)?;
            assert_eq!(r.method, "DELETE");
            assert_eq!(r.url, "https://crates.io/api/v1/crates/foo/1.0.0/yank");
            assert_eq!(r.body, None);
        }
        assert_eq!(c.yank_fallback_request("foo", "1.0.0")?.method, "DELETE");
        let u = c.unyank_request("foo", "1.0.0+b.1")?;
        assert_eq!(
            (u.method.as_str(), u.url.as_str()),
            (
                "PUT",
                "https://crates.io/api/v1/crates/foo/1.0.0+b.1/unyank"
            )
        );
        let u = c.unyank_patch_request("foo", "1.0.0")?;
        assert_eq!(u.body, Some(json!({"version": {"yanked": false}})));
        let t = c.revoke_current_request();
        assert_eq!(
            (t.method.as_str(), t.url.as_str()),
            ("DELETE", "https://crates.io/api/v1/tokens/current")
        );
        assert!(t.headers.is_empty(), "no credential in a record");
        assert_eq!(
            c.revoke_token_by_id_request(42).url,
            "https://crates.io/api/v1/me/tokens/42"
        );
        assert_eq!(
            c.trusted_publishers_request("foo")?.url,
            "https://crates.io/api/v1/trusted_publishing/github_configs?crate=foo"
        );
        assert_eq!(
            c.remove_trusted_publisher_request(7).url,
            "https://crates.io/api/v1/trusted_publishing/github_configs/7"
        );
        assert!(c.yank_request("foo", "1.0.0", Some("a\0b")).is_err());
        assert!(c.yank_request("../x", "1.0.0", None).is_err());
        assert!(c.yank_request("foo", "../../x", None).is_err());
        assert!(c.trusted_publishers_request("foo&crate=bar").is_err());
        Ok(())
    }

    #[test]
    fn base_urls() {
        let ok = |u: &str| match CratesClient::new(u, None, Duration::from_secs(1)) {
            Ok(c) => c.api_base().to_string(),
            Err(e) => panic!("{u}: {e}"),
        };
        assert_eq!(ok("https://crates.io"), "https://crates.io/");
        assert_eq!(
            ok("https://reg.example/prefix?x=1#f"),
            "https://reg.example/prefix/"
        );
        assert_eq!(ok("http://127.0.0.1:8080/"), "http://127.0.0.1:8080/");
        for bad in [
            "ftp://crates.io",
            "https://u:p@crates.io",
            "https://tok@crates.io",
            "crates.io",
            "not a url",
            "file:///etc",
        ] {
            assert!(
                CratesClient::new(bad, None, Duration::from_secs(1)).is_err(),
                "{bad} accepted"
            );
        }
        let c = match CratesClient::new(
            "https://crates.io",
            Some(SecretString::from("cioSECRETSECRET")),
            Duration::from_secs(1),
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        assert_eq!(c.token_fingerprint().map(|f| f.len()), Some(16));
    }

    #[test]
    fn error_details_and_classification() {
        assert_eq!(
            error_detail(r#"{"errors":[{"detail":"crate `x` does not exist"}]}"#).as_deref(),
            Some("crate `x` does not exist")
        );
        assert_eq!(
            error_detail(r#"{"errors":[{"detail":"a"},{"detail":"b"}]}"#).as_deref(),
            Some("a; b")
        );
        assert_eq!(error_detail(r#"{"errors":[]}"#), None);
        assert_eq!(error_detail(r#"{"ok":true}"#), None);
        assert_eq!(error_detail("<html>"), None);
        // truncated body
        assert_eq!(
            error_detail(r#"{"errors":[{"detail":"The given \"API\" token does not ma…"#)
                .as_deref(),
            Some("The given \"API\" token does not ma…")
        );
        let api = |status: u16, detail: &str| CratesError::Api {
            status,
            method: "PATCH".into(),
            url: "u".into(),
            detail: detail.into(),
            retry_after_ms: None,
        };
        assert!(is_patch_unsupported(&api(405, "(empty body)")));
        assert!(is_patch_unsupported(&api(501, "x")));
        assert!(is_patch_unsupported(&api(404, "Not Found")));
        assert!(is_patch_unsupported(&api(400, "(empty body)")));
        assert!(is_patch_unsupported(&api(400, "Unknown route")));
        assert!(!is_patch_unsupported(&api(404, "crate `x` does not exist")));
        assert!(!is_patch_unsupported(&api(
            404,
            "crate `x` does not have a version `1.0.0`"
        )));
        assert!(!is_patch_unsupported(&api(
            400,
            "Cannot set yank message when unyanking"
        )));
        assert!(!is_patch_unsupported(&api(403, "authentication failed")));
        assert!(!is_patch_unsupported(&CratesError::Transport("x".into())));
        assert!(api(429, "").is_transient());
        assert!(api(503, "").is_transient());
        assert!(!api(501, "").is_transient());
        assert!(!api(404, "").is_transient());
        assert!(api(403, "").is_auth_refused());
        assert!(CratesError::Transport("t".into()).is_transient());
        assert!(!CratesError::Decode("d".into()).is_transient());
        let from: CratesError = HttpError::Status {
            status: 404,
            method: "GET".into(),
            url: "u".into(),
            body: r#"{"errors":[{"detail":"crate `q` does not exist"}]}"#.into(),
            retry_after_ms: Some(5),
        }
        .into();
        assert_eq!(from.detail(), Some("crate `q` does not exist"));
        assert_eq!(from.retry_after_ms(), Some(5));
        assert!(from.to_string().contains("does not exist"));
    }

    #[test]
    fn token_probe_classification() {
        let d = |s: &str| s.to_string();
        assert_eq!(classify_probe(404, d("Not Found")), TokenState::Accepted);
        assert_eq!(
            classify_probe(
                403,
                d("this token does not have the required permissions to perform this action")
            ),
            TokenState::Accepted
        );
        assert!(matches!(
            classify_probe(403, d("authentication failed")),
            TokenState::Refused { status: 403, .. }
        ));
        assert!(matches!(
            classify_probe(401, d("The given API token does not match the format")),
            TokenState::Refused { status: 401, .. }
        ));
        assert!(matches!(
            classify_probe(404, d("(empty body)")),
            TokenState::Inconclusive { status: 404, .. }
        ));
        assert!(matches!(
            classify_probe(405, d("(empty body)")),
            TokenState::Inconclusive { .. }
        ));
    }

    #[test]
    fn version_info_parsing() -> Result<(), CratesError> {
        let v = VersionInfo::from_json(&json!({"version": {
            "id": 1, "crate": "Foo_Bar", "num": "1.0.0", "yanked": true,
            "yank_message": "bad", "created_at": "2024-01-02T03:04:05.123456Z",
            "updated_at": "2024-01-03T00:00:00+00:00"
        }}))?;
        assert_eq!(v.name.as_deref(), Some("Foo_Bar"));
        assert!(v.yanked);
        assert_eq!(v.yank_message.as_deref(), Some("bad"));
        assert_eq!(v.created_at_ms, Some(1_704_164_645_123));
        let v = VersionInfo::from_json(&json!({"version": {
            "num": "1.0.0", "yanked": false, "yank_message": null,
            "created_at": "2017-01-06T14:23:11.000000+00:00"
        }}))?;
        assert_eq!(v.yank_message, None);
        assert_eq!(v.created_at_ms, Some(1_483_712_591_000));
        assert_eq!(
            rfc3339_to_ms("2017-01-06T14:23:11"),
            Some(1_483_712_591_000)
        );
        assert_eq!(rfc3339_to_ms("yesterday"), None);
        assert!(VersionInfo::from_json(&json!({"version": {"num": "1.0.0"}})).is_err());
        assert!(VersionInfo::from_json(&json!([])).is_err());
        Ok(())
    }

    #[test]
    fn token_and_config_shapes() {
        let t: Result<Vec<ApiToken>, _> = serde_json::from_value(json!([{
            "id": 3, "name": "ci", "created_at": "2024-01-01T00:00:00Z",
            "last_used_at": null, "crate_scopes": ["foo"], "endpoint_scopes": ["yank"],
            "expired_at": null
        }]));
        let t = t.unwrap_or_default();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].endpoint_scopes, Some(vec!["yank".to_string()]));
        let g: Result<GithubConfig, _> = serde_json::from_value(json!({
            "id": 1, "crate": "foo", "repository_owner": "rust-lang",
            "repository_owner_id": 42, "repository_name": "foo-rs",
            "workflow_filename": "publish.yml", "environment": null,
            "created_at": "2025-01-01T00:00:00Z"
        }));
        assert!(matches!(g, Ok(ref g) if g.krate == "foo" && g.repository_owner_id == Some(42)));
    }
}
