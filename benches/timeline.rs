//! `cargo bench --bench timeline`: rendering a 10,000-event timeline in every export format
//! (JSON serialised, CSV, Markdown), the postmortem draft built over it, and verifying its
//! hash chain. Target: < 1 s each.
//! Figures printed as the best of 5 runs and the ratio to the 1 s target.

use std::time::{Duration, Instant};

use recall::timeline::render::{fixture, to_csv, to_json, to_markdown};

const EVENTS: usize = 10_000;
const TARGET: Duration = Duration::from_secs(1);

/// A named export producing this many bytes.
type Case<'a> = (&'static str, Box<dyn Fn() -> usize + 'a>);

fn best<F: FnMut() -> usize>(mut f: F) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut bytes = 0;
    for _ in 0..5 {
        let t = Instant::now();
        bytes = f();
        best = best.min(t.elapsed());
    }
    (best, bytes)
}

fn main() {
    let (inc, events) = fixture(EVENTS);
    let links = recall::timeline::render::Links::new();
    println!("timeline exports of {EVENTS} events (best of 5):");
    let mut missed = false;
    // The postmortem draft and the incident page's model read the whole timeline too.
    let (mut run, _) = recall::postmortem::fixture_run();
    run.incident.head_seq = inc.head_seq;
    run.incident.head_hash = inc.head_hash.clone();
    let cases: [Case; 5] = [
        (
            "json",
            Box::new(|| {
                serde_json::to_string_pretty(&to_json(&inc, &events, &links))
                    .unwrap_or_default()
                    .len()
            }),
        ),
        ("csv", Box::new(|| to_csv(&inc, &events, &links).len())),
        (
            "markdown",
            Box::new(|| to_markdown(&inc, &events, &links).len()),
        ),
        (
            "postmortem md",
            Box::new(|| {
                let m = recall::postmortem::model(&run, &events, None, inc.created_at);
                recall::postmortem::render(recall::postmortem::DEFAULT_TEMPLATE, &m)
                    .map(|t| t.len())
                    .unwrap_or(0)
            }),
        ),
        (
            "verify chain",
            Box::new(|| {
                usize::from(recall::timeline::verify(&events, inc.head_seq, &inc.head_hash).is_ok())
            }),
        ),
    ];
    for (name, f) in cases {
        let (d, bytes) = best(f);
        missed |= d > TARGET;
        println!(
            "  {name:<13} {:>8.1} ms  ({:.3}x of the 1 s target)  {bytes} bytes",
            d.as_secs_f64() * 1e3,
            d.as_secs_f64() / TARGET.as_secs_f64()
        );
    }
    if missed {
        println!("  TARGET MISSED");
        std::process::exit(1);
    }
}
