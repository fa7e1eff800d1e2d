//! The rehearsal of a rotation: every read the live run would make, and the requests it
//! would send, with a finding for everything that would stop it.

use super::stages::{provided_input, rec_json};
use super::*;

async fn plan_revoke(
    ctx: &ActionCtx,
    spec: &Spec,
    findings: &mut Vec<String>,
    requests: &mut Vec<Value>,
) {
    match spec.provider {
                    Provider::Npm => match crate::actions::npm::client(ctx) {
                        Ok(c) => match c.list_tokens().await {
                            Ok(tokens) => {
                                let old = spec
                                    .old_secret_env
                                    .as_deref()
                                    .and_then(|v| crate::secrets::from_env(v).ok());
                                let t = match (&spec.old_key, &old) {
                                    (Some(k), _) => find_token(&tokens, k).ok().flatten().cloned(),
                                    (None, Some(o)) => tokens.iter().find(|t| masked_matches(&t.token, o)).cloned(),
                                    _ => None,
                                };
                                match t {
                                    Some(t) => {
                                        if let Ok(rec) = c.revoke_token_request(&t.key) {
                                            requests.push(rec_json(&rec));
                                        }
                                    }
                                    None => findings.push(format!(
                                        "blocker: the old npm token ({}) is not among the account's tokens: the revoke would fail",
                                        spec.old_key.as_deref().unwrap_or("by value")
                                    )),
                                }
                            }
                            Err(e) => findings.push(format!(
                                "blocker: could not list the npm account's tokens ({e}): the revoke and the mint need a token with read-write access"
                            )),
                        },
                        Err(e) => findings.push(format!("blocker: {e}")),
                    },
                    Provider::Crates => {
                        if let Some(v) = &spec.old_secret_env
                            && crate::secrets::from_env(v).is_err()
                        {
                            findings.push(format!(
                                "blocker: env {v} (old_secret_env) is not set: the old crates token cannot be revoked without it"
                            ));
                        }
                        if let Ok(c) = crates_client(ctx) {
                            requests.push(rec_json(&c.revoke_current_request()));
                        }
                    }
                    Provider::None => {}
                }
}

pub(super) async fn plan(ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
    let spec = Spec::parse(inputs)?;
    let mut findings: Vec<String> = Vec::new();
    let mut requests: Vec<Value> = Vec::new();
    if let Err(e) = staging_key(&ctx.config) {
        findings.push(format!("blocker: {e}"));
    }
    if spec.revoke_first {
        plan_revoke(ctx, &spec, &mut findings, &mut requests).await;
    }
    match spec.new {
        New::Mint => {
            if let Some(p) = &spec.password_env
                && std::env::var(p).map_or(true, |v| v.trim().is_empty())
            {
                findings.push(format!(
                    "blocker: env {p} (password_env) is not set: npm will not mint a token without the account password"
                ));
            }
            if let Ok(c) = crate::actions::npm::client(ctx) {
                match c.whoami(None).await {
                    Ok(_) => requests.push(rec_json(&c.create_token_record(spec.readonly, &spec.cidr))),
                    Err(e) => findings.push(format!(
                        "blocker: Recall's npm token is refused or unreachable ({e}): it cannot mint the new token"
                    )),
                }
            }
        }
        New::Provided => {
            if provided_input(inputs).ok().flatten().is_none() {
                findings.push(
                    "a person will be asked to create the new credential and hand it over with `recall credentials provide`".into(),
                );
            }
        }
        New::Generate { .. } => {}
    }
    for d in &spec.dests {
        match d {
            Dest::GitHub { scope, name } => match crate::actions::github::client(ctx) {
                Ok(c) => match c.public_key(&scope.path()).await {
                    Ok((key_id, _)) => {
                        let vis = matches!(scope, Scope::Org { .. }).then_some("private");
                        requests.push(rec_json(&put_record(&c, scope, name, &key_id, vis)));
                    }
                    Err(e) => findings.push(crate::actions::github::finding(
                        &ActionError::Read(e),
                        &format!("read the Actions public key of {}", scope.label()),
                    )),
                },
                Err(e) => findings.push(format!("blocker: {e}")),
            },
            Dest::Kube {
                cluster,
                namespace,
                secret,
                key,
                ..
            } => match crate::k8s::select(&ctx.config, cluster.as_deref()) {
                Ok(list) if list.len() == 1 => requests.push(crate::actions::kube::would_send(
                    &list[0].name,
                    "PUT",
                    &format!("/api/v1/namespaces/{namespace}/secrets/{secret}"),
                    Some("application/json"),
                    Some(&json!({ "data": { key: "<the new credential>" } })),
                )),
                Ok(_) => findings.push(format!(
                    "blocker: destination {}: name one cluster",
                    d.label()
                )),
                Err(e) => findings.push(format!("blocker: destination {}: {e}", d.label())),
            },
            Dest::EnvFile { path, var } => {
                let dir = std::path::Path::new(path)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."));
                if !dir.is_dir() {
                    findings.push(format!(
                        "blocker: env file {path}: directory {} does not exist",
                        dir.display()
                    ));
                }
                requests.push(json!({ "method": "WRITE", "url": format!("file://{path}"), "body": { var: "<the new credential>" } }));
            }
        }
    }
    if !spec.revoke_first {
        plan_revoke(ctx, &spec, &mut findings, &mut requests).await;
    }
    let what: Vec<String> = requests
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap_or("?"),
                r["url"].as_str().or(r["path"].as_str()).unwrap_or("?")
            )
        })
        .collect();
    Ok(ActionOutput::new(
        json!({
            "provider": format!("{:?}", spec.provider).to_lowercase(),
            "new_fingerprint": null, "new_key": null, "old_revoked": null,
            "old_dead": false, "new_works": false,
            "destinations": spec.dests.iter().map(Dest::label).collect::<Vec<_>>(),
        }),
        if what.is_empty() {
            "rehearsal: no request could be planned (see the findings)".to_string()
        } else {
            format!("rehearsal: would {}", what.join("; "))
        },
    )
    .with("requests", Value::Array(requests))
    .with("findings", json!(findings)))
}
