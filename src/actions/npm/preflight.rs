//! Preflight of the npm actions: the token is configured, accepted (`GET /-/whoami`),
//! not read-only (the account's token list, `GET /-/npm/v1/tokens`, matched by its masked
//! form), not held back by 2FA on writes (`GET /-/npm/v1/user`), and the package and the
//! versions exist. All reads; what cannot be read is `unknown`, with the reason.

use secrecy::SecretString;
use serde_json::Value;

use super::revoke::{find_token, masked_matches};
use super::{client, credential_source, load_token};
use crate::actions::ActionCtx;
use crate::actions::preflight::{Check, Impact};
use crate::net::http::RequestRecord;
use crate::net::npm::{NpmClient, versions_matching};

/// What an npm action needs from the registry.
#[derive(Default)]
pub(crate) struct Need<'a> {
    pub(crate) package: Option<&'a str>,
    /// A version or range that must match at least one published version.
    pub(crate) versions: Option<&'a str>,
    /// A token key (or masked form) that must be listed for the account.
    pub(crate) token_key: Option<&'a str>,
    /// The package's trusted-publishing configuration is read.
    pub(crate) trust: bool,
}

pub(crate) async fn checks(ctx: &ActionCtx, need: Need<'_>) -> Vec<Check> {
    let cfg = &ctx.config.npm;
    let reg = cfg.registry.trim_end_matches('/').to_string();
    let source = credential_source(cfg);
    let mut out = Vec::new();
    let token: Option<SecretString> = match load_token(cfg) {
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            out.push(Check::fail(
                "npm.credential",
                format!("npm token for {reg}"),
                format!("{source}: no token is set"),
                format!("create a publish token for the account that maintains the package (`npm token create`, or a granular token with Read and write on it) and give it to Recall through {source}"),
            ));
            None
        }
        Err(e) => {
            out.push(Check::fail(
                "npm.credential",
                format!("npm token for {reg}"),
                e.to_string(),
                "fix [npm] token_env / token_file so Recall can read the token",
            ));
            None
        }
    };
    let c = match client(ctx) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::fail(
                "npm.registry",
                reg.clone(),
                e.to_string(),
                "fix [npm] registry in the config",
            ));
            return out;
        }
    };
    let mut user = None;
    if let Some(t) = &token {
        match c.whoami(None).await {
            Ok(u) => {
                out.push(Check::pass(
                    "npm.whoami",
                    format!("token from {source}"),
                    format!("GET {reg}/-/whoami → {u}"),
                ));
                user = Some(u);
            }
            Err(e) if e.is_auth_refused() => out.push(Check::fail(
                "npm.whoami",
                format!("token from {source}"),
                format!("GET {reg}/-/whoami → {}", e.status().unwrap_or(401)),
                "the registry refused the token (revoked or expired): create a new publish token and replace it",
            )),
            Err(e) => {
                out.push(Check::fail(
                    "npm.registry",
                    reg.clone(),
                    format!("GET {reg}/-/whoami: {e}"),
                    "make the registry reachable from where Recall runs (network, proxy, [npm] registry)",
                ));
                return out;
            }
        }
        if user.is_some() {
            out.extend(token_checks(&c, t, &reg, &source, need.token_key).await);
            out.extend(tfa_check(&c, &reg, cfg.otp_env.is_some()).await);
        }
    }
    if let Some(name) = need.package {
        out.extend(target_checks(&c, &reg, name, need.versions, user.as_deref()).await);
        if need.trust && token.is_some() {
            out.push(match c.trusted_publishers(name).await {
                Ok(l) => Check::pass(
                    "npm.trust",
                    format!("trusted publishing of {name}"),
                    format!("GET …/-/package/{name}/trust → {} configuration(s)", l.len()),
                ),
                Err(e) if e.status() == Some(404) => Check::unknown(
                    "npm.trust",
                    format!("trusted publishing of {name}"),
                    format!("GET …/-/package/{name}/trust → 404: the registry has no trusted-publishing API or no configuration"),
                    "check the package's settings page for trusted publishers",
                ),
                Err(e) => Check::fail(
                    "npm.trust",
                    format!("trusted publishing of {name}"),
                    e.to_string(),
                    "the token must be able to read the package's trusted-publishing settings (a maintainer's read-write token)",
                ),
            });
        }
    }
    out
}

/// The token is listed for the account and is not read-only; the token to revoke is listed.
async fn token_checks(
    c: &NpmClient,
    token: &SecretString,
    reg: &str,
    source: &str,
    revoke: Option<&str>,
) -> Vec<Check> {
    let mut out = Vec::new();
    let list = match c.list_tokens().await {
        Ok(l) => l,
        Err(e) => {
            let fail = revoke.is_some();
            let (ev, fix) = (
                format!("GET {reg}/-/npm/v1/tokens: {e}"),
                "use a token that may list the account's tokens (a legacy publish token or the account's own session)",
            );
            out.push(if fail {
                Check::fail("npm.token.list", format!("token list at {reg}"), ev, fix)
            } else {
                Check::unknown("npm.token.write", format!("token from {source}"), ev, fix)
            });
            return out;
        }
    };
    match list
        .iter()
        .find(|t| masked_matches(&t.token, token))
    {
        Some(t) if t.readonly => out.push(Check::fail(
            "npm.token.write",
            format!("token from {source}"),
            format!("GET {reg}/-/npm/v1/tokens lists it (key {}…) with readonly: true", short(&t.key)),
            "the token is read-only: it can read but never deprecate, tag or revoke. Create a read-write token (`npm token create` without --read-only, or a granular token with Read and write on the package) and replace it",
        )),
        Some(t) => out.push(Check::pass(
            "npm.token.write",
            format!("token from {source}"),
            format!(
                "listed (key {}…) with readonly: false{}",
                short(&t.key),
                if t.cidr_whitelist.is_empty() {
                    String::new()
                } else {
                    format!(", CIDR allow-list {}", t.cidr_whitelist.join(", "))
                }
            ),
        )),
        None => out.push(Check::unknown(
            "npm.token.write",
            format!("token from {source}"),
            format!("{} token(s) listed, none with this token's masked form (granular tokens are listed without it)", list.len()),
            "confirm in the registry's token settings that the token has Read and write on the package",
        )),
    }
    if let Some(wanted) = revoke {
        out.push(match find_token(&list, wanted) {
            Ok(Some(t)) => Check::pass(
                "npm.token.listed",
                format!("token to revoke `{wanted}`"),
                format!("listed for the account (key {}…)", short(&t.key)),
            ),
            Ok(None) => Check::fail(
                "npm.token.listed",
                format!("token to revoke `{wanted}`"),
                format!("none of the {} token(s) listed for the account matches", list.len()),
                "give the token's key or masked form as `npm token list` shows it, and make sure Recall's token belongs to the same account",
            ),
            Err(e) => Check::fail(
                "npm.token.listed",
                format!("token to revoke `{wanted}`"),
                e.to_string(),
                "give the token's full key or its masked form",
            ),
        });
    }
    out
}

/// 2FA on writes needs a one-time password with every write (legacy tokens).
async fn tfa_check(c: &NpmClient, reg: &str, otp: bool) -> Vec<Check> {
    let url = format!("{reg}/-/npm/v1/user");
    let v = match c.send(&RequestRecord::new("GET", url.clone())).await {
        Ok(v) => v,
        // Registries without the profile API (some private ones) say nothing about 2FA.
        Err(_) => return Vec::new(),
    };
    let mode = v
        .pointer("/tfa/mode")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let pending = v.pointer("/tfa/pending").and_then(Value::as_bool) == Some(true);
    if mode == "auth-and-writes" && !pending && !otp {
        vec![Check::fail(
            "npm.2fa",
            "two-factor authentication of the token's account",
            format!("GET {url} → tfa.mode: auth-and-writes, and no [npm] otp_env is configured"),
            "writes need a one-time password: set [npm] otp_env for the incident, or use a granular token allowed to bypass 2FA",
        )]
    } else {
        vec![Check::pass(
            "npm.2fa",
            "two-factor authentication of the token's account",
            format!(
                "GET {url} → tfa {}",
                if mode.is_empty() {
                    "off".to_string()
                } else {
                    mode
                }
            ),
        )]
    }
}

async fn target_checks(
    c: &NpmClient,
    reg: &str,
    name: &str,
    versions: Option<&str>,
    user: Option<&str>,
) -> Vec<Check> {
    let mut out = Vec::new();
    let pk = match c.packument(name, false).await {
        Ok(Some(pk)) => pk,
        Ok(None) => {
            out.push(Check::fail(
                "npm.target",
                format!("package {name}"),
                format!("GET {reg}/{name} → 404"),
                "check the package name in the playbook parameters and [npm] registry",
            ));
            return out;
        }
        Err(e) if e.status().is_none() => {
            out.push(Check::fail(
                "npm.registry",
                reg.to_string(),
                e.to_string(),
                "make the registry reachable from where Recall runs (network, proxy, [npm] registry)",
            ));
            return out;
        }
        Err(e) => {
            out.push(Check::fail(
                "npm.target",
                format!("package {name}"),
                e.to_string(),
                "make the package readable with Recall's token",
            ));
            return out;
        }
    };
    match versions {
        Some(spec) => match versions_matching(&pk, spec) {
            Ok(v) if !v.is_empty() => out.push(Check::pass(
                "npm.target",
                format!("{name}@{spec}"),
                format!("published: {}", v.join(", ")),
            )),
            Ok(_) => out.push(Check::fail(
                "npm.target",
                format!("{name}@{spec}"),
                format!("no published version of {name} matches `{spec}`"),
                "check the versions in the playbook parameters",
            )),
            Err(e) => out.push(Check::fail(
                "npm.target",
                format!("{name}@{spec}"),
                e.to_string(),
                "give an exact version or an npm semver range",
            )),
        },
        None => out.push(Check::pass(
            "npm.target",
            format!("package {name}"),
            format!("GET {reg}/{name} → 200"),
        )),
    }
    if let Some(u) = user {
        let maintainers: Vec<&str> = pk
            .get("maintainers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.get("name").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        out.push(if maintainers.contains(&u) {
            Check::pass(
                "npm.maintainer",
                format!("{u} on {name}"),
                format!("{u} is listed among the maintainers"),
            )
        } else {
            Check::unknown(
                "npm.maintainer",
                format!("{u} on {name}"),
                format!(
                    "{u} is not among the listed maintainers ({})",
                    if maintainers.is_empty() {
                        "none listed".to_string()
                    } else {
                        maintainers.join(", ")
                    }
                ),
                "write access may come through an organisation team; otherwise add the account as a maintainer (`npm owner add`)",
            )
            .impact(Impact::Info)
        });
    }
    out
}

fn short(key: &str) -> String {
    key.chars().take(8).collect()
}

/// The check for inputs the action cannot even read: the live path would fail the same way.
pub(super) fn input_error(e: &crate::actions::ActionError) -> Vec<Check> {
    vec![crate::actions::preflight::input_check(&e.to_string())]
}
