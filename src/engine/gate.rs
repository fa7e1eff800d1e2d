//! The deletion gate, pure: given the facts an action read live from its registry (publish
//! time, the identifiers of the target), the recorded approvals and the clock of the
//! moment of execution, decide whether a destructive attempt may be sent.
//!
//! The gate is the engine's, not the YAML's: a playbook can only narrow the window or ask
//! for more approvers (see `playbook::validate`), and the runner evaluates the gate before
//! *every* destructive attempt — the first, each retry, each resend after a crash — so an
//! approval given at hour 71 never authorises a deletion at hour 73.

use serde::Serialize;
use serde_json::{Value, json};

use super::state::{Approval, Decision, Millis};

/// The widest window the engine allows: npm's 72 hours after publish. Configuration and
/// playbooks may narrow it, never widen it.
pub const MAX_WINDOW_MS: i64 = 72 * 3_600_000;

/// Configuration of the gate (from `[gate]`); every field can only make it stricter than
/// the engine's floor.
#[derive(Clone, Debug, PartialEq)]
pub struct GatePolicy {
    /// A destructive action runs only while the registry's publish time is younger than this.
    pub window_ms: i64,
    /// Distinct authorised approvers every destructive step needs, at least 1.
    pub approvals: u32,
    /// Who may approve a deletion (`user:NAME`, `group:NAME`); empty means whoever the
    /// step's `approval.from` allows. When both are set, an approver must satisfy both.
    pub approvers: Vec<String>,
    /// An approval older than this at the moment of execution no longer counts.
    pub approval_ttl_ms: i64,
    /// Compliance classes: a target matching any rule is refused outright.
    pub retention: Vec<RetentionRule>,
}

impl Default for GatePolicy {
    fn default() -> Self {
        Self {
            window_ms: MAX_WINDOW_MS,
            approvals: 1,
            approvers: Vec::new(),
            approval_ttl_ms: 4 * 3_600_000,
            retention: Vec::new(),
        }
    }
}

/// `name` and the label globs it protects (see [`GateFacts::labels`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetentionRule {
    pub name: String,
    pub patterns: Vec<String>,
}

/// What a destructive action read from the registry just before the gate is evaluated.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateFacts {
    /// The registry's own publish time of the target, if it has one.
    pub published_at: Option<Millis>,
    /// Where the publish time came from (`npm time["1.2.3"] at https://…`), or why none.
    pub published_source: String,
    /// The registry has no publish time and configuration explicitly exempts it from the
    /// window (`[oci] publish_time = "allow"`); recorded as such.
    pub window_exempt: bool,
    /// Identifiers of the target that retention rules match, e.g. `npm:left-pad@1.3.0`,
    /// `oci:reg.example/app@sha256:…`, `oci-tag:reg.example/app:v1.2`, `digest:sha256:…`.
    pub labels: Vec<String>,
}

/// Everything the gate looks at besides the facts.
#[derive(Clone, Debug)]
pub struct GateInput<'a> {
    pub policy: &'a GatePolicy,
    /// The step's own narrowing (`gate.window`), if any.
    pub step_window_ms: Option<i64>,
    /// Approvals needed: the larger of the step's and the policy's, at least 1.
    pub needed: u32,
    /// The gate's target as approved (`step_target`), to which approvals must be bound.
    pub target: &'a str,
    pub approvals: &'a [Approval],
    pub started_by: &'a str,
    pub allow_self_approval: bool,
    /// A rehearsal with `--auto-approve`: the game-day approval stands in for the people.
    pub rehearsal_auto: bool,
    pub now: Millis,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateVerdict {
    pub passed: bool,
    /// One line per failed check, naming it; empty when passed.
    pub refusals: Vec<String>,
    /// The evidence of every check, for the timeline.
    pub checks: Value,
}

/// Evaluate the gate. Every check runs (and is reported) even when an earlier one failed,
/// so the timeline says everything that was wrong at once.
pub fn evaluate(facts: &GateFacts, input: &GateInput<'_>) -> GateVerdict {
    let mut refusals = Vec::new();
    let p = input.policy;

    // 1. Retention: refused outright, whatever else holds.
    let mut retained = Vec::new();
    for rule in &p.retention {
        for label in &facts.labels {
            if let Some(pat) = rule.patterns.iter().find(|pat| glob_match(pat, label)) {
                retained.push(json!({ "rule": rule.name, "pattern": pat, "label": label }));
                refusals.push(format!(
                    "retention: `{label}` is in compliance class `{}` (pattern `{pat}`); \
                     it is never deleted",
                    rule.name
                ));
            }
        }
    }

    // 2. The window, from the registry's own publish time, at this moment.
    let window = input
        .step_window_ms
        .map_or(p.window_ms, |w| w.min(p.window_ms))
        .min(MAX_WINDOW_MS);
    let age = facts.published_at.map(|t| input.now.saturating_sub(t));
    match (facts.published_at, age) {
        (Some(_), Some(age)) if age < 0 => refusals.push(format!(
            "window: the registry's publish time is {} in the future; the clock or the \
             registry is wrong",
            human_ms(-age)
        )),
        (Some(_), Some(age)) if age >= window => refusals.push(format!(
            "window: published {} ago, the deletion window is {} ({})",
            human_ms(age),
            human_ms(window),
            facts.published_source
        )),
        (Some(_), _) => {}
        (None, _) if facts.window_exempt => {}
        (None, _) => refusals.push(format!(
            "window: the registry gives no publish time ({}); a deletion outside a known \
             window is refused",
            facts.published_source
        )),
    }

    // 3. Approvals: distinct, authorised at decision time, not the starter, bound to this
    //    target, and still fresh now.
    let mut counted: Vec<&str> = Vec::new();
    let mut ignored = Vec::new();
    let mut rejected = None;
    for a in input.approvals {
        let why = if a.decision == Decision::Reject {
            rejected = Some(a);
            Some("a rejection")
        } else if a.target != input.target {
            Some("given for another target")
        } else if a.actor == input.started_by && !input.allow_self_approval {
            Some("self-approval by the incident's starter")
        } else if input.now.saturating_sub(a.at) > p.approval_ttl_ms {
            Some("expired")
        } else if a.at > input.now {
            Some("dated in the future")
        } else if counted.contains(&a.actor.as_str()) {
            Some("duplicate approver")
        } else if a.actor == "game-day" && !input.rehearsal_auto {
            Some("game-day approvals only count in a rehearsal")
        } else {
            None
        };
        match why {
            Some(w) => ignored.push(json!({ "actor": a.actor, "why": w })),
            None => counted.push(&a.actor),
        }
    }
    let needed = input.needed.max(p.approvals).max(1);
    let auto = input.rehearsal_auto && counted.contains(&"game-day");
    if let Some(r) = rejected {
        refusals.push(format!("approval: rejected by {}: {}", r.actor, r.reason));
    } else if (counted.len() as u32) < needed && !auto {
        refusals.push(format!(
            "approval: {} valid approval(s) of the {needed} required{}",
            counted.len(),
            if ignored.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} not counted: {})",
                    ignored.len(),
                    ignored
                        .iter()
                        .map(|i| format!(
                            "{} — {}",
                            i["actor"].as_str().unwrap_or("?"),
                            i["why"].as_str().unwrap_or("?")
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ));
    }

    let checks = json!({
        "window": {
            "window_ms": window,
            "published_at": facts.published_at,
            "age_ms": age,
            "source": facts.published_source,
            "exempt": facts.window_exempt,
        },
        "approvals": { "needed": needed, "counted": counted, "ignored": ignored,
                       "ttl_ms": p.approval_ttl_ms, "auto": auto },
        "retention": { "rules": p.retention.len(), "matched": retained },
        "labels": facts.labels,
        "target": input.target,
        "at": input.now,
    });
    GateVerdict {
        passed: refusals.is_empty(),
        refusals,
        checks,
    }
}

/// `*` matches any run of characters (including `/` and `:`), `?` one character; the
/// rest matches literally. Labels are short: the simple backtracking match is enough.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// `3h 12m`, `45s`, `2d 1h`: for gate messages.
pub fn human_ms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (hours, m, sec) = (s / 3600, (s / 60) % 60, s % 60);
    match (hours, m) {
        (0, 0) => format!("{sec}s"),
        (0, _) => format!("{m}m {sec}s"),
        // Hours up to a week, so the 72-hour window reads as "72h".
        (1..=167, 0) => format!("{hours}h"),
        (1..=167, _) => format!("{hours}h {m}m"),
        _ => format!("{}d {}h", hours / 24, hours % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("oci-tag:*:v*", "oci-tag:reg.example/app:v1.2"));
        assert!(!glob_match(
            "oci-tag:*:v*",
            "oci-tag:reg.example/app:latest"
        ));
        assert!(glob_match("npm:@acme/*", "npm:@acme/pay@1.0.0"));
        assert!(glob_match("digest:sha256:ab??", "digest:sha256:abcd"));
        assert!(!glob_match("digest:sha256:ab??", "digest:sha256:abcde"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("", "x"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_ms(45_000), "45s");
        assert_eq!(human_ms(3 * 3_600_000 + 12 * 60_000), "3h 12m");
        assert_eq!(human_ms(72 * 3_600_000), "72h");
        assert_eq!(human_ms(73 * 3_600_000 + 60_000), "73h 1m");
        assert_eq!(human_ms(200 * 3_600_000), "8d 8h");
    }
}
