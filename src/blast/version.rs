//! Version queries in each ecosystem's own semantics.
//!
//! A [`Matcher`] is compiled once from a [`VersionQuery`] and then asked about each
//! distinct version of a package found in the index. The ecosystem is the purl type
//! (OSV ecosystem names are accepted too, via [`normalize_type`]).
//!
//! | ecosystem | ranges | exact / any-of equality |
//! | --- | --- | --- |
//! | `npm` | node-semver ranges (`nodejs-semver`); pre-releases only match a range that names a pre-release of the same `major.minor.patch`, as in npm | semver equality, a leading `v` tolerated, build metadata ignored |
//! | `pypi` | PEP 440 specifier sets (`~=`, `==`, `!=`, `<=`, `>=`, `<`, `>`, `===`, `==1.2.*`, comma = and), as `packaging` 26 reads them; pre- and dev-releases are excluded unless a specifier (other than `!=`) names one | PEP 440 `==` (`1.0` equals `1.0.0`; a local label is ignored unless the query has one) |
//! | `cargo` | Cargo's `VersionReq` (bare `1.2` is a caret requirement) | semver precedence equality (`1.2` read as `1.2.0`) |
//! | `maven` | Maven range syntax (`[1.0,2.0)`, `(,1.0]`, `[1.2]`, `[1.0,)`, unions `(,1.0],[1.2,)`; empty intervals and overlapping or unordered unions are refused, as Maven does) or comparators (`>=1.0, <2.0`); a bare version (Maven's "soft requirement") means exactly that version | `ComparableVersion` equality (`1.0` equals `1.0.0`, `1-ga`, `1-final`) |
//! | `golang` | npm-style comparators over semver with a leading `v` (`>=v1.2.0 <v1.3.0`, `\|\|` for or); ordering is pure semver precedence, so pseudo-versions (`v0.0.0-2021…-abcdef`) are pre-releases and fall inside ranges by order | semver precedence equality |
//! | `composer`, `gem`, `nuget` | comparators `>=`, `>`, `<=`, `<`, `=`, `!=`, joined by `,` or spaces (and), `\|\|` or `\|` (or); `~>`/`~` (pessimistic: `~1.2` is `>=1.2 <2`, `~1.2.3` is `>=1.2.3 <1.3`), `^` (next significant release), wildcards `1.2.*`; nuget also takes interval notation `[1.0,2.0)`; a bare version means exactly that version (NuGet itself reads a bare version as a minimum; a query means the version named) | dotted numeric ordering (below) |
//! | anything else | an error naming the ecosystem | plain string equality |
//!
//! The dotted numeric ordering (composer, gem, nuget): an optional leading `v`, build
//! metadata after `+` ignored, numeric release components compared as numbers with
//! trailing zeros insignificant (`1.0` = `1.0.0.0`), then a suffix: none is the release;
//! `patch`, `pl`, `p`, `post`, `sp`, `r`, `rev` make a post-release (after it); anything
//! else makes a pre-release (before it), ordered `dev` < `alpha`/`a` < `beta`/`b` <
//! other words < `rc`/`c`/`cr`, numbers numerically, numbers before words.
//! Upper bounds implied by `~`, `~>`, `^` and `*` exclude the pre-releases of the bound
//! (`^1.2.3` does not match `2.0.0-beta`), as Composer and RubyGems do.
//!
//! Maven: ordering is `ComparableVersion` as in Maven 3.8.7 and 3.9, so `1.0-alpha <
//! 1.0-beta < 1.0-milestone < 1.0-rc = 1.0-cr < 1.0-SNAPSHOT < 1.0 = 1.0-ga = 1.0-final <
//! 1.0-sp`.
//! Ranges use that ordering with nothing excluded, exactly as Maven's `VersionRange` does
//! (both were checked against Maven 3.8.7's own classes on ~170k random cases):
//! `[1.0,2.0)` includes `1.5-SNAPSHOT` and also `2.0-SNAPSHOT`, `2.0-rc1` (all order below
//! `2.0`). For an incident query that errs on the side of reporting.
//!
//! A version that does not parse in its ecosystem never matches a range, but still equals
//! an identical exact string. Nothing here panics on any input: versions longer than
//! [`MAX_VERSION_LEN`] are compared as plain strings only, queries longer than
//! [`MAX_QUERY_LEN`] are refused.

use std::cmp::Ordering;

use super::purl::normalize_type;

/// Longest version string parsed in an ecosystem's semantics; longer ones are opaque.
pub const MAX_VERSION_LEN: usize = 256;
/// Longest range accepted by [`Matcher::new`].
pub const MAX_QUERY_LEN: usize = 4096;

#[derive(Clone, Debug, PartialEq)]
pub enum VersionQuery {
    Exact(String),
    AnyOf(Vec<String>),
    Range(String),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VersionError {
    #[error("invalid {ecosystem} range `{range}`: {reason}")]
    InvalidRange {
        ecosystem: String,
        range: String,
        reason: String,
    },
    #[error(
        "version ranges are not supported for ecosystem `{0}`; list the exact versions instead"
    )]
    RangeUnsupported(String),
    #[error("empty {0}")]
    Empty(&'static str),
    #[error("version query is {len} bytes long; the limit is {max}")]
    TooLong { len: usize, max: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Eco {
    Npm,
    Pypi,
    Cargo,
    Maven,
    Golang,
    Composer,
    Gem,
    Nuget,
    Other,
}

impl Eco {
    fn of(ty: &str) -> Eco {
        match ty {
            "npm" => Eco::Npm,
            "pypi" => Eco::Pypi,
            "cargo" => Eco::Cargo,
            "maven" => Eco::Maven,
            "golang" => Eco::Golang,
            "composer" => Eco::Composer,
            "gem" => Eco::Gem,
            "nuget" => Eco::Nuget,
            _ => Eco::Other,
        }
    }
}

/// A compiled version query for one ecosystem.
#[derive(Clone, Debug)]
pub struct Matcher {
    ecosystem: String,
    eco: Eco,
    compiled: Compiled,
    description: String,
}

#[derive(Clone, Debug)]
enum Compiled {
    Exact(Vec<(String, Parsed)>),
    Npm(nodejs_semver::Range),
    Pypi(pep440::SpecifierSet),
    Cargo(semver::VersionReq),
    Maven(Constraints<maven::Version>),
    Golang(Constraints<GoVersion>),
    Dotted(Constraints<dotted::Version>),
}

/// A version parsed in its ecosystem's semantics (`None` when it does not parse).
#[derive(Clone, Debug)]
enum Parsed {
    None,
    Npm(nodejs_semver::Version),
    Pypi(pep440::Version),
    Semver(semver::Version),
    Maven(maven::Version),
    Dotted(dotted::Version),
}

fn parse_in(eco: Eco, v: &str) -> Parsed {
    if v.is_empty() || v.len() > MAX_VERSION_LEN {
        return Parsed::None;
    }
    let p = match eco {
        Eco::Npm => nodejs_semver::Version::parse(v).ok().map(Parsed::Npm),
        Eco::Pypi => pep440::Version::parse(v).map(Parsed::Pypi),
        Eco::Cargo | Eco::Golang => lenient_semver(v).map(Parsed::Semver),
        Eco::Maven => maven::Version::parse(v).map(Parsed::Maven),
        Eco::Composer | Eco::Gem | Eco::Nuget => dotted::Version::parse(v).map(Parsed::Dotted),
        Eco::Other => None,
    };
    p.unwrap_or(Parsed::None)
}

/// Equality of an exact query version (`q`) and a candidate (`c`).
fn exact_eq(q: &Parsed, c: &Parsed) -> bool {
    match (q, c) {
        (Parsed::Npm(a), Parsed::Npm(b)) => a == b,
        (Parsed::Pypi(a), Parsed::Pypi(b)) => pep440::equal_spec(a, b),
        (Parsed::Semver(a), Parsed::Semver(b)) => a.cmp_precedence(b) == Ordering::Equal,
        (Parsed::Maven(a), Parsed::Maven(b)) => a.cmp(b) == Ordering::Equal,
        (Parsed::Dotted(a), Parsed::Dotted(b)) => a.cmp(b) == Ordering::Equal,
        _ => false,
    }
}

impl Matcher {
    /// Compile `q` for `ecosystem` (a purl type or an OSV ecosystem name).
    pub fn new(ecosystem: &str, q: &VersionQuery) -> Result<Matcher, VersionError> {
        let ecosystem = normalize_type(ecosystem);
        let eco = Eco::of(&ecosystem);
        let (compiled, description) = match q {
            VersionQuery::Exact(v) => {
                let v = v.trim();
                if v.is_empty() {
                    return Err(VersionError::Empty("version"));
                }
                (
                    Compiled::Exact(vec![(v.to_string(), parse_in(eco, v))]),
                    format!("{ecosystem} version {v}"),
                )
            }
            VersionQuery::AnyOf(vs) => {
                if vs.is_empty() {
                    return Err(VersionError::Empty("list of versions"));
                }
                let mut list = Vec::with_capacity(vs.len());
                for v in vs {
                    let v = v.trim();
                    if v.is_empty() {
                        return Err(VersionError::Empty("version"));
                    }
                    list.push((v.to_string(), parse_in(eco, v)));
                }
                let shown: Vec<&str> = list.iter().map(|(v, _)| v.as_str()).collect();
                (
                    Compiled::Exact(list.clone()),
                    format!("{ecosystem} versions {}", shown.join(", ")),
                )
            }
            VersionQuery::Range(r) => {
                if r.len() > MAX_QUERY_LEN {
                    return Err(VersionError::TooLong {
                        len: r.len(),
                        max: MAX_QUERY_LEN,
                    });
                }
                let r = r.trim();
                if r.is_empty() {
                    return Err(VersionError::Empty("version range"));
                }
                let invalid = |reason: String| VersionError::InvalidRange {
                    ecosystem: ecosystem.clone(),
                    range: r.to_string(),
                    reason,
                };
                let compiled = match eco {
                    Eco::Npm => {
                        check_npm_range(r).map_err(invalid)?;
                        Compiled::Npm(
                            nodejs_semver::Range::parse(r)
                                .map_err(|e| invalid(e.to_string().to_lowercase()))?,
                        )
                    }
                    Eco::Pypi => Compiled::Pypi(pep440::SpecifierSet::parse(r).map_err(invalid)?),
                    Eco::Cargo => Compiled::Cargo(
                        semver::VersionReq::parse(r).map_err(|e| invalid(e.to_string()))?,
                    ),
                    Eco::Maven => Compiled::Maven(
                        Constraints::parse(r, Syntax::MAVEN, "Maven").map_err(invalid)?,
                    ),
                    Eco::Golang => {
                        Compiled::Golang(Constraints::parse(r, Syntax::GO, "Go").map_err(invalid)?)
                    }
                    Eco::Composer | Eco::Gem => Compiled::Dotted(
                        Constraints::parse(r, Syntax::DOTTED, &ecosystem).map_err(invalid)?,
                    ),
                    Eco::Nuget => Compiled::Dotted(
                        Constraints::parse(r, Syntax::NUGET, "NuGet").map_err(invalid)?,
                    ),
                    Eco::Other => return Err(VersionError::RangeUnsupported(ecosystem)),
                };
                (compiled, format!("{ecosystem} range {r}"))
            }
        };
        Ok(Matcher {
            ecosystem,
            eco,
            compiled,
            description,
        })
    }

    /// Does `version` satisfy the query? Never panics; a version that does not parse in
    /// the ecosystem matches no range but still equals an identical exact string.
    pub fn matches(&self, version: &str) -> bool {
        let v = version.trim();
        if v.is_empty() {
            return false;
        }
        let long = v.len() > MAX_VERSION_LEN;
        match &self.compiled {
            Compiled::Exact(list) => {
                if list.iter().any(|(raw, _)| raw == v) {
                    return true;
                }
                let c = parse_in(self.eco, v);
                list.iter().any(|(_, q)| exact_eq(q, &c))
            }
            _ if long => false,
            Compiled::Npm(r) => nodejs_semver::Version::parse(v).is_ok_and(|c| r.satisfies(&c)),
            Compiled::Pypi(s) => s.contains(v),
            Compiled::Cargo(r) => lenient_semver(v).is_some_and(|c| r.matches(&c)),
            Compiled::Maven(c) => c.matches_str(v),
            Compiled::Golang(c) => c.matches_str(v),
            Compiled::Dotted(c) => c.matches_str(v),
        }
    }

    /// What the matcher looks for, e.g. `npm range >=1.4.1 <1.4.3`,
    /// `pypi version 1.0`, `npm versions 1.4.0, 1.4.1`.
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    /// The ecosystem (purl type) the matcher was compiled for.
    pub fn ecosystem(&self) -> &str {
        &self.ecosystem
    }
}

/// Order two versions in an ecosystem's semantics; `None` when either does not parse or
/// the ecosystem has no ordering (anything but npm, pypi, cargo, maven, golang, composer,
/// gem, nuget). Handy for sorting matched versions.
pub fn compare_versions(ecosystem: &str, a: &str, b: &str) -> Option<Ordering> {
    let eco = Eco::of(&normalize_type(ecosystem));
    match (parse_in(eco, a.trim()), parse_in(eco, b.trim())) {
        (Parsed::Npm(x), Parsed::Npm(y)) => Some(x.cmp(&y)),
        (Parsed::Pypi(x), Parsed::Pypi(y)) => Some(x.cmp(&y)),
        (Parsed::Semver(x), Parsed::Semver(y)) => Some(x.cmp_precedence(&y)),
        (Parsed::Maven(x), Parsed::Maven(y)) => Some(x.cmp(&y)),
        (Parsed::Dotted(x), Parsed::Dotted(y)) => Some(x.cmp(&y)),
        _ => None,
    }
}

/// `nodejs-semver` parses loosely and drops what it does not understand (`>=1.4.1 <` is
/// read as `>=1.4.1`, `1.2.3 foo` as `1.2.3`): in an incident query a silently dropped
/// bound changes the answer, so every comparator is checked on its own first.
fn check_npm_range(r: &str) -> Result<(), String> {
    for alt in r.split("||") {
        let alt = alt.trim();
        if alt.is_empty() {
            return Err("empty alternative around `||`".into());
        }
        let mut pieces: Vec<String> = Vec::new();
        let mut pending: Option<&str> = None;
        for tok in alt.split_whitespace() {
            if let Some(op) = pending.take() {
                pieces.push(format!("{op}{tok}"));
            } else if tok.chars().all(|c| "<>=~^".contains(c)) {
                pending = Some(tok);
            } else {
                pieces.push(tok.to_string());
            }
        }
        if let Some(op) = pending {
            return Err(format!("operator `{op}` is not followed by a version"));
        }
        let last = pieces.len().saturating_sub(1);
        for (i, p) in pieces.iter().enumerate() {
            if p == "-" {
                if i == 0 || i == last || pieces.get(i + 1).is_some_and(|n| n == "-") {
                    return Err("a hyphen range needs a version on each side".into());
                }
            } else if nodejs_semver::Range::parse(p).is_err() {
                return Err(format!("`{p}` is not a valid comparator"));
            }
        }
    }
    Ok(())
}

/// Semver with a tolerated leading `v` and missing minor/patch (`1.2` is `1.2.0`).
fn lenient_semver(s: &str) -> Option<semver::Version> {
    let t = s.trim();
    let t = t.strip_prefix(['v', 'V']).unwrap_or(t);
    if let Ok(v) = semver::Version::parse(t) {
        return Some(v);
    }
    let split = t.find(['-', '+']).unwrap_or(t.len());
    let (core, tail) = t.split_at(split);
    let parts = core.split('.').count();
    if parts >= 3
        || !core
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    semver::Version::parse(&format!("{core}{}{tail}", ".0".repeat(3 - parts))).ok()
}

// ---- comparator ranges over an ordering ------------------------------------------------

/// A version type with a total order, for the comparator-range engine.
trait Ordered: Sized + Clone {
    fn parse(s: &str) -> Option<Self>;
    fn compare(&self, other: &Self) -> Ordering;
    /// Numeric release components, for `~`, `^` and wildcards.
    fn release(&self) -> &[u64] {
        &[]
    }
}

/// Which range notations an ecosystem accepts.
#[derive(Clone, Copy)]
struct Syntax {
    /// Maven/NuGet interval notation `[1.0,2.0)`.
    intervals: bool,
    /// `~`, `~>`, `^` and `*` wildcards over numeric releases.
    extended: bool,
}

impl Syntax {
    const MAVEN: Syntax = Syntax {
        intervals: true,
        extended: false,
    };
    const NUGET: Syntax = Syntax {
        intervals: true,
        extended: true,
    };
    const DOTTED: Syntax = Syntax {
        intervals: false,
        extended: true,
    };
    const GO: Syntax = Syntax {
        intervals: false,
        extended: false,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
enum Term<V> {
    Cmp(Op, V),
    /// Release (numeric part only) strictly below: the implied bound of `~`, `^`, `*`.
    Below(Vec<u64>),
    /// Release starts with these components (missing ones read as 0).
    Prefix(Vec<u64>),
    Any,
}

/// A disjunction of conjunctions of terms.
#[derive(Clone, Debug)]
struct Constraints<V> {
    alternatives: Vec<Vec<Term<V>>>,
}

fn release_cmp(a: &[u64], b: &[u64]) -> Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        match x.cmp(&y) {
            Ordering::Equal => continue,
            o => return o,
        }
    }
    Ordering::Equal
}

impl<V: Ordered> Constraints<V> {
    fn parse(s: &str, syntax: Syntax, eco: &str) -> Result<Self, String> {
        let s = s.trim();
        if syntax.intervals && (s.starts_with('[') || s.starts_with('(')) {
            return Self::parse_intervals(s, eco);
        }
        let mut alternatives = Vec::new();
        for alt in s.split('|') {
            if alt.trim().is_empty() {
                continue;
            }
            alternatives.push(Self::parse_conjunction(alt, syntax, eco)?);
        }
        if alternatives.is_empty() {
            return Err("no comparators".into());
        }
        Ok(Constraints { alternatives })
    }

    fn parse_conjunction(s: &str, syntax: Syntax, eco: &str) -> Result<Vec<Term<V>>, String> {
        let is_op = |t: &str| !t.is_empty() && t.chars().all(|c| "<>=!~^".contains(c));
        let mut pieces: Vec<String> = Vec::new();
        let mut pending: Option<&str> = None;
        for tok in s.split(|c: char| c == ',' || c.is_whitespace()) {
            if tok.is_empty() {
                continue;
            }
            if let Some(op) = pending.take() {
                pieces.push(format!("{op}{tok}"));
            } else if is_op(tok) {
                pending = Some(tok);
            } else {
                pieces.push(tok.to_string());
            }
        }
        if let Some(op) = pending {
            return Err(format!("operator `{op}` is not followed by a version"));
        }
        if pieces.iter().any(|p| p == "-") {
            return Err("hyphen ranges (`1.0 - 2.0`) are not supported; use `>=1.0 <=2.0`".into());
        }
        let mut terms = Vec::new();
        for p in &pieces {
            Self::parse_piece(p, syntax, eco, &mut terms)?;
        }
        if terms.is_empty() {
            return Err("no comparators".into());
        }
        Ok(terms)
    }

    fn parse_piece(
        p: &str,
        syntax: Syntax,
        eco: &str,
        out: &mut Vec<Term<V>>,
    ) -> Result<(), String> {
        const OPS: [&str; 10] = [">=", "<=", "!=", "==", "~>", ">", "<", "=", "~", "^"];
        let (op, v) = OPS
            .iter()
            .find_map(|o| p.strip_prefix(o).map(|rest| (*o, rest)))
            .unwrap_or(("", p));
        if v.is_empty() {
            return Err(format!("operator `{op}` is not followed by a version"));
        }
        if v.starts_with(|c: char| "<>=!~^".contains(c)) {
            return Err(format!("unknown operator in `{p}`"));
        }
        let parse = |v: &str| {
            if v.len() > MAX_VERSION_LEN {
                return Err(format!("version `{v}` is too long"));
            }
            V::parse(v).ok_or_else(|| format!("`{v}` is not a valid {eco} version"))
        };
        let wildcard = |v: &str| -> Option<Vec<u64>> {
            if matches!(v, "*" | "x" | "X") {
                return Some(Vec::new());
            }
            let head = v
                .strip_suffix(".*")
                .or_else(|| v.strip_suffix(".x"))
                .or_else(|| v.strip_suffix(".X"))?;
            let head = head.strip_prefix(['v', 'V']).unwrap_or(head);
            head.split('.').map(|c| c.parse::<u64>().ok()).collect()
        };
        if syntax.extended
            && matches!(op, "" | "=" | "==")
            && let Some(prefix) = wildcard(v)
        {
            out.push(if prefix.is_empty() {
                Term::Any
            } else {
                Term::Prefix(prefix)
            });
            return Ok(());
        }
        match op {
            "" | "=" | "==" => out.push(Term::Cmp(Op::Eq, parse(v)?)),
            "!=" => out.push(Term::Cmp(Op::Ne, parse(v)?)),
            "<" => out.push(Term::Cmp(Op::Lt, parse(v)?)),
            "<=" => out.push(Term::Cmp(Op::Le, parse(v)?)),
            ">" => out.push(Term::Cmp(Op::Gt, parse(v)?)),
            ">=" => out.push(Term::Cmp(Op::Ge, parse(v)?)),
            "~" | "~>" | "^" if syntax.extended => {
                let base = parse(v)?;
                let r = base.release().to_vec();
                let mut bound = match (op, r.len()) {
                    (_, 0) => return Err(format!("`{v}` has no numeric release")),
                    ("^", _) => match r.iter().position(|&x| x != 0) {
                        Some(i) => r[..=i].to_vec(),
                        None => r.clone(),
                    },
                    (_, 1) => r.clone(),
                    (_, n) => r[..n - 1].to_vec(),
                };
                if let Some(last) = bound.last_mut() {
                    *last = last.saturating_add(1);
                }
                out.push(Term::Cmp(Op::Ge, base));
                out.push(Term::Below(bound));
            }
            _ => return Err(format!("operator `{op}` is not supported for {eco}")),
        }
        Ok(())
    }

    /// Maven's `VersionRange` syntax: `[a,b)`, `(,b]`, `[a,)`, `[v]`, and comma-separated
    /// unions of those.
    fn parse_intervals(s: &str, eco: &str) -> Result<Self, String> {
        let parse =
            |v: &str| V::parse(v).ok_or_else(|| format!("`{v}` is not a valid {eco} version"));
        let mut rest = s.trim();
        let mut alternatives = Vec::new();
        // Upper bound of the previous interval: unions must be ordered and disjoint.
        let mut previous_upper: Option<V> = None;
        while rest.starts_with('[') || rest.starts_with('(') {
            let close = rest
                .find([']', ')'])
                .ok_or_else(|| format!("unclosed `{}`", &rest[..1]))?;
            let lower_inclusive = rest.starts_with('[');
            let upper_inclusive = rest[close..].starts_with(']');
            let inner = &rest[1..close];
            let terms = match inner.split_once(',') {
                None => {
                    if !(lower_inclusive && upper_inclusive) {
                        return Err(format!("a single version is written `[{}]`", inner.trim()));
                    }
                    let v = parse(inner.trim())?;
                    if let Some(prev) = &previous_upper
                        && v.compare(prev) == Ordering::Less
                    {
                        return Err(format!(
                            "`{}` overlaps or precedes the interval before it",
                            &rest[..=close]
                        ));
                    }
                    previous_upper = Some(v.clone());
                    vec![Term::Cmp(Op::Eq, v)]
                }
                Some((lo, hi)) => {
                    if hi.contains(',') {
                        return Err(format!("too many commas in `{}`", &rest[..=close]));
                    }
                    let (lo, hi) = (lo.trim(), hi.trim());
                    let lo = (!lo.is_empty()).then(|| parse(lo)).transpose()?;
                    let hi = (!hi.is_empty()).then(|| parse(hi)).transpose()?;
                    if let (Some(l), Some(h)) = (&lo, &hi) {
                        let o = h.compare(l);
                        if o == Ordering::Less {
                            return Err(format!(
                                "`{}` has its upper bound below its lower bound",
                                &rest[..=close]
                            ));
                        }
                        if o == Ordering::Equal && !(lower_inclusive && upper_inclusive) {
                            return Err(format!("`{}` is empty", &rest[..=close]));
                        }
                    }
                    if let Some(prev) = &previous_upper
                        && lo
                            .as_ref()
                            .is_none_or(|l| l.compare(prev) == Ordering::Less)
                    {
                        return Err(format!(
                            "`{}` overlaps or precedes the interval before it",
                            &rest[..=close]
                        ));
                    }
                    previous_upper = hi.clone();
                    let mut t = Vec::new();
                    if let Some(l) = lo {
                        t.push(Term::Cmp(if lower_inclusive { Op::Ge } else { Op::Gt }, l));
                    }
                    if let Some(h) = hi {
                        t.push(Term::Cmp(if upper_inclusive { Op::Le } else { Op::Lt }, h));
                    }
                    if t.is_empty() {
                        t.push(Term::Any);
                    }
                    t
                }
            };
            alternatives.push(terms);
            rest = rest[close + 1..].trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
            }
        }
        if !rest.is_empty() {
            return Err(format!(
                "unexpected `{rest}`: after an interval only more intervals may follow"
            ));
        }
        if alternatives.is_empty() {
            return Err("no intervals".into());
        }
        Ok(Constraints { alternatives })
    }

    fn matches(&self, v: &V) -> bool {
        self.alternatives.iter().any(|alt| {
            alt.iter().all(|t| match t {
                Term::Cmp(op, b) => {
                    let o = v.compare(b);
                    match op {
                        Op::Eq => o == Ordering::Equal,
                        Op::Ne => o != Ordering::Equal,
                        Op::Lt => o == Ordering::Less,
                        Op::Le => o != Ordering::Greater,
                        Op::Gt => o == Ordering::Greater,
                        Op::Ge => o != Ordering::Less,
                    }
                }
                Term::Below(r) => release_cmp(v.release(), r) == Ordering::Less,
                Term::Prefix(p) => {
                    let rel = v.release();
                    p.iter()
                        .enumerate()
                        .all(|(i, x)| rel.get(i).copied().unwrap_or(0) == *x)
                }
                Term::Any => true,
            })
        })
    }

    fn matches_str(&self, v: &str) -> bool {
        V::parse(v).is_some_and(|v| self.matches(&v))
    }
}

/// A Go module version: semver with a leading `v`, compared by semver precedence.
#[derive(Clone, Debug)]
struct GoVersion {
    v: semver::Version,
    release: [u64; 3],
}

impl Ordered for GoVersion {
    fn parse(s: &str) -> Option<Self> {
        let v = lenient_semver(s)?;
        let release = [v.major, v.minor, v.patch];
        Some(GoVersion { v, release })
    }
    fn compare(&self, other: &Self) -> Ordering {
        self.v.cmp_precedence(&other.v)
    }
    fn release(&self) -> &[u64] {
        &self.release
    }
}

impl Ordered for maven::Version {
    fn parse(s: &str) -> Option<Self> {
        maven::Version::parse(s)
    }
    fn compare(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }
}

impl Ordered for dotted::Version {
    fn parse(s: &str) -> Option<Self> {
        dotted::Version::parse(s)
    }
    fn compare(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }
    fn release(&self) -> &[u64] {
        &self.release
    }
}

// ---- Maven ComparableVersion ----------------------------------------------------------

mod maven {
    //! A port of `org.apache.maven.artifact.versioning.ComparableVersion` (Maven 3.8.7/3.9).

    use std::cmp::Ordering;

    #[derive(Clone, Debug)]
    enum Item {
        /// Digits without leading zeros (`"0"` for zero), of any length.
        Num(String),
        /// A qualifier, lowercased and aliased (`ga`/`final`/`release` → ``, `cr` → `rc`).
        Str(String),
        List(Vec<Item>),
    }

    const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
    const RELEASE_INDEX: &str = "5";

    fn comparable_qualifier(q: &str) -> String {
        match QUALIFIERS.iter().position(|k| *k == q) {
            Some(i) => i.to_string(),
            None => format!("{}-{q}", QUALIFIERS.len()),
        }
    }

    fn string_item(value: &str, followed_by_digit: bool) -> Item {
        let mut v = value;
        if followed_by_digit && value.chars().count() == 1 {
            v = match value {
                "a" => "alpha",
                "b" => "beta",
                "m" => "milestone",
                other => other,
            };
        }
        let v = match v {
            "ga" | "final" | "release" => "",
            "cr" => "rc",
            other => other,
        };
        Item::Str(v.to_string())
    }

    fn parse_item(is_digit: bool, buf: &str) -> Item {
        if is_digit {
            let t = buf.trim_start_matches('0');
            Item::Num(if t.is_empty() { "0".into() } else { t.into() })
        } else {
            string_item(buf, false)
        }
    }

    fn is_null(i: &Item) -> bool {
        match i {
            Item::Num(n) => n == "0",
            Item::Str(s) => s.is_empty(),
            Item::List(l) => l.is_empty(),
        }
    }

    fn normalize(list: &mut Vec<Item>) {
        let mut i = list.len();
        while i > 0 {
            i -= 1;
            if is_null(&list[i]) {
                list.remove(i);
            } else if !matches!(list[i], Item::List(_)) {
                break;
            }
        }
    }

    fn num_cmp(a: &str, b: &str) -> Ordering {
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }

    /// `a.compareTo(b)` where `b` may be null.
    fn cmp_item(a: &Item, b: Option<&Item>) -> Ordering {
        match (a, b) {
            (Item::Num(x), None) => {
                if x == "0" {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Item::Num(x), Some(Item::Num(y))) => num_cmp(x, y),
            (Item::Num(_), Some(_)) => Ordering::Greater,
            (Item::Str(s), None) => comparable_qualifier(s).as_str().cmp(RELEASE_INDEX),
            (Item::Str(_), Some(Item::Num(_))) => Ordering::Less,
            (Item::Str(s), Some(Item::Str(t))) => {
                comparable_qualifier(s).cmp(&comparable_qualifier(t))
            }
            (Item::Str(_), Some(Item::List(_))) => Ordering::Less,
            (Item::List(l), None) => l
                .iter()
                .map(|i| cmp_item(i, None))
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal),
            (Item::List(_), Some(Item::Num(_))) => Ordering::Less,
            (Item::List(_), Some(Item::Str(_))) => Ordering::Greater,
            (Item::List(l), Some(Item::List(m))) => cmp_lists(l, m),
        }
    }

    fn cmp_lists(l: &[Item], m: &[Item]) -> Ordering {
        for i in 0..l.len().max(m.len()) {
            let o = match (l.get(i), m.get(i)) {
                (Some(x), r) => cmp_item(x, r),
                (None, Some(y)) => cmp_item(y, None).reverse(),
                (None, None) => Ordering::Equal,
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }

    /// A parsed Maven version.
    #[derive(Clone, Debug)]
    pub struct Version {
        items: Vec<Item>,
    }

    impl Version {
        /// Parse like `new ComparableVersion(s)`. Every string is a Maven version; this
        /// refuses only empty ones, over-long ones (nesting depth is bounded by length),
        /// and ones with whitespace or range punctuation, which no real version has.
        pub fn parse(s: &str) -> Option<Version> {
            let s = s.trim();
            if s.is_empty()
                || s.len() > super::MAX_VERSION_LEN
                || s.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "[](),|<>=!~^*".contains(c))
            {
                return None;
            }
            let lower = s.to_lowercase();
            let chars: Vec<char> = lower.chars().collect();
            let sub = |a: usize, b: usize| -> String { chars[a..b].iter().collect() };
            // `levels[k + 1]` is the last element of `levels[k]` (Maven only ever adds to
            // the innermost list), so the tree is a chain folded up at the end.
            let mut levels: Vec<Vec<Item>> = vec![Vec::new()];
            let mut is_digit = false;
            let mut start = 0usize;
            for (i, &c) in chars.iter().enumerate() {
                if c == '.' || c == '-' {
                    let item = if i == start {
                        Item::Num("0".into())
                    } else {
                        parse_item(is_digit, &sub(start, i))
                    };
                    push(&mut levels, item);
                    start = i + 1;
                    if c == '-' {
                        levels.push(Vec::new());
                    }
                } else if c.is_ascii_digit() {
                    if !is_digit && i > start {
                        // 1.0.0.X1 < 1.0.0-X2: treat .X as -X for any string qualifier X.
                        if levels.last().is_some_and(|l| !l.is_empty()) {
                            levels.push(Vec::new());
                        }
                        push(&mut levels, string_item(&sub(start, i), true));
                        start = i;
                        levels.push(Vec::new());
                    }
                    is_digit = true;
                } else {
                    if is_digit && i > start {
                        push(&mut levels, parse_item(true, &sub(start, i)));
                        start = i;
                        levels.push(Vec::new());
                    }
                    is_digit = false;
                }
            }
            if chars.len() > start {
                if !is_digit && levels.last().is_some_and(|l| !l.is_empty()) {
                    levels.push(Vec::new());
                }
                push(&mut levels, parse_item(is_digit, &sub(start, chars.len())));
            }
            let mut child: Option<Vec<Item>> = None;
            while let Some(mut list) = levels.pop() {
                if let Some(c) = child.take() {
                    list.push(Item::List(c));
                }
                normalize(&mut list);
                child = Some(list);
            }
            Some(Version {
                items: child.unwrap_or_default(),
            })
        }

        /// `compareTo`.
        pub fn cmp(&self, other: &Version) -> Ordering {
            cmp_lists(&self.items, &other.items)
        }

        /// Maven's canonical form (`1-ga` → `1`, `1.0.0` → `1`).
        #[cfg(test)]
        pub fn canonical(&self) -> String {
            fn render(items: &[Item], out: &mut String) {
                for (n, it) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(if matches!(it, Item::List(_)) {
                            '-'
                        } else {
                            '.'
                        });
                    }
                    match it {
                        Item::Num(s) | Item::Str(s) => out.push_str(s),
                        Item::List(l) => render(l, out),
                    }
                }
            }
            let mut out = String::new();
            render(&self.items, &mut out);
            out
        }
    }

    fn push(levels: &mut [Vec<Item>], item: Item) {
        if let Some(l) = levels.last_mut() {
            l.push(item);
        }
    }
}

// ---- dotted numeric ordering (composer, gem, nuget) -------------------------------------

mod dotted {
    use std::cmp::Ordering;

    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Tok {
        Num(u64),
        Word(u8, String),
    }

    /// A version as `release` numbers plus a pre- (-1) or post-release (1) suffix.
    #[derive(Clone, Debug)]
    pub struct Version {
        pub release: Vec<u64>,
        class: i8,
        suffix: Vec<Tok>,
    }

    const POST: [&str; 7] = ["patch", "pl", "p", "post", "sp", "r", "rev"];

    fn rank(w: &str) -> u8 {
        match w {
            "dev" => 0,
            "alpha" | "a" => 1,
            "beta" | "b" => 2,
            "rc" | "c" | "cr" => 4,
            _ => 3,
        }
    }

    impl Version {
        pub fn parse(s: &str) -> Option<Version> {
            let s = s.trim();
            let s = match s.strip_prefix(['v', 'V']) {
                Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => r,
                _ => s,
            };
            let s = s.split('+').next().unwrap_or("");
            let b = s.as_bytes();
            let mut i = 0;
            let mut release = Vec::new();
            loop {
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                if i == start {
                    return None;
                }
                release.push(s.get(start..i)?.parse::<u64>().ok()?);
                if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                } else {
                    break;
                }
            }
            let mut rest = s.get(i..)?;
            if let Some(r) = rest.strip_prefix(['-', '.', '_']) {
                if r.is_empty() {
                    return None;
                }
                rest = r;
            }
            let mut suffix = Vec::new();
            for part in rest.split(['.', '-', '_']) {
                let mut chars = part.char_indices().peekable();
                while let Some(&(start, c)) = chars.peek() {
                    if !c.is_ascii_alphanumeric() {
                        return None;
                    }
                    let digit = c.is_ascii_digit();
                    let mut end = start;
                    while let Some(&(j, d)) = chars.peek() {
                        if d.is_ascii_alphanumeric() && d.is_ascii_digit() == digit {
                            end = j + d.len_utf8();
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    let tok = part.get(start..end)?;
                    if tok.is_empty() {
                        return None;
                    }
                    suffix.push(if digit {
                        Tok::Num(tok.parse().ok()?)
                    } else {
                        let w = tok.to_ascii_lowercase();
                        Tok::Word(rank(&w), w)
                    });
                }
            }
            let class = match suffix.first() {
                None => 0,
                Some(Tok::Word(_, w)) if POST.contains(&w.as_str()) => 1,
                Some(_) => -1,
            };
            Some(Version {
                release,
                class,
                suffix,
            })
        }

        pub fn cmp(&self, other: &Version) -> Ordering {
            super::release_cmp(&self.release, &other.release)
                .then(self.class.cmp(&other.class))
                .then_with(|| self.suffix.cmp(&other.suffix))
        }
    }
}

// ---- PEP 440 ------------------------------------------------------------------------------

mod pep440 {
    //! PEP 440 versions and specifier sets, matching `packaging`'s behaviour.

    use std::cmp::Ordering;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Pre {
        A,
        B,
        Rc,
    }

    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Local {
        // Declared first: alphanumeric segments sort before numeric ones.
        Str(String),
        Num(u64),
    }

    #[derive(Clone, Debug)]
    pub struct Version {
        epoch: u64,
        release: Vec<u64>,
        pre: Option<(Pre, u64)>,
        post: Option<u64>,
        dev: Option<u64>,
        local: Vec<Local>,
    }

    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum PreKey {
        NegInf,
        Is(Pre, u64),
        PosInf,
    }

    struct Cursor<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl Cursor<'_> {
        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }
        fn digits(&mut self) -> Option<u64> {
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            if self.i == start {
                return None;
            }
            std::str::from_utf8(self.b.get(start..self.i)?)
                .ok()?
                .parse()
                .ok()
        }
        fn is_sep(c: Option<u8>) -> bool {
            matches!(c, Some(b'-' | b'_' | b'.'))
        }
        /// An optional separator then a label from `labels` (longest listed first).
        fn label(&mut self, labels: &[&str]) -> Option<usize> {
            let at = if Self::is_sep(self.peek()) {
                self.i + 1
            } else {
                self.i
            };
            let rest = self.b.get(at..)?;
            let k = labels.iter().position(|l| rest.starts_with(l.as_bytes()))?;
            self.i = at + labels[k].len();
            Some(k)
        }
        /// An optional separator then a number, only if digits follow.
        fn number(&mut self) -> Option<u64> {
            let save = self.i;
            if Self::is_sep(self.peek()) {
                self.i += 1;
            }
            match self.digits() {
                Some(n) => Some(n),
                None => {
                    self.i = save;
                    None
                }
            }
        }
    }

    impl Version {
        pub fn parse(s: &str) -> Option<Version> {
            let s = s.trim().to_ascii_lowercase();
            let mut c = Cursor {
                b: s.as_bytes(),
                i: 0,
            };
            if c.peek() == Some(b'v') {
                c.i += 1;
            }
            let first = c.digits()?;
            let (epoch, first) = if c.peek() == Some(b'!') {
                c.i += 1;
                (first, c.digits()?)
            } else {
                (0, first)
            };
            let mut release = vec![first];
            while c.peek() == Some(b'.') && c.b.get(c.i + 1).is_some_and(u8::is_ascii_digit) {
                c.i += 1;
                release.push(c.digits()?);
            }
            let save = c.i;
            let pre = match c.label(&["alpha", "beta", "preview", "pre", "rc", "a", "b", "c"]) {
                Some(k) => {
                    let kind = match k {
                        0 | 5 => Pre::A,
                        1 | 6 => Pre::B,
                        _ => Pre::Rc,
                    };
                    Some((kind, c.number().unwrap_or(0)))
                }
                None => {
                    c.i = save;
                    None
                }
            };
            let save = c.i;
            let post = if c.peek() == Some(b'-') && c.b.get(c.i + 1).is_some_and(u8::is_ascii_digit)
            {
                c.i += 1;
                Some(c.digits()?)
            } else if c.label(&["post", "rev", "r"]).is_some() {
                Some(c.number().unwrap_or(0))
            } else {
                c.i = save;
                None
            };
            let save = c.i;
            let dev = if c.label(&["dev"]).is_some() {
                Some(c.number().unwrap_or(0))
            } else {
                c.i = save;
                None
            };
            let mut local = Vec::new();
            if c.peek() == Some(b'+') {
                let text = std::str::from_utf8(c.b.get(c.i + 1..)?).ok()?;
                for seg in text.split(['-', '_', '.']) {
                    if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        return None;
                    }
                    local.push(if seg.bytes().all(|b| b.is_ascii_digit()) {
                        Local::Num(seg.parse().ok()?)
                    } else {
                        Local::Str(seg.to_string())
                    });
                }
                c.i = c.b.len();
            }
            if c.i != c.b.len() {
                return None;
            }
            Some(Version {
                epoch,
                release,
                pre,
                post,
                dev,
                local,
            })
        }

        fn trimmed_release(&self) -> &[u64] {
            let mut n = self.release.len();
            while n > 0 && self.release[n - 1] == 0 {
                n -= 1;
            }
            &self.release[..n]
        }

        fn pre_key(&self) -> PreKey {
            match (self.pre, self.post, self.dev) {
                (None, None, Some(_)) => PreKey::NegInf,
                (None, _, _) => PreKey::PosInf,
                (Some((k, n)), _, _) => PreKey::Is(k, n),
            }
        }

        pub fn cmp(&self, o: &Version) -> Ordering {
            self.cmp_public(o).then_with(|| {
                // No local version sorts first.
                match (self.local.is_empty(), o.local.is_empty()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => self.local.cmp(&o.local),
                }
            })
        }

        /// Order ignoring local labels (`Version(v.public)`).
        fn cmp_public(&self, o: &Version) -> Ordering {
            self.epoch
                .cmp(&o.epoch)
                .then_with(|| self.trimmed_release().cmp(o.trimmed_release()))
                .then_with(|| self.pre_key().cmp(&o.pre_key()))
                .then_with(|| self.post.cmp(&o.post))
                .then_with(|| {
                    (self.dev.is_none(), self.dev.unwrap_or(0))
                        .cmp(&(o.dev.is_none(), o.dev.unwrap_or(0)))
                })
        }

        /// Epoch and release only (`base_version`).
        fn cmp_base(&self, o: &Version) -> Ordering {
            self.epoch
                .cmp(&o.epoch)
                .then_with(|| self.trimmed_release().cmp(o.trimmed_release()))
        }

        pub fn is_prerelease(&self) -> bool {
            self.pre.is_some() || self.dev.is_some()
        }

        fn prefix_matches(&self, epoch: u64, prefix: &[u64]) -> bool {
            self.epoch == epoch
                && prefix
                    .iter()
                    .enumerate()
                    .all(|(i, x)| self.release.get(i).copied().unwrap_or(0) == *x)
        }
    }

    /// `==spec` for a candidate: public versions equal, and locals too if `spec` has one.
    pub fn equal_spec(spec: &Version, c: &Version) -> bool {
        if spec.local.is_empty() {
            c.cmp_public(spec) == Ordering::Equal
        } else {
            c.cmp(spec) == Ordering::Equal
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Op {
        Compatible,
        Eq,
        Ne,
        Le,
        Ge,
        Lt,
        Gt,
        Arbitrary,
    }

    #[derive(Clone, Debug)]
    struct Spec {
        op: Op,
        /// The version (absent only for `===` with a non-PEP 440 string).
        version: Option<Version>,
        /// `==1.2.*`, `!=1.2.*`, and the prefix implied by `~=`.
        prefix: Option<(u64, Vec<u64>)>,
        text: String,
    }

    #[derive(Clone, Debug)]
    pub struct SpecifierSet {
        specs: Vec<Spec>,
        prereleases: bool,
    }

    impl SpecifierSet {
        pub fn parse(s: &str) -> Result<SpecifierSet, String> {
            let mut specs = Vec::new();
            for part in s.split(',') {
                let part = part.trim();
                if part.is_empty() {
                    return Err("empty specifier between commas".into());
                }
                specs.push(Spec::parse(part)?);
            }
            // Pre-releases are allowed when any specifier (other than `!=`) names one.
            let prereleases = specs
                .iter()
                .any(|s| s.op != Op::Ne && s.version.as_ref().is_some_and(Version::is_prerelease));
            Ok(SpecifierSet { specs, prereleases })
        }

        pub fn contains(&self, raw: &str) -> bool {
            let raw = raw.trim();
            let v = Version::parse(raw);
            if let Some(v) = &v
                && v.is_prerelease()
                && !self.prereleases
            {
                return false;
            }
            self.specs.iter().all(|s| s.contains(raw, v.as_ref()))
        }
    }

    impl Spec {
        fn parse(part: &str) -> Result<Spec, String> {
            const OPS: [(&str, Op); 8] = [
                ("===", Op::Arbitrary),
                ("~=", Op::Compatible),
                ("==", Op::Eq),
                ("!=", Op::Ne),
                ("<=", Op::Le),
                (">=", Op::Ge),
                ("<", Op::Lt),
                (">", Op::Gt),
            ];
            let Some((op, text)) = OPS
                .iter()
                .find_map(|(p, op)| part.strip_prefix(p).map(|t| (*op, t.trim())))
            else {
                return Err(format!(
                    "`{part}` has no operator (PEP 440 needs one, e.g. `=={part}`)"
                ));
            };
            if text.is_empty() {
                return Err(format!("`{part}` has no version"));
            }
            let bad = |text: &str| {
                let hint = if text.contains(char::is_whitespace) {
                    " (separate specifiers with commas)"
                } else {
                    ""
                };
                format!("`{text}` is not a valid PEP 440 version{hint}")
            };
            if op == Op::Arbitrary {
                return Ok(Spec {
                    op,
                    version: Version::parse(text),
                    prefix: None,
                    text: text.to_string(),
                });
            }
            if let Some(head) = text.strip_suffix(".*") {
                if !matches!(op, Op::Eq | Op::Ne) {
                    return Err(format!("`.*` is only allowed with `==` and `!=`: `{part}`"));
                }
                let v = Version::parse(head).ok_or_else(|| bad(text))?;
                if v.pre.is_some() || v.post.is_some() || v.dev.is_some() || !v.local.is_empty() {
                    return Err(format!(
                        "`.*` must follow a plain release like `1.2.*`: `{part}`"
                    ));
                }
                return Ok(Spec {
                    op,
                    prefix: Some((v.epoch, v.release.clone())),
                    version: Some(v),
                    text: text.to_string(),
                });
            }
            let v = Version::parse(text).ok_or_else(|| bad(text))?;
            if !v.local.is_empty() && !matches!(op, Op::Eq | Op::Ne) {
                return Err(format!(
                    "local versions (`+…`) are only allowed with `==` and `!=`: `{part}`"
                ));
            }
            let prefix = if op == Op::Compatible {
                if v.release.len() < 2 {
                    return Err(format!(
                        "`~=` needs at least two release components (`~=1.0`): `{part}`"
                    ));
                }
                Some((v.epoch, v.release[..v.release.len() - 1].to_vec()))
            } else {
                None
            };
            Ok(Spec {
                op,
                version: Some(v),
                prefix,
                text: text.to_string(),
            })
        }

        fn contains(&self, raw: &str, c: Option<&Version>) -> bool {
            if self.op == Op::Arbitrary {
                return raw.eq_ignore_ascii_case(&self.text);
            }
            let (Some(c), Some(v)) = (c, self.version.as_ref()) else {
                return false;
            };
            let prefix = self.prefix.as_ref().map(|(e, p)| c.prefix_matches(*e, p));
            match self.op {
                Op::Compatible => c.cmp_public(v) != Ordering::Less && prefix.unwrap_or(false),
                Op::Eq => prefix.unwrap_or_else(|| equal_spec(v, c)),
                Op::Ne => !prefix.unwrap_or_else(|| equal_spec(v, c)),
                Op::Le => c.cmp_public(v) != Ordering::Greater,
                Op::Ge => c.cmp_public(v) != Ordering::Less,
                // `<V` is `<V.dev0` unless V is a pre-release: V's own pre- and
                // dev-releases do not match (packaging 26's reading of PEP 440).
                Op::Lt => {
                    if v.is_prerelease() {
                        c.cmp(v) == Ordering::Less
                    } else {
                        let dev0 = Version {
                            dev: Some(0),
                            ..v.clone()
                        };
                        c.cmp(&dev0) == Ordering::Less
                    }
                }
                // `>V` matches neither local versions of V nor, for a final or
                // pre-release V, the post-releases of V (later versions sharing V's release
                // and pre-release segment).
                Op::Gt => {
                    if c.cmp(v) != Ordering::Greater || c.cmp_public(v) == Ordering::Equal {
                        false
                    } else if v.dev.is_some() || v.post.is_some() {
                        true
                    } else {
                        c.cmp_base(v) != Ordering::Equal || c.pre != v.pre
                    }
                }
                Op::Arbitrary => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(eco: &str, q: VersionQuery) -> Matcher {
        match Matcher::new(eco, &q) {
            Ok(m) => m,
            Err(e) => panic!("{eco} {q:?}: {e}"),
        }
    }
    fn range(eco: &str, r: &str) -> Matcher {
        m(eco, VersionQuery::Range(r.into()))
    }
    fn exact(eco: &str, v: &str) -> Matcher {
        m(eco, VersionQuery::Exact(v.into()))
    }
    fn check(m: &Matcher, yes: &[&str], no: &[&str]) {
        for v in yes {
            assert!(m.matches(v), "{} should match {v}", m.describe());
        }
        for v in no {
            assert!(!m.matches(v), "{} should not match {v}", m.describe());
        }
    }
    fn range_err(eco: &str, r: &str) -> String {
        match Matcher::new(eco, &VersionQuery::Range(r.into())) {
            Ok(m) => panic!("{eco} `{r}` should be invalid, got {}", m.describe()),
            Err(e) => e.to_string(),
        }
    }

    // ---- npm ----

    #[test]
    fn npm_range() {
        let r = range("npm", ">=1.4.1 <1.4.3");
        check(
            &r,
            &["1.4.1", "1.4.2", "v1.4.2", " 1.4.2 "],
            &["1.4.0", "1.4.3", "x", ""],
        );
        assert_eq!(r.describe(), "npm range >=1.4.1 <1.4.3");
        // npm semantics: a pre-release only matches a range naming that tuple's pre-release.
        check(
            &range("npm", ">=1.0.0 <2.0.0"),
            &["1.5.0"],
            &["1.5.0-beta.1"],
        );
        check(
            &range("npm", ">=1.5.0-beta.0 <2.0.0"),
            &["1.5.0-beta.1"],
            &["1.6.0-rc.1"],
        );
        check(
            &range("npm", "^1.2.3 || ~2.0.1"),
            &["1.9.0", "2.0.5"],
            &["2.1.0", "1.2.2"],
        );
    }

    #[test]
    fn npm_invalid_range() {
        let e = range_err("npm", ">=1.4.1 <");
        assert!(e.starts_with("invalid npm range `>=1.4.1 <`: "), "{e}");
        assert_eq!(
            e,
            "invalid npm range `>=1.4.1 <`: operator `<` is not followed by a version"
        );
        for (bad, why) in [
            ("not a range", "`not` is not a valid comparator"),
            ("1.2.3 foo", "`foo` is not a valid comparator"),
            (">=1.0.0 ||", "empty alternative"),
            ("|| 1.0", "empty alternative"),
            ("1.2.3 -", "hyphen range"),
            ("- 1.2.3", "hyphen range"),
        ] {
            let e = range_err("npm", bad);
            assert!(
                e.starts_with(&format!("invalid npm range `{bad}`: ")),
                "{e}"
            );
            assert!(e.contains(why), "{bad}: {e}");
        }
        // Loose but meaningful forms still parse.
        check(&range("npm", ">= 1.2.3 < 2"), &["1.5.0"], &["2.0.0"]);
        check(&range("npm", "1.2.3 - 2.3.4"), &["2.3.4"], &["2.3.5"]);
        check(
            &range("npm", "1.2.x || =v3.0.0"),
            &["1.2.9", "3.0.0"],
            &["1.3.0"],
        );
    }

    #[test]
    fn npm_exact() {
        let colors = exact("npm", "1.4.0");
        check(
            &colors,
            &["1.4.0", "v1.4.0", "1.4.0+build.7"],
            &["1.4.1", "1.4.0-rc.1"],
        );
        assert_eq!(colors.describe(), "npm version 1.4.0");
        let any = m(
            "npm",
            VersionQuery::AnyOf(vec!["3.3.6".into(), "0.1.1".into()]),
        );
        check(&any, &["3.3.6", "0.1.1"], &["3.3.5", "0.1.2"]);
        assert_eq!(any.describe(), "npm versions 3.3.6, 0.1.1");
        // A non-semver exact version still equals itself.
        check(&exact("npm", "latest-ish"), &["latest-ish"], &["1.0.0"]);
    }

    // ---- PEP 440 ----

    #[test]
    fn pep440_compatible_release() {
        let r = range("pypi", "~=2.2");
        check(
            &r,
            &["2.2", "2.2.0", "2.3", "2.9.1", "2.2.post1"],
            &["3.0", "2.1", "2.2a1", "3.0.dev1", "1!2.2"],
        );
        check(
            &range("pypi", "~=1.4.5"),
            &["1.4.5", "1.4.9"],
            &["1.5.0", "1.4.4"],
        );
        check(
            &range("pypi", "~=2.2.post3"),
            &["2.2.post3", "2.5"],
            &["2.2.post2", "3.0"],
        );
    }

    #[test]
    fn pep440_exclusions() {
        let r = range("pypi", ">=1.0,!=1.3.*");
        check(
            &r,
            &["1.0", "1.2.9", "1.4", "2.0", "1.2.post1"],
            &["0.9", "1.3", "1.3.0", "1.3.5", "1.3rc1", "1.3.post1"],
        );
        assert_eq!(r.describe(), "pypi range >=1.0,!=1.3.*");
        check(&range("pypi", " >= 1.0 , < 2 "), &["1.5"], &["2.0"]);
    }

    #[test]
    fn pep440_equality() {
        check(
            &range("pypi", "==1.0"),
            &["1.0", "1.0.0", "1.0+local.7", "v1.0", "1.0.0.0"],
            &["1.0.post1", "1.0.1", "1.0a1"],
        );
        check(&exact("pypi", "1.0"), &["1.0.0", "1.0+ubuntu1"], &["1.0.1"]);
        check(
            &exact("pypi", "1.0+abc"),
            &["1.0+abc", "1.0.0+ABC"],
            &["1.0", "1.0+abd"],
        );
        check(
            &range("pypi", "==2.0+deadbeef.00"),
            &["2.0.0+deadbeef.0"],
            &["2.0"],
        );
        check(
            &range("pypi", "==2.*"),
            &["2.0", "2.9.9", "2"],
            &["3.0", "1.9"],
        );
        check(&range("pypi", "==2.0.0.*"), &["2.0", "2.0.0.5"], &["2.0.1"]);
        check(&range("pypi", "==1!1.*"), &["1!1.0"], &["1.0"]);
        check(
            &range("pypi", "!=1.0"),
            &["1.1", "0.9"],
            &["1.0", "1.0.0+x"],
        );
        check(&range("pypi", "===1.0"), &["1.0", "1.0 "], &["1.0.0"]);
        check(&range("pypi", "===foobar"), &["FooBar"], &["foo"]);
    }

    #[test]
    fn pep440_prerelease_rules() {
        // Excluded unless a specifier names a pre-release.
        check(
            &range("pypi", ">=1.0"),
            &["2.0"],
            &["2.0a1", "2.0.dev1", "2.0rc1.post1"],
        );
        check(
            &range("pypi", ">=1.0a1"),
            &["2.0a1", "1.0a1", "2.0.dev1"],
            &["1.0.dev1"],
        );
        check(
            &range("pypi", "==2.0b1"),
            &["2.0b1", "2.0beta1", "2.0-b.1"],
            &["2.0b2"],
        );
        // `<V` never matches V's own pre-releases unless V is one.
        check(
            &range("pypi", "<2.0,>=1.0a1"),
            &["1.9", "1.9a1"],
            &["2.0a1", "2.0.dev0"],
        );
        check(&range("pypi", "<2.0.dev2"), &["2.0.dev1"], &["2.0.dev2"]);
        // `>V` never matches V's post-releases unless V is one, nor V's locals.
        check(
            &range("pypi", ">2"),
            &["2.1", "3"],
            &["2.0.post1", "2.0+local", "2"],
        );
        check(&range("pypi", ">2.0.post0"), &["2.0.post1"], &["2.0.post0"]);
        check(&range("pypi", "<=2"), &["2.0+local", "1"], &["2.0.post1"]);
        // Only V's own family is carved out (packaging 26): the post-releases of `2.0rc1`
        // are `2.0rc1.postN`, not `2.0.postN`; `<1.0.post1` is `<1.0.post1.dev0`.
        check(
            &range("pypi", ">2.0rc1"),
            &["2.0.post1", "2.0", "2.0rc2"],
            &["2.0rc1.post1", "2.0rc1+x"],
        );
        check(
            &range("pypi", ">2.0.dev1"),
            &["2.0.post1", "2.0.dev2"],
            &["2.0.dev1+x", "2.0.dev1"],
        );
        check(
            &range("pypi", "<1.0.post1,>=0.1a1"),
            &["1.0a1", "1.0", "1.0.post0"],
            &["1.0.post1.dev0", "1.0.post1"],
        );
    }

    #[test]
    fn pep440_invalid() {
        for (r, want) in [
            ("~=1", "at least two release components"),
            (">=1.0+local", "local versions"),
            ("==1.0a1.*", "plain release"),
            ("<=1.*", "only allowed with `==` and `!=`"),
            ("1.0", "no operator"),
            (">=1.0 <2.0", "separate specifiers with commas"),
            (">=1.0,", "empty specifier"),
            (">=banana", "not a valid PEP 440 version"),
        ] {
            let e = range_err("pypi", r);
            assert!(e.contains(want), "{r}: {e}");
            assert!(e.starts_with(&format!("invalid pypi range `{r}`")), "{e}");
        }
    }

    #[test]
    fn pep440_ordering() {
        let order = [
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
            "1!0.1",
        ];
        for w in order.windows(2) {
            assert_eq!(
                compare_versions("pypi", w[0], w[1]),
                Some(Ordering::Less),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        for (a, b) in [
            ("1.0ALPHA1", "1.0a1"),
            ("1.0-beta.2", "1.0b2"),
            ("1.0c1", "1.0rc1"),
            ("1.0pre1", "1.0rc1"),
            ("1.0preview", "1.0rc0"),
            ("1.0-1", "1.0.post1"),
            ("1.0.rev1", "1.0.post1"),
            ("1.0-r", "1.0.post0"),
            ("1.0dev", "1.0.dev0"),
            ("v1.0", "1.0"),
            ("1.0.0", "1"),
            ("1.0+Local.01", "1.0+local.1"),
            ("0!1.0", "1.0"),
        ] {
            assert_eq!(
                compare_versions("pypi", a, b),
                Some(Ordering::Equal),
                "{a} = {b}"
            );
        }
        for bad in [
            "", "1.", "1.0a.", "1.0+", "1.0+a..b", "a1", "1.0 1", "1.0abc", "1.0.*",
        ] {
            assert!(pep440::Version::parse(bad).is_none(), "{bad}");
        }
    }

    // ---- Cargo ----

    #[test]
    fn cargo_requirements() {
        check(
            &range("cargo", "^1.2.3"),
            &["1.2.3", "1.9.0"],
            &["2.0.0", "1.2.2", "1.3.0-alpha"],
        );
        check(
            &range("cargo", "~1.2"),
            &["1.2.0", "1.2.9"],
            &["1.3.0", "1.1.9"],
        );
        check(
            &range("cargo", "=1.2.3"),
            &["1.2.3", "1.2.3+build"],
            &["1.2.4"],
        );
        check(
            &range("cargo", ">=1, <2"),
            &["1.0.0", "1.99.0"],
            &["2.0.0", "0.9.0"],
        );
        check(
            &range("cargo", "1.2"),
            &["1.2.0", "1.9.0"],
            &["2.0.0", "1.1.0"],
        );
        check(&range("cargo", "0.3"), &["0.3.5"], &["0.4.0"]);
        check(&range("cargo", "*"), &["0.0.1", "9.0.0"], &["banana"]);
        check(&range("crates.io", "^1"), &["1.0.0"], &["2.0.0"]);
        check(&exact("cargo", "1.2"), &["1.2.0", "v1.2.0"], &["1.2.1"]);
        check(
            &exact("cargo", "1.0.0+a"),
            &["1.0.0", "1.0.0+b"],
            &["1.0.1"],
        );
        assert!(range_err("cargo", ">=1.0 <").starts_with("invalid cargo range"));
    }

    // ---- Maven ----

    fn mvn(a: &str, b: &str) -> Option<Ordering> {
        compare_versions("maven", a, b)
    }

    #[test]
    fn maven_qualifier_order() {
        let chain = [
            "1.0-alpha",
            "1.0-beta",
            "1.0-milestone",
            "1.0-rc",
            "1.0-SNAPSHOT",
            "1.0",
            "1.0-sp",
        ];
        for w in chain.windows(2) {
            assert_eq!(mvn(w[0], w[1]), Some(Ordering::Less), "{} < {}", w[0], w[1]);
        }
        // Maven's own test vectors, strictly increasing.
        let qualifiers = [
            "1-alpha2snapshot",
            "1-alpha2",
            "1-alpha-123",
            "1-beta-2",
            "1-beta123",
            "1-m2",
            "1-m11",
            "1-rc",
            "1-cr2",
            "1-rc123",
            "1-SNAPSHOT",
            "1",
            "1-sp",
            "1-sp2",
            "1-sp123",
            "1-abc",
            "1-def",
            "1-pom-1",
            "1-1-snapshot",
            "1-1",
            "1-2",
            "1-123",
        ];
        let numbers = [
            "2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c", "2.1-1",
            "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11", "11.m2", "11.m11",
            "11", "11.a", "11b", "11c", "11m",
        ];
        for list in [&qualifiers[..], &numbers[..]] {
            for (i, a) in list.iter().enumerate() {
                for b in &list[i + 1..] {
                    assert_eq!(mvn(a, b), Some(Ordering::Less), "{a} < {b}");
                    assert_eq!(mvn(b, a), Some(Ordering::Greater), "{b} > {a}");
                }
            }
        }
        let equal = [
            &[
                "1",
                "1.0",
                "1.0.0",
                "1-0",
                "1.0-0",
                "1-ga",
                "1-GA",
                "1-final",
                "1-release",
                "1.0-ga",
                "1-0-final",
                "1.0.0-FINAL",
            ][..],
            &[
                "1a1",
                "1-a1",
                "1-alpha-1",
                "1.0-alpha1",
                "1alpha1",
                "1-ALPHA-1",
            ][..],
            &["1b2", "1-b2", "1-beta-2", "1beta2", "1.0.0-beta2"][..],
            &["1m3", "1-m3", "1.0-milestone-3", "1milestone3"][..],
            &["1rc4", "1-rc4", "1-cr-4", "1cr4", "1.0.0-RC4"][..],
            &["1x", "1-x", "1.0.0-x"][..],
        ];
        for group in equal {
            for a in group {
                for b in group {
                    assert_eq!(mvn(a, b), Some(Ordering::Equal), "{a} = {b}");
                }
            }
        }
        // MNG-6964 and friends.
        assert_eq!(mvn("1-0.alpha", "1"), Some(Ordering::Less));
        assert_eq!(mvn("1.0.RC1", "1.0-RC2"), Some(Ordering::Less));
        assert_eq!(mvn("1.0-RC2", "1.0.1"), Some(Ordering::Less));
        assert_eq!(
            maven::Version::parse("1.0.0-GA").map(|v| v.canonical()),
            Some("1".into())
        );
    }

    #[test]
    fn maven_ranges() {
        let r = range("maven", "[1.0,2.0)");
        check(
            &r,
            &[
                "1.0",
                "1.0.0",
                "1.5",
                "1.5-SNAPSHOT",
                "1.99",
                "2.0-SNAPSHOT",
                "2.0-rc1",
            ],
            &["0.9", "1.0-SNAPSHOT", "2.0", "2.0.0", "2.0.1"],
        );
        check(
            &range("maven", "(,1.0]"),
            &["0.1", "1.0", "1.0-SNAPSHOT"],
            &["1.0.1", "1.0-sp"],
        );
        check(
            &range("maven", "[1.2]"),
            &["1.2", "1.2.0"],
            &["1.2.1", "1.1"],
        );
        check(&range("maven", "[1.0,)"), &["1.0", "99"], &["0.9"]);
        check(
            &range("maven", "(1.0,2.0]"),
            &["1.0.1", "2.0"],
            &["1.0", "2.0.1"],
        );
        let u = range("maven", "(,1.0],[1.2,)");
        check(&u, &["0.5", "1.0", "1.2", "3"], &["1.1", "1.0.1"]);
        check(
            &range("maven", "[ 1.0 , 2.0 ) , [3.0,4.0)"),
            &["1.1", "3.5"],
            &["2.5"],
        );
        // A bare version is a soft requirement: for a query, exactly that version.
        check(
            &range("maven", "1.0"),
            &["1.0", "1.0.0", "1-ga"],
            &["1.1", "1.0-SNAPSHOT"],
        );
        check(&range("maven", ">=1.0, <2.0"), &["1.5"], &["2.0"]);
        check(
            &exact("maven", "2.9.10.1"),
            &["2.9.10.1", "2.9.10.1.0"],
            &["2.9.10"],
        );
        for (bad, why) in [
            ("[1.0,2.0", "unclosed"),
            ("(1.0)", "single version"),
            ("[2.0,1.0]", "upper bound below"),
            ("[1.0,2.0),x", "unexpected"),
            ("[1.0,2.0,3.0]", "too many commas"),
            ("~1.0", "not supported"),
            ("[1.0 2.0]", "not a valid Maven version"),
            ("(1.0,1.0)", "is empty"),
            ("[1.0,1.0)", "is empty"),
            ("[1.0,2.0),[1.5,3.0)", "overlaps"),
            ("[2.0,3.0),(,1.0]", "overlaps"),
        ] {
            let e = range_err("maven", bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    // ---- Go ----

    #[test]
    fn golang_ranges() {
        let r = range("golang", ">=v1.2.0 <v1.3.0");
        check(
            &r,
            &[
                "v1.2.0",
                "v1.2.5",
                "v1.2.4-0.20210101000000-abcdef123456",
                "1.2.9",
                "v1.3.0-rc.1",
            ],
            &["v1.3.0", "v1.1.9", "v1.2.0-rc.1", "234fd47e07d1004f0aed9c"],
        );
        assert_eq!(r.describe(), "golang range >=v1.2.0 <v1.3.0");
        check(
            &range("go", "<v0.0.1"),
            &["v0.0.0-20210428141323-04723f9f07d7"],
            &["v0.0.1"],
        );
        check(
            &range("golang", "=v2.0.0+incompatible || >=v3"),
            &["v2.0.0+incompatible", "v3.1.0"],
            &["v2.1.0"],
        );
        check(
            &exact("golang", "v1.2.3"),
            &["1.2.3", "v1.2.3"],
            &["v1.2.4"],
        );
        assert_eq!(
            compare_versions("golang", "v0.0.0-20210428141323-04723f9f07d7", "v0.0.0"),
            Some(Ordering::Less)
        );
        assert!(range_err("golang", "^v1.2.0").contains("not supported"));
    }

    // ---- composer, gem, nuget ----

    #[test]
    fn dotted_ordering() {
        let chain = [
            "1.0.0-dev",
            "1.0.0-alpha",
            "1.0.0-alpha.2",
            "1.0.0-beta",
            "1.0.0-preview",
            "1.0.0-rc1",
            "1.0.0",
            "1.0.0-patch1",
            "1.0.1",
            "1.0.10",
            "2",
        ];
        for w in chain.windows(2) {
            assert_eq!(
                compare_versions("composer", w[0], w[1]),
                Some(Ordering::Less),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        assert_eq!(
            compare_versions("gem", "1.0.0.pre", "1.0.0"),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare_versions("gem", "1.0.a", "1.0"),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare_versions("nuget", "1.0", "1.0.0.0"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare_versions("nuget", "1.0.0-RC.1", "1.0.0-rc.1"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare_versions("composer", "v7.12.0", "7.12"),
            Some(Ordering::Equal)
        );
        assert_eq!(compare_versions("composer", "dev-master", "1.0"), None);
    }

    #[test]
    fn composer_gem_nuget_ranges() {
        check(
            &range("composer", ">=7.0 <7.12.1"),
            &["v7.12.0", "7.0"],
            &["7.12.1", "6.9"],
        );
        check(&range("composer", ">=7.0, <7.12.1"), &["7.5"], &["8.0"]);
        check(
            &range("composer", "^1.2.3"),
            &["1.2.3", "1.9"],
            &["2.0.0", "2.0.0-beta", "1.2.2"],
        );
        check(&range("composer", "^0.3"), &["0.3.9"], &["0.4.0"]);
        check(
            &range("composer", "~1.2"),
            &["1.2", "1.9.9"],
            &["2.0", "1.1"],
        );
        check(&range("composer", "~1.2.3"), &["1.2.9"], &["1.3.0"]);
        check(
            &range("composer", "1.2.*"),
            &["1.2.0", "1.2.7", "1.2"],
            &["1.3.0", "1.1.9"],
        );
        check(
            &range("composer", "<1.0 || >=2.0"),
            &["0.9", "2.1"],
            &["1.5"],
        );
        check(
            &range("composer", "<1.0 | >=2.0"),
            &["0.9", "2.1"],
            &["1.5"],
        );
        check(&range("composer", "*"), &["0.1"], &["dev-master"]);
        check(&range("composer", "!=1.5, >=1"), &["1.4"], &["1.5.0"]);
        check(
            &range("gem", "~> 2.2"),
            &["2.2", "2.9.9"],
            &["3.0", "3.0.0.pre", "2.1"],
        );
        check(&range("gem", "~> 2.2.0"), &["2.2.9"], &["2.3"]);
        check(&range("RubyGems", ">= 1.0, < 2"), &["1.5"], &["2.0"]);
        check(&range("gem", "1.0.0"), &["1.0"], &["1.0.1"]);
        check(
            &range("nuget", "[1.0,2.0)"),
            &["1.0", "1.5.0", "1.9.9.9"],
            &["2.0", "0.9"],
        );
        check(&range("nuget", "[1.0]"), &["1.0.0.0"], &["1.0.1"]);
        check(&range("nuget", ">=6.0.1304"), &["6.0.1304"], &["6.0.1303"]);
        check(&exact("nuget", "13.0.1"), &["13.0.1.0"], &["13.0.2"]);
        assert!(range_err("composer", "1.0 - 2.0").contains("hyphen"));
        assert!(range_err("composer", ">= ").contains("not followed"));
        assert!(range_err("gem", "~> banana").contains("not a valid gem version"));
        assert!(range_err("composer", ">>1").contains("unknown operator"));
    }

    // ---- other ecosystems, errors ----

    #[test]
    fn unknown_ecosystems_use_string_equality() {
        let d = exact("deb", "1:2.4.47-2+b1");
        check(
            &d,
            &["1:2.4.47-2+b1", " 1:2.4.47-2+b1"],
            &["1:2.4.47-2", "1:2.4.47-2+B1"],
        );
        assert_eq!(d.describe(), "deb version 1:2.4.47-2+b1");
        assert_eq!(d.ecosystem(), "deb");
        assert_eq!(
            Matcher::new("deb", &VersionQuery::Range(">=1".into())).err(),
            Some(VersionError::RangeUnsupported("deb".into()))
        );
        assert_eq!(
            range_err("Deb", ">=1"),
            "version ranges are not supported for ecosystem `deb`; list the exact versions instead"
        );
        assert_eq!(compare_versions("deb", "1", "2"), None);
    }

    #[test]
    fn empty_and_oversized_queries() {
        use VersionQuery::*;
        assert_eq!(
            Matcher::new("npm", &Exact(" ".into())).err(),
            Some(VersionError::Empty("version"))
        );
        assert_eq!(
            Matcher::new("npm", &AnyOf(vec![])).err(),
            Some(VersionError::Empty("list of versions"))
        );
        assert_eq!(
            Matcher::new("npm", &AnyOf(vec!["1".into(), "".into()])).err(),
            Some(VersionError::Empty("version"))
        );
        assert_eq!(
            Matcher::new("pypi", &Range("".into())).err(),
            Some(VersionError::Empty("version range"))
        );
        assert!(matches!(
            Matcher::new("npm", &Range("1".repeat(MAX_QUERY_LEN + 1))),
            Err(VersionError::TooLong { .. })
        ));
        // Over-long candidate versions are opaque strings.
        let long = format!("1.{}", "0".repeat(MAX_VERSION_LEN));
        assert!(!range("maven", "[1.0,2.0)").matches(&long));
        assert!(exact("maven", &long).matches(&long));
        assert!(!exact("maven", "1.0").matches(&long));
    }

    // ---- properties ----

    const ECOSYSTEMS: [&str; 10] = [
        "npm", "pypi", "cargo", "maven", "golang", "composer", "gem", "nuget", "deb", "go",
    ];

    fn version_like() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                4 => "[0-9]{1,3}",
                2 => proptest::sample::select(vec![
                    "alpha", "a", "beta", "b", "rc", "cr", "m", "milestone", "snapshot", "ga",
                    "final", "release", "sp", "dev", "post", "pre", "preview", "patch", "pl",
                    "x", "abc", "r", "rev", "c", "v",
                ]).prop_map(str::to_string),
                2 => proptest::sample::select(vec![".", "-", "_", "+", "!", ".*", ""]).prop_map(str::to_string),
            ],
            1..8,
        )
        .prop_map(|v| v.concat())
    }

    fn range_like() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                3 => version_like(),
                2 => proptest::sample::select(vec![
                    ">=", "<=", ">", "<", "=", "==", "!=", "~=", "~", "~>", "^", "===", "*",
                    ",", " ", "||", "|", "[", "]", "(", ")", " - ",
                ]).prop_map(str::to_string),
            ],
            1..10,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn never_panics_on_arbitrary_input(eco in proptest::sample::select(ECOSYSTEMS.to_vec()), q in any::<String>(), v in any::<String>()) {
            for query in [VersionQuery::Range(q.clone()), VersionQuery::Exact(q.clone()), VersionQuery::AnyOf(vec![q.clone(), v.clone()])] {
                if let Ok(m) = Matcher::new(eco, &query) {
                    let _ = m.matches(&v);
                    let _ = m.matches(&q);
                    let _ = m.describe();
                }
            }
            let _ = compare_versions(eco, &q, &v);
        }

        #[test]
        fn never_panics_on_version_shaped_input(eco in proptest::sample::select(ECOSYSTEMS.to_vec()), q in range_like(), v in version_like()) {
            if let Ok(m) = Matcher::new(eco, &VersionQuery::Range(q)) {
                let _ = m.matches(&v);
            }
            let _ = compare_versions(eco, &v, &v);
        }

        #[test]
        fn orderings_are_antisymmetric_and_reflexive(
            eco in proptest::sample::select(vec!["pypi", "maven", "composer", "golang", "npm", "cargo"]),
            a in version_like(),
            b in version_like(),
        ) {
            if let Some(o) = compare_versions(eco, &a, &b) {
                prop_assert_eq!(compare_versions(eco, &b, &a), Some(o.reverse()));
            }
            if let Some(o) = compare_versions(eco, &a, &a) {
                prop_assert_eq!(o, Ordering::Equal);
            }
        }

        #[test]
        fn orderings_are_transitive(
            eco in proptest::sample::select(vec!["pypi", "maven", "composer", "golang"]),
            a in version_like(), b in version_like(), c in version_like(),
        ) {
            let cmp = |x: &str, y: &str| compare_versions(eco, x, y);
            if let (Some(ab), Some(bc), Some(ac)) = (cmp(&a, &b), cmp(&b, &c), cmp(&a, &c))
                && ab != Ordering::Greater
                && bc != Ordering::Greater
            {
                prop_assert_ne!(ac, Ordering::Greater, "{} <= {} <= {}", a, b, c);
            }
        }

        #[test]
        fn exact_matches_itself(eco in proptest::sample::select(ECOSYSTEMS.to_vec()), v in version_like()) {
            prop_assume!(!v.trim().is_empty());
            let m = Matcher::new(eco, &VersionQuery::Exact(v.clone()));
            prop_assert!(m.is_ok_and(|m| m.matches(&v)));
        }

        #[test]
        fn interval_agrees_with_comparators(
            eco in proptest::sample::select(vec!["maven", "nuget"]),
            lo in "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}",
            hi in "[0-9]{1,2}(\\.[0-9]{1,2}){0,2}",
            v in version_like(),
        ) {
            let interval = Matcher::new(eco, &VersionQuery::Range(format!("[{lo},{hi})")));
            let cmps = Matcher::new(eco, &VersionQuery::Range(format!(">={lo}, <{hi}")));
            if let (Ok(i), Ok(c)) = (interval, cmps) {
                prop_assert_eq!(i.matches(&v), c.matches(&v));
            }
        }
    }
}
