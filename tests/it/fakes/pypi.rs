//! A static PyPI on [`FakeServer`]: Warehouse's JSON API and the Simple API (PEP 503 HTML
//! with PEP 592 `data-yanked`, PEP 691 JSON chosen by `Accept`).
//!
//! * `GET /pypi/<project>/json` and `GET /pypi/<project>/<version>/json`: any spelling
//!   whose PEP 503 normal form matches is accepted; one that differs from the display name
//!   is redirected (301) to the display-name URL, as Warehouse does. Unknown → `404
//!   {"message":"Not Found"}`.
//! * `GET /simple/<project>/`: a non-normalised name (or a missing trailing slash) is
//!   redirected (301) to `/simple/<normalized>/`. JSON (`application/vnd.pypi.simple.v1+json`)
//!   when `Accept` prefers it and [`FakePypi::set_simple_json`] hasn't turned it off (an
//!   old index), else HTML.
//! * [`FakePypi::yank_release`] does what the web UI does: marks the release and every one of
//!   its files yanked with the reason. [`FakePypi::yank_file`] yanks one file only (allowed
//!   by PEP 592, seen on other indexes, impossible on Warehouse).

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{FakeServer, Request, Response};

/// One distribution file.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeDist {
    pub filename: String,
    pub yanked: bool,
    pub yanked_reason: Option<String>,
    pub upload_time: String,
}

/// One release.
#[derive(Clone, Debug, PartialEq)]
pub struct FakePyRelease {
    pub version: String,
    pub yanked: bool,
    pub yanked_reason: Option<String>,
    pub files: Vec<FakeDist>,
}

#[derive(Debug)]
struct FakeProject {
    name: String,
    releases: Vec<FakePyRelease>,
}

#[derive(Debug)]
struct State {
    projects: Vec<FakeProject>,
    simple_json: bool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// PEP 503 normal form.
fn pep503(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !sep {
                out.push('-');
            }
            sep = true;
        } else {
            out.extend(c.to_lowercase());
            sep = false;
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn packagetype(filename: &str) -> &'static str {
    if filename.ends_with(".whl") {
        "bdist_wheel"
    } else {
        "sdist"
    }
}

/// A running fake PyPI.
pub struct FakePypi {
    server: FakeServer,
    state: Arc<Mutex<State>>,
}

impl FakePypi {
    /// A fake serving the JSON API and both Simple API formats.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            projects: Vec::new(),
            simple_json: true,
        }));
        let s = state.clone();
        let server = FakeServer::start(move |req: &Request| handle(&s, req)).await;
        FakePypi { server, state }
    }

    /// A fake whose Simple API only speaks PEP 503 HTML.
    pub async fn start_html_only() -> Self {
        let f = Self::start().await;
        f.set_simple_json(false);
        f
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// The underlying server: request log, counters, fault injection.
    pub fn server(&self) -> &FakeServer {
        &self.server
    }

    /// Whether the Simple API offers PEP 691 JSON.
    pub fn set_simple_json(&self, on: bool) {
        lock(&self.state).simple_json = on;
    }

    /// Adds a project (display name as given).
    pub fn add_project(&self, name: &str) {
        lock(&self.state).projects.push(FakeProject {
            name: name.to_string(),
            releases: Vec::new(),
        });
    }

    /// Adds a release with these files, uploaded at `upload_time` (RFC 3339). Adds the
    /// project when missing.
    pub fn add_release(&self, project: &str, version: &str, filenames: &[&str], upload_time: &str) {
        let mut st = lock(&self.state);
        let key = pep503(project);
        if !st.projects.iter().any(|p| pep503(&p.name) == key) {
            st.projects.push(FakeProject {
                name: project.to_string(),
                releases: Vec::new(),
            });
        }
        if let Some(p) = st.projects.iter_mut().find(|p| pep503(&p.name) == key) {
            p.releases.push(FakePyRelease {
                version: version.to_string(),
                yanked: false,
                yanked_reason: None,
                files: filenames
                    .iter()
                    .map(|f| FakeDist {
                        filename: (*f).to_string(),
                        yanked: false,
                        yanked_reason: None,
                        upload_time: upload_time.to_string(),
                    })
                    .collect(),
            });
        }
    }

    fn with_release<T>(
        &self,
        project: &str,
        version: &str,
        f: impl FnOnce(&mut FakePyRelease) -> T,
    ) -> T {
        let mut st = lock(&self.state);
        let key = pep503(project);
        let r = st
            .projects
            .iter_mut()
            .find(|p| pep503(&p.name) == key)
            .and_then(|p| p.releases.iter_mut().find(|r| r.version == version))
            .unwrap_or_else(|| panic!("fake PyPI: no release {project} {version}"));
        f(r)
    }

    /// Yanks a release the way a maintainer does in the web UI: the release and all its
    /// files, with `reason`. Panics if the release is unknown.
    pub fn yank_release(&self, project: &str, version: &str, reason: Option<&str>) {
        self.with_release(project, version, |r| {
            r.yanked = true;
            r.yanked_reason = reason.map(str::to_string);
            for f in &mut r.files {
                f.yanked = true;
                f.yanked_reason = reason.map(str::to_string);
            }
        });
    }

    /// Un-yanks a release and all its files.
    pub fn unyank_release(&self, project: &str, version: &str) {
        self.with_release(project, version, |r| {
            r.yanked = false;
            r.yanked_reason = None;
            for f in &mut r.files {
                f.yanked = false;
                f.yanked_reason = None;
            }
        });
    }

    /// Yanks one file of a release only (the release flag is left alone).
    pub fn yank_file(&self, project: &str, version: &str, filename: &str, reason: Option<&str>) {
        self.with_release(project, version, |r| {
            let f = r
                .files
                .iter_mut()
                .find(|f| f.filename == filename)
                .unwrap_or_else(|| panic!("fake PyPI: no file {filename}"));
            f.yanked = true;
            f.yanked_reason = reason.map(str::to_string);
        });
    }

    /// The stored release, if any.
    pub fn release(&self, project: &str, version: &str) -> Option<FakePyRelease> {
        let st = lock(&self.state);
        let key = pep503(project);
        st.projects
            .iter()
            .find(|p| pep503(&p.name) == key)?
            .releases
            .iter()
            .find(|r| r.version == version)
            .cloned()
    }
}

fn not_found() -> Response {
    Response::json(404, &json!({"message": "Not Found"}))
}

fn file_json(f: &FakeDist) -> Value {
    json!({
        "filename": f.filename,
        "packagetype": packagetype(&f.filename),
        "url": format!("/packages/{}", f.filename),
        "digests": {"sha256": sha256_hex(&f.filename)},
        "size": 1024,
        "upload_time": f.upload_time.trim_end_matches('Z').split('.').next().unwrap_or_default(),
        "upload_time_iso_8601": f.upload_time,
        "requires_python": null,
        "yanked": f.yanked,
        "yanked_reason": f.yanked_reason,
    })
}

fn info_json(p: &FakeProject, r: &FakePyRelease) -> Value {
    json!({
        "name": p.name,
        "version": r.version,
        "summary": "a fake project",
        "yanked": r.yanked,
        "yanked_reason": r.yanked_reason,
        "project_url": format!("https://pypi.org/project/{}/", p.name),
        "release_url": format!("https://pypi.org/project/{}/{}/", p.name, r.version),
    })
}

fn handle(state: &Mutex<State>, req: &Request) -> Response {
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return Response::empty(405).with_header("allow", "GET,HEAD");
    }
    let st = lock(state);
    let path = req.path();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["pypi", name, "json"] => {
            let Some(p) = st.projects.iter().find(|p| pep503(&p.name) == pep503(name)) else {
                return not_found();
            };
            if *name != p.name {
                return Response::redirect(301, &format!("/pypi/{}/json", p.name));
            }
            let Some(latest) = p.releases.last() else {
                return not_found();
            };
            let releases: serde_json::Map<String, Value> = p
                .releases
                .iter()
                .map(|r| {
                    (
                        r.version.clone(),
                        Value::Array(r.files.iter().map(file_json).collect()),
                    )
                })
                .collect();
            Response::json(
                200,
                &json!({
                    "info": info_json(p, latest),
                    "last_serial": 1,
                    "releases": releases,
                    "urls": latest.files.iter().map(file_json).collect::<Vec<_>>(),
                    "vulnerabilities": [],
                }),
            )
        }
        ["pypi", name, version, "json"] => {
            let Some(p) = st.projects.iter().find(|p| pep503(&p.name) == pep503(name)) else {
                return not_found();
            };
            if *name != p.name {
                return Response::redirect(301, &format!("/pypi/{}/{version}/json", p.name));
            }
            let Some(r) = p.releases.iter().find(|r| r.version == *version) else {
                return not_found();
            };
            Response::json(
                200,
                &json!({
                    "info": info_json(p, r),
                    "last_serial": 1,
                    "urls": r.files.iter().map(file_json).collect::<Vec<_>>(),
                    "vulnerabilities": [],
                }),
            )
        }
        ["simple", name] | ["simple", name, ""] => {
            let normalized = pep503(name);
            if *name != normalized || !path.ends_with('/') {
                return Response::redirect(301, &format!("/simple/{normalized}/"));
            }
            let Some(p) = st.projects.iter().find(|p| pep503(&p.name) == normalized) else {
                return not_found();
            };
            let accept = req.header("accept").unwrap_or("");
            if st.simple_json && prefers_json(accept) {
                simple_json(p)
            } else {
                simple_html(p, accept)
            }
        }
        _ => not_found(),
    }
}

/// Whether `Accept` ranks PEP 691 JSON above every HTML form (q-values honoured).
fn prefers_json(accept: &str) -> bool {
    let mut json_q = 0.0f32;
    let mut html_q = 0.0f32;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let ty = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match ty.as_str() {
            "application/vnd.pypi.simple.v1+json" | "application/vnd.pypi.simple.latest+json" => {
                json_q = json_q.max(q);
            }
            "application/vnd.pypi.simple.v1+html"
            | "application/vnd.pypi.simple.latest+html"
            | "text/html"
            | "*/*" => html_q = html_q.max(q),
            _ => {}
        }
    }
    json_q > 0.0 && json_q >= html_q
}

fn simple_json(p: &FakeProject) -> Response {
    let files: Vec<Value> = p
        .releases
        .iter()
        .flat_map(|r| r.files.iter())
        .map(|f| {
            let yanked = match (&f.yanked, &f.yanked_reason) {
                (false, _) => Value::Bool(false),
                (true, Some(reason)) if !reason.is_empty() => Value::String(reason.clone()),
                (true, _) => Value::Bool(true),
            };
            json!({
                "filename": f.filename,
                "url": format!("/packages/{}", f.filename),
                "hashes": {"sha256": sha256_hex(&f.filename)},
                "requires-python": null,
                "core-metadata": false,
                "size": 1024,
                "upload-time": f.upload_time,
                "yanked": yanked,
            })
        })
        .collect();
    let versions: Vec<&str> = p.releases.iter().map(|r| r.version.as_str()).collect();
    Response::text(
        200,
        "application/vnd.pypi.simple.v1+json",
        json!({
            "meta": {"api-version": "1.1", "_last-serial": 1},
            "name": pep503(&p.name),
            "versions": versions,
            "files": files,
        })
        .to_string(),
    )
}

fn simple_html(p: &FakeProject, accept: &str) -> Response {
    let name = html_escape(&pep503(&p.name));
    let mut body = format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.1\">\n    <title>Links for {name}</title>\n  </head>\n  <body>\n    <h1>Links for {name}</h1>\n"
    );
    for f in p.releases.iter().flat_map(|r| r.files.iter()) {
        let yanked = if f.yanked {
            format!(
                " data-yanked=\"{}\"",
                html_escape(f.yanked_reason.as_deref().unwrap_or(""))
            )
        } else {
            String::new()
        };
        body.push_str(&format!(
            "    <a href=\"/packages/{fname}#sha256={hash}\"{yanked}>{text}</a><br />\n",
            fname = html_escape(&f.filename),
            hash = sha256_hex(&f.filename),
            text = html_escape(&f.filename),
        ));
    }
    body.push_str("  </body>\n</html>\n<!--SERIAL 1-->\n");
    let ctype = if accept.contains("application/vnd.pypi.simple.v1+html") {
        "application/vnd.pypi.simple.v1+html"
    } else {
        "text/html; charset=utf-8"
    };
    Response::text(200, ctype, body)
}
