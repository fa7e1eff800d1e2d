//! Scheduling: drive every step as far as it can go at `now` — start ready steps (evaluate
//! `if`, fan out, open approval gates), start tasks within concurrency, fire due timers,
//! conclude steps and the incident. No I/O.

use serde_json::{Map, Value, json};

use super::Command;
use super::context::*;
use super::state::*;
use crate::expr::EvalContext;
use crate::playbook::StepDef;

/// Drive every step as far as it can go at `now`.
pub(super) fn advance(state: &mut RunState, now: Millis, out: &mut Vec<Command>) {
    if state.meta.status.is_terminal() {
        return;
    }
    // Starting a step can make another ready (a skip cascades), so loop to a fixed point.
    for _ in 0..=state.playbook.steps.len() {
        let mut changed = false;
        let pb = state.playbook.clone(); // an Arc: the definitions are not copied
        let defs = &pb.steps;
        for def in defs {
            changed |= advance_step(state, def, now, out);
        }
        if !changed {
            break;
        }
    }
    update_incident(state, now, out);
}

fn advance_step(state: &mut RunState, def: &StepDef, now: Millis, out: &mut Vec<Command>) -> bool {
    let Some(status) = state.steps.get(&def.id).map(|s| s.status) else {
        return false;
    };
    match status {
        StepStatus::Pending => start_step(state, def, now, out),
        StepStatus::AwaitingApproval => check_approval(state, def, now, out),
        StepStatus::Running | StepStatus::Paused => run_tasks(state, def, now, out),
        _ => false,
    }
}

fn start_step(state: &mut RunState, def: &StepDef, now: Millis, out: &mut Vec<Command>) -> bool {
    let deps_done = def
        .needs
        .iter()
        .all(|n| state.steps.get(n).is_some_and(|s| s.status.is_terminal()));
    if !deps_done {
        return false;
    }
    let flags = status_flags(state, def);
    let root = context_root(state, None);
    let ctx = EvalContext {
        root: &root,
        status: flags,
    };
    // GitHub Actions semantics: a condition without a status function is `success() && (…)`.
    let implicit_success = |cond: &crate::expr::Template| {
        !cond.parts().iter().any(|p| match p {
            crate::expr::TemplatePart::Expr { expr, .. } => expr.uses_status_function(),
            crate::expr::TemplatePart::Literal(_) => false,
        })
    };
    let run = match &def.if_ {
        None => Ok(flags.success),
        Some(cond) => cond
            .eval(&ctx)
            .map(|v| crate::expr::truthy(&v) && (!implicit_success(cond) || flags.success)),
    };
    let id = def.id.clone();
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            fail_step(
                state,
                &id,
                now,
                format!("`if` could not be evaluated: {e}"),
                out,
            );
            return true;
        }
    };
    if !run {
        if let Some(st) = state.steps.get_mut(&id) {
            st.status = StepStatus::Skipped;
            st.finished_at = Some(now);
        }
        state.dirty.steps.insert(id.clone());
        let why = if def.if_.is_some() {
            "its `if` condition is false".to_string()
        } else {
            "a step it needs did not succeed".to_string()
        };
        record(
            out,
            now,
            ENGINE,
            "step.skipped",
            Some(&id),
            None,
            format!("skipped: {why}"),
            json!({ "if": def.if_.as_ref().map(|t| t.source().to_string()) }),
        );
        return true;
    }
    if let Some(why) = state.action(&def.uses).unavailable {
        if let Some(st) = state.steps.get_mut(&id) {
            st.status = StepStatus::Skipped;
            st.finished_at = Some(now);
            st.error = Some(format!("{} unavailable: {why}", def.uses));
        }
        state.dirty.steps.insert(id.clone());
        record(
            out,
            now,
            ENGINE,
            "step.skipped",
            Some(&id),
            None,
            format!("skipped: `{}` cannot run here: {why}", def.uses),
            json!({ "uses": def.uses, "unavailable": why }),
        );
        return true;
    }
    // Expressions are evaluated once, when the step starts; the evaluated inputs are stored.
    let (items, fanout) = match &def.for_each {
        None => (vec![Value::Null], false),
        Some(fe) => match fe.eval(&ctx) {
            Ok(Value::Array(a)) => (a, true),
            Ok(other) => {
                fail_step(
                    state,
                    &id,
                    now,
                    format!("`for_each` must evaluate to a list, got {other}"),
                    out,
                );
                return true;
            }
            Err(e) => {
                fail_step(state, &id, now, format!("`for_each`: {e}"), out);
                return true;
            }
        },
    };
    let mut tasks = Vec::with_capacity(items.len());
    // One context for the whole fan-out with `item` swapped per task: rebuilding it per item
    // would copy the params (often the very list being fanned out) once per item.
    let mut iroot = root;
    for (i, item) in items.into_iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        if let Value::Object(m) = &mut iroot {
            m.insert("item".into(), item.clone());
        }
        let ictx = EvalContext {
            root: &iroot,
            status: flags,
        };
        let mut inputs = Map::new();
        for (k, v) in &def.with {
            match v.eval(&ictx) {
                Ok(val) => {
                    inputs.insert(k.clone(), val);
                }
                Err(e) => {
                    fail_step(
                        state,
                        &id,
                        now,
                        format!("input `{k}` (item {index}): {e}"),
                        out,
                    );
                    return true;
                }
            }
        }
        tasks.push(TaskState {
            index,
            item,
            status: TaskStatus::Ready,
            attempt: 0,
            inputs: Value::Object(inputs),
            idem_key: idem_key(&state.meta.id, &id, index),
            outputs: Value::Null,
            error: None,
            next_run_at: None,
            needs_probe: false,
            reprobe: false,
            human: false,
            started_at: None,
            finished_at: None,
        });
    }
    let info = state.action(&def.uses);
    let needed = required_approvals(def, info, &state.policy);
    let target = step_target(&def.uses, &tasks);
    let deadline = now.saturating_add(state.policy.approval_timeout_ms);
    let auto = state.meta.auto_approve && state.meta.mode == Mode::Rehearsal;
    let Some(st) = state.steps.get_mut(&id) else {
        return false;
    };
    st.fanout = fanout;
    st.started_at = Some(now);
    for t in &tasks {
        state.dirty.tasks.insert((id.clone(), t.index));
        state.dirty.new_tasks.insert((id.clone(), t.index));
    }
    let n = tasks.len();
    st.tasks = tasks;
    state.dirty.steps.insert(id.clone());
    record(
        out,
        now,
        ENGINE,
        "step.started",
        Some(&id),
        None,
        format!(
            "{} started{}",
            def.uses,
            if fanout {
                format!(" for {n} item(s)")
            } else {
                String::new()
            }
        ),
        json!({ "uses": def.uses, "items": n, "fanout": fanout }),
    );
    if needed > 0 {
        st.status = StepStatus::AwaitingApproval;
        st.approval_deadline = Some(deadline);
        let from = def
            .approval
            .as_ref()
            .map(|a| a.from.clone())
            .unwrap_or_default();
        record(
            out,
            now,
            ENGINE,
            "approval.requested",
            Some(&id),
            None,
            format!(
                "waiting for {needed} approval(s){} of `{target}`{}",
                if from.is_empty() {
                    String::new()
                } else {
                    format!(" from {}", from.join(", "))
                },
                if info.destructive {
                    " (destructive: always gated)"
                } else {
                    ""
                }
            ),
            json!({ "target": target, "needed": needed, "from": from,
                    "deadline": deadline, "destructive": info.destructive }),
        );
        if auto {
            st.status = StepStatus::Running;
            st.approval_deadline = None;
            let approval = Approval {
                actor: "game-day".into(),
                decision: Decision::Approve,
                target: target.clone(),
                reason: "auto-approved in rehearsal (--auto-approve)".into(),
                at: now,
            };
            st.approvals.push(approval.clone());
            state.dirty.approvals.push((id.clone(), approval));
            record(
                out,
                now,
                "game-day",
                "approval.granted",
                Some(&id),
                None,
                format!("game-day auto-approved `{target}` (rehearsal only)"),
                json!({ "actor": "game-day", "target": target, "auto": true }),
            );
        }
    } else {
        st.status = StepStatus::Running;
    }
    true
}

fn check_approval(
    state: &mut RunState,
    def: &StepDef,
    now: Millis,
    out: &mut Vec<Command>,
) -> bool {
    let Some(st) = state.steps.get_mut(&def.id) else {
        return false;
    };
    match st.approval_deadline {
        Some(deadline) if now >= deadline => {
            st.status = StepStatus::Failed;
            st.finished_at = Some(now);
            st.approval_deadline = None;
            st.error = Some("approval wait expired; nothing was done".into());
            state.dirty.steps.insert(def.id.clone());
            record(
                out,
                now,
                ENGINE,
                "approval.expired",
                Some(&def.id),
                None,
                "approval wait expired: the step fails; a timeout never approves".into(),
                json!({ "deadline": deadline }),
            );
            true
        }
        _ => false,
    }
}

fn run_tasks(state: &mut RunState, def: &StepDef, now: Millis, out: &mut Vec<Command>) -> bool {
    let incident = state.meta.id.clone();
    let mode = state.meta.mode;
    let info = state.action(&def.uses);
    let limit = def
        .concurrency
        .unwrap_or(state.policy.default_concurrency)
        .max(1) as usize;
    let limit = if def.for_each.is_some() { limit } else { 1 };
    let Some(st) = state.steps.get_mut(&def.id) else {
        return false;
    };
    let mut changed = false;
    let mut running = st
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Running)
        .count();
    for t in st.tasks.iter_mut() {
        match t.status {
            TaskStatus::RetryWait if t.next_run_at.is_some_and(|d| d <= now) => {
                if running >= limit {
                    continue;
                }
                t.next_run_at = None;
                if t.needs_probe {
                    // The last attempt may have landed: ask before sending again.
                    t.status = TaskStatus::Running;
                    running += 1;
                    let mut inv = invocation(&incident, def, t, mode);
                    inv.mutating = info.mutating;
                    record(
                        out,
                        now,
                        ENGINE,
                        "reconcile.started",
                        Some(&def.id),
                        Some(t.index),
                        format!(
                            "attempt {} ended without a clear answer; probing before a retry",
                            t.attempt
                        ),
                        json!({ "attempt": t.attempt }),
                    );
                    out.push(Command::Probe(inv));
                    state.dirty.tasks.insert((def.id.clone(), t.index));
                    changed = true;
                    continue;
                }
                t.status = TaskStatus::Ready;
                changed = true;
                state.dirty.tasks.insert((def.id.clone(), t.index));
            }
            _ => {}
        }
        if t.status == TaskStatus::Ready && running < limit {
            t.status = TaskStatus::Running;
            t.attempt += 1;
            t.started_at.get_or_insert(now);
            t.error = None;
            running += 1;
            let mut inv = invocation(&incident, def, t, mode);
            inv.mutating = info.mutating;
            record(
                out,
                now,
                ENGINE,
                "attempt.started",
                Some(&def.id),
                Some(t.index),
                format!(
                    "attempt {} of {} {}{}",
                    t.attempt,
                    def.uses,
                    describe_inputs(&t.inputs),
                    if mode == Mode::Rehearsal {
                        " (rehearsal: plan only)"
                    } else {
                        ""
                    }
                ),
                json!({ "attempt": t.attempt, "inputs": t.inputs, "idem_key": t.idem_key,
                        "mutating": info.mutating, "destructive": info.destructive }),
            );
            // A destructive attempt is sent only after the deletion gate, evaluated on facts
            // read now: the window is re-checked on every attempt, not once per step.
            out.push(if info.destructive {
                Command::Gate(inv)
            } else {
                Command::Invoke(inv)
            });
            state.dirty.tasks.insert((def.id.clone(), t.index));
            changed = true;
        }
    }
    // Conclude the step when every task is terminal, or pause it when only paused ones remain.
    let all_terminal = st.tasks.iter().all(|t| t.status.is_terminal());
    let id = def.id.clone();
    if all_terminal {
        let failed: Vec<&TaskState> = st
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Failed)
            .collect();
        st.outputs = if st.fanout {
            json!({
                "count": st.tasks.len(),
                "failed": failed.len(),
                "items": st.tasks.iter().map(|t| t.item.clone()).collect::<Vec<_>>(),
                "results": st.tasks.iter().map(|t| t.outputs.clone()).collect::<Vec<_>>(),
            })
        } else {
            st.tasks
                .first()
                .map(|t| t.outputs.clone())
                .unwrap_or(Value::Null)
        };
        st.finished_at = Some(now);
        if failed.is_empty() {
            st.status = StepStatus::Succeeded;
            st.error = None;
            record(
                out,
                now,
                ENGINE,
                "step.succeeded",
                Some(&id),
                None,
                format!("{} succeeded", def.uses),
                json!({ "outputs": st.outputs }),
            );
        } else {
            let msg = failed
                .iter()
                .map(|t| {
                    format!(
                        "item {}: {}",
                        t.index,
                        t.error.as_deref().unwrap_or("failed")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            st.status = StepStatus::Failed;
            st.error = Some(msg.clone());
            record(
                out,
                now,
                ENGINE,
                "step.failed",
                Some(&id),
                None,
                format!(
                    "{} failed{}: {msg}",
                    def.uses,
                    if def.continue_on_error {
                        " (continue-on-error)"
                    } else {
                        ""
                    }
                ),
                json!({ "error": msg, "continue_on_error": def.continue_on_error }),
            );
        }
        state.dirty.steps.insert(id);
        return true;
    }
    let idle = st.tasks.iter().all(|t| {
        t.status.is_terminal()
            || t.status == TaskStatus::Paused
            || t.status == TaskStatus::AwaitingHuman
    });
    if idle && st.status != StepStatus::Paused {
        st.status = StepStatus::Paused;
        state.dirty.steps.insert(id.clone());
        let human = st
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::AwaitingHuman)
            .count();
        record(
            out,
            now,
            ENGINE,
            "step.paused",
            Some(&id),
            None,
            if human > 0 {
                format!(
                    "waiting for a person: {human} task(s) to do by hand, then `recall incident resolve {} {id} --as WHO --reason TEXT --resolution done` (verified against the registry)",
                    incident
                )
            } else {
                "paused: an attempt's effect is unknown; a person must check and resolve it".into()
            },
            json!({ "human": human }),
        );
        return true;
    }
    changed
}

fn fail_step(state: &mut RunState, id: &str, now: Millis, error: String, out: &mut Vec<Command>) {
    if let Some(st) = state.steps.get_mut(id) {
        st.status = StepStatus::Failed;
        st.error = Some(error.clone());
        st.finished_at = Some(now);
        st.started_at.get_or_insert(now);
    }
    state.dirty.steps.insert(id.to_string());
    record(
        out,
        now,
        ENGINE,
        "step.failed",
        Some(id),
        None,
        format!("failed before any call: {error}"),
        json!({ "error": error }),
    );
}

fn update_incident(state: &mut RunState, now: Millis, out: &mut Vec<Command>) {
    let all_terminal = state.steps.values().all(|s| s.status.is_terminal());
    let new = if all_terminal {
        let failed = state.playbook.steps.iter().any(|d| {
            !d.continue_on_error
                && state
                    .steps
                    .get(&d.id)
                    .is_some_and(|s| s.status == StepStatus::Failed)
        });
        if failed {
            IncidentStatus::Failed
        } else {
            IncidentStatus::Succeeded
        }
    } else {
        // Tasks of a step awaiting approval are created Ready but are not runnable yet.
        let busy = state.steps.values().any(|s| {
            matches!(s.status, StepStatus::Running | StepStatus::Paused)
                && s.tasks.iter().any(|t| {
                    matches!(
                        t.status,
                        TaskStatus::Ready | TaskStatus::Running | TaskStatus::RetryWait
                    )
                })
        });
        let can_start = state.playbook.steps.iter().any(|d| {
            state
                .steps
                .get(&d.id)
                .is_some_and(|s| s.status == StepStatus::Pending)
                && d.needs
                    .iter()
                    .all(|n| state.steps.get(n).is_some_and(|s| s.status.is_terminal()))
        });
        if busy || can_start {
            IncidentStatus::Running
        } else {
            IncidentStatus::Waiting
        }
    };
    if new == state.meta.status {
        return;
    }
    state.meta.status = new;
    state.dirty.incident = true;
    match new {
        IncidentStatus::Succeeded | IncidentStatus::Failed => {
            state.meta.finished_at = Some(now);
            record(
                out,
                now,
                ENGINE,
                "incident.finished",
                None,
                None,
                format!("incident {}", new),
                json!({ "status": new }),
            );
        }
        IncidentStatus::Waiting => {
            let waiting: Vec<String> = state
                .steps
                .iter()
                .filter(|(_, s)| {
                    matches!(s.status, StepStatus::AwaitingApproval | StepStatus::Paused)
                })
                .map(|(k, s)| format!("{k} ({})", s.status))
                .collect();
            record(
                out,
                now,
                ENGINE,
                "incident.waiting",
                None,
                None,
                format!("waiting on a human: {}", waiting.join(", ")),
                json!({ "steps": waiting }),
            );
        }
        IncidentStatus::Running => {}
    }
}

/// The earliest absolute deadline the runner must wake up for (retry timers, approval waits).
pub fn next_wake(state: &RunState) -> Option<Millis> {
    state
        .steps
        .values()
        .flat_map(|s| {
            s.tasks
                .iter()
                .filter(|t| t.status == TaskStatus::RetryWait)
                .filter_map(|t| t.next_run_at)
                .chain(s.approval_deadline)
        })
        .min()
}
