//! OCI distribution (registry v2) wire client: resolve, tags, untag, referrers.
//!
//! Mutations are built as [`RequestRecord`]s by pure functions (`*_request`) and sent with
//! [`OciClient::send`], so a rehearsal can record the exact request instead of sending it.
//! Credentials are added by `send` only (never stored in a record), and only to URLs under
//! the configured registry. Reads (`GET`/`HEAD`) may be sent during a rehearsal.
//!
//! # API
//!
//! * [`Reference::parse`] — `host[:port]/repo[/more][:tag][@sha256:<64 hex>]`, validated per
//!   the distribution grammar ([`validate_repo`], [`validate_tag`], [`validate_digest`]).
//!   References are fully qualified: there is no implicit `docker.io/library/`.
//! * [`OciAuth`] — `Anonymous`, `Basic { username, password }`, `Bearer { token }` (static).
//!   Registries' token flow is automatic: a `401` with `WWW-Authenticate: Bearer realm=…,
//!   service=…,scope=…` makes the client `GET realm?service=…&scope=…` (with Basic credentials
//!   if configured), read `token`/`access_token`, cache it per scope until `expires_in`
//!   (default 60 s) and retry once. A `Basic` challenge is answered with the Basic
//!   credentials, and Basic is then sent up front for that client. A realm on plain `http://`
//!   is refused unless its host is the insecure registry itself or listed with
//!   [`OciClient::with_insecure_hosts`].
//! * [`OciClient::new`]`(host, auth, insecure, timeout)` (`insecure` = plain `http://`) and
//!   [`OciClient::with_base_url`]`(url, auth, timeout)` (tests, path-less).
//! * Reads: [`OciClient::resolve`] → [`Resolved`] `{ digest, media_type, size, raw, platforms }`,
//!   [`OciClient::manifest_exists`], [`OciClient::head_manifest`], [`OciClient::blob_exists`],
//!   [`OciClient::tags`] (follows `Link: <…>; rel="next"`), [`OciClient::tags_pointing_at`]
//!   (one `HEAD` per tag: O(tags) requests, fine for incident-sized repos, slow for repos
//!   with thousands of tags), [`OciClient::referrers`] → [`Referrers`].
//! * Request builders (pure): [`OciClient::put_manifest_request`],
//!   [`OciClient::delete_manifest_request`], [`OciClient::upload_start_request`],
//!   [`OciClient::upload_finish_request`]; [`OciClient::send`] sends any record with auth.
//! * Live helpers: [`OciClient::ensure_blob`] (HEAD, then POST + PUT, see below) with
//!   [`OciClient::ensure_blob_plan`]; [`OciClient::untag`] → [`UntagOutcome`] with
//!   [`OciClient::untag_plan`] → [`UntagPlan`]; [`dummy_manifest`] is the exact fallback body.
//! * Preflight reads (GET/HEAD/OPTIONS only, any status answered with its headers):
//!   [`OciClient::read_answer`] → [`ReadAnswer`] (`allow()`, `challenges()`),
//!   [`OciClient::ping`], [`OciClient::manifest_options`], [`OciClient::referrers_answer`];
//!   [`OciClient::token_grant`] asks a Bearer realm for an explicit scope and reads the
//!   token's JWT `access` claim ([`jwt_access`], [`granted_actions`]) without keeping it.
//!
//! # Untag
//!
//! `DELETE /v2/<name>/manifests/<tag>` is tried first (OCI 1.1 registries, Harbor, …). If the
//! registry refuses it as unsupported (400/405/501, or 404 while the tag still resolves), the
//! portable fallback runs: make sure the empty config blob `{}` exists, `PUT` a unique
//! zero-layer OCI manifest (annotation `io.recall.untag` = the caller's nonce, plus the tag)
//! to the tag, then `DELETE` that dummy **by its own digest**. Only the dummy's digest — the
//! sha256 of bytes we built, confirmed by the registry's `Docker-Content-Digest` — is ever
//! deleted: deleting the real image's digest would remove every tag pointing at it. A
//! registry that refuses the overwrite too (immutable tags: 400/403/409 `TAG_INVALID`,
//! `MANIFEST_INVALID`, `DENIED`) yields [`OciError::Unsupported`] saying what to do. A
//! registry with deletes disabled (405 on the dummy DELETE) leaves the tag on the dummy: the
//! real image is untagged all the same, and [`UntagOutcome::dummy_deleted`] is false.
//!
//! # Wire facts verified against the real distribution 2.8.2 (Debian `docker-registry`)
//!
//! Checked by hand with curl and pinned by `tests/it/oci_registry.rs`:
//!
//! * **Tag DELETE is unsupported**: `DELETE /v2/<name>/manifests/<tag>` → `400
//!   {"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded
//!   content"}]}` — for an existing and an unknown tag alike. Hence the fallback above.
//! * **DELETE by digest** (with `storage.delete.enabled: true`) → `202 Accepted`, empty body,
//!   and *every* tag pointing at that digest is gone (tags list, `GET manifests/<tag>` → 404
//!   `MANIFEST_UNKNOWN`). A second DELETE → `404 MANIFEST_UNKNOWN`.
//! * **Zero-layer OCI manifest** with config `application/vnd.oci.empty.v1+json`
//!   (`sha256:44136fa3…8a`, size 2) and `"layers": []` is accepted (`201`) — but only if the
//!   config blob exists *in that repository*; otherwise `400 MANIFEST_BLOB_UNKNOWN` with the
//!   digest as detail. An index whose child manifests are missing → the same 400.
//! * **Blob upload**: `POST /v2/<name>/blobs/uploads/?digest=…` with a body is **not** a
//!   monolithic upload: 2.8.2 ignores body and digest, answers `202` with `Location:
//!   …/blobs/uploads/<uuid>?_state=…` and `Range: 0-0`, and stores nothing. The upload is
//!   POST then `PUT <Location>&digest=sha256:…` with the bytes → `201` + `Docker-Content-Digest`.
//!   So a record cannot know the PUT URL in advance: [`OciClient::ensure_blob`] is a live
//!   helper and [`OciClient::ensure_blob_plan`] writes the PUT URL as [`UPLOAD_LOCATION`].
//!   Cross-repo mount `POST …/uploads/?mount=<digest>&from=<repo>` → `201` (not used).
//! * **Manifest GET/HEAD** answer `Docker-Content-Digest`, `Content-Type` = the manifest's
//!   media type, and an `Etag` of the digest. An OCI manifest requested **without** an OCI
//!   media type in `Accept` → `404 MANIFEST_UNKNOWN "OCI manifest found, but accept header
//!   does not support OCI manifests"`: always send [`MANIFEST_ACCEPT`] (a comma-separated
//!   list is understood). `PUT` by digest with mismatching bytes → `400 DIGEST_INVALID`; a
//!   `Content-Type` not matching the body's media type → `400 MANIFEST_INVALID`.
//!   Re-putting identical bytes under another tag yields the identical digest.
//! * **Referrers**: `GET /v2/<name>/referrers/<digest>` → `404 text/plain "404 page not
//!   found"` (route unknown: 2.8.2 predates OCI 1.1), so the `sha256-<hex>` tag fallback is
//!   used. Invalid tag paths (`/manifests/-bad`) get the same plain 404.
//! * **tags/list** ignores `n=`/`last=` (no pagination, no `Link`; only `_catalog` pages),
//!   returns tags in storage order, not sorted ([`OciClient::tags`] sorts), `"tags": null`
//!   once the last tag is gone, and `404 NAME_UNKNOWN` for an unknown repository.
//! * Every answer carries `Docker-Distribution-Api-Version: registry/2.0`; `GET /v2/` → `200
//!   {}` without auth.
//! * **OPTIONS** `/v2/<name>/manifests/<ref>` → `200`, empty body, `Allow: DELETE, GET, HEAD,
//!   PUT` — for any reference, an unknown tag or repository included (the route's methods,
//!   not the object's). In read-only mode (`storage.maintenance.readonly.enabled: true`) →
//!   `Allow: GET, HEAD` (`blobs/uploads/` too; normally `DELETE, GET, HEAD, PATCH, POST,
//!   PUT`). With `storage.delete.enabled: false` the manifest `Allow` still lists DELETE, and
//!   the DELETE itself answers `405 {"errors":[{"code":"UNSUPPORTED",…}]}`. `OPTIONS /v2/`
//!   answers like `GET /v2/` (`200 {}`, no `Allow`); `OPTIONS …/referrers/<digest>` → the
//!   plain-text 404.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::net::http::{self, HttpError, HttpResponse, RequestRecord};

/// OCI image manifest.
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI empty descriptor media type (the `{}` config of artifacts and of the untag dummy).
pub const MEDIA_OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The empty JSON blob `{}`.
pub const EMPTY_JSON: &str = "{}";
/// sha256 of [`EMPTY_JSON`].
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// `Accept` for manifest reads: every manifest type the client understands.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// Annotation carrying the caller's nonce on the untag dummy manifest.
pub const UNTAG_ANNOTATION: &str = "io.recall.untag";
/// Annotation carrying the untagged tag on the untag dummy manifest.
pub const UNTAG_TAG_ANNOTATION: &str = "io.recall.untag.tag";
/// Placeholder for the upload URL the registry hands out in answer to the upload POST; used
/// in planned (not sent) blob-upload PUT records.
pub const UPLOAD_LOCATION: &str = "<Location of the upload POST answer>";

/// Longest repository name (distribution's limit, host included, is 255).
const MAX_NAME_LEN: usize = 255;
/// Most pages [`OciClient::tags`] follows before giving up.
const MAX_PAGES: usize = 1000;

/// Errors of the OCI client. Never contains credentials.
#[derive(thiserror::Error, Debug)]
pub enum OciError {
    #[error("invalid image reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },
    #[error("{repo}@{reference} not found in the registry")]
    NotFound { repo: String, reference: String },
    #[error("not supported by the registry: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("malformed registry answer: {0}")]
    Malformed(String),
}

impl OciError {
    /// Only HTTP failures can be transient.
    pub fn is_transient(&self) -> bool {
        matches!(self, OciError::Http(e) if e.is_transient())
    }

    /// HTTP status, if the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            OciError::Http(e) => e.status(),
            _ => None,
        }
    }
}

fn invalid(input: &str, reason: impl Into<String>) -> OciError {
    OciError::InvalidReference {
        input: http::truncate_chars(input, 300),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------

/// A parsed image reference `host[:port]/repo[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// `registry.example.com`, `127.0.0.1:5000`, `[::1]:5000`.
    pub host: String,
    /// `team/app` (path components, lower case).
    pub repo: String,
    pub tag: Option<String>,
    /// `sha256:<64 lowercase hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `host[:port]/repo[/more][:tag][@sha256:<hex>]`.
    pub fn parse(input: &str) -> Result<Reference, OciError> {
        if input.is_empty() {
            return Err(invalid(input, "empty"));
        }
        if input.len() > MAX_NAME_LEN + 1 + 128 + 1 + 71 {
            return Err(invalid(input, "too long"));
        }
        if let Some(c) = input
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
        {
            return Err(invalid(
                input,
                format!("contains the character {c:?} (only ASCII without spaces is allowed)"),
            ));
        }
        if input.contains("://") {
            return Err(invalid(
                input,
                "drop the scheme: a reference is host[:port]/repo[:tag][@digest]",
            ));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                validate_digest(d).map_err(|e| invalid(input, reason_of(e)))?;
                (r, Some(d.to_string()))
            }
            None => (input, None),
        };
        let (host, path) = rest.split_once('/').ok_or_else(|| {
            invalid(
                input,
                "missing repository: expected host[:port]/repo (references are fully qualified)",
            )
        })?;
        validate_host(host).map_err(|e| invalid(input, reason_of(e)))?;
        // A tag is after the last ':' of the last path component.
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match path[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&path[..at], Some(path[at + 1..].to_string()))
            }
            None => (path, None),
        };
        validate_repo(repo).map_err(|e| invalid(input, reason_of(e)))?;
        if host.len() + 1 + repo.len() > MAX_NAME_LEN {
            return Err(invalid(
                input,
                format!("host/repository is longer than {MAX_NAME_LEN} characters"),
            ));
        }
        if let Some(t) = &tag {
            validate_tag(t).map_err(|e| invalid(input, reason_of(e)))?;
        }
        Ok(Reference {
            host: host.to_string(),
            repo: repo.to_string(),
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest if present, else the tag, else `latest`.
    pub fn target(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn reason_of(e: OciError) -> String {
    match e {
        OciError::InvalidReference { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// A registry host: `name[:port]`, an IPv4 address, or `[ipv6][:port]`.
pub fn validate_host(host: &str) -> Result<(), OciError> {
    if host.is_empty() {
        return Err(invalid(host, "empty registry host"));
    }
    if host.contains('@') {
        return Err(invalid(host, "registry host must not carry credentials"));
    }
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| invalid(host, "unterminated [IPv6] host"))?;
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(invalid(host, "invalid IPv6 address"));
        }
        match after {
            "" => (addr, None),
            p => (
                addr,
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| invalid(host, "junk after [IPv6] host"))?,
                ),
            ),
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(host, format!("invalid port {p:?}")));
        }
        if p.parse::<u32>().map_or(true, |n| n == 0 || n > 65_535) {
            return Err(invalid(host, format!("port {p} out of range")));
        }
    }
    if !host.starts_with('[') {
        let ok = name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        if !ok {
            return Err(invalid(
                host,
                format!("invalid registry host name {name:?}"),
            ));
        }
    }
    Ok(())
}

/// A repository name: `/`-separated components of `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`.
pub fn validate_repo(repo: &str) -> Result<(), OciError> {
    if repo.is_empty() {
        return Err(invalid(repo, "empty repository name"));
    }
    if repo.len() > MAX_NAME_LEN {
        return Err(invalid(
            repo,
            format!("repository name longer than {MAX_NAME_LEN} characters"),
        ));
    }
    for comp in repo.split('/') {
        if comp.is_empty() {
            return Err(invalid(
                repo,
                "empty path component (leading, trailing or double '/')",
            ));
        }
        if let Err(why) = check_component(comp) {
            return Err(invalid(
                repo,
                format!("repository component {comp:?}: {why}"),
            ));
        }
    }
    Ok(())
}

fn check_component(comp: &str) -> Result<(), &'static str> {
    let b = comp.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.iter().any(|c| c.is_ascii_uppercase()) {
        return Err("must be lower case");
    }
    if !b
        .iter()
        .all(|&c| alnum(c) || matches!(c, b'.' | b'_' | b'-'))
    {
        return Err("only a-z, 0-9 and the separators . _ __ - are allowed");
    }
    if !b.first().is_some_and(|&c| alnum(c)) || !b.last().is_some_and(|&c| alnum(c)) {
        return Err("must start and end with a letter or digit");
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &comp[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return Err("separators are '.', '_', '__' or a run of '-'");
        }
    }
    Ok(())
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), OciError> {
    let b = tag.as_bytes();
    if b.is_empty() {
        return Err(invalid(tag, "empty tag"));
    }
    if b.len() > 128 {
        return Err(invalid(tag, "tag longer than 128 characters"));
    }
    if !(b[0].is_ascii_alphanumeric() || b[0] == b'_') {
        return Err(invalid(tag, "tag must start with a letter, digit or '_'"));
    }
    if !b
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
    {
        return Err(invalid(tag, "tag may only contain A-Z a-z 0-9 _ . -"));
    }
    Ok(())
}

/// A digest: `sha256:` + 64 lowercase hex (the only algorithm Recall handles).
pub fn validate_digest(digest: &str) -> Result<(), OciError> {
    let Some((alg, hex)) = digest.split_once(':') else {
        return Err(invalid(digest, "digest must be sha256:<64 hex>"));
    };
    if alg != "sha256" {
        return Err(invalid(
            digest,
            format!("unsupported digest algorithm {alg:?} (only sha256)"),
        ));
    }
    if hex.len() != 64 {
        return Err(invalid(
            digest,
            format!(
                "sha256 digest must have 64 hex characters, not {}",
                hex.len()
            ),
        ));
    }
    if !hex
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return Err(invalid(digest, "digest hex must be lowercase 0-9a-f"));
    }
    Ok(())
}

/// True if `s` is a valid `sha256:` digest (as opposed to a tag).
pub fn is_digest(s: &str) -> bool {
    validate_digest(s).is_ok()
}

/// A tag or a digest.
fn validate_target(reference: &str) -> Result<(), OciError> {
    if reference.contains(':') {
        validate_digest(reference)
    } else {
        validate_tag(reference)
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The tag under which the OCI referrers fallback stores an index: `sha256-<hex>`.
pub fn referrers_tag(digest: &str) -> Result<String, OciError> {
    validate_digest(digest)?;
    Ok(digest.replacen(':', "-", 1))
}

/// The exact bytes of the untag dummy: a zero-layer OCI manifest with the empty config and
/// annotations naming the nonce and the tag, so each (nonce, tag) has its own digest.
pub fn dummy_manifest(tag: &str, nonce: &str) -> String {
    let mut ann = serde_json::Map::new();
    ann.insert(UNTAG_ANNOTATION.into(), Value::String(nonce.to_string()));
    ann.insert(UNTAG_TAG_ANNOTATION.into(), Value::String(tag.to_string()));
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "config": { "mediaType": MEDIA_OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
        "annotations": Value::Object(ann),
    });
    v.to_string()
}

// ---------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------

/// Registry credentials.
#[derive(Clone)]
pub enum OciAuth {
    Anonymous,
    /// Username and password (or a registry access token used as password).
    Basic {
        username: String,
        password: SecretString,
    },
    /// A static bearer token sent as `Authorization: Bearer …`.
    Bearer {
        token: SecretString,
    },
}

impl fmt::Debug for OciAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OciAuth::Anonymous => f.write_str("Anonymous"),
            OciAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &http::REDACTED)
                .finish(),
            OciAuth::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("token", &http::REDACTED)
                .finish(),
        }
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-cased scheme (`bearer`, `basic`).
    pub scheme: String,
    /// Lower-cased parameter names → unquoted values.
    pub params: BTreeMap<String, String>,
}

/// Parses `WWW-Authenticate` values (RFC 9110 §11.6.1): several challenges, quoted strings
/// with commas and `\"` escapes. Unparseable trailing input is ignored.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let s = header.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let is_tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&c);
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == b' ' || s[*i] == b'\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> String {
        let start = *i;
        while *i < s.len() && is_tchar(s[*i]) {
            *i += 1;
        }
        header[start..*i].to_string()
    };
    loop {
        while i < s.len() && (s[i] == b' ' || s[i] == b'\t' || s[i] == b',') {
            i += 1;
        }
        if i >= s.len() {
            break;
        }
        let scheme = token(&mut i);
        if scheme.is_empty() {
            break;
        }
        let mut ch = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        loop {
            skip_ws(&mut i);
            let save = i;
            let name = token(&mut i);
            skip_ws(&mut i);
            if name.is_empty() || i >= s.len() || s[i] != b'=' {
                // Not a parameter: the next challenge's scheme (or junk).
                i = save;
                break;
            }
            i += 1;
            skip_ws(&mut i);
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = String::new();
                let mut rest = header[i..].chars();
                let mut used = 0;
                let mut closed = false;
                while let Some(c) = rest.next() {
                    used += c.len_utf8();
                    match c {
                        '\\' => {
                            if let Some(n) = rest.next() {
                                used += n.len_utf8();
                                v.push(n);
                            }
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => v.push(c),
                    }
                }
                i += used;
                if !closed {
                    ch.params.insert(name.to_ascii_lowercase(), v);
                    out.push(ch);
                    return out;
                }
                v
            } else {
                // token value (token68 padding '=' included)
                let start = i;
                while i < s.len() && (is_tchar(s[i]) || s[i] == b'=') {
                    i += 1;
                }
                header[start..i].to_string()
            };
            ch.params.insert(name.to_ascii_lowercase(), value);
            skip_ws(&mut i);
            if i < s.len() && s[i] == b',' {
                i += 1;
                continue;
            }
            break;
        }
        out.push(ch);
        if i < s.len() && !(s[i] == b',' || s[i] == b' ' || s[i] == b'\t' || is_tchar(s[i])) {
            break;
        }
    }
    out
}

/// Where a realm may be fetched from: `https` always; plain `http` only if the realm's host
/// (with port) is the insecure registry itself or listed insecure. Returns the parsed URL.
pub fn check_realm(
    realm: &str,
    registry: &url::Url,
    insecure_hosts: &[String],
) -> Result<url::Url, OciError> {
    let url = url::Url::parse(realm)
        .map_err(|e| OciError::Unsupported(format!("token realm {realm:?} is not a URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OciError::Unsupported(
            "token realm embeds credentials; refusing it".into(),
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" => {
            let host = host_port(&url);
            let own = registry.scheme() == "http" && host_port(registry) == host;
            if own || insecure_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
                Ok(url)
            } else {
                Err(OciError::Unsupported(format!(
                    "token realm {realm} is plain http; refusing to send credentials or \
                     trust a token over it. List {host} as an insecure registry host if \
                     that is really intended"
                )))
            }
        }
        other => Err(OciError::Unsupported(format!(
            "token realm scheme {other:?} is not http(s)"
        ))),
    }
}

fn host_port(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or_default();
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// The scope a registry asks for on a request: `repository:<name>:pull` for reads,
/// `pull,push` for PUT/POST/PATCH, `delete` for DELETE. `None` outside `/v2/<name>/…`.
pub fn predicted_scope(method: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    // Matched from the end: a repository may itself contain `manifests`, `blobs`, …
    let name = if let Some(n) = rest.strip_suffix("/tags/list") {
        n
    } else if let Some(n) = rest.strip_suffix("/blobs/uploads/") {
        n
    } else {
        let (head, _last) = rest.rsplit_once('/')?;
        let (name, kind) = head.rsplit_once('/')?;
        match kind {
            "manifests" | "blobs" | "referrers" => name,
            "uploads" => name.strip_suffix("/blobs")?,
            _ => return None,
        }
    };
    if name.is_empty() {
        return None;
    }
    let actions = match method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" | "OPTIONS" => "pull",
        "DELETE" => "delete",
        _ => "pull,push",
    };
    Some(format!("repository:{name}:{actions}"))
}

/// Standard base64 with padding (for Basic credentials).
/// Standard base64, as HTTP Basic credentials are encoded.
fn base64_encode(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

fn basic_header(username: &str, password: &SecretString) -> SecretString {
    let creds = SecretString::from(format!("{username}:{}", password.expose_secret()));
    SecretString::from(format!(
        "Basic {}",
        base64_encode(creds.expose_secret().as_bytes())
    ))
}

fn bearer_header(token: &SecretString) -> SecretString {
    SecretString::from(format!("Bearer {}", token.expose_secret()))
}

/// One entry of a registry token's `access` claim (the distribution token spec:
/// `{"type":"repository","name":"team/app","actions":["pull","push"]}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAccess {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub actions: Vec<String>,
}

/// What a token endpoint issued for a scope. The token itself is never kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenGrant {
    /// The scope asked for.
    pub scope: String,
    /// The token's `access` claim when it is a JWT that carries one (an empty list grants
    /// nothing); `None` for opaque tokens, whose grants cannot be read.
    pub access: Option<Vec<TokenAccess>>,
    pub expires_in: Duration,
}

/// The `access` claim of a JWT (`header.payload.signature`, payload base64url), read
/// without verifying the signature: only to report what the issuer granted, never to
/// trust it. `None` when `token` is not a JWT or has no `access` array.
pub fn jwt_access(token: &str) -> Option<Vec<TokenAccess>> {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let access = claims.get("access")?.as_array()?;
    Some(
        access
            .iter()
            .filter_map(|a| serde_json::from_value::<TokenAccess>(a.clone()).ok())
            .collect(),
    )
}

/// The actions `access` grants on repository `repo` (`*` grants every action).
pub fn granted_actions(access: &[TokenAccess], repo: &str) -> Vec<String> {
    let mut out: Vec<String> = access
        .iter()
        .filter(|a| a.kind == "repository" && a.name == repo)
        .flat_map(|a| a.actions.iter().cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A read's answer of any status, with its headers: what preflight inspects (`Allow`,
/// `WWW-Authenticate`). The body is scrubbed of secrets and cut short.
#[derive(Clone, Debug)]
pub struct ReadAnswer {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl ReadAnswer {
    /// A header's value (several values of one header joined with `, `).
    pub fn header(&self, name: &str) -> Option<String> {
        let v: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!v.is_empty()).then(|| v.join(", "))
    }

    /// The challenges of every `WWW-Authenticate` header.
    pub fn challenges(&self) -> Vec<Challenge> {
        self.headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect()
    }

    /// The methods of the `Allow` header, upper-cased; `None` without one.
    pub fn allow(&self) -> Option<Vec<String>> {
        self.header("allow").map(|v| {
            v.split(',')
                .map(|m| m.trim().to_ascii_uppercase())
                .filter(|m| !m.is_empty())
                .collect()
        })
    }
}

struct CachedToken {
    token: SecretString,
    until: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Learned {
    Basic,
}

// ---------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------

/// One platform entry of an index / manifest list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformManifest {
    /// Empty when the entry has no platform.
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// A manifest as the registry serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// The exact manifest bytes (re-putting them under another tag keeps the digest).
    pub raw: String,
    /// Entries of an index / manifest list (every entry, attestation ones included);
    /// empty for a single-platform manifest.
    pub platforms: Vec<PlatformManifest>,
}

impl Resolved {
    pub fn is_index(&self) -> bool {
        self.media_type == MEDIA_OCI_INDEX || self.media_type == MEDIA_DOCKER_LIST
    }
}

/// What a `HEAD` of a manifest told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: String,
    pub media_type: String,
    pub size: Option<u64>,
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub artifact_type: Option<String>,
    pub size: u64,
}

/// Where [`Referrers::descriptors`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReferrersSource {
    /// `GET /v2/<name>/referrers/<digest>` (OCI 1.1).
    Api,
    /// The `sha256-<hex>` tag index (OCI 1.1 fallback scheme).
    FallbackTag,
    /// Neither: the API is unsupported and no fallback tag exists.
    None,
}

/// Artifacts attached to a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referrers {
    pub source: ReferrersSource,
    pub descriptors: Vec<Descriptor>,
    /// cosign's `sha256-<hex>.sig|.att|.sbom` tags that exist, with their digests.
    pub cosign: Vec<(String, String)>,
}

/// How [`OciClient::untag`] removed the tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UntagMethod {
    /// The tag did not exist: nothing sent.
    AlreadyAbsent,
    /// `DELETE /v2/<name>/manifests/<tag>` was accepted.
    TagDelete,
    /// Tag overwritten with a unique dummy manifest, then the dummy deleted by digest.
    DummyOverwrite,
}

/// Result of [`OciClient::untag`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UntagOutcome {
    pub method: UntagMethod,
    /// Digest the tag pointed at before (`None` if it was absent).
    pub previous_digest: Option<String>,
    /// Digest of the dummy manifest (fallback only).
    pub dummy_digest: Option<String>,
    /// False if the registry refused to delete the dummy (deletes disabled): the tag then
    /// points at the dummy, no longer at the real image.
    pub dummy_deleted: bool,
    /// Every mutating request sent, in order, refused ones included.
    pub sent: Vec<RequestRecord>,
}

/// What [`OciClient::untag`] would send (built after read-only lookups).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UntagPlan {
    /// Digest the tag points at; `None` means it does not exist and nothing would be sent.
    pub current_digest: Option<String>,
    /// Tried first.
    pub tag_delete: Option<RequestRecord>,
    /// Sent only if the registry refuses `tag_delete` as unsupported (distribution 2.8 does).
    /// A blob-upload PUT URL is [`UPLOAD_LOCATION`]`&digest=…` (known only after the POST).
    pub fallback: Vec<RequestRecord>,
    /// Digest of the dummy the fallback pushes and then deletes.
    pub dummy_digest: String,
}

impl UntagPlan {
    /// All records: `tag_delete`, then the fallback.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.tag_delete
            .iter()
            .cloned()
            .chain(self.fallback.iter().cloned())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------

/// Client for one OCI registry host.
pub struct OciClient {
    /// `scheme://host[:port]/`.
    base: url::Url,
    auth: OciAuth,
    insecure_hosts: Vec<String>,
    client: reqwest::Client,
    tokens: Mutex<HashMap<String, CachedToken>>,
    learned: Mutex<Option<Learned>>,
}

impl fmt::Debug for OciClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OciClient")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth)
            .field("insecure_hosts", &self.insecure_hosts)
            .finish()
    }
}

/// A raw answer of any status.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn header_str<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn content_type(h: &reqwest::header::HeaderMap) -> Option<String> {
    header_str(h, "content-type").map(|v| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

fn is_manifest_type(t: &str) -> bool {
    matches!(
        t,
        MEDIA_OCI_MANIFEST | MEDIA_OCI_INDEX | MEDIA_DOCKER_MANIFEST | MEDIA_DOCKER_LIST
    )
}

/// The `rel="next"` target of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let target = &after[..end];
        let params_end = after[end..].find('<').map_or(after.len(), |i| end + i);
        let params = &after[end + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            match p.split_once('=') {
                Some((k, v)) => {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                }
                None => false,
            }
        });
        if is_next {
            return Some(target.to_string());
        }
        rest = &after[params_end..];
    }
    None
}

impl OciClient {
    /// A client for `host` (`registry.example.com`, `127.0.0.1:5000`): `https://` unless
    /// `insecure` (plain `http://`, only for hosts the configuration lists as insecure).
    pub fn new(
        host: &str,
        auth: OciAuth,
        insecure: bool,
        timeout: Duration,
    ) -> Result<OciClient, OciError> {
        validate_host(host)?;
        let scheme = if insecure { "http" } else { "https" };
        Self::with_base_url(&format!("{scheme}://{host}/"), auth, timeout)
    }

    /// A client for an explicit base URL (`http://127.0.0.1:5000`); the path must be empty.
    pub fn with_base_url(
        base: &str,
        auth: OciAuth,
        timeout: Duration,
    ) -> Result<OciClient, OciError> {
        let mut url = url::Url::parse(base.trim())
            .map_err(|e| invalid(base, format!("invalid registry URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(base, "registry URL must be http(s)"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                base,
                "registry URL must not embed credentials; configure them as auth",
            ));
        }
        if url.host_str().is_none() {
            return Err(invalid(base, "registry URL has no host"));
        }
        if !matches!(url.path(), "" | "/") {
            return Err(invalid(
                base,
                "registry URL must not have a path (the API lives at /v2/)",
            ));
        }
        url.set_path("/");
        url.set_query(None);
        url.set_fragment(None);
        Ok(OciClient {
            base: url,
            auth,
            insecure_hosts: Vec::new(),
            client: http::build_client(timeout),
            tokens: Mutex::new(HashMap::new()),
            learned: Mutex::new(None),
        })
    }

    /// Hosts (`name[:port]`) whose plain-http token realms may be used.
    pub fn with_insecure_hosts(mut self, hosts: &[String]) -> Self {
        self.insecure_hosts = hosts.to_vec();
        self
    }

    /// Replaces the HTTP client (e.g. another timeout).
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// `scheme://host[:port]/`.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `host[:port]`.
    pub fn host(&self) -> String {
        host_port(&self.base)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str(), path.trim_start_matches('/'))
    }

    fn manifest_url(&self, repo: &str, reference: &str) -> Result<String, OciError> {
        validate_repo(repo)?;
        validate_target(reference)?;
        Ok(self.url(&format!("v2/{repo}/manifests/{reference}")))
    }

    fn same_origin(&self, url: &url::Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    // ---- sending --------------------------------------------------------------------

    /// Sends `rec` with the configured credentials (answering a Bearer or Basic challenge
    /// once). Refuses URLs outside the registry so credentials cannot leak to another host.
    /// Non-2xx answers become [`HttpError::Status`] (body scrubbed of every secret).
    pub async fn send(&self, rec: &RequestRecord) -> Result<HttpResponse, OciError> {
        let a = self.exchange(rec).await?;
        self.to_result(rec, a)
    }

    fn to_result(&self, rec: &RequestRecord, a: Answer) -> Result<HttpResponse, OciError> {
        if (200..300).contains(&a.status) {
            return Ok(HttpResponse {
                status: a.status,
                headers: a.headers,
                body: a.body,
            });
        }
        let retry_after_ms =
            header_str(&a.headers, "retry-after").and_then(http::parse_retry_after);
        Err(OciError::Http(HttpError::Status {
            status: a.status,
            method: rec.method.clone(),
            url: rec.url.clone(),
            body: http::truncate_chars(&self.scrub(&a.body), http::ERROR_BODY_LIMIT),
            retry_after_ms,
        }))
    }

    fn scrub(&self, text: &str) -> String {
        let tokens = lock(&self.tokens);
        let mut secrets: Vec<&SecretString> = tokens.values().map(|t| &t.token).collect();
        // An echoed `Authorization: Basic …` is scrubbed too (header and bare base64).
        let basic = match &self.auth {
            OciAuth::Basic { username, password } => {
                let header = basic_header(username, password);
                let bare = header
                    .expose_secret()
                    .strip_prefix("Basic ")
                    .map(|b| SecretString::from(b.to_string()));
                Some((header, bare))
            }
            _ => None,
        };
        match &self.auth {
            OciAuth::Anonymous => {}
            OciAuth::Basic { password, .. } => secrets.push(password),
            OciAuth::Bearer { token } => secrets.push(token),
        }
        if let Some((header, bare)) = &basic {
            secrets.push(header);
            secrets.extend(bare.iter());
        }
        http::scrub(text, &secrets)
    }

    /// The request, answered (any status), after at most one challenge round.
    async fn exchange(&self, rec: &RequestRecord) -> Result<Answer, OciError> {
        let url = url::Url::parse(&rec.url)
            .map_err(|e| HttpError::Decode(format!("invalid URL {:?}: {e}", rec.url)))?;
        if !self.same_origin(&url) {
            return Err(HttpError::Decode(format!(
                "refusing to send {} {}: not under registry {}",
                rec.method,
                rec.url,
                self.base.as_str()
            ))
            .into());
        }
        let scope = predicted_scope(&rec.method, url.path());
        let first = self.preemptive_auth(scope.as_deref());
        let answer = self.send_raw(rec, first.as_ref()).await?;
        if answer.status != 401 {
            return Ok(answer);
        }
        let challenges: Vec<Challenge> = answer
            .headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let bearer = challenges.iter().find(|c| c.scheme == "bearer");
        let basic = challenges.iter().find(|c| c.scheme == "basic");
        let retry_auth = match (&self.auth, bearer, basic) {
            // A static token was refused: nothing else to try.
            (OciAuth::Bearer { .. }, _, _) => None,
            (_, Some(ch), _) => {
                let fetched = self.fetch_token(ch, scope.as_deref()).await?;
                let header = bearer_header(&fetched.token);
                let until = Instant::now() + fetched.expires_in;
                let mut cache = lock(&self.tokens);
                for k in fetched.scope.iter().chain(scope.iter()) {
                    cache.insert(
                        k.clone(),
                        CachedToken {
                            token: fetched.token.clone(),
                            until,
                        },
                    );
                }
                Some(header)
            }
            (OciAuth::Basic { username, password }, None, Some(_)) if first.is_none() => {
                *lock(&self.learned) = Some(Learned::Basic);
                Some(basic_header(username, password))
            }
            _ => None,
        };
        match retry_auth {
            Some(h) => self.send_raw(rec, Some(&h)).await,
            None => Ok(answer),
        }
    }

    /// The `Authorization` value to send before any challenge: a cached token for the
    /// request's scope, Basic once the registry asked for it, or the static bearer token.
    fn preemptive_auth(&self, scope: Option<&str>) -> Option<SecretString> {
        if let Some(scope) = scope {
            let mut cache = lock(&self.tokens);
            match cache.get(scope) {
                Some(t) if t.until > Instant::now() => return Some(bearer_header(&t.token)),
                Some(_) => {
                    cache.remove(scope);
                }
                None => {}
            }
        }
        match &self.auth {
            OciAuth::Anonymous => None,
            OciAuth::Bearer { token } => Some(bearer_header(token)),
            OciAuth::Basic { username, password } => {
                if *lock(&self.learned) == Some(Learned::Basic) {
                    Some(basic_header(username, password))
                } else {
                    None
                }
            }
        }
    }

    /// `GET realm?service=…&scope=…` (Basic credentials if configured) → token.
    async fn fetch_token(
        &self,
        ch: &Challenge,
        predicted: Option<&str>,
    ) -> Result<FetchedToken, OciError> {
        let realm = ch
            .params
            .get("realm")
            .ok_or_else(|| OciError::Unsupported("Bearer challenge without a realm".into()))?;
        let mut url = check_realm(realm, &self.base, &self.insecure_hosts)?;
        let scope = ch
            .params
            .get("scope")
            .cloned()
            .or_else(|| predicted.map(str::to_string));
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = ch.params.get("service") {
                q.append_pair("service", service);
            }
            // Several scopes are space-separated in a challenge; each is its own parameter.
            for s in scope.iter().flat_map(|s| s.split_whitespace()) {
                q.append_pair("scope", s);
            }
        }
        let mut req = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let OciAuth::Basic { username, password } = &self.auth {
            let mut v = reqwest::header::HeaderValue::from_str(
                basic_header(username, password).expose_secret(),
            )
            .map_err(|_| HttpError::Decode("Basic credentials are not a valid header".into()))?;
            v.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, v);
        }
        tracing::debug!(realm = %realm, scope = ?scope, "registry token request");
        let resp = req.send().await.map_err(http::transport_error)?;
        let status = resp.status().as_u16();
        let retry_after_ms = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(http::parse_retry_after);
        let body = resp.text().await.map_err(http::transport_error)?;
        if !(200..300).contains(&status) {
            return Err(HttpError::Status {
                status,
                method: "GET".into(),
                url: url.to_string(),
                body: http::truncate_chars(&self.scrub(&body), http::ERROR_BODY_LIMIT),
                retry_after_ms,
            }
            .into());
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| {
            OciError::Malformed(format!("token endpoint {realm} answered non-JSON ({e})"))
        })?;
        let token = v
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .or_else(|| v.get("access_token").and_then(Value::as_str))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                OciError::Malformed(format!(
                    "token endpoint {realm} answered without token/access_token"
                ))
            })?;
        let expires_in = v
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(60)
            .min(86_400);
        Ok(FetchedToken {
            token: SecretString::from(token.to_string()),
            expires_in: Duration::from_secs(expires_in),
            scope,
        })
    }

    /// One HTTP exchange: the record's headers (redacted ones skipped), `authorization`
    /// added at send time, any status returned with its headers. Mirrors
    /// [`http::send_record`], which cannot be used here because it drops the headers of a
    /// non-2xx answer and the 401's `WWW-Authenticate` is needed.
    async fn send_raw(
        &self,
        rec: &RequestRecord,
        authorization: Option<&SecretString>,
    ) -> Result<Answer, OciError> {
        let method = reqwest::Method::from_bytes(rec.method.as_bytes())
            .map_err(|_| HttpError::Decode(format!("invalid HTTP method {:?}", rec.method)))?;
        let url = reqwest::Url::parse(&rec.url)
            .map_err(|e| HttpError::Decode(format!("invalid URL {:?}: {e}", rec.url)))?;
        let mut req = self.client.request(method, url);
        for (k, v) in &rec.headers {
            if v == http::REDACTED || http::is_sensitive_header(k) {
                continue;
            }
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(a) = authorization {
            let mut value = reqwest::header::HeaderValue::from_str(a.expose_secret())
                .map_err(|_| HttpError::Decode("credential is not a valid header value".into()))?;
            value.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, value);
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
        let resp = req.send().await.map_err(http::transport_error)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.map_err(http::transport_error)?;
        tracing::debug!(method = %rec.method, url = %rec.url, status, "registry answer");
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    // ---- reads ----------------------------------------------------------------------

    /// `GET /v2/<repo>/manifests/<reference>` accepting OCI and Docker manifests and indexes.
    /// The digest is `Docker-Content-Digest`, checked against the sha256 of the bytes (and
    /// against `reference` when it is a digest): a mismatch is [`OciError::Malformed`],
    /// since [`Resolved::raw`] must be exactly the bytes that digest names.
    pub async fn resolve(&self, repo: &str, reference: &str) -> Result<Resolved, OciError> {
        let rec = RequestRecord::new("GET", self.manifest_url(repo, reference)?)
            .with_header("accept", MANIFEST_ACCEPT);
        let resp = self
            .send(&rec)
            .await
            .map_err(|e| not_found(e, repo, reference))?;
        let computed = sha256_digest(resp.body.as_bytes());
        let header = header_str(&resp.headers, "docker-content-digest").map(str::to_string);
        if let Some(h) = &header
            && h.starts_with("sha256:")
            && *h != computed
        {
            return Err(OciError::Malformed(format!(
                "{repo}@{reference}: Docker-Content-Digest {h} does not match the sha256 \
                    of the manifest bytes ({computed})"
            )));
        }
        let digest = header.unwrap_or_else(|| computed.clone());
        if is_digest(reference) && reference != computed {
            return Err(OciError::Malformed(format!(
                "{repo}@{reference}: the registry served a manifest whose sha256 is {computed}"
            )));
        }
        let json: Value = serde_json::from_str(&resp.body).map_err(|e| {
            OciError::Malformed(format!("{repo}@{reference}: manifest is not JSON ({e})"))
        })?;
        let media_type = content_type(&resp.headers)
            .filter(|t| is_manifest_type(t))
            .or_else(|| {
                json.get("mediaType")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        if !is_manifest_type(&media_type) {
            return Err(OciError::Unsupported(format!(
                "{repo}@{reference} has media type {media_type:?}; only OCI and Docker \
                schema 2 manifests and indexes are handled (re-push the image with a \
                current client)"
            )));
        }
        let platforms = if media_type == MEDIA_OCI_INDEX || media_type == MEDIA_DOCKER_LIST {
            parse_platforms(&json)?
        } else {
            Vec::new()
        };
        Ok(Resolved {
            digest,
            media_type,
            size: resp.body.len() as u64,
            raw: resp.body,
            platforms,
        })
    }

    /// `HEAD /v2/<repo>/manifests/<reference>`; `None` on 404. Falls back to a GET when the
    /// registry omits `Docker-Content-Digest`.
    pub async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>, OciError> {
        let rec = RequestRecord::new("HEAD", self.manifest_url(repo, reference)?)
            .with_header("accept", MANIFEST_ACCEPT);
        let resp = match self.send(&rec).await {
            Ok(r) => r,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let media_type = content_type(&resp.headers).unwrap_or_default();
        let size = header_str(&resp.headers, "content-length").and_then(|v| v.parse().ok());
        match header_str(&resp.headers, "docker-content-digest") {
            Some(d) => Ok(Some(ManifestHead {
                digest: d.to_string(),
                media_type,
                size,
            })),
            None => match self.resolve(repo, reference).await {
                Ok(r) => Ok(Some(ManifestHead {
                    digest: r.digest,
                    media_type: r.media_type,
                    size: Some(r.size),
                })),
                Err(OciError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// Whether `repo@digest` exists (`HEAD`).
    pub async fn manifest_exists(&self, repo: &str, digest: &str) -> Result<bool, OciError> {
        validate_digest(digest)?;
        Ok(self.head_manifest(repo, digest).await?.is_some())
    }

    /// Whether the blob `digest` exists in `repo` (`HEAD /v2/<repo>/blobs/<digest>`).
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool, OciError> {
        validate_repo(repo)?;
        validate_digest(digest)?;
        let rec = RequestRecord::new("HEAD", self.url(&format!("v2/{repo}/blobs/{digest}")));
        match self.send(&rec).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The bytes of a blob (as text: SBOMs, attestations and configs are JSON), refused
    /// when larger than `max_bytes` or when they do not hash to `digest`.
    pub async fn blob_text(
        &self,
        repo: &str,
        digest: &str,
        max_bytes: usize,
    ) -> Result<String, OciError> {
        validate_repo(repo)?;
        validate_digest(digest)?;
        let rec = RequestRecord::new("GET", self.url(&format!("v2/{repo}/blobs/{digest}")))
            .with_header("accept", "*/*");
        let resp = self
            .send(&rec)
            .await
            .map_err(|e| not_found(e, repo, digest))?;
        if resp.body.len() > max_bytes {
            return Err(OciError::Malformed(format!(
                "blob {digest} is {} bytes, over the {max_bytes}-byte limit",
                resp.body.len()
            )));
        }
        let got = sha256_digest(resp.body.as_bytes());
        if got != digest {
            return Err(OciError::Malformed(format!(
                "blob {digest} hashes to {got}: refusing content that is not what was asked for"
            )));
        }
        Ok(resp.body)
    }

    /// Every tag of `repo`, sorted, following `Link: <…>; rel="next"` pages (same origin
    /// only). An unknown repository is [`OciError::NotFound`].
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, OciError> {
        validate_repo(repo)?;
        let mut url = self.url(&format!("v2/{repo}/tags/list"));
        let mut seen = std::collections::HashSet::new();
        let mut tags = Vec::new();
        for _ in 0..MAX_PAGES {
            if !seen.insert(url.clone()) {
                return Err(OciError::Malformed(format!(
                    "tags/list of {repo}: pagination loops back to {url}"
                )));
            }
            let rec = RequestRecord::new("GET", url.clone());
            let resp = self
                .send(&rec)
                .await
                .map_err(|e| not_found(e, repo, "tags/list"))?;
            let v = resp.json()?;
            match v.get("tags") {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) => {
                    for t in a {
                        let t = t.as_str().ok_or_else(|| {
                            OciError::Malformed(format!("tags/list of {repo}: non-string tag"))
                        })?;
                        tags.push(t.to_string());
                    }
                }
                Some(_) => {
                    return Err(OciError::Malformed(format!(
                        "tags/list of {repo}: \"tags\" is not an array"
                    )));
                }
            }
            let Some(next) = header_str(&resp.headers, "link").and_then(next_link) else {
                tags.sort();
                tags.dedup();
                return Ok(tags);
            };
            let current = url::Url::parse(&url)
                .map_err(|e| OciError::Malformed(format!("bad URL {url}: {e}")))?;
            let joined = current.join(&next).map_err(|e| {
                OciError::Malformed(format!("tags/list of {repo}: bad Link {next:?}: {e}"))
            })?;
            if !self.same_origin(&joined) {
                return Err(OciError::Malformed(format!(
                    "tags/list of {repo}: Link {joined} leaves the registry"
                )));
            }
            url = joined.to_string();
        }
        Err(OciError::Malformed(format!(
            "tags/list of {repo}: more than {MAX_PAGES} pages"
        )))
    }

    /// Tags of `repo` that currently point at `digest`. Costs one `HEAD` per tag.
    pub async fn tags_pointing_at(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Vec<String>, OciError> {
        validate_digest(digest)?;
        let mut out = Vec::new();
        for tag in self.tags(repo).await? {
            if validate_tag(&tag).is_err() {
                continue;
            }
            if let Some(h) = self.head_manifest(repo, &tag).await?
                && h.digest == digest
            {
                out.push(tag);
            }
        }
        Ok(out)
    }

    // ---- request builders (pure) ----------------------------------------------------

    /// `PUT /v2/<repo>/manifests/<reference>` with `raw` byte for byte. A digest reference
    /// must be the sha256 of `raw`.
    pub fn put_manifest_request(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        raw: &str,
    ) -> Result<RequestRecord, OciError> {
        let url = self.manifest_url(repo, reference)?;
        if !is_manifest_type(media_type) {
            return Err(OciError::Unsupported(format!(
                "cannot push a manifest of media type {media_type:?}"
            )));
        }
        if is_digest(reference) && sha256_digest(raw.as_bytes()) != reference {
            return Err(invalid(
                reference,
                "the manifest bytes do not hash to this digest",
            ));
        }
        Ok(RequestRecord::new("PUT", url).with_raw(media_type, raw))
    }

    /// `DELETE /v2/<repo>/manifests/<reference>` (a tag, or a digest — which removes every
    /// tag pointing at it).
    pub fn delete_manifest_request(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<RequestRecord, OciError> {
        Ok(RequestRecord::new(
            "DELETE",
            self.manifest_url(repo, reference)?,
        ))
    }

    /// `POST /v2/<repo>/blobs/uploads/`: opens an upload session; the answer's `Location`
    /// is where [`Self::upload_finish_request`] sends the bytes.
    pub fn upload_start_request(&self, repo: &str) -> Result<RequestRecord, OciError> {
        validate_repo(repo)?;
        Ok(RequestRecord::new(
            "POST",
            self.url(&format!("v2/{repo}/blobs/uploads/")),
        ))
    }

    /// `PUT <location>?digest=<digest>` with `body` (the monolithic second step of an
    /// upload). `location` is the upload POST's `Location` (absolute or relative); it must
    /// stay on the registry.
    pub fn upload_finish_request(
        &self,
        location: &str,
        digest: &str,
        body: &str,
    ) -> Result<RequestRecord, OciError> {
        validate_digest(digest)?;
        if sha256_digest(body.as_bytes()) != digest {
            return Err(invalid(digest, "the blob bytes do not hash to this digest"));
        }
        let mut url = self.base.join(location).map_err(|e| {
            OciError::Malformed(format!("upload Location {location:?} is not a URL: {e}"))
        })?;
        if !self.same_origin(&url) {
            return Err(OciError::Malformed(format!(
                "upload Location {url} is not on the registry {}",
                self.base
            )));
        }
        url.query_pairs_mut().append_pair("digest", digest);
        Ok(RequestRecord::new("PUT", url.to_string()).with_raw("application/octet-stream", body))
    }

    // ---- live helpers ---------------------------------------------------------------

    /// Makes sure blob `digest` (= sha256 of `body`) exists in `repo`: `HEAD`, then if
    /// missing `POST` an upload and `PUT` the bytes to its `Location`. Returns the mutating
    /// requests sent (none if the blob was there).
    pub async fn ensure_blob(
        &self,
        repo: &str,
        digest: &str,
        body: &str,
    ) -> Result<Vec<RequestRecord>, OciError> {
        if sha256_digest(body.as_bytes()) != digest {
            return Err(invalid(digest, "the blob bytes do not hash to this digest"));
        }
        if self.blob_exists(repo, digest).await? {
            return Ok(Vec::new());
        }
        let start = self.upload_start_request(repo)?;
        let resp = self.send(&start).await?;
        let location = header_str(&resp.headers, "location")
            .ok_or_else(|| {
                OciError::Malformed(format!(
                    "upload POST to {repo} answered {} without Location",
                    resp.status
                ))
            })?
            .to_string();
        let finish = self.upload_finish_request(&location, digest, body)?;
        let sent_finish = finish.clone();
        let resp = self.send(&finish).await?;
        if let Some(d) = header_str(&resp.headers, "docker-content-digest")
            && d != digest
        {
            return Err(OciError::Malformed(format!(
                "blob upload to {repo}: registry stored {d}, expected {digest}"
            )));
        }
        Ok(vec![start, sent_finish])
    }

    /// What [`Self::ensure_blob`] would send: nothing if the blob exists (`HEAD`), else the
    /// POST and a PUT whose URL is [`UPLOAD_LOCATION`]`?digest=…` (the registry hands the
    /// real upload URL out in answer to the POST).
    pub async fn ensure_blob_plan(
        &self,
        repo: &str,
        digest: &str,
        body: &str,
    ) -> Result<Vec<RequestRecord>, OciError> {
        if sha256_digest(body.as_bytes()) != digest {
            return Err(invalid(digest, "the blob bytes do not hash to this digest"));
        }
        if self.blob_exists(repo, digest).await? {
            return Ok(Vec::new());
        }
        Ok(vec![
            self.upload_start_request(repo)?,
            RequestRecord::new("PUT", format!("{UPLOAD_LOCATION}?digest={digest}"))
                .with_raw("application/octet-stream", body),
        ])
    }

    /// Removes `tag` from `repo` without touching the image it points at (see the module
    /// doc: tag DELETE, else overwrite with a unique dummy and delete the dummy by digest).
    /// `nonce` (e.g. the incident id) goes into the dummy's annotations. Idempotent: an
    /// absent tag sends nothing.
    pub async fn untag(
        &self,
        repo: &str,
        tag: &str,
        nonce: &str,
    ) -> Result<UntagOutcome, OciError> {
        let mut out = self.untag_once(repo, tag, nonce).await?;
        // Deletes that overlap in one repository can leave the tag listed without a
        // manifest (distribution 2.8): re-point it at the dummy and delete that again.
        for round in 1..=3u64 {
            if out.method != UntagMethod::DummyOverwrite
                || !out.dummy_deleted
                || self.head_manifest(repo, tag).await?.is_some()
                || !self.tag_listed(repo, tag).await?
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 * round)).await;
            let (_, deleted) = self
                .push_and_delete_dummy(repo, tag, nonce, None, &mut out.sent)
                .await?;
            out.dummy_deleted = deleted;
        }
        Ok(out)
    }

    async fn untag_once(
        &self,
        repo: &str,
        tag: &str,
        nonce: &str,
    ) -> Result<UntagOutcome, OciError> {
        validate_repo(repo)?;
        validate_tag(tag)?;
        let mut sent = Vec::new();
        let Some(before) = self.head_manifest(repo, tag).await? else {
            // A tag can dangle: still listed, its manifest gone (distribution 2.8 leaves
            // this when a DELETE by digest is cut off half-way). Re-point it at a dummy and
            // delete the dummy, which removes the tag entry for good.
            if self.tag_listed(repo, tag).await? {
                let (dummy_digest, dummy_deleted) = self
                    .push_and_delete_dummy(repo, tag, nonce, None, &mut sent)
                    .await?;
                return Ok(UntagOutcome {
                    method: UntagMethod::DummyOverwrite,
                    previous_digest: None,
                    dummy_digest: Some(dummy_digest),
                    dummy_deleted,
                    sent,
                });
            }
            return Ok(UntagOutcome {
                method: UntagMethod::AlreadyAbsent,
                previous_digest: None,
                dummy_digest: None,
                dummy_deleted: false,
                sent,
            });
        };
        // The dummy is a function of (tag, nonce): an untag interrupted between pushing it
        // and deleting it (a crash, a timeout) finds the tag on its own dummy and only has
        // the dummy DELETE left to do.
        let dummy = dummy_manifest(tag, nonce);
        let dummy_digest = sha256_digest(dummy.as_bytes());
        if before.digest == dummy_digest {
            let del_dummy = self.delete_manifest_request(repo, &dummy_digest)?;
            sent.push(del_dummy.clone());
            let dummy_deleted = match self.send(&del_dummy).await {
                Ok(_) => true,
                Err(e) if e.status() == Some(404) => true,
                Err(e) if matches!(e.status(), Some(400 | 405 | 501)) => false,
                Err(e) => return Err(e),
            };
            return Ok(UntagOutcome {
                method: UntagMethod::DummyOverwrite,
                previous_digest: None,
                dummy_digest: Some(dummy_digest),
                dummy_deleted,
                sent,
            });
        }
        let del = self.delete_manifest_request(repo, tag)?;
        sent.push(del.clone());
        let refusal = match self.send(&del).await {
            Ok(_) => {
                return Ok(UntagOutcome {
                    method: UntagMethod::TagDelete,
                    previous_digest: Some(before.digest),
                    dummy_digest: None,
                    dummy_deleted: false,
                    sent,
                });
            }
            Err(e) => e,
        };
        let unsupported = match refusal.status() {
            Some(400 | 405 | 501) => true,
            // 404 although HEAD found it: unsupported if the tag still resolves.
            Some(404) => match self.head_manifest(repo, tag).await? {
                Some(_) => true,
                None => {
                    return Ok(UntagOutcome {
                        method: UntagMethod::TagDelete,
                        previous_digest: Some(before.digest),
                        dummy_digest: None,
                        dummy_deleted: false,
                        sent,
                    });
                }
            },
            _ => false,
        };
        if !unsupported {
            return Err(refusal);
        }
        tracing::info!(repo, tag, status = ?refusal.status(), "tag DELETE unsupported; overwriting the tag with a dummy");
        let (dummy_digest, dummy_deleted) = self
            .push_and_delete_dummy(repo, tag, nonce, Some(&refusal), &mut sent)
            .await?;
        Ok(UntagOutcome {
            method: UntagMethod::DummyOverwrite,
            previous_digest: Some(before.digest),
            dummy_digest: Some(dummy_digest),
            dummy_deleted,
            sent,
        })
    }

    /// Is `tag` in the repository's tag list? A repository the registry does not know has
    /// no tags. (A dangling tag is listed without resolving.)
    pub async fn tag_listed(&self, repo: &str, tag: &str) -> Result<bool, OciError> {
        match self.tags(repo).await {
            Ok(tags) => Ok(tags.iter().any(|t| t == tag)),
            Err(OciError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The portable untag: ensure the empty config blob, PUT the unique dummy manifest to
    /// `tag`, then DELETE the dummy by its own (confirmed) digest. Returns the dummy digest
    /// and whether the registry deleted it. `refusal` is the tag DELETE's answer, quoted
    /// when the registry refuses the overwrite too.
    async fn push_and_delete_dummy(
        &self,
        repo: &str,
        tag: &str,
        nonce: &str,
        refusal: Option<&OciError>,
        sent: &mut Vec<RequestRecord>,
    ) -> Result<(String, bool), OciError> {
        let dummy = dummy_manifest(tag, nonce);
        let dummy_digest = sha256_digest(dummy.as_bytes());
        let put = self.put_manifest_request(repo, tag, MEDIA_OCI_MANIFEST, &dummy)?;
        // Two untags in one repository upload the empty config blob at once; distribution
        // 2.8 can then answer the manifest PUT with MANIFEST_BLOB_UNKNOWN while the other
        // upload settles (seen in the crash test). Make sure of the blob and try again.
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            sent.extend(self.ensure_blob(repo, EMPTY_DIGEST, EMPTY_JSON).await?);
            sent.push(put.clone());
            match self.send(&put).await {
                Err(e)
                    if attempt < 4
                        && e.status() == Some(400)
                        && status_summary(&e).contains("MANIFEST_BLOB_UNKNOWN") =>
                {
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                other => break other,
            }
        };
        let resp = match outcome {
            Ok(r) => r,
            Err(e) if matches!(e.status(), Some(400 | 403 | 405 | 409)) => {
                return Err(OciError::Unsupported(format!(
                    "the registry refused both ways to untag {repo}:{tag}: DELETE of the tag \
                    ({delete}) and overwriting it ({put}). The tag is probably immutable \
                    (tag immutability / retention rule) or the credential lacks push \
                    rights: lift the rule or grant push+delete for {repo}, or remove the \
                    tag in the registry's own UI/API, then retry",
                    delete = refusal
                        .map_or_else(|| "not tried: the tag dangled".to_string(), status_summary),
                    put = status_summary(&e),
                )));
            }
            Err(e) => return Err(e),
        };
        if let Some(d) = header_str(&resp.headers, "docker-content-digest")
            && d != dummy_digest
        {
            return Err(OciError::Malformed(format!(
                "{repo}:{tag}: the registry stored the dummy as {d}, not {dummy_digest}; \
                    not deleting anything by digest"
            )));
        }
        let del_dummy = self.delete_manifest_request(repo, &dummy_digest)?;
        // Deleting our own dummy is idempotent: distribution 2.8 answers 500 when deletes
        // in one repository overlap (seen with two untags at once), so try again briefly.
        let mut attempt = 0;
        let dummy_deleted = loop {
            attempt += 1;
            sent.push(del_dummy.clone());
            match self.send(&del_dummy).await {
                Ok(_) => break true,
                Err(e) if e.status() == Some(404) && attempt > 1 => break true,
                Err(e) if matches!(e.status(), Some(400 | 405 | 501)) => {
                    tracing::warn!(repo, tag, dummy = %dummy_digest, error = %e,
                        "the registry refused to delete the untag dummy; the tag now points at it");
                    break false;
                }
                Err(e) if attempt < 4 && e.is_transient() => {
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        };
        Ok((dummy_digest, dummy_deleted))
    }

    /// What [`Self::untag`] would send, after read-only lookups (`HEAD` of the tag and of the
    /// empty blob). Sends nothing that changes the registry.
    pub async fn untag_plan(
        &self,
        repo: &str,
        tag: &str,
        nonce: &str,
    ) -> Result<UntagPlan, OciError> {
        validate_repo(repo)?;
        validate_tag(tag)?;
        let dummy = dummy_manifest(tag, nonce);
        let dummy_digest = sha256_digest(dummy.as_bytes());
        let Some(before) = self.head_manifest(repo, tag).await? else {
            return Ok(UntagPlan {
                current_digest: None,
                tag_delete: None,
                fallback: Vec::new(),
                dummy_digest,
            });
        };
        let mut fallback = self
            .ensure_blob_plan(repo, EMPTY_DIGEST, EMPTY_JSON)
            .await?;
        fallback.push(self.put_manifest_request(repo, tag, MEDIA_OCI_MANIFEST, &dummy)?);
        fallback.push(self.delete_manifest_request(repo, &dummy_digest)?);
        Ok(UntagPlan {
            current_digest: Some(before.digest),
            tag_delete: Some(self.delete_manifest_request(repo, tag)?),
            fallback,
            dummy_digest,
        })
    }

    /// Artifacts referring to `repo@digest`: the OCI 1.1 referrers API, else the
    /// `sha256-<hex>` fallback tag index; plus cosign's `.sig`/`.att`/`.sbom` tags.
    pub async fn referrers(&self, repo: &str, digest: &str) -> Result<Referrers, OciError> {
        validate_repo(repo)?;
        validate_digest(digest)?;
        let rec = RequestRecord::new("GET", self.url(&format!("v2/{repo}/referrers/{digest}")))
            .with_header("accept", MEDIA_OCI_INDEX);
        let api = match self.send(&rec).await {
            Ok(resp) => {
                let ct = content_type(&resp.headers).unwrap_or_default();
                let v: Option<Value> = serde_json::from_str(&resp.body).ok();
                match v {
                    Some(v) if ct == MEDIA_OCI_INDEX || v.get("manifests").is_some() => {
                        Some(parse_descriptors(&v)?)
                    }
                    // 200 with something else (an HTML page, a catch-all): unsupported.
                    _ => None,
                }
            }
            Err(e) if matches!(e.status(), Some(400 | 404 | 405 | 406 | 501)) => None,
            Err(e) => return Err(e),
        };
        let hex_tag = referrers_tag(digest)?;
        let (source, descriptors) = match api {
            Some(d) => (ReferrersSource::Api, d),
            None => match self.resolve(repo, &hex_tag).await {
                Ok(r) if r.media_type == MEDIA_OCI_INDEX => {
                    let v: Value = serde_json::from_str(&r.raw).map_err(|e| {
                        OciError::Malformed(format!("{repo}:{hex_tag} is not JSON ({e})"))
                    })?;
                    (ReferrersSource::FallbackTag, parse_descriptors(&v)?)
                }
                // A non-index under that tag is cosign-era or foreign: no fallback index.
                Ok(_) => (ReferrersSource::None, Vec::new()),
                Err(OciError::NotFound { .. }) => (ReferrersSource::None, Vec::new()),
                Err(e) => return Err(e),
            },
        };
        let mut cosign = Vec::new();
        for suffix in ["sig", "att", "sbom"] {
            let t = format!("{hex_tag}.{suffix}");
            if let Some(h) = self.head_manifest(repo, &t).await? {
                cosign.push((t, h.digest));
            }
        }
        Ok(Referrers {
            source,
            descriptors,
            cosign,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Preflight reads: any status answered, headers kept; never a mutating method
// ---------------------------------------------------------------------------------------

impl OciClient {
    /// `GET`/`HEAD`/`OPTIONS` of `path` (relative to the registry root), answered whatever
    /// the status. `authenticated`: with the configured credential and one challenge round,
    /// as [`Self::send`]; otherwise bare, to read the registry's own challenge. Any other
    /// method is refused: preflight must never change the registry.
    pub async fn read_answer(
        &self,
        method: &str,
        path: &str,
        accept: Option<&str>,
        authenticated: bool,
    ) -> Result<ReadAnswer, OciError> {
        let method = method.to_ascii_uppercase();
        if !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS") {
            return Err(OciError::Unsupported(format!(
                "{method} is not a read: preflight sends only GET, HEAD and OPTIONS"
            )));
        }
        let mut rec = RequestRecord::new(&method, self.url(path));
        if let Some(a) = accept {
            rec = rec.with_header("accept", a);
        }
        let a = if authenticated {
            self.exchange(&rec).await?
        } else {
            self.send_raw(&rec, None).await?
        };
        Ok(ReadAnswer {
            method,
            url: rec.url,
            status: a.status,
            body: http::truncate_chars(&self.scrub(&a.body), http::ERROR_BODY_LIMIT),
            headers: a.headers,
        })
    }

    /// `GET /v2/`: reachability and (bare) the registry's auth challenge.
    pub async fn ping(&self, authenticated: bool) -> Result<ReadAnswer, OciError> {
        self.read_answer("GET", "v2/", None, authenticated).await
    }

    /// `OPTIONS /v2/<repo>/manifests/<reference>` (authenticated): distribution answers 200
    /// with `Allow` listing the methods the route serves — `DELETE, GET, HEAD, PUT`, or
    /// `GET, HEAD` in read-only mode.
    pub async fn manifest_options(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<ReadAnswer, OciError> {
        validate_repo(repo)?;
        validate_target(reference)?;
        self.read_answer(
            "OPTIONS",
            &format!("v2/{repo}/manifests/{reference}"),
            None,
            true,
        )
        .await
    }

    /// `GET /v2/<repo>/referrers/<digest>` (authenticated), answered whatever the status.
    pub async fn referrers_answer(&self, repo: &str, digest: &str) -> Result<ReadAnswer, OciError> {
        validate_repo(repo)?;
        validate_digest(digest)?;
        self.read_answer(
            "GET",
            &format!("v2/{repo}/referrers/{digest}"),
            Some(MEDIA_OCI_INDEX),
            true,
        )
        .await
    }

    /// Asks the token endpoint of the Bearer `challenge` for `scope` (with the configured
    /// Basic credentials, else anonymously) and reads what the token grants. The token is
    /// neither cached nor returned.
    pub async fn token_grant(
        &self,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<TokenGrant, OciError> {
        let mut ch = challenge.clone();
        ch.params.insert("scope".into(), scope.to_string());
        let t = self.fetch_token(&ch, None).await?;
        Ok(TokenGrant {
            scope: scope.to_string(),
            access: jwt_access(t.token.expose_secret()),
            expires_in: t.expires_in,
        })
    }

    /// Which kind of credential the client sends: `anonymous`, `basic` or `bearer`.
    pub fn auth_scheme(&self) -> &'static str {
        match &self.auth {
            OciAuth::Anonymous => "anonymous",
            OciAuth::Basic { .. } => "basic",
            OciAuth::Bearer { .. } => "bearer",
        }
    }

    /// The `access` claim of the configured static bearer token, when it is a JWT with one.
    pub fn static_token_access(&self) -> Option<Vec<TokenAccess>> {
        match &self.auth {
            OciAuth::Bearer { token } => jwt_access(token.expose_secret()),
            _ => None,
        }
    }
}

struct FetchedToken {
    token: SecretString,
    expires_in: Duration,
    /// The scope the token was asked for (cache key).
    scope: Option<String>,
}

fn status_summary(e: &OciError) -> String {
    match e {
        OciError::Http(HttpError::Status { status, body, .. }) => {
            format!("{status} {}", http::truncate_chars(body, 200))
        }
        other => other.to_string(),
    }
}

/// A 404 from the registry becomes [`OciError::NotFound`].
fn not_found(e: OciError, repo: &str, reference: &str) -> OciError {
    if e.status() == Some(404) {
        OciError::NotFound {
            repo: repo.to_string(),
            reference: reference.to_string(),
        }
    } else {
        e
    }
}

fn parse_platforms(index: &Value) -> Result<Vec<PlatformManifest>, OciError> {
    let list = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| OciError::Malformed("index without a manifests array".into()))?;
    let mut out = Vec::new();
    for m in list {
        let digest = m
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| OciError::Malformed("index entry without digest".into()))?;
        validate_digest(digest)
            .map_err(|e| OciError::Malformed(format!("index entry digest: {e}")))?;
        let p = m.get("platform");
        let field = |k: &str| {
            p.and_then(|p| p.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        out.push(PlatformManifest {
            os: field("os").unwrap_or_default(),
            architecture: field("architecture").unwrap_or_default(),
            variant: field("variant"),
            digest: digest.to_string(),
            media_type: m
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            size: m.get("size").and_then(Value::as_u64).unwrap_or(0),
        });
    }
    Ok(out)
}

fn parse_descriptors(index: &Value) -> Result<Vec<Descriptor>, OciError> {
    let list = match index.get("manifests") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(OciError::Malformed(
                "referrers index: manifests is not an array".into(),
            ));
        }
    };
    list.iter()
        .map(|m| {
            let digest = m
                .get("digest")
                .and_then(Value::as_str)
                .ok_or_else(|| OciError::Malformed("referrer without digest".into()))?;
            Ok(Descriptor {
                media_type: m
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                digest: digest.to_string(),
                artifact_type: m
                    .get("artifactType")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                size: m.get("size").and_then(Value::as_u64).unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    // ---- pure parts -------------------------------------------------------------------

    const D1: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_good_references() {
        let r = Reference::parse("registry.example.com/team/app:1.2.3").unwrap();
        assert_eq!(r.host, "registry.example.com");
        assert_eq!(r.repo, "team/app");
        assert_eq!(r.tag.as_deref(), Some("1.2.3"));
        assert_eq!(r.digest, None);
        assert_eq!(r.target(), "1.2.3");

        let r = Reference::parse(&format!("127.0.0.1:5000/a/b/c@{D1}")).unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str()),
            ("127.0.0.1:5000", "a/b/c")
        );
        assert_eq!(r.tag, None);
        assert_eq!(r.target(), D1);

        let r = Reference::parse(&format!("localhost:5000/app:v1@{D1}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.target(), D1, "digest wins over tag");
        assert_eq!(r.to_string(), format!("localhost:5000/app:v1@{D1}"));

        let r = Reference::parse("[::1]:5000/app").unwrap();
        assert_eq!(r.host, "[::1]:5000");
        assert_eq!(r.target(), "latest");

        for ok in [
            "r.io/a__b/c.d/e--f/g---h_i",
            "r.io/0/9",
            "r.io/a:_x",
            "r.io/a:X.y-Z_9",
            "my-registry:443/x",
        ] {
            assert!(Reference::parse(ok).is_ok(), "{ok}");
        }
        let t = format!("r.io/a:{}", "t".repeat(128));
        assert!(Reference::parse(&t).is_ok());
    }

    #[test]
    fn rejects_hostile_references_with_reasons() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("app", "missing repository"),
            ("app:latest", "missing repository"),
            ("r.io/", "empty repository"),
            ("r.io//a", "empty path component"),
            ("r.io/a/", "empty path component"),
            ("r.io/A", "lower case"),
            ("r.io/-a", "start and end"),
            ("r.io/a-", "start and end"),
            ("r.io/a/../b", "start and end"),
            ("r.io/a_-b", "separators"),
            ("r.io/a___b", "separators"),
            ("r.io/a..b", "separators"),
            ("r.io/a%2fb", "only a-z"),
            ("r.io/a:", "empty tag"),
            ("r.io/a:-x", "must start"),
            ("r.io/a:.x", "must start"),
            ("r.io/a:x/y", "only a-z"),
            (
                "r.io/a@sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
                "lowercase",
            ),
            ("r.io/a@sha256:abc", "64 hex"),
            ("r.io/a@sha512:abc", "sha256"),
            ("r.io/a@md5", "sha256:<64 hex>"),
            ("https://r.io/a", "drop the scheme"),
            ("user:pw@r.io/a", "sha256:<64 hex>"),
            ("r.io/a b", "character"),
            ("r.io/a\n", "character"),
            ("r.io/a\u{0}", "character"),
            ("r.io/ä", "character"),
            ("r.io:99999/a", "out of range"),
            ("r.io:0/a", "out of range"),
            ("r.io:x/a", "invalid port"),
            ("-r.io/a", "host name"),
            ("r..io/a", "host name"),
            ("[zz]:1/a", "IPv6"),
            ("[::1/a", "unterminated"),
        ];
        for (input, want) in cases {
            match Reference::parse(input) {
                Err(e @ OciError::InvalidReference { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(want), "{input:?}: {msg} (wanted {want:?})");
                }
                other => panic!("{input:?} should be invalid, got {other:?}"),
            }
        }
        let long_tag = format!("r.io/a:{}", "t".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        let long_repo = format!("r.io/{}", "a".repeat(300));
        assert!(Reference::parse(&long_repo).is_err());
        let huge = "a/".repeat(100_000);
        let e = Reference::parse(&huge).unwrap_err().to_string();
        assert!(e.contains("too long"));
        assert!(e.len() < 1000, "error echoes at most a prefix of the input");
    }

    #[test]
    fn challenge_parsing_handles_quotes_commas_and_several_challenges() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.example.com/token");
        assert_eq!(c[0].params["service"], "registry.example.com");
        assert_eq!(c[0].params["scope"], "repository:team/app:pull,push");

        let c = parse_challenges(
            r#"Basic realm="basic, with comma", BEARER Realm="https://a/t", Scope="x:y:pull,push",error="insufficient_scope""#,
        );
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params["realm"], "basic, with comma");
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].params["realm"], "https://a/t");
        assert_eq!(c[1].params["scope"], "x:y:pull,push");
        assert_eq!(c[1].params["error"], "insufficient_scope");

        let c = parse_challenges(r#"Bearer realm="a\"b\\c" , service = tok"#);
        assert_eq!(c[0].params["realm"], "a\"b\\c");
        assert_eq!(c[0].params["service"], "tok");

        // unterminated quote: what was read is kept, nothing panics
        let c = parse_challenges(r#"Bearer realm="https://x/t"#);
        assert_eq!(c[0].params["realm"], "https://x/t");
        assert_eq!(parse_challenges("Basic").len(), 1);
        for junk in [
            "",
            ",,,",
            "=",
            "\"",
            "Bearer =x",
            "Bearer realm=\"é\",x",
            "😀",
        ] {
            let _ = parse_challenges(junk);
        }
    }

    #[test]
    fn realm_scheme_rules() {
        let https = url::Url::parse("https://reg.example.com/").unwrap();
        let http_reg = url::Url::parse("http://127.0.0.1:5000/").unwrap();
        assert!(check_realm("https://auth.example.com/token", &https, &[]).is_ok());
        let e = check_realm("http://auth.example.com/token", &https, &[]).unwrap_err();
        assert!(e.to_string().contains("plain http"), "{e}");
        assert!(
            check_realm(
                "http://auth.example.com/token",
                &https,
                &["auth.example.com".to_string()]
            )
            .is_ok()
        );
        // the insecure registry's own realm is fine; another plain-http host is not
        assert!(check_realm("http://127.0.0.1:5000/token", &http_reg, &[]).is_ok());
        assert!(check_realm("http://127.0.0.1:5001/token", &http_reg, &[]).is_err());
        assert!(check_realm("ftp://x/t", &https, &[]).is_err());
        assert!(check_realm("https://u:p@x/t", &https, &[]).is_err());
        assert!(check_realm("not a url", &https, &[]).is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(sha256_digest(EMPTY_JSON.as_bytes()), EMPTY_DIGEST);
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"alice:s3cr3t"), "YWxpY2U6czNjcjN0");
        assert_eq!(
            predicted_scope("GET", "/v2/team/app/manifests/v1").as_deref(),
            Some("repository:team/app:pull")
        );
        assert_eq!(
            predicted_scope("put", "/v2/a/blobs/uploads/x").as_deref(),
            Some("repository:a:pull,push")
        );
        assert_eq!(
            predicted_scope("DELETE", "/v2/a/b/manifests/sha256:x").as_deref(),
            Some("repository:a/b:delete")
        );
        assert_eq!(predicted_scope("GET", "/v2/"), None);
        assert_eq!(
            predicted_scope("GET", "/v2/team/manifests/blobs/manifests/v1").as_deref(),
            Some("repository:team/manifests/blobs:pull")
        );
        assert_eq!(
            predicted_scope("POST", "/v2/a/blobs/uploads/").as_deref(),
            Some("repository:a:pull,push")
        );
        assert_eq!(
            predicted_scope("PUT", "/v2/a/tags/blobs/uploads/u-1").as_deref(),
            Some("repository:a/tags:pull,push")
        );
        assert_eq!(
            predicted_scope("GET", "/v2/x/y/tags/list").as_deref(),
            Some("repository:x/y:pull")
        );
        assert_eq!(
            predicted_scope("GET", &format!("/v2/a/referrers/{D1}")).as_deref(),
            Some("repository:a:pull")
        );
        assert_eq!(predicted_scope("GET", "/v2/_catalog"), None);
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", <https://x/n?a=1,2>; rel=next"#).as_deref(),
            Some("https://x/n?a=1,2")
        );
        assert_eq!(next_link(r#"<https://x/p>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(referrers_tag(D1).unwrap(), D1.replacen(':', "-", 1));
        let a = dummy_manifest("v1", "inc-1");
        assert_eq!(a, dummy_manifest("v1", "inc-1"), "deterministic");
        assert_ne!(a, dummy_manifest("v2", "inc-1"));
        assert_ne!(a, dummy_manifest("v1", "inc-2"));
        let v: Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["config"]["digest"], EMPTY_DIGEST);
        assert_eq!(v["layers"], serde_json::json!([]));
        assert_eq!(v["annotations"][UNTAG_ANNOTATION], "inc-1");
    }

    fn basic(user: &str, pw: &str) -> OciAuth {
        OciAuth::Basic {
            username: user.into(),
            password: SecretString::from(pw.to_string()),
        }
    }

    #[test]
    fn builders_never_carry_credentials() {
        let c = OciClient::with_base_url(
            "http://127.0.0.1:5000",
            basic("alice", "pw-SUPERSECRET"),
            Duration::from_secs(5),
        )
        .unwrap();
        let raw = dummy_manifest("v1", "n");
        let d = sha256_digest(raw.as_bytes());
        let recs = [
            c.put_manifest_request("team/app", "v1", MEDIA_OCI_MANIFEST, &raw)
                .unwrap(),
            c.put_manifest_request("team/app", &d, MEDIA_OCI_MANIFEST, &raw)
                .unwrap(),
            c.delete_manifest_request("team/app", "v1").unwrap(),
            c.delete_manifest_request("team/app", &d).unwrap(),
            c.upload_start_request("team/app").unwrap(),
            c.upload_finish_request(
                "/v2/team/app/blobs/uploads/u1?_state=abc",
                EMPTY_DIGEST,
                EMPTY_JSON,
            )
            .unwrap(),
        ];
        for r in &recs {
            let s = format!("{} {r:?}", serde_json::to_string(r).unwrap());
            assert!(!s.contains("SUPERSECRET"), "{s}");
            assert!(!s.to_ascii_lowercase().contains("authorization"), "{s}");
            assert!(!s.contains(&base64_encode(b"alice:pw-SUPERSECRET")));
            assert!(r.is_mutating());
        }
        assert_eq!(
            recs[0].url,
            "http://127.0.0.1:5000/v2/team/app/manifests/v1"
        );
        assert_eq!(recs[0].raw_body.as_deref(), Some(raw.as_str()));
        assert_eq!(recs[0].header("content-type"), Some(MEDIA_OCI_MANIFEST));
        assert_eq!(recs[3].method, "DELETE");
        assert_eq!(
            recs[5].url,
            format!(
                "http://127.0.0.1:5000/v2/team/app/blobs/uploads/u1?_state=abc&digest={}",
                EMPTY_DIGEST.replace(':', "%3A")
            )
        );
        assert!(!format!("{c:?}").contains("SUPERSECRET"));
        // wrong digest, bad media type, foreign upload location, bad names
        assert!(
            c.put_manifest_request("team/app", D1, MEDIA_OCI_MANIFEST, &raw)
                .is_err()
        );
        assert!(
            c.put_manifest_request("team/app", "v1", "text/html", &raw)
                .is_err()
        );
        assert!(
            c.upload_finish_request("https://evil.example/u", EMPTY_DIGEST, EMPTY_JSON)
                .is_err()
        );
        assert!(c.upload_finish_request("/u", D1, EMPTY_JSON).is_err());
        assert!(c.delete_manifest_request("Team/app", "v1").is_err());
        assert!(c.delete_manifest_request("team/app", "../x").is_err());
        // constructors
        assert!(
            OciClient::with_base_url("http://u:p@h/", OciAuth::Anonymous, Duration::from_secs(1))
                .is_err()
        );
        assert!(
            OciClient::with_base_url("http://h/v2/", OciAuth::Anonymous, Duration::from_secs(1))
                .is_err()
        );
        assert!(
            OciClient::with_base_url("file:///x", OciAuth::Anonymous, Duration::from_secs(1))
                .is_err()
        );
        let c = OciClient::new(
            "reg.example.com:5000",
            OciAuth::Anonymous,
            false,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(c.base_url(), "https://reg.example.com:5000/");
        assert_eq!(c.host(), "reg.example.com:5000");
        let c = OciClient::new(
            "127.0.0.1:5000",
            OciAuth::Anonymous,
            true,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:5000/");
        assert!(OciClient::new("h/x", OciAuth::Anonymous, true, Duration::from_secs(1)).is_err());
        let dbg = format!(
            "{:?} {:?}",
            basic("bob", "hunter2-pw"),
            OciAuth::Bearer {
                token: SecretString::from("tok-zzz".to_string())
            }
        );
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("tok-zzz"),
            "{dbg}"
        );
    }

    // ---- a loopback fake registry -----------------------------------------------------

    #[derive(Clone, Debug)]
    struct FakeReq {
        method: String,
        /// path and query
        target: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl FakeReq {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        fn path(&self) -> &str {
            self.target.split('?').next().unwrap_or_default()
        }
        fn query(&self, key: &str) -> Vec<String> {
            let q = self.target.split_once('?').map(|(_, q)| q).unwrap_or("");
            url::form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
                .collect()
        }
    }

    struct FakeResp {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    fn resp(status: u16, body: &str) -> FakeResp {
        FakeResp {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    impl FakeResp {
        fn h(mut self, k: &str, v: &str) -> Self {
            self.headers.push((k.to_string(), v.to_string()));
            self
        }
    }

    type Handler = Arc<dyn Fn(&FakeReq, &str) -> FakeResp + Send + Sync>;

    struct Fake {
        base: String,
        log: Arc<Mutex<Vec<FakeReq>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Fake {
        fn requests(&self) -> Vec<FakeReq> {
            lock(&self.log).clone()
        }
        fn count(&self, method: &str, path: &str) -> usize {
            self.requests()
                .iter()
                .filter(|r| r.method == method && r.path() == path)
                .count()
        }
        fn mutating(&self) -> Vec<(String, String)> {
            self.requests()
                .into_iter()
                .filter(|r| http::is_mutating(&r.method))
                .map(|r| (r.method.clone(), r.path().to_string()))
                .collect()
        }
    }

    async fn fake(handler: impl Fn(&FakeReq, &str) -> FakeResp + Send + Sync + 'static) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log: Arc<Mutex<Vec<FakeReq>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let (b, l) = (base.clone(), log.clone());
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (b, l, h) = (b.clone(), l.clone(), handler.clone());
                tokio::spawn(async move {
                    let _ = serve_conn(sock, &b, &l, &h).await;
                });
            }
        });
        Fake { base, log, task }
    }

    /// Minimal HTTP/1.1: one request per connection, `Connection: close`.
    async fn serve_conn(
        sock: tokio::net::TcpStream,
        base: &str,
        log: &Mutex<Vec<FakeReq>>,
        handler: &Handler,
    ) -> std::io::Result<()> {
        let mut rd = BufReader::new(sock);
        let mut line = String::new();
        rd.read_line(&mut line).await?;
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if rd.read_line(&mut h).await? == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.trim_end().split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        rd.read_exact(&mut body).await?;
        let req = FakeReq {
            method,
            target,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        lock(log).push(req.clone());
        let r = handler(&req, base);
        let mut out = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", r.status);
        for (k, v) in &r.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("content-length: {}\r\n\r\n", r.body.len()));
        if req.method != "HEAD" {
            out.push_str(&r.body);
        }
        let mut sock = rd.into_inner();
        sock.write_all(out.as_bytes()).await?;
        sock.shutdown().await
    }

    fn client(base: &str, auth: OciAuth) -> OciClient {
        OciClient::with_base_url(base, auth, Duration::from_secs(10)).unwrap()
    }

    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

    fn manifest_resp(body: &str) -> FakeResp {
        resp(200, body)
            .h("content-type", MEDIA_OCI_MANIFEST)
            .h("docker-content-digest", &sha256_digest(body.as_bytes()))
    }

    /// A token-auth registry: `/token` issues `tok-<n>` for the right Basic credentials (or
    /// anonymously when `user` is None); `/v2/…` wants `Bearer tok-<n>` with the right scope.
    fn token_registry(
        user: Option<(&'static str, &'static str)>,
        token_field: &'static str,
        expires_in: u64,
    ) -> impl Fn(&FakeReq, &str) -> FakeResp + Send + Sync + 'static {
        let issued: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        move |req, base| {
            if req.path() == "/token" {
                let want = user.map(|(u, p)| {
                    format!("Basic {}", base64_encode(format!("{u}:{p}").as_bytes()))
                });
                if req.header("authorization").map(str::to_string) != want {
                    return resp(401, r#"{"details":"bad credentials"}"#);
                }
                if req.query("service") != ["fake-registry"] {
                    return resp(400, "service missing");
                }
                let scope = req.query("scope").join(" ");
                let mut issued = lock(&issued);
                let tok = format!("tok-{}", issued.len() + 1);
                issued.push((tok.clone(), scope));
                return resp(
                    200,
                    &format!(r#"{{"{token_field}":"{tok}","expires_in":{expires_in}}}"#),
                );
            }
            let Some(scope) = predicted_scope(&req.method, req.path()) else {
                return resp(200, "{}");
            };
            let ok = req
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .is_some_and(|t| lock(&issued).iter().any(|(tok, s)| tok == t && *s == scope));
            if !ok {
                return resp(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#).h(
                    "www-authenticate",
                    &format!(
                        r#"Bearer realm="{base}/token",service="fake-registry",scope="{scope}",error="insufficient_scope""#
                    ),
                );
            }
            match req.method.as_str() {
                "GET" | "HEAD" => manifest_resp(MANIFEST),
                _ => resp(201, "").h("docker-content-digest", &sha256_digest(req.body.as_bytes())),
            }
        }
    }

    #[tokio::test]
    async fn bearer_challenge_with_basic_credentials_is_fetched_cached_and_scoped() {
        let f = fake(token_registry(Some(("alice", "s3cr3t-pw")), "token", 300)).await;
        let c = client(&f.base, basic("alice", "s3cr3t-pw"));
        let r = c.resolve("team/app", "v1").await.unwrap();
        assert_eq!(r.digest, sha256_digest(MANIFEST.as_bytes()));
        assert_eq!(r.media_type, MEDIA_OCI_MANIFEST);
        assert_eq!(r.raw, MANIFEST);
        let again = c.resolve("team/app", "v1").await.unwrap();
        assert_eq!(again.digest, r.digest);
        assert_eq!(f.count("GET", "/token"), 1, "token cached per scope");
        assert_eq!(
            f.count("GET", "/v2/team/app/manifests/v1"),
            3,
            "401, retry, cached"
        );
        let reqs = f.requests();
        assert_eq!(
            reqs[0].header("authorization"),
            None,
            "no credentials before a challenge"
        );
        assert_eq!(reqs[1].query("scope"), ["repository:team/app:pull"]);
        assert_eq!(reqs[2].header("authorization"), Some("Bearer tok-1"));

        // A push needs another scope: a second token.
        let put = c
            .put_manifest_request("team/app", "v2", MEDIA_OCI_MANIFEST, MANIFEST)
            .unwrap();
        let sent = c.send(&put).await.unwrap();
        assert_eq!(sent.status, 201);
        let tokens: Vec<FakeReq> = f
            .requests()
            .into_iter()
            .filter(|r| r.path() == "/token")
            .collect();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[1].query("scope"), ["repository:team/app:pull,push"]);
        let puts: Vec<FakeReq> = f
            .requests()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .collect();
        assert_eq!(puts.len(), 2, "refused once, then sent with the token");
        assert_eq!(puts[1].body, MANIFEST, "raw bytes sent verbatim");
        assert_eq!(puts[1].header("content-type"), Some(MEDIA_OCI_MANIFEST));
    }

    #[tokio::test]
    async fn anonymous_token_flow_reads_access_token_and_honours_expiry() {
        let f = fake(token_registry(None, "access_token", 0)).await;
        let c = client(&f.base, OciAuth::Anonymous);
        c.resolve("team/app", "v1").await.unwrap();
        c.resolve("team/app", "v1").await.unwrap();
        assert_eq!(f.count("GET", "/token"), 2, "expires_in 0: fetched again");
        assert!(
            f.requests()
                .iter()
                .filter(|r| r.path() == "/token")
                .all(|r| r.header("authorization").is_none())
        );
        assert!(
            c.manifest_exists("team/app", &sha256_digest(MANIFEST.as_bytes()))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn token_endpoint_refusal_is_auth_error_without_secrets() {
        let f = fake(token_registry(Some(("alice", "right-pw")), "token", 300)).await;
        let c = client(&f.base, basic("alice", "wrong-pw-XYZ"));
        let e = c.resolve("team/app", "v1").await.unwrap_err();
        assert!(
            matches!(&e, OciError::Http(h) if h.is_auth_refused()),
            "{e:?}"
        );
        assert!(!e.is_transient());
        let text = format!("{e} {e:?}");
        assert!(!text.contains("wrong-pw-XYZ"), "{text}");
        assert_eq!(f.count("GET", "/token"), 1, "no retry loop");
    }

    #[tokio::test]
    async fn basic_challenge_is_answered_then_sent_up_front() {
        let want = format!("Basic {}", base64_encode(b"bob:pa55-word"));
        let f = fake(move |req, _| {
            if req.header("authorization") == Some(want.as_str()) {
                manifest_resp(MANIFEST)
            } else {
                // a hostile registry echoing the credential it got
                resp(401, &format!("denied {:?}", req.header("authorization")))
                    .h("www-authenticate", r#"Basic realm="fake, with comma""#)
            }
        })
        .await;
        let c = client(&f.base, basic("bob", "pa55-word"));
        c.resolve("team/app", "v1").await.unwrap();
        c.resolve("team/app", "v1").await.unwrap();
        assert_eq!(f.count("GET", "/v2/team/app/manifests/v1"), 3);
        let reqs = f.requests();
        assert_eq!(reqs[0].header("authorization"), None);
        assert!(
            reqs[2].header("authorization").is_some(),
            "Basic sent up front once learned"
        );

        let wrong = client(&f.base, basic("bob", "not-the-pa55"));
        let e = wrong.resolve("team/app", "v1").await.unwrap_err();
        assert_eq!(e.status(), Some(401));
        let text = format!("{e} {e:?}");
        assert!(!text.contains("not-the-pa55"), "{text}");
        assert!(
            !text.contains(&base64_encode(b"bob:not-the-pa55")),
            "{text}"
        );
        // anonymous against a Basic registry: one request, refused
        let n = f.requests().len();
        let anon = client(&f.base, OciAuth::Anonymous);
        assert_eq!(
            anon.resolve("team/app", "v1").await.unwrap_err().status(),
            Some(401)
        );
        assert_eq!(f.requests().len(), n + 1);
    }

    #[tokio::test]
    async fn static_bearer_token_is_sent_and_scrubbed() {
        let f = fake(|req, _| {
            if req.header("authorization") == Some("Bearer static-TOKEN-1") {
                manifest_resp(MANIFEST)
            } else {
                resp(401, &format!("bad {:?}", req.header("authorization")))
                    .h("www-authenticate", r#"Bearer realm="http://127.0.0.1:9/t""#)
            }
        })
        .await;
        let ok = client(
            &f.base,
            OciAuth::Bearer {
                token: SecretString::from("static-TOKEN-1".to_string()),
            },
        );
        ok.resolve("a", "v1").await.unwrap();
        let bad = client(
            &f.base,
            OciAuth::Bearer {
                token: SecretString::from("static-TOKEN-2".to_string()),
            },
        );
        let e = bad.resolve("a", "v1").await.unwrap_err();
        assert_eq!(e.status(), Some(401));
        assert!(!format!("{e} {e:?}").contains("static-TOKEN-2"));
        assert_eq!(f.requests().len(), 2, "no token flow for a static token");
    }

    #[tokio::test]
    async fn tags_follow_link_pages_and_stay_on_the_registry() {
        let f = fake(
            |req, base| match req.query("last").first().map(String::as_str) {
                None => resp(200, r#"{"name":"a","tags":["c","a"]}"#)
                    .h("link", r#"</v2/a/tags/list?n=2&last=c>; rel="next""#),
                Some("c") => resp(200, r#"{"name":"a","tags":["b"]}"#).h(
                    "link",
                    &format!(r#"<{base}/v2/a/tags/list?n=2&last=b>; rel="next""#),
                ),
                Some("b") => resp(200, r#"{"name":"a","tags":null}"#),
                Some(_) => resp(500, "no"),
            },
        )
        .await;
        let c = client(&f.base, OciAuth::Anonymous);
        assert_eq!(c.tags("a").await.unwrap(), ["a", "b", "c"]);
        assert_eq!(f.requests().len(), 3);

        let evil = fake(|_, _| {
            resp(200, r#"{"tags":["x"]}"#).h(
                "link",
                r#"<http://evil.example/v2/a/tags/list>; rel="next""#,
            )
        })
        .await;
        let e = client(&evil.base, OciAuth::Anonymous)
            .tags("a")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("leaves the registry"), "{e}");
        let looping = fake(|_, _| {
            resp(200, r#"{"tags":["x"]}"#).h("link", r#"</v2/a/tags/list>; rel="next""#)
        })
        .await;
        let e = client(&looping.base, OciAuth::Anonymous)
            .tags("a")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("loops"), "{e}");
        let missing = fake(|_, _| resp(404, r#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#)).await;
        let e = client(&missing.base, OciAuth::Anonymous)
            .tags("a")
            .await
            .unwrap_err();
        assert!(matches!(e, OciError::NotFound { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn digest_mismatches_and_foreign_types_are_refused() {
        let f = fake(|req, _| match req.path() {
            "/v2/a/manifests/lying" => resp(200, MANIFEST)
                .h("content-type", MEDIA_OCI_MANIFEST)
                .h("docker-content-digest", D1),
            "/v2/a/manifests/v1" => resp(200, r#"{"schemaVersion":1}"#).h(
                "content-type",
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
            ),
            _ => manifest_resp(MANIFEST),
        })
        .await;
        let c = client(&f.base, OciAuth::Anonymous);
        let e = c.resolve("a", "lying").await.unwrap_err();
        assert!(matches!(e, OciError::Malformed(_)), "{e:?}");
        let e = c.resolve("a", D1).await.unwrap_err();
        assert!(matches!(e, OciError::Malformed(_)), "{e:?}");
        let e = c.resolve("a", "v1").await.unwrap_err();
        assert!(matches!(e, OciError::Unsupported(_)), "{e:?}");
        // a record pointing elsewhere is never sent
        let rec = RequestRecord::new("DELETE", "http://evil.example/v2/a/manifests/x");
        assert!(c.send(&rec).await.is_err());
        assert!(f.requests().iter().all(|r| r.method == "GET"));
    }

    #[tokio::test]
    async fn untag_uses_native_tag_delete_when_supported() {
        let f = fake(|req, _| match req.method.as_str() {
            "DELETE" => resp(202, ""),
            _ => manifest_resp(MANIFEST),
        })
        .await;
        let c = client(&f.base, OciAuth::Anonymous);
        let plan = c.untag_plan("a", "v1", "inc-1").await.unwrap();
        assert_eq!(
            plan.current_digest.as_deref(),
            Some(sha256_digest(MANIFEST.as_bytes()).as_str())
        );
        assert!(f.mutating().is_empty(), "planning sends nothing mutating");
        let out = c.untag("a", "v1", "inc-1").await.unwrap();
        assert_eq!(out.method, UntagMethod::TagDelete);
        assert_eq!(
            f.mutating(),
            [("DELETE".to_string(), "/v2/a/manifests/v1".to_string())]
        );
        assert_eq!(out.sent, vec![plan.tag_delete.unwrap()]);
    }

    #[tokio::test]
    async fn untag_reports_immutable_tags_clearly_and_deletes_nothing_by_digest() {
        let f = fake(|req, _| match (req.method.as_str(), req.path()) {
            ("DELETE", _) => resp(405, r#"{"errors":[{"code":"UNSUPPORTED"}]}"#),
            ("HEAD", p) if p.contains("/blobs/") => resp(200, ""),
            ("PUT", _) => resp(
                400,
                r#"{"errors":[{"code":"TAG_INVALID","message":"tag v1 is immutable"}]}"#,
            ),
            _ => manifest_resp(MANIFEST),
        })
        .await;
        let c = client(&f.base, OciAuth::Anonymous);
        let e = c.untag("a", "v1", "inc-1").await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, OciError::Unsupported(_)), "{e:?}");
        assert!(
            msg.contains("immutable") && msg.contains("405") && msg.contains("TAG_INVALID"),
            "{msg}"
        );
        assert_eq!(
            f.mutating(),
            [
                ("DELETE".to_string(), "/v2/a/manifests/v1".to_string()),
                ("PUT".to_string(), "/v2/a/manifests/v1".to_string()),
            ]
        );
    }

    #[tokio::test]
    async fn untag_of_an_absent_tag_sends_nothing() {
        let f = fake(|_, _| resp(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#)).await;
        let c = client(&f.base, OciAuth::Anonymous);
        let out = c.untag("a", "gone", "n").await.unwrap();
        assert_eq!(out.method, UntagMethod::AlreadyAbsent);
        assert!(out.sent.is_empty());
        assert!(
            c.untag_plan("a", "gone", "n")
                .await
                .unwrap()
                .records()
                .is_empty()
        );
        assert!(f.mutating().is_empty());
    }

    #[tokio::test]
    async fn referrers_api_and_cosign_tags() {
        let sig = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"annotations":{"sig":"1"}}"#;
        let f = fake(move |req, _| {
            let p = req.path();
            if p.starts_with("/v2/a/referrers/") {
                resp(200, &format!(r#"{{"schemaVersion":2,"mediaType":"{MEDIA_OCI_INDEX}","manifests":[{{"mediaType":"{MEDIA_OCI_MANIFEST}","digest":"{D1}","size":7,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}}]}}"#))
                    .h("content-type", MEDIA_OCI_INDEX)
            } else if p.ends_with(".sig") {
                manifest_resp(sig)
            } else {
                resp(404, "")
            }
        })
        .await;
        let c = client(&f.base, OciAuth::Anonymous);
        let r = c.referrers("a", D1).await.unwrap();
        assert_eq!(r.source, ReferrersSource::Api);
        assert_eq!(r.descriptors.len(), 1);
        assert_eq!(r.descriptors[0].size, 7);
        assert_eq!(
            r.descriptors[0].artifact_type.as_deref(),
            Some("application/vnd.dev.sigstore.bundle.v0.3+json")
        );
        let tag = format!("{}.sig", referrers_tag(D1).unwrap());
        assert_eq!(r.cosign, vec![(tag, sha256_digest(sig.as_bytes()))]);
    }

    #[tokio::test]
    async fn preflight_reads_refuse_writes_and_read_token_grants_without_keeping_them() {
        use base64::Engine as _;
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jwt = format!(
            "{}.{}.c2lnLXNlY3JldA",
            enc(r#"{"alg":"none"}"#),
            enc(r#"{"access":[{"type":"repository","name":"team/app","actions":["pull"]}]}"#)
        );
        let tok = jwt.clone();
        let f = fake(move |req, base| match req.path() {
            "/token" => resp(200, &format!(r#"{{"token":"{tok}"}}"#)),
            "/v2/" if req.header("authorization").is_none() => resp(401, "{}").h(
                "www-authenticate",
                &format!(r#"Bearer realm="{base}/token",service="svc""#),
            ),
            _ => resp(200, "").h("allow", "GET, HEAD"),
        })
        .await;
        let c = client(&f.base, basic("alice", "pw-Q7"));
        for m in ["PUT", "POST", "PATCH", "DELETE", "delete"] {
            let e = c.read_answer(m, "v2/", None, true).await.unwrap_err();
            assert!(matches!(e, OciError::Unsupported(_)), "{m}: {e:?}");
        }
        assert!(f.requests().is_empty(), "nothing was sent for a write");

        let bare = c.ping(false).await.unwrap();
        assert_eq!(bare.status, 401);
        let chs = bare.challenges();
        assert_eq!(chs[0].scheme, "bearer");
        let g = c
            .token_grant(&chs[0], "repository:team/app:pull,push")
            .await
            .unwrap();
        assert_eq!(g.scope, "repository:team/app:pull,push");
        let access = g.access.clone().unwrap();
        assert_eq!(granted_actions(&access, "team/app"), ["pull"]);
        assert!(granted_actions(&access, "team/other").is_empty());
        assert!(!format!("{g:?}").contains("c2lnLXNlY3JldA"));
        let asked = f.requests();
        let t = asked.iter().find(|r| r.path() == "/token").unwrap();
        assert_eq!(t.query("scope"), ["repository:team/app:pull,push"]);
        assert_eq!(t.query("service"), ["svc"]);
        assert!(
            t.header("authorization")
                .is_some_and(|a| a.starts_with("Basic "))
        );

        let o = c.manifest_options("team/app", "v1").await.unwrap();
        assert_eq!(o.method, "OPTIONS");
        assert_eq!(o.allow().unwrap(), ["GET", "HEAD"]);
        assert!(c.manifest_options("team/app", "-bad").await.is_err());
        assert_eq!(c.auth_scheme(), "basic");
        assert_eq!(c.static_token_access(), None);
        let s = client(
            &f.base,
            OciAuth::Bearer {
                token: SecretString::from(jwt),
            },
        );
        assert_eq!(s.static_token_access().unwrap(), access);
    }
}
