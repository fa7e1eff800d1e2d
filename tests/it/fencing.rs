//! Fencing across processes on one Postgres database: a `recall` process paused (SIGSTOP)
//! right after its yank was answered, for longer than its lease, is replaced by another
//! process that reconciles the attempt through the probe and finishes the incident. When the
//! paused process wakes, it finds the lease epoch moved (at its renewal, or as a fenced
//! commit — store_suite proves the commit refusal directly), stops, and nothing it computed
//! is recorded; the registry saw exactly one yank.

use std::time::{Duration, Instant};

use crate::fakes::crates::FakeCrates;
use crate::support::{Recall, write_file};

const TOKEN: &str = "cioFENCEfenceFENCEfenceFENCE0001";

const PLAYBOOK: &str = r#"name: fence
steps:
  - id: yank
    uses: crates.yank
    with: { crate: fenced, version: 1.0.0, message: compromised }
    retry: { attempts: 3, backoff: fixed, initial: 100ms }
    timeout: 20s
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_process_that_lost_its_lease_cannot_record_its_result() {
    let reg = FakeCrates::start().await;
    let owner = reg.add_user("alice");
    reg.add_token(owner, "recall", TOKEN);
    reg.add_crate("fenced", owner);
    reg.add_version("fenced", "1.0.0", "2024-03-01T12:34:56.789012Z");
    let db = crate::support::postgres::database().await;
    let mut r = Recall::new(&format!(
        "[crates]\napi = \"{}\"\ntoken_env = \"RECALL_TEST_CRATES_TOKEN\"\ntimeout = \"5s\"\n\n[engine]\nlease_ttl = \"2s\"\nreconcile_grace = \"300ms\"\n",
        reg.url()
    ));
    r.db = db.clone();
    r.env
        .push(("RECALL_TEST_CRATES_TOKEN".into(), TOKEN.into()));
    let pb = write_file(r.dir.path(), "fence.yaml", PLAYBOOK.as_bytes());

    // A: pauses itself right after the yank was answered, before recording the result.
    let mut a = r.cmd(&["incident", "start", "--playbook", &pb, "--json"]);
    a.env("RECALL_FAILPOINT", "after_call:1:stop")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let a = a.spawn().expect("spawn A");
    let pid = a.id() as i32;
    // Wait until A is stopped (state T in /proc).
    let t0 = Instant::now();
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.split_whitespace().nth(2) == Some("T") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "A never reached the failpoint"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        reg.is_yanked("fenced", "1.0.0"),
        Some(true),
        "A's yank landed"
    );
    // The lease (2 s) runs out while A is paused; B takes over. A's pid is alive, so only
    // expiry frees the lease — exactly the partitioned/paused case.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let b = r.run(&["incident", "resume"]);
    assert_eq!(b.code, Some(0), "B: {b:?}");
    let list = r.run(&["incident", "list", "--json"]).json();
    let id = list[0]["id"].as_str().expect("id").to_string();
    assert_eq!(list[0]["status"], "succeeded", "{list}");
    let before = r.run(&["timeline", &id, "--format", "json"]).json();
    let n_before = before["events"].as_array().map(Vec::len).unwrap_or(0);

    // Wake A: its result is fenced, it stops without recording anything.
    // SAFETY: kill(2) to a child we spawned.
    unsafe {
        libc::kill(pid, libc::SIGCONT);
    }
    let out = a.wait_with_output().expect("A exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        // Whichever comes first: the lease renewal (epoch moved) or the fenced commit.
        stderr.contains("lease taken over by another process") || stderr.contains("lost the lease"),
        "A noticed it was fenced: {stderr}"
    );
    let after = r.run(&["timeline", &id, "--format", "json"]).json();
    assert_eq!(
        after["events"].as_array().map(Vec::len).unwrap_or(0),
        n_before,
        "nothing of A's stale result was recorded"
    );
    let kinds: Vec<String> = after["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        kinds.iter().any(|k| k == "reconcile.done"),
        "B reconciled through the probe: {kinds:?}"
    );
    assert!(
        !kinds.iter().any(|k| k == "attempt.succeeded"),
        "no success from A: {kinds:?}"
    );
    let yanks = reg
        .server()
        .requests()
        .iter()
        .filter(|q| q.is_mutating() && q.path().contains("/fenced/"))
        .count();
    assert_eq!(yanks, 1, "one yank at the registry");
    assert_eq!(r.run(&["audit", "verify", &id]).code, Some(0));
}
