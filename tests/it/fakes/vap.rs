//! A generic evaluator of `admissionregistration.k8s.io/v1` `ValidatingAdmissionPolicy`
//! objects, on the `cel` crate. It knows nothing about any particular policy: it takes the
//! policy, binding and params as JSON, the way the API server stores them.
//!
//! What it follows from the API server (`k8s.io/apiserver/pkg/admission/plugin/policy/
//! validating`, `.../cel/filter.go`):
//!
//! * `spec.matchConditions` first: any `false` → the policy does not apply (admitted, not
//!   evaluated further) even when another condition errored; otherwise an error is an error;
//! * `spec.variables` in order, each visible as `variables.<name>` to the ones after it and
//!   to the validations. The API server binds variables lazily (an erroring variable only
//!   matters where it is used); the `cel` crate has no lazy bindings, so a variable that
//!   errors is left unbound and an expression that mentions `variables.<name>` reports that
//!   variable's error instead of being evaluated;
//! * the activation: `object` (null on DELETE), `oldObject` (null on CREATE), `params` (null
//!   without params), `request` (`operation`, `kind`, `resource`, `subResource`, `name`,
//!   `namespace`, `userInfo`, `dryRun`, …) and `namespaceObject`;
//! * each `spec.validations[]` in order; the first one that is `false` (or errors) decides.
//!   Its message: `messageExpression` when it yields a non-blank single-line string (an error
//!   falls back, as on the server), else `message`, else `failed expression: <expression>`.
//!   `reason` defaults to `Invalid`;
//! * runtime errors read `expression '<expr>' resulted in error: <cause>` (the server's
//!   wording, with the `cel` crate's cause).
//!
//! Not modelled, or not available in the `cel` crate 0.15 (checked; each is an
//! `Undeclared reference` or `no matching overload` error at evaluation time, since the
//! crate has no type checker and [`compile_check`] only parses):
//!
//! * Kubernetes' own CEL libraries: `quantity()`, `url()`, `ip()`/`cidr()`, regex
//!   `find`/`findAll`, list `isSorted`/`sum`/`min`/`max`/`indexOf`/`lastIndexOf`, `sets.*`,
//!   `authorizer` (the variable is not bound), `cel.bind`, `math.*`;
//! * two-variable comprehensions (`map.all(k, v, …)`);
//! * `auditAnnotations`, static type checking (a type error shows up at evaluation, not
//!   when the policy is created) and the cost budget.
//!
//! Available beyond the standard library: the `strings` extension (`lastIndexOf`,
//! `substring`, `replace`, `split`, `join`, `lowerAscii`, `format`, `charAt`, `trim`, …),
//! `base64.encode/decode`, `matches` (regex), optional syntax (`a.?b.orValue(x)`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::objects::{Key, Map};
use cel::{Context, Env, Program, Value as Cel};
use serde_json::{Map as JsonMap, Number, Value, json};

/// The CEL environment shared by every evaluation: the standard library with macros, plus
/// the extensions Kubernetes also enables (`strings`, base64 `encoders`).
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .expect("register the cel strings extension");
    env.add_extension(cel::extensions::encoders)
        .expect("register the cel encoders extension");
    Arc::new(env)
});

/// What admission sees of a request (the fields of `request` plus the objects).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdmissionRequest {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: String,
    pub group: String,
    pub version: String,
    /// The object's kind (`Pod` also for `pods/ephemeralcontainers`).
    pub kind: String,
    /// Plural resource, without the subresource (`pods`).
    pub resource: String,
    /// `ephemeralcontainers`, `status`, or empty.
    pub sub_resource: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    /// The new object (ignored on DELETE, where `object` is null).
    pub object: Value,
    /// The stored object on UPDATE and DELETE.
    pub old_object: Option<Value>,
    /// `request.userInfo.username`.
    pub user: String,
    pub dry_run: bool,
    /// `namespaceObject` (null when `None`).
    pub namespace_object: Option<Value>,
}

/// The outcome of one policy under one binding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// `false` when a match condition excluded the request (then `allowed` is `true`).
    pub matched: bool,
    /// Whether every validation passed. What a failure does is up to `actions`.
    pub allowed: bool,
    /// The failing validation's `reason` (`Invalid` by default); empty when allowed.
    pub reason: String,
    /// The failing validation's message; empty when allowed.
    pub message: String,
    /// The binding's `validationActions` (`Deny`, `Warn`, `Audit`).
    pub actions: Vec<String>,
    /// Index of the failing validation.
    pub failed_validation: Option<usize>,
    /// A `messageExpression` that errored or yielded an unusable message (the server falls
    /// back to `message` silently; tests want to know).
    pub message_expression_error: Option<String>,
}

/// A policy expression that failed to compile or to evaluate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalError {
    /// The expression as written in the policy.
    pub expression: String,
    /// The `cel` crate's error (or this evaluator's, for a non-bool result).
    pub message: String,
    /// A compile (parse) error rather than a runtime one.
    pub compile: bool,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.compile {
            write!(
                f,
                "compilation failed for expression '{}': {}",
                self.expression, self.message
            )
        } else {
            write!(
                f,
                "expression '{}' resulted in error: {}",
                self.expression, self.message
            )
        }
    }
}

impl std::error::Error for EvalError {}

fn compile(expression: &str) -> Result<Program, EvalError> {
    ENV.compile(expression).map_err(|e| EvalError {
        expression: expression.to_string(),
        message: e.to_string(),
        compile: true,
    })
}

/// JSON → CEL. Integers stay `int` (JSON numbers in Kubernetes objects are int64; the
/// `cel` crate's serde path would make positive ones `uint`, and `uint + int` is an error).
pub fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(a) => Cel::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(o) => cel_map(
            o.iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v))),
        ),
    }
}

fn cel_map(entries: impl IntoIterator<Item = (Key, Cel)>) -> Cel {
    Cel::Map(Map {
        map: Arc::new(entries.into_iter().collect::<HashMap<_, _>>()),
    })
}

/// CEL → JSON, for reporting results (bytes become base64-free arrays of numbers, other
/// exotic values their debug form).
pub fn from_cel(v: &Cel) -> Value {
    match v {
        Cel::Null => Value::Null,
        Cel::Bool(b) => Value::Bool(*b),
        Cel::Int(i) => Value::from(*i),
        Cel::UInt(u) => Value::from(*u),
        Cel::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Cel::String(s) => Value::String(s.to_string()),
        Cel::Bytes(b) => Value::Array(b.iter().map(|x| Value::from(*x)).collect()),
        Cel::List(l) => Value::Array(l.iter().map(from_cel).collect()),
        Cel::Map(m) => {
            let mut out = JsonMap::new();
            for (k, v) in m.map.iter() {
                let key = match k {
                    Key::String(s) => s.to_string(),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => u.to_string(),
                    Key::Bool(b) => b.to_string(),
                };
                out.insert(key, from_cel(v));
            }
            Value::Object(out)
        }
        other => Value::String(format!("{other:?}")),
    }
}

fn type_name(v: &Cel) -> String {
    v.type_of().to_string()
}

/// One evaluation: the activation plus the variables evaluated so far.
struct Activation {
    base: Vec<(&'static str, Cel)>,
    variables: HashMap<Key, Cel>,
    /// Variables whose expression errored: name → the error.
    failed: Vec<(String, EvalError)>,
}

impl Activation {
    fn context(&self) -> Context<'static, 'static> {
        let mut ctx = Context::with_env(ENV.clone());
        for (name, value) in &self.base {
            ctx.add_variable_from_value(*name, value.clone());
        }
        // Built by hand: the `cel` crate has no notion of policy variables.
        ctx.add_variable_from_value(
            "variables",
            Cel::Map(Map {
                map: Arc::new(self.variables.clone()),
            }),
        );
        ctx
    }

    /// Evaluates `expression`, or reports the error of a failed variable it uses.
    fn eval(&self, expression: &str) -> Result<Cel, EvalError> {
        if let Some((name, err)) = self
            .failed
            .iter()
            .find(|(name, _)| mentions_variable(expression, name))
        {
            return Err(EvalError {
                expression: expression.to_string(),
                message: format!("variables.{name}: {}", err.message),
                compile: err.compile,
            });
        }
        let program = compile(expression)?;
        program.execute(&self.context()).map_err(|e| EvalError {
            expression: expression.to_string(),
            message: e.to_string(),
            compile: false,
        })
    }

    fn eval_bool(&self, expression: &str) -> Result<bool, EvalError> {
        match self.eval(expression)? {
            Cel::Bool(b) => Ok(b),
            other => Err(EvalError {
                expression: expression.to_string(),
                message: format!("expected a bool, got {}", type_name(&other)),
                compile: false,
            }),
        }
    }
}

/// Whether `expression` refers to `variables.<name>` (not just a longer name).
fn mentions_variable(expression: &str, name: &str) -> bool {
    let needle = format!("variables.{name}");
    expression.match_indices(&needle).any(|(i, _)| {
        let after = expression[i + needle.len()..].chars().next();
        !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

fn request_value(req: &AdmissionRequest) -> Value {
    let sub = &req.sub_resource;
    json!({
        "uid": "00000000-0000-0000-0000-000000000000",
        "operation": req.operation,
        "kind": {"group": req.group, "version": req.version, "kind": req.kind},
        "resource": {"group": req.group, "version": req.version, "resource": req.resource},
        "subResource": sub,
        "requestKind": {"group": req.group, "version": req.version, "kind": req.kind},
        "requestResource": {"group": req.group, "version": req.version, "resource": req.resource},
        "requestSubResource": sub,
        "name": req.name,
        "namespace": req.namespace,
        "userInfo": {"username": req.user, "groups": ["system:authenticated"]},
        "dryRun": req.dry_run,
        "options": null,
    })
}

fn activation(params: Option<&Value>, req: &AdmissionRequest) -> Activation {
    let object = if req.operation == "DELETE" {
        Value::Null
    } else {
        req.object.clone()
    };
    Activation {
        base: vec![
            ("object", to_cel(&object)),
            (
                "oldObject",
                to_cel(req.old_object.as_ref().unwrap_or(&Value::Null)),
            ),
            ("params", to_cel(params.unwrap_or(&Value::Null))),
            ("request", to_cel(&request_value(req))),
            (
                "namespaceObject",
                to_cel(req.namespace_object.as_ref().unwrap_or(&Value::Null)),
            ),
        ],
        variables: HashMap::new(),
        failed: Vec::new(),
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn list_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return &[],
        }
    }
    cur.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// Evaluates `policy` for `req` under `binding` with `params` (the params object, already
/// resolved by the caller; `None` = no params). `Err`: an expression failed to compile or
/// evaluate — the caller applies the policy's `failurePolicy`.
pub fn evaluate(
    policy: &Value,
    binding: &Value,
    params: Option<&Value>,
    req: &AdmissionRequest,
) -> Result<Verdict, EvalError> {
    let actions: Vec<String> = list_at(binding, &["spec", "validationActions"])
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let mut act = activation(params, req);

    // matchConditions: a `false` wins over an error (the server's semantics).
    let mut condition_error = None;
    for cond in list_at(policy, &["spec", "matchConditions"]) {
        match act.eval_bool(str_at(cond, "expression")) {
            Ok(true) => {}
            Ok(false) => {
                return Ok(Verdict {
                    matched: false,
                    allowed: true,
                    actions,
                    ..Verdict::default()
                });
            }
            Err(e) => {
                condition_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = condition_error {
        return Err(e);
    }

    for var in list_at(policy, &["spec", "variables"]) {
        let name = str_at(var, "name").to_string();
        match act.eval(str_at(var, "expression")) {
            Ok(v) => {
                act.variables.insert(Key::String(Arc::new(name)), v);
            }
            Err(e) if e.compile => return Err(e),
            Err(e) => act.failed.push((name, e)),
        }
    }

    for (i, validation) in list_at(policy, &["spec", "validations"]).iter().enumerate() {
        let expression = str_at(validation, "expression");
        if act.eval_bool(expression)? {
            continue;
        }
        let mut message_expression_error = None;
        let mut message = None;
        if let Some(me) = validation.get("messageExpression").and_then(Value::as_str) {
            match act.eval(me) {
                Ok(Cel::String(s)) if !s.trim().is_empty() && !s.contains('\n') => {
                    message = Some(s.to_string());
                }
                Ok(Cel::String(s)) => {
                    message_expression_error = Some(format!(
                        "messageExpression '{me}' yielded an unusable message {s:?}"
                    ));
                }
                Ok(other) => {
                    message_expression_error = Some(format!(
                        "messageExpression '{me}' must evaluate to a string, got {}",
                        type_name(&other)
                    ));
                }
                Err(e) => message_expression_error = Some(e.to_string()),
            }
        }
        let message = message.unwrap_or_else(|| match str_at(validation, "message") {
            "" => format!("failed expression: {}", expression.trim()),
            m => m.to_string(),
        });
        let reason = match str_at(validation, "reason") {
            "" => "Invalid".to_string(),
            r => r.to_string(),
        };
        return Ok(Verdict {
            matched: true,
            allowed: false,
            reason,
            message,
            actions,
            failed_validation: Some(i),
            message_expression_error,
        });
    }
    Ok(Verdict {
        matched: true,
        allowed: true,
        actions,
        ..Verdict::default()
    })
}

/// Evaluates the policy's validations against `object` as a CREATE of it, without a
/// binding (actions `[Deny]`): for offline tests of a policy. Group/version/kind come from
/// the object's `apiVersion`/`kind`; the resource is the lower-cased kind + `s` (good enough
/// for policies that don't look at `request.resource`).
pub fn evaluate_policy_on(
    policy: &Value,
    params: Option<&Value>,
    object: &Value,
) -> Result<Verdict, EvalError> {
    let api_version = str_at(object, "apiVersion");
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let kind = str_at(object, "kind");
    let metadata = object.get("metadata").cloned().unwrap_or(Value::Null);
    let req = AdmissionRequest {
        operation: "CREATE".into(),
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        resource: format!("{}s", kind.to_ascii_lowercase()),
        namespace: str_at(&metadata, "namespace").into(),
        name: str_at(&metadata, "name").into(),
        object: object.clone(),
        user: "system:admin".into(),
        ..AdmissionRequest::default()
    };
    evaluate(
        policy,
        &json!({"spec": {"validationActions": ["Deny"]}}),
        params,
        &req,
    )
}

/// Evaluates one expression with the given top-level bindings (JSON values); the result as
/// JSON. For probing what the `cel` crate supports.
pub fn eval_expression(expression: &str, bindings: &[(&str, &Value)]) -> Result<Value, EvalError> {
    let program = compile(expression)?;
    let mut ctx = Context::with_env(ENV.clone());
    for (name, value) in bindings {
        ctx.add_variable_from_value(*name, to_cel(value));
    }
    program
        .execute(&ctx)
        .map(|v| from_cel(&v))
        .map_err(|e| EvalError {
            expression: expression.to_string(),
            message: e.to_string(),
            compile: false,
        })
}

/// Compiles every expression of a policy, as the API server does when the policy is
/// created: `Err((field path, error))` for the first that does not compile.
pub fn compile_check(policy: &Value) -> Result<(), (String, EvalError)> {
    let mut exprs: Vec<(String, &str)> = Vec::new();
    for (i, c) in list_at(policy, &["spec", "matchConditions"])
        .iter()
        .enumerate()
    {
        exprs.push((
            format!("spec.matchConditions[{i}].expression"),
            str_at(c, "expression"),
        ));
    }
    for (i, v) in list_at(policy, &["spec", "variables"]).iter().enumerate() {
        exprs.push((
            format!("spec.variables[{i}].expression"),
            str_at(v, "expression"),
        ));
    }
    for (i, v) in list_at(policy, &["spec", "validations"]).iter().enumerate() {
        exprs.push((
            format!("spec.validations[{i}].expression"),
            str_at(v, "expression"),
        ));
        if let Some(me) = v.get("messageExpression").and_then(Value::as_str) {
            exprs.push((format!("spec.validations[{i}].messageExpression"), me));
        }
    }
    for (path, e) in exprs {
        if e.trim().is_empty() {
            return Err((
                path,
                EvalError {
                    expression: String::new(),
                    message: "Required value".into(),
                    compile: true,
                },
            ));
        }
        compile(e).map_err(|err| (path, err))?;
    }
    Ok(())
}
