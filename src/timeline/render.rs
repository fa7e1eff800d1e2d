//! Timeline exports: JSON (for tools), CSV (for spreadsheets) and Markdown (for people),
//! each over an optional [`Filter`] (`--kind`, `--step`, `--since`).

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

/// Which events an export keeps. `kinds` are exact kinds or prefixes ending in `.` or `.*`
/// (`approval.*` keeps every approval event); `since` is milliseconds since the epoch.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub kinds: Vec<String>,
    pub step: Option<String>,
    pub since: Option<i64>,
}

impl Filter {
    pub fn keeps(&self, e: &Event) -> bool {
        let kind_ok = self.kinds.is_empty()
            || self.kinds.iter().any(|k| {
                let k = k.trim();
                match k.strip_suffix('*') {
                    Some(prefix) => e.kind.starts_with(prefix),
                    None if k.ends_with('.') => e.kind.starts_with(k),
                    None => e.kind == k,
                }
            });
        let step_ok = self
            .step
            .as_deref()
            .is_none_or(|s| e.step.as_deref() == Some(s));
        let since_ok = self.since.is_none_or(|t| e.at >= t);
        kind_ok && step_ok && since_ok
    }

    pub fn apply(&self, events: &[Event]) -> Vec<Event> {
        events.iter().filter(|e| self.keeps(e)).cloned().collect()
    }
}

/// Parses `--since`: an RFC 3339 time, or a duration before `now_ms` (`30m`, `2h`).
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.timestamp_millis());
    }
    crate::duration::parse_duration_ms(s.trim())
        .map(|d| now_ms - d as i64)
        .map_err(|_| format!("--since {s:?}: expected an RFC 3339 time (2026-11-28T04:00:00Z) or a duration (30m, 2h)"))
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote, CR or LF, or leading
/// or trailing spaces; quotes doubled. A field a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@` first) is prefixed with `'` so an event summary cannot execute.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn to_csv(inc: &IncidentRecord, events: &[Event]) -> String {
    let mut out =
        String::from("seq,time_utc,offset,actor,kind,step,item,summary,mode,incident,hash\r\n");
    for e in events {
        let fields = [
            e.seq.to_string(),
            rfc3339(e.at),
            offset(e.at - inc.created_at),
            e.actor.clone(),
            e.kind.clone(),
            e.step.clone().unwrap_or_default(),
            e.index.map(|i| i.to_string()).unwrap_or_default(),
            e.summary.clone(),
            inc.mode.clone(),
            inc.id.clone(),
            e.hash.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod csv_tests {
    use super::*;

    #[test]
    fn csv_fields_quote_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field(" padded"), "\" padded\"");
    }

    #[test]
    fn since_parses_times_and_durations() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_since("30m", now).unwrap(), now - 1_800_000);
        assert_eq!(
            parse_since("2026-11-28T04:00:00Z", now).unwrap(),
            chrono::DateTime::parse_from_rfc3339("2026-11-28T04:00:00Z")
                .unwrap()
                .timestamp_millis()
        );
        assert!(parse_since("yesterday", now).is_err());
    }
}
