//! SBOMs attached to an image in an OCI registry, found the ways tools attach them:
//! cosign's `sha256-<hex>.sbom` tag (the SBOM is the manifest's layer), cosign's
//! `sha256-<hex>.att` tag (DSSE envelopes whose in-toto statement carries an SPDX or
//! CycloneDX predicate), and OCI referrers (the API, or the `sha256-<hex>` fallback index)
//! whose artifact type is an SBOM. Every document is keyed by the image digest it describes.

use base64::Engine as _;
use serde_json::Value;

use super::BlastError;
use crate::net::oci::{OciClient, Reference};

/// Media types of SBOM documents (layers and artifact types).
const SBOM_TYPES: &[&str] = &[
    "application/vnd.cyclonedx+json",
    "application/spdx+json",
    "text/spdx+json",
    "application/vnd.cyclonedx+xml",
    "application/vnd.cyclonedx",
    "application/vnd.dev.cosign.artifact.sbom.v1+json",
];
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";

/// What was found for one image.
#[derive(Debug, Default)]
pub struct Found {
    /// `host/repo@sha256:…`
    pub subject: String,
    pub digest: String,
    /// `(where it came from, document text)`
    pub documents: Vec<(String, String)>,
    /// Attachments looked at that were not SBOMs (signatures, other attestations).
    pub skipped: Vec<String>,
}

fn is_sbom_type(t: &str) -> bool {
    let t = t.split(';').next().unwrap_or(t).trim();
    SBOM_TYPES.contains(&t)
}

fn oci_err(e: impl std::fmt::Display) -> BlastError {
    BlastError::Oci(e.to_string())
}

/// Resolve `reference` (a tag or digest) and collect every SBOM attached to its digest.
pub async fn fetch(c: &OciClient, r: &Reference, max_bytes: usize) -> Result<Found, BlastError> {
    let resolved = c.resolve(&r.repo, r.target()).await.map_err(oci_err)?;
    let digest = resolved.digest.clone();
    let mut found = Found {
        subject: format!("{}/{}@{digest}", r.host, r.repo),
        digest: digest.clone(),
        ..Found::default()
    };
    let refs = c.referrers(&r.repo, &digest).await.map_err(oci_err)?;
    // Referrers (API or fallback index) with an SBOM artifact type or SBOM layers.
    for d in &refs.descriptors {
        let art = d.artifact_type.as_deref().unwrap_or("");
        collect_manifest(
            c,
            r,
            &d.digest,
            &format!("referrer {}", d.digest),
            art,
            max_bytes,
            &mut found,
        )
        .await?;
    }
    // cosign's tags.
    for (tag, tag_digest) in &refs.cosign {
        collect_manifest(
            c,
            r,
            tag_digest,
            &format!("cosign tag {tag}"),
            "",
            max_bytes,
            &mut found,
        )
        .await?;
    }
    Ok(found)
}

async fn collect_manifest(
    c: &OciClient,
    r: &Reference,
    manifest_digest: &str,
    label: &str,
    artifact_type: &str,
    max_bytes: usize,
    found: &mut Found,
) -> Result<(), BlastError> {
    let m = c.resolve(&r.repo, manifest_digest).await.map_err(oci_err)?;
    let v: Value = serde_json::from_str(&m.raw)
        .map_err(|e| BlastError::Oci(format!("{label}: manifest is not JSON: {e}")))?;
    let art = v
        .get("artifactType")
        .and_then(Value::as_str)
        .unwrap_or(artifact_type);
    let layers = v
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    for l in layers {
        let mt = l.get("mediaType").and_then(Value::as_str).unwrap_or("");
        let Some(ld) = l.get("digest").and_then(Value::as_str) else {
            continue;
        };
        if is_sbom_type(mt) || (is_sbom_type(art) && mt != DSSE) {
            let text = c.blob_text(&r.repo, ld, max_bytes).await.map_err(oci_err)?;
            found
                .documents
                .push((format!("{}/{} {label} layer {ld}", r.host, r.repo), text));
            any = true;
        } else if mt == DSSE {
            let text = c.blob_text(&r.repo, ld, max_bytes).await.map_err(oci_err)?;
            match predicate_of(&text) {
                Ok(Some(doc)) => {
                    found.documents.push((
                        format!("{}/{} {label} attestation {ld}", r.host, r.repo),
                        doc,
                    ));
                    any = true;
                }
                Ok(None) => {}
                Err(why) => found.skipped.push(format!("{label}: {why}")),
            }
        }
    }
    if !any {
        found
            .skipped
            .push(format!("{label}: no SBOM in it (artifact type `{art}`)"));
    }
    Ok(())
}

/// The SBOM inside a DSSE envelope's in-toto statement, if its predicate is one.
fn predicate_of(envelope: &str) -> Result<Option<String>, String> {
    let env: Value = serde_json::from_str(envelope).map_err(|e| format!("DSSE envelope: {e}"))?;
    let payload = env
        .get("payload")
        .and_then(Value::as_str)
        .ok_or("DSSE envelope without payload")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|e| format!("DSSE payload is not base64: {e}"))?;
    let stmt: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("in-toto statement: {e}"))?;
    let pt = stmt
        .get("predicateType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    if !(pt.contains("spdx") || pt.contains("cyclonedx")) {
        return Ok(None);
    }
    let pred = stmt.get("predicate").ok_or("statement without predicate")?;
    // cosign's older SPDX predicate wraps the document as a string under `Data`.
    if let Some(s) = pred.get("Data").and_then(Value::as_str) {
        return Ok(Some(s.to_string()));
    }
    Ok(Some(pred.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_come_out_of_dsse_envelopes() {
        let stmt = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://cyclonedx.org/bom",
            "subject": [],
            "predicate": { "bomFormat": "CycloneDX", "specVersion": "1.5", "components": [] }
        });
        let env = serde_json::json!({
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64::engine::general_purpose::STANDARD.encode(stmt.to_string()),
            "signatures": []
        });
        let doc = predicate_of(&env.to_string())
            .expect("ok")
            .expect("an SBOM");
        assert!(doc.contains("CycloneDX"));
        let other = serde_json::json!({ "predicateType": "https://slsa.dev/provenance/v1", "predicate": {} });
        let env = serde_json::json!({ "payload": base64::engine::general_purpose::STANDARD.encode(other.to_string()) });
        assert_eq!(predicate_of(&env.to_string()), Ok(None));
        assert!(predicate_of("{").is_err());
        assert!(is_sbom_type("application/spdx+json; charset=utf-8"));
    }
}
