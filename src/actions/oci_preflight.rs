//! Preflight of the OCI actions: read-only checks, run in rehearsals next to the plan, that
//! the live call would succeed. Stable ids:
//!
//! * `oci.registry` — `GET /v2/` answers, and its auth challenge is one Recall can follow
//!   (Bearer with a usable realm, or Basic).
//! * `oci.credential` — when the registry demands auth, `[oci.auth."host"]` is configured
//!   and accepted; for Bearer registries the token endpoint is asked for exactly the scope
//!   the action needs, and a JWT's `access` claim is compared with it.
//! * `oci.target` — the repository and the tag / digest exist (`HEAD` of the manifest).
//! * `oci.methods` — the manifest route's `Allow` (from `OPTIONS`) lists the PUT / DELETE
//!   the action sends. Distribution 2.8.2 answers `Allow: DELETE, GET, HEAD, PUT`, and
//!   `Allow: GET, HEAD` in read-only mode (`storage.maintenance.readonly.enabled: true`);
//!   it lists DELETE even with `storage.delete.enabled: false`, where the DELETE itself
//!   then answers `405 UNSUPPORTED`.
//! * `oci.tag_delete` (untag) — not readable without sending a DELETE: says so, and what
//!   the fallback needs.
//! * `oci.referrers` (list_referrers, delete_manifest) — the OCI 1.1 referrers API, else
//!   the `sha256-<hex>` tag fallback, with what was found.
//! * `oci.immutable_tags` (quarantine_tag, untag) — not exposed by the distribution API.
//!
//! Nothing here sends PUT/POST/PATCH/DELETE: every request goes through
//! [`OciClient::read_answer`] (GET/HEAD/OPTIONS only) or the client's reads. Evidence names
//! where a credential comes from, never its value.

use serde_json::Value;

use super::{client, credential_source, digest_input, image_of, load_auth, quarantine_tag};
use crate::actions::preflight::{Check, Impact};
use crate::actions::{ActionCtx, ActionError, opt_str_input, str_input};
use crate::net::http;
use crate::net::oci::{
    Challenge, OciClient, OciError, ReadAnswer, Reference, ReferrersSource, TokenGrant,
    check_realm, granted_actions, is_digest, validate_digest, validate_tag,
};

/// Which OCI action is being checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Resolve,
    QuarantineTag,
    Untag,
    ListReferrers,
    DeleteManifest,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Resolve => "oci.resolve",
            Self::QuarantineTag => "oci.quarantine_tag",
            Self::Untag => "oci.untag",
            Self::ListReferrers => "oci.list_referrers",
            Self::DeleteManifest => "oci.delete_manifest",
        }
    }

    fn mutating(self) -> bool {
        matches!(
            self,
            Self::QuarantineTag | Self::Untag | Self::DeleteManifest
        )
    }

    /// The token scope's actions the live path needs: every read is `pull`; a manifest
    /// PUT is `push`; a DELETE is `delete`. Untag sends a tag DELETE first and, when that
    /// is refused as unsupported, a PUT and a DELETE by digest: a token without `delete`
    /// makes the first DELETE fail with 401/403, which is not a fallback trigger.
    fn scope_actions(self) -> &'static [&'static str] {
        match self {
            Self::Resolve | Self::ListReferrers => &["pull"],
            Self::QuarantineTag => &["pull", "push"],
            Self::Untag => &["pull", "push", "delete"],
            Self::DeleteManifest => &["pull", "delete"],
        }
    }

    /// Methods the action sends to `/v2/<name>/manifests/<ref>`.
    fn manifest_methods(self) -> &'static [&'static str] {
        match self {
            Self::QuarantineTag => &["PUT"],
            Self::Untag => &["PUT", "DELETE"],
            Self::DeleteManifest => &["DELETE"],
            Self::Resolve | Self::ListReferrers => &[],
        }
    }
}

/// What the action points at.
enum Target {
    /// A tag or a digest (resolve, untag).
    Reference(String),
    /// A digest (quarantine_tag, list_referrers, delete_manifest).
    Digest(String),
}

impl Target {
    fn reference(&self) -> &str {
        match self {
            Self::Reference(r) | Self::Digest(r) => r,
        }
    }
}

/// The inputs each check needs, read once.
struct Inputs {
    img: Reference,
    target: Target,
    /// untag: the bad digest the tag must still point at; quarantine_tag: unused.
    expected: Option<String>,
    /// quarantine_tag: the tag it will create; untag: the tag it removes.
    tag: Option<String>,
}

fn read_inputs(kind: Kind, ctx: &ActionCtx, inputs: &Value) -> Result<Inputs, ActionError> {
    let img = image_of(inputs)?;
    Ok(match kind {
        Kind::Resolve => {
            let r = str_input(inputs, "reference")?.trim().to_string();
            if is_digest(&r) || r.contains(':') {
                validate_digest(&r)?;
            } else {
                validate_tag(&r)?;
            }
            Inputs {
                img,
                target: Target::Reference(r),
                expected: None,
                tag: None,
            }
        }
        Kind::QuarantineTag => Inputs {
            img,
            target: Target::Digest(digest_input(inputs)?),
            expected: None,
            tag: Some(quarantine_tag(ctx, inputs)?),
        },
        Kind::Untag => {
            let tag = str_input(inputs, "tag")?.trim().to_string();
            validate_tag(&tag)?;
            let expected = match opt_str_input(inputs, "digest")? {
                Some(d) => {
                    validate_digest(d.trim())?;
                    Some(d.trim().to_string())
                }
                None => None,
            };
            Inputs {
                img,
                target: Target::Reference(tag.clone()),
                expected,
                tag: Some(tag),
            }
        }
        Kind::ListReferrers | Kind::DeleteManifest => Inputs {
            img,
            target: Target::Digest(digest_input(inputs)?),
            expected: None,
            tag: None,
        },
    })
}

const AUTH_KEYS: &str = "`username` with `password_env` or `password_file`, or `token_env` / `token_file` for a static bearer token";

fn auth_fix(host: &str) -> String {
    format!("configure [oci.auth.\"{host}\"] in recall.toml: {AUTH_KEYS}")
}

/// Every check of `kind` for these inputs. Never sends a mutating request.
pub(super) async fn checks(kind: Kind, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
    let inp = match read_inputs(kind, ctx, inputs) {
        Ok(i) => i,
        Err(e) => {
            return vec![Check::fail(
                "oci.inputs",
                kind.name(),
                e.to_string(),
                "fix the step's `with`: `image` is host[:port]/repo, `digest` is sha256:<64 hex>, tags follow the OCI tag grammar",
            )];
        }
    };
    let host = inp.img.host.clone();
    let source = credential_source(&ctx.config, &host);
    // The secret is loaded before the client is built: a missing variable or file is a
    // credential problem, named as such.
    if let Err(e) = load_auth(&ctx.config, &host) {
        return vec![Check::fail(
            "oci.credential",
            source,
            e.to_string(),
            format!(
                "set the environment variable or file named in [oci.auth.\"{host}\"] where Recall runs"
            ),
        )];
    }
    let c = match client(ctx, &host) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::fail(
                "oci.registry",
                host.clone(),
                e.to_string(),
                "fix `image` or the [oci] section (timeout, insecure hosts)",
            )];
        }
    };
    let (registry, ping) = registry_check(ctx, &c).await;
    let mut out = vec![registry];
    let Some(ping) = ping else {
        return out;
    };
    let (credential, target, methods, referrers) = tokio::join!(
        credential_check(kind, ctx, &c, &inp, &ping),
        target_check(kind, &c, &inp),
        methods_check(kind, &c, &inp),
        referrers_check(kind, &c, &inp),
    );
    out.push(credential);
    out.push(target);
    out.extend(methods);
    if kind == Kind::Untag {
        out.push(tag_delete_check(&inp));
    }
    out.extend(referrers);
    if matches!(kind, Kind::QuarantineTag | Kind::Untag) {
        out.push(immutable_check(kind, &inp));
    }
    out
}

// ---- oci.registry ----------------------------------------------------------------------

/// `GET /v2/` without credentials: reachable, and a challenge Recall can follow. Returns the
/// answer when the registry is usable.
async fn registry_check(ctx: &ActionCtx, c: &OciClient) -> (Check, Option<ReadAnswer>) {
    let subject = format!("GET {}v2/", c.base_url());
    let a = match c.ping(false).await {
        Ok(a) => a,
        Err(e) => {
            return (
                Check::fail(
                    "oci.registry",
                    subject,
                    format!("no answer: {e}"),
                    format!(
                        "check that {} is the registry's host[:port] and reachable from where Recall runs; a plain-http registry must be listed in [oci] insecure, an https one needs a certificate this host trusts",
                        c.host()
                    ),
                ),
                None,
            );
        }
    };
    let api = a
        .header("docker-distribution-api-version")
        .map(|v| format!(" (Docker-Distribution-Api-Version: {v})"))
        .unwrap_or_default();
    match a.status {
        200..=299 => {
            let ev = format!("answered {} without credentials{api}", a.status);
            (Check::pass("oci.registry", subject, ev), Some(a))
        }
        401 => {
            let chs = a.challenges();
            let raw = a.header("www-authenticate").unwrap_or_default();
            if let Some(b) = chs.iter().find(|c| c.scheme == "bearer") {
                let Some(realm) = b.params.get("realm") else {
                    return (
                        Check::fail(
                            "oci.registry",
                            subject,
                            format!("401 with a Bearer challenge without a realm: {raw}"),
                            "the registry's token auth is misconfigured (no realm to ask for a token): fix its auth settings",
                        ),
                        None,
                    );
                };
                let base = url::Url::parse(c.base_url());
                let realm_ok = match &base {
                    Ok(b) => check_realm(realm, b, &ctx.config.oci.insecure).map(|_| ()),
                    Err(e) => Err(OciError::Malformed(e.to_string())),
                };
                match realm_ok {
                    Ok(()) => (
                        Check::pass(
                            "oci.registry",
                            subject,
                            format!(
                                "answered 401 with a Bearer challenge (realm {realm}{}){api}: Recall fetches tokens there",
                                b.params
                                    .get("service")
                                    .map(|s| format!(", service {s}"))
                                    .unwrap_or_default()
                            ),
                        ),
                        Some(a),
                    ),
                    Err(e) => (
                        Check::fail(
                            "oci.registry",
                            subject,
                            format!(
                                "answered 401 with a Bearer challenge Recall refuses to follow: {e}"
                            ),
                            "serve the token realm over https, or list its host in [oci] insecure if plain http is really intended",
                        ),
                        None,
                    ),
                }
            } else if chs.iter().any(|c| c.scheme == "basic") {
                (
                    Check::pass(
                        "oci.registry",
                        subject,
                        format!(
                            "answered 401 with a Basic challenge{api}: Recall answers it with the configured username and password"
                        ),
                    ),
                    Some(a),
                )
            } else {
                (
                    Check::fail(
                        "oci.registry",
                        subject,
                        format!(
                            "answered 401 without a Bearer or Basic challenge (WWW-Authenticate: {})",
                            if raw.is_empty() {
                                "absent".to_string()
                            } else {
                                raw
                            }
                        ),
                        "Recall follows Bearer (token) and Basic challenges only: put the registry behind one of them",
                    ),
                    None,
                )
            }
        }
        s => (
            Check::fail(
                "oci.registry",
                subject,
                format!(
                    "answered {s}{api}: {}",
                    http::truncate_chars(a.body.trim(), 200)
                ),
                "point `image` at the registry's own host (the distribution API lives at /v2/): a web UI, a proxy or a wrong port answers like this",
            ),
            None,
        ),
    }
}

// ---- oci.credential --------------------------------------------------------------------

async fn credential_check(
    kind: Kind,
    ctx: &ActionCtx,
    c: &OciClient,
    inp: &Inputs,
    ping: &ReadAnswer,
) -> Check {
    let host = &inp.img.host;
    let repo = &inp.img.repo;
    let scope = format!("repository:{repo}:{}", kind.scope_actions().join(","));
    let source = credential_source(&ctx.config, host);
    let subject = format!("{source} for {scope}");
    let configured = ctx.config.oci.auth.contains_key(host.as_str());
    let scheme = c.auth_scheme();
    let writes = kind.mutating();

    if (200..300).contains(&ping.status) {
        // No challenge at the base: nothing demands (or exercises) a credential yet.
        if !writes {
            return Check::pass(
                "oci.credential",
                subject,
                format!(
                    "GET /v2/ answered {} without credentials: the registry does not demand auth",
                    ping.status
                ),
            );
        }
        let ev = if scheme == "bearer" {
            "GET /v2/ answered 200 without credentials; the static token is sent with every request, but nothing read here tells what it may write".to_string()
        } else if configured {
            "GET /v2/ answered 200 without credentials, so the configured credential was never challenged and could not be verified; it is sent when a write is challenged".to_string()
        } else {
            format!(
                "GET /v2/ answered 200 without credentials: the registry asks for none at its base; whether it accepts anonymous {} on {repo} is not readable without sending one",
                kind.manifest_methods().join("/")
            )
        };
        return Check::unknown(
            "oci.credential",
            subject,
            ev,
            format!(
                "if the registry demands auth for writes, {}",
                auth_fix(host)
            ),
        );
    }

    let chs = ping.challenges();
    let bearer = chs.iter().find(|c| c.scheme == "bearer");
    let demanded = format!(
        "GET /v2/ answered 401 ({})",
        if bearer.is_some() {
            "Bearer token auth"
        } else {
            "Basic auth"
        }
    );
    match scheme {
        "anonymous" if configured => Check::fail(
            "oci.credential",
            subject,
            format!(
                "{demanded}, and [oci.auth.\"{host}\"] yields no credential (a username without a password, or a password without a username)"
            ),
            auth_fix(host),
        ),
        "anonymous" => match bearer {
            // A public repository may grant anonymous pulls; writes need an account.
            Some(ch) if !writes => {
                grant_check(c, ch, &scope, kind, inp, subject, "an anonymous token").await
            }
            _ => Check::fail(
                "oci.credential",
                subject,
                format!("{demanded} and no credential is configured for {host}"),
                auth_fix(host),
            ),
        },
        "basic" => match bearer {
            Some(ch) => {
                grant_check(
                    c,
                    ch,
                    &scope,
                    kind,
                    inp,
                    subject,
                    "a token for the Basic credentials",
                )
                .await
            }
            None => accepted_check(c, kind, inp, subject, "Basic credentials").await,
        },
        _ => {
            // A static bearer token: the registry takes it or not; a JWT says what it grants.
            let accepted = accepted_check(c, kind, inp, subject.clone(), "the static token").await;
            if accepted.verdict == crate::actions::preflight::Verdict::Fail {
                return accepted;
            }
            match c.static_token_access() {
                Some(access) => compare(
                    kind,
                    inp,
                    subject,
                    &scope,
                    &access,
                    "the static token (accepted by GET /v2/) is a JWT whose access claim",
                ),
                None => accepted,
            }
        }
    }
}

/// Basic credentials or a static token: `GET /v2/` with them. Rights on the repository are
/// not readable this way.
async fn accepted_check(
    c: &OciClient,
    kind: Kind,
    inp: &Inputs,
    subject: String,
    what: &str,
) -> Check {
    let host = &inp.img.host;
    match c.ping(true).await {
        Ok(a) if (200..300).contains(&a.status) => {
            let ev = format!("{what} accepted: GET /v2/ answered {}", a.status);
            if kind.mutating() {
                Check::unknown(
                    "oci.credential",
                    subject,
                    format!(
                        "{ev}; whether they may {} on {} is not readable without trying (distribution's htpasswd auth grants every authenticated user everything; Harbor, Artifactory, Nexus have per-repository roles)",
                        kind.scope_actions().join("/"),
                        inp.img.repo
                    ),
                    format!(
                        "confirm that the account may {} on {} in the registry's permissions",
                        kind.scope_actions().join(", "),
                        inp.img.repo
                    ),
                )
            } else {
                Check::pass("oci.credential", subject, ev)
            }
        }
        Ok(a) => Check::fail(
            "oci.credential",
            subject,
            format!(
                "{what} refused: GET /v2/ answered {} {}",
                a.status,
                http::truncate_chars(a.body.trim(), 200)
            ),
            format!(
                "renew the credential named in [oci.auth.\"{host}\"] (or fix its username); {AUTH_KEYS}"
            ),
        ),
        Err(e) => Check::fail(
            "oci.credential",
            subject,
            format!("{what} could not be verified: {e}"),
            format!(
                "check the credential named in [oci.auth.\"{host}\"] and that the registry is reachable"
            ),
        ),
    }
}

/// Ask the token endpoint for exactly `scope` and compare what it grants.
async fn grant_check(
    c: &OciClient,
    ch: &Challenge,
    scope: &str,
    kind: Kind,
    inp: &Inputs,
    subject: String,
    what: &str,
) -> Check {
    let host = &inp.img.host;
    match c.token_grant(ch, scope).await {
        Ok(TokenGrant {
            access: Some(access),
            ..
        }) => compare(
            kind,
            inp,
            subject,
            scope,
            &access,
            &format!("the token endpoint issued {what} whose JWT access claim"),
        ),
        Ok(TokenGrant { access: None, .. }) => Check::unknown(
            "oci.credential",
            subject,
            format!(
                "the token endpoint issued {what} for {scope} (the credential is accepted); the token is not a JWT with an `access` claim, so the actions it grants are not readable"
            ),
            format!(
                "confirm that the account may {} on {} in the registry's permissions",
                kind.scope_actions().join(", "),
                inp.img.repo
            ),
        ),
        Err(e) if matches!(e.status(), Some(401 | 403)) => Check::fail(
            "oci.credential",
            subject,
            format!("the token endpoint refused {what}: {e}"),
            if c.auth_scheme() == "anonymous" {
                auth_fix(host)
            } else {
                format!("renew the password named in [oci.auth.\"{host}\"] (or fix its username)")
            },
        ),
        Err(e) => Check::fail(
            "oci.credential",
            subject,
            format!("no token for {scope}: {e}"),
            "check that the token realm named in the registry's challenge is reachable from where Recall runs",
        ),
    }
}

/// The actions of `needed` missing from `granted` (`*` grants everything).
fn missing_actions(needed: &[&str], granted: &[String]) -> Vec<String> {
    if granted.iter().any(|g| g == "*") {
        return Vec::new();
    }
    needed
        .iter()
        .filter(|n| !granted.iter().any(|g| g == *n))
        .map(|n| n.to_string())
        .collect()
}

fn compare(
    kind: Kind,
    inp: &Inputs,
    subject: String,
    scope: &str,
    access: &[crate::net::oci::TokenAccess],
    what: &str,
) -> Check {
    let repo = &inp.img.repo;
    let granted = granted_actions(access, repo);
    let missing = missing_actions(kind.scope_actions(), &granted);
    let shown = if granted.is_empty() {
        "nothing".to_string()
    } else {
        granted.join(",")
    };
    if missing.is_empty() {
        Check::pass(
            "oci.credential",
            subject,
            format!("{what} grants {shown} on repository {repo} (asked {scope})"),
        )
    } else {
        Check::fail(
            "oci.credential",
            subject,
            format!(
                "{what} grants {shown} on repository {repo}; asked {scope}: missing {}",
                missing.join(",")
            ),
            format!(
                "give the account of [oci.auth.\"{}\"] {} on {repo} in the registry (a robot/service account with push and delete for incident response), or configure one that has it: {} {}",
                inp.img.host,
                missing.join(" and "),
                kind.name(),
                match kind {
                    Kind::Untag =>
                        "sends a tag DELETE, then a PUT and a DELETE by digest when the registry refuses that",
                    Kind::QuarantineTag => "PUTs the manifest under the quarantine tag",
                    Kind::DeleteManifest => "DELETEs the manifest by digest",
                    _ => "reads the repository",
                }
            ),
        )
    }
}

// ---- oci.target ------------------------------------------------------------------------

async fn target_check(kind: Kind, c: &OciClient, inp: &Inputs) -> Check {
    let img = &inp.img;
    let r = inp.target.reference();
    let sep = if is_digest(r) { "@" } else { ":" };
    let subject = format!("{img}{sep}{r}");
    let refused = |e: OciError| {
        let fix = if matches!(e.status(), Some(401 | 403)) {
            format!(
                "the credential ({}) lacks pull on {}: grant it",
                credential_hint(c),
                img.repo
            )
        } else {
            "check the registry's health and retry the rehearsal".to_string()
        };
        let check = Check::fail(
            "oci.target",
            subject.clone(),
            format!("HEAD of the manifest failed: {e}"),
            fix,
        );
        if e.is_transient() {
            Check {
                verdict: crate::actions::preflight::Verdict::Unknown,
                impact: Impact::Info,
                ..check
            }
        } else {
            check
        }
    };
    let head = match c.head_manifest(&img.repo, r).await {
        Ok(h) => h,
        Err(e) => return refused(e),
    };
    let Some(h) = head else {
        // Missing: the repository, or only the reference?
        let (evidence, listed) = match c.tags(&img.repo).await {
            Err(OciError::NotFound { .. }) => (
                format!(
                    "HEAD answered 404, and repository {} does not exist on {} (tags/list: 404 NAME_UNKNOWN)",
                    img.repo, img.host
                ),
                false,
            ),
            Ok(tags) => {
                let listed = tags.iter().any(|t| t == r);
                (
                    format!(
                        "HEAD answered 404: repository {} exists ({} tag(s)) but has no manifest {r}{}",
                        img.repo,
                        tags.len(),
                        if listed {
                            " (the tag is listed: it dangles)"
                        } else {
                            ""
                        }
                    ),
                    listed,
                )
            }
            Err(e) => (format!("HEAD answered 404; tags/list failed: {e}"), false),
        };
        if kind == Kind::Untag && listed {
            return Check::pass(
                "oci.target",
                subject,
                format!(
                    "{evidence}; the live step re-points the dangling tag at a dummy and removes it"
                ),
            );
        }
        let fix = match kind {
            Kind::Untag => {
                "check the tag's name (tags are case-sensitive): the live step would find nothing to remove, and the bad image would stay in rotation under its real tag"
            }
            Kind::Resolve => {
                "check `image` and `reference` (a digest is the manifest's, not the config's or a layer's)"
            }
            _ => {
                "check `image` and `digest`: it must be the manifest digest (for a multi-platform image, the index or a platform manifest), as `oci.resolve` reports it"
            }
        };
        return Check::fail("oci.target", subject, evidence, fix);
    };
    let mut ev = format!("HEAD answered 200: {} ({})", h.digest, h.media_type);
    match kind {
        Kind::Untag => {
            if let Some(exp) = &inp.expected
                && *exp != h.digest
            {
                ev.push_str(&format!(
                    "; not the bad {exp}: the live step leaves the tag alone (someone already moved it)"
                ));
            }
        }
        Kind::QuarantineTag => {
            let Some(q) = &inp.tag else {
                return Check::pass("oci.target", subject, ev);
            };
            match c.head_manifest(&img.repo, q).await {
                Ok(None) => ev.push_str(&format!("; {img}:{q} does not exist yet")),
                Ok(Some(qh)) if qh.digest == h.digest => {
                    ev.push_str(&format!("; {img}:{q} already holds it"));
                }
                Ok(Some(qh)) => {
                    return Check::fail(
                        "oci.target",
                        format!("{img}:{q}"),
                        format!(
                            "{ev}; but {img}:{q} already exists and points at {}",
                            qh.digest
                        ),
                        "choose another quarantine `tag`: the live step refuses to move an existing one",
                    );
                }
                Err(e) => return refused(e),
            }
        }
        _ => {}
    }
    Check::pass("oci.target", subject, ev)
}

fn credential_hint(c: &OciClient) -> &'static str {
    match c.auth_scheme() {
        "anonymous" => "anonymous access",
        "basic" => "Basic credentials",
        _ => "static token",
    }
}

// ---- oci.methods -----------------------------------------------------------------------

async fn methods_check(kind: Kind, c: &OciClient, inp: &Inputs) -> Option<Check> {
    let needs = kind.manifest_methods();
    if needs.is_empty() {
        return None;
    }
    let img = &inp.img;
    // The route the live path writes: the quarantine tag, the tag, or the digest.
    let reference = match kind {
        Kind::QuarantineTag | Kind::Untag => inp.tag.clone()?,
        _ => inp.target.reference().to_string(),
    };
    let subject = format!(
        "OPTIONS {}v2/{}/manifests/{reference}",
        c.base_url(),
        img.repo
    );
    let what = match kind {
        Kind::QuarantineTag => "oci.quarantine_tag PUTs the manifest under the quarantine tag",
        Kind::Untag => {
            "oci.untag sends a tag DELETE, else PUTs a dummy manifest to the tag and DELETEs it by digest"
        }
        _ => "oci.delete_manifest DELETEs the manifest by digest",
    };
    let unknown_fix = format!(
        "the allowed methods are not readable on this registry: confirm with its admin that {} of manifests in {} is allowed (not read-only, not a pull-through mirror)",
        needs.join(" and "),
        img.repo
    );
    let a = match c.manifest_options(&img.repo, &reference).await {
        Ok(a) => a,
        Err(e) => {
            return Some(Check::unknown(
                "oci.methods",
                subject,
                format!("OPTIONS failed: {e}"),
                unknown_fix,
            ));
        }
    };
    let allow = match a.allow() {
        Some(allow) if (200..300).contains(&a.status) => allow,
        _ => {
            return Some(Check::unknown(
                "oci.methods",
                subject,
                format!(
                    "OPTIONS answered {} without an Allow header{}",
                    a.status,
                    if a.body.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", http::truncate_chars(a.body.trim(), 120))
                    }
                ),
                unknown_fix,
            ));
        }
    };
    let shown = a.header("allow").unwrap_or_default();
    let missing: Vec<&str> = needs
        .iter()
        .copied()
        .filter(|m| !allow.iter().any(|x| x == m))
        .collect();
    if missing.is_empty() {
        let mut ev = format!("OPTIONS answered {} with Allow: {shown}", a.status);
        if needs.contains(&"DELETE") {
            ev.push_str(
                "; note that distribution lists DELETE even with storage.delete.enabled: false and then answers the DELETE itself 405 UNSUPPORTED — that setting is not readable",
            );
        }
        return Some(Check::pass("oci.methods", subject, ev));
    }
    // Untag without DELETE still untags: the tag DELETE (405) triggers the fallback, whose
    // dummy PUT moves the tag off the image; only deleting the dummy fails.
    let impact = if kind == Kind::Untag && !missing.contains(&"PUT") {
        Impact::Degrades
    } else {
        Impact::Blocks
    };
    let consequence = if impact == Impact::Degrades {
        "; the tag would still be moved off the image (dummy PUT) but left pointing at the empty dummy"
    } else {
        ""
    };
    Some(
        Check::fail(
            "oci.methods",
            subject,
            format!(
                "OPTIONS answered {} with Allow: {shown} — no {}: {what}{consequence}",
                a.status,
                missing.join(", "),
            ),
            format!(
                "the registry refuses {} on manifests: distribution in read-only mode (storage.maintenance.readonly.enabled: true), or a pull-through cache/mirror. Run the step against the writable registry (`image` on its primary host), or lift read-only mode for the incident",
                missing.join(" and ")
            ),
        )
        .impact(impact),
    )
}

// ---- oci.tag_delete --------------------------------------------------------------------

fn tag_delete_check(inp: &Inputs) -> Check {
    let img = &inp.img;
    let tag = inp.tag.as_deref().unwrap_or_default();
    Check::unknown(
        "oci.tag_delete",
        format!("DELETE /v2/{}/manifests/{tag} on {}", img.repo, img.host),
        "whether the registry deletes a tag by name cannot be read without sending that DELETE (OCI 1.1 registries and Harbor do; distribution 2.x answers 400 DIGEST_INVALID)",
        format!(
            "nothing to do if the fallback can run: when the tag DELETE is refused (400/405/501), Recall pushes a unique dummy manifest to {img}:{tag} and deletes it by its own digest — that needs push and delete on {} (see oci.methods and oci.credential) and, on distribution, storage.delete.enabled: true (with deletes disabled the tag is left on the empty dummy)",
            img.repo
        ),
    )
}

// ---- oci.referrers ---------------------------------------------------------------------

async fn referrers_check(kind: Kind, c: &OciClient, inp: &Inputs) -> Option<Check> {
    if !matches!(kind, Kind::ListReferrers | Kind::DeleteManifest) {
        return None;
    }
    let img = &inp.img;
    let digest = inp.target.reference();
    let subject = format!("GET {}v2/{}/referrers/{digest}", c.base_url(), img.repo);
    let impact = if kind == Kind::ListReferrers {
        Impact::Degrades
    } else {
        Impact::Info
    };
    let api = match c.referrers_answer(&img.repo, digest).await {
        Ok(a) => format!(
            "answered {}{}",
            a.status,
            a.header("content-type")
                .map(|t| format!(" {t}"))
                .unwrap_or_default()
        ),
        Err(e) => format!("failed: {e}"),
    };
    let found = match c.referrers(&img.repo, digest).await {
        Ok(r) => r,
        Err(e) => {
            return Some(
                Check::unknown(
                    "oci.referrers",
                    subject,
                    format!("the referrers API {api}; reading the referrers failed: {e}"),
                    "check the registry's health and retry the rehearsal",
                )
                .impact(impact),
            );
        }
    };
    let counts = format!(
        "{} referrer(s), {} cosign tag(s)",
        found.descriptors.len(),
        found.cosign.len()
    );
    let with_delete = if kind == Kind::DeleteManifest {
        "; these stay in the registry after the DELETE, pointing at nothing (an OCI 1.1 registry may garbage-collect them): keep them in the timeline with oci.list_referrers first"
    } else {
        ""
    };
    Some(match found.source {
        ReferrersSource::Api => Check::pass(
            "oci.referrers",
            subject,
            format!("the referrers API {api}: {counts}{with_delete}"),
        ),
        src => Check::unknown(
            "oci.referrers",
            subject,
            format!(
                "the referrers API {api}: not served (OCI 1.1), so the sha256-<hex> tag fallback is read instead — {}: {counts}{with_delete}",
                if src == ReferrersSource::FallbackTag {
                    "a fallback index exists"
                } else {
                    "no fallback index exists"
                }
            ),
            "artifacts attached with the referrers API on another registry, or pushed by a client that does not maintain the fallback tag, are not found: use a registry that serves the referrers API (distribution 3, Harbor 2.8+, zot, …) or push artifacts with a client that writes the fallback tag (oras, cosign)",
        )
        .impact(impact),
    })
}

// ---- oci.immutable_tags ----------------------------------------------------------------

fn immutable_check(kind: Kind, inp: &Inputs) -> Check {
    let img = &inp.img;
    let tag = inp.tag.as_deref().unwrap_or_default();
    let (evidence, fix) = if kind == Kind::Untag {
        (
            "tag immutability is a registry setting the distribution API does not expose, and no answer read here says whether this tag is protected",
            "check the registry's settings: Harbor (project → Policy → Tag immutability), Amazon ECR (imageTagMutability: IMMUTABLE), Artifactory, GitLab protected tags. An immutable tag refuses both the tag DELETE and the dummy overwrite, and Recall stops saying so: exempt the tag from the rule for the incident, or remove it in the registry's own UI",
        )
    } else {
        (
            "tag immutability is a registry setting the distribution API does not expose; the quarantine tag is new, which immutability rules allow, unless a rule forbids pushing tags of that name",
            "check the registry's settings (Harbor tag immutability and retention rules, Amazon ECR, Artifactory) for a rule matching the quarantine tag's name; an immutable quarantine tag once pushed is what keeps the evidence",
        )
    };
    Check::unknown("oci.immutable_tags", format!("{img}:{tag}"), evidence, fix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::oci::{TokenAccess, jwt_access};

    fn access(name: &str, actions: &[&str]) -> TokenAccess {
        TokenAccess {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn scopes_follow_what_the_live_path_sends() {
        assert_eq!(Kind::Resolve.scope_actions(), ["pull"]);
        assert_eq!(Kind::QuarantineTag.scope_actions(), ["pull", "push"]);
        assert_eq!(Kind::Untag.scope_actions(), ["pull", "push", "delete"]);
        assert_eq!(Kind::DeleteManifest.scope_actions(), ["pull", "delete"]);
        assert!(Kind::ListReferrers.manifest_methods().is_empty());
        assert_eq!(Kind::Untag.manifest_methods(), ["PUT", "DELETE"]);
    }

    #[test]
    fn missing_actions_are_exact_and_star_grants_all() {
        let g = granted_actions(
            &[
                access("team/app", &["pull"]),
                access("team/app", &["push"]),
                access("team/other", &["delete"]),
                TokenAccess {
                    kind: "registry".into(),
                    name: "catalog".into(),
                    actions: vec!["*".into()],
                },
            ],
            "team/app",
        );
        assert_eq!(g, ["pull", "push"]);
        assert!(missing_actions(&["pull", "push"], &g).is_empty());
        assert_eq!(missing_actions(&["pull", "push", "delete"], &g), ["delete"]);
        assert_eq!(missing_actions(&["pull"], &[]), ["pull"]);
        assert!(missing_actions(&["pull", "delete"], &["*".to_string()]).is_empty());
    }

    #[test]
    fn jwt_claims_are_read_without_the_token_leaking() {
        use base64::Engine as _;
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let tok = format!(
            "{}.{}.c2ln",
            enc(r#"{"alg":"RS256"}"#),
            enc(
                r#"{"sub":"ci","access":[{"type":"repository","name":"team/app","actions":["pull","push"]}]}"#
            )
        );
        let a = jwt_access(&tok).expect("claims");
        assert_eq!(a, vec![access("team/app", &["pull", "push"])]);
        let img = Reference::parse("r.example/team/app").expect("ref");
        let inp = Inputs {
            img,
            target: Target::Reference("v1".into()),
            expected: None,
            tag: Some("v1".into()),
        };
        let c = compare(
            Kind::Untag,
            &inp,
            "s".into(),
            "repository:team/app:pull,push,delete",
            &a,
            "the token",
        );
        assert!(c.blocks(), "{c:?}");
        assert!(c.evidence.contains("missing delete"), "{}", c.evidence);
        assert!(!c.evidence.contains(&tok) && !c.to_json().to_string().contains("c2ln"));
        let ok = compare(Kind::QuarantineTag, &inp, "s".into(), "x", &a, "the token");
        assert_eq!(ok.verdict, crate::actions::preflight::Verdict::Pass);
        // No access claim, or not a JWT: unreadable, not "nothing granted".
        assert_eq!(jwt_access(&format!("{}.{}.x", enc("{}"), enc("{}"))), None);
        assert_eq!(jwt_access("opaque-token"), None);
        assert_eq!(
            jwt_access(&format!("{}.{}.x", enc("{}"), enc(r#"{"access":[]}"#))),
            Some(vec![])
        );
    }

    #[test]
    fn tag_delete_and_immutability_are_info_unknowns() {
        let inp = Inputs {
            img: Reference::parse("r.example/team/app").expect("ref"),
            target: Target::Reference("v1".into()),
            expected: None,
            tag: Some("v1".into()),
        };
        let t = tag_delete_check(&inp);
        assert_eq!(t.verdict, crate::actions::preflight::Verdict::Unknown);
        assert_eq!(t.impact, Impact::Info);
        assert!(
            t.fix
                .as_deref()
                .unwrap_or("")
                .contains("storage.delete.enabled")
        );
        let i = immutable_check(Kind::Untag, &inp);
        assert!(!i.blocks());
        assert!(i.fix.as_deref().unwrap_or("").contains("Harbor"));
    }
}
