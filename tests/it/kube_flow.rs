//! The Kubernetes actions through the real `recall` binary, against the contract fake API
//! server (fakes/kube.rs), which evaluates the installed ValidatingAdmissionPolicy with a
//! real CEL interpreter on every create: after `kube.admission_deny` a Pod with the bad
//! digest is refused with the incident's message; the deny list survives concurrent
//! incidents; a rehearsal sends nothing; 403/409/unreachable behave; the running-pod sweep
//! finds exactly the matching pods with their owners across clusters; a Secret is rotated
//! once and its value never recorded.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::fakes::kube::FakeKube;
use crate::support::{Recall, events, kinds, write_file};

const TOKEN: &str = "kube-test-token";
const NS: &str = "recall-system";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// A Recall whose config lists `clusters` (fake, context name), each with `extra` keys.
fn recall_for(clusters: &[(&FakeKube, &str)], extra: &str) -> Recall {
    let r = Recall::new("");
    let kc = r.dir.path().join("kubeconfig");
    FakeKube::write_kubeconfig_multi(&kc, clusters);
    let mut toml = "[kube]\ntimeout = \"5s\"\npage_size = 500\n".to_string();
    for (_, name) in clusters {
        toml.push_str(&format!(
            "[[kube.clusters]]\nname = \"{name}\"\nkubeconfig = \"{}\"\ncontext = \"{name}\"\n{extra}\n",
            kc.display()
        ));
    }
    toml.push_str("[groups]\nrelease-admins = [\"alice\", \"bob\"]\n");
    std::fs::write(&r.config, toml).expect("config");
    r
}

/// A mode's deny-list ConfigMap as the cluster stores it.
fn deny_list(k: &FakeKube, mode: &str) -> Option<Value> {
    k.object(
        "",
        "v1",
        "configmaps",
        Some(NS),
        &format!("recall-denied-digests-{mode}"),
    )
}

const DENY_PLAYBOOK: &str = r#"name: kube-deny
description: deny digests in every cluster
params:
  digests: {type: list, required: true}
  image: {type: string, required: true}
  mode: {type: string, default: enforce}
steps:
  - id: clusters
    uses: kube.clusters
  - id: deny
    uses: kube.admission_deny
    needs: [clusters]
    for_each: ${{ steps.clusters.outputs.names }}
    with:
      cluster: ${{ item }}
      digests: ${{ params.digests }}
      image: ${{ params.image }}
      mode: ${{ params.mode }}
"#;

fn deny(r: &Recall, digests: &[String], image: &str, mode: &str, dry: bool) -> crate::support::Run {
    let pb = write_file(r.dir.path(), "kube-deny.yaml", DENY_PLAYBOOK.as_bytes());
    let d = format!("digests={}", serde_json::to_string(digests).unwrap());
    let i = format!("image={image}");
    let m = format!("mode={mode}");
    let mut args = vec![
        "incident",
        "start",
        "--playbook",
        &pb,
        "--json",
        "--param",
        &d,
        "--param",
        &i,
        "--param",
        &m,
    ];
    if dry {
        args.push("--dry-run");
    }
    r.run(&args)
}

/// The run, with its timeline in the panic message when it did not exit as expected.
fn expect_code(r: &Recall, run: &crate::support::Run, code: i32) {
    if run.code != Some(code) {
        let tl = run
            .stdout
            .lines()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .and_then(|v| v["id"].as_str().map(String::from))
            .map(|id| r.run(&["timeline", &id, "--format", "md"]).stdout)
            .unwrap_or_default();
        panic!("expected exit {code}: {run:?}\n--- timeline\n{tl}");
    }
}

fn pod(name: &str, kind: &str, image: &str) -> Pod {
    let mut spec = json!({ "containers": [{ "name": "app", "image": "registry.example/app:ok" }] });
    match kind {
        "containers" => spec["containers"][0]["image"] = json!(image),
        "initContainers" => spec["initContainers"] = json!([{ "name": "init", "image": image }]),
        _ => unreachable!(),
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "namespace": "default" },
        "spec": spec,
    }))
    .unwrap()
}

fn refused(r: Result<Pod, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            s.message
        }
        Ok(p) => panic!("admitted: {:?}", p.metadata.name),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_refuses_the_digest_in_every_container_kind_and_admits_others() {
    let k = FakeKube::start("c1", TOKEN).await;
    let r = recall_for(&[(&k, "c1")], "");
    let bad = digest('b');
    let platform = digest('f');
    let image = "registry.example/app";

    // Rehearsal first: reads only, at the fake.
    let before = k.mutations();
    let dry = deny(&r, &[bad.clone(), platform.clone()], image, "enforce", true);
    expect_code(&r, &dry, 0);
    assert_eq!(k.mutations(), before, "a rehearsal mutated the cluster");
    assert_eq!(k.dry_runs(), 0, "a rehearsal sent even a dry-run write");
    let tl = r.timeline(&dry.id());
    let planned = events(&tl, "attempt.planned");
    let reqs = planned
        .iter()
        .find(|e| e["step"] == "deny")
        .and_then(|e| e["data"]["detail"]["requests"].as_array().cloned())
        .unwrap_or_default();
    assert!(
        reqs.iter()
            .any(|q| q["path"].as_str().unwrap_or("").contains("configmaps")),
        "{reqs:?}"
    );

    // Live.
    let run = deny(
        &r,
        &[bad.clone(), platform.clone()],
        image,
        "enforce",
        false,
    );
    expect_code(&r, &run, 0);
    let id = run.id();
    let cm = deny_list(&k, "enforce").expect("deny list");
    let key = bad.replace(':', "-");
    assert_eq!(
        cm["data"][&key],
        format!("incident {id} (registry.example/app)")
    );
    assert!(cm["data"].get(platform.replace(':', "-")).is_some());
    // The canary proved it, through admission, without creating anything.
    let tl = r.timeline(&id);
    let ok = events(&tl, "attempt.succeeded");
    let out = &ok
        .iter()
        .find(|e| e["step"] == "deny")
        .expect("deny succeeded")["data"]["outputs"];
    let canary = out["clusters"][0]["canary"].as_array().expect("canary ran");
    assert_eq!(canary.len(), 2, "{out}");
    assert!(
        canary[0]["refused"].as_str().unwrap().contains(&id),
        "{out}"
    );
    assert!(k.dry_runs() >= 2);
    assert!(k.objects("pods").is_empty(), "the canary must never exist");

    let pods: Api<Pod> = Api::namespaced(k.client(), "default");
    let pp = PostParams::default();
    // Bad digest, each container kind, with and without a tag before the `@`.
    let msg = refused(
        pods.create(&pp, &pod("a", "containers", &format!("{image}@{bad}")))
            .await,
    );
    assert!(
        msg.contains(&format!("is denied by Recall: incident {id}")),
        "{msg}"
    );
    refused(
        pods.create(
            &pp,
            &pod("b", "initContainers", &format!("{image}:2.4.0@{bad}")),
        )
        .await,
    );
    refused(
        pods.create(&pp, &pod("c", "containers", &format!("{image}@{platform}")))
            .await,
    );
    // Another digest of the same repository, and a tag-only reference: admitted.
    pods.create(
        &pp,
        &pod("d", "containers", &format!("{image}@{}", digest('c'))),
    )
    .await
    .expect("other digest admitted");
    pods.create(&pp, &pod("e", "containers", &format!("{image}:2.4.0")))
        .await
        .expect("tag-only admitted (admission sees no digest)");
    // Ephemeral container with the bad digest on a running pod: refused.
    let eph = json!({ "spec": { "ephemeralContainers": [{ "name": "dbg", "image": format!("{image}@{bad}") }] } });
    let err = pods
        .patch_subresource(
            "ephemeralcontainers",
            "d",
            &PatchParams::default(),
            &Patch::Strategic(eph),
        )
        .await
        .expect_err("ephemeral container with the bad digest");
    assert!(err.to_string().contains("denied by Recall"), "{err}");
    // A Deployment whose template uses it: refused (workloads = true by default).
    let deps: Api<Deployment> = Api::namespaced(k.client(), "default");
    let dep: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web", "namespace": "default" },
        "spec": { "selector": { "matchLabels": { "app": "web" } },
                  "template": { "metadata": { "labels": { "app": "web" } },
                                "spec": { "containers": [{ "name": "app", "image": format!("{image}@{bad}") }] } } },
    }))
    .unwrap();
    let err = deps
        .create(&pp, &dep)
        .await
        .expect_err("deployment refused");
    assert!(err.to_string().contains("denied by Recall"), "{err}");
    assert!(
        k.admission_errors().is_empty(),
        "{:?}",
        k.admission_errors()
    );

    // A second run is a no-op on the cluster (the lists already hold the digests).
    let writes = k.mutations();
    let again = deny(&r, std::slice::from_ref(&bad), image, "enforce", false);
    expect_code(&r, &again, 0);
    assert_eq!(k.mutations(), writes, "re-denying rewrote something");

    // Lift it: the Pod is admitted again.
    let allow = write_file(
        r.dir.path(),
        "allow.yaml",
        format!(
            "name: allow\ndescription: lift\nsteps:\n  - id: allow\n    uses: kube.admission_allow\n    with:\n      digests: [\"{bad}\", \"{platform}\"]\n"
        )
        .as_bytes(),
    );
    let lifted = r.run(&["incident", "start", "--playbook", &allow, "--json"]);
    expect_code(&r, &lifted, 0);
    assert!(kinds(&r.timeline(&lifted.id())).contains(&"attempt.succeeded".to_string()));
    pods.create(&pp, &pod("f", "containers", &format!("{image}@{bad}")))
        .await
        .expect("admitted after kube.admission_allow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_incidents_and_conflicts_lose_no_digest() {
    let k = FakeKube::start("c1", TOKEN).await;
    let r = recall_for(&[(&k, "c1")], "canary = false\n");
    // A key written by someone else (kubectl edit) must survive too.
    let manual = format!("sha256-{}", "e".repeat(64));
    k.add_configmap(
        NS,
        "recall-denied-digests-enforce",
        &[(manual.as_str(), "added by hand")],
    );
    let image = "registry.example/app";
    // Two incidents at once, each adding its own digests, with injected conflicts.
    k.conflict_next(3);
    let digests: Vec<Vec<String>> = vec![
        vec![digest('1'), digest('2')],
        vec![digest('3')],
        vec![digest('4')],
    ];
    // Written once: a process reading it while another rewrites it would see it empty.
    let pb = write_file(r.dir.path(), "kube-deny.yaml", DENY_PLAYBOOK.as_bytes());
    let handles: Vec<_> = digests
        .iter()
        .map(|ds| {
            let mut c = r.cmd(&[
                "incident",
                "start",
                "--playbook",
                &pb,
                "--json",
                "--param",
                &format!("digests={}", serde_json::to_string(ds).unwrap()),
                "--param",
                &format!("image={image}"),
            ]);
            std::thread::spawn(move || c.output().expect("spawn"))
        })
        .collect();
    for h in handles {
        let o = h.join().unwrap();
        let run = crate::support::Run {
            code: o.status.code(),
            signal: None,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        expect_code(&r, &run, 0);
    }
    let cm = deny_list(&k, "enforce").expect("deny list");
    let keys: BTreeSet<String> = cm["data"].as_object().unwrap().keys().cloned().collect();
    let mut want: BTreeSet<String> = digests
        .iter()
        .flatten()
        .map(|d| d.replace(':', "-"))
        .collect();
    want.insert(manual.clone());
    assert_eq!(keys, want, "lost update: {cm}");
    assert!(
        k.requests()
            .iter()
            .filter(|q| q.method == "PATCH" || q.method == "POST")
            .count()
            >= 3,
        "the injected conflicts were retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_refusal_names_the_rule_and_other_clusters_still_deny() {
    let ok = FakeKube::start("ok", TOKEN).await;
    let locked = FakeKube::start("locked", TOKEN).await;
    locked.forbid("patch", "", "configmaps");
    locked.forbid("create", "", "configmaps");
    let r = recall_for(&[(&ok, "ok"), (&locked, "locked")], "canary = false\n");
    // A third cluster that does not answer at all.
    let kc = r.dir.path().join("kubeconfig-down");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: down\n  cluster: {{server: \"{}\"}}\nusers:\n- name: u\n  user: {{token: {TOKEN}}}\ncontexts:\n- name: down\n  context: {{cluster: down, user: u}}\ncurrent-context: down\n",
            FakeKube::unreachable_url()
        ),
    )
    .unwrap();
    let mut cfg = std::fs::read_to_string(&r.config).unwrap();
    cfg = cfg.replace(
        "[groups]",
        &format!(
            "[[kube.clusters]]\nname = \"down\"\nkubeconfig = \"{}\"\ncanary = false\n[groups]",
            kc.display()
        ),
    );
    std::fs::write(&r.config, cfg).unwrap();

    let run = deny(&r, &[digest('b')], "registry.example/app", "enforce", false);
    expect_code(&r, &run, 1);
    let tl = r.timeline(&run.id());
    // The good cluster is denied.
    assert!(deny_list(&ok, "enforce").is_some());
    // The locked one fails its own item, naming the verb and resource.
    let failed = events(&tl, "attempt.failed");
    let text = serde_json::to_string(&failed).unwrap();
    assert!(
        text.contains("verb `create` on resource `configmaps`")
            || text.contains("verb `patch` on resource `configmaps`"),
        "{text}"
    );
    assert!(text.contains("locked"), "{text}");
    // The unreachable one fails its own item as unreachable (after retries run out).
    assert!(text.contains("unreachable"), "{text}");
    assert_eq!(
        failed.len(),
        2,
        "only the two bad clusters' items fail: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_running_over_three_clusters_returns_exactly_the_matches_with_owners() {
    let bad = digest('b');
    let other = digest('c');
    let mut fakes = Vec::new();
    let mut expected: BTreeSet<(String, String, String)> = BTreeSet::new();
    for (ci, name) in ["east", "west", "lab"].iter().enumerate() {
        let k = FakeKube::start(name, TOKEN).await;
        // 5,000 pods per cluster, almost all clean.
        for i in 0..5000 {
            k.add_pod(
                &format!("ns{}", i % 20),
                &format!("clean-{i}"),
                &[(
                    "containers",
                    "app",
                    "r.example/app:1",
                    &format!("r.example/app@{other}"),
                )],
                None,
            );
        }
        // Deployment → ReplicaSet → Pod, running the bad digest (docker-pullable form).
        k.put_object("apps", "v1", "deployments", Some("shop"), json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}}));
        let rs_owner = k.owner_reference("shop", "Deployment", "web");
        k.put_object("apps", "v1", "replicasets", Some("shop"), json!({"metadata": {"name": "web-7d9", "namespace": "shop", "ownerReferences": [rs_owner]}, "spec": {"selector": {"matchLabels": {"a": "b"}}}}));
        k.add_pod(
            "shop",
            &format!("web-7d9-{ci}"),
            &[(
                "containers",
                "app",
                "r.example/app:2.4.0",
                &format!("docker-pullable://r.example/app@{bad}"),
            )],
            Some(("ReplicaSet", "web-7d9")),
        );
        expected.insert((
            name.to_string(),
            format!("web-7d9-{ci}"),
            "Deployment/web".into(),
        ));
        // CronJob → Job → Pod, bad digest in an init container (containerd form).
        k.put_object("batch", "v1", "cronjobs", Some("ops"), json!({"metadata": {"name": "nightly", "namespace": "ops"}, "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}}}}}}));
        let job_owner = k.owner_reference("ops", "CronJob", "nightly");
        k.put_object("batch", "v1", "jobs", Some("ops"), json!({"metadata": {"name": "nightly-1", "namespace": "ops", "ownerReferences": [job_owner]}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}}}}));
        k.add_pod(
            "ops",
            "nightly-1-x",
            &[
                (
                    "containers",
                    "c",
                    "r.example/tool:1",
                    &format!("r.example/tool@{other}"),
                ),
                (
                    "initContainers",
                    "fetch",
                    "r.example/app:2.4.0",
                    &format!("r.example/app@{bad}"),
                ),
            ],
            Some(("Job", "nightly-1")),
        );
        expected.insert((
            name.to_string(),
            "nightly-1-x".into(),
            "CronJob/nightly".into(),
        ));
        // A bare pod with a config ID only (not comparable): not a match.
        k.add_pod(
            "misc",
            "debug",
            &[(
                "containers",
                "sh",
                "r.example/app:2.4.0",
                &format!("docker://{bad}"),
            )],
            None,
        );
        fakes.push(k);
    }
    let clusters: Vec<(&FakeKube, &str)> = fakes.iter().zip(["east", "west", "lab"]).collect();
    let r = recall_for(&clusters, "");
    let pb = write_file(
        r.dir.path(),
        "sweep.yaml",
        br#"name: sweep
description: find and record
params:
  digests: {type: list, required: true}
steps:
  - id: running
    uses: kube.find_running
    with:
      digests: ${{ params.digests }}
  - id: record
    uses: incident.note
    needs: [running]
    with:
      message: "running: ${{ steps.running.outputs.count }} in ${{ steps.running.outputs.workloads }}"
"#,
    );
    let d = format!("digests=[\"{bad}\"]");
    let run = r.run(&[
        "incident",
        "start",
        "--playbook",
        &pb,
        "--json",
        "--param",
        &d,
    ]);
    expect_code(&r, &run, 0);
    let tl = r.timeline(&run.id());
    let ok = events(&tl, "attempt.succeeded");
    let out = &ok.iter().find(|e| e["step"] == "running").expect("running")["data"]["outputs"];
    let got: BTreeSet<(String, String, String)> = out["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["cluster"].as_str().unwrap().to_string(),
                r["pod"].as_str().unwrap().to_string(),
                r["workload"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected, "{out}");
    assert_eq!(out["count"], 6);
    for c in out["clusters"].as_array().unwrap() {
        assert_eq!(c["pods_scanned"], 5003, "{c}");
        assert!(c["pages"].as_u64().unwrap() >= 11, "paginated: {c}");
        assert_eq!(c["unverifiable_containers"], 1, "{c}");
    }
    // The later step saw the output.
    let note = ok.iter().find(|e| e["step"] == "record").expect("note");
    let text = serde_json::to_string(note).unwrap();
    assert!(text.contains("running: 6 in"), "{text}");
    assert!(text.contains("east/shop/Deployment/web"), "{text}");
    for k in &fakes {
        assert_eq!(k.mutations(), 0, "a sweep is read-only");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_secret_once_restarts_users_and_never_records_the_value() {
    let k = FakeKube::start("c1", TOKEN).await;
    k.add_secret(
        "pay",
        "db",
        &[("password", "leaked-value-123"), ("user", "app")],
    );
    k.put_object("apps", "v1", "deployments", Some("pay"), json!({"metadata": {"name": "api", "namespace": "pay"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "app", "image": "x", "envFrom": [{"secretRef": {"name": "db"}}]}]}}}}));
    k.put_object("apps", "v1", "deployments", Some("pay"), json!({"metadata": {"name": "other", "namespace": "pay"}, "spec": {"selector": {"matchLabels": {"a": "c"}}, "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}}));
    let r = recall_for(&[(&k, "c1")], "");
    let pb = write_file(
        r.dir.path(),
        "rotate.yaml",
        br#"name: rotate
description: rotate
steps:
  - id: rotate
    uses: kube.rotate_secret
    with:
      namespace: pay
      name: db
      keys: [password]
"#,
    );
    // Rehearsal: nothing written.
    let dry = r.run(&[
        "incident",
        "start",
        "--playbook",
        &pb,
        "--json",
        "--dry-run",
    ]);
    expect_code(&r, &dry, 0);
    assert_eq!(k.mutations(), 0);
    let run = r.run(&["incident", "start", "--playbook", &pb, "--json"]);
    expect_code(&r, &run, 0);
    let s = k.object("", "v1", "secrets", Some("pay"), "db").unwrap();
    let new = s["data"]["password"].as_str().unwrap().to_string();
    use base64::Engine;
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&new)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(decoded.len(), 40);
    assert_ne!(decoded, "leaked-value-123");
    assert_eq!(
        s["metadata"]["annotations"]["recall.dev/incident"],
        run.id()
    );
    let dep = k
        .object("apps", "v1", "deployments", Some("pay"), "api")
        .unwrap();
    assert!(
        dep["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{dep}"
    );
    let other = k
        .object("apps", "v1", "deployments", Some("pay"), "other")
        .unwrap();
    assert!(
        other["spec"]["template"]["metadata"]
            .get("annotations")
            .is_none(),
        "{other}"
    );
    // The value is nowhere in Recall's records.
    let tl = r.timeline(&run.id());
    let all = serde_json::to_string(&tl).unwrap();
    assert!(
        !all.contains(&decoded) && !all.contains(&new),
        "the new value leaked into the timeline"
    );
    let db = std::fs::read(r.db_path()).unwrap();
    assert!(
        !db.windows(decoded.len()).any(|w| w == decoded.as_bytes()),
        "the value is in the database"
    );
    assert!(!run.stdout.contains(&decoded) && !run.stderr.contains(&decoded));
    let fp = s["metadata"]["annotations"]["recall.dev/fingerprint.password"]
        .as_str()
        .unwrap();
    assert!(all.contains(fp), "the fingerprint is recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_playbook_rehearsal_sends_no_kubernetes_mutation() {
    let k = FakeKube::start("c1", TOKEN).await;
    k.add_secret("pay", "db", &[("password", "x")]);
    let r = recall_for(&[(&k, "c1")], "");
    // The registry is unreachable in this test: the rehearsal records that as a finding,
    // and the Kubernetes steps still plan against the fake.
    let run = r.run(&[
        "incident",
        "start",
        "--playbook",
        "image-leaked-secret",
        "--json",
        "--dry-run",
        "--auto-approve",
        "--param",
        "image=127.0.0.1:9/acme/api",
        "--param",
        &format!("digest={}", digest('b')),
        "--param",
        r#"tags=["2.4.0"]"#,
        "--param",
        "secret_namespace=pay",
        "--param",
        "secret_name=db",
        "--param",
        r#"secret_keys=["password"]"#,
    ]);
    let _ = run.code;
    assert_eq!(k.mutations(), 0, "{run:?}");
    assert_eq!(k.dry_runs(), 0);
    let tl = r.timeline(&run.id());
    let rotate: Vec<&Value> = events(&tl, "attempt.planned")
        .into_iter()
        .filter(|e| e["step"] == "rotate")
        .collect();
    assert_eq!(
        rotate.len(),
        1,
        "{}",
        serde_json::to_string_pretty(&kinds(&tl)).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kyverno_and_sigstore_dialects() {
    let ky = FakeKube::start("ky", TOKEN).await;
    let sig = FakeKube::start("sig", TOKEN).await;
    // Neither CRD installed yet: the error says what is missing.
    let r = recall_for(&[(&ky, "ky")], "dialect = \"kyverno\"\ncanary = false\n");
    let run = deny(&r, &[digest('b')], "registry.example/app", "enforce", false);
    expect_code(&r, &run, 1);
    let text = serde_json::to_string(&events(&r.timeline(&run.id()), "attempt.failed")).unwrap();
    assert!(text.contains("is Kyverno installed?"), "{text}");

    ky.install_crd(
        "kyverno.io",
        "v1",
        "clusterpolicies",
        "ClusterPolicy",
        false,
    );
    let run = deny(&r, &[digest('b')], "registry.example/app", "warn", false);
    expect_code(&r, &run, 0);
    let cp = ky
        .object(
            "kyverno.io",
            "v1",
            "clusterpolicies",
            None,
            "recall-deny-digests-warn",
        )
        .expect("ClusterPolicy installed");
    assert_eq!(cp["spec"]["emitWarning"], true);
    assert_eq!(cp["spec"]["rules"][0]["validate"]["failureAction"], "Audit");
    let cm = deny_list(&ky, "warn").expect("deny list");
    assert!(cm["data"].get(digest('b').replace(':', "-")).is_some());
    // Tightening to enforce moves the digest; loosening back to audit keeps it enforced.
    expect_code(
        &r,
        &deny(&r, &[digest('b')], "registry.example/app", "enforce", false),
        0,
    );
    expect_code(
        &r,
        &deny(&r, &[digest('b')], "registry.example/app", "audit", false),
        0,
    );
    let enforce = deny_list(&ky, "enforce").unwrap();
    let warn = deny_list(&ky, "warn").unwrap();
    assert!(
        enforce["data"].get(digest('b').replace(':', "-")).is_some(),
        "{enforce}"
    );
    assert!(
        warn["data"].as_object().is_none_or(|d| d.is_empty()),
        "moved, not copied: {warn}"
    );
    assert!(
        deny_list(&ky, "audit").is_none_or(|c| c["data"].as_object().is_none_or(|d| d.is_empty()))
    );

    // Sigstore: a digest cannot be pinned; nothing is applied unless asked.
    sig.install_crd(
        "policy.sigstore.dev",
        "v1beta1",
        "clusterimagepolicies",
        "ClusterImagePolicy",
        false,
    );
    let rs = recall_for(
        &[(&sig, "sig")],
        "dialect = \"sigstore-policy-controller\"\ncanary = false\n",
    );
    let run = deny(
        &rs,
        &[digest('b')],
        "registry.example/app",
        "enforce",
        false,
    );
    expect_code(&rs, &run, 1);
    let text = serde_json::to_string(&events(&rs.timeline(&run.id()), "attempt.failed")).unwrap();
    assert!(text.contains("cannot deny a single digest"), "{text}");
    assert_eq!(sig.mutations(), 0);
    let pb = write_file(
        rs.dir.path(),
        "block.yaml",
        format!(
            "name: block\ndescription: block the repository\nsteps:\n  - id: block\n    uses: kube.admission_deny\n    with:\n      digests: [\"{}\"]\n      image: registry.example/app\n      block_repository: true\n",
            digest('b')
        )
        .as_bytes(),
    );
    let run = rs.run(&["incident", "start", "--playbook", &pb, "--json"]);
    expect_code(&rs, &run, 0);
    let cip = sig
        .object(
            "policy.sigstore.dev",
            "v1beta1",
            "clusterimagepolicies",
            None,
            "recall-block-registry-example-app",
        )
        .expect("ClusterImagePolicy");
    assert_eq!(cip["spec"]["images"][0]["glob"], "registry.example/app*");
    assert_eq!(cip["spec"]["authorities"][0]["static"]["action"], "fail");
}

/// SIGKILL right after the Secret write returned, before Recall recorded it: the resume
/// must find its own rotation on the Secret and not rotate a second time (a second value
/// would orphan the first one already handed to the restarted pods).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_rotation_does_not_rotate_twice() {
    let k = FakeKube::start("c1", TOKEN).await;
    k.add_secret("pay", "db", &[("password", "leaked")]);
    k.put_object("apps", "v1", "deployments", Some("pay"), json!({"metadata": {"name": "api", "namespace": "pay"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "app", "image": "x", "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}]}}}}));
    let r = recall_for(&[(&k, "c1")], "");
    let mut cfg = std::fs::read_to_string(&r.config).unwrap();
    cfg.push_str("[engine]\nreconcile_grace = \"500ms\"\n");
    std::fs::write(&r.config, cfg).unwrap();
    let pb = write_file(
        r.dir.path(),
        "rotate.yaml",
        b"name: rotate\ndescription: rotate\nsteps:\n  - id: rotate\n    uses: kube.rotate_secret\n    with:\n      namespace: pay\n      name: db\n      keys: [password]\n",
    );
    let killed = r.run_env(
        &["incident", "start", "--playbook", &pb, "--json"],
        &[("RECALL_FAILPOINT", "after_call:1")],
    );
    assert_eq!(killed.signal, Some(9), "{killed:?}");
    let first = k.object("", "v1", "secrets", Some("pay"), "db").unwrap();
    let value = first["data"]["password"].clone();
    let resumed = r.run(&["incident", "resume"]);
    assert_eq!(resumed.code, Some(0), "{resumed:?}");
    let after = k.object("", "v1", "secrets", Some("pay"), "db").unwrap();
    assert_eq!(after["data"]["password"], value, "rotated a second time");
    let puts = k
        .requests()
        .iter()
        .filter(|q| q.method == "PUT" && q.path().ends_with("/secrets/db"))
        .count();
    assert_eq!(puts, 1, "exactly one write of the Secret");
    let restarts = k
        .requests()
        .iter()
        .filter(|q| q.method == "PATCH" && q.path().ends_with("/deployments/api"))
        .count();
    assert_eq!(restarts, 1, "exactly one rollout restart");
}

/// `image-leaked-secret` end to end: a real distribution registry and a fake cluster.
/// The rehearsal sends no mutating request to either; the live run denies every digest
/// of the image at admission (proven by the canary and by a Pod create), finds the pod
/// already running it, rotates the Secret, and the postmortem lists the running workload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_leaked_secret_denies_finds_and_rotates() {
    let reg = match crate::support::registry::Registry::start().await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let bad = reg.seed_image("acme/api", "2.4.0").await.expect("seed");
    let image = format!("{}/acme/api", reg.host());
    let k = FakeKube::start("prod", TOKEN).await;
    k.add_secret("pay", "db", &[("password", "leaked")]);
    k.add_pod(
        "pay",
        "api-0",
        &[(
            "containers",
            "api",
            &format!("{image}:2.4.0"),
            &format!("{image}@{}", bad.digest),
        )],
        None,
    );
    let r = recall_for(&[(&k, "prod")], "");
    let mut cfg = std::fs::read_to_string(&r.config).unwrap();
    cfg.push_str(&format!(
        "[oci]\ninsecure = [\"{}\"]\ntimeout = \"10s\"\n",
        reg.host()
    ));
    std::fs::write(&r.config, cfg).unwrap();
    let args = |dry: bool| {
        let mut a: Vec<String> = [
            "incident",
            "start",
            "--playbook",
            "image-leaked-secret",
            "--json",
            "--param",
            &format!("image={image}"),
            "--param",
            &format!("digest={}", bad.digest),
            "--param",
            r#"tags=["2.4.0"]"#,
            "--param",
            "secret_namespace=pay",
            "--param",
            "secret_name=db",
            "--param",
            r#"secret_keys=["password"]"#,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if dry {
            a.extend(["--dry-run".to_string(), "--auto-approve".to_string()]);
        }
        a
    };
    let mark = reg.mark();
    let dry_args = args(true);
    let dry = r.run(&dry_args.iter().map(String::as_str).collect::<Vec<_>>());
    expect_code(&r, &dry, 0);
    assert_eq!(k.mutations(), 0, "the rehearsal mutated the cluster");
    assert_eq!(k.dry_runs(), 0);
    assert!(
        reg.mutating_requests_since(mark).is_empty(),
        "the rehearsal mutated the registry"
    );
    let tl = r.timeline(&dry.id());
    let planned: Vec<&str> = events(&tl, "attempt.planned")
        .iter()
        .filter_map(|e| e["step"].as_str())
        .collect();
    for step in ["deny", "running", "rotate"] {
        assert!(planned.contains(&step), "{step} not planned: {planned:?}");
    }

    let live_args = args(false);
    let live = r.run(&live_args.iter().map(String::as_str).collect::<Vec<_>>());
    expect_code(&r, &live, 0);
    let id = live.id();
    let cm = deny_list(&k, "enforce").unwrap();
    assert!(
        cm["data"].get(bad.digest.replace(':', "-")).is_some(),
        "{cm}"
    );
    let pods: Api<Pod> = Api::namespaced(k.client(), "default");
    let msg = refused(
        pods.create(
            &PostParams::default(),
            &pod("x", "containers", &format!("{image}@{}", bad.digest)),
        )
        .await,
    );
    assert!(msg.contains(&id), "{msg}");
    let tl = r.timeline(&id);
    let ok = events(&tl, "attempt.succeeded");
    let running = &ok.iter().find(|e| e["step"] == "running").expect("running")["data"]["outputs"];
    assert_eq!(running["count"], 1, "{running}");
    assert_eq!(running["rows"][0]["pod"], "api-0");
    let s = k.object("", "v1", "secrets", Some("pay"), "db").unwrap();
    assert_eq!(
        s["metadata"]["annotations"]["recall.dev/incident"],
        id.as_str()
    );
    let pm = r.run(&["postmortem", &id]);
    assert!(pm.stdout.contains("## Running workloads"), "{}", pm.stdout);
    assert!(pm.stdout.contains("pod `api-0`"), "{}", pm.stdout);
}
