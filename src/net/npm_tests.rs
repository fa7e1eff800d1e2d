use super::*;
use serde_json::json;

fn pk() -> Value {
    json!({
        "_id": "p", "name": "p", "_rev": "3-abc",
        "dist-tags": {"latest": "1.2.0", "next": "2.0.0-beta.1"},
        "_attachments": {},
        "versions": {
            "0.7.28": {"version": "0.7.28"},
            "0.7.29": {"version": "0.7.29"},
            "0.7.30": {"version": "0.7.30"},
            "1.0.0": {"version": "1.0.0"},
            "1.1.0": {"version": "1.1.0", "deprecated": "old"},
            "1.2.0": {"version": "1.2.0"},
            "1.10.0-rc.1": {"version": "1.10.0-rc.1"},
            "2.0.0-beta.1": {"version": "2.0.0-beta.1"},
            "1.3.0": {"version": "1.3.0", "deprecated": ""}
        }
    })
}

#[test]
fn package_path_escaping() {
    let ok = |n: &str| NpmClient::package_path(n).unwrap_or_else(|e| panic!("{n}: {e}"));
    assert_eq!(ok("ua-parser-js"), "ua-parser-js");
    assert_eq!(ok("@solana/web3.js"), "@solana%2fweb3.js");
    assert_eq!(ok("JSONStream"), "JSONStream");
    assert_eq!(ok("@types/node"), "@types%2fnode");
    for bad in [
        "", "..", ".", "@", "@/x", "@s/", "@s/..", "a/b", "@a/b/c", "a b", " a", "a%2fb", "../etc",
        "_x", ".x", "é", "a?b", "a#b", "@s%2fx", "a\nb",
    ] {
        assert!(NpmClient::package_path(bad).is_err(), "{bad:?} accepted");
    }
    assert!(NpmClient::package_path(&"a".repeat(215)).is_err());
}

#[test]
fn registry_urls() -> Result<(), Box<dyn std::error::Error>> {
    let c = NpmClient::new("https://host.example/npm", None)?;
    assert_eq!(c.registry(), "https://host.example/npm/");
    let r = c.dist_tag_set_request("@s/x", "beta", "1.0.0")?;
    assert_eq!(
        r.url,
        "https://host.example/npm/-/package/@s%2fx/dist-tags/beta"
    );
    assert_eq!(r.body, Some(json!("1.0.0")));
    assert!(NpmClient::new("https://u:p@host.example/", None).is_err());
    assert!(NpmClient::new("ftp://host.example/", None).is_err());
    assert!(NpmClient::new("not a url", None).is_err());
    assert!(c.dist_tag_set_request("x", "1.2.3", "1.0.0").is_err());
    assert!(c.dist_tag_set_request("x", "a/b", "1.0.0").is_err());
    assert!(c.dist_tag_set_request("x", "beta", "nope").is_err());
    assert!(c.dist_tag_rm_request("x", "latest").is_err());
    assert_eq!(
        c.dist_tag_rm_request("x", "beta")?.url,
        "https://host.example/npm/-/package/x/dist-tags/beta"
    );
    assert_eq!(
        c.revoke_token_request("abc123")?.url,
        "https://host.example/npm/-/npm/v1/tokens/token/abc123"
    );
    assert!(c.revoke_token_request("../x").is_err());
    Ok(())
}

#[test]
fn matching_versions() -> Result<(), NpmError> {
    let p = pk();
    assert_eq!(versions_matching(&p, "1.2.0")?, vec!["1.2.0"]);
    assert!(matches!(
        versions_matching(&p, "9.9.9"),
        Err(NpmError::UnknownVersion { .. })
    ));
    assert_eq!(versions_matching(&p, ">=0.7.29 <0.7.30")?, vec!["0.7.29"]);
    assert_eq!(
        versions_matching(&p, "^1.0.0")?,
        vec!["1.0.0", "1.1.0", "1.2.0", "1.3.0"]
    );
    assert_eq!(
        versions_matching(&p, "<0.7.30 || 1.1.0")?,
        vec!["0.7.28", "0.7.29", "1.1.0"]
    );
    // prereleases only when the range names them
    assert_eq!(
        versions_matching(&p, ">=2.0.0-beta.0")?,
        vec!["2.0.0-beta.1"]
    );
    assert!(!versions_matching(&p, "*")?.contains(&"2.0.0-beta.1".to_string()));
    assert_eq!(versions_matching(&p, "2.0.0-beta.1")?, vec!["2.0.0-beta.1"]);
    assert!(versions_matching(&p, "^5")?.is_empty());
    assert!(versions_matching(&p, "").is_err());
    assert!(versions_matching(&p, "not a range !!").is_err());
    assert!(versions_matching(&json!({}), "1.0.0").is_err());
    Ok(())
}

#[test]
fn highest_good() {
    let p = pk();
    // 1.3.0 has deprecated "" (= not deprecated); prereleases never count
    assert_eq!(highest_good_version(&p, &[]), Some("1.3.0".into()));
    assert_eq!(
        highest_good_version(&p, &["1.3.0".into(), "1.2.0".into()]),
        Some("1.0.0".into())
    );
    assert_eq!(highest_good_version(&json!({}), &[]), None);
}

#[test]
fn deprecate_builds_whole_packument() -> Result<(), Box<dyn std::error::Error>> {
    let c = NpmClient::new(
        "http://127.0.0.1:1/",
        Some(SecretString::from("tok-SECRET-1")),
    )?;
    let p = pk();
    let (rec, changed) = c.deprecate_request("p", &p, &["1.1.0".into(), "1.2.0".into()], "bad")?;
    assert_eq!(changed, vec!["1.1.0", "1.2.0"]);
    assert_eq!(rec.method, "PUT");
    assert_eq!(rec.url, "http://127.0.0.1:1/p");
    let body = rec.body.as_ref().ok_or("no body")?;
    assert_eq!(body["versions"]["1.2.0"]["deprecated"], "bad");
    assert_eq!(body["versions"]["1.0.0"].get("deprecated"), None);
    assert_eq!(body["versions"].as_object().map(|o| o.len()), Some(9));
    assert_eq!(body["_rev"], "3-abc");
    assert!(body.get("_attachments").is_none());
    // idempotent: already-deprecated with the same message is not a change
    let (_, changed) = c.deprecate_request("p", body, &["1.2.0".into()], "bad")?;
    assert!(changed.is_empty());
    // undeprecate: "" and only really-deprecated versions count as changed
    let (rec, changed) = c.deprecate_request("p", body, &["1.2.0".into(), "1.0.0".into()], "")?;
    assert_eq!(changed, vec!["1.2.0"]);
    assert_eq!(
        rec.body.as_ref().ok_or("no body")?["versions"]["1.2.0"]["deprecated"],
        ""
    );
    assert!(matches!(
        c.deprecate_request("p", &p, &["7.0.0".into()], "x"),
        Err(NpmError::UnknownVersion { .. })
    ));
    assert!(
        c.deprecate_request("other", &p, &["1.0.0".into()], "x")
            .is_err()
    );
    Ok(())
}

#[test]
fn secrets_never_leak() -> Result<(), Box<dyn std::error::Error>> {
    let tok = SecretString::from("npm_ThisIsTheSecretToken");
    let c = NpmClient::new("http://127.0.0.1:1/", Some(tok.clone()))?
        .with_otp(Some(SecretString::from("987654")));
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("ThisIsTheSecretToken") && !dbg.contains("987654"),
        "{dbg}"
    );
    let (rec, _) = c.deprecate_request("p", &pk(), &["1.0.0".into()], "m")?;
    for r in [
        rec,
        c.dist_tag_set_request("p", "beta", "1.0.0")?,
        c.revoke_token_request("k1")?,
    ] {
        let s = serde_json::to_string(&r)?;
        assert!(!s.contains("ThisIsTheSecretToken") && !s.contains("987654"));
        assert!(!format!("{r:?}").contains("ThisIsTheSecretToken"));
    }
    let fp = token_fingerprint(&tok);
    assert_eq!(fp.len(), 16);
    assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(c.token_fingerprint(), Some(fp));
    Ok(())
}

#[tokio::test]
async fn refuses_foreign_urls_and_reports_transport() -> Result<(), Box<dyn std::error::Error>> {
    let tok = SecretString::from("npm_ThisIsTheSecretToken");
    let c = NpmClient::new("http://127.0.0.1:1/", Some(tok))?;
    let foreign = RequestRecord::new("GET", "http://evil.example/-/whoami");
    let e = c
        .send(&foreign)
        .await
        .err()
        .ok_or("sent to a foreign host")?;
    assert!(!e.is_transient());
    // port 1: connection refused -> transient transport error without the token
    let e = c.whoami(None).await.err().ok_or("port 1 answered")?;
    assert!(e.is_transient(), "{e}");
    assert!(!format!("{e} {e:?}").contains("ThisIsTheSecretToken"));
    Ok(())
}
