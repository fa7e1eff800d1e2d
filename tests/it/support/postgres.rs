//! A real PostgreSQL for the tests: ONE throw-away cluster per test-binary run, started
//! lazily by `scripts/postgres start` in a temp dir, and a fresh database per test.
//!
//! The cluster is stopped and its directory deleted when this process exits, however it
//! exits: the script's watchdog (`RECALL_PG_WATCH_PID` = our pid) polls for us once a
//! second. With `RECALL_TEST_POSTGRES_URL=postgres://USER:PW@HOST:PORT/DB` the tests use
//! that server instead (USER needs CREATEDB); the per-test databases (`recall_t_*`) are
//! left there.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use sqlx::Connection;

/// The server's admin URL (a database the tests' user can connect to and create others from).
static SERVER: OnceLock<Result<String, String>> = OnceLock::new();

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres")
}

fn start() -> Result<String, String> {
    if let Ok(url) = std::env::var("RECALL_TEST_POSTGRES_URL")
        && !url.trim().is_empty()
    {
        return Ok(url.trim().to_string());
    }
    let dir = tempfile::Builder::new()
        .prefix("recall-pg-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        // The watchdog deletes it once we have exited (Drop never runs for a static).
        .keep();
    let out = Command::new("bash")
        .arg(script())
        .arg("start")
        .arg(&dir)
        .env("RECALL_PG_WATCH_PID", std::process::id().to_string())
        .output()
        .map_err(|e| format!("running {}: {e}", script().display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let url = stdout.lines().last().unwrap_or("").trim().to_string();
    if !out.status.success() || !url.starts_with("postgres://") {
        return Err(format!(
            "`scripts/postgres start {}` failed ({}); run `scripts/postgres install` first\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(url)
}

/// The admin URL of the shared server, starting it on first use (blocking: call from
/// `spawn_blocking` or a plain thread).
pub fn server_url() -> String {
    match SERVER.get_or_init(start) {
        Ok(u) => u.clone(),
        Err(e) => panic!("no Postgres for the tests: {e}"),
    }
}

/// The shared server's admin URL, started off the async runtime's threads.
pub async fn server() -> String {
    tokio::task::spawn_blocking(server_url)
        .await
        .expect("postgres start task")
}

/// `url` with its database replaced.
pub fn with_database(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).expect("server URL parses");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

/// A fresh, empty database on the shared server; its `postgres://` URL.
pub async fn database() -> String {
    let admin = server().await;
    let name = format!(
        "recall_t_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("connect to the test Postgres: {e}"));
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = c.close().await;
    with_database(&admin, &name)
}

/// Runs SQL on a database directly (to inspect or alter what the store wrote).
pub async fn exec(url: &str, sql: &str) {
    let mut c = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    sqlx::raw_sql(sql)
        .execute(&mut c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = c.close().await;
}
