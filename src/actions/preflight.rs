//! Preflight: read-only checks that an action's live path would succeed — the credential is
//! configured, alive and allowed to do what the action does; the target exists; the registry
//! can do what the action needs. A game day runs them on every step next to the plan, so a
//! read-only token or a role without `patch` is found on a calm day, not during the incident.
//!
//! Every check is pass / fail / unknown with its evidence and, when it is not a pass, the
//! fix. "Unknown" is honest: some facts cannot be read without sending the request itself
//! (a fine-grained GitHub token's write permission, a crates.io token's scopes); the
//! check then says what it could verify and what the operator must confirm.
//!
//! Preflight never sends a mutating request: it runs only in rehearsals, where
//! [`ActionCtx::ensure_live`](super::ActionCtx::ensure_live) refuses one anyway.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Fail,
    Unknown,
    Pass,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Unknown => "unknown",
        }
    }
}

/// How much a failed check matters to the live path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    /// The live call would be refused: the step cannot do its work.
    Blocks,
    /// The live path has a fallback or the step still does part of its work; slower or
    /// weaker, not stopped.
    Degrades,
    /// Worth knowing; nothing fails because of it.
    Info,
}

/// One preflight check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Stable identifier, `<family>.<what>` (`npm.token.write`, `kube.rbac`,
    /// `oci.tag_delete`): what reports group and tests match on.
    pub check: String,
    /// What was checked, named precisely (`token from NPM_TOKEN on https://…`,
    /// `patch configmaps in namespace recall-system on cluster prod`).
    pub subject: String,
    pub verdict: Verdict,
    pub impact: Impact,
    /// What was read that decided the verdict (a status, a header, a field).
    pub evidence: String,
    /// What to do, for anything but a pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(check: &str, subject: impl Into<String>, evidence: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            subject: subject.into(),
            verdict: Verdict::Pass,
            impact: Impact::Info,
            evidence: evidence.into(),
            fix: None,
        }
    }

    /// A failed check that stops the live path.
    pub fn fail(
        check: &str,
        subject: impl Into<String>,
        evidence: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            check: check.into(),
            subject: subject.into(),
            verdict: Verdict::Fail,
            impact: Impact::Blocks,
            evidence: evidence.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn unknown(
        check: &str,
        subject: impl Into<String>,
        evidence: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            check: check.into(),
            subject: subject.into(),
            verdict: Verdict::Unknown,
            impact: Impact::Info,
            evidence: evidence.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn impact(mut self, impact: Impact) -> Self {
        self.impact = impact;
        self
    }

    /// Does this check say the live path would be stopped?
    pub fn blocks(&self) -> bool {
        self.verdict == Verdict::Fail && self.impact == Impact::Blocks
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The checks of an action without any external dependency (a note, the postmortem draft).
pub fn local(action: &str) -> Vec<Check> {
    vec![Check::pass(
        "local",
        action,
        "runs inside Recall: no credential, no remote system",
    )]
}

/// The check for inputs the action cannot even read: the live path fails the same way.
pub fn input_check(error: &str) -> Check {
    Check::fail(
        "input",
        "the step's inputs",
        error,
        "fix the playbook or its parameters",
    )
}

/// Several items of a step (and several steps) check the same credential and registry;
/// a report lists each distinct check once.
pub fn dedup(checks: &mut Vec<Check>) {
    let mut seen = std::collections::BTreeSet::new();
    checks.retain(|c| seen.insert((c.check.clone(), c.subject.clone(), c.verdict)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_blocking() {
        let f = Check::fail("npm.token.write", "t", "readonly: true", "create a token");
        assert!(f.blocks());
        assert!(!f.clone().impact(Impact::Degrades).blocks());
        assert!(!Check::unknown("x", "s", "e", "f").blocks());
        let j = f.to_json();
        assert_eq!(j["verdict"], "fail");
        assert_eq!(j["impact"], "blocks");
        let back: Check = serde_json::from_value(j).unwrap();
        assert_eq!(back, f);
        let p = Check::pass("a", "b", "c").to_json();
        assert!(p.get("fix").is_none());
        let mut v = vec![f.clone(), f.clone(), Check::pass("a", "b", "c")];
        dedup(&mut v);
        assert_eq!(v.len(), 2);
        assert!(Verdict::Fail < Verdict::Unknown && Verdict::Unknown < Verdict::Pass);
    }
}
