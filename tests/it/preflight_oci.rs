//! Preflight of the oci actions against the real distribution 2.8.2, through the `recall`
//! binary: a playbook with every OCI action is rehearsed (`--dry-run --auto-approve`) and
//! the checks stored at `data.detail.preflight` of each `attempt.planned` event are read.
//!
//! * a normal registry (deletes enabled): nothing fails; `oci.methods` reads `Allow:
//!   DELETE, GET, HEAD, PUT`; tag DELETE, referrers and immutability are unknowns;
//! * the same storage in read-only mode: `oci.methods` fails (Blocks) for quarantine_tag,
//!   untag and delete_manifest with the fix, and nothing else fails;
//! * a missing tag / repository: `oci.target` fails;
//! * Bearer token auth (an in-process token front in front of the real registry issuing
//!   JWTs): the token endpoint is asked for each action's scope and the `access` claim
//!   decides; neither password nor token reaches the timeline;
//! * the registry's access log (and the front's log) show no PUT/POST/PATCH/DELETE during
//!   any rehearsal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

use crate::fakes::{FakeServer, Request, Response, proxy};
use crate::support::registry::Registry;
use crate::support::{Recall, Run, events, write_file};

const PLAYBOOK: &str = r#"name: preflight-oci
params:
  image: { type: string }
  digest: { type: string }
  tag: { type: string }
steps:
  - id: resolve
    uses: oci.resolve
    with:
      image: ${{ params.image }}
      reference: ${{ params.tag }}
  - id: quarantine
    uses: oci.quarantine_tag
    with:
      image: ${{ params.image }}
      digest: ${{ params.digest }}
  - id: untag
    uses: oci.untag
    with:
      image: ${{ params.image }}
      tag: ${{ params.tag }}
      digest: ${{ params.digest }}
  - id: referrers
    uses: oci.list_referrers
    with:
      image: ${{ params.image }}
      digest: ${{ params.digest }}
  - id: delete
    uses: oci.delete_manifest
    with:
      image: ${{ params.image }}
      digest: ${{ params.digest }}
    approval: { count: 1, from: [group:release-admins] }
"#;

const STEPS: [&str; 5] = ["resolve", "quarantine", "untag", "referrers", "delete"];

async fn registry() -> Registry {
    match Registry::start().await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn recall(insecure_host: &str, extra: &str) -> Recall {
    Recall::new(&format!(
        "[oci]\ninsecure = [\"{insecure_host}\"]\ntimeout = \"10s\"\npublish_time = \"allow\"\n{extra}\n[groups]\nrelease-admins = [\"alice\", \"bob\"]\n"
    ))
}

/// The rehearsal, whatever its outcome: a destructive step whose deletion gate cannot read
/// its facts (an unknown digest, a refused credential) fails before it is invoked (its
/// preflight comes with the `gate.unavailable` event), and the incident ends `failed`
/// (exit 1).
fn rehearse_any(r: &Recall, image: &str, digest: &str, tag: &str) -> Run {
    let pb = write_file(r.dir.path(), "preflight.yaml", PLAYBOOK.as_bytes());
    let (i, d, t) = (
        format!("image={image}"),
        format!("digest={digest}"),
        format!("tag={tag}"),
    );
    let run = r.run(&[
        "incident",
        "start",
        "--playbook",
        &pb,
        "--dry-run",
        "--auto-approve",
        "--json",
        "--param",
        &i,
        "--param",
        &d,
        "--param",
        &t,
    ]);
    assert!(matches!(run.code, Some(0 | 1)), "{run:?}");
    run
}

fn rehearse(r: &Recall, image: &str, digest: &str, tag: &str) -> Run {
    let run = rehearse_any(r, image, digest, tag);
    assert_eq!(run.code, Some(0), "{run:?}");
    run
}

/// The summary of the delete step's `gate.unavailable` event.
fn gate_unavailable(tl: &Value) -> String {
    events(tl, "gate.unavailable")
        .first()
        .map(|e| text(e, "summary"))
        .unwrap_or_else(|| panic!("no gate.unavailable in {tl}"))
}

/// step → its checks, from the rehearsal's `attempt.planned` events.
fn preflight(tl: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for e in events(tl, "attempt.planned") {
        let step = e["step"].as_str().unwrap_or_default().to_string();
        let checks = e["data"]["detail"]["preflight"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("no preflight on {e}"));
        out.insert(step, checks);
    }
    out
}

fn ids(checks: &[Value]) -> Vec<&str> {
    checks
        .iter()
        .map(|c| c["check"].as_str().unwrap_or_default())
        .collect()
}

fn check<'a>(pf: &'a BTreeMap<String, Vec<Value>>, step: &str, id: &str) -> &'a Value {
    pf.get(step)
        .and_then(|cs| cs.iter().find(|c| c["check"] == id))
        .unwrap_or_else(|| panic!("{step}: no {id} in {pf:#?}"))
}

fn failing(pf: &BTreeMap<String, Vec<Value>>) -> Vec<(String, String)> {
    pf.iter()
        .flat_map(|(s, cs)| {
            cs.iter()
                .filter(|c| c["verdict"] == "fail")
                .map(move |c| (s.clone(), c["check"].as_str().unwrap_or_default().into()))
        })
        .collect()
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_registry_has_no_blocking_failure_and_sees_no_write() {
    let reg = registry().await;
    let repo = "team/app";
    let img = reg.seed_image(repo, "v1").await.expect("seed");
    let image = format!("{}/{repo}", reg.host());
    let r = recall(&reg.host(), "");

    let mark = reg.mark();
    let run = rehearse(&r, &image, &img.digest, "v1");
    let seen = reg.requests_since(mark);
    let sent = reg.mutating_requests_since(mark);
    assert!(sent.is_empty(), "a rehearsal sent {sent:?}");
    assert!(
        seen.iter().any(|(m, _)| m == "OPTIONS"),
        "the methods were read with OPTIONS: {seen:?}"
    );

    let pf = preflight(&r.timeline(&run.id()));
    assert_eq!(pf.keys().map(String::as_str).collect::<Vec<_>>(), {
        let mut s = STEPS.to_vec();
        s.sort();
        s
    });
    assert_eq!(
        failing(&pf),
        Vec::<(String, String)>::new(),
        "nothing fails on a writable registry: {pf:#?}"
    );
    assert_eq!(
        ids(&pf["resolve"]),
        ["oci.registry", "oci.credential", "oci.target"]
    );
    assert_eq!(
        ids(&pf["quarantine"]),
        [
            "oci.registry",
            "oci.credential",
            "oci.target",
            "oci.methods",
            "oci.immutable_tags"
        ]
    );
    assert_eq!(
        ids(&pf["untag"]),
        [
            "oci.registry",
            "oci.credential",
            "oci.target",
            "oci.methods",
            "oci.tag_delete",
            "oci.immutable_tags"
        ]
    );
    assert_eq!(
        ids(&pf["referrers"]),
        [
            "oci.registry",
            "oci.credential",
            "oci.target",
            "oci.referrers"
        ]
    );
    assert_eq!(
        ids(&pf["delete"]),
        [
            "oci.registry",
            "oci.credential",
            "oci.target",
            "oci.methods",
            "oci.referrers"
        ]
    );

    for step in STEPS {
        let reg_check = check(&pf, step, "oci.registry");
        assert_eq!(reg_check["verdict"], "pass");
        assert!(
            text(reg_check, "evidence").contains("registry/2.0"),
            "{reg_check}"
        );
        let t = check(&pf, step, "oci.target");
        assert_eq!(t["verdict"], "pass", "{t}");
    }
    // Reads need no credential on an open registry; writes cannot be confirmed anonymous.
    assert_eq!(check(&pf, "resolve", "oci.credential")["verdict"], "pass");
    assert_eq!(check(&pf, "untag", "oci.credential")["verdict"], "unknown");
    assert!(text(check(&pf, "resolve", "oci.target"), "evidence").contains(&img.digest));
    for step in ["quarantine", "untag", "delete"] {
        let m = check(&pf, step, "oci.methods");
        assert_eq!(m["verdict"], "pass", "{m}");
        assert!(
            text(m, "evidence").contains("Allow: DELETE, GET, HEAD, PUT"),
            "{m}"
        );
    }
    let td = check(&pf, "untag", "oci.tag_delete");
    assert_eq!(
        (&td["verdict"], &td["impact"]),
        (&json!("unknown"), &json!("info"))
    );
    assert!(
        text(td, "fix").contains("storage.delete.enabled: true"),
        "{td}"
    );
    for step in ["quarantine", "untag"] {
        let im = check(&pf, step, "oci.immutable_tags");
        assert_eq!(
            (&im["verdict"], &im["impact"]),
            (&json!("unknown"), &json!("info"))
        );
        assert!(text(im, "fix").contains("Harbor"), "{im}");
    }
    let lr = check(&pf, "referrers", "oci.referrers");
    assert_eq!(
        (&lr["verdict"], &lr["impact"]),
        (&json!("unknown"), &json!("degrades"))
    );
    assert!(text(lr, "evidence").contains("answered 404"), "{lr}");
    assert!(text(lr, "evidence").contains("fallback"), "{lr}");
    let dr = check(&pf, "delete", "oci.referrers");
    assert_eq!(
        (&dr["verdict"], &dr["impact"]),
        (&json!("unknown"), &json!("info"))
    );

    // Nothing changed.
    assert_eq!(reg.tags(repo).await.expect("tags"), ["v1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_registry_fails_the_methods_check_only() {
    let mut reg = registry().await;
    let repo = "team/app";
    let img = reg.seed_image(repo, "v1").await.expect("seed");
    reg.restart(true).await.expect("read-only");
    // It is read-only indeed: a write is refused.
    assert!(reg.seed_image(repo, "v2").await.is_err());
    let image = format!("{}/{repo}", reg.host());
    let r = recall(&reg.host(), "");

    let mark = reg.mark();
    let run = rehearse(&r, &image, &img.digest, "v1");
    let sent = reg.mutating_requests_since(mark);
    assert!(sent.is_empty(), "a rehearsal sent {sent:?}");

    let pf = preflight(&r.timeline(&run.id()));
    let mut failed = failing(&pf);
    failed.sort();
    assert_eq!(
        failed,
        [
            ("delete".to_string(), "oci.methods".to_string()),
            ("quarantine".into(), "oci.methods".into()),
            ("untag".into(), "oci.methods".into()),
        ],
        "{pf:#?}"
    );
    for step in ["quarantine", "untag", "delete"] {
        let m = check(&pf, step, "oci.methods");
        assert_eq!(m["impact"], "blocks", "{m}");
        assert!(text(m, "evidence").contains("Allow: GET, HEAD"), "{m}");
        assert!(
            text(m, "fix").contains("storage.maintenance.readonly.enabled: true"),
            "{m}"
        );
    }
    assert!(text(check(&pf, "quarantine", "oci.methods"), "evidence").contains("no PUT"));
    assert!(text(check(&pf, "delete", "oci.methods"), "evidence").contains("no DELETE"));
    assert!(text(check(&pf, "untag", "oci.methods"), "evidence").contains("no PUT, DELETE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tag_or_repository_fails_the_target_check() {
    let reg = registry().await;
    let repo = "team/app";
    let img = reg.seed_image(repo, "v1").await.expect("seed");
    let r = recall(&reg.host(), "");

    let mark = reg.mark();
    let run = rehearse(&r, &format!("{}/{repo}", reg.host()), &img.digest, "v9");
    let pf = preflight(&r.timeline(&run.id()));
    let mut failed = failing(&pf);
    failed.sort();
    assert_eq!(
        failed,
        [
            ("resolve".to_string(), "oci.target".to_string()),
            ("untag".into(), "oci.target".into()),
        ],
        "{pf:#?}"
    );
    let t = check(&pf, "untag", "oci.target");
    assert_eq!(t["impact"], "blocks");
    assert!(
        text(t, "evidence").contains("exists (1 tag(s)) but has no manifest v9"),
        "{t}"
    );
    assert!(text(t, "fix").contains("tag's name"), "{t}");

    // An unknown repository: every target fails, and says which part is missing. The
    // deletion gate cannot read its facts, so the delete step is never planned: its
    // preflight comes with the gate's failure.
    let run = rehearse_any(&r, &format!("{}/team/ghost", reg.host()), &img.digest, "v1");
    let tl = r.timeline(&run.id());
    assert!(gate_unavailable(&tl).contains("does not exist"));
    let pf = preflight(&tl);
    assert!(!pf.contains_key("delete"));
    let gate_pf = events(&tl, "gate.unavailable")
        .first()
        .and_then(|e| e["data"]["preflight"].as_array().cloned())
        .expect("the gate's failure carries the delete step's preflight");
    assert!(
        gate_pf
            .iter()
            .any(|c| c["check"] == "oci.target" && c["verdict"] == "fail"),
        "{gate_pf:?}"
    );
    for step in ["resolve", "quarantine", "untag", "referrers"] {
        let t = check(&pf, step, "oci.target");
        assert_eq!(
            (&t["verdict"], &t["impact"]),
            (&json!("fail"), &json!("blocks")),
            "{t}"
        );
        assert!(
            text(t, "evidence").contains("repository team/ghost does not exist"),
            "{t}"
        );
    }
    let sent = reg.mutating_requests_since(mark);
    assert!(sent.is_empty(), "a rehearsal sent {sent:?}");
}

// ---- Bearer token auth -------------------------------------------------------------------

const PW_PULL: &str = "pw-only-pull-5f1e";
const PW_ALL: &str = "pw-incident-3c9a";

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token-auth front for a real registry, as distribution's token auth behaves: `/v2/…`
/// without a valid token → 401 `Bearer realm=<front>/token,service=front`; `/token` checks
/// the Basic credentials and issues a JWT whose `access` claim is the asked scope narrowed
/// to the user's rights (`reader`: pull only; `responder`: everything); reads with a token
/// granting `pull` on the repository are forwarded to the registry.
/// Tokens issued → their grants: (repository, actions).
type Issued = Arc<Mutex<HashMap<String, Vec<(String, Vec<String>)>>>>;

struct TokenFront {
    server: FakeServer,
    issued: Issued,
}

async fn token_front(upstream: String) -> TokenFront {
    let me: Arc<OnceLock<String>> = Arc::default();
    let issued: Issued = Arc::default();
    let (me2, issued2) = (me.clone(), issued.clone());
    let server = FakeServer::start(move |req: &Request| {
        let base = me2.get().cloned().unwrap_or_default();
        if req.path() == "/token" {
            use base64::Engine as _;
            let user = req
                .header("authorization")
                .and_then(|a| a.strip_prefix("Basic "))
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let rights: &[&str] = match user.as_deref() {
                Some(u) if u == format!("reader:{PW_PULL}") => &["pull"],
                Some(u) if u == format!("responder:{PW_ALL}") => &["pull", "push", "delete"],
                _ => {
                    return Response::json(401, &json!({"details": "incorrect username or password"}));
                }
            };
            let mut access = Vec::new();
            if let Some(scope) = req.query_param("scope") {
                let mut parts = scope.splitn(3, ':');
                if let (Some("repository"), Some(name), Some(actions)) =
                    (parts.next(), parts.next(), parts.next())
                {
                    let granted: Vec<String> = actions
                        .split(',')
                        .filter(|a| rights.contains(a))
                        .map(str::to_string)
                        .collect();
                    access.push((name.to_string(), granted));
                }
            }
            let claims = json!({
                "iss": "front", "sub": user.unwrap_or_default(),
                "access": access.iter().map(|(n, a)| json!({"type": "repository", "name": n, "actions": a})).collect::<Vec<_>>(),
            });
            let n = issued2.lock().map(|m| m.len()).unwrap_or(0);
            let token = format!(
                "{}.{}.{}",
                b64url(br#"{"alg":"none","typ":"JWT"}"#),
                b64url(claims.to_string().as_bytes()),
                b64url(format!("sig-{n}").as_bytes())
            );
            if let Ok(mut m) = issued2.lock() {
                m.insert(token.clone(), access);
            }
            return Response::json(200, &json!({"token": token, "expires_in": 300}));
        }
        let challenge = Response::json(401, &json!({"errors": [{"code": "UNAUTHORIZED"}]}))
            .with_header(
                "www-authenticate",
                &format!(r#"Bearer realm="{base}/token",service="front""#),
            )
            .with_header("docker-distribution-api-version", "registry/2.0");
        let Some(token) = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
        else {
            return challenge;
        };
        let Some(access) = issued2.lock().ok().and_then(|m| m.get(token).cloned()) else {
            return challenge;
        };
        if req.path() != "/v2/" {
            let reads = matches!(req.method.as_str(), "GET" | "HEAD" | "OPTIONS");
            let ok = reads
                && access
                    .iter()
                    .any(|(n, a)| req.path().starts_with(&format!("/v2/{n}/")) && a.iter().any(|x| x == "pull"));
            if !ok {
                return challenge;
            }
        }
        proxy::forward(&upstream, req)
    })
    .await;
    let _ = me.set(server.url().to_string());
    TokenFront { server, issued }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_scopes_are_asked_per_action_and_compared_exactly() {
    let reg = registry().await;
    let repo = "team/app";
    let img = reg.seed_image(repo, "v1").await.expect("seed");
    let front = token_front(reg.host()).await;
    let host = front.server.url().trim_start_matches("http://").to_string();
    let image = format!("{host}/{repo}");

    // A reader: pull only. Reads pass; every write fails with what is missing.
    let r = recall(
        &host,
        &format!(
            "\n[oci.auth.\"{host}\"]\nusername = \"reader\"\npassword_env = \"RECALL_TEST_OCI_PW\"\n"
        ),
    );
    let mut r = r;
    r.env.push(("RECALL_TEST_OCI_PW".into(), PW_PULL.into()));
    let mark = reg.mark();
    let run = rehearse(&r, &image, &img.digest, "v1");
    let tl = r.timeline(&run.id());
    let pf = preflight(&tl);
    let mut failed = failing(&pf);
    failed.sort();
    assert_eq!(
        failed,
        [
            ("delete".to_string(), "oci.credential".to_string()),
            ("quarantine".into(), "oci.credential".into()),
            ("untag".into(), "oci.credential".into()),
        ],
        "{pf:#?}"
    );
    let reg_check = check(&pf, "resolve", "oci.registry");
    assert!(
        text(reg_check, "evidence").contains("Bearer challenge"),
        "{reg_check}"
    );
    let c = check(&pf, "resolve", "oci.credential");
    assert_eq!(c["verdict"], "pass", "{c}");
    assert!(
        text(c, "subject").contains("repository:team/app:pull"),
        "{c}"
    );
    let c = check(&pf, "quarantine", "oci.credential");
    assert!(
        text(c, "evidence").contains(
            "grants pull on repository team/app; asked repository:team/app:pull,push: missing push"
        ),
        "{c}"
    );
    assert!(
        text(c, "fix").contains(&format!("[oci.auth.\"{host}\"]")),
        "{c}"
    );
    let c = check(&pf, "untag", "oci.credential");
    assert!(text(c, "evidence").contains("missing push,delete"), "{c}");
    let c = check(&pf, "delete", "oci.credential");
    assert!(text(c, "evidence").contains("missing delete"), "{c}");
    // The token front admitted the OPTIONS with a pull token: methods read as on the registry.
    assert_eq!(check(&pf, "delete", "oci.methods")["verdict"], "pass");
    // The token endpoint was asked for exactly each action's scope.
    let scopes: BTreeSet<String> = front
        .server
        .requests_matching("GET /token")
        .iter()
        .filter_map(|q| q.query_param("scope"))
        .collect();
    for s in [
        "repository:team/app:pull",
        "repository:team/app:pull,push",
        "repository:team/app:pull,push,delete",
        "repository:team/app:pull,delete",
    ] {
        assert!(scopes.contains(s), "{s} not asked: {scopes:?}");
    }
    // Neither the password nor any token issued reaches the timeline.
    let all = tl.to_string();
    assert!(!all.contains(PW_PULL), "password in the timeline");
    let tokens: Vec<String> = front
        .issued
        .lock()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    assert!(!tokens.is_empty());
    for t in &tokens {
        assert!(!all.contains(t.as_str()), "a token in the timeline");
    }

    // A responder with every right: nothing fails.
    let mut r = recall(
        &host,
        &format!(
            "\n[oci.auth.\"{host}\"]\nusername = \"responder\"\npassword_env = \"RECALL_TEST_OCI_PW\"\n"
        ),
    );
    r.env.push(("RECALL_TEST_OCI_PW".into(), PW_ALL.into()));
    let run = rehearse(&r, &image, &img.digest, "v1");
    let pf = preflight(&r.timeline(&run.id()));
    assert!(failing(&pf).is_empty(), "{pf:#?}");
    for step in ["quarantine", "untag", "delete"] {
        assert_eq!(check(&pf, step, "oci.credential")["verdict"], "pass");
    }

    // A wrong password: refused by the token endpoint, blocking, the fix names the source.
    let mut r = recall(
        &host,
        &format!(
            "\n[oci.auth.\"{host}\"]\nusername = \"responder\"\npassword_env = \"RECALL_TEST_OCI_PW\"\n"
        ),
    );
    r.env.push(("RECALL_TEST_OCI_PW".into(), "wrong".into()));
    let run = rehearse_any(&r, &image, &img.digest, "v1");
    let tl = r.timeline(&run.id());
    assert!(
        gate_unavailable(&tl).contains("401"),
        "{}",
        gate_unavailable(&tl)
    );
    let pf = preflight(&tl);
    let c = check(&pf, "quarantine", "oci.credential");
    assert_eq!(
        (&c["verdict"], &c["impact"]),
        (&json!("fail"), &json!("blocks")),
        "{c}"
    );
    assert!(text(c, "evidence").contains("refused"), "{c}");

    // No credential at all for a write on a registry that demands auth.
    let r = recall(&host, "");
    let run = rehearse_any(&r, &image, &img.digest, "v1");
    let pf = preflight(&r.timeline(&run.id()));
    let c = check(&pf, "untag", "oci.credential");
    assert_eq!(c["verdict"], "fail", "{c}");
    assert!(text(c, "fix").contains("password_env"), "{c}");

    assert_eq!(front.server.mutating_calls(), 0, "the front saw a write");
    let sent = reg.mutating_requests_since(mark);
    assert!(sent.is_empty(), "a rehearsal sent {sent:?}");
}
