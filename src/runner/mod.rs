//! Drives the pure engine: owns the clock, the store, the workers and the lease.
//!
//! Loop: apply every event that has arrived to the run state (engine), commit the dirty rows
//! and the timeline entries in ONE write transaction (group commit: a burst of results costs
//! one fsync), then execute the commands — so every mutating call has its intent on disk
//! before it leaves the process.

pub mod failpoint;
mod restore;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span, warn};

pub use failpoint::Failpoints;

use crate::actions::{ActionCtx, ActionError, ActionOutput, Probe, Registry};
use crate::config::{Config, parse_duration_ms};
use crate::engine::{
    self, Command, Decision, Entry, Event, GateFactsError, IncidentMeta, IncidentStatus,
    Invocation, Millis, Mode, Outcome, Policy, ProbeVerdict, Resolution, RunState, gate::GateFacts,
};
use crate::playbook::{self, Diagnostics, Playbook};
use crate::store::{NewIncident, Prepared, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Playbook(Diagnostics),
    #[error("{0}")]
    Params(Diagnostics),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("incident `{0}` not found")]
    NotFound(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("the stored playbook of `{id}` no longer parses: {detail}")]
    Pinned { id: String, detail: String },
}

/// This host's name: part of a lease owner, so a dead owner on this host is recognised.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

const INBOX_POLL: Duration = Duration::from_millis(200);

pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Everything needed to start an incident.
pub struct StartRequest {
    /// Display name of the playbook file (for diagnostics and the record).
    pub file: String,
    pub source: Vec<u8>,
    pub params: Vec<(String, String)>,
    pub mode: Mode,
    pub auto_approve: bool,
    pub started_by: String,
}

/// How a drive ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriveOutcome {
    Finished(IncidentStatus),
    /// Another live process holds the incident; our request is queued in its inbox.
    Elsewhere,
}

pub struct Runner {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub config: Arc<Config>,
    owner: String,
    failpoints: Arc<Failpoints>,
}

enum Done {
    Invoke(Invocation, Outcome),
    Probe(Invocation, ProbeVerdict),
    Gate(Invocation, Result<GateFacts, GateFactsError>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invoke,
    Probe,
    Gate,
}

impl Runner {
    pub fn new(store: Arc<dyn Store>, registry: Arc<Registry>, config: Arc<Config>) -> Self {
        let host = hostname();
        let owner = format!(
            "{host}:{}:{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            store,
            registry,
            config,
            owner,
            failpoints: Arc::new(Failpoints::from_env()),
        }
    }

    pub fn policy(&self) -> Policy {
        Policy {
            allow_self_approval: self.config.approvals.allow_self_approval,
            approval_timeout_ms: parse_duration_ms(&self.config.approvals.timeout)
                .map(|v| v as i64)
                .unwrap_or(24 * 3_600_000),
            default_concurrency: self.config.engine.default_fanout,
            reconcile_grace_ms: parse_duration_ms(&self.config.engine.reconcile_grace)
                .map(|v| v as i64)
                .unwrap_or(5_000),
            gate: self.config.gate_policy(),
        }
    }

    fn parse_pinned(&self, file: &str, source: &[u8]) -> Result<Playbook, Diagnostics> {
        playbook::parse(file, source, self.registry.as_ref()).map(|(pb, _warnings)| pb)
    }

    /// Validate, create and drive a new incident. Nothing is stored when the playbook or the
    /// parameters are invalid.
    pub async fn start(&self, req: StartRequest) -> Result<(String, DriveOutcome), RunError> {
        let id = self.create(req).await?;
        let outcome = self.drive(&id).await?;
        Ok((id, outcome))
    }

    /// Checks a start request without storing anything: the playbook parses and lints, the
    /// parameters bind, the mode flags agree.
    pub fn validate(&self, req: &StartRequest) -> Result<(), RunError> {
        let pb = self
            .parse_pinned(&req.file, &req.source)
            .map_err(RunError::Playbook)?;
        playbook::bind_params(&pb, &req.params).map_err(RunError::Params)?;
        if req.auto_approve && req.mode != Mode::Rehearsal {
            return Err(RunError::Invalid(
                "--auto-approve is only allowed with --dry-run (a rehearsal)".into(),
            ));
        }
        Ok(())
    }

    /// Validates and stores a new incident, its creator holding the lease; `drive` runs it.
    pub async fn create(&self, req: StartRequest) -> Result<String, RunError> {
        let pb = self
            .parse_pinned(&req.file, &req.source)
            .map_err(RunError::Playbook)?;
        let params = playbook::bind_params(&pb, &req.params).map_err(RunError::Params)?;
        if req.auto_approve && req.mode != Mode::Rehearsal {
            return Err(RunError::Invalid(
                "--auto-approve is only allowed with --dry-run (a rehearsal)".into(),
            ));
        }
        let now = now_ms();
        let id = format!("inc-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let meta = IncidentMeta {
            id: id.clone(),
            mode: req.mode,
            status: IncidentStatus::Running,
            params: Value::Object(params),
            auto_approve: req.auto_approve,
            started_by: req.started_by.clone(),
            created_at: now,
            finished_at: None,
        };
        let mut state = RunState::new(
            meta,
            Arc::new(pb),
            self.policy(),
            self.registry.info(&self.config),
        );
        let entry = Entry {
            at: now,
            actor: req.started_by.clone(),
            kind: "incident.started".into(),
            step: None,
            index: None,
            summary: format!(
                "{} started playbook `{}`{}",
                req.started_by,
                state.playbook.name,
                if req.mode == Mode::Rehearsal {
                    " as a REHEARSAL (dry-run: no mutating request leaves the process)"
                } else {
                    ""
                }
            ),
            data: json!({
                "playbook": state.playbook.name, "file": req.file, "sha256": state.playbook.sha256,
                "params": state.meta.params, "mode": req.mode.as_str(), "auto_approve": req.auto_approve,
            }),
        };
        let dirty = state.take_dirty();
        let first = Prepared::new(&state, dirty, vec![entry], vec![], now);
        self.store
            .create_incident(
                NewIncident {
                    id: id.clone(),
                    playbook_name: state.playbook.name.clone(),
                    playbook_sha256: state.playbook.sha256.clone(),
                    playbook_source: state.playbook.source.clone(),
                    playbook_file: req.file.clone(),
                    params_json: serde_json::to_string(&state.meta.params).unwrap_or_default(),
                    mode: req.mode.as_str().into(),
                    status: state.meta.status.as_str().into(),
                    auto_approve: req.auto_approve,
                    started_by: req.started_by.clone(),
                    created_at: now,
                    lease_owner: Some(self.owner.clone()),
                    lease_until: Some(now + self.lease_ttl()),
                },
                first,
            )
            .await?;
        info!(incident = %id, playbook = %state.playbook.name, mode = %req.mode, "incident started");
        Ok(id)
    }

    /// Queue a human decision and, if nobody else is driving the incident, drive it.
    pub async fn decide(
        &self,
        id: &str,
        step: &str,
        actor: &str,
        decision: Decision,
        reason: &str,
    ) -> Result<DriveOutcome, RunError> {
        if actor.trim().is_empty() {
            return Err(RunError::Invalid("an approval needs --as WHO".into()));
        }
        if reason.trim().is_empty() {
            return Err(RunError::Invalid("an approval needs --reason TEXT".into()));
        }
        let inc = self
            .store
            .incident(id)
            .await?
            .ok_or_else(|| RunError::NotFound(id.to_string()))?;
        if IncidentStatus::parse(&inc.status).is_some_and(IncidentStatus::is_terminal) {
            return Err(RunError::Invalid(format!(
                "incident {id} is already {}; there is nothing left to approve",
                inc.status
            )));
        }
        self.store
            .push_inbox(
                id,
                "decision",
                &json!({ "step": step, "actor": actor, "decision": decision.as_str(), "reason": reason }),
                now_ms(),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound(i) => RunError::NotFound(i),
                e => RunError::Store(e),
            })?;
        self.drive(id).await
    }

    /// Queue a human resolution of a paused step and drive.
    pub async fn resolve(
        &self,
        id: &str,
        step: &str,
        index: Option<u32>,
        actor: &str,
        resolution: Resolution,
        reason: &str,
    ) -> Result<DriveOutcome, RunError> {
        self.store
            .push_inbox(
                id,
                "resolve",
                &json!({ "step": step, "index": index, "actor": actor, "resolution": resolution, "reason": reason }),
                now_ms(),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound(i) => RunError::NotFound(i),
                e => RunError::Store(e),
            })?;
        self.drive(id).await
    }

    /// Pick up incidents that were interrupted mid-flight (status `running`, nobody alive
    /// driving them), except `skip`. Every engine start calls this after its own work.
    pub async fn resume_interrupted(
        &self,
        skip: &str,
    ) -> Result<Vec<(String, DriveOutcome)>, RunError> {
        let mut out = Vec::new();
        for inc in self.store.list().await? {
            if inc.id == skip || inc.status != IncidentStatus::Running.as_str() {
                continue;
            }
            let r = self.drive(&inc.id).await?;
            if r != DriveOutcome::Elsewhere {
                info!(incident = %inc.id, outcome = ?r, "resumed an interrupted incident");
                out.push((inc.id, r));
            }
        }
        Ok(out)
    }

    /// Resume every unfinished incident (engine start, `recall incident resume`).
    pub async fn resume_all(&self) -> Result<Vec<(String, DriveOutcome)>, RunError> {
        let mut out = Vec::new();
        for id in self.store.unfinished().await? {
            let r = self.drive(&id).await?;
            out.push((id, r));
        }
        Ok(out)
    }

    fn alive_check() -> impl Fn(&str) -> bool + Send + Sync {
        let host = hostname();
        move |owner: &str| {
            let mut parts = owner.split(':');
            let (Some(h), Some(pid)) = (parts.next(), parts.next()) else {
                return false;
            };
            if h != host {
                return true; // another machine: only its lease expiry can tell
            }
            pid.parse::<u32>()
                .map(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
                .unwrap_or(false)
        }
    }

    /// This process's lease owner name (`host:pid:…`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn lease_ttl(&self) -> i64 {
        parse_duration_ms(&self.config.engine.lease_ttl).unwrap_or(15_000) as i64
    }

    /// Drive one incident until it finishes or waits on a human.
    pub async fn drive(&self, id: &str) -> Result<DriveOutcome, RunError> {
        let alive = Self::alive_check();
        let Some(epoch) = self
            .store
            .acquire_lease(id, &self.owner, now_ms(), self.lease_ttl(), &alive)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(i) => RunError::NotFound(i),
                e => RunError::Store(e),
            })?
        else {
            return Ok(DriveOutcome::Elsewhere);
        };
        let result = self
            .drive_leased(id, epoch)
            .instrument(info_span!("incident", incident = %id))
            .await;
        if let Err(e) = self.store.release_lease(id, &self.owner).await {
            warn!(incident = %id, error = %e, "could not release lease");
        }
        result.map(DriveOutcome::Finished)
    }

    async fn drive_leased(&self, id: &str, epoch: i64) -> Result<IncidentStatus, RunError> {
        let run = self
            .store
            .load(id)
            .await?
            .ok_or_else(|| RunError::NotFound(id.to_string()))?;
        if let Some(s) = IncidentStatus::parse(&run.incident.status)
            && s.is_terminal()
        {
            return Ok(s);
        }
        // The run is pinned to the exact playbook bytes it started with.
        let pb = self
            .parse_pinned(
                &run.incident.playbook_file,
                run.incident.playbook_source.as_bytes(),
            )
            .map_err(|d| RunError::Pinned {
                id: id.to_string(),
                detail: d.to_string(),
            })?;
        let mut state = restore::restore(
            run,
            Arc::new(pb),
            self.policy(),
            self.registry.info(&self.config),
        )
        .map_err(|detail| RunError::Pinned {
            id: id.to_string(),
            detail,
        })?;
        let sem = Arc::new(Semaphore::new(self.config.engine.concurrency.max(1)));
        let mut workers: JoinSet<Done> = JoinSet::new();
        let mut events = vec![Event::Resumed { now: now_ms() }];
        let ttl = self.lease_ttl();
        let mut lease_renewed = now_ms();
        let alive = Self::alive_check();
        let mut inbox_polled: Option<std::time::Instant> = None;
        loop {
            // Requests from outside (approvals, resolutions): polled at most every 200 ms so
            // a burst of results is not slowed by a read per batch.
            let mut consumed = Vec::new();
            if inbox_polled.is_none_or(|t| t.elapsed() >= INBOX_POLL) {
                inbox_polled = Some(std::time::Instant::now());
                for item in self.store.pending_inbox(id).await? {
                    consumed.push(item.id);
                    if let Some(ev) = self.inbox_event(&item.kind, &item.payload) {
                        events.push(ev);
                    }
                }
            }
            let mutating_results = state.meta.mode == Mode::Live
                && events.iter().any(|e| match e {
                    Event::TaskFinished { step, .. } => state
                        .playbook
                        .step(step)
                        .is_some_and(|d| state.action(&d.uses).mutating),
                    _ => false,
                });
            let cmds = if events.is_empty() {
                Vec::new()
            } else {
                engine::handle_all(&mut state, std::mem::take(&mut events))
            };
            let has_mutating_invoke = cmds
                .iter()
                .any(|c| matches!(c, Command::Invoke(i) if i.mutating && i.mode == Mode::Live));
            if has_mutating_invoke {
                self.failpoints.hit("before_intent");
            }
            let mut entries = Vec::new();
            let mut work = Vec::new();
            for c in cmds {
                match c {
                    Command::Record(e) => entries.push(e),
                    other => work.push(other),
                }
            }
            // Group commit: every transition since the last commit, in one transaction,
            // before any of the commands it produced is executed (the intent record).
            let dirty = state.take_dirty();
            let prepared = Prepared::new(&state, dirty, entries, consumed, now_ms())
                .fenced(&self.owner, epoch);
            if !prepared.is_empty() {
                match self.store.commit(vec![prepared]).await {
                    Ok(()) => {}
                    // Another process took the incident over (this one was paused or cut
                    // off longer than the lease): what was computed here is stale. Drop it;
                    // the new holder reconciles every attempt from the database.
                    Err(StoreError::Fenced(_)) => {
                        warn!(incident = %id, "lease taken over by another process; dropping this process's stale results");
                        workers.abort_all();
                        return Ok(state.meta.status);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if mutating_results {
                self.failpoints.hit("after_result");
            }
            if has_mutating_invoke {
                self.failpoints.hit("after_intent");
            }
            for c in work {
                self.dispatch(&mut workers, sem.clone(), c, epoch);
            }
            if state.meta.status.is_terminal() && workers.is_empty() {
                return Ok(state.meta.status);
            }
            // Only people can move it now. Approval deadlines are rows: whichever process
            // drives the incident next (resume, an approval, the server) fires them.
            if workers.is_empty() && state.meta.status == IncidentStatus::Waiting {
                return Ok(IncidentStatus::Waiting);
            }
            // Wait for results, a timer, or the lease renewal.
            let now = now_ms();
            let wake = engine::next_wake(&state)
                .map(|w| (w - now).max(0) as u64)
                .unwrap_or(u64::MAX)
                .min((ttl / 3).max(100) as u64)
                .min(INBOX_POLL.as_millis() as u64);
            tokio::select! {
                Some(done) = workers.join_next(), if !workers.is_empty() => {
                    self.push_done(&mut events, done);
                    // Group commit: take every result that is already in.
                    while let Some(done) = workers.try_join_next() {
                        self.push_done(&mut events, done);
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(wake)) => {
                    events.push(Event::Tick { now: now_ms() });
                }
            }
            if now_ms() - lease_renewed > ttl / 3 {
                if self
                    .store
                    .acquire_lease(id, &self.owner, now_ms(), ttl, &alive)
                    .await?
                    != Some(epoch)
                {
                    warn!(incident = %id, "lost the lease; stopping");
                    workers.abort_all();
                    return Ok(state.meta.status);
                }
                lease_renewed = now_ms();
            }
        }
    }

    fn push_done(&self, events: &mut Vec<Event>, done: Result<Done, tokio::task::JoinError>) {
        let now = now_ms();
        match done {
            Ok(Done::Invoke(inv, outcome)) => events.push(Event::TaskFinished {
                step: inv.step,
                index: inv.index,
                attempt: inv.attempt,
                outcome,
                now,
            }),
            Ok(Done::Probe(inv, verdict)) => events.push(Event::Probed {
                step: inv.step,
                index: inv.index,
                attempt: inv.attempt,
                verdict,
                now,
            }),
            Ok(Done::Gate(inv, facts)) => events.push(Event::GateChecked {
                step: inv.step,
                index: inv.index,
                attempt: inv.attempt,
                facts,
                now,
            }),
            // A panicking action is a bug; its attempt stays "running" and is reconciled
            // on the next resume rather than guessed at here.
            Err(e) => warn!(error = %e, "an action task panicked"),
        }
    }

    fn inbox_event(&self, kind: &str, p: &Value) -> Option<Event> {
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let now = now_ms();
        match kind {
            "decision" => Some(Event::Decision {
                step: s("step"),
                actor: s("actor"),
                groups: self.config.groups_of(&s("actor")),
                decision: Decision::parse(&s("decision"))?,
                reason: s("reason"),
                target: p.get("target").and_then(Value::as_str).map(str::to_string),
                now,
            }),
            "resolve" => Some(Event::Resolve {
                step: s("step"),
                index: p
                    .get("index")
                    .and_then(Value::as_u64)
                    .and_then(|i| u32::try_from(i).ok()),
                actor: s("actor"),
                resolution: match s("resolution").as_str() {
                    "mark_done" => Resolution::MarkDone,
                    "retry" => Resolution::Retry,
                    _ => Resolution::Fail,
                },
                reason: s("reason"),
                now,
            }),
            _ => None,
        }
    }

    fn dispatch(&self, workers: &mut JoinSet<Done>, sem: Arc<Semaphore>, c: Command, epoch: i64) {
        let (inv, kind) = match c {
            Command::Invoke(i) => (i, Kind::Invoke),
            Command::Probe(i) => (i, Kind::Probe),
            Command::Gate(i) => (i, Kind::Gate),
            Command::Record(_) => return,
        };
        let ctx = ActionCtx {
            incident: inv.incident.clone(),
            step: inv.step.clone(),
            index: inv.index,
            attempt: inv.attempt,
            idem_key: inv.idem_key.clone(),
            mode: inv.mode,
            config: self.config.clone(),
            store: self.store.clone(),
        };
        let action = self.registry.get(&inv.uses).cloned();
        let fp = self.failpoints.clone();
        let (store, owner, margin) = (self.store.clone(), self.owner.clone(), self.lease_ttl() / 3);
        let span = info_span!("attempt", incident = %inv.incident, step = %inv.step, item = inv.index, attempt = inv.attempt);
        workers.spawn(
            async move {
                let _permit = sem.acquire_owned().await.ok();
                let Some(action) = action else {
                    let o = Outcome::Failure {
                        error: format!("unknown action `{}`", inv.uses),
                        transient: false,
                        ambiguous: false,
                        retry_after_ms: None,
                        detail: Value::Null,
                    };
                    return Done::Invoke(inv, o);
                };
                let timeout = inv.timeout_ms.map(Duration::from_millis);
                if kind == Kind::Gate {
                    // Read-only, so rehearsals read the same facts: the gate's verdict is
                    // part of what a game day finds out.
                    let r = with_timeout(timeout, action.gate_facts(&ctx, &inv.inputs)).await;
                    let facts = match r {
                        Ok(f) => Ok(f),
                        Err(e) => {
                            // A rehearsal still says what the live path would need.
                            let preflight = if inv.mode == Mode::Rehearsal {
                                let checks = action.preflight(&ctx, &inv.inputs).await;
                                Value::Array(checks.iter().map(|c| c.to_json()).collect())
                            } else {
                                Value::Null
                            };
                            Err(GateFactsError {
                                transient: e.is_transient(),
                                retry_after_ms: e.retry_after_ms(),
                                error: e.to_string(),
                                preflight,
                            })
                        }
                    };
                    return Done::Gate(inv, facts);
                }
                if kind == Kind::Probe {
                    if inv.mode == Mode::Rehearsal {
                        let v = ProbeVerdict::NotDone {
                            evidence: json!("a rehearsal sends nothing"),
                        };
                        return Done::Probe(inv, v);
                    }
                    let fut = action.probe(&ctx, &inv.inputs);
                    let r = with_timeout(timeout, fut).await;
                    let verdict = match r {
                        Ok(Probe::Done { outputs, evidence }) => {
                            ProbeVerdict::Done { outputs, evidence }
                        }
                        Ok(Probe::NotDone { evidence }) => ProbeVerdict::NotDone { evidence },
                        Ok(Probe::Unknown { reason }) => ProbeVerdict::Unknown { reason },
                        Err(e) => ProbeVerdict::Unknown {
                            reason: format!("probe failed: {e}"),
                        },
                    };
                    return Done::Probe(inv, verdict);
                }
                // Last check before an effect leaves the process: this process still holds
                // the lease with time to spare. A process paused since the intent was
                // committed may have been replaced; the new holder reconciles the attempt.
                if inv.mutating && inv.mode == Mode::Live {
                    // The answer is only as fresh as the moment it was computed: a check that
                    // took longer than half the margin (a stalled database) may describe a
                    // lease that has expired since, so it does not count.
                    let asked = std::time::Instant::now();
                    let held = store
                        .lease_holds(&inv.incident, &owner, epoch, now_ms(), margin)
                        .await;
                    let took = asked.elapsed();
                    let held = match held {
                        Ok(true) if took.as_millis() as i64 >= margin / 2 => Err(format!(
                            "the lease check took {} ms, too long to trust",
                            took.as_millis()
                        )),
                        Ok(true) => Ok(()),
                        Ok(false) => Err("the lease is no longer held".to_string()),
                        Err(e) => Err(format!("could not confirm the lease: {e}")),
                    };
                    match held {
                        Ok(()) => {}
                        Err(why) => {
                            return Done::Invoke(
                                inv,
                                Outcome::Failure {
                                    error: format!("not sent: {why}"),
                                    transient: true,
                                    ambiguous: false,
                                    retry_after_ms: None,
                                    detail: Value::Null,
                                },
                            );
                        }
                    }
                }
                // A rehearsal runs the action's preflight checks next to its plan and times
                // the plan's reads: a game day's verdicts and its time-to-contain estimate.
                let mut rehearsed = None;
                let r = if inv.mode == Mode::Rehearsal {
                    let t0 = std::time::Instant::now();
                    let checks = match timeout {
                        Some(d) => tokio::time::timeout(d, action.preflight(&ctx, &inv.inputs))
                            .await
                            .unwrap_or_else(|_| {
                                vec![crate::actions::preflight::Check::unknown(
                                    "preflight.timeout",
                                    inv.uses.as_str(),
                                    format!("the checks did not finish in {} ms", d.as_millis()),
                                    "raise the step's timeout or check the registry's latency",
                                )]
                            }),
                        None => action.preflight(&ctx, &inv.inputs).await,
                    };
                    let preflight_ms = t0.elapsed().as_millis() as u64;
                    let t1 = std::time::Instant::now();
                    let r = with_timeout(timeout, action.plan(&ctx, &inv.inputs)).await;
                    rehearsed = Some((checks, preflight_ms, t1.elapsed().as_millis() as u64));
                    r
                } else {
                    with_timeout(timeout, action.run(&ctx, &inv.inputs)).await
                };
                if inv.mutating && inv.mode == Mode::Live {
                    fp.hit("after_call");
                }
                let outcome = match r {
                    Ok(ActionOutput {
                        human: Some(h),
                        detail,
                        ..
                    }) if inv.mode == Mode::Live => Outcome::Human {
                        instructions: h.instructions,
                        links: h.links,
                        detail,
                    },
                    Ok(o) => Outcome::Success {
                        outputs: o.outputs,
                        detail: o.detail,
                    },
                    // A rehearsal records what it could not read as a finding, not a failure:
                    // the point of a game day is to find these.
                    Err(e)
                        if inv.mode == Mode::Rehearsal && !matches!(e, ActionError::Input(_)) =>
                    {
                        Outcome::Success {
                            outputs: json!({}),
                            detail: json!({
                                "summary": format!("rehearsal could not plan this step: {e}"),
                                "findings": [format!("blocker: {e}")],
                            }),
                        }
                    }
                    Err(e) => Outcome::Failure {
                        transient: e.is_transient(),
                        ambiguous: e.is_ambiguous() && inv.mutating,
                        retry_after_ms: e.retry_after_ms(),
                        error: match action.credential(&ctx.config, &inv.inputs) {
                            Some(src) if e.is_auth_refused() => {
                                format!("{e} — the registry refused the credential from {src}")
                            }
                            _ => e.to_string(),
                        },
                        detail: Value::Null,
                    },
                };
                let outcome = match (outcome, rehearsed) {
                    (
                        Outcome::Success {
                            outputs,
                            mut detail,
                        },
                        Some((checks, pf_ms, plan_ms)),
                    ) => {
                        if let Value::Object(m) = &mut detail {
                            m.insert(
                                "preflight".into(),
                                Value::Array(checks.iter().map(|c| c.to_json()).collect()),
                            );
                            m.insert(
                                "timing".into(),
                                json!({ "preflight_ms": pf_ms, "plan_ms": plan_ms }),
                            );
                        }
                        Outcome::Success { outputs, detail }
                    }
                    (o, _) => o,
                };
                Done::Invoke(inv, outcome)
            }
            .instrument(span),
        );
    }
}

async fn with_timeout<T>(
    timeout: Option<Duration>,
    fut: impl std::future::Future<Output = Result<T, ActionError>>,
) -> Result<T, ActionError> {
    match timeout {
        Some(d) => tokio::time::timeout(d, fut).await.unwrap_or_else(|_| {
            Err(ActionError::Transient(format!(
                "timed out after {} ms",
                d.as_millis()
            )))
        }),
        None => fut.await,
    }
}
