//! Bad input: malformed playbooks and parameter sets each get a precise error (file:line:col
//! for playbooks) and change nothing — no incident is created, no row is written.

use crate::support::{Recall, write_file};

enum Bytes {
    Lit(&'static [u8]),
    /// 5,000 nested flow sequences.
    Deep,
    /// Over the 1 MiB limit.
    Huge,
}

struct Case {
    name: &'static str,
    bytes: Bytes,
    line: Option<u32>,
    needle: &'static str,
}

const CASES: &[Case] = &[
    Case { name: "alias_bomb", bytes: Bytes::Lit(b"a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\nname: x\nsteps: []\n"), line: Some(4), needle: "exceeds safety limits" },
    Case { name: "bad_approval", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: m }\n    approval: { count: 0, from: [] }\n"), line: Some(6), needle: "approval.count" },
    Case { name: "bad_concurrency", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    concurrency: 4\n    with: { message: m }\n"), line: Some(5), needle: "only valid together with `for_each`" },
    Case { name: "bad_expression", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: \"${{ params.x == }}\" }\n"), line: Some(5), needle: "invalid expression" },
    Case { name: "bad_retry", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: m }\n    retry: { attempts: 0, initial: 5m, max: 1s }\n"), line: Some(6), needle: "retry.attempts" },
    Case { name: "bad_step_key", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: m }\n    continue_on_error: true\n"), line: Some(6), needle: "did you mean `continue-on-error`" },
    Case { name: "bad_timeout", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: m }\n    timeout: soon\n"), line: Some(6), needle: "must be a duration" },
    Case { name: "cycle", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    needs: [b]\n    with: { message: m }\n  - id: b\n    uses: incident.note\n    needs: [a]\n    with: { message: m }\n"), line: None, needle: "cycle: a -> b -> a" },
    Case { name: "dangling_needs", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    needs: [ghost]\n    with: { message: m }\n"), line: Some(5), needle: "unknown step `ghost`" },
    Case { name: "deep_nesting", bytes: Bytes::Deep, line: Some(2), needle: "nested deeper" },
    Case { name: "duplicate_id", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: m }\n  - id: a\n    uses: incident.note\n    with: { message: m }\n"), line: Some(6), needle: "duplicate step id `a`" },
    Case { name: "duplicate_key", bytes: Bytes::Lit(b"name: x\nname: y\nsteps: []\n"), line: Some(2), needle: "duplicate key `name`" },
    Case { name: "empty", bytes: Bytes::Lit(b""), line: Some(1), needle: "must be a mapping" },
    Case { name: "item_outside_foreach", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: \"${{ item }}\" }\n"), line: Some(5), needle: "`item` is only available" },
    Case { name: "missing_steps", bytes: Bytes::Lit(b"name: x\n"), line: Some(1), needle: "missing required key `steps`" },
    Case { name: "missing_with_key", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n"), line: Some(3), needle: "requires input `message`" },
    Case { name: "non_utf8", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: \"caf\xe9\" }\n"), line: Some(5), needle: "not valid UTF-8" },
    Case { name: "not_a_map", bytes: Bytes::Lit(b"- just\n- a list\n"), line: Some(1), needle: "must be a mapping" },
    Case { name: "step_ref_not_needed", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: m }\n  - id: b\n    uses: incident.note\n    with: { message: \"${{ steps.a.outputs.message }}\" }\n"), line: Some(8), needle: "does not depend on `a`" },
    Case { name: "tabs_indent", bytes: Bytes::Lit(b"name: x\nsteps:\n\t- id: a\n"), line: Some(3), needle: "tabs" },
    Case { name: "unknown_action", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: npm.deprecat\n    with: { message: hi }\n"), line: Some(4), needle: "did you mean `npm.deprecate`" },
    Case { name: "unknown_param", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: \"${{ params.nope }}\" }\n"), line: Some(5), needle: "unknown param `nope`" },
    Case { name: "unknown_top_key", bytes: Bytes::Lit(b"name: x\nstpes: []\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: hi }\n"), line: Some(2), needle: "did you mean `steps`" },
    Case { name: "unknown_with_key", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { mesage: hi }\n"), line: Some(5), needle: "did you mean `message`" },
    Case { name: "unterminated_expr", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: \"${{ incident.id \" }\n"), line: Some(5), needle: "unterminated" },
    Case { name: "wrong_type_literal", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: [1, 2] }\n"), line: Some(5), needle: "expects a string, found list" },
    Case { name: "yaml_syntax", bytes: Bytes::Lit(b"name: x\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: [unclosed\n"), line: Some(5), needle: "unclosed bracket" },
    Case { name: "huge", bytes: Bytes::Huge, line: Some(1), needle: "the limit is 1048576 bytes" },
    Case { name: "wrong_type_param", bytes: Bytes::Lit(b"name: x\nparams:\n  vs: { type: list, required: true }\nsteps:\n  - id: a\n    uses: npm.deprecate\n    with:\n      package: ${{ params.vs }}\n      version: '1.0.0'\n      message: m\n"), line: Some(8), needle: "list" },
];

fn bytes(b: &Bytes) -> Vec<u8> {
    match b {
        Bytes::Lit(b) => b.to_vec(),
        Bytes::Deep => {
            format!("name: x\nsteps: {}{}\n", "[".repeat(5000), "]".repeat(5000)).into_bytes()
        }
        Bytes::Huge => {
            format!("name: x\ndescription: {}\nsteps: []\n", "a".repeat(2 << 20)).into_bytes()
        }
    }
}

#[test]
fn malformed_playbooks_give_precise_errors_and_change_nothing() {
    let recall = Recall::new("");
    // One good incident first, so "nothing changed" compares against real content.
    recall.rehearse("ua-parser-js-2021");
    let before = recall.run(&["incident", "list", "--json"]).stdout;
    assert!(CASES.len() >= 28);
    for c in CASES {
        let file = write_file(
            recall.dir.path(),
            &format!("{}.yaml", c.name),
            &bytes(&c.bytes),
        );
        let started = std::time::Instant::now();
        let lint = recall.run(&["playbook", "lint", &file]);
        assert_eq!(lint.code, Some(1), "{}: {lint:?}", c.name);
        assert!(
            started.elapsed().as_secs() < 5,
            "{}: took {:?}",
            c.name,
            started.elapsed()
        );
        let prefix = match c.line {
            Some(l) => format!("{file}:{l}:"),
            None => format!("{file}:"),
        };
        assert!(
            lint.stderr.contains(&prefix),
            "{}: expected `{prefix}` in:\n{}",
            c.name,
            lint.stderr
        );
        assert!(
            lint.stderr.contains(c.needle),
            "{}: expected `{}` in:\n{}",
            c.name,
            c.needle,
            lint.stderr
        );
        assert!(
            !lint.stderr.contains("panicked"),
            "{}: {}",
            c.name,
            lint.stderr
        );
        // The same file given to `incident start`: usage error, nothing stored.
        let start = recall.run(&["incident", "start", "--playbook", &file, "--dry-run"]);
        assert_eq!(start.code, Some(2), "{}: {start:?}", c.name);
        assert!(
            start.stderr.contains(c.needle),
            "{}: {}",
            c.name,
            start.stderr
        );
    }
    assert_eq!(
        recall.run(&["incident", "list", "--json"]).stdout,
        before,
        "a rejected playbook changed the store"
    );
}

#[test]
fn bad_parameters_give_precise_errors_and_change_nothing() {
    let recall = Recall::new("");
    let pb = write_file(
        recall.dir.path(),
        "typed.yaml",
        b"name: typed\nparams:\n  n: { type: int, required: true }\n  flag: { type: bool, default: false }\n  xs: { type: list, required: true }\nsteps:\n  - id: a\n    uses: incident.note\n    with: { message: \"${{ params.n }} ${{ params.xs }}\" }\n",
    );
    let cases: &[(&[&str], &str)] = &[
        (&["n=1", "xs=a,b", "nope=1"], "nope"),
        (&["xs=a"], "n"),
        (&["n=one", "xs=a"], "int"),
        (&["n=1", "xs=a", "flag=maybe"], "bool"),
        (&["n=1", "xs=[\"a\","], "xs"),
        (&["n=99999999999999999999999", "xs=a"], "int"),
        (&["=1"], "KEY=VALUE"),
        (&["novalue"], "KEY=VALUE"),
    ];
    for (params, needle) in cases {
        let mut args = vec!["incident", "start", "--playbook", pb.as_str(), "--dry-run"];
        for p in params.iter() {
            args.push("--param");
            args.push(p);
        }
        let r = recall.run(&args);
        assert_eq!(r.code, Some(2), "{params:?}: {r:?}");
        assert!(
            r.stderr.contains(needle),
            "{params:?}: expected `{needle}` in {}",
            r.stderr
        );
    }
    // Unknown playbook and scenario names, and auto-approve outside a rehearsal.
    let r = recall.run(&["incident", "start", "--playbook", "no-such-playbook"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("npm-compromised-release"),
        "lists the bundled ones: {}",
        r.stderr
    );
    let r = recall.run(&["incident", "start", "--scenario", "no-such-scenario"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    let r = recall.run(&[
        "incident",
        "start",
        "--scenario",
        "ua-parser-js-2021",
        "--auto-approve",
    ]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("--dry-run"), "{}", r.stderr);
    let r = recall.run(&["incident", "list", "--json"]);
    assert_eq!(r.json(), serde_json::json!([]), "nothing stored: {r:?}");
}

#[test]
fn expression_injection_through_params_stays_literal() {
    let recall = Recall::new("");
    let evil = "${{ steps.deprecate.outputs }}${{ incident.id }}";
    let r = recall.run(&[
        "incident",
        "start",
        "--scenario",
        "ua-parser-js-2021",
        "--dry-run",
        "--auto-approve",
        "--json",
        "--param",
        &format!("fixed={evil}"),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let id = r.id();
    let show = recall.show(&id);
    let msg = show["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["step_id"] == "deprecate")
        .unwrap()["inputs"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains(evil),
        "the param was evaluated instead of kept literal: {msg}"
    );
    assert!(
        msg.contains(&format!("(incident {id})")),
        "the playbook's own expression still works: {msg}"
    );
}

#[test]
fn bad_config_is_a_usage_error() {
    let recall = Recall::new("[npm]\ntoken = \"inline-secrets-are-refused\"\n");
    let r = recall.run(&["incident", "list"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("token"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("inline-secrets-are-refused"),
        "the value must not be echoed: {}",
        r.stderr
    );
}
