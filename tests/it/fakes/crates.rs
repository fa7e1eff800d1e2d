//! Contract fake of the crates.io web API (cargo's registry web API plus crates.io's own
//! endpoints), built on [`FakeServer`]. Shapes, statuses and error wording follow
//! crates.io's source (`rust-lang/crates.io`: controllers/version/{yank,update}.rs,
//! controllers/token.rs, controllers/trustpub/github_configs/*, auth.rs, util/errors.rs)
//! and cargo's `registry-web-api.md`:
//!
//! * errors are `{"errors":[{"detail":"…"}]}`; unknown crate → 404 "crate `x` does not
//!   exist"; unknown version → 404 "crate `x` does not have a version `v`";
//! * the version endpoints look the crate/version up before authenticating (404 first),
//!   PATCH validates its body before authenticating too;
//! * auth is the raw token in `Authorization`: none → 403 [`AUTH_REQUIRED`]; not
//!   `cio`-prefixed → 401 [`TOKEN_FORMAT_ERROR`]; unknown/revoked → 403 [`AUTH_FAILED`];
//!   scope mismatch → 403 [`SCOPE_DENIED`]; not an owner → 403 [`NOT_OWNER_YANK`] (yank) or
//!   400 [`NOT_OWNER`] (trusted publishing);
//! * no `User-Agent` → 403 with crates.io's policy text (plain text);
//! * `GET /api/v1/me/tokens` is cookie-only on crates.io: an API token gets 403
//!   [`WEBSITE_ONLY`] unless [`FakeCrates::set_token_listing`] enables it (a registry that
//!   allows it);
//! * endpoint scopes: yank/unyank/PATCH need `yank`, trusted publishing needs
//!   `trusted-publishing`, and endpoints without a scope (`/tokens/current`,
//!   `/me/tokens/*`) refuse scoped tokens — all per `AuthCheck` in crates.io's `auth.rs`.
//!
//! Rate limiting is scripted: [`FakeCrates::rate_limit_next`] queues crates.io's 429.
//! State is seeded through the `add_*` methods and read back through the accessors.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use super::{FakeServer, Fault, Request, Response};

/// No credentials at all.
pub const AUTH_REQUIRED: &str = "this action requires authentication";
/// Unknown or revoked token.
pub const AUTH_FAILED: &str = "authentication failed";
/// A cookie-only endpoint reached with an API token.
pub const WEBSITE_ONLY: &str = "this action can only be performed on the crates.io website";
/// Token scopes don't cover the action.
pub const SCOPE_DENIED: &str =
    "this token does not have the required permissions to perform this action";
/// Yank/unyank by a non-owner.
pub const NOT_OWNER_YANK: &str = "must already be an owner to yank or unyank";
/// Trusted publishing by a non-owner (status 400 on crates.io).
pub const NOT_OWNER: &str = "You are not an owner of this crate";
/// The rate-limit detail prefix for yank/unyank.
pub const YANK_RATE_LIMITED: &str =
    "You have yanked or unyanked too many versions in a short period of time";
/// A token without crates.io's `cio` prefix (status 401).
pub const TOKEN_FORMAT_ERROR: &str = "The given API token does not match the format used by crates.io. Tokens generated before 2020-07-14 were generated with an insecure random number generator, and have been revoked. You can generate a new token at https://crates.io/me. For more information please see https://blog.rust-lang.org/2020/07/14/crates-io-security-advisory.html. We apologize for any inconvenience.";
/// crates.io's answer to a request without `User-Agent` (403, plain text).
pub const USER_AGENT_REQUIRED: &str = "We require that all requests include a `User-Agent` header.  To allow us to determine the impact your bot has on our service, we ask that your user agent actually identify your bot, and not just report the HTTP client library you're using.  Including contact information will also reduce the chance that we will need to take action against your bot.";

/// How the fake answers crates.io's `PATCH /api/v1/crates/{name}/{version}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchSupport {
    /// crates.io: supported.
    Supported,
    /// A registry whose router has the GET but no PATCH: `405` with an empty body.
    MethodNotAllowed,
    /// A registry answering unknown routes with a generic `404` (empty body).
    NotFound,
}

/// A seeded version, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeVersion {
    pub id: u64,
    pub num: String,
    pub yanked: bool,
    pub yank_message: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// `"publish"`, `"yank"`, `"unyank"` in order, with the token id that did it.
    pub audit: Vec<(String, Option<u64>)>,
}

/// A seeded API token.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeToken {
    pub id: u64,
    pub user_id: u64,
    pub name: String,
    pub secret: String,
    pub revoked: bool,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub crate_scopes: Option<Vec<String>>,
    pub endpoint_scopes: Option<Vec<String>>,
}

/// A seeded trusted-publishing (GitHub) configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeGithubConfig {
    pub id: u64,
    pub krate: String,
    pub repository_owner: String,
    pub repository_owner_id: u64,
    pub repository_name: String,
    pub workflow_filename: String,
    pub environment: Option<String>,
    pub created_at: String,
}

#[derive(Debug)]
struct FakeCrate {
    name: String,
    owners: Vec<u64>,
    versions: Vec<FakeVersion>,
}

#[derive(Debug)]
struct State {
    users: Vec<(u64, String)>,
    crates: Vec<FakeCrate>,
    tokens: Vec<FakeToken>,
    configs: Vec<FakeGithubConfig>,
    next_id: u64,
    patch: PatchSupport,
    token_listing: bool,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// crates.io's lookup key: case-, `-`/`_`-insensitive.
fn canon(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn err(status: u16, detail: &str) -> Response {
    Response::json(status, &json!({"errors": [{"detail": detail}]}))
}

fn crate_not_found(name: &str) -> Response {
    err(404, &format!("crate `{name}` does not exist"))
}

fn version_not_found(name: &str, version: &str) -> Response {
    err(
        404,
        &format!("crate `{name}` does not have a version `{version}`"),
    )
}

fn not_found() -> Response {
    err(404, "Not Found")
}

fn method_not_allowed(allow: &str) -> Response {
    Response::empty(405).with_header("allow", allow)
}

/// A running fake crates.io.
pub struct FakeCrates {
    server: FakeServer,
    state: Arc<Mutex<State>>,
}

impl FakeCrates {
    /// A fake behaving like crates.io (PATCH supported, token listing website-only).
    pub async fn start() -> Self {
        Self::start_with(PatchSupport::Supported).await
    }

    /// A fake behaving like a private registry without crates.io's PATCH (`405`).
    pub async fn start_private() -> Self {
        Self::start_with(PatchSupport::MethodNotAllowed).await
    }

    pub async fn start_with(patch: PatchSupport) -> Self {
        let state = Arc::new(Mutex::new(State {
            users: Vec::new(),
            crates: Vec::new(),
            tokens: Vec::new(),
            configs: Vec::new(),
            next_id: 0,
            patch,
            token_listing: false,
        }));
        let s = state.clone();
        let server = FakeServer::start(move |req: &Request| handle(&s, req)).await;
        FakeCrates { server, state }
    }

    /// `http://127.0.0.1:PORT`: the API base to give a client.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// The underlying server: request log, counters, fault injection.
    pub fn server(&self) -> &FakeServer {
        &self.server
    }

    pub fn set_patch_support(&self, patch: PatchSupport) {
        lock(&self.state).patch = patch;
    }

    /// Let API tokens list tokens (crates.io doesn't).
    pub fn set_token_listing(&self, allowed: bool) {
        lock(&self.state).token_listing = allowed;
    }

    /// Adds a user; returns its id.
    pub fn add_user(&self, login: &str) -> u64 {
        let mut st = lock(&self.state);
        let id = st.id();
        st.users.push((id, login.to_string()));
        id
    }

    /// Adds a legacy (unscoped) token of `user_id`; returns the token id.
    pub fn add_token(&self, user_id: u64, name: &str, secret: &str) -> u64 {
        self.add_scoped_token(user_id, name, secret, None, None)
    }

    /// Adds a token with crate scopes (`"foo"`, `"foo-*"`) and endpoint scopes (`"yank"`,
    /// `"publish-update"`, `"trusted-publishing"`, …); `None` = unrestricted.
    pub fn add_scoped_token(
        &self,
        user_id: u64,
        name: &str,
        secret: &str,
        crate_scopes: Option<&[&str]>,
        endpoint_scopes: Option<&[&str]>,
    ) -> u64 {
        let mut st = lock(&self.state);
        let id = st.id();
        let owned = |v: Option<&[&str]>| v.map(|s| s.iter().map(|x| x.to_string()).collect());
        st.tokens.push(FakeToken {
            id,
            user_id,
            name: name.to_string(),
            secret: secret.to_string(),
            revoked: false,
            created_at: now(),
            last_used_at: None,
            crate_scopes: owned(crate_scopes),
            endpoint_scopes: owned(endpoint_scopes),
        });
        id
    }

    /// Adds a crate owned by `owner`.
    pub fn add_crate(&self, name: &str, owner: u64) {
        lock(&self.state).crates.push(FakeCrate {
            name: name.to_string(),
            owners: vec![owner],
            versions: Vec::new(),
        });
    }

    /// Adds an owner to a crate.
    pub fn add_owner(&self, name: &str, owner: u64) {
        let mut st = lock(&self.state);
        if let Some(c) = st.crates.iter_mut().find(|c| canon(&c.name) == canon(name)) {
            c.owners.push(owner);
        }
    }

    /// Adds a published version (`created_at` RFC 3339). Panics if the crate is unknown.
    pub fn add_version(&self, name: &str, num: &str, created_at: &str) {
        let mut st = lock(&self.state);
        let id = st.id();
        let c = st
            .crates
            .iter_mut()
            .find(|c| canon(&c.name) == canon(name))
            .unwrap_or_else(|| panic!("add_version: no crate {name}"));
        c.versions.push(FakeVersion {
            id,
            num: num.to_string(),
            yanked: false,
            yank_message: None,
            created_at: created_at.to_string(),
            updated_at: created_at.to_string(),
            audit: vec![("publish".to_string(), None)],
        });
    }

    /// Adds a GitHub trusted-publishing configuration; returns its id.
    pub fn add_github_config(
        &self,
        krate: &str,
        repository_owner: &str,
        repository_name: &str,
        workflow_filename: &str,
        environment: Option<&str>,
    ) -> u64 {
        let mut st = lock(&self.state);
        let id = st.id();
        st.configs.push(FakeGithubConfig {
            id,
            krate: krate.to_string(),
            repository_owner: repository_owner.to_string(),
            repository_owner_id: 4_200 + id,
            repository_name: repository_name.to_string(),
            workflow_filename: workflow_filename.to_string(),
            environment: environment.map(str::to_string),
            created_at: now(),
        });
        id
    }

    /// The stored version, if any.
    pub fn version(&self, name: &str, num: &str) -> Option<FakeVersion> {
        lock(&self.state)
            .crates
            .iter()
            .find(|c| canon(&c.name) == canon(name))?
            .versions
            .iter()
            .find(|v| v.num == num)
            .cloned()
    }

    /// Whether the stored version is yanked (`None`: no such version).
    pub fn is_yanked(&self, name: &str, num: &str) -> Option<bool> {
        self.version(name, num).map(|v| v.yanked)
    }

    /// The stored token, if any.
    pub fn token(&self, id: u64) -> Option<FakeToken> {
        lock(&self.state)
            .tokens
            .iter()
            .find(|t| t.id == id)
            .cloned()
    }

    /// Whether the token exists and is revoked.
    pub fn is_revoked(&self, id: u64) -> bool {
        self.token(id).is_some_and(|t| t.revoked)
    }

    /// The crate's GitHub configurations.
    pub fn github_configs(&self, krate: &str) -> Vec<FakeGithubConfig> {
        lock(&self.state)
            .configs
            .iter()
            .filter(|c| canon(&c.krate) == canon(krate))
            .cloned()
            .collect()
    }

    /// Queues crates.io's yank/unyank rate-limit answer (429, `Retry-After` = `retry_after`)
    /// for the next request matching `route`.
    pub fn rate_limit_next(&self, route: &str, retry_after: &str) {
        let detail = format!(
            "{YANK_RATE_LIMITED}. Please try again after {retry_after} or email help@crates.io to have your limit increased."
        );
        self.server.inject(
            route,
            Fault::Status {
                code: 429,
                retry_after: Some(retry_after.to_string()),
                body: json!({"errors": [{"detail": detail}]}).to_string(),
            },
        );
    }
}

fn token_json(t: &FakeToken) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "created_at": t.created_at,
        "last_used_at": t.last_used_at,
        "crate_scopes": t.crate_scopes,
        "endpoint_scopes": t.endpoint_scopes,
        "expired_at": null,
    })
}

fn version_json(st: &State, krate: &FakeCrate, v: &FakeVersion) -> Value {
    let base = format!("/api/v1/crates/{}/{}", krate.name, v.num);
    let login = |uid: Option<u64>| {
        uid.and_then(|u| st.users.iter().find(|(id, _)| *id == u))
            .map(|(id, l)| {
                json!({"id": id, "login": l, "name": null, "avatar": null,
                                  "url": format!("https://github.com/{l}")})
            })
            .unwrap_or(Value::Null)
    };
    let owner = krate.owners.first().copied();
    let audit: Vec<Value> = v
        .audit
        .iter()
        .map(|(action, tok)| {
            let uid = tok
                .and_then(|t| st.tokens.iter().find(|x| x.id == t))
                .map(|t| t.user_id)
                .or(owner);
            json!({"action": action, "user": login(uid), "time": v.updated_at})
        })
        .collect();
    json!({
        "id": v.id,
        "crate": krate.name,
        "num": v.num,
        "dl_path": format!("{base}/download"),
        "readme_path": format!("{base}/readme"),
        "updated_at": v.updated_at,
        "created_at": v.created_at,
        "downloads": 0,
        "features": {},
        "yanked": v.yanked,
        "yank_message": v.yank_message,
        "license": "MIT OR Apache-2.0",
        "links": {
            "dependencies": format!("{base}/dependencies"),
            "version_downloads": format!("{base}/downloads"),
            "authors": format!("{base}/authors"),
        },
        "crate_size": 1024,
        "published_by": login(owner),
        "audit_actions": audit,
        "checksum": "0".repeat(64),
        "rust_version": null,
        "has_lib": true,
        "bin_names": [],
    })
}

/// Authenticates the request: the index of the token in `st.tokens`.
fn authenticate(st: &mut State, req: &Request) -> Result<usize, Response> {
    let Some(h) = req.header("authorization") else {
        return Err(err(403, AUTH_REQUIRED));
    };
    if !h.starts_with("cio") {
        return Err(err(401, TOKEN_FORMAT_ERROR));
    }
    let idx = st
        .tokens
        .iter()
        .position(|t| t.secret == h && !t.revoked)
        .ok_or_else(|| err(403, AUTH_FAILED))?;
    st.tokens[idx].last_used_at = Some(now());
    Ok(idx)
}

/// crates.io's `AuthCheck` scope rules for an authenticated token.
fn check_scopes(
    t: &FakeToken,
    endpoint_scope: Option<&str>,
    krate: Option<&str>,
) -> Result<(), Response> {
    let endpoint_ok = match (&t.endpoint_scopes, endpoint_scope) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(scopes), Some(s)) => scopes.iter().any(|x| x == s),
    };
    let crate_ok = match (&t.crate_scopes, krate) {
        (None, _) => true,
        (Some(s), _) if s.is_empty() => true,
        (Some(_), None) => false,
        (Some(scopes), Some(name)) => scopes.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        }),
    };
    if endpoint_ok && crate_ok {
        Ok(())
    } else {
        Err(err(403, SCOPE_DENIED))
    }
}

fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn handle(state: &Mutex<State>, req: &Request) -> Response {
    if req
        .header("user-agent")
        .is_none_or(|ua| ua.trim().is_empty())
    {
        return Response::text(403, "text/plain; charset=utf-8", USER_AGENT_REQUIRED);
    }
    let mut st = lock(state);
    let segs: Vec<String> = req
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(decode_segment)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    match segs.as_slice() {
        ["api", "v1", "crates", name, version] => match m {
            "GET" | "HEAD" => get_version(&st, name, version),
            "PATCH" => match st.patch {
                PatchSupport::Supported => patch_version(&mut st, req, name, version),
                PatchSupport::MethodNotAllowed => method_not_allowed("GET,HEAD"),
                PatchSupport::NotFound => Response::empty(404),
            },
            _ => method_not_allowed("GET,HEAD,PATCH"),
        },
        ["api", "v1", "crates", name, version, "yank"] => match m {
            "DELETE" => modify_yank(&mut st, req, name, version, true),
            _ => method_not_allowed("DELETE"),
        },
        ["api", "v1", "crates", name, version, "unyank"] => match m {
            "PUT" => modify_yank(&mut st, req, name, version, false),
            _ => method_not_allowed("PUT"),
        },
        ["api", "v1", "tokens", "current"] => match m {
            "DELETE" => revoke_current(&mut st, req),
            _ => method_not_allowed("DELETE"),
        },
        ["api", "v1", "me", "tokens"] => match m {
            "GET" => list_tokens(&mut st, req),
            _ => method_not_allowed("GET,PUT"),
        },
        ["api", "v1", "me", "tokens", id] => match m {
            "GET" => find_token(&mut st, req, id),
            "DELETE" => revoke_token(&mut st, req, id),
            _ => method_not_allowed("GET,DELETE"),
        },
        ["api", "v1", "trusted_publishing", "github_configs"] => match m {
            "GET" => list_configs(&mut st, req),
            _ => method_not_allowed("GET,POST"),
        },
        ["api", "v1", "trusted_publishing", "github_configs", id] => match m {
            "DELETE" => delete_config(&mut st, req, id),
            _ => method_not_allowed("DELETE"),
        },
        _ => not_found(),
    }
}

fn find_crate(st: &State, name: &str) -> Result<usize, Response> {
    st.crates
        .iter()
        .position(|c| canon(&c.name) == canon(name))
        .ok_or_else(|| crate_not_found(name))
}

fn find_version(st: &State, name: &str, version: &str) -> Result<(usize, usize), Response> {
    let ci = find_crate(st, name)?;
    let vi = st.crates[ci]
        .versions
        .iter()
        .position(|v| v.num == version)
        .ok_or_else(|| version_not_found(name, version))?;
    Ok((ci, vi))
}

fn get_version(st: &State, name: &str, version: &str) -> Response {
    match find_version(st, name, version) {
        Ok((ci, vi)) => {
            let c = &st.crates[ci];
            Response::json(
                200,
                &json!({"version": version_json(st, c, &c.versions[vi])}),
            )
        }
        Err(r) => r,
    }
}

/// Authenticates for a yank-scoped action on crate `ci` and checks ownership.
fn yank_auth(st: &mut State, req: &Request, ci: usize) -> Result<u64, Response> {
    let ti = authenticate(st, req)?;
    let name = st.crates[ci].name.clone();
    check_scopes(&st.tokens[ti], Some("yank"), Some(&name))?;
    let t = &st.tokens[ti];
    if !st.crates[ci].owners.contains(&t.user_id) {
        return Err(err(403, NOT_OWNER_YANK));
    }
    Ok(t.id)
}

fn apply_yank(
    st: &mut State,
    ci: usize,
    vi: usize,
    token_id: u64,
    yanked: bool,
    message: Option<String>,
) {
    let v = &mut st.crates[ci].versions[vi];
    if v.yanked == yanked && v.yank_message == message {
        return; // idempotent: nothing changes, no audit entry
    }
    v.yanked = yanked;
    v.yank_message = message;
    v.updated_at = now();
    let action = if yanked { "yank" } else { "unyank" };
    v.audit.push((action.to_string(), Some(token_id)));
}

fn modify_yank(st: &mut State, req: &Request, name: &str, version: &str, yanked: bool) -> Response {
    let (ci, vi) = match find_version(st, name, version) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let token_id = match yank_auth(st, req, ci) {
        Ok(t) => t,
        Err(r) => return r,
    };
    apply_yank(st, ci, vi, token_id, yanked, None);
    Response::json(200, &json!({"ok": true}))
}

fn patch_version(st: &mut State, req: &Request, name: &str, version: &str) -> Response {
    let (ci, vi) = match find_version(st, name, version) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(body) = req.json() else {
        return Response::text(
            400,
            "text/plain; charset=utf-8",
            "Failed to parse the request body as JSON",
        );
    };
    let Some(update) = body.get("version").and_then(Value::as_object) else {
        return Response::text(
            422,
            "text/plain; charset=utf-8",
            "Failed to deserialize the JSON body into the target type: missing field `version`",
        );
    };
    let yanked = match update.get("yanked") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Response::text(
                422,
                "text/plain; charset=utf-8",
                "Failed to deserialize the JSON body into the target type: version.yanked: invalid type",
            );
        }
    };
    let message = match update.get("yank_message") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Response::text(
                422,
                "text/plain; charset=utf-8",
                "Failed to deserialize the JSON body into the target type: version.yank_message: invalid type",
            );
        }
    };
    let current = st.crates[ci].versions[vi].yanked;
    if message.is_some() {
        if yanked == Some(false) {
            return err(400, "Cannot set yank message when unyanking");
        }
        if yanked.is_none() && !current {
            return err(
                400,
                "Cannot update yank message for a version that is not yanked",
            );
        }
    }
    let token_id = match yank_auth(st, req, ci) {
        Ok(t) => t,
        Err(r) => return r,
    };
    apply_yank(st, ci, vi, token_id, yanked.unwrap_or(current), message);
    let c = &st.crates[ci];
    Response::json(
        200,
        &json!({"version": version_json(st, c, &c.versions[vi])}),
    )
}

fn revoke_current(st: &mut State, req: &Request) -> Response {
    let ti = match authenticate(st, req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = check_scopes(&st.tokens[ti], None, None) {
        return r;
    }
    st.tokens[ti].revoked = true;
    Response::empty(204)
}

fn list_tokens(st: &mut State, req: &Request) -> Response {
    let ti = match authenticate(st, req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if !st.token_listing {
        return err(403, WEBSITE_ONLY);
    }
    let uid = st.tokens[ti].user_id;
    let mut list: Vec<&FakeToken> = st
        .tokens
        .iter()
        .filter(|t| t.user_id == uid && !t.revoked)
        .collect();
    list.sort_by_key(|t| std::cmp::Reverse(t.id));
    let list: Vec<Value> = list.into_iter().map(token_json).collect();
    Response::json(200, &json!({"api_tokens": list}))
}

fn parse_id(id: &str) -> Result<u64, Response> {
    id.parse::<u64>().map_err(|_| {
        Response::text(
            400,
            "text/plain; charset=utf-8",
            format!("Invalid URL: Cannot parse `{id}` to a `i32`"),
        )
    })
}

fn find_token(st: &mut State, req: &Request, id: &str) -> Response {
    let id = match parse_id(id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let ti = match authenticate(st, req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = check_scopes(&st.tokens[ti], None, None) {
        return r;
    }
    let uid = st.tokens[ti].user_id;
    match st.tokens.iter().find(|t| t.id == id && t.user_id == uid) {
        Some(t) => Response::json(200, &json!({"api_token": token_json(t)})),
        None => not_found(),
    }
}

fn revoke_token(st: &mut State, req: &Request, id: &str) -> Response {
    let id = match parse_id(id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let ti = match authenticate(st, req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = check_scopes(&st.tokens[ti], None, None) {
        return r;
    }
    let uid = st.tokens[ti].user_id;
    // crates.io answers `{}` whether or not a token matched.
    if let Some(t) = st
        .tokens
        .iter_mut()
        .find(|t| t.id == id && t.user_id == uid)
    {
        t.revoked = true;
    }
    Response::json(200, &json!({}))
}

fn config_json(c: &FakeGithubConfig, crate_name: &str) -> Value {
    json!({
        "id": c.id,
        "crate": crate_name,
        "repository_owner": c.repository_owner,
        "repository_owner_id": c.repository_owner_id,
        "repository_name": c.repository_name,
        "workflow_filename": c.workflow_filename,
        "environment": c.environment,
        "created_at": c.created_at,
    })
}

fn list_configs(st: &mut State, req: &Request) -> Response {
    let Some(name) = req.query_param("crate") else {
        return Response::text(
            400,
            "text/plain; charset=utf-8",
            "Failed to deserialize query string: missing field `crate`",
        );
    };
    let ti = match authenticate(st, req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = check_scopes(&st.tokens[ti], Some("trusted-publishing"), Some(&name)) {
        return r;
    }
    let ci = match find_crate(st, &name) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let krate = &st.crates[ci];
    if !krate.owners.contains(&st.tokens[ti].user_id) {
        return err(400, NOT_OWNER);
    }
    let list: Vec<Value> = st
        .configs
        .iter()
        .filter(|c| canon(&c.krate) == canon(&krate.name))
        .map(|c| config_json(c, &krate.name))
        .collect();
    Response::json(200, &json!({"github_configs": list}))
}

fn delete_config(st: &mut State, req: &Request, id: &str) -> Response {
    let id = match parse_id(id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let Some(pos) = st.configs.iter().position(|c| c.id == id) else {
        return not_found();
    };
    let krate_name = st.configs[pos].krate.clone();
    let ti = match authenticate(st, req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = check_scopes(
        &st.tokens[ti],
        Some("trusted-publishing"),
        Some(&krate_name),
    ) {
        return r;
    }
    let owner_ok = st
        .crates
        .iter()
        .find(|c| canon(&c.name) == canon(&krate_name))
        .is_some_and(|c| c.owners.contains(&st.tokens[ti].user_id));
    if !owner_ok {
        return err(400, NOT_OWNER);
    }
    st.configs.remove(pos);
    Response::empty(204)
}
