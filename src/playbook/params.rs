//! Binding `--param KEY=VALUE` strings to declared params.

use serde_json::{Map, Value};

use super::{Diagnostic, Diagnostics, ParamType, Playbook, Severity};

const PARAMS_FILE: &str = "<params>";

fn err(message: String, help: Option<String>) -> Diagnostic {
    Diagnostic {
        file: PARAMS_FILE.to_string(),
        line: 0,
        col: 0,
        severity: Severity::Error,
        message,
        help,
    }
}

/// Converts raw CLI values to typed JSON, applies defaults and checks that
/// required params are present. Values are data: a value containing `${{`
/// is kept literally and never evaluated.
pub fn bind_params(
    pb: &Playbook,
    raw: &[(String, String)],
) -> Result<Map<String, Value>, Diagnostics> {
    let mut out = Map::new();
    let mut diags = Vec::new();
    let names: Vec<&str> = pb.params.iter().map(|p| p.name.as_str()).collect();
    for (key, value) in raw {
        let Some(def) = pb.param(key) else {
            diags.push(err(
                format!("unknown param `{key}`"),
                Some(if names.is_empty() {
                    "this playbook takes no params".to_string()
                } else {
                    format!("known params: {}", names.join(", "))
                }),
            ));
            continue;
        };
        if out.contains_key(key) {
            diags.push(err(
                format!("param `{key}` given more than once"),
                Some("pass each param once".into()),
            ));
            continue;
        }
        match convert(def.ty, value) {
            Ok(v) => {
                out.insert(key.clone(), v);
            }
            Err(msg) => diags.push(err(
                format!("param `{key}`: {msg}"),
                Some(format!("pass a {} value", def.ty.name())),
            )),
        }
    }
    for def in &pb.params {
        if out.contains_key(&def.name) {
            continue;
        }
        if let Some(d) = &def.default {
            out.insert(def.name.clone(), d.clone());
        } else if def.required {
            diags.push(err(
                format!("missing required param `{}`", def.name),
                Some(format!("pass --param {}=VALUE", def.name)),
            ));
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(Diagnostics(diags))
    }
}

fn convert(ty: ParamType, raw: &str) -> Result<Value, String> {
    match ty {
        ParamType::String => Ok(Value::String(raw.to_string())),
        ParamType::Int => raw
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("`{raw}` is not an integer")),
        ParamType::Bool => match raw.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("`{raw}` is not `true` or `false`")),
        },
        ParamType::List => {
            let t = raw.trim();
            if t.starts_with('[') {
                let v: Value =
                    serde_json::from_str(t).map_err(|e| format!("invalid JSON list: {e}"))?;
                match v {
                    Value::Array(items) => Ok(Value::Array(items)),
                    _ => Err("expected a JSON array".to_string()),
                }
            } else {
                Ok(Value::Array(
                    t.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                ))
            }
        }
    }
}
