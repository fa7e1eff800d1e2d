//! The playbook library and game-day scenarios shipped inside the binary, so `recall` works
//! from any directory. A file path always wins over a bundled name.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

pub const PLAYBOOKS: &[(&str, &str)] = &[
    (
        "npm-compromised-release",
        include_str!("../playbooks/npm-compromised-release.yaml"),
    ),
    (
        "npm-account-compromise",
        include_str!("../playbooks/npm-account-compromise.yaml"),
    ),
    (
        "crate-compromised-release",
        include_str!("../playbooks/crate-compromised-release.yaml"),
    ),
    (
        "pypi-compromised-release",
        include_str!("../playbooks/pypi-compromised-release.yaml"),
    ),
    (
        "image-leaked-secret",
        include_str!("../playbooks/image-leaked-secret.yaml"),
    ),
    (
        "leaked-publish-token",
        include_str!("../playbooks/leaked-publish-token.yaml"),
    ),
];

pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "ua-parser-js-2021",
        include_str!("../playbooks/scenarios/ua-parser-js-2021.yaml"),
    ),
    (
        "coa-rc-2021",
        include_str!("../playbooks/scenarios/coa-rc-2021.yaml"),
    ),
    (
        "solana-web3js-2024",
        include_str!("../playbooks/scenarios/solana-web3js-2024.yaml"),
    ),
    (
        "ultralytics-2024",
        include_str!("../playbooks/scenarios/ultralytics-2024.yaml"),
    ),
    (
        "event-stream-2018",
        include_str!("../playbooks/scenarios/event-stream-2018.yaml"),
    ),
    (
        "leaked-secret-image",
        include_str!("../playbooks/scenarios/leaked-secret-image.yaml"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no playbook file or bundled playbook named `{name}` (bundled: {known})")]
    Playbook { name: String, known: String },
    #[error("no scenario file or bundled scenario named `{name}` (bundled: {known})")]
    Scenario { name: String, known: String },
    #[error("cannot read `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("scenario `{name}`: {reason}")]
    BadScenario { name: String, reason: String },
}

fn read(path: &str) -> Result<Option<Vec<u8>>, LookupError> {
    let p = std::path::Path::new(path);
    if !p.is_file() {
        return Ok(None);
    }
    // Refuse absurd files before reading them whole (the parser has its own limit too).
    if p.metadata().map(|m| m.len()).unwrap_or(0) > 16 * 1024 * 1024 {
        return Err(LookupError::Read {
            path: path.into(),
            reason: "larger than 16 MiB".into(),
        });
    }
    std::fs::read(p).map(Some).map_err(|e| LookupError::Read {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Resolve a playbook by path, by `playbooks/<name>.yaml`, or by bundled name.
/// Returns (display file name, bytes).
pub fn playbook(name: &str) -> Result<(String, Vec<u8>), LookupError> {
    if let Some(b) = read(name)? {
        return Ok((name.to_string(), b));
    }
    let local = format!("playbooks/{name}.yaml");
    if let Some(b) = read(&local)? {
        return Ok((local, b));
    }
    PLAYBOOKS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| (format!("bundled:{n}.yaml"), text.as_bytes().to_vec()))
        .ok_or_else(|| LookupError::Playbook {
            name: name.into(),
            known: PLAYBOOKS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[derive(Debug, Deserialize)]
pub struct Scenario {
    #[serde(default)]
    pub incident: String,
    #[serde(default)]
    pub ecosystem: String,
    pub playbook: String,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    #[serde(default)]
    pub expect: Vec<String>,
}

impl Scenario {
    /// The scenario's params as `--param KEY=VALUE` pairs (lists as JSON).
    pub fn raw_params(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect()
    }
}

pub fn scenario(name: &str) -> Result<Scenario, LookupError> {
    let text = match read(name)? {
        Some(b) => String::from_utf8(b).map_err(|_| LookupError::BadScenario {
            name: name.into(),
            reason: "not UTF-8".into(),
        })?,
        None => SCENARIOS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.to_string())
            .ok_or_else(|| LookupError::Scenario {
                name: name.into(),
                known: SCENARIOS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?,
    };
    serde_saphyr::from_str(&text).map_err(|e| LookupError::BadScenario {
        name: name.into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::Registry;

    /// Every shipped playbook lints clean against the real action catalog, and every
    /// shipped scenario names a shipped playbook whose params it satisfies.
    #[test]
    fn bundled_playbooks_and_scenarios_are_valid() {
        let registry = Registry::builtin();
        for (name, text) in PLAYBOOKS {
            let parsed = crate::playbook::parse(name, text.as_bytes(), &registry);
            assert!(parsed.is_ok(), "{name}: {:?}", parsed.err());
        }
        for (name, _) in SCENARIOS {
            let sc = scenario(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            let (file, bytes) = playbook(&sc.playbook).unwrap_or_else(|e| panic!("{name}: {e}"));
            let (pb, _) = crate::playbook::parse(&file, &bytes, &registry)
                .unwrap_or_else(|d| panic!("{name}: {d}"));
            let bound = crate::playbook::bind_params(&pb, &sc.raw_params());
            assert!(bound.is_ok(), "{name}: {:?}", bound.err());
        }
    }
}
