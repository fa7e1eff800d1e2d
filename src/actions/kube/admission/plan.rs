//! The rehearsal of `kube.admission_deny` / `kube.admission_allow`: read what each cluster
//! has (policy objects by content hash, the deny lists), and list the exact requests the
//! live run would send — nothing is written, not even a dry-run canary.

use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};

use super::super::{fold_plans, would_send};
use super::{
    Cluster, Mode, Request, SIGSTORE_CANNOT_PIN, SPEC_HASH, obj_name, op_for, policy, with_hash,
};
use crate::actions::{ActionCtx, ActionOutput};
use crate::config::ClusterConfig;
use crate::k8s::K8sError;

/// The rehearsal of one cluster: read what is there, list what would be written.
pub(super) async fn plan_in(
    ctx: &ActionCtx,
    cfg: &ClusterConfig,
    req: &Request,
    deny: bool,
) -> Result<Value, K8sError> {
    let c = Cluster::connect(&ctx.config, cfg).await?;
    let mut requests = Vec::new();
    let mut findings: Vec<String> = Vec::new();
    let ns = c.ns().to_string();
    let mgr = c.manager().to_string();
    if cfg.dialect == "sigstore-policy-controller" {
        if deny
            && req.block_repository
            && let Some(repo) = &req.image
        {
            let obj = with_hash(policy::sigstore_block(repo, req.mode, &ctx.incident));
            requests.push(would_send(
                c.name(),
                "PATCH",
                &format!("/apis/policy.sigstore.dev/v1beta1/clusterimagepolicies/{}?fieldManager={mgr}&force=true", obj_name(&obj)),
                Some("application/apply-patch+yaml"),
                Some(&obj),
            ));
        } else if deny {
            findings.push(format!("blocker: cluster {}: {SIGSTORE_CANNOT_PIN}; set block_repository: true with image to block the repository", c.name()));
        }
        return Ok(json!({ "cluster": c.name(), "requests": requests, "findings": findings }));
    }
    if deny {
        for (ar, obj) in c.policy_objects(req.mode) {
            let obj = with_hash(obj);
            let name = obj_name(&obj);
            let api: Api<DynamicObject> = Api::all_with(c.client.clone(), &ar);
            let existing = api
                .get_opt(&name)
                .await
                .map_err(|e| op_for(c.name(), "get", &ar).name(&name).err(e))?;
            let current = existing.and_then(|o| {
                o.metadata
                    .annotations
                    .and_then(|a| a.get(SPEC_HASH).cloned())
            });
            if current.as_deref() != obj["metadata"]["annotations"][SPEC_HASH].as_str() {
                requests.push(would_send(
                    c.name(),
                    "PATCH",
                    &format!(
                        "/apis/{}/{}/{}?fieldManager={mgr}&force=true",
                        ar.api_version, ar.plural, name
                    ),
                    Some("application/apply-patch+yaml"),
                    Some(&obj),
                ));
            }
        }
    }
    let current = c.current().await?;
    for m in Mode::ALL {
        let (mut data, rv) = c.read_list(m).await?;
        let before = data.clone();
        for d in &req.digests {
            let k = policy::digest_key(d);
            let stricter = current.get(d).is_some_and(|cm| *cm > req.mode);
            if deny && m == req.mode && !stricter {
                data.entry(k)
                    .or_insert_with(|| policy::deny_note(&ctx.incident, req.image.as_deref()));
            } else if !deny || (m < req.mode && !stricter) {
                data.remove(&k);
            }
        }
        if data != before {
            let removing = before.keys().any(|k| !data.contains_key(k));
            let body = if removing && rv.is_some() {
                let mut d = serde_json::Map::new();
                for k in before.keys().filter(|k| !data.contains_key(*k)) {
                    d.insert(k.clone(), Value::Null);
                }
                json!({ "metadata": { "resourceVersion": rv }, "data": d })
            } else {
                policy::deny_list(&ns, m, &data, rv.as_deref())
            };
            let (method, path, ct) = match (&rv, removing) {
                (None, _) => (
                    "POST",
                    format!("/api/v1/namespaces/{ns}/configmaps"),
                    "application/json",
                ),
                (Some(_), true) => (
                    "PATCH",
                    format!("/api/v1/namespaces/{ns}/configmaps/{}", m.configmap()),
                    "application/merge-patch+json",
                ),
                (Some(_), false) => (
                    "PATCH",
                    format!(
                        "/api/v1/namespaces/{ns}/configmaps/{}?fieldManager={mgr}&force=true",
                        m.configmap()
                    ),
                    "application/apply-patch+yaml",
                ),
            };
            requests.push(would_send(c.name(), method, &path, Some(ct), Some(&body)));
        }
    }
    if deny && req.mode == Mode::Enforce && cfg.canary {
        requests.push(would_send(
            c.name(),
            "POST",
            &format!("/api/v1/namespaces/{ns}/pods?dryRun=All"),
            Some("application/json"),
            None,
        ));
    }
    Ok(json!({ "cluster": c.name(), "requests": requests, "findings": findings }))
}

pub(super) fn plan_output(
    results: Vec<(&ClusterConfig, Result<Value, K8sError>)>,
    what: &str,
) -> ActionOutput {
    let p = fold_plans(results);
    ActionOutput::new(
        json!({ "clusters": p.per }),
        format!(
            "rehearsal: would send {} request(s) to {what}",
            p.requests.len()
        ),
    )
    .with("requests", json!(p.requests))
    .with("findings", json!(p.findings))
}
