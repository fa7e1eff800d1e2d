//! npm containment: `npm.deprecate`, `npm.undeprecate`, `npm.dist_tag`, `npm.revoke_token`,
//! `npm.remove_trusted_publisher`, and the gated `npm.unpublish`.
//! The wire protocol lives in `net::npm`; this file decides *what* to send, checks the
//! world first so a retry or a resume never repeats an effect, verifies after sending,
//! and in a rehearsal returns the exact request instead of sending it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::preflight::Check;
use super::{Action, ActionCtx, ActionError, ActionOutput, Probe, opt_str_input, str_input};
use crate::config::{NpmConfig, parse_duration_ms};
use crate::net::http::RequestRecord;
use crate::net::npm::{NpmClient, NpmError, versions_matching};
use crate::playbook::{ActionSpec, InputSpec, InputType};

mod dist_tag;
pub(crate) mod preflight;
pub(crate) mod revoke;
mod unpublish;

pub use dist_tag::DistTag;
pub use revoke::RevokeToken;
pub use unpublish::{RemoveTrustedPublisher, Unpublish};

pub fn actions() -> Vec<Arc<dyn Action>> {
    vec![
        Arc::new(Deprecate { undo: false }),
        Arc::new(Deprecate { undo: true }),
        Arc::new(DistTag),
        Arc::new(RevokeToken),
        Arc::new(Unpublish),
        Arc::new(RemoveTrustedPublisher),
    ]
}

impl From<NpmError> for ActionError {
    fn from(e: NpmError) -> Self {
        match e {
            NpmError::Http(h) => ActionError::Http(h),
            other => ActionError::Input(other.to_string()),
        }
    }
}

const PACKAGE: InputSpec = InputSpec {
    name: "package",
    ty: InputType::String,
    required: false,
    help: "package name, scoped names included (@scope/name); or give `spec`",
};
const VERSION: InputSpec = InputSpec {
    name: "version",
    ty: InputType::String,
    required: false,
    help: "an exact version or an npm semver range",
};
const SPEC: InputSpec = InputSpec {
    name: "spec",
    ty: InputType::String,
    required: false,
    help: "name@version or name@range, instead of package + version",
};

static DEPRECATE: ActionSpec = ActionSpec {
    name: "npm.deprecate",
    summary: "Deprecate one version or a semver range of an npm package with a message.",
    inputs: &[
        PACKAGE,
        VERSION,
        SPEC,
        InputSpec {
            name: "message",
            ty: InputType::String,
            required: true,
            help: "the deprecation message users will see",
        },
    ],
    outputs: &["package", "versions", "changed"],
    mutating: true,
    destructive: false,
};

static UNDEPRECATE: ActionSpec = ActionSpec {
    name: "npm.undeprecate",
    summary: "Remove the deprecation of one version or a semver range.",
    inputs: &[PACKAGE, VERSION, SPEC],
    outputs: &["package", "versions", "changed"],
    mutating: true,
    destructive: false,
};

static DIST_TAG: ActionSpec = ActionSpec {
    name: "npm.dist_tag",
    summary: "Set, remove or repair a dist-tag; never leaves `latest` on a bad version.",
    inputs: &[
        PACKAGE,
        SPEC,
        InputSpec {
            name: "tag",
            ty: InputType::String,
            required: false,
            help: "the dist-tag (default `latest`)",
        },
        InputSpec {
            name: "version",
            ty: InputType::String,
            required: false,
            help: "point the tag at this version; omit to move it off bad versions",
        },
        InputSpec {
            name: "avoid",
            ty: InputType::List,
            required: false,
            help: "bad versions or ranges the tag must not point at (deprecated versions are avoided too)",
        },
        InputSpec {
            name: "remove",
            ty: InputType::Bool,
            required: false,
            help: "remove the tag (not allowed for `latest`)",
        },
    ],
    outputs: &["package", "tag", "from", "to", "changed"],
    mutating: true,
    destructive: false,
};

static REVOKE: ActionSpec = ActionSpec {
    name: "npm.revoke_token",
    summary: "Revoke a compromised npm token by key (or key prefix) and prove it is dead.",
    inputs: &[
        InputSpec {
            name: "token",
            ty: InputType::String,
            required: true,
            help: "the key of the compromised token as `npm token list` shows it, or a prefix of at least 6 characters",
        },
        InputSpec {
            name: "secret_env",
            ty: InputType::String,
            required: false,
            help: "env var holding the leaked token's value, to prove it now fails (401/403)",
        },
        InputSpec {
            name: "allow_self",
            ty: InputType::Bool,
            required: false,
            help: "allow revoking Recall's own configured token (refused by default)",
        },
    ],
    outputs: &["key", "revoked", "proven_dead", "fingerprint"],
    mutating: true,
    destructive: false,
};

// ---- client and per-package serialisation -------------------------------------------

pub(crate) fn load_token(cfg: &NpmConfig) -> Result<Option<SecretString>, ActionError> {
    if let Some(f) = &cfg.token_file {
        return crate::secrets::from_file(f)
            .map(Some)
            .map_err(|e| ActionError::Config(e.to_string()));
    }
    match &cfg.token_env {
        Some(var) => match crate::secrets::from_env(var) {
            Ok(s) => Ok(Some(s)),
            Err(crate::secrets::SecretError::MissingEnv(_)) => Ok(None),
            Err(e) => Err(ActionError::Config(e.to_string())),
        },
        None => Ok(None),
    }
}

/// Where Recall's npm token comes from, for 401/403 messages (never the value).
pub(crate) fn credential_source(cfg: &NpmConfig) -> String {
    match (&cfg.token_file, &cfg.token_env) {
        (Some(f), _) => format!("[npm] token_file = {f}"),
        (None, Some(v)) => format!("[npm] token_env = {v}"),
        (None, None) => "no npm token configured ([npm] token_env / token_file)".into(),
    }
}

/// One client per registry configuration, shared by every attempt (connection reuse).
pub(crate) fn client(ctx: &ActionCtx) -> Result<Arc<NpmClient>, ActionError> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<NpmClient>>>> = OnceLock::new();
    let cfg = &ctx.config.npm;
    let key = format!(
        "{}|{:?}|{:?}|{:?}",
        cfg.registry, cfg.token_env, cfg.token_file, cfg.otp_env
    );
    let map = CLIENTS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(c) = map.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(c);
    }
    let token = load_token(cfg)?;
    let otp = match &cfg.otp_env {
        Some(v) => {
            Some(crate::secrets::from_env(v).map_err(|e| ActionError::Config(e.to_string()))?)
        }
        None => None,
    };
    let timeout = parse_duration_ms(&cfg.timeout).map_err(ActionError::Config)?;
    let c = NpmClient::new(&cfg.registry, token)
        .map_err(ActionError::Http)?
        .with_otp(otp)
        .with_http_client(crate::net::http::build_client(Duration::from_millis(
            timeout,
        )));
    let c = Arc::new(c);
    if let Ok(mut m) = map.lock() {
        m.insert(key, c.clone());
    }
    Ok(c)
}

/// npm writes a package as a whole packument: two concurrent read-modify-write cycles on
/// one package would lose an update. Serialise them per package within the process.
fn package_lock(registry: &str, name: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let map = LOCKS.get_or_init(|| Mutex::new(HashMap::new()));
    match map.lock() {
        Ok(mut m) => m
            .entry(format!("{registry}|{name}"))
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone(),
        Err(_) => Arc::new(tokio::sync::Mutex::new(())),
    }
}

/// `name@version`, `@scope/name@range` → (name, spec).
pub fn split_spec(spec: &str) -> Result<(String, String), ActionError> {
    let s = spec.trim();
    let at = s
        .char_indices()
        .filter(|(i, c)| *c == '@' && *i > 0)
        .map(|(i, _)| i)
        .next_back()
        .ok_or_else(|| {
            ActionError::Input(format!(
                "`{spec}` is not name@version (e.g. left-pad@1.3.0)"
            ))
        })?;
    let (name, version) = (&s[..at], &s[at + 1..]);
    if name.is_empty() || version.trim().is_empty() {
        return Err(ActionError::Input(format!("`{spec}` is not name@version")));
    }
    Ok((name.to_string(), version.trim().to_string()))
}

/// The package and version spec from `package` + `version`, or from `spec`.
fn target(inputs: &Value, need_version: bool) -> Result<(String, Option<String>), ActionError> {
    if let Some(spec) = opt_str_input(inputs, "spec")? {
        let (n, v) = split_spec(spec)?;
        return Ok((n, Some(v)));
    }
    let name = str_input(inputs, "package")?.trim().to_string();
    let version = opt_str_input(inputs, "version")?.map(|v| v.trim().to_string());
    if need_version && version.is_none() {
        return Err(ActionError::Input(
            "give `version` (or `spec: name@version`)".into(),
        ));
    }
    Ok((name, version))
}

fn record_json(r: &RequestRecord) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// A request as the timeline shows it: method, URL, and for a whole-packument PUT only the
/// fields that change (the full body is the registry's own document).
fn describe_deprecate_put(r: &RequestRecord, versions: &[String], message: &str) -> Value {
    json!({
        "method": r.method, "url": r.url,
        "body": { "versions": versions.iter().map(|v| (v.clone(), json!({"deprecated": message}))).collect::<serde_json::Map<_, _>>() },
        "note": "the body is the whole packument fetched with ?write=true, with these fields set",
    })
}

async fn fetch_packument(c: &NpmClient, name: &str) -> Result<Value, ActionError> {
    c.packument(name, true).await?.ok_or_else(|| {
        ActionError::Failed(format!("package `{name}` does not exist in the registry"))
    })
}

/// The registry's own publish time of each version (`time[version]`), for the impact window.
fn published(packument: &Value, versions: &[String]) -> Value {
    let m: serde_json::Map<String, Value> = versions
        .iter()
        .filter_map(|v| {
            packument
                .get("time")?
                .get(v)?
                .as_str()
                .map(|t| (v.clone(), json!(t)))
        })
        .collect();
    Value::Object(m)
}

fn deprecation_of(packument: &Value, version: &str) -> Option<String> {
    packument
        .pointer(&format!(
            "/versions/{}/deprecated",
            version.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .map(str::to_string)
}

// ---- npm.deprecate / npm.undeprecate -------------------------------------------------

pub struct Deprecate {
    undo: bool,
}

impl Deprecate {
    fn message<'a>(&self, inputs: &'a Value) -> Result<&'a str, ActionError> {
        if self.undo {
            Ok("")
        } else {
            str_input(inputs, "message")
        }
    }

    /// Versions still to change: those whose deprecation differs from the wanted one.
    fn pending(&self, pk: &Value, versions: &[String], message: &str) -> Vec<String> {
        versions
            .iter()
            .filter(|v| deprecation_of(pk, v).unwrap_or_default() != message)
            .cloned()
            .collect()
    }
}

#[async_trait]
impl Action for Deprecate {
    fn credential(&self, config: &crate::config::Config, _inputs: &Value) -> Option<String> {
        Some(credential_source(&config.npm))
    }

    fn spec(&self) -> &'static ActionSpec {
        if self.undo { &UNDEPRECATE } else { &DEPRECATE }
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let (name, spec) = target(inputs, true)?;
        let spec = spec.unwrap_or_default();
        let message = self.message(inputs)?;
        let c = client(ctx)?;
        let lock = package_lock(c.registry(), &name);
        let _g = lock.lock().await;
        let pk = fetch_packument(&c, &name).await?;
        let versions = versions_matching(&pk, &spec)?;
        if versions.is_empty() {
            return Err(ActionError::Failed(format!(
                "no version of {name} matches `{spec}`"
            )));
        }
        let todo = self.pending(&pk, &versions, message);
        if todo.is_empty() {
            return Ok(ActionOutput::new(
                json!({ "package": name, "versions": versions, "changed": [], "published": published(&pk, &versions) }),
                format!(
                    "{name}@{} already in the wanted state; nothing sent",
                    versions.join(", ")
                ),
            ));
        }
        let (req, changed) = c.deprecate_request(&name, &pk, &todo, message)?;
        ctx.ensure_live(&req)?;
        c.send(&req).await?;
        // Verify: read back and require every matched version to carry the message.
        let after = fetch_packument(&c, &name).await?;
        let still = self.pending(&after, &versions, message);
        if !still.is_empty() {
            return Err(ActionError::Failed(format!(
                "registry accepted the write but {name}@{} is not {}",
                still.join(", "),
                if self.undo {
                    "undeprecated"
                } else {
                    "deprecated"
                }
            )));
        }
        Ok(ActionOutput::new(
            json!({ "package": name, "versions": versions, "changed": changed, "published": published(&after, &versions) }),
            format!(
                "{} {name}@{} (verified)",
                if self.undo {
                    "undeprecated"
                } else {
                    "deprecated"
                },
                changed.join(", ")
            ),
        )
        .with(
            "requests",
            json!([describe_deprecate_put(&req, &changed, message)]),
        ))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let (name, spec) = target(inputs, true)?;
        let spec = spec.unwrap_or_default();
        let message = self.message(inputs)?;
        let path = NpmClient::package_path(&name)?;
        let c = client(ctx)?;
        let url = format!("{}{}", c.registry(), path);
        match c.packument(&name, true).await {
            Ok(Some(pk)) => {
                let versions = versions_matching(&pk, &spec)?;
                let todo = self.pending(&pk, &versions, message);
                let mut findings = Vec::new();
                if versions.is_empty() {
                    findings.push(format!("blocker: no version of {name} matches `{spec}`"));
                }
                if todo.is_empty() {
                    return Ok(ActionOutput::new(
                        json!({ "package": name, "versions": versions, "changed": [], "published": published(&pk, &versions) }),
                        format!("rehearsal: {name}@{spec} already in the wanted state; nothing would be sent"),
                    )
                    .with("findings", json!(findings)));
                }
                let (req, changed) = c.deprecate_request(&name, &pk, &todo, message)?;
                Ok(ActionOutput::new(
                    json!({ "package": name, "versions": versions, "changed": changed, "published": published(&pk, &versions) }),
                    format!("rehearsal: would PUT {} deprecating {}", req.url, changed.join(", ")),
                )
                .with("requests", json!([describe_deprecate_put(&req, &changed, message)]))
                .with("findings", json!(findings)))
            }
            Ok(None) => Ok(ActionOutput::new(
                json!({ "package": name, "versions": [], "changed": [] }),
                format!("rehearsal: package {name} not found in {}", c.registry()),
            )
            .with("findings", json!([format!("blocker: package {name} does not exist in {}", c.registry())]))),
            Err(e) => Ok(ActionOutput::new(
                json!({ "package": name, "versions": [], "changed": [] }),
                format!("rehearsal: could not read {url}; would GET it and PUT it back with {spec} deprecated"),
            )
            .with("requests", json!([{ "method": "PUT", "url": url, "body": { "versions": { spec.clone(): { "deprecated": message } } },
                                        "note": "body is the whole packument; it could not be read during the rehearsal" }]))
            .with("findings", json!([finding_for(&e, &c, "read the packument")]))),
        }
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        match target(inputs, true) {
            Ok((name, spec)) => {
                let need = preflight::Need {
                    package: Some(&name),
                    versions: spec.as_deref(),
                    ..Default::default()
                };
                preflight::checks(ctx, need).await
            }
            Err(e) => preflight::input_error(&e),
        }
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let (name, spec) = target(inputs, true)?;
        let spec = spec.unwrap_or_default();
        let message = self.message(inputs)?;
        let c = client(ctx)?;
        let pk = match c.packument(&name, true).await {
            Ok(Some(pk)) => pk,
            Ok(None) => {
                return Ok(Probe::Unknown {
                    reason: format!("package {name} not found"),
                });
            }
            Err(e) => {
                return Ok(Probe::Unknown {
                    reason: e.to_string(),
                });
            }
        };
        let versions = versions_matching(&pk, &spec)?;
        let todo = self.pending(&pk, &versions, message);
        if todo.is_empty() && !versions.is_empty() {
            Ok(Probe::Done {
                outputs: json!({ "package": name, "versions": versions, "changed": versions }),
                evidence: json!({ "read": format!("{}{}", c.registry(), NpmClient::package_path(&name)?), "versions": versions }),
            })
        } else {
            Ok(Probe::NotDone {
                evidence: json!({ "pending": todo }),
            })
        }
    }
}

fn finding_for(e: &NpmError, c: &NpmClient, what: &str) -> String {
    let status = e.status();
    let why = match status {
        Some(401) | Some(403) => "the configured token is missing or lacks permission".to_string(),
        Some(s) => format!("the registry answered {s}"),
        None => "the registry is unreachable from here".to_string(),
    };
    format!("blocker: could not {what} at {}: {why} ({e})", c.registry())
}

#[cfg(test)]
mod tests {
    use super::revoke::{find_token, masked_matches};
    use super::*;
    use crate::net::npm::TokenInfo;

    #[test]
    fn specs_split_at_the_version_at() {
        assert_eq!(
            split_spec("left-pad@1.3.0").unwrap(),
            ("left-pad".into(), "1.3.0".into())
        );
        assert_eq!(
            split_spec("@solana/web3.js@1.95.6").unwrap(),
            ("@solana/web3.js".into(), "1.95.6".into())
        );
        assert_eq!(
            split_spec("rc@>=1.2.9 <1.3.0").unwrap(),
            ("rc".into(), ">=1.2.9 <1.3.0".into())
        );
        assert!(split_spec("@solana/web3.js").is_err());
        assert!(split_spec("left-pad@").is_err());
    }

    #[test]
    fn tokens_are_found_by_key_prefix_or_masked_form() {
        let t = |key: &str, masked: &str| TokenInfo {
            key: key.into(),
            token: masked.into(),
            readonly: false,
            created: None,
            cidr_whitelist: vec![],
        };
        let list = vec![
            t("a1b2c3d4e5", "npm_ab...wxyz"),
            t("a1b2ffffff", "npm_cd...9876"),
        ];
        assert_eq!(
            find_token(&list, "a1b2c3d4e5").unwrap().unwrap().key,
            "a1b2c3d4e5"
        );
        assert_eq!(
            find_token(&list, "npm_cd...9876").unwrap().unwrap().key,
            "a1b2ffffff"
        );
        assert_eq!(
            find_token(&list, "a1b2ff").unwrap().unwrap().key,
            "a1b2ffffff"
        );
        assert!(find_token(&list, "a1b2").is_err(), "too short a prefix");
        assert!(find_token(&list, "a1b2c3").unwrap().is_some());
        assert!(find_token(&list, "zzzzzzzz").unwrap().is_none());
    }

    #[test]
    fn masked_token_matching() {
        let s = SecretString::from("YWVjZabcdefghijklZjY=".to_string());
        assert!(masked_matches("YWVjZ...lZjY=", &s));
        assert!(!masked_matches("XXXXX...lZjY=", &s));
        assert!(!masked_matches("no-dots", &s));
    }
}
