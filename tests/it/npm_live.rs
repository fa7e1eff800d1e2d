//! npm containment against a real Verdaccio 6.8.0: the rehearsal sends zero mutating
//! requests and lists what it would send; the live run deprecates exactly the listed
//! versions (scoped, unscoped, a range), moves `latest` off a bad version, revokes the
//! compromised token after an approval and proves it dead.

use serde_json::Value;

use crate::support::Recall;
use crate::support::verdaccio::{ADMIN_PASSWORD, ADMIN_USER, Verdaccio};

async fn deprecated(v: &Verdaccio, name: &str) -> Vec<(String, bool)> {
    let wire = crate::support::verdaccio::wire_name(name);
    let pk = v.get_json(&v.admin_token, &wire).await.expect("packument");
    let mut out: Vec<(String, bool)> = pk["versions"]
        .as_object()
        .expect("versions")
        .iter()
        .map(|(k, e)| {
            (
                k.clone(),
                e.get("deprecated")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.is_empty()),
            )
        })
        .collect();
    out.sort();
    out
}

async fn latest(v: &Verdaccio, name: &str) -> String {
    let wire = crate::support::verdaccio::wire_name(name);
    let pk = v.get_json(&v.admin_token, &wire).await.expect("packument");
    pk["dist-tags"]["latest"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearsal_then_live_containment_against_verdaccio() {
    let v = Verdaccio::start().await;
    let t = v.admin_token.clone();
    for ver in ["0.7.28", "0.7.29", "0.8.0", "1.0.0"] {
        v.publish(&t, "ua-parser-js", ver).await;
    }
    for ver in ["1.95.5", "1.95.6", "1.95.7", "1.95.8"] {
        v.publish(&t, "@solana/web3.js", ver).await;
    }
    for ver in ["1.2.8", "1.2.9", "1.2.10", "1.3.0"] {
        v.publish(&t, "rc", ver).await;
    }
    assert_eq!(latest(&v, "ua-parser-js").await, "1.0.0");
    // The leaked token: a generated one of the same account, listed with a key.
    let (leaked, key) = v.create_token(ADMIN_USER, ADMIN_PASSWORD).await;

    let mut recall = Recall::for_registry(&v.url, &t);
    recall.env.push(("LEAKED_NPM_TOKEN".into(), leaked.clone()));
    let targets = r#"["ua-parser-js@0.7.29","ua-parser-js@0.8.0","ua-parser-js@1.0.0","@solana/web3.js@1.95.6","@solana/web3.js@1.95.7","rc@>=1.2.9 <1.3.0"]"#;
    let start = |dry: bool| {
        let mut args = vec![
            "incident",
            "start",
            "--playbook",
            "npm-account-compromise",
            "--json",
            "--param",
        ];
        let tp = format!("targets={targets}");
        let kp = format!("compromised_token={key}");
        let mut owned = vec![
            tp,
            "--param".to_string(),
            kp,
            "--param".to_string(),
            "compromised_token_env=LEAKED_NPM_TOKEN".to_string(),
        ];
        if dry {
            owned.push("--dry-run".into());
            owned.push("--auto-approve".into());
        }
        args.extend(owned.iter().map(String::as_str));
        recall.run(&args)
    };

    // --- Rehearsal: reads allowed, zero PUT/POST/DELETE, and every would-send request recorded.
    let mark = v.mark();
    let r = start(true);
    assert_eq!(r.code, Some(0), "{r:?}");
    let rid = r.id();
    let sent = v.mutating_requests_since(mark);
    assert!(
        sent.is_empty(),
        "a rehearsal sent mutating requests: {sent:?}"
    );
    assert!(
        !v.requests_since(mark).is_empty(),
        "the rehearsal should read real state"
    );
    let tl = recall.timeline(&rid);
    let would: Vec<(String, String)> = tl["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "attempt.planned")
        .flat_map(|e| {
            e["data"]["detail"]["requests"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|r| {
            (
                r["method"].as_str().unwrap_or("").to_string(),
                r["url"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let puts = |frag: &str| {
        would
            .iter()
            .filter(|(m, u)| m == "PUT" && u.ends_with(frag))
            .count()
    };
    assert_eq!(puts("/ua-parser-js"), 3, "{would:?}");
    assert_eq!(
        puts("/@solana%2fweb3.js"),
        2,
        "scoped name escaped on the wire: {would:?}"
    );
    assert_eq!(puts("/rc"), 1, "{would:?}");
    assert!(
        would
            .iter()
            .any(|(m, u)| m == "PUT" && u.ends_with("/-/package/ua-parser-js/dist-tags/latest")),
        "{would:?}"
    );
    assert!(
        would
            .iter()
            .any(|(m, u)| m == "DELETE" && u.ends_with(&format!("/-/npm/v1/tokens/token/{key}"))),
        "{would:?}"
    );
    assert!(
        tl["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| !e.to_string().contains(&leaked)),
        "secret in timeline"
    );
    assert!(
        deprecated(&v, "ua-parser-js").await.iter().all(|(_, d)| !d),
        "rehearsal changed the registry"
    );

    // --- Live: waits for the approval of the irreversible revoke, everything else done.
    let mark = v.mark();
    let r = start(false);
    assert_eq!(r.code, Some(3), "waits on a human: {r:?}");
    let id = r.id();
    assert_eq!(r.json()["status"], "waiting");
    // The starter cannot approve, nor can someone outside release-admins.
    let a = recall.run(&[
        "approve",
        &id,
        "revoke-token",
        "--as",
        "oncall",
        "--reason",
        "self",
    ]);
    assert_eq!(a.code, Some(3), "{a:?}");
    assert!(
        a.stderr.contains("approval.refused") && a.stderr.contains("starter"),
        "{a:?}"
    );
    let a = recall.run(&[
        "approve",
        &id,
        "revoke-token",
        "--as",
        "mallory",
        "--reason",
        "not an admin",
    ]);
    assert_eq!(a.code, Some(3), "{a:?}");
    let a = recall.run(&[
        "approve",
        &id,
        "revoke-token",
        "--as",
        "alice",
        "--reason",
        "token leaked in CI logs",
    ]);
    assert_eq!(a.code, Some(0), "{a:?}");

    assert_eq!(
        deprecated(&v, "ua-parser-js").await,
        vec![
            ("0.7.28".into(), false),
            ("0.7.29".into(), true),
            ("0.8.0".into(), true),
            ("1.0.0".into(), true)
        ]
    );
    assert_eq!(
        deprecated(&v, "@solana/web3.js").await,
        vec![
            ("1.95.5".into(), false),
            ("1.95.6".into(), true),
            ("1.95.7".into(), true),
            ("1.95.8".into(), false)
        ]
    );
    assert_eq!(
        deprecated(&v, "rc").await,
        vec![
            ("1.2.10".into(), true),
            ("1.2.8".into(), false),
            ("1.2.9".into(), true),
            ("1.3.0".into(), false)
        ]
    );
    assert_eq!(
        latest(&v, "ua-parser-js").await,
        "0.7.28",
        "latest moved off the bad 1.0.0"
    );
    assert_eq!(
        latest(&v, "@solana/web3.js").await,
        "1.95.8",
        "a good latest is left alone"
    );
    // The leaked token is dead; Recall's own token still works.
    let who = reqwest::Client::new()
        .get(format!("{}/-/whoami", v.url))
        .bearer_auth(&leaked)
        .send()
        .await
        .expect("whoami");
    let body: Value = who.json().await.unwrap_or(Value::Null);
    assert!(
        body.get("username").is_none(),
        "revoked token still authenticates: {body}"
    );
    let show = recall.show(&id);
    let revoke = show["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["step_id"] == "revoke-token")
        .unwrap();
    assert_eq!(revoke["outputs"]["proven_dead"], true, "{revoke}");

    // Exactly one mutating request per change: 3+2+1 deprecations, 1 dist-tag move, 1 revoke.
    let sent = v.mutating_requests_since(mark);
    let count = |m: &str, frag: &str| {
        sent.iter()
            .filter(|(mm, u)| mm == m && u.contains(frag))
            .count()
    };
    assert_eq!(count("PUT", "/ua-parser-js"), 3 + 1, "{sent:?}");
    assert_eq!(count("PUT", "web3.js"), 2, "{sent:?}");
    assert_eq!(
        sent.iter()
            .filter(|(m, u)| m == "PUT" && u == "/rc")
            .count(),
        1,
        "{sent:?}"
    );
    assert_eq!(count("DELETE", "/-/npm/v1/tokens/token/"), 1, "{sent:?}");
    assert_eq!(sent.len(), 8, "{sent:?}");

    // The record: verified chain, approvals with who and why, a postmortem draft.
    let a = recall.run(&["audit", "verify", &id]);
    assert_eq!(a.code, Some(0), "{a:?}");
    let pm = recall.run(&["postmortem", &id]);
    assert_eq!(pm.code, Some(0), "{pm:?}");
    for needle in [
        "alice",
        "token leaked in CI logs",
        "ua-parser-js@0.7.29",
        "Time to full containment",
        // The impact window opens at Verdaccio's own publish time of the first bad version.
        "**First bad publish** (the registry's own time)",
        "**Exposure:**",
    ] {
        assert!(
            pm.stdout.contains(needle),
            "postmortem lacks {needle}:\n{}",
            pm.stdout
        );
    }
    let tl = recall.timeline(&id);
    let refused = tl["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "approval.refused")
        .count();
    assert_eq!(refused, 2, "the starter and the outsider were refused");
    assert!(
        !tl.to_string().contains(&leaked) && !tl.to_string().contains(&t),
        "a secret reached the timeline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_refuses_to_revoke_its_own_token() {
    let v = Verdaccio::start().await;
    let (own, own_key) = v.create_token(ADMIN_USER, ADMIN_PASSWORD).await;
    v.publish(&v.admin_token, "left-pad", "1.3.0").await;
    let recall = Recall::for_registry(&v.url, &own);
    let mark = v.mark();
    let r = recall.run(&[
        "incident",
        "start",
        "--playbook",
        "npm-compromised-release",
        "--json",
        "--param",
        "package=left-pad",
        "--param",
        "versions=1.3.0",
        "--param",
        &format!("compromised_token={own_key}"),
    ]);
    assert_eq!(r.code, Some(3), "{r:?}");
    let id = r.id();
    let a = recall.run(&[
        "approve",
        &id,
        "revoke-token",
        "--as",
        "bob",
        "--reason",
        "rotate",
    ]);
    assert_eq!(
        a.code,
        Some(1),
        "the revoke must fail, so the incident fails: {a:?}"
    );
    let show = recall.show(&id);
    let step = show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == "revoke-token")
        .unwrap();
    assert!(
        step["error"]
            .as_str()
            .unwrap_or("")
            .contains("Recall's own configured token"),
        "{step}"
    );
    assert!(
        !v.mutating_requests_since(mark)
            .iter()
            .any(|(m, _)| m == "DELETE"),
        "no revoke was sent"
    );
    // left-pad has no good version left: fix-latest fails loudly rather than leave `latest` bad.
    let fl = show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == "fix-latest")
        .unwrap();
    assert_eq!(fl["status"], "failed", "{fl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeprecate_and_explicit_dist_tags() {
    let v = Verdaccio::start().await;
    let t = v.admin_token.clone();
    for ver in ["1.0.0", "1.1.0", "2.0.0"] {
        v.publish(&t, "is-thing", ver).await;
    }
    let recall = Recall::for_registry(&v.url, &t);
    let pb = crate::support::write_file(
        recall.dir.path(),
        "tags.yaml",
        br#"name: tags
steps:
  - id: deprecate
    uses: npm.deprecate
    with: { package: is-thing, version: "^1.0.0", message: "bad line" }
  - id: undeprecate
    uses: npm.undeprecate
    needs: [deprecate]
    with: { package: is-thing, version: "1.1.0" }
  - id: beta
    uses: npm.dist_tag
    needs: [undeprecate]
    with: { package: is-thing, tag: beta, version: "1.1.0" }
  - id: drop-beta
    uses: npm.dist_tag
    needs: [beta]
    with: { package: is-thing, tag: beta, remove: true }
  - id: refuse-bad-latest
    uses: npm.dist_tag
    needs: [drop-beta]
    continue-on-error: true
    with: { package: is-thing, tag: latest, version: "1.0.0", avoid: ["1.0.0"] }
"#,
    );
    let mark = v.mark();
    let r = recall.run(&["incident", "start", "--playbook", &pb, "--json"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let id = r.id();
    assert_eq!(
        deprecated(&v, "is-thing").await,
        vec![
            ("1.0.0".into(), true),
            ("1.1.0".into(), false),
            ("2.0.0".into(), false)
        ],
        "the range was deprecated, then 1.1.0 undeprecated"
    );
    let pk = v.get_json(&t, "is-thing").await.expect("packument");
    assert!(
        pk["dist-tags"].get("beta").is_none(),
        "beta was set, then removed: {}",
        pk["dist-tags"]
    );
    assert_eq!(pk["dist-tags"]["latest"], "2.0.0");
    let sent = v.mutating_requests_since(mark);
    let n = |m: &str, frag: &str| {
        sent.iter()
            .filter(|(mm, u)| mm == m && u.contains(frag))
            .count()
    };
    assert_eq!(
        n("PUT", "/-/package/is-thing/dist-tags/beta"),
        1,
        "{sent:?}"
    );
    assert_eq!(
        n("DELETE", "/-/package/is-thing/dist-tags/beta"),
        1,
        "{sent:?}"
    );
    assert_eq!(
        n("PUT", "/-/package/is-thing/dist-tags/latest"),
        0,
        "a bad latest is refused: {sent:?}"
    );
    let show = recall.show(&id);
    let refused = show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step_id"] == "refuse-bad-latest")
        .unwrap();
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or("")
            .contains("bad versions"),
        "{refused}"
    );
}
