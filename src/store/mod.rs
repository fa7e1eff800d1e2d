//! Persistence behind one trait, so SQLite (the embedded default) and Postgres (later) share
//! the runner. SQL is written to port: `$n` placeholders, `ON CONFLICT` upserts, BIGINT
//! milliseconds, JSON as TEXT.

mod sqlite;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::engine::{Approval, Dirty, Entry, RunState};
use crate::timeline;

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database durability check failed: {0}")]
    Durability(String),
    #[error("unsupported database URL `{0}` (expected sqlite://PATH)")]
    Url(String),
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

/// One atomic state transition: rows the engine changed, the timeline entries it emitted,
/// inbox items it consumed. Committed in a single write transaction.
pub struct Commit<'a> {
    pub state: &'a RunState,
    pub dirty: Dirty,
    pub entries: Vec<Entry>,
    pub consumed_inbox: Vec<i64>,
    pub now: i64,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Insert a new incident with its pinned playbook and the first transition.
    async fn create_incident(&self, file: &str, commit: Commit<'_>) -> Result<()>;
    /// Commit several incidents' transitions in one transaction (group commit).
    async fn commit(&self, commits: Vec<Commit<'_>>) -> Result<()>;
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
    /// Take (or renew) the right to drive an incident. `alive` answers whether a recorded
    /// owner is still running, so a crashed process's lease can be taken over at once.
    async fn acquire_lease(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        ttl_ms: i64,
        alive: &(dyn for<'s> Fn(&'s str) -> bool + Send + Sync),
    ) -> Result<bool>;
    async fn release_lease(&self, id: &str, owner: &str) -> Result<()>;
    async fn put_artifact(&self, id: &str, name: &str, content: &str, now: i64) -> Result<()>;
    async fn artifact(&self, id: &str, name: &str) -> Result<Option<String>>;
}

/// Open the store named by a database URL and apply migrations.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteStore::open(url).await?))
    } else {
        Err(StoreError::Url(url.to_string()))
    }
}
