//! The Kubernetes API fake ([`crate::fakes::kube`]) and the ValidatingAdmissionPolicy
//! evaluator ([`crate::fakes::vap`]) against a real client (`kube` 5 with k8s-openapi):
//! CRUD and Status errors, server-side apply semantics, pagination at scale, RBAC,
//! admission with the policy shape Recall generates, kubeconfigs, discovery and faults.

use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use serde_json::{Value, json};

use crate::fakes::Fault;
use crate::fakes::kube::{Decision, FakeKube, PAGE_NOT_FOUND};
use crate::fakes::vap::{self, AdmissionRequest};

const TOKEN: &str = "fake-token-0123456789";
const NS: &str = "recall-system";

async fn fake() -> FakeKube {
    FakeKube::start("prod-eu", TOKEN).await
}

/// The `Status` inside a kube error (panics on anything else).
fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "data": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
    .expect("configmap")
}

fn data_keys(c: &ConfigMap) -> Vec<String> {
    c.data
        .as_ref()
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

fn rv(c: &ConfigMap) -> String {
    c.metadata
        .resource_version
        .clone()
        .expect("resourceVersion")
}

#[tokio::test]
async fn crud_and_status_errors() {
    let kube = fake().await;
    let cms: Api<ConfigMap> = Api::namespaced(kube.client(), NS);

    let created = cms
        .create(&PostParams::default(), &cm("settings", &[("a", "1")]))
        .await
        .expect("create");
    let meta = &created.metadata;
    assert!(
        meta.uid.as_deref().is_some_and(|u| u.len() == 36),
        "{meta:?}"
    );
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.namespace.as_deref(), Some(NS));
    assert!(meta.managed_fields.as_ref().is_some_and(|m| !m.is_empty()));
    assert!(meta.generation.is_none(), "ConfigMaps have no generation");

    // AlreadyExists
    let e = api_err(
        cms.create(&PostParams::default(), &cm("settings", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, r#"configmaps "settings" already exists"#);

    // NotFound, with details
    let e = api_err(cms.get("nope").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, r#"configmaps "nope" not found"#);
    let d = e.details.expect("details");
    assert_eq!((d.name.as_str(), d.kind.as_str()), ("nope", "configmaps"));
    assert!(cms.get_opt("nope").await.expect("get_opt").is_none());

    // PUT with the current resourceVersion works and bumps it; a stale one conflicts.
    let mut fresh = cms.get("settings").await.expect("get");
    let stale_rv = rv(&fresh);
    fresh.data.as_mut().unwrap().insert("b".into(), "2".into());
    let replaced = cms
        .replace("settings", &PostParams::default(), &fresh)
        .await
        .expect("replace");
    assert!(rv(&replaced).parse::<u64>().unwrap() > stale_rv.parse::<u64>().unwrap());
    assert_eq!(data_keys(&replaced), ["a", "b"]);
    let e = api_err(
        cms.replace("settings", &PostParams::default(), &fresh)
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        r#"Operation cannot be fulfilled on configmaps "settings": the object has been modified; please apply your changes to the latest version and try again"#
    );
    // A no-op PUT doesn't write.
    let writes = kube.writes();
    let same = cms
        .replace("settings", &PostParams::default(), &replaced)
        .await
        .expect("no-op replace");
    assert_eq!(rv(&same), rv(&replaced));
    assert_eq!(kube.writes(), writes);

    // Merge patch; list.
    cms.patch(
        "settings",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
    )
    .await
    .expect("merge patch");
    assert_eq!(data_keys(&cms.get("settings").await.unwrap()), ["b", "c"]);
    let list = cms.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    assert!(list.metadata.resource_version.is_some());
    assert!(list.metadata.continue_.as_deref().unwrap_or("").is_empty());

    // DELETE: ConfigMaps answer a Success Status, Pods the deleted object.
    let deleted = cms
        .delete("settings", &DeleteParams::default())
        .await
        .expect("delete");
    let s = deleted
        .right()
        .expect("a ConfigMap delete answers a Status");
    assert_eq!(s.details.map(|d| d.name), Some("settings".to_string()));
    let e = api_err(
        cms.delete("settings", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    kube.add_pod(NS, "p1", &[("containers", "app", "nginx:1", "")], None);
    let pods: Api<Pod> = Api::namespaced(kube.client(), NS);
    let gone = pods
        .delete("p1", &DeleteParams::default())
        .await
        .expect("delete pod");
    assert_eq!(
        gone.left().and_then(|p| p.metadata.name).as_deref(),
        Some("p1")
    );
    assert!(kube.object("", "v1", "pods", Some(NS), "p1").is_none());

    // Secrets fold stringData into data.
    let secrets: Api<Secret> = Api::namespaced(kube.client(), NS);
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "tok"}, "stringData": {"t": "hunter2"}}),
    )
    .unwrap();
    let s = secrets
        .create(&PostParams::default(), &s)
        .await
        .expect("secret");
    assert!(s.string_data.is_none());
    assert_eq!(s.data.unwrap()["t"].0, b"hunter2");

    // A wrong token: 401 Status.
    let bad: Api<ConfigMap> = Api::namespaced(kube.client_with_token("wrong"), NS);
    let e = api_err(bad.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );

    // A CRD that isn't installed: the real server's plain-text 404; installed: served.
    let gvk = GroupVersionKind::gvk("kyverno.io", "v1", "ClusterPolicy");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "clusterpolicies");
    let policies: Api<DynamicObject> = Api::all_with(kube.client(), &ar);
    let e = api_err(policies.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(e.code, 404);
    assert_eq!(e.message, PAGE_NOT_FOUND.trim());
    kube.install_crd(
        "kyverno.io",
        "v1",
        "clusterpolicies",
        "ClusterPolicy",
        false,
    );
    let mut obj = DynamicObject::new("require-signed", &ar);
    obj.data = json!({"spec": {"validationFailureAction": "Enforce"}});
    let created = policies
        .create(&PostParams::default(), &obj)
        .await
        .expect("create CR");
    assert_eq!(created.metadata.generation, Some(1));
    let listed = policies
        .list(&ListParams::default())
        .await
        .expect("list CRs");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].data["spec"]["validationFailureAction"],
        "Enforce"
    );
    // Unknown resource inside a served group: a Status.
    let ar2 = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kyverno.io", "v1", "Policy"),
        "policies",
    );
    let e = api_err(
        Api::<DynamicObject>::all_with(kube.client(), &ar2)
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        e.message,
        "the server could not find the requested resource"
    );
}

#[tokio::test]
async fn server_side_apply_semantics() {
    let kube = fake().await;
    let cms: Api<ConfigMap> = Api::namespaced(kube.client(), NS);
    let apply = |data: Value, rv: Option<String>| {
        let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "denied", "namespace": NS}, "data": data});
        if let Some(rv) = rv {
            obj["metadata"]["resourceVersion"] = json!(rv);
        }
        obj
    };
    let pp = PatchParams::apply("recall");

    // Creates when absent.
    let v1 = cms
        .patch("denied", &pp, &Patch::Apply(apply(json!({"a": "1"}), None)))
        .await
        .expect("apply creates");
    assert_eq!(data_keys(&v1), ["a"]);
    let mf = v1.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("recall"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    // Re-applying everything (with the current resourceVersion as a precondition) adds b.
    let v2 = cms
        .patch(
            "denied",
            &pp,
            &Patch::Apply(apply(json!({"a": "1", "b": "2"}), Some(rv(&v1)))),
        )
        .await
        .expect("apply a+b");
    assert_eq!(data_keys(&v2), ["a", "b"]);

    // A stale resourceVersion: 409.
    let e = api_err(
        cms.patch(
            "denied",
            &pp,
            &Patch::Apply(apply(json!({"a": "1", "b": "2", "x": "9"}), Some(rv(&v1)))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(
        e.message.contains("the object has been modified"),
        "{}",
        e.message
    );

    // The bug a naive client has: applying only the new key removes what it applied before.
    let v3 = cms
        .patch("denied", &pp, &Patch::Apply(apply(json!({"c": "3"}), None)))
        .await
        .expect("apply c alone");
    assert_eq!(
        data_keys(&v3),
        ["c"],
        "SSA removes fields the manager no longer applies"
    );

    // Another manager setting c differently conflicts...
    let other = PatchParams::apply("other");
    let e = api_err(
        cms.patch(
            "denied",
            &other,
            &Patch::Apply(apply(json!({"c": "4"}), None)),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        r#"Apply failed with 1 conflict: conflict with "recall": .data.c"#
    );
    let cause = &e.details.unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("FieldManagerConflict", ".data.c")
    );
    // ... the same value is shared without conflict ...
    cms.patch(
        "denied",
        &other,
        &Patch::Apply(apply(json!({"c": "3"}), None)),
    )
    .await
    .expect("same value: shared ownership");
    // ... so recall dropping c keeps it (other still owns it) ...
    let v4 = cms
        .patch("denied", &pp, &Patch::Apply(apply(json!({"d": "5"}), None)))
        .await
        .expect("apply d");
    assert_eq!(data_keys(&v4), ["c", "d"]);
    // ... and force moves ownership.
    cms.patch(
        "denied",
        &PatchParams::apply("other").force(),
        &Patch::Apply(apply(json!({"c": "6"}), None)),
    )
    .await
    .expect("forced apply");
    let e = api_err(
        cms.patch(
            "denied",
            &pp,
            &Patch::Apply(apply(json!({"c": "3", "d": "5"}), None)),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        e.message,
        r#"Apply failed with 1 conflict: conflict with "other": .data.c"#
    );

    // A non-apply writer owns what it changes: conflicts name it with its API version.
    cms.patch(
        "denied",
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        },
        &Patch::Merge(json!({"data": {"d": "edited"}})),
    )
    .await
    .expect("merge patch");
    let e = api_err(
        cms.patch("denied", &pp, &Patch::Apply(apply(json!({"d": "5"}), None)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e.message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using v1: .data.d"#
    );

    // conflict_next: the next write answers 409 once; a fresh retry succeeds.
    kube.conflict_next(1);
    let e = api_err(
        cms.patch(
            "denied",
            &pp.clone().force(),
            &Patch::Apply(apply(json!({"d": "7"}), None)),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 409);
    cms.patch(
        "denied",
        &pp.clone().force(),
        &Patch::Apply(apply(json!({"d": "7"}), None)),
    )
    .await
    .expect("retry after the scripted conflict");

    // Apply without fieldManager is refused by the server (kube-rs refuses it client-side,
    // so ask over plain HTTP).
    let resp = reqwest::Client::new()
        .patch(format!(
            "{}/api/v1/namespaces/{NS}/configmaps/denied",
            kube.url()
        ))
        .bearer_auth(TOKEN)
        .header("content-type", "application/apply-patch+yaml")
        .body(apply(json!({"z": "1"}), None).to_string())
        .send()
        .await
        .expect("raw apply");
    assert_eq!(resp.status().as_u16(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("fieldManager: Required value"),
        "{body}"
    );

    // Dry-run apply: evaluated, not stored, counted apart.
    let (mutations, dry) = (kube.mutations(), kube.dry_runs());
    let would = cms
        .patch(
            "denied",
            &pp.clone().force().dry_run(),
            &Patch::Apply(apply(json!({"only": "x"}), None)),
        )
        .await
        .expect("dry-run apply");
    // d (last applied by recall) is dropped, c (owned by "other") stays.
    assert_eq!(data_keys(&would), ["c", "only"]);
    assert!(!data_keys(&cms.get("denied").await.unwrap()).contains(&"only".to_string()));
    assert_eq!((kube.mutations(), kube.dry_runs()), (mutations, dry + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginated_list_of_5000_pods() {
    let kube = fake().await;
    let seed = Instant::now();
    for i in 0..5_000 {
        let ns = format!("team-{}", i % 7);
        kube.add_pod(
            &ns,
            &format!("pod-{i:05}"),
            &[
                (
                    "containers",
                    "app",
                    "registry.example/app:1.0",
                    "registry.example/app@sha256:aaaa",
                ),
                (
                    "initContainers",
                    "init",
                    "busybox:1",
                    "docker.io/library/busybox@sha256:bbbb",
                ),
            ],
            Some(("ReplicaSet", "app-7d4f")),
        );
    }
    println!("seeded 5000 pods in {:?}", seed.elapsed());
    let pods: Api<Pod> = Api::all(kube.client());
    let started = Instant::now();
    let mut names = std::collections::BTreeSet::new();
    let mut pages = 0;
    let mut lp = ListParams::default().limit(500);
    loop {
        let page = pods.list(&lp).await.expect("list page");
        pages += 1;
        for p in &page.items {
            let key = format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap(),
                p.metadata.name.as_deref().unwrap()
            );
            assert!(names.insert(key.clone()), "{key} returned twice");
            let st = p.status.as_ref().unwrap();
            assert!(
                st.container_statuses.as_ref().unwrap()[0]
                    .image_id
                    .ends_with("sha256:aaaa")
            );
            assert!(
                st.init_container_statuses.as_ref().unwrap()[0]
                    .image_id
                    .contains("busybox")
            );
            assert_eq!(
                p.metadata.owner_references.as_ref().unwrap()[0].controller,
                Some(true)
            );
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => {
                assert!(page.metadata.remaining_item_count.is_some_and(|n| n > 0));
                lp = lp.continue_token(&c);
            }
            None => break,
        }
    }
    let elapsed = started.elapsed();
    // The same pages over plain HTTP into `serde_json::Value` (no k8s-openapi decoding).
    let raw_started = Instant::now();
    let http = reqwest::Client::new();
    let (mut cont, mut raw_items) = (String::new(), 0);
    loop {
        let page: Value = http
            .get(format!(
                "{}/api/v1/pods?limit=500&continue={cont}",
                kube.url()
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("raw list")
            .json()
            .await
            .expect("list JSON");
        raw_items += page["items"].as_array().map_or(0, Vec::len);
        match page["metadata"]["continue"].as_str() {
            Some(c) => cont = c.to_string(),
            None => break,
        }
    }
    assert_eq!(raw_items, 5_000);
    println!(
        "listed 5000 pods over raw HTTP in {:?}",
        raw_started.elapsed()
    );
    println!("listed 5000 pods in {pages} pages of 500 in {elapsed:?}");
    assert_eq!(names.len(), 5_000);
    assert_eq!(pages, 10);
    assert!(elapsed < Duration::from_secs(3), "listing took {elapsed:?}");

    // A namespaced, label-selected, paginated list.
    kube.put_object(
        "",
        "v1",
        "pods",
        Some("team-3"),
        json!({
        "metadata": {"name": "labelled", "labels": {"app": "web", "tier": "front"}},
        "spec": {"containers": [{"name": "c", "image": "web:1"}]}}),
    );
    let team3: Api<Pod> = Api::namespaced(kube.client(), "team-3");
    let sel = team3
        .list(&ListParams::default().labels("app=web,tier in (front,back)"))
        .await
        .unwrap();
    assert_eq!(sel.items.len(), 1);
    let all3 = team3.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        all3.items.len(),
        (0..5_000).filter(|i| i % 7 == 3).count() + 1
    );
}

#[tokio::test]
async fn rbac_forbidden_and_self_subject_access_review() {
    let kube = fake().await;
    kube.add_configmap(NS, "recall-denied-digests", &[("a", "1")]);
    kube.forbid("patch", "", "configmaps");
    kube.forbid("list", "", "pods");
    let cms: Api<ConfigMap> = Api::namespaced(kube.client(), NS);
    let e = api_err(
        cms.patch(
            "recall-denied-digests",
            &PatchParams::apply("recall"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "recall-denied-digests"}, "data": {"b": "2"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        r#"configmaps "recall-denied-digests" is forbidden: User "system:serviceaccount:recall:recall" cannot patch resource "configmaps" in API group "" in the namespace "recall-system""#
    );
    let d = e.details.unwrap();
    assert_eq!(
        (d.name.as_str(), d.group.as_str(), d.kind.as_str()),
        ("recall-denied-digests", "", "configmaps")
    );
    // Reads still work; the object is untouched.
    assert_eq!(
        data_keys(&cms.get("recall-denied-digests").await.unwrap()),
        ["a"]
    );

    let pods: Api<Pod> = Api::all(kube.client());
    let e = api_err(pods.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        e.message,
        r#"pods is forbidden: User "system:serviceaccount:recall:recall" cannot list resource "pods" in API group "" at the cluster scope"#
    );

    let ssar: Api<SelfSubjectAccessReview> = Api::all(kube.client());
    let review = |verb: &str, resource: &str| {
        serde_json::from_value::<SelfSubjectAccessReview>(json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": NS, "verb": verb, "group": "", "resource": resource}}
        }))
        .unwrap()
    };
    let mutations = kube.mutations();
    for (verb, resource, allowed) in [
        ("patch", "configmaps", false),
        ("get", "configmaps", true),
        ("list", "pods", false),
        ("create", "pods", true),
    ] {
        let r = ssar
            .create(&PostParams::default(), &review(verb, resource))
            .await
            .expect("ssar");
        assert_eq!(r.status.unwrap().allowed, allowed, "{verb} {resource}");
    }
    assert_eq!(
        kube.mutations(),
        mutations,
        "access reviews are not mutations"
    );
    kube.allow_all();
    cms.patch(
        "recall-denied-digests",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"b": "2"}})),
    )
    .await
    .expect("allowed again");
}

fn sample_policy() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "recall-deny-digests"},
        "spec": {
            "failurePolicy": "Fail",
            "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                "resources": ["pods", "pods/ephemeralcontainers"]}]},
            "variables": [
                {"name": "spec", "expression": "object.spec"},
                {"name": "images", "expression": "(has(variables.spec.containers) ? variables.spec.containers : []).map(c, c.image) + (has(variables.spec.initContainers) ? variables.spec.initContainers : []).map(c, c.image) + (has(variables.spec.ephemeralContainers) ? variables.spec.ephemeralContainers : []).map(c, c.image)"},
                {"name": "denied", "expression": "!has(params.data) ? [] : variables.images.filter(i, i.contains('@') && i.substring(i.lastIndexOf('@') + 1).replace(':', '-') in params.data)"}
            ],
            "validations": [{
                "expression": "size(variables.denied) == 0",
                "messageExpression": "'image ' + variables.denied[0] + ' is denied by Recall: ' + params.data[variables.denied[0].substring(variables.denied[0].lastIndexOf('@') + 1).replace(':', '-')]",
                "reason": "Forbidden"
            }]
        }
    })
}

fn binding(name: &str, actions: &[&str], param: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": "recall-deny-digests",
            "validationActions": actions,
            "paramRef": {"name": param, "namespace": NS, "parameterNotFoundAction": "Allow"}
        }
    })
}

fn hex() -> String {
    "0123456789abcdef".repeat(4)
}

fn pod(name: &str, key: &str, image: &str) -> Pod {
    let mut spec = json!({"containers": [{"name": "app", "image": "registry.example/ok:1"}]});
    if key == "containers" {
        spec["containers"] = json!([{"name": "app", "image": image}]);
    } else {
        spec[key] = json!([{"name": "x", "image": image}]);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

#[tokio::test]
async fn admission_with_the_recall_policy_shape() {
    let kube = fake().await;
    let client = kube.client();
    let digest = format!("sha256:{}", hex());
    let key = format!("sha256-{}", hex());
    let bad = format!("registry.example/app@{digest}");

    // Policy and binding go through the API (the policy is compiled on create).
    let vaps: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(
                "admissionregistration.k8s.io",
                "v1",
                "ValidatingAdmissionPolicy",
            ),
            "validatingadmissionpolicies",
        ),
    );
    let bindings: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(
                "admissionregistration.k8s.io",
                "v1",
                "ValidatingAdmissionPolicyBinding",
            ),
            "validatingadmissionpolicybindings",
        ),
    );
    let pp = PatchParams::apply("recall");
    vaps.patch("recall-deny-digests", &pp, &Patch::Apply(sample_policy()))
        .await
        .expect("policy");
    bindings
        .patch(
            "recall-deny-digests-enforce",
            &pp,
            &Patch::Apply(binding(
                "recall-deny-digests-enforce",
                &["Deny"],
                "recall-denied-digests-enforce",
            )),
        )
        .await
        .expect("binding");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    cms.patch(
        "recall-denied-digests-enforce",
        &pp,
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "recall-denied-digests-enforce"},
                             "data": {key.clone(): "INC-1 (registry.example/app)"}})),
    )
    .await
    .expect("params");

    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let denial = |name: &str, image: &str| {
        format!(
            "pods \"{name}\" is forbidden: ValidatingAdmissionPolicy 'recall-deny-digests' with binding 'recall-deny-digests-enforce' denied request: image {image} is denied by Recall: INC-1 (registry.example/app)"
        )
    };
    for (name, where_) in [
        ("in-containers", "containers"),
        ("in-init", "initContainers"),
    ] {
        let e = api_err(
            pods.create(&PostParams::default(), &pod(name, where_, &bad))
                .await
                .unwrap_err(),
        );
        assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"), "{where_}");
        assert_eq!(e.message, denial(name, &bad));
        assert_eq!(e.details.unwrap().causes.len(), 1);
    }
    // A tag before the digest doesn't hide it.
    let tagged = format!("registry.example/app:1.0@{digest}");
    let e = api_err(
        pods.create(
            &PostParams::default(),
            &pod("tagged", "containers", &tagged),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.message, denial("tagged", &tagged));
    // Another digest, or no digest at all: admitted.
    let other = format!("registry.example/app@sha256:{}", "f".repeat(64));
    pods.create(
        &PostParams::default(),
        &pod("other-digest", "containers", &other),
    )
    .await
    .expect("other digest");
    pods.create(
        &PostParams::default(),
        &pod("tag-only", "containers", "registry.example/app:1.0"),
    )
    .await
    .expect("no digest");

    // The ephemeralcontainers subresource is admitted as an UPDATE of pods/ephemeralcontainers.
    let patch = json!({"spec": {"ephemeralContainers": [{"name": "debug", "image": bad}]}});
    let e = api_err(
        pods.patch_ephemeral_containers(
            "tag-only",
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.message, denial("tag-only", &bad));
    let log = kube.admission_log();
    let last = log.last().unwrap();
    assert_eq!(
        (
            last.operation.as_str(),
            last.resource.as_str(),
            last.decision.clone()
        ),
        ("UPDATE", "pods/ephemeralcontainers", Decision::Denied)
    );
    let ok = json!({"spec": {"ephemeralContainers": [{"name": "debug", "image": "busybox:1"}]}});
    let p = pods
        .patch_ephemeral_containers("tag-only", &PatchParams::default(), &Patch::Strategic(ok))
        .await
        .expect("benign debug container");
    assert_eq!(
        p.spec.unwrap().ephemeral_containers.unwrap()[0].name,
        "debug"
    );

    // Dry run: denied as well, nothing stored, counted apart.
    let (mutations, writes) = (kube.mutations(), kube.writes());
    let e = api_err(
        pods.create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &pod("dry", "containers", &bad),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    let would = pods
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &pod("dry-ok", "containers", "nginx:1"),
        )
        .await
        .expect("dry-run create");
    assert_eq!(would.metadata.name.as_deref(), Some("dry-ok"));
    assert!(kube.object("", "v1", "pods", Some(NS), "dry-ok").is_none());
    assert_eq!((kube.mutations(), kube.writes()), (mutations, writes));
    assert!(kube.dry_runs() >= 2);
    assert!(
        kube.admission_log()
            .iter()
            .any(|r| r.dry_run && r.decision == Decision::Denied)
    );

    // A workload that isn't a Pod is not matched by this policy.
    kube.put_object(
        "apps",
        "v1",
        "deployments",
        Some(NS),
        json!({"metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": bad}]}}}}),
    );

    // Params without data: admitted. Params absent (Allow): the binding is skipped.
    kube.put_object(
        "",
        "v1",
        "configmaps",
        Some(NS),
        json!({"metadata": {"name": "recall-denied-digests-enforce"}}),
    );
    pods.create(&PostParams::default(), &pod("no-data", "containers", &bad))
        .await
        .expect("params without data");
    cms.delete("recall-denied-digests-enforce", &DeleteParams::default())
        .await
        .expect("delete params");
    pods.create(
        &PostParams::default(),
        &pod("no-params", "containers", &bad),
    )
    .await
    .expect("params absent");
    assert_eq!(
        kube.admission_log().last().unwrap().decision,
        Decision::Skipped
    );

    // A Warn binding admits with a Warning header (checked on the raw response).
    kube.add_configmap(
        NS,
        "recall-denied-digests-warn",
        &[(&key, "INC-1 (registry.example/app)")],
    );
    kube.add_binding(binding(
        "recall-deny-digests-warn",
        &["Warn"],
        "recall-denied-digests-warn",
    ));
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/namespaces/{NS}/pods", kube.url()))
        .bearer_auth(TOKEN)
        .json(&serde_json::to_value(pod("warned", "containers", &bad)).unwrap())
        .send()
        .await
        .expect("raw create");
    assert_eq!(resp.status().as_u16(), 201);
    let warnings: Vec<String> = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        warnings,
        [format!(
            "299 - \"Validation failed for ValidatingAdmissionPolicy 'recall-deny-digests' with binding 'recall-deny-digests-warn': image {bad} is denied by Recall: INC-1 (registry.example/app)\""
        )]
    );
    assert!(
        kube.admission_log()
            .iter()
            .any(|r| r.binding == "recall-deny-digests-warn" && r.decision == Decision::Warned)
    );

    assert!(
        kube.admission_errors().is_empty(),
        "{:?}",
        kube.admission_errors()
    );
}

#[tokio::test]
async fn admission_errors_failure_policy_and_compile_check() {
    let kube = fake().await;
    let vaps: Api<DynamicObject> = Api::all_with(
        kube.client(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(
                "admissionregistration.k8s.io",
                "v1",
                "ValidatingAdmissionPolicy",
            ),
            "validatingadmissionpolicies",
        ),
    );
    // A policy whose expression does not parse is refused at creation.
    let mut broken = sample_policy();
    broken["metadata"]["name"] = json!("broken");
    broken["spec"]["validations"][0]["expression"] = json!("size(variables.denied) ==");
    let e = api_err(
        vaps.patch("broken", &PatchParams::apply("t"), &Patch::Apply(broken))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(e.message.starts_with(r#"ValidatingAdmissionPolicy.admissionregistration.k8s.io "broken" is invalid: spec.validations[0].expression: Invalid value"#), "{}", e.message);

    // A runtime error: Fail denies (422, reason Invalid, still "is forbidden" like the real
    // server); Ignore admits; both are recorded.
    let policy = |name: &str, failure: &str| {
        json!({
        "metadata": {"name": name},
        "spec": {"failurePolicy": failure,
                 "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["*"],
                     "operations": ["*"], "resources": ["configmaps"]}]},
                 "validations": [{"expression": "object.data.missing == 'x'"}]}})
    };
    kube.add_policy(policy("erroring", "Fail"));
    kube.add_binding(json!({"metadata": {"name": "erroring"}, "spec": {"policyName": "erroring", "validationActions": ["Deny"]}}));
    let cms: Api<ConfigMap> = Api::namespaced(kube.client(), NS);
    let e = api_err(
        cms.create(&PostParams::default(), &cm("c1", &[("a", "1")]))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(e.message.starts_with(r#"configmaps "c1" is forbidden: ValidatingAdmissionPolicy 'erroring' with binding 'erroring' denied request: expression 'object.data.missing == 'x'' resulted in error: "#), "{}", e.message);
    assert_eq!(kube.admission_errors().len(), 1);
    kube.add_policy(policy("erroring", "Ignore"));
    cms.create(&PostParams::default(), &cm("c1", &[("a", "1")]))
        .await
        .expect("Ignore admits");
    assert_eq!(kube.admission_errors().len(), 2);
    assert_eq!(kube.admission_errors()[1].failure_policy, "Ignore");

    // Params missing with parameterNotFoundAction Deny (or unset).
    kube.add_policy(json!({"metadata": {"name": "needs-params"}, "spec": {
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
            "operations": ["CREATE"], "resources": ["secrets"]}]},
        "validations": [{"expression": "true"}]}}));
    kube.add_binding(
        json!({"metadata": {"name": "needs-params"}, "spec": {"policyName": "needs-params",
        "validationActions": ["Deny"], "paramRef": {"name": "absent", "namespace": NS}}}),
    );
    let secrets: Api<Secret> = Api::namespaced(kube.client(), NS);
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap();
    let e = api_err(
        secrets
            .create(&PostParams::default(), &s)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e.message,
        "secrets \"s\" is forbidden: ValidatingAdmissionPolicy 'needs-params' with binding 'needs-params' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
    );

    // Audit: admitted, recorded.
    kube.add_policy(json!({"metadata": {"name": "audited"}, "spec": {
        "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
        "matchConditions": [{"name": "labelled", "expression": "has(object.metadata.labels) && 'audit' in object.metadata.labels"}],
        "validations": [{"expression": "object.spec.replicas < 3", "message": "too many replicas"}]}}));
    kube.add_binding(json!({"metadata": {"name": "audited"}, "spec": {"policyName": "audited", "validationActions": ["Audit"]}}));
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        kube.client(),
        NS,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        ),
    );
    for (name, labels) in [("big", json!({"audit": "yes"})), ("unlabelled", json!({}))] {
        let d: DynamicObject =
            serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels}, "spec": {"replicas": 5}}))
            .unwrap();
        deployments
            .create(&PostParams::default(), &d)
            .await
            .expect("audit admits");
    }
    let audit = kube.audit_events();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (
            audit[0].name.as_str(),
            audit[0].message.as_str(),
            audit[0].resource.as_str()
        ),
        ("big", "too many replicas", "deployments.apps")
    );
    assert!(
        kube.admission_log()
            .iter()
            .any(|r| r.name == "unlabelled" && r.decision == Decision::NotMatched)
    );
}

#[test]
fn vap_evaluator_offline() {
    let hex = hex();
    let params = json!({"data": {format!("sha256-{hex}"): "INC-1 (registry.example/app)"}});
    let policy = sample_policy();
    let pod = |spec: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NS}, "spec": spec});
    let bad = format!("registry.example/app@sha256:{hex}");
    for spec in [
        json!({"containers": [{"name": "a", "image": bad}]}),
        json!({"containers": [{"name": "a", "image": "ok:1"}], "initContainers": [{"name": "i", "image": bad}]}),
        json!({"containers": [{"name": "a", "image": "ok:1"}], "ephemeralContainers": [{"name": "e", "image": bad}]}),
        json!({"containers": [{"name": "a", "image": format!("registry.example/app:1.0@sha256:{hex}")}]}),
    ] {
        let v =
            vap::evaluate_policy_on(&policy, Some(&params), &pod(spec.clone())).expect("evaluates");
        assert!(!v.allowed, "{spec}");
        assert_eq!(v.reason, "Forbidden");
        assert!(
            v.message
                .ends_with("is denied by Recall: INC-1 (registry.example/app)"),
            "{}",
            v.message
        );
        assert!(v.message_expression_error.is_none());
    }
    for spec in [
        json!({"containers": [{"name": "a", "image": format!("registry.example/app@sha256:{}", "e".repeat(64))}]}),
        json!({"containers": [{"name": "a", "image": "registry.example/app:1.0"}]}),
        json!({}),
    ] {
        assert!(
            vap::evaluate_policy_on(&policy, Some(&params), &pod(spec))
                .unwrap()
                .allowed
        );
    }
    // Params without data: admitted; no params at all: the expression errors (the binding
    // would have been skipped before evaluation by parameterNotFoundAction: Allow).
    assert!(
        vap::evaluate_policy_on(
            &policy,
            Some(&json!({"metadata": {}})),
            &pod(json!({"containers": [{"name": "a", "image": bad}]}))
        )
        .unwrap()
        .allowed
    );
    let e = vap::evaluate_policy_on(&policy, None, &pod(json!({}))).unwrap_err();
    assert!(e.message.starts_with("variables.denied:"), "{e}");

    // Generic semantics: message fallbacks, reason default, non-bool, match conditions,
    // request/oldObject bindings.
    let generic = json!({"spec": {
    "matchConditions": [{"name": "update-only", "expression": "request.operation == 'UPDATE'"}],
    "variables": [{"name": "a", "expression": "object.n"}, {"name": "b", "expression": "variables.a * 2"}],
    "validations": [
        {"expression": "variables.b < 100", "messageExpression": "object.nope"},
        {"expression": "variables.b < 10"},
    ]}});
    let req = |n: i64, op: &str| AdmissionRequest {
        operation: op.into(),
        version: "v1".into(),
        kind: "Thing".into(),
        resource: "things".into(),
        name: "t".into(),
        object: json!({"n": n}),
        old_object: Some(json!({"n": 0})),
        ..Default::default()
    };
    let b = json!({"spec": {"validationActions": ["Warn", "Audit"]}});
    let v = vap::evaluate(&generic, &b, None, &req(1, "CREATE")).unwrap();
    assert!(!v.matched && v.allowed);
    let v = vap::evaluate(&generic, &b, None, &req(70, "UPDATE")).unwrap();
    assert_eq!(
        (v.allowed, v.message.as_str(), v.reason.as_str()),
        (false, "failed expression: variables.b < 100", "Invalid")
    );
    assert!(
        v.message_expression_error.is_some(),
        "the messageExpression errored and fell back"
    );
    assert_eq!(v.actions, ["Warn", "Audit"]);
    let v = vap::evaluate(&generic, &b, None, &req(7, "UPDATE")).unwrap();
    assert_eq!(
        (v.failed_validation, v.message.as_str()),
        (Some(1), "failed expression: variables.b < 10")
    );
    assert!(v.message_expression_error.is_none());
    let non_bool = json!({"spec": {"validations": [{"expression": "'yes'"}]}});
    let e = vap::evaluate(&non_bool, &b, None, &req(1, "CREATE")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "expression ''yes'' resulted in error: expected a bool, got string"
    );
    let uses_request = json!({"spec": {"validations": [{"expression":
        "request.name == 't' && request.kind.kind == 'Thing' && request.resource.resource == 'things' && oldObject.n == 0 && request.userInfo.username == ''"}]}});
    assert!(
        vap::evaluate(&uses_request, &b, None, &req(1, "UPDATE"))
            .unwrap()
            .allowed
    );

    // Constructs from the strings extension and macros the product may use.
    for (expr, want) in [
        ("'a@b@c'.lastIndexOf('@')", json!(3)),
        ("'sha256:ab'.replace(':', '-')", json!("sha256-ab")),
        ("'x@y'.substring(2)", json!("y")),
        ("'a,b'.split(',')", json!(["a", "b"])),
        (
            "[1, 2, 3].exists(x, x == 2) && [1, 2].all(x, x > 0)",
            json!(true),
        ),
        ("'k' in {'k': 1} && 2 in [1, 2]", json!(true)),
        (
            "'Ab'.lowerAscii().startsWith('a') && 'ab'.endsWith('b')",
            json!(true),
        ),
    ] {
        assert_eq!(vap::eval_expression(expr, &[]).unwrap(), want, "{expr}");
    }
}

#[tokio::test]
async fn kubeconfig_discovery_and_faults() {
    let eu = fake().await;
    let us = FakeKube::start("prod-us", "other-token").await;
    us.add_namespace("only-in-us", &[("team", "x")]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    FakeKube::write_kubeconfig_multi(&path, &[(&eu, "eu"), (&us, "us")]);
    let kc = kube::config::Kubeconfig::read_from(&path).expect("parse kubeconfig");
    for (ctx, want) in [("eu", 0), ("us", 1)] {
        let opts = kube::config::KubeConfigOptions {
            context: Some(ctx.into()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kc.clone(), &opts)
            .await
            .expect("config");
        assert_eq!(config.default_namespace, "default");
        let client = kube::Client::try_from(config).unwrap();
        let nss: Api<Namespace> = Api::all(client);
        assert_eq!(
            nss.list(&ListParams::default())
                .await
                .expect("list")
                .items
                .len(),
            want,
            "{ctx}"
        );
    }

    // Discovery (classic and aggregated) sees installed CRDs.
    eu.install_crd(
        "policy.sigstore.dev",
        "v1beta1",
        "clusterimagepolicies",
        "ClusterImagePolicy",
        false,
    );
    let d = Discovery::new(eu.client()).run().await.expect("discovery");
    assert!(d.has_group("policy.sigstore.dev"));
    assert!(d.has_group("apps"));
    let d = Discovery::new(eu.client())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    let (ar, caps) = d
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.kind == "ClusterImagePolicy")
        .expect("ClusterImagePolicy discovered");
    assert_eq!(ar.plural, "clusterimagepolicies");
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);
    assert!(eu.client().apiserver_version().await.is_ok());

    // Faults through the server. kube 5 retries 429/503/504 itself (its default
    // `RetryPolicy::server_retry`), so one 503 is invisible to the caller; a 500 is not.
    let status_fault = |code: u16, reason: &str| Fault::Status {
        code,
        retry_after: None,
        body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": "etcdserver: request timed out", "reason": reason, "code": code})
        .to_string(),
    };
    let route = "GET /api/v1/namespaces/*/configmaps";
    eu.server()
        .inject(route, status_fault(503, "ServiceUnavailable"));
    let cms: Api<ConfigMap> = Api::namespaced(eu.client(), NS);
    cms.list(&ListParams::default())
        .await
        .expect("a single 503 is retried by kube");
    assert_eq!(eu.requests_matching(route).len(), 2);
    eu.server()
        .inject(route, status_fault(500, "InternalError"));
    let e = api_err(cms.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));
    assert_eq!(eu.requests_matching(route).len(), 3);
    let mut config = kube::Config::new(FakeKube::unreachable_url().parse().unwrap());
    config.connect_timeout = Some(Duration::from_secs(2));
    let dead: Api<ConfigMap> = Api::namespaced(kube::Client::try_from(config).unwrap(), NS);
    let err = dead.list(&ListParams::default()).await.unwrap_err();
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "a refused connection is not an API error: {err:?}"
    );
}
