//! A throw-away CNCF distribution 2.8.2 registry (Debian's `docker-registry`) for the OCI
//! integration tests.
//!
//! `Registry::start()` writes a config into a temp dir — filesystem storage in the temp dir,
//! `storage.delete.enabled: true`, upload purging off, JSON log formatter, access log on;
//! [`Registry::restart`] switches read-only mode on or off over the same storage —
//! starts `tests/registry/dist/usr/bin/docker-registry serve <config.yml>` on a free
//! 127.0.0.1 port and waits until `GET /v2/` answers 200. The child is killed on drop.
//! The binary is `$RECALL_REGISTRY_BIN`, else under `CARGO_MANIFEST_DIR`, else next to this
//! file (`../../registry/dist/…`). Run `scripts/registry install` if it is missing.
//!
//! Logs: stdout is the access log (`access.log`, Apache combined format, one line per
//! request received, 404s of unknown routes included); stderr is the application log
//! (`registry.log`, JSON, one `"response completed"` line per request that reached a
//! handler — *not* the plain-404 unknown routes such as `/referrers/`). Request accounting
//! therefore reads the access log. The access-log line is written by the outermost handler
//! before the answer is flushed, so it is there when the client has its answer; we still
//! wait for the file to stop growing (100 ms) to be safe.
//!
//! Distribution facts relied on by the seed helpers (verified against 2.8.2; the list
//! of wire facts lives in `src/net/oci.rs`):
//! * a blob upload is `POST /v2/<name>/blobs/uploads/` → 202 + `Location`, then
//!   `PUT <Location>&digest=…` → 201 (a body or `?digest=` on the POST is ignored);
//! * manifest `PUT` → 201 + `Docker-Content-Digest`; config and layer blobs, and the child
//!   manifests of an index, must already exist in the repository (else 400
//!   `MANIFEST_BLOB_UNKNOWN`);
//! * reading an OCI manifest needs an OCI type in `Accept` (else 404 `MANIFEST_UNKNOWN`);
//! * `tags/list` → `{"name":…,"tags":[…]}` unsorted, `"tags": null` when empty.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::Digest as _;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
    pub access_log: PathBuf,
    pub app_log: PathBuf,
    http: reqwest::Client,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An image pushed by [`Registry::seed_image`].
#[derive(Clone, Debug)]
pub struct SeededImage {
    pub digest: String,
    pub raw: String,
    pub config_digest: String,
    pub layer_digest: String,
}

/// An index pushed by [`Registry::seed_index`].
#[derive(Clone, Debug)]
pub struct SeededIndex {
    pub digest: String,
    pub raw: String,
    /// `("linux/amd64", digest)`, `("linux/arm64", digest)`.
    pub platforms: Vec<(String, String)>,
}

pub fn registry_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RECALL_REGISTRY_BIN") {
        return PathBuf::from(p);
    }
    let rel = Path::new("tests/registry/dist/usr/bin/docker-registry");
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
        Some(tests) => tests.join("registry/dist/usr/bin/docker-registry"),
        None => from_manifest,
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A value unique within this test process (and very likely across processes).
pub fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local addr: {e}"))
}

impl Registry {
    /// Starts a fresh, empty registry (three attempts, in case a port was taken meanwhile).
    pub async fn start() -> Result<Registry, String> {
        let bin = registry_bin();
        if !bin.exists() {
            return Err(format!(
                "distribution registry not found at {} (run `scripts/registry install` or set \
                 RECALL_REGISTRY_BIN)",
                bin.display()
            ));
        }
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(&bin).await {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
        Err(format!("registry did not start: {last}"))
    }

    async fn try_start(bin: &Path) -> Result<Registry, String> {
        let dir = tempfile::Builder::new()
            .prefix("recall-registry-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let port = free_port()?;
        std::fs::create_dir_all(dir.path().join("data")).map_err(|e| format!("data dir: {e}"))?;
        let access_log = dir.path().join("access.log");
        let app_log = dir.path().join("registry.log");
        let child = spawn(bin, dir.path(), port, false)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("reqwest client: {e}"))?;
        let mut r = Registry {
            dir,
            port,
            child,
            access_log,
            app_log,
            http,
        };
        r.wait_ready().await?;
        Ok(r)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", self.log_text()));
            }
            let ping = self
                .http
                .get(format!("{}/v2/", self.base_url()))
                .send()
                .await;
            if matches!(&ping, Ok(p) if p.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no answer on /v2/ after 20 s:\n{}",
                    self.log_text()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the registry and starts it again on the same port and storage, in read-only
    /// mode (`storage.maintenance.readonly.enabled: true`) or not. Seed first, then turn it
    /// read-only: 2.8.2 then serves manifests with `OPTIONS … Allow: GET, HEAD` and refuses
    /// writes. The logs go on (appended), so [`Self::mark`] keeps working across restarts.
    pub async fn restart(&mut self, read_only: bool) -> Result<(), String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let bin = registry_bin();
        let mut last = String::new();
        for _ in 0..3 {
            match spawn(&bin, self.dir.path(), self.port, read_only) {
                Ok(child) => {
                    self.child = child;
                    match self.wait_ready().await {
                        Ok(()) => return Ok(()),
                        Err(e) => last = e,
                    }
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("registry did not restart: {last}"))
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.host())
    }

    fn settled(path: &Path) -> String {
        let len = || std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = len();
        let mut stable_since = Instant::now();
        while Instant::now() < deadline && stable_since.elapsed() < Duration::from_millis(100) {
            std::thread::sleep(Duration::from_millis(20));
            let now = len();
            if now != last {
                last = now;
                stable_since = Instant::now();
            }
        }
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The access log, then the JSON application log.
    pub fn log_text(&self) -> String {
        format!(
            "--- access.log\n{}--- registry.log\n{}",
            Self::settled(&self.access_log),
            std::fs::read_to_string(&self.app_log).unwrap_or_default()
        )
    }

    /// Every request the registry received, in order, as (METHOD, path?query), from the
    /// access log (`… "METHOD TARGET HTTP/1.1" STATUS …`).
    pub fn requests(&self) -> Vec<(String, String)> {
        Self::settled(&self.access_log)
            .lines()
            .filter_map(|l| {
                let start = l.find('"')? + 1;
                let end = start + l[start..].find('"')?;
                let mut parts = l[start..end].split(' ');
                Some((parts.next()?.to_string(), parts.next()?.to_string()))
            })
            .collect()
    }

    /// PUT/POST/PATCH/DELETE requests only.
    pub fn mutating_requests(&self) -> Vec<(String, String)> {
        only_mutating(self.requests())
    }

    /// Number of requests so far; pass to [`Self::mutating_requests_since`].
    pub fn mark(&self) -> usize {
        self.requests().len()
    }

    pub fn requests_since(&self, mark: usize) -> Vec<(String, String)> {
        self.requests().into_iter().skip(mark).collect()
    }

    pub fn mutating_requests_since(&self, mark: usize) -> Vec<(String, String)> {
        only_mutating(self.requests_since(mark))
    }

    // ---- seeding (plain reqwest, independent of the client under test) ----------------

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url(), path.trim_start_matches('/'))
    }

    /// Uploads a blob (POST, then PUT to the Location) and returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Result<String, String> {
        let digest = sha256(bytes);
        let r = self
            .http
            .post(self.url(&format!("v2/{repo}/blobs/uploads/")))
            .send()
            .await
            .map_err(|e| format!("upload POST: {e}"))?;
        if r.status().as_u16() != 202 {
            return Err(format!("upload POST answered {}", r.status()));
        }
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or("upload POST without Location")?;
        let mut url = reqwest::Url::parse(&self.base_url())
            .and_then(|b| b.join(location))
            .map_err(|e| format!("Location {location}: {e}"))?;
        url.query_pairs_mut().append_pair("digest", &digest);
        let r = self
            .http
            .put(url)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(|e| format!("upload PUT: {e}"))?;
        let status = r.status();
        if status.as_u16() != 201 {
            let body = r.text().await.unwrap_or_default();
            return Err(format!("upload PUT answered {status}: {body}"));
        }
        Ok(digest)
    }

    /// PUTs manifest bytes under `reference` (tag or digest); returns `Docker-Content-Digest`.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        raw: &str,
    ) -> Result<String, String> {
        let r = self
            .http
            .put(self.url(&format!("v2/{repo}/manifests/{reference}")))
            .header("content-type", media_type)
            .body(raw.as_bytes().to_vec())
            .send()
            .await
            .map_err(|e| format!("manifest PUT: {e}"))?;
        let status = r.status();
        let digest = r
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = r.text().await.unwrap_or_default();
        if status.as_u16() != 201 {
            return Err(format!(
                "manifest PUT {repo}:{reference} answered {status}: {body}"
            ));
        }
        digest.ok_or_else(|| "manifest PUT without Docker-Content-Digest".to_string())
    }

    /// An OCI image (config + one small layer, content unique per call) for `os/arch`,
    /// pushed under `reference` (a tag, or its own digest when `None`).
    pub async fn seed_platform_image(
        &self,
        repo: &str,
        reference: Option<&str>,
        os: &str,
        arch: &str,
    ) -> Result<SeededImage, String> {
        let nonce = unique();
        let layer = format!("recall test layer {nonce}\n");
        let layer_digest = self.push_blob(repo, layer.as_bytes()).await?;
        let config = json!({
            "architecture": arch,
            "os": os,
            "config": { "Labels": { "io.recall.test": nonce } },
            "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        })
        .to_string();
        let config_digest = self.push_blob(repo, config.as_bytes()).await?;
        let raw = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": OCI_LAYER, "digest": layer_digest, "size": layer.len() }],
        })
        .to_string();
        let own = sha256(raw.as_bytes());
        let digest = self
            .push_manifest(repo, reference.unwrap_or(&own), OCI_MANIFEST, &raw)
            .await?;
        if digest != own {
            return Err(format!("registry digest {digest} != sha256 of bytes {own}"));
        }
        Ok(SeededImage {
            digest,
            raw,
            config_digest,
            layer_digest,
        })
    }

    /// A linux/amd64 OCI image tagged `tag`.
    pub async fn seed_image(&self, repo: &str, tag: &str) -> Result<SeededImage, String> {
        self.seed_platform_image(repo, Some(tag), "linux", "amd64")
            .await
    }

    /// An OCI index over two fresh platform manifests (linux/amd64, linux/arm64), tagged.
    pub async fn seed_index(&self, repo: &str, tag: &str) -> Result<SeededIndex, String> {
        let mut platforms = Vec::new();
        let mut entries = Vec::new();
        for arch in ["amd64", "arm64"] {
            let m = self.seed_platform_image(repo, None, "linux", arch).await?;
            entries.push(json!({
                "mediaType": OCI_MANIFEST,
                "digest": m.digest,
                "size": m.raw.len(),
                "platform": { "os": "linux", "architecture": arch },
            }));
            platforms.push((format!("linux/{arch}"), m.digest));
        }
        let raw = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
        })
        .to_string();
        let digest = self.push_manifest(repo, tag, OCI_INDEX, &raw).await?;
        Ok(SeededIndex {
            digest,
            raw,
            platforms,
        })
    }

    /// Points `tag` at the manifest `digest` (GET its bytes, PUT them under the tag).
    pub async fn tag(&self, repo: &str, tag: &str, digest: &str) -> Result<(), String> {
        let (status, media_type, raw) = self.get_manifest(repo, digest).await?;
        if status != 200 {
            return Err(format!("GET {repo}@{digest} answered {status}"));
        }
        let d = self.push_manifest(repo, tag, &media_type, &raw).await?;
        if d != digest {
            return Err(format!("re-tag gave {d}, expected {digest}"));
        }
        Ok(())
    }

    /// `GET /v2/<repo>/manifests/<reference>` with every manifest type accepted:
    /// (status, content type, body).
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(u16, String, String), String> {
        let r = self
            .http
            .get(self.url(&format!("v2/{repo}/manifests/{reference}")))
            .header("accept", ACCEPT_ALL)
            .send()
            .await
            .map_err(|e| format!("manifest GET: {e}"))?;
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = r.text().await.map_err(|e| format!("manifest body: {e}"))?;
        Ok((status, ct, body))
    }

    /// The tags of `repo`, sorted (`tags: null` → empty; unknown repo → error).
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, String> {
        let r = self
            .http
            .get(self.url(&format!("v2/{repo}/tags/list")))
            .send()
            .await
            .map_err(|e| format!("tags GET: {e}"))?;
        let status = r.status();
        let v: Value = r.json().await.map_err(|e| format!("tags json: {e}"))?;
        if !status.is_success() {
            return Err(format!("tags/list of {repo} answered {status}: {v}"));
        }
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        Ok(tags)
    }

    /// A plain GET of a registry path: (status, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let r = self
            .http
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = r.status().as_u16();
        Ok((status, r.text().await.unwrap_or_default()))
    }
}

/// Writes `config.yml` into `dir` (storage in `dir/data`, deletes enabled, optionally
/// read-only) and starts the registry, appending to `access.log` / `registry.log`.
fn spawn(bin: &Path, dir: &Path, port: u16, read_only: bool) -> Result<Child, String> {
    let data = dir.join("data");
    let config = format!(
        "version: 0.1\n\
         log:\n  level: info\n  formatter: json\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n    readonly:\n      enabled: {read_only}\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: recall-test-upload-secret\n",
        data.display()
    );
    let config_path = dir.join("config.yml");
    std::fs::write(&config_path, config).map_err(|e| format!("write config: {e}"))?;
    let append = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .map_err(|e| format!("{name}: {e}"))
    };
    let out = append("access.log")?;
    let err = append("registry.log")?;
    Command::new(bin)
        .arg("serve")
        .arg(&config_path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))
}

fn only_mutating(reqs: Vec<(String, String)>) -> Vec<(String, String)> {
    reqs.into_iter()
        .filter(|(m, _)| matches!(m.as_str(), "PUT" | "POST" | "DELETE" | "PATCH"))
        .collect()
}
