//! The GitHub REST API contract fake ([`crate::fakes::github`]) against plain `reqwest`: auth and
//! fine-grained permissions, the mandatory headers, Actions secrets with real sealed boxes,
//! workflows, releases (immutable, latest), repository security advisories, issues, git data +
//! contents + pulls, pagination links, rate limits, and the GitHub App JWT exchange.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::fakes::github::{self, FakeGitHub, ReleaseOpts};

const TOKEN: &str = "github_pat_11ALLPERMS";
const VERSION: &str = "2022-11-28";
const REPO: &str = "acme/app";
const APP_KEY: &str = include_str!("../fixtures/github-app-test-key.pem");
const APP_PUB: &str = include_str!("../fixtures/github-app-test-key.pub.pem");

const ALL: &[(&str, &str)] = &[
    ("actions", "write"),
    ("secrets", "write"),
    ("environments", "write"),
    ("contents", "write"),
    ("pull_requests", "write"),
    ("issues", "write"),
    ("repository_advisories", "write"),
    ("organization_secrets", "write"),
];

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent("recall-tests")
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

/// One request with the usual headers (`token`; `None` → no `Authorization`).
async fn send(
    gh: &FakeGitHub,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}{path}", gh.api_url())
    };
    let mut rb = client()
        .request(method.parse().expect("method"), url)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", VERSION);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| json!(text))
    };
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(gh: &FakeGitHub, path: &str) -> Answer {
    send(gh, "GET", path, Some(TOKEN), None).await
}

async fn call(gh: &FakeGitHub, method: &str, path: &str, body: Value) -> Answer {
    send(gh, method, path, Some(TOKEN), Some(body)).await
}

async fn fake() -> FakeGitHub {
    let gh = FakeGitHub::start().await;
    gh.add_token(TOKEN, ALL);
    gh.add_repo(REPO);
    gh
}

fn seal(public_key_b64: &str, plaintext: &[u8]) -> String {
    let pk = crypto_box::PublicKey::from_slice(&B64.decode(public_key_b64).expect("key b64"))
        .expect("32-byte key");
    B64.encode(
        pk.seal(&mut crypto_box::aead::OsRng, plaintext)
            .expect("seal"),
    )
}

/// Fetches the scope's public key over the API and PUTs `value` sealed with it.
async fn put_secret(
    gh: &FakeGitHub,
    prefix: &str,
    name: &str,
    value: &str,
    extra: Value,
) -> Answer {
    let key = get(gh, &format!("{prefix}/secrets/public-key")).await;
    assert_eq!(key.status, 200, "{}", key.body);
    let mut body = json!({
        "encrypted_value": seal(key.body["key"].as_str().expect("key"), value.as_bytes()),
        "key_id": key.body["key_id"],
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    call(gh, "PUT", &format!("{prefix}/secrets/{name}"), body).await
}

fn link_rels(link: &str) -> Vec<(String, String)> {
    link.split(", ")
        .map(|part| {
            let (url, rel) = part.split_once("; ").expect("url; rel");
            (
                rel.trim_start_matches("rel=\"")
                    .trim_end_matches('"')
                    .to_string(),
                url.trim_matches(['<', '>']).to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn auth_permissions_and_common_headers() {
    let gh = fake().await;
    gh.add_token("pat_read_only", &[("secrets", "read")]);
    let expiry = chrono::Utc::now() + chrono::Duration::days(3);
    gh.add_token_expiring("pat_expiring", &[("contents", "read")], expiry);
    gh.add_token_expiring(
        "pat_expired",
        &[("contents", "read")],
        chrono::Utc::now() - chrono::Duration::minutes(1),
    );

    let bad = send(&gh, "GET", "/repos/acme/app", Some("nope"), None).await;
    assert_eq!(bad.status, 401);
    assert_eq!(
        bad.body,
        json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
    );
    let none = send(&gh, "GET", "/repos/acme/app", None, None).await;
    assert_eq!(none.status, 401);
    let expired = send(&gh, "GET", "/repos/acme/app", Some("pat_expired"), None).await;
    assert_eq!(expired.status, 401);
    assert_eq!(gh.auth_failures(), 3);

    // Read but not write: the 403 names the permission and level needed.
    let key = send(
        &gh,
        "GET",
        "/repos/acme/app/actions/secrets/public-key",
        Some("pat_read_only"),
        None,
    )
    .await;
    assert_eq!(key.status, 200);
    let denied = send(
        &gh,
        "PUT",
        "/repos/acme/app/actions/secrets/X",
        Some("pat_read_only"),
        Some(json!({"encrypted_value": "AA==", "key_id": key.body["key_id"]})),
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.message(),
        "Resource not accessible by personal access token"
    );
    assert_eq!(denied.body["status"], "403");
    assert_eq!(
        denied.header("x-accepted-github-permissions"),
        Some("secrets=write")
    );
    let no_actions = send(
        &gh,
        "PUT",
        "/repos/acme/app/actions/workflows/1/disable",
        Some("pat_read_only"),
        None,
    )
    .await;
    assert_eq!(
        no_actions.header("x-accepted-github-permissions"),
        Some("actions=write")
    );
    let no_issues = send(
        &gh,
        "GET",
        "/repos/acme/app/issues",
        Some("pat_read_only"),
        None,
    )
    .await;
    assert_eq!(no_issues.status, 403);
    assert_eq!(
        no_issues.header("x-accepted-github-permissions"),
        Some("issues=read")
    );
    assert_eq!(gh.secret_names("repo:acme/app"), Vec::<String>::new());

    // metadata is implicit; `token` scheme works as well as `Bearer`.
    let resp = client()
        .get(format!("{}/repos/ACME/App", gh.api_url()))
        .header("authorization", "token pat_read_only")
        .header("x-github-api-version", VERSION)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    let repo: Value = resp.json().await.expect("json");
    assert_eq!(repo["full_name"], "acme/app");
    assert_eq!(repo["default_branch"], "main");
    assert_eq!(repo["owner"]["login"], "acme");
    assert_eq!(repo["archived"], false);
    assert!(repo["id"].as_u64().is_some());
    assert!(repo["node_id"].as_str().is_some());

    // Unknown repository → 404 before any permission check.
    let missing = get(&gh, "/repos/acme/ghost").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.message(), "Not Found");
    assert_eq!(missing.body["status"], "404");

    // Common headers; the rate limit counts per token.
    let a = get(&gh, "/repos/acme/app").await;
    let b = get(&gh, "/repos/acme/app").await;
    for h in [
        "x-github-request-id",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-used",
    ] {
        assert!(a.header(h).is_some(), "{h} missing");
    }
    assert_ne!(
        a.header("x-github-request-id"),
        b.header("x-github-request-id")
    );
    assert_eq!(a.header("x-ratelimit-resource"), Some("core"));
    assert_eq!(a.header("x-ratelimit-limit"), Some("5000"));
    let used = |x: &Answer| -> u64 { x.header("x-ratelimit-used").unwrap().parse().unwrap() };
    assert_eq!(used(&b), used(&a) + 1);
    assert_eq!(
        b.header("x-ratelimit-remaining"),
        Some((5000 - used(&b)).to_string().as_str())
    );
    assert_eq!(a.header("x-oauth-scopes"), None);
    assert_eq!(a.header("github-authentication-token-expiration"), None);
    assert_eq!(
        a.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let exp = send(&gh, "GET", "/repos/acme/app", Some("pat_expiring"), None).await;
    assert_eq!(exp.status, 200);
    assert_eq!(
        exp.header("github-authentication-token-expiration"),
        Some(expiry.format("%Y-%m-%d %H:%M:%S UTC").to_string().as_str())
    );

    // /rate_limit is not counted.
    // (pat_expiring belongs to the same user: GitHub limits per user.)
    assert_eq!(used(&exp), used(&b) + 1);
    let rl = get(&gh, "/rate_limit").await;
    let rl2 = get(&gh, "/rate_limit").await;
    assert_eq!(rl.body["resources"]["core"]["limit"], 5000);
    assert_eq!(rl.body["resources"]["core"]["used"], used(&exp));
    assert_eq!(rl2.body["rate"]["used"], used(&exp));
}

#[tokio::test]
async fn user_agent_and_api_version_are_checked() {
    let gh = fake().await;
    // reqwest sends no User-Agent unless told to.
    let bare = reqwest::Client::new()
        .get(format!("{}/repos/acme/app", gh.api_url()))
        .bearer_auth(TOKEN)
        .header("x-github-api-version", VERSION)
        .send()
        .await
        .expect("send");
    assert_eq!(bare.status(), 403);
    let body: Value = bare.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Request forbidden by administrative rules. Please make sure your request has a User-Agent header"),
        "{body}"
    );

    let bad_version = client()
        .get(format!("{}/repos/acme/app", gh.api_url()))
        .bearer_auth(TOKEN)
        .header("x-github-api-version", "2021-01-01")
        .send()
        .await
        .expect("send");
    assert_eq!(bad_version.status(), 400);
    let body: Value = bad_version.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Unsupported 'X-GitHub-Api-Version' header specified."),
        "{body}"
    );

    assert_eq!(gh.missing_version_header(), 0);
    let unversioned = client()
        .get(format!("{}/repos/acme/app", gh.api_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(unversioned.status(), 200);
    assert_eq!(
        unversioned.headers()["x-github-api-version-selected"],
        "2022-11-28"
    );
    assert_eq!(gh.missing_version_header(), 1);
    let newer = client()
        .get(format!("{}/repos/acme/app", gh.api_url()))
        .bearer_auth(TOKEN)
        .header("x-github-api-version", "2026-03-10")
        .send()
        .await
        .expect("send");
    assert_eq!(newer.status(), 200);
    assert_eq!(gh.missing_version_header(), 1);
}

#[tokio::test]
async fn repository_secret_sealed_box_round_trip() {
    let gh = fake().await;
    let prefix = "/repos/acme/app/actions";
    let key = get(&gh, &format!("{prefix}/secrets/public-key")).await;
    assert_eq!(key.status, 200);
    let key_id = key.body["key_id"].as_str().expect("key_id").to_string();
    assert!(key_id.chars().all(|c| c.is_ascii_digit()), "{key_id}");
    assert_eq!(
        B64.decode(key.body["key"].as_str().unwrap()).unwrap().len(),
        32
    );
    assert_eq!(gh.public_key("repo:acme/app").0, key_id);

    let created = put_secret(&gh, prefix, "npm_token", "s3cr3t-1", json!({})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        gh.secret_value("repo:acme/app", "NPM_TOKEN").as_deref(),
        Some("s3cr3t-1")
    );
    assert_eq!(gh.secret_names("repo:acme/app"), vec!["NPM_TOKEN"]);
    let updated = put_secret(&gh, prefix, "NPM_TOKEN", "s3cr3t-2", json!({})).await;
    assert_eq!(updated.status, 204);
    assert_eq!(
        gh.secret_value("repo:acme/app", "npm_token").as_deref(),
        Some("s3cr3t-2")
    );

    // Stale key id after a rotation.
    let sealed_for_old = seal(key.body["key"].as_str().unwrap(), b"late");
    let new_id = gh.rotate_public_key("repo:acme/app");
    assert_ne!(new_id, key_id);
    let stale = call(
        &gh,
        "PUT",
        &format!("{prefix}/secrets/NPM_TOKEN"),
        json!({"encrypted_value": sealed_for_old, "key_id": key_id}),
    )
    .await;
    assert_eq!(stale.status, 422);
    assert_eq!(stale.message(), "Validation Failed");
    assert_eq!(stale.body["errors"][0]["field"], "key_id");
    // Right key id, but sealed for the old key: does not open.
    let wrong_key = call(
        &gh,
        "PUT",
        &format!("{prefix}/secrets/NPM_TOKEN"),
        json!({"encrypted_value": sealed_for_old, "key_id": new_id}),
    )
    .await;
    assert_eq!(wrong_key.status, 422);
    assert_eq!(wrong_key.body["errors"][0]["field"], "encrypted_value");
    for garbage in ["not base64 at all!", "c2VjcmV0", ""] {
        let r = call(
            &gh,
            "PUT",
            &format!("{prefix}/secrets/NPM_TOKEN"),
            json!({"encrypted_value": garbage, "key_id": new_id}),
        )
        .await;
        assert_eq!(r.status, 422, "{garbage:?}: {}", r.body);
    }
    let no_key = call(
        &gh,
        "PUT",
        &format!("{prefix}/secrets/NPM_TOKEN"),
        json!({"encrypted_value": "AA=="}),
    )
    .await;
    assert_eq!(no_key.status, 422);
    assert_eq!(
        no_key.message(),
        "Invalid request.\n\n\"key_id\" wasn't supplied."
    );
    assert_eq!(
        gh.secret_value("repo:acme/app", "NPM_TOKEN").as_deref(),
        Some("s3cr3t-2")
    );

    for bad in ["GITHUB_TOKEN", "github_x", "1ABC", "A-B", "A%20B"] {
        let r = put_secret(&gh, prefix, bad, "v", json!({})).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
        assert_eq!(r.body["errors"][0]["field"], "name", "{bad}");
    }
    assert_eq!(
        put_secret(&gh, prefix, "_OK_2", "v", json!({}))
            .await
            .status,
        201
    );

    // List, get, delete.
    let list = get(&gh, &format!("{prefix}/secrets")).await;
    assert_eq!(list.body["total_count"], 2);
    assert_eq!(list.body["secrets"][0]["name"], "NPM_TOKEN");
    assert!(
        list.body["secrets"][0]["created_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(list.body["secrets"][0].get("value").is_none());
    let one = get(&gh, &format!("{prefix}/secrets/npm_token")).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["name"], "NPM_TOKEN");
    assert!(one.body.get("visibility").is_none());
    let del = send(
        &gh,
        "DELETE",
        &format!("{prefix}/secrets/NPM_TOKEN"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(del.status, 204);
    let del2 = send(
        &gh,
        "DELETE",
        &format!("{prefix}/secrets/NPM_TOKEN"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(del2.status, 404);
    assert_eq!(
        get(&gh, &format!("{prefix}/secrets/NPM_TOKEN"))
            .await
            .status,
        404
    );
    assert_eq!(gh.secret_value("repo:acme/app", "NPM_TOKEN"), None);
}

#[tokio::test]
async fn environment_and_organization_secrets() {
    let gh = fake().await;
    gh.add_org("acme");
    gh.add_repo("acme/other");
    gh.add_repo("elsewhere/repo");
    let env = "/repos/acme/app/environments/production";
    assert_eq!(
        get(&gh, &format!("{env}/secrets/public-key")).await.status,
        404
    );
    gh.add_environment(REPO, "production");
    let env_key = get(&gh, &format!("{env}/secrets/public-key")).await;
    assert_eq!(env_key.status, 200);
    assert_ne!(
        env_key.body["key_id"],
        get(&gh, "/repos/acme/app/actions/secrets/public-key")
            .await
            .body["key_id"]
    );
    assert_eq!(
        put_secret(&gh, env, "DEPLOY_KEY", "env-value", json!({}))
            .await
            .status,
        201
    );
    assert_eq!(
        gh.secret_value("env:acme/app/production", "DEPLOY_KEY")
            .as_deref(),
        Some("env-value")
    );
    assert_eq!(gh.secret_value("repo:acme/app", "DEPLOY_KEY"), None);
    // A key from the repository scope does not work for the environment.
    let repo_key = get(&gh, "/repos/acme/app/actions/secrets/public-key").await;
    let cross = call(
        &gh,
        "PUT",
        &format!("{env}/secrets/DEPLOY_KEY"),
        json!({"encrypted_value": seal(repo_key.body["key"].as_str().unwrap(), b"x"), "key_id": repo_key.body["key_id"]}),
    )
    .await;
    assert_eq!(cross.status, 422);
    // Environment secrets need the environments permission too.
    gh.add_token("pat_secrets_only", &[("secrets", "write")]);
    let denied = send(
        &gh,
        "GET",
        &format!("{env}/secrets"),
        Some("pat_secrets_only"),
        None,
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.header("x-accepted-github-permissions"),
        Some("environments=read,secrets=read")
    );

    // Organization secrets.
    let org = "/orgs/acme/actions";
    let no_vis = put_secret(&gh, org, "ORG_TOKEN", "o1", json!({})).await;
    assert_eq!(no_vis.status, 422);
    assert_eq!(
        no_vis.message(),
        "Invalid request.\n\n\"visibility\" wasn't supplied."
    );
    let bad_vis = put_secret(&gh, org, "ORG_TOKEN", "o1", json!({"visibility": "public"})).await;
    assert_eq!(bad_vis.status, 422);
    let sel_no_ids = put_secret(
        &gh,
        org,
        "ORG_TOKEN",
        "o1",
        json!({"visibility": "selected"}),
    )
    .await;
    assert_eq!(sel_no_ids.status, 422);
    let foreign = gh.repo_id("elsewhere/repo");
    let sel_foreign = put_secret(
        &gh,
        org,
        "ORG_TOKEN",
        "o1",
        json!({"visibility": "selected", "selected_repository_ids": [foreign]}),
    )
    .await;
    assert_eq!(sel_foreign.status, 422);
    let ids_without_selected = put_secret(
        &gh,
        org,
        "ORG_TOKEN",
        "o1",
        json!({"visibility": "all", "selected_repository_ids": [gh.repo_id(REPO)]}),
    )
    .await;
    assert_eq!(ids_without_selected.status, 422);
    assert!(gh.secret_names("org:acme").is_empty());
    let ok = put_secret(
        &gh,
        org,
        "ORG_TOKEN",
        "o1",
        json!({"visibility": "selected", "selected_repository_ids": [gh.repo_id(REPO), gh.repo_id("acme/other")]}),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(
        put_secret(
            &gh,
            org,
            "ORG_PRIVATE",
            "o2",
            json!({"visibility": "private"})
        )
        .await
        .status,
        201
    );
    let s = gh.secret("org:acme", "org_token").expect("stored");
    assert_eq!(s.value, "o1");
    assert_eq!(s.visibility.as_deref(), Some("selected"));
    assert_eq!(s.selected_repository_ids.len(), 2);
    let list = get(&gh, &format!("{org}/secrets")).await;
    assert_eq!(list.body["total_count"], 2);
    let by_name = |n: &str| {
        list.body["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_name("ORG_PRIVATE")["visibility"], "private");
    assert_eq!(by_name("ORG_TOKEN")["visibility"], "selected");
    assert!(
        by_name("ORG_TOKEN")["selected_repositories_url"]
            .as_str()
            .unwrap()
            .ends_with("/orgs/acme/actions/secrets/ORG_TOKEN/repositories")
    );
    let denied = send(
        &gh,
        "GET",
        &format!("{org}/secrets/public-key"),
        Some("pat_secrets_only"),
        None,
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.header("x-accepted-github-permissions"),
        Some("organization_secrets=read")
    );
    assert_eq!(
        get(&gh, "/orgs/ghost/actions/secrets/public-key")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn workflows_disable_and_enable_by_file_name_and_id() {
    let gh = fake().await;
    let id = gh.add_workflow(REPO, "release.yml", "Release");
    gh.add_workflow(REPO, "ci.yml", "CI");
    let one = get(&gh, "/repos/acme/app/actions/workflows/release.yml").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["id"], id);
    assert_eq!(one.body["path"], ".github/workflows/release.yml");
    assert_eq!(one.body["state"], "active");
    for k in [
        "node_id",
        "created_at",
        "updated_at",
        "url",
        "html_url",
        "badge_url",
    ] {
        assert!(one.body[k].is_string(), "{k}");
    }
    assert_eq!(
        get(&gh, &format!("/repos/acme/app/actions/workflows/{id}"))
            .await
            .body["name"],
        "Release"
    );
    assert_eq!(
        get(&gh, "/repos/acme/app/actions/workflows/nope.yml")
            .await
            .status,
        404
    );

    let r = send(
        &gh,
        "PUT",
        "/repos/acme/app/actions/workflows/release.yml/disable",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        gh.workflow_state(REPO, "release.yml").as_deref(),
        Some("disabled_manually")
    );
    assert_eq!(gh.workflow_state(REPO, "ci.yml").as_deref(), Some("active"));
    let listed = get(&gh, "/repos/acme/app/actions/workflows").await;
    assert_eq!(listed.body["total_count"], 2);
    assert_eq!(listed.body["workflows"][0]["state"], "disabled_manually");
    let r = send(
        &gh,
        "PUT",
        &format!("/repos/acme/app/actions/workflows/{id}/enable"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        gh.workflow_state(REPO, "release.yml").as_deref(),
        Some("active")
    );
    let r = send(
        &gh,
        "PUT",
        "/repos/acme/app/actions/workflows/999/disable",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(gh.count("PUT /repos/acme/app/actions/workflows/*"), 3);
    assert_eq!(gh.mutations().len(), 3);
}

#[tokio::test]
async fn immutable_release_allows_notes_but_not_tag_changes() {
    let gh = fake().await;
    let id = gh.add_release(
        REPO,
        "v1.2.3",
        ReleaseOpts {
            body: "notes".into(),
            immutable: true,
            ..ReleaseOpts::default()
        },
    );
    let path = format!("/repos/acme/app/releases/{id}");
    let got = get(&gh, &path).await;
    assert_eq!(got.body["immutable"], true);
    assert_eq!(got.body["tag_name"], "v1.2.3");
    assert_eq!(got.body["author"]["login"], github::TOKEN_USER);
    assert!(got.body["published_at"].is_string());
    assert_eq!(got.body["assets"], json!([]));

    let ok = call(
        &gh,
        "PATCH",
        &path,
        json!({"body": "**Withdrawn**: do not use", "name": "v1.2.3 (withdrawn)", "prerelease": true, "make_latest": "false"}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["body"], "**Withdrawn**: do not use");
    assert_eq!(
        gh.release(REPO, id).unwrap().name.as_deref(),
        Some("v1.2.3 (withdrawn)")
    );
    assert!(gh.release(REPO, id).unwrap().prerelease);

    for change in [
        json!({"tag_name": "v1.2.3-bad"}),
        json!({"draft": true}),
        json!({"target_commitish": "deadbeef"}),
    ] {
        let r = call(&gh, "PATCH", &path, change.clone()).await;
        assert_eq!(r.status, 422, "{change}");
        assert!(
            r.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("immutable"),
            "{}",
            r.body
        );
    }
    // Unchanged values are fine.
    assert_eq!(
        call(&gh, "PATCH", &path, json!({"tag_name": "v1.2.3"}))
            .await
            .status,
        200
    );
    assert_eq!(gh.release(REPO, id).unwrap().tag_name, "v1.2.3");

    let bad_latest = call(&gh, "PATCH", &path, json!({"make_latest": true})).await;
    assert_eq!(bad_latest.status, 422);
    assert_eq!(
        bad_latest.message(),
        "Invalid request.\n\nFor 'properties/make_latest', true is not a string."
    );
    assert_eq!(
        call(&gh, "PATCH", &path, json!({"make_latest": "maybe"}))
            .await
            .status,
        422
    );

    // A mutable release can be retagged; duplicates are refused.
    let other = gh.add_release(REPO, "v1.2.4", ReleaseOpts::default());
    let p2 = format!("/repos/acme/app/releases/{other}");
    assert_eq!(
        call(&gh, "PATCH", &p2, json!({"tag_name": "v1.2.3"}))
            .await
            .status,
        422
    );
    assert_eq!(
        call(&gh, "PATCH", &p2, json!({"tag_name": "v1.2.5"}))
            .await
            .status,
        200
    );
    assert_eq!(
        get(&gh, "/repos/acme/app/releases/tags/v1.2.5").await.body["id"],
        other
    );
    assert_eq!(
        get(&gh, "/repos/acme/app/releases/tags/v1.2.4")
            .await
            .status,
        404
    );
    assert_eq!(gh.release(REPO, id).unwrap().patches.len(), 2);
}

#[tokio::test]
async fn latest_release_follows_github_rules() {
    let gh = fake().await;
    assert_eq!(
        get(&gh, "/repos/acme/app/releases/latest").await.status,
        404
    );
    let pre = gh.add_release(
        REPO,
        "v2.0.0-rc.1",
        ReleaseOpts {
            prerelease: true,
            ..Default::default()
        },
    );
    let draft = gh.add_release(
        REPO,
        "v2.0.0",
        ReleaseOpts {
            draft: true,
            ..Default::default()
        },
    );
    assert_eq!(
        get(&gh, "/repos/acme/app/releases/latest").await.status,
        404
    );
    assert_eq!(gh.latest_release(REPO), None);
    let v1 = gh.add_release(REPO, "v1.0.0", ReleaseOpts::default());
    let v11 = gh.add_release(REPO, "v1.1.0", ReleaseOpts::default());
    assert_eq!(
        get(&gh, "/repos/acme/app/releases/latest").await.body["id"],
        v11
    );
    // Explicitly latest wins over newer.
    let hotfix = gh.add_release(
        REPO,
        "v0.9.1",
        ReleaseOpts {
            make_latest: Some(false),
            ..Default::default()
        },
    );
    assert_eq!(
        get(&gh, "/repos/acme/app/releases/latest").await.body["id"],
        v11
    );
    assert_eq!(
        call(
            &gh,
            "PATCH",
            &format!("/repos/acme/app/releases/{v1}"),
            json!({"make_latest": "true"})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        get(&gh, "/repos/acme/app/releases/latest").await.body["id"],
        v1
    );
    // Marking the latest as a prerelease demotes it; the newest eligible (not opted out) wins.
    call(
        &gh,
        "PATCH",
        &format!("/repos/acme/app/releases/{v1}"),
        json!({"prerelease": true}),
    )
    .await;
    assert_eq!(gh.latest_release(REPO).unwrap().id, v11);
    // Prereleases cannot be made latest.
    call(
        &gh,
        "PATCH",
        &format!("/repos/acme/app/releases/{pre}"),
        json!({"make_latest": "true"}),
    )
    .await;
    assert_eq!(gh.latest_release(REPO).unwrap().id, v11);
    // Publishing a draft makes it latest by default.
    let publish = call(
        &gh,
        "PATCH",
        &format!("/repos/acme/app/releases/{draft}"),
        json!({"draft": false}),
    )
    .await;
    assert!(publish.body["published_at"].is_string());
    assert_eq!(
        get(&gh, "/repos/acme/app/releases/latest").await.body["tag_name"],
        "v2.0.0"
    );
    // legacy: by creation date; v1.1.0 was created after the v2.0.0 draft, the newer hotfix
    // opted out and v1.0.0 is a prerelease now.
    call(
        &gh,
        "PATCH",
        &format!("/repos/acme/app/releases/{v11}"),
        json!({"make_latest": "legacy"}),
    )
    .await;
    assert_eq!(gh.latest_release(REPO).unwrap().id, v11);
    assert_eq!(
        get(&gh, "/repos/acme/app/releases/latest").await.body["id"],
        v11
    );

    // Newest first in the list; drafts are not found by tag.
    let list = get(&gh, "/repos/acme/app/releases").await;
    let ids: Vec<u64> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![hotfix, v11, v1, draft, pre]);
}

#[tokio::test]
async fn security_advisories_create_list_and_validate() {
    let gh = fake().await;
    let path = "/repos/acme/app/security-advisories";
    let vuln = json!({
        "package": {"ecosystem": "npm", "name": "@acme/app"},
        "vulnerable_version_range": ">= 1.2.3, < 1.2.5",
        "patched_versions": "1.2.5",
        "vulnerable_functions": ["run"],
    });
    let created = call(
        &gh,
        "POST",
        path,
        json!({
            "summary": "Compromised release 1.2.3",
            "description": "A malicious version was published.",
            "vulnerabilities": [vuln],
            "cwe_ids": ["CWE-506"],
            "credits": [{"login": "finder1", "type": "finder"}],
            "cvss_vector_string": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let ghsa = created.body["ghsa_id"].as_str().unwrap().to_string();
    let groups: Vec<&str> = ghsa.split('-').collect();
    assert_eq!(groups[0], "GHSA");
    assert_eq!(groups.len(), 4);
    for g in &groups[1..] {
        assert_eq!(g.len(), 4);
        assert!(
            g.bytes().all(|b| github::GHSA_ALPHABET.contains(&b)),
            "{ghsa}"
        );
    }
    assert_eq!(created.body["state"], "draft");
    assert_eq!(created.body["cve_id"], Value::Null);
    assert_eq!(created.body["published_at"], Value::Null);
    assert_eq!(created.body["severity"], "critical");
    assert_eq!(created.body["cvss"]["score"], 9.8);
    assert_eq!(
        created.body["vulnerabilities"][0]["package"]["ecosystem"],
        "npm"
    );
    assert!(
        created.body["html_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/acme/app/security/advisories/{ghsa}"))
    );
    assert_eq!(
        get(&gh, &format!("{path}/{ghsa}")).await.body["summary"],
        "Compromised release 1.2.3"
    );
    assert_eq!(
        get(&gh, &format!("{path}/GHSA-2222-2222-2222"))
            .await
            .status,
        404
    );

    let base = json!({"summary": "s", "description": "d", "vulnerabilities": []});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let mut no_summary = base.clone();
    no_summary.as_object_mut().unwrap().remove("summary");
    let cases = [
        no_summary,
        with("severity", json!("severe")),
        with(
            "vulnerabilities",
            json!([{"package": {"ecosystem": "cargo", "name": "x"}}]),
        ),
        with("vulnerabilities", json!("npm")),
        with("cwe_ids", json!(["506"])),
        with("credits", json!([{"login": "x", "type": "hero"}])),
        with("cvss_vector_string", json!("CVSS:3.1/AV:N")),
        with("summary", json!("x".repeat(1025))),
    ];
    for c in cases {
        let r = call(&gh, "POST", path, c.clone()).await;
        assert_eq!(r.status, 422, "{c}: {}", r.body);
    }
    let both = call(
        &gh,
        "POST",
        path,
        with("severity", json!("high"))
            .as_object()
            .unwrap()
            .clone()
            .into_iter()
            .chain([(
                "cvss_vector_string".to_string(),
                json!("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
            )])
            .collect::<serde_json::Map<_, _>>()
            .into(),
    )
    .await;
    assert_eq!(both.status, 422);
    assert_eq!(both.message(), "Validation Failed");
    assert_eq!(gh.advisories(REPO).len(), 1);

    for i in 0..4 {
        let r = call(
            &gh,
            "POST",
            path,
            with("severity", json!("low"))
                .as_object()
                .unwrap()
                .clone()
                .into_iter()
                .chain([("summary".to_string(), json!(format!("adv {i}")))])
                .collect::<serde_json::Map<_, _>>()
                .into(),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    // Cursor pagination, newest first.
    let p1 = get(&gh, &format!("{path}?per_page=2&state=draft")).await;
    assert_eq!(p1.body.as_array().unwrap().len(), 2);
    assert_eq!(p1.body[0]["summary"], "adv 3");
    let rels = link_rels(p1.header("link").expect("link"));
    assert_eq!(rels.len(), 1, "{rels:?}");
    assert_eq!(rels[0].0, "next");
    assert!(
        rels[0].1.contains("state=draft")
            && rels[0].1.contains("per_page=2")
            && rels[0].1.contains("after=")
    );
    let p2 = get(&gh, &rels[0].1).await;
    assert_eq!(p2.body[0]["summary"], "adv 1");
    let rels2: Vec<String> = link_rels(p2.header("link").unwrap())
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(rels2, vec!["prev", "next"]);
    assert_eq!(
        get(&gh, &format!("{path}?state=published")).await.body,
        json!([])
    );
    assert_eq!(get(&gh, &format!("{path}?state=open")).await.status, 422);

    // PATCH exists (so a test can assert Recall never sends one).
    let patched = call(
        &gh,
        "PATCH",
        &format!("{path}/{ghsa}"),
        json!({"state": "published"}),
    )
    .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.body["state"], "published");
    let adv = gh
        .advisories(REPO)
        .into_iter()
        .find(|a| a.ghsa_id == ghsa)
        .unwrap();
    assert_eq!(adv.patches, vec![json!({"state": "published"})]);
    assert!(adv.published_at.is_some());
    assert_eq!(gh.count("PATCH /repos/*/security-advisories/*"), 1);
}

#[tokio::test]
async fn issues_create_and_list_with_label_filter() {
    let gh = fake().await;
    gh.add_token_as("pat_other", "someone-else", &[("issues", "write")]);
    let path = "/repos/acme/app/issues";
    let a = call(&gh, "POST", path, json!({"title": "Incident INC-1", "body": "details", "labels": ["incident", "sev1"], "assignees": ["oncall"]})).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["number"], 1);
    assert_eq!(a.body["state"], "open");
    assert_eq!(a.body["labels"][1]["name"], "sev1");
    assert_eq!(a.body["user"]["login"], github::TOKEN_USER);
    assert!(
        a.body["html_url"]
            .as_str()
            .unwrap()
            .ends_with("/acme/app/issues/1")
    );
    assert_eq!(a.header("location"), a.body["url"].as_str());
    let b = send(
        &gh,
        "POST",
        path,
        Some("pat_other"),
        Some(json!({"title": "Follow-up", "labels": [{"name": "incident"}]})),
    )
    .await;
    assert_eq!(b.body["number"], 2);
    assert_eq!(
        call(&gh, "POST", path, json!({"body": "no title"}))
            .await
            .message(),
        "Invalid request.\n\n\"title\" wasn't supplied."
    );
    assert_eq!(
        call(&gh, "POST", path, json!({"title": 7})).await.status,
        201
    );

    let numbers = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["number"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(numbers(&get(&gh, path).await.body), vec![3, 2, 1]);
    assert_eq!(
        numbers(&get(&gh, &format!("{path}?labels=incident")).await.body),
        vec![2, 1]
    );
    assert_eq!(
        numbers(&get(&gh, &format!("{path}?labels=incident,sev1")).await.body),
        vec![1]
    );
    assert_eq!(
        numbers(&get(&gh, &format!("{path}?labels=sev2")).await.body),
        Vec::<u64>::new()
    );
    assert_eq!(
        numbers(&get(&gh, &format!("{path}?creator=someone-else")).await.body),
        vec![2]
    );
    assert_eq!(
        numbers(&get(&gh, &format!("{path}?state=closed")).await.body),
        Vec::<u64>::new()
    );
    assert_eq!(
        numbers(
            &get(&gh, &format!("{path}?direction=asc&per_page=2"))
                .await
                .body
        ),
        vec![1, 2]
    );
    assert_eq!(
        get(&gh, &format!("{path}/2")).await.body["title"],
        "Follow-up"
    );
    assert_eq!(gh.issues(REPO).len(), 3);
    assert_eq!(gh.issues(REPO)[1].user, "someone-else");

    // Pull requests share the number sequence and show up in the issue list.
    gh.put_file(REPO, "fix", "a.txt", "x");
    let pr = call(
        &gh,
        "POST",
        "/repos/acme/app/pulls",
        json!({"title": "Fix", "head": "fix", "base": "main"}),
    )
    .await;
    assert_eq!(pr.body["number"], 4);
    let all = get(&gh, path).await;
    assert_eq!(numbers(&all.body), vec![4, 3, 2, 1]);
    assert!(
        all.body[0]["pull_request"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/pulls/4")
    );
    assert!(all.body[1].get("pull_request").is_none());
    assert!(get(&gh, &format!("{path}/4")).await.body["pull_request"].is_object());
}

#[tokio::test]
async fn branch_contents_and_pull_request_flow() {
    let gh = fake().await;
    let repo = "/repos/acme/app";
    let main = get(&gh, &format!("{repo}/git/ref/heads/main")).await;
    assert_eq!(main.status, 200);
    assert_eq!(main.body["ref"], "refs/heads/main");
    assert_eq!(main.body["object"]["type"], "commit");
    let main_sha = main.body["object"]["sha"].as_str().unwrap().to_string();
    assert_eq!(main_sha.len(), 40);
    assert!(main_sha.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        get(&gh, &format!("{repo}/git/ref/heads/recall/fix"))
            .await
            .status,
        404
    );

    // A PR with no commits beyond base.
    let create_ref = |r: &str, sha: &str| json!({"ref": r, "sha": sha});
    let made = call(
        &gh,
        "POST",
        &format!("{repo}/git/refs"),
        create_ref("refs/heads/recall/fix", &main_sha),
    )
    .await;
    assert_eq!(made.status, 201);
    assert_eq!(made.body["object"]["sha"], main_sha);
    let again = call(
        &gh,
        "POST",
        &format!("{repo}/git/refs"),
        create_ref("refs/heads/recall/fix", &main_sha),
    )
    .await;
    assert_eq!(again.status, 422);
    assert_eq!(again.message(), "Reference already exists");
    let unknown = call(
        &gh,
        "POST",
        &format!("{repo}/git/refs"),
        create_ref("refs/heads/other", &"0".repeat(40)),
    )
    .await;
    assert_eq!(unknown.status, 422);
    assert_eq!(
        get(&gh, &format!("{repo}/git/ref/heads/recall/fix"))
            .await
            .body["object"]["sha"],
        main_sha
    );
    let empty = call(
        &gh,
        "POST",
        &format!("{repo}/pulls"),
        json!({"title": "t", "head": "recall/fix", "base": "main"}),
    )
    .await;
    assert_eq!(empty.status, 422);
    assert_eq!(
        empty.body["errors"][0]["message"],
        "No commits between main and recall/fix"
    );

    // Contents: read the README from main.
    let readme = get(&gh, &format!("{repo}/contents/README.md?ref=main")).await;
    assert_eq!(readme.body["type"], "file");
    assert_eq!(readme.body["encoding"], "base64");
    let decoded = B64
        .decode(readme.body["content"].as_str().unwrap().replace('\n', ""))
        .unwrap();
    assert_eq!(decoded, b"# app\n");
    assert_eq!(readme.body["sha"], github::blob_sha(b"# app\n"));
    assert_eq!(
        get(&gh, &format!("{repo}/contents/nope.txt")).await.status,
        404
    );
    assert_eq!(
        get(&gh, &format!("{repo}/contents/README.md?ref=ghost"))
            .await
            .message(),
        "No commit found for the ref ghost"
    );

    // Create a file on the branch, then update it.
    let content = "hello world\n".repeat(10);
    let file_path = format!("{repo}/contents/deny/list.txt");
    let put = |body: Value| call(&gh, "PUT", &file_path, body);
    let created = put(json!({"message": "Add deny list", "content": B64.encode(&content), "branch": "recall/fix"})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let blob = created.body["content"]["sha"].as_str().unwrap().to_string();
    assert_eq!(blob, github::blob_sha(content.as_bytes()));
    assert_eq!(
        github::blob_sha(b"hello world\n"),
        "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"
    );
    let head1 = created.body["commit"]["sha"].as_str().unwrap().to_string();
    assert_ne!(head1, main_sha);
    assert_eq!(
        gh.branch_head(REPO, "recall/fix").as_deref(),
        Some(head1.as_str())
    );
    assert_eq!(
        gh.branch_head(REPO, "main").as_deref(),
        Some(main_sha.as_str())
    );
    assert_eq!(
        gh.file(REPO, "recall/fix", "deny/list.txt").as_deref(),
        Some(content.as_str())
    );
    assert_eq!(gh.file(REPO, "main", "deny/list.txt"), None);
    let got = get(
        &gh,
        &format!("{repo}/contents/deny/list.txt?ref=recall/fix"),
    )
    .await;
    let lines: Vec<&str> = got.body["content"].as_str().unwrap().split('\n').collect();
    assert!(
        lines.len() > 2 && lines[..lines.len() - 2].iter().all(|l| l.len() == 60),
        "{lines:?}"
    );
    let dir = get(&gh, &format!("{repo}/contents/deny?ref=recall/fix")).await;
    assert_eq!(dir.body[0]["name"], "list.txt");

    let no_sha =
        put(json!({"message": "m", "content": B64.encode("v2"), "branch": "recall/fix"})).await;
    assert_eq!(no_sha.status, 422);
    assert_eq!(
        no_sha.message(),
        "Invalid request.\n\n\"sha\" wasn't supplied."
    );
    let stale = put(json!({"message": "m", "content": B64.encode("v2"), "branch": "recall/fix", "sha": github::blob_sha(b"other")})).await;
    assert_eq!(stale.status, 409);
    assert!(stale.message().contains("does not match"), "{}", stale.body);
    assert_eq!(
        put(json!({"message": "m", "content": "%%%", "branch": "recall/fix", "sha": blob}))
            .await
            .status,
        422
    );
    assert_eq!(
        put(json!({"message": "m", "content": B64.encode("v2"), "branch": "ghost", "sha": blob}))
            .await
            .status,
        404
    );
    assert_eq!(
        gh.branch_head(REPO, "recall/fix").as_deref(),
        Some(head1.as_str())
    );
    let updated = put(json!({"message": "Update deny list", "content": B64.encode("v2\n"), "branch": "recall/fix", "sha": blob})).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["commit"]["message"], "Update deny list");
    assert_eq!(updated.body["commit"]["parents"][0]["sha"], head1);
    let head2 = updated.body["commit"]["sha"].as_str().unwrap().to_string();
    assert_eq!(
        gh.file(REPO, "recall/fix", "deny/list.txt").as_deref(),
        Some("v2\n")
    );

    // Open the PR, then a duplicate.
    let body = json!({"title": "Deny compromised versions", "head": "acme:recall/fix", "base": "main", "body": "Opened by Recall", "draft": true, "maintainer_can_modify": false});
    let pr = call(&gh, "POST", &format!("{repo}/pulls"), body.clone()).await;
    assert_eq!(pr.status, 201, "{}", pr.body);
    assert_eq!(pr.body["state"], "open");
    assert_eq!(pr.body["head"]["ref"], "recall/fix");
    assert_eq!(pr.body["head"]["sha"], head2);
    assert_eq!(pr.body["base"]["ref"], "main");
    assert_eq!(pr.body["draft"], true);
    assert!(
        pr.body["html_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/acme/app/pull/{}", pr.body["number"]))
    );
    let dup = call(&gh, "POST", &format!("{repo}/pulls"), body).await;
    assert_eq!(dup.status, 422);
    assert_eq!(
        dup.body["errors"][0]["message"],
        "A pull request already exists for acme:recall/fix."
    );
    assert_eq!(
        call(
            &gh,
            "POST",
            &format!("{repo}/pulls"),
            json!({"title": "t", "head": "nope", "base": "main"})
        )
        .await
        .body["errors"][0]["field"],
        "head"
    );
    assert_eq!(
        call(
            &gh,
            "POST",
            &format!("{repo}/pulls"),
            json!({"title": "t", "head": "recall/fix", "base": "nope"})
        )
        .await
        .body["errors"][0]["field"],
        "base"
    );
    assert_eq!(gh.pulls(REPO).len(), 1);
    assert!(!gh.pulls(REPO)[0].maintainer_can_modify);

    let listed = get(
        &gh,
        &format!("{repo}/pulls?state=all&head=acme:recall/fix&base=main"),
    )
    .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert_eq!(
        get(&gh, &format!("{repo}/pulls?head=acme:other"))
            .await
            .body,
        json!([])
    );
    assert_eq!(
        get(&gh, &format!("{repo}/pulls?head=someone:recall/fix"))
            .await
            .body,
        json!([])
    );
    assert_eq!(
        get(&gh, &format!("{repo}/pulls/{}", pr.body["number"]))
            .await
            .body["title"],
        "Deny compromised versions"
    );
}

#[tokio::test]
async fn pagination_links_over_75_workflows() {
    let gh = fake().await;
    for i in 0..75 {
        gh.add_workflow(REPO, &format!("w{i:02}.yml"), &format!("W{i:02}"));
    }
    let first = get(&gh, "/repos/acme/app/actions/workflows?per_page=30").await;
    assert_eq!(first.body["total_count"], 75);
    assert_eq!(first.body["workflows"].as_array().unwrap().len(), 30);
    assert_eq!(first.body["workflows"][0]["name"], "W00");
    let host = gh.api_url();
    let rels = link_rels(first.header("link").expect("link"));
    assert_eq!(
        rels,
        vec![
            (
                "next".to_string(),
                format!("{host}/repos/acme/app/actions/workflows?per_page=30&page=2")
            ),
            (
                "last".to_string(),
                format!("{host}/repos/acme/app/actions/workflows?per_page=30&page=3")
            ),
        ]
    );
    let second = get(&gh, &rels[0].1).await;
    assert_eq!(second.body["workflows"][0]["name"], "W30");
    let rels2: Vec<String> = link_rels(second.header("link").unwrap())
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(rels2, vec!["prev", "next", "last", "first"]);
    let last = get(&gh, &rels[1].1).await;
    assert_eq!(last.body["workflows"].as_array().unwrap().len(), 15);
    assert_eq!(last.body["workflows"][14]["name"], "W74");
    let rels3 = link_rels(last.header("link").unwrap());
    assert_eq!(
        rels3.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        vec!["prev", "first"]
    );
    assert!(rels3[0].1.ends_with("per_page=30&page=2"));

    // Defaults and the cap.
    let default = get(&gh, "/repos/acme/app/actions/workflows").await;
    assert_eq!(default.body["workflows"].as_array().unwrap().len(), 30);
    let capped = get(&gh, "/repos/acme/app/actions/workflows?per_page=500").await;
    assert_eq!(capped.body["workflows"].as_array().unwrap().len(), 75);
    assert_eq!(capped.header("link"), None);
    let beyond = get(&gh, "/repos/acme/app/actions/workflows?page=9").await;
    assert_eq!(beyond.body["workflows"], json!([]));
}

#[tokio::test]
async fn rate_limits_refuse_without_changing_state() {
    let gh = fake().await;
    let key = gh.public_key("repo:acme/app");
    let body = json!({"encrypted_value": seal(&key.1, b"v"), "key_id": key.0});
    gh.rate_limit_next("PUT /repos/*/actions/secrets/*", 2, 42);
    for _ in 0..2 {
        let r = call(
            &gh,
            "PUT",
            "/repos/acme/app/actions/secrets/TOKEN_A",
            body.clone(),
        )
        .await;
        assert_eq!(r.status, 403);
        assert_eq!(r.header("retry-after"), Some("42"));
        assert!(
            r.message()
                .starts_with("You have exceeded a secondary rate limit"),
            "{}",
            r.body
        );
        assert_eq!(r.body["documentation_url"], github::SECONDARY_DOCS);
        assert_eq!(gh.secret_names("repo:acme/app"), Vec::<String>::new());
    }
    // Other routes are not affected; the third PUT goes through.
    assert_eq!(get(&gh, "/repos/acme/app").await.status, 200);
    assert_eq!(
        call(
            &gh,
            "PUT",
            "/repos/acme/app/actions/secrets/TOKEN_A",
            body.clone()
        )
        .await
        .status,
        201
    );
    assert_eq!(gh.rate_limited(), 2);

    gh.add_workflow(REPO, "release.yml", "Release");
    gh.primary_rate_limit_next(1, 120);
    let before = chrono::Utc::now().timestamp();
    let r = send(
        &gh,
        "PUT",
        "/repos/acme/app/actions/workflows/release.yml/disable",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    let reset: i64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!((before + 119..=before + 122).contains(&reset), "{reset}");
    assert!(
        r.message()
            .starts_with("API rate limit exceeded for user ID"),
        "{}",
        r.body
    );
    assert_eq!(
        gh.workflow_state(REPO, "release.yml").as_deref(),
        Some("active")
    );
    gh.primary_rate_limit_next_status(1, 60, 429);
    let r = send(
        &gh,
        "PUT",
        "/repos/acme/app/actions/workflows/release.yml/disable",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(
        gh.workflow_state(REPO, "release.yml").as_deref(),
        Some("active")
    );
    let r = send(
        &gh,
        "PUT",
        "/repos/acme/app/actions/workflows/release.yml/disable",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        gh.workflow_state(REPO, "release.yml").as_deref(),
        Some("disabled_manually")
    );
    assert_eq!(gh.rate_limited(), 4);
}

fn app_jwt(iss: Value, iat_offset: i64, exp_offset: i64, pem: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &json!({"iss": iss, "iat": now + iat_offset, "exp": now + exp_offset}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("fixture key"),
    )
    .expect("sign")
}

#[tokio::test]
async fn app_jwt_exchange_gives_a_scoped_installation_token() {
    let gh = fake().await;
    gh.add_app(
        4242,
        APP_PUB,
        777,
        &[("secrets", "write"), ("contents", "read")],
    );
    // octocrab's shape: issued 60 s ago, expires in 9 min, iss as a number.
    let jwt = app_jwt(json!(4242), -60, 540, APP_KEY);
    let inst = send(&gh, "GET", "/app/installations/777", Some(&jwt), None).await;
    assert_eq!(inst.status, 200, "{}", inst.body);
    assert_eq!(inst.body["id"], 777);
    assert_eq!(inst.body["app_id"], 4242);
    assert_eq!(inst.body["permissions"]["secrets"], "write");

    let r = send(
        &gh,
        "POST",
        "/app/installations/777/access_tokens",
        Some(&jwt),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ghs_") && token.len() == 40, "{token}");
    assert!(r.body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        r.body["permissions"],
        json!({"contents": "read", "secrets": "write"})
    );
    assert_eq!(gh.installation_tokens(), vec![token.clone()]);
    let key = send(
        &gh,
        "GET",
        "/repos/acme/app/actions/secrets/public-key",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(key.status, 200);
    let denied = send(&gh, "GET", "/repos/acme/app/issues", Some(&token), None).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.message(), "Resource not accessible by integration");
    // The JWT itself is not an API token.
    assert_eq!(
        send(&gh, "GET", "/repos/acme/app", Some(&jwt), None)
            .await
            .status,
        401
    );

    // Down-scoping; asking for more than granted is refused. iss as a string works too.
    let jwt2 = app_jwt(json!("4242"), -30, 300, APP_KEY);
    let scoped = send(
        &gh,
        "POST",
        "/app/installations/777/access_tokens",
        Some(&jwt2),
        Some(json!({"permissions": {"secrets": "read"}})),
    )
    .await;
    assert_eq!(scoped.status, 201, "{}", scoped.body);
    let t2 = scoped.body["token"].as_str().unwrap();
    let put = send(
        &gh,
        "PUT",
        "/repos/acme/app/actions/secrets/X",
        Some(t2),
        Some(json!({"encrypted_value": "AA==", "key_id": "1"})),
    )
    .await;
    assert_eq!(put.status, 403);
    let more = send(
        &gh,
        "POST",
        "/app/installations/777/access_tokens",
        Some(&jwt2),
        Some(json!({"permissions": {"issues": "write"}})),
    )
    .await;
    assert_eq!(more.status, 422);
    assert_eq!(
        send(
            &gh,
            "POST",
            "/app/installations/778/access_tokens",
            Some(&jwt2),
            None
        )
        .await
        .status,
        404
    );

    gh.expire_token(&token);
    assert_eq!(
        send(&gh, "GET", "/repos/acme/app", Some(&token), None)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn bad_app_jwts_are_401() {
    let gh = fake().await;
    gh.add_app(4242, APP_PUB, 777, &[("secrets", "write")]);
    let url = "/app/installations/777/access_tokens";
    // A different RSA key signs it.
    let other_key = {
        use std::process::Command;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.pem");
        let ok = Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&path)
            .arg("2048")
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| std::fs::read_to_string(&path).expect("key"))
    };
    let mut cases = vec![
        ("garbage", "not.a.jwt".to_string()),
        ("expired", app_jwt(json!(4242), -700, -100, APP_KEY)),
        ("too long", app_jwt(json!(4242), 0, 3600, APP_KEY)),
        ("unknown app", app_jwt(json!(1), -60, 540, APP_KEY)),
        ("future iat", app_jwt(json!(4242), 300, 540, APP_KEY)),
    ];
    if let Some(k) = other_key {
        cases.push(("wrong key", app_jwt(json!(4242), -60, 540, &k)));
    }
    let n = cases.len();
    for (what, jwt) in cases {
        let r = send(&gh, "POST", url, Some(&jwt), None).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert!(!r.message().is_empty(), "{what}");
    }
    let too_long = send(
        &gh,
        "POST",
        url,
        Some(&app_jwt(json!(4242), 0, 3600, APP_KEY)),
        None,
    )
    .await;
    assert_eq!(
        too_long.message(),
        "'Expiration time' claim ('exp') is too far in the future"
    );
    assert_eq!(send(&gh, "POST", url, None, None).await.status, 401);
    assert_eq!(gh.auth_failures(), n + 2);
    assert!(gh.installation_tokens().is_empty());
}
