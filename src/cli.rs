//! The command line: argument parsing (clap) and one handler per command. Errors map to exit
//! codes in one place ([`CliError::exit_code`]): 0 done, 1 failed, 2 usage or invalid input,
//! 3 waiting on a human.

use std::io::Write;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::actions::Registry;
use crate::bundled;
use crate::config::Config;
use crate::engine::{Decision, IncidentStatus, Mode, Resolution};
use crate::playbook;
use crate::runner::{DriveOutcome, RunError, Runner, StartRequest, now_ms};
use crate::store::{self, Store};
use crate::timeline;

#[derive(Parser, Debug)]
#[command(
    name = "recall",
    version,
    about = "Bad-release incident response: contain, rotate, scope, clean up, and draft the postmortem."
)]
pub struct Cli {
    /// Database URL (SQLite: sqlite://PATH).
    #[arg(
        long,
        global = true,
        env = "RECALL_DATABASE_URL",
        default_value = "sqlite://recall.db"
    )]
    pub db: String,
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "RECALL_CONFIG")]
    pub config: Option<String>,
    /// Log as JSON lines on stderr.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start, list, show, resume incidents.
    #[command(subcommand)]
    Incident(IncidentCmd),
    /// Approve (or reject) a gated step.
    Approve(ApproveArgs),
    /// Print an incident's timeline.
    Timeline {
        id: String,
        #[arg(long, value_enum, default_value = "md")]
        format: TimelineFormat,
        /// Only these event kinds (repeatable; `approval.*` keeps every approval event).
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Only this step's events.
        #[arg(long)]
        step: Option<String>,
        /// Only events at or after this time (RFC 3339) or this long ago (`30m`, `2h`).
        #[arg(long)]
        since: Option<String>,
    },
    /// Audit the hash-chained timeline.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Print (or write) the drafted postmortem.
    Postmortem {
        id: String,
        #[arg(long)]
        out: Option<String>,
        /// A handlebars template to use instead of the bundled one.
        #[arg(long)]
        template: Option<String>,
    },
    /// Add a human note to an incident's timeline.
    Note {
        id: String,
        text: String,
        #[arg(long = "as", env = "USER", default_value = "cli")]
        actor: String,
    },
    /// Lint playbooks, print the JSON Schema, list the bundled ones.
    #[command(subcommand)]
    Playbook(PlaybookCmd),
    /// The SBOM blast-radius index: ingest documents, query which images contain a package.
    #[command(subcommand)]
    Sbom(crate::cli_sbom::SbomCmd),
    /// Credential rotation: hand a waiting `credentials.rotate` step its new value.
    #[command(subcommand)]
    Credentials(crate::cli_credentials::CredentialsCmd),
    /// Game days: rehearse a scenario with preflight on every step and report what would
    /// block containment (exit 4), list the shipped scenarios.
    #[command(subcommand)]
    Gameday(crate::cli_gameday::GamedayCmd),
    /// Kubernetes admission: render the policy objects, list what each cluster denies.
    #[command(subcommand)]
    Kube(crate::cli_kube::KubeCmd),
    /// Figures across incidents: time to contain, game-day pass rate, most failing steps.
    Report {
        /// Only incidents started at or after this time (RFC 3339) or this long ago (`30d`).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run the server: engine workers, the Slack app and the JSON API (`[server]`, `[slack]`,
    /// `[api]`, `[auth]` in the config).
    Serve {
        /// Listen address (overrides `[server] listen`), e.g. 127.0.0.1:0 for any free port.
        #[arg(long)]
        listen: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum IncidentCmd {
    /// Start an incident and drive it until it finishes or waits on a human.
    Start(StartArgs),
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Pick up interrupted incidents (all unfinished ones, or one).
    Resume { id: Option<String> },
    /// Answer a waiting step: an attempt whose effect could not be determined, or a task
    /// handed to a person (`--resolution done` is then verified against the registry).
    Resolve {
        id: String,
        step: String,
        /// Only this item of a fan-out (default: every waiting item of the step).
        #[arg(long)]
        item: Option<u32>,
        #[arg(long = "as")]
        actor: String,
        #[arg(long)]
        reason: String,
        #[arg(long, value_enum)]
        resolution: ResolutionArg,
    },
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Playbook file or bundled name.
    #[arg(long)]
    pub playbook: Option<String>,
    /// A game-day scenario (file or bundled name) giving the playbook and its params.
    #[arg(long)]
    pub scenario: Option<String>,
    /// KEY=VALUE; lists as a,b,c or a JSON array. Repeatable; overrides the scenario.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Rehearsal: plan only, no mutating request leaves the process.
    #[arg(long)]
    pub dry_run: bool,
    /// Answer approvals as `game-day` (rehearsal only).
    #[arg(long)]
    pub auto_approve: bool,
    /// Who is starting the incident.
    #[arg(long = "as", env = "USER", default_value = "cli")]
    pub actor: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    pub id: String,
    pub step: String,
    #[arg(long = "as")]
    pub actor: String,
    #[arg(long)]
    pub reason: String,
    #[arg(long)]
    pub reject: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Recompute the hash chain; exit 1 with the first bad seq if it is broken.
    Verify { id: String },
}

#[derive(Subcommand, Debug)]
pub enum PlaybookCmd {
    Lint {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    Schema,
    List,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TimelineFormat {
    Json,
    Md,
    Csv,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ResolutionArg {
    Done,
    Retry,
    Fail,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Lookup(#[from] bundled::LookupError),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Config(_) | Self::Lookup(_) => 2,
            Self::Run(
                RunError::Playbook(_)
                | RunError::Params(_)
                | RunError::Invalid(_)
                | RunError::NotFound(_),
            ) => 2,
            _ => 1,
        }
    }
}

/// Exit code for an incident's state.
fn status_code(s: IncidentStatus) -> u8 {
    match s {
        IncidentStatus::Succeeded => 0,
        IncidentStatus::Failed => 1,
        IncidentStatus::Waiting | IncidentStatus::Running => 3,
    }
}

fn out(line: impl AsRef<str>) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{}", line.as_ref());
}

struct Env {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    registry: Arc<Registry>,
}

impl Env {
    async fn open(cli: &Cli) -> Result<Self, CliError> {
        let config = Arc::new(Config::load(cli.config.as_deref())?);
        let store = store::open(&cli.db).await?;
        Ok(Self {
            store,
            config,
            registry: Arc::new(Registry::builtin()),
        })
    }

    fn runner(&self) -> Runner {
        Runner::new(
            self.store.clone(),
            self.registry.clone(),
            self.config.clone(),
        )
    }
}

pub(crate) fn parse_params(raw: &[String]) -> Result<Vec<(String, String)>, CliError> {
    raw.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| CliError::Usage(format!("--param `{p}`: expected KEY=VALUE")))
        })
        .collect()
}

/// What people must do for a waiting incident, one line each: approvals, tasks handed to
/// a person (with their links), attempts whose effect is unknown.
async fn waiting_on(env: &Env, id: &str) -> Vec<String> {
    let Ok(Some(run)) = env.store.load(id).await else {
        return Vec::new();
    };
    let events = env.store.events(id).await.unwrap_or_default();
    let mut lines = Vec::new();
    for s in &run.steps {
        let step = &s.step_id;
        if s.status == "awaiting_approval" {
            lines.push(format!(
                "approve `{step}`: recall approve {id} {step} --as WHO --reason TEXT"
            ));
            continue;
        }
        for t in run.tasks.iter().filter(|t| &t.step_id == step) {
            let item = t.item_index;
            match t.status.as_str() {
                "awaiting_human" => {
                    let ask = events
                        .iter()
                        .rev()
                        .find(|e| {
                            e.kind == "human.requested"
                                && e.step.as_deref() == Some(step)
                                && e.index == Some(item)
                        })
                        .map(|e| e.summary.clone())
                        .unwrap_or_else(|| "a task for a person".into());
                    lines.push(format!(
                        "`{step}` item {item}: {ask}\n    then: recall incident resolve {id} {step} --item {item} --as WHO --reason TEXT --resolution done"
                    ));
                }
                "paused" => lines.push(format!(
                    "`{step}` item {item}: effect unknown ({}); check, then: recall incident resolve {id} {step} --item {item} --as WHO --reason TEXT --resolution done|retry|fail",
                    t.error.as_deref().unwrap_or("no answer")
                )),
                _ => {}
            }
        }
    }
    lines
}

async fn report_for(env: &Env, id: &str, outcome: &DriveOutcome, json: bool) -> u8 {
    let waiting = match outcome {
        DriveOutcome::Finished(IncidentStatus::Waiting) => waiting_on(env, id).await,
        _ => Vec::new(),
    };
    report(id, outcome, json, &waiting)
}

fn report(id: &str, outcome: &DriveOutcome, json: bool, waiting: &[String]) -> u8 {
    let (status, code) = match outcome {
        DriveOutcome::Finished(s) => (s.as_str().to_string(), status_code(*s)),
        DriveOutcome::Elsewhere => ("queued".to_string(), 0),
    };
    if json {
        let mut v = json!({ "id": id, "status": status });
        if !waiting.is_empty() {
            v["waiting_on"] = json!(waiting);
        }
        out(v.to_string());
    } else {
        match outcome {
            DriveOutcome::Finished(IncidentStatus::Waiting) if !waiting.is_empty() => out(format!(
                "{id}\nwaiting on people:\n{}",
                waiting
                    .iter()
                    .map(|w| format!("  - {w}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
            DriveOutcome::Finished(IncidentStatus::Waiting) => out(format!(
                "{id}\nwaiting on a human: `recall incident show {id}` says which step; approve with `recall approve {id} STEP --as WHO --reason TEXT`"
            )),
            DriveOutcome::Elsewhere => out(format!(
                "{id}\nrecorded; another running recall process is driving this incident and will apply it"
            )),
            DriveOutcome::Finished(s) => out(format!("{id}\n{s}")),
        }
    }
    code
}

pub async fn run(cli: Cli) -> Result<u8, CliError> {
    match &cli.command {
        Command::Playbook(cmd) => return playbook_cmd(cmd),
        // Listing the shipped scenarios needs no database.
        Command::Gameday(crate::cli_gameday::GamedayCmd::List { json }) => {
            return Ok(crate::cli_gameday::list(*json));
        }
        Command::Kube(cmd) => {
            let config = Config::load(cli.config.as_deref())?;
            return crate::cli_kube::run(cmd, &config).await;
        }
        Command::Incident(IncidentCmd::Start(a)) => {
            // Validate everything cheap before opening (and so creating) the database.
            let (file, source, params) = start_inputs(a)?;
            let env = Env::open(&cli).await?;
            let req = StartRequest {
                file,
                source,
                params,
                mode: if a.dry_run {
                    Mode::Rehearsal
                } else {
                    Mode::Live
                },
                auto_approve: a.auto_approve,
                started_by: a.actor.clone(),
            };
            let runner = env.runner();
            let (id, outcome) = runner.start(req).await?;
            let code = report_for(&env, &id, &outcome, a.json).await;
            // Every engine start also picks up incidents a crash left behind.
            match runner.resume_interrupted(&id).await {
                Ok(resumed) => {
                    for (other, o) in resumed {
                        eprintln!("recall: also resumed interrupted incident {other}: {o:?}");
                    }
                }
                Err(e) => eprintln!("recall: could not resume interrupted incidents: {e}"),
            }
            return Ok(code);
        }
        _ => {}
    }
    let env = Env::open(&cli).await?;
    match cli.command {
        Command::Playbook(_) | Command::Kube(_) | Command::Incident(IncidentCmd::Start(_)) => Ok(0),
        Command::Report { since, json } => {
            let now = chrono::Utc::now().timestamp_millis();
            let since = since
                .map(|s| timeline::render::parse_since(&s, now))
                .transpose()
                .map_err(CliError::Usage)?;
            let r = crate::report::report(env.store.as_ref(), since, now).await?;
            if json {
                out(serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                out(crate::report::to_text(&r));
            }
            Ok(0)
        }
        Command::Serve { listen } => {
            let mut config = (*env.config).clone();
            if let Some(l) = listen {
                config.server.listen = l;
            }
            crate::serve::serve(Arc::new(config), env.store.clone())
                .await
                .map_err(|e| match e {
                    crate::serve::ServeError::Invalid(m) => CliError::Usage(format!("config: {m}")),
                    e => CliError::Failed(e.to_string()),
                })?;
            Ok(0)
        }
        Command::Incident(IncidentCmd::List { json }) => {
            let list = env.store.list().await?;
            if json {
                out(serde_json::to_string_pretty(&list).unwrap_or_default());
            } else {
                out(format!(
                    "{:<16} {:<10} {:<10} {:<26} {}",
                    "ID", "STATUS", "MODE", "STARTED", "PLAYBOOK"
                ));
                for i in list {
                    out(format!(
                        "{:<16} {:<10} {:<10} {:<26} {}",
                        i.id,
                        i.status,
                        i.mode,
                        crate::postmortem::rfc3339(i.created_at),
                        i.playbook_name
                    ));
                }
            }
            Ok(0)
        }
        Command::Incident(IncidentCmd::Show { id, json }) => show(&env, &id, json).await,
        Command::Incident(IncidentCmd::Resume { id }) => {
            let runner = env.runner();
            let results = match id {
                Some(id) => vec![(id.clone(), runner.drive(&id).await?)],
                None => runner.resume_all().await?,
            };
            let mut code = 0;
            for (id, o) in &results {
                code = code.max(report_for(&env, id, o, false).await);
            }
            if results.is_empty() {
                out("nothing to resume");
            }
            Ok(code)
        }
        Command::Incident(IncidentCmd::Resolve {
            id,
            step,
            item,
            actor,
            reason,
            resolution,
        }) => {
            let r = match resolution {
                ResolutionArg::Done => Resolution::MarkDone,
                ResolutionArg::Retry => Resolution::Retry,
                ResolutionArg::Fail => Resolution::Fail,
            };
            let o = env
                .runner()
                .resolve(&id, &step, item, &actor, r, &reason)
                .await?;
            Ok(report_for(&env, &id, &o, false).await)
        }
        Command::Approve(a) => {
            let d = if a.reject {
                Decision::Reject
            } else {
                Decision::Approve
            };
            let before = env.store.events(&a.id).await?.len();
            let o = env
                .runner()
                .decide(&a.id, &a.step, &a.actor, d, &a.reason)
                .await?;
            // Say what became of this decision: granted, rejected, or refused and why.
            for e in env.store.events(&a.id).await?.iter().skip(before) {
                if e.kind.starts_with("approval.") && e.actor == a.actor {
                    eprintln!("{}: {}", e.kind, e.summary);
                }
            }
            Ok(report_for(&env, &a.id, &o, a.json).await)
        }
        Command::Sbom(cmd) => crate::cli_sbom::run(&cmd, env.store.clone(), &env.config).await,
        Command::Gameday(cmd) => {
            crate::cli_gameday::run(
                &cmd,
                env.store.clone(),
                env.config.clone(),
                env.registry.clone(),
            )
            .await
        }
        Command::Credentials(cmd) => {
            crate::cli_credentials::run(&cmd, env.store.clone(), env.config.clone(), env.runner())
                .await
        }
        Command::Timeline {
            id,
            format,
            kinds,
            step,
            since,
        } => {
            let filter = timeline::render::Filter {
                kinds,
                step,
                since: since
                    .map(|s| {
                        timeline::render::parse_since(&s, chrono::Utc::now().timestamp_millis())
                    })
                    .transpose()
                    .map_err(CliError::Usage)?,
            };
            let inc = env
                .store
                .incident(&id)
                .await?
                .ok_or_else(|| RunError::NotFound(id.clone()))?;
            let all = env.store.events(&id).await?;
            let links = match env.store.load(&id).await? {
                Some(run) => timeline::render::links(&run, &all, &env.config),
                None => Default::default(),
            };
            let events = filter.apply(&all);
            match format {
                TimelineFormat::Csv => {
                    let mut o = std::io::stdout().lock();
                    let _ = o.write_all(timeline::render::to_csv(&inc, &events, &links).as_bytes());
                }
                TimelineFormat::Json => out(serde_json::to_string_pretty(
                    &timeline::render::to_json(&inc, &events, &links),
                )
                .unwrap_or_default()),
                TimelineFormat::Md => out(timeline::render::to_markdown(&inc, &events, &links)),
            }
            Ok(0)
        }
        Command::Audit(AuditCmd::Verify { id }) => {
            let inc = env
                .store
                .incident(&id)
                .await?
                .ok_or_else(|| RunError::NotFound(id.clone()))?;
            let events = env.store.events(&id).await?;
            match timeline::verify(&events, inc.head_seq, &inc.head_hash) {
                Ok(n) => {
                    out(format!(
                        "ok: {n} events, chain intact, head {}",
                        inc.head_hash
                    ));
                    Ok(0)
                }
                Err(e) => {
                    out(format!("BROKEN at seq {}: {e}", e.seq()));
                    Ok(1)
                }
            }
        }
        Command::Postmortem {
            id,
            out: path,
            template,
        } => {
            let tpl = match template {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .map_err(|e| CliError::Usage(format!("--template {p}: {e}")))?,
                ),
                None => None,
            };
            let text = crate::postmortem::render_for(
                env.store.as_ref(),
                &id,
                None,
                tpl.as_deref(),
                now_ms(),
            )
            .await
            .map_err(|e| match e {
                crate::postmortem::PostmortemError::NotFound(i) => {
                    CliError::Run(RunError::NotFound(i))
                }
                e => CliError::Failed(e.to_string()),
            })?;
            match path {
                Some(p) => {
                    std::fs::write(&p, &text)?;
                    out(format!("wrote {p} ({} bytes)", text.len()));
                }
                None => out(text),
            }
            Ok(0)
        }
        Command::Note { id, text, actor } => {
            if env.store.incident(&id).await?.is_none() {
                return Err(RunError::NotFound(id).into());
            }
            env.store
                .append(
                    &id,
                    vec![crate::engine::Entry {
                        at: now_ms(),
                        actor: actor.clone(),
                        kind: "note".into(),
                        step: None,
                        index: None,
                        summary: text.clone(),
                        data: json!({ "text": text }),
                    }],
                )
                .await?;
            out("noted");
            Ok(0)
        }
    }
}

/// (display file name, playbook bytes, params)
type StartInputs = (String, Vec<u8>, Vec<(String, String)>);

fn start_inputs(a: &StartArgs) -> Result<StartInputs, CliError> {
    let mut params = Vec::new();
    let name = match (&a.scenario, &a.playbook) {
        (Some(s), pb) => {
            let sc = bundled::scenario(s)?;
            params = sc.raw_params();
            pb.clone().unwrap_or(sc.playbook)
        }
        (None, Some(pb)) => pb.clone(),
        (None, None) => {
            return Err(CliError::Usage(
                "give --playbook PATH_OR_NAME or --scenario NAME".into(),
            ));
        }
    };
    for (k, v) in parse_params(&a.params)? {
        params.retain(|(pk, _)| *pk != k);
        params.push((k, v));
    }
    let (file, source) = bundled::playbook(&name)?;
    Ok((file, source, params))
}

async fn show(env: &Env, id: &str, json_out: bool) -> Result<u8, CliError> {
    let run = env
        .store
        .load(id)
        .await?
        .ok_or_else(|| RunError::NotFound(id.to_string()))?;
    if json_out {
        out(serde_json::to_string_pretty(&json!({
            "incident": run.incident, "steps": run.steps, "tasks": run.tasks, "approvals": run.approvals,
        }))
        .unwrap_or_default());
    } else {
        let i = &run.incident;
        out(format!(
            "{}  {}  {}{}",
            i.id,
            i.playbook_name,
            i.status,
            if i.mode == "rehearsal" {
                "  (REHEARSAL)"
            } else {
                ""
            }
        ));
        out(format!(
            "started {} by {}",
            crate::postmortem::rfc3339(i.created_at),
            i.started_by
        ));
        for s in &run.steps {
            let n = run.tasks.iter().filter(|t| t.step_id == s.step_id).count();
            let done = run
                .tasks
                .iter()
                .filter(|t| t.step_id == s.step_id && t.status == "succeeded")
                .count();
            out(format!(
                "  {:<20} {:<18} {done}/{n}{}",
                s.step_id,
                s.status,
                s.error
                    .as_deref()
                    .map(|e| format!("  {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    Ok(0)
}

fn playbook_cmd(cmd: &PlaybookCmd) -> Result<u8, CliError> {
    let registry = Registry::builtin();
    match cmd {
        PlaybookCmd::Schema => {
            out(serde_json::to_string_pretty(&playbook::json_schema()).unwrap_or_default());
            Ok(0)
        }
        PlaybookCmd::List => {
            for (name, text) in bundled::PLAYBOOKS {
                let desc = playbook::parse(name, text.as_bytes(), &registry)
                    .map(|(p, _)| {
                        p.description
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                out(format!("{name:<28} {desc}"));
            }
            Ok(0)
        }
        PlaybookCmd::Lint { paths } => {
            let mut failed = false;
            for p in paths {
                let (file, bytes) = match bundled::playbook(p) {
                    Ok(x) => x,
                    Err(e) => {
                        eprintln!("{p}: error: {e}");
                        failed = true;
                        continue;
                    }
                };
                match playbook::parse(&file, &bytes, &registry) {
                    Ok((pb, warnings)) => {
                        for w in &warnings {
                            eprintln!("{w}");
                        }
                        out(format!(
                            "{file}: ok ({} steps, sha256 {})",
                            pb.steps.len(),
                            pb.sha256
                        ));
                    }
                    Err(diags) => {
                        eprintln!("{diags}");
                        failed = true;
                    }
                }
            }
            Ok(u8::from(failed))
        }
    }
}
