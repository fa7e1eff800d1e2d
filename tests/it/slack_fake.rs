//! The Slack Web API contract fake ([`crate::fakes::slack`]) against plain `reqwest`: auth,
//! messages and threads, channel resolution, Block Kit and metadata checks, ephemerals,
//! modals and trigger ids, channel creation and lookup (`conversations.info`/`.list`), rate
//! limits, outages, response URLs; and the
//! request signer against Slack's documented example and RFC 4231.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::fakes::slack::{
    self, Availability, BOT_USER_ID, DEFAULT_CHANNEL_ID, FakeSlack, RESPONSE_URL_MAX_POSTS,
};
use crate::fakes::{FakeServer, Request, Response};

const TOKEN: &str = "xoxb-test-token";
const JSON: &str = "application/json; charset=utf-8";
const FORM: &str = "application/x-www-form-urlencoded";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// POSTs JSON with the bot token; asserts HTTP 200 and returns the body.
async fn call(slack: &FakeSlack, method: &str, body: Value) -> Value {
    let resp = client()
        .post(format!("{}{method}", slack.api_url()))
        .bearer_auth(TOKEN)
        .header("content-type", JSON)
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200, "{method}");
    resp.json().await.expect("json body")
}

/// POSTs a form body with the bot token in the header.
async fn call_form(slack: &FakeSlack, method: &str, pairs: &[(&str, &str)]) -> Value {
    let resp = client()
        .post(format!("{}{method}", slack.api_url()))
        .bearer_auth(TOKEN)
        .header("content-type", FORM)
        .body(slack::form_body(pairs))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200, "{method}");
    resp.json().await.expect("json body")
}

fn ok(v: &Value) -> &Value {
    assert_eq!(v["ok"], json!(true), "expected ok: {v}");
    v
}

fn error(v: &Value) -> &str {
    assert_eq!(v["ok"], json!(false), "expected an error: {v}");
    v["error"].as_str().expect("error code")
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn ts_key(ts: &str) -> (u64, u64) {
    let (a, b) = ts.split_once('.').expect("a ts");
    assert_eq!(b.len(), 6, "{ts}");
    (a.parse().expect("secs"), b.parse().expect("micros"))
}

#[tokio::test]
async fn auth_is_required_on_every_method() {
    let slack = FakeSlack::start(TOKEN).await;
    let url = format!("{}chat.postMessage", slack.api_url());
    let body = json!({"channel": DEFAULT_CHANNEL_ID, "text": "hi"}).to_string();

    let none: Value = client()
        .post(&url)
        .header("content-type", JSON)
        .body(body.clone())
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(error(&none), "not_authed");

    let wrong = client()
        .post(&url)
        .bearer_auth("xoxb-wrong")
        .header("content-type", JSON)
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 200, "API errors are HTTP 200");
    assert_eq!(error(&wrong.json().await.expect("json")), "invalid_auth");

    // A token inside a JSON body is ignored, as on Slack.
    let in_json: Value = client()
        .post(&url)
        .header("content-type", JSON)
        .body(json!({"token": TOKEN, "channel": DEFAULT_CHANNEL_ID, "text": "hi"}).to_string())
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(error(&in_json), "not_authed");

    let views: Value = client()
        .post(format!("{}views.open", slack.api_url()))
        .bearer_auth("xoxb-wrong")
        .json(&json!({}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(error(&views), "invalid_auth");
    assert_eq!(slack.auth_failures(), 4);
    assert!(slack.messages(DEFAULT_CHANNEL_ID).is_empty());

    // A `token` form argument is accepted (Slack allows it for form bodies).
    let form: Value = client()
        .post(&url)
        .header("content-type", FORM)
        .body(slack::form_body(&[
            ("token", TOKEN),
            ("channel", DEFAULT_CHANNEL_ID),
            ("text", "via form"),
        ]))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    ok(&form);

    let me = call(&slack, "auth.test", json!({})).await;
    ok(&me);
    assert_eq!(me["user_id"], "UBOT");
    assert_eq!(me["team_id"], "T1");
    assert_eq!(me["bot_id"], "B1");
    assert_eq!(slack.auth_failures(), 4);
    assert_eq!(slack.call_count("chat.postMessage"), 4);
    assert_eq!(slack.calls("chat.postMessage")[3]["text"], "via form");
}

#[tokio::test]
async fn post_reply_update_and_list_a_thread() {
    let slack = FakeSlack::start(TOKEN).await;
    let metadata = json!({"event_type": "recall_incident", "event_payload": {"incident": "inc-1", "step": "announce"}});
    let parent = call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID, "text": "Incident inc-1 opened",
               "blocks": [section("*inc-1*")], "metadata": metadata, "unfurl_links": false}),
    )
    .await;
    ok(&parent);
    assert_eq!(parent["channel"], DEFAULT_CHANNEL_ID);
    let parent_ts = parent["ts"].as_str().expect("ts").to_string();
    assert_eq!(parent["message"]["ts"], parent_ts.as_str());
    assert_eq!(parent["message"]["text"], "Incident inc-1 opened");
    assert_eq!(parent["message"]["user"], BOT_USER_ID);
    assert_eq!(parent["message"]["bot_id"], "B1");
    assert_eq!(parent["message"]["blocks"][0]["type"], "section");
    assert_eq!(parent["message"]["metadata"], metadata);

    let reply = call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID, "text": "step 1 done", "thread_ts": parent_ts}),
    )
    .await;
    ok(&reply);
    let reply_ts = reply["ts"].as_str().expect("ts").to_string();
    assert!(
        ts_key(&reply_ts) > ts_key(&parent_ts),
        "ts strictly increase"
    );
    assert_eq!(reply["message"]["thread_ts"], parent_ts.as_str());
    assert_eq!(reply["message"]["parent_user_id"], BOT_USER_ID);

    // Replying to a reply threads under the parent; a form body works too.
    let nested = call_form(
        &slack,
        "chat.postMessage",
        &[
            ("channel", DEFAULT_CHANNEL_ID),
            ("text", "step 2 done"),
            ("thread_ts", &reply_ts),
        ],
    )
    .await;
    ok(&nested);
    assert_eq!(nested["message"]["thread_ts"], parent_ts.as_str());
    let nested_ts = nested["ts"].as_str().expect("ts").to_string();
    assert!(ts_key(&nested_ts) > ts_key(&reply_ts));

    let missing = call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID, "text": "x", "thread_ts": "1000000000.000001"}),
    )
    .await;
    assert_eq!(error(&missing), "thread_not_found");
    let bad = call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID, "text": "x", "thread_ts": "0"}),
    )
    .await;
    assert_eq!(error(&bad), "invalid_thread_ts");

    // Update: text replaced, blocks kept when omitted, history kept.
    let updated = call(
        &slack,
        "chat.update",
        json!({"channel": DEFAULT_CHANNEL_ID, "ts": parent_ts, "text": "Incident inc-1 contained"}),
    )
    .await;
    ok(&updated);
    assert_eq!(updated["channel"], DEFAULT_CHANNEL_ID);
    assert_eq!(updated["ts"], parent_ts.as_str());
    assert_eq!(updated["text"], "Incident inc-1 contained");
    assert_eq!(updated["message"]["edited"]["user"], BOT_USER_ID);
    let cleared = call(
        &slack,
        "chat.update",
        json!({"channel": DEFAULT_CHANNEL_ID, "ts": parent_ts, "text": "Incident inc-1 resolved", "blocks": []}),
    )
    .await;
    ok(&cleared);
    let gone = call(
        &slack,
        "chat.update",
        json!({"channel": DEFAULT_CHANNEL_ID, "ts": "1000000000.000001", "text": "x"}),
    )
    .await;
    assert_eq!(error(&gone), "message_not_found");
    let by_name = call(
        &slack,
        "chat.update",
        json!({"channel": "incidents", "ts": parent_ts, "text": "x"}),
    )
    .await;
    assert_eq!(
        error(&by_name),
        "channel_not_found",
        "chat.update takes IDs"
    );

    let msgs = slack.messages(DEFAULT_CHANNEL_ID);
    assert_eq!(msgs.len(), 3);
    let p = &msgs[0];
    assert_eq!(p.ts, parent_ts);
    assert_eq!(p.thread_ts, None);
    assert_eq!(p.text, "Incident inc-1 resolved");
    assert_eq!(p.blocks, Some(json!([])));
    assert_eq!(p.metadata, Some(metadata.clone()));
    assert_eq!(p.edits, 2);
    assert_eq!(p.history.len(), 2);
    assert_eq!(p.history[0].text, "Incident inc-1 opened");
    assert_eq!(p.history[1].text, "Incident inc-1 contained");
    assert_eq!(p.history[1].blocks, Some(json!([section("*inc-1*")])));
    assert_eq!(msgs[1].thread_ts.as_deref(), Some(parent_ts.as_str()));
    assert_eq!(msgs[2].thread_ts.as_deref(), Some(parent_ts.as_str()));
    let thread = slack.thread(DEFAULT_CHANNEL_ID, &nested_ts);
    assert_eq!(
        thread.iter().map(|m| m.ts.as_str()).collect::<Vec<_>>(),
        [&parent_ts, &reply_ts, &nested_ts]
    );

    // conversations.replies: GET with a query string; metadata only when asked for.
    let listed: Value = client()
        .get(format!(
            "{}conversations.replies?channel={DEFAULT_CHANNEL_ID}&ts={parent_ts}",
            slack.api_url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    ok(&listed);
    let m = listed["messages"].as_array().expect("messages");
    assert_eq!(m.len(), 3);
    assert_eq!(listed["has_more"], false);
    assert_eq!(m[0]["ts"], parent_ts.as_str());
    assert_eq!(m[0]["reply_count"], 2);
    assert_eq!(m[0]["latest_reply"], nested_ts.as_str());
    assert_eq!(m[0]["thread_ts"], parent_ts.as_str());
    assert!(m[0].get("metadata").is_none(), "no metadata by default");
    assert_eq!(m[1]["ts"], reply_ts.as_str());
    assert_eq!(m[2]["text"], "step 2 done");

    let with_md = call_form(
        &slack,
        "conversations.replies",
        &[
            ("channel", DEFAULT_CHANNEL_ID),
            ("ts", &reply_ts),
            ("include_all_metadata", "true"),
        ],
    )
    .await;
    ok(&with_md);
    assert_eq!(with_md["messages"][0]["metadata"], metadata);
    assert_eq!(with_md["messages"].as_array().expect("messages").len(), 3);

    // Pagination.
    let page1 = call(
        &slack,
        "conversations.replies",
        json!({"channel": DEFAULT_CHANNEL_ID, "ts": parent_ts, "limit": 2}),
    )
    .await;
    assert_eq!(page1["messages"].as_array().expect("messages").len(), 2);
    assert_eq!(page1["has_more"], true);
    let cursor = page1["response_metadata"]["next_cursor"]
        .as_str()
        .expect("cursor");
    let page2 = call(
        &slack,
        "conversations.replies",
        json!({"channel": DEFAULT_CHANNEL_ID, "ts": parent_ts, "limit": 2, "cursor": cursor}),
    )
    .await;
    assert_eq!(page2["messages"][0]["ts"], nested_ts.as_str());
    assert_eq!(page2["has_more"], false);

    let nothing = call(
        &slack,
        "conversations.replies",
        json!({"channel": DEFAULT_CHANNEL_ID, "ts": "1000000000.000001"}),
    )
    .await;
    assert_eq!(error(&nothing), "thread_not_found");
    assert_eq!(slack.call_count("conversations.replies"), 5);
    assert_eq!(
        slack.calls("chat.postMessage")[0]["metadata"]["event_payload"]["incident"],
        "inc-1"
    );
}

#[tokio::test]
async fn channels_resolve_by_id_and_name() {
    let slack = FakeSlack::start(TOKEN).await;
    slack.add_channel("C0OPS", "ops");
    for channel in [DEFAULT_CHANNEL_ID, "incidents", "#incidents"] {
        let r = call(
            &slack,
            "chat.postMessage",
            json!({"channel": channel, "text": format!("to {channel}")}),
        )
        .await;
        ok(&r);
        assert_eq!(r["channel"], DEFAULT_CHANNEL_ID, "{channel}");
    }
    ok(&call(
        &slack,
        "chat.postMessage",
        json!({"channel": "#ops", "text": "ops"}),
    )
    .await);
    assert_eq!(slack.messages("incidents").len(), 3);
    assert_eq!(slack.messages("C0OPS").len(), 1);

    for channel in ["#nope", "C0NOPE", ""] {
        let r = call(
            &slack,
            "chat.postMessage",
            json!({"channel": channel, "text": "x"}),
        )
        .await;
        assert_eq!(error(&r), "channel_not_found", "{channel:?}");
    }
    let r = call(&slack, "chat.postMessage", json!({"text": "x"})).await;
    assert_eq!(error(&r), "channel_not_found");
    let r = call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID}),
    )
    .await;
    assert_eq!(error(&r), "no_text");
    let r = call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID, "text": "", "blocks": []}),
    )
    .await;
    assert_eq!(error(&r), "no_text");
    let r = call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID, "text": "x".repeat(40_001)}),
    )
    .await;
    assert_eq!(error(&r), "msg_too_long");

    slack.set_member("C0OPS", false);
    let r = call(
        &slack,
        "chat.postMessage",
        json!({"channel": "ops", "text": "x"}),
    )
    .await;
    assert_eq!(error(&r), "not_in_channel");
    slack.set_member("C0OPS", true);
    slack.archive_channel("C0OPS");
    let r = call(
        &slack,
        "chat.postMessage",
        json!({"channel": "ops", "text": "x"}),
    )
    .await;
    assert_eq!(error(&r), "is_archived");
    assert_eq!(slack.messages("C0OPS").len(), 1);

    // Metadata shape.
    let r = call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID, "text": "x", "metadata": {"event_payload": {}}}),
    )
    .await;
    assert_eq!(error(&r), "invalid_metadata_format");
    let r = call_form(
        &slack,
        "chat.postMessage",
        &[
            ("channel", DEFAULT_CHANNEL_ID),
            ("text", "x"),
            (
                "metadata",
                r#"{"event_type":"recall","event_payload":{"a":1}}"#,
            ),
        ],
    )
    .await;
    ok(&r);
    assert_eq!(r["message"]["metadata"]["event_payload"]["a"], 1);
}

#[tokio::test]
async fn blocks_are_validated() {
    let slack = FakeSlack::start(TOKEN).await;
    let fifty: Vec<Value> = (0..50).map(|i| section(&format!("b{i}"))).collect();
    let r = call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID, "blocks": fifty}),
    )
    .await;
    ok(&r);
    assert_eq!(r["message"]["text"], "", "blocks without text are fine");

    let mut fifty_one = fifty.clone();
    fifty_one.push(section("one too many"));
    let r = call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID, "text": "x", "blocks": fifty_one}),
    )
    .await;
    assert_eq!(error(&r), "invalid_blocks");

    for blocks in [
        json!([{"text": {"type": "mrkdwn", "text": "no type"}}]),
        json!(["a string"]),
        json!([{"type": 3}]),
    ] {
        let r = call(
            &slack,
            "chat.postMessage",
            json!({"channel": DEFAULT_CHANNEL_ID, "text": "x", "blocks": blocks}),
        )
        .await;
        assert_eq!(error(&r), "invalid_blocks", "{blocks}");
        assert!(
            r["response_metadata"]["messages"][0]
                .as_str()
                .expect("message")
                .starts_with("[ERROR]")
        );
    }
    let r = call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID, "text": "x", "blocks": {"type": "section"}}),
    )
    .await;
    assert_eq!(error(&r), "invalid_blocks_format");

    // Form bodies carry blocks as a JSON string.
    let r = call_form(
        &slack,
        "chat.postMessage",
        &[
            ("channel", DEFAULT_CHANNEL_ID),
            ("text", "form"),
            ("blocks", &json!([section("from a form")]).to_string()),
        ],
    )
    .await;
    ok(&r);
    assert_eq!(r["message"]["blocks"][0]["text"]["text"], "from a form");
    let r = call_form(
        &slack,
        "chat.postMessage",
        &[
            ("channel", DEFAULT_CHANNEL_ID),
            ("text", "form"),
            ("blocks", "[{not json"),
        ],
    )
    .await;
    assert_eq!(error(&r), "invalid_blocks_format");

    let msgs = slack.messages(DEFAULT_CHANNEL_ID);
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        msgs[0]
            .blocks
            .as_ref()
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(50)
    );
    // Recorded calls decode form-encoded blocks so both encodings compare alike.
    let calls = slack.calls("chat.postMessage");
    assert_eq!(calls.len(), 8);
    assert_eq!(calls[6]["blocks"][0]["type"], "section");
    assert_eq!(calls[7]["blocks"], "[{not json");
}

#[tokio::test]
async fn ephemerals_are_not_channel_messages() {
    let slack = FakeSlack::start(TOKEN).await;
    let r = call(
        &slack,
        "chat.postEphemeral",
        json!({"channel": DEFAULT_CHANNEL_ID, "user": "U123", "text": "only you can see this"}),
    )
    .await;
    ok(&r);
    let message_ts = r["message_ts"].as_str().expect("message_ts");
    ts_key(message_ts);
    assert!(slack.messages(DEFAULT_CHANNEL_ID).is_empty());
    let eph = slack.ephemerals();
    assert_eq!(eph.len(), 1);
    assert_eq!(eph[0]["channel"], DEFAULT_CHANNEL_ID);
    assert_eq!(eph[0]["user"], "U123");
    assert_eq!(eph[0]["text"], "only you can see this");
    assert_eq!(eph[0]["message_ts"], message_ts);

    slack.set_user_not_in_channel(DEFAULT_CHANNEL_ID, "U999");
    let r = call(
        &slack,
        "chat.postEphemeral",
        json!({"channel": "#incidents", "user": "U999", "text": "x"}),
    )
    .await;
    assert_eq!(error(&r), "user_not_in_channel");
    let r = call(
        &slack,
        "chat.postEphemeral",
        json!({"channel": "#nope", "user": "U123", "text": "x"}),
    )
    .await;
    assert_eq!(error(&r), "channel_not_found");
    let r = call(
        &slack,
        "chat.postEphemeral",
        json!({"channel": DEFAULT_CHANNEL_ID, "user": "U123"}),
    )
    .await;
    assert_eq!(error(&r), "no_text");
    assert_eq!(slack.ephemerals().len(), 1);
}

fn modal(title: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": "recall_approve",
        "private_metadata": "{\"incident\":\"inc-1\"}",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Approve"},
        "blocks": [{"type": "input", "block_id": "reason", "label": {"type": "plain_text", "text": "Reason"},
                    "element": {"type": "plain_text_input", "action_id": "reason"}}],
    })
}

#[tokio::test]
async fn views_open_needs_a_fresh_trigger() {
    let slack = FakeSlack::start(TOKEN).await;
    let trigger = slack.issue_trigger_id();
    assert_eq!(trigger.split('.').count(), 3, "{trigger}");

    let r = call(
        &slack,
        "views.open",
        json!({"trigger_id": trigger, "view": modal("Approve step")}),
    )
    .await;
    ok(&r);
    let id = r["view"]["id"].as_str().expect("view id");
    assert!(id.starts_with('V'), "{id}");
    assert_eq!(r["view"]["callback_id"], "recall_approve");
    assert_eq!(r["view"]["private_metadata"], "{\"incident\":\"inc-1\"}");
    assert_eq!(r["view"]["root_view_id"], id);
    assert_eq!(r["view"]["state"], json!({"values": {}}));

    let reused = call(
        &slack,
        "views.open",
        json!({"trigger_id": trigger, "view": modal("Again")}),
    )
    .await;
    assert_eq!(error(&reused), "exchanged_trigger_id");

    let old = slack.issue_trigger_id_aged(Duration::from_millis(3_100));
    let expired = call(
        &slack,
        "views.open",
        json!({"trigger_id": old, "view": modal("Late")}),
    )
    .await;
    assert_eq!(error(&expired), "expired_trigger_id");

    let unknown = call(
        &slack,
        "views.open",
        json!({"trigger_id": "12345.98765.abcd2358fdea", "view": modal("Who")}),
    )
    .await;
    assert_eq!(error(&unknown), "invalid_trigger_id");

    // Invalid views are refused before the trigger is spent.
    let fresh = slack.issue_trigger_id();
    let mut no_submit = modal("No submit");
    no_submit.as_object_mut().expect("object").remove("submit");
    let mut no_blocks = modal("No blocks");
    no_blocks.as_object_mut().expect("object").remove("blocks");
    for view in [
        json!({"type": "home", "title": {"type": "plain_text", "text": "Home"}, "blocks": []}),
        json!({"type": "modal", "blocks": []}),
        modal("A title that is far too long for Slack"),
        no_submit,
        no_blocks,
    ] {
        let r = call(
            &slack,
            "views.open",
            json!({"trigger_id": fresh, "view": view}),
        )
        .await;
        assert_eq!(error(&r), "invalid_arguments", "{view}");
        assert!(r["response_metadata"]["messages"][0].is_string());
    }
    let r = call(&slack, "views.open", json!({"trigger_id": fresh})).await;
    assert_eq!(error(&r), "invalid_arguments");

    // The same trigger still works, with the view as a form-encoded JSON string.
    let r = call_form(
        &slack,
        "views.open",
        &[
            ("trigger_id", &fresh),
            ("view", &modal("From a form").to_string()),
        ],
    )
    .await;
    ok(&r);
    let views = slack.views();
    assert_eq!(views.len(), 2);
    assert_eq!(views[0]["title"]["text"], "Approve step");
    assert_eq!(views[1]["title"]["text"], "From a form");
    assert_ne!(views[0]["id"], views[1]["id"]);
}

#[tokio::test]
async fn conversations_create_follows_slack_name_rules() {
    let slack = FakeSlack::start(TOKEN).await;
    let r = call(
        &slack,
        "conversations.create",
        json!({"name": "inc-2024-evil_crate", "is_private": false}),
    )
    .await;
    ok(&r);
    let id = r["channel"]["id"].as_str().expect("id").to_string();
    assert!(id.starts_with('C'), "{id}");
    assert_eq!(r["channel"]["name"], "inc-2024-evil_crate");
    assert_eq!(r["channel"]["is_private"], false);
    assert_eq!(r["channel"]["is_member"], true);

    let private = call_form(
        &slack,
        "conversations.create",
        &[("name", "inc-private"), ("is_private", "true")],
    )
    .await;
    ok(&private);
    assert_eq!(private["channel"]["is_private"], true);

    for (name, code) in [
        ("Inc-Upper", "invalid_name_specials"),
        ("inc 2", "invalid_name_specials"),
        ("inc.2", "invalid_name_specials"),
        ("#inc", "invalid_name_specials"),
        ("ïnc", "invalid_name_specials"),
        ("", "invalid_name_required"),
        ("---", "invalid_name_punctuation"),
        ("incidents", "name_taken"),
        ("inc-2024-evil_crate", "name_taken"),
    ] {
        let r = call(&slack, "conversations.create", json!({"name": name})).await;
        assert_eq!(error(&r), code, "{name:?}");
    }
    let long = "a".repeat(81);
    let r = call(&slack, "conversations.create", json!({"name": long})).await;
    assert_eq!(error(&r), "invalid_name_maxlength");
    let max = "a".repeat(80);
    ok(&call(&slack, "conversations.create", json!({"name": max})).await);

    // The new channel is usable by name and by id.
    let posted = call(
        &slack,
        "chat.postMessage",
        json!({"channel": "#inc-2024-evil_crate", "text": "war room"}),
    )
    .await;
    assert_eq!(ok(&posted)["channel"], id.as_str());
    assert_eq!(slack.messages(&id).len(), 1);
    assert_eq!(
        slack.channel("inc-private").map(|c| c.is_private),
        Some(true)
    );
    assert_eq!(slack.channels().len(), 4);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let slack = FakeSlack::start(TOKEN).await;
    slack.rate_limit_next("chat.postMessage", 2, 7);
    let url = format!("{}chat.postMessage", slack.api_url());
    let body = json!({"channel": DEFAULT_CHANNEL_ID, "text": "hi"}).to_string();
    for _ in 0..2 {
        let r = client()
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", JSON)
            .body(body.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 429);
        assert_eq!(
            r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
            Some("7")
        );
        assert_eq!(error(&r.json().await.expect("json")), "ratelimited");
    }
    // Other methods are not limited; the third post goes through.
    ok(&call(&slack, "auth.test", json!({})).await);
    ok(&call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID, "text": "hi"}),
    )
    .await);
    assert_eq!(slack.messages(DEFAULT_CHANNEL_ID).len(), 1);
    assert_eq!(slack.call_count("chat.postMessage"), 3);

    // A per-minute tier.
    slack.tier_limit("chat.update", 2);
    let ts = slack.messages(DEFAULT_CHANNEL_ID)[0].ts.clone();
    for i in 0..2 {
        ok(&call(
            &slack,
            "chat.update",
            json!({"channel": DEFAULT_CHANNEL_ID, "ts": ts, "text": format!("v{i}")}),
        )
        .await);
    }
    let r = client()
        .post(format!("{}chat.update", slack.api_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"channel": DEFAULT_CHANNEL_ID, "ts": ts, "text": "v3"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 429);
    let secs: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("retry-after seconds");
    assert!((1..=60).contains(&secs), "{secs}");
    assert_eq!(slack.messages(DEFAULT_CHANNEL_ID)[0].edits, 2);
}

#[tokio::test]
async fn outages_and_recovery() {
    let slack = FakeSlack::start(TOKEN).await;
    let url = format!("{}chat.postMessage", slack.api_url());
    let body = json!({"channel": DEFAULT_CHANNEL_ID, "text": "hi"}).to_string();
    let post = || {
        client()
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", JSON)
            .body(body.clone())
            .send()
    };

    slack.set_down(Availability::ServerErrors);
    let r = post().await.expect("an answer");
    assert_eq!(r.status(), 500);
    assert!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/html"))
    );
    let text = r.text().await.expect("body");
    assert!(text.contains("500"), "{text}");
    let response_url = slack.new_response_url();
    let r = client()
        .post(&response_url)
        .json(&json!({"text": "x"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(r.status(), 500, "response URLs are down too");

    slack.set_down(Availability::Refuse);
    let e = post().await.expect_err("a transport error");
    assert!(e.status().is_none(), "no HTTP answer: {e}");
    assert!(!e.is_timeout(), "refused, not timed out: {e}");

    slack.set_down(Availability::Up);
    ok(&post().await.expect("send").json().await.expect("json"));
    assert_eq!(slack.messages(DEFAULT_CHANNEL_ID).len(), 1);
    assert_eq!(
        slack.call_count("chat.postMessage"),
        3,
        "every attempt counted"
    );
    assert!(slack.responses(&response_url).is_empty());
}

#[tokio::test]
async fn response_urls_record_up_to_five_posts() {
    let slack = FakeSlack::start(TOKEN).await;
    let url = slack.new_response_url();
    assert!(
        url.starts_with(&format!("{}/response/", slack.url())),
        "{url}"
    );
    for i in 0..RESPONSE_URL_MAX_POSTS {
        let r = client()
            .post(&url)
            .json(&json!({"text": format!("answer {i}"), "response_type": "ephemeral"}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.expect("json")["ok"], true);
    }
    let r = client()
        .post(&url)
        .json(&json!({"text": "one too many"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(error(&r.json().await.expect("json")), "used_url");
    let posts = slack.responses(&url);
    assert_eq!(posts.len(), 5);
    assert_eq!(posts[4]["text"], "answer 4");
    let id = url.rsplit('/').next().expect("id");
    assert_eq!(slack.responses(id), posts);

    // Bad bodies.
    let other = slack.new_response_url();
    let r = client()
        .post(&other)
        .json(&json!({"response_type": "in_channel"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let r = client()
        .post(&other)
        .header("content-type", FORM)
        .body("text=hi")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert!(slack.responses(&other).is_empty());
    let r = client()
        .post(format!("{}/response/T1-999-nope", slack.url()))
        .json(&json!({"text": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    slack.expire_response_url(&other);
    let r = client()
        .post(&other)
        .json(&json!({"text": "late"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(error(&r.json().await.expect("json")), "expired_url");

    // Tied to a message: replace_original edits it, in_channel posts, delete_original deletes.
    let posted = call(
        &slack,
        "chat.postMessage",
        json!({"channel": DEFAULT_CHANNEL_ID, "text": "Approve step?", "blocks": [section("Approve?")]}),
    )
    .await;
    let ts = posted["ts"].as_str().expect("ts").to_string();
    let tied = slack.new_response_url_for(DEFAULT_CHANNEL_ID, Some(&ts));
    for body in [
        json!({"replace_original": true, "text": "Approved by <@U123>"}),
        json!({"response_type": "in_channel", "text": "Step approved"}),
    ] {
        let r = client().post(&tied).json(&body).send().await.expect("send");
        assert_eq!(r.status(), 200);
    }
    let msgs = slack.messages(DEFAULT_CHANNEL_ID);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].text, "Approved by <@U123>");
    assert_eq!(msgs[0].blocks, Some(json!([])));
    assert_eq!(msgs[0].edits, 1);
    assert_eq!(msgs[1].text, "Step approved");
    let r = client()
        .post(&tied)
        .json(&json!({"delete_original": true}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(slack.messages(DEFAULT_CHANNEL_ID).len(), 1);
    assert_eq!(slack.responses(&tied).len(), 3);
}

#[tokio::test]
async fn unknown_methods_and_body_quirks() {
    let slack = FakeSlack::start(TOKEN).await;
    let r = client()
        .post(format!("{}chat.postMesage", slack.api_url()))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.expect("json");
    assert_eq!(error(&v), "unknown_method");
    assert_eq!(v["req_method"], "chat.postMesage");

    let r: Value = client()
        .post(format!("{}chat.postMessage", slack.api_url()))
        .bearer_auth(TOKEN)
        .header("content-type", JSON)
        .body("{not json")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(error(&r), "invalid_json");

    // JSON without a charset works, with Slack's warning.
    let r: Value = client()
        .post(format!("{}auth.test", slack.api_url()))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    ok(&r);
    assert_eq!(r["warning"], "missing_charset");
    assert_eq!(
        r["response_metadata"]["warnings"],
        json!(["missing_charset"])
    );
    let r = call(&slack, "auth.test", json!({})).await;
    assert!(r.get("warning").is_none(), "{r}");
}

// ---- the signer ----

#[test]
fn hmac_matches_rfc_4231() {
    // Test case 2.
    assert_eq!(
        hex::encode(slack::hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // Test case 6: a key longer than the block is hashed first.
    assert_eq!(
        hex::encode(slack::hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

const SLACK_EXAMPLE_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";

#[test]
fn signer_matches_slacks_documented_example() {
    assert_eq!(
        slack::sign(
            "8f742231b10e8888abcd99yyyzzz85a5",
            1531420618,
            SLACK_EXAMPLE_BODY
        ),
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    );
    // The form encoder reproduces Slack's body byte for byte.
    let pairs = slack::parse_form(SLACK_EXAMPLE_BODY);
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(refs[7], ("command", "/webhook-collect"));
    assert_eq!(slack::form_body(&refs), SLACK_EXAMPLE_BODY);
    assert_ne!(
        slack::sign(
            "8f742231b10e8888abcd99yyyzzz85a5",
            1531420619,
            SLACK_EXAMPLE_BODY
        ),
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    );
}

#[test]
fn slack_shaped_payloads() {
    let body = slack::slash_command_body(
        "/recall",
        "approve inc-1 step_2 & more",
        "U123",
        "alice",
        DEFAULT_CHANNEL_ID,
        "http://127.0.0.1:1/response/x",
        "1.2.abc",
    );
    let keys: Vec<String> = slack::parse_form(&body)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        [
            "token",
            "team_id",
            "team_domain",
            "channel_id",
            "channel_name",
            "user_id",
            "user_name",
            "command",
            "text",
            "api_app_id",
            "is_enterprise_install",
            "response_url",
            "trigger_id"
        ]
    );
    assert!(body.contains("&command=%2Frecall&"), "{body}");
    assert!(
        body.contains("&text=approve+inc-1+step_2+%26+more&"),
        "{body}"
    );
    assert!(body.contains("&channel_name=incidents&"), "{body}");
    assert!(
        body.contains("&response_url=http%3A%2F%2F127.0.0.1%3A1%2Fresponse%2Fx&"),
        "{body}"
    );

    let payload = slack::block_actions_payload(
        "U123",
        "alice",
        DEFAULT_CHANNEL_ID,
        "1764300000.000100",
        "approve",
        "inc-1:step_2",
        "http://127.0.0.1:1/response/y",
        "1.2.def",
    );
    assert_eq!(payload["type"], "block_actions");
    assert_eq!(payload["user"]["id"], "U123");
    assert_eq!(payload["user"]["username"], "alice");
    assert_eq!(payload["container"]["message_ts"], "1764300000.000100");
    assert_eq!(payload["container"]["channel_id"], DEFAULT_CHANNEL_ID);
    assert_eq!(payload["container"]["is_ephemeral"], false);
    assert_eq!(payload["message"]["ts"], "1764300000.000100");
    assert_eq!(payload["channel"]["id"], DEFAULT_CHANNEL_ID);
    assert_eq!(payload["team"]["id"], "T1");
    assert_eq!(payload["trigger_id"], "1.2.def");
    assert_eq!(payload["response_url"], "http://127.0.0.1:1/response/y");
    let action = &payload["actions"][0];
    assert_eq!(action["action_id"], "approve");
    assert_eq!(action["value"], "inc-1:step_2");
    assert_eq!(action["type"], "button");
    assert!(action["block_id"].is_string() && action["action_ts"].is_string());

    let body = slack::interaction_body(&payload);
    assert!(body.starts_with("payload=%7B%22"), "{body}");
    let pairs = slack::parse_form(&body);
    assert_eq!(pairs.len(), 1);
    let decoded: Value = serde_json::from_str(&pairs[0].1).expect("payload JSON");
    assert_eq!(decoded, payload);

    let state = json!({"reason": {"reason": {"type": "plain_text_input", "value": "looks bad"}}});
    let vs = slack::view_submission_payload("U123", "recall_approve", "inc-1", state.clone());
    assert_eq!(vs["type"], "view_submission");
    assert_eq!(vs["user"]["id"], "U123");
    assert_eq!(vs["view"]["callback_id"], "recall_approve");
    assert_eq!(vs["view"]["private_metadata"], "inc-1");
    assert_eq!(vs["view"]["state"]["values"], state);
    assert_eq!(vs["view"]["type"], "modal");
}

#[tokio::test]
async fn post_signed_sends_slacks_headers() {
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let log = seen.clone();
    let server = FakeServer::start(move |req: &Request| {
        log.lock().expect("log").push(req.clone());
        Response::text(200, "text/plain", "handled")
    })
    .await;
    let url = format!("{}/slack/commands", server.url());
    let body = slack::slash_command_body(
        "/recall",
        "status",
        "U123",
        "alice",
        DEFAULT_CHANNEL_ID,
        "http://x/response/1",
        "1.2.3",
    );
    let before = slack::now_timestamp();
    let (status, _headers, text) = slack::post_signed(&url, "s3cret", &body, FORM).await;
    assert_eq!((status, text.as_str()), (200, "handled"));
    let (status, _, _) =
        slack::post_with_signature(&url, Some("1531420618"), Some("v0=forged"), &body, FORM).await;
    assert_eq!(status, 200);
    let (status, _, _) = slack::post_with_signature(&url, None, None, "x=1", FORM).await;
    assert_eq!(status, 200);

    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 3);
    let ts: i64 = seen[0]
        .header("x-slack-request-timestamp")
        .expect("timestamp")
        .parse()
        .expect("numeric");
    assert!((before..=before + 5).contains(&ts));
    assert_eq!(
        seen[0].header("x-slack-signature"),
        Some(slack::sign("s3cret", ts, &body).as_str())
    );
    assert_eq!(seen[0].body_text(), body);
    assert_eq!(seen[0].header("content-type"), Some(FORM));
    assert_eq!(
        seen[1].header("x-slack-request-timestamp"),
        Some("1531420618")
    );
    assert_eq!(seen[1].header("x-slack-signature"), Some("v0=forged"));
    assert_eq!(seen[2].header("x-slack-signature"), None);
    assert_eq!(seen[2].header("x-slack-request-timestamp"), None);
}

#[tokio::test]
async fn conversations_info_by_id_only_and_private_channels_need_membership() {
    let slack = FakeSlack::start(TOKEN).await;
    slack.add_channel_without_bot("C0OUTSIDE1", "outside");
    slack.add_channel("C0ARCHIVE1", "old-incidents");
    slack.archive_channel("C0ARCHIVE1");
    slack.add_private_channel("G0PRIVATE1", "secret-room");
    slack.add_private_channel("G0PRIVATE2", "not-for-the-bot");
    slack.set_member("G0PRIVATE2", false);

    let v = call(
        &slack,
        "conversations.info",
        json!({"channel": DEFAULT_CHANNEL_ID}),
    )
    .await;
    let c = &ok(&v)["channel"];
    assert_eq!(c["id"], DEFAULT_CHANNEL_ID);
    assert_eq!(c["name"], "incidents");
    assert_eq!(c["is_member"], true);
    assert_eq!(c["is_archived"], false);
    assert_eq!(c["is_private"], false);
    assert!(c.get("num_members").is_none() && c.get("locale").is_none());

    // Form encoding, with the optional fields.
    let v = call_form(
        &slack,
        "conversations.info",
        &[
            ("channel", "C0OUTSIDE1"),
            ("include_num_members", "true"),
            ("include_locale", "true"),
        ],
    )
    .await;
    let c = &ok(&v)["channel"];
    assert_eq!(
        (c["is_member"].clone(), c["num_members"].clone()),
        (json!(false), json!(0))
    );
    assert_eq!(c["locale"], "en-US");

    let v = call(
        &slack,
        "conversations.info",
        json!({"channel": "C0ARCHIVE1"}),
    )
    .await;
    assert_eq!(ok(&v)["channel"]["is_archived"], true);
    let v = call(
        &slack,
        "conversations.info",
        json!({"channel": "G0PRIVATE1"}),
    )
    .await;
    assert_eq!(ok(&v)["channel"]["is_private"], true);

    for channel in ["C0NOSUCH01", "incidents", "#incidents", "G0PRIVATE2", ""] {
        let v = call(&slack, "conversations.info", json!({"channel": channel})).await;
        assert_eq!(error(&v), "channel_not_found", "{channel:?}");
    }
    let v = call(&slack, "conversations.info", json!({})).await;
    assert_eq!(error(&v), "channel_not_found");
    assert_eq!(slack.call_count("conversations.info"), 10);
}

#[tokio::test]
async fn conversations_list_filters_types_and_archived_and_paginates() {
    let slack = FakeSlack::start(TOKEN).await;
    for i in 0..25 {
        slack.add_channel(&format!("C0PAGE{i:04}"), &format!("page-{i}"));
    }
    slack.archive_channel("C0PAGE0003");
    slack.add_channel_without_bot("C0OUTSIDE1", "outside");
    slack.add_private_channel("G0PRIVATE1", "secret-room");
    slack.add_private_channel("G0PRIVATE2", "not-for-the-bot");
    slack.set_member("G0PRIVATE2", false);

    // Default: public channels only, archived included, one page of 100.
    let v = call(&slack, "conversations.list", json!({})).await;
    let names: Vec<&str> = ok(&v)["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 27, "{names:?}");
    assert_eq!(names[0], "incidents");
    assert!(names.contains(&"page-3") && names.contains(&"outside"));
    assert!(!names.contains(&"secret-room"));
    assert_eq!(v["response_metadata"]["next_cursor"], "");

    // Pages of 10 through the cursor, private ones too, archived left out.
    let mut cursor = String::new();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let mut body = json!({"types": "public_channel,private_channel", "exclude_archived": true, "limit": 10});
        if !cursor.is_empty() {
            body["cursor"] = json!(cursor);
        }
        let v = call(&slack, "conversations.list", body).await;
        let page = ok(&v)["channels"].as_array().unwrap().clone();
        assert!(page.len() <= 10);
        seen.extend(page.iter().map(|c| c["id"].as_str().unwrap().to_string()));
        pages += 1;
        cursor = v["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_string();
        if cursor.is_empty() {
            break;
        }
        assert!(pages < 10, "the cursor never ends");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 27, "{seen:?}");
    assert!(seen.contains(&"G0PRIVATE1".to_string()));
    assert!(
        !seen.contains(&"G0PRIVATE2".to_string()),
        "a private channel the bot is not in"
    );
    assert!(!seen.contains(&"C0PAGE0003".to_string()), "archived");
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no channel twice");

    // Private only, form-encoded.
    let v = call_form(
        &slack,
        "conversations.list",
        &[("types", "private_channel")],
    )
    .await;
    let ids: Vec<&str> = ok(&v)["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["G0PRIVATE1"]);
    // DMs exist as a type but list nothing here.
    let v = call(&slack, "conversations.list", json!({"types": "im,mpim"})).await;
    assert_eq!(ok(&v)["channels"], json!([]));

    // Refusals.
    let v = call(
        &slack,
        "conversations.list",
        json!({"types": "public_channel,channels"}),
    )
    .await;
    assert_eq!(error(&v), "invalid_types");
    for limit in [json!(0), json!(1001), json!("ten")] {
        let v = call(&slack, "conversations.list", json!({"limit": limit})).await;
        assert_eq!(error(&v), "invalid_limit", "{limit}");
    }
    let v = call(
        &slack,
        "conversations.list",
        json!({"cursor": "bm90LWEtY3Vyc29y"}),
    )
    .await;
    assert_eq!(error(&v), "invalid_cursor");
    let v = call(&slack, "conversations.list", json!({"cursor": "%%%"})).await;
    assert_eq!(error(&v), "invalid_cursor");
}
