//! `npm.unpublish` behind the deletion gate, against a real Verdaccio 6.8.0: a rehearsal
//! evaluates the gate and sends nothing; a live run waits for an authorised approver, reads
//! the registry's own `time[version]`, then removes exactly that version (and moves
//! `latest`); a version published more than 72 hours ago, or in a compliance class, is
//! refused with the reason in the timeline and nothing sent.

use serde_json::Value;

use crate::support::kinds;
use crate::support::verdaccio::{Verdaccio, wire_name};
use crate::support::{Recall, write_file};

const PLAYBOOK: &str = r#"name: npm-unpublish-test
params:
  package: { type: string }
  version: { type: string }
steps:
  - id: unpublish
    uses: npm.unpublish
    with:
      package: ${{ params.package }}
      version: ${{ params.version }}
      reason: the tarball carries a credential stealer
    approval: { count: 1, from: [group:release-admins] }
"#;

fn recall(v: &Verdaccio) -> Recall {
    let mut r = Recall::new(&format!(
        r#"[npm]
registry = "{}"
token_env = "RECALL_TEST_NPM_TOKEN"
timeout = "20s"

[groups]
release-admins = ["alice", "bob"]

[gate]
approvers = ["group:release-admins"]

[[gate.retention]]
name = "sox-ledger"
packages = ["npm:sox-*"]
"#,
        v.url
    ));
    r.env
        .push(("RECALL_TEST_NPM_TOKEN".into(), v.admin_token.clone()));
    r
}

async fn versions(v: &Verdaccio, name: &str) -> Vec<String> {
    let pk = v
        .get_json(&v.admin_token, &wire_name(name))
        .await
        .expect("packument");
    let mut out: Vec<String> = pk["versions"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Backdate `time[version]` in Verdaccio's own storage (the registry then serves it).
fn backdate(v: &Verdaccio, name: &str, version: &str, iso: &str) {
    let path = v.dir.path().join("storage").join(name).join("package.json");
    let text = std::fs::read_to_string(&path).expect("stored packument");
    let mut pk: Value = serde_json::from_str(&text).expect("json");
    pk["time"][version] = Value::String(iso.into());
    std::fs::write(&path, serde_json::to_vec(&pk).expect("ser")).expect("write");
}

fn event<'a>(tl: &'a Value, kind: &str) -> Option<&'a Value> {
    tl["events"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["kind"] == kind))
}

fn start(r: &Recall, pb: &str, package: &str, version: &str, dry: bool) -> crate::support::Run {
    let p = format!("package={package}");
    let ver = format!("version={version}");
    let mut args = vec![
        "incident",
        "start",
        "--playbook",
        pb,
        "--json",
        "--param",
        &p,
        "--param",
        &ver,
    ];
    if dry {
        args.extend(["--dry-run", "--auto-approve"]);
    }
    r.run(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_is_gated_by_window_approval_and_retention() {
    let v = Verdaccio::start().await;
    let t = v.admin_token.clone();
    for (name, vers) in [
        ("evil-pkg", ["1.0.0", "1.0.1"]),
        ("old-pkg", ["2.0.0", "2.0.1"]),
        ("sox-ledger", ["3.0.0", "3.0.1"]),
    ] {
        for ver in vers {
            v.publish(&t, name, ver).await;
        }
    }
    backdate(&v, "old-pkg", "2.0.1", "2020-01-01T00:00:00.000Z");
    let r = recall(&v);
    let pb = write_file(r.dir.path(), "unpublish.yaml", PLAYBOOK.as_bytes());

    // Rehearsal: the gate is evaluated on the registry's real publish time; nothing sent.
    let mark = v.mark();
    let run = start(&r, &pb, "evil-pkg", "1.0.1", true);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(v.mutating_requests_since(mark).is_empty());
    let tl = r.timeline(&run.id());
    let passed = event(&tl, "gate.passed").expect("gate verdict recorded in the rehearsal");
    assert!(
        passed["data"]["checks"]["window"]["published_at"].is_i64(),
        "{passed}"
    );
    let planned = event(&tl, "attempt.planned").expect("planned");
    let reqs = planned["data"]["detail"]["requests"].to_string();
    assert!(
        reqs.contains("/evil-pkg/-rev/") && reqs.contains("DELETE"),
        "{reqs}"
    );
    assert_eq!(versions(&v, "evil-pkg").await, ["1.0.0", "1.0.1"]);

    // Live: waits for an authorised approver (not the starter, not an outsider).
    let mark = v.mark();
    let run = start(&r, &pb, "evil-pkg", "1.0.1", false);
    assert_eq!(run.code, Some(3), "waits for approval: {run:?}");
    let id = run.id();
    assert!(
        v.mutating_requests_since(mark).is_empty(),
        "nothing before approval"
    );
    let a = r.run(&[
        "approve",
        &id,
        "unpublish",
        "--as",
        "mallory",
        "--reason",
        "x",
    ]);
    assert_eq!(a.code, Some(3), "{a:?}");
    assert!(v.mutating_requests_since(mark).is_empty());
    let a = r.run(&[
        "approve",
        &id,
        "unpublish",
        "--as",
        "alice",
        "--reason",
        "malware",
    ]);
    assert_eq!(a.code, Some(0), "{a:?}");
    assert_eq!(versions(&v, "evil-pkg").await, ["1.0.0"]);
    let pk = v
        .get_json(&t, "evil-pkg")
        .await
        .expect("packument after unpublish");
    assert_eq!(pk["dist-tags"]["latest"], "1.0.0", "latest moved off");
    let sent = v.mutating_requests_since(mark);
    assert_eq!(sent.len(), 2, "one PUT and one tarball DELETE: {sent:?}");
    assert!(
        sent[0].0 == "PUT" && sent[0].1.starts_with("/evil-pkg/-rev/"),
        "{sent:?}"
    );
    assert!(
        sent[1].0 == "DELETE" && sent[1].1.contains("evil-pkg-1.0.1.tgz"),
        "{sent:?}"
    );
    let tl = r.timeline(&id);
    let k = kinds(&tl);
    let gate_at = k.iter().position(|x| x == "gate.passed").expect("gate");
    let done_at = k
        .iter()
        .position(|x| x == "attempt.succeeded")
        .expect("done");
    assert!(gate_at < done_at, "{k:?}");

    // Outside the window: refused at execution with the reason, nothing sent.
    let mark = v.mark();
    let run = start(&r, &pb, "old-pkg", "2.0.1", false);
    let id = run.id();
    let a = r.run(&[
        "approve",
        &id,
        "unpublish",
        "--as",
        "bob",
        "--reason",
        "malware",
    ]);
    assert_eq!(a.code, Some(1), "the incident fails: {a:?}");
    assert!(v.mutating_requests_since(mark).is_empty());
    assert_eq!(versions(&v, "old-pkg").await, ["2.0.0", "2.0.1"]);
    let tl = r.timeline(&id);
    let refused = event(&tl, "gate.refused").expect("refusal recorded");
    let s = refused["summary"].as_str().unwrap_or("");
    assert!(s.contains("window") && s.contains("72h"), "{s}");
    let pm = r.run(&["postmortem", &id]);
    assert!(
        pm.stdout.contains("refused by the deletion gate") && pm.stdout.contains("72h"),
        "the postmortem says what was deliberately not done:\n{}",
        pm.stdout
    );

    // A compliance class: refused outright, naming the rule.
    let mark = v.mark();
    let run = start(&r, &pb, "sox-ledger", "3.0.1", false);
    let id = run.id();
    let a = r.run(&["approve", &id, "unpublish", "--as", "bob", "--reason", "x"]);
    assert_eq!(a.code, Some(1), "{a:?}");
    assert!(v.mutating_requests_since(mark).is_empty());
    let tl = r.timeline(&id);
    let s = event(&tl, "gate.refused").expect("refused")["summary"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(s.contains("sox-ledger") && s.contains("retention"), "{s}");
    assert_eq!(versions(&v, "sox-ledger").await, ["3.0.0", "3.0.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_unpublish_is_reconciled_not_repeated() {
    let v = Verdaccio::start().await;
    let t = v.admin_token.clone();
    for ver in ["1.0.0", "1.0.1"] {
        v.publish(&t, "crashy", ver).await;
    }
    let r = recall(&v);
    let pb = write_file(r.dir.path(), "unpublish.yaml", PLAYBOOK.as_bytes());
    let run = start(&r, &pb, "crashy", "1.0.1", false);
    assert_eq!(run.code, Some(3), "{run:?}");
    let id = run.id();
    let mark = v.mark();
    let a = r.run_env(
        &[
            "approve",
            &id,
            "unpublish",
            "--as",
            "alice",
            "--reason",
            "malware",
        ],
        &[("RECALL_FAILPOINT", "after_call:1")],
    );
    assert_eq!(a.signal, Some(9), "killed right after the unpublish: {a:?}");
    let res = r.run(&["incident", "resume", &id]);
    assert_eq!(res.code, Some(0), "{res:?}");
    assert_eq!(versions(&v, "crashy").await, ["1.0.0"]);
    let sent = v.mutating_requests_since(mark);
    assert_eq!(
        sent.len(),
        2,
        "one PUT and one DELETE, never repeated: {sent:?}"
    );
    let tl = r.timeline(&id);
    assert!(
        kinds(&tl).contains(&"reconcile.done".to_string()),
        "{:?}",
        kinds(&tl)
    );
}
