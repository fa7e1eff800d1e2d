//! Container registries: `oci.resolve`, `oci.quarantine_tag`, `oci.untag`,
//! `oci.list_referrers`, and the gated `oci.delete_manifest`.
//!
//! The wire protocol lives in `net::oci`. The order that keeps evidence: quarantine-tag the
//! bad digest first (`quarantine-<incident>`), then pull release tags from rotation — only
//! while they still point at the bad digest, and only once the quarantine tag holds it —
//! and never delete by digest outside the deletion gate (a DELETE by digest removes every
//! tag on it). Registries keep no publish time, so the gate's window depends on
//! `[oci] publish_time` (default: refuse).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::preflight::Check;
use super::{
    Action, ActionCtx, ActionError, ActionOutput, Probe, bool_input, opt_str_input, str_input,
};
use crate::config::{Config, parse_duration_ms};
use crate::engine::gate::GateFacts;
use crate::net::http::RequestRecord;
use crate::net::oci::{
    OciAuth, OciClient, OciError, Reference, UNTAG_ANNOTATION, UntagMethod, validate_digest,
    validate_tag,
};
use crate::playbook::{ActionSpec, InputSpec, InputType};

#[path = "oci_preflight.rs"]
mod oci_preflight;
use oci_preflight::Kind;

pub fn actions() -> Vec<Arc<dyn Action>> {
    vec![
        Arc::new(Resolve),
        Arc::new(QuarantineTag),
        Arc::new(Untag),
        Arc::new(ListReferrers),
        Arc::new(DeleteManifest),
    ]
}

const IMAGE: InputSpec = InputSpec {
    name: "image",
    ty: InputType::String,
    required: true,
    help: "the repository as host[:port]/repo (fully qualified, no tag)",
};
const DIGEST: InputSpec = InputSpec {
    name: "digest",
    ty: InputType::String,
    required: true,
    help: "the bad manifest digest, sha256:<64 hex>",
};

static RESOLVE: ActionSpec = ActionSpec {
    name: "oci.resolve",
    summary: "Resolve a tag or digest to its manifest digest, platforms and the tags on it.",
    inputs: &[
        IMAGE,
        InputSpec {
            name: "reference",
            ty: InputType::String,
            required: true,
            help: "a tag or a digest",
        },
        InputSpec {
            name: "list_tags",
            ty: InputType::Bool,
            required: false,
            help: "also list the repository's tags pointing at the digest (default true)",
        },
    ],
    outputs: &["digest", "media_type", "platforms", "tags", "digests"],
    mutating: false,
    destructive: false,
};

static QUARANTINE: ActionSpec = ActionSpec {
    name: "oci.quarantine_tag",
    summary: "Tag the bad digest quarantine-<incident> so the evidence survives untagging.",
    inputs: &[
        IMAGE,
        DIGEST,
        InputSpec {
            name: "tag",
            ty: InputType::String,
            required: false,
            help: "the quarantine tag (default quarantine-<incident id>)",
        },
    ],
    outputs: &["tag", "digest"],
    mutating: true,
    destructive: false,
};

static UNTAG: ActionSpec = ActionSpec {
    name: "oci.untag",
    summary: "Pull a tag from rotation (tag DELETE, else the portable dummy-manifest fallback).",
    inputs: &[
        IMAGE,
        InputSpec {
            name: "tag",
            ty: InputType::String,
            required: true,
            help: "the tag to remove",
        },
        InputSpec {
            name: "digest",
            ty: InputType::String,
            required: false,
            help: "only remove the tag while it points at this (bad) digest",
        },
        InputSpec {
            name: "require_quarantine",
            ty: InputType::Bool,
            required: false,
            help: "refuse unless quarantine-<incident> holds the digest (default true when `digest` is given)",
        },
    ],
    outputs: &["tag", "removed", "method", "previous_digest"],
    mutating: true,
    destructive: false,
};

static REFERRERS: ActionSpec = ActionSpec {
    name: "oci.list_referrers",
    summary: "List signatures, SBOMs and attestations attached to a digest.",
    inputs: &[IMAGE, DIGEST],
    outputs: &["source", "referrers", "cosign"],
    mutating: false,
    destructive: false,
};

static DELETE: ActionSpec = ActionSpec {
    name: "oci.delete_manifest",
    summary: "Delete a manifest by digest — every tag on it goes too (destructive: gated).",
    inputs: &[IMAGE, DIGEST],
    outputs: &["digest", "deleted", "tags_removed"],
    mutating: true,
    destructive: true,
};

// ---- client --------------------------------------------------------------------------

impl From<OciError> for ActionError {
    fn from(e: OciError) -> Self {
        match e {
            OciError::Http(h) => ActionError::Http(h),
            OciError::InvalidReference { .. } => ActionError::Input(e.to_string()),
            other => ActionError::Failed(other.to_string()),
        }
    }
}

/// `host[:port]/repo` → (host, repo). A tag or digest in `image` is refused: the actions
/// take those as separate inputs so the target is never ambiguous.
fn image_of(inputs: &Value) -> Result<Reference, ActionError> {
    let image = str_input(inputs, "image")?.trim();
    let r = Reference::parse(image)?;
    if r.tag.is_some() || r.digest.is_some() {
        return Err(ActionError::Input(format!(
            "`image` must be host[:port]/repo without a tag or digest, got `{image}`"
        )));
    }
    Ok(r)
}

fn digest_input(inputs: &Value) -> Result<String, ActionError> {
    let d = str_input(inputs, "digest")?.trim().to_string();
    validate_digest(&d)?;
    Ok(d)
}

/// `Action::credential` of every OCI action: the source of the image host's credential.
fn oci_credential(config: &Config, inputs: &Value) -> Option<String> {
    image_of(inputs)
        .ok()
        .map(|img| credential_source(config, &img.host))
}

/// The `Action` impl of a read-only action with an inherent `read`: `run` and `plan` are the
/// same read (reads are allowed in rehearsals), and there is no effect to reconcile.
macro_rules! read_only_action {
    ($t:ty, $spec:expr, $kind:expr) => {
        #[async_trait]
        impl Action for $t {
            fn credential(&self, config: &Config, inputs: &Value) -> Option<String> {
                oci_credential(config, inputs)
            }
            async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
                oci_preflight::checks($kind, ctx, inputs).await
            }
            fn spec(&self) -> &'static ActionSpec {
                &$spec
            }
            async fn run(
                &self,
                ctx: &ActionCtx,
                inputs: &Value,
            ) -> Result<ActionOutput, ActionError> {
                self.read(ctx, inputs).await
            }
            async fn plan(
                &self,
                ctx: &ActionCtx,
                inputs: &Value,
            ) -> Result<ActionOutput, ActionError> {
                self.read(ctx, inputs).await
            }
            async fn probe(&self, _ctx: &ActionCtx, _inputs: &Value) -> Result<Probe, ActionError> {
                Ok(Probe::NotDone {
                    evidence: json!("a read has no effect to reconcile"),
                })
            }
        }
    };
}

/// Which configured credential a host uses, for messages (never the value).
fn credential_source(cfg: &Config, host: &str) -> String {
    match cfg.oci.auth.get(host) {
        Some(a) => {
            let src = a
                .token_env
                .as_ref()
                .map(|v| format!("token from env {v}"))
                .or_else(|| {
                    a.token_file
                        .as_ref()
                        .map(|f| format!("token from file {f}"))
                })
                .or_else(|| {
                    a.password_env
                        .as_ref()
                        .map(|v| format!("password from env {v}"))
                })
                .or_else(|| {
                    a.password_file
                        .as_ref()
                        .map(|f| format!("password from file {f}"))
                })
                .unwrap_or_else(|| "no secret".into());
            format!("[oci.auth.\"{host}\"] ({src})")
        }
        None => format!("anonymous access (no [oci.auth.\"{host}\"] configured)"),
    }
}

/// The credential configured for a registry host (`[oci.auth."host"]`), anonymous if none.
pub(crate) fn load_auth(cfg: &Config, host: &str) -> Result<OciAuth, ActionError> {
    let Some(a) = cfg.oci.auth.get(host) else {
        return Ok(OciAuth::Anonymous);
    };
    let secret = |env: &Option<String>, file: &Option<String>| {
        if let Some(f) = file {
            return crate::secrets::from_file(f)
                .map(Some)
                .map_err(|e| ActionError::Config(e.to_string()));
        }
        match env {
            Some(v) => crate::secrets::from_env(v)
                .map(Some)
                .map_err(|e| ActionError::Config(e.to_string())),
            None => Ok(None),
        }
    };
    if let Some(token) = secret(&a.token_env, &a.token_file)? {
        return Ok(OciAuth::Bearer { token });
    }
    match (&a.username, secret(&a.password_env, &a.password_file)?) {
        (Some(u), Some(p)) => Ok(OciAuth::Basic {
            username: u.clone(),
            password: p,
        }),
        _ => Ok(OciAuth::Anonymous),
    }
}

/// One client per registry host (connection reuse, token cache).
fn client(ctx: &ActionCtx, host: &str) -> Result<Arc<OciClient>, ActionError> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<OciClient>>>> = OnceLock::new();
    let cfg = &ctx.config.oci;
    let insecure = cfg.insecure.iter().any(|h| h == host);
    let a = cfg.auth.get(host);
    let key = format!(
        "{host}|{insecure}|{:?}|{}",
        a.map(|a| (
            &a.username,
            &a.password_env,
            &a.password_file,
            &a.token_env,
            &a.token_file
        )),
        cfg.timeout
    );
    let map = CLIENTS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(c) = map.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(c);
    }
    let timeout = parse_duration_ms(&cfg.timeout).map_err(ActionError::Config)?;
    let auth = load_auth(&ctx.config, host)?;
    let c = OciClient::new(host, auth, insecure, Duration::from_millis(timeout))?
        .with_insecure_hosts(&cfg.insecure);
    let c = Arc::new(c);
    if let Ok(mut m) = map.lock() {
        m.insert(key, c.clone());
    }
    Ok(c)
}

/// 401/403 fail at once and name the credential (its source, never its value).
fn explain(ctx: &ActionCtx, host: &str, e: OciError) -> ActionError {
    match e.status() {
        Some(s @ (401 | 403)) => ActionError::Failed(format!(
            "{host} refused {} ({s}): {e}",
            credential_source(&ctx.config, host)
        )),
        _ => e.into(),
    }
}

fn record_json(r: &RequestRecord) -> Value {
    // Manifests go on the wire byte for byte; the timeline keeps their size and digest, not
    // the whole document.
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let (Some(raw), Value::Object(m)) = (&r.raw_body, &mut v) {
        m.insert(
            "raw_body".into(),
            json!({ "bytes": raw.len(), "sha256": crate::net::oci::sha256_digest(raw.as_bytes()) }),
        );
    }
    v
}

fn quarantine_tag(ctx: &ActionCtx, inputs: &Value) -> Result<String, ActionError> {
    let tag = match opt_str_input(inputs, "tag")? {
        Some(t) => t.trim().to_string(),
        None => format!("quarantine-{}", ctx.incident),
    };
    validate_tag(&tag)?;
    Ok(tag)
}

// ---- oci.resolve ---------------------------------------------------------------------

pub struct Resolve;

impl Resolve {
    async fn read(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let img = image_of(inputs)?;
        let reference = str_input(inputs, "reference")?.trim().to_string();
        let c = client(ctx, &img.host)?;
        let r = c
            .resolve(&img.repo, &reference)
            .await
            .map_err(|e| explain(ctx, &img.host, e))?;
        let tags = if bool_input(inputs, "list_tags", true)? {
            c.tags_pointing_at(&img.repo, &r.digest)
                .await
                .map_err(|e| explain(ctx, &img.host, e))?
        } else {
            Vec::new()
        };
        let platforms: Vec<Value> = r
            .platforms
            .iter()
            .map(|p| {
                json!({ "os": p.os, "architecture": p.architecture, "variant": p.variant,
                        "digest": p.digest })
            })
            .collect();
        // The index and every platform manifest: a runtime may report either, so a deny
        // list or a running-pod sweep needs them all.
        let mut digests = vec![r.digest.clone()];
        digests.extend(r.platforms.iter().map(|p| p.digest.clone()));
        digests.dedup();
        Ok(ActionOutput::new(
            json!({ "image": img.to_string(), "digest": r.digest, "media_type": r.media_type,
                    "platforms": platforms, "tags": tags, "digests": digests }),
            format!(
                "{img}@{} is {}{}; tags on it: {}",
                r.digest,
                r.media_type,
                if r.is_index() {
                    format!(" with {} platform manifest(s)", platforms.len())
                } else {
                    String::new()
                },
                if tags.is_empty() {
                    "none".to_string()
                } else {
                    tags.join(", ")
                }
            ),
        ))
    }
}

read_only_action!(Resolve, RESOLVE, Kind::Resolve);

// ---- oci.quarantine_tag --------------------------------------------------------------

pub struct QuarantineTag;

#[async_trait]
impl Action for QuarantineTag {
    fn credential(&self, config: &Config, inputs: &Value) -> Option<String> {
        oci_credential(config, inputs)
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        oci_preflight::checks(Kind::QuarantineTag, ctx, inputs).await
    }

    fn spec(&self) -> &'static ActionSpec {
        &QUARANTINE
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let img = image_of(inputs)?;
        let digest = digest_input(inputs)?;
        let tag = quarantine_tag(ctx, inputs)?;
        let c = client(ctx, &img.host)?;
        let ex = |e| explain(ctx, &img.host, e);
        match c.head_manifest(&img.repo, &tag).await.map_err(ex)? {
            Some(h) if h.digest == digest => {
                return Ok(ActionOutput::new(
                    json!({ "tag": tag, "digest": digest }),
                    format!("{img}:{tag} already holds {digest}; nothing sent"),
                ));
            }
            Some(h) => {
                return Err(ActionError::Refused(format!(
                    "{img}:{tag} already exists and points at {}, not {digest}; choose another `tag`",
                    h.digest
                )));
            }
            None => {}
        }
        let m = c.resolve(&img.repo, &digest).await.map_err(ex)?;
        let put = c.put_manifest_request(&img.repo, &tag, &m.media_type, &m.raw)?;
        ctx.ensure_live(&put)?;
        c.send(&put).await.map_err(ex)?;
        // Verify: the tag resolves to exactly the bad digest.
        let after = c.head_manifest(&img.repo, &tag).await.map_err(ex)?;
        if after.as_ref().map(|h| h.digest.as_str()) != Some(digest.as_str()) {
            return Err(ActionError::Failed(format!(
                "registry accepted the PUT but {img}:{tag} resolves to {:?}, not {digest}",
                after.map(|h| h.digest)
            )));
        }
        Ok(ActionOutput::new(
            json!({ "tag": tag, "digest": digest }),
            format!("tagged {img}@{digest} as {tag} (verified): the evidence survives untagging"),
        )
        .with("requests", json!([record_json(&put)])))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let img = image_of(inputs)?;
        let digest = digest_input(inputs)?;
        let tag = quarantine_tag(ctx, inputs)?;
        let c = client(ctx, &img.host)?;
        let ex = |e| explain(ctx, &img.host, e);
        let m = c.resolve(&img.repo, &digest).await.map_err(ex)?;
        let put = c.put_manifest_request(&img.repo, &tag, &m.media_type, &m.raw)?;
        let mut findings = Vec::new();
        if let Some(h) = c.head_manifest(&img.repo, &tag).await.map_err(ex)?
            && h.digest != digest
        {
            findings.push(format!(
                "blocker: {img}:{tag} already exists and points at {}",
                h.digest
            ));
        }
        Ok(ActionOutput::new(
            json!({ "tag": tag, "digest": digest }),
            format!("rehearsal: would PUT the manifest of {digest} as {img}:{tag}"),
        )
        .with("requests", json!([record_json(&put)]))
        .with("findings", json!(findings)))
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let img = image_of(inputs)?;
        let digest = digest_input(inputs)?;
        let tag = quarantine_tag(ctx, inputs)?;
        let c = client(ctx, &img.host)?;
        Ok(match c.head_manifest(&img.repo, &tag).await {
            Ok(Some(h)) if h.digest == digest => Probe::Done {
                outputs: json!({ "tag": tag, "digest": digest }),
                evidence: json!(format!("{img}:{tag} resolves to {digest}")),
            },
            Ok(None) => Probe::NotDone {
                evidence: json!(format!("{img}:{tag} does not exist")),
            },
            Ok(Some(h)) => Probe::Unknown {
                reason: format!("{img}:{tag} points at {}", h.digest),
            },
            Err(e) => Probe::Unknown {
                reason: e.to_string(),
            },
        })
    }
}

// ---- oci.untag -----------------------------------------------------------------------

pub struct Untag;

/// Is `tag` in the repository's tag list? (A dangling tag is listed but does not resolve.)
async fn listed(c: &OciClient, repo: &str, tag: &str) -> Result<bool, OciError> {
    c.tag_listed(repo, tag).await
}

/// What the tag points at now, and whether that is one of our untag dummies.
async fn tag_state(
    c: &OciClient,
    repo: &str,
    tag: &str,
) -> Result<Option<(String, bool)>, OciError> {
    match c.head_manifest(repo, tag).await? {
        None => Ok(None),
        Some(h) => {
            let dummy = if h.media_type == crate::net::oci::MEDIA_OCI_MANIFEST {
                let m = c.resolve(repo, &h.digest).await?;
                m.raw.contains(UNTAG_ANNOTATION)
            } else {
                false
            };
            Ok(Some((h.digest, dummy)))
        }
    }
}

impl Untag {
    /// Checks before removing a tag. `Ok(Some(output))` means: nothing to do.
    async fn precheck(
        &self,
        ctx: &ActionCtx,
        c: &OciClient,
        img: &Reference,
        tag: &str,
        inputs: &Value,
    ) -> Result<Option<ActionOutput>, ActionError> {
        let ex = |e| explain(ctx, &img.host, e);
        let expected = match opt_str_input(inputs, "digest")? {
            Some(d) => {
                validate_digest(d.trim())?;
                Some(d.trim().to_string())
            }
            None => None,
        };
        let state = tag_state(c, &img.repo, tag).await.map_err(ex)?;
        let Some((current, dummy)) = state else {
            if listed(c, &img.repo, tag).await.map_err(ex)? {
                return Ok(None); // dangling: the client re-points and removes it
            }
            return Ok(Some(ActionOutput::new(
                json!({ "tag": tag, "removed": false, "method": "already_absent", "previous_digest": null }),
                format!("{img}:{tag} does not exist; nothing to remove"),
            )));
        };
        if let Some(exp) = &expected
            && !dummy
            && &current != exp
        {
            // Someone already moved the tag to another image (a fixed release): removing
            // it now would take the fix out of rotation.
            return Ok(Some(ActionOutput::new(
                json!({ "tag": tag, "removed": false, "method": "left_alone", "previous_digest": current }),
                format!("{img}:{tag} now points at {current}, not the bad {exp}; left alone"),
            )));
        }
        let require_q = bool_input(inputs, "require_quarantine", expected.is_some())?;
        if require_q {
            let q = format!("quarantine-{}", ctx.incident);
            let held = c.head_manifest(&img.repo, &q).await.map_err(ex)?;
            let want = expected.as_deref().unwrap_or(current.as_str());
            if held.as_ref().map(|h| h.digest.as_str()) != Some(want) {
                return Err(ActionError::Refused(format!(
                    "{img}:{q} does not hold {want}: quarantine-tag the digest first (oci.quarantine_tag) so the evidence survives, or set `require_quarantine: false`"
                )));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Action for Untag {
    fn credential(&self, config: &Config, inputs: &Value) -> Option<String> {
        oci_credential(config, inputs)
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        oci_preflight::checks(Kind::Untag, ctx, inputs).await
    }

    fn spec(&self) -> &'static ActionSpec {
        &UNTAG
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let img = image_of(inputs)?;
        let tag = str_input(inputs, "tag")?.trim().to_string();
        validate_tag(&tag)?;
        let c = client(ctx, &img.host)?;
        if let Some(done) = self.precheck(ctx, &c, &img, &tag, inputs).await? {
            return Ok(done);
        }
        // Every request untag sends is mutating; a rehearsal never reaches this point.
        ctx.ensure_live(&RequestRecord::new("DELETE", format!("{img}:{tag}")))?;
        let out = c
            .untag(&img.repo, &tag, &ctx.idem_key)
            .await
            .map_err(|e| explain(ctx, &img.host, e))?;
        let requests: Vec<Value> = out.sent.iter().map(record_json).collect();
        // Verify: the tag is gone (neither resolves nor is listed) and the image itself
        // still resolves.
        let ex = |e| explain(ctx, &img.host, e);
        let still = c
            .head_manifest(&img.repo, &tag)
            .await
            .map_err(ex)?
            .is_some()
            || listed(&c, &img.repo, &tag).await.map_err(ex)?;
        if still && out.dummy_deleted {
            return Err(ActionError::Failed(format!(
                "registry accepted the untag but {img}:{tag} still resolves"
            )));
        }
        if let Some(prev) = &out.previous_digest
            && !c.manifest_exists(&img.repo, prev).await.unwrap_or(false)
        {
            return Err(ActionError::Failed(format!(
                "{img}:{tag} is gone but so is {prev}: the registry deleted the image itself"
            )));
        }
        let method = match out.method {
            UntagMethod::AlreadyAbsent => "already_absent",
            UntagMethod::TagDelete => "tag_delete",
            UntagMethod::DummyOverwrite => "dummy_overwrite",
        };
        Ok(ActionOutput::new(
            json!({ "tag": tag, "removed": out.method != UntagMethod::AlreadyAbsent,
                    "method": method, "previous_digest": out.previous_digest }),
            format!(
                "removed {img}:{tag} ({}); {} still resolves (verified){}",
                match out.method {
                    UntagMethod::TagDelete => "tag DELETE",
                    UntagMethod::DummyOverwrite => "registry refused tag DELETE: dummy manifest pushed to the tag, then deleted by its own digest",
                    UntagMethod::AlreadyAbsent => "already absent",
                },
                out.previous_digest.as_deref().unwrap_or("the image"),
                if out.dummy_deleted || out.method != UntagMethod::DummyOverwrite {
                    ""
                } else {
                    "; the registry refused to delete the dummy, so the tag now points at an empty manifest"
                }
            ),
        )
        .with("requests", json!(requests)))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let img = image_of(inputs)?;
        let tag = str_input(inputs, "tag")?.trim().to_string();
        validate_tag(&tag)?;
        let c = client(ctx, &img.host)?;
        let mut findings = Vec::new();
        // In a rehearsal the quarantine tag was only planned: its absence is expected.
        let mut relaxed = inputs.clone();
        if let Value::Object(m) = &mut relaxed {
            m.insert("require_quarantine".into(), json!(false));
        }
        if let Some(done) = self.precheck(ctx, &c, &img, &tag, &relaxed).await? {
            return Ok(done);
        }
        let p = c
            .untag_plan(&img.repo, &tag, &ctx.idem_key)
            .await
            .map_err(|e| explain(ctx, &img.host, e))?;
        if p.tag_delete.is_some() && !p.fallback.is_empty() {
            findings.push(
                "note: if the registry refuses the tag DELETE (distribution 2.x does), the dummy-manifest fallback follows".to_string(),
            );
        }
        Ok(ActionOutput::new(
            json!({ "tag": tag, "removed": true, "method": "planned",
                    "previous_digest": p.current_digest }),
            format!(
                "rehearsal: would remove {img}:{tag} (now {})",
                p.current_digest.as_deref().unwrap_or("absent")
            ),
        )
        .with(
            "requests",
            json!(p.records().iter().map(record_json).collect::<Vec<_>>()),
        )
        .with("findings", json!(findings)))
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let img = image_of(inputs)?;
        let tag = str_input(inputs, "tag")?.trim().to_string();
        let c = client(ctx, &img.host)?;
        let dangling = match listed(&c, &img.repo, &tag).await {
            Ok(l) => l,
            Err(e) => {
                return Ok(Probe::Unknown {
                    reason: e.to_string(),
                });
            }
        };
        Ok(match tag_state(&c, &img.repo, &tag).await {
            Ok(None) if dangling => Probe::NotDone {
                evidence: json!(format!(
                    "{img}:{tag} no longer resolves but is still listed"
                )),
            },
            Ok(None) => Probe::Done {
                outputs: json!({ "tag": tag, "removed": true, "method": "reconciled", "previous_digest": null }),
                evidence: json!(format!("{img}:{tag} no longer resolves and is not listed")),
            },
            Ok(Some((d, _))) => Probe::NotDone {
                evidence: json!(format!("{img}:{tag} still points at {d}")),
            },
            Err(e) => Probe::Unknown {
                reason: e.to_string(),
            },
        })
    }
}

// ---- oci.list_referrers --------------------------------------------------------------

pub struct ListReferrers;

impl ListReferrers {
    async fn read(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let img = image_of(inputs)?;
        let digest = digest_input(inputs)?;
        let c = client(ctx, &img.host)?;
        let r = c
            .referrers(&img.repo, &digest)
            .await
            .map_err(|e| explain(ctx, &img.host, e))?;
        let source = serde_json::to_value(r.source).unwrap_or(Value::Null);
        let n = r.descriptors.len() + r.cosign.len();
        Ok(ActionOutput::new(
            json!({ "source": source, "referrers": r.descriptors, "cosign": r.cosign }),
            format!(
                "{n} artifact(s) attached to {img}@{digest} ({} referrer(s) via {source}, {} cosign tag(s))",
                r.descriptors.len(),
                r.cosign.len()
            ),
        ))
    }
}

read_only_action!(ListReferrers, REFERRERS, Kind::ListReferrers);

// ---- oci.delete_manifest (destructive) -----------------------------------------------

pub struct DeleteManifest;

#[async_trait]
impl Action for DeleteManifest {
    fn credential(&self, config: &Config, inputs: &Value) -> Option<String> {
        oci_credential(config, inputs)
    }

    async fn preflight(&self, ctx: &ActionCtx, inputs: &Value) -> Vec<Check> {
        oci_preflight::checks(Kind::DeleteManifest, ctx, inputs).await
    }

    fn spec(&self) -> &'static ActionSpec {
        &DELETE
    }

    async fn run(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let img = image_of(inputs)?;
        let digest = digest_input(inputs)?;
        let c = client(ctx, &img.host)?;
        let ex = |e| explain(ctx, &img.host, e);
        if !c.manifest_exists(&img.repo, &digest).await.map_err(ex)? {
            return Ok(ActionOutput::new(
                json!({ "digest": digest, "deleted": false, "tags_removed": [] }),
                format!("{img}@{digest} does not exist; nothing to delete"),
            ));
        }
        let tags = c.tags_pointing_at(&img.repo, &digest).await.map_err(ex)?;
        let del = c.delete_manifest_request(&img.repo, &digest)?;
        ctx.ensure_live(&del)?;
        c.send(&del).await.map_err(ex)?;
        if c.manifest_exists(&img.repo, &digest).await.map_err(ex)? {
            return Err(ActionError::Failed(format!(
                "registry accepted the DELETE but {img}@{digest} still resolves"
            )));
        }
        Ok(ActionOutput::new(
            json!({ "digest": digest, "deleted": true, "tags_removed": tags }),
            format!(
                "deleted {img}@{digest} (verified); tags removed with it: {}",
                if tags.is_empty() {
                    "none".to_string()
                } else {
                    tags.join(", ")
                }
            ),
        )
        .with("requests", json!([record_json(&del)])))
    }

    async fn plan(&self, ctx: &ActionCtx, inputs: &Value) -> Result<ActionOutput, ActionError> {
        let img = image_of(inputs)?;
        let digest = digest_input(inputs)?;
        let c = client(ctx, &img.host)?;
        let tags = c
            .tags_pointing_at(&img.repo, &digest)
            .await
            .map_err(|e| explain(ctx, &img.host, e))?;
        let del = c.delete_manifest_request(&img.repo, &digest)?;
        Ok(ActionOutput::new(
            json!({ "digest": digest, "deleted": true, "tags_removed": tags }),
            format!("rehearsal: would DELETE {img}@{digest}, removing every tag on it"),
        )
        .with("requests", json!([record_json(&del)])))
    }

    async fn probe(&self, ctx: &ActionCtx, inputs: &Value) -> Result<Probe, ActionError> {
        let img = image_of(inputs)?;
        let digest = digest_input(inputs)?;
        let c = client(ctx, &img.host)?;
        Ok(match c.manifest_exists(&img.repo, &digest).await {
            Ok(false) => Probe::Done {
                outputs: json!({ "digest": digest, "deleted": true, "tags_removed": [] }),
                evidence: json!(format!("{img}@{digest} no longer resolves")),
            },
            Ok(true) => Probe::NotDone {
                evidence: json!(format!("{img}@{digest} still resolves")),
            },
            Err(e) => Probe::Unknown {
                reason: e.to_string(),
            },
        })
    }

    /// Registries keep no publish time. `[oci] publish_time = "refuse"` (default) leaves it
    /// unknown, so the gate refuses; `"allow"` exempts the window, recorded as such. The
    /// labels carry every tag on the digest, so a retention rule on `v*` tags protects it.
    async fn gate_facts(&self, ctx: &ActionCtx, inputs: &Value) -> Result<GateFacts, ActionError> {
        let img = image_of(inputs)?;
        let digest = digest_input(inputs)?;
        let c = client(ctx, &img.host)?;
        let ex = |e| explain(ctx, &img.host, e);
        if !c.manifest_exists(&img.repo, &digest).await.map_err(ex)? {
            return Err(ActionError::Failed(format!(
                "{img}@{digest} does not exist: nothing to delete"
            )));
        }
        let tags = c.tags_pointing_at(&img.repo, &digest).await.map_err(ex)?;
        let mut labels = vec![
            format!("oci:{}/{}@{digest}", img.host, img.repo),
            format!("digest:{digest}"),
        ];
        labels.extend(
            tags.iter()
                .map(|t| format!("oci-tag:{}/{}:{t}", img.host, img.repo)),
        );
        let allow = ctx.config.oci.publish_time == "allow";
        Ok(GateFacts {
            published_at: None,
            published_source: if allow {
                "OCI registries keep no publish time; [oci] publish_time = \"allow\" exempts the window".into()
            } else {
                "OCI registries keep no publish time ([oci] publish_time = \"refuse\")".into()
            },
            window_exempt: allow,
            labels,
        })
    }
}
