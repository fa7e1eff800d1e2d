//! Transition rules. Every function mutates the run state, marks what it changed as dirty
//! and appends commands; none performs I/O.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::state::*;
use super::{Command, Entry, Invocation, Outcome, ProbeVerdict, Resolution};
use crate::expr::{EvalContext, StatusFlags};
use crate::playbook::{Backoff, StepDef};

const ENGINE: &str = "recall";

#[allow(clippy::too_many_arguments)] // mirrors the Entry fields one to one
fn record(
    out: &mut Vec<Command>,
    now: Millis,
    actor: &str,
    kind: &str,
    step: Option<&str>,
    index: Option<u32>,
    summary: String,
    data: Value,
) {
    out.push(Command::Record(Entry {
        at: now,
        actor: actor.to_string(),
        kind: kind.to_string(),
        step: step.map(str::to_string),
        index,
        summary,
        data,
    }));
}

/// The value a step exposes to expressions as `steps.<id>`.
fn step_context(st: &StepState, continue_on_error: bool) -> Value {
    let outcome = match st.status {
        StepStatus::Succeeded => "success",
        StepStatus::Failed => "failure",
        StepStatus::Skipped => "skipped",
        StepStatus::Rejected => "rejected",
        _ => "pending",
    };
    let conclusion = if outcome == "failure" && continue_on_error {
        "success"
    } else {
        outcome
    };
    json!({ "outputs": st.outputs, "outcome": outcome, "conclusion": conclusion })
}

fn context_root(state: &RunState, item: Option<&Value>) -> Value {
    let mut steps = Map::new();
    for def in &state.playbook.steps {
        if let Some(st) = state.steps.get(&def.id) {
            steps.insert(def.id.clone(), step_context(st, def.continue_on_error));
        }
    }
    let mut root = Map::new();
    root.insert("params".into(), state.meta.params.clone());
    root.insert(
        "incident".into(),
        json!({
            "id": state.meta.id,
            "mode": state.meta.mode.as_str(),
            "rehearsal": state.meta.mode == Mode::Rehearsal,
            "started_by": state.meta.started_by,
            "playbook": state.playbook.name,
        }),
    );
    root.insert("steps".into(), Value::Object(steps));
    root.insert("item".into(), item.cloned().unwrap_or(Value::Null));
    Value::Object(root)
}

/// `success()` / `failure()` for a step, from its `needs` (GitHub Actions job semantics):
/// success when every direct dependency concluded successfully; failure when any ancestor failed.
fn status_flags(state: &RunState, def: &StepDef) -> StatusFlags {
    let concluded_ok = |id: &str| {
        let cont = state
            .playbook
            .step(id)
            .map(|d| d.continue_on_error)
            .unwrap_or(false);
        state.steps.get(id).is_some_and(|s| {
            s.status == StepStatus::Succeeded || (s.status == StepStatus::Failed && cont)
        })
    };
    let success = def.needs.iter().all(|n| concluded_ok(n));
    let mut failure = false;
    let mut stack: Vec<&str> = def.needs.iter().map(String::as_str).collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let Some(s) = state.steps.get(id) {
            let cont = state
                .playbook
                .step(id)
                .map(|d| d.continue_on_error)
                .unwrap_or(false);
            if s.status == StepStatus::Failed && !cont {
                failure = true;
            }
        }
        if let Some(d) = state.playbook.step(id) {
            stack.extend(d.needs.iter().map(String::as_str));
        }
    }
    StatusFlags {
        success,
        failure,
        cancelled: false,
    }
}

/// A short, stable description of what a gate approves: the action and a digest of its
/// evaluated inputs, so an approval cannot be replayed onto a different target.
pub fn step_target(uses: &str, tasks: &[TaskState]) -> String {
    let mut h = Sha256::new();
    for t in tasks {
        h.update(serde_json::to_vec(&t.inputs).unwrap_or_default());
        h.update([0u8]);
    }
    let digest = hex::encode(h.finalize());
    let names: Vec<String> = tasks
        .iter()
        .take(3)
        .map(|t| describe_inputs(&t.inputs))
        .collect();
    let more = if tasks.len() > 3 {
        format!(" (+{} more)", tasks.len() - 3)
    } else {
        String::new()
    };
    format!(
        "{uses} {}{more} #{}",
        names.join(", "),
        digest.get(..12).unwrap_or("")
    )
}

/// The human part of a target: package@version, digest, token key, whatever the inputs name.
fn describe_inputs(inputs: &Value) -> String {
    let get = |k: &str| inputs.get(k).and_then(Value::as_str);
    match (get("package"), get("version")) {
        (Some(p), Some(v)) => format!("{p}@{v}"),
        (Some(p), None) => p.to_string(),
        _ => ["target", "token", "digest", "image", "name"]
            .iter()
            .find_map(|k| get(k).map(str::to_string))
            .unwrap_or_else(|| "(no target)".to_string()),
    }
}

/// Retry delay for the attempt that just failed: exponential or fixed, capped, with ±20%
/// jitter derived from the idempotency key (deterministic: the engine has no randomness).
fn retry_delay(def: &StepDef, task: &TaskState, retry_after_ms: Option<u64>) -> u64 {
    let p = &def.retry;
    let exp = task.attempt.saturating_sub(1).min(30);
    let base = match p.backoff {
        Backoff::Exponential => p.initial_ms.saturating_mul(1u64 << exp),
        Backoff::Fixed => p.initial_ms,
    }
    .min(p.max_ms.max(p.initial_ms));
    let mut h = Sha256::new();
    h.update(task.idem_key.as_bytes());
    h.update(task.attempt.to_le_bytes());
    let r = h.finalize();
    let frac = f64::from(u16::from_le_bytes([r[0], r[1]])) / f64::from(u16::MAX); // 0..1
    let jittered = (base as f64 * (0.8 + 0.4 * frac)) as u64;
    jittered.max(retry_after_ms.unwrap_or(0))
}

pub(super) fn on_resumed(state: &mut RunState, now: Millis, out: &mut Vec<Command>) {
    let id = state.meta.id.clone();
    let mode = state.meta.mode;
    let defs: Vec<StepDef> = state.playbook.steps.clone();
    let mut reconciling = 0usize;
    for def in &defs {
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

fn invocation(incident: &str, def: &StepDef, t: &TaskState, mode: Mode) -> Invocation {
    Invocation {
        incident: incident.to_string(),
        step: def.id.clone(),
        index: t.index,
        attempt: t.attempt,
        uses: def.uses.clone(),
        inputs: t.inputs.clone(),
        idem_key: t.idem_key.clone(),
        mutating: false, // filled by the caller that knows the action
        timeout_ms: def.timeout_ms,
        mode,
    }
}

fn find_task<'a>(state: &'a mut RunState, step: &str, index: u32) -> Option<&'a mut TaskState> {
    state
        .steps
        .get_mut(step)?
        .tasks
        .iter_mut()
        .find(|t| t.index == index)
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
    let Some(def) = state.playbook.step(step).cloned() else {
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
                let delay = retry_delay(&def, t, retry_after_ms);
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
    let Some(def) = state.playbook.step(step).cloned() else {
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
    let needed = required_approvals(&def, state.action(&def.uses));
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

/// The engine's own gate: destructive actions always need at least one approval, whatever
/// the YAML says; YAML can only make a gate stricter.
fn required_approvals(def: &StepDef, info: ActionInfo) -> u32 {
    let yaml = def.approval.as_ref().map(|a| a.count).unwrap_or(0);
    if info.destructive { yaml.max(1) } else { yaml }
}

/// Drive every step as far as it can go at `now`.
pub(super) fn advance(state: &mut RunState, now: Millis, out: &mut Vec<Command>) {
    if state.meta.status.is_terminal() {
        return;
    }
    // Starting a step can make another ready (a skip cascades), so loop to a fixed point.
    for _ in 0..=state.playbook.steps.len() {
        let mut changed = false;
        let defs = state.playbook.steps.clone();
        for def in &defs {
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
            started_at: None,
            finished_at: None,
        });
    }
    let info = state.action(&def.uses);
    let needed = required_approvals(def, info);
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
                        "mutating": info.mutating }),
            );
            out.push(Command::Invoke(inv));
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
    let idle = st
        .tasks
        .iter()
        .all(|t| t.status.is_terminal() || t.status == TaskStatus::Paused);
    if idle && st.status != StepStatus::Paused {
        st.status = StepStatus::Paused;
        state.dirty.steps.insert(id.clone());
        record(
            out,
            now,
            ENGINE,
            "step.paused",
            Some(&id),
            None,
            "paused: an attempt's effect is unknown; a person must check and resolve it".into(),
            json!({}),
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
