//! The run state the pure engine transforms. Everything here is plain data: the runner loads
//! it from the store, feeds events to [`super::handle`], and persists what the engine marked
//! dirty in one transaction before it executes any command.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::gate::GatePolicy;
use crate::playbook::Playbook;

/// Milliseconds since the Unix epoch. The engine never reads a clock: every event carries `now`.
pub type Millis = i64;

macro_rules! str_enum {
    ($name:ident { $($var:ident => $s:literal),+ $(,)? }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($var),+ }
        impl $name {
            pub fn as_str(self) -> &'static str { match self { $(Self::$var => $s),+ } }
            pub fn parse(s: &str) -> Option<Self> { match s { $($s => Some(Self::$var),)+ _ => None } }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

str_enum!(Mode { Live => "live", Rehearsal => "rehearsal" });

str_enum!(IncidentStatus {
    Running => "running",
    Waiting => "waiting",
    Succeeded => "succeeded",
    Failed => "failed",
});

impl IncidentStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

str_enum!(StepStatus {
    Pending => "pending",
    AwaitingApproval => "awaiting_approval",
    Running => "running",
    Paused => "paused",
    Succeeded => "succeeded",
    Failed => "failed",
    Skipped => "skipped",
    Rejected => "rejected",
});

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Skipped | Self::Rejected
        )
    }
}

str_enum!(TaskStatus {
    Ready => "ready",
    Running => "running",
    RetryWait => "retry_wait",
    Paused => "paused",
    AwaitingHuman => "awaiting_human",
    Succeeded => "succeeded",
    Failed => "failed",
});

impl TaskStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

str_enum!(Decision { Approve => "approve", Reject => "reject" });

/// What the engine needs to know about an action, looked up by the runner from the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActionInfo {
    pub mutating: bool,
    pub destructive: bool,
    /// Why the action cannot run with this configuration (e.g. no cluster configured): a
    /// step using it is skipped with this reason recorded, never half-run.
    pub unavailable: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IncidentMeta {
    pub id: String,
    pub mode: Mode,
    pub status: IncidentStatus,
    pub params: Value,
    pub auto_approve: bool,
    pub started_by: String,
    pub created_at: Millis,
    pub finished_at: Option<Millis>,
}

/// Engine policy that comes from configuration, not from the playbook.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// May the person who started an incident approve its gates?
    pub allow_self_approval: bool,
    /// How long an approval wait lasts before the step fails (a timeout never approves).
    pub approval_timeout_ms: i64,
    /// Default fan-out concurrency when a step sets none.
    pub default_concurrency: u32,
    /// How long to wait before trusting "not done" for an attempt a crash interrupted.
    pub reconcile_grace_ms: i64,
    /// The deletion gate every destructive action passes before each attempt.
    pub gate: GatePolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow_self_approval: false,
            approval_timeout_ms: 24 * 3600 * 1000,
            default_concurrency: 16,
            reconcile_grace_ms: 5_000,
            gate: GatePolicy::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Approval {
    pub actor: String,
    pub decision: Decision,
    pub target: String,
    pub reason: String,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepState {
    pub status: StepStatus,
    pub fanout: bool,
    pub outputs: Value,
    pub error: Option<String>,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub approval_deadline: Option<Millis>,
    pub approvals: Vec<Approval>,
    pub tasks: Vec<TaskState>,
}

impl StepState {
    pub fn pending() -> Self {
        Self {
            status: StepStatus::Pending,
            fanout: false,
            outputs: Value::Null,
            error: None,
            started_at: None,
            finished_at: None,
            approval_deadline: None,
            approvals: Vec::new(),
            tasks: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TaskState {
    pub index: u32,
    pub item: Value,
    pub status: TaskStatus,
    /// Attempts started so far; the attempt number is the fencing token of a completion.
    pub attempt: u32,
    pub inputs: Value,
    /// Derived, never random: (incident, step, item).
    pub idem_key: String,
    pub outputs: Value,
    pub error: Option<String>,
    /// Absolute deadline of a retry timer.
    pub next_run_at: Option<Millis>,
    /// The previous attempt of a mutating action ended without a clear answer: ask the
    /// world (probe) before sending anything again.
    pub needs_probe: bool,
    /// Set when a crash interrupted this attempt: a "not done" answer is trusted only after a
    /// second probe, one grace period later, because a request sent just before the crash
    /// may still be landing at the server. Not stored: a resume sets it again.
    pub reprobe: bool,
    /// The action handed this task to a person (a PyPI yank in the web UI). While set and
    /// running, the task is verifying the person's "done": "not done" fails it loudly.
    pub human: bool,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
}

/// Which rows the last events changed; the runner persists exactly these.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dirty {
    pub incident: bool,
    pub steps: BTreeSet<String>,
    pub tasks: BTreeSet<(String, u32)>,
    /// Of `tasks`, those created by this transition (a step fanning out): inserted whole;
    /// the others only have their mutable columns updated.
    pub new_tasks: BTreeSet<(String, u32)>,
    pub approvals: Vec<(String, Approval)>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        !self.incident
            && self.steps.is_empty()
            && self.tasks.is_empty()
            && self.approvals.is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct RunState {
    pub meta: IncidentMeta,
    pub playbook: Arc<Playbook>,
    pub policy: Policy,
    /// Keyed by step id; iteration order for scheduling follows the playbook.
    pub steps: BTreeMap<String, StepState>,
    pub actions: BTreeMap<String, ActionInfo>,
    pub dirty: Dirty,
}

impl RunState {
    /// A fresh run: every step pending.
    pub fn new(
        meta: IncidentMeta,
        playbook: Arc<Playbook>,
        policy: Policy,
        actions: BTreeMap<String, ActionInfo>,
    ) -> Self {
        let steps = playbook
            .steps
            .iter()
            .map(|s| (s.id.clone(), StepState::pending()))
            .collect();
        let mut st = Self {
            meta,
            playbook,
            policy,
            steps,
            actions,
            dirty: Dirty::default(),
        };
        st.dirty.incident = true;
        st.dirty.steps = st.steps.keys().cloned().collect();
        st
    }

    pub fn take_dirty(&mut self) -> Dirty {
        std::mem::take(&mut self.dirty)
    }

    pub fn action(&self, uses: &str) -> ActionInfo {
        self.actions.get(uses).copied().unwrap_or_default()
    }
}

/// The idempotency key of a task: derived from (incident, step, item) so that a retry, a
/// resume or another replica computes the same key.
pub fn idem_key(incident: &str, step: &str, index: u32) -> String {
    format!("recall:{incident}:{step}:{index}")
}
