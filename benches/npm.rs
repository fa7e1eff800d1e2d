//! `cargo bench --bench npm`: containing 18 packages with `npm-account-compromise` live,
//! against the status quo — `npm deprecate` 18 times in a shell loop — each against its own
//! identical, freshly seeded Verdaccio 6.8.0, in the same run. Target: >= 10x faster.
//! (Recall does more: it also moves every `latest` off the bad version and records a
//! hash-chained timeline and a postmortem draft; the loop only deprecates.)

#[path = "../tests/it/support/verdaccio.rs"]
mod verdaccio;

use std::time::Instant;

use verdaccio::Verdaccio;

const N: usize = 18;

fn names() -> Vec<String> {
    (0..N)
        .map(|i| {
            if i % 5 == 4 {
                format!("@acme/bench-{i:02}")
            } else {
                format!("bench-pkg-{i:02}")
            }
        })
        .collect()
}

async fn seed(v: &Verdaccio) {
    for n in names() {
        v.publish(&v.admin_token, &n, "1.0.0").await;
        v.publish(&v.admin_token, &n, "1.0.1").await;
    }
}

async fn deprecated_count(v: &Verdaccio) -> usize {
    let mut c = 0;
    for n in names() {
        let pk = v.get_json(&v.admin_token, &verdaccio::wire_name(&n)).await;
        if pk
            .as_ref()
            .and_then(|p| p["versions"]["1.0.1"]["deprecated"].as_str())
            .is_some_and(|d| !d.is_empty())
        {
            c += 1;
        }
    }
    c
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("npm containment benchmark: {N} packages, Verdaccio 6.8.0 on loopback\n");
        let a = Verdaccio::start().await;
        let b = Verdaccio::start().await;
        seed(&a).await;
        seed(&b).await;
        let dir = tempfile::tempdir().expect("tempdir");

        // Recall, live.
        let cfg = dir.path().join("recall.toml");
        std::fs::write(&cfg, format!("[npm]\nregistry = \"{}\"\ntoken_env = \"BENCH_NPM_TOKEN\"\n", a.url)).expect("config");
        let targets: Vec<String> = names().iter().map(|n| format!("{n}@1.0.1")).collect();
        let targets = serde_json::to_string(&targets).expect("json");
        let t0 = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_recall"))
            .arg("--db")
            .arg(format!("sqlite://{}", dir.path().join("recall.db").display()))
            .arg("--config")
            .arg(&cfg)
            .args(["incident", "start", "--playbook", "npm-account-compromise", "--json", "--param"])
            .arg(format!("targets={targets}"))
            .env("BENCH_NPM_TOKEN", &a.admin_token)
            .output()
            .expect("recall");
        let recall_secs = t0.elapsed().as_secs_f64();
        assert!(out.status.success(), "recall failed: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(deprecated_count(&a).await, N, "recall must deprecate all {N}");

        // Status quo: npm deprecate in a shell loop.
        let npmrc = dir.path().join("npmrc");
        let host = b.url.trim_start_matches("http:");
        std::fs::write(&npmrc, format!("registry={}/\n{host}/:_authToken={}\n", b.url, b.admin_token)).expect("npmrc");
        let list = names().iter().map(|n| format!("'{n}@1.0.1'")).collect::<Vec<_>>().join(" ");
        let script = format!(
            "for p in {list}; do npm deprecate \"$p\" 'compromised, do not use' --userconfig '{}' --registry '{}/' --loglevel error || exit 1; done",
            npmrc.display(),
            b.url
        );
        let t0 = Instant::now();
        let out = std::process::Command::new("bash").arg("-c").arg(&script).output().expect("bash");
        let loop_secs = t0.elapsed().as_secs_f64();
        assert!(out.status.success(), "npm loop failed: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(deprecated_count(&b).await, N, "the loop must deprecate all {N}");

        let ratio = loop_secs / recall_secs;
        println!("recall incident start (npm-account-compromise, live): {recall_secs:.3} s");
        println!("shell loop of {N} x npm deprecate:                     {loop_secs:.3} s");
        println!("speed-up: {ratio:.1}x (target >= 10x): {}", if ratio >= 10.0 { "MET" } else { "NOT MET" });
    });
}
