//! Crash-test failpoints: `RECALL_FAILPOINT=<point>:<n>` SIGKILLs this process the n-th time
//! `<point>` is reached; `<point>:<n>:stop` SIGSTOPs it instead (a paused process, for the
//! fencing test: it resumes only when someone sends SIGCONT). Points surround every mutating call: `before_intent`,
//! `after_intent`, `after_call`, `after_result`. Unset in production: a single atomic load.

use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Default)]
pub struct Failpoints {
    point: Option<String>,
    nth: u32,
    hits: AtomicU32,
    stop: bool,
}

impl Failpoints {
    pub fn from_env() -> Self {
        let Ok(spec) = std::env::var("RECALL_FAILPOINT") else {
            return Self::default();
        };
        let (point, rest) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
        let (nth, stop) = match rest.split_once(':') {
            Some((n, mode)) => (n, mode == "stop"),
            None => (rest, false),
        };
        Self {
            point: Some(point.to_string()),
            nth: nth.parse().unwrap_or(1).max(1),
            hits: AtomicU32::new(0),
            stop,
        }
    }

    pub fn hit(&self, name: &str) {
        if self.point.as_deref() != Some(name) {
            return;
        }
        let n = self.hits.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.nth && self.stop {
            eprintln!("recall: failpoint {name}:{n} reached, stopping the process");
            // SAFETY: raise(3) on ourselves; execution continues after SIGCONT.
            unsafe {
                libc::raise(libc::SIGSTOP);
            }
            eprintln!("recall: failpoint {name}:{n}: continued");
            return;
        }
        if n == self.nth {
            eprintln!("recall: failpoint {name}:{n} reached, killing the process");
            // SIGKILL, not a panic or exit: no destructor, no flush, exactly like a crash.
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

/// Failpoints reachable from inside actions (multi-stage actions crash between stages in
/// tests): the same `RECALL_FAILPOINT` variable, read once per process.
pub fn hit(name: &str) {
    static GLOBAL: std::sync::OnceLock<Failpoints> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(Failpoints::from_env).hit(name);
}
