//! SQLite: WAL, `synchronous=FULL` (read back and enforced), `BEGIN IMMEDIATE` for every write.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};

use super::rows::{
    self, APPROVAL_COLS, EVENT_COLS, INCIDENT_COLS, INCIDENT_FROM, STEP_COLS, TASK_COLS,
};
use super::*;
use crate::engine::Entry;
use crate::timeline::{self, GENESIS};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "human_tasks",
        include_str!("../../migrations/sqlite/0002_human_tasks.sql"),
    ),
    (
        3,
        "sbom_index",
        include_str!("../../migrations/sqlite/0003_sbom_index.sql"),
    ),
    (
        4,
        "slack",
        include_str!("../../migrations/sqlite/0004_slack.sql"),
    ),
    (
        5,
        "fencing",
        include_str!("../../migrations/sqlite/0005_fencing.sql"),
    ),
];

/// Rows per multi-row INSERT (15 columns x 64 rows stays far below SQLite's variable limit).
const ROWS_PER_STATEMENT: usize = 64;

pub struct SqliteStore {
    pool: SqlitePool,
    /// Write transactions committed by [`Store::commit`] (for metrics and the benchmark).
    commits: std::sync::atomic::AtomicU64,
}

fn to_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Url(url.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        let store = Self {
            pool,
            commits: std::sync::atomic::AtomicU64::new(0),
        };
        store.check_durability().await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Read the pragmas back: a store that silently runs with weaker durability is a bug.
    async fn check_durability(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?;
        if sync != 2 {
            return Err(StoreError::Durability(format!(
                "PRAGMA synchronous is {sync}, expected 2 (FULL)"
            )));
        }
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            return Err(StoreError::Durability(format!(
                "journal_mode is {mode}, expected wal"
            )));
        }
        Ok(())
    }

    pub async fn synchronous(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&self.pool)
            .await?)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn commit_count(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Apply pending migrations, each in its own immediate transaction; the version table is
    /// checked inside the transaction so two processes starting at once apply each only once.
    async fn migrate(&self) -> Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for (version, name, sql) in MIGRATIONS {
            let mut tx = self.begin().await?;
            let done: Option<String> =
                sqlx::query_scalar("SELECT checksum FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            let checksum = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(sql.as_bytes()));
            match done {
                Some(c) if c == checksum => continue,
                Some(_) => {
                    return Err(StoreError::Migration {
                        version: *version,
                        name: name.to_string(),
                        detail: "applied migration was edited after it shipped".into(),
                    });
                }
                None => {}
            }
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Migration {
                    version: *version,
                    name: name.to_string(),
                    detail: e.to_string(),
                })?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(version)
            .bind(name)
            .bind(&checksum)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn write_commit(tx: &mut Transaction<'static, Sqlite>, c: Prepared) -> Result<()> {
        let id = c.incident;
        if let Some((owner, epoch)) = &c.fence {
            // The incident row is already locked by this transaction, so the check holds
            // until the commit: a process that lost the lease cannot record anything.
            let row = sqlx::query("SELECT lease_owner, lease_epoch FROM incidents WHERE id = $1")
                .bind(&id)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(id.clone()))?;
            let cur: Option<String> = row.try_get("lease_owner")?;
            let cur_epoch: i64 = row.try_get("lease_epoch")?;
            if cur.as_deref() != Some(owner.as_str()) || cur_epoch != *epoch {
                return Err(StoreError::Fenced(id));
            }
        }
        if let Some((status, finished_at)) = &c.status {
            sqlx::query(
                "UPDATE incidents SET status = $2, updated_at = $3, finished_at = $4 WHERE id = $1",
            )
            .bind(&id)
            .bind(status)
            .bind(c.now)
            .bind(finished_at)
            .execute(&mut **tx)
            .await?;
        }
        for s in c.steps {
            sqlx::query(
                "INSERT INTO steps (incident_id, step_id, status, fanout, outputs_json, error, started_at, finished_at, approval_deadline)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (incident_id, step_id) DO UPDATE SET status = excluded.status, fanout = excluded.fanout,
                   outputs_json = excluded.outputs_json, error = excluded.error, started_at = excluded.started_at,
                   finished_at = excluded.finished_at, approval_deadline = excluded.approval_deadline",
            )
            .bind(&id)
            .bind(s.step_id)
            .bind(s.status)
            .bind(s.fanout)
            .bind(to_json(&s.outputs))
            .bind(s.error)
            .bind(s.started_at)
            .bind(s.finished_at)
            .bind(s.approval_deadline)
            .execute(&mut **tx)
            .await?;
        }
        // Multi-row statements: one round trip to SQLite's worker thread per 64 rows, not
        // per row, is most of what makes a large group commit cheap.
        let mut new = c.new_tasks;
        while !new.is_empty() {
            let chunk: Vec<TaskRow> = new.drain(..new.len().min(ROWS_PER_STATEMENT)).collect();
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO tasks (incident_id, step_id, item_index, item_json, status, attempt, inputs_json, idem_key, outputs_json, error, next_run_at, needs_probe, started_at, finished_at, human) ",
            );
            q.push_values(chunk, |mut b, t| {
                b.push_bind(id.clone())
                    .push_bind(t.step_id)
                    .push_bind(t.item_index)
                    .push_bind(t.item_json)
                    .push_bind(t.status)
                    .push_bind(t.attempt)
                    .push_bind(t.inputs_json)
                    .push_bind(t.idem_key)
                    .push_bind(t.outputs_json)
                    .push_bind(t.error)
                    .push_bind(t.next_run_at)
                    .push_bind(t.needs_probe)
                    .push_bind(t.started_at)
                    .push_bind(t.finished_at)
                    .push_bind(t.human);
            });
            q.build().execute(&mut **tx).await?;
        }
        // Item, inputs and idempotency key never change after a task is created: later
        // transitions update only the columns that move (UPDATE … FROM VALUES, in SQLite
        // since 3.33 and in Postgres alike).
        let mut changed = c.changed_tasks;
        while !changed.is_empty() {
            let chunk: Vec<TaskRow> = changed
                .drain(..changed.len().min(ROWS_PER_STATEMENT))
                .collect();
            let n = chunk.len() as u64;
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "UPDATE tasks SET status = v.column4, attempt = v.column5, outputs_json = v.column6, error = v.column7,
                   next_run_at = v.column8, needs_probe = v.column9, started_at = v.column10, finished_at = v.column11,
                   human = v.column12 FROM (",
            );
            q.push_values(chunk, |mut b, t| {
                b.push_bind(id.clone())
                    .push_bind(t.step_id)
                    .push_bind(t.item_index)
                    .push_bind(t.status)
                    .push_bind(t.attempt)
                    .push_bind(t.outputs_json)
                    .push_bind(t.error)
                    .push_bind(t.next_run_at)
                    .push_bind(t.needs_probe)
                    .push_bind(t.started_at)
                    .push_bind(t.finished_at)
                    .push_bind(t.human);
            });
            q.push(
                ") AS v WHERE tasks.incident_id = v.column1 AND tasks.step_id = v.column2 AND tasks.item_index = v.column3",
            );
            let done = q.build().execute(&mut **tx).await?.rows_affected();
            if done != n {
                return Err(StoreError::Corrupt {
                    table: "tasks",
                    detail: format!("{done} of {n} task rows to update exist"),
                });
            }
        }
        for a in c.approvals {
            sqlx::query(
                "INSERT INTO approvals (incident_id, step_id, actor, decision, target, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(a.step_id)
            .bind(a.approval.actor)
            .bind(a.approval.decision.as_str())
            .bind(a.approval.target)
            .bind(a.approval.reason)
            .bind(a.approval.at)
            .execute(&mut **tx)
            .await?;
        }
        for inbox in c.consumed_inbox {
            sqlx::query("UPDATE inbox SET consumed_at = $2 WHERE id = $1")
                .bind(inbox)
                .bind(c.now)
                .execute(&mut **tx)
                .await?;
        }
        Self::append_in(tx, &id, c.entries).await
    }

    /// Append entries to the chain inside the caller's write transaction: the head is read
    /// under the write lock, so the chain cannot fork.
    async fn append_in(
        tx: &mut Transaction<'static, Sqlite>,
        id: &str,
        entries: Vec<PreparedEntry>,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let row =
            sqlx::query("SELECT head_seq, head_hash FROM timeline_heads WHERE incident_id = $1")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let mut seq: i64 = row.try_get("head_seq")?;
        let mut prev: String = row.try_get("head_hash")?;
        let mut rows = Vec::with_capacity(entries.len());
        for e in entries {
            seq += 1;
            let hash = timeline::chain_hash(
                &prev,
                &timeline::Fields {
                    incident: id,
                    seq,
                    at: e.at,
                    actor: &e.actor,
                    kind: &e.kind,
                    step: e.step.as_deref(),
                    index: e.index,
                    summary: &e.summary,
                    data_json: &e.data_json,
                },
            );
            let prev_hash = std::mem::replace(&mut prev, hash.clone());
            rows.push((seq, e, prev_hash, hash));
        }
        while !rows.is_empty() {
            let chunk: Vec<_> = rows.drain(..rows.len().min(ROWS_PER_STATEMENT)).collect();
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO events (incident_id, seq, at, actor, kind, step_id, item_index, summary, data_json, prev_hash, hash) ",
            );
            q.push_values(chunk, |mut b, (seq, e, prev_hash, hash)| {
                b.push_bind(id.to_string())
                    .push_bind(seq)
                    .push_bind(e.at)
                    .push_bind(e.actor)
                    .push_bind(e.kind)
                    .push_bind(e.step)
                    .push_bind(e.index.map(i64::from))
                    .push_bind(e.summary)
                    .push_bind(e.data_json)
                    .push_bind(prev_hash)
                    .push_bind(hash);
            });
            q.build().execute(&mut **tx).await?;
        }
        sqlx::query(
            "UPDATE timeline_heads SET head_seq = $2, head_hash = $3 WHERE incident_id = $1",
        )
        .bind(id)
        .bind(seq)
        .bind(&prev)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_incident(&self, inc: NewIncident, first: Prepared) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO incidents (id, playbook_name, playbook_sha256, playbook_source, playbook_file, params_json, mode, status, auto_approve, started_by, created_at, updated_at, lease_owner, lease_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13)",
        )
        .bind(&inc.id)
        .bind(inc.playbook_name)
        .bind(inc.playbook_sha256)
        .bind(inc.playbook_source)
        .bind(inc.playbook_file)
        .bind(inc.params_json)
        .bind(inc.mode)
        .bind(inc.status)
        .bind(inc.auto_approve)
        .bind(inc.started_by)
        .bind(inc.created_at)
        .bind(inc.lease_owner)
        .bind(inc.lease_until)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO timeline_heads (incident_id, head_seq, head_hash) VALUES ($1, 0, $2)",
        )
        .bind(&inc.id)
        .bind(GENESIS)
        .execute(&mut *tx)
        .await?;
        Self::write_commit(&mut tx, first).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn commit(&self, batch: Vec<Prepared>) -> Result<()> {
        if batch.iter().all(Prepared::is_empty) {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for c in batch {
            Self::write_commit(&mut tx, c).await?;
        }
        tx.commit().await?;
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn load(&self, id: &str) -> Result<Option<StoredRun>> {
        let Some(incident) = self.incident(id).await? else {
            return Ok(None);
        };
        let steps = sqlx::query(&format!(
            "SELECT {STEP_COLS} FROM steps WHERE incident_id = $1"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::step)
        .collect::<Result<Vec<_>>>()?;
        let tasks = sqlx::query(&format!(
            "SELECT {TASK_COLS} FROM tasks WHERE incident_id = $1 ORDER BY step_id, item_index"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::task)
        .collect::<Result<Vec<_>>>()?;
        let approvals = sqlx::query(&format!(
            "SELECT {APPROVAL_COLS} FROM approvals WHERE incident_id = $1 ORDER BY at"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::approval)
        .collect::<Result<Vec<_>>>()?;
        Ok(Some(StoredRun {
            incident,
            steps,
            tasks,
            approvals,
        }))
    }

    async fn incident(&self, id: &str) -> Result<Option<IncidentRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {INCIDENT_COLS} FROM {INCIDENT_FROM} WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::incident).transpose()
    }

    async fn list(&self) -> Result<Vec<IncidentRecord>> {
        sqlx::query(&format!(
            "SELECT {INCIDENT_COLS} FROM {INCIDENT_FROM} ORDER BY created_at DESC, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::incident)
        .collect()
    }

    async fn unfinished(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM incidents WHERE status IN ('running', 'waiting') ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn events(&self, id: &str) -> Result<Vec<timeline::Event>> {
        sqlx::query(&format!(
            "SELECT {EVENT_COLS} FROM events WHERE incident_id = $1 ORDER BY seq"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::event)
        .collect()
    }

    async fn append(&self, id: &str, entries: Vec<Entry>) -> Result<()> {
        let mut tx = self.begin().await?;
        let entries = entries.into_iter().map(PreparedEntry::from_entry).collect();
        Self::append_in(&mut tx, id, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn push_inbox(&self, id: &str, kind: &str, payload: &Value, now: i64) -> Result<i64> {
        let mut tx = self.begin().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM incidents WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let rid: i64 = sqlx::query_scalar(
            "INSERT INTO inbox (incident_id, kind, payload_json, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(id)
        .bind(kind)
        .bind(to_json(payload))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rid)
    }

    async fn pending_inbox(&self, id: &str) -> Result<Vec<InboxItem>> {
        sqlx::query("SELECT id, kind, payload_json FROM inbox WHERE incident_id = $1 AND consumed_at IS NULL ORDER BY id")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::inbox)
            .collect()
    }

    async fn acquire_lease(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        ttl_ms: i64,
        alive: &(dyn for<'s> Fn(&'s str) -> bool + Send + Sync),
    ) -> Result<Option<i64>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT lease_owner, lease_until, lease_epoch FROM incidents WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let cur: Option<String> = row.try_get("lease_owner")?;
        let until: Option<i64> = row.try_get("lease_until")?;
        let epoch: i64 = row.try_get("lease_epoch")?;
        let renew = cur.as_deref() == Some(owner);
        let free = match (&cur, until) {
            (None, _) => true,
            (Some(_), _) if renew => true,
            (Some(_), Some(u)) if u < now => true,
            (Some(o), _) => !alive(o),
        };
        if !free {
            tx.commit().await?;
            return Ok(None);
        }
        // A renewal keeps the epoch; any change of hands (even after a release) moves it.
        let epoch = if renew { epoch } else { epoch + 1 };
        sqlx::query(
            "UPDATE incidents SET lease_owner = $2, lease_until = $3, lease_epoch = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(owner)
        .bind(now + ttl_ms)
        .bind(epoch)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(epoch))
    }

    async fn lease_holds(
        &self,
        id: &str,
        owner: &str,
        epoch: i64,
        now: i64,
        margin_ms: i64,
    ) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM incidents WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3 AND lease_until >= $4",
        )
        .bind(id)
        .bind(owner)
        .bind(epoch)
        .bind(now + margin_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(n == 1)
    }

    async fn acquire_named_lease(
        &self,
        name: &str,
        owner: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "INSERT INTO leases (name, owner, epoch, until_ms) VALUES ($1, $2, 1, $3)
             ON CONFLICT (name) DO UPDATE SET
               epoch = leases.epoch + (CASE WHEN leases.owner = excluded.owner THEN 0 ELSE 1 END),
               owner = excluded.owner, until_ms = excluded.until_ms
             WHERE leases.owner = excluded.owner OR leases.until_ms < $4",
        )
        .bind(name)
        .bind(owner)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn release_lease(&self, id: &str, owner: &str) -> Result<()> {
        sqlx::query("UPDATE incidents SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn put_artifact(&self, id: &str, name: &str, content: &str, now: i64) -> Result<()> {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content.as_bytes()));
        sqlx::query(
            "INSERT INTO artifacts (incident_id, name, content, sha256, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (incident_id, name) DO UPDATE SET content = excluded.content, sha256 = excluded.sha256, created_at = excluded.created_at",
        )
        .bind(id)
        .bind(name)
        .bind(content)
        .bind(sha)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn artifact(&self, id: &str, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar(
                "SELECT content FROM artifacts WHERE incident_id = $1 AND name = $2",
            )
            .bind(id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?,
        )
    }
}
