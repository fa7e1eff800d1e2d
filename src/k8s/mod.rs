//! Kubernetes: cluster clients from `[kube]` config, the errors they produce, and the pure
//! parts the actions build on — the admission policies in three dialects
//! ([`policy`]) and image reference / `imageID` parsing ([`image`]).
//!
//! Every API call goes through [`Op`], which names the verb, resource and object so a
//! refusal can say exactly which RBAC rule is missing ("lacks `patch` on `configmaps`"),
//! and so each error is mapped once into the action layer's error.

pub mod image;
pub mod policy;

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::{ClusterConfig, Config, parse_duration_ms};
use crate::net::http::HttpError;

#[derive(Clone, Debug, thiserror::Error)]
pub enum K8sError {
    #[error("cluster `{cluster}`: {reason}")]
    Config { cluster: String, reason: String },
    #[error("cluster `{cluster}` is unreachable ({op}): {reason}")]
    Unreachable {
        cluster: String,
        op: String,
        reason: String,
    },
    #[error("cluster `{cluster}`: {op} answered {code} {reason}: {message}{hint}")]
    Api {
        cluster: String,
        op: String,
        code: u16,
        reason: String,
        message: String,
        /// What to do about it (the RBAC rule to grant), with a leading separator.
        hint: String,
        write: bool,
    },
    #[error("cluster `{cluster}`: {op}: {reason}")]
    Other {
        cluster: String,
        op: String,
        reason: String,
    },
}

impl K8sError {
    /// The API status code, when the API server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }
}

impl From<K8sError> for crate::actions::ActionError {
    fn from(e: K8sError) -> Self {
        use crate::actions::ActionError;
        let msg = e.to_string();
        match e {
            K8sError::Config { .. } => ActionError::Config(msg),
            K8sError::Unreachable { .. } => ActionError::Http(HttpError::Transport(msg)),
            K8sError::Api {
                cluster,
                code,
                write,
                op,
                reason,
                message,
                hint,
            } => {
                let status = || HttpError::Status {
                    status: code,
                    method: format!("cluster `{cluster}`:"),
                    url: op.clone(),
                    body: format!("{reason}: {message}{hint}"),
                    retry_after_ms: None,
                };
                match code {
                    // Retried by the step's retry policy; a write's 5xx may have landed.
                    409 => ActionError::Transient(msg),
                    401 | 403 | 429 | 500..=599 if write => ActionError::Http(status()),
                    401 | 403 | 429 | 500..=599 => ActionError::Read(status()),
                    _ => ActionError::Failed(msg),
                }
            }
            K8sError::Other { .. } => ActionError::Failed(msg),
        }
    }
}

/// One API call, described for errors and rehearsal plans.
#[derive(Clone, Debug)]
pub struct Op {
    pub cluster: String,
    /// RBAC verb: get, list, create, update, patch, delete.
    pub verb: &'static str,
    /// API group ("" for core).
    pub group: &'static str,
    /// Plural resource, e.g. `configmaps`.
    pub resource: &'static str,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.verb, self.resource)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        if let Some(n) = &self.name {
            write!(f, " {n}")?;
        }
        if let Some(ns) = &self.namespace {
            write!(f, " in namespace {ns}")?;
        }
        Ok(())
    }
}

impl Op {
    pub fn new(
        cluster: &str,
        verb: &'static str,
        group: &'static str,
        resource: &'static str,
    ) -> Self {
        Self {
            cluster: cluster.to_string(),
            verb,
            group,
            resource,
            namespace: None,
            name: None,
        }
    }

    pub fn ns(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_string());
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    fn is_write(&self) -> bool {
        !matches!(self.verb, "get" | "list" | "watch")
    }

    /// The RBAC rule whose absence a 403 means.
    pub fn rbac_rule(&self) -> String {
        let group = if self.group.is_empty() {
            "\"\" (core)".to_string()
        } else {
            format!("\"{}\"", self.group)
        };
        let scope = match &self.namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "cluster-wide".to_string(),
        };
        format!(
            "verb `{}` on resource `{}` in API group {group} {scope}",
            self.verb, self.resource
        )
    }

    /// Maps a kube-rs error for this call.
    pub fn err(&self, e: kube::Error) -> K8sError {
        let op = self.to_string();
        match e {
            kube::Error::Api(s) => {
                let hint = match s.code {
                    403 => format!(
                        " — Recall's identity lacks RBAC {}; grant it (docs/kubernetes.md lists every rule)",
                        self.rbac_rule()
                    ),
                    401 => {
                        " — the cluster refused the credential from the kubeconfig (expired token?)"
                            .into()
                    }
                    _ => String::new(),
                };
                K8sError::Api {
                    cluster: self.cluster.clone(),
                    op,
                    code: s.code,
                    reason: s.reason.clone(),
                    message: s.message.clone(),
                    hint,
                    write: self.is_write(),
                }
            }
            kube::Error::HyperError(e) => K8sError::Unreachable {
                cluster: self.cluster.clone(),
                op,
                reason: e.to_string(),
            },
            kube::Error::Service(e) => K8sError::Unreachable {
                cluster: self.cluster.clone(),
                op,
                reason: source_chain(&*e),
            },
            other => K8sError::Other {
                cluster: self.cluster.clone(),
                op,
                reason: other.to_string(),
            },
        }
    }
}

fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// The configured request timeout for Kubernetes calls.
pub fn timeout(config: &Config) -> Duration {
    Duration::from_millis(parse_duration_ms(&config.kube.timeout).unwrap_or(30_000))
}

/// Where a cluster's credential comes from, for messages (never the credential).
pub fn credential_source(c: &ClusterConfig) -> String {
    if c.in_cluster {
        return format!("cluster `{}`: in-cluster service account", c.name);
    }
    let file = c
        .kubeconfig
        .clone()
        .unwrap_or_else(|| "$KUBECONFIG or ~/.kube/config".into());
    let ctx = c.context.as_deref().unwrap_or("its current context");
    format!("cluster `{}`: kubeconfig {file}, context {ctx}", c.name)
}

fn kubeconfig_path(c: &ClusterConfig) -> Option<PathBuf> {
    if let Some(p) = &c.kubeconfig {
        let p = match p.strip_prefix("~/") {
            Some(rest) => std::env::var_os("HOME").map(PathBuf::from)?.join(rest),
            None => PathBuf::from(p),
        };
        return Some(p);
    }
    if let Some(k) = std::env::var_os("KUBECONFIG") {
        // Several files are allowed; the first that exists wins (merging is kubectl's job).
        if let Some(p) = std::env::split_paths(&k).find(|p| p.exists()) {
            return Some(p);
        }
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube").join("config"))
}

/// A client for one configured cluster.
pub async fn client(config: &Config, c: &ClusterConfig) -> Result<kube::Client, K8sError> {
    let cerr = |reason: String| K8sError::Config {
        cluster: c.name.clone(),
        reason,
    };
    let mut cfg = if c.in_cluster {
        kube::Config::incluster().map_err(|e| cerr(format!("in-cluster configuration: {e}")))?
    } else {
        let path =
            kubeconfig_path(c).ok_or_else(|| cerr("no kubeconfig: set `kubeconfig`".into()))?;
        let kc = Kubeconfig::read_from(&path)
            .map_err(|e| cerr(format!("kubeconfig {}: {e}", path.display())))?;
        let opts = KubeConfigOptions {
            context: c.context.clone(),
            ..Default::default()
        };
        kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|e| cerr(format!("kubeconfig {}: {e}", path.display())))?
    };
    let t = timeout(config);
    cfg.connect_timeout = Some(t);
    cfg.read_timeout = Some(t);
    cfg.write_timeout = Some(t);
    kube::Client::try_from(cfg).map_err(|e| cerr(format!("client: {e}")))
}

/// The configured clusters a step acts on: `only` names one (a fan-out item), else all.
pub fn select<'a>(
    config: &'a Config,
    only: Option<&str>,
) -> Result<Vec<&'a ClusterConfig>, String> {
    let all = &config.kube.clusters;
    match only {
        Some(name) => all
            .iter()
            .find(|c| c.name == name)
            .map(|c| vec![c])
            .ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
                format!(
                    "cluster `{name}` is not configured ([[kube.clusters]] has: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )
            }),
        None => Ok(all.iter().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_names_the_missing_rbac_rule() {
        let op = Op::new("prod", "patch", "", "configmaps")
            .ns("recall-system")
            .name("recall-denied-digests-enforce");
        assert_eq!(
            op.rbac_rule(),
            "verb `patch` on resource `configmaps` in API group \"\" (core) in namespace recall-system"
        );
        let op = Op::new(
            "prod",
            "create",
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
        );
        assert!(
            op.rbac_rule().ends_with("cluster-wide"),
            "{}",
            op.rbac_rule()
        );
        assert_eq!(
            op.to_string(),
            "create validatingadmissionpolicies.admissionregistration.k8s.io"
        );
    }
}
