//! `recall timeline --format csv` with `--kind/--step/--since`: the CSV is read back by an
//! independent parser (Python's `csv` module) with quotes, commas, newlines and a
//! formula-looking note inside fields; the filters keep exactly what they name.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::Recall;

fn python_csv(text: &str) -> Vec<Vec<String>> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.reader(sys.stdin.read().splitlines(keepends=True)))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("rows")
}

#[test]
fn csv_survives_quotes_commas_newlines_and_filters_keep_what_they_name() {
    let r = Recall::new("");
    let run = r.rehearse("ua-parser-js-2021");
    let id = run.id();
    let tricky = "He said \"stop\", then\nleft; cost: $1,000";
    let n = r.run(&["note", &id, tricky, "--as", "carol, lead"]);
    assert_eq!(n.code, Some(0), "{n:?}");
    let n = r.run(&["note", &id, "=HYPERLINK(\"http://x\")", "--as", "mallory"]);
    assert_eq!(n.code, Some(0), "{n:?}");

    let csv = r.run(&["timeline", &id, "--format", "csv"]);
    assert_eq!(csv.code, Some(0), "{csv:?}");
    let rows = python_csv(&csv.stdout);
    assert_eq!(rows[0][..5], ["seq", "time_utc", "offset", "actor", "kind"]);
    let json = r.timeline(&id);
    let events = json["events"].as_array().unwrap();
    assert_eq!(rows.len(), events.len() + 1, "one row per event");
    for (row, e) in rows[1..].iter().zip(events) {
        assert_eq!(row.len(), 12, "{row:?}");
        assert_eq!(row[0], e["seq"].to_string());
        assert_eq!(row[4], e["kind"].as_str().unwrap());
    }
    let note = rows
        .iter()
        .find(|r| r[3] == "carol, lead")
        .expect("the note row");
    assert!(note[7].contains(tricky), "round trip: {note:?}");
    let formula = rows
        .iter()
        .find(|r| r[3] == "mallory")
        .expect("the formula note");
    assert!(formula[7].starts_with('\''), "defused: {formula:?}");

    // Filters.
    let only = r.run(&["timeline", &id, "--format", "json", "--kind", "note"]);
    let v: serde_json::Value = serde_json::from_str(&only.stdout).unwrap();
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["note", "note"]);
    let approvals = r.run(&["timeline", &id, "--format", "json", "--kind", "approval.*"]);
    let v: serde_json::Value = serde_json::from_str(&approvals.stdout).unwrap();
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"].as_str().unwrap().starts_with("approval."))
    );
    let step = events
        .iter()
        .find_map(|e| e["step"].as_str())
        .unwrap()
        .to_string();
    let by_step = r.run(&["timeline", &id, "--format", "json", "--step", &step]);
    let v: serde_json::Value = serde_json::from_str(&by_step.stdout).unwrap();
    assert!(!v["events"].as_array().unwrap().is_empty());
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["step"] == step.as_str())
    );
    let future = r.run(&[
        "timeline",
        &id,
        "--format",
        "csv",
        "--since",
        "2999-01-01T00:00:00Z",
    ]);
    assert_eq!(python_csv(&future.stdout).len(), 1, "header only");
    let recent = r.run(&["timeline", &id, "--format", "csv", "--since", "1h"]);
    assert_eq!(python_csv(&recent.stdout).len(), events.len() + 1);
    let bad = r.run(&["timeline", &id, "--since", "yesterday"]);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert!(bad.stderr.contains("--since"), "{bad:?}");
}

#[test]
fn report_counts_incidents_game_days_and_failing_steps() {
    let r = Recall::new("");
    let pb = crate::support::write_file(
        r.dir.path(),
        "fails.yaml",
        b"name: fails\ndescription: one step that fails\nsteps:\n  - id: bad\n    uses: kube.find_running\n    with:\n      digests: [\"not-a-digest\"]\n      cluster: nowhere\n",
    );
    let a = r.run(&["incident", "start", "--playbook", &pb, "--json"]);
    assert!(matches!(a.code, Some(0 | 1)), "{a:?}");
    r.rehearse("ua-parser-js-2021");
    r.rehearse("ultralytics-2024");
    let out = r.run(&["report", "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["incidents"], 3, "{v}");
    assert_eq!(v["game_days"]["count"], 2, "{v}");
    let passed = v["game_days"]["passed"].as_u64().unwrap();
    let not_passed = v["game_days"]["not_passed"].as_array().unwrap().len() as u64;
    assert_eq!(passed + not_passed, 2);
    assert!(v["game_days"]["pass_rate"].is_number());
    assert_eq!(
        v["live"]["by_status"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>(),
        1
    );
    let text = r.run(&["report"]);
    assert!(text.stdout.contains("Game days: 2 run"), "{}", text.stdout);
    let none = r.run(&["report", "--json", "--since", "2999-01-01T00:00:00Z"]);
    let v: serde_json::Value = serde_json::from_str(&none.stdout).unwrap();
    assert_eq!(v["incidents"], 0);
}

/// The draft of the ua-parser-js game day names every bad version, every action with its
/// result, the approvals and the gate's section, and time-to-contain figures that are
/// exactly the timeline's.
#[test]
fn ua_parser_js_draft_matches_its_timeline() {
    let r = Recall::new("");
    let run = r.rehearse("ua-parser-js-2021");
    let id = run.id();
    let pm = r.run(&["postmortem", &id]);
    assert_eq!(pm.code, Some(0), "{pm:?}");
    let draft = pm.stdout;
    for v in ["0.7.29", "0.8.0", "1.0.0"] {
        assert!(
            draft.contains(&format!("ua-parser-js@{v}")),
            "version {v} missing"
        );
    }
    let show = r.show(&id);
    let tl = r.timeline(&id);
    let events = tl["events"].as_array().unwrap();
    for t in show["tasks"].as_array().unwrap() {
        let step = t["step_id"].as_str().unwrap();
        let item = t["item_index"].as_u64().unwrap();
        // The task's recorded result is the summary of its last result event.
        let last = events
            .iter()
            .rev()
            .find(|e| {
                e["step"] == step
                    && e["item"] == item
                    && e["kind"].as_str().unwrap().starts_with("attempt.")
                    && e["kind"] != "attempt.started"
            })
            .unwrap_or_else(|| panic!("no result event for {step}[{item}]"));
        let row = draft
            .lines()
            .find(|l| {
                l.starts_with(&format!("| {step} |"))
                    && l.contains(last["summary"].as_str().unwrap().split(';').next().unwrap())
            })
            .unwrap_or_else(|| panic!("no action row for {step}[{item}] with its result"));
        assert!(row.contains(t["status"].as_str().unwrap()), "{row}");
    }
    assert!(
        draft.contains("## Approvals") && draft.contains("revoke-token"),
        "approvals"
    );
    assert!(draft.contains("## Deletion gate"));
    // The exports link the registry objects each item touched.
    for v in ["0.7.29", "0.8.0", "1.0.0"] {
        let url = format!("https://www.npmjs.com/package/ua-parser-js/v/{v}");
        assert!(
            events.iter().any(|e| e["links"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x == url.as_str()))),
            "no event links {url}"
        );
    }
    // Time to full containment = the offset of the last contain-phase result event.
    let contain_steps = ["deprecate", "fix-latest"];
    let contain: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            contain_steps.contains(&e["step"].as_str().unwrap_or(""))
                && e["kind"].as_str().unwrap().starts_with("attempt.")
                && e["kind"] != "attempt.started"
        })
        .collect();
    let last_contain = contain
        .iter()
        .max_by_key(|e| e["at_ms"].as_i64().unwrap())
        .expect("contain events");
    let first_contain = contain
        .iter()
        .min_by_key(|e| e["at_ms"].as_i64().unwrap())
        .unwrap();
    let full = format!(
        "**Time to full containment:** {}",
        last_contain["offset"].as_str().unwrap()
    );
    let first = format!(
        "**Time to first containment:** {}",
        first_contain["offset"].as_str().unwrap()
    );
    assert!(draft.contains(&full), "expected {full:?} in the draft");
    assert!(draft.contains(&first), "expected {first:?} in the draft");
}
