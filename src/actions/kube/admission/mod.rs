//! `kube.admission_deny` and `kube.admission_allow`: the deny list enforced at admission.
//!
//! Per cluster, in its dialect (objects in `k8s::policy`):
//! 1. install or update the policy objects when their content hash differs (a
//!    `recall.dev/spec-sha256` annotation — comparing specs would trip on the API server's
//!    defaulting). Adding a digest never rewrites them;
//! 2. merge the digests into the mode's deny list: create it if absent (a create fails on
//!    a concurrent create, an apply would silently replace), else server-side apply the
//!    whole list with the `resourceVersion` read, so a concurrent writer makes it fail
//!    with 409 and the merge is redone on a fresh read — no lost update;
//! 3. verify: read everything back, and in enforce mode prove the deny with a canary Pod
//!    created with server-side dry-run, which admission must refuse.
//!
//! A digest already denied in a stricter mode stays there: a playbook can tighten, never
//! silently loosen. `kube.admission_allow` is the explicit way back.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{CLUSTER, clusters, credential, each_cluster, fold_clusters, no_clusters};
use crate::actions::preflight::Check;
use crate::actions::{
    Action, ActionCtx, ActionError, ActionOutput, Probe, bool_input, list_input, opt_str_input,
};
use crate::config::{ClusterConfig, Config};
use crate::engine::Mode as RunMode;
use crate::k8s::image::image_repository;
use crate::k8s::policy::{self, Mode};
use crate::k8s::{K8sError, Op};
use crate::playbook::{ActionSpec, InputSpec, InputType};

mod plan;
use plan::{plan_in, plan_output};

const SPEC_HASH: &str = "recall.dev/spec-sha256";
/// Concurrent writers to one deny list: how many fresh reads before giving up (transient).
const CONFLICT_RETRIES: usize = 8;
/// A new policy takes a moment to reach the API server's admission chain.
const CANARY_WAIT: Duration = Duration::from_secs(15);

const DIGESTS: InputSpec = InputSpec {
    name: "digests",
    ty: InputType::List,
    required: true,
    help: "image digests (sha256:…) — the index and its platform manifests",
};
const IMAGE: InputSpec = InputSpec {
    name: "image",
    ty: InputType::String,
    required: false,
    help: "the repository the digests belong to (for the message, the canary and block_repository)",
};

static ADMISSION_DENY: ActionSpec = ActionSpec {
    name: "kube.admission_deny",
    summary: "Deny image digests at admission in every configured cluster (audit, warn or enforce).",
    inputs: &[
        DIGESTS,
        IMAGE,
        InputSpec {
            name: "mode",
            ty: InputType::String,
            required: false,
            help: "audit, warn or enforce (default enforce)",
        },
        CLUSTER,
        InputSpec {
            name: "block_repository",
            ty: InputType::Bool,
            required: false,
            help: "sigstore-policy-controller clusters only: block every image of `image` (it cannot pin a digest)",
        },
    ],
    outputs: &["clusters", "denied"],
    mutating: true,
    destructive: false,
};

static ADMISSION_ALLOW: ActionSpec = ActionSpec {
    name: "kube.admission_allow",
    summary: "Lift an admission deny: remove digests from every mode's deny list (and a repository block).",
    inputs: &[DIGESTS, IMAGE, CLUSTER],
    outputs: &["clusters", "allowed"],
    mutating: true,
    destructive: false,
};

pub(super) fn vap_resource() -> ApiResource {
    ApiResource {
        group: "admissionregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "admissionregistration.k8s.io/v1".into(),
        kind: "ValidatingAdmissionPolicy".into(),
        plural: "validatingadmissionpolicies".into(),
    }
}

pub(super) fn vapb_resource() -> ApiResource {
    ApiResource {
        kind: "ValidatingAdmissionPolicyBinding".into(),
        plural: "validatingadmissionpolicybindings".into(),
        ..vap_resource()
    }
}

pub(super) fn kyverno_resource() -> ApiResource {
    ApiResource {
        group: "kyverno.io".into(),
        version: "v1".into(),
        api_version: "kyverno.io/v1".into(),
        kind: "ClusterPolicy".into(),
        plural: "clusterpolicies".into(),
    }
}

pub(super) fn cip_resource() -> ApiResource {
    ApiResource {
        group: "policy.sigstore.dev".into(),
        version: "v1beta1".into(),
        api_version: "policy.sigstore.dev/v1beta1".into(),
        kind: "ClusterImagePolicy".into(),
        plural: "clusterimagepolicies".into(),
    }
}

/// `&'static str` views of an ApiResource for [`Op`].
fn op_for(cluster: &str, verb: &'static str, ar: &ApiResource) -> Op {
    let (group, resource): (&'static str, &'static str) = match ar.plural.as_str() {
        "validatingadmissionpolicies" => (
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
        ),
        "validatingadmissionpolicybindings" => (
            "admissionregistration.k8s.io",
            "validatingadmissionpolicybindings",
        ),
        "clusterpolicies" => ("kyverno.io", "clusterpolicies"),
        _ => ("policy.sigstore.dev", "clusterimagepolicies"),
    };
    Op::new(cluster, verb, group, resource)
}

/// The validated inputs of a deny/allow.
pub(super) struct Request {
    digests: Vec<String>,
    image: Option<String>,
    mode: Mode,
    block_repository: bool,
}

impl Request {
    pub(super) fn from_inputs(inputs: &Value, with_mode: bool) -> Result<Self, ActionError> {
        let mut digests = Vec::new();
        for d in list_input(inputs, "digests")? {
            let d = policy::normalize_digest(&d)
                .map_err(|e| ActionError::Input(format!("`digests`: {e}")))?;
            if !digests.contains(&d) {
                digests.push(d);
            }
        }
        if digests.is_empty() {
            return Err(ActionError::Input(
                "`digests` is empty: nothing to deny".into(),
            ));
        }
        let image = opt_str_input(inputs, "image")?
            .map(|i| image_repository(i).to_string())
            .filter(|i| !i.is_empty());
        let mode = if with_mode {
            match opt_str_input(inputs, "mode")? {
                None => Mode::Enforce,
                Some(m) => Mode::parse(m).ok_or_else(|| {
                    ActionError::Input(format!("`mode` = {m:?}: expected audit, warn or enforce"))
                })?,
            }
        } else {
            Mode::Enforce
        };
        Ok(Self {
            digests,
            image,
            mode,
            block_repository: with_mode && bool_input(inputs, "block_repository", false)?,
        })
    }
}

fn spec_hash(obj: &Value) -> String {
    let mut o = obj.clone();
    // The hash covers what we generate; it is stored in the object's own annotations.
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("annotations");
    }
    let bytes = serde_json::to_vec(&o).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

fn with_hash(mut obj: Value) -> Value {
    let h = spec_hash(&obj);
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let ann = m.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = ann.as_object_mut() {
            a.insert(SPEC_HASH.into(), json!(h));
        }
    }
    obj
}

fn obj_name(obj: &Value) -> String {
    obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// One cluster's view, for plans and probes.
struct Cluster<'a> {
    cfg: &'a ClusterConfig,
    config: &'a Config,
    client: kube::Client,
}

impl<'a> Cluster<'a> {
    async fn connect(config: &'a Config, cfg: &'a ClusterConfig) -> Result<Self, K8sError> {
        Ok(Self {
            cfg,
            config,
            client: crate::k8s::client(config, cfg).await?,
        })
    }

    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn ns(&self) -> &str {
        &self.config.kube.namespace
    }

    fn manager(&self) -> &str {
        &self.config.kube.field_manager
    }

    fn cm_api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), self.ns())
    }

    fn cm_op(&self, verb: &'static str, mode: Mode) -> Op {
        Op::new(self.name(), verb, "", "configmaps")
            .ns(self.ns())
            .name(&mode.configmap())
    }

    /// A mode's deny list: its keys and resourceVersion (None when absent).
    async fn read_list(
        &self,
        mode: Mode,
    ) -> Result<(BTreeMap<String, String>, Option<String>), K8sError> {
        let cm = self
            .cm_api()
            .get_opt(&mode.configmap())
            .await
            .map_err(|e| self.cm_op("get", mode).err(e))?;
        Ok(match cm {
            Some(cm) => (cm.data.unwrap_or_default(), cm.metadata.resource_version),
            None => (BTreeMap::new(), None),
        })
    }

    /// Read–merge–write with optimistic concurrency. `edit` returns false when nothing
    /// needs writing. Returns whether a write happened.
    async fn update_list<F>(&self, mode: Mode, edit: F) -> Result<bool, K8sError>
    where
        F: Fn(&mut BTreeMap<String, String>) -> bool,
    {
        let api = self.cm_api();
        let mut last = None;
        for _ in 0..CONFLICT_RETRIES {
            let (mut data, rv) = self.read_list(mode).await?;
            let before = data.clone();
            if !edit(&mut data) {
                return Ok(false);
            }
            let removed: Vec<&String> = before.keys().filter(|k| !data.contains_key(*k)).collect();
            let res = match &rv {
                None => {
                    let body = policy::deny_list(self.ns(), mode, &data, None);
                    let cm: ConfigMap =
                        serde_json::from_value(body).map_err(|e| K8sError::Other {
                            cluster: self.name().into(),
                            op: "build ConfigMap".into(),
                            reason: e.to_string(),
                        })?;
                    let pp = PostParams {
                        field_manager: Some(self.manager().to_string()),
                        ..Default::default()
                    };
                    api.create(&pp, &cm)
                        .await
                        .map(|_| ())
                        .map_err(|e| self.cm_op("create", mode).err(e))
                }
                // Removing keys: an apply only removes fields its own manager owns, and a
                // key created by someone else (or by the first create) is not ours. A merge
                // patch deletes them whoever owns them, and the resourceVersion in it keeps
                // the write conflict-safe.
                Some(rv) if !removed.is_empty() => {
                    let mut patch_data = serde_json::Map::new();
                    for k in &removed {
                        patch_data.insert((*k).clone(), Value::Null);
                    }
                    for (k, v) in &data {
                        if before.get(k) != Some(v) {
                            patch_data.insert(k.clone(), json!(v));
                        }
                    }
                    let body = json!({ "metadata": { "resourceVersion": rv }, "data": patch_data });
                    api.patch(
                        &mode.configmap(),
                        &PatchParams {
                            field_manager: Some(self.manager().to_string()),
                            ..Default::default()
                        },
                        &Patch::Merge(&body),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| self.cm_op("patch", mode).err(e))
                }
                Some(rv) => {
                    let body = policy::deny_list(self.ns(), mode, &data, Some(rv));
                    api.patch(
                        &mode.configmap(),
                        &PatchParams::apply(self.manager()).force(),
                        &Patch::Apply(&body),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| self.cm_op("patch", mode).err(e))
                }
            };
            match res {
                Ok(()) => return Ok(true),
                // 409: someone wrote in between (or created it first): merge again.
                Err(e) if e.is_conflict() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| K8sError::Other {
            cluster: self.name().into(),
            op: "update deny list".into(),
            reason: "conflicts persisted".into(),
        }))
    }

    /// Applies `obj` (cluster-scoped) unless its content hash is already there.
    /// Returns "installed", "updated" or "unchanged".
    async fn ensure(&self, ar: &ApiResource, obj: Value) -> Result<&'static str, K8sError> {
        let obj = with_hash(obj);
        let name = obj_name(&obj);
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), ar);
        let want = obj["metadata"]["annotations"][SPEC_HASH]
            .as_str()
            .map(String::from);
        let mut last = None;
        for _ in 0..CONFLICT_RETRIES {
            // An API the cluster does not serve answers a plain-text 404 that get_opt
            // does not read as "absent".
            let existing = match api.get_opt(&name).await {
                Ok(o) => o,
                Err(e) => {
                    let e = op_for(self.name(), "get", ar).name(&name).err(e);
                    return Err(if e.is_not_found() {
                        self.not_served(ar, &name)
                    } else {
                        e
                    });
                }
            };
            let verdict = match &existing {
                Some(o)
                    if o.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(SPEC_HASH))
                        .cloned()
                        == want =>
                {
                    return Ok("unchanged");
                }
                Some(_) => "updated",
                None => "installed",
            };
            match api
                .patch(
                    &name,
                    &PatchParams::apply(self.manager()).force(),
                    &Patch::Apply(&obj),
                )
                .await
            {
                Ok(_) => return Ok(verdict),
                // Another incident installing the same objects: read again.
                Err(e) => {
                    let e = op_for(self.name(), "patch", ar).name(&name).err(e);
                    if e.is_not_found() {
                        return Err(self.not_served(ar, &name));
                    }
                    if !e.is_conflict() {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| K8sError::Other {
            cluster: self.name().into(),
            op: format!("apply {name}"),
            reason: "conflicts persisted".into(),
        }))
    }

    fn not_served(&self, ar: &ApiResource, name: &str) -> K8sError {
        K8sError::Other {
            cluster: self.name().into(),
            op: format!("apply {} {name}", ar.kind),
            reason: format!(
                "the cluster does not serve {} ({}): is {} installed? ([[kube.clusters]] `{}` says dialect = \"{}\")",
                ar.kind,
                ar.api_version,
                match ar.group.as_str() {
                    "kyverno.io" => "Kyverno",
                    "policy.sigstore.dev" => "the Sigstore policy-controller",
                    _ => "ValidatingAdmissionPolicy (Kubernetes >= 1.30)",
                },
                self.name(),
                self.cfg.dialect
            ),
        }
    }

    /// The policy objects of this cluster's dialect (VAP and Kyverno; Sigstore is per
    /// repository and handled apart).
    fn policy_objects(&self, mode: Mode) -> Vec<(ApiResource, Value)> {
        match self.cfg.dialect.as_str() {
            "kyverno" => vec![(kyverno_resource(), policy::kyverno(self.ns(), mode))],
            _ => {
                let mut v = vec![(vap_resource(), policy::vap(self.cfg.workloads))];
                v.extend(
                    Mode::ALL
                        .iter()
                        .map(|m| (vapb_resource(), policy::vap_binding(self.ns(), *m))),
                );
                v
            }
        }
    }

    /// Where each digest is denied now: digest → strictest mode.
    async fn current(&self) -> Result<BTreeMap<String, Mode>, K8sError> {
        let mut out: BTreeMap<String, Mode> = BTreeMap::new();
        for m in Mode::ALL {
            let (data, _) = self.read_list(m).await?;
            for k in data.keys() {
                if let Some(d) = policy::key_digest(k) {
                    let e = out.entry(d).or_insert(m);
                    if m > *e {
                        *e = m;
                    }
                }
            }
        }
        Ok(out)
    }

    /// The canary: a dry-run create of a Pod with the denied digest must be refused by
    /// admission with Recall's message. Retried while a fresh policy propagates.
    async fn canary(&self, image: &str, digest: &str) -> Result<String, K8sError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.ns());
        let body = policy::canary_pod(self.ns(), image, digest);
        let pod: Pod = serde_json::from_value(body).map_err(|e| K8sError::Other {
            cluster: self.name().into(),
            op: "build canary".into(),
            reason: e.to_string(),
        })?;
        let pp = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let op = Op::new(self.name(), "create", "", "pods").ns(self.ns());
        let start = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(250);
        loop {
            match pods.create(&pp, &pod).await {
                Err(kube::Error::Api(s))
                    if matches!(s.code, 403 | 422 | 400)
                        && s.message.contains("denied by Recall") =>
                {
                    return Ok(s.message.clone());
                }
                Err(e) => {
                    let e = op.err(e);
                    // A 403 without our message is RBAC on the canary itself.
                    return Err(e);
                }
                Ok(_) if start.elapsed() < CANARY_WAIT => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(3));
                }
                Ok(_) => {
                    return Err(K8sError::Other {
                        cluster: self.name().into(),
                        op: "canary".into(),
                        reason: format!(
                            "a dry-run Pod with {image}@{digest} was ADMITTED {}s after the deny list was written: the deny is not effective in this cluster (is the admission policy active? `kubectl get validatingadmissionpolicy {} -o yaml`)",
                            CANARY_WAIT.as_secs(),
                            policy::POLICY_NAME
                        ),
                    });
                }
            }
        }
    }
}

async fn deny_in(ctx: &ActionCtx, cfg: &ClusterConfig, req: &Request) -> Result<Value, K8sError> {
    let c = Cluster::connect(&ctx.config, cfg).await?;
    if cfg.dialect == "sigstore-policy-controller" {
        return sigstore_block(ctx, &c, req).await;
    }
    let mut installed = Vec::new();
    for (ar, obj) in c.policy_objects(req.mode) {
        let name = obj_name(&obj);
        let v = c.ensure(&ar, obj).await?;
        installed.push(json!({ "kind": ar.kind, "name": name, "result": v }));
    }
    // Tighten only: a digest already in a stricter list stays there.
    let current = c.current().await?;
    let stricter: Vec<&String> = req
        .digests
        .iter()
        .filter(|d| current.get(*d).is_some_and(|m| *m > req.mode))
        .collect();
    let note = policy::deny_note(&ctx.incident, req.image.as_deref());
    let wanted: Vec<String> = req
        .digests
        .iter()
        .filter(|d| !stricter.contains(d))
        .cloned()
        .collect();
    let wrote = c
        .update_list(req.mode, |data| {
            let mut changed = false;
            for d in &wanted {
                let k = policy::digest_key(d);
                if let std::collections::btree_map::Entry::Vacant(e) = data.entry(k) {
                    e.insert(note.clone());
                    changed = true;
                }
            }
            changed
        })
        .await?;
    // Moving up from a weaker list: drop it there once the stricter entry is written.
    for m in Mode::ALL.into_iter().filter(|m| *m < req.mode) {
        c.update_list(m, |data| {
            let before = data.len();
            for d in &wanted {
                data.remove(&policy::digest_key(d));
            }
            data.len() != before
        })
        .await?;
    }
    // Verify: read back.
    let after = c.current().await?;
    let missing: Vec<&String> = req
        .digests
        .iter()
        .filter(|d| after.get(*d).is_none_or(|m| *m < req.mode))
        .collect();
    if !missing.is_empty() {
        return Err(K8sError::Other {
            cluster: c.name().into(),
            op: "verify".into(),
            reason: format!(
                "read back the deny list and {} missing: {:?}",
                if missing.len() == 1 {
                    "a digest is"
                } else {
                    "digests are"
                },
                missing
            ),
        });
    }
    let effective = |d: &String| after.get(d).map(|m| m.as_str()).unwrap_or("none");
    let mut canary = Vec::new();
    let enforced = req
        .digests
        .iter()
        .filter(|d| after.get(*d) == Some(&Mode::Enforce));
    if cfg.canary {
        let img = req
            .image
            .clone()
            .unwrap_or_else(|| "recall.invalid/canary".into());
        for d in enforced {
            let msg = c.canary(&img, d).await?;
            canary.push(json!({ "digest": d, "refused": msg }));
        }
    }
    Ok(json!({
        "cluster": c.name(),
        "dialect": cfg.dialect,
        "mode": req.mode.as_str(),
        "policy": installed,
        "wrote_deny_list": wrote,
        "digests": req.digests.iter().map(|d| json!({"digest": d, "mode": effective(d)})).collect::<Vec<_>>(),
        "kept_stricter": stricter,
        "canary": if cfg.canary { json!(canary) } else { json!("disabled for this cluster") },
    }))
}

const SIGSTORE_CANNOT_PIN: &str =
    "sigstore-policy-controller cannot deny a single digest (its image globs cannot contain `@`)";

async fn sigstore_block(
    ctx: &ActionCtx,
    c: &Cluster<'_>,
    req: &Request,
) -> Result<Value, K8sError> {
    let Some(repo) = req.image.as_deref().filter(|_| req.block_repository) else {
        return Err(K8sError::Other {
            cluster: c.name().into(),
            op: "admission deny".into(),
            reason: format!(
                "{SIGSTORE_CANNOT_PIN}; nothing was applied. Set `block_repository: true` (with `image`) to fail every image of the repository, or rely on kube.find_running for this cluster"
            ),
        });
    };
    let obj = policy::sigstore_block(repo, req.mode, &ctx.incident);
    let name = obj_name(&obj);
    let v = c.ensure(&cip_resource(), obj).await?;
    Ok(json!({
        "cluster": c.name(),
        "dialect": c.cfg.dialect,
        "mode": req.mode.as_str(),
        "policy": [{ "kind": "ClusterImagePolicy", "name": name, "result": v }],
        "blocked_repository": format!("{repo}*"),
        "warning": format!("{SIGSTORE_CANNOT_PIN}: every image matching {repo}* is refused, including other digests and repositories sharing the prefix"),
    }))
}

async fn allow_in(ctx: &ActionCtx, cfg: &ClusterConfig, req: &Request) -> Result<Value, K8sError> {
    let c = Cluster::connect(&ctx.config, cfg).await?;
    if cfg.dialect == "sigstore-policy-controller" {
        let Some(repo) = req.image.as_deref() else {
            return Ok(
                json!({ "cluster": c.name(), "removed": [], "note": "no repository block without `image`" }),
            );
        };
        let name = obj_name(&policy::sigstore_block(repo, Mode::Enforce, &ctx.incident));
        let api: Api<DynamicObject> = Api::all_with(c.client.clone(), &cip_resource());
        let removed = match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => true,
            Err(kube::Error::Api(s)) if s.code == 404 => false,
            Err(e) => {
                return Err(op_for(c.name(), "delete", &cip_resource())
                    .name(&name)
                    .err(e));
            }
        };
        return Ok(json!({ "cluster": c.name(), "removed_block": removed, "name": name }));
    }
    let mut removed = Vec::new();
    for m in Mode::ALL {
        let hit = c
            .update_list(m, |data| {
                let before = data.len();
                for d in &req.digests {
                    data.remove(&policy::digest_key(d));
                }
                data.len() != before
            })
            .await?;
        if hit {
            removed.push(m.as_str());
        }
    }
    let after = c.current().await?;
    if let Some(d) = req.digests.iter().find(|d| after.contains_key(*d)) {
        return Err(K8sError::Other {
            cluster: c.name().into(),
            op: "verify".into(),
            reason: format!("{d} is still in a deny list after removal"),
        });
    }
    Ok(json!({ "cluster": c.name(), "removed_from": removed, "digests": req.digests }))
}

/// Every call `deny_in` (`deny`) or `allow_in` and the `Cluster` methods they use can make
/// on `cfg` with these inputs, each with what it is for: what preflight reviews, one
/// SelfSubjectAccessReview per op. Kept here, next to the calls, so a new call is listed
/// where it is written (tests/it/preflight_kube.rs checks a live run against it).
/// State decides some of them (create only when the object is absent); preflight runs on
/// a calm day and the state may differ on the incident's, so all are listed.
pub(super) fn live_ops(
    cfg: &ClusterConfig,
    namespace: &str,
    req: &Request,
    deny: bool,
) -> Vec<(Op, &'static str)> {
    let c = cfg.name.as_str();
    let mut ops = Vec::new();
    // `ensure`: get, then a server-side apply, which needs `create` when it creates.
    let apply = |ar: &ApiResource, why: &'static str, ops: &mut Vec<(Op, &'static str)>| {
        for verb in ["get", "create", "patch"] {
            ops.push((op_for(c, verb, ar), why));
        }
    };
    if cfg.dialect == "sigstore-policy-controller" {
        match (deny, req.image.as_deref()) {
            (true, Some(_)) if req.block_repository => {
                apply(&cip_resource(), "the repository block", &mut ops);
            }
            (false, Some(_)) => ops.push((
                op_for(c, "delete", &cip_resource()),
                "removing the repository block",
            )),
            // A deny without a repository block sends nothing (it cannot pin a digest);
            // an allow without `image` has no block to remove.
            _ => {}
        }
        return ops;
    }
    let cm = |verb| Op::new(c, verb, "", "configmaps").ns(namespace);
    if deny {
        if cfg.dialect == "kyverno" {
            apply(&kyverno_resource(), "the Kyverno ClusterPolicy", &mut ops);
        } else {
            apply(&vap_resource(), "the ValidatingAdmissionPolicy", &mut ops);
            apply(&vapb_resource(), "the per-mode bindings", &mut ops);
        }
        ops.push((cm("get"), "reading the deny lists"));
        ops.push((cm("create"), "creating a mode's deny list when absent"));
        ops.push((cm("patch"), "writing the deny lists"));
        // The canary runs for digests enforced after the write; in practice an enforce
        // deny (the plan lists it the same way).
        if req.mode == Mode::Enforce && cfg.canary {
            ops.push((
                Op::new(c, "create", "", "pods").ns(namespace),
                "the canary (a server-side dry-run create, nothing is stored)",
            ));
        }
    } else {
        ops.push((cm("get"), "reading the deny lists"));
        ops.push((cm("patch"), "removing digests from the deny lists"));
    }
    ops
}

pub struct AdmissionDeny;

#[async_trait]
impl Action for AdmissionDeny {
    fn spec(&self) -> &'static ActionSpec {
        &ADMISSION_DENY
    }

    fn unavailable(&self, config: &Config) -> Option<&'static str> {
        no_clusters(config)
    }

    fn credential(&self, config: &Config, inputs: &Value) -> Option<String> {
        credential(config, inputs)
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        debug_assert!(ctx.mode == RunMode::Live);
        let req = Request::from_inputs(inputs, true)?;
        let list = clusters(ctx, inputs)?;
        let results = each_cluster(&list, |c| deny_in(ctx, c, &req)).await;
        let per = fold_clusters(results)?;
        let names: Vec<&str> = per.iter().filter_map(|v| v["cluster"].as_str()).collect();
        let warnings: Vec<&Value> = per.iter().filter_map(|v| v.get("warning")).collect();
        let unpinned = req.image.is_none();
        Ok(ActionOutput::new(
            json!({ "clusters": per, "denied": req.digests, "mode": req.mode.as_str() }),
            format!(
                "{} {} at admission ({}) in {}",
                req.mode.as_str(),
                req.digests.join(", "),
                if unpinned { "any repository" } else { req.image.as_deref().unwrap_or_default() },
                names.join(", ")
            ),
        )
        .with("warnings", json!(warnings))
        .with(
            "limits",
            json!("admission sees only the image string: a Pod referencing the image by tag alone carries no digest to match; kube.find_running catches those"),
        ))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let req = Request::from_inputs(inputs, true)?;
        let list = clusters(ctx, inputs)?;
        let results = each_cluster(&list, |c| plan_in(ctx, c, &req, true)).await;
        Ok(plan_output(results, "deny the digests at admission"))
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        super::preflight::admission(ctx, inputs, true).await
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let req = Request::from_inputs(inputs, true)?;
        let list = clusters(ctx, inputs)?;
        if list
            .iter()
            .any(|c| c.dialect == "sigstore-policy-controller")
        {
            return Ok(Probe::Unknown {
                reason: "a repository block is re-applied idempotently".into(),
            });
        }
        let results = each_cluster(&list, |cfg| async {
            let c = Cluster::connect(&ctx.config, cfg).await?;
            c.current().await
        })
        .await;
        let mut missing = Vec::new();
        for (cfg, r) in results {
            match r {
                Ok(cur) => {
                    for d in &req.digests {
                        if cur.get(d).is_none_or(|m| *m < req.mode) {
                            missing.push(format!("{}: {d}", cfg.name));
                        }
                    }
                }
                Err(e) => {
                    return Ok(Probe::Unknown {
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(if missing.is_empty() {
            Probe::Done {
                outputs: json!({ "denied": req.digests, "mode": req.mode.as_str(), "clusters": list.iter().map(|c| json!({"cluster": c.name})).collect::<Vec<_>>() }),
                evidence: json!(format!(
                    "every deny list already holds {}",
                    req.digests.join(", ")
                )),
            }
        } else {
            // Re-running is idempotent: a partial write is completed, not duplicated.
            Probe::NotDone {
                evidence: json!({ "missing": missing }),
            }
        })
    }
}

pub struct AdmissionAllow;

#[async_trait]
impl Action for AdmissionAllow {
    fn spec(&self) -> &'static ActionSpec {
        &ADMISSION_ALLOW
    }

    fn unavailable(&self, config: &Config) -> Option<&'static str> {
        no_clusters(config)
    }

    fn credential(&self, config: &Config, inputs: &Value) -> Option<String> {
        credential(config, inputs)
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let req = Request::from_inputs(inputs, false)?;
        let list = clusters(ctx, inputs)?;
        let results = each_cluster(&list, |c| allow_in(ctx, c, &req)).await;
        let per = fold_clusters(results)?;
        Ok(ActionOutput::new(
            json!({ "clusters": per, "allowed": req.digests }),
            format!(
                "lifted the admission deny of {} in {}",
                req.digests.join(", "),
                per.iter()
                    .filter_map(|v| v["cluster"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let req = Request::from_inputs(inputs, false)?;
        let list = clusters(ctx, inputs)?;
        let results = each_cluster(&list, |c| plan_in(ctx, c, &req, false)).await;
        Ok(plan_output(results, "lift the admission deny"))
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        super::preflight::admission(ctx, inputs, false).await
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let req = Request::from_inputs(inputs, false)?;
        let list = clusters(ctx, inputs)?;
        let results = each_cluster(&list, |cfg| async {
            let c = Cluster::connect(&ctx.config, cfg).await?;
            c.current().await
        })
        .await;
        for (_, r) in &results {
            match r {
                Ok(cur) if req.digests.iter().any(|d| cur.contains_key(d)) => {
                    return Ok(Probe::NotDone {
                        evidence: json!("a digest is still denied"),
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    return Ok(Probe::Unknown {
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(Probe::Done {
            outputs: json!({ "allowed": req.digests }),
            evidence: json!("no deny list holds the digests"),
        })
    }
}
