//! Contract fake of the GitHub REST API (the endpoints Recall's GitHub actions use), built on
//! [`FakeServer`]. Point a client at [`FakeGitHub::api_url`] (`http://127.0.0.1:PORT`, the
//! equivalent of `https://api.github.com`).
//!
//! Faithful to docs.github.com (REST API version 2022-11-28) on these points:
//!
//! * **Every request**: no `User-Agent` → 403 "Request forbidden by administrative rules…";
//!   `X-GitHub-Api-Version` other than `2022-11-28` / `2026-03-10` → 400 "Unsupported
//!   'X-GitHub-Api-Version' header specified…" (absent: served as 2022-11-28 and counted in
//!   [`FakeGitHub::missing_version_header`]). Answers carry `x-github-request-id`,
//!   `x-github-api-version-selected`, `x-ratelimit-{limit,remaining,reset,used}` and
//!   `x-ratelimit-resource: core` (5000/hour per token, 60 for unauthenticated answers; the
//!   window resets an hour after its first request; `GET /rate_limit` is not counted), and
//!   `github-authentication-token-expiration: YYYY-MM-DD HH:MM:SS UTC` for tokens registered
//!   with an expiry. `x-oauth-scopes: repo, workflow` is sent on every answer to a classic
//!   token ([`FakeGitHub::add_classic_token`]) and never to a fine-grained or installation
//!   token (they have no scopes). Bodies are `application/json; charset=utf-8`.
//! * **Auth**: `Authorization: Bearer <t>` or `token <t>`. Unknown, expired or missing →
//!   401 `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest",
//!   "status":"401"}` (counted in [`FakeGitHub::auth_failures`]). Tokens carry fine-grained
//!   permissions (`read`/`write`; `write` implies `read`; `metadata: read` is implicit, as on
//!   GitHub). A route lacking its permission → 403 "Resource not accessible by personal access
//!   token" (or "… by integration" for installation tokens) with
//!   `x-accepted-github-permissions: <perm>=<level>[,<perm>=<level>]` (a comma joins
//!   permissions that are all needed). Reads need `read`, anything else `write`. Map:
//!   repo/env/org Actions secrets → `secrets` / `environments`+`secrets` /
//!   `organization_secrets`; workflows → `actions`; releases, git refs, contents → `contents`;
//!   pulls → `pull_requests`; issues → `issues`; repository security advisories →
//!   `repository_advisories`; `GET /repos/{o}/{r}` → `metadata`. Owner and repository names
//!   are case-insensitive. Mutations of an archived repository → 403 "Repository was archived
//!   so is read-only.".
//! * **GitHub App**: `POST /app/installations/{id}/access_tokens` and `GET
//!   /app/installations/{id}` need `Authorization: Bearer <JWT>`, RS256-signed by the app's
//!   key, `iss` = the app id (string or number), integer `iat`/`exp`, `exp` in the future and
//!   at most 10 minutes after `iat`, `iat` not more than 60 s in the future; else 401 with
//!   GitHub's messages ("A JSON web token could not be decoded", "'Expiration time' claim
//!   ('exp') is too far in the future", …). The exchange answers 201 `{token: "ghs_…",
//!   expires_at (1 h), permissions, repository_selection}`; a `permissions` body down-scopes
//!   the token (asking for more than the installation has → 422). An installation id of
//!   another app → 404.
//! * **Limits**: [`FakeGitHub::rate_limit_next`] (secondary: 403 + `retry-after` + "You have
//!   exceeded a secondary rate limit…"), [`FakeGitHub::primary_rate_limit_next`] (403, or 429
//!   with [`FakeGitHub::primary_rate_limit_next_status`], `x-ratelimit-remaining: 0`,
//!   `x-ratelimit-reset`, "API rate limit exceeded for user ID …"). Refused requests change no
//!   state. They apply to token-authenticated requests after auth, before routing (not to
//!   `/rate_limit` nor to the `/app` JWT endpoints).
//! * **Pagination**: page-based lists honour `per_page` (default 30, max 100) and `page`
//!   (1-based) and send `Link` with `prev`, `next`, `last`, `first` (GitHub's order; only
//!   those that apply) as absolute URLs on the request's `Host`, other query parameters kept.
//!   Repository security advisories paginate by cursor (`after`/`before`, `next`/`prev`
//!   links only), as on GitHub.
//! * **Errors**: unknown route/repo/org/resource → 404 `{"message":"Not Found",
//!   "documentation_url":…,"status":"404"}`; a body that is not JSON → 400 "Problems parsing
//!   JSON"; a schema violation (missing field, wrong type, value not in an enum) → 422
//!   "Invalid request.\n\n\"x\" wasn't supplied." / "For 'properties/x', … is not a string.";
//!   semantic checks → 422 `{"message":"Validation Failed","errors":[{resource, code, field,
//!   message?}],…}`.
//! * **Actions secrets** (repository, environment, organization): each scope has its own X25519
//!   key pair and a decimal `key_id`. `PUT …/secrets/{name}` needs `encrypted_value` (base64 of
//!   a libsodium sealed box opening with the scope's key) and the scope's *current* `key_id`
//!   (stale after [`FakeGitHub::rotate_public_key`]); organization secrets also need
//!   `visibility` (`all|private|selected`) and, for `selected` only, `selected_repository_ids`
//!   (repositories of that org). Names: `[A-Za-z0-9_]`, not starting with a digit or
//!   `GITHUB_` (any case); stored upper-case, looked up case-insensitively, as GitHub does.
//!   Values at most 48 KB. 201 on create, 204 on update; the fake keeps the *decrypted* value.
//!   List (paginated `{total_count, secrets:[{name, created_at, updated_at[, visibility,
//!   selected_repositories_url]}]}`), get, delete (204 / 404). Environments must exist.
//! * **Workflows**: list (paginated), get by numeric id or file name, `PUT …/enable|disable` →
//!   204 (`active` ↔ `disabled_manually`).
//! * **Releases**: list (newest first, paginated), get by id, by tag (published only), latest
//!   (the release explicitly made latest if still a published non-prerelease, else the most
//!   recently created published non-prerelease not opted out with `make_latest: "false"`; new
//!   and newly published releases default to `make_latest: true`; `"legacy"` clears the
//!   explicit choice). `PATCH` takes `tag_name, target_commitish, name, body, draft,
//!   prerelease, make_latest ("true"|"false"|"legacy"), discussion_category_name`; on a
//!   published `immutable` release, changing `tag_name`, `target_commitish` or `draft` → 422
//!   ("Cannot change … of an immutable release"); duplicate `tag_name` → 422 `already_exists`.
//! * **Repository security advisories**: create (required `summary` ≤ 1024, `description`
//!   ≤ 65535, `vulnerabilities` `[{package:{ecosystem, name}, vulnerable_version_range,
//!   patched_versions, vulnerable_functions}]` with GitHub's ecosystems; `cwe_ids` `CWE-n`,
//!   `credits` `{login, type}`, `severity` *or* `cvss_vector_string` — CVSS 3.x vectors are
//!   scored and give the severity — `start_private_fork`), answering the draft advisory with a
//!   `GHSA-xxxx-xxxx-xxxx` id in GitHub's alphabet. List (`state`, `sort`, `direction`,
//!   cursor pagination), get, and a minimal `PATCH` (fields and state changes recorded in
//!   [`Advisory::patches`]).
//! * **Issues**: create (`title` required; `body`, `labels` as names or `{name}`, `assignees`,
//!   `assignee`) → 201 + `Location`; list (`state` open|closed|all, `labels` all must match,
//!   `creator`, `assignee`, `sort`, `direction`, paginated) where pull requests appear with a
//!   `pull_request` key; get. Issues and pull requests share one number sequence.
//! * **Git data, contents, pulls**: commits hold a whole tree (path → bytes); blob shas are the
//!   real git ones (`sha1("blob <len>\0" + content)`); commit and tree shas are deterministic
//!   40-hex values. `GET git/ref/{heads/x}`, `POST git/refs` (`Reference already exists`,
//!   `Object does not exist`), `GET contents/{path}?ref=` (file: base64 with a newline every
//!   60 characters; directory: listing; unknown ref → 404 "No commit found for the ref …"),
//!   `PUT contents/{path}` (201 create / 200 update; existing file without `sha` → 422
//!   "\"sha\" wasn't supplied."; wrong `sha` → 409 "… does not match …"; unknown branch → 404
//!   "Branch … not found"), `POST pulls` (existing open PR for the head → 422 "A pull request
//!   already exists for owner:branch."; no commits beyond base → 422 "No commits between main
//!   and x"; unknown head/base → 422 `invalid`), `GET pulls` (`state`, `head=owner:branch`,
//!   `base`, paginated), `GET pulls/{n}`.
//! * `GET /rate_limit` → `{resources:{core, search, graphql}, rate}`; auth optional.
//!
//! Deviations (deliberate): requests without credentials get 401 even for what would be public
//! data; tokens are not restricted to selected repositories; a classic token's scopes are
//! mapped onto the permission model (`repo` and `public_repo` → write on every repository
//! permission, whatever the repository's visibility; `admin:org` → `organization_secrets`;
//! `workflow` → `workflows`) and a missing scope is refused like a missing permission (403 +
//! `x-accepted-github-permissions`), where GitHub answers 404 or 403 with
//! `x-accepted-oauth-scopes`; no ETags/304; no release assets,
//! release creation, merges, reviews, comments or labels API; contents `PUT` with a `sha` on a
//! path that does not exist yet is accepted as a create; `head` without `owner:` filters by
//! branch; CVSS 4.0 vectors are accepted but not scored (`severity` stays null); timestamps have
//! one-second resolution, so ordering ties break on creation order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use chrono::{DateTime, SecondsFormat, Utc};
use crypto_box::SecretKey;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{FakeServer, Request, Response, RoutePattern};

/// API versions GitHub accepts in `X-GitHub-Api-Version`.
pub const SUPPORTED_API_VERSIONS: [&str; 2] = ["2022-11-28", "2026-03-10"];
/// The version served when the header is absent.
pub const DEFAULT_API_VERSION: &str = "2022-11-28";
/// Login of the user behind tokens added with [`FakeGitHub::add_token`].
pub const TOKEN_USER: &str = "recall-bot";
/// Slug of apps added with [`FakeGitHub::add_app`]; installation tokens act as `<slug>[bot]`.
pub const APP_SLUG: &str = "recall-app";
/// Core requests per hour for an authenticated token.
pub const CORE_LIMIT: u64 = 5000;
/// Core requests per hour for unauthenticated answers.
pub const ANON_LIMIT: u64 = 60;
/// Largest secret value GitHub stores.
pub const MAX_SECRET_BYTES: usize = 48 * 1024;
/// Generic documentation URL of error bodies.
pub const DOCS: &str = "https://docs.github.com/rest";
/// `documentation_url` of secondary rate limit answers.
pub const SECONDARY_DOCS: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits";
/// `documentation_url` of primary rate limit answers.
pub const PRIMARY_DOCS: &str =
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits";
/// Ecosystems a repository security advisory's package may name.
pub const ECOSYSTEMS: [&str; 13] = [
    "rubygems", "npm", "pip", "maven", "nuget", "composer", "go", "rust", "erlang", "actions",
    "pub", "other", "swift",
];
/// Characters of the three groups of a GHSA id.
pub const GHSA_ALPHABET: &[u8] = b"23456789cfghjmpqrvwx";

const JSON_CT: &str = "application/json; charset=utf-8";
const PERMISSIONS: [&str; 9] = [
    "actions",
    "secrets",
    "contents",
    "pull_requests",
    "issues",
    "repository_advisories",
    "metadata",
    "administration",
    "organization_secrets",
];

// ---------------------------------------------------------------------------------------------
// Public records
// ---------------------------------------------------------------------------------------------

/// Options of [`FakeGitHub::add_release`].
#[derive(Clone, Debug, Default)]
pub struct ReleaseOpts {
    /// Release title; `None` → the tag.
    pub name: Option<String>,
    pub body: String,
    /// `None` → the default branch.
    pub target_commitish: Option<String>,
    pub prerelease: bool,
    pub draft: bool,
    /// GitHub's immutable releases: once published, tag, target and draft state are frozen.
    pub immutable: bool,
    /// `None`: GitHub's default (`true` for a published release).
    pub make_latest: Option<bool>,
}

/// A release as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Release {
    pub id: u64,
    pub tag_name: String,
    pub target_commitish: String,
    pub name: Option<String>,
    pub body: Option<String>,
    pub draft: bool,
    pub prerelease: bool,
    pub immutable: bool,
    pub discussion_category_name: Option<String>,
    pub created_at: String,
    pub published_at: Option<String>,
    pub updated_at: String,
    pub author: String,
    /// Accepted `PATCH` bodies, in order.
    pub patches: Vec<Value>,
    /// `make_latest: "false"` was set: never picked as latest by creation date.
    pub latest_opt_out: bool,
}

/// A workflow as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Workflow {
    pub id: u64,
    pub name: String,
    /// `.github/workflows/<file>`.
    pub path: String,
    /// `active`, `disabled_manually`, …
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A repository security advisory as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Advisory {
    pub ghsa_id: String,
    pub cve_id: Option<String>,
    pub summary: String,
    pub description: String,
    pub severity: Option<String>,
    pub cvss_vector_string: Option<String>,
    pub cvss_score: Option<f64>,
    /// `triage`, `draft`, `published`, `closed`.
    pub state: String,
    pub vulnerabilities: Vec<Value>,
    pub cwe_ids: Vec<String>,
    pub credits: Vec<Value>,
    pub start_private_fork: bool,
    pub author: String,
    pub created_at: String,
    pub updated_at: String,
    pub published_at: Option<String>,
    pub closed_at: Option<String>,
    /// Accepted `PATCH` bodies, in order (Recall is expected never to send one).
    pub patches: Vec<Value>,
    /// Creation order (cursor pagination).
    seq: u64,
}

/// An issue as stored (pull requests are in [`FakeGitHub::pulls`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Issue {
    pub id: u64,
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub state: String,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub user: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A pull request as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct PullRequest {
    pub id: u64,
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    /// `open` / `closed`.
    pub state: String,
    pub head_ref: String,
    /// Head commit when the pull request was opened (answers show the branch's current head).
    pub head_sha: String,
    pub base_ref: String,
    pub draft: bool,
    pub maintainer_can_modify: bool,
    pub user: String,
    pub created_at: String,
    pub updated_at: String,
}

/// An Actions secret as stored (decrypted).
#[derive(Clone, Debug, PartialEq)]
pub struct Secret {
    /// Upper-case, as GitHub stores it.
    pub name: String,
    pub value: String,
    pub created_at: String,
    pub updated_at: String,
    /// Organization secrets only.
    pub visibility: Option<String>,
    pub selected_repository_ids: Vec<u64>,
}

// ---------------------------------------------------------------------------------------------
// Internal state
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct TokenInfo {
    perms: BTreeMap<String, String>,
    expires_at: Option<DateTime<Utc>>,
    /// Show `github-authentication-token-expiration`.
    expiry_header: bool,
    login: String,
    user_id: u64,
    installation: Option<u64>,
    /// A classic token's scopes (sent as `x-oauth-scopes`).
    scopes: Option<Vec<String>>,
}

struct App {
    id: u64,
    public_key_pem: String,
    installation_id: u64,
    perms: BTreeMap<String, String>,
}

struct SecretStore {
    key_id: String,
    key: SecretKey,
    secrets: BTreeMap<String, Secret>,
}

#[derive(Clone, Debug)]
struct Commit {
    parent: Option<String>,
    message: String,
    tree: String,
    files: BTreeMap<String, Vec<u8>>,
}

struct Repo {
    id: u64,
    owner: String,
    name: String,
    private: bool,
    archived: bool,
    default_branch: String,
    secrets: SecretStore,
    envs: BTreeMap<String, SecretStore>,
    workflows: Vec<Workflow>,
    releases: Vec<Release>,
    explicit_latest: Option<u64>,
    advisories: Vec<Advisory>,
    issues: Vec<Issue>,
    pulls: Vec<PullRequest>,
    next_number: u64,
    refs: BTreeMap<String, String>,
    commits: HashMap<String, Commit>,
}

impl Repo {
    fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    fn branch_head(&self, branch: &str) -> Option<&String> {
        self.refs.get(&format!("refs/heads/{branch}"))
    }

    /// A branch name, `heads/x`, `refs/heads/x`, a tag or a commit sha → commit sha.
    fn resolve(&self, r: &str) -> Option<String> {
        let r = r.strip_prefix("refs/").unwrap_or(r);
        for cand in [
            format!("refs/{r}"),
            format!("refs/heads/{r}"),
            format!("refs/tags/{r}"),
        ] {
            if let Some(s) = self.refs.get(&cand) {
                return Some(s.clone());
            }
        }
        self.commits.contains_key(r).then(|| r.to_string())
    }

    fn is_ancestor(&self, ancestor: &str, of: &str) -> bool {
        let mut cur = Some(of.to_string());
        while let Some(c) = cur {
            if c == ancestor {
                return true;
            }
            cur = self.commits.get(&c).and_then(|c| c.parent.clone());
        }
        false
    }

    fn latest(&self) -> Option<&Release> {
        let eligible = |r: &&Release| !r.draft && !r.prerelease;
        if let Some(id) = self.explicit_latest
            && let Some(r) = self.releases.iter().find(|r| r.id == id).filter(eligible)
        {
            return Some(r);
        }
        self.releases
            .iter()
            .filter(eligible)
            .filter(|r| !r.latest_opt_out)
            .max_by_key(|r| (r.created_at.clone(), r.id))
    }
}

struct Org {
    login: String,
    id: u64,
    secrets: SecretStore,
}

struct RateRule {
    pattern: RoutePattern,
    remaining: usize,
    retry_after: u64,
    status: u16,
}

#[derive(Clone, Copy)]
struct Bucket {
    limit: u64,
    used: u64,
    reset: i64,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, TokenInfo>,
    apps: Vec<App>,
    repos: BTreeMap<String, Repo>,
    orgs: BTreeMap<String, Org>,
    buckets: HashMap<String, Bucket>,
    secondary: Vec<RateRule>,
    primary: VecDeque<(i64, u16)>,
    next_id: u64,
    seq: u64,
    auth_failures: usize,
    missing_version: usize,
    rate_limited: usize,
    installation_tokens: Vec<String>,
}

fn next(counter: &mut u64) -> u64 {
    *counter += 1;
    *counter
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn now_iso() -> String {
    iso(now())
}

fn new_store(counter: &mut u64) -> SecretStore {
    let n = next(counter);
    SecretStore {
        key_id: (568_250_167_242_549_743u64 + n).to_string(),
        key: SecretKey::generate(&mut crypto_box::aead::OsRng),
        secrets: BTreeMap::new(),
    }
}

fn node_id(kind: &str, id: u64) -> String {
    format!("{kind}_kwDO{}", B64URL.encode(format!("{kind}{id:08}")))
}

fn perms_map(perms: &[(&str, &str)]) -> BTreeMap<String, String> {
    perms
        .iter()
        .map(|(p, l)| {
            assert!(
                matches!(*l, "read" | "write" | "admin"),
                "permission level must be read or write, got {l:?}"
            );
            if !PERMISSIONS.contains(p) {
                // Other fine-grained permissions exist (environments, …); accept them.
                assert!(
                    p.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "permission names are snake_case, got {p:?}"
                );
            }
            (p.to_string(), l.to_string())
        })
        .collect()
}

fn level_ok(have: Option<&str>, need: &str) -> bool {
    match need {
        "read" => matches!(have, Some("read" | "write" | "admin")),
        _ => matches!(have, Some("write" | "admin")),
    }
}

/// SHA-1 (FIPS 180-4), for real git blob shas.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Git's blob sha of `content`: `sha1("blob <len>\0" + content)`.
pub fn blob_sha(content: &[u8]) -> String {
    let mut data = format!("blob {}\0", content.len()).into_bytes();
    data.extend_from_slice(content);
    hex::encode(sha1(&data))
}

fn tree_sha(files: &BTreeMap<String, Vec<u8>>) -> String {
    let mut data = Vec::new();
    for (p, c) in files {
        data.extend_from_slice(p.as_bytes());
        data.push(0);
        data.extend_from_slice(blob_sha(c).as_bytes());
    }
    hex::encode(sha1(&data))
}

/// Base64 with a newline every 60 characters and at the end, as the contents API sends it.
fn wrapped_base64(data: &[u8]) -> String {
    let b = B64.encode(data);
    let mut out = String::with_capacity(b.len() + b.len() / 60 + 1);
    for (i, ch) in b.chars().enumerate() {
        if i > 0 && i % 60 == 0 {
            out.push('\n');
        }
        out.push(ch);
    }
    out.push('\n');
    out
}

fn ghsa_id(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let chars: Vec<char> = digest
        .iter()
        .take(12)
        .map(|b| GHSA_ALPHABET[(*b as usize) % GHSA_ALPHABET.len()] as char)
        .collect();
    let group = |i: usize| chars[i * 4..i * 4 + 4].iter().collect::<String>();
    format!("GHSA-{}-{}-{}", group(0), group(1), group(2))
}

/// Builds a commit on `branch` (created from the default branch when missing) with `path`
/// set to `content`; returns its sha.
fn commit_file(
    repo: &mut Repo,
    seq: u64,
    branch: &str,
    path: &str,
    content: Vec<u8>,
    message: &str,
) -> String {
    let parent = repo
        .branch_head(branch)
        .or_else(|| repo.branch_head(&repo.default_branch))
        .cloned();
    let mut files = parent
        .as_ref()
        .and_then(|p| repo.commits.get(p))
        .map(|c| c.files.clone())
        .unwrap_or_default();
    files.insert(path.to_string(), content);
    let tree = tree_sha(&files);
    let sha = hex::encode(sha1(
        format!(
            "tree {tree}\nparent {}\nseq {seq}\n\n{message}",
            parent.as_deref().unwrap_or("-")
        )
        .as_bytes(),
    ));
    repo.commits.insert(
        sha.clone(),
        Commit {
            parent,
            message: message.to_string(),
            tree,
            files,
        },
    );
    repo.refs
        .insert(format!("refs/heads/{branch}"), sha.clone());
    sha
}

/// CVSS 3.x base score, `None` when the vector is not a complete 3.0/3.1 base vector.
pub fn cvss3_score(vector: &str) -> Option<f64> {
    let rest = vector
        .strip_prefix("CVSS:3.1/")
        .or_else(|| vector.strip_prefix("CVSS:3.0/"))?;
    let mut m = HashMap::new();
    for part in rest.split('/') {
        let (k, v) = part.split_once(':')?;
        if m.insert(k, v).is_some() {
            return None;
        }
    }
    let changed = match *m.get("S")? {
        "U" => false,
        "C" => true,
        _ => return None,
    };
    let av = match *m.get("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        _ => return None,
    };
    let ac = match *m.get("AC")? {
        "L" => 0.77,
        "H" => 0.44,
        _ => return None,
    };
    let pr = match (*m.get("PR")?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    };
    let ui = match *m.get("UI")? {
        "N" => 0.85,
        "R" => 0.62,
        _ => return None,
    };
    let cia = |k: &str| -> Option<f64> {
        match *m.get(k)? {
            "H" => Some(0.56),
            "L" => Some(0.22),
            "N" => Some(0.0),
            _ => None,
        }
    };
    let (c, i, a) = (cia("C")?, cia("I")?, cia("A")?);
    let iss = 1.0 - (1.0 - c) * (1.0 - i) * (1.0 - a);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02f64).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    if impact <= 0.0 {
        return Some(0.0);
    }
    let raw = if changed {
        (1.08 * (impact + exploitability)).min(10.0)
    } else {
        (impact + exploitability).min(10.0)
    };
    // CVSS 3.1 Roundup.
    let int_input = (raw * 100_000.0).round() as i64;
    Some(if int_input % 10_000 == 0 {
        int_input as f64 / 100_000.0
    } else {
        ((int_input / 10_000) + 1) as f64 / 10.0
    })
}

fn severity_of(score: f64) -> &'static str {
    match score {
        s if s >= 9.0 => "critical",
        s if s >= 7.0 => "high",
        s if s >= 4.0 => "medium",
        _ => "low",
    }
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

fn jresp(status: u16, v: &Value) -> Response {
    Response::text(status, JSON_CT, v.to_string())
}

fn gh_error(status: u16, message: &str, doc: &str) -> Response {
    jresp(
        status,
        &json!({"message": message, "documentation_url": doc, "status": status.to_string()}),
    )
}

fn not_found(doc: &str) -> Response {
    gh_error(404, "Not Found", doc)
}

fn invalid_request(doc: &str, detail: &str) -> Response {
    gh_error(422, &format!("Invalid request.\n\n{detail}"), doc)
}

fn validation_failed(doc: &str, errors: Vec<Value>) -> Response {
    jresp(
        422,
        &json!({"message": "Validation Failed", "errors": errors, "documentation_url": doc, "status": "422"}),
    )
}

fn verr(resource: &str, code: &str, field: &str) -> Value {
    json!({"resource": resource, "code": code, "field": field})
}

fn verr_msg(resource: &str, code: &str, field: &str, message: &str) -> Value {
    json!({"resource": resource, "code": code, "field": field, "message": message})
}

fn custom(resource: &str, message: &str) -> Value {
    json!({"resource": resource, "code": "custom", "message": message})
}

// ---- JSON body helpers (GitHub's schema-validation messages) ----

type Obj = Map<String, Value>;

fn missing(doc: &str, key: &str) -> Response {
    invalid_request(doc, &format!("\"{key}\" wasn't supplied."))
}

fn wrong_type(doc: &str, key: &str, v: &Value, ty: &str) -> Response {
    invalid_request(doc, &format!("For 'properties/{key}', {v} is not {ty}."))
}

fn not_one_of(doc: &str, key: &str, v: &Value, allowed: &[&str]) -> Response {
    invalid_request(
        doc,
        &format!(
            "For 'properties/{key}', {v} is not one of {}.",
            json!(allowed)
        ),
    )
}

fn req_string(o: &Obj, key: &str, doc: &str) -> Result<String, Response> {
    match o.get(key) {
        None => Err(missing(doc, key)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(wrong_type(doc, key, v, "a string")),
    }
}

fn opt_string(o: &Obj, key: &str, doc: &str) -> Result<Option<Option<String>>, Response> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(v) => Err(wrong_type(doc, key, v, "a string")),
    }
}

fn opt_nonnull_string(o: &Obj, key: &str, doc: &str) -> Result<Option<String>, Response> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(wrong_type(doc, key, v, "a string")),
    }
}

fn opt_bool(o: &Obj, key: &str, doc: &str) -> Result<Option<bool>, Response> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong_type(doc, key, v, "a boolean")),
    }
}

fn opt_string_array(o: &Obj, key: &str, doc: &str) -> Result<Option<Vec<String>>, Response> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                v => Err(wrong_type(doc, key, v, "a string")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(wrong_type(doc, key, v, "an array")),
    }
}

fn one_of(
    o: &Obj,
    key: &str,
    allowed: &[&str],
    doc: &str,
) -> Result<Option<Option<String>>, Response> {
    match opt_string(o, key, doc)? {
        Some(Some(s)) if !allowed.contains(&s.as_str()) => {
            Err(not_one_of(doc, key, &json!(s), allowed))
        }
        other => Ok(other),
    }
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Target {
    Repo(String),
    Env(String, String),
    Org(String),
}

impl Target {
    fn repo_key(&self) -> Option<&str> {
        match self {
            Target::Repo(k) | Target::Env(k, _) => Some(k),
            Target::Org(_) => None,
        }
    }
}

#[derive(Clone, Debug)]
enum Ep {
    Repo,
    SecretKey,
    SecretList,
    SecretGet(String),
    SecretPut(String),
    SecretDelete(String),
    WorkflowList,
    WorkflowGet(String),
    WorkflowEnable(String, bool),
    ReleaseList,
    ReleaseGet(String),
    ReleaseTag(String),
    ReleaseLatest,
    ReleasePatch(String),
    AdvisoryList,
    AdvisoryCreate,
    AdvisoryGet(String),
    AdvisoryPatch(String),
    IssueList,
    IssueCreate,
    IssueGet(String),
    RefGet(String),
    RefCreate,
    ContentsGet(String),
    ContentsPut(String),
    PullList,
    PullCreate,
    PullGet(String),
}

struct Route {
    target: Target,
    ep: Ep,
}

fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(decode_segment)
        .collect()
}

fn parse_route(method: &str, path: &str) -> Option<Route> {
    let segs = segments(path.trim_end_matches('/'));
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method;
    let secret_ep = |rest: &[&str]| -> Option<Ep> {
        Some(match (m, rest) {
            ("GET", ["secrets", "public-key"]) => Ep::SecretKey,
            ("GET", ["secrets"]) => Ep::SecretList,
            ("GET", ["secrets", n]) => Ep::SecretGet(n.to_string()),
            ("PUT", ["secrets", n]) => Ep::SecretPut(n.to_string()),
            ("DELETE", ["secrets", n]) => Ep::SecretDelete(n.to_string()),
            _ => return None,
        })
    };
    match s.as_slice() {
        ["orgs", org, "actions", rest @ ..] => Some(Route {
            target: Target::Org(org.to_ascii_lowercase()),
            ep: secret_ep(rest)?,
        }),
        ["repos", o, r, "environments", env, rest @ ..] => Some(Route {
            target: Target::Env(format!("{o}/{r}").to_ascii_lowercase(), env.to_string()),
            ep: secret_ep(rest)?,
        }),
        ["repos", o, r, rest @ ..] => {
            let key = format!("{o}/{r}").to_ascii_lowercase();
            let ep = match (m, rest) {
                ("GET", []) => Ep::Repo,
                (_, ["actions", rest @ ..]) if rest.first() == Some(&"secrets") => secret_ep(rest)?,
                ("GET", ["actions", "workflows"]) => Ep::WorkflowList,
                ("GET", ["actions", "workflows", id]) => Ep::WorkflowGet(id.to_string()),
                ("PUT", ["actions", "workflows", id, "enable"]) => {
                    Ep::WorkflowEnable(id.to_string(), true)
                }
                ("PUT", ["actions", "workflows", id, "disable"]) => {
                    Ep::WorkflowEnable(id.to_string(), false)
                }
                ("GET", ["releases"]) => Ep::ReleaseList,
                ("GET", ["releases", "latest"]) => Ep::ReleaseLatest,
                ("GET", ["releases", "tags", tag @ ..]) if !tag.is_empty() => {
                    Ep::ReleaseTag(tag.join("/"))
                }
                ("GET", ["releases", id]) => Ep::ReleaseGet(id.to_string()),
                ("PATCH", ["releases", id]) => Ep::ReleasePatch(id.to_string()),
                ("GET", ["security-advisories"]) => Ep::AdvisoryList,
                ("POST", ["security-advisories"]) => Ep::AdvisoryCreate,
                ("GET", ["security-advisories", id]) => Ep::AdvisoryGet(id.to_string()),
                ("PATCH", ["security-advisories", id]) => Ep::AdvisoryPatch(id.to_string()),
                ("GET", ["issues"]) => Ep::IssueList,
                ("POST", ["issues"]) => Ep::IssueCreate,
                ("GET", ["issues", n]) => Ep::IssueGet(n.to_string()),
                ("GET", ["git", "ref", r @ ..]) if !r.is_empty() => Ep::RefGet(r.join("/")),
                ("POST", ["git", "refs"]) => Ep::RefCreate,
                ("GET", ["contents", p @ ..]) => Ep::ContentsGet(p.join("/")),
                ("PUT", ["contents", p @ ..]) if !p.is_empty() => Ep::ContentsPut(p.join("/")),
                ("GET", ["pulls"]) => Ep::PullList,
                ("POST", ["pulls"]) => Ep::PullCreate,
                ("GET", ["pulls", n]) => Ep::PullGet(n.to_string()),
                _ => return None,
            };
            Some(Route {
                target: Target::Repo(key),
                ep,
            })
        }
        _ => None,
    }
}

/// The permissions a route needs (all of them).
fn needs(route: &Route, level: &'static str) -> Vec<(&'static str, &'static str)> {
    match (&route.ep, &route.target) {
        (Ep::Repo, _) => vec![("metadata", "read")],
        (
            Ep::SecretKey
            | Ep::SecretList
            | Ep::SecretGet(_)
            | Ep::SecretPut(_)
            | Ep::SecretDelete(_),
            t,
        ) => match t {
            Target::Repo(_) => vec![("secrets", level)],
            Target::Env(..) => vec![("environments", level), ("secrets", level)],
            Target::Org(_) => vec![("organization_secrets", level)],
        },
        (Ep::WorkflowList | Ep::WorkflowGet(_) | Ep::WorkflowEnable(..), _) => {
            vec![("actions", level)]
        }
        (
            Ep::ReleaseList
            | Ep::ReleaseGet(_)
            | Ep::ReleaseTag(_)
            | Ep::ReleaseLatest
            | Ep::ReleasePatch(_)
            | Ep::RefGet(_)
            | Ep::RefCreate
            | Ep::ContentsGet(_)
            | Ep::ContentsPut(_),
            _,
        ) => vec![("contents", level)],
        (Ep::AdvisoryList | Ep::AdvisoryCreate | Ep::AdvisoryGet(_) | Ep::AdvisoryPatch(_), _) => {
            vec![("repository_advisories", level)]
        }
        (Ep::IssueList | Ep::IssueCreate | Ep::IssueGet(_), _) => vec![("issues", level)],
        (Ep::PullList | Ep::PullCreate | Ep::PullGet(_), _) => vec![("pull_requests", level)],
    }
}

fn doc_url(route: &Route) -> String {
    let scope = match route.target {
        Target::Repo(_) => "repository",
        Target::Env(..) => "environment",
        Target::Org(_) => "organization",
    };
    let an = if scope == "repository" { "a" } else { "an" };
    let anchor = match &route.ep {
        Ep::Repo => return "https://docs.github.com/rest/repos/repos#get-a-repository".into(),
        Ep::SecretKey => format!("actions/secrets#get-{an}-{scope}-public-key"),
        Ep::SecretList => format!("actions/secrets#list-{scope}-secrets"),
        Ep::SecretGet(_) => format!("actions/secrets#get-{an}-{scope}-secret"),
        Ep::SecretPut(_) => format!("actions/secrets#create-or-update-{an}-{scope}-secret"),
        Ep::SecretDelete(_) => format!("actions/secrets#delete-{an}-{scope}-secret"),
        Ep::WorkflowList => "actions/workflows#list-repository-workflows".into(),
        Ep::WorkflowGet(_) => "actions/workflows#get-a-workflow".into(),
        Ep::WorkflowEnable(_, true) => "actions/workflows#enable-a-workflow".into(),
        Ep::WorkflowEnable(_, false) => "actions/workflows#disable-a-workflow".into(),
        Ep::ReleaseList => "releases/releases#list-releases".into(),
        Ep::ReleaseGet(_) => "releases/releases#get-a-release".into(),
        Ep::ReleaseTag(_) => "releases/releases#get-a-release-by-tag-name".into(),
        Ep::ReleaseLatest => "releases/releases#get-the-latest-release".into(),
        Ep::ReleasePatch(_) => "releases/releases#update-a-release".into(),
        Ep::AdvisoryList => {
            "security-advisories/repository-advisories#list-repository-security-advisories".into()
        }
        Ep::AdvisoryCreate => {
            "security-advisories/repository-advisories#create-a-repository-security-advisory".into()
        }
        Ep::AdvisoryGet(_) => {
            "security-advisories/repository-advisories#get-a-repository-security-advisory".into()
        }
        Ep::AdvisoryPatch(_) => {
            "security-advisories/repository-advisories#update-a-repository-security-advisory".into()
        }
        Ep::IssueList => "issues/issues#list-repository-issues".into(),
        Ep::IssueCreate => "issues/issues#create-an-issue".into(),
        Ep::IssueGet(_) => "issues/issues#get-an-issue".into(),
        Ep::RefGet(_) => "git/refs#get-a-reference".into(),
        Ep::RefCreate => "git/refs#create-a-reference".into(),
        Ep::ContentsGet(_) => "repos/contents#get-repository-content".into(),
        Ep::ContentsPut(_) => "repos/contents#create-or-update-file-contents".into(),
        Ep::PullList => "pulls/pulls#list-pull-requests".into(),
        Ep::PullCreate => "pulls/pulls#create-a-pull-request".into(),
        Ep::PullGet(_) => "pulls/pulls#get-a-pull-request".into(),
    };
    format!("https://docs.github.com/rest/{anchor}")
}

// ---------------------------------------------------------------------------------------------
// Request context, pagination
// ---------------------------------------------------------------------------------------------

struct Ctx<'a> {
    req: &'a Request,
    /// `http://<Host>`.
    base: String,
    /// Login of the caller.
    actor: String,
    doc: String,
}

impl Ctx<'_> {
    /// `{base}{path}?{query with `drop` removed and `add` appended}`.
    fn url_with(&self, drop: &[&str], add: (&str, &str)) -> String {
        let mut parts: Vec<String> = self
            .req
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|kv| !kv.is_empty())
            .filter(|kv| !drop.contains(&kv.split('=').next().unwrap_or_default()))
            .map(str::to_string)
            .collect();
        parts.push(format!(
            "{}={}",
            add.0,
            percent_encoding::utf8_percent_encode(add.1, percent_encoding::NON_ALPHANUMERIC)
        ));
        format!("{}{}?{}", self.base, self.req.path(), parts.join("&"))
    }

    fn per_page(&self) -> usize {
        self.req
            .query_param("per_page")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .map_or(30, |n| n.min(100))
    }

    fn page(&self) -> usize {
        self.req
            .query_param("page")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1)
    }

    fn repo_api(&self, repo: &Repo) -> String {
        format!("{}/repos/{}", self.base, repo.full_name())
    }

    fn user(&self, login: &str) -> Value {
        user_json(&self.base, login)
    }

    fn body(&self) -> Result<Obj, Response> {
        if self.req.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Obj::new());
        }
        match serde_json::from_slice::<Value>(&self.req.body) {
            Ok(Value::Object(o)) => Ok(o),
            Ok(_) => Err(gh_error(400, "Body should be a JSON object", &self.doc)),
            Err(_) => Err(gh_error(400, "Problems parsing JSON", &self.doc)),
        }
    }
}

/// One page of `items` and its `Link` header value.
fn paginate<T: Clone>(ctx: &Ctx<'_>, items: &[T]) -> (Vec<T>, Option<String>) {
    let (per, page) = (ctx.per_page(), ctx.page());
    let last = items.len().div_ceil(per).max(1);
    let start = (page - 1).saturating_mul(per).min(items.len());
    let end = (start + per).min(items.len());
    let mut links = Vec::new();
    let link = |p: usize, rel: &str| {
        format!(
            "<{}>; rel=\"{rel}\"",
            ctx.url_with(&["page"], ("page", &p.to_string()))
        )
    };
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    (
        items[start..end].to_vec(),
        (!links.is_empty()).then(|| links.join(", ")),
    )
}

fn with_link(resp: Response, link: Option<String>) -> Response {
    match link {
        Some(l) => resp.with_header("link", &l),
        None => resp,
    }
}

fn user_json(base: &str, login: &str) -> Value {
    let bot = login.ends_with("[bot]");
    let id =
        u64::from_str_radix(&hex::encode(&Sha256::digest(login.as_bytes())[..3]), 16).unwrap_or(1);
    json!({
        "login": login,
        "id": id,
        "node_id": node_id(if bot { "BOT" } else { "U" }, id),
        "type": if bot { "Bot" } else { "User" },
        "site_admin": false,
        "url": format!("{base}/users/{login}"),
        "html_url": format!("https://github.com/{login}"),
    })
}

// ---------------------------------------------------------------------------------------------
// JSON renderings
// ---------------------------------------------------------------------------------------------

fn repo_json(st: &State, ctx: &Ctx<'_>, r: &Repo) -> Value {
    let org = st.orgs.get(&r.owner.to_ascii_lowercase());
    let mut owner = ctx.user(&r.owner);
    if let Some(o) = org {
        owner["type"] = json!("Organization");
        owner["id"] = json!(o.id);
        owner["node_id"] = json!(node_id("O", o.id));
    }
    json!({
        "id": r.id,
        "node_id": node_id("R", r.id),
        "name": r.name,
        "full_name": r.full_name(),
        "owner": owner,
        "private": r.private,
        "visibility": if r.private { "private" } else { "public" },
        "archived": r.archived,
        "disabled": false,
        "fork": false,
        "default_branch": r.default_branch,
        "html_url": format!("https://github.com/{}", r.full_name()),
        "url": ctx.repo_api(r),
    })
}

fn workflow_json(ctx: &Ctx<'_>, r: &Repo, w: &Workflow) -> Value {
    let full = r.full_name();
    json!({
        "id": w.id,
        "node_id": node_id("W", w.id),
        "name": w.name,
        "path": w.path,
        "state": w.state,
        "created_at": w.created_at,
        "updated_at": w.updated_at,
        "url": format!("{}/actions/workflows/{}", ctx.repo_api(r), w.id),
        "html_url": format!("https://github.com/{full}/blob/{}/{}", r.default_branch, w.path),
        "badge_url": format!(
            "https://github.com/{full}/workflows/{}/badge.svg",
            percent_encoding::utf8_percent_encode(&w.name, percent_encoding::NON_ALPHANUMERIC)
        ),
    })
}

fn release_json(ctx: &Ctx<'_>, r: &Repo, rel: &Release) -> Value {
    let api = format!("{}/releases/{}", ctx.repo_api(r), rel.id);
    let full = r.full_name();
    json!({
        "url": api,
        "assets_url": format!("{api}/assets"),
        "upload_url": format!("https://uploads.github.com/repos/{full}/releases/{}/assets{{?name,label}}", rel.id),
        "html_url": format!("https://github.com/{full}/releases/tag/{}", rel.tag_name),
        "tarball_url": format!("{}/tarball/{}", ctx.repo_api(r), rel.tag_name),
        "zipball_url": format!("{}/zipball/{}", ctx.repo_api(r), rel.tag_name),
        "id": rel.id,
        "node_id": node_id("RE", rel.id),
        "tag_name": rel.tag_name,
        "target_commitish": rel.target_commitish,
        "name": rel.name,
        "body": rel.body,
        "draft": rel.draft,
        "prerelease": rel.prerelease,
        "immutable": rel.immutable,
        "created_at": rel.created_at,
        "published_at": rel.published_at,
        "updated_at": rel.updated_at,
        "author": ctx.user(&rel.author),
        "assets": [],
    })
}

fn advisory_json(ctx: &Ctx<'_>, r: &Repo, a: &Advisory) -> Value {
    let mut identifiers = vec![json!({"value": a.ghsa_id, "type": "GHSA"})];
    if let Some(c) = &a.cve_id {
        identifiers.push(json!({"value": c, "type": "CVE"}));
    }
    let cvss = json!({"vector_string": a.cvss_vector_string, "score": a.cvss_score});
    let (v3, v4) = match a.cvss_vector_string.as_deref() {
        Some(v) if v.starts_with("CVSS:4.0/") => {
            (json!({"vector_string": null, "score": null}), cvss.clone())
        }
        Some(_) => (cvss.clone(), json!({"vector_string": null, "score": null})),
        None => (
            json!({"vector_string": null, "score": null}),
            json!({"vector_string": null, "score": null}),
        ),
    };
    json!({
        "ghsa_id": a.ghsa_id,
        "cve_id": a.cve_id,
        "url": format!("{}/security-advisories/{}", ctx.repo_api(r), a.ghsa_id),
        "html_url": format!("https://github.com/{}/security/advisories/{}", r.full_name(), a.ghsa_id),
        "summary": a.summary,
        "description": a.description,
        "severity": a.severity,
        "author": ctx.user(&a.author),
        "publisher": if a.published_at.is_some() { ctx.user(&a.author) } else { Value::Null },
        "identifiers": identifiers,
        "state": a.state,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "published_at": a.published_at,
        "closed_at": a.closed_at,
        "withdrawn_at": null,
        "submission": null,
        "vulnerabilities": a.vulnerabilities,
        "cvss": cvss,
        "cvss_severities": {"cvss_v3": v3, "cvss_v4": v4},
        "cwes": a.cwe_ids.iter().map(|c| json!({"cwe_id": c, "name": c})).collect::<Vec<_>>(),
        "cwe_ids": a.cwe_ids,
        "credits": a.credits,
        "credits_detailed": a.credits.iter().map(|c| json!({
            "user": ctx.user(c["login"].as_str().unwrap_or_default()),
            "type": c["type"],
            "state": "pending",
        })).collect::<Vec<_>>(),
        "collaborating_users": null,
        "collaborating_teams": null,
        "private_fork": null,
    })
}

fn label_json(ctx: &Ctx<'_>, r: &Repo, name: &str) -> Value {
    let id =
        u64::from_str_radix(&hex::encode(&Sha256::digest(name.as_bytes())[..4]), 16).unwrap_or(1);
    json!({
        "id": id,
        "node_id": node_id("LA", id),
        "url": format!("{}/labels/{}", ctx.repo_api(r), percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)),
        "name": name,
        "color": "ededed",
        "default": false,
        "description": null,
    })
}

fn issue_json(ctx: &Ctx<'_>, r: &Repo, i: &Issue) -> Value {
    let api = format!("{}/issues/{}", ctx.repo_api(r), i.number);
    json!({
        "id": i.id,
        "node_id": node_id("I", i.id),
        "url": api,
        "repository_url": ctx.repo_api(r),
        "labels_url": format!("{api}/labels{{/name}}"),
        "comments_url": format!("{api}/comments"),
        "events_url": format!("{api}/events"),
        "html_url": format!("https://github.com/{}/issues/{}", r.full_name(), i.number),
        "number": i.number,
        "state": i.state,
        "state_reason": null,
        "title": i.title,
        "body": i.body,
        "user": ctx.user(&i.user),
        "labels": i.labels.iter().map(|l| label_json(ctx, r, l)).collect::<Vec<_>>(),
        "assignee": i.assignees.first().map(|a| ctx.user(a)),
        "assignees": i.assignees.iter().map(|a| ctx.user(a)).collect::<Vec<_>>(),
        "milestone": null,
        "locked": false,
        "comments": 0,
        "closed_at": null,
        "created_at": i.created_at,
        "updated_at": i.updated_at,
        "author_association": "MEMBER",
    })
}

fn pull_as_issue_json(ctx: &Ctx<'_>, r: &Repo, p: &PullRequest) -> Value {
    let as_issue = Issue {
        id: p.id,
        number: p.number,
        title: p.title.clone(),
        body: p.body.clone(),
        state: p.state.clone(),
        labels: Vec::new(),
        assignees: Vec::new(),
        user: p.user.clone(),
        created_at: p.created_at.clone(),
        updated_at: p.updated_at.clone(),
    };
    let mut v = issue_json(ctx, r, &as_issue);
    let pulls = format!("{}/pulls/{}", ctx.repo_api(r), p.number);
    let html = format!("https://github.com/{}/pull/{}", r.full_name(), p.number);
    v["pull_request"] = json!({
        "url": pulls,
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "merged_at": null,
    });
    v["draft"] = json!(p.draft);
    v
}

fn pull_json(st: &State, ctx: &Ctx<'_>, r: &Repo, p: &PullRequest) -> Value {
    let html = format!("https://github.com/{}/pull/{}", r.full_name(), p.number);
    let repo = repo_json(st, ctx, r);
    let head_sha = r.branch_head(&p.head_ref).unwrap_or(&p.head_sha).clone();
    let base_sha = r.branch_head(&p.base_ref).cloned();
    json!({
        "url": format!("{}/pulls/{}", ctx.repo_api(r), p.number),
        "id": p.id,
        "node_id": node_id("PR", p.id),
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": format!("{}/issues/{}", ctx.repo_api(r), p.number),
        "number": p.number,
        "state": p.state,
        "locked": false,
        "title": p.title,
        "user": ctx.user(&p.user),
        "body": p.body,
        "labels": [],
        "milestone": null,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "closed_at": null,
        "merged_at": null,
        "merge_commit_sha": null,
        "assignee": null,
        "assignees": [],
        "requested_reviewers": [],
        "head": {
            "label": format!("{}:{}", r.owner, p.head_ref),
            "ref": p.head_ref,
            "sha": head_sha,
            "user": ctx.user(&r.owner),
            "repo": repo.clone(),
        },
        "base": {
            "label": format!("{}:{}", r.owner, p.base_ref),
            "ref": p.base_ref,
            "sha": base_sha,
            "user": ctx.user(&r.owner),
            "repo": repo,
        },
        "author_association": "MEMBER",
        "draft": p.draft,
        "merged": false,
        "mergeable": null,
        "maintainer_can_modify": p.maintainer_can_modify,
    })
}

fn ref_json(ctx: &Ctx<'_>, r: &Repo, full_ref: &str, sha: &str) -> Value {
    json!({
        "ref": full_ref,
        "node_id": node_id("REF", u64::from(sha1(full_ref.as_bytes())[0])),
        "url": format!("{}/git/{}", ctx.repo_api(r), full_ref),
        "object": {
            "sha": sha,
            "type": "commit",
            "url": format!("{}/git/commits/{sha}", ctx.repo_api(r)),
        },
    })
}

fn content_entry_json(
    ctx: &Ctx<'_>,
    r: &Repo,
    path: &str,
    kind: &str,
    sha: &str,
    size: usize,
    reference: &str,
) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    let full = r.full_name();
    let url = format!("{}/contents/{path}?ref={reference}", ctx.repo_api(r));
    let git_url = format!(
        "{}/git/{}/{sha}",
        ctx.repo_api(r),
        if kind == "file" { "blobs" } else { "trees" }
    );
    let html_url = format!(
        "https://github.com/{full}/{}/{reference}/{path}",
        if kind == "file" { "blob" } else { "tree" }
    );
    json!({
        "type": kind,
        "name": name,
        "path": path,
        "sha": sha,
        "size": size,
        "url": url,
        "git_url": git_url,
        "html_url": html_url,
        "download_url": if kind == "file" {
            json!(format!("https://raw.githubusercontent.com/{full}/{reference}/{path}"))
        } else {
            Value::Null
        },
        "_links": {"self": url, "git": git_url, "html": html_url},
    })
}

// ---------------------------------------------------------------------------------------------
// The handler
// ---------------------------------------------------------------------------------------------

/// What the dispatcher decided, before the common headers are added.
struct Out {
    resp: Response,
    bucket: String,
    limit: u64,
    counted: bool,
    expiry: Option<DateTime<Utc>>,
    /// A primary rate limit refusal: reset epoch.
    exhausted: Option<i64>,
    /// `x-oauth-scopes` (classic tokens).
    scopes: Option<String>,
}

impl Out {
    fn anon(resp: Response) -> Out {
        Out {
            resp,
            bucket: "anon".into(),
            limit: ANON_LIMIT,
            counted: true,
            expiry: None,
            exhausted: None,
            scopes: None,
        }
    }
}

fn bearer(req: &Request) -> Option<String> {
    let h = req.header("authorization")?.trim();
    let (scheme, rest) = h.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| rest.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn request_id(seq: u64) -> String {
    let h = Sha256::digest(seq.to_le_bytes());
    format!(
        "{}:{}:{}:{}:{:08X}",
        hex::encode_upper(&h[0..2]),
        hex::encode_upper(&h[2..4]),
        hex::encode_upper(&h[4..7]),
        hex::encode_upper(&h[7..10]),
        seq
    )
}

fn handle(state: &Mutex<State>, req: &Request) -> Response {
    let mut st = lock(state);
    let seq = next(&mut st.seq);
    let rid = request_id(seq);
    let version = req.header("x-github-api-version").map(str::trim);
    let out = dispatch(&mut st, req, &rid);
    let Out {
        mut resp,
        bucket,
        limit,
        counted,
        expiry,
        exhausted,
        scopes,
    } = out;
    let t = now().timestamp();
    let b = st.buckets.entry(bucket).or_insert(Bucket {
        limit,
        used: 0,
        reset: t + 3600,
    });
    if t >= b.reset {
        b.used = 0;
        b.reset = t + 3600;
    }
    b.limit = limit;
    if counted {
        b.used += 1;
    }
    let (used, remaining, reset) = match exhausted {
        Some(reset) => (b.limit, 0, reset),
        None => (b.used, b.limit.saturating_sub(b.used), b.reset),
    };
    resp = resp
        .with_header("x-github-request-id", &rid)
        .with_header(
            "x-github-api-version-selected",
            version
                .filter(|v| SUPPORTED_API_VERSIONS.contains(v))
                .unwrap_or(DEFAULT_API_VERSION),
        )
        .with_header("x-ratelimit-limit", &b.limit.to_string())
        .with_header("x-ratelimit-remaining", &remaining.to_string())
        .with_header("x-ratelimit-reset", &reset.to_string())
        .with_header("x-ratelimit-used", &used.to_string())
        .with_header("x-ratelimit-resource", "core");
    if let Some(s) = scopes {
        resp = resp.with_header("x-oauth-scopes", &s);
    }
    if let Some(e) = expiry {
        resp = resp.with_header(
            "github-authentication-token-expiration",
            &e.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        );
    }
    resp
}

fn dispatch(st: &mut State, req: &Request, rid: &str) -> Out {
    if req
        .header("user-agent")
        .is_none_or(|ua| ua.trim().is_empty())
    {
        return Out::anon(jresp(
            403,
            &json!({"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes."}),
        ));
    }
    match req.header("x-github-api-version").map(str::trim) {
        None => st.missing_version += 1,
        Some(v) if SUPPORTED_API_VERSIONS.contains(&v) => {}
        Some(_) => {
            return Out::anon(gh_error(
                400,
                "Unsupported 'X-GitHub-Api-Version' header specified. Please see https://docs.github.com/rest/overview/api-versions for supported API versions.",
                "https://docs.github.com/rest/overview/api-versions",
            ));
        }
    }
    let path = req.path().trim_end_matches('/');
    let base = format!("http://{}", req.header("host").unwrap_or("127.0.0.1"));

    if req.method == "GET" && path == "/rate_limit" {
        return rate_limit(st, req);
    }
    if path.starts_with("/app/") || path == "/app" {
        return app_route(st, req, &base);
    }

    let token = bearer(req);
    let info = token.as_ref().and_then(|t| st.tokens.get(t)).cloned();
    let Some(info) = info.filter(|i| i.expires_at.is_none_or(|e| e > now())) else {
        st.auth_failures += 1;
        return Out::anon(gh_error(401, "Bad credentials", DOCS));
    };
    let bucket_key = match info.installation {
        Some(id) => format!("installation:{id}"),
        None => format!("user:{}", info.login),
    };
    let mut out = Out {
        resp: Response::empty(500),
        bucket: bucket_key,
        limit: CORE_LIMIT,
        counted: true,
        expiry: info.expires_at.filter(|_| info.expiry_header),
        exhausted: None,
        scopes: info.scopes.as_ref().map(|s| s.join(", ")),
    };

    // Rate limits: refused before anything else happens.
    if let Some((reset_in, status)) = st.primary.pop_front() {
        st.rate_limited += 1;
        let who = match info.installation {
            Some(id) => format!("installation ID {id}"),
            None => format!("user ID {}", info.user_id),
        };
        let reset = now().timestamp() + reset_in;
        out.exhausted = Some(reset);
        out.resp = gh_error(
            status,
            &format!(
                "API rate limit exceeded for {who}. If you reach out to GitHub Support for help, please include the request ID {rid} and timestamp {}.",
                now().format("%Y-%m-%d %H:%M:%S UTC")
            ),
            PRIMARY_DOCS,
        );
        return out;
    }
    if let Some(rule) = st
        .secondary
        .iter_mut()
        .find(|r| r.remaining > 0 && r.pattern.matches(req))
    {
        rule.remaining -= 1;
        let (retry, status) = (rule.retry_after, rule.status);
        st.rate_limited += 1;
        out.resp = gh_error(
            status,
            &format!(
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID {rid}."
            ),
            SECONDARY_DOCS,
        )
        .with_header("retry-after", &retry.to_string());
        return out;
    }

    let Some(route) = parse_route(&req.method, req.path()) else {
        out.resp = not_found(DOCS);
        return out;
    };
    let doc = doc_url(&route);
    // Existence before permission: GitHub hides what a token cannot see behind 404.
    let exists = match &route.target {
        Target::Repo(k) => st.repos.contains_key(k),
        Target::Env(k, env) => st.repos.get(k).is_some_and(|r| r.envs.contains_key(env)),
        Target::Org(o) => st.orgs.contains_key(o),
    };
    if !exists {
        out.resp = not_found(&doc);
        return out;
    }
    let level = if req.is_mutating() { "write" } else { "read" };
    let need = needs(&route, level);
    let granted = need
        .iter()
        .all(|(p, l)| *p == "metadata" || level_ok(info.perms.get(*p).map(String::as_str), l));
    if !granted {
        let header = need
            .iter()
            .map(|(p, l)| format!("{p}={l}"))
            .collect::<Vec<_>>()
            .join(",");
        let msg = if info.installation.is_some() {
            "Resource not accessible by integration"
        } else {
            "Resource not accessible by personal access token"
        };
        out.resp = gh_error(403, msg, &doc).with_header("x-accepted-github-permissions", &header);
        return out;
    }
    if req.is_mutating()
        && let Some(k) = route.target.repo_key()
        && st.repos.get(k).is_some_and(|r| r.archived)
    {
        out.resp = gh_error(403, "Repository was archived so is read-only.", &doc);
        return out;
    }
    let ctx = Ctx {
        req,
        base,
        actor: info.login.clone(),
        doc,
    };
    out.resp = execute(st, &ctx, route);
    out
}

fn rate_limit(st: &mut State, req: &Request) -> Out {
    let (bucket, limit, expiry, scopes) = match bearer(req) {
        None => ("anon".to_string(), ANON_LIMIT, None, None),
        Some(t) => match st.tokens.get(&t) {
            Some(i) if i.expires_at.is_none_or(|e| e > now()) => (
                match i.installation {
                    Some(id) => format!("installation:{id}"),
                    None => format!("user:{}", i.login),
                },
                CORE_LIMIT,
                i.expires_at.filter(|_| i.expiry_header),
                i.scopes.as_ref().map(|s| s.join(", ")),
            ),
            _ => {
                st.auth_failures += 1;
                let mut o = Out::anon(gh_error(401, "Bad credentials", DOCS));
                o.counted = false;
                return o;
            }
        },
    };
    let t = now().timestamp();
    let b = st.buckets.get(&bucket).copied().unwrap_or(Bucket {
        limit,
        used: 0,
        reset: t + 3600,
    });
    let core = json!({"limit": limit, "used": b.used, "remaining": limit.saturating_sub(b.used), "reset": b.reset, "resource": "core"});
    let body = json!({
        "resources": {
            "core": core,
            "search": {"limit": 30, "used": 0, "remaining": 30, "reset": t + 60, "resource": "search"},
            "graphql": {"limit": limit, "used": 0, "remaining": limit, "reset": t + 3600, "resource": "graphql"},
        },
        "rate": core,
    });
    Out {
        resp: jresp(200, &body),
        bucket,
        limit,
        counted: false,
        expiry,
        exhausted: None,
        scopes,
    }
}

// ---- GitHub App ----

fn jwt_error(msg: &str) -> Response {
    gh_error(401, msg, DOCS)
}

/// Verifies an App JWT; the app id on success.
fn verify_jwt(st: &State, jwt: &str) -> Result<u64, &'static str> {
    const UNDECODABLE: &str = "A JSON web token could not be decoded";
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| UNDECODABLE)?;
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return Err(UNDECODABLE);
    }
    let payload = jwt.split('.').nth(1).ok_or(UNDECODABLE)?;
    let claims: Value = B64URL
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(UNDECODABLE)?;
    let iss = match &claims["iss"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    }
    .ok_or("'Issuer' claim ('iss') must be an Integer")?;
    let app = st
        .apps
        .iter()
        .find(|a| a.id == iss)
        .ok_or("Integration not found")?;
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(app.public_key_pem.as_bytes())
        .map_err(|_| UNDECODABLE)?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(jwt, &key, &validation).map_err(|_| UNDECODABLE)?;
    let t = now().timestamp();
    let iat = claims["iat"].as_i64().ok_or(
        "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.",
    )?;
    let exp = claims["exp"].as_i64().ok_or(
        "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.",
    )?;
    if iat > t + 60 {
        return Err(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.",
        );
    }
    if exp <= t {
        return Err(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.",
        );
    }
    if exp - iat > 600 || exp > t + 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future");
    }
    Ok(iss)
}

fn random_token(prefix: &str) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 36];
    getrandom::fill(&mut bytes).expect("random bytes");
    let tail: String = bytes
        .iter()
        .map(|b| ALNUM[(*b as usize) % ALNUM.len()] as char)
        .collect();
    format!("{prefix}{tail}")
}

fn app_route(st: &mut State, req: &Request, base: &str) -> Out {
    let segs = segments(req.path().trim_end_matches('/'));
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (inst, exchange) = match (req.method.as_str(), s.as_slice()) {
        ("GET", ["app", "installations", id]) => (id.to_string(), false),
        ("POST", ["app", "installations", id, "access_tokens"]) => (id.to_string(), true),
        _ => return Out::anon(not_found(DOCS)),
    };
    let doc = if exchange {
        "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"
    } else {
        "https://docs.github.com/rest/apps/apps#get-an-installation-for-the-authenticated-app"
    };
    let app_id = match bearer(req).map(|j| verify_jwt(st, &j)) {
        Some(Ok(id)) => id,
        Some(Err(msg)) => {
            st.auth_failures += 1;
            return Out::anon(jwt_error(msg));
        }
        None => {
            st.auth_failures += 1;
            return Out::anon(jwt_error("A JSON web token could not be decoded"));
        }
    };
    let mut out = Out {
        resp: Response::empty(500),
        bucket: format!("app:{app_id}"),
        limit: CORE_LIMIT,
        counted: true,
        expiry: None,
        exhausted: None,
        scopes: None,
    };
    let Some(app) = st
        .apps
        .iter()
        .find(|a| a.id == app_id && inst.parse::<u64>().ok() == Some(a.installation_id))
    else {
        out.resp = not_found(doc);
        return out;
    };
    let (installation_id, inst_perms) = (app.installation_id, app.perms.clone());
    let account = st
        .orgs
        .values()
        .next()
        .map(|o| o.login.clone())
        .or_else(|| st.repos.values().next().map(|r| r.owner.clone()))
        .unwrap_or_else(|| "acme".into());
    if !exchange {
        out.resp = jresp(
            200,
            &json!({
                "id": installation_id,
                "account": user_json(base, &account),
                "app_id": app_id,
                "app_slug": APP_SLUG,
                "client_id": format!("Iv1.{app_id:016x}"),
                "target_type": "Organization",
                "target_id": 1,
                "permissions": inst_perms,
                "events": [],
                "repository_selection": "all",
                "access_tokens_url": format!("{base}/app/installations/{installation_id}/access_tokens"),
                "repositories_url": format!("{base}/installation/repositories"),
                "html_url": format!("https://github.com/organizations/{account}/settings/installations/{installation_id}"),
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
                "single_file_name": null,
                "suspended_at": null,
                "suspended_by": null,
            }),
        );
        return out;
    }
    let ctx = Ctx {
        req,
        base: base.to_string(),
        actor: String::new(),
        doc: doc.to_string(),
    };
    let body = match ctx.body() {
        Ok(b) => b,
        Err(r) => {
            out.resp = r;
            return out;
        }
    };
    let perms = match body.get("permissions") {
        None | Some(Value::Null) => inst_perms.clone(),
        Some(Value::Object(m)) => {
            let mut p = BTreeMap::new();
            for (k, v) in m {
                let Some(l) = v.as_str().filter(|l| matches!(*l, "read" | "write")) else {
                    out.resp = not_one_of(doc, &format!("permissions/{k}"), v, &["read", "write"]);
                    return out;
                };
                if !level_ok(inst_perms.get(k).map(String::as_str), l) {
                    out.resp = gh_error(
                        422,
                        "The permissions requested are not granted to this installation.",
                        doc,
                    );
                    return out;
                }
                p.insert(k.clone(), l.to_string());
            }
            p
        }
        Some(v) => {
            out.resp = wrong_type(doc, "permissions", v, "an object");
            return out;
        }
    };
    let token = random_token("ghs_");
    let expires = now() + chrono::Duration::hours(1);
    let uid = next(&mut st.next_id);
    st.tokens.insert(
        token.clone(),
        TokenInfo {
            perms: perms.clone(),
            expires_at: Some(expires),
            expiry_header: false,
            login: format!("{APP_SLUG}[bot]"),
            user_id: uid,
            installation: Some(installation_id),
            scopes: None,
        },
    );
    st.installation_tokens.push(token.clone());
    out.resp = jresp(
        201,
        &json!({
            "token": token,
            "expires_at": iso(expires),
            "permissions": perms,
            "repository_selection": "all",
        }),
    );
    out
}

// ---- Endpoints ----

fn execute(st: &mut State, ctx: &Ctx<'_>, route: Route) -> Response {
    let doc = ctx.doc.as_str();
    match route.ep.clone() {
        Ep::Repo => {
            let r = &st.repos[route.target.repo_key().unwrap_or_default()];
            Some(jresp(200, &repo_json(st, ctx, r)))
        }
        Ep::SecretKey
        | Ep::SecretList
        | Ep::SecretGet(_)
        | Ep::SecretPut(_)
        | Ep::SecretDelete(_) => secrets(st, ctx, &route),
        Ep::WorkflowList | Ep::WorkflowGet(_) | Ep::WorkflowEnable(..) => {
            workflows(st, ctx, &route)
        }
        Ep::ReleaseList
        | Ep::ReleaseGet(_)
        | Ep::ReleaseTag(_)
        | Ep::ReleaseLatest
        | Ep::ReleasePatch(_) => releases(st, ctx, &route),
        Ep::AdvisoryList | Ep::AdvisoryCreate | Ep::AdvisoryGet(_) | Ep::AdvisoryPatch(_) => {
            advisories(st, ctx, &route)
        }
        Ep::IssueList | Ep::IssueCreate | Ep::IssueGet(_) => issues(st, ctx, &route),
        Ep::RefGet(_) | Ep::RefCreate | Ep::ContentsGet(_) | Ep::ContentsPut(_) => {
            git(st, ctx, &route)
        }
        Ep::PullList | Ep::PullCreate | Ep::PullGet(_) => pulls(st, ctx, &route),
    }
    .unwrap_or_else(|| not_found(doc))
}

fn secret_name_error(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("Secret names must not be empty.");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Some(
            "Secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_). Spaces are not allowed.",
        );
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Some("Secret names must not start with a number.");
    }
    if name.to_ascii_uppercase().starts_with("GITHUB_") {
        return Some("Secret names must not start with the GITHUB_ prefix.");
    }
    None
}

fn secrets(st: &mut State, ctx: &Ctx<'_>, route: &Route) -> Option<Response> {
    let doc = ctx.doc.as_str();
    let is_org = matches!(route.target, Target::Org(_));
    // Org repository ids, for `selected_repository_ids`.
    let org_repo_ids: Vec<u64> = match &route.target {
        Target::Org(o) => st
            .repos
            .values()
            .filter(|r| r.owner.eq_ignore_ascii_case(o))
            .map(|r| r.id)
            .collect(),
        _ => Vec::new(),
    };
    let org_login = match &route.target {
        Target::Org(o) => st.orgs.get(o).map(|o| o.login.clone()),
        _ => None,
    };
    let store = match &route.target {
        Target::Repo(k) => &mut st.repos.get_mut(k)?.secrets,
        Target::Env(k, e) => st.repos.get_mut(k)?.envs.get_mut(e)?,
        Target::Org(o) => &mut st.orgs.get_mut(o)?.secrets,
    };
    let meta = |s: &Secret| {
        let mut v = json!({"name": s.name, "created_at": s.created_at, "updated_at": s.updated_at});
        if let Some(vis) = &s.visibility {
            v["visibility"] = json!(vis);
            if vis == "selected" {
                v["selected_repositories_url"] = json!(format!(
                    "{}/orgs/{}/actions/secrets/{}/repositories",
                    ctx.base,
                    org_login.as_deref().unwrap_or_default(),
                    s.name
                ));
            }
        }
        v
    };
    Some(match &route.ep {
        Ep::SecretKey => jresp(
            200,
            &json!({"key_id": store.key_id, "key": B64.encode(store.key.public_key().as_bytes())}),
        ),
        Ep::SecretList => {
            let all: Vec<Value> = store.secrets.values().map(meta).collect();
            let (page, link) = paginate(ctx, &all);
            with_link(
                jresp(200, &json!({"total_count": all.len(), "secrets": page})),
                link,
            )
        }
        Ep::SecretGet(name) => match store.secrets.get(&name.to_ascii_uppercase()) {
            Some(s) => jresp(200, &meta(s)),
            None => not_found(doc),
        },
        Ep::SecretDelete(name) => match store.secrets.remove(&name.to_ascii_uppercase()) {
            Some(_) => Response::empty(204),
            None => not_found(doc),
        },
        Ep::SecretPut(name) => {
            let body = match ctx.body() {
                Ok(b) => b,
                Err(r) => return Some(r),
            };
            let encrypted = match req_string(&body, "encrypted_value", doc) {
                Ok(v) => v,
                Err(r) => return Some(r),
            };
            let key_id = match req_string(&body, "key_id", doc) {
                Ok(v) => v,
                Err(r) => return Some(r),
            };
            let mut visibility = None;
            let mut selected = Vec::new();
            if is_org {
                let vis = match one_of(&body, "visibility", &["all", "private", "selected"], doc) {
                    Ok(Some(Some(v))) => v,
                    Ok(_) => return Some(missing(doc, "visibility")),
                    Err(r) => return Some(r),
                };
                match body.get("selected_repository_ids") {
                    None | Some(Value::Null) if vis == "selected" => {
                        return Some(validation_failed(
                            doc,
                            vec![verr_msg(
                                "Secret",
                                "missing_field",
                                "selected_repository_ids",
                                "selected_repository_ids is required when visibility is selected",
                            )],
                        ));
                    }
                    None | Some(Value::Null) => {}
                    Some(_) if vis != "selected" => {
                        return Some(validation_failed(
                            doc,
                            vec![verr_msg(
                                "Secret",
                                "invalid",
                                "selected_repository_ids",
                                "selected_repository_ids can only be set when visibility is selected",
                            )],
                        ));
                    }
                    Some(Value::Array(ids)) => {
                        for v in ids {
                            match v.as_u64() {
                                Some(id) if org_repo_ids.contains(&id) => selected.push(id),
                                Some(_) => {
                                    return Some(validation_failed(
                                        doc,
                                        vec![verr("Secret", "invalid", "selected_repository_ids")],
                                    ));
                                }
                                None => {
                                    return Some(wrong_type(
                                        doc,
                                        "selected_repository_ids",
                                        v,
                                        "an integer",
                                    ));
                                }
                            }
                        }
                    }
                    Some(v) => {
                        return Some(wrong_type(doc, "selected_repository_ids", v, "an array"));
                    }
                }
                visibility = Some(vis);
            }
            if let Some(msg) = secret_name_error(name) {
                return Some(validation_failed(
                    doc,
                    vec![verr_msg("Secret", "invalid", "name", msg)],
                ));
            }
            if key_id != store.key_id {
                return Some(validation_failed(
                    doc,
                    vec![verr_msg(
                        "Secret",
                        "invalid",
                        "key_id",
                        "key_id does not match the current public key of this scope",
                    )],
                ));
            }
            let plain = B64
                .decode(encrypted.trim())
                .ok()
                .and_then(|ct| store.key.unseal(&ct).ok());
            let Some(plain) = plain else {
                return Some(validation_failed(
                    doc,
                    vec![verr_msg(
                        "Secret",
                        "invalid",
                        "encrypted_value",
                        "encrypted_value must be a base64-encoded sealed box for the scope's public key",
                    )],
                ));
            };
            if plain.len() > MAX_SECRET_BYTES {
                return Some(validation_failed(
                    doc,
                    vec![verr_msg(
                        "Secret",
                        "invalid",
                        "encrypted_value",
                        "Secrets are limited to 48 KB in size.",
                    )],
                ));
            }
            let upper = name.to_ascii_uppercase();
            let t = now_iso();
            let value = String::from_utf8_lossy(&plain).into_owned();
            match store.secrets.get_mut(&upper) {
                Some(s) => {
                    s.value = value;
                    s.updated_at = t;
                    s.visibility = visibility;
                    s.selected_repository_ids = selected;
                    Response::empty(204)
                }
                None => {
                    store.secrets.insert(
                        upper.clone(),
                        Secret {
                            name: upper,
                            value,
                            created_at: t.clone(),
                            updated_at: t,
                            visibility,
                            selected_repository_ids: selected,
                        },
                    );
                    jresp(201, &json!({}))
                }
            }
        }
        _ => return None,
    })
}

fn find_workflow<'a>(r: &'a mut Repo, id: &str) -> Option<&'a mut Workflow> {
    r.workflows
        .iter_mut()
        .find(|w| id.parse::<u64>().ok() == Some(w.id) || w.path.rsplit('/').next() == Some(id))
}

fn workflows(st: &mut State, ctx: &Ctx<'_>, route: &Route) -> Option<Response> {
    let r = st.repos.get_mut(route.target.repo_key()?)?;
    Some(match &route.ep {
        Ep::WorkflowList => {
            let all: Vec<Workflow> = r.workflows.clone();
            let (page, link) = paginate(ctx, &all);
            let page: Vec<Value> = page.iter().map(|w| workflow_json(ctx, r, w)).collect();
            with_link(
                jresp(200, &json!({"total_count": all.len(), "workflows": page})),
                link,
            )
        }
        Ep::WorkflowGet(id) => {
            let w = find_workflow(r, id)?.clone();
            jresp(200, &workflow_json(ctx, r, &w))
        }
        Ep::WorkflowEnable(id, enable) => {
            let w = find_workflow(r, id)?;
            w.state = if *enable {
                "active"
            } else {
                "disabled_manually"
            }
            .into();
            w.updated_at = now_iso();
            Response::empty(204)
        }
        _ => return None,
    })
}

fn apply_make_latest(r: &mut Repo, id: u64, make_latest: &str) {
    let Some(rel) = r.releases.iter_mut().find(|x| x.id == id) else {
        return;
    };
    match make_latest {
        "true" => {
            rel.latest_opt_out = false;
            if !rel.draft && !rel.prerelease {
                r.explicit_latest = Some(id);
            }
        }
        "false" => {
            rel.latest_opt_out = true;
            if r.explicit_latest == Some(id) {
                r.explicit_latest = None;
            }
        }
        _ => {
            rel.latest_opt_out = false;
            r.explicit_latest = None;
        }
    }
}

fn releases(st: &mut State, ctx: &Ctx<'_>, route: &Route) -> Option<Response> {
    let doc = ctx.doc.as_str();
    let r = st.repos.get_mut(route.target.repo_key()?)?;
    Some(match &route.ep {
        Ep::ReleaseList => {
            let mut all = r.releases.clone();
            all.sort_by(|a, b| (&b.created_at, b.id).cmp(&(&a.created_at, a.id)));
            let (page, link) = paginate(ctx, &all);
            let page: Vec<Value> = page.iter().map(|x| release_json(ctx, r, x)).collect();
            with_link(jresp(200, &json!(page)), link)
        }
        Ep::ReleaseGet(id) => {
            let id = id.parse::<u64>().ok()?;
            jresp(
                200,
                &release_json(ctx, r, r.releases.iter().find(|x| x.id == id)?),
            )
        }
        Ep::ReleaseTag(tag) => {
            let rel = r.releases.iter().find(|x| &x.tag_name == tag && !x.draft)?;
            jresp(200, &release_json(ctx, r, rel))
        }
        Ep::ReleaseLatest => jresp(200, &release_json(ctx, r, r.latest()?)),
        Ep::ReleasePatch(id) => {
            let id = id.parse::<u64>().ok()?;
            let idx = r.releases.iter().position(|x| x.id == id)?;
            let body = match ctx.body() {
                Ok(b) => b,
                Err(e) => return Some(e),
            };
            let parsed = (|| -> Result<_, Response> {
                Ok((
                    opt_nonnull_string(&body, "tag_name", doc)?,
                    opt_nonnull_string(&body, "target_commitish", doc)?,
                    opt_string(&body, "name", doc)?,
                    opt_string(&body, "body", doc)?,
                    opt_bool(&body, "draft", doc)?,
                    opt_bool(&body, "prerelease", doc)?,
                    match body.get("make_latest") {
                        None => None,
                        Some(Value::String(s))
                            if matches!(s.as_str(), "true" | "false" | "legacy") =>
                        {
                            Some(s.clone())
                        }
                        Some(v @ Value::String(_)) => {
                            return Err(not_one_of(
                                doc,
                                "make_latest",
                                v,
                                &["true", "false", "legacy"],
                            ));
                        }
                        Some(v) => return Err(wrong_type(doc, "make_latest", v, "a string")),
                    },
                    opt_string(&body, "discussion_category_name", doc)?,
                ))
            })();
            let (tag, target, name, text, draft, prerelease, make_latest, discussion) = match parsed
            {
                Ok(p) => p,
                Err(e) => return Some(e),
            };
            let cur = r.releases[idx].clone();
            if cur.immutable && !cur.draft {
                let mut errors = Vec::new();
                if tag.as_ref().is_some_and(|t| *t != cur.tag_name) {
                    errors.push(verr_msg(
                        "Release",
                        "custom",
                        "tag_name",
                        "Cannot change the tag_name of an immutable release.",
                    ));
                }
                if target.as_ref().is_some_and(|t| *t != cur.target_commitish) {
                    errors.push(verr_msg(
                        "Release",
                        "custom",
                        "target_commitish",
                        "Cannot change the target_commitish of an immutable release.",
                    ));
                }
                if draft.is_some_and(|d| d != cur.draft) {
                    errors.push(verr_msg(
                        "Release",
                        "custom",
                        "draft",
                        "Cannot change the draft state of an immutable release.",
                    ));
                }
                if !errors.is_empty() {
                    return Some(validation_failed(doc, errors));
                }
            }
            if let Some(t) = &tag {
                if t.trim().is_empty() {
                    return Some(validation_failed(
                        doc,
                        vec![verr("Release", "missing_field", "tag_name")],
                    ));
                }
                if r.releases.iter().any(|x| x.id != id && &x.tag_name == t) {
                    return Some(validation_failed(
                        doc,
                        vec![verr("Release", "already_exists", "tag_name")],
                    ));
                }
            }
            let t = now_iso();
            let newly_published = draft == Some(false) && cur.draft;
            {
                let rel = &mut r.releases[idx];
                if let Some(v) = tag {
                    rel.tag_name = v;
                }
                if let Some(v) = target {
                    rel.target_commitish = v;
                }
                if let Some(v) = name {
                    rel.name = v;
                }
                if let Some(v) = text {
                    rel.body = v;
                }
                if let Some(v) = prerelease {
                    rel.prerelease = v;
                }
                if let Some(d) = draft {
                    rel.draft = d;
                    rel.published_at = if d {
                        None
                    } else {
                        rel.published_at.clone().or(Some(t.clone()))
                    };
                }
                if let Some(v) = discussion {
                    rel.discussion_category_name = v;
                }
                rel.updated_at = t;
                rel.patches.push(Value::Object(body.clone()));
            }
            match make_latest.as_deref() {
                Some(m) => apply_make_latest(r, id, m),
                None if newly_published => apply_make_latest(r, id, "true"),
                None => {}
            }
            jresp(200, &release_json(ctx, r, &r.releases[idx]))
        }
        _ => return None,
    })
}

/// Parsed `vulnerabilities`, `cwe_ids`, `credits` (each `None` when absent).
type AdvisoryLists = (Option<Vec<Value>>, Option<Vec<String>>, Option<Vec<Value>>);

fn parse_advisory_fields(body: &Obj, doc: &str, creating: bool) -> Result<AdvisoryLists, Response> {
    for key in ["summary", "description"] {
        if creating {
            req_string(body, key, doc)?;
        } else {
            opt_nonnull_string(body, key, doc)?;
        }
    }
    if let Some(s) = body.get("summary").and_then(Value::as_str)
        && s.chars().count() > 1024
    {
        return Err(validation_failed(
            doc,
            vec![verr("RepositoryAdvisory", "too_long", "summary")],
        ));
    }
    if let Some(s) = body.get("description").and_then(Value::as_str)
        && s.chars().count() > 65535
    {
        return Err(validation_failed(
            doc,
            vec![verr("RepositoryAdvisory", "too_long", "description")],
        ));
    }
    let vulns = match body.get("vulnerabilities") {
        None if creating => return Err(missing(doc, "vulnerabilities")),
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for v in a {
                let Some(o) = v.as_object() else {
                    return Err(wrong_type(doc, "vulnerabilities/items", v, "an object"));
                };
                let pkg = match o.get("package") {
                    Some(Value::Object(p)) => p,
                    None => return Err(missing(doc, "vulnerabilities/items/package")),
                    Some(v) => {
                        return Err(wrong_type(
                            doc,
                            "vulnerabilities/items/package",
                            v,
                            "an object",
                        ));
                    }
                };
                let eco = match pkg.get("ecosystem") {
                    Some(Value::String(e)) if ECOSYSTEMS.contains(&e.as_str()) => e.clone(),
                    Some(v) => {
                        return Err(not_one_of(
                            doc,
                            "vulnerabilities/items/package/ecosystem",
                            v,
                            &ECOSYSTEMS,
                        ));
                    }
                    None => return Err(missing(doc, "vulnerabilities/items/package/ecosystem")),
                };
                let pname = match pkg.get("name") {
                    None | Some(Value::Null) => Value::Null,
                    Some(Value::String(s)) => json!(s),
                    Some(v) => {
                        return Err(wrong_type(
                            doc,
                            "vulnerabilities/items/package/name",
                            v,
                            "a string",
                        ));
                    }
                };
                let mut item = json!({"package": {"ecosystem": eco, "name": pname}});
                for key in ["vulnerable_version_range", "patched_versions"] {
                    item[key] = match o.get(key) {
                        None | Some(Value::Null) => Value::Null,
                        Some(Value::String(s)) => json!(s),
                        Some(v) => {
                            return Err(wrong_type(
                                doc,
                                &format!("vulnerabilities/items/{key}"),
                                v,
                                "a string",
                            ));
                        }
                    };
                }
                item["vulnerable_functions"] = match o.get("vulnerable_functions") {
                    None | Some(Value::Null) => Value::Null,
                    Some(Value::Array(f)) if f.iter().all(Value::is_string) => json!(f),
                    Some(v) => {
                        return Err(wrong_type(
                            doc,
                            "vulnerabilities/items/vulnerable_functions",
                            v,
                            "an array of strings",
                        ));
                    }
                };
                out.push(item);
            }
            Some(out)
        }
        Some(v) => return Err(wrong_type(doc, "vulnerabilities", v, "an array")),
    };
    let cwes = opt_string_array(body, "cwe_ids", doc)?;
    if let Some(c) = &cwes
        && let Some(bad) = c.iter().find(|c| {
            c.strip_prefix("CWE-")
                .is_none_or(|n| n.is_empty() || !n.chars().all(|d| d.is_ascii_digit()))
        })
    {
        return Err(validation_failed(
            doc,
            vec![verr_msg(
                "RepositoryAdvisory",
                "invalid",
                "cwe_ids",
                &format!("{bad} is not a valid CWE id"),
            )],
        ));
    }
    const CREDIT_TYPES: [&str; 10] = [
        "analyst",
        "finder",
        "reporter",
        "coordinator",
        "remediation_developer",
        "remediation_reviewer",
        "remediation_verifier",
        "tool",
        "sponsor",
        "other",
    ];
    let credits = match body.get("credits") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for c in a {
                let login = match c.get("login") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => return Err(wrong_type(doc, "credits/items/login", v, "a string")),
                    None => return Err(missing(doc, "credits/items/login")),
                };
                let ty = match c.get("type") {
                    Some(Value::String(t)) if CREDIT_TYPES.contains(&t.as_str()) => t.clone(),
                    Some(v) => return Err(not_one_of(doc, "credits/items/type", v, &CREDIT_TYPES)),
                    None => return Err(missing(doc, "credits/items/type")),
                };
                out.push(json!({"login": login, "type": ty}));
            }
            Some(out)
        }
        Some(v) => return Err(wrong_type(doc, "credits", v, "an array")),
    };
    one_of(
        body,
        "severity",
        &["critical", "high", "medium", "low"],
        doc,
    )?;
    opt_string(body, "cvss_vector_string", doc)?;
    opt_string(body, "cve_id", doc)?;
    opt_bool(body, "start_private_fork", doc)?;
    let sev = body.get("severity").is_some_and(|v| !v.is_null());
    let cvss = body.get("cvss_vector_string").is_some_and(|v| !v.is_null());
    if sev && cvss {
        return Err(validation_failed(
            doc,
            vec![verr_msg(
                "RepositoryAdvisory",
                "invalid",
                "severity",
                "Cannot specify both severity and cvss_vector_string",
            )],
        ));
    }
    if let Some(v) = body.get("cvss_vector_string").and_then(Value::as_str)
        && cvss3_score(v).is_none()
        && !v.starts_with("CVSS:4.0/")
    {
        return Err(validation_failed(
            doc,
            vec![verr_msg(
                "RepositoryAdvisory",
                "invalid",
                "cvss_vector_string",
                "Invalid CVSS vector string",
            )],
        ));
    }
    if let Some(c) = body.get("cve_id").and_then(Value::as_str) {
        let ok = c
            .strip_prefix("CVE-")
            .and_then(|r| r.split_once('-'))
            .is_some_and(|(y, n)| {
                y.len() == 4
                    && n.len() >= 4
                    && (y.to_string() + n).chars().all(|d| d.is_ascii_digit())
            });
        if !ok {
            return Err(validation_failed(
                doc,
                vec![verr("RepositoryAdvisory", "invalid", "cve_id")],
            ));
        }
    }
    Ok((vulns, cwes, credits))
}

fn severity_and_score(body: &Obj) -> (Option<String>, Option<String>, Option<f64>) {
    if let Some(v) = body.get("cvss_vector_string").and_then(Value::as_str) {
        let score = cvss3_score(v);
        return (
            score.map(|s| severity_of(s).to_string()),
            Some(v.to_string()),
            score,
        );
    }
    (
        body.get("severity")
            .and_then(Value::as_str)
            .map(str::to_string),
        None,
        None,
    )
}

fn cursor_of(a: &Advisory) -> String {
    B64URL.encode(format!("v1:{}", a.seq))
}

fn advisories(st: &mut State, ctx: &Ctx<'_>, route: &Route) -> Option<Response> {
    let doc = ctx.doc.as_str();
    let seq = next(&mut st.next_id);
    let r = st.repos.get_mut(route.target.repo_key()?)?;
    Some(match &route.ep {
        Ep::AdvisoryCreate => {
            let body = match ctx.body() {
                Ok(b) => b,
                Err(e) => return Some(e),
            };
            let (vulns, cwes, credits) = match parse_advisory_fields(&body, doc, true) {
                Ok(v) => v,
                Err(e) => return Some(e),
            };
            let (severity, cvss_vector_string, cvss_score) = severity_and_score(&body);
            let t = now_iso();
            let a = Advisory {
                ghsa_id: ghsa_id(&format!("{}#{seq}", r.full_name())),
                cve_id: body
                    .get("cve_id")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                summary: body["summary"].as_str().unwrap_or_default().to_string(),
                description: body["description"].as_str().unwrap_or_default().to_string(),
                severity,
                cvss_vector_string,
                cvss_score,
                state: "draft".into(),
                vulnerabilities: vulns.unwrap_or_default(),
                cwe_ids: cwes.unwrap_or_default(),
                credits: credits.unwrap_or_default(),
                start_private_fork: body
                    .get("start_private_fork")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                author: ctx.actor.clone(),
                created_at: t.clone(),
                updated_at: t,
                published_at: None,
                closed_at: None,
                patches: Vec::new(),
                seq,
            };
            let v = advisory_json(ctx, r, &a);
            r.advisories.push(a);
            jresp(201, &v)
        }
        Ep::AdvisoryGet(id) => {
            let a = r
                .advisories
                .iter()
                .find(|a| a.ghsa_id.eq_ignore_ascii_case(id))?;
            jresp(200, &advisory_json(ctx, r, a))
        }
        Ep::AdvisoryList => {
            let state = ctx.req.query_param("state");
            if let Some(s) = &state
                && !["triage", "draft", "published", "closed"].contains(&s.as_str())
            {
                return Some(not_one_of(
                    doc,
                    "state",
                    &json!(s),
                    &["triage", "draft", "published", "closed"],
                ));
            }
            let sort = ctx
                .req
                .query_param("sort")
                .unwrap_or_else(|| "created".into());
            let asc = ctx.req.query_param("direction").as_deref() == Some("asc");
            let mut all: Vec<&Advisory> = r
                .advisories
                .iter()
                .filter(|a| state.as_ref().is_none_or(|s| &a.state == s))
                .collect();
            all.sort_by(|a, b| {
                let key = |x: &Advisory| match sort.as_str() {
                    "updated" => x.updated_at.clone(),
                    "published" => x.published_at.clone().unwrap_or_default(),
                    _ => x.created_at.clone(),
                };
                (key(a), a.seq).cmp(&(key(b), b.seq))
            });
            if !asc {
                all.reverse();
            }
            let per = ctx.per_page();
            let pos = |c: &str| all.iter().position(|a| cursor_of(a) == c);
            let (start, end) = if let Some(c) = ctx.req.query_param("after") {
                let s = match pos(&c) {
                    Some(i) => i + 1,
                    None if c.is_empty() => 0,
                    None => return Some(gh_error(400, "Invalid cursor", doc)),
                };
                (s, (s + per).min(all.len()))
            } else if let Some(c) = ctx.req.query_param("before").filter(|c| !c.is_empty()) {
                let e = match pos(&c) {
                    Some(i) => i,
                    None => return Some(gh_error(400, "Invalid cursor", doc)),
                };
                (e.saturating_sub(per), e)
            } else {
                (0, per.min(all.len()))
            };
            let mut links = Vec::new();
            if start > 0 && start <= all.len() && end > start {
                links.push(format!(
                    "<{}>; rel=\"prev\"",
                    ctx.url_with(
                        &["after", "before", "page"],
                        ("before", &cursor_of(all[start]))
                    )
                ));
            }
            if end < all.len() && end > 0 {
                links.push(format!(
                    "<{}>; rel=\"next\"",
                    ctx.url_with(
                        &["after", "before", "page"],
                        ("after", &cursor_of(all[end - 1]))
                    )
                ));
            }
            let page: Vec<Value> = all[start..end]
                .iter()
                .map(|a| advisory_json(ctx, r, a))
                .collect();
            with_link(
                jresp(200, &json!(page)),
                (!links.is_empty()).then(|| links.join(", ")),
            )
        }
        Ep::AdvisoryPatch(id) => {
            let idx = r
                .advisories
                .iter()
                .position(|a| a.ghsa_id.eq_ignore_ascii_case(id))?;
            let body = match ctx.body() {
                Ok(b) => b,
                Err(e) => return Some(e),
            };
            let (vulns, cwes, credits) = match parse_advisory_fields(&body, doc, false) {
                Ok(v) => v,
                Err(e) => return Some(e),
            };
            let state = match one_of(&body, "state", &["published", "closed", "draft"], doc) {
                Ok(s) => s.flatten(),
                Err(e) => return Some(e),
            };
            let a = &mut r.advisories[idx];
            if a.state == "published" && state.as_deref() == Some("draft") {
                return Some(validation_failed(
                    doc,
                    vec![verr_msg(
                        "RepositoryAdvisory",
                        "invalid",
                        "state",
                        "A published advisory cannot go back to draft",
                    )],
                ));
            }
            let t = now_iso();
            if let Some(s) = body.get("summary").and_then(Value::as_str) {
                a.summary = s.to_string();
            }
            if let Some(s) = body.get("description").and_then(Value::as_str) {
                a.description = s.to_string();
            }
            if body.contains_key("severity") || body.contains_key("cvss_vector_string") {
                let (sev, vec, score) = severity_and_score(&body);
                a.severity = sev;
                a.cvss_vector_string = vec;
                a.cvss_score = score;
            }
            if let Some(v) = vulns {
                a.vulnerabilities = v;
            }
            if let Some(c) = cwes {
                a.cwe_ids = c;
            }
            if let Some(c) = credits {
                a.credits = c;
            }
            if let Some(s) = state {
                match s.as_str() {
                    "published" if a.published_at.is_none() => a.published_at = Some(t.clone()),
                    "closed" => a.closed_at = Some(t.clone()),
                    _ => {}
                }
                a.state = s;
            }
            a.updated_at = t;
            a.patches.push(Value::Object(body.clone()));
            let a = r.advisories[idx].clone();
            jresp(200, &advisory_json(ctx, r, &a))
        }
        _ => return None,
    })
}

fn issues(st: &mut State, ctx: &Ctx<'_>, route: &Route) -> Option<Response> {
    let doc = ctx.doc.as_str();
    let id = next(&mut st.next_id);
    let r = st.repos.get_mut(route.target.repo_key()?)?;
    Some(match &route.ep {
        Ep::IssueCreate => {
            let body = match ctx.body() {
                Ok(b) => b,
                Err(e) => return Some(e),
            };
            let title = match body.get("title") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(v) => return Some(wrong_type(doc, "title", v, "a string")),
                None => return Some(missing(doc, "title")),
            };
            if title.trim().is_empty() {
                return Some(validation_failed(
                    doc,
                    vec![verr("Issue", "missing_field", "title")],
                ));
            }
            let text = match opt_string(&body, "body", doc) {
                Ok(b) => b.flatten(),
                Err(e) => return Some(e),
            };
            let labels = match body.get("labels") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => {
                    let mut out = Vec::new();
                    for l in a {
                        match l {
                            Value::String(s) => out.push(s.clone()),
                            Value::Object(o) if o.get("name").is_some_and(Value::is_string) => {
                                out.push(o["name"].as_str().unwrap_or_default().to_string())
                            }
                            v => return Some(wrong_type(doc, "labels/items", v, "a string")),
                        }
                    }
                    out
                }
                Some(v) => return Some(wrong_type(doc, "labels", v, "an array")),
            };
            let mut assignees = match opt_string_array(&body, "assignees", doc) {
                Ok(a) => a.unwrap_or_default(),
                Err(e) => return Some(e),
            };
            match opt_string(&body, "assignee", doc) {
                Ok(Some(Some(a))) if !assignees.contains(&a) => assignees.insert(0, a),
                Ok(_) => {}
                Err(e) => return Some(e),
            }
            r.next_number += 1;
            let t = now_iso();
            let issue = Issue {
                id,
                number: r.next_number,
                title,
                body: text,
                state: "open".into(),
                labels,
                assignees,
                user: ctx.actor.clone(),
                created_at: t.clone(),
                updated_at: t,
            };
            let v = issue_json(ctx, r, &issue);
            r.issues.push(issue);
            jresp(201, &v).with_header("location", v["url"].as_str().unwrap_or_default())
        }
        Ep::IssueGet(n) => {
            let n = n.parse::<u64>().ok()?;
            if let Some(i) = r.issues.iter().find(|i| i.number == n) {
                jresp(200, &issue_json(ctx, r, i))
            } else {
                let p = r.pulls.iter().find(|p| p.number == n)?;
                jresp(200, &pull_as_issue_json(ctx, r, p))
            }
        }
        Ep::IssueList => {
            let q = |k: &str| ctx.req.query_param(k);
            let state = q("state").unwrap_or_else(|| "open".into());
            if !["open", "closed", "all"].contains(&state.as_str()) {
                return Some(not_one_of(
                    doc,
                    "state",
                    &json!(state),
                    &["open", "closed", "all"],
                ));
            }
            let want_labels: Vec<String> = q("labels")
                .map(|l| {
                    l.split(',')
                        .map(|s| s.trim().to_ascii_lowercase())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let creator = q("creator");
            let assignee = q("assignee");
            // (number, updated_at, value)
            let mut all: Vec<(u64, String, Value)> = Vec::new();
            for i in &r.issues {
                let has_labels = want_labels
                    .iter()
                    .all(|w| i.labels.iter().any(|l| l.eq_ignore_ascii_case(w)));
                let assignee_ok = match assignee.as_deref() {
                    None => true,
                    Some("none") => i.assignees.is_empty(),
                    Some("*") => !i.assignees.is_empty(),
                    Some(a) => i.assignees.iter().any(|x| x.eq_ignore_ascii_case(a)),
                };
                if (state == "all" || i.state == state)
                    && has_labels
                    && assignee_ok
                    && creator
                        .as_ref()
                        .is_none_or(|c| i.user.eq_ignore_ascii_case(c))
                {
                    all.push((i.number, i.updated_at.clone(), issue_json(ctx, r, i)));
                }
            }
            for p in &r.pulls {
                if (state == "all" || p.state == state)
                    && want_labels.is_empty()
                    && matches!(assignee.as_deref(), None | Some("none"))
                    && creator
                        .as_ref()
                        .is_none_or(|c| p.user.eq_ignore_ascii_case(c))
                {
                    all.push((
                        p.number,
                        p.updated_at.clone(),
                        pull_as_issue_json(ctx, r, p),
                    ));
                }
            }
            if q("sort").as_deref() == Some("updated") {
                all.sort_by(|a, b| (&a.1, a.0).cmp(&(&b.1, b.0)));
            } else {
                all.sort_by_key(|a| a.0);
            }
            if q("direction").as_deref() != Some("asc") {
                all.reverse();
            }
            let values: Vec<Value> = all.into_iter().map(|a| a.2).collect();
            let (page, link) = paginate(ctx, &values);
            with_link(jresp(200, &json!(page)), link)
        }
        _ => return None,
    })
}

fn git(st: &mut State, ctx: &Ctx<'_>, route: &Route) -> Option<Response> {
    let doc = ctx.doc.as_str();
    let seq = next(&mut st.next_id);
    let r = st.repos.get_mut(route.target.repo_key()?)?;
    Some(match &route.ep {
        Ep::RefGet(rf) => {
            let full = format!("refs/{rf}");
            let sha = r.refs.get(&full)?;
            jresp(200, &ref_json(ctx, r, &full, sha))
        }
        Ep::RefCreate => {
            let body = match ctx.body() {
                Ok(b) => b,
                Err(e) => return Some(e),
            };
            let (full, sha) = match (req_string(&body, "ref", doc), req_string(&body, "sha", doc)) {
                (Ok(f), Ok(s)) => (f, s),
                (Err(e), _) | (_, Err(e)) => return Some(e),
            };
            if !full.starts_with("refs/") || full.matches('/').count() < 2 || full.ends_with('/') {
                return Some(gh_error(
                    422,
                    "Reference name must start with 'refs/' and have at least two slashes.",
                    doc,
                ));
            }
            if r.refs.contains_key(&full) {
                return Some(gh_error(422, "Reference already exists", doc));
            }
            if !r.commits.contains_key(&sha) {
                return Some(gh_error(422, "Object does not exist", doc));
            }
            r.refs.insert(full.clone(), sha.clone());
            let v = ref_json(ctx, r, &full, &sha);
            jresp(201, &v).with_header("location", v["url"].as_str().unwrap_or_default())
        }
        Ep::ContentsGet(path) => {
            let reference = ctx.req.query_param("ref").filter(|s| !s.is_empty());
            let label = reference
                .clone()
                .unwrap_or_else(|| r.default_branch.clone());
            let Some(sha) = r.resolve(&label) else {
                return Some(gh_error(
                    404,
                    &format!("No commit found for the ref {label}"),
                    doc,
                ));
            };
            let commit = r.commits.get(&sha)?;
            let path = path.trim_matches('/');
            if let Some(content) = commit.files.get(path) {
                let mut v = content_entry_json(
                    ctx,
                    r,
                    path,
                    "file",
                    &blob_sha(content),
                    content.len(),
                    &label,
                );
                v["content"] = json!(wrapped_base64(content));
                v["encoding"] = json!("base64");
                return Some(jresp(200, &v));
            }
            let prefix = if path.is_empty() {
                String::new()
            } else {
                format!("{path}/")
            };
            let mut entries: BTreeMap<String, Value> = BTreeMap::new();
            for (p, c) in &commit.files {
                let Some(rest) = p.strip_prefix(&prefix) else {
                    continue;
                };
                let entry = match rest.split_once('/') {
                    None => content_entry_json(ctx, r, p, "file", &blob_sha(c), c.len(), &label),
                    Some((dir, _)) => {
                        let dp = format!("{prefix}{dir}");
                        let sub: BTreeMap<String, Vec<u8>> = commit
                            .files
                            .iter()
                            .filter(|(k, _)| k.starts_with(&format!("{dp}/")))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        content_entry_json(ctx, r, &dp, "dir", &tree_sha(&sub), 0, &label)
                    }
                };
                entries.insert(
                    entry["name"].as_str().unwrap_or_default().to_string(),
                    entry,
                );
            }
            if entries.is_empty() {
                return None;
            }
            jresp(200, &json!(entries.into_values().collect::<Vec<_>>()))
        }
        Ep::ContentsPut(path) => {
            let body = match ctx.body() {
                Ok(b) => b,
                Err(e) => return Some(e),
            };
            let parsed = (|| -> Result<_, Response> {
                Ok((
                    req_string(&body, "message", doc)?,
                    req_string(&body, "content", doc)?,
                    opt_nonnull_string(&body, "sha", doc)?,
                    opt_nonnull_string(&body, "branch", doc)?,
                ))
            })();
            let (message, content, sha, branch) = match parsed {
                Ok(p) => p,
                Err(e) => return Some(e),
            };
            let path = path.trim_matches('/').to_string();
            if path.is_empty()
                || path
                    .split('/')
                    .any(|s| s.is_empty() || s == "." || s == "..")
            {
                return Some(validation_failed(
                    doc,
                    vec![verr("Content", "invalid", "path")],
                ));
            }
            let cleaned: String = content
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            let Ok(bytes) = B64.decode(cleaned) else {
                return Some(invalid_request(doc, "content is not valid Base64"));
            };
            let branch = branch.unwrap_or_else(|| r.default_branch.clone());
            let Some(head) = r.branch_head(&branch).cloned() else {
                return Some(gh_error(404, &format!("Branch {branch} not found"), doc));
            };
            let existing = r
                .commits
                .get(&head)
                .and_then(|c| c.files.get(&path))
                .map(|c| blob_sha(c));
            let created = match (&existing, &sha) {
                (Some(_), None) => return Some(missing(doc, "sha")),
                (Some(cur), Some(given)) if cur != given => {
                    return Some(gh_error(
                        409,
                        &format!("{path} does not match {given}"),
                        doc,
                    ));
                }
                (Some(_), Some(_)) => false,
                (None, _) => true,
            };
            let size = bytes.len();
            let blob = blob_sha(&bytes);
            let commit_sha = commit_file(r, seq, &branch, &path, bytes, &message);
            let c = r.commits[&commit_sha].clone();
            let parent = c.parent.clone().unwrap_or_default();
            let api = ctx.repo_api(r);
            let person = json!({"name": ctx.actor, "email": format!("{}@users.noreply.github.com", ctx.actor), "date": now_iso()});
            let v = json!({
                "content": content_entry_json(ctx, r, &path, "file", &blob, size, &branch),
                "commit": {
                    "sha": commit_sha,
                    "node_id": node_id("C", seq),
                    "url": format!("{api}/git/commits/{commit_sha}"),
                    "html_url": format!("https://github.com/{}/commit/{commit_sha}", r.full_name()),
                    "author": person,
                    "committer": person,
                    "message": c.message,
                    "tree": {"url": format!("{api}/git/trees/{}", c.tree), "sha": c.tree},
                    "parents": [{"url": format!("{api}/git/commits/{parent}"), "html_url": format!("https://github.com/{}/commit/{parent}", r.full_name()), "sha": parent}],
                    "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null},
                },
            });
            jresp(if created { 201 } else { 200 }, &v)
        }
        _ => return None,
    })
}

fn pulls(st: &mut State, ctx: &Ctx<'_>, route: &Route) -> Option<Response> {
    let doc = ctx.doc.as_str();
    let id = next(&mut st.next_id);
    let key = route.target.repo_key()?.to_string();
    match &route.ep {
        Ep::PullCreate => {
            let body = match ctx.body() {
                Ok(b) => b,
                Err(e) => return Some(e),
            };
            let parsed = (|| -> Result<_, Response> {
                Ok((
                    req_string(&body, "title", doc)?,
                    req_string(&body, "head", doc)?,
                    req_string(&body, "base", doc)?,
                    opt_string(&body, "body", doc)?.flatten(),
                    opt_bool(&body, "draft", doc)?.unwrap_or(false),
                    opt_bool(&body, "maintainer_can_modify", doc)?.unwrap_or(true),
                ))
            })();
            let (title, head, base, text, draft, mcm) = match parsed {
                Ok(p) => p,
                Err(e) => return Some(e),
            };
            let r = st.repos.get_mut(&key)?;
            let (head_owner, head_ref) = match head.split_once(':') {
                Some((o, b)) => (o.to_string(), b.to_string()),
                None => (r.owner.clone(), head.clone()),
            };
            let head_sha = r.branch_head(&head_ref).cloned();
            let Some(head_sha) = head_sha.filter(|_| head_owner.eq_ignore_ascii_case(&r.owner))
            else {
                return Some(validation_failed(
                    doc,
                    vec![verr("PullRequest", "invalid", "head")],
                ));
            };
            let Some(base_sha) = r.branch_head(&base).cloned() else {
                return Some(validation_failed(
                    doc,
                    vec![verr("PullRequest", "invalid", "base")],
                ));
            };
            if r.pulls
                .iter()
                .any(|p| p.state == "open" && p.head_ref == head_ref && p.base_ref == base)
            {
                return Some(validation_failed(
                    doc,
                    vec![custom(
                        "PullRequest",
                        &format!("A pull request already exists for {}:{head_ref}.", r.owner),
                    )],
                ));
            }
            if r.is_ancestor(&head_sha, &base_sha) {
                return Some(validation_failed(
                    doc,
                    vec![custom(
                        "PullRequest",
                        &format!("No commits between {base} and {head_ref}"),
                    )],
                ));
            }
            r.next_number += 1;
            let t = now_iso();
            let p = PullRequest {
                id,
                number: r.next_number,
                title,
                body: text,
                state: "open".into(),
                head_ref,
                head_sha,
                base_ref: base,
                draft,
                maintainer_can_modify: mcm,
                user: ctx.actor.clone(),
                created_at: t.clone(),
                updated_at: t,
            };
            let r = &st.repos[&key];
            let v = pull_json(st, ctx, r, &p);
            st.repos.get_mut(&key)?.pulls.push(p);
            Some(jresp(201, &v).with_header("location", v["url"].as_str().unwrap_or_default()))
        }
        Ep::PullGet(n) => {
            let n = n.parse::<u64>().ok()?;
            let r = st.repos.get(&key)?;
            let p = r.pulls.iter().find(|p| p.number == n)?;
            Some(jresp(200, &pull_json(st, ctx, r, p)))
        }
        Ep::PullList => {
            let r = st.repos.get(&key)?;
            let q = |k: &str| ctx.req.query_param(k).filter(|v| !v.is_empty());
            let state = q("state").unwrap_or_else(|| "open".into());
            if !["open", "closed", "all"].contains(&state.as_str()) {
                return Some(not_one_of(
                    doc,
                    "state",
                    &json!(state),
                    &["open", "closed", "all"],
                ));
            }
            let head = q("head").map(|h| match h.split_once(':') {
                Some((o, b)) => (Some(o.to_string()), b.to_string()),
                None => (None, h),
            });
            let base = q("base");
            let mut all: Vec<&PullRequest> = r
                .pulls
                .iter()
                .filter(|p| state == "all" || p.state == state)
                .filter(|p| {
                    head.as_ref().is_none_or(|(o, b)| {
                        &p.head_ref == b
                            && o.as_ref().is_none_or(|o| o.eq_ignore_ascii_case(&r.owner))
                    })
                })
                .filter(|p| base.as_ref().is_none_or(|b| &p.base_ref == b))
                .collect();
            all.sort_by_key(|p| p.number);
            if q("direction").as_deref() != Some("asc") {
                all.reverse();
            }
            let values: Vec<Value> = all.iter().map(|p| pull_json(st, ctx, r, p)).collect();
            let (page, link) = paginate(ctx, &values);
            Some(with_link(jresp(200, &json!(page)), link))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The public fake
// ---------------------------------------------------------------------------------------------

/// Where an Actions secret lives.
#[derive(Clone, Debug, PartialEq)]
enum Scope {
    Repo(String),
    Env(String, String),
    Org(String),
}

/// `repo:OWNER/REPO`, `env:OWNER/REPO/ENV` (the environment name may contain `/`) or
/// `org:ORG`.
fn parse_scope(s: &str) -> Scope {
    if let Some(r) = s.strip_prefix("repo:") {
        return Scope::Repo(r.to_ascii_lowercase());
    }
    if let Some(r) = s.strip_prefix("env:") {
        let mut it = r.splitn(3, '/');
        if let (Some(o), Some(n), Some(e)) = (it.next(), it.next(), it.next()) {
            return Scope::Env(format!("{o}/{n}").to_ascii_lowercase(), e.to_string());
        }
    }
    if let Some(o) = s.strip_prefix("org:") {
        return Scope::Org(o.to_ascii_lowercase());
    }
    panic!("a secret scope is repo:OWNER/REPO, env:OWNER/REPO/ENV or org:ORG, not {s:?}")
}

impl State {
    fn store(&self, scope: &str) -> Option<&SecretStore> {
        match parse_scope(scope) {
            Scope::Repo(k) => self.repos.get(&k).map(|r| &r.secrets),
            Scope::Env(k, e) => self.repos.get(&k)?.envs.get(&e),
            Scope::Org(o) => self.orgs.get(&o).map(|o| &o.secrets),
        }
    }

    fn store_mut(&mut self, scope: &str) -> Option<&mut SecretStore> {
        match parse_scope(scope) {
            Scope::Repo(k) => self.repos.get_mut(&k).map(|r| &mut r.secrets),
            Scope::Env(k, e) => self.repos.get_mut(&k)?.envs.get_mut(&e),
            Scope::Org(o) => self.orgs.get_mut(&o).map(|o| &mut o.secrets),
        }
    }

    fn repo_mut(&mut self, repo: &str) -> &mut Repo {
        self.repos
            .get_mut(&repo.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("no repository {repo:?} in the fake (add_repo first)"))
    }

    fn repo(&self, repo: &str) -> Option<&Repo> {
        self.repos.get(&repo.to_ascii_lowercase())
    }
}

struct GitHubHandler {
    state: Arc<Mutex<State>>,
}

impl super::Handler for GitHubHandler {
    fn handle(&self, req: &Request) -> Response {
        handle(&self.state, req)
    }
}

/// A running fake GitHub. See the module doc.
pub struct FakeGitHub {
    server: FakeServer,
    state: Arc<Mutex<State>>,
}

impl FakeGitHub {
    /// An empty GitHub: no tokens, apps, repositories or organizations.
    pub async fn start() -> FakeGitHub {
        let state = Arc::new(Mutex::new(State::default()));
        let server = FakeServer::start(GitHubHandler {
            state: state.clone(),
        })
        .await;
        FakeGitHub { server, state }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash): the API base URL.
    pub fn api_url(&self) -> String {
        self.server.url().to_string()
    }

    /// The underlying server: request log, fault injection.
    pub fn server(&self) -> &FakeServer {
        &self.server
    }

    fn st(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    // ---- identities ----

    /// A fine-grained token acting as [`TOKEN_USER`], e.g. `&[("secrets", "write")]`.
    pub fn add_token(&self, token: &str, perms: &[(&str, &str)]) {
        self.add_token_full(token, TOKEN_USER, perms, None);
    }

    /// A fine-grained token acting as `login`.
    pub fn add_token_as(&self, token: &str, login: &str, perms: &[(&str, &str)]) {
        self.add_token_full(token, login, perms, None);
    }

    /// A token that expires at `expires_at` (answers carry
    /// `github-authentication-token-expiration`; afterwards it is 401).
    pub fn add_token_expiring(
        &self,
        token: &str,
        perms: &[(&str, &str)],
        expires_at: DateTime<Utc>,
    ) {
        self.add_token_full(token, TOKEN_USER, perms, Some(expires_at));
    }

    fn add_token_full(
        &self,
        token: &str,
        login: &str,
        perms: &[(&str, &str)],
        expires_at: Option<DateTime<Utc>>,
    ) {
        let mut st = self.st();
        let uid = next(&mut st.next_id);
        st.tokens.insert(
            token.to_string(),
            TokenInfo {
                perms: perms_map(perms),
                expires_at,
                expiry_header: expires_at.is_some(),
                login: login.to_string(),
                user_id: uid,
                installation: None,
                scopes: None,
            },
        );
    }

    /// A personal access token (classic) with OAuth `scopes` (`repo`, `workflow`,
    /// `admin:org`, …): answers carry `x-oauth-scopes`; the scopes grant permissions as the
    /// module doc says.
    pub fn add_classic_token(&self, token: &str, scopes: &[&str]) {
        const REPO: [&str; 7] = [
            "secrets",
            "environments",
            "actions",
            "contents",
            "pull_requests",
            "issues",
            "repository_advisories",
        ];
        let mut perms = Vec::new();
        for s in scopes {
            match *s {
                "repo" | "public_repo" => perms.extend(REPO.iter().map(|p| (*p, "write"))),
                "admin:org" => perms.push(("organization_secrets", "write")),
                "workflow" => perms.push(("workflows", "write")),
                _ => {}
            }
        }
        self.add_token_full(token, TOKEN_USER, &perms, None);
        if let Some(t) = self.st().tokens.get_mut(token) {
            t.scopes = Some(scopes.iter().map(|s| s.to_string()).collect());
        }
    }

    /// Makes any token (installation tokens included) expired from now on.
    pub fn expire_token(&self, token: &str) {
        if let Some(t) = self.st().tokens.get_mut(token) {
            t.expires_at = Some(now() - chrono::Duration::seconds(1));
        }
    }

    /// A GitHub App with one installation granting `perms`. `public_key_pem`: the SPKI PEM of
    /// the app's RSA key (e.g. `tests/fixtures/github-app-test-key.pub.pem`).
    pub fn add_app(
        &self,
        app_id: u64,
        public_key_pem: &str,
        installation_id: u64,
        perms: &[(&str, &str)],
    ) {
        jsonwebtoken::DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
            .expect("add_app needs an RSA public key in PEM");
        self.st().apps.push(App {
            id: app_id,
            public_key_pem: public_key_pem.to_string(),
            installation_id,
            perms: perms_map(perms),
        });
    }

    /// Installation tokens handed out so far, in order.
    pub fn installation_tokens(&self) -> Vec<String> {
        self.st().installation_tokens.clone()
    }

    // ---- repositories and organizations ----

    /// A repository `owner/name` with default branch `main` holding one commit (`README.md`).
    pub fn add_repo(&self, full_name: &str) {
        let (owner, name) = full_name
            .split_once('/')
            .unwrap_or_else(|| panic!("a repository is owner/name, not {full_name:?}"));
        let mut st = self.st();
        let id = next(&mut st.next_id) + 1_296_000;
        let secrets = new_store(&mut st.next_id);
        let seq = next(&mut st.next_id);
        let mut repo = Repo {
            id,
            owner: owner.to_string(),
            name: name.to_string(),
            private: false,
            archived: false,
            default_branch: "main".into(),
            secrets,
            envs: BTreeMap::new(),
            workflows: Vec::new(),
            releases: Vec::new(),
            explicit_latest: None,
            advisories: Vec::new(),
            issues: Vec::new(),
            pulls: Vec::new(),
            next_number: 0,
            refs: BTreeMap::new(),
            commits: HashMap::new(),
        };
        commit_file(
            &mut repo,
            seq,
            "main",
            "README.md",
            format!("# {name}\n").into_bytes(),
            "Initial commit",
        );
        st.repos.insert(full_name.to_ascii_lowercase(), repo);
    }

    /// Marks the repository archived (mutations → 403).
    pub fn archive_repo(&self, full_name: &str) {
        self.st().repo_mut(full_name).archived = true;
    }

    /// Makes the repository private (`private: true`, `visibility: private`).
    pub fn set_private(&self, full_name: &str, private: bool) {
        self.st().repo_mut(full_name).private = private;
    }

    /// The repository's numeric id.
    pub fn repo_id(&self, full_name: &str) -> u64 {
        self.st().repo_mut(full_name).id
    }

    /// An organization (with its own Actions secrets key pair).
    pub fn add_org(&self, org: &str) {
        let mut st = self.st();
        let id = next(&mut st.next_id) + 9_919_000;
        let secrets = new_store(&mut st.next_id);
        st.orgs.insert(
            org.to_ascii_lowercase(),
            Org {
                login: org.to_string(),
                id,
                secrets,
            },
        );
    }

    /// A deployment environment of `repo` (with its own secrets key pair).
    pub fn add_environment(&self, repo: &str, env: &str) {
        let mut st = self.st();
        let store = new_store(&mut st.next_id);
        st.repo_mut(repo).envs.insert(env.to_string(), store);
    }

    // ---- workflows ----

    /// `.github/workflows/<file>` named `name`, `active`; returns its id.
    pub fn add_workflow(&self, repo: &str, file: &str, name: &str) -> u64 {
        let mut st = self.st();
        let id = next(&mut st.next_id) + 161_335;
        let t = now_iso();
        st.repo_mut(repo).workflows.push(Workflow {
            id,
            name: name.to_string(),
            path: format!(".github/workflows/{file}"),
            state: "active".into(),
            created_at: t.clone(),
            updated_at: t,
        });
        id
    }

    /// The state of the workflow whose file is `file` (`active`, `disabled_manually`).
    pub fn workflow_state(&self, repo: &str, file: &str) -> Option<String> {
        let st = self.st();
        st.repo(repo)?
            .workflows
            .iter()
            .find(|w| w.path.rsplit('/').next() == Some(file))
            .map(|w| w.state.clone())
    }

    pub fn workflows(&self, repo: &str) -> Vec<Workflow> {
        self.st()
            .repo(repo)
            .map(|r| r.workflows.clone())
            .unwrap_or_default()
    }

    // ---- releases ----

    /// A release of `tag` (created now; a tag ref at the default branch head is added when
    /// missing); returns its id.
    pub fn add_release(&self, repo: &str, tag: &str, opts: ReleaseOpts) -> u64 {
        let mut st = self.st();
        let id = next(&mut st.next_id) + 1_000_000;
        let r = st.repo_mut(repo);
        let t = now_iso();
        let head = r.branch_head(&r.default_branch).cloned();
        if let Some(h) = head {
            r.refs.entry(format!("refs/tags/{tag}")).or_insert(h);
        }
        r.releases.push(Release {
            id,
            tag_name: tag.to_string(),
            target_commitish: opts
                .target_commitish
                .unwrap_or_else(|| r.default_branch.clone()),
            name: Some(opts.name.unwrap_or_else(|| tag.to_string())),
            body: Some(opts.body),
            draft: opts.draft,
            prerelease: opts.prerelease,
            immutable: opts.immutable,
            discussion_category_name: None,
            created_at: t.clone(),
            published_at: (!opts.draft).then(|| t.clone()),
            updated_at: t,
            author: TOKEN_USER.into(),
            patches: Vec::new(),
            latest_opt_out: false,
        });
        match opts.make_latest {
            Some(false) => apply_make_latest(r, id, "false"),
            _ if !opts.draft => apply_make_latest(r, id, "true"),
            _ => {}
        }
        id
    }

    pub fn release(&self, repo: &str, id: u64) -> Option<Release> {
        self.st()
            .repo(repo)?
            .releases
            .iter()
            .find(|r| r.id == id)
            .cloned()
    }

    pub fn releases(&self, repo: &str) -> Vec<Release> {
        self.st()
            .repo(repo)
            .map(|r| r.releases.clone())
            .unwrap_or_default()
    }

    /// What `GET …/releases/latest` answers.
    pub fn latest_release(&self, repo: &str) -> Option<Release> {
        self.st().repo(repo)?.latest().cloned()
    }

    // ---- git data ----

    /// Commits `content` at `path` on `branch` (created from the default branch when
    /// missing); returns the new head sha.
    pub fn put_file(&self, repo: &str, branch: &str, path: &str, content: &str) -> String {
        let mut st = self.st();
        let seq = next(&mut st.next_id);
        let r = st.repo_mut(repo);
        commit_file(
            r,
            seq,
            branch,
            path,
            content.as_bytes().to_vec(),
            &format!("Update {path}"),
        )
    }

    /// The file at the head of `branch`.
    pub fn file(&self, repo: &str, branch: &str, path: &str) -> Option<String> {
        let st = self.st();
        let r = st.repo(repo)?;
        let head = r.branch_head(branch)?;
        r.commits
            .get(head)?
            .files
            .get(path)
            .map(|c| String::from_utf8_lossy(c).into_owned())
    }

    /// The head commit sha of `branch`.
    pub fn branch_head(&self, repo: &str, branch: &str) -> Option<String> {
        self.st().repo(repo)?.branch_head(branch).cloned()
    }

    /// Message of a commit.
    pub fn commit_message(&self, repo: &str, sha: &str) -> Option<String> {
        self.st()
            .repo(repo)?
            .commits
            .get(sha)
            .map(|c| c.message.clone())
    }

    /// Every ref (`refs/heads/main`, `refs/tags/v1`, …) → sha.
    pub fn refs(&self, repo: &str) -> BTreeMap<String, String> {
        self.st()
            .repo(repo)
            .map(|r| r.refs.clone())
            .unwrap_or_default()
    }

    // ---- secrets ----

    /// Replaces the scope's key pair (`repo:o/r`, `env:o/r/env`, `org:o`); returns the new key
    /// id. Secrets encrypted for the old key are refused from now on.
    pub fn rotate_public_key(&self, scope: &str) -> String {
        let mut st = self.st();
        let fresh = new_store(&mut st.next_id);
        let store = st
            .store_mut(scope)
            .unwrap_or_else(|| panic!("no secret scope {scope:?}"));
        store.key_id = fresh.key_id;
        store.key = fresh.key;
        store.key_id.clone()
    }

    /// `(key_id, base64 public key)` of the scope.
    pub fn public_key(&self, scope: &str) -> (String, String) {
        let st = self.st();
        let s = st
            .store(scope)
            .unwrap_or_else(|| panic!("no secret scope {scope:?}"));
        (s.key_id.clone(), B64.encode(s.key.public_key().as_bytes()))
    }

    /// The decrypted value of a secret (name case-insensitive).
    pub fn secret_value(&self, scope: &str, name: &str) -> Option<String> {
        self.secret(scope, name).map(|s| s.value)
    }

    pub fn secret(&self, scope: &str, name: &str) -> Option<Secret> {
        self.st()
            .store(scope)?
            .secrets
            .get(&name.to_ascii_uppercase())
            .cloned()
    }

    /// Secret names of the scope (upper-case, sorted).
    pub fn secret_names(&self, scope: &str) -> Vec<String> {
        self.st()
            .store(scope)
            .map(|s| s.secrets.keys().cloned().collect())
            .unwrap_or_default()
    }

    // ---- advisories, issues, pulls ----

    pub fn advisories(&self, repo: &str) -> Vec<Advisory> {
        self.st()
            .repo(repo)
            .map(|r| r.advisories.clone())
            .unwrap_or_default()
    }

    pub fn issues(&self, repo: &str) -> Vec<Issue> {
        self.st()
            .repo(repo)
            .map(|r| r.issues.clone())
            .unwrap_or_default()
    }

    pub fn pulls(&self, repo: &str) -> Vec<PullRequest> {
        self.st()
            .repo(repo)
            .map(|r| r.pulls.clone())
            .unwrap_or_default()
    }

    // ---- scripted trouble ----

    /// The next `n` authenticated requests matching `pattern` (`"[METHOD ]/glob"`, as
    /// [`FakeServer::inject`]) answer 403 with `retry-after: <retry_after_secs>` and the
    /// secondary rate limit message.
    pub fn rate_limit_next(&self, pattern: &str, n: usize, retry_after_secs: u64) {
        self.rate_limit_next_status(pattern, n, retry_after_secs, 403);
    }

    /// As [`Self::rate_limit_next`] with another status (GitHub also uses 429).
    pub fn rate_limit_next_status(
        &self,
        pattern: &str,
        n: usize,
        retry_after_secs: u64,
        status: u16,
    ) {
        self.st().secondary.push(RateRule {
            pattern: RoutePattern::parse(pattern),
            remaining: n,
            retry_after: retry_after_secs,
            status,
        });
    }

    /// The next `n` authenticated requests answer 403 "API rate limit exceeded …" with
    /// `x-ratelimit-remaining: 0` and `x-ratelimit-reset` `reset_in_secs` from now.
    pub fn primary_rate_limit_next(&self, n: usize, reset_in_secs: i64) {
        self.primary_rate_limit_next_status(n, reset_in_secs, 403);
    }

    /// As [`Self::primary_rate_limit_next`] with another status (429).
    pub fn primary_rate_limit_next_status(&self, n: usize, reset_in_secs: i64, status: u16) {
        self.st()
            .primary
            .extend(std::iter::repeat_n((reset_in_secs, status), n));
    }

    // ---- observation ----

    /// Every request received, in order (faulted and refused ones included).
    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    /// Requests other than GET/HEAD/OPTIONS, in order.
    pub fn mutations(&self) -> Vec<Request> {
        self.server
            .requests()
            .into_iter()
            .filter(Request::is_mutating)
            .collect()
    }

    /// Requests matching `pattern` (`"[METHOD ]/glob"`).
    pub fn count(&self, pattern: &str) -> usize {
        self.server.requests_matching(pattern).len()
    }

    /// 401 answers (bad, expired or missing tokens; bad JWTs).
    pub fn auth_failures(&self) -> usize {
        self.st().auth_failures
    }

    /// Requests that came without `X-GitHub-Api-Version`.
    pub fn missing_version_header(&self) -> usize {
        self.st().missing_version
    }

    /// Requests refused by a scripted primary or secondary rate limit.
    pub fn rate_limited(&self) -> usize {
        self.st().rate_limited
    }
}
