//! The crates.io and PyPI clients against the loopback fakes: yank/unyank (with crates.io's
//! PATCH and the plain-DELETE fallback of registries without it), token revocation,
//! trusted publishers, error classification under scripted faults, and PyPI yank
//! detection through the JSON API and both Simple API formats.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;

use crate::fakes::crates::*;
use crate::fakes::pypi::*;
use crate::fakes::{Fault, MALFORMED_BODY};
use recall::net::crates::*;
use recall::net::pypi::*;

const OWNER_TOKEN: &str = "cioOWNERownerOWNERownerOWNER0001";
const LEAKED_TOKEN: &str = "cioLEAKEDleakedLEAKEDleaked00002";
const OTHER_TOKEN: &str = "cioOTHERotherOTHERotherOTHER0003";
const CREATED: &str = "2024-03-01T12:34:56.789012Z";

struct Seed {
    reg: FakeCrates,
    owner: u64,
    owner_token: u64,
    leaked_token: u64,
}

async fn seeded(reg: FakeCrates) -> Seed {
    let owner = reg.add_user("alice");
    let other = reg.add_user("mallory");
    let owner_token = reg.add_token(owner, "laptop", OWNER_TOKEN);
    let leaked_token = reg.add_token(owner, "ci", LEAKED_TOKEN);
    reg.add_token(other, "other", OTHER_TOKEN);
    reg.add_crate("foo", owner);
    for v in ["1.0.0", "1.0.1", "2.0.0-rc.1"] {
        reg.add_version("foo", v, CREATED);
    }
    Seed {
        reg,
        owner,
        owner_token,
        leaked_token,
    }
}

fn client(url: &str, token: Option<&str>) -> CratesClient {
    CratesClient::new(
        url,
        token.map(|t| SecretString::from(t.to_string())),
        Duration::from_secs(5),
    )
    .expect("crates client")
}

fn secret(t: &str) -> SecretString {
    SecretString::from(t.to_string())
}

#[tokio::test]
async fn yank_with_message_uses_patch_and_is_visible() {
    let s = seeded(FakeCrates::start().await).await;
    let c = client(s.reg.url(), Some(OWNER_TOKEN));

    let before = c.version_info("foo", "1.0.0").await.expect("info");
    let before = before.expect("version exists");
    assert!(!before.yanked);
    assert_eq!(before.created_at.as_deref(), Some(CREATED));
    assert_eq!(before.created_at_ms, Some(1_709_296_496_789));
    assert_eq!(before.name.as_deref(), Some("foo"));

    let r = c
        .yank("foo", "1.0.0", Some("malicious build, see advisory"))
        .await
        .expect("yank");
    assert!(!r.used_fallback && !r.message_dropped);
    assert_eq!(r.requests_sent.len(), 1);
    assert_eq!(r.requests_sent[0].method, "PATCH");

    let v = s.reg.version("foo", "1.0.0").expect("stored");
    assert!(v.yanked);
    assert_eq!(
        v.yank_message.as_deref(),
        Some("malicious build, see advisory")
    );
    assert_eq!(s.reg.is_yanked("foo", "1.0.1"), Some(false));

    let after = c
        .version_info("foo", "1.0.0")
        .await
        .expect("info")
        .expect("exists");
    assert!(after.yanked);
    assert_eq!(
        after.yank_message.as_deref(),
        Some("malicious build, see advisory")
    );

    // Wire shape: raw token (no Bearer), JSON body, recall's user agent.
    let patches = s
        .reg
        .server()
        .requests_matching("PATCH /api/v1/crates/foo/1.0.0");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].header("authorization"), Some(OWNER_TOKEN));
    assert!(
        patches[0]
            .header("content-type")
            .is_some_and(|c| c.contains("json"))
    );
    assert!(
        patches[0]
            .header("user-agent")
            .is_some_and(|u| u.starts_with("recall/"))
    );
    assert_eq!(
        patches[0].json(),
        Some(json!({"version": {"yanked": true, "yank_message": "malicious build, see advisory"}}))
    );
    assert_eq!(s.reg.server().mutating_calls(), 1);
    assert_eq!(s.reg.server().calls(), 3);
}

#[tokio::test]
async fn private_registry_without_patch_falls_back_to_delete() {
    for mode in [PatchSupport::MethodNotAllowed, PatchSupport::NotFound] {
        let s = seeded(FakeCrates::start_with(mode).await).await;
        let c = client(s.reg.url(), Some(OWNER_TOKEN));
        let r = c
            .yank("foo", "1.0.1", Some("compromised"))
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert!(r.used_fallback && r.message_dropped, "{mode:?}");
        let methods: Vec<&str> = r.requests_sent.iter().map(|q| q.method.as_str()).collect();
        assert_eq!(methods, ["PATCH", "DELETE"]);
        assert!(
            r.requests_sent[1]
                .url
                .ends_with("/api/v1/crates/foo/1.0.1/yank")
        );
        let v = s.reg.version("foo", "1.0.1").expect("stored");
        assert!(v.yanked && v.yank_message.is_none(), "{mode:?}");
        assert_eq!(s.reg.server().mutating_calls(), 2);
    }
}

#[tokio::test]
async fn unknown_crate_or_version_is_not_taken_for_a_missing_patch_route() {
    let s = seeded(FakeCrates::start().await).await;
    let c = client(s.reg.url(), Some(OWNER_TOKEN));

    let e = c
        .yank("nope", "1.0.0", Some("x"))
        .await
        .expect_err("unknown crate");
    assert_eq!(e.status(), Some(404));
    assert_eq!(e.detail(), Some("crate `nope` does not exist"));
    assert!(!e.is_transient());

    let e = c
        .yank("foo", "9.9.9", Some("x"))
        .await
        .expect_err("unknown version");
    assert_eq!(
        e.detail(),
        Some("crate `foo` does not have a version `9.9.9`")
    );

    // One PATCH each, no DELETE fallback.
    assert_eq!(s.reg.server().mutating_calls(), 2);
    assert!(s.reg.server().requests_matching("DELETE *").is_empty());
    assert_eq!(c.version_info("nope", "1.0.0").await.expect("info"), None);
    assert_eq!(c.version_info("foo", "9.9.9").await.expect("info"), None);

    // On a registry without PATCH the fallback DELETE reports the same 404.
    let p = seeded(FakeCrates::start_private().await).await;
    let c = client(p.reg.url(), Some(OWNER_TOKEN));
    let e = c
        .yank("nope", "1.0.0", Some("x"))
        .await
        .expect_err("unknown crate");
    assert_eq!(e.detail(), Some("crate `nope` does not exist"));
}

#[tokio::test]
async fn unyank_and_idempotent_reyank() {
    let s = seeded(FakeCrates::start().await).await;
    let c = client(s.reg.url(), Some(OWNER_TOKEN));

    for _ in 0..2 {
        let r = c.yank("foo", "2.0.0-rc.1", None).await.expect("yank");
        assert_eq!(r.requests_sent[0].method, "DELETE");
        assert_eq!(s.reg.is_yanked("foo", "2.0.0-rc.1"), Some(true));
    }
    // The second yank changed nothing on the registry.
    let v = s.reg.version("foo", "2.0.0-rc.1").expect("stored");
    let yanks = v.audit.iter().filter(|(a, _)| a == "yank").count();
    assert_eq!(yanks, 1);
    assert_eq!(v.audit.last().and_then(|(_, t)| *t), Some(s.owner_token));

    // Re-yank with the PATCH form on an already-yanked version: fine, and sets the message.
    let r = c
        .yank("foo", "2.0.0-rc.1", Some("bad"))
        .await
        .expect("re-yank");
    assert!(!r.used_fallback);
    assert_eq!(
        s.reg
            .version("foo", "2.0.0-rc.1")
            .and_then(|v| v.yank_message),
        Some("bad".into())
    );

    for _ in 0..2 {
        let rec = c.unyank("foo", "2.0.0-rc.1").await.expect("unyank");
        assert_eq!(rec.method, "PUT");
        let v = s.reg.version("foo", "2.0.0-rc.1").expect("stored");
        assert!(!v.yanked && v.yank_message.is_none());
    }
    let info = c
        .version_info("foo", "2.0.0-rc.1")
        .await
        .expect("info")
        .expect("exists");
    assert!(!info.yanked);
}

#[tokio::test]
async fn auth_errors_name_the_problem_but_never_the_token() {
    let s = seeded(FakeCrates::start().await).await;

    let anon = client(s.reg.url(), None);
    let e = anon
        .yank("foo", "1.0.0", None)
        .await
        .expect_err("anonymous");
    assert_eq!(e.status(), Some(403));
    assert!(e.is_auth_refused() && !e.is_transient());
    assert_eq!(e.detail(), Some(AUTH_REQUIRED));

    let wrong = "cioWRONGwrongWRONGwrongWRONG9999";
    let c = client(s.reg.url(), Some(wrong));
    let e = c
        .yank("foo", "1.0.0", Some("m"))
        .await
        .expect_err("wrong token");
    assert_eq!(e.status(), Some(403));
    assert_eq!(e.detail(), Some(AUTH_FAILED));
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains(wrong), "token leaked: {shown}");
        assert!(shown.contains("authentication failed"), "{shown}");
    }

    let legacy = "0123456789abcdef0123456789abcdef";
    let c = client(s.reg.url(), Some(legacy));
    let e = c
        .yank("foo", "1.0.0", None)
        .await
        .expect_err("legacy token");
    assert_eq!(e.status(), Some(401));
    assert!(e.is_auth_refused());
    assert!(
        e.to_string()
            .contains("does not match the format used by crates.io")
    );
    assert!(!e.to_string().contains(legacy));

    // Not an owner.
    let c = client(s.reg.url(), Some(OTHER_TOKEN));
    let e = c.yank("foo", "1.0.0", None).await.expect_err("not owner");
    assert_eq!(e.detail(), Some(NOT_OWNER_YANK));

    // A scoped token without the `yank` scope.
    let scoped = "cioSCOPEDscopedSCOPEDscoped00004";
    s.reg.add_scoped_token(
        s.owner,
        "publish-only",
        scoped,
        None,
        Some(&["publish-update"]),
    );
    let c = client(s.reg.url(), Some(scoped));
    let e = c.yank("foo", "1.0.0", None).await.expect_err("scope");
    assert_eq!(e.detail(), Some(SCOPE_DENIED));

    // A registry that echoes the credential back: scrubbed from the error.
    s.reg.server().inject(
        "DELETE /api/v1/crates/*",
        Fault::Status {
            code: 403,
            retry_after: None,
            body: json!({"errors": [{"detail": format!("token {OWNER_TOKEN} is not valid")}]})
                .to_string(),
        },
    );
    let c = client(s.reg.url(), Some(OWNER_TOKEN));
    let e = c.yank("foo", "1.0.0", None).await.expect_err("echo");
    assert!(!format!("{e} {e:?}").contains(OWNER_TOKEN), "{e:?}");
    assert!(e.to_string().contains("<redacted>"));

    assert_eq!(s.reg.is_yanked("foo", "1.0.0"), Some(false));
}

#[tokio::test]
async fn rate_limit_carries_retry_after() {
    let s = seeded(FakeCrates::start().await).await;
    let c = client(s.reg.url(), Some(OWNER_TOKEN));

    s.reg.rate_limit_next("DELETE /api/v1/crates/*/yank", "120");
    let e = c.yank("foo", "1.0.0", None).await.expect_err("429");
    assert_eq!(e.status(), Some(429));
    assert!(e.is_transient());
    assert_eq!(e.retry_after_ms(), Some(120_000));
    assert!(
        e.detail().is_some_and(|d| d.contains(YANK_RATE_LIMITED)),
        "{e}"
    );

    // crates.io sends an HTTP date.
    let at = chrono::Utc::now() + chrono::Duration::seconds(60);
    let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    s.reg.rate_limit_next("PATCH *", &date);
    let e = c.yank("foo", "1.0.0", Some("m")).await.expect_err("429");
    let ms = e.retry_after_ms().expect("retry-after parsed");
    assert!((55_000..=60_000).contains(&ms), "{ms}");

    // Normal service resumes.
    c.yank("foo", "1.0.0", None).await.expect("after the limit");
    assert_eq!(s.reg.server().pending_faults(), 0);
}

#[tokio::test]
async fn server_errors_are_transient_but_501_is_not() {
    let s = seeded(FakeCrates::start().await).await;
    let c = client(s.reg.url(), Some(OWNER_TOKEN));
    for code in [500u16, 502, 503, 501] {
        s.reg.server().inject(
            "GET /api/v1/crates/*",
            Fault::Status {
                code,
                retry_after: None,
                body: String::new(),
            },
        );
        let e = c.version_info("foo", "1.0.0").await.expect_err("5xx");
        assert_eq!(e.status(), Some(code));
        assert_eq!(e.is_transient(), code != 501, "{code}");
    }
    assert!(
        c.version_info("foo", "1.0.0")
            .await
            .expect("recovered")
            .is_some()
    );
}

#[tokio::test]
async fn timeout_and_reset_are_transient_transport_errors() {
    let s = seeded(FakeCrates::start().await).await;
    let c = CratesClient::new(
        s.reg.url(),
        Some(secret(OWNER_TOKEN)),
        Duration::from_millis(300),
    )
    .expect("client");

    s.reg
        .server()
        .inject("GET *", Fault::Delay(Duration::from_secs(3)));
    let e = c.version_info("foo", "1.0.0").await.expect_err("timeout");
    assert!(matches!(e, CratesError::Transport(_)), "{e:?}");
    assert!(e.is_transient());
    assert!(e.to_string().contains("timeout"), "{e}");

    s.reg.server().inject("DELETE *", Fault::Reset);
    let e = c.yank("foo", "1.0.0", None).await.expect_err("reset");
    assert!(matches!(e, CratesError::Transport(_)), "{e:?}");
    assert!(e.is_transient());
    assert!(!e.to_string().contains(OWNER_TOKEN));
    // The reset request was not applied.
    assert_eq!(s.reg.is_yanked("foo", "1.0.0"), Some(false));

    c.yank("foo", "1.0.0", None)
        .await
        .expect("normal service resumes");
    assert_eq!(s.reg.is_yanked("foo", "1.0.0"), Some(true));
}

#[tokio::test]
async fn malformed_json_is_a_decode_error() {
    let s = seeded(FakeCrates::start().await).await;
    let c = client(s.reg.url(), Some(OWNER_TOKEN));
    s.reg
        .server()
        .inject("GET /api/v1/crates/foo/*", Fault::Malformed);
    let e = c.version_info("foo", "1.0.0").await.expect_err("malformed");
    assert!(matches!(e, CratesError::Decode(_)), "{e:?}");
    assert!(!e.is_transient());
    assert!(MALFORMED_BODY.len() > 10);
}

#[tokio::test]
async fn revoking_the_current_token_kills_it() {
    let s = seeded(FakeCrates::start().await).await;
    let c = client(s.reg.url(), Some(OWNER_TOKEN));
    let leaked = secret(LEAKED_TOKEN);

    assert_eq!(
        c.token_state(&leaked).await.expect("probe"),
        TokenState::Accepted
    );
    let rec = c.revoke_current_request();
    let answer = c.send_with(&rec, &leaked).await.expect("revoke");
    assert!(answer.is_null(), "204 has no body: {answer}");
    assert!(s.reg.is_revoked(s.leaked_token));
    assert!(!s.reg.is_revoked(s.owner_token));

    // The leaked token authenticated the DELETE, not the client's own.
    let del = s
        .reg
        .server()
        .requests_matching("DELETE /api/v1/tokens/current");
    assert_eq!(del.len(), 1);
    assert_eq!(del[0].header("authorization"), Some(LEAKED_TOKEN));

    assert!(matches!(
        c.token_state(&leaked).await.expect("probe"),
        TokenState::Refused { status: 403, .. }
    ));
    assert_eq!(
        c.token_state(&secret(OWNER_TOKEN)).await.expect("probe"),
        TokenState::Accepted
    );
    let dead = client(s.reg.url(), Some(LEAKED_TOKEN));
    let e = dead.yank("foo", "1.0.0", None).await.expect_err("revoked");
    assert_eq!(e.detail(), Some(AUTH_FAILED));
    let e = dead
        .send(&dead.revoke_current_request())
        .await
        .expect_err("again");
    assert!(e.is_auth_refused());
    assert!(!e.to_string().contains(LEAKED_TOKEN));

    // A scoped token is alive, but crates.io refuses to let it revoke itself.
    let scoped_secret = "cioSCOPEDscopedSCOPEDscoped00005";
    let scoped = secret(scoped_secret);
    let id = s.reg.add_scoped_token(
        s.owner,
        "yank-only",
        scoped_secret,
        Some(&["foo"]),
        Some(&["yank"]),
    );
    assert_eq!(
        c.token_state(&scoped).await.expect("probe"),
        TokenState::Accepted
    );
    let e = c.send_with(&rec, &scoped).await.expect_err("scoped");
    assert_eq!(e.detail(), Some(SCOPE_DENIED));
    assert!(!s.reg.is_revoked(id));
    // The owner's legacy token revokes it by id.
    c.send(&c.revoke_token_by_id_request(id))
        .await
        .expect("by id");
    assert!(s.reg.is_revoked(id));
    assert!(matches!(
        c.token_state(&scoped).await.expect("probe"),
        TokenState::Refused { .. }
    ));
}

#[tokio::test]
async fn tokens_by_id_and_listing() {
    let s = seeded(FakeCrates::start().await).await;
    let c = client(s.reg.url(), Some(OWNER_TOKEN));

    // crates.io lists tokens for browser sessions only.
    let e = c.list_tokens().await.expect_err("website only");
    assert_eq!(e.detail(), Some(WEBSITE_ONLY));

    s.reg.set_token_listing(true);
    let tokens = c.list_tokens().await.expect("list");
    let ids: Vec<u64> = tokens.iter().map(|t| t.id).collect();
    assert_eq!(ids, [s.leaked_token, s.owner_token]);
    assert_eq!(tokens[0].name, "ci");
    assert!(tokens[0].endpoint_scopes.is_none());

    let answer = c
        .send(&c.revoke_token_by_id_request(s.leaked_token))
        .await
        .expect("revoke by id");
    assert_eq!(answer, json!({}));
    assert!(s.reg.is_revoked(s.leaked_token));
    let ids: Vec<u64> = c
        .list_tokens()
        .await
        .expect("list")
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, [s.owner_token]);
    assert!(matches!(
        c.token_state(&secret(LEAKED_TOKEN)).await.expect("probe"),
        TokenState::Refused { .. }
    ));

    // crates.io answers `{}` for an id that matches nothing, too.
    let answer = c
        .send(&c.revoke_token_by_id_request(999_999))
        .await
        .expect("noop");
    assert_eq!(answer, json!({}));
}

#[tokio::test]
async fn trusted_publishers_list_and_delete() {
    let s = seeded(FakeCrates::start().await).await;
    let a = s
        .reg
        .add_github_config("foo", "acme", "foo-rs", "release.yml", None);
    let b = s
        .reg
        .add_github_config("foo", "evil", "fork", "publish.yml", Some("prod"));
    let c = client(s.reg.url(), Some(OWNER_TOKEN));

    let list = c.trusted_publishers("foo").await.expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, a);
    assert_eq!(list[0].krate, "foo");
    assert_eq!(list[0].repository_owner, "acme");
    assert_eq!(list[1].environment.as_deref(), Some("prod"));
    assert!(list[1].repository_owner_id.is_some());

    let rec = c.remove_trusted_publisher_request(b);
    assert_eq!(s.reg.server().mutating_calls(), 0, "building sends nothing");
    let answer = c.send(&rec).await.expect("delete");
    assert!(answer.is_null());
    let left: Vec<u64> = s.reg.github_configs("foo").iter().map(|g| g.id).collect();
    assert_eq!(left, [a]);
    assert_eq!(c.trusted_publishers("foo").await.expect("list").len(), 1);

    let e = c.send(&rec).await.expect_err("already gone");
    assert_eq!(e.status(), Some(404));

    let other = client(s.reg.url(), Some(OTHER_TOKEN));
    let e = other
        .trusted_publishers("foo")
        .await
        .expect_err("not owner");
    assert_eq!((e.status(), e.detail()), (Some(400), Some(NOT_OWNER)));
    let e = c
        .trusted_publishers("nope")
        .await
        .expect_err("unknown crate");
    assert_eq!(e.detail(), Some("crate `nope` does not exist"));
}

#[tokio::test]
async fn rehearsal_builds_every_mutation_without_sending() {
    let s = seeded(FakeCrates::start().await).await;
    let c = client(s.reg.url(), Some(OWNER_TOKEN));
    let recs = vec![
        c.yank_request("foo", "1.0.0", Some("why")).expect("yank"),
        c.yank_fallback_request("foo", "1.0.0").expect("fallback"),
        c.unyank_request("foo", "1.0.0").expect("unyank"),
        c.revoke_current_request(),
        c.revoke_token_by_id_request(s.leaked_token),
        c.remove_trusted_publisher_request(1),
    ];
    assert!(recs.iter().all(|r| r.is_mutating()));
    assert_eq!(s.reg.server().calls(), 0);
    let text = serde_json::to_string(&recs).expect("serialise");
    assert!(!text.contains(OWNER_TOKEN));
    assert!(recs.iter().all(|r| r.url.starts_with(s.reg.url())));
    // Validation happens before anything is sent.
    assert!(matches!(
        c.yank("foo/../bar", "1.0.0", None).await,
        Err(CratesError::InvalidName { .. })
    ));
    assert!(matches!(
        c.yank("foo", "v1.0.0", None).await,
        Err(CratesError::InvalidVersion { .. })
    ));
    assert_eq!(s.reg.server().calls(), 0);
}

// ---------------------------------------------------------------- PyPI

const UPLOADED: &str = "2024-05-06T07:08:09.123456Z";

async fn pypi_with_release(fake: FakePypi) -> FakePypi {
    fake.add_release(
        "Evil_Pkg",
        "1.2.3",
        &["evil_pkg-1.2.3.tar.gz", "evil_pkg-1.2.3-py3-none-any.whl"],
        UPLOADED,
    );
    fake.add_release("Evil_Pkg", "1.2.2", &["evil_pkg-1.2.2.tar.gz"], UPLOADED);
    fake
}

fn pypi_client(url: &str) -> PypiClient {
    PypiClient::new(url, Duration::from_secs(5)).expect("pypi client")
}

#[tokio::test]
async fn pypi_json_and_simple_json_detect_a_yank() {
    let fake = pypi_with_release(FakePypi::start().await).await;
    let c = pypi_client(fake.url());

    let rel = c
        .release("evil-pkg", "1.2.3")
        .await
        .expect("release")
        .expect("exists");
    assert_eq!(rel.name, "Evil_Pkg");
    assert_eq!(rel.files.len(), 2);
    assert_eq!(rel.files[0].upload_time_iso_8601.as_deref(), Some(UPLOADED));
    let st = c
        .yank_status("evil-pkg", "1.2.3")
        .await
        .expect("status")
        .expect("exists");
    assert!(!st.yanked() && !st.all_files_yanked_json && !st.all_files_yanked_simple);
    assert_eq!(st.simple_format, Some(SimpleFormat::Json));

    fake.yank_release("Evil_Pkg", "1.2.3", Some("compromised maintainer account"));
    let st = c
        .yank_status("Evil.Pkg", "1.2.3")
        .await
        .expect("status")
        .expect("exists");
    assert!(st.yanked() && st.release_flag);
    assert_eq!(st.reason.as_deref(), Some("compromised maintainer account"));
    assert_eq!(st.files.len(), 2);
    assert!(
        st.files
            .iter()
            .all(|f| f.yanked_json && f.yanked_simple == Some(true))
    );
    // The other release is untouched.
    let other = c
        .yank_status("evil-pkg", "1.2.2")
        .await
        .expect("status")
        .expect("exists");
    assert!(!other.yanked());

    let files = c
        .simple_files("evil-pkg")
        .await
        .expect("simple")
        .expect("exists");
    assert_eq!(files.len(), 3);
    let simple = fake.server().requests_matching("GET /simple/*");
    assert!(simple.iter().all(|r| {
        r.header("accept")
            .is_some_and(|a| a.contains("vnd.pypi.simple.v1+json"))
    }));
    assert_eq!(fake.server().mutating_calls(), 0);
}

#[tokio::test]
async fn pypi_simple_html_detects_a_yank_with_escaped_reason() {
    let fake = pypi_with_release(FakePypi::start_html_only().await).await;
    let c = pypi_client(fake.url());
    let reason = r#"contains "stealer" <script> & worse"#;
    fake.yank_release("Evil_Pkg", "1.2.3", Some(reason));
    let st = c
        .yank_status("evil_pkg", "1.2.3")
        .await
        .expect("status")
        .expect("exists");
    assert_eq!(st.simple_format, Some(SimpleFormat::Html));
    assert!(st.yanked());
    assert_eq!(st.reason.as_deref(), Some(reason));
    let files = c
        .simple_files("EVIL-PKG")
        .await
        .expect("simple")
        .expect("exists");
    let y = files
        .iter()
        .find(|f| f.filename == "evil_pkg-1.2.3-py3-none-any.whl")
        .expect("listed");
    assert_eq!(y.yanked.as_deref(), Some(reason));

    // Yanked without a reason: `data-yanked=""` still counts.
    fake.yank_release("Evil_Pkg", "1.2.2", None);
    let st = c
        .yank_status("evil-pkg", "1.2.2")
        .await
        .expect("status")
        .expect("exists");
    assert!(st.yanked());
    assert_eq!(st.reason, None);
}

#[tokio::test]
async fn pypi_partially_yanked_release_is_not_yanked() {
    for fake in [FakePypi::start().await, FakePypi::start_html_only().await] {
        let fake = pypi_with_release(fake).await;
        let c = pypi_client(fake.url());
        fake.yank_file(
            "Evil_Pkg",
            "1.2.3",
            "evil_pkg-1.2.3.tar.gz",
            Some("sdist only"),
        );
        let st = c
            .yank_status("evil-pkg", "1.2.3")
            .await
            .expect("status")
            .expect("exists");
        assert!(!st.yanked(), "{:?}", st.simple_format);
        assert!(!st.all_files_yanked_json && !st.all_files_yanked_simple);
        let tar = &st.files[0];
        assert!(tar.yanked_json && tar.yanked_simple == Some(true));
        assert_eq!(tar.reason.as_deref(), Some("sdist only"));
        let whl = &st.files[1];
        assert!(!whl.yanked_json && whl.yanked_simple == Some(false));
    }
}

#[tokio::test]
async fn pypi_names_are_normalised_and_redirects_followed() {
    let fake = FakePypi::start().await;
    fake.add_release(
        "Zope.Interface_Extra",
        "5.0",
        &["zope_interface_extra-5.0.tar.gz"],
        UPLOADED,
    );
    let c = pypi_client(fake.url());
    for spelling in [
        "zope-interface-extra",
        "ZOPE_INTERFACE.EXTRA",
        "Zope.Interface_Extra",
    ] {
        let rel = c.release(spelling, "5.0").await.expect("release");
        assert_eq!(
            rel.map(|r| r.name),
            Some("Zope.Interface_Extra".to_string())
        );
    }
    // We ask for the normal form; the fake redirects to the display name.
    let paths: Vec<String> = fake
        .server()
        .requests_matching("GET /pypi/*")
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(paths[0], "/pypi/zope-interface-extra/5.0/json");
    assert_eq!(paths[1], "/pypi/Zope.Interface_Extra/5.0/json");
    let project = c
        .project("zope_interface_extra")
        .await
        .expect("project")
        .expect("exists");
    assert_eq!(project.versions, ["5.0"]);
    assert!(
        c.simple_files("Zope.Interface-Extra")
            .await
            .expect("simple")
            .is_some()
    );
    assert_eq!(
        manage_url("https://test.pypi.org", "Zope.Interface_Extra", "5.0").expect("url"),
        "https://test.pypi.org/manage/project/zope-interface-extra/release/5.0/"
    );
}

#[tokio::test]
async fn pypi_unknown_releases_and_faults() {
    let fake = pypi_with_release(FakePypi::start().await).await;
    let c = PypiClient::new(fake.url(), Duration::from_millis(300)).expect("client");

    assert_eq!(c.release("evil-pkg", "9.9").await.expect("release"), None);
    assert_eq!(c.release("nobody", "1.0").await.expect("release"), None);
    assert_eq!(c.yank_status("nobody", "1.0").await.expect("status"), None);
    assert_eq!(c.simple_files("nobody").await.expect("simple"), None);
    assert!(matches!(
        c.release("../etc", "1").await,
        Err(PypiError::InvalidName { .. })
    ));

    fake.server().inject(
        "/pypi/*",
        Fault::Status {
            code: 503,
            retry_after: Some("7".into()),
            body: "busy".into(),
        },
    );
    let e = c.release("evil-pkg", "1.2.3").await.expect_err("503");
    assert!(e.is_transient());
    assert_eq!(e.status(), Some(503));

    fake.server().inject("/pypi/*", Fault::Malformed);
    let e = c.release("evil-pkg", "1.2.3").await.expect_err("malformed");
    assert!(!e.is_transient(), "{e:?}");

    fake.server().inject("/simple/*", Fault::Reset);
    let e = c.simple_files("evil-pkg").await.expect_err("reset");
    assert!(e.is_transient(), "{e:?}");

    fake.server()
        .inject("/simple/*", Fault::Delay(Duration::from_secs(3)));
    let e = c
        .yank_status("evil-pkg", "1.2.3")
        .await
        .expect_err("timeout");
    assert!(e.is_transient(), "{e:?}");

    assert!(
        c.yank_status("evil-pkg", "1.2.3")
            .await
            .expect("resumes")
            .is_some()
    );
    assert_eq!(fake.server().mutating_calls(), 0);
}
