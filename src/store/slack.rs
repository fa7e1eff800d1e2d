//! Storage for `recall serve`'s Slack side (`migrations/*/0004_slack.sql`): the thread of
//! each incident and how far its timeline has been posted, and the signatures of accepted
//! Slack requests (replay protection). Posting is driven from the timeline: a restart
//! continues from `last_seq`, so nothing already posted is posted again.

use async_trait::async_trait;
use serde::Serialize;

use super::Result;
use super::rows::THREAD_COLS;
use super::sqlite::SqliteStore;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlackThread {
    pub incident_id: String,
    pub channel: String,
    pub thread_ts: Option<String>,
    pub last_seq: i64,
    pub last_render: String,
    pub started_by: String,
    pub response_url: Option<String>,
    pub done: bool,
}

#[async_trait]
pub trait SlackStore: Send + Sync {
    /// Registers an incident's thread (channel chosen, nothing posted yet). Idempotent.
    async fn slack_thread_create(&self, t: &SlackThread, now: i64) -> Result<()>;
    async fn slack_thread(&self, incident: &str) -> Result<Option<SlackThread>>;
    /// Threads with something left to post.
    async fn slack_threads_open(&self) -> Result<Vec<SlackThread>>;
    async fn slack_thread_save(&self, t: &SlackThread, now: i64) -> Result<()>;
    /// Records a request signature; false when it was already seen (a replay).
    async fn slack_seen(&self, signature: &str, now: i64, keep_ms: i64) -> Result<bool>;
}

#[async_trait]
impl SlackStore for SqliteStore {
    async fn slack_thread_create(&self, t: &SlackThread, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO slack_threads (incident_id, channel, thread_ts, last_seq, last_render, started_by, response_url, done, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT(incident_id) DO NOTHING",
        )
        .bind(&t.incident_id)
        .bind(&t.channel)
        .bind(&t.thread_ts)
        .bind(t.last_seq)
        .bind(&t.last_render)
        .bind(&t.started_by)
        .bind(&t.response_url)
        .bind(t.done as i64)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn slack_thread(&self, incident: &str) -> Result<Option<SlackThread>> {
        let r = sqlx::query(&format!(
            "SELECT {THREAD_COLS} FROM slack_threads WHERE incident_id = $1"
        ))
        .bind(incident)
        .fetch_optional(self.pool())
        .await?;
        r.as_ref().map(super::rows::thread).transpose()
    }

    async fn slack_threads_open(&self) -> Result<Vec<SlackThread>> {
        let rows = sqlx::query(&format!(
            "SELECT {THREAD_COLS} FROM slack_threads WHERE done = 0 ORDER BY updated_at"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(super::rows::thread).collect()
    }

    async fn slack_thread_save(&self, t: &SlackThread, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE slack_threads SET channel = $2, thread_ts = $3, last_seq = $4, last_render = $5, done = $6, updated_at = $7 WHERE incident_id = $1",
        )
        .bind(&t.incident_id)
        .bind(&t.channel)
        .bind(&t.thread_ts)
        .bind(t.last_seq)
        .bind(&t.last_render)
        .bind(t.done as i64)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn slack_seen(&self, signature: &str, now: i64, keep_ms: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM slack_seen WHERE seen_at < $1")
            .bind(now - keep_ms)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "INSERT INTO slack_seen (signature, seen_at) VALUES ($1, $2) ON CONFLICT(signature) DO NOTHING",
        )
        .bind(signature)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
