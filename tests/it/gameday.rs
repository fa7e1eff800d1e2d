//! Game days end to end: every shipped scenario rehearsed with preflight through
//! `recall gameday run`, its report compared with the golden file checked in under
//! `tests/golden/gameday/` (set `RECALL_UPDATE_GOLDEN=1` to rewrite them), and no mutating
//! request reaching any server.
//!
//! The registries are read-only snapshots on loopback (`tests/fixtures/gameday/`, with their
//! provenance), so the reports do not depend on the network; no credential is configured,
//! so the reports show what a game day on a fresh install finds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::fakes::pypi::FakePypi;
use crate::fakes::{FakeServer, Request, Response};
use crate::support::Recall;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gameday")
}

/// A read-only registry snapshot: npm packuments and dist-tags from the fixtures, an empty
/// OCI distribution API, and 404 for everything else (GitHub included).
fn snapshot(req: &Request) -> Response {
    if req.is_mutating() {
        return Response::json(405, &json!({ "error": "read-only snapshot" }));
    }
    let path = req.path().replace("%2f", "/").replace("%2F", "/");
    if path == "/v2/" || path == "/v2" {
        return Response::json(200, &json!({}))
            .with_header("docker-distribution-api-version", "registry/2.0");
    }
    if path.starts_with("/v2/") {
        return Response::json(
            404,
            &json!({ "errors": [{ "code": "MANIFEST_UNKNOWN", "message": "manifest unknown" }] }),
        );
    }
    let (name, tags) = match path.strip_prefix("/-/package/") {
        Some(rest) => match rest.strip_suffix("/dist-tags") {
            Some(n) => (n.to_string(), true),
            None => return not_found(),
        },
        None => (path.trim_start_matches('/').to_string(), false),
    };
    let file = fixtures()
        .join("npm")
        .join(format!("{}.json", name.replace('/', "__")));
    match std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    {
        Some(doc) if tags => Response::json(200, &doc["dist-tags"]),
        Some(doc) => Response::json(200, &doc),
        None => not_found(),
    }
}

fn not_found() -> Response {
    Response::json(
        404,
        &json!({ "error": "Not found", "message": "Not Found" }),
    )
}

/// Replace what differs between runs (ids, ports, measured times) with placeholders.
pub fn normalize(text: &str, ports: &[&str]) -> String {
    let mut out = text.to_string();
    for p in ports {
        out = out.replace(p, "127.0.0.1:PORT");
    }
    out = regex_lite(&out, "inc-", 10);
    out = iso_times(&out);
    let mut lines = Vec::new();
    for l in out.lines() {
        let mut l = l.to_string();
        if let Some(i) = l.find(" — estimate ") {
            l = format!("{} — estimate N ms", &l[..i]);
        }
        if l.starts_with("- estimated time to contain: ") {
            l = "- estimated time to contain: (measured)".to_string();
        }
        lines.push(l);
    }
    lines.join("\n") + "\n"
}

/// `YYYY-MM-DDTHH:MM:SS` (with optional fraction) → `TIME`.
fn iso_times(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let shape = |j: usize| {
        b.len() >= j + 19
            && (0..19).all(|k| {
                let c = b[j + k];
                match k {
                    4 | 7 => c == b'-',
                    10 => c == b'T',
                    13 | 16 => c == b':',
                    _ => c.is_ascii_digit(),
                }
            })
    };
    while i < b.len() {
        if shape(i) {
            out.push_str("TIME");
            i += 19;
            while i < b.len() && (b[i] == b'.' || b[i].is_ascii_digit()) {
                i += 1;
            }
        } else {
            let ch = s[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `inc-` followed by `n` hex digits → `inc-ID`.
fn regex_lite(s: &str, prefix: &str, n: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(prefix) {
        out.push_str(&rest[..i]);
        let after = &rest[i + prefix.len()..];
        let hex = after
            .chars()
            .take(n)
            .filter(|c| c.is_ascii_hexdigit())
            .count();
        if hex == n {
            out.push_str("inc-ID");
            rest = &after[n..];
        } else {
            out.push_str(prefix);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/gameday")
        .join(format!("{name}.md"));
    if std::env::var_os("RECALL_UPDATE_GOLDEN").is_some() || !path.exists() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path).expect("read golden");
    assert!(
        want == actual,
        "the game-day report of `{name}` differs from {} (rerun with RECALL_UPDATE_GOLDEN=1 after checking the change):\n--- want\n{want}\n--- got\n{actual}",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_scenario_runs_as_a_game_day_matching_its_golden_report() {
    let snap = Arc::new(FakeServer::start(snapshot).await);
    let pypi = FakePypi::start().await;
    for v in ["8.3.40", "8.3.41", "8.3.42", "8.3.45", "8.3.46", "8.3.47"] {
        let files = [
            format!("ultralytics-{v}-py3-none-any.whl"),
            format!("ultralytics-{v}.tar.gz"),
        ];
        let names: Vec<&str> = files.iter().map(String::as_str).collect();
        pypi.add_release("ultralytics", v, &names, "2024-12-04T20:51:00Z");
    }
    let s = snap.url().to_string();
    let host = s.trim_start_matches("http://").to_string();
    let recall = Recall::new(&format!(
        "[npm]\nregistry = \"{s}/\"\ntimeout = \"5s\"\n\n[pypi]\napi = \"{p}\"\nweb = \"https://pypi.org\"\ntimeout = \"5s\"\n\n[crates]\napi = \"{s}\"\n\n[github]\napi_url = \"{s}\"\n\n[oci]\ninsecure = [\"{host}\"]\n",
        p = pypi.url()
    ));
    let list = recall.run(&["gameday", "list", "--json"]);
    assert_eq!(list.code, Some(0), "{list:?}");
    let listed: Vec<Value> = serde_json::from_str(&list.stdout).expect("list json");
    let shipped =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/scenarios"))
            .expect("scenarios dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml"))
            })
            .count();
    assert_eq!(
        listed.len(),
        shipped,
        "every shipped scenario is listed: {listed:?}"
    );
    let pyhost = pypi.url().trim_start_matches("http://").to_string();
    let out = tempfile::tempdir().expect("tempdir");
    for sc in &listed {
        let name = sc["name"].as_str().expect("name");
        let mut args = vec![
            "gameday".to_string(),
            "run".into(),
            name.into(),
            "--out".into(),
            out.path().display().to_string(),
        ];
        if name == "leaked-secret-image" {
            // The scenario's registry host is internal; the snapshot stands in for it.
            args.push("--param".into());
            args.push(format!("image={host}/acme/api"));
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = recall.run(&argv);
        assert_eq!(
            r.code,
            Some(4),
            "no credential is configured, so containment would be blocked: {r:?}"
        );
        assert!(r.stdout.starts_with("# Game day: scenario"), "{r:?}");
        check_golden(name, &normalize(&r.stdout, &[&host, &pyhost]));
        // The JSON report was written next to the Markdown one and says the same.
        let id = r
            .stderr
            .split("game day ")
            .nth(1)
            .and_then(|t| t.split(':').next())
            .expect("id on stderr")
            .to_string();
        let js: Value = serde_json::from_str(
            &std::fs::read_to_string(out.path().join(format!("gameday-{id}.json")))
                .expect("json report"),
        )
        .expect("report json");
        assert_eq!(js["format"], "recall-gameday/1");
        assert_eq!(js["verdict"], "blocked");
        assert!(js["blocks_containment"].as_u64().unwrap_or(0) > 0, "{js}");
        assert_eq!(recall.run(&["audit", "verify", &id]).code, Some(0));
        // `gameday report` rebuilds the same verdict from the stored rehearsal.
        let again = recall.run(&["gameday", "report", &id, "--json"]);
        assert_eq!(again.code, Some(4), "{again:?}");
    }
    assert_eq!(snap.mutating_calls(), 0, "{:?}", snap.requests());
    assert_eq!(pypi.server().mutating_calls(), 0);
    assert!(snap.calls() > 0, "the rehearsals read the snapshot");
}

#[test]
fn bad_game_day_targets_name_the_problem() {
    let recall = Recall::new("");
    let r = recall.run(&["gameday", "run", "no-such-thing"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("no-such-thing") && r.stderr.contains("bundled scenarios"),
        "{r:?}"
    );
    let r = recall.run(&["gameday", "run", "ua-parser-js-2021", "--param", "versions"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    let r = recall.run(&[
        "gameday",
        "run",
        "ua-parser-js-2021",
        "--out",
        "/nonexistent/dir",
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("not a directory"), "{r:?}");
    let r = recall.run(&["gameday", "report", "inc-nope"]);
    assert_eq!(r.code, Some(2), "{r:?}");
}

// ---- acceptance: the four classic gaps, found exactly, and their absence --------------

use crate::fakes::crates::FakeCrates;
use crate::fakes::kube::FakeKube;
use crate::support::registry::Registry;
use crate::support::verdaccio::Verdaccio;

const KUBE_TOKEN: &str = "gameday-kube-token";

/// One containment step per system: deprecate on npm, yank on crates.io, deny at
/// Kubernetes admission, pull the tag from rotation in the OCI registry.
const ACCEPTANCE: &str = r#"name: gameday-acceptance
description: one containment step on each system
params:
  image: {type: string, required: true}
  digest: {type: string, required: true}
steps:
  - id: deprecate
    uses: npm.deprecate
    with: { package: gd-pkg, version: "1.0.1", message: "1.0.1 is compromised; use 1.0.0" }
  - id: yank
    uses: crates.yank
    with: { crate: gd-crate, version: "0.3.1", message: "compromised" }
  - id: deny
    uses: kube.admission_deny
    with:
      cluster: prod
      digests: ["${{ params.digest }}"]
      image: ${{ params.image }}
  - id: untag
    uses: oci.untag
    with: { image: "${{ params.image }}", tag: "1.0.1", digest: "${{ params.digest }}" }
"#;

async fn readonly_npm_token(v: &Verdaccio, user: &str, password: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/-/npm/v1/tokens", v.url))
        .basic_auth(user, Some(password))
        .json(&json!({ "password": password, "readonly": true, "cidr_whitelist": [] }))
        .send()
        .await
        .expect("create read-only token");
    assert!(r.status().is_success(), "{}", r.status());
    let body: Value = r.json().await.expect("token json");
    body["token"].as_str().expect("token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_day_finds_exactly_the_gaps_with_their_fixes_and_passes_once_fixed() {
    // npm: a maintainer with a read-write and a read-only token; 1.0.1 is the bad release.
    let npm = Verdaccio::start().await;
    let rw = npm.add_user("gd-maintainer", "gd-password-1").await;
    npm.publish(&rw, "gd-pkg", "1.0.0").await;
    npm.publish(&rw, "gd-pkg", "1.0.1").await;
    let ro = readonly_npm_token(&npm, "gd-maintainer", "gd-password-1").await;
    // crates.io: the crate and its bad version; Recall's token exists only in the good run.
    let crates = FakeCrates::start().await;
    let owner = crates.add_user("gd-owner");
    crates.add_token(owner, "recall", "cio-gameday-token");
    crates.add_crate("gd-crate", owner);
    crates.add_version("gd-crate", "0.3.0", "2026-11-01T00:00:00Z");
    crates.add_version("gd-crate", "0.3.1", "2026-11-27T00:00:00Z");
    // Kubernetes: one cluster with Recall's namespace.
    let kube = FakeKube::start("prod", KUBE_TOKEN).await;
    kube.add_namespace("recall-system", &[]);
    // OCI: the real distribution registry with the bad image.
    let mut reg = Registry::start().await.expect("registry");
    let img = reg.seed_image("gd/app", "1.0.1").await.expect("seed");
    let image = format!("{}/gd/app", reg.host());

    let mut recall = Recall::new("");
    let kc = recall.dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kc, "prod");
    let reg_host = reg.host();
    let config = |token_env: &str, crates_env: &str| {
        format!(
            "[npm]\nregistry = \"{npm}\"\ntoken_env = \"{token_env}\"\ntimeout = \"10s\"\n\n\
             [crates]\napi = \"{crates}\"\ntoken_env = \"{crates_env}\"\ntimeout = \"5s\"\n\n\
             [oci]\ninsecure = [\"{host}\"]\ntimeout = \"10s\"\n\n\
             [kube]\ntimeout = \"5s\"\n[[kube.clusters]]\nname = \"prod\"\nkubeconfig = \"{kc}\"\ncontext = \"prod\"\n\n\
             [groups]\nrelease-admins = [\"alice\", \"bob\"]\n",
            npm = npm.url,
            crates = crates.url(),
            host = reg_host,
            kc = kc.display()
        )
    };
    let pb = recall.dir.path().join("acceptance.yaml");
    std::fs::write(&pb, ACCEPTANCE).expect("playbook");
    let pb = pb.display().to_string();
    let img_param = format!("image={image}");
    let digest_param = format!("digest={}", img.digest);
    let args = [
        "gameday",
        "run",
        pb.as_str(),
        "--param",
        img_param.as_str(),
        "--param",
        digest_param.as_str(),
        "--json",
        "--out",
        ".",
    ];
    let run = |r: &Recall| {
        let out = r.run(&args);
        let report: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("report json ({e}): {out:?}"));
        (out, report)
    };

    // ---- the gaps: a read-only npm token, no crates token, a role without patch on
    // ConfigMaps, a registry that refuses tag deletion (read-only mode).
    kube.forbid_in("patch", "", "configmaps", "recall-system");
    reg.restart(true).await.expect("read-only registry");
    let (npm_mark, reg_mark) = (npm.mark(), reg.mark());
    std::fs::write(&recall.config, config("GD_NPM_RO", "GD_CRATES_UNSET")).expect("config");
    recall.env.push(("GD_NPM_RO".into(), ro.clone()));
    let (out, report) = run(&recall);
    assert_eq!(out.code, Some(4), "{out:?}");
    for secret in [&ro, &rw] {
        assert!(
            !out.stdout.contains(secret.as_str()) && !out.stderr.contains(secret.as_str()),
            "a token leaked into the report"
        );
    }
    let failing: Vec<(String, String)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] != "unknown")
        .map(|f| {
            (
                f["check"].as_str().unwrap_or("").to_string(),
                f["step"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        failing,
        vec![
            ("npm.token.write".to_string(), "deprecate".to_string()),
            ("crates.credential".to_string(), "yank".to_string()),
            ("kube.rbac".to_string(), "deny".to_string()),
            ("oci.methods".to_string(), "untag".to_string()),
        ],
        "exactly the four gaps, in playbook order: {:#}",
        report["findings"]
    );
    let by = |check: &str| {
        report["findings"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["check"] == check))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert!(
        by("npm.token.write")["evidence"]
            .as_str()
            .unwrap_or("")
            .contains("readonly: true")
    );
    assert!(
        by("npm.token.write")["fix"]
            .as_str()
            .unwrap_or("")
            .contains("read-write")
    );
    assert!(
        by("crates.credential")["fix"]
            .as_str()
            .unwrap_or("")
            .contains("GD_CRATES_UNSET")
    );
    assert!(
        by("kube.rbac")["subject"]
            .as_str()
            .unwrap_or("")
            .contains("patch configmaps"),
        "{}",
        by("kube.rbac")
    );
    assert!(
        by("kube.rbac")["fix"]
            .as_str()
            .unwrap_or("")
            .contains("patch"),
        "{}",
        by("kube.rbac")
    );
    assert!(
        by("oci.methods")["evidence"]
            .as_str()
            .unwrap_or("")
            .contains("GET, HEAD"),
        "{}",
        by("oci.methods")
    );
    for f in [
        "npm.token.write",
        "crates.credential",
        "kube.rbac",
        "oci.methods",
    ] {
        assert_eq!(by(f)["blocks_containment"], true, "{f}");
        assert!(
            !by(f)["fix"].as_str().unwrap_or("").is_empty(),
            "{f} has a fix"
        );
    }
    // Nothing mutating reached any server, preflight included.
    assert_eq!(
        npm.mutating_requests_since(npm_mark),
        Vec::<(String, String)>::new()
    );
    assert_eq!(
        reg.mutating_requests_since(reg_mark),
        Vec::<(String, String)>::new()
    );
    assert_eq!(crates.server().mutating_calls(), 0);
    assert_eq!(kube.mutations(), 0);

    // ---- fixed: a read-write token, Recall's crates token, full RBAC, a writable registry.
    kube.allow_all();
    reg.restart(false).await.expect("writable registry");
    let (npm_mark, reg_mark) = (npm.mark(), reg.mark());
    std::fs::write(&recall.config, config("GD_NPM_RW", "GD_CRATES")).expect("config");
    recall.env.push(("GD_NPM_RW".into(), rw.clone()));
    recall
        .env
        .push(("GD_CRATES".into(), "cio-gameday-token".into()));
    let (out, report) = run(&recall);
    assert_eq!(out.code, Some(0), "{out:?}\n{:#}", report["findings"]);
    for secret in [rw.as_str(), "cio-gameday-token"] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "a token leaked into the report"
        );
    }
    let db = std::fs::read(recall.dir.path().join("recall.db")).unwrap_or_default();
    let db = String::from_utf8_lossy(&db);
    assert!(
        !db.contains(rw.as_str()) && !db.contains(ro.as_str()) && !db.contains("cio-gameday-token"),
        "a token reached the database"
    );
    assert_eq!(report["verdict"], "would_contain");
    assert!(
        report["findings"]
            .as_array()
            .is_some_and(|a| a.iter().all(|f| f["severity"] == "unknown")),
        "only unknowns remain: {:#}",
        report["findings"]
    );
    // The would-send requests are the containment itself.
    let sends: Vec<String> = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["items"].as_array().cloned().unwrap_or_default())
        .flat_map(|i| i["would_send"].as_array().cloned().unwrap_or_default())
        .map(|r| r["method"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(sends.iter().any(|m| m == "PUT"), "{sends:?}");
    assert_eq!(
        npm.mutating_requests_since(npm_mark),
        Vec::<(String, String)>::new()
    );
    assert_eq!(
        reg.mutating_requests_since(reg_mark),
        Vec::<(String, String)>::new()
    );
    assert_eq!(crates.server().mutating_calls(), 0);
    assert_eq!(kube.mutations(), 0);
}
