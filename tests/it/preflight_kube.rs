//! Preflight of the kube actions, end to end: the `recall` binary rehearses a playbook
//! against the contract fake API server (fakes/kube.rs), whose SelfSubjectAccessReviews
//! answer from its RBAC model, and the checks are read back from the timeline
//! (`data.detail.preflight` of each planned attempt). Every rehearsal leaves the fake's
//! mutation counters at zero (reviews are not mutations).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::fakes::kube::FakeKube;
use crate::fakes::{Fault, Request};
use crate::support::{Recall, Run, events, write_file};

const TOKEN: &str = "kube-preflight-token";
const NS: &str = "recall-system";
const SECRET_VALUE: &str = "leaked-value-123";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// A Recall whose config lists `clusters` (fake, context name), each with `extra` keys.
fn recall_for(clusters: &[(&FakeKube, &str)], extra: &str) -> Recall {
    let r = Recall::new("");
    let kc = r.dir.path().join("kubeconfig");
    FakeKube::write_kubeconfig_multi(&kc, clusters);
    let mut toml = "[kube]\ntimeout = \"5s\"\n".to_string();
    for (_, name) in clusters {
        toml.push_str(&format!(
            "[[kube.clusters]]\nname = \"{name}\"\nkubeconfig = \"{}\"\ncontext = \"{name}\"\n{extra}\n",
            kc.display()
        ));
    }
    std::fs::write(&r.config, toml).expect("config");
    r
}

/// Adds a cluster `down` whose API server does not answer.
fn add_unreachable(r: &Recall) {
    let kc = r.dir.path().join("kubeconfig-down");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: down\n  cluster: {{server: \"{}\"}}\nusers:\n- name: u\n  user: {{token: {TOKEN}}}\ncontexts:\n- name: down\n  context: {{cluster: down, user: u}}\ncurrent-context: down\n",
            FakeKube::unreachable_url()
        ),
    )
    .expect("kubeconfig");
    let mut cfg = std::fs::read_to_string(&r.config).expect("config");
    cfg.push_str(&format!(
        "[[kube.clusters]]\nname = \"down\"\nkubeconfig = \"{}\"\n",
        kc.display()
    ));
    std::fs::write(&r.config, cfg).expect("config");
}

/// What every action's live path touches: the namespaces, the Secret and a Deployment
/// using it, a Pod running the bad digest under ReplicaSet → Deployment, one under Job.
fn seed(k: &FakeKube) {
    k.add_namespace(NS, &[]);
    k.add_namespace("pay", &[]);
    k.add_secret("pay", "db", &[("password", SECRET_VALUE)]);
    k.put_object("apps", "v1", "deployments", Some("pay"), json!({"metadata": {"name": "api", "namespace": "pay"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "app", "image": "x", "envFrom": [{"secretRef": {"name": "db"}}]}]}}}}));
    k.put_object("apps", "v1", "deployments", Some("shop"), json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"selector": {"matchLabels": {"a": "w"}}, "template": {"metadata": {"labels": {"a": "w"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}}));
    let rs_owner = k.owner_reference("shop", "Deployment", "web");
    k.put_object("apps", "v1", "replicasets", Some("shop"), json!({"metadata": {"name": "web-7d9", "namespace": "shop", "ownerReferences": [rs_owner]}, "spec": {"selector": {"matchLabels": {"a": "w"}}}}));
    let bad = format!("docker-pullable://r.example/app@{}", digest('b'));
    k.add_pod(
        "shop",
        "web-7d9-x",
        &[("containers", "app", "r.example/app:2.4.0", &bad)],
        Some(("ReplicaSet", "web-7d9")),
    );
    k.put_object("batch", "v1", "jobs", Some("ops"), json!({"metadata": {"name": "nightly-1", "namespace": "ops"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}}}}));
    k.add_pod(
        "ops",
        "nightly-1-x",
        &[("containers", "c", "r.example/app:2.4.0", &bad)],
        Some(("Job", "nightly-1")),
    );
}

/// Every kube action, once.
fn all_actions() -> String {
    let d = digest('b');
    format!(
        r#"name: kube-preflight
description: every kube action
steps:
  - id: clusters
    uses: kube.clusters
  - id: deny
    uses: kube.admission_deny
    with:
      digests: ["{d}"]
      image: r.example/app
  - id: sweep
    uses: kube.find_running
    with:
      digests: ["{d}"]
  - id: rotate
    uses: kube.rotate_secret
    with:
      namespace: pay
      name: db
      keys: [password]
  - id: allow
    uses: kube.admission_allow
    needs: [deny]
    with:
      digests: ["{d}"]
"#
    )
}

fn start(r: &Recall, playbook: &str, dry: bool) -> Run {
    let pb = write_file(r.dir.path(), "playbook.yaml", playbook.as_bytes());
    let mut args = vec!["incident", "start", "--playbook", &pb, "--json"];
    if dry {
        args.extend(["--dry-run", "--auto-approve"]);
    }
    let run = r.run(&args);
    assert_eq!(run.code, Some(0), "{run:?}");
    run
}

/// Rehearses `playbook`; returns its timeline.
fn rehearse(r: &Recall, playbook: &str) -> Value {
    let run = start(r, playbook, true);
    r.timeline(&run.id())
}

/// Every preflight check of `step` (all its items).
fn checks(tl: &Value, step: &str) -> Vec<Value> {
    let planned = events(tl, "attempt.planned");
    let out: Vec<Value> = planned
        .iter()
        .filter(|e| e["step"] == step)
        .flat_map(|e| {
            e["data"]["detail"]["preflight"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert!(!out.is_empty(), "no preflight for step {step}: {tl}");
    out
}

fn not_passing(checks: &[Value]) -> Vec<&Value> {
    checks.iter().filter(|c| c["verdict"] != "pass").collect()
}

fn count(checks: &[Value], id: &str) -> usize {
    checks.iter().filter(|c| c["check"] == id).count()
}

fn pretty(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Is this check about `cluster` (its subject names it, as `kube.connect`'s or the others')?
fn about(c: &Value, cluster: &str) -> bool {
    let s = c["subject"].as_str().unwrap_or_default();
    s.contains(&format!("`{cluster}`")) || s.ends_with(&format!("cluster {cluster}"))
}

fn ssars(k: &FakeKube) -> usize {
    k.requests()
        .iter()
        .filter(|q| q.method == "POST" && q.path().ends_with("/selfsubjectaccessreviews"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_rbac_every_check_passes_and_nothing_is_written() {
    let k = FakeKube::start("c1", TOKEN).await;
    seed(&k);
    let r = recall_for(&[(&k, "c1")], "");
    let tl = rehearse(&r, &all_actions());

    for step in ["clusters", "deny", "sweep", "rotate", "allow"] {
        let c = checks(&tl, step);
        assert!(
            not_passing(&c).is_empty(),
            "{step}: every check should pass:\n{}",
            pretty(&c)
        );
    }
    assert_eq!(count(&checks(&tl, "clusters"), "kube.clusters"), 1);
    let deny = checks(&tl, "deny");
    for id in ["kube.connect", "kube.admission_api", "kube.namespace"] {
        assert_eq!(count(&deny, id), 1, "{id}: {}", pretty(&deny));
    }
    // VAP + bindings (get/create/patch each), the deny lists (get/create/patch), canary.
    assert_eq!(count(&deny, "kube.rbac"), 10, "{}", pretty(&deny));
    let subjects: Vec<&str> = deny.iter().filter_map(|c| c["subject"].as_str()).collect();
    assert!(
        subjects.contains(&"patch configmaps in namespace recall-system on cluster c1"),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"create pods in namespace recall-system on cluster c1"),
        "{subjects:?}"
    );
    let allow = checks(&tl, "allow");
    assert_eq!(count(&allow, "kube.rbac"), 2, "{}", pretty(&allow));
    assert_eq!(
        count(&allow, "kube.admission_api"),
        0,
        "allow writes no policy"
    );
    let sweep = checks(&tl, "sweep");
    assert_eq!(count(&sweep, "kube.rbac"), 3, "{}", pretty(&sweep));
    assert!(
        sweep
            .iter()
            .any(|c| c["subject"] == "list pods cluster-wide on cluster c1"),
        "{}",
        pretty(&sweep)
    );
    let rotate = checks(&tl, "rotate");
    for id in [
        "kube.secret_value",
        "kube.connect",
        "kube.namespace",
        "kube.secret",
    ] {
        assert_eq!(count(&rotate, id), 1, "{id}: {}", pretty(&rotate));
    }
    assert_eq!(count(&rotate, "kube.rbac"), 8, "{}", pretty(&rotate));
    assert!(
        rotate
            .iter()
            .any(|c| c["subject"] == "update secrets in namespace pay on cluster c1"),
        "{}",
        pretty(&rotate)
    );

    // One review per distinct op of each step, and nothing else written.
    assert_eq!(ssars(&k), 10 + 2 + 3 + 8);
    assert_eq!(k.mutations(), 0, "a rehearsal mutated the cluster");
    assert_eq!(k.dry_runs(), 0, "a rehearsal sent even a dry-run write");
    assert!(
        !tl.to_string().contains(SECRET_VALUE),
        "the Secret's value reached the timeline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_patch_on_configmaps_fails_exactly_that_op() {
    let k = FakeKube::start("c1", TOKEN).await;
    seed(&k);
    k.forbid_in("patch", "", "configmaps", NS);
    let r = recall_for(&[(&k, "c1")], "");
    let tl = rehearse(&r, &all_actions());

    let deny = checks(&tl, "deny");
    let bad = not_passing(&deny);
    assert_eq!(bad.len(), 1, "exactly one failing check:\n{}", pretty(&bad));
    let c = bad[0];
    assert_eq!(c["check"], "kube.rbac");
    assert_eq!(
        c["subject"],
        "patch configmaps in namespace recall-system on cluster c1"
    );
    assert_eq!(c["verdict"], "fail");
    assert_eq!(c["impact"], "blocks");
    let evidence = c["evidence"].as_str().unwrap_or_default();
    assert!(evidence.contains("allowed: false"), "{evidence}");
    let fix = c["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains(r#"{apiGroups: [""], resources: [configmaps], verbs: [patch]}"#),
        "{fix}"
    );
    assert!(fix.contains("Role in namespace recall-system"), "{fix}");
    assert!(fix.contains("docs/kubernetes.md"), "{fix}");
    // The lift uses the same verb; the other actions do not.
    let allow = checks(&tl, "allow");
    assert_eq!(not_passing(&allow).len(), 1, "{}", pretty(&allow));
    for step in ["sweep", "rotate"] {
        let c = checks(&tl, step);
        assert!(not_passing(&c).is_empty(), "{step}: {}", pretty(&c));
    }
    assert_eq!(k.mutations(), 0);
    assert_eq!(k.dry_runs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_fails_connect_for_itself_only() {
    let k = FakeKube::start("c1", TOKEN).await;
    seed(&k);
    let r = recall_for(&[(&k, "c1")], "");
    add_unreachable(&r);
    let d = digest('b');
    let playbook = format!(
        r#"name: kube-two
description: one cluster answers, one does not
steps:
  - id: clusters
    uses: kube.clusters
  - id: deny
    uses: kube.admission_deny
    needs: [clusters]
    for_each: ${{{{ steps.clusters.outputs.names }}}}
    with:
      cluster: ${{{{ item }}}}
      digests: ["{d}"]
      image: r.example/app
  - id: sweep
    uses: kube.find_running
    with:
      digests: ["{d}"]
"#
    );
    let tl = rehearse(&r, &playbook);
    for step in ["deny", "sweep"] {
        let all = checks(&tl, step);
        let bad = not_passing(&all);
        assert_eq!(bad.len(), 1, "{step}:\n{}", pretty(&all));
        assert_eq!(bad[0]["check"], "kube.connect");
        assert_eq!(bad[0]["verdict"], "fail");
        assert_eq!(bad[0]["impact"], "blocks");
        assert!(
            bad[0]["subject"]
                .as_str()
                .unwrap_or_default()
                .contains("`down`"),
            "{}",
            pretty(&bad)
        );
        let fix = bad[0]["fix"].as_str().unwrap_or_default();
        assert!(
            fix.contains("[[kube.clusters]] `down` kubeconfig/context"),
            "{fix}"
        );
        // Nothing else is claimed about the cluster that did not answer.
        let about_down = all.iter().filter(|c| about(c, "down")).count();
        assert_eq!(about_down, 1, "{}", pretty(&all));
        // The other cluster was checked in full.
        assert!(
            all.iter()
                .any(|c| c["check"] == "kube.rbac" && c["verdict"] == "pass"),
            "{}",
            pretty(&all)
        );
    }
    assert_eq!(k.mutations(), 0);
    assert_eq!(k.dry_runs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_that_cannot_be_sent_is_unknown() {
    let k = FakeKube::start("c1", TOKEN).await;
    seed(&k);
    for _ in 0..3 {
        k.server().inject(
            "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            Fault::Status {
                code: 403,
                retry_after: None,
                body: json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                    "message": "selfsubjectaccessreviews.authorization.k8s.io is forbidden: User \"u\" cannot create resource \"selfsubjectaccessreviews\" in API group \"authorization.k8s.io\" at the cluster scope"}).to_string(),
            },
        );
    }
    let r = recall_for(&[(&k, "c1")], "");
    let d = digest('b');
    let tl = rehearse(
        &r,
        &format!(
            "name: sweep\ndescription: sweep\nsteps:\n  - id: sweep\n    uses: kube.find_running\n    with:\n      digests: [\"{d}\"]\n"
        ),
    );
    let all = checks(&tl, "sweep");
    assert_eq!(count(&all, "kube.connect"), 1);
    let rbac: Vec<&Value> = all.iter().filter(|c| c["check"] == "kube.rbac").collect();
    assert_eq!(rbac.len(), 3, "{}", pretty(&all));
    for c in rbac {
        assert_eq!(c["verdict"], "unknown", "{}", pretty(c));
        assert!(
            c["evidence"].as_str().unwrap_or_default().contains("403"),
            "{}",
            pretty(c)
        );
        assert!(
            c["fix"]
                .as_str()
                .unwrap_or_default()
                .contains("selfsubjectaccessreviews"),
            "{}",
            pretty(c)
        );
    }
    assert_eq!(k.mutations(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_dialect_api_namespace_and_secret() {
    // `kv` runs Kyverno, not installed yet, and lacks Recall's namespace; `sig` runs the
    // Sigstore policy-controller, which cannot pin a digest.
    let kv = FakeKube::start("kv", TOKEN).await;
    kv.add_namespace("pay", &[]);
    let sig = FakeKube::start("sig", TOKEN).await;
    let r = Recall::new("");
    let kc = r.dir.path().join("kubeconfig");
    FakeKube::write_kubeconfig_multi(&kc, &[(&kv, "kv"), (&sig, "sig")]);
    let cluster = |name: &str, dialect: &str| {
        format!(
            "[[kube.clusters]]\nname = \"{name}\"\nkubeconfig = \"{}\"\ncontext = \"{name}\"\ndialect = \"{dialect}\"\n",
            kc.display()
        )
    };
    std::fs::write(
        &r.config,
        format!(
            "[kube]\ntimeout = \"5s\"\n{}{}",
            cluster("kv", "kyverno"),
            cluster("sig", "sigstore-policy-controller")
        ),
    )
    .expect("config");
    let d = digest('b');
    let playbook = format!(
        r#"name: caps
description: capabilities
steps:
  - id: deny
    uses: kube.admission_deny
    with:
      digests: ["{d}"]
      image: r.example/app
  - id: rotate_missing
    uses: kube.rotate_secret
    with:
      cluster: kv
      namespace: pay
      name: gone
      keys: [password]
      restart: false
  - id: rotate_everywhere
    uses: kube.rotate_secret
    with:
      namespace: pay
      name: gone
      keys: [password]
      restart: false
"#
    );
    let by = |all: &[Value], id: &str, cluster: &str| -> Value {
        all.iter()
            .find(|c| c["check"] == id && about(c, cluster))
            .cloned()
            .unwrap_or_else(|| panic!("no {id} for {cluster}: {}", pretty(&all)))
    };

    let tl = rehearse(&r, &playbook);
    let deny = checks(&tl, "deny");
    let api = by(&deny, "kube.admission_api", "kv");
    assert_eq!(api["verdict"], "fail", "{}", pretty(&api));
    assert_eq!(api["impact"], "blocks");
    assert!(
        api["fix"]
            .as_str()
            .unwrap_or_default()
            .starts_with("install Kyverno"),
        "{}",
        pretty(&api)
    );
    let ns = by(&deny, "kube.namespace", "kv");
    assert_eq!(ns["verdict"], "fail", "{}", pretty(&ns));
    assert_eq!(ns["impact"], "blocks");
    let dialect = by(&deny, "kube.dialect", "sig");
    assert_eq!(dialect["verdict"], "fail", "{}", pretty(&dialect));
    assert!(
        dialect["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("block_repository: true"),
        "{}",
        pretty(&dialect)
    );
    // Sigstore without a block sends nothing: nothing to review there.
    assert!(
        !deny.iter().any(|c| c["check"] == "kube.rbac"
            && c["subject"]
                .as_str()
                .unwrap_or_default()
                .ends_with("cluster sig")),
        "{}",
        pretty(&deny)
    );
    let missing = checks(&tl, "rotate_missing");
    let s = by(&missing, "kube.secret", "kv");
    assert_eq!(s["verdict"], "fail", "{}", pretty(&s));
    assert_eq!(s["impact"], "blocks");
    assert_eq!(count(&missing, "kube.rbac"), 2, "restart: false");
    let everywhere = checks(&tl, "rotate_everywhere");
    let v = everywhere
        .iter()
        .find(|c| c["check"] == "kube.secret_value")
        .expect("value check");
    assert_eq!(v["verdict"], "fail", "{}", pretty(v));
    assert!(
        v["fix"].as_str().unwrap_or_default().contains("for_each"),
        "{}",
        pretty(v)
    );

    // Install Kyverno and the namespace: `kv` passes the deny's checks.
    kv.install_crd(
        "kyverno.io",
        "v1",
        "clusterpolicies",
        "ClusterPolicy",
        false,
    );
    kv.add_namespace(NS, &[]);
    let tl = rehearse(&r, &playbook);
    let deny = checks(&tl, "deny");
    let kv_checks: Vec<&Value> = deny.iter().filter(|c| about(c, "kv")).collect();
    assert!(
        kv_checks.iter().all(|c| c["verdict"] == "pass"),
        "{}",
        pretty(&kv_checks)
    );
    assert!(
        kv_checks
            .iter()
            .any(|c| c["subject"] == "patch clusterpolicies.kyverno.io cluster-wide on cluster kv"),
        "{}",
        pretty(&kv_checks)
    );
    assert_eq!(kv.mutations(), 0);
    assert_eq!(sig.mutations(), 0);
}

/// `verb resource[.group] in namespace ns` / `... cluster-wide`, for a request the live
/// path sent; None for discovery, `/version` and the reviews themselves.
fn op_of(q: &Request, cluster: &str) -> Option<(String, String)> {
    let segs: Vec<&str> = q.path().split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _, rest @ ..] => ("", rest),
        ["apis", g, _, rest @ ..] => (*g, rest),
        _ => return None,
    };
    if rest.is_empty() || group == "authorization.k8s.io" {
        return None;
    }
    let (ns, rest) = match rest {
        ["namespaces", ns, r @ ..] if !r.is_empty() => (Some(*ns), r),
        _ => (None, rest),
    };
    let named = rest.len() > 1;
    let verb = match (q.method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => return None,
    };
    let res = if group.is_empty() {
        rest[0].to_string()
    } else {
        format!("{}.{group}", rest[0])
    };
    let wide = format!("{verb} {res} cluster-wide on cluster {cluster}");
    let exact = match ns {
        Some(ns) => format!("{verb} {res} in namespace {ns} on cluster {cluster}"),
        None => wide.clone(),
    };
    Some((exact, wide))
}

/// The drift guard: every call a live run makes is one preflight reviewed, so the op lists
/// next to the live code cannot fall behind it unnoticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reviewed_ops_cover_every_call_of_a_live_run() {
    let k = FakeKube::start("c1", TOKEN).await;
    seed(&k);
    let r = recall_for(&[(&k, "c1")], "");
    let tl = rehearse(&r, &all_actions());
    let reviewed: BTreeSet<String> = ["deny", "sweep", "rotate", "allow"]
        .iter()
        .flat_map(|s| checks(&tl, s))
        .filter(|c| c["check"] == "kube.rbac")
        .filter_map(|c| c["subject"].as_str().map(String::from))
        .collect();

    let before = k.requests().len();
    let live = start(&r, &all_actions(), false);
    let ltl = r.timeline(&live.id());
    assert!(
        events(&ltl, "attempt.failed").is_empty(),
        "{}",
        pretty(&ltl)
    );
    let mut sent = BTreeSet::new();
    for q in &k.requests()[before..] {
        let Some((exact, wide)) = op_of(q, "c1") else {
            continue;
        };
        assert!(
            reviewed.contains(&exact) || reviewed.contains(&wide),
            "the live run sent {} {} ({exact}), which preflight does not review: {reviewed:#?}",
            q.method,
            q.target
        );
        sent.insert(exact);
    }
    // The guard means something only if the live run took every path.
    for want in [
        "create pods in namespace recall-system on cluster c1",
        "create configmaps in namespace recall-system on cluster c1",
        "patch configmaps in namespace recall-system on cluster c1",
        "patch validatingadmissionpolicies.admissionregistration.k8s.io cluster-wide on cluster c1",
        "get replicasets.apps in namespace shop on cluster c1",
        "get jobs.batch in namespace ops on cluster c1",
        "update secrets in namespace pay on cluster c1",
        "patch deployments.apps in namespace pay on cluster c1",
    ] {
        assert!(sent.contains(want), "{want} not sent: {sent:#?}");
    }
}
