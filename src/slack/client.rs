//! Slack Web API calls (`POST {api_url}{method}`, JSON, bot token as Bearer), behind one
//! pacing gate: a 429 pauses *every* call for its `Retry-After` (Slack's limits are per
//! method and workspace, and hammering through them only extends the pause), transient
//! failures are retried with backoff, and an `ok:false` answer is an error with Slack's code.
//! Callers are background tasks: a Slack outage delays messages, never containment.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SlackError {
    /// Slack answered `ok: false` with this code (`channel_not_found`, `invalid_auth`, …).
    #[error("Slack refused {method}: {code}")]
    Api { method: String, code: String },
    /// Unreachable, 5xx, or rate-limited past our patience: try again later.
    #[error("Slack unavailable for {method}: {reason}")]
    Unavailable { method: String, reason: String },
}

impl SlackError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    base: String,
    token: Arc<SecretString>,
    /// Calls may not start before this instant (set by a 429's Retry-After).
    pause_until: Arc<Mutex<Option<Instant>>>,
    attempts: u32,
}

impl SlackClient {
    pub fn new(api_url: &str, token: SecretString, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("recall/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let mut base = api_url.trim().to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        Ok(Self {
            http,
            base,
            token: Arc::new(token),
            pause_until: Arc::new(Mutex::new(None)),
            attempts: 4,
        })
    }

    async fn wait_pause(&self) {
        let until = *self.pause_until.lock().await;
        if let Some(u) = until
            && u > Instant::now()
        {
            tokio::time::sleep_until(u).await;
        }
    }

    /// One Web API method. Retries 429 (after its Retry-After) and transient failures.
    pub async fn call(&self, method: &str, body: &Value) -> Result<Value, SlackError> {
        let url = format!("{}{method}", self.base);
        let mut backoff = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 0..self.attempts {
            self.wait_pause().await;
            let res = self
                .http
                .post(&url)
                .bearer_auth(self.token.expose_secret())
                .header("content-type", "application/json; charset=utf-8")
                .body(body.to_string())
                .send()
                .await;
            match res {
                Err(e) => last = format!("transport: {}", without_url(&e)),
                Ok(r) if r.status().as_u16() == 429 => {
                    let secs = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(1)
                        .min(60);
                    *self.pause_until.lock().await =
                        Some(Instant::now() + Duration::from_secs(secs));
                    last = format!("rate limited (Retry-After {secs}s)");
                    continue;
                }
                Ok(r) if r.status().is_server_error() => {
                    last = format!("HTTP {}", r.status().as_u16());
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let v: Value = r.json().await.map_err(|e| SlackError::Unavailable {
                        method: method.into(),
                        reason: format!("HTTP {status}, unreadable answer: {}", without_url(&e)),
                    })?;
                    if v.get("ok").and_then(Value::as_bool) == Some(true) {
                        return Ok(v);
                    }
                    let code = v
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown_error")
                        .to_string();
                    if code == "ratelimited" || code == "internal_error" || code == "fatal_error" {
                        last = code;
                    } else {
                        return Err(SlackError::Api {
                            method: method.into(),
                            code,
                        });
                    }
                }
            }
            if attempt + 1 < self.attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        Err(SlackError::Unavailable {
            method: method.into(),
            reason: last,
        })
    }

    pub async fn post_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        text: &str,
        blocks: &[Value],
        metadata: Option<Value>,
    ) -> Result<(String, String), SlackError> {
        let mut body =
            json!({ "channel": channel, "text": text, "blocks": blocks, "unfurl_links": false });
        if let Some(t) = thread_ts {
            body["thread_ts"] = json!(t);
        }
        if let Some(m) = metadata {
            body["metadata"] = m;
        }
        let v = self.call("chat.postMessage", &body).await?;
        let ts = v["ts"].as_str().unwrap_or_default().to_string();
        let ch = v["channel"].as_str().unwrap_or(channel).to_string();
        Ok((ch, ts))
    }

    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: &[Value],
    ) -> Result<(), SlackError> {
        self.call(
            "chat.update",
            &json!({ "channel": channel, "ts": ts, "text": text, "blocks": blocks }),
        )
        .await
        .map(|_| ())
    }

    pub async fn open_view(&self, trigger_id: &str, view: &Value) -> Result<(), SlackError> {
        self.call(
            "views.open",
            &json!({ "trigger_id": trigger_id, "view": view }),
        )
        .await
        .map(|_| ())
    }

    pub async fn create_channel(&self, name: &str) -> Result<String, SlackError> {
        let v = self
            .call("conversations.create", &json!({ "name": name }))
            .await?;
        Ok(v["channel"]["id"].as_str().unwrap_or_default().to_string())
    }

    /// Replies to a `response_url` (slash commands, interactions): no token, 5 uses.
    pub async fn respond(&self, response_url: &str, body: &Value) -> Result<(), SlackError> {
        let r = self
            .http
            .post(response_url)
            .json(body)
            .send()
            .await
            .map_err(|e| SlackError::Unavailable {
                method: "response_url".into(),
                reason: without_url(&e),
            })?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(SlackError::Unavailable {
                method: "response_url".into(),
                reason: format!("HTTP {}", r.status().as_u16()),
            })
        }
    }
}

/// reqwest errors quote the URL; a response_url is a bearer capability, keep it out.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    s
}
