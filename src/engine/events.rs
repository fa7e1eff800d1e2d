//! Event-specific transitions: results, probes, decisions, resolutions, resume. Each
//! mutates the run state and marks what it changed; `schedule::advance` runs after them.

use serde_json::{Value, json};

use super::context::*;
use super::state::*;
use super::{Command, Outcome, ProbeVerdict, Resolution};

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
    }
    state.dirty.tasks.insert((step.to_string(), index));
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
            record(
                out,
                now,
                ENGINE,
                "reconcile.done",
                Some(step),
                Some(index),
                format!("attempt {attempt} had taken effect; recorded without sending again"),
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
    let authorised = d.actor == "game-day"
        || from.is_empty()
        || from.iter().any(|f| {
            f.strip_prefix("user:") == Some(d.actor)
                || f.strip_prefix("group:")
                    .is_some_and(|g| d.groups.iter().any(|x| x == g))
        });
    if !authorised {
        refuse(out, format!("not in {}", from.join(", ")));
        return;
    }
    let approval = Approval {
        actor: d.actor.to_string(),
        decision: d.decision,
        target: target.clone(),
        reason: d.reason.to_string(),
        at: now,
    };
    st.approvals.push(approval.clone());
    state.dirty.approvals.push((step.to_string(), approval));
    let needed = required_approvals(def, state.action(&def.uses));
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

pub(super) fn on_resolve(
    state: &mut RunState,
    step: &str,
    actor: &str,
    resolution: Resolution,
    reason: &str,
    now: Millis,
    out: &mut Vec<Command>,
) {
    let Some(st) = state.steps.get_mut(step) else {
        return;
    };
    let mut n = 0;
    for t in st
        .tasks
        .iter_mut()
        .filter(|t| t.status == TaskStatus::Paused)
    {
        n += 1;
        match resolution {
            Resolution::MarkDone => {
                t.status = TaskStatus::Succeeded;
                t.finished_at = Some(now);
                t.outputs = json!({ "resolved_by": actor });
            }
            Resolution::Retry => t.status = TaskStatus::Ready,
            Resolution::Fail => {
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
        format!("{actor} resolved {n} paused attempt(s) as {resolution:?}: {reason}"),
        json!({ "actor": actor, "resolution": resolution, "reason": reason, "tasks": n }),
    );
}
