//! The admission policies Recall owns, in three dialects, as data. Pure: no I/O, so the
//! exact objects are golden-tested, rendered for operators (`recall kube render`), and
//! their CEL evaluated offline in tests.
//!
//! Layout (one set per cluster, shared by every incident):
//! - a deny list per mode: ConfigMaps `recall-denied-digests-{enforce,warn,audit}` in
//!   `[kube] namespace`, one key per digest (`sha256-<hex>`: ConfigMap keys cannot hold
//!   `:`), the value naming the incident — that value is what a refused user reads;
//! - `validating-admission-policy`: one `ValidatingAdmissionPolicy` and three bindings,
//!   one per mode (`validationActions` Deny / Warn / Audit), each bound to its mode's
//!   ConfigMap as params. Adding a digest touches only a ConfigMap, never the policy;
//! - `kyverno`: one `ClusterPolicy` per mode reading its ConfigMap through a `context`;
//! - `sigstore-policy-controller`: a `ClusterImagePolicy` cannot pin a digest (its globs
//!   cannot contain `@`), so only an explicit `block_repository` makes one, failing every
//!   image of the repository with a static authority.

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub const POLICY_NAME: &str = "recall-deny-digests";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "recall");
/// Annotations on objects Recall writes, naming the incident and step that last wrote them.
pub const ANN_INCIDENT: &str = "recall.dev/incident";
pub const ANN_STEP: &str = "recall.dev/step";

/// Staged rollout: observe, then warn, then refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Audit,
    Warn,
    Enforce,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Enforce, Mode::Warn, Mode::Audit];

    pub fn parse(s: &str) -> Option<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "audit" => Some(Mode::Audit),
            "warn" => Some(Mode::Warn),
            "enforce" | "deny" => Some(Mode::Enforce),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Audit => "audit",
            Mode::Warn => "warn",
            Mode::Enforce => "enforce",
        }
    }

    /// The deny-list ConfigMap of this mode.
    pub fn configmap(self) -> String {
        format!("recall-denied-digests-{}", self.as_str())
    }

    /// The VAP binding (and Kyverno policy) of this mode.
    pub fn binding(self) -> String {
        format!("{POLICY_NAME}-{}", self.as_str())
    }

    fn validation_action(self) -> &'static str {
        match self {
            Mode::Audit => "Audit",
            Mode::Warn => "Warn",
            Mode::Enforce => "Deny",
        }
    }
}

/// A validated digest, lower-case `algorithm:hex`.
pub fn normalize_digest(d: &str) -> Result<String, String> {
    let d = d.trim().to_ascii_lowercase();
    let (alg, hex) = d
        .split_once(':')
        .ok_or_else(|| format!("`{d}` is not a digest (expected sha256:<64 hex>)"))?;
    let len = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(format!("`{d}`: unsupported digest algorithm `{alg}`")),
    };
    if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "`{d}` is not a digest ({alg} needs {len} hex digits)"
        ));
    }
    Ok(d)
}

/// The ConfigMap key of a digest: `sha256:ab…` → `sha256-ab…` (keys allow `[-._a-zA-Z0-9]`).
pub fn digest_key(digest: &str) -> String {
    digest.replace(':', "-")
}

/// The digest a ConfigMap key stands for, if the key is one of ours.
pub fn key_digest(key: &str) -> Option<String> {
    let (alg, hex) = key.split_once('-')?;
    normalize_digest(&format!("{alg}:{hex}")).ok()
}

/// The value stored for a digest: what a refused user reads after "denied by Recall: ".
pub fn deny_note(incident: &str, image: Option<&str>) -> String {
    match image {
        Some(img) => format!("incident {incident} ({img})"),
        None => format!("incident {incident}"),
    }
}

fn labels() -> Value {
    json!({ MANAGED_BY.0: MANAGED_BY.1 })
}

/// The server-side apply body of a mode's deny list. `resource_version` makes the apply
/// conflict-safe: the API server refuses it (409) if someone wrote in between, and the
/// caller re-reads and merges again. The body always carries the whole list, because an
/// apply that omits a key the field manager owned removes that key.
pub fn deny_list(
    namespace: &str,
    mode: Mode,
    data: &BTreeMap<String, String>,
    resource_version: Option<&str>,
) -> Value {
    let mut meta = json!({
        "name": mode.configmap(),
        "namespace": namespace,
        "labels": labels(),
        "annotations": {
            "recall.dev/purpose": format!(
                "image digests denied at admission ({} mode); keys are sha256-<hex>, values name the incident",
                mode.as_str()
            ),
        },
    });
    if let Some(rv) = resource_version {
        meta["resourceVersion"] = json!(rv);
    }
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": data,
    })
}

/// The CEL list of every container image of the pod spec `spec` (a CEL expression).
fn images_of(spec: &str) -> String {
    ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .map(|k| format!("(has({spec}.{k}) ? {spec}.{k} : []).map(c, has(c.image) ? c.image : '')"))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The CEL selecting the pod spec of `obj` (a Pod, a workload, or a CronJob).
fn pod_spec_of(obj: &str) -> String {
    format!(
        "{obj}.kind == 'Pod' ? {obj}.spec : ({obj}.kind == 'CronJob' ? {obj}.spec.jobTemplate.spec.template.spec : {obj}.spec.template.spec)"
    )
}

/// The digest key of image `i` (a CEL expression), as in the ConfigMap.
fn key_of(i: &str) -> String {
    format!("{i}.substring({i}.lastIndexOf('@') + 1).replace(':', '-')")
}

const WORKLOADS: &[(&str, &[&str])] = &[
    (
        "apps",
        &["deployments", "statefulsets", "daemonsets", "replicasets"],
    ),
    ("batch", &["jobs", "cronjobs"]),
];

/// The `ValidatingAdmissionPolicy`. Only `workloads` varies between clusters.
///
/// Decisions (docs/kubernetes.md):
/// - an UPDATE is refused only when it *introduces* a denied image: a bad Deployment must
///   stay editable (scale to zero, fix the image, remove a finalizer);
/// - `failurePolicy: Ignore`: an expression error must never stop every Pod in the
///   cluster; the offline CEL corpus and the canary are what prove the deny works;
/// - an image referenced by tag alone has no digest to match: admission sees only the
///   string, so those are caught by the running-pod sweep, not here.
pub fn vap(workloads: bool) -> Value {
    let mut rules = vec![json!({
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["pods", "pods/ephemeralcontainers"],
    })];
    if workloads {
        for (group, resources) in WORKLOADS {
            rules.push(json!({
                "apiGroups": [group],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": resources,
            }));
        }
    }
    let denied = format!(
        "!has(params.data) ? [] : variables.images.filter(i, i.contains('@') && !(i in variables.oldImages) && {} in params.data)",
        key_of("i")
    );
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": { "name": POLICY_NAME, "labels": labels() },
        "spec": {
            "failurePolicy": "Ignore",
            "paramKind": { "apiVersion": "v1", "kind": "ConfigMap" },
            "matchConstraints": { "resourceRules": rules },
            "variables": [
                { "name": "spec", "expression": pod_spec_of("object") },
                { "name": "images", "expression": images_of("variables.spec") },
                {
                    "name": "oldSpec",
                    "expression": format!("oldObject == null ? null : ({})", pod_spec_of("oldObject")),
                },
                {
                    "name": "oldImages",
                    "expression": format!("variables.oldSpec == null ? [] : {}", images_of("variables.oldSpec")),
                },
                { "name": "denied", "expression": denied },
            ],
            "validations": [{
                "expression": "size(variables.denied) == 0",
                "messageExpression": format!(
                    "'image ' + variables.denied[0] + ' is denied by Recall: ' + params.data[{}]",
                    key_of("variables.denied[0]")
                ),
                "reason": "Forbidden",
            }],
        },
    })
}

/// The binding of one mode to its deny list.
pub fn vap_binding(namespace: &str, mode: Mode) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": { "name": mode.binding(), "labels": labels() },
        "spec": {
            "policyName": POLICY_NAME,
            "validationActions": [mode.validation_action()],
            "paramRef": {
                "name": mode.configmap(),
                "namespace": namespace,
                // No deny list yet means nothing is denied, not everything.
                "parameterNotFoundAction": "Allow",
            },
        },
    })
}

/// Kyverno: one ClusterPolicy per mode. Kyverno's autogen extends a Pod rule to the pod
/// controllers itself. `warn` is Audit plus `emitWarning` (Kyverno has no warn action).
pub fn kyverno(namespace: &str, mode: Mode) -> Value {
    let action = if mode == Mode::Enforce {
        "Enforce"
    } else {
        "Audit"
    };
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": mode.binding(),
            "labels": labels(),
            "annotations": {
                "policies.kyverno.io/title": format!("Recall: deny recalled image digests ({})", mode.as_str()),
                "policies.kyverno.io/description": format!(
                    "Refuses Pods whose containers, initContainers or ephemeralContainers reference a digest listed in the ConfigMap {}/{}.",
                    namespace, mode.configmap()
                ),
            },
        },
        "spec": {
            "background": false,
            "emitWarning": mode == Mode::Warn,
            "rules": [{
                "name": "deny-recalled-digests",
                "match": { "any": [{ "resources": {
                    "kinds": ["Pod"],
                    "operations": ["CREATE", "UPDATE"],
                }}]},
                "context": [{
                    "name": "recall",
                    "configMap": { "name": mode.configmap(), "namespace": namespace },
                }],
                "validate": {
                    "failureAction": action,
                    "message": format!(
                        "image {{{{ element.image }}}} is denied by Recall (see ConfigMap {namespace}/{} for the incident)",
                        mode.configmap()
                    ),
                    "foreach": [{
                        "list": "request.object.spec.[ephemeralContainers, initContainers, containers][]",
                        "deny": { "conditions": { "any": [{
                            "key": "{{ contains(element.image, '@') && replace_all(split(element.image, '@')[-1], ':', '-') || '' }}",
                            "operator": "AnyIn",
                            "value": "{{ keys(recall.data || `{}`) }}",
                        }]}},
                    }],
                },
            }],
        },
    })
}

/// A DNS-1123 name fragment for a repository (`ghcr.io/acme/app` → `ghcr-io-acme-app`).
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let t = out.trim_matches('-');
    let mut t: String = t.chars().take(50).collect();
    while t.ends_with('-') {
        t.pop();
    }
    t
}

/// Sigstore policy-controller: block a whole repository. Its image globs cannot contain
/// `@`, so it cannot pin one digest; this fails every image whose reference starts with
/// the repository (including sibling repositories sharing the prefix — say so to the user).
/// `mode` is `enforce` or `warn` (policy-controller has no audit mode).
pub fn sigstore_block(repository: &str, mode: Mode, incident: &str) -> Value {
    let cip_mode = if mode == Mode::Enforce {
        "enforce"
    } else {
        "warn"
    };
    json!({
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {
            "name": format!("recall-block-{}", slug(repository)),
            "labels": labels(),
            "annotations": { ANN_INCIDENT: incident },
        },
        "spec": {
            "mode": cip_mode,
            "images": [{ "glob": format!("{repository}*") }],
            "authorities": [{ "name": "recall-block", "static": { "action": "fail" } }],
        },
    })
}

/// The canary: a Pod that admission must refuse once the digest is denied. Created with
/// server-side dry-run only, so it never exists.
pub fn canary_pod(namespace: &str, image: &str, digest: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("recall-canary-{}", &digest_key(digest)[..digest_key(digest).len().min(19)]),
            "namespace": namespace,
            "labels": labels(),
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{ "name": "canary", "image": format!("{image}@{digest}") }],
        },
    })
}

/// Renders objects as a multi-document YAML stream (what `kubectl apply -f` takes).
pub fn to_yaml(docs: &[Value]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        match serde_saphyr::to_string(d) {
            Ok(y) => out.push_str(&y),
            // serde_json values always serialise; keep the stream valid if not.
            Err(e) => out.push_str(&format!("# could not render: {e}\n")),
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Every object a dialect installs, for `recall kube render` and the golden files.
pub fn render(dialect: &str, namespace: &str, workloads: bool) -> Result<Vec<Value>, String> {
    match dialect {
        "validating-admission-policy" => {
            let mut v = vec![vap(workloads)];
            v.extend(Mode::ALL.iter().map(|m| vap_binding(namespace, *m)));
            Ok(v)
        }
        "kyverno" => Ok(Mode::ALL.iter().map(|m| kyverno(namespace, *m)).collect()),
        "sigstore-policy-controller" => Ok(vec![sigstore_block(
            "registry.example.com/acme/app",
            Mode::Enforce,
            "INC-EXAMPLE",
        )]),
        other => Err(format!("unknown dialect `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn digests_and_keys_round_trip() {
        assert_eq!(normalize_digest(&D.to_uppercase()).unwrap(), D);
        assert!(normalize_digest("sha256:abc").is_err());
        assert!(normalize_digest("md5:0123").is_err());
        assert!(normalize_digest("latest").is_err());
        assert_eq!(key_digest(&digest_key(D)).as_deref(), Some(D));
        assert_eq!(key_digest("not-a-digest"), None);
    }

    #[test]
    fn deny_list_carries_every_key_and_the_resource_version() {
        let mut data = BTreeMap::new();
        data.insert(digest_key(D), deny_note("INC-1", Some("r.example/app")));
        let cm = deny_list("recall-system", Mode::Enforce, &data, Some("42"));
        assert_eq!(cm["metadata"]["name"], "recall-denied-digests-enforce");
        assert_eq!(cm["metadata"]["resourceVersion"], "42");
        assert_eq!(cm["data"][digest_key(D)], "incident INC-1 (r.example/app)");
        assert!(
            deny_list("ns", Mode::Warn, &data, None)["metadata"]
                .get("resourceVersion")
                .is_none()
        );
    }

    #[test]
    fn vap_covers_workloads_only_when_asked() {
        let with = vap(true);
        let without = vap(false);
        assert_eq!(
            with["spec"]["matchConstraints"]["resourceRules"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            without["spec"]["matchConstraints"]["resourceRules"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let b = vap_binding("recall-system", Mode::Warn);
        assert_eq!(b["spec"]["validationActions"], json!(["Warn"]));
        assert_eq!(b["spec"]["paramRef"]["name"], "recall-denied-digests-warn");
    }

    #[test]
    fn slugs_are_dns_names() {
        assert_eq!(slug("ghcr.io/Acme/app"), "ghcr-io-acme-app");
        assert_eq!(slug("127.0.0.1:5000/x"), "127-0-0-1-5000-x");
        assert!(slug(&"a/".repeat(80)).len() <= 50);
    }

    #[test]
    fn yaml_renders_every_dialect() {
        for d in crate::config::DIALECTS {
            let docs = render(d, "recall-system", true).unwrap();
            let y = to_yaml(&docs);
            assert!(y.starts_with("---\n"), "{y}");
            assert!(!y.contains("could not render"), "{y}");
        }
        assert!(render("opa", "x", true).is_err());
    }

    /// The rendered objects are checked in (tests/golden/kube) and documented in
    /// docs/kubernetes.md; `RECALL_UPDATE_GOLDEN=1` rewrites them after a deliberate change.
    #[test]
    fn rendered_policies_match_the_golden_files_and_round_trip() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/kube");
        let cases = [
            (
                "validating-admission-policy",
                true,
                "validating-admission-policy.yaml",
            ),
            (
                "validating-admission-policy",
                false,
                "validating-admission-policy-pods-only.yaml",
            ),
            ("kyverno", true, "kyverno.yaml"),
            (
                "sigstore-policy-controller",
                true,
                "sigstore-policy-controller.yaml",
            ),
        ];
        for (dialect, workloads, file) in cases {
            let docs = render(dialect, "recall-system", workloads).unwrap();
            let yaml = to_yaml(&docs);
            let path = dir.join(file);
            if std::env::var_os("RECALL_UPDATE_GOLDEN").is_some() {
                std::fs::write(&path, &yaml).unwrap();
            }
            let golden = std::fs::read_to_string(&path).unwrap();
            assert_eq!(
                yaml, golden,
                "{file} differs from the rendering: review, then RECALL_UPDATE_GOLDEN=1"
            );
            // What operators apply is what Recall applies.
            for (i, part) in golden
                .split("---\n")
                .filter(|p| !p.trim().is_empty())
                .enumerate()
            {
                let back: Value = serde_saphyr::from_str(part).unwrap();
                assert_eq!(back, docs[i], "{file} document {i}");
            }
        }
    }
}
