//! `github.disable_workflow` / `github.enable_workflow`: stop a compromised publishing
//! workflow from running again (and start it once fixed). The workflow is named by its
//! file (`release.yml`, `.github/workflows/release.yml`) or its numeric id.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{REPO, client, credential, plan_failed, read, repo_input, seg, would};
use crate::actions::preflight::Check;
use crate::actions::{Action, ActionCtx, ActionError, ActionOutput, Probe, str_input};
use crate::config::Config;
use crate::net::github::GitHubClient;
use crate::playbook::{ActionSpec, InputSpec, InputType};

const INPUTS: &[InputSpec] = &[
    REPO,
    InputSpec {
        name: "workflow",
        ty: InputType::String,
        required: true,
        help: "the workflow file (release.yml or .github/workflows/release.yml) or its id",
    },
];

static DISABLE: ActionSpec = ActionSpec {
    name: "github.disable_workflow",
    summary: "Disable a GitHub Actions workflow so it cannot run (e.g. a compromised release workflow).",
    inputs: INPUTS,
    outputs: &["workflow_id", "path", "state", "changed"],
    mutating: true,
    destructive: false,
};

static ENABLE: ActionSpec = ActionSpec {
    name: "github.enable_workflow",
    summary: "Enable a GitHub Actions workflow again.",
    inputs: INPUTS,
    outputs: &["workflow_id", "path", "state", "changed"],
    mutating: true,
    destructive: false,
};

pub struct SetWorkflow {
    pub enable: bool,
}

struct Wf {
    owner: String,
    name: String,
    id: String,
    path: String,
    state: String,
}

/// `release.yml`, `.github/workflows/release.yml` or `12345` → the URL segment GitHub takes.
fn workflow_ref(inputs: &Value) -> Result<String, ActionError> {
    let w = str_input(inputs, "workflow")?.trim();
    let file = w.strip_prefix(".github/workflows/").unwrap_or(w);
    if file.is_empty() || file.contains('/') || file == "." || file == ".." {
        return Err(ActionError::Input(format!(
            "`workflow` = {w:?}: expected a file in .github/workflows or a numeric id"
        )));
    }
    Ok(seg(file))
}

impl SetWorkflow {
    fn wanted(&self) -> &'static str {
        if self.enable {
            "active"
        } else {
            "disabled_manually"
        }
    }

    async fn read(&self, c: &GitHubClient, inputs: &Value) -> Result<Wf, ActionError> {
        let (owner, name) = repo_input(inputs)?;
        let r = workflow_ref(inputs)?;
        let v = c
            .get(&format!("/repos/{owner}/{name}/actions/workflows/{r}"))
            .await
            .map_err(read)?;
        let id = v
            .get("id")
            .map(|i| i.to_string().trim_matches('"').to_string())
            .filter(|i| !i.is_empty() && i != "null")
            .ok_or_else(|| ActionError::Failed("the workflow answer has no `id`".into()))?;
        Ok(Wf {
            owner,
            name,
            id,
            path: v["path"].as_str().unwrap_or_default().to_string(),
            state: v["state"].as_str().unwrap_or_default().to_string(),
        })
    }

    fn outputs(w: &Wf, state: &str, changed: bool) -> Value {
        json!({ "workflow_id": w.id, "path": w.path, "state": state, "changed": changed })
    }

    fn request(&self, c: &GitHubClient, w: &Wf) -> crate::net::http::RequestRecord {
        let verb = if self.enable { "enable" } else { "disable" };
        c.record(
            "PUT",
            &format!(
                "/repos/{}/{}/actions/workflows/{}/{verb}",
                w.owner, w.name, w.id
            ),
        )
    }
}

#[async_trait]
impl Action for SetWorkflow {
    fn spec(&self) -> &'static ActionSpec {
        if self.enable { &ENABLE } else { &DISABLE }
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        super::preflight::workflow(
            ctx,
            inputs,
            self.spec().name,
            workflow_ref(inputs),
            self.wanted(),
        )
        .await
    }

    fn credential(&self, config: &Config, _inputs: &Value) -> Option<String> {
        credential(config)
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let c = client(ctx)?;
        let w = self.read(&c, inputs).await?;
        if w.state == self.wanted() {
            return Ok(ActionOutput::new(
                Self::outputs(&w, &w.state, false),
                format!(
                    "workflow {} of {}/{} is already {}",
                    w.path, w.owner, w.name, w.state
                ),
            ));
        }
        let rec = self.request(&c, &w);
        ctx.ensure_live(&rec)?;
        c.execute(&rec, None).await?;
        let after = self.read(&c, inputs).await?;
        if after.state != self.wanted() {
            return Err(ActionError::Failed(format!(
                "GitHub accepted the change but workflow {} is {}",
                w.path, after.state
            )));
        }
        Ok(ActionOutput::new(
            Self::outputs(&w, &after.state, true),
            format!(
                "workflow {} of {}/{}: {} → {} (verified)",
                w.path, w.owner, w.name, w.state, after.state
            ),
        )
        .with("requests", json!([super::record_json(&rec)])))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let c = client(ctx)?;
        match self.read(&c, inputs).await {
            Ok(w) if w.state == self.wanted() => Ok(would(
                Self::outputs(&w, &w.state, false),
                &[],
                format!("workflow {} is already {}", w.path, w.state),
            )),
            Ok(w) => Ok(would(
                Self::outputs(&w, self.wanted(), true),
                &[self.request(&c, &w)],
                "",
            )),
            Err(e) => plan_failed(e, "read the workflow"),
        }
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let c = client(ctx)?;
        Ok(match self.read(&c, inputs).await {
            Ok(w) if w.state == self.wanted() => Probe::Done {
                outputs: Self::outputs(&w, &w.state, true),
                evidence: json!({ "state": w.state }),
            },
            Ok(w) => Probe::NotDone {
                evidence: json!({ "state": w.state }),
            },
            Err(e) => Probe::Unknown {
                reason: e.to_string(),
            },
        })
    }
}
