//! One test per validation rule: the exact line:col and the substance of the message.

use super::*;

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

const UNPUBLISH: &str = "name: x\nsteps:\n  - id: del\n    uses: npm.unpublish\n    with: { package: p, version: \"1.0.0\", message: m }\n    approval: { count: 2, from: [group:admins] }\n";

#[test]
fn rule_gate_may_narrow_the_window() {
    let src = format!("{UNPUBLISH}    gate: {{ window: 24h }}\n");
    let (pb, _) = parse("pb.yaml", src.as_bytes(), &Cat).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(pb.steps[0].gate_window_ms, Some(24 * 3_600_000));
}

#[test]
fn rule_gate_cannot_be_widened_or_switched_off() {
    let d = errs(&format!("{UNPUBLISH}    gate: {{ window: 96h }}\n"));
    has(&d, 7, 21, "can only make the deletion gate stricter");
    for key in [
        "enabled: false",
        "skip: true",
        "allow_self_approval: true",
        "retention: []",
    ] {
        let d = errs(&format!("{UNPUBLISH}    gate: {{ {key} }}\n"));
        has(&d, 7, 13, "would weaken the deletion gate");
    }
    let d = errs(&format!("{UNPUBLISH}    gate: {{ widow: 1h }}\n"));
    has(&d, 7, 13, "unknown key `widow`");
}

#[test]
fn rule_gate_only_on_destructive_steps() {
    let d = errs(
        "name: x\nsteps:\n  - id: d\n    uses: npm.deprecate\n    with: { package: p, versions: [\"1\"] }\n    gate: { window: 1h }\n",
    );
    has(&d, 6, 5, "applies only to destructive actions");
}

#[test]
fn rule_destructive_approval_cannot_be_zero() {
    let d = errs(
        "name: x\nsteps:\n  - id: del\n    uses: npm.unpublish\n    with: { package: p, version: \"1.0.0\", message: m }\n    approval: { count: 0, from: [group:a] }\n",
    );
    has(&d, 6, 24, "approval.count");
}
