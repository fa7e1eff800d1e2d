//! Kubernetes actions, acting on the clusters in `[[kube.clusters]]`:
//! - `kube.clusters`: the configured cluster names, recorded, for a `for_each` fan-out so
//!   that a failing cluster fails its own item and not the others;
//! - `kube.admission_deny` / `kube.admission_allow` ([`admission`]): the deny list
//!   enforced at admission, in each cluster's dialect;
//! - `kube.find_running` ([`running`]): which pods run a bad digest, and their workloads;
//! - `kube.rotate_secret` ([`secret`]): new values for a Secret's keys, never recorded.
//!
//! Every action takes an optional `cluster`; without it the action covers every cluster
//! concurrently, and one cluster's failure does not stop the others.

pub mod admission;
pub(crate) mod preflight;
pub mod running;
pub mod secret;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Action, ActionCtx, ActionError, ActionOutput, Probe, opt_str_input};
use crate::config::{ClusterConfig, Config};
use crate::k8s::K8sError;
use crate::playbook::{ActionSpec, InputSpec, InputType};

pub fn actions() -> Vec<Arc<dyn Action>> {
    vec![
        Arc::new(Clusters),
        Arc::new(admission::AdmissionDeny),
        Arc::new(admission::AdmissionAllow),
        Arc::new(running::FindRunning),
        Arc::new(secret::RotateSecret),
    ]
}

pub(crate) const NO_CLUSTER: &str = "no Kubernetes cluster is configured ([[kube.clusters]] in the config), so there is no cluster to act on";

pub(crate) const CLUSTER: InputSpec = InputSpec {
    name: "cluster",
    ty: InputType::String,
    required: false,
    help: "one configured cluster (a fan-out item); default every cluster",
};

fn no_clusters(config: &Config) -> Option<&'static str> {
    config.kube.clusters.is_empty().then_some(NO_CLUSTER)
}

/// The clusters an invocation covers.
pub(crate) fn clusters<'a>(
    ctx: &'a ActionCtx,
    inputs: &Value,
) -> Result<Vec<&'a ClusterConfig>, ActionError> {
    let only = opt_str_input(inputs, "cluster")?.map(str::trim);
    let list = crate::k8s::select(&ctx.config, only).map_err(ActionError::Input)?;
    if list.is_empty() {
        return Err(ActionError::Config(NO_CLUSTER.into()));
    }
    Ok(list)
}

/// Which kubeconfig/context the selected clusters use (never the credential).
pub(crate) fn credential(config: &Config, inputs: &Value) -> Option<String> {
    let only = inputs.get("cluster").and_then(Value::as_str);
    let list = crate::k8s::select(config, only).ok()?;
    Some(
        list.iter()
            .map(|c| crate::k8s::credential_source(c))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// Runs `f` on every cluster concurrently; each cluster's result is kept separately.
pub(crate) async fn each_cluster<'a, F, Fut, T>(
    list: &[&'a ClusterConfig],
    f: F,
) -> Vec<(&'a ClusterConfig, Result<T, K8sError>)>
where
    F: Fn(&'a ClusterConfig) -> Fut,
    Fut: std::future::Future<Output = Result<T, K8sError>>,
{
    let futs = list.iter().map(|c| {
        let fut = f(c);
        async move { (*c, fut.await) }
    });
    futures::future::join_all(futs).await
}

/// Folds per-cluster results: all good → the outputs; any failure → one error naming each
/// failed cluster and what the others did, transient when every failure is.
pub(crate) fn fold_clusters(
    results: Vec<(&ClusterConfig, Result<Value, K8sError>)>,
) -> Result<Vec<Value>, ActionError> {
    let mut ok = Vec::new();
    let mut failed: Vec<(String, ActionError)> = Vec::new();
    for (c, r) in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => failed.push((c.name.clone(), e.into())),
        }
    }
    if failed.is_empty() {
        return Ok(ok);
    }
    if failed.len() == 1 && ok.is_empty() {
        return Err(failed.remove(0).1);
    }
    let done: Vec<String> = ok
        .iter()
        .filter_map(|v| v.get("cluster").and_then(Value::as_str).map(String::from))
        .collect();
    let msg = format!(
        "{} of {} cluster(s) failed: {}{}",
        failed.len(),
        failed.len() + ok.len(),
        failed
            .iter()
            .map(|(n, e)| format!("[{n}] {e}"))
            .collect::<Vec<_>>()
            .join("; "),
        if done.is_empty() {
            String::new()
        } else {
            format!(" (done in: {})", done.join(", "))
        }
    );
    if failed.iter().all(|(_, e)| e.is_transient()) {
        Err(ActionError::Transient(msg))
    } else {
        Err(ActionError::Failed(msg))
    }
}

/// Per-cluster rehearsal plans folded together.
pub(crate) struct Plans {
    pub requests: Vec<Value>,
    pub findings: Vec<Value>,
    /// Per cluster: its name, its request count and the plan's other fields, or its error.
    pub per: Vec<Value>,
}

/// Folds per-cluster plans (`{requests, findings, ...}`); a cluster that could not be read
/// is a blocker finding, not a failed rehearsal.
pub(crate) fn fold_plans(results: Vec<(&ClusterConfig, Result<Value, K8sError>)>) -> Plans {
    let mut p = Plans {
        requests: Vec::new(),
        findings: Vec::new(),
        per: Vec::new(),
    };
    for (c, r) in results {
        match r {
            Ok(mut v) => {
                let reqs = v["requests"].as_array().cloned().unwrap_or_default();
                p.findings
                    .extend(v["findings"].as_array().cloned().unwrap_or_default());
                if let Some(m) = v.as_object_mut() {
                    m.remove("requests");
                    m.remove("findings");
                    m.insert("cluster".into(), json!(c.name));
                    m.insert("requests".into(), json!(reqs.len()));
                }
                p.requests.extend(reqs);
                p.per.push(v);
            }
            Err(e) => {
                p.findings.push(json!(format!("blocker: {e}")));
                p.per
                    .push(json!({"cluster": c.name, "error": e.to_string()}));
            }
        }
    }
    p
}

// ---- kube.clusters -------------------------------------------------------------------

static CLUSTERS: ActionSpec = ActionSpec {
    name: "kube.clusters",
    summary: "The configured Kubernetes clusters, recorded, for a per-cluster fan-out.",
    inputs: &[InputSpec {
        name: "dialect",
        ty: InputType::String,
        required: false,
        help: "only clusters running this admission dialect",
    }],
    outputs: &["names", "clusters"],
    mutating: false,
    destructive: false,
};

pub struct Clusters;

impl Clusters {
    fn read(ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let dialect = opt_str_input(inputs, "dialect")?;
        let list: Vec<&ClusterConfig> = ctx
            .config
            .kube
            .clusters
            .iter()
            .filter(|c| dialect.is_none_or(|d| c.dialect == d))
            .collect();
        let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
        Ok(ActionOutput::new(
            json!({
                "names": names,
                "clusters": list.iter().map(|c| json!({"name": c.name, "dialect": c.dialect})).collect::<Vec<_>>(),
            }),
            if names.is_empty() {
                "no cluster matches".to_string()
            } else {
                format!("clusters in scope: {}", names.join(", "))
            },
        ))
    }
}

#[async_trait]
impl Action for Clusters {
    fn spec(&self) -> &'static ActionSpec {
        &CLUSTERS
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        Self::read(ctx, inputs)
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        Self::read(ctx, inputs)
    }

    async fn probe(&self, _ctx: &ActionCtx, _inputs: &Value) -> Result<Probe, ActionError> {
        Ok(Probe::NotDone {
            evidence: json!("a read has no effect to reconcile"),
        })
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<super::preflight::Check> {
        preflight::cluster_list(ctx, inputs)
    }
}

/// A request the rehearsal would send, for the timeline (no credential, body as JSON).
pub(crate) fn would_send(
    cluster: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&Value>,
) -> Value {
    let mut v = json!({ "cluster": cluster, "method": method, "path": path });
    if let Some(ct) = content_type {
        v["content_type"] = json!(ct);
    }
    if let Some(b) = body {
        v["body"] = b.clone();
    }
    v
}
