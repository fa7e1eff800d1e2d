//! Persistence behind one trait, so SQLite (the embedded default) and Postgres
//! (`postgres.rs`: several processes on one database, see `docs/postgres.md`) share the
//! runner. SQL is written to port: `$n` placeholders, `ON CONFLICT` upserts, BIGINT
//! milliseconds, JSON as TEXT.

mod postgres;
mod rows;
mod sbom;
mod slack;
mod sqlite;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::engine::{Approval, Dirty, Entry, RunState};
use crate::timeline;

pub use postgres::{PostgresStore, redact_url};
pub use sbom::{SbomDocInfo, SbomDocRow, SbomStats, SbomStore};
pub use slack::{SlackStore, SlackThread};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database durability check failed: {0}")]
    Durability(String),
    #[error(
        "unsupported database URL `{0}` (expected sqlite://PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)"
    )]
    Url(String),
    /// The database could not be opened: unreachable, refused, or a bad URL parameter.
    /// `target` is the URL with any password redacted.
    #[error("cannot open the database at {target}: {detail}")]
    Open { target: String, detail: String },
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("migration {version} ({name}) failed: {detail}")]
    Migration {
        version: i64,
        name: String,
        detail: String,
    },
    #[error("incident `{0}` not found")]
    NotFound(String),
    /// Another process took the incident's lease: this process's commit is refused.
    #[error(
        "incident `{0}`: the lease was taken over by another process; this result is stale and was not recorded"
    )]
    Fenced(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The incident row.
#[derive(Clone, Debug, Serialize)]
pub struct IncidentRecord {
    pub id: String,
    pub playbook_name: String,
    pub playbook_sha256: String,
    #[serde(skip)]
    pub playbook_source: String,
    pub playbook_file: String,
    pub params: Value,
    pub mode: String,
    pub status: String,
    pub auto_approve: bool,
    pub started_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub head_seq: i64,
    pub head_hash: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepRecord {
    pub step_id: String,
    pub status: String,
    pub fanout: bool,
    pub outputs: Value,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub approval_deadline: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TaskRecord {
    pub step_id: String,
    pub item_index: u32,
    pub item: Value,
    pub status: String,
    pub attempt: u32,
    pub inputs: Value,
    pub idem_key: String,
    pub outputs: Value,
    pub error: Option<String>,
    pub next_run_at: Option<i64>,
    pub needs_probe: bool,
    pub human: bool,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApprovalRecord {
    pub step_id: String,
    pub approval: Approval,
}

/// Everything stored about one incident's run.
#[derive(Clone, Debug)]
pub struct StoredRun {
    pub incident: IncidentRecord,
    pub steps: Vec<StepRecord>,
    pub tasks: Vec<TaskRecord>,
    pub approvals: Vec<ApprovalRecord>,
}

/// A request from outside the driving process (a CLI approval, later Slack and the API).
#[derive(Clone, Debug)]
pub struct InboxItem {
    pub id: i64,
    pub kind: String,
    pub payload: Value,
}

/// One atomic state transition, already serialised: the rows the engine changed, the
/// timeline entries it emitted, the inbox items it consumed. Owned, so the runner can
/// prepare the next transition while the store is still committing this one.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub incident: String,
    /// New status, updated_at, finished_at — when the incident row changed.
    pub status: Option<(String, Option<i64>)>,
    pub steps: Vec<StepRecord>,
    /// Tasks created by this transition: inserted whole.
    pub new_tasks: Vec<TaskRow>,
    /// Tasks that already exist: only their mutable columns are written.
    pub changed_tasks: Vec<TaskRow>,
    pub approvals: Vec<ApprovalRecord>,
    pub entries: Vec<PreparedEntry>,
    pub consumed_inbox: Vec<i64>,
    pub now: i64,
    /// The lease this transition was computed under: (owner, epoch). The store refuses the
    /// commit unless the incident's lease is still exactly that (fencing).
    pub fence: Option<(String, i64)>,
}

/// A task row with its JSON columns already serialised.
#[derive(Clone, Debug)]
pub struct TaskRow {
    pub step_id: String,
    pub item_index: i64,
    pub item_json: String,
    pub status: &'static str,
    pub attempt: i64,
    pub inputs_json: String,
    pub idem_key: String,
    pub outputs_json: String,
    pub error: Option<String>,
    pub next_run_at: Option<i64>,
    pub needs_probe: bool,
    pub human: bool,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A timeline entry with its text scrubbed of registered secrets and its data serialised;
/// the store assigns seq and chains the hash inside the write transaction.
#[derive(Clone, Debug)]
pub struct PreparedEntry {
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub step: Option<String>,
    pub index: Option<u32>,
    pub summary: String,
    pub data_json: String,
}

fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

impl PreparedEntry {
    pub fn from_entry(e: Entry) -> Self {
        Self {
            summary: crate::secrets::scrub(&e.summary),
            data_json: crate::secrets::scrub(&json_text(&e.data)),
            at: e.at,
            actor: e.actor,
            kind: e.kind,
            step: e.step,
            index: e.index,
        }
    }
}

impl Prepared {
    /// Serialise what `dirty` names from `state` (a snapshot: the state may move on).
    pub fn new(
        state: &RunState,
        dirty: Dirty,
        entries: Vec<Entry>,
        consumed_inbox: Vec<i64>,
        now: i64,
    ) -> Self {
        let status = dirty.incident.then(|| {
            (
                state.meta.status.as_str().to_string(),
                state.meta.finished_at,
            )
        });
        let steps = dirty
            .steps
            .iter()
            .filter_map(|sid| {
                let s = state.steps.get(sid)?;
                Some(StepRecord {
                    step_id: sid.clone(),
                    status: s.status.as_str().to_string(),
                    fanout: s.fanout,
                    outputs: s.outputs.clone(),
                    error: s.error.clone(),
                    started_at: s.started_at,
                    finished_at: s.finished_at,
                    approval_deadline: s.approval_deadline,
                })
            })
            .collect();
        let (mut new_tasks, mut changed_tasks) = (Vec::new(), Vec::new());
        for key @ (sid, index) in &dirty.tasks {
            let Some(t) = state.steps.get(sid).and_then(|s| {
                // Tasks are kept in index order; fall back to a search if not.
                s.tasks
                    .get(*index as usize)
                    .filter(|t| t.index == *index)
                    .or_else(|| s.tasks.iter().find(|t| t.index == *index))
            }) else {
                continue;
            };
            let new = dirty.new_tasks.contains(key);
            let row = TaskRow {
                step_id: sid.clone(),
                item_index: i64::from(t.index),
                // Immutable after creation: only serialised for the insert.
                item_json: if new {
                    json_text(&t.item)
                } else {
                    String::new()
                },
                status: t.status.as_str(),
                attempt: i64::from(t.attempt),
                inputs_json: if new {
                    json_text(&t.inputs)
                } else {
                    String::new()
                },
                idem_key: if new {
                    t.idem_key.clone()
                } else {
                    String::new()
                },
                outputs_json: json_text(&t.outputs),
                error: t.error.clone(),
                next_run_at: t.next_run_at,
                needs_probe: t.needs_probe,
                human: t.human,
                started_at: t.started_at,
                finished_at: t.finished_at,
            };
            if new {
                new_tasks.push(row);
            } else {
                changed_tasks.push(row);
            }
        }
        let approvals = dirty
            .approvals
            .into_iter()
            .map(|(step_id, approval)| ApprovalRecord { step_id, approval })
            .collect();
        Self {
            incident: state.meta.id.clone(),
            status,
            steps,
            new_tasks,
            changed_tasks,
            approvals,
            entries: entries.into_iter().map(PreparedEntry::from_entry).collect(),
            consumed_inbox,
            now,
            fence: None,
        }
    }

    /// Commit only while `owner` holds the lease at `epoch`.
    pub fn fenced(mut self, owner: &str, epoch: i64) -> Self {
        self.fence = Some((owner.to_string(), epoch));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.steps.is_empty()
            && self.new_tasks.is_empty()
            && self.changed_tasks.is_empty()
            && self.approvals.is_empty()
            && self.entries.is_empty()
            && self.consumed_inbox.is_empty()
    }
}

/// The incident row written once, when an incident is created.
#[derive(Clone, Debug)]
pub struct NewIncident {
    pub id: String,
    pub playbook_name: String,
    pub playbook_sha256: String,
    pub playbook_source: String,
    pub playbook_file: String,
    pub params_json: String,
    pub mode: String,
    pub status: String,
    pub auto_approve: bool,
    pub started_by: String,
    pub created_at: i64,
    /// The creating runner holds the lease from the insert on, so no other process
    /// resuming "interrupted" incidents can take a brand-new one before it is driven.
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
}

#[async_trait]
pub trait Store: SbomStore + SlackStore + Send + Sync {
    /// Insert a new incident with its pinned playbook and the first transition.
    async fn create_incident(&self, incident: NewIncident, first: Prepared) -> Result<()>;
    /// Commit transitions (of one or several incidents) in one transaction: group commit.
    async fn commit(&self, batch: Vec<Prepared>) -> Result<()>;
    async fn load(&self, id: &str) -> Result<Option<StoredRun>>;
    async fn incident(&self, id: &str) -> Result<Option<IncidentRecord>>;
    async fn list(&self) -> Result<Vec<IncidentRecord>>;
    /// Incidents that are not finished (running or waiting on a human).
    async fn unfinished(&self) -> Result<Vec<String>>;
    async fn events(&self, id: &str) -> Result<Vec<timeline::Event>>;
    /// Append entries outside an engine transition (human notes).
    async fn append(&self, id: &str, entries: Vec<Entry>) -> Result<()>;
    async fn push_inbox(&self, id: &str, kind: &str, payload: &Value, now: i64) -> Result<i64>;
    async fn pending_inbox(&self, id: &str) -> Result<Vec<InboxItem>>;
    /// Take (or renew) the right to drive an incident; `Some(epoch)` when held. The epoch
    /// grows each time the lease changes hands and fences every commit (`Prepared::fenced`).
    /// `alive` answers whether a recorded owner is still running, so a crashed process's
    /// lease can be taken over at once. Postgres measures expiry on the database's clock.
    async fn acquire_lease(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        ttl_ms: i64,
        alive: &(dyn for<'s> Fn(&'s str) -> bool + Send + Sync),
    ) -> Result<Option<i64>>;
    /// Does `owner` still hold the lease at `epoch` with at least `margin_ms` left? Asked
    /// right before a mutating call leaves the process.
    async fn lease_holds(
        &self,
        id: &str,
        owner: &str,
        epoch: i64,
        now: i64,
        margin_ms: i64,
    ) -> Result<bool>;
    /// A named lease (the leader lease): true while `owner` holds it.
    async fn acquire_named_lease(
        &self,
        name: &str,
        owner: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool>;
    async fn release_lease(&self, id: &str, owner: &str) -> Result<()>;
    async fn put_artifact(&self, id: &str, name: &str, content: &str, now: i64) -> Result<()>;
    async fn artifact(&self, id: &str, name: &str) -> Result<Option<String>>;
}

/// Open the store named by a database URL and apply migrations.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(PostgresStore::open(url).await?))
    } else {
        Err(StoreError::Url(redact_url(url)))
    }
}
