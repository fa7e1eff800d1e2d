//! Timeline exports: JSON (for tools), CSV (for spreadsheets) and Markdown (for people),
//! each over an optional [`Filter`] (`--kind`, `--step`, `--since`).

use serde_json::{Value, json};

use std::collections::BTreeMap;

use super::Event;
use crate::config::Config;
use crate::postmortem::{offset, rfc3339};
use crate::store::{IncidentRecord, StoredRun};

/// Links to the registry objects each step item touched: `(step, item)` → URLs (package
/// version pages) or pinned references (`image@digest`). Attached to that item's events.
pub type Links = BTreeMap<(String, u32), Vec<String>>;

/// The objects a task touched, from its action and evaluated inputs.
pub fn links(run: &StoredRun, events: &[Event], config: &Config) -> Links {
    let uses: BTreeMap<String, String> = events
        .iter()
        .filter(|e| e.kind == "step.started")
        .filter_map(|e| Some((e.step.clone()?, e.data().get("uses")?.as_str()?.to_string())))
        .collect();
    let mut out = Links::new();
    for t in &run.tasks {
        let Some(u) = uses.get(&t.step_id) else {
            continue;
        };
        let s = |k: &str| {
            t.inputs
                .get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let mut l = Vec::new();
        let family = u.split('.').next().unwrap_or_default();
        match family {
            "npm" => {
                let web = if config.npm.registry.contains("registry.npmjs.org") {
                    "https://www.npmjs.com/package".to_string()
                } else {
                    config.npm.registry.trim_end_matches('/').to_string()
                };
                if let Some(p) = s("package") {
                    match s("version") {
                        Some(v) if web.contains("npmjs.com") => l.push(format!("{web}/{p}/v/{v}")),
                        _ => l.push(format!("{web}/{p}")),
                    }
                }
            }
            "crates" => {
                if let (Some(c), Some(v)) = (s("crate"), s("version")) {
                    l.push(format!("https://crates.io/crates/{c}/{v}"));
                }
            }
            "pypi" => {
                if let (Some(p), Some(v)) = (s("package"), s("version")) {
                    l.push(format!(
                        "{}/project/{p}/{v}/",
                        config.pypi.web.trim_end_matches('/')
                    ));
                }
            }
            "oci" | "kube" => {
                let image = s("image");
                let mut digests: Vec<String> =
                    s("digest").map(|d| vec![d.to_string()]).unwrap_or_default();
                if let Some(Value::Array(a)) = t.inputs.get("digests") {
                    digests.extend(a.iter().filter_map(Value::as_str).map(String::from));
                }
                for d in digests {
                    l.push(match image {
                        Some(i) => format!("{i}@{d}"),
                        None => d,
                    });
                }
                if let (Some(i), Some(tag)) = (image, s("tag")) {
                    l.push(format!("{i}:{tag}"));
                }
            }
            _ => {}
        }
        if !l.is_empty() {
            out.insert((t.step_id.clone(), t.item_index), l);
        }
    }
    out
}

fn links_of<'a>(links: &'a Links, e: &Event) -> &'a [String] {
    match (&e.step, e.index) {
        (Some(s), Some(i)) => links
            .get(&(s.clone(), i))
            .map(Vec::as_slice)
            .unwrap_or_default(),
        _ => &[],
    }
}

pub fn to_json(inc: &IncidentRecord, events: &[Event], links: &Links) -> Value {
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
            "links": links_of(links, e),
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        })).collect::<Vec<_>>(),
    })
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

pub fn to_markdown(inc: &IncidentRecord, events: &[Event], links: &Links) -> String {
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
            {
                let l = links_of(links, e);
                if l.is_empty() {
                    cell(&e.summary)
                } else {
                    format!("{} ({})", cell(&e.summary), cell(&l.join(", ")))
                }
            }
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
/// or trailing spaces; quotes doubled.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A free-text field (actor, step, summary): one a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@` first) is prefixed with `'`, so an event summary cannot execute.
fn csv_text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@']) {
        csv_field(&format!("'{s}"))
    } else {
        csv_field(s)
    }
}

pub fn to_csv(inc: &IncidentRecord, events: &[Event], links: &Links) -> String {
    let mut out = String::from(
        "seq,time_utc,offset,actor,kind,step,item,summary,links,mode,incident,hash\r\n",
    );
    for e in events {
        let line = [
            csv_field(&e.seq.to_string()),
            csv_field(&rfc3339(e.at)),
            csv_field(&offset(e.at - inc.created_at)),
            csv_text(&e.actor),
            csv_field(&e.kind),
            csv_text(e.step.as_deref().unwrap_or_default()),
            csv_field(&e.index.map(|i| i.to_string()).unwrap_or_default()),
            csv_text(&e.summary),
            csv_field(&links_of(links, e).join(" ")),
            csv_field(&inc.mode),
            csv_field(&inc.id),
            csv_field(&e.hash),
        ];
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
        assert_eq!(csv_text("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("+0.5s"), "+0.5s");
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

/// A fixed incident for golden tests and benchmarks: `n` events with real chain hashes,
/// fixed times, and the awkward characters exports must survive (quotes, commas,
/// newlines, pipes, a formula, non-ASCII).
pub fn fixture(n: usize) -> (IncidentRecord, Vec<Event>) {
    let start = 1_795_838_400_000; // 2026-11-28T04:00:00Z
    let kinds = [
        (
            "incident.started",
            None,
            "oncall started playbook `npm-compromised-release`",
        ),
        (
            "step.started",
            Some("deprecate"),
            "npm.deprecate started for 2 item(s)",
        ),
        (
            "attempt.succeeded",
            Some("deprecate"),
            "deprecated ua-parser-js@0.7.29 with \"compromised, do not use\"",
        ),
        (
            "approval.requested",
            Some("unpublish"),
            "approval needed: npm:ua-parser-js@0.7.29 | 1 of group:release-admins",
        ),
        (
            "note",
            None,
            "line one\nline two, with a comma; and a pipe |",
        ),
        (
            "approval.granted",
            Some("unpublish"),
            "=HYPERLINK(\"x\") granted by alice — résumé ✓",
        ),
        (
            "step.failed",
            Some("revoke"),
            "npm answered 401: token revoked",
        ),
    ];
    let mut events = Vec::with_capacity(n);
    let mut prev = super::GENESIS.to_string();
    for i in 0..n {
        let (kind, step, summary) = kinds[i % kinds.len()];
        let summary = if n > kinds.len() {
            format!("{summary} #{i}")
        } else {
            summary.to_string()
        };
        let data = serde_json::json!({ "i": i, "note": "data, \"quoted\"" }).to_string();
        let at = start + (i as i64) * 1_250;
        let index = step.map(|_| (i % 3) as u32);
        let hash = super::chain_hash(
            &prev,
            &super::Fields {
                incident: "inc-golden01",
                seq: i as i64 + 1,
                at,
                actor: if kind == "note" {
                    "carol, lead"
                } else {
                    "recall"
                },
                kind,
                step,
                index,
                summary: &summary,
                data_json: &data,
            },
        );
        events.push(Event {
            incident: "inc-golden01".into(),
            seq: i as i64 + 1,
            at,
            actor: if kind == "note" {
                "carol, lead".into()
            } else {
                "recall".into()
            },
            kind: kind.into(),
            step: step.map(String::from),
            index,
            summary,
            data_json: data,
            prev_hash: prev.clone(),
            hash: hash.clone(),
        });
        prev = hash;
    }
    let inc = IncidentRecord {
        id: "inc-golden01".into(),
        playbook_name: "npm-compromised-release".into(),
        playbook_sha256: "0".repeat(64),
        playbook_source: String::new(),
        playbook_file: "bundled:npm-compromised-release.yaml".into(),
        params: serde_json::json!({ "package": "ua-parser-js", "versions": ["0.7.29", "0.8.0", "1.0.0"] }),
        mode: "live".into(),
        status: "failed".into(),
        auto_approve: false,
        started_by: "oncall".into(),
        created_at: start,
        updated_at: start + n as i64 * 1_250,
        finished_at: Some(start + n as i64 * 1_250),
        head_seq: n as i64,
        head_hash: prev,
    };
    (inc, events)
}

#[cfg(test)]
mod golden {
    use super::*;

    #[test]
    fn exports_of_a_fixed_incident() {
        let (inc, events) = fixture(7);
        assert!(crate::timeline::verify(&events, inc.head_seq, &inc.head_hash).is_ok());
        let mut links = Links::new();
        links.insert(
            ("deprecate".into(), 2),
            vec!["https://www.npmjs.com/package/ua-parser-js/v/0.7.29".into()],
        );
        links.insert(
            ("unpublish".into(), 0),
            vec![
                "https://www.npmjs.com/package/ua-parser-js/v/0.8.0".into(),
                "x, y".into(),
            ],
        );
        insta::assert_snapshot!(
            "timeline_json",
            serde_json::to_string_pretty(&to_json(&inc, &events, &links)).unwrap()
        );
        insta::assert_snapshot!("timeline_csv", to_csv(&inc, &events, &links));
        insta::assert_snapshot!("timeline_md", to_markdown(&inc, &events, &links));
        let f = Filter {
            kinds: vec!["approval.*".into()],
            ..Default::default()
        };
        insta::assert_snapshot!(
            "timeline_csv_approvals",
            to_csv(&inc, &f.apply(&events), &links)
        );
    }
}
