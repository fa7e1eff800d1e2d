//! Secrets: loaded from env vars or files into `SecretString`, and remembered (in memory
//! only) so that any text about to enter the timeline, a message or a log line can be
//! scrubbed as a last line of defence. The primary rule stays: never format a secret.

use std::sync::{Mutex, OnceLock};

use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set (it should hold the secret)")]
    MissingEnv(String),
    #[error("secret file `{path}` cannot be read: {reason}")]
    File { path: String, reason: String },
    #[error("secret from {0} is empty")]
    Empty(String),
}

fn known() -> &'static Mutex<Vec<SecretString>> {
    static KNOWN: OnceLock<Mutex<Vec<SecretString>>> = OnceLock::new();
    KNOWN.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remember a secret value so [`scrub`] can remove it from text.
pub fn register(secret: &SecretString) {
    // Very short values would scrub ordinary words; real tokens are long.
    if secret.expose_secret().len() < 8 {
        return;
    }
    if let Ok(mut k) = known().lock()
        && !k
            .iter()
            .any(|s| s.expose_secret() == secret.expose_secret())
    {
        k.push(secret.clone());
    }
}

/// Replace every registered secret value in `text` with `<redacted>`.
pub fn scrub(text: &str) -> String {
    let Ok(k) = known().lock() else {
        return text.to_string();
    };
    let mut out = text.to_string();
    for s in k.iter() {
        let v = s.expose_secret();
        if out.contains(v) {
            out = out.replace(v, "<redacted>");
        }
    }
    out
}

/// Load a secret from an environment variable.
pub fn from_env(var: &str) -> Result<SecretString, SecretError> {
    let v = std::env::var(var).map_err(|_| SecretError::MissingEnv(var.to_string()))?;
    let v = v.trim().to_string();
    if v.is_empty() {
        return Err(SecretError::Empty(format!("${var}")));
    }
    let s = SecretString::from(v);
    register(&s);
    Ok(s)
}

/// Load a secret from a file (first line, trimmed).
pub fn from_file(path: &str) -> Result<SecretString, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
        path: path.to_string(),
        reason: e.kind().to_string(),
    })?;
    let v = text.lines().next().unwrap_or("").trim().to_string();
    if v.is_empty() {
        return Err(SecretError::Empty(path.to_string()));
    }
    let s = SecretString::from(v);
    register(&s);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_scrubbed() {
        let s = SecretString::from("npm_SuperSecretToken123".to_string());
        register(&s);
        assert_eq!(
            scrub("token npm_SuperSecretToken123 leaked"),
            "token <redacted> leaked"
        );
        assert_eq!(scrub("nothing here"), "nothing here");
    }
}
