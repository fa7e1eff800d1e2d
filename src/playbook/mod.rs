//! Playbook language: YAML → typed, validated [`Playbook`] with
//! `file:line:col` diagnostics.
//!
//! Loading goes YAML bytes → spanned node tree (`yaml`) → typed model
//! (`validate`), collecting every diagnostic rather than stopping early.

mod params;
mod schema;
mod validate;
mod yaml;

use std::fmt;

use serde::Serialize;

use crate::expr::{EvalContext, EvalError, Reference, Template};

pub use params::bind_params;
pub use schema::json_schema;
pub use validate::{MAX_PARAMS, MAX_STEPS, STEP_KEYS, parse};
pub use yaml::{MAX_INPUT_BYTES, MAX_YAML_DEPTH};

/// 1-based source position (column counted in characters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Loc {
    pub line: u64,
    pub col: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: u64,
    pub col: u64,
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {sev}: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

/// A batch of diagnostics (errors and warnings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    List,
    Int,
    Bool,
}

impl ParamType {
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::List => "list",
            ParamType::Int => "int",
            ParamType::Bool => "bool",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamDef {
    pub name: String,
    pub ty: ParamType,
    pub required: bool,
    pub default: Option<serde_json::Value>,
    pub description: Option<String>,
    pub loc: Loc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    Exponential,
    Fixed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Total tries, >= 1.
    pub attempts: u32,
    pub backoff: Backoff,
    pub initial_ms: u64,
    pub max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 1,
            backoff: Backoff::Exponential,
            initial_ms: 1_000,
            max_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalSpec {
    pub count: u32,
    /// Entries like `group:release-admins` or `user:alice`.
    pub from: Vec<String>,
}

/// A `with:` / `for_each:` value: literals stay literal, strings with
/// `${{ }}` become templates, collections are walked.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueTemplate {
    Literal(serde_json::Value),
    Template(Template),
    List(Vec<ValueTemplate>),
    Map(Vec<(String, ValueTemplate)>),
}

impl ValueTemplate {
    pub fn eval(&self, ctx: &EvalContext) -> Result<serde_json::Value, EvalError> {
        Ok(match self {
            ValueTemplate::Literal(v) => v.clone(),
            ValueTemplate::Template(t) => t.eval(ctx)?,
            ValueTemplate::List(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| i.eval(ctx))
                    .collect::<Result<_, _>>()?,
            ),
            ValueTemplate::Map(kv) => serde_json::Value::Object(
                kv.iter()
                    .map(|(k, v)| Ok((k.clone(), v.eval(ctx)?)))
                    .collect::<Result<_, EvalError>>()?,
            ),
        })
    }

    pub fn references(&self) -> Vec<Reference> {
        match self {
            ValueTemplate::Literal(_) => Vec::new(),
            ValueTemplate::Template(t) => t.references(),
            ValueTemplate::List(items) => items.iter().flat_map(|i| i.references()).collect(),
            ValueTemplate::Map(kv) => kv.iter().flat_map(|(_, v)| v.references()).collect(),
        }
    }
}

impl Serialize for ValueTemplate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            ValueTemplate::Literal(v) => v.serialize(s),
            ValueTemplate::Template(t) => t.serialize(s),
            ValueTemplate::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            ValueTemplate::Map(kv) => {
                let mut map = s.serialize_map(Some(kv.len()))?;
                for (k, v) in kv {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDef {
    pub id: String,
    pub name: Option<String>,
    pub uses: String,
    /// `with:` entries in source order.
    pub with: Vec<(String, ValueTemplate)>,
    pub needs: Vec<String>,
    /// `if:`; `None` means the default `success()`. A bare expression such
    /// as `always()` is stored as the template `${{ always() }}`.
    pub if_: Option<Template>,
    pub for_each: Option<ValueTemplate>,
    /// Only with `for_each`, 1..=256.
    pub concurrency: Option<u32>,
    pub retry: RetryPolicy,
    pub timeout_ms: Option<u64>,
    pub continue_on_error: bool,
    pub approval: Option<ApprovalSpec>,
    /// `gate.window`: a narrower deletion window than the engine's 72 hours (never wider).
    pub gate_window_ms: Option<i64>,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Playbook {
    pub name: String,
    pub description: String,
    pub params: Vec<ParamDef>,
    pub steps: Vec<StepDef>,
    /// The exact source text.
    pub source: String,
    /// Hex SHA-256 of the exact source bytes.
    pub sha256: String,
}

impl Playbook {
    pub fn step(&self, id: &str) -> Option<&StepDef> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn param(&self, name: &str) -> Option<&ParamDef> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Step indices in dependency order; ties keep file order. Steps caught
    /// in a cycle (impossible after validation) are appended in file order.
    pub fn topo_order(&self) -> Vec<usize> {
        let n = self.steps.len();
        let index_of = |id: &str| self.steps.iter().position(|s| s.id == id);
        let mut indegree = vec![0usize; n];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, s) in self.steps.iter().enumerate() {
            for need in &s.needs {
                if let Some(j) = index_of(need) {
                    if let Some(d) = indegree.get_mut(i) {
                        *d += 1;
                    }
                    if let Some(list) = dependents.get_mut(j) {
                        list.push(i);
                    }
                }
            }
        }
        let mut done = vec![false; n];
        let mut order = Vec::with_capacity(n);
        // O(n^2) selection of the lowest ready index keeps file order stable;
        // n is capped at MAX_STEPS.
        loop {
            let next = (0..n).find(|&i| {
                !done.get(i).copied().unwrap_or(true) && indegree.get(i).copied() == Some(0)
            });
            let Some(i) = next else { break };
            if let Some(d) = done.get_mut(i) {
                *d = true;
            }
            order.push(i);
            for &k in dependents.get(i).map(Vec::as_slice).unwrap_or_default() {
                if let Some(d) = indegree.get_mut(k) {
                    *d = d.saturating_sub(1);
                }
            }
        }
        order.extend((0..n).filter(|&i| !done.get(i).copied().unwrap_or(true)));
        order
    }
}

/// Declared type of an action input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    String,
    List,
    Int,
    Bool,
    Map,
    Any,
}

impl InputType {
    pub fn name(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::List => "list",
            InputType::Int => "int",
            InputType::Bool => "bool",
            InputType::Map => "map",
            InputType::Any => "any",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InputSpec {
    pub name: &'static str,
    pub ty: InputType,
    pub required: bool,
    pub help: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ActionSpec {
    pub name: &'static str,
    pub summary: &'static str,
    pub inputs: &'static [InputSpec],
    pub outputs: &'static [&'static str],
    pub mutating: bool,
    pub destructive: bool,
}

/// Supplied by the caller; the actions themselves live elsewhere.
pub trait ActionCatalog {
    fn spec(&self, name: &str) -> Option<&ActionSpec>;
    fn names(&self) -> Vec<&'static str>;
}

/// Documentation of the keys a step accepts, for editor help / `--explain`.
pub fn step_key_docs() -> &'static [(&'static str, &'static str)] {
    &[
        ("id", "unique step id, [a-z0-9_-]+ (required)"),
        ("name", "human-readable name"),
        ("uses", "action to run, e.g. npm.deprecate (required)"),
        ("with", "action inputs; strings may contain ${{ expr }}"),
        (
            "needs",
            "step id or list of step ids that must finish first",
        ),
        (
            "if",
            "condition: ${{ expr }} or a bare expression; default success()",
        ),
        (
            "for_each",
            "list (or ${{ expr }} yielding a list) to run the step once per item, exposed as `item`",
        ),
        ("concurrency", "max parallel items for for_each, 1..=256"),
        (
            "retry",
            "{ attempts: 1..=20, backoff: exponential|fixed, initial: 1s, max: 60s }",
        ),
        ("timeout", "duration like 500ms, 30s, 2m, 1h"),
        (
            "continue-on-error",
            "true to keep going when this step fails",
        ),
        (
            "approval",
            "{ count: N, from: [group:NAME | user:NAME, ...] }",
        ),
    ]
}

#[cfg(test)]
mod tests;
