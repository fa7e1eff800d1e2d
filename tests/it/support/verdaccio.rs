//! A throw-away Verdaccio 6 for integration tests.
//!
//! `Verdaccio::start()` renders `tests/verdaccio/config.yaml.tmpl` (offline: `uplinks: {}`,
//! everything `$authenticated`, htpasswd with self-registration) into a temp dir, starts the
//! pinned binary on a free loopback port with its JSON log captured to `verdaccio.log`,
//! waits for `GET /-/ping` and creates an admin user. The child is killed on drop.
//!
//! Request accounting: Verdaccio 6 writes, per request, one `info` line
//! `"<ip> requested 'METHOD URL'"` when the request arrives and *two* identical `http`
//! lines when it completes (one from `res.end`, one from `req` `close`). We count the
//! `requested` lines, which are exactly one per request received (`level: http` keeps info).
//!
//! The binary is `$RECALL_VERDACCIO_BIN`, else `tests/verdaccio/node_modules/.bin/verdaccio`
//! under `CARGO_MANIFEST_DIR`, else next to this file (`../../verdaccio/…`). Run
//! `scripts/verdaccio install` if it is missing.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

const CONFIG_TEMPLATE: &str = include_str!("../../verdaccio/config.yaml.tmpl");

pub const ADMIN_USER: &str = "recall-admin";
pub const ADMIN_PASSWORD: &str = "recall-admin-pw-1";

pub struct Verdaccio {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    pub dir: tempfile::TempDir,
    child: tokio::process::Child,
    /// Session token of [`ADMIN_USER`] (not revocable through the token API).
    pub admin_token: String,
    pub log_path: PathBuf,
    http: reqwest::Client,
}

impl Drop for Verdaccio {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn verdaccio_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RECALL_VERDACCIO_BIN") {
        return PathBuf::from(p);
    }
    let rel = Path::new("tests/verdaccio/node_modules/.bin/verdaccio");
    let from_manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if from_manifest.exists() {
        return from_manifest;
    }
    // This file lives in <root>/tests/it/support/.
    let here = Path::new(file!());
    let here = if here.is_absolute() {
        here.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(here)
    };
    match here.ancestors().nth(3) {
        Some(root) => root.join("verdaccio/node_modules/.bin/verdaccio"),
        None => from_manifest,
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    l.local_addr().expect("local addr").port()
}

/// Minimal npm tarball: `package/package.json`.
pub fn tarball(name: &str, version: &str) -> Vec<u8> {
    let manifest = serde_json::to_vec_pretty(&json!({
        "name": name, "version": version, "description": "recall test package",
        "main": "index.js", "license": "MIT"
    }))
    .expect("manifest json");
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, "package/package.json", manifest.as_slice())
        .expect("tar append");
    let gz = tar.into_inner().expect("tar finish");
    gz.finish().expect("gzip finish")
}

/// Wire path of a package name (`@scope%2fname`), independent of the client under test.
pub fn wire_name(name: &str) -> String {
    name.replacen('/', "%2f", 1)
}

impl Verdaccio {
    /// Starts a fresh, empty, offline Verdaccio and registers [`ADMIN_USER`].
    pub async fn start() -> Verdaccio {
        let bin = verdaccio_bin();
        assert!(
            bin.exists(),
            "Verdaccio not found at {} (run `scripts/verdaccio install` or set RECALL_VERDACCIO_BIN)",
            bin.display()
        );
        let mut last_log = String::new();
        for _attempt in 0..3 {
            match Self::try_start(&bin).await {
                Ok(v) => return v,
                Err(log) => last_log = log,
            }
        }
        panic!("Verdaccio did not start; last log:\n{last_log}");
    }

    async fn try_start(bin: &Path) -> Result<Verdaccio, String> {
        let dir = tempfile::Builder::new()
            .prefix("recall-verdaccio-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let config = CONFIG_TEMPLATE
            .replace("@STORAGE@", &storage.display().to_string())
            .replace(
                "@HTPASSWD@",
                &dir.path().join("htpasswd").display().to_string(),
            )
            .replace("@LISTEN@", &format!("127.0.0.1:{port}"));
        let config_path = dir.path().join("config.yaml");
        std::fs::File::create(&config_path)
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .expect("write config");
        let log_path = dir.path().join("verdaccio.log");
        let log = std::fs::File::create(&log_path).expect("create log");
        let log_err = log.try_clone().expect("clone log handle");
        let child = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("reqwest client");
        let mut v = Verdaccio {
            url,
            dir,
            child,
            admin_token: String::new(),
            log_path,
            http,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_status)) = v.child.try_wait() {
                return Err(std::fs::read_to_string(&v.log_path).unwrap_or_default());
            }
            let ping = v.http.get(format!("{}/-/ping", v.url)).send().await;
            if matches!(&ping, Ok(r) if r.status().is_success()) {
                break;
            }
            if Instant::now() > deadline {
                return Err(std::fs::read_to_string(&v.log_path).unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        v.admin_token = v.add_user(ADMIN_USER, ADMIN_PASSWORD).await;
        Ok(v)
    }

    /// `PUT /-/user/org.couchdb.user:NAME` (self-registration) → session token.
    pub async fn add_user(&self, name: &str, password: &str) -> String {
        let r = self
            .http
            .put(format!("{}/-/user/org.couchdb.user:{name}", self.url))
            .json(&json!({"name": name, "password": password}))
            .send()
            .await
            .expect("add_user request");
        let status = r.status();
        let body: Value = r.json().await.expect("add_user json");
        assert!(status.is_success(), "add_user {name}: {status} {body}");
        body["token"]
            .as_str()
            .unwrap_or_else(|| panic!("add_user {name}: no token in {body}"))
            .to_string()
    }

    /// `POST /-/npm/v1/tokens` (authenticated with HTTP Basic) → (token, key).
    pub async fn create_token(&self, user: &str, password: &str) -> (String, String) {
        let r = self
            .http
            .post(format!("{}/-/npm/v1/tokens", self.url))
            .basic_auth(user, Some(password))
            .json(&json!({"password": password, "readonly": false, "cidr_whitelist": []}))
            .send()
            .await
            .expect("create_token request");
        let status = r.status();
        let body: Value = r.json().await.expect("create_token json");
        assert!(status.is_success(), "create_token {user}: {status} {body}");
        let token = body["token"].as_str().expect("token").to_string();
        let key = body["key"].as_str().expect("key").to_string();
        (token, key)
    }

    /// Publishes `name@version` (a minimal tarball). `latest` moves to `version` only if it
    /// is the highest non-prerelease version so far (a prerelease gets the `next` tag).
    pub async fn publish(&self, token: &str, name: &str, version: &str) {
        let current = self.get_json(token, &wire_name(name)).await;
        let latest = current
            .as_ref()
            .and_then(|p| p["dist-tags"]["latest"].as_str())
            .and_then(|l| nodejs_semver::Version::parse(l).ok());
        let v = nodejs_semver::Version::parse(version).expect("publish: semver version");
        let tag = if v.is_prerelease() {
            "next"
        } else if latest.is_none_or(|l| v > l) {
            "latest"
        } else {
            // keep latest; tag under a throw-away name so the publish still carries a tag
            "previous"
        };
        self.publish_with_tag(token, name, version, tag).await;
    }

    /// Publishes `name@version` with `dist-tags: {tag: version}`.
    pub async fn publish_with_tag(&self, token: &str, name: &str, version: &str, tag: &str) {
        let tgz = tarball(name, version);
        let data = base64::engine::general_purpose::STANDARD.encode(&tgz);
        let base = name.rsplit('/').next().unwrap_or(name);
        let file = format!("{base}-{version}.tgz");
        let integrity = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(sha2_512(&tgz))
        );
        let body = json!({
            "_id": name,
            "name": name,
            "description": "recall test package",
            "dist-tags": { tag: version },
            "versions": { version: {
                "_id": format!("{name}@{version}"),
                "name": name,
                "version": version,
                "description": "recall test package",
                "main": "index.js",
                "license": "MIT",
                "dist": {
                    "integrity": integrity,
                    "tarball": format!("{}/{}/-/{file}", self.url, name),
                },
            }},
            "_attachments": { file: {
                "content_type": "application/octet-stream",
                "data": data,
                "length": tgz.len(),
            }},
        });
        let r = self
            .http
            .put(format!("{}/{}", self.url, wire_name(name)))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("publish request");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "publish {name}@{version}: {status} {text}"
        );
    }

    /// GET a registry path (already escaped) as JSON; `None` on 404.
    pub async fn get_json(&self, token: &str, path: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}/{}", self.url, path.trim_start_matches('/')))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET request");
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        let status = r.status();
        let body: Value = r.json().await.expect("GET json");
        assert!(status.is_success(), "GET {path}: {status} {body}");
        Some(body)
    }

    /// Every request Verdaccio received, in arrival order, as (METHOD, path?query).
    /// Verdaccio's logger writes asynchronously: wait until the log has stopped growing
    /// (150 ms without change, 5 s at most) so counts and marks include every request.
    fn settled_log(&self) -> String {
        let len = || {
            std::fs::metadata(&self.log_path)
                .map(|m| m.len())
                .unwrap_or(0)
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = len();
        let mut stable_since = Instant::now();
        while Instant::now() < deadline && stable_since.elapsed() < Duration::from_millis(150) {
            std::thread::sleep(Duration::from_millis(25));
            let now = len();
            if now != last {
                last = now;
                stable_since = Instant::now();
            }
        }
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn requests(&self) -> Vec<(String, String)> {
        let text = self.settled_log();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| {
                v["msg"]
                    .as_str()
                    .is_some_and(|m| m.contains(" requested '"))
            })
            .filter_map(|v| {
                Some((
                    v["req"]["method"].as_str()?.to_string(),
                    v["req"]["url"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// Requests Verdaccio finished handling, from its completion lines (logged on close):
    /// an answer with a status below 400 and a body. A request whose client was killed
    /// before its body arrived is logged as *requested* but never answered, and never
    /// applied: it is not a side effect.
    pub fn answered_requests(&self) -> Vec<(String, String)> {
        let text = self.settled_log();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["request"]["method"].is_string())
            .filter(|v| {
                v["status"].as_u64().is_some_and(|s| s < 400)
                    && v["bytes"]["out"].as_u64().is_some_and(|b| b > 0)
                    && v["error"].is_null()
            })
            .filter_map(|v| {
                Some((
                    v["request"]["method"].as_str()?.to_string(),
                    v["request"]["url"].as_str()?.to_string(),
                ))
            })
            .collect()
    }

    /// PUT/POST/DELETE/PATCH requests only.
    pub fn mutating_requests(&self) -> Vec<(String, String)> {
        only_mutating(self.requests())
    }

    /// Number of requests received so far; pass to [`Self::requests_since`].
    pub fn mark(&self) -> usize {
        self.requests().len()
    }

    pub fn requests_since(&self, mark: usize) -> Vec<(String, String)> {
        self.requests().into_iter().skip(mark).collect()
    }

    pub fn mutating_requests_since(&self, mark: usize) -> Vec<(String, String)> {
        only_mutating(self.requests_since(mark))
    }
}

fn only_mutating(reqs: Vec<(String, String)>) -> Vec<(String, String)> {
    reqs.into_iter()
        .filter(|(m, _)| matches!(m.as_str(), "PUT" | "POST" | "DELETE" | "PATCH"))
        .collect()
}

fn sha2_512(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha512::digest(data).to_vec()
}
