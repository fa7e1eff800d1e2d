//! Timeline exports: JSON (for tools) and Markdown (for people).

use serde_json::{Value, json};

use super::Event;
use crate::postmortem::{offset, rfc3339};
use crate::store::IncidentRecord;

pub fn to_json(inc: &IncidentRecord, events: &[Event]) -> Value {
    json!({
        "incident": {
            "id": inc.id, "playbook": inc.playbook_name, "playbook_sha256": inc.playbook_sha256,
            "mode": inc.mode, "status": inc.status, "started_by": inc.started_by,
            "started_at": rfc3339(inc.created_at),
        },
        "events": events.iter().map(|e| json!({
            "seq": e.seq,
            "at": rfc3339(e.at),
            "at_ms": e.at,
            "offset": offset(e.at - inc.created_at),
            "actor": e.actor,
            "kind": e.kind,
            "step": e.step,
            "item": e.index,
            "summary": e.summary,
            "data": e.data(),
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        })).collect::<Vec<_>>(),
    })
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

pub fn to_markdown(inc: &IncidentRecord, events: &[Event]) -> String {
    let mut out = String::new();
    let banner = if inc.mode == "rehearsal" {
        " — REHEARSAL"
    } else {
        ""
    };
    out.push_str(&format!(
        "# Timeline of {} ({}){banner}\n\nPlaybook `{}` (sha256 `{}`), started {} by {}, status **{}**.\n\n",
        inc.id,
        inc.playbook_name,
        inc.playbook_name,
        inc.playbook_sha256,
        rfc3339(inc.created_at),
        inc.started_by,
        inc.status
    ));
    out.push_str("| # | time (UTC) | offset | actor | event | step | summary |\n|---|---|---|---|---|---|---|\n");
    for e in events {
        let step = match (&e.step, e.index) {
            (Some(s), Some(i)) => format!("{s}[{i}]"),
            (Some(s), None) => s.clone(),
            _ => String::new(),
        };
        let kind = if inc.mode == "rehearsal" {
            format!("{} (rehearsal)", e.kind)
        } else {
            e.kind.clone()
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            e.seq,
            rfc3339(e.at),
            offset(e.at - inc.created_at),
            cell(&e.actor),
            kind,
            cell(&step),
            cell(&e.summary)
        ));
    }
    out
}
