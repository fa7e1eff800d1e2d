//! `recall report`: figures across incidents — time to contain (live), the game-day pass
//! rate (rehearsals), and the steps that fail most — the adoption metrics a response
//! program tracks. Everything is recomputed from the stored incidents and timelines.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::postmortem::{model, offset};
use crate::store::{Store, StoreError};

fn pct(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize])
}

/// The report over incidents created at or after `since` (ms since the epoch).
pub async fn report(store: &dyn Store, since: Option<i64>, now: i64) -> Result<Value, StoreError> {
    let mut live_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut ttc: Vec<i64> = Vec::new();
    let mut first: Vec<i64> = Vec::new();
    let mut not_contained = Vec::new();
    let (mut rehearsals, mut passed) = (0u64, 0u64);
    let mut failing_rehearsals = Vec::new();
    let mut failing: BTreeMap<(String, String), (u64, String)> = BTreeMap::new();
    let list = store.list().await?;
    let mut considered = 0;
    for i in list
        .iter()
        .filter(|i| since.is_none_or(|s| i.created_at >= s))
    {
        considered += 1;
        let Some(run) = store.load(&i.id).await? else {
            continue;
        };
        let events = store.events(&i.id).await?;
        let m = model(&run, &events, None, now);
        for s in run.steps.iter().filter(|s| s.status == "failed") {
            let e = failing
                .entry((i.playbook_name.clone(), s.step_id.clone()))
                .or_insert((0, String::new()));
            e.0 += 1;
            e.1 = s.error.clone().unwrap_or_default();
        }
        if i.mode == "rehearsal" {
            rehearsals += 1;
            // A game day passes when it finished and nothing would have blocked containment.
            let blocked = m["findings"].as_array().is_some_and(|f| {
                f.iter().any(|x| {
                    x["finding"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("blocker"))
                })
            });
            if i.status == "succeeded" && !blocked {
                passed += 1;
            } else {
                failing_rehearsals.push(json!({ "id": i.id, "playbook": i.playbook_name, "status": i.status, "blocked": blocked }));
            }
            continue;
        }
        *live_status.entry(i.status.clone()).or_default() += 1;
        match m["containment_ms"]["full"].as_i64() {
            Some(t) => ttc.push(t),
            None => not_contained
                .push(json!({ "id": i.id, "playbook": i.playbook_name, "status": i.status })),
        }
        if let Some(t) = m["containment_ms"]["first"].as_i64() {
            first.push(t);
        }
    }
    ttc.sort_unstable();
    first.sort_unstable();
    let dist = |v: &[i64]| {
        json!({
            "count": v.len(),
            "p50": pct(v, 0.5).map(offset), "p90": pct(v, 0.9).map(offset),
            "max": v.last().copied().map(offset),
            "p50_ms": pct(v, 0.5), "p90_ms": pct(v, 0.9), "max_ms": v.last(),
        })
    };
    let mut top: Vec<Value> = failing
        .into_iter()
        .map(|((pb, step), (n, err))| json!({ "playbook": pb, "step": step, "failures": n, "last_error": err }))
        .collect();
    top.sort_by(|a, b| b["failures"].as_u64().cmp(&a["failures"].as_u64()));
    top.truncate(10);
    Ok(json!({
        "since": since.map(crate::postmortem::rfc3339),
        "incidents": considered,
        "live": {
            "by_status": live_status,
            "time_to_first_containment": dist(&first),
            "time_to_full_containment": dist(&ttc),
            "not_fully_contained": not_contained,
        },
        "game_days": {
            "count": rehearsals,
            "passed": passed,
            "pass_rate": if rehearsals == 0 { Value::Null } else { json!((passed as f64) / (rehearsals as f64)) },
            "not_passed": failing_rehearsals,
        },
        "most_failing_steps": top,
    }))
}

/// The report as text for a terminal.
pub fn to_text(r: &Value) -> String {
    let mut out = String::new();
    let d = |v: &Value| {
        format!(
            "{} incident(s): p50 {}, p90 {}, max {}",
            v["count"],
            v["p50"].as_str().unwrap_or("-"),
            v["p90"].as_str().unwrap_or("-"),
            v["max"].as_str().unwrap_or("-")
        )
    };
    out.push_str(&format!(
        "Incidents{}: {}\n\nLive incidents by status: {}\n  time to first containment: {}\n  time to full containment:  {}\n  not fully contained: {}\n",
        r["since"].as_str().map(|s| format!(" since {s}")).unwrap_or_default(),
        r["incidents"],
        r["live"]["by_status"],
        d(&r["live"]["time_to_first_containment"]),
        d(&r["live"]["time_to_full_containment"]),
        r["live"]["not_fully_contained"].as_array().map_or(0, Vec::len),
    ));
    let g = &r["game_days"];
    out.push_str(&format!(
        "\nGame days: {} run, {} passed{}\n",
        g["count"],
        g["passed"],
        g["pass_rate"]
            .as_f64()
            .map(|p| format!(" ({:.0}%)", p * 100.0))
            .unwrap_or_default()
    ));
    out.push_str("\nMost failing steps:\n");
    match r["most_failing_steps"].as_array() {
        Some(a) if !a.is_empty() => {
            for s in a {
                out.push_str(&format!(
                    "  {:>3}x {}/{}: {}\n",
                    s["failures"],
                    s["playbook"].as_str().unwrap_or(""),
                    s["step"].as_str().unwrap_or(""),
                    s["last_error"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(120)
                        .collect::<String>()
                ));
            }
        }
        _ => out.push_str("  none\n"),
    }
    out
}
