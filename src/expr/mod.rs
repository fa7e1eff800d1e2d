//! GitHub-Actions-style `${{ }}` expressions used inside playbooks.
//!
//! `parse_expr` parses the inside of `${{ }}`; `parse_template` splits a
//! string into literal and expression parts. Evaluation never re-parses
//! values taken from the context, so data can't inject expressions.

mod eval;
mod parse;
mod template;

pub use eval::{to_display_string, truthy};
pub use parse::parse_expr;
pub use template::{BARE_PREFIX, Template, TemplatePart, parse_template};

/// Max bytes of one expression's source; keeps parsing cheap and bounded.
pub const MAX_EXPR_LEN: usize = 4096;
/// Max nesting of parentheses / calls / lists / index brackets / `!` chains.
pub const MAX_DEPTH: usize = 64;
/// Max AST height, which also bounds long operator chains so that
/// evaluation recursion stays shallow.
pub const MAX_AST_HEIGHT: usize = 256;
/// Max elements of a list literal.
pub const MAX_LIST_LEN: usize = 1024;
/// Max input size of `fromJSON`.
pub const MAX_FROM_JSON_BYTES: usize = 1024 * 1024;
/// Max nesting depth of a `fromJSON` result.
pub const MAX_FROM_JSON_DEPTH: usize = 64;

/// Context roots an expression may reference. `env` is deliberately absent:
/// playbooks must not read the orchestrator's environment.
pub const CONTEXT_ROOTS: &[&str] = &["params", "incident", "steps", "item"];

/// A parse error; `offset` is a byte offset into the parsed source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {offset})")]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

impl ExprError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        Self {
            offset,
            message: message.into(),
        }
    }
}

/// An evaluation error (e.g. a bad `format` string or invalid `fromJSON`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub message: String,
}

impl EvalError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Binary comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Built-in functions (names are matched case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Always,
    Success,
    Failure,
    Cancelled,
    Contains,
    StartsWith,
    EndsWith,
    Format,
    Join,
    ToJson,
    FromJson,
    Length,
}

impl Func {
    /// Looks a function up by its case-insensitive name.
    pub fn lookup(name: &str) -> Option<Func> {
        let f = match name.to_ascii_lowercase().as_str() {
            "always" => Func::Always,
            "success" => Func::Success,
            "failure" => Func::Failure,
            "cancelled" => Func::Cancelled,
            "contains" => Func::Contains,
            "startswith" => Func::StartsWith,
            "endswith" => Func::EndsWith,
            "format" => Func::Format,
            "join" => Func::Join,
            "tojson" => Func::ToJson,
            "fromjson" => Func::FromJson,
            "length" => Func::Length,
            _ => return None,
        };
        Some(f)
    }

    /// Canonical spelling, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Func::Always => "always",
            Func::Success => "success",
            Func::Failure => "failure",
            Func::Cancelled => "cancelled",
            Func::Contains => "contains",
            Func::StartsWith => "startsWith",
            Func::EndsWith => "endsWith",
            Func::Format => "format",
            Func::Join => "join",
            Func::ToJson => "toJSON",
            Func::FromJson => "fromJSON",
            Func::Length => "length",
        }
    }

    /// Allowed argument counts (inclusive); `format` is variadic.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Func::Always | Func::Success | Func::Failure | Func::Cancelled => (0, 0),
            Func::Contains | Func::StartsWith | Func::EndsWith => (2, 2),
            Func::Format => (1, usize::MAX),
            Func::Join => (1, 2),
            Func::ToJson | Func::FromJson | Func::Length => (1, 1),
        }
    }

    /// Whether this is a status function (relevant for `if:` defaults).
    pub fn is_status(self) -> bool {
        matches!(
            self,
            Func::Always | Func::Success | Func::Failure | Func::Cancelled
        )
    }
}

/// Expression AST. Offsets are byte offsets into the expression source.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<Expr>),
    /// A context root such as `params`.
    Context {
        name: String,
        offset: usize,
    },
    /// `base.name`
    Property {
        base: Box<Expr>,
        name: String,
        offset: usize,
    },
    /// `base[index]`
    Index {
        base: Box<Expr>,
        index: Box<Expr>,
    },
    Not(Box<Expr>),
    Compare {
        op: CmpOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Call {
        func: Func,
        args: Vec<Expr>,
        offset: usize,
    },
}

/// A context path used by an expression, e.g. `["steps","x","outputs","y"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub path: Vec<String>,
    /// Byte offset of the root identifier in the parsed source.
    pub offset: usize,
}

/// Outcome flags of earlier steps, for the status functions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusFlags {
    pub success: bool,
    pub failure: bool,
    pub cancelled: bool,
}

/// What expressions evaluate against.
#[derive(Clone, Copy, Debug)]
pub struct EvalContext<'a> {
    /// Object with keys `params`, `incident`, `steps`, `item`.
    pub root: &'a serde_json::Value,
    pub status: StatusFlags,
}

impl Expr {
    /// Evaluates against `ctx`. Never panics; errors only for bad function input.
    pub fn eval(&self, ctx: &EvalContext) -> Result<serde_json::Value, EvalError> {
        eval::eval(self, ctx)
    }

    /// Every context path this expression reads, for lint.
    pub fn references(&self) -> Vec<Reference> {
        let mut out = Vec::new();
        collect_refs(self, &mut out);
        out
    }

    /// Whether the expression calls a status function anywhere (GH semantics:
    /// an `if:` without one is implicitly `success() && (...)`).
    pub fn uses_status_function(&self) -> bool {
        match self {
            Expr::Call { func, args, .. } => {
                func.is_status() || args.iter().any(Expr::uses_status_function)
            }
            Expr::List(items) => items.iter().any(Expr::uses_status_function),
            Expr::Property { base, .. } => base.uses_status_function(),
            Expr::Index { base, index } => {
                base.uses_status_function() || index.uses_status_function()
            }
            Expr::Not(e) => e.uses_status_function(),
            Expr::Compare { lhs, rhs, .. } | Expr::And(lhs, rhs) | Expr::Or(lhs, rhs) => {
                lhs.uses_status_function() || rhs.uses_status_function()
            }
            Expr::Null
            | Expr::Bool(_)
            | Expr::Number(_)
            | Expr::String(_)
            | Expr::Context { .. } => false,
        }
    }

    /// Shifts all recorded offsets by `by` (used when embedding in a template).
    pub(crate) fn shift_offsets(&mut self, by: usize) {
        match self {
            Expr::Context { offset, .. } => *offset = offset.saturating_add(by),
            Expr::Property { base, offset, .. } => {
                *offset = offset.saturating_add(by);
                base.shift_offsets(by);
            }
            Expr::Call { args, offset, .. } => {
                *offset = offset.saturating_add(by);
                args.iter_mut().for_each(|a| a.shift_offsets(by));
            }
            Expr::List(items) => items.iter_mut().for_each(|a| a.shift_offsets(by)),
            Expr::Index { base, index } => {
                base.shift_offsets(by);
                index.shift_offsets(by);
            }
            Expr::Not(e) => e.shift_offsets(by),
            Expr::Compare { lhs, rhs, .. } | Expr::And(lhs, rhs) | Expr::Or(lhs, rhs) => {
                lhs.shift_offsets(by);
                rhs.shift_offsets(by);
            }
            Expr::Null | Expr::Bool(_) | Expr::Number(_) | Expr::String(_) => {}
        }
    }
}

/// If `e` is a chain of literal accesses on a context root, returns its path.
fn literal_path(e: &Expr) -> Option<(Vec<String>, usize)> {
    match e {
        Expr::Context { name, offset } => Some((vec![name.clone()], *offset)),
        Expr::Property { base, name, .. } => {
            let (mut p, off) = literal_path(base)?;
            p.push(name.clone());
            Some((p, off))
        }
        Expr::Index { base, index } => {
            let seg = match index.as_ref() {
                Expr::String(s) => s.clone(),
                Expr::Number(n) => to_display_string(&eval::number_value(*n)),
                _ => return None,
            };
            let (mut p, off) = literal_path(base)?;
            p.push(seg);
            Some((p, off))
        }
        _ => None,
    }
}

fn collect_refs(e: &Expr, out: &mut Vec<Reference>) {
    if let Some((path, offset)) = literal_path(e) {
        out.push(Reference { path, offset });
        return;
    }
    match e {
        Expr::Property { base, .. } => collect_refs(base, out),
        Expr::Index { base, index } => {
            collect_refs(base, out);
            collect_refs(index, out);
        }
        Expr::List(items) => items.iter().for_each(|i| collect_refs(i, out)),
        Expr::Call { args, .. } => args.iter().for_each(|i| collect_refs(i, out)),
        Expr::Not(x) => collect_refs(x, out),
        Expr::Compare { lhs, rhs, .. } | Expr::And(lhs, rhs) | Expr::Or(lhs, rhs) => {
            collect_refs(lhs, out);
            collect_refs(rhs, out);
        }
        Expr::Null | Expr::Bool(_) | Expr::Number(_) | Expr::String(_) | Expr::Context { .. } => {}
    }
}

#[cfg(test)]
mod tests;
