//! The `crates.*` actions through the real `recall` binary against the crates.io contract
//! fake: a rehearsal of `crate-compromised-release` sends nothing and records the exact
//! requests; a live run yanks with a message, revokes the leaked token with itself after an
//! approval and removes the trusted publisher, one mutating request per effect and no token
//! in the timeline; a private registry gets the plain DELETE …/yank; scripted faults are
//! retried (or not) exactly as the step's retry policy says.

use serde_json::Value;

use crate::fakes::Fault;
use crate::fakes::crates::FakeCrates;
use crate::support::kinds;
use crate::support::{Recall, Run, write_file};

const RECALL_TOKEN: &str = "cioRECALLrecallRECALLrecall00001";
const LEAKED_TOKEN: &str = "cioLEAKEDleakedLEAKEDleaked00002";
const WRONG_TOKEN: &str = "cioWRONGwrongWRONGwrongWRONG0009";
const CREATED: &str = "2024-03-01T12:34:56.789012Z";
const KRATE: &str = "evil-crate";

/// One yank with a fast retry policy (the bundled playbook backs off from 1s up to 1m).
const YANK_PLAYBOOK: &str = r#"name: crates-yank-test
params:
  crate: { type: string }
  version: { type: string }
steps:
  - id: yank
    uses: crates.yank
    with:
      crate: ${{ params.crate }}
      version: ${{ params.version }}
      message: compromised release
    retry: { attempts: 3, backoff: fixed, initial: 100ms }
    timeout: 20s
"#;

/// A revoke without approval, to exercise the token paths quickly.
const REVOKE_PLAYBOOK: &str = r#"name: crates-revoke-test
params:
  token_env: { type: string, default: "" }
  id: { type: string, default: "" }
  allow_self: { type: bool, default: false }
steps:
  - id: revoke
    uses: crates.revoke_token
    with:
      token_env: ${{ params.token_env }}
      id: ${{ params.id }}
      allow_self: ${{ params.allow_self }}
    retry: { attempts: 3, backoff: fixed, initial: 100ms }
    timeout: 20s
"#;

struct Seed {
    reg: FakeCrates,
    owner: u64,
    leaked_id: u64,
    config_id: u64,
}

async fn seeded(reg: FakeCrates) -> Seed {
    let owner = reg.add_user("alice");
    reg.add_token(owner, "recall", RECALL_TOKEN);
    let leaked_id = reg.add_token(owner, "ci-publish", LEAKED_TOKEN);
    reg.add_crate(KRATE, owner);
    for v in ["1.0.0", "1.0.1", "1.0.2"] {
        reg.add_version(KRATE, v, CREATED);
    }
    let config_id = reg.add_github_config(KRATE, "acme", "evil-crate", "publish.yml", None);
    reg.add_github_config(KRATE, "acme", "other-repo", "publish.yml", None);
    Seed {
        reg,
        owner,
        leaked_id,
        config_id,
    }
}

fn recall(reg: &FakeCrates, own_token: &str) -> Recall {
    let mut r = Recall::new(&format!(
        r#"[crates]
api = "{}"
token_env = "RECALL_TEST_CRATES_TOKEN"
timeout = "1s"

[groups]
release-admins = ["alice", "bob"]
"#,
        reg.url()
    ));
    r.env
        .push(("RECALL_TEST_CRATES_TOKEN".into(), own_token.into()));
    r.env.push(("LEAKED".into(), LEAKED_TOKEN.into()));
    r
}

fn events<'a>(tl: &'a Value, kind: &str, step: &str) -> Vec<&'a Value> {
    tl["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["kind"] == kind && e["step"] == step)
                .collect()
        })
        .unwrap_or_default()
}

/// (method, path) of every mutating request the fake received.
fn mutations(reg: &FakeCrates) -> Vec<(String, String)> {
    reg.server()
        .requests()
        .into_iter()
        .filter(|r| r.is_mutating())
        .map(|r| (r.method.clone(), r.path().to_string()))
        .collect()
}

fn start_bundled(r: &Recall, extra: &[&str], dry: bool) -> Run {
    let krate = format!("crate={KRATE}");
    let mut args = vec![
        "incident",
        "start",
        "--playbook",
        "crate-compromised-release",
        "--json",
        "--param",
        &krate,
        "--param",
        r#"versions=["1.0.1","1.0.2"]"#,
    ];
    for e in extra {
        args.extend(["--param", e]);
    }
    if dry {
        args.extend(["--dry-run", "--auto-approve"]);
    }
    r.run(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearsal_reads_but_sends_nothing() {
    let s = seeded(FakeCrates::start().await).await;
    let r = recall(&s.reg, RECALL_TOKEN);
    let run = start_bundled(
        &r,
        &["compromised_token_env=LEAKED", "repository=acme/evil-crate"],
        true,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        s.reg.server().mutating_calls(),
        0,
        "{:?}",
        mutations(&s.reg)
    );
    assert!(
        s.reg.server().calls() > 0,
        "the rehearsal reads the registry"
    );
    let tl = r.timeline(&run.id());

    let planned = events(&tl, "attempt.planned", "yank");
    assert_eq!(planned.len(), 2, "{tl:#}");
    let mut seen = Vec::new();
    for p in planned {
        let d = &p["data"]["detail"];
        let req = &d["requests"][0];
        assert_eq!(req["method"], "PATCH", "{d}");
        let url = req["url"].as_str().unwrap_or("");
        let version = url.rsplit('/').next().unwrap_or("").to_string();
        assert!(
            url.ends_with(&format!("/api/v1/crates/{KRATE}/{version}")),
            "{url}"
        );
        let msg = req["body"]["version"]["yank_message"]
            .as_str()
            .unwrap_or("");
        assert!(msg.starts_with("compromised release (incident "), "{msg}");
        assert_eq!(req["body"]["version"]["yanked"], true);
        assert_eq!(d["fallback"][0]["method"], "DELETE", "{d}");
        assert!(
            d["fallback"][0]["url"]
                .as_str()
                .unwrap_or("")
                .ends_with(&format!("/{version}/yank")),
            "{d}"
        );
        assert_eq!(d["findings"], serde_json::json!([]), "{d}");
        seen.push(version);
    }
    seen.sort();
    assert_eq!(seen, ["1.0.1", "1.0.2"]);

    let revoke = events(&tl, "attempt.planned", "revoke-token");
    let d = &revoke[0]["data"]["detail"];
    assert_eq!(d["requests"][0]["method"], "DELETE", "{d}");
    assert!(
        d["requests"][0]["url"]
            .as_str()
            .unwrap_or("")
            .ends_with("/api/v1/tokens/current"),
        "{d}"
    );
    let trust = events(&tl, "attempt.planned", "remove-trusted-publisher");
    let d = &trust[0]["data"]["detail"];
    assert_eq!(d["requests"].as_array().map(Vec::len), Some(1), "{d}");
    assert!(
        d["requests"][0]["url"]
            .as_str()
            .unwrap_or("")
            .ends_with(&format!("/github_configs/{}", s.config_id)),
        "{d}"
    );

    assert_eq!(s.reg.is_yanked(KRATE, "1.0.1"), Some(false));
    assert_eq!(s.reg.is_yanked(KRATE, "1.0.2"), Some(false));
    assert!(!s.reg.is_revoked(s.leaked_id));
    assert_eq!(s.reg.github_configs(KRATE).len(), 2);
    assert!(!tl.to_string().contains(LEAKED_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_run_yanks_revokes_and_removes_the_publisher() {
    let s = seeded(FakeCrates::start().await).await;
    let r = recall(&s.reg, RECALL_TOKEN);
    let run = start_bundled(
        &r,
        &["compromised_token_env=LEAKED", "repository=acme/evil-crate"],
        false,
    );
    assert_eq!(run.code, Some(3), "waits for the revoke approval: {run:?}");
    let id = run.id();
    assert_eq!(s.reg.is_yanked(KRATE, "1.0.1"), Some(true));
    assert_eq!(s.reg.is_yanked(KRATE, "1.0.2"), Some(true));
    assert_eq!(s.reg.is_yanked(KRATE, "1.0.0"), Some(false), "untouched");
    assert!(!s.reg.is_revoked(s.leaked_id), "not before the approval");

    let a = r.run(&[
        "approve",
        &id,
        "revoke-token",
        "--as",
        "alice",
        "--reason",
        "leaked in CI logs",
    ]);
    assert_eq!(a.code, Some(0), "{a:?}");
    assert!(s.reg.is_revoked(s.leaked_id));
    let v = s.reg.version(KRATE, "1.0.1").expect("version");
    let msg = v.yank_message.unwrap_or_default();
    assert!(
        msg.contains(&format!("incident {id}")) && msg.contains("upgrade to"),
        "{msg}"
    );
    let left = s.reg.github_configs(KRATE);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].repository_name, "other-repo");

    // Exactly one mutating request per (step, item).
    let mut m = mutations(&s.reg);
    m.sort();
    let p = |m: &str, path: &str| (m.to_string(), path.to_string());
    assert_eq!(
        m,
        [
            p("DELETE", "/api/v1/tokens/current"),
            p(
                "DELETE",
                &format!("/api/v1/trusted_publishing/github_configs/{}", s.config_id)
            ),
            p("PATCH", &format!("/api/v1/crates/{KRATE}/1.0.1")),
            p("PATCH", &format!("/api/v1/crates/{KRATE}/1.0.2")),
        ]
    );
    // The leaked token revoked itself.
    let revoke = s
        .reg
        .server()
        .requests_matching("DELETE /api/v1/tokens/current");
    assert_eq!(revoke[0].header("authorization"), Some(LEAKED_TOKEN));

    let tl = r.timeline(&id);
    let done = events(&tl, "attempt.succeeded", "revoke-token");
    let out = &done[0]["data"]["outputs"];
    assert_eq!(out["proven_dead"], true, "{out}");
    assert_eq!(out["via"], "self", "{out}");
    assert_eq!(out["fingerprint"].as_str().map(str::len), Some(16), "{out}");
    for e in events(&tl, "attempt.succeeded", "yank") {
        let o = &e["data"]["outputs"];
        assert!(
            o["yanked"] == true && o["message_sent"] == true && o["used_fallback"] == false,
            "{o}"
        );
    }
    let removed = &events(&tl, "attempt.succeeded", "remove-trusted-publisher")[0]["data"]["outputs"]
        ["removed"];
    assert!(removed.to_string().contains("acme/evil-crate"), "{removed}");
    for text in [
        tl.to_string(),
        r.show(&id).to_string(),
        run.stdout.clone(),
        run.stderr.clone(),
        a.stdout.clone(),
        a.stderr.clone(),
    ] {
        assert!(!text.contains(LEAKED_TOKEN), "leaked token in output");
        assert!(!text.contains(RECALL_TOKEN), "Recall's token in output");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_registry_yanks_with_delete_and_says_the_message_was_dropped() {
    let s = seeded(FakeCrates::start_private().await).await;
    let r = recall(&s.reg, RECALL_TOKEN);
    let run = start_bundled(&r, &[], false);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(s.reg.is_yanked(KRATE, "1.0.1"), Some(true));
    assert_eq!(s.reg.is_yanked(KRATE, "1.0.2"), Some(true));
    for v in ["1.0.1", "1.0.2"] {
        let path = format!("/api/v1/crates/{KRATE}/{v}");
        assert_eq!(
            s.reg
                .server()
                .requests_matching(&format!("PATCH {path}"))
                .len(),
            1
        );
        assert_eq!(
            s.reg
                .server()
                .requests_matching(&format!("DELETE {path}/yank"))
                .len(),
            1
        );
    }
    let tl = r.timeline(&run.id());
    let done = events(&tl, "attempt.succeeded", "yank");
    assert_eq!(done.len(), 2);
    for e in done {
        let o = &e["data"]["outputs"];
        assert!(
            o["used_fallback"] == true
                && o["message_dropped"] == true
                && o["message_sent"] == false,
            "{o}"
        );
        let summary = e["summary"].as_str().unwrap_or("");
        assert!(summary.contains("message was dropped"), "{summary}");
    }
}

/// One scripted fault scenario against the one-step yank playbook.
struct Case {
    name: &'static str,
    faults: Vec<(&'static str, Fault)>,
    own_token: &'static str,
    version: &'static str,
    code: i32,
    patches: usize,
    yanked: bool,
    /// Event kinds that must appear in the timeline.
    expect_kinds: &'static [&'static str],
    /// Text the last `attempt.failed` must contain (and the attempt it names).
    failed: Option<(&'static str, u64)>,
}

fn case(name: &'static str, faults: Vec<(&'static str, Fault)>) -> Case {
    Case {
        name,
        faults,
        own_token: RECALL_TOKEN,
        version: "1.0.1",
        code: 0,
        patches: 2,
        yanked: true,
        expect_kinds: &["attempt.failed", "attempt.succeeded"],
        failed: None,
    }
}

fn status(code: u16, retry_after: Option<&str>) -> Fault {
    Fault::Status {
        code,
        retry_after: retry_after.map(str::to_string),
        body: format!(r#"{{"errors":[{{"detail":"injected {code}"}}]}}"#),
    }
}

const PATCH: &str = "PATCH /api/v1/crates/evil-crate/1.0.1";
const GET: &str = "GET /api/v1/crates/evil-crate/1.0.1";

async fn check(c: Case) -> Value {
    let s = seeded(FakeCrates::start().await).await;
    for (route, f) in &c.faults {
        s.reg.server().inject(route, f.clone());
    }
    let r = recall(&s.reg, c.own_token);
    let pb = write_file(r.dir.path(), "yank.yaml", YANK_PLAYBOOK.as_bytes());
    let krate = format!("crate={KRATE}");
    let version = format!("version={}", c.version);
    let run = r.run(&[
        "incident",
        "start",
        "--playbook",
        &pb,
        "--json",
        "--param",
        &krate,
        "--param",
        &version,
    ]);
    let name = c.name;
    assert_eq!(run.code, Some(c.code), "{name}: {run:?}");
    let tl = r.timeline(&run.id());
    assert_eq!(
        s.reg.server().requests_matching(PATCH).len(),
        c.patches,
        "{name}: PATCH count; {:#}",
        tl["events"]
    );
    assert_eq!(
        s.reg.is_yanked(KRATE, "1.0.1"),
        Some(c.yanked),
        "{name}: yanked"
    );
    let k = kinds(&tl);
    for want in c.expect_kinds {
        assert!(k.iter().any(|x| x == want), "{name}: no {want} in {k:?}");
    }
    if let Some((text, attempt)) = c.failed {
        let failed = events(&tl, "attempt.failed", "yank");
        let last = failed.last().expect("an attempt.failed event");
        let summary = last["summary"].as_str().unwrap_or("");
        assert!(summary.contains(text), "{name}: {summary}");
        assert_eq!(last["data"]["attempt"], attempt, "{name}: {last}");
    }
    let all = tl.to_string();
    assert!(
        !all.contains(c.own_token) && !all.contains(LEAKED_TOKEN),
        "{name}: token in timeline"
    );
    tl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_retried_after_retry_after() {
    let tl = check(Case {
        failed: Some(("(transient)", 1)),
        ..case("429", vec![(PATCH, status(429, Some("1")))])
    })
    .await;
    let failed = events(&tl, "attempt.failed", "yank");
    assert_eq!(failed.len(), 1);
    let f = failed[0];
    let wait = f["data"]["retry_at"].as_i64().unwrap_or(0) - f["at_ms"].as_i64().unwrap_or(0);
    assert!(wait >= 1000, "Retry-After honoured: {f}");
    assert!(
        !kinds(&tl).iter().any(|k| k.starts_with("reconcile.")),
        "a 429 is not ambiguous: no probe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_resets_are_probed_then_retried() {
    for c in [
        case("503", vec![(PATCH, status(503, None))]),
        case("502", vec![(PATCH, status(502, None))]),
        case("500", vec![(PATCH, status(500, None))]),
        case("reset", vec![(PATCH, Fault::Reset)]),
    ] {
        check(Case {
            expect_kinds: &["attempt.failed", "reconcile.not_done", "attempt.succeeded"],
            ..c
        })
        .await;
    }
    // Retries are bounded by the policy: three 503s are three PATCHes, then failure.
    check(Case {
        code: 1,
        patches: 3,
        yanked: false,
        expect_kinds: &["attempt.failed"],
        failed: Some(("retries exhausted", 3)),
        ..case(
            "503x3",
            vec![
                (PATCH, status(503, None)),
                (PATCH, status(503, None)),
                (PATCH, status(503, None)),
            ],
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_probed_before_retrying() {
    use std::time::Duration;
    // The PATCH never answers within `[crates] timeout = "1s"`: not visible → sent again.
    check(Case {
        expect_kinds: &["attempt.failed", "reconcile.not_done", "attempt.succeeded"],
        ..case(
            "slow PATCH",
            vec![(PATCH, Fault::Delay(Duration::from_secs(5)))],
        )
    })
    .await;
    // The read-back after the PATCH times out: the probe sees the yank, nothing resent.
    check(Case {
        patches: 1,
        expect_kinds: &["attempt.failed", "reconcile.done"],
        ..case(
            "slow verify",
            vec![
                (GET, Fault::Delay(Duration::ZERO)),
                (GET, Fault::Delay(Duration::from_secs(5))),
            ],
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_fail_on_the_first_attempt() {
    let tl = check(Case {
        code: 1,
        patches: 0,
        yanked: false,
        expect_kinds: &["attempt.failed"],
        failed: Some(("permanent", 1)),
        ..case("malformed", vec![(GET, Fault::Malformed)])
    })
    .await;
    let f = events(&tl, "attempt.failed", "yank");
    assert!(f[0]["summary"].as_str().unwrap_or("").contains("malformed"));

    let tl = check(Case {
        own_token: WRONG_TOKEN,
        code: 1,
        patches: 1,
        yanked: false,
        expect_kinds: &["attempt.failed"],
        failed: Some((
            "refused the token from env RECALL_TEST_CRATES_TOKEN (403: authentication failed)",
            1,
        )),
        ..case("wrong token", vec![])
    })
    .await;
    assert_eq!(events(&tl, "attempt.failed", "yank").len(), 1);

    check(Case {
        version: "9.9.9",
        code: 1,
        patches: 0,
        yanked: false,
        expect_kinds: &["attempt.failed"],
        failed: Some(("no version `9.9.9`", 1)),
        ..case("unknown version", vec![])
    })
    .await;
}

fn revoke(r: &Recall, params: &[&str]) -> (Run, Value) {
    let pb = write_file(r.dir.path(), "revoke.yaml", REVOKE_PLAYBOOK.as_bytes());
    let mut args = vec!["incident", "start", "--playbook", &pb, "--json"];
    for p in params {
        args.extend(["--param", p]);
    }
    let run = r.run(&args);
    let tl = r.timeline(&run.id());
    assert!(!tl.to_string().contains(LEAKED_TOKEN), "token in timeline");
    (run, tl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_and_own_tokens() {
    let s = seeded(FakeCrates::start().await).await;
    let scoped_secret = "cioSCOPEDscopedSCOPEDscoped00003";
    let scoped = s.reg.add_scoped_token(
        s.owner,
        "yank-only",
        scoped_secret,
        Some(&[KRATE]),
        Some(&["yank"]),
    );
    let mut r = recall(&s.reg, RECALL_TOKEN);
    r.env.push(("SCOPED".into(), scoped_secret.into()));
    r.env.push(("OWN".into(), RECALL_TOKEN.into()));

    // A scoped token cannot revoke itself: a permanent failure saying where to do it.
    let (run, tl) = revoke(&r, &["token_env=SCOPED"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let f = events(&tl, "attempt.failed", "revoke");
    assert_eq!(f.len(), 1, "no retry");
    let summary = f[0]["summary"].as_str().unwrap_or("");
    assert!(
        summary.contains("scoped") && summary.contains("`id`"),
        "{summary}"
    );
    assert!(!s.reg.is_revoked(scoped));

    // With its id, Recall revokes it with its own token and proves it dead.
    let id = format!("id={scoped}");
    let (run, tl) = revoke(&r, &["token_env=SCOPED", &id]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(s.reg.is_revoked(scoped));
    let out = &events(&tl, "attempt.succeeded", "revoke")[0]["data"]["outputs"];
    assert!(out["via"] == "id" && out["proven_dead"] == true, "{out}");

    // Recall's own token: refused unless allow_self.
    s.reg.server().clear_log();
    let (run, _) = revoke(&r, &["token_env=OWN"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(s.reg.server().mutating_calls(), 0);

    // A token the registry already refuses: nothing sent.
    let (run, tl) = revoke(&r, &["token_env=SCOPED"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(s.reg.server().mutating_calls(), 0);
    let s2 = events(&tl, "attempt.succeeded", "revoke")[0]["summary"].to_string();
    assert!(s2.contains("already dead"), "{s2}");

    // By id alone: sent, but reported unproven (crates.io answers 200 for any id).
    let id = format!("id={}", s.leaked_id);
    let (run, tl) = revoke(&r, &[&id]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(s.reg.is_revoked(s.leaked_id));
    let out = &events(&tl, "attempt.succeeded", "revoke")[0]["data"]["outputs"];
    assert!(
        out["proven_dead"] == false && out["proof"].to_string().contains("unproven"),
        "{out}"
    );

    // An id that is not the account's fails instead of "succeeding" with a 200.
    let (run, _) = revoke(&r, &["id=999999"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        s.reg
            .server()
            .requests_matching("DELETE /api/v1/me/tokens/999999")
            .is_empty()
    );
}
