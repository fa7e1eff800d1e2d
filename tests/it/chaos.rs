//! Chaos: three `recall serve` replicas share one real Postgres while a harness SIGKILLs
//! and restarts them, or SIGSTOPs them for longer than the lease TTL, until 50 concurrent
//! live incidents finish. Each incident fans out against real Verdaccio (3 deprecations and
//! one `latest` move of its own package) and the crates.io contract fake (2 yanks of its
//! own crate; the fake answers with seeded latency). Afterwards every incident and every
//! step succeeded, each registry answered exactly one mutating request per (package,
//! version) effect — also after the stopped replicas were let go and a lease TTL passed —
//! and every timeline verifies.
//!
//! The harness's choices come from a fixed seed (override: `RECALL_CHAOS_SEED=N`); the
//! seed and every action are printed, with each replica's log in the temp dir (kept, and
//! printed, when the test fails).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fakes::crates::FakeCrates;
use crate::support::postgres;
use crate::support::verdaccio::{Verdaccio, wire_name};
use crate::support::{Recall, write_file};

const DEFAULT_SEED: u64 = 0x00c0_ffee_5eed_2024;
const REPLICAS: usize = 3;
const INCIDENTS: usize = 50;
/// Bad npm versions of each package (1.0.0 stays good and becomes `latest` again).
const BAD_NPM: &[&str] = &["1.0.1", "1.0.2", "1.0.3"];
/// Bad versions of each crate (1.0.0 stays).
const BAD_CRATE: &[&str] = &["1.0.1", "1.0.2"];
const CAP: Duration = Duration::from_secs(240);
const LEASE_TTL: Duration = Duration::from_secs(3);

const API_TOKEN: &str = "chaos-api-token-0123456789abcdef";
const CRATES_TOKEN: &str = "cioCHAOSchaosCHAOSchaosCHAOS0001";

const PLAYBOOK: &str = r#"name: chaos
description: fan-out against npm and crates for the replica chaos test
params:
  package: {type: string, required: true}
  versions: {type: list, required: true}
  crate: {type: string, required: true}
  crate_versions: {type: list, required: true}
steps:
  # One item at a time: each deprecation PUTs the whole packument, so two in flight on
  # one package would race each other in the registry.
  - id: deprecate
    uses: npm.deprecate
    for_each: ${{ params.versions }}
    concurrency: 1
    with:
      package: ${{ params.package }}
      version: ${{ item }}
      message: "chaos: compromised (incident ${{ incident.id }})"
    retry: { attempts: 8, backoff: exponential, initial: 500ms, max: 5s }
    timeout: 30s

  - id: fix-latest
    uses: npm.dist_tag
    needs: [deprecate]
    with:
      package: ${{ params.package }}
      tag: latest
    retry: { attempts: 8, backoff: exponential, initial: 500ms, max: 5s }
    timeout: 30s

  - id: yank
    uses: crates.yank
    for_each: ${{ params.crate_versions }}
    concurrency: 1
    with:
      crate: ${{ params.crate }}
      version: ${{ item }}
      message: "chaos: compromised (incident ${{ incident.id }})"
    retry: { attempts: 8, backoff: exponential, initial: 500ms, max: 5s }
    timeout: 30s

  - id: done
    uses: incident.note
    needs: [deprecate, fix-latest, yank]
    with:
      message: contained
"#;

/// splitmix64: a tiny deterministic generator, so a seed replays the same choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// One replica slot: the current process (if any) and what the harness did to it.
struct Replica {
    idx: usize,
    generation: usize,
    child: Option<Child>,
    url: String,
    /// SIGSTOPped; SIGCONT at this instant.
    stopped_until: Option<Instant>,
    /// SIGKILLed; a new process starts at this instant.
    restart_at: Option<Instant>,
}

impl Replica {
    fn running(&self) -> bool {
        self.child.is_some() && self.stopped_until.is_none()
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts a `recall serve` (blocking: waits for `listening on ADDR`); its stderr goes to
/// `replica-<idx>.<generation>.log` in the test's dir.
async fn launch(r: &Recall, idx: usize, generation: usize) -> (Child, String) {
    let log_path = r.dir.path().join(format!("replica-{idx}.{generation}.log"));
    let log = std::fs::File::create(&log_path).expect("replica log");
    let mut cmd: Command = r.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("RECALL_LOG", "info")
        .env_remove("SLACK_SIGNING_SECRET")
        .env_remove("SLACK_BOT_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn recall serve");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep draining stdout so the process never writes into a closed pipe.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "replica {idx}.{generation} never said `listening on`; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                )
            });
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        (child, format!("http://{addr}"))
    })
    .await
    .expect("launch task")
}

fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// Status of each of our incidents as one replica's API reports it; `None` if that
/// replica did not answer in time.
async fn statuses(http: &reqwest::Client, url: &str) -> Option<Vec<(String, String)>> {
    let r = http
        .get(format!("{url}/api/incidents"))
        .bearer_auth(API_TOKEN)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?;
    let list: Vec<Value> = r.json().await.ok()?;
    Some(
        list.iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap_or_default().to_string(),
                    i["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_under_sigkill_and_sigstop_finish_every_incident_exactly_once() {
    let seed = std::env::var("RECALL_CHAOS_SEED")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_SEED);
    eprintln!("chaos: seed {seed} (replay with RECALL_CHAOS_SEED={seed})");
    let mut rng = Rng(seed);

    // The world: Postgres, Verdaccio, crates.io.
    let db = postgres::database().await;
    let v = Verdaccio::start().await;
    let npm_token = v.admin_token.clone();
    let crates = FakeCrates::start().await;
    let owner = crates.add_user("chaos-owner");
    crates.add_token(owner, "recall", CRATES_TOKEN);
    // crates.io answers slowly (seeded latency): reads take 1–5 s, so each incident stays in
    // flight long enough for the harness to hit it many times; writes take up to 400 ms,
    // less than `reconcile_grace`, so a yank still landing after a crash is seen by the
    // second probe (a longer one would be resent, by design). The grace is 2 s, not less:
    // Verdaccio under 50 incidents and a SIGSTOP storm took more than 500 ms to land a
    // packument PUT sent just before a SIGKILL, and a 500 ms grace resent three of them in
    // one run — the probe cannot see a request the registry is still processing, so the
    // grace must exceed the registry's worst write latency (production default: 5 s).
    let mut latency = Rng(seed ^ 0x1a7e_c1e5);
    for _ in 0..1000 {
        let d = Duration::from_millis(latency.range(1000, 5000));
        crates
            .server()
            .inject("GET /api/v1/crates/*", crate::fakes::Fault::Delay(d));
    }
    for _ in 0..200 {
        let d = Duration::from_millis(latency.range(0, 400));
        crates
            .server()
            .inject("PATCH /api/v1/crates/*", crate::fakes::Fault::Delay(d));
    }
    for n in 0..INCIDENTS {
        let k = format!("chaos-crate-{n}");
        crates.add_crate(&k, owner);
        for ver in ["1.0.0", "1.0.1", "1.0.2"] {
            crates.add_version(&k, ver, "2024-03-01T12:34:56.789012Z");
        }
    }
    // 50 packages × 4 versions, a few packages at a time (versions in order).
    for chunk in (0..INCIDENTS).collect::<Vec<_>>().chunks(10) {
        futures::future::join_all(chunk.iter().map(|n| {
            let (v, t) = (&v, &npm_token);
            async move {
                for ver in ["1.0.0", "1.0.1", "1.0.2", "1.0.3"] {
                    v.publish(t, &format!("chaos-{n}"), ver).await;
                }
            }
        }))
        .await;
    }
    let answered_mark = v.answered_requests().len();
    let received_mark = v.mark();

    let mut r = Recall::new(&format!(
        r#"[npm]
registry = "{npm}"
token_env = "RECALL_TEST_NPM_TOKEN"
timeout = "20s"

[crates]
api = "{crates}"
token_env = "RECALL_TEST_CRATES_TOKEN"
timeout = "10s"

[engine]
lease_ttl = "3s"
reconcile_grace = "2s"

[server]
request_timeout = "10s"
shutdown_grace = "1s"

[api]
tokens_env = "RECALL_TEST_API_TOKENS"

[auth]
live_starters = ["user:chaos"]

[groups]
release-admins = ["alice"]
"#,
        npm = v.url,
        crates = crates.url()
    ));
    r.db = db.clone();
    r.env
        .push(("RECALL_TEST_NPM_TOKEN".into(), npm_token.clone()));
    r.env
        .push(("RECALL_TEST_CRATES_TOKEN".into(), CRATES_TOKEN.into()));
    r.env.push((
        "RECALL_TEST_API_TOKENS".into(),
        format!("chaos={API_TOKEN}"),
    ));
    std::fs::create_dir_all(r.dir.path().join("playbooks")).unwrap();
    write_file(
        &r.dir.path().join("playbooks"),
        "chaos.yaml",
        PLAYBOOK.as_bytes(),
    );
    eprintln!(
        "chaos: dir {} (replica logs replica-<n>.<generation>.log), db {}",
        r.dir.path().display(),
        db
    );

    // Three replicas on the one database (they start together: migrations race too).
    let launched = futures::future::join_all((0..REPLICAS).map(|i| launch(&r, i, 0))).await;
    let mut reps: Vec<Replica> = launched
        .into_iter()
        .enumerate()
        .map(|(idx, (child, url))| Replica {
            idx,
            generation: 0,
            child: Some(child),
            url,
            stopped_until: None,
            restart_at: None,
        })
        .collect();
    for rep in &reps {
        eprintln!(
            "chaos: replica {} pid {} at {}",
            rep.idx,
            rep.pid(),
            rep.url
        );
    }

    // 50 live incidents at once, round-robin over the replicas.
    let http = reqwest::Client::new();
    let starts = futures::future::join_all((0..INCIDENTS).map(|n| {
        let url = reps[n % REPLICAS].url.clone();
        let http = http.clone();
        async move {
            let body = json!({
                "playbook": "chaos",
                "params": {
                    "package": format!("chaos-{n}"),
                    "versions": BAD_NPM,
                    "crate": format!("chaos-crate-{n}"),
                    "crate_versions": BAD_CRATE,
                },
            });
            let resp = http
                .post(format!("{url}/api/incidents"))
                .bearer_auth(API_TOKEN)
                .json(&body)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .expect("POST /api/incidents");
            let status = resp.status().as_u16();
            let b: Value = resp.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 202, "start chaos-{n}: {b}");
            (b["id"].as_str().expect("id").to_string(), n)
        }
    }))
    .await;
    let ids: std::collections::BTreeMap<String, usize> = starts.into_iter().collect();
    assert_eq!(ids.len(), INCIDENTS);
    eprintln!("chaos: {INCIDENTS} incidents started");

    // The harness.
    let start = Instant::now();
    let (mut kills, mut stops, mut skips) = (0usize, 0usize, 0usize);
    let mut next_action = start + Duration::from_millis(rng.range(1000, 3000));
    let mut last_poll = start;
    let mut poll_from = 0usize;
    let mut finished = 0usize;
    let mut last_progress = Instant::now();
    let mut last_statuses: Vec<(String, String)> = Vec::new();
    let mut all_done = false;
    loop {
        let now = Instant::now();
        for rep in reps.iter_mut() {
            if rep.stopped_until.is_some_and(|t| now >= t) {
                rep.signal(libc::SIGCONT);
                rep.stopped_until = None;
                eprintln!(
                    "[chaos t={:6.2}s] SIGCONT replica {} (pid {})",
                    secs(start),
                    rep.idx,
                    rep.pid()
                );
            }
        }
        // Indexes, not iter_mut: `launch` is awaited while a replica is updated.
        #[allow(clippy::needless_range_loop)]
        for i in 0..reps.len() {
            if reps[i].restart_at.is_some_and(|t| now >= t) {
                let generation = reps[i].generation + 1;
                let (child, url) = launch(&r, i, generation).await;
                let rep = &mut reps[i];
                rep.generation = generation;
                rep.child = Some(child);
                rep.url = url;
                rep.restart_at = None;
                eprintln!(
                    "[chaos t={:6.2}s] restarted replica {} as pid {} at {}",
                    secs(start),
                    i,
                    rep.pid(),
                    rep.url
                );
            }
        }
        if now.duration_since(last_poll) >= Duration::from_millis(500) {
            last_poll = now;
            // Ask a running replica (never a stopped one: it would not answer).
            let running: Vec<usize> = (0..reps.len()).filter(|&i| reps[i].running()).collect();
            poll_from += 1;
            let pick = running[poll_from % running.len()];
            if let Some(list) = statuses(&http, &reps[pick].url).await {
                let ours: Vec<(String, String)> = list
                    .into_iter()
                    .filter(|(id, _)| ids.contains_key(id))
                    .collect();
                let terminal = ours
                    .iter()
                    .filter(|(_, s)| s == "succeeded" || s == "failed")
                    .count();
                if terminal > finished {
                    finished = terminal;
                    last_progress = Instant::now();
                    eprintln!(
                        "[chaos t={:6.2}s] {finished}/{INCIDENTS} incidents finished",
                        secs(start)
                    );
                }
                last_statuses = ours;
                if finished == INCIDENTS {
                    all_done = true;
                    break;
                }
            }
        }
        if now.duration_since(start) > CAP {
            eprintln!("[chaos t={:6.2}s] cap reached", secs(start));
            break;
        }
        if now.duration_since(last_progress) > Duration::from_secs(120) {
            eprintln!(
                "[chaos t={:6.2}s] no incident finished for 120 s: giving up",
                secs(start)
            );
            break;
        }
        if now >= next_action {
            // A fixed number of draws per action, so a seed always replays the same choices.
            let gap = rng.range(1000, 3000);
            let kind = rng.next() % 2;
            let which = rng.next();
            let pause = rng.range(300, 1500);
            let stop_for = rng.range(4000, 6000);
            next_action = now + Duration::from_millis(gap);
            let running: Vec<usize> = (0..reps.len()).filter(|&i| reps[i].running()).collect();
            if running.len() < 2 {
                skips += 1;
                eprintln!(
                    "[chaos t={:6.2}s] skip: only {} replica(s) running",
                    secs(start),
                    running.len()
                );
            } else {
                let rep = &mut reps[running[(which % running.len() as u64) as usize]];
                if kind == 0 {
                    kills += 1;
                    let pid = rep.pid();
                    if let Some(mut c) = rep.child.take() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    rep.restart_at = Some(Instant::now() + Duration::from_millis(pause));
                    eprintln!(
                        "[chaos t={:6.2}s] SIGKILL replica {} (pid {pid}); restart in {pause} ms",
                        secs(start),
                        rep.idx
                    );
                } else {
                    stops += 1;
                    rep.signal(libc::SIGSTOP);
                    rep.stopped_until = Some(Instant::now() + Duration::from_millis(stop_for));
                    eprintln!(
                        "[chaos t={:6.2}s] SIGSTOP replica {} (pid {}) for {stop_for} ms",
                        secs(start),
                        rep.idx,
                        rep.pid()
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chaos_secs = secs(start);
    // Let every stopped replica go and bring the killed ones back, then wait more than a
    // lease TTL: whatever a fenced-off replica still had in hand must not reach a registry.
    #[allow(clippy::needless_range_loop)]
    for i in 0..reps.len() {
        if reps[i].stopped_until.take().is_some() {
            reps[i].signal(libc::SIGCONT);
            eprintln!(
                "[chaos t={:6.2}s] end: SIGCONT replica {i} (pid {})",
                secs(start),
                reps[i].pid()
            );
        }
        if reps[i].restart_at.take().is_some() {
            let generation = reps[i].generation + 1;
            let (child, url) = launch(&r, i, generation).await;
            reps[i].generation = generation;
            reps[i].child = Some(child);
            reps[i].url = url;
            eprintln!("[chaos t={:6.2}s] end: restarted replica {i}", secs(start));
        }
    }
    tokio::time::sleep(LEASE_TTL + Duration::from_secs(3)).await;

    // ---- Checks. Every failure is collected, then reported with its evidence.
    let mut failures: Vec<String> = Vec::new();
    let mut suspects: std::collections::BTreeSet<String> = Default::default();
    if !all_done {
        let open: Vec<_> = last_statuses
            .iter()
            .filter(|(_, s)| s != "succeeded" && s != "failed")
            .collect();
        failures.push(format!(
            "not every incident finished within the cap ({chaos_secs:.1} s): {open:?}"
        ));
        suspects.extend(open.iter().map(|(id, _)| id.clone()));
    }

    // 1. Every incident succeeded, and every step and item in it.
    let list = r.run(&["incident", "list", "--json"]).json();
    let listed: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| ids.contains_key(i["id"].as_str().unwrap_or("")))
        .collect();
    if listed.len() != INCIDENTS {
        failures.push(format!("listed {} of {INCIDENTS} incidents", listed.len()));
    }
    let (mut steps_ok, mut items_ok) = (0usize, 0usize);
    for id in ids.keys() {
        let show = r.run(&["incident", "show", id, "--json"]);
        if show.code != Some(0) {
            failures.push(format!("{id}: incident show failed: {show:?}"));
            continue;
        }
        let show = show.json();
        if show["incident"]["status"] != "succeeded" {
            failures.push(format!(
                "{id}: status {} (expected succeeded)",
                show["incident"]["status"]
            ));
            suspects.insert(id.clone());
        }
        let steps = show["steps"].as_array().cloned().unwrap_or_default();
        if steps.len() != 4 {
            failures.push(format!("{id}: {} steps recorded, expected 4", steps.len()));
            suspects.insert(id.clone());
        }
        for s in &steps {
            if s["status"] == "succeeded" {
                steps_ok += 1;
            } else {
                failures.push(format!(
                    "{id}: step {} is {} ({})",
                    s["step_id"], s["status"], s["error"]
                ));
                suspects.insert(id.clone());
            }
        }
        for t in show["tasks"].as_array().cloned().unwrap_or_default() {
            if t["status"] == "succeeded" {
                items_ok += 1;
            } else {
                failures.push(format!(
                    "{id}: {}[{}] is {} ({})",
                    t["step_id"], t["item_index"], t["status"], t["error"]
                ));
                suspects.insert(id.clone());
            }
        }
    }

    // 2. Verdaccio answered exactly one deprecation per (package, version) and one
    // `latest` move per package; nothing else mutating.
    let answered: Vec<(String, String)> = v
        .answered_requests()
        .into_iter()
        .skip(answered_mark)
        .filter(|(m, _)| m != "GET" && m != "HEAD")
        .collect();
    let received = v.mutating_requests_since(received_mark);
    let by_pkg = |n: usize| {
        let p = wire_name(&format!("chaos-{n}"));
        let put = answered
            .iter()
            .filter(|(m, u)| m == "PUT" && u.trim_start_matches('/') == p)
            .count();
        let tag = answered
            .iter()
            .filter(|(m, u)| m == "PUT" && u.contains(&format!("/-/package/{p}/dist-tags/latest")))
            .count();
        (put, tag)
    };
    for (id, &n) in &ids {
        let (put, tag) = by_pkg(n);
        if put != BAD_NPM.len() || tag != 1 {
            failures.push(format!(
                "{id}: Verdaccio answered {put} deprecation PUT(s) of chaos-{n} (expected {}) and {tag} latest move(s) (expected 1)",
                BAD_NPM.len()
            ));
            suspects.insert(id.clone());
        }
        // And the registry's state says so.
        match v
            .get_json(&npm_token, &wire_name(&format!("chaos-{n}")))
            .await
        {
            Some(doc) => {
                for ver in BAD_NPM {
                    if !doc["versions"][ver]["deprecated"].is_string() {
                        failures.push(format!("{id}: chaos-{n}@{ver} is not deprecated"));
                    }
                }
                if doc["dist-tags"]["latest"] != "1.0.0" {
                    failures.push(format!(
                        "{id}: chaos-{n} latest is {}",
                        doc["dist-tags"]["latest"]
                    ));
                }
            }
            None => failures.push(format!("chaos-{n} vanished from Verdaccio")),
        }
    }
    let npm_expected = INCIDENTS * (BAD_NPM.len() + 1);
    if answered.len() != npm_expected {
        failures.push(format!(
            "Verdaccio answered {} mutating requests, expected {npm_expected}",
            answered.len()
        ));
    }

    // 3. The crates fake received exactly one yank per (crate, version).
    let crate_mutations: Vec<(String, String)> = crates
        .server()
        .requests()
        .into_iter()
        .filter(|q| q.is_mutating())
        .map(|q| (q.method.clone(), q.path().to_string()))
        .collect();
    for (id, &n) in &ids {
        for ver in BAD_CRATE {
            let path = format!("/api/v1/crates/chaos-crate-{n}/{ver}");
            let yank = format!("{path}/yank");
            let sent = crate_mutations
                .iter()
                .filter(|(_, p)| *p == path || *p == yank)
                .count();
            if sent != 1 {
                failures.push(format!(
                    "{id}: the crates fake saw {sent} yank(s) of chaos-crate-{n}@{ver}, expected 1"
                ));
                suspects.insert(id.clone());
            }
            if crates.is_yanked(&format!("chaos-crate-{n}"), ver) != Some(true) {
                failures.push(format!("{id}: chaos-crate-{n}@{ver} is not yanked"));
            }
        }
    }
    let crates_expected = INCIDENTS * BAD_CRATE.len();
    if crate_mutations.len() != crates_expected {
        failures.push(format!(
            "the crates fake saw {} mutating requests, expected {crates_expected}",
            crate_mutations.len()
        ));
    }

    // 4. Every timeline verifies; count what the chaos left in them.
    let (mut reconciles, mut stale, mut resumed) = (0usize, 0usize, 0usize);
    for id in ids.keys() {
        let a = r.run(&["audit", "verify", id]);
        if a.code != Some(0) {
            failures.push(format!("{id}: audit verify failed: {a:?}"));
            suspects.insert(id.clone());
        }
        let tl = r.run(&["timeline", id, "--format", "json"]);
        if tl.code == Some(0) {
            for e in tl.json()["events"].as_array().cloned().unwrap_or_default() {
                let k = e["kind"].as_str().unwrap_or("");
                reconciles += usize::from(k.starts_with("reconcile."));
                stale += usize::from(k == "attempt.stale");
                resumed += usize::from(k == "incident.resumed");
            }
        }
    }

    eprintln!(
        "chaos: seed {seed}; {:.1} s of chaos: {kills} SIGKILL+restart, {stops} SIGSTOP/SIGCONT, {skips} skipped; \
         {INCIDENTS} incidents, {steps_ok} steps and {items_ok} step items succeeded; \
         Verdaccio answered {} mutating requests ({} received), crates fake {} mutating; \
         timelines: {resumed} incident.resumed, {reconciles} reconcile.*, {stale} attempt.stale",
        chaos_secs,
        answered.len(),
        received.len(),
        crate_mutations.len()
    );

    if !failures.is_empty() {
        for id in suspects.iter().take(5) {
            let md = r.run(&["timeline", id, "--format", "md"]);
            eprintln!("---- timeline of {id}\n{}", md.stdout);
        }
        // Keep the replica logs for a look.
        let dir = std::mem::replace(&mut r.dir, tempfile::tempdir().expect("tempdir")).keep();
        panic!(
            "chaos (seed {seed}) found {} problem(s); replica logs in {}:\n{}",
            failures.len(),
            dir.display(),
            failures.join("\n")
        );
    }
    drop(reps);
}
