//! Preflight of the GitHub actions, end to end: `recall incident start --dry-run` against the
//! contract fake of the GitHub REST API (fakes/github.rs), reading the checks each step
//! recorded at `data.detail.preflight`. A fine-grained token with every permission fails
//! nothing (its writes are `unknown`: they cannot be read without sending one); a GitHub App
//! with the right permissions passes everything; a missing permission, a missing or
//! refused credential, an expiring token and an archived repository fail the checks they
//! should and no others; no rehearsal sends a mutating request.

use serde_json::Value;

use crate::fakes::github::{FakeGitHub, ReleaseOpts};
use crate::support::{Recall, events, write_file};

const TOKEN: &str = "github_pat_11PREFLIGHT0123456789abcdefABCDEF";
const ENV: &str = "RECALL_TEST_PF_GH_TOKEN";
const ALL: &[(&str, &str)] = &[
    ("actions", "write"),
    ("secrets", "write"),
    ("environments", "write"),
    ("organization_secrets", "write"),
    ("contents", "write"),
    ("pull_requests", "write"),
    ("issues", "write"),
    ("repository_advisories", "write"),
    ("workflows", "write"),
    ("metadata", "read"),
];

/// Every GitHub action once (secrets in all three scopes; the pull request touches a
/// workflow file, so it needs `workflows` too).
const PLAYBOOK: &str = r#"name: github-preflight
description: every GitHub action once
steps:
  - id: secret
    uses: github.set_actions_secret
    with: { repo: acme/app, name: NPM_TOKEN, value_env: NEW_NPM_TOKEN }
  - id: env-secret
    uses: github.set_actions_secret
    with: { repo: acme/app, environment: production, name: DEPLOY_KEY, value_env: NEW_NPM_TOKEN }
  - id: org-secret
    uses: github.set_actions_secret
    with: { org: acme, name: ORG_TOKEN, value_env: NEW_NPM_TOKEN }
  - id: drop-secret
    uses: github.delete_actions_secret
    with: { repo: acme/app, name: OLD_TOKEN }
  - id: disable
    uses: github.disable_workflow
    with: { repo: acme/app, workflow: .github/workflows/release.yml }
  - id: enable
    uses: github.enable_workflow
    with: { repo: acme/app, workflow: release.yml }
  - id: release
    uses: github.mark_release
    with: { repo: acme/app, tag: v1.0.0, latest_tag: v0.9.0 }
  - id: no-release
    uses: github.mark_release
    with: { repo: acme/app, tag: v9.9.9, missing_ok: true }
  - id: advisory
    uses: github.draft_advisory
    with:
      repo: acme/app
      ecosystem: npm
      package: acme-app
      affected: ["1.0.0"]
      patched: ["1.0.1"]
      summary: Compromised release of acme-app
      description: 1.0.0 was published by an attacker.
  - id: issue
    uses: github.open_issue
    with: { repo: acme/app, title: Follow up the leak }
  - id: pr
    uses: github.open_pull_request
    with:
      repo: acme/app
      title: Publish with trusted publishing
      files:
        .github/workflows/release.yml: "on: push\n"
"#;

const STEPS: [&str; 11] = [
    "secret",
    "env-secret",
    "org-secret",
    "drop-secret",
    "disable",
    "enable",
    "release",
    "no-release",
    "advisory",
    "issue",
    "pr",
];

/// A repository with a release workflow, an immutable bad release and an older good one,
/// an environment, and its organisation.
fn seed(gh: &FakeGitHub) {
    gh.add_org("acme");
    gh.add_repo("acme/app");
    gh.add_environment("acme/app", "production");
    gh.add_workflow("acme/app", "release.yml", "Release");
    gh.add_release(
        "acme/app",
        "v0.9.0",
        ReleaseOpts {
            body: "good".into(),
            ..Default::default()
        },
    );
    gh.add_release(
        "acme/app",
        "v1.0.0",
        ReleaseOpts {
            body: "Release notes of 1.0.0".into(),
            immutable: true,
            ..Default::default()
        },
    );
}

fn with_token(gh: &FakeGitHub) -> Recall {
    let mut r = Recall::new(&format!(
        "[github]\napi_url = \"{}\"\ntoken_env = \"{ENV}\"\ntimeout = \"10s\"\nrate_limit_max_wait = \"5s\"\n",
        gh.api_url()
    ));
    r.env.push((ENV.into(), TOKEN.into()));
    r
}

fn with_app(gh: &FakeGitHub, app_id: u64, installation: u64) -> Recall {
    let root = env!("CARGO_MANIFEST_DIR");
    Recall::new(&format!(
        "[github]\napi_url = \"{}\"\napp_id = {app_id}\ninstallation_id = {installation}\napp_key_file = \"{root}/tests/fixtures/github-app-test-key.pem\"\ntoken_env = \"UNSET_PF_GH_TOKEN\"\ntimeout = \"10s\"\n",
        gh.api_url()
    ))
}

fn add_app(gh: &FakeGitHub, app_id: u64, installation: u64, perms: &[(&str, &str)]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let public =
        std::fs::read_to_string(format!("{root}/tests/fixtures/github-app-test-key.pub.pem"))
            .unwrap();
    gh.add_app(app_id, &public, installation, perms);
}

/// The checks of each step of a finished rehearsal of `playbook`, by step id.
fn rehearse(r: &Recall, playbook: &str) -> (Vec<(String, Value)>, Value) {
    let pb = write_file(r.dir.path(), "pf.yaml", playbook.as_bytes());
    let run = r.run_env(
        &[
            "incident",
            "start",
            "--playbook",
            &pb,
            "--dry-run",
            "--auto-approve",
            "--json",
        ],
        &[("NEW_NPM_TOKEN", "npm_NEWVALUE0123456789")],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let tl = r.timeline(&run.id());
    let mut checks = Vec::new();
    for e in events(&tl, "attempt.planned") {
        let step = e["step"].as_str().unwrap_or_default().to_string();
        let pf = e["data"]["detail"]["preflight"]
            .as_array()
            .unwrap_or_else(|| panic!("step {step} recorded no preflight: {e:#}"));
        for c in pf {
            checks.push((step.clone(), c.clone()));
        }
    }
    (checks, tl)
}

fn of<'a>(checks: &'a [(String, Value)], step: &str, check: &str) -> Vec<&'a Value> {
    checks
        .iter()
        .filter(|(s, c)| s == step && c["check"] == check)
        .map(|(_, c)| c)
        .collect()
}

fn fails(checks: &[(String, Value)]) -> Vec<&(String, Value)> {
    checks
        .iter()
        .filter(|(_, c)| c["verdict"] == "fail")
        .collect()
}

/// Mutating requests, except minting an App installation token (octocrab's `POST
/// …/access_tokens`, which changes nothing in any repository and which plans need too).
fn mutations(gh: &FakeGitHub) -> Vec<String> {
    gh.mutations()
        .iter()
        .filter(|q| {
            !(q.path().starts_with("/app/installations/") && q.path().ends_with("/access_tokens"))
        })
        .map(|q| format!("{} {}", q.method, q.path()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fine_grained_token_with_every_permission_fails_nothing() {
    let gh = FakeGitHub::start().await;
    seed(&gh);
    let expires = chrono::Utc::now() + chrono::Duration::days(60);
    gh.add_token_expiring(TOKEN, ALL, expires);
    let r = with_token(&gh);
    let (checks, tl) = rehearse(&r, PLAYBOOK);

    assert!(fails(&checks).is_empty(), "{:#?}", fails(&checks));
    assert_eq!(mutations(&gh), Vec::<String>::new(), "a rehearsal mutated");
    for step in STEPS {
        assert!(
            checks
                .iter()
                .all(|(_, c)| c["check"] != "preflight.missing"),
            "{step}: no preflight"
        );
        // The credential: accepted, its expiry date named.
        let cred = of(&checks, step, "github.credential");
        assert_eq!(cred.len(), 1, "{step}: {cred:#?}");
        assert_eq!(cred[0]["verdict"], "pass");
        let ev = cred[0]["evidence"].as_str().unwrap();
        assert!(
            ev.contains(&expires.format("%Y-%m-%d").to_string()),
            "{step}: {ev}"
        );
        assert!(ev.contains("fine-grained"), "{ev}");
        assert!(
            cred[0]["subject"].as_str().unwrap().contains(ENV),
            "the credential is named by its source"
        );
        // Writes cannot be read from a fine-grained token: unknown, never a pass.
        let perms = of(&checks, step, "github.permission");
        assert!(!perms.is_empty(), "{step}");
        for p in perms {
            assert_eq!(p["verdict"], "unknown", "{step}: {p:#}");
            assert_eq!(p["impact"], "info");
            assert!(
                p["fix"].as_str().unwrap().contains("Read and write"),
                "{step}: {p:#}"
            );
        }
        if step != "org-secret" {
            assert_eq!(of(&checks, step, "github.repository")[0]["verdict"], "pass");
        }
    }
    // Reads proved the read level: the evidence shows the GET that did it.
    let disable = of(&checks, "disable", "github.permission");
    assert_eq!(disable.len(), 1);
    let ev = disable[0]["evidence"].as_str().unwrap();
    assert!(
        ev.contains("GET /repos/acme/app/actions/workflows/release.yml → 200")
            && ev.contains("`actions: read` verified"),
        "{ev}"
    );
    // The pull request writes a workflow file: `workflows` is needed as well.
    let pr: Vec<&str> = of(&checks, "pr", "github.permission")
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(pr.len(), 3, "{pr:?}");
    assert!(
        pr.iter().any(|s| s.contains("`workflows: write`")),
        "{pr:?}"
    );
    assert_eq!(of(&checks, "pr", "github.branch")[0]["verdict"], "pass");
    // Targets.
    for (step, check) in [
        ("env-secret", "github.environment"),
        ("org-secret", "github.org"),
        ("disable", "github.workflow"),
        ("enable", "github.workflow"),
        ("no-release", "github.release"),
    ] {
        let c = of(&checks, step, check);
        assert_eq!(c.len(), 1, "{step} {check}");
        assert_eq!(c[0]["verdict"], "pass", "{step}: {:#}", c[0]);
    }
    assert!(
        of(&checks, "enable", "github.workflow")[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("already active")
    );
    let rel = of(&checks, "release", "github.release");
    assert_eq!(rel.len(), 2, "the bad release and the one to make latest");
    assert!(rel.iter().all(|c| c["verdict"] == "pass"));
    assert!(
        rel.iter()
            .any(|c| c["evidence"].as_str().unwrap().contains("immutable")),
        "{rel:#?}"
    );
    assert!(
        !tl.to_string().contains(TOKEN),
        "the token is never recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_passes_exactly_what_its_installation_grants() {
    let gh = FakeGitHub::start().await;
    seed(&gh);
    add_app(&gh, 4242, 777, ALL);
    let r = with_app(&gh, 4242, 777);
    let (checks, tl) = rehearse(&r, PLAYBOOK);
    let not_pass: Vec<_> = checks
        .iter()
        .filter(|(_, c)| c["verdict"] != "pass")
        .collect();
    assert!(not_pass.is_empty(), "{not_pass:#?}");
    for step in STEPS {
        assert!(!of(&checks, step, "github.permission").is_empty(), "{step}");
        let cred = of(&checks, step, "github.credential");
        assert!(
            cred[0]["evidence"]
                .as_str()
                .unwrap()
                .contains("GET /app/installations/777 → 200"),
            "{cred:#?}"
        );
    }
    assert_eq!(mutations(&gh), Vec::<String>::new(), "a rehearsal mutated");
    let minted = gh.installation_tokens();
    assert!(!minted.is_empty());
    let text = tl.to_string();
    assert!(minted.iter().all(|t| !text.contains(t.as_str())));

    // An installation that may only read advisories, and has no `workflows`: exactly those
    // two checks fail, decided from its permissions map.
    let mut fewer: Vec<(&str, &str)> = ALL
        .iter()
        .copied()
        .filter(|(p, _)| *p != "workflows")
        .collect();
    for p in fewer.iter_mut() {
        if p.0 == "repository_advisories" {
            p.1 = "read";
        }
    }
    add_app(&gh, 4343, 888, &fewer);
    let r = with_app(&gh, 4343, 888);
    let (checks, _) = rehearse(&r, PLAYBOOK);
    let f: Vec<(String, String, String)> = fails(&checks)
        .iter()
        .map(|(s, c)| {
            (
                s.clone(),
                c["check"].as_str().unwrap().to_string(),
                c["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        f,
        vec![
            (
                "advisory".to_string(),
                "github.permission".to_string(),
                "`repository_advisories: write` on acme/app".to_string()
            ),
            (
                "pr".to_string(),
                "github.permission".to_string(),
                "`workflows: write` on acme/app".to_string()
            ),
        ],
        "{checks:#?}"
    );
    let adv = of(&checks, "advisory", "github.permission");
    assert_eq!(adv[0]["impact"], "blocks");
    assert!(
        adv[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("repository_advisories: read"),
        "{:#}",
        adv[0]
    );
    assert_eq!(mutations(&gh), Vec::<String>::new(), "a rehearsal mutated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_lacking_actions_fails_only_the_workflow_permission() {
    let gh = FakeGitHub::start().await;
    seed(&gh);
    let perms: Vec<(&str, &str)> = ALL
        .iter()
        .copied()
        .filter(|(p, _)| *p != "actions")
        .collect();
    gh.add_token(TOKEN, &perms);
    let r = with_token(&gh);
    let (checks, _) = rehearse(&r, PLAYBOOK);

    let f = fails(&checks);
    let disable: Vec<_> = f.iter().filter(|(s, _)| s == "disable").collect();
    assert_eq!(disable.len(), 1, "{f:#?}");
    let c = &disable[0].1;
    assert_eq!(c["check"], "github.permission");
    assert_eq!(c["impact"], "blocks");
    assert_eq!(c["subject"], "`actions: write` on acme/app");
    let ev = c["evidence"].as_str().unwrap();
    assert!(
        ev.contains("403") && ev.contains("x-accepted-github-permissions: actions=read"),
        "{ev}"
    );
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains("`Actions: Read and write`")
    );
    // Nothing else fails: enabling the same workflow needs the same permission, and the
    // workflow itself is not readable, which is `unknown`, not a second failure.
    for (step, c) in &f {
        assert!(step == "disable" || step == "enable", "{step} fails: {c:#}");
        assert_eq!(c["check"], "github.permission", "{c:#}");
        assert!(c["subject"].as_str().unwrap().contains("actions"));
    }
    assert_eq!(f.len(), 2, "{f:#?}");
    assert_eq!(
        of(&checks, "disable", "github.workflow")[0]["verdict"],
        "unknown"
    );
    assert_eq!(mutations(&gh), Vec::<String>::new(), "a rehearsal mutated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_refused_or_expiring_credential_fails_github_credential() {
    let gh = FakeGitHub::start().await;
    seed(&gh);

    // No credential at all: the token's variable is not set and no App is configured.
    let none = Recall::new(&format!(
        "[github]\napi_url = \"{}\"\ntoken_env = \"UNSET_PF_GH_TOKEN\"\n",
        gh.api_url()
    ));
    let (checks, _) = rehearse(&none, PLAYBOOK);
    for step in STEPS {
        let c = of(&checks, step, "github.credential");
        assert_eq!(c.len(), 1, "{step}: {checks:#?}");
        assert_eq!(c[0]["verdict"], "fail");
        assert_eq!(c[0]["impact"], "blocks");
        assert!(
            c[0]["evidence"]
                .as_str()
                .unwrap()
                .contains("UNSET_PF_GH_TOKEN is not set"),
            "{:#}",
            c[0]
        );
        let fix = c[0]["fix"].as_str().unwrap();
        for key in ["token_env", "app_id", "installation_id", "app_key_file"] {
            assert!(fix.contains(key), "{fix}");
        }
    }
    // Every check of every step is that one: nothing else can be read without it.
    assert!(
        checks
            .iter()
            .all(|(_, c)| c["check"] == "github.credential")
    );

    // A token GitHub does not know.
    let mut refused = with_token(&gh);
    refused.env.retain(|(k, _)| k != ENV);
    refused
        .env
        .push((ENV.into(), "github_pat_11UNKNOWN000000000000000000".into()));
    let (checks, tl) = rehearse(&refused, PLAYBOOK);
    let c = of(&checks, "disable", "github.credential");
    assert_eq!(c[0]["verdict"], "fail");
    assert!(
        c[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("the token was refused")
    );
    assert!(
        c[0]["fix"]
            .as_str()
            .unwrap()
            .contains("create a new token with `Actions: Read and write`"),
        "{:#}",
        c[0]
    );
    assert!(!tl.to_string().contains("github_pat_11UNKNOWN"));

    // A token that expires in three days: still works (degrades), and the date is named.
    let soon = chrono::Utc::now() + chrono::Duration::days(3);
    gh.add_token_expiring(TOKEN, ALL, soon);
    let r = with_token(&gh);
    let (checks, _) = rehearse(&r, PLAYBOOK);
    let c = of(&checks, "issue", "github.credential");
    assert_eq!(c[0]["verdict"], "fail");
    assert_eq!(c[0]["impact"], "degrades");
    assert!(
        c[0]["evidence"]
            .as_str()
            .unwrap()
            .contains(&soon.format("%Y-%m-%d").to_string()),
        "{:#}",
        c[0]
    );
    // The other checks still ran.
    assert_eq!(
        of(&checks, "issue", "github.repository")[0]["verdict"],
        "pass"
    );
    assert_eq!(mutations(&gh), Vec::<String>::new(), "a rehearsal mutated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_repository_fails_every_mutating_action() {
    let gh = FakeGitHub::start().await;
    seed(&gh);
    gh.archive_repo("acme/app");
    gh.add_token(TOKEN, ALL);
    let r = with_token(&gh);
    let (checks, _) = rehearse(&r, PLAYBOOK);
    for step in STEPS {
        if step == "org-secret" {
            // An organisation secret is not in the repository.
            assert!(of(&checks, step, "github.repository").is_empty());
            continue;
        }
        let c = of(&checks, step, "github.repository");
        assert_eq!(c.len(), 1, "{step}: {checks:#?}");
        assert_eq!(c[0]["verdict"], "fail", "{step}");
        assert_eq!(c[0]["impact"], "blocks");
        assert!(c[0]["evidence"].as_str().unwrap().contains("archived"));
        assert!(c[0]["fix"].as_str().unwrap().contains("unarchive acme/app"));
    }
    let f = fails(&checks);
    assert!(
        f.iter().all(|(_, c)| c["check"] == "github.repository"),
        "{f:#?}"
    );
    assert_eq!(mutations(&gh), Vec::<String>::new(), "a rehearsal mutated");

    // A repository that does not exist (or the token cannot see).
    let gone = PLAYBOOK.replace("acme/app", "acme/gone");
    let (checks, _) = rehearse(&r, &gone);
    let c = of(&checks, "issue", "github.repository");
    assert_eq!(c[0]["verdict"], "fail");
    assert!(c[0]["evidence"].as_str().unwrap().contains("404"));
    assert_eq!(mutations(&gh), Vec::<String>::new(), "a rehearsal mutated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_token_is_judged_by_its_scopes() {
    let gh = FakeGitHub::start().await;
    seed(&gh);
    // `repo` only: no `admin:org` for the organisation secret, no `workflow` for the pull
    // request that writes a workflow file.
    gh.add_classic_token(TOKEN, &["repo"]);
    let r = with_token(&gh);
    let (checks, _) = rehearse(&r, PLAYBOOK);
    let f: Vec<(String, String)> = fails(&checks)
        .iter()
        .map(|(s, c)| (s.clone(), c["subject"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        f,
        vec![
            (
                "org-secret".to_string(),
                "`organization_secrets: write` on organisation acme".to_string()
            ),
            (
                "pr".to_string(),
                "`workflows: write` on acme/app".to_string()
            ),
        ],
        "{checks:#?}"
    );
    let org = of(&checks, "org-secret", "github.permission");
    assert!(
        org[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("x-oauth-scopes: repo")
    );
    assert!(org[0]["fix"].as_str().unwrap().contains("admin:org"));
    // Scopes are read, not guessed: every other permission passes outright.
    let perms: Vec<_> = checks
        .iter()
        .filter(|(_, c)| c["check"] == "github.permission")
        .collect();
    assert!(
        perms.iter().all(|(_, c)| c["verdict"] != "unknown"),
        "{perms:#?}"
    );
    let cred = of(&checks, "secret", "github.credential");
    assert!(
        cred[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("(classic); x-oauth-scopes: repo"),
        "{:#}",
        cred[0]
    );
    assert_eq!(mutations(&gh), Vec::<String>::new(), "a rehearsal mutated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_targets_fail_their_own_checks() {
    let gh = FakeGitHub::start().await;
    seed(&gh);
    gh.add_token(TOKEN, ALL);
    let r = with_token(&gh);
    let pb = r#"name: missing
description: targets that are not there
steps:
  - id: env-secret
    uses: github.set_actions_secret
    with: { repo: acme/app, environment: staging, name: DEPLOY_KEY, value_env: NEW_NPM_TOKEN }
  - id: org-secret
    uses: github.delete_actions_secret
    with: { org: nope, name: ORG_TOKEN }
  - id: disable
    uses: github.disable_workflow
    with: { repo: acme/app, workflow: publish.yml }
  - id: release
    uses: github.mark_release
    with: { repo: acme/app, tag: v2.0.0 }
  - id: latest
    uses: github.mark_release
    with: { repo: acme/app, tag: v1.0.0, latest_tag: v7.7.7 }
  - id: pr
    uses: github.open_pull_request
    with: { repo: acme/app, title: t, base: develop, files: { a.txt: "a\n" } }
"#;
    let (checks, _) = rehearse(&r, pb);
    let mut f: Vec<(String, String)> = fails(&checks)
        .iter()
        .map(|(s, c)| (s.clone(), c["check"].as_str().unwrap().to_string()))
        .collect();
    f.sort();
    let want: Vec<(String, String)> = [
        ("disable", "github.workflow"),
        ("env-secret", "github.environment"),
        ("latest", "github.release"),
        ("org-secret", "github.org"),
        ("pr", "github.branch"),
        ("release", "github.release"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(f, want, "{checks:#?}");
    let latest = of(&checks, "latest", "github.release");
    assert_eq!(latest.len(), 2);
    assert!(
        latest
            .iter()
            .any(|c| c["verdict"] == "fail" && c["subject"].as_str().unwrap().contains("v7.7.7"))
    );
    // A missing base branch proves nothing about `contents`: the default branch is read.
    let contents: Vec<_> = of(&checks, "pr", "github.permission")
        .into_iter()
        .filter(|c| c["subject"] == "`contents: write` on acme/app")
        .collect();
    assert!(
        contents[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("GET /repos/acme/app/git/ref/heads/main → 200"),
        "{:#}",
        contents[0]
    );
    assert!(
        of(&checks, "release", "github.release")[0]["fix"]
            .as_str()
            .unwrap()
            .contains("missing_ok")
    );
    assert_eq!(mutations(&gh), Vec::<String>::new(), "a rehearsal mutated");
}
