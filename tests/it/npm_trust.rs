//! `npm.remove_trusted_publisher` against a contract fake of npm's trusted-publishing API
//! (`GET /-/package/<pkg>/trust`, `DELETE …/trust/<id>`, as the npm CLI ≥ 11.10 calls them;
//! Verdaccio has no such API). The fake checks the bearer token like the registry does and
//! counts the deletes it applied: the rehearsal applies none, the live run removes exactly
//! the configuration of the compromised repository, and a reset mid-DELETE is probed, then
//! resent once.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::fakes::{FakeServer, Fault, Request, Response};
use crate::support::{Recall, write_file};

const TOKEN: &str = "npm_FAKEtrustTOKEN0123456789";

const PLAYBOOK: &str = r#"name: trust
params:
  package: { type: string }
  repository: { type: string }
steps:
  - id: untrust
    uses: npm.remove_trusted_publisher
    with:
      package: ${{ params.package }}
      repository: ${{ params.repository }}
    retry: { attempts: 3, backoff: fixed, initial: 100ms }
"#;

#[derive(Default)]
struct Trust {
    configs: Vec<Value>,
    deletes_applied: usize,
}

fn handler(state: Arc<Mutex<Trust>>) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    move |req: &Request| {
        if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return Response::json(401, &json!({ "error": "authentication required" }));
        }
        let path = req.path().to_string();
        let Some(rest) = path.strip_prefix("/-/package/@acme%2fwidget/trust") else {
            return Response::json(404, &json!({ "error": "not found" }));
        };
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        match (req.method.as_str(), rest.trim_start_matches('/')) {
            ("GET", "") => Response::json(200, &Value::Array(st.configs.clone())),
            ("DELETE", id) if !id.is_empty() => {
                let before = st.configs.len();
                st.configs.retain(|c| c["id"] != id);
                if st.configs.len() == before {
                    return Response::json(404, &json!({ "error": "no such trust" }));
                }
                st.deletes_applied += 1;
                Response::empty(204)
            }
            _ => Response::json(405, &json!({ "error": "method not allowed" })),
        }
    }
}

fn config(id: &str, repo: &str) -> Value {
    json!({ "id": id, "type": "github",
            "claims": { "repository": repo, "workflow_ref": { "file": "release.yml" } } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removes_exactly_the_compromised_trusted_publisher() {
    let state = Arc::new(Mutex::new(Trust {
        configs: vec![
            config("4f1c2b9e-1111", "acme/widget"),
            config("9d8e7f6a-2222", "acme/other-pipeline"),
        ],
        deletes_applied: 0,
    }));
    let fake = FakeServer::start(handler(state.clone())).await;
    let mut r = Recall::new(&format!(
        "[npm]\nregistry = \"{}\"\ntoken_env = \"RECALL_TEST_NPM_TOKEN\"\ntimeout = \"2s\"\n[engine]\nreconcile_grace = \"100ms\"\n",
        fake.url()
    ));
    r.env.push(("RECALL_TEST_NPM_TOKEN".into(), TOKEN.into()));
    let pb = write_file(r.dir.path(), "trust.yaml", PLAYBOOK.as_bytes());
    let start = |dry: bool| {
        let mut args = vec![
            "incident",
            "start",
            "--playbook",
            pb.as_str(),
            "--json",
            "--param",
            "package=@acme/widget",
            "--param",
            "repository=ACME/widget",
        ];
        if dry {
            args.extend(["--dry-run", "--auto-approve"]);
        }
        r.run(&args)
    };

    let run = start(true);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(fake.mutating_calls(), 0, "a rehearsal sends no DELETE");
    let tl = r.timeline(&run.id()).to_string();
    assert!(tl.contains("/trust/4f1c2b9e-1111"), "{tl}");
    assert!(!tl.contains(TOKEN));

    // The first DELETE is cut off before the registry applies it: probe, then resend once.
    fake.inject("DELETE /-/package/*", Fault::Reset);
    let run = start(false);
    assert_eq!(run.code, Some(0), "{run:?}");
    let st = state.lock().unwrap_or_else(|p| p.into_inner());
    assert_eq!(st.deletes_applied, 1);
    assert_eq!(
        st.configs,
        vec![config("9d8e7f6a-2222", "acme/other-pipeline")]
    );
    drop(st);
    let tl = r.timeline(&run.id());
    assert!(tl.to_string().contains("reconcile.started"), "{tl}");

    // Again: nothing matches any more, nothing is sent.
    let before = fake.mutating_calls();
    let run = start(false);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(fake.mutating_calls(), before);
}
