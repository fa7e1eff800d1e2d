//! `github.mark_release`: warn users on a bad release. Marks it a prerelease (so it is no
//! longer "latest"), prepends a warning banner to its notes, and optionally makes a good
//! release latest.
//!
//! Only `body`, `prerelease` and `make_latest` are ever sent: those are the fields an
//! immutable release still accepts (its tag, commit and assets are frozen). The banner
//! carries a per-incident marker, so it is added once per incident whatever the retries,
//! crashes or steps that mark the same release.

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use super::{REPO, client, credential, plan_failed, read, repo_input, seg, would};
use crate::actions::preflight::Check;
use crate::actions::{
    Action, ActionCtx, ActionError, ActionOutput, Probe, bool_input, opt_str_input, str_input,
};
use crate::config::Config;
use crate::net::github::GitHubClient;
use crate::net::http::RequestRecord;
use crate::playbook::{ActionSpec, InputSpec, InputType};

static MARK_RELEASE: ActionSpec = ActionSpec {
    name: "github.mark_release",
    summary: "Warn on a bad GitHub release: banner in its notes (added once), prerelease, not latest; optionally make a good release latest.",
    inputs: &[
        REPO,
        InputSpec {
            name: "tag",
            ty: InputType::String,
            required: true,
            help: "the bad release's tag, e.g. v1.2.3",
        },
        InputSpec {
            name: "message",
            ty: InputType::String,
            required: false,
            help: "the warning shown at the top of the release notes",
        },
        InputSpec {
            name: "prerelease",
            ty: InputType::Bool,
            required: false,
            help: "mark it a prerelease, which also stops it being latest (default true)",
        },
        InputSpec {
            name: "missing_ok",
            ty: InputType::Bool,
            required: false,
            help: "a version without a GitHub release is fine: record it and succeed (default false)",
        },
        InputSpec {
            name: "latest_tag",
            ty: InputType::String,
            required: false,
            help: "make this (good) release the latest one",
        },
    ],
    outputs: &[
        "release_id",
        "html_url",
        "banner_added",
        "prerelease",
        "latest",
    ],
    mutating: true,
    destructive: false,
};

const DEFAULT_MESSAGE: &str = "Do not use this release: it is affected by a security incident.";

fn banner_marker(ctx: &ActionCtx) -> String {
    format!("<!-- recall:release-warning:{} -->", ctx.incident)
}

fn banner(ctx: &ActionCtx, message: &str) -> String {
    let quoted: Vec<String> = message.lines().map(|l| format!("> {l}")).collect();
    format!(
        "> [!WARNING]\n{}\n>\n> (Recall incident `{}`)\n{}\n\n",
        quoted.join("\n"),
        ctx.incident,
        banner_marker(ctx)
    )
}

struct Plan {
    release: Value,
    patch: Option<(RequestRecord, Value)>,
    latest: Option<(RequestRecord, String)>,
    latest_now: Option<String>,
    /// No release has the tag (and `missing_ok` allowed that).
    missing: bool,
}

fn id_of(v: &Value) -> Result<u64, ActionError> {
    v.get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| ActionError::Failed("the release answer has no numeric `id`".into()))
}

pub struct MarkRelease;

impl MarkRelease {
    async fn decide(
        &self,
        ctx: &ActionCtx,
        c: &GitHubClient,
        inputs: &Value,
    ) -> Result<Plan, ActionError> {
        let (owner, name) = repo_input(inputs)?;
        let tag = str_input(inputs, "tag")?.trim().to_string();
        let message = opt_str_input(inputs, "message")?.unwrap_or(DEFAULT_MESSAGE);
        let prerelease = bool_input(inputs, "prerelease", true)?;
        let latest_tag = opt_str_input(inputs, "latest_tag")?.map(str::trim);
        if latest_tag == Some(tag.as_str()) {
            return Err(ActionError::Input(
                "`latest_tag` is the bad release itself".into(),
            ));
        }
        let repo = format!("/repos/{owner}/{name}");
        let release = match c
            .get_opt(&format!("{repo}/releases/tags/{}", seg(&tag)))
            .await
            .map_err(read)?
        {
            Some(r) => r,
            None if bool_input(inputs, "missing_ok", false)? => {
                return Ok(Plan {
                    release: json!({ "tag_name": tag }),
                    patch: None,
                    latest: None,
                    latest_now: None,
                    missing: true,
                });
            }
            None => {
                return Err(ActionError::Failed(format!(
                    "{owner}/{name} has no release tagged {tag} (set `missing_ok: true` if that is expected)"
                )));
            }
        };
        let id = id_of(&release)?;
        let latest_now = c
            .get_opt(&format!("{repo}/releases/latest"))
            .await
            .map_err(read)?;
        let latest_id = latest_now.as_ref().and_then(|l| l["id"].as_u64());
        let mut body = Map::new();
        let notes = release["body"].as_str().unwrap_or_default();
        if !notes.contains(&banner_marker(ctx)) {
            body.insert(
                "body".into(),
                json!(format!("{}{notes}", banner(ctx, message))),
            );
        }
        if prerelease && release["prerelease"].as_bool() != Some(true) {
            body.insert("prerelease".into(), json!(true));
        }
        if latest_id == Some(id) {
            body.insert("make_latest".into(), json!("false"));
        }
        let patch = (!body.is_empty()).then(|| {
            let shown = Value::Object(
                body.iter()
                    .map(|(k, v)| {
                        let v = if k == "body" {
                            json!(format!(
                                "<warning banner> + the current notes ({} chars)",
                                notes.len()
                            ))
                        } else {
                            v.clone()
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            );
            (
                c.record("PATCH", &format!("{repo}/releases/{id}"))
                    .with_json(shown),
                Value::Object(body),
            )
        });
        let mut latest = None;
        if let Some(good) = latest_tag {
            let g = c
                .get(&format!("{repo}/releases/tags/{}", seg(good)))
                .await
                .map_err(read)?;
            if g["prerelease"].as_bool() == Some(true) || g["draft"].as_bool() == Some(true) {
                return Err(ActionError::Input(format!(
                    "`latest_tag` {good} is a draft or prerelease and cannot be latest"
                )));
            }
            let gid = id_of(&g)?;
            if latest_id != Some(gid) {
                latest = Some((
                    c.record("PATCH", &format!("{repo}/releases/{gid}"))
                        .with_json(json!({ "make_latest": "true" })),
                    good.to_string(),
                ));
            }
        }
        Ok(Plan {
            release,
            patch,
            latest,
            latest_now: latest_now.and_then(|l| l["tag_name"].as_str().map(str::to_string)),
            missing: false,
        })
    }

    fn outputs(p: &Plan, banner_added: bool, latest: Option<String>) -> Value {
        json!({
            "release_id": p.release["id"],
            "html_url": p.release["html_url"],
            "banner_added": banner_added,
            "prerelease": p.patch.as_ref().map_or(p.release["prerelease"].clone(), |(_, b)| b.get("prerelease").cloned().unwrap_or(p.release["prerelease"].clone())),
            "latest": latest,
        })
    }
}

#[async_trait]
impl Action for MarkRelease {
    fn spec(&self) -> &'static ActionSpec {
        &MARK_RELEASE
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        super::preflight::release(ctx, inputs, self.spec().name).await
    }

    fn credential(&self, config: &Config, _inputs: &Value) -> Option<String> {
        credential(config)
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let c = client(ctx)?;
        let p = self.decide(ctx, &c, inputs).await?;
        if p.missing {
            return Ok(ActionOutput::new(
                json!({ "release_id": null, "html_url": null, "banner_added": false, "prerelease": null, "latest": null }),
                format!(
                    "no GitHub release is tagged {}: nothing to mark",
                    p.release["tag_name"].as_str().unwrap_or("?")
                ),
            ));
        }
        let mut sent = Vec::new();
        if let Some((rec, body)) = &p.patch {
            ctx.ensure_live(rec)?;
            c.execute(rec, Some(body)).await?;
            sent.push(rec.clone());
        }
        if let Some((rec, _)) = &p.latest {
            ctx.ensure_live(rec)?;
            c.execute(rec, None).await?;
            sent.push(rec.clone());
        }
        // Read back: the banner is there once, the flags hold, and it is not latest.
        let after = self.decide(ctx, &c, inputs).await?;
        if after.patch.is_some() || after.latest.is_some() {
            return Err(ActionError::Failed(format!(
                "GitHub accepted the release changes but reading them back shows {} still to do",
                after
                    .patch
                    .iter()
                    .map(|(r, _)| r.url.clone())
                    .chain(after.latest.iter().map(|(r, _)| r.url.clone()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let added = p
            .patch
            .as_ref()
            .is_some_and(|(_, b)| b.get("body").is_some());
        let tag = p.release["tag_name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let summary = if sent.is_empty() {
            format!("release {tag} was already marked (banner present, not latest)")
        } else {
            format!(
                "release {tag} marked: {}{} (verified; latest is now {})",
                if added {
                    "warning banner added"
                } else {
                    "banner already present"
                },
                if p.patch
                    .as_ref()
                    .is_some_and(|(_, b)| b.get("prerelease").is_some())
                {
                    ", prerelease"
                } else {
                    ""
                },
                after.latest_now.as_deref().unwrap_or("none")
            )
        };
        Ok(
            ActionOutput::new(Self::outputs(&p, added, after.latest_now), summary)
                .with("requests", sent.iter().map(super::record_json).collect()),
        )
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let c = client(ctx)?;
        match self.decide(ctx, &c, inputs).await {
            Ok(p) if p.missing => Ok(would(
                json!({ "release_id": null, "html_url": null, "banner_added": false, "prerelease": null, "latest": null }),
                &[],
                format!(
                    "no GitHub release is tagged {}",
                    p.release["tag_name"].as_str().unwrap_or("?")
                ),
            )),
            Ok(p) => {
                let reqs: Vec<RequestRecord> = p
                    .patch
                    .iter()
                    .map(|(r, _)| r.clone())
                    .chain(p.latest.iter().map(|(r, _)| r.clone()))
                    .collect();
                let added = p
                    .patch
                    .as_ref()
                    .is_some_and(|(_, b)| b.get("body").is_some());
                let latest = p
                    .latest
                    .as_ref()
                    .map(|(_, t)| t.clone())
                    .or(p.latest_now.clone());
                let mut out = would(
                    Self::outputs(&p, added, latest),
                    &reqs,
                    "the release is already marked",
                );
                if p.release["immutable"].as_bool() == Some(true) {
                    out = out.with(
                        "notes",
                        json!(["the release is immutable: only its notes and flags are changed, which GitHub allows"]),
                    );
                }
                Ok(out)
            }
            Err(e) => plan_failed(e, "read the release"),
        }
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let c = client(ctx)?;
        Ok(match self.decide(ctx, &c, inputs).await {
            Ok(p) if p.patch.is_none() && p.latest.is_none() => Probe::Done {
                outputs: Self::outputs(&p, true, p.latest_now.clone()),
                evidence: json!({ "banner": "present", "prerelease": p.release["prerelease"], "latest": p.latest_now }),
            },
            Ok(p) => Probe::NotDone {
                evidence: json!({ "pending": p.patch.as_ref().map(|(_, b)| b.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>())) }),
            },
            Err(e) => Probe::Unknown {
                reason: e.to_string(),
            },
        })
    }
}
