//! Cargo registry containment (crates.io or a private registry speaking cargo's web API):
//! `crates.yank`, `crates.unyank`, `crates.revoke_token`, `crates.remove_trusted_publisher`.
//!
//! The wire protocol lives in `net::crates`; this file decides *what* to send. Every action
//! reads the world first so a retry or a resume never repeats an effect, sends (each
//! mutating request behind [`ActionCtx::ensure_live`]), then verifies by reading back. A
//! rehearsal performs the same reads and returns the exact requests instead of sending them.
//!
//! Errors keep their nature for the engine: 429 (with `Retry-After`), 5xx but 501, timeouts
//! and resets are transient (a 5xx or transport error on a mutating send is also ambiguous,
//! so the engine probes before retrying); a malformed answer is permanent; a 401/403 fails
//! at once, naming where the refused credential came from (`env VAR`, `file PATH`) and never
//! its value. Tokens are identified by [`token_fingerprint`] only.

mod preflight;
pub(crate) use preflight::token_in_env_check;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{Action, ActionCtx, ActionError, ActionOutput, Probe, bool_input, opt_str_input};
use crate::actions::preflight::Check;
use crate::config::{CratesConfig, parse_duration_ms};
use crate::net::crates::{
    CratesClient, CratesError, GithubConfig, TokenState, VersionInfo, token_fingerprint,
    validate_crate_name, validate_version,
};
use crate::net::http::{HttpError, RequestRecord};
use crate::playbook::{ActionSpec, InputSpec, InputType};

pub fn actions() -> Vec<Arc<dyn Action>> {
    vec![
        Arc::new(Yank { undo: false }),
        Arc::new(Yank { undo: true }),
        Arc::new(RevokeToken),
        Arc::new(RemoveTrustedPublisher),
    ]
}

// ---- specs ----------------------------------------------------------------------------

const CRATE: InputSpec = InputSpec {
    name: "crate",
    ty: InputType::String,
    required: true,
    help: "the crate name",
};
const VERSION: InputSpec = InputSpec {
    name: "version",
    ty: InputType::String,
    required: true,
    help: "the exact version (MAJOR.MINOR.PATCH[-pre][+build]; no ranges)",
};

static YANK: ActionSpec = ActionSpec {
    name: "crates.yank",
    summary: "Yank one crate version, with a message where the registry supports it (crates.io's PATCH; plain DELETE …/yank elsewhere), and verify it.",
    inputs: &[
        CRATE,
        VERSION,
        InputSpec {
            name: "message",
            ty: InputType::String,
            required: false,
            help: "the yank message users will see (crates.io only; dropped, and said so, on registries without it)",
        },
    ],
    outputs: &[
        "crate",
        "version",
        "yanked",
        "message_sent",
        "message_dropped",
        "used_fallback",
    ],
    mutating: true,
    destructive: false,
};

static UNYANK: ActionSpec = ActionSpec {
    name: "crates.unyank",
    summary: "Unyank one crate version (PUT …/unyank) and verify it.",
    inputs: &[CRATE, VERSION],
    outputs: &["crate", "version", "yanked"],
    mutating: true,
    destructive: false,
};

static REVOKE: ActionSpec = ActionSpec {
    name: "crates.revoke_token",
    summary: "Revoke a leaked registry token (with itself, or by id with Recall's token) and prove it dead.",
    inputs: &[
        InputSpec {
            name: "token_env",
            ty: InputType::String,
            required: false,
            help: "NAME of the env var holding the leaked token: Recall revokes it with itself (DELETE /api/v1/tokens/current) and proves it is refused afterwards",
        },
        InputSpec {
            name: "id",
            ty: InputType::String,
            required: false,
            help: "numeric id of the leaked token in Recall's account (crates.io/settings/tokens): DELETE /api/v1/me/tokens/{id} with Recall's token. crates.io answers 200 even for unknown ids, so this is unproven unless `token_env` is given too",
        },
        InputSpec {
            name: "allow_self",
            ty: InputType::Bool,
            required: false,
            help: "allow revoking Recall's own configured token (refused by default)",
        },
    ],
    outputs: &[
        "fingerprint",
        "id",
        "via",
        "revoked",
        "proven_dead",
        "proof",
    ],
    mutating: true,
    destructive: false,
};

static REMOVE_TRUST: ActionSpec = ActionSpec {
    name: "crates.remove_trusted_publisher",
    summary: "Delete the crate's GitHub trusted-publishing configurations that match, and verify they are gone.",
    inputs: &[
        CRATE,
        InputSpec {
            name: "id",
            ty: InputType::String,
            required: false,
            help: "the configuration id; omit to match by repository/workflow (no filter at all: every configuration)",
        },
        InputSpec {
            name: "repository",
            ty: InputType::String,
            required: false,
            help: "only configurations for this GitHub owner/repo (case-insensitive)",
        },
        InputSpec {
            name: "workflow",
            ty: InputType::String,
            required: false,
            help: "only configurations for this workflow file name (e.g. publish.yml)",
        },
    ],
    outputs: &["crate", "removed", "ids"],
    mutating: true,
    destructive: false,
};

// ---- errors ---------------------------------------------------------------------------

/// Registry errors as action errors, without knowing where the credential came from (use
/// [`Registry::err`] for that): transient ones keep their HTTP form so the engine retries
/// them (and honours `Retry-After`), a 5xx or transport error stays ambiguous, everything
/// else is permanent.
impl From<CratesError> for ActionError {
    fn from(e: CratesError) -> Self {
        match e {
            CratesError::Transport(m) => ActionError::Http(HttpError::Transport(m)),
            CratesError::Api {
                status,
                method,
                url,
                detail,
                retry_after_ms,
            } if status == 429 || ((500..=599).contains(&status) && status != 501) => {
                ActionError::Http(HttpError::Status {
                    status,
                    method,
                    url,
                    body: detail,
                    retry_after_ms,
                })
            }
            e @ (CratesError::InvalidName { .. }
            | CratesError::InvalidVersion { .. }
            | CratesError::InvalidInput(_)) => ActionError::Input(e.to_string()),
            CratesError::Decode(m) => {
                ActionError::Failed(format!("the registry's answer is malformed: {m}"))
            }
            e @ CratesError::Api { .. } => ActionError::Failed(e.to_string()),
        }
    }
}

/// crates.io's refusal of a scoped token on an endpoint without an endpoint scope.
fn is_scope_refusal(e: &CratesError) -> bool {
    e.status() == Some(403)
        && e.detail()
            .is_some_and(|d| d.contains("does not have the required permissions"))
}

// ---- client -----------------------------------------------------------------------------

/// One registry configuration: the client with Recall's own token, and how to name things.
struct Registry {
    client: CratesClient,
    /// Recall's own token (kept to refuse revoking it by accident).
    own: Option<SecretString>,
    /// Where Recall's token comes from: `env CARGO_REGISTRY_TOKEN`, `file /path`.
    source: String,
    /// `crates.io`, or `the registry at URL`.
    label: String,
}

impl Registry {
    fn is_crates_io(&self) -> bool {
        url::Url::parse(self.client.api_base())
            .ok()
            .and_then(|u| u.host_str().map(|h| h.eq_ignore_ascii_case("crates.io")))
            .unwrap_or(false)
    }

    /// Where a person manages tokens.
    fn tokens_page(&self) -> String {
        if self.is_crates_io() {
            "https://crates.io/settings/tokens".to_string()
        } else {
            format!("the web UI of {}", self.label)
        }
    }

    /// An error of a request made with Recall's own token.
    fn err(&self, e: CratesError) -> ActionError {
        if e.is_auth_refused() && self.own.is_none() {
            return ActionError::Failed(format!(
                "{} refused the request: Recall has no token ({} is not set) ({}: {}){}",
                self.label,
                self.source,
                e.status().unwrap_or(0),
                e.detail().unwrap_or(""),
                on(&e)
            ));
        }
        self.err_from(e, &self.source)
    }

    /// An error of a request made with the token from `source`.
    fn err_from(&self, e: CratesError, source: &str) -> ActionError {
        if e.is_auth_refused() {
            return ActionError::Failed(format!(
                "{} refused the token from {source} ({}: {}){}",
                self.label,
                e.status().unwrap_or(0),
                e.detail().unwrap_or(""),
                on(&e)
            ));
        }
        e.into()
    }

    /// A rehearsal finding about Recall's own token, read-only (`GET /api/v1/me/tokens/0`).
    async fn own_token_finding(&self) -> Option<String> {
        let Some(own) = &self.own else {
            return Some(format!(
                "blocker: Recall has no token for {} ({} is not set); every change would be refused",
                self.label, self.source
            ));
        };
        match self.client.token_state(own).await {
            Ok(TokenState::Refused { status, detail }) => Some(format!(
                "blocker: {} refuses Recall's token from {} ({status}: {detail})",
                self.label, self.source
            )),
            _ => None,
        }
    }
}

/// ` for METHOD URL`, when the error names the request.
fn on(e: &CratesError) -> String {
    match e {
        CratesError::Api { method, url, .. } => format!(" for {method} {url}"),
        _ => String::new(),
    }
}

fn load_token(cfg: &CratesConfig) -> Result<(Option<SecretString>, String), ActionError> {
    if let Some(f) = &cfg.token_file {
        let s = crate::secrets::from_file(f).map_err(|e| ActionError::Config(e.to_string()))?;
        return Ok((Some(s), format!("file {f}")));
    }
    match &cfg.token_env {
        Some(var) => match crate::secrets::from_env(var) {
            Ok(s) => Ok((Some(s), format!("env {var}"))),
            // Fine until a call needs auth; that call's refusal then says so.
            Err(crate::secrets::SecretError::MissingEnv(_)) => Ok((None, format!("env {var}"))),
            Err(e) => Err(ActionError::Config(e.to_string())),
        },
        None => Ok((
            None,
            "the [crates] config (no token_env or token_file)".into(),
        )),
    }
}

/// One client per registry configuration, shared by every attempt (connection reuse).
fn registry(ctx: &ActionCtx) -> Result<Arc<Registry>, ActionError> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<Registry>>>> = OnceLock::new();
    let cfg = &ctx.config.crates;
    let key = format!(
        "{}|{:?}|{:?}|{}",
        cfg.api, cfg.token_env, cfg.token_file, cfg.timeout
    );
    let map = CLIENTS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(r) = map.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(r);
    }
    let (own, source) = load_token(cfg)?;
    let timeout = parse_duration_ms(&cfg.timeout)
        .map_err(|e| ActionError::Config(format!("crates.timeout: {e}")))?;
    let client = CratesClient::new(&cfg.api, own.clone(), Duration::from_millis(timeout))
        .map_err(|e| ActionError::Config(format!("crates.api: {e}")))?;
    let label = match url::Url::parse(client.api_base()) {
        Ok(u) if u.host_str() == Some("crates.io") => "crates.io".to_string(),
        _ => format!("the registry at {}", client.api_base()),
    };
    let r = Arc::new(Registry {
        client,
        own,
        source,
        label,
    });
    if let Ok(mut m) = map.lock() {
        m.insert(key, r.clone());
    }
    Ok(r)
}

fn record_json(r: &RequestRecord) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

// ---- crates.yank / crates.unyank ------------------------------------------------------

/// The validated `crate` and `version`.
struct Target {
    krate: String,
    version: String,
}

impl Target {
    fn from_inputs(inputs: &Value) -> Result<Self, ActionError> {
        let krate = super::str_input(inputs, "crate")?.trim().to_string();
        let version = super::str_input(inputs, "version")?.trim().to_string();
        validate_crate_name(&krate)?;
        validate_version(&version)?;
        Ok(Self { krate, version })
    }

    fn label(&self) -> String {
        format!("{}@{}", self.krate, self.version)
    }
}

pub struct Yank {
    undo: bool,
}

impl Yank {
    fn message<'a>(&self, inputs: &'a Value) -> Result<Option<&'a str>, ActionError> {
        if self.undo {
            return Ok(None);
        }
        Ok(opt_str_input(inputs, "message")?.map(str::trim))
    }

    /// Already in the wanted state: yanked with the wanted message (or any, when none is
    /// wanted), or not yanked for an unyank.
    fn satisfied(&self, v: &VersionInfo, message: Option<&str>) -> bool {
        if self.undo {
            !v.yanked
        } else {
            v.yanked && message.is_none_or(|m| v.yank_message.as_deref() == Some(m))
        }
    }

    fn verb(&self) -> &'static str {
        if self.undo { "unyanked" } else { "yanked" }
    }

    fn outputs(&self, t: &Target, yanked: bool, sent: bool, dropped: bool, fb: bool) -> Value {
        if self.undo {
            json!({ "crate": t.krate, "version": t.version, "yanked": yanked })
        } else {
            json!({ "crate": t.krate, "version": t.version, "yanked": yanked,
                    "message_sent": sent, "message_dropped": dropped, "used_fallback": fb })
        }
    }

    /// The version as the registry has it; a missing version is a permanent failure.
    async fn read(&self, reg: &Registry, t: &Target) -> Result<VersionInfo, ActionError> {
        reg.client
            .version_info(&t.krate, &t.version)
            .await
            .map_err(|e| reg.err(e))?
            .ok_or_else(|| {
                ActionError::Failed(format!(
                    "crate `{}` has no version `{}` at {} (404)",
                    t.krate, t.version, reg.label
                ))
            })
    }
}

#[async_trait]
impl Action for Yank {
    fn spec(&self) -> &'static ActionSpec {
        if self.undo { &UNYANK } else { &YANK }
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let t = Target::from_inputs(inputs)?;
        let message = self.message(inputs)?;
        let reg = registry(ctx)?;
        let c = &reg.client;
        let before = self.read(&reg, &t).await?;
        if self.satisfied(&before, message) {
            let sent = message.is_some();
            return Ok(ActionOutput::new(
                self.outputs(&t, before.yanked, sent, false, false),
                format!("{} is already {}; nothing sent", t.label(), self.verb()),
            )
            .with("requests", json!([])));
        }
        let (requests, sent, dropped, fallback) = if self.undo {
            let rec = c.unyank_request(&t.krate, &t.version)?;
            ctx.ensure_live(&rec)?;
            c.unyank(&t.krate, &t.version)
                .await
                .map_err(|e| reg.err(e))?;
            (vec![record_json(&rec)], false, false, false)
        } else {
            let first = c.yank_request(&t.krate, &t.version, message)?;
            ctx.ensure_live(&first)?;
            if first.method == "PATCH" {
                ctx.ensure_live(&c.yank_fallback_request(&t.krate, &t.version)?)?;
            }
            let r = c
                .yank(&t.krate, &t.version, message)
                .await
                .map_err(|e| reg.err(e))?;
            let reqs: Vec<Value> = r.requests_sent.iter().map(record_json).collect();
            (
                reqs,
                message.is_some() && !r.message_dropped,
                r.message_dropped,
                r.used_fallback,
            )
        };
        // Verify: read back; the registry must show the wanted state.
        let after = self.read(&reg, &t).await?;
        if after.yanked == self.undo {
            return Err(ActionError::Failed(format!(
                "{} accepted the request but {} is {}",
                reg.label,
                t.label(),
                if after.yanked {
                    "still yanked"
                } else {
                    "still not yanked"
                }
            )));
        }
        let mut summary = format!("{} {} (verified)", self.verb(), t.label());
        if let (Some(m), false) = (message, dropped) {
            summary = format!(
                "{} {} with message \"{m}\" (verified)",
                self.verb(),
                t.label()
            );
            if after.yank_message.as_deref() != Some(m) {
                summary.push_str("; the registry does not show the message back");
            }
        }
        if dropped {
            summary.push_str(
                "; the registry has no PATCH route, so the plain DELETE …/yank was used and the message was dropped",
            );
        }
        Ok(ActionOutput::new(
            self.outputs(&t, after.yanked, sent, dropped, fallback),
            summary,
        )
        .with("requests", json!(requests)))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let t = Target::from_inputs(inputs)?;
        let message = self.message(inputs)?;
        let reg = registry(ctx)?;
        let c = &reg.client;
        let mut findings = Vec::new();
        match c.version_info(&t.krate, &t.version).await {
            Ok(Some(v)) if self.satisfied(&v, message) => {
                return Ok(ActionOutput::new(
                    self.outputs(&t, v.yanked, message.is_some(), false, false),
                    format!(
                        "rehearsal: {} is already {}; nothing would be sent",
                        t.label(),
                        self.verb()
                    ),
                )
                .with("requests", json!([]))
                .with("findings", json!(findings)));
            }
            Ok(Some(_)) => {}
            Ok(None) => findings.push(format!(
                "blocker: crate `{}` has no version `{}` at {}",
                t.krate, t.version, reg.label
            )),
            Err(e) => findings.push(format!(
                "could not read {} at {}: {}",
                t.label(),
                reg.label,
                reg.err(e)
            )),
        }
        if let Some(f) = reg.own_token_finding().await {
            findings.push(f);
        }
        let mut out = if self.undo {
            let rec = c.unyank_request(&t.krate, &t.version)?;
            ActionOutput::new(
                self.outputs(&t, false, false, false, false),
                format!("rehearsal: would PUT {}", rec.url),
            )
            .with("requests", json!([record_json(&rec)]))
        } else {
            let first = c.yank_request(&t.krate, &t.version, message)?;
            let mut o = ActionOutput::new(
                self.outputs(&t, true, message.is_some(), false, false),
                format!("rehearsal: would {} {}", first.method, first.url),
            )
            .with("requests", json!([record_json(&first)]));
            if first.method == "PATCH" {
                let fb = c.yank_fallback_request(&t.krate, &t.version)?;
                o = o.with(
                    "fallback",
                    json!([{ "method": fb.method, "url": fb.url,
                             "when": "only if the registry has no PATCH route (405, generic 404, 501): the message is then dropped" }]),
                );
            }
            o
        };
        out = out.with("findings", json!(findings));
        Ok(out)
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        let t = match Target::from_inputs(inputs) {
            Ok(t) => t,
            Err(e) => return vec![crate::actions::preflight::input_check(&e.to_string())],
        };
        let message = matches!(self.message(inputs), Ok(Some(_)));
        preflight::checks(ctx, &t.krate, Some(&t.version), message, "yank").await
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let t = Target::from_inputs(inputs)?;
        let message = self.message(inputs)?;
        let reg = registry(ctx)?;
        match reg.client.version_info(&t.krate, &t.version).await {
            Ok(Some(v)) if v.yanked != self.undo => {
                let sent = message.is_some_and(|m| v.yank_message.as_deref() == Some(m));
                Ok(Probe::Done {
                    outputs: self.outputs(&t, v.yanked, sent, false, false),
                    evidence: json!({ "read": format!("{}api/v1/crates/{}/{}", reg.client.api_base(), t.krate, t.version),
                                      "yanked": v.yanked, "yank_message": v.yank_message, "updated_at": v.updated_at }),
                })
            }
            Ok(Some(v)) => Ok(Probe::NotDone {
                evidence: json!({ "yanked": v.yanked }),
            }),
            Ok(None) => Ok(Probe::Unknown {
                reason: format!("{} not found at {}", t.label(), reg.label),
            }),
            Err(e) => Ok(Probe::Unknown {
                reason: reg.err(e).to_string(),
            }),
        }
    }
}

// ---- crates.revoke_token --------------------------------------------------------------

pub struct RevokeToken;

/// The validated inputs of `crates.revoke_token`.
struct RevokeInputs {
    token_env: Option<String>,
    id: Option<u64>,
    allow_self: bool,
}

/// A numeric id given as a string or a number; empty means absent. The value is never
/// echoed in errors (someone may paste the token itself by mistake).
fn id_input(inputs: &Value, key: &str) -> Result<Option<u64>, ActionError> {
    let bad = || {
        ActionError::Input(format!(
            "`{key}` must be a numeric id (as the registry lists it), not a name or a token"
        ))
    };
    match inputs.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<u64>().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

impl RevokeInputs {
    fn parse(inputs: &Value) -> Result<Self, ActionError> {
        let token_env = opt_str_input(inputs, "token_env")?.map(|s| s.trim().to_string());
        if let Some(v) = &token_env {
            let ok = v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                // Not echoed: it may be the token value pasted in the wrong place.
                return Err(ActionError::Input(
                    "`token_env` must be the NAME of an environment variable holding the leaked token (e.g. LEAKED_CARGO_TOKEN), not the token itself".into(),
                ));
            }
        }
        let id = id_input(inputs, "id")?;
        if token_env.is_none() && id.is_none() {
            return Err(ActionError::Input(
                "give `token_env` (env var holding the leaked token) or `id` (its id in Recall's account)".into(),
            ));
        }
        Ok(Self {
            token_env,
            id,
            allow_self: bool_input(inputs, "allow_self", false)?,
        })
    }

    /// `env VAR`, for messages.
    fn source(&self) -> String {
        format!("env {}", self.token_env.as_deref().unwrap_or("?"))
    }

    /// The leaked token's value, if `token_env` is given.
    fn leaked(&self) -> Result<Option<SecretString>, ActionError> {
        match &self.token_env {
            Some(var) => crate::secrets::from_env(var)
                .map(Some)
                .map_err(|e| ActionError::Config(format!("leaked token: {e}"))),
            None => Ok(None),
        }
    }

    fn check_self(&self, reg: &Registry, leaked: &SecretString) -> Result<(), ActionError> {
        if self.allow_self {
            return Ok(());
        }
        if let Some(own) = &reg.own
            && own.expose_secret() == leaked.expose_secret()
        {
            return Err(ActionError::Refused(format!(
                "the token in {} (fingerprint {}) is Recall's own token for {} (from {}); revoking it would stop the response. Set `allow_self: true` to do it anyway",
                self.source(),
                token_fingerprint(leaked),
                reg.label,
                reg.source
            )));
        }
        Ok(())
    }

    fn outputs(
        &self,
        leaked: Option<&SecretString>,
        via: &str,
        proven: bool,
        proof: &str,
    ) -> Value {
        json!({
            "fingerprint": leaked.map(token_fingerprint),
            "id": self.id.map(|i| i.to_string()),
            "via": via,
            "revoked": via != "none" || proven,
            "proven_dead": proven,
            "proof": proof,
        })
    }
}

/// Does Recall's account have a token with this id? `GET /api/v1/me/tokens/{id}` (read-only;
/// crates.io answers 404 "Not Found" for an id that isn't the account's, and still lists a
/// revoked one). `Ok(None)`: the registry cannot tell (no such endpoint).
async fn token_id_known(reg: &Registry, id: u64) -> Result<Option<bool>, ActionError> {
    let rec = RequestRecord::new(
        "GET",
        format!("{}api/v1/me/tokens/{id}", reg.client.api_base()),
    );
    match reg.client.send(&rec).await {
        Ok(_) => Ok(Some(true)),
        Err(e) if e.status() == Some(404) && e.detail() == Some("Not Found") => Ok(Some(false)),
        Err(e) if e.is_auth_refused() || e.is_transient() => Err(reg.err(e)),
        Err(_) => Ok(None),
    }
}

fn unknown_id(reg: &Registry, id: u64) -> String {
    format!(
        "no token with id {id} belongs to the account of Recall's token (from {}) at {}; revoking it by id would answer 200 and change nothing",
        reg.source, reg.label
    )
}

#[async_trait]
impl Action for RevokeToken {
    fn spec(&self) -> &'static ActionSpec {
        &REVOKE
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let ri = RevokeInputs::parse(inputs)?;
        let reg = registry(ctx)?;
        let c = &reg.client;
        let leaked = ri.leaked()?;
        let src = ri.source();
        if let Some(s) = &leaked {
            ri.check_self(&reg, s)?;
            // The world first: a token the registry already refuses needs nothing sent.
            let state = c.token_state(s).await.map_err(|e| reg.err_from(e, &src))?;
            if let TokenState::Refused { status, detail } = state {
                let proof = format!("the registry already refuses it ({status}: {detail})");
                return Ok(ActionOutput::new(
                    ri.outputs(Some(s), "none", true, &proof),
                    format!(
                        "token {} (from {src}) is already dead: {proof}; nothing sent",
                        token_fingerprint(s)
                    ),
                )
                .with("requests", json!([])));
            }
        }
        let mut requests = Vec::new();
        let mut via = "self";
        let mut by_id = leaked.is_none();
        if let Some(s) = &leaked {
            let rec = c.revoke_current_request();
            ctx.ensure_live(&rec)?;
            match c.send_with(&rec, s).await {
                Ok(_) => requests.push(record_json(&rec)),
                Err(e) if is_scope_refusal(&e) => {
                    requests.push(json!({ "method": rec.method, "url": rec.url,
                                          "answer": "403: scoped tokens cannot revoke themselves" }));
                    if ri.id.is_none() {
                        return Err(ActionError::Failed(format!(
                            "the token from {src} (fingerprint {}) is a scoped token and {} does not let scoped tokens revoke themselves (403: {}). Revoke it at {}, or give `id` (its id in that list) so Recall revokes it with its own token",
                            token_fingerprint(s),
                            reg.label,
                            e.detail().unwrap_or(""),
                            reg.tokens_page()
                        )));
                    }
                    by_id = true;
                }
                // Refused as a credential: already revoked (say, by an earlier attempt whose
                // answer was lost); the check below proves it.
                Err(e) if e.is_auth_refused() => {
                    requests.push(json!({ "method": rec.method, "url": rec.url,
                                          "answer": format!("{}: {}", e.status().unwrap_or(0), e.detail().unwrap_or("")) }));
                }
                Err(e) => return Err(reg.err_from(e, &src)),
            }
        }
        if by_id && let Some(id) = ri.id {
            via = "id";
            if token_id_known(&reg, id).await? == Some(false) {
                return Err(ActionError::Failed(unknown_id(&reg, id)));
            }
            let rec = c.revoke_token_by_id_request(id);
            ctx.ensure_live(&rec)?;
            c.send(&rec).await.map_err(|e| reg.err(e))?;
            requests.push(record_json(&rec));
        }
        // Prove it: the registry must now refuse the leaked value.
        let (proven, proof) = match &leaked {
            Some(s) => match c.token_state(s).await.map_err(|e| reg.err_from(e, &src))? {
                TokenState::Refused { status, detail } => {
                    (true, format!("the token now gets {status} ({detail})"))
                }
                TokenState::Accepted => {
                    return Err(ActionError::Failed(format!(
                        "{} still accepts the token from {src} (fingerprint {}) after the revoke",
                        reg.label,
                        token_fingerprint(s)
                    )));
                }
                TokenState::Inconclusive { status, detail } => (
                    false,
                    format!(
                        "inconclusive: the registry's answer to the check ({status}: {detail}) does not tell whether the token still works; check it at {}",
                        reg.tokens_page()
                    ),
                ),
            },
            None => (
                false,
                format!(
                    "unproven: the registry answers 200 to DELETE /api/v1/me/tokens/{{id}} even for ids that match nothing; give `token_env` to prove it, or check {}",
                    reg.tokens_page()
                ),
            ),
        };
        let who = match (&leaked, ri.id) {
            (Some(s), _) => format!("token {} (from {src})", token_fingerprint(s)),
            (None, Some(id)) => format!("token id {id}"),
            (None, None) => "token".to_string(),
        };
        Ok(ActionOutput::new(
            ri.outputs(leaked.as_ref(), via, proven, &proof),
            format!(
                "revoked {who} {}; {proof}",
                if via == "id" {
                    "by id with Recall's token"
                } else {
                    "with itself"
                }
            ),
        )
        .with("requests", json!(requests)))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let ri = RevokeInputs::parse(inputs)?;
        let reg = registry(ctx)?;
        let c = &reg.client;
        let src = ri.source();
        let mut findings = Vec::new();
        let leaked = match ri.leaked() {
            Ok(l) => l,
            Err(e) => {
                findings.push(format!("blocker: {e}"));
                None
            }
        };
        if let Some(s) = &leaked {
            if let Err(e) = ri.check_self(&reg, s) {
                findings.push(format!("blocker: {e}"));
            }
            match c.token_state(s).await {
                Ok(TokenState::Refused { status, detail }) => {
                    let proof = format!("the registry already refuses it ({status}: {detail})");
                    return Ok(ActionOutput::new(
                        ri.outputs(Some(s), "none", true, &proof),
                        format!("rehearsal: the token from {src} is already dead ({proof}); nothing would be sent"),
                    )
                    .with("requests", json!([]))
                    .with("findings", json!(findings)));
                }
                Ok(TokenState::Accepted) => {}
                Ok(TokenState::Inconclusive { status, detail }) => findings.push(format!(
                    "the registry's token check answers {status} ({detail}): the revoke could not be proven"
                )),
                Err(e) => findings.push(format!(
                    "could not check the token from {src}: {}",
                    reg.err_from(e, &src)
                )),
            }
        }
        let mut requests = Vec::new();
        let mut fallback = Vec::new();
        if ri.token_env.is_some() {
            let rec = c.revoke_current_request();
            requests.push(json!({ "method": rec.method, "url": rec.url,
                                  "auth": format!("the token from {src}{}", leaked.as_ref().map(|s| format!(" (fingerprint {})", token_fingerprint(s))).unwrap_or_default()) }));
        }
        if let Some(id) = ri.id {
            let rec = c.revoke_token_by_id_request(id);
            let mut j = record_json(&rec);
            if let Value::Object(m) = &mut j {
                m.insert(
                    "auth".into(),
                    json!(format!("Recall's token from {}", reg.source)),
                );
            }
            match token_id_known(&reg, id).await {
                Ok(Some(false)) => findings.push(format!("blocker: {}", unknown_id(&reg, id))),
                Ok(_) => {}
                Err(e) => findings.push(format!("could not look up token id {id}: {e}")),
            }
            if ri.token_env.is_some() {
                if let Value::Object(m) = &mut j {
                    m.insert(
                        "when".into(),
                        json!("only if the leaked token is scoped and cannot revoke itself"),
                    );
                }
                fallback.push(j);
            } else {
                findings.push(format!("revoking by id is unproven: {} answers 200 even for ids that match nothing; give `token_env` to prove the token dead", reg.label));
                requests.push(j);
            }
        }
        let first = requests
            .first()
            .and_then(|r| r.get("url"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut out = ActionOutput::new(
            ri.outputs(leaked.as_ref(), "none", false, "rehearsal: nothing sent"),
            format!("rehearsal: would DELETE {first}"),
        )
        .with("requests", json!(requests));
        if !fallback.is_empty() {
            out = out.with("fallback", json!(fallback));
        }
        Ok(out.with("findings", json!(findings)))
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        let ri = match RevokeInputs::parse(inputs) {
            Ok(ri) => ri,
            Err(e) => return vec![crate::actions::preflight::input_check(&e.to_string())],
        };
        let mut out = Vec::new();
        if ri.id.is_some() {
            // Revoking by id is a request with Recall's own token.
            out = preflight::checks(ctx, "the account", None, false, "any").await;
        }
        if let Some(var) = &ri.token_env {
            // Before an incident the leaked token is usually not at hand: unknown, not fail.
            out.push(preflight::token_in_env_check(ctx, "crates.leaked_token", var, false).await);
        }
        out
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let ri = RevokeInputs::parse(inputs)?;
        let reg = registry(ctx)?;
        let leaked = match ri.leaked() {
            Ok(Some(s)) => s,
            Ok(None) => {
                // By id only: nothing can tell, and the DELETE is idempotent: send it again.
                return Ok(Probe::NotDone {
                    evidence: json!(
                        "revoking by id cannot be verified without the token's value; DELETE /api/v1/me/tokens/{id} is safe to send again"
                    ),
                });
            }
            Err(e) => {
                return Ok(Probe::Unknown {
                    reason: e.to_string(),
                });
            }
        };
        match reg.client.token_state(&leaked).await {
            Ok(TokenState::Refused { status, detail }) => {
                let proof = format!("the token now gets {status} ({detail})");
                Ok(Probe::Done {
                    outputs: ri.outputs(Some(&leaked), "self", true, &proof),
                    evidence: json!({ "fingerprint": token_fingerprint(&leaked), "refused": status, "detail": detail }),
                })
            }
            Ok(TokenState::Accepted) => Ok(Probe::NotDone {
                evidence: json!({ "fingerprint": token_fingerprint(&leaked), "accepted": true }),
            }),
            Ok(TokenState::Inconclusive { status, detail }) => Ok(Probe::Unknown {
                reason: format!("the token check answered {status} ({detail})"),
            }),
            Err(e) => Ok(Probe::Unknown {
                reason: reg.err_from(e, &ri.source()).to_string(),
            }),
        }
    }
}

// ---- crates.remove_trusted_publisher --------------------------------------------------

pub struct RemoveTrustedPublisher;

struct TrustFilter {
    krate: String,
    id: Option<u64>,
    repository: Option<String>,
    workflow: Option<String>,
}

impl TrustFilter {
    fn parse(inputs: &Value) -> Result<Self, ActionError> {
        let krate = super::str_input(inputs, "crate")?.trim().to_string();
        validate_crate_name(&krate)?;
        let repository = opt_str_input(inputs, "repository")?
            .map(|r| {
                r.trim()
                    .trim_start_matches("https://github.com/")
                    .trim_end_matches(".git")
                    .trim_matches('/')
                    .to_string()
            })
            .filter(|r| !r.is_empty());
        if let Some(r) = &repository
            && r.split('/').filter(|p| !p.is_empty()).count() != 2
        {
            return Err(ActionError::Input(format!(
                "`repository` must be owner/repo, got `{r}`"
            )));
        }
        let workflow = opt_str_input(inputs, "workflow")?.map(|w| {
            w.trim()
                .trim_start_matches(".github/workflows/")
                .to_string()
        });
        Ok(Self {
            krate,
            id: id_input(inputs, "id")?,
            repository,
            workflow,
        })
    }

    fn matches(&self, c: &GithubConfig) -> bool {
        let repo = format!("{}/{}", c.repository_owner, c.repository_name);
        self.id.is_none_or(|i| i == c.id)
            && self
                .repository
                .as_deref()
                .is_none_or(|r| r.eq_ignore_ascii_case(&repo))
            && self
                .workflow
                .as_deref()
                .is_none_or(|w| w == c.workflow_filename)
    }

    fn select<'a>(&self, list: &'a [GithubConfig]) -> Vec<&'a GithubConfig> {
        list.iter().filter(|c| self.matches(c)).collect()
    }
}

fn describe(c: &GithubConfig) -> String {
    let mut s = format!(
        "#{} github {}/{} workflow {}",
        c.id, c.repository_owner, c.repository_name, c.workflow_filename
    );
    if let Some(e) = c.environment.as_deref().filter(|e| !e.is_empty()) {
        s.push_str(&format!(" environment {e}"));
    }
    s
}

#[async_trait]
impl Action for RemoveTrustedPublisher {
    fn spec(&self) -> &'static ActionSpec {
        &REMOVE_TRUST
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let f = TrustFilter::parse(inputs)?;
        let reg = registry(ctx)?;
        let c = &reg.client;
        let list = c
            .trusted_publishers(&f.krate)
            .await
            .map_err(|e| reg.err(e))?;
        let chosen: Vec<GithubConfig> = f.select(&list).into_iter().cloned().collect();
        if chosen.is_empty() {
            return Ok(ActionOutput::new(
                json!({ "crate": f.krate, "removed": [], "ids": [] }),
                format!(
                    "{} has no matching trusted publisher ({} listed); nothing sent",
                    f.krate,
                    list.len()
                ),
            )
            .with("requests", json!([]))
            .with(
                "listed",
                json!(list.iter().map(describe).collect::<Vec<_>>()),
            ));
        }
        let mut requests = Vec::new();
        for g in &chosen {
            let rec = c.remove_trusted_publisher_request(g.id);
            ctx.ensure_live(&rec)?;
            match c.send(&rec).await {
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => {} // removed meanwhile
                Err(e) => return Err(reg.err(e)),
            }
            requests.push(record_json(&rec));
        }
        // Verify: none of them is listed any more.
        let after = c
            .trusted_publishers(&f.krate)
            .await
            .map_err(|e| reg.err(e))?;
        let left: Vec<String> = after
            .iter()
            .filter(|a| chosen.iter().any(|g| g.id == a.id))
            .map(describe)
            .collect();
        if !left.is_empty() {
            return Err(ActionError::Failed(format!(
                "{} still lists trusted publisher(s) {} of {}",
                reg.label,
                left.join("; "),
                f.krate
            )));
        }
        let removed: Vec<String> = chosen.iter().map(describe).collect();
        Ok(ActionOutput::new(
            json!({ "crate": f.krate, "removed": removed,
                    "ids": chosen.iter().map(|g| g.id.to_string()).collect::<Vec<_>>() }),
            format!(
                "removed {} trusted publisher(s) of {}: {} (verified)",
                removed.len(),
                f.krate,
                removed.join("; ")
            ),
        )
        .with("requests", json!(requests)))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let f = TrustFilter::parse(inputs)?;
        let reg = registry(ctx)?;
        let c = &reg.client;
        match c.trusted_publishers(&f.krate).await {
            Ok(list) => {
                let chosen = f.select(&list);
                let reqs: Vec<Value> = chosen
                    .iter()
                    .map(|g| record_json(&c.remove_trusted_publisher_request(g.id)))
                    .collect();
                let removed: Vec<String> = chosen.iter().map(|g| describe(g)).collect();
                Ok(ActionOutput::new(
                    json!({ "crate": f.krate, "removed": removed,
                            "ids": chosen.iter().map(|g| g.id.to_string()).collect::<Vec<_>>() }),
                    format!(
                        "rehearsal: would remove {} of {} trusted publisher(s) of {}",
                        chosen.len(),
                        list.len(),
                        f.krate
                    ),
                )
                .with("requests", json!(reqs))
                .with("findings", json!([])))
            }
            Err(e) => Ok(ActionOutput::new(
                json!({ "crate": f.krate, "removed": [], "ids": [] }),
                format!(
                    "rehearsal: could not list the trusted publishers of {}; would DELETE each matching one",
                    f.krate
                ),
            )
            .with(
                "requests",
                json!([{ "method": "DELETE",
                         "url": format!("{}api/v1/trusted_publishing/github_configs/{{id}}", c.api_base()),
                         "note": "one per matching configuration; the list could not be read" }]),
            )
            .with(
                "findings",
                json!([format!(
                    "blocker: could not list the trusted publishers of {}: {}",
                    f.krate,
                    reg.err(e)
                )]),
            )),
        }
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        match TrustFilter::parse(inputs) {
            Ok(f) => preflight::checks(ctx, &f.krate, None, false, "trusted-publishing").await,
            Err(e) => vec![crate::actions::preflight::input_check(&e.to_string())],
        }
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let f = TrustFilter::parse(inputs)?;
        let reg = registry(ctx)?;
        match reg.client.trusted_publishers(&f.krate).await {
            Ok(list) => {
                let chosen = f.select(&list);
                if chosen.is_empty() {
                    Ok(Probe::Done {
                        outputs: json!({ "crate": f.krate, "removed": [], "ids": [] }),
                        evidence: json!("no matching trusted publisher is listed"),
                    })
                } else {
                    Ok(Probe::NotDone {
                        evidence: json!({ "still_listed": chosen.iter().map(|g| describe(g)).collect::<Vec<_>>() }),
                    })
                }
            }
            Err(e) => Ok(Probe::Unknown {
                reason: reg.err(e).to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, detail: &str) -> CratesError {
        CratesError::Api {
            status,
            method: "PATCH".into(),
            url: "https://crates.io/api/v1/crates/foo/1.0.0".into(),
            detail: detail.into(),
            retry_after_ms: Some(1000),
        }
    }

    #[test]
    fn errors_keep_their_nature() {
        let e: ActionError = api(429, "slow down").into();
        assert!(e.is_transient() && !e.is_ambiguous());
        assert_eq!(e.retry_after_ms(), Some(1000));
        for s in [500, 502, 503] {
            let e: ActionError = api(s, "").into();
            assert!(e.is_transient() && e.is_ambiguous(), "{s}");
        }
        let e: ActionError = CratesError::Transport("reset".into()).into();
        assert!(e.is_transient() && e.is_ambiguous());
        for e in [
            api(501, ""),
            api(404, "crate `foo` does not exist"),
            api(403, "authentication failed"),
            CratesError::Decode("bad json".into()),
        ] {
            let e: ActionError = e.into();
            assert!(!e.is_transient() && !e.is_ambiguous(), "{e}");
        }
        let e: ActionError = CratesError::InvalidName {
            name: "a/b".into(),
            reason: "x".into(),
        }
        .into();
        assert!(matches!(e, ActionError::Input(_)));
    }

    #[test]
    fn auth_errors_name_the_source_not_the_value() {
        let reg = Registry {
            client: match CratesClient::new(
                "https://crates.io",
                Some(SecretString::from("cioSECRETvalue123")),
                Duration::from_secs(1),
            ) {
                Ok(c) => c,
                Err(e) => panic!("{e}"),
            },
            own: Some(SecretString::from("cioSECRETvalue123")),
            source: "env CARGO_REGISTRY_TOKEN".into(),
            label: "crates.io".into(),
        };
        let e = reg.err(api(403, "authentication failed")).to_string();
        assert!(
            e.starts_with(
                "crates.io refused the token from env CARGO_REGISTRY_TOKEN (403: authentication failed)"
            ),
            "{e}"
        );
        assert!(!e.contains("SECRET"));
        assert!(!reg.err(api(403, "x")).is_transient());
        assert_eq!(reg.tokens_page(), "https://crates.io/settings/tokens");
        assert!(is_scope_refusal(&api(
            403,
            "this token does not have the required permissions to perform this action"
        )));
        assert!(!is_scope_refusal(&api(403, "authentication failed")));
    }

    #[test]
    fn revoke_inputs() {
        let p = |v: Value| RevokeInputs::parse(&v);
        assert!(p(json!({ "token_env": "", "id": "" })).is_err());
        let r = p(json!({ "token_env": "LEAKED", "id": "" })).ok();
        assert!(r.is_some_and(|r| r.token_env.as_deref() == Some("LEAKED") && r.id.is_none()));
        let r = p(json!({ "id": "42" })).ok();
        assert!(r.is_some_and(|r| r.id == Some(42) && !r.allow_self));
        assert!(p(json!({ "id": 7 })).is_ok_and(|r| r.id == Some(7)));
        let e = p(json!({ "id": "cioLEAKEDvalue" }))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| !e.contains("cioLEAKED")));
        let e = p(json!({ "token_env": "cio-LEAKED-value" }))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| !e.contains("cio-LEAKED")));
    }

    #[test]
    fn trusted_publisher_selection() {
        let g = |id: u64, owner: &str, repo: &str, wf: &str| GithubConfig {
            id,
            krate: "foo".into(),
            repository_owner: owner.into(),
            repository_owner_id: None,
            repository_name: repo.into(),
            workflow_filename: wf.into(),
            environment: None,
            created_at: None,
        };
        let list = vec![
            g(1, "Acme", "foo-rs", "publish.yml"),
            g(2, "acme", "foo-rs", "release.yml"),
            g(3, "other", "foo", "publish.yml"),
        ];
        let sel = |v: Value| match TrustFilter::parse(&v) {
            Ok(f) => f.select(&list).iter().map(|c| c.id).collect::<Vec<_>>(),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            sel(json!({ "crate": "foo", "repository": "ACME/Foo-RS" })),
            [1, 2]
        );
        assert_eq!(
            sel(
                json!({ "crate": "foo", "repository": "acme/foo-rs", "workflow": ".github/workflows/release.yml" })
            ),
            [2]
        );
        assert_eq!(sel(json!({ "crate": "foo", "id": "3" })), [3]);
        assert_eq!(sel(json!({ "crate": "foo" })), [1, 2, 3]);
        assert!(TrustFilter::parse(&json!({ "crate": "foo", "repository": "acme" })).is_err());
    }
}
