//! The durable state machine, pure: `(RunState, Event) -> Vec<Command>`.
//!
//! No I/O, no clock, no randomness: time arrives inside events, jitter is derived from the
//! idempotency key, and every world-touching effect leaves as a [`Command`] for the runner.
//! The runner persists the rows this module marks dirty (and the timeline entries it emits)
//! in one transaction *before* it executes any `Invoke`: that commit is the intent record.

mod context;
mod events;
pub mod gate;
mod schedule;
pub mod state;

#[cfg(test)]
mod gate_tests;
#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_json::Value;

pub use context::{describe_inputs, step_target};
pub use schedule::next_wake;
pub use state::*;

/// Something that happened, fed to [`handle`].
#[derive(Clone, Debug)]
pub enum Event {
    /// Look for progress: ready steps, due retry timers, expired approval waits.
    Tick { now: Millis },
    /// The engine (re)started on a stored run: attempts that were in flight are reconciled.
    Resumed { now: Millis },
    /// An attempt returned. `attempt` is the fencing token: a stale completion is ignored.
    TaskFinished {
        step: String,
        index: u32,
        attempt: u32,
        outcome: Outcome,
        now: Millis,
    },
    /// The answer of an action's probe for an attempt that may or may not have taken effect.
    Probed {
        step: String,
        index: u32,
        attempt: u32,
        verdict: ProbeVerdict,
        now: Millis,
    },
    /// A person approved or rejected a gate. `groups` are the actor's groups, resolved by
    /// the caller from configuration; `target`, when given, must match the gate's target.
    Decision {
        step: String,
        actor: String,
        groups: Vec<String>,
        decision: Decision,
        reason: String,
        target: Option<String>,
        now: Millis,
    },
    /// The facts a destructive action read for the deletion gate (or why it could not).
    GateChecked {
        step: String,
        index: u32,
        attempt: u32,
        facts: Result<gate::GateFacts, GateFactsError>,
        now: Millis,
    },
    /// A person answered a paused step (an attempt whose effect could not be determined),
    /// or a task handed to them (`MarkDone` then verifies it against the registry).
    Resolve {
        step: String,
        /// One item of a fan-out, or every waiting item of the step.
        index: Option<u32>,
        actor: String,
        resolution: Resolution,
        reason: String,
        now: Millis,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Success {
        outputs: Value,
        /// Details for the timeline: requests sent (live) or that would be sent (rehearsal),
        /// findings, evidence. Never contains a secret.
        detail: Value,
    },
    Failure {
        error: String,
        /// Network trouble, 429, 5xx: worth retrying. A permanent 4xx is not.
        transient: bool,
        /// The request may have reached the server (timeout, reset): the effect is unknown.
        ambiguous: bool,
        retry_after_ms: Option<u64>,
        detail: Value,
    },
    /// The action handed the work to a person (there is no API for it): the task waits for
    /// them; their "done" is then verified by the action's probe.
    Human {
        instructions: String,
        links: Vec<String>,
        detail: Value,
    },
}

/// Reading the gate's facts failed.
#[derive(Clone, Debug, PartialEq)]
pub struct GateFactsError {
    pub error: String,
    pub transient: bool,
    pub retry_after_ms: Option<u64>,
    /// A rehearsal's preflight checks of the step, recorded with the failure (the plan,
    /// which normally carries them, never runs when the gate cannot read its facts).
    pub preflight: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ProbeVerdict {
    Done { outputs: Value, evidence: Value },
    NotDone { evidence: Value },
    Unknown { reason: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The person checked: the effect happened.
    MarkDone,
    /// The person checked: it did not happen; send it again.
    Retry,
    /// Give up on this step.
    Fail,
}

/// One unit of work for the runner.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Invocation {
    pub incident: String,
    pub step: String,
    pub index: u32,
    pub attempt: u32,
    pub uses: String,
    pub inputs: Value,
    pub idem_key: String,
    pub mutating: bool,
    pub timeout_ms: Option<u64>,
    pub mode: Mode,
}

/// A timeline entry to append (the store chains it by hash).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub at: Millis,
    pub actor: String,
    pub kind: String,
    pub step: Option<String>,
    pub index: Option<u32>,
    pub summary: String,
    pub data: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Run the action (its `run` live, its `plan` in rehearsal).
    Invoke(Invocation),
    /// Ask the action whether the attempt already took effect.
    Probe(Invocation),
    /// A destructive attempt: read the deletion gate's facts live (publish time, target
    /// labels) and answer with [`Event::GateChecked`]; nothing is sent before that.
    Gate(Invocation),
    /// Append to the timeline, in the same transaction as the state change.
    Record(Entry),
}

/// The engine's single entry point.
pub fn handle(state: &mut RunState, event: Event) -> Vec<Command> {
    handle_all(state, vec![event])
}

/// Apply a batch of events, then drive the run once: the same result as feeding them one
/// by one through [`handle`] (advancing is a fixed point), in one pass over the tasks
/// instead of one per event.
pub fn handle_all(state: &mut RunState, events: Vec<Event>) -> Vec<Command> {
    let mut out = Vec::new();
    let mut now = Millis::MIN;
    for event in events {
        now = now.max(apply(state, event, &mut out));
    }
    if now != Millis::MIN {
        schedule::advance(state, now, &mut out);
    }
    out
}

/// The event-specific part of a transition; returns the event's time.
fn apply(state: &mut RunState, event: Event, out: &mut Vec<Command>) -> Millis {
    match event {
        Event::Tick { now } => now,
        Event::Resumed { now } => {
            events::on_resumed(state, now, out);
            now
        }
        Event::TaskFinished {
            step,
            index,
            attempt,
            outcome,
            now,
        } => {
            events::on_task_finished(state, &step, index, attempt, outcome, now, out);
            now
        }
        Event::Probed {
            step,
            index,
            attempt,
            verdict,
            now,
        } => {
            events::on_probed(state, &step, index, attempt, verdict, now, out);
            now
        }
        Event::Decision {
            step,
            actor,
            groups,
            decision,
            reason,
            target,
            now,
        } => {
            let d = events::DecisionIn {
                step: &step,
                actor: &actor,
                groups: &groups,
                decision,
                reason: &reason,
                target: target.as_deref(),
            };
            events::on_decision(state, d, now, out);
            now
        }
        Event::GateChecked {
            step,
            index,
            attempt,
            facts,
            now,
        } => {
            events::on_gate_checked(state, &step, index, attempt, facts, now, out);
            now
        }
        Event::Resolve {
            step,
            index,
            actor,
            resolution,
            reason,
            now,
        } => {
            events::on_resolve(state, &step, index, &actor, resolution, &reason, now, out);
            now
        }
    }
}
