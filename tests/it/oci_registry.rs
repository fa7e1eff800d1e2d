//! The OCI client against a real CNCF distribution 2.8.2: resolving tags, indexes and
//! platform manifests; quarantine tags keep the digest; untag through the portable fallback
//! removes exactly the tag (image, quarantine tag and other tags survive); referrers
//! fallback; delete by digest; and the registry's own access log shows exactly the
//! mutating requests expected — none for a plan.

use std::time::Duration;

use recall::net::http::RequestRecord;
use recall::net::oci::{
    EMPTY_DIGEST, EMPTY_JSON, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, OciAuth, OciClient, OciError,
    ReferrersSource, UPLOAD_LOCATION, UntagMethod, dummy_manifest, referrers_tag, sha256_digest,
};
use serde_json::json;

use crate::support::registry::Registry;

async fn registry() -> Registry {
    match Registry::start().await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn client(r: &Registry) -> OciClient {
    OciClient::new(&r.host(), OciAuth::Anonymous, true, Duration::from_secs(30)).expect("client")
}

fn m(method: &str, path: &str) -> (String, String) {
    (method.to_string(), path.to_string())
}

/// (method, path without query) of mutating records, as the access log shows them.
fn paths(recs: &[RequestRecord]) -> Vec<(String, String)> {
    recs.iter()
        .map(|r| {
            let path = reqwest::Url::parse(&r.url)
                .map(|u| u.path().to_string())
                .unwrap_or_else(|_| r.url.clone());
            (r.method.clone(), path)
        })
        .collect()
}

fn strip_query(v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.into_iter()
        .map(|(m, p)| (m, p.split('?').next().unwrap_or_default().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_tags_indexes_and_platform_manifests() {
    let reg = registry().await;
    let img = reg.seed_image("team/app", "v1").await.expect("seed image");
    let idx = reg
        .seed_index("team/app", "multi")
        .await
        .expect("seed index");
    let c = client(&reg);

    let r = c.resolve("team/app", "v1").await.expect("resolve v1");
    assert_eq!(r.digest, img.digest);
    assert_eq!(r.media_type, MEDIA_OCI_MANIFEST);
    assert_eq!(r.raw, img.raw);
    assert_eq!(r.size, img.raw.len() as u64);
    assert!(r.platforms.is_empty() && !r.is_index());
    let by_digest = c.resolve("team/app", &img.digest).await.expect("by digest");
    assert_eq!(by_digest.raw, img.raw);

    let i = c.resolve("team/app", "multi").await.expect("resolve index");
    assert_eq!(i.digest, idx.digest);
    assert_eq!(i.media_type, MEDIA_OCI_INDEX);
    assert!(i.is_index());
    let got: Vec<(String, String)> = i
        .platforms
        .iter()
        .map(|p| (format!("{}/{}", p.os, p.architecture), p.digest.clone()))
        .collect();
    assert_eq!(got, idx.platforms);
    for p in &i.platforms {
        let pm = c.resolve("team/app", &p.digest).await.expect("platform");
        assert_eq!(pm.digest, p.digest);
        assert_eq!(pm.media_type, MEDIA_OCI_MANIFEST);
        assert!(
            c.manifest_exists("team/app", &p.digest)
                .await
                .expect("HEAD")
        );
    }

    let absent = sha256_digest(b"never pushed");
    assert!(!c.manifest_exists("team/app", &absent).await.expect("HEAD"));
    assert!(matches!(
        c.resolve("team/app", "nope").await,
        Err(OciError::NotFound { .. })
    ));
    assert!(matches!(
        c.tags("no/such").await,
        Err(OciError::NotFound { .. })
    ));

    reg.tag("team/app", "latest", &img.digest)
        .await
        .expect("tag");
    assert_eq!(
        c.tags("team/app").await.expect("tags"),
        ["latest", "multi", "v1"]
    );
    assert_eq!(
        c.tags_pointing_at("team/app", &img.digest)
            .await
            .expect("tags at"),
        ["latest", "v1"]
    );
    // tags/list ignores n= on 2.8.2: no pagination, everything in one answer.
    let (status, body) = reg.get("v2/team/app/tags/list?n=1").await.expect("n=1");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json")["tags"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    assert!(
        reg.mutating_requests().len() >= 2,
        "seeding went through the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_then_untag_through_the_fallback_keeps_the_image() {
    let reg = registry().await;
    let bad = reg.seed_image("team/app", "v1").await.expect("seed v1");
    reg.tag("team/app", "latest", &bad.digest)
        .await
        .expect("latest");
    let other = reg.seed_image("team/app", "v2").await.expect("seed v2");
    let c = client(&reg);

    // Quarantine: the same bytes under another tag give the same digest.
    let r = c.resolve("team/app", "v1").await.expect("resolve");
    let put = c
        .put_manifest_request("team/app", "quarantine-inc42", &r.media_type, &r.raw)
        .expect("put request");
    let mark = reg.mark();
    let resp = c.send(&put).await.expect("quarantine put");
    assert_eq!(resp.status, 201);
    assert_eq!(
        resp.headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok()),
        Some(bad.digest.as_str())
    );
    assert_eq!(
        reg.mutating_requests_since(mark),
        [m("PUT", "/v2/team/app/manifests/quarantine-inc42")]
    );

    // The plan sends nothing mutating and lists what the live path will send.
    let mark = reg.mark();
    let plan = c.untag_plan("team/app", "v1", "inc42").await.expect("plan");
    assert!(reg.mutating_requests_since(mark).is_empty(), "plan mutated");
    assert_eq!(plan.current_digest.as_deref(), Some(bad.digest.as_str()));
    let dummy = dummy_manifest("v1", "inc42");
    assert_eq!(plan.dummy_digest, sha256_digest(dummy.as_bytes()));
    let planned = plan.records();
    assert_eq!(
        paths(&planned),
        [
            m("DELETE", "/v2/team/app/manifests/v1"),
            m("POST", "/v2/team/app/blobs/uploads/"),
            // the upload URL is only known once the POST is answered
            m("PUT", &format!("{UPLOAD_LOCATION}?digest={EMPTY_DIGEST}")),
            m("PUT", "/v2/team/app/manifests/v1"),
            m(
                "DELETE",
                &format!("/v2/team/app/manifests/{}", plan.dummy_digest)
            ),
        ]
    );
    assert!(planned[2].url.starts_with(UPLOAD_LOCATION));
    assert_eq!(planned[2].raw_body.as_deref(), Some(EMPTY_JSON));
    assert_eq!(planned[3].raw_body.as_deref(), Some(dummy.as_str()));

    // Live untag.
    let mark = reg.mark();
    let out = c.untag("team/app", "v1", "inc42").await.expect("untag");
    assert_eq!(out.method, UntagMethod::DummyOverwrite);
    assert!(out.dummy_deleted);
    assert_eq!(out.previous_digest.as_deref(), Some(bad.digest.as_str()));
    assert_eq!(
        out.dummy_digest.as_deref(),
        Some(plan.dummy_digest.as_str())
    );
    let logged = reg.mutating_requests_since(mark);
    let logged_paths = strip_query(logged.clone());
    assert_eq!(logged.len(), 5, "{logged:?}");
    assert_eq!(logged_paths[0], m("DELETE", "/v2/team/app/manifests/v1"));
    assert_eq!(logged_paths[1], m("POST", "/v2/team/app/blobs/uploads/"));
    assert_eq!(logged_paths[2].0, "PUT");
    assert!(logged_paths[2].1.starts_with("/v2/team/app/blobs/uploads/"));
    assert!(
        logged[2]
            .1
            .contains(&format!("digest={}", EMPTY_DIGEST.replace(':', "%3A")))
    );
    assert_eq!(logged_paths[3], m("PUT", "/v2/team/app/manifests/v1"));
    assert_eq!(
        logged_paths[4],
        m(
            "DELETE",
            &format!("/v2/team/app/manifests/{}", plan.dummy_digest)
        )
    );
    assert_eq!(
        strip_query(paths(&out.sent)),
        logged_paths,
        "outcome lists what was sent"
    );
    // Same requests as planned, except the upload URL the registry handed out.
    for (i, (p, s)) in planned.iter().zip(&out.sent).enumerate() {
        assert_eq!(p.method, s.method, "step {i}");
        assert_eq!(p.raw_body, s.raw_body, "step {i}");
        if i != 2 {
            assert_eq!(p.url, s.url, "step {i}");
        }
    }

    // The tag is gone; the image, its quarantine tag and the other tags are not.
    assert_eq!(
        c.tags("team/app").await.expect("tags"),
        ["latest", "quarantine-inc42", "v2"]
    );
    let (status, _, body) = reg.get_manifest("team/app", "v1").await.expect("GET v1");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("MANIFEST_UNKNOWN"), "{body}");
    assert!(matches!(
        c.resolve("team/app", "v1").await,
        Err(OciError::NotFound { .. })
    ));
    assert_eq!(
        c.resolve("team/app", &bad.digest)
            .await
            .expect("digest")
            .raw,
        bad.raw
    );
    for t in ["quarantine-inc42", "latest"] {
        assert_eq!(c.resolve("team/app", t).await.expect(t).digest, bad.digest);
    }
    assert_eq!(
        c.resolve("team/app", "v2").await.expect("v2").digest,
        other.digest
    );
    assert!(
        !c.manifest_exists("team/app", &plan.dummy_digest)
            .await
            .expect("HEAD dummy")
    );

    // Idempotent: a second untag sends nothing.
    let mark = reg.mark();
    let again = c.untag("team/app", "v1", "inc42").await.expect("again");
    assert_eq!(again.method, UntagMethod::AlreadyAbsent);
    assert!(again.sent.is_empty());
    assert!(reg.mutating_requests_since(mark).is_empty());

    // The empty blob now exists in the repo: the next untag skips the upload.
    let mark = reg.mark();
    let plan2 = c
        .untag_plan("team/app", "v2", "inc42")
        .await
        .expect("plan v2");
    assert_eq!(plan2.fallback.len(), 2);
    let out2 = c.untag("team/app", "v2", "inc42").await.expect("untag v2");
    assert_eq!(
        strip_query(reg.mutating_requests_since(mark)),
        [
            m("DELETE", "/v2/team/app/manifests/v2"),
            m("PUT", "/v2/team/app/manifests/v2"),
            m(
                "DELETE",
                &format!("/v2/team/app/manifests/{}", plan2.dummy_digest)
            ),
        ]
    );
    assert_eq!(out2.sent, plan2.records());
    assert_ne!(plan2.dummy_digest, plan.dummy_digest, "one dummy per tag");
    assert_eq!(
        c.resolve("team/app", &other.digest)
            .await
            .expect("v2 image")
            .digest,
        other.digest
    );
    assert_eq!(
        c.tags("team/app").await.expect("tags"),
        ["latest", "quarantine-inc42"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_quarantine_and_untag_keep_the_platform_manifests() {
    let reg = registry().await;
    let idx = reg
        .seed_index("team/multi", "v3")
        .await
        .expect("seed index");
    let c = client(&reg);
    let r = c.resolve("team/multi", "v3").await.expect("resolve");
    let put = c
        .put_manifest_request("team/multi", "quarantine-inc7", &r.media_type, &r.raw)
        .expect("put");
    c.send(&put).await.expect("quarantine");
    assert_eq!(
        c.resolve("team/multi", "quarantine-inc7")
            .await
            .expect("q")
            .digest,
        idx.digest
    );
    let out = c.untag("team/multi", "v3", "inc7").await.expect("untag");
    assert_eq!(out.method, UntagMethod::DummyOverwrite);
    assert_eq!(
        c.tags("team/multi").await.expect("tags"),
        ["quarantine-inc7"]
    );
    assert_eq!(
        c.resolve("team/multi", &idx.digest)
            .await
            .expect("index")
            .digest,
        idx.digest
    );
    for (_, d) in &idx.platforms {
        assert!(c.manifest_exists("team/multi", d).await.expect("child"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_fall_back_to_the_digest_tag_and_find_cosign_tags() {
    let reg = registry().await;
    let img = reg.seed_image("team/app", "v1").await.expect("seed");
    let c = client(&reg);

    // No referrers API on 2.8.2 (plain 404), no fallback tag yet.
    let mark = reg.mark();
    let r = c
        .referrers("team/app", &img.digest)
        .await
        .expect("referrers");
    assert_eq!(r.source, ReferrersSource::None);
    assert!(r.descriptors.is_empty() && r.cosign.is_empty());
    assert!(reg.mutating_requests_since(mark).is_empty());
    let (status, body) = reg
        .get(&format!("v2/team/app/referrers/{}", img.digest))
        .await
        .expect("GET referrers");
    assert_eq!((status, body.trim()), (404, "404 page not found"));

    // An artifact (zero layers, empty config) plus the sha256-<hex> fallback index.
    reg.push_blob("team/app", EMPTY_JSON.as_bytes())
        .await
        .expect("empty blob");
    let artifact = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1+json",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2 },
        "layers": [],
        "subject": { "mediaType": MEDIA_OCI_MANIFEST, "digest": img.digest, "size": img.raw.len() },
    })
    .to_string();
    let art_digest = sha256_digest(artifact.as_bytes());
    reg.push_manifest("team/app", &art_digest, MEDIA_OCI_MANIFEST, &artifact)
        .await
        .expect("artifact");
    let fallback = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_INDEX,
        "manifests": [{
            "mediaType": MEDIA_OCI_MANIFEST,
            "digest": art_digest,
            "size": artifact.len(),
            "artifactType": "application/vnd.example.sbom.v1+json",
        }],
    })
    .to_string();
    let hex_tag = referrers_tag(&img.digest).expect("tag");
    reg.push_manifest("team/app", &hex_tag, MEDIA_OCI_INDEX, &fallback)
        .await
        .expect("fallback index");
    // cosign's signature tag
    let sig = reg
        .seed_image("team/app", &format!("{hex_tag}.sig"))
        .await
        .expect("sig");

    let r = c
        .referrers("team/app", &img.digest)
        .await
        .expect("referrers");
    assert_eq!(r.source, ReferrersSource::FallbackTag);
    assert_eq!(r.descriptors.len(), 1);
    assert_eq!(r.descriptors[0].digest, art_digest);
    assert_eq!(r.descriptors[0].size, artifact.len() as u64);
    assert_eq!(
        r.descriptors[0].artifact_type.as_deref(),
        Some("application/vnd.example.sbom.v1+json")
    );
    assert_eq!(r.cosign, vec![(format!("{hex_tag}.sig"), sig.digest)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_by_digest_removes_every_tag_and_tag_delete_is_refused() {
    let reg = registry().await;
    let img = reg.seed_image("team/app", "v1").await.expect("seed");
    reg.tag("team/app", "also", &img.digest).await.expect("tag");
    let keep = reg.seed_image("team/app", "keep").await.expect("keep");
    let c = client(&reg);

    // distribution 2.8.2 refuses a tag DELETE with 400 DIGEST_INVALID.
    let mark = reg.mark();
    let e = c
        .send(&c.delete_manifest_request("team/app", "v1").expect("req"))
        .await
        .expect_err("tag delete");
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("DIGEST_INVALID"), "{e}");

    let del = c
        .delete_manifest_request("team/app", &img.digest)
        .expect("req");
    let resp = c.send(&del).await.expect("delete by digest");
    assert_eq!(resp.status, 202);
    assert_eq!(
        reg.mutating_requests_since(mark),
        [
            m("DELETE", "/v2/team/app/manifests/v1"),
            m("DELETE", &format!("/v2/team/app/manifests/{}", img.digest)),
        ]
    );
    assert_eq!(c.tags("team/app").await.expect("tags"), ["keep"]);
    assert!(
        !c.manifest_exists("team/app", &img.digest)
            .await
            .expect("HEAD")
    );
    assert!(
        c.manifest_exists("team/app", &keep.digest)
            .await
            .expect("HEAD")
    );
    let e = c.send(&del).await.expect_err("second delete");
    assert_eq!(e.status(), Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_upload_is_two_step_and_the_dummy_needs_the_empty_blob() {
    let reg = registry().await;
    reg.seed_image("fresh/repo", "v1").await.expect("seed");
    let c = client(&reg);
    let dummy = dummy_manifest("x", "n");

    // A zero-layer manifest whose config blob is missing from the repo: 400.
    let e = c
        .send(
            &c.put_manifest_request("fresh/repo", "x", MEDIA_OCI_MANIFEST, &dummy)
                .expect("req"),
        )
        .await
        .expect_err("missing config blob");
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("MANIFEST_BLOB_UNKNOWN"), "{e}");

    // POST ?digest= with a body is no monolithic upload on 2.8.2: 202, nothing stored.
    let post = RequestRecord::new(
        "POST",
        format!(
            "{}v2/fresh/repo/blobs/uploads/?digest={}",
            c.base_url(),
            EMPTY_DIGEST
        ),
    )
    .with_raw("application/octet-stream", EMPTY_JSON);
    assert_eq!(c.send(&post).await.expect("post").status, 202);
    assert!(
        !c.blob_exists("fresh/repo", EMPTY_DIGEST)
            .await
            .expect("HEAD")
    );

    let mark = reg.mark();
    let plan = c
        .ensure_blob_plan("fresh/repo", EMPTY_DIGEST, EMPTY_JSON)
        .await
        .expect("plan");
    assert_eq!(plan.len(), 2);
    assert!(reg.mutating_requests_since(mark).is_empty());
    let sent = c
        .ensure_blob("fresh/repo", EMPTY_DIGEST, EMPTY_JSON)
        .await
        .expect("ensure");
    assert_eq!(sent.len(), 2);
    assert!(
        c.blob_exists("fresh/repo", EMPTY_DIGEST)
            .await
            .expect("HEAD")
    );
    assert!(
        c.ensure_blob("fresh/repo", EMPTY_DIGEST, EMPTY_JSON)
            .await
            .expect("again")
            .is_empty()
    );
    let resp = c
        .send(
            &c.put_manifest_request("fresh/repo", "x", MEDIA_OCI_MANIFEST, &dummy)
                .expect("req"),
        )
        .await
        .expect("dummy accepted");
    assert_eq!(resp.status, 201);
    assert_eq!(
        strip_query(reg.mutating_requests_since(mark))
            .into_iter()
            .map(|(m, p)| (
                m,
                p.split("/uploads/").next().unwrap_or_default().to_string()
            ))
            .collect::<Vec<_>>(),
        [
            m("POST", "/v2/fresh/repo/blobs"),
            m("PUT", "/v2/fresh/repo/blobs"),
            m("PUT", "/v2/fresh/repo/manifests/x"),
        ]
    );
}

/// Two untags at once in a repository without the empty config blob: both upload it, and
/// distribution 2.8 may answer one dummy PUT with MANIFEST_BLOB_UNKNOWN while the other
/// upload settles. The client makes sure of the blob and retries; neither untag fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_untags_in_one_repository_both_succeed() {
    let r = registry().await;
    let c = client(&r);
    for i in 0..8 {
        let repo = format!("race/r{i}");
        let img = r.seed_image(&repo, "a").await.expect("seed");
        r.tag(&repo, "b", &img.digest).await.expect("tag");
        let (x, y) = tokio::join!(c.untag(&repo, "a", "n1"), c.untag(&repo, "b", "n2"));
        assert!(x.is_ok() && y.is_ok(), "{repo}: {x:?} / {y:?}");
        assert!(r.tags(&repo).await.unwrap_or_default().is_empty());
    }
}
