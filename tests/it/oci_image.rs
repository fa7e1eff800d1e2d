//! The `image-leaked-secret` playbook against a real distribution 2.8.2 registry: the
//! rehearsal sends no PUT/POST/DELETE (from the registry's own access log); the live run
//! quarantine-tags the digest first, pulls exactly the release tags, leaves the digest,
//! the quarantine tag and every other tag alone, and skips the admission step with its
//! reason while no cluster is configured. Then `oci.delete_manifest` behind the gate:
//! refused without a publish time, refused by a retention class on `v*` tags, and sent
//! only after an authorised approval when both allow it.

use serde_json::Value;

use crate::support::events;
use crate::support::registry::{Registry, SeededImage};
use crate::support::{Recall, write_file};

async fn registry() -> Registry {
    match Registry::start().await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn recall(reg: &Registry, extra: &str) -> Recall {
    Recall::new(&format!(
        "[oci]\ninsecure = [\"{}\"]\ntimeout = \"10s\"\n{extra}\n[groups]\nrelease-admins = [\"alice\", \"bob\"]\n",
        reg.host()
    ))
}

async fn seed(reg: &Registry, repo: &str, tag: &str) -> SeededImage {
    reg.seed_image(repo, tag).await.expect("seed image")
}

fn start_image(r: &Recall, image: &str, digest: &str, dry: bool) -> crate::support::Run {
    start_image_env(r, image, digest, dry, &[])
}

fn start_image_env(
    r: &Recall,
    image: &str,
    digest: &str,
    dry: bool,
    env: &[(&str, &str)],
) -> crate::support::Run {
    let i = format!("image={image}");
    let d = format!("digest={digest}");
    let mut args = vec![
        "incident",
        "start",
        "--playbook",
        "image-leaked-secret",
        "--json",
        "--param",
        &i,
        "--param",
        &d,
        "--param",
        r#"tags=["2.4.0","latest"]"#,
    ];
    if dry {
        args.extend(["--dry-run", "--auto-approve"]);
    }
    r.run_env(&args, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_leaked_secret_contains_without_losing_evidence() {
    let reg = registry().await;
    let repo = "acme/api";
    let bad = seed(&reg, repo, "2.4.0").await;
    reg.tag(repo, "latest", &bad.digest)
        .await
        .expect("tag latest");
    let good = seed(&reg, repo, "2.3.0").await;
    let image = format!("{}/{repo}", reg.host());
    let r = recall(&reg, "");

    // Rehearsal: reads only.
    let mark = reg.mark();
    let run = start_image(&r, &image, &bad.digest, true);
    assert_eq!(run.code, Some(0), "{run:?}");
    let sent = reg.mutating_requests_since(mark);
    assert!(sent.is_empty(), "a rehearsal sent {sent:?}");
    assert!(
        !reg.requests_since(mark).is_empty(),
        "the rehearsal reads real state"
    );
    let tl = r.timeline(&run.id());
    let planned = events(&tl, "attempt.planned");
    let would: String = planned
        .iter()
        .map(|e| e["data"]["detail"]["requests"].to_string())
        .collect();
    assert!(would.contains("quarantine-"), "{would}");
    assert!(
        would.contains("/manifests/2.4.0") && would.contains("/manifests/latest"),
        "{would}"
    );
    let mut tags = reg.tags(repo).await.expect("tags");
    tags.sort();
    assert_eq!(
        tags,
        ["2.3.0", "2.4.0", "latest"],
        "rehearsal changed nothing"
    );

    // Live.
    let mark = reg.mark();
    let run = start_image(&r, &image, &bad.digest, false);
    assert_eq!(run.code, Some(0), "{run:?}");
    let id = run.id();
    let quarantine = format!("quarantine-{id}");
    let mut tags = reg.tags(repo).await.expect("tags");
    tags.sort();
    assert_eq!(
        tags,
        ["2.3.0".to_string(), quarantine.clone()],
        "release tags pulled, others kept"
    );
    let (st, _, _) = reg.get_manifest(repo, &bad.digest).await.expect("get");
    assert_eq!(st, 200, "the bad digest still resolves (evidence)");
    let (st, _, raw) = reg.get_manifest(repo, &quarantine).await.expect("get");
    assert_eq!(
        (st, raw),
        (200, bad.raw.clone()),
        "quarantine tag holds the exact bytes"
    );
    let (st, _, raw) = reg.get_manifest(repo, "2.3.0").await.expect("get");
    assert_eq!((st, raw), (200, good.raw.clone()), "other tags untouched");

    let sent = reg.mutating_requests_since(mark);
    let q_put = sent
        .iter()
        .position(|(m, p)| m == "PUT" && p.ends_with(&format!("/manifests/{quarantine}")))
        .expect("quarantine PUT");
    let first_untag = sent
        .iter()
        .position(|(m, p)| {
            m == "DELETE" && p.ends_with("/manifests/2.4.0") || p.ends_with("/manifests/latest")
        })
        .expect("untag");
    assert!(q_put < first_untag, "quarantine before any untag: {sent:?}");
    assert!(
        !sent
            .iter()
            .any(|(m, p)| m == "DELETE" && p.ends_with(&bad.digest)),
        "the bad digest itself is never deleted: {sent:?}"
    );

    let tl = r.timeline(&id);
    let skipped = events(&tl, "step.skipped");
    assert!(
        skipped.iter().any(|e| e["step"] == "deny"
            && e["summary"]
                .as_str()
                .unwrap_or("")
                .contains("no Kubernetes cluster")),
        "{skipped:?}"
    );
    let untagged: Vec<&Value> = events(&tl, "attempt.succeeded")
        .into_iter()
        .filter(|e| e["step"] == "untag")
        .collect();
    assert_eq!(untagged.len(), 2);
    assert!(
        untagged
            .iter()
            .all(|e| e["data"]["outputs"]["method"] == "dummy_overwrite"),
        "distribution 2.8 refuses tag DELETE: {untagged:?}"
    );

    // Running it again is a no-op: tags already gone, quarantine tag of that incident kept.
    let mark = reg.mark();
    let again = start_image(&r, &image, &bad.digest, false);
    assert_eq!(again.code, Some(0), "{again:?}");
    let sent = reg.mutating_requests_since(mark);
    assert_eq!(
        sent.iter().filter(|(m, _)| m == "DELETE").count(),
        0,
        "nothing left to untag: {sent:?}"
    );
}

const DELETE_PLAYBOOK: &str = r#"name: delete-digest
params:
  image: { type: string }
  digest: { type: string }
steps:
  - id: delete
    uses: oci.delete_manifest
    with:
      image: ${{ params.image }}
      digest: ${{ params.digest }}
    approval: { count: 1, from: [group:release-admins] }
"#;

fn start_delete(r: &Recall, image: &str, digest: &str) -> crate::support::Run {
    let pb = write_file(r.dir.path(), "delete.yaml", DELETE_PLAYBOOK.as_bytes());
    let i = format!("image={image}");
    let d = format!("digest={digest}");
    r.run(&[
        "incident",
        "start",
        "--playbook",
        &pb,
        "--json",
        "--param",
        &i,
        "--param",
        &d,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_by_digest_passes_the_gate_or_is_refused_with_the_reason() {
    let reg = registry().await;
    let repo = "acme/worker";
    let a = seed(&reg, repo, "tmp-build").await;
    let b = seed(&reg, repo, "v1.0.0").await;
    let image = format!("{}/{repo}", reg.host());

    // Default: a registry has no publish time, so the gate refuses.
    let r = recall(&reg, "");
    let mark = reg.mark();
    let run = start_delete(&r, &image, &a.digest);
    assert_eq!(run.code, Some(3), "waits for approval: {run:?}");
    let id = run.id();
    let ok = r.run(&[
        "approve",
        &id,
        "delete",
        "--as",
        "alice",
        "--reason",
        "leaked key",
    ]);
    assert_eq!(ok.code, Some(1), "{ok:?}");
    assert!(reg.mutating_requests_since(mark).is_empty());
    let tl = r.timeline(&id);
    let refused = events(&tl, "gate.refused");
    assert!(
        refused[0]["summary"]
            .as_str()
            .unwrap_or("")
            .contains("no publish time"),
        "{refused:?}"
    );

    // Window exempted by configuration, but a retention class on release tags.
    let r = recall(
        &reg,
        "publish_time = \"allow\"\n\n[[gate.retention]]\nname = \"release-tags\"\ntags = [\"v*\"]\n",
    );
    let mark = reg.mark();
    let run = start_delete(&r, &image, &b.digest);
    let id = run.id();
    let res = r.run(&["approve", &id, "delete", "--as", "bob", "--reason", "x"]);
    assert_eq!(res.code, Some(1), "{res:?}");
    assert!(reg.mutating_requests_since(mark).is_empty());
    let tl = r.timeline(&id);
    let s = events(&tl, "gate.refused")[0]["summary"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(s.contains("release-tags") && s.contains(":v1.0.0"), "{s}");

    // Both allow it: deleted after the approval, exactly one DELETE by digest.
    let run = start_delete(&r, &image, &a.digest);
    let id = run.id();
    let mark = reg.mark();
    let res = r.run(&[
        "approve",
        &id,
        "delete",
        "--as",
        "alice",
        "--reason",
        "leaked key",
    ]);
    assert_eq!(res.code, Some(0), "{res:?}");
    let sent = reg.mutating_requests_since(mark);
    assert_eq!(
        sent,
        vec![(
            "DELETE".to_string(),
            format!("/v2/{repo}/manifests/{}", a.digest)
        )]
    );
    let (st, _, _) = reg.get_manifest(repo, &a.digest).await.expect("get");
    assert_eq!(st, 404);
    let (st, _, _) = reg.get_manifest(repo, "v1.0.0").await.expect("get");
    assert_eq!(st, 200, "the other image is untouched");
    let tl = r.timeline(&id);
    let passed = events(&tl, "gate.passed");
    assert_eq!(passed[0]["data"]["checks"]["window"]["exempt"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_around_registry_mutations_then_resume_repeats_nothing() {
    let reg = registry().await;
    let r = recall(&reg, "");
    for (point, nth) in [
        ("after_intent", 1),
        ("after_call", 1),
        ("after_call", 2),
        ("after_result", 2),
    ] {
        let repo = format!("crash/{}-{nth}", point.replace('_', "-"));
        let bad = seed(&reg, &repo, "2.4.0").await;
        reg.tag(&repo, "latest", &bad.digest).await.expect("tag");
        seed(&reg, &repo, "2.3.0").await;
        let image = format!("{}/{repo}", reg.host());
        let mark = reg.mark();
        let fp = format!("{point}:{nth}");
        let run = start_image_env(&r, &image, &bad.digest, false, &[("RECALL_FAILPOINT", &fp)]);
        assert_eq!(run.signal, Some(9), "{point}:{nth}: {run:?}");
        let res = r.run(&["incident", "resume"]);
        if res.code != Some(0) {
            let id = res.stdout.lines().next().unwrap_or("").to_string();
            let tl = r.run(&["timeline", &id, "--format", "md"]);
            panic!("{point}:{nth} resume: {res:?}\n{}", tl.stdout);
        }
        let mut tags = reg.tags(&repo).await.expect("tags");
        tags.sort();
        if tags.len() != 2 {
            let list = r.run(&["incident", "list", "--json"]).json();
            let id = list
                .as_array()
                .and_then(|a| a.first())
                .map(|i| i["id"].as_str().unwrap_or("").to_string())
                .unwrap_or_default();
            let tl = r.run(&["timeline", &id, "--format", "md"]);
            panic!("{point}:{nth}: {tags:?}\n{}", tl.stdout);
        }
        assert_eq!(tags[0], "2.3.0");
        assert!(tags[1].starts_with("quarantine-"), "{tags:?}");
        let sent = reg.mutating_requests_since(mark);
        let puts_to = |t: &str| {
            sent.iter()
                .filter(|(m, p)| m == "PUT" && p.ends_with(&format!("/manifests/{t}")))
                .count()
        };
        assert_eq!(
            puts_to(&tags[1]),
            1,
            "{point}:{nth}: quarantine once: {sent:?}"
        );
        // One dummy per tag, or two when the kill cut the dummy's DELETE off half-way:
        // distribution then leaves the tag listed but unresolvable, and the resend
        // re-points it at the dummy and deletes it again (the only way to clear it). A PUT
        // refused with MANIFEST_BLOB_UNKNOWN while a concurrent blob upload settles is
        // retried (refused requests have no effect), hence the headroom.
        for t in ["2.4.0", "latest"] {
            let n = puts_to(t);
            assert!(
                (1..=4).contains(&n),
                "{point}:{nth}: {n} dummy PUTs to {t}: {sent:?}"
            );
        }
        assert!(
            !sent
                .iter()
                .any(|(m, p)| m == "DELETE" && p.ends_with(&bad.digest)),
            "{point}:{nth}: the bad digest itself was deleted: {sent:?}"
        );
        let (st, _, _) = reg.get_manifest(&repo, &bad.digest).await.expect("get");
        assert_eq!(st, 200, "{point}:{nth}: evidence kept");
    }
}
