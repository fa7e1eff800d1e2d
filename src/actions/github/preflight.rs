//! Preflight of the GitHub actions: read-only checks that the live call would be accepted.
//!
//! * `github.credential` — a token or a GitHub App is configured and GitHub accepts it
//!   (`GET /rate_limit`, which every credential may read and which costs no quota; for an
//!   App, `GET /app/installations/{id}` with its JWT). A token's
//!   `github-authentication-token-expiration` is read: expired blocks, expiring within
//!   [`EXPIRY_WARN_DAYS`] degrades.
//! * `github.permission` — one check per permission the action needs, at its level:
//!   - a GitHub App: the installation's `permissions` map decides exactly;
//!   - a classic token: its `x-oauth-scopes` decide exactly;
//!   - a fine-grained (or installation) token: the read level is proven with a `GET` that
//!     needs the same permission, and a `403` names what is missing from
//!     `x-accepted-github-permissions`; the write level cannot be read without sending the
//!     write, so it is `unknown` with what to confirm. Nothing mutating is ever sent.
//! * targets — `github.repository` (exists, not archived), `github.workflow`,
//!   `github.release` (and the release to make latest), `github.branch` (the pull request's
//!   base), `github.environment` / `github.org` for secrets of those scopes,
//!   `github.secret` (the name GitHub will accept).
//!
//! Evidence names statuses, headers and fields, never a credential: the client scrubs the
//! token from every body, and the credential is named by its configured source.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use super::secrets::{Scope, check_name};
use super::{repo_input, seg};
use crate::actions::preflight::{Check, Impact};
use crate::actions::{ActionCtx, ActionError, bool_input, opt_str_input, str_input};
use crate::config::GitHubConfig;
use crate::net::github::{AuthKind, GitHubClient, GitHubResponse, TokenKind, credential_source};
use crate::net::http::{HttpError, truncate_chars};

/// A token expiring sooner than this is reported (impact: degrades).
pub const EXPIRY_WARN_DAYS: i64 = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Read,
    Write,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Write => "write",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Level::Read),
            "write" | "admin" => Some(Level::Write),
            _ => None,
        }
    }
}

/// A permission an action needs: its fine-grained / App name and level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Need {
    pub perm: &'static str,
    pub level: Level,
}

const fn write(perm: &'static str) -> Need {
    Need {
        perm,
        level: Level::Write,
    }
}

/// The name GitHub's token settings show for a permission.
fn title(perm: &str) -> &str {
    match perm {
        "actions" => "Actions",
        "secrets" => "Secrets",
        "environments" => "Environments",
        "organization_secrets" => "Secrets (organization permission)",
        "contents" => "Contents",
        "pull_requests" => "Pull requests",
        "issues" => "Issues",
        "repository_advisories" => "Repository security advisories",
        "workflows" => "Workflows",
        "metadata" => "Metadata",
        other => other,
    }
}

fn level_title(l: Level) -> &'static str {
    match l {
        Level::Read => "Read-only",
        Level::Write => "Read and write",
    }
}

fn needs_text(needs: &[Need]) -> String {
    needs
        .iter()
        .map(|n| format!("`{}: {}`", title(n.perm), level_title(n.level)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The classic-token scopes that grant a permission (any one of them).
fn classic_scopes(perm: &str, public_repo: bool) -> Vec<&'static str> {
    match perm {
        "organization_secrets" => vec!["admin:org"],
        "workflows" => vec!["workflow"],
        // Secrets, environments and workflows need `repo` even on a public repository.
        "secrets" | "environments" | "actions" => vec!["repo"],
        "contents" | "pull_requests" | "issues" | "repository_advisories" if public_repo => {
            vec!["repo", "public_repo"]
        }
        _ => vec!["repo"],
    }
}

/// Does a classic token with `have` hold `want`? (`repo` includes `public_repo`;
/// `admin:org` includes `write:org` and `read:org`.)
fn scope_granted(have: &BTreeSet<String>, want: &str) -> bool {
    have.contains(want)
        || (want == "public_repo" && have.contains("repo"))
        || (matches!(want, "write:org" | "read:org") && have.contains("admin:org"))
}

/// The scopes of an `x-oauth-scopes` header (`repo, workflow`).
fn parse_scopes(h: &str) -> BTreeSet<String> {
    h.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn shown_scopes(s: &BTreeSet<String>) -> String {
    if s.is_empty() {
        "(none)".to_string()
    } else {
        s.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// `github-authentication-token-expiration`: `2025-07-01 12:00:00 UTC` (GitHub also sends
/// a numeric offset, `2025-07-01 12:00:00 -0700`).
pub(crate) fn parse_expiry(h: &str) -> Option<DateTime<Utc>> {
    let h = h.trim();
    if let Ok(t) = DateTime::parse_from_str(h, "%Y-%m-%d %H:%M:%S %z") {
        return Some(t.with_timezone(&Utc));
    }
    let naive = h.strip_suffix("UTC").unwrap_or(h).trim();
    NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|n| n.and_utc())
}

/// What the expiry means today: `None` when far enough away.
pub(crate) fn expiry_verdict(expires: DateTime<Utc>, now: DateTime<Utc>) -> Option<Impact> {
    if expires <= now {
        Some(Impact::Blocks)
    } else if expires - now < chrono::Duration::days(EXPIRY_WARN_DAYS) {
        Some(Impact::Degrades)
    } else {
        None
    }
}

/// One `GET` and what came back.
pub(crate) struct Answer {
    path: String,
    r: Result<GitHubResponse, HttpError>,
}

impl Answer {
    fn status(&self) -> Option<u16> {
        match &self.r {
            Ok(r) => Some(r.status),
            Err(e) => e.status(),
        }
    }

    fn ok(&self) -> bool {
        matches!(&self.r, Ok(r) if r.ok())
    }

    fn json(&self) -> Value {
        match &self.r {
            Ok(r) if r.ok() => r.json().unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.r.as_ref().ok().and_then(|r| r.header(name))
    }

    /// `GET /repos/acme/app → 403 (Resource not accessible by personal access token)`.
    fn describe(&self) -> String {
        let what = format!("GET {}", self.path);
        match &self.r {
            Ok(r) if r.ok() => format!("{what} → {}", r.status),
            Ok(r) => {
                let msg = serde_json::from_str::<Value>(&r.body)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| r.body.clone());
                format!(
                    "{what} → {} ({})",
                    r.status,
                    truncate_chars(msg.trim(), 160)
                )
            }
            Err(e) => format!("{what} failed: {}", truncate_chars(&e.to_string(), 200)),
        }
    }
}

/// The credential as GitHub answered for it.
enum Cred {
    /// Fine-grained, installation or unknown-kind token: no scopes to read.
    Grants(TokenKind),
    /// A classic (or OAuth) token and its `x-oauth-scopes`.
    Classic(BTreeSet<String>),
    /// A GitHub App installation and its `permissions`.
    App {
        installation_id: u64,
        perms: BTreeMap<String, String>,
    },
}

/// The checks of one action, sharing one client and the credential's answer.
pub(crate) struct Session {
    c: GitHubClient,
    cred: Cred,
    pub checks: Vec<Check>,
}

/// Where a new token goes, for a fix.
fn token_home(cfg: &GitHubConfig) -> String {
    match (&cfg.token_env, &cfg.token_file) {
        (_, Some(f)) => format!("write it to {f} (`[github] token_file`)"),
        (Some(e), None) => format!("put it in the environment variable {e} (`[github] token_env`)"),
        (None, None) => "name it in `[github] token_env` or `token_file`".to_string(),
    }
}

fn fix_credential(cfg: &GitHubConfig, needs: &[Need]) -> String {
    let var = match (&cfg.token_env, &cfg.token_file) {
        (_, Some(f)) => format!("write a fine-grained token to {f} (`[github] token_file`)"),
        (Some(e), None) => format!("set the environment variable {e} (`[github] token_env`)"),
        (None, None) => "set `[github] token_env` or `token_file`".to_string(),
    };
    format!(
        "{var} to a fine-grained token with {}, or configure a GitHub App with `[github] app_id`, `installation_id` and `app_key_file` (or `app_key_env`)",
        needs_text(needs)
    )
}

impl Session {
    /// Checks the credential; `Err` carries the checks when there is nothing to act with
    /// (every other check would only repeat the same refusal).
    pub async fn open(ctx: &ActionCtx, needs: &[Need]) -> Result<Self, Vec<Check>> {
        let cfg = &ctx.config.github;
        let source = credential_source(cfg);
        let mut checks = Vec::new();
        if cfg.app_id.is_some() != cfg.installation_id.is_some() {
            checks.push(Check::unknown(
                "github.credential",
                format!("GitHub App in {source}"),
                "only one of `app_id` and `installation_id` is set, so the App is not used",
                "set both `[github] app_id` and `installation_id` (and `app_key_file` or `app_key_env`), or remove the one set",
            ));
        }
        let c = match GitHubClient::new(cfg) {
            Ok(c) => c,
            Err(e) => {
                checks.push(Check::fail(
                    "github.credential",
                    source,
                    e.to_string(),
                    if cfg.app_id.is_some() && cfg.installation_id.is_some() {
                        "give the App's private key (PEM, as downloaded from the App's settings) in `[github] app_key_file` or `app_key_env`".to_string()
                    } else {
                        fix_credential(cfg, needs)
                    },
                ));
                return Err(checks);
            }
        };
        let cred = match c.auth().clone() {
            AuthKind::Anonymous => {
                let evidence = match (&cfg.token_env, &cfg.token_file) {
                    (Some(e), None) => format!(
                        "no GitHub App is configured and the environment variable {e} is not set: Recall would act anonymously, and GitHub refuses every write"
                    ),
                    _ => "no token and no GitHub App are configured: Recall would act anonymously, and GitHub refuses every write".to_string(),
                };
                checks.push(Check::fail(
                    "github.credential",
                    source,
                    evidence,
                    fix_credential(cfg, needs),
                ));
                return Err(checks);
            }
            AuthKind::App {
                app_id,
                installation_id,
            } => {
                let a = match c.installation().await {
                    Some(r) => Answer {
                        path: format!("/app/installations/{installation_id}"),
                        r,
                    },
                    None => {
                        checks.push(Check::unknown(
                            "github.credential",
                            source,
                            "the client has no App identity",
                            "check `[github] app_id` and `installation_id`",
                        ));
                        return Err(checks);
                    }
                };
                let v = a.json();
                match a.status() {
                    Some(200) if !v["suspended_at"].is_null() => {
                        checks.push(Check::fail(
                            "github.credential",
                            source,
                            format!(
                                "{} (with the App's JWT): the installation was suspended at {}",
                                a.describe(),
                                v["suspended_at"]
                            ),
                            "unsuspend the installation (the account's Settings → GitHub Apps → Configure)",
                        ));
                        return Err(checks);
                    }
                    Some(200) => {
                        let perms: BTreeMap<String, String> = v["permissions"]
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .filter_map(|(k, l)| Some((k.clone(), l.as_str()?.to_string())))
                                    .collect()
                            })
                            .unwrap_or_default();
                        checks.push(Check::pass(
                            "github.credential",
                            source,
                            format!(
                                "{} with the App's JWT: App {app_id} is installed on {} (repository selection: {}); installation tokens are minted and renewed as needed",
                                a.describe(),
                                v["account"]["login"].as_str().unwrap_or("?"),
                                v["repository_selection"].as_str().unwrap_or("?"),
                            ),
                        ));
                        Cred::App {
                            installation_id,
                            perms,
                        }
                    }
                    Some(401) => {
                        checks.push(Check::fail(
                            "github.credential",
                            source,
                            format!("{}: GitHub refused the App's JWT", a.describe()),
                            "check `[github] app_id` and that the key is one of the App's current private keys (App settings → Private keys); the JWT also needs this machine's clock within a minute of GitHub's",
                        ));
                        return Err(checks);
                    }
                    Some(404) => {
                        checks.push(Check::fail(
                            "github.credential",
                            source,
                            format!(
                                "{}: App {app_id} has no installation {installation_id}",
                                a.describe()
                            ),
                            "check `[github] installation_id` (the number at the end of the installation's settings URL) and that the App is installed on the account",
                        ));
                        return Err(checks);
                    }
                    _ => {
                        checks.push(Check::unknown(
                            "github.credential",
                            source,
                            a.describe(),
                            "check `[github] api_url` and that GitHub is reachable, then rehearse again",
                        ));
                        return Err(checks);
                    }
                }
            }
            AuthKind::Token { kind } => {
                let a = get(&c, "/rate_limit").await;
                match a.status() {
                    Some(200) => {}
                    Some(401) => {
                        checks.push(Check::fail(
                            "github.credential",
                            source,
                            format!(
                                "{}: the token was refused (unknown, revoked or expired)",
                                a.describe()
                            ),
                            format!(
                                "create a new token with {} and {}",
                                needs_text(needs),
                                token_home(cfg)
                            ),
                        ));
                        return Err(checks);
                    }
                    _ => {
                        checks.push(Check::unknown(
                            "github.credential",
                            source,
                            a.describe(),
                            "check `[github] api_url` and that GitHub is reachable, then rehearse again",
                        ));
                        return Err(checks);
                    }
                }
                let scopes = a.header("x-oauth-scopes").map(parse_scopes);
                let what = match (&scopes, kind) {
                    (Some(_), TokenKind::OAuth) => "OAuth token",
                    (Some(_), _) => "personal access token (classic)",
                    (None, k) => k.describe(),
                };
                let mut evidence = format!("{}: GitHub accepts the {what}", a.describe());
                if let Some(s) = &scopes {
                    evidence.push_str(&format!("; x-oauth-scopes: {}", shown_scopes(s)));
                }
                let expiry = a.header("github-authentication-token-expiration");
                match expiry.map(|h| (h, parse_expiry(h))) {
                    Some((h, Some(t))) => {
                        let now = Utc::now();
                        let when = t.format("%Y-%m-%d %H:%M UTC");
                        match expiry_verdict(t, now) {
                            Some(impact) => {
                                let left = if impact == Impact::Blocks {
                                    format!("expired on {when}")
                                } else {
                                    let hours = (t - now).num_hours();
                                    format!(
                                        "expires on {when}, in {} (github-authentication-token-expiration: {h})",
                                        if hours >= 48 {
                                            format!("{} days", hours / 24)
                                        } else {
                                            format!("{hours} hours")
                                        }
                                    )
                                };
                                checks.push(
                                    Check::fail(
                                        "github.credential",
                                        source,
                                        format!("{evidence}; it {left}"),
                                        format!(
                                            "create a new token with {} before it expires and {}",
                                            needs_text(needs),
                                            token_home(cfg)
                                        ),
                                    )
                                    .impact(impact),
                                );
                                if impact == Impact::Blocks {
                                    return Err(checks);
                                }
                            }
                            None => checks.push(Check::pass(
                                "github.credential",
                                source,
                                format!("{evidence}; expires on {when}"),
                            )),
                        }
                    }
                    Some((h, None)) => checks.push(Check::pass(
                        "github.credential",
                        source,
                        format!("{evidence}; expiry header not understood: {h:?}"),
                    )),
                    None => checks.push(Check::pass(
                        "github.credential",
                        source,
                        format!("{evidence}; no expiry announced"),
                    )),
                }
                match scopes {
                    Some(s) => Cred::Classic(s),
                    None => Cred::Grants(kind),
                }
            }
        };
        Ok(Self { c, cred, checks })
    }

    pub async fn get(&self, path: &str) -> Answer {
        get(&self.c, path).await
    }

    /// A `GET` sent only to prove a fine-grained token's read level (an App's or a classic
    /// token's grants are read, not probed).
    pub async fn probe(&self, path: &str) -> Option<Answer> {
        match self.cred {
            Cred::Grants(_) => Some(self.get(path).await),
            _ => None,
        }
    }

    pub fn finish(self) -> Vec<Check> {
        self.checks
    }

    /// `github.repository`: exists, is visible, is not archived. Returns its JSON.
    pub async fn repository(&mut self, owner: &str, name: &str, mutating: bool) -> Option<Value> {
        let a = self.get(&format!("/repos/{owner}/{name}")).await;
        let subject = format!("repository {owner}/{name}");
        match a.status() {
            Some(200) => {
                let v = a.json();
                if mutating && v["archived"].as_bool() == Some(true) {
                    self.checks.push(Check::fail(
                        "github.repository",
                        subject,
                        format!("{}: archived: true — GitHub refuses every write to an archived repository", a.describe()),
                        format!("unarchive {owner}/{name} (Settings → General → Danger Zone) for the incident, or drop this step"),
                    ));
                } else {
                    self.checks.push(Check::pass(
                        "github.repository",
                        subject,
                        format!(
                            "{}: {}, default branch {}{}",
                            a.describe(),
                            v["visibility"].as_str().unwrap_or(
                                if v["private"].as_bool() == Some(true) {
                                    "private"
                                } else {
                                    "public"
                                }
                            ),
                            v["default_branch"].as_str().unwrap_or("?"),
                            if v["archived"].as_bool() == Some(true) {
                                ", archived"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                Some(v)
            }
            Some(404) => {
                let who = match self.cred {
                    Cred::App { .. } => "the App installation is not granted it",
                    Cred::Classic(_) => "the token's owner has no access to it",
                    Cred::Grants(_) => "the token's repository access does not include it",
                };
                self.checks.push(Check::fail(
                    "github.repository",
                    subject,
                    format!("{}: it does not exist, or {who}", a.describe()),
                    format!(
                        "check `repo`; if {owner}/{name} exists, give the credential access to it"
                    ),
                ));
                None
            }
            _ => {
                self.checks.push(Check::unknown(
                    "github.repository",
                    subject,
                    a.describe(),
                    "rehearse again once GitHub answers; a 403 here means the credential is restricted (SSO, IP allow list)",
                ));
                None
            }
        }
    }

    /// `github.permission`: does the credential hold `need` on `on`? `probe`: a `GET` that
    /// needs the same permission at read level (its `403` decides for any credential).
    pub fn permission(&mut self, need: Need, on: &str, probe: Option<&Answer>, public: bool) {
        let subject = format!("`{}: {}` on {on}", need.perm, need.level.as_str());
        let want = format!("`{}: {}`", title(need.perm), level_title(need.level));
        if let Some(p) = probe
            && p.status() == Some(403)
        {
            let accepted = p.header("x-accepted-github-permissions");
            let sso = p.header("x-github-sso");
            let mut evidence = p.describe();
            if let Some(h) = accepted {
                evidence.push_str(&format!("; x-accepted-github-permissions: {h}"));
                if h.contains(',') {
                    evidence.push_str(" (all of them are needed; at least one is missing)");
                }
            }
            if let Cred::Classic(scopes) = &self.cred {
                evidence.push_str(&format!(
                    "; x-oauth-scopes: {}; needs {}",
                    shown_scopes(scopes),
                    classic_scopes(need.perm, public).join(" or ")
                ));
            }
            let fix = match (sso, &self.cred) {
                (Some(s), _) => format!(
                    "the organisation enforces SAML single sign-on: authorize the token for it ({})",
                    s.split("url=").nth(1).unwrap_or(s).trim()
                ),
                (None, Cred::App { .. }) => format!(
                    "grant the App {want} (App settings → Permissions) and accept the new permissions on the installation"
                ),
                (None, Cred::Classic(_)) => format!(
                    "add the scope {} to the token",
                    classic_scopes(need.perm, public).join(" or ")
                ),
                (None, Cred::Grants(TokenKind::Installation)) => format!(
                    "grant {want} to the installation token (for an Actions GITHUB_TOKEN: `permissions: {}: write` in the workflow)",
                    need.perm.replace('_', "-")
                ),
                (None, Cred::Grants(_)) => format!(
                    "give the token {want} on {on} (Settings → Developer settings → Fine-grained tokens → Edit), or create one that has it"
                ),
            };
            if sso.is_some() || accepted.is_none_or(|h| h.contains(need.perm)) {
                self.checks
                    .push(Check::fail("github.permission", subject, evidence, fix));
            } else {
                self.checks.push(Check::unknown(
                    "github.permission",
                    subject,
                    evidence,
                    format!("make sure the credential has {want}"),
                ));
            }
            return;
        }
        match &self.cred {
            Cred::App {
                installation_id,
                perms,
            } => {
                let have = perms.get(need.perm).and_then(|l| Level::parse(l));
                let evidence = format!(
                    "installation {installation_id} grants {}",
                    match perms.get(need.perm) {
                        Some(l) => format!("{}: {l}", need.perm),
                        None => format!("no `{}` permission", need.perm),
                    }
                );
                if have.is_some_and(|h| h >= need.level) || need.perm == "metadata" {
                    self.checks
                        .push(Check::pass("github.permission", subject, evidence));
                } else {
                    self.checks.push(Check::fail(
                        "github.permission",
                        subject,
                        evidence,
                        format!(
                            "grant the App {want} (App settings → Permissions and events) and accept the new permissions on the installation"
                        ),
                    ));
                }
            }
            Cred::Classic(scopes) => {
                let any = classic_scopes(need.perm, public);
                let shown = shown_scopes(scopes);
                if any.iter().any(|s| scope_granted(scopes, s)) {
                    self.checks.push(Check::pass(
                        "github.permission",
                        subject,
                        format!("x-oauth-scopes: {shown} (includes {})", any.join(" or ")),
                    ));
                } else {
                    self.checks.push(Check::fail(
                        "github.permission",
                        subject,
                        format!("x-oauth-scopes: {shown}; needs {}", any.join(" or ")),
                        format!(
                            "add the scope {} to the token (or use a fine-grained token with {want})",
                            any.join(" or ")
                        ),
                    ));
                }
            }
            Cred::Grants(kind) => {
                let confirm = if *kind == TokenKind::Installation {
                    format!(
                        "make sure the installation token has {want} (for an Actions GITHUB_TOKEN: `permissions: {}: write`)",
                        need.perm.replace('_', "-")
                    )
                } else {
                    format!("make sure the token has {want} on {on}")
                };
                match probe {
                    Some(p) if p.ok() => {
                        // What a public repository shows any token; its secrets it does not.
                        let readable_by_all = matches!(
                            need.perm,
                            "actions" | "contents" | "issues" | "pull_requests" | "repository_advisories"
                        );
                        let public_note = if public && readable_by_all {
                            " (the repository is public, so any token may read it: this proves little)"
                        } else {
                            ""
                        };
                        if need.level == Level::Read {
                            self.checks.push(Check::pass(
                                "github.permission",
                                subject,
                                format!("{}{public_note}", p.describe()),
                            ));
                        } else {
                            self.checks.push(Check::unknown(
                                "github.permission",
                                subject,
                                format!(
                                    "{}: `{}: read` verified{public_note}; the write level of a {} cannot be read without sending a write",
                                    p.describe(),
                                    need.perm,
                                    kind.describe()
                                ),
                                confirm,
                            ));
                        }
                    }
                    Some(p) => self.checks.push(Check::unknown(
                        "github.permission",
                        subject,
                        format!(
                            "{}: the read that proves `{}: read` did not succeed (see the target's check)",
                            p.describe(),
                            need.perm
                        ),
                        confirm,
                    )),
                    None if need.perm == "workflows" => self.checks.push(Check::unknown(
                        "github.permission",
                        subject,
                        format!(
                            "a {}'s `workflows` permission has no read level: it cannot be read without sending a write",
                            kind.describe()
                        ),
                        confirm,
                    )),
                    None => self.checks.push(Check::unknown(
                        "github.permission",
                        subject,
                        format!(
                            "not verified: nothing under {on} could be read to prove `{}: read` (see the target's check)",
                            need.perm
                        ),
                        confirm,
                    )),
                }
            }
        }
    }

    /// A target read that answered 403: the permission check names the cause.
    fn refused_target(&mut self, check: &str, subject: String, a: &Answer) {
        self.checks.push(Check::unknown(
            check,
            subject,
            format!("{}: not readable with this credential", a.describe()),
            "grant the permission `github.permission` names, then rehearse again",
        ));
    }
}

async fn get(c: &GitHubClient, path: &str) -> Answer {
    // Preflight only ever reads.
    let rec = c.record("GET", path);
    Answer {
        path: path.to_string(),
        r: c.answer(&rec).await,
    }
}

fn input_fail(action: &str, e: ActionError) -> Vec<Check> {
    vec![Check::fail(
        "github.input",
        action,
        e.to_string(),
        "fix the step's inputs",
    )]
}

fn key_id(a: &Answer) -> String {
    match &a.json()["key_id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_public(repo: Option<&Value>) -> bool {
    repo.is_some_and(|r| r["private"].as_bool() == Some(false))
}

/// The checks for writing (or deleting) Actions secret `name` in `scope`: what
/// `github.set_actions_secret`, `github.delete_actions_secret` and a `credentials.rotate`
/// GitHub destination need.
pub(crate) async fn secret_destination_checks(
    ctx: &ActionCtx,
    scope: &Scope,
    name: &str,
) -> Vec<Check> {
    let needs: Vec<Need> = match scope {
        Scope::Repo { .. } => vec![write("secrets")],
        Scope::Env { .. } => vec![write("environments"), write("secrets")],
        Scope::Org { .. } => vec![write("organization_secrets")],
    };
    let mut s = match Session::open(ctx, &needs).await {
        Ok(s) => s,
        Err(checks) => return checks,
    };
    if let Err(e) = check_name(name) {
        s.checks.push(Check::fail(
            "github.secret",
            format!("secret {name} in {}", scope.label()),
            e.to_string(),
            "rename it: letters, digits and `_`, not starting with a digit or GITHUB_",
        ));
    }
    let repo = match scope {
        Scope::Repo { owner, name } | Scope::Env { owner, name, .. } => {
            let r = s.repository(owner, name, true).await;
            if r.is_none() {
                // Nothing under a repository that cannot be read can be checked.
                for n in &needs {
                    s.permission(*n, &scope.label(), None, false);
                }
                return s.finish();
            }
            r
        }
        Scope::Org { .. } => None,
    };
    let key = s.get(&format!("{}/public-key", scope.path())).await;
    // The environment or organisation exists when its secrets key can be read.
    let target = match scope {
        Scope::Repo { .. } => None,
        Scope::Env { owner, name, env } => Some((
            "github.environment",
            format!("environment {env} of {owner}/{name}"),
            format!(
                "create the environment {env} in {owner}/{name} (Settings → Environments), or fix `environment`"
            ),
        )),
        Scope::Org { org } => Some((
            "github.org",
            format!("organisation {org}"),
            format!(
                "check `org`; {}",
                match s.cred {
                    Cred::Grants(_) =>
                        "a fine-grained token must have the organisation as its resource owner",
                    Cred::App { .. } => "the App must be installed on the organisation",
                    Cred::Classic(_) => "the token's owner must be an owner of the organisation",
                }
            ),
        )),
    };
    if let Some((check, subject, fix)) = target {
        match key.status() {
            Some(200) => s.checks.push(Check::pass(
                check,
                subject,
                format!(
                    "{}: its Actions secrets key is readable (key_id {})",
                    key.describe(),
                    key_id(&key)
                ),
            )),
            Some(404) => s.checks.push(Check::fail(
                check,
                subject,
                format!(
                    "{}: it does not exist, or the credential cannot see it",
                    key.describe()
                ),
                fix,
            )),
            Some(403) => s.refused_target(check, subject, &key),
            _ => s.checks.push(Check::unknown(
                check,
                subject,
                key.describe(),
                "rehearse again once GitHub answers",
            )),
        }
    }
    let public = is_public(repo.as_ref());
    for n in &needs {
        s.permission(*n, &scope.label(), Some(&key), public);
    }
    s.finish()
}

/// `github.set_actions_secret` / `github.delete_actions_secret`.
pub(crate) async fn secret(ctx: &ActionCtx, inputs: &Value, action: &str) -> Vec<Check> {
    let scope = match Scope::from_inputs(inputs) {
        Ok(s) => s,
        Err(e) => return input_fail(action, e),
    };
    let name = match str_input(inputs, "name") {
        Ok(n) => n.trim().to_string(),
        Err(e) => return input_fail(action, e),
    };
    secret_destination_checks(ctx, &scope, &name).await
}

/// `github.disable_workflow` / `github.enable_workflow`.
pub(crate) async fn workflow(
    ctx: &ActionCtx,
    inputs: &Value,
    action: &str,
    wf: Result<String, ActionError>,
    wanted: &str,
) -> Vec<Check> {
    let ((owner, name), wf) = match (repo_input(inputs), wf) {
        (Ok(r), Ok(w)) => (r, w),
        (Err(e), _) | (_, Err(e)) => return input_fail(action, e),
    };
    let need = write("actions");
    let mut s = match Session::open(ctx, &[need]).await {
        Ok(s) => s,
        Err(checks) => return checks,
    };
    let on = format!("{owner}/{name}");
    let Some(repo) = s.repository(&owner, &name, true).await else {
        s.permission(need, &on, None, false);
        return s.finish();
    };
    let a = s
        .get(&format!("/repos/{owner}/{name}/actions/workflows/{wf}"))
        .await;
    s.permission(need, &on, Some(&a), is_public(Some(&repo)));
    let subject = format!("workflow {wf} of {on}");
    match a.status() {
        Some(200) => {
            let v = a.json();
            let state = v["state"].as_str().unwrap_or("?");
            let then = if state == wanted {
                format!("already {wanted}: nothing would be sent")
            } else {
                format!("would become {wanted}")
            };
            s.checks.push(Check::pass(
                "github.workflow",
                subject,
                format!(
                    "{}: {} (id {}) is {state}; {then}",
                    a.describe(),
                    v["path"].as_str().unwrap_or("?"),
                    v["id"]
                ),
            ));
        }
        Some(404) => s.checks.push(Check::fail(
            "github.workflow",
            subject,
            format!("{}: no such workflow", a.describe()),
            format!(
                "check `workflow`: a file name in .github/workflows of {on}'s default branch, or the workflow's numeric id"
            ),
        )),
        Some(403) => s.refused_target("github.workflow", subject, &a),
        _ => s.checks.push(Check::unknown(
            "github.workflow",
            subject,
            a.describe(),
            "rehearse again once GitHub answers",
        )),
    }
    s.finish()
}

/// `github.mark_release`.
pub(crate) async fn release(ctx: &ActionCtx, inputs: &Value, action: &str) -> Vec<Check> {
    let parsed = (|| {
        Ok::<_, ActionError>((
            repo_input(inputs)?,
            str_input(inputs, "tag")?.trim().to_string(),
            bool_input(inputs, "missing_ok", false)?,
            opt_str_input(inputs, "latest_tag")?.map(|t| t.trim().to_string()),
        ))
    })();
    let ((owner, name), tag, missing_ok, latest_tag) = match parsed {
        Ok(p) => p,
        Err(e) => return input_fail(action, e),
    };
    let need = write("contents");
    let mut s = match Session::open(ctx, &[need]).await {
        Ok(s) => s,
        Err(checks) => return checks,
    };
    let on = format!("{owner}/{name}");
    let Some(repo) = s.repository(&owner, &name, true).await else {
        s.permission(need, &on, None, false);
        return s.finish();
    };
    let public = is_public(Some(&repo));
    let base = format!("/repos/{owner}/{name}/releases");
    let a = s.get(&format!("{base}/tags/{}", seg(&tag))).await;
    // A missing release proves nothing about the permission: read the list instead.
    let list = if a.status() == Some(404) {
        s.probe(&format!("{base}?per_page=1")).await
    } else {
        None
    };
    s.permission(need, &on, Some(list.as_ref().unwrap_or(&a)), public);
    let subject = format!("release {tag} of {on}");
    match a.status() {
        Some(200) => {
            let v = a.json();
            let immutable = v["immutable"].as_bool() == Some(true);
            s.checks.push(Check::pass(
                "github.release",
                subject,
                format!(
                    "{}: release id {}, prerelease: {}{}",
                    a.describe(),
                    v["id"],
                    v["prerelease"],
                    if immutable {
                        "; immutable — Recall sends only `body`, `prerelease` and `make_latest`, which GitHub accepts on an immutable release"
                    } else {
                        ""
                    }
                ),
            ));
        }
        Some(404) if missing_ok => s.checks.push(Check::pass(
            "github.release",
            subject,
            format!(
                "{}: no published release has this tag; `missing_ok: true`, so the step records that and succeeds",
                a.describe()
            ),
        )),
        Some(404) => s.checks.push(Check::fail(
            "github.release",
            subject,
            format!("{}: no published release has this tag", a.describe()),
            "check `tag` (a draft release is not found by its tag), or set `missing_ok: true` when a version may have no GitHub release",
        )),
        Some(403) => s.refused_target("github.release", subject, &a),
        _ => s.checks.push(Check::unknown(
            "github.release",
            subject,
            a.describe(),
            "rehearse again once GitHub answers",
        )),
    }
    if let Some(good) = latest_tag {
        let g = s.get(&format!("{base}/tags/{}", seg(&good))).await;
        let subject = format!("release {good} of {on} (to make latest)");
        match g.status() {
            Some(200) => {
                let v = g.json();
                if v["prerelease"].as_bool() == Some(true) || v["draft"].as_bool() == Some(true) {
                    s.checks.push(Check::fail(
                        "github.release",
                        subject,
                        format!(
                            "{}: it is a draft or a prerelease, which cannot be latest",
                            g.describe()
                        ),
                        "name a published, non-prerelease release in `latest_tag`",
                    ));
                } else {
                    s.checks.push(Check::pass(
                        "github.release",
                        subject,
                        format!("{}: published, not a prerelease", g.describe()),
                    ));
                }
            }
            Some(404) => s.checks.push(Check::fail(
                "github.release",
                subject,
                format!("{}: no published release has this tag", g.describe()),
                "check `latest_tag`",
            )),
            Some(403) => s.refused_target("github.release", subject, &g),
            _ => s.checks.push(Check::unknown(
                "github.release",
                subject,
                g.describe(),
                "rehearse again once GitHub answers",
            )),
        }
    }
    s.finish()
}

/// `github.draft_advisory`.
pub(crate) async fn advisory(ctx: &ActionCtx, inputs: &Value, action: &str) -> Vec<Check> {
    let (owner, name) = match repo_input(inputs) {
        Ok(r) => r,
        Err(e) => return input_fail(action, e),
    };
    let need = write("repository_advisories");
    one_permission(ctx, &owner, &name, need, "security-advisories?per_page=1").await
}

/// `github.open_issue`.
pub(crate) async fn issue(ctx: &ActionCtx, inputs: &Value, action: &str) -> Vec<Check> {
    let (owner, name) = match repo_input(inputs) {
        Ok(r) => r,
        Err(e) => return input_fail(action, e),
    };
    one_permission(ctx, &owner, &name, write("issues"), "issues?per_page=1").await
}

/// The repository, and one permission proven (fine-grained) with `GET /repos/o/r/{probe}`.
async fn one_permission(
    ctx: &ActionCtx,
    owner: &str,
    name: &str,
    need: Need,
    probe: &str,
) -> Vec<Check> {
    let mut s = match Session::open(ctx, &[need]).await {
        Ok(s) => s,
        Err(checks) => return checks,
    };
    let on = format!("{owner}/{name}");
    let Some(repo) = s.repository(owner, name, true).await else {
        s.permission(need, &on, None, false);
        return s.finish();
    };
    if need.perm == "issues" && repo["has_issues"].as_bool() == Some(false) {
        s.checks.push(Check::fail(
            "github.repository",
            format!("issues of {on}"),
            "has_issues: false — GitHub refuses new issues (410 Gone)",
            format!("enable Issues in {on} (Settings → General → Features), or open the follow-up elsewhere"),
        ));
    }
    let p = s.probe(&format!("/repos/{owner}/{name}/{probe}")).await;
    s.permission(need, &on, p.as_ref(), is_public(Some(&repo)));
    s.finish()
}

/// `github.open_pull_request`.
pub(crate) async fn pull_request(ctx: &ActionCtx, inputs: &Value, action: &str) -> Vec<Check> {
    let parsed = (|| {
        Ok::<_, ActionError>((
            repo_input(inputs)?,
            opt_str_input(inputs, "base")?.map(|b| b.trim().to_string()),
        ))
    })();
    let ((owner, name), base) = match parsed {
        Ok(p) => p,
        Err(e) => return input_fail(action, e),
    };
    let touches_workflows = inputs["files"].as_object().is_some_and(|m| {
        m.keys()
            .any(|p| p.trim_start_matches("./").starts_with(".github/workflows/"))
    });
    let mut needs = vec![write("contents"), write("pull_requests")];
    if touches_workflows {
        needs.push(write("workflows"));
    }
    let mut s = match Session::open(ctx, &needs).await {
        Ok(s) => s,
        Err(checks) => return checks,
    };
    let on = format!("{owner}/{name}");
    let Some(repo) = s.repository(&owner, &name, true).await else {
        for n in &needs {
            s.permission(*n, &on, None, false);
        }
        return s.finish();
    };
    let public = is_public(Some(&repo));
    let base = base.unwrap_or_else(|| {
        repo["default_branch"]
            .as_str()
            .unwrap_or("main")
            .to_string()
    });
    let b = s
        .get(&format!(
            "/repos/{owner}/{name}/git/ref/heads/{}",
            base.split('/').map(seg).collect::<Vec<_>>().join("/")
        ))
        .await;
    let subject = format!("base branch {base} of {on}");
    match b.status() {
        Some(200) => s.checks.push(Check::pass(
            "github.branch",
            subject,
            format!(
                "{}: at {}",
                b.describe(),
                b.json()["object"]["sha"].as_str().unwrap_or("?")
            ),
        )),
        Some(404) => s.checks.push(Check::fail(
            "github.branch",
            subject,
            format!("{}: no such branch", b.describe()),
            "check `base` (default: the repository's default branch)",
        )),
        Some(403) => s.refused_target("github.branch", subject, &b),
        _ => s.checks.push(Check::unknown(
            "github.branch",
            subject,
            b.describe(),
            "rehearse again once GitHub answers",
        )),
    }
    let pulls = s
        .probe(&format!("/repos/{owner}/{name}/pulls?per_page=1"))
        .await;
    // A missing base proves nothing about `contents`: read the default branch instead.
    let default_ref = match (b.status(), repo["default_branch"].as_str()) {
        (Some(404), Some(d)) if d != base => {
            s.probe(&format!("/repos/{owner}/{name}/git/ref/heads/{}", seg(d)))
                .await
        }
        _ => None,
    };
    for n in &needs {
        let probe = match n.perm {
            "contents" if b.status() != Some(404) => Some(&b),
            "contents" => default_ref.as_ref(),
            "pull_requests" => pulls.as_ref(),
            _ => None,
        };
        s.permission(*n, &on, probe, public);
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_header_forms() {
        let t = parse_expiry("2025-07-01 12:30:00 UTC").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-07-01T12:30:00+00:00");
        let t = parse_expiry("2025-07-01 12:30:00 -0700").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-07-01T19:30:00+00:00");
        assert!(parse_expiry("next tuesday").is_none());
        let now = parse_expiry("2025-07-01 00:00:00 UTC").unwrap();
        let d = |days: i64| now + chrono::Duration::days(days);
        assert_eq!(expiry_verdict(d(-1), now), Some(Impact::Blocks));
        assert_eq!(expiry_verdict(now, now), Some(Impact::Blocks));
        assert_eq!(expiry_verdict(d(3), now), Some(Impact::Degrades));
        assert_eq!(expiry_verdict(d(EXPIRY_WARN_DAYS), now), None);
        assert_eq!(expiry_verdict(d(90), now), None);
    }

    #[test]
    fn classic_scopes_grant_permissions() {
        let have = parse_scopes("repo, workflow");
        assert_eq!(have.len(), 2);
        let ok = |perm: &str, public: bool| {
            classic_scopes(perm, public)
                .iter()
                .any(|s| scope_granted(&have, s))
        };
        assert!(ok("secrets", false));
        assert!(ok("actions", false));
        assert!(ok("workflows", false));
        assert!(ok("issues", true));
        assert!(!ok("organization_secrets", false));
        let public_only = parse_scopes("public_repo");
        assert!(
            classic_scopes("issues", true)
                .iter()
                .any(|s| scope_granted(&public_only, s))
        );
        assert!(
            !classic_scopes("secrets", true)
                .iter()
                .any(|s| scope_granted(&public_only, s)),
            "Actions secrets need `repo` even on a public repository"
        );
        assert!(scope_granted(&parse_scopes("admin:org"), "read:org"));
        assert!(parse_scopes("").is_empty());
    }

    #[test]
    fn levels_order() {
        assert!(Level::parse("write").unwrap() >= Level::Read);
        assert!(Level::parse("read").unwrap() < Level::Write);
        assert_eq!(Level::parse("admin"), Some(Level::Write));
        assert_eq!(Level::parse("none"), None);
        assert_eq!(
            needs_text(&[write("actions"), write("pull_requests")]),
            "`Actions: Read and write`, `Pull requests: Read and write`"
        );
    }
}
