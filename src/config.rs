//! Configuration (`--config FILE`, TOML). Secrets are never inline: a config names the env
//! var or file that holds each one.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("config {path}:{message}")]
    Parse { path: String, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub npm: NpmConfig,
    pub engine: EngineConfig,
    pub approvals: ApprovalsConfig,
    /// Approver groups: `release-admins = ["alice", "bob"]`, used by `approval.from`.
    pub groups: BTreeMap<String, Vec<String>>,
    pub gate: GateConfig,
    pub crates: CratesConfig,
    pub pypi: PypiConfig,
    pub oci: OciConfig,
    pub kube: KubeConfig,
    pub server: ServerConfig,
    pub api: ApiConfig,
    pub slack: SlackConfig,
    pub auth: AuthConfig,
    pub github: GitHubConfig,
    pub credentials: CredentialsConfig,
    /// `[[gameday]]`: game days `recall serve` runs on a schedule.
    pub gameday: Vec<GamedayConfig>,
}

/// `[[gameday]]`: a game day `recall serve` runs on a cron schedule (UTC), posting the
/// report's summary to Slack. Checked at load (name, cron); the target must resolve when
/// `recall serve` starts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GamedayConfig {
    /// Unique; the rehearsal is started by `game-day:<name>`.
    pub name: String,
    /// A scenario or playbook, name or file, as `recall gameday run` takes it.
    pub target: String,
    /// Params (strings, numbers, booleans or lists of strings); override a scenario's.
    pub params: BTreeMap<String, toml::Value>,
    /// `minute hour day-of-month month day-of-week`, UTC (see `gameday::schedule`).
    pub cron: String,
    /// Slack channel for the summary; default `[slack] channel`.
    pub channel: Option<String>,
    pub enabled: bool,
}

impl Default for GamedayConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            target: String::new(),
            params: BTreeMap::new(),
            cron: String::new(),
            channel: None,
            enabled: true,
        }
    }
}

impl GamedayConfig {
    /// The params as `KEY=VALUE` strings (what `--param` gives): a list becomes its JSON
    /// array, which a `list` param takes as is. Validated at load, so nothing is dropped.
    pub fn raw_params(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .filter_map(|(k, v)| param_text(v).map(|t| (k.clone(), t)))
            .collect()
    }
}

fn param_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(|l| serde_json::Value::from(l).to_string()),
        _ => None,
    }
}

/// Names are unique; each entry has a target and a cron expression that parses.
fn validate_gamedays(list: &[GamedayConfig]) -> Result<(), ConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, g) in list.iter().enumerate() {
        if g.name.trim().is_empty() {
            return Err(ConfigError::Invalid(format!(
                "[[gameday]] #{}: name is required",
                i + 1
            )));
        }
        let who = format!("[[gameday]] {:?}", g.name);
        if !seen.insert(g.name.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "{who}: name {:?} is used by another [[gameday]] entry",
                g.name
            )));
        }
        if g.target.trim().is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{who}: target is required (a scenario or playbook, name or file)"
            )));
        }
        if g.cron.trim().is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{who}: cron is required (minute hour day-of-month month day-of-week, UTC)"
            )));
        }
        crate::gameday::schedule::Cron::parse(&g.cron)
            .map_err(|e| ConfigError::Invalid(format!("{who}: cron {:?}: {e}", g.cron)))?;
        if g.channel.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err(ConfigError::Invalid(format!(
                "{who}: channel is empty (leave it out for [slack] channel)"
            )));
        }
        for (k, v) in &g.params {
            if param_text(v).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "{who}: params.{k}: expected a string, a number, a boolean or a list of strings"
                )));
            }
        }
    }
    Ok(())
}

/// `[server]`: `recall serve`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// Largest request body accepted.
    pub max_body_kib: usize,
    /// Every route answers within this (Slack's own deadline is 3 s).
    pub request_timeout: String,
    /// On SIGTERM: how long in-flight steps get to finish before the process exits (their
    /// attempts are on disk; the next start reconciles them).
    pub shutdown_grace: String,
    /// Log as JSON lines.
    pub log_json: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_kib: 256,
            request_timeout: "10s".into(),
            shutdown_grace: "20s".into(),
            log_json: true,
        }
    }
}

/// `[api]`: bearer tokens for the JSON API. The env var (or file) holds `name=token`
/// pairs separated by commas or newlines; the name is the caller's identity.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub tokens_env: Option<String>,
    pub tokens_file: Option<String>,
}

/// `[slack]`: the Slack app.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    pub signing_secret_env: Option<String>,
    pub signing_secret_file: Option<String>,
    pub bot_token_env: Option<String>,
    pub bot_token_file: Option<String>,
    /// Web API base; tests and proxies override it.
    pub api_url: String,
    /// Where incidents started outside Slack (API) are posted; slash commands post where
    /// they were typed.
    pub channel: Option<String>,
    /// `thread` (default): a thread in the channel; `channel`: a new channel per incident.
    pub thread_mode: String,
    /// How often the outbox looks for something to post.
    pub poll: String,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self {
            signing_secret_env: Some("SLACK_SIGNING_SECRET".into()),
            signing_secret_file: None,
            bot_token_env: Some("SLACK_BOT_TOKEN".into()),
            bot_token_file: None,
            api_url: "https://slack.com/api/".into(),
            channel: None,
            thread_mode: "thread".into(),
            poll: "500ms".into(),
        }
    }
}

/// `[auth]`: who may do what, from Slack, the API and the CLI alike. Entries are
/// `user:ID` (a Slack user id, an API token's name, or a CLI user) or `group:NAME` from
/// `[groups]`. Empty `starters`: anyone authenticated may start a rehearsal.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Who may start incidents (rehearsals included).
    pub starters: Vec<String>,
    /// Who may start live incidents. Empty: nobody from Slack or the API (the CLI is
    /// governed by who can run it).
    pub live_starters: Vec<String>,
}

impl AuthConfig {
    /// Does `who` match any of `rules` (`user:` / `group:` entries)?
    pub fn matches(rules: &[String], who: &str, groups: &[String]) -> bool {
        rules.iter().any(|r| {
            if let Some(u) = r.strip_prefix("user:") {
                u == who
            } else if let Some(g) = r.strip_prefix("group:") {
                groups.iter().any(|x| x == g)
            } else {
                r == who
            }
        })
    }
}

/// `[github]`: the GitHub (or GitHub Enterprise) REST API. Authentication is a
/// fine-grained token (`token_env`/`token_file`) or a GitHub App installation (`app_id`,
/// `installation_id` and the App's private key in `app_key_env`/`app_key_file`), whose
/// short-lived installation tokens are minted and renewed as needed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitHubConfig {
    /// `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_url: String,
    /// Sent as `X-GitHub-Api-Version` on every request.
    pub api_version: String,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub app_id: Option<u64>,
    pub installation_id: Option<u64>,
    pub app_key_env: Option<String>,
    pub app_key_file: Option<String>,
    /// Per-request timeout.
    pub timeout: String,
    /// Longest `Retry-After` (secondary rate limit) waited out in place; a longer one
    /// fails the attempt as transient, for the step's retry policy.
    pub rate_limit_max_wait: String,
}

impl Default for GitHubConfig {
    fn default() -> Self {
        Self {
            api_url: "https://api.github.com".into(),
            api_version: "2022-11-28".into(),
            token_env: Some("GITHUB_TOKEN".into()),
            token_file: None,
            app_id: None,
            installation_id: None,
            app_key_env: None,
            app_key_file: None,
            timeout: "30s".into(),
            rate_limit_max_wait: "60s".into(),
        }
    }
}

/// `[credentials]`: `credentials.rotate`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialsConfig {
    /// Env var holding the staging key: a new credential is kept, sealed with it, in the
    /// database between "minted" and "written everywhere", so a crash in between resumes
    /// with the same value instead of minting another.
    pub staging_key_env: Option<String>,
    pub staging_key_file: Option<String>,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        Self {
            staging_key_env: Some("RECALL_STAGING_KEY".into()),
            staging_key_file: None,
        }
    }
}

/// `[kube]`: the Kubernetes clusters Recall acts on (admission deny list, running-pod
/// sweeps, Secret rotation). Credentials come from each cluster's kubeconfig or in-cluster
/// service account, never from this file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeConfig {
    /// Namespace of Recall's deny-list ConfigMaps and of the admission canary.
    pub namespace: String,
    /// Server-side apply field manager Recall writes as.
    pub field_manager: String,
    /// Per-request timeout.
    pub timeout: String,
    /// Page size for list calls (`limit`, followed by `continue`).
    pub page_size: u32,
    pub clusters: Vec<ClusterConfig>,
}

impl Default for KubeConfig {
    fn default() -> Self {
        Self {
            namespace: "recall-system".into(),
            field_manager: "recall".into(),
            timeout: "30s".into(),
            page_size: 500,
            clusters: Vec::new(),
        }
    }
}

/// Admission dialects a cluster can run.
pub const DIALECTS: &[&str] = &[
    "validating-admission-policy",
    "kyverno",
    "sigstore-policy-controller",
];

/// `[[kube.clusters]]`: one cluster, reached through a kubeconfig context or, when Recall
/// runs inside it, its service account.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The name used in step items, outputs and the timeline.
    pub name: String,
    /// Kubeconfig file; default `$KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig: Option<String>,
    /// Context in that kubeconfig; default its current context.
    pub context: Option<String>,
    /// Use the pod's service account instead of a kubeconfig.
    pub in_cluster: bool,
    /// `validating-admission-policy` (default), `kyverno` or `sigstore-policy-controller`.
    pub dialect: String,
    /// Also deny the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets,
    /// Jobs and CronJobs (VAP dialect; Kyverno does this itself through autogen).
    pub workloads: bool,
    /// After enforcing, prove it: a server-side dry-run create of a Pod with the bad digest
    /// must be refused.
    pub canary: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kubeconfig: None,
            context: None,
            in_cluster: false,
            dialect: "validating-admission-policy".into(),
            workloads: true,
            canary: true,
        }
    }
}

/// The deletion gate (`[gate]`). Every field can only make the engine's gate stricter: the
/// window is at most 72 hours and at least one approval is always required.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    /// Deletion window after the registry's publish time (at most 72h).
    pub window: String,
    /// Distinct approvers every deletion needs (at least 1).
    pub approvals: u32,
    /// Who may approve deletions: `user:NAME` / `group:NAME`. Empty: whoever the step's
    /// `approval.from` names.
    pub approvers: Vec<String>,
    /// An approval older than this at the moment of deletion no longer counts.
    pub approval_ttl: String,
    /// Compliance classes: targets matching a rule are never deleted.
    pub retention: Vec<RetentionConfig>,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            window: "72h".into(),
            approvals: 1,
            approvers: Vec::new(),
            approval_ttl: "4h".into(),
            retention: Vec::new(),
        }
    }
}

/// `[[gate.retention]]`: a named compliance class. `match` holds globs over target labels
/// (`npm:NAME@VERSION`, `crates:NAME@VERSION`, `oci:HOST/REPO@DIGEST`,
/// `oci-tag:HOST/REPO:TAG`, `digest:sha256:…`); `tags`, `digests` and `packages` are
/// shorthands for the common cases.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    pub name: String,
    #[serde(rename = "match")]
    pub patterns: Vec<String>,
    /// Tag globs, e.g. `v*`: any image carrying such a tag is retained.
    pub tags: Vec<String>,
    /// Exact digests (`sha256:…`), e.g. deployed release digests.
    pub digests: Vec<String>,
    /// Package globs in `ecosystem:name@version` form, e.g. `npm:@acme/*`.
    pub packages: Vec<String>,
}

impl RetentionConfig {
    /// The rule as label globs.
    pub fn patterns(&self) -> Vec<String> {
        let mut out = self.patterns.clone();
        out.extend(self.tags.iter().map(|t| format!("oci-tag:*:{t}")));
        out.extend(self.digests.iter().map(|d| format!("digest:{d}")));
        out.extend(self.packages.iter().cloned());
        out
    }
}

/// `[crates]`: a cargo registry web API (crates.io or a private registry).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CratesConfig {
    /// API base, e.g. `https://crates.io`.
    pub api: String,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub timeout: String,
}

impl Default for CratesConfig {
    fn default() -> Self {
        Self {
            api: "https://crates.io".into(),
            token_env: Some("CARGO_REGISTRY_TOKEN".into()),
            token_file: None,
            timeout: "30s".into(),
        }
    }
}

/// `[pypi]`: the index read to verify yanks, and the web UI people yank in.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PypiConfig {
    /// JSON and Simple API base, e.g. `https://pypi.org`.
    pub api: String,
    /// Web UI base for the manage links, e.g. `https://pypi.org`.
    pub web: String,
    pub timeout: String,
}

impl Default for PypiConfig {
    fn default() -> Self {
        Self {
            api: "https://pypi.org".into(),
            web: "https://pypi.org".into(),
            timeout: "30s".into(),
        }
    }
}

/// `[oci]`: container registries.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OciConfig {
    /// Hosts (`host[:port]`) spoken to over plain HTTP: local mirrors and tests only.
    pub insecure: Vec<String>,
    /// OCI registries keep no publish time. `refuse` (default): the deletion gate refuses
    /// a digest deletion; `allow`: the window check is skipped and recorded as exempt.
    pub publish_time: String,
    pub timeout: String,
    /// Credentials per registry host: `[oci.auth."ghcr.io"]`.
    pub auth: BTreeMap<String, OciAuthConfig>,
}

impl Default for OciConfig {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            publish_time: "refuse".into(),
            timeout: "30s".into(),
            auth: BTreeMap::new(),
        }
    }
}

/// Basic credentials (`username` + password from env/file), or a static bearer token.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OciAuthConfig {
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NpmConfig {
    pub registry: String,
    /// Name of the env var holding Recall's npm token.
    pub token_env: Option<String>,
    /// Or a file holding it.
    pub token_file: Option<String>,
    /// Env var holding a one-time password for accounts with 2FA on writes.
    pub otp_env: Option<String>,
    /// Per-request timeout.
    pub timeout: String,
}

impl Default for NpmConfig {
    fn default() -> Self {
        Self {
            registry: "https://registry.npmjs.org".into(),
            token_env: Some("NPM_TOKEN".into()),
            token_file: None,
            otp_env: None,
            timeout: "30s".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Attempts in flight at once across the incident.
    pub concurrency: usize,
    /// Fan-out concurrency of a `for_each` step that sets none.
    pub default_fanout: u32,
    /// How long a runner's claim on an incident lasts without renewal.
    pub lease_ttl: String,
    /// After a crash, how long to wait before trusting a probe's "not done" (a request sent
    /// just before the crash may still be landing).
    pub reconcile_grace: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            default_fanout: 16,
            lease_ttl: "15s".into(),
            reconcile_grace: "5s".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    pub allow_self_approval: bool,
    pub timeout: String,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            allow_self_approval: false,
            timeout: "24h".into(),
        }
    }
}

impl Config {
    pub fn load(path: Option<&str>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &str, text: &str) -> Result<Self, ConfigError> {
        // Report the message and position only: toml's own Display quotes the source line,
        // which could carry a secret someone pasted inline.
        let cfg: Self = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let before = text.get(..s.start).unwrap_or("");
                    let line = before.matches('\n').count() + 1;
                    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    format!("{line}:{col}: ")
                })
                .unwrap_or_default();
            ConfigError::Parse {
                path: path.to_string(),
                message: format!("{at}{}", e.message().trim()),
            }
        })?;
        // Validate durations now, so a bad config fails before an incident starts.
        for (what, d) in [
            ("npm.timeout", &cfg.npm.timeout),
            ("engine.lease_ttl", &cfg.engine.lease_ttl),
            ("engine.reconcile_grace", &cfg.engine.reconcile_grace),
            ("approvals.timeout", &cfg.approvals.timeout),
            ("gate.window", &cfg.gate.window),
            ("gate.approval_ttl", &cfg.gate.approval_ttl),
            ("crates.timeout", &cfg.crates.timeout),
            ("pypi.timeout", &cfg.pypi.timeout),
            ("oci.timeout", &cfg.oci.timeout),
            ("kube.timeout", &cfg.kube.timeout),
            ("server.request_timeout", &cfg.server.request_timeout),
            ("server.shutdown_grace", &cfg.server.shutdown_grace),
            ("slack.poll", &cfg.slack.poll),
            ("github.timeout", &cfg.github.timeout),
            (
                "github.rate_limit_max_wait",
                &cfg.github.rate_limit_max_wait,
            ),
        ] {
            parse_duration_ms(d).map_err(|e| ConfigError::Invalid(format!("{what}: {e}")))?;
        }
        let window = parse_duration_ms(&cfg.gate.window).unwrap_or(u64::MAX);
        if window == 0 || window as i64 > crate::engine::gate::MAX_WINDOW_MS {
            return Err(ConfigError::Invalid(format!(
                "gate.window = {:?}: the deletion window is at most 72h (npm's) and more than 0",
                cfg.gate.window
            )));
        }
        if cfg.gate.approvals == 0 {
            return Err(ConfigError::Invalid(
                "gate.approvals must be >= 1: a deletion always needs an explicit approval".into(),
            ));
        }
        // Who-may rules: `user:NAME` or `group:NAME`, everywhere.
        for (what, list) in [
            ("gate.approvers", &cfg.gate.approvers),
            ("auth.starters", &cfg.auth.starters),
            ("auth.live_starters", &cfg.auth.live_starters),
        ] {
            for a in list {
                let ok = a
                    .strip_prefix("user:")
                    .or_else(|| a.strip_prefix("group:"))
                    .is_some_and(|n| !n.trim().is_empty());
                if !ok {
                    return Err(ConfigError::Invalid(format!(
                        "{what}: {a:?} is not `user:NAME` or `group:NAME`"
                    )));
                }
            }
        }
        for (i, r) in cfg.gate.retention.iter().enumerate() {
            if r.name.trim().is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "gate.retention[{i}] needs a `name` (it is quoted in every refusal)"
                )));
            }
            if r.patterns().is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "gate.retention `{}` matches nothing: give `match`, `tags`, `digests` or `packages`",
                    r.name
                )));
            }
        }
        if !matches!(cfg.oci.publish_time.as_str(), "refuse" | "allow") {
            return Err(ConfigError::Invalid(format!(
                "oci.publish_time = {:?}: expected \"refuse\" or \"allow\"",
                cfg.oci.publish_time
            )));
        }
        for (host, a) in &cfg.oci.auth {
            let pw = a.password_env.is_some() || a.password_file.is_some();
            let tok = a.token_env.is_some() || a.token_file.is_some();
            if tok && (pw || a.username.is_some()) || pw && a.username.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "oci.auth.\"{host}\": give `username` with `password_env`/`password_file`, or `token_env`/`token_file`"
                )));
            }
        }
        cfg.kube.validate()?;
        let gh = &cfg.github;
        if gh.app_id.is_some() != gh.installation_id.is_some()
            || (gh.app_id.is_some() && gh.app_key_env.is_none() && gh.app_key_file.is_none())
        {
            return Err(ConfigError::Invalid(
                "github: a GitHub App needs `app_id`, `installation_id` and `app_key_env` or `app_key_file` together".into(),
            ));
        }
        if !url::Url::parse(&gh.api_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(ConfigError::Invalid(format!(
                "github.api_url = {:?}: expected an http(s) URL",
                gh.api_url
            )));
        }
        if !matches!(cfg.slack.thread_mode.as_str(), "thread" | "channel") {
            return Err(ConfigError::Invalid(format!(
                "slack.thread_mode = {:?}: expected \"thread\" or \"channel\"",
                cfg.slack.thread_mode
            )));
        }
        validate_gamedays(&cfg.gameday)?;
        if cfg.engine.concurrency == 0 {
            return Err(ConfigError::Invalid(
                "engine.concurrency must be >= 1".into(),
            ));
        }
        Ok(cfg)
    }

    /// The engine's gate policy from `[gate]` (validated at load).
    pub fn gate_policy(&self) -> crate::engine::gate::GatePolicy {
        let ms = |s: &str, d: i64| parse_duration_ms(s).map(|v| v as i64).unwrap_or(d);
        let dflt = crate::engine::gate::GatePolicy::default();
        crate::engine::gate::GatePolicy {
            window_ms: ms(&self.gate.window, dflt.window_ms).min(dflt.window_ms),
            approvals: self.gate.approvals.max(1),
            approvers: self.gate.approvers.clone(),
            approval_ttl_ms: ms(&self.gate.approval_ttl, dflt.approval_ttl_ms),
            retention: self
                .gate
                .retention
                .iter()
                .map(|r| crate::engine::gate::RetentionRule {
                    name: r.name.clone(),
                    patterns: r.patterns(),
                })
                .collect(),
        }
    }

    /// The groups a person belongs to.
    pub fn groups_of(&self, person: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, members)| members.iter().any(|m| m == person))
            .map(|(g, _)| g.clone())
            .collect()
    }
}

pub use crate::duration::parse_duration_ms;

impl KubeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let dns1123 = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        if !dns1123(&self.namespace) {
            return Err(ConfigError::Invalid(format!(
                "kube.namespace = {:?} is not a valid namespace name",
                self.namespace
            )));
        }
        if self.field_manager.trim().is_empty() || self.field_manager.len() > 128 {
            return Err(ConfigError::Invalid(
                "kube.field_manager must be 1 to 128 characters".into(),
            ));
        }
        if self.page_size == 0 {
            return Err(ConfigError::Invalid("kube.page_size must be >= 1".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in self.clusters.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "kube.clusters[{i}] needs a `name`"
                )));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "kube.clusters: `{}` is configured twice",
                    c.name
                )));
            }
            if !DIALECTS.contains(&c.dialect.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "kube.clusters `{}`: dialect {:?} is not one of {}",
                    c.name,
                    c.dialect,
                    DIALECTS.join(", ")
                )));
            }
            if c.in_cluster && (c.kubeconfig.is_some() || c.context.is_some()) {
                return Err(ConfigError::Invalid(format!(
                    "kube.clusters `{}`: `in_cluster` uses the service account; drop `kubeconfig`/`context`",
                    c.name
                )));
            }
        }
        Ok(())
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_unknown_keys_and_inline_tokens() {
        let err = Config::parse("c.toml", "[npm]\ntoken = \"abc\"\n").unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
        let ok = Config::parse(
            "c.toml",
            "[npm]\nregistry = \"http://127.0.0.1:4873\"\ntoken_env = \"T\"\n[groups]\nrelease-admins = [\"alice\"]\n",
        )
        .unwrap();
        assert_eq!(ok.groups_of("alice"), vec!["release-admins".to_string()]);
    }

    #[test]
    fn gameday_entries_are_checked_at_load() {
        let ok = Config::parse(
            "c.toml",
            r#"
[[gameday]]
name = "nightly"
target = "ua-parser-js-2021"
cron = "0 3 * * mon-fri"
channel = "C0GAMEDAYS"
params = { package = "left-pad", versions = ["1.0.0", "1.0.1"], retries = 2, live = false }

[[gameday]]
name = "weekly"
target = "playbooks/mine.yaml"
cron = "30 4 * * 0"
enabled = false
"#,
        )
        .unwrap();
        assert_eq!(ok.gameday.len(), 2);
        assert!(ok.gameday[0].enabled && !ok.gameday[1].enabled);
        assert_eq!(ok.gameday[1].channel, None);
        assert_eq!(
            ok.gameday[0].raw_params(),
            vec![
                ("live".to_string(), "false".to_string()),
                ("package".to_string(), "left-pad".to_string()),
                ("retries".to_string(), "2".to_string()),
                ("versions".to_string(), r#"["1.0.0","1.0.1"]"#.to_string()),
            ]
        );
        let bad = |entries: &str| {
            Config::parse("c.toml", entries)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| panic!("accepted: {entries}"))
        };
        assert_eq!(
            bad("[[gameday]]\nname = \"nightly\"\ntarget = \"x\"\ncron = \"61 * * * *\"\n"),
            r#"config: [[gameday]] "nightly": cron "61 * * * *": minute 61 out of 0-59"#
        );
        let twice = "[[gameday]]\nname = \"a\"\ntarget = \"x\"\ncron = \"* * * * *\"\n";
        let e = bad(&format!("{twice}{twice}"));
        assert!(
            e.contains(r#"[[gameday]] "a": name "a" is used by another"#),
            "{e}"
        );
        let e = bad("[[gameday]]\ntarget = \"x\"\ncron = \"* * * * *\"\n");
        assert!(e.contains("[[gameday]] #1: name is required"), "{e}");
        let e = bad("[[gameday]]\nname = \"n\"\ncron = \"* * * * *\"\n");
        assert!(e.contains(r#"[[gameday]] "n": target is required"#), "{e}");
        let e = bad("[[gameday]]\nname = \"n\"\ntarget = \"x\"\n");
        assert!(e.contains(r#"[[gameday]] "n": cron is required"#), "{e}");
        let e = bad("[[gameday]]\nname = \"n\"\ntarget = \"x\"\ncron = \"* * * *\"\n");
        assert!(e.contains("expected 5 fields"), "{e}");
        let e = bad(
            "[[gameday]]\nname = \"n\"\ntarget = \"x\"\ncron = \"* * * * *\"\nchannel = \" \"\n",
        );
        assert!(e.contains(r#""n": channel is empty"#), "{e}");
        let e = bad(
            "[[gameday]]\nname = \"n\"\ntarget = \"x\"\ncron = \"* * * * *\"\nparams = { x = 1.5 }\n",
        );
        assert!(e.contains(r#""n": params.x"#), "{e}");
        let e = bad(
            "[[gameday]]\nname = \"n\"\ntarget = \"x\"\ncron = \"* * * * *\"\nparams = { x = [1, 2] }\n",
        );
        assert!(e.contains(r#""n": params.x"#), "{e}");
        let e = bad(
            "[[gameday]]\nname = \"n\"\ntarget = \"x\"\ncron = \"* * * * *\"\nwhen = \"now\"\n",
        );
        assert!(e.contains("when"), "{e}");
    }
}
