//! `recall serve`'s HTTP side (axum): the Slack endpoints ([`slack`]), the JSON API with
//! bearer tokens, health, readiness and metrics. Handlers never drive an incident
//! themselves: they store a request (a new incident, an approval in the inbox) and wake
//! the supervisor, so every answer is fast and every effect is durable first.

pub mod metrics;
pub mod pages;
pub mod slack;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use tracing::warn;

use crate::config::{AuthConfig, Config};
use crate::engine::Mode;
use crate::runner::{RunError, Runner, StartRequest};
use crate::store::{SlackThread, Store};

/// Everything a handler needs.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub runner: Arc<Runner>,
    pub metrics: Arc<metrics::Metrics>,
    /// Wakes the supervisor (new incident, new inbox item).
    pub wake_driver: Arc<Notify>,
    /// Wakes the Slack outbox.
    pub wake_slack: Arc<Notify>,
    pub slack: Option<slack::SlackApp>,
    /// API tokens: (name, token).
    pub api_tokens: Vec<(String, SecretString)>,
    /// Slack request signatures accepted recently (the fast half of replay protection).
    pub seen: slack::SeenCache,
}

/// The one error type of the HTTP layer, mapped once to a status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Playbook(_) | RunError::Params(_) | RunError::Invalid(_) => {
                Self::BadRequest(e.to_string())
            }
            RunError::NotFound(_) => Self::NotFound(e.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            warn!(error = %self, "request failed");
        }
        (status, axum::Json(json!({ "error": self.to_string() }))).into_response()
    }
}

pub type Shared = Arc<AppState>;

/// Parses `name=token` pairs (commas or newlines); never logs them.
pub fn parse_tokens(text: &str) -> Result<Vec<(String, SecretString)>, String> {
    let mut out = Vec::new();
    for part in text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (name, tok) = part
            .split_once('=')
            .ok_or("each API token entry is `name=token`")?;
        let (name, tok) = (name.trim(), tok.trim());
        if name.is_empty() || tok.len() < 16 {
            return Err(format!(
                "API token `{name}`: a name and a token of at least 16 characters are required"
            ));
        }
        out.push((name.to_string(), SecretString::from(tok.to_string())));
    }
    Ok(out)
}

/// Who the bearer token belongs to (constant-time comparison against every token).
fn api_caller(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let mut who = None;
    for (name, tok) in &state.api_tokens {
        let same: bool = tok
            .expose_secret()
            .as_bytes()
            .ct_eq(given.as_bytes())
            .into();
        if same {
            who = Some(name.clone());
        }
    }
    who.ok_or(ApiError::Unauthorized)
}

/// The authorisation model shared by Slack and the API: may `who` start an incident in
/// this mode?
pub fn may_start(config: &Config, who: &str, mode: Mode) -> Result<(), String> {
    let groups = config.groups_of(who);
    let a = &config.auth;
    if !a.starters.is_empty() && !AuthConfig::matches(&a.starters, who, &groups) {
        return Err(format!("{who} may not start incidents ([auth] starters)"));
    }
    if mode == Mode::Live && !AuthConfig::matches(&a.live_starters, who, &groups) {
        return Err(format!(
            "{who} may not start a live incident ([auth] live_starters); add --dry-run for a rehearsal"
        ));
    }
    Ok(())
}

/// A playbook by name only (no paths from the network): `playbooks/<name>.yaml` or bundled.
pub fn playbook_by_name(name: &str) -> Result<(String, Vec<u8>), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(ApiError::BadRequest(format!(
            "`{name}` is not a playbook name (letters, digits, - and _)"
        )));
    }
    crate::bundled::playbook(name).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Validates and stores a new incident, registers its Slack thread, wakes the workers.
pub async fn start_incident(
    state: &AppState,
    playbook: &str,
    params: Vec<(String, String)>,
    mode: Mode,
    who: &str,
    thread: Option<(String, Option<String>)>,
) -> Result<String, ApiError> {
    may_start(&state.config, who, mode).map_err(ApiError::Forbidden)?;
    let (file, source) = playbook_by_name(playbook)?;
    let req = StartRequest {
        file,
        source,
        params,
        mode,
        auto_approve: false,
        started_by: who.to_string(),
    };
    state.runner.validate(&req)?;
    let id = state.runner.create(req).await?;
    // The creator's lease belongs to the runner the supervisor drives with (same owner).
    let channel = thread.or_else(|| {
        state
            .config
            .slack
            .channel
            .clone()
            .map(|c| (c, None::<String>))
    });
    if let (Some(_), Some((channel, response_url))) = (&state.slack, channel) {
        let channel = if state.config.slack.thread_mode == "channel" {
            crate::slack::notifier::NEW_CHANNEL.to_string()
        } else {
            channel
        };
        let t = SlackThread {
            incident_id: id.clone(),
            channel,
            thread_ts: None,
            last_seq: 0,
            last_render: String::new(),
            started_by: who.to_string(),
            response_url,
            done: false,
        };
        state
            .store
            .slack_thread_create(&t, chrono::Utc::now().timestamp_millis())
            .await?;
        state.wake_slack.notify_one();
    }
    state.wake_driver.notify_one();
    Ok(id)
}

/// Queues an approval decision for the lease holder (the inbox) and wakes the workers.
pub async fn queue_decision(
    state: &AppState,
    id: &str,
    step: &str,
    who: &str,
    approve: bool,
    reason: &str,
) -> Result<(), ApiError> {
    if reason.trim().is_empty() {
        return Err(ApiError::BadRequest("a decision needs a reason".into()));
    }
    let inc = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    if matches!(inc.status.as_str(), "succeeded" | "failed") {
        return Err(ApiError::Conflict(format!(
            "incident {id} is already {}; there is nothing left to approve",
            inc.status
        )));
    }
    state
        .store
        .push_inbox(
            id,
            "decision",
            &json!({ "step": step, "actor": who, "decision": if approve { "approve" } else { "reject" }, "reason": reason }),
            chrono::Utc::now().timestamp_millis(),
        )
        .await?;
    state.wake_driver.notify_one();
    Ok(())
}

#[derive(Deserialize)]
struct StartBody {
    playbook: String,
    #[serde(default)]
    params: BTreeMap<String, Value>,
    #[serde(default)]
    dry_run: bool,
}

async fn api_start(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    state.metrics.api_requests.inc();
    let who = api_caller(&state, &headers)?;
    let b: StartBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    let params = b
        .params
        .into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, s)
        })
        .collect();
    let mode = if b.dry_run {
        Mode::Rehearsal
    } else {
        Mode::Live
    };
    let id = start_incident(&state, &b.playbook, params, mode, &who, None).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "id": id, "mode": mode.as_str(), "status": "running" })),
    )
        .into_response())
}

async fn api_list(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    state.metrics.api_requests.inc();
    api_caller(&state, &headers)?;
    let list = state.store.list().await?;
    Ok(axum::Json(json!(list)).into_response())
}

async fn api_show(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.metrics.api_requests.inc();
    api_caller(&state, &headers)?;
    let run = state
        .store
        .load(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    Ok(axum::Json(json!({
        "incident": run.incident, "steps": run.steps, "tasks": run.tasks, "approvals": run.approvals,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct TimelineQuery {
    format: Option<String>,
    /// Comma-separated kinds or prefixes (`approval.*`).
    kind: Option<String>,
    step: Option<String>,
    since: Option<String>,
}

async fn api_timeline(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> Result<Response, ApiError> {
    state.metrics.api_requests.inc();
    api_caller(&state, &headers)?;
    let inc = state
        .store
        .incident(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    let filter = crate::timeline::render::Filter {
        kinds: q
            .kind
            .as_deref()
            .map(|k| k.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        step: q.step.clone(),
        since: q
            .since
            .as_deref()
            .map(|s| crate::timeline::render::parse_since(s, chrono::Utc::now().timestamp_millis()))
            .transpose()
            .map_err(ApiError::BadRequest)?,
    };
    let all = state.store.events(&id).await?;
    let links = match state.store.load(&id).await? {
        Some(run) => crate::timeline::render::links(&run, &all, &state.config),
        None => Default::default(),
    };
    let events = filter.apply(&all);
    match q.format.as_deref().unwrap_or("json") {
        "csv" => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            crate::timeline::render::to_csv(&inc, &events, &links),
        )
            .into_response()),
        "json" => {
            Ok(axum::Json(crate::timeline::render::to_json(&inc, &events, &links)).into_response())
        }
        "md" | "markdown" => Ok((
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            crate::timeline::render::to_markdown(&inc, &events, &links),
        )
            .into_response()),
        other => Err(ApiError::BadRequest(format!(
            "format `{other}`: expected json, md or csv"
        ))),
    }
}

#[derive(Deserialize)]
struct DecisionBody {
    step: String,
    #[serde(default = "approve_default")]
    decision: String,
    reason: String,
}

fn approve_default() -> String {
    "approve".into()
}

async fn api_approve(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    state.metrics.api_requests.inc();
    let who = api_caller(&state, &headers)?;
    let b: DecisionBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    let approve = match b.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(ApiError::BadRequest(format!(
                "decision `{other}`: expected approve or reject"
            )));
        }
    };
    queue_decision(&state, &id, &b.step, &who, approve, &b.reason).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "queued": true, "note": "the engine checks who may approve; see the timeline for the verdict" })),
    )
        .into_response())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Shared>) -> Response {
    // Reaches the database and needs the newest migration's tables.
    match state.store.slack_threads_open().await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database not ready: {e}"),
        )
            .into_response(),
    }
}

async fn metrics_route(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.store.as_ref()).await,
    )
        .into_response()
}

/// Every route answers within the configured timeout.
async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "timed out").into_response(),
    }
}

pub fn router(state: Shared) -> Router {
    let limit = state.config.server.max_body_kib * 1024;
    let timeout = Duration::from_millis(
        crate::config::parse_duration_ms(&state.config.server.request_timeout).unwrap_or(10_000),
    );
    Router::new()
        .route("/slack/commands", post(slack::commands))
        .route("/slack/interactions", post(slack::interactions))
        .route("/api/incidents", post(api_start).get(api_list))
        .route("/api/incidents/{id}", get(api_show))
        .route("/api/incidents/{id}/timeline", get(api_timeline))
        .route("/api/incidents/{id}/approvals", post(api_approve))
        .route("/incidents", get(pages::index))
        .route("/incidents/{id}", get(pages::incident))
        .route("/incidents/{id}/download/{file}", get(pages::download))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_route))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(timeout, deadline))
        .with_state(state)
}
