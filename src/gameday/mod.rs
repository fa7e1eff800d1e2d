//! Game days: a rehearsal of a scenario or playbook with preflight on every step, then a
//! report of what would have blocked containment. `recall gameday run|list` and the
//! schedule in `recall serve` share this module.
//!
//! The rehearsal is an ordinary incident (`mode = rehearsal`, auto-approved), so it is
//! recorded, chained and auditable like any other; the report is derived from what it
//! recorded ([`report::build`]), never from a second run.

pub mod report;
pub mod schedule;

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::actions::preflight::Check;
use crate::bundled::{self, LookupError};
use crate::config::Config;
use crate::engine::Mode;
use crate::runner::{DriveOutcome, RunError, Runner, StartRequest};

/// The exit code of a game day that found something that would block containment.
pub const EXIT_BLOCKED: u8 = 4;

/// What a game day rehearses: a scenario (playbook + params) or a playbook with params.
#[derive(Debug, Clone)]
pub struct Target {
    /// The name as given (scenario or playbook).
    pub name: String,
    pub scenario: Option<String>,
    pub file: String,
    pub source: Vec<u8>,
    pub params: Vec<(String, String)>,
}

impl Target {
    /// The auto-approved rehearsal this game day starts (also what `Runner::validate`
    /// checks before a game day is accepted).
    pub fn request(&self, actor: &str) -> StartRequest {
        StartRequest {
            file: self.file.clone(),
            source: self.source.clone(),
            params: self.params.clone(),
            mode: Mode::Rehearsal,
            auto_approve: true,
            started_by: actor.to_string(),
        }
    }
}

/// The artifact names a game day's reports are stored under with its incident.
pub const REPORT_MD: &str = "gameday.md";
pub const REPORT_JSON: &str = "gameday.json";

/// Render the report (Markdown, pretty JSON) and store both with the incident.
pub async fn store_report(
    store: &dyn crate::store::Store,
    id: &str,
    report: &Value,
    now: i64,
) -> Result<(String, String), crate::store::StoreError> {
    let md = report::to_markdown(report);
    let js = format!(
        "{}\n",
        serde_json::to_string_pretty(report).unwrap_or_default()
    );
    store.put_artifact(id, REPORT_MD, &md, now).await?;
    store.put_artifact(id, REPORT_JSON, &js, now).await?;
    Ok((md, js))
}

/// A scenario by bundled name or file, else a playbook by path or bundled name; `params`
/// override the scenario's.
pub fn resolve(name: &str, params: &[(String, String)]) -> Result<Target, LookupError> {
    let (scenario, playbook, mut merged) = match bundled::scenario(name) {
        Ok(sc) => (Some(name.to_string()), sc.playbook.clone(), sc.raw_params()),
        Err(LookupError::Scenario { .. } | LookupError::BadScenario { .. }) => {
            (None, name.to_string(), Vec::new())
        }
        Err(e) => return Err(e),
    };
    for (k, v) in params {
        merged.retain(|(pk, _)| pk != k);
        merged.push((k.clone(), v.clone()));
    }
    let (file, source) = bundled::playbook(&playbook).map_err(|e| match (&scenario, e) {
        (None, LookupError::Playbook { name, known }) => LookupError::Playbook {
            name,
            known: format!(
                "{known}; bundled scenarios: {}",
                bundled::SCENARIOS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        (_, e) => e,
    })?;
    Ok(Target {
        name: name.to_string(),
        scenario,
        file,
        source,
        params: merged,
    })
}

/// One row of `recall gameday list`.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub name: String,
    pub playbook: String,
    pub ecosystem: String,
    pub incident: String,
}

pub fn list() -> Vec<Listed> {
    bundled::SCENARIOS
        .iter()
        .filter_map(|(n, _)| {
            let sc = bundled::scenario(n).ok()?;
            Some(Listed {
                name: n.to_string(),
                playbook: sc.playbook,
                ecosystem: sc.ecosystem,
                incident: sc.incident.split_whitespace().collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

/// Start the rehearsal and drive it as far as it goes (a rehearsal auto-approves, so it
/// normally finishes; a step handed to a person is recorded and the drive stops there).
pub async fn rehearse(
    runner: &Runner,
    target: &Target,
    actor: &str,
) -> Result<(String, DriveOutcome), RunError> {
    runner.start(target.request(actor)).await
}

/// Checks that belong to the incident rather than to a step: the Slack channel the
/// incident thread goes to.
pub async fn incident_checks(config: &Config) -> Vec<Check> {
    let s = &config.slack;
    let token = match crate::serve::secret(&s.bot_token_env, &s.bot_token_file) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return vec![Check::unknown(
                "slack.channel",
                "the incident channel",
                "Slack is not configured ([slack] bot_token_env): the incident is followed in the CLI and the pages only",
                "configure the Slack app (docs/slack.md) so on-call sees the incident thread",
            )];
        }
        Err(e) => {
            return vec![
                Check::fail(
                    "slack.credential",
                    "the Slack bot token",
                    e,
                    "fix [slack] bot_token_env / bot_token_file",
                )
                .impact(crate::actions::preflight::Impact::Degrades),
            ];
        }
    };
    let Some(channel) = s.channel.clone().filter(|c| !c.trim().is_empty()) else {
        return vec![Check::unknown(
            "slack.channel",
            "the incident channel",
            "no [slack] channel is configured: each incident gets the channel it was started from",
            "set [slack] channel for incidents started outside Slack",
        )];
    };
    let client =
        match crate::slack::client::SlackClient::new(&s.api_url, token, Duration::from_secs(10)) {
            Ok(c) => c,
            Err(e) => {
                return vec![Check::fail(
                    "slack.channel",
                    channel,
                    e,
                    "fix [slack] api_url",
                )];
            }
        };
    vec![slack_channel(&client, &channel).await]
}

/// `conversations.info` (by id) or `conversations.list` (by name): the channel exists, is
/// not archived, and the bot is a member (else `chat.postMessage` answers `not_in_channel`).
async fn slack_channel(client: &crate::slack::client::SlackClient, channel: &str) -> Check {
    use crate::actions::preflight::Impact;
    let name = channel.trim().trim_start_matches('#').to_string();
    let is_id = name.len() >= 9
        && name.starts_with(['C', 'G'])
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    let found: Result<Option<Value>, String> = if is_id {
        match client
            .call("conversations.info", &json!({ "channel": name }))
            .await
        {
            Ok(v) => Ok(v.get("channel").cloned()),
            Err(crate::slack::client::SlackError::Api { code, .. })
                if code == "channel_not_found" =>
            {
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        }
    } else {
        let mut cursor = String::new();
        let mut hit = Ok(None);
        for _page in 0..50 {
            let mut body = json!({ "types": "public_channel,private_channel", "limit": 200, "exclude_archived": false });
            if !cursor.is_empty() {
                body["cursor"] = json!(cursor);
            }
            match client.call("conversations.list", &body).await {
                Ok(v) => {
                    if let Some(c) = v.get("channels").and_then(Value::as_array).and_then(|a| {
                        a.iter()
                            .find(|c| c.get("name").and_then(Value::as_str) == Some(&name))
                    }) {
                        hit = Ok(Some(c.clone()));
                        break;
                    }
                    cursor = v
                        .pointer("/response_metadata/next_cursor")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    if cursor.is_empty() {
                        break;
                    }
                }
                Err(e) => {
                    hit = Err(e.to_string());
                    break;
                }
            }
        }
        hit
    };
    let subject = format!("Slack channel {channel}");
    match found {
        Ok(Some(c)) => {
            let archived = c.get("is_archived").and_then(Value::as_bool) == Some(true);
            let member = c.get("is_member").and_then(Value::as_bool) == Some(true);
            if archived {
                Check::fail("slack.channel", subject, "the channel is archived", "unarchive it or set another [slack] channel").impact(Impact::Degrades)
            } else if !member {
                Check::fail(
                    "slack.channel",
                    subject,
                    "the bot is not a member: chat.postMessage would answer not_in_channel",
                    "invite the Recall app to the channel (`/invite @recall`)",
                )
                .impact(Impact::Degrades)
            } else {
                Check::pass("slack.channel", subject, "exists, not archived, the bot is a member")
            }
        }
        Ok(None) => Check::fail(
            "slack.channel",
            subject,
            "no such channel visible to the bot",
            "create the channel or fix [slack] channel (name or ID)",
        )
        .impact(Impact::Degrades),
        Err(e) => Check::fail(
            "slack.channel",
            subject,
            e,
            "check the bot token's scopes (channels:read, groups:read, chat:write) and that Slack is reachable",
        )
        .impact(Impact::Degrades),
    }
}

/// The report of a stored rehearsal (`None` when there is no such incident).
pub async fn report_of(
    store: &dyn crate::store::Store,
    registry: &crate::actions::Registry,
    config: &Config,
    id: &str,
    scenario: Option<&str>,
) -> Result<Option<Value>, crate::store::StoreError> {
    let Some(run) = store.load(id).await? else {
        return Ok(None);
    };
    let events = store.events(id).await?;
    let pb = crate::playbook::parse(
        &run.incident.playbook_file,
        run.incident.playbook_source.as_bytes(),
        registry,
    )
    .ok()
    .map(|(pb, _)| pb);
    let checks = incident_checks(config).await;
    Ok(Some(report::build(
        &run,
        &events,
        pb.as_ref(),
        config,
        &checks,
        scenario,
    )))
}
