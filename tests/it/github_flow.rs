//! The GitHub actions through the real `recall` binary against the contract fake of the
//! GitHub REST API (fakes/github.rs): every action's live path changes exactly what it
//! should; the rehearsal of the same playbook sends no mutating request; a crash after
//! each call resumes through the probe without doing anything twice (the release banner
//! is added once); secondary rate limits are waited out; pagination is followed; a token
//! lacking a permission gets an error naming it.

use serde_json::Value;

use crate::fakes::github::{FakeGitHub, ReleaseOpts};
use crate::support::{Recall, events, write_file};

const TOKEN: &str = "github_pat_11TESTTOKEN0123456789abcdefABCDEF";
const ALL: &[(&str, &str)] = &[
    ("actions", "write"),
    ("secrets", "write"),
    ("environments", "write"),
    ("organization_secrets", "write"),
    ("contents", "write"),
    ("pull_requests", "write"),
    ("issues", "write"),
    ("repository_advisories", "write"),
    ("metadata", "read"),
];

pub fn recall_for(gh: &FakeGitHub, extra: &str) -> Recall {
    let mut r = Recall::new(&format!(
        "[github]\napi_url = \"{}\"\ntoken_env = \"RECALL_TEST_GH_TOKEN\"\ntimeout = \"10s\"\nrate_limit_max_wait = \"5s\"\n\n[engine]\nreconcile_grace = \"200ms\"\n\n[groups]\nrelease-admins = [\"alice\", \"bob\"]\n{extra}",
        gh.api_url()
    ));
    r.env.push(("RECALL_TEST_GH_TOKEN".into(), TOKEN.into()));
    r
}

/// A repository with a release workflow, an immutable bad release that is latest, an
/// older good release, an environment and an organisation.
fn seed(gh: &FakeGitHub, repo: &str) {
    gh.add_repo(repo);
    gh.add_environment(repo, "production");
    gh.add_workflow(repo, "release.yml", "Release");
    gh.add_release(
        repo,
        "v0.9.0",
        ReleaseOpts {
            body: "good".into(),
            ..Default::default()
        },
    );
    gh.add_release(
        repo,
        "v1.0.0",
        ReleaseOpts {
            body: "Release notes of 1.0.0".into(),
            immutable: true,
            ..Default::default()
        },
    );
    gh.put_file(repo, "main", "README.md", "hello\n");
}

const PLAYBOOK: &str = r#"name: github-all
description: every GitHub action once
params:
  repo: {type: string, required: true}
steps:
  - id: secret
    uses: github.set_actions_secret
    with: { repo: "${{ params.repo }}", name: NPM_TOKEN, value_env: NEW_NPM_TOKEN }
  - id: env-secret
    uses: github.set_actions_secret
    with: { repo: "${{ params.repo }}", environment: production, name: DEPLOY_KEY, value_env: NEW_NPM_TOKEN }
  - id: org-secret
    uses: github.set_actions_secret
    with: { org: acme, name: ORG_TOKEN, value_env: NEW_NPM_TOKEN }
  - id: drop-secret
    uses: github.delete_actions_secret
    needs: [secret]
    with: { repo: "${{ params.repo }}", name: NPM_TOKEN }
  - id: disable
    uses: github.disable_workflow
    with: { repo: "${{ params.repo }}", workflow: .github/workflows/release.yml }
  - id: release
    uses: github.mark_release
    needs: [disable]
    with: { repo: "${{ params.repo }}", tag: v1.0.0, latest_tag: v0.9.0, message: "1.0.0 is compromised." }
  - id: no-release
    uses: github.mark_release
    with: { repo: "${{ params.repo }}", tag: v9.9.9, missing_ok: true }
  - id: advisory
    uses: github.draft_advisory
    needs: [release]
    with:
      repo: ${{ params.repo }}
      ecosystem: npm
      package: acme-app
      affected: ["1.0.0", "0.8.1"]
      patched: ["1.0.1", "0.8.2"]
      summary: Compromised releases of acme-app
      description: Versions 1.0.0 and 0.8.1 were published by an attacker.
      cwe_ids: [CWE-506]
  - id: issue
    uses: github.open_issue
    needs: [advisory]
    with: { repo: "${{ params.repo }}", title: Follow up the leak, body: Do the things., labels: [security] }
  - id: pr
    uses: github.open_pull_request
    needs: [issue]
    with:
      repo: ${{ params.repo }}
      title: Deny the bad digest forever
      files:
        policy/denied.txt: "sha256:abc\n"
        README.md: "hello\nsee policy/denied.txt\n"
  - id: enable
    uses: github.enable_workflow
    needs: [pr]
    with: { repo: "${{ params.repo }}", workflow: release.yml }
"#;

fn start(r: &Recall, pb: &str, repo: &str, dry: bool, env: &[(&str, &str)]) -> crate::support::Run {
    let p = format!("repo={repo}");
    let mut args = vec![
        "incident",
        "start",
        "--playbook",
        pb,
        "--json",
        "--param",
        &p,
    ];
    if dry {
        args.push("--dry-run");
        args.push("--auto-approve");
    }
    r.run_env(&args, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_github_action_live_and_rehearsed() {
    let gh = FakeGitHub::start().await;
    gh.add_token(TOKEN, ALL);
    gh.add_org("acme");
    seed(&gh, "acme/app");
    let r = recall_for(&gh, "");
    let pb = write_file(r.dir.path(), "gh.yaml", PLAYBOOK.as_bytes());
    let env = [("NEW_NPM_TOKEN", "npm_NEWTOKENVALUE0123456789")];

    // Rehearsal: reads only, every would-send request recorded.
    let dry = start(&r, &pb, "acme/app", true, &env);
    assert_eq!(dry.code, Some(0), "{dry:?}");
    assert_eq!(
        gh.mutations().len(),
        0,
        "rehearsal mutated: {:?}",
        gh.mutations()
    );
    let tl = r.timeline(&dry.id());
    let planned = events(&tl, "attempt.planned");
    let would: Vec<String> = planned
        .iter()
        .flat_map(|e| {
            e["data"]["detail"]["requests"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|q| {
            format!(
                "{} {}",
                q["method"].as_str().unwrap_or(""),
                q["url"].as_str().unwrap_or("")
            )
        })
        .collect();
    for want in [
        "PUT /repos/acme/app/actions/secrets/NPM_TOKEN",
        "PUT /repos/acme/app/environments/production/secrets/DEPLOY_KEY",
        "PUT /orgs/acme/actions/secrets/ORG_TOKEN",
        "PUT /repos/acme/app/actions/workflows/",
        "PATCH /repos/acme/app/releases/",
        "POST /repos/acme/app/security-advisories",
        "POST /repos/acme/app/issues",
        "POST /repos/acme/app/git/refs",
        "PUT /repos/acme/app/contents/policy/denied.txt",
        "POST /repos/acme/app/pulls",
    ] {
        let (m, p) = want.split_once(' ').unwrap();
        assert!(
            would.iter().any(|w| w.starts_with(m) && w.contains(p)),
            "rehearsal does not show {want}: {would:#?}"
        );
    }
    // The sealed value is never in the record, not even sealed.
    assert!(!tl.to_string().contains("npm_NEWTOKENVALUE"));

    // Live.
    let live = start(&r, &pb, "acme/app", false, &env);
    assert_eq!(
        live.code,
        Some(0),
        "{live:?}\n{}",
        r.run(&["timeline", &live.id(), "--format", "md"]).stdout
    );
    let id = live.id();
    assert_eq!(
        gh.secret_value("env:acme/app/production", "DEPLOY_KEY")
            .as_deref(),
        Some("npm_NEWTOKENVALUE0123456789")
    );
    assert_eq!(
        gh.secret_value("org:acme", "ORG_TOKEN").as_deref(),
        Some("npm_NEWTOKENVALUE0123456789")
    );
    assert_eq!(
        gh.secret_value("repo:acme/app", "NPM_TOKEN"),
        None,
        "deleted after being set"
    );
    assert_eq!(
        gh.workflow_state("acme/app", "release.yml").as_deref(),
        Some("active"),
        "disabled then enabled"
    );
    let bad = gh
        .releases("acme/app")
        .into_iter()
        .find(|x| x.tag_name == "v1.0.0")
        .unwrap();
    let body = bad.body.clone().unwrap_or_default();
    assert!(body.starts_with("> [!WARNING]"), "{body}");
    assert!(
        body.contains("1.0.0 is compromised.") && body.ends_with("Release notes of 1.0.0"),
        "{body}"
    );
    assert!(bad.prerelease);
    assert_eq!(gh.latest_release("acme/app").unwrap().tag_name, "v0.9.0");
    for p in &bad.patches {
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert!(
            keys.iter()
                .all(|k| ["body", "prerelease", "make_latest"].contains(&k.as_str())),
            "immutable release got {p}"
        );
    }
    let adv = gh.advisories("acme/app");
    assert_eq!(adv.len(), 1);
    assert_eq!(adv[0].state, "draft");
    assert!(adv[0].patches.is_empty(), "Recall never edits an advisory");
    assert_eq!(adv[0].vulnerabilities.len(), 2);
    assert_eq!(adv[0].vulnerabilities[0]["patched_versions"], "1.0.1");
    assert_eq!(
        adv[0].vulnerabilities[1]["vulnerable_version_range"],
        "= 0.8.1"
    );
    assert_eq!(adv[0].vulnerabilities[1]["patched_versions"], "0.8.2");
    let issues = gh.issues("acme/app");
    assert_eq!(issues.len(), 1);
    assert!(
        issues[0]
            .body
            .as_deref()
            .unwrap_or("")
            .ends_with(&format!("<!-- recall:{id}:issue:0 -->")),
        "{:?}",
        issues[0].body
    );
    let pulls = gh.pulls("acme/app");
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].base_ref, "main");
    let branch = pulls[0].head_ref.clone();
    assert!(branch.starts_with(&format!("recall/{id}-pr")), "{branch}");
    assert_eq!(
        gh.file("acme/app", &branch, "policy/denied.txt").as_deref(),
        Some("sha256:abc\n")
    );
    assert_eq!(
        gh.file("acme/app", &branch, "README.md").as_deref(),
        Some("hello\nsee policy/denied.txt\n")
    );
    assert_eq!(
        gh.file("acme/app", "main", "README.md").as_deref(),
        Some("hello\n")
    );
    assert_eq!(
        gh.missing_version_header(),
        0,
        "every request carries X-GitHub-Api-Version"
    );
    assert_eq!(gh.auth_failures(), 0);
    let tl = r.timeline(&id);
    assert!(!tl.to_string().contains("npm_NEWTOKENVALUE"));
    let missing = events(&tl, "attempt.succeeded")
        .into_iter()
        .find(|e| e["step"] == "no-release")
        .map(|e| e["summary"].to_string())
        .unwrap_or_default();
    assert!(
        missing.contains("no GitHub release is tagged v9.9.9"),
        "{missing}"
    );

    // A second incident marking the same release adds its own banner once; the first
    // incident's banner stays single.
    let again = start(&r, &pb, "acme/app", false, &env);
    assert_eq!(again.code, Some(0), "{again:?}");
    let body = gh
        .releases("acme/app")
        .into_iter()
        .find(|x| x.tag_name == "v1.0.0")
        .unwrap()
        .body
        .unwrap_or_default();
    assert_eq!(
        body.matches(&format!("recall:release-warning:{id}"))
            .count(),
        1,
        "{body}"
    );
    assert_eq!(gh.advisories("acme/app").len(), 2, "one draft per incident");
}

/// A crash right after each GitHub call: the resume's probe finds the effect (marker,
/// state) and does not repeat it. The release banner is added exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_each_call_resumes_without_repeating() {
    let gh = FakeGitHub::start().await;
    gh.add_token(TOKEN, ALL);
    gh.add_org("acme");
    let env = [("NEW_NPM_TOKEN", "npm_NEWTOKENVALUE0123456789")];
    let mut checked = 0;
    for nth in 1..=11u32 {
        let repo = format!("acme/crash-{nth}");
        seed(&gh, &repo);
        let r = recall_for(&gh, "");
        let pb = write_file(r.dir.path(), "gh.yaml", PLAYBOOK.as_bytes());
        let point = format!("after_call:{nth}");
        let mut e: Vec<(&str, &str)> = env.to_vec();
        e.push(("RECALL_FAILPOINT", &point));
        let killed = start(&r, &pb, &repo, false, &e);
        assert_eq!(killed.signal, Some(9), "{point}: {killed:?}");
        let resumed = r.run_env(&["incident", "resume"], &env);
        assert_eq!(resumed.code, Some(0), "{point}: {resumed:?}");
        let list = r.run(&["incident", "list", "--json"]).json();
        assert_eq!(list[0]["status"], "succeeded", "{point}: {list}");
        let muts: Vec<String> = gh
            .mutations()
            .iter()
            .filter(|q| q.path().contains(&format!("/{repo}/")))
            .map(|q| format!("{} {}", q.method, q.path()))
            .collect();
        let n = |m: &str, p: &str| {
            muts.iter()
                .filter(|x| x.starts_with(m) && x.contains(p))
                .count()
        };
        let body = gh
            .releases(&repo)
            .into_iter()
            .find(|x| x.tag_name == "v1.0.0")
            .unwrap()
            .body
            .unwrap_or_default();
        assert_eq!(
            body.matches("recall:release-warning").count(),
            1,
            "{point}: banner twice: {body}"
        );
        assert_eq!(gh.advisories(&repo).len(), 1, "{point}: {muts:?}");
        assert_eq!(gh.issues(&repo).len(), 1, "{point}: {muts:?}");
        assert_eq!(gh.pulls(&repo).len(), 1, "{point}: {muts:?}");
        assert_eq!(n("POST", "/security-advisories"), 1, "{point}: {muts:?}");
        assert_eq!(n("POST", "/issues"), 1, "{point}: {muts:?}");
        assert_eq!(n("POST", "/pulls"), 1, "{point}: {muts:?}");
        assert_eq!(n("POST", "/git/refs"), 1, "{point}: {muts:?}");
        assert_eq!(
            n("PUT", "/workflows/"),
            2,
            "{point}: disable + enable once each: {muts:?}"
        );
        assert_eq!(n("DELETE", "/secrets/NPM_TOKEN"), 1, "{point}: {muts:?}");
        checked += 1;
    }
    eprintln!("crash points checked: {checked}");
}

/// Secondary rate limits are waited out (Retry-After) and change nothing; primary limits
/// too; lists follow `Link: rel="next"` across pages; a missing permission is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_pagination_and_permissions() {
    let gh = FakeGitHub::start().await;
    gh.add_token(TOKEN, ALL);
    seed(&gh, "acme/app");
    // 150 existing issues: finding "already opened?" must read two pages.
    let http = reqwest::Client::new();
    for i in 0..150 {
        let resp = http
            .post(format!("{}/repos/acme/app/issues", gh.api_url()))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("user-agent", "test")
            .header("x-github-api-version", "2022-11-28")
            .json(&serde_json::json!({ "title": format!("old {i}"), "body": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
    }
    gh.rate_limit_next("PUT /repos/acme/app/actions/workflows/*", 2, 1);
    gh.primary_rate_limit_next_status(1, 1, 429);
    let r = recall_for(&gh, "");
    let pb = write_file(
        r.dir.path(),
        "p.yaml",
        br#"name: p
description: p
steps:
  - id: disable
    uses: github.disable_workflow
    with: { repo: acme/app, workflow: release.yml }
  - id: issue
    uses: github.open_issue
    needs: [disable]
    with: { repo: acme/app, title: t }
  - id: issue-again
    uses: github.open_issue
    needs: [issue]
    with: { repo: acme/app, title: t2 }
"#,
    );
    let t0 = std::time::Instant::now();
    let run = r.run(&["incident", "start", "--playbook", &pb, "--json"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        t0.elapsed().as_secs() >= 2,
        "the Retry-After waits were honoured"
    );
    assert_eq!(
        gh.workflow_state("acme/app", "release.yml").as_deref(),
        Some("disabled_manually")
    );
    assert_eq!(gh.rate_limited(), 3);
    assert_eq!(gh.issues("acme/app").len(), 152);
    let pages = gh
        .requests()
        .iter()
        .filter(|q| {
            q.method == "GET"
                && q.path() == "/repos/acme/app/issues"
                && q.query().is_some_and(|x| x.contains("page=2"))
        })
        .count();
    assert!(pages >= 2, "both issue searches read page 2");

    // A token without `actions: write`: the step fails naming the permission, no retry.
    let weak = "github_pat_11WEAKTOKEN0123456789abcdefABCDEF";
    gh.add_token(weak, &[("actions", "read"), ("metadata", "read")]);
    let mut r2 = recall_for(&gh, "");
    r2.env.retain(|(k, _)| k != "RECALL_TEST_GH_TOKEN");
    r2.env.push(("RECALL_TEST_GH_TOKEN".into(), weak.into()));
    let pb2 = write_file(
        r2.dir.path(),
        "p.yaml",
        b"name: p\ndescription: p\nsteps:\n  - id: enable\n    uses: github.enable_workflow\n    with: { repo: acme/app, workflow: release.yml }\n",
    );
    let before = gh.count("PUT /repos/acme/app/actions/workflows/*");
    let run = r2.run(&["incident", "start", "--playbook", &pb2, "--json"]);
    assert_ne!(run.code, Some(0));
    let tl = r2.timeline(&run.id());
    let failed: Vec<&Value> = events(&tl, "attempt.failed");
    let msg = failed
        .iter()
        .map(|e| e["summary"].to_string())
        .collect::<String>();
    assert!(msg.contains("actions=write"), "{msg}");
    assert!(
        !tl.to_string().contains(weak) && !run.stderr.contains(weak) && !run.stdout.contains(weak)
    );
    assert_eq!(
        gh.count("PUT /repos/acme/app/actions/workflows/*") - before,
        1,
        "a 403 is not retried"
    );
}

/// GitHub App authentication: Recall signs a JWT with the App key, exchanges it for an
/// installation token (octocrab does both against the configured API), and acts with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_installation_acts_with_its_minted_token() {
    let gh = FakeGitHub::start().await;
    let root = env!("CARGO_MANIFEST_DIR");
    let public =
        std::fs::read_to_string(format!("{root}/tests/fixtures/github-app-test-key.pub.pem"))
            .unwrap();
    gh.add_app(
        4242,
        &public,
        777,
        &[("actions", "write"), ("metadata", "read")],
    );
    seed(&gh, "acme/app");
    let r = Recall::new(&format!(
        "[github]\napi_url = \"{}\"\napp_id = 4242\ninstallation_id = 777\napp_key_file = \"{root}/tests/fixtures/github-app-test-key.pem\"\ntoken_env = \"UNSET_GH_TOKEN_FOR_TEST\"\n",
        gh.api_url()
    ));
    let pb = write_file(
        r.dir.path(),
        "p.yaml",
        b"name: p\ndescription: p\nsteps:\n  - id: disable\n    uses: github.disable_workflow\n    with: { repo: acme/app, workflow: release.yml }\n",
    );
    let run = r.run(&["incident", "start", "--playbook", &pb, "--json"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        gh.workflow_state("acme/app", "release.yml").as_deref(),
        Some("disabled_manually")
    );
    let minted = gh.installation_tokens();
    assert!(!minted.is_empty(), "an installation token was minted");
    assert_eq!(gh.auth_failures(), 0);
    let tl = r.run(&["timeline", &run.id(), "--format", "json"]).stdout;
    assert!(
        minted.iter().all(|t| !tl.contains(t.as_str())),
        "the installation token is not recorded"
    );
}
