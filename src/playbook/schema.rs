//! JSON Schema of the YAML format, for editors. Mirror structs describe the
//! shape only; semantic checks live in `validate`.

use std::collections::BTreeMap;

use schemars::JsonSchema;

#[allow(dead_code)] // only used for schema generation
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
/// A Recall incident-response playbook.
struct PlaybookDoc {
    /// Playbook name.
    name: String,
    /// What this playbook is for.
    #[serde(default)]
    description: Option<String>,
    /// Parameters supplied with `--param KEY=VALUE`.
    #[serde(default)]
    params: Option<BTreeMap<String, ParamDoc>>,
    /// Steps, run in dependency (`needs`) order.
    #[schemars(length(min = 1, max = 500))]
    steps: Vec<StepDoc>,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct ParamDoc {
    /// Value type (default string).
    #[serde(rename = "type", default)]
    ty: Option<ParamTypeDoc>,
    #[serde(default)]
    required: Option<bool>,
    /// Default value; must match `type`.
    #[serde(default)]
    default: Option<serde_json::Value>,
    #[serde(default)]
    description: Option<String>,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ParamTypeDoc {
    String,
    List,
    Int,
    Bool,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
enum NeedsDoc {
    One(String),
    Many(Vec<String>),
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
enum ConditionDoc {
    Expr(String),
    Const(bool),
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct StepDoc {
    /// Unique id, `[a-z0-9_-]+`.
    #[schemars(regex(pattern = r"^[a-z0-9_-]+$"))]
    id: String,
    #[serde(default)]
    name: Option<String>,
    /// Action name, e.g. `npm.deprecate`.
    uses: String,
    /// Action inputs; strings may contain `${{ expr }}`.
    #[serde(default)]
    with: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    needs: Option<NeedsDoc>,
    /// `${{ expr }}` or a bare expression such as `always()`; default `success()`.
    #[serde(rename = "if", default)]
    if_: Option<ConditionDoc>,
    /// A list, or `${{ expr }}` yielding one; each element is `item`.
    #[serde(default)]
    for_each: Option<serde_json::Value>,
    /// Max parallel items (only with `for_each`).
    #[serde(default)]
    #[schemars(range(min = 1, max = 256))]
    concurrency: Option<u32>,
    #[serde(default)]
    retry: Option<RetryDoc>,
    /// Duration like `500ms`, `30s`, `2m`, `1h`.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    timeout: Option<String>,
    #[serde(rename = "continue-on-error", default)]
    continue_on_error: Option<bool>,
    #[serde(default)]
    approval: Option<ApprovalDoc>,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct RetryDoc {
    /// Total tries.
    #[serde(default)]
    #[schemars(range(min = 1, max = 20))]
    attempts: Option<u32>,
    #[serde(default)]
    backoff: Option<BackoffDoc>,
    #[serde(default)]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    initial: Option<String>,
    #[serde(default)]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    max: Option<String>,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum BackoffDoc {
    Exponential,
    Fixed,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct ApprovalDoc {
    #[serde(default)]
    #[schemars(range(min = 1))]
    count: Option<u32>,
    /// `group:NAME` or `user:NAME` entries.
    #[schemars(length(min = 1))]
    from: Vec<ApproverDoc>,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[schemars(transparent)]
struct ApproverDoc(#[schemars(regex(pattern = r"^(group|user):[A-Za-z0-9_.@-]+$"))] String);

/// JSON Schema (draft 2020-12) of the playbook YAML format.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(PlaybookDoc).to_value()
}
