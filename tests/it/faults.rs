//! Registry faults, injected by a proxy in front of the *real* registries (Verdaccio for npm,
//! distribution 2.8.2 for OCI): 429 with `Retry-After`, 5xx, timeouts and connection resets
//! are retried exactly as the step's retry policy says (a mutating request whose answer was
//! lost is probed before it is sent again), malformed JSON fails at once, and a 401/403
//! fails on the first attempt with a message naming the credential's source, never its
//! value. The registry's own log proves each effect reached it exactly once.
//! (crates.io and PyPI faults are covered against their contract fakes in `crates_flow` and
//! `pypi_flow`.)

use crate::fakes::{Fault, proxy};
use crate::support::kinds;
use crate::support::registry::Registry;
use crate::support::verdaccio::Verdaccio;
use crate::support::{Recall, Run, write_file};

const NPM_PLAYBOOK: &str = r#"name: npm-faults
params:
  package: { type: string }
steps:
  - id: deprecate
    uses: npm.deprecate
    with:
      package: ${{ params.package }}
      version: "1.0.1"
      message: compromised
    retry: { attempts: 3, backoff: fixed, initial: 100ms }
"#;

fn status(code: u16, retry_after: Option<&str>) -> Fault {
    Fault::Status {
        code,
        retry_after: retry_after.map(str::to_string),
        body: r#"{"error":"injected"}"#.into(),
    }
}

fn count(k: &[String], kind: &str) -> usize {
    k.iter().filter(|x| *x == kind).count()
}

fn start(r: &Recall, pb: &str, params: &[String]) -> Run {
    let mut args = vec!["incident", "start", "--playbook", pb, "--json"];
    for p in params {
        args.extend(["--param", p.as_str()]);
    }
    r.run(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_faults_are_retried_or_failed_as_the_policy_says() {
    let v = Verdaccio::start().await;
    let upstream = v.url.trim_start_matches("http://").to_string();
    let px = proxy::start(&upstream).await;
    for p in ["pa", "pb", "pc", "pd", "pe", "pf", "pg"] {
        v.publish(&v.admin_token, p, "1.0.0").await;
        v.publish(&v.admin_token, p, "1.0.1").await;
    }
    let mut r = Recall::new(&format!(
        "[npm]\nregistry = \"{}\"\ntoken_env = \"RECALL_TEST_NPM_TOKEN\"\ntimeout = \"1s\"\n[engine]\nreconcile_grace = \"100ms\"\n",
        px.url()
    ));
    r.env
        .push(("RECALL_TEST_NPM_TOKEN".into(), v.admin_token.clone()));
    let pb = write_file(r.dir.path(), "faults.yaml", NPM_PLAYBOOK.as_bytes());
    let puts_at_verdaccio = |mark: usize, pkg: &str| {
        v.mutating_requests_since(mark)
            .iter()
            .filter(|(m, u)| m == "PUT" && u.trim_start_matches('/').starts_with(pkg))
            .count()
    };

    // (transient read) 503 on the packument: retried, one PUT.
    let mark = v.mark();
    px.inject("GET /pa", status(503, None));
    let run = start(&r, &pb, &["package=pa".into()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let k = kinds(&r.timeline(&run.id()));
    assert_eq!(
        (count(&k, "attempt.failed"), count(&k, "attempt.succeeded")),
        (1, 1),
        "{k:?}"
    );
    assert_eq!(puts_at_verdaccio(mark, "pa"), 1);

    // 429 with Retry-After: 1 on the PUT: the retry waits at least a second; one PUT lands.
    let mark = v.mark();
    px.inject("PUT /pb", status(429, Some("1")));
    let t0 = std::time::Instant::now();
    let run = start(&r, &pb, &["package=pb".into()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        t0.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After honoured"
    );
    let tl = r.timeline(&run.id());
    let failed = tl["events"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["kind"] == "attempt.failed"))
        .cloned()
        .unwrap_or_default();
    assert!(
        failed["summary"].as_str().unwrap_or("").contains("429"),
        "{failed}"
    );
    assert!(
        !kinds(&tl).contains(&"reconcile.started".to_string()),
        "a 429 was answered: no probe"
    );
    assert_eq!(puts_at_verdaccio(mark, "pb"), 1);

    // 502 and a reset on the PUT: the effect is unknown, so Recall probes before resending.
    for (pkg, fault) in [("pc", status(502, None)), ("pd", Fault::Reset)] {
        let mark = v.mark();
        px.inject(&format!("PUT /{pkg}"), fault);
        let run = start(&r, &pb, &[format!("package={pkg}")]);
        assert_eq!(run.code, Some(0), "{pkg}: {run:?}");
        let k = kinds(&r.timeline(&run.id()));
        assert!(k.contains(&"reconcile.started".to_string()), "{pkg}: {k:?}");
        assert_eq!(
            puts_at_verdaccio(mark, pkg),
            1,
            "{pkg}: exactly one PUT reached the registry"
        );
    }

    // A read slower than the 1 s timeout: transient, retried.
    let mark = v.mark();
    px.inject(
        "GET /pe",
        Fault::Delay(std::time::Duration::from_millis(2500)),
    );
    let run = start(&r, &pb, &["package=pe".into()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let k = kinds(&r.timeline(&run.id()));
    assert_eq!(count(&k, "attempt.failed"), 1, "{k:?}");
    assert_eq!(puts_at_verdaccio(mark, "pe"), 1);

    // Malformed JSON: not retried.
    let mark = v.mark();
    px.inject("GET /pf", Fault::Malformed);
    let run = start(&r, &pb, &["package=pf".into()]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let k = kinds(&r.timeline(&run.id()));
    assert_eq!(count(&k, "attempt.started"), 1, "no retry: {k:?}");
    assert_eq!(puts_at_verdaccio(mark, "pf"), 0);

    // 403: fails on attempt 1, names the credential's source, never its value.
    px.inject("GET /pg", status(403, None));
    let run = start(&r, &pb, &["package=pg".into()]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let tl = r.timeline(&run.id());
    let k = kinds(&tl);
    assert_eq!(count(&k, "attempt.started"), 1, "no retry: {k:?}");
    let text = tl.to_string();
    assert!(text.contains("token_env = RECALL_TEST_NPM_TOKEN"), "{text}");
    assert!(!text.contains(&v.admin_token), "the token value leaked");
}

const OCI_PLAYBOOK: &str = r#"name: oci-faults
params:
  image: { type: string }
  digest: { type: string }
  tag: { type: string }
steps:
  - id: quarantine
    uses: oci.quarantine_tag
    with:
      image: ${{ params.image }}
      digest: ${{ params.digest }}
      tag: ${{ params.tag }}
    retry: { attempts: 3, backoff: fixed, initial: 100ms }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_faults_are_retried_or_failed_as_the_policy_says() {
    let reg = Registry::start().await.unwrap_or_else(|e| panic!("{e}"));
    let px = proxy::start(&reg.host()).await;
    let host = px.url().trim_start_matches("http://").to_string();
    let img = reg.seed_image("acme/api", "2.4.0").await.expect("seed");
    let r = Recall::new(&format!(
        "[oci]\ninsecure = [\"{host}\"]\ntimeout = \"1s\"\n[engine]\nreconcile_grace = \"100ms\"\n"
    ));
    let pb = write_file(r.dir.path(), "faults.yaml", OCI_PLAYBOOK.as_bytes());
    let params = |tag: &str| {
        vec![
            format!("image={host}/acme/api"),
            format!("digest={}", img.digest),
            format!("tag={tag}"),
        ]
    };
    let puts = |mark: usize, tag: &str| {
        reg.mutating_requests_since(mark)
            .iter()
            .filter(|(m, p)| m == "PUT" && p.ends_with(&format!("/manifests/{tag}")))
            .count()
    };

    let mark = reg.mark();
    px.inject("GET /v2/acme/api/manifests/sha256*", status(503, None));
    let run = start(&r, &pb, &params("q-503"));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(puts(mark, "q-503"), 1);

    let mark = reg.mark();
    px.inject("PUT /v2/acme/api/manifests/q-429", status(429, Some("1")));
    let t0 = std::time::Instant::now();
    let run = start(&r, &pb, &params("q-429"));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(t0.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(puts(mark, "q-429"), 1);

    for (tag, fault) in [("q-502", status(502, None)), ("q-reset", Fault::Reset)] {
        let mark = reg.mark();
        px.inject(&format!("PUT /v2/acme/api/manifests/{tag}"), fault);
        let run = start(&r, &pb, &params(tag));
        assert_eq!(run.code, Some(0), "{tag}: {run:?}");
        let k = kinds(&r.timeline(&run.id()));
        assert!(k.contains(&"reconcile.started".to_string()), "{tag}: {k:?}");
        assert_eq!(puts(mark, tag), 1, "{tag}");
    }

    let mark = reg.mark();
    px.inject(
        "GET /v2/acme/api/manifests/sha256*",
        Fault::Delay(std::time::Duration::from_millis(2500)),
    );
    let run = start(&r, &pb, &params("q-slow"));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(puts(mark, "q-slow"), 1);

    // A manifest body that is not what the digest says: permanent, one attempt.
    let mark = reg.mark();
    px.inject("GET /v2/acme/api/manifests/sha256*", Fault::Malformed);
    let run = start(&r, &pb, &params("q-bad"));
    assert_eq!(run.code, Some(1), "{run:?}");
    let k = kinds(&r.timeline(&run.id()));
    assert_eq!(count(&k, "attempt.started"), 1, "{k:?}");
    assert_eq!(puts(mark, "q-bad"), 0);

    px.inject("HEAD /v2/acme/api/manifests/q-401", status(401, None));
    let run = start(&r, &pb, &params("q-401"));
    assert_eq!(run.code, Some(1), "{run:?}");
    let tl = r.timeline(&run.id());
    assert_eq!(count(&kinds(&tl), "attempt.started"), 1);
    assert!(
        tl.to_string().contains("anonymous access (no [oci.auth."),
        "names the credential: {tl}"
    );
}
