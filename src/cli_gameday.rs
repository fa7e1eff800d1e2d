//! `recall gameday run|list|report`: rehearse a scenario or playbook with preflight on every
//! step and write the rehearsal report (Markdown and JSON). Exit 0 when nothing would block
//! containment, 4 when something would.

use std::sync::Arc;

use clap::Subcommand;

use crate::actions::Registry;
use crate::cli::CliError;
use crate::config::Config;
use crate::gameday::{self, EXIT_BLOCKED, report};
use crate::runner::Runner;
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum GamedayCmd {
    /// Rehearse a scenario (bundled name or file) or a playbook with preflight on every
    /// step, then write the report. Exit 4 when something would block containment.
    Run {
        /// Scenario name or file, or playbook name or file.
        target: String,
        /// KEY=VALUE; overrides the scenario's params. Repeatable.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Directory for `gameday-<id>.md` and `gameday-<id>.json` (default: current).
        #[arg(long, default_value = ".")]
        out: String,
        /// Print the JSON report instead of the Markdown one.
        #[arg(long)]
        json: bool,
        #[arg(long = "as", env = "USER", default_value = "game-day")]
        actor: String,
    },
    /// The scenarios shipped with Recall (playbooks/scenarios/).
    List {
        #[arg(long)]
        json: bool,
    },
    /// The report of an earlier rehearsal.
    Report {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(
    cmd: &GamedayCmd,
    store: Arc<dyn Store>,
    config: Arc<Config>,
    registry: Arc<Registry>,
) -> Result<u8, CliError> {
    match cmd {
        GamedayCmd::List { json } => Ok(list(*json)),
        GamedayCmd::Report { id, json } => {
            let r = gameday::report_of(store.as_ref(), &registry, &config, id, None)
                .await?
                .ok_or_else(|| CliError::Usage(format!("incident `{id}` not found")))?;
            print(&r, *json);
            Ok(if report::blocked(&r) { EXIT_BLOCKED } else { 0 })
        }
        GamedayCmd::Run {
            target,
            params,
            out,
            json,
            actor,
        } => {
            let params = crate::cli::parse_params(params)?;
            let t = gameday::resolve(target, &params)?;
            let runner = Runner::new(store.clone(), registry.clone(), config.clone());
            runner.validate(&t.request(actor))?;
            let dir = std::path::Path::new(out);
            if !dir.is_dir() {
                return Err(CliError::Usage(format!("--out {out}: not a directory")));
            }
            let (id, _outcome) = gameday::rehearse(&runner, &t, actor).await?;
            let r = gameday::report_of(
                store.as_ref(),
                &registry,
                &config,
                &id,
                t.scenario.as_deref(),
            )
            .await?
            .ok_or_else(|| CliError::Failed(format!("rehearsal {id} was not stored")))?;
            // Kept with the incident too, as the scheduler does.
            let (md, js) =
                gameday::store_report(store.as_ref(), &id, &r, crate::runner::now_ms()).await?;
            std::fs::write(dir.join(format!("gameday-{id}.md")), &md)?;
            std::fs::write(dir.join(format!("gameday-{id}.json")), &js)?;
            print(&r, *json);
            eprintln!(
                "recall: game day {id}: {} (report: {}/gameday-{id}.md and .json)",
                if report::blocked(&r) {
                    "something would block containment"
                } else {
                    "nothing would block containment"
                },
                out.trim_end_matches('/')
            );
            Ok(if report::blocked(&r) { EXIT_BLOCKED } else { 0 })
        }
    }
}

pub fn list(json: bool) -> u8 {
    let l = gameday::list();
    if json {
        println!("{}", serde_json::to_string_pretty(&l).unwrap_or_default());
    } else {
        for s in &l {
            println!(
                "{:<22} {:<26} {:<5} {}",
                s.name, s.playbook, s.ecosystem, s.incident
            );
        }
    }
    0
}

fn print(r: &serde_json::Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
    } else {
        print!("{}", report::to_markdown(r));
    }
}
