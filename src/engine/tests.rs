//! The engine tested as "event in, commands out": no store, no clock, no network.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::playbook::{self, ActionCatalog, ActionSpec, InputSpec, InputType};

pub(super) const ANY: &[InputSpec] = &[
    InputSpec {
        name: "target",
        ty: InputType::Any,
        required: false,
        help: "",
    },
    InputSpec {
        name: "items",
        ty: InputType::Any,
        required: false,
        help: "",
    },
];

static SPECS: &[ActionSpec] = &[
    ActionSpec {
        name: "t.read",
        summary: "",
        inputs: ANY,
        outputs: &[],
        mutating: false,
        destructive: false,
    },
    ActionSpec {
        name: "t.write",
        summary: "",
        inputs: ANY,
        outputs: &[],
        mutating: true,
        destructive: false,
    },
    ActionSpec {
        name: "t.delete",
        summary: "",
        inputs: ANY,
        outputs: &[],
        mutating: true,
        destructive: true,
    },
];

struct Catalog;
impl ActionCatalog for Catalog {
    fn spec(&self, name: &str) -> Option<&ActionSpec> {
        SPECS.iter().find(|s| s.name == name)
    }
    fn names(&self) -> Vec<&'static str> {
        SPECS.iter().map(|s| s.name).collect()
    }
}

pub(super) fn run(yaml: &str, mode: Mode, params: Value) -> RunState {
    let (pb, _) =
        playbook::parse("t.yaml", yaml.as_bytes(), &Catalog).unwrap_or_else(|d| panic!("{d}"));
    let actions: BTreeMap<String, ActionInfo> = SPECS
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                ActionInfo {
                    mutating: s.mutating,
                    destructive: s.destructive,
                    unavailable: None,
                },
            )
        })
        .collect();
    let meta = IncidentMeta {
        id: "inc-t".into(),
        mode,
        status: IncidentStatus::Running,
        params,
        auto_approve: false,
        started_by: "oncall".into(),
        created_at: 0,
        finished_at: None,
    };
    RunState::new(meta, Arc::new(pb), Policy::default(), actions)
}

pub(super) fn invokes(cmds: &[Command]) -> Vec<(String, u32, u32)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Invoke(i) => Some((i.step.clone(), i.index, i.attempt)),
            _ => None,
        })
        .collect()
}

pub(super) fn probes(cmds: &[Command]) -> Vec<(String, u32)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Probe(i) => Some((i.step.clone(), i.index)),
            _ => None,
        })
        .collect()
}

pub(super) fn kinds(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Record(e) => Some(e.kind.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn ok(step: &str, index: u32, attempt: u32, now: Millis) -> Event {
    Event::TaskFinished {
        step: step.into(),
        index,
        attempt,
        outcome: Outcome::Success {
            outputs: json!({ "n": index }),
            detail: Value::Null,
        },
        now,
    }
}

pub(super) fn fail(
    step: &str,
    attempt: u32,
    transient: bool,
    ambiguous: bool,
    now: Millis,
) -> Event {
    Event::TaskFinished {
        step: step.into(),
        index: 0,
        attempt,
        outcome: Outcome::Failure {
            error: "boom".into(),
            transient,
            ambiguous,
            retry_after_ms: None,
            detail: Value::Null,
        },
        now,
    }
}

fn decide(step: &str, actor: &str, groups: &[&str], d: Decision, now: Millis) -> Event {
    Event::Decision {
        step: step.into(),
        actor: actor.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        decision: d,
        reason: "because".into(),
        target: None,
        now,
    }
}

const CHAIN: &str = "name: chain\nsteps:\n  - id: a\n    uses: t.write\n  - id: b\n    uses: t.read\n    needs: [a]\n";

#[test]
fn dag_runs_in_order_and_finishes() {
    let mut st = run(CHAIN, Mode::Live, json!({}));
    let c = handle(&mut st, Event::Tick { now: 1 });
    assert_eq!(invokes(&c), vec![("a".into(), 0, 1)]);
    // The intent (task running, attempt 1) is marked for the same commit as the invoke.
    assert!(st.dirty.tasks.contains(&("a".to_string(), 0)));
    assert!(kinds(&c).contains(&"attempt.started".to_string()));
    let c = handle(&mut st, ok("a", 0, 1, 2));
    assert_eq!(invokes(&c), vec![("b".into(), 0, 1)]);
    let c = handle(&mut st, ok("b", 0, 1, 3));
    assert!(invokes(&c).is_empty());
    assert_eq!(st.meta.status, IncidentStatus::Succeeded);
    assert!(kinds(&c).contains(&"incident.finished".to_string()));
}

#[test]
fn engine_is_deterministic() {
    let go = || {
        let mut st = run(CHAIN, Mode::Live, json!({}));
        let mut all = handle(&mut st, Event::Tick { now: 1 });
        all.extend(handle(&mut st, fail("a", 1, true, false, 2)));
        all.extend(handle(&mut st, Event::Tick { now: 100_000 }));
        all
    };
    assert_eq!(go(), go());
}

#[test]
fn fan_out_respects_concurrency_and_collects_outputs() {
    let y = "name: f\nparams:\n  xs: { type: list, required: true }\nsteps:\n  - id: w\n    uses: t.write\n    for_each: ${{ params.xs }}\n    concurrency: 2\n    with: { target: \"${{ item }}\" }\n";
    let mut st = run(y, Mode::Live, json!({ "xs": ["a", "b", "c", "d", "e"] }));
    let c = handle(&mut st, Event::Tick { now: 1 });
    assert_eq!(invokes(&c).len(), 2);
    let mut started = invokes(&c);
    let mut now = 2;
    while let Some((step, idx, att)) = started.pop() {
        let c = handle(&mut st, ok(&step, idx, att, now));
        now += 1;
        let running = st.steps["w"]
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Running)
            .count();
        assert!(running <= 2, "concurrency exceeded: {running}");
        started.extend(invokes(&c));
    }
    assert_eq!(st.meta.status, IncidentStatus::Succeeded);
    assert_eq!(st.steps["w"].outputs["count"], 5);
    assert_eq!(st.steps["w"].tasks[2].inputs["target"], "c");
    assert_eq!(st.steps["w"].tasks[2].idem_key, "recall:inc-t:w:2");
}

#[test]
fn empty_fan_out_succeeds_without_calls() {
    let y = "name: f\nparams:\n  xs: { type: list, default: [] }\nsteps:\n  - id: w\n    uses: t.write\n    for_each: ${{ params.xs }}\n    with: { target: \"${{ item }}\" }\n";
    let mut st = run(y, Mode::Live, json!({ "xs": [] }));
    let c = handle(&mut st, Event::Tick { now: 1 });
    assert!(invokes(&c).is_empty());
    assert_eq!(st.meta.status, IncidentStatus::Succeeded);
}

#[test]
fn transient_failures_retry_on_a_timer_permanent_ones_do_not() {
    let y = "name: r\nsteps:\n  - id: a\n    uses: t.read\n    retry: { attempts: 3, backoff: exponential, initial: 1s, max: 10s }\n";
    let mut st = run(y, Mode::Live, json!({}));
    handle(&mut st, Event::Tick { now: 0 });
    let c = handle(&mut st, fail("a", 1, true, false, 1000));
    assert!(invokes(&c).is_empty());
    let t = &st.steps["a"].tasks[0];
    assert_eq!(t.status, TaskStatus::RetryWait);
    let due = t.next_run_at.expect("a retry timer row");
    assert!(
        (800..=1200).contains(&(due - 1000)),
        "1s ±20% jitter, got {}",
        due - 1000
    );
    assert_eq!(next_wake(&st), Some(due));
    assert!(invokes(&handle(&mut st, Event::Tick { now: due - 1 })).is_empty());
    assert_eq!(
        invokes(&handle(&mut st, Event::Tick { now: due })),
        vec![("a".into(), 0, 2)]
    );
    // A permanent error ends it at once.
    let c = handle(&mut st, fail("a", 2, false, false, due + 1));
    assert!(invokes(&c).is_empty());
    assert_eq!(st.steps["a"].status, StepStatus::Failed);
    assert_eq!(st.meta.status, IncidentStatus::Failed);
}

#[test]
fn retries_are_bounded_by_attempts() {
    let y = "name: r\nsteps:\n  - id: a\n    uses: t.read\n    retry: { attempts: 2, initial: 1s, max: 1s }\n";
    let mut st = run(y, Mode::Live, json!({}));
    handle(&mut st, Event::Tick { now: 0 });
    handle(&mut st, fail("a", 1, true, false, 1));
    handle(&mut st, Event::Tick { now: 10_000 });
    handle(&mut st, fail("a", 2, true, false, 10_001));
    assert_eq!(st.steps["a"].status, StepStatus::Failed);
}

#[test]
fn ambiguous_failure_of_a_mutation_probes_before_retrying() {
    let y = "name: r\nsteps:\n  - id: a\n    uses: t.write\n    retry: { attempts: 3, initial: 1s, max: 1s }\n";
    let mut st = run(y, Mode::Live, json!({}));
    handle(&mut st, Event::Tick { now: 0 });
    handle(&mut st, fail("a", 1, true, true, 1));
    let c = handle(&mut st, Event::Tick { now: 10_000 });
    assert!(invokes(&c).is_empty(), "must not resend blindly");
    assert_eq!(probes(&c), vec![("a".into(), 0)]);
    let c = handle(
        &mut st,
        Event::Probed {
            step: "a".into(),
            index: 0,
            attempt: 1,
            verdict: ProbeVerdict::Done {
                outputs: json!({}),
                evidence: json!({}),
            },
            now: 10_001,
        },
    );
    assert!(invokes(&c).is_empty());
    assert_eq!(st.meta.status, IncidentStatus::Succeeded);
}

#[test]
fn resume_reconciles_interrupted_mutations_and_reruns_reads() {
    let y = "name: r\nsteps:\n  - id: w\n    uses: t.write\n  - id: r\n    uses: t.read\n";
    let mut st = run(y, Mode::Live, json!({}));
    let c = handle(&mut st, Event::Tick { now: 0 });
    assert_eq!(invokes(&c).len(), 2);
    // Crash here: both attempts have intents and no results.
    let c = handle(&mut st, Event::Resumed { now: 5 });
    assert_eq!(probes(&c), vec![("w".into(), 0)]);
    assert_eq!(
        invokes(&c),
        vec![("r".into(), 0, 2)],
        "a read is simply run again"
    );
    // Not done: the request may still be landing, so probe once more after the grace period…
    let c = handle(
        &mut st,
        Event::Probed {
            step: "w".into(),
            index: 0,
            attempt: 1,
            verdict: ProbeVerdict::NotDone {
                evidence: json!({}),
            },
            now: 6,
        },
    );
    assert!(invokes(&c).is_empty(), "no resend on the first 'not done'");
    assert!(kinds(&c).contains(&"reconcile.wait".to_string()));
    assert!(probes(&handle(&mut st, Event::Tick { now: 6 + 4_999 })).is_empty());
    assert_eq!(
        probes(&handle(&mut st, Event::Tick { now: 6 + 5_000 })),
        vec![("w".into(), 0)]
    );
    // …and only a second "not done" sends again (a new attempt), informed by the probes.
    let c = handle(
        &mut st,
        Event::Probed {
            step: "w".into(),
            index: 0,
            attempt: 1,
            verdict: ProbeVerdict::NotDone {
                evidence: json!({}),
            },
            now: 2_010,
        },
    );
    assert_eq!(invokes(&c), vec![("w".into(), 0, 2)]);
}

#[test]
fn unknown_probe_pauses_for_a_human() {
    let mut st = run(CHAIN, Mode::Live, json!({}));
    handle(&mut st, Event::Tick { now: 0 });
    handle(&mut st, Event::Resumed { now: 1 });
    let c = handle(
        &mut st,
        Event::Probed {
            step: "a".into(),
            index: 0,
            attempt: 1,
            verdict: ProbeVerdict::Unknown {
                reason: "registry down".into(),
            },
            now: 2,
        },
    );
    assert!(invokes(&c).is_empty());
    assert_eq!(st.steps["a"].status, StepStatus::Paused);
    assert_eq!(st.meta.status, IncidentStatus::Waiting);
    let c = handle(
        &mut st,
        Event::Resolve {
            step: "a".into(),
            index: None,
            actor: "alice".into(),
            resolution: Resolution::Retry,
            reason: "checked: not done".into(),
            now: 3,
        },
    );
    assert_eq!(invokes(&c), vec![("a".into(), 0, 2)]);
}

#[test]
fn stale_completions_are_fenced_off() {
    let mut st = run(CHAIN, Mode::Live, json!({}));
    handle(&mut st, Event::Tick { now: 0 });
    let c = handle(&mut st, ok("a", 0, 7, 1));
    assert!(kinds(&c).contains(&"attempt.stale".to_string()));
    assert_eq!(st.steps["a"].tasks[0].status, TaskStatus::Running);
}

const GATED: &str = "name: g\nsteps:\n  - id: c\n    uses: t.write\n  - id: del\n    uses: t.write\n    needs: [c]\n    with: { target: pkg@1.0.0 }\n    approval: { count: 2, from: [group:admins, user:carol] }\n  - id: pm\n    uses: t.read\n    needs: [del]\n    if: always()\n";

#[test]
fn approvals_need_distinct_authorised_people_not_the_starter() {
    let mut st = run(GATED, Mode::Live, json!({}));
    handle(&mut st, Event::Tick { now: 0 });
    let c = handle(&mut st, ok("c", 0, 1, 1));
    assert!(invokes(&c).is_empty());
    assert_eq!(st.steps["del"].status, StepStatus::AwaitingApproval);
    assert_eq!(st.meta.status, IncidentStatus::Waiting);
    assert!(kinds(&c).contains(&"approval.requested".to_string()));
    for (actor, groups) in [("oncall", vec!["admins"]), ("mallory", vec![])] {
        let c = handle(&mut st, decide("del", actor, &groups, Decision::Approve, 2));
        assert_eq!(kinds(&c)[0], "approval.refused", "{actor}");
    }
    let c = handle(
        &mut st,
        decide("del", "alice", &["admins"], Decision::Approve, 3),
    );
    assert!(invokes(&c).is_empty(), "one of two approvals");
    let c = handle(
        &mut st,
        decide("del", "alice", &["admins"], Decision::Approve, 4),
    );
    assert_eq!(kinds(&c)[0], "approval.refused", "same person twice");
    let c = handle(&mut st, decide("del", "carol", &[], Decision::Approve, 5));
    assert_eq!(invokes(&c), vec![("del".into(), 0, 1)]);
    assert!(
        st.steps["del"]
            .approvals
            .iter()
            .all(|a| a.target.contains("pkg@1.0.0"))
    );
}

#[test]
fn a_rejection_ends_the_gate_and_always_steps_still_run() {
    let mut st = run(GATED, Mode::Live, json!({}));
    handle(&mut st, Event::Tick { now: 0 });
    handle(&mut st, ok("c", 0, 1, 1));
    let c = handle(
        &mut st,
        decide("del", "alice", &["admins"], Decision::Reject, 2),
    );
    assert_eq!(st.steps["del"].status, StepStatus::Rejected);
    assert_eq!(invokes(&c), vec![("pm".into(), 0, 1)]);
    let c = handle(&mut st, decide("del", "carol", &[], Decision::Approve, 3));
    assert_eq!(kinds(&c)[0], "approval.refused", "first decision wins");
    handle(&mut st, ok("pm", 0, 1, 4));
    assert_eq!(st.meta.status, IncidentStatus::Succeeded);
}

#[test]
fn an_expired_approval_fails_and_never_approves() {
    let mut st = run(GATED, Mode::Live, json!({}));
    handle(&mut st, Event::Tick { now: 0 });
    handle(&mut st, ok("c", 0, 1, 1));
    let deadline = st.steps["del"].approval_deadline.expect("deadline row");
    assert_eq!(next_wake(&st), Some(deadline));
    let c = handle(&mut st, Event::Tick { now: deadline });
    assert!(!invokes(&c).iter().any(|(s, _, _)| s == "del"));
    assert_eq!(st.steps["del"].status, StepStatus::Failed);
    assert!(kinds(&c).contains(&"approval.expired".to_string()));
}

#[test]
fn destructive_actions_are_gated_even_without_yaml_approval() {
    let y = "name: d\nsteps:\n  - id: del\n    uses: t.delete\n";
    let mut st = run(y, Mode::Live, json!({}));
    let c = handle(&mut st, Event::Tick { now: 0 });
    assert!(invokes(&c).is_empty());
    assert_eq!(st.steps["del"].status, StepStatus::AwaitingApproval);
}

#[test]
fn auto_approve_only_in_rehearsal() {
    let y = "name: d\nsteps:\n  - id: del\n    uses: t.delete\n";
    let mut st = run(y, Mode::Rehearsal, json!({}));
    st.meta.auto_approve = true;
    let c = handle(&mut st, Event::Tick { now: 0 });
    let gates = c.iter().filter(|c| matches!(c, Command::Gate(_))).count();
    assert_eq!(gates, 1, "a destructive attempt goes to the gate first");
    assert!(invokes(&c).is_empty());
    assert_eq!(st.steps["del"].approvals[0].actor, "game-day");
    let mut live = run(y, Mode::Live, json!({}));
    live.meta.auto_approve = true;
    assert!(invokes(&handle(&mut live, Event::Tick { now: 0 })).is_empty());
}

#[test]
fn conditions_and_failure_propagation() {
    let y = "name: c\nparams:\n  go: { type: bool, default: false }\nsteps:\n  - id: a\n    uses: t.read\n  - id: b\n    uses: t.read\n    needs: [a]\n  - id: on-fail\n    uses: t.read\n    needs: [b]\n    if: failure()\n  - id: cond\n    uses: t.read\n    if: ${{ params.go }}\n";
    let mut st = run(y, Mode::Live, json!({ "go": false }));
    let c = handle(&mut st, Event::Tick { now: 0 });
    assert_eq!(invokes(&c), vec![("a".into(), 0, 1)]);
    assert_eq!(st.steps["cond"].status, StepStatus::Skipped);
    let c = handle(&mut st, fail("a", 1, false, false, 1));
    assert_eq!(
        st.steps["b"].status,
        StepStatus::Skipped,
        "needs a failed step"
    );
    assert_eq!(
        invokes(&c),
        vec![("on-fail".into(), 0, 1)],
        "failure() sees the ancestor's failure"
    );
}

#[test]
fn continue_on_error_keeps_dependents_going() {
    let y = "name: c\nsteps:\n  - id: a\n    uses: t.read\n    continue-on-error: true\n  - id: b\n    uses: t.read\n    needs: [a]\n";
    let mut st = run(y, Mode::Live, json!({}));
    handle(&mut st, Event::Tick { now: 0 });
    let c = handle(&mut st, fail("a", 1, false, false, 1));
    assert_eq!(invokes(&c), vec![("b".into(), 0, 1)]);
    handle(&mut st, ok("b", 0, 1, 2));
    assert_eq!(st.meta.status, IncidentStatus::Succeeded);
}

#[test]
fn outputs_flow_into_later_expressions_evaluated_once() {
    let y = "name: o\nsteps:\n  - id: a\n    uses: t.read\n  - id: b\n    uses: t.read\n    needs: [a]\n    if: ${{ steps.a.outputs.n == 0 }}\n    with: { target: \"n=${{ steps.a.outputs.n }}\" }\n";
    let mut st = run(y, Mode::Live, json!({}));
    handle(&mut st, Event::Tick { now: 0 });
    let c = handle(&mut st, ok("a", 0, 1, 1));
    assert_eq!(invokes(&c).len(), 1);
    assert_eq!(st.steps["b"].tasks[0].inputs["target"], "n=0");
}

#[test]
fn rehearsal_invocations_carry_the_mode() {
    let mut st = run(CHAIN, Mode::Rehearsal, json!({}));
    let c = handle(&mut st, Event::Tick { now: 0 });
    assert!(
        c.iter()
            .any(|c| matches!(c, Command::Invoke(i) if i.mode == Mode::Rehearsal && i.mutating))
    );
}

#[test]
fn targets_name_what_the_inputs_touch() {
    assert_eq!(
        describe_inputs(&json!({ "package": "rc", "version": "1.2.9" })),
        "rc@1.2.9"
    );
    assert_eq!(
        describe_inputs(&json!({ "spec": "@solana/web3.js@1.95.6" })),
        "@solana/web3.js@1.95.6"
    );
    assert_eq!(
        describe_inputs(&json!({ "package": "rc", "tag": "latest" })),
        "rc dist-tag latest"
    );
    assert_eq!(describe_inputs(&json!({ "token": "a1b2c3" })), "a1b2c3");
    assert_eq!(describe_inputs(&json!({})), "(no target)");
}
