//! Prometheus metrics: process counters kept here (Slack acks and posts), the rest read
//! from the database at scrape time (incidents by state, step durations, retries,
//! approvals waiting), so every replica reports the same truth.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::Store;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Buckets in seconds.
const ACK_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0];
const STEP_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0];

pub struct Histogram {
    buckets: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(buckets: &'static [f64]) -> Self {
        Self {
            buckets,
            counts: buckets.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, secs: f64) {
        for (i, b) in self.buckets.iter().enumerate() {
            if secs <= *b {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_us
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in self.buckets.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {n}");
    }
}

pub struct Metrics {
    pub slack_ack: Histogram,
    pub slack_posts: Counter,
    pub slack_failures: Counter,
    pub slack_rejected: Counter,
    pub api_requests: Counter,
    /// Scheduled game days run by this process, by verdict.
    pub gameday_would_contain: Counter,
    pub gameday_blocked: Counter,
    /// Game days that produced no report (the target, the rehearsal or the report failed).
    pub gameday_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            slack_ack: Histogram::new(ACK_BUCKETS),
            slack_posts: Counter::default(),
            slack_failures: Counter::default(),
            slack_rejected: Counter::default(),
            api_requests: Counter::default(),
            gameday_would_contain: Counter::default(),
            gameday_blocked: Counter::default(),
            gameday_errors: Counter::default(),
        }
    }
}

impl Metrics {
    /// Counts one scheduled game day by its report's verdict (`would_contain`, `blocked`;
    /// anything else counts as `error`).
    pub fn gameday_run(&self, verdict: &str) {
        match verdict {
            "would_contain" => self.gameday_would_contain.inc(),
            "blocked" => self.gameday_blocked.inc(),
            _ => self.gameday_errors.inc(),
        }
    }

    pub async fn render(&self, store: &dyn Store) -> String {
        let mut out = String::new();
        let mut by_status: std::collections::BTreeMap<(String, String), u64> = Default::default();
        let steps = Histogram::new(STEP_BUCKETS);
        let mut retries = 0u64;
        let mut waiting = 0u64;
        if let Ok(list) = store.list().await {
            for i in &list {
                *by_status
                    .entry((i.status.clone(), i.mode.clone()))
                    .or_default() += 1;
            }
            // Step detail for the most recent incidents only: a scrape must stay cheap.
            for i in list.iter().rev().take(200) {
                if let Ok(Some(run)) = store.load(&i.id).await {
                    for s in &run.steps {
                        if let (Some(a), Some(b)) = (s.started_at, s.finished_at) {
                            steps.observe((b - a).max(0) as f64 / 1e3);
                        }
                        if s.status == "awaiting_approval" {
                            waiting += 1;
                        }
                    }
                    retries += run
                        .tasks
                        .iter()
                        .map(|t| u64::from(t.attempt.saturating_sub(1)))
                        .sum::<u64>();
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP recall_incidents Incidents by status and mode.\n# TYPE recall_incidents gauge"
        );
        for ((status, mode), n) in &by_status {
            let _ = writeln!(
                out,
                "recall_incidents{{status=\"{status}\",mode=\"{mode}\"}} {n}"
            );
        }
        steps.render(
            &mut out,
            "recall_step_duration_seconds",
            "Step durations (the 200 most recent incidents).",
        );
        let _ = writeln!(
            out,
            "# HELP recall_retries Attempts beyond the first (the 200 most recent incidents).\n# TYPE recall_retries gauge\nrecall_retries {retries}"
        );
        let _ = writeln!(
            out,
            "# HELP recall_approvals_waiting Steps waiting for an approval.\n# TYPE recall_approvals_waiting gauge\nrecall_approvals_waiting {waiting}"
        );
        self.slack_ack.render(
            &mut out,
            "recall_slack_ack_seconds",
            "Time to acknowledge a Slack request (Slack's deadline is 3 s).",
        );
        for (name, help, c) in [
            (
                "recall_slack_posts_total",
                "Slack messages posted or updated.",
                &self.slack_posts,
            ),
            (
                "recall_slack_failures_total",
                "Slack calls that failed (retried later).",
                &self.slack_failures,
            ),
            (
                "recall_slack_rejected_total",
                "Slack requests refused (signature, age, replay, size).",
                &self.slack_rejected,
            ),
            (
                "recall_api_requests_total",
                "JSON API requests.",
                &self.api_requests,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        let _ = writeln!(
            out,
            "# HELP recall_gameday_runs_total Scheduled game days run by this process, by verdict.\n# TYPE recall_gameday_runs_total counter"
        );
        for (verdict, c) in [
            ("would_contain", &self.gameday_would_contain),
            ("blocked", &self.gameday_blocked),
            ("error", &self.gameday_errors),
        ] {
            let _ = writeln!(
                out,
                "recall_gameday_runs_total{{verdict=\"{verdict}\"}} {}",
                c.get()
            );
        }
        out
    }
}
