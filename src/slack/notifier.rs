//! The Slack outbox: each incident's thread is derived from its timeline. The live message
//! (the thread's parent) is re-rendered from the stored state and updated in place when it
//! changed; events a person must see (failures, approvals, human tasks, gate refusals, the
//! end) become thread replies, in order. Progress is saved after every post (`last_seq`),
//! so a restart continues the same thread without re-posting what was posted. Slack being
//! down only delays this loop; the incident runs elsewhere.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use super::client::{SlackClient, SlackError};
use super::{event_message, live_message};
use crate::store::{SlackThread, Store};

pub struct Notifier {
    pub store: Arc<dyn Store>,
    pub client: SlackClient,
    pub poll: Duration,
    pub wake: Arc<Notify>,
    pub metrics: Arc<crate::http::metrics::Metrics>,
    /// This process's lease owner name: only the holder of the `slack-outbox` leader lease
    /// posts, so several replicas never post one message twice.
    pub owner: String,
    /// How long the leader lease lasts without renewal.
    pub lease_ttl_ms: i64,
}

/// The leader lease for the outbox.
pub const OUTBOX_LEASE: &str = "slack-outbox";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `recall-inc-…` channel names: lowercase, `a-z0-9-_`, at most 80 characters.
pub fn channel_name(incident: &str) -> String {
    let mut n: String = format!("recall-{incident}")
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    n.truncate(80);
    n
}

/// A channel still to be created for the incident (`thread_mode = "channel"`).
pub const NEW_CHANNEL: &str = "#new";

impl Notifier {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.tick().await;
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {
                    // One last pass so what happened before the shutdown is posted.
                    self.tick().await;
                    return;
                }
            }
        }
    }

    /// One pass over every open thread, if this process holds the outbox lease. Threads fail
    /// independently.
    pub async fn tick(&self) {
        match self
            .store
            .acquire_named_lease(OUTBOX_LEASE, &self.owner, now_ms(), self.lease_ttl_ms)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                warn!(error = %e, "slack outbox: could not take the leader lease");
                return;
            }
        }
        let threads = match self.store.slack_threads_open().await {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "slack outbox: could not list threads");
                return;
            }
        };
        for t in threads {
            let id = t.incident_id.clone();
            match self.sync(t).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => {
                    self.metrics.slack_failures.inc();
                    warn!(incident = %id, error = %e, "slack unavailable; will retry");
                }
                Err(e) => {
                    self.metrics.slack_failures.inc();
                    warn!(incident = %id, error = %e, "slack refused a message");
                }
            }
        }
    }

    async fn save(&self, t: &SlackThread) {
        if let Err(e) = self.store.slack_thread_save(t, now_ms()).await {
            warn!(incident = %t.incident_id, error = %e, "slack outbox: could not save progress");
        }
    }

    async fn sync(&self, mut t: SlackThread) -> Result<(), SlackError> {
        let store_err = |e: crate::store::StoreError| SlackError::Unavailable {
            method: "store".into(),
            reason: e.to_string(),
        };
        let Some(run) = self.store.load(&t.incident_id).await.map_err(store_err)? else {
            t.done = true;
            self.save(&t).await;
            return Ok(());
        };
        let (text, blocks) = live_message(&run);
        let render = hex::encode(Sha256::digest(
            serde_json::to_vec(&blocks).unwrap_or_default(),
        ));
        if t.thread_ts.is_none() {
            if t.channel == NEW_CHANNEL {
                let name = channel_name(&t.incident_id);
                match self.client.create_channel(&name).await {
                    Ok(id) => t.channel = id,
                    Err(SlackError::Api { code, .. }) if code == "name_taken" => {
                        // Created before a crash: Slack resolves the name on post.
                        t.channel = format!("#{name}");
                    }
                    Err(e) => return Err(e),
                }
                self.save(&t).await;
            }
            let meta = json!({ "event_type": "recall_incident", "event_payload": { "incident": t.incident_id } });
            match self
                .client
                .post_message(&t.channel, None, &text, &blocks, Some(meta))
                .await
            {
                Ok((ch, ts)) => {
                    self.metrics.slack_posts.inc();
                    t.channel = ch;
                    t.thread_ts = Some(ts);
                    t.last_render = render.clone();
                    self.save(&t).await;
                    info!(incident = %t.incident_id, channel = %t.channel, "slack thread started");
                }
                Err(SlackError::Api { method, code }) => {
                    // A channel we cannot post to will not heal by retrying every tick.
                    t.done = true;
                    self.save(&t).await;
                    return Err(SlackError::Api { method, code });
                }
                Err(e) => return Err(e),
            }
        }
        let thread = t.thread_ts.clone().unwrap_or_default();
        let events = self.store.events(&t.incident_id).await.map_err(store_err)?;
        let mut advanced = false;
        let from = t.last_seq;
        for e in events.iter().filter(|e| e.seq > from) {
            if let Some((text, blocks)) = event_message(&run, e) {
                if advanced {
                    self.save(&t).await;
                    advanced = false;
                }
                self.client
                    .post_message(&t.channel, Some(&thread), &text, &blocks, None)
                    .await?;
                self.metrics.slack_posts.inc();
                t.last_seq = e.seq;
                self.save(&t).await;
            } else {
                t.last_seq = e.seq;
                advanced = true;
            }
        }
        if render != t.last_render {
            self.client
                .update(&t.channel, &thread, &text, &blocks)
                .await?;
            self.metrics.slack_posts.inc();
            t.last_render = render;
            advanced = true;
        }
        let finished = matches!(run.incident.status.as_str(), "succeeded" | "failed");
        if finished && t.last_seq >= run.incident.head_seq {
            t.done = true;
            advanced = true;
        }
        if advanced {
            self.save(&t).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_follow_slack_rules() {
        assert_eq!(channel_name("inc-AB12"), "recall-inc-ab12");
        assert!(channel_name(&"x".repeat(200)).len() <= 80);
        assert_eq!(channel_name("a b/c"), "recall-a-b-c");
    }
}
