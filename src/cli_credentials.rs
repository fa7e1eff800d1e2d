//! `recall credentials provide`: hand a new credential to a waiting `credentials.rotate`
//! step. The value is read from the terminal without echo (or from stdin when it is not a
//! terminal, for scripts), sealed into the rotation's staging record, and the step is told
//! to continue. It never appears on screen, in the shell history, in a log or the timeline.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use clap::Subcommand;
use secrecy::SecretString;

use crate::actions::{ActionCtx, credentials};
use crate::cli::CliError;
use crate::config::Config;
use crate::engine::{Mode, Resolution};
use crate::runner::Runner;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum CredentialsCmd {
    /// Give a waiting `credentials.rotate` step its new credential (read without echo).
    Provide {
        id: String,
        step: String,
        /// The item of a fan-out (default 0).
        #[arg(long, default_value_t = 0)]
        item: u32,
        #[arg(long = "as", env = "USER", default_value = "cli")]
        actor: String,
    },
}

/// Turns terminal echo off until dropped.
struct NoEcho {
    fd: i32,
    saved: Option<libc::termios>,
}

impl NoEcho {
    fn new() -> Self {
        let fd = libc::STDIN_FILENO;
        // SAFETY: tcgetattr/tcsetattr on our own stdin with a zeroed, then filled, struct.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return Self { fd, saved: None };
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            t.c_lflag |= libc::ECHONL;
            if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
                return Self { fd, saved: None };
            }
            Self {
                fd,
                saved: Some(saved),
            }
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restores the attributes read in `new`.
            unsafe {
                libc::tcsetattr(self.fd, libc::TCSANOW, &t);
            }
        }
    }
}

fn read_value() -> Result<SecretString, CliError> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        eprint!("new credential (not shown): ");
        let _ = std::io::stderr().flush();
        let _guard = NoEcho::new();
        stdin.lock().read_line(&mut line)?;
    } else {
        stdin.lock().read_line(&mut line)?;
    }
    let v = line.trim_end_matches(['\n', '\r']).trim().to_string();
    if v.is_empty() {
        return Err(CliError::Usage("no credential was given".into()));
    }
    Ok(SecretString::from(v))
}

pub async fn run(
    cmd: &CredentialsCmd,
    store: Arc<dyn Store>,
    config: Arc<Config>,
    runner: Runner,
) -> Result<u8, CliError> {
    let CredentialsCmd::Provide {
        id,
        step,
        item,
        actor,
    } = cmd;
    let run = store
        .load(id)
        .await?
        .ok_or_else(|| CliError::Usage(format!("incident `{id}` not found")))?;
    if run.incident.mode != "live" {
        return Err(CliError::Usage(
            "this incident is a rehearsal: it never takes a real credential".into(),
        ));
    }
    let task = run
        .tasks
        .iter()
        .find(|t| t.step_id == *step && t.item_index == *item)
        .ok_or_else(|| CliError::Usage(format!("step `{step}` item {item} has not started")))?;
    let is_rotation =
        task.inputs.get("provider").is_some() && task.inputs.get("destinations").is_some();
    if !is_rotation {
        return Err(CliError::Usage(format!(
            "step `{step}` is not a credentials.rotate step"
        )));
    }
    if task.status != "awaiting_human" {
        return Err(CliError::Usage(format!(
            "step `{step}` item {item} is {}, not waiting for a credential",
            task.status
        )));
    }
    let value = read_value()?;
    let ctx = ActionCtx {
        incident: id.clone(),
        step: step.clone(),
        index: *item,
        attempt: task.attempt,
        idem_key: task.idem_key.clone(),
        mode: Mode::Live,
        config,
        store,
    };
    let fp = credentials::provide(&ctx, value)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    eprintln!("credential received ({fp}); the rotation continues");
    runner
        .resolve(
            id,
            step,
            Some(*item),
            actor,
            Resolution::Retry,
            &format!("provided the new credential ({fp})"),
        )
        .await?;
    Ok(0)
}
