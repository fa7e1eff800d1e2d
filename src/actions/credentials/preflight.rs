//! Preflight of `credentials.rotate`: the staging key is set, the new credential can be
//! obtained (npm token alive and read-write, the account password at hand), every
//! destination can be written, and the old credential can be revoked.

use super::stages::provided_input;
use super::*;
use crate::actions::preflight::{Check, Impact};

pub(super) async fn preflight(ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
    let spec = match Spec::parse(inputs) {
        Ok(s) => s,
        Err(e) => return vec![crate::actions::preflight::input_check(&e.to_string())],
    };
    let mut out = Vec::new();
    out.push(match staging_key(&ctx.config) {
        Ok(_) => Check::pass(
            "credentials.staging_key",
            "the staging key",
            "set: the new credential can be sealed between stages",
        ),
        Err(e) => Check::fail(
            "credentials.staging_key",
            "the staging key",
            e.to_string(),
            "set RECALL_STAGING_KEY (or [credentials] staging_key_env / staging_key_file) to a long random string on every host that runs Recall",
        ),
    });
    // The provider: the npm token mints and revokes; crates revokes with the old token.
    match spec.provider {
        Provider::Npm => {
            let need = crate::actions::npm::preflight::Need {
                token_key: spec.old_key.as_deref(),
                ..Default::default()
            };
            out.extend(crate::actions::npm::preflight::checks(ctx, need).await);
        }
        Provider::Crates | Provider::None => {}
    }
    match spec.new {
        New::Mint => {
            if let Some(p) = &spec.password_env {
                out.push(if std::env::var(p).is_ok_and(|v| !v.trim().is_empty()) {
                    Check::pass(
                        "credentials.mint",
                        format!("env {p}"),
                        "the account password is set",
                    )
                } else {
                    Check::fail(
                        "credentials.mint",
                        format!("env {p}"),
                        "not set: npm mints a token only with the account password",
                        format!(
                            "export {p} with the npm account's password in Recall's environment"
                        ),
                    )
                });
            }
        }
        New::Provided => {
            if provided_input(inputs).ok().flatten().is_none() {
                out.push(Check::unknown(
                    "credentials.provided",
                    "the new credential",
                    "a person creates it and hands it over with `recall credentials provide`",
                    "make sure the on-call can create it (registry account, role) and runs Recall's CLI where the staging key is set",
                ));
            }
        }
        New::Generate { .. } => {}
    }
    for d in &spec.dests {
        out.extend(destination(ctx, d).await);
    }
    if spec.provider == Provider::Crates
        && let Some(v) = &spec.old_secret_env
    {
        out.push(crate::actions::crates::token_in_env_check(ctx, "credentials.old", v, true).await);
    }
    out
}

async fn destination(ctx: &ActionCtx, d: &Dest) -> Vec<Check> {
    let label = d.label();
    match d {
        Dest::GitHub { scope, name } => {
            crate::actions::github::preflight::secret_destination_checks(ctx, scope, name).await
        }
        Dest::Kube {
            cluster,
            namespace,
            secret,
            restart,
            ..
        } => {
            crate::actions::kube::preflight::secret_destination(
                ctx,
                cluster.as_deref(),
                namespace,
                secret,
                *restart,
            )
            .await
        }
        Dest::EnvFile { path, .. } => {
            let dir = std::path::Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let writable = std::fs::metadata(dir)
                .map(|m| m.is_dir() && !m.permissions().readonly())
                .unwrap_or(false);
            vec![if writable {
                Check::pass(
                    "credentials.destination",
                    label,
                    format!("directory {} exists and is writable", dir.display()),
                )
            } else {
                Check::fail(
                    "credentials.destination",
                    label,
                    format!("directory {} does not exist or is read-only", dir.display()),
                    "create the directory (the file is written atomically with mode 0600)",
                )
                .impact(Impact::Blocks)
            }]
        }
    }
}
