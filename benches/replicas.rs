//! `cargo bench --bench replicas`: step throughput and claim latency of `recall serve`
//! (release build) with 1, 2 and 3 replicas sharing one Postgres, against one replica on
//! SQLite as the baseline.
//!
//! Per configuration: a warm-up incident per replica, then N incidents started at once
//! through the JSON API (round-robin over the replicas), each a fan-out of M
//! `incident.note` items (touches nothing outside the incident, so what is measured is the
//! engine, the store and the lease traffic). Throughput is N×M items over the time from the
//! first start request to the last `finished_at`, median of 10 rounds
//! (`RECALL_BENCH_ROUNDS`); claim latency is, per incident, its first
//! `step.started` event minus its `created_at`.
//!
//! The Postgres is a throw-away cluster from `scripts/postgres start` (stopped at the end;
//! `RECALL_PG_WATCH_PID` stops it too if the bench dies), or `RECALL_BENCH_POSTGRES_URL`
//! (a user with CREATEDB). `RECALL_BENCH_N` / `RECALL_BENCH_M` change N (40) and M (25).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sqlx::Connection;

const TOKEN: &str = "bench-api-token-0123456789abcdef";

const PLAYBOOK: &str = r#"name: bench-notes
description: a fan-out of cheap steps
params:
  items: {type: list, required: true}
steps:
  - id: notes
    uses: incident.note
    for_each: ${{ params.items }}
    concurrency: 25
    with:
      message: "note ${{ item }}"
"#;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

/// A throw-away Postgres cluster (the minimal part of tests/it/support/postgres.rs).
struct Pg {
    dir: Option<PathBuf>,
    admin: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres")
}

impl Pg {
    fn start() -> Pg {
        if let Ok(url) = std::env::var("RECALL_BENCH_POSTGRES_URL")
            && !url.trim().is_empty()
        {
            return Pg {
                dir: None,
                admin: url.trim().to_string(),
            };
        }
        let dir = tempfile::Builder::new()
            .prefix("recall-bench-pg-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(&dir)
            .env("RECALL_PG_WATCH_PID", std::process::id().to_string())
            .output()
            .expect("run scripts/postgres");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout.lines().last().unwrap_or("").trim().to_string();
        assert!(
            out.status.success() && url.starts_with("postgres://"),
            "`scripts/postgres start` failed (run `scripts/postgres install`):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Pg {
            dir: Some(dir),
            admin: url,
        }
    }

    /// A fresh database; its URL.
    async fn database(&self, name: &str) -> String {
        let name = format!(
            "recall_bench_{name}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut c = sqlx::PgConnection::connect(&self.admin)
            .await
            .expect("connect to the bench Postgres");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .expect("CREATE DATABASE");
        let _ = c.close().await;
        let mut u = url::Url::parse(&self.admin).expect("admin URL");
        u.set_path(&format!("/{name}"));
        u.to_string()
    }

    fn stop(&self) {
        if let Some(dir) = &self.dir {
            let _ = Command::new("bash")
                .arg(script())
                .arg("stop")
                .arg(dir)
                .output();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

struct Replica {
    child: Child,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn launch(dir: &Path, db: &str, idx: usize) -> Replica {
    let log = std::fs::File::create(dir.join(format!("replica-{idx}.log"))).expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_recall"))
        .arg("--db")
        .arg(db)
        .arg("--config")
        .arg(dir.join("recall.toml"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("B_API", format!("bench={TOKEN}"))
        .env("RECALL_LOG", "warn")
        .env_remove("SLACK_SIGNING_SECRET")
        .env_remove("SLACK_BOT_TOKEN")
        .env_remove("RECALL_FAILPOINT")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn recall serve");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("recall serve printed `listening on`");
    Replica {
        child,
        url: format!("http://{}", line.trim().trim_start_matches("listening on ")),
    }
}

async fn start_incident(http: &reqwest::Client, url: &str, items: usize) -> String {
    let items: Vec<String> = (0..items).map(|i| format!("item-{i}")).collect();
    let r = http
        .post(format!("{url}/api/incidents"))
        .bearer_auth(TOKEN)
        .json(&json!({ "playbook": "bench-notes", "params": { "items": items } }))
        .send()
        .await
        .expect("POST /api/incidents");
    let status = r.status().as_u16();
    let b: Value = r.json().await.expect("json");
    assert_eq!(status, 202, "{b}");
    b["id"].as_str().expect("id").to_string()
}

/// Waits until every incident in `ids` has finished; returns the listed records.
async fn wait_all(http: &reqwest::Client, url: &str, ids: &[String]) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(300);
    loop {
        let list: Vec<Value> = http
            .get(format!("{url}/api/incidents"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("GET /api/incidents")
            .json()
            .await
            .expect("json");
        let ours: Vec<Value> = list
            .into_iter()
            .filter(|i| ids.iter().any(|id| i["id"] == id.as_str()))
            .collect();
        let done = ours
            .iter()
            .filter(|i| i["status"] == "succeeded" || i["status"] == "failed")
            .count();
        if done == ids.len() {
            for i in &ours {
                assert_eq!(i["status"], "succeeded", "{i}");
            }
            return ours;
        }
        assert!(
            Instant::now() < end,
            "{done}/{} finished after 300 s",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Row {
    label: String,
    replicas: usize,
    steps: usize,
    /// Seconds per round.
    secs: Vec<f64>,
    /// Claim latency of every incident of every round, ms.
    claim: Vec<f64>,
}

async fn run(label: &str, db: &str, replicas: usize, n: usize, m: usize, rounds: usize) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("recall.toml"),
        "[api]\ntokens_env = \"B_API\"\n[auth]\nlive_starters = [\"user:bench\"]\n[server]\nshutdown_grace = \"1s\"\n",
    )
    .expect("config");
    std::fs::create_dir_all(dir.path().join("playbooks")).expect("playbooks dir");
    std::fs::write(dir.path().join("playbooks/bench-notes.yaml"), PLAYBOOK).expect("playbook");
    let reps: Vec<Replica> = {
        let (d, db) = (dir.path().to_path_buf(), db.to_string());
        tokio::task::spawn_blocking(move || (0..replicas).map(|i| launch(&d, &db, i)).collect())
            .await
            .expect("launch")
    };
    let http = reqwest::Client::new();
    // Warm-up: one small incident per replica (connection pools, first-use paths).
    let mut warm = Vec::new();
    for r in &reps {
        warm.push(start_incident(&http, &r.url, 2).await);
    }
    wait_all(&http, &reps[0].url, &warm).await;

    let mut secs = Vec::new();
    let mut claim = Vec::new();
    for _round in 0..rounds {
        let t0 = now_ms();
        let started = Instant::now();
        let ids: Vec<String> = futures::future::join_all(
            (0..n).map(|i| start_incident(&http, &reps[i % replicas].url, m)),
        )
        .await;
        let list = wait_all(&http, &reps[0].url, &ids).await;
        let observed = started.elapsed().as_secs_f64();
        let last = list
            .iter()
            .filter_map(|i| i["finished_at"].as_i64())
            .max()
            .expect("finished_at");
        let s = ((last - t0) as f64 / 1e3).max(0.001);
        assert!(s <= observed + 0.1, "finished_at is on this host's clock");
        secs.push(s);
        for i in &list {
            let id = i["id"].as_str().expect("id");
            let created = i["created_at"].as_i64().expect("created_at");
            let tl: Value = http
                .get(format!(
                    "{}/api/incidents/{id}/timeline?format=json&kind=step.started",
                    reps[0].url
                ))
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("timeline")
                .json()
                .await
                .expect("json");
            let first = tl["events"][0]["at_ms"]
                .as_i64()
                .unwrap_or_else(|| panic!("no step.started in {tl}"));
            claim.push((first - created) as f64);
        }
    }
    drop(reps);
    Row {
        label: label.to_string(),
        replicas,
        steps: n * m,
        secs,
        claim,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = env_usize("RECALL_BENCH_N", 40);
    let m = env_usize("RECALL_BENCH_M", 25);
    let rounds = env_usize("RECALL_BENCH_ROUNDS", 10).max(1);
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(0);
    println!(
        "replicas: nproc = {cores}; per configuration {rounds} rounds of {n} incidents × {m} incident.note items"
    );

    let pg = tokio::task::spawn_blocking(Pg::start)
        .await
        .expect("postgres start");
    let mut rows = Vec::new();
    let sqlite_dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}", sqlite_dir.path().join("bench.db").display());
    rows.push(run("sqlite", &sqlite, 1, n, m, rounds).await);
    for replicas in 1..=3 {
        let db = pg.database(&format!("r{replicas}")).await;
        rows.push(run("postgres", &db, replicas, n, m, rounds).await);
    }
    pg.stop();

    // Throughput from the median round; the range shows the spread of the rounds.
    let rate = |r: &Row, p: f64| r.steps as f64 / pct(&r.secs, p);
    let base = rate(&rows[0], 0.5);
    println!();
    println!(
        "{:<9} {:>8} {:>11} {:>8} {:>13} {:>11} {:>10} {:>10}",
        "store",
        "replicas",
        "steps/round",
        "steps/s",
        "(min–max)",
        "vs sqlite×1",
        "claim p50",
        "claim p99"
    );
    for r in &rows {
        println!(
            "{:<9} {:>8} {:>11} {:>8.0} {:>13} {:>10.2}× {:>7.0} ms {:>7.0} ms",
            r.label,
            r.replicas,
            r.steps,
            rate(r, 0.5),
            format!("({:.0}–{:.0})", rate(r, 1.0), rate(r, 0.0)),
            rate(r, 0.5) / base,
            pct(&r.claim, 0.5),
            pct(&r.claim, 0.99)
        );
    }
}
