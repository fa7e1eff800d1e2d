//! Postgres: the same tables and behaviour as [`SqliteStore`](super::SqliteStore), for
//! several Recall processes (and hosts) sharing one database. See `docs/postgres.md`.
//!
//! - Every write is one transaction. Where SQLite serialises writers with `BEGIN IMMEDIATE`,
//!   a write here first locks the rows of the incidents it touches (`FOR NO KEY UPDATE`, in
//!   id order, so two group commits cannot deadlock), then reads the timeline head: the
//!   hash chain cannot fork across processes.
//! - A lease is renewed with a compare-and-set `UPDATE` on (owner, epoch) and claimed with
//!   `SELECT … FOR UPDATE SKIP LOCKED` then `UPDATE`, so a claimer never waits behind an
//!   incident another process is writing; the epoch moves on every change of hands.
//! - Migrations run under `pg_advisory_xact_lock(MIGRATION_LOCK)` and the recorded versions
//!   are verified afterwards, so any number of processes may start at once.
//! - Durability is the server's: `synchronous_commit` and `fsync` are read back at open and
//!   the store refuses to start when either is `off`.
//! - Runtime queries only (`sqlx::query` with binds); multi-row writes are one statement
//!   each over `UNNEST` of array parameters.

mod sbom;
mod slack;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Row, Transaction};

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
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "human_tasks",
        include_str!("../../migrations/postgres/0002_human_tasks.sql"),
    ),
    (
        3,
        "sbom_index",
        include_str!("../../migrations/postgres/0003_sbom_index.sql"),
    ),
    (
        4,
        "slack",
        include_str!("../../migrations/postgres/0004_slack.sql"),
    ),
    (
        5,
        "fencing",
        include_str!("../../migrations/postgres/0005_fencing.sql"),
    ),
];

/// `pg_advisory_xact_lock` key held while migrations are checked and applied ("recall" in
/// ASCII, then 1). Every process opening the database takes it, one after the other.
pub const MIGRATION_LOCK: i64 = 0x7265_6361_6c6c_0001;
/// Held by SBOM interning and document inserts: document ids are `MAX(id) + 1` ranges.
pub const SBOM_LOCK: i64 = 0x7265_6361_6c6c_0002;

/// The database's clock in epoch milliseconds: every lease decision uses it, so replicas
/// whose own clocks disagree still agree on who holds a lease.
const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// Pool size when the URL has no `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;
/// Server-side limit on any one statement, unless the URL says otherwise.
pub const DEFAULT_STATEMENT_TIMEOUT: &str = "60s";
/// How long `open` waits for the first connection, unless the URL says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT_S: u64 = 10;

pub struct PostgresStore {
    pool: PgPool,
    /// Write transactions committed by [`Store::commit`] (for metrics and the benchmark).
    commits: std::sync::atomic::AtomicU64,
}

fn to_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Postgres `TEXT` cannot hold NUL (SQLite can). Free text that may come from the outside
/// world (summaries, error messages, reasons, documents) has NUL replaced by U+FFFD before
/// it is stored — for timeline events before the hash is computed, so the chain covers
/// exactly what is stored. JSON text never contains a raw NUL (serde escapes it).
fn nul_free(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn nul_free_owned(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

/// The URL with any password (in the userinfo or a `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let secret = k.to_ascii_lowercase().contains("password");
                    (
                        k.into_owned(),
                        if secret { "***".into() } else { v.into_owned() },
                    )
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        // Not a URL: keep the scheme and what follows the last `@`.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
            _ if url.contains('@') || url.contains("password") => "<unparseable URL>".into(),
            _ => url.to_string(),
        },
    }
}

/// What `open` reads from a `postgres://` URL. Recall's own parameters are removed before
/// the rest goes to the driver (`sslmode`, `application_name`, `options`, … pass through).
#[derive(Debug)]
struct Settings {
    options: PgConnectOptions,
    max_connections: u32,
    connect_timeout: Duration,
    /// The redacted URL, for error messages.
    target: String,
}

fn settings(url: &str) -> Result<Settings> {
    let target = redact_url(url);
    let bad = |detail: String| StoreError::Open {
        target: target.clone(),
        detail,
    };
    let mut u = url::Url::parse(url).map_err(|_| StoreError::Url(target.clone()))?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return Err(StoreError::Url(target.clone()));
    }
    let mut max_connections = DEFAULT_MAX_CONNECTIONS;
    let mut connect_timeout = Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_S);
    let mut statement_timeout = DEFAULT_STATEMENT_TIMEOUT.to_string();
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "max_connections" => {
                max_connections = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "max_connections `{v}`: expected a number from 1 to 1000"
                        ))
                    })?;
            }
            "connect_timeout" => {
                let s: u64 = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    bad(format!(
                        "connect_timeout `{v}`: expected a number of seconds"
                    ))
                })?;
                connect_timeout = Duration::from_secs(s);
            }
            "statement_timeout" => {
                if v.is_empty()
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '.')
                {
                    return Err(bad(format!(
                        "statement_timeout `{v}`: expected a Postgres duration such as 60s or 0 (no limit)"
                    )));
                }
                statement_timeout = v.into_owned();
            }
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    let has_app_name = kept.iter().any(|(k, _)| k == "application_name");
    if kept.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(&kept);
    }
    let mut options = PgConnectOptions::from_str(u.as_str())
        .map_err(|e| {
            bad(format!(
                "not a Postgres URL: {}",
                redact_error(&e.to_string(), url)
            ))
        })?
        .options([("statement_timeout", statement_timeout.as_str())]);
    if !has_app_name {
        options = options.application_name("recall");
    }
    Ok(Settings {
        options,
        max_connections,
        connect_timeout,
        target,
    })
}

/// Removes the URL's password from a driver message, should one ever quote it.
fn redact_error(msg: &str, url: &str) -> String {
    let mut out = msg.to_string();
    if let Ok(u) = url::Url::parse(url) {
        if let Some(p) = u.password().filter(|p| !p.is_empty()) {
            out = out.replace(p, "***");
            if let Ok(decoded) = percent_encoding::percent_decode_str(p).decode_utf8() {
                out = out.replace(decoded.as_ref(), "***");
            }
        }
        for (k, v) in u.query_pairs() {
            if k.to_ascii_lowercase().contains("password") && !v.is_empty() {
                out = out.replace(v.as_ref(), "***");
            }
        }
    }
    out
}

/// A connection failure in words: which server, which user, which database, and why.
fn describe_connect_error(e: &sqlx::Error, o: &PgConnectOptions) -> String {
    let server = match o.get_socket() {
        Some(s) => format!("socket {}", s.display()),
        None => format!("{}:{}", o.get_host(), o.get_port()),
    };
    let user = o.get_username();
    let db = o.get_database().unwrap_or(user);
    match e {
        sqlx::Error::Io(io) => format!(
            "cannot reach the Postgres server at {server}: {io} (is it running and listening there?)"
        ),
        sqlx::Error::Tls(t) => format!("TLS with the server at {server} failed: {t}"),
        sqlx::Error::Database(d) => {
            let code = d.code().map(|c| c.to_string()).unwrap_or_default();
            let what = match code.as_str() {
                "28P01" => format!("authentication failed for user `{user}` (wrong password)"),
                "28000" => format!("the server refused user `{user}`"),
                "3D000" => format!("database `{db}` does not exist"),
                "53300" => "the server has too many connections".to_string(),
                "57P03" => "the server is starting up or shutting down".to_string(),
                "22023" | "42704" => "a connection parameter was refused".to_string(),
                _ => "the server refused the connection".to_string(),
            };
            format!("{what} at {server}: {} (SQLSTATE {code})", d.message())
        }
        other => format!("connecting to {server} as `{user}`: {other}"),
    }
}

impl PostgresStore {
    /// Connects (one connection first, so a refused or unauthenticated connection is
    /// reported as such rather than as a pool timeout), checks durability, applies
    /// migrations, then opens the pool lazily.
    pub async fn open(url: &str) -> Result<Self> {
        let s = settings(url)?;
        let fail = |detail: String| StoreError::Open {
            target: s.target.clone(),
            detail: redact_error(&detail, url),
        };
        let mut conn =
            match tokio::time::timeout(s.connect_timeout, PgConnection::connect_with(&s.options))
                .await
            {
                Err(_) => {
                    return Err(fail(format!(
                        "no answer from {}:{} within {}s",
                        s.options.get_host(),
                        s.options.get_port(),
                        s.connect_timeout.as_secs()
                    )));
                }
                Ok(Err(e)) => return Err(fail(describe_connect_error(&e, &s.options))),
                Ok(Ok(c)) => c,
            };
        let prepared = async {
            check_durability(&mut conn).await?;
            migrate(&mut conn).await
        }
        .await;
        let _ = conn.close().await;
        prepared?;
        let pool = PgPoolOptions::new()
            .max_connections(s.max_connections)
            .min_connections(0)
            .acquire_timeout(s.connect_timeout.max(Duration::from_secs(30)))
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(s.options);
        Ok(Self {
            pool,
            commits: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The server's `synchronous_commit` as this store's connections see it.
    pub async fn synchronous_commit(&self) -> Result<String> {
        Ok(
            sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn commit_count(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Locks the incident rows a write is about to change, in one order for every writer
    /// (so two group commits over the same incidents wait, never deadlock). The row of an
    /// incident is the Postgres counterpart of SQLite's database-wide write lock.
    async fn lock_incidents(tx: &mut Transaction<'static, Postgres>, ids: &[&str]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<&str> = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        sqlx::query(
            "SELECT id FROM incidents WHERE id = ANY($1::text[]) ORDER BY id COLLATE \"C\" FOR NO KEY UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        Ok(())
    }

    async fn write_commit(tx: &mut Transaction<'static, Postgres>, c: Prepared) -> Result<()> {
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
        if !c.steps.is_empty() {
            // One upsert statement cannot touch a row twice: keep each step's last record,
            // which is what row-by-row upserts leave behind.
            let mut steps = c.steps;
            let mut seen = std::collections::HashSet::new();
            steps.reverse();
            steps.retain(|s| seen.insert(s.step_id.clone()));
            steps.reverse();
            let n = steps.len();
            let (mut sid, mut status, mut fanout, mut outputs, mut error) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut started, mut finished, mut deadline) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for s in steps {
                outputs.push(to_json(&s.outputs));
                sid.push(s.step_id);
                status.push(s.status);
                fanout.push(s.fanout);
                error.push(s.error.map(nul_free_owned));
                started.push(s.started_at);
                finished.push(s.finished_at);
                deadline.push(s.approval_deadline);
            }
            sqlx::query(
                "INSERT INTO steps (incident_id, step_id, status, fanout, outputs_json, error, started_at, finished_at, approval_deadline)
                 SELECT $1::text, u.* FROM UNNEST($2::text[], $3::text[], $4::bool[], $5::text[], $6::text[], $7::int8[], $8::int8[], $9::int8[]) AS u
                 ON CONFLICT (incident_id, step_id) DO UPDATE SET status = excluded.status, fanout = excluded.fanout,
                   outputs_json = excluded.outputs_json, error = excluded.error, started_at = excluded.started_at,
                   finished_at = excluded.finished_at, approval_deadline = excluded.approval_deadline",
            )
            .bind(&id)
            .bind(sid)
            .bind(status)
            .bind(fanout)
            .bind(outputs)
            .bind(error)
            .bind(started)
            .bind(finished)
            .bind(deadline)
            .execute(&mut **tx)
            .await?;
        }
        if !c.new_tasks.is_empty() {
            let t = TaskColumns::from(c.new_tasks);
            sqlx::query(
                "INSERT INTO tasks (incident_id, step_id, item_index, item_json, status, attempt, inputs_json, idem_key, outputs_json, error, next_run_at, needs_probe, started_at, finished_at, human)
                 SELECT $1::text, u.* FROM UNNEST($2::text[], $3::int8[], $4::text[], $5::text[], $6::int8[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[], $12::bool[], $13::int8[], $14::int8[], $15::bool[]) AS u",
            )
            .bind(&id)
            .bind(t.step_id)
            .bind(t.item_index)
            .bind(t.item_json)
            .bind(t.status)
            .bind(t.attempt)
            .bind(t.inputs_json)
            .bind(t.idem_key)
            .bind(t.outputs_json)
            .bind(t.error)
            .bind(t.next_run_at)
            .bind(t.needs_probe)
            .bind(t.started_at)
            .bind(t.finished_at)
            .bind(t.human)
            .execute(&mut **tx)
            .await?;
        }
        // Item, inputs and idempotency key never change after a task is created: later
        // transitions update only the columns that move.
        if !c.changed_tasks.is_empty() {
            let n = c.changed_tasks.len() as u64;
            let t = TaskColumns::from(c.changed_tasks);
            let done = sqlx::query(
                "UPDATE tasks SET status = v.status, attempt = v.attempt, outputs_json = v.outputs_json, error = v.error,
                   next_run_at = v.next_run_at, needs_probe = v.needs_probe, started_at = v.started_at,
                   finished_at = v.finished_at, human = v.human
                 FROM UNNEST($2::text[], $3::int8[], $4::text[], $5::int8[], $6::text[], $7::text[], $8::int8[], $9::bool[], $10::int8[], $11::int8[], $12::bool[])
                   AS v(step_id, item_index, status, attempt, outputs_json, error, next_run_at, needs_probe, started_at, finished_at, human)
                 WHERE tasks.incident_id = $1 AND tasks.step_id = v.step_id AND tasks.item_index = v.item_index",
            )
            .bind(&id)
            .bind(t.step_id)
            .bind(t.item_index)
            .bind(t.status)
            .bind(t.attempt)
            .bind(t.outputs_json)
            .bind(t.error)
            .bind(t.next_run_at)
            .bind(t.needs_probe)
            .bind(t.started_at)
            .bind(t.finished_at)
            .bind(t.human)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if done != n {
                return Err(StoreError::Corrupt {
                    table: "tasks",
                    detail: format!("{done} of {n} task rows to update exist"),
                });
            }
        }
        if !c.approvals.is_empty() {
            let n = c.approvals.len();
            let (mut step, mut actor, mut decision, mut target, mut reason, mut at) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for a in c.approvals {
                step.push(a.step_id);
                actor.push(nul_free_owned(a.approval.actor));
                decision.push(a.approval.decision.as_str().to_string());
                target.push(a.approval.target);
                reason.push(nul_free_owned(a.approval.reason));
                at.push(a.approval.at);
            }
            sqlx::query(
                "INSERT INTO approvals (incident_id, step_id, actor, decision, target, reason, at)
                 SELECT $1::text, u.* FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[]) AS u",
            )
            .bind(&id)
            .bind(step)
            .bind(actor)
            .bind(decision)
            .bind(target)
            .bind(reason)
            .bind(at)
            .execute(&mut **tx)
            .await?;
        }
        if !c.consumed_inbox.is_empty() {
            sqlx::query("UPDATE inbox SET consumed_at = $2 WHERE id = ANY($1::int8[])")
                .bind(&c.consumed_inbox)
                .bind(c.now)
                .execute(&mut **tx)
                .await?;
        }
        Self::append_in(tx, &id, c.entries).await
    }

    /// Append entries to the chain inside the caller's write transaction. The caller holds
    /// the incident's row lock, and the head row is locked too, so the chain cannot fork.
    async fn append_in(
        tx: &mut Transaction<'static, Postgres>,
        id: &str,
        entries: Vec<PreparedEntry>,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let row = sqlx::query(
            "SELECT head_seq, head_hash FROM timeline_heads WHERE incident_id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let mut seq: i64 = row.try_get("head_seq")?;
        let mut prev: String = row.try_get("head_hash")?;
        let n = entries.len();
        let mut cols = EventColumns::with_capacity(n);
        for e in entries {
            seq += 1;
            let actor = nul_free_owned(e.actor);
            let kind = nul_free_owned(e.kind);
            let step = e.step.map(nul_free_owned);
            let summary = nul_free_owned(e.summary);
            let data_json = nul_free_owned(e.data_json);
            let hash = timeline::chain_hash(
                &prev,
                &timeline::Fields {
                    incident: id,
                    seq,
                    at: e.at,
                    actor: &actor,
                    kind: &kind,
                    step: step.as_deref(),
                    index: e.index,
                    summary: &summary,
                    data_json: &data_json,
                },
            );
            let prev_hash = std::mem::replace(&mut prev, hash.clone());
            cols.seq.push(seq);
            cols.at.push(e.at);
            cols.actor.push(actor);
            cols.kind.push(kind);
            cols.step.push(step);
            cols.index.push(e.index.map(i64::from));
            cols.summary.push(summary);
            cols.data_json.push(data_json);
            cols.prev_hash.push(prev_hash);
            cols.hash.push(hash);
        }
        sqlx::query(
            "INSERT INTO events (incident_id, seq, at, actor, kind, step_id, item_index, summary, data_json, prev_hash, hash)
             SELECT $1::text, u.* FROM UNNEST($2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::int8[], $8::text[], $9::text[], $10::text[], $11::text[]) AS u",
        )
        .bind(id)
        .bind(cols.seq)
        .bind(cols.at)
        .bind(cols.actor)
        .bind(cols.kind)
        .bind(cols.step)
        .bind(cols.index)
        .bind(cols.summary)
        .bind(cols.data_json)
        .bind(cols.prev_hash)
        .bind(cols.hash)
        .execute(&mut **tx)
        .await?;
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

/// Task rows as one array per column, for `UNNEST`.
#[derive(Default)]
struct TaskColumns {
    step_id: Vec<String>,
    item_index: Vec<i64>,
    item_json: Vec<String>,
    status: Vec<String>,
    attempt: Vec<i64>,
    inputs_json: Vec<String>,
    idem_key: Vec<String>,
    outputs_json: Vec<String>,
    error: Vec<Option<String>>,
    next_run_at: Vec<Option<i64>>,
    needs_probe: Vec<bool>,
    started_at: Vec<Option<i64>>,
    finished_at: Vec<Option<i64>>,
    human: Vec<bool>,
}

impl From<Vec<TaskRow>> for TaskColumns {
    fn from(rows: Vec<TaskRow>) -> Self {
        let mut c = TaskColumns::default();
        for t in rows {
            c.step_id.push(t.step_id);
            c.item_index.push(t.item_index);
            c.item_json.push(t.item_json);
            c.status.push(t.status.to_string());
            c.attempt.push(t.attempt);
            c.inputs_json.push(t.inputs_json);
            c.idem_key.push(t.idem_key);
            c.outputs_json.push(t.outputs_json);
            c.error.push(t.error.map(nul_free_owned));
            c.next_run_at.push(t.next_run_at);
            c.needs_probe.push(t.needs_probe);
            c.started_at.push(t.started_at);
            c.finished_at.push(t.finished_at);
            c.human.push(t.human);
        }
        c
    }
}

struct EventColumns {
    seq: Vec<i64>,
    at: Vec<i64>,
    actor: Vec<String>,
    kind: Vec<String>,
    step: Vec<Option<String>>,
    index: Vec<Option<i64>>,
    summary: Vec<String>,
    data_json: Vec<String>,
    prev_hash: Vec<String>,
    hash: Vec<String>,
}

impl EventColumns {
    fn with_capacity(n: usize) -> Self {
        Self {
            seq: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            actor: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            step: Vec::with_capacity(n),
            index: Vec::with_capacity(n),
            summary: Vec::with_capacity(n),
            data_json: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
        }
    }
}

/// `synchronous_commit = off` acknowledges commits before they are on disk (a crash loses
/// the last ones); `fsync = off` may corrupt the cluster. Either breaks "intent before
/// effect", so the store refuses to run, as the SQLite store does for `synchronous != FULL`.
async fn check_durability(conn: &mut PgConnection) -> Result<()> {
    let row = sqlx::query(
        "SELECT current_setting('synchronous_commit') AS sync, current_setting('fsync') AS fsync",
    )
    .fetch_one(&mut *conn)
    .await?;
    let sync: String = row.try_get("sync")?;
    let fsync: String = row.try_get("fsync")?;
    if sync.eq_ignore_ascii_case("off") {
        return Err(StoreError::Durability(
            "Postgres synchronous_commit is off, expected on (commits could be acknowledged before they are durable)".into(),
        ));
    }
    if fsync.eq_ignore_ascii_case("off") {
        return Err(StoreError::Durability(
            "Postgres fsync is off on the server, expected on".into(),
        ));
    }
    Ok(())
}

/// Apply pending migrations in one transaction holding `pg_advisory_xact_lock`: processes
/// starting at once queue on the lock and find the work done. Afterwards every known
/// version must be recorded with its checksum.
async fn migrate(conn: &mut PgConnection) -> Result<()> {
    let checksum = |sql: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(sql.as_bytes()));
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let done: std::collections::HashMap<i64, String> =
        sqlx::query("SELECT version, checksum FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_>>()?;
    for (version, name, sql) in MIGRATIONS {
        let sum = checksum(sql);
        match done.get(version) {
            Some(c) if *c == sum => continue,
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
        .bind(&sum)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    // Verify what is recorded now (a concurrent process may have done the work).
    let recorded: std::collections::HashMap<i64, String> =
        sqlx::query("SELECT version, checksum FROM schema_migrations")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_>>()?;
    for (version, name, sql) in MIGRATIONS {
        if recorded.get(version) != Some(&checksum(sql)) {
            return Err(StoreError::Migration {
                version: *version,
                name: name.to_string(),
                detail: "not recorded with its checksum after migrating".into(),
            });
        }
    }
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
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
        // The first transition may name other incidents (it never does in the runner).
        if first.incident != inc.id {
            Self::lock_incidents(&mut tx, &[first.incident.as_str()]).await?;
        }
        Self::write_commit(&mut tx, first).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn commit(&self, batch: Vec<Prepared>) -> Result<()> {
        if batch.iter().all(Prepared::is_empty) {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let ids: Vec<&str> = batch
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| c.incident.as_str())
            .collect();
        Self::lock_incidents(&mut tx, &ids).await?;
        for c in batch {
            Self::write_commit(&mut tx, c).await?;
        }
        tx.commit().await?;
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn load(&self, id: &str) -> Result<Option<StoredRun>> {
        // One snapshot for the incident and all its rows.
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let Some(row) = sqlx::query(&format!(
            "SELECT {INCIDENT_COLS} FROM {INCIDENT_FROM} WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let incident = rows::incident(&row)?;
        let steps = sqlx::query(&format!(
            "SELECT {STEP_COLS} FROM steps WHERE incident_id = $1"
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(rows::step)
        .collect::<Result<Vec<_>>>()?;
        let tasks = sqlx::query(&format!("SELECT {TASK_COLS} FROM tasks WHERE incident_id = $1 ORDER BY step_id COLLATE \"C\", item_index"))
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(rows::task)
            .collect::<Result<Vec<_>>>()?;
        let approvals = sqlx::query(&format!("SELECT {APPROVAL_COLS} FROM approvals WHERE incident_id = $1 ORDER BY at, step_id COLLATE \"C\", actor COLLATE \"C\""))
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(rows::approval)
            .collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
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
            "SELECT {INCIDENT_COLS} FROM {INCIDENT_FROM} ORDER BY created_at DESC, id COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rows::incident)
        .collect()
    }

    async fn unfinished(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM incidents WHERE status IN ('running', 'waiting') ORDER BY created_at, id COLLATE \"C\"",
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
        Self::lock_incidents(&mut tx, &[id]).await?;
        let entries = entries.into_iter().map(PreparedEntry::from_entry).collect();
        Self::append_in(&mut tx, id, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn push_inbox(&self, id: &str, kind: &str, payload: &Value, now: i64) -> Result<i64> {
        // One statement: the existence check and the insert are atomic.
        let rid: Option<i64> = sqlx::query_scalar(
            "INSERT INTO inbox (incident_id, kind, payload_json, created_at)
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM incidents WHERE id = $1)
             RETURNING id",
        )
        .bind(id)
        .bind(nul_free(kind).as_ref())
        .bind(to_json(payload))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        rid.ok_or_else(|| StoreError::NotFound(id.to_string()))
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
        _now: i64,
        ttl_ms: i64,
        alive: &(dyn for<'s> Fn(&'s str) -> bool + Send + Sync),
    ) -> Result<Option<i64>> {
        // Expiry is measured on the database's clock, so replicas with skewed clocks agree
        // on who holds a lease.
        let read = format!(
            "SELECT lease_owner, lease_until, lease_epoch, {DB_NOW_MS} AS db_now FROM incidents WHERE id = $1"
        );
        let row = sqlx::query(&read)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let cur: Option<String> = row.try_get("lease_owner")?;
        if cur.as_deref() == Some(owner) {
            // A renewal: compare-and-set on (owner, epoch), never skipped or queued behind
            // a claimer's read; the epoch stays.
            let epoch: i64 = row.try_get("lease_epoch")?;
            let set = sqlx::query(&format!(
                "UPDATE incidents SET lease_until = {DB_NOW_MS} + $3 WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $4"
            ))
            .bind(id)
            .bind(owner)
            .bind(ttl_ms)
            .bind(epoch)
            .execute(&self.pool)
            .await?
            .rows_affected();
            return Ok((set == 1).then_some(epoch));
        }
        // A claim: `FOR UPDATE SKIP LOCKED`, so a claimer never queues behind an incident
        // whose row another process is writing right now (that process is alive and holds
        // it; the next sweep looks again), and two claimers cannot both win.
        let mut tx = self.begin().await?;
        let Some(row) = sqlx::query(&format!("{read} FOR UPDATE SKIP LOCKED"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        let cur: Option<String> = row.try_get("lease_owner")?;
        let until: Option<i64> = row.try_get("lease_until")?;
        let epoch: i64 = row.try_get("lease_epoch")?;
        let now: i64 = row.try_get("db_now")?;
        let renew = cur.as_deref() == Some(owner);
        // `alive` is a local check (is that pid running on this host?), quick enough to
        // run while the row is locked.
        let free = match (&cur, until) {
            (None, _) => true,
            (Some(_), _) if renew => true,
            (Some(_), Some(u)) if u < now => true,
            (Some(o), _) => !alive(o),
        };
        if !free {
            tx.rollback().await?;
            return Ok(None);
        }
        let next = if renew { epoch } else { epoch + 1 };
        sqlx::query(&format!(
            "UPDATE incidents SET lease_owner = $2, lease_until = {DB_NOW_MS} + $3, lease_epoch = $4 WHERE id = $1"
        ))
        .bind(id)
        .bind(owner)
        .bind(ttl_ms)
        .bind(next)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(next))
    }

    async fn lease_holds(
        &self,
        id: &str,
        owner: &str,
        epoch: i64,
        _now: i64,
        margin_ms: i64,
    ) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM incidents WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3 AND lease_until >= {DB_NOW_MS} + $4"
        ))
        .bind(id)
        .bind(owner)
        .bind(epoch)
        .bind(margin_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(n == 1)
    }

    async fn acquire_named_lease(
        &self,
        name: &str,
        owner: &str,
        _now: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        let n = sqlx::query(&format!(
            "INSERT INTO leases (name, owner, epoch, until_ms) VALUES ($1, $2, 1, {DB_NOW_MS} + $3)
             ON CONFLICT (name) DO UPDATE SET
               epoch = leases.epoch + (CASE WHEN leases.owner = excluded.owner THEN 0 ELSE 1 END),
               owner = excluded.owner, until_ms = excluded.until_ms
             WHERE leases.owner = excluded.owner OR leases.until_ms < {DB_NOW_MS}"
        ))
        .bind(name)
        .bind(owner)
        .bind(ttl_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
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
        let content = nul_free(content);
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content.as_bytes()));
        sqlx::query(
            "INSERT INTO artifacts (incident_id, name, content, sha256, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (incident_id, name) DO UPDATE SET content = excluded.content, sha256 = excluded.sha256, created_at = excluded.created_at",
        )
        .bind(id)
        .bind(name)
        .bind(content.as_ref())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_postgres_redacts_passwords_in_urls() {
        let r = redact_url("postgres://alice:s3cret@db.example:5432/recall?sslmode=require");
        assert_eq!(
            r,
            "postgres://alice:***@db.example:5432/recall?sslmode=require"
        );
        let r = redact_url("postgresql://db/recall?user=bob&password=hunter2");
        assert!(!r.contains("hunter2") && r.contains("password=***"), "{r}");
        let r = redact_url("postgres://alice:p@ss w0rd@db/x");
        assert!(!r.contains("ss w0rd"), "{r}");
        assert_eq!(redact_url("sqlite://recall.db"), "sqlite://recall.db");
    }

    #[test]
    fn store_postgres_settings_take_recall_parameters_out_of_the_url() {
        let s = settings(
            "postgres://u:pw@127.0.0.1:6543/db?max_connections=3&statement_timeout=5s&connect_timeout=2&sslmode=disable",
        )
        .expect("settings");
        assert_eq!(s.max_connections, 3);
        assert_eq!(s.connect_timeout, Duration::from_secs(2));
        assert_eq!(s.options.get_port(), 6543);
        assert_eq!(s.options.get_database(), Some("db"));
        let opts = s.options.get_options().unwrap_or_default();
        assert!(opts.contains("statement_timeout=5s"), "{opts}");
        assert_eq!(s.options.get_application_name(), Some("recall"));

        let d = settings("postgres://u@h/db").expect("defaults");
        assert_eq!(d.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert!(
            d.options
                .get_options()
                .unwrap_or_default()
                .contains("statement_timeout=60s")
        );

        for bad in [
            "postgres://u:topsecret@h/db?max_connections=0",
            "postgres://u:topsecret@h/db?max_connections=lots",
            "postgres://u:topsecret@h/db?statement_timeout=1s;drop",
            "postgres://u:topsecret@h/db?connect_timeout=-1",
        ] {
            let e = settings(bad).expect_err(bad).to_string();
            assert!(!e.contains("topsecret"), "{e}");
            assert!(e.contains("***"), "{e}");
        }
        assert!(matches!(
            settings("mysql://h/db").expect_err("scheme"),
            StoreError::Url(_)
        ));
    }

    #[test]
    fn store_postgres_text_never_carries_nul() {
        assert_eq!(nul_free("a\0b"), "a\u{FFFD}b");
        assert!(matches!(nul_free("plain"), Cow::Borrowed(_)));
        assert_eq!(nul_free_owned("\0".into()), "\u{FFFD}");
    }
}
