//! `postmortem.draft`: render the postmortem draft from the timeline recorded so far and
//! store it with the incident (`recall postmortem ID` prints or writes it). Local only: a
//! rehearsal drafts a postmortem too.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Action, ActionCtx, ActionError, ActionOutput, Probe, opt_str_input};
use crate::playbook::{ActionSpec, InputSpec, InputType};

pub struct Draft;

static DRAFT: ActionSpec = ActionSpec {
    name: "postmortem.draft",
    summary: "Draft the postmortem (Markdown) from the incident timeline.",
    inputs: &[InputSpec {
        name: "title",
        ty: InputType::String,
        required: false,
        help: "title of the draft (default: the playbook and the incident id)",
    }],
    outputs: &["artifact", "sha256", "bytes"],
    mutating: false,
    destructive: false,
};

pub const ARTIFACT: &str = "postmortem.md";

#[async_trait]
impl Action for Draft {
    fn spec(&self) -> &'static ActionSpec {
        &DRAFT
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let title = opt_str_input(inputs, "title")?;
        let now = chrono::Utc::now().timestamp_millis();
        let text =
            crate::postmortem::render_for(ctx.store.as_ref(), &ctx.incident, title, None, now)
                .await
                .map_err(|e| ActionError::Failed(e.to_string()))?;
        ctx.store
            .put_artifact(&ctx.incident, ARTIFACT, &text, now)
            .await
            .map_err(|e| ActionError::Transient(e.to_string()))?;
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
        Ok(ActionOutput::new(
            json!({ "artifact": ARTIFACT, "sha256": sha, "bytes": text.len() }),
            format!(
                "postmortem draft stored ({} bytes); `recall postmortem {}` prints it",
                text.len(),
                ctx.incident
            ),
        ))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        self.run(ctx, inputs).await
    }

    async fn preflight(&self, _ctx: &ActionCtx, _inputs: &Value) -> Vec<super::preflight::Check> {
        super::preflight::local(self.spec().name)
    }

    async fn probe(&self, ctx: &ActionCtx, _inputs: &Value) -> Result<Probe, ActionError> {
        // Re-drafting is harmless; report "not done" so an interrupted draft is redone.
        let _ = ctx;
        Ok(Probe::NotDone {
            evidence: Value::Null,
        })
    }
}
