//! PyPI containment: `pypi.yank`.
//!
//! PyPI has **no API to yank** (pypa/warehouse issue 12708): a maintainer yanks in the web
//! UI. So `run` reads the release through the JSON API and the Simple API and, unless it is
//! already yanked, hands the task to a person with the exact manage-page link; the engine
//! waits for them. Their "done" is a claim that `probe` verifies against both APIs: every
//! file of the release must be yanked in each (a partial yank leaves files installable and
//! counts as not done). A rehearsal performs the same read and records what it would ask.
//! Nothing here ever sends a mutating request or a credential.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::preflight::Check;
use super::{Action, ActionCtx, ActionError, ActionOutput, Probe, opt_str_input, str_input};
use crate::config::parse_duration_ms;
use crate::net::pypi::{
    PypiClient, PypiError, YankStatus, manage_url, normalize, validate_project_name,
    validate_version,
};
use crate::playbook::{ActionSpec, InputSpec, InputType};

pub fn actions() -> Vec<Arc<dyn Action>> {
    vec![Arc::new(Yank)]
}

static YANK: ActionSpec = ActionSpec {
    name: "pypi.yank",
    summary: "Have a maintainer yank a PyPI release in the web UI (PyPI has no yank API), then verify it through the JSON and Simple APIs.",
    inputs: &[
        InputSpec {
            name: "project",
            ty: InputType::String,
            required: true,
            help: "the PyPI project name (any spelling; compared in PEP 503 normal form)",
        },
        InputSpec {
            name: "version",
            ty: InputType::String,
            required: true,
            help: "the exact release version",
        },
        InputSpec {
            name: "reason",
            ty: InputType::String,
            required: false,
            help: "the yank reason users will see (pip prints it)",
        },
    ],
    outputs: &["project", "version", "yanked", "reason", "files", "link"],
    mutating: true,
    destructive: false,
};

/// PyPI errors as action errors: HTTP failures keep their transient/ambiguous nature
/// (429, 5xx, timeouts, resets are retried), an answer of the wrong shape is permanent.
fn action_error(e: PypiError) -> ActionError {
    match e {
        // pypi.yank never sends anything itself: a failed read has no effect to reconcile.
        PypiError::Http(h) => ActionError::Read(h),
        PypiError::Malformed(m) => ActionError::Failed(format!("PyPI answered {m}")),
        other @ (PypiError::InvalidName { .. } | PypiError::InvalidVersion { .. }) => {
            ActionError::Input(other.to_string())
        }
        PypiError::InvalidInput(m) => ActionError::Config(format!("[pypi]: {m}")),
    }
}

/// One read client per `[pypi]` configuration, shared by every attempt (connection reuse).
fn client(ctx: &ActionCtx) -> Result<Arc<PypiClient>, ActionError> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<PypiClient>>>> = OnceLock::new();
    let cfg = &ctx.config.pypi;
    let key = format!("{}|{}", cfg.api, cfg.timeout);
    let map = CLIENTS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(c) = map.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(c);
    }
    let timeout = parse_duration_ms(&cfg.timeout)
        .map_err(|e| ActionError::Config(format!("pypi.timeout: {e}")))?;
    let c = PypiClient::new(&cfg.api, Duration::from_millis(timeout))
        .map_err(|e| ActionError::Config(format!("pypi.api: {e}")))?;
    let c = Arc::new(c);
    if let Ok(mut m) = map.lock() {
        m.insert(key, c.clone());
    }
    Ok(c)
}

/// The validated inputs.
struct Target {
    project: String,
    version: String,
    reason: Option<String>,
}

impl Target {
    fn from_inputs(inputs: &Value) -> Result<Self, ActionError> {
        let project = str_input(inputs, "project")?.trim().to_string();
        let version = str_input(inputs, "version")?.trim().to_string();
        let reason = opt_str_input(inputs, "reason")?.map(|r| r.trim().to_string());
        validate_project_name(&project).map_err(action_error)?;
        validate_version(&version).map_err(action_error)?;
        Ok(Self {
            project,
            version,
            reason,
        })
    }

    /// `project version`, as people write it.
    fn label(&self) -> String {
        format!("{} {}", self.project, self.version)
    }

    /// Where the person yanks: `<web>/manage/project/<normalized>/release/<version>/`.
    fn link(&self, ctx: &ActionCtx) -> Result<String, ActionError> {
        manage_url(&ctx.config.pypi.web, &self.project, &self.version)
            .map_err(|e| ActionError::Config(format!("pypi.web: {e}")))
    }
}

/// The index as configured, for messages.
fn api_base(ctx: &ActionCtx) -> String {
    ctx.config.pypi.api.trim().trim_end_matches('/').to_string()
}

/// Not installable from this index by any client. A release without files has nothing to
/// install, so Warehouse's release flag decides it; otherwise every file must be yanked in
/// the JSON API and in the Simple API (what pip reads).
fn is_yanked(s: &YankStatus) -> bool {
    s.yanked() || (s.files.is_empty() && s.release_flag)
}

/// Files of the release a client could still install: not yanked in one of the two APIs.
fn still_installable(s: &YankStatus) -> Vec<String> {
    s.files
        .iter()
        .filter(|f| !(f.yanked_json && f.yanked_simple == Some(true)))
        .map(|f| f.filename.clone())
        .collect()
}

fn filenames(s: &YankStatus) -> Vec<String> {
    s.files.iter().map(|f| f.filename.clone()).collect()
}

/// Per-file and per-source yank state, for the timeline.
fn evidence(s: &YankStatus, reads: &[String]) -> Value {
    json!({
        "read": reads,
        "json_api_all_files_yanked": s.all_files_yanked_json,
        "simple_api_all_files_yanked": s.all_files_yanked_simple,
        "simple_api_format": s.simple_format,
        "release_flag": s.release_flag,
        "reason": s.reason,
        "files": s.files,
        "still_installable": still_installable(s),
    })
}

/// What each file looks like now, in one line: `a.tar.gz (yanked), a.whl (installable)`.
fn file_states(s: &YankStatus) -> String {
    if s.files.is_empty() {
        return "the release has no files".into();
    }
    s.files
        .iter()
        .map(|f| {
            let state = match (f.yanked_json, f.yanked_simple) {
                (true, Some(true)) => "yanked",
                (false, Some(false)) => "installable",
                (_, None) => "not listed in the Simple API",
                (true, Some(false)) => "yanked in the JSON API only",
                (false, Some(true)) => "yanked in the Simple API only",
            };
            format!("{} ({state})", f.filename)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The URLs a yank-status read fetches.
fn reads(c: &PypiClient, t: &Target) -> Vec<String> {
    [
        c.release_request(&t.project, &t.version),
        c.simple_request(&t.project),
    ]
    .into_iter()
    .filter_map(Result::ok)
    .map(|r| r.url)
    .collect()
}

fn instructions(ctx: &ActionCtx, t: &Target, link: &str) -> String {
    let reason = match &t.reason {
        Some(r) => format!("reason: '{r}'"),
        None => "no reason given (PyPI allows an empty one)".to_string(),
    };
    format!(
        "Yank {} on PyPI: open {link}, choose Options → Yank, {reason}; then run \
         `recall incident resolve {} {} --item {} --as <you> --reason \"yanked in the web UI\" --resolution done` \
         (Recall then verifies the yank through the JSON API and the Simple API)",
        t.label(),
        ctx.incident,
        ctx.step,
        ctx.index
    )
}

fn outputs(t: &Target, yanked: bool, reason: Option<&str>, files: &[String], link: &str) -> Value {
    json!({
        "project": t.project,
        "version": t.version,
        "yanked": yanked,
        "reason": reason,
        "files": files,
        "link": link,
    })
}

fn finding_for(e: &PypiError, api: &str, what: &str) -> String {
    let why = match e.status() {
        Some(s) => format!("the index answered {s}"),
        None if matches!(e, PypiError::Http(_)) => {
            "the index is unreachable from here or answered garbage".to_string()
        }
        None => "the answer was not understood".to_string(),
    };
    format!("blocker: could not {what} at {api}: {why} ({e})")
}

// ---- pypi.yank -----------------------------------------------------------------------

pub struct Yank;

#[async_trait]
impl Action for Yank {
    fn spec(&self) -> &'static ActionSpec {
        &YANK
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let t = Target::from_inputs(inputs)?;
        let link = t.link(ctx)?;
        let c = client(ctx)?;
        let read = reads(&c, &t);
        let s = c
            .yank_status(&t.project, &t.version)
            .await
            .map_err(action_error)?
            .ok_or_else(|| {
                ActionError::Failed(format!("{} is not on {}", t.label(), api_base(ctx)))
            })?;
        let files = filenames(&s);
        if is_yanked(&s) {
            return Ok(ActionOutput::new(
                outputs(&t, true, s.reason.as_deref(), &files, &link),
                format!(
                    "{} is already yanked on PyPI (JSON and Simple API agree); nobody asked",
                    t.label()
                ),
            )
            .with("evidence", evidence(&s, &read))
            .with("link", json!(link)));
        }
        let todo = still_installable(&s);
        let summary = format!(
            "{} is installable ({} of {} file(s)); a person must yank it at {link}",
            t.label(),
            todo.len(),
            s.files.len()
        );
        let steps = instructions(ctx, &t, &link);
        let detail = format!("{steps}. Files now: {}.", file_states(&s));
        Ok(ActionOutput::new(
            outputs(&t, false, t.reason.as_deref(), &files, &link),
            summary,
        )
        .with("evidence", evidence(&s, &read))
        .with("link", json!(link))
        .for_human(detail, vec![link]))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let t = Target::from_inputs(inputs)?;
        let link = t.link(ctx)?;
        let c = client(ctx)?;
        let read = reads(&c, &t);
        let api = api_base(ctx);
        let ask = instructions(ctx, &t, &link);
        match c.yank_status(&t.project, &t.version).await {
            Ok(Some(s)) if is_yanked(&s) => Ok(ActionOutput::new(
                outputs(&t, true, s.reason.as_deref(), &filenames(&s), &link),
                format!(
                    "rehearsal: {} is already yanked; nobody would be asked",
                    t.label()
                ),
            )
            .with("evidence", evidence(&s, &read))
            .with("link", json!(link))
            .with("findings", json!([]))),
            Ok(Some(s)) => {
                let mut findings = Vec::new();
                if s.files.is_empty() {
                    findings.push(format!(
                        "note: {} has no files on {api}; the yank is verified by the release flag only",
                        t.label()
                    ));
                }
                if s.simple_format.is_none() {
                    findings.push(format!(
                        "blocker: {api} has no Simple API page for {}; a yank could not be verified",
                        normalize(&t.project)
                    ));
                }
                Ok(ActionOutput::new(
                    outputs(&t, false, t.reason.as_deref(), &filenames(&s), &link),
                    format!(
                        "rehearsal: would ask a person to yank {} at {link} ({})",
                        t.label(),
                        file_states(&s)
                    ),
                )
                .with("evidence", evidence(&s, &read))
                .with("link", json!(link))
                .with("would_ask", json!({ "instructions": ask, "links": [link] }))
                .with("findings", json!(findings)))
            }
            Ok(None) => Ok(ActionOutput::new(
                outputs(&t, false, t.reason.as_deref(), &[], &link),
                format!("rehearsal: {} is not on {api}", t.label()),
            )
            .with("link", json!(link))
            .with(
                "findings",
                json!([format!(
                    "blocker: {} is not on {api}; check the project name and version",
                    t.label()
                )]),
            )),
            Err(e) => Ok(ActionOutput::new(
                outputs(&t, false, t.reason.as_deref(), &[], &link),
                format!(
                    "rehearsal: could not read {}; would ask a person to yank it at {link}",
                    t.label()
                ),
            )
            .with("link", json!(link))
            .with("would_ask", json!({ "instructions": ask, "links": [link] }))
            .with(
                "findings",
                json!([finding_for(&e, &api, "read the release")]),
            )),
        }
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        let t = match Target::from_inputs(inputs) {
            Ok(t) => t,
            Err(e) => return vec![super::preflight::input_check(&e.to_string())],
        };
        let api = api_base(ctx);
        let web = ctx.config.pypi.web.trim_end_matches('/');
        let mut out = vec![Check::unknown(
            "pypi.human",
            format!("a person who can yank releases of {}", t.project),
            "PyPI has no yank API (warehouse issue 12708): a person yanks in the web UI and Recall verifies it",
            format!(
                "make sure the on-call can sign in to {web}/manage/project/{}/releases/ with the Owner or Maintainer role and their 2FA device at hand",
                t.project
            ),
        )];
        let c = match client(ctx) {
            Ok(c) => c,
            Err(e) => {
                out.push(Check::fail(
                    "pypi.index",
                    api,
                    e.to_string(),
                    "fix [pypi] api in the config",
                ));
                return out;
            }
        };
        out.push(match c.yank_status(&t.project, &t.version).await {
            Ok(Some(s)) => Check::pass(
                "pypi.target",
                t.label(),
                format!(
                    "{api}: {} file(s), yanked: {}",
                    s.files.len(),
                    is_yanked(&s)
                ),
            ),
            Ok(None) => Check::fail(
                "pypi.target",
                t.label(),
                format!("{api}: no such release"),
                "check the project and version in the playbook parameters and [pypi] api",
            ),
            Err(e) => Check::fail(
                "pypi.index",
                api.clone(),
                e.to_string(),
                "make the index reachable from where Recall runs: the yank is verified through it",
            ),
        });
        out
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let t = Target::from_inputs(inputs)?;
        let link = t.link(ctx)?;
        let c = client(ctx)?;
        let read = reads(&c, &t);
        match c.yank_status(&t.project, &t.version).await {
            Ok(Some(s)) if is_yanked(&s) => Ok(Probe::Done {
                outputs: outputs(&t, true, s.reason.as_deref(), &filenames(&s), &link),
                evidence: evidence(&s, &read),
            }),
            Ok(Some(s)) => {
                let mut ev = evidence(&s, &read);
                if let Value::Object(m) = &mut ev {
                    m.insert(
                        "summary".into(),
                        json!(format!(
                            "{} is not yanked: still installable: {}",
                            t.label(),
                            still_installable(&s).join(", ")
                        )),
                    );
                }
                Ok(Probe::NotDone { evidence: ev })
            }
            Ok(None) => Ok(Probe::Unknown {
                reason: format!(
                    "{} is not on {} any more (deleted rather than yanked?); nothing to verify",
                    t.label(),
                    api_base(ctx)
                ),
            }),
            Err(e) => Ok(Probe::Unknown {
                reason: format!("could not read {} from {}: {e}", t.label(), api_base(ctx)),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::pypi::{FileYank, SimpleFormat};

    fn status(files: &[(&str, bool, Option<bool>)], flag: bool) -> YankStatus {
        let files: Vec<FileYank> = files
            .iter()
            .map(|(n, j, s)| FileYank {
                filename: (*n).into(),
                yanked_json: *j,
                yanked_simple: *s,
                reason: None,
            })
            .collect();
        let any = !files.is_empty();
        YankStatus {
            project: "foo".into(),
            version: "1.0".into(),
            all_files_yanked_json: any && files.iter().all(|f| f.yanked_json),
            all_files_yanked_simple: any && files.iter().all(|f| f.yanked_simple == Some(true)),
            files,
            release_flag: flag,
            simple_format: Some(SimpleFormat::Json),
            reason: None,
        }
    }

    #[test]
    fn yanked_means_no_file_installable_anywhere() {
        let all = status(
            &[("a.tar.gz", true, Some(true)), ("a.whl", true, Some(true))],
            true,
        );
        assert!(is_yanked(&all));
        assert!(still_installable(&all).is_empty());
        let partial = status(
            &[
                ("a.tar.gz", true, Some(true)),
                ("a.whl", false, Some(false)),
            ],
            false,
        );
        assert!(!is_yanked(&partial));
        assert_eq!(still_installable(&partial), ["a.whl"]);
        assert!(file_states(&partial).contains("a.whl (installable)"));
        let lagging = status(&[("a.tar.gz", true, Some(false))], true);
        assert!(!is_yanked(&lagging), "the Simple API (pip) must agree");
        assert!(file_states(&lagging).contains("JSON API only"));
        let unlisted = status(&[("a.tar.gz", true, None)], true);
        assert!(!is_yanked(&unlisted));
        assert!(
            is_yanked(&status(&[], true)),
            "no files: the release flag decides"
        );
        assert!(!is_yanked(&status(&[], false)));
    }

    #[test]
    fn errors_keep_their_nature() {
        let e = action_error(PypiError::Malformed("no `info` object".into()));
        assert!(!e.is_transient() && matches!(e, ActionError::Failed(_)));
        let e = action_error(PypiError::InvalidName {
            name: "a/b".into(),
            reason: "x".into(),
        });
        assert!(matches!(e, ActionError::Input(_)));
        let e = action_error(PypiError::Http(crate::net::http::HttpError::Transport(
            "reset".into(),
        )));
        assert!(e.is_transient());
    }

    #[test]
    fn inputs_are_validated() {
        assert!(Target::from_inputs(&json!({"project": "x", "version": "1.0"})).is_ok());
        for bad in [
            json!({"version": "1.0"}),
            json!({"project": "x"}),
            json!({"project": "../x", "version": "1.0"}),
            json!({"project": "x", "version": "1.0/../2"}),
            json!({"project": "x", "version": 1}),
        ] {
            assert!(
                matches!(Target::from_inputs(&bad), Err(ActionError::Input(_))),
                "{bad}"
            );
        }
        let t = Target::from_inputs(&json!({"project": " x ", "version": "1.0", "reason": "  "}));
        assert!(t.is_ok_and(|t| t.project == "x" && t.reason.is_none()));
    }
}
