//! Evaluation with GitHub Actions semantics (loose equality, truthiness,
//! missing properties are `null`).

use serde_json::Value;

use super::{CmpOp, EvalContext, EvalError, Expr, Func, MAX_FROM_JSON_BYTES, MAX_FROM_JSON_DEPTH};

pub(crate) fn eval(e: &Expr, ctx: &EvalContext) -> Result<Value, EvalError> {
    Ok(match e {
        Expr::Null => Value::Null,
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Number(n) => number_value(*n),
        Expr::String(s) => Value::String(s.clone()),
        Expr::List(items) => Value::Array(
            items
                .iter()
                .map(|i| eval(i, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Context { name, .. } => lookup_key(ctx.root, name).cloned().unwrap_or(Value::Null),
        Expr::Property { base, name, .. } => {
            let b = eval(base, ctx)?;
            lookup_key(&b, name).cloned().unwrap_or(Value::Null)
        }
        Expr::Index { base, index } => {
            let b = eval(base, ctx)?;
            let i = eval(index, ctx)?;
            index_value(&b, &i).unwrap_or(Value::Null)
        }
        Expr::Not(x) => Value::Bool(!truthy(&eval(x, ctx)?)),
        Expr::Compare { op, lhs, rhs } => {
            let l = eval(lhs, ctx)?;
            let r = eval(rhs, ctx)?;
            Value::Bool(compare(*op, &l, &r))
        }
        Expr::And(l, r) => {
            let lv = eval(l, ctx)?;
            if truthy(&lv) { eval(r, ctx)? } else { lv }
        }
        Expr::Or(l, r) => {
            let lv = eval(l, ctx)?;
            if truthy(&lv) { lv } else { eval(r, ctx)? }
        }
        Expr::Call { func, args, .. } => call(*func, args, ctx)?,
    })
}

/// Converts an f64 to JSON, preferring an integer when exact (so `3` prints
/// as `3`, not `3.0`). NaN/infinity have no JSON form and become `null`.
pub(crate) fn number_value(n: f64) -> Value {
    const MAX_SAFE: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
        return Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// Object key lookup: exact first, then ASCII case-insensitive like GH contexts.
fn lookup_key<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn index_value(base: &Value, index: &Value) -> Option<Value> {
    match base {
        Value::Array(items) => {
            let n = to_number(index);
            if !n.is_finite() || n < 0.0 {
                return None;
            }
            // Truncate like GH's integer conversion of the index.
            let i = n.trunc();
            if i >= items.len() as f64 {
                return None;
            }
            items.get(i as usize).cloned()
        }
        Value::Object(_) => lookup_key(base, &to_display_string(index)).cloned(),
        _ => None,
    }
}

/// GitHub Actions truthiness: `null`, `false`, `0`, NaN and `''` are falsy.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// How a value is interpolated into a string: strings raw, `null` empty,
/// booleans `true`/`false`, integral numbers without a fraction, arrays and
/// objects as compact JSON.
pub fn to_display_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                n.to_string()
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
                    Some(f) => format!("{f}"),
                    None => n.to_string(),
                }
            }
        }
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => serde_json::to_string(v).unwrap_or_default(),
    }
}

/// GH number coercion: null 0, bools 0/1, strings parsed (empty/blank is 0,
/// hex allowed, otherwise NaN), arrays/objects NaN.
fn to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => parse_number_str(s),
        Value::Array(_) | Value::Object(_) => f64::NAN,
    }
}

fn parse_number_str(s: &str) -> f64 {
    let t = s.trim();
    if t.is_empty() {
        return 0.0;
    }
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).map_or(f64::NAN, |i| i as f64)
    } else if body
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        // Restricting characters first rejects Rust-only spellings like "inf".
        body.parse::<f64>().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    };
    if neg { -v } else { v }
}

/// Case-insensitive string comparison (GH compares strings ignoring case).
fn cmp_str_ci(a: &str, b: &str) -> std::cmp::Ordering {
    let la = a.chars().flat_map(char::to_lowercase);
    let lb = b.chars().flat_map(char::to_lowercase);
    la.cmp(lb)
}

fn loose_eq(l: &Value, r: &Value) -> bool {
    match (l, r) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::String(a), Value::String(b)) => cmp_str_ci(a, b).is_eq(),
        // GH compares arrays/objects by identity; values here are copies,
        // so structurally equal containers are treated as the same instance.
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => l == r,
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => {
            let (a, b) = (to_number(l), to_number(r));
            a == b
        }
    }
}

fn compare(op: CmpOp, l: &Value, r: &Value) -> bool {
    use std::cmp::Ordering;
    match op {
        CmpOp::Eq => return loose_eq(l, r),
        CmpOp::Ne => return !loose_eq(l, r),
        _ => {}
    }
    let ord: Option<Ordering> = match (l, r) {
        (Value::String(a), Value::String(b)) => Some(cmp_str_ci(a, b)),
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => None,
        _ => to_number(l).partial_cmp(&to_number(r)),
    };
    let Some(ord) = ord else { return false };
    match op {
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
        CmpOp::Eq | CmpOp::Ne => false,
    }
}

fn arg(args: &[Value], i: usize) -> &Value {
    args.get(i).unwrap_or(&Value::Null)
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

fn call(func: Func, arg_exprs: &[Expr], ctx: &EvalContext) -> Result<Value, EvalError> {
    let st = ctx.status;
    match func {
        Func::Always => return Ok(Value::Bool(true)),
        Func::Success => return Ok(Value::Bool(st.success && !st.failure && !st.cancelled)),
        Func::Failure => return Ok(Value::Bool(st.failure)),
        Func::Cancelled => return Ok(Value::Bool(st.cancelled)),
        _ => {}
    }
    let args = arg_exprs
        .iter()
        .map(|a| eval(a, ctx))
        .collect::<Result<Vec<_>, _>>()?;
    let a0 = arg(&args, 0);
    let a1 = arg(&args, 1);
    Ok(match func {
        Func::Contains => Value::Bool(match a0 {
            Value::Array(items) => items.iter().any(|x| loose_eq(x, a1)),
            _ => lower(&to_display_string(a0)).contains(&lower(&to_display_string(a1))),
        }),
        Func::StartsWith => {
            Value::Bool(lower(&to_display_string(a0)).starts_with(&lower(&to_display_string(a1))))
        }
        Func::EndsWith => {
            Value::Bool(lower(&to_display_string(a0)).ends_with(&lower(&to_display_string(a1))))
        }
        Func::Format => Value::String(format_string(
            &to_display_string(a0),
            args.get(1..).unwrap_or_default(),
        )?),
        Func::Join => {
            let sep = if args.len() > 1 {
                to_display_string(a1)
            } else {
                ",".to_string()
            };
            match a0 {
                Value::Array(items) => Value::String(
                    items
                        .iter()
                        .map(to_display_string)
                        .collect::<Vec<_>>()
                        .join(&sep),
                ),
                other => Value::String(to_display_string(other)),
            }
        }
        Func::ToJson => Value::String(
            serde_json::to_string_pretty(a0).map_err(|e| EvalError::new(format!("toJSON: {e}")))?,
        ),
        Func::FromJson => from_json(a0)?,
        Func::Length => match a0 {
            Value::String(s) => Value::from(s.chars().count()),
            Value::Array(a) => Value::from(a.len()),
            Value::Object(o) => Value::from(o.len()),
            Value::Null => Value::from(0),
            other => {
                return Err(EvalError::new(format!(
                    "length() expects a string, list or object, got {}",
                    type_name(other)
                )));
            }
        },
        Func::Always | Func::Success | Func::Failure | Func::Cancelled => Value::Null,
    })
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// `format('{0} and {1}', a, b)` with `{{` / `}}` escapes.
fn format_string(fmt: &str, args: &[Value]) -> Result<String, EvalError> {
    let mut out = String::new();
    let mut chars = fmt.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut idx = String::new();
                let mut closed = false;
                for (_, d) in chars.by_ref() {
                    if d == '}' {
                        closed = true;
                        break;
                    }
                    idx.push(d);
                }
                let n: usize = match (closed, idx.parse()) {
                    (true, Ok(n)) => n,
                    _ => {
                        return Err(EvalError::new(format!(
                            "format: invalid placeholder at position {i}"
                        )));
                    }
                };
                let v = args.get(n).ok_or_else(|| {
                    EvalError::new(format!(
                        "format: placeholder {{{n}}} has no argument ({} given)",
                        args.len()
                    ))
                })?;
                out.push_str(&to_display_string(v));
            }
            '}' => {
                return Err(EvalError::new(format!(
                    "format: unmatched `}}` at position {i}"
                )));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn from_json(v: &Value) -> Result<Value, EvalError> {
    let Value::String(s) = v else {
        return Err(EvalError::new(format!(
            "fromJSON expects a string, got {}",
            type_name(v)
        )));
    };
    if s.len() > MAX_FROM_JSON_BYTES {
        return Err(EvalError::new("fromJSON input is larger than 1 MiB"));
    }
    // serde_json's own recursion limit (128) protects the stack while parsing;
    // the tighter depth limit is checked afterwards.
    let parsed: Value =
        serde_json::from_str(s).map_err(|e| EvalError::new(format!("fromJSON: {e}")))?;
    if json_depth(&parsed) > MAX_FROM_JSON_DEPTH {
        return Err(EvalError::new(format!(
            "fromJSON input is nested deeper than {MAX_FROM_JSON_DEPTH}"
        )));
    }
    Ok(parsed)
}

/// Nesting depth computed iteratively (no recursion on untrusted shapes).
pub(crate) fn json_depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}
