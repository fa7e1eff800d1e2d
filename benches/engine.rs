//! `cargo bench --bench engine`: durable step transitions per second (synchronous=FULL)
//! against the raw rate of SQLite committing the engine's own rows (every timeline event,
//! a task row per transition and one per task when the fan-out starts), byte for byte, with the
//! same group commit (same number of transactions), measured in the same run on the same
//! machine — once with one INSERT per row (the raw baseline) and once with 64 rows per
//! INSERT as the engine's store does (a stricter one); and a 500-item `for_each` rehearsal's wall
//! time. Prints the figures and the ratios to the targets (>= 80 % of raw; < 2 s).

use std::sync::Arc;
use std::time::Instant;

use recall::actions::Registry;
use recall::config::Config;
use recall::engine::Mode;
use recall::runner::{Runner, StartRequest};
use recall::store::{SqliteStore, Store};

const PLAYBOOK: &str = "name: bench\nparams:\n  xs: { type: list, required: true }\nsteps:\n  - id: fan\n    uses: incident.note\n    for_each: ${{ params.xs }}\n    concurrency: 256\n    with: { message: \"item ${{ item }} of incident ${{ incident.id }}\" }\n";

fn items(n: usize) -> String {
    let v: Vec<String> = (0..n).map(|i| format!("i{i}")).collect();
    serde_json::to_string(&v).unwrap_or_default()
}

struct Captured {
    secs: f64,
    commits: u64,
    events: Vec<recall::timeline::Event>,
    tasks: Vec<recall::store::TaskRecord>,
}

async fn run_incident(dir: &std::path::Path, name: &str, n: usize, mode: Mode) -> Captured {
    let url = format!("sqlite://{}", dir.join(name).display());
    let store = Arc::new(SqliteStore::open(&url).await.expect("open store"));
    let mut cfg = Config::default();
    cfg.engine.concurrency = 256;
    let runner = Runner::new(
        store.clone() as Arc<dyn Store>,
        Arc::new(Registry::builtin()),
        Arc::new(cfg),
    );
    let t0 = Instant::now();
    let (id, _) = runner
        .start(StartRequest {
            file: "bench.yaml".into(),
            source: PLAYBOOK.as_bytes().to_vec(),
            params: vec![("xs".into(), items(n))],
            mode,
            auto_approve: false,
            started_by: "bench".into(),
        })
        .await
        .expect("run");
    let secs = t0.elapsed().as_secs_f64();
    let events = store.events(&id).await.expect("events");
    let tasks = store.load(&id).await.expect("load").expect("run").tasks;
    Captured {
        secs,
        commits: store.commit_count(),
        events,
        tasks,
    }
}

/// The engine's own rows, byte for byte (every timeline event, and for every event about a
/// task that task's row as an upsert), committed straight through sqlx into a fresh database
/// in as many BEGIN IMMEDIATE transactions as the engine used, synchronous=FULL, WAL; either
/// one statement per row (`multi = 1`) or `multi` rows per statement as the engine's store.
async fn raw(dir: &std::path::Path, c: &Captured, multi: usize) -> f64 {
    let url = format!("sqlite://{}", dir.join("raw.db").display());
    let store = SqliteStore::open(&url).await.expect("open raw");
    let pool = store.pool();
    let rows = c.events.len();
    let per = rows.div_ceil(c.commits.max(1) as usize).max(1);
    let t0 = Instant::now();
    for (n, batch) in c.events.chunks(per).enumerate() {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
        // The engine stores every item of a fan-out when the step starts (evaluated once,
        // stored): the first commit carries one row per task on top of its transitions.
        let created: Vec<&recall::store::TaskRecord> = if n == 0 {
            c.tasks.iter().collect()
        } else {
            Vec::new()
        };
        for chunk in created.chunks(multi.max(1)) {
            upsert_tasks(&mut tx, chunk.to_vec()).await;
        }
        for chunk in batch.chunks(multi.max(1)) {
            let task_rows: Vec<&recall::store::TaskRecord> = chunk
                .iter()
                .filter_map(|e| e.index.and_then(|i| c.tasks.get(i as usize)))
                .collect();
            upsert_tasks(&mut tx, task_rows).await;
            let mut q: sqlx::QueryBuilder<sqlx::Sqlite> = sqlx::QueryBuilder::new(
                "INSERT INTO events (incident_id, seq, at, actor, kind, step_id, item_index, summary, data_json, prev_hash, hash) ",
            );
            q.push_values(chunk, |mut b, e| {
                b.push_bind("inc")
                    .push_bind(e.seq)
                    .push_bind(e.at)
                    .push_bind(e.actor.clone())
                    .push_bind(e.kind.clone())
                    .push_bind(e.step.clone())
                    .push_bind(e.index.map(i64::from))
                    .push_bind(e.summary.clone())
                    .push_bind(e.data_json.clone())
                    .push_bind(e.prev_hash.clone())
                    .push_bind(e.hash.clone());
            });
            q.build().execute(&mut *tx).await.expect("event rows");
        }
        tx.commit().await.expect("commit");
    }
    let secs = t0.elapsed().as_secs_f64();
    drop(store);
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("raw.db{ext}")));
    }
    secs
}

async fn upsert_tasks(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    task_rows: Vec<&recall::store::TaskRecord>,
) {
    if task_rows.is_empty() {
        return;
    }
    let mut q: sqlx::QueryBuilder<sqlx::Sqlite> = sqlx::QueryBuilder::new(
        "INSERT INTO tasks (incident_id, step_id, item_index, item_json, status, attempt, inputs_json, idem_key, outputs_json, error, next_run_at, needs_probe, started_at, finished_at) ",
    );
    q.push_values(task_rows, |mut b, t| {
        b.push_bind("inc")
            .push_bind(t.step_id.clone())
            .push_bind(i64::from(t.item_index))
            .push_bind(t.item.to_string())
            .push_bind(t.status.clone())
            .push_bind(i64::from(t.attempt))
            .push_bind(t.inputs.to_string())
            .push_bind(t.idem_key.clone())
            .push_bind(t.outputs.to_string())
            .push_bind(t.error.clone())
            .push_bind(t.next_run_at)
            .push_bind(t.needs_probe)
            .push_bind(t.started_at)
            .push_bind(t.finished_at);
    });
    q.push(" ON CONFLICT (incident_id, step_id, item_index) DO UPDATE SET status = excluded.status, attempt = excluded.attempt, inputs_json = excluded.inputs_json, outputs_json = excluded.outputs_json, error = excluded.error, next_run_at = excluded.next_run_at, needs_probe = excluded.needs_probe, started_at = excluded.started_at, finished_at = excluded.finished_at");
    q.build().execute(&mut **tx).await.expect("task rows");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        println!("recall engine benchmark (SQLite, WAL, synchronous=FULL)\n");

        let n: usize = std::env::var("RECALL_BENCH_ITEMS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
        let mut ratios = Vec::new();
        for round in 1..=3 {
            let c = run_incident(dir.path(), &format!("live{round}.db"), n, Mode::Live).await;
            let (secs, events, commits) = (c.secs, c.events.len(), c.commits);
            let rate = events as f64 / secs;
            let single = raw(dir.path(), &c, 1).await;
            let multi = raw(dir.path(), &c, 64).await;
            let (single_rate, raw_rate) = (events as f64 / single, events as f64 / multi);
            let ratio = rate / raw_rate;
            ratios.push((rate / single_rate, ratio));
            println!(
                "round {round}: {n}-item fan-out, {events} durable transitions in {commits} commits ({:.1}/commit)\n  engine: {secs:.3} s = {rate:.0} transitions/s\n  raw SQLite, the same rows and commits, 64 rows/statement (as the engine): {multi:.3} s = {raw_rate:.0} transitions/s\n  raw SQLite, the same rows and commits, 1 row/statement: {single:.3} s = {single_rate:.0} transitions/s\n  ratio: {:.1} % of the multi-row raw rate (target >= 80 %); {:.1} % of the single-row raw rate",
                events as f64 / commits.max(1) as f64,
                ratio * 100.0,
                rate / single_rate * 100.0
            );
        }
        ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (per_row, multi_row) = ratios[ratios.len() / 2];
        println!(
            "\ndurable transitions (median round): {:.0} % of the raw group-commit rate of the same rows, one INSERT per row (target >= 80 %): {}\n  stricter baseline, 64 rows per INSERT like the engine's store: {:.0} %\n",
            per_row * 100.0,
            if per_row >= 0.8 { "MET" } else { "NOT MET" },
            multi_row * 100.0
        );
        let mut walls = Vec::new();
        for round in 1..=3 {
            let c = run_incident(dir.path(), &format!("dry{round}.db"), 500, Mode::Rehearsal).await;
            let (secs, events) = (c.secs, c.events.len());
            walls.push(secs);
            println!("round {round}: 500-item for_each rehearsal: {secs:.3} s wall ({events} timeline events)");
        }
        walls.sort_by(|a, b| a.total_cmp(b));
        let w = walls[walls.len() / 2];
        println!("500-item dry-run: median {w:.3} s wall, {:.1} % of the 2 s budget: {}", w / 2.0 * 100.0, if w < 2.0 { "MET" } else { "NOT MET" });
    });
}
