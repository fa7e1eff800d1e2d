//! `pypi.yank` end to end, through the real `recall` binary against the static fake PyPI:
//! PyPI has no yank API, so a live run hands each version to a person with the exact
//! manage-page link and waits; their "done" is verified through the JSON API and the Simple
//! API, and a release still (even partly) installable fails the step loudly. Nothing here
//! ever sends a mutating request to the index.

use serde_json::Value;

use crate::fakes::Fault;
use crate::fakes::pypi::FakePypi;
use crate::support::{Recall, Run, write_file};
use crate::support::{events, kinds};

const UPLOADED: &str = "2024-12-04T20:51:05.123456Z";
const V1: &str = "8.3.41";
const V2: &str = "8.3.42";

fn sdist(v: &str) -> String {
    format!("ultralytics-{v}.tar.gz")
}

fn wheel(v: &str) -> String {
    format!("ultralytics-{v}-py3-none-any.whl")
}

/// A fake PyPI with the two bad releases (two files each) and a good earlier one.
async fn pypi() -> FakePypi {
    let fake = FakePypi::start().await;
    fake.add_release("ultralytics", "8.3.40", &[&sdist("8.3.40")], UPLOADED);
    for v in [V1, V2] {
        fake.add_release("ultralytics", v, &[&sdist(v), &wheel(v)], UPLOADED);
    }
    fake
}

fn recall(fake: &FakePypi) -> Recall {
    Recall::new(&format!(
        "[pypi]\napi = \"{url}\"\nweb = \"{url}\"\ntimeout = \"2s\"\n\n[engine]\nreconcile_grace = \"200ms\"\n",
        url = fake.url()
    ))
}

fn link(fake: &FakePypi, v: &str) -> String {
    format!("{}/manage/project/ultralytics/release/{v}/", fake.url())
}

fn start(r: &Recall, playbook: &str, versions: &[&str], dry: bool) -> Run {
    let versions = format!(
        "versions={}",
        serde_json::to_string(versions).expect("versions")
    );
    // Not the display name: the link and the reads use the PEP 503 normal form.
    let mut args = vec![
        "incident",
        "start",
        "--playbook",
        playbook,
        "--param",
        "package=Ultralytics",
        "--param",
        &versions,
        "--json",
    ];
    if dry {
        args.extend(["--dry-run", "--auto-approve"]);
    }
    r.run(&args)
}

fn resolve(r: &Recall, id: &str, resolution: &str) -> Run {
    resolve_item(r, id, None, resolution)
}

fn resolve_item(r: &Recall, id: &str, item: Option<u32>, resolution: &str) -> Run {
    let item = item.map(|i| i.to_string());
    let mut args = vec!["incident", "resolve", id, "yank"];
    if let Some(i) = &item {
        args.extend(["--item", i.as_str()]);
    }
    args.extend([
        "--as",
        "alice",
        "--reason",
        "yanked in the web UI",
        "--resolution",
        resolution,
    ]);
    r.run(&args)
}

fn status(r: &Recall, id: &str) -> String {
    r.show(id)["incident"]["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// The `yank` tasks as stored: (status, outputs).
fn yank_tasks(r: &Recall, id: &str) -> Vec<(String, Value)> {
    r.show(id)["tasks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|t| t["step_id"] == "yank")
                .map(|t| {
                    (
                        t["status"].as_str().unwrap_or("").to_string(),
                        t["outputs"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearsal_reads_only_and_records_the_manage_links() {
    let fake = pypi().await;
    let r = recall(&fake);
    let run = start(&r, "pypi-compromised-release", &[V1, V2], true);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(fake.server().mutating_calls(), 0);
    let tl = r.timeline(&run.id());
    assert!(
        events(&tl, "human.requested").is_empty(),
        "{:?}",
        kinds(&tl)
    );
    let planned = events(&tl, "attempt.planned");
    let yanks: Vec<&&Value> = planned.iter().filter(|e| e["step"] == "yank").collect();
    assert_eq!(yanks.len(), 2, "{:?}", kinds(&tl));
    for v in [V1, V2] {
        let want = link(&fake, v);
        let e = yanks
            .iter()
            .find(|e| e["data"]["detail"]["link"] == want.as_str())
            .unwrap_or_else(|| panic!("no planned yank with {want}: {yanks:?}"));
        let summary = e["data"]["detail"]["summary"].as_str().unwrap_or("");
        assert!(
            summary.contains("would ask a person to yank") && summary.contains(&want),
            "{summary}"
        );
        assert_eq!(e["data"]["detail"]["findings"], serde_json::json!([]));
    }
    for v in [V1, V2] {
        let rel = fake.release("ultralytics", v).expect("release");
        assert!(!rel.yanked, "a rehearsal changes nothing");
    }

    // The bundled scenario lists two releases this index lacks: blockers, not errors.
    let run = r.rehearse("ultralytics-2024");
    let tl = r.timeline(&run.id());
    let findings = events(&tl, "attempt.planned")
        .iter()
        .map(|e| e["data"]["detail"]["findings"].to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        findings.contains("blocker: ultralytics 8.3.45 is not on"),
        "{findings}"
    );
    assert_eq!(fake.server().mutating_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_yank_is_asked_per_version_then_verified() {
    let fake = pypi().await;
    let r = recall(&fake);
    let run = start(&r, "pypi-compromised-release", &[V1, V2], false);
    assert_eq!(run.code, Some(3), "waits for a person: {run:?}");
    let id = run.id();
    let tl = r.timeline(&id);
    let asked = events(&tl, "human.requested");
    assert_eq!(asked.len(), 2, "{:?}", kinds(&tl));
    for v in [V1, V2] {
        let want = link(&fake, v);
        let e = asked
            .iter()
            .find(|e| e["data"]["links"] == serde_json::json!([want]))
            .unwrap_or_else(|| panic!("no request with exactly [{want}]: {asked:?}"));
        let text = e["data"]["instructions"].as_str().unwrap_or("");
        assert!(
            text.contains(&format!("Yank Ultralytics {v} on PyPI: open {want}"))
                && text.contains(&format!(
                    "recall incident resolve {id} yank --item {}",
                    e["item"]
                ))
                && text.contains("--resolution done")
                && text.contains("compromised release; do not install")
                && text.contains(&format!("{} (installable)", wheel(v))),
            "{text}"
        );
    }
    let tasks = yank_tasks(&r, &id);
    assert!(
        tasks.iter().all(|(s, _)| s == "awaiting_human"),
        "{tasks:?}"
    );

    // The person yanks both in the web UI, then says so.
    for v in [V1, V2] {
        fake.yank_release("ultralytics", v, Some("malware (cryptominer)"));
    }
    let done = resolve(&r, &id, "done");
    assert_eq!(done.code, Some(0), "{done:?}");
    let tl = r.timeline(&id);
    let verified = events(&tl, "human.verified");
    assert_eq!(verified.len(), 2, "{:?}", kinds(&tl));
    for e in &verified {
        let ev = &e["data"]["evidence"];
        assert_eq!(ev["json_api_all_files_yanked"], true, "{ev}");
        assert_eq!(ev["simple_api_all_files_yanked"], true, "{ev}");
        assert_eq!(ev["reason"], "malware (cryptominer)", "{ev}");
    }
    assert!(events(&tl, "human.verify_failed").is_empty());
    assert_eq!(status(&r, &id), "succeeded");
    for (s, out) in yank_tasks(&r, &id) {
        assert_eq!(s, "succeeded");
        assert_eq!(out["yanked"], true, "{out}");
        assert_eq!(out["files"].as_array().map(Vec::len), Some(2), "{out}");
    }
    assert_eq!(fake.server().mutating_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_version_is_verified_on_its_own() {
    let fake = pypi().await;
    let r = recall(&fake);
    let run = start(&r, "pypi-compromised-release", &[V1, V2], false);
    assert_eq!(run.code, Some(3), "{run:?}");
    let id = run.id();
    // Item 0 is V1: yanked and verified; V2 keeps waiting.
    fake.yank_release("ultralytics", V1, Some("malware"));
    let one = resolve_item(&r, &id, Some(0), "done");
    assert_eq!(one.code, Some(3), "V2 still waits: {one:?}");
    let tl = r.timeline(&id);
    let verified = events(&tl, "human.verified");
    assert_eq!(verified.len(), 1, "{:?}", kinds(&tl));
    assert_eq!(verified[0]["item"], 0);
    // V2 marked done without a yank: only that item fails, loudly.
    let two = resolve_item(&r, &id, Some(1), "done");
    assert_eq!(two.code, Some(1), "{two:?}");
    let tl = r.timeline(&id);
    let failed = events(&tl, "human.verify_failed");
    assert_eq!(failed.len(), 1, "{:?}", kinds(&tl));
    assert_eq!(failed[0]["item"], 1);
    let tasks = yank_tasks(&r, &id);
    assert_eq!(tasks[0].0, "succeeded", "{tasks:?}");
    assert_eq!(tasks[1].0, "failed", "{tasks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_without_a_yank_fails_loudly() {
    let fake = pypi().await;
    let r = recall(&fake);
    let run = start(&r, "pypi-compromised-release", &[V1], false);
    assert_eq!(run.code, Some(3), "{run:?}");
    let id = run.id();
    let done = resolve(&r, &id, "done");
    assert_eq!(done.code, Some(1), "a false done fails: {done:?}");
    let tl = r.timeline(&id);
    let k = kinds(&tl);
    let wait = k.iter().position(|x| x == "reconcile.wait");
    let failed = k.iter().position(|x| x == "human.verify_failed");
    assert!(
        wait.is_some() && failed.is_some() && wait < failed,
        "one grace period, then the verdict: {k:?}"
    );
    let ev = &events(&tl, "human.verify_failed")[0]["data"]["evidence"];
    assert_eq!(
        ev["still_installable"],
        serde_json::json!([sdist(V1), wheel(V1)]),
        "{ev}"
    );
    assert!(events(&tl, "human.verified").is_empty());
    assert_eq!(status(&r, &id), "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_yank_is_not_a_yank() {
    let fake = pypi().await;
    let r = recall(&fake);
    let run = start(&r, "pypi-compromised-release", &[V1], false);
    assert_eq!(run.code, Some(3), "{run:?}");
    let id = run.id();
    fake.yank_file("ultralytics", V1, &sdist(V1), Some("malware"));
    let done = resolve(&r, &id, "done");
    assert_eq!(done.code, Some(1), "{done:?}");
    let tl = r.timeline(&id);
    let failed = events(&tl, "human.verify_failed");
    assert_eq!(failed.len(), 1, "{:?}", kinds(&tl));
    let ev = &failed[0]["data"]["evidence"];
    assert_eq!(
        ev["still_installable"],
        serde_json::json!([wheel(V1)]),
        "{ev}"
    );
    assert_eq!(ev["json_api_all_files_yanked"], false, "{ev}");
    assert_eq!(status(&r, &id), "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_already_yanked_release_needs_nobody() {
    let fake = pypi().await;
    fake.yank_release("ultralytics", V1, Some("cryptominer"));
    let r = recall(&fake);
    let run = start(&r, "pypi-compromised-release", &[V1], false);
    assert_eq!(run.code, Some(0), "{run:?}");
    let id = run.id();
    let tl = r.timeline(&id);
    assert!(
        events(&tl, "human.requested").is_empty(),
        "{:?}",
        kinds(&tl)
    );
    let ok = events(&tl, "attempt.succeeded");
    let yank = ok
        .iter()
        .find(|e| e["step"] == "yank")
        .unwrap_or_else(|| panic!("{:?}", kinds(&tl)));
    let summary = yank["summary"].to_string();
    assert!(summary.contains("already yanked"), "{yank}");
    let tasks = yank_tasks(&r, &id);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].1["yanked"], true);
    assert_eq!(tasks[0].1["reason"], "cryptominer");
    assert_eq!(status(&r, &id), "succeeded");
}

/// A fast retry policy, to see what is retried and what is not.
const FAST: &str = r#"name: pypi-yank-fast
params:
  package: { type: string }
  versions: { type: list }
steps:
  - id: yank
    uses: pypi.yank
    for_each: ${{ params.versions }}
    with:
      project: ${{ params.package }}
      version: ${{ item }}
      reason: compromised
    retry: { attempts: 3, backoff: fixed, initial: 100ms }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_reads_are_retried_malformed_and_unknown_are_not() {
    let fake = pypi().await;
    let r = recall(&fake);
    let pb = write_file(r.dir.path(), "fast.yaml", FAST.as_bytes());

    // 503 once: retried, then the person is asked.
    fake.server().inject(
        "/pypi/*",
        Fault::Status {
            code: 503,
            retry_after: None,
            body: "busy".into(),
        },
    );
    let run = start(&r, &pb, &[V1], false);
    assert_eq!(run.code, Some(3), "{run:?}");
    let tl = r.timeline(&run.id());
    let failed = events(&tl, "attempt.failed");
    assert_eq!(failed.len(), 1, "{:?}", kinds(&tl));
    assert_eq!(failed[0]["data"]["transient"], true);
    assert_eq!(events(&tl, "human.requested").len(), 1, "{:?}", kinds(&tl));

    // A garbled answer: permanent, one attempt only.
    fake.server()
        .inject("/pypi/*", crate::fakes::Fault::Malformed);
    let run = start(&r, &pb, &[V1], false);
    assert_eq!(run.code, Some(1), "{run:?}");
    let tl = r.timeline(&run.id());
    let failed = events(&tl, "attempt.failed");
    assert_eq!(failed.len(), 1, "no retry: {:?}", kinds(&tl));
    assert_eq!(failed[0]["data"]["transient"], false);
    assert!(events(&tl, "human.requested").is_empty());

    // A release the index doesn't have: permanent, named.
    let run = start(&r, &pb, &["9.9.9"], false);
    assert_eq!(run.code, Some(1), "{run:?}");
    let tl = r.timeline(&run.id());
    let failed = events(&tl, "attempt.failed");
    assert_eq!(failed.len(), 1, "{:?}", kinds(&tl));
    let err = failed[0]["data"]["error"].as_str().unwrap_or("");
    assert!(
        err.contains(&format!("Ultralytics 9.9.9 is not on {}", fake.url())),
        "{err}"
    );
    assert_eq!(fake.server().mutating_calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_index_keeps_the_person_waiting_and_retry_rechecks() {
    let fake = pypi().await;
    let r = recall(&fake);
    let pb = write_file(r.dir.path(), "fast.yaml", FAST.as_bytes());
    let run = start(&r, &pb, &[V1], false);
    assert_eq!(run.code, Some(3), "{run:?}");
    let id = run.id();

    // The verification read fails: not a verdict; the task waits for the person again.
    fake.yank_release("ultralytics", V1, None);
    fake.server().inject(
        "/pypi/*",
        Fault::Status {
            code: 502,
            retry_after: None,
            body: "bad gateway".into(),
        },
    );
    let done = resolve(&r, &id, "done");
    assert_eq!(done.code, Some(3), "{done:?}");
    let tl = r.timeline(&id);
    let unknown = events(&tl, "human.verify_unknown");
    assert_eq!(unknown.len(), 1, "{:?}", kinds(&tl));
    assert!(
        unknown[0]["data"]["reason"]
            .as_str()
            .is_some_and(|s| s.contains("502")),
        "{}",
        unknown[0]
    );
    assert!(events(&tl, "human.verify_failed").is_empty());

    // `retry` re-checks: the release is yanked by now, so nobody is asked again.
    let again = resolve(&r, &id, "retry");
    assert_eq!(again.code, Some(0), "{again:?}");
    let tl = r.timeline(&id);
    assert_eq!(events(&tl, "human.requested").len(), 1, "{:?}", kinds(&tl));
    assert_eq!(status(&r, &id), "succeeded");
}

/// A failed *read* of `pypi.yank` (it sends nothing itself) is an unambiguous transient
/// failure: retried per the step's policy, never probed and paused as "effect unknown".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_flaky_reads_are_retried_not_paused() {
    let fake = pypi().await;
    let r = recall(&fake);
    let pb = write_file(r.dir.path(), "fast.yaml", FAST.as_bytes());
    for _ in 0..2 {
        fake.server().inject(
            "/pypi/*",
            Fault::Status {
                code: 503,
                retry_after: None,
                body: "busy".into(),
            },
        );
    }
    let run = start(&r, &pb, &[V1], false);
    assert_eq!(run.code, Some(3), "{run:?}");
    let tl = r.timeline(&run.id());
    assert!(
        events(&tl, "reconcile.unknown").is_empty(),
        "{:?}",
        kinds(&tl)
    );
    assert_eq!(events(&tl, "human.requested").len(), 1, "{:?}", kinds(&tl));
}
