//! Node tree → typed [`Playbook`], collecting every diagnostic.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::yaml::{self, Node, NodeKind};
use super::{
    ActionCatalog, ActionSpec, ApprovalSpec, Backoff, Diagnostic, Diagnostics, InputType, Loc,
    ParamDef, ParamType, Playbook, RetryPolicy, Severity, StepDef, ValueTemplate,
};
use crate::expr::{BARE_PREFIX, Expr, ExprError, Reference, Template, parse_template};

/// Max steps per playbook.
mod graph;
mod steps;

pub const MAX_STEPS: usize = 500;
/// Max params per playbook.
pub const MAX_PARAMS: usize = 64;

const TOP_KEYS: &[&str] = &["name", "description", "params", "steps"];
const PARAM_KEYS: &[&str] = &["type", "required", "default", "description"];
/// Keys a step accepts.
pub const STEP_KEYS: &[&str] = &[
    "id",
    "name",
    "uses",
    "with",
    "needs",
    "if",
    "for_each",
    "concurrency",
    "retry",
    "timeout",
    "continue-on-error",
    "approval",
    "gate",
];
const RETRY_KEYS: &[&str] = &["attempts", "backoff", "initial", "max"];
const APPROVAL_KEYS: &[&str] = &["count", "from"];
const GATE_KEYS: &[&str] = &["window"];

/// Parses and validates a playbook. On success returns it with any warnings;
/// otherwise every diagnostic found (errors and warnings), sorted by position.
pub fn parse(
    file: &str,
    bytes: &[u8],
    catalog: &dyn ActionCatalog,
) -> Result<(Playbook, Vec<super::Diagnostic>), Diagnostics> {
    let mut cx = Cx {
        file,
        source: "",
        diags: Vec::new(),
    };
    let root = match yaml::load(bytes) {
        Ok(root) => root,
        Err(e) => {
            cx.push(Severity::Error, e.loc, e.message, e.help);
            return Err(Diagnostics(cx.diags));
        }
    };
    // `load` has verified UTF-8 already.
    cx.source = std::str::from_utf8(bytes).unwrap_or_default();
    let pb = cx.playbook(&root, catalog);
    cx.diags.sort_by_key(|d| (d.line, d.col));
    let has_errors = cx.diags.iter().any(Diagnostic::is_error);
    match pb {
        Some(mut pb) if !has_errors => {
            pb.source = cx.source.to_string();
            pb.sha256 = hex::encode(Sha256::digest(bytes));
            Ok((pb, cx.diags))
        }
        _ => Err(Diagnostics(cx.diags)),
    }
}

struct Cx<'a> {
    file: &'a str,
    source: &'a str,
    diags: Vec<Diagnostic>,
}

/// A context reference found in a step, with its resolved source position.
struct RefSite {
    path: Vec<String>,
    loc: Loc,
    /// Which field it came from, since `for_each` itself may not use `item`.
    in_for_each: bool,
}

/// Per-step facts needed by the cross-step checks.
struct StepInfo {
    refs: Vec<RefSite>,
    needs_locs: Vec<Loc>,
    has_for_each: bool,
}

fn help(s: impl Into<String>) -> Option<String> {
    Some(s.into())
}

impl Cx<'_> {
    fn push(&mut self, severity: Severity, loc: Loc, message: String, help: Option<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            line: loc.line,
            col: loc.col,
            severity,
            message,
            help,
        });
    }

    fn error(&mut self, loc: Loc, message: impl Into<String>, help: Option<String>) {
        self.push(Severity::Error, loc, message.into(), help);
    }

    fn warn(&mut self, loc: Loc, message: impl Into<String>, help: Option<String>) {
        self.push(Severity::Warning, loc, message.into(), help);
    }

    /// Mapping entries keyed by string; reports non-string and duplicate keys
    /// (the YAML layer also rejects duplicates; this is a second line).
    fn entries<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
    ) -> Option<Vec<(&'n str, &'n Node, &'n Node)>> {
        let NodeKind::Map(kv) = &node.kind else {
            self.error(
                node.loc,
                format!("{what} must be a mapping, found {}", node.type_name()),
                None,
            );
            return None;
        };
        let mut seen: HashMap<&str, Loc> = HashMap::new();
        let mut out = Vec::new();
        for (k, v) in kv {
            let Some(key) = k.as_str() else {
                self.error(
                    k.loc,
                    format!("keys of {what} must be strings, found {}", k.type_name()),
                    None,
                );
                continue;
            };
            if let Some(first) = seen.get(key) {
                self.error(
                    k.loc,
                    format!("duplicate key `{key}` in {what}"),
                    help(format!("`{key}` is already set at line {}", first.line)),
                );
                continue;
            }
            seen.insert(key, k.loc);
            out.push((key, k, v));
        }
        Some(out)
    }

    fn unknown_key(&mut self, key: &str, loc: Loc, what: &str, known: &[&str]) {
        let h = match closest(key, known.iter().copied()) {
            Some(c) => format!("did you mean `{c}`? known keys: {}", known.join(", ")),
            None => format!("known keys: {}", known.join(", ")),
        };
        self.error(loc, format!("unknown key `{key}` in {what}"), Some(h));
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Str(s) => Some(s.clone()),
            _ => {
                self.error(
                    node.loc,
                    format!("{what} must be a string, found {}", node.type_name()),
                    None,
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.kind {
            NodeKind::Bool(b) => Some(b),
            _ => {
                self.error(
                    node.loc,
                    format!("{what} must be true or false, found {}", node.type_name()),
                    help("write `true` or `false` without quotes"),
                );
                None
            }
        }
    }

    fn int_in(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<u32> {
        match node.kind {
            NodeKind::Int(i) if (min..=max).contains(&i) => u32::try_from(i).ok(),
            NodeKind::Int(i) => {
                self.error(
                    node.loc,
                    format!("{what} must be between {min} and {max}, got {i}"),
                    None,
                );
                None
            }
            _ => {
                self.error(
                    node.loc,
                    format!("{what} must be an integer, found {}", node.type_name()),
                    None,
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<u64> {
        let parsed = node.as_str().and_then(parse_duration);
        if parsed.is_none() {
            let shown = match &node.kind {
                NodeKind::Str(s) => format!("`{s}`"),
                _ => node.type_name().to_string(),
            };
            self.error(
                node.loc,
                format!("{what} must be a duration, got {shown}"),
                help("use a number with a unit: 500ms, 30s, 2m, 1h"),
            );
        }
        parsed
    }

    /// Position of byte `offset` inside a string scalar's text. Exact for
    /// single-line plain and simply-quoted scalars; otherwise the scalar start.
    fn loc_in_scalar(&self, node: &Node, offset: usize) -> Loc {
        let Some(text) = node.as_str() else {
            return node.loc;
        };
        let (Some(byte), Some(prefix)) = (node.byte, text.get(..offset)) else {
            return node.loc;
        };
        if text.contains('\n') {
            return node.loc;
        }
        let raw = self.source.get(byte..).unwrap_or_default();
        let shift = if raw.starts_with(text) {
            0
        } else if (raw.starts_with('\'') || raw.starts_with('"'))
            && raw.get(1..).is_some_and(|r| r.starts_with(text))
        {
            1
        } else {
            return node.loc;
        };
        Loc {
            line: node.loc.line,
            col: node.loc.col + shift + prefix.chars().count() as u64,
        }
    }

    fn expr_error(&mut self, node: &Node, e: &ExprError, base: usize) {
        let loc = self.loc_in_scalar(node, e.offset.saturating_add(base));
        self.error(
            loc,
            format!("invalid expression: {}", e.message),
            help("see the expression syntax: ${{ params.NAME }}, ${{ steps.ID.outputs.KEY }}, functions like contains(), format()"),
        );
    }

    /// Builds a value template, recording reference sites.
    fn value_template(
        &mut self,
        node: &Node,
        refs: &mut Vec<RefSite>,
        in_for_each: bool,
    ) -> Option<ValueTemplate> {
        match &node.kind {
            NodeKind::Str(s) => {
                let t = match parse_template(s) {
                    Ok(t) => t,
                    Err(e) => {
                        self.expr_error(node, &e, 0);
                        return None;
                    }
                };
                if t.is_literal() {
                    return Some(ValueTemplate::Literal(Value::String(s.clone())));
                }
                self.record_refs(node, &t.references(), 0, refs, in_for_each);
                Some(ValueTemplate::Template(t))
            }
            NodeKind::Seq(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for i in items {
                    match self.value_template(i, refs, in_for_each) {
                        Some(v) => out.push(v),
                        None => ok = false,
                    }
                }
                ok.then_some(ValueTemplate::List(out))
            }
            NodeKind::Map(_) => {
                let entries = self.entries(node, "a value mapping")?;
                let mut out = Vec::new();
                let mut ok = true;
                for (k, _, v) in entries {
                    match self.value_template(v, refs, in_for_each) {
                        Some(v) => out.push((k.to_string(), v)),
                        None => ok = false,
                    }
                }
                ok.then_some(ValueTemplate::Map(out))
            }
            _ => Some(ValueTemplate::Literal(node.to_json())),
        }
    }

    fn record_refs(
        &self,
        node: &Node,
        found: &[Reference],
        unshift: usize,
        refs: &mut Vec<RefSite>,
        in_for_each: bool,
    ) {
        for r in found {
            refs.push(RefSite {
                path: r.path.clone(),
                loc: self.loc_in_scalar(node, r.offset.saturating_sub(unshift)),
                in_for_each,
            });
        }
    }

    fn playbook(&mut self, root: &Node, catalog: &dyn ActionCatalog) -> Option<Playbook> {
        let entries = self.entries(root, "the playbook")?;
        let mut name = None;
        let mut description = String::new();
        let mut params = Vec::new();
        let mut steps_node = None;
        for (key, knode, v) in &entries {
            match *key {
                "name" => name = self.string(v, "`name`"),
                "description" => {
                    if let Some(d) = self.string(v, "`description`") {
                        description = d;
                    }
                }
                "params" => params = self.params(v),
                "steps" => steps_node = Some(*v),
                other => self.unknown_key(other, knode.loc, "the playbook", TOP_KEYS),
            }
        }
        if !entries.iter().any(|(k, _, _)| *k == "name") {
            self.error(
                root.loc,
                "missing required key `name`",
                help("add `name: my-playbook` at the top level"),
            );
        }
        let Some(steps_node) = steps_node else {
            self.error(
                root.loc,
                "missing required key `steps`",
                help("add a `steps:` list with at least one step"),
            );
            return None;
        };
        let steps = self.steps(steps_node, &params, catalog);
        Some(Playbook {
            name: name.unwrap_or_default(),
            description,
            params,
            steps,
            source: String::new(),
            sha256: String::new(),
        })
    }

    fn params(&mut self, node: &Node) -> Vec<ParamDef> {
        if matches!(node.kind, NodeKind::Null) {
            return Vec::new();
        }
        let Some(entries) = self.entries(node, "`params`") else {
            return Vec::new();
        };
        if entries.len() > MAX_PARAMS {
            self.error(
                node.loc,
                format!(
                    "too many params ({}); the limit is {MAX_PARAMS}",
                    entries.len()
                ),
                None,
            );
            return Vec::new();
        }
        let mut out = Vec::new();
        for (name, knode, def) in entries {
            if !valid_param_name(name) {
                self.error(
                    knode.loc,
                    format!("invalid param name `{name}`"),
                    help("param names start with a letter or `_` and use only letters, digits, `_` and `-`"),
                );
                continue;
            }
            // Kept even when a field is bad, so references to it don't
            // cascade into "unknown param" noise.
            out.push(self.param(name, knode.loc, def));
        }
        out
    }

    fn param(&mut self, name: &str, loc: Loc, def: &Node) -> ParamDef {
        let mut p = ParamDef {
            name: name.to_string(),
            ty: ParamType::String,
            required: false,
            default: None,
            description: None,
            loc,
        };
        let mut default_node = None;
        if matches!(def.kind, NodeKind::Null) {
            return p;
        }
        let Some(entries) = self.entries(def, &format!("param `{name}`")) else {
            return p;
        };
        for (key, knode, v) in &entries {
            match *key {
                "type" => match v.as_str() {
                    Some("string") => p.ty = ParamType::String,
                    Some("list") => p.ty = ParamType::List,
                    Some("int") => p.ty = ParamType::Int,
                    Some("bool") => p.ty = ParamType::Bool,
                    _ => {
                        let shown = v
                            .as_str()
                            .map_or_else(|| v.type_name().to_string(), |s| format!("`{s}`"));
                        self.error(
                            v.loc,
                            format!("unknown param type {shown} for `{name}`"),
                            help("use one of: string, list, int, bool"),
                        );
                    }
                },
                "required" => {
                    if let Some(b) = self.boolean(v, "`required`") {
                        p.required = b;
                    }
                }
                "default" => default_node = Some(*v),
                "description" => p.description = self.string(v, "`description`"),
                other => {
                    self.unknown_key(other, knode.loc, &format!("param `{name}`"), PARAM_KEYS);
                }
            }
        }
        if let Some(d) = default_node {
            let v = d.to_json();
            if param_value_matches(p.ty, &v) {
                p.default = Some(v);
            } else {
                self.error(
                    d.loc,
                    format!(
                        "default of param `{name}` must be a {}, found {}",
                        p.ty.name(),
                        d.type_name()
                    ),
                    help(format!(
                        "change the default to a {} or change `type`",
                        p.ty.name()
                    )),
                );
            }
            if p.required {
                self.warn(
                    d.loc,
                    format!("param `{name}` is required, so its default is never used"),
                    help("remove `required: true` or remove the default"),
                );
            }
        }
        p
    }
}

/// `params.NAME` (or `params['NAME']`) → `NAME`.
fn param_of(e: &Expr) -> Option<&str> {
    match e {
        Expr::Property { base, name, .. } => match base.as_ref() {
            Expr::Context { name: root, .. } if root == "params" => Some(name),
            _ => None,
        },
        Expr::Index { base, index } => match (base.as_ref(), index.as_ref()) {
            (Expr::Context { name: root, .. }, Expr::String(s)) if root == "params" => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// Returns what was found when `vt` can't be of type `want`.
fn type_mismatch(
    want: InputType,
    vt: &ValueTemplate,
    node: &Node,
    params: &[ParamDef],
) -> Option<String> {
    match vt {
        ValueTemplate::Template(t) => {
            let p = t
                .single_expr()
                .and_then(param_of)
                .and_then(|n| params.iter().find(|p| p.name == n))?;
            let fits = match want {
                InputType::Any => true,
                InputType::String => p.ty == ParamType::String,
                InputType::List => p.ty == ParamType::List,
                InputType::Int => p.ty == ParamType::Int,
                InputType::Bool => p.ty == ParamType::Bool,
                InputType::Map => false,
            };
            (!fits).then(|| format!("param `{}` of type {}", p.name, p.ty.name()))
        }
        ValueTemplate::Literal(v) => {
            let fits = match want {
                InputType::Any => true,
                InputType::String => v.is_string(),
                InputType::List => false,
                InputType::Int => v.is_i64() || v.is_u64(),
                InputType::Bool => v.is_boolean(),
                InputType::Map => false,
            };
            (!fits).then(|| node.type_name().to_string())
        }
        ValueTemplate::List(_) => {
            (!matches!(want, InputType::List | InputType::Any)).then(|| "list".to_string())
        }
        ValueTemplate::Map(_) => {
            (!matches!(want, InputType::Map | InputType::Any)).then(|| "mapping".to_string())
        }
    }
}

pub(crate) fn param_value_matches(ty: ParamType, v: &Value) -> bool {
    match ty {
        ParamType::String => v.is_string(),
        ParamType::List => v.is_array(),
        ParamType::Int => v.is_i64() || v.is_u64(),
        ParamType::Bool => v.is_boolean(),
    }
}

fn valid_step_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

fn valid_param_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && s.len() <= 64
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

fn valid_approver(s: &str) -> bool {
    let name = s.strip_prefix("group:").or_else(|| s.strip_prefix("user:"));
    name.is_some_and(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'@'))
    })
}

/// `500ms`, `1s`, `2m`, `1h` → milliseconds.
pub(crate) fn parse_duration(s: &str) -> Option<u64> {
    crate::duration::parse_duration_ms(s).ok()
}

/// Levenshtein distance over chars (inputs are short names).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// Up to `n` candidates close to `word`, best first.
fn closest_n<'c>(word: &str, candidates: impl Iterator<Item = &'c str>, n: usize) -> Vec<&'c str> {
    if word.len() > 256 {
        return Vec::new();
    }
    let limit = (word.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

fn closest<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    closest_n(word, candidates, 1).into_iter().next()
}
