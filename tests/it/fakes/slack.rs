//! Contract fake of the Slack Web API (the methods Recall's Slack app uses) plus the
//! response URLs Slack hands out with slash commands and interactions, built on
//! [`FakeServer`]; and a request signer for tests that play Slack calling Recall.
//!
//! Point a client at [`FakeSlack::api_url`] (`http://127.0.0.1:PORT/api/`). Faithful to Slack
//! (docs.slack.dev method pages and their documented error codes):
//!
//! * methods are `{base}/api/<method>`, any HTTP method; arguments come from the query string
//!   and from an `application/x-www-form-urlencoded` body or an `application/json` body (a
//!   JSON body without `charset` works but gets Slack's `missing_charset` warning; a body
//!   that is not JSON → `invalid_json`, not an object → `json_not_object`). In form bodies
//!   `blocks`, `metadata` and `view` are JSON-encoded strings, as Slack expects;
//! * API errors are HTTP 200 `{"ok":false,"error":"<code>"}` (some with
//!   `response_metadata.messages`, as Slack adds); an unknown method is HTTP 404
//!   `{"ok":false,"error":"unknown_method","req_method":…}` (checked before auth);
//! * auth: `Authorization: Bearer <token>` or, for form bodies only, a `token` argument (a
//!   token inside a JSON body is ignored, as Slack does): none → `not_authed`, another →
//!   `invalid_auth`;
//! * `chat.postMessage`: `channel` is an ID or a name (`incidents` / `#incidents`) →
//!   `channel_not_found`; archived → `is_archived`; the bot not a member → `not_in_channel`;
//!   `text` or non-empty `blocks` → `no_text`; more than 40 000 characters → `msg_too_long`;
//!   `blocks` not an array (or a form string that is not JSON) → `invalid_blocks_format`,
//!   more than 50 or an element that is not an object with a string `type` →
//!   `invalid_blocks`; `metadata` must be `{event_type: string, event_payload: object}` →
//!   `invalid_metadata_format`; `thread_ts` not shaped like a ts → `invalid_thread_ts`, not a
//!   message of the channel → `thread_not_found`; a reply's ts threads under its parent.
//!   Answers `{ok, channel, ts, message}` with a bot message (`user`, `bot_id`, `app_id`,
//!   `team`, `blocks`, `metadata`, `thread_ts` + `parent_user_id` for replies);
//! * `ts` values are `<unix secs>.<6 digits>` from the wall clock, strictly increasing;
//! * `chat.update`: `channel` must be an ID, `ts` an existing message (`message_not_found`);
//!   `text`, `blocks` and `metadata` are replaced only when given (omitted blocks are kept,
//!   `[]` clears them), neither text nor blocks → `no_text`; the message gets `edited`;
//!   answers `{ok, channel, ts, text, message}`;
//! * `chat.postEphemeral`: needs `channel` and `user`; `user_not_in_channel` once a test set
//!   it up ([`FakeSlack::set_user_not_in_channel`]); answers `{ok, message_ts}`; ephemerals
//!   are kept apart from channel messages;
//! * `views.open`: the view is checked first (`type` must be `modal`, a `plain_text` `title`
//!   of at most 24 characters, `blocks` an array of at most 100 typed objects, a `submit` when
//!   there are `input` blocks, `private_metadata` ≤ 3000 and `callback_id` ≤ 255 characters →
//!   `invalid_arguments` with Slack-style `[ERROR] …` messages), then the trigger: unknown →
//!   `invalid_trigger_id`, used before → `exchanged_trigger_id`, older than 3 s →
//!   `expired_trigger_id`. Answers the stored view (`id`, `team_id`, `state`, `hash`,
//!   `root_view_id`, `app_id`, `bot_id`, …);
//! * `conversations.create`: empty → `invalid_name_required`, > 80 characters →
//!   `invalid_name_maxlength`, anything but `a-z0-9-_` (upper case included) →
//!   `invalid_name_specials`, only `-`/`_` → `invalid_name_punctuation`, existing →
//!   `name_taken`; the bot is a member of the new channel;
//! * `conversations.replies`: `channel` must be an ID; `ts` may be the parent's or a reply's
//!   (the whole thread comes back, parent first, with `reply_count`, `reply_users`,
//!   `latest_reply`); no such message → `thread_not_found`. `metadata` is included only with
//!   `include_all_metadata=true`, exactly like Slack (it defaults to false); `limit`
//!   (default 1000) and an opaque `cursor` paginate with `has_more` and
//!   `response_metadata.next_cursor`;
//! * `conversations.info`: `channel` must be an ID (a name, an unknown ID, or a private
//!   channel the bot is not in → `channel_not_found`); answers `{ok, channel}` with the
//!   conversation object (`id`, `name`, `is_channel`, `is_private`, `is_archived`,
//!   `is_member`, `created`, `topic`, `purpose`, …), archived channels included;
//!   `include_num_members=true` adds `num_members`, `include_locale=true` adds `locale`;
//! * `conversations.list`: `types` is a comma list of `public_channel`, `private_channel`,
//!   `mpim`, `im` (default `public_channel`; anything else → `invalid_types`); private
//!   channels are listed only when the bot is a member, as for a bot token;
//!   `exclude_archived` (default false); `limit` (default 100, an integer from 1 to 1000,
//!   else `invalid_limit`) and an opaque `cursor` paginate in creation order, with
//!   `response_metadata.next_cursor` (`""` on the last page, as Slack sends it); a cursor
//!   not handed out → `invalid_cursor`;
//! * `auth.test` answers the bot identity ([`BOT_USER_ID`], [`TEAM_ID`], [`BOT_ID`]);
//! * response URLs ([`FakeSlack::new_response_url`]) take JSON posts with `text` or `blocks`
//!   (or `delete_original`) → else 400 `no_text`; non-JSON → 400 `invalid_payload`; at most
//!   5 posts, then 404 `used_url`; unknown or expired → 404 `expired_url`. A URL tied to a
//!   message ([`FakeSlack::new_response_url_for`]) applies `replace_original` /
//!   `delete_original` to it and posts `response_type: in_channel` answers to its channel;
//! * rate limits are HTTP 429 with `Retry-After` and `{"ok":false,"error":"ratelimited"}`.
//!
//! Deviations (deliberate): one workspace, one bot and one token, no scopes (so no
//! `missing_scope`, and `conversations.replies` works on public channels for the bot); no
//! DMs or group DMs (`im`/`mpim` list nothing), no `team_id`, `num_members` counts the
//! bot only (1 when it is a member, else 0); no
//! `attachments` validation, no per-block limits (section text length, etc.), no blocks
//! synthesised from `text`, no link unfurling, no `mrkdwn` parsing; replies pagination does
//! not repeat the parent on later pages; `oldest`/`latest`/`inclusive` are ignored; deleting
//! a parent (through `delete_original`) leaves its replies; response URLs never time out on
//! their own (30 minutes on Slack: see [`FakeSlack::expire_response_url`]); their success
//! body is `{"ok":true}`.
//!
//! Scripted trouble: [`FakeSlack::rate_limit_next`], [`FakeSlack::tier_limit`],
//! [`FakeSlack::set_down`] ([`Availability::ServerErrors`]: HTTP 500 with an HTML body on every
//! path; [`Availability::Refuse`]: the connection is reset without an answer), and
//! [`FakeServer::inject`] through [`FakeSlack::server`].
//!
//! Every request to `/api/<method>` is recorded in [`FakeSlack::calls`] whatever the answer
//! (auth errors, 429, 500 and refused ones included), so retries can be counted; only
//! requests answered by a fault injected through [`FakeSlack::server`] are not.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{FakeServer, Fault, Handler, Request, Response};

/// The channel every fake starts with.
pub const DEFAULT_CHANNEL_ID: &str = "C0INCIDENTS";
pub const DEFAULT_CHANNEL_NAME: &str = "incidents";
pub const TEAM_ID: &str = "T1";
pub const TEAM_DOMAIN: &str = "recall-test";
/// The bot's user id (`auth.test` `user_id`, `user` of its messages).
pub const BOT_USER_ID: &str = "UBOT";
pub const BOT_ID: &str = "B1";
pub const APP_ID: &str = "A0RECALL";
/// The deprecated verification token Slack still puts in payloads (`token`).
pub const VERIFICATION_TOKEN: &str = "VerificationTokenDeprecated0";
/// How long a trigger id can be exchanged.
pub const TRIGGER_TTL: Duration = Duration::from_secs(3);
/// Posts a response URL accepts.
pub const RESPONSE_URL_MAX_POSTS: usize = 5;
pub const MAX_BLOCKS: usize = 50;
pub const MAX_MODAL_BLOCKS: usize = 100;
pub const MAX_TEXT_CHARS: usize = 40_000;
/// The body of [`Availability::ServerErrors`] answers.
pub const SERVER_ERROR_BODY: &str = "<!DOCTYPE html><html><head><title>Slack is having trouble</title></head><body><h1>500 Internal Server Error</h1><p>Something went wrong on our end.</p></body></html>";

/// Whether the fake answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    Up,
    /// Every request (API and response URLs) answers HTTP 500 with [`SERVER_ERROR_BODY`].
    ServerErrors,
    /// Every request is read and the connection reset without an answer.
    Refuse,
}

/// A previous version of an edited message.
#[derive(Clone, Debug, PartialEq)]
pub struct Revision {
    pub text: String,
    pub blocks: Option<Value>,
    pub metadata: Option<Value>,
}

/// A channel message as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    /// The parent's ts for a reply; `None` for a top-level message (even one with replies).
    pub thread_ts: Option<String>,
    pub text: String,
    pub blocks: Option<Value>,
    pub metadata: Option<Value>,
    /// Number of updates (`chat.update`, `replace_original`).
    pub edits: usize,
    /// The versions before each edit, oldest first.
    pub history: Vec<Revision>,
}

/// A channel as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub is_private: bool,
    /// Whether the bot is a member (posting needs it).
    pub is_member: bool,
    pub is_archived: bool,
    pub created: i64,
}

#[derive(Debug)]
struct Stored {
    msg: Message,
    edited_ts: Option<String>,
}

#[derive(Debug)]
struct Trigger {
    issued: Instant,
    used: bool,
}

#[derive(Debug, Default)]
struct ResponseUrl {
    channel: Option<String>,
    message_ts: Option<String>,
    posts: Vec<Value>,
    expired: bool,
}

#[derive(Debug)]
struct State {
    token: String,
    availability: Availability,
    channels: Vec<Channel>,
    not_in_channel: BTreeSet<(String, String)>,
    messages: Vec<Stored>,
    ephemerals: Vec<Value>,
    views: Vec<Value>,
    triggers: HashMap<String, Trigger>,
    responses: HashMap<String, ResponseUrl>,
    calls: Vec<(String, Value)>,
    auth_failures: usize,
    rate_next: HashMap<String, VecDeque<u64>>,
    tiers: HashMap<String, (usize, VecDeque<Instant>)>,
    last_ts_micros: u64,
    next_id: u64,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn next_ts(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default();
        let v = now.max(self.last_ts_micros + 1);
        self.last_ts_micros = v;
        format!("{}.{:06}", v / 1_000_000, v % 1_000_000)
    }

    fn channel_by_id(&self, id: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }

    /// An ID, a name or `#name`, as `chat.postMessage` accepts.
    fn resolve_channel(&self, arg: &str) -> Option<&Channel> {
        self.channel_by_id(arg).or_else(|| {
            let name = arg.strip_prefix('#').unwrap_or(arg);
            self.channels.iter().find(|c| c.name == name)
        })
    }

    fn find(&self, channel: &str, ts: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.msg.channel == channel && m.msg.ts == ts)
    }

    /// The thread `ts` belongs to: parent first, then replies in ts order.
    fn thread_of(&self, channel: &str, ts: &str) -> Option<Vec<&Stored>> {
        let i = self.find(channel, ts)?;
        let root = self.messages[i]
            .msg
            .thread_ts
            .clone()
            .unwrap_or_else(|| ts.to_string());
        let mut out: Vec<&Stored> = self
            .messages
            .iter()
            .filter(|m| {
                m.msg.channel == channel
                    && (m.msg.ts == root || m.msg.thread_ts.as_deref() == Some(root.as_str()))
            })
            .collect();
        out.sort_by(|a, b| {
            let parent = |m: &Stored| m.msg.thread_ts.is_some();
            parent(a).cmp(&parent(b)).then(a.msg.ts.cmp(&b.msg.ts))
        });
        Some(out)
    }

    fn message_json(&self, s: &Stored, with_metadata: bool) -> Value {
        let m = &s.msg;
        let mut v = json!({
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "text": m.text,
            "ts": m.ts,
            "team": TEAM_ID,
            "bot_profile": {"id": BOT_ID, "app_id": APP_ID, "name": "recall", "deleted": false, "team_id": TEAM_ID},
        });
        if let Some(b) = &m.blocks {
            v["blocks"] = b.clone();
        }
        match &m.thread_ts {
            Some(parent) => {
                v["thread_ts"] = json!(parent);
                v["parent_user_id"] = json!(BOT_USER_ID);
            }
            None => {
                let replies: Vec<&Stored> = self
                    .messages
                    .iter()
                    .filter(|r| {
                        r.msg.channel == m.channel && r.msg.thread_ts.as_deref() == Some(&m.ts)
                    })
                    .collect();
                if let Some(latest) = replies.iter().map(|r| r.msg.ts.as_str()).max() {
                    v["thread_ts"] = json!(m.ts);
                    v["reply_count"] = json!(replies.len());
                    v["reply_users"] = json!([BOT_USER_ID]);
                    v["reply_users_count"] = json!(1);
                    v["latest_reply"] = json!(latest);
                }
            }
        }
        if let Some(ts) = &s.edited_ts {
            v["edited"] = json!({"user": BOT_USER_ID, "ts": ts});
        }
        if with_metadata && let Some(md) = &m.metadata {
            v["metadata"] = md.clone();
        }
        v
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn hex32(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))[..32].to_string()
}

/// A running fake Slack.
pub struct FakeSlack {
    server: FakeServer,
    state: Arc<Mutex<State>>,
}

struct SlackHandler {
    state: Arc<Mutex<State>>,
}

impl Handler for SlackHandler {
    fn handle(&self, req: &Request) -> Response {
        handle(&self.state, req)
    }

    fn fault(&self, req: &Request) -> Option<Fault> {
        let mut st = lock(&self.state);
        if st.availability != Availability::Refuse {
            return None;
        }
        record_call(&mut st, req);
        Some(Fault::Reset)
    }
}

impl FakeSlack {
    /// A fake workspace whose bot token is `bot_token`, with `#incidents` ([`DEFAULT_CHANNEL_ID`]).
    pub async fn start(bot_token: &str) -> FakeSlack {
        let state = Arc::new(Mutex::new(State {
            token: bot_token.to_string(),
            availability: Availability::Up,
            channels: vec![Channel {
                id: DEFAULT_CHANNEL_ID.into(),
                name: DEFAULT_CHANNEL_NAME.into(),
                is_private: false,
                is_member: true,
                is_archived: false,
                created: unix_now(),
            }],
            not_in_channel: BTreeSet::new(),
            messages: Vec::new(),
            ephemerals: Vec::new(),
            views: Vec::new(),
            triggers: HashMap::new(),
            responses: HashMap::new(),
            calls: Vec::new(),
            auth_failures: 0,
            rate_next: HashMap::new(),
            tiers: HashMap::new(),
            last_ts_micros: 0,
            next_id: 0,
        }));
        let server = FakeServer::start(SlackHandler {
            state: state.clone(),
        })
        .await;
        FakeSlack { server, state }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// `http://127.0.0.1:PORT/api/`: the `[slack] api_url` to give Recall.
    pub fn api_url(&self) -> String {
        format!("{}/api/", self.server.url())
    }

    /// The underlying server: request log, fault injection.
    pub fn server(&self) -> &FakeServer {
        &self.server
    }

    /// Every request received (all paths, faulted ones included).
    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    // ---- seeding ----

    /// Adds a public channel the bot is a member of.
    pub fn add_channel(&self, id: &str, name: &str) {
        lock(&self.state).channels.push(Channel {
            id: id.into(),
            name: name.into(),
            is_private: false,
            is_member: true,
            is_archived: false,
            created: unix_now(),
        });
    }

    /// Adds a private channel the bot is a member of (see [`FakeSlack::set_member`]: once
    /// it is not, the channel is invisible to `conversations.info` and `.list`).
    pub fn add_private_channel(&self, id: &str, name: &str) {
        lock(&self.state).channels.push(Channel {
            id: id.into(),
            name: name.into(),
            is_private: true,
            is_member: true,
            is_archived: false,
            created: unix_now(),
        });
    }

    /// Adds a public channel the bot is not a member of (`not_in_channel` when posting).
    pub fn add_channel_without_bot(&self, id: &str, name: &str) {
        self.add_channel(id, name);
        self.set_member(id, false);
    }

    /// Makes the bot a member of the channel or not (`not_in_channel` when posting).
    pub fn set_member(&self, channel: &str, member: bool) {
        let mut st = lock(&self.state);
        if let Some(c) = st.channels.iter_mut().find(|c| c.id == channel) {
            c.is_member = member;
        }
    }

    /// Archives the channel (`is_archived` when posting).
    pub fn archive_channel(&self, channel: &str) {
        let mut st = lock(&self.state);
        if let Some(c) = st.channels.iter_mut().find(|c| c.id == channel) {
            c.is_archived = true;
        }
    }

    /// `chat.postEphemeral` to `user` in `channel` answers `user_not_in_channel`.
    pub fn set_user_not_in_channel(&self, channel: &str, user: &str) {
        lock(&self.state)
            .not_in_channel
            .insert((channel.to_string(), user.to_string()));
    }

    /// A trigger id as Slack puts in slash commands and interactions, valid for 3 s and once.
    pub fn issue_trigger_id(&self) -> String {
        self.issue_trigger_id_aged(Duration::ZERO)
    }

    /// A trigger id issued `age` ago (older than [`TRIGGER_TTL`] → already expired).
    pub fn issue_trigger_id_aged(&self, age: Duration) -> String {
        let mut st = lock(&self.state);
        let n = st.id();
        let id = format!(
            "{}.{}.{}",
            398_738_663_015u64 + n,
            47_445_629_121u64,
            hex32(&format!("trigger-{n}"))
        );
        let issued = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        st.triggers.insert(
            id.clone(),
            Trigger {
                issued,
                used: false,
            },
        );
        id
    }

    /// A response URL on the fake (`http://127.0.0.1:PORT/response/<id>`), tied to nothing.
    pub fn new_response_url(&self) -> String {
        self.new_response_url_with(None, None)
    }

    /// A response URL for an interaction in `channel` (on the message `message_ts`, if any):
    /// `replace_original` / `delete_original` act on that message, `in_channel` answers post
    /// to the channel.
    pub fn new_response_url_for(&self, channel: &str, message_ts: Option<&str>) -> String {
        self.new_response_url_with(Some(channel), message_ts)
    }

    fn new_response_url_with(&self, channel: Option<&str>, message_ts: Option<&str>) -> String {
        let mut st = lock(&self.state);
        let n = st.id();
        let id = format!("{TEAM_ID}-{n}-{}", hex32(&format!("response-{n}")));
        st.responses.insert(
            id.clone(),
            ResponseUrl {
                channel: channel.map(str::to_string),
                message_ts: message_ts.map(str::to_string),
                ..ResponseUrl::default()
            },
        );
        format!("{}/response/{id}", self.server.url())
    }

    /// Makes a response URL answer 404 `expired_url` (Slack: after 30 minutes).
    pub fn expire_response_url(&self, url_or_id: &str) {
        if let Some(r) = lock(&self.state).responses.get_mut(response_id(url_or_id)) {
            r.expired = true;
        }
    }

    // ---- scripted trouble ----

    /// The next `n` calls of `method` (after auth) answer 429 with `Retry-After: secs`.
    pub fn rate_limit_next(&self, method: &str, n: usize, retry_after_secs: u64) {
        let mut st = lock(&self.state);
        let q = st.rate_next.entry(method.to_string()).or_default();
        q.extend(std::iter::repeat_n(retry_after_secs, n));
    }

    /// At most `per_minute` accepted calls of `method` in any 60 s window; the others answer
    /// 429 with `Retry-After` = seconds until the oldest call leaves the window.
    pub fn tier_limit(&self, method: &str, per_minute: usize) {
        lock(&self.state)
            .tiers
            .insert(method.to_string(), (per_minute, VecDeque::new()));
    }

    pub fn set_down(&self, mode: Availability) {
        lock(&self.state).availability = mode;
    }

    // ---- assertions ----

    /// The arguments of every call of `method`, in order, whatever the answer. Form and
    /// query arguments are strings, except `blocks`, `attachments`, `metadata` and `view`,
    /// decoded from their JSON strings when valid (so both encodings compare alike).
    pub fn calls(&self, method: &str) -> Vec<Value> {
        lock(&self.state)
            .calls
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, a)| a.clone())
            .collect()
    }

    pub fn call_count(&self, method: &str) -> usize {
        lock(&self.state)
            .calls
            .iter()
            .filter(|(m, _)| m == method)
            .count()
    }

    /// The channel's messages (top-level and replies) in ts order; `channel` is an ID or name.
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        let st = lock(&self.state);
        let Some(id) = st.resolve_channel(channel).map(|c| c.id.clone()) else {
            return Vec::new();
        };
        let mut out: Vec<Message> = st
            .messages
            .iter()
            .filter(|m| m.msg.channel == id)
            .map(|m| m.msg.clone())
            .collect();
        out.sort_by(|a, b| a.ts.cmp(&b.ts));
        out
    }

    /// One message.
    pub fn message(&self, channel: &str, ts: &str) -> Option<Message> {
        self.messages(channel).into_iter().find(|m| m.ts == ts)
    }

    /// The thread `ts` belongs to: parent first, then replies (empty if no such message).
    pub fn thread(&self, channel: &str, ts: &str) -> Vec<Message> {
        let st = lock(&self.state);
        let Some(id) = st.resolve_channel(channel).map(|c| c.id.clone()) else {
            return Vec::new();
        };
        st.thread_of(&id, ts)
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.msg.clone())
            .collect()
    }

    /// Ephemeral messages: `{channel, user, text, blocks, thread_ts, message_ts}`.
    pub fn ephemerals(&self) -> Vec<Value> {
        lock(&self.state).ephemerals.clone()
    }

    /// Views opened, as answered (with `id`).
    pub fn views(&self) -> Vec<Value> {
        lock(&self.state).views.clone()
    }

    /// Calls refused with `not_authed` or `invalid_auth`.
    pub fn auth_failures(&self) -> usize {
        lock(&self.state).auth_failures
    }

    /// The channel with this ID or name.
    pub fn channel(&self, id_or_name: &str) -> Option<Channel> {
        lock(&self.state).resolve_channel(id_or_name).cloned()
    }

    pub fn channels(&self) -> Vec<Channel> {
        lock(&self.state).channels.clone()
    }

    /// The bodies accepted by a response URL (the URL or its id), in order.
    pub fn responses(&self, url_or_id: &str) -> Vec<Value> {
        lock(&self.state)
            .responses
            .get(response_id(url_or_id))
            .map(|r| r.posts.clone())
            .unwrap_or_default()
    }
}

fn response_id(url_or_id: &str) -> &str {
    url_or_id
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(url_or_id)
}

// ---- request parsing ----

type Args = Map<String, Value>;

/// Fields that form bodies carry as JSON strings.
const JSON_FIELDS: [&str; 4] = ["blocks", "attachments", "metadata", "view"];

fn form_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn is_json(req: &Request) -> bool {
    req.header("content-type").is_some_and(|c| {
        c.trim()
            .to_ascii_lowercase()
            .starts_with("application/json")
    })
}

struct Parsed {
    args: Args,
    /// A `token` from a form body (Slack ignores one in a JSON body).
    form_token: Option<String>,
    warning: Option<&'static str>,
}

fn parse_args(req: &Request) -> Result<Parsed, &'static str> {
    let mut args = Args::new();
    for (k, v) in form_pairs(req.query().unwrap_or_default()) {
        args.insert(k, Value::String(v));
    }
    let mut form_token = None;
    let mut warning = None;
    if is_json(req) {
        let ct = req.header("content-type").unwrap_or_default();
        if !ct.to_ascii_lowercase().contains("charset") {
            warning = Some("missing_charset");
        }
        if !req.body.is_empty() {
            let v: Value = serde_json::from_slice(&req.body).map_err(|_| "invalid_json")?;
            let Value::Object(obj) = v else {
                return Err("json_not_object");
            };
            args.extend(obj);
        }
    } else if !req.body.is_empty() {
        for (k, v) in form_pairs(&req.body_text()) {
            if k == "token" {
                form_token = Some(v.clone());
            }
            args.insert(k, Value::String(v));
        }
    }
    Ok(Parsed {
        args,
        form_token,
        warning,
    })
}

/// The arguments as recorded in [`FakeSlack::calls`].
fn normalized(args: &Args) -> Value {
    let mut out = args.clone();
    for f in JSON_FIELDS {
        if let Some(Value::String(s)) = out.get(f)
            && let Ok(v) = serde_json::from_str::<Value>(s)
        {
            out.insert(f.to_string(), v);
        }
    }
    Value::Object(out)
}

fn arg_str(args: &Args, name: &str) -> Option<String> {
    match args.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn arg_nonempty(args: &Args, name: &str) -> Option<String> {
    arg_str(args, name).filter(|s| !s.is_empty())
}

fn arg_bool(args: &Args, name: &str) -> bool {
    match args.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "1"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// A JSON argument: as is in JSON bodies, decoded from its string in form bodies.
/// `Ok(None)`: absent. `Err(())`: a string that is not JSON.
fn arg_json(args: &Args, name: &str) -> Result<Option<Value>, ()> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
        Some(v) => Ok(Some(v.clone())),
    }
}

fn is_ts(s: &str) -> bool {
    s.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.len() == 6
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

// ---- answers ----

struct ApiError {
    code: &'static str,
    messages: Vec<String>,
}

fn api_err(code: &'static str) -> ApiError {
    ApiError {
        code,
        messages: Vec::new(),
    }
}

fn invalid_arguments(messages: Vec<String>) -> ApiError {
    ApiError {
        code: "invalid_arguments",
        messages,
    }
}

type Reply = Result<Value, ApiError>;

fn slack_answer(reply: Reply, warning: Option<&str>) -> Response {
    let mut body = match reply {
        Ok(Value::Object(mut m)) => {
            let mut out = Map::new();
            out.insert("ok".into(), json!(true));
            out.append(&mut m);
            Value::Object(out)
        }
        Ok(_) => json!({"ok": true}),
        Err(e) => {
            let mut v = json!({"ok": false, "error": e.code});
            if !e.messages.is_empty() {
                v["response_metadata"] = json!({"messages": e.messages});
            }
            v
        }
    };
    if let Some(w) = warning {
        body["warning"] = json!(w);
        let rm = body
            .as_object_mut()
            .expect("an object")
            .entry("response_metadata")
            .or_insert_with(|| json!({}));
        rm["warnings"] = json!([w]);
    }
    Response::json(200, &body)
}

fn slack_error(status: u16, code: &str) -> Response {
    Response::json(status, &json!({"ok": false, "error": code}))
}

fn rate_limited(secs: u64) -> Response {
    slack_error(429, "ratelimited").with_header("retry-after", &secs.to_string())
}

// ---- dispatch ----

const METHODS: [&str; 9] = [
    "auth.test",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "views.open",
    "conversations.create",
    "conversations.replies",
    "conversations.info",
    "conversations.list",
];

fn api_method(req: &Request) -> Option<&str> {
    req.path().strip_prefix("/api/").filter(|m| !m.is_empty())
}

fn record_call(st: &mut State, req: &Request) {
    if let Some(method) = api_method(req) {
        let args = parse_args(req)
            .map(|p| normalized(&p.args))
            .unwrap_or_else(|_| json!({"_raw": req.body_text()}));
        st.calls.push((method.to_string(), args));
    }
}

fn handle(state: &Mutex<State>, req: &Request) -> Response {
    let mut st = lock(state);
    if st.availability == Availability::ServerErrors {
        record_call(&mut st, req);
        return Response::text(500, "text/html; charset=utf-8", SERVER_ERROR_BODY);
    }
    if let Some(id) = req.path().strip_prefix("/response/") {
        return response_url(&mut st, id, req);
    }
    let Some(method) = api_method(req).map(str::to_string) else {
        return Response::text(404, "text/plain", "Not Found");
    };
    record_call(&mut st, req);
    if !METHODS.contains(&method.as_str()) {
        return Response::json(
            404,
            &json!({"ok": false, "error": "unknown_method", "req_method": method}),
        );
    }
    let parsed = match parse_args(req) {
        Ok(p) => p,
        Err(code) => return slack_answer(Err(api_err(code)), None),
    };
    if let Err(code) = authenticate(&st, req, parsed.form_token.as_deref()) {
        st.auth_failures += 1;
        return slack_answer(Err(api_err(code)), parsed.warning);
    }
    if let Some(secs) = st.rate_next.get_mut(&method).and_then(VecDeque::pop_front) {
        return rate_limited(secs);
    }
    if let Some((limit, window)) = st.tiers.get_mut(&method) {
        let now = Instant::now();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            window.pop_front();
        }
        if window.len() >= *limit {
            let oldest = *window.front().expect("a full window");
            let left = Duration::from_secs(60).saturating_sub(now.duration_since(oldest));
            return rate_limited(left.as_secs().max(1));
        }
        window.push_back(now);
    }
    let args = &parsed.args;
    let reply = match method.as_str() {
        "auth.test" => Ok(json!({
            "url": format!("https://{TEAM_DOMAIN}.slack.com/"),
            "team": "Recall Test",
            "user": "recall",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": false,
        })),
        "chat.postMessage" => post_message(&mut st, args),
        "chat.update" => update(&mut st, args),
        "chat.postEphemeral" => post_ephemeral(&mut st, args),
        "views.open" => views_open(&mut st, args),
        "conversations.create" => create_channel(&mut st, args),
        "conversations.replies" => replies(&st, args),
        "conversations.info" => conversation_info(&st, args),
        "conversations.list" => conversation_list(&st, args),
        _ => unreachable!("METHODS lists every method"),
    };
    slack_answer(reply, parsed.warning)
}

fn authenticate(st: &State, req: &Request, form_token: Option<&str>) -> Result<(), &'static str> {
    let bearer = req.header("authorization").and_then(|h| {
        let h = h.trim();
        let (scheme, tok) = h.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| tok.trim())
    });
    let token = bearer
        .filter(|t| !t.is_empty())
        .or(form_token.filter(|t| !t.is_empty()));
    match token {
        None => Err("not_authed"),
        Some(t) if t == st.token => Ok(()),
        Some(_) => Err("invalid_auth"),
    }
}

// ---- methods ----

fn check_blocks(args: &Args, max: usize) -> Result<Option<Value>, ApiError> {
    let Ok(blocks) = arg_json(args, "blocks") else {
        return Err(api_err("invalid_blocks_format"));
    };
    let Some(blocks) = blocks else {
        return Ok(None);
    };
    let Some(list) = blocks.as_array() else {
        return Err(api_err("invalid_blocks_format"));
    };
    if list.len() > max {
        return Err(ApiError {
            code: "invalid_blocks",
            messages: vec![format!(
                "[ERROR] no more than {max} items allowed [json-pointer:/blocks]"
            )],
        });
    }
    for (i, b) in list.iter().enumerate() {
        if !b.get("type").is_some_and(Value::is_string) {
            return Err(ApiError {
                code: "invalid_blocks",
                messages: vec![format!(
                    "[ERROR] missing required field: type [json-pointer:/blocks/{i}]"
                )],
            });
        }
    }
    Ok(Some(blocks))
}

fn check_metadata(args: &Args) -> Result<Option<Value>, ApiError> {
    let Ok(md) = arg_json(args, "metadata") else {
        return Err(api_err("invalid_metadata_format"));
    };
    let Some(md) = md else { return Ok(None) };
    let ok = md
        .get("event_type")
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
        && md.get("event_payload").is_some_and(Value::is_object);
    if ok {
        Ok(Some(md))
    } else {
        Err(api_err("invalid_metadata_format"))
    }
}

fn has_content(text: &str, blocks: &Option<Value>) -> bool {
    !text.is_empty()
        || blocks
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|b| !b.is_empty())
}

fn post_message(st: &mut State, args: &Args) -> Reply {
    let channel = arg_nonempty(args, "channel")
        .and_then(|c| st.resolve_channel(&c).cloned())
        .ok_or_else(|| api_err("channel_not_found"))?;
    if channel.is_archived {
        return Err(api_err("is_archived"));
    }
    if !channel.is_member {
        return Err(api_err("not_in_channel"));
    }
    let blocks = check_blocks(args, MAX_BLOCKS)?;
    let text = arg_str(args, "text").unwrap_or_default();
    if !has_content(&text, &blocks) {
        return Err(api_err("no_text"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(api_err("msg_too_long"));
    }
    let metadata = check_metadata(args)?;
    let thread_ts = match arg_nonempty(args, "thread_ts") {
        None => None,
        Some(t) if !is_ts(&t) => {
            return Err(ApiError {
                code: "invalid_thread_ts",
                messages: vec![format!("[ERROR] {t} is not a valid thread_ts")],
            });
        }
        Some(t) => {
            let i = st
                .find(&channel.id, &t)
                .ok_or_else(|| api_err("thread_not_found"))?;
            Some(st.messages[i].msg.thread_ts.clone().unwrap_or(t))
        }
    };
    let ts = st.next_ts();
    st.messages.push(Stored {
        msg: Message {
            channel: channel.id.clone(),
            ts: ts.clone(),
            thread_ts,
            text,
            blocks,
            metadata,
            edits: 0,
            history: Vec::new(),
        },
        edited_ts: None,
    });
    let message = st.message_json(st.messages.last().expect("just pushed"), true);
    Ok(json!({"channel": channel.id, "ts": ts, "message": message}))
}

/// Replaces what is given; `None` keeps the current value.
fn edit(
    st: &mut State,
    i: usize,
    text: Option<String>,
    blocks: Option<Value>,
    metadata: Option<Value>,
) {
    let edited = st.next_ts();
    let s = &mut st.messages[i];
    s.msg.history.push(Revision {
        text: s.msg.text.clone(),
        blocks: s.msg.blocks.clone(),
        metadata: s.msg.metadata.clone(),
    });
    if let Some(t) = text {
        s.msg.text = t;
    }
    if let Some(b) = blocks {
        s.msg.blocks = Some(b);
    }
    if let Some(m) = metadata {
        s.msg.metadata = Some(m);
    }
    s.msg.edits += 1;
    s.edited_ts = Some(edited);
}

fn update(st: &mut State, args: &Args) -> Reply {
    let channel = arg_nonempty(args, "channel")
        .filter(|c| st.channel_by_id(c).is_some())
        .ok_or_else(|| api_err("channel_not_found"))?;
    let ts = arg_nonempty(args, "ts").ok_or_else(|| api_err("message_not_found"))?;
    let i = st
        .find(&channel, &ts)
        .ok_or_else(|| api_err("message_not_found"))?;
    let blocks = check_blocks(args, MAX_BLOCKS)?;
    let text = arg_str(args, "text");
    if text.as_deref().is_none_or(str::is_empty) && blocks.is_none() {
        return Err(api_err("no_text"));
    }
    if text
        .as_ref()
        .is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS)
    {
        return Err(api_err("msg_too_long"));
    }
    let metadata = check_metadata(args)?;
    edit(st, i, text, blocks, metadata);
    let s = &st.messages[i];
    Ok(json!({
        "channel": channel,
        "ts": ts,
        "text": s.msg.text,
        "message": st.message_json(s, true),
    }))
}

fn post_ephemeral(st: &mut State, args: &Args) -> Reply {
    let channel = arg_nonempty(args, "channel")
        .and_then(|c| st.resolve_channel(&c).cloned())
        .ok_or_else(|| api_err("channel_not_found"))?;
    let user = arg_nonempty(args, "user").ok_or_else(|| api_err("user_not_found"))?;
    if st
        .not_in_channel
        .contains(&(channel.id.clone(), user.clone()))
    {
        return Err(api_err("user_not_in_channel"));
    }
    let blocks = check_blocks(args, MAX_BLOCKS)?;
    let text = arg_str(args, "text").unwrap_or_default();
    if !has_content(&text, &blocks) {
        return Err(api_err("no_text"));
    }
    let message_ts = st.next_ts();
    st.ephemerals.push(json!({
        "channel": channel.id,
        "user": user,
        "text": text,
        "blocks": blocks,
        "thread_ts": arg_nonempty(args, "thread_ts"),
        "message_ts": message_ts,
    }));
    Ok(json!({"message_ts": message_ts}))
}

fn plain_text_ok(v: Option<&Value>, max: usize) -> bool {
    v.is_some_and(|t| {
        t.get("type").and_then(Value::as_str) == Some("plain_text")
            && t.get("text")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty() && s.chars().count() <= max)
    })
}

fn check_view(view: &Value) -> Result<(), ApiError> {
    let err = |m: &str| invalid_arguments(vec![format!("[ERROR] {m}")]);
    if !view.is_object() {
        return Err(err("view must be an object [json-pointer:/view]"));
    }
    if view.get("type").and_then(Value::as_str) != Some("modal") {
        return Err(err("must be a modal view [json-pointer:/view/type]"));
    }
    if !plain_text_ok(view.get("title"), 24) {
        return Err(err(
            "title must be a plain_text object of at most 24 characters [json-pointer:/view/title]",
        ));
    }
    let Some(blocks) = view.get("blocks").and_then(Value::as_array) else {
        return Err(err("missing required field: blocks [json-pointer:/view]"));
    };
    if blocks.len() > MAX_MODAL_BLOCKS {
        return Err(err(&format!(
            "no more than {MAX_MODAL_BLOCKS} items allowed [json-pointer:/view/blocks]"
        )));
    }
    if let Some(i) = blocks
        .iter()
        .position(|b| !b.get("type").is_some_and(Value::is_string))
    {
        return Err(err(&format!(
            "missing required field: type [json-pointer:/view/blocks/{i}]"
        )));
    }
    let has_input = blocks
        .iter()
        .any(|b| b.get("type").and_then(Value::as_str) == Some("input"));
    if has_input && !plain_text_ok(view.get("submit"), 24) {
        return Err(err(
            "must provide a submit text when using input blocks [json-pointer:/view]",
        ));
    }
    for (field, max) in [("private_metadata", 3000), ("callback_id", 255)] {
        if let Some(v) = view.get(field) {
            if !v.is_string() {
                return Err(err(&format!(
                    "must be a string [json-pointer:/view/{field}]"
                )));
            }
            if v.as_str().unwrap_or_default().chars().count() > max {
                return Err(err(&format!(
                    "must be less than {} characters [json-pointer:/view/{field}]",
                    max + 1
                )));
            }
        }
    }
    Ok(())
}

fn views_open(st: &mut State, args: &Args) -> Reply {
    let Ok(Some(view)) = arg_json(args, "view") else {
        return Err(invalid_arguments(vec![
            "[ERROR] missing required field: view".to_string(),
        ]));
    };
    check_view(&view)?;
    let trigger = arg_nonempty(args, "trigger_id").ok_or_else(|| api_err("invalid_trigger_id"))?;
    let t = st
        .triggers
        .get_mut(&trigger)
        .ok_or_else(|| api_err("invalid_trigger_id"))?;
    if t.used {
        return Err(api_err("exchanged_trigger_id"));
    }
    if t.issued.elapsed() > TRIGGER_TTL {
        return Err(api_err("expired_trigger_id"));
    }
    t.used = true;
    let n = st.id();
    let id = format!("V0{n:08}");
    let s = |k: &str| view.get(k).cloned().unwrap_or_else(|| json!(""));
    let opened = json!({
        "id": id,
        "team_id": TEAM_ID,
        "type": "modal",
        "title": view["title"],
        "close": view.get("close").cloned().unwrap_or(Value::Null),
        "submit": view.get("submit").cloned().unwrap_or(Value::Null),
        "blocks": view["blocks"],
        "private_metadata": s("private_metadata"),
        "callback_id": s("callback_id"),
        "external_id": s("external_id"),
        "state": {"values": {}},
        "hash": format!("{}.{}", unix_now(), &hex32(&id)[..8]),
        "clear_on_close": view.get("clear_on_close").cloned().unwrap_or(json!(false)),
        "notify_on_close": view.get("notify_on_close").cloned().unwrap_or(json!(false)),
        "root_view_id": id,
        "previous_view_id": null,
        "app_id": APP_ID,
        "app_installed_team_id": TEAM_ID,
        "bot_id": BOT_ID,
    });
    st.views.push(opened.clone());
    Ok(json!({"view": opened}))
}

/// Slack's checks on a new channel name, in its order.
fn check_channel_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("invalid_name_required");
    }
    if name.chars().count() > 80 {
        return Err("invalid_name_maxlength");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err("invalid_name_specials");
    }
    if name.chars().all(|c| c == '-' || c == '_') {
        return Err("invalid_name_punctuation");
    }
    Ok(())
}

fn channel_json(c: &Channel) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "is_channel": true,
        "is_group": false,
        "is_im": false,
        "is_mpim": false,
        "is_private": c.is_private,
        "created": c.created,
        "creator": BOT_USER_ID,
        "is_archived": c.is_archived,
        "is_general": false,
        "unlinked": 0,
        "name_normalized": c.name,
        "is_shared": false,
        "is_ext_shared": false,
        "is_org_shared": false,
        "pending_shared": [],
        "is_pending_ext_shared": false,
        "is_member": c.is_member,
        "last_read": "0000000000.000000",
        "topic": {"value": "", "creator": "", "last_set": 0},
        "purpose": {"value": "", "creator": "", "last_set": 0},
        "previous_names": [],
        "priority": 0,
    })
}

fn create_channel(st: &mut State, args: &Args) -> Reply {
    let name = arg_str(args, "name").unwrap_or_default();
    check_channel_name(&name).map_err(api_err)?;
    if st.channels.iter().any(|c| c.name == name) {
        return Err(api_err("name_taken"));
    }
    let n = st.id();
    let channel = Channel {
        id: format!("C0{n:08}"),
        name,
        is_private: arg_bool(args, "is_private"),
        is_member: true,
        is_archived: false,
        created: unix_now(),
    };
    let out = channel_json(&channel);
    st.channels.push(channel);
    Ok(json!({"channel": out}))
}

fn replies(st: &State, args: &Args) -> Reply {
    let channel = arg_nonempty(args, "channel")
        .filter(|c| st.channel_by_id(c).is_some())
        .ok_or_else(|| api_err("channel_not_found"))?;
    let ts = arg_nonempty(args, "ts").ok_or_else(|| api_err("thread_not_found"))?;
    let thread = st
        .thread_of(&channel, &ts)
        .ok_or_else(|| api_err("thread_not_found"))?;
    let with_metadata = arg_bool(args, "include_all_metadata");
    let limit = arg_str(args, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(1000)
        .min(1000);
    let start = match arg_nonempty(args, "cursor") {
        None => 0,
        Some(c) => {
            let from = decode_cursor(&c).ok_or_else(|| api_err("invalid_cursor"))?;
            thread
                .iter()
                .position(|m| m.msg.ts == from)
                .ok_or_else(|| api_err("invalid_cursor"))?
        }
    };
    let page: Vec<Value> = thread
        .iter()
        .skip(start)
        .take(limit)
        .map(|m| st.message_json(m, with_metadata))
        .collect();
    let next = thread.get(start + limit);
    let mut out = json!({"messages": page, "has_more": next.is_some()});
    if let Some(n) = next {
        out["response_metadata"] = json!({"next_cursor": encode_cursor(&n.msg.ts)});
    }
    Ok(out)
}

/// Can the bot see the channel? (A private channel only when it is a member.)
fn visible(c: &Channel) -> bool {
    !c.is_private || c.is_member
}

fn conversation_info(st: &State, args: &Args) -> Reply {
    let c = arg_nonempty(args, "channel")
        .and_then(|id| st.channel_by_id(&id))
        .filter(|c| visible(c))
        .ok_or_else(|| api_err("channel_not_found"))?;
    let mut out = channel_json(c);
    if arg_bool(args, "include_num_members") {
        out["num_members"] = json!(u32::from(c.is_member));
    }
    if arg_bool(args, "include_locale") {
        out["locale"] = json!("en-US");
    }
    Ok(json!({"channel": out}))
}

const CONVERSATION_TYPES: [&str; 4] = ["public_channel", "private_channel", "mpim", "im"];

fn conversation_list(st: &State, args: &Args) -> Reply {
    let types = arg_nonempty(args, "types").unwrap_or_else(|| "public_channel".into());
    let types: Vec<&str> = types.split(',').map(str::trim).collect();
    if types.iter().any(|t| !CONVERSATION_TYPES.contains(t)) {
        return Err(api_err("invalid_types"));
    }
    let (public, private) = (
        types.contains(&"public_channel"),
        types.contains(&"private_channel"),
    );
    let limit = match arg_nonempty(args, "limit") {
        None => 100,
        Some(l) => l
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| api_err("invalid_limit"))?,
    };
    let exclude_archived = arg_bool(args, "exclude_archived");
    let listed: Vec<&Channel> = st
        .channels
        .iter()
        .filter(|c| visible(c))
        .filter(|c| if c.is_private { private } else { public })
        .filter(|c| !(exclude_archived && c.is_archived))
        .collect();
    let start = match arg_nonempty(args, "cursor") {
        None => 0,
        Some(cur) => {
            let from = decode_list_cursor(&cur).ok_or_else(|| api_err("invalid_cursor"))?;
            listed
                .iter()
                .position(|c| c.id == from)
                .ok_or_else(|| api_err("invalid_cursor"))?
        }
    };
    let page: Vec<Value> = listed
        .iter()
        .skip(start)
        .take(limit)
        .map(|c| channel_json(c))
        .collect();
    let next = listed
        .get(start.saturating_add(limit))
        .map(|c| encode_list_cursor(&c.id))
        .unwrap_or_default();
    Ok(json!({"channels": page, "response_metadata": {"next_cursor": next}}))
}

fn encode_list_cursor(id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("next_channel:{id}"))
}

fn decode_list_cursor(c: &str) -> Option<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(c).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("next_channel:")
        .map(str::to_string)
}

fn encode_cursor(ts: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("next_ts:{ts}"))
}

fn decode_cursor(c: &str) -> Option<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(c).ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("next_ts:")
        .map(str::to_string)
}

// ---- response URLs ----

fn response_url(st: &mut State, id: &str, req: &Request) -> Response {
    let Some(r) = st.responses.get(id) else {
        return slack_error(404, "expired_url");
    };
    if r.expired {
        return slack_error(404, "expired_url");
    }
    if r.posts.len() >= RESPONSE_URL_MAX_POSTS {
        return slack_error(404, "used_url");
    }
    let Some(body) = req.json().filter(Value::is_object) else {
        return slack_error(400, "invalid_payload");
    };
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let blocks = body.get("blocks").filter(|b| b.is_array()).cloned();
    let delete = body.get("delete_original").and_then(Value::as_bool) == Some(true);
    if !delete && !has_content(&text, &blocks) {
        return slack_error(400, "no_text");
    }
    let (channel, message_ts) = (r.channel.clone(), r.message_ts.clone());
    let replace = body.get("replace_original").and_then(Value::as_bool) == Some(true);
    let in_channel = body.get("response_type").and_then(Value::as_str) == Some("in_channel");
    if let Some(ch) = &channel {
        let target = message_ts.as_deref().and_then(|ts| st.find(ch, ts));
        if delete {
            if let Some(i) = target {
                st.messages.remove(i);
            }
        } else if replace {
            if let Some(i) = target {
                edit(st, i, Some(text), Some(blocks.unwrap_or(json!([]))), None);
            }
        } else if in_channel {
            let ts = st.next_ts();
            st.messages.push(Stored {
                msg: Message {
                    channel: ch.clone(),
                    ts,
                    thread_ts: None,
                    text,
                    blocks,
                    metadata: None,
                    edits: 0,
                    history: Vec::new(),
                },
                edited_ts: None,
            });
        }
    }
    st.responses
        .get_mut(id)
        .expect("checked above")
        .posts
        .push(body);
    Response::json(200, &json!({"ok": true}))
}

// ---- the signer: Slack calling Recall ----

/// HMAC-SHA256 (RFC 2104 with a 64-byte block).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// Slack's request signature: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
pub fn sign(signing_secret: &str, timestamp: i64, body: &str) -> String {
    let base = format!("v0:{timestamp}:{body}");
    format!(
        "v0={}",
        hex::encode(hmac_sha256(signing_secret.as_bytes(), base.as_bytes()))
    )
}

/// What Slack's form encoding leaves alone (PHP `urlencode`): letters, digits, `-_.`.
const FORM: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// One form value, percent-encoded with `+` for spaces, like Slack.
pub fn form_encode(s: &str) -> String {
    utf8_percent_encode(s, FORM).to_string().replace("%20", "+")
}

/// `k=v&k=v…` in the given order.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Parses a form body back into pairs (for assertions).
pub fn parse_form(body: &str) -> Vec<(String, String)> {
    form_pairs(body)
}

fn channel_name_for(channel_id: &str) -> String {
    if channel_id == DEFAULT_CHANNEL_ID {
        DEFAULT_CHANNEL_NAME.to_string()
    } else if channel_id.starts_with('D') {
        "directmessage".to_string()
    } else {
        channel_id.to_ascii_lowercase()
    }
}

/// A slash command as Slack posts it (form-encoded, Slack's field order).
pub fn slash_command_body(
    command: &str,
    text: &str,
    user_id: &str,
    user_name: &str,
    channel_id: &str,
    response_url: &str,
    trigger_id: &str,
) -> String {
    let channel_name = channel_name_for(channel_id);
    form_body(&[
        ("token", VERIFICATION_TOKEN),
        ("team_id", TEAM_ID),
        ("team_domain", TEAM_DOMAIN),
        ("channel_id", channel_id),
        ("channel_name", &channel_name),
        ("user_id", user_id),
        ("user_name", user_name),
        ("command", command),
        ("text", text),
        ("api_app_id", APP_ID),
        ("is_enterprise_install", "false"),
        ("response_url", response_url),
        ("trigger_id", trigger_id),
    ])
}

/// An interaction as Slack posts it: `payload=<urlencoded JSON>`.
pub fn interaction_body(payload: &Value) -> String {
    form_body(&[("payload", &payload.to_string())])
}

fn action_ts() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

fn user_json(user_id: &str, user_name: &str) -> Value {
    json!({"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID})
}

/// A `block_actions` payload for a button click on a bot message, shaped like Slack's.
#[allow(clippy::too_many_arguments)]
pub fn block_actions_payload(
    user_id: &str,
    user_name: &str,
    channel_id: &str,
    message_ts: &str,
    action_id: &str,
    value: &str,
    response_url: &str,
    trigger_id: &str,
) -> Value {
    json!({
        "type": "block_actions",
        "user": user_json(user_id, user_name),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": false,
        },
        "trigger_id": trigger_id,
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": {"id": channel_id, "name": channel_name_for(channel_id)},
        "message": {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "ts": message_ts,
            "text": "",
            "blocks": [],
        },
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [{
            "action_id": action_id,
            "block_id": "actions",
            "text": {"type": "plain_text", "text": action_id, "emoji": true},
            "value": value,
            "type": "button",
            "action_ts": action_ts(),
        }],
    })
}

/// A `view_submission` payload (a modal's submit), shaped like Slack's. `state_values` is
/// `view.state.values` (`{block_id: {action_id: {type, value…}}}`).
pub fn view_submission_payload(
    user_id: &str,
    callback_id: &str,
    private_metadata: &str,
    state_values: Value,
) -> Value {
    let view_id = format!("V0{}", &hex32(callback_id)[..8].to_ascii_uppercase());
    json!({
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": user_json(user_id, &user_id.to_ascii_lowercase()),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": format!("{}.{}.{}", 398_738_663_015u64, 47_445_629_121u64, hex32(&format!("vs-{callback_id}-{}", action_ts()))),
        "view": {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": "modal",
            "blocks": [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": state_values},
            "hash": format!("{}.{}", unix_now(), &hex32(&view_id)[..8]),
            "title": {"type": "plain_text", "text": "Recall", "emoji": true},
            "clear_on_close": false,
            "notify_on_close": false,
            "close": null,
            "submit": {"type": "plain_text", "text": "Submit", "emoji": true},
            "previous_view_id": null,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "external_id": "",
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        },
        "response_urls": [],
        "is_enterprise_install": false,
        "enterprise": null,
    })
}

/// Now, in Unix seconds (what Slack puts in `X-Slack-Request-Timestamp`).
pub fn now_timestamp() -> i64 {
    unix_now()
}

/// Posts `body` signed like Slack (timestamp now). Returns status, headers and body.
pub async fn post_signed(
    url: &str,
    secret: &str,
    body: &str,
    content_type: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let ts = now_timestamp();
    let sig = sign(secret, ts, body);
    post_with_signature(url, Some(&ts.to_string()), Some(&sig), body, content_type).await
}

/// Posts `body` with exactly these `X-Slack-Request-Timestamp` / `X-Slack-Signature` headers
/// (`None`: header left out), to forge, replay or omit them.
pub async fn post_with_signature(
    url: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &str,
    content_type: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client");
    let mut rb = client
        .post(url)
        .header("content-type", content_type)
        .header("user-agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
        .body(body.to_string());
    if let Some(ts) = timestamp {
        rb = rb.header("x-slack-request-timestamp", ts);
    }
    if let Some(sig) = signature {
        rb = rb.header("x-slack-signature", sig);
    }
    let resp = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    (status, headers, text)
}
