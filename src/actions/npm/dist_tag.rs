//! `npm.dist_tag`: set, remove or repair a dist-tag; never leaves `latest` on a bad version.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::*;
use crate::actions::preflight::Check;
use crate::actions::{
    Action, ActionCtx, ActionError, ActionOutput, Probe, bool_input, list_input, opt_str_input,
};
use crate::net::http::RequestRecord;
use crate::net::npm::{NpmClient, NpmError, highest_good_version, versions_matching};
use crate::playbook::ActionSpec;

pub struct DistTag;

struct TagPlan {
    name: String,
    tag: String,
    from: Option<String>,
    to: Option<String>,
    request: Option<RequestRecord>,
}

impl DistTag {
    async fn decide(&self, c: &NpmClient, inputs: &Value) -> Result<TagPlan, ActionError> {
        let (name, spec) = target(inputs, false)?;
        let tag = opt_str_input(inputs, "tag")?
            .unwrap_or("latest")
            .to_string();
        let remove = bool_input(inputs, "remove", false)?;
        let explicit = opt_str_input(inputs, "version")?.map(str::to_string);
        let pk = fetch_packument(c, &name).await?;
        let current = pk
            .pointer(&format!(
                "/dist-tags/{}",
                tag.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .map(str::to_string);
        // Bad versions: `avoid` entries (exact or ranges), the `spec` range, and anything
        // already deprecated (highest_good_version skips those).
        let mut bad = Vec::new();
        let mut avoid = list_input(inputs, "avoid")?;
        if opt_str_input(inputs, "spec")?.is_some() {
            avoid.extend(spec.clone());
        }
        for a in &avoid {
            match versions_matching(&pk, a) {
                Ok(v) => bad.extend(v),
                Err(NpmError::UnknownVersion { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut plan = TagPlan {
            name: name.clone(),
            tag: tag.clone(),
            from: current.clone(),
            to: None,
            request: None,
        };
        if remove {
            if tag == "latest" {
                return Err(ActionError::Input(
                    "`latest` cannot be removed; move it instead".into(),
                ));
            }
            if current.is_some() {
                plan.request = Some(c.dist_tag_rm_request(&name, &tag)?);
            }
            return Ok(plan);
        }
        let target = match explicit {
            Some(v) => {
                if bad.contains(&v) {
                    return Err(ActionError::Refused(format!(
                        "{name}@{v} is one of the bad versions; the tag will not point at it"
                    )));
                }
                Some(v)
            }
            None => {
                let cur_bad = current
                    .as_ref()
                    .is_some_and(|v| bad.contains(v) || deprecation_of(&pk, v).is_some());
                if !cur_bad {
                    None
                } else {
                    Some(highest_good_version(&pk, &bad).ok_or_else(|| {
                        ActionError::Failed(format!(
                            "`{tag}` of {name} points at a bad version and no good version exists to move it to; publish a fixed version first"
                        ))
                    })?)
                }
            }
        };
        if let Some(t) = &target
            && current.as_ref() != Some(t)
        {
            plan.request = Some(c.dist_tag_set_request(&name, &tag, t)?);
        }
        plan.to = target.or(current);
        Ok(plan)
    }
}

#[async_trait]
impl Action for DistTag {
    fn credential(&self, config: &crate::config::Config, _inputs: &Value) -> Option<String> {
        Some(super::credential_source(&config.npm))
    }

    fn spec(&self) -> &'static ActionSpec {
        &DIST_TAG
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let c = client(ctx)?;
        let (name, _) = target(inputs, false)?;
        let lock = package_lock(c.registry(), &name);
        let _g = lock.lock().await;
        let p = self.decide(&c, inputs).await?;
        let outputs = json!({ "package": p.name, "tag": p.tag, "from": p.from, "to": p.to, "changed": p.request.is_some() });
        let Some(req) = p.request else {
            return Ok(ActionOutput::new(
                outputs,
                format!(
                    "{}: `{}` is {} — already safe; nothing sent",
                    p.name,
                    p.tag,
                    p.from.as_deref().unwrap_or("unset")
                ),
            ));
        };
        ctx.ensure_live(&req)?;
        c.send(&req).await?;
        let tags = c.dist_tags(&p.name).await?;
        if tags.get(&p.tag) != p.to.as_ref() {
            return Err(ActionError::Failed(format!(
                "registry accepted the dist-tag change but `{}` is {:?}",
                p.tag,
                tags.get(&p.tag)
            )));
        }
        Ok(ActionOutput::new(
            outputs,
            format!(
                "{}: moved `{}` from {} to {} (verified)",
                p.name,
                p.tag,
                p.from.as_deref().unwrap_or("unset"),
                p.to.as_deref().unwrap_or("removed")
            ),
        )
        .with("requests", json!([record_json(&req)])))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let c = client(ctx)?;
        match self.decide(&c, inputs).await {
            Ok(p) => {
                let outputs = json!({ "package": p.name, "tag": p.tag, "from": p.from, "to": p.to, "changed": p.request.is_some() });
                match p.request {
                    Some(req) => Ok(ActionOutput::new(
                        outputs,
                        format!("rehearsal: would {} {}", req.method, req.url),
                    )
                    .with("requests", json!([record_json(&req)]))),
                    None => Ok(ActionOutput::new(
                        outputs,
                        format!("rehearsal: `{}` of {} is already safe", p.tag, p.name),
                    )),
                }
            }
            Err(ActionError::Http(h)) => {
                let e = NpmError::Http(h);
                Ok(ActionOutput::new(
                    json!({}),
                    "rehearsal: could not read the dist-tags".to_string(),
                )
                .with(
                    "findings",
                    json!([finding_for(&e, &c, "read the dist-tags")]),
                ))
            }
            // In a rehearsal the deprecations were not really made, so `latest` may still sit
            // on a version the live run would have deprecated: that is what we report.
            Err(e) => Ok(ActionOutput::new(json!({}), format!("rehearsal: {e}"))
                .with("findings", json!([format!("blocker: {e}")]))),
        }
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        match super::target(inputs, false) {
            Ok((name, _)) => {
                let need = super::preflight::Need {
                    package: Some(&name),
                    ..Default::default()
                };
                super::preflight::checks(ctx, need).await
            }
            Err(e) => super::preflight::input_error(&e),
        }
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let c = client(ctx)?;
        match self.decide(&c, inputs).await {
            Ok(p) if p.request.is_none() => Ok(Probe::Done {
                outputs: json!({ "package": p.name, "tag": p.tag, "from": p.from, "to": p.to, "changed": true }),
                evidence: json!({ "tag": p.tag, "points_at": p.to }),
            }),
            Ok(p) => Ok(Probe::NotDone {
                evidence: json!({ "tag": p.tag, "points_at": p.from }),
            }),
            Err(e) => Ok(Probe::Unknown {
                reason: e.to_string(),
            }),
        }
    }
}
