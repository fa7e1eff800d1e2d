//! GitHub actions: Actions secrets, workflows, releases, security advisories, and the
//! follow-up issue and pull request. One file per concern; this module holds what they
//! share: the client, input parsing, the idempotency marker and the rehearsal findings.
//!
//! Idempotency on GitHub has no request key, so every object Recall creates carries a
//! marker, an HTML comment invisible in rendered Markdown:
//! `<!-- recall:<incident>:<step>:<item> -->`. Before
//! creating, an action looks for its marker; a retry or a resume after a crash therefore
//! finds the issue, advisory or banner the first attempt made instead of making another.

mod advisory;
mod followup;
pub(crate) mod preflight;
mod release;
pub mod secrets;
mod workflow;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::actions::{Action, ActionCtx, ActionError, ActionOutput, opt_str_input, str_input};
use crate::config::Config;
use crate::net::github::GitHubClient;
use crate::net::http::{HttpError, RequestRecord};
use crate::playbook::{InputSpec, InputType};

pub fn actions() -> Vec<Arc<dyn Action>> {
    vec![
        Arc::new(secrets::SetSecret),
        Arc::new(secrets::DeleteSecret),
        Arc::new(workflow::SetWorkflow { enable: false }),
        Arc::new(workflow::SetWorkflow { enable: true }),
        Arc::new(release::MarkRelease),
        Arc::new(advisory::DraftAdvisory),
        Arc::new(followup::OpenIssue),
        Arc::new(followup::OpenPullRequest),
    ]
}

pub(crate) const REPO: InputSpec = InputSpec {
    name: "repo",
    ty: InputType::String,
    required: true,
    help: "the repository, OWNER/NAME",
};

pub(crate) fn client(ctx: &ActionCtx) -> Result<GitHubClient, ActionError> {
    GitHubClient::new(&ctx.config.github).map_err(|e| ActionError::Config(e.to_string()))
}

pub(crate) fn credential(config: &Config) -> Option<String> {
    Some(crate::net::github::credential_source(&config.github))
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `OWNER/NAME`, both checked so they are safe in a URL path.
pub(crate) fn repo_input(inputs: &Value) -> Result<(String, String), ActionError> {
    let r = str_input(inputs, "repo")?.trim();
    let r = r
        .strip_prefix("https://github.com/")
        .unwrap_or(r)
        .trim_end_matches(".git");
    match r.split_once('/') {
        Some((o, n)) if valid_segment(o) && valid_segment(n) => Ok((o.into(), n.into())),
        _ => Err(ActionError::Input(format!(
            "`repo` = {r:?}: expected OWNER/NAME"
        ))),
    }
}

/// A name used as one path segment (environment, org, workflow file, tag), escaped.
pub(crate) fn seg(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

pub(crate) fn opt_segment(inputs: &Value, key: &str) -> Result<Option<String>, ActionError> {
    match opt_str_input(inputs, key)? {
        None => Ok(None),
        Some(s) if s.trim().len() > 255 || s.contains(['/', '\\']) => Err(ActionError::Input(
            format!("`{key}` = {s:?} is not a valid name"),
        )),
        Some(s) => Ok(Some(s.trim().to_string())),
    }
}

/// The marker Recall leaves in what it creates for this step and item.
pub(crate) fn marker(ctx: &ActionCtx) -> String {
    // The idempotency key already reads `recall:<incident>:<step>:<item>`.
    format!("<!-- {} -->", ctx.idem_key)
}

pub(crate) fn record_json(r: &RequestRecord) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// A read failed: the attempt sent nothing, so it is never ambiguous.
pub(crate) fn read(e: HttpError) -> ActionError {
    ActionError::Read(e)
}

/// What a rehearsal reports when a read it needed failed: what would block the live run.
pub(crate) fn finding(e: &ActionError, what: &str) -> String {
    let status = match e {
        ActionError::Http(h) | ActionError::Read(h) => h.status(),
        _ => None,
    };
    let why = match status {
        Some(401) => "the GitHub credential is missing, expired or wrong".to_string(),
        Some(403) => "the GitHub credential lacks a permission".to_string(),
        Some(404) => "not found, or the credential cannot see it".to_string(),
        Some(s) => format!("GitHub answered {s}"),
        None => "GitHub could not be reached or the input is wrong".to_string(),
    };
    format!("blocker: could not {what}: {why} ({e})")
}

/// A rehearsal whose reads failed: the step records the finding instead of failing, so
/// the game day shows every blocker at once.
pub(crate) fn plan_failed(e: ActionError, what: &str) -> Result<ActionOutput, ActionError> {
    match e {
        ActionError::Input(_) => Err(e),
        e => Ok(
            ActionOutput::new(json!({}), format!("rehearsal: could not {what}: {e}"))
                .with("findings", json!([finding(&e, what)])),
        ),
    }
}

/// The output of a rehearsal that would send `requests`.
pub(crate) fn would(
    outputs: Value,
    requests: &[RequestRecord],
    nothing: impl Into<String>,
) -> ActionOutput {
    if requests.is_empty() {
        return ActionOutput::new(outputs, format!("rehearsal: {}", nothing.into()));
    }
    let what: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    ActionOutput::new(outputs, format!("rehearsal: would {}", what.join("; ")))
        .with("requests", requests.iter().map(record_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repos_are_checked() {
        assert_eq!(
            repo_input(&json!({"repo": "acme/app"})).unwrap(),
            ("acme".into(), "app".into())
        );
        assert_eq!(
            repo_input(&json!({"repo": "https://github.com/acme/app.git"})).unwrap(),
            ("acme".into(), "app".into())
        );
        for bad in [
            "acme",
            "acme/",
            "/app",
            "acme/app/x",
            "a b/c",
            "../x",
            "acme/..",
        ] {
            assert!(
                repo_input(&json!({ "repo": bad })).is_err(),
                "{bad} accepted"
            );
        }
        assert_eq!(seg("release notes.yml"), "release%20notes.yml");
    }
}
