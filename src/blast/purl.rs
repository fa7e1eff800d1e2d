//! Package URLs (`pkg:type/namespace/name@version?qualifiers#subpath`) per the purl
//! specification (ECMA-427), with the per-type normalisations of the registered types.
//!
//! Parsing is lenient where real SBOMs are sloppy and strict where ambiguity would change
//! the package identity:
//!
//! * the scheme is matched case-insensitively and `pkg://` is accepted (the spec tolerates
//!   it);
//! * the subpath starts at the first `#` and the qualifiers at the first `?` before it, as
//!   in any URL, so an unencoded `?` inside a qualifier value (a `download_url`) survives;
//! * the version is split off at the last `@`, unless that `@` starts a path segment
//!   (`pkg:npm/@babel/core` is a scope without a version, not version `babel/core`);
//! * input is bounded ([`MAX_PURL_LEN`]) and control characters are refused, raw or
//!   percent-encoded.
//!
//! Per-type rules applied to the decoded namespace and name:
//!
//! | type | rule |
//! | --- | --- |
//! | `npm`, `github`, `bitbucket`, `composer`, `hex`, `deb`, `apk`, `alpm`, `bitnami`, `oci` | namespace and name lowercased |
//! | `rpm`, `qpkg` | namespace lowercased |
//! | `pypi` | name lowercased, runs of `-`, `_`, `.` become one `-` (PEP 503) |
//! | `golang` | case kept (see below) |
//! | everything else (`maven`, `nuget`, `cargo`, `gem`, …) | case-sensitive, kept as written |
//!
//! `golang`: the spec's type definition says "must be lowercased", but that text predates Go
//! modules, is acknowledged as broken by its maintainers (purl-spec#308), and Go module
//! paths are case-sensitive (`github.com/Azure/…`); generators disagree. So a [`Purl`]
//! keeps the case it was given (and [`Purl::to_canonical`] reproduces it), while the join
//! key [`Purl::package_key`] lowercases golang paths, so both spellings of one module meet.
//! `nuget` is similar: ids are case-insensitive on the registry but case-preserving in the
//! spec, so the key lowercases the name and the purl keeps it.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Longest package URL accepted by [`Purl::parse`], in bytes.
pub const MAX_PURL_LEN: usize = 4096;

/// Bytes percent-encoded in a canonical component: all but ASCII letters and digits, the
/// punctuation `.-_~`, and `:` (which the spec says is never encoded).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// A parsed package URL. Every field is decoded and normalised per its type's rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Purl {
    /// Lowercased type: `npm`, `pypi`, `cargo`, `maven`, `golang`, …
    pub ty: String,
    /// Percent-decoded namespace, segments joined with `/`, per-type case rules applied.
    pub namespace: Option<String>,
    /// Percent-decoded name, per-type case rules applied.
    pub name: String,
    /// Percent-decoded version; `None` when absent or empty.
    pub version: Option<String>,
    /// Lowercased keys, decoded values; pairs with empty values are dropped.
    pub qualifiers: BTreeMap<String, String>,
    /// Decoded subpath; empty, `.` and `..` segments removed.
    pub subpath: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PurlError {
    #[error("empty package URL")]
    Empty,
    #[error("package URL is {len} bytes long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("package URL contains a control character (U+{0:04X})")]
    ControlCharacter(u32),
    #[error("missing the `pkg:` scheme (a package URL looks like `pkg:npm/name@1.0.0`)")]
    MissingScheme,
    #[error("unsupported scheme `{0}`: a package URL starts with `pkg:`")]
    WrongScheme(String),
    #[error("missing the package type (as in `pkg:npm/name`)")]
    MissingType,
    #[error(
        "invalid package type `{0}`: a type is ASCII letters, digits, `.`, `+` and `-`, \
         starting with a letter"
    )]
    InvalidType(String),
    #[error("missing the package name")]
    MissingName,
    #[error(
        "invalid qualifier key `{0}`: a key is ASCII letters, digits, `.`, `-` and `_`, \
         starting with a letter"
    )]
    InvalidQualifierKey(String),
    #[error("qualifier `{0}` is given more than once")]
    DuplicateQualifier(String),
    #[error("the {0} is not valid UTF-8 once percent-decoded")]
    InvalidUtf8(&'static str),
    #[error("a {component} segment `{segment}` contains an encoded `/`")]
    SlashInSegment {
        component: &'static str,
        segment: String,
    },
}

impl Purl {
    /// Parse a package URL (see the module documentation for the leniencies).
    pub fn parse(s: &str) -> Result<Purl, PurlError> {
        if s.len() > MAX_PURL_LEN {
            return Err(PurlError::TooLong {
                len: s.len(),
                max: MAX_PURL_LEN,
            });
        }
        let s = s.trim_matches(' ');
        if s.is_empty() {
            return Err(PurlError::Empty);
        }
        reject_controls(s)?;

        // Fragment, then query, as a URL splits them.
        let (rest, subpath) = match s.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (s, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };

        let (scheme, rest) = rest.split_once(':').ok_or(PurlError::MissingScheme)?;
        if !scheme.eq_ignore_ascii_case("pkg") {
            if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(PurlError::MissingScheme);
            }
            return Err(PurlError::WrongScheme(scheme.to_string()));
        }

        let rest = rest.trim_start_matches('/');
        let (ty, rest) = match rest.split_once('/') {
            Some((t, r)) => (t, r),
            None if rest.is_empty() => return Err(PurlError::MissingType),
            None => {
                valid_type(rest)?;
                return Err(PurlError::MissingName);
            }
        };
        if ty.is_empty() {
            return Err(PurlError::MissingType);
        }
        valid_type(ty)?;
        let ty = ty.to_ascii_lowercase();

        // The version separator is the last `@`, unless it begins a path segment.
        let (path, version) = match rest.rfind('@') {
            Some(i) if i > 0 && !rest[..i].ends_with('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        let version = match version {
            Some(v) => Some(decode(v, "version")?).filter(|v| !v.is_empty()),
            None => None,
        };

        let path = path.trim_end_matches('/');
        let (ns_raw, name_raw) = match path.rsplit_once('/') {
            Some((n, m)) => (n, m),
            None => ("", path),
        };
        if name_raw.is_empty() {
            return Err(PurlError::MissingName);
        }
        let name = normalize_name(&ty, &decode(name_raw, "name")?);

        let mut segments = Vec::new();
        for raw in ns_raw.split('/').filter(|s| !s.is_empty()) {
            let seg = decode(raw, "namespace")?;
            if seg.contains('/') {
                return Err(PurlError::SlashInSegment {
                    component: "namespace",
                    segment: raw.to_string(),
                });
            }
            segments.push(normalize_namespace_segment(&ty, &seg));
        }
        let namespace = (!segments.is_empty()).then(|| segments.join("/"));

        let mut qualifiers = BTreeMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = key.to_ascii_lowercase();
            if !valid_qualifier_key(&key) {
                return Err(PurlError::InvalidQualifierKey(key));
            }
            let value = decode(value, "qualifier value")?;
            if value.is_empty() {
                continue;
            }
            if qualifiers.insert(key.clone(), value).is_some() {
                return Err(PurlError::DuplicateQualifier(key));
            }
        }

        let subpath = match subpath {
            Some(sp) => {
                let mut segs = Vec::new();
                for raw in sp.split('/') {
                    let seg = decode(raw, "subpath")?;
                    if seg.is_empty() || seg == "." || seg == ".." {
                        continue;
                    }
                    if seg.contains('/') {
                        return Err(PurlError::SlashInSegment {
                            component: "subpath",
                            segment: raw.to_string(),
                        });
                    }
                    segs.push(seg);
                }
                (!segs.is_empty()).then(|| segs.join("/"))
            }
            None => None,
        };

        Ok(Purl {
            ty,
            namespace,
            name,
            version,
            qualifiers,
            subpath,
        })
    }

    /// The package identity without version, qualifiers or subpath: `npm/@babel/core`,
    /// `pypi/django-rest-framework`, `maven/org.apache.commons/commons-lang3`,
    /// `golang/github.com/foo/bar`. Equal for every spelling of one package, and equal to
    /// [`package_key`] of the same (type, namespace, name).
    pub fn package_key(&self) -> String {
        package_key(&self.ty, self.namespace.as_deref(), &self.name)
    }

    /// The canonical string: lowercase type, per-type normalisation, components
    /// percent-encoded as the spec requires, qualifiers sorted with empty ones dropped,
    /// subpath without empty, `.` or `..` segments.
    pub fn to_canonical(&self) -> String {
        let ty = self.ty.to_ascii_lowercase();
        let mut out = format!("pkg:{ty}/");
        if let Some(ns) = &self.namespace {
            for seg in ns.split('/').filter(|s| !s.is_empty()) {
                out.extend(utf8_percent_encode(
                    &normalize_namespace_segment(&ty, seg),
                    COMPONENT,
                ));
                out.push('/');
            }
        }
        out.extend(utf8_percent_encode(
            &normalize_name(&ty, &self.name),
            COMPONENT,
        ));
        if let Some(v) = self.version.as_deref().filter(|v| !v.is_empty()) {
            out.push('@');
            out.extend(utf8_percent_encode(v, COMPONENT));
        }
        let mut quals: Vec<(String, &str)> = self
            .qualifiers
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
            .collect();
        quals.sort();
        for (i, (k, v)) in quals.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(k);
            out.push('=');
            out.extend(utf8_percent_encode(v, COMPONENT));
        }
        if let Some(sp) = &self.subpath {
            let segs: Vec<String> = sp
                .split('/')
                .filter(|s| !s.is_empty() && *s != "." && *s != "..")
                .map(|s| utf8_percent_encode(s, COMPONENT).to_string())
                .collect();
            if !segs.is_empty() {
                out.push('#');
                out.push_str(&segs.join("/"));
            }
        }
        out
    }
}

impl std::fmt::Display for Purl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_canonical())
    }
}

impl std::str::FromStr for Purl {
    type Err = PurlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purl::parse(s)
    }
}

/// The package key of a component that has no purl, from (ecosystem, namespace, name), with
/// the same normalisation as [`Purl::package_key`] so the two join. Lenient about how SBOM
/// tools spell things:
///
/// * the ecosystem may be a purl type or an OSV ecosystem name (`Go`, `crates.io`,
///   `RubyGems`, `Packagist`, `PyPI`, …; see [`normalize_type`]);
/// * the namespace may hold several `/`-separated segments (`github.com/foo`);
/// * a name containing `/` is read as a path whose last segment is the name
///   (`github.com/foo/bar` for Go, `@babel/core` for npm);
/// * a Maven name `group:artifact` without a namespace is split at the `:`;
/// * an npm scope given without its `@` gets one.
pub fn package_key(ty: &str, namespace: Option<&str>, name: &str) -> String {
    let ty = normalize_type(ty);
    let mut segments: Vec<String> = namespace
        .into_iter()
        .flat_map(|ns| ns.split('/'))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut name = name.trim().trim_matches('/').to_string();
    if let Some((dir, last)) = name.rsplit_once('/') {
        segments.extend(
            dir.split('/')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
        name = last.trim().to_string();
    }
    if ty == "maven"
        && segments.is_empty()
        && let Some((group, artifact)) = name.split_once(':')
        && !group.is_empty()
        && !artifact.is_empty()
        && !artifact.contains(':')
    {
        segments.push(group.to_string());
        name = artifact.to_string();
    }
    let mut segments: Vec<String> = segments
        .iter()
        .map(|s| key_fold(&ty, &normalize_namespace_segment(&ty, s)))
        .collect();
    if ty == "npm"
        && let [scope] = segments.as_mut_slice()
        && !scope.starts_with('@')
    {
        scope.insert(0, '@');
    }
    let name = key_fold(&ty, &normalize_name(&ty, &name));
    let mut key = ty;
    for s in &segments {
        key.push('/');
        key.push_str(s);
    }
    key.push('/');
    key.push_str(&name);
    key
}

/// The purl type for an ecosystem name: lowercased, and the ecosystem names OSV and SBOM
/// tools use mapped to purl types (`go` → `golang`, `crates.io` → `cargo`, `rubygems` →
/// `gem`, `packagist` → `composer`). Anything else is returned lowercased.
pub fn normalize_type(ecosystem: &str) -> String {
    let t = ecosystem.trim().to_ascii_lowercase();
    match t.as_str() {
        "go" => "golang".into(),
        "crates.io" | "crates" | "rust" => "cargo".into(),
        "rubygems" => "gem".into(),
        "packagist" => "composer".into(),
        _ => t,
    }
}

/// Types whose namespace and name are case-insensitive and lowercased by the spec.
const LOWER_BOTH: &[&str] = &[
    "npm",
    "github",
    "bitbucket",
    "composer",
    "hex",
    "deb",
    "apk",
    "alpm",
    "bitnami",
    "oci",
];
/// Types whose namespace only is lowercased by the spec.
const LOWER_NAMESPACE: &[&str] = &["rpm", "qpkg"];

fn normalize_namespace_segment(ty: &str, seg: &str) -> String {
    if LOWER_BOTH.contains(&ty) || LOWER_NAMESPACE.contains(&ty) {
        seg.to_lowercase()
    } else {
        seg.to_string()
    }
}

fn normalize_name(ty: &str, name: &str) -> String {
    if ty == "pypi" {
        pep503(name)
    } else if LOWER_BOTH.contains(&ty) {
        name.to_lowercase()
    } else {
        name.to_string()
    }
}

/// Extra folding for the join key only (see the module documentation).
fn key_fold(ty: &str, s: &str) -> String {
    match ty {
        "golang" | "nuget" => s.to_lowercase(),
        _ => s.to_string(),
    }
}

/// PEP 503 name normalisation: lowercase, runs of `-`, `_`, `.` replaced by one `-`.
pub fn pep503(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            in_run = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn reject_controls(s: &str) -> Result<(), PurlError> {
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(PurlError::ControlCharacter(c as u32)),
        None => Ok(()),
    }
}

fn decode(raw: &str, component: &'static str) -> Result<String, PurlError> {
    let s = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PurlError::InvalidUtf8(component))?
        .into_owned();
    reject_controls(&s)?;
    Ok(s)
}

fn valid_type(ty: &str) -> Result<(), PurlError> {
    let mut chars = ty.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'));
    if ok {
        Ok(())
    } else {
        Err(PurlError::InvalidType(ty.to_string()))
    }
}

fn valid_qualifier_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Purl {
        match Purl::parse(s) {
            Ok(p) => p,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn cyclonedx_examples() {
        let a =
            p("pkg:npm/%40babel/helper-string-parser@7.19.4#packages/babel-helper-string-parser");
        assert_eq!(a.ty, "npm");
        assert_eq!(a.namespace.as_deref(), Some("@babel"));
        assert_eq!(a.name, "helper-string-parser");
        assert_eq!(a.version.as_deref(), Some("7.19.4"));
        assert_eq!(
            a.subpath.as_deref(),
            Some("packages/babel-helper-string-parser")
        );
        assert_eq!(a.package_key(), "npm/@babel/helper-string-parser");
        assert_eq!(
            a.to_canonical(),
            "pkg:npm/%40babel/helper-string-parser@7.19.4#packages/babel-helper-string-parser"
        );

        let b = p(
            "pkg:npm/juice-shop@14.1.1?vcs_url=git%2Bhttps%3A//github.com/juice-shop/juice-shop.git",
        );
        assert_eq!(b.namespace, None);
        assert_eq!(b.name, "juice-shop");
        assert_eq!(
            b.qualifiers.get("vcs_url").map(String::as_str),
            Some("git+https://github.com/juice-shop/juice-shop.git")
        );
        assert_eq!(
            b.to_canonical(),
            "pkg:npm/juice-shop@14.1.1?vcs_url=git%2Bhttps:%2F%2Fgithub.com%2Fjuice-shop%2Fjuice-shop.git"
        );

        let c = p("pkg:npm/%40colors/colors@1.5.0");
        assert_eq!(c.package_key(), "npm/@colors/colors");

        let d = p("pkg:maven/org.keycloak/keycloak-core@10.0.2?type=jar");
        assert_eq!(d.namespace.as_deref(), Some("org.keycloak"));
        assert_eq!(d.qualifiers.get("type").map(String::as_str), Some("jar"));
        assert_eq!(d.package_key(), "maven/org.keycloak/keycloak-core");

        let e = p("pkg:golang/github.com/ProtonMail/go-crypto@v0.0.0-20210428141323-04723f9f07d7");
        assert_eq!(e.namespace.as_deref(), Some("github.com/ProtonMail"));
        assert_eq!(e.name, "go-crypto");
        assert_eq!(
            e.version.as_deref(),
            Some("v0.0.0-20210428141323-04723f9f07d7")
        );
        assert_eq!(e.package_key(), "golang/github.com/protonmail/go-crypto");
        assert_eq!(
            e.to_canonical(),
            "pkg:golang/github.com/ProtonMail/go-crypto@v0.0.0-20210428141323-04723f9f07d7"
        );

        let f = p("pkg:composer/laravel/framework@v7.12.0");
        assert_eq!(f.package_key(), "composer/laravel/framework");
        assert_eq!(f.version.as_deref(), Some("v7.12.0"));

        let g = p("pkg:pypi/Django_REST_framework@3.0");
        assert_eq!(g.name, "django-rest-framework");
        assert_eq!(g.package_key(), "pypi/django-rest-framework");
        assert_eq!(g.to_canonical(), "pkg:pypi/django-rest-framework@3.0");
    }

    #[test]
    fn same_package_same_key() {
        let groups: &[&[&str]] = &[
            &[
                "pkg:npm/%40babel/core@7.0.0",
                "pkg:npm/@babel/core@7.1.0",
                "PKG:NPM/%40Babel/Core",
                "pkg://npm/%40babel/core?foo=bar#x",
                "pkg:npm/babel/core",
            ],
            &[
                "pkg:pypi/Django_REST_framework@3.0",
                "pkg:pypi/django-rest-framework",
                "pkg:pypi/django.rest__framework@1",
                "pkg:pypi/DJANGO-REST-FRAMEWORK",
            ],
            &[
                "pkg:github/Package-URL/Purl-Spec@244fd47e07d1004",
                "pkg:github/package-url/purl-spec",
            ],
            &[
                "pkg:golang/github.com/ProtonMail/go-crypto@v1.0.0",
                "pkg:golang/github.com/protonmail/go-crypto",
                "pkg:golang/github.com%2FProtonMail/go-crypto",
            ],
            &[
                "pkg:nuget/Newtonsoft.Json@13.0.1",
                "pkg:nuget/newtonsoft.json@12.0.0",
            ],
        ];
        for group in groups {
            let keys: Vec<String> = group
                .iter()
                .filter_map(|s| Purl::parse(s).ok())
                .map(|p| p.package_key())
                .collect();
            // The encoded `/` in a golang namespace segment is refused, not joined.
            let expect = if group[0].starts_with("pkg:golang") {
                group.len() - 1
            } else {
                group.len()
            };
            assert_eq!(keys.len(), expect, "{group:?}");
            assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        }
        // Case-sensitive types keep case apart.
        assert_ne!(
            p("pkg:maven/org.Foo/Bar").package_key(),
            p("pkg:maven/org.foo/bar").package_key()
        );
        assert_ne!(
            p("pkg:cargo/Serde").package_key(),
            p("pkg:cargo/serde").package_key()
        );
    }

    #[test]
    fn free_package_key_joins_purl_keys() {
        let cases: &[(&str, Option<&str>, &str, &str)] = &[
            ("npm", Some("@babel"), "core", "pkg:npm/%40babel/core@1"),
            ("npm", None, "@babel/core", "pkg:npm/%40babel/core"),
            ("npm", Some("babel"), "core", "pkg:npm/%40babel/core"),
            ("NPM", None, "Colors", "pkg:npm/colors"),
            (
                "pypi",
                None,
                "Django_REST_framework",
                "pkg:pypi/django-rest-framework",
            ),
            ("PyPI", None, "zope.interface", "pkg:pypi/zope-interface"),
            (
                "maven",
                Some("org.apache.commons"),
                "commons-lang3",
                "pkg:maven/org.apache.commons/commons-lang3@3.12.0",
            ),
            (
                "Maven",
                None,
                "org.apache.commons:commons-lang3",
                "pkg:maven/org.apache.commons/commons-lang3",
            ),
            (
                "golang",
                None,
                "github.com/foo/Bar",
                "pkg:golang/github.com/foo/bar@v1.0.0",
            ),
            (
                "Go",
                Some("github.com/foo"),
                "bar",
                "pkg:golang/github.com/foo/bar",
            ),
            ("crates.io", None, "serde", "pkg:cargo/serde@1.0.0"),
            ("RubyGems", None, "rails", "pkg:gem/rails"),
            (
                "Packagist",
                Some("Laravel"),
                "Framework",
                "pkg:composer/laravel/framework",
            ),
            (
                "nuget",
                None,
                "Newtonsoft.Json",
                "pkg:nuget/newtonsoft.json",
            ),
        ];
        for (ty, ns, name, purl) in cases {
            assert_eq!(
                package_key(ty, *ns, name),
                p(purl).package_key(),
                "{ty} {ns:?} {name}"
            );
        }
        assert_eq!(
            package_key("npm", Some("@babel"), "core"),
            "npm/@babel/core"
        );
        assert_eq!(
            package_key("golang", Some("github.com/foo"), "bar"),
            "golang/github.com/foo/bar"
        );
        assert_eq!(package_key("generic", None, ""), "generic/");
    }

    #[test]
    fn spec_parsing_rules() {
        // Type is lowercased, leading slashes after the scheme ignored.
        let a = p("pkg:///Maven/org.apache/commons@1.0");
        assert_eq!(a.ty, "maven");
        // Namespace: empty segments dropped, decoded.
        let b = p("pkg:generic//a%20b//c/name");
        assert_eq!(b.namespace.as_deref(), Some("a b/c"));
        // Name may contain an encoded slash.
        let c = p("pkg:generic/a%2Fb@1");
        assert_eq!(c.name, "a/b");
        assert_eq!(c.to_canonical(), "pkg:generic/a%2Fb@1");
        // Empty version is no version.
        assert_eq!(p("pkg:npm/foo@").version, None);
        // Version with a `+` and an `@`, decoded.
        let d = p("pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64");
        assert_eq!(d.version.as_deref(), Some("1:2.4.47-2+b1"));
        assert_eq!(
            d.to_canonical(),
            "pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64"
        );
        let e = p("pkg:generic/x@1.0%40beta");
        assert_eq!(e.version.as_deref(), Some("1.0@beta"));
        // Qualifiers: keys lowercased, empty values dropped, sorted in canonical form.
        let f = p("pkg:maven/g/a@1?Type=jar&classifier=&b=2&&a=1");
        assert_eq!(f.qualifiers.len(), 3);
        assert_eq!(f.to_canonical(), "pkg:maven/g/a@1?a=1&b=2&type=jar");
        // Subpath: empty, `.` and `..` segments dropped.
        let g = p("pkg:golang/google.golang.org/genproto#/googleapis/./api/../annotations/");
        assert_eq!(g.subpath.as_deref(), Some("googleapis/api/annotations"));
        assert_eq!(p("pkg:npm/x#/./..").subpath, None);
        // An unencoded `?` inside a qualifier value survives.
        let h = p("pkg:generic/x@1?download_url=https://e.com/x?y=1");
        assert_eq!(
            h.qualifiers.get("download_url").map(String::as_str),
            Some("https://e.com/x?y=1")
        );
        // Unencoded `@` scope without a version.
        let i = p("pkg:npm/@angular/core");
        assert_eq!(i.namespace.as_deref(), Some("@angular"));
        assert_eq!(i.version, None);
        // Version containing an unencoded `/`.
        let j = p("pkg:github/foo/bar@release/1.0");
        assert_eq!(j.version.as_deref(), Some("release/1.0"));
        assert_eq!(j.name, "bar");
        // Surrounding spaces tolerated; percent sign round-trips.
        let k = p("  pkg:generic/100%25  ");
        assert_eq!(k.name, "100%");
        assert_eq!(k.to_canonical(), "pkg:generic/100%25");
        // Non-ASCII is encoded in the canonical form.
        let l = p("pkg:generic/caf%C3%A9");
        assert_eq!(l.name, "café");
        assert_eq!(l.to_canonical(), "pkg:generic/caf%C3%A9");
        assert_eq!(
            p("pkg:generic/café").to_canonical(),
            "pkg:generic/caf%C3%A9"
        );
        // Display is the canonical form.
        assert_eq!(format!("{l}"), "pkg:generic/caf%C3%A9");
    }

    #[test]
    fn errors_name_the_problem() {
        use PurlError::*;
        let cases: Vec<(&str, PurlError)> = vec![
            ("", Empty),
            ("   ", Empty),
            ("npm/foo@1.0", MissingScheme),
            ("http://example.com/x", WrongScheme("http".into())),
            ("pkg:", MissingType),
            ("pkg:/", MissingType),
            ("pkg://foo", MissingName),
            ("pkg:npm", MissingName),
            ("pkg:npm/", MissingName),
            ("pkg:npm//", MissingName),
            ("pkg:1npm/foo", InvalidType("1npm".into())),
            ("pkg:n%70m/foo", InvalidType("n%70m".into())),
            ("pkg:npm/foo?1a=b", InvalidQualifierKey("1a".into())),
            ("pkg:npm/foo?=b", InvalidQualifierKey("".into())),
            ("pkg:npm/foo?a=1&A=2", DuplicateQualifier("a".into())),
            ("pkg:npm/fo\no", ControlCharacter(10)),
            ("pkg:npm/fo%00o", ControlCharacter(0)),
            ("pkg:npm/foo@1%0A", ControlCharacter(10)),
            ("pkg:npm/fo%FFo", InvalidUtf8("name")),
            (
                "pkg:npm/a%2Fb/c",
                SlashInSegment {
                    component: "namespace",
                    segment: "a%2Fb".into(),
                },
            ),
            (
                "pkg:npm/c#a%2Fb",
                SlashInSegment {
                    component: "subpath",
                    segment: "a%2Fb".into(),
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Purl::parse(input), Err(want), "{input:?}");
        }
        let long = format!("pkg:npm/{}", "a".repeat(MAX_PURL_LEN));
        assert!(matches!(Purl::parse(&long), Err(PurlError::TooLong { .. })));
        let msg = Purl::parse("pkg:npm").err().map(|e| e.to_string());
        assert_eq!(msg.as_deref(), Some("missing the package name"));
        let msg = Purl::parse("http://x").err().map(|e| e.to_string());
        assert_eq!(
            msg.as_deref(),
            Some("unsupported scheme `http`: a package URL starts with `pkg:`")
        );
    }

    #[test]
    fn pep503_normalisation() {
        assert_eq!(pep503("Django_REST_framework"), "django-rest-framework");
        assert_eq!(pep503("a.-_b"), "a-b");
        assert_eq!(pep503("-x-"), "-x-");
        assert_eq!(pep503("zope.interface"), "zope-interface");
    }

    // ---- properties -------------------------------------------------------------------

    fn text(max: usize) -> impl Strategy<Value = String> {
        // Printable text including separators, `%`, spaces and non-ASCII; no controls.
        proptest::collection::vec(
            prop_oneof![
                4 => proptest::char::range('a', 'z'),
                1 => proptest::char::range('A', 'Z'),
                1 => proptest::char::range('0', '9'),
                2 => proptest::sample::select(vec![
                    '.', '-', '_', '~', ':', '/', '@', '?', '=', '&', '#', '%', '+', ' ', '!',
                    '$', '\'', '(', ')', '*', ',', ';', '[', ']', '"', '<', '>', '\\', '^',
                    '`', '{', '|', '}',
                ]),
                1 => any::<char>().prop_filter("no controls", |c| !c.is_control()),
            ],
            1..max,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    fn segment(max: usize) -> impl Strategy<Value = String> {
        text(max).prop_filter("a segment", |s| !s.contains('/') && s != "." && s != "..")
    }

    fn ty() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(vec![
                "npm",
                "pypi",
                "maven",
                "golang",
                "cargo",
                "nuget",
                "gem",
                "composer",
                "github",
                "bitbucket",
                "deb",
                "rpm",
                "generic",
                "oci",
            ])
            .prop_map(str::to_string),
            "[a-z][a-z0-9.+-]{0,8}",
        ]
    }

    fn purl() -> impl Strategy<Value = Purl> {
        (
            ty(),
            proptest::collection::vec(segment(8), 0..3),
            text(12),
            proptest::option::of(text(10)),
            proptest::collection::btree_map("[a-z][a-z0-9._-]{0,6}", text(10), 0..3),
            proptest::collection::vec(segment(6), 0..3),
        )
            .prop_map(|(ty, ns, name, version, qualifiers, sub)| {
                // Normalise as a parser would, so the round trip can be exact.
                let ns: Vec<String> = ns
                    .iter()
                    .map(|s| normalize_namespace_segment(&ty, s))
                    .collect();
                Purl {
                    namespace: (!ns.is_empty()).then(|| ns.join("/")),
                    name: normalize_name(&ty, &name),
                    version,
                    qualifiers,
                    subpath: (!sub.is_empty()).then(|| sub.join("/")),
                    ty,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn canonical_round_trips(p in purl()) {
            let s = p.to_canonical();
            let back = Purl::parse(&s);
            prop_assert_eq!(back.as_ref(), Ok(&p), "canonical {}", s);
            prop_assert!(s.is_ascii());
        }

        #[test]
        fn canonical_is_a_fixed_point(s in "pkg:[a-zA-Z]{1,5}/[ -~]{1,40}") {
            if let Ok(p) = Purl::parse(&s) {
                let c = p.to_canonical();
                let q = Purl::parse(&c);
                prop_assert_eq!(q.as_ref(), Ok(&p), "{} -> {}", s, c);
                if let Ok(q) = q {
                    prop_assert_eq!(q.to_canonical(), c.clone());
                    prop_assert_eq!(q.package_key(), p.package_key());
                }
            }
        }

        #[test]
        fn key_is_stable_across_spellings(p in purl()) {
            // Upper-casing the type and re-encoding every byte gives the same key.
            let s = p.to_canonical();
            let mut loud = format!("PKG:{}/", p.ty.to_ascii_uppercase());
            loud.push_str(s.split_once('/').map_or("", |(_, r)| r));
            let q = Purl::parse(&loud);
            prop_assert_eq!(q.map(|q| q.package_key()), Ok(p.package_key()));
        }

        #[test]
        fn free_key_matches_parsed_key(
            ty in ty(),
            ns in proptest::collection::vec(segment(8), 0..3),
            name in text(12),
        ) {
            // Raw SBOM fields (un-normalised); `/` and `:` in a name mean something to the
            // free function, and surrounding spaces are trimmed by it.
            let name = name.replace(['/', ':'], "_").trim().to_string();
            let ns: Vec<String> =
                ns.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            prop_assume!(!name.is_empty());
            let joined = ns.join("/");
            let built = Purl {
                ty: ty.clone(),
                namespace: (!ns.is_empty()).then(|| joined.clone()),
                name: name.clone(),
                version: None,
                qualifiers: BTreeMap::new(),
                subpath: None,
            };
            let parsed = Purl::parse(&built.to_canonical());
            let free = package_key(&ty, (!ns.is_empty()).then_some(joined.as_str()), &name);
            prop_assert_eq!(parsed.map(|p| p.package_key()), Ok(free));
        }

        #[test]
        fn never_panics_on_arbitrary_strings(s in any::<String>()) {
            let _ = Purl::parse(&s);
            let with_scheme = format!("pkg:{s}");
            if let Ok(p) = Purl::parse(&with_scheme) {
                let _ = p.package_key();
                let _ = Purl::parse(&p.to_canonical());
            }
            let _ = package_key(&s, Some(&s), &s);
        }

        #[test]
        fn never_panics_on_purl_shaped_noise(s in "pkg:[a-z@%/?#=&:.+-]{0,20}[ -~]{0,30}") {
            let _ = Purl::parse(&s);
        }
    }
}
