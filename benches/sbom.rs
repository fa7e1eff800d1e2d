//! `cargo bench --bench sbom`: the blast-radius index at fleet scale.
//!
//! Generates 10,000 realistic CycloneDX 1.5 SBOMs (500–2,000 components each, drawn from a
//! shared universe of npm, PyPI and Maven packages with Zipf-like popularity and several
//! versions each, scoped npm names percent-encoded, dependency trees), ingests them into a
//! fresh SQLite index and reports the ingest rate (target ≥ 500 SBOMs/s), then the latency
//! p50/p99 of exact, list and range queries (target p99 < 50 ms), side by side with the
//! straightforward baseline a user would otherwise run in the same run — `jq` over the
//! JSON files — as a ratio. `RECALL_BENCH_SBOMS=N` changes the fleet size.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use recall::blast;
use recall::store::{SqliteStore, Store};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Zipf-ish: small indices much more likely.
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) - 1.0) as u64 % n.max(1)
    }
}

struct Pkg {
    purl_base: String,
    name: String,
    group: Option<String>,
    versions: Vec<String>,
}

fn universe(rng: &mut Rng) -> Vec<Pkg> {
    let mut out = Vec::new();
    // The incident's package: popular, mostly at the good version.
    out.push(Pkg {
        purl_base: "pkg:npm/colors".into(),
        name: "colors".into(),
        group: None,
        versions: vec![
            "1.4.0".into(),
            "1.4.1".into(),
            "1.4.2".into(),
            "1.3.3".into(),
        ],
    });
    for i in 0..6000u64 {
        let nv = 1 + rng.below(6) as usize;
        let (purl_base, name, group, versions) = match i % 10 {
            0..=5 => {
                let scoped = i % 7 == 0;
                let name = format!("lib{i}");
                let (purl, group) = if scoped {
                    (
                        format!("pkg:npm/%40scope{}/{name}", i % 50),
                        Some(format!("@scope{}", i % 50)),
                    )
                } else {
                    (format!("pkg:npm/{name}"), None)
                };
                let vs = (0..nv)
                    .map(|v| format!("{}.{}.{}", 1 + i % 4, v, i % 9))
                    .collect();
                (purl, name, group, vs)
            }
            6..=7 => {
                let name = format!("py_pkg{i}");
                let vs = (0..nv).map(|v| format!("{}.{}", 2 + v, i % 11)).collect();
                (
                    format!("pkg:pypi/{}", name.replace('_', "-")),
                    name,
                    None,
                    vs,
                )
            }
            _ => {
                let group = format!("org.example{}", i % 40);
                let name = format!("artifact{i}");
                let vs = (0..nv).map(|v| format!("{}.{}.0", 3 + v, i % 5)).collect();
                (format!("pkg:maven/{group}/{name}"), name, Some(group), vs)
            }
        };
        out.push(Pkg {
            purl_base,
            name,
            group,
            versions,
        });
    }
    out
}

/// One document: (bytes, how many colors@1.4.1/1.4.2 it has).
fn document(rng: &mut Rng, u: &[Pkg], n: usize, image: usize) -> Vec<u8> {
    let mut chosen = std::collections::BTreeSet::new();
    chosen.insert(0usize); // colors, in every image (at some version)
    while chosen.len() < n {
        chosen.insert(1 + rng.skewed((u.len() - 1) as u64) as usize);
    }
    let mut comps = Vec::with_capacity(n);
    let mut refs = Vec::with_capacity(n);
    for (j, &pi) in chosen.iter().enumerate() {
        let p = &u[pi];
        let v = if pi == 0 {
            match rng.below(100) {
                0..=2 => "1.4.1",
                3 => "1.4.2",
                4..=9 => "1.3.3",
                _ => "1.4.0",
            }
        } else {
            p.versions[rng.skewed(p.versions.len() as u64) as usize].as_str()
        };
        let bref = format!("{}@{v}", p.purl_base);
        let mut c = serde_json::json!({
            "type": "library", "bom-ref": bref, "name": p.name, "version": v,
            "purl": format!("{}@{v}", p.purl_base),
        });
        if let Some(g) = &p.group {
            c["group"] = serde_json::json!(g);
        }
        comps.push(c);
        refs.push((j, bref));
    }
    // A dependency tree: every component hangs under an earlier one (or the image).
    let root = format!("image-{image}");
    let mut deps: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut top = Vec::new();
    for (j, (_, r)) in refs.iter().enumerate() {
        if j < 8 || rng.below(10) == 0 {
            top.push(r.clone());
        } else {
            let parent = rng.below(j as u64) as usize;
            deps[parent].push(r.clone());
        }
    }
    let mut dependencies = vec![serde_json::json!({ "ref": root, "dependsOn": top })];
    for (j, d) in deps.into_iter().enumerate() {
        if !d.is_empty() {
            dependencies.push(serde_json::json!({ "ref": refs[j].1, "dependsOn": d }));
        }
    }
    let digest = format!("sha256:{:064x}", image as u128 * 0x9e37_79b9_7f4a_7c15 + 7);
    let doc = serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "metadata": { "component": {
            "type": "container", "bom-ref": root,
            "name": format!("registry.example/team{}/service{image}", image % 40),
            "version": digest,
            "hashes": [{ "alg": "SHA-256", "content": digest.trim_start_matches("sha256:") }],
        }},
        "components": comps,
        "dependencies": dependencies,
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn generate(dir: &Path, count: usize) -> (u64, f64) {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let u = universe(&mut rng);
    let t0 = Instant::now();
    let mut bytes = 0u64;
    for i in 0..count {
        let n = 500 + rng.below(1501) as usize;
        let doc = document(&mut rng, &u, n, i);
        bytes += doc.len() as u64;
        let p = dir.join(format!("sbom-{i:05}.cdx.json"));
        std::fs::write(&p, &doc).expect("write sbom");
    }
    (bytes, t0.elapsed().as_secs_f64())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The baseline: jq over every file, printing the files with a matching component.
fn jq_baseline(files: &[PathBuf], filter: &str) -> Option<(f64, usize)> {
    let t0 = Instant::now();
    let mut hits = 0usize;
    for chunk in files.chunks(2000) {
        let out = Command::new("jq")
            .arg("-r")
            .arg(filter)
            .args(chunk)
            .output()
            .ok()?;
        hits += String::from_utf8_lossy(&out.stdout).lines().count();
    }
    Some((t0.elapsed().as_secs_f64(), hits))
}

fn main() {
    let count: usize = std::env::var("RECALL_BENCH_SBOMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    // RECALL_BENCH_DIR keeps the generated fleet between runs (generation is deterministic).
    let docs = match std::env::var_os("RECALL_BENCH_DIR") {
        Some(d) => PathBuf::from(d).join(format!("fleet-{count}")),
        None => tmp.path().join("sboms"),
    };
    let ready = docs.join(format!("sbom-{:05}.cdx.json", count.saturating_sub(1)));
    if ready.exists() {
        println!("reusing {count} generated SBOMs in {}", docs.display());
    } else {
        std::fs::create_dir_all(&docs).expect("dir");
        println!("generating {count} CycloneDX SBOMs (500-2,000 components each)...");
        let (bytes, gen_s) = generate(&docs, count);
        println!(
            "  {:.0} MiB in {gen_s:.1}s",
            bytes as f64 / (1024.0 * 1024.0)
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let url = format!("sqlite://{}", tmp.path().join("index.db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.expect("store"));
        let files = blast::expand_paths(std::slice::from_ref(&docs)).expect("files");
        let t0 = Instant::now();
        let report = blast::ingest_files(
            store.clone(),
            files.clone(),
            None,
            blast::parse::Limits::default(),
            0,
            &mut |_| {},
        )
        .await
        .expect("ingest");
        let secs = t0.elapsed().as_secs_f64();
        let rate = report.stored as f64 / secs;
        println!(
            "ingest: {} documents ({} components) in {secs:.2}s = {rate:.0} SBOMs/s ({:.0} components/s; {:.2}s of it committing); {} rejected; target >= 500/s: {}",
            report.stored,
            report.components,
            report.components as f64 / secs,
            report.commit_seconds,
            report.rejected.len(),
            if rate >= 500.0 { "met" } else { "NOT met" }
        );
        let t0 = Instant::now();
        let again = blast::ingest_files(store.clone(), files.clone(), None, blast::parse::Limits::default(), 0, &mut |_| {})
            .await
            .expect("re-ingest");
        println!(
            "re-ingest of the same documents: {} stored, {} duplicates (no-op) in {:.2}s",
            again.stored,
            again.duplicates,
            t0.elapsed().as_secs_f64()
        );
        let stats = store.sbom_stats().await.expect("stats");
        println!(
            "index: {} documents, {} packages, {} versions, {} posting rows",
            stats.documents, stats.packages, stats.versions, stats.postings
        );

        // Queries: the incident's package, and a spread of popular and rare packages.
        let mut rng = Rng(42);
        let u = universe(&mut Rng(0x5EED_1234_ABCD_0001));
        type Q = (String, Vec<String>, Option<String>);
        type MakeQ<'a> = Box<dyn Fn(&mut Rng) -> Q + 'a>;
        let kinds: [(&str, MakeQ); 3] = [
            ("exact", Box::new(|r: &mut Rng| {
                let p = &u[r.skewed(u.len() as u64) as usize];
                (format!("{}@{}", p.purl_base, p.versions[0]), vec![], None)
            })),
            ("list", Box::new(|r: &mut Rng| {
                let p = &u[r.skewed(u.len() as u64) as usize];
                (p.purl_base.clone(), p.versions.iter().take(2).cloned().collect(), None)
            })),
            ("range", Box::new(|r: &mut Rng| {
                let p = &u[r.skewed(u.len() as u64) as usize];
                let range = if p.purl_base.starts_with("pkg:npm") {
                    ">=1.0.0 <2.5.0".to_string()
                } else if p.purl_base.starts_with("pkg:pypi") {
                    ">=2.0,<4".to_string()
                } else {
                    "[3.0,5.0)".to_string()
                };
                (p.purl_base.clone(), vec![], Some(range))
            })),
        ];
        let mut p50s = Vec::new();
        for (name, make) in &kinds {
            let mut lat = Vec::new();
            let mut images = 0usize;
            for i in 0..300 {
                let (purl, vs, range) = if i % 10 == 0 {
                    // The incident's own question, at every tenth sample.
                    match *name {
                        "exact" => ("pkg:npm/colors@1.4.1".to_string(), vec![], None),
                        "list" => ("pkg:npm/colors".to_string(), vec!["1.4.1".into(), "1.4.2".into()], None),
                        _ => ("pkg:npm/colors".to_string(), vec![], Some(">=1.4.1 <1.4.3".to_string())),
                    }
                } else {
                    make(&mut rng)
                };
                let t = Instant::now();
                let a = blast::query(store.as_ref(), &purl, &vs, range.as_deref(), 0)
                    .await
                    .expect("query");
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                images = images.max(a.images.len());
            }
            lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            let (p50, p99) = (pct(&lat, 0.5), pct(&lat, 0.99));
            p50s.push(p50);
            println!(
                "query {name:5}: p50 {p50:.2} ms, p99 {p99:.2} ms over {} queries (largest answer {images} images); target p99 < 50 ms: {}",
                lat.len(),
                if p99 < 50.0 { "met" } else { "NOT met" }
            );
        }
        let t = Instant::now();
        let a = blast::query(store.as_ref(), "pkg:npm/colors", &[], Some(">=1.4.1 <1.4.3"), 20)
            .await
            .expect("query");
        println!(
            "colors >=1.4.1 <1.4.3 with 20 dependency paths: {} images in {:.2} ms",
            a.images.len(),
            t.elapsed().as_secs_f64() * 1000.0
        );

        // Baseline: jq over the files, same questions.
        let baselines = [
            ("exact", r#".components[] | select(.purl == "pkg:npm/colors@1.4.1") | input_filename"#),
            ("list", r#".components[] | select(.purl == "pkg:npm/colors@1.4.1" or .purl == "pkg:npm/colors@1.4.2") | input_filename"#),
            ("range", r#".components[] | select(.purl | startswith("pkg:npm/colors@")) | select((.version | split(".") | map(tonumber)) as $v | $v >= [1,4,1] and $v < [1,4,3]) | input_filename"#),
        ];
        for (i, (name, filter)) in baselines.iter().enumerate() {
            match jq_baseline(&files, filter) {
                Some((s, hits)) => println!(
                    "baseline jq {name:5}: {:.2} s ({hits} matches) = {:.0}x the index's p50",
                    s,
                    s * 1000.0 / p50s[i].max(0.001)
                ),
                None => println!("baseline jq {name:5}: jq not available"),
            }
        }
        let _ = std::io::stdout().flush();
    });
}
