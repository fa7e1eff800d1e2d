//! `npm.revoke_token`: revoke a compromised token by key and prove it dead.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::*;
use crate::actions::preflight::Check;
use crate::actions::{
    Action, ActionCtx, ActionError, ActionOutput, Probe, bool_input, opt_str_input, str_input,
};
use crate::net::npm::{NpmClient, NpmError, TokenInfo, token_fingerprint};
use crate::playbook::ActionSpec;

pub struct RevokeToken;

/// Does the masked token the registry shows (e.g. `YWVjZ...lZjY=`) belong to `secret`?
pub(crate) fn masked_matches(masked: &str, secret: &SecretString) -> bool {
    let s = secret.expose_secret();
    match masked.split_once("...") {
        Some((pre, suf)) if !pre.is_empty() && !suf.is_empty() => {
            s.starts_with(pre) && s.ends_with(suf)
        }
        _ => false,
    }
}

pub(crate) fn find_token<'a>(
    tokens: &'a [TokenInfo],
    wanted: &str,
) -> Result<Option<&'a TokenInfo>, ActionError> {
    let wanted = wanted.trim();
    // By key, or by the masked form `npm token list` prints (e.g. `npm_ab...wxyz`).
    if let Some(t) = tokens
        .iter()
        .find(|t| t.key == wanted || (!t.token.is_empty() && t.token == wanted))
    {
        return Ok(Some(t));
    }
    if wanted.len() < 6 {
        return Err(ActionError::Input(
            "a token key prefix must have at least 6 characters".into(),
        ));
    }
    let hits: Vec<&TokenInfo> = tokens
        .iter()
        .filter(|t| t.key.starts_with(wanted))
        .collect();
    match hits.len() {
        0 => Ok(None),
        1 => Ok(hits.first().copied()),
        n => Err(ActionError::Input(format!(
            "`{wanted}` matches {n} tokens; give more of the key"
        ))),
    }
}

impl RevokeToken {
    fn leaked_secret(inputs: &Value) -> Result<Option<SecretString>, ActionError> {
        match opt_str_input(inputs, "secret_env")? {
            Some(var) => crate::secrets::from_env(var)
                .map(Some)
                .map_err(|e| ActionError::Config(e.to_string())),
            None => Ok(None),
        }
    }

    fn check_self(
        c: &NpmClient,
        ctx: &ActionCtx,
        t: &TokenInfo,
        inputs: &Value,
    ) -> Result<(), ActionError> {
        if bool_input(inputs, "allow_self", false)? {
            return Ok(());
        }
        if let Ok(Some(own)) = load_token(&ctx.config.npm)
            && masked_matches(&t.token, &own)
        {
            return Err(ActionError::Refused(format!(
                "token {} is Recall's own configured token for {}; revoking it would stop the response. Set `allow_self: true` to do it anyway",
                t.key,
                c.registry()
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl Action for RevokeToken {
    fn credential(&self, config: &crate::config::Config, _inputs: &Value) -> Option<String> {
        Some(super::credential_source(&config.npm))
    }

    fn spec(&self) -> &'static ActionSpec {
        &REVOKE
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let wanted = str_input(inputs, "token")?;
        let leaked = Self::leaked_secret(inputs)?;
        let c = client(ctx)?;
        let tokens = c.list_tokens().await?;
        let t = find_token(&tokens, wanted)?
            .ok_or_else(|| {
                ActionError::Failed(format!(
                    "no token with key `{wanted}` is listed for this account"
                ))
            })?
            .clone();
        Self::check_self(&c, ctx, &t, inputs)?;
        let req = c.revoke_token_request(&t.key)?;
        ctx.ensure_live(&req)?;
        c.send(&req).await?;
        // Prove it: the key is gone from the list, and the leaked value (when known) is refused.
        let after = c.list_tokens().await?;
        if after.iter().any(|x| x.key == t.key) {
            return Err(ActionError::Failed(format!(
                "token {} is still listed after the revoke",
                t.key
            )));
        }
        let (proven, fp, proof) = match &leaked {
            Some(s) => match c.whoami(Some(s)).await {
                Err(e) if e.is_auth_refused() => (
                    true,
                    Some(token_fingerprint(s)),
                    format!(
                        "whoami with the old token now answers {}",
                        e.status().unwrap_or(0)
                    ),
                ),
                Ok(user) => {
                    return Err(ActionError::Failed(format!(
                        "the old token still authenticates as `{user}` after the revoke"
                    )));
                }
                Err(e) => return Err(ActionError::Http(e)),
            },
            None => (
                false,
                None,
                "key no longer listed (no leaked value given to test with)".to_string(),
            ),
        };
        Ok(ActionOutput::new(
            json!({ "key": t.key, "revoked": true, "proven_dead": proven, "fingerprint": fp }),
            format!("revoked token {}; {proof}", t.key),
        )
        .with("requests", json!([record_json(&req)])))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let wanted = str_input(inputs, "token")?;
        let c = client(ctx)?;
        let mut findings = Vec::new();
        let key = match c.list_tokens().await {
            Ok(tokens) => match find_token(&tokens, wanted) {
                Ok(Some(t)) => {
                    if let Err(e) = Self::check_self(&c, ctx, t, inputs) {
                        findings.push(format!("blocker: {e}"));
                    }
                    t.key.clone()
                }
                Ok(None) => {
                    findings.push(format!(
                        "blocker: no token with key `{wanted}` is listed for Recall's account"
                    ));
                    wanted.to_string()
                }
                Err(e) => {
                    findings.push(format!("blocker: {e}"));
                    wanted.to_string()
                }
            },
            Err(e) => {
                findings.push(finding_for(&NpmError::Http(e), &c, "list tokens"));
                wanted.to_string()
            }
        };
        let req = c.revoke_token_request(&key)?;
        Ok(ActionOutput::new(
            json!({ "key": key, "revoked": false, "proven_dead": false }),
            format!("rehearsal: would DELETE {}", req.url),
        )
        .with("requests", json!([record_json(&req)]))
        .with("findings", json!(findings)))
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        match str_input(inputs, "token") {
            Ok(key) => {
                let need = super::preflight::Need {
                    token_key: Some(key),
                    ..Default::default()
                };
                super::preflight::checks(ctx, need).await
            }
            Err(e) => super::preflight::input_error(&e),
        }
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let wanted = str_input(inputs, "token")?;
        let c = client(ctx)?;
        match c.list_tokens().await {
            Ok(tokens) => match find_token(&tokens, wanted) {
                Ok(None) => Ok(Probe::Done {
                    outputs: json!({ "key": wanted, "revoked": true, "proven_dead": false }),
                    evidence: json!({ "listed": false }),
                }),
                Ok(Some(_)) => Ok(Probe::NotDone {
                    evidence: json!({ "listed": true }),
                }),
                Err(e) => Ok(Probe::Unknown {
                    reason: e.to_string(),
                }),
            },
            Err(e) => Ok(Probe::Unknown {
                reason: e.to_string(),
            }),
        }
    }
}
