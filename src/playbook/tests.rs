use super::*;
use proptest::prelude::*;
use serde_json::json;

const fn input(name: &'static str, ty: InputType, required: bool) -> InputSpec {
    InputSpec {
        name,
        ty,
        required,
        help: "test input",
    }
}

static DEPRECATE_INPUTS: [InputSpec; 3] = [
    input("package", InputType::String, true),
    input("version", InputType::String, true),
    input("message", InputType::String, true),
];
static DIST_TAG_INPUTS: [InputSpec; 4] = [
    input("package", InputType::String, true),
    input("tag", InputType::String, true),
    input("versions", InputType::List, false),
    input("dry_run", InputType::Bool, false),
];
static ACTIONS: [ActionSpec; 3] = [
    ActionSpec {
        name: "npm.deprecate",
        summary: "deprecate",
        inputs: &DEPRECATE_INPUTS,
        outputs: &["deprecated"],
        mutating: true,
        destructive: false,
    },
    ActionSpec {
        name: "npm.dist_tag",
        summary: "move a dist-tag",
        inputs: &DIST_TAG_INPUTS,
        outputs: &[],
        mutating: true,
        destructive: false,
    },
    ActionSpec {
        name: "postmortem.draft",
        summary: "draft",
        inputs: &[],
        outputs: &["url"],
        mutating: false,
        destructive: false,
    },
];

struct Cat;
impl ActionCatalog for Cat {
    fn spec(&self, name: &str) -> Option<&ActionSpec> {
        ACTIONS.iter().find(|a| a.name == name)
    }
    fn names(&self) -> Vec<&'static str> {
        ACTIONS.iter().map(|a| a.name).collect()
    }
}

const HAPPY: &str = r#"name: npm-compromised-release
description: demo
params:
  package:  { type: string, required: true }
  versions: { type: list, required: true }
  fixed:    { type: string }
steps:
  - id: deprecate
    uses: npm.deprecate
    for_each: ${{ params.versions }}
    concurrency: 8
    with:
      package: ${{ params.package }}
      version: ${{ item }}
      message: "Compromised. Upgrade to ${{ params.fixed }}. Incident ${{ incident.id }}"
    retry: { attempts: 6, backoff: exponential, initial: 1s, max: 1m }
    timeout: 2m
  - id: postmortem
    uses: postmortem.draft
    needs: [deprecate]
    if: always()
"#;

fn errs(src: &str) -> Vec<Diagnostic> {
    match parse("pb.yaml", src.as_bytes(), &Cat) {
        Ok((_, w)) => panic!("expected errors, got ok with warnings {w:?}"),
        Err(d) => d.0,
    }
}

/// Asserts a diagnostic at `line:col` whose message contains `needle`.
fn has(diags: &[Diagnostic], line: u64, col: u64, needle: &str) -> Diagnostic {
    diags
        .iter()
        .find(|d| d.line == line && d.col == col && d.message.contains(needle))
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no diagnostic {line}:{col} `{needle}` in:\n{}",
                Diagnostics(diags.to_vec())
            )
        })
}

/// The happy playbook with `from` replaced by `to` (must occur).
fn happy_with(from: &str, to: &str) -> String {
    assert!(HAPPY.contains(from), "{from}");
    HAPPY.replacen(from, to, 1)
}

#[test]
fn happy_path() {
    let (pb, warnings) = parse("pb.yaml", HAPPY.as_bytes(), &Cat).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(pb.name, "npm-compromised-release");
    assert_eq!(pb.description, "demo");
    assert_eq!(pb.params.len(), 3);
    assert_eq!(pb.params[1].ty, ParamType::List);
    assert!(pb.params[1].required);
    assert_eq!(pb.params[0].loc, Loc { line: 4, col: 3 });
    let d = pb.step("deprecate").unwrap();
    assert_eq!(d.loc.line, 8);
    assert_eq!(d.concurrency, Some(8));
    assert_eq!(
        d.retry,
        RetryPolicy {
            attempts: 6,
            backoff: Backoff::Exponential,
            initial_ms: 1000,
            max_ms: 60_000
        }
    );
    assert_eq!(d.timeout_ms, Some(120_000));
    assert_eq!(
        d.with.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["package", "version", "message"]
    );
    let p = pb.step("postmortem").unwrap();
    assert_eq!(p.needs, ["deprecate"]);
    assert_eq!(p.if_.as_ref().unwrap().source(), "${{ always() }}");
    assert_eq!(pb.topo_order(), [0, 1]);
    assert_eq!(pb.sha256.len(), 64);
    assert_eq!(pb.source, HAPPY);

    // Evaluate the message for one item.
    let root = json!({"params": {"package": "lp", "versions": ["1.0.1"], "fixed": "1.0.3"},
                          "incident": {"id": "INC-7"}, "steps": {}, "item": "1.0.1"});
    let ctx = crate::expr::EvalContext {
        root: &root,
        status: Default::default(),
    };
    let msg = &d.with[2].1;
    assert_eq!(
        msg.eval(&ctx).unwrap(),
        json!("Compromised. Upgrade to 1.0.3. Incident INC-7")
    );
    assert_eq!(
        d.for_each.as_ref().unwrap().eval(&ctx).unwrap(),
        json!(["1.0.1"])
    );
    assert_eq!(d.with[1].1.eval(&ctx).unwrap(), json!("1.0.1"));
}

fn ok(src: &str) -> (Playbook, Vec<Diagnostic>) {
    match parse("pb.yaml", src.as_bytes(), &Cat) {
        Ok(r) => r,
        Err(d) => panic!("unexpected errors:\n{d}"),
    }
}

#[test]
fn diagnostic_display_format() {
    let d = has(
        &errs("name: x\nsteps:\n  - id: a\n    uses: nope\n"),
        4,
        11,
        "unknown action",
    );
    let text = d.to_string();
    assert!(
        text.starts_with("pb.yaml:4:11: error: unknown action `nope`\n  help: "),
        "{text}"
    );
}

#[test]
fn rule_yaml_syntax_error() {
    let d = errs("name: x\nsteps: [\n");
    assert_eq!(d.len(), 1);
    assert!(d[0].message.contains("invalid YAML"), "{}", d[0]);
    assert_eq!(d[0].line, 2);
}

#[test]
fn rule_duplicate_keys() {
    has(
        &errs("name: x\nname: y\nsteps: []\n"),
        2,
        1,
        "duplicate key `name`",
    );
}

#[test]
fn rule_multiple_documents() {
    let d = errs("name: x\n---\nname: y\n");
    assert!(d[0].message.contains("multiple YAML documents"), "{}", d[0]);
}

#[test]
fn rule_non_utf8() {
    let d = errs_bytes(b"name: x\nsteps:\n  - id: \xff\n");
    has(&d, 3, 9, "not valid UTF-8");
}

fn errs_bytes(b: &[u8]) -> Vec<Diagnostic> {
    parse("pb.yaml", b, &Cat).unwrap_err().0
}

#[test]
fn rule_input_too_large() {
    let big = format!(
        "name: x\ndescription: \"{}\"\n",
        "a".repeat(MAX_INPUT_BYTES)
    );
    has(&errs(&big), 1, 1, "limit");
}

#[test]
fn rule_unknown_top_level_key() {
    let d = has(
        &errs(&happy_with("description: demo", "descripton: demo")),
        2,
        1,
        "unknown key `descripton`",
    );
    assert!(d.help.unwrap().contains("did you mean `description`"));
}

#[test]
fn rule_missing_name_and_steps() {
    let d = errs("description: x\n");
    has(&d, 1, 1, "missing required key `name`");
    has(&d, 1, 1, "missing required key `steps`");
}

#[test]
fn rule_param_unknown_type() {
    let d = has(
        &errs(&happy_with(
            "fixed:    { type: string }",
            "fixed:    { type: strng }",
        )),
        6,
        21,
        "unknown param type `strng`",
    );
    assert!(d.help.unwrap().contains("string, list, int, bool"));
}

#[test]
fn rule_param_default_wrong_type() {
    has(
        &errs(&happy_with(
            "fixed:    { type: string }",
            "fixed:    { type: int, default: abc }",
        )),
        6,
        35,
        "default of param `fixed` must be a int",
    );
}

#[test]
fn rule_param_required_with_default_warns() {
    let (_, w) = ok(&happy_with(
        "fixed:    { type: string }",
        "fixed:    { type: string, required: true, default: x }",
    ));
    assert_eq!(w.len(), 1);
    assert_eq!(
        (w[0].line, w[0].col, w[0].severity),
        (6, 54, Severity::Warning)
    );
    assert!(w[0].message.contains("default is never used"));
}

#[test]
fn rule_param_unknown_key() {
    has(
        &errs(&happy_with(
            "fixed:    { type: string }",
            "fixed:    { type: string, requird: true }",
        )),
        6,
        29,
        "unknown key `requird`",
    );
}

#[test]
fn rule_step_missing_id() {
    has(
        &errs(&happy_with("  - id: postmortem\n    uses", "  - uses")),
        18,
        5,
        "step is missing `id`",
    );
}

#[test]
fn rule_step_invalid_id() {
    let d = has(
        &errs(&happy_with("id: postmortem", "id: Post Mortem")),
        18,
        9,
        "invalid step id `Post Mortem`",
    );
    assert!(d.help.unwrap().contains("lowercase"));
}

#[test]
fn rule_step_duplicate_id() {
    let d = has(
        &errs(&happy_with("id: postmortem", "id: deprecate")),
        18,
        9,
        "duplicate step id `deprecate`",
    );
    assert!(d.help.unwrap().contains("line 8"));
}

#[test]
fn rule_step_missing_uses() {
    has(
        &errs(&happy_with("    uses: postmortem.draft\n", "")),
        18,
        5,
        "step is missing `uses`",
    );
}

#[test]
fn rule_unknown_action_suggests_closest() {
    let d = has(
        &errs(&happy_with("uses: npm.deprecate", "uses: npm.deprecat")),
        9,
        11,
        "unknown action `npm.deprecat`",
    );
    assert!(d.help.unwrap().contains("`npm.deprecate`"));
}

#[test]
fn rule_unknown_with_key() {
    let d = has(
        &errs(&happy_with(
            "      version: ${{ item }}",
            "      versoin: ${{ item }}",
        )),
        14,
        7,
        "unknown input `versoin`",
    );
    assert!(d.help.unwrap().contains("did you mean `version`"));
}

#[test]
fn rule_missing_required_with_key() {
    let d = has(
        &errs(&happy_with("      version: ${{ item }}\n", "")),
        12,
        5,
        "requires input `version`",
    );
    assert!(d.help.unwrap().contains("add `version:`"));
}

#[test]
fn rule_wrong_literal_type() {
    let d = has(
        &errs(&happy_with(
            "      version: ${{ item }}",
            "      version: 1.5",
        )),
        14,
        16,
        "input `version` expects a string, found number",
    );
    assert!(d.help.unwrap().contains("quote it"));
    let src = "name: x\nsteps:\n  - id: t\n    uses: npm.dist_tag\n    with: { package: p, tag: latest, dry_run: 'yes' }\n";
    has(
        &errs(src),
        5,
        47,
        "input `dry_run` expects a bool, found string",
    );
}

#[test]
fn rule_wrong_param_type_for_input() {
    let d = errs(&happy_with(
        "      package: ${{ params.package }}",
        "      package: ${{ params.versions }}",
    ));
    has(
        &d,
        13,
        16,
        "input `package` expects a string, found param `versions` of type list",
    );
}

#[test]
fn rule_bad_expression_points_inside_scalar() {
    let d = has(
        &errs(&happy_with("${{ params.fixed }}", "${{ params.fixed == }}")),
        15,
        61,
        "invalid expression",
    );
    assert!(d.help.is_some());
    // Plain scalar: offset maps directly.
    has(
        &errs(&happy_with(
            "package: ${{ params.package }}",
            "package: ${{ nope(1) }}",
        )),
        13,
        20,
        "unknown function `nope`",
    );
    // Unterminated `${{`.
    has(
        &errs(&happy_with(
            "package: ${{ params.package }}",
            "package: x ${{ params.package",
        )),
        13,
        18,
        "unterminated",
    );
}

#[test]
fn rule_bad_expression_in_block_scalar_uses_scalar_start() {
    let src =
        "name: x\nsteps:\n  - id: a\n    uses: postmortem.draft\n    if: |\n      ${{ nope() }}\n";
    let d = has(&errs(src), 6, 7, "unknown function");
    assert_eq!(d.severity, Severity::Error);
}

#[test]
fn rule_unknown_param_reference() {
    let d = has(
        &errs(&happy_with("${{ params.fixed }}", "${{ params.fixd }}")),
        15,
        45,
        "unknown param `fixd`",
    );
    assert!(d.help.unwrap().contains("params.fixed"));
}

#[test]
fn rule_step_reference_not_in_needs() {
    let src = happy_with(
        "    if: always()\n",
        "    if: steps.deprecate.outputs.deprecated\n",
    )
    .replace("    needs: [deprecate]\n", "");
    let d = has(&errs(&src), 20, 9, "does not depend on `deprecate`");
    assert_eq!(d.help.as_deref(), Some("add deprecate to needs"));
    // Transitive needs are fine.
    let src = format!(
        "{HAPPY}  - id: third\n    uses: postmortem.draft\n    needs: postmortem\n    if: ${{{{ steps.deprecate.outputs.deprecated }}}}\n"
    );
    ok(&src);
}

#[test]
fn rule_unknown_step_reference() {
    let d = has(
        &errs(&happy_with("if: always()", "if: steps.deprecat.outputs.x")),
        21,
        9,
        "unknown step `deprecat`",
    );
    assert!(d.help.unwrap().contains("steps.deprecate"));
}

#[test]
fn rule_item_outside_for_each() {
    let src = happy_with(
        "    for_each: ${{ params.versions }}\n    concurrency: 8\n",
        "",
    );
    has(&errs(&src), 12, 20, "`item` is only available");
    has(
        &errs(&happy_with(
            "for_each: ${{ params.versions }}",
            "for_each: ${{ item }}",
        )),
        10,
        19,
        "`for_each` cannot use `item`",
    );
}

#[test]
fn rule_for_each_must_be_list() {
    has(
        &errs(&happy_with(
            "for_each: ${{ params.versions }}",
            "for_each: ${{ params.package }}",
        )),
        10,
        15,
        "`for_each` must be a list",
    );
    has(
        &errs(&happy_with(
            "for_each: ${{ params.versions }}",
            "for_each: 3",
        )),
        10,
        15,
        "`for_each` must be a list",
    );
}

#[test]
fn rule_concurrency() {
    has(
        &errs(&happy_with("concurrency: 8", "concurrency: 0")),
        11,
        18,
        "between 1 and 256",
    );
    let src = happy_with("    for_each: ${{ params.versions }}\n", "").replace("${{ item }}", "x");
    has(&errs(&src), 10, 5, "only valid together with `for_each`");
}

#[test]
fn rule_needs_dangling() {
    let d = has(
        &errs(&happy_with("needs: [deprecate]", "needs: [deprecat]")),
        20,
        13,
        "unknown step `deprecat`",
    );
    assert!(d.help.unwrap().contains("`deprecate`"));
}

#[test]
fn rule_needs_cycle() {
    let src = happy_with(
        "    concurrency: 8\n",
        "    concurrency: 8\n    needs: postmortem\n",
    );
    let d = errs(&src);
    let c = d.iter().find(|d| d.message.contains("cycle")).unwrap();
    assert!(
        c.message.contains("deprecate -> postmortem -> deprecate"),
        "{c}"
    );
    assert_eq!((c.line, c.col), (21, 13));
    has(
        &errs(&happy_with("needs: [deprecate]", "needs: [postmortem]")),
        20,
        13,
        "postmortem -> postmortem",
    );
}

#[test]
fn rule_retry() {
    has(
        &errs(&happy_with("attempts: 6", "attempts: 21")),
        16,
        24,
        "between 1 and 20",
    );
    has(
        &errs(&happy_with("attempts: 6", "attempts: 0")),
        16,
        24,
        "between 1 and 20",
    );
    has(
        &errs(&happy_with("backoff: exponential", "backoff: linear")),
        16,
        36,
        "exponential` or `fixed",
    );
    has(
        &errs(&happy_with("initial: 1s", "initial: 1sec")),
        16,
        58,
        "must be a duration",
    );
    has(
        &errs(&happy_with("initial: 1s", "initial: 2h")),
        16,
        58,
        "larger than `retry.max`",
    );
    has(
        &errs(&happy_with("max: 1m", "maximum: 1m")),
        16,
        62,
        "unknown key `maximum`",
    );
    let (pb, _) = ok(&happy_with(
        "initial: 1s, max: 1m",
        "initial: 500ms, max: 1h",
    ));
    assert_eq!(
        (pb.steps[0].retry.initial_ms, pb.steps[0].retry.max_ms),
        (500, 3_600_000)
    );
}

#[test]
fn rule_timeout() {
    let d = has(
        &errs(&happy_with("timeout: 2m", "timeout: 2 minutes")),
        17,
        14,
        "`timeout` must be a duration",
    );
    assert!(d.help.unwrap().contains("500ms"));
    has(
        &errs(&happy_with("timeout: 2m", "timeout: 120")),
        17,
        14,
        "must be a duration",
    );
}

#[test]
fn rule_approval() {
    let with = |a: &str| {
        happy_with(
            "    if: always()\n",
            &format!("    if: always()\n    approval: {a}\n"),
        )
    };
    let (pb, _) = ok(&with(
        "{ count: 2, from: [group:release-admins, user:alice] }",
    ));
    assert_eq!(
        pb.steps[1].approval,
        Some(ApprovalSpec {
            count: 2,
            from: vec!["group:release-admins".into(), "user:alice".into()]
        })
    );
    has(
        &errs(&with("{ count: 0, from: [user:a] }")),
        22,
        24,
        "between 1 and 100",
    );
    has(
        &errs(&with("{ count: 1, from: [] }")),
        22,
        33,
        "`approval.from` is empty",
    );
    has(&errs(&with("{ count: 1 }")), 22, 15, "missing `from`");
    has(
        &errs(&with("{ from: [team:x] }")),
        22,
        24,
        "invalid approver `team:x`",
    );
}

#[test]
fn rule_continue_on_error() {
    has(
        &errs(&happy_with(
            "    if: always()\n",
            "    if: always()\n    continue-on-error: yes\n",
        )),
        22,
        24,
        "must be true or false",
    );
    let (pb, _) = ok(&happy_with(
        "    if: always()\n",
        "    if: always()\n    continue-on-error: true\n",
    ));
    assert!(pb.steps[1].continue_on_error);
}

#[test]
fn rule_unknown_step_key() {
    let d = has(
        &errs(&happy_with("timeout: 2m", "timeot: 2m")),
        17,
        5,
        "unknown key `timeot` in a step",
    );
    assert!(d.help.unwrap().contains("did you mean `timeout`"));
}

#[test]
fn rule_if_forms() {
    let (pb, _) = ok(&happy_with(
        "if: always()",
        "if: ${{ failure() || params.fixed == '' }}",
    ));
    assert!(
        pb.steps[1]
            .if_
            .as_ref()
            .unwrap()
            .single_expr()
            .unwrap()
            .uses_status_function()
    );
    has(
        &errs(&happy_with("if: always()", "if: always() &&")),
        21,
        20,
        "invalid expression",
    );
    has(
        &errs(&happy_with("if: always()", "if: x ${{ always() }}")),
        21,
        9,
        "single expression",
    );
}

#[test]
fn rule_limits_steps_and_params() {
    let mut src = String::from("name: x\nsteps:\n");
    for i in 0..=MAX_STEPS {
        src.push_str(&format!("  - {{ id: s{i}, uses: postmortem.draft }}\n"));
    }
    has(&errs(&src), 3, 3, "too many steps");
    let mut src = String::from("name: x\nparams:\n");
    for i in 0..=MAX_PARAMS {
        src.push_str(&format!("  p{i}: {{}}\n"));
    }
    src.push_str("steps:\n  - { id: a, uses: postmortem.draft }\n");
    has(&errs(&src), 3, 3, "too many params");
}

#[test]
fn collects_all_diagnostics() {
    let src = happy_with("uses: npm.deprecate", "uses: npm.deprecat")
        .replace("timeout: 2m", "timeout: soon");
    let d = errs(&src);
    has(&d, 9, 11, "unknown action");
    has(&d, 17, 14, "must be a duration");
}

#[test]
fn alias_bomb_is_rejected_quickly() {
    let bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n\
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n\
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n\
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    let t = std::time::Instant::now();
    let d = errs(bomb);
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    assert!(
        d[0].message.contains("limit") || d[0].message.contains("YAML"),
        "{}",
        d[0]
    );
}

#[test]
fn deep_nesting_is_rejected_quickly() {
    let deep = format!("name: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let t = std::time::Instant::now();
    let d = errs(&deep);
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(d.len(), 1);
    let deep_block = (0..100)
        .map(|i| format!("{}k:\n", "  ".repeat(i)))
        .collect::<String>();
    assert_eq!(errs(&deep_block).len(), 1);
}

#[test]
fn topo_order_respects_needs() {
    let src = "name: x\nsteps:\n  - { id: c, uses: postmortem.draft, needs: [b] }\n  - { id: a, uses: postmortem.draft }\n  - { id: b, uses: postmortem.draft, needs: a }\n";
    let (pb, _) = ok(src);
    assert_eq!(pb.topo_order(), [1, 2, 0]);
}

#[test]
fn bind_params_rules() {
    let (pb, _) = ok(&happy_with(
        "fixed:    { type: string }",
        "fixed:    { type: string, default: '9.9.9' }\n  n: { type: int }\n  b: { type: bool }",
    ));
    let raw = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    let m = bind_params(
        &pb,
        &raw(&[
            ("package", "${{ steps.x }}"),
            ("versions", " a, b ,,c"),
            ("n", "42"),
            ("b", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(m["package"], json!("${{ steps.x }}")); // kept literally
    assert_eq!(m["versions"], json!(["a", "b", "c"]));
    assert_eq!(m["fixed"], json!("9.9.9")); // default applied
    assert_eq!(m["n"], json!(42));
    assert_eq!(m["b"], json!(true));
    let m = bind_params(
        &pb,
        &raw(&[("package", "p"), ("versions", "[\"1\",\"2\"]")]),
    )
    .unwrap();
    assert_eq!(m["versions"], json!(["1", "2"]));
    assert!(!m.contains_key("n"));
    let e = bind_params(&pb, &raw(&[("nope", "1"), ("n", "x"), ("b", "yes")])).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("<params>:0:0: error: unknown param `nope`"),
        "{text}"
    );
    assert!(text.contains("`x` is not an integer"));
    assert!(text.contains("`yes` is not `true` or `false`"));
    assert!(text.contains("missing required param `package`"));
    assert!(text.contains("missing required param `versions`"));
    assert!(e.has_errors());
}

#[test]
fn json_schema_describes_format() {
    let s = json_schema();
    assert_eq!(s["type"], "object");
    let req = s["required"].as_array().unwrap();
    assert!(req.contains(&json!("name")) && req.contains(&json!("steps")));
    let text = s.to_string();
    assert!(
        text.contains("continue-on-error")
            && text.contains("for_each")
            && text.contains("exponential")
    );
}

#[test]
fn value_template_injection_not_reparsed() {
    let (pb, _) = ok(HAPPY);
    let root = json!({"params": {"package": "${{ incident.id }}", "fixed": "${{ steps.x }}"}, "incident": {"id": "I"}, "item": "v"});
    let ctx = crate::expr::EvalContext {
        root: &root,
        status: Default::default(),
    };
    let d = &pb.steps[0];
    assert_eq!(d.with[0].1.eval(&ctx).unwrap(), json!("${{ incident.id }}"));
    assert_eq!(
        d.with[2].1.eval(&ctx).unwrap(),
        json!("Compromised. Upgrade to ${{ steps.x }}. Incident I")
    );
}

fn mutate() -> impl Strategy<Value = Vec<u8>> {
    let ops = prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            0u8..4,
            any::<u8>(),
            prop::sample::select(vec![
                &b"${{"[..],
                b"}}",
                b"[",
                b"{",
                b"\n",
                b"  ",
                b"- ",
                b": ",
                b"&a ",
                b"*a",
                b"'",
                b"\"",
                b"#",
                b"!!",
                b"---\n",
                b"\t",
            ]),
        ),
        1..8,
    );
    ops.prop_map(|ops| {
        let mut b = HAPPY.as_bytes().to_vec();
        for (idx, op, byte, snip) in ops {
            let i = idx.index(b.len() + 1);
            match op {
                0 => {
                    b.insert(i.min(b.len()), byte);
                }
                1 => {
                    if i < b.len() {
                        b.remove(i);
                    }
                }
                2 => {
                    for (k, s) in snip.iter().enumerate() {
                        b.insert((i + k).min(b.len()), *s);
                    }
                }
                _ => {
                    if i < b.len() {
                        b.truncate(i);
                    }
                }
            }
        }
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parse_arbitrary_bytes_never_panics(b in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse("fuzz.yaml", &b, &Cat);
    }

    #[test]
    fn parse_mutated_playbook_never_panics(b in mutate()) {
        if let Ok((pb, _)) = parse("fuzz.yaml", &b, &Cat) {
            let _ = pb.topo_order();
            let _ = bind_params(&pb, &[]);
        }
    }

    #[test]
    fn bind_params_never_panics(k in "[a-z]{1,8}", v in ".{0,40}") {
        let (pb, _) = ok(HAPPY);
        let _ = bind_params(&pb, &[(k, v)]);
    }
}
