//! Strings with embedded `${{ expr }}` parts.

use serde_json::Value;

use super::{EvalContext, EvalError, Expr, ExprError, Reference, parse_expr, to_display_string};

/// Prefix of the source synthesized by [`Template::from_expr_source`].
pub const BARE_PREFIX: &str = "${{ ";

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    Literal(String),
    /// `offset` is the byte offset of the expression text (after `${{`)
    /// in the template source; the expression's own offsets are already
    /// shifted to be relative to the template source.
    Expr {
        expr: Expr,
        offset: usize,
    },
}

/// A parsed template; keeps its source for display and re-serialization.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<TemplatePart>,
}

/// Splits `src` into literal and `${{ }}` parts. Error offsets are relative
/// to `src`.
pub fn parse_template(src: &str) -> Result<Template, ExprError> {
    let mut parts = Vec::new();
    let mut rest_start = 0;
    let mut literal = String::new();
    while let Some(rel) = src.get(rest_start..).and_then(|r| r.find("${{")) {
        let open = rest_start + rel;
        literal.push_str(src.get(rest_start..open).unwrap_or_default());
        let inner_start = open + 3;
        let Some(close) = find_close(src, inner_start) else {
            return Err(ExprError::new(open, "unterminated `${{` (missing `}}`)"));
        };
        let inner = src.get(inner_start..close).unwrap_or_default();
        let mut expr = parse_expr(inner).map_err(|e| ExprError {
            offset: e.offset.saturating_add(inner_start),
            message: e.message,
        })?;
        expr.shift_offsets(inner_start);
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
        }
        parts.push(TemplatePart::Expr {
            expr,
            offset: inner_start,
        });
        rest_start = close + 2;
    }
    literal.push_str(src.get(rest_start..).unwrap_or_default());
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    Ok(Template {
        source: src.to_string(),
        parts,
    })
}

/// Finds the `}}` closing an expression, skipping quoted strings so that
/// `format('}}')` works.
fn find_close(src: &str, from: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = from;
    let mut quote: Option<u8> = None;
    while let Some(&c) = bytes.get(i) {
        match quote {
            Some(q) if c == q => {
                // A doubled quote stays inside the string.
                if bytes.get(i + 1) == Some(&q) {
                    i += 1;
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'}' && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

impl Template {
    /// A template made of a single expression, e.g. for a bare `if:` value.
    pub fn from_expr_source(src: &str) -> Result<Template, ExprError> {
        let mut expr = parse_expr(src)?;
        // Offsets are made relative to the synthesized `${{ src }}` source
        // so the template stays self-consistent.
        expr.shift_offsets(BARE_PREFIX.len());
        Ok(Template {
            source: format!("{BARE_PREFIX}{src} }}}}"),
            parts: vec![TemplatePart::Expr {
                expr,
                offset: BARE_PREFIX.len(),
            }],
        })
    }

    /// True when there is no `${{ }}` part.
    pub fn is_literal(&self) -> bool {
        self.parts
            .iter()
            .all(|p| matches!(p, TemplatePart::Literal(_)))
    }

    pub fn parts(&self) -> &[TemplatePart] {
        &self.parts
    }

    /// The expression, if the template (ignoring surrounding whitespace) is
    /// exactly one `${{ expr }}`; such templates evaluate to a typed value.
    pub fn single_expr(&self) -> Option<&Expr> {
        let mut found = None;
        for p in &self.parts {
            match p {
                TemplatePart::Literal(s) if s.trim().is_empty() => {}
                TemplatePart::Literal(_) => return None,
                TemplatePart::Expr { expr, .. } => {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(expr);
                }
            }
        }
        found
    }

    /// Evaluates: a lone expression yields its typed value, anything else a
    /// string. Context values are inserted verbatim and never re-parsed.
    pub fn eval(&self, ctx: &EvalContext) -> Result<Value, EvalError> {
        if let Some(e) = self.single_expr() {
            return e.eval(ctx);
        }
        let mut out = String::new();
        for p in &self.parts {
            match p {
                TemplatePart::Literal(s) => out.push_str(s),
                TemplatePart::Expr { expr, .. } => {
                    out.push_str(&to_display_string(&expr.eval(ctx)?));
                }
            }
        }
        Ok(Value::String(out))
    }

    /// Every context path used by any expression part.
    pub fn references(&self) -> Vec<Reference> {
        self.parts
            .iter()
            .flat_map(|p| match p {
                TemplatePart::Expr { expr, .. } => expr.references(),
                TemplatePart::Literal(_) => Vec::new(),
            })
            .collect()
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}
