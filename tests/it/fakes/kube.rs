//! Contract fake of the Kubernetes API server, built on [`FakeServer`], for clients using
//! the `kube` crate (or plain HTTP). Plain `http://127.0.0.1:PORT`, bearer-token auth.
//!
//! Faithful to the real API server (`k8s.io/apiserver`, `k8s.io/apimachinery/pkg/api/errors`):
//!
//! * URL shapes: `/api/v1/...`, `/apis/{group}/{version}/...`, `namespaces/{ns}/{plural}
//!   [/{name}[/{subresource}]]`, cluster-scoped and all-namespaces collections; discovery
//!   (`/api`, `/api/v1`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}`, also the aggregated
//!   `APIGroupDiscoveryList` form) and `/version`;
//! * every error is a `Status` (`kind: Status`, `status: Failure`, `message`, `reason`,
//!   `details`, `code`) with the real wording: `configmaps "x" not found`, `... already
//!   exists`, `Operation cannot be fulfilled on ...: the object has been modified; ...`, the
//!   RBAC `... is forbidden: User "u" cannot patch resource "configmaps" in API group "" in
//!   the namespace "ns"`, the server-side-apply `Apply failed with 1 conflict: conflict with
//!   "m": .data.k`, and the ValidatingAdmissionPolicy denial `pods "p" is forbidden:
//!   ValidatingAdmissionPolicy 'p' with binding 'b' denied request: msg` — which says
//!   "forbidden" whatever the `reason` (the server builds it with `admission.NewForbidden`
//!   and only then swaps reason and code), with the message repeated in `details.causes`;
//! * a path under an unknown group/version (an uninstalled CRD) answers `404 page not found`
//!   as `text/plain`, like the real server (its not-found handler, not a `Status`; kube-rs
//!   turns it into `Error::Api` with code 404 and reason `Failed to parse error data`); an
//!   unknown resource inside a served group/version answers the `Status` "the server could
//!   not find the requested resource";
//! * order of checks: authentication (401), authorization (403), lookup (404), preconditions
//!   (409), admission, then `AlreadyExists` (409) for creates — so a create that admission
//!   refuses is refused even when the name is taken;
//! * `metadata.uid`, `resourceVersion` (one counter per fake, bumped on every write; no-op
//!   writes do not bump it), `creationTimestamp`, `generation` (bumped when anything outside
//!   `metadata`/`status` changes; ConfigMaps, Secrets and Namespaces have none) and a
//!   simplified `managedFields` are set by the server; `apiVersion`/`kind` are filled in;
//!   list items of built-in types carry no `apiVersion`/`kind` (CRD items do);
//! * lists: `limit` + opaque `continue` (absent on the last page), `remainingItemCount`
//!   without selectors, `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, `k`, `!k`) and
//!   `fieldSelector` (`path=value`, `!=`), ordered by namespace then name;
//! * PUT: optional `metadata.resourceVersion` precondition; writes through the main resource
//!   keep `status`, the `status` subresource changes only `status`, `pods/ephemeralcontainers`
//!   changes only `spec.ephemeralContainers` (existing ones may not be removed or changed);
//!   `immutable` ConfigMaps/Secrets refuse data changes; Secret `stringData` is folded into
//!   `data`;
//! * PATCH: merge (RFC 7386), JSON patch (RFC 6902), strategic merge (treated as a merge
//!   patch: lists are replaced, not merged by key — the one simplification) and server-side
//!   apply (below); `dryRun=All` on every write runs everything, admission included, and
//!   persists nothing;
//! * DELETE: preconditions, finalizers (the object stays with `deletionTimestamp`), and the
//!   real answers: the deleted Pod (`ReturnDeletedObject`) or a `Status` `Success` for other
//!   resources. Deletion is immediate (no grace period, no garbage collection).
//!
//! Server-side apply is modelled coarsely: ownership is tracked per leaf of `data`,
//! `binaryData`, `metadata.labels`, `metadata.annotations`, per top-level key of `spec` and
//! per other top-level field. A field set to a different value than another manager's
//! conflicts (409) unless `force=true`, which moves ownership; the same value is shared; a
//! field the applier owned and now omits is removed unless another manager owns it too. A
//! `metadata.resourceVersion` in the applied object is a precondition (409 when stale, also
//! when the object is gone). Non-apply writes take ownership of the fields they change
//! (manager: `fieldManager`, else the User-Agent's product token).
//!
//! Admission runs installed `ValidatingAdmissionPolicy` + `...Binding` objects through
//! [`super::vap`] on CREATE, UPDATE and DELETE of everything but `admissionregistration`
//! objects (dry runs and subresources included): match rules (`*`, `res/*`, `*/sub`,
//! `resourceNames`, `scope`, exclusions, namespace/object selectors), `paramKind`/`paramRef`
//! (`name` or `selector`, `parameterNotFoundAction`), `failurePolicy`, `validationActions`
//! (`Deny` → refused; `Warn` → `Warning: 299 - "..."` header; `Audit` →
//! [`FakeKube::audit_events`]). Creating a policy whose expressions don't compile is
//! refused with 422, as the server does.
//!
//! Deviations (deliberate): no watch (405), no `deletecollection`, no pod spec immutability
//! beyond ephemeral containers, no namespace-existence check, no continue-token expiry (a
//! continued list sees the current state, not a snapshot), the server-side-apply model above,
//! and RBAC is a deny list ([`FakeKube::forbid`]) over an otherwise allowed user.
//!
//! Faults: [`FakeServer::inject`] through [`FakeKube::server`]; [`FakeKube::conflict_next`]
//! makes the next writes answer 409; [`FakeKube::unreachable_url`] is a closed port.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map as JsonMap, Value, json};

use super::vap::{self, AdmissionRequest};
use super::{FakeServer, Request, Response};

/// The user the token authenticates as, unless [`FakeKube::set_user`] says otherwise.
pub const DEFAULT_USER: &str = "system:serviceaccount:recall:recall";
/// The message of an unknown resource inside a served group/version.
pub const RESOURCE_NOT_FOUND: &str = "the server could not find the requested resource";
/// The body of a path under an unknown group/version (plain text).
pub const PAGE_NOT_FOUND: &str = "404 page not found\n";
/// The optimistic-concurrency failure text (`OptimisticLockErrorMsg`).
pub const OPTIMISTIC_LOCK: &str =
    "the object has been modified; please apply your changes to the latest version and try again";
/// The API server version reported by `/version`.
pub const SERVER_VERSION: &str = "v1.34.1";

const ADMISSION_GROUP: &str = "admissionregistration.k8s.io";
const SEED_MANAGER: &str = "recall-test-seed";

/// A resource type the fake serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceDef {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    /// Plural resource name (`configmaps`).
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    /// Installed with [`FakeKube::install_crd`].
    pub custom: bool,
}

impl ResourceDef {
    fn new(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        ResourceDef {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced,
            custom: false,
        }
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `configmaps` or `deployments.apps` (`GroupResource.String()`).
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `ConfigMap` or `Deployment.apps` (`GroupKind.String()`).
    fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    fn is_core(&self, plural: &str) -> bool {
        self.group.is_empty() && self.plural == plural
    }

    /// Whether the type has a `status` subresource (writes through the main resource keep
    /// the stored status).
    fn has_status(&self) -> bool {
        !(self.is_core("configmaps")
            || self.is_core("secrets")
            || self.plural == "validatingadmissionpolicybindings"
            || self.plural == "selfsubjectaccessreviews")
    }

    fn has_generation(&self) -> bool {
        !(self.is_core("configmaps") || self.is_core("secrets") || self.is_core("namespaces"))
    }

    fn subresource_allowed(&self, sub: &str) -> bool {
        match sub {
            "status" => self.has_status(),
            "ephemeralcontainers" => self.is_core("pods"),
            _ => false,
        }
    }

    fn verbs(&self) -> Vec<&'static str> {
        if self.plural == "selfsubjectaccessreviews" {
            vec!["create"]
        } else {
            vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }

    fn key(&self) -> ResKey {
        (
            self.group.clone(),
            self.version.clone(),
            self.plural.clone(),
        )
    }
}

fn builtin_resources() -> Vec<ResourceDef> {
    vec![
        ResourceDef::new("", "v1", "namespaces", "Namespace", false),
        ResourceDef::new("", "v1", "configmaps", "ConfigMap", true),
        ResourceDef::new("", "v1", "secrets", "Secret", true),
        ResourceDef::new("", "v1", "pods", "Pod", true),
        ResourceDef::new("apps", "v1", "deployments", "Deployment", true),
        ResourceDef::new("apps", "v1", "statefulsets", "StatefulSet", true),
        ResourceDef::new("apps", "v1", "daemonsets", "DaemonSet", true),
        ResourceDef::new("apps", "v1", "replicasets", "ReplicaSet", true),
        ResourceDef::new("batch", "v1", "jobs", "Job", true),
        ResourceDef::new("batch", "v1", "cronjobs", "CronJob", true),
        ResourceDef::new(
            ADMISSION_GROUP,
            "v1",
            "validatingadmissionpolicies",
            "ValidatingAdmissionPolicy",
            false,
        ),
        ResourceDef::new(
            ADMISSION_GROUP,
            "v1",
            "validatingadmissionpolicybindings",
            "ValidatingAdmissionPolicyBinding",
            false,
        ),
        ResourceDef::new(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            false,
        ),
    ]
}

/// What an admission evaluation decided, per policy × binding (× params object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every validation passed.
    Admitted,
    /// Failed with a `Deny` action: the request was refused.
    Denied,
    /// Failed with `Warn` (and no `Deny`): a `Warning` header, admitted.
    Warned,
    /// Failed with only `Audit`: recorded, admitted.
    Audited,
    /// A match condition excluded the request.
    NotMatched,
    /// No params and `parameterNotFoundAction: Allow`: the binding was skipped.
    Skipped,
    /// An error (expression or configuration) ignored under `failurePolicy: Ignore`.
    ErrorIgnored,
}

/// One admission decision, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionRecord {
    /// `CREATE`, `UPDATE`, `DELETE`.
    pub operation: String,
    /// `pods` or `pods/ephemeralcontainers` (with group: `deployments.apps`).
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub policy: String,
    pub binding: String,
    pub decision: Decision,
    /// The failure message (empty when admitted).
    pub message: String,
    pub dry_run: bool,
}

/// A validation failure under an `Audit` action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub operation: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub policy: String,
    pub binding: String,
    pub message: String,
}

/// A policy that errored while evaluating (an expression, or a `messageExpression` the
/// server would silently replace by `message`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionError {
    pub operation: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub policy: String,
    pub binding: String,
    pub error: String,
    /// `Fail` or `Ignore`.
    pub failure_policy: String,
}

/// One denied permission (see [`FakeKube::forbid`]).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Forbid {
    verb: String,
    group: String,
    resource: String,
    namespace: Option<String>,
}

/// (group, version, plural)
type ResKey = (String, String, String);
/// (namespace or "", name) — the order lists are served in.
type ObjKey = (String, String);
/// A field as path segments (`["data", "k"]`).
type FieldPath = Vec<String>;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Manager {
    name: String,
    apply: bool,
}

impl Manager {
    /// As the server prints managers in conflict messages.
    fn display(&self, api_version: &str) -> String {
        if self.apply {
            format!("{:?}", self.name)
        } else {
            format!("{:?} using {api_version}", self.name)
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Stored {
    /// The object as served (with `resourceVersion` and `managedFields`).
    obj: Value,
    /// `obj` serialized as a list item, computed once per write: pages of a large list are
    /// then string concatenation, not a clone + serialization of every object.
    item_json: String,
    owners: BTreeMap<FieldPath, BTreeSet<Manager>>,
    /// Manager → (apiVersion, time of its last change).
    managers: BTreeMap<Manager, (String, String)>,
}

struct State {
    token: String,
    user: String,
    resources: Vec<ResourceDef>,
    store: BTreeMap<ResKey, BTreeMap<ObjKey, Stored>>,
    rv: u64,
    forbidden: Vec<Forbid>,
    conflict_next: usize,
    mutations: usize,
    dry_runs: usize,
    writes: usize,
    admission_log: Vec<AdmissionRecord>,
    audit: Vec<AuditEvent>,
    admission_errors: Vec<AdmissionError>,
    warnings: Vec<String>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl State {
    fn def(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        self.resources
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
    }

    fn def_by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceDef> {
        self.resources
            .iter()
            .find(|d| d.api_version() == api_version && d.kind == kind)
    }

    fn group_version_served(&self, group: &str, version: &str) -> bool {
        self.resources
            .iter()
            .any(|d| d.group == group && d.version == version)
    }

    fn get(&self, def: &ResourceDef, ns: &str, name: &str) -> Option<&Stored> {
        self.store
            .get(&def.key())?
            .get(&(ns.to_string(), name.to_string()))
    }

    fn values(&self, def: &ResourceDef) -> Vec<Value> {
        self.store
            .get(&def.key())
            .map(|c| c.values().map(|s| s.obj.clone()).collect())
            .unwrap_or_default()
    }

    fn is_forbidden(&self, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
        self.forbidden.iter().any(|f| {
            (f.verb == "*" || f.verb == verb)
                && (f.group == "*" || f.group == group)
                && (f.resource == "*" || f.resource == resource)
                && f.namespace.as_deref().is_none_or(|n| n == ns)
        })
    }

    /// Stores `stored` (server fields already set), bumping the resourceVersion.
    fn persist(&mut self, def: &ResourceDef, mut stored: Stored) -> Value {
        self.rv += 1;
        let mf = managed_fields(&stored);
        let meta = meta_mut(&mut stored.obj);
        meta.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        meta.insert("managedFields".into(), mf);
        stored.item_json = list_item(def, &stored.obj).to_string();
        let key = (
            str_at(&stored.obj, &["metadata", "namespace"]).to_string(),
            str_at(&stored.obj, &["metadata", "name"]).to_string(),
        );
        let obj = stored.obj.clone();
        self.store.entry(def.key()).or_default().insert(key, stored);
        obj
    }
}

/// A running fake API server. Cheap to clone; the server stops when the last clone drops.
#[derive(Clone)]
pub struct FakeKube {
    server: Arc<FakeServer>,
    state: Arc<Mutex<State>>,
    cluster: String,
    token: String,
}

impl FakeKube {
    /// Starts a fake cluster named `cluster_name` that accepts `Bearer <token>`.
    pub async fn start(cluster_name: &str, token: &str) -> FakeKube {
        let state = Arc::new(Mutex::new(State {
            token: token.to_string(),
            user: DEFAULT_USER.to_string(),
            resources: builtin_resources(),
            store: BTreeMap::new(),
            rv: 1000,
            forbidden: Vec::new(),
            conflict_next: 0,
            mutations: 0,
            dry_runs: 0,
            writes: 0,
            admission_log: Vec::new(),
            audit: Vec::new(),
            admission_errors: Vec::new(),
            warnings: Vec::new(),
        }));
        let s = state.clone();
        let server = FakeServer::start(move |req: &Request| handle(&s, req)).await;
        FakeKube {
            server: Arc::new(server),
            state,
            cluster: cluster_name.to_string(),
            token: token.to_string(),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// The underlying server: request log and fault injection.
    pub fn server(&self) -> &FakeServer {
        &self.server
    }

    pub fn cluster_name(&self) -> &str {
        &self.cluster
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// A `kube::Client` for this fake (default namespace `default`). Needs a tokio runtime.
    pub fn client(&self) -> ::kube::Client {
        self.client_with_token(&self.token)
    }

    /// A client presenting another bearer token (e.g. a wrong one, for 401s).
    pub fn client_with_token(&self, token: &str) -> ::kube::Client {
        let mut config = ::kube::Config::new(self.url().parse().expect("fake url is a valid URI"));
        config.auth_info.token = Some(secrecy::SecretString::from(token.to_string()));
        ::kube::Client::try_from(config).expect("kube client for the fake")
    }

    /// A kubeconfig with one context, `context_name`, pointing at this fake.
    pub fn kubeconfig_yaml(&self, context_name: &str) -> String {
        kubeconfig_yaml(&[(self, context_name)])
    }

    /// Writes [`Self::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path, context_name: &str) {
        std::fs::write(path, self.kubeconfig_yaml(context_name)).expect("write kubeconfig");
    }

    /// Writes one kubeconfig with a context per fake (the first is `current-context`).
    pub fn write_kubeconfig_multi(path: &Path, fakes: &[(&FakeKube, &str)]) {
        std::fs::write(path, kubeconfig_yaml(fakes)).expect("write kubeconfig");
    }

    /// `http://127.0.0.1:<port>` of a listener that was bound and dropped: connections are
    /// refused.
    pub fn unreachable_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        drop(listener);
        format!("http://127.0.0.1:{port}")
    }

    /// The user the token authenticates as (in RBAC messages and `request.userInfo`).
    pub fn set_user(&self, user: &str) {
        lock(&self.state).user = user.to_string();
    }

    pub fn user(&self) -> String {
        lock(&self.state).user.clone()
    }

    /// Serves a custom resource type (and its group in discovery).
    pub fn install_crd(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
    ) {
        let mut st = lock(&self.state);
        st.resources
            .retain(|d| !(d.group == group && d.version == version && d.plural == plural));
        let mut def = ResourceDef::new(group, version, plural, kind, namespaced);
        def.custom = true;
        st.resources.push(def);
    }

    /// Denies `verb` (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`; `*`)
    /// on `resource` (`configmaps`, `pods/ephemeralcontainers`; `*`) of `group` (`""` for
    /// core; `*`) in every namespace. A rule for `pods` does not cover its subresources.
    pub fn forbid(&self, verb: &str, group: &str, resource: &str) {
        self.push_forbid(verb, group, resource, None);
    }

    /// Like [`Self::forbid`], only in `namespace`.
    pub fn forbid_in(&self, verb: &str, group: &str, resource: &str, namespace: &str) {
        self.push_forbid(verb, group, resource, Some(namespace));
    }

    fn push_forbid(&self, verb: &str, group: &str, resource: &str, namespace: Option<&str>) {
        lock(&self.state).forbidden.push(Forbid {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.map(str::to_string),
        });
    }

    /// Forgets every [`Self::forbid`].
    pub fn allow_all(&self) {
        lock(&self.state).forbidden.clear();
    }

    /// The next `n` non-dry-run PUTs and server-side applies answer 409 Conflict (the
    /// optimistic-lock message) without writing.
    pub fn conflict_next(&self, n: usize) {
        lock(&self.state).conflict_next = n;
    }

    /// Seeds (or replaces) an object, bypassing auth, RBAC and admission. Server fields are
    /// filled in; returns the stored object. The namespace: `ns`, else the object's, else
    /// `default` (ignored for cluster-scoped types). Panics on an unserved resource.
    pub fn put_object(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: Option<&str>,
        obj: Value,
    ) -> Value {
        let mut st = lock(&self.state);
        let def = st
            .def(group, version, plural)
            .unwrap_or_else(|| panic!("put_object: {group}/{version} {plural} is not served"))
            .clone();
        let mut obj = obj;
        set_type(&def, &mut obj);
        let name = str_at(&obj, &["metadata", "name"]).to_string();
        assert!(!name.is_empty(), "put_object: metadata.name is required");
        let ns = ns
            .map(str::to_string)
            .or_else(|| Some(str_at(&obj, &["metadata", "namespace"]).to_string()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let meta = meta_mut(&mut obj);
        if def.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        normalize_secret(&def, &mut obj);
        let ns_key = str_at(&obj, &["metadata", "namespace"]).to_string();
        let old = st.get(&def, &ns_key, &name).cloned();
        let meta = meta_mut(&mut obj);
        meta.entry("uid").or_insert_with(|| json!(new_uid()));
        meta.entry("creationTimestamp")
            .or_insert_with(|| json!(now()));
        if def.has_generation() {
            meta.entry("generation").or_insert(json!(1));
        }
        let mut stored = Stored {
            obj,
            ..Stored::default()
        };
        let mgr = Manager {
            name: SEED_MANAGER.into(),
            apply: false,
        };
        track_update(&def, old.as_ref(), &mut stored, &mgr);
        st.persist(&def, stored)
    }

    /// Removes a seeded object (no admission). Whether it existed.
    pub fn remove_object(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: Option<&str>,
        name: &str,
    ) -> bool {
        let mut st = lock(&self.state);
        let Some(def) = st.def(group, version, plural).cloned() else {
            return false;
        };
        let ns = if def.namespaced {
            ns.unwrap_or("default")
        } else {
            ""
        };
        let removed = st
            .store
            .get_mut(&def.key())
            .and_then(|c| c.remove(&(ns.to_string(), name.to_string())))
            .is_some();
        if removed {
            st.rv += 1;
        }
        removed
    }

    /// Seeds a Pod. `images`: `(kind, container name, image, imageID)` with kind
    /// `containers`, `initContainers` or `ephemeralContainers` (`container`, `init`,
    /// `ephemeral` also accepted); each gets a status entry with that `imageID`. `owner`:
    /// the controlling owner `(kind, name)` (uid taken from the owner object when seeded).
    pub fn add_pod(
        &self,
        ns: &str,
        name: &str,
        images: &[(&str, &str, &str, &str)],
        owner: Option<(&str, &str)>,
    ) -> Value {
        let started = now();
        let mut spec = JsonMap::new();
        let mut status = JsonMap::new();
        status.insert("phase".into(), json!("Running"));
        for (kind, container, image, image_id) in images {
            let (spec_key, status_key, state) = match *kind {
                "containers" | "container" => (
                    "containers",
                    "containerStatuses",
                    json!({"running": {"startedAt": started}}),
                ),
                "initContainers" | "initContainer" | "init" => (
                    "initContainers",
                    "initContainerStatuses",
                    json!({"terminated": {"exitCode": 0, "reason": "Completed",
                                          "startedAt": started, "finishedAt": started}}),
                ),
                "ephemeralContainers" | "ephemeralContainer" | "ephemeral" => (
                    "ephemeralContainers",
                    "ephemeralContainerStatuses",
                    json!({"running": {"startedAt": started}}),
                ),
                other => panic!("add_pod: unknown container kind {other:?}"),
            };
            push_array(
                &mut spec,
                spec_key,
                json!({"name": container, "image": image}),
            );
            push_array(
                &mut status,
                status_key,
                json!({
                    "name": container,
                    "image": image,
                    "imageID": image_id,
                    "ready": spec_key != "initContainers",
                    "restartCount": 0,
                    "started": spec_key != "initContainers",
                    "state": state,
                }),
            );
        }
        let mut meta = json!({"name": name, "namespace": ns});
        if let Some((kind, owner_name)) = owner {
            meta["ownerReferences"] = json!([self.owner_reference(ns, kind, owner_name)]);
        }
        self.put_object(
            "",
            "v1",
            "pods",
            Some(ns),
            json!({"metadata": meta, "spec": spec, "status": status}),
        )
    }

    /// An `ownerReference` (controller) to `kind`/`name` in `ns`, with the seeded owner's
    /// uid when there is one.
    pub fn owner_reference(&self, ns: &str, kind: &str, name: &str) -> Value {
        let st = lock(&self.state);
        let def = st.resources.iter().find(|d| d.kind == kind).cloned();
        let api_version = def.as_ref().map_or_else(
            || match kind {
                "ReplicaSet" | "Deployment" | "StatefulSet" | "DaemonSet" => "apps/v1".into(),
                "Job" | "CronJob" => "batch/v1".into(),
                _ => "v1".into(),
            },
            ResourceDef::api_version,
        );
        let uid = def
            .and_then(|d| {
                let ns = if d.namespaced { ns } else { "" };
                st.get(&d, ns, name)
                    .map(|s| str_at(&s.obj, &["metadata", "uid"]).to_string())
            })
            .unwrap_or_else(new_uid);
        json!({
            "apiVersion": api_version,
            "kind": kind,
            "name": name,
            "uid": uid,
            "controller": true,
            "blockOwnerDeletion": true,
        })
    }

    /// Seeds a Namespace with labels.
    pub fn add_namespace(&self, name: &str, labels: &[(&str, &str)]) -> Value {
        let labels: JsonMap<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.put_object(
            "",
            "v1",
            "namespaces",
            None,
            json!({"metadata": {"name": name, "labels": labels},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        )
    }

    /// Seeds a ConfigMap.
    pub fn add_configmap(&self, ns: &str, name: &str, data: &[(&str, &str)]) -> Value {
        let data: JsonMap<String, Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.put_object(
            "",
            "v1",
            "configmaps",
            Some(ns),
            json!({"metadata": {"name": name}, "data": data}),
        )
    }

    /// Seeds an Opaque Secret (values given in clear, stored base64 in `data`).
    pub fn add_secret(&self, ns: &str, name: &str, string_data: &[(&str, &str)]) -> Value {
        let data: JsonMap<String, Value> = string_data
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.put_object(
            "",
            "v1",
            "secrets",
            Some(ns),
            json!({"metadata": {"name": name}, "type": "Opaque", "stringData": data}),
        )
    }

    /// Seeds a `ValidatingAdmissionPolicy` (no compile check; see the API for that).
    pub fn add_policy(&self, policy: Value) -> Value {
        self.put_object(
            ADMISSION_GROUP,
            "v1",
            "validatingadmissionpolicies",
            None,
            policy,
        )
    }

    /// Seeds a `ValidatingAdmissionPolicyBinding`.
    pub fn add_binding(&self, binding: Value) -> Value {
        self.put_object(
            ADMISSION_GROUP,
            "v1",
            "validatingadmissionpolicybindings",
            None,
            binding,
        )
    }

    /// The stored object (as a GET would answer it).
    pub fn object(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let st = lock(&self.state);
        let def = st.def(group, version, plural)?;
        let ns = if def.namespaced {
            ns.unwrap_or("default")
        } else {
            ""
        };
        st.get(def, ns, name).map(|s| s.obj.clone())
    }

    /// Every stored object of every resource named `plural`, in list order.
    pub fn objects(&self, plural: &str) -> Vec<Value> {
        let st = lock(&self.state);
        st.resources
            .iter()
            .filter(|d| d.plural == plural)
            .flat_map(|d| st.values(d))
            .collect()
    }

    /// The current resourceVersion counter.
    pub fn resource_version(&self) -> u64 {
        lock(&self.state).rv
    }

    /// Non-dry-run POST/PUT/PATCH/DELETE requests that reached the API (whatever their
    /// outcome), SelfSubjectAccessReviews excepted.
    pub fn mutations(&self) -> usize {
        lock(&self.state).mutations
    }

    /// Dry-run writes that reached the API.
    pub fn dry_runs(&self) -> usize {
        lock(&self.state).dry_runs
    }

    /// Writes that changed stored state (seeding excluded).
    pub fn writes(&self) -> usize {
        lock(&self.state).writes
    }

    /// Requests received (faulted ones included).
    pub fn calls(&self) -> usize {
        self.server.calls()
    }

    /// Requests matching `route` (see [`FakeServer::requests_matching`]).
    pub fn requests_matching(&self, route: &str) -> Vec<Request> {
        self.server.requests_matching(route)
    }

    /// Every request received.
    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    /// Every admission decision, in order.
    pub fn admission_log(&self) -> Vec<AdmissionRecord> {
        lock(&self.state).admission_log.clone()
    }

    /// Validation failures under `Audit` actions.
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        lock(&self.state).audit.clone()
    }

    /// Policy evaluation errors (whatever the failure policy made of them).
    pub fn admission_errors(&self) -> Vec<AdmissionError> {
        lock(&self.state).admission_errors.clone()
    }

    /// Every `Warning` header text sent (without the `299 - ` envelope).
    pub fn warnings(&self) -> Vec<String> {
        lock(&self.state).warnings.clone()
    }

    /// Forgets the admission log, audit events, errors and warnings.
    pub fn clear_admission_log(&self) {
        let mut st = lock(&self.state);
        st.admission_log.clear();
        st.audit.clear();
        st.admission_errors.clear();
        st.warnings.clear();
    }
}

fn yaml_str(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    Value::String(s.to_string()).to_string()
}

fn kubeconfig_yaml(fakes: &[(&FakeKube, &str)]) -> String {
    let mut clusters = String::new();
    let mut users = String::new();
    let mut contexts = String::new();
    let mut seen: Vec<String> = Vec::new();
    for (i, (fake, context)) in fakes.iter().enumerate() {
        let mut cluster = fake.cluster.clone();
        if seen.contains(&cluster) {
            cluster = format!("{cluster}-{i}");
        }
        seen.push(cluster.clone());
        let user = format!("{context}-user");
        clusters.push_str(&format!(
            "- name: {}\n  cluster:\n    server: {}\n",
            yaml_str(&cluster),
            yaml_str(fake.url())
        ));
        users.push_str(&format!(
            "- name: {}\n  user:\n    token: {}\n",
            yaml_str(&user),
            yaml_str(&fake.token)
        ));
        contexts.push_str(&format!(
            "- name: {}\n  context:\n    cluster: {}\n    user: {}\n    namespace: default\n",
            yaml_str(context),
            yaml_str(&cluster),
            yaml_str(&user)
        ));
    }
    let current = fakes.first().map_or(String::new(), |(_, c)| c.to_string());
    format!(
        "apiVersion: v1\nkind: Config\npreferences: {{}}\nclusters:\n{clusters}users:\n{users}contexts:\n{contexts}current-context: {}\n",
        yaml_str(&current)
    )
}

// ---------------------------------------------------------------------------------------
// JSON helpers

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return "",
        }
    }
    cur.as_str().unwrap_or_default()
}

fn meta_mut(obj: &mut Value) -> &mut JsonMap<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let map = obj.as_object_mut().expect("object");
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("metadata object")
}

fn push_array(map: &mut JsonMap<String, Value>, key: &str, v: Value) {
    if let Value::Array(a) = map.entry(key).or_insert_with(|| json!([])) {
        a.push(v);
    }
}

fn set_type(def: &ResourceDef, obj: &mut Value) {
    if !obj.is_object() {
        *obj = json!({});
    }
    obj["apiVersion"] = json!(def.api_version());
    obj["kind"] = json!(def.kind);
}

/// Secrets: `stringData` is write-only; the server folds it into `data` (base64).
fn normalize_secret(def: &ResourceDef, obj: &mut Value) {
    if !def.is_core("secrets") {
        return;
    }
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(sd)) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        let data = data.as_object_mut().expect("data object");
        for (k, v) in sd {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            data.insert(k, json!(STANDARD.encode(text)));
        }
    }
}

/// RFC 7386.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn unescape_pointer(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Splits a JSON pointer into (parent pointer, last token).
fn split_pointer(ptr: &str) -> Result<(String, String), String> {
    let i = ptr
        .rfind('/')
        .ok_or_else(|| format!("invalid JSON pointer {ptr:?}"))?;
    Ok((ptr[..i].to_string(), unescape_pointer(&ptr[i + 1..])))
}

fn pointer_remove(doc: &mut Value, ptr: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(ptr)?;
    let p = doc
        .pointer_mut(&parent)
        .ok_or_else(|| format!("path {ptr:?} does not exist"))?;
    match p {
        Value::Object(m) => m
            .remove(&last)
            .ok_or_else(|| format!("path {ptr:?} does not exist")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("bad index in {ptr:?}"))?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(format!("index out of range in {ptr:?}"))
            }
        }
        _ => Err(format!("path {ptr:?} does not exist")),
    }
}

fn pointer_add(doc: &mut Value, ptr: &str, v: Value) -> Result<(), String> {
    if ptr.is_empty() {
        *doc = v;
        return Ok(());
    }
    let (parent, last) = split_pointer(ptr)?;
    let p = doc
        .pointer_mut(&parent)
        .ok_or_else(|| format!("path {parent:?} does not exist"))?;
    match p {
        Value::Object(m) => {
            m.insert(last, v);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(v);
                return Ok(());
            }
            let i: usize = last.parse().map_err(|_| format!("bad index in {ptr:?}"))?;
            if i > a.len() {
                return Err(format!("index out of range in {ptr:?}"));
            }
            a.insert(i, v);
            Ok(())
        }
        _ => Err(format!("path {parent:?} is not a container")),
    }
}

/// RFC 6902.
fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    for op in ops {
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("missing value for {path:?}"))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("missing from for {path:?}"))
        };
        match op.get("op").and_then(Value::as_str).unwrap_or_default() {
            "add" => pointer_add(doc, path, value()?)?,
            "remove" => {
                pointer_remove(doc, path)?;
            }
            "replace" => {
                pointer_remove(doc, path)?;
                pointer_add(doc, path, value()?)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            "move" => {
                let v = pointer_remove(doc, &from()?)?;
                pointer_add(doc, path, v)?;
            }
            "copy" => {
                let v = doc
                    .pointer(&from()?)
                    .cloned()
                    .ok_or_else(|| format!("copy from a missing path for {path:?}"))?;
                pointer_add(doc, path, v)?;
            }
            other => return Err(format!("unexpected kind: {other}")),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Field ownership (server-side apply, coarse)

/// The tracked fields of `obj` with their values.
fn field_values(obj: &Value) -> BTreeMap<FieldPath, Value> {
    let mut out = BTreeMap::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        match (k.as_str(), v) {
            ("apiVersion" | "kind" | "status", _) => {}
            ("metadata", Value::Object(meta)) => {
                for sect in ["labels", "annotations"] {
                    if let Some(Value::Object(m)) = meta.get(sect) {
                        for (lk, lv) in m {
                            out.insert(
                                vec!["metadata".into(), sect.into(), lk.clone()],
                                lv.clone(),
                            );
                        }
                    }
                }
            }
            ("metadata", _) => {}
            ("data" | "stringData" | "binaryData" | "spec", Value::Object(m)) => {
                for (dk, dv) in m {
                    out.insert(vec![k.clone(), dk.clone()], dv.clone());
                }
            }
            _ => {
                out.insert(vec![k.clone()], v.clone());
            }
        }
    }
    out
}

fn get_path<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |cur, seg| cur.get(seg))
}

fn set_path(obj: &mut Value, path: &[String], v: Value) {
    let mut cur = obj;
    for seg in &path[..path.len() - 1] {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = cur
            .as_object_mut()
            .expect("object")
            .entry(seg.clone())
            .or_insert_with(|| json!({}));
    }
    if !cur.is_object() {
        *cur = json!({});
    }
    cur.as_object_mut()
        .expect("object")
        .insert(path[path.len() - 1].clone(), v);
}

/// Removes a field; maps left empty (`data`, `labels`, …) are dropped, as their Go types
/// omit them when empty.
fn remove_path(obj: &mut Value, path: &[String]) {
    fn go(cur: &mut Value, path: &[String]) {
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if path.len() == 1 {
            map.remove(&path[0]);
            return;
        }
        if let Some(child) = map.get_mut(&path[0]) {
            go(child, &path[1..]);
            let prunable = ["data", "binaryData", "stringData", "labels", "annotations"];
            if child.as_object().is_some_and(JsonMap::is_empty)
                && prunable.contains(&path[0].as_str())
            {
                map.remove(&path[0]);
            }
        }
    }
    go(obj, path);
}

fn touch_manager(stored: &mut Stored, def: &ResourceDef, mgr: &Manager) {
    stored
        .managers
        .insert(mgr.clone(), (def.api_version(), now()));
}

/// A non-apply write: `mgr` takes the fields whose value it changed; removed fields lose
/// their owners.
fn track_update(def: &ResourceDef, old: Option<&Stored>, new: &mut Stored, mgr: &Manager) {
    let before = old.map(|o| field_values(&o.obj)).unwrap_or_default();
    let after = field_values(&new.obj);
    new.owners = old.map(|o| o.owners.clone()).unwrap_or_default();
    new.managers = old.map(|o| o.managers.clone()).unwrap_or_default();
    let mut changed = false;
    for (p, v) in &after {
        if before.get(p) != Some(v) {
            new.owners.insert(p.clone(), BTreeSet::from([mgr.clone()]));
            changed = true;
        }
    }
    new.owners.retain(|p, _| after.contains_key(p));
    if changed {
        touch_manager(new, def, mgr);
    }
    prune_managers(new);
}

fn prune_managers(s: &mut Stored) {
    let live: BTreeSet<&Manager> = s.owners.values().flatten().collect();
    s.managers.retain(|m, _| live.contains(m));
}

/// `metadata.managedFields`, simplified (one entry per manager, `FieldsV1` of the tracked
/// fields).
fn managed_fields(s: &Stored) -> Value {
    let mut entries = Vec::new();
    for (mgr, (api_version, time)) in &s.managers {
        let mut tree = json!({});
        for (path, owners) in &s.owners {
            if !owners.contains(mgr) {
                continue;
            }
            let mut cur = &mut tree;
            for seg in path {
                cur = cur
                    .as_object_mut()
                    .expect("object")
                    .entry(format!("f:{seg}"))
                    .or_insert_with(|| json!({}));
            }
        }
        entries.push(json!({
            "manager": mgr.name,
            "operation": if mgr.apply { "Apply" } else { "Update" },
            "apiVersion": api_version,
            "time": time,
            "fieldsType": "FieldsV1",
            "fieldsV1": tree,
        }));
    }
    Value::Array(entries)
}

/// Server-side apply of `applied` by `mgr` onto `old` (or a new object). `Err`: the
/// conflicts, as (owner, field).
fn server_side_apply(
    def: &ResourceDef,
    old: Option<&Stored>,
    applied: &Value,
    mgr: &Manager,
    force: bool,
) -> Result<Stored, Vec<(Manager, FieldPath)>> {
    let mut new = old.cloned().unwrap_or_default();
    if old.is_none() {
        new.obj = json!({"metadata": {}});
    }
    let applied_fields = field_values(applied);
    let mut conflicts = Vec::new();
    for (path, value) in &applied_fields {
        let Some(owners) = new.owners.get_mut(path) else {
            continue;
        };
        let others: Vec<Manager> = owners.iter().filter(|m| *m != mgr).cloned().collect();
        if others.is_empty() || get_path(&new.obj, path) == Some(value) {
            continue; // unowned by others, or the same value: shared ownership
        }
        if force {
            owners.retain(|m| m == mgr);
        } else {
            conflicts.extend(others.into_iter().map(|o| (o, path.clone())));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    // The heart of SSA: what this manager owned and no longer applies goes away, unless
    // someone else owns it too.
    let previously: Vec<FieldPath> = new
        .owners
        .iter()
        .filter(|(_, o)| o.contains(mgr))
        .map(|(p, _)| p.clone())
        .collect();
    for path in previously {
        if applied_fields.contains_key(&path) {
            continue;
        }
        let owners = new.owners.get_mut(&path).expect("owned path");
        owners.remove(mgr);
        if owners.is_empty() {
            new.owners.remove(&path);
            remove_path(&mut new.obj, &path);
        }
    }
    for (path, value) in applied_fields {
        set_path(&mut new.obj, &path, value);
        new.owners.entry(path).or_default().insert(mgr.clone());
    }
    // Untracked metadata the applier sets is taken as is.
    if let Some(Value::Object(meta)) = applied.get("metadata") {
        for k in ["ownerReferences", "finalizers", "generateName"] {
            if let Some(v) = meta.get(k) {
                meta_mut(&mut new.obj).insert(k.into(), v.clone());
            }
        }
    }
    touch_manager(&mut new, def, mgr);
    prune_managers(&mut new);
    Ok(new)
}

// ---------------------------------------------------------------------------------------
// Status answers

fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    Response::json(code, &s)
}

fn details(def: &ResourceDef, name: &str) -> Value {
    let mut d = JsonMap::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !def.group.is_empty() {
        d.insert("group".into(), json!(def.group));
    }
    d.insert("kind".into(), json!(def.plural));
    Value::Object(d)
}

fn unauthorized() -> Response {
    status(401, "Unauthorized", "Unauthorized", None)
}

fn page_not_found() -> Response {
    Response::text(404, "text/plain; charset=utf-8", PAGE_NOT_FOUND)
        .with_header("x-content-type-options", "nosniff")
}

fn resource_not_found() -> Response {
    status(404, "NotFound", RESOURCE_NOT_FOUND, Some(json!({})))
}

fn not_found(def: &ResourceDef, name: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("{} {name:?} not found", def.qualified_resource()),
        Some(details(def, name)),
    )
}

fn already_exists(def: &ResourceDef, name: &str) -> Response {
    status(
        409,
        "AlreadyExists",
        &format!("{} {name:?} already exists", def.qualified_resource()),
        Some(details(def, name)),
    )
}

fn conflict(def: &ResourceDef, name: &str, why: &str) -> Response {
    status(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {} {name:?}: {why}",
            def.qualified_resource()
        ),
        Some(details(def, name)),
    )
}

fn bad_request(message: &str) -> Response {
    status(400, "BadRequest", message, None)
}

fn method_not_allowed() -> Response {
    status(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

/// `NewInvalid`: `Kind "name" is invalid: field: error`.
fn invalid(def: &ResourceDef, name: &str, field: &str, error: &str, cause: &str) -> Response {
    status(
        422,
        "Invalid",
        &format!(
            "{} {name:?} is invalid: {field}: {error}",
            def.qualified_kind()
        ),
        Some(json!({
            "name": name,
            "group": def.group,
            "kind": def.kind,
            "causes": [{"reason": cause, "message": error, "field": field}],
        })),
    )
}

/// `NewForbidden`: `resource "name" is forbidden: why` (no name: `resource is forbidden`).
fn forbidden_text(def: &ResourceDef, name: &str, why: &str) -> String {
    if name.is_empty() {
        format!("{} is forbidden: {why}", def.qualified_resource())
    } else {
        format!("{} {name:?} is forbidden: {why}", def.qualified_resource())
    }
}

fn rbac_forbidden(
    user: &str,
    verb: &str,
    def: &ResourceDef,
    sub: &str,
    ns: &str,
    name: &str,
) -> Response {
    let resource = if sub.is_empty() {
        def.plural.clone()
    } else {
        format!("{}/{sub}", def.plural)
    };
    let scope = if ns.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {ns:?}")
    };
    let why = format!(
        "User {user:?} cannot {verb} resource {resource:?} in API group {:?} {scope}",
        def.group
    );
    status(
        403,
        "Forbidden",
        &forbidden_text(def, name, &why),
        Some(details(def, name)),
    )
}

fn apply_conflict(conflicts: &[(Manager, FieldPath)], api_version: &str) -> Response {
    let path_str = |p: &FieldPath| format!(".{}", p.join("."));
    let message = if conflicts.len() == 1 {
        let (m, p) = &conflicts[0];
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            m.display(api_version),
            path_str(p)
        )
    } else {
        let mut by_manager: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (m, p) in conflicts {
            by_manager
                .entry(m.display(api_version))
                .or_default()
                .push(path_str(p));
        }
        let mut lines = Vec::new();
        for (m, paths) in by_manager {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(paths.into_iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| {
            json!({"reason": "FieldManagerConflict",
                   "message": format!("conflict with {}", m.display(api_version)),
                   "field": path_str(p)})
        })
        .collect();
    status(409, "Conflict", &message, Some(json!({"causes": causes})))
}

/// The `Warning` header value for `text` (`299 - "text"`, quoted like Go's `%q`).
fn warning_header(text: &str) -> String {
    let mut q = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => q.push_str(&format!("\\u{:04x}", c as u32)),
            c => q.push(c),
        }
    }
    format!("299 - \"{q}\"")
}

fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        resp = resp.with_header("warning", &warning_header(w));
    }
    resp
}

// ---------------------------------------------------------------------------------------
// Routing

fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `dryRun` from the query (or, for DELETE, the `DeleteOptions` body).
fn dry_run_of(req: &Request) -> Result<bool, Response> {
    let mut values: Vec<String> = Vec::new();
    if let Some(q) = req.query() {
        for kv in q.split('&') {
            if let Some(v) = kv.strip_prefix("dryRun=") {
                values.push(decode_segment(v));
            }
        }
    }
    if req.method == "DELETE"
        && let Some(Value::Array(a)) = req.json().and_then(|b| b.get("dryRun").cloned())
    {
        values.extend(a.iter().filter_map(Value::as_str).map(str::to_string));
    }
    for v in &values {
        if v != "All" {
            return Err(status(
                400,
                "BadRequest",
                &format!("Invalid dryRun: Unsupported value: {v:?}: supported values: \"All\""),
                None,
            ));
        }
    }
    Ok(!values.is_empty())
}

fn handle(state: &Mutex<State>, req: &Request) -> Response {
    let mut guard = lock(state);
    let st = &mut *guard;
    let segs: Vec<String> = req
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let is_ssar = matches!(
        segs.as_slice(),
        [
            "apis",
            "authorization.k8s.io",
            _,
            "selfsubjectaccessreviews"
        ]
    );
    let dry = match dry_run_of(req) {
        Ok(d) => d,
        Err(r) => return r,
    };
    if req.is_mutating() && !is_ssar {
        if dry {
            st.dry_runs += 1;
        } else {
            st.mutations += 1;
        }
    }
    let expected = format!("Bearer {}", st.token);
    if req.header("authorization") != Some(expected.as_str()) {
        return unauthorized();
    }
    let aggregated = req
        .header("accept")
        .is_some_and(|a| a.contains("as=APIGroupDiscoveryList"));
    match segs.as_slice() {
        ["version"] => Response::json(
            200,
            &json!({
                "major": "1", "minor": "34", "gitVersion": SERVER_VERSION,
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean", "buildDate": "2025-09-01T00:00:00Z",
                "goVersion": "go1.24.6", "compiler": "gc", "platform": "linux/amd64",
            }),
        ),
        ["api"] if aggregated => aggregated_discovery(st, true),
        ["api"] => Response::json(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                    "serverAddress": "127.0.0.1:6443"}]}),
        ),
        ["apis"] if aggregated => aggregated_discovery(st, false),
        ["apis"] => Response::json(200, &group_list(st)),
        ["api", v] if st.group_version_served("", v) => resource_list(st, "", v),
        ["apis", g] => match group_list(st)["groups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|x| x["name"] == *g).cloned())
        {
            Some(mut group) => {
                group["kind"] = json!("APIGroup");
                group["apiVersion"] = json!("v1");
                Response::json(200, &group)
            }
            None => page_not_found(),
        },
        ["apis", g, v] if st.group_version_served(g, v) => resource_list(st, g, v),
        ["api", v, rest @ ..] if st.group_version_served("", v) && !rest.is_empty() => {
            resource_request(st, req, "", v, rest, dry)
        }
        ["apis", g, v, rest @ ..] if st.group_version_served(g, v) && !rest.is_empty() => {
            resource_request(st, req, g, v, rest, dry)
        }
        _ => page_not_found(),
    }
}

fn group_list(st: &State) -> Value {
    let mut groups: Vec<Value> = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for d in st.resources.iter().filter(|d| !d.group.is_empty()) {
        if seen.contains(&(d.group.clone(), d.version.clone())) {
            continue;
        }
        seen.push((d.group.clone(), d.version.clone()));
        let gv = json!({"groupVersion": d.api_version(), "version": d.version});
        match groups.iter_mut().find(|g| g["name"] == d.group.as_str()) {
            Some(g) => {
                if let Some(vs) = g["versions"].as_array_mut() {
                    vs.push(gv);
                }
            }
            None => groups.push(json!({"name": d.group, "versions": [gv.clone()],
                                        "preferredVersion": gv})),
        }
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(st: &State, group: &str, version: &str) -> Response {
    let mut resources = Vec::new();
    for d in st
        .resources
        .iter()
        .filter(|d| d.group == group && d.version == version)
    {
        resources.push(json!({
            "name": d.plural,
            "singularName": d.kind.to_ascii_lowercase(),
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": d.verbs(),
        }));
        for sub in ["status", "ephemeralcontainers"] {
            if d.subresource_allowed(sub) {
                resources.push(json!({
                    "name": format!("{}/{sub}", d.plural),
                    "singularName": "",
                    "namespaced": d.namespaced,
                    "kind": d.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Response::json(
        200,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": resources}),
    )
}

/// `Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`.
fn aggregated_discovery(st: &State, core: bool) -> Response {
    let mut items: Vec<Value> = Vec::new();
    for d in st.resources.iter().filter(|d| d.group.is_empty() == core) {
        let subs: Vec<Value> = ["status", "ephemeralcontainers"]
            .iter()
            .filter(|s| d.subresource_allowed(s))
            .map(|s| {
                json!({"subresource": s,
                       "responseKind": {"group": d.group, "version": d.version, "kind": d.kind},
                       "verbs": ["get", "patch", "update"]})
            })
            .collect();
        let res = json!({
            "resource": d.plural,
            "responseKind": {"group": d.group, "version": d.version, "kind": d.kind},
            "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
            "singularResource": d.kind.to_ascii_lowercase(),
            "verbs": d.verbs(),
            "subresources": subs,
        });
        let item = match items
            .iter_mut()
            .find(|i| i["metadata"]["name"] == d.group.as_str())
        {
            Some(i) => i,
            None => {
                items.push(json!({"metadata": {"name": d.group}, "versions": []}));
                items.last_mut().expect("just pushed")
            }
        };
        let versions = item["versions"].as_array_mut().expect("versions array");
        match versions
            .iter_mut()
            .find(|v| v["version"] == d.version.as_str())
        {
            Some(v) => v["resources"]
                .as_array_mut()
                .expect("resources array")
                .push(res),
            None => versions.push(json!({"version": d.version, "resources": [res],
                                          "freshness": "Current"})),
        }
    }
    Response::text(
        200,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
               "metadata": {}, "items": items})
        .to_string(),
    )
}

/// A request for a resource: which type, namespace, name and subresource.
struct Target {
    def: ResourceDef,
    /// `""`: cluster-scoped, or a list across namespaces.
    ns: String,
    name: String,
    sub: String,
}

fn parse_target(st: &State, group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let namespaced_def = |p: &str| st.def(group, version, p).filter(|d| d.namespaced).cloned();
    let target = |def: ResourceDef, ns: &str, name: &str, sub: &str| Target {
        def,
        ns: ns.into(),
        name: name.into(),
        sub: sub.into(),
    };
    let t = match rest {
        ["namespaces", ns, p, tail @ ..] if tail.len() <= 2 && namespaced_def(p).is_some() => {
            let def = namespaced_def(p)?;
            match tail {
                [] => target(def, ns, "", ""),
                [name] => target(def, ns, name, ""),
                [name, sub] => target(def, ns, name, sub),
                _ => return None,
            }
        }
        [p] => target(st.def(group, version, p)?.clone(), "", "", ""),
        [p, name] => target(
            st.def(group, version, p).filter(|d| !d.namespaced)?.clone(),
            "",
            name,
            "",
        ),
        [p, name, sub] => target(
            st.def(group, version, p).filter(|d| !d.namespaced)?.clone(),
            "",
            name,
            sub,
        ),
        _ => return None,
    };
    if !t.sub.is_empty() && !t.def.subresource_allowed(&t.sub) {
        return None;
    }
    Some(t)
}

/// A write in progress.
struct Call<'a> {
    req: &'a Request,
    def: ResourceDef,
    ns: String,
    name: String,
    sub: String,
    dry: bool,
    /// The field manager of a non-apply write.
    manager: String,
}

fn default_manager(req: &Request) -> String {
    if let Some(m) = req.query_param("fieldManager").filter(|m| !m.is_empty()) {
        return m;
    }
    // The server's default: the User-Agent's first product token.
    req.header("user-agent")
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.trim().is_empty())
        .map_or_else(|| "unknown".to_string(), |s| s.trim().to_string())
}

fn resource_request(
    st: &mut State,
    req: &Request,
    group: &str,
    version: &str,
    rest: &[&str],
    dry: bool,
) -> Response {
    let Some(t) = parse_target(st, group, version, rest) else {
        return resource_not_found();
    };
    let watch = req
        .query_param("watch")
        .is_some_and(|w| w == "true" || w == "1");
    let verb = match (req.method.as_str(), t.name.is_empty()) {
        ("GET", false) => "get",
        ("GET", true) if watch => "watch",
        ("GET", true) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", false) => "delete",
        ("DELETE", true) => "deletecollection",
        _ => return method_not_allowed(),
    };
    if t.def.plural == "selfsubjectaccessreviews" {
        return match (req.method.as_str(), t.name.is_empty()) {
            ("POST", true) => self_subject_access_review(st, req),
            _ => method_not_allowed(),
        };
    }
    let resource = if t.sub.is_empty() {
        t.def.plural.clone()
    } else {
        format!("{}/{}", t.def.plural, t.sub)
    };
    if st.is_forbidden(verb, group, &resource, &t.ns) {
        let user = st.user.clone();
        return rbac_forbidden(&user, verb, &t.def, &t.sub, &t.ns, &t.name);
    }
    let call = Call {
        req,
        manager: default_manager(req),
        def: t.def,
        ns: t.ns,
        name: t.name,
        sub: t.sub,
        dry,
    };
    match verb {
        "get" => match st.get(&call.def, &call.ns, &call.name) {
            Some(s) => Response::json(200, &s.obj),
            None => not_found(&call.def, &call.name),
        },
        "list" => list(st, req, &call.def, &call.ns),
        "create" if call.name.is_empty() && (call.def.namespaced != call.ns.is_empty()) => {
            create(st, &call)
        }
        "update" if !call.name.is_empty() => update(st, &call),
        "patch" if !call.name.is_empty() => patch(st, &call),
        "delete" if call.sub.is_empty() => delete(st, &call),
        _ => method_not_allowed(),
    }
}

fn self_subject_access_review(st: &State, req: &Request) -> Response {
    let Some(mut body) = req.json().filter(Value::is_object) else {
        return bad_request(
            "the body of the request could not be decoded as a SelfSubjectAccessReview",
        );
    };
    let allowed = match body.pointer("/spec/resourceAttributes") {
        Some(ra) => {
            let mut resource = str_at(ra, &["resource"]).to_string();
            let sub = str_at(ra, &["subresource"]);
            if !sub.is_empty() {
                resource = format!("{resource}/{sub}");
            }
            !st.is_forbidden(
                str_at(ra, &["verb"]),
                str_at(ra, &["group"]),
                &resource,
                str_at(ra, &["namespace"]),
            )
        }
        None => true,
    };
    body["apiVersion"] = json!("authorization.k8s.io/v1");
    body["kind"] = json!("SelfSubjectAccessReview");
    body["metadata"] = json!({"creationTimestamp": null});
    body["status"] = if allowed {
        json!({"allowed": true, "reason": "RBAC: allowed by the fake API server"})
    } else {
        json!({"allowed": false})
    };
    Response::json(201, &body)
}

// ---------------------------------------------------------------------------------------
// Lists and selectors

#[derive(Debug)]
enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_label_selector(s: &str) -> Result<Vec<LabelReq>, String> {
    let mut reqs = Vec::new();
    for part in split_top_level(s) {
        let set_op = |op: &str| -> Option<(String, Vec<String>)> {
            let i = part.find(op)?;
            let key = part[..i].trim().to_string();
            let rest = part[i + op.len()..].trim();
            let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
            Some((
                key,
                inner.split(',').map(|v| v.trim().to_string()).collect(),
            ))
        };
        if let Some((k, vs)) = set_op(" notin ") {
            reqs.push(LabelReq::NotIn(k, vs));
        } else if let Some((k, vs)) = set_op(" in ") {
            reqs.push(LabelReq::In(k, vs));
        } else if let Some((k, v)) = part.split_once("!=") {
            reqs.push(LabelReq::Ne(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            reqs.push(LabelReq::Eq(k.trim().into(), v.trim().into()));
        } else if let Some(k) = part.strip_prefix('!') {
            reqs.push(LabelReq::NotExists(k.trim().into()));
        } else if part
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./".contains(c))
        {
            reqs.push(LabelReq::Exists(part.clone()));
        } else {
            return Err(format!("unable to parse requirement: {part:?}"));
        }
    }
    Ok(reqs)
}

fn labels_match(obj: &Value, reqs: &[LabelReq]) -> bool {
    let labels = obj.pointer("/metadata/labels");
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
        LabelReq::Ne(k, v) => get(k) != Some(v.as_str()),
        LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
        LabelReq::Exists(k) => get(k).is_some(),
        LabelReq::NotExists(k) => get(k).is_none(),
    })
}

/// `fieldSelector`: `a.b=v`, `a.b==v`, `a.b!=v`.
fn fields_match(obj: &Value, sel: &[(String, bool, String)]) -> bool {
    sel.iter().all(|(path, eq, want)| {
        let mut cur = obj;
        let mut found = true;
        for seg in path.split('.') {
            match cur.get(seg) {
                Some(x) => cur = x,
                None => {
                    found = false;
                    break;
                }
            }
        }
        let have = if found {
            cur.as_str().map_or_else(|| cur.to_string(), str::to_string)
        } else {
            String::new()
        };
        (have == *want) == *eq
    })
}

fn parse_field_selector(s: &str) -> Vec<(String, bool, String)> {
    split_top_level(s)
        .into_iter()
        .filter_map(|p| {
            if let Some((k, v)) = p.split_once("!=") {
                Some((k.trim().into(), false, v.trim().into()))
            } else {
                p.split_once("==")
                    .or_else(|| p.split_once('='))
                    .map(|(k, v)| (k.trim().into(), true, v.trim().into()))
            }
        })
        .collect()
}

fn encode_continue(rv: u64, key: &ObjKey) -> String {
    let token =
        json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{}/{}\u{0}", key.0, key.1)});
    URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<ObjKey, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err("unsupported continue token version".into());
    }
    let start = v["start"].as_str().ok_or("no start key")?;
    let start = start.strip_suffix('\u{0}').unwrap_or(start);
    let (ns, name) = start.split_once('/').ok_or("malformed start key")?;
    Ok((ns.to_string(), name.to_string()))
}

fn list_item(def: &ResourceDef, obj: &Value) -> Value {
    let mut item = obj.clone();
    if !def.custom
        && let Some(m) = item.as_object_mut()
    {
        // The real server omits them from the items of built-in lists.
        m.remove("apiVersion");
        m.remove("kind");
    }
    item
}

fn list(st: &State, req: &Request, def: &ResourceDef, ns: &str) -> Response {
    let limit = match req.query_param("limit").filter(|l| !l.is_empty()) {
        Some(l) => match l.parse::<i64>() {
            Ok(n) => n.max(0) as usize,
            Err(_) => return bad_request(&format!("limit: Invalid value: {l:?}")),
        },
        None => 0,
    };
    let start = match req.query_param("continue").filter(|c| !c.is_empty()) {
        Some(c) => match decode_continue(&c) {
            Ok(k) => Some(k),
            Err(e) => return bad_request(&format!("continue key is not valid: {e}")),
        },
        None => None,
    };
    let labels = match req
        .query_param("labelSelector")
        .filter(|s| !s.trim().is_empty())
    {
        Some(s) => match parse_label_selector(&s) {
            Ok(r) => Some(r),
            Err(e) => return bad_request(&format!("unable to parse requirement: {e}")),
        },
        None => None,
    };
    let fields = req
        .query_param("fieldSelector")
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_field_selector(&s));
    let selective = labels.is_some() || fields.is_some();
    let matches = |s: &Stored| {
        labels.as_ref().is_none_or(|l| labels_match(&s.obj, l))
            && fields.as_ref().is_none_or(|f| fields_match(&s.obj, f))
    };

    let mut items = String::new();
    let mut count = 0usize;
    let mut last: Option<&ObjKey> = None;
    let mut remaining = 0usize;
    if let Some(coll) = st.store.get(&def.key()) {
        // Keys are sorted (namespace, name): a page is a range scan from the continue key.
        let lower = match (&start, ns.is_empty()) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, false) => Bound::Included((ns.to_string(), String::new())),
            (None, true) => Bound::Unbounded,
        };
        let mut iter = coll
            .range((lower, Bound::Unbounded))
            .take_while(|((kns, _), _)| ns.is_empty() || kns == ns)
            .filter(|(_, s)| matches(s));
        for (k, s) in iter.by_ref() {
            if count > 0 {
                items.push(',');
            }
            items.push_str(&s.item_json);
            count += 1;
            last = Some(k);
            if limit > 0 && count == limit {
                break;
            }
        }
        remaining = iter.count();
    }
    let mut meta = json!({"resourceVersion": st.rv.to_string()});
    if limit > 0
        && remaining > 0
        && let Some(k) = last
    {
        meta["continue"] = json!(encode_continue(st.rv, k));
        if !selective {
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    let envelope = json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(),
                          "metadata": meta, "items": ITEMS_PLACEHOLDER})
    .to_string();
    let body = envelope.replacen(
        &Value::String(ITEMS_PLACEHOLDER.into()).to_string(),
        &format!("[{items}]"),
        1,
    );
    Response::text(200, "application/json", body)
}

/// Stands for the items in the serialized list envelope (spliced in as text).
const ITEMS_PLACEHOLDER: &str = "\u{0}items\u{0}";

// ---------------------------------------------------------------------------------------
// Writes

fn body_json(req: &Request) -> Result<Value, Response> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(bad_request("the body of the request must be a JSON object")),
        Err(e) => Err(bad_request(&format!(
            "the body of the request was in an unknown format: {e}"
        ))),
    }
}

/// Checks the body's `apiVersion`/`kind` (when given) and sets them.
fn check_type(def: &ResourceDef, obj: &mut Value) -> Result<(), Response> {
    let api_version = str_at(obj, &["apiVersion"]);
    let kind = str_at(obj, &["kind"]);
    if (!api_version.is_empty() && api_version != def.api_version())
        || (!kind.is_empty() && kind != def.kind)
    {
        return Err(bad_request(&format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    set_type(def, obj);
    Ok(())
}

/// Checks/sets `metadata.namespace` against the URL.
fn check_namespace(call: &Call, obj: &mut Value) -> Result<(), Response> {
    let ns = str_at(obj, &["metadata", "namespace"]).to_string();
    if call.def.namespaced {
        if !ns.is_empty() && ns != call.ns {
            return Err(bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta_mut(obj).insert("namespace".into(), json!(call.ns));
    } else {
        meta_mut(obj).remove("namespace");
    }
    Ok(())
}

/// The API server compiles a policy's expressions when it is written.
fn check_policy(call: &Call, obj: &Value) -> Result<(), Response> {
    if call.def.group != ADMISSION_GROUP || call.def.plural != "validatingadmissionpolicies" {
        return Ok(());
    }
    vap::compile_check(obj).map_err(|(field, err)| {
        let error = format!(
            "Invalid value: {:?}: compilation failed: {}",
            err.expression, err.message
        );
        invalid(&call.def, &call.name, &field, &error, "FieldValueInvalid")
    })
}

/// Strips server-managed and volatile fields for "did anything change?".
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    o
}

/// Everything but `metadata` and `status`: what `generation` tracks.
fn generation_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

fn create(st: &mut State, call: &Call) -> Response {
    let mut obj = match body_json(call.req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = check_type(&call.def, &mut obj).and_then(|()| check_namespace(call, &mut obj)) {
        return r;
    }
    let meta = meta_mut(&mut obj);
    let mut name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        let generate = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if generate.is_empty() {
            return invalid(
                &call.def,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
                "FieldValueRequired",
            );
        }
        name = format!("{generate}{}", &new_uid()[..5]);
        meta.insert("name".into(), json!(name));
    }
    meta.remove("resourceVersion");
    meta.remove("managedFields");
    meta.remove("deletionTimestamp");
    meta.insert("uid".into(), json!(new_uid()));
    meta.insert("creationTimestamp".into(), json!(now()));
    if call.def.has_generation() {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    normalize_secret(&call.def, &mut obj);
    let call = Call {
        name,
        req: call.req,
        def: call.def.clone(),
        ns: call.ns.clone(),
        sub: String::new(),
        dry: call.dry,
        manager: call.manager.clone(),
    };
    if let Err(r) = check_policy(&call, &obj) {
        return r;
    }
    let mut stored = Stored {
        obj,
        ..Stored::default()
    };
    let mgr = Manager {
        name: call.manager.clone(),
        apply: false,
    };
    track_update(&call.def, None, &mut stored, &mgr);
    finish(st, &call, "CREATE", None, stored)
}

/// Builds the new object of an update through `call.sub` from the stored one and the
/// incoming one (the client's, or the patched result).
fn compose(call: &Call, old: &Value, incoming: Value) -> Result<Value, Response> {
    match call.sub.as_str() {
        "" => {
            let mut new = incoming;
            let old_meta = old.get("metadata").cloned().unwrap_or_default();
            let meta = meta_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match old_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            meta.remove("managedFields");
            if call.def.has_status() {
                let m = new.as_object_mut().expect("object");
                match old.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
            Ok(new)
        }
        "status" => {
            let mut new = old.clone();
            match incoming.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    new.as_object_mut().expect("object").remove("status");
                }
            }
            Ok(new)
        }
        "ephemeralcontainers" => {
            let mut new = old.clone();
            let incoming_ec = incoming
                .pointer("/spec/ephemeralContainers")
                .cloned()
                .unwrap_or_else(|| json!([]));
            let old_ec = old
                .pointer("/spec/ephemeralContainers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let new_list = incoming_ec.as_array().cloned().unwrap_or_default();
            for (i, o) in old_ec.iter().enumerate() {
                let name = str_at(o, &["name"]);
                match new_list.iter().find(|n| str_at(n, &["name"]) == name) {
                    None => {
                        return Err(invalid(
                            &call.def,
                            &call.name,
                            "spec.ephemeralContainers",
                            &format!(
                                "Forbidden: existing ephemeral containers {name:?} may not be removed"
                            ),
                            "FieldValueForbidden",
                        ));
                    }
                    Some(n) if n != o => {
                        return Err(invalid(
                            &call.def,
                            &call.name,
                            &format!("spec.ephemeralContainers[{i}]"),
                            &format!(
                                "Forbidden: existing ephemeral containers {name:?} may not be changed"
                            ),
                            "FieldValueForbidden",
                        ));
                    }
                    Some(_) => {}
                }
            }
            if !new["spec"].is_object() {
                new["spec"] = json!({});
            }
            if new_list.is_empty() {
                new["spec"]
                    .as_object_mut()
                    .expect("spec")
                    .remove("ephemeralContainers");
            } else {
                new["spec"]["ephemeralContainers"] = Value::Array(new_list);
            }
            Ok(new)
        }
        _ => Err(resource_not_found()),
    }
}

/// Checks shared by every update: immutability, generation, policy compilation.
fn prepare_update(call: &Call, old: &Value, new: &mut Value) -> Result<(), Response> {
    if (call.def.is_core("configmaps") || call.def.is_core("secrets"))
        && old["immutable"] == json!(true)
    {
        for field in ["data", "binaryData"] {
            if old.get(field) != new.get(field) {
                return Err(invalid(
                    &call.def,
                    &call.name,
                    field,
                    "Forbidden: field is immutable when `immutable` is set",
                    "FieldValueForbidden",
                ));
            }
        }
        if new["immutable"] != json!(true) {
            return Err(invalid(
                &call.def,
                &call.name,
                "immutable",
                "Forbidden: field is immutable when `immutable` is set",
                "FieldValueForbidden",
            ));
        }
    }
    if call.def.has_generation() && generation_part(old) != generation_part(new) {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta_mut(new).insert("generation".into(), json!(g + 1));
    }
    check_policy(call, new)
}

fn take_conflict(st: &mut State, call: &Call) -> bool {
    if call.dry || st.conflict_next == 0 {
        return false;
    }
    st.conflict_next -= 1;
    true
}

fn update(st: &mut State, call: &Call) -> Response {
    let mut body = match body_json(call.req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) = check_type(&call.def, &mut body).and_then(|()| check_namespace(call, &mut body))
    {
        return r;
    }
    let body_name = str_at(&body, &["metadata", "name"]).to_string();
    if body_name.is_empty() {
        meta_mut(&mut body).insert("name".into(), json!(call.name));
    } else if body_name != call.name {
        return bad_request(&format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            call.name
        ));
    }
    let Some(old) = st.get(&call.def, &call.ns, &call.name).cloned() else {
        return not_found(&call.def, &call.name);
    };
    let rv = str_at(&body, &["metadata", "resourceVersion"]);
    if !rv.is_empty() && rv != str_at(&old.obj, &["metadata", "resourceVersion"]) {
        return conflict(&call.def, &call.name, OPTIMISTIC_LOCK);
    }
    let uid = str_at(&body, &["metadata", "uid"]);
    let old_uid = str_at(&old.obj, &["metadata", "uid"]);
    if !uid.is_empty() && uid != old_uid {
        return conflict(
            &call.def,
            &call.name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}"
            ),
        );
    }
    if take_conflict(st, call) {
        return conflict(&call.def, &call.name, OPTIMISTIC_LOCK);
    }
    store_update(st, call, old, body)
}

/// Stores the result of a PUT or a non-apply PATCH (`body`: the whole new object): the
/// caller's manager (an `Update` operation) takes the fields it changed.
fn store_update(st: &mut State, call: &Call, old: Stored, mut body: Value) -> Response {
    normalize_secret(&call.def, &mut body);
    let mut new = match compose(call, &old.obj, body) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if let Err(r) = prepare_update(call, &old.obj, &mut new) {
        return r;
    }
    let mut stored = Stored {
        obj: new,
        ..Stored::default()
    };
    let mgr = Manager {
        name: call.manager.clone(),
        apply: false,
    };
    track_update(&call.def, Some(&old), &mut stored, &mgr);
    finish(st, call, "UPDATE", Some(old), stored)
}

fn patch(st: &mut State, call: &Call) -> Response {
    let content_type = call
        .req
        .header("content-type")
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let is_apply = content_type == "application/apply-patch+yaml";
    let force = call.req.query_param("force");
    if !is_apply && force.is_some() {
        return status(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
            Some(json!({"group": "meta.k8s.io", "kind": "PatchOptions",
                        "causes": [{"reason": "FieldValueForbidden",
                                    "message": "Forbidden: may not be specified for non-apply patch",
                                    "field": "force"}]})),
        );
    }
    if is_apply {
        return apply(st, call, force.is_some_and(|f| f == "true"));
    }
    let patch_body: Value = match serde_json::from_slice(&call.req.body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("error decoding patch: {e}")),
    };
    let Some(old) = st.get(&call.def, &call.ns, &call.name).cloned() else {
        return not_found(&call.def, &call.name);
    };
    let mut patched = old.obj.clone();
    match content_type.as_str() {
        // Strategic merge is a merge patch here (lists replaced, not merged by key).
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            if !patch_body.is_object() {
                return bad_request("a merge patch must be a JSON object");
            }
            merge_patch(&mut patched, &patch_body);
        }
        "application/json-patch+json" => {
            if let Err(e) = json_patch(&mut patched, &patch_body) {
                return status(
                    422,
                    "Invalid",
                    &format!("the server rejected our request due to an error in our request: {e}"),
                    None,
                );
            }
        }
        other => {
            return status(
                415,
                "UnsupportedMediaType",
                &format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                ),
                None,
            );
        }
    }
    // A resourceVersion in the patch is a precondition (as for PUT).
    let rv = str_at(&patched, &["metadata", "resourceVersion"]);
    if !rv.is_empty() && rv != str_at(&old.obj, &["metadata", "resourceVersion"]) {
        return conflict(&call.def, &call.name, OPTIMISTIC_LOCK);
    }
    if let Err(r) = check_type(&call.def, &mut patched) {
        return r;
    }
    if str_at(&patched, &["metadata", "name"]) != call.name
        || (call.def.namespaced && str_at(&patched, &["metadata", "namespace"]) != call.ns)
    {
        return bad_request("metadata.name and metadata.namespace may not be changed by a patch");
    }
    store_update(st, call, old, patched)
}

fn apply(st: &mut State, call: &Call, force: bool) -> Response {
    let Some(manager) = call
        .req
        .query_param("fieldManager")
        .filter(|m| !m.is_empty())
    else {
        return status(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            Some(json!({"group": "meta.k8s.io", "kind": "PatchOptions",
                        "causes": [{"reason": "FieldValueRequired",
                                    "message": "Required value: is required for apply patch",
                                    "field": "fieldManager"}]})),
        );
    };
    // kube-rs sends JSON, which is valid YAML; the fake reads JSON only.
    let mut applied = match body_json(call.req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if str_at(&applied, &["kind"]).is_empty() || str_at(&applied, &["apiVersion"]).is_empty() {
        return bad_request(&format!(
            "Object 'Kind' is missing in '{}'",
            String::from_utf8_lossy(&call.req.body)
        ));
    }
    if let Err(r) =
        check_type(&call.def, &mut applied).and_then(|()| check_namespace(call, &mut applied))
    {
        return r;
    }
    let name = str_at(&applied, &["metadata", "name"]);
    if name != call.name {
        return bad_request(&format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            call.name
        ));
    }
    normalize_secret(&call.def, &mut applied);
    let old = st.get(&call.def, &call.ns, &call.name).cloned();
    let rv = str_at(&applied, &["metadata", "resourceVersion"]);
    let stale = match &old {
        Some(o) => !rv.is_empty() && rv != str_at(&o.obj, &["metadata", "resourceVersion"]),
        // The client expected an object at that version; it is gone.
        None => !rv.is_empty(),
    };
    if stale || take_conflict(st, call) {
        return conflict(&call.def, &call.name, OPTIMISTIC_LOCK);
    }
    if old.is_none() && st.is_forbidden("create", &call.def.group, &call.def.plural, &call.ns) {
        // Applying a missing object creates it: that needs `create` too.
        let user = st.user.clone();
        return rbac_forbidden(&user, "create", &call.def, "", &call.ns, &call.name);
    }
    let mgr = Manager {
        name: manager,
        apply: true,
    };
    let mut new = match server_side_apply(&call.def, old.as_ref(), &applied, &mgr, force) {
        Ok(n) => n,
        Err(conflicts) => return apply_conflict(&conflicts, &call.def.api_version()),
    };
    set_type(&call.def, &mut new.obj);
    let meta = meta_mut(&mut new.obj);
    meta.insert("name".into(), json!(call.name));
    if call.def.namespaced {
        meta.insert("namespace".into(), json!(call.ns));
    }
    meta.remove("resourceVersion");
    meta.remove("managedFields");
    match &old {
        None => {
            meta.insert("uid".into(), json!(new_uid()));
            meta.insert("creationTimestamp".into(), json!(now()));
            if call.def.has_generation() {
                meta.insert("generation".into(), json!(1));
            }
            if let Err(r) = check_policy(call, &new.obj) {
                return r;
            }
            finish(st, call, "CREATE", None, new)
        }
        Some(o) => {
            let mut obj = match compose(call, &o.obj, new.obj.clone()) {
                Ok(n) => n,
                Err(r) => return r,
            };
            if let Err(r) = prepare_update(call, &o.obj, &mut obj) {
                return r;
            }
            new.obj = obj;
            finish(st, call, "UPDATE", old.clone(), new)
        }
    }
}

fn delete(st: &mut State, call: &Call) -> Response {
    let Some(old) = st.get(&call.def, &call.ns, &call.name).cloned() else {
        return not_found(&call.def, &call.name);
    };
    let opts = call.req.json().unwrap_or_default();
    let pre_uid = str_at(&opts, &["preconditions", "uid"]);
    let pre_rv = str_at(&opts, &["preconditions", "resourceVersion"]);
    let uid = str_at(&old.obj, &["metadata", "uid"]);
    let rv = str_at(&old.obj, &["metadata", "resourceVersion"]);
    if !pre_uid.is_empty() && pre_uid != uid {
        return conflict(
            &call.def,
            &call.name,
            &format!(
                "Precondition failed: UID in precondition: {pre_uid}, UID in object meta: {uid}"
            ),
        );
    }
    if !pre_rv.is_empty() && pre_rv != rv {
        return conflict(
            &call.def,
            &call.name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {pre_rv}, ResourceVersion in object meta: {rv}"
            ),
        );
    }
    let warnings = match admit(st, call, "DELETE", &Value::Null, Some(&old.obj)) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let has_finalizers = old
        .obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if has_finalizers {
        // Deletion waits for the finalizers: the object stays, marked.
        let mut marked = old.clone();
        let meta = meta_mut(&mut marked.obj);
        meta.entry("deletionTimestamp")
            .or_insert_with(|| json!(now()));
        meta.entry("deletionGracePeriodSeconds").or_insert(json!(0));
        let obj = if call.dry {
            marked.obj
        } else {
            st.writes += 1;
            st.persist(&call.def, marked)
        };
        return with_warnings(Response::json(200, &obj), &warnings);
    }
    if !call.dry {
        if let Some(c) = st.store.get_mut(&call.def.key()) {
            c.remove(&(call.ns.clone(), call.name.clone()));
        }
        st.rv += 1;
        st.writes += 1;
    }
    // Pods are `ReturnDeletedObject`; other resources answer a Success Status.
    let resp = if call.def.is_core("pods") {
        Response::json(200, &old.obj)
    } else {
        let mut d = details(&call.def, &call.name);
        d["uid"] = json!(uid);
        Response::json(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Success", "details": d}),
        )
    };
    with_warnings(resp, &warnings)
}

/// Admission, then (unless dry run) persistence; the answer.
fn finish(st: &mut State, call: &Call, op: &str, old: Option<Stored>, mut new: Stored) -> Response {
    let warnings = match admit(st, call, op, &new.obj, old.as_ref().map(|o| &o.obj)) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let code = if op == "CREATE" { 201 } else { 200 };
    if op == "CREATE" && st.get(&call.def, &call.ns, &call.name).is_some() {
        return with_warnings(already_exists(&call.def, &call.name), &warnings);
    }
    if let Some(o) = &old
        && comparable(&o.obj) == comparable(&new.obj)
        && o.owners == new.owners
    {
        // A no-op write: nothing is stored, the resourceVersion stays.
        return with_warnings(Response::json(code, &o.obj), &warnings);
    }
    let obj = if call.dry {
        let mf = managed_fields(&new);
        let meta = meta_mut(&mut new.obj);
        meta.insert("managedFields".into(), mf);
        if let Some(o) = &old {
            meta.insert(
                "resourceVersion".into(),
                json!(str_at(&o.obj, &["metadata", "resourceVersion"])),
            );
        }
        new.obj
    } else {
        st.writes += 1;
        st.persist(&call.def, new)
    };
    with_warnings(Response::json(code, &obj), &warnings)
}

// ---------------------------------------------------------------------------------------
// Admission

struct Denial {
    policy: String,
    binding: String,
    reason: String,
    message: String,
}

fn strings_at<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// One `RuleWithOperations` (+ `resourceNames`, `scope`) against the request.
fn rule_matches(rule: &Value, call: &Call, op: &str) -> bool {
    let any = |list: Vec<&str>, want: &str| list.iter().any(|x| *x == "*" || *x == want);
    if !any(strings_at(rule, "apiGroups"), &call.def.group)
        || !any(strings_at(rule, "apiVersions"), &call.def.version)
        || !any(strings_at(rule, "operations"), op)
    {
        return false;
    }
    let (res, sub) = (call.def.plural.as_str(), call.sub.as_str());
    let resource_ok = strings_at(rule, "resources").iter().any(|r| {
        let (rr, rs) = r.split_once('/').unwrap_or((r, ""));
        match (rs, sub.is_empty()) {
            ("", true) => rr == "*" || rr == res,
            ("", false) => false,
            (rs, false) => (rr == "*" || rr == res) && (rs == "*" || rs == sub),
            (_, true) => false,
        }
    });
    if !resource_ok {
        return false;
    }
    let names = strings_at(rule, "resourceNames");
    if !names.is_empty() && !names.contains(&call.name.as_str()) {
        return false;
    }
    match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Namespaced" => call.def.namespaced,
        "Cluster" => !call.def.namespaced,
        _ => true,
    }
}

/// A `metav1.LabelSelector` against a label map (`{}` or absent selects everything).
fn selector_matches(sel: Option<&Value>, labels: Option<&Value>) -> bool {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return true;
    };
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let labels_ok = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| get(k) == v.as_str()));
    let exprs_ok = sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|es| {
            es.iter().all(|e| {
                let key = str_at(e, &["key"]);
                let values = strings_at(e, "values");
                match str_at(e, &["operator"]) {
                    "In" => get(key).is_some_and(|x| values.contains(&x)),
                    "NotIn" => get(key).is_none_or(|x| !values.contains(&x)),
                    "Exists" => get(key).is_some(),
                    "DoesNotExist" => get(key).is_none(),
                    _ => false,
                }
            })
        });
    labels_ok && exprs_ok
}

/// `matchConstraints` / `matchResources`. `rules_required`: a policy's constraints match
/// nothing without rules; a binding's `matchResources` without rules narrows nothing.
fn match_resources(
    mr: &Value,
    rules_required: bool,
    call: &Call,
    op: &str,
    ns_labels: Option<&Value>,
    obj_labels: &[Option<&Value>],
) -> bool {
    let rules = mr.get("resourceRules").and_then(Value::as_array);
    let included = match rules {
        Some(r) if !r.is_empty() => r.iter().any(|rule| rule_matches(rule, call, op)),
        _ => !rules_required,
    };
    let excluded = mr
        .get("excludeResourceRules")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|rule| rule_matches(rule, call, op)));
    // Cluster-scoped requests ignore the namespace selector (a Namespace matches on its own
    // labels).
    let ns_ok = if call.def.is_core("namespaces") {
        obj_labels
            .iter()
            .any(|l| selector_matches(mr.get("namespaceSelector"), *l))
    } else if call.def.namespaced {
        selector_matches(mr.get("namespaceSelector"), ns_labels)
    } else {
        true
    };
    let obj_ok = obj_labels
        .iter()
        .any(|l| selector_matches(mr.get("objectSelector"), *l));
    included && !excluded && ns_ok && obj_ok
}

/// The params objects a binding refers to. `Err`: a configuration error.
fn resolve_params(
    st: &State,
    param_kind: &Value,
    param_ref: Option<&Value>,
    ns: &str,
) -> Result<Vec<Value>, String> {
    let api_version = str_at(param_kind, &["apiVersion"]);
    let kind = str_at(param_kind, &["kind"]);
    let Some(pdef) = st.def_by_kind(api_version, kind) else {
        return Err(format!(
            "failed to find resource referenced by paramKind: '{api_version}, Kind={kind}'"
        ));
    };
    let Some(pr) = param_ref else {
        return Err("paramRef is required when paramKind is set".into());
    };
    let pns = if pdef.namespaced {
        match str_at(pr, &["namespace"]) {
            "" => ns,
            n => n,
        }
    } else {
        ""
    };
    if pdef.namespaced && pns.is_empty() {
        return Err(
            "cannot use a namespaced paramRef without a namespace for a cluster-scoped request"
                .into(),
        );
    }
    let name = str_at(pr, &["name"]);
    if !name.is_empty() {
        return Ok(st
            .get(pdef, pns, name)
            .map(|s| vec![s.obj.clone()])
            .unwrap_or_default());
    }
    let sel = pr.get("selector");
    Ok(st
        .store
        .get(&pdef.key())
        .map(|c| {
            c.iter()
                .filter(|((kns, _), s)| {
                    kns == pns && selector_matches(sel, s.obj.pointer("/metadata/labels"))
                })
                .map(|(_, s)| s.obj.clone())
                .collect()
        })
        .unwrap_or_default())
}

/// Runs every matching policy × binding. `Ok(warnings)` to admit, `Err(answer)` to refuse.
fn admit(
    st: &mut State,
    call: &Call,
    op: &str,
    object: &Value,
    old: Option<&Value>,
) -> Result<Vec<String>, Response> {
    if call.def.group == ADMISSION_GROUP {
        // The API server exempts its own admission configuration.
        return Ok(Vec::new());
    }
    let vap_def = ResourceDef::new(
        ADMISSION_GROUP,
        "v1",
        "validatingadmissionpolicies",
        "",
        false,
    );
    let binding_def = ResourceDef::new(
        ADMISSION_GROUP,
        "v1",
        "validatingadmissionpolicybindings",
        "",
        false,
    );
    let policies = st.values(&vap_def);
    if policies.is_empty() {
        return Ok(Vec::new());
    }
    let bindings = st.values(&binding_def);
    let ns_def = ResourceDef::new("", "v1", "namespaces", "Namespace", false);
    let namespace_object = if call.def.namespaced {
        Some(
            st.get(&ns_def, "", &call.ns)
                .map(|s| s.obj.clone())
                .unwrap_or_else(|| {
                    // Namespaces are not required to be seeded: a minimal active one.
                    json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": call.ns}, "status": {"phase": "Active"}})
                }),
        )
    } else {
        None
    };
    let ns_labels = namespace_object
        .as_ref()
        .and_then(|n| n.pointer("/metadata/labels"))
        .cloned();
    // A selector matches when the new or the old object matches.
    let mut obj_labels: Vec<Option<&Value>> = [Some(object), old]
        .into_iter()
        .flatten()
        .filter(|o| !o.is_null())
        .map(|o| o.pointer("/metadata/labels"))
        .collect();
    if obj_labels.is_empty() {
        obj_labels.push(None);
    }
    let resource = if call.sub.is_empty() {
        call.def.qualified_resource()
    } else {
        format!("{}/{}", call.def.qualified_resource(), call.sub)
    };
    let areq = AdmissionRequest {
        operation: op.into(),
        group: call.def.group.clone(),
        version: call.def.version.clone(),
        kind: call.def.kind.clone(),
        resource: call.def.plural.clone(),
        sub_resource: call.sub.clone(),
        namespace: call.ns.clone(),
        name: call.name.clone(),
        object: object.clone(),
        old_object: old.cloned(),
        user: st.user.clone(),
        dry_run: call.dry,
        namespace_object: namespace_object.clone(),
    };
    let record =
        |st: &mut State, policy: &str, binding: &str, decision: Decision, message: &str| {
            st.admission_log.push(AdmissionRecord {
                operation: op.into(),
                resource: resource.clone(),
                namespace: call.ns.clone(),
                name: call.name.clone(),
                policy: policy.into(),
                binding: binding.into(),
                decision,
                message: message.into(),
                dry_run: call.dry,
            });
        };
    let mut warnings: Vec<String> = Vec::new();
    let mut denials: Vec<Denial> = Vec::new();

    for policy in &policies {
        let pname = str_at(policy, &["metadata", "name"]).to_string();
        let spec = policy.get("spec").cloned().unwrap_or_default();
        let constraints = spec.get("matchConstraints").cloned().unwrap_or_default();
        if !match_resources(
            &constraints,
            true,
            call,
            op,
            ns_labels.as_ref(),
            &obj_labels,
        ) {
            continue;
        }
        let failure_policy = match str_at(&spec, &["failurePolicy"]) {
            "" => "Fail".to_string(),
            f => f.to_string(),
        };
        for binding in bindings
            .iter()
            .filter(|b| str_at(b, &["spec", "policyName"]) == pname)
        {
            let bname = str_at(binding, &["metadata", "name"]).to_string();
            if let Some(mr) = binding.pointer("/spec/matchResources")
                && !match_resources(mr, false, call, op, ns_labels.as_ref(), &obj_labels)
            {
                continue;
            }
            let actions: BTreeSet<String> = strings_at(&binding["spec"], "validationActions")
                .into_iter()
                .map(str::to_string)
                .collect();
            let params: Vec<Option<Value>> = match spec.get("paramKind").filter(|p| p.is_object()) {
                None => vec![None],
                Some(pk) => {
                    let param_ref = binding.pointer("/spec/paramRef");
                    let resolved = match resolve_params(st, pk, param_ref, &call.ns) {
                        Ok(list) if !list.is_empty() => Ok(list),
                        Ok(_) => {
                            let action = param_ref
                                .map(|p| str_at(p, &["parameterNotFoundAction"]))
                                .unwrap_or_default();
                            if action == "Allow" {
                                record(st, &pname, &bname, Decision::Skipped, "no params found");
                                continue;
                            }
                            Err("no params found for policy binding with `Deny` parameterNotFoundAction".to_string())
                        }
                        Err(e) => Err(e),
                    };
                    match resolved {
                        Ok(list) => list.into_iter().map(Some).collect(),
                        Err(e) => {
                            // Configuration errors obey failurePolicy, whatever the actions.
                            let message = format!("failed to configure binding: {e}");
                            if failure_policy == "Ignore" {
                                record(st, &pname, &bname, Decision::ErrorIgnored, &message);
                            } else {
                                record(st, &pname, &bname, Decision::Denied, &message);
                                denials.push(Denial {
                                    policy: pname.clone(),
                                    binding: bname.clone(),
                                    reason: String::new(),
                                    message,
                                });
                            }
                            continue;
                        }
                    }
                }
            };
            for p in &params {
                let (reason, message) = match vap::evaluate(policy, binding, p.as_ref(), &areq) {
                    Ok(v) if !v.matched => {
                        record(st, &pname, &bname, Decision::NotMatched, "");
                        continue;
                    }
                    Ok(v) if v.allowed => {
                        record(st, &pname, &bname, Decision::Admitted, "");
                        continue;
                    }
                    Ok(v) => {
                        if let Some(e) = &v.message_expression_error {
                            st.admission_errors.push(AdmissionError {
                                operation: op.into(),
                                resource: resource.clone(),
                                namespace: call.ns.clone(),
                                name: call.name.clone(),
                                policy: pname.clone(),
                                binding: bname.clone(),
                                error: e.clone(),
                                failure_policy: failure_policy.clone(),
                            });
                        }
                        (v.reason, v.message)
                    }
                    Err(e) => {
                        st.admission_errors.push(AdmissionError {
                            operation: op.into(),
                            resource: resource.clone(),
                            namespace: call.ns.clone(),
                            name: call.name.clone(),
                            policy: pname.clone(),
                            binding: bname.clone(),
                            error: e.to_string(),
                            failure_policy: failure_policy.clone(),
                        });
                        if failure_policy == "Ignore" {
                            record(st, &pname, &bname, Decision::ErrorIgnored, &e.to_string());
                            continue;
                        }
                        // Under Fail an error is a failed validation (reason Invalid).
                        (String::new(), e.to_string())
                    }
                };
                if actions.contains("Deny") {
                    denials.push(Denial {
                        policy: pname.clone(),
                        binding: bname.clone(),
                        reason: reason.clone(),
                        message: message.clone(),
                    });
                }
                if actions.contains("Warn") {
                    let w = format!(
                        "Validation failed for ValidatingAdmissionPolicy '{pname}' with binding '{bname}': {message}"
                    );
                    st.warnings.push(w.clone());
                    warnings.push(w);
                }
                if actions.contains("Audit") {
                    st.audit.push(AuditEvent {
                        operation: op.into(),
                        resource: resource.clone(),
                        namespace: call.ns.clone(),
                        name: call.name.clone(),
                        policy: pname.clone(),
                        binding: bname.clone(),
                        message: message.clone(),
                    });
                }
                let decision = if actions.contains("Deny") {
                    Decision::Denied
                } else if actions.contains("Warn") {
                    Decision::Warned
                } else {
                    Decision::Audited
                };
                record(st, &pname, &bname, decision, &message);
            }
        }
    }
    match denials.first() {
        None => Ok(warnings),
        Some(d) => {
            let why = format!(
                "ValidatingAdmissionPolicy '{}' with binding '{}' denied request: {}",
                d.policy, d.binding, d.message
            );
            let reason = if d.reason.is_empty() {
                "Invalid"
            } else {
                d.reason.as_str()
            };
            let code = match reason {
                "Forbidden" => 403,
                "Unauthorized" => 401,
                "RequestEntityTooLarge" => 413,
                _ => 422,
            };
            let mut det = details(&call.def, &call.name);
            det["causes"] = json!([{"message": why}]);
            let resp = status(
                code,
                reason,
                &forbidden_text(&call.def, &call.name, &why),
                Some(det),
            );
            Err(with_warnings(resp, &warnings))
        }
    }
}
