//! `github.draft_advisory`: a *draft* repository security advisory with the ecosystem,
//! package, affected versions and patched versions of the incident. Publishing (and
//! requesting a CVE) stays a human act on GitHub: Recall never changes an advisory's state.
//!
//! Exactly once: the description carries the step's marker, and the drafts are searched
//! for it before one is created.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{REPO, client, credential, marker, plan_failed, read, repo_input, would};
use crate::actions::preflight::Check;
use crate::actions::{
    Action, ActionCtx, ActionError, ActionOutput, Probe, list_input, opt_str_input, str_input,
};
use crate::config::Config;
use crate::net::github::GitHubClient;
use crate::playbook::{ActionSpec, InputSpec, InputType};

static DRAFT_ADVISORY: ActionSpec = ActionSpec {
    name: "github.draft_advisory",
    summary: "Draft a repository security advisory (never published by Recall).",
    inputs: &[
        REPO,
        InputSpec {
            name: "ecosystem",
            ty: InputType::String,
            required: true,
            help: "npm, pypi/pip, crates/rust, maven, nuget, go, rubygems, composer, …",
        },
        InputSpec {
            name: "package",
            ty: InputType::String,
            required: true,
            help: "the package name as its registry spells it",
        },
        InputSpec {
            name: "affected",
            ty: InputType::Any,
            required: true,
            help: "affected versions: a list of exact versions, or one range like `>= 1.0.0, < 1.0.2`",
        },
        InputSpec {
            name: "patched",
            ty: InputType::Any,
            required: false,
            help: "fixed versions (list or string); for a list of affected versions, each gets the lowest patched version above it in its major",
        },
        InputSpec {
            name: "summary",
            ty: InputType::String,
            required: true,
            help: "one-line title",
        },
        InputSpec {
            name: "description",
            ty: InputType::String,
            required: true,
            help: "Markdown description",
        },
        InputSpec {
            name: "severity",
            ty: InputType::String,
            required: false,
            help: "critical, high (default), medium or low",
        },
        InputSpec {
            name: "cwe_ids",
            ty: InputType::List,
            required: false,
            help: "e.g. CWE-506 (embedded malicious code)",
        },
    ],
    outputs: &["ghsa_id", "html_url", "state", "created"],
    mutating: true,
    destructive: false,
};

/// GitHub's advisory ecosystem for the names playbooks use.
pub fn ecosystem(s: &str) -> Result<&'static str, ActionError> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "npm" => "npm",
        "pypi" | "pip" | "python" => "pip",
        "crates" | "cargo" | "rust" | "crates.io" => "rust",
        "maven" => "maven",
        "nuget" => "nuget",
        "go" | "golang" => "go",
        "rubygems" | "gem" => "rubygems",
        "composer" | "packagist" => "composer",
        "erlang" | "hex" => "erlang",
        "actions" => "actions",
        "pub" => "pub",
        "swift" => "swift",
        "other" | "oci" | "docker" => "other",
        o => {
            return Err(ActionError::Input(format!(
                "`ecosystem` = {o:?}: not an ecosystem GitHub advisories know"
            )));
        }
    })
}

fn versions(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(s)) if !s.trim().is_empty() => vec![s.trim().to_string()],
        _ => Vec::new(),
    }
}

fn is_exact(v: &str) -> bool {
    semver::Version::parse(v.trim_start_matches('v')).is_ok()
}

/// An npm-style range (`>=1.2.9 <1.3.0`) in GitHub's advisory syntax (`>= 1.2.9, < 1.3.0`).
pub fn github_range(r: &str) -> Result<String, ActionError> {
    if r.contains("||") {
        return Err(ActionError::Input(format!(
            "`affected` = {r:?}: one advisory range cannot say `||`; list the exact versions"
        )));
    }
    let mut parts = Vec::new();
    for tok in r.split([',', ' ']).filter(|t| !t.is_empty()) {
        let op_len = tok
            .find(|c: char| c.is_ascii_alphanumeric())
            .unwrap_or(tok.len());
        let (op, v) = tok.split_at(op_len);
        match (op, v.is_empty()) {
            (">=" | "<=" | ">" | "<" | "=", false) => parts.push(format!("{op} {v}")),
            // A version after a lone operator (`>= 1.0.0`): joined with it below.
            ("", false) => parts.push(v.to_string()),
            ("" | ">=" | "<=" | ">" | "<" | "=", true) if !op.is_empty() => {
                parts.push(op.to_string())
            }
            _ => {
                return Err(ActionError::Input(format!(
                    "`affected` = {r:?}: expected comparators like `>= 1.0.0, < 1.0.2`"
                )));
            }
        }
    }
    // `>= 1.0.0` may arrive as two tokens: join an operator with the version after it.
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        match out.last_mut() {
            Some(last) if matches!(last.as_str(), ">=" | "<=" | ">" | "<" | "=") => {
                *last = format!("{last} {p}");
            }
            _ => out.push(p),
        }
    }
    if out.is_empty() || out.iter().any(|p| !p.contains(' ')) {
        return Err(ActionError::Input(format!(
            "`affected` = {r:?}: expected comparators like `>= 1.0.0, < 1.0.2`"
        )));
    }
    Ok(out.join(", "))
}

/// The `vulnerabilities` entries: one per exact affected version (with its patched version
/// when one is known), or one entry for a range.
pub fn vulnerabilities(
    eco: &str,
    package: &str,
    affected: &[String],
    patched: &[String],
) -> Result<Vec<Value>, ActionError> {
    if affected.is_empty() {
        return Err(ActionError::Input("`affected` is empty".into()));
    }
    let pkg = json!({ "ecosystem": eco, "name": package });
    if affected.len() == 1 && !is_exact(&affected[0]) {
        return Ok(vec![json!({
            "package": pkg,
            "vulnerable_version_range": github_range(&affected[0])?,
            "patched_versions": (!patched.is_empty()).then(|| patched.join(", ")),
        })]);
    }
    let parsed_patched: Vec<semver::Version> = patched
        .iter()
        .filter_map(|p| semver::Version::parse(p.trim_start_matches('v')).ok())
        .collect();
    affected
        .iter()
        .map(|a| {
            let v = semver::Version::parse(a.trim_start_matches('v')).map_err(|_| {
                ActionError::Input(format!(
                    "`affected`: {a:?} is not a version (give a list of versions or one range)"
                ))
            })?;
            let fix = parsed_patched
                .iter()
                .filter(|p| p.major == v.major && **p > v)
                .min()
                .map(|p| p.to_string())
                .or_else(|| (patched.len() == 1).then(|| patched[0].clone()));
            Ok(json!({
                "package": pkg,
                "vulnerable_version_range": format!("= {a}"),
                "patched_versions": fix,
            }))
        })
        .collect()
}

pub struct DraftAdvisory;

impl DraftAdvisory {
    fn body(ctx: &ActionCtx, inputs: &Value) -> Result<Value, ActionError> {
        let eco = ecosystem(str_input(inputs, "ecosystem")?)?;
        let package = str_input(inputs, "package")?.trim();
        let vulns = vulnerabilities(
            eco,
            package,
            &versions(inputs.get("affected")),
            &versions(inputs.get("patched")),
        )?;
        let severity = opt_str_input(inputs, "severity")?.unwrap_or("high");
        if !matches!(severity, "critical" | "high" | "medium" | "low") {
            return Err(ActionError::Input(format!(
                "`severity` = {severity:?}: expected critical, high, medium or low"
            )));
        }
        let cwes = list_input(inputs, "cwe_ids")?;
        for c in &cwes {
            if !c.starts_with("CWE-") || c[4..].parse::<u32>().is_err() {
                return Err(ActionError::Input(format!(
                    "`cwe_ids`: {c:?} is not like CWE-506"
                )));
            }
        }
        Ok(json!({
            "summary": str_input(inputs, "summary")?.trim(),
            "description": format!("{}\n\n{}", str_input(inputs, "description")?.trim_end(), marker(ctx)),
            "vulnerabilities": vulns,
            "severity": severity,
            "cwe_ids": cwes,
        }))
    }

    /// The advisory this step already drafted, found by its marker.
    async fn existing(
        ctx: &ActionCtx,
        c: &GitHubClient,
        repo: &str,
    ) -> Result<Option<Value>, ActionError> {
        let m = marker(ctx);
        let all = c
            .list(
                &format!("{repo}/security-advisories?sort=created&direction=desc"),
                None,
            )
            .await
            .map_err(read)?;
        Ok(all
            .into_iter()
            .find(|a| a["description"].as_str().is_some_and(|d| d.contains(&m))))
    }

    fn outputs(a: &Value, created: bool) -> Value {
        json!({ "ghsa_id": a["ghsa_id"], "html_url": a["html_url"], "state": a["state"], "created": created })
    }
}

#[async_trait]
impl Action for DraftAdvisory {
    fn spec(&self) -> &'static ActionSpec {
        &DRAFT_ADVISORY
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        super::preflight::advisory(ctx, inputs, self.spec().name).await
    }

    fn credential(&self, config: &Config, _inputs: &Value) -> Option<String> {
        credential(config)
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let (owner, name) = repo_input(inputs)?;
        let repo = format!("/repos/{owner}/{name}");
        let body = Self::body(ctx, inputs)?;
        let c = client(ctx)?;
        if let Some(a) = Self::existing(ctx, &c, &repo).await? {
            return Ok(ActionOutput::new(
                Self::outputs(&a, false),
                format!(
                    "advisory {} was already drafted by this step ({})",
                    a["ghsa_id"].as_str().unwrap_or("?"),
                    a["state"].as_str().unwrap_or("?")
                ),
            ));
        }
        let rec = c
            .record("POST", &format!("{repo}/security-advisories"))
            .with_json(body);
        ctx.ensure_live(&rec)?;
        let a = c.execute(&rec, None).await?.json()?;
        if a["state"].as_str() != Some("draft") {
            return Err(ActionError::Failed(format!(
                "GitHub created advisory {} in state {:?}, not draft",
                a["ghsa_id"], a["state"]
            )));
        }
        Ok(ActionOutput::new(
            Self::outputs(&a, true),
            format!(
                "drafted advisory {} for {owner}/{name}: publish it on GitHub when ready ({})",
                a["ghsa_id"].as_str().unwrap_or("?"),
                a["html_url"].as_str().unwrap_or_default()
            ),
        )
        .with("requests", json!([super::record_json(&rec)])))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let (owner, name) = repo_input(inputs)?;
        let repo = format!("/repos/{owner}/{name}");
        let body = Self::body(ctx, inputs)?;
        let c = client(ctx)?;
        match Self::existing(ctx, &c, &repo).await {
            Ok(Some(a)) => Ok(would(
                Self::outputs(&a, false),
                &[],
                "the advisory is already drafted",
            )),
            Ok(None) => Ok(would(
                json!({ "ghsa_id": null, "html_url": null, "state": "draft", "created": true }),
                &[c.record("POST", &format!("{repo}/security-advisories"))
                    .with_json(body)],
                "",
            )),
            Err(e) => plan_failed(e, "list the repository's security advisories"),
        }
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let (owner, name) = repo_input(inputs)?;
        let c = client(ctx)?;
        Ok(
            match Self::existing(ctx, &c, &format!("/repos/{owner}/{name}")).await {
                Ok(Some(a)) => Probe::Done {
                    outputs: Self::outputs(&a, true),
                    evidence: json!({ "ghsa_id": a["ghsa_id"] }),
                },
                Ok(None) => Probe::NotDone {
                    evidence: json!({ "advisory": "none carries this step's marker" }),
                },
                Err(e) => Probe::Unknown {
                    reason: e.to_string(),
                },
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affected_versions_pair_with_their_fix() {
        let v = vulnerabilities(
            "npm",
            "ua-parser-js",
            &["0.7.29".into(), "0.8.0".into(), "1.0.0".into()],
            &["0.7.30".into(), "0.8.1".into(), "1.0.1".into()],
        )
        .unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["vulnerable_version_range"], "= 0.7.29");
        assert_eq!(v[0]["patched_versions"], "0.7.30");
        assert_eq!(v[1]["patched_versions"], "0.8.1");
        assert_eq!(v[2]["patched_versions"], "1.0.1");
        let r = vulnerabilities(
            "rust",
            "foo",
            &[">= 1.0.0, < 1.0.2".into()],
            &["1.0.2".into()],
        )
        .unwrap();
        assert_eq!(r[0]["vulnerable_version_range"], ">= 1.0.0, < 1.0.2");
        assert_eq!(r[0]["patched_versions"], "1.0.2");
        assert!(vulnerabilities("npm", "x", &[], &[]).is_err());
        assert_eq!(github_range(">=1.2.9 <1.3.0").unwrap(), ">= 1.2.9, < 1.3.0");
        assert_eq!(
            github_range(">= 1.0.0, < 1.0.2").unwrap(),
            ">= 1.0.0, < 1.0.2"
        );
        assert!(github_range("1.x || 2.x").is_err());
        assert!(github_range("~1.2.3").is_err());
        assert!(vulnerabilities("npm", "x", &["1.0.0".into(), "nope".into()], &[]).is_err());
        assert_eq!(ecosystem("PyPI").unwrap(), "pip");
        assert_eq!(ecosystem("crates").unwrap(), "rust");
        assert!(ecosystem("cobol").is_err());
    }
}
