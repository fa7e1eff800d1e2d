//! `github.open_issue` / `github.open_pull_request`: the follow-ups of a postmortem — an
//! issue for the work, or a pull request with a policy-as-code change (a permanent
//! deny-list entry, a trusted-publishing workflow replacing a long-lived token).
//!
//! Both are idempotent: the issue body and the pull request carry the step's marker, and
//! the pull request lives on a branch named after the incident and step, so every
//! sub-step (branch, each file, the pull request) is found done on a retry or resume.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::{REPO, client, credential, marker, plan_failed, read, repo_input, seg, would};
use crate::actions::preflight::Check;
use crate::actions::{
    Action, ActionCtx, ActionError, ActionOutput, Probe, bool_input, list_input, opt_str_input,
    str_input,
};
use crate::config::Config;
use crate::net::github::GitHubClient;
use crate::net::http::RequestRecord;
use crate::playbook::{ActionSpec, InputSpec, InputType};

static OPEN_ISSUE: ActionSpec = ActionSpec {
    name: "github.open_issue",
    summary: "Open a follow-up issue (once per step, found again by its marker).",
    inputs: &[
        REPO,
        InputSpec {
            name: "title",
            ty: InputType::String,
            required: true,
            help: "the issue title",
        },
        InputSpec {
            name: "body",
            ty: InputType::String,
            required: false,
            help: "Markdown body",
        },
        InputSpec {
            name: "labels",
            ty: InputType::List,
            required: false,
            help: "labels to set",
        },
        InputSpec {
            name: "assignees",
            ty: InputType::List,
            required: false,
            help: "GitHub logins to assign",
        },
    ],
    outputs: &["number", "html_url", "created"],
    mutating: true,
    destructive: false,
};

static OPEN_PR: ActionSpec = ActionSpec {
    name: "github.open_pull_request",
    summary: "Open a follow-up pull request that adds or replaces files on a new branch.",
    inputs: &[
        REPO,
        InputSpec {
            name: "title",
            ty: InputType::String,
            required: true,
            help: "the pull request title",
        },
        InputSpec {
            name: "body",
            ty: InputType::String,
            required: false,
            help: "Markdown description",
        },
        InputSpec {
            name: "files",
            ty: InputType::Map,
            required: true,
            help: "path → full new content of each file to add or replace",
        },
        InputSpec {
            name: "base",
            ty: InputType::String,
            required: false,
            help: "the branch to merge into (default: the repository's default branch)",
        },
        InputSpec {
            name: "branch",
            ty: InputType::String,
            required: false,
            help: "the new branch (default recall/<incident>-<step>)",
        },
        InputSpec {
            name: "commit_message",
            ty: InputType::String,
            required: false,
            help: "message of the commits that write the files",
        },
        InputSpec {
            name: "draft",
            ty: InputType::Bool,
            required: false,
            help: "open it as a draft (default false)",
        },
    ],
    outputs: &["number", "html_url", "branch", "created"],
    mutating: true,
    destructive: false,
};

fn with_marker(ctx: &ActionCtx, body: Option<&str>) -> String {
    match body {
        Some(b) if !b.trim().is_empty() => format!("{}\n\n{}", b.trim_end(), marker(ctx)),
        _ => format!(
            "Follow-up of Recall incident `{}`.\n\n{}",
            ctx.incident,
            marker(ctx)
        ),
    }
}

/// RFC 3339 time of the incident's start: issues touched since then are searched.
async fn since(ctx: &ActionCtx) -> Option<String> {
    let inc = ctx.store.incident(&ctx.incident).await.ok()??;
    let t = chrono::DateTime::from_timestamp_millis(inc.created_at - 60_000)?;
    Some(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

pub struct OpenIssue;

impl OpenIssue {
    async fn existing(
        ctx: &ActionCtx,
        c: &GitHubClient,
        repo: &str,
    ) -> Result<Option<Value>, ActionError> {
        let mut q = format!("{repo}/issues?state=all");
        if let Some(s) = since(ctx).await {
            q.push_str(&format!("&since={s}"));
        }
        let m = marker(ctx);
        Ok(c.list(&q, None).await.map_err(read)?.into_iter().find(|i| {
            i.get("pull_request").is_none() && i["body"].as_str().is_some_and(|b| b.contains(&m))
        }))
    }

    fn request(
        ctx: &ActionCtx,
        c: &GitHubClient,
        repo: &str,
        inputs: &Value,
    ) -> Result<RequestRecord, ActionError> {
        let title = str_input(inputs, "title")?.trim();
        Ok(c.record("POST", &format!("{repo}/issues"))
            .with_json(json!({
                "title": title,
                "body": with_marker(ctx, opt_str_input(inputs, "body")?),
                "labels": list_input(inputs, "labels")?,
                "assignees": list_input(inputs, "assignees")?,
            })))
    }

    fn outputs(i: &Value, created: bool) -> Value {
        json!({ "number": i["number"], "html_url": i["html_url"], "created": created })
    }
}

#[async_trait]
impl Action for OpenIssue {
    fn spec(&self) -> &'static ActionSpec {
        &OPEN_ISSUE
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        super::preflight::issue(ctx, inputs, self.spec().name).await
    }

    fn credential(&self, config: &Config, _inputs: &Value) -> Option<String> {
        credential(config)
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let (owner, name) = repo_input(inputs)?;
        let repo = format!("/repos/{owner}/{name}");
        let c = client(ctx)?;
        let rec = Self::request(ctx, &c, &repo, inputs)?;
        if let Some(i) = Self::existing(ctx, &c, &repo).await? {
            return Ok(ActionOutput::new(
                Self::outputs(&i, false),
                format!("issue #{} was already opened by this step", i["number"]),
            ));
        }
        ctx.ensure_live(&rec)?;
        let i = c.execute(&rec, None).await?.json()?;
        Ok(ActionOutput::new(
            Self::outputs(&i, true),
            format!(
                "opened issue #{} in {owner}/{name}: {}",
                i["number"],
                i["html_url"].as_str().unwrap_or_default()
            ),
        )
        .with("requests", json!([super::record_json(&rec)])))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let (owner, name) = repo_input(inputs)?;
        let repo = format!("/repos/{owner}/{name}");
        let c = client(ctx)?;
        let rec = Self::request(ctx, &c, &repo, inputs)?;
        match Self::existing(ctx, &c, &repo).await {
            Ok(Some(i)) => Ok(would(
                Self::outputs(&i, false),
                &[],
                "the issue is already open",
            )),
            Ok(None) => Ok(would(
                json!({ "number": null, "html_url": null, "created": true }),
                &[rec],
                "",
            )),
            Err(e) => plan_failed(e, "list the repository's issues"),
        }
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let (owner, name) = repo_input(inputs)?;
        let c = client(ctx)?;
        Ok(
            match Self::existing(ctx, &c, &format!("/repos/{owner}/{name}")).await {
                Ok(Some(i)) => Probe::Done {
                    outputs: Self::outputs(&i, true),
                    evidence: json!({ "number": i["number"] }),
                },
                Ok(None) => Probe::NotDone {
                    evidence: json!({ "issue": "none carries this step's marker" }),
                },
                Err(e) => Probe::Unknown {
                    reason: e.to_string(),
                },
            },
        )
    }
}

pub struct OpenPullRequest;

struct PrInputs {
    owner: String,
    name: String,
    title: String,
    body: String,
    files: BTreeMap<String, String>,
    base: Option<String>,
    branch: String,
    message: String,
    draft: bool,
}

fn check_path(p: &str) -> Result<String, ActionError> {
    let ok = !p.is_empty()
        && !p.starts_with('/')
        && p.len() <= 1024
        && p.split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'));
    if !ok {
        return Err(ActionError::Input(format!(
            "`files`: {p:?} is not a relative path inside the repository"
        )));
    }
    Ok(p.split('/').map(seg).collect::<Vec<_>>().join("/"))
}

fn check_branch(b: &str) -> Result<(), ActionError> {
    let ok = !b.is_empty()
        && b.len() <= 200
        && !b.starts_with(['/', '-', '.'])
        && !b.ends_with(['/', '.'])
        && !b.contains("..")
        && !b.contains("//")
        && !b.ends_with(".lock")
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_./".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(ActionError::Input(format!(
            "branch {b:?} is not a valid branch name here ([A-Za-z0-9._/-])"
        )))
    }
}

impl PrInputs {
    fn parse(ctx: &ActionCtx, inputs: &Value) -> Result<Self, ActionError> {
        let (owner, name) = repo_input(inputs)?;
        let files = match inputs.get("files") {
            Some(Value::Object(m)) if !m.is_empty() => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => {
                        check_path(k)?;
                        Ok((k.clone(), s.clone()))
                    }
                    o => Err(ActionError::Input(format!(
                        "`files`: the content of {k} must be a string, got {o}"
                    ))),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?,
            _ => {
                return Err(ActionError::Input(
                    "`files` must map at least one path to its content".into(),
                ));
            }
        };
        let default_branch = {
            let mut b = format!("recall/{}-{}", ctx.incident, ctx.step);
            if ctx.index > 0 {
                b.push_str(&format!("-{}", ctx.index));
            }
            b.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_./".contains(c) {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        };
        let branch = opt_str_input(inputs, "branch")?
            .map(|b| b.trim().to_string())
            .unwrap_or(default_branch);
        check_branch(&branch)?;
        let base = opt_str_input(inputs, "base")?.map(|b| b.trim().to_string());
        if let Some(b) = &base {
            check_branch(b)?;
        }
        let title = str_input(inputs, "title")?.trim().to_string();
        Ok(Self {
            owner,
            name,
            message: opt_str_input(inputs, "commit_message")?
                .map(str::to_string)
                .unwrap_or_else(|| format!("{title} (Recall incident {})", ctx.incident)),
            title,
            body: with_marker(ctx, opt_str_input(inputs, "body")?),
            files,
            base,
            branch,
            draft: bool_input(inputs, "draft", false)?,
        })
    }

    fn repo(&self) -> String {
        format!("/repos/{}/{}", self.owner, self.name)
    }

    fn branch_seg(&self) -> String {
        self.branch
            .split('/')
            .map(seg)
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// What is still to do, in order, with what was found.
struct PrPlan {
    existing: Option<Value>,
    base: String,
    requests: Vec<(RequestRecord, Value)>,
}

impl OpenPullRequest {
    async fn existing(c: &GitHubClient, p: &PrInputs) -> Result<Option<Value>, ActionError> {
        let head = format!("{}:{}", p.owner, p.branch);
        let q = format!(
            "{}/pulls?state=all&head={}",
            p.repo(),
            percent_encoding::utf8_percent_encode(&head, percent_encoding::NON_ALPHANUMERIC)
        );
        Ok(c.list(&q, None)
            .await
            .map_err(read)?
            .into_iter()
            .find(|pr| pr["head"]["ref"].as_str() == Some(p.branch.as_str())))
    }

    /// Reads the branch and files and lists the writes still needed. The file writes of a
    /// branch that does not exist yet are planned against the base's content.
    async fn decide(&self, c: &GitHubClient, p: &PrInputs) -> Result<PrPlan, ActionError> {
        if let Some(pr) = Self::existing(c, p).await? {
            return Ok(PrPlan {
                existing: Some(pr),
                base: p.base.clone().unwrap_or_default(),
                requests: Vec::new(),
            });
        }
        let repo = p.repo();
        let base = match &p.base {
            Some(b) => b.clone(),
            None => c
                .get(&repo)
                .await
                .map_err(read)?
                .get("default_branch")
                .and_then(Value::as_str)
                .ok_or_else(|| ActionError::Failed("the repository has no default branch".into()))?
                .to_string(),
        };
        let mut requests = Vec::new();
        let branch_ref = c
            .get_opt(&format!("{repo}/git/ref/heads/{}", p.branch_seg()))
            .await
            .map_err(read)?;
        let read_from = if branch_ref.is_some() {
            p.branch.clone()
        } else {
            let b = c
                .get(&format!(
                    "{repo}/git/ref/heads/{}",
                    base.split('/').map(seg).collect::<Vec<_>>().join("/")
                ))
                .await
                .map_err(read)?;
            let sha = b["object"]["sha"]
                .as_str()
                .ok_or_else(|| ActionError::Failed(format!("branch {base} has no commit")))?;
            let body = json!({ "ref": format!("refs/heads/{}", p.branch), "sha": sha });
            requests.push((
                c.record("POST", &format!("{repo}/git/refs"))
                    .with_json(body.clone()),
                body,
            ));
            base.clone()
        };
        let mut changed = 0;
        for (path, content) in &p.files {
            let cur = c
                .get_opt(&format!(
                    "{repo}/contents/{}?ref={}",
                    check_path(path)?,
                    percent_encoding::utf8_percent_encode(
                        &read_from,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                ))
                .await
                .map_err(read)?;
            let (sha, same) = match &cur {
                Some(f) => {
                    let text = f["content"].as_str().unwrap_or_default().replace('\n', "");
                    let same = B64.decode(text).is_ok_and(|b| b == content.as_bytes());
                    (f["sha"].as_str().map(str::to_string), same)
                }
                None => (None, false),
            };
            if same {
                continue;
            }
            changed += 1;
            let mut body = json!({
                "message": p.message,
                "content": B64.encode(content.as_bytes()),
                "branch": p.branch,
            });
            if let Some(s) = &sha {
                body["sha"] = json!(s);
            }
            let shown = json!({
                "message": p.message, "branch": p.branch, "sha": sha,
                "content": format!("<{} bytes, base64>", content.len()),
            });
            requests.push((
                c.record("PUT", &format!("{repo}/contents/{}", check_path(path)?))
                    .with_json(shown),
                body,
            ));
        }
        if changed == 0 && branch_ref.is_none() {
            return Err(ActionError::Failed(format!(
                "every file already has this content on {base}: there is nothing to propose"
            )));
        }
        let body = json!({
            "title": p.title, "head": p.branch, "base": base, "body": p.body, "draft": p.draft,
        });
        requests.push((
            c.record("POST", &format!("{repo}/pulls"))
                .with_json(body.clone()),
            body,
        ));
        Ok(PrPlan {
            existing: None,
            base,
            requests,
        })
    }

    fn outputs(pr: &Value, branch: &str, created: bool) -> Value {
        json!({ "number": pr["number"], "html_url": pr["html_url"], "branch": branch, "created": created })
    }
}

#[async_trait]
impl Action for OpenPullRequest {
    fn spec(&self) -> &'static ActionSpec {
        &OPEN_PR
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        super::preflight::pull_request(ctx, inputs, self.spec().name).await
    }

    fn credential(&self, config: &Config, _inputs: &Value) -> Option<String> {
        credential(config)
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let p = PrInputs::parse(ctx, inputs)?;
        let c = client(ctx)?;
        let plan = self.decide(&c, &p).await?;
        if let Some(pr) = plan.existing {
            return Ok(ActionOutput::new(
                Self::outputs(&pr, &p.branch, false),
                format!(
                    "pull request #{} from {} was already opened by this step",
                    pr["number"], p.branch
                ),
            ));
        }
        let mut sent = Vec::new();
        let mut pr = Value::Null;
        for (rec, body) in &plan.requests {
            ctx.ensure_live(rec)?;
            match c.execute(rec, Some(body)).await {
                Ok(r) => {
                    if rec.url.ends_with("/pulls") {
                        pr = r.json()?;
                    }
                }
                // Another attempt got there first: the branch exists / the PR is open.
                Err(e)
                    if e.status() == Some(422)
                        && (rec.url.ends_with("/git/refs") || rec.url.ends_with("/pulls")) =>
                {
                    if rec.url.ends_with("/pulls") {
                        pr = Self::existing(&c, &p).await?.ok_or_else(|| {
                            ActionError::Failed(format!("GitHub refused the pull request: {e}"))
                        })?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
            sent.push(rec.clone());
        }
        Ok(ActionOutput::new(
            Self::outputs(&pr, &p.branch, true),
            format!(
                "opened pull request #{} ({} → {}) in {}/{}: {}",
                pr["number"],
                p.branch,
                plan.base,
                p.owner,
                p.name,
                pr["html_url"].as_str().unwrap_or_default()
            ),
        )
        .with("requests", sent.iter().map(super::record_json).collect()))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let p = PrInputs::parse(ctx, inputs)?;
        let c = client(ctx)?;
        match self.decide(&c, &p).await {
            Ok(PrPlan {
                existing: Some(pr), ..
            }) => Ok(would(
                Self::outputs(&pr, &p.branch, false),
                &[],
                "the pull request is already open",
            )),
            Ok(plan) => Ok(would(
                json!({ "number": null, "html_url": null, "branch": p.branch, "created": true }),
                &plan
                    .requests
                    .into_iter()
                    .map(|(r, _)| r)
                    .collect::<Vec<_>>(),
                "",
            )),
            Err(e) => plan_failed(e, "read the repository, branch and files"),
        }
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let p = PrInputs::parse(ctx, inputs)?;
        let c = client(ctx)?;
        Ok(match Self::existing(&c, &p).await {
            Ok(Some(pr)) => Probe::Done {
                outputs: Self::outputs(&pr, &p.branch, true),
                evidence: json!({ "number": pr["number"] }),
            },
            // Not open yet: the branch and files written so far are found again and kept.
            Ok(None) => Probe::NotDone {
                evidence: json!({ "pull_request": "none from this step's branch" }),
            },
            Err(e) => Probe::Unknown {
                reason: e.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_branches_are_checked() {
        assert_eq!(
            check_path(".github/workflows/publish.yml").unwrap(),
            ".github/workflows/publish.yml"
        );
        assert_eq!(check_path("docs/a b.md").unwrap(), "docs/a%20b.md");
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a\\b"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert!(check_branch("recall/inc-1-pr").is_ok());
        for bad in ["", "-x", "a..b", "a//b", "x.lock", "a b", "x/"] {
            assert!(check_branch(bad).is_err(), "{bad}");
        }
    }
}
