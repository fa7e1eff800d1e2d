//! `sbom.blast_radius`: which indexed images contain the bad package versions, and through
//! which dependency path. A read: identical in a rehearsal. The timeline gets the query, the
//! answer's size and the sha256 of the full answer; the full answer is stored as an
//! artifact of the incident (`blast-radius-<step>[-<item>].json`), not copied into events.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::preflight::{Check, Impact};
use super::{
    Action, ActionCtx, ActionError, ActionOutput, Probe, list_input, opt_str_input, str_input,
};
use crate::blast::{self, BlastError};
use crate::playbook::{ActionSpec, InputSpec, InputType};

pub fn actions() -> Vec<Arc<dyn Action>> {
    vec![Arc::new(BlastRadius)]
}

/// Paths computed per answer (each costs one graph read).
const PATHS: usize = 200;
/// Images listed in the step's outputs; the artifact has them all.
const OUTPUT_IMAGES: usize = 1000;

static BLAST_RADIUS: ActionSpec = ActionSpec {
    name: "sbom.blast_radius",
    summary: "Find the indexed images (SBOMs) that contain a package at the bad versions, with the dependency path.",
    inputs: &[
        InputSpec {
            name: "purl",
            ty: InputType::String,
            required: true,
            help: "the package as a purl, e.g. pkg:npm/colors (a version in it means that exact version)",
        },
        InputSpec {
            name: "versions",
            ty: InputType::List,
            required: false,
            help: "exact bad versions",
        },
        InputSpec {
            name: "range",
            ty: InputType::String,
            required: false,
            help: "or a range in the ecosystem's own syntax (npm semver, PEP 440, Cargo, Maven)",
        },
    ],
    outputs: &[
        "images",
        "count",
        "running",
        "paths",
        "answer_sha256",
        "matched_versions",
    ],
    mutating: false,
    destructive: false,
};

pub struct BlastRadius;

/// What the clusters run of the affected images.
struct Running {
    rows: Value,
    note: String,
}

/// Sweeps every configured cluster for the affected images' digests (subjects pinned
/// `repo@sha256:…`). Best effort: an unreachable cluster is named in the note, never
/// fatal — the SBOM answer stands on its own.
async fn running_images(ctx: &ActionCtx, images: &[String]) -> Running {
    let clusters: Vec<&crate::config::ClusterConfig> = ctx.config.kube.clusters.iter().collect();
    if clusters.is_empty() {
        return Running {
            rows: Value::Null,
            note: "no Kubernetes cluster is configured: running workloads unknown".into(),
        };
    }
    let digests: std::collections::BTreeSet<String> = images
        .iter()
        .filter_map(|i| crate::k8s::image::image_digest(i))
        .collect();
    if digests.is_empty() {
        return Running {
            rows: json!([]),
            note: "no affected image is pinned by digest: nothing to look for in the clusters"
                .into(),
        };
    }
    let swept = super::kube::running::sweep_clusters(&ctx.config, &clusters, &digests).await;
    let mut note = format!(
        "{} running container(s) of the affected images in {} cluster(s)",
        swept.rows.len(),
        clusters.len() - swept.failed.len()
    );
    if !swept.failed.is_empty() {
        note.push_str(&format!(
            "; NOT swept: {}",
            swept
                .failed
                .iter()
                .map(|(n, e)| format!("{n} ({e})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Running {
        rows: json!(
            swept
                .rows
                .iter()
                .take(OUTPUT_IMAGES)
                .map(|r| r.json())
                .collect::<Vec<_>>()
        ),
        note,
    }
}

impl From<BlastError> for ActionError {
    fn from(e: BlastError) -> Self {
        match e {
            BlastError::Purl { .. } | BlastError::Version(_) => ActionError::Input(e.to_string()),
            other => ActionError::Failed(other.to_string()),
        }
    }
}

impl BlastRadius {
    async fn read(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let purl = str_input(inputs, "purl")?.trim().to_string();
        let versions = list_input(inputs, "versions")?;
        let range = opt_str_input(inputs, "range")?;
        let answer = blast::query(ctx.store.as_ref(), &purl, &versions, range, PATHS).await?;
        let digest = answer.digest();
        let name = if ctx.index == 0 {
            format!("blast-radius-{}.json", ctx.step)
        } else {
            format!("blast-radius-{}-{}.json", ctx.step, ctx.index)
        };
        let full = serde_json::to_string_pretty(&answer).unwrap_or_default();
        ctx.store
            .put_artifact(
                &ctx.incident,
                &name,
                &full,
                chrono::Utc::now().timestamp_millis(),
            )
            .await
            .map_err(|e| ActionError::Failed(format!("could not store the answer: {e}")))?;
        let running = running_images(ctx, &answer.images).await;
        let paths: Vec<Value> = answer
            .hits
            .iter()
            .filter(|h| !h.path.is_empty())
            .take(50)
            .map(|h| json!({ "image": h.subject, "path": h.path.join(" → "), "direct": h.direct }))
            .collect();
        let images: Vec<&String> = answer.images.iter().take(OUTPUT_IMAGES).collect();
        let summary = format!(
            "{} image(s) contain {} ({} matching version(s) indexed: {}); answer {} stored as `{name}`",
            answer.images.len(),
            answer.query,
            answer.matched_versions.len(),
            if answer.matched_versions.is_empty() {
                "none".to_string()
            } else {
                answer.matched_versions.join(", ")
            },
            digest
        );
        Ok(ActionOutput::new(
            json!({
                "images": images,
                "count": answer.images.len(),
                "documents": answer.hits.len(),
                "running": running.rows,
                "running_note": running.note,
                "paths": paths,
                "answer_sha256": digest,
                "artifact": name,
                "matched_versions": answer.matched_versions,
            }),
            summary,
        )
        .with(
            "query",
            json!({ "purl": purl, "versions": versions, "range": range, "as": answer.query }),
        ))
    }
}

#[async_trait]
impl Action for BlastRadius {
    fn spec(&self) -> &'static ActionSpec {
        &BLAST_RADIUS
    }
    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        self.read(ctx, inputs).await
    }
    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        self.read(ctx, inputs).await
    }
    async fn preflight(&self, ctx: &ActionCtx, _inputs: &Value) -> Vec<Check> {
        vec![match ctx.store.sbom_stats().await {
            Ok(s) if s.documents > 0 => Check::pass(
                "sbom.index",
                "the SBOM index",
                format!("{} document(s) indexed", s.documents),
            ),
            Ok(_) => Check::fail(
                "sbom.index",
                "the SBOM index",
                "no SBOM is indexed: the blast radius would be empty",
                "ingest the organisation's SBOMs (`recall sbom ingest DIR`) and keep them current",
            )
            .impact(Impact::Degrades),
            Err(e) => Check::fail(
                "sbom.index",
                "the SBOM index",
                e.to_string(),
                "check the database Recall uses",
            ),
        }]
    }

    async fn probe(&self, _ctx: &ActionCtx, _inputs: &Value) -> Result<Probe, ActionError> {
        Ok(Probe::NotDone {
            evidence: json!("a read has no effect to reconcile"),
        })
    }
}
