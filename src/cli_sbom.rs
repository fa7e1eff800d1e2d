//! `recall sbom ingest|query|stats`: the blast-radius index from the command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

use crate::blast::{self, parse::Limits};
use crate::cli::CliError;
use crate::config::Config;
use crate::net::oci::{OciClient, Reference};
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum SbomCmd {
    /// Index SBOMs (SPDX 2.2/2.3 JSON, CycloneDX 1.4–1.6 JSON or XML) from files,
    /// directories, or images in a registry (`host/repo@sha256:…` or `host/repo:tag`: the
    /// cosign `.sbom`/`.att` attachments and referrers). Re-ingesting a document is a no-op.
    Ingest {
        #[arg(required = true)]
        sources: Vec<String>,
        /// What the file SBOMs describe (default: what each document says, else its file name).
        #[arg(long)]
        subject: Option<String>,
        /// Largest document accepted, in MiB.
        #[arg(long, default_value_t = 256)]
        max_mib: usize,
        #[arg(long)]
        json: bool,
    },
    /// Which images contain a package: `pkg:npm/colors --versions 1.4.1,1.4.2`,
    /// `--range '>=1.4.1 <1.4.3'`, or the version in the purl.
    Query {
        purl: String,
        #[arg(long, value_delimiter = ',')]
        versions: Vec<String>,
        #[arg(long)]
        range: Option<String>,
        /// Explain at most this many hits with a dependency path.
        #[arg(long, default_value_t = 20)]
        paths: usize,
        #[arg(long)]
        json: bool,
    },
    /// Documents, subjects, packages and versions in the index.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

fn out(s: impl AsRef<str>) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{}", s.as_ref());
}

/// A source is an image reference when it is not a path that exists and parses as one.
fn as_image(s: &str) -> Option<Reference> {
    if std::path::Path::new(s).exists() {
        return None;
    }
    Reference::parse(s).ok()
}

pub async fn run(cmd: &SbomCmd, store: Arc<dyn Store>, config: &Config) -> Result<u8, CliError> {
    let now = chrono::Utc::now().timestamp_millis();
    match cmd {
        SbomCmd::Ingest {
            sources,
            subject,
            max_mib,
            json,
        } => {
            let limits = Limits {
                max_bytes: max_mib.saturating_mul(1024 * 1024),
                ..Limits::default()
            };
            let (images, paths): (Vec<&String>, Vec<&String>) =
                sources.iter().partition(|s| as_image(s).is_some());
            let files = blast::expand_paths(&paths.iter().map(PathBuf::from).collect::<Vec<_>>())
                .map_err(|e| CliError::Usage(e.to_string()))?;
            let tty = std::io::stderr().is_terminal() && !json;
            let mut bar = |p: blast::Progress| {
                if tty && p.total > 0 {
                    let width = 30;
                    let filled = p.done * width / p.total.max(1);
                    let rate = p.done as f64 / p.elapsed_s.max(0.001);
                    eprint!(
                        "\r[{}{}] {}/{} documents, {:.0}/s, {} rejected ",
                        "#".repeat(filled),
                        " ".repeat(width - filled),
                        p.done,
                        p.total,
                        rate,
                        p.rejected
                    );
                    if p.done == p.total {
                        eprintln!();
                    }
                }
            };
            let mut report = blast::ingest_files(
                store.clone(),
                files,
                subject.clone(),
                limits.clone(),
                now,
                &mut bar,
            )
            .await
            .map_err(|e| CliError::Failed(e.to_string()))?;
            let mut skipped = Vec::new();
            for img in images {
                let Some(r) = as_image(img) else { continue };
                match ingest_image(store.clone(), config, &r, &limits, now).await {
                    Ok((rep, sk)) => {
                        report.documents_read += rep.documents_read;
                        report.stored += rep.stored;
                        report.duplicates += rep.duplicates;
                        report.components += rep.components;
                        report.rejected.extend(rep.rejected);
                        skipped.extend(sk);
                    }
                    Err(e) => report.rejected.push((img.clone(), e)),
                }
            }
            if *json {
                let mut v = serde_json::to_value(&report).unwrap_or_default();
                v["skipped_attachments"] = json!(skipped);
                out(v.to_string());
            } else {
                out(format!(
                    "read {} document(s): {} stored ({} components), {} already indexed, {} rejected, in {:.2}s",
                    report.documents_read,
                    report.stored,
                    report.components,
                    report.duplicates,
                    report.rejected.len(),
                    report.seconds
                ));
                for (src, why) in &report.rejected {
                    eprintln!("rejected {src}: {why}");
                }
                for s in &skipped {
                    eprintln!("skipped {s}");
                }
            }
            Ok(if report.rejected.is_empty() { 0 } else { 1 })
        }
        SbomCmd::Query {
            purl,
            versions,
            range,
            paths,
            json,
        } => {
            let a = blast::query(store.as_ref(), purl, versions, range.as_deref(), *paths)
                .await
                .map_err(|e| match e {
                    blast::BlastError::Purl { .. } | blast::BlastError::Version(_) => {
                        CliError::Usage(e.to_string())
                    }
                    e => CliError::Failed(e.to_string()),
                })?;
            if *json {
                let mut v = serde_json::to_value(&a).unwrap_or_default();
                v["answer_sha256"] = json!(a.digest());
                out(v.to_string());
            } else {
                out(format!(
                    "{}: {} image(s), {} document(s); versions matched: {}",
                    a.query,
                    a.images.len(),
                    a.hits.len(),
                    if a.matched_versions.is_empty() {
                        "none in the index".to_string()
                    } else {
                        a.matched_versions.join(", ")
                    }
                ));
                for h in &a.hits {
                    let path = if h.path.is_empty() {
                        String::new()
                    } else {
                        format!("  via {}", h.path.join(" → "))
                    };
                    out(format!("  {} [{}]{path}", h.subject, h.versions.join(", ")));
                }
                if a.paths_truncated {
                    out(format!(
                        "  (paths shown for the first {paths} hits; --paths N for more)"
                    ));
                }
            }
            Ok(0)
        }
        SbomCmd::Stats { json } => {
            let s = store.sbom_stats().await?;
            if *json {
                out(serde_json::to_string(&s).unwrap_or_default());
            } else {
                out(format!(
                    "{} document(s) for {} subject(s); {} package(s), {} version(s), {} posting row(s)",
                    s.documents, s.subjects, s.packages, s.versions, s.postings
                ));
            }
            Ok(0)
        }
    }
}

/// Fetch the SBOMs attached to an image and index them under its digest.
async fn ingest_image(
    store: Arc<dyn Store>,
    config: &Config,
    r: &Reference,
    limits: &Limits,
    now: i64,
) -> Result<(blast::IngestReport, Vec<String>), String> {
    let insecure = config.oci.insecure.iter().any(|h| h == &r.host);
    let auth = crate::actions::oci::load_auth(config, &r.host).map_err(|e| e.to_string())?;
    let timeout = crate::config::parse_duration_ms(&config.oci.timeout).unwrap_or(30_000);
    let c = OciClient::new(&r.host, auth, insecure, Duration::from_millis(timeout))
        .map_err(|e| e.to_string())?
        .with_insecure_hosts(&config.oci.insecure);
    let found = blast::oci::fetch(&c, r, limits.max_bytes)
        .await
        .map_err(|e| e.to_string())?;
    if found.documents.is_empty() {
        return Err(format!(
            "no SBOM attached to {} (looked at referrers and cosign .sbom/.att tags)",
            found.subject
        ));
    }
    let mut norm = blast::Normaliser::default();
    let mut ing = blast::Ingester::new(store);
    let mut batch = Vec::new();
    for (src, text) in &found.documents {
        match norm.prepare(
            text.as_bytes(),
            src,
            Some((&found.subject, Some(&found.digest))),
            limits,
        ) {
            Ok(d) => batch.push(d),
            Err(e) => ing.reject(src, e.to_string()),
        }
    }
    ing.commit(batch, now).await.map_err(|e| e.to_string())?;
    Ok((ing.finish(), found.skipped))
}
