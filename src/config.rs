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
            reconcile_grace: "2s".into(),
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
        ] {
            parse_duration_ms(d).map_err(|e| ConfigError::Invalid(format!("{what}: {e}")))?;
        }
        if cfg.engine.concurrency == 0 {
            return Err(ConfigError::Invalid(
                "engine.concurrency must be >= 1".into(),
            ));
        }
        Ok(cfg)
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
}
