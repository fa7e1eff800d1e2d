//! The CEL proof, offline: the ValidatingAdmissionPolicy Recall generates
//! (`recall::k8s::policy::vap`) evaluated with a real CEL interpreter (the `cel` crate, via
//! fakes/vap.rs) against a corpus of pod and workload fixtures. Clean objects are
//! admitted; a denied digest in each container kind — with and without a tag before the
//! `@`, as an index or a platform digest — is refused with the incident's message; a
//! ConfigMap without data, or without our key, admits everything; UPDATEs that keep an
//! already-present image are admitted (a bad Deployment must stay editable). No
//! expression may error on any fixture.

use serde_json::{Value, json};

use crate::fakes::vap::{AdmissionRequest, compile_check, evaluate, evaluate_policy_on};
use recall::k8s::policy::{self, Mode};

fn d(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn params(digests: &[&str]) -> Value {
    let data: serde_json::Map<String, Value> = digests
        .iter()
        .map(|dg| {
            (
                policy::digest_key(dg),
                json!("incident INC-7 (r.example/app)"),
            )
        })
        .collect();
    json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "recall-denied-digests-enforce", "namespace": "recall-system"}, "data": data })
}

fn pod(containers: Value) -> Value {
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": containers })
}

fn template(kind: &str, spec: Value) -> Value {
    let (api, body) = match kind {
        "CronJob" => (
            "batch/v1",
            json!({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": spec}}}}),
        ),
        "Job" => ("batch/v1", json!({"template": {"spec": spec}})),
        _ => (
            "apps/v1",
            json!({"selector": {}, "template": {"spec": spec}}),
        ),
    };
    json!({ "apiVersion": api, "kind": kind, "metadata": {"name": "w", "namespace": "default"}, "spec": body })
}

fn c(name: &str, image: &str) -> Value {
    json!({ "name": name, "image": image })
}

#[test]
fn generated_policy_compiles() {
    for workloads in [true, false] {
        compile_check(&policy::vap(workloads)).unwrap_or_else(|(path, e)| panic!("{path}: {e}"));
    }
}

#[test]
fn corpus_of_pods_and_workloads() {
    let bad = d('b');
    let platform = d('f');
    let p = params(&[&bad, &platform]);
    let pol = policy::vap(true);
    let img = "r.example/app";
    // (label, object, denied?)
    let cases: Vec<(&str, Value, bool)> = vec![
        (
            "clean tag-only",
            pod(json!({"containers": [c("a", "r.example/app:1.0")]})),
            false,
        ),
        (
            "clean other digest",
            pod(json!({"containers": [c("a", &format!("{img}@{}", d('c')))]})),
            false,
        ),
        ("no containers field", pod(json!({})), false),
        (
            "container bad",
            pod(json!({"containers": [c("a", &format!("{img}@{bad}"))]})),
            true,
        ),
        (
            "container tag@bad",
            pod(json!({"containers": [c("a", &format!("{img}:2.4.0@{bad}"))]})),
            true,
        ),
        (
            "container platform digest",
            pod(json!({"containers": [c("a", &format!("{img}@{platform}"))]})),
            true,
        ),
        (
            "second container bad",
            pod(json!({"containers": [c("ok", "x:1"), c("a", &format!("other.example/x@{bad}"))]})),
            true,
        ),
        (
            "init bad",
            pod(
                json!({"containers": [c("a", "x:1")], "initContainers": [c("i", &format!("{img}@{bad}"))]}),
            ),
            true,
        ),
        (
            "ephemeral bad",
            pod(
                json!({"containers": [c("a", "x:1")], "ephemeralContainers": [c("e", &format!("{img}@{bad}"))]}),
            ),
            true,
        ),
        (
            "registry with port",
            pod(json!({"containers": [c("a", &format!("127.0.0.1:5000/app:1@{bad}"))]})),
            true,
        ),
        (
            "63-digit lookalike",
            pod(json!({"containers": [c("a", &format!("{img}@sha256:{}", "b".repeat(63)))]})),
            false,
        ),
        (
            "deployment bad",
            template(
                "Deployment",
                json!({"containers": [c("a", &format!("{img}@{bad}"))]}),
            ),
            true,
        ),
        (
            "statefulset clean",
            template("StatefulSet", json!({"containers": [c("a", "x:1")]})),
            false,
        ),
        (
            "daemonset init bad",
            template(
                "DaemonSet",
                json!({"containers": [c("a", "x:1")], "initContainers": [c("i", &format!("{img}@{bad}"))]}),
            ),
            true,
        ),
        (
            "replicaset bad",
            template(
                "ReplicaSet",
                json!({"containers": [c("a", &format!("{img}@{bad}"))]}),
            ),
            true,
        ),
        (
            "job bad",
            template(
                "Job",
                json!({"containers": [c("a", &format!("{img}@{bad}"))]}),
            ),
            true,
        ),
        (
            "cronjob bad",
            template(
                "CronJob",
                json!({"containers": [c("a", &format!("{img}@{bad}"))]}),
            ),
            true,
        ),
        (
            "cronjob clean",
            template("CronJob", json!({"containers": [c("a", "x:1")]})),
            false,
        ),
    ];
    for (label, obj, denied) in cases {
        let v = evaluate_policy_on(&pol, Some(&p), &obj).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(!v.allowed, denied, "{label}: {v:?}");
        assert!(v.message_expression_error.is_none(), "{label}: {v:?}");
        if denied {
            assert!(
                v.message
                    .contains("is denied by Recall: incident INC-7 (r.example/app)"),
                "{label}: {}",
                v.message
            );
            assert!(
                v.message.contains('@'),
                "{label}: the message names the image: {}",
                v.message
            );
            assert_eq!(v.reason, "Forbidden", "{label}");
        }
    }
}

#[test]
fn params_without_data_or_without_our_key_admit() {
    let bad = d('b');
    let pol = policy::vap(true);
    let obj = pod(json!({"containers": [c("a", &format!("r.example/app@{bad}"))]}));
    let no_data = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"} });
    let empty =
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {} });
    let other = params(&[&d('c')]);
    for (label, p) in [
        ("no data", &no_data),
        ("empty data", &empty),
        ("other digest", &other),
    ] {
        let v = evaluate_policy_on(&pol, Some(p), &obj).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(v.allowed, "{label}: {v:?}");
    }
}

#[test]
fn updates_are_refused_only_when_they_introduce_a_denied_image() {
    let bad = d('b');
    let p = params(&[&bad]);
    let pol = policy::vap(true);
    let binding = policy::vap_binding("recall-system", Mode::Enforce);
    let dep = |image: &str, replicas: i64| {
        let mut t = template("Deployment", json!({"containers": [c("a", image)]}));
        t["spec"]["replicas"] = json!(replicas);
        t
    };
    let bad_img = format!("r.example/app@{bad}");
    let req = |old: Value, new: Value| AdmissionRequest {
        operation: "UPDATE".into(),
        group: "apps".into(),
        version: "v1".into(),
        kind: "Deployment".into(),
        resource: "deployments".into(),
        namespace: "default".into(),
        name: "w".into(),
        object: new,
        old_object: Some(old),
        user: "alice".into(),
        ..AdmissionRequest::default()
    };
    // Scaling a Deployment that already runs the bad image to zero: admitted.
    let v = evaluate(
        &pol,
        &binding,
        Some(&p),
        &req(dep(&bad_img, 3), dep(&bad_img, 0)),
    )
    .unwrap();
    assert!(v.allowed, "{v:?}");
    // Fixing the image: admitted.
    let v = evaluate(
        &pol,
        &binding,
        Some(&p),
        &req(dep(&bad_img, 3), dep("r.example/app:2.4.1", 3)),
    )
    .unwrap();
    assert!(v.allowed, "{v:?}");
    // Rolling the bad image out: refused.
    let v = evaluate(
        &pol,
        &binding,
        Some(&p),
        &req(dep("r.example/app:2.3.0", 3), dep(&bad_img, 3)),
    )
    .unwrap();
    assert!(!v.allowed, "{v:?}");
    assert_eq!(v.actions, vec!["Deny".to_string()]);
    // An ephemeral container with the bad image added to a running Pod: refused.
    let running = pod(json!({"containers": [c("a", "x:1")]}));
    let mut with_dbg = running.clone();
    with_dbg["spec"]["ephemeralContainers"] = json!([c("dbg", &bad_img)]);
    let r = AdmissionRequest {
        operation: "UPDATE".into(),
        version: "v1".into(),
        kind: "Pod".into(),
        resource: "pods".into(),
        sub_resource: "ephemeralcontainers".into(),
        namespace: "default".into(),
        name: "p".into(),
        object: with_dbg,
        old_object: Some(running),
        user: "alice".into(),
        ..AdmissionRequest::default()
    };
    let v = evaluate(&pol, &binding, Some(&p), &r).unwrap();
    assert!(!v.allowed, "{v:?}");
}

#[test]
fn warn_and_audit_bindings_carry_their_actions() {
    let bad = d('b');
    let p = params(&[&bad]);
    let pol = policy::vap(false);
    let obj = pod(json!({"containers": [c("a", &format!("r.example/app@{bad}"))]}));
    for (mode, action) in [(Mode::Warn, "Warn"), (Mode::Audit, "Audit")] {
        let req = AdmissionRequest {
            operation: "CREATE".into(),
            version: "v1".into(),
            kind: "Pod".into(),
            resource: "pods".into(),
            namespace: "default".into(),
            name: "p".into(),
            object: obj.clone(),
            user: "alice".into(),
            ..AdmissionRequest::default()
        };
        let v = evaluate(
            &pol,
            &policy::vap_binding("recall-system", mode),
            Some(&p),
            &req,
        )
        .unwrap();
        assert!(!v.allowed);
        assert_eq!(v.actions, vec![action.to_string()]);
    }
}
