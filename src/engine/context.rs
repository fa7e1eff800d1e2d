//! Shared pieces of the transition rules: the expression context a step sees, status
//! flags, gate targets, retry delays, and recording timeline entries.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::state::*;
use super::{Command, Entry, Invocation};
use crate::expr::StatusFlags;
use crate::playbook::{Backoff, StepDef};

pub(super) const ENGINE: &str = "recall";

#[allow(clippy::too_many_arguments)] // mirrors the Entry fields one to one
pub(super) fn record(
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
pub(super) fn step_context(st: &StepState, continue_on_error: bool) -> Value {
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

pub(super) fn context_root(state: &RunState, item: Option<&Value>) -> Value {
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
pub(super) fn status_flags(state: &RunState, def: &StepDef) -> StatusFlags {
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
pub fn describe_inputs(inputs: &Value) -> String {
    let get = |k: &str| {
        inputs
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let name = get("package").or(get("crate")).or(get("project"));
    if let Some(image) = get("image") {
        return match (get("tag"), get("digest").or(get("reference"))) {
            (Some(t), _) => format!("{image}:{t}"),
            (None, Some(d)) if d.starts_with("sha256:") => format!("{image}@{d}"),
            (None, Some(r)) => format!("{image}:{r}"),
            (None, None) => image.to_string(),
        };
    }
    if let (None, Some(repo)) = (name, get("repo")) {
        return match (get("workflow"), get("tag"), get("name"), get("title")) {
            (Some(w), ..) => format!("{repo} workflow {w}"),
            (None, Some(t), ..) => format!("{repo} release {t}"),
            (None, None, Some(n), _) => format!("{repo} secret {n}"),
            (None, None, None, Some(t)) => format!("{repo}: {t}"),
            _ => repo.to_string(),
        };
    }
    if let (Some(p), Some(d)) = (
        get("provider"),
        inputs.get("destinations").and_then(Value::as_array),
    ) {
        let old = get("old_key").map(|k| format!(" {k}")).unwrap_or_default();
        return format!("{p} credential{old} → {} destination(s)", d.len());
    }
    if name.is_none() && get("token").is_none() {
        if let Some(env) = get("token_env") {
            return format!("token from env {env}");
        }
        if let Some(id) = get("id") {
            return format!("token id {id}");
        }
    }
    match (name, get("version"), get("tag")) {
        (Some(p), Some(v), _) => format!("{p}@{v}"),
        (Some(p), None, Some(t)) => format!("{p} dist-tag {t}"),
        (Some(p), None, None) => p.to_string(),
        _ => [
            "spec", "target", "token", "digest", "image", "name", "title",
        ]
        .iter()
        .find_map(|k| get(k).map(str::to_string))
        .unwrap_or_else(|| "(no target)".to_string()),
    }
}

/// Retry delay for the attempt that just failed: exponential or fixed, capped, with ±20%
/// jitter derived from the idempotency key (deterministic: the engine has no randomness).
pub(super) fn retry_delay(def: &StepDef, task: &TaskState, retry_after_ms: Option<u64>) -> u64 {
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

pub(super) fn invocation(incident: &str, def: &StepDef, t: &TaskState, mode: Mode) -> Invocation {
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

pub(super) fn find_task<'a>(
    state: &'a mut RunState,
    step: &str,
    index: u32,
) -> Option<&'a mut TaskState> {
    state
        .steps
        .get_mut(step)?
        .tasks
        .iter_mut()
        .find(|t| t.index == index)
}

/// The engine's own gate: destructive actions always need at least the configured number
/// of approvals (never fewer than one), whatever the YAML says; YAML can only ask for more.
pub(super) fn required_approvals(def: &StepDef, info: ActionInfo, policy: &Policy) -> u32 {
    let yaml = def.approval.as_ref().map(|a| a.count).unwrap_or(0);
    if info.destructive {
        yaml.max(policy.gate.approvals).max(1)
    } else {
        yaml
    }
}

/// Does `actor` (with `groups`) match any of `rules` (`user:NAME`, `group:NAME`)?
pub(super) fn matches_approver(rules: &[String], actor: &str, groups: &[String]) -> bool {
    rules.iter().any(|f| {
        f.strip_prefix("user:") == Some(actor)
            || f.strip_prefix("group:")
                .is_some_and(|g| groups.iter().any(|x| x == g))
    })
}
