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
static ACTIONS: [ActionSpec; 4] = [
    ActionSpec {
        name: "npm.unpublish",
        summary: "unpublish",
        inputs: &DEPRECATE_INPUTS,
        outputs: &[],
        mutating: true,
        destructive: true,
    },
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

mod rules;

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
