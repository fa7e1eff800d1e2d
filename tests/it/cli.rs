//! The CLI contract other issues rely on: the README's game day works with no credentials
//! and no network, exit codes, JSON output, the schema, and the bundled playbooks lint clean.

use crate::support::Recall;

#[test]
fn game_day_runs_offline_and_records_findings() {
    // No registry reachable, no token: the rehearsal still completes and says what it could not read.
    let recall = Recall::new("[npm]\nregistry = \"http://127.0.0.1:9\"\n");
    let r = recall.rehearse("ua-parser-js-2021");
    assert_eq!(r.json()["status"], "succeeded");
    let id = r.id();
    let pm = recall.run(&["postmortem", &id]);
    assert_eq!(pm.code, Some(0), "{pm:?}");
    assert!(pm.stdout.contains("REHEARSAL"), "{}", pm.stdout);
    assert!(
        pm.stdout.contains("Rehearsal findings") && pm.stdout.contains("blocker: could not read"),
        "{}",
        pm.stdout
    );
    let md = recall.run(&["timeline", &id, "--format", "md"]);
    assert!(
        md.stdout.contains("REHEARSAL") && md.stdout.contains("(rehearsal)"),
        "{}",
        md.stdout
    );
    let out = recall.dir.path().join("pm.md");
    let w = recall.run(&["postmortem", &id, "--out", out.to_str().unwrap()]);
    assert_eq!(w.code, Some(0), "{w:?}");
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("## Timeline")
    );
}

#[test]
fn bundled_playbooks_lint_clean_and_schema_is_json() {
    let recall = Recall::new("");
    for pb in ["npm-compromised-release", "npm-account-compromise"] {
        let r = recall.run(&["playbook", "lint", pb]);
        assert_eq!(r.code, Some(0), "{pb}: {r:?}");
    }
    let files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["playbook", "lint"];
    args.extend(files.iter().map(String::as_str));
    let r = recall.run(&args);
    assert_eq!(r.code, Some(0), "{r:?}");
    let s = recall.run(&["playbook", "schema"]);
    assert_eq!(s.code, Some(0));
    assert!(s.json()["properties"]["steps"].is_object(), "{}", s.stdout);
}

#[test]
fn exit_codes_and_unknown_ids() {
    let recall = Recall::new("");
    let r = recall.run(&["incident", "show", "inc-nope"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    let r = recall.run(&["audit", "verify", "inc-nope"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    let r = recall.run(&["approve", "inc-nope", "x", "--as", "a", "--reason", "b"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    let r = recall.run(&["incident", "resume"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = recall.run(&["no-such-command"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    // A note on a real incident becomes a verified timeline event.
    let s = recall.run(&[
        "incident",
        "start",
        "--scenario",
        "solana-web3js-2024",
        "--dry-run",
        "--json",
    ]);
    let id = s.id();
    let late = recall.run(&[
        "approve",
        &id,
        "deprecate",
        "--as",
        "alice",
        "--reason",
        "late",
    ]);
    assert_eq!(
        late.code,
        Some(2),
        "a finished incident has nothing to approve: {late:?}"
    );
    assert!(late.stderr.contains("already succeeded"), "{late:?}");
    let n = recall.run(&["note", &id, "paged the maintainer", "--as", "carol"]);
    assert_eq!(n.code, Some(0), "{n:?}");
    let tl = recall.timeline(&id);
    let last = tl["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "note");
    assert_eq!(last["actor"], "carol");
    assert_eq!(recall.run(&["audit", "verify", &id]).code, Some(0));
}
