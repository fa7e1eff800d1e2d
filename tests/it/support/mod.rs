//! Test support: a real Verdaccio, and the real `recall` binary run as a subprocess against a
//! throw-away SQLite database (the crash tests kill it, so it must be a separate process).
#![allow(dead_code)]

pub mod postgres;
pub mod registry;
pub mod verdaccio;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

pub struct Recall {
    pub dir: tempfile::TempDir,
    pub db: String,
    pub config: PathBuf,
    pub env: Vec<(String, String)>,
}

pub struct Run {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self {
            code: o.status.code(),
            signal: o.status.signal(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The incident id printed by `incident start --json`.
    pub fn id(&self) -> String {
        self.json()["id"].as_str().expect("id").to_string()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "code={:?} signal={:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.signal, self.stdout, self.stderr
        )
    }
}

impl Recall {
    pub fn new(config_toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("recall.toml");
        std::fs::write(&config, config_toml).expect("write config");
        let db = format!("sqlite://{}", dir.path().join("recall.db").display());
        Self {
            dir,
            db,
            config,
            env: Vec::new(),
        }
    }

    /// Config for a Verdaccio-backed run; Recall's token comes from `RECALL_TEST_NPM_TOKEN`.
    pub fn for_registry(url: &str, token: &str) -> Self {
        let mut r = Self::new(&format!(
            "[npm]\nregistry = \"{url}\"\ntoken_env = \"RECALL_TEST_NPM_TOKEN\"\ntimeout = \"20s\"\n\n[groups]\nrelease-admins = [\"alice\", \"bob\"]\n"
        ));
        r.env.push(("RECALL_TEST_NPM_TOKEN".into(), token.into()));
        r
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_recall"));
        c.arg("--db")
            .arg(&self.db)
            .arg("--config")
            .arg(&self.config)
            .args(args);
        c.env_remove("RECALL_FAILPOINT")
            .env_remove("RECALL_DATABASE_URL")
            .env("USER", "oncall");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.current_dir(self.dir.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().expect("spawn recall"))
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        Run::from(c.output().expect("spawn recall"))
    }

    /// Run a bundled scenario as an auto-approved rehearsal; returns the finished run.
    pub fn rehearse(&self, scenario: &str) -> Run {
        let r = self.run(&[
            "incident",
            "start",
            "--scenario",
            scenario,
            "--dry-run",
            "--auto-approve",
            "--json",
        ]);
        assert_eq!(r.code, Some(0), "{r:?}");
        r
    }

    pub fn timeline(&self, id: &str) -> Value {
        let r = self.run(&["timeline", id, "--format", "json"]);
        assert_eq!(r.code, Some(0), "{r:?}");
        r.json()
    }

    pub fn show(&self, id: &str) -> Value {
        let r = self.run(&["incident", "show", id, "--json"]);
        assert_eq!(r.code, Some(0), "{r:?}");
        r.json()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("recall.db")
    }
}

/// Write a file in a temp dir and return its path.
pub fn write_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p.display().to_string()
}

/// The `kind` of every event of a timeline (`recall timeline ID --format json`), in order.
pub fn kinds(tl: &Value) -> Vec<String> {
    tl["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["kind"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The events of a timeline with this `kind`.
pub fn events<'a>(tl: &'a Value, kind: &str) -> Vec<&'a Value> {
    tl["events"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["kind"] == kind).collect())
        .unwrap_or_default()
}
