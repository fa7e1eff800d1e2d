//! The SBOM blast-radius index end to end: the real SBOMs in `tests/fixtures/sboms` ingest
//! without loss (every component with a purl is queryable), known facts hold (juice-shop has
//! colors 1.4.0, so the sabotaged 1.4.1–1.4.2 must not hit; several `debug` versions;
//! `@babel/*` only through their encoded purls), transitive paths are explained, hostile
//! and malformed documents are refused with their path and reason while the rest is stored,
//! re-ingesting is a no-op, SBOMs attached to an image in a real registry are indexed under
//! its digest, and `sbom.blast_radius` puts the answer in the timeline and an artifact.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::registry::Registry;
use crate::support::{Recall, events, write_file};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sboms");

fn ingest(r: &Recall, args: &[&str]) -> (crate::support::Run, Value) {
    let mut a = vec!["sbom", "ingest", "--json"];
    a.extend_from_slice(args);
    let run = r.run(&a);
    let v = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    (run, v)
}

fn query(r: &Recall, args: &[&str]) -> Value {
    let mut a = vec!["sbom", "query", "--json"];
    a.extend_from_slice(args);
    let run = r.run(&a);
    assert_eq!(run.code, Some(0), "{run:?}");
    run.json()
}

fn subjects(v: &Value) -> Vec<String> {
    v["images"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sboms_ingest_without_loss_and_answer_known_facts() {
    let r = Recall::new("");
    let (run, rep) = ingest(&r, &[FIXTURES]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let files = std::fs::read_dir(format!("{FIXTURES}/cyclonedx"))
        .map(|d| d.count())
        .unwrap_or(0)
        + std::fs::read_dir(format!("{FIXTURES}/spdx"))
            .map(|d| d.count())
            .unwrap_or(0);
    assert_eq!(rep["stored"], files, "every fixture stored: {rep}");
    assert_eq!(rep["rejected"], json!([]), "{rep}");

    // Re-ingesting is a no-op.
    let (run, again) = ingest(&r, &[FIXTURES]);
    assert_eq!(run.code, Some(0));
    assert_eq!(
        (again["stored"].clone(), again["duplicates"].clone()),
        (json!(0), json!(files))
    );

    // colors: juice-shop has 1.4.0, not the sabotaged 1.4.1 / 1.4.2.
    let hit = query(&r, &["pkg:npm/colors@1.4.0"]);
    assert_eq!(subjects(&hit).len(), 1, "{hit}");
    assert!(subjects(&hit)[0].contains("juice-shop"), "{hit}");
    let bad = query(&r, &["pkg:npm/colors", "--versions", "1.4.1,1.4.2"]);
    assert!(subjects(&bad).is_empty(), "{bad}");
    let bad = query(&r, &["pkg:npm/colors", "--range", ">=1.4.1 <1.4.3"]);
    assert!(subjects(&bad).is_empty(), "{bad}");
    // The case-insensitive @colors/colors scoped package is a different package.
    let scoped = query(&r, &["pkg:npm/%40colors/colors"]);
    assert_eq!(scoped["matched_versions"], json!(["1.5.0"]), "{scoped}");

    // Several debug versions, and a transitive path through the CycloneDX dependencies.
    let debug = query(&r, &["pkg:npm/debug", "--paths", "5"]);
    let vs: Vec<&str> = debug["matched_versions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for v in ["2.6.9", "3.2.7", "4.3.4"] {
        assert!(vs.contains(&v), "{vs:?}");
    }
    let d269 = query(&r, &["pkg:npm/debug@2.6.9", "--paths", "10"]);
    let juice = d269["hits"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|h| h["subject"].as_str().unwrap_or("").contains("juice-shop"))
        })
        .cloned()
        .unwrap_or_default();
    let path = juice["path"].as_array().cloned().unwrap_or_default();
    assert!(
        path.len() >= 3,
        "a transitive path subject → … → debug@2.6.9: {path:?}"
    );
    assert_eq!(path.last().and_then(Value::as_str), Some("debug@2.6.9"));

    // @babel packages, found through their percent-encoded purls (and the decoded form).
    let enc = query(&r, &["pkg:npm/%40babel/parser"]);
    let dec = query(&r, &["pkg:npm/@babel/parser"]);
    assert_eq!(subjects(&enc).len(), 1, "{enc}");
    assert_eq!(enc["matched_versions"], dec["matched_versions"]);

    // Every component with a purl in every fixture is queryable (through the library).
    let store = recall::store::open(&r.db).await.expect("open store");
    let mut checked = 0;
    for dir in ["cyclonedx", "spdx"] {
        for entry in std::fs::read_dir(format!("{FIXTURES}/{dir}")).expect("dir") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            let parsed = match recall::blast::parse::parse_sbom(&bytes, &Default::default()) {
                Ok(p) => p,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            for c in parsed.components.iter().filter_map(|c| c.purl.as_ref()) {
                let Ok(p) = recall::blast::purl::Purl::parse(c) else {
                    continue;
                };
                if p.version.is_none() {
                    continue;
                }
                let a = recall::blast::query(store.as_ref(), c, &[], None, 0)
                    .await
                    .unwrap_or_else(|e| panic!("{c}: {e}"));
                assert!(
                    !a.images.is_empty(),
                    "{c} from {} not found",
                    path.display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1500, "checked {checked} purls");
}

const EVENT_STREAM: &str = r#"{
  "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
  "metadata": { "component": { "type": "container", "bom-ref": "app", "name": "registry.example/wallet/app",
    "hashes": [{ "alg": "SHA-256", "content": "1111111111111111111111111111111111111111111111111111111111111111" }] } },
  "components": [
    { "type": "library", "bom-ref": "es", "name": "event-stream", "version": "3.3.6", "purl": "pkg:npm/event-stream@3.3.6" },
    { "type": "library", "bom-ref": "fs", "name": "flatmap-stream", "version": "0.1.1", "purl": "pkg:npm/flatmap-stream@0.1.1" },
    { "type": "library", "bom-ref": "th", "name": "through", "version": "2.3.8", "purl": "pkg:npm/through@2.3.8" }
  ],
  "dependencies": [
    { "ref": "app", "dependsOn": ["es"] },
    { "ref": "es", "dependsOn": ["fs", "th"] }
  ]
}"#;

const SPDX_EDGES: &str = r#"{
  "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "svc", "dataLicense": "CC0-1.0",
  "documentNamespace": "https://example.com/svc", "creationInfo": { "created": "2024-01-01T00:00:00Z", "creators": ["Tool: test"] },
  "documentDescribes": ["SPDXRef-svc"],
  "packages": [
    { "SPDXID": "SPDXRef-svc", "name": "svc", "versionInfo": "1.0", "downloadLocation": "NOASSERTION" },
    { "SPDXID": "SPDXRef-es", "name": "event-stream", "versionInfo": "3.3.6", "downloadLocation": "NOASSERTION",
      "externalRefs": [{ "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:npm/event-stream@3.3.6" }] },
    { "SPDXID": "SPDXRef-fs", "name": "flatmap-stream", "versionInfo": "0.1.1", "downloadLocation": "NOASSERTION",
      "externalRefs": [{ "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:npm/flatmap-stream@0.1.1" }] }
  ],
  "relationships": [
    { "spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-svc" },
    { "spdxElementId": "SPDXRef-svc", "relationshipType": "DEPENDS_ON", "relatedSpdxElement": "SPDXRef-es" },
    { "spdxElementId": "SPDXRef-fs", "relationshipType": "DEPENDENCY_OF", "relatedSpdxElement": "SPDXRef-es" }
  ]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitive_paths_from_cyclonedx_and_spdx_edges() {
    let r = Recall::new("");
    let a = write_file(r.dir.path(), "app.cdx.json", EVENT_STREAM.as_bytes());
    let b = write_file(r.dir.path(), "svc.spdx.json", SPDX_EDGES.as_bytes());
    let (run, rep) = ingest(&r, &[&a, &b]);
    assert_eq!(run.code, Some(0), "{run:?} {rep}");
    let v = query(&r, &["pkg:npm/flatmap-stream@0.1.1"]);
    let mut paths: Vec<String> = v["hits"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    h["path"]
                        .as_array()
                        .map(|p| {
                            p.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(" → ")
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    assert_eq!(paths.len(), 2, "{v}");
    assert!(
        paths[0].ends_with("event-stream@3.3.6 → flatmap-stream@0.1.1"),
        "{paths:?}"
    );
    assert!(
        paths[1].ends_with("event-stream@3.3.6 → flatmap-stream@0.1.1"),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("registry.example/wallet/app@sha256:1111")),
        "the image is keyed by its digest: {paths:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_and_malformed_documents_are_refused_and_the_rest_stored() {
    let r = Recall::new("");
    let dir = r.dir.path().join("mixed");
    std::fs::create_dir_all(&dir).expect("dir");
    let good = write_file(&dir, "good.cdx.json", EVENT_STREAM.as_bytes());
    let truncated = write_file(&dir, "truncated.json", &EVENT_STREAM.as_bytes()[..300]);
    let pkg = write_file(
        &dir,
        "package.json",
        br#"{"name":"x","version":"1.0.0","dependencies":{}}"#,
    );
    // Components nested inside components, 5,000 levels deep.
    let deep = format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{}{}]}}"#,
        r#"{"type":"library","name":"n","components":["#.repeat(5000),
        "]}".repeat(5000)
    );
    let deep = write_file(&dir, "deep.json", deep.as_bytes());
    let huge = format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{{"type":"library","name":"{}","version":"1"}}]}}"#,
        "x".repeat(3 * 1024 * 1024)
    );
    let huge = write_file(&dir, "huge.json", huge.as_bytes());
    let html = write_file(&dir, "page.xml", b"<html><body>not an sbom</body></html>");
    let empty = write_file(&dir, "empty.json", b"");
    let (run, rep) = ingest(&r, &["--max-mib", "2", dir.to_str().unwrap_or_default()]);
    assert_eq!(
        run.code,
        Some(1),
        "a rejection is reported in the exit code: {run:?}"
    );
    assert_eq!(rep["stored"], 1, "{rep}");
    let rejected: Vec<(String, String)> = rep["rejected"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x[0].as_str().unwrap_or("").to_string(),
                        x[1].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(rejected.len(), 6, "{rejected:?}");
    for p in [&truncated, &pkg, &deep, &huge, &html, &empty] {
        let (_, why) = rejected
            .iter()
            .find(|(src, _)| src == p)
            .unwrap_or_else(|| panic!("{p} not reported: {rejected:?}"));
        assert!(!why.is_empty(), "{p}: a reason");
    }
    let reason = |p: &str| {
        rejected
            .iter()
            .find(|(s, _)| s == p)
            .map(|(_, w)| w.to_lowercase())
            .unwrap_or_default()
    };
    assert!(
        reason(&huge).contains("limit") || reason(&huge).contains("large"),
        "{}",
        reason(&huge)
    );
    assert!(
        reason(&deep).contains("deep")
            || reason(&deep).contains("nest")
            || reason(&deep).contains("recursion"),
        "{}",
        reason(&deep)
    );
    let _ = good;
    let stats = r.run(&["sbom", "stats", "--json"]).json();
    assert_eq!(stats["documents"], 1, "nothing half-stored: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sboms_attached_to_an_image_are_indexed_under_its_digest() {
    let reg = Registry::start().await.unwrap_or_else(|e| panic!("{e}"));
    let repo = "acme/wallet";
    let img = reg.seed_image(repo, "2.4.0").await.expect("seed");
    // cosign's .sbom: a manifest whose layer is the SBOM, tagged sha256-<hex>.sbom.
    let sbom = EVENT_STREAM.replace("registry.example/wallet/app", "wallet");
    let layer = reg.push_blob(repo, sbom.as_bytes()).await.expect("blob");
    let cfg = reg.push_blob(repo, b"{}").await.expect("config");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": 2 },
        "layers": [{ "mediaType": "application/vnd.cyclonedx+json", "digest": layer, "size": sbom.len() }],
    })
    .to_string();
    let tag = format!("sha256-{}.sbom", img.digest.trim_start_matches("sha256:"));
    reg.push_manifest(
        repo,
        &tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .await
    .expect("push .sbom");
    let r = Recall::new(&format!("[oci]\ninsecure = [\"{}\"]\n", reg.host()));
    let image = format!("{}/{repo}:2.4.0", reg.host());
    let mark = reg.mark();
    let (run, rep) = ingest(&r, &[&image]);
    assert_eq!(run.code, Some(0), "{run:?} {rep}");
    assert_eq!(rep["stored"], 1, "{rep}");
    assert!(
        reg.mutating_requests_since(mark).is_empty(),
        "ingest only reads"
    );
    let v = query(&r, &["pkg:npm/flatmap-stream@0.1.1"]);
    assert_eq!(
        subjects(&v),
        vec![format!("{}/{repo}@{}", reg.host(), img.digest)],
        "keyed by the image digest: {v}"
    );
    // Again: a no-op.
    let (_, rep) = ingest(&r, &[&image]);
    assert_eq!(rep["stored"], 0, "{rep}");

    // cosign's .att: a DSSE envelope whose in-toto statement carries an SPDX predicate.
    let other = reg.seed_image(repo, "2.5.0").await.expect("seed");
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{ "name": repo, "digest": { "sha256": other.digest.trim_start_matches("sha256:") } }],
        "predicate": serde_json::from_str::<Value>(SPDX_EDGES).expect("spdx"),
    });
    use base64::Engine as _;
    let envelope = json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64::engine::general_purpose::STANDARD.encode(statement.to_string()),
        "signatures": [{ "keyid": "", "sig": "MEUCIQ==" }],
    })
    .to_string();
    let layer = reg
        .push_blob(repo, envelope.as_bytes())
        .await
        .expect("blob");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": 2 },
        "layers": [{ "mediaType": "application/vnd.dsse.envelope.v1+json", "digest": layer, "size": envelope.len() }],
    })
    .to_string();
    let tag = format!("sha256-{}.att", other.digest.trim_start_matches("sha256:"));
    reg.push_manifest(
        repo,
        &tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .await
    .expect("push .att");
    let image = format!("{}/{repo}@{}", reg.host(), other.digest);
    let (run, rep) = ingest(&r, &[&image]);
    assert_eq!(run.code, Some(0), "{run:?} {rep}");
    assert_eq!(rep["stored"], 1, "{rep}");
    let v = query(&r, &["pkg:npm/flatmap-stream@0.1.1"]);
    assert!(
        subjects(&v).contains(&format!("{}/{repo}@{}", reg.host(), other.digest)),
        "the attested SBOM is keyed by its image: {v}"
    );
}

const PLAYBOOK: &str = r#"name: scope
params:
  purl: { type: string }
  versions: { type: list }
steps:
  - id: scope
    uses: sbom.blast_radius
    with:
      purl: ${{ params.purl }}
      versions: ${{ params.versions }}
  - id: note
    uses: incident.note
    needs: [scope]
    if: ${{ steps.scope.outputs.count > 0 }}
    with:
      message: "${{ steps.scope.outputs.count }} image(s) affected"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blast_radius_action_records_the_answer_digest_and_stores_the_list() {
    let r = Recall::new("");
    let a = write_file(r.dir.path(), "app.cdx.json", EVENT_STREAM.as_bytes());
    let (run, _) = ingest(&r, &[&a]);
    assert_eq!(run.code, Some(0));
    let pb = write_file(r.dir.path(), "scope.yaml", PLAYBOOK.as_bytes());
    for dry in [true, false] {
        let mut args = vec![
            "incident",
            "start",
            "--playbook",
            pb.as_str(),
            "--json",
            "--param",
            "purl=pkg:npm/flatmap-stream",
            "--param",
            r#"versions=["0.1.1"]"#,
        ];
        if dry {
            args.extend(["--dry-run", "--auto-approve"]);
        }
        let run = r.run(&args);
        assert_eq!(run.code, Some(0), "{run:?}");
        let id = run.id();
        let tl = r.timeline(&id);
        let done = events(
            &tl,
            if dry {
                "attempt.planned"
            } else {
                "attempt.succeeded"
            },
        );
        let scope = done
            .iter()
            .find(|e| e["step"] == "scope")
            .cloned()
            .cloned()
            .unwrap_or_default();
        let outputs = &scope["data"]["outputs"];
        assert_eq!(outputs["count"], 1, "{scope}");
        let digest = outputs["answer_sha256"].as_str().unwrap_or("").to_string();
        assert!(digest.starts_with("sha256:"), "{scope}");
        assert!(scope["summary"].as_str().unwrap_or("").contains(&digest));
        assert!(
            events(&tl, "attempt.succeeded")
                .iter()
                .chain(events(&tl, "attempt.planned").iter())
                .any(|e| e["step"] == "note"),
            "`if` saw the outputs: {tl}"
        );
        let store = recall::store::open(&r.db).await.expect("store");
        let art = store
            .artifact(&id, "blast-radius-scope.json")
            .await
            .expect("artifact")
            .expect("stored");
        let full: Value = serde_json::from_str(&art).expect("json");
        assert_eq!(full["images"].as_array().map(Vec::len), Some(1));
        let pm = r.run(&["postmortem", &id]);
        assert_eq!(pm.code, Some(0), "{pm:?}");
        assert!(
            pm.stdout
                .contains("**1** image(s) contain `pkg:npm/flatmap-stream`")
                && pm
                    .stdout
                    .contains("event-stream@3.3.6 → flatmap-stream@0.1.1"),
            "the postmortem carries the blast radius:\n{}",
            pm.stdout
        );
        let _ = Arc::new(());
    }
}
