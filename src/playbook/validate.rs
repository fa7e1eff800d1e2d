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
];
const RETRY_KEYS: &[&str] = &["attempts", "backoff", "initial", "max"];
const APPROVAL_KEYS: &[&str] = &["count", "from"];

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

    fn steps(
        &mut self,
        node: &Node,
        params: &[ParamDef],
        catalog: &dyn ActionCatalog,
    ) -> Vec<StepDef> {
        let NodeKind::Seq(items) = &node.kind else {
            self.error(
                node.loc,
                format!("`steps` must be a list, found {}", node.type_name()),
                help("write each step as `- id: ...` under `steps:`"),
            );
            return Vec::new();
        };
        if items.is_empty() {
            self.error(node.loc, "`steps` is empty", help("add at least one step"));
            return Vec::new();
        }
        if items.len() > MAX_STEPS {
            self.error(
                node.loc,
                format!("too many steps ({}); the limit is {MAX_STEPS}", items.len()),
                help("split the playbook"),
            );
            return Vec::new();
        }
        // First pass: ids, so `needs` / `steps.X` can be checked in any order.
        let mut ids: HashMap<String, Loc> = HashMap::new();
        let mut steps = Vec::new();
        let mut infos = Vec::new();
        for item in items {
            if let Some((step, info)) = self.step(item, params, catalog, &mut ids) {
                steps.push(step);
                infos.push(info);
            }
        }
        self.check_graph(&steps, &infos, params);
        steps
    }

    fn step(
        &mut self,
        node: &Node,
        params: &[ParamDef],
        catalog: &dyn ActionCatalog,
        ids: &mut HashMap<String, Loc>,
    ) -> Option<(StepDef, StepInfo)> {
        let entries = self.entries(node, "a step")?;
        let mut info = StepInfo {
            refs: Vec::new(),
            needs_locs: Vec::new(),
            has_for_each: entries.iter().any(|(k, _, _)| *k == "for_each"),
        };
        let mut step = StepDef {
            id: String::new(),
            name: None,
            uses: String::new(),
            with: Vec::new(),
            needs: Vec::new(),
            if_: None,
            for_each: None,
            concurrency: None,
            retry: RetryPolicy::default(),
            timeout_ms: None,
            continue_on_error: false,
            approval: None,
            loc: node.loc,
        };
        let mut uses_node = None;
        let mut with_node = None;
        let mut concurrency_loc = None;
        for (key, knode, v) in &entries {
            match *key {
                "id" => match v.as_str() {
                    Some(id) if valid_step_id(id) => {
                        if let Some(first) = ids.get(id) {
                            self.error(
                                v.loc,
                                format!("duplicate step id `{id}`"),
                                help(format!("`{id}` is already used by the step at line {}; pick a unique id", first.line)),
                            );
                        } else {
                            ids.insert(id.to_string(), v.loc);
                        }
                        step.id = id.to_string();
                    }
                    _ => {
                        let shown = v
                            .as_str()
                            .map_or_else(|| v.type_name().to_string(), |s| format!("`{s}`"));
                        self.error(
                            v.loc,
                            format!("invalid step id {shown}"),
                            help("step ids use only lowercase letters, digits, `_` and `-`"),
                        );
                    }
                },
                "name" => step.name = self.string(v, "`name`"),
                "uses" => uses_node = Some(*v),
                "with" => with_node = Some((knode.loc, *v)),
                "needs" => match &v.kind {
                    NodeKind::Str(s) => {
                        step.needs.push(s.clone());
                        info.needs_locs.push(v.loc);
                    }
                    NodeKind::Seq(list) => {
                        for n in list {
                            if let Some(s) = self.string(n, "a `needs` entry") {
                                step.needs.push(s);
                                info.needs_locs.push(n.loc);
                            }
                        }
                    }
                    _ => {
                        self.error(
                            v.loc,
                            format!(
                                "`needs` must be a step id or a list of step ids, found {}",
                                v.type_name()
                            ),
                            None,
                        );
                    }
                },
                "if" => {
                    if let Some(t) = self.condition(v, &mut info.refs) {
                        step.if_ = Some(t)
                    }
                }
                "for_each" => {
                    if let Some(t) = self.value_template(v, &mut info.refs, true) {
                        self.check_for_each(v, &t, params);
                        step.for_each = Some(t);
                    }
                }
                "concurrency" => {
                    concurrency_loc = Some(knode.loc);
                    if let Some(c) = self.int_in(v, "`concurrency`", 1, 256) {
                        step.concurrency = Some(c)
                    }
                }
                "retry" => {
                    if let Some(r) = self.retry(v) {
                        step.retry = r
                    }
                }
                "timeout" => {
                    if let Some(ms) = self.duration(v, "`timeout`") {
                        step.timeout_ms = Some(ms)
                    }
                }
                "continue-on-error" => {
                    if let Some(b) = self.boolean(v, "`continue-on-error`") {
                        step.continue_on_error = b
                    }
                }
                "approval" => {
                    if let Some(a) = self.approval(v) {
                        step.approval = Some(a)
                    }
                }
                other => {
                    self.unknown_key(other, knode.loc, "a step", STEP_KEYS);
                }
            }
        }
        if !entries.iter().any(|(k, _, _)| *k == "id") {
            self.error(
                node.loc,
                "step is missing `id`",
                help("add `id: my-step` (lowercase letters, digits, `_`, `-`)"),
            );
        }
        if let (Some(loc), None) = (concurrency_loc, &step.for_each) {
            self.error(
                loc,
                "`concurrency` is only valid together with `for_each`",
                help("remove `concurrency` or add `for_each`"),
            );
        }
        let spec = match uses_node {
            None => {
                self.error(
                    node.loc,
                    "step is missing `uses`",
                    help("add `uses: <action>`, e.g. `uses: npm.deprecate`"),
                );
                None
            }
            Some(u) => match self.string(u, "`uses`") {
                Some(name) => {
                    let spec = catalog.spec(&name).copied();
                    if spec.is_none() {
                        let names = catalog.names();
                        let near = closest_n(&name, names.iter().copied(), 3);
                        let h = if near.is_empty() {
                            format!("known actions: {}", names.join(", "))
                        } else {
                            format!(
                                "did you mean {}?",
                                near.iter()
                                    .map(|n| format!("`{n}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        };
                        self.error(u.loc, format!("unknown action `{name}`"), Some(h));
                    }
                    step.uses = name;
                    spec
                }
                None => None,
            },
        };
        let mut with_ok = true;
        if let Some((_, w)) = with_node {
            match self.with(w, spec.as_ref(), params, &mut info.refs) {
                Some(with) => step.with = with,
                None => {
                    with_ok = false;
                }
            }
        }
        if let Some(spec) = &spec {
            let given: HashSet<&str> = step.with.iter().map(|(k, _)| k.as_str()).collect();
            let missing: Vec<&str> = spec
                .inputs
                .iter()
                .filter(|i| i.required && !given.contains(i.name))
                .map(|i| i.name)
                .collect();
            // Skipped when `with` had errors: a misspelled key is already
            // reported with a suggestion, and "missing" would be noise.
            if !missing.is_empty() && with_ok {
                let at = with_node.map_or(node.loc, |(k, _)| k);
                for m in missing {
                    let h = spec
                        .inputs
                        .iter()
                        .find(|i| i.name == m)
                        .map(|i| format!("add `{m}:` under `with:` ({})", i.help));
                    self.error(
                        at,
                        format!("action `{}` requires input `{m}`", spec.name),
                        h,
                    );
                }
            }
            if spec.destructive && step.approval.is_none() {
                self.warn(
                    node.loc,
                    format!(
                        "action `{}` is destructive and the step has no `approval`",
                        spec.name
                    ),
                    help("add `approval: { count: 1, from: [group:NAME] }`"),
                );
            }
        }
        // Kept even with errors (the caller fails on any error anyway) so
        // that other steps' `needs` and `steps.X` checks don't cascade.
        Some((step, info))
    }

    /// `if:` takes `${{ expr }}` or a bare expression (GH semantics).
    fn condition(&mut self, v: &Node, refs: &mut Vec<RefSite>) -> Option<Template> {
        let src = match &v.kind {
            NodeKind::Str(s) => s.clone(),
            NodeKind::Bool(b) => b.to_string(),
            _ => {
                self.error(
                    v.loc,
                    format!("`if` must be an expression, found {}", v.type_name()),
                    help("write e.g. `if: always()` or `if: ${{ failure() }}`"),
                );
                return None;
            }
        };
        if src.contains("${{") {
            match parse_template(&src) {
                Ok(t) if t.single_expr().is_some() => {
                    self.record_refs(v, &t.references(), 0, refs, false);
                    Some(t)
                }
                Ok(_) => {
                    self.error(
                        v.loc,
                        "`if` must be a single expression",
                        help("write the whole condition inside one ${{ }}"),
                    );
                    None
                }
                Err(e) => {
                    self.expr_error(v, &e, 0);
                    None
                }
            }
        } else {
            match Template::from_expr_source(&src) {
                Ok(t) => {
                    self.record_refs(v, &t.references(), BARE_PREFIX.len(), refs, false);
                    Some(t)
                }
                Err(e) => {
                    self.expr_error(v, &e, 0);
                    None
                }
            }
        }
    }

    fn check_for_each(&mut self, v: &Node, t: &ValueTemplate, params: &[ParamDef]) {
        let bad = match t {
            ValueTemplate::List(_) => None,
            ValueTemplate::Template(tpl) => match tpl.single_expr() {
                None => Some("text".to_string()),
                Some(e) => match param_of(e).and_then(|n| params.iter().find(|p| p.name == n)) {
                    Some(p) if p.ty != ParamType::List => {
                        Some(format!("param `{}` of type {}", p.name, p.ty.name()))
                    }
                    _ => None,
                },
            },
            ValueTemplate::Literal(_) | ValueTemplate::Map(_) => Some(v.type_name().to_string()),
        };
        if let Some(found) = bad {
            self.error(
                v.loc,
                format!("`for_each` must be a list, found {found}"),
                help("use a YAML list or `${{ params.NAME }}` where NAME has type list"),
            );
        }
    }

    fn with(
        &mut self,
        node: &Node,
        spec: Option<&ActionSpec>,
        params: &[ParamDef],
        refs: &mut Vec<RefSite>,
    ) -> Option<Vec<(String, ValueTemplate)>> {
        if matches!(node.kind, NodeKind::Null) {
            return Some(Vec::new());
        }
        let entries = self.entries(node, "`with`")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (key, knode, v) in entries {
            let input = spec.map(|s| s.inputs.iter().find(|i| i.name == key));
            if let (Some(spec), Some(None)) = (spec, input) {
                ok = false;
                let names: Vec<&str> = spec.inputs.iter().map(|i| i.name).collect();
                let h = match closest(key, names.iter().copied()) {
                    Some(c) => format!(
                        "did you mean `{c}`? `{}` accepts: {}",
                        spec.name,
                        names.join(", ")
                    ),
                    None if names.is_empty() => {
                        format!("`{}` takes no inputs; remove it", spec.name)
                    }
                    None => format!("`{}` accepts: {}", spec.name, names.join(", ")),
                };
                self.error(
                    knode.loc,
                    format!("unknown input `{key}` for action `{}`", spec.name),
                    Some(h),
                );
                continue;
            }
            let Some(vt) = self.value_template(v, refs, false) else {
                ok = false;
                continue;
            };
            if let Some(Some(input)) = input
                && let Some(found) = type_mismatch(input.ty, &vt, v, params)
            {
                ok = false;
                let quote = if input.ty == InputType::String
                    && matches!(
                        v.kind,
                        NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_)
                    ) {
                    format!("; quote it: \"{}\"", v.key_string())
                } else {
                    String::new()
                };
                self.error(
                    v.loc,
                    format!("input `{key}` expects a {}, found {found}", input.ty.name()),
                    help(format!("pass a {}{quote}", input.ty.name())),
                );
                continue;
            }
            out.push((key.to_string(), vt));
        }
        ok.then_some(out)
    }

    fn retry(&mut self, node: &Node) -> Option<RetryPolicy> {
        let entries = self.entries(node, "`retry`")?;
        let mut r = RetryPolicy::default();
        let mut ok = true;
        let mut initial_loc = node.loc;
        for (key, knode, v) in entries {
            match key {
                "attempts" => match self.int_in(v, "`retry.attempts`", 1, 20) {
                    Some(a) => r.attempts = a,
                    None => ok = false,
                },
                "backoff" => match v.as_str() {
                    Some("exponential") => r.backoff = Backoff::Exponential,
                    Some("fixed") => r.backoff = Backoff::Fixed,
                    _ => {
                        ok = false;
                        self.error(
                            v.loc,
                            "`retry.backoff` must be `exponential` or `fixed`",
                            help("use `backoff: exponential` or `backoff: fixed`"),
                        );
                    }
                },
                "initial" => {
                    initial_loc = v.loc;
                    match self.duration(v, "`retry.initial`") {
                        Some(ms) => r.initial_ms = ms,
                        None => ok = false,
                    }
                }
                "max" => match self.duration(v, "`retry.max`") {
                    Some(ms) => r.max_ms = ms,
                    None => ok = false,
                },
                other => {
                    ok = false;
                    self.unknown_key(other, knode.loc, "`retry`", RETRY_KEYS);
                }
            }
        }
        if ok && r.initial_ms > r.max_ms {
            ok = false;
            self.error(
                initial_loc,
                format!(
                    "`retry.initial` ({}ms) is larger than `retry.max` ({}ms)",
                    r.initial_ms, r.max_ms
                ),
                help("make `initial` <= `max`"),
            );
        }
        ok.then_some(r)
    }

    fn approval(&mut self, node: &Node) -> Option<ApprovalSpec> {
        let entries = self.entries(node, "`approval`")?;
        let mut a = ApprovalSpec {
            count: 1,
            from: Vec::new(),
        };
        let mut ok = true;
        let mut from_seen = false;
        for (key, knode, v) in entries {
            match key {
                "count" => match self.int_in(v, "`approval.count`", 1, 100) {
                    Some(c) => a.count = c,
                    None => ok = false,
                },
                "from" => {
                    from_seen = true;
                    let items: Vec<&Node> = match &v.kind {
                        NodeKind::Seq(list) => list.iter().collect(),
                        NodeKind::Str(_) => vec![v],
                        _ => {
                            ok = false;
                            self.error(
                                v.loc,
                                "`approval.from` must be a list",
                                help("e.g. `from: [group:release-admins, user:alice]`"),
                            );
                            Vec::new()
                        }
                    };
                    if items.is_empty() && matches!(v.kind, NodeKind::Seq(_)) {
                        ok = false;
                        self.error(
                            v.loc,
                            "`approval.from` is empty",
                            help("list at least one `group:NAME` or `user:NAME`"),
                        );
                    }
                    for it in items {
                        match it.as_str() {
                            Some(s) if valid_approver(s) => a.from.push(s.to_string()),
                            _ => {
                                ok = false;
                                let shown = it.as_str().map_or_else(
                                    || it.type_name().to_string(),
                                    |s| format!("`{s}`"),
                                );
                                self.error(
                                    it.loc,
                                    format!("invalid approver {shown}"),
                                    help("approvers are `group:NAME` or `user:NAME`"),
                                );
                            }
                        }
                    }
                }
                other => {
                    ok = false;
                    self.unknown_key(other, knode.loc, "`approval`", APPROVAL_KEYS);
                }
            }
        }
        if !from_seen {
            ok = false;
            self.error(
                node.loc,
                "`approval` is missing `from`",
                help("add `from: [group:NAME]`"),
            );
        }
        ok.then_some(a)
    }

    /// Cross-step checks: `needs` targets, cycles, and context references.
    fn check_graph(&mut self, steps: &[StepDef], infos: &[StepInfo], params: &[ParamDef]) {
        let index: HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        let mut edges: Vec<Vec<(usize, Loc)>> = vec![Vec::new(); steps.len()];
        for ((s, info), out) in steps.iter().zip(infos).zip(edges.iter_mut()) {
            for (need, loc) in s.needs.iter().zip(&info.needs_locs) {
                match index.get(need.as_str()) {
                    Some(&j) => out.push((j, *loc)),
                    None => {
                        let h = match closest(need, ids.iter().copied()) {
                            Some(c) => format!("did you mean `{c}`?"),
                            None => format!("known step ids: {}", ids.join(", ")),
                        };
                        self.error(
                            *loc,
                            format!("`needs` refers to unknown step `{need}`"),
                            Some(h),
                        );
                    }
                }
            }
        }
        self.report_cycles(&edges, &ids);
        let closure = transitive_needs(&edges);
        for (i, (s, info)) in steps.iter().zip(infos).enumerate() {
            for r in &info.refs {
                self.check_ref(i, s, info, r, &index, &closure, params, &ids);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_ref(
        &mut self,
        i: usize,
        s: &StepDef,
        info: &StepInfo,
        r: &RefSite,
        index: &HashMap<&str, usize>,
        closure: &[BTreeSet<usize>],
        params: &[ParamDef],
        ids: &[&str],
    ) {
        let root = r.path.first().map(String::as_str);
        let second = r.path.get(1).map(String::as_str);
        match (root, second) {
            (Some("params"), Some(p)) if !params.iter().any(|d| d.name == p) => {
                let names: Vec<&str> = params.iter().map(|d| d.name.as_str()).collect();
                let h = match closest(p, names.iter().copied()) {
                    Some(c) => format!("did you mean `params.{c}`?"),
                    None => format!("declare `{p}` under `params:`"),
                };
                self.error(r.loc, format!("unknown param `{p}`"), Some(h));
            }
            (Some("steps"), Some(x)) => match index.get(x) {
                None => {
                    let h = match closest(x, ids.iter().copied()) {
                        Some(c) => format!("did you mean `steps.{c}`?"),
                        None => format!("known step ids: {}", ids.join(", ")),
                    };
                    self.error(r.loc, format!("reference to unknown step `{x}`"), Some(h));
                }
                Some(&j) if j == i => {
                    self.error(
                        r.loc,
                        format!("step `{}` refers to its own outputs", s.id),
                        help("a step can only read outputs of steps it needs"),
                    );
                }
                Some(&j) if !closure.get(i).is_some_and(|c| c.contains(&j)) => {
                    self.error(
                        r.loc,
                        format!(
                            "step `{}` reads `steps.{x}` but does not depend on `{x}`",
                            s.id
                        ),
                        help(format!("add {x} to needs")),
                    );
                }
                Some(_) => {}
            },
            (Some("item"), _) if !info.has_for_each => {
                self.error(
                    r.loc,
                    "`item` is only available in a step with `for_each`",
                    help("add `for_each:` to this step or remove `item`"),
                );
            }
            (Some("item"), _) if r.in_for_each => {
                self.error(
                    r.loc,
                    "`for_each` cannot use `item`",
                    help("`item` is the current element, defined by `for_each` itself"),
                );
            }
            _ => {}
        }
    }

    fn report_cycles(&mut self, edges: &[Vec<(usize, Loc)>], ids: &[&str]) {
        // Iterative DFS (white/grey/black) so deep chains can't overflow.
        let n = edges.len();
        let mut color = vec![0u8; n];
        let mut reported: HashSet<BTreeSet<usize>> = HashSet::new();
        for start in 0..n {
            if color.get(start) != Some(&0) {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            if let Some(c) = color.get_mut(start) {
                *c = 1;
            }
            while let Some(&mut (u, ref mut next)) = stack.last_mut() {
                let Some(&(v, loc)) = edges.get(u).and_then(|e| e.get(*next)) else {
                    if let Some(c) = color.get_mut(u) {
                        *c = 2;
                    }
                    stack.pop();
                    continue;
                };
                *next += 1;
                match color.get(v).copied() {
                    Some(0) => {
                        if let Some(c) = color.get_mut(v) {
                            *c = 1;
                        }
                        stack.push((v, 0));
                    }
                    Some(1) => {
                        let pos = stack.iter().position(|&(w, _)| w == v).unwrap_or(0);
                        let members: Vec<usize> = stack
                            .get(pos..)
                            .unwrap_or_default()
                            .iter()
                            .map(|&(w, _)| w)
                            .collect();
                        let set: BTreeSet<usize> = members.iter().copied().collect();
                        if reported.insert(set) {
                            let mut path: Vec<&str> = members
                                .iter()
                                .filter_map(|&w| ids.get(w).copied())
                                .collect();
                            path.push(ids.get(v).copied().unwrap_or("?"));
                            self.error(
                                loc,
                                format!("`needs` cycle: {}", path.join(" -> ")),
                                help("remove one of these `needs` entries to break the cycle"),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// For each step, all steps it (transitively) needs.
fn transitive_needs(edges: &[Vec<(usize, Loc)>]) -> Vec<BTreeSet<usize>> {
    (0..edges.len())
        .map(|i| {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<usize> = edges
                .get(i)
                .map(|e| e.iter().map(|x| x.0).collect())
                .unwrap_or_default();
            while let Some(j) = todo.pop() {
                if seen.insert(j) {
                    todo.extend(edges.get(j).into_iter().flatten().map(|x| x.0));
                }
            }
            seen
        })
        .collect()
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
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(mult)
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
