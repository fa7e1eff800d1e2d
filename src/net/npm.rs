//! npm registry wire client (npmjs.org, Verdaccio, any CouchDB-style npm registry).
//!
//! Mutations are built as [`RequestRecord`]s by pure functions (`*_request`) and sent with
//! [`NpmClient::send`], so a rehearsal can record the exact request instead of sending it.
//! Credentials (`Authorization: Bearer …`, `npm-otp`) are added by `send` only, and only to
//! URLs under the configured registry.
//!
//! # Wire facts verified against Verdaccio 6.8.0 (tests/verdaccio, see the integration tests)
//!
//! * **Escaping.** Scoped names go on the wire as `@scope%2fname` (what the npm CLI sends,
//!   and what [`NpmClient::package_path`] produces). Verdaccio accepts `%2f`, `%2F` and a raw
//!   `/` alike for `GET`/`PUT /<pkg>` and `/-/package/<pkg>/dist-tags/<tag>`.
//! * **Deprecate** = `GET /<pkg>?write=true`, set `versions[v].deprecated = msg`, `PUT /<pkg>`
//!   with the **whole** packument (we drop `_attachments` and `_revisions` like the npm CLI).
//!   Verdaccio answers `201 {"ok":"package changed","success":true}`.
//!   The PUT body *replaces* the version list: a body carrying only the changed version
//!   silently deletes every other version (and moves `latest`). Never send a partial packument.
//! * **`_rev`** is kept as fetched (npmjs uses it for optimistic concurrency) but Verdaccio
//!   ignores it: a PUT without `_rev`, or with a stale one, is accepted. Verdaccio bumps it.
//! * **Undeprecate** = `deprecated: ""`. Verdaccio then *removes* the field (the packument
//!   no longer has `deprecated` on that version). Removing the field from the PUT body
//!   instead is **not** an undeprecate: when no version in the body carries `deprecated`
//!   Verdaccio treats the PUT as a re-publish and answers `409 this package is already present`.
//! * **dist-tags**: `PUT /-/package/<pkg>/dist-tags/<tag>` with JSON string body `"1.2.3"` →
//!   `201 {"ok":"package tagged"}`; unknown version → `404 this version doesn't exist`.
//!   `DELETE …/<tag>` → `201 {"ok":"tag removed"}`, also for a tag that does not exist.
//!   `GET /-/package/<pkg>/dist-tags` → `{"latest":"…",…}`; unknown package → 404.
//! * **Packument** of an unknown package → `404 {"error":"no such package available"}`;
//!   without credentials (packages are `$authenticated` in the test config) → 401.
//! * **Tokens**: `GET /-/npm/v1/tokens` → `{"objects":[{"user","token":"YWVjZ...lZjY=","key",
//!   "cidr":[],"readonly","created"}],"urls":{"next":""}}` — Verdaccio calls the whitelist
//!   `cidr`, npmjs `cidr_whitelist`; both are accepted. `POST /-/npm/v1/tokens` →
//!   `{"token","key","user","cidr","readonly","created"}`. `DELETE /-/npm/v1/tokens/token/<key>`
//!   → `200 {}`. A revoked generated token is then refused: `403 {"error":"unauthorized access"}`.
//!   (The session token from `PUT /-/user/org.couchdb.user:NAME` has no key and is not
//!   listed, so it cannot be revoked through this API.)
//! * **whoami**: `GET /-/whoami` → `{"username":"…"}`. Verdaccio answers `200 {}` for an
//!   unknown/garbage token or no token at all (anonymous); [`NpmClient::whoami`] turns an
//!   answer without `username` into a synthesized 401 so "the token is dead" is one check.
//! * No 72 h unpublish rule on Verdaccio (npmjs has one); nothing here relies on either.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use nodejs_semver::{Range, Version};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::net::http::{self, HttpError, RequestRecord};

/// Errors of the npm client: invalid input, packument problems, or the HTTP exchange.
#[derive(thiserror::Error, Debug)]
pub enum NpmError {
    #[error("invalid npm package name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid dist-tag {tag:?}: {reason}")]
    InvalidTag { tag: String, reason: String },
    #[error("invalid version {0:?}")]
    InvalidVersion(String),
    #[error("invalid version range {spec:?}: {reason}")]
    InvalidSpec { spec: String, reason: String },
    #[error("{name}@{version} does not exist in the registry")]
    UnknownVersion { name: String, version: String },
    #[error("malformed packument: {0}")]
    Malformed(String),
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl NpmError {
    /// Only HTTP failures can be transient.
    pub fn is_transient(&self) -> bool {
        matches!(self, NpmError::Http(e) if e.is_transient())
    }

    /// HTTP status, if the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            NpmError::Http(e) => e.status(),
            _ => None,
        }
    }
}

/// One access token as `GET /-/npm/v1/tokens` lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenInfo {
    /// Stable identifier used to revoke the token.
    pub key: String,
    /// The token as the registry shows it: masked (e.g. `YWVjZ...lZjY=`), never the secret.
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub readonly: bool,
    /// ISO 8601 creation time as the registry reports it.
    #[serde(default)]
    pub created: Option<String>,
    /// npmjs `cidr_whitelist`, Verdaccio `cidr`.
    #[serde(default, alias = "cidr", deserialize_with = "null_as_empty")]
    pub cidr_whitelist: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// Client for one npm registry.
pub struct NpmClient {
    /// Base URL, always ending in `/` (a path prefix such as `/npm/` is kept).
    base: url::Url,
    token: Option<SecretString>,
    otp: Option<SecretString>,
    client: reqwest::Client,
}

impl fmt::Debug for NpmClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NpmClient")
            .field("registry", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| http::REDACTED))
            .field("otp", &self.otp.as_ref().map(|_| http::REDACTED))
            .finish()
    }
}

/// Characters left as-is in a path segment (encodeURIComponent's unreserved set).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

fn enc(segment: &str) -> String {
    utf8_percent_encode(segment, COMPONENT).to_string()
}

fn invalid_name(name: &str, reason: &str) -> NpmError {
    NpmError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

fn validate_name_part(full: &str, part: &str) -> Result<(), NpmError> {
    if part.is_empty() {
        return Err(invalid_name(full, "empty name"));
    }
    if part == "." || part == ".." {
        return Err(invalid_name(full, "name cannot be '.' or '..'"));
    }
    if part.starts_with('.') || part.starts_with('_') {
        return Err(invalid_name(full, "name cannot start with '.' or '_'"));
    }
    // Legacy names may contain upper case (e.g. JSONStream); everything must be URL-safe.
    if let Some(c) = part.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || matches!(c, '-' | '_' | '.' | '~' | '!' | '*' | '\'' | '(' | ')'))
    }) {
        return Err(invalid_name(
            full,
            &format!("character {c:?} is not allowed"),
        ));
    }
    Ok(())
}

/// Validates an npm package name (`name` or `@scope/name`).
pub fn validate_name(name: &str) -> Result<(), NpmError> {
    if name.is_empty() {
        return Err(invalid_name(name, "empty name"));
    }
    if name.len() > 214 {
        return Err(invalid_name(name, "longer than 214 characters"));
    }
    if name.trim() != name {
        return Err(invalid_name(name, "leading or trailing whitespace"));
    }
    if let Some(scoped) = name.strip_prefix('@') {
        let Some((scope, pkg)) = scoped.split_once('/') else {
            return Err(invalid_name(name, "scoped name must be @scope/name"));
        };
        if pkg.contains('/') {
            return Err(invalid_name(name, "more than one '/'"));
        }
        validate_name_part(name, scope)?;
        validate_name_part(name, pkg)?;
    } else {
        if name.contains('/') {
            return Err(invalid_name(name, "'/' only allowed after a @scope"));
        }
        validate_name_part(name, name)?;
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), NpmError> {
    let bad = |reason: &str| NpmError::InvalidTag {
        tag: tag.to_string(),
        reason: reason.to_string(),
    };
    if tag.is_empty() || tag.len() > 128 {
        return Err(bad("empty or too long"));
    }
    if let Some(c) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')))
    {
        return Err(bad(&format!("character {c:?} is not allowed")));
    }
    // npm refuses tags that are semver ranges ("1.2.3", "x", "^1"): they would shadow specs.
    if Range::parse(tag).is_ok() {
        return Err(bad("a dist-tag must not be a valid semver range"));
    }
    Ok(())
}

/// Whether a packument version entry is deprecated (non-empty `deprecated` string).
fn deprecation_of(entry: &Value) -> Option<&str> {
    match entry.get("deprecated") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    }
}

fn versions_object(packument: &Value) -> Result<&serde_json::Map<String, Value>, NpmError> {
    packument
        .get("versions")
        .and_then(Value::as_object)
        .ok_or_else(|| NpmError::Malformed("no `versions` object".into()))
}

fn packument_name(packument: &Value) -> String {
    packument
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("<package>")
        .to_string()
}

/// Versions of the packument matching `spec`, ascending by semver.
///
/// `spec` is an exact version (which must exist, else [`NpmError::UnknownVersion`]) or an npm
/// range (`">=0.7.29 <0.7.30"`, `"^1.0.0"`, `"1.x"`). Prereleases match only when the range
/// names a prerelease of the same `major.minor.patch` (npm semantics). A range that matches
/// nothing gives an empty list.
pub fn versions_matching(packument: &Value, spec: &str) -> Result<Vec<String>, NpmError> {
    let versions = versions_object(packument)?;
    let spec_t = spec.trim();
    if spec_t.is_empty() {
        return Err(NpmError::InvalidSpec {
            spec: spec.to_string(),
            reason: "empty".into(),
        });
    }
    if let Ok(exact) = Version::parse(spec_t) {
        // Match by semver equality so "v1.2.3" / "=1.2.3" style inputs still find the key.
        let hit = versions
            .keys()
            .find(|k| k.as_str() == spec_t || Version::parse(k).is_ok_and(|v| v == exact));
        return match hit {
            Some(k) => Ok(vec![k.clone()]),
            None => Err(NpmError::UnknownVersion {
                name: packument_name(packument),
                version: spec_t.to_string(),
            }),
        };
    }
    let range = Range::parse(spec_t).map_err(|e| NpmError::InvalidSpec {
        spec: spec.to_string(),
        reason: e.to_string(),
    })?;
    let mut hits: Vec<(Version, String)> = versions
        .keys()
        .filter_map(|k| Version::parse(k).ok().map(|v| (v, k.clone())))
        .filter(|(v, _)| range.satisfies(v))
        .collect();
    hits.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(hits.into_iter().map(|(_, k)| k).collect())
}

/// Highest version that is not a prerelease, not deprecated and not in `bad`: where
/// `latest` should point after the bad versions are contained.
pub fn highest_good_version(packument: &Value, bad: &[String]) -> Option<String> {
    let versions = packument.get("versions")?.as_object()?;
    let bad: Vec<Version> = bad.iter().filter_map(|b| Version::parse(b).ok()).collect();
    versions
        .iter()
        .filter(|(_, entry)| deprecation_of(entry).is_none())
        .filter_map(|(k, _)| Version::parse(k).ok().map(|v| (v, k)))
        .filter(|(v, _)| !v.is_prerelease() && !bad.contains(v))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, k)| k.clone())
}

/// `sha256(token)` as hex, first 16 characters: identifies a token in logs without leaking it.
pub fn token_fingerprint(token: &SecretString) -> String {
    let digest = Sha256::digest(token.expose_secret().as_bytes());
    let mut h = hex::encode(digest);
    h.truncate(16);
    h
}

impl NpmClient {
    /// A client for `registry` (e.g. `https://registry.npmjs.org/`, `http://127.0.0.1:4873`,
    /// `https://host/npm/` with a path prefix). URLs with embedded credentials are refused.
    pub fn new(registry: &str, token: Option<SecretString>) -> Result<Self, HttpError> {
        let mut base = url::Url::parse(registry.trim())
            .map_err(|e| HttpError::Decode(format!("invalid registry URL {registry:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(HttpError::Decode(format!(
                "registry URL must be http(s), got {:?}",
                base.scheme()
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(HttpError::Decode(
                "registry URL must not embed credentials; pass a token instead".into(),
            ));
        }
        base.set_query(None);
        base.set_fragment(None);
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        Ok(NpmClient {
            base,
            token,
            otp: None,
            client: http::build_client(Duration::from_secs(60)),
        })
    }

    /// Sends `npm-otp` with every request from now on.
    pub fn with_otp(mut self, otp: Option<SecretString>) -> Self {
        self.otp = otp;
        self
    }

    /// Replaces the HTTP client (e.g. another timeout).
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// The registry base URL, ending in `/`.
    pub fn registry(&self) -> &str {
        self.base.as_str()
    }

    /// Fingerprint of the configured token, if any (safe to log).
    pub fn token_fingerprint(&self) -> Option<String> {
        self.token.as_ref().map(token_fingerprint)
    }

    /// The wire path of a package: `ua-parser-js`, `@solana%2fweb3.js`.
    pub fn package_path(name: &str) -> Result<String, NpmError> {
        validate_name(name)?;
        Ok(match name.strip_prefix('@') {
            Some(scoped) => match scoped.split_once('/') {
                Some((scope, pkg)) => format!("@{}%2f{}", enc(scope), enc(pkg)),
                None => return Err(invalid_name(name, "scoped name must be @scope/name")),
            },
            None => enc(name),
        })
    }

    /// Absolute URL of an already-escaped registry path (no leading `/`).
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str(), path.trim_start_matches('/'))
    }

    fn in_registry(&self, url: &str) -> bool {
        url.starts_with(self.base.as_str())
    }

    /// Sends `req`, adding `Authorization` (and `npm-otp`) — which are never stored in the
    /// record. Refuses URLs outside the registry so credentials cannot leak to another host.
    /// Returns the JSON answer (`null` for an empty body).
    pub async fn send(&self, req: &RequestRecord) -> Result<Value, HttpError> {
        self.send_with(req, self.token.as_ref()).await?.json()
    }

    async fn send_with(
        &self,
        req: &RequestRecord,
        token: Option<&SecretString>,
    ) -> Result<http::HttpResponse, HttpError> {
        if !self.in_registry(&req.url) {
            return Err(HttpError::Decode(format!(
                "refusing to send {} {}: not under registry {}",
                req.method,
                req.url,
                self.base.as_str()
            )));
        }
        let bearer = token.map(|t| SecretString::from(format!("Bearer {}", t.expose_secret())));
        let mut secret_headers: Vec<(&str, &SecretString)> = Vec::new();
        if let Some(b) = &bearer {
            secret_headers.push(("authorization", b));
        }
        if let Some(o) = &self.otp {
            secret_headers.push(("npm-otp", o));
        }
        let mut scrub_also: Vec<(&str, &SecretString)> = secret_headers.clone();
        if let Some(t) = token {
            // also scrub the bare token if the registry echoes it without "Bearer"
            scrub_also.push(("", t));
        }
        match http::send_record(&self.client, req, &secret_headers).await {
            Err(HttpError::Status {
                status,
                method,
                url,
                body,
                retry_after_ms,
            }) => {
                let secrets: Vec<&SecretString> = scrub_also.iter().map(|(_, s)| *s).collect();
                Err(HttpError::Status {
                    status,
                    method,
                    url,
                    body: http::scrub(&body, &secrets),
                    retry_after_ms,
                })
            }
            other => other,
        }
    }

    /// The packument (`GET /<pkg>`, `?write=true` for the full document a PUT must echo).
    /// `None` on 404.
    pub async fn packument(&self, name: &str, write: bool) -> Result<Option<Value>, NpmError> {
        let mut path = Self::package_path(name)?;
        if write {
            path.push_str("?write=true");
        }
        let rec = RequestRecord::new("GET", self.url(&path));
        match self.send(&rec).await {
            Ok(v) if v.is_object() => Ok(Some(v)),
            Ok(_) => Err(NpmError::Malformed(format!(
                "packument of {name} is not an object"
            ))),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Builds (does not send) the `PUT /<pkg>` that sets `deprecated = message` on `versions`
    /// of `packument` (fetched with `write = true`). An empty `message` undeprecates (the
    /// field is sent as `""`, which Verdaccio and npmjs both treat as removal).
    ///
    /// Returns the request and the versions whose state actually changes. Errors if a
    /// version is not in the packument. When the list is empty there is nothing to do:
    /// don't send (Verdaccio may answer 409 to a PUT that deprecates nothing).
    pub fn deprecate_request(
        &self,
        name: &str,
        packument: &Value,
        versions: &[String],
        message: &str,
    ) -> Result<(RequestRecord, Vec<String>), NpmError> {
        let path = Self::package_path(name)?;
        if let Some(pname) = packument.get("name").and_then(Value::as_str)
            && pname != name
        {
            return Err(NpmError::Malformed(format!(
                "packument is for {pname:?}, not {name:?}"
            )));
        }
        let mut body = packument.clone();
        let obj = body
            .as_object_mut()
            .ok_or_else(|| NpmError::Malformed("packument is not an object".into()))?;
        // Like the npm CLI: never echo attachments or revision history back.
        obj.remove("_attachments");
        obj.remove("_revisions");
        let vers = obj
            .get_mut("versions")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| NpmError::Malformed("no `versions` object".into()))?;
        let mut changed = Vec::new();
        let mut seen = BTreeSet::new();
        for v in versions {
            if !seen.insert(v.as_str()) {
                continue;
            }
            let entry = vers
                .get_mut(v)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| NpmError::UnknownVersion {
                    name: name.to_string(),
                    version: v.clone(),
                })?;
            let current = match entry.get("deprecated") {
                Some(Value::String(s)) => s.as_str(),
                _ => "",
            };
            if current != message {
                changed.push(v.clone());
            }
            entry.insert("deprecated".into(), Value::String(message.to_string()));
        }
        let rec = RequestRecord::new("PUT", self.url(&path)).with_json(body);
        Ok((rec, changed))
    }

    /// Builds `PUT /-/package/<pkg>/dist-tags/<tag>` with body `"<version>"`.
    pub fn dist_tag_set_request(
        &self,
        name: &str,
        tag: &str,
        version: &str,
    ) -> Result<RequestRecord, NpmError> {
        let path = Self::package_path(name)?;
        validate_tag(tag)?;
        if Version::parse(version).is_err() {
            return Err(NpmError::InvalidVersion(version.to_string()));
        }
        Ok(RequestRecord::new(
            "PUT",
            self.url(&format!("-/package/{path}/dist-tags/{}", enc(tag))),
        )
        .with_json(Value::String(version.to_string())))
    }

    /// Builds `DELETE /-/package/<pkg>/dist-tags/<tag>`. Removing `latest` is refused:
    /// move it with [`Self::dist_tag_set_request`] instead.
    pub fn dist_tag_rm_request(&self, name: &str, tag: &str) -> Result<RequestRecord, NpmError> {
        let path = Self::package_path(name)?;
        validate_tag(tag)?;
        if tag == "latest" {
            return Err(NpmError::InvalidTag {
                tag: tag.into(),
                reason: "`latest` cannot be removed, only moved".into(),
            });
        }
        Ok(RequestRecord::new(
            "DELETE",
            self.url(&format!("-/package/{path}/dist-tags/{}", enc(tag))),
        ))
    }

    /// `GET /-/package/<pkg>/dist-tags`.
    pub async fn dist_tags(&self, name: &str) -> Result<BTreeMap<String, String>, NpmError> {
        let path = Self::package_path(name)?;
        let rec = RequestRecord::new("GET", self.url(&format!("-/package/{path}/dist-tags")));
        let v = self.send(&rec).await?;
        let obj = v
            .as_object()
            .ok_or_else(|| NpmError::Malformed("dist-tags answer is not an object".into()))?;
        Ok(obj
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect())
    }

    /// `GET /-/whoami` with `token` (or the client's own token when `None`). An answer
    /// without `username` (Verdaccio's `200 {}` for an unknown token) is reported as a
    /// synthesized 401, so a dead token always gives 401/403.
    pub async fn whoami(&self, token: Option<&SecretString>) -> Result<String, HttpError> {
        let rec = RequestRecord::new("GET", self.url("-/whoami"));
        let token = token.or(self.token.as_ref());
        let v = self.send_with(&rec, token).await?.json()?;
        match v.get("username").and_then(Value::as_str) {
            Some(u) if !u.is_empty() => Ok(u.to_string()),
            _ => Err(HttpError::Status {
                status: 401,
                method: rec.method,
                url: rec.url,
                body: "recall: registry answered without a username (anonymous); synthesized 401"
                    .into(),
                retry_after_ms: None,
            }),
        }
    }

    /// `GET /-/npm/v1/tokens`, following `urls.next` (same registry only).
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, HttpError> {
        let mut out = Vec::new();
        let mut url = self.url("-/npm/v1/tokens");
        for _page in 0..100 {
            let v = self.send(&RequestRecord::new("GET", url.clone())).await?;
            let objects = v
                .get("objects")
                .and_then(Value::as_array)
                .ok_or_else(|| HttpError::Decode("token list has no `objects` array".into()))?;
            for o in objects {
                let t: TokenInfo = serde_json::from_value(o.clone())
                    .map_err(|e| HttpError::Decode(format!("bad token entry: {e}")))?;
                out.push(t);
            }
            let next = v
                .get("urls")
                .and_then(|u| u.get("next"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if next.is_empty() {
                return Ok(out);
            }
            let next_url = self
                .base
                .join(next)
                .map_err(|e| HttpError::Decode(format!("bad next page URL: {e}")))?;
            url = next_url.to_string();
        }
        Err(HttpError::Decode("token list: more than 100 pages".into()))
    }

    /// The registry's own publish time of `version` (`time[version]` of the packument),
    /// in milliseconds since the epoch.
    pub fn publish_time(packument: &Value, version: &str) -> Option<i64> {
        let t = packument.get("time")?.get(version)?.as_str()?;
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|d| d.timestamp_millis())
    }

    /// Step one of unpublishing one version, as the npm CLI does it: `PUT /<pkg>/-rev/<rev>`
    /// with the whole packument minus that version; dist-tags that pointed at it are
    /// dropped, and `latest` moves to the highest good version left. Refuses to remove the
    /// last version (that would unpublish the whole package, which Recall never does).
    pub fn unpublish_put_request(
        &self,
        name: &str,
        packument: &Value,
        version: &str,
    ) -> Result<RequestRecord, NpmError> {
        let path = Self::package_path(name)?;
        if Version::parse(version).is_err() {
            return Err(NpmError::InvalidVersion(version.to_string()));
        }
        let mut body = packument.clone();
        let obj = body
            .as_object_mut()
            .ok_or_else(|| NpmError::Malformed("packument is not an object".into()))?;
        obj.remove("_attachments");
        obj.remove("_revisions");
        let rev = obj
            .get("_rev")
            .and_then(Value::as_str)
            .unwrap_or("0-0")
            .to_string();
        let vers = obj
            .get_mut("versions")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| NpmError::Malformed("no `versions` object".into()))?;
        if vers.remove(version).is_none() {
            return Err(NpmError::UnknownVersion {
                name: name.to_string(),
                version: version.to_string(),
            });
        }
        if vers.is_empty() {
            return Err(NpmError::Malformed(format!(
                "{name}@{version} is the only version: unpublishing it would remove the whole package, which Recall refuses to do"
            )));
        }
        let remaining = Value::Object(serde_json::Map::from_iter([(
            "versions".to_string(),
            Value::Object(vers.clone()),
        )]));
        if let Some(Value::Object(t)) = obj.get_mut("time") {
            t.remove(version);
        }
        if let Some(Value::Object(tags)) = obj.get_mut("dist-tags") {
            let was_latest = tags.get("latest").and_then(Value::as_str) == Some(version);
            tags.retain(|_, v| v.as_str() != Some(version));
            if was_latest {
                let next = highest_good_version(&remaining, &[version.to_string()]).or_else(|| {
                    remaining
                        .get("versions")
                        .and_then(Value::as_object)
                        .and_then(|m| {
                            m.keys()
                                .filter_map(|k| Version::parse(k).ok().map(|v| (v, k.clone())))
                                .max_by(|a, b| a.0.cmp(&b.0))
                                .map(|(_, k)| k)
                        })
                });
                if let Some(n) = next {
                    tags.insert("latest".into(), Value::String(n));
                }
            }
        }
        Ok(
            RequestRecord::new("PUT", self.url(&format!("{path}/-rev/{}", enc(&rev))))
                .with_json(body),
        )
    }

    /// Step two: `DELETE /<tarball path>/-rev/<rev>` for the version's tarball, with the
    /// revision read after step one. The tarball path comes from `dist.tarball` when it
    /// points into this registry, else the conventional `/<pkg>/-/<basename>-<v>.tgz`.
    pub fn unpublish_tarball_request(
        &self,
        name: &str,
        version: &str,
        dist_tarball: Option<&str>,
        rev: &str,
    ) -> Result<RequestRecord, NpmError> {
        let path = Self::package_path(name)?;
        let tarball = match dist_tarball
            .and_then(|t| url::Url::parse(t).ok())
            .filter(|u| u.host_str() == self.base.host_str() && u.port() == self.base.port())
        {
            Some(u) => {
                let base_path = self.base.path();
                u.path()
                    .strip_prefix(base_path)
                    .unwrap_or(u.path().trim_start_matches('/'))
                    .to_string()
            }
            None => {
                let base = name.rsplit('/').next().unwrap_or(name);
                format!("{path}/-/{}-{}.tgz", enc(base), enc(version))
            }
        };
        if tarball.contains("..") || !tarball.ends_with(".tgz") {
            return Err(NpmError::Malformed(format!(
                "unexpected tarball path {tarball:?}"
            )));
        }
        Ok(RequestRecord::new(
            "DELETE",
            self.url(&format!("{tarball}/-rev/{}", enc(rev))),
        ))
    }

    /// `GET /-/package/<pkg>/trust`: the trusted-publishing configurations (npm ≥ 11.10
    /// API). Accepts a list, `{"objects": […]}` or a single object.
    pub async fn trusted_publishers(&self, name: &str) -> Result<Vec<Value>, NpmError> {
        let path = Self::package_path(name)?;
        let v = self
            .send(&RequestRecord::new(
                "GET",
                self.url(&format!("-/package/{path}/trust")),
            ))
            .await?;
        Ok(match v {
            Value::Array(a) => a,
            Value::Object(ref o) if o.get("objects").is_some_and(Value::is_array) => o
                .get("objects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            Value::Object(_) => vec![v],
            Value::Null => Vec::new(),
            other => {
                return Err(NpmError::Malformed(format!(
                    "trust answer is not a list: {}",
                    http::truncate_chars(&other.to_string(), 80)
                )));
            }
        })
    }

    /// `DELETE /-/package/<pkg>/trust/<id>`.
    pub fn trust_delete_request(&self, name: &str, id: &str) -> Result<RequestRecord, NpmError> {
        let path = Self::package_path(name)?;
        if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control() || c == '/') {
            return Err(NpmError::Malformed(format!("invalid trust id {id:?}")));
        }
        Ok(RequestRecord::new(
            "DELETE",
            self.url(&format!("-/package/{path}/trust/{}", enc(id))),
        ))
    }

    /// `POST /-/npm/v1/tokens` as the timeline shows it (the password elided).
    pub fn create_token_record(&self, readonly: bool, cidr: &[String]) -> RequestRecord {
        RequestRecord::new("POST", self.url("-/npm/v1/tokens")).with_json(
            serde_json::json!({ "password": http::REDACTED, "readonly": readonly, "cidr_whitelist": cidr }),
        )
    }

    /// Creates a token for the account of the client's token (npm asks for the account
    /// password again). Returns the new token — registered for scrubbing, never logged —
    /// and its key. Neither the password nor the token can reach an error message.
    pub async fn create_token(
        &self,
        password: &SecretString,
        readonly: bool,
        cidr: &[String],
    ) -> Result<(SecretString, String), HttpError> {
        let rec = RequestRecord::new("POST", self.url("-/npm/v1/tokens")).with_json(
            serde_json::json!({ "password": password.expose_secret(), "readonly": readonly, "cidr_whitelist": cidr }),
        );
        let scrub = |e: HttpError| match e {
            HttpError::Status {
                status,
                method,
                url,
                body,
                retry_after_ms,
            } => HttpError::Status {
                status,
                method,
                url,
                body: http::scrub(&body, &[password]),
                retry_after_ms,
            },
            other => other,
        };
        let v = self
            .send_with(&rec, self.token.as_ref())
            .await
            .map_err(scrub)?
            .json()
            .map_err(|_| HttpError::Decode("the token answer is not JSON".into()))?;
        let token = v
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| HttpError::Decode("the registry answered without a `token`".into()))?;
        let token = SecretString::from(token.to_string());
        crate::secrets::register(&token);
        let key = v
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok((token, key))
    }

    /// Builds `DELETE /-/npm/v1/tokens/token/<key>`.
    pub fn revoke_token_request(&self, key: &str) -> Result<RequestRecord, NpmError> {
        if key.is_empty()
            || key.len() > 256
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(NpmError::Malformed(format!("invalid token key {key:?}")));
        }
        Ok(RequestRecord::new(
            "DELETE",
            self.url(&format!("-/npm/v1/tokens/token/{}", enc(key))),
        ))
    }
}

#[cfg(test)]
#[path = "npm_tests.rs"]
mod tests;
