use super::*;
use proptest::prelude::*;
use serde_json::{Value, json};

fn ctx_root() -> Value {
    json!({
        "params": {"package": "left-pad", "versions": ["1.0.1", "1.0.2"], "fixed": "1.0.3",
                    "n": 3, "flag": true, "inject": "${{ steps.x }}"},
        "incident": {"id": "INC-42"},
        "steps": {"blast": {"outputs": {"running": 2, "names": ["a", "b"]}}},
        "item": "1.0.1"
    })
}

fn ev_with(src: &str, status: StatusFlags) -> Value {
    let root = ctx_root();
    let ctx = EvalContext {
        root: &root,
        status,
    };
    parse_expr(src).unwrap().eval(&ctx).unwrap()
}

fn ev(src: &str) -> Value {
    ev_with(src, StatusFlags::default())
}

fn perr(src: &str) -> ExprError {
    parse_expr(src).unwrap_err()
}

#[test]
fn literals() {
    assert_eq!(ev("null"), Value::Null);
    assert_eq!(ev("true"), json!(true));
    assert_eq!(ev("false"), json!(false));
    assert_eq!(ev("42"), json!(42));
    assert_eq!(ev("-7"), json!(-7));
    assert_eq!(ev("1.5"), json!(1.5));
    assert_eq!(ev("0xff"), json!(255));
    assert_eq!(ev("1e3"), json!(1000));
    assert_eq!(ev("'it''s'"), json!("it's"));
    assert_eq!(ev("\"dq\""), json!("dq"));
    assert_eq!(ev("['a', 'b', 1]"), json!(["a", "b", 1]));
    assert_eq!(ev("[]"), json!([]));
}

#[test]
fn property_and_index_access() {
    assert_eq!(ev("params.package"), json!("left-pad"));
    assert_eq!(ev("params['package']"), json!("left-pad"));
    assert_eq!(ev("params.versions[1]"), json!("1.0.2"));
    assert_eq!(ev("params.versions[5]"), Value::Null);
    assert_eq!(ev("steps.blast.outputs.running"), json!(2));
    assert_eq!(ev("params.missing.deeper"), Value::Null);
    assert_eq!(ev("params.PACKAGE"), json!("left-pad")); // keys are case-insensitive
    assert_eq!(ev("item"), json!("1.0.1"));
}

#[test]
fn not_operator() {
    assert_eq!(ev("!true"), json!(false));
    assert_eq!(ev("!0"), json!(true));
    assert_eq!(ev("!!'x'"), json!(true));
    assert_eq!(ev("!params.missing"), json!(true));
}

#[test]
fn comparisons() {
    assert_eq!(ev("1 < 2"), json!(true));
    assert_eq!(ev("2 <= 2"), json!(true));
    assert_eq!(ev("3 > 2"), json!(true));
    assert_eq!(ev("2 >= 3"), json!(false));
    assert_eq!(ev("'a' < 'B'"), json!(true)); // case-insensitive ordering
    assert_eq!(ev("'abc' == 'ABC'"), json!(true));
    assert_eq!(ev("'abc' != 'abd'"), json!(true));
    assert_eq!(ev("null == 0"), json!(true)); // null coerces to 0
    assert_eq!(ev("'' == 0"), json!(true));
    assert_eq!(ev("'3' == 3"), json!(true));
    assert_eq!(ev("'0x10' == 16"), json!(true));
    assert_eq!(ev("true == 1"), json!(true));
    assert_eq!(ev("'abc' == 0"), json!(false)); // NaN never equals
    assert_eq!(ev("'abc' != 0"), json!(true));
    assert_eq!(ev("params.versions == 0"), json!(false));
    assert_eq!(ev("params.n == 3"), json!(true));
    assert_eq!(ev("'x' < 1"), json!(false));
}

#[test]
fn and_or_return_operands_and_short_circuit() {
    assert_eq!(ev("'a' && 'b'"), json!("b"));
    assert_eq!(ev("'' && 'b'"), json!(""));
    assert_eq!(ev("'' || 'b'"), json!("b"));
    assert_eq!(ev("'a' || 'b'"), json!("a"));
    // The right side would fail at runtime; short-circuit must skip it.
    assert_eq!(ev("false && fromJSON('{')"), json!(false));
    assert_eq!(ev("true || fromJSON('{')"), json!(true));
}

#[test]
fn precedence() {
    // && binds tighter than ||
    assert_eq!(ev("true || false && false"), json!(true));
    assert_eq!(ev("(true || false) && false"), json!(false));
    // == binds looser than <
    assert_eq!(ev("1 < 2 == true"), json!(true));
    // ! binds tighter than ==
    assert_eq!(ev("!1 == false"), json!(true));
    // . and [] bind tighter than !
    assert_eq!(ev("!params.flag"), json!(false));
    assert_eq!(ev("1 == 1 && 2 == 2"), json!(true));
}

#[test]
fn status_functions() {
    let ok = StatusFlags {
        success: true,
        ..Default::default()
    };
    let failed = StatusFlags {
        failure: true,
        ..Default::default()
    };
    let cancelled = StatusFlags {
        cancelled: true,
        ..Default::default()
    };
    assert_eq!(ev_with("always()", failed), json!(true));
    assert_eq!(ev_with("success()", ok), json!(true));
    assert_eq!(ev_with("success()", failed), json!(false));
    assert_eq!(ev_with("failure()", failed), json!(true));
    assert_eq!(ev_with("cancelled()", cancelled), json!(true));
    assert_eq!(ev_with("ALWAYS()", ok), json!(true)); // case-insensitive names
    assert!(parse_expr("failure()").unwrap().uses_status_function());
    assert!(!parse_expr("params.flag").unwrap().uses_status_function());
}

#[test]
fn string_functions() {
    assert_eq!(ev("contains('Hello World', 'world')"), json!(true));
    assert_eq!(ev("contains(params.versions, '1.0.2')"), json!(true));
    assert_eq!(ev("contains(params.versions, '9')"), json!(false));
    assert_eq!(ev("startsWith('Hello', 'he')"), json!(true));
    assert_eq!(ev("endsWith('Hello', 'LO')"), json!(true));
    assert_eq!(ev("endsWith('Hello', 'x')"), json!(false));
}

#[test]
fn format_function() {
    assert_eq!(ev("format('{0} {1}!', 'hi', 3)"), json!("hi 3!"));
    assert_eq!(ev("format('{{0}} {0}', 'x')"), json!("{0} x"));
    assert_eq!(ev("format('}}{{')"), json!("}{"));
    let root = ctx_root();
    let ctx = EvalContext {
        root: &root,
        status: StatusFlags::default(),
    };
    assert!(
        parse_expr("format('{1}', 'a')")
            .unwrap()
            .eval(&ctx)
            .is_err()
    );
    assert!(parse_expr("format('{0', 'a')").unwrap().eval(&ctx).is_err());
    assert!(parse_expr("format('a}', 'a')").unwrap().eval(&ctx).is_err());
}

#[test]
fn join_tojson_fromjson_length() {
    assert_eq!(ev("join(params.versions, ', ')"), json!("1.0.1, 1.0.2"));
    assert_eq!(ev("join(params.versions)"), json!("1.0.1,1.0.2"));
    assert_eq!(ev("join('abc', '-')"), json!("abc"));
    assert_eq!(
        ev("toJSON(params.versions)"),
        json!("[\n  \"1.0.1\",\n  \"1.0.2\"\n]")
    );
    assert_eq!(ev("fromJSON('{\"a\": [1]}').a[0]"), json!(1));
    assert_eq!(ev("length(params.versions)"), json!(2));
    assert_eq!(ev("length('héllo')"), json!(5));
    assert_eq!(ev("length(incident)"), json!(1));
    let root = ctx_root();
    let ctx = EvalContext {
        root: &root,
        status: StatusFlags::default(),
    };
    assert!(parse_expr("fromJSON('nope')").unwrap().eval(&ctx).is_err());
    let deep = format!("fromJSON('{}{}')", "[".repeat(65), "]".repeat(65));
    assert!(parse_expr(&deep).unwrap().eval(&ctx).is_err());
    assert!(parse_expr("length(1)").unwrap().eval(&ctx).is_err());
}

#[test]
fn parse_errors_have_offsets() {
    let e = perr("nosuch(1)");
    assert_eq!(e.offset, 0);
    assert!(e.message.contains("unknown function"));
    let e = perr("true && contains('a')");
    assert_eq!(e.offset, 8);
    assert!(e.message.contains("takes 2"));
    let e = perr("always(1)");
    assert!(e.message.contains("takes 0"));
    let e = perr("1 == env.HOME");
    assert_eq!(e.offset, 5);
    assert!(e.message.contains("unknown context `env`"));
    assert_eq!(perr("'abc").offset, 0);
    assert_eq!(perr("(1").offset, 2);
    assert_eq!(perr("1 2").offset, 2);
    assert_eq!(perr("").message, "empty expression");
    assert!(perr("params.").message.contains("property name"));
    assert!(perr("0xzz").message.contains("hexadecimal"));
}

#[test]
fn limits() {
    let long = format!("'{}'", "a".repeat(MAX_EXPR_LEN));
    assert!(perr(&long).message.contains("longer than"));
    let deep = format!("{}1{}", "(".repeat(65), ")".repeat(65));
    assert!(perr(&deep).message.contains("nesting"));
    let ok = format!("{}1{}", "(".repeat(64), ")".repeat(64));
    assert!(parse_expr(&ok).is_ok());
    assert!(perr(&"!".repeat(65)).message.contains("nesting"));
    let big_list = format!("[{}]", vec!["1"; 1025].join(","));
    assert!(perr(&big_list).message.contains("more than 1024"));
    let chain = vec!["1"; 300].join(" == ");
    assert!(perr(&chain).message.contains("too complex"));
}

#[test]
fn references_are_collected() {
    let e = parse_expr("steps.blast.outputs.running > 0 && contains(params['versions'], item)")
        .unwrap();
    let refs: Vec<Vec<String>> = e.references().into_iter().map(|r| r.path).collect();
    assert_eq!(
        refs,
        vec![
            vec!["steps", "blast", "outputs", "running"],
            vec!["params", "versions"],
            vec!["item"],
        ]
        .into_iter()
        .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );
    let e = parse_expr("params.versions[params.n]").unwrap();
    let refs: Vec<Vec<String>> = e.references().into_iter().map(|r| r.path).collect();
    assert_eq!(refs.len(), 2);
    assert_eq!(e.references()[0].offset, 0);
}

#[test]
fn template_split_and_eval() {
    let t = parse_template("Upgrade to ${{ params.fixed }}. Incident ${{ incident.id }}").unwrap();
    assert!(!t.is_literal());
    assert_eq!(t.parts().len(), 4);
    let root = ctx_root();
    let ctx = EvalContext {
        root: &root,
        status: StatusFlags::default(),
    };
    assert_eq!(
        t.eval(&ctx).unwrap(),
        json!("Upgrade to 1.0.3. Incident INC-42")
    );
    let refs = t.references();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0].offset, 15);
    assert_eq!(&t.source()[15..21], "params");

    // A lone expression keeps its type.
    let t = parse_template("  ${{ params.versions }} ").unwrap();
    assert_eq!(t.eval(&ctx).unwrap(), json!(["1.0.1", "1.0.2"]));
    // Interpolated non-strings use the display form.
    let t = parse_template("n=${{ params.n }} v=${{ params.versions }} z=${{ null }}").unwrap();
    assert_eq!(
        t.eval(&ctx).unwrap(),
        json!("n=3 v=[\"1.0.1\",\"1.0.2\"] z=")
    );
    let t = parse_template("plain").unwrap();
    assert!(t.is_literal());
    assert_eq!(t.eval(&ctx).unwrap(), json!("plain"));
    // `}}` inside a string literal doesn't end the expression.
    let t = parse_template("${{ format('}}{0}', 1) }}").unwrap();
    assert_eq!(t.eval(&ctx).unwrap(), json!("}1"));
}

#[test]
fn template_errors() {
    let e = parse_template("abc ${{ params.x").unwrap_err();
    assert_eq!(e.offset, 4);
    assert!(e.message.contains("unterminated"));
    let e = parse_template("ab ${{ bogus.x }}").unwrap_err();
    assert_eq!(e.offset, 7);
    assert!(parse_template("${{ }}").is_err());
}

#[test]
fn bare_expression_template() {
    let t = Template::from_expr_source("always()").unwrap();
    assert_eq!(t.source(), "${{ always() }}");
    let t = Template::from_expr_source("params.n").unwrap();
    assert_eq!(t.references()[0].offset, BARE_PREFIX.len());
}

#[test]
fn expression_injection_is_not_evaluated() {
    let root = ctx_root();
    let ctx = EvalContext {
        root: &root,
        status: StatusFlags::default(),
    };
    let t = parse_template("${{ params.inject }}").unwrap();
    assert_eq!(t.eval(&ctx).unwrap(), json!("${{ steps.x }}"));
    let t = parse_template("say ${{ params.inject }}!").unwrap();
    assert_eq!(t.eval(&ctx).unwrap(), json!("say ${{ steps.x }}!"));
}

#[test]
fn display_and_truthiness() {
    assert_eq!(to_display_string(&Value::Null), "");
    assert_eq!(to_display_string(&json!(true)), "true");
    assert_eq!(to_display_string(&json!(2.0)), "2");
    assert_eq!(to_display_string(&json!(2.5)), "2.5");
    assert_eq!(to_display_string(&json!({"a": 1})), "{\"a\":1}");
    assert!(!truthy(&json!(0)));
    assert!(!truthy(&json!("")));
    assert!(!truthy(&Value::Null));
    assert!(truthy(&json!([])));
    assert!(truthy(&json!("0")));
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        Just(json!("${{ steps.x }}")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof!["[a-z]{1,6}", Just("outputs".to_string())],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Strings built from expression-ish tokens, so many of them parse.
fn arb_expr_src() -> impl Strategy<Value = String> {
    let tok = prop_oneof![
        Just("params"),
        Just("steps"),
        Just("item"),
        Just("incident"),
        Just("."),
        Just("x"),
        Just("outputs"),
        Just("["),
        Just("]"),
        Just("("),
        Just(")"),
        Just("0"),
        Just("1.5"),
        Just("-2"),
        Just("0xff"),
        Just("'a'"),
        Just("'{0}'"),
        Just("null"),
        Just("true"),
        Just("!"),
        Just("=="),
        Just("!="),
        Just("<"),
        Just(">="),
        Just("&&"),
        Just("||"),
        Just(","),
        Just("contains("),
        Just("format("),
        Just("join("),
        Just("toJSON("),
        Just("fromJSON("),
        Just("length("),
        Just("startsWith("),
        Just("always()"),
        Just("'[1,{}]'"),
    ];
    prop::collection::vec(tok, 0..24).prop_map(|v| v.join(" "))
}

proptest! {
    #[test]
    fn parse_never_panics(s in ".{0,200}") {
        let _ = parse_expr(&s);
        let _ = parse_template(&s);
        let _ = parse_template(&format!("${{{{ {s} }}}}"));
    }

    #[test]
    fn eval_never_panics(src in arb_expr_src(), root in arb_json(), ctxv in arb_json()) {
        let root = json!({"params": root, "steps": ctxv.clone(), "item": ctxv, "incident": {}});
        let ctx = EvalContext { root: &root, status: StatusFlags::default() };
        if let Ok(e) = parse_expr(&src) {
            let _ = e.eval(&ctx);
            let _ = e.references();
        }
        if let Ok(t) = parse_template(&format!("a ${{{{ {src} }}}} b")) {
            let _ = t.eval(&ctx);
        }
    }

    #[test]
    fn display_never_panics(v in arb_json()) {
        let _ = to_display_string(&v);
        let _ = truthy(&v);
    }
}
