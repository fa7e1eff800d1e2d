//! Blast radius: an index of SBOMs that answers "which of our images contain this package
//! at these versions, and through which dependency path".
//!
//! * [`parse`] — CycloneDX (JSON 1.2–1.7, XML) and SPDX 2.2/2.3 JSON into one model, with limits.
//! * [`purl`] — package URLs per the purl spec; [`purl::Purl::package_key`] is the join key.
//! * [`version`] — version queries in each ecosystem's own semantics (npm, PEP 440, Cargo,
//!   Maven, …).
//! * [`index`] — graph and posting-list encodings, shortest-path explanations.
//! * [`oci`] — SBOMs attached to images in a registry (cosign `.sbom`/`.att`, referrers).
//!
//! Ingest: documents are parsed and normalised on worker threads, de-duplicated by sha256,
//! their package keys and versions interned, and committed in batches: a batch's documents
//! and postings in one transaction, so a document is stored whole or not at all. Query:
//! package key → its versions (filtered by the ecosystem's matcher) → posting lists →
//! documents; never a scan of components.

pub mod index;
pub mod oci;
pub mod parse;
pub mod purl;
pub mod version;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{SbomDocInfo, SbomDocRow, Store, StoreError};
use index::Graph;
use parse::{Limits, ParsedSbom, SbomFormat};
use purl::Purl;
use version::{Matcher, VersionQuery};

#[derive(Debug, thiserror::Error)]
pub enum BlastError {
    #[error("invalid package URL `{input}`: {reason}")]
    Purl { input: String, reason: String },
    #[error("{0}")]
    Version(String),
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("index is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Oci(String),
}

/// Documents per commit batch: large enough that per-transaction costs vanish, small
/// enough to bound memory (a batch holds its documents' components).
pub const BATCH_DOCS: usize = 500;

/// A document parsed and normalised, ready to be interned and stored.
#[derive(Clone, Debug)]
pub struct PreparedDoc {
    pub sha256: String,
    pub source: String,
    pub subject: String,
    pub digest: Option<String>,
    pub format: &'static str,
    pub spec_version: String,
    /// `(package key, ecosystem, version)` per component, in document order.
    pub components: Vec<Norm>,
    pub roots: Vec<u32>,
    pub edges: Vec<(u32, u32)>,
}

/// A normalised component, shared between the documents of a worker: package key,
/// ecosystem, version, and a hash of (key, version) computed once, so the committer's
/// lookups (millions per fleet) never hash strings again.
#[derive(Debug)]
pub struct NormInner {
    pub key: Arc<str>,
    pub ecosystem: Arc<str>,
    pub version: Arc<str>,
    hash: u64,
}

pub type Norm = Arc<NormInner>;

fn norm(key: &str, ecosystem: &str, version: &str) -> Norm {
    // FNV-1a over key, a separator no key contains, and version.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0xff]).chain(version.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    Arc::new(NormInner {
        key: Arc::from(key),
        ecosystem: Arc::from(ecosystem),
        version: Arc::from(version),
        hash: h,
    })
}

impl NormInner {
    fn same(&self, other: &NormInner) -> bool {
        self.key == other.key && self.version == other.version
    }
}

/// A hasher for keys that already are hashes (or small ids): no re-hashing.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn write_i64(&mut self, v: i64) {
        self.0 = (v as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Per-thread normalisation cache: the same purl string appears in thousands of documents.
#[derive(Default)]
pub struct Normaliser {
    purls: HashMap<String, Option<Norm>>,
    /// (ecosystem, namespace, name, version) of components without a usable purl.
    names: HashMap<(String, String, String, String), Norm>,
}

impl Normaliser {
    /// `(package key, ecosystem, version)` of a component: from its purl when it has a
    /// valid one, else from (ecosystem, namespace, name, version) when the document gave an
    /// ecosystem, else `unknown/<name>` (kept for paths, never matched by a purl query).
    fn component(&mut self, c: &parse::Component) -> Norm {
        if let Some(p) = &c.purl {
            if let Some(hit) = self.purls.get(p.as_str()) {
                if let Some(v) = hit {
                    return v.clone();
                }
            } else {
                let parsed = Purl::parse(p).ok().map(|pu| {
                    let version = pu.version.clone().or_else(|| c.version.clone());
                    norm(&pu.package_key(), &pu.ty, &version.unwrap_or_default())
                });
                self.purls.insert(p.clone(), parsed.clone());
                if let Some(v) = parsed {
                    return v;
                }
            }
        }
        let eco = c
            .ecosystem
            .as_deref()
            .map(purl::normalize_type)
            .unwrap_or_else(|| "unknown".into());
        let k = (
            eco,
            c.namespace.clone().unwrap_or_default(),
            c.name.clone(),
            c.version.clone().unwrap_or_default(),
        );
        if let Some(v) = self.names.get(&k) {
            return v.clone();
        }
        let key = if k.0 == "unknown" {
            let name = match k.1.as_str() {
                "" => k.2.clone(),
                ns => format!("{ns}/{}", k.2),
            };
            format!("unknown/{name}")
        } else {
            purl::package_key(&k.0, (!k.1.is_empty()).then_some(k.1.as_str()), &k.2)
        };
        let v = norm(&key, &k.0, &k.3);
        self.names.insert(k, v.clone());
        v
    }

    /// Parse and normalise one document. `subject` overrides what the document says it
    /// describes (an image digest the document was fetched for).
    pub fn prepare(
        &mut self,
        bytes: &[u8],
        source: &str,
        subject: Option<(&str, Option<&str>)>,
        limits: &Limits,
    ) -> Result<PreparedDoc, parse::SbomError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        self.prepare_hashed(bytes, sha256, source, subject, limits)
    }

    /// [`Self::prepare`] for bytes whose sha256 (hex) the caller already computed.
    pub fn prepare_hashed(
        &mut self,
        bytes: &[u8],
        sha256: String,
        source: &str,
        subject: Option<(&str, Option<&str>)>,
        limits: &Limits,
    ) -> Result<PreparedDoc, parse::SbomError> {
        let parsed = parse::parse_sbom(bytes, limits)?;
        let (subject, digest) = match subject {
            Some((s, d)) => (s.to_string(), d.map(str::to_string)),
            None => subject_of(&parsed, source),
        };
        let components = parsed
            .components
            .iter()
            .map(|c| self.component(c))
            .collect();
        Ok(PreparedDoc {
            sha256,
            source: source.to_string(),
            subject,
            digest,
            format: match parsed.format {
                SbomFormat::CycloneDxJson => "cyclonedx-json",
                SbomFormat::CycloneDxXml => "cyclonedx-xml",
                SbomFormat::SpdxJson => "spdx-json",
            },
            spec_version: parsed.spec_version.clone(),
            components,
            roots: parsed.roots.clone(),
            edges: parsed.edges.clone(),
        })
    }
}

/// What a document describes, by preference: `name@sha256:…`, the digest, the subject's
/// purl, `name@version`, and last the file it came from.
fn subject_of(p: &ParsedSbom, source: &str) -> (String, Option<String>) {
    let s = p.subject.as_ref();
    let digest = s.and_then(|s| s.digest.clone());
    let name = s.and_then(|s| s.name.clone());
    let subject = match (&name, &digest) {
        (Some(n), Some(d)) => format!("{n}@{d}"),
        (None, Some(d)) => d.clone(),
        _ => match s.and_then(|s| s.purl.clone()) {
            Some(p) => p,
            None => match (name, s.and_then(|s| s.version.clone())) {
                (Some(n), Some(v)) => format!("{n}@{v}"),
                (Some(n), None) => n,
                _ => Path::new(source)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| source.to_string()),
            },
        },
    };
    (subject, digest)
}

/// What one ingest did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IngestReport {
    pub documents_read: usize,
    pub stored: usize,
    /// Already in the index (same bytes): a no-op.
    pub duplicates: usize,
    /// `(source, reason)` of every document refused; nothing of them was stored.
    pub rejected: Vec<(String, String)>,
    pub components: usize,
    pub seconds: f64,
    /// Of `seconds`, the time spent interning and writing (the rest is reading and parsing,
    /// overlapped on worker threads).
    pub commit_seconds: f64,
}

/// Interning state of one ingest session: ids of package keys and versions seen so far.
pub struct Ingester {
    store: Arc<dyn Store>,
    packages: HashMap<Arc<str>, i64>,
    /// By the components' precomputed hash; a short chain on the (rare) collision.
    versions: IdMap<u64, Vec<(Norm, i64)>>,
    pub report: IngestReport,
    started: Instant,
}

impl Ingester {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            packages: HashMap::new(),
            versions: IdMap::default(),
            report: IngestReport::default(),
            started: Instant::now(),
        }
    }

    fn version_id(&self, n: &Norm) -> Option<i64> {
        self.versions
            .get(&n.hash)?
            .iter()
            .find(|(m, _)| Arc::ptr_eq(m, n) || m.same(n))
            .map(|(_, id)| *id)
    }

    pub fn reject(&mut self, source: &str, reason: String) {
        self.report.documents_read += 1;
        self.report.rejected.push((source.to_string(), reason));
    }

    /// Store a batch: drop documents already indexed (and repeats inside the batch), intern
    /// the new package keys and versions, then write documents and postings in one
    /// transaction.
    pub async fn commit(&mut self, batch: Vec<PreparedDoc>, now: i64) -> Result<(), BlastError> {
        let t0 = Instant::now();
        let r = self.commit_inner(batch, now).await;
        self.report.commit_seconds += t0.elapsed().as_secs_f64();
        r
    }

    async fn commit_inner(&mut self, batch: Vec<PreparedDoc>, now: i64) -> Result<(), BlastError> {
        self.report.documents_read += batch.len();
        let mut batch = batch;
        for _attempt in 0..3 {
            let shas: Vec<String> = batch.iter().map(|d| d.sha256.clone()).collect();
            let known = self.store.sbom_known(&shas).await?;
            let mut seen = HashSet::new();
            let before = batch.len();
            batch.retain(|d| !known.contains(&d.sha256) && seen.insert(d.sha256.clone()));
            self.report.duplicates += before - batch.len();
            if batch.is_empty() {
                return Ok(());
            }
            self.intern(&batch).await?;
            let mut postings: IdMap<i64, Vec<u32>> = IdMap::default();
            let mut rows = Vec::with_capacity(batch.len());
            for (i, d) in batch.iter().enumerate() {
                let mut versions = Vec::with_capacity(d.components.len());
                for n in &d.components {
                    let id = self.version_id(n).ok_or_else(|| {
                        BlastError::Corrupt(format!("version {}@{} not interned", n.key, n.version))
                    })?;
                    versions.push(id);
                    postings.entry(id).or_default().push(i as u32);
                }
                let graph = Graph {
                    versions,
                    roots: d.roots.clone(),
                    edges: d.edges.clone(),
                };
                rows.push(SbomDocRow {
                    sha256: d.sha256.clone(),
                    subject: d.subject.clone(),
                    digest: d.digest.clone(),
                    source: d.source.clone(),
                    format: d.format.to_string(),
                    spec_version: d.spec_version.clone(),
                    components: d.components.len() as i64,
                    ingested_at: now,
                    graph: graph.encode(),
                });
            }
            let mut posting_rows: Vec<(i64, Vec<u8>)> = postings
                .into_iter()
                .map(|(vid, mut offs)| (vid, index::encode_postings(&mut offs)))
                .collect();
            posting_rows.sort_unstable_by_key(|(v, _)| *v);
            let comps: usize = batch.iter().map(|d| d.components.len()).sum();
            if self.store.sbom_insert(rows, posting_rows).await?.is_some() {
                self.report.stored += batch.len();
                self.report.components += comps;
                return Ok(());
            }
            // Another process stored one of these documents meanwhile: filter again.
        }
        Err(BlastError::Corrupt(
            "documents kept appearing concurrently; gave up on this batch".into(),
        ))
    }

    async fn intern(&mut self, batch: &[PreparedDoc]) -> Result<(), BlastError> {
        let mut pkgs: BTreeMap<Arc<str>, Arc<str>> = BTreeMap::new();
        let mut vers: BTreeMap<(Arc<str>, Arc<str>), Norm> = BTreeMap::new();
        for d in batch {
            for n in &d.components {
                if self.version_id(n).is_none() {
                    if !self.packages.contains_key(&n.key) {
                        pkgs.insert(n.key.clone(), n.ecosystem.clone());
                    }
                    vers.entry((n.key.clone(), n.version.clone()))
                        .or_insert_with(|| n.clone());
                }
            }
        }
        if vers.is_empty() {
            return Ok(());
        }
        let p: Vec<(String, String)> = pkgs
            .iter()
            .map(|(k, e)| (k.to_string(), e.to_string()))
            .collect();
        let v: Vec<(String, String)> = vers
            .keys()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (pids, vids) = self.store.sbom_intern(&p, &v).await?;
        for (k, id) in pids {
            self.packages.insert(Arc::from(k.as_str()), id);
        }
        for ((k, v), id) in vids {
            if let Some(n) = vers.get(&(Arc::from(k.as_str()), Arc::from(v.as_str()))) {
                self.versions
                    .entry(n.hash)
                    .or_default()
                    .push((n.clone(), id));
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> IngestReport {
        self.report.seconds = self.started.elapsed().as_secs_f64();
        self.report
    }
}

/// Inside a directory, only `.json` and `.xml` files are documents (READMEs, signatures and
/// checksums next to SBOMs are not); a file named explicitly is always tried.
fn looks_like_sbom_file(p: &Path) -> bool {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| e == "json" || e == "xml")
}

/// Every file under `paths` (directories walked, sorted, hidden entries skipped).
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, BlastError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| BlastError::Io {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
        if meta.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(dir) = stack.pop() {
                let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .map_err(|e| BlastError::Io {
                        path: dir.display().to_string(),
                        reason: e.to_string(),
                    })?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        !p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    })
                    .collect();
                entries.sort();
                for e in entries {
                    if e.is_dir() {
                        stack.push(e);
                    } else if looks_like_sbom_file(&e) {
                        out.push(e);
                    }
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Progress of a long ingest, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub stored: usize,
    pub rejected: usize,
    pub elapsed_s: f64,
}

/// Ingest files: parsed on one worker thread per core, committed in batches of
/// [`BATCH_DOCS`]. A file that cannot be read or parsed is rejected with its reason and
/// skipped; the others are stored.
pub async fn ingest_files(
    store: Arc<dyn Store>,
    files: Vec<PathBuf>,
    subject: Option<String>,
    limits: Limits,
    now: i64,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<IngestReport, BlastError> {
    let total = files.len();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<Result<Option<PreparedDoc>, (String, String)>>(BATCH_DOCS * 2);
    // Documents already indexed are recognised by their hash and never parsed again.
    let known = Arc::new(store.sbom_all_shas().await?);
    let files = Arc::new(files);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let limits = Arc::new(limits);
    let subject = Arc::new(subject);
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (tx, files, next, limits, subject, known) = (
            tx.clone(),
            files.clone(),
            next.clone(),
            limits.clone(),
            subject.clone(),
            known.clone(),
        );
        handles.push(tokio::task::spawn_blocking(move || {
            let mut norm = Normaliser::default();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                let source = path.display().to_string();
                let r = read_bounded(path, limits.max_bytes)
                    .and_then(|bytes| {
                        let sha = hex::encode(Sha256::digest(&bytes));
                        if known.contains(&sha) {
                            return Ok(None);
                        }
                        norm.prepare_hashed(
                            &bytes,
                            sha,
                            &source,
                            subject.as_deref().map(|s| (s, None)),
                            &limits,
                        )
                        .map(Some)
                        .map_err(|e| e.to_string())
                    })
                    .map_err(|reason| (source.clone(), reason));
                if tx.blocking_send(r).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let mut ing = Ingester::new(store);
    let mut batch = Vec::with_capacity(BATCH_DOCS);
    let mut done = 0usize;
    let mut last = Instant::now();
    while let Some(r) = rx.recv().await {
        done += 1;
        match r {
            Ok(Some(d)) => batch.push(d),
            Ok(None) => {
                ing.report.documents_read += 1;
                ing.report.duplicates += 1;
            }
            Err((src, reason)) => ing.reject(&src, reason),
        }
        if batch.len() >= BATCH_DOCS {
            ing.commit(std::mem::take(&mut batch), now).await?;
        }
        if last.elapsed().as_millis() >= 200 || done == total {
            last = Instant::now();
            progress(Progress {
                done,
                total,
                stored: ing.report.stored,
                rejected: ing.report.rejected.len(),
                elapsed_s: ing.started.elapsed().as_secs_f64(),
            });
        }
    }
    if !batch.is_empty() {
        ing.commit(batch, now).await?;
    }
    for h in handles {
        let _ = h.await;
    }
    let report = ing.finish();
    progress(Progress {
        done,
        total,
        stored: report.stored,
        rejected: report.rejected.len(),
        elapsed_s: report.seconds,
    });
    Ok(report)
}

/// Read at most `limit` bytes; a larger file is refused before it is read whole.
fn read_bounded(path: &Path, limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    f.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > limit {
        return Err(format!(
            "larger than the {} MiB limit for one document",
            limit / (1024 * 1024)
        ));
    }
    Ok(bytes)
}

// ---- query ---------------------------------------------------------------------------

/// One document that contains a matched version.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Hit {
    pub subject: String,
    pub digest: Option<String>,
    pub source: String,
    pub document: String,
    /// The matched versions this document contains.
    pub versions: Vec<String>,
    /// Shortest dependency chain from the subject, e.g. `["app@sha256:…",
    /// "event-stream@3.3.6", "flatmap-stream@0.1.1"]`; empty when not computed.
    pub path: Vec<String>,
    pub direct: Option<bool>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Answer {
    pub package: String,
    pub query: String,
    /// Versions of the package present in the index that the query matches.
    pub matched_versions: Vec<String>,
    /// Distinct subjects (images, artifacts) with a hit, sorted.
    pub images: Vec<String>,
    pub hits: Vec<Hit>,
    /// Paths are computed for the first `paths_limit` hits only.
    pub paths_truncated: bool,
}

impl Answer {
    /// sha256 of the canonical JSON of the whole answer: what the timeline records.
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
    }
}

/// Which versions to look for: a list, a range, or (None) whatever the purl names — its
/// version if it has one, else every version.
pub fn version_query(
    p: &Purl,
    versions: &[String],
    range: Option<&str>,
) -> Result<Option<VersionQuery>, BlastError> {
    Ok(match (versions.is_empty(), range) {
        (false, Some(_)) => {
            return Err(BlastError::Version(
                "give either a list of versions or a range, not both".into(),
            ));
        }
        (false, None) => Some(VersionQuery::AnyOf(versions.to_vec())),
        (true, Some(r)) => Some(VersionQuery::Range(r.to_string())),
        (true, None) => p.version.clone().map(VersionQuery::Exact),
    })
}

pub async fn query(
    store: &dyn Store,
    purl: &str,
    versions: &[String],
    range: Option<&str>,
    paths_limit: usize,
) -> Result<Answer, BlastError> {
    let p = Purl::parse(purl).map_err(|e| BlastError::Purl {
        input: purl.to_string(),
        reason: e.to_string(),
    })?;
    let q = version_query(&p, versions, range)?;
    let key = p.package_key();
    let matcher = match &q {
        Some(q) => Some(Matcher::new(&p.ty, q).map_err(|e| BlastError::Version(e.to_string()))?),
        None => None,
    };
    let described = match &matcher {
        Some(m) => format!("{key} {}", m.describe()),
        None => format!("{key} (any version)"),
    };
    let mut matched: Vec<(i64, String)> = store
        .sbom_versions_of(&key)
        .await?
        .into_iter()
        .filter(|(_, v)| matcher.as_ref().is_none_or(|m| m.matches(v)))
        .collect();
    matched.sort_by(|a, b| {
        version::compare_versions(&p.ty, &a.1, &b.1).unwrap_or_else(|| a.1.cmp(&b.1))
    });
    let vid_to_version: HashMap<i64, String> = matched.iter().cloned().collect();
    let vids: Vec<i64> = matched.iter().map(|(i, _)| *i).collect();
    // (document, version) pairs from the posting lists, grouped by document.
    let mut pairs: Vec<(i64, i64)> = Vec::new();
    let mut ids = Vec::new();
    for (vid, seg, blob) in store.sbom_postings(&vids).await? {
        ids.clear();
        index::decode_postings(seg, &blob, &mut ids)
            .ok_or_else(|| BlastError::Corrupt(format!("posting list of version {vid}")))?;
        pairs.extend(ids.iter().map(|d| (*d, vid)));
    }
    pairs.sort_unstable();
    pairs.dedup();
    let mut doc_ids: Vec<i64> = pairs.iter().map(|(d, _)| *d).collect();
    doc_ids.dedup();
    let docs: Vec<SbomDocInfo> = store.sbom_docs(&doc_ids).await?;
    let mut hits = Vec::with_capacity(docs.len());
    let mut label_cache: HashMap<i64, (String, String)> = HashMap::new();
    let mut at = 0usize;
    for (n, d) in docs.into_iter().enumerate() {
        // Both lists are sorted by document id: walk them together.
        while at < pairs.len() && pairs[at].0 < d.id {
            at += 1;
        }
        let mut vs = BTreeSet::new();
        while at < pairs.len() && pairs[at].0 == d.id {
            vs.insert(pairs[at].1);
            at += 1;
        }
        let (path, direct) = if n < paths_limit {
            explain(store, &d, &vs, &mut label_cache).await?
        } else {
            (Vec::new(), None)
        };
        hits.push(Hit {
            versions: vs
                .iter()
                .filter_map(|v| vid_to_version.get(v).cloned())
                .collect(),
            subject: d.subject,
            digest: d.digest,
            source: d.source,
            document: d.sha256,
            path,
            direct,
        });
    }
    let mut images: Vec<&str> = hits.iter().map(|h| h.subject.as_str()).collect();
    images.sort_unstable();
    images.dedup();
    let images: Vec<String> = images.into_iter().map(str::to_string).collect();
    Ok(Answer {
        package: p.to_canonical(),
        query: described,
        matched_versions: matched.into_iter().map(|(_, v)| v).collect(),
        images,
        paths_truncated: hits.len() > paths_limit,
        hits,
    })
}

/// The shortest chain from the document's subject to a matched component, as labels.
async fn explain(
    store: &dyn Store,
    d: &SbomDocInfo,
    matched: &BTreeSet<i64>,
    labels: &mut HashMap<i64, (String, String)>,
) -> Result<(Vec<String>, Option<bool>), BlastError> {
    let Some(blob) = store.sbom_graph(d.id).await? else {
        return Ok((Vec::new(), None));
    };
    let g = Graph::decode(&blob)
        .ok_or_else(|| BlastError::Corrupt(format!("graph of document {}", d.sha256)))?;
    let targets: HashSet<u32> = g
        .versions
        .iter()
        .enumerate()
        .filter(|(_, v)| matched.contains(v))
        .map(|(i, _)| i as u32)
        .collect();
    let Some(path) = g.path_to(&targets) else {
        return Ok((Vec::new(), None));
    };
    let need: Vec<i64> = path
        .iter()
        .filter_map(|i| g.versions.get(*i as usize).copied())
        .filter(|v| !labels.contains_key(v))
        .collect();
    if !need.is_empty() {
        labels.extend(store.sbom_version_labels(&need).await?);
    }
    let Some(&first) = path.first() else {
        return Ok((Vec::new(), None));
    };
    // Where a chain may start: the subject's direct dependencies, or (without them) the
    // components nothing depends on.
    let is_start = if g.roots.is_empty() {
        !g.edges.iter().any(|(_, b)| *b == first)
    } else {
        g.roots.contains(&first)
    };
    let connected = g.edges.is_empty() || is_start;
    let direct = if g.edges.is_empty() && g.roots.is_empty() {
        None
    } else {
        Some(path.len() == 1 && is_start)
    };
    let mut out = vec![d.subject.clone()];
    for i in &path {
        let label = g
            .versions
            .get(*i as usize)
            .and_then(|v| labels.get(v))
            .map(|(k, v)| {
                let name = k.split_once('/').map_or(k.as_str(), |(_, n)| n);
                if v.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}@{v}")
                }
            })
            .unwrap_or_else(|| "?".into());
        out.push(label);
    }
    if !connected {
        out.insert(1, "…".into());
    }
    Ok((out, direct))
}
