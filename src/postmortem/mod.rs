//! The postmortem draft: a model built from the stored run and its timeline, rendered with
//! handlebars (strict mode, no HTML escaping) from `templates/postmortem.md.hbs` or a
//! user template. The facts come only from what was recorded.

use std::collections::BTreeMap;

use handlebars::{Handlebars, handlebars_helper};
use serde_json::{Value, json};

use crate::store::{IncidentRecord, Store, StoreError, StoredRun};
use crate::timeline::{self, Event};

pub const DEFAULT_TEMPLATE: &str = include_str!("../../templates/postmortem.md.hbs");

#[derive(Debug, thiserror::Error)]
pub enum PostmortemError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("incident `{0}` not found")]
    NotFound(String),
    #[error("template: {0}")]
    Template(String),
}

/// The response phase an action belongs to, for grouping and time-to-contain figures.
pub fn phase_of(uses: &str) -> &'static str {
    let (family, verb) = uses.split_once('.').unwrap_or((uses, ""));
    match (family, verb) {
        (_, v) if v.contains("revoke") || v.contains("rotate") || v.contains("secret") => "rotate",
        (_, v) if v.contains("unpublish") || v.contains("delete") => "delete",
        ("sbom", _) | ("blast", _) => "scope",
        (_, v) if v.contains("find") || v.contains("blast") => "scope",
        ("postmortem", _) => "postmortem",
        // Issues and pull requests are follow-up work, not containment.
        ("github", v) if v.starts_with("open_") => "follow-up",
        ("incident", _) => "coordination",
        _ => "contain",
    }
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// `+1h02m03.456s` style offset from the incident's start.
pub fn offset(ms: i64) -> String {
    let neg = ms < 0;
    let ms = ms.unsigned_abs();
    let (h, m, s, milli) = (
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000,
    );
    let body = if h > 0 {
        format!("{h}h{m:02}m{s:02}.{milli:03}s")
    } else if m > 0 {
        format!("{m}m{s:02}.{milli:03}s")
    } else {
        format!("{s}.{milli:03}s")
    };
    format!("{}{body}", if neg { "-" } else { "+" })
}

/// Build the template model from the stored facts.
pub fn model(run: &StoredRun, events: &[Event], title: Option<&str>, now: i64) -> Value {
    let inc: &IncidentRecord = &run.incident;
    let start = inc.created_at;
    let rehearsal = inc.mode == "rehearsal";
    let uses_of: BTreeMap<String, String> = events
        .iter()
        .filter(|e| e.kind == "step.started")
        .filter_map(|e| Some((e.step.clone()?, e.data().get("uses")?.as_str()?.to_string())))
        .collect();

    let mut actions = Vec::new();
    let mut contain_first: Option<i64> = None;
    let mut contain_last: Option<i64> = None;
    let mut contain_pending = false;
    let mut phase_last: BTreeMap<&'static str, i64> = BTreeMap::new();
    let mut findings = Vec::new();
    let mut would_send = Vec::new();
    let mut blast_radius = Vec::new();
    let mut running = Vec::new();
    let mut credentials = Vec::new();
    let mut items: Vec<String> = Vec::new();
    let mut item = |s: String| {
        if !items.contains(&s) {
            items.push(s);
        }
    };
    let mut tasks: Vec<_> = run.tasks.iter().collect();
    tasks.sort_by_key(|t| {
        (
            t.started_at.unwrap_or(i64::MAX),
            t.step_id.clone(),
            t.item_index,
        )
    });
    for t in tasks {
        let uses = uses_of.get(&t.step_id).cloned().unwrap_or_default();
        let phase = phase_of(&uses);
        let mine: Vec<&Event> = events
            .iter()
            .filter(|e| e.step.as_deref() == Some(&t.step_id) && e.index == Some(t.item_index))
            .collect();
        let last = mine.iter().rev().find(|e| {
            e.kind.starts_with("attempt.") && e.kind != "attempt.started"
                || e.kind.starts_with("reconcile.")
                || e.kind == "gate.refused"
        });
        let refused_by_gate = last.is_some_and(|e| e.kind == "gate.refused");
        let result = last
            .map(|e| e.summary.clone())
            .unwrap_or_else(|| t.status.clone());
        let actor = last
            .map(|e| e.actor.clone())
            .unwrap_or_else(|| "recall".into());
        for e in &mine {
            let d = e.data();
            if let Some(f) = d.pointer("/detail/findings").and_then(Value::as_array) {
                for x in f {
                    findings.push(
                        json!({ "step": t.step_id, "target": crate::engine::describe_inputs(&t.inputs), "finding": x }),
                    );
                }
            }
            if rehearsal && let Some(r) = d.pointer("/detail/requests").and_then(Value::as_array) {
                for x in r {
                    would_send.push(json!({
                        "step": t.step_id,
                        "method": x.get("method").cloned().unwrap_or(Value::Null),
                        "url": x.get("url").cloned().unwrap_or(Value::Null),
                    }));
                }
            }
        }
        if phase == "contain" {
            match (t.status.as_str(), t.finished_at) {
                ("succeeded", Some(f)) => {
                    contain_first = Some(contain_first.map_or(f, |c| c.min(f)));
                    contain_last = Some(contain_last.map_or(f, |c| c.max(f)));
                }
                _ => contain_pending = true,
            }
        }
        if let (true, Some(f)) = (t.status == "succeeded", t.finished_at) {
            let e = phase_last.entry(phase).or_insert(f);
            *e = (*e).max(f);
        }
        if uses == "kube.find_running" && t.status == "succeeded" {
            let o = &t.outputs;
            running.push(json!({
                "step": t.step_id,
                "count": o.get("count").cloned().unwrap_or(json!(0)),
                "workloads": o.get("workloads").cloned().unwrap_or(json!([])),
                "rows": o.get("rows").and_then(Value::as_array).map(|a| a.iter().take(50).cloned().collect::<Vec<_>>()).unwrap_or_default(),
                "unreachable": o.get("unreachable").cloned().unwrap_or(json!([])),
            }));
        }
        if uses == "sbom.blast_radius" && t.status == "succeeded" {
            let o = &t.outputs;
            let images: Vec<Value> = o
                .get("images")
                .and_then(Value::as_array)
                .map(|a| a.iter().take(50).cloned().collect())
                .unwrap_or_default();
            blast_radius.push(json!({
                "step": t.step_id,
                "query": crate::engine::describe_inputs(&t.inputs),
                "purl": t.inputs.get("purl").cloned().unwrap_or(Value::Null),
                "count": o.get("count").cloned().unwrap_or(json!(0)),
                "matched_versions": o.get("matched_versions").cloned().unwrap_or(json!([])),
                "images": images,
                "more": o.get("count").and_then(Value::as_u64).unwrap_or(0).saturating_sub(50),
                "paths": o.get("paths").cloned().unwrap_or(json!([])),
                "answer_sha256": o.get("answer_sha256").cloned().unwrap_or(Value::Null),
                "artifact": o.get("artifact").cloned().unwrap_or(Value::Null),
                "running": o.get("running_note").cloned().unwrap_or(Value::Null),
            }));
        }
        let target = crate::engine::describe_inputs(&t.inputs);
        if phase == "rotate" && t.status == "succeeded" {
            credentials.push(json!({
                "step": t.step_id, "uses": uses, "target": target,
                // Fingerprints only: the values never reach the record.
                "fingerprints": t.outputs.get("fingerprints").and_then(Value::as_object).map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
                "result": result,
            }));
        }
        // Follow-ups the incident revealed, each a policy-as-code change to make.
        let input = |k: &str| {
            t.inputs
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match uses.as_str() {
            "npm.deprecate" | "npm.dist_tag" | "crates.yank" | "pypi.yank" => {
                let pkg = [input("package"), input("crate")].concat();
                item(format!(
                    "Publish `{}` only through trusted publishing (OIDC) and revoke its long-lived publish tokens; encode it in the registry settings-as-code",
                    if pkg.is_empty() { target.clone() } else { pkg }
                ));
            }
            "oci.untag" if t.status == "succeeded" => item(format!(
                "Make release tags of `{}` immutable in the registry: the bad digest was reachable through a mutable tag",
                input("image")
            )),
            "kube.admission_deny" if t.status == "succeeded" => item(format!(
                "Move the admission deny of {} into the cluster policy repository (Recall's deny list is incident state), or lift it with kube.admission_allow once the fix is out",
                t.inputs.get("digests").map(|d| d.to_string()).unwrap_or_default()
            )),
            "kube.find_running" if t.outputs.get("count").and_then(Value::as_u64).unwrap_or(0) > 0 => item(
                "Pin workload images by digest and redeploy the workloads the sweep found running the bad digest".to_string(),
            ),
            _ => {}
        }
        // A gate refusal is deliberate (listed under "not done"), not something to fix.
        if t.status == "failed" && !refused_by_gate {
            item(format!(
                "Fix what made `{}` fail ({}), then rehearse it in a game day",
                t.step_id,
                t.error
                    .clone()
                    .unwrap_or_else(|| result.clone())
                    .chars()
                    .take(160)
                    .collect::<String>()
            ));
        }
        actions.push(json!({
            "step": t.step_id,
            "uses": uses,
            "phase": phase,
            "target": crate::engine::describe_inputs(&t.inputs),
            "started": t.started_at.map(rfc3339).unwrap_or_else(|| "-".into()),
            "ended": t.finished_at.map(rfc3339).unwrap_or_else(|| "-".into()),
            "status": t.status,
            "attempts": t.attempt,
            "result": result,
            "actor": actor,
        }));
    }

    let approvals: Vec<Value> = run
        .approvals
        .iter()
        .map(|a| {
            json!({
                "step": a.step_id, "actor": a.approval.actor, "decision": a.approval.decision.as_str(),
                "target": a.approval.target, "reason": a.approval.reason, "at": rfc3339(a.approval.at),
            })
        })
        .collect();
    let failures: Vec<Value> = events
        .iter()
        .filter(|e| e.kind == "step.failed" || e.kind == "approval.expired" || e.kind == "reconcile.unknown")
        .map(|e| json!({ "step": e.step.clone().unwrap_or_default(), "at": rfc3339(e.at), "summary": e.summary }))
        .collect();
    let not_done: Vec<Value> = run
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s.status.as_str(),
                "skipped" | "rejected" | "awaiting_approval" | "paused" | "pending"
            )
        })
        .map(|s| {
            let why = events
                .iter()
                .rev()
                .find(|e| {
                    e.step.as_deref() == Some(&s.step_id)
                        && matches!(
                            e.kind.as_str(),
                            "step.skipped"
                                | "approval.rejected"
                                | "approval.requested"
                                | "step.paused"
                        )
                })
                .map(|e| e.summary.clone())
                .unwrap_or_else(|| s.status.clone());
            json!({ "step": s.step_id, "status": s.status, "why": why })
        })
        .chain(
            // Deletions the gate refused: deliberately not done, with the gate's reasons.
            events.iter().filter(|e| e.kind == "gate.refused").map(|e| {
                json!({ "step": e.step.clone().unwrap_or_default(), "status": "refused by the deletion gate", "why": e.summary })
            }),
        )
        .collect();
    let timeline: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq, "at": rfc3339(e.at), "offset": offset(e.at - start), "actor": e.actor,
                "kind": e.kind, "step": e.step.clone().unwrap_or_default(), "summary": e.summary,
            })
        })
        .collect();
    let params: Vec<Value> = inc
        .params
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| json!({ "name": k, "value": crate::expr::to_display_string(v) }))
                .collect()
        })
        .unwrap_or_default();
    // The impact window opens at the registry's own publish time of the first bad version
    // Recall read (npm `time[version]` in deprecations, the gate's publish-time facts).
    let mut first_publish: Option<(i64, String)> = None;
    let mut consider = |t: i64, what: String| {
        if first_publish.as_ref().is_none_or(|(f, _)| t < *f) {
            first_publish = Some((t, what));
        }
    };
    for t in &run.tasks {
        if let Some(m) = t.outputs.get("published").and_then(Value::as_object) {
            let pkg = t
                .outputs
                .get("package")
                .and_then(Value::as_str)
                .unwrap_or("");
            for (v, at) in m {
                if let Some(ms) = at
                    .as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map(|d| d.timestamp_millis())
                {
                    consider(ms, format!("{pkg}@{v}"));
                }
            }
        }
    }
    for e in events.iter().filter(|e| e.kind.starts_with("gate.")) {
        if let Some(checks) = e.data().get("checks").and_then(Value::as_array) {
            for c in checks {
                if let Some(ms) = c.get("published_at").and_then(Value::as_i64) {
                    consider(
                        ms,
                        c.get("target")
                            .and_then(Value::as_str)
                            .unwrap_or("the target")
                            .to_string(),
                    );
                }
            }
        }
    }
    let contained_at = if contain_pending { None } else { contain_last };
    let impact = match (&first_publish, contained_at) {
        (Some((p, what)), Some(done)) => json!({
            "first_bad_publish": rfc3339(*p), "what": what,
            "contained_at": rfc3339(done), "exposure": offset(done - p),
        }),
        (Some((p, what)), None) => json!({
            "first_bad_publish": rfc3339(*p), "what": what,
            "contained_at": Value::Null, "exposure": format!("{} and counting (not fully contained)", offset(now - p)),
        }),
        _ => Value::Null,
    };
    // Every verdict of the deletion gate, in order.
    let gate: Vec<Value> = events
        .iter()
        .filter(|e| e.kind.starts_with("gate."))
        .map(|e| json!({ "at": offset(e.at - start), "kind": e.kind, "step": e.step, "summary": e.summary }))
        .collect();
    // The slowest steps (a rehearsal's estimate of where time goes; reads are real).
    let mut timed: Vec<(i64, &crate::store::StepRecord)> = run
        .steps
        .iter()
        .filter_map(|s| Some(((s.finished_at? - s.started_at?).max(0), s)))
        .collect();
    timed.sort_by_key(|t| std::cmp::Reverse(t.0));
    let slowest: Vec<Value> = timed
        .iter()
        .take(5)
        .map(|(ms, s)| json!({ "step": s.step_id, "took": offset(*ms), "took_ms": ms, "status": s.status }))
        .collect();
    let head = events.last().map(|e| e.hash.clone()).unwrap_or_default();
    let verified = timeline::verify(events, inc.head_seq, &inc.head_hash).is_ok();
    let fmt_dur = |t: Option<i64>| {
        t.map(|t| offset(t - start))
            .unwrap_or_else(|| "not reached".into())
    };
    let full = if contain_pending { None } else { contain_last };
    let phases: Vec<Value> = phase_last
        .iter()
        .map(|(p, t)| json!({ "phase": p, "done": offset(t - start) }))
        .collect();
    json!({
        "title": title.map(str::to_string).unwrap_or_else(|| format!("Postmortem draft: {} ({})", inc.playbook_name, inc.id)),
        "generated_at": rfc3339(now),
        "rehearsal": rehearsal,
        "incident": {
            "id": inc.id, "playbook": inc.playbook_name, "playbook_file": inc.playbook_file,
            "playbook_sha256": inc.playbook_sha256, "mode": inc.mode, "status": inc.status,
            "started_by": inc.started_by, "started_at": rfc3339(inc.created_at),
            "finished_at": inc.finished_at.map(rfc3339).unwrap_or_else(|| "(still open)".into()),
            "duration": offset(inc.finished_at.unwrap_or(now) - start),
        },
        "params": params,
        "actions": actions,
        "approvals": approvals,
        "failures": failures,
        "not_done": not_done,
        "findings": findings,
        "would_send": would_send,
        "blast_radius": blast_radius,
        "running": running,
        "credentials": credentials,
        "action_items": items,
        "gate": gate,
        "impact": impact,
        "slowest": slowest,
        "containment": { "first": fmt_dur(contain_first), "full": fmt_dur(full) },
        "containment_ms": { "first": contain_first.map(|t| t - start), "full": full.map(|t| t - start) },
        "phases": phases,
        "timeline": timeline,
        "chain": { "events": events.len(), "head": head, "verified": verified },
    })
}

handlebars_helper!(cell: |v: Value| {
    let s = match v { Value::String(s) => s, Value::Null => String::new(), other => other.to_string() };
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
});

pub fn render(template: &str, model: &Value) -> Result<String, PostmortemError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("cell", Box::new(cell));
    hb.register_template_string("pm", template)
        .map_err(|e| PostmortemError::Template(e.to_string()))?;
    hb.render("pm", model)
        .map_err(|e| PostmortemError::Template(e.to_string()))
}

/// Load an incident and render its postmortem draft.
pub async fn render_for(
    store: &dyn Store,
    id: &str,
    title: Option<&str>,
    template: Option<&str>,
    now: i64,
) -> Result<String, PostmortemError> {
    let run = store
        .load(id)
        .await?
        .ok_or_else(|| PostmortemError::NotFound(id.to_string()))?;
    let events = store.events(id).await?;
    let m = model(&run, &events, title, now);
    render(template.unwrap_or(DEFAULT_TEMPLATE), &m)
}

/// A fixed, hash-chained incident for golden tests: a live npm response whose deletion
/// the gate refused, with a rotated credential and awkward characters in its text.
#[doc(hidden)]
pub fn fixture_run() -> (StoredRun, Vec<Event>) {
    use crate::engine::{Approval, Decision};
    use crate::store::{ApprovalRecord, StepRecord, TaskRecord};
    let start = 1_795_838_400_000; // 2026-11-28T04:00:00Z
    let id = "inc-golden02";
    // (offset ms, kind, step, item, summary, data, actor)
    type Spec<'a> = (
        i64,
        &'a str,
        Option<&'a str>,
        Option<u32>,
        &'a str,
        Value,
        &'a str,
    );
    let spec: Vec<Spec> = vec![
        (
            0,
            "incident.started",
            None,
            None,
            "oncall started playbook `npm-compromised-release`",
            json!({}),
            "oncall",
        ),
        (
            1_000,
            "step.started",
            Some("deprecate"),
            None,
            "npm.deprecate started for 2 item(s)",
            json!({"uses": "npm.deprecate"}),
            "recall",
        ),
        (
            4_200,
            "attempt.succeeded",
            Some("deprecate"),
            Some(0),
            "deprecated left-pad@1.3.1: \"compromised | do not use\"",
            json!({}),
            "connector:npm",
        ),
        (
            5_100,
            "attempt.succeeded",
            Some("deprecate"),
            Some(1),
            "deprecated left-pad@1.3.2",
            json!({}),
            "connector:npm",
        ),
        (
            5_200,
            "step.started",
            Some("revoke-token"),
            None,
            "npm.revoke_token started",
            json!({"uses": "npm.revoke_token"}),
            "recall",
        ),
        (
            7_000,
            "attempt.succeeded",
            Some("revoke-token"),
            Some(0),
            "revoked token npm_…9f and proved it dead (whoami 401)",
            json!({}),
            "connector:npm",
        ),
        (
            7_100,
            "step.started",
            Some("unpublish"),
            None,
            "npm.unpublish started",
            json!({"uses": "npm.unpublish"}),
            "recall",
        ),
        (
            7_300,
            "approval.granted",
            Some("unpublish"),
            Some(0),
            "approved by alice",
            json!({}),
            "alice",
        ),
        (
            7_400,
            "gate.refused",
            Some("unpublish"),
            Some(0),
            "deletion refused: published 80h ago, outside the 72h window; retention class `release-tags`",
            json!({}),
            "recall",
        ),
        (
            8_000,
            "incident.finished",
            None,
            None,
            "incident failed",
            json!({}),
            "recall",
        ),
    ];
    let mut events = Vec::new();
    let mut prev = timeline::GENESIS.to_string();
    for (n, (dt, kind, step, index, summary, data, actor)) in spec.into_iter().enumerate() {
        let data_json = data.to_string();
        let hash = timeline::chain_hash(
            &prev,
            &timeline::Fields {
                incident: id,
                seq: n as i64 + 1,
                at: start + dt,
                actor,
                kind,
                step,
                index,
                summary,
                data_json: &data_json,
            },
        );
        events.push(Event {
            incident: id.into(),
            seq: n as i64 + 1,
            at: start + dt,
            actor: actor.into(),
            kind: kind.into(),
            step: step.map(String::from),
            index,
            summary: summary.into(),
            data_json,
            prev_hash: prev.clone(),
            hash: hash.clone(),
        });
        prev = hash;
    }
    let task =
        |step: &str, index: u32, inputs: Value, status: &str, outputs: Value, t0: i64, t1: i64| {
            TaskRecord {
                step_id: step.into(),
                item_index: index,
                item: Value::Null,
                status: status.into(),
                attempt: 1,
                inputs,
                idem_key: format!("{id}/{step}/{index}"),
                outputs,
                error: None,
                next_run_at: None,
                needs_probe: false,
                human: false,
                started_at: Some(start + t0),
                finished_at: Some(start + t1),
            }
        };
    let step = |id: &str, status: &str, t0: i64, t1: i64, error: Option<&str>| StepRecord {
        step_id: id.into(),
        status: status.into(),
        fanout: false,
        outputs: Value::Null,
        error: error.map(String::from),
        started_at: Some(start + t0),
        finished_at: Some(start + t1),
        approval_deadline: None,
    };
    let run = StoredRun {
        incident: IncidentRecord {
            id: id.into(),
            playbook_name: "npm-compromised-release".into(),
            playbook_sha256: "0".repeat(64),
            playbook_source: String::new(),
            playbook_file: "bundled:npm-compromised-release.yaml".into(),
            params: json!({"package": "left-pad", "versions": ["1.3.1", "1.3.2"], "fixed": "1.3.3"}),
            mode: "live".into(),
            status: "failed".into(),
            auto_approve: false,
            started_by: "oncall".into(),
            created_at: start,
            updated_at: start + 8_000,
            finished_at: Some(start + 8_000),
            head_seq: events.len() as i64,
            head_hash: prev,
        },
        steps: vec![
            step("deprecate", "succeeded", 1_000, 5_100, None),
            step("revoke-token", "succeeded", 5_200, 7_000, None),
            step(
                "unpublish",
                "failed",
                7_100,
                7_400,
                Some("the deletion gate refused"),
            ),
        ],
        tasks: vec![
            task(
                "deprecate",
                0,
                json!({"package": "left-pad", "version": "1.3.1"}),
                "succeeded",
                json!({"package": "left-pad", "published": {"1.3.1": "2026-11-27T22:30:00.000Z"}}),
                1_000,
                4_200,
            ),
            task(
                "deprecate",
                1,
                json!({"package": "left-pad", "version": "1.3.2"}),
                "succeeded",
                json!({}),
                1_000,
                5_100,
            ),
            task(
                "revoke-token",
                0,
                json!({"token": "npm_…9f"}),
                "succeeded",
                json!({"fingerprints": {"old": "sha256:1a2b3c4d5e6f7a8b"}}),
                5_200,
                7_000,
            ),
            task(
                "unpublish",
                0,
                json!({"package": "left-pad", "version": "1.3.1"}),
                "failed",
                json!({}),
                7_100,
                7_400,
            ),
        ],
        approvals: vec![ApprovalRecord {
            step_id: "unpublish".into(),
            approval: Approval {
                actor: "alice".into(),
                decision: Decision::Approve,
                target: "npm:left-pad@1.3.1".into(),
                reason: "checked with the maintainer, twice".into(),
                at: start + 7_300,
            },
        }],
    };
    (run, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_draft_of_a_fixed_incident() {
        let (run, events) = fixture_run();
        let m = model(&run, &events, None, 1_795_838_500_000);
        assert_eq!(m["chain"]["verified"], true);
        insta::assert_snapshot!("postmortem_draft", render(DEFAULT_TEMPLATE, &m).unwrap());
    }

    #[test]
    fn offsets_and_phases() {
        assert_eq!(offset(1500), "+1.500s");
        assert_eq!(offset(3_723_004), "+1h02m03.004s");
        assert_eq!(phase_of("npm.deprecate"), "contain");
        assert_eq!(phase_of("npm.revoke_token"), "rotate");
        assert_eq!(phase_of("npm.unpublish"), "delete");
        assert_eq!(phase_of("postmortem.draft"), "postmortem");
        assert_eq!(phase_of("github.open_pull_request"), "follow-up");
        assert_eq!(phase_of("github.disable_workflow"), "contain");
    }

    #[test]
    fn strict_mode_rejects_unknown_fields() {
        assert!(render("{{nope}}", &json!({})).is_err());
        assert_eq!(
            render("{{cell x}}", &json!({"x": "a|b\nc"})).unwrap(),
            "a\\|b c"
        );
    }
}
