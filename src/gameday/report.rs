//! The rehearsal report: every step with its preflight verdicts, the requests it would have
//! sent, the approvals it would have needed and from whom, an estimate of the time to
//! contain from the measured latency of its reads, and the findings ranked by what would
//! have blocked containment. Built only from what the rehearsal recorded.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::actions::preflight::{Check, Impact, Verdict};
use crate::config::Config;
use crate::engine::describe_inputs;
use crate::playbook::Playbook;
use crate::postmortem::{offset, phase_of, rfc3339};
use crate::store::StoredRun;
use crate::timeline::Event;

pub const FORMAT: &str = "recall-gameday/1";

/// Phases whose failure means the bad release stays out there (the exit code's question).
fn containment(phase: &str) -> bool {
    matches!(phase, "contain" | "rotate")
}

fn phase_rank(phase: &str) -> u8 {
    match phase {
        "contain" => 0,
        "rotate" => 1,
        "scope" => 2,
        "delete" => 3,
        "follow-up" => 4,
        "coordination" => 5,
        _ => 6,
    }
}

/// One finding of the ranked list.
#[derive(Clone, Debug)]
struct Finding {
    severity: &'static str,
    step: String,
    order: usize,
    phase: &'static str,
    check: String,
    subject: String,
    evidence: String,
    fix: String,
}

impl Finding {
    fn rank(&self) -> (u8, u8, usize) {
        let sev = match (self.severity, containment(self.phase)) {
            ("blocks", true) => 0,
            ("blocks", false) => 1,
            ("degrades", _) => 2,
            _ => 3,
        };
        (sev, phase_rank(self.phase), self.order)
    }
}

/// Expand `group:x` / `user:y` approval entries and `[gate] approvers` into people; the
/// second list names groups the config does not define.
fn people(from: &[String], config: &Config, destructive: bool) -> (Vec<String>, Vec<String>) {
    let mut out: BTreeSet<String> = BTreeSet::new();
    let mut undefined = Vec::new();
    for f in from {
        match f.split_once(':') {
            Some(("group", g)) => match config.groups.get(g) {
                Some(m) => out.extend(m.iter().cloned()),
                None => undefined.push(g.to_string()),
            },
            Some(("user", u)) => {
                out.insert(u.to_string());
            }
            _ => {
                out.insert(f.clone());
            }
        }
    }
    if destructive {
        out.extend(config.gate.approvers.iter().cloned());
    }
    (out.into_iter().collect(), undefined)
}

/// Build the report model.
pub fn build(
    run: &StoredRun,
    events: &[Event],
    playbook: Option<&Playbook>,
    config: &Config,
    incident_checks: &[Check],
    scenario: Option<&str>,
) -> Value {
    let inc = &run.incident;
    let order: BTreeMap<String, usize> = match playbook {
        Some(pb) => pb
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect(),
        None => run
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.step_id.clone(), i))
            .collect(),
    };
    let uses_of: BTreeMap<String, String> = events
        .iter()
        .filter(|e| e.kind == "step.started")
        .filter_map(|e| Some((e.step.clone()?, e.data().get("uses")?.as_str()?.to_string())))
        .collect();
    let mut findings: Vec<Finding> = Vec::new();
    let mut steps_out = Vec::new();
    let mut estimate_end: BTreeMap<String, i64> = BTreeMap::new();
    let mut approvals_total: Vec<Value> = Vec::new();
    let mut steps: Vec<_> = run.steps.iter().collect();
    steps.sort_by_key(|s| order.get(&s.step_id).copied().unwrap_or(usize::MAX));
    for s in steps {
        let idx = order.get(&s.step_id).copied().unwrap_or(usize::MAX);
        let def = playbook.and_then(|p| p.step(&s.step_id));
        let uses = uses_of
            .get(&s.step_id)
            .cloned()
            .or_else(|| def.map(|d| d.uses.clone()))
            .unwrap_or_default();
        let phase = phase_of(&uses);
        let mut items = Vec::new();
        let mut seen_checks: BTreeSet<(String, String)> = BTreeSet::new();
        let mut step_ms: i64 = 0;
        let mut tasks: Vec<_> = run
            .tasks
            .iter()
            .filter(|t| t.step_id == s.step_id)
            .collect();
        tasks.sort_by_key(|t| t.item_index);
        for t in tasks {
            let planned = events.iter().rev().find(|e| {
                e.step.as_deref() == Some(&s.step_id)
                    && e.index == Some(t.item_index)
                    && e.kind == "attempt.planned"
            });
            // When the deletion gate could not read its facts, the plan never ran and the
            // checks came with the gate's failure.
            let detail = match planned {
                Some(e) => e.data().get("detail").cloned().unwrap_or(Value::Null),
                None => events
                    .iter()
                    .rev()
                    .find(|e| {
                        e.step.as_deref() == Some(&s.step_id)
                            && e.index == Some(t.item_index)
                            && e.kind == "gate.unavailable"
                    })
                    .and_then(|e| e.data().get("preflight").cloned())
                    .map(|p| json!({ "preflight": p }))
                    .unwrap_or(Value::Null),
            };
            let checks: Vec<Check> = detail
                .get("preflight")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|c| serde_json::from_value(c.clone()).ok())
                        .collect()
                })
                .unwrap_or_default();
            let requests: Vec<Value> = detail
                .get("requests")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            json!({
                                "method": r.get("method").cloned().unwrap_or(Value::Null),
                                "url": r.get("url").or(r.get("path")).cloned().unwrap_or(Value::Null),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            let plan_findings: Vec<String> = detail
                .get("findings")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let plan_ms = detail
                .pointer("/timing/plan_ms")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            // A live item reads what the plan read, sends each request (about one round
            // trip to the same server, which the plan's reads measured), and reads again
            // to verify: plan_ms × (2 + requests).
            let item_ms = if requests.is_empty() {
                plan_ms
            } else {
                plan_ms * (2 + requests.len() as i64)
            };
            step_ms = step_ms.max(item_ms);
            let item_blocked = checks.iter().any(Check::blocks);
            for c in &checks {
                if c.verdict == Verdict::Pass {
                    continue;
                }
                if !seen_checks.insert((c.check.clone(), c.subject.clone())) {
                    continue;
                }
                findings.push(Finding {
                    severity: match (c.verdict, c.impact) {
                        (Verdict::Fail, Impact::Blocks) => "blocks",
                        (Verdict::Fail, _) => "degrades",
                        _ => "unknown",
                    },
                    step: s.step_id.clone(),
                    order: idx,
                    phase,
                    check: c.check.clone(),
                    subject: c.subject.clone(),
                    evidence: c.evidence.clone(),
                    fix: c.fix.clone().unwrap_or_default(),
                });
            }
            // A plan's own blocker is a finding unless a failed preflight check of the same
            // item already explains it (a missing token fails both).
            if !item_blocked {
                for f in &plan_findings {
                    if let Some(b) = f.strip_prefix("blocker: ")
                        && seen_checks.insert(("plan".into(), b.to_string()))
                    {
                        findings.push(Finding {
                            severity: "blocks",
                            step: s.step_id.clone(),
                            order: idx,
                            phase,
                            check: "plan".into(),
                            subject: describe_inputs(&t.inputs),
                            evidence: b.to_string(),
                            fix: "see the evidence: the rehearsal's plan could not be made".into(),
                        });
                    }
                }
            }
            // A deletion the gate refused is the gate working, shown under the step.
            let gate_refused = events.iter().any(|e| {
                e.kind == "gate.refused"
                    && e.step.as_deref() == Some(&s.step_id)
                    && e.index.is_none_or(|i| i == t.item_index)
            });
            if t.status == "failed" && !gate_refused {
                findings.push(Finding {
                    severity: "blocks",
                    step: s.step_id.clone(),
                    order: idx,
                    phase,
                    check: "step".into(),
                    subject: describe_inputs(&t.inputs),
                    evidence: t.error.clone().unwrap_or_else(|| "failed".into()),
                    fix: "fix the step's inputs or the playbook".into(),
                });
            }
            items.push(json!({
                "item": t.item_index,
                "target": describe_inputs(&t.inputs),
                "status": t.status,
                "preflight": checks.iter().map(Check::to_json).collect::<Vec<_>>(),
                "would_send": requests,
                "plan_findings": plan_findings,
                "timing": { "preflight_ms": detail.pointer("/timing/preflight_ms").cloned().unwrap_or(Value::Null), "plan_ms": plan_ms },
                "estimate_ms": item_ms,
            }));
        }
        // Approvals the live run would wait for.
        let approval = events
            .iter()
            .find(|e| e.kind == "approval.requested" && e.step.as_deref() == Some(&s.step_id))
            .map(|e| {
                let d = e.data();
                let from: Vec<String> = d
                    .get("from")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let destructive = d
                    .get("destructive")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let needed = d.get("needed").and_then(Value::as_u64).unwrap_or(1);
                let (who, undefined) = people(&from, config, destructive);
                json!({
                    "needed": needed,
                    "from": from,
                    "people": who,
                    "undefined_groups": undefined,
                    "destructive": destructive,
                    "target": d.get("target").cloned().unwrap_or(Value::Null),
                    "not_the_starter": !config.approvals.allow_self_approval,
                })
            });
        if let Some(a) = &approval {
            approvals_total.push(json!({ "step": s.step_id, "needed": a["needed"], "from": a["from"], "people": a["people"] }));
            let n = a["needed"].as_u64().unwrap_or(1) as usize;
            let who = a["people"].as_array().map(Vec::len).unwrap_or(0);
            if who < n {
                findings.push(Finding {
                    severity: "blocks",
                    step: s.step_id.clone(),
                    order: idx,
                    phase,
                    check: "approvals".into(),
                    subject: format!("{n} approval(s) for `{}`", s.step_id),
                    evidence: format!(
                        "{who} person(s) can approve{}{}",
                        if who > 0 { format!(": {}", a["people"]) } else { String::new() },
                        match a["undefined_groups"].as_array() {
                            Some(g) if !g.is_empty() => format!(
                                "; group(s) {} not defined in [groups]",
                                g.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
                            ),
                            _ => String::new(),
                        }
                    ),
                    fix: "add approvers to the groups the step names ([groups] in the config) or to [gate] approvers".into(),
                });
            }
        }
        let gate: Vec<Value> = events
            .iter()
            .filter(|e| e.kind.starts_with("gate.") && e.step.as_deref() == Some(&s.step_id))
            .map(|e| json!({ "kind": e.kind, "summary": e.summary }))
            .collect();
        // When this step would end, live: after every step it needs.
        let start = def
            .map(|d| {
                d.needs
                    .iter()
                    .filter_map(|n| estimate_end.get(n))
                    .copied()
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        let ran = !matches!(s.status.as_str(), "skipped" | "pending");
        let end = start + if ran { step_ms } else { 0 };
        estimate_end.insert(s.step_id.clone(), end);
        steps_out.push(json!({
            "step": s.step_id,
            "uses": uses,
            "phase": phase,
            "status": s.status,
            "why": events.iter().rev().find(|e| e.step.as_deref() == Some(&s.step_id) && e.kind == "step.skipped").map(|e| e.summary.clone()),
            "items": items,
            "approval": approval,
            "gate": gate,
            "estimate_ms": if ran { step_ms } else { 0 },
            "estimate_end_ms": end,
        }));
    }
    for c in incident_checks
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
    {
        findings.push(Finding {
            severity: match (c.verdict, c.impact) {
                (Verdict::Fail, Impact::Blocks) => "blocks",
                (Verdict::Fail, _) => "degrades",
                _ => "unknown",
            },
            step: "(incident)".into(),
            order: usize::MAX,
            phase: "coordination",
            check: c.check.clone(),
            subject: c.subject.clone(),
            evidence: c.evidence.clone(),
            fix: c.fix.clone().unwrap_or_default(),
        });
    }
    findings.sort_by_key(Finding::rank);
    // The same problem found by several steps (one token used by all of them) is one
    // finding naming every step, at the rank of its most urgent occurrence.
    let mut merged: Vec<(Finding, Vec<String>)> = Vec::new();
    for f in findings {
        match merged
            .iter_mut()
            // Same fix too: one credential may need one permission here, another there.
            .find(|(m, _)| {
                m.check == f.check
                    && m.subject == f.subject
                    && m.evidence == f.evidence
                    && m.fix == f.fix
            }) {
            Some((_, steps)) => {
                if !steps.contains(&f.step) {
                    steps.push(f.step.clone());
                }
            }
            None => {
                let step = f.step.clone();
                merged.push((f, vec![step]));
            }
        }
    }
    let blocking = merged
        .iter()
        .filter(|(f, _)| f.severity == "blocks" && containment(f.phase))
        .count();
    let contain_ms = steps_out
        .iter()
        .filter(|s| containment(s["phase"].as_str().unwrap_or("")))
        .filter_map(|s| s["estimate_end_ms"].as_i64())
        .max()
        .unwrap_or(0);
    let total_ms = estimate_end.values().copied().max().unwrap_or(0);
    let count = |sev: &str| merged.iter().filter(|(f, _)| f.severity == sev).count();
    json!({
        "format": FORMAT,
        "incident": {
            "id": inc.id, "playbook": inc.playbook_name, "playbook_file": inc.playbook_file,
            "playbook_sha256": inc.playbook_sha256, "scenario": scenario, "status": inc.status,
            "started_by": inc.started_by, "started_at": rfc3339(inc.created_at),
            "finished_at": inc.finished_at.map(rfc3339),
            "params": inc.params,
        },
        "verdict": if blocking > 0 { "blocked" } else { "would_contain" },
        "blocks_containment": blocking,
        "counts": {
            "blocks": count("blocks"), "degrades": count("degrades"), "unknown": count("unknown"),
        },
        "findings": merged.iter().enumerate().map(|(i, (f, steps))| json!({
            "rank": i + 1, "severity": f.severity, "blocks_containment": f.severity == "blocks" && containment(f.phase),
            "step": f.step, "steps": steps, "phase": f.phase, "check": f.check, "subject": f.subject,
            "evidence": f.evidence, "fix": f.fix,
        })).collect::<Vec<_>>(),
        "incident_checks": incident_checks.iter().map(Check::to_json).collect::<Vec<_>>(),
        "approvals": approvals_total,
        "estimate": {
            "contain_ms": contain_ms,
            "contain": offset(contain_ms),
            "total_ms": total_ms,
            "model": "each item: the plan's measured read time × (2 + requests it would send); items of a step in parallel; steps after the steps they need; approvals not included",
        },
        "steps": steps_out,
    })
}

/// Does the report say containment would have been blocked?
pub fn blocked(report: &Value) -> bool {
    report["blocks_containment"].as_u64().unwrap_or(0) > 0
}

fn cell(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The Markdown rendering.
pub fn to_markdown(r: &Value) -> String {
    let mut o = String::new();
    let inc = &r["incident"];
    let title = inc["scenario"]
        .as_str()
        .map(|s| format!("scenario `{s}`"))
        .unwrap_or_else(|| format!("playbook `{}`", cell(&inc["playbook"])));
    o.push_str(&format!("# Game day: {title}\n\n"));
    let verdict = if blocked(r) {
        format!(
            "**Containment would have been blocked**: {} finding(s) stop a containment step.",
            r["blocks_containment"]
        )
    } else {
        "**Nothing found that would block containment.**".to_string()
    };
    o.push_str(&format!("{verdict}\n\n"));
    o.push_str(&format!(
        "- rehearsal: {} (playbook `{}`, sha256 `{}`), {}\n- findings: {} blocking, {} degrading, {} unknown\n- estimated time to contain: {} (all steps: {}); {}\n\n",
        cell(&inc["id"]),
        cell(&inc["playbook"]),
        cell(&inc["playbook_sha256"]).chars().take(12).collect::<String>(),
        cell(&inc["status"]),
        r["counts"]["blocks"],
        r["counts"]["degrades"],
        r["counts"]["unknown"],
        cell(&r["estimate"]["contain"]),
        offset(r["estimate"]["total_ms"].as_i64().unwrap_or(0)),
        cell(&r["estimate"]["model"]),
    ));
    o.push_str("## Findings, ranked by what would block containment\n\n");
    let findings = r["findings"].as_array().cloned().unwrap_or_default();
    if findings.is_empty() {
        o.push_str("None.\n\n");
    } else {
        o.push_str("| # | severity | steps | check | subject | evidence | fix |\n|---|---|---|---|---|---|---|\n");
        for f in &findings {
            o.push_str(&format!(
                "| {} | {}{} | {} | {} | {} | {} | {} |\n",
                f["rank"],
                cell(&f["severity"]),
                if f["blocks_containment"] == true {
                    " (containment)"
                } else {
                    ""
                },
                f["steps"]
                    .as_array()
                    .map(|a| a.iter().map(cell).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
                cell(&f["check"]),
                cell(&f["subject"]),
                cell(&f["evidence"]),
                cell(&f["fix"]),
            ));
        }
        o.push('\n');
    }
    o.push_str("## Approvals the live run would wait for\n\n");
    let approvals = r["approvals"].as_array().cloned().unwrap_or_default();
    if approvals.is_empty() {
        o.push_str("None.\n\n");
    } else {
        for a in &approvals {
            let people: Vec<String> = a["people"]
                .as_array()
                .map(|p| p.iter().map(cell).collect())
                .unwrap_or_default();
            o.push_str(&format!(
                "- `{}`: {} approval(s) from {}\n",
                cell(&a["step"]),
                a["needed"],
                match (
                    people.is_empty(),
                    a["from"].as_array().is_some_and(|f| !f.is_empty())
                ) {
                    (false, _) => people.join(", "),
                    (true, true) => format!("nobody: {} names no configured person", a["from"]),
                    (true, false) => "anyone but the starter".to_string(),
                }
            ));
        }
        o.push('\n');
    }
    o.push_str("## Steps\n\n");
    for s in r["steps"].as_array().cloned().unwrap_or_default() {
        o.push_str(&format!(
            "### `{}` — {} ({}, {})\n\n",
            cell(&s["step"]),
            cell(&s["uses"]),
            cell(&s["phase"]),
            cell(&s["status"])
        ));
        if let Some(w) = s["why"].as_str() {
            o.push_str(&format!(
                "Skipped: {}\n\n",
                cell(&json!(w.trim_start_matches("skipped: ")))
            ));
        }
        // Each check once per step (items share the credential and the registry); the fixes
        // are in the findings table.
        let mut seen = BTreeSet::new();
        let items = s["items"].as_array().cloned().unwrap_or_default();
        for c in items
            .iter()
            .flat_map(|it| it["preflight"].as_array().cloned().unwrap_or_default())
        {
            let line = format!(
                "- {} `{}` {}: {}\n",
                cell(&c["verdict"]).to_uppercase(),
                cell(&c["check"]),
                cell(&c["subject"]),
                cell(&c["evidence"]),
            );
            if seen.insert(line.clone()) {
                o.push_str(&line);
            }
        }
        for it in &items {
            let sends: Vec<String> = it["would_send"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|q| format!("`{} {}`", cell(&q["method"]), cell(&q["url"])))
                        .collect()
                })
                .unwrap_or_default();
            o.push_str(&format!(
                "- item {} `{}`: {} — estimate {} ms\n",
                it["item"],
                cell(&it["target"]),
                if sends.is_empty() {
                    "would send nothing".to_string()
                } else {
                    format!("would send {}", sends.join(", "))
                },
                it["estimate_ms"]
            ));
            for f in it["plan_findings"].as_array().cloned().unwrap_or_default() {
                o.push_str(&format!("  - plan: {}\n", cell(&f)));
            }
        }
        if let Some(a) = s["approval"].as_object() {
            o.push_str(&format!(
                "- needs {} approval(s){}\n",
                a.get("needed").cloned().unwrap_or(json!(1)),
                if a.get("destructive") == Some(&json!(true)) {
                    " (destructive: the deletion gate re-checks the window live)"
                } else {
                    ""
                }
            ));
        }
        for g in s["gate"].as_array().cloned().unwrap_or_default() {
            o.push_str(&format!(
                "- {}: {}\n",
                cell(&g["kind"]),
                cell(&g["summary"])
            ));
        }
        o.push('\n');
    }
    o
}

/// A few lines for Slack: the verdict and the top findings.
pub fn summary(r: &Value, max: usize) -> String {
    let inc = &r["incident"];
    let name = inc["scenario"]
        .as_str()
        .or(inc["playbook"].as_str())
        .unwrap_or("game day");
    let mut s = format!(
        "Game day `{name}` ({}): {} — {} blocking, {} degrading, {} unknown; estimated time to contain {}",
        cell(&inc["id"]),
        if blocked(r) {
            "containment would have been BLOCKED"
        } else {
            "nothing would block containment"
        },
        r["counts"]["blocks"],
        r["counts"]["degrades"],
        r["counts"]["unknown"],
        cell(&r["estimate"]["contain"]),
    );
    for f in r["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["severity"] != "unknown")
        .take(max)
    {
        s.push_str(&format!(
            "\n• `{}` {}: {} — fix: {}",
            cell(&f["step"]),
            cell(&f["check"]),
            cell(&f["evidence"]),
            cell(&f["fix"])
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Event;

    fn planned(step: &str, index: u32, detail: Value) -> Event {
        Event {
            incident: "inc-golden02".into(),
            seq: 1000,
            at: 0,
            actor: "npm".into(),
            kind: "attempt.planned".into(),
            step: Some(step.into()),
            index: Some(index),
            summary: "planned".into(),
            data_json: json!({ "attempt": 1, "detail": detail }).to_string(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn token_missing() -> Value {
        Check::fail(
            "npm.credential",
            "npm token",
            "no token is set",
            "set NPM_TOKEN",
        )
        .to_json()
    }

    #[test]
    fn containment_blockers_rank_first_and_repeats_merge() {
        let (mut run, mut events) = crate::postmortem::fixture_run();
        run.incident.mode = "rehearsal".into();
        // The same missing token on both deprecate items and on the revoke; a degraded
        // check and an unknown one on the revoke; a plan blocker the token explains.
        for i in 0..2 {
            events.push(planned(
                "deprecate",
                i,
                json!({ "preflight": [token_missing()], "requests": [{"method": "PUT", "url": "http://r/left-pad"}],
                        "findings": ["blocker: could not read the packument"], "timing": {"plan_ms": 10} }),
            ));
        }
        events.push(planned(
            "revoke-token",
            0,
            json!({ "preflight": [
                token_missing(),
                Check::fail("x.slow", "s", "e", "f").impact(Impact::Degrades).to_json(),
                Check::unknown("x.maybe", "s", "e", "f").to_json(),
                Check::pass("x.ok", "s", "e").to_json(),
            ], "timing": {"plan_ms": 5} }),
        ));
        let config = Config::default();
        let r = build(&run, &events, None, &config, &[], Some("demo"));
        let f = r["findings"].as_array().unwrap();
        assert_eq!(f.len(), 3, "{f:#?}");
        assert_eq!(f[0]["check"], "npm.credential");
        assert_eq!(f[0]["steps"], json!(["deprecate", "revoke-token"]));
        assert_eq!(f[0]["blocks_containment"], true);
        assert_eq!(f[1]["severity"], "degrades");
        assert_eq!(f[2]["severity"], "unknown");
        assert!(blocked(&r));
        assert_eq!(r["verdict"], "blocked");
        // 10 ms of reads, one request: 10 × (2 + 1).
        assert_eq!(r["steps"][0]["estimate_ms"], 30);
        let md = to_markdown(&r);
        assert!(
            md.contains("**Containment would have been blocked**"),
            "{md}"
        );
        assert!(
            md.contains("| 1 | blocks (containment) | deprecate, revoke-token | npm.credential"),
            "{md}"
        );
        assert!(md.contains("would send `PUT http://r/left-pad`"), "{md}");
        assert!(summary(&r, 5).contains("BLOCKED"));
    }

    #[test]
    fn a_clean_rehearsal_would_contain_and_plan_blockers_count() {
        let (mut run, mut events) = crate::postmortem::fixture_run();
        run.incident.mode = "rehearsal".into();
        events.push(planned(
            "deprecate",
            0,
            json!({ "preflight": [Check::pass("npm.whoami", "t", "alice").to_json()], "timing": {"plan_ms": 1} }),
        ));
        let config = Config::default();
        let r = build(&run, &events, None, &config, &[], None);
        // The fixture's unpublish step failed (the gate): a blocker outside containment.
        assert!(!blocked(&r), "{:#}", r["findings"]);
        assert_eq!(r["verdict"], "would_contain");
        events.push(planned(
            "deprecate",
            1,
            json!({ "findings": ["blocker: package left-pad does not exist"] }),
        ));
        let r = build(&run, &events, None, &config, &[], None);
        assert!(blocked(&r));
        assert_eq!(r["findings"][0]["check"], "plan");
    }

    #[test]
    fn a_gate_that_could_not_read_its_facts_still_reports_the_preflight() {
        let (mut run, mut events) = crate::postmortem::fixture_run();
        run.incident.mode = "rehearsal".into();
        let mut e = planned("unpublish", 0, Value::Null);
        e.kind = "gate.unavailable".into();
        e.data_json = json!({ "attempt": 1, "error": "no such digest", "transient": false,
            "preflight": [Check::fail("npm.token.write", "t", "readonly: true", "a read-write token").to_json()] })
            .to_string();
        events.push(e);
        let r = build(&run, &events, None, &Config::default(), &[], None);
        let f = r["findings"].as_array().unwrap();
        assert!(
            f.iter()
                .any(|f| f["check"] == "npm.token.write" && f["step"] == "unpublish"),
            "{f:#?}"
        );
        // A deletion is not containment.
        assert!(!blocked(&r));
    }

    #[test]
    fn approvers_are_people_from_groups_and_the_gate() {
        let mut config = Config::default();
        config
            .groups
            .insert("release-admins".into(), vec!["alice".into(), "bob".into()]);
        config.gate.approvers = vec!["carol".into()];
        let (p, undefined) = people(
            &[
                "group:release-admins".into(),
                "user:dave".into(),
                "group:ghosts".into(),
            ],
            &config,
            true,
        );
        assert_eq!(p, vec!["alice", "bob", "carol", "dave"]);
        assert_eq!(undefined, vec!["ghosts"]);
        let (p, _) = people(&["group:release-admins".into()], &config, false);
        assert_eq!(p, vec!["alice", "bob"]);
    }
}
