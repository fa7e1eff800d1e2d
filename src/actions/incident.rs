//! `incident.note`: put a line into the incident's timeline from a playbook (a reminder,
//! an instruction for a human, a marker). Touches nothing outside the incident.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Action, ActionCtx, ActionError, ActionOutput, Probe, str_input};
use crate::playbook::{ActionSpec, InputSpec, InputType};

pub struct Note;

static NOTE: ActionSpec = ActionSpec {
    name: "incident.note",
    summary: "Record a note in the incident timeline.",
    inputs: &[InputSpec {
        name: "message",
        ty: InputType::String,
        required: true,
        help: "the text to record",
    }],
    outputs: &["message"],
    mutating: false,
    destructive: false,
};

#[async_trait]
impl Action for Note {
    fn spec(&self) -> &'static ActionSpec {
        &NOTE
    }

    async fn run(&self, _ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let m = str_input(inputs, "message")?;
        Ok(ActionOutput::new(json!({ "message": m }), m.to_string()))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        self.run(ctx, inputs).await
    }

    async fn preflight(&self, _ctx: &ActionCtx, _inputs: &Value) -> Vec<super::preflight::Check> {
        super::preflight::local(self.spec().name)
    }

    async fn probe(&self, _ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let m = str_input(inputs, "message")?;
        Ok(Probe::Done {
            outputs: json!({ "message": m }),
            evidence: Value::Null,
        })
    }
}
