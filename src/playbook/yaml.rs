//! YAML loading into a spanned node tree.
//!
//! The typed model is built from this tree by hand so that every problem can
//! be reported at its own line:col and all problems are collected at once.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::Loc;

/// Max input size accepted by the loader.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Max nesting of YAML collections. Playbooks need < 10 levels; 32 (not 64)
/// because unoptimized builds spend ~32 KiB of stack per block-mapping level
/// in the YAML deserializer, and 64 levels overflowed a 2 MiB thread stack.
pub const MAX_YAML_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub loc: Loc,
    /// Byte offset of the node in the source, when known.
    pub byte: Option<usize>,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "boolean",
            NodeKind::Int(_) => "integer",
            NodeKind::Float(_) => "number",
            NodeKind::Str(_) => "string",
            NodeKind::Seq(_) => "list",
            NodeKind::Map(_) => "mapping",
        }
    }

    /// Plain JSON value of this node (keys rendered as strings).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::from(*i),
            NodeKind::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(kv) => Value::Object(
                kv.iter()
                    .map(|(k, v)| (k.key_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A mapping key as text (non-string scalar keys are rendered).
    pub fn key_string(&self) -> String {
        match &self.kind {
            NodeKind::Str(s) => s.clone(),
            NodeKind::Null => "null".to_string(),
            NodeKind::Bool(b) => b.to_string(),
            NodeKind::Int(i) => i.to_string(),
            NodeKind::Float(f) => f.to_string(),
            NodeKind::Seq(_) | NodeKind::Map(_) => self.to_json().to_string(),
        }
    }
}

thread_local! {
    /// Current nesting while deserializing. `Spanned<T>` needs `T: Deserialize`
    /// (no seed), so the depth travels here instead of in a `DeserializeSeed`.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Increments `DEPTH` for the lifetime of the guard (also on error paths).
struct DepthGuard;

impl DepthGuard {
    fn enter<E: de::Error>() -> Result<DepthGuard, E> {
        let d = DEPTH.with(|c| {
            let d = c.get() + 1;
            c.set(d);
            d
        });
        let guard = DepthGuard;
        if d > MAX_YAML_DEPTH {
            return Err(E::custom(format!(
                "nesting is deeper than {MAX_YAML_DEPTH} levels"
            )));
        }
        Ok(guard)
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

fn node_from(sp: Spanned<NodeKind>) -> Node {
    Node {
        loc: Loc {
            line: sp.referenced.line(),
            col: sp.referenced.column(),
        },
        byte: sp
            .referenced
            .span()
            .byte_offset()
            .and_then(|b| usize::try_from(b).ok()),
        kind: sp.value,
    }
}

impl<'de> Deserialize<'de> for NodeKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = NodeKind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeKind, E> {
        Ok(NodeKind::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeKind, E> {
        Ok(NodeKind::Int(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<NodeKind, E> {
        Ok(i64::try_from(v).map_or(NodeKind::Float(v as f64), NodeKind::Int))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeKind, E> {
        Ok(i64::try_from(v).map_or(NodeKind::Float(v as f64), NodeKind::Int))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<NodeKind, E> {
        Ok(i64::try_from(v).map_or(NodeKind::Float(v as f64), NodeKind::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeKind, E> {
        Ok(NodeKind::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        NodeKind::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        NodeKind::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let _g = DepthGuard::enter()?;
        let mut items = Vec::new();
        while let Some(sp) = seq.next_element::<Spanned<NodeKind>>()? {
            items.push(node_from(sp));
        }
        Ok(NodeKind::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        let _g = DepthGuard::enter()?;
        let mut entries: Vec<(Node, Node)> = Vec::new();
        while let Some(k) = map.next_key::<Spanned<NodeKind>>()? {
            let key = node_from(k);
            let value = node_from(map.next_value::<Spanned<NodeKind>>()?);
            entries.push((key, value));
        }
        Ok(NodeKind::Map(entries))
    }
}

/// Converts a byte offset into a 1-based (line, char column).
pub(crate) fn line_col(bytes: &[u8], offset: usize) -> Loc {
    let before = bytes.get(..offset).unwrap_or(bytes);
    let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let seg = before.get(line_start..).unwrap_or_default();
    // Count characters (not bytes) so columns match the YAML parser's.
    let col = String::from_utf8_lossy(seg).chars().count() as u64 + 1;
    Loc { line, col }
}

/// A loader failure: message and location.
#[derive(Debug, Clone)]
pub(crate) struct LoadError {
    pub loc: Loc,
    pub message: String,
    pub help: Option<String>,
}

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 200_000;
    budget.max_aliases = 100;
    budget.max_anchors = 100;
    budget.max_depth = MAX_YAML_DEPTH;
    budget.flow_nesting_limit = MAX_YAML_DEPTH;
    budget.max_documents = 1;
    budget.max_nodes = 200_000;
    budget.max_total_scalar_bytes = MAX_INPUT_BYTES * 2;
    budget.max_recorded_anchor_events = 10_000;
    budget.max_recorded_anchor_bytes = MAX_INPUT_BYTES;
    let mut aliases = serde_saphyr::options::AliasLimits::default();
    aliases.max_total_replayed_events = 10_000;
    aliases.max_replay_stack_depth = 8;
    aliases.max_alias_expansions_per_anchor = 100;
    let mut opts = serde_saphyr::Options::default();
    opts.budget = Some(budget);
    opts.alias_limits = aliases;
    opts.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::Error;
    // Only `true`/`false` are booleans: YAML 1.1's `n`/`yes` would turn a
    // param named `n` into a boolean key.
    opts.strict_booleans = true;
    opts
}

/// Parses `bytes` into a node tree, enforcing size/UTF-8/budget limits.
pub(crate) fn load(bytes: &[u8]) -> Result<Node, LoadError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(LoadError {
            loc: Loc { line: 1, col: 1 },
            message: format!(
                "playbook is {} bytes; the limit is {MAX_INPUT_BYTES} bytes",
                bytes.len()
            ),
            help: Some("split the playbook or remove unused content".into()),
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| LoadError {
        loc: line_col(bytes, e.valid_up_to()),
        message: "playbook is not valid UTF-8".into(),
        help: Some("save the file as UTF-8".into()),
    })?;
    DEPTH.with(|c| c.set(0));
    let res = serde_saphyr::from_str_with_options::<Spanned<NodeKind>>(text, options());
    match res {
        Ok(sp) => Ok(node_from(sp)),
        Err(e) => {
            let loc = e
                .location()
                .filter(|l| l.line() > 0)
                .map_or(Loc { line: 1, col: 1 }, |l| Loc {
                    line: l.line(),
                    col: l.column().max(1),
                });
            let (message, help) = clean_message(&e.to_string());
            Err(LoadError {
                loc,
                message,
                help: Some(help.to_string()),
            })
        }
    }
}

/// The library's message without its location prefix, plus a help line.
fn clean_message(s: &str) -> (String, &'static str) {
    let first = s.lines().next().unwrap_or("invalid YAML").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // Drop the "line N column M: " prefix; the diagnostic carries the position.
    let msg = match (first.starts_with("line "), first.find(": ")) {
        (true, Some(i)) => first.get(i + 2..).unwrap_or(first),
        _ => first,
    };
    if msg.contains("Documents") {
        return (
            "multiple YAML documents are not allowed".into(),
            "keep one playbook per file (remove the `---` separator)",
        );
    }
    if msg.contains("Depth {") || msg.contains("recursion limit") || msg.contains("nesting") {
        return (
            format!("YAML is nested deeper than {MAX_YAML_DEPTH} levels"),
            "flatten the structure; playbooks need only a few levels",
        );
    }
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest);
        return (
            format!("duplicate key `{key}`"),
            "remove or rename one of the duplicate keys",
        );
    }
    if msg.contains("budget breached") || msg.contains("alias") || msg.contains("replay") {
        return (
            format!("YAML exceeds safety limits: {msg}"),
            "avoid deep nesting and heavy use of aliases (`*name`)",
        );
    }
    (
        format!("invalid YAML: {msg}"),
        "fix the YAML syntax at this position",
    )
}
