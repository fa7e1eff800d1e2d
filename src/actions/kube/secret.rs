//! `kube.rotate_secret`: new values for keys of a Secret, then (optionally) a rollout
//! restart of the workloads that mount it.
//!
//! The value is generated here (OS randomness) or read from an env var or file the
//! operator (or an upstream credential step) provides; it goes to the API server and
//! nowhere else — not the timeline, not a log, not an error. What is recorded is a
//! fingerprint: the first 16 hex digits of SHA-256 over `salt:value`, salted with the
//! attempt's idempotency key so equal values in two rotations do not look alike.
//!
//! Exactly once: the Secret is annotated with the rotation's idempotency key in the same
//! write as the new data (a replace with the `resourceVersion` read, retried on 409 with a
//! fresh read). A retry or a resume after a crash that finds its own key there reports
//! the rotation done instead of rotating again — a second rotation would orphan the value
//! the first one already handed out.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PodSpec, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    CLUSTER, clusters, credential, each_cluster, fold_clusters, fold_plans, no_clusters, would_send,
};
use crate::actions::preflight::Check;
use crate::actions::{
    Action, ActionCtx, ActionError, ActionOutput, Probe, bool_input, list_input, opt_str_input,
    str_input,
};
use crate::config::{ClusterConfig, Config};
use crate::k8s::policy::{ANN_INCIDENT, ANN_STEP};
use crate::k8s::{K8sError, Op};
use crate::playbook::{ActionSpec, InputSpec, InputType};

/// The idempotency key of the rotation that last wrote the Secret.
pub const ANN_ROTATION: &str = "recall.dev/rotation";
/// `recall.dev/fingerprint.<key>`: the salted fingerprint of a key's current value.
pub const ANN_FINGERPRINT: &str = "recall.dev/fingerprint.";
/// The rollout-restart annotation `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// On the pod template too: which rotation restarted it (makes the restart exactly-once).
pub const ANN_RESTARTED_FOR: &str = "recall.dev/restarted-for";

const CONFLICT_RETRIES: usize = 8;

static ROTATE_SECRET: ActionSpec = ActionSpec {
    name: "kube.rotate_secret",
    summary: "Replace keys of a Kubernetes Secret with a new value and restart the workloads using it.",
    inputs: &[
        CLUSTER,
        InputSpec {
            name: "namespace",
            ty: InputType::String,
            required: true,
            help: "the Secret's namespace",
        },
        InputSpec {
            name: "name",
            ty: InputType::String,
            required: true,
            help: "the Secret's name",
        },
        InputSpec {
            name: "keys",
            ty: InputType::List,
            required: true,
            help: "the keys to replace",
        },
        InputSpec {
            name: "length",
            ty: InputType::Int,
            required: false,
            help: "generated value length in characters (default 40)",
        },
        InputSpec {
            name: "charset",
            ty: InputType::String,
            required: false,
            help: "alphanumeric (default), hex or base64url",
        },
        InputSpec {
            name: "value_env",
            ty: InputType::String,
            required: false,
            help: "take the new value from this environment variable instead of generating one",
        },
        InputSpec {
            name: "value_file",
            ty: InputType::String,
            required: false,
            help: "take the new value from this file (trailing newline trimmed)",
        },
        InputSpec {
            name: "restart",
            ty: InputType::Bool,
            required: false,
            help: "rollout-restart the Deployments, StatefulSets and DaemonSets that use the Secret (default true)",
        },
    ],
    outputs: &["clusters", "secret", "keys", "fingerprints", "restarted"],
    mutating: true,
    destructive: false,
};

/// Where the new value comes from.
pub(super) enum Source {
    Generate { length: usize, charset: Charset },
    Env(String),
    File(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Charset {
    Alnum,
    Hex,
    Base64Url,
}

impl Charset {
    /// `alphanumeric` (default), `hex` or `base64url`.
    pub(crate) fn parse(s: Option<&str>) -> Result<Self, ActionError> {
        match s {
            None | Some("alphanumeric") => Ok(Charset::Alnum),
            Some("hex") => Ok(Charset::Hex),
            Some("base64url") => Ok(Charset::Base64Url),
            Some(o) => Err(ActionError::Input(format!(
                "`charset` = {o:?}: expected alphanumeric, hex or base64url"
            ))),
        }
    }

    fn alphabet(self) -> &'static [u8] {
        match self {
            Charset::Alnum => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            Charset::Hex => b"0123456789abcdef",
            Charset::Base64Url => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            }
        }
    }
}

/// A uniformly random string over `charset` (rejection sampling: no modulo bias).
pub(crate) fn generate(length: usize, charset: Charset) -> Result<SecretString, ActionError> {
    let alphabet = charset.alphabet();
    let n = alphabet.len();
    let limit = 256 - (256 % n);
    let mut out = String::with_capacity(length);
    let mut buf = [0u8; 64];
    while out.len() < length {
        getrandom::fill(&mut buf)
            .map_err(|e| ActionError::Failed(format!("no OS randomness for the new value: {e}")))?;
        for b in buf {
            if out.len() == length {
                break;
            }
            if (b as usize) < limit {
                out.push(alphabet[b as usize % n] as char);
            }
        }
    }
    Ok(SecretString::from(out))
}

/// The recorded stand-in for a value: salted, truncated, one-way.
pub fn fingerprint(salt: &str, value: &SecretString) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b":");
    h.update(value.expose_secret().as_bytes());
    format!("sha256:{}", &hex::encode(h.finalize())[..16])
}

pub(super) struct Target {
    pub(super) namespace: String,
    pub(super) name: String,
    keys: Vec<String>,
    pub(super) source: Source,
    restart: bool,
}

impl Target {
    pub(super) fn from_inputs(inputs: &Value) -> Result<Self, ActionError> {
        let namespace = str_input(inputs, "namespace")?.trim().to_string();
        let name = str_input(inputs, "name")?.trim().to_string();
        let keys = list_input(inputs, "keys")?;
        if keys.is_empty() {
            return Err(ActionError::Input(
                "`keys` is empty: name the keys to replace".into(),
            ));
        }
        for k in &keys {
            let ok = !k.is_empty()
                && k.len() <= 253
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
            if !ok {
                return Err(ActionError::Input(format!(
                    "`keys`: {k:?} is not a valid Secret key ([-._a-zA-Z0-9]+)"
                )));
            }
        }
        let env = opt_str_input(inputs, "value_env")?.map(str::to_string);
        let file = opt_str_input(inputs, "value_file")?.map(str::to_string);
        let source = match (env, file) {
            (Some(_), Some(_)) => {
                return Err(ActionError::Input(
                    "give `value_env` or `value_file`, not both".into(),
                ));
            }
            (Some(e), None) => Source::Env(e),
            (None, Some(f)) => Source::File(f),
            (None, None) => {
                let length = match inputs.get("length") {
                    None | Some(Value::Null) => 40,
                    Some(v) => v
                        .as_u64()
                        .filter(|n| (16..=4096).contains(n))
                        .ok_or_else(|| {
                            ActionError::Input(format!("`length` = {v}: expected 16 to 4096"))
                        })? as usize,
                };
                let charset = match opt_str_input(inputs, "charset")? {
                    None | Some("alphanumeric") => Charset::Alnum,
                    Some("hex") => Charset::Hex,
                    Some("base64url") => Charset::Base64Url,
                    Some(o) => {
                        return Err(ActionError::Input(format!(
                            "`charset` = {o:?}: expected alphanumeric, hex or base64url"
                        )));
                    }
                };
                Source::Generate { length, charset }
            }
        };
        Ok(Self {
            namespace,
            name,
            keys,
            source,
            restart: bool_input(inputs, "restart", true)?,
        })
    }

    fn value(&self) -> Result<SecretString, ActionError> {
        match &self.source {
            Source::Generate { length, charset } => generate(*length, *charset),
            Source::Env(var) => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .map(SecretString::from)
                .ok_or_else(|| {
                    ActionError::Config(format!("env var {var} (value_env) is not set"))
                }),
            Source::File(path) => std::fs::read_to_string(path)
                .map(|v| SecretString::from(v.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|e| ActionError::Config(format!("value_file {path}: {e}"))),
        }
    }

    pub(super) fn describe_source(&self) -> String {
        match &self.source {
            Source::Generate { length, .. } => format!("a generated {length}-character value"),
            Source::Env(v) => format!("the value of env {v}"),
            Source::File(f) => format!("the content of {f}"),
        }
    }
}

/// Does this pod spec use the Secret (volume, projected volume, env, envFrom)?
pub fn uses_secret(spec: &PodSpec, secret: &str) -> bool {
    let vol = spec.volumes.iter().flatten().any(|v| {
        v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(secret)
            || v.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.secret.as_ref().is_some_and(|s| s.name == secret))
            })
    });
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let env = containers.clone().any(|c| {
        c.env.iter().flatten().any(|e| {
            e.value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
                .is_some_and(|r| r.name == secret)
        }) || c
            .env_from
            .iter()
            .flatten()
            .any(|f| f.secret_ref.as_ref().is_some_and(|r| r.name == secret))
    });
    let pull = spec
        .image_pull_secrets
        .iter()
        .flatten()
        .any(|r| r.name == secret);
    vol || env || pull
}

/// Every call `rotate_in` (through `Rotation`) makes on a cluster for `t`, each with what
/// it is for: what preflight reviews. The restart patches are listed for every kind: which
/// workloads use the Secret on the incident's day is not known on a calm one.
pub(super) fn live_ops(cfg: &ClusterConfig, t: &Target) -> Vec<(Op, &'static str)> {
    secret_ops(cfg, &t.namespace, t.restart)
}

/// The calls that write a value into a Secret of `ns` (and restart what mounts it): the
/// rotation's, and `credentials.rotate`'s Kubernetes destination's, which writes through
/// the same code.
pub(crate) fn secret_ops(cfg: &ClusterConfig, ns: &str, restart: bool) -> Vec<(Op, &'static str)> {
    let c = cfg.name.as_str();
    let mut ops = vec![
        (
            Op::new(c, "get", "", "secrets").ns(ns),
            "reading the Secret (and its rotation key)",
        ),
        (
            Op::new(c, "update", "", "secrets").ns(ns),
            "writing the new value (a replace with the resourceVersion read)",
        ),
    ];
    if restart {
        for resource in ["deployments", "statefulsets", "daemonsets"] {
            ops.push((
                Op::new(c, "list", "apps", resource).ns(ns),
                "finding the workloads that use the Secret",
            ));
        }
        for resource in ["deployments", "statefulsets", "daemonsets"] {
            ops.push((
                Op::new(c, "patch", "apps", resource).ns(ns),
                "the rollout restart of a workload using the Secret",
            ));
        }
    }
    ops
}

struct Rotation<'a> {
    ctx: &'a ActionCtx,
    cfg: &'a ClusterConfig,
    client: kube::Client,
    t: &'a Target,
}

impl Rotation<'_> {
    fn op(&self, verb: &'static str) -> Op {
        Op::new(&self.cfg.name, verb, "", "secrets")
            .ns(&self.t.namespace)
            .name(&self.t.name)
    }

    fn api(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.t.namespace)
    }

    async fn read(&self) -> Result<Secret, K8sError> {
        self.api()
            .get_opt(&self.t.name)
            .await
            .map_err(|e| self.op("get").err(e))?
            .ok_or_else(|| K8sError::Other {
                cluster: self.cfg.name.clone(),
                op: self.op("get").to_string(),
                reason: format!(
                    "Secret {}/{} does not exist: rotation replaces keys of an existing Secret",
                    self.t.namespace, self.t.name
                ),
            })
    }

    fn fingerprints_of(&self, s: &Secret) -> BTreeMap<String, String> {
        let ann = s.metadata.annotations.clone().unwrap_or_default();
        self.t
            .keys
            .iter()
            .filter_map(|k| {
                ann.get(&format!("{ANN_FINGERPRINT}{k}"))
                    .map(|f| (k.clone(), f.clone()))
            })
            .collect()
    }

    fn mine(&self, s: &Secret) -> bool {
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANN_ROTATION))
            .is_some_and(|k| *k == self.ctx.idem_key)
    }

    /// Writes the new value into every key, once.
    async fn write(
        &self,
        value: &SecretString,
    ) -> Result<(BTreeMap<String, String>, bool), K8sError> {
        let fp = fingerprint(&self.ctx.idem_key, value);
        let mut last = None;
        for _ in 0..CONFLICT_RETRIES {
            let mut s = self.read().await?;
            if self.mine(&s) {
                return Ok((self.fingerprints_of(&s), false));
            }
            let data = s.data.get_or_insert_with(BTreeMap::new);
            for k in &self.t.keys {
                data.insert(
                    k.clone(),
                    ByteString(value.expose_secret().as_bytes().to_vec()),
                );
                if let Some(sd) = s.string_data.as_mut() {
                    sd.remove(k);
                }
            }
            let ann = s.metadata.annotations.get_or_insert_with(BTreeMap::new);
            ann.insert(ANN_ROTATION.into(), self.ctx.idem_key.clone());
            ann.insert(ANN_INCIDENT.into(), self.ctx.incident.clone());
            ann.insert(ANN_STEP.into(), self.ctx.step.clone());
            for k in &self.t.keys {
                ann.insert(format!("{ANN_FINGERPRINT}{k}"), fp.clone());
            }
            // The replace carries the resourceVersion read: a concurrent writer → 409.
            match self
                .api()
                .replace(&self.t.name, &PostParams::default(), &s)
                .await
            {
                Ok(_) => {
                    let fps = self
                        .t
                        .keys
                        .iter()
                        .map(|k| (k.clone(), fp.clone()))
                        .collect();
                    return Ok((fps, true));
                }
                Err(kube::Error::Api(st)) if st.code == 409 => {
                    last = Some(self.op("update").err(kube::Error::Api(st)));
                }
                Err(e) => return Err(self.op("update").err(e)),
            }
        }
        Err(last.unwrap_or_else(|| K8sError::Other {
            cluster: self.cfg.name.clone(),
            op: "update secret".into(),
            reason: "conflicts persisted".into(),
        }))
    }

    /// The workloads in the namespace whose pod template uses the Secret.
    async fn users(&self) -> Result<Vec<(&'static str, String, bool)>, K8sError> {
        let ns = &self.t.namespace;
        let secret = &self.t.name;
        let mut out = Vec::new();
        let lp = ListParams::default();
        let mark = |t: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>| {
            let done = t
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(ANN_RESTARTED_FOR))
                .is_some_and(|k| *k == self.ctx.idem_key);
            let uses = t
                .and_then(|t| t.spec.as_ref())
                .is_some_and(|s| uses_secret(s, secret));
            (uses, done)
        };
        let deps: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        for d in deps.list(&lp).await.map_err(|e| {
            Op::new(&self.cfg.name, "list", "apps", "deployments")
                .ns(ns)
                .err(e)
        })? {
            let (uses, done) = mark(Some(&d.spec.template));
            if uses {
                out.push(("Deployment", d.metadata.name.unwrap_or_default(), done));
            }
        }
        let sts: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        for d in sts.list(&lp).await.map_err(|e| {
            Op::new(&self.cfg.name, "list", "apps", "statefulsets")
                .ns(ns)
                .err(e)
        })? {
            let (uses, done) = mark(Some(&d.spec.template));
            if uses {
                out.push(("StatefulSet", d.metadata.name.unwrap_or_default(), done));
            }
        }
        let ds: Api<DaemonSet> = Api::namespaced(self.client.clone(), ns);
        for d in ds.list(&lp).await.map_err(|e| {
            Op::new(&self.cfg.name, "list", "apps", "daemonsets")
                .ns(ns)
                .err(e)
        })? {
            let (uses, done) = mark(Some(&d.spec.template));
            if uses {
                out.push(("DaemonSet", d.metadata.name.unwrap_or_default(), done));
            }
        }
        Ok(out)
    }

    fn restart_patch(&self) -> Value {
        json!({ "spec": { "template": { "metadata": { "annotations": {
            RESTARTED_AT: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ANN_RESTARTED_FOR: self.ctx.idem_key,
        }}}}})
    }

    async fn restart(&self, kind: &'static str, name: &str) -> Result<(), K8sError> {
        let ns = &self.t.namespace;
        let pp = PatchParams::default();
        let patch = Patch::Merge(self.restart_patch());
        let (res, resource) = match kind {
            "Deployment" => (
                Api::<Deployment>::namespaced(self.client.clone(), ns)
                    .patch(name, &pp, &patch)
                    .await
                    .map(|_| ()),
                "deployments",
            ),
            "StatefulSet" => (
                Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                    .patch(name, &pp, &patch)
                    .await
                    .map(|_| ()),
                "statefulsets",
            ),
            _ => (
                Api::<DaemonSet>::namespaced(self.client.clone(), ns)
                    .patch(name, &pp, &patch)
                    .await
                    .map(|_| ()),
                "daemonsets",
            ),
        };
        res.map_err(|e| {
            Op::new(&self.cfg.name, "patch", "apps", resource)
                .ns(ns)
                .name(name)
                .err(e)
        })
    }
}

async fn rotate_in(
    ctx: &ActionCtx,
    cfg: &ClusterConfig,
    t: &Target,
    value: &SecretString,
) -> Result<Value, K8sError> {
    let r = Rotation {
        ctx,
        cfg,
        client: crate::k8s::client(&ctx.config, cfg).await?,
        t,
    };
    let (fingerprints, wrote) = r.write(value).await?;
    let mut restarted = Vec::new();
    let mut already = Vec::new();
    if t.restart {
        for (kind, name, done) in r.users().await? {
            if done {
                already.push(format!("{kind}/{name}"));
            } else {
                r.restart(kind, &name).await?;
                restarted.push(format!("{kind}/{name}"));
            }
        }
    }
    Ok(json!({
        "cluster": cfg.name,
        "secret": format!("{}/{}", t.namespace, t.name),
        "rotated": wrote,
        "fingerprints": fingerprints,
        "restarted": restarted,
        "already_restarted": already,
    }))
}

/// Writes `value` into `keys` of an existing Secret on one cluster, exactly once per
/// attempt key, then restarts its users if asked: `credentials.rotate`'s Kubernetes
/// destination.
pub(crate) async fn write_value(
    ctx: &ActionCtx,
    cluster: Option<&str>,
    namespace: &str,
    name: &str,
    keys: Vec<String>,
    restart: bool,
    value: &SecretString,
) -> Result<Value, ActionError> {
    let list = crate::k8s::select(&ctx.config, cluster).map_err(ActionError::Input)?;
    let cfg = match list.as_slice() {
        [one] => *one,
        [] => return Err(ActionError::Config(super::NO_CLUSTER.into())),
        _ => {
            return Err(ActionError::Input(
                "several clusters are configured: name the destination's cluster".into(),
            ));
        }
    };
    let t = Target {
        namespace: namespace.to_string(),
        name: name.to_string(),
        keys,
        source: Source::Env(String::new()),
        restart,
    };
    Ok(rotate_in(ctx, cfg, &t, value).await?)
}

pub struct RotateSecret;

#[async_trait]
impl Action for RotateSecret {
    fn spec(&self) -> &'static ActionSpec {
        &ROTATE_SECRET
    }

    fn unavailable(&self, config: &Config) -> Option<&'static str> {
        no_clusters(config)
    }

    fn credential(&self, config: &Config, inputs: &Value) -> Option<String> {
        credential(config, inputs)
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let t = Target::from_inputs(inputs)?;
        let list = clusters(ctx, inputs)?;
        if list.len() > 1 && matches!(t.source, Source::Generate { .. }) {
            // One generated value for several clusters would diverge on a partial retry.
            return Err(ActionError::Input(format!(
                "{} clusters are configured: fan out per cluster (for_each over kube.clusters, `cluster: ${{{{ item }}}}`) or give value_env/value_file so every cluster gets the same value",
                list.len()
            )));
        }
        let value = t.value()?;
        let results = each_cluster(&list, |c| rotate_in(ctx, c, &t, &value)).await;
        let per = fold_clusters(results)?;
        let fingerprints = per
            .first()
            .map(|v| v["fingerprints"].clone())
            .unwrap_or(Value::Null);
        let restarted: Vec<Value> = per
            .iter()
            .flat_map(|v| v["restarted"].as_array().cloned().unwrap_or_default())
            .collect();
        Ok(ActionOutput::new(
            json!({
                "clusters": per,
                "secret": format!("{}/{}", t.namespace, t.name),
                "keys": t.keys,
                "fingerprints": fingerprints,
                "restarted": restarted,
            }),
            format!(
                "rotated {} of Secret {}/{} to {} (fingerprint {}); restarted {}",
                t.keys.join(", "),
                t.namespace,
                t.name,
                t.describe_source(),
                fingerprints
                    .as_object()
                    .and_then(|m| m.values().next())
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                if restarted.is_empty() {
                    "nothing".to_string()
                } else {
                    restarted
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        ))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let t = Target::from_inputs(inputs)?;
        let list = clusters(ctx, inputs)?;
        let results = each_cluster(&list, |cfg| {
            let t = &t;
            async move {
                let r = Rotation {
                    ctx,
                    cfg,
                    client: crate::k8s::client(&ctx.config, cfg).await?,
                    t,
                };
                let s = r.read().await?;
                let present: Vec<&String> = t
                    .keys
                    .iter()
                    .filter(|k| s.data.as_ref().is_some_and(|d| d.contains_key(*k)))
                    .collect();
                let users = if t.restart { r.users().await? } else { Vec::new() };
                let mut requests = vec![would_send(
                    &cfg.name,
                    "PUT",
                    &format!("/api/v1/namespaces/{}/secrets/{}", t.namespace, t.name),
                    Some("application/json"),
                    Some(&json!({ "data": t.keys.iter().map(|k| (k.clone(), json!(format!("<{}>", t.describe_source())))).collect::<serde_json::Map<_, _>>() })),
                )];
                for (kind, name, _) in &users {
                    let plural = match *kind {
                        "Deployment" => "deployments",
                        "StatefulSet" => "statefulsets",
                        _ => "daemonsets",
                    };
                    requests.push(would_send(
                        &cfg.name,
                        "PATCH",
                        &format!("/apis/apps/v1/namespaces/{}/{plural}/{name}", t.namespace),
                        Some("application/merge-patch+json"),
                        Some(&r.restart_patch()),
                    ));
                }
                let missing: Vec<&String> = t.keys.iter().filter(|k| !present.contains(k)).collect();
                Ok(json!({
                    "cluster": cfg.name,
                    "requests": requests,
                    "findings": missing.iter().map(|k| format!("note: key {k} is not in the Secret yet; it would be added")).collect::<Vec<_>>(),
                    "would_restart": users.iter().map(|(k, n, _)| format!("{k}/{n}")).collect::<Vec<_>>(),
                }))
            }
        })
        .await;
        let super::Plans {
            requests,
            mut findings,
            per,
        } = fold_plans(results);
        if let Source::Env(v) = &t.source
            && std::env::var_os(v).is_none()
        {
            findings.push(json!(format!(
                "blocker: env var {v} (value_env) is not set"
            )));
        }
        Ok(ActionOutput::new(
            json!({ "clusters": per, "secret": format!("{}/{}", t.namespace, t.name), "keys": t.keys }),
            format!(
                "rehearsal: would replace {} of Secret {}/{} with {} (no value generated in a rehearsal)",
                t.keys.join(", "),
                t.namespace,
                t.name,
                t.describe_source()
            ),
        )
        .with("requests", json!(requests))
        .with("findings", json!(findings)))
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let t = Target::from_inputs(inputs)?;
        let list = clusters(ctx, inputs)?;
        let mut per = Vec::new();
        for cfg in list {
            let client = match crate::k8s::client(&ctx.config, cfg).await {
                Ok(c) => c,
                Err(e) => {
                    return Ok(Probe::Unknown {
                        reason: e.to_string(),
                    });
                }
            };
            let r = Rotation {
                ctx,
                cfg,
                client,
                t: &t,
            };
            match r.read().await {
                Ok(s) if r.mine(&s) => per.push(json!({
                    "cluster": cfg.name, "fingerprints": r.fingerprints_of(&s),
                })),
                Ok(_) => {
                    return Ok(Probe::NotDone {
                        evidence: json!(format!(
                            "{}: the Secret does not carry this rotation's key",
                            cfg.name
                        )),
                    });
                }
                Err(e) => {
                    return Ok(Probe::Unknown {
                        reason: e.to_string(),
                    });
                }
            }
        }
        // The Secret holds our value; the restarts are re-checked (and done once) on resume.
        Ok(Probe::NotDone {
            evidence: json!({ "secret_rotated": per, "note": "restarts are completed by re-running, which will not rotate again" }),
        })
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        super::preflight::rotate_secret(ctx, inputs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_use_the_alphabet_and_length() {
        for cs in [Charset::Alnum, Charset::Hex, Charset::Base64Url] {
            let v = generate(40, cs).unwrap();
            assert_eq!(v.expose_secret().len(), 40);
            assert!(
                v.expose_secret()
                    .bytes()
                    .all(|b| cs.alphabet().contains(&b))
            );
        }
        assert_ne!(
            generate(40, Charset::Alnum).unwrap().expose_secret(),
            generate(40, Charset::Alnum).unwrap().expose_secret()
        );
    }

    #[test]
    fn fingerprints_are_salted_and_short() {
        let v = SecretString::from("hunter2".to_string());
        let a = fingerprint("k1", &v);
        assert_eq!(a.len(), "sha256:".len() + 16);
        assert_ne!(a, fingerprint("k2", &v));
        assert!(!a.contains("hunter2"));
    }

    #[test]
    fn finds_every_way_a_pod_uses_a_secret() {
        let spec = |v: Value| -> PodSpec { serde_json::from_value(v).unwrap() };
        let c = |extra: Value| {
            let mut c = json!({"name": "app", "image": "x"});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        assert!(uses_secret(
            &spec(
                json!({"containers": [c(json!({}))], "volumes": [{"name": "v", "secret": {"secretName": "s"}}]})
            ),
            "s"
        ));
        assert!(uses_secret(
            &spec(
                json!({"containers": [c(json!({}))], "volumes": [{"name": "v", "projected": {"sources": [{"secret": {"name": "s"}}]}}]})
            ),
            "s"
        ));
        assert!(uses_secret(
            &spec(
                json!({"containers": [c(json!({"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}))]})
            ),
            "s"
        ));
        assert!(uses_secret(
            &spec(json!({"containers": [c(json!({"envFrom": [{"secretRef": {"name": "s"}}]}))]})),
            "s"
        ));
        assert!(uses_secret(
            &spec(json!({"containers": [c(json!({}))], "imagePullSecrets": [{"name": "s"}]})),
            "s"
        ));
        assert!(!uses_secret(
            &spec(
                json!({"containers": [c(json!({"envFrom": [{"secretRef": {"name": "other"}}]}))]})
            ),
            "s"
        ));
    }
}
