//! The store contract, written once and run against both backends: every test below is an
//! async function over `Arc<dyn Store>` (or a database URL), and `suite!` generates
//! `store_suite::sqlite::<name>` and `store_suite::postgres::<name>` for it. SQLite gets a
//! fresh file per test; Postgres a fresh database on one real server per test run
//! (`support::postgres`). Transitions are produced by the real, pure engine on a small
//! playbook (a fan-out of notes, then a step gated on an approval) and serialised with
//! `Prepared::new`, exactly as the runner does.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use recall::actions::Registry;
use recall::config::Config;
use recall::engine::{
    self, Command, Decision, Entry, Event, IncidentMeta, IncidentStatus, Mode, Outcome, Policy,
    RunState,
};
use recall::store::{
    self, NewIncident, Prepared, SbomDocRow, SlackThread, Store, StoreError, TaskRow,
};
use recall::timeline;

use crate::support::postgres as pg;

// ---- backends ----------------------------------------------------------------------------

struct Backend {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite_backend() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    Backend {
        url: format!("sqlite://{}", dir.path().join("store.db").display()),
        _dir: Some(dir),
    }
}

async fn postgres_backend() -> Backend {
    Backend {
        url: pg::database().await,
        _dir: None,
    }
}

async fn open(url: &str) -> Arc<dyn Store> {
    store::open(url)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", store::redact_url(url)))
}

/// `store: [..]` tests take an open store, `url: [..]` tests a fresh database URL.
macro_rules! suite {
    (store: [$($s:ident),* $(,)?], url: [$($u:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $s() {
                    let b = super::sqlite_backend().await;
                    super::$s(super::open(&b.url).await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $u() {
                    let b = super::sqlite_backend().await;
                    super::$u(&b.url).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $s() {
                    let b = super::postgres_backend().await;
                    super::$s(super::open(&b.url).await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $u() {
                    let b = super::postgres_backend().await;
                    super::$u(&b.url).await;
                }
            )*
        }
    };
}

suite!(
    store: [
        create_load_list_unfinished,
        group_commit_is_one_transaction_and_chains_verify,
        concurrent_appends_keep_one_chain,
        inbox_push_pending_and_consume,
        leases_renew_expire_take_over_and_release,
        concurrent_lease_claims_have_one_winner,
        artifacts_put_overwrite_get,
        sbom_methods_round_trip,
        sbom_ingest_and_query_real_documents,
        slack_threads_and_replay_protection,
    ],
    url: [migrations_are_idempotent_and_safe_to_run_concurrently],
);

// ---- transitions from the real engine ------------------------------------------------------

const PLAYBOOK: &str = r#"name: suite
description: store suite
params:
  xs: { type: list, required: true }
steps:
  - id: notes
    uses: incident.note
    for_each: ${{ params.xs }}
    with: { message: "note ${{ item }}" }
  - id: gate
    uses: incident.note
    needs: [notes]
    with: { message: "gated" }
    approval: { count: 1, from: [user:alice] }
"#;

const CREATOR: &str = "creator-host:1:aaaa";
const TTL: i64 = 15_000;

/// One incident's run state, advanced by engine events as the runner does.
struct Sim {
    state: RunState,
    now: i64,
}

impl Sim {
    /// The incident row and first transition, as `Runner::create` builds them.
    fn new(id: &str, now: i64, xs: &[&str]) -> (Self, NewIncident, Prepared) {
        let registry = Registry::builtin();
        let (pb, _) = recall::playbook::parse("suite.yaml", PLAYBOOK.as_bytes(), &registry)
            .unwrap_or_else(|d| panic!("{d}"));
        let meta = IncidentMeta {
            id: id.to_string(),
            mode: Mode::Live,
            status: IncidentStatus::Running,
            params: json!({ "xs": xs }),
            auto_approve: false,
            started_by: "oncall".into(),
            created_at: now,
            finished_at: None,
        };
        let mut state = RunState::new(
            meta,
            Arc::new(pb),
            Policy::default(),
            registry.info(&Config::default()),
        );
        let entry = Entry {
            at: now,
            actor: "oncall".into(),
            kind: "incident.started".into(),
            step: None,
            index: None,
            summary: format!("oncall started playbook `{}`", state.playbook.name),
            data: json!({ "playbook": state.playbook.name, "sha256": state.playbook.sha256 }),
        };
        let dirty = state.take_dirty();
        let first = Prepared::new(&state, dirty, vec![entry], vec![], now);
        let inc = NewIncident {
            id: id.to_string(),
            playbook_name: state.playbook.name.clone(),
            playbook_sha256: state.playbook.sha256.clone(),
            playbook_source: state.playbook.source.clone(),
            playbook_file: "suite.yaml".into(),
            params_json: serde_json::to_string(&state.meta.params).expect("params"),
            mode: "live".into(),
            status: "running".into(),
            auto_approve: false,
            started_by: "oncall".into(),
            created_at: now,
            lease_owner: Some(CREATOR.into()),
            lease_until: Some(now + TTL),
        };
        (Self { state, now }, inc, first)
    }

    /// Apply events; the transition to commit and the commands to execute.
    fn advance(&mut self, events: Vec<Event>, consumed: Vec<i64>) -> (Prepared, Vec<Command>) {
        self.now += 10;
        let cmds = engine::handle_all(&mut self.state, events);
        let (mut entries, mut work) = (Vec::new(), Vec::new());
        for c in cmds {
            match c {
                Command::Record(e) => entries.push(e),
                other => work.push(other),
            }
        }
        let dirty = self.state.take_dirty();
        (
            Prepared::new(&self.state, dirty, entries, consumed, self.now),
            work,
        )
    }

    /// Every invoked action succeeds (the notes echo their message).
    fn results(&self, work: &[Command]) -> Vec<Event> {
        work.iter()
            .filter_map(|c| match c {
                Command::Invoke(i) => Some(Event::TaskFinished {
                    step: i.step.clone(),
                    index: i.index,
                    attempt: i.attempt,
                    outcome: Outcome::Success {
                        outputs: json!({ "message": format!("{}#{}", i.step, i.index) }),
                        detail: json!({ "sent": [] }),
                    },
                    now: self.now + 5,
                }),
                _ => None,
            })
            .collect()
    }

    fn approve(&self) -> Event {
        Event::Decision {
            step: "gate".into(),
            actor: "alice".into(),
            groups: vec![],
            decision: Decision::Approve,
            reason: "looks right".into(),
            target: None,
            now: self.now + 1,
        }
    }

    /// Runs the incident to its end, returning each transition in order (to commit one by
    /// one, or grouped with other incidents').
    fn script(&mut self) -> Vec<Prepared> {
        let mut out = Vec::new();
        let mut events = vec![Event::Resumed { now: self.now }];
        for _ in 0..50 {
            let (p, work) = self.advance(std::mem::take(&mut events), vec![]);
            out.push(p);
            events = self.results(&work);
            if events.is_empty() {
                if self.state.meta.status == IncidentStatus::Waiting
                    && self.state.steps["gate"].status.as_str() == "awaiting_approval"
                {
                    events.push(self.approve());
                } else {
                    break;
                }
            }
        }
        assert_eq!(
            self.state.meta.status,
            IncidentStatus::Succeeded,
            "the scripted run finishes"
        );
        out
    }
}

async fn create(store: &Arc<dyn Store>, id: &str, now: i64, xs: &[&str]) -> Sim {
    let (sim, inc, first) = Sim::new(id, now, xs);
    store
        .create_incident(inc, first)
        .await
        .unwrap_or_else(|e| panic!("create {id}: {e}"));
    sim
}

async fn verify_chain(store: &Arc<dyn Store>, id: &str) -> Vec<timeline::Event> {
    let inc = store.incident(id).await.expect("incident").expect("exists");
    let events = store.events(id).await.expect("events");
    let n = timeline::verify(&events, inc.head_seq, &inc.head_hash)
        .unwrap_or_else(|e| panic!("{id}: chain broken: {e}"));
    assert_eq!(n as i64, inc.head_seq);
    events
}

/// The stored rows say what the engine's state says.
async fn assert_stored_state(store: &Arc<dyn Store>, sim: &Sim) {
    let st = &sim.state;
    let run = store
        .load(&st.meta.id)
        .await
        .expect("load")
        .expect("stored");
    assert_eq!(run.incident.status, st.meta.status.as_str());
    assert_eq!(run.incident.finished_at, st.meta.finished_at);
    assert_eq!(run.incident.params, st.meta.params);
    assert_eq!(run.incident.playbook_source, PLAYBOOK);
    for (sid, s) in &st.steps {
        let row = run
            .steps
            .iter()
            .find(|r| &r.step_id == sid)
            .unwrap_or_else(|| panic!("step {sid} stored"));
        assert_eq!(row.status, s.status.as_str(), "{sid}");
        assert_eq!(row.fanout, s.fanout, "{sid}");
        assert_eq!(row.outputs, s.outputs, "{sid}");
        assert_eq!(row.started_at, s.started_at, "{sid}");
        assert_eq!(row.finished_at, s.finished_at, "{sid}");
        for t in &s.tasks {
            let r = run
                .tasks
                .iter()
                .find(|r| &r.step_id == sid && r.item_index == t.index)
                .unwrap_or_else(|| panic!("task {sid}/{} stored", t.index));
            assert_eq!(r.status, t.status.as_str());
            assert_eq!(r.attempt, t.attempt);
            assert_eq!(r.item, t.item);
            assert_eq!(r.inputs, t.inputs);
            assert_eq!(r.outputs, t.outputs);
            assert_eq!(r.idem_key, t.idem_key);
            assert_eq!(r.needs_probe, t.needs_probe);
            assert_eq!(r.human, t.human);
        }
    }
    let tasks: usize = st.steps.values().map(|s| s.tasks.len()).sum();
    assert_eq!(run.tasks.len(), tasks);
    // Tasks come back ordered by step, then index.
    let keys: Vec<(String, u32)> = run
        .tasks
        .iter()
        .map(|t| (t.step_id.clone(), t.item_index))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

fn note(actor: &str, summary: &str) -> Entry {
    Entry {
        at: 7,
        actor: actor.into(),
        kind: "note".into(),
        step: None,
        index: None,
        summary: summary.into(),
        data: json!({ "by": actor }),
    }
}

fn always_alive(_: &str) -> bool {
    true
}

// ---- the suite -----------------------------------------------------------------------------

async fn create_load_list_unfinished(store: Arc<dyn Store>) {
    let mut a = create(&store, "inc-a", 1_000, &["x", "y"]).await;
    create(&store, "inc-b", 2_000, &["x"]).await;
    create(&store, "inc-c", 3_000, &[]).await;

    let inc = store.incident("inc-a").await.expect("incident").expect("a");
    assert_eq!(
        (
            inc.playbook_name.as_str(),
            inc.status.as_str(),
            inc.mode.as_str()
        ),
        ("suite", "running", "live")
    );
    assert_eq!(inc.playbook_file, "suite.yaml");
    assert_eq!(inc.params, json!({ "xs": ["x", "y"] }));
    assert_eq!((inc.created_at, inc.updated_at), (1_000, 1_000));
    assert!(!inc.auto_approve);
    assert_eq!(inc.head_seq, 1, "the first transition's entry");
    assert_eq!(inc.started_by, "oncall");
    let ids: Vec<String> = store
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, ["inc-c", "inc-b", "inc-a"], "newest first");
    assert_eq!(
        store.unfinished().await.expect("unfinished"),
        ["inc-a", "inc-b", "inc-c"]
    );

    for p in a.script() {
        store.commit(vec![p]).await.expect("commit");
    }
    assert_stored_state(&store, &a).await;
    let run = store.load("inc-a").await.expect("load").expect("a");
    assert_eq!(run.incident.status, "succeeded");
    assert!(run.incident.finished_at.is_some());
    assert_eq!(run.tasks.len(), 3, "two notes and the gate");
    assert_eq!(run.approvals.len(), 1);
    assert_eq!(run.approvals[0].step_id, "gate");
    assert_eq!(run.approvals[0].approval.actor, "alice");
    assert_eq!(run.approvals[0].approval.decision, Decision::Approve);
    assert_eq!(
        store.unfinished().await.expect("unfinished"),
        ["inc-b", "inc-c"]
    );
    verify_chain(&store, "inc-a").await;

    // Unknown ids.
    assert!(store.incident("nope").await.expect("incident").is_none());
    assert!(store.load("nope").await.expect("load").is_none());
    assert!(store.events("nope").await.expect("events").is_empty());
    assert!(matches!(
        store.append("nope", vec![note("x", "y")]).await,
        Err(StoreError::NotFound(_))
    ));
    // The same id twice is refused, and nothing of the second attempt is kept.
    let (_, dup, first) = Sim::new("inc-b", 9_000, &["z"]);
    assert!(store.create_incident(dup, first).await.is_err());
    let b = store.incident("inc-b").await.expect("incident").expect("b");
    assert_eq!((b.created_at, b.head_seq), (2_000, 1));
}

async fn group_commit_is_one_transaction_and_chains_verify(store: Arc<dyn Store>) {
    let ids = ["inc-g1", "inc-g2", "inc-g3"];
    let mut sims = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let xs: Vec<String> = (0..=i).map(|n| format!("v{n}")).collect();
        let xs: Vec<&str> = xs.iter().map(String::as_str).collect();
        sims.push(create(&store, id, 1_000 + i as i64, &xs).await);
    }
    let mut scripts: Vec<std::collections::VecDeque<Prepared>> =
        sims.iter_mut().map(|s| s.script().into()).collect();
    // Each round commits the next transition of every incident in ONE transaction.
    let mut rounds = 0;
    loop {
        let batch: Vec<Prepared> = scripts.iter_mut().filter_map(|s| s.pop_front()).collect();
        if batch.is_empty() {
            break;
        }
        store.commit(batch).await.expect("group commit");
        rounds += 1;
    }
    assert!(rounds >= 4, "{rounds} rounds");
    for s in &sims {
        assert_stored_state(&store, s).await;
        let events = verify_chain(&store, &s.state.meta.id).await;
        assert!(events.iter().all(|e| e.incident == s.state.meta.id));
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds.first(), Some(&"incident.started"));
        assert!(kinds.contains(&"approval.requested"), "{kinds:?}");
        assert!(kinds.contains(&"incident.finished"), "{kinds:?}");
    }

    // A batch with one bad transition stores nothing of any of them.
    let before: Vec<i64> = {
        let mut v = Vec::new();
        for id in ids {
            v.push(store.incident(id).await.expect("i").expect("i").head_seq);
        }
        v
    };
    let good = Prepared {
        incident: "inc-g1".into(),
        status: Some(("failed".into(), Some(99))),
        steps: vec![],
        new_tasks: vec![],
        changed_tasks: vec![],
        approvals: vec![],
        entries: vec![store::PreparedEntry::from_entry(note("x", "kept?"))],
        consumed_inbox: vec![],
        now: 99,
        fence: None,
    };
    let bad = Prepared {
        incident: "inc-g2".into(),
        changed_tasks: vec![TaskRow {
            step_id: "no-such-step".into(),
            item_index: 0,
            item_json: String::new(),
            status: "succeeded",
            attempt: 1,
            inputs_json: String::new(),
            idem_key: String::new(),
            outputs_json: "null".into(),
            error: None,
            next_run_at: None,
            needs_probe: false,
            human: false,
            started_at: None,
            finished_at: None,
        }],
        ..good.clone()
    };
    let err = store
        .commit(vec![good, bad])
        .await
        .expect_err("a missing task row fails the batch");
    assert!(
        matches!(err, StoreError::Corrupt { table: "tasks", .. }),
        "{err}"
    );
    for (id, seq) in ids.iter().zip(before) {
        let inc = store.incident(id).await.expect("i").expect("i");
        assert_eq!(inc.head_seq, seq, "{id}: nothing of the failed batch");
        assert_eq!(inc.status, "succeeded", "{id}");
        verify_chain(&store, id).await;
    }
    // An all-empty batch is a no-op.
    let empty = Prepared {
        incident: "inc-g1".into(),
        status: None,
        steps: vec![],
        new_tasks: vec![],
        changed_tasks: vec![],
        approvals: vec![],
        entries: vec![],
        consumed_inbox: vec![],
        now: 1,
        fence: None,
    };
    store
        .commit(vec![empty.clone(), empty])
        .await
        .expect("empty");
}

async fn concurrent_appends_keep_one_chain(store: Arc<dyn Store>) {
    let mut sim = create(&store, "inc-cc", 1_000, &["a"]).await;
    const ROUNDS: usize = 25;
    let mut tasks = Vec::new();
    for writer in ["w1", "w2"] {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..ROUNDS {
                let mut entries = vec![note(writer, &format!("{writer} {i}"))];
                if i % 5 == 0 {
                    entries.push(note(writer, &format!("{writer} {i} bis")));
                }
                store.append("inc-cc", entries).await.expect("append");
            }
        }));
    }
    // Meanwhile the lease holder commits its transitions.
    let mut committed = 0;
    for p in sim.script() {
        committed += p.entries.len();
        store.commit(vec![p]).await.expect("commit");
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let events = verify_chain(&store, "inc-cc").await;
    let per_writer = ROUNDS + ROUNDS / 5;
    assert_eq!(events.len(), 1 + committed + 2 * per_writer);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "seq strictly increasing without gaps");
    }
    let mut seen = HashSet::new();
    for e in events.iter().filter(|e| e.kind == "note") {
        assert!(seen.insert(e.summary.clone()), "{} twice", e.summary);
    }
    assert_eq!(seen.len(), 2 * per_writer);
    // Each writer's own entries keep their order.
    for w in ["w1", "w2"] {
        let mine: Vec<&str> = events
            .iter()
            .filter(|e| e.actor == w)
            .map(|e| e.summary.as_str())
            .collect();
        assert_eq!(mine.first().copied(), Some(format!("{w} 0").as_str()));
        assert_eq!(
            mine.last().copied(),
            Some(format!("{w} {}", ROUNDS - 1).as_str())
        );
    }
    assert_stored_state(&store, &sim).await;

    // Text with a NUL character (SQLite keeps it; Postgres TEXT cannot, and stores U+FFFD)
    // still chains and verifies.
    store
        .append("inc-cc", vec![note("w3", "before\0after")])
        .await
        .expect("append NUL");
    let events = verify_chain(&store, "inc-cc").await;
    let last = events.last().expect("last");
    assert!(
        last.summary == "before\0after" || last.summary == "before\u{FFFD}after",
        "{:?}",
        last.summary
    );
}

async fn inbox_push_pending_and_consume(store: Arc<dyn Store>) {
    let mut sim = create(&store, "inc-in", 1_000, &["a"]).await;
    // Run until the gate waits for its approval.
    let mut events = vec![Event::Resumed { now: sim.now }];
    loop {
        let (p, work) = sim.advance(std::mem::take(&mut events), vec![]);
        store.commit(vec![p]).await.expect("commit");
        events = sim.results(&work);
        if events.is_empty() {
            break;
        }
    }
    assert_eq!(sim.state.meta.status, IncidentStatus::Waiting);

    let decision =
        json!({ "step": "gate", "actor": "alice", "decision": "approve", "reason": "ok" });
    let i1 = store
        .push_inbox("inc-in", "decision", &decision, 5_000)
        .await
        .expect("push");
    let i2 = store
        .push_inbox("inc-in", "note", &json!({ "text": "n" }), 5_001)
        .await
        .expect("push");
    let i3 = store
        .push_inbox(
            "inc-in",
            "resolve",
            &json!({ "step": "gate", "index": null }),
            5_002,
        )
        .await
        .expect("push");
    assert!(i1 < i2 && i2 < i3, "{i1} {i2} {i3}");
    let pending = store.pending_inbox("inc-in").await.expect("pending");
    assert_eq!(
        pending.iter().map(|p| p.id).collect::<Vec<_>>(),
        [i1, i2, i3]
    );
    assert_eq!(pending[0].kind, "decision");
    assert_eq!(pending[0].payload, decision);
    assert_eq!(pending[2].payload["index"], Value::Null);
    assert!(
        store
            .pending_inbox("inc-other")
            .await
            .expect("pending")
            .is_empty()
    );

    // The lease holder applies the decision and consumes the first two items in the same
    // transaction as the state change.
    let (p, work) = sim.advance(vec![sim.approve()], vec![i1, i2]);
    store.commit(vec![p]).await.expect("commit");
    assert_eq!(
        store
            .pending_inbox("inc-in")
            .await
            .expect("pending")
            .iter()
            .map(|p| p.id)
            .collect::<Vec<_>>(),
        [i3]
    );
    let (p, _) = sim.advance(sim.results(&work), vec![i3]);
    store.commit(vec![p]).await.expect("commit");
    assert!(store.pending_inbox("inc-in").await.expect("p").is_empty());
    assert_stored_state(&store, &sim).await;
    let run = store.load("inc-in").await.expect("load").expect("run");
    assert_eq!(run.incident.status, "succeeded");
    assert_eq!(run.approvals.len(), 1);

    assert!(matches!(
        store.push_inbox("nope", "decision", &json!({}), 1).await,
        Err(StoreError::NotFound(_))
    ));
}

fn real_now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Leases on real time (Postgres decides expiry on the database's clock, so no fake clock
/// can be passed): renewal keeps the epoch, every change of hands moves it, a stale holder's
/// commit is fenced, and only the holder releases.
async fn leases_renew_expire_take_over_and_release(store: Arc<dyn Store>) {
    const SHORT: i64 = 1_500;
    let sim = create(&store, "inc-l", real_now(), &["a"]).await;
    let calls = AtomicUsize::new(0);
    let alive = |_: &str| {
        calls.fetch_add(1, Ordering::SeqCst);
        true
    };
    let acquire = |owner: &'static str| {
        let store = store.clone();
        let alive = &alive;
        async move {
            store
                .acquire_lease("inc-l", owner, real_now(), SHORT, alive)
                .await
                .expect("acquire")
        }
    };
    // Created with its lease held by the creator (epoch 0).
    assert_eq!(acquire("other").await, None, "held by a live creator");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let e0 = acquire(CREATOR).await.expect("the owner renews");
    assert_eq!(e0, 0, "a renewal keeps the epoch");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no liveness question for the owner"
    );
    assert_eq!(acquire("other").await, None);
    // A dead owner's lease is taken over at once, with a new epoch.
    let dead_creator = |o: &str| o != CREATOR;
    let e1 = store
        .acquire_lease("inc-l", "other", real_now(), SHORT, &dead_creator)
        .await
        .expect("acquire")
        .expect("taken over");
    assert_eq!(e1, e0 + 1);
    assert_eq!(acquire(CREATOR).await, None, "the creator lost it");
    // Fencing: the creator's late commit is refused; the new holder's goes through.
    let note = |summary: &str| recall::engine::Entry {
        at: real_now(),
        actor: "test".into(),
        kind: "note".into(),
        step: None,
        index: None,
        summary: summary.into(),
        data: Value::Null,
    };
    let stale = Prepared::new(
        &sim.state,
        Default::default(),
        vec![note("stale")],
        vec![],
        real_now(),
    )
    .fenced(CREATOR, e0);
    assert!(
        matches!(store.commit(vec![stale]).await, Err(StoreError::Fenced(_))),
        "a stale holder's commit is fenced"
    );
    let fresh = Prepared::new(
        &sim.state,
        Default::default(),
        vec![note("fresh")],
        vec![],
        real_now(),
    )
    .fenced("other", e1);
    store.commit(vec![fresh]).await.expect("the holder commits");
    let summaries: Vec<String> = verify_chain(&store, "inc-l")
        .await
        .iter()
        .map(|e| e.summary.clone())
        .collect();
    assert!(summaries.contains(&"fresh".to_string()) && !summaries.contains(&"stale".to_string()));
    assert!(
        store
            .lease_holds("inc-l", "other", e1, real_now(), 0)
            .await
            .expect("holds")
    );
    assert!(
        !store
            .lease_holds("inc-l", CREATOR, e0, real_now(), 0)
            .await
            .expect("holds")
    );
    assert!(
        !store
            .lease_holds("inc-l", "other", e0, real_now(), 0)
            .await
            .expect("holds")
    );
    assert!(
        !store
            .lease_holds("inc-l", "other", e1, real_now(), 60_000)
            .await
            .expect("holds"),
        "not with a minute to spare"
    );
    // An expired lease is free whatever the owner's liveness.
    tokio::time::sleep(std::time::Duration::from_millis(SHORT as u64 + 300)).await;
    let before = calls.load(Ordering::SeqCst);
    let e2 = acquire("third").await.expect("expired lease taken");
    assert_eq!(e2, e1 + 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "no liveness question when expired"
    );
    // Only the owner releases; a release moves the epoch for whoever takes it next.
    store
        .release_lease("inc-l", "other")
        .await
        .expect("release");
    assert_eq!(acquire("fourth").await, None);
    store
        .release_lease("inc-l", "third")
        .await
        .expect("release");
    assert_eq!(acquire("fourth").await, Some(e2 + 1), "released");
    assert!(matches!(
        store
            .acquire_lease("nope", "x", real_now(), TTL, &always_alive)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // The named (leader) lease.
    assert!(
        store
            .acquire_named_lease("leader", "a", real_now(), SHORT)
            .await
            .expect("l")
    );
    assert!(
        !store
            .acquire_named_lease("leader", "b", real_now(), SHORT)
            .await
            .expect("l")
    );
    assert!(
        store
            .acquire_named_lease("leader", "a", real_now(), SHORT)
            .await
            .expect("l")
    );
    tokio::time::sleep(std::time::Duration::from_millis(SHORT as u64 + 300)).await;
    assert!(
        store
            .acquire_named_lease("leader", "b", real_now(), SHORT)
            .await
            .expect("l")
    );
    assert!(
        !store
            .acquire_named_lease("leader", "a", real_now(), SHORT)
            .await
            .expect("l")
    );
}

/// Four processes claim a free lease at once, ten times: exactly one wins each time.
async fn concurrent_lease_claims_have_one_winner(store: Arc<dyn Store>) {
    create(&store, "inc-race", real_now(), &["a"]).await;
    store
        .release_lease("inc-race", CREATOR)
        .await
        .expect("release");
    let mut last_epoch = 0;
    for round in 0..10 {
        let mut claims = Vec::new();
        for who in 0..4 {
            let store = store.clone();
            claims.push(tokio::spawn(async move {
                let owner = format!("claimer-{round}-{who}");
                store
                    .acquire_lease("inc-race", &owner, real_now(), TTL, &always_alive)
                    .await
                    .expect("acquire")
                    .map(|e| (owner, e))
            }));
        }
        let mut winners = Vec::new();
        for c in claims {
            winners.extend(c.await.expect("claim"));
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let (owner, epoch) = winners.remove(0);
        assert!(epoch > last_epoch, "round {round}: the epoch moves on");
        last_epoch = epoch;
        store
            .release_lease("inc-race", &owner)
            .await
            .expect("release");
    }
}

async fn artifacts_put_overwrite_get(store: Arc<dyn Store>) {
    create(&store, "inc-art", 1_000, &["a"]).await;
    assert!(
        store
            .artifact("inc-art", "postmortem.md")
            .await
            .expect("get")
            .is_none()
    );
    store
        .put_artifact("inc-art", "postmortem.md", "# Draft 1\n", 2_000)
        .await
        .expect("put");
    assert_eq!(
        store
            .artifact("inc-art", "postmortem.md")
            .await
            .expect("get")
            .as_deref(),
        Some("# Draft 1\n")
    );
    let big = "é — ünïcode\n".repeat(20_000);
    store
        .put_artifact("inc-art", "postmortem.md", &big, 3_000)
        .await
        .expect("overwrite");
    assert_eq!(
        store
            .artifact("inc-art", "postmortem.md")
            .await
            .expect("get")
            .as_deref(),
        Some(big.as_str())
    );
    assert!(
        store
            .artifact("inc-art", "other.md")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .artifact("inc-other", "postmortem.md")
            .await
            .expect("get")
            .is_none()
    );
}

fn doc(sha: &str, subject: &str, graph: &[u8]) -> SbomDocRow {
    SbomDocRow {
        sha256: sha.into(),
        subject: subject.into(),
        digest: Some(format!("sha256:{sha}")),
        source: format!("/sboms/{subject}.json"),
        format: "cyclonedx-json".into(),
        spec_version: "1.5".into(),
        components: 2,
        ingested_at: 42,
        graph: graph.to_vec(),
    }
}

async fn sbom_methods_round_trip(store: Arc<dyn Store>) {
    let s = store.clone();
    assert_eq!(s.sbom_stats().await.expect("stats"), Default::default());
    let packages = vec![("npm/left-pad".to_string(), "npm".to_string())];
    let versions = vec![
        ("npm/left-pad".to_string(), "1.3.0".to_string()),
        ("npm/left-pad".to_string(), "1.2.0".to_string()),
        ("pypi/django".to_string(), "4.2.0".to_string()),
    ];
    let (pids, vids) = s.sbom_intern(&packages, &versions).await.expect("intern");
    assert_eq!(
        pids.len(),
        2,
        "a key named only by a version is interned too"
    );
    assert_eq!(vids.len(), 3);
    let again = s.sbom_intern(&packages, &versions).await.expect("intern");
    assert_eq!(again, (pids.clone(), vids.clone()), "idempotent");
    let v130 = vids[&("npm/left-pad".to_string(), "1.3.0".to_string())];
    let v120 = vids[&("npm/left-pad".to_string(), "1.2.0".to_string())];
    let dj = vids[&("pypi/django".to_string(), "4.2.0".to_string())];

    let shas = vec!["a".repeat(64), "b".repeat(64)];
    assert!(s.sbom_known(&shas).await.expect("known").is_empty());
    assert!(s.sbom_known(&[]).await.expect("known").is_empty());
    let graph_a = vec![0u8, 1, 2, 255, 0, 7];
    let posting = vec![0u8, 1];
    let first = s
        .sbom_insert(
            vec![
                doc(&shas[0], "app-a", &graph_a),
                doc(&shas[1], "app-b", &[]),
            ],
            vec![(v130, posting.clone()), (dj, vec![1])],
        )
        .await
        .expect("insert")
        .expect("stored");
    assert!(first >= 1);
    // A document stored meanwhile: nothing of the batch is stored.
    let c = "c".repeat(64);
    assert_eq!(
        s.sbom_insert(
            vec![doc(&c, "app-c", &[]), doc(&shas[1], "app-b", &[])],
            vec![(v120, vec![0])],
        )
        .await
        .expect("insert"),
        None
    );
    assert!(
        s.sbom_insert(vec![], vec![])
            .await
            .expect("empty")
            .is_none()
    );
    assert_eq!(
        s.sbom_known(&[shas[1].clone(), c.clone()])
            .await
            .expect("known"),
        HashSet::from([shas[1].clone()])
    );
    assert_eq!(
        s.sbom_all_shas().await.expect("all"),
        shas.iter().cloned().collect::<HashSet<_>>()
    );
    let mut of = s.sbom_versions_of("npm/left-pad").await.expect("versions");
    of.sort();
    let mut want = vec![(v130, "1.3.0".to_string()), (v120, "1.2.0".to_string())];
    want.sort();
    assert_eq!(of, want);
    assert!(s.sbom_versions_of("npm/nope").await.expect("v").is_empty());
    assert_eq!(
        s.sbom_postings(&[v130, v120]).await.expect("postings"),
        vec![(v130, first, posting)]
    );
    assert!(s.sbom_postings(&[]).await.expect("postings").is_empty());
    let docs = s
        .sbom_docs(&[first + 1, first, 999_999])
        .await
        .expect("docs");
    assert_eq!(
        docs.iter().map(|d| d.id).collect::<Vec<_>>(),
        [first, first + 1]
    );
    assert_eq!(docs[0].subject, "app-a");
    assert_eq!(docs[0].sha256, shas[0]);
    assert_eq!(
        docs[0].digest.as_deref(),
        Some(format!("sha256:{}", shas[0]).as_str())
    );
    assert_eq!(docs[1].source, "/sboms/app-b.json");
    assert_eq!(
        s.sbom_graph(first).await.expect("graph").as_deref(),
        Some(graph_a.as_slice())
    );
    assert_eq!(
        s.sbom_graph(first + 1).await.expect("graph").as_deref(),
        Some(&[][..])
    );
    assert!(s.sbom_graph(999_999).await.expect("graph").is_none());
    let labels = s
        .sbom_version_labels(&[v130, dj, 999_999])
        .await
        .expect("labels");
    assert_eq!(labels.len(), 2);
    assert_eq!(
        labels[&dj],
        ("pypi/django".to_string(), "4.2.0".to_string())
    );
    let stats = s.sbom_stats().await.expect("stats");
    assert_eq!(
        (
            stats.documents,
            stats.subjects,
            stats.packages,
            stats.versions,
            stats.postings
        ),
        (2, 2, 2, 3, 2)
    );
    // A second batch gets the next ids.
    let next = s
        .sbom_insert(vec![doc(&c, "app-a", &[])], vec![(v120, vec![0])])
        .await
        .expect("insert")
        .expect("stored");
    assert_eq!(next, first + 2);
    assert_eq!(s.sbom_stats().await.expect("stats").subjects, 2);
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sboms");

async fn sbom_ingest_and_query_real_documents(store: Arc<dyn Store>) {
    let files =
        recall::blast::expand_paths(&[std::path::PathBuf::from(FIXTURES)]).expect("fixtures");
    assert!(files.len() >= 4, "{files:?}");
    let ingest = |store: Arc<dyn Store>, files: Vec<std::path::PathBuf>| async move {
        recall::blast::ingest_files(store, files, None, Default::default(), 1_000, &mut |_| {})
            .await
            .expect("ingest")
    };
    let rep = ingest(store.clone(), files.clone()).await;
    assert_eq!(rep.stored, files.len(), "{:?}", rep.rejected);
    let again = ingest(store.clone(), files.clone()).await;
    assert_eq!((again.stored, again.duplicates), (0, files.len()));

    let colors = recall::blast::query(store.as_ref(), "pkg:npm/colors@1.4.0", &[], None, 5)
        .await
        .expect("query");
    assert_eq!(colors.images.len(), 1, "{colors:?}");
    assert!(colors.images[0].contains("juice-shop"), "{colors:?}");
    let d = recall::blast::query(store.as_ref(), "pkg:npm/debug@2.6.9", &[], None, 10)
        .await
        .expect("query");
    let juice = d
        .hits
        .iter()
        .find(|h| h.subject.contains("juice-shop"))
        .expect("juice-shop has debug@2.6.9");
    assert!(juice.path.len() >= 3, "transitive path: {:?}", juice.path);
    assert_eq!(juice.path.last().map(String::as_str), Some("debug@2.6.9"));
    let stats = store.sbom_stats().await.expect("stats");
    assert_eq!(stats.documents as usize, files.len());
    assert!(
        stats.versions > 100 && stats.postings >= stats.versions,
        "{stats:?}"
    );
}

async fn slack_threads_and_replay_protection(store: Arc<dyn Store>) {
    create(&store, "inc-s1", 1_000, &["a"]).await;
    create(&store, "inc-s2", 1_001, &["a"]).await;
    let t1 = SlackThread {
        incident_id: "inc-s1".into(),
        channel: "C1".into(),
        thread_ts: None,
        last_seq: 0,
        last_render: String::new(),
        started_by: "U1".into(),
        response_url: Some("https://hooks.slack.test/r/1".into()),
        done: false,
    };
    assert!(store.slack_thread("inc-s1").await.expect("get").is_none());
    store.slack_thread_create(&t1, 10).await.expect("create");
    // Idempotent: a second create changes nothing.
    let other = SlackThread {
        channel: "C-other".into(),
        ..t1.clone()
    };
    store.slack_thread_create(&other, 11).await.expect("create");
    assert_eq!(
        store.slack_thread("inc-s1").await.expect("get"),
        Some(t1.clone())
    );
    let t2 = SlackThread {
        incident_id: "inc-s2".into(),
        response_url: None,
        ..t1.clone()
    };
    store.slack_thread_create(&t2, 12).await.expect("create");
    assert_eq!(
        store.slack_threads_open().await.expect("open"),
        vec![t1.clone(), t2.clone()],
        "oldest first"
    );
    let posted = SlackThread {
        thread_ts: Some("1700000000.000100".into()),
        last_seq: 7,
        last_render: "f".repeat(64),
        done: true,
        ..t1.clone()
    };
    store.slack_thread_save(&posted, 20).await.expect("save");
    assert_eq!(
        store.slack_thread("inc-s1").await.expect("get"),
        Some(posted)
    );
    assert_eq!(store.slack_threads_open().await.expect("open"), vec![t2]);

    // Replay protection: a signature is accepted once within the window.
    let keep = 300_000;
    assert!(store.slack_seen("v0=aa", 1_000, keep).await.expect("seen"));
    assert!(!store.slack_seen("v0=aa", 2_000, keep).await.expect("seen"));
    assert!(store.slack_seen("v0=bb", 2_000, keep).await.expect("seen"));
    // Past the window the record is dropped (the request's timestamp check refuses it
    // elsewhere), so the table does not grow without bound.
    assert!(
        store
            .slack_seen("v0=aa", 1_000 + keep + 1, keep)
            .await
            .expect("seen")
    );
    // Concurrent deliveries of one request: exactly one is accepted.
    let mut tries = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        tries.push(tokio::spawn(async move {
            store
                .slack_seen("v0=cc", 400_000, keep)
                .await
                .expect("seen")
        }));
    }
    let mut accepted = 0;
    for t in tries {
        accepted += usize::from(t.await.expect("task"));
    }
    assert_eq!(accepted, 1);
}

/// `(version, name)` rows of `schema_migrations`, read directly.
async fn migration_rows(url: &str) -> Vec<(i64, String)> {
    use sqlx::{Connection, Row};
    let sql = "SELECT version, name FROM schema_migrations ORDER BY version";
    let rows: Vec<(i64, String)> = if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
        sqlx::query(sql)
            .fetch_all(&mut c)
            .await
            .expect("rows")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.expect("pg");
        sqlx::query(sql)
            .fetch_all(&mut c)
            .await
            .expect("rows")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    rows
}

async fn migrations_are_idempotent_and_safe_to_run_concurrently(url: &str) {
    // Four processes' worth of `open` on a fresh database at once: four threads, each with
    // its own runtime and pool, released together.
    let gate = Arc::new(std::sync::Barrier::new(4));
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let (url, gate) = (url.to_string(), gate.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().expect("runtime");
                gate.wait();
                rt.block_on(async { store::open(&url).await.map(|_| ()) })
            })
        })
        .collect();
    let results: Vec<_> = tokio::task::spawn_blocking(move || {
        opens
            .into_iter()
            .map(|t| t.join().expect("open thread"))
            .collect()
    })
    .await
    .expect("join");
    for r in results {
        if let Err(e) = r {
            panic!("concurrent open: {e}");
        }
    }
    let want: Vec<(i64, String)> = [
        (1, "init"),
        (2, "human_tasks"),
        (3, "sbom_index"),
        (4, "slack"),
        (5, "fencing"),
    ]
    .into_iter()
    .map(|(v, n)| (v, n.to_string()))
    .collect();
    assert_eq!(migration_rows(url).await, want, "one record per version");
    // Opening again applies nothing and keeps the data.
    let s = open(url).await;
    create(&s, "inc-m", 1_000, &["a"]).await;
    drop(s);
    let s = open(url).await;
    assert_eq!(migration_rows(url).await, want);
    assert!(s.incident("inc-m").await.expect("incident").is_some());
    // The /readyz query (the newest migration's table) answers.
    assert!(s.slack_threads_open().await.expect("readyz").is_empty());
}

// ---- both backends, side by side -------------------------------------------------------------

/// The same transitions give the same rows and the same hash chain on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_store_identical_rows_and_hashes() {
    let sq = sqlite_backend().await;
    let pgb = postgres_backend().await;
    let mut outputs = Vec::new();
    for url in [&sq.url, &pgb.url] {
        let store = open(url).await;
        let mut a = create(&store, "inc-same", 1_000, &["p", "q", "r"]).await;
        let mut b = create(&store, "inc-same-2", 1_000, &["s"]).await;
        let (sa, sb) = (a.script(), b.script());
        for (i, p) in sa.into_iter().enumerate() {
            let mut batch = vec![p];
            if let Some(q) = sb.get(i) {
                batch.push(q.clone());
            }
            store.commit(batch).await.expect("commit");
        }
        store
            .append("inc-same", vec![note("carol", "paged the maintainer")])
            .await
            .expect("append");
        let mut rows = BTreeMap::new();
        for id in ["inc-same", "inc-same-2"] {
            let run = store.load(id).await.expect("load").expect("run");
            let mut steps = run.steps.clone();
            steps.sort_by(|x, y| x.step_id.cmp(&y.step_id));
            rows.insert(
                id,
                json!({
                    "incident": run.incident,
                    "steps": steps,
                    "tasks": run.tasks,
                    "approvals": run.approvals,
                    "events": store.events(id).await.expect("events").iter().map(|e| json!({
                        "seq": e.seq, "kind": e.kind, "data": e.data_json, "hash": e.hash,
                    })).collect::<Vec<_>>(),
                }),
            );
        }
        rows.insert(
            "list",
            json!(
                store
                    .list()
                    .await
                    .expect("list")
                    .iter()
                    .map(|i| i.id.clone())
                    .collect::<Vec<_>>()
            ),
        );
        outputs.push(rows);
    }
    assert_eq!(outputs[0], outputs[1]);
}

// ---- Postgres only -------------------------------------------------------------------------

fn set_password(url: &str, pw: &str) -> String {
    let mut u = url::Url::parse(url).expect("url");
    u.set_password(Some(pw)).expect("password");
    u.to_string()
}

fn set_port(url: &str, port: u16) -> String {
    let mut u = url::Url::parse(url).expect("url");
    u.set_port(Some(port)).expect("port");
    u.to_string()
}

async fn open_err(url: &str) -> String {
    match store::open(url).await {
        Ok(_) => panic!("{} opened", store::redact_url(url)),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_open_errors_name_the_problem_without_the_password() {
    let good = pg::database().await;
    let secret = "Not-The-Password-4711";
    let e = open_err(&set_password(&good, secret)).await;
    assert!(e.contains("authentication failed for user `recall`"), "{e}");
    assert!(!e.contains(secret) && e.contains("***"), "{e}");

    // Nothing listens on port 1.
    let e = open_err(&set_password(&set_port(&good, 1), secret)).await;
    assert!(
        e.contains("cannot reach the Postgres server at 127.0.0.1:1"),
        "{e}"
    );
    assert!(!e.contains(secret), "{e}");

    let e = open_err(&pg::with_database(&good, "no_such_db_here")).await;
    assert!(
        e.contains("database `no_such_db_here` does not exist"),
        "{e}"
    );
    let real_pw = url::Url::parse(&good)
        .expect("url")
        .password()
        .unwrap_or_default()
        .to_string();
    assert!(!real_pw.is_empty() && !e.contains(&real_pw), "{e}");

    let e = open_err(&format!("{good}?max_connections=many")).await;
    assert!(e.contains("max_connections `many`"), "{e}");
    assert!(!e.contains(&real_pw), "{e}");

    for bad in [
        format!("postgres://recall:{secret}@[::1"),
        format!("mysql://recall:{secret}@127.0.0.1/recall"),
    ] {
        let e = open_err(&bad).await;
        assert!(e.contains("unsupported database URL"), "{e}");
        assert!(!e.contains(secret), "{e}");
    }
    // A password given as a parameter is redacted as well.
    let e = open_err(&format!(
        "postgresql://recall@127.0.0.1:1/recall?password={secret}"
    ))
    .await;
    assert!(!e.contains(secret) && e.contains("cannot reach"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_synchronous_commit_off() {
    let url = pg::database().await;
    let db = url::Url::parse(&url).expect("url").path()[1..].to_string();
    pg::exec(
        &url,
        &format!("ALTER DATABASE {db} SET synchronous_commit = off"),
    )
    .await;
    match store::open(&url).await {
        Err(StoreError::Durability(d)) => assert!(d.contains("synchronous_commit"), "{d}"),
        Err(e) => panic!("expected a durability error, got {e}"),
        Ok(_) => panic!("opened with synchronous_commit = off"),
    }
    pg::exec(
        &url,
        &format!("ALTER DATABASE {db} SET synchronous_commit = on"),
    )
    .await;
    open(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_and_statement_timeout_come_from_the_url() {
    let url = pg::database().await;
    let s =
        store::PostgresStore::open(&format!("{url}?max_connections=2&statement_timeout=1234ms"))
            .await
            .expect("open");
    assert_eq!(s.synchronous_commit().await.expect("sync"), "on");
    let t: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(s.pool())
        .await
        .expect("show");
    assert_eq!(t, "1234ms");
    assert_eq!(s.pool().options().get_max_connections(), 2);
    // The limit is real: a slower statement is cancelled.
    let slow = sqlx::query("SELECT pg_sleep(3)").execute(s.pool()).await;
    assert!(slow.is_err(), "statement_timeout applies");
    let d = store::PostgresStore::open(&url).await.expect("open");
    assert_eq!(d.pool().options().get_max_connections(), 8, "the default");
}

/// The CLI end to end on Postgres: a bundled game-day rehearsal, then the audit.
#[test]
fn postgres_cli_rehearsal_and_audit_verify() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = rt.block_on(pg::database());
    let mut recall = crate::support::Recall::new("[npm]\nregistry = \"http://127.0.0.1:9\"\n");
    recall.db = url;
    let r = recall.rehearse("ua-parser-js-2021");
    assert_eq!(r.json()["status"], "succeeded", "{r:?}");
    let id = r.id();
    let v = recall.run(&["audit", "verify", &id]);
    assert_eq!(v.code, Some(0), "{v:?}");
    assert!(v.stdout.starts_with("ok:"), "{v:?}");
    let n = recall.run(&["note", &id, "paged the maintainer", "--as", "carol"]);
    assert_eq!(n.code, Some(0), "{n:?}");
    let tl = recall.timeline(&id);
    let last = tl["events"].as_array().and_then(|a| a.last()).cloned();
    assert_eq!(last.map(|l| l["kind"].clone()), Some(json!("note")));
    assert_eq!(recall.run(&["audit", "verify", &id]).code, Some(0));
    assert_eq!(recall.show(&id)["incident"]["status"], "succeeded");
    let pm = recall.run(&["postmortem", &id]);
    assert_eq!(pm.code, Some(0), "{pm:?}");
    assert!(pm.stdout.contains("REHEARSAL"), "{pm:?}");
}

/// A claim skips an incident whose row another process is writing (`SKIP LOCKED`): it
/// answers "not yours" at once instead of queueing, and claims it once the row is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_claim_skips_a_row_being_written() {
    use sqlx::Connection;
    let url = pg::database().await;
    let store = open(&url).await;
    create(&store, "inc-busy", real_now(), &["a"]).await;
    store
        .release_lease("inc-busy", CREATOR)
        .await
        .expect("release");
    let mut writer = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut writer)
        .await
        .expect("begin");
    sqlx::query("SELECT id FROM incidents WHERE id = 'inc-busy' FOR NO KEY UPDATE")
        .execute(&mut writer)
        .await
        .expect("lock");
    let t0 = std::time::Instant::now();
    let busy = store
        .acquire_lease("inc-busy", "claimer", real_now(), TTL, &always_alive)
        .await
        .expect("claim");
    assert_eq!(busy, None, "a row being written is skipped");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(2),
        "without waiting for the writer"
    );
    sqlx::query("COMMIT")
        .execute(&mut writer)
        .await
        .expect("commit");
    let got = store
        .acquire_lease("inc-busy", "claimer", real_now(), TTL, &always_alive)
        .await
        .expect("claim");
    assert!(got.is_some(), "claimed once the writer is done");
}
