//! The retention policy of `registry_cleanup`: which digests of which
//! repositories are kept, read from a YAML file and validated as a whole
//! before anything is planned.
//!
//! ```yaml
//! registry: registry.example.com  # optional: the only registry this policy is for
//! workspaces: [dev, prod]     # deploy state of each is required before --apply
//! defaults:
//!   keep_last: 10             # newest N digests per repository by created
//!   keep_younger_than: 14d    # grace period: never delete what is this new
//!   keep_tags: ['^latest$']   # a digest with a matching tag is kept
//!   protect_history: 3        # also keep the last N deployed digests per app
//!   keep_undated: true        # a digest without a created date is kept
//! repositories:               # per-repository overrides (exact name or glob)
//!   rednaw/hello-world: {keep_last: 5}
//!   'rednaw/*': {keep_younger_than: 30d}
//! ```
//!
//! Which entry of `repositories` applies to a repository:
//!
//! 1. the entry whose key is exactly the repository name, if any;
//! 2. otherwise the **first glob in file order** that matches the name;
//! 3. otherwise none, and the repository uses `defaults`.
//!
//! Exactly one entry applies (entries are not layered on each other); the
//! fields it leaves unset come from `defaults`, and those `defaults` leaves
//! unset from the built-in defaults documented on [`Retention`]. A key is a
//! glob when it contains one of `* ? [ ] { } \`; globs use `globset` syntax
//! with `/` as a separator: `*` and `?` never match `/`, `**` matches across
//! components (`rednaw/*` matches `rednaw/app` but not `rednaw/team/app`;
//! `rednaw/**` matches both). Any other key must be a valid repository name.
//!
//! Every error names the key at fault as a dotted path the way the YAML
//! parser does (`defaults.keep_last`, `repositories.rednaw/*.keep_tags[0]`)
//! and the value found there.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::TimeDelta;
use globset::{GlobBuilder, GlobMatcher};
use regex::Regex;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_norway::Value;

use crate::reference::{validate_host, validate_repository};

/// Built-in default of [`Retention::keep_last`].
pub const DEFAULT_KEEP_LAST: usize = 10;
/// Built-in default of [`Retention::keep_younger_than`], in seconds (14 days).
pub const DEFAULT_KEEP_YOUNGER_THAN_SECS: u64 = 14 * DAY;
/// Built-in default of [`Retention::keep_tags`].
pub const DEFAULT_KEEP_TAGS: &[&str] = &["^latest$"];
/// Built-in default of [`Retention::protect_history`].
pub const DEFAULT_PROTECT_HISTORY: usize = 3;
/// Built-in default of [`Retention::keep_undated`].
pub const DEFAULT_KEEP_UNDATED: bool = true;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const WEEK: u64 = 7 * DAY;

/// Why a policy was refused. Messages name the key and the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid policy file `{path}`")]
    File {
        path: PathBuf,
        #[source]
        source: Box<PolicyError>,
    },
    /// Not YAML, an unknown or missing key, or a section of the wrong shape;
    /// the parser's message names the key path and the line.
    #[error("invalid policy: {0}")]
    Yaml(serde_norway::Error),
    #[error("`{key}` is `{value}`: {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },
    #[error("`{key}` is `{pattern}`, which is not a valid regular expression: {reason}")]
    Regex {
        key: String,
        pattern: String,
        /// [`regex_problem`] of the parse error.
        reason: String,
    },
    #[error("`repositories` key `{pattern}` is not a valid glob")]
    Glob {
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("`repositories` key `{pattern}` is neither a repository name nor a glob")]
    RepositoryName { pattern: String },
    #[error("`repositories` key `{pattern}` is listed twice")]
    DuplicateRepository { pattern: String },
}

/// A validated retention policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The registry (`HOST[:PORT]`) this policy is for, when it says so:
    /// `registry_cleanup` refuses to run it against another, and trusts
    /// that the policy's workspaces are the ones that deploy from it (see
    /// `prune::check_protects_here`).
    pub registry: Option<String>,
    /// Workspaces whose deploy state must be present before `--apply` (no
    /// duplicates). May be empty or left out for a dry run; `--apply` then
    /// refuses to start.
    pub workspaces: Vec<String>,
    /// What applies to a repository that no entry of `repositories` names
    /// (every field optional; see [`Retention`] for the built-in defaults).
    pub defaults: Retention,
    /// The `repositories` entries in file order, each with `defaults`
    /// already filled in for the fields it leaves unset.
    pub repositories: Vec<RepositoryRule>,
    exact: HashMap<String, usize>,
}

/// The effective retention rules of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// Keep the newest N dated, tagged digests of the repository by
    /// `created`. `0` turns the rule off. Default 10.
    pub keep_last: usize,
    /// Grace period: a digest created less than this long ago is kept (as
    /// is one created in the future). `0s` turns the rule off. Default `14d`.
    pub keep_younger_than: Period,
    /// A digest with a tag that matches one of these regular expressions is
    /// kept. Matched as written, not anchored for you: `latest` also matches
    /// `not-latest`; write `^latest$` for the exact tag. Default `['^latest$']`.
    pub keep_tags: Vec<TagPattern>,
    /// Keep the last N distinct digests deployed per app and host (the
    /// current one counts as the first), so a rollback target stays. At
    /// least 1: the current deploy is always protected. Default 3.
    pub protect_history: usize,
    /// Keep a digest whose `created` label is missing or unparseable (its
    /// age is unknown). Default true.
    pub keep_undated: bool,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_last: DEFAULT_KEEP_LAST,
            keep_younger_than: Period::from_secs(DEFAULT_KEEP_YOUNGER_THAN_SECS),
            keep_tags: DEFAULT_KEEP_TAGS
                .iter()
                .map(|p| TagPattern::new(p).expect("built-in pattern compiles"))
                .collect(),
            protect_history: DEFAULT_PROTECT_HISTORY,
            keep_undated: DEFAULT_KEEP_UNDATED,
        }
    }
}

impl Retention {
    /// The first `keep_tags` pattern that matches `tag`.
    pub fn kept_tag_pattern(&self, tag: &str) -> Option<&TagPattern> {
        self.keep_tags.iter().find(|p| p.is_match(tag))
    }
}

/// One entry of `repositories`.
#[derive(Debug, Clone)]
pub struct RepositoryRule {
    /// The key as written: a repository name or a glob.
    pub pattern: String,
    /// The entry's retention, with unset fields taken from `defaults`.
    pub retention: Retention,
    /// `None` for an exact repository name.
    glob: Option<GlobMatcher>,
}

impl RepositoryRule {
    /// Whether the key is a glob rather than an exact repository name.
    pub fn is_glob(&self) -> bool {
        self.glob.is_some()
    }

    /// Whether this entry names `repository` (exactly or by glob).
    pub fn matches(&self, repository: &str) -> bool {
        match &self.glob {
            Some(g) => g.is_match(repository),
            None => self.pattern == repository,
        }
    }
}

impl Policy {
    /// Reads and validates a policy file; errors name the file, and their
    /// cause names the key.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.into(),
            source,
        })?;
        text.parse().map_err(|e| PolicyError::File {
            path: path.into(),
            source: Box::new(e),
        })
    }

    /// The `repositories` entry that applies to `repository`: its exact
    /// name, else the first matching glob in file order, else none.
    pub fn rule_for(&self, repository: &str) -> Option<&RepositoryRule> {
        if let Some(&i) = self.exact.get(repository) {
            return Some(&self.repositories[i]);
        }
        self.repositories.iter().find(|r| r.is_glob() && r.matches(repository))
    }

    /// The effective retention of `repository`.
    pub fn retention_for(&self, repository: &str) -> &Retention {
        self.rule_for(repository).map_or(&self.defaults, |r| &r.retention)
    }
}

impl FromStr for Policy {
    type Err = PolicyError;

    /// Parses and validates policy YAML.
    fn from_str(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = serde_norway::from_str(text).map_err(PolicyError::Yaml)?;
        let registry = raw.registry.as_ref().map(registry).transpose()?;
        // A missing key, and `workspaces:` with no value, list none.
        let workspaces = match &raw.workspaces {
            None => Vec::new(),
            Some(v) => workspaces(v)?,
        };
        let builtin = Retention::default();
        let defaults = match &raw.defaults {
            Some(d) => d.resolve("defaults", &builtin)?,
            None => builtin,
        };
        let mut repositories = Vec::new();
        let mut exact = HashMap::new();
        let mut seen = BTreeSet::new();
        for (pattern, raw_rule) in raw.repositories.map(|r| r.0).unwrap_or_default() {
            if !seen.insert(pattern.clone()) {
                return Err(PolicyError::DuplicateRepository { pattern });
            }
            let glob = if pattern.contains(['*', '?', '[', ']', '{', '}', '\\']) {
                let g = GlobBuilder::new(&pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|source| PolicyError::Glob {
                        pattern: pattern.clone(),
                        source,
                    })?;
                Some(g.compile_matcher())
            } else {
                if validate_repository(&pattern).is_err() {
                    return Err(PolicyError::RepositoryName { pattern });
                }
                exact.insert(pattern.clone(), repositories.len());
                None
            };
            let retention = raw_rule.resolve(&format!("repositories.{pattern}"), &defaults)?;
            repositories.push(RepositoryRule {
                pattern,
                retention,
                glob,
            });
        }
        Ok(Policy {
            registry,
            workspaces,
            defaults,
            repositories,
            exact,
        })
    }
}

/// A length of time in the policy, e.g. `keep_younger_than: 14d`.
///
/// Grammar: one or more groups of `DIGITS UNIT`, no sign, spaces or
/// fractions, where `UNIT` is `w` (7 days), `d` (24 hours), `h`, `m`
/// (minutes) or `s`: `14d`, `12h`, `30m`, `2w`, `1d12h`, `0s`. Units are
/// lower case; there are no months or years, which have no fixed length.
/// It is written back in days, hours, minutes and seconds (`2w` → `14d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    secs: u64,
}

/// Why a [`Period`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{value}`: {reason}")]
pub struct PeriodError {
    pub value: String,
    pub reason: &'static str,
}

const PERIOD_GRAMMAR: &str =
    "expected a duration like `14d`, `12h`, `30m`, `2w` or `1d12h` (units w, d, h, m, s; no sign or fraction)";

impl Period {
    /// The longest period accepted, about 292 million years: what a
    /// [`TimeDelta`] holds.
    const MAX_SECS: u64 = (i64::MAX / 1000) as u64;

    pub fn from_secs(secs: u64) -> Period {
        Period {
            secs: secs.min(Self::MAX_SECS),
        }
    }

    pub fn as_secs(&self) -> u64 {
        self.secs
    }

    pub fn as_time_delta(&self) -> TimeDelta {
        TimeDelta::try_seconds(self.secs as i64).unwrap_or(TimeDelta::MAX)
    }
}

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(s: &str) -> Result<Period, PeriodError> {
        let err = |reason| PeriodError {
            value: s.to_string(),
            reason,
        };
        if s.is_empty() {
            return Err(err(PERIOD_GRAMMAR));
        }
        let mut total: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err(PERIOD_GRAMMAR));
            }
            let (number, tail) = rest.split_at(digits);
            let mut chars = tail.chars();
            let unit = match chars.next() {
                Some('w') => WEEK,
                Some('d') => DAY,
                Some('h') => HOUR,
                Some('m') => MINUTE,
                Some('s') => 1,
                None => return Err(err("a duration needs a unit: w, d, h, m or s (e.g. `14d`)")),
                Some(_) => return Err(err(PERIOD_GRAMMAR)),
            };
            let n: u64 = number.parse().map_err(|_| err("the duration is too long"))?;
            total = n
                .checked_mul(unit)
                .and_then(|x| total.checked_add(x))
                .filter(|x| *x <= Self::MAX_SECS)
                .ok_or_else(|| err("the duration is too long"))?;
            rest = chars.as_str();
        }
        Ok(Period { secs: total })
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secs == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.secs;
        for (unit, name) in [(DAY, 'd'), (HOUR, 'h'), (MINUTE, 'm'), (1, 's')] {
            if rest >= unit {
                write!(f, "{}{name}", rest / unit)?;
                rest %= unit;
            }
        }
        Ok(())
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A `keep_tags` regular expression, matched against a tag as written.
#[derive(Debug, Clone)]
pub struct TagPattern(Regex);

impl TagPattern {
    pub fn new(pattern: &str) -> Result<TagPattern, regex::Error> {
        Regex::new(pattern).map(TagPattern)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_match(&self, tag: &str) -> bool {
        self.0.is_match(tag)
    }
}

impl PartialEq for TagPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TagPattern {}

impl fmt::Display for TagPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TagPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

// ---- the file as written, before validation ----

/// Scalars are read as YAML values and checked here, so the messages can
/// say what was expected in words rather than Rust types.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of `registry`, `workspaces`, `defaults` and `repositories`, each optional"
)]
struct RawPolicy {
    #[serde(default)]
    registry: Option<Value>,
    #[serde(default)]
    workspaces: Option<Value>,
    #[serde(default)]
    defaults: Option<RawRetention>,
    #[serde(default)]
    repositories: Option<RawRepositories>,
}

#[derive(Deserialize, Default)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of `keep_last`, `keep_younger_than`, `keep_tags`, `protect_history`, `keep_undated`"
)]
struct RawRetention {
    keep_last: Option<Value>,
    keep_younger_than: Option<Value>,
    keep_tags: Option<Value>,
    protect_history: Option<Value>,
    keep_undated: Option<Value>,
}

/// The `repositories` mapping in file order (the order decides between
/// globs), duplicates kept so they can be refused by name.
struct RawRepositories(Vec<(String, RawRetention)>);

impl<'de> Deserialize<'de> for RawRepositories {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRepositories;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of repository name or glob to retention settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                // `repo:` with no value is an entry that sets nothing.
                while let Some((k, v)) = map.next_entry::<String, Option<RawRetention>>()? {
                    out.push((k, v.unwrap_or_default()));
                }
                Ok(RawRepositories(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// What is wrong with a regular expression, in one line: the `regex`
/// crate's syntax errors are a drawing of the pattern with a caret under the
/// fault, then `error: …`; the pattern is shown beside this anyway.
pub fn regex_problem(e: &regex::Error) -> String {
    let text = e.to_string();
    match text.lines().rev().find_map(|l| l.trim().strip_prefix("error: ")) {
        Some(problem) => problem.to_string(),
        None => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// How a value is shown in an error: strings as written, anything else as
/// compact JSON.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    }
}

fn invalid(key: &str, value: &Value, expected: &str) -> PolicyError {
    PolicyError::Invalid {
        key: key.to_string(),
        value: shown(value),
        expected: expected.to_string(),
    }
}

fn registry(v: &Value) -> Result<String, PolicyError> {
    const EXPECTED: &str = "expected a registry as HOST[:PORT], without a scheme or repository";
    match v {
        Value::String(s) if validate_host(s).is_ok() => Ok(s.clone()),
        _ => Err(invalid("registry", v, EXPECTED)),
    }
}

fn workspaces(v: &Value) -> Result<Vec<String>, PolicyError> {
    const EXPECTED: &str = "expected a list of workspace names, each once";
    let Value::Sequence(items) = v else {
        return Err(invalid("workspaces", v, EXPECTED));
    };
    let mut out: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("workspaces[{i}]");
        match item {
            Value::String(s) if !s.trim().is_empty() && s.trim() == s => {
                if out.contains(s) {
                    return Err(invalid(&key, item, "workspace listed twice"));
                }
                out.push(s.clone());
            }
            _ => return Err(invalid(&key, item, "expected a workspace name")),
        }
    }
    Ok(out)
}

impl RawRetention {
    /// Validates the fields that are set and takes the rest from `base`.
    fn resolve(&self, at: &str, base: &Retention) -> Result<Retention, PolicyError> {
        let key = |field: &str| format!("{at}.{field}");
        let mut r = base.clone();
        if let Some(v) = &self.keep_last {
            r.keep_last = count(&key("keep_last"), v, 0)?;
        }
        if let Some(v) = &self.protect_history {
            r.protect_history = count(&key("protect_history"), v, 1)?;
        }
        if let Some(v) = &self.keep_younger_than {
            let k = key("keep_younger_than");
            r.keep_younger_than = match v {
                Value::String(s) => s.parse().map_err(|e: PeriodError| invalid(&k, v, e.reason))?,
                Value::Number(_) => {
                    return Err(invalid(&k, v, "a duration needs a unit: w, d, h, m or s (e.g. `14d`)"));
                }
                _ => return Err(invalid(&k, v, PERIOD_GRAMMAR)),
            };
        }
        if let Some(v) = &self.keep_undated {
            r.keep_undated = match v {
                Value::Bool(b) => *b,
                _ => return Err(invalid(&key("keep_undated"), v, "expected true or false")),
            };
        }
        if let Some(v) = &self.keep_tags {
            let k = key("keep_tags");
            let Value::Sequence(items) = v else {
                return Err(invalid(
                    &k,
                    v,
                    "expected a list of regular expressions, e.g. ['^latest$']",
                ));
            };
            r.keep_tags = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let ki = format!("{k}[{i}]");
                let Value::String(pattern) = item else {
                    return Err(invalid(&ki, item, "expected a regular expression as a string"));
                };
                if pattern.is_empty() {
                    return Err(invalid(
                        &ki,
                        item,
                        "an empty pattern matches every tag; write `.*` if that is meant",
                    ));
                }
                let p = TagPattern::new(pattern).map_err(|e| PolicyError::Regex {
                    key: ki.clone(),
                    pattern: pattern.clone(),
                    reason: regex_problem(&e),
                })?;
                r.keep_tags.push(p);
            }
        }
        Ok(r)
    }
}

/// A whole number of at least `min`.
fn count(key: &str, v: &Value, min: u64) -> Result<usize, PolicyError> {
    let expected = if min == 0 {
        "expected a whole number, 0 or more".to_string()
    } else {
        format!("expected a whole number, {min} or more")
    };
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(x) if x >= min => usize::try_from(x).map_err(|_| invalid(key, v, "the number is too large")),
            _ => Err(invalid(key, v, &expected)),
        },
        _ => Err(invalid(key, v, &expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(yaml: &str) -> String {
        match yaml.parse::<Policy>() {
            Ok(p) => panic!("accepted: {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn ok(yaml: &str) -> Policy {
        yaml.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn registry_is_optional_and_checked() {
        assert_eq!(ok("defaults: {keep_last: 1}").registry, None);
        assert_eq!(ok("registry:\n").registry, None);
        for host in ["registry.example.com", "127.0.0.1:5000", "localhost:5000", "[::1]:5000"] {
            assert_eq!(ok(&format!("registry: '{host}'")).registry.as_deref(), Some(host));
        }
        for bad in [
            "registry: https://registry.example.com",
            "registry: registry.example.com/acme",
            "registry: 'registry.example.com:'",
            "registry: [a]",
            "registry: 5000",
        ] {
            let e = err(bad);
            assert!(e.contains("`registry` is") && e.contains("HOST[:PORT]"), "{bad}: {e}");
        }
    }

    #[test]
    fn workspaces_may_be_left_out_for_a_dry_run() {
        for yaml in [
            "defaults: {keep_last: 1}",
            "workspaces: []\ndefaults: {keep_last: 1}",
            "workspaces:\n",
        ] {
            assert!(ok(yaml).workspaces.is_empty(), "{yaml}");
        }
        assert_eq!(ok("defaults: {keep_last: 1}").defaults.keep_last, 1);
    }

    #[test]
    fn design_example_parses() {
        let p = ok(
            "workspaces: [dev, prod]     # deploy state of each is required before --apply
defaults:
  keep_last: 10
  keep_younger_than: 14d
  keep_tags: ['^latest$']
  protect_history: 3
  keep_undated: true
repositories:
  rednaw/hello-world: {keep_last: 5}
",
        );
        assert_eq!(p.workspaces, vec!["dev", "prod"]);
        assert_eq!(p.defaults, Retention::default());
        let r = p.retention_for("rednaw/hello-world");
        assert_eq!(r.keep_last, 5);
        assert_eq!(r.keep_younger_than.to_string(), "14d");
        assert_eq!(r.protect_history, 3);
        assert_eq!(p.retention_for("rednaw/other"), &p.defaults);
        assert!(p.rule_for("rednaw/other").is_none());
    }

    #[test]
    fn built_in_defaults() {
        let p = ok("workspaces: [dev]");
        let d = &p.defaults;
        assert_eq!(d.keep_last, 10);
        assert_eq!(d.keep_younger_than, Period::from_secs(14 * 86400));
        assert_eq!(
            d.keep_tags.iter().map(TagPattern::as_str).collect::<Vec<_>>(),
            ["^latest$"]
        );
        assert_eq!(d.protect_history, 3);
        assert!(d.keep_undated);
        assert!(p.repositories.is_empty());
    }

    #[test]
    fn overrides_fall_back_to_defaults_not_builtins() {
        let p = ok("workspaces: [dev]
defaults: {keep_last: 4, keep_undated: false}
repositories:
  a/b: {keep_tags: []}
");
        let r = p.retention_for("a/b");
        assert_eq!(r.keep_last, 4);
        assert!(!r.keep_undated);
        assert!(r.keep_tags.is_empty());
        assert_eq!(r.protect_history, 3);
    }

    #[test]
    fn exact_beats_glob_and_first_glob_wins() {
        let p = ok("workspaces: [dev]
repositories:
  'rednaw/*': {keep_last: 1}
  'rednaw/h*': {keep_last: 2}
  rednaw/hello: {keep_last: 3}
  'team/**': {keep_last: 4}
  rednaw/hi:
");
        assert_eq!(p.retention_for("rednaw/hello").keep_last, 3);
        assert_eq!(p.retention_for("rednaw/hx").keep_last, 1);
        assert_eq!(p.rule_for("rednaw/hx").unwrap().pattern, "rednaw/*");
        // An entry without settings still wins over globs, with the defaults.
        assert_eq!(p.rule_for("rednaw/hi").unwrap().pattern, "rednaw/hi");
        assert_eq!(p.retention_for("rednaw/hi"), &p.defaults);
        // `*` does not cross `/`; `**` does.
        assert_eq!(p.retention_for("rednaw/x/y").keep_last, 10);
        assert_eq!(p.retention_for("team/x/y").keep_last, 4);
        assert!(p.rule_for("rednaw/hello").is_some_and(|r| !r.is_glob()));
    }

    #[test]
    fn keep_tags_are_not_anchored_for_you() {
        let p = ok("workspaces: [dev]\ndefaults: {keep_tags: ['latest', '^v\\d+$']}");
        let r = &p.defaults;
        assert_eq!(r.kept_tag_pattern("not-latest").map(TagPattern::as_str), Some("latest"));
        assert_eq!(r.kept_tag_pattern("v12").map(TagPattern::as_str), Some("^v\\d+$"));
        assert!(r.kept_tag_pattern("v12a").is_none());
    }

    #[test]
    fn period_grammar() {
        let secs = |s: &str| s.parse::<Period>().unwrap().as_secs();
        assert_eq!(secs("14d"), 14 * 86400);
        assert_eq!(secs("12h"), 12 * 3600);
        assert_eq!(secs("30m"), 1800);
        assert_eq!(secs("2w"), 14 * 86400);
        assert_eq!(secs("45s"), 45);
        assert_eq!(secs("1d12h"), 36 * 3600);
        assert_eq!(secs("0d"), 0);
        for bad in [
            "",
            "14",
            "d",
            "-1d",
            "1.5d",
            "14 d",
            "14D",
            "1y",
            "1mo",
            "1d ",
            "99999999999999999999d",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad:?} accepted");
        }
        assert_eq!("2w".parse::<Period>().unwrap().to_string(), "14d");
        assert_eq!("90m".parse::<Period>().unwrap().to_string(), "1h30m");
        assert_eq!("0s".parse::<Period>().unwrap().to_string(), "0s");
        assert_eq!("1d12h".parse::<Period>().unwrap().as_time_delta(), TimeDelta::hours(36));
        let e = "14".parse::<Period>().unwrap_err().to_string();
        assert!(e.contains("`14`") && e.contains("unit"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_value() {
        let cases: &[(&str, &[&str])] = &[
            (
                "workspaces: [dev]\ndefaults: {keep_last: -1}",
                &["`defaults.keep_last`", "`-1`", "0 or more"],
            ),
            (
                "workspaces: [dev]\ndefaults: {keep_last: 2.5}",
                &["`defaults.keep_last`", "`2.5`"],
            ),
            (
                "workspaces: [dev]\ndefaults: {keep_last: ten}",
                &["`defaults.keep_last`", "`ten`"],
            ),
            (
                "workspaces: [dev]\ndefaults: {protect_history: 0}",
                &["`defaults.protect_history`", "`0`", "1 or more"],
            ),
            (
                "workspaces: [dev]\ndefaults: {keep_younger_than: 14}",
                &["`defaults.keep_younger_than`", "`14`", "unit"],
            ),
            (
                "workspaces: [dev]\ndefaults: {keep_younger_than: 2 weeks}",
                &["`defaults.keep_younger_than`", "`2 weeks`"],
            ),
            (
                "workspaces: [dev]\ndefaults: {keep_younger_than: -3d}",
                &["`defaults.keep_younger_than`", "`-3d`"],
            ),
            (
                "workspaces: [dev]\ndefaults: {keep_undated: yes}",
                &["`defaults.keep_undated`", "`yes`", "true or false"],
            ),
            (
                "workspaces: [dev]\ndefaults: {keep_tags: latest}",
                &["`defaults.keep_tags`", "`latest`", "list"],
            ),
            (
                "workspaces: [dev]\ndefaults: {keep_tags: [1]}",
                &["`defaults.keep_tags[0]`", "`1`"],
            ),
            (
                "workspaces: [dev]\ndefaults: {keep_tags: ['']}",
                &["`defaults.keep_tags[0]`", "every tag"],
            ),
            (
                "workspaces: [dev]\ndefaults: {keep_tags: ['^ok$', '^v(1$']}",
                &["`defaults.keep_tags[1]` is `^v(1$`, which is not a valid regular expression: unclosed group"],
            ),
            (
                "workspaces: [dev]\nrepositories: {'rednaw/*': {keep_last: -2}}",
                &["`repositories.rednaw/*.keep_last`", "`-2`"],
            ),
            (
                "workspaces: [dev]\nrepositories: {a/b: {protect_history: 0}}",
                &["`repositories.a/b.protect_history`", "`0`"],
            ),
            ("workspaces: [dev]\nrepositories: {'a/[b': {}}", &["`a/[b`", "glob"]),
            (
                "workspaces: [dev]\nrepositories: {Rednaw/App: {}}",
                &["`Rednaw/App`", "repository name"],
            ),
            (
                "workspaces: [dev]\nrepositories: {a/b: {}, 'a/b': {}}",
                &["`a/b`", "twice"],
            ),
            ("workspaces: dev", &["`workspaces`", "`dev`", "list"]),
            ("workspaces: [dev, dev]", &["`workspaces[1]`", "`dev`", "twice"]),
            ("workspaces: [dev, '']", &["`workspaces[1]`"]),
            ("workspaces: [dev, {a: 1}]", &["`workspaces[1]`", r#"`{"a":1}`"#]),
        ];
        for (yaml, needles) in cases {
            let e = err(yaml);
            for n in *needles {
                assert!(e.contains(n), "{yaml:?}: {e:?} does not contain {n:?}");
            }
        }
    }

    #[test]
    fn unknown_and_missing_keys_are_named() {
        let cases: &[(&str, &[&str])] = &[
            (
                "workspaces: [dev]\ndefaults: {keep_lst: 3}",
                &["defaults", "`keep_lst`"],
            ),
            (
                "workspaces: [dev]\nrepositories: {a/b: {keep_everything: true}}",
                &["repositories.a/b", "`keep_everything`"],
            ),
            ("workspaces: [dev]\nretention: {}", &["`retention`"]),
            ("workspaces: [dev]\nrepositories: [a/b]", &["repositories"]),
            (
                "- a\n- b",
                &["invalid policy", "`workspaces`, `defaults` and `repositories`"],
            ),
            (
                "workspaces: [dev]\nrepositories: {a/b: [1]}",
                &["repositories.a/b", "`keep_last`"],
            ),
        ];
        for (yaml, needles) in cases {
            let e = err(yaml);
            for n in *needles {
                assert!(e.contains(n), "{yaml:?}: {e:?} does not contain {n:?}");
            }
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("policy.yml");
        std::fs::write(&p, "workspaces: [dev]\ndefaults: {keep_last: -1}\n").unwrap();
        let e = Policy::load(&p).unwrap_err();
        assert!(e.to_string().contains("policy.yml"), "{e}");
        let cause = std::error::Error::source(&e).unwrap().to_string();
        assert!(cause.contains("`defaults.keep_last`"), "{cause}");
        let missing = dir.path().join("missing.yml");
        assert!(Policy::load(&missing).unwrap_err().to_string().contains("missing.yml"));
        std::fs::write(&p, "workspaces: [dev]\n").unwrap();
        assert_eq!(Policy::load(&p).unwrap().workspaces, ["dev"]);
    }

    #[test]
    fn retention_serialises_for_the_plan() {
        let p = ok("workspaces: [dev]\ndefaults: {keep_younger_than: 2w}");
        let v = serde_json::to_value(&p.defaults).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"keep_last": 10, "keep_younger_than": "14d", "keep_tags": ["^latest$"],
                               "protect_history": 3, "keep_undated": true})
        );
    }
}
