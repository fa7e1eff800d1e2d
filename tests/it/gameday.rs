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
