//! Actions: one file per family, one trait for all. Each action declares its inputs and
//! whether it mutates, and implements three paths side by side:
//! - `run`: the live call;
//! - `plan`: the rehearsal — read-only (GETs allowed), returns the exact requests it would send;
//! - `probe`: "did this already happen?", used to reconcile an interrupted attempt.
//!
//! Adding a registry is adding a file here and one line in [`Registry::builtin`].

pub mod crates;
pub mod credentials;
pub mod github;
pub mod incident;
pub mod kube;
pub mod npm;
pub mod oci;
pub mod postmortem;
pub mod preflight;
pub mod pypi;
pub mod sbom;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::config::Config;
use crate::engine::gate::GateFacts;
use crate::engine::{ActionInfo, Mode};
use crate::net::http::{HttpError, RequestRecord};
use crate::playbook::{ActionCatalog, ActionSpec};
use crate::store::Store;

/// What an action gets to work with. No secrets here: actions load theirs from config.
#[derive(Clone)]
pub struct ActionCtx {
    pub incident: String,
    pub step: String,
    pub index: u32,
    pub attempt: u32,
    pub idem_key: String,
    pub mode: Mode,
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
}

impl ActionCtx {
    /// Guard for every outgoing mutating request: a rehearsal must never send one.
    pub fn ensure_live(&self, req: &RequestRecord) -> Result<(), ActionError> {
        if self.mode == Mode::Rehearsal {
            return Err(ActionError::Refused(format!(
                "internal error: {} {} attempted during a rehearsal",
                req.method, req.url
            )));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ActionOutput {
    /// Visible to later steps as `steps.<id>.outputs`.
    pub outputs: Value,
    /// For the timeline: `summary`, `requests` (sent or would-send), `findings`, evidence.
    pub detail: Value,
    /// Set when the work has no API and is handed to a person; the task then waits for
    /// them, and their "done" is verified with the action's `probe`.
    pub human: Option<HumanTask>,
}

/// Work for a person: what to do, and the exact links to do it at.
#[derive(Clone, Debug, PartialEq)]
pub struct HumanTask {
    pub instructions: String,
    pub links: Vec<String>,
}

impl ActionOutput {
    pub fn new(outputs: Value, summary: impl Into<String>) -> Self {
        Self {
            outputs,
            detail: json!({ "summary": summary.into() }),
            human: None,
        }
    }

    /// Hand the task to a person.
    pub fn for_human(mut self, instructions: impl Into<String>, links: Vec<String>) -> Self {
        self.human = Some(HumanTask {
            instructions: instructions.into(),
            links,
        });
        self
    }

    pub fn with(mut self, key: &str, v: Value) -> Self {
        if let Value::Object(m) = &mut self.detail {
            m.insert(key.to_string(), v);
        }
        self
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    Done { outputs: Value, evidence: Value },
    NotDone { evidence: Value },
    Unknown { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("invalid input: {0}")]
    Input(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A read failed before anything that changes the world was sent: worth retrying when
    /// the HTTP error is, and never ambiguous (there is no effect to reconcile).
    #[error(transparent)]
    Read(HttpError),
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Transient(String),
}

impl ActionError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http(e) | Self::Read(e) => e.is_transient(),
            Self::Transient(_) => true,
            _ => false,
        }
    }

    /// Did the request possibly reach the server? Then its effect is unknown.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            Self::Http(HttpError::Transport(_)) => true,
            Self::Http(e) => e.status().is_some_and(|s| s >= 500),
            Self::Transient(_) => true,
            _ => false,
        }
    }

    /// 401/403: the registry refused the credential. Never retried.
    pub fn is_auth_refused(&self) -> bool {
        matches!(self, Self::Http(e) | Self::Read(e) if e.is_auth_refused())
    }

    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::Http(e) | Self::Read(e) => e.retry_after_ms(),
            _ => None,
        }
    }
}

#[async_trait]
pub trait Action: Send + Sync {
    fn spec(&self) -> &'static ActionSpec;
    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError>;
    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError>;
    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError>;

    /// Read-only checks that `run` would succeed with these inputs and this configuration
    /// (credential, permissions, target, registry capabilities). Run in rehearsals next to
    /// `plan`; never sends a mutating request.
    async fn preflight(&self, _ctx: &ActionCtx, _inputs: &Value) -> Vec<preflight::Check> {
        vec![preflight::Check::unknown(
            "preflight.missing",
            self.spec().name,
            "this action has no preflight checks",
            "rehearse it and read its plan's findings",
        )]
    }

    /// Where this action's credential comes from (`[npm] token_env = NPM_TOKEN`), named —
    /// never shown — when a registry refuses it with 401/403.
    fn credential(&self, _config: &Config, _inputs: &Value) -> Option<String> {
        None
    }

    /// Why this action cannot run with `config` (say, no cluster configured); a step using
    /// it is then skipped with the reason recorded.
    fn unavailable(&self, _config: &Config) -> Option<&'static str> {
        None
    }

    /// Destructive actions only: read, live and read-only, what the deletion gate needs —
    /// the registry's own publish time of the target and the labels retention rules match.
    /// Called before every attempt, in rehearsals too.
    async fn gate_facts(
        &self,
        _ctx: &ActionCtx,
        _inputs: &Value,
    ) -> Result<GateFacts, ActionError> {
        Err(ActionError::Refused(format!(
            "`{}` is not a destructive action and has no gate",
            self.spec().name
        )))
    }
}

/// The set of actions a playbook may use.
pub struct Registry {
    actions: BTreeMap<&'static str, Arc<dyn Action>>,
}

impl Registry {
    pub fn builtin() -> Self {
        let mut r = Self {
            actions: BTreeMap::new(),
        };
        for a in npm::actions()
            .into_iter()
            .chain(crates::actions())
            .chain(pypi::actions())
            .chain(oci::actions())
            .chain(sbom::actions())
            .chain(kube::actions())
            .chain(github::actions())
        {
            r.add(a);
        }
        r.add(Arc::new(postmortem::Draft));
        r.add(Arc::new(incident::Note));
        r.add(Arc::new(credentials::Rotate));
        r
    }

    pub fn add(&mut self, a: Arc<dyn Action>) {
        self.actions.insert(a.spec().name, a);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Action>> {
        self.actions.get(name)
    }

    pub fn info(&self, config: &Config) -> BTreeMap<String, ActionInfo> {
        self.actions
            .values()
            .map(|a| {
                let s = a.spec();
                (
                    s.name.to_string(),
                    ActionInfo {
                        mutating: s.mutating,
                        destructive: s.destructive,
                        unavailable: a.unavailable(config),
                    },
                )
            })
            .collect()
    }

    pub fn specs(&self) -> Vec<&'static ActionSpec> {
        self.actions.values().map(|a| a.spec()).collect()
    }
}

impl ActionCatalog for Registry {
    fn spec(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.get(name).map(|a| a.spec())
    }
    fn names(&self) -> Vec<&'static str> {
        self.actions.keys().copied().collect()
    }
}

/// Input helpers: the engine already type-checked literals at lint time, but expressions are
/// only known at run time, so actions check again and fail with the input's name.
pub fn str_input<'a>(inputs: &'a Value, key: &str) -> Result<&'a str, ActionError> {
    match inputs.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(Value::String(_)) => Err(ActionError::Input(format!("`{key}` is empty"))),
        Some(Value::Null) | None => Err(ActionError::Input(format!("`{key}` is required"))),
        Some(other) => Err(ActionError::Input(format!(
            "`{key}` must be a string, got {other}"
        ))),
    }
}

pub fn opt_str_input<'a>(inputs: &'a Value, key: &str) -> Result<Option<&'a str>, ActionError> {
    match inputs.get(key) {
        Some(Value::Null) | None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ActionError::Input(format!(
            "`{key}` must be a string, got {other}"
        ))),
    }
}

pub fn list_input(inputs: &Value, key: &str) -> Result<Vec<String>, ActionError> {
    match inputs.get(key) {
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(ActionError::Input(format!(
                    "`{key}` must be a list of strings, found {other}"
                ))),
            })
            .collect(),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()),
        Some(other) => Err(ActionError::Input(format!(
            "`{key}` must be a list, got {other}"
        ))),
    }
}

pub fn bool_input(inputs: &Value, key: &str, default: bool) -> Result<bool, ActionError> {
    match inputs.get(key) {
        Some(Value::Null) | None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(other) => Err(ActionError::Input(format!(
            "`{key}` must be true or false, got {other}"
        ))),
    }
}

#[cfg(test)]
mod preflight_coverage {
    use super::*;

    /// Every built-in action has its own preflight: the default ("preflight.missing") is
    /// for actions added later, and a report shows it.
    #[tokio::test]
    async fn every_builtin_action_has_a_preflight() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = crate::store::open(&url).await.expect("store");
        let reg = Registry::builtin();
        let mut missing = Vec::new();
        for spec in reg.specs() {
            let ctx = ActionCtx {
                incident: "inc-test".into(),
                step: "s".into(),
                index: 0,
                attempt: 1,
                idem_key: "k".into(),
                mode: Mode::Rehearsal,
                config: Arc::new(Config::default()),
                store: store.clone(),
            };
            let Some(a) = reg.get(spec.name) else {
                continue;
            };
            // Empty inputs: each action answers with its input check (or config-only
            // checks) without a network call.
            let checks = a.preflight(&ctx, &json!({})).await;
            if checks.is_empty() || checks.iter().any(|c| c.check == "preflight.missing") {
                missing.push(spec.name);
            }
        }
        assert!(
            missing.is_empty(),
            "actions without a preflight: {missing:?}"
        );
    }
}
