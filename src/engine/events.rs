//! Event-specific transitions: results, probes, decisions, resolutions, resume. Each
//! mutates the run state and marks what it changed; `schedule::advance` runs after them.

use serde_json::{Value, json};

use super::context::*;
use super::gate::{self, GateFacts, GateInput};
use super::state::*;
use super::{Command, GateFactsError, Outcome, ProbeVerdict, Resolution};

pub(super) fn on_resumed(state: &mut RunState, now: Millis, out: &mut Vec<Command>) {
    let id = state.meta.id.clone();
    let mode = state.meta.mode;
    let pb = state.playbook.clone(); // an Arc: the definitions are not copied
    let defs = &pb.steps;
    let mut reconciling = 0usize;
    for def in defs {
        let info = state.action(&def.uses);
        let Some(st) = state.steps.get_mut(&def.id) else {
            continue;
        };
        for t in st
            .tasks
            .iter_mut()
            .filter(|t| t.status == TaskStatus::Running)
        {
            if info.mutating {
                // The intent was committed but no result: ask the world before anything else.
                reconciling += 1;
                t.reprobe = true;
                record(
                    out,
                    now,
                    ENGINE,
                    "reconcile.started",
                    Some(&def.id),
                    Some(t.index),
                    format!(
                        "attempt {} was interrupted; probing whether it took effect",
                        t.attempt
                    ),
                    json!({ "attempt": t.attempt, "idem_key": t.idem_key }),
                );
                out.push(Command::Probe(invocation(&id, def, t, mode)));
            } else {
                // A read has no effect to reconcile: run it again.
                t.status = TaskStatus::Ready;
                state.dirty.tasks.insert((def.id.clone(), t.index));
            }
        }
    }
    // A first drive has nothing to resume; say so only when there was a previous one.
    if state
        .steps
        .values()
        .all(|s| s.status == StepStatus::Pending)
    {
        return;
    }
    record(
        out,
        now,
        ENGINE,
        "incident.resumed",
        None,
        None,
        format!("engine resumed the incident; {reconciling} interrupted attempt(s) to reconcile"),
        json!({ "reconciling": reconciling }),
    );
}

#[allow(clippy::too_many_arguments)]
pub(super) fn on_task_finished(
    state: &mut RunState,
    step: &str,
    index: u32,
    attempt: u32,
    outcome: Outcome,
    now: Millis,
    out: &mut Vec<Command>,
) {
    let pb = state.playbook.clone();
    let Some(def) = pb.step(step) else {
        return;
    };
    let info = state.action(&def.uses);
    let rehearsal = state.meta.mode == Mode::Rehearsal;
    let connector = format!(
        "connector:{}",
        def.uses.split('.').next().unwrap_or(&def.uses)
    );
    let Some(t) = find_task(state, step, index) else {
        return;
    };
    // Fencing: only the attempt currently running may complete.
    if t.status != TaskStatus::Running || t.attempt != attempt {
        record(
            out,
            now,
            ENGINE,
            "attempt.stale",
            Some(step),
            Some(index),
            format!("ignored a late result of attempt {attempt}"),
            json!({ "attempt": attempt, "current": t.attempt }),
        );
        return;
    }
    match outcome {
        Outcome::Success { outputs, detail } => {
            t.status = TaskStatus::Succeeded;
            t.outputs = outputs.clone();
            t.error = None;
            t.finished_at = Some(now);
            let kind = if rehearsal {
                "attempt.planned"
            } else {
                "attempt.succeeded"
            };
            let summary = detail
                .get("summary")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    if rehearsal {
                        "planned (rehearsal: nothing sent)".into()
                    } else {
                        "succeeded".into()
                    }
                });
            record(
                out,
                now,
                &connector,
                kind,
                Some(step),
                Some(index),
                summary,
                json!({ "attempt": attempt, "outputs": outputs, "detail": detail }),
            );
        }
        Outcome::Failure {
            error,
            transient,
            ambiguous,
            retry_after_ms,
            detail,
        } => {
            let can_retry = transient && t.attempt < def.retry.attempts;
            t.error = Some(error.clone());
            if can_retry {
                let delay = retry_delay(def, t, retry_after_ms);
                t.status = TaskStatus::RetryWait;
                t.next_run_at = Some(now.saturating_add(delay as i64));
                t.needs_probe = ambiguous && info.mutating;
                record(
                    out,
                    now,
                    &connector,
                    "attempt.failed",
                    Some(step),
                    Some(index),
                    format!(
                        "attempt {attempt} failed (transient): {error}; retry in {} ms{}",
                        delay,
                        if t.needs_probe { ", after a probe" } else { "" }
                    ),
                    json!({ "attempt": attempt, "error": error, "transient": true,
                            "retry_at": t.next_run_at, "detail": detail }),
                );
            } else {
                t.status = TaskStatus::Failed;
                t.finished_at = Some(now);
                record(
                    out,
                    now,
                    &connector,
                    "attempt.failed",
                    Some(step),
                    Some(index),
                    format!(
                        "attempt {attempt} failed ({}): {error}",
                        if transient {
                            "retries exhausted"
                        } else {
                            "permanent"
                        }
                    ),
                    json!({ "attempt": attempt, "error": error, "transient": transient, "detail": detail }),
                );
            }
        }
        Outcome::Human {
            instructions,
            links,
            detail,
        } => {
            t.status = TaskStatus::AwaitingHuman;
            t.human = true;
            t.error = None;
            record(
                out,
                now,
                &connector,
                "human.requested",
                Some(step),
                Some(index),
                format!(
                    "a person must act: {instructions}{}",
                    if links.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", links.join(", "))
                    }
                ),
                json!({ "attempt": attempt, "instructions": instructions, "links": links,
                        "detail": detail }),
            );
        }
    }
    state.dirty.tasks.insert((step.to_string(), index));
}

/// The deletion gate's facts arrived for a destructive attempt: evaluate the gate now, at
/// the moment of execution, and either send the attempt or refuse it with every reason.
pub(super) fn on_gate_checked(
    state: &mut RunState,
    step: &str,
    index: u32,
    attempt: u32,
    facts: Result<GateFacts, GateFactsError>,
    now: Millis,
    out: &mut Vec<Command>,
) {
    let pb = state.playbook.clone();
    let Some(def) = pb.step(step) else {
        return;
    };
    let info = state.action(&def.uses);
    let needed = required_approvals(def, info, &state.policy);
    let mode = state.meta.mode;
    let rehearsal_auto = state.meta.auto_approve && mode == Mode::Rehearsal;
    let incident = state.meta.id.clone();
    let started_by = state.meta.started_by.clone();
    let policy = state.policy.clone();
    let Some(st) = state.steps.get_mut(step) else {
        return;
    };
    let target = step_target(&def.uses, &st.tasks);
    let approvals = st.approvals.clone();
    let Some(t) = st.tasks.iter_mut().find(|t| t.index == index) else {
        return;
    };
    if t.status != TaskStatus::Running || t.attempt != attempt {
        return;
    }
    state.dirty.tasks.insert((step.to_string(), index));
    let facts = match facts {
        Ok(f) => f,
        Err(e) => {
            // Could not read the registry: nothing was sent, so retrying is always safe.
            let can_retry = e.transient && t.attempt < def.retry.attempts;
            t.error = Some(format!("deletion gate: {}", e.error));
            if can_retry {
                let delay = retry_delay(def, t, e.retry_after_ms);
                t.status = TaskStatus::RetryWait;
                t.next_run_at = Some(now.saturating_add(delay as i64));
            } else {
                t.status = TaskStatus::Failed;
                t.finished_at = Some(now);
            }
            record(
                out,
                now,
                ENGINE,
                "gate.unavailable",
                Some(step),
                Some(index),
                format!(
                    "deletion gate could not read the registry ({}); nothing was sent{}",
                    e.error,
                    if can_retry { "; will retry" } else { "" }
                ),
                if e.preflight.is_null() {
                    json!({ "attempt": attempt, "error": e.error, "transient": e.transient })
                } else {
                    json!({ "attempt": attempt, "error": e.error, "transient": e.transient,
                            "preflight": e.preflight })
                },
            );
            return;
        }
    };
    let verdict = gate::evaluate(
        &facts,
        &GateInput {
            policy: &policy.gate,
            step_window_ms: def.gate_window_ms,
            needed,
            target: &target,
            approvals: &approvals,
            started_by: &started_by,
            allow_self_approval: policy.allow_self_approval,
            rehearsal_auto,
            now,
        },
    );
    if verdict.passed {
        record(
            out,
            now,
            ENGINE,
            "gate.passed",
            Some(step),
            Some(index),
            format!(
                "deletion gate passed for {}{}",
                describe_inputs(&t.inputs),
                if mode == Mode::Rehearsal {
                    " (rehearsal: nothing will be deleted)"
                } else {
                    ""
                }
            ),
            json!({ "attempt": attempt, "checks": verdict.checks }),
        );
        let mut inv = invocation(&incident, def, t, mode);
        inv.mutating = info.mutating;
        out.push(Command::Invoke(inv));
    } else {
        let why = verdict.refusals.join("; ");
        t.status = TaskStatus::Failed;
        t.finished_at = Some(now);
        t.error = Some(format!("deletion gate refused: {why}"));
        record(
            out,
            now,
            ENGINE,
            "gate.refused",
            Some(step),
            Some(index),
            format!(
                "deletion gate refused {}: {why}; nothing was deleted",
                describe_inputs(&t.inputs)
            ),
            json!({ "attempt": attempt, "refusals": verdict.refusals, "checks": verdict.checks }),
        );
    }
}

pub(super) fn on_probed(
    state: &mut RunState,
    step: &str,
    index: u32,
    attempt: u32,
    verdict: ProbeVerdict,
    now: Millis,
    out: &mut Vec<Command>,
) {
    let grace = state.policy.reconcile_grace_ms.max(0);
    let Some(t) = find_task(state, step, index) else {
        return;
    };
    if t.status != TaskStatus::Running || t.attempt != attempt {
        return;
    }
    match verdict {
        ProbeVerdict::Done { outputs, evidence } => {
            t.status = TaskStatus::Succeeded;
            t.outputs = outputs;
            t.finished_at = Some(now);
            t.needs_probe = false;
            let (kind, summary) = if t.human {
                (
                    "human.verified",
                    "verified: the registry confirms what the person did".to_string(),
                )
            } else {
                (
                    "reconcile.done",
                    format!("attempt {attempt} had taken effect; recorded without sending again"),
                )
            };
            record(
                out,
                now,
                ENGINE,
                kind,
                Some(step),
                Some(index),
                summary,
                json!({ "attempt": attempt, "evidence": evidence }),
            );
        }
        ProbeVerdict::NotDone { evidence } if t.reprobe => {
            // A request sent just before the crash may still be landing: ask once more,
            // one grace period later, before sending anything again.
            t.reprobe = false;
            t.status = TaskStatus::RetryWait;
            t.needs_probe = true;
            t.next_run_at = Some(now.saturating_add(grace));
            record(
                out,
                now,
                ENGINE,
                "reconcile.wait",
                Some(step),
                Some(index),
                format!(
                    "attempt {attempt} not visible yet; probing again in {grace} ms before sending again"
                ),
                json!({ "attempt": attempt, "evidence": evidence, "grace_ms": grace }),
            );
        }
        ProbeVerdict::NotDone { evidence } if t.human => {
            // A person said it is done; the registry says otherwise. Fail loudly: a
            // containment step that did not happen must never read as success.
            t.status = TaskStatus::Failed;
            t.finished_at = Some(now);
            t.needs_probe = false;
            let msg = "marked done by a person, but the registry shows it has not happened";
            t.error = Some(msg.to_string());
            record(
                out,
                now,
                ENGINE,
                "human.verify_failed",
                Some(step),
                Some(index),
                format!("{msg}; the step fails"),
                json!({ "attempt": attempt, "evidence": evidence }),
            );
        }
        ProbeVerdict::NotDone { evidence } => {
            t.status = TaskStatus::Ready;
            t.needs_probe = false;
            record(
                out,
                now,
                ENGINE,
                "reconcile.not_done",
                Some(step),
                Some(index),
                format!("attempt {attempt} had not taken effect; it will be sent again"),
                json!({ "attempt": attempt, "evidence": evidence }),
            );
        }
        ProbeVerdict::Unknown { reason } if t.human => {
            t.status = TaskStatus::AwaitingHuman;
            t.error = Some(reason.clone());
            record(
                out,
                now,
                ENGINE,
                "human.verify_unknown",
                Some(step),
                Some(index),
                format!(
                    "could not verify the person's answer ({reason}); waiting: mark it done again once the registry answers"
                ),
                json!({ "attempt": attempt, "reason": reason }),
            );
        }
        ProbeVerdict::Unknown { reason } => {
            t.status = TaskStatus::Paused;
            t.error = Some(reason.clone());
            record(
                out,
                now,
                ENGINE,
                "reconcile.unknown",
                Some(step),
                Some(index),
                format!(
                    "cannot tell whether attempt {attempt} took effect ({reason}); paused for a human"
                ),
                json!({ "attempt": attempt, "reason": reason }),
            );
        }
    }
    state.dirty.tasks.insert((step.to_string(), index));
}

pub(super) struct DecisionIn<'a> {
    pub step: &'a str,
    pub actor: &'a str,
    pub groups: &'a [String],
    pub decision: Decision,
    pub reason: &'a str,
    pub target: Option<&'a str>,
}

pub(super) fn on_decision(
    state: &mut RunState,
    d: DecisionIn<'_>,
    now: Millis,
    out: &mut Vec<Command>,
) {
    let step = d.step;
    let refuse = |out: &mut Vec<Command>, why: String| {
        record(
            out,
            now,
            d.actor,
            "approval.refused",
            Some(step),
            None,
            format!("{} by {} not accepted: {why}", d.decision, d.actor),
            json!({ "actor": d.actor, "decision": d.decision, "reason": d.reason }),
        );
    };
    let pb = state.playbook.clone();
    let Some(def) = pb.step(step) else {
        refuse(out, format!("no step `{step}` in this playbook"));
        return;
    };
    let allow_self = state.policy.allow_self_approval;
    let started_by = state.meta.started_by.clone();
    let Some(st) = state.steps.get_mut(step) else {
        return;
    };
    if st.status != StepStatus::AwaitingApproval {
        refuse(
            out,
            format!(
                "step is {}, not awaiting approval (first decision wins)",
                st.status
            ),
        );
        return;
    }
    let target = step_target(&def.uses, &st.tasks);
    if let Some(expected) = d.target
        && expected != target
    {
        refuse(
            out,
            format!("it was given for `{expected}` but the gate is for `{target}`"),
        );
        return;
    }
    if d.actor == started_by && !allow_self && d.actor != "game-day" {
        refuse(
            out,
            "the incident's starter cannot approve its own gates".into(),
        );
        return;
    }
    if st.approvals.iter().any(|a| a.actor == d.actor) {
        refuse(out, "this person has already decided on this gate".into());
        return;
    }
    let from: Vec<String> = def
        .approval
        .as_ref()
        .map(|a| a.from.clone())
        .unwrap_or_default();
    let game_day = d.actor == "game-day" && state.meta.mode == Mode::Rehearsal;
    let authorised = game_day || from.is_empty() || matches_approver(&from, d.actor, d.groups);
    if !authorised {
        refuse(out, format!("not in {}", from.join(", ")));
        return;
    }
    // A deletion also needs an approver the configuration allows: the playbook's `from`
    // narrows who may approve, the `[gate] approvers` list bounds it.
    let gate_approvers = &state.policy.gate.approvers;
    if state.action(&def.uses).destructive
        && !game_day
        && !gate_approvers.is_empty()
        && !matches_approver(gate_approvers, d.actor, d.groups)
    {
        refuse(
            out,
            format!(
                "not an authorised approver of deletions ([gate] approvers: {})",
                gate_approvers.join(", ")
            ),
        );
        return;
    }
    let Some(st) = state.steps.get_mut(step) else {
        return;
    };
    let approval = Approval {
        actor: d.actor.to_string(),
        decision: d.decision,
        target: target.clone(),
        reason: d.reason.to_string(),
        at: now,
    };
    st.approvals.push(approval.clone());
    state.dirty.approvals.push((step.to_string(), approval));
    let needed = required_approvals(def, state.action(&def.uses), &state.policy);
    let st = match state.steps.get_mut(step) {
        Some(s) => s,
        None => return,
    };
    match d.decision {
        Decision::Reject => {
            st.status = StepStatus::Rejected;
            st.finished_at = Some(now);
            st.approval_deadline = None;
            st.error = Some(format!("rejected by {}: {}", d.actor, d.reason));
            record(
                out,
                now,
                d.actor,
                "approval.rejected",
                Some(step),
                None,
                format!(
                    "{} rejected `{target}`: {}; the step will not run",
                    d.actor, d.reason
                ),
                json!({ "actor": d.actor, "target": target, "reason": d.reason }),
            );
        }
        Decision::Approve => {
            let have = st
                .approvals
                .iter()
                .filter(|a| a.decision == Decision::Approve)
                .count() as u32;
            record(
                out,
                now,
                d.actor,
                "approval.granted",
                Some(step),
                None,
                format!(
                    "{} approved `{target}` ({have}/{needed}): {}",
                    d.actor, d.reason
                ),
                json!({ "actor": d.actor, "target": target, "reason": d.reason,
                        "have": have, "needed": needed }),
            );
            if have >= needed {
                st.status = StepStatus::Running;
                st.approval_deadline = None;
            }
        }
    }
    state.dirty.steps.insert(step.to_string());
}

#[allow(clippy::too_many_arguments)]
pub(super) fn on_resolve(
    state: &mut RunState,
    step: &str,
    index: Option<u32>,
    actor: &str,
    resolution: Resolution,
    reason: &str,
    now: Millis,
    out: &mut Vec<Command>,
) {
    let pb = state.playbook.clone();
    let def = pb.step(step);
    let id = state.meta.id.clone();
    let mode = state.meta.mode;
    let Some(st) = state.steps.get_mut(step) else {
        return;
    };
    let mut n = 0;
    let mut verifying = 0;
    for t in st.tasks.iter_mut().filter(|t| {
        (t.status == TaskStatus::Paused || t.status == TaskStatus::AwaitingHuman)
            && index.is_none_or(|i| i == t.index)
    }) {
        n += 1;
        let human = t.status == TaskStatus::AwaitingHuman;
        match (resolution, human, def) {
            // The person's "done" is a claim: verify it against the registry. A first "not
            // done" waits one grace period (caches, propagation) before it fails the task.
            (Resolution::MarkDone, true, Some(def)) => {
                t.status = TaskStatus::Running;
                t.reprobe = true;
                verifying += 1;
                out.push(Command::Probe(invocation(&id, def, t, mode)));
            }
            (Resolution::MarkDone, _, _) => {
                t.status = TaskStatus::Succeeded;
                t.finished_at = Some(now);
                t.outputs = json!({ "resolved_by": actor });
            }
            (Resolution::Retry, _, _) => {
                t.status = TaskStatus::Ready;
                t.human = false;
            }
            (Resolution::Fail, _, _) => {
                t.status = TaskStatus::Failed;
                t.finished_at = Some(now);
            }
        }
        state.dirty.tasks.insert((step.to_string(), t.index));
    }
    if n > 0 && st.status == StepStatus::Paused {
        st.status = StepStatus::Running;
        state.dirty.steps.insert(step.to_string());
    }
    record(
        out,
        now,
        actor,
        "human.resolved",
        Some(step),
        None,
        format!(
            "{actor} resolved {n} waiting attempt(s) as {resolution:?}: {reason}{}",
            if verifying > 0 {
                format!("; verifying {verifying} against the registry")
            } else {
                String::new()
            }
        ),
        json!({ "actor": actor, "resolution": resolution, "reason": reason, "tasks": n,
                "verifying": verifying }),
    );
}
