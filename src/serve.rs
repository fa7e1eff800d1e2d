//! `recall serve`: one process running the engine workers, the Slack outbox and the HTTP
//! server.
//!
//! The supervisor drives every unfinished incident that no other live process holds
//! (the lease decides), one task per incident, woken by new incidents and inbox items and
//! every couple of seconds for timers. On SIGTERM/SIGINT the server stops accepting, the
//! supervisor starts nothing new, and in-flight drives get `[server] shutdown_grace` to
//! finish; anything still running then is safe to cut: its attempt is on disk and the next
//! start reconciles it (probe before resend).
//!
//! With `[[gameday]]` entries, a scheduler runs them on their cron schedule
//! ([`crate::gameday::schedule`]): only the replica holding the `gameday` leader lease
//! fires; it stops with the rest on the stop signal.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::actions::Registry;
use crate::config::{Config, parse_duration_ms};
use crate::http::metrics::Metrics;
use crate::http::slack::SlackApp;
use crate::http::{AppState, parse_tokens, router};
use crate::runner::{DriveOutcome, Runner};
use crate::slack::client::SlackClient;
use crate::slack::notifier::Notifier;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("config: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("server: {0}")]
    Server(String),
    /// The config loaded but cannot be served as it is (a `[[gameday]]` target that does
    /// not resolve): invalid input, like a config error.
    #[error("config: {0}")]
    Invalid(String),
}

pub(crate) fn secret(
    env: &Option<String>,
    file: &Option<String>,
) -> Result<Option<SecretString>, String> {
    if let Some(f) = file {
        return crate::secrets::from_file(f)
            .map(Some)
            .map_err(|e| e.to_string());
    }
    if let Some(v) = env {
        return match std::env::var_os(v) {
            Some(_) => crate::secrets::from_env(v)
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        };
    }
    Ok(None)
}

fn ms(s: &str, d: u64) -> Duration {
    Duration::from_millis(parse_duration_ms(s).unwrap_or(d))
}

pub async fn serve(config: Arc<Config>, store: Arc<dyn Store>) -> Result<(), ServeError> {
    let registry = Arc::new(Registry::builtin());
    let runner = Arc::new(Runner::new(store.clone(), registry.clone(), config.clone()));
    // Scheduled game days drive their rehearsals with a runner of their own (another lease
    // owner), so the supervisor's sweep never drives the same incident at the same time.
    let gameday_runner = Arc::new(Runner::new(store.clone(), registry, config.clone()));
    let gamedays =
        crate::gameday::schedule::entries(&config, &gameday_runner).map_err(ServeError::Invalid)?;
    let metrics = Arc::new(Metrics::default());
    let wake_driver = Arc::new(Notify::new());
    let wake_slack = Arc::new(Notify::new());

    let s = &config.slack;
    let signing =
        secret(&s.signing_secret_env, &s.signing_secret_file).map_err(ServeError::Config)?;
    let bot = secret(&s.bot_token_env, &s.bot_token_file).map_err(ServeError::Config)?;
    let slack = match (signing, bot) {
        (Some(signing_secret), Some(token)) => {
            let client = SlackClient::new(&s.api_url, token, Duration::from_secs(10))
                .map_err(ServeError::Config)?;
            Some(SlackApp {
                client,
                signing_secret,
            })
        }
        (None, None) => {
            info!("Slack is not configured (no signing secret, no bot token): /slack/* answer 404");
            None
        }
        _ => {
            return Err(ServeError::Config(
                "[slack] needs both the signing secret and the bot token (or neither)".into(),
            ));
        }
    };
    let api_tokens = {
        let text =
            if let Some(f) = &config.api.tokens_file {
                Some(std::fs::read_to_string(f).map_err(|e| {
                    ServeError::Config(format!("[api] tokens_file {f}: {}", e.kind()))
                })?)
            } else {
                config
                    .api
                    .tokens_env
                    .as_ref()
                    .and_then(|v| std::env::var(v).ok())
            };
        let toks = parse_tokens(text.as_deref().unwrap_or("")).map_err(ServeError::Config)?;
        for (_, t) in &toks {
            crate::secrets::register(t);
        }
        toks
    };
    if api_tokens.is_empty() {
        info!("no API tokens configured: /api/* answer 401");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let notifier_task = slack.as_ref().map(|app| {
        let n = Notifier {
            store: store.clone(),
            client: app.client.clone(),
            poll: ms(&config.slack.poll, 500),
            wake: wake_slack.clone(),
            metrics: metrics.clone(),
            owner: runner.owner().to_string(),
            lease_ttl_ms: ms(&config.engine.lease_ttl, 15_000).as_millis() as i64,
        };
        tokio::spawn(n.run(stop_rx.clone()))
    });
    let gameday_slack = slack.as_ref().map(|app| app.client.clone());
    let gameday_metrics = metrics.clone();
    let state = Arc::new(AppState {
        config: config.clone(),
        store: store.clone(),
        runner: runner.clone(),
        metrics,
        wake_driver: wake_driver.clone(),
        wake_slack: wake_slack.clone(),
        slack,
        api_tokens,
        seen: Default::default(),
    });
    let supervisor = tokio::spawn(supervise(
        runner.clone(),
        store.clone(),
        wake_driver.clone(),
        wake_slack.clone(),
        stop_rx.clone(),
        ms(&config.server.shutdown_grace, 20_000),
        ms(&config.engine.lease_ttl, 15_000).as_millis() as i64,
    ));

    let addr = config.server.listen.clone();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| ServeError::Listen {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    info!(listen = %local, "recall serve ready");
    let scheduler_task = (!gamedays.is_empty()).then(|| {
        let sch = crate::gameday::schedule::Scheduler {
            entries: gamedays,
            runner: gameday_runner,
            slack: gameday_slack,
            metrics: gameday_metrics,
            lease_ttl_ms: ms(&config.engine.lease_ttl, 15_000).as_millis() as i64,
            grace: ms(&config.server.shutdown_grace, 20_000),
            fire_now: crate::gameday::schedule::fire_now_from_env(),
        };
        tokio::spawn(sch.run(stop_rx.clone()))
    });
    // Tests and process managers read the bound address (the port may be 0 = any).
    println!("listening on {local}");
    let stop = stop_tx.clone();
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown_signal().await;
        info!("shutting down: no new requests or incidents");
        let _ = stop.send(true);
    });
    let result = server.await.map_err(|e| ServeError::Server(e.to_string()));
    let _ = stop_tx.send(true);
    if let Err(e) = supervisor.await {
        error!(error = %e, "supervisor ended abnormally");
    }
    if let Some(t) = scheduler_task {
        // The scheduler gives running game days the shutdown grace itself.
        let limit = ms(&config.server.shutdown_grace, 20_000) + Duration::from_secs(5);
        if tokio::time::timeout(limit, t).await.is_err() {
            warn!("the game day scheduler did not stop in time");
        }
    }
    if let Some(t) = notifier_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    result
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The leader lease for the periodic sweep.
pub const SWEEP_LEASE: &str = "sweep";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Drives unfinished incidents, one task each.
async fn supervise(
    runner: Arc<Runner>,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    wake_slack: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
    lease_ttl_ms: i64,
) {
    let active: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    let mut tasks = JoinSet::new();
    let mut local_wake = true;
    loop {
        if *stop.borrow() {
            break;
        }
        // The periodic sweep (timers, approval deadlines, incidents a dead process left) is
        // the leader's: one replica lists every incident every 2 s, not all of them. A
        // local wake (an incident started or answered through this replica) always sweeps.
        let sweep = local_wake
            || match store
                .acquire_named_lease(SWEEP_LEASE, runner.owner(), now_ms(), lease_ttl_ms)
                .await
            {
                Ok(leader) => leader,
                Err(e) => {
                    warn!(error = %e, "supervisor: could not take the sweep lease");
                    false
                }
            };
        let listed = if sweep {
            store.unfinished().await
        } else {
            Ok(Vec::new())
        };
        match listed {
            Ok(ids) => {
                for id in ids {
                    let fresh = active
                        .lock()
                        .map(|mut a| a.insert(id.clone()))
                        .unwrap_or(false);
                    if !fresh {
                        continue;
                    }
                    let (r, act, ws) = (runner.clone(), active.clone(), wake_slack.clone());
                    tasks.spawn(async move {
                        match r.drive(&id).await {
                            Ok(DriveOutcome::Finished(s)) => {
                                info!(incident = %id, status = ?s, "drive ended")
                            }
                            Ok(DriveOutcome::Elsewhere) => {}
                            Err(e) => warn!(incident = %id, error = %e, "drive failed"),
                        }
                        if let Ok(mut a) = act.lock() {
                            a.remove(&id);
                        }
                        ws.notify_one();
                    });
                }
            }
            Err(e) => warn!(error = %e, "supervisor: could not list incidents"),
        }
        while tasks.try_join_next().is_some() {}
        local_wake = tokio::select! {
            _ = wake.notified() => true,
            _ = tokio::time::sleep(Duration::from_secs(2)) => false,
            _ = stop.changed() => false,
        };
    }
    // Shutdown: let in-flight steps finish within the grace period.
    let n = tasks.len();
    if n > 0 {
        info!(
            in_flight = n,
            grace_ms = grace.as_millis() as u64,
            "waiting for in-flight incidents"
        );
        let wait = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, wait).await.is_err() {
            warn!(
                "grace period over: the remaining attempts are on disk and resume on the next start"
            );
            tasks.abort_all();
        }
    }
}
