//! `credentials.rotate`: replace a compromised credential as one recorded sequence, and
//! prove the old one dead.
//!
//! Stages, each recorded in the timeline (`credentials.stage`) and in the rotation's
//! staging record before the next begins:
//! 1. **obtain** the new credential: mint it at the provider (npm), generate it (OS
//!    randomness), or take it from a person (`value_env`/`value_file`, or pasted without
//!    echo through `recall credentials provide`);
//! 2. **write** it to each destination (GitHub Actions secret, Kubernetes Secret, env file);
//! 3. **revoke** the old one at its provider (npm token key, crates.io token);
//! 4. **verify**: the old credential is refused and the new one accepted;
//! 5. **done**: the staged value is erased; only salted fingerprints remain.
//!
//! The default order writes before it revokes, so the running systems never hold a dead
//! credential with no new one in place. `revoke_first: true` (for a credential known to be
//! in attackers' hands) revokes and proves it dead first, accepting that outage.
//!
//! Resumable exactly once: between obtain and done the new value is kept in the database
//! sealed (libsodium sealed box) to a key derived from the operator's staging key
//! (`[credentials] staging_key_env`), so a crash after minting resumes with the *same*
//! value instead of minting another. A crash while a mint request was in flight leaves a
//! token whose value nobody holds: its key is found (listed after, absent before) and
//! revoked before minting again. Destinations are idempotent per attempt key (GitHub: the
//! same value again; Kubernetes: the rotation annotation; env file: atomic rename).
//!
//! Files: this one holds the inputs, the staging record and the action; `stages.rs` runs
//! the stages; `plan.rs` is the rehearsal.

mod plan;
mod preflight;
mod stages;

use stages::Run;

use std::collections::BTreeSet;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Action, ActionCtx, ActionError, ActionOutput, Probe, bool_input, list_input, opt_str_input,
    str_input,
};
use crate::actions::github::secrets::{Scope, check_name, put_record, put_secret, secret_meta};
use crate::actions::kube::secret::{Charset, fingerprint, generate, write_value};
use crate::actions::npm::revoke::{find_token, masked_matches};
use crate::config::Config;
use crate::engine::{Entry, Mode};
use crate::net::crates::{CratesClient, TokenState};
use crate::net::http::RequestRecord;
use crate::playbook::{ActionSpec, InputSpec, InputType};

static ROTATE: ActionSpec = ActionSpec {
    name: "credentials.rotate",
    summary: "Rotate a credential: obtain a new one, write it everywhere, revoke the old one and prove it dead.",
    inputs: &[
        InputSpec {
            name: "provider",
            ty: InputType::String,
            required: true,
            help: "where the credential lives: npm, crates or none (a secret only the destinations know)",
        },
        InputSpec {
            name: "new",
            ty: InputType::String,
            required: false,
            help: "how the new credential is obtained: mint (npm), generate, or provided (value_env/value_file or `recall credentials provide`); default mint for npm, provided for crates, generate for none",
        },
        InputSpec {
            name: "old_key",
            ty: InputType::String,
            required: false,
            help: "npm: the old token's key (or a 6+ character prefix, or its masked form)",
        },
        InputSpec {
            name: "old_secret_env",
            ty: InputType::String,
            required: false,
            help: "environment variable holding the old credential, to revoke it (crates) and prove it dead",
        },
        InputSpec {
            name: "password_env",
            ty: InputType::String,
            required: false,
            help: "npm mint: environment variable holding the account password npm asks for",
        },
        InputSpec {
            name: "readonly",
            ty: InputType::Bool,
            required: false,
            help: "npm mint: a read-only token (default false: a publish token)",
        },
        InputSpec {
            name: "cidr",
            ty: InputType::List,
            required: false,
            help: "npm mint: CIDR ranges the new token is limited to",
        },
        InputSpec {
            name: "value_env",
            ty: InputType::String,
            required: false,
            help: "provided: environment variable holding the new value",
        },
        InputSpec {
            name: "value_file",
            ty: InputType::String,
            required: false,
            help: "provided: file holding the new value (first line)",
        },
        InputSpec {
            name: "length",
            ty: InputType::Int,
            required: false,
            help: "generate: length in characters (default 40)",
        },
        InputSpec {
            name: "charset",
            ty: InputType::String,
            required: false,
            help: "generate: alphanumeric (default), hex or base64url",
        },
        InputSpec {
            name: "destinations",
            ty: InputType::Any,
            required: true,
            help: "where the new value goes: a list of {github: OWNER/REPO (or org:), name, environment?}, {kube: CLUSTER, namespace, secret, key, restart?}, {env_file: PATH, var}",
        },
        InputSpec {
            name: "revoke_first",
            ty: InputType::Bool,
            required: false,
            help: "revoke (and prove dead) before writing the new value: for a credential in attackers' hands (default false)",
        },
    ],
    outputs: &[
        "provider",
        "new_fingerprint",
        "new_key",
        "old_revoked",
        "old_dead",
        "new_works",
        "destinations",
    ],
    mutating: true,
    destructive: false,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Provider {
    Npm,
    Crates,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum New {
    Mint,
    Generate { length: usize, charset: Charset },
    Provided,
}

#[derive(Clone, Debug, PartialEq)]
enum Dest {
    GitHub {
        scope: Scope,
        name: String,
    },
    Kube {
        cluster: Option<String>,
        namespace: String,
        secret: String,
        key: String,
        restart: bool,
    },
    EnvFile {
        path: String,
        var: String,
    },
}

impl Dest {
    fn label(&self) -> String {
        match self {
            Dest::GitHub { scope, name } => format!("github:{}:{name}", scope.label()),
            Dest::Kube {
                cluster,
                namespace,
                secret,
                key,
                ..
            } => format!(
                "kube:{}:{namespace}/{secret}:{key}",
                cluster.as_deref().unwrap_or("default")
            ),
            Dest::EnvFile { path, var } => format!("env_file:{path}:{var}"),
        }
    }

    fn parse(v: &Value) -> Result<Dest, ActionError> {
        let s = |k: &str| -> Result<Option<String>, ActionError> {
            opt_str_input(v, k).map(|o| o.map(|x| x.trim().to_string()))
        };
        let need = |k: &str, what: &str| -> Result<String, ActionError> {
            s(k)?.ok_or_else(|| ActionError::Input(format!("destination {what} needs `{k}`")))
        };
        if v.get("github").is_some() || v.get("org").is_some() {
            let mut scope_in = json!({});
            if let Some(r) = s("github")? {
                scope_in["repo"] = json!(r);
            }
            if let Some(o) = s("org")? {
                scope_in["org"] = json!(o);
            }
            if let Some(e) = s("environment")? {
                scope_in["environment"] = json!(e);
            }
            let name = need("name", "github")?;
            check_name(&name)?;
            return Ok(Dest::GitHub {
                scope: Scope::from_inputs(&scope_in)?,
                name,
            });
        }
        if v.get("kube").is_some() {
            let key = need("key", "kube")?;
            return Ok(Dest::Kube {
                cluster: s("kube")?.filter(|c| !c.is_empty() && c != "default"),
                namespace: need("namespace", "kube")?,
                secret: need("secret", "kube")?,
                key,
                restart: bool_input(v, "restart", true)?,
            });
        }
        if v.get("env_file").is_some() {
            let var = need("var", "env_file")?;
            let ok = !var.is_empty()
                && !var.as_bytes()[0].is_ascii_digit()
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(ActionError::Input(format!(
                    "env_file destination: {var:?} is not a variable name"
                )));
            }
            return Ok(Dest::EnvFile {
                path: need("env_file", "env_file")?,
                var,
            });
        }
        Err(ActionError::Input(format!(
            "a destination is {{github: …}}, {{org: …}}, {{kube: …}} or {{env_file: …}}, got {v}"
        )))
    }
}

struct Spec {
    provider: Provider,
    new: New,
    old_key: Option<String>,
    old_secret_env: Option<String>,
    password_env: Option<String>,
    readonly: bool,
    cidr: Vec<String>,
    dests: Vec<Dest>,
    revoke_first: bool,
}

impl Spec {
    fn parse(inputs: &Value) -> Result<Self, ActionError> {
        let provider = match str_input(inputs, "provider")?.trim() {
            "npm" => Provider::Npm,
            "crates" | "crates.io" => Provider::Crates,
            "none" => Provider::None,
            o => {
                return Err(ActionError::Input(format!(
                    "`provider` = {o:?}: expected npm, crates or none"
                )));
            }
        };
        let generate = || -> Result<New, ActionError> {
            let length = match inputs.get("length") {
                None | Some(Value::Null) => 40,
                Some(v) => v
                    .as_u64()
                    .filter(|n| (16..=4096).contains(n))
                    .ok_or_else(|| {
                        ActionError::Input(format!("`length` = {v}: expected 16 to 4096"))
                    })? as usize,
            };
            Ok(New::Generate {
                length,
                charset: Charset::parse(opt_str_input(inputs, "charset")?)?,
            })
        };
        let new = match (opt_str_input(inputs, "new")?.map(str::trim), provider) {
            (Some("mint") | None, Provider::Npm) => New::Mint,
            (Some("mint"), p) => {
                return Err(ActionError::Input(format!(
                    "`new: mint` is possible for npm only ({p:?} has no API to create tokens): use provided"
                )));
            }
            (Some("generate"), Provider::None) | (None, Provider::None) => generate()?,
            (Some("generate"), p) => {
                return Err(ActionError::Input(format!(
                    "`new: generate` makes a value only the destinations know; a {p:?} credential is issued by its registry"
                )));
            }
            (Some("provided") | None, _) => New::Provided,
            (Some(o), _) => {
                return Err(ActionError::Input(format!(
                    "`new` = {o:?}: expected mint, generate or provided"
                )));
            }
        };
        let dests = match inputs.get("destinations") {
            Some(Value::Array(a)) if !a.is_empty() => {
                a.iter().map(Dest::parse).collect::<Result<Vec<_>, _>>()?
            }
            _ => {
                return Err(ActionError::Input(
                    "`destinations` must list at least one place the new value goes".into(),
                ));
            }
        };
        let labels: BTreeSet<String> = dests.iter().map(Dest::label).collect();
        if labels.len() != dests.len() {
            return Err(ActionError::Input(
                "`destinations` names the same place twice".into(),
            ));
        }
        let s = Spec {
            provider,
            new,
            old_key: opt_str_input(inputs, "old_key")?.map(|s| s.trim().to_string()),
            old_secret_env: opt_str_input(inputs, "old_secret_env")?.map(str::to_string),
            password_env: opt_str_input(inputs, "password_env")?.map(str::to_string),
            readonly: bool_input(inputs, "readonly", false)?,
            cidr: list_input(inputs, "cidr")?,
            dests,
            revoke_first: bool_input(inputs, "revoke_first", false)?,
        };
        if s.provider == Provider::Npm && s.old_key.is_none() && s.old_secret_env.is_none() {
            return Err(ActionError::Input(
                "npm: name the old token with `old_key` or `old_secret_env`".into(),
            ));
        }
        if s.provider == Provider::Crates && s.old_secret_env.is_none() {
            return Err(ActionError::Input(
                "crates: the old token is revoked with itself; give `old_secret_env`".into(),
            ));
        }
        if s.new == New::Mint && s.password_env.is_none() {
            return Err(ActionError::Input(
                "npm mint: npm asks for the account password; give `password_env`".into(),
            ));
        }
        Ok(s)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stage {
    #[default]
    Start,
    /// A mint request may be in flight: `snapshot` lists the keys that existed before.
    Minting,
    Obtained,
    Done,
}

/// The rotation's durable progress (an incident artifact). Holds the new value only
/// sealed, and only until the rotation is done.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Staged {
    stage: Stage,
    #[serde(default)]
    new_fingerprint: Option<String>,
    #[serde(default)]
    new_key: Option<String>,
    #[serde(default)]
    sealed: Option<String>,
    #[serde(default)]
    snapshot: Option<Vec<String>>,
    #[serde(default)]
    orphans_revoked: Vec<String>,
    #[serde(default)]
    written: Vec<String>,
    #[serde(default)]
    old_revoked: Option<Value>,
    #[serde(default)]
    old_dead: Option<Value>,
    #[serde(default)]
    new_works: Option<Value>,
}

fn artifact_name(ctx: &ActionCtx) -> String {
    format!("credentials.rotate/{}/{}", ctx.step, ctx.index)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn load(ctx: &ActionCtx) -> Result<Staged, ActionError> {
    match ctx
        .store
        .artifact(&ctx.incident, &artifact_name(ctx))
        .await
        .map_err(|e| ActionError::Failed(format!("reading the rotation's progress: {e}")))?
    {
        None => Ok(Staged::default()),
        Some(t) => serde_json::from_str(&t)
            .map_err(|e| ActionError::Failed(format!("the rotation's progress is corrupt: {e}"))),
    }
}

/// Saves progress, then records the stage in the timeline.
async fn save(
    ctx: &ActionCtx,
    st: &Staged,
    summary: String,
    data: Value,
) -> Result<(), ActionError> {
    let text = serde_json::to_string(st)
        .map_err(|e| ActionError::Failed(format!("encoding the rotation's progress: {e}")))?;
    ctx.store
        .put_artifact(&ctx.incident, &artifact_name(ctx), &text, now_ms())
        .await
        .map_err(|e| ActionError::Failed(format!("saving the rotation's progress: {e}")))?;
    tracing::info!(incident = %ctx.incident, step = %ctx.step, "{summary}");
    ctx.store
        .append(
            &ctx.incident,
            vec![Entry {
                at: now_ms(),
                actor: "recall".into(),
                kind: "credentials.stage".into(),
                step: Some(ctx.step.clone()),
                index: Some(ctx.index),
                summary: crate::secrets::scrub(&summary),
                data,
            }],
        )
        .await
        .map_err(|e| ActionError::Failed(format!("recording the rotation's progress: {e}")))
}

/// The staging key pair, derived from the operator's staging secret.
fn staging_key(config: &Config) -> Result<crypto_box::SecretKey, ActionError> {
    let c = &config.credentials;
    let secret = match (&c.staging_key_file, &c.staging_key_env) {
        (Some(f), _) => crate::secrets::from_file(f),
        (None, Some(e)) => crate::secrets::from_env(e),
        (None, None) => {
            return Err(ActionError::Config(STAGING_MISSING.into()));
        }
    }
    .map_err(|e| ActionError::Config(format!("{STAGING_MISSING} ({e})")))?;
    if secret.expose_secret().len() < 16 {
        return Err(ActionError::Config(
            "the staging key is shorter than 16 characters".into(),
        ));
    }
    let mut h = Sha256::new();
    h.update(b"recall credentials staging v1\0");
    h.update(secret.expose_secret().as_bytes());
    let bytes: [u8; 32] = h.finalize().into();
    Ok(crypto_box::SecretKey::from(bytes))
}

const STAGING_MISSING: &str = "credentials.rotate keeps the new credential sealed between its stages so a crash cannot lose or duplicate it: set the staging key (env RECALL_STAGING_KEY, or [credentials] staging_key_env / staging_key_file) to a long random string";

fn seal_staged(config: &Config, value: &SecretString) -> Result<String, ActionError> {
    let sk = staging_key(config)?;
    let sealed = sk
        .public_key()
        .seal(
            &mut crypto_box::aead::OsRng,
            value.expose_secret().as_bytes(),
        )
        .map_err(|_| ActionError::Failed("sealing the new credential failed".into()))?;
    Ok(B64.encode(sealed))
}

fn unseal_staged(config: &Config, sealed: &str) -> Result<SecretString, ActionError> {
    let sk = staging_key(config)?;
    let raw = B64
        .decode(sealed)
        .map_err(|_| ActionError::Failed("the staged credential is corrupt".into()))?;
    let plain = sk.unseal(&raw).map_err(|_| {
        ActionError::Config(
            "the staged credential does not open with this staging key (was the key changed mid-rotation?)".into(),
        )
    })?;
    let s = String::from_utf8(plain)
        .map_err(|_| ActionError::Failed("the staged credential is not text".into()))?;
    let s = SecretString::from(s);
    crate::secrets::register(&s);
    Ok(s)
}

/// Stores a value a person handed over (`recall credentials provide`), sealed, as the
/// rotation's obtained credential. Refused once the rotation has moved past obtaining.
pub async fn provide(ctx: &ActionCtx, value: SecretString) -> Result<String, ActionError> {
    crate::secrets::register(&value);
    let mut st = load(ctx).await?;
    if st.stage >= Stage::Obtained {
        return Err(ActionError::Refused(format!(
            "this rotation already holds its new credential ({}); nothing was changed",
            st.new_fingerprint.as_deref().unwrap_or("?")
        )));
    }
    let fp = fingerprint(&ctx.idem_key, &value);
    st.sealed = Some(seal_staged(&ctx.config, &value)?);
    st.new_fingerprint = Some(fp.clone());
    st.stage = Stage::Obtained;
    save(
        ctx,
        &st,
        format!("stage 1 obtain: a person provided the new credential ({fp})"),
        json!({ "stage": "obtained", "how": "provided", "fingerprint": fp }),
    )
    .await?;
    Ok(fp)
}

fn crates_client(ctx: &ActionCtx) -> Result<CratesClient, ActionError> {
    let cfg = &ctx.config.crates;
    let ms = crate::duration::parse_duration_ms(&cfg.timeout)
        .map_err(|e| ActionError::Config(format!("crates.timeout: {e}")))?;
    CratesClient::new(&cfg.api, None, std::time::Duration::from_millis(ms))
        .map_err(|e| ActionError::Config(format!("crates.api: {e}")))
}

fn secret_env(var: &str, what: &str) -> Result<SecretString, ActionError> {
    crate::secrets::from_env(var).map_err(|e| ActionError::Config(format!("{what}: {e}")))
}

pub struct Rotate;

#[async_trait]
impl Action for Rotate {
    fn spec(&self) -> &'static ActionSpec {
        &ROTATE
    }

    fn credential(&self, config: &Config, inputs: &Value) -> Option<String> {
        let mut parts = Vec::new();
        match inputs.get("provider").and_then(Value::as_str) {
            Some("npm") => parts.push(crate::actions::npm::credential_source(&config.npm)),
            Some("crates") => parts.push("the old token itself (old_secret_env)".to_string()),
            _ => {}
        }
        let to_github = inputs
            .get("destinations")
            .and_then(Value::as_array)
            .is_some_and(|d| {
                d.iter()
                    .any(|x| x.get("github").is_some() || x.get("org").is_some())
            });
        if to_github {
            parts.push(crate::net::github::credential_source(&config.github));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let mut r = Self::start(ctx, inputs).await?;
        if r.st.stage == Stage::Done {
            return Ok(ActionOutput::new(
                Run::outputs(&r.st, r.spec.provider),
                "rotation was already complete",
            ));
        }
        if r.spec.revoke_first {
            r.revoke().await?;
            r.prove_old_dead().await?;
        }
        let Some(value) = r.obtain().await? else {
            return Ok(r.human_task());
        };
        r.write(&value).await?;
        if !r.spec.revoke_first {
            r.revoke().await?;
            r.prove_old_dead().await?;
        }
        r.prove_new_works(&value).await?;
        r.finish().await
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        plan::plan(ctx, inputs).await
    }

    async fn preflight(
        &self,
        ctx: &ActionCtx,
        inputs: &Value,
    ) -> Vec<crate::actions::preflight::Check> {
        preflight::preflight(ctx, inputs).await
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let spec = Spec::parse(inputs)?;
        let st = load(ctx).await?;
        Ok(if st.stage == Stage::Done {
            Probe::Done {
                outputs: Run::outputs(&st, spec.provider),
                evidence: json!({ "stage": "done" }),
            }
        } else {
            // Every stage is recorded and idempotent: running again resumes at the first
            // stage not recorded as done.
            Probe::NotDone {
                evidence: json!({ "stage": st.stage, "written": st.written, "revoked": st.old_revoked.is_some() }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_checked() {
        let gh = json!([{ "github": "acme/app", "name": "NPM_TOKEN" }]);
        let s = Spec::parse(&json!({"provider": "npm", "old_key": "abc123", "password_env": "P", "destinations": gh})).unwrap();
        assert_eq!(s.new, New::Mint);
        assert!(!s.revoke_first);
        let s = Spec::parse(&json!({"provider": "none", "destinations": [{"env_file": "/tmp/x.env", "var": "API_KEY"}]})).unwrap();
        assert!(matches!(s.new, New::Generate { length: 40, .. }));
        let s = Spec::parse(&json!({"provider": "crates", "old_secret_env": "OLD", "destinations": [{"kube": "prod", "namespace": "ci", "secret": "s", "key": "k"}]})).unwrap();
        assert_eq!(s.new, New::Provided);
        for bad in [
            json!({"provider": "npm", "password_env": "P", "destinations": gh}),
            json!({"provider": "npm", "old_key": "abc123", "destinations": gh}),
            json!({"provider": "crates", "destinations": gh}),
            json!({"provider": "crates", "old_secret_env": "O", "new": "mint", "destinations": gh}),
            json!({"provider": "npm", "old_key": "abc123", "password_env": "P", "destinations": []}),
            json!({"provider": "npm", "old_key": "abc123", "password_env": "P", "destinations": [{"ftp": "x"}]}),
            json!({"provider": "npm", "old_key": "abc123", "password_env": "P", "destinations": [{"github": "acme/app", "name": "GITHUB_X"}]}),
            json!({"provider": "none", "destinations": [{"env_file": "/x", "var": "1X"}]}),
            json!({"provider": "none", "destinations": [{"env_file": "/x", "var": "A"}, {"env_file": "/x", "var": "A"}]}),
            json!({"provider": "ldap", "destinations": gh}),
        ] {
            assert!(Spec::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn staging_round_trip_needs_the_same_key() {
        let mut cfg = Config::default();
        cfg.credentials.staging_key_env = Some("RECALL_TEST_STAGING_KEY_1".into());
        // SAFETY: test-only env var, not read concurrently by other tests.
        unsafe { std::env::set_var("RECALL_TEST_STAGING_KEY_1", "a-long-staging-key-for-tests") };
        let v = SecretString::from("npm_abcdefgh".to_string());
        let sealed = seal_staged(&cfg, &v).unwrap();
        assert!(!sealed.contains("npm_abcdefgh"));
        assert_eq!(
            unseal_staged(&cfg, &sealed).unwrap().expose_secret(),
            "npm_abcdefgh"
        );
        unsafe { std::env::set_var("RECALL_TEST_STAGING_KEY_1", "another-long-staging-key-xx") };
        assert!(unseal_staged(&cfg, &sealed).is_err());
        cfg.credentials.staging_key_env = Some("RECALL_TEST_STAGING_KEY_UNSET".into());
        assert!(
            staging_key(&cfg)
                .unwrap_err()
                .to_string()
                .contains("RECALL_STAGING_KEY")
        );
    }
}
