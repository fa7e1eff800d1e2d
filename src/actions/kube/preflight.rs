//! Preflight of the Kubernetes actions: per cluster a step would touch (the same selection
//! as run and plan), read-only checks that its live path would succeed.
//!
//! - `kube.connect`: the kubeconfig/context loads and the API server answers `GET /version`.
//!   A cluster that fails it gets no other check (each would only repeat the failure).
//! - `kube.rbac`: one SelfSubjectAccessReview per distinct verb/group/resource/namespace the
//!   live path uses with these inputs and this cluster's dialect — the lists live next to
//!   the calls (`admission::live_ops`, `running::live_ops`, `secret::live_ops`). A review
//!   is a POST the API server answers without persisting anything, so it is read-only by
//!   design, and it asks the cluster's own authorizer: no guessing from Role objects
//!   (which Recall could not read anyway), aggregated ClusterRoles and webhooks included.
//! - `kube.admission_api`: discovery serves the admission API the dialect writes.
//! - `kube.dialect`: the dialect can do what the inputs ask (Sigstore cannot pin a digest).
//! - `kube.namespace`: the namespace Recall writes to (or rotates in) exists.
//! - `kube.secret`: `kube.rotate_secret`'s Secret exists (the live path replaces keys of an
//!   existing Secret and refuses to create one); read as metadata only, so not even the
//!   values pass through this process.
//! - `kube.secret_value`: the new value can be obtained (env var set, file present) without
//!   reading it.
//! - `kube.clusters`: the cluster list a fan-out would cover (config only).
//!
//! Reviews ask without a resource name: a Role narrowed with `resourceNames` to Recall's
//! own objects is reported as missing the rule, which docs/kubernetes.md grants unnarrowed.

use std::collections::BTreeSet;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use serde_json::Value;

use super::{admission, clusters, running, secret};
use crate::actions::preflight::{Check, Impact};
use crate::actions::{ActionCtx, ActionError, opt_str_input};
use crate::config::{ClusterConfig, Config};
use crate::k8s::{K8sError, Op, credential_source};

pub(crate) const CONNECT: &str = "kube.connect";
pub(crate) const RBAC: &str = "kube.rbac";
pub(crate) const ADMISSION_API: &str = "kube.admission_api";
pub(crate) const DIALECT: &str = "kube.dialect";
pub(crate) const NAMESPACE: &str = "kube.namespace";
pub(crate) const SECRET: &str = "kube.secret";
pub(crate) const SECRET_VALUE: &str = "kube.secret_value";
pub(crate) const CLUSTERS: &str = "kube.clusters";
pub(crate) const INPUTS: &str = "kube.inputs";

const RBAC_DOC: &str = "docs/kubernetes.md, \"RBAC Recall needs\"";

/// What one cluster's live path needs, as the action computes it.
#[derive(Default)]
struct Needs {
    /// The calls, each with what it is for.
    ops: Vec<(Op, &'static str)>,
    /// A namespace the live path uses, and what its absence means.
    namespace: Option<NsNeed>,
    /// `kube.rotate_secret`: the Secret (namespace, name) that must exist.
    secret: Option<(String, String)>,
    /// Checks decided without a call.
    checks: Vec<Check>,
}

struct NsNeed {
    name: String,
    /// Of its absence.
    impact: Impact,
    /// What lives there, for the evidence.
    why: &'static str,
    /// Where the name comes from, for the fix.
    from: &'static str,
}

// ---- per action -----------------------------------------------------------------------

/// `kube.clusters` reads the configuration only: it lists what a fan-out would cover.
pub(super) fn cluster_list(ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
    let dialect = match opt_str_input(inputs, "dialect") {
        Ok(d) => d,
        Err(e) => return vec![bad_inputs("kube.clusters", &e)],
    };
    let names: Vec<&str> = ctx
        .config
        .kube
        .clusters
        .iter()
        .filter(|c| dialect.is_none_or(|d| c.dialect == d))
        .map(|c| c.name.as_str())
        .collect();
    let subject = match dialect {
        Some(d) => format!("[[kube.clusters]] with dialect {d}"),
        None => "[[kube.clusters]]".to_string(),
    };
    if names.is_empty() {
        // The fan-out over it would be empty: the deny/sweep steps would cover no cluster.
        return vec![
            Check::fail(
                CLUSTERS,
                subject,
                "no configured cluster matches: a for_each over these names covers no cluster",
                "add a [[kube.clusters]] entry (name, kubeconfig/context or in_cluster, dialect) to the config — docs/kubernetes.md, \"Configuration\"",
            )
            .impact(Impact::Degrades),
        ];
    }
    vec![Check::pass(
        CLUSTERS,
        subject,
        format!(
            "read from the configuration, no cluster contacted: {}",
            names.join(", ")
        ),
    )]
}

/// `kube.admission_deny` (`deny`) and `kube.admission_allow`.
pub(super) async fn admission(ctx: &ActionCtx, inputs: &Value, deny: bool) -> Vec<Check> {
    let action = if deny {
        "kube.admission_deny"
    } else {
        "kube.admission_allow"
    };
    let req = match admission::Request::from_inputs(inputs, deny) {
        Ok(r) => r,
        Err(e) => return vec![bad_inputs(action, &e)],
    };
    let ns = ctx.config.kube.namespace.as_str();
    per_cluster(ctx, inputs, action, |cfg| {
        let ops = admission::live_ops(cfg, ns, &req, deny);
        let mut n = Needs {
            namespace: ops.iter().any(|(o, _)| o.namespace.is_some()).then(|| {
                NsNeed {
                    name: ns.to_string(),
                    // Reads of an absent namespace find no list: an allow succeeds with
                    // nothing to lift — worth knowing, a typo would hide the real lists.
                    impact: if deny { Impact::Blocks } else { Impact::Info },
                    why: if deny {
                        "the deny lists are created there (and the canary runs there)"
                    } else {
                        "the deny lists live there: without it nothing is denied in this cluster"
                    },
                    from: "[kube] namespace in the config",
                }
            }),
            ..Needs::default()
        };
        // The one dialect whose live deny sends nothing and fails: it cannot pin a digest.
        if deny && cfg.dialect == "sigstore-policy-controller" && ops.is_empty() {
            n.checks.push(sigstore_cannot_pin(cfg));
        }
        n.ops = ops;
        n
    })
    .await
}

/// `kube.find_running`.
pub(super) async fn find_running(ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
    per_cluster(ctx, inputs, "kube.find_running", |cfg| Needs {
        ops: running::live_ops(cfg),
        ..Needs::default()
    })
    .await
}

/// `kube.rotate_secret`.
pub(super) async fn rotate_secret(ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
    let t = match secret::Target::from_inputs(inputs) {
        Ok(t) => t,
        Err(e) => return vec![bad_inputs("kube.rotate_secret", &e)],
    };
    let covered = match clusters(ctx, inputs) {
        Ok(l) => l.len(),
        Err(e) => return vec![bad_inputs("kube.rotate_secret", &e)],
    };
    let mut out = vec![secret_value(&t, covered)];
    out.extend(
        per_cluster(ctx, inputs, "kube.rotate_secret", |cfg| Needs {
            ops: secret::live_ops(cfg, &t),
            namespace: Some(NsNeed {
                name: t.namespace.clone(),
                impact: Impact::Blocks,
                why: "the Secret to rotate lives there",
                from: "the step's `namespace` input",
            }),
            secret: Some((t.namespace.clone(), t.name.clone())),
            checks: Vec::new(),
        })
        .await,
    );
    out
}

/// A `credentials.rotate` destination in a Kubernetes Secret: the same writes as
/// `kube.rotate_secret` (read and replace the Secret, restart what mounts it).
pub(crate) async fn secret_destination(
    ctx: &ActionCtx,
    cluster: Option<&str>,
    namespace: &str,
    name: &str,
    restart: bool,
) -> Vec<Check> {
    let inputs = serde_json::json!({ "cluster": cluster });
    per_cluster(ctx, &inputs, "credentials.rotate", |cfg| {
        let ops = secret::secret_ops(cfg, namespace, restart);
        Needs {
            ops,
            namespace: Some(NsNeed {
                name: namespace.to_string(),
                impact: Impact::Blocks,
                why: "the destination Secret lives there",
                from: "the destination's `namespace`",
            }),
            secret: Some((namespace.to_string(), name.to_string())),
            checks: Vec::new(),
        }
    })
    .await
}

// ---- the checks -----------------------------------------------------------------------

fn bad_inputs(action: &str, e: &ActionError) -> Check {
    Check::fail(
        INPUTS,
        action,
        e.to_string(),
        "fix the step's `with:` (or the [[kube.clusters]] it names)",
    )
}

/// The checks of every cluster the invocation covers, concurrently, in config order.
async fn per_cluster<F>(ctx: &ActionCtx, inputs: &Value, action: &str, needs: F) -> Vec<Check>
where
    F: Fn(&ClusterConfig) -> Needs,
{
    let list = match clusters(ctx, inputs) {
        Ok(l) => l,
        Err(e) => return vec![bad_inputs(action, &e)],
    };
    let futs = list
        .iter()
        .map(|c| cluster_checks(&ctx.config, c, needs(c)));
    futures::future::join_all(futs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn cluster_checks(config: &Config, c: &ClusterConfig, needs: Needs) -> Vec<Check> {
    let (client, version) = match connect(config, c).await {
        Ok(v) => v,
        Err(check) => return vec![check],
    };
    let mut out = vec![Check::pass(
        CONNECT,
        credential_source(c),
        format!("GET /version answered {version}"),
    )];
    out.extend(needs.checks);
    for api in admission_apis(&needs.ops) {
        out.push(served(&client, c, &api, &version).await);
    }
    if let Some(ns) = &needs.namespace {
        out.push(namespace(&client, c, ns).await);
    }
    if let Some((ns, name)) = &needs.secret {
        out.push(secret_exists(&client, c, ns, name).await);
    }
    let ops = distinct(needs.ops);
    let reviews = ops.iter().map(|(op, why)| review(&client, c, op, why));
    out.extend(futures::future::join_all(reviews).await);
    out
}

/// A client and the server's version, or the failed `kube.connect` check.
async fn connect(config: &Config, c: &ClusterConfig) -> Result<(kube::Client, String), Check> {
    let subject = credential_source(c);
    let keys = format!(
        "[[kube.clusters]] `{}` kubeconfig/context (or in_cluster = true when Recall runs in that cluster)",
        c.name
    );
    let client = match crate::k8s::client(config, c).await {
        Ok(client) => client,
        Err(e) => {
            return Err(Check::fail(
                CONNECT,
                subject,
                e.to_string(),
                format!("fix {keys}: the file must be readable and name the context"),
            ));
        }
    };
    match client.apiserver_version().await {
        Ok(info) => Ok((client, info.git_version)),
        Err(e) => {
            let e = Op::new(&c.name, "get", "", "version").err(e);
            let fix = match e.code() {
                Some(401) => format!(
                    "the API server refused the credential (expired token or certificate?): refresh it, or point {keys} at a valid one"
                ),
                Some(_) => format!(
                    "the API server answered with an error: check the server of {keys} and its health"
                ),
                None => format!(
                    "the API server did not answer: check the server URL of the context ({keys}), the network path to it, and [kube] timeout"
                ),
            };
            Err(Check::fail(
                CONNECT,
                subject,
                format!("GET /version: {}", reason(&e)),
                fix,
            ))
        }
    }
}

/// The error without the cluster prefix the subject already names.
fn reason(e: &K8sError) -> String {
    match e {
        K8sError::Api {
            code,
            reason,
            message,
            ..
        } => format!("{code} {reason}: {message}"),
        K8sError::Unreachable { reason, .. }
        | K8sError::Other { reason, .. }
        | K8sError::Config { reason, .. } => reason.clone(),
    }
}

/// Distinct by verb/group/resource/namespace, first purpose kept, in listed order.
fn distinct(ops: Vec<(Op, &'static str)>) -> Vec<(Op, &'static str)> {
    let mut seen = BTreeSet::new();
    ops.into_iter()
        .filter(|(o, _)| seen.insert((o.verb, o.group, o.resource, o.namespace.clone())))
        .collect()
}

/// `patch configmaps in namespace recall-system on cluster prod`.
pub(crate) fn subject(op: &Op) -> String {
    let mut s = format!("{} {}", op.verb, op.resource);
    if !op.group.is_empty() {
        s.push('.');
        s.push_str(op.group);
    }
    match &op.namespace {
        Some(ns) => s.push_str(&format!(" in namespace {ns}")),
        None => s.push_str(" cluster-wide"),
    }
    s.push_str(&format!(" on cluster {}", op.cluster));
    s
}

/// The exact rule to add: a Role in the op's namespace, or a ClusterRole.
pub(crate) fn rbac_fix(op: &Op) -> String {
    let rule = format!(
        "{{apiGroups: [\"{}\"], resources: [{}], verbs: [{}]}}",
        op.group, op.resource, op.verb
    );
    let role = match &op.namespace {
        Some(ns) => format!("a Role in namespace {ns} (with a RoleBinding there)"),
        None => "a ClusterRole (with a ClusterRoleBinding)".to_string(),
    };
    format!(
        "add the rule {rule} to {role} bound to Recall's identity on cluster {} ({RBAC_DOC} lists every rule)",
        op.cluster
    )
}

/// One SelfSubjectAccessReview: does the cluster's authorizer allow `op`?
async fn review(client: &kube::Client, c: &ClusterConfig, op: &Op, why: &str) -> Check {
    let ssar = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(op.verb.to_string()),
                group: Some(op.group.to_string()),
                resource: Some(op.resource.to_string()),
                namespace: op.namespace.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let subject = subject(op);
    match api.create(&PostParams::default(), &ssar).await {
        Ok(r) => {
            let Some(st) = r.status else {
                return Check::unknown(
                    RBAC,
                    subject,
                    format!(
                        "the SelfSubjectAccessReview came back without a status; used for {why}"
                    ),
                    format!(
                        "confirm with `kubectl auth can-i {}` as Recall's identity",
                        can_i(op)
                    ),
                );
            };
            let mut evidence = format!("SelfSubjectAccessReview: allowed: {}", st.allowed);
            if st.denied == Some(true) {
                evidence.push_str(", denied: true");
            }
            if let Some(r) = st.reason.as_deref().filter(|r| !r.is_empty()) {
                evidence.push_str(&format!(", reason: {r:?}"));
            }
            if let Some(e) = st.evaluation_error.as_deref().filter(|e| !e.is_empty()) {
                evidence.push_str(&format!(", evaluationError: {e:?}"));
            }
            evidence.push_str(&format!("; used for {why}"));
            if st.allowed {
                Check::pass(RBAC, subject, evidence)
            } else {
                Check::fail(RBAC, subject, evidence, rbac_fix(op))
            }
        }
        Err(e) => {
            let e = Op::new(
                &c.name,
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
            )
            .err(e);
            let fix = if e.code() == Some(403) {
                "the review itself was refused: grant create on selfsubjectaccessreviews.authorization.k8s.io (ClusterRole; Kubernetes' system:basic-user grants it by default) — docs/kubernetes.md".to_string()
            } else {
                format!(
                    "the review could not be sent; confirm with `kubectl auth can-i {}` as Recall's identity",
                    can_i(op)
                )
            };
            Check::unknown(
                RBAC,
                subject,
                format!(
                    "POST selfsubjectaccessreviews: {}; used for {why}",
                    reason(&e)
                ),
                fix,
            )
        }
    }
}

/// `patch configmaps -n recall-system` / `list pods -A`.
fn can_i(op: &Op) -> String {
    let res = if op.group.is_empty() {
        op.resource.to_string()
    } else {
        format!("{}.{}", op.resource, op.group)
    };
    match &op.namespace {
        Some(ns) => format!("{} {res} -n {ns}", op.verb),
        None => format!("{} {res} -A", op.verb),
    }
}

/// An admission API a dialect writes to, derived from the ops (so it cannot drift).
struct AdmissionApi {
    api_version: String,
    resources: BTreeSet<&'static str>,
    /// Only deletes: an API that is not served holds nothing to delete (the live path
    /// reads that 404 as "already gone").
    delete_only: bool,
}

fn admission_apis(ops: &[(Op, &'static str)]) -> Vec<AdmissionApi> {
    let mut out: Vec<AdmissionApi> = Vec::new();
    for (op, _) in ops {
        let api_version = match op.group {
            "admissionregistration.k8s.io" => admission::vap_resource().api_version,
            "kyverno.io" => admission::kyverno_resource().api_version,
            "policy.sigstore.dev" => admission::cip_resource().api_version,
            _ => continue,
        };
        match out.iter_mut().find(|a| a.api_version == api_version) {
            Some(a) => {
                a.resources.insert(op.resource);
                a.delete_only &= op.verb == "delete";
            }
            None => out.push(AdmissionApi {
                api_version,
                resources: BTreeSet::from([op.resource]),
                delete_only: op.verb == "delete",
            }),
        }
    }
    out
}

/// What to install (or change) when a dialect's API is not served.
fn install_fix(c: &ClusterConfig, api_version: &str, server: &str) -> String {
    let what = match api_version.split('/').next().unwrap_or_default() {
        "admissionregistration.k8s.io" => format!(
            "ValidatingAdmissionPolicy is served from Kubernetes 1.30 (this server: {server}): upgrade the cluster to ≥ 1.30"
        ),
        "kyverno.io" => "install Kyverno (https://kyverno.io/docs/installation/)".to_string(),
        _ => "install the Sigstore policy-controller (https://docs.sigstore.dev/policy-controller/installation/)".to_string(),
    };
    format!(
        "{what}, or set the dialect this cluster runs: [[kube.clusters]] `{}` dialect = \"validating-admission-policy\" | \"kyverno\" | \"sigstore-policy-controller\" (now \"{}\")",
        c.name, c.dialect
    )
}

async fn served(
    client: &kube::Client,
    c: &ClusterConfig,
    api: &AdmissionApi,
    server: &str,
) -> Check {
    let wanted: Vec<&str> = api.resources.iter().copied().collect();
    let subject = format!(
        "{} {} on cluster {}",
        api.api_version,
        wanted.join(", "),
        c.name
    );
    let impact = if api.delete_only {
        Impact::Info
    } else {
        Impact::Blocks
    };
    match client.list_api_group_resources(&api.api_version).await {
        Ok(list) => {
            let have: BTreeSet<&str> = list.resources.iter().map(|r| r.name.as_str()).collect();
            let missing: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|r| !have.contains(r))
                .collect();
            if missing.is_empty() {
                Check::pass(
                    ADMISSION_API,
                    subject,
                    format!("discovery GET /apis/{} serves them", api.api_version),
                )
            } else {
                Check::fail(
                    ADMISSION_API,
                    subject,
                    format!(
                        "discovery GET /apis/{} does not list {}",
                        api.api_version,
                        missing.join(", ")
                    ),
                    install_fix(c, &api.api_version, server),
                )
                .impact(impact)
            }
        }
        Err(e) => {
            let e = Op::new(&c.name, "get", "", "discovery").err(e);
            // A group/version the server does not serve answers 404 (the plain-text
            // "404 page not found" of its not-found handler).
            if e.is_not_found() {
                Check::fail(
                    ADMISSION_API,
                    subject,
                    format!(
                        "discovery GET /apis/{}: not served ({})",
                        api.api_version,
                        reason(&e)
                    ),
                    install_fix(c, &api.api_version, server),
                )
                .impact(impact)
            } else {
                Check::unknown(
                    ADMISSION_API,
                    subject,
                    format!("discovery GET /apis/{}: {}", api.api_version, reason(&e)),
                    format!(
                        "confirm with `kubectl api-resources --api-group={}`",
                        api.api_version.split('/').next().unwrap_or_default()
                    ),
                )
            }
        }
    }
}

async fn namespace(client: &kube::Client, c: &ClusterConfig, need: &NsNeed) -> Check {
    let ns = need.name.as_str();
    let subject = format!("namespace {ns} on cluster {}", c.name);
    let api: Api<Namespace> = Api::all(client.clone());
    match api.get_opt(ns).await {
        Ok(Some(n)) => Check::pass(
            NAMESPACE,
            subject,
            format!(
                "GET namespaces/{ns}: exists{}",
                n.status
                    .and_then(|s| s.phase)
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            ),
        ),
        Ok(None) => Check::fail(
            NAMESPACE,
            subject,
            format!("GET namespaces/{ns}: 404 not found; {}", need.why),
            format!(
                "create it (`kubectl create namespace {ns}`), or correct {}",
                need.from
            ),
        )
        .impact(need.impact),
        Err(e) => {
            let e = Op::new(&c.name, "get", "", "namespaces").name(ns).err(e);
            Check::unknown(
                NAMESPACE,
                subject,
                format!("GET namespaces/{ns}: {}", reason(&e)),
                format!(
                    "grant get on namespaces for this check (a ClusterRole rule {{apiGroups: [\"\"], resources: [namespaces], resourceNames: [{ns}], verbs: [get]}} — {RBAC_DOC}), or confirm with `kubectl get namespace {ns}`"
                ),
            )
        }
    }
}

async fn secret_exists(client: &kube::Client, c: &ClusterConfig, ns: &str, name: &str) -> Check {
    let subject = format!("Secret {ns}/{name} on cluster {}", c.name);
    // Metadata only: the values never reach this process.
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    match api.get_metadata_opt(name).await {
        Ok(Some(m)) => Check::pass(
            SECRET,
            subject,
            format!(
                "GET secrets/{name} (metadata only): exists, resourceVersion {}",
                m.metadata.resource_version.as_deref().unwrap_or("?")
            ),
        ),
        Ok(None) => Check::fail(
            SECRET,
            subject,
            format!(
                "GET secrets/{name}: 404 not found — the rotation replaces keys of an existing Secret and never creates one"
            ),
            "create the Secret first, or correct the step's `namespace`/`name`",
        ),
        Err(e) => {
            let e = Op::new(&c.name, "get", "", "secrets")
                .ns(ns)
                .name(name)
                .err(e);
            Check::unknown(
                SECRET,
                subject,
                format!("GET secrets/{name} (metadata only): {}", reason(&e)),
                "see the kube.rbac check for get secrets; then rehearse again",
            )
        }
    }
}

/// Can the new value be obtained? Checked without reading it.
fn secret_value(t: &secret::Target, covered: usize) -> Check {
    let subject = format!("new value for Secret {}/{}", t.namespace, t.name);
    match &t.source {
        // `run` refuses this: one generated value for several clusters would diverge
        // on a partial retry.
        secret::Source::Generate { .. } if covered > 1 => Check::fail(
            SECRET_VALUE,
            subject,
            format!(
                "a generated value and {covered} clusters in one step: the live run refuses it"
            ),
            "fan out per cluster (for_each over kube.clusters, `cluster: ${{ item }}`) or give value_env/value_file so every cluster gets the same value",
        ),
        secret::Source::Generate { .. } => Check::pass(
            SECRET_VALUE,
            subject,
            format!(
                "{} from OS randomness when the step runs",
                t.describe_source()
            ),
        ),
        secret::Source::Env(var) => match std::env::var_os(var) {
            Some(v) if !v.is_empty() => Check::pass(
                SECRET_VALUE,
                subject,
                format!("env {var} is set and not empty (not read)"),
            ),
            _ => Check::fail(
                SECRET_VALUE,
                subject,
                format!("env {var} (value_env) is not set or empty in Recall's environment"),
                format!("set {var} in the environment of the Recall process that runs the step"),
            ),
        },
        secret::Source::File(path) => match std::fs::metadata(path) {
            Ok(m) if m.is_file() && m.len() > 0 => Check::pass(
                SECRET_VALUE,
                subject,
                format!("value_file {path} exists, {} bytes (not read)", m.len()),
            ),
            Ok(_) => Check::fail(
                SECRET_VALUE,
                subject,
                format!("value_file {path} is empty or not a regular file"),
                format!("write the new value to {path} before the step runs"),
            ),
            Err(e) => Check::fail(
                SECRET_VALUE,
                subject,
                format!("value_file {path}: {e}"),
                format!("write the new value to {path} (readable by Recall) before the step runs"),
            ),
        },
    }
}

fn sigstore_cannot_pin(c: &ClusterConfig) -> Check {
    Check::fail(
        DIALECT,
        format!("dialect {} on cluster {}", c.dialect, c.name),
        "sigstore-policy-controller cannot deny a single digest (its image globs cannot contain `@`): the live deny fails for this cluster with nothing applied",
        "set `block_repository: true` with `image` to refuse every image of the repository, or rely on kube.find_running for this cluster",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(dialect: &str, canary: bool) -> ClusterConfig {
        ClusterConfig {
            name: "prod".into(),
            dialect: dialect.into(),
            canary,
            ..ClusterConfig::default()
        }
    }

    fn listed(ops: &[(Op, &'static str)]) -> Vec<String> {
        distinct(ops.to_vec())
            .iter()
            .map(|(o, _)| subject(o))
            .collect()
    }

    const D: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn subject_and_fix_name_the_exact_rule() {
        let op = Op::new("prod", "patch", "", "configmaps").ns("recall-system");
        assert_eq!(
            subject(&op),
            "patch configmaps in namespace recall-system on cluster prod"
        );
        assert_eq!(
            rbac_fix(&op),
            "add the rule {apiGroups: [\"\"], resources: [configmaps], verbs: [patch]} to a Role in namespace recall-system (with a RoleBinding there) bound to Recall's identity on cluster prod (docs/kubernetes.md, \"RBAC Recall needs\" lists every rule)"
        );
        let op = Op::new("prod", "list", "", "pods");
        assert_eq!(subject(&op), "list pods cluster-wide on cluster prod");
        assert!(rbac_fix(&op).contains("to a ClusterRole (with a ClusterRoleBinding)"));
        let op = Op::new("prod", "get", "apps", "replicasets");
        assert_eq!(
            subject(&op),
            "get replicasets.apps cluster-wide on cluster prod"
        );
        assert!(
            rbac_fix(&op)
                .contains("{apiGroups: [\"apps\"], resources: [replicasets], verbs: [get]}")
        );
        assert_eq!(can_i(&op), "get replicasets.apps -A");
    }

    #[test]
    fn admission_ops_follow_dialect_mode_and_canary() {
        let req = |v: Value, deny| admission::Request::from_inputs(&v, deny).unwrap();
        let enforce = req(json!({"digests": [D], "image": "r.io/app"}), true);
        let vap = listed(&admission::live_ops(
            &cluster("validating-admission-policy", true),
            "recall-system",
            &enforce,
            true,
        ));
        assert_eq!(
            vap,
            [
                "get validatingadmissionpolicies.admissionregistration.k8s.io cluster-wide on cluster prod",
                "create validatingadmissionpolicies.admissionregistration.k8s.io cluster-wide on cluster prod",
                "patch validatingadmissionpolicies.admissionregistration.k8s.io cluster-wide on cluster prod",
                "get validatingadmissionpolicybindings.admissionregistration.k8s.io cluster-wide on cluster prod",
                "create validatingadmissionpolicybindings.admissionregistration.k8s.io cluster-wide on cluster prod",
                "patch validatingadmissionpolicybindings.admissionregistration.k8s.io cluster-wide on cluster prod",
                "get configmaps in namespace recall-system on cluster prod",
                "create configmaps in namespace recall-system on cluster prod",
                "patch configmaps in namespace recall-system on cluster prod",
                "create pods in namespace recall-system on cluster prod",
            ]
        );
        // No canary in audit mode, nor when the cluster disables it.
        let audit = req(json!({"digests": [D], "mode": "audit"}), true);
        let ops = admission::live_ops(&cluster("kyverno", true), "ns", &audit, true);
        let l = listed(&ops);
        assert!(l.iter().all(|s| !s.contains("pods")), "{l:?}");
        assert!(l[0].starts_with("get clusterpolicies.kyverno.io"), "{l:?}");
        let ops = admission::live_ops(
            &cluster("validating-admission-policy", false),
            "ns",
            &enforce,
            true,
        );
        assert!(listed(&ops).iter().all(|s| !s.contains("pods")));
        // Allow: the deny lists only, no create.
        let allow = req(json!({"digests": [D]}), false);
        let ops = admission::live_ops(
            &cluster("validating-admission-policy", true),
            "ns",
            &allow,
            false,
        );
        assert_eq!(
            listed(&ops),
            [
                "get configmaps in namespace ns on cluster prod",
                "patch configmaps in namespace ns on cluster prod"
            ]
        );
        assert!(admission_apis(&ops).is_empty());
        // Sigstore: nothing without a repository block; the block's API otherwise.
        let sig = cluster("sigstore-policy-controller", true);
        assert!(admission::live_ops(&sig, "ns", &enforce, true).is_empty());
        let block = req(
            json!({"digests": [D], "image": "r.io/app", "block_repository": true}),
            true,
        );
        let ops = admission::live_ops(&sig, "ns", &block, true);
        let apis = admission_apis(&ops);
        assert_eq!(apis.len(), 1);
        assert_eq!(apis[0].api_version, "policy.sigstore.dev/v1beta1");
        assert!(!apis[0].delete_only);
        let lift = req(json!({"digests": [D], "image": "r.io/app"}), false);
        let ops = admission::live_ops(&sig, "ns", &lift, false);
        assert_eq!(
            listed(&ops),
            ["delete clusterimagepolicies.policy.sigstore.dev cluster-wide on cluster prod"]
        );
        assert!(admission_apis(&ops)[0].delete_only);
    }

    #[test]
    fn vap_needs_both_resources_of_one_api() {
        let req = admission::Request::from_inputs(&json!({"digests": [D]}), true).unwrap();
        let ops = admission::live_ops(
            &cluster("validating-admission-policy", true),
            "ns",
            &req,
            true,
        );
        let apis = admission_apis(&ops);
        assert_eq!(apis.len(), 1);
        assert_eq!(apis[0].api_version, "admissionregistration.k8s.io/v1");
        assert_eq!(
            apis[0].resources.iter().copied().collect::<Vec<_>>(),
            [
                "validatingadmissionpolicies",
                "validatingadmissionpolicybindings"
            ]
        );
        let fix = install_fix(
            &cluster("validating-admission-policy", true),
            &apis[0].api_version,
            "v1.29.4",
        );
        assert!(
            fix.contains("Kubernetes 1.30") && fix.contains("v1.29.4"),
            "{fix}"
        );
        let fix = install_fix(&cluster("kyverno", true), "kyverno.io/v1", "v1.31.0");
        assert!(fix.starts_with("install Kyverno"), "{fix}");
    }

    #[test]
    fn rotate_ops_only_list_restarts_when_asked() {
        let t = |restart| {
            secret::Target::from_inputs(&json!({"namespace": "payments", "name": "db", "keys": ["password"], "restart": restart})).unwrap()
        };
        let l = listed(&secret::live_ops(&cluster("kyverno", true), &t(false)));
        assert_eq!(
            l,
            [
                "get secrets in namespace payments on cluster prod",
                "update secrets in namespace payments on cluster prod"
            ]
        );
        let l = listed(&secret::live_ops(&cluster("kyverno", true), &t(true)));
        assert_eq!(l.len(), 8, "{l:?}");
        assert!(l.contains(
            &"patch statefulsets.apps in namespace payments on cluster prod".to_string()
        ));
    }

    #[test]
    fn secret_value_is_checked_without_reading_it() {
        let t = |v: Value| secret::Target::from_inputs(&v).unwrap();
        let base = json!({"namespace": "n", "name": "s", "keys": ["k"]});
        let c = secret_value(&t(base.clone()), 1);
        assert_eq!(c.verdict, crate::actions::preflight::Verdict::Pass);
        assert!(secret_value(&t(base.clone()), 2).blocks());
        let mut env = base.clone();
        env["value_env"] = json!("RECALL_TEST_SURELY_UNSET_VAR");
        let c = secret_value(&t(env), 3);
        assert!(c.blocks(), "{c:?}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("v");
        std::fs::write(&f, "hunter2\n").unwrap();
        let mut file = base;
        file["value_file"] = json!(f.display().to_string());
        let c = secret_value(&t(file), 1);
        assert_eq!(c.verdict, crate::actions::preflight::Verdict::Pass);
        assert!(!c.evidence.contains("hunter2"));
    }
}
