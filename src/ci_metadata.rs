//! CI-time image metadata: the one tag and the four OCI labels that CI bakes
//! into an image, read from git and rendered for `docker buildx build`, for
//! JSON consumers and for GitHub Actions' `$GITHUB_OUTPUT`.
//!
//! What holds:
//!
//! - tag = the first 7 characters of the full commit SHA (`revision[:7]`,
//!   exactly, never git's adaptive `%h`), so every downstream check of
//!   "tag == revision[:7]" holds by construction;
//! - `created` is the *committer* time of HEAD in RFC 3339 UTC with seconds
//!   (`2026-01-25T01:01:33Z`) — the same clock `SOURCE_DATE_EPOCH` uses, so a
//!   rebuild of the same commit gets the same label;
//! - `description` is git's subject (`%s`: the first paragraph, lines joined
//!   by spaces), so it never holds a newline; it is data and every renderer
//!   treats it as such — nothing in a commit is ever evaluated;
//! - `source` is a web address `https://host/owner/repo` without `.git`,
//!   userinfo, query or fragment, so credentials in a remote never leak into
//!   an image (see [`SourceUrl`]).
//!
//! Repository states: a detached HEAD is normal in CI and needs nothing
//! special. A dirty work tree yields a warning and the labels of HEAD —
//! CI labels describe the commit, and build steps routinely leave files
//! behind; callers that want a hard stop ask for [`DirtyPolicy::Refuse`]
//! (`--require-clean`). No commit, no `origin` remote (without an explicit
//! source) and a remote that is a local path are errors.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::reference::{Reference, Tag};

/// The label keys: one definition for what CI writes and what the registry
/// side reads.
pub use crate::metadata::{LABEL_CREATED, LABEL_DESCRIPTION, LABEL_REVISION, LABEL_SOURCE};

/// Length of the short SHA that is the image's only tag.
pub const SHORT_SHA_LEN: usize = 7;

/// Why labels could not be produced. Messages name the bad value; a remote
/// URL in a message is always redacted (see [`redact_url`]).
#[derive(Debug, thiserror::Error)]
pub enum CiMetadataError {
    #[error("repository directory `{0}` does not exist")]
    NoSuchDirectory(PathBuf),
    #[error("`{dir}` is not a git repository")]
    NotARepository {
        dir: PathBuf,
        #[source]
        cause: GitMessage,
    },
    #[error("repository `{0}` has no commit yet")]
    NoCommit(PathBuf),
    #[error("repository `{0}` has no `origin` remote")]
    NoRemote(PathBuf),
    #[error("work tree `{dir}` has uncommitted changes ({paths} {})", plural(*paths, "path"))]
    Dirty { dir: PathBuf, paths: usize },
    #[error("cannot use `{url}` as the image source")]
    Source {
        url: String,
        #[source]
        cause: SourceError,
    },
    #[error("cannot run `git`")]
    GitSpawn(#[source] io::Error),
    #[error("`git {command}` failed in `{dir}`")]
    GitFailed {
        command: String,
        dir: PathBuf,
        #[source]
        cause: GitMessage,
    },
    #[error("unexpected output from `git {command}`: {detail}")]
    GitOutput { command: String, detail: String },
}

impl CiMetadataError {
    /// Whether the error is about what the caller gave (arguments, the
    /// repository's state) rather than a failure to run git: exit code 2.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(
            self,
            CiMetadataError::GitSpawn(_) | CiMetadataError::GitFailed { .. } | CiMetadataError::GitOutput { .. }
        )
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            CiMetadataError::NoSuchDirectory(_) | CiMetadataError::NotARepository { .. } => {
                "run inside a git checkout or pass `--repo-dir DIR`"
            }
            CiMetadataError::NoCommit(_) => "commit first: image labels describe a commit",
            CiMetadataError::NoRemote(_) => {
                "pass `--source https://HOST/OWNER/REPO`, or add the remote with `git remote add origin URL`"
            }
            CiMetadataError::Dirty { .. } => {
                "commit the changes, or drop `--require-clean` to label HEAD with a warning"
            }
            CiMetadataError::Source { .. } => "pass `--source https://HOST/OWNER/REPO`",
            CiMetadataError::GitSpawn(_) => "install git and make sure it is on `PATH`",
            CiMetadataError::GitFailed { .. } | CiMetadataError::GitOutput { .. } => return None,
        })
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { word.to_string() } else { format!("{word}s") }
}

/// What git said on stderr, kept as an error so it shows as `caused by:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitMessage(pub String);

impl fmt::Display for GitMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.trim();
        if text.is_empty() {
            f.write_str("git printed nothing")
        } else {
            f.write_str(text)
        }
    }
}

impl std::error::Error for GitMessage {}

/// Why a remote URL has no web address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("the URL is empty")]
    Empty,
    #[error("it is a local path, not a hosted repository")]
    LocalPath,
    #[error("scheme `{0}` is not one of https, http, ssh, git")]
    UnsupportedScheme(String),
    #[error("invalid host `{0}`")]
    InvalidHost(String),
    #[error("invalid port `{0}`")]
    InvalidPort(String),
    #[error("it names no repository path")]
    NoPath,
    #[error("path segment `{0}` is not allowed")]
    InvalidPathSegment(String),
}

/// A repository's web address, normalised from any remote URL form git
/// accepts for a hosted repository:
///
/// | remote                                    | source                        |
/// |-------------------------------------------|-------------------------------|
/// | `git@host:owner/repo.git`                 | `https://host/owner/repo`     |
/// | `ssh://git@host:22/owner/repo.git`        | `https://host/owner/repo`     |
/// | `git://host/owner/repo.git`               | `https://host/owner/repo`     |
/// | `https://user:token@host/owner/repo.git`  | `https://host/owner/repo`     |
/// | `https://host:8443/owner/repo/`           | `https://host:8443/owner/repo`|
/// | `http://host:3000/owner/repo.git`         | `http://host:3000/owner/repo` |
///
/// Userinfo, query and fragment are dropped (they are where tokens hide).
/// The host is lower-cased. SSH and git-protocol ports are dropped: they say
/// nothing about where the web interface listens. An `http` remote stays
/// `http` — rewriting it could point at nothing — and an explicit port of an
/// http(s) remote is kept. Local paths and `file://` have no web address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceUrl(String);

impl SourceUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SourceUrl {
    type Err = SourceError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(SourceError::Empty);
        }
        let (web_scheme, host_port, path, keep_port) = if let Some((scheme, rest)) = s.split_once("://") {
            let scheme = scheme.to_ascii_lowercase();
            let (web_scheme, keep_port) = match scheme.as_str() {
                "https" => ("https", true),
                "http" => ("http", true),
                "ssh" | "git+ssh" | "ssh+git" | "git" => ("https", false),
                "file" => return Err(SourceError::LocalPath),
                _ => return Err(SourceError::UnsupportedScheme(scheme)),
            };
            let rest = rest.split(['?', '#']).next().unwrap_or_default();
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            // Passwords may hold a raw `@`; the host follows the last one.
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            (web_scheme, host_port.to_string(), path.to_string(), keep_port)
        } else {
            let (host_port, path) = split_scp_like(s).ok_or(SourceError::LocalPath)?;
            ("https", host_port, path, false)
        };

        let (host, port) = split_host_port(&host_port)?;
        let port = if keep_port { port } else { None };

        let path = path.trim_end_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let segments: Vec<&str> = path.split('/').filter(|seg| !seg.is_empty()).collect();
        if segments.is_empty() {
            return Err(SourceError::NoPath);
        }
        if let Some(bad) = segments.iter().find(|seg| matches!(**seg, "." | "..")) {
            return Err(SourceError::InvalidPathSegment(bad.to_string()));
        }

        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let text = format!("{web_scheme}://{host}{port}/{}", segments.join("/"));
        // The url crate percent-encodes what needs it and drops default ports.
        let url = url::Url::parse(&text).map_err(|_| SourceError::InvalidHost(host.clone()))?;
        Ok(SourceUrl(url.as_str().trim_end_matches('/').to_string()))
    }
}

/// `[user@]host:path` as git reads it: no `://`, and a `:` before any `/`.
/// `[user@host:port]:path` and `[v6addr]:path` keep their brackets' content
/// together. Returns `(host, path)` with userinfo removed.
fn split_scp_like(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((inside, after)) = rest.split_once(']')
        && inside.contains('@')
    {
        // `[user@host:port]:path`: the port is SSH's; drop it.
        let path = after.strip_prefix(':')?;
        let host = inside.rsplit_once('@').map_or(inside, |(_, h)| h);
        let host = host.split(':').next().unwrap_or(host);
        return Some((host.to_string(), path.to_string()));
    }
    // An optional `user@` before the host (a user never holds `:` or `/`),
    // or a `user:password@` written by mistake (see `scp_credentials`).
    let rest = match (scp_credentials(s), s.split_once('@')) {
        (Some(at), _) => &s[at + 1..],
        (None, Some((user, rest))) if !user.contains([':', '/']) => rest,
        _ => s,
    };
    if let Some(v6) = rest.strip_prefix('[') {
        let (ip, after) = v6.split_once(']')?;
        return Some((format!("[{ip}]"), after.strip_prefix(':')?.to_string()));
    }
    let (host, path) = rest.split_once(':')?;
    // `dir/x:y` is a path; so is `C:\x` (a drive letter, as git reads it).
    if host.contains('/') || (host.len() == 1 && host.bytes().all(|b| b.is_ascii_alphabetic())) {
        return None;
    }
    Some((host.to_string(), path.to_string()))
}

/// Where a `user:password@` ends in an scp-like remote, if it holds one:
/// the index of the `@`. That is not git's syntax (git would read the host
/// `user`, a remote that cannot work), but a credential written by mistake,
/// and the password (which may hold `@`, `/` or `:`) must never reach a
/// label or a message. Taken as such when the text before an `@` holds a
/// `:` and the text after it looks like `host:path` (`[v6]:path`), valid or
/// not (a bad host is then refused by name, without the password); the
/// rightmost such `@` (a password may hold `@`; a path after the host
/// rarely does).
fn scp_credentials(s: &str) -> Option<usize> {
    s.char_indices()
        .rev()
        .filter(|&(_, c)| c == '@')
        .map(|(i, _)| i)
        .find(|&at| {
            let (before, after) = (&s[..at], &s[at + 1..]);
            let host = if after.starts_with('[') {
                after.split_once("]:").map(|(h, _)| h)
            } else {
                after.split_once(':').map(|(h, _)| h)
            };
            before.contains(':') && host.is_some_and(|h| !h.is_empty() && !h.contains(['/', '@']))
        })
}

/// Splits `host[:port]` / `[v6][:port]`, lower-casing and checking the host.
fn split_host_port(host_port: &str) -> Result<(String, Option<u16>), SourceError> {
    let bad_host = || SourceError::InvalidHost(host_port.to_string());
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad_host)?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| bad_host())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad_host)?),
        };
        (format!("[{}]", ip.to_ascii_lowercase()), port)
    } else {
        let (h, p) = match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        };
        let h = h.to_ascii_lowercase();
        let ok = !h.is_empty()
            && h.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !ok {
            return Err(bad_host());
        }
        (h, p)
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(p.parse::<u16>().map_err(|_| SourceError::InvalidPort(p.to_string()))?),
    };
    Ok((host, port))
}

/// `url` with any userinfo that may hold a secret and any query or fragment
/// replaced by `***`, for error messages. The `user@` of an scp-like remote
/// is kept: that form has no room for a password; a `user:password@` written
/// into one anyway is replaced.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return match scp_credentials(url) {
            Some(at) => format!("***@{}", &url[at + 1..]),
            None => url.to_string(),
        };
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let tail = match tail.find(['?', '#']) {
        Some(i) => format!("{}{}***", &tail[..i], &tail[i..i + 1]),
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The tag and labels of one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLabels {
    /// `revision[:7]`.
    pub tag: Tag,
    /// Full commit SHA (40 hex, or 64 in a SHA-256 repository).
    pub revision: String,
    /// Commit subject.
    pub description: String,
    /// Committer time of the commit.
    pub created: DateTime<Utc>,
    /// The repository's web address.
    pub source: SourceUrl,
}

/// The result of reading a repository: labels plus anything the user should
/// hear about on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelsReport {
    pub labels: ImageLabels,
    pub warnings: Vec<String>,
}

/// What to do when the work tree has uncommitted or untracked changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirtyPolicy {
    /// Label HEAD and warn: the labels describe the commit, not the tree.
    #[default]
    Warn,
    /// Fail with [`CiMetadataError::Dirty`].
    Refuse,
}

/// Output formats of `image_labels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Shell-quoted `--tag`/`--label` arguments for `docker buildx build`.
    Args,
    /// `{"tag": …, "labels": {…}}` on one line.
    #[default]
    Json,
    /// `name=value` lines for `$GITHUB_OUTPUT`.
    Github,
}

impl ImageLabels {
    /// Builds labels from the facts of a commit; checks the SHA so the tag
    /// is always a valid tag and a prefix of the revision.
    pub fn new(
        revision: &str,
        description: &str,
        created: DateTime<Utc>,
        source: SourceUrl,
    ) -> Result<ImageLabels, CiMetadataError> {
        let is_sha = matches!(revision.len(), 40 | 64)
            && revision
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_sha {
            return Err(CiMetadataError::GitOutput {
                command: "log".into(),
                detail: format!("`{revision}` is not a full commit SHA"),
            });
        }
        let tag = revision[..SHORT_SHA_LEN]
            .parse::<Tag>()
            .map_err(|e| CiMetadataError::GitOutput {
                command: "log".into(),
                detail: e.to_string(),
            })?;
        Ok(ImageLabels {
            tag,
            revision: revision.to_string(),
            description: description.to_string(),
            created,
            source,
        })
    }

    /// `created` as the label holds it: RFC 3339 UTC, whole seconds, `Z`.
    pub fn created_rfc3339(&self) -> String {
        self.created.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// The four labels, keyed by their OCI names, in a fixed order.
    pub fn labels(&self) -> [(&'static str, String); 4] {
        [
            (LABEL_REVISION, self.revision.clone()),
            (LABEL_DESCRIPTION, self.description.clone()),
            (LABEL_CREATED, self.created_rfc3339()),
            (LABEL_SOURCE, self.source.to_string()),
        ]
    }

    /// One line of JSON: `{"tag": …, "labels": {<key>: <value>, …}}`, keys
    /// in the order of [`Self::labels`].
    pub fn to_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            tag: &'a str,
            labels: Labels<'a>,
        }
        #[derive(serde::Serialize)]
        struct Labels<'a> {
            #[serde(rename = "org.opencontainers.image.revision")]
            revision: &'a str,
            #[serde(rename = "org.opencontainers.image.description")]
            description: &'a str,
            #[serde(rename = "org.opencontainers.image.created")]
            created: String,
            #[serde(rename = "org.opencontainers.image.source")]
            source: &'a str,
        }
        let doc = Doc {
            tag: self.tag.as_str(),
            labels: Labels {
                revision: &self.revision,
                description: &self.description,
                created: self.created_rfc3339(),
                source: self.source.as_str(),
            },
        };
        // Strings only: serialisation cannot fail.
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// `docker buildx build` arguments on one line, every value in POSIX
    /// single quotes: `--tag 'T' --label 'K=V' …`. Word-split by a shell
    /// (`eval "set -- $ARGS"`) they give back the exact values and nothing
    /// in them is expanded. With `image`, the tag is `IMAGE:SHORTSHA`;
    /// without, it is the bare short SHA for the caller to prefix.
    pub fn to_args(&self, image: Option<&Reference>) -> String {
        let tag = match image {
            Some(image) => image.with_tag(self.tag.clone()).to_string(),
            None => self.tag.to_string(),
        };
        let mut words = vec!["--tag".to_string(), shell_quote(&tag)];
        for (key, value) in self.labels() {
            words.push("--label".into());
            words.push(shell_quote(&format!("{key}={value}")));
        }
        words.join(" ")
    }

    /// `$GITHUB_OUTPUT` lines for the outputs `tag`, `revision`,
    /// `description`, `created` and `source`. A value holding a line break
    /// uses the `name<<DELIMITER` form with a random delimiter that does not
    /// occur in the value, so no value can end its entry early or forge
    /// another output.
    pub fn to_github_output(&self) -> String {
        self.to_github_output_with(random_delimiter)
    }

    /// [`Self::to_github_output`] with the delimiter source given, for tests.
    pub fn to_github_output_with(&self, mut delimiter: impl FnMut() -> String) -> String {
        let outputs = [
            ("tag", self.tag.to_string()),
            ("revision", self.revision.clone()),
            ("description", self.description.clone()),
            ("created", self.created_rfc3339()),
            ("source", self.source.to_string()),
        ];
        let mut out = String::new();
        for (name, value) in outputs {
            out.push_str(&github_output_entry(name, &value, &mut delimiter));
        }
        out
    }

    /// Renders in `format`. `image` is used by [`Format::Args`] only.
    pub fn render(&self, format: Format, image: Option<&Reference>) -> String {
        match format {
            Format::Args => self.to_args(image) + "\n",
            Format::Json => self.to_json() + "\n",
            Format::Github => self.to_github_output(),
        }
    }
}

/// One `$GITHUB_OUTPUT` entry, newline-terminated.
fn github_output_entry(name: &str, value: &str, delimiter: &mut impl FnMut() -> String) -> String {
    if !value.contains(['\n', '\r']) {
        return format!("{name}={value}\n");
    }
    // The runner ends the value at the first line equal to the delimiter.
    let delim = loop {
        let d = delimiter();
        if !d.is_empty() && !value.contains(&d) {
            break d;
        }
    };
    format!("{name}<<{delim}\n{value}\n{delim}\n")
}

/// `ghadelimiter_` and 32 hex digits, as GitHub's own toolkit writes them.
/// The hex comes from std's randomly keyed SipHash: unpredictable to whoever
/// wrote the commit, which is all the delimiter needs.
fn random_delimiter() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut text = String::from("ghadelimiter_");
    for salt in 0u8..2 {
        let mut hasher = std::hash::RandomState::new().build_hasher();
        hasher.write_u8(salt);
        text.push_str(&format!("{:016x}", hasher.finish()));
    }
    text
}

/// `value` in POSIX single quotes; a `'` becomes `'\''`. Inside single quotes
/// a POSIX shell expands nothing, so this is the whole of safe quoting.
pub fn shell_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Parses `--image`: an image name without tag or digest.
pub fn parse_image_name(s: &str) -> Result<Reference, String> {
    let reference = s.parse::<Reference>().map_err(|e| e.to_string())?;
    if reference.tag.is_some() || reference.digest.is_some() {
        return Err(format!(
            "image `{s}` has a tag or digest; give the name only, the tag is the short SHA"
        ));
    }
    Ok(reference)
}

/// Reads the labels of HEAD in the repository at `dir`. `source`, when
/// given, replaces the `origin` remote.
pub fn labels_from_repo(
    dir: &Path,
    source: Option<SourceUrl>,
    dirty: DirtyPolicy,
) -> Result<LabelsReport, CiMetadataError> {
    // A path that exists but is no directory gets git's own message.
    if !dir.exists() {
        return Err(CiMetadataError::NoSuchDirectory(dir.to_path_buf()));
    }
    let git = Git { dir };
    let mut warnings = Vec::new();

    let inside = git.run(&["rev-parse", "--is-inside-work-tree"])?;
    if !inside.status.success() {
        return Err(CiMetadataError::NotARepository {
            dir: dir.to_path_buf(),
            cause: GitMessage(String::from_utf8_lossy(&inside.stderr).into_owned()),
        });
    }
    let has_work_tree = inside.stdout.trim_ascii() == b"true";

    // `--verify --quiet` exits 1 without a message when HEAD is unborn.
    let head = git.run(&["rev-parse", "--verify", "--quiet", "--end-of-options", "HEAD^{commit}"])?;
    if !head.status.success() {
        if head.status.code() == Some(1) {
            return Err(CiMetadataError::NoCommit(dir.to_path_buf()));
        }
        return Err(git.failed("rev-parse HEAD", &head));
    }
    let sha = String::from_utf8_lossy(head.stdout.trim_ascii()).into_owned();

    // %ct is seconds since the epoch: no offset to misparse. %s is the
    // subject; NUL cannot occur in a commit message, so it separates safely.
    let log = git.run(&[
        "log",
        "-1",
        "--no-color",
        "--no-show-signature",
        "--encoding=UTF-8",
        "--format=%H%x00%ct%x00%s",
        &sha,
        "--",
    ])?;
    if !log.status.success() {
        return Err(git.failed("log", &log));
    }
    let text = log.stdout.strip_suffix(b"\n").unwrap_or(&log.stdout);
    let fields: Vec<&[u8]> = text.split(|&b| b == 0).collect();
    let [revision, time, subject] = fields[..] else {
        return Err(CiMetadataError::GitOutput {
            command: "log".into(),
            detail: format!("expected 3 NUL-separated fields, got {}", fields.len()),
        });
    };
    let revision = String::from_utf8_lossy(revision).into_owned();
    let created = std::str::from_utf8(time)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0))
        .ok_or_else(|| CiMetadataError::GitOutput {
            command: "log".into(),
            detail: format!(
                "commit time `{}` is not seconds since the epoch",
                String::from_utf8_lossy(time)
            ),
        })?;
    let description = match std::str::from_utf8(subject) {
        Ok(s) => s.to_string(),
        Err(_) => {
            warnings.push(format!(
                "the subject of commit `{sha}` is not valid UTF-8; invalid bytes are replaced by U+FFFD"
            ));
            String::from_utf8_lossy(subject).into_owned()
        }
    };

    if has_work_tree {
        let status = git.run(&["status", "--porcelain=v1", "-z", "--untracked-files=normal"])?;
        if !status.status.success() {
            return Err(git.failed("status", &status));
        }
        let paths = status.stdout.split(|&b| b == 0).filter(|e| !e.is_empty()).count();
        if paths > 0 {
            match dirty {
                DirtyPolicy::Refuse => {
                    return Err(CiMetadataError::Dirty {
                        dir: dir.to_path_buf(),
                        paths,
                    });
                }
                DirtyPolicy::Warn => warnings.push(format!(
                    "work tree `{}` has uncommitted changes ({paths} {}); the labels describe commit `{sha}`, not them",
                    dir.display(),
                    plural(paths, "path")
                )),
            }
        }
    }

    let source = match source {
        Some(source) => source,
        None => {
            let remote = git.run(&["remote", "get-url", "origin"])?;
            if !remote.status.success() {
                // Exit 2 is git's "no such remote"; anything else is a failure.
                if remote.status.code() == Some(2) {
                    return Err(CiMetadataError::NoRemote(dir.to_path_buf()));
                }
                return Err(git.failed("remote get-url origin", &remote));
            }
            let url = String::from_utf8_lossy(remote.stdout.trim_ascii()).into_owned();
            url.parse::<SourceUrl>().map_err(|cause| CiMetadataError::Source {
                url: redact_url(&url),
                cause,
            })?
        }
    };

    Ok(LabelsReport {
        labels: ImageLabels::new(&revision, &description, created, source)?,
        warnings,
    })
}

/// Parses `--source`; the error holds a redacted URL.
pub fn parse_source(url: &str) -> Result<SourceUrl, CiMetadataError> {
    url.parse::<SourceUrl>().map_err(|cause| CiMetadataError::Source {
        url: redact_url(url),
        cause,
    })
}

/// Runs git in one repository, always as an argument vector (no shell) and
/// with an environment that makes its output independent of where it runs.
struct Git<'a> {
    dir: &'a Path,
}

impl Git<'_> {
    fn run(&self, args: &[&str]) -> Result<Output, CiMetadataError> {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(self.dir).args(args);
        // Variables that would point git at another repository than `dir`
        // (set, for instance, when run from a git hook).
        for var in [
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_COMMON_DIR",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
            "GIT_NAMESPACE",
        ] {
            cmd.env_remove(var);
        }
        // LC_ALL=C: git's messages, shown as causes, in one language. No
        // prompts; `status` must not take the index lock (a concurrent git
        // in CI would fail); replace refs must not alter the commit we read.
        // GIT_CONFIG_NOSYSTEM is deliberately not set: CI images put
        // `safe.directory` in the system config, and the output formats
        // above are explicit, so system config cannot change our results.
        cmd.env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .stdin(Stdio::null());
        cmd.output().map_err(CiMetadataError::GitSpawn)
    }

    fn failed(&self, command: &str, output: &Output) -> CiMetadataError {
        CiMetadataError::GitFailed {
            command: command.into(),
            dir: self.dir.to_path_buf(),
            cause: GitMessage(String::from_utf8_lossy(&output.stderr).into_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(s: &str) -> String {
        s.parse::<SourceUrl>()
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn remote_forms_normalise_to_one_web_address() {
        let want = "https://github.com/rednaw/hello-world";
        for remote in [
            "git@github.com:rednaw/hello-world.git",
            "git@github.com:rednaw/hello-world",
            "github.com:rednaw/hello-world.git",
            "ssh://git@github.com:22/rednaw/hello-world.git",
            "ssh://git@github.com/rednaw/hello-world.git",
            "git+ssh://git@github.com/rednaw/hello-world.git",
            "git://github.com/rednaw/hello-world.git",
            "https://github.com/rednaw/hello-world.git",
            "https://github.com/rednaw/hello-world",
            "https://github.com/rednaw/hello-world/",
            "https://github.com/rednaw/hello-world.git/",
            "https://user:token@github.com/rednaw/hello-world.git",
            "https://x-access-token:ghs_abc@github.com/rednaw/hello-world",
            "https://user:p@ss@github.com/rednaw/hello-world.git",
            // Not git's syntax, but a credential written by mistake: the
            // password is dropped, never carried into the label.
            "user:s3cret@github.com:rednaw/hello-world.git",
            "user:p@ss@github.com:rednaw/hello-world",
            "user:pa/ss+x:y@github.com:rednaw/hello-world.git",
            "user:pw@github.com:rednaw/hello-world",
            "HTTPS://GitHub.COM/rednaw/hello-world.git",
            "https://github.com:443/rednaw/hello-world",
            "https://github.com/rednaw/hello-world.git?private_token=abc#frag",
            "  https://github.com/rednaw/hello-world.git\n",
        ] {
            assert_eq!(src(remote), want, "remote {remote:?}");
        }
    }

    #[test]
    fn ports_subgroups_and_ipv6() {
        assert_eq!(
            src("https://git.example.org:8443/team/app.git"),
            "https://git.example.org:8443/team/app"
        );
        assert_eq!(
            src("http://localhost:3000/team/app.git"),
            "http://localhost:3000/team/app"
        );
        assert_eq!(
            src("ssh://git@git.example.org:2222/team/app.git"),
            "https://git.example.org/team/app"
        );
        assert_eq!(
            src("git@gitlab.com:group/sub/app.git"),
            "https://gitlab.com/group/sub/app"
        );
        assert_eq!(
            src("[git@git.example.org:2222]:team/app.git"),
            "https://git.example.org/team/app"
        );
        assert_eq!(src("git@[::1]:team/app.git"), "https://[::1]/team/app");
        assert_eq!(src("[::1]:team/app.git"), "https://[::1]/team/app");
        assert_eq!(src("https://[::1]:8080/team/app"), "https://[::1]:8080/team/app");
        assert_eq!(src("https://host/team/my%20app.git"), "https://host/team/my%20app");
        assert_eq!(src("https://host/team/my app.git"), "https://host/team/my%20app");
    }

    #[test]
    fn remotes_without_a_web_address_are_refused() {
        assert_eq!(src(""), "error: the URL is empty");
        assert_eq!(
            src("/srv/git/app.git"),
            "error: it is a local path, not a hosted repository"
        );
        assert_eq!(src("./app"), "error: it is a local path, not a hosted repository");
        assert_eq!(src("../a:b"), "error: it is a local path, not a hosted repository");
        assert_eq!(
            src("C:\\git\\app"),
            "error: it is a local path, not a hosted repository"
        );
        assert_eq!(
            src("file:///srv/git/app.git"),
            "error: it is a local path, not a hosted repository"
        );
        assert_eq!(
            src("ftp://host/app"),
            "error: scheme `ftp` is not one of https, http, ssh, git"
        );
        assert_eq!(src("https://host"), "error: it names no repository path");
        assert_eq!(src("https://host/.git"), "error: it names no repository path");
        assert_eq!(src("git@host:"), "error: it names no repository path");
        assert_eq!(src("https://host/a/../b"), "error: path segment `..` is not allowed");
        assert_eq!(src("https://ho$t/a"), "error: invalid host `ho$t`");
        assert_eq!(src("https://host:99999/a"), "error: invalid port `99999`");
        assert_eq!(src("https://user:secret@/a"), "error: invalid host ``");
    }

    #[test]
    fn redaction_hides_userinfo_query_and_fragment() {
        assert_eq!(redact_url("https://user:s3cret@host/a.git"), "https://***@host/a.git");
        assert_eq!(redact_url("https://user:p@ss@host"), "https://***@host");
        assert_eq!(redact_url("https://host/a?token=s3cret#x"), "https://host/a?***");
        assert_eq!(redact_url("git@host:a/b.git"), "git@host:a/b.git");
        assert_eq!(redact_url("user:s3cret@host:a/b.git"), "***@host:a/b.git");
        assert_eq!(redact_url("user:p@ss@host:a/b.git"), "***@host:a/b.git");
        assert_eq!(redact_url("user:pa/ss@host:a/b.git"), "***@host:a/b.git");
        // git's own reading where nothing after an `@` is `host:path`.
        assert_eq!(redact_url("a:b@c"), "a:b@c");
        assert_eq!(redact_url("host:repo@x"), "host:repo@x");
        assert_eq!(src("ab:c@d"), "https://ab/c@d");
        // Whatever follows the credential, the password never shows.
        for (remote, want) in [
            ("user:pw@[::1]:a/b", "https://[::1]/a/b"),
            ("user:pw@github.com.:a/b", "error: invalid host `github.com.`"),
            ("user:pw@host:", "error: it names no repository path"),
            ("me@corp.com:pw@github.com:a/b", "https://github.com/a/b"),
        ] {
            assert_eq!(src(remote), want, "{remote}");
            assert!(!redact_url(remote).contains("pw"), "{remote}: {}", redact_url(remote));
        }
        assert_eq!(src("host:team/repo@x"), "https://host/team/repo@x");
    }

    fn sample(description: &str) -> ImageLabels {
        ImageLabels::new(
            "eb53023a1c2b3d4e5f60718293a4b5c6d7e8f901",
            description,
            "2026-01-25T01:01:33Z".parse().unwrap(),
            "https://github.com/rednaw/hello-world".parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn json_holds_tag_and_the_four_labels() {
        assert_eq!(
            sample("say \"hi\" $(x) `y`\u{e9}").to_json(),
            r#"{"tag":"eb53023","labels":{"org.opencontainers.image.revision":"eb53023a1c2b3d4e5f60718293a4b5c6d7e8f901","org.opencontainers.image.description":"say \"hi\" $(x) `y`é","org.opencontainers.image.created":"2026-01-25T01:01:33Z","org.opencontainers.image.source":"https://github.com/rednaw/hello-world"}}"#
        );
    }

    #[test]
    fn args_quote_every_value() {
        assert_eq!(
            sample("it's $(rm -rf /)").to_args(None),
            "--tag 'eb53023' \
             --label 'org.opencontainers.image.revision=eb53023a1c2b3d4e5f60718293a4b5c6d7e8f901' \
             --label 'org.opencontainers.image.description=it'\\''s $(rm -rf /)' \
             --label 'org.opencontainers.image.created=2026-01-25T01:01:33Z' \
             --label 'org.opencontainers.image.source=https://github.com/rednaw/hello-world'"
        );
        let image = parse_image_name("registry.rednaw.nl/rednaw/hello-world").unwrap();
        assert!(
            sample("x")
                .to_args(Some(&image))
                .starts_with("--tag 'registry.rednaw.nl/rednaw/hello-world:eb53023' --label ")
        );
    }

    #[test]
    fn shell_quote_edge_cases() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("'"), "''\\'''");
        assert_eq!(shell_quote("a\nb"), "'a\nb'");
    }

    #[test]
    fn image_name_must_not_carry_a_tag() {
        assert!(parse_image_name("registry.rednaw.nl/rednaw/hello-world:latest").is_err());
        assert!(parse_image_name("registry.rednaw.nl/rednaw/hello-world@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef").is_err());
        assert!(parse_image_name("Bad/Name").is_err());
    }

    #[test]
    fn github_output_uses_a_heredoc_only_for_line_breaks() {
        let mut n = 0;
        let mut delims = || {
            n += 1;
            // The first candidate occurs in the value and must be skipped.
            if n == 1 { "EOF".to_string() } else { format!("D{n}") }
        };
        let out = sample("line one\nEOF\r\nline three").to_github_output_with(&mut delims);
        assert_eq!(
            out,
            "tag=eb53023\n\
             revision=eb53023a1c2b3d4e5f60718293a4b5c6d7e8f901\n\
             description<<D2\nline one\nEOF\r\nline three\nD2\n\
             created=2026-01-25T01:01:33Z\n\
             source=https://github.com/rednaw/hello-world\n"
        );
        assert_eq!(
            sample("a=b c").to_github_output_with(|| unreachable!()).lines().nth(2),
            Some("description=a=b c")
        );
    }

    #[test]
    fn random_delimiters_differ() {
        let (a, b) = (random_delimiter(), random_delimiter());
        assert_ne!(a, b);
        assert_eq!(a.len(), "ghadelimiter_".len() + 32);
    }

    #[test]
    fn revision_must_be_a_full_sha() {
        let created = "2026-01-25T01:01:33Z".parse().unwrap();
        let source: SourceUrl = "https://h/o/r".parse().unwrap();
        assert!(ImageLabels::new("eb53023", "x", created, source.clone()).is_err());
        assert!(ImageLabels::new(&"A".repeat(40), "x", created, source.clone()).is_err());
        assert_eq!(
            ImageLabels::new(&"a".repeat(64), "x", created, source)
                .unwrap()
                .tag
                .as_str(),
            "aaaaaaa"
        );
    }
}
