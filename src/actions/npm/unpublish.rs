//! `npm.unpublish` (destructive: behind the engine's deletion gate) and
//! `npm.remove_trusted_publisher`.
//!
//! Unpublishing one version is two requests, as the npm CLI sends them: the packument
//! without the version (`PUT /<pkg>/-rev/<rev>`), then the tarball
//! (`DELETE /<tarball>/-rev/<rev>`). The gate reads the registry's own `time[version]`
//! before every attempt; npmjs enforces its own 72-hour/dependents rules on top, and its
//! refusal is reported as is. Recall never unpublishes a whole package.

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::actions::preflight::Check;

use super::{client, fetch_packument, package_lock, record_json, split_spec};
use crate::actions::{
    Action, ActionCtx, ActionError, ActionOutput, Probe, opt_str_input, str_input,
};
use crate::engine::gate::GateFacts;
use crate::net::npm::NpmClient;
use crate::playbook::{ActionSpec, InputSpec, InputType};

static UNPUBLISH: ActionSpec = ActionSpec {
    name: "npm.unpublish",
    summary: "Unpublish one exact version (destructive: the engine's deletion gate applies).",
    inputs: &[
        super::PACKAGE,
        InputSpec {
            name: "version",
            ty: InputType::String,
            required: false,
            help: "the exact version to remove (no ranges: deletion is one target at a time)",
        },
        InputSpec {
            name: "spec",
            ty: InputType::String,
            required: false,
            help: "name@exact-version, instead of package + version",
        },
        InputSpec {
            name: "reason",
            ty: InputType::String,
            required: false,
            help: "why the bytes themselves must go (recorded in the timeline)",
        },
    ],
    outputs: &["package", "version", "latest"],
    mutating: true,
    destructive: true,
};

static REMOVE_TRUST: ActionSpec = ActionSpec {
    name: "npm.remove_trusted_publisher",
    summary: "Delete the trusted-publishing (OIDC) configurations that let CI publish the package.",
    inputs: &[
        InputSpec {
            name: "package",
            ty: InputType::String,
            required: true,
            help: "package name",
        },
        InputSpec {
            name: "id",
            ty: InputType::String,
            required: false,
            help: "the configuration id (`npm trust list`); omit to match by repository/workflow",
        },
        InputSpec {
            name: "repository",
            ty: InputType::String,
            required: false,
            help: "only configurations for this owner/repo",
        },
        InputSpec {
            name: "workflow",
            ty: InputType::String,
            required: false,
            help: "only configurations for this workflow file",
        },
    ],
    outputs: &["package", "removed"],
    mutating: true,
    destructive: false,
};

/// The exact version to delete: ranges are refused.
fn exact_target(inputs: &Value) -> Result<(String, String), ActionError> {
    let (name, version) = match opt_str_input(inputs, "spec")? {
        Some(spec) => split_spec(spec)?,
        None => (
            str_input(inputs, "package")?.trim().to_string(),
            str_input(inputs, "version")?.trim().to_string(),
        ),
    };
    if nodejs_semver::Version::parse(&version).is_err() {
        return Err(ActionError::Input(format!(
            "`{version}` is not an exact version: npm.unpublish deletes one version at a time"
        )));
    }
    Ok((name, version))
}

fn has_version(pk: &Value, version: &str) -> bool {
    pk.get("versions")
        .and_then(|v| v.get(version))
        .is_some_and(Value::is_object)
}

pub struct Unpublish;

#[async_trait]
impl Action for Unpublish {
    fn credential(&self, config: &crate::config::Config, _inputs: &Value) -> Option<String> {
        Some(super::credential_source(&config.npm))
    }

    fn spec(&self) -> &'static ActionSpec {
        &UNPUBLISH
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let (name, version) = exact_target(inputs)?;
        let c = client(ctx)?;
        let lock = package_lock(c.registry(), &name);
        let _g = lock.lock().await;
        let pk = fetch_packument(&c, &name).await?;
        if !has_version(&pk, &version) {
            return Ok(ActionOutput::new(
                json!({ "package": name, "version": version, "latest": latest(&pk) }),
                format!("{name}@{version} is not in the registry; nothing to unpublish"),
            ));
        }
        let tarball = pk
            .pointer(&format!("/versions/{}/dist/tarball", ptr(&version)))
            .and_then(Value::as_str)
            .map(str::to_string);
        let put = c.unpublish_put_request(&name, &pk, &version)?;
        ctx.ensure_live(&put)?;
        c.send(&put).await?;
        // The tarball DELETE carries the revision the PUT produced.
        let after = fetch_packument(&c, &name).await?;
        let rev = after
            .get("_rev")
            .and_then(Value::as_str)
            .unwrap_or("0-0")
            .to_string();
        let del = c.unpublish_tarball_request(&name, &version, tarball.as_deref(), &rev)?;
        ctx.ensure_live(&del)?;
        let mut requests = vec![describe_put(&put, &version), record_json(&del)];
        match c.send(&del).await {
            Ok(_) => {}
            // Already gone (a registry that drops the tarball with the version): fine.
            Err(e) if e.status() == Some(404) => {
                requests.push(json!({ "note": "tarball DELETE answered 404: already gone" }));
            }
            Err(e) => return Err(e.into()),
        }
        let check = fetch_packument(&c, &name).await?;
        if has_version(&check, &version) {
            return Err(ActionError::Failed(format!(
                "registry accepted the unpublish but {name}@{version} is still listed"
            )));
        }
        Ok(ActionOutput::new(
            json!({ "package": name, "version": version, "latest": latest(&check) }),
            format!(
                "unpublished {name}@{version} (verified; latest is now {})",
                latest(&check).unwrap_or_else(|| "unset".into())
            ),
        )
        .with("requests", json!(requests))
        .with(
            "reason",
            json!(opt_str_input(inputs, "reason")?.unwrap_or("")),
        ))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let (name, version) = exact_target(inputs)?;
        let c = client(ctx)?;
        let pk = fetch_packument(&c, &name).await?;
        if !has_version(&pk, &version) {
            return Ok(ActionOutput::new(
                json!({ "package": name, "version": version, "latest": latest(&pk) }),
                format!(
                    "rehearsal: {name}@{version} is not in the registry; nothing would be sent"
                ),
            ));
        }
        let tarball = pk
            .pointer(&format!("/versions/{}/dist/tarball", ptr(&version)))
            .and_then(Value::as_str)
            .map(str::to_string);
        let put = c.unpublish_put_request(&name, &pk, &version)?;
        let del =
            c.unpublish_tarball_request(&name, &version, tarball.as_deref(), "<rev after PUT>")?;
        let new_latest = put
            .body
            .as_ref()
            .and_then(|b| b.pointer("/dist-tags/latest"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(ActionOutput::new(
            json!({ "package": name, "version": version, "latest": new_latest }),
            format!(
                "rehearsal: would PUT {} without {version}, then DELETE its tarball",
                put.url
            ),
        )
        .with(
            "requests",
            json!([describe_put(&put, &version), record_json(&del)]),
        ))
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        match super::target(inputs, true) {
            Ok((name, spec)) => {
                let need = super::preflight::Need {
                    package: Some(&name),
                    versions: spec.as_deref(),
                    ..Default::default()
                };
                super::preflight::checks(ctx, need).await
            }
            Err(e) => super::preflight::input_error(&e),
        }
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let (name, version) = exact_target(inputs)?;
        let c = client(ctx)?;
        match c.packument(&name, true).await {
            Ok(Some(pk)) if !has_version(&pk, &version) => Ok(Probe::Done {
                outputs: json!({ "package": name, "version": version, "latest": latest(&pk) }),
                evidence: json!(format!("{name}@{version} absent from the packument")),
            }),
            Ok(Some(_)) => Ok(Probe::NotDone {
                evidence: json!(format!("{name}@{version} still listed")),
            }),
            Ok(None) => Ok(Probe::Unknown {
                reason: format!("package {name} not found at all"),
            }),
            Err(e) => Ok(Probe::Unknown {
                reason: e.to_string(),
            }),
        }
    }

    async fn gate_facts(&self, ctx: &ActionCtx, inputs: &Value) -> Result<GateFacts, ActionError> {
        let (name, version) = exact_target(inputs)?;
        let c = client(ctx)?;
        let pk = fetch_packument(&c, &name).await?;
        if !has_version(&pk, &version) {
            return Err(ActionError::Failed(format!(
                "{name}@{version} is not in {}: nothing to delete",
                c.registry()
            )));
        }
        let url = format!("{}{}", c.registry(), NpmClient::package_path(&name)?);
        let published_at = NpmClient::publish_time(&pk, &version);
        Ok(GateFacts {
            published_at,
            published_source: match published_at {
                Some(_) => format!("npm time[\"{version}\"] from {url}"),
                None => format!("{url} has no time[\"{version}\"]"),
            },
            window_exempt: false,
            labels: vec![format!("npm:{name}@{version}")],
        })
    }
}

fn ptr(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn latest(pk: &Value) -> Option<String> {
    pk.pointer("/dist-tags/latest")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The PUT as the timeline shows it: not the whole packument, just what changes.
fn describe_put(r: &crate::net::http::RequestRecord, version: &str) -> Value {
    json!({
        "method": r.method, "url": r.url,
        "body": { "removes_version": version,
                  "dist-tags": r.body.as_ref().and_then(|b| b.get("dist-tags")).cloned() },
        "note": "the body is the whole packument fetched with ?write=true, without this version",
    })
}

// ---- npm.remove_trusted_publisher ----------------------------------------------------

pub struct RemoveTrustedPublisher;

impl RemoveTrustedPublisher {
    /// The configurations the inputs select, as (id, description).
    fn select(&self, list: &[Value], inputs: &Value) -> Result<Vec<(String, String)>, ActionError> {
        let id = opt_str_input(inputs, "id")?;
        let repo = opt_str_input(inputs, "repository")?;
        let wf = opt_str_input(inputs, "workflow")?;
        Ok(list
            .iter()
            .filter_map(|c| {
                let cid = match c.get("id") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => return None,
                };
                let crepo = c.pointer("/claims/repository").and_then(Value::as_str);
                let cwf = c
                    .pointer("/claims/workflow_ref/file")
                    .and_then(Value::as_str);
                let keep = id.is_none_or(|i| i == cid)
                    && repo.is_none_or(|r| crepo.is_some_and(|x| x.eq_ignore_ascii_case(r)))
                    && wf.is_none_or(|w| cwf == Some(w));
                keep.then(|| {
                    let desc = format!(
                        "{} {} {}",
                        c.get("type").and_then(Value::as_str).unwrap_or("?"),
                        crepo.unwrap_or("?"),
                        cwf.unwrap_or("")
                    );
                    (cid, desc.trim().to_string())
                })
            })
            .collect())
    }
}

#[async_trait]
impl Action for RemoveTrustedPublisher {
    fn credential(&self, config: &crate::config::Config, _inputs: &Value) -> Option<String> {
        Some(super::credential_source(&config.npm))
    }

    fn spec(&self) -> &'static ActionSpec {
        &REMOVE_TRUST
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let name = str_input(inputs, "package")?.trim().to_string();
        let c = client(ctx)?;
        let list = c.trusted_publishers(&name).await?;
        let chosen = self.select(&list, inputs)?;
        let mut requests = Vec::new();
        for (id, _) in &chosen {
            let req = c.trust_delete_request(&name, id)?;
            ctx.ensure_live(&req)?;
            match c.send(&req).await {
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => {} // removed meanwhile
                Err(e) => return Err(e.into()),
            }
            requests.push(record_json(&req));
        }
        let after = c.trusted_publishers(&name).await?;
        let left: Vec<String> = self
            .select(&after, inputs)?
            .into_iter()
            .filter(|(id, _)| chosen.iter().any(|(c, _)| c == id))
            .map(|(id, _)| id)
            .collect();
        if !left.is_empty() {
            return Err(ActionError::Failed(format!(
                "registry still lists trusted publisher(s) {} of {name}",
                left.join(", ")
            )));
        }
        let removed: Vec<String> = chosen.iter().map(|(_, d)| d.clone()).collect();
        Ok(ActionOutput::new(
            json!({ "package": name, "removed": removed }),
            if removed.is_empty() {
                format!("{name} has no matching trusted publisher; nothing sent")
            } else {
                format!(
                    "removed {} trusted publisher(s) of {name}: {} (verified)",
                    removed.len(),
                    removed.join("; ")
                )
            },
        )
        .with("requests", json!(requests)))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let name = str_input(inputs, "package")?.trim().to_string();
        let c = client(ctx)?;
        let list = c.trusted_publishers(&name).await?;
        let chosen = self.select(&list, inputs)?;
        let reqs = chosen
            .iter()
            .map(|(id, _)| c.trust_delete_request(&name, id).map(|r| record_json(&r)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ActionOutput::new(
            json!({ "package": name, "removed": chosen.iter().map(|(_, d)| d).collect::<Vec<_>>() }),
            format!(
                "rehearsal: would remove {} trusted publisher(s) of {name}",
                chosen.len()
            ),
        )
        .with("requests", json!(reqs)))
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        match str_input(inputs, "package") {
            Ok(name) => {
                let need = super::preflight::Need {
                    package: Some(name.trim()),
                    trust: true,
                    ..Default::default()
                };
                super::preflight::checks(ctx, need).await
            }
            Err(e) => super::preflight::input_error(&e),
        }
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let name = str_input(inputs, "package")?.trim().to_string();
        let c = client(ctx)?;
        match c.trusted_publishers(&name).await {
            Ok(list) => {
                let chosen = self.select(&list, inputs)?;
                if chosen.is_empty() {
                    Ok(Probe::Done {
                        outputs: json!({ "package": name, "removed": [] }),
                        evidence: json!("no matching trusted publisher is listed"),
                    })
                } else {
                    Ok(Probe::NotDone {
                        evidence: json!({ "still_listed": chosen.iter().map(|(i, _)| i).collect::<Vec<_>>() }),
                    })
                }
            }
            Err(e) => Ok(Probe::Unknown {
                reason: e.to_string(),
            }),
        }
    }
}
