//! `recall serve` end to end: the real binary, signed Slack requests, and the contract
//! fake of the Slack Web API (fakes/slack.rs). Slash command → thread with a live message
//! → approval button (refused for the wrong person, granted for the right one) → the
//! message updated in place → completion; every bad request answered and nothing changed;
//! Slack down without holding up the incident; kill -9 and restart continuing the thread.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fakes::slack::{
    Availability, FakeSlack, block_actions_payload, interaction_body, post_signed,
    post_with_signature, sign, slash_command_body,
};
use crate::support::{Recall, write_file};

pub const SECRET: &str = "test-signing-secret-0123456789";
pub const BOT: &str = "xoxb-test-bot-token";
pub const API_TOKEN: &str = "api-token-0123456789abcdef";
pub const LEAD_TOKEN: &str = "lead-token-0123456789abcdef";
pub const CHANNEL: &str = "C0INCIDENTS";
const FORM: &str = "application/x-www-form-urlencoded";

pub const PLAYBOOK: &str = r#"name: slack-e2e
description: an approval round trip
params:
  message: {type: string, required: true}
steps:
  - id: note
    uses: incident.note
    with:
      message: ${{ params.message }}
  - id: gated
    uses: incident.note
    needs: [note]
    approval: { count: 1, from: [group:release-admins] }
    with:
      message: approved step ran
"#;

/// A running `recall serve`; killed (SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(r: &Recall) -> Server {
        let mut child = r
            .cmd(&["serve", "--listen", "127.0.0.1:0"])
            .env("RECALL_TEST_SLACK_SECRET", SECRET)
            .env("RECALL_TEST_SLACK_BOT", BOT)
            .env(
                "RECALL_TEST_API_TOKENS",
                format!("ops={API_TOKEN},lead={LEAD_TOKEN}"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn recall serve");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).expect("read");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Server {
            child,
            url: format!("http://{addr}"),
        }
    }

    pub fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Recall configured for Slack against `slack`, with the e2e playbook on disk.
pub fn recall_for(slack: &FakeSlack, extra: &str) -> Recall {
    let r = Recall::new(&format!(
        r#"[server]
request_timeout = "5s"
max_body_kib = 64
[slack]
signing_secret_env = "RECALL_TEST_SLACK_SECRET"
bot_token_env = "RECALL_TEST_SLACK_BOT"
api_url = "{}"
poll = "100ms"
[api]
tokens_env = "RECALL_TEST_API_TOKENS"
[auth]
live_starters = ["user:UONCALL", "user:ops"]
[groups]
release-admins = ["UALICE", "lead"]
{extra}
"#,
        slack.api_url()
    ));
    std::fs::create_dir_all(r.dir.path().join("playbooks")).unwrap();
    write_file(
        &r.dir.path().join("playbooks"),
        "slack-e2e.yaml",
        PLAYBOOK.as_bytes(),
    );
    r
}

pub async fn command(s: &Server, slack: &FakeSlack, user: &str, text: &str) -> (u16, Value) {
    let body = slash_command_body(
        "/recall",
        text,
        user,
        &user.to_ascii_lowercase(),
        CHANNEL,
        &slack.new_response_url(),
        &slack.issue_trigger_id(),
    );
    let (status, _, b) =
        post_signed(&format!("{}/slack/commands", s.url), SECRET, &body, FORM).await;
    (status, serde_json::from_str(&b).unwrap_or(json!(b)))
}

/// Posts a signed interaction payload.
async fn interact(s: &Server, payload: &Value) -> (u16, reqwest::header::HeaderMap, String) {
    post_signed(
        &format!("{}/slack/interactions", s.url),
        SECRET,
        &interaction_body(payload),
        FORM,
    )
    .await
}

async fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > end {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn api(s: &Server, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", s.url))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json")
}

async fn incidents(s: &Server) -> Vec<Value> {
    api(s, "/api/incidents")
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The approval message's button value, once posted in the thread.
async fn approval_button(slack: &FakeSlack) -> (String, String) {
    wait_for("the approval message", 20, || {
        slack.messages(CHANNEL).into_iter().find_map(|m| {
            let blocks = m.blocks?;
            let actions = blocks
                .as_array()?
                .iter()
                .find(|b| b["type"] == "actions")?
                .clone();
            let v = actions["elements"][0]["value"].as_str()?.to_string();
            Some((m.ts.clone(), v))
        })
    })
    .await
}

async fn press(
    s: &Server,
    slack: &FakeSlack,
    user: &str,
    msg_ts: &str,
    action: &str,
    value: &str,
) -> String {
    let url = slack.new_response_url();
    let p = block_actions_payload(
        user,
        &user.to_ascii_lowercase(),
        CHANNEL,
        msg_ts,
        action,
        value,
        &url,
        &slack.issue_trigger_id(),
    );
    let (status, _, _) = interact(s, &p).await;
    assert_eq!(status, 200);
    let got = wait_for("the ephemeral answer", 15, || {
        slack.responses(&url).first().cloned()
    })
    .await;
    got["text"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_command_thread_approval_button_completion() {
    let slack = FakeSlack::start(BOT).await;
    let r = recall_for(&slack, "");
    let s = Server::start(&r);

    let (status, ack) = command(&s, &slack, "UONCALL", "start slack-e2e message=hello").await;
    assert_eq!(status, 200, "{ack}");
    assert!(
        ack["text"]
            .as_str()
            .unwrap()
            .contains("Starting `slack-e2e`"),
        "{ack}"
    );

    // The live message, then the approval request in its thread.
    let (msg_ts, value) = approval_button(&slack).await;
    let parent = wait_for("the live message", 10, || {
        slack
            .messages(CHANNEL)
            .into_iter()
            .find(|m| m.thread_ts.is_none())
    })
    .await;
    assert!(parent.text.contains("slack-e2e"), "{parent:?}");
    let incident = incidents(&s).await[0]["id"].as_str().unwrap().to_string();
    assert!(parent.text.contains(&incident));

    // Someone outside release-admins: refused, nothing changes.
    let mallory = press(&s, &slack, "UMALLORY", &msg_ts, "approve", &value).await;
    assert!(mallory.contains("Not recorded"), "{mallory}");
    let show = api(&s, &format!("/api/incidents/{incident}")).await;
    let gated = show["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["step_id"] == "gated")
        .unwrap()
        .clone();
    assert_eq!(gated["status"], "awaiting_approval", "{show}");

    // An approver: granted, the step runs, the incident completes.
    let alice = press(&s, &slack, "UALICE", &msg_ts, "approve", &value).await;
    assert!(
        alice.contains("granted") || alice.contains(":white_check_mark:"),
        "{alice}"
    );
    wait_for("completion", 20, || {
        let m = slack
            .messages(CHANNEL)
            .into_iter()
            .find(|m| m.thread_ts.is_none())?;
        m.text.contains("succeeded").then_some(())
    })
    .await;
    let parent = slack
        .messages(CHANNEL)
        .into_iter()
        .find(|m| m.thread_ts.is_none())
        .unwrap();
    assert!(parent.edits >= 1, "updated in place: {parent:?}");
    assert_eq!(
        slack
            .messages(CHANNEL)
            .iter()
            .filter(|m| m.thread_ts.is_none())
            .count(),
        1,
        "one thread"
    );
    wait_for("the finish message", 10, || {
        slack
            .thread(CHANNEL, &parent.ts)
            .iter()
            .any(|m| m.text.contains("incident.finished") || m.text.contains("succeeded."))
            .then_some(())
    })
    .await;

    // A note from Slack lands on the timeline, attributed to the Slack user.
    let (st, a) = command(
        &s,
        &slack,
        "UCAROL",
        &format!("note {incident} paged the maintainer, twice"),
    )
    .await;
    assert_eq!(st, 200);
    assert!(a["text"].as_str().unwrap().contains("Noted"), "{a}");
    let tl = api(
        &s,
        &format!("/api/incidents/{incident}/timeline?format=json&kind=note"),
    )
    .await;
    let notes = tl["events"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{tl}");
    assert_eq!(notes[0]["actor"], "UCAROL");
    assert_eq!(notes[0]["summary"], "paged the maintainer, twice");

    // A press after the end: explained, nothing changed.
    let late = press(&s, &slack, "UALICE", &msg_ts, "approve", &value).await;
    assert!(late.contains("already succeeded"), "{late}");
    // Every Web API call carried the bot token.
    assert_eq!(slack.auth_failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_change_nothing() {
    let slack = FakeSlack::start(BOT).await;
    let r = recall_for(&slack, "");
    let s = Server::start(&r);
    let url = format!("{}/slack/commands", s.url);
    let body = slash_command_body(
        "/recall",
        "start slack-e2e message=x",
        "UONCALL",
        "oncall",
        CHANNEL,
        &slack.new_response_url(),
        &slack.issue_trigger_id(),
    );
    let now = crate::fakes::slack::now_timestamp();

    // Forged signature.
    let (st, _, _) = post_with_signature(
        &url,
        Some(&now.to_string()),
        Some(&sign("wrong-secret", now, &body)),
        &body,
        FORM,
    )
    .await;
    assert_eq!(st, 401);
    // No signature at all.
    let (st, _, _) = post_with_signature(&url, Some(&now.to_string()), None, &body, FORM).await;
    assert_eq!(st, 401);
    // Stale timestamp, correctly signed.
    let old = now - 600;
    let (st, _, _) = post_with_signature(
        &url,
        Some(&old.to_string()),
        Some(&sign(SECRET, old, &body)),
        &body,
        FORM,
    )
    .await;
    assert_eq!(st, 401);
    // Replay: the same signed request twice — the second is refused. (Help changes nothing.)
    let help = slash_command_body(
        "/recall",
        "help",
        "UONCALL",
        "oncall",
        CHANNEL,
        &slack.new_response_url(),
        &slack.issue_trigger_id(),
    );
    let sig = sign(SECRET, now, &help);
    let (st, _, _) =
        post_with_signature(&url, Some(&now.to_string()), Some(&sig), &help, FORM).await;
    assert_eq!(st, 200);
    let (st, _, _) =
        post_with_signature(&url, Some(&now.to_string()), Some(&sig), &help, FORM).await;
    assert_eq!(st, 401, "replay");
    // Oversized body (signed, so only the size is wrong).
    let big = format!("{body}&pad={}", "x".repeat(100 * 1024));
    let (st, _, _) = post_signed(&url, SECRET, &big, FORM).await;
    assert_eq!(st, 413);
    // Malformed interaction payloads.
    let iurl = format!("{}/slack/interactions", s.url);
    let (st, _, _) = post_signed(&iurl, SECRET, "payload=%7Bnot-json", FORM).await;
    assert_eq!(st, 400);
    let (st, _, _) = post_signed(&iurl, SECRET, "nothing=here", FORM).await;
    assert_eq!(st, 400);
    // Unknown playbook, bad params, a live start by someone not allowed: explained.
    let (st, a) = command(&s, &slack, "UONCALL", "start no-such-playbook x=1").await;
    assert_eq!(st, 200);
    assert!(
        a["text"].as_str().unwrap().contains("no-such-playbook"),
        "{a}"
    );
    let (_, a) = command(&s, &slack, "UONCALL", "start slack-e2e nonsense=1").await;
    assert!(
        a["text"].as_str().unwrap().contains("nonsense")
            || a["text"].as_str().unwrap().contains("message"),
        "{a}"
    );
    let (_, a) = command(&s, &slack, "UMALLORY", "start slack-e2e message=x").await;
    assert!(
        a["text"]
            .as_str()
            .unwrap()
            .contains("may not start a live incident"),
        "{a}"
    );
    let (_, a) = command(&s, &slack, "UONCALL", "start ../../etc/passwd").await;
    assert!(
        a["text"].as_str().unwrap().contains("not a playbook name"),
        "{a}"
    );
    // A button for an incident that does not exist.
    let answer = press(
        &s,
        &slack,
        "UALICE",
        "1.0",
        "approve",
        r#"{"i":"inc-nope","s":"x","t":null}"#,
    )
    .await;
    assert!(answer.contains("No incident"), "{answer}");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(incidents(&s).await.is_empty(), "an incident was created");
    assert_eq!(
        slack.call_count("chat.postMessage"),
        0,
        "something was posted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_down_does_not_hold_up_the_incident_and_messages_catch_up() {
    let slack = FakeSlack::start(BOT).await;
    let r = recall_for(&slack, "");
    // API-started incidents post to the configured channel.
    let cfg = std::fs::read_to_string(&r.config).unwrap().replace(
        "poll = \"100ms\"",
        &format!("poll = \"100ms\"\nchannel = \"{CHANNEL}\""),
    );
    std::fs::write(&r.config, cfg).unwrap();
    let s = Server::start(&r);
    slack.set_down(Availability::Refuse);
    let started: Value = reqwest::Client::new()
        .post(format!("{}/api/incidents", s.url))
        .bearer_auth(API_TOKEN)
        .json(&json!({ "playbook": "slack-e2e", "params": { "message": "during the outage" }, "dry_run": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().expect("id").to_string();
    // A rehearsal still waits for its approval: given through the API while Slack is down.
    let client = reqwest::Client::new();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let show = api(&s, &format!("/api/incidents/{id}")).await;
        if show["incident"]["status"] == "waiting" {
            break;
        }
        assert!(Instant::now() < end, "never waited: {show}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r2 = client
        .post(format!("{}/api/incidents/{id}/approvals", s.url))
        .bearer_auth(LEAD_TOKEN)
        .json(&json!({ "step": "gated", "reason": "ok during outage" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r2.status().as_u16(), 202);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let show = api(&s, &format!("/api/incidents/{id}")).await;
        if show["incident"]["status"] == "succeeded" {
            break;
        }
        assert!(
            Instant::now() < end,
            "the incident did not complete while Slack was down: {show}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(slack.messages(CHANNEL).is_empty());
    // Slack returns: the thread catches up, marked REHEARSAL.
    slack.set_down(Availability::Up);
    let parent = wait_for("the catch-up", 30, || {
        slack
            .messages(CHANNEL)
            .into_iter()
            .find(|m| m.thread_ts.is_none() && m.text.contains("succeeded"))
    })
    .await;
    assert!(parent.text.contains("REHEARSAL"), "{parent:?}");
    for m in slack.messages(CHANNEL) {
        assert!(
            m.text.contains("REHEARSAL"),
            "every message is marked: {m:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_continue_the_same_thread() {
    let slack = FakeSlack::start(BOT).await;
    let r = recall_for(&slack, "");
    let s = Server::start(&r);
    let (st, _) = command(
        &s,
        &slack,
        "UONCALL",
        "start slack-e2e message=before-the-crash",
    )
    .await;
    assert_eq!(st, 200);
    let (msg_ts, value) = approval_button(&slack).await;
    s.sigkill();
    let before = slack.messages(CHANNEL);
    let s = Server::start(&r);
    let alice = press(&s, &slack, "UALICE", &msg_ts, "approve", &value).await;
    assert!(!alice.contains("Not recorded"), "{alice}");
    wait_for("completion after restart", 30, || {
        slack
            .messages(CHANNEL)
            .into_iter()
            .find(|m| m.thread_ts.is_none() && m.text.contains("succeeded"))
    })
    .await;
    let after = slack.messages(CHANNEL);
    assert_eq!(
        after.iter().filter(|m| m.thread_ts.is_none()).count(),
        1,
        "same thread: {after:?}"
    );
    let approvals = after
        .iter()
        .filter(|m| m.text.contains("Approval needed"))
        .count();
    assert_eq!(
        approvals, 1,
        "no duplicate for what was posted before the kill"
    );
    assert!(after.len() > before.len());
}

/// Reject opens a reason form; the submitted reason rejects the step. Slack's 429 on the
/// way is waited out (Retry-After), not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_asks_for_a_reason_and_rate_limits_are_waited_out() {
    let slack = FakeSlack::start(BOT).await;
    slack.rate_limit_next("chat.postMessage", 1, 1);
    let r = recall_for(&slack, "");
    let s = Server::start(&r);
    let (st, _) = command(&s, &slack, "UONCALL", "start slack-e2e message=reject-me").await;
    assert_eq!(st, 200);
    let (msg_ts, value) = approval_button(&slack).await;
    // Reject: no ephemeral answer, a modal opens with the button bound in it.
    let url = slack.new_response_url();
    let p = block_actions_payload(
        "UALICE",
        "ualice",
        CHANNEL,
        &msg_ts,
        "reject",
        &value,
        &url,
        &slack.issue_trigger_id(),
    );
    let (status, _, _) = interact(&s, &p).await;
    assert_eq!(status, 200);
    let view = wait_for("the reason form", 10, || slack.views().first().cloned()).await;
    let meta = view["view"]["private_metadata"]
        .as_str()
        .or(view["private_metadata"].as_str())
        .expect("private_metadata")
        .to_string();
    let reason = |text: &str| {
        crate::fakes::slack::view_submission_payload(
            "UALICE",
            "reject",
            &meta,
            json!({"reason": {"value": {"type": "plain_text_input", "value": text}}}),
        )
    };
    // An empty reason is refused in the form itself.
    let (status, _, b) = interact(&s, &reason(" ")).await;
    assert_eq!(status, 200);
    assert!(b.contains("\"response_action\":\"errors\""), "{b}");
    let (status, _, _) = interact(&s, &reason("wrong target")).await;
    assert_eq!(status, 200);
    let id = incidents(&s).await[0]["id"].as_str().unwrap().to_string();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let show = api(&s, &format!("/api/incidents/{id}")).await;
        // A rejected approval ends the step as `rejected`; what follows is the engine's
        // usual semantics (nothing here depends on it).
        if matches!(
            show["incident"]["status"].as_str(),
            Some("failed" | "succeeded")
        ) {
            let gated = show["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["step_id"] == "gated")
                .unwrap()
                .clone();
            assert_eq!(gated["status"], "rejected", "{show}");
            break;
        }
        assert!(Instant::now() < end, "not rejected: {show}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tl = api(&s, &format!("/api/incidents/{id}/timeline?format=json")).await;
    assert!(serde_json::to_string(&tl).unwrap().contains("wrong target"));
    // The rate-limited first post was retried after its Retry-After, not lost.
    wait_for("the rejection in the thread", 15, || {
        slack
            .messages(CHANNEL)
            .iter()
            .any(|m| m.text.contains("approval.rejected"))
            .then_some(())
    })
    .await;
    assert!(slack.call_count("chat.postMessage") >= 3);
}
