//! PyPI read client (pypi.org, test.pypi.org, or any Warehouse-compatible index): the JSON
//! API and the Simple API, to tell whether a release is yanked, and the link to the page
//! where a person yanks it.
//!
//! PyPI has **no API to yank** (pypa/warehouse issue 12708 is open): yanking is done by a
//! maintainer in the web UI, at [`manage_url`]. This client never sends credentials.
//!
//! # Wire facts (from PEP 503, PEP 592, PEP 691 and Warehouse's routes; exercised against the
//! static fake in `tests/it/fakes/pypi.rs`, not against the live service)
//!
//! * **Names** are compared in PEP 503 normal form ([`normalize`]: lower case, runs of
//!   `-`, `_`, `.` → `-`). Warehouse answers a non-normalised Simple URL with a redirect to
//!   the normalised one, and a JSON API URL whose name differs from the project's display
//!   name with a redirect to it; we request normalised names and follow redirects.
//! * **JSON API**: `GET /pypi/<project>/<version>/json` → `{"info":{"name","version",
//!   "yanked","yanked_reason",…},"urls":[{"filename","yanked","yanked_reason",
//!   "upload_time_iso_8601","packagetype","url",…}],…}`; `GET /pypi/<project>/json` adds
//!   `releases` (version → files). Unknown project/version → `404`.
//! * **Simple API**: `GET /simple/<project>/` negotiated by `Accept` ([`SIMPLE_ACCEPT`]):
//!   PEP 691 JSON (`application/vnd.pypi.simple.v1+json`) has `meta.api-version` (major must
//!   be 1) and `files[]` whose `yanked` is `false`, `true` or the reason string; PEP 503 HTML
//!   has one `<a href=…>filename</a>` per file with PEP 592's `data-yanked` attribute (empty
//!   value = yanked without a reason; values are HTML-escaped).
//! * **Yanking is per file in PEP 592** but per release on Warehouse (all files at once). A
//!   release counts as yanked here only when every file the JSON API lists for it is yanked
//!   in the JSON API **and** in the Simple API (what pip reads).
//! * **Manage page**: `<web>/manage/project/<name>/release/<version>/` (Warehouse route
//!   `manage.project.release`), where a logged-in owner finds "Yank".

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::net::http::{self, HttpError, RequestRecord};

/// pypi.org (JSON and Simple API, and the web UI).
pub const PYPI: &str = "https://pypi.org";

/// `Accept` for the Simple API: PEP 691 JSON preferred, HTML as fallback (PEP 691's
/// recommended client header).
pub const SIMPLE_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

/// Errors of the PyPI client.
#[derive(thiserror::Error, Debug)]
pub enum PypiError {
    #[error("invalid Python project name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid release version {version:?}: {reason}")]
    InvalidVersion { version: String, reason: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The answer parsed but has not the expected shape.
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl PypiError {
    /// Only HTTP failures can be transient.
    pub fn is_transient(&self) -> bool {
        matches!(self, PypiError::Http(e) if e.is_transient())
    }

    /// HTTP status, if the index answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            PypiError::Http(e) => e.status(),
            _ => None,
        }
    }
}

/// PEP 503 normal form: lower case, every run of `-`, `_` and `.` replaced by one `-`.
pub fn normalize(project: &str) -> String {
    let mut out = String::with_capacity(project.len());
    let mut in_sep = false;
    for c in project.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

/// Validates a project name (PEP 508: ASCII letters and digits, with `.`, `_`, `-` inside).
pub fn validate_project_name(name: &str) -> Result<(), PypiError> {
    let bad = |reason: &str| PypiError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if name.len() > 256 {
        return Err(bad("longer than 256 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(bad(&format!("character {c:?} is not allowed")));
    }
    let first_last_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_last_ok(name.chars().next()) || !first_last_ok(name.chars().last()) {
        return Err(bad("must start and end with a letter or digit"));
    }
    Ok(())
}

/// Validates a release version loosely (PEP 440 characters): starts with a letter or
/// digit; letters, digits, `.`, `+`, `!`, `_`, `-` only (no whitespace, slashes or control
/// characters), at most 128 characters.
pub fn validate_version(version: &str) -> Result<(), PypiError> {
    let bad = |reason: &str| PypiError::InvalidVersion {
        version: version.to_string(),
        reason: reason.to_string(),
    };
    if version.is_empty() {
        return Err(bad("empty version"));
    }
    if version.len() > 128 {
        return Err(bad("longer than 128 characters"));
    }
    if !version.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad("must start with a letter or digit"));
    }
    if let Some(c) = version
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '_' | '-')))
    {
        return Err(bad(&format!("character {c:?} is not allowed")));
    }
    Ok(())
}

fn parse_base(base: &str, what: &str) -> Result<url::Url, PypiError> {
    let mut u = url::Url::parse(base.trim())
        .map_err(|e| PypiError::InvalidInput(format!("invalid {what} URL {base:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(PypiError::InvalidInput(format!(
            "{what} URL must be http(s), got {:?}",
            u.scheme()
        )));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(PypiError::InvalidInput(format!(
            "{what} URL must not embed credentials"
        )));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(PypiError::InvalidInput(format!("{what} URL has no host")));
    }
    u.set_query(None);
    u.set_fragment(None);
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    Ok(u)
}

/// The web page where an owner yanks `project` `version`:
/// `<web_base>/manage/project/<normalized>/release/<version>/`.
pub fn manage_url(web_base: &str, project: &str, version: &str) -> Result<String, PypiError> {
    validate_project_name(project)?;
    validate_version(version)?;
    let base = parse_base(web_base, "PyPI web")?;
    Ok(format!(
        "{}manage/project/{}/release/{version}/",
        base.as_str(),
        normalize(project)
    ))
}

/// One distribution file of a release, as the JSON API lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileInfo {
    pub filename: String,
    #[serde(default)]
    pub yanked: bool,
    #[serde(default)]
    pub yanked_reason: Option<String>,
    #[serde(default)]
    pub upload_time_iso_8601: Option<String>,
    #[serde(default)]
    pub packagetype: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

/// A release as `GET /pypi/<project>/<version>/json` describes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Release {
    /// Display name (`info.name`).
    pub name: String,
    /// `info.version`.
    pub version: String,
    /// `info.yanked` (Warehouse's per-release flag).
    pub yanked: bool,
    pub yanked_reason: Option<String>,
    /// `urls[]`: the release's files.
    pub files: Vec<FileInfo>,
}

impl Release {
    /// Parses a JSON API answer.
    pub fn from_json(v: &Value) -> Result<Self, PypiError> {
        let info = v
            .get("info")
            .and_then(Value::as_object)
            .ok_or_else(|| PypiError::Malformed("no `info` object".into()))?;
        let s = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_string);
        let urls = v
            .get("urls")
            .and_then(Value::as_array)
            .ok_or_else(|| PypiError::Malformed("no `urls` array".into()))?;
        let files = urls
            .iter()
            .map(|f| {
                serde_json::from_value::<FileInfo>(f.clone())
                    .map_err(|e| PypiError::Malformed(format!("bad `urls` entry: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Release {
            name: s("name").unwrap_or_default(),
            version: s("version").unwrap_or_default(),
            yanked: info.get("yanked").and_then(Value::as_bool).unwrap_or(false),
            yanked_reason: s("yanked_reason").filter(|r| !r.is_empty()),
            files,
        })
    }
}

/// A project as `GET /pypi/<project>/json` describes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Project {
    /// Display name (`info.name`).
    pub name: String,
    /// Latest version (`info.version`).
    pub version: String,
    /// Keys of `releases` (every version with a release page), as listed.
    pub versions: Vec<String>,
}

/// One file of the Simple API.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SimpleFile {
    pub filename: String,
    /// `None`: not yanked; `Some("")`: yanked without a reason; `Some(reason)`.
    pub yanked: Option<String>,
}

/// Which Simple API representation answered.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum SimpleFormat {
    /// PEP 691 JSON.
    Json,
    /// PEP 503 HTML.
    Html,
}

/// Parses a PEP 691 JSON project page.
pub fn parse_simple_json(v: &Value) -> Result<Vec<SimpleFile>, PypiError> {
    if let Some(ver) = v
        .get("meta")
        .and_then(|m| m.get("api-version"))
        .and_then(Value::as_str)
        && ver.split('.').next() != Some("1")
    {
        return Err(PypiError::Malformed(format!(
            "unsupported Simple API version {ver:?}"
        )));
    }
    let files = v
        .get("files")
        .and_then(Value::as_array)
        .ok_or_else(|| PypiError::Malformed("Simple API JSON has no `files` array".into()))?;
    files
        .iter()
        .map(|f| {
            let filename = f
                .get("filename")
                .and_then(Value::as_str)
                .ok_or_else(|| PypiError::Malformed("Simple API file without `filename`".into()))?
                .to_string();
            let yanked = match f.get("yanked") {
                None | Some(Value::Null) | Some(Value::Bool(false)) => None,
                Some(Value::Bool(true)) => Some(String::new()),
                Some(Value::String(r)) => Some(r.clone()),
                Some(other) => {
                    return Err(PypiError::Malformed(format!(
                        "`yanked` of {filename} is {other}"
                    )));
                }
            };
            Ok(SimpleFile { filename, yanked })
        })
        .collect()
}

/// Decodes HTML character references (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`,
/// `&#39;`, `&#x27;`, `&nbsp;`, any `&#N;`/`&#xH;`). Unknown references are kept as is.
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').filter(|&e| e <= 12);
        let decoded = end.and_then(|e| {
            let ent = &tail[1..e];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let num = ent.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok()?,
                        None => num.parse::<u32>().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Attributes of a tag body (`href="…" data-yanked`), names lower-cased, values decoded.
fn parse_attrs(s: &str) -> Vec<(String, Option<String>)> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0c);
    while i < b.len() {
        while i < b.len() && (is_space(b[i]) || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && !is_space(b[i]) && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        let name = s[start..i].to_ascii_lowercase();
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            let value = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                let ve = b[vs..]
                    .iter()
                    .position(|&c| c == q)
                    .map_or(b.len(), |p| vs + p);
                i = (ve + 1).min(b.len());
                &s[vs..ve]
            } else {
                let vs = i;
                while i < b.len() && !is_space(b[i]) {
                    i += 1;
                }
                &s[vs..i]
            };
            out.push((name, Some(decode_entities(value))));
        } else if !name.is_empty() {
            out.push((name, None));
        }
    }
    out
}

/// Removes tags from an HTML fragment.
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Parses a PEP 503 HTML project page: one entry per `<a>`, the file name from the anchor
/// text (else the last `href` path segment), `data-yanked` per PEP 592.
pub fn parse_simple_html(html: &str) -> Vec<SimpleFile> {
    // ASCII lower-casing keeps byte offsets, and ASCII matches are char boundaries.
    let lower = html.to_ascii_lowercase();
    let bytes = html.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = lower[pos..].find("<a") {
        let after = pos + i + 2;
        if !matches!(
            bytes.get(after),
            Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0c | b'>' | b'/')
        ) {
            pos = after;
            continue;
        }
        // End of the start tag, honouring quotes.
        let mut quote: Option<u8> = None;
        let mut gt = None;
        for (j, &c) in bytes.iter().enumerate().skip(after) {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == b'"' || c == b'\'' => quote = Some(c),
                None if c == b'>' => {
                    gt = Some(j);
                    break;
                }
                None => {}
            }
        }
        let Some(gt) = gt else { break };
        let attrs = parse_attrs(&html[after..gt]);
        let close = lower[gt + 1..]
            .find("</a")
            .map_or(html.len(), |j| gt + 1 + j);
        let text = decode_entities(&strip_tags(&html[gt + 1..close]))
            .trim()
            .to_string();
        let attr = |n: &str| attrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let filename = if text.is_empty() {
            attr("href")
                .flatten()
                .map(|h| {
                    let h = h.split(['#', '?']).next().unwrap_or_default();
                    let last = h.rsplit('/').next().unwrap_or_default();
                    percent_encoding::percent_decode_str(last)
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .unwrap_or_default()
        } else {
            text
        };
        if !filename.is_empty() {
            out.push(SimpleFile {
                filename,
                yanked: attr("data-yanked").map(Option::unwrap_or_default),
            });
        }
        pos = close.max(gt + 1);
    }
    out
}

/// Yank state of one file of a release.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileYank {
    pub filename: String,
    /// Yanked according to the JSON API.
    pub yanked_json: bool,
    /// Yanked according to the Simple API; `None` when the file is not listed there.
    pub yanked_simple: Option<bool>,
    /// Reason given by either API, if any.
    pub reason: Option<String>,
}

/// Whether a release is yanked, from both APIs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct YankStatus {
    pub project: String,
    pub version: String,
    /// One entry per file the JSON API lists for the release.
    pub files: Vec<FileYank>,
    /// The release has files and the JSON API marks every one yanked.
    pub all_files_yanked_json: bool,
    /// The release has files and the Simple API lists every one as yanked.
    pub all_files_yanked_simple: bool,
    /// Warehouse's per-release `info.yanked` (informational: the files decide).
    pub release_flag: bool,
    /// Which Simple API representation answered (`None`: the Simple page was missing).
    pub simple_format: Option<SimpleFormat>,
    /// First non-empty reason: Simple API, then the files' JSON reason, then the release's.
    pub reason: Option<String>,
}

impl YankStatus {
    /// Yanked for every client: every file yanked in the JSON API and in the Simple API.
    pub fn yanked(&self) -> bool {
        self.all_files_yanked_json && self.all_files_yanked_simple
    }
}

/// Combines a JSON API release and its project's Simple API files. The release's files are
/// the JSON API's `urls[]` filenames; Simple entries of other versions are ignored.
pub fn yank_status_from(
    project: &str,
    release: &Release,
    simple: &[SimpleFile],
    simple_format: Option<SimpleFormat>,
) -> YankStatus {
    let files: Vec<FileYank> = release
        .files
        .iter()
        .map(|f| {
            let s = simple.iter().find(|s| s.filename == f.filename);
            let simple_reason = s.and_then(|s| s.yanked.clone()).filter(|r| !r.is_empty());
            let json_reason = f.yanked_reason.clone().filter(|r| !r.is_empty());
            FileYank {
                filename: f.filename.clone(),
                yanked_json: f.yanked,
                yanked_simple: s.map(|s| s.yanked.is_some()),
                reason: simple_reason.or(json_reason),
            }
        })
        .collect();
    let any = !files.is_empty();
    let reason = files
        .iter()
        .find_map(|f| f.reason.clone())
        .or_else(|| release.yanked_reason.clone());
    YankStatus {
        project: project.to_string(),
        version: release.version.clone(),
        all_files_yanked_json: any && files.iter().all(|f| f.yanked_json),
        all_files_yanked_simple: any && files.iter().all(|f| f.yanked_simple == Some(true)),
        release_flag: release.yanked,
        simple_format,
        reason,
        files,
    }
}

/// Read-only client for one PyPI-compatible index.
#[derive(Debug)]
pub struct PypiClient {
    /// Base URL, ending in `/`.
    base: url::Url,
    client: reqwest::Client,
}

impl PypiClient {
    /// A client for `base` (`https://pypi.org`, `https://test.pypi.org`, a local fake).
    pub fn new(base: &str, timeout: Duration) -> Result<Self, PypiError> {
        Ok(PypiClient {
            base: parse_base(base, "PyPI")?,
            client: http::build_client(timeout),
        })
    }

    /// Replaces the HTTP client.
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// The base URL, ending in `/`.
    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str(), path.trim_start_matches('/'))
    }

    /// `GET /pypi/<normalized>/<version>/json`.
    pub fn release_request(
        &self,
        project: &str,
        version: &str,
    ) -> Result<RequestRecord, PypiError> {
        validate_project_name(project)?;
        validate_version(version)?;
        Ok(RequestRecord::new(
            "GET",
            self.url(&format!("pypi/{}/{version}/json", normalize(project))),
        ))
    }

    /// `GET /pypi/<normalized>/json`.
    pub fn project_request(&self, project: &str) -> Result<RequestRecord, PypiError> {
        validate_project_name(project)?;
        Ok(RequestRecord::new(
            "GET",
            self.url(&format!("pypi/{}/json", normalize(project))),
        ))
    }

    /// `GET /simple/<normalized>/` with [`SIMPLE_ACCEPT`].
    pub fn simple_request(&self, project: &str) -> Result<RequestRecord, PypiError> {
        validate_project_name(project)?;
        Ok(
            RequestRecord::new("GET", self.url(&format!("simple/{}/", normalize(project))))
                .with_header("accept", SIMPLE_ACCEPT),
        )
    }

    async fn get(&self, rec: &RequestRecord) -> Result<Option<http::HttpResponse>, PypiError> {
        match http::send_record(&self.client, rec, &[]).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The release; `None` when the project or version doesn't exist.
    pub async fn release(
        &self,
        project: &str,
        version: &str,
    ) -> Result<Option<Release>, PypiError> {
        let rec = self.release_request(project, version)?;
        match self.get(&rec).await? {
            Some(resp) => Release::from_json(&resp.json()?).map(Some),
            None => Ok(None),
        }
    }

    /// The project; `None` when it doesn't exist.
    pub async fn project(&self, project: &str) -> Result<Option<Project>, PypiError> {
        let rec = self.project_request(project)?;
        let Some(resp) = self.get(&rec).await? else {
            return Ok(None);
        };
        let v = resp.json()?;
        let info = v
            .get("info")
            .and_then(Value::as_object)
            .ok_or_else(|| PypiError::Malformed("no `info` object".into()))?;
        let s = |k: &str| {
            info.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Ok(Some(Project {
            name: s("name"),
            version: s("version"),
            versions: v
                .get("releases")
                .and_then(Value::as_object)
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default(),
        }))
    }

    /// The project's Simple API files (all versions) and the representation that answered;
    /// `None` when the project page doesn't exist. One request, content-negotiated: PEP 691
    /// JSON when the index offers it, PEP 503 HTML otherwise.
    pub async fn simple_page(
        &self,
        project: &str,
    ) -> Result<Option<(SimpleFormat, Vec<SimpleFile>)>, PypiError> {
        let rec = self.simple_request(project)?;
        let Some(resp) = self.get(&rec).await? else {
            return Ok(None);
        };
        let ctype = resp
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_json = ctype.starts_with("application/vnd.pypi.simple.v1+json")
            || ctype.starts_with("application/json")
            || (ctype.is_empty() && resp.body.trim_start().starts_with('{'));
        if is_json {
            Ok(Some((
                SimpleFormat::Json,
                parse_simple_json(&resp.json()?)?,
            )))
        } else {
            Ok(Some((SimpleFormat::Html, parse_simple_html(&resp.body))))
        }
    }

    /// The project's Simple API files (all versions); `None` when the page doesn't exist.
    pub async fn simple_files(&self, project: &str) -> Result<Option<Vec<SimpleFile>>, PypiError> {
        Ok(self.simple_page(project).await?.map(|(_, f)| f))
    }

    /// Whether `project` `version` is yanked, from the JSON API and the Simple API; `None`
    /// when the JSON API doesn't know the release.
    pub async fn yank_status(
        &self,
        project: &str,
        version: &str,
    ) -> Result<Option<YankStatus>, PypiError> {
        let Some(release) = self.release(project, version).await? else {
            return Ok(None);
        };
        let (format, files) = match self.simple_page(project).await? {
            Some((f, files)) => (Some(f), files),
            None => (None, Vec::new()),
        };
        Ok(Some(yank_status_from(project, &release, &files, format)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalization_and_names() {
        assert_eq!(normalize("Friendly-Bard"), "friendly-bard");
        assert_eq!(normalize("FRIENDLY-BARD"), "friendly-bard");
        assert_eq!(normalize("friendly.bard"), "friendly-bard");
        assert_eq!(normalize("friendly_bard"), "friendly-bard");
        assert_eq!(normalize("friendly--bard"), "friendly-bard");
        assert_eq!(normalize("FrIeNdLy-._.-bArD"), "friendly-bard");
        for ok in ["requests", "a", "zope.interface", "Django", "a_b-c.d9"] {
            assert!(validate_project_name(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "", "-a", "a-", ".a", "a b", "a/b", "../x", "é", "a\n", "a%2f",
        ] {
            assert!(validate_project_name(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "1.0",
            "2.0.0rc1",
            "1!2.0",
            "1.0+local.7",
            "v1.0",
            "1.0.post1.dev2",
            "1_0",
        ] {
            assert!(validate_version(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "", ".", "..", "../x", "1.0/..", "1 0", " 1", "1\t", "1\u{0}", "-1", "1?x",
        ] {
            assert!(validate_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn manage_urls() -> Result<(), PypiError> {
        assert_eq!(
            manage_url(PYPI, "Foo_Bar", "1.0.0")?,
            "https://pypi.org/manage/project/foo-bar/release/1.0.0/"
        );
        assert_eq!(
            manage_url("https://test.pypi.org/", "x", "2.0rc1")?,
            "https://test.pypi.org/manage/project/x/release/2.0rc1/"
        );
        assert!(manage_url("ftp://pypi.org", "x", "1").is_err());
        assert!(manage_url("https://u:p@pypi.org", "x", "1").is_err());
        assert!(manage_url(PYPI, "x/y", "1").is_err());
        assert!(manage_url(PYPI, "x", "../1").is_err());
        Ok(())
    }

    #[test]
    fn request_shapes() -> Result<(), PypiError> {
        let c = PypiClient::new("https://pypi.org", Duration::from_secs(1))?;
        assert_eq!(
            c.release_request("Foo.Bar", "1.0")?.url,
            "https://pypi.org/pypi/foo-bar/1.0/json"
        );
        assert_eq!(
            c.project_request("Foo")?.url,
            "https://pypi.org/pypi/foo/json"
        );
        let s = c.simple_request("Foo_Bar")?;
        assert_eq!(s.url, "https://pypi.org/simple/foo-bar/");
        assert_eq!(s.header("accept"), Some(SIMPLE_ACCEPT));
        assert!(!s.is_mutating());
        assert!(PypiClient::new("https://u:p@pypi.org", Duration::from_secs(1)).is_err());
        Ok(())
    }

    #[test]
    fn simple_json() -> Result<(), PypiError> {
        let v = json!({
            "meta": {"api-version": "1.1"},
            "name": "foo",
            "files": [
                {"filename": "foo-1.0.tar.gz", "url": "u", "hashes": {}, "yanked": false},
                {"filename": "foo-1.0-py3-none-any.whl", "url": "u", "hashes": {}, "yanked": "broken"},
                {"filename": "foo-0.9.tar.gz", "url": "u", "hashes": {}, "yanked": true},
                {"filename": "foo-0.8.tar.gz", "url": "u", "hashes": {}}
            ]
        });
        let f = parse_simple_json(&v)?;
        assert_eq!(f.len(), 4);
        assert_eq!(f[0].yanked, None);
        assert_eq!(f[1].yanked.as_deref(), Some("broken"));
        assert_eq!(f[2].yanked.as_deref(), Some(""));
        assert_eq!(f[3].yanked, None);
        assert!(parse_simple_json(&json!({"meta": {"api-version": "2.0"}, "files": []})).is_err());
        assert!(parse_simple_json(&json!({"files": [{"filename": "x", "yanked": 3}]})).is_err());
        assert!(parse_simple_json(&json!({"name": "x"})).is_err());
        Ok(())
    }

    #[test]
    fn simple_html() {
        let html = r#"<!DOCTYPE html>
<html><head><meta name="pypi:repository-version" content="1.1"><title>Links for foo</title></head>
<body><h1>Links for foo</h1>
<a href="https://files.example/foo-1.0.tar.gz#sha256=ab" data-requires-python="&gt;=3.8">foo-1.0.tar.gz</a><br />
<A HREF='https://files.example/foo-1.0-py3-none-any.whl#sha256=cd' data-yanked="bad &quot;build&quot; &amp; more &#39;x&#x27;">foo-1.0-py3-none-any.whl</A><br/>
<a data-yanked href="https://files.example/foo-0.9.tar.gz">foo-0.9.tar.gz</a>
<a href="https://files.example/foo-0.8.tar.gz" data-yanked="">  foo-0.8.tar.gz </a>
<a href="https://files.example/foo%2B-0.7.tar.gz#sha256=ef"></a>
<abbr>not a link</abbr>
</body></html>"#;
        let f = parse_simple_html(html);
        let names: Vec<&str> = f.iter().map(|x| x.filename.as_str()).collect();
        assert_eq!(
            names,
            [
                "foo-1.0.tar.gz",
                "foo-1.0-py3-none-any.whl",
                "foo-0.9.tar.gz",
                "foo-0.8.tar.gz",
                "foo+-0.7.tar.gz"
            ]
        );
        assert_eq!(f[0].yanked, None);
        assert_eq!(f[1].yanked.as_deref(), Some("bad \"build\" & more 'x'"));
        assert_eq!(f[2].yanked.as_deref(), Some(""));
        assert_eq!(f[3].yanked.as_deref(), Some(""));
        assert_eq!(f[4].yanked, None);
        assert!(parse_simple_html("").is_empty());
        assert!(parse_simple_html("<a href='x").is_empty());
        assert_eq!(
            decode_entities("a &unknown; &#9999999999; & b"),
            "a &unknown; &#9999999999; & b"
        );
        assert_eq!(decode_entities("&lt;&#60;&#x3c;&gt;"), "<<<>");
    }

    fn release(files: &[(&str, bool)]) -> Release {
        Release {
            name: "foo".into(),
            version: "1.0".into(),
            yanked: false,
            yanked_reason: None,
            files: files
                .iter()
                .map(|(n, y)| FileInfo {
                    filename: (*n).into(),
                    yanked: *y,
                    yanked_reason: None,
                    upload_time_iso_8601: None,
                    packagetype: None,
                    url: None,
                })
                .collect(),
        }
    }

    fn sf(n: &str, y: Option<&str>) -> SimpleFile {
        SimpleFile {
            filename: n.into(),
            yanked: y.map(str::to_string),
        }
    }

    #[test]
    fn combining_sources() {
        let r = release(&[("a.tar.gz", true), ("a.whl", true)]);
        let s = [
            sf("a.tar.gz", Some("why")),
            sf("a.whl", Some("")),
            sf("old.tar.gz", None),
        ];
        let y = yank_status_from("foo", &r, &s, Some(SimpleFormat::Json));
        assert!(y.yanked());
        assert_eq!(y.reason.as_deref(), Some("why"));
        // partially yanked in the simple index
        let s = [sf("a.tar.gz", Some("why")), sf("a.whl", None)];
        let y = yank_status_from("foo", &r, &s, Some(SimpleFormat::Html));
        assert!(y.all_files_yanked_json && !y.all_files_yanked_simple && !y.yanked());
        // file missing from the simple index
        let y = yank_status_from("foo", &r, &[sf("a.tar.gz", Some(""))], None);
        assert!(!y.yanked());
        assert_eq!(y.files[1].yanked_simple, None);
        // partially yanked in JSON
        let r2 = release(&[("a.tar.gz", true), ("a.whl", false)]);
        let s = [sf("a.tar.gz", Some("")), sf("a.whl", Some(""))];
        assert!(!yank_status_from("foo", &r2, &s, None).yanked());
        // no files
        let y = yank_status_from("foo", &release(&[]), &[], None);
        assert!(!y.yanked() && !y.all_files_yanked_json);
    }

    #[test]
    fn release_parsing() -> Result<(), PypiError> {
        let r = Release::from_json(&json!({
            "info": {"name": "Foo", "version": "1.0", "yanked": true, "yanked_reason": "x"},
            "urls": [{"filename": "foo-1.0.tar.gz", "yanked": true, "yanked_reason": "x",
                      "upload_time_iso_8601": "2024-01-01T00:00:00.000000Z",
                      "packagetype": "sdist", "digests": {}}],
            "vulnerabilities": []
        }))?;
        assert!(r.yanked && r.files[0].yanked);
        assert_eq!(r.files[0].packagetype.as_deref(), Some("sdist"));
        assert!(Release::from_json(&json!({"info": {}})).is_err());
        assert!(Release::from_json(&json!({"urls": []})).is_err());
        Ok(())
    }
}
