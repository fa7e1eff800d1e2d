//! `cargo bench --bench kube`: `kube.find_running` over 3 clusters × 5,000 pods (the
//! contract fake API server from tests/it/fakes, one per cluster, paginated 500 a page),
//! 6 matching containers in all, owners resolved. Target: the whole sweep < 1 s.
//! Baseline printed beside it: the same sweep one cluster after another (what a loop of
//! `kubectl get pods -A -o json | jq` per context does).

#[allow(unused_imports)]
#[path = "../tests/it/fakes/mod.rs"]
mod fakes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fakes::kube::FakeKube;
use recall::actions::kube::running::FindRunning;
use recall::actions::{Action, ActionCtx};
use recall::config::Config;
use recall::engine::Mode;
use serde_json::json;

const CLUSTERS: [&str; 3] = ["east", "west", "lab"];
const PODS: usize = 5000;
const TARGET: Duration = Duration::from_secs(1);
const RUNS: usize = 7;

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

async fn seed(name: &str, bad: &str, other: &str) -> FakeKube {
    let k = FakeKube::start(name, "bench-token").await;
    for i in 0..PODS {
        k.add_pod(
            &format!("ns{}", i % 50),
            &format!("pod-{i}"),
            &[(
                "containers",
                "app",
                "r.example/app:1",
                &format!("r.example/app@{other}"),
            )],
            None,
        );
    }
    let owner = k.owner_reference("shop", "Deployment", "web");
    k.put_object(
        "apps",
        "v1",
        "replicasets",
        Some("shop"),
        json!({"metadata": {"name": "web-1", "namespace": "shop", "ownerReferences": [owner]}}),
    );
    k.add_pod(
        "shop",
        "web-1-a",
        &[(
            "containers",
            "app",
            "r.example/app:2",
            &format!("docker-pullable://r.example/app@{bad}"),
        )],
        Some(("ReplicaSet", "web-1")),
    );
    k.add_pod(
        "shop",
        "web-1-b",
        &[(
            "initContainers",
            "init",
            "r.example/app:2",
            &format!("r.example/app@{bad}"),
        )],
        Some(("ReplicaSet", "web-1")),
    );
    k
}

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let bad = digest('b');
    let other = digest('c');
    let mut fakes = Vec::new();
    for n in CLUSTERS {
        fakes.push(seed(n, &bad, &other).await);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = dir.path().join("kubeconfig");
    let pairs: Vec<(&FakeKube, &str)> = fakes.iter().zip(CLUSTERS).collect();
    FakeKube::write_kubeconfig_multi(&kc, &pairs);
    let mut toml = "[kube]\ntimeout = \"30s\"\npage_size = 500\n".to_string();
    for n in CLUSTERS {
        toml.push_str(&format!(
            "[[kube.clusters]]\nname = \"{n}\"\nkubeconfig = \"{}\"\ncontext = \"{n}\"\n",
            kc.display()
        ));
    }
    let config = Arc::new(Config::parse("bench.toml", &toml).expect("config"));
    let store = recall::store::open(&format!("sqlite://{}", dir.path().join("b.db").display()))
        .await
        .expect("store");
    let ctx = ActionCtx {
        incident: "INC-BENCH".into(),
        step: "running".into(),
        index: 0,
        attempt: 1,
        idem_key: "bench".into(),
        mode: Mode::Live,
        config,
        store,
    };
    let action = FindRunning;
    let all = json!({ "digests": [bad] });

    // Warm-up (connection set-up, allocator).
    let out = action.run(&ctx, &all).await.expect("sweep");
    assert_eq!(out.outputs["count"], 6, "{}", out.outputs);

    let mut concurrent = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = action.run(&ctx, &all).await.expect("sweep");
        concurrent.push(t.elapsed());
        assert_eq!(out.outputs["count"], 6);
    }
    let mut sequential = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut n = 0;
        for c in CLUSTERS {
            let out = action
                .run(&ctx, &json!({ "digests": [bad], "cluster": c }))
                .await
                .expect("sweep");
            n += out.outputs["count"].as_u64().unwrap_or(0);
        }
        sequential.push(t.elapsed());
        assert_eq!(n, 6);
    }
    let p50 = pct(&concurrent, 0.5);
    let worst = pct(&concurrent, 1.0);
    let base = pct(&sequential, 0.5);
    println!(
        "kube.find_running: {} clusters x {PODS} pods ({} pods), 6 matches, page size 500, {} cores",
        CLUSTERS.len(),
        CLUSTERS.len() * (PODS + 2),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  concurrent sweep: p50 {:.0} ms, worst {:.0} ms over {RUNS} runs  (target < {} ms: {:.2}x of target)",
        p50.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3,
        TARGET.as_millis(),
        worst.as_secs_f64() / TARGET.as_secs_f64()
    );
    println!(
        "  baseline, one cluster after another: p50 {:.0} ms  (concurrent is {:.2}x faster)",
        base.as_secs_f64() * 1e3,
        base.as_secs_f64() / p50.as_secs_f64()
    );
    println!(
        "  throughput: {:.0} pods/s",
        (CLUSTERS.len() * (PODS + 2)) as f64 / p50.as_secs_f64()
    );
    if worst > TARGET {
        println!("  TARGET MISSED");
        std::process::exit(1);
    }
}
