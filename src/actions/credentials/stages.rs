//! The stages of a rotation, run in order and each recorded before the next.

use super::*;

pub(super) struct Run<'a> {
    pub(super) ctx: &'a ActionCtx,
    pub(super) spec: Spec,
    /// `value_env`/`value_file`, when the new value was handed over that way.
    pub(super) provided: Option<SecretString>,
    pub(super) st: Staged,
    pub(super) sent: Vec<Value>,
}

pub(super) fn provided_input(inputs: &Value) -> Result<Option<SecretString>, ActionError> {
    let env = opt_str_input(inputs, "value_env")?;
    let file = opt_str_input(inputs, "value_file")?;
    match (env, file) {
        (Some(_), Some(_)) => Err(ActionError::Input(
            "give `value_env` or `value_file`, not both".into(),
        )),
        (Some(e), None) => secret_env(e, "value_env").map(Some),
        (None, Some(f)) => crate::secrets::from_file(f)
            .map(Some)
            .map_err(|e| ActionError::Config(format!("value_file: {e}"))),
        (None, None) => Ok(None),
    }
}

fn proven(evidence: Option<&Value>) -> Value {
    match evidence {
        Some(e) if e.get("skipped").is_some() => Value::Null,
        Some(_) => Value::Bool(true),
        None => Value::Bool(false),
    }
}

pub(super) fn rec_json(r: &RequestRecord) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

impl Run<'_> {
    pub(super) async fn save(&mut self, summary: String, data: Value) -> Result<(), ActionError> {
        save(self.ctx, &self.st, summary, data).await
    }

    pub(super) fn old_value(&self) -> Result<Option<SecretString>, ActionError> {
        self.spec
            .old_secret_env
            .as_deref()
            .map(|v| secret_env(v, "old_secret_env"))
            .transpose()
    }

    /// Stage 1. `None` when a person must provide the value first.
    pub(super) async fn obtain(&mut self) -> Result<Option<SecretString>, ActionError> {
        if self.st.stage >= Stage::Obtained {
            let sealed = self.st.sealed.clone().ok_or_else(|| {
                ActionError::Failed("the rotation's staged credential is missing".into())
            })?;
            return unseal_staged(&self.ctx.config, &sealed).map(Some);
        }
        // Fail before any effect when the value could not be kept across a crash.
        staging_key(&self.ctx.config)?;
        let (value, how, key) = match self.spec.new {
            New::Generate { length, charset } => (generate(length, charset)?, "generated", None),
            New::Provided => match self.provided.clone() {
                Some(v) => (v, "provided", None),
                None => return Ok(None),
            },
            New::Mint => {
                let (v, key) = self.mint().await?;
                (v, "minted at npm", Some(key))
            }
        };
        crate::secrets::register(&value);
        let fp = fingerprint(&self.ctx.idem_key, &value);
        self.st.sealed = Some(seal_staged(&self.ctx.config, &value)?);
        self.st.new_fingerprint = Some(fp.clone());
        self.st.new_key = key.clone();
        self.st.stage = Stage::Obtained;
        self.save(
            format!(
                "stage 1 obtain: new credential {how} ({fp}{})",
                key.as_deref()
                    .map(|k| format!(", token key {k}"))
                    .unwrap_or_default()
            ),
            json!({ "stage": "obtained", "how": how, "fingerprint": fp, "key": key }),
        )
        .await?;
        crate::runner::failpoint::hit("credentials.after_obtain");
        Ok(Some(value))
    }

    /// npm: snapshot the account's token keys, mint, and return the new token and key.
    /// A resume that finds a snapshot (a mint may have been in flight) first revokes the
    /// tokens that appeared since: nobody holds their value.
    pub(super) async fn mint(&mut self) -> Result<(SecretString, String), ActionError> {
        let c = crate::actions::npm::client(self.ctx)?;
        let password = secret_env(
            self.spec.password_env.as_deref().unwrap_or_default(),
            "password_env",
        )?;
        let keys: Vec<String> = c
            .list_tokens()
            .await
            .map_err(ActionError::Read)?
            .into_iter()
            .map(|t| t.key)
            .collect();
        if let Some(before) = self.st.snapshot.clone() {
            for k in keys.iter().filter(|k| !before.contains(k)) {
                let rec = c.revoke_token_request(k)?;
                self.ctx.ensure_live(&rec)?;
                match c.send(&rec).await {
                    Ok(_) => {}
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => return Err(e.into()),
                }
                self.sent.push(rec_json(&rec));
                self.st.orphans_revoked.push(k.clone());
                self.save(
                    format!("stage 1 obtain: revoked token {k}, minted by an interrupted attempt whose value was never kept"),
                    json!({ "stage": "minting", "orphan_revoked": k }),
                )
                .await?;
            }
        }
        self.st.snapshot = Some(
            keys.into_iter()
                .filter(|k| !self.st.orphans_revoked.contains(k))
                .collect(),
        );
        self.st.stage = Stage::Minting;
        self.save(
            "stage 1 obtain: minting a new npm token".into(),
            json!({ "stage": "minting" }),
        )
        .await?;
        let rec = c.create_token_record(self.spec.readonly, &self.spec.cidr);
        self.ctx.ensure_live(&rec)?;
        let (token, key) = c
            .create_token(&password, self.spec.readonly, &self.spec.cidr)
            .await?;
        self.sent.push(rec_json(&rec));
        crate::runner::failpoint::hit("credentials.after_mint");
        Ok((token, key))
    }

    /// Stage 2: every destination not yet written.
    pub(super) async fn write(&mut self, value: &SecretString) -> Result<(), ActionError> {
        let fp = self.st.new_fingerprint.clone().unwrap_or_default();
        for d in self.spec.dests.clone() {
            let label = d.label();
            if self.st.written.contains(&label) {
                continue;
            }
            let evidence = self.write_one(&d, value).await?;
            self.st.written.push(label.clone());
            self.save(
                format!("stage 2 write: new credential ({fp}) written to {label}"),
                json!({ "stage": "written", "destination": label, "evidence": evidence }),
            )
            .await?;
            crate::runner::failpoint::hit("credentials.after_write");
        }
        Ok(())
    }

    pub(super) async fn write_one(
        &mut self,
        d: &Dest,
        value: &SecretString,
    ) -> Result<Value, ActionError> {
        match d {
            Dest::GitHub { scope, name } => {
                let c = crate::actions::github::client(self.ctx)?;
                let vis = matches!(scope, Scope::Org { .. }).then_some("private");
                let (rec, created) = put_secret(&c, self.ctx, scope, name, value, vis).await?;
                self.sent.push(rec_json(&rec));
                let meta = secret_meta(&c, scope, name).await?.ok_or_else(|| {
                    ActionError::Failed(format!(
                        "GitHub accepted secret {name} in {} but does not list it",
                        scope.label()
                    ))
                })?;
                Ok(json!({ "created": created, "updated_at": meta["updated_at"] }))
            }
            Dest::Kube {
                cluster,
                namespace,
                secret,
                key,
                restart,
            } => {
                let rec = RequestRecord::new(
                    "PUT",
                    format!(
                        "kube://{}/api/v1/namespaces/{namespace}/secrets/{secret}",
                        cluster.as_deref().unwrap_or("default")
                    ),
                );
                self.ctx.ensure_live(&rec)?;
                let v = write_value(
                    self.ctx,
                    cluster.as_deref(),
                    namespace,
                    secret,
                    vec![key.clone()],
                    *restart,
                    value,
                )
                .await?;
                self.sent.push(rec_json(&rec));
                Ok(v)
            }
            Dest::EnvFile { path, var } => {
                if self.ctx.mode == Mode::Rehearsal {
                    return Err(ActionError::Refused(
                        "internal error: an env file write attempted during a rehearsal".into(),
                    ));
                }
                write_env_file(path, var, value)?;
                Ok(json!({ "path": path, "var": var }))
            }
        }
    }

    /// Stage 3: revoke the old credential at its provider.
    pub(super) async fn revoke(&mut self) -> Result<(), ActionError> {
        if self.st.old_revoked.is_some() {
            return Ok(());
        }
        let evidence = match self.spec.provider {
            Provider::None => {
                json!({ "skipped": "no provider: the old value dies with every destination overwritten" })
            }
            Provider::Npm => self.revoke_npm().await?,
            Provider::Crates => {
                let c = crates_client(self.ctx)?;
                let old = self.old_value()?.ok_or_else(|| {
                    ActionError::Input("crates: `old_secret_env` is required".into())
                })?;
                let rec = c.revoke_current_request();
                self.ctx.ensure_live(&rec)?;
                let r = match c.send_with(&rec, &old).await {
                    Ok(_) => json!({ "revoked": "DELETE /api/v1/tokens/current answered 204" }),
                    // The token is already refused: revoked before, or by someone else.
                    Err(e) if e.is_auth_refused() => {
                        json!({ "revoked": format!("already refused ({})", e.status().unwrap_or(0)) })
                    }
                    Err(e) => return Err(e.into()),
                };
                self.sent.push(rec_json(&rec));
                r
            }
        };
        self.st.old_revoked = Some(evidence.clone());
        self.save(
            format!(
                "stage 3 revoke: old credential revoked at {:?}",
                self.spec.provider
            )
            .to_lowercase(),
            json!({ "stage": "revoked", "evidence": evidence }),
        )
        .await?;
        crate::runner::failpoint::hit("credentials.after_revoke");
        Ok(())
    }

    pub(super) async fn revoke_npm(&mut self) -> Result<Value, ActionError> {
        let c = crate::actions::npm::client(self.ctx)?;
        let old = self.old_value()?;
        if let (Some(o), Ok(Some(own))) =
            (&old, crate::actions::npm::load_token(&self.ctx.config.npm))
            && o.expose_secret() == own.expose_secret()
        {
            return Err(ActionError::Refused(
                "the old credential is Recall's own npm token: revoking it would stop the response; rotate Recall's token separately".into(),
            ));
        }
        let tokens = c.list_tokens().await.map_err(ActionError::Read)?;
        let found = match (&self.spec.old_key, &old) {
            (Some(k), _) => find_token(&tokens, k)?.cloned(),
            (None, Some(o)) => tokens.iter().find(|t| masked_matches(&t.token, o)).cloned(),
            (None, None) => None,
        };
        let Some(t) = found else {
            // Not listed: already revoked if its value is refused; otherwise we cannot tell.
            if let Some(o) = &old {
                match c.whoami(Some(o)).await {
                    Err(e) if e.is_auth_refused() => {
                        return Ok(
                            json!({ "revoked": "not listed, and the old token is already refused" }),
                        );
                    }
                    Err(e) => return Err(ActionError::Read(e)),
                    Ok(user) => {
                        return Err(ActionError::Failed(format!(
                            "the old token authenticates as `{user}` but is not among this account's tokens: it belongs to another account; revoke it there"
                        )));
                    }
                }
            }
            return Err(ActionError::Failed(format!(
                "no token of this account matches `{}`",
                self.spec.old_key.as_deref().unwrap_or("?")
            )));
        };
        if Some(&t.key) == self.st.new_key.as_ref() {
            return Err(ActionError::Refused(
                "the old token key is the new token's: nothing would be rotated".into(),
            ));
        }
        let rec = c.revoke_token_request(&t.key)?;
        self.ctx.ensure_live(&rec)?;
        match c.send(&rec).await {
            Ok(_) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
        self.sent.push(rec_json(&rec));
        Ok(json!({ "key": t.key, "token": t.token }))
    }

    /// Stage 4a: the old credential is refused.
    pub(super) async fn prove_old_dead(&mut self) -> Result<(), ActionError> {
        if self.st.old_dead.is_some() {
            return Ok(());
        }
        let old = self.old_value()?;
        let evidence = match (self.spec.provider, &old) {
            (Provider::None, _) => json!({ "skipped": "no provider to ask" }),
            (Provider::Npm, Some(o)) => {
                match crate::actions::npm::client(self.ctx)?.whoami(Some(o)).await {
                    Err(e) if e.is_auth_refused() => {
                        json!({ "whoami": e.status(), "fingerprint": fingerprint(&self.ctx.idem_key, o) })
                    }
                    Err(e) => return Err(ActionError::Read(e)),
                    Ok(user) => {
                        return Err(ActionError::Failed(format!(
                            "the old npm token still authenticates as `{user}` after the revoke"
                        )));
                    }
                }
            }
            (Provider::Npm, None) => {
                let key = self
                    .st
                    .old_revoked
                    .as_ref()
                    .and_then(|v| v["key"].as_str())
                    .map(str::to_string);
                let tokens = crate::actions::npm::client(self.ctx)?
                    .list_tokens()
                    .await
                    .map_err(ActionError::Read)?;
                if key
                    .as_ref()
                    .is_some_and(|k| tokens.iter().any(|t| &t.key == k))
                {
                    return Err(ActionError::Failed(format!(
                        "token {} is still listed after the revoke",
                        key.unwrap_or_default()
                    )));
                }
                json!({ "listed": false, "key": key, "note": "without the old value (old_secret_env) only its absence from the token list can be shown" })
            }
            (Provider::Crates, Some(o)) => match crates_client(self.ctx)?.token_state(o).await? {
                TokenState::Refused { status, .. } => json!({ "probe": status }),
                TokenState::Accepted => {
                    return Err(ActionError::Failed(
                        "crates.io still accepts the old token after the revoke".into(),
                    ));
                }
                TokenState::Inconclusive { status, detail } => {
                    return Err(ActionError::Failed(format!(
                        "cannot prove the old crates token dead: the registry answered {status} {detail}"
                    )));
                }
            },
            (Provider::Crates, None) => {
                return Err(ActionError::Input(
                    "crates: `old_secret_env` is required".into(),
                ));
            }
        };
        self.st.old_dead = Some(evidence.clone());
        self.save(
            "stage 4 verify: the old credential is refused".into(),
            json!({ "stage": "old_dead", "evidence": evidence }),
        )
        .await
    }

    /// Stage 4b: the new credential is accepted.
    pub(super) async fn prove_new_works(
        &mut self,
        value: &SecretString,
    ) -> Result<(), ActionError> {
        if self.st.new_works.is_some() {
            return Ok(());
        }
        let evidence = match self.spec.provider {
            Provider::None => {
                json!({ "skipped": "no provider to ask; every destination was read back" })
            }
            Provider::Npm => match crate::actions::npm::client(self.ctx)?
                .whoami(Some(value))
                .await
            {
                Ok(user) => json!({ "whoami": user }),
                Err(e) if e.is_auth_refused() => {
                    return Err(ActionError::Failed(format!(
                        "the new npm token is refused ({}): the destinations hold a credential that does not work",
                        e.status().unwrap_or(0)
                    )));
                }
                Err(e) => return Err(ActionError::Read(e)),
            },
            Provider::Crates => match crates_client(self.ctx)?.token_state(value).await? {
                TokenState::Accepted => json!({ "accepted": true }),
                TokenState::Refused { status, detail } => {
                    return Err(ActionError::Failed(format!(
                        "crates.io refuses the new token ({status} {detail})"
                    )));
                }
                TokenState::Inconclusive { status, detail } => {
                    return Err(ActionError::Failed(format!(
                        "cannot tell whether the new crates token works: {status} {detail}"
                    )));
                }
            },
        };
        self.st.new_works = Some(evidence.clone());
        self.save(
            "stage 4 verify: the new credential is accepted".into(),
            json!({ "stage": "new_works", "evidence": evidence }),
        )
        .await?;
        crate::runner::failpoint::hit("credentials.after_verify");
        Ok(())
    }

    pub(super) fn outputs(st: &Staged, provider: Provider) -> Value {
        json!({
            "provider": format!("{provider:?}").to_lowercase(),
            "new_fingerprint": st.new_fingerprint,
            "new_key": st.new_key,
            "old_revoked": st.old_revoked,
            // true: proven; null: nothing to ask (provider none); false: not yet.
            "old_dead": proven(st.old_dead.as_ref()),
            "new_works": proven(st.new_works.as_ref()),
            "destinations": st.written,
        })
    }

    pub(super) async fn finish(&mut self) -> Result<ActionOutput, ActionError> {
        self.st.stage = Stage::Done;
        self.st.sealed = None;
        self.st.snapshot = None;
        let summary = format!(
            "rotation done: new credential {} in {} destination(s), old one revoked and refused; the staged value is erased",
            self.st.new_fingerprint.as_deref().unwrap_or("?"),
            self.st.written.len()
        );
        self.save(summary.clone(), json!({ "stage": "done" }))
            .await?;
        Ok(
            ActionOutput::new(Self::outputs(&self.st, self.spec.provider), summary)
                .with("requests", Value::Array(std::mem::take(&mut self.sent))),
        )
    }

    pub(super) fn human_task(&self) -> ActionOutput {
        let ctx = self.ctx;
        let link = match self.spec.provider {
            Provider::Npm => "https://www.npmjs.com/settings/~/tokens/granular-access-tokens/new",
            Provider::Crates => "https://crates.io/settings/tokens/new",
            Provider::None => "",
        };
        let item = if ctx.index > 0 {
            format!(" --item {}", ctx.index)
        } else {
            String::new()
        };
        ActionOutput::new(
            Self::outputs(&self.st, self.spec.provider),
            "waiting for a person to provide the new credential",
        )
        .for_human(
            format!(
                "Create the new credential{}, then hand it to Recall without it being shown or stored in clear: `recall credentials provide {} {}{item} --as YOU` (it reads the value without echo) — the rotation then continues on its own.",
                if link.is_empty() { String::new() } else { format!(" at {link}") },
                ctx.incident,
                ctx.step
            ),
            if link.is_empty() { Vec::new() } else { vec![link.to_string()] },
        )
    }
}

/// Sets `VAR=value` in an env file, atomically (temp file, fsync, rename), mode 0600.
pub(super) fn write_env_file(
    path: &str,
    var: &str,
    value: &SecretString,
) -> Result<(), ActionError> {
    use std::io::Write;
    let p = std::path::Path::new(path);
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let v = value.expose_secret();
    if v.contains(['\n', '\r', '\0']) {
        return Err(ActionError::Input(
            "the new value contains a line break and cannot go in an env file".into(),
        ));
    }
    let line = if v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b))
    {
        format!("{var}={v}")
    } else {
        format!("{var}='{}'", v.replace('\'', "'\\''"))
    };
    let old = match std::fs::read_to_string(p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(ActionError::Failed(format!(
                "env file {path}: cannot read: {}",
                e.kind()
            )));
        }
    };
    let mut found = false;
    let mut out: Vec<String> = old
        .lines()
        .map(|l| {
            let t = l
                .trim_start()
                .strip_prefix("export ")
                .unwrap_or(l.trim_start());
            if t.split_once('=').is_some_and(|(k, _)| k.trim() == var) {
                found = true;
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        out.push(line);
    }
    let tmp = dir.join(format!(
        ".{}.recall-tmp",
        p.file_name().and_then(|f| f.to_str()).unwrap_or("env")
    ));
    let io = |what: &str, e: std::io::Error| {
        ActionError::Failed(format!("env file {path}: cannot {what}: {}", e.kind()))
    };
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("create a temporary file", e))?;
        f.write_all(format!("{}\n", out.join("\n")).as_bytes())
            .map_err(|e| io("write", e))?;
        f.sync_all().map_err(|e| io("sync", e))?;
    }
    std::fs::rename(&tmp, p).map_err(|e| io("replace", e))?;
    Ok(())
}

impl Rotate {
    pub(super) async fn start<'a>(
        ctx: &'a ActionCtx,
        inputs: &Value,
    ) -> Result<Run<'a>, ActionError> {
        let spec = Spec::parse(inputs)?;
        let provided = match spec.new {
            New::Provided => provided_input(inputs)?,
            _ => None,
        };
        Ok(Run {
            ctx,
            spec,
            provided,
            st: load(ctx).await?,
            sent: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn env_files_are_rewritten_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ci.env");
        std::fs::write(&p, "A=1\nexport NPM_TOKEN=old\n# c\n").unwrap();
        let path = p.to_str().unwrap();
        write_env_file(
            path,
            "NPM_TOKEN",
            &SecretString::from("npm_new".to_string()),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "A=1\nNPM_TOKEN=npm_new\n# c\n"
        );
        write_env_file(path, "B", &SecretString::from("it's".to_string())).unwrap();
        assert!(
            std::fs::read_to_string(&p)
                .unwrap()
                .ends_with("B='it'\\''s'\n")
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(write_env_file(path, "C", &SecretString::from("a\nb".to_string())).is_err());
    }
}
