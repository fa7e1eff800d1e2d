//! The Slack app: request verification, `/recall` command parsing, and the Block Kit
//! messages (pure), the Web API client with rate limits ([`client`]), and the outbox that
//! posts each incident's thread from its timeline ([`notifier`]).

pub mod client;
pub mod notifier;

use serde_json::{Value, json};

use crate::store::{StepRecord, StoredRun};
use crate::timeline::Event;

/// Slack's replay window.
pub const MAX_AGE_SECS: i64 = 300;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VerifyError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("timestamp outside the 5-minute window")]
    Stale,
    #[error("signature mismatch")]
    Signature,
    #[error("request already seen (replay)")]
    Replay,
}

/// Checks `X-Slack-Signature` over `v0:{ts}:{raw body}` (HMAC-SHA256, compared in constant
/// time) and the 5-minute window against `now_secs`. Replays within the window are
/// caught by the caller with the store (`SlackStore::slack_seen`).
pub fn verify(
    secret: &str,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &str,
    now_secs: i64,
) -> Result<(), VerifyError> {
    let sig = signature.ok_or(VerifyError::Missing("X-Slack-Signature"))?;
    let ts = timestamp.ok_or(VerifyError::Missing("X-Slack-Request-Timestamp"))?;
    let t: i64 = ts.trim().parse().map_err(|_| VerifyError::Stale)?;
    if (now_secs - t).abs() > MAX_AGE_SECS {
        return Err(VerifyError::Stale);
    }
    if !sig.starts_with("v0=") {
        return Err(VerifyError::Signature);
    }
    use hmac::{Hmac, Mac};
    use subtle::ConstantTimeEq;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| VerifyError::Signature)?;
    mac.update(b"v0:");
    mac.update(ts.as_bytes());
    mac.update(b":");
    mac.update(body.as_bytes());
    let want = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    if want.as_bytes().ct_eq(sig.as_bytes()).into() {
        Ok(())
    } else {
        Err(VerifyError::Signature)
    }
}

/// A parsed `/recall …` command.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `start <playbook> key=value… [--dry-run]`
    Start {
        playbook: String,
        params: Vec<(String, String)>,
        dry_run: bool,
    },
    /// `start` alone: open the modal.
    StartModal,
    Status(Option<String>),
    List,
    Help,
    /// `note <id> text…`: a human note on the incident's timeline.
    Note {
        id: String,
        text: String,
    },
}

/// Splits on whitespace outside quotes and brackets; Slack's smart quotes count as quotes.
fn tokens(text: &str) -> Result<Vec<String>, String> {
    let text = text
        .replace(['\u{201c}', '\u{201d}'], "\"")
        .replace(['\u{2018}', '\u{2019}'], "'");
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                if depth > 0 {
                    cur.push(c);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                if depth > 0 {
                    cur.push(c);
                }
            }
            (None, '[' | '{') => {
                depth += 1;
                cur.push(c);
            }
            (None, ']' | '}') => {
                depth -= 1;
                cur.push(c);
            }
            (None, c) if c.is_whitespace() && depth <= 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err("unclosed quote".into());
    }
    if depth != 0 {
        return Err("unbalanced brackets".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

pub fn parse_command(text: &str) -> Result<Command, String> {
    let toks = tokens(text)?;
    let Some(verb) = toks.first() else {
        return Ok(Command::Help);
    };
    match verb.as_str() {
        "help" => Ok(Command::Help),
        "list" => Ok(Command::List),
        "status" => Ok(Command::Status(toks.get(1).cloned())),
        "note" => {
            // The text is taken as typed (not tokenised), after the id.
            let rest = text
                .trim_start()
                .strip_prefix("note")
                .unwrap_or("")
                .trim_start();
            let (id, note) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if id.is_empty() || note.trim().is_empty() {
                return Err("`/recall note <incident id> <text>`".into());
            }
            Ok(Command::Note {
                id: id.to_string(),
                text: note.trim().to_string(),
            })
        }
        "start" => {
            let mut playbook = None;
            let mut params = Vec::new();
            let mut dry_run = false;
            for t in &toks[1..] {
                if t == "--dry-run" || t == "--rehearsal" {
                    dry_run = true;
                } else if let Some((k, v)) = t.split_once('=') {
                    if k.is_empty() {
                        return Err(format!("`{t}`: a parameter needs a name (key=value)"));
                    }
                    params.push((k.to_string(), v.to_string()));
                } else if playbook.is_none() {
                    playbook = Some(t.clone());
                } else {
                    return Err(format!(
                        "`{t}` is not key=value (the playbook is already `{}`)",
                        playbook.as_deref().unwrap_or_default()
                    ));
                }
            }
            match playbook {
                Some(p) => Ok(Command::Start {
                    playbook: p,
                    params,
                    dry_run,
                }),
                None if params.is_empty() && !dry_run => Ok(Command::StartModal),
                None => Err("which playbook? `/recall start <playbook> key=value…`".into()),
            }
        }
        other => Err(format!("unknown subcommand `{other}`; try `/recall help`")),
    }
}

pub const HELP: &str = "*Recall* — bad-release incident response\n\
• `/recall start <playbook> key=value… [--dry-run]` start an incident (`--dry-run`: a REHEARSAL, nothing is changed)\n\
• `/recall start` pick a playbook in a form\n\
• `/recall status [id]` where an incident stands (default: the latest)\n\
• `/recall list` recent incidents\n\
• `/recall note <id> <text>` add a note to an incident's timeline\n\
• `/recall help` this text";

/// What an Approve/Reject button carries: the incident, the step and the exact target the
/// approval is for (a press is refused if the step now asks about something else).
pub fn button_value(incident: &str, step: &str, target: &Value) -> String {
    json!({ "i": incident, "s": step, "t": target }).to_string()
}

pub fn parse_button_value(v: &str) -> Option<(String, String, Value)> {
    let v: Value = serde_json::from_str(v).ok()?;
    Some((
        v.get("i")?.as_str()?.to_string(),
        v.get("s")?.as_str()?.to_string(),
        v.get("t").cloned().unwrap_or(Value::Null),
    ))
}

fn status_emoji(status: &str) -> &'static str {
    match status {
        "succeeded" => ":white_check_mark:",
        "failed" | "rejected" => ":x:",
        "running" => ":hourglass_flowing_sand:",
        "awaiting_approval" | "awaiting_human" | "waiting" | "paused" => ":raised_hand:",
        "skipped" => ":fast_forward:",
        _ => ":white_small_square:",
    }
}

/// Slack's section text limit is 3000 characters.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn rehearsal_prefix(run: &StoredRun) -> &'static str {
    if run.incident.mode == "rehearsal" {
        ":test_tube: *REHEARSAL* — nothing is changed. "
    } else {
        ""
    }
}

fn step_line(s: &StepRecord, run: &StoredRun) -> String {
    let tasks: Vec<_> = run
        .tasks
        .iter()
        .filter(|t| t.step_id == s.step_id)
        .collect();
    let target = tasks
        .first()
        .map(|t| crate::engine::describe_inputs(&t.inputs))
        .unwrap_or_default();
    let items = if tasks.len() > 1 {
        let done = tasks.iter().filter(|t| t.status == "succeeded").count();
        format!(" ({done}/{} items)", tasks.len())
    } else {
        String::new()
    };
    let result = match s.status.as_str() {
        "failed" => s
            .error
            .clone()
            .map(|e| format!(" — {}", clip(&e, 200)))
            .unwrap_or_default(),
        _ => String::new(),
    };
    format!(
        "{} `{}` {}{}{}{}",
        status_emoji(&s.status),
        s.step_id,
        s.status,
        items,
        if target.is_empty() {
            String::new()
        } else {
            format!(" · {}", clip(&target, 120))
        },
        result
    )
}

/// The live message: header, state, one line per step. Updated in place as steps progress.
pub fn live_message(run: &StoredRun) -> (String, Vec<Value>) {
    let inc = &run.incident;
    let title = format!(
        "{}Incident `{}` — `{}` is *{}*",
        rehearsal_prefix(run),
        inc.id,
        inc.playbook_name,
        inc.status
    );
    let mut lines: Vec<String> = run.steps.iter().map(|s| step_line(s, run)).collect();
    if lines.is_empty() {
        lines.push("_starting…_".into());
    }
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&title, 2900)}}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(&format!(
            "started by <@{}> · mode {} · params {}",
            inc.started_by, inc.mode, crate::engine::describe_inputs(&inc.params)
        ), 2900)}]}),
    ];
    // Several sections when the steps do not fit one (3000 characters each).
    let mut chunk = String::new();
    for l in lines {
        if chunk.len() + l.len() + 1 > 2800 {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": chunk}}));
            chunk = String::new();
        }
        if !chunk.is_empty() {
            chunk.push('\n');
        }
        chunk.push_str(&l);
    }
    if !chunk.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": chunk}}));
    }
    blocks.truncate(50);
    let text = format!(
        "{}Incident {} ({}) is {}",
        if inc.mode == "rehearsal" {
            "[REHEARSAL] "
        } else {
            ""
        },
        inc.id,
        inc.playbook_name,
        inc.status
    );
    (text, blocks)
}

/// A thread reply for a timeline event worth a person's attention, if it is one.
pub fn event_message(run: &StoredRun, e: &Event) -> Option<(String, Vec<Value>)> {
    let data: Value = serde_json::from_str(&e.data_json).unwrap_or(Value::Null);
    let pre = rehearsal_prefix(run);
    let step = e.step.clone().unwrap_or_default();
    let section =
        |t: String| json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&t, 2900)}});
    match e.kind.as_str() {
        "approval.requested" => {
            let target = data.get("target").cloned().unwrap_or(Value::Null);
            let value = button_value(&e.incident, &step, &target);
            let text = format!(
                "{pre}:raised_hand: Approval needed for `{step}`: {}",
                e.summary
            );
            Some((
                text.clone(),
                vec![
                    section(text),
                    json!({"type": "actions", "block_id": format!("approval:{step}"), "elements": [
                        {"type": "button", "action_id": "approve", "style": "primary",
                         "text": {"type": "plain_text", "text": "Approve"}, "value": value},
                        {"type": "button", "action_id": "reject", "style": "danger",
                         "text": {"type": "plain_text", "text": "Reject"}, "value": value},
                    ]}),
                ],
            ))
        }
        "human.requested"
        | "step.paused"
        | "gate.refused"
        | "step.failed"
        | "approval.expired"
        | "human.verify_failed" => {
            let icon = match e.kind.as_str() {
                "step.failed" | "human.verify_failed" => ":x:",
                "gate.refused" => ":no_entry:",
                _ => ":raised_hand:",
            };
            let text = format!("{pre}{icon} `{step}` {}: {}", e.kind, e.summary);
            Some((text.clone(), vec![section(text)]))
        }
        "approval.granted" | "approval.rejected" => {
            let text = format!("{pre}`{step}` {} by <@{}>: {}", e.kind, e.actor, e.summary);
            Some((text.clone(), vec![section(text)]))
        }
        "incident.finished" => {
            let text = format!(
                "{pre}Incident `{}` {}. Timeline: `recall timeline {}`; postmortem draft: `recall postmortem {}`",
                e.incident, e.summary, e.incident, e.incident
            );
            Some((text.clone(), vec![section(text)]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_quotes_brackets_and_smart_quotes() {
        assert_eq!(parse_command("").unwrap(), Command::Help);
        assert_eq!(parse_command("start").unwrap(), Command::StartModal);
        assert_eq!(
            parse_command("start npm-compromised-release package=left-pad versions=[\"1.3.1\", \"1.3.2\"] --dry-run").unwrap(),
            Command::Start {
                playbook: "npm-compromised-release".into(),
                params: vec![
                    ("package".into(), "left-pad".into()),
                    ("versions".into(), "[\"1.3.1\", \"1.3.2\"]".into())
                ],
                dry_run: true
            }
        );
        assert_eq!(
            parse_command("start p reason=\u{201c}leaked token\u{201d}").unwrap(),
            Command::Start {
                playbook: "p".into(),
                params: vec![("reason".into(), "leaked token".into())],
                dry_run: false
            }
        );
        assert_eq!(
            parse_command("status inc-1").unwrap(),
            Command::Status(Some("inc-1".into()))
        );
        assert!(parse_command("start p \"open").is_err());
        assert!(parse_command("start p x=[1").is_err());
        assert!(parse_command("frobnicate").is_err());
        assert!(parse_command("start a b").is_err());
        assert!(parse_command("start =x").is_err());
    }

    #[test]
    fn signatures() {
        // Slack's documented example.
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        let ts = "1531420618";
        assert_eq!(
            verify(secret, Some(sig), Some(ts), body, 1531420618 + 10),
            Ok(())
        );
        assert_eq!(
            verify(secret, Some(sig), Some(ts), body, 1531420618 + 301),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(secret, Some(sig), Some(ts), &format!("{body}x"), 1531420618),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            verify("other", Some(sig), Some(ts), body, 1531420618),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            verify(secret, None, Some(ts), body, 1531420618),
            Err(VerifyError::Missing("X-Slack-Signature"))
        );
        assert_eq!(
            verify(secret, Some(sig), Some("x"), body, 1531420618),
            Err(VerifyError::Stale)
        );
    }

    #[test]
    fn button_values_round_trip() {
        let v = button_value("inc-1", "delete", &json!("sha256:ab"));
        assert!(v.len() < 2000);
        assert_eq!(
            parse_button_value(&v),
            Some(("inc-1".into(), "delete".into(), json!("sha256:ab")))
        );
        assert_eq!(parse_button_value("nope"), None);
    }
}
