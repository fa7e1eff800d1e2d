//! The incident pages for people: `GET /incidents` (the list, with filters) and
//! `GET /incidents/{id}` (state, mode, time to contain, the timeline grouped by phase, the
//! approvals, the blast radius, downloads). Server-rendered with handlebars (HTML-escaped),
//! no JavaScript; readable on a phone and printable. Browsers authenticate with HTTP Basic
//! (user = API token name, password = the token); the API's Bearer works too.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use handlebars::Handlebars;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{ApiError, Shared};

const INCIDENT: &str = include_str!("../../templates/incident.html.hbs");
const INDEX: &str = include_str!("../../templates/incidents.html.hbs");
const STYLE: &str = include_str!("../../templates/page.css");

/// The answer to a request without valid credentials: a Basic challenge.
fn challenge() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"recall\", charset=\"UTF-8\"",
        )],
        "sign in with an API token name and token",
    )
        .into_response()
}

/// Basic (name:token) or Bearer; the identity is the token's name.
fn caller(state: &Shared, headers: &HeaderMap) -> Option<String> {
    let h = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?;
    let (name, token) = if let Some(b) = h.strip_prefix("Basic ") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (n, t) = text.split_once(':')?;
        (Some(n.to_string()), t.to_string())
    } else {
        (None, h.strip_prefix("Bearer ")?.to_string())
    };
    let mut who = None;
    for (n, t) in &state.api_tokens {
        let same: bool = t.expose_secret().as_bytes().ct_eq(token.as_bytes()).into();
        if same && name.as_deref().is_none_or(|x| x == n) {
            who = Some(n.clone());
        }
    }
    who
}

fn hb() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(false);
    // Default escaping: every value is HTML-escaped.
    let _ = hb.register_template_string("incident", INCIDENT);
    let _ = hb.register_template_string("index", INDEX);
    hb
}

fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // No scripts at all; inline CSS only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

fn status_class(s: &str) -> &'static str {
    match s {
        "succeeded" => "ok",
        "failed" | "rejected" => "bad",
        "waiting" | "awaiting_approval" | "awaiting_human" | "paused" => "wait",
        "skipped" => "skip",
        _ => "run",
    }
}

#[derive(Deserialize, Default)]
pub struct IndexQuery {
    status: Option<String>,
    mode: Option<String>,
    playbook: Option<String>,
}

pub async fn index(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<IndexQuery>,
) -> Response {
    if caller(&state, &headers).is_none() {
        return challenge();
    }
    let list = match state.store.list().await {
        Ok(l) => l,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let keep = |v: &str, f: &Option<String>| f.as_deref().is_none_or(|x| x.is_empty() || x == v);
    let rows: Vec<Value> = list
        .iter()
        .rev()
        .filter(|i| {
            keep(&i.status, &q.status)
                && keep(&i.mode, &q.mode)
                && keep(&i.playbook_name, &q.playbook)
        })
        .map(|i| {
            json!({
                "id": i.id, "playbook": i.playbook_name, "status": i.status,
                "class": status_class(&i.status), "rehearsal": i.mode == "rehearsal",
                "started_by": i.started_by,
                "started_at": crate::postmortem::rfc3339(i.created_at),
            })
        })
        .collect();
    let mut playbooks: Vec<&str> = list.iter().map(|i| i.playbook_name.as_str()).collect();
    playbooks.sort();
    playbooks.dedup();
    let opts = |names: &[&str], sel: &Option<String>| -> Vec<Value> {
        names
            .iter()
            .map(|s| json!({"name": s, "selected": sel.as_deref() == Some(*s)}))
            .collect()
    };
    let statuses = opts(&["running", "waiting", "succeeded", "failed"], &q.status);
    let modes = opts(&["live", "rehearsal"], &q.mode);
    let model = json!({
        "style": STYLE,
        "rows": rows,
        "count": rows.len(),
        "total": list.len(),
        "playbooks": playbooks.iter().map(|p| json!({"name": p, "selected": q.playbook.as_deref() == Some(*p)})).collect::<Vec<_>>(),
        "statuses": statuses,
        "modes": modes,
    });
    match hb().render("index", &model) {
        Ok(b) => html(b),
        Err(e) => ApiError::Internal(format!("template: {e}")).into_response(),
    }
}

pub async fn incident(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if caller(&state, &headers).is_none() {
        return challenge();
    }
    let run = match state.store.load(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return ApiError::NotFound(format!("no incident {id}")).into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let events = match state.store.events(&id).await {
        Ok(e) => e,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let now = chrono::Utc::now().timestamp_millis();
    let mut m = crate::postmortem::model(&run, &events, None, now);
    // The timeline grouped by phase, in the order a response runs.
    let mut groups: BTreeMap<usize, (String, Vec<Value>)> = BTreeMap::new();
    let order = [
        "contain",
        "rotate",
        "scope",
        "delete",
        "postmortem",
        "coordination",
    ];
    for a in m["actions"].as_array().cloned().unwrap_or_default() {
        let phase = a["phase"].as_str().unwrap_or("contain").to_string();
        let rank = order
            .iter()
            .position(|p| *p == phase)
            .unwrap_or(order.len());
        let mut a = a.clone();
        a["class"] = json!(status_class(a["status"].as_str().unwrap_or("")));
        groups
            .entry(rank)
            .or_insert_with(|| (phase.clone(), Vec::new()))
            .1
            .push(a);
    }
    m["groups"] = json!(
        groups
            .into_values()
            .map(|(phase, actions)| json!({"phase": phase, "actions": actions}))
            .collect::<Vec<_>>()
    );
    m["style"] = json!(STYLE);
    m["class"] = json!(status_class(&run.incident.status));
    m["events_count"] = json!(events.len());
    match hb().render("incident", &m) {
        Ok(b) => html(b),
        Err(e) => ApiError::Internal(format!("template: {e}")).into_response(),
    }
}

/// `/incidents/{id}/download/{timeline.json|timeline.csv|timeline.md|postmortem.md}`.
pub async fn download(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    if caller(&state, &headers).is_none() {
        return challenge();
    }
    let inc = match state.store.incident(&id).await {
        Ok(Some(i)) => i,
        Ok(None) => return ApiError::NotFound(format!("no incident {id}")).into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let events = match state.store.events(&id).await {
        Ok(e) => e,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let links = match state.store.load(&id).await {
        Ok(Some(run)) => crate::timeline::render::links(&run, &events, &state.config),
        _ => Default::default(),
    };
    let (ct, body) = match file.as_str() {
        "timeline.json" => (
            "application/json",
            serde_json::to_string_pretty(&crate::timeline::render::to_json(&inc, &events, &links))
                .unwrap_or_default(),
        ),
        "timeline.csv" => (
            "text/csv; charset=utf-8",
            crate::timeline::render::to_csv(&inc, &events, &links),
        ),
        "timeline.md" => (
            "text/markdown; charset=utf-8",
            crate::timeline::render::to_markdown(&inc, &events, &links),
        ),
        "postmortem.md" => match crate::postmortem::render_for(
            state.store.as_ref(),
            &id,
            None,
            None,
            chrono::Utc::now().timestamp_millis(),
        )
        .await
        {
            Ok(t) => ("text/markdown; charset=utf-8", t),
            Err(e) => return ApiError::Internal(e.to_string()).into_response(),
        },
        other => return ApiError::NotFound(format!("no download `{other}`")).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ct.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}-{file}\""),
            ),
        ],
        body,
    )
        .into_response()
}
