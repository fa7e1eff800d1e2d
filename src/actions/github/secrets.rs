//! `github.set_actions_secret` / `github.delete_actions_secret`: repository, environment
//! or organisation Actions secrets.
//!
//! The value comes from an env var or a file (or, in `credentials.rotate`, from the
//! rotation itself); it is sealed to the scope's public key in memory and only the sealed
//! form leaves the process. The timeline shows the request with `encrypted_value` elided
//! and a salted fingerprint of the value.

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{REPO, client, credential, opt_segment, plan_failed, read, repo_input, seg, would};
use crate::actions::kube::secret::fingerprint;
use crate::actions::preflight::Check;
use crate::actions::{Action, ActionCtx, ActionError, ActionOutput, Probe, opt_str_input};
use crate::config::Config;
use crate::net::github::{GitHubClient, seal};
use crate::net::http::RequestRecord;
use crate::playbook::{ActionSpec, InputSpec, InputType};

const SCOPE_INPUTS: [InputSpec; 4] = [
    InputSpec {
        name: "repo",
        required: false,
        ..REPO
    },
    InputSpec {
        name: "environment",
        ty: InputType::String,
        required: false,
        help: "a deployment environment of `repo` (its secrets instead of the repository's)",
    },
    InputSpec {
        name: "org",
        ty: InputType::String,
        required: false,
        help: "an organisation secret instead of a repository one",
    },
    InputSpec {
        name: "name",
        ty: InputType::String,
        required: true,
        help: "the secret's name, e.g. NPM_TOKEN",
    },
];

static SET_SECRET: ActionSpec = ActionSpec {
    name: "github.set_actions_secret",
    summary: "Create or update a GitHub Actions secret (repository, environment or organisation), sealed to GitHub's public key.",
    inputs: &[
        SCOPE_INPUTS[0],
        SCOPE_INPUTS[1],
        SCOPE_INPUTS[2],
        SCOPE_INPUTS[3],
        InputSpec {
            name: "value_env",
            ty: InputType::String,
            required: false,
            help: "environment variable holding the value",
        },
        InputSpec {
            name: "value_file",
            ty: InputType::String,
            required: false,
            help: "file holding the value (first line)",
        },
        InputSpec {
            name: "visibility",
            ty: InputType::String,
            required: false,
            help: "organisation secrets: `private` (default: private repositories) or `all`",
        },
    ],
    outputs: &["scope", "name", "created", "fingerprint"],
    mutating: true,
    destructive: false,
};

static DELETE_SECRET: ActionSpec = ActionSpec {
    name: "github.delete_actions_secret",
    summary: "Delete a GitHub Actions secret (repository, environment or organisation).",
    inputs: &SCOPE_INPUTS,
    outputs: &["scope", "name", "deleted"],
    mutating: true,
    destructive: false,
};

/// Where a secret lives.
#[derive(Clone, Debug, PartialEq)]
pub enum Scope {
    Repo {
        owner: String,
        name: String,
    },
    Env {
        owner: String,
        name: String,
        env: String,
    },
    Org {
        org: String,
    },
}

impl Scope {
    pub fn from_inputs(inputs: &Value) -> Result<Self, ActionError> {
        let org = opt_segment(inputs, "org")?;
        let env = opt_segment(inputs, "environment")?;
        let repo = match inputs.get("repo") {
            None | Some(Value::Null) => None,
            Some(_) => Some(repo_input(inputs)?),
        };
        match (repo, env, org) {
            (Some((owner, name)), None, None) => Ok(Scope::Repo { owner, name }),
            (Some((owner, name)), Some(env), None) => Ok(Scope::Env { owner, name, env }),
            (None, None, Some(org)) => Ok(Scope::Org { org }),
            _ => Err(ActionError::Input(
                "give `repo` (optionally with `environment`) or `org`, not both".into(),
            )),
        }
    }

    /// `…/secrets`: the collection path.
    pub fn path(&self) -> String {
        match self {
            Scope::Repo { owner, name } => format!("/repos/{owner}/{name}/actions/secrets"),
            Scope::Env { owner, name, env } => {
                format!("/repos/{owner}/{name}/environments/{}/secrets", seg(env))
            }
            Scope::Org { org } => format!("/orgs/{}/actions/secrets", seg(org)),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Scope::Repo { owner, name } => format!("{owner}/{name}"),
            Scope::Env { owner, name, env } => format!("{owner}/{name} environment {env}"),
            Scope::Org { org } => format!("organisation {org}"),
        }
    }
}

/// GitHub's rules for secret names.
pub fn check_name(name: &str) -> Result<(), ActionError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.to_ascii_uppercase().starts_with("GITHUB_");
    if ok {
        Ok(())
    } else {
        Err(ActionError::Input(format!(
            "secret name {name:?}: only letters, digits and `_`, not starting with a digit or GITHUB_"
        )))
    }
}

fn name_input(inputs: &Value) -> Result<String, ActionError> {
    let n = crate::actions::str_input(inputs, "name")?
        .trim()
        .to_string();
    check_name(&n)?;
    Ok(n)
}

fn visibility(inputs: &Value, scope: &Scope) -> Result<Option<&'static str>, ActionError> {
    let v = opt_str_input(inputs, "visibility")?;
    match (scope, v) {
        (Scope::Org { .. }, None | Some("private")) => Ok(Some("private")),
        (Scope::Org { .. }, Some("all")) => Ok(Some("all")),
        (Scope::Org { .. }, Some(o)) => Err(ActionError::Input(format!(
            "`visibility` = {o:?}: expected private or all"
        ))),
        (_, None) => Ok(None),
        (_, Some(_)) => Err(ActionError::Input(
            "`visibility` applies to organisation secrets only".into(),
        )),
    }
}

/// The `PUT` that writes `name`, as the timeline shows it (the sealed value elided).
pub fn put_record(
    c: &GitHubClient,
    scope: &Scope,
    name: &str,
    key_id: &str,
    vis: Option<&str>,
) -> RequestRecord {
    let mut body = json!({ "encrypted_value": "<sealed at send time>", "key_id": key_id });
    if let Some(v) = vis {
        body["visibility"] = json!(v);
    }
    c.record("PUT", &format!("{}/{name}", scope.path()))
        .with_json(body)
}

/// Seal `value` to the scope's current key and `PUT` it. Returns the request as recorded
/// and whether the secret was created (201) rather than updated (204).
pub async fn put_secret(
    c: &GitHubClient,
    ctx: &ActionCtx,
    scope: &Scope,
    name: &str,
    value: &SecretString,
    vis: Option<&str>,
) -> Result<(RequestRecord, bool), ActionError> {
    let (key_id, key) = c.public_key(&scope.path()).await.map_err(read)?;
    let rec = put_record(c, scope, name, &key_id, vis);
    ctx.ensure_live(&rec)?;
    let mut body = json!({
        "encrypted_value": seal(&key, value).map_err(ActionError::Read)?,
        "key_id": key_id,
    });
    if let Some(v) = vis {
        body["visibility"] = json!(v);
    }
    let r = c.execute(&rec, Some(&body)).await?;
    Ok((rec, r.status == 201))
}

/// The secret's metadata (`name`, `created_at`, `updated_at`), `None` when absent.
pub async fn secret_meta(
    c: &GitHubClient,
    scope: &Scope,
    name: &str,
) -> Result<Option<Value>, ActionError> {
    c.get_opt(&format!("{}/{name}", scope.path()))
        .await
        .map_err(read)
}

fn value_input(inputs: &Value) -> Result<SecretString, ActionError> {
    let env = opt_str_input(inputs, "value_env")?;
    let file = opt_str_input(inputs, "value_file")?;
    match (env, file) {
        (Some(e), None) => crate::secrets::from_env(e),
        (None, Some(f)) => crate::secrets::from_file(f),
        _ => {
            return Err(ActionError::Input(
                "give exactly one of `value_env` or `value_file`".into(),
            ));
        }
    }
    .map_err(|e| ActionError::Config(e.to_string()))
}

pub struct SetSecret;

#[async_trait]
impl Action for SetSecret {
    fn spec(&self) -> &'static ActionSpec {
        &SET_SECRET
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        super::preflight::secret(ctx, inputs, self.spec().name).await
    }

    fn credential(&self, config: &Config, _inputs: &Value) -> Option<String> {
        credential(config)
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let scope = Scope::from_inputs(inputs)?;
        let name = name_input(inputs)?;
        let vis = visibility(inputs, &scope)?;
        let value = value_input(inputs)?;
        let c = client(ctx)?;
        let (rec, created) = put_secret(&c, ctx, &scope, &name, &value, vis).await?;
        if secret_meta(&c, &scope, &name).await?.is_none() {
            return Err(ActionError::Failed(format!(
                "GitHub accepted secret {name} in {} but does not list it",
                scope.label()
            )));
        }
        let fp = fingerprint(&ctx.idem_key, &value);
        Ok(ActionOutput::new(
            json!({ "scope": scope.label(), "name": name, "created": created, "fingerprint": fp }),
            format!(
                "{} secret {name} in {} (value {fp})",
                if created { "created" } else { "updated" },
                scope.label()
            ),
        )
        .with("requests", json!([super::record_json(&rec)])))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let scope = Scope::from_inputs(inputs)?;
        let name = name_input(inputs)?;
        let vis = visibility(inputs, &scope)?;
        let mut findings = Vec::new();
        if let Err(e) = value_input(inputs) {
            findings.push(format!("blocker: the new value is not available: {e}"));
        }
        let c = client(ctx)?;
        let (key_id, _) = match c.public_key(&scope.path()).await {
            Ok(k) => k,
            Err(e) => {
                return plan_failed(
                    read(e),
                    &format!("read the Actions public key of {}", scope.label()),
                );
            }
        };
        let exists = match secret_meta(&c, &scope, &name).await {
            Ok(m) => m.is_some(),
            Err(e) => return plan_failed(e, "read the secret"),
        };
        let rec = put_record(&c, &scope, &name, &key_id, vis);
        Ok(would(
            json!({ "scope": scope.label(), "name": name, "created": !exists }),
            &[rec],
            "",
        )
        .with("findings", json!(findings)))
    }

    async fn probe(&self, _ctx: &ActionCtx, _inputs: &Value) -> Result<Probe, ActionError> {
        // GitHub never returns a secret's value, so "is it already this value?" cannot be
        // asked; but a PUT of the same value is idempotent, so doing it again is safe.
        Ok(Probe::NotDone {
            evidence: json!({ "why": "a secret's value cannot be read back; writing the same value again is idempotent" }),
        })
    }
}

pub struct DeleteSecret;

#[async_trait]
impl Action for DeleteSecret {
    fn spec(&self) -> &'static ActionSpec {
        &DELETE_SECRET
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        super::preflight::secret(ctx, inputs, self.spec().name).await
    }

    fn credential(&self, config: &Config, _inputs: &Value) -> Option<String> {
        credential(config)
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let scope = Scope::from_inputs(inputs)?;
        let name = name_input(inputs)?;
        let c = client(ctx)?;
        let rec = c.record("DELETE", &format!("{}/{name}", scope.path()));
        ctx.ensure_live(&rec)?;
        let deleted = match c.execute(&rec, None).await {
            Ok(_) => true,
            Err(e) if e.status() == Some(404) => false,
            Err(e) => return Err(e.into()),
        };
        if secret_meta(&c, &scope, &name).await?.is_some() {
            return Err(ActionError::Failed(format!(
                "GitHub accepted the deletion but still lists secret {name} in {}",
                scope.label()
            )));
        }
        let out = ActionOutput::new(
            json!({ "scope": scope.label(), "name": name, "deleted": deleted }),
            if deleted {
                format!("deleted secret {name} from {} (verified)", scope.label())
            } else {
                format!("secret {name} was already absent from {}", scope.label())
            },
        );
        Ok(if deleted {
            out.with("requests", json!([super::record_json(&rec)]))
        } else {
            out
        })
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let scope = Scope::from_inputs(inputs)?;
        let name = name_input(inputs)?;
        let c = client(ctx)?;
        match secret_meta(&c, &scope, &name).await {
            Ok(Some(_)) => Ok(would(
                json!({ "scope": scope.label(), "name": name, "deleted": true }),
                &[c.record("DELETE", &format!("{}/{name}", scope.path()))],
                "",
            )),
            Ok(None) => Ok(would(
                json!({ "scope": scope.label(), "name": name, "deleted": false }),
                &[],
                format!("secret {name} is already absent from {}", scope.label()),
            )),
            Err(e) => plan_failed(e, "read the secret"),
        }
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let scope = Scope::from_inputs(inputs)?;
        let name = name_input(inputs)?;
        let c = client(ctx)?;
        Ok(match secret_meta(&c, &scope, &name).await {
            Ok(None) => Probe::Done {
                outputs: json!({ "scope": scope.label(), "name": name, "deleted": true }),
                evidence: json!({ "secret": "absent" }),
            },
            Ok(Some(m)) => Probe::NotDone { evidence: m },
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
    fn scopes_and_names() {
        assert_eq!(
            Scope::from_inputs(&json!({"repo": "acme/app"}))
                .unwrap()
                .path(),
            "/repos/acme/app/actions/secrets"
        );
        assert_eq!(
            Scope::from_inputs(&json!({"repo": "acme/app", "environment": "prod env"}))
                .unwrap()
                .path(),
            "/repos/acme/app/environments/prod%20env/secrets"
        );
        assert_eq!(
            Scope::from_inputs(&json!({"org": "acme"})).unwrap().path(),
            "/orgs/acme/actions/secrets"
        );
        assert!(Scope::from_inputs(&json!({"repo": "acme/app", "org": "acme"})).is_err());
        assert!(Scope::from_inputs(&json!({"environment": "x"})).is_err());
        assert!(Scope::from_inputs(&json!({"org": "../x"})).is_err());
        for ok in ["NPM_TOKEN", "_x", "a1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1X", "GITHUB_TOKEN", "github_x", "A-B", "A B"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
