//! `credentials.rotate` against a real Verdaccio (mint, revoke, whoami), the GitHub fake
//! (sealed Actions secret, decrypted there) and the Kubernetes fake (a Secret): the old
//! token is revoked and shown dead, the new one works and sits in every destination;
//! SIGKILL between each stage and a resume completes the rotation exactly once (one mint,
//! one revoke, one write per destination); a mint in flight at the crash is reconciled;
//! a value a person provides goes through `recall credentials provide`. No secret value
//! appears in any output, export or the database (sentinel grep).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::fakes::github::FakeGitHub;
use crate::fakes::kube::FakeKube;
use crate::support::verdaccio::Verdaccio;
use crate::support::{Recall, Run, events, write_file};

const GH_TOKEN: &str = "github_pat_11SENTINELGHTOKEN0123456789abcdef";
const KUBE_TOKEN: &str = "kube-SENTINEL-token-0123456789";
const USER: &str = "ci-bot";
const PASSWORD: &str = "SENTINEL-npm-password-0123456789";
const STAGING: &str = "SENTINEL-staging-key-0123456789abcdef";

const PLAYBOOK: &str = r#"name: rotate-npm
description: rotate the CI's npm token
params:
  old_key: {type: string, required: true}
  repo: {type: string, required: true}
  secret: {type: string, required: true}
  env_file: {type: string, required: true}
steps:
  - id: rotate
    uses: credentials.rotate
    with:
      provider: npm
      old_key: ${{ params.old_key }}
      old_secret_env: OLD_NPM_TOKEN
      password_env: NPM_PASSWORD
      destinations:
        - github: ${{ params.repo }}
          name: NPM_TOKEN
        - kube: c1
          namespace: ci
          secret: ${{ params.secret }}
          key: token
          restart: false
        - env_file: ${{ params.env_file }}
          var: NPM_TOKEN
"#;

struct World {
    v: Verdaccio,
    gh: FakeGitHub,
    k: FakeKube,
    recall_token: String,
}

impl World {
    async fn start() -> World {
        let v = Verdaccio::start().await;
        v.add_user(USER, PASSWORD).await;
        let (recall_token, _) = v.create_token(USER, PASSWORD).await;
        let gh = FakeGitHub::start().await;
        gh.add_token(
            GH_TOKEN,
            &[
                ("secrets", "write"),
                ("metadata", "read"),
                ("actions", "write"),
                ("contents", "write"),
                ("pull_requests", "write"),
                ("issues", "write"),
                ("repository_advisories", "write"),
            ],
        );
        let k = FakeKube::start("c1", KUBE_TOKEN).await;
        World {
            v,
            gh,
            k,
            recall_token,
        }
    }

    fn recall(&self) -> Recall {
        let mut r = Recall::new("");
        let kc = r.dir.path().join("kubeconfig");
        FakeKube::write_kubeconfig_multi(&kc, &[(&self.k, "c1")]);
        std::fs::write(
            &r.config,
            format!(
                "[npm]\nregistry = \"{}\"\ntoken_env = \"RECALL_TEST_NPM_TOKEN\"\ntimeout = \"20s\"\n\n[github]\napi_url = \"{}\"\ntoken_env = \"RECALL_TEST_GH_TOKEN\"\n\n[kube]\ntimeout = \"5s\"\n[[kube.clusters]]\nname = \"c1\"\nkubeconfig = \"{}\"\ncontext = \"c1\"\n\n[engine]\nreconcile_grace = \"200ms\"\n",
                self.v.url,
                self.gh.api_url(),
                kc.display()
            ),
        )
        .unwrap();
        r.env
            .push(("RECALL_TEST_NPM_TOKEN".into(), self.recall_token.clone()));
        r.env.push(("RECALL_TEST_GH_TOKEN".into(), GH_TOKEN.into()));
        r.env.push(("RECALL_STAGING_KEY".into(), STAGING.into()));
        r.env.push(("NPM_PASSWORD".into(), PASSWORD.into()));
        r
    }

    /// A fresh leaked token, a repository and a Secret holding it.
    async fn leak(&self, n: &str) -> Leak {
        let (old, key) = self.v.create_token(USER, PASSWORD).await;
        let repo = format!("acme/app-{n}");
        self.gh.add_repo(&repo);
        let secret = format!("publish-{n}");
        self.k.add_secret("ci", &secret, &[("token", &old)]);
        Leak {
            old,
            key,
            repo,
            secret,
        }
    }

    async fn whoami(&self, token: &str) -> u16 {
        let r = reqwest::Client::new()
            .get(format!("{}/-/whoami", self.v.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        // Verdaccio answers 200 {} to an unknown token: that is a refusal too.
        if status == 200 && body.get("username").is_none() {
            return 401;
        }
        status
    }

    fn kube_value(&self, secret: &str) -> String {
        let s = self
            .k
            .object("", "v1", "secrets", Some("ci"), secret)
            .unwrap();
        String::from_utf8(B64.decode(s["data"]["token"].as_str().unwrap()).unwrap()).unwrap()
    }
}

struct Leak {
    old: String,
    key: String,
    repo: String,
    secret: String,
}

fn start(r: &Recall, l: &Leak, env_file: &str, extra: &[(&str, &str)]) -> Run {
    let pb = write_file(r.dir.path(), "rotate.yaml", PLAYBOOK.as_bytes());
    let p = [
        format!("old_key={}", l.key),
        format!("repo={}", l.repo),
        format!("secret={}", l.secret),
        format!("env_file={env_file}"),
    ];
    let mut args = vec!["incident", "start", "--playbook", &pb, "--json"];
    for x in &p {
        args.push("--param");
        args.push(x);
    }
    let mut env = vec![("OLD_NPM_TOKEN", l.old.as_str()), ("RECALL_LOG", "debug")];
    env.extend_from_slice(extra);
    r.run_env(&args, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_revokes_proves_and_writes_everywhere_without_leaking() {
    let w = World::start().await;
    let r = w.recall();
    let l = w.leak("live").await;
    let env_file = r.dir.path().join("ci.env");
    let env_path = env_file.to_str().unwrap().to_string();
    std::fs::write(&env_file, format!("A=1\nNPM_TOKEN={}\n", l.old)).unwrap();

    // Rehearsal: nothing changes anywhere.
    let vm = w.v.mark();
    let pb = write_file(r.dir.path(), "rotate.yaml", PLAYBOOK.as_bytes());
    let dry = r.run_env(
        &[
            "incident",
            "start",
            "--playbook",
            &pb,
            "--json",
            "--dry-run",
            "--param",
            &format!("old_key={}", l.key),
            "--param",
            &format!("repo={}", l.repo),
            "--param",
            &format!("secret={}", l.secret),
            "--param",
            &format!("env_file={env_path}"),
        ],
        &[("OLD_NPM_TOKEN", &l.old)],
    );
    assert_eq!(dry.code, Some(0), "{dry:?}");
    assert!(
        w.v.mutating_requests_since(vm).is_empty(),
        "{:?}",
        w.v.mutating_requests_since(vm)
    );
    assert!(w.gh.mutations().is_empty());
    assert_eq!(w.k.mutations(), 0);
    assert!(std::fs::read_to_string(&env_file).unwrap().contains(&l.old));
    let plan = r.timeline(&dry.id());
    let planned = events(&plan, "attempt.planned");
    let reqs = planned[0]["data"]["detail"]["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shown: Vec<String> = reqs
        .iter()
        .map(|q| {
            format!(
                "{} {}",
                q["method"].as_str().unwrap_or(""),
                q["url"].as_str().or(q["path"].as_str()).unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        shown.len(),
        5,
        "mint, github, kube, env file, revoke: {shown:?}"
    );
    assert!(
        shown[0].starts_with("POST ") && shown[0].ends_with("/-/npm/v1/tokens"),
        "{shown:?}"
    );
    assert!(
        shown[4].starts_with("DELETE ") && shown[4].ends_with(&l.key),
        "{shown:?}"
    );
    assert_eq!(
        w.whoami(&l.old).await,
        200,
        "the rehearsal left the old token alive"
    );

    // Live.
    let vm = w.v.mark();
    let run = start(&r, &l, &env_path, &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let id = run.id();
    let new =
        w.gh.secret_value(&format!("repo:{}", l.repo), "NPM_TOKEN")
            .expect("secret written");
    assert_ne!(new, l.old);
    assert_eq!(w.kube_value(&l.secret), new);
    let envtext = std::fs::read_to_string(&env_file).unwrap();
    assert_eq!(envtext, format!("A=1\nNPM_TOKEN={new}\n"));
    assert_eq!(w.whoami(&new).await, 200, "the new token works");
    let dead = w.whoami(&l.old).await;
    assert!(dead == 401 || dead == 403, "the old token is dead: {dead}");
    let muts = w.v.mutating_requests_since(vm);
    assert_eq!(
        muts.iter()
            .filter(|(m, p)| m == "POST" && p.ends_with("/-/npm/v1/tokens"))
            .count(),
        1,
        "{muts:?}"
    );
    assert_eq!(
        muts.iter()
            .filter(|(m, p)| m == "DELETE" && p.ends_with(&l.key))
            .count(),
        1,
        "{muts:?}"
    );
    let tl = r.timeline(&id);
    let stages: Vec<String> = events(&tl, "credentials.stage")
        .iter()
        .map(|e| e["data"]["stage"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        stages,
        [
            "minting",
            "obtained",
            "written",
            "written",
            "written",
            "revoked",
            "old_dead",
            "new_works",
            "done"
        ],
        "{stages:?}"
    );
    let out = r.run(&["incident", "show", &id, "--json"]).json();
    let rot = out.to_string();
    assert!(rot.contains("sha256:"), "fingerprints recorded: {rot}");

    // The staged value is gone once the rotation is done.
    let store = recall::store::open(&r.db).await.unwrap();
    let staged: Value = serde_json::from_str(
        &store
            .artifact(&id, "credentials.rotate/rotate/0")
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(staged["stage"], "done");
    assert!(staged.get("sealed").is_none_or(Value::is_null), "{staged}");

    // Sentinel: no secret value in any output, export or the database file.
    let mut haystack = vec![
        dry.stdout.clone(),
        dry.stderr.clone(),
        run.stdout.clone(),
        run.stderr.clone(),
    ];
    for f in ["json", "md", "csv"] {
        let e = r.run(&["timeline", &id, "--format", f]);
        haystack.push(e.stdout);
        haystack.push(e.stderr);
    }
    let pm = r.run(&["postmortem", &id]);
    haystack.push(pm.stdout);
    haystack.push(r.run(&["incident", "show", &id]).stdout);
    let mut db = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", r.db_path().display())) {
            db.extend(b);
        }
    }
    for (what, secret) in [
        ("new token", new.as_str()),
        ("old token", l.old.as_str()),
        ("npm password", PASSWORD),
        ("staging key", STAGING),
        ("GitHub token", GH_TOKEN),
        ("Recall's npm token", w.recall_token.as_str()),
    ] {
        for (i, h) in haystack.iter().enumerate() {
            assert!(!h.contains(secret), "{what} leaked into output {i}: {h}");
        }
        assert!(
            !db.windows(secret.len()).any(|x| x == secret.as_bytes()),
            "{what} is in the database file"
        );
    }
    assert!(
        run.stderr.contains("DEBUG") || run.stderr.contains("debug"),
        "debug logs were on"
    );
}

/// SIGKILL after each recorded stage, then resume: one mint, one revoke, one write per
/// destination; the new token works and the old one is dead. A kill while the mint answer
/// was in flight (its value never recorded) is reconciled by revoking that orphan token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_stages_rotates_exactly_once() {
    let w = World::start().await;
    let mut checked = Vec::new();
    for point in [
        "credentials.after_obtain:1",
        "credentials.after_write:1",
        "credentials.after_write:2",
        "credentials.after_write:3",
        "credentials.after_revoke:1",
        "credentials.after_verify:1",
        "credentials.after_mint:1",
    ] {
        let n = point.replace(['.', ':', '_'], "-");
        let l = w.leak(&n).await;
        let r = w.recall();
        let env_path = r.dir.path().join("ci.env").to_str().unwrap().to_string();
        let gh_mark =
            w.gh.count(&format!("PUT /repos/{}/actions/secrets/*", l.repo));
        let answered = w.v.answered_requests().len();
        let killed = start(&r, &l, &env_path, &[("RECALL_FAILPOINT", point)]);
        assert_eq!(killed.signal, Some(9), "{point}: {killed:?}");
        let resumed = r.run_env(&["incident", "resume"], &[("OLD_NPM_TOKEN", &l.old)]);
        assert_eq!(resumed.code, Some(0), "{point}: {resumed:?}");
        let list = r.run(&["incident", "list", "--json"]).json();
        assert_eq!(list[0]["status"], "succeeded", "{point}: {list}");
        let muts: Vec<(String, String)> =
            w.v.answered_requests()
                .into_iter()
                .skip(answered)
                .filter(|(m, _)| m != "GET" && m != "HEAD")
                .collect();
        let mints = muts
            .iter()
            .filter(|(m, p)| m == "POST" && p.ends_with("/-/npm/v1/tokens"))
            .count();
        let revokes = muts.iter().filter(|(m, _)| m == "DELETE").count();
        let new =
            w.gh.secret_value(&format!("repo:{}", l.repo), "NPM_TOKEN")
                .expect("written");
        assert_eq!(w.whoami(&new).await, 200, "{point}: new works");
        assert!(
            matches!(w.whoami(&l.old).await, 401 | 403),
            "{point}: old dead"
        );
        assert_eq!(w.kube_value(&l.secret), new, "{point}");
        assert!(
            std::fs::read_to_string(&env_path).unwrap().contains(&new),
            "{point}"
        );
        let gh_puts =
            w.gh.count(&format!("PUT /repos/{}/actions/secrets/*", l.repo)) - gh_mark;
        let kube_puts = w
            .k
            .requests()
            .iter()
            .filter(|q| q.method == "PUT" && q.path().ends_with(&format!("/secrets/{}", l.secret)))
            .count();
        assert_eq!(kube_puts, 1, "{point}: the Secret is written once");
        if point == "credentials.after_mint:1" {
            // The first token's value died with the process: revoked, then a second mint.
            assert_eq!(mints, 2, "{point}: {muts:?}");
            assert_eq!(
                revokes, 2,
                "{point}: the orphan and the old token: {muts:?}"
            );
            let tl = r.timeline(list[0]["id"].as_str().unwrap());
            assert!(
                events(&tl, "credentials.stage")
                    .iter()
                    .any(|e| e["data"]["orphan_revoked"].is_string()),
                "{point}: orphan recorded"
            );
        } else {
            assert_eq!(mints, 1, "{point}: one mint: {muts:?}");
            assert_eq!(revokes, 1, "{point}: one revoke: {muts:?}");
        }
        assert_eq!(gh_puts, 1, "{point}: the GitHub secret is written once");
        checked.push(point);
    }
    eprintln!(
        "rotation crash points checked: {}: {checked:?}",
        checked.len()
    );
}

/// `new: provided`: the step waits for a person; `recall credentials provide` reads the
/// value from stdin (no echo on a terminal), seals it into the rotation and resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provided_credential_goes_through_the_cli() {
    let gh = FakeGitHub::start().await;
    gh.add_token(GH_TOKEN, &[("secrets", "write"), ("metadata", "read")]);
    gh.add_repo("acme/py");
    let mut r = Recall::new(&format!(
        "[github]\napi_url = \"{}\"\ntoken_env = \"RECALL_TEST_GH_TOKEN\"\n",
        gh.api_url()
    ));
    r.env.push(("RECALL_TEST_GH_TOKEN".into(), GH_TOKEN.into()));
    r.env.push(("RECALL_STAGING_KEY".into(), STAGING.into()));
    let pb = write_file(
        r.dir.path(),
        "p.yaml",
        b"name: p\ndescription: p\nsteps:\n  - id: replace\n    uses: credentials.rotate\n    with:\n      provider: none\n      new: provided\n      destinations:\n        - github: acme/py\n          name: PYPI_TOKEN\n",
    );
    let run = r.run(&["incident", "start", "--playbook", &pb, "--json"]);
    assert_eq!(run.code, Some(3), "waits for a person: {run:?}");
    let id = run.id();
    assert!(
        run.stdout.contains("recall credentials provide")
            || r.run(&["incident", "show", &id])
                .stdout
                .contains("recall credentials provide")
    );
    // A rehearsal never takes one; an unknown step is refused.
    let bad = r.run(&["credentials", "provide", &id, "nope"]);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    let value = "pypi-SENTINEL-AgEIcHlwaS5vcmcCJDAwMDAw";
    let mut c = r.cmd(&["credentials", "provide", &id, "replace", "--as", "alice"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{value}\n").as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains(value) && !stderr.contains(value));
    assert_eq!(
        gh.secret_value("repo:acme/py", "PYPI_TOKEN").as_deref(),
        Some(value)
    );
    let show = r.run(&["incident", "show", &id, "--json"]).json();
    assert_eq!(show["incident"]["status"], "succeeded", "{show}");
    assert!(
        show["steps"][0]["outputs"]["old_dead"].is_null(),
        "nothing to prove for provider none"
    );
    let tl = r.run(&["timeline", &id, "--format", "json"]).stdout;
    assert!(!tl.contains(value));
    assert!(tl.contains("a person provided the new credential"));
    // Providing again is refused: the rotation already has its value.
    let again = r.run(&["credentials", "provide", &id, "replace"]);
    assert_ne!(again.code, Some(0));
}

/// The bundled `leaked-publish-token` playbook, npm flavour: rehearsed (nothing sent
/// anywhere), then live: the workflow is disabled first, the leaked token revoked and
/// proven dead before the new one is minted and written to the Actions secret, and the
/// trusted-publishing pull request and the follow-up issue are opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaked_publish_token_playbook_end_to_end() {
    let w = World::start().await;
    let l = w.leak("playbook").await;
    w.gh.add_workflow(&l.repo, "release.yml", "Release");
    w.gh.put_file(&l.repo, "main", "package.json", "{}\n");
    let r = w.recall();
    let params = [
        "ecosystem=npm".to_string(),
        format!("repo={}", l.repo),
        "workflow=release.yml".to_string(),
        format!("old_token={}", l.key),
        "old_token_env=OLD_NPM_TOKEN".to_string(),
        "package=acme-app".to_string(),
    ];
    let args = |dry: bool| {
        let mut a: Vec<String> = [
            "incident",
            "start",
            "--playbook",
            "leaked-publish-token",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for p in &params {
            a.push("--param".into());
            a.push(p.clone());
        }
        if dry {
            a.push("--dry-run".into());
            a.push("--auto-approve".into());
        }
        a
    };
    let vm = w.v.mark();
    let a = args(true);
    let dry = r.run_env(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("OLD_NPM_TOKEN", &l.old)],
    );
    assert_eq!(dry.code, Some(0), "{dry:?}");
    assert!(w.v.mutating_requests_since(vm).is_empty());
    assert!(
        w.gh.mutations().iter().all(|q| !q.path().contains(&l.repo)),
        "{:?}",
        w.gh.mutations()
    );
    let a = args(false);
    let run = r.run_env(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("OLD_NPM_TOKEN", &l.old)],
    );
    assert_eq!(
        run.code,
        Some(0),
        "{run:?}\n{}",
        r.run(&["timeline", &run.id(), "--format", "md"]).stdout
    );
    let id = run.id();
    assert_eq!(
        w.gh.workflow_state(&l.repo, "release.yml").as_deref(),
        Some("disabled_manually")
    );
    let new =
        w.gh.secret_value(&format!("repo:{}", l.repo), "NPM_TOKEN")
            .expect("new token written");
    assert_eq!(w.whoami(&new).await, 200);
    assert!(matches!(w.whoami(&l.old).await, 401 | 403));
    let tl = r.timeline(&id);
    let stages: Vec<String> = events(&tl, "credentials.stage")
        .iter()
        .map(|e| e["data"]["stage"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        stages,
        [
            "revoked",
            "old_dead",
            "minting",
            "obtained",
            "written",
            "new_works",
            "done"
        ],
        "revoke first: {stages:?}"
    );
    let pulls = w.gh.pulls(&l.repo);
    assert_eq!(pulls.len(), 1);
    let wf =
        w.gh.file(
            &l.repo,
            &pulls[0].head_ref,
            ".github/workflows/publish-trusted.yml",
        )
        .expect("workflow proposed");
    assert!(
        wf.contains("id-token: write") && wf.contains("npm publish") && !wf.contains("NPM_TOKEN:"),
        "{wf}"
    );
    let issues = w.gh.issues(&l.repo);
    assert_eq!(issues.len(), 1);
    assert!(issues[0].labels.contains(&"incident-follow-up".to_string()));
    let skipped: Vec<String> = events(&tl, "step.skipped")
        .iter()
        .map(|e| e["step"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(skipped, ["trusted-publishing-crates"], "{skipped:?}");
    assert!(!tl.to_string().contains(&new) && !tl.to_string().contains(&l.old));
}

/// `npm-compromised-release` with the repository: each bad version's release gets the
/// warning (a version without a release is fine), and a draft advisory is opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_compromised_release_warns_on_releases_and_drafts_the_advisory() {
    let w = World::start().await;
    for v in ["1.0.0", "1.0.1", "1.0.2"] {
        w.v.publish(&w.recall_token, "acme-app", v).await;
    }
    w.gh.add_repo("acme/acme-app");
    w.gh.add_release(
        "acme/acme-app",
        "v1.0.2",
        crate::fakes::github::ReleaseOpts {
            body: "fixed".into(),
            ..Default::default()
        },
    );
    w.gh.add_release(
        "acme/acme-app",
        "v1.0.1",
        crate::fakes::github::ReleaseOpts {
            body: "bad one".into(),
            immutable: true,
            ..Default::default()
        },
    );
    let r = w.recall();
    let run = r.run(&[
        "incident",
        "start",
        "--playbook",
        "npm-compromised-release",
        "--json",
        "--param",
        "package=acme-app",
        "--param",
        r#"versions=["1.0.0","1.0.1"]"#,
        "--param",
        "fixed=1.0.2",
        "--param",
        "repo=acme/acme-app",
        "--param",
        r#"patched=["1.0.2"]"#,
    ]);
    assert_eq!(
        run.code,
        Some(0),
        "{run:?}\n{}",
        r.run(&["timeline", &run.id(), "--format", "md"]).stdout
    );
    let bad =
        w.gh.releases("acme/acme-app")
            .into_iter()
            .find(|x| x.tag_name == "v1.0.1")
            .unwrap();
    assert!(bad.prerelease);
    assert!(
        bad.body
            .unwrap_or_default()
            .contains("acme-app@1.0.1 is compromised")
    );
    let adv = w.gh.advisories("acme/acme-app");
    assert_eq!(adv.len(), 1);
    assert_eq!(adv[0].state, "draft");
    assert_eq!(adv[0].severity.as_deref(), Some("critical"));
    let ranges: Vec<&str> = adv[0]
        .vulnerabilities
        .iter()
        .filter_map(|v| v["vulnerable_version_range"].as_str())
        .collect();
    assert_eq!(ranges, ["= 1.0.0", "= 1.0.1"]);
    assert!(
        adv[0]
            .vulnerabilities
            .iter()
            .all(|v| v["patched_versions"] == "1.0.2" && v["package"]["name"] == "acme-app")
    );
}
