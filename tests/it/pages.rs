//! The incident pages in a real headless Chromium (Debian's, through playwright-core:
//! tests/browser/check.js): the index, a finished live incident, one waiting on an
//! approval, and a rehearsal — each rendered on a laptop and a phone viewport with a
//! screenshot, no console errors, no horizontal overflow, and every link answering 200.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fakes::slack::FakeSlack;
use crate::serve::{API_TOKEN, BOT, LEAD_TOKEN, Server, recall_for};
use crate::support::write_file;

async fn start(s: &Server, body: Value) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/api/incidents", s.url))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

async fn status(s: &Server, id: &str) -> String {
    let v: Value = reqwest::Client::new()
        .get(format!("{}/api/incidents/{id}", s.url))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["incident"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn until(s: &Server, id: &str, want: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    while status(s, id).await != want {
        assert!(Instant::now() < end, "{id} never became {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_pages_render_in_chromium() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser = root.join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir()
            && Command::new("chromium").arg("--version").output().is_ok(),
        "the browser is missing: run scripts/browser install (scripts/test does)"
    );
    let slack = FakeSlack::start(BOT).await;
    let r = recall_for(&slack, "");
    write_file(
        &r.dir.path().join("playbooks"),
        "notes-only.yaml",
        b"name: notes-only\ndescription: notes, live\nparams:\n  message: {type: string, required: true}\nsteps:\n  - id: first\n    uses: incident.note\n    with:\n      message: \"first: ${{ params.message }}\"\n  - id: second\n    uses: incident.note\n    needs: [first]\n    with:\n      message: \"<script>alert(1)</script> & second\"\n",
    );
    let s = Server::start(&r);
    let finished = start(
        &s,
        json!({"playbook": "notes-only", "params": {"message": "a \"quoted\" <b>value</b>"}}),
    )
    .await;
    until(&s, &finished, "succeeded").await;
    let waiting = start(
        &s,
        json!({"playbook": "slack-e2e", "params": {"message": "waits"}}),
    )
    .await;
    until(&s, &waiting, "waiting").await;
    let rehearsal = start(
        &s,
        json!({"playbook": "slack-e2e", "params": {"message": "game day"}, "dry_run": true}),
    )
    .await;
    until(&s, &rehearsal, "waiting").await;
    let ok = reqwest::Client::new()
        .post(format!("{}/api/incidents/{rehearsal}/approvals", s.url))
        .bearer_auth(LEAD_TOKEN)
        .json(&json!({"step": "gated", "reason": "rehearsal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 202);
    until(&s, &rehearsal, "succeeded").await;

    // Without credentials: a Basic challenge, nothing rendered.
    let anon = reqwest::get(format!("{}/incidents/{finished}", s.url))
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 401);
    assert!(anon.headers().get("www-authenticate").is_some());

    let out = std::env::temp_dir().join(format!("recall-screenshots-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let paths = [
        "/incidents".to_string(),
        format!("/incidents/{finished}"),
        format!("/incidents/{waiting}"),
        format!("/incidents/{rehearsal}"),
        "/incidents?mode=rehearsal".to_string(),
    ];
    let (url, out_s) = (s.url.clone(), out.display().to_string());
    let mut args = vec![
        "check.js".to_string(),
        url,
        "ops".into(),
        API_TOKEN.into(),
        out_s,
    ];
    args.extend(paths.iter().cloned());
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(&args)
            .current_dir(&browser)
            .output()
    })
    .await
    .unwrap()
    .expect("node");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&run.stdout).expect("results");
    assert_eq!(results.len(), paths.len() * 2);
    for r in &results {
        let what = format!("{} ({})", r["path"], r["viewport"]);
        assert_eq!(r["status"], 200, "{what}");
        assert_eq!(r["errors"], json!([]), "console errors on {what}");
        assert_eq!(r["overflow"], false, "horizontal scroll on {what}");
        let shot = std::fs::metadata(r["screenshot"].as_str().unwrap()).expect("screenshot");
        assert!(shot.len() > 5_000, "{what}: screenshot too small");
        for l in r["links"].as_array().unwrap() {
            assert_eq!(l["status"], 200, "{what}: link {l}");
        }
    }
    let text = |i: usize| results[i * 2]["text"].as_str().unwrap().to_string();
    // The index lists all three; the filter keeps the rehearsal only.
    for id in [&finished, &waiting, &rehearsal] {
        assert!(text(0).contains(id.as_str()), "index lacks {id}");
    }
    assert!(text(4).contains(rehearsal.as_str()) && !text(4).contains(finished.as_str()));
    // A finished live incident: state, mode, figures, phases, downloads, escaped values.
    let f = text(1);
    // innerText applies the CSS (labels are upper-cased): compare case-insensitively.
    let lower = f.to_lowercase();
    for want in [
        "succeeded",
        "live",
        "fully contained",
        "coordination",
        "timeline csv",
        "postmortem draft",
    ] {
        assert!(lower.contains(want), "finished page lacks {want:?}:\n{f}");
    }
    assert!(
        f.contains("<script>alert(1)</script> & second"),
        "escaped, shown as text"
    );
    assert!(f.contains("a \"quoted\" <b>value</b>"));
    // Waiting on an approval; the rehearsal is marked.
    assert!(
        text(2).contains("waiting") && text(2).contains("awaiting_approval"),
        "{}",
        text(2)
    );
    assert!(text(3).contains("REHEARSAL") && text(3).contains("Rehearsal findings"));
    assert!(text(3).contains("lead"), "the approval and who gave it");
    println!("screenshots: {}", out.display());
}
