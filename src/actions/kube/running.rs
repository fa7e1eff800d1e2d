//! `kube.find_running`: which pods run a bad digest right now, in every cluster.
//!
//! Admission only stops new Pods; this sweep finds the ones already running. It lists
//! Pods across all namespaces page by page (`limit` + `continue`), compares what the
//! kubelet reports it ran (`status.*containerStatuses[].imageID`, every historical
//! format) with the digests, falls back to the spec's pinned digest for containers that
//! have not started, and walks `ownerReferences` up to the workload a person acts on
//! (Pod → ReplicaSet → Deployment, Pod → Job → CronJob). Owners are fetched only for
//! matching pods, once each.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use super::{CLUSTER, clusters, credential, each_cluster, no_clusters};
use crate::actions::preflight::Check;
use crate::actions::{Action, ActionCtx, ActionError, ActionOutput, Probe, bool_input, list_input};
use crate::config::{ClusterConfig, Config};
use crate::k8s::image::{image_digest, parse_image_id};
use crate::k8s::policy::normalize_digest;
use crate::k8s::{K8sError, Op};
use crate::playbook::{ActionSpec, InputSpec, InputType};

static FIND_RUNNING: ActionSpec = ActionSpec {
    name: "kube.find_running",
    summary: "Find the pods (and their workloads) running any of the digests, in every cluster.",
    inputs: &[
        InputSpec {
            name: "digests",
            ty: InputType::List,
            required: true,
            help: "image digests (sha256:…) — the index and its platform manifests",
        },
        CLUSTER,
        InputSpec {
            name: "allow_partial",
            ty: InputType::Bool,
            required: false,
            help: "succeed with the clusters that answered, listing the others as unreachable (default false: any failed cluster fails the step)",
        },
    ],
    outputs: &["rows", "count", "workloads", "clusters", "unreachable"],
    mutating: false,
    destructive: false,
};

/// One running container of a bad digest.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// containers | initContainers | ephemeralContainers
    pub container_kind: &'static str,
    pub image: String,
    pub image_id: String,
    pub digest: String,
    /// `imageID` (what ran) or `spec` (pinned in the spec, not started yet).
    pub matched_on: &'static str,
    pub node: String,
    pub phase: String,
    /// The top owner a person acts on, `Kind/name` (the pod itself when unowned).
    pub workload: String,
    /// Pod → … → workload, e.g. `["ReplicaSet/web-7d9", "Deployment/web"]`.
    pub owners: Vec<String>,
}

impl Row {
    fn to_json(&self) -> Value {
        json!({
            "cluster": self.cluster, "namespace": self.namespace, "pod": self.pod,
            "container": self.container, "container_kind": self.container_kind,
            "image": self.image, "image_id": self.image_id, "digest": self.digest,
            "matched_on": self.matched_on, "node": self.node, "phase": self.phase,
            "workload": self.workload, "owners": self.owners,
        })
    }
}

/// Per-container statistics of a sweep.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scan {
    pub pods: usize,
    pub pages: usize,
    /// Containers whose imageID is a config ID (`docker://sha256:…`): not comparable with
    /// registry digests.
    pub unverifiable: usize,
}

/// The matching containers of one pod (pure, for tests and the sweep).
pub fn match_pod(cluster: &str, pod: &Pod, digests: &BTreeSet<String>) -> Vec<Row> {
    let mut rows = Vec::new();
    let meta = &pod.metadata;
    let ns = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let status = pod.status.as_ref();
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let phase = status.and_then(|s| s.phase.clone()).unwrap_or_default();
    // The images in the spec by container name, for the spec fallback.
    let mut spec_images: HashMap<(&'static str, String), String> = HashMap::new();
    if let Some(spec) = &pod.spec {
        for c in &spec.containers {
            spec_images.insert(
                ("containers", c.name.clone()),
                c.image.clone().unwrap_or_default(),
            );
        }
        for c in spec.init_containers.iter().flatten() {
            spec_images.insert(
                ("initContainers", c.name.clone()),
                c.image.clone().unwrap_or_default(),
            );
        }
        for c in spec.ephemeral_containers.iter().flatten() {
            spec_images.insert(
                ("ephemeralContainers", c.name.clone()),
                c.image.clone().unwrap_or_default(),
            );
        }
    }
    let statuses: [(
        &'static str,
        Option<&Vec<k8s_openapi::api::core::v1::ContainerStatus>>,
    ); 3] = [
        (
            "containers",
            status.and_then(|s| s.container_statuses.as_ref()),
        ),
        (
            "initContainers",
            status.and_then(|s| s.init_container_statuses.as_ref()),
        ),
        (
            "ephemeralContainers",
            status.and_then(|s| s.ephemeral_container_statuses.as_ref()),
        ),
    ];
    let mut seen: BTreeSet<(&'static str, String)> = BTreeSet::new();
    let mut push =
        |kind: &'static str, cname: &str, image: &str, image_id: &str, digest: String, on| {
            rows.push(Row {
                cluster: cluster.to_string(),
                namespace: ns.clone(),
                pod: name.clone(),
                container: cname.to_string(),
                container_kind: kind,
                image: image.to_string(),
                image_id: image_id.to_string(),
                digest,
                matched_on: on,
                node: node.clone(),
                phase: phase.clone(),
                workload: String::new(),
                owners: Vec::new(),
            });
        };
    for (kind, list) in statuses {
        for cs in list.into_iter().flatten() {
            if let Some(id) = parse_image_id(&cs.image_id)
                && id.repo_digest
            {
                seen.insert((kind, cs.name.clone()));
                if digests.contains(&id.digest) {
                    push(
                        kind,
                        &cs.name,
                        &cs.image,
                        &cs.image_id,
                        id.digest,
                        "imageID",
                    );
                }
            }
        }
    }
    // Not started yet (or a runtime that reported no repo digest): the spec's pin.
    for ((kind, cname), image) in &spec_images {
        if seen.contains(&(*kind, cname.clone())) {
            continue;
        }
        if let Some(d) = image_digest(image)
            && digests.contains(&d)
        {
            push(kind, cname, image, "", d, "spec");
        }
    }
    rows.sort_by(|a, b| (a.container_kind, &a.container).cmp(&(b.container_kind, &b.container)));
    rows
}

fn count_unverifiable(pod: &Pod) -> usize {
    let Some(s) = &pod.status else { return 0 };
    [
        s.container_statuses.as_ref(),
        s.init_container_statuses.as_ref(),
        s.ephemeral_container_statuses.as_ref(),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .filter(|cs| parse_image_id(&cs.image_id).is_some_and(|id| !id.repo_digest))
    .count()
}

fn controller_of(refs: Option<&Vec<OwnerReference>>) -> Option<&OwnerReference> {
    let refs = refs?;
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
}

/// Resolves owners with a cache: (namespace, kind, name) → the owner's own controller.
struct Owners<'a> {
    cluster: &'a str,
    client: kube::Client,
    cache: HashMap<(String, String, String), Option<(String, String)>>,
}

impl Owners<'_> {
    /// The next owner up from `kind/name`, if it has one (ReplicaSet → Deployment, Job → CronJob).
    async fn parent(
        &mut self,
        ns: &str,
        kind: &str,
        name: &str,
    ) -> Result<Option<(String, String)>, K8sError> {
        let key = (ns.to_string(), kind.to_string(), name.to_string());
        if let Some(v) = self.cache.get(&key) {
            return Ok(v.clone());
        }
        let refs = match kind {
            "ReplicaSet" => {
                let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
                api.get_opt(name)
                    .await
                    .map_err(|e| {
                        Op::new(self.cluster, "get", "apps", "replicasets")
                            .ns(ns)
                            .name(name)
                            .err(e)
                    })?
                    .and_then(|o| o.metadata.owner_references)
            }
            "Job" => {
                let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
                api.get_opt(name)
                    .await
                    .map_err(|e| {
                        Op::new(self.cluster, "get", "batch", "jobs")
                            .ns(ns)
                            .name(name)
                            .err(e)
                    })?
                    .and_then(|o| o.metadata.owner_references)
            }
            _ => None,
        };
        let parent = controller_of(refs.as_ref()).map(|r| (r.kind.clone(), r.name.clone()));
        self.cache.insert(key, parent.clone());
        Ok(parent)
    }

    /// The owner chain of a pod, bottom-up.
    async fn chain(&mut self, pod: &Pod) -> Result<Vec<String>, K8sError> {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let mut chain = Vec::new();
        let mut cur = controller_of(pod.metadata.owner_references.as_ref())
            .map(|r| (r.kind.clone(), r.name.clone()));
        // Two levels cover every built-in controller; the bound stops a malformed cycle.
        for _ in 0..4 {
            let Some((kind, name)) = cur else { break };
            chain.push(format!("{kind}/{name}"));
            cur = self.parent(&ns, &kind, &name).await?;
        }
        Ok(chain)
    }
}

async fn sweep(
    config: &Config,
    cfg: &ClusterConfig,
    digests: &BTreeSet<String>,
) -> Result<(Vec<Row>, Scan), K8sError> {
    let client = crate::k8s::client(config, cfg).await?;
    let pods: Api<Pod> = Api::all(client.clone());
    let op = Op::new(&cfg.name, "list", "", "pods");
    let mut scan = Scan::default();
    let mut matched: Vec<(Pod, Vec<Row>)> = Vec::new();
    let mut lp = ListParams::default().limit(config.kube.page_size);
    loop {
        let page = pods.list(&lp).await.map_err(|e| op.err(e))?;
        scan.pages += 1;
        scan.pods += page.items.len();
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        for pod in page.items {
            scan.unverifiable += count_unverifiable(&pod);
            let rows = match_pod(&cfg.name, &pod, digests);
            if !rows.is_empty() {
                matched.push((pod, rows));
            }
        }
        match next {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    let mut owners = Owners {
        cluster: &cfg.name,
        client,
        cache: HashMap::new(),
    };
    let mut out = Vec::new();
    for (pod, rows) in matched {
        let chain = owners.chain(&pod).await?;
        let workload = chain
            .last()
            .cloned()
            .unwrap_or_else(|| format!("Pod/{}", pod.metadata.name.clone().unwrap_or_default()));
        for mut r in rows {
            r.workload = workload.clone();
            r.owners = chain.clone();
            out.push(r);
        }
    }
    Ok((out, scan))
}

/// Every call `sweep` (and `Owners`) makes on a cluster, each with what it is for: what
/// preflight reviews. Owners are read in the matching Pod's namespace, which is not known
/// before the sweep, hence cluster-wide (the ClusterRole of docs/kubernetes.md).
pub(super) fn live_ops(cfg: &ClusterConfig) -> Vec<(Op, &'static str)> {
    let c = cfg.name.as_str();
    vec![
        (
            Op::new(c, "list", "", "pods"),
            "the sweep: every Pod, page by page",
        ),
        (
            Op::new(c, "get", "apps", "replicasets"),
            "the owners of matching Pods (ReplicaSet → Deployment)",
        ),
        (
            Op::new(c, "get", "batch", "jobs"),
            "the owners of matching Pods (Job → CronJob)",
        ),
    ]
}

/// A sweep of several clusters: the rows, a summary per cluster, the clusters that failed.
pub struct Swept {
    pub rows: Vec<Row>,
    pub per: Vec<Value>,
    pub failed: Vec<(String, K8sError)>,
}

/// Sweeps `list` concurrently; a failing cluster is reported, not fatal.
pub async fn sweep_clusters(
    config: &Config,
    list: &[&ClusterConfig],
    digests: &BTreeSet<String>,
) -> Swept {
    let results = each_cluster(list, |c| sweep(config, c, digests)).await;
    let mut out = Swept {
        rows: Vec::new(),
        per: Vec::new(),
        failed: Vec::new(),
    };
    for (c, r) in results {
        match r {
            Ok((found, scan)) => {
                out.per.push(json!({
                    "cluster": c.name, "pods_scanned": scan.pods, "pages": scan.pages,
                    "matches": found.len(), "unverifiable_containers": scan.unverifiable,
                }));
                out.rows.extend(found);
            }
            Err(e) => {
                out.per
                    .push(json!({ "cluster": c.name, "error": e.to_string() }));
                out.failed.push((c.name.clone(), e));
            }
        }
    }
    out
}

impl Row {
    pub fn json(&self) -> Value {
        self.to_json()
    }
}

pub struct FindRunning;

impl FindRunning {
    async fn find(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let mut digests = BTreeSet::new();
        for d in list_input(inputs, "digests")? {
            digests.insert(
                normalize_digest(&d).map_err(|e| ActionError::Input(format!("`digests`: {e}")))?,
            );
        }
        if digests.is_empty() {
            return Err(ActionError::Input("`digests` is empty".into()));
        }
        let allow_partial = bool_input(inputs, "allow_partial", false)?;
        let list = clusters(ctx, inputs)?;
        let Swept { rows, per, failed } = sweep_clusters(&ctx.config, &list, &digests).await;
        if !failed.is_empty() && !allow_partial {
            let transient = failed
                .iter()
                .all(|(_, e)| ActionError::from(e.clone()).is_transient());
            let msg = format!(
                "the sweep is incomplete: {} (set allow_partial: true to accept the clusters that answered)",
                failed
                    .iter()
                    .map(|(_, e)| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            return Err(if transient {
                ActionError::Transient(msg)
            } else {
                ActionError::Failed(msg)
            });
        }
        let mut workloads: BTreeMap<String, usize> = BTreeMap::new();
        for r in &rows {
            *workloads
                .entry(format!("{}/{}/{}", r.cluster, r.namespace, r.workload))
                .or_default() += 1;
        }
        let unreachable: Vec<&String> = failed.iter().map(|(n, _)| n).collect();
        let summary = if rows.is_empty() {
            format!(
                "no running container uses {} in {} cluster(s)",
                digests.iter().cloned().collect::<Vec<_>>().join(", "),
                per.len() - failed.len()
            )
        } else {
            format!(
                "{} container(s) in {} workload(s) run a bad digest: {}",
                rows.len(),
                workloads.len(),
                workloads.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        let summary = if unreachable.is_empty() {
            summary
        } else {
            format!(
                "{summary}; NOT swept (unreachable): {}",
                unreachable
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Ok(ActionOutput::new(
            json!({
                "rows": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
                "count": rows.len(),
                "workloads": workloads.keys().collect::<Vec<_>>(),
                "clusters": per,
                "unreachable": unreachable,
            }),
            summary,
        ))
    }
}

#[async_trait]
impl Action for FindRunning {
    fn spec(&self) -> &'static ActionSpec {
        &FIND_RUNNING
    }

    fn unavailable(&self, config: &Config) -> Option<&'static str> {
        no_clusters(config)
    }

    fn credential(&self, config: &Config, inputs: &Value) -> Option<String> {
        credential(config, inputs)
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        self.find(ctx, inputs).await
    }

    /// Read-only: a rehearsal sweeps for real.
    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        self.find(ctx, inputs).await
    }

    async fn probe(&self, _ctx: &ActionCtx, _inputs: &Value) -> Result<Probe, ActionError> {
        Ok(Probe::NotDone {
            evidence: json!("a read has no effect to reconcile"),
        })
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        super::preflight::find_running(ctx, inputs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(spec).unwrap()
    }

    #[test]
    fn matches_status_image_ids_in_every_container_kind_and_format() {
        let bad: BTreeSet<String> = [d('a'), d('b')].into_iter().collect();
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "nodeName": "n1",
                "containers": [{"name": "app", "image": "r.io/app:1.0"}, {"name": "side", "image": "r.io/side:2"}],
                "initContainers": [{"name": "init", "image": "r.io/init:1"}],
                "ephemeralContainers": [{"name": "dbg", "image": format!("r.io/dbg@{}", d('b'))}],
            },
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {"name": "app", "image": "r.io/app:1.0", "imageID": format!("docker-pullable://r.io/app@{}", d('a')), "ready": true, "restartCount": 0},
                    {"name": "side", "image": "r.io/side:2", "imageID": format!("r.io/side@{}", d('c')), "ready": true, "restartCount": 0},
                ],
                "initContainerStatuses": [
                    {"name": "init", "image": "r.io/init:1", "imageID": format!("r.io/init@{}", d('b')), "ready": true, "restartCount": 0},
                ],
            }
        }));
        let rows = match_pod("c1", &p, &bad);
        let got: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.container_kind, r.container.as_str(), r.matched_on))
            .collect();
        assert_eq!(
            got,
            vec![
                ("containers", "app", "imageID"),
                ("ephemeralContainers", "dbg", "spec"),
                ("initContainers", "init", "imageID"),
            ]
        );
        assert_eq!(rows[0].node, "n1");
        assert_eq!(rows[0].phase, "Running");
    }

    #[test]
    fn a_config_id_is_not_a_match_but_is_counted() {
        let bad: BTreeSet<String> = [d('a')].into_iter().collect();
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "app", "image": "r.io/app:1"}]},
            "status": {"containerStatuses": [
                {"name": "app", "image": "r.io/app:1", "imageID": format!("docker://{}", d('a')), "ready": true, "restartCount": 0}
            ]}
        }));
        assert!(match_pod("c", &p, &bad).is_empty());
        assert_eq!(count_unverifiable(&p), 1);
    }
}
