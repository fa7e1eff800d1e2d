//! Kubernetes admission control. `kube.admission_deny` is declared here so playbooks can
//! carry the step today; this build has no `[kube]` cluster configuration yet, so the
//! action reports itself unavailable and the engine skips the step with that reason in the
//! timeline (see docs/decisions.md, "Steps whose action cannot run here"). The enforcement
//! itself (ValidatingAdmissionPolicy, Kyverno, Sigstore) lands with the Kubernetes issue.

use async_trait::async_trait;
use serde_json::Value;

use super::{Action, ActionCtx, ActionError, ActionOutput, Probe};
use crate::config::Config;
use crate::playbook::{ActionSpec, InputSpec, InputType};

const NO_CLUSTER: &str = "no Kubernetes cluster is configured, so there is no admission gate to update \
     (cluster configuration arrives with Recall's Kubernetes support)";

static ADMISSION_DENY: ActionSpec = ActionSpec {
    name: "kube.admission_deny",
    summary: "Deny a bad image digest at admission in every configured cluster.",
    inputs: &[
        InputSpec {
            name: "digests",
            ty: InputType::List,
            required: true,
            help: "image digests (sha256:…) to deny",
        },
        InputSpec {
            name: "image",
            ty: InputType::String,
            required: false,
            help: "the repository the digests belong to, for the message",
        },
        InputSpec {
            name: "mode",
            ty: InputType::String,
            required: false,
            help: "audit, warn or enforce (default enforce)",
        },
    ],
    outputs: &["clusters", "denied"],
    mutating: true,
    destructive: false,
};

pub struct AdmissionDeny;

#[async_trait]
impl Action for AdmissionDeny {
    fn spec(&self) -> &'static ActionSpec {
        &ADMISSION_DENY
    }

    fn unavailable(&self, _config: &Config) -> Option<&'static str> {
        Some(NO_CLUSTER)
    }

    async fn run(&self, _ctx: &ActionCtx, _inputs: &Value) -> Result<ActionOutput, ActionError> {
        Err(ActionError::Config(NO_CLUSTER.into()))
    }

    async fn plan(&self, _ctx: &ActionCtx, _inputs: &Value) -> Result<ActionOutput, ActionError> {
        Err(ActionError::Config(NO_CLUSTER.into()))
    }

    async fn probe(&self, _ctx: &ActionCtx, _inputs: &Value) -> Result<Probe, ActionError> {
        Ok(Probe::Unknown {
            reason: NO_CLUSTER.into(),
        })
    }
}
