//! Game days on a schedule in `recall serve` (see `[[gameday]]` in the config).
//!
//! Two halves:
//!
//! * [`Cron`]: a pure parser of five-field cron expressions (minute hour day-of-month month
//!   day-of-week, in UTC) and [`Cron::next_after`], which reads no clock. `*`, lists
//!   `a,b`, ranges `a-b`, steps `*/n` and `a-b/n`, three-letter month and day names
//!   (`jan`, `mon-fri`); day-of-week 0–7 with 0 and 7 both Sunday. Day-of-month and
//!   day-of-week follow Vixie cron exactly: when *both* fields are restricted a day
//!   matching either runs; a field that starts with `*` (`*/2` included) counts as
//!   unrestricted, so the other one alone decides (AND). An expression whose
//!   day-of-month never falls in its months (`0 0 30 2 *`) is refused, since it would never
//!   fire.
//! * [`Scheduler`]: the loop `recall serve` spawns when `[[gameday]]` entries exist. Only
//!   the replica holding the named leader lease [`GAMEDAY_LEASE`] fires (renewed every
//!   third of `[engine] lease_ttl`). Each entry keeps its next fire time, computed from
//!   *now*: a fire time missed while the server was down (or while no replica held the
//!   lease, or more than [`LATE_LIMIT_MS`] ago) is skipped, never replayed. When due, the
//!   target is resolved again (a playbook file edited since the start is picked up), the
//!   rehearsal runs ([`super::rehearse`], actor `game-day:<name>`), the report is built
//!   ([`super::report_of`]) and stored with the incident as the artifacts [`super::REPORT_MD`]
//!   and [`super::REPORT_JSON`], and [`super::report::summary`] is posted to the entry's Slack
//!   channel (or `[slack] channel`). Slack failing is logged and never stops the loop; an
//!   entry still running at its next fire time is skipped for that time.
//!
//! Test hook: `RECALL_GAMEDAY_NOW_FIRE=1` in the environment of `recall serve` makes every
//! enabled entry fire once right at start (as the leader), then follow its cron. It exists
//! so tests need not wait for a minute boundary; it is not a supported interface.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::config::{Config, GamedayConfig};
use crate::http::metrics::Metrics;
use crate::postmortem::rfc3339;
use crate::runner::{DriveOutcome, Runner, now_ms};
use crate::slack::client::SlackClient;

/// The leader lease for scheduled game days.
pub const GAMEDAY_LEASE: &str = "gameday";
/// A fire time found more than this late (the process was stopped, the host asleep) is
/// skipped as missed rather than run late.
pub const LATE_LIMIT_MS: i64 = 5 * 60_000;
/// Findings in the Slack summary.
pub const SUMMARY_FINDINGS: usize = 5;
/// The test hook (see the module docs).
pub const FIRE_NOW_ENV: &str = "RECALL_GAMEDAY_NOW_FIRE";

// ---- the cron expression ----

/// Why a cron expression was refused: one line naming the field and the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// A parsed cron expression (UTC). Each field is a bit set of the values it allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    expr: String,
    minutes: u64,
    hours: u64,
    doms: u64,
    months: u64,
    /// Bits 0–6, Sunday = 0 (a 7 in the expression is folded into 0).
    dows: u64,
    /// The field starts with `*` (Vixie's DOM_STAR / DOW_STAR).
    dom_star: bool,
    dow_star: bool,
}

struct Field {
    name: &'static str,
    lo: u32,
    hi: u32,
    /// Names for `lo`, `lo + 1`, …
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    lo: 0,
    hi: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    lo: 0,
    hi: 23,
    names: &[],
};
const DOM: Field = Field {
    name: "day-of-month",
    lo: 1,
    hi: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    lo: 1,
    hi: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Field = Field {
    name: "day-of-week",
    lo: 0,
    hi: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

fn err(msg: String) -> CronError {
    CronError(msg)
}

impl Field {
    fn value(&self, s: &str) -> Result<u32, CronError> {
        if let Some(i) = self
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .and_then(|i| u32::try_from(i).ok())
        {
            return Ok(self.lo + i);
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            let hint = if self.names.is_empty() {
                String::new()
            } else {
                format!(
                    " (a number or one of {})",
                    self.names.join(", ").to_ascii_uppercase()
                )
            };
            return Err(err(format!("{} {s:?} is not a number{hint}", self.name)));
        }
        match s.parse::<u32>() {
            Ok(v) if (self.lo..=self.hi).contains(&v) => Ok(v),
            _ => Err(err(format!(
                "{} {s} out of {}-{}",
                self.name, self.lo, self.hi
            ))),
        }
    }

    /// One field: a comma list of `*`, `v`, `a-b`, `*/n`, `a-b/n`.
    fn parse(&self, text: &str) -> Result<u64, CronError> {
        let mut bits = 0u64;
        for part in text.split(',') {
            if part.is_empty() {
                return Err(err(format!("{} {text:?}: empty list entry", self.name)));
            }
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(err(format!(
                            "{} {part:?}: step {s:?} is not a number",
                            self.name
                        )));
                    }
                    match s.parse::<u32>() {
                        Ok(0) => {
                            return Err(err(format!(
                                "{} {part:?}: a step must be at least 1",
                                self.name
                            )));
                        }
                        Ok(n) => (r, Some(n)),
                        Err(_) => {
                            return Err(err(format!(
                                "{} {part:?}: step {s} is too large",
                                self.name
                            )));
                        }
                    }
                }
                None => (part, None),
            };
            let (lo, hi) = if range == "*" {
                (self.lo, self.hi)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(err(format!(
                        "{} {range:?}: the range starts after it ends",
                        self.name
                    )));
                }
                (a, b)
            } else {
                let v = self.value(range)?;
                if step.is_some() {
                    return Err(err(format!(
                        "{} {part:?}: a step needs a range or `*` (write {v}-{}/n)",
                        self.name, self.hi
                    )));
                }
                (v, v)
            };
            let step = step.unwrap_or(1) as usize;
            for v in (lo..=hi).step_by(step) {
                bits |= 1u64 << v;
            }
        }
        Ok(bits)
    }
}

fn has(bits: u64, v: u32) -> bool {
    v < 64 && bits & (1u64 << v) != 0
}

fn days_in_month(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Cron {
    /// Parses `minute hour day-of-month month day-of-week`.
    pub fn parse(expr: &str) -> Result<Cron, CronError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let [mi, h, dom, mo, dow] = fields.as_slice() else {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        };
        let mut dows = DOW.parse(dow)?;
        if has(dows, 7) {
            dows = (dows & !(1u64 << 7)) | 1;
        }
        let cron = Cron {
            expr: fields.join(" "),
            minutes: MINUTE.parse(mi)?,
            hours: HOUR.parse(h)?,
            doms: DOM.parse(dom)?,
            months: MONTH.parse(mo)?,
            dows,
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
        };
        // With day-of-week unrestricted, the day-of-month must exist in one of the months
        // (February counted with 29 days), else the expression never fires.
        if cron.dow_star && !cron.dom_star {
            let meets = (1..=12)
                .filter(|m| has(cron.months, *m))
                .any(|m| (1..=days_in_month(m)).any(|d| has(cron.doms, d)));
            if !meets {
                return Err(err(format!(
                    "day-of-month {dom} never falls in month {mo}: it would never fire"
                )));
            }
        }
        Ok(cron)
    }

    /// The expression, normalised to single spaces.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = has(self.doms, d.day());
        let dow = has(self.dows, d.weekday().num_days_from_sunday());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Does the minute starting at `t` match?
    pub fn matches(&self, t: NaiveDateTime) -> bool {
        has(self.months, t.month())
            && self.day_matches(t.date())
            && has(self.hours, t.hour())
            && has(self.minutes, t.minute())
    }

    /// The first matching minute strictly after `ms` (Unix milliseconds, UTC), in Unix
    /// milliseconds. `None` only when nothing matches within 400 years (a whole Gregorian
    /// cycle: [`Cron::parse`] refuses expressions that never fire) or the time is out of
    /// range.
    pub fn next_after(&self, ms: i64) -> Option<i64> {
        let start = ms.div_euclid(60_000).checked_add(1)?.checked_mul(60_000)?;
        let mut t = chrono::DateTime::from_timestamp_millis(start)?.naive_utc();
        let last_year = t.year().checked_add(400)?;
        while t.year() <= last_year {
            if !has(self.months, t.month()) {
                let (y, m) = if t.month() == 12 {
                    (t.year().checked_add(1)?, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !has(self.hours, t.hour()) {
                t = t
                    .date()
                    .and_hms_opt(t.hour(), 0, 0)?
                    .checked_add_signed(chrono::TimeDelta::hours(1))?;
                continue;
            }
            if !has(self.minutes, t.minute()) {
                t = t.checked_add_signed(chrono::TimeDelta::minutes(1))?;
                continue;
            }
            return Some(t.and_utc().timestamp_millis());
        }
        None
    }
}

// ---- the plan: which entries are due (pure) ----

/// What [`Plan::due`] decided for one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fire {
    /// Run entry `index` now (it was due at `at`).
    Run { index: usize, at: i64 },
    /// Entry `index` was due at `at`, more than [`LATE_LIMIT_MS`] ago: skipped.
    Missed { index: usize, at: i64 },
}

/// The next fire time of each entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    next: Vec<Option<i64>>,
}

impl Plan {
    /// Next fire times from `now` (a time already past is never replayed); `fire_now`: every
    /// entry is due at `now` first (the test hook).
    pub fn new(crons: &[Cron], now: i64, fire_now: bool) -> Plan {
        Plan {
            next: crons
                .iter()
                .map(|c| {
                    if fire_now {
                        Some(now)
                    } else {
                        c.next_after(now)
                    }
                })
                .collect(),
        }
    }

    pub fn next(&self, index: usize) -> Option<i64> {
        self.next.get(index).copied().flatten()
    }

    /// The entries due at `now`; each moves on to its first fire time after `now`, so
    /// however late the check, an entry is due once, never once per missed time.
    pub fn due(&mut self, crons: &[Cron], now: i64) -> Vec<Fire> {
        let mut out = Vec::new();
        for (index, (slot, cron)) in self.next.iter_mut().zip(crons).enumerate() {
            let Some(at) = *slot else { continue };
            if at > now {
                continue;
            }
            out.push(if now.saturating_sub(at) > LATE_LIMIT_MS {
                Fire::Missed { index, at }
            } else {
                Fire::Run { index, at }
            });
            *slot = cron.next_after(now);
        }
        out
    }

    /// The earliest next fire time.
    pub fn earliest(&self) -> Option<i64> {
        self.next.iter().flatten().min().copied()
    }
}

// ---- the loop in `recall serve` ----

/// One enabled `[[gameday]]` entry, checked at serve start.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub target: String,
    pub params: Vec<(String, String)>,
    pub cron: Cron,
    pub channel: Option<String>,
}

impl Entry {
    pub fn actor(&self) -> String {
        format!("game-day:{}", self.name)
    }
}

/// The enabled entries of the config, each with a target that resolves and params that
/// bind (checked like `recall gameday run` checks them), or the first problem, naming the
/// entry.
pub fn entries(config: &Config, runner: &Runner) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for g in config.gameday.iter().filter(|g| g.enabled) {
        out.push(entry(g, runner)?);
    }
    Ok(out)
}

fn entry(g: &GamedayConfig, runner: &Runner) -> Result<Entry, String> {
    let who = format!("[[gameday]] {:?}", g.name);
    let cron = Cron::parse(&g.cron).map_err(|e| format!("{who}: cron {:?}: {e}", g.cron))?;
    let params = g.raw_params();
    let t = super::resolve(&g.target, &params)
        .map_err(|e| format!("{who}: target {:?}: {e}", g.target))?;
    runner
        .validate(&t.request(&format!("game-day:{}", g.name)))
        .map_err(|e| format!("{who}: target {:?}: {e}", g.target))?;
    Ok(Entry {
        name: g.name.clone(),
        target: g.target.clone(),
        params,
        cron,
        channel: g.channel.clone(),
    })
}

/// Is the test hook set?
pub fn fire_now_from_env() -> bool {
    std::env::var(FIRE_NOW_ENV).is_ok_and(|v| matches!(v.trim(), "1" | "true"))
}

/// The scheduler `recall serve` spawns.
pub struct Scheduler {
    pub entries: Vec<Entry>,
    /// A runner of its own: its lease owner differs from the supervisor's, so the
    /// supervisor's sweep never drives a rehearsal this loop is driving.
    pub runner: Arc<Runner>,
    /// The bot client when Slack is configured.
    pub slack: Option<SlackClient>,
    pub metrics: Arc<Metrics>,
    pub lease_ttl_ms: i64,
    /// On stop: how long running game days get to finish.
    pub grace: Duration,
    /// The test hook: fire every entry once at start.
    pub fire_now: bool,
}

impl Scheduler {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let crons: Vec<Cron> = self.entries.iter().map(|e| e.cron.clone()).collect();
        let mut plan = Plan::new(&crons, now_ms(), self.fire_now);
        for (i, e) in self.entries.iter().enumerate() {
            info!(
                gameday = %e.name,
                cron = %e.cron.expr(),
                next = %plan.next(i).map(rfc3339).unwrap_or_else(|| "never".into()),
                "game day scheduled"
            );
        }
        let renew_every = Duration::from_millis((self.lease_ttl_ms / 3).max(100) as u64);
        let owner = self.runner.owner().to_string();
        let shared = Arc::new(Shared {
            runner: self.runner.clone(),
            slack: self.slack.clone(),
            metrics: self.metrics.clone(),
        });
        let mut tasks: JoinSet<()> = JoinSet::new();
        // Running game days by task: an entry still running is not started again.
        let mut running: BTreeMap<tokio::task::Id, usize> = BTreeMap::new();
        let mut was_leader = false;
        loop {
            if *stop.borrow() {
                break;
            }
            while let Some(done) = tasks.try_join_next_with_id() {
                self.reap(done, &mut running);
            }
            let now = now_ms();
            let leader = match self
                .runner
                .store
                .acquire_named_lease(GAMEDAY_LEASE, &owner, now, self.lease_ttl_ms)
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    warn!(error = %e, "game days: could not take the leader lease");
                    false
                }
            };
            if leader != was_leader {
                info!(
                    leader,
                    "game days: leader lease {}",
                    if leader { "taken" } else { "held elsewhere" }
                );
                was_leader = leader;
            }
            for fire in plan.due(&crons, now) {
                let (index, at, missed) = match fire {
                    Fire::Run { index, at } => (index, at, false),
                    Fire::Missed { index, at } => (index, at, true),
                };
                let Some(e) = self.entries.get(index) else {
                    continue;
                };
                let next = plan
                    .next(index)
                    .map(rfc3339)
                    .unwrap_or_else(|| "never".into());
                if !leader {
                    debug!(gameday = %e.name, due = %rfc3339(at), "game day due on the leader replica");
                } else if missed {
                    warn!(gameday = %e.name, due = %rfc3339(at), next = %next, "game day missed (not replayed)");
                } else if running.values().any(|i| *i == index) {
                    warn!(gameday = %e.name, due = %rfc3339(at), next = %next, "game day still running from its last time: skipped");
                } else {
                    info!(gameday = %e.name, due = %rfc3339(at), next = %next, "game day starting");
                    let (sh, e) = (shared.clone(), e.clone());
                    let task = tasks.spawn(async move { sh.fire(&e).await });
                    running.insert(task.id(), index);
                }
            }
            let now = now_ms();
            let until_next = plan
                .earliest()
                .map(|t| Duration::from_millis(t.saturating_sub(now).max(0) as u64))
                .unwrap_or(renew_every);
            let sleep = until_next.min(renew_every);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                changed = stop.changed() => {
                    // The sender gone is a stop too.
                    if changed.is_err() {
                        break;
                    }
                }
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    self.reap(done, &mut running);
                }
            }
        }
        if !tasks.is_empty() {
            info!(
                running = tasks.len(),
                grace_ms = self.grace.as_millis() as u64,
                "game days: waiting for running rehearsals"
            );
            let wait = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(self.grace, wait).await.is_err() {
                warn!(
                    "game days: grace period over; an unfinished rehearsal resumes on the next start, without its report"
                );
                tasks.abort_all();
            }
        }
    }
}

impl Scheduler {
    /// A finished game day task: forget it; a panic is logged and counted, and the entry
    /// runs again at its next time.
    fn reap(
        &self,
        done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
        running: &mut BTreeMap<tokio::task::Id, usize>,
    ) {
        let id = match done {
            Ok((id, ())) => id,
            Err(e) => {
                let name = running
                    .get(&e.id())
                    .and_then(|i| self.entries.get(*i))
                    .map(|e| e.name.clone())
                    .unwrap_or_default();
                if e.is_panic() {
                    self.metrics.gameday_run("error");
                    warn!(gameday = %name, "game day: the run panicked");
                }
                e.id()
            }
        };
        running.remove(&id);
    }
}

/// What each run needs.
struct Shared {
    runner: Arc<Runner>,
    slack: Option<SlackClient>,
    metrics: Arc<Metrics>,
}

/// Slack's recommended maximum for a message's `text`.
const SLACK_TEXT_MAX: usize = 3_900;

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

impl Shared {
    /// One game day: rehearse, report, store, log, post. Every failure is logged and
    /// counted (`verdict="error"`); none escapes.
    async fn fire(&self, e: &Entry) {
        let runner = self.runner.as_ref();
        let t = match super::resolve(&e.target, &e.params) {
            Ok(t) => t,
            Err(err) => {
                self.metrics.gameday_run("error");
                warn!(gameday = %e.name, target = %e.target, error = %err, "game day: the target no longer resolves");
                return;
            }
        };
        let (id, outcome) = match super::rehearse(runner, &t, &e.actor()).await {
            Ok(x) => x,
            Err(err) => {
                self.metrics.gameday_run("error");
                warn!(gameday = %e.name, error = %err, "game day: the rehearsal could not run");
                return;
            }
        };
        let status = match &outcome {
            DriveOutcome::Finished(s) => s.as_str(),
            DriveOutcome::Elsewhere => "elsewhere",
        };
        let report = match super::report_of(
            runner.store.as_ref(),
            &runner.registry,
            &runner.config,
            &id,
            t.scenario.as_deref(),
        )
        .await
        {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.metrics.gameday_run("error");
                warn!(gameday = %e.name, incident = %id, "game day: the rehearsal was not stored");
                return;
            }
            Err(err) => {
                self.metrics.gameday_run("error");
                warn!(gameday = %e.name, incident = %id, error = %err, "game day: could not build the report");
                return;
            }
        };
        let verdict = report["verdict"].as_str().unwrap_or("unknown").to_string();
        let now = now_ms();
        if let Err(err) = super::store_report(runner.store.as_ref(), &id, &report, now).await {
            warn!(gameday = %e.name, incident = %id, error = %err, "game day: could not store the report");
        }
        self.metrics.gameday_run(&verdict);
        info!(
            gameday = %e.name,
            incident = %id,
            verdict = %verdict,
            status = %status,
            blocks_containment = report["blocks_containment"].as_u64().unwrap_or(0),
            "game day finished"
        );
        self.post(e, &id, &verdict, &report).await;
    }

    async fn post(&self, e: &Entry, id: &str, verdict: &str, report: &Value) {
        let Some(client) = &self.slack else {
            return;
        };
        let channel = e
            .channel
            .clone()
            .or_else(|| self.runner.config.slack.channel.clone())
            .filter(|c| !c.trim().is_empty());
        let Some(channel) = channel else {
            info!(gameday = %e.name, incident = %id, "game day: no channel ([[gameday]] channel or [slack] channel): summary not posted");
            return;
        };
        let text = truncate(
            &super::report::summary(report, SUMMARY_FINDINGS),
            SLACK_TEXT_MAX,
        );
        let body = json!({
            "channel": channel,
            "text": text,
            "unfurl_links": false,
            "metadata": {
                "event_type": "recall_gameday",
                "event_payload": { "incident": id, "gameday": e.name, "verdict": verdict },
            },
        });
        match client.call("chat.postMessage", &body).await {
            Ok(_) => {
                self.metrics.slack_posts.inc();
                info!(gameday = %e.name, incident = %id, channel = %channel, "game day summary posted");
            }
            Err(err) => {
                self.metrics.slack_failures.inc();
                warn!(gameday = %e.name, incident = %id, channel = %channel, error = %err, "game day: the Slack summary was not posted");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| d.timestamp_millis())
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn next(expr: &str, after: &str) -> Option<String> {
        let c = Cron::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        c.next_after(ms(after)).map(|t| {
            chrono::DateTime::from_timestamp_millis(t)
                .map(|d| d.format("%Y-%m-%dT%H:%M").to_string())
                .unwrap_or_default()
        })
    }

    fn parse_err(expr: &str) -> String {
        match Cron::parse(expr) {
            Ok(c) => panic!("{expr} parsed: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_minute_is_strictly_after_and_minute_aligned() {
        assert_eq!(
            next("* * * * *", "2024-05-01T10:00:00Z").as_deref(),
            Some("2024-05-01T10:01")
        );
        assert_eq!(
            next("* * * * *", "2024-05-01T10:00:59.999Z").as_deref(),
            Some("2024-05-01T10:01")
        );
        let c = Cron::parse("* * * * *").unwrap();
        let t = c.next_after(ms("2024-05-01T10:00:30Z")).unwrap();
        assert_eq!(t % 60_000, 0);
        // Before 1970 too (div_euclid, not truncation).
        assert_eq!(
            next("* * * * *", "1969-12-31T23:59:30Z").as_deref(),
            Some("1970-01-01T00:00")
        );
    }

    #[test]
    fn hours_days_and_year_rollover() {
        assert_eq!(
            next("30 2 * * *", "2024-05-01T02:30:00Z").as_deref(),
            Some("2024-05-02T02:30")
        );
        assert_eq!(
            next("0 0 1 1 *", "2024-06-15T12:00:00Z").as_deref(),
            Some("2025-01-01T00:00")
        );
        assert_eq!(
            next("59 23 31 12 *", "2024-12-31T23:58:00Z").as_deref(),
            Some("2024-12-31T23:59")
        );
        assert_eq!(
            next("59 23 31 12 *", "2024-12-31T23:59:00Z").as_deref(),
            Some("2025-12-31T23:59")
        );
    }

    #[test]
    fn month_ends() {
        // The 31st skips the months without one.
        assert_eq!(
            next("0 0 31 * *", "2024-04-01T00:00:00Z").as_deref(),
            Some("2024-05-31T00:00")
        );
        assert_eq!(
            next("0 0 31 * *", "2024-05-31T00:00:00Z").as_deref(),
            Some("2024-07-31T00:00")
        );
        // The 30th skips February.
        assert_eq!(
            next("0 12 30 * *", "2025-01-30T12:00:00Z").as_deref(),
            Some("2025-03-30T12:00")
        );
        // A month-end list.
        assert_eq!(
            next("0 0 28-31 2 *", "2023-02-28T00:00:00Z").as_deref(),
            Some("2024-02-28T00:00")
        );
    }

    #[test]
    fn february_29() {
        assert_eq!(
            next("0 0 29 2 *", "2024-03-01T00:00:00Z").as_deref(),
            Some("2028-02-29T00:00")
        );
        // 2100 is not a leap year: eight years from 2096.
        assert_eq!(
            next("0 0 29 2 *", "2096-03-01T00:00:00Z").as_deref(),
            Some("2104-02-29T00:00")
        );
        // Only when the 29th is a Sunday (AND: day-of-week starts with `*`): 2032.
        assert_eq!(
            next("0 0 29 2 */7", "2024-03-01T00:00:00Z").as_deref(),
            Some("2032-02-29T00:00")
        );
    }

    #[test]
    fn dom_and_dow_either_matches_when_both_are_restricted() {
        // 2024-05-01 is a Wednesday. "the 15th or any Friday": Friday the 3rd comes first.
        assert_eq!(
            next("0 9 15 * 5", "2024-05-01T00:00:00Z").as_deref(),
            Some("2024-05-03T09:00")
        );
        assert_eq!(
            next("0 9 15 * 5", "2024-05-13T00:00:00Z").as_deref(),
            Some("2024-05-15T09:00")
        );
        // Only day-of-week restricted: Fridays only.
        assert_eq!(
            next("0 9 * * 5", "2024-05-13T00:00:00Z").as_deref(),
            Some("2024-05-17T09:00")
        );
        // Only day-of-month restricted: the 15th only, whatever the weekday.
        assert_eq!(
            next("0 9 15 * *", "2024-05-01T00:00:00Z").as_deref(),
            Some("2024-05-15T09:00")
        );
        // Vixie: a field starting with `*` counts as unrestricted, so `*/2` ANDs. Odd days
        // that are also Fridays: 2024-05-03 is Friday and odd.
        assert_eq!(
            next("0 9 */2 * 5", "2024-05-04T00:00:00Z").as_deref(),
            Some("2024-05-17T09:00")
        );
    }

    #[test]
    fn day_of_week_names_and_sunday_as_0_and_7() {
        // 2024-05-05 is a Sunday.
        for expr in ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "0 0 * * SUN"] {
            assert_eq!(
                next(expr, "2024-05-01T00:00:00Z").as_deref(),
                Some("2024-05-05T00:00"),
                "{expr}"
            );
        }
        assert_eq!(
            next("0 0 * * 5-7", "2024-05-04T00:00:00Z").as_deref(),
            Some("2024-05-05T00:00")
        );
        assert_eq!(
            next("0 8 * * mon-fri", "2024-05-04T00:00:00Z").as_deref(),
            Some("2024-05-06T08:00")
        );
        assert_eq!(
            next("0 0 1 jun *", "2024-05-04T00:00:00Z").as_deref(),
            Some("2024-06-01T00:00")
        );
    }

    #[test]
    fn lists_ranges_and_steps() {
        let c = Cron::parse("*/15 * * * *").unwrap();
        assert_eq!(c.minutes, (1 << 0) | (1 << 15) | (1 << 30) | (1 << 45));
        let c = Cron::parse("10-30/10,59 * * * *").unwrap();
        assert_eq!(c.minutes, (1 << 10) | (1 << 20) | (1 << 30) | (1 << 59));
        let c = Cron::parse("0 */5 * * *").unwrap();
        assert_eq!(
            c.hours,
            [0, 5, 10, 15, 20].iter().map(|h| 1u64 << h).sum::<u64>()
        );
        // A step larger than the range is its start.
        let c = Cron::parse("0 0 */40 * *").unwrap();
        assert_eq!(c.doms, 1 << 1);
        assert_eq!(
            next("*/20 9-10 * * *", "2024-05-01T09:41:00Z").as_deref(),
            Some("2024-05-01T10:00")
        );
        assert_eq!(
            next("*/20 9-10 * * *", "2024-05-01T10:40:00Z").as_deref(),
            Some("2024-05-02T09:00")
        );
        // Extra whitespace is fine.
        assert_eq!(Cron::parse("  0  3 * * *\t").unwrap().expr(), "0 3 * * *");
    }

    #[test]
    fn invalid_fields_name_the_field_and_the_value() {
        assert_eq!(parse_err("61 * * * *"), "minute 61 out of 0-59");
        assert_eq!(parse_err("0 24 * * *"), "hour 24 out of 0-23");
        assert_eq!(parse_err("0 0 0 * *"), "day-of-month 0 out of 1-31");
        assert_eq!(parse_err("0 0 32 * *"), "day-of-month 32 out of 1-31");
        assert_eq!(parse_err("0 0 * 13 *"), "month 13 out of 1-12");
        assert_eq!(parse_err("0 0 * * 8"), "day-of-week 8 out of 0-7");
        assert_eq!(
            parse_err("99999999999 * * * *"),
            "minute 99999999999 out of 0-59"
        );
        assert!(parse_err("* * * *").contains("expected 5 fields"));
        assert!(parse_err("* * * * * *").contains("found 6"));
        assert!(parse_err("").contains("found 0"));
        assert!(parse_err("x * * * *").contains("minute \"x\" is not a number"));
        assert!(parse_err("-1 * * * *").contains("minute"));
        assert!(parse_err("* * * foo *").contains("month \"foo\" is not a number"));
        assert!(parse_err("*/0 * * * *").contains("step must be at least 1"));
        assert!(parse_err("*/x * * * *").contains("not a number"));
        assert!(parse_err("*/ * * * *").contains("not a number"));
        assert!(parse_err("5/15 * * * *").contains("a step needs a range"));
        assert!(parse_err("30-10 * * * *").contains("starts after it ends"));
        assert!(parse_err("1,,2 * * * *").contains("empty list entry"));
        assert!(parse_err("1, * * * *").contains("empty list entry"));
        assert!(parse_err("1-2-3 * * * *").contains("not a number"));
        assert!(parse_err("0 0 30 2 *").contains("never fire"));
        assert!(parse_err("0 0 31 4,6,9,11 *").contains("never fire"));
        // ...but with day-of-week restricted too, either matches: it fires.
        assert!(Cron::parse("0 0 30 2 1").is_ok());
        assert!(Cron::parse("0 0 31 2-4 *").is_ok());
    }

    #[test]
    fn next_after_of_every_parsed_expression_matches_and_nothing_earlier_does() {
        // A brute-force cross-check on a few expressions over a window.
        let exprs = [
            "*/7 */5 * * *",
            "0 0 15 * 5",
            "0 12 */2 * mon",
            "30 23 28-31 * *",
            "0 0 29 2 *",
            "15 6 1,15 1,7 *",
        ];
        for expr in exprs {
            let c = Cron::parse(expr).unwrap();
            let mut t = ms("2024-02-20T00:00:00Z");
            for _ in 0..20 {
                let n = c.next_after(t).unwrap();
                assert!(n > t);
                let at = chrono::DateTime::from_timestamp_millis(n)
                    .unwrap()
                    .naive_utc();
                assert!(c.matches(at), "{expr}: {at}");
                // No matching minute in between (checked up to a day back from n).
                let mut m = (t.div_euclid(60_000) + 1) * 60_000;
                let from = m.max(n - 86_400_000);
                m = from;
                while m < n {
                    let x = chrono::DateTime::from_timestamp_millis(m)
                        .unwrap()
                        .naive_utc();
                    assert!(!c.matches(x), "{expr}: {x} matches before {at}");
                    m += 60_000;
                }
                t = n;
            }
        }
    }

    #[test]
    fn the_plan_never_replays_a_missed_time() {
        let crons = vec![
            Cron::parse("0 * * * *").unwrap(),
            Cron::parse("30 3 * * *").unwrap(),
        ];
        let start = ms("2024-05-01T10:20:00Z");
        let mut plan = Plan::new(&crons, start, false);
        assert_eq!(plan.next(0), Some(ms("2024-05-01T11:00:00Z")));
        assert_eq!(plan.next(1), Some(ms("2024-05-02T03:30:00Z")));
        assert_eq!(plan.earliest(), Some(ms("2024-05-01T11:00:00Z")));
        assert!(plan.due(&crons, ms("2024-05-01T10:59:59Z")).is_empty());
        // Due, a little late: run once, next from now.
        assert_eq!(
            plan.due(&crons, ms("2024-05-01T11:00:02Z")),
            vec![Fire::Run {
                index: 0,
                at: ms("2024-05-01T11:00:00Z")
            }]
        );
        assert_eq!(plan.next(0), Some(ms("2024-05-01T12:00:00Z")));
        assert!(plan.due(&crons, ms("2024-05-01T11:00:03Z")).is_empty());
        // The process was stopped for hours: the hourly entry is due once, as missed, and
        // the daily one too; both move on from now.
        let late = ms("2024-05-02T06:10:00Z");
        assert_eq!(
            plan.due(&crons, late),
            vec![
                Fire::Missed {
                    index: 0,
                    at: ms("2024-05-01T12:00:00Z")
                },
                Fire::Missed {
                    index: 1,
                    at: ms("2024-05-02T03:30:00Z")
                },
            ]
        );
        assert_eq!(plan.next(0), Some(ms("2024-05-02T07:00:00Z")));
        assert_eq!(plan.next(1), Some(ms("2024-05-03T03:30:00Z")));
        assert!(plan.due(&crons, late).is_empty());
        // A restart computes from now: nothing in the past is due.
        let mut restarted = Plan::new(&crons, late, false);
        assert!(restarted.due(&crons, late).is_empty());
    }

    #[test]
    fn the_fire_now_hook_makes_every_entry_due_once() {
        let crons = vec![
            Cron::parse("0 3 * * *").unwrap(),
            Cron::parse("0 0 1 1 *").unwrap(),
        ];
        let now = ms("2024-05-01T10:20:00Z");
        let mut plan = Plan::new(&crons, now, true);
        let due = plan.due(&crons, now);
        assert_eq!(
            due,
            vec![
                Fire::Run { index: 0, at: now },
                Fire::Run { index: 1, at: now }
            ]
        );
        assert!(plan.due(&crons, now + 1_000).is_empty());
        assert_eq!(plan.next(0), Some(ms("2024-05-02T03:00:00Z")));
        assert_eq!(plan.next(1), Some(ms("2025-01-01T00:00:00Z")));
    }

    #[test]
    fn summary_truncation_keeps_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééééé", 3), "éé…");
    }
}
