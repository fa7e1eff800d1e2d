//! [`SlackStore`] on Postgres: the same statements as the SQLite store, `done` a BOOLEAN.

use async_trait::async_trait;

use super::PostgresStore;
use crate::store::{Result, SlackStore, SlackThread};

use crate::store::rows::THREAD_COLS as COLS;

#[async_trait]
impl SlackStore for PostgresStore {
    async fn slack_thread_create(&self, t: &SlackThread, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO slack_threads (incident_id, channel, thread_ts, last_seq, last_render, started_by, response_url, done, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (incident_id) DO NOTHING",
        )
        .bind(&t.incident_id)
        .bind(&t.channel)
        .bind(&t.thread_ts)
        .bind(t.last_seq)
        .bind(&t.last_render)
        .bind(&t.started_by)
        .bind(&t.response_url)
        .bind(t.done)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn slack_thread(&self, incident: &str) -> Result<Option<SlackThread>> {
        let r = sqlx::query(&format!(
            "SELECT {COLS} FROM slack_threads WHERE incident_id = $1"
        ))
        .bind(incident)
        .fetch_optional(self.pool())
        .await?;
        r.as_ref().map(crate::store::rows::thread).transpose()
    }

    async fn slack_threads_open(&self) -> Result<Vec<SlackThread>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM slack_threads WHERE NOT done ORDER BY updated_at, incident_id COLLATE \"C\""
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(crate::store::rows::thread).collect()
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
        .bind(t.done)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn slack_seen(&self, signature: &str, now: i64, keep_ms: i64) -> Result<bool> {
        // The unique key decides: a concurrent insert of the same signature waits for the
        // first transaction and then inserts nothing.
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM slack_seen WHERE seen_at < $1")
            .bind(now - keep_ms)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "INSERT INTO slack_seen (signature, seen_at) VALUES ($1, $2) ON CONFLICT (signature) DO NOTHING",
        )
        .bind(signature)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
