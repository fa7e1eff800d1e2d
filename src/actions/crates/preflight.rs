//! Preflight of the crates actions: Recall's token is configured and accepted
//! (`GET /api/v1/me/tokens/0`, read-only), the crate (and version) exists, and what the
//! registry can do with a yank message; a token that must revoke itself is alive or
//! already dead. A token's scopes are shown by crates.io only to the website session
//! (`GET /api/v1/me/tokens` is cookie-only), so they are `unknown`.

use serde_json::Value;

use super::registry;
use crate::actions::ActionCtx;
use crate::actions::preflight::{Check, Impact};
use crate::net::crates::TokenState;

/// A token held in env `var` that is to revoke itself: alive (the revocation would act) or
/// already refused (nothing left) both pass. An unset variable fails when `needed`, else it
/// is unknown (a leaked token is usually at hand only once the incident starts).
pub(crate) async fn token_in_env_check(
    ctx: &ActionCtx,
    check: &str,
    var: &str,
    needed: bool,
) -> Check {
    let subject = format!("token from env {var}");
    let token = match crate::secrets::from_env(var) {
        Ok(t) => t,
        Err(e) => {
            let fix = format!(
                "export {var} with the token in Recall's environment (it is read, never recorded)"
            );
            return if needed {
                Check::fail(check, subject, e.to_string(), fix)
            } else {
                Check::unknown(check, subject, e.to_string(), fix)
            };
        }
    };
    let reg = match registry(ctx) {
        Ok(r) => r,
        Err(e) => {
            return Check::fail(
                "crates.registry",
                "[crates] api",
                e.to_string(),
                "fix [crates] in the config",
            );
        }
    };
    match reg.client.token_state(&token).await {
        Ok(TokenState::Accepted) => Check::pass(
            check,
            subject,
            format!("{} still accepts it: the revocation would act", reg.label),
        ),
        Ok(TokenState::Refused { status, .. }) => Check::pass(
            check,
            subject,
            format!(
                "{} already refuses it ({status}): nothing left to revoke",
                reg.label
            ),
        ),
        Ok(TokenState::Inconclusive { status, detail }) => Check::unknown(
            check,
            subject,
            format!("{status}: {detail}"),
            "check the token in the registry's web UI",
        ),
        Err(e) => Check::fail(
            "crates.registry",
            reg.label.clone(),
            e.to_string(),
            "make the registry reachable from where Recall runs ([crates] api, network)",
        ),
    }
}

/// Preflight of the crates actions: Recall's token is configured and accepted
/// (`GET /api/v1/me/tokens/0`, read-only), the crate (and version) exists, and what the
/// registry can do with a yank message. A token's scopes are shown by crates.io only to
/// the website session (`GET /api/v1/me/tokens` is cookie-only), so they are `unknown`.
pub(super) async fn checks(
    ctx: &ActionCtx,
    krate: &str,
    version: Option<&str>,
    message: bool,
    scope: &str,
) -> Vec<Check> {
    let reg = match registry(ctx) {
        Ok(r) => r,
        Err(e) => {
            return vec![Check::fail(
                "crates.credential",
                "Recall's crates token",
                e.to_string(),
                "fix [crates] token_env / token_file / api in the config",
            )];
        }
    };
    let mut out = Vec::new();
    match &reg.own {
        None => out.push(Check::fail(
            "crates.credential",
            format!("Recall's token for {}", reg.label),
            format!("{}: no token is set", reg.source),
            format!(
                "create an API token with the `{scope}` endpoint scope for `{krate}` at {} and give it to Recall through {} ([crates] token_env / token_file)",
                reg.tokens_page(),
                reg.source
            ),
        )),
        Some(own) => match reg.client.token_state(own).await {
            Ok(TokenState::Accepted) => {
                out.push(Check::pass(
                    "crates.token",
                    format!("token from {}", reg.source),
                    format!("GET {}api/v1/me/tokens/0: the registry authenticated it", reg.client.api_base()),
                ));
                out.push(Check::unknown(
                    "crates.token.scope",
                    format!("token from {}", reg.source),
                    format!("{} shows a token's scopes and expiry only to the website session", reg.label),
                    format!(
                        "confirm at {} that the token has the `{scope}` endpoint scope, a crate scope covering `{krate}`, and no expiry before the next game day",
                        reg.tokens_page()
                    ),
                ));
            }
            Ok(TokenState::Refused { status, detail }) => out.push(Check::fail(
                "crates.token",
                format!("token from {}", reg.source),
                format!("GET {}api/v1/me/tokens/0 → {status}: {detail}", reg.client.api_base()),
                format!("the token is revoked or expired: create a new one with the `{scope}` scope at {}", reg.tokens_page()),
            )),
            Ok(TokenState::Inconclusive { status, detail }) => out.push(Check::unknown(
                "crates.token",
                format!("token from {}", reg.source),
                format!("GET {}api/v1/me/tokens/0 → {status}: {detail}", reg.client.api_base()),
                "the registry has no read-only way to check a token; confirm it in its web UI",
            )),
            Err(e) => out.push(Check::fail(
                "crates.registry",
                reg.label.clone(),
                e.to_string(),
                "make the registry reachable from where Recall runs ([crates] api, network)",
            )),
        },
    }
    let Some(v) = version else {
        return out;
    };
    let rec = match reg.client.version_info_request(krate, v) {
        Ok(r) => r,
        Err(e) => {
            out.push(crate::actions::preflight::input_check(&e.to_string()));
            return out;
        }
    };
    match reg.client.send(&rec).await {
        Ok(body) => {
            let inner = body.get("version").unwrap_or(&body);
            let yanked = inner
                .get("yanked")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            out.push(Check::pass(
                "crates.target",
                format!("{krate}@{v}"),
                format!("GET {} → 200 (yanked: {yanked})", rec.url),
            ));
            if message {
                // crates.io's version JSON carries `yank_message`; a registry without it
                // has no PATCH route, and the message is dropped by the DELETE fallback.
                out.push(if inner.get("yank_message").is_some() {
                    Check::pass(
                        "crates.yank_message",
                        reg.label.clone(),
                        "the version JSON has a `yank_message` field: the message is sent with PATCH",
                    )
                } else {
                    Check::fail(
                        "crates.yank_message",
                        reg.label.clone(),
                        "the version JSON has no `yank_message` field: the registry predates yank messages",
                        "the yank still happens (DELETE …/yank) but without the message; tell users in the advisory instead",
                    )
                    .impact(Impact::Degrades)
                });
            }
        }
        Err(e) if e.is_not_found() => out.push(Check::fail(
            "crates.target",
            format!("{krate}@{v}"),
            format!("GET {} → 404", rec.url),
            "check the crate and version in the playbook parameters and [crates] api",
        )),
        Err(e) => out.push(Check::fail(
            "crates.registry",
            reg.label.clone(),
            e.to_string(),
            "make the registry reachable from where Recall runs ([crates] api, network)",
        )),
    }
    out
}
