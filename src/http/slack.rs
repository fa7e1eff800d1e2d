//! `POST /slack/commands` and `POST /slack/interactions`. Every request is verified
//! (signature, 5-minute window, replay) before anything is parsed, and acknowledged within
//! milliseconds: what takes longer (creating the incident, opening a modal, waiting for
//! the engine's verdict on an approval) runs after the answer, and reports back through
//! the request's `response_url` or the incident thread.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::{Shared, start_incident};
use crate::engine::Mode;
use crate::slack::client::SlackClient;
use crate::slack::{Command, HELP, live_message, parse_button_value, parse_command, verify};

pub struct SlackApp {
    pub client: SlackClient,
    pub signing_secret: SecretString,
}

/// Signatures are remembered a little longer than Slack's 5-minute window.
const SEEN_KEEP_MS: i64 = 10 * 60 * 1000;

fn ephemeral(text: impl Into<String>) -> Response {
    axum::Json(json!({ "response_type": "ephemeral", "text": text.into() })).into_response()
}

/// Verifies and de-duplicates; the body is never logged.
async fn check(
    state: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, String), Response> {
    let reject = |why: String| {
        state.metrics.slack_rejected.inc();
        warn!(reason = %why, bytes = body.len(), "slack request refused");
        (StatusCode::UNAUTHORIZED, why).into_response()
    };
    let Some(app) = &state.slack else {
        return Err((StatusCode::NOT_FOUND, "Slack is not configured").into_response());
    };
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let text = std::str::from_utf8(body).map_err(|_| reject("body is not UTF-8".into()))?;
    let now = chrono::Utc::now().timestamp();
    verify(
        app.signing_secret.expose_secret(),
        h("x-slack-signature"),
        h("x-slack-request-timestamp"),
        text,
        now,
    )
    .map_err(|e| reject(e.to_string()))?;
    let sig = h("x-slack-signature").unwrap_or_default();
    // Replays are refused here from memory (no database write in Slack's 3 seconds); the
    // durable check (`durable_once`) runs before any effect, across restarts and replicas.
    if !state.seen.first_time(sig, now) {
        return Err(reject("request already seen (replay)".into()));
    }
    Ok((text.to_string(), sig.to_string()))
}

/// The durable half of replay protection: true the first time any process sees `sig`.
/// Called before a request has an effect (an incident created, a decision queued).
pub async fn durable_once(state: &Shared, sig: &str) -> bool {
    let now = chrono::Utc::now().timestamp_millis();
    match state.store.slack_seen(sig, now, SEEN_KEEP_MS).await {
        Ok(first) => {
            if !first {
                warn!("slack request replayed to another process or after a restart: ignored");
            }
            first
        }
        Err(e) => {
            warn!(error = %e, "replay check failed: request ignored");
            false
        }
    }
}

/// Signatures accepted recently by this process (Slack's window is 5 minutes).
#[derive(Default)]
pub struct SeenCache(std::sync::Mutex<HashMap<String, i64>>);

impl SeenCache {
    pub fn first_time(&self, sig: &str, now_secs: i64) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        if m.len() > 10_000 {
            m.retain(|_, t| now_secs - *t <= crate::slack::MAX_AGE_SECS * 2);
        }
        if m.contains_key(sig) {
            return false;
        }
        m.insert(sig.to_string(), now_secs);
        true
    }
}

fn form(text: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

pub async fn commands(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let t0 = Instant::now();
    let r = match check(&state, &headers, &body).await {
        Ok((text, sig)) => command(&state, form(&text), sig).await,
        Err(r) => r,
    };
    state.metrics.slack_ack.observe(t0.elapsed().as_secs_f64());
    r
}

async fn command(state: &Shared, f: HashMap<String, String>, sig: String) -> Response {
    let user = f.get("user_id").cloned().unwrap_or_default();
    let channel = f.get("channel_id").cloned().unwrap_or_default();
    let response_url = f.get("response_url").cloned();
    if user.is_empty() {
        return (StatusCode::BAD_REQUEST, "no user_id").into_response();
    }
    let cmd = match parse_command(f.get("text").map(String::as_str).unwrap_or("")) {
        Ok(c) => c,
        Err(e) => return ephemeral(format!(":warning: {e}\n\n{HELP}")),
    };
    match cmd {
        Command::Help => ephemeral(HELP),
        Command::Note { id, text } => {
            if !durable_once(state, &sig).await {
                return ephemeral("This request was already handled.");
            }
            match state.store.incident(&id).await {
                Ok(Some(_)) => {}
                Ok(None) => return ephemeral(format!("No incident `{id}`.")),
                Err(e) => return ephemeral(format!(":warning: {e}")),
            }
            let entry = crate::engine::Entry {
                at: chrono::Utc::now().timestamp_millis(),
                actor: user.clone(),
                kind: "note".into(),
                step: None,
                index: None,
                summary: text.clone(),
                data: json!({ "text": text, "via": "slack" }),
            };
            match state.store.append(&id, vec![entry]).await {
                Ok(()) => ephemeral(format!("Noted on `{id}`'s timeline.")),
                Err(e) => ephemeral(format!(":warning: {e}")),
            }
        }
        Command::List => match state.store.list().await {
            Ok(list) => {
                let lines: Vec<String> = list
                    .iter()
                    .rev()
                    .take(15)
                    .map(|i| {
                        format!(
                            "`{}` {} *{}*{}",
                            i.id,
                            i.playbook_name,
                            i.status,
                            if i.mode == "rehearsal" {
                                " (REHEARSAL)"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect();
                ephemeral(if lines.is_empty() {
                    "No incidents yet.".to_string()
                } else {
                    lines.join("\n")
                })
            }
            Err(e) => ephemeral(format!(":warning: {e}")),
        },
        Command::Status(id) => {
            let id = match id {
                Some(i) => i,
                None => match state.store.list().await {
                    Ok(l) => match l.last() {
                        Some(i) => i.id.clone(),
                        None => return ephemeral("No incidents yet."),
                    },
                    Err(e) => return ephemeral(format!(":warning: {e}")),
                },
            };
            match state.store.load(&id).await {
                Ok(Some(run)) => {
                    let (text, blocks) = live_message(&run);
                    axum::Json(
                        json!({ "response_type": "ephemeral", "text": text, "blocks": blocks }),
                    )
                    .into_response()
                }
                Ok(None) => ephemeral(format!("No incident `{id}`.")),
                Err(e) => ephemeral(format!(":warning: {e}")),
            }
        }
        Command::StartModal => {
            let trigger = f.get("trigger_id").cloned().unwrap_or_default();
            let st = state.clone();
            tokio::spawn(async move {
                if let Some(app) = &st.slack
                    && let Err(e) = app.client.open_view(&trigger, &start_modal()).await
                {
                    warn!(error = %e, "could not open the start form");
                }
            });
            StatusCode::OK.into_response()
        }
        Command::Start {
            playbook,
            params,
            dry_run,
        } => {
            let mode = if dry_run { Mode::Rehearsal } else { Mode::Live };
            // Everything cheap is checked before the answer: who, which playbook, params.
            if let Err(e) = pre_check(state, &user, &playbook, &params, mode) {
                return ephemeral(e);
            }
            let st = state.clone();
            let pb = playbook.clone();
            tokio::spawn(async move {
                if !durable_once(&st, &sig).await {
                    return;
                }
                let r = start_incident(
                    &st,
                    &pb,
                    params,
                    mode,
                    &user,
                    Some((channel, response_url.clone())),
                )
                .await;
                if let Err(e) = r
                    && let (Some(app), Some(url)) = (&st.slack, &response_url)
                {
                    let _ = app
                        .client
                        .respond(url, &json!({ "response_type": "ephemeral", "text": format!(":warning: could not start: {e}") }))
                        .await;
                }
            });
            let label = if dry_run {
                " as a *REHEARSAL* (nothing is changed)"
            } else {
                ""
            };
            axum::Json(json!({
                "response_type": "ephemeral",
                "text": format!("Starting `{playbook}`{label}; the incident thread follows in this channel."),
            }))
            .into_response()
        }
    }
}

/// Who, which playbook, which params: checked before Slack gets its answer (no I/O).
fn pre_check(
    state: &Shared,
    user: &str,
    playbook: &str,
    params: &[(String, String)],
    mode: Mode,
) -> Result<(), String> {
    super::may_start(&state.config, user, mode).map_err(|e| format!(":no_entry: {e}"))?;
    let (file, source) = super::playbook_by_name(playbook).map_err(|e| format!(":warning: {e}"))?;
    state
        .runner
        .validate(&crate::runner::StartRequest {
            file,
            source,
            params: params.to_vec(),
            mode,
            auto_approve: false,
            started_by: user.to_string(),
        })
        .map_err(|e| format!(":warning: {e}"))
}

fn start_modal() -> Value {
    let registry = crate::actions::Registry::builtin();
    let mut options = Vec::new();
    let mut described = Vec::new();
    for (name, text) in crate::bundled::PLAYBOOKS {
        options.push(json!({ "text": {"type": "plain_text", "text": name}, "value": name }));
        if let Ok((p, _)) = crate::playbook::parse(name, text.as_bytes(), &registry) {
            let params: Vec<String> = p
                .params
                .iter()
                .map(|d| {
                    format!(
                        "`{}`: {}{}",
                        d.name,
                        d.ty.name(),
                        if d.required { " (required)" } else { "" }
                    )
                })
                .collect();
            described.push(format!("*{name}* — {}", params.join(", ")));
        }
    }
    json!({
        "type": "modal",
        "callback_id": "start",
        "title": { "type": "plain_text", "text": "Start an incident" },
        "submit": { "type": "plain_text", "text": "Start" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": [
            { "type": "input", "block_id": "playbook", "label": {"type": "plain_text", "text": "Playbook"},
              "element": { "type": "static_select", "action_id": "value", "options": options } },
            { "type": "input", "block_id": "params", "optional": true,
              "label": {"type": "plain_text", "text": "Parameters (key=value, one per line)"},
              "element": { "type": "plain_text_input", "action_id": "value", "multiline": true } },
            { "type": "input", "block_id": "mode", "optional": true, "label": {"type": "plain_text", "text": "Mode"},
              "element": { "type": "checkboxes", "action_id": "value", "options": [
                  { "text": {"type": "plain_text", "text": "Rehearsal (dry run: nothing is changed)"}, "value": "dry_run" } ],
                  "initial_options": [
                  { "text": {"type": "plain_text", "text": "Rehearsal (dry run: nothing is changed)"}, "value": "dry_run" } ] } },
            { "type": "section", "text": { "type": "mrkdwn", "text": described.join("\n").chars().take(2900).collect::<String>() } },
        ],
    })
}

pub async fn interactions(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let t0 = Instant::now();
    let r = match check(&state, &headers, &body).await {
        Ok((text, sig)) => {
            let payload = form(&text)
                .get("payload")
                .and_then(|p| serde_json::from_str::<Value>(p).ok());
            match payload {
                Some(p) => interaction(&state, p, sig).await,
                None => (StatusCode::BAD_REQUEST, "no payload").into_response(),
            }
        }
        Err(r) => r,
    };
    state.metrics.slack_ack.observe(t0.elapsed().as_secs_f64());
    r
}

async fn interaction(state: &Shared, p: Value, sig: String) -> Response {
    let user = p["user"]["id"].as_str().unwrap_or_default().to_string();
    if user.is_empty() {
        return (StatusCode::BAD_REQUEST, "no user").into_response();
    }
    match p["type"].as_str().unwrap_or_default() {
        "block_actions" => {
            let Some(action) = p["actions"].get(0) else {
                return (StatusCode::BAD_REQUEST, "no action").into_response();
            };
            let action_id = action["action_id"].as_str().unwrap_or_default().to_string();
            let Some((incident, step, target)) =
                parse_button_value(action["value"].as_str().unwrap_or_default())
            else {
                return (StatusCode::BAD_REQUEST, "unknown button").into_response();
            };
            let response_url = p["response_url"].as_str().map(String::from);
            let trigger = p["trigger_id"].as_str().unwrap_or_default().to_string();
            let st = state.clone();
            tokio::spawn(async move {
                if !durable_once(&st, &sig).await {
                    return;
                }
                let msg = press(&st, &user, &action_id, &incident, &step, &target, &trigger).await;
                if let (Some(m), Some(app), Some(url)) = (msg, &st.slack, response_url) {
                    let _ = app
                        .client
                        .respond(&url, &json!({ "response_type": "ephemeral", "replace_original": false, "text": m }))
                        .await;
                }
            });
            StatusCode::OK.into_response()
        }
        "view_submission" => {
            let view = &p["view"];
            let values = &view["state"]["values"];
            match view["callback_id"].as_str().unwrap_or_default() {
                "reject" => {
                    let reason = values["reason"]["value"]["value"]
                        .as_str()
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    if reason.is_empty() {
                        return axum::Json(json!({ "response_action": "errors", "errors": { "reason": "a rejection needs a reason" } })).into_response();
                    }
                    let Some((incident, step, _)) =
                        parse_button_value(view["private_metadata"].as_str().unwrap_or_default())
                    else {
                        return (StatusCode::BAD_REQUEST, "unknown form").into_response();
                    };
                    let st = state.clone();
                    tokio::spawn(async move {
                        if let Err(e) =
                            super::queue_decision(&st, &incident, &step, &user, false, &reason)
                                .await
                        {
                            warn!(incident = %incident, error = %e, "rejection not queued");
                        }
                    });
                    StatusCode::OK.into_response()
                }
                "start" => {
                    let playbook = values["playbook"]["value"]["selected_option"]["value"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let dry_run = values["mode"]["value"]["selected_options"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|o| o["value"] == "dry_run"));
                    let params: Vec<(String, String)> = values["params"]["value"]["value"]
                        .as_str()
                        .unwrap_or_default()
                        .lines()
                        .filter_map(|l| l.split_once('='))
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .collect();
                    let mode = if dry_run { Mode::Rehearsal } else { Mode::Live };
                    if let Err(e) = pre_check(state, &user, &playbook, &params, mode) {
                        let e: String = e.chars().take(1900).collect();
                        return axum::Json(
                            json!({ "response_action": "errors", "errors": { "params": e } }),
                        )
                        .into_response();
                    }
                    let st = state.clone();
                    tokio::spawn(async move {
                        if let Err(e) =
                            start_incident(&st, &playbook, params, mode, &user, None).await
                        {
                            warn!(error = %e, "start from the form failed");
                        }
                    });
                    StatusCode::OK.into_response()
                }
                _ => (StatusCode::BAD_REQUEST, "unknown form").into_response(),
            }
        }
        _ => StatusCode::OK.into_response(),
    }
}

/// An Approve/Reject press. Returns the ephemeral answer for the presser.
async fn press(
    st: &Shared,
    user: &str,
    action: &str,
    incident: &str,
    step: &str,
    target: &Value,
    trigger: &str,
) -> Option<String> {
    let inc = match st.store.incident(incident).await {
        Ok(Some(i)) => i,
        Ok(None) => return Some(format!("No incident `{incident}`.")),
        Err(e) => return Some(format!(":warning: {e}")),
    };
    if matches!(inc.status.as_str(), "succeeded" | "failed") {
        return Some(format!(
            "Incident `{incident}` is already {}: nothing was changed.",
            inc.status
        ));
    }
    // The button is bound to the exact target the approval was requested for.
    let events = st.store.events(incident).await.unwrap_or_default();
    let current = events
        .iter()
        .rev()
        .find(|e| e.kind == "approval.requested" && e.step.as_deref() == Some(step));
    let Some(req) = current else {
        return Some(format!(
            "`{step}` is not waiting for an approval: nothing was changed."
        ));
    };
    let data: Value = serde_json::from_str(&req.data_json).unwrap_or(Value::Null);
    if data.get("target").unwrap_or(&Value::Null) != target {
        return Some(format!(
            "This button is for an earlier request of `{step}`; the step now asks about another target. Nothing was changed."
        ));
    }
    let decided = events.iter().any(|e| {
        e.seq > req.seq
            && e.step.as_deref() == Some(step)
            && matches!(
                e.kind.as_str(),
                "approval.rejected" | "approval.expired" | "step.succeeded" | "step.failed"
            )
    });
    if decided {
        return Some(format!(
            "`{step}` was already decided: nothing was changed."
        ));
    }
    if action == "reject" {
        let view = json!({
            "type": "modal",
            "callback_id": "reject",
            "private_metadata": crate::slack::button_value(incident, step, target),
            "title": { "type": "plain_text", "text": "Reject" },
            "submit": { "type": "plain_text", "text": "Reject" },
            "blocks": [{ "type": "input", "block_id": "reason",
                "label": { "type": "plain_text", "text": format!("Why reject `{step}`?") },
                "element": { "type": "plain_text_input", "action_id": "value", "multiline": true } }],
        });
        if let Some(app) = &st.slack
            && let Err(e) = app.client.open_view(trigger, &view).await
        {
            return Some(format!(":warning: could not open the reason form: {e}"));
        }
        return None;
    }
    let head = events.last().map_or(0, |e| e.seq);
    if let Err(e) = super::queue_decision(
        st,
        incident,
        step,
        user,
        true,
        &format!("approved in Slack by {user}"),
    )
    .await
    {
        return Some(format!(":warning: {e}"));
    }
    // The engine decides who may approve; report its verdict.
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(evs) = st.store.events(incident).await
            && let Some(v) = evs.iter().find(|e| {
                e.seq > head
                    && e.actor == user
                    && e.step.as_deref() == Some(step)
                    && e.kind.starts_with("approval.")
            })
        {
            info!(incident = %incident, step = %step, verdict = %v.kind, "slack approval");
            return Some(match v.kind.as_str() {
                "approval.refused" => format!(":no_entry: Not recorded: {}", v.summary),
                _ => format!(":white_check_mark: {}", v.summary),
            });
        }
    }
    Some("Your approval is queued; the thread will show the engine's verdict.".into())
}
