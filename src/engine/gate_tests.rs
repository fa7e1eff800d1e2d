//! The deletion gate and human tasks, tested through the engine: events in, commands out.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::gate::{GateFacts, GatePolicy, RetentionRule};
use super::tests::{invokes, kinds, ok, probes, run};
use super::*;

const H: Millis = 3_600_000;
const DELETE: &str =
    "name: d\nsteps:\n  - id: del\n    uses: t.delete\n    with: { target: pkg }\n";
const DELETE_RETRY: &str = "name: d\nsteps:\n  - id: del\n    uses: t.delete\n    with: { target: pkg }\n    retry: { attempts: 3 }\n";

fn gates(cmds: &[Command]) -> Vec<(String, u32, u32)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Gate(i) => Some((i.step.clone(), i.index, i.attempt)),
            _ => None,
        })
        .collect()
}

fn records<'a>(cmds: &'a [Command], kind: &str) -> Vec<&'a Entry> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Record(e) if e.kind == kind => Some(e),
            _ => None,
        })
        .collect()
}

fn decide(
    actor: &str,
    groups: &[&str],
    decision: Decision,
    target: Option<&str>,
    now: Millis,
) -> Event {
    Event::Decision {
        step: "del".into(),
        actor: actor.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        decision,
        reason: "checked".into(),
        target: target.map(str::to_string),
        now,
    }
}

fn facts(published_at: Option<Millis>) -> GateFacts {
    GateFacts {
        published_at,
        published_source: "test registry".into(),
        window_exempt: false,
        labels: vec!["npm:pkg@1.0.0".into()],
    }
}

fn checked(attempt: u32, f: GateFacts, now: Millis) -> Event {
    Event::GateChecked {
        step: "del".into(),
        index: 0,
        attempt,
        facts: Ok(f),
        now,
    }
}

fn gated_run(policy: GatePolicy) -> RunState {
    let mut st = run(DELETE_RETRY, Mode::Live, json!({}));
    st.policy.gate = policy;
    st
}

#[test]
fn a_deletion_is_sent_only_after_the_gate_reads_fresh_facts() {
    let mut st = gated_run(GatePolicy::default());
    handle(&mut st, Event::Tick { now: 0 });
    let c = handle(&mut st, decide("alice", &[], Decision::Approve, None, H));
    assert_eq!(gates(&c), vec![("del".into(), 0, 1)]);
    assert!(invokes(&c).is_empty(), "nothing is sent before the gate");
    let c = handle(&mut st, checked(1, facts(Some(0)), H + 1000));
    assert_eq!(invokes(&c), vec![("del".into(), 0, 1)]);
    assert_eq!(records(&c, "gate.passed").len(), 1);
}

#[test]
fn an_approval_at_hour_71_does_not_authorise_a_deletion_at_hour_73() {
    let mut st = gated_run(GatePolicy {
        approval_ttl_ms: 24 * H,
        ..GatePolicy::default()
    });
    handle(&mut st, Event::Tick { now: 0 });
    handle(
        &mut st,
        decide("alice", &[], Decision::Approve, None, 71 * H),
    );
    let c = handle(&mut st, checked(1, facts(Some(0)), 73 * H));
    assert!(invokes(&c).is_empty());
    let refused = records(&c, "gate.refused");
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].summary.contains("window"),
        "{}",
        refused[0].summary
    );
    assert_eq!(st.steps["del"].status, StepStatus::Failed);
    assert!(
        st.steps["del"]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("deletion gate refused"),
        "{:?}",
        st.steps["del"].error
    );
}

#[test]
fn every_retry_goes_through_the_gate_again() {
    let mut st = gated_run(GatePolicy::default());
    handle(&mut st, Event::Tick { now: 0 });
    handle(&mut st, decide("alice", &[], Decision::Approve, None, 10));
    handle(&mut st, checked(1, facts(Some(0)), 20));
    let c = handle(
        &mut st,
        Event::TaskFinished {
            step: "del".into(),
            index: 0,
            attempt: 1,
            outcome: Outcome::Failure {
                error: "503".into(),
                transient: true,
                ambiguous: false,
                retry_after_ms: None,
                detail: Value::Null,
            },
            now: 30,
        },
    );
    assert!(invokes(&c).is_empty());
    let c = handle(&mut st, Event::Tick { now: 30 + H });
    assert_eq!(gates(&c), vec![("del".into(), 0, 2)], "a retry is re-gated");
    assert!(invokes(&c).is_empty());
}

#[test]
fn unreadable_facts_retry_when_transient_and_never_send() {
    let mut st = gated_run(GatePolicy::default());
    handle(&mut st, Event::Tick { now: 0 });
    handle(&mut st, decide("alice", &[], Decision::Approve, None, 10));
    let c = handle(
        &mut st,
        Event::GateChecked {
            step: "del".into(),
            index: 0,
            attempt: 1,
            facts: Err(GateFactsError {
                error: "connect: refused".into(),
                transient: true,
                retry_after_ms: None,
                preflight: Value::Null,
            }),
            now: 20,
        },
    );
    assert!(invokes(&c).is_empty());
    assert_eq!(records(&c, "gate.unavailable").len(), 1);
    assert_eq!(st.steps["del"].tasks[0].status, TaskStatus::RetryWait);
}

#[test]
fn a_stale_gate_answer_is_ignored() {
    let mut st = gated_run(GatePolicy::default());
    handle(&mut st, Event::Tick { now: 0 });
    handle(&mut st, decide("alice", &[], Decision::Approve, None, 10));
    let c = handle(&mut st, checked(7, facts(Some(0)), 20));
    assert!(invokes(&c).is_empty());
}

#[test]
fn retention_refuses_outright_naming_the_rule() {
    let mut st = gated_run(GatePolicy {
        retention: vec![RetentionRule {
            name: "sox-packages".into(),
            patterns: vec!["npm:pkg@*".into()],
        }],
        ..GatePolicy::default()
    });
    handle(&mut st, Event::Tick { now: 0 });
    handle(&mut st, decide("alice", &[], Decision::Approve, None, 10));
    let c = handle(&mut st, checked(1, facts(Some(0)), 20));
    assert!(invokes(&c).is_empty());
    let r = records(&c, "gate.refused");
    assert!(r[0].summary.contains("sox-packages"), "{}", r[0].summary);
}

#[test]
fn unknown_publish_time_is_refused_unless_exempt() {
    let mut st = gated_run(GatePolicy::default());
    handle(&mut st, Event::Tick { now: 0 });
    handle(&mut st, decide("alice", &[], Decision::Approve, None, 10));
    let c = handle(&mut st, checked(1, facts(None), 20));
    assert!(invokes(&c).is_empty());
    let mut st = gated_run(GatePolicy::default());
    handle(&mut st, Event::Tick { now: 0 });
    handle(&mut st, decide("alice", &[], Decision::Approve, None, 10));
    let mut f = facts(None);
    f.window_exempt = true;
    let c = handle(&mut st, checked(1, f, 20));
    assert_eq!(invokes(&c).len(), 1);
}

#[test]
fn config_approvers_bound_who_may_approve_a_deletion() {
    let mut st = gated_run(GatePolicy {
        approvers: vec!["group:release-admins".into()],
        approvals: 2,
        ..GatePolicy::default()
    });
    handle(&mut st, Event::Tick { now: 0 });
    let c = handle(
        &mut st,
        decide("mallory", &["devs"], Decision::Approve, None, 10),
    );
    assert_eq!(records(&c, "approval.refused").len(), 1);
    let c = handle(
        &mut st,
        decide("alice", &["release-admins"], Decision::Approve, None, 20),
    );
    assert!(gates(&c).is_empty(), "two approvals are configured");
    let c = handle(
        &mut st,
        decide("bob", &["release-admins"], Decision::Approve, None, 30),
    );
    assert_eq!(gates(&c).len(), 1);
}

#[test]
fn a_rehearsal_evaluates_the_gate_and_records_its_verdict() {
    let mut st = run(DELETE, Mode::Rehearsal, json!({}));
    st.meta.auto_approve = true;
    let c = handle(&mut st, Event::Tick { now: 0 });
    assert_eq!(gates(&c).len(), 1);
    let c = handle(&mut st, checked(1, facts(Some(-100 * H)), 10));
    assert!(
        invokes(&c).is_empty(),
        "outside the window even in a rehearsal"
    );
    assert_eq!(records(&c, "gate.refused").len(), 1);
}

#[test]
fn human_task_is_verified_and_a_false_done_fails_loudly() {
    let y = "name: h\nsteps:\n  - id: yank\n    uses: t.write\n";
    let mut st = run(y, Mode::Live, json!({}));
    handle(&mut st, Event::Tick { now: 0 });
    let human = Event::TaskFinished {
        step: "yank".into(),
        index: 0,
        attempt: 1,
        outcome: Outcome::Human {
            instructions: "yank it".into(),
            links: vec!["https://pypi.org/manage/project/x/release/1.0/".into()],
            detail: Value::Null,
        },
        now: 10,
    };
    let c = handle(&mut st, human);
    assert!(kinds(&c).contains(&"human.requested".to_string()));
    assert_eq!(st.steps["yank"].status, StepStatus::Paused);
    assert_eq!(st.meta.status, IncidentStatus::Waiting);
    let resolve = |now| Event::Resolve {
        step: "yank".into(),
        index: None,
        actor: "alice".into(),
        resolution: Resolution::MarkDone,
        reason: "done in the web UI".into(),
        now,
    };
    let c = handle(&mut st, resolve(20));
    assert_eq!(
        probes(&c),
        vec![("yank".into(), 0)],
        "a person's done is verified"
    );
    let not_done = |now| Event::Probed {
        step: "yank".into(),
        index: 0,
        attempt: 1,
        verdict: ProbeVerdict::NotDone {
            evidence: json!("not yanked"),
        },
        now,
    };
    // The first "not done" waits a grace period (caches), then asks again.
    handle(&mut st, not_done(30));
    let c = handle(&mut st, Event::Tick { now: 30 + 60_000 });
    assert_eq!(probes(&c).len(), 1);
    let c = handle(&mut st, not_done(30 + 60_001));
    assert!(kinds(&c).contains(&"human.verify_failed".to_string()));
    assert!(
        invokes(&c).is_empty(),
        "never re-sent as if nothing happened"
    );
    assert_eq!(st.steps["yank"].status, StepStatus::Failed);
    assert_eq!(st.meta.status, IncidentStatus::Failed);
}

#[test]
fn human_task_verified_done_succeeds() {
    let y = "name: h\nsteps:\n  - id: yank\n    uses: t.write\n";
    let mut st = run(y, Mode::Live, json!({}));
    handle(&mut st, Event::Tick { now: 0 });
    handle(
        &mut st,
        Event::TaskFinished {
            step: "yank".into(),
            index: 0,
            attempt: 1,
            outcome: Outcome::Human {
                instructions: "yank it".into(),
                links: vec![],
                detail: Value::Null,
            },
            now: 10,
        },
    );
    handle(
        &mut st,
        Event::Resolve {
            step: "yank".into(),
            index: None,
            actor: "alice".into(),
            resolution: Resolution::MarkDone,
            reason: String::new(),
            now: 20,
        },
    );
    let c = handle(
        &mut st,
        Event::Probed {
            step: "yank".into(),
            index: 0,
            attempt: 1,
            verdict: ProbeVerdict::Done {
                outputs: json!({ "yanked": true }),
                evidence: json!("urls[].yanked"),
            },
            now: 30,
        },
    );
    assert!(kinds(&c).contains(&"human.verified".to_string()));
    assert_eq!(st.meta.status, IncidentStatus::Succeeded);
    let _ = ok; // shared helper kept in scope for symmetry with tests.rs
}

// ---- property: no deletion outside the gate --------------------------------------------

/// Actors: the starter (in the group), three members of `admins`, one outsider.
const ACTORS: [(&str, &[&str]); 5] = [
    ("oncall", &["admins"]),
    ("alice", &["admins"]),
    ("bob", &["admins"]),
    ("carol", &[]),
    ("dave", &["admins"]),
];

#[derive(Clone, Debug)]
struct Dec {
    actor: usize,
    approve: bool,
    hours_before: i64,
    right_target: bool,
}

fn dec() -> impl Strategy<Value = Dec> {
    (
        0usize..5,
        prop::bool::weighted(0.85),
        0i64..12,
        prop::bool::weighted(0.85),
    )
        .prop_map(|(actor, approve, hours_before, right_target)| Dec {
            actor,
            approve,
            hours_before,
            right_target,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_deletion_ever_executes_outside_the_gate(
        needed in 1u32..=3,
        published_hours_ago in -3i64..90,
        mut decisions in prop::collection::vec(dec(), 0..7),
        retention_hit in prop::bool::weighted(0.2),
        ttl_h in 1i64..10,
        step_window_h in prop::option::of(1i64..72),
    ) {
        let t_gate: Millis = 200 * H;
        let policy = GatePolicy {
            window_ms: 72 * H,
            approvals: needed,
            approvers: vec!["group:admins".into()],
            approval_ttl_ms: ttl_h * H,
            retention: vec![RetentionRule {
                name: "compliance".into(),
                patterns: vec![if retention_hit { "npm:pkg@*".into() } else { "npm:other@*".into() }],
            }],
        };
        let yaml = match step_window_h {
            Some(w) => format!("{DELETE}    gate: {{ window: {w}h }}\n"),
            None => DELETE.to_string(),
        };
        let mut st = run(&yaml, Mode::Live, json!({}));
        st.policy.gate = policy;
        // The gate opens 20 hours before the facts are read (inside the approval wait).
        let mut all = handle(&mut st, Event::Tick { now: t_gate - 20 * H });
        let target = match &all.iter().find_map(|c| match c {
            Command::Record(e) if e.kind == "approval.requested" => Some(e.data["target"].clone()),
            _ => None,
        }) {
            Some(Value::String(t)) => t.clone(),
            _ => String::new(),
        };
        decisions.sort_by_key(|d| -d.hours_before);

        // Oracle, written independently of the engine: first decision wins, eligibility.
        let mut open = true;
        let mut rejected = false;
        let mut counted: Vec<(usize, Millis)> = Vec::new();
        for d in &decisions {
            let at = t_gate - d.hours_before * H;
            let (name, groups) = ACTORS[d.actor];
            let tgt = if d.right_target { target.clone() } else { "npm.unpublish other".to_string() };
            all.extend(handle(&mut st, decide(name, groups, if d.approve { Decision::Approve } else { Decision::Reject }, Some(&tgt), at)));
            let eligible = open
                && d.right_target
                && name != "oncall"
                && !groups.is_empty()
                && !counted.iter().any(|(a, _)| *a == d.actor);
            if eligible {
                if d.approve {
                    counted.push((d.actor, at));
                    if counted.len() as u32 >= needed {
                        open = false;
                    }
                } else {
                    rejected = true;
                    open = false;
                }
            }
        }
        let reached_gate = !rejected && counted.len() as u32 >= needed;
        let gate_cmds = gates(&all);
        prop_assert_eq!(gate_cmds.len(), usize::from(reached_gate));
        let published_at = t_gate - published_hours_ago * H;
        let window = step_window_h.map_or(72 * H, |w| w * H);
        let fresh = counted.iter().filter(|(_, at)| t_gate - at <= ttl_h * H).count() as u32;
        let age = t_gate - published_at;
        let allowed = reached_gate
            && (0..window).contains(&age)
            && !retention_hit
            && fresh >= needed;
        if reached_gate {
            let c = handle(&mut st, Event::GateChecked {
                step: "del".into(),
                index: 0,
                attempt: 1,
                facts: Ok(facts(Some(published_at))),
                now: t_gate,
            });
            all.extend(c.clone());
            prop_assert_eq!(invokes(&c).len(), usize::from(allowed));
            if !allowed {
                let r = records(&c, "gate.refused");
                prop_assert_eq!(r.len(), 1);
                let s = &r[0].summary;
                if !(0..window).contains(&age) { prop_assert!(s.contains("window"), "{}", s); }
                if retention_hit { prop_assert!(s.contains("compliance"), "{}", s); }
                if fresh < needed { prop_assert!(s.contains("approval"), "{}", s); }
                prop_assert_eq!(st.steps["del"].status, StepStatus::Failed);
            }
        }
        prop_assert!(invokes(&all).is_empty() || allowed);
        // Every decision left exactly one record saying what became of it.
        let decided = ["approval.granted", "approval.rejected", "approval.refused"]
            .iter()
            .map(|k| records(&all, k).len())
            .sum::<usize>();
        prop_assert_eq!(decided, decisions.len());
        for r in records(&all, "approval.refused") {
            prop_assert!(r.summary.contains("not accepted:"), "{}", r.summary);
        }
    }
}

#[test]
fn a_step_whose_action_cannot_run_here_is_skipped_with_the_reason() {
    let y = "name: u\nsteps:\n  - id: deny\n    uses: t.write\n  - id: after\n    uses: t.read\n    needs: [deny]\n    if: always()\n";
    let mut st = run(y, Mode::Live, json!({}));
    if let Some(info) = st.actions.get_mut("t.write") {
        info.unavailable = Some("no cluster configured");
    }
    let c = handle(&mut st, Event::Tick { now: 0 });
    assert!(invokes(&c).iter().all(|(s, _, _)| s != "deny"));
    let skipped = records(&c, "step.skipped");
    assert!(
        skipped[0].summary.contains("no cluster configured"),
        "{}",
        skipped[0].summary
    );
    assert_eq!(st.steps["deny"].status, StepStatus::Skipped);
    assert_eq!(invokes(&c), vec![("after".into(), 0, 1)]);
}

#[test]
fn targets_read_as_what_they_name() {
    let d = |v: Value| describe_inputs(&v);
    assert_eq!(
        d(json!({ "crate": "serde", "version": "1.0.1" })),
        "serde@1.0.1"
    );
    assert_eq!(
        d(json!({ "project": "ultralytics", "version": "8.3.41" })),
        "ultralytics@8.3.41"
    );
    assert_eq!(
        d(json!({ "image": "r.example/app", "tag": "latest", "digest": "sha256:ab" })),
        "r.example/app:latest"
    );
    assert_eq!(
        d(json!({ "image": "r.example/app", "digest": "sha256:ab" })),
        "r.example/app@sha256:ab"
    );
    assert_eq!(
        d(json!({ "token_env": "LEAKED", "id": "" })),
        "token from env LEAKED"
    );
    assert_eq!(d(json!({ "token": "a1b2c3", "secret_env": "X" })), "a1b2c3");
    assert_eq!(
        d(json!({ "package": "left-pad", "tag": "latest" })),
        "left-pad dist-tag latest"
    );
}
