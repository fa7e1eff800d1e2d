//! Scheduled game days (`[[gameday]]` in `recall serve`), end to end: the real binary with
//! the `RECALL_GAMEDAY_NOW_FIRE=1` test hook (every entry fires once at start instead of
//! waiting for its cron time), the Slack Web API fake, and a recording fake in front of the
//! npm registry and GitHub that answers 404 to everything, so the rehearsal reads and finds
//! problems but could not have changed anything. Also: the Slack channel check of the
//! game-day report against the fake (`conversations.info` / `conversations.list`), and a
//! bad `[[gameday]]` refusing to serve.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fakes::slack::FakeSlack;
use crate::fakes::{FakeServer, Request, Response};
use crate::serve::{API_TOKEN, BOT, SECRET, Server, recall_for};
use crate::support::{Recall, write_file};

const GAMEDAY_CHANNEL: &str = "C0GAMEDAYS";
const OUTSIDE_CHANNEL: &str = "C0OUTSIDE1";

/// Stands for the note playbook's path, known once the Recall dir exists.
const PLACEHOLDER: &str = "@@NOTE_PLAYBOOK@@";

const NOTE_PLAYBOOK: &str = r#"name: gd-note
description: a one-step game day
steps:
  - id: note
    uses: incident.note
    with:
      message: scheduled game day
"#;

/// `recall serve` with the test hook, its log kept in `serve.log` for failure messages.
fn start_serve(r: &Recall) -> Server {
    let log = std::fs::File::create(r.dir.path().join("serve.log")).expect("log file");
    let mut child = r
        .cmd(&["serve", "--listen", "127.0.0.1:0"])
        .env("RECALL_TEST_SLACK_SECRET", SECRET)
        .env("RECALL_TEST_SLACK_BOT", BOT)
        .env("RECALL_TEST_API_TOKENS", format!("ops={API_TOKEN}"))
        .env("RECALL_GAMEDAY_NOW_FIRE", "1")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn recall serve");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).expect("read");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}: {}", serve_log(r)))
        .to_string();
    Server {
        child,
        url: format!("http://{addr}"),
    }
}

fn serve_log(r: &Recall) -> String {
    std::fs::read_to_string(r.dir.path().join("serve.log")).unwrap_or_default()
}

async fn wait_for<T>(what: &str, secs: u64, r: &Recall, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out waiting for {what}; serve log:\n{}", serve_log(r));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Answers every request 404 (JSON) and records it.
async fn recording_404() -> FakeServer {
    FakeServer::start(|_req: &Request| Response::json(404, &json!({"error": "Not found"}))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_game_days_fire_rehearse_store_the_report_and_post_the_summary() {
    let slack = FakeSlack::start(BOT).await;
    slack.add_channel(GAMEDAY_CHANNEL, "game-days");
    slack.add_channel_without_bot(OUTSIDE_CHANNEL, "outside");
    let upstream = recording_404().await;
    let r = recall_for(
        &slack,
        &format!(
            r#"[npm]
registry = "{up}"
token_env = "RECALL_TEST_NO_NPM_TOKEN"
timeout = "5s"
[github]
api_url = "{up}"
token_env = "RECALL_TEST_NO_GITHUB_TOKEN"
timeout = "5s"

[[gameday]]
name = "nightly"
target = "ua-parser-js-2021"
cron = "0 3 * * *"

[[gameday]]
name = "notes"
target = "{note}"
cron = "30 4 * * mon-fri"
channel = "{OUTSIDE_CHANNEL}"

[[gameday]]
name = "off"
target = "no-such-scenario"
cron = "* * * * *"
enabled = false
"#,
            up = upstream.url(),
            note = PLACEHOLDER,
        ),
    );
    let note = write_file(r.dir.path(), "gd-note.yaml", NOTE_PLAYBOOK.as_bytes());
    // The default channel for entries without one.
    let cfg = std::fs::read_to_string(&r.config)
        .unwrap()
        .replace(
            "poll = \"100ms\"",
            &format!("poll = \"100ms\"\nchannel = \"{GAMEDAY_CHANNEL}\""),
        )
        .replace(PLACEHOLDER, &note);
    std::fs::write(&r.config, cfg).unwrap();

    let s = start_serve(&r);

    // The scenario's summary, in the default channel.
    let msg = wait_for("the game day summary", 120, &r, || {
        slack
            .calls("chat.postMessage")
            .into_iter()
            .find(|c| c["channel"] == GAMEDAY_CHANNEL)
    })
    .await;
    // The other entry's post fails (the bot is not in its channel); the server carries on.
    wait_for("the second game day's attempt", 60, &r, || {
        slack
            .calls("chat.postMessage")
            .into_iter()
            .find(|c| c["channel"] == OUTSIDE_CHANNEL)
    })
    .await;

    let list = r.run(&["incident", "list", "--json"]);
    assert_eq!(list.code, Some(0), "{list:?}");
    let incidents = list.json().as_array().cloned().unwrap_or_default();
    assert_eq!(
        incidents.len(),
        2,
        "one rehearsal per enabled entry: {incidents:?}"
    );
    let nightly = incidents
        .iter()
        .find(|i| i["started_by"] == "game-day:nightly")
        .unwrap_or_else(|| panic!("no game-day:nightly incident: {incidents:?}"));
    let notes = incidents
        .iter()
        .find(|i| i["started_by"] == "game-day:notes")
        .unwrap_or_else(|| panic!("no game-day:notes incident: {incidents:?}"));
    for i in [nightly, notes] {
        assert_eq!(i["mode"], "rehearsal", "{i}");
        assert_eq!(i["auto_approve"], true, "{i}");
    }
    assert_eq!(nightly["playbook_name"], "npm-compromised-release");
    let id = nightly["id"].as_str().unwrap().to_string();

    // A rehearsal: it read the registry (and found the package missing), sent nothing.
    let seen = upstream.requests();
    assert!(
        !seen.is_empty(),
        "the rehearsal read nothing upstream: {}",
        serve_log(&r)
    );
    let mutating: Vec<String> = seen
        .iter()
        .filter(|q| q.is_mutating())
        .map(|q| format!("{} {}", q.method, q.target))
        .collect();
    assert!(mutating.is_empty(), "a rehearsal sent {mutating:?}");

    // The report, as `recall gameday report` rebuilds it, and as stored with the incident.
    let rep = r.run(&["gameday", "report", &id, "--json"]);
    assert!(matches!(rep.code, Some(0 | 4)), "{rep:?}");
    let report = rep.json();
    let verdict = report["verdict"].as_str().expect("verdict").to_string();
    assert!(
        verdict == "blocked" || verdict == "would_contain",
        "{verdict}"
    );
    let store = recall::store::open(&r.db).await.unwrap();
    let stored: Value = serde_json::from_str(
        &store
            .artifact(&id, "gameday.json")
            .await
            .unwrap()
            .expect("gameday.json stored with the incident"),
    )
    .unwrap();
    assert_eq!(stored["incident"]["id"], id.as_str());
    assert_eq!(stored["verdict"], verdict.as_str());
    assert_eq!(stored["incident"]["scenario"], "ua-parser-js-2021");
    let md = store
        .artifact(&id, "gameday.md")
        .await
        .unwrap()
        .expect("gameday.md stored with the incident");
    assert!(
        md.starts_with("# Game day: scenario `ua-parser-js-2021`"),
        "{md}"
    );
    // The channel check of the report went through conversations.info: the bot is in.
    let slack_check = stored["incident_checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["check"] == "slack.channel"))
        .cloned()
        .unwrap_or_else(|| panic!("no slack.channel check: {stored}"));
    assert_eq!(slack_check["verdict"], "pass", "{slack_check}");
    assert!(slack.call_count("conversations.info") >= 1);

    // The Slack summary: one message in the configured channel, with the verdict.
    let text = msg["text"].as_str().unwrap_or_default();
    assert!(text.contains("Game day"), "{text}");
    assert!(text.contains(&id), "{text}");
    let said = if verdict == "blocked" {
        "containment would have been BLOCKED"
    } else {
        "nothing would block containment"
    };
    assert!(text.contains(said), "verdict {verdict} not in {text}");
    assert_eq!(msg["metadata"]["event_type"], "recall_gameday", "{msg}");
    assert_eq!(
        msg["metadata"]["event_payload"]["verdict"],
        verdict.as_str()
    );
    let in_channel = slack
        .messages(GAMEDAY_CHANNEL)
        .into_iter()
        .filter(|m| m.text.contains("Game day"))
        .count();
    assert_eq!(in_channel, 1);
    assert!(slack.messages(OUTSIDE_CHANNEL).is_empty());

    // Both runs counted, by verdict; the server is still up after the failed post.
    let metrics = reqwest::get(format!("{}/metrics", s.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |v: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("recall_gameday_runs_total{{verdict=\"{v}\"}} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {v} counter in:\n{metrics}"))
    };
    assert_eq!(count("would_contain") + count("blocked"), 2, "{metrics}");
    assert_eq!(count("error"), 0, "{metrics}");
    let log = serve_log(&r);
    assert!(log.contains("game day finished"), "{log}");
    assert!(log.contains("the Slack summary was not posted"), "{log}");

    // The stop signal stops the scheduler with the rest: a prompt, clean exit.
    let mut s = s;
    unsafe {
        libc::kill(s.child.id() as i32, libc::SIGTERM);
    }
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(0), "{}", serve_log(&r));
    // Nothing more was posted or started on the way out.
    assert_eq!(slack.call_count("chat.postMessage"), 2);
    let list = r.run(&["incident", "list", "--json"]);
    assert_eq!(list.json().as_array().map(Vec::len), Some(2));
}

/// The report's Slack channel check against the fake: by ID through `conversations.info`,
/// by name through `conversations.list` (past the first page).
#[tokio::test]
async fn the_slack_channel_check_reads_the_channel_from_slack() {
    let slack = FakeSlack::start(BOT).await;
    slack.add_channel(GAMEDAY_CHANNEL, "game-days");
    slack.add_channel_without_bot(OUTSIDE_CHANNEL, "outside");
    slack.add_channel("C0ARCHIVED", "old-game-days");
    slack.archive_channel("C0ARCHIVED");
    // Enough channels that a name lookup needs a second page (the check asks for 200).
    for i in 0..230 {
        slack.add_channel(&format!("C0FILL{i:04}"), &format!("fill-{i}"));
    }
    slack.add_channel("C0LATE0001", "late-room");
    let dir = tempfile::tempdir().unwrap();
    let token = write_file(dir.path(), "bot-token", BOT.as_bytes());

    let check = |channel: &'static str| {
        let cfg = recall::config::Config::parse(
            "c.toml",
            &format!(
                "[slack]\nbot_token_env = \"RECALL_TEST_UNSET_BOT\"\nbot_token_file = \"{token}\"\napi_url = \"{}\"\nchannel = \"{channel}\"\n",
                slack.api_url()
            ),
        )
        .unwrap();
        async move {
            let checks = recall::gameday::incident_checks(&cfg).await;
            assert_eq!(checks.len(), 1, "{checks:?}");
            let c = checks[0].to_json();
            assert_eq!(c["check"], "slack.channel", "{c}");
            c
        }
    };

    let member = check(GAMEDAY_CHANNEL).await;
    assert_eq!(member["verdict"], "pass", "{member}");
    assert!(
        member["subject"]
            .as_str()
            .unwrap()
            .contains(GAMEDAY_CHANNEL)
    );

    let outside = check(OUTSIDE_CHANNEL).await;
    assert_eq!(outside["verdict"], "fail", "{outside}");
    assert_eq!(outside["impact"], "degrades", "{outside}");
    assert!(
        outside["evidence"]
            .as_str()
            .unwrap()
            .contains("not a member"),
        "{outside}"
    );

    let unknown = check("C0NOSUCH01").await;
    assert_eq!(unknown["verdict"], "fail", "{unknown}");
    assert_eq!(unknown["impact"], "degrades", "{unknown}");
    assert!(
        unknown["evidence"]
            .as_str()
            .unwrap()
            .contains("no such channel"),
        "{unknown}"
    );

    let archived = check("C0ARCHIVED").await;
    assert_eq!(archived["verdict"], "fail", "{archived}");
    assert!(
        archived["evidence"].as_str().unwrap().contains("archived"),
        "{archived}"
    );

    // By name: found on the second page of conversations.list.
    let before = slack.call_count("conversations.list");
    let by_name = check("#late-room").await;
    assert_eq!(by_name["verdict"], "pass", "{by_name}");
    let pages = slack.calls("conversations.list");
    assert_eq!(pages.len() - before, 2, "{pages:?}");
    assert!(pages.last().unwrap()["cursor"].is_string(), "{pages:?}");
    let by_name = check("no-such-room").await;
    assert_eq!(by_name["verdict"], "fail", "{by_name}");
    assert_eq!(slack.auth_failures(), 0);
}

/// Runs `recall serve` expecting it to refuse to start; kills it after `secs` otherwise.
fn serve_refuses(r: &Recall, secs: u64) -> (Option<i32>, String) {
    let mut child = r
        .cmd(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn recall serve");
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (st.code(), err);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("recall serve started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_bad_gameday_entry_refuses_to_serve_naming_the_entry() {
    let r = Recall::new(
        "[[gameday]]\nname = \"nightly\"\ntarget = \"ua-parser-js-2021\"\ncron = \"61 * * * *\"\n",
    );
    let (code, err) = serve_refuses(&r, 30);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(r#"[[gameday]] "nightly": cron "61 * * * *": minute 61 out of 0-59"#),
        "{err}"
    );

    let r = Recall::new(
        "[[gameday]]\nname = \"a\"\ntarget = \"ua-parser-js-2021\"\ncron = \"0 3 * * *\"\n\n[[gameday]]\nname = \"a\"\ntarget = \"coa-rc-2021\"\ncron = \"0 4 * * *\"\n",
    );
    let (code, err) = serve_refuses(&r, 30);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(r#"[[gameday]] "a": name "a""#), "{err}");

    // A target that does not resolve: refused at serve start, naming the entry.
    let r = Recall::new(
        "[[gameday]]\nname = \"ghost\"\ntarget = \"no-such-scenario\"\ncron = \"0 3 * * *\"\n",
    );
    let (code, err) = serve_refuses(&r, 30);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(r#"[[gameday]] "ghost": target "no-such-scenario""#),
        "{err}"
    );

    // Params that do not bind to the playbook: refused too.
    let r = Recall::new(
        "[[gameday]]\nname = \"typo\"\ntarget = \"ua-parser-js-2021\"\ncron = \"0 3 * * *\"\nparams = { pakage = \"x\" }\n",
    );
    let (code, err) = serve_refuses(&r, 30);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(r#"[[gameday]] "typo""#) && err.contains("pakage"),
        "{err}"
    );
}
