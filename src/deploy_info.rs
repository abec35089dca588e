//! The deploy-info record: what runs where, written on the host after a
//! successful deploy and never recomputed.
//!
//! Files, per app, in `<root>/<org>/<app>/` (root `/opt` by default):
//!
//! - `deploy-info.yml`: the current [`DeployRecord`], keys in the order
//!   `app, workspace, image, tag, digest, description, deployed_at,
//!   deployed_by, built_at, revision, source` (absent values are `null`).
//! - `deploy-history.yml`: a YAML list of the same records, oldest first,
//!   the current one last, trimmed to `history_limit` entries.
//!
//! Both are written so that any string round-trips through YAML 1.1 readers
//! (PyYAML, behind Ansible's `from_yaml`) as well as YAML 1.2 ones (a value
//! plain only where no reader can take it for a boolean, number, date or
//! null, else double-quoted), read with `serde_norway`, and replaced
//! atomically. Writers of one app directory take an exclusive lock
//! on it, so two deploys at once leave both in the history, one after the
//! other, and one complete current record.
//!
//! This module also holds the two Ansible modules over these files:
//! [`write_module`] (`write_deploy_info`) and [`read_module`] (`deploy_info`).

use std::fs::{self, File, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::ansible::{ArgsError, Failure, ModuleArgs, truncate};
use crate::atomic;
use crate::reference::{Digest, Reference, Tag};

/// The current record's file name in an app directory.
pub const RECORD_FILE: &str = "deploy-info.yml";
/// The history's file name, beside the record.
pub const HISTORY_FILE: &str = "deploy-history.yml";
/// Where `<org>/<app>/` directories live unless `root` says otherwise.
pub const DEFAULT_ROOT: &str = "/opt";
/// History entries kept unless `history_limit` says otherwise.
pub const DEFAULT_HISTORY_LIMIT: u64 = 20;
/// Mode of written files unless `mode` says otherwise.
pub const DEFAULT_MODE: u32 = 0o644;
/// Mode of app directories this module creates.
pub const DIR_MODE: u32 = 0o755;
/// `O_NONBLOCK` (the same on every Linux architecture but alpha, sparc, parisc).
const O_NONBLOCK: i32 = 0o4000;

/// Largest record or history file read. Twenty records with the largest
/// allowed description fit; a bigger file is damage, not deploy state, and
/// reading it whole could exhaust a small host.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest `description` accepted (a commit subject, normally one line).
pub const MAX_DESCRIPTION_BYTES: usize = 512 * 1024;
/// Largest value of the other free-text fields.
pub const MAX_TEXT_BYTES: usize = 4096;
/// How long a writer waits for another writer of the same app directory.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// One deploy of one app on one host.
///
/// Field order is the file's key order. `tag` is `None` when the image was
/// deployed by a digest that no tag points to; the CI metadata
/// (`description`, `built_at`, `revision`, `source`) is `None` when the image
/// lacks the label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    pub app: String,
    pub workspace: String,
    /// `registry/repository`, without tag or digest.
    pub image: String,
    pub tag: Option<Tag>,
    pub digest: Digest,
    /// Commit subject of the image's revision (label `description`).
    pub description: Option<String>,
    /// When the deploy finished, RFC 3339 UTC with seconds.
    pub deployed_at: String,
    /// Who deployed, `user@host` of the controller.
    pub deployed_by: Option<String>,
    /// Commit time of the image's revision (label `created`), as CI gave it.
    pub built_at: Option<String>,
    /// Full git SHA of the image's revision.
    pub revision: Option<String>,
    /// Repository URL of the image's source.
    pub source: Option<String>,
}

impl DeployRecord {
    /// Whether `other` describes the same running state: same image, digest,
    /// tag and workspace. Then a new write would only move `deployed_at`,
    /// which must keep saying when this state started.
    pub fn same_deploy(&self, other: &DeployRecord) -> bool {
        self.image == other.image
            && self.digest == other.digest
            && self.tag == other.tag
            && self.workspace == other.workspace
    }
}

/// Why a deploy-info file could not be read or written. Messages name the
/// file.
#[derive(Debug, thiserror::Error)]
pub enum DeployInfoError {
    #[error("cannot {action} `{}`", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}` is not a valid deploy-info file: {reason}", .path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("`{}` is larger than {limit} bytes; refusing to read it", .path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("`{}` is not a regular file", .path.display())]
    NotAFile { path: PathBuf },
    #[error(
        "`{}` is a symlink to `{}`, outside the app directory `{}`; refusing to write through it",
        .path.display(), .target.display(), .dir.display()
    )]
    SymlinkOutside {
        path: PathBuf,
        target: PathBuf,
        dir: PathBuf,
    },
    #[error(
        "`{}` resolves to `{}`, outside the root `{}` (a symlink?); refusing to write there",
        .dir.display(), .target.display(), .root.display()
    )]
    DirOutside {
        dir: PathBuf,
        target: PathBuf,
        root: PathBuf,
    },
    #[error("`{}` is locked by another deploy-info writer; gave up after {}", .dir.display(), crate::human::duration(*.waited))]
    Locked { dir: PathBuf, waited: Duration },
}

impl DeployInfoError {
    /// The same error with a path under `from` shown under `to` instead:
    /// files are written through the pinned app directory
    /// (`/proc/self/fd/N`), messages name it as the user does.
    fn shown_under(self, from: &Path, to: &Path) -> Self {
        let fix = |p: PathBuf| rebase(&p, from, to);
        match self {
            DeployInfoError::Io { action, path, source } => DeployInfoError::Io {
                action,
                path: fix(path),
                source,
            },
            DeployInfoError::Malformed { path, reason } => DeployInfoError::Malformed {
                path: fix(path),
                reason,
            },
            DeployInfoError::TooLarge { path, limit } => DeployInfoError::TooLarge { path: fix(path), limit },
            DeployInfoError::NotAFile { path } => DeployInfoError::NotAFile { path: fix(path) },
            DeployInfoError::SymlinkOutside { path, target, dir } => DeployInfoError::SymlinkOutside {
                path: fix(path),
                target,
                dir,
            },
            other @ (DeployInfoError::DirOutside { .. } | DeployInfoError::Locked { .. }) => other,
        }
    }

    /// The file or directory at fault.
    pub fn path(&self) -> Option<&Path> {
        match self {
            DeployInfoError::Io { path, .. }
            | DeployInfoError::Malformed { path, .. }
            | DeployInfoError::TooLarge { path, .. }
            | DeployInfoError::NotAFile { path }
            | DeployInfoError::SymlinkOutside { path, .. } => Some(path),
            DeployInfoError::Locked { dir, .. } | DeployInfoError::DirOutside { dir, .. } => Some(dir),
        }
    }
}

impl From<DeployInfoError> for Failure {
    fn from(e: DeployInfoError) -> Failure {
        let failure = Failure::from_error(&e);
        match e.path() {
            Some(p) => failure.with("path", p.display().to_string()),
            None => failure,
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering and reading

/// The text of `deploy-info.yml` for `record`.
pub fn render_record(record: &DeployRecord) -> String {
    let mut out = String::new();
    render_fields(&mut out, record, "");
    out
}

/// The text of `deploy-history.yml` for `history` (oldest first).
pub fn render_history(history: &[DeployRecord]) -> String {
    if history.is_empty() {
        return "[]\n".into();
    }
    let mut out = String::new();
    for record in history {
        out.push_str("- ");
        render_fields(&mut out, record, "  ");
    }
    out
}

/// One line per field, in the contract's order; the first line without
/// `indent` (it follows `- ` in a list). Values are strings written so that
/// YAML 1.1 readers (PyYAML, hence Ansible's `from_yaml`) read the same
/// string as YAML 1.2 ones, see [`crate::yaml_scalar`]; absent ones `null`.
fn render_fields(out: &mut String, r: &DeployRecord, indent: &str) {
    let tag = r.tag.as_ref().map(ToString::to_string);
    let digest = r.digest.to_string();
    let fields: [(&str, Option<&str>); 11] = [
        ("app", Some(&r.app)),
        ("workspace", Some(&r.workspace)),
        ("image", Some(&r.image)),
        ("tag", tag.as_deref()),
        ("digest", Some(&digest)),
        ("description", r.description.as_deref()),
        ("deployed_at", Some(&r.deployed_at)),
        ("deployed_by", r.deployed_by.as_deref()),
        ("built_at", r.built_at.as_deref()),
        ("revision", r.revision.as_deref()),
        ("source", r.source.as_deref()),
    ];
    for (i, (key, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push_str(indent);
        }
        out.push_str(key);
        out.push_str(": ");
        match value {
            Some(v) => out.push_str(&crate::yaml_scalar::scalar(v)),
            None => out.push_str("null"),
        }
        out.push('\n');
    }
}

/// Parses the text of a `deploy-info.yml`; `path` is for the error.
pub fn parse_record(text: &str, path: &Path) -> Result<DeployRecord, DeployInfoError> {
    check_cost(text, path)?;
    serde_norway::from_str(text).map_err(|e| DeployInfoError::Malformed {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Parses the text of a `deploy-history.yml`; an empty file is an empty
/// history.
pub fn parse_history(text: &str, path: &Path) -> Result<Vec<DeployRecord>, DeployInfoError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    check_cost(text, path)?;
    serde_norway::from_str(text).map_err(|e| DeployInfoError::Malformed {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Deepest nesting of flow collections (`[…]`, `{…}`) read. The writer
/// emits none deeper than `[]`; JSON written by other tools needs 2.
pub const MAX_FLOW_DEPTH: usize = 32;

/// Refuses, before the YAML parser sees it, text that would cost it far
/// more than its size: flow collections nested deeper than
/// [`MAX_FLOW_DEPTH`] (libyaml's scanner works in time proportional to
/// tokens × flow depth: 80 KB of brackets take minutes), and aliases that
/// expand it beyond twice its size (an 1.6 MB file of aliases to a 1 MiB
/// string expands to gigabytes; the writer never emits aliases).
fn check_cost(text: &str, path: &Path) -> Result<(), DeployInfoError> {
    let malformed = |reason: String| DeployInfoError::Malformed {
        path: path.into(),
        reason,
    };
    let depth = flow_depth(text);
    if depth > MAX_FLOW_DEPTH {
        return Err(malformed(format!(
            "flow collections (`[`, `{{`) nested {depth} deep, more than {MAX_FLOW_DEPTH}"
        )));
    }
    let budget = std::cell::Cell::new(text.len().saturating_mul(2).saturating_add(4096));
    let de = serde_norway::Deserializer::from_str(text);
    match serde::de::DeserializeSeed::deserialize(Expansion(&budget), de) {
        Ok(()) => Ok(()),
        // Not YAML at all: the real parse says why.
        Err(e) if !e.to_string().contains(EXPANSION_ERROR) => Ok(()),
        Err(_) => Err(malformed(format!(
            "its aliases expand it to more than twice its size ({} bytes)",
            text.len()
        ))),
    }
}

const EXPANSION_ERROR: &str = "aliases expand the document beyond its budget";

/// Walks a YAML document without keeping anything, spending `budget` on
/// every node and scalar byte, aliases replayed included.
struct Expansion<'a>(&'a std::cell::Cell<usize>);

impl Expansion<'_> {
    fn spend<E: serde::de::Error>(&self, n: usize) -> Result<(), E> {
        let left = self.0.get();
        if n > left {
            return Err(E::custom(EXPANSION_ERROR));
        }
        self.0.set(left - n);
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Expansion<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Expansion<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.spend(v.len() + 1)
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<(), E> {
        self.spend(v.len() + 1)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.spend(1)?;
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.spend(1)?;
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.spend(1)?;
        while seq.next_element_seed(Expansion(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.spend(1)?;
        while map.next_key_seed(Expansion(self.0))?.is_some() {
            map.next_value_seed(Expansion(self.0))?;
        }
        Ok(())
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use serde::de::VariantAccess;
        self.spend(1)?;
        let ((), variant) = data.variant_seed(Expansion(self.0))?;
        variant.newtype_variant_seed(Expansion(self.0))
    }
}

/// The deepest nesting of YAML flow collections in `text`, read the way
/// libyaml reads YAML where it matters: brackets inside quoted scalars,
/// block scalars (`|`, `>`), plain scalars and comments do not count. Where
/// this reading is unsure it counts more, never less: a multi-line quoted
/// scalar in block context is not skipped, nor a block scalar's lines that
/// YAML might read as structure.
pub fn flow_depth(text: &str) -> usize {
    let b = text.as_bytes();
    let n = b.len();
    // libyaml's line breaks: \n, \r, \r\n, NEL, LS, PS.
    let brk = |i: usize| -> usize {
        match b[i] {
            b'\n' => 1,
            b'\r' => {
                if i + 1 < n && b[i + 1] == b'\n' {
                    2
                } else {
                    1
                }
            }
            0xC2 if i + 1 < n && b[i + 1] == 0x85 => 2,
            0xE2 if i + 2 < n && b[i + 1] == 0x80 && (b[i + 2] == 0xA8 || b[i + 2] == 0xA9) => 3,
            _ => 0,
        }
    };
    // The index of the line break at or after `i` (or `n`).
    let eol = |mut i: usize| -> usize {
        while i < n && brk(i) == 0 {
            i += 1;
        }
        i
    };
    let blank_at = |i: usize| i >= n || b[i] == b' ' || b[i] == b'\t' || brk(i) > 0;
    let flow_ind = |c: u8| matches!(c, b',' | b'[' | b']' | b'{' | b'}');
    let mut i = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let (mut depth, mut max) = (0usize, 0usize);
    // Block context: at a position where a node may start.
    let mut node_start = true;
    // Flow context: inside a plain scalar.
    let mut in_plain = false;
    let mut at_line_start = true;
    let mut col;
    // The column of the key or indicator that owns what follows on this line.
    let mut owner_col = 0;
    let mut scalar_col = 0;
    // A block scalar's header was seen: (owner column, explicit indent).
    let mut block_scalar: Option<(usize, Option<usize>)> = None;
    // Inside a block scalar: lines indented at least this much are its text.
    let mut skip_indent: Option<usize> = None;
    let mut line_start = i;
    while i < n {
        if at_line_start {
            line_start = i;
            let mut j = i;
            while j < n && b[j] == b' ' {
                j += 1;
            }
            let indent = j - i;
            let blank = j >= n
                || brk(j) > 0
                || (b[j] == b'\t' && {
                    let mut k = j;
                    while k < n && (b[k] == b' ' || b[k] == b'\t') {
                        k += 1;
                    }
                    k >= n || brk(k) > 0
                });
            if depth == 0 {
                if let Some((owner, explicit)) = block_scalar.take() {
                    // The first line after a block scalar's header sets its indent.
                    if blank {
                        block_scalar = Some((owner, explicit));
                    } else {
                        let m = match explicit {
                            Some(d) => owner + d,
                            None => indent,
                        };
                        if m > owner {
                            skip_indent = Some(m);
                        }
                    }
                }
                if let Some(m) = skip_indent {
                    if blank || indent >= m {
                        i = eol(j);
                        if i < n {
                            i += brk(i);
                        }
                        continue;
                    }
                    skip_indent = None;
                }
                if blank && block_scalar.is_some() {
                    i = eol(j);
                    if i < n {
                        i += brk(i);
                    }
                    continue;
                }
            }
            at_line_start = false;
            i = j;
            if depth == 0 {
                node_start = true;
                owner_col = indent;
                // Directives, and document markers followed by a node.
                if indent == 0 && i < n && b[i] == b'%' {
                    i = eol(i);
                    continue;
                }
                if indent == 0 && (b[i..].starts_with(b"---") || b[i..].starts_with(b"...")) && blank_at(i + 3) {
                    i += 3;
                    continue;
                }
            }
            continue;
        }
        let c = b[i];
        let k = brk(i);
        if k > 0 {
            i += k;
            at_line_start = true;
            continue;
        }
        col = i - line_start;
        let after_blank = i == line_start || b[i - 1] == b' ' || b[i - 1] == b'\t';
        if c == b'#' && after_blank {
            i = eol(i);
            in_plain = false;
            continue;
        }
        if depth > 0 {
            // Flow context.
            if c == b' ' || c == b'\t' {
                i += 1;
                continue;
            }
            if flow_ind(c) {
                in_plain = false;
                match c {
                    b'[' | b'{' => {
                        depth += 1;
                        max = max.max(depth);
                    }
                    b']' | b'}' => depth -= 1,
                    _ => {}
                }
                i += 1;
                if depth == 0 {
                    node_start = false;
                }
                continue;
            }
            if in_plain {
                if c == b':' && (blank_at(i + 1) || flow_ind(b[i + 1])) {
                    in_plain = false;
                }
                i += 1;
                continue;
            }
            match c {
                b'\'' | b'"' => i = skip_quoted(b, i, true),
                // In flow context libyaml reads these as indicators at a token start.
                b'?' | b':' => i += 1,
                b'&' | b'!' | b'*' => {
                    while i < n && !blank_at(i) && !flow_ind(b[i]) {
                        i += 1;
                    }
                }
                _ => {
                    in_plain = true;
                    i += 1;
                }
            }
            continue;
        }
        // Block context.
        if c == b' ' || c == b'\t' {
            i += 1;
            continue;
        }
        if node_start {
            match c {
                b'-' | b'?' | b':' if blank_at(i + 1) => {
                    owner_col = col;
                    i += 1;
                }
                b'[' | b'{' => {
                    depth = 1;
                    max = max.max(1);
                    in_plain = false;
                    scalar_col = col;
                    i += 1;
                }
                b'|' | b'>' => {
                    // Header: chomping and an indentation digit, then a comment.
                    let mut explicit = None;
                    i += 1;
                    while i < n && matches!(b[i], b'+' | b'-' | b'1'..=b'9') {
                        if b[i].is_ascii_digit() {
                            explicit = Some(usize::from(b[i] - b'0'));
                        }
                        i += 1;
                    }
                    block_scalar = Some((owner_col, explicit));
                    i = eol(i);
                }
                b'\'' | b'"' => {
                    // A quoted scalar on one line is skipped; one that goes on
                    // is not (a continuation of a plain scalar may start with
                    // a quote), and counts as structure.
                    scalar_col = col;
                    let end = skip_quoted(b, i, false);
                    i = if end > i { end } else { i + 1 };
                    node_start = false;
                }
                b'&' | b'!' => {
                    while i < n && !blank_at(i) {
                        i += 1;
                    }
                }
                _ => {
                    scalar_col = col;
                    node_start = false;
                    i += 1;
                }
            }
            continue;
        }
        // After or inside a plain scalar, quoted scalar or alias: `: ` makes
        // what follows a value.
        if c == b':' && blank_at(i + 1) {
            owner_col = scalar_col;
            node_start = true;
        }
        i += 1;
    }
    max
}

/// The index after the quoted scalar starting at `start`; with `multiline`
/// false, `start` (nothing skipped) when it does not end on its line.
fn skip_quoted(b: &[u8], start: usize, multiline: bool) -> usize {
    let q = b[start];
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if q == b'"' => {
                if !multiline && i + 1 < b.len() && (matches!(b[i + 1], b'\n' | b'\r') || is_unicode_break(&b[i + 1..]))
                {
                    return start;
                }
                i += 2;
            }
            c if c == q => {
                if q == b'\'' && i + 1 < b.len() && b[i + 1] == b'\'' {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            b'\n' | b'\r' if !multiline => return start,
            0xC2 | 0xE2 if !multiline && is_unicode_break(&b[i..]) => return start,
            _ => i += 1,
        }
    }
    if multiline { b.len() } else { start }
}

fn is_unicode_break(b: &[u8]) -> bool {
    b.starts_with(&[0xC2, 0x85]) || b.starts_with(&[0xE2, 0x80, 0xA8]) || b.starts_with(&[0xE2, 0x80, 0xA9])
}

/// Reads a whole file of at most [`MAX_FILE_BYTES`] as UTF-8; `None` if it
/// does not exist.
pub fn read_bounded(path: &Path) -> Result<Option<String>, DeployInfoError> {
    let io_err = |action, source| DeployInfoError::Io {
        action,
        path: path.into(),
        source,
    };
    // Look before opening: opening a FIFO nobody writes to blocks for ever.
    match fs::metadata(path) {
        Ok(m) if !m.is_file() => return Err(DeployInfoError::NotAFile { path: path.into() }),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", e)),
    }
    // Non-blocking, in case it became a FIFO since (it is refused below).
    let file = match fs::OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", e)),
    };
    let meta = file.metadata().map_err(|e| io_err("inspect", e))?;
    if !meta.is_file() {
        return Err(DeployInfoError::NotAFile { path: path.into() });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(DeployInfoError::TooLarge {
            path: path.into(),
            limit: MAX_FILE_BYTES,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_err("read", e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(DeployInfoError::TooLarge {
            path: path.into(),
            limit: MAX_FILE_BYTES,
        });
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| DeployInfoError::Malformed {
            path: path.into(),
            reason: format!("not UTF-8 text: {e}"),
        })
}

/// Reads the record at `path` (a `deploy-info.yml`); `None` if it does not
/// exist. For other modules that need what a host runs.
pub fn read_record(path: &Path) -> Result<Option<DeployRecord>, DeployInfoError> {
    read_bounded(path)?.map(|text| parse_record(&text, path)).transpose()
}

/// Reads the history beside the record at `record_path`, oldest first;
/// empty if there is none.
pub fn read_history(record_path: &Path) -> Result<Vec<DeployRecord>, DeployInfoError> {
    let path = history_path(record_path);
    match read_bounded(&path)? {
        Some(text) => parse_history(&text, &path),
        None => Ok(Vec::new()),
    }
}

/// The history file beside a record file.
pub fn history_path(record_path: &Path) -> PathBuf {
    record_path.with_file_name(HISTORY_FILE)
}

// ---------------------------------------------------------------------------
// Validation of arguments

/// Checks that `value` can be one path segment under the root: not empty,
/// no `/`, no `..`, no leading `.`, no control characters (NUL included),
/// at most 255 bytes. `org` and `app` become directories; `workspace` is held
/// to the same rule so it can become one later.
pub fn validate_segment(name: &str, value: &str) -> Result<(), ArgsError> {
    let reason = if value.is_empty() {
        Some("must not be empty")
    } else if value.contains('/') {
        Some("must be a single path segment without `/`")
    } else if value.contains("..") {
        Some("must not contain `..`")
    } else if value.starts_with('.') {
        Some("must not start with `.`")
    } else if value.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if value.len() > 255 {
        Some("must be at most 255 bytes")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(invalid(
            name,
            format!("`{}` {reason}", truncate(&value.escape_debug().to_string(), 80)),
        )),
    }
}

/// Checks that `image` is `registry/repository` as written: a valid
/// reference with an explicit registry host and no tag or digest (those have
/// their own arguments).
pub fn validate_image(name: &str, image: &str) -> Result<(), ArgsError> {
    let reference = Reference::from_str(image).map_err(|e| invalid(name, e.to_string()))?;
    if reference.tag.is_some() || reference.digest.is_some() {
        return Err(invalid(
            name,
            format!(
                "`{image}` has a tag or digest; give `{}` here and the tag and digest in `tag` and `digest`",
                reference.name()
            ),
        ));
    }
    if reference.to_string() != image {
        return Err(invalid(
            name,
            format!(
                "`{image}` must be written in full, as the registry names it: `{}` (cleanup and the overviews \
                 match records by this exact name)",
                reference.name()
            ),
        ));
    }
    Ok(())
}

/// Parses an RFC 3339 time and renders it in UTC with whole seconds, the one
/// form deploy-info files use (`2026-01-25T01:10:00Z`).
pub fn normalise_time(name: &str, value: &str) -> Result<String, ArgsError> {
    let t = DateTime::parse_from_rfc3339(value).map_err(|e| {
        invalid(
            name,
            format!(
                "`{}` is not an RFC 3339 time like 2026-01-25T01:10:00Z: {e}",
                truncate(value, 80)
            ),
        )
    })?;
    Ok(format_time(t.with_timezone(&Utc)))
}

/// `t` as RFC 3339 UTC with whole seconds.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn invalid(name: &str, reason: String) -> ArgsError {
    ArgsError::Invalid {
        name: name.to_string(),
        reason,
    }
}

fn bounded_text(args: &mut ModuleArgs, name: &str, max: usize) -> Result<Option<String>, ArgsError> {
    let value = args.string(name)?;
    if let Some(v) = &value
        && v.len() > max
    {
        return Err(invalid(
            name,
            format!("is {} bytes, more than the {max} allowed", v.len()),
        ));
    }
    Ok(value)
}

/// An absolute path without `..` components (explicit `path`, `root`).
fn checked_path(name: &str, value: &str) -> Result<PathBuf, ArgsError> {
    let path = PathBuf::from(value);
    if value.contains('\0') {
        return Err(invalid(name, "must not contain NUL".into()));
    }
    if !path.is_absolute() {
        return Err(invalid(name, format!("`{value}` must be an absolute path")));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(name, format!("`{value}` must not contain `..`")));
    }
    Ok(path)
}

// ---------------------------------------------------------------------------
// Writing

/// The arguments of `write_deploy_info`.
pub const WRITE_ARGS: &[&str] = &[
    "app",
    "workspace",
    "image",
    "digest",
    "org",
    "tag",
    "description",
    "built_at",
    "revision",
    "source",
    "deployed_by",
    "deployed_at",
    "root",
    "path",
    "history_limit",
    "mode",
    "force",
];

/// A validated `write_deploy_info` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRequest {
    /// The record to write.
    pub record: DeployRecord,
    /// The record file: `path`, or `<root>/<org>/<app>/deploy-info.yml`.
    pub path: PathBuf,
    /// The root the app directory must stay under, when `path` was derived
    /// from `root`, `org` and `app` (an explicit `path` is taken as given).
    pub root: Option<PathBuf>,
    /// History entries to keep; 0 leaves `deploy-history.yml` alone.
    pub history_limit: usize,
    /// Permissions of the written files.
    pub mode: u32,
    /// Write even when the current record is the same deploy.
    pub force: bool,
}

impl WriteRequest {
    /// Takes and checks every argument; nothing on disk is looked at.
    /// `now` is the default `deployed_at`.
    pub fn from_args(args: &mut ModuleArgs, now: DateTime<Utc>) -> Result<WriteRequest, ArgsError> {
        args.reject_unknown(WRITE_ARGS)?;
        let app = args.required_string("app")?;
        validate_segment("app", &app)?;
        let workspace = args.required_string("workspace")?;
        validate_segment("workspace", &workspace)?;
        let image = args.required_string("image")?;
        validate_image("image", &image)?;
        let digest = args.required_string("digest")?;
        let digest = Digest::from_str(&digest).map_err(|e| invalid("digest", e.to_string()))?;
        // The OCI grammar lets other algorithms encode in base64; a digest a
        // deploy records is `algorithm:hex` (DESIGN.md), as registries give.
        if !digest
            .encoded()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid(
                "digest",
                format!("`{digest}` is not `algorithm:hex` (lower-case hex after the colon)"),
            ));
        }
        let tag = match args.string("tag")? {
            Some(t) => Some(Tag::from_str(&t).map_err(|e| invalid("tag", e.to_string()))?),
            None => None,
        };
        let org = args.string("org")?;
        if let Some(org) = &org {
            validate_segment("org", org)?;
        }
        let description = bounded_text(args, "description", MAX_DESCRIPTION_BYTES)?;
        let built_at = bounded_text(args, "built_at", MAX_TEXT_BYTES)?;
        let revision = bounded_text(args, "revision", MAX_TEXT_BYTES)?;
        let source = bounded_text(args, "source", MAX_TEXT_BYTES)?;
        let deployed_by = bounded_text(args, "deployed_by", MAX_TEXT_BYTES)?;
        let deployed_at = match args.string("deployed_at")? {
            Some(t) => normalise_time("deployed_at", &t)?,
            None => format_time(now),
        };
        let root = checked_path("root", &args.string("root")?.unwrap_or_else(|| DEFAULT_ROOT.into()))?;
        let (path, root) = match (args.string("path")?, &org) {
            (Some(p), _) => {
                let path = checked_path("path", &p)?;
                if p.ends_with('/') || path.file_name().is_none() {
                    return Err(invalid("path", format!("`{p}` must name a file")));
                }
                (path, None)
            }
            (None, Some(org)) => (root.join(org).join(&app).join(RECORD_FILE), Some(root)),
            (None, None) => return Err(ArgsError::Missing("org".into())),
        };
        let history_limit = args.uint("history_limit")?.unwrap_or(DEFAULT_HISTORY_LIMIT);
        let history_limit =
            usize::try_from(history_limit).map_err(|_| invalid("history_limit", "is too large".into()))?;
        let mode = args.mode("mode")?.unwrap_or(DEFAULT_MODE);
        let force = args.bool("force", false)?;
        let record = DeployRecord {
            app,
            workspace,
            image,
            tag,
            digest,
            description,
            deployed_at,
            deployed_by,
            built_at,
            revision,
            source,
        };
        Ok(WriteRequest {
            record,
            path,
            root,
            history_limit,
            mode,
            force,
        })
    }
}

/// What a write did, or in check mode would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    pub changed: bool,
    /// The record file (the requested path, not a symlink's target).
    pub path: PathBuf,
    /// The history file, when `history_limit` > 0.
    pub history_path: Option<PathBuf>,
    /// The record now current: the new one, or the existing one if unchanged.
    pub record: DeployRecord,
    /// History after the write (empty when not kept).
    pub history: Vec<DeployRecord>,
    /// File text before (empty if there was none) and after.
    pub before: String,
    pub after: String,
    /// Files whose content stays but whose mode is (or would be) set to the
    /// one asked for: an unchanged deploy still converges the mode.
    pub mode_fixed: Vec<PathBuf>,
}

/// Writes the record of `request` and appends it to the history, unless the
/// current record is the same deploy (and not `force`). In `check_mode`
/// nothing is created, locked or written; the outcome is the prediction.
pub fn write(request: &WriteRequest, check_mode: bool) -> Result<WriteOutcome, DeployInfoError> {
    let app_dir = parent_dir(&request.path);
    if let Some(root) = &request.root {
        confine(root, app_dir)?;
    }
    if check_mode {
        return plan(request, app_dir).map(|p| p.outcome);
    }
    atomic::create_dir_all(app_dir, DIR_MODE).map_err(|source| DeployInfoError::Io {
        action: "create directory",
        path: app_dir.into(),
        source,
    })?;
    let lock = lock_dir(app_dir)?;
    #[cfg(test)]
    tests::AFTER_LOCK.with(|hook| {
        if let Some(f) = hook.borrow_mut().take() {
            f()
        }
    });
    // From here on every file is reached through the locked directory
    // itself, checked to lie under the root: swapping a directory on the way
    // for a symlink now changes nothing.
    let io_dir = pinned(&lock, request.root.as_deref(), app_dir)?;
    write_in(request, &io_dir).map_err(|e| e.shown_under(&io_dir, app_dir))
}

/// The locked part of [`write`]: files reached in `io_dir`; errors name
/// them there.
fn write_in(request: &WriteRequest, io_dir: &Path) -> Result<WriteOutcome, DeployInfoError> {
    let plan = plan(request, io_dir)?;
    for target in &plan.mode_targets {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(target, fs::Permissions::from_mode(request.mode)).map_err(|source| {
            DeployInfoError::Io {
                action: "set the mode of",
                path: target.clone(),
                source,
            }
        })?;
    }
    if !plan.outcome.changed || !plan.outcome.mode_fixed.is_empty() {
        return Ok(plan.outcome);
    }
    // Under the lock, any temp file beside ours is a killed writer's.
    for target in std::iter::once(&plan.record_target).chain(plan.history_target.as_ref()) {
        atomic::remove_stale_temps(target).map_err(|source| DeployInfoError::Io {
            action: "clean up temp files beside",
            path: target.clone(),
            source,
        })?;
    }
    // The record first: it is what cleanup protects and what a host runs.
    let mut files: Vec<(&Path, &[u8])> = vec![(&plan.record_target, plan.outcome.after.as_bytes())];
    if let (Some(target), Some(text)) = (&plan.history_target, &plan.history_text) {
        files.push((target, text.as_bytes()));
    }
    atomic::write_atomic_all(&files, request.mode).map_err(|source| DeployInfoError::Io {
        action: "write deploy-info files in",
        path: parent_dir(&plan.record_target).into(),
        source,
    })?;
    Ok(plan.outcome)
}

/// Whether `path` lies inside `dir`, not `dir` itself (both resolved).
fn strictly_under(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir) && path != dir
}

/// `path` with the prefix `from` replaced by `to` (unchanged if it lacks
/// the prefix).
fn rebase(path: &Path, from: &Path, to: &Path) -> PathBuf {
    match path.strip_prefix(from) {
        Ok(rest) if rest.as_os_str().is_empty() => to.into(),
        Ok(rest) => to.join(rest),
        Err(_) => path.into(),
    }
}

/// The open, locked app directory as a path that resolves to it whatever
/// happens to the names on the way (`/proc/self/fd/N`), once the kernel's
/// own name for it is checked to lie under `root`. Without `/proc`, the
/// directory's name, checked again under the lock by [`confine`].
fn pinned(lock: &DirLock, root: Option<&Path>, app_dir: &Path) -> Result<PathBuf, DeployInfoError> {
    use std::os::fd::AsRawFd;
    let via = PathBuf::from(format!("/proc/self/fd/{}", lock.dir.as_raw_fd()));
    let Ok(real) = fs::read_link(&via) else {
        if let Some(root) = root {
            confine(root, app_dir)?;
        }
        return Ok(app_dir.into());
    };
    if let Some(root) = root {
        // The root exists (the app directory under it is open): a root that
        // cannot be resolved now was swapped during the write.
        let canonical_root = fs::canonicalize(root).map_err(|source| DeployInfoError::Io {
            action: "resolve",
            path: root.into(),
            source,
        })?;
        if !strictly_under(&real, &canonical_root) {
            return Err(DeployInfoError::DirOutside {
                dir: app_dir.into(),
                target: real,
                root: canonical_root,
            });
        }
    }
    Ok(via)
}

struct Plan {
    outcome: WriteOutcome,
    record_target: PathBuf,
    history_target: Option<PathBuf>,
    history_text: Option<String>,
    /// The files of `outcome.mode_fixed`, reached through the I/O directory.
    mode_targets: Vec<PathBuf>,
}

/// Reads the current files and decides; writes nothing. Files are reached
/// in `io_dir` (the app directory, or a path pinned to it); the outcome
/// names them as `request.path` does.
fn plan(request: &WriteRequest, io_dir: &Path) -> Result<Plan, DeployInfoError> {
    let app_dir = parent_dir(&request.path);
    let shown = |p: &PathBuf| rebase(p, io_dir, app_dir);
    let io_path = match request.path.file_name() {
        Some(name) => io_dir.join(name),
        None => request.path.clone(),
    };
    let record_target = write_target(&io_path)?;
    let history_file = history_path(&request.path);
    let history_target = match request.history_limit {
        0 => None,
        _ => Some(write_target(&history_path(&io_path))?),
    };
    let before = read_bounded(&record_target)?;
    let current = before
        .as_deref()
        .map(|text| parse_record(text, &request.path))
        .transpose()?;
    let before = before.unwrap_or_default();
    let mut history = match &history_target {
        Some(target) => match read_bounded(target)? {
            Some(text) => parse_history(&text, &history_file)?,
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    let unchanged = current
        .as_ref()
        .filter(|c| c.same_deploy(&request.record) && !request.force);
    if let Some(current) = unchanged {
        // Same deploy: only a mode that differs from the one asked for changes.
        let mode_targets: Vec<PathBuf> = std::iter::once(&record_target)
            .chain(history_target.as_ref())
            .filter(|t| {
                use std::os::unix::fs::PermissionsExt;
                fs::metadata(t).is_ok_and(|m| m.permissions().mode() & 0o7777 != request.mode)
            })
            .cloned()
            .collect();
        let mode_fixed: Vec<PathBuf> = mode_targets.iter().map(shown).collect();
        let outcome = WriteOutcome {
            changed: !mode_fixed.is_empty(),
            path: request.path.clone(),
            history_path: history_target.is_some().then_some(history_file),
            record: current.clone(),
            history,
            after: before.clone(),
            before,
            mode_fixed,
        };
        return Ok(Plan {
            outcome,
            record_target,
            history_target: None,
            history_text: None,
            mode_targets,
        });
    }
    let after = render_record(&request.record);
    let history_text = match request.history_limit {
        0 => None,
        limit => {
            // The current record belongs in the history too; it is missing
            // when the history is new or an earlier write of it failed.
            if let Some(current) = current
                && history.last() != Some(&current)
            {
                history.push(current);
            }
            history.push(request.record.clone());
            let excess = history.len().saturating_sub(limit);
            history.drain(..excess);
            Some(render_history(&history))
        }
    };
    let outcome = WriteOutcome {
        changed: true,
        path: request.path.clone(),
        history_path: history_target.is_some().then_some(history_file),
        record: request.record.clone(),
        history,
        before,
        after,
        mode_fixed: Vec::new(),
    };
    Ok(Plan {
        outcome,
        record_target,
        history_target,
        history_text,
        mode_targets: Vec::new(),
    })
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The file to replace for `path`: `path` itself, or, when it is a symlink,
/// its target, provided that lies inside the app directory (the symlink's
/// own directory). A link out of it could make a root-run deploy overwrite
/// any file on the host.
fn write_target(path: &Path) -> Result<PathBuf, DeployInfoError> {
    let io_err = |action, path: &Path, source| DeployInfoError::Io {
        action,
        path: path.into(),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(path.into()),
        Err(e) => return Err(io_err("inspect", path, e)),
    };
    if meta.is_file() {
        return Ok(path.into());
    }
    if !meta.file_type().is_symlink() {
        return Err(DeployInfoError::NotAFile { path: path.into() });
    }
    let dir = parent_dir(path);
    let dir = fs::canonicalize(dir).map_err(|e| io_err("resolve", dir, e))?;
    let target = match fs::canonicalize(path) {
        Ok(t) => t,
        // Dangling: resolve the directory it points into, keep the name.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let link = fs::read_link(path).map_err(|e| io_err("read symlink", path, e))?;
            let lexical = dir.join(link);
            let outside = || DeployInfoError::SymlinkOutside {
                path: path.into(),
                target: lexical.clone(),
                dir: dir.clone(),
            };
            let (Some(parent), Some(name)) = (lexical.parent(), lexical.file_name()) else {
                return Err(outside());
            };
            match fs::canonicalize(parent) {
                Ok(p) => p.join(name),
                Err(_) => return Err(outside()),
            }
        }
        Err(e) => return Err(io_err("resolve symlink", path, e)),
    };
    if !strictly_under(&target, &dir) {
        return Err(DeployInfoError::SymlinkOutside {
            path: path.into(),
            target,
            dir,
        });
    }
    match fs::symlink_metadata(&target) {
        Ok(m) if !m.is_file() => return Err(DeployInfoError::NotAFile { path: target }),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("inspect", &target, e)),
        _ => {}
    }
    // Reached from the directory as `path` names it (which may be pinned to
    // the open directory), not by the target's own full name.
    Ok(rebase(&target, &dir, parent_dir(path)))
}

/// Checks that every existing directory from `root` down to `dir` resolves
/// under `root`: `<root>/<org>` or `<root>/<org>/<app>` replaced by a
/// symlink to `/etc` must not make a root-run deploy write there. Links that
/// stay under the root are followed; a missing root or directory is fine
/// (it will be created, and cannot point anywhere yet).
fn confine(root: &Path, dir: &Path) -> Result<(), DeployInfoError> {
    let canonical_root = match fs::canonicalize(root) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(DeployInfoError::Io {
                action: "resolve",
                path: root.into(),
                source,
            });
        }
    };
    let Ok(below) = dir.strip_prefix(root) else {
        return Ok(());
    };
    let mut current = root.to_path_buf();
    for part in below.components() {
        current.push(part);
        let meta = match fs::symlink_metadata(&current) {
            Ok(m) => m,
            // Missing, or under a file: creating the directory fails and
            // says so; nothing can lead out of the root from here.
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => return Ok(()),
            Err(source) => {
                return Err(DeployInfoError::Io {
                    action: "inspect",
                    path: current,
                    source,
                });
            }
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        let outside = |target: PathBuf| DeployInfoError::DirOutside {
            dir: current.clone(),
            target,
            root: canonical_root.clone(),
        };
        match fs::canonicalize(&current) {
            Ok(t) if strictly_under(&t, &canonical_root) => {}
            Ok(t) => return Err(outside(t)),
            // Dangling: creating the directory would follow it.
            Err(_) => {
                let link = fs::read_link(&current).unwrap_or_default();
                return Err(outside(link));
            }
        }
    }
    Ok(())
}

/// An exclusive `flock` on an app directory, held while its files are read,
/// decided on and replaced; released when dropped (or the process dies).
struct DirLock {
    dir: File,
}

// `File::try_lock` is std since 1.89; the crate needs a newer Rust than its
// declared `rust-version` anyway (let chains), and flock through std beats a
// libc dependency for one call.
#[allow(clippy::incompatible_msrv)]
fn lock_dir(dir: &Path) -> Result<DirLock, DeployInfoError> {
    let handle = File::open(dir).map_err(|source| DeployInfoError::Io {
        action: "open",
        path: dir.into(),
        source,
    })?;
    let start = Instant::now();
    loop {
        match handle.try_lock() {
            Ok(()) => return Ok(DirLock { dir: handle }),
            Err(TryLockError::WouldBlock) if start.elapsed() < LOCK_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(DeployInfoError::Locked {
                    dir: dir.into(),
                    waited: start.elapsed(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(DeployInfoError::Io {
                    action: "lock",
                    path: dir.into(),
                    source,
                });
            }
        }
    }
}

/// The `write_deploy_info` module: arguments in, result fields out.
pub fn write_module(args: &mut ModuleArgs) -> Result<Map<String, Value>, Failure> {
    let request = WriteRequest::from_args(args, Utc::now())?;
    let check_mode = args.check_mode();
    let outcome = write(&request, check_mode)?;
    let path = outcome.path.display().to_string();
    let what = format!(
        "{}{} of `{}` in workspace `{}`",
        outcome.record.digest,
        outcome
            .record
            .tag
            .as_ref()
            .map(|t| format!(" (tag {t})"))
            .unwrap_or_default(),
        outcome.record.image,
        outcome.record.workspace
    );
    let msg = match (outcome.changed, check_mode) {
        (false, _) => format!("`{path}` already records {what}; nothing to write"),
        (true, _) if !outcome.mode_fixed.is_empty() => format!(
            "`{path}` already records {what}; {} the mode of {} to {:04o}",
            if check_mode { "would set" } else { "set" },
            outcome
                .mode_fixed
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(" and "),
            request.mode
        ),
        (true, true) => format!("would record {what} in `{path}`"),
        (true, false) => format!("recorded {what} in `{path}`"),
    };
    let mut out = Map::new();
    out.insert("changed".into(), outcome.changed.into());
    out.insert("path".into(), path.clone().into());
    if let Some(h) = &outcome.history_path {
        out.insert("history_path".into(), h.display().to_string().into());
    }
    out.insert("deploy_info".into(), to_json(&outcome.record)?);
    out.insert("msg".into(), msg.into());
    if args.diff() {
        out.insert(
            "diff".into(),
            json!({"before": outcome.before, "after": outcome.after, "before_header": path, "after_header": path}),
        );
    }
    Ok(out)
}

fn to_json<T: Serialize>(value: &T) -> Result<Value, Failure> {
    serde_json::to_value(value).map_err(|e| Failure::new(format!("cannot encode the result: {e}")))
}

// ---------------------------------------------------------------------------
// Reading

/// The arguments of `deploy_info`.
pub const READ_ARGS: &[&str] = &["root", "org", "app", "path", "history", "strict"];

/// A validated `deploy_info` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// Directory of `<org>/<app>/deploy-info.yml` files; default `/opt`.
    pub root: PathBuf,
    /// Only this org; default all.
    pub org: Option<String>,
    /// Only this app; default all.
    pub app: Option<String>,
    /// One explicit record file instead of a walk of `root`.
    pub path: Option<PathBuf>,
    /// Include each record's history; default true.
    pub history: bool,
    /// Fail on a file that cannot be read or parsed (default), rather than
    /// skip it with a warning. Cleanup relies on this to fail closed.
    pub strict: bool,
}

impl ReadRequest {
    /// Takes and checks every argument.
    pub fn from_args(args: &mut ModuleArgs) -> Result<ReadRequest, ArgsError> {
        args.reject_unknown(READ_ARGS)?;
        let root = checked_path("root", &args.string("root")?.unwrap_or_else(|| DEFAULT_ROOT.into()))?;
        let org = args.string("org")?;
        if let Some(org) = &org {
            validate_segment("org", org)?;
        }
        let app = args.string("app")?;
        if let Some(app) = &app {
            validate_segment("app", app)?;
        }
        let path = args.string("path")?.map(|p| checked_path("path", &p)).transpose()?;
        if path.is_some() && (org.is_some() || app.is_some()) {
            return Err(invalid(
                "path",
                "names one file; it cannot be combined with `org` or `app`".into(),
            ));
        }
        let history = args.bool("history", true)?;
        let strict = args.bool("strict", true)?;
        Ok(ReadRequest {
            root,
            org,
            app,
            path,
            history,
            strict,
        })
    }
}

/// A record as `deploy_info` returns it: its file, its fields, its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundRecord {
    /// The `deploy-info.yml` it was read from.
    pub path: PathBuf,
    #[serde(flatten)]
    pub record: DeployRecord,
    /// Oldest first, the current deploy last; absent when not asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<DeployRecord>>,
}

/// Finds and reads the records `request` asks for, sorted by path. A file
/// that cannot be read or parsed is an error when `strict`, else it is
/// skipped and a warning is pushed onto `warnings`.
pub fn find_records(request: &ReadRequest, warnings: &mut Vec<String>) -> Result<Vec<FoundRecord>, DeployInfoError> {
    let mut skip_or_fail = |e: DeployInfoError| {
        if request.strict {
            Err(e)
        } else {
            warnings.push(format!("skipped: {}", Failure::from_error(&e)));
            Ok(())
        }
    };
    let candidates = match &request.path {
        Some(path) => vec![path.clone()],
        None => {
            // A root that is not a directory, or a symlink to nothing (an
            // unmounted volume), is a mistake, not a host with nothing
            // deployed (cleanup must not read it as "runs nothing"); only a
            // root that is not there at all is that.
            let not_a_dir = |source: io::Error| DeployInfoError::Io {
                action: "list",
                path: request.root.clone(),
                source,
            };
            let root_problem = match fs::symlink_metadata(&request.root) {
                Err(_) => None,
                Ok(_) => match fs::metadata(&request.root) {
                    Ok(m) if m.is_dir() => None,
                    Ok(_) => Some(not_a_dir(io::ErrorKind::NotADirectory.into())),
                    Err(e) => Some(not_a_dir(e)),
                },
            };
            if let Some(e) = root_problem {
                skip_or_fail(e)?;
                return Ok(Vec::new());
            }
            let mut found = Vec::new();
            let orgs = match &request.org {
                Some(org) => vec![request.root.join(org)],
                None => match subdirs(&request.root) {
                    Ok((dirs, problems)) => {
                        for e in problems {
                            skip_or_fail(e)?;
                        }
                        dirs
                    }
                    Err(e) => {
                        skip_or_fail(e)?;
                        Vec::new()
                    }
                },
            };
            for org_dir in orgs {
                let apps = match &request.app {
                    Some(app) => vec![org_dir.join(app)],
                    None => match subdirs(&org_dir) {
                        Ok((dirs, problems)) => {
                            for e in problems {
                                skip_or_fail(e)?;
                            }
                            dirs
                        }
                        Err(e) => {
                            skip_or_fail(e)?;
                            continue;
                        }
                    },
                };
                for app_dir in apps {
                    let file = app_dir.join(RECORD_FILE);
                    // Other software lives under /opt too: no file, no app.
                    // A path that cannot be looked at (an `org` that is a
                    // file, a directory without search permission), or an
                    // org or app directory named that is a symlink to
                    // nothing, is not "no file".
                    match fs::symlink_metadata(&file) {
                        Ok(_) => found.push(file),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            if let Some(dir) = [&app_dir, &org_dir].into_iter().find(|d| dangling(d)) {
                                skip_or_fail(DeployInfoError::Io {
                                    action: "follow the symlink",
                                    path: dir.clone(),
                                    source: e,
                                })?;
                            }
                        }
                        Err(e) => skip_or_fail(DeployInfoError::Io {
                            action: "read",
                            path: file,
                            source: e,
                        })?,
                    }
                }
            }
            found
        }
    };
    let mut records = Vec::new();
    for path in candidates {
        let loaded = (|| -> Result<FoundRecord, DeployInfoError> {
            let record = read_record(&path)?.ok_or_else(|| DeployInfoError::Io {
                action: "read",
                path: path.clone(),
                source: io::ErrorKind::NotFound.into(),
            })?;
            Ok(FoundRecord {
                path: path.clone(),
                record,
                history: None,
            })
        })();
        match loaded {
            Ok(mut found) => {
                if request.history {
                    // Not strict, a damaged history loses only itself: the
                    // current record still says what runs.
                    match read_history(&path) {
                        Ok(history) => found.history = Some(history),
                        Err(e) => {
                            skip_or_fail(e)?;
                            found.history = Some(Vec::new());
                        }
                    }
                }
                records.push(found);
            }
            Err(e) => skip_or_fail(e)?,
        }
    }
    records.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(records)
}

/// Whether `path` is a symlink to nothing (a volume that is not mounted).
fn dangling(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok() && fs::metadata(path).is_err()
}

/// The visible subdirectories of `dir`, sorted, and one error per entry
/// that is a symlink to nothing; none if `dir` is missing (a host with
/// nothing deployed). `dir` itself being a file or a symlink to nothing is
/// an error.
fn subdirs(dir: &Path) -> Result<(Vec<PathBuf>, Vec<DeployInfoError>), DeployInfoError> {
    let io_err = |source| DeployInfoError::Io {
        action: "list",
        path: dir.into(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // A directory that is not there holds nothing; one that is a file
        // (an `org` or root written wrong), or a symlink to nothing (an
        // unmounted volume), is an error.
        Err(e) if e.kind() == io::ErrorKind::NotFound && fs::symlink_metadata(dir).is_err() => {
            return Ok((Vec::new(), Vec::new()));
        }
        Err(e) => return Err(io_err(e)),
    };
    let mut dirs = Vec::new();
    let mut problems = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err)?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // A symlink to nothing may be an org or app directory on a volume
        // that is not mounted: reading it as "nothing deployed" would let
        // the cleanup delete what runs there. Only that entry is at fault
        // (not strict: skipped with a warning); fix or remove the link.
        if entry.file_type().map_err(io_err)?.is_symlink()
            && let Err(e) = fs::metadata(&path)
        {
            problems.push(DeployInfoError::Io {
                action: "follow the symlink",
                path,
                source: e,
            });
            continue;
        }
        if path.is_dir() {
            dirs.push(path);
        }
    }
    dirs.sort();
    problems.sort_by_key(|e| e.to_string());
    Ok((dirs, problems))
}

/// The `deploy_info` module: arguments in, result fields out. Read only, so
/// check mode changes nothing about it.
pub fn read_module(args: &mut ModuleArgs) -> Result<Map<String, Value>, Failure> {
    let request = ReadRequest::from_args(args)?;
    let mut warnings = Vec::new();
    let records = find_records(&request, &mut warnings)?;
    for w in warnings {
        args.warn(w);
    }
    let mut out = Map::new();
    out.insert("changed".into(), false.into());
    out.insert("deploy_info".into(), to_json(&records)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::RefCell;

    thread_local! {
        /// Run by [`write`] right after it locked the app directory: where
        /// a test swaps directories as an attacker racing a deploy would.
        pub(super) static AFTER_LOCK: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
    }

    fn after_lock(f: impl FnOnce() + 'static) {
        AFTER_LOCK.with(|hook| *hook.borrow_mut() = Some(Box::new(f)));
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn record(digest: &str, deployed_at: &str) -> DeployRecord {
        DeployRecord {
            app: "hello-world".into(),
            workspace: "dev".into(),
            image: "registry.rednaw.nl/rednaw/hello-world".into(),
            tag: Some("eb53023".parse().unwrap()),
            digest: digest.parse().unwrap(),
            description: Some("add healthcheck + fix nginx proxy header".into()),
            deployed_at: deployed_at.into(),
            deployed_by: Some("wander@casa".into()),
            built_at: Some("2026-01-25T01:01:33Z".into()),
            revision: None,
            source: Some("https://github.com/rednaw/hello-world".into()),
        }
    }

    fn request(root: &Path, extra: Value) -> Result<WriteRequest, ArgsError> {
        let mut map = json!({"org": "rednaw", "app": "hello-world", "workspace": "dev",
            "image": "registry.rednaw.nl/rednaw/hello-world", "digest": D1, "tag": "eb53023",
            "root": root.to_str().unwrap(), "deployed_at": "2026-01-25T01:10:00Z"});
        map.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let Value::Object(map) = map else { unreachable!() };
        let mut args = ModuleArgs::from_map(map, false, false);
        WriteRequest::from_args(
            &mut args,
            DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().into(),
        )
    }

    #[test]
    fn flow_depth_counts_structure_not_text() {
        // Found by tests/test_hostile_files.rs: 80 KB of nested brackets kept
        // the YAML parser busy for minutes. What the writer emits counts 0 or 1.
        for (text, depth) in [
            ("app: x\ndescription: x [[[[ {{{\n", 0),
            ("description: '[[[['\nb: \"[[\\\"[[\"\n", 0),
            ("description: |-\n  line1\n  [[[[ line2\n    - [x\nnext: [a]\n", 1),
            ("- app: x\n  description: |-\n    [[[[\n  deployed_at: [[a]]\n", 2),
            ("[]\n", 1),
            ("# [[[[\nx: 1 # [[[[\n", 0),
            (r#"[{"a":"[[[[","b":"]]]]"},{"c":[1,[2]]}]"#, 4),
            ("[a 'b, [c]]", 2),
            ("[a:'b [c]]", 2),
            ("x: &a [[1]]\ny: !t [[[2]]]\n", 3),
            ("--- [[[1]]]\n", 3),
            ("k: |2\n    [[[[\n  x\n", 0),
        ] {
            assert_eq!(flow_depth(text), depth, "{text:?}");
        }
        // Ways to hide brackets from a careless scanner; libyaml sees them.
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        for hiding in [
            format!("a: x\n  'y\nb: {deep}\nc: '\n"),
            format!("a: x\r  'y\rb: {deep}\rc: '\r"),
            format!("a: x\u{2028}  'y\u{2028}b: {deep}\u{2028}c: '\n"),
            format!("a: \"x\\\n  y\"\nb: {deep}\n"),
            format!("- x: |\n    t\n  y: {deep}\n"),
            format!("a: |\nb: {deep}\n"),
            format!("[']]]]]]', {deep}]"),
            format!("[-'x {deep}]"),
            format!("\u{feff}{deep}"),
        ] {
            assert!(flow_depth(&hiding) >= 40, "{hiding:?}: {}", flow_depth(&hiding));
        }
    }

    #[test]
    fn aliases_may_not_amplify() {
        let p = Path::new("/x/deploy-history.yml");
        let mut text = String::from("- &r\n  app: a\n  description: &d x\n");
        text.push_str(&"- *r\n".repeat(3));
        assert!(check_cost(&text, p).is_ok(), "a few aliases are fine");
        text.push_str(&"- *r\n".repeat(1000));
        let e = check_cost(&text, p).unwrap_err().to_string();
        assert!(e.contains("its aliases expand it to more than twice its size"), "{e}");
        assert!(check_cost("not: [valid", p).is_ok(), "the real parse reports bad YAML");
    }

    #[test]
    fn renders_keys_in_contract_order() {
        let text = render_record(&record(D1, "2026-01-25T01:10:00Z"));
        assert_eq!(
            text,
            format!(
                "app: hello-world\nworkspace: dev\nimage: registry.rednaw.nl/rednaw/hello-world\ntag: eb53023\n\
                 digest: {D1}\ndescription: add healthcheck + fix nginx proxy header\n\
                 deployed_at: \"2026-01-25T01:10:00Z\"\ndeployed_by: wander@casa\nbuilt_at: \"2026-01-25T01:01:33Z\"\n\
                 revision: null\nsource: https://github.com/rednaw/hello-world\n"
            )
        );
        assert_eq!(
            parse_record(&text, Path::new("x")).unwrap(),
            record(D1, "2026-01-25T01:10:00Z")
        );
    }

    #[test]
    fn reads_the_canonical_hand_written_schema() {
        let text = format!(
            "app: hello-world\nworkspace: dev\nimage: registry.rednaw.nl/rednaw/hello-world\n\n\
             tag: eb53023\ndigest: {D1}\n\ndescription: \"add healthcheck\"\n\n\
             deployed_at: \"2026-01-25T01:10:00Z\"\ndeployed_by: \"wander@casa\"\n"
        );
        let r = parse_record(&text, Path::new("x")).unwrap();
        assert_eq!(r.deployed_at, "2026-01-25T01:10:00Z");
        assert_eq!((r.built_at, r.revision, r.source), (None, None, None));
    }

    #[test]
    fn malformed_records_name_the_file() {
        for text in [
            "",
            "[1, 2]",
            "app: x\n",
            "app: a\nworkspace: w\nimage: i\ndigest: sha256:abc\ndeployed_at: t\n",
        ] {
            let e = parse_record(text, Path::new("/opt/o/a/deploy-info.yml")).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("`/opt/o/a/deploy-info.yml` is not a valid deploy-info file"),
                "{e}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_description_round_trips(s in "\\PC*|[\\x00-\\x7f\\u{80}-\\u{10ffff}]{0,64}") {
            let mut r = record(D1, "2026-01-25T01:10:00Z");
            r.description = Some(s);
            let text = render_record(&r);
            proptest::prop_assert_eq!(parse_record(&text, Path::new("x")).unwrap(), r.clone());
            let history = render_history(&[r.clone(), r.clone()]);
            proptest::prop_assert_eq!(parse_history(&history, Path::new("x")).unwrap(), vec![r.clone(), r]);
        }
    }

    #[test]
    fn segments() {
        for ok in ["rednaw", "hello-world", "a.b", "dev_1", "ünï"] {
            validate_segment("org", ok).unwrap();
        }
        for (bad, why) in [
            ("", "must not be empty"),
            ("a/b", "without `/`"),
            ("..", "`..`"),
            ("a..b", "`..`"),
            (".hidden", "start with `.`"),
            ("a\0b", "control characters"),
            ("a\nb", "control characters"),
        ] {
            let e = validate_segment("org", bad).unwrap_err().to_string();
            assert!(e.starts_with("argument `org`: "), "{e}");
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(validate_segment("app", &"a".repeat(256)).is_err());
    }

    #[test]
    fn images() {
        validate_image("image", "registry.rednaw.nl/rednaw/hello-world").unwrap();
        validate_image("image", "127.0.0.1:5000/acme/web").unwrap();
        for bad in [
            "registry.rednaw.nl/rednaw/hello-world:eb53023",
            &format!("registry.rednaw.nl/rednaw/hello-world@{D1}"),
            "nginx",
            "rednaw/hello-world",
            "Registry.example.com/UPPER",
            "",
        ] {
            let e = validate_image("image", bad).unwrap_err().to_string();
            assert!(e.starts_with("argument `image`: "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn times_are_normalised_to_utc_seconds() {
        assert_eq!(
            normalise_time("t", "2026-01-25T02:10:00.987+01:00").unwrap(),
            "2026-01-25T01:10:00Z"
        );
        assert_eq!(
            normalise_time("t", "2026-01-25T01:10:00Z").unwrap(),
            "2026-01-25T01:10:00Z"
        );
        assert!(
            normalise_time("t", "2026-01-25 01:10")
                .unwrap_err()
                .to_string()
                .starts_with("argument `t`: ")
        );
        assert!(normalise_time("t", "yesterday").is_err());
    }

    #[test]
    fn request_from_args() {
        let root = Path::new("/srv");
        let r = request(root, json!({})).unwrap();
        assert_eq!(r.path, Path::new("/srv/rednaw/hello-world/deploy-info.yml"));
        assert_eq!(r.root.as_deref(), Some(root));
        assert_eq!((r.history_limit, r.mode, r.force), (20, 0o644, false));
        assert_eq!(r.record.deployed_at, "2026-01-25T01:10:00Z");
        let r = request(
            root,
            json!({"deployed_at": null, "tag": null, "path": "/etc/x/d.yml", "org": null,
                                     "history_limit": "3", "mode": "0600", "force": "yes"}),
        )
        .unwrap();
        assert_eq!(r.record.deployed_at, "2030-01-01T00:00:00Z");
        assert_eq!(r.record.tag, None);
        assert_eq!(r.path, Path::new("/etc/x/d.yml"));
        assert_eq!(r.root, None, "an explicit path is taken as given");
        assert_eq!((r.history_limit, r.mode, r.force), (3, 0o600, true));
        for (extra, msg) in [
            (json!({"org": null}), "missing required argument `org`"),
            (json!({"app": "../etc"}), "argument `app`: "),
            (json!({"workspace": "a/b"}), "argument `workspace`: "),
            (
                json!({"digest": "sha256:ABC"}),
                "argument `digest`: invalid digest `sha256:ABC`",
            ),
            (
                json!({"digest": "foo:xyz"}),
                "argument `digest`: `foo:xyz` is not `algorithm:hex` (lower-case hex after the colon)",
            ),
            (
                json!({"digest": "sha256+b64:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564="}),
                "argument `digest`: `sha256+b64:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564=` is not `algorithm:hex`",
            ),
            (
                json!({"image": "docker.io/nginx"}),
                "argument `image`: `docker.io/nginx` must be written in full, as the registry names it: \
                 `docker.io/library/nginx`",
            ),
            (json!({"tag": "-x"}), "argument `tag`: invalid tag `-x`"),
            (json!({"app": ["x"]}), "argument `app` must be a string, got a list"),
            (json!({"force": "maybe"}), "argument `force` must be a boolean"),
            (
                json!({"history_limit": -1}),
                "argument `history_limit` must be a non-negative integer",
            ),
            (
                json!({"path": "relative/d.yml"}),
                "argument `path`: `relative/d.yml` must be an absolute path",
            ),
            (
                json!({"path": "/opt/x/"}),
                "argument `path`: `/opt/x/` must name a file",
            ),
            (json!({"path": "/opt/../etc/passwd"}), "argument `path`: "),
            (json!({"root": "opt"}), "argument `root`: "),
            (
                json!({"description": "x".repeat(MAX_DESCRIPTION_BYTES + 1)}),
                "argument `description`: is ",
            ),
            (json!({"colour": "red"}), "unsupported argument `colour`"),
        ] {
            let e = request(root, extra.clone()).unwrap_err().to_string();
            assert!(e.starts_with(msg), "{extra}: {e}");
        }
    }

    #[test]
    fn write_is_idempotent_and_keeps_history() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let first = request(root, json!({"history_limit": 2})).unwrap();
        let check = write(&first, true).unwrap();
        assert!(check.changed);
        assert!(!root.join("rednaw").exists(), "check mode created something");
        let done = write(&first, false).unwrap();
        assert!(done.changed);
        assert_eq!(done.before, "");
        assert_eq!(fs::read_to_string(&first.path).unwrap(), done.after);
        assert_eq!(read_history(&first.path).unwrap(), vec![first.record.clone()]);

        let again = request(root, json!({"history_limit": 2, "deployed_at": "2026-02-01T00:00:00Z"})).unwrap();
        let same = write(&again, false).unwrap();
        assert!(!same.changed);
        assert_eq!(
            same.record.deployed_at, "2026-01-25T01:10:00Z",
            "kept when the deploy is the same"
        );

        let mut records = vec![first.record.clone()];
        for (i, d) in [D2, D1, D2].iter().enumerate() {
            let r = request(
                root,
                json!({"history_limit": 2, "digest": d, "deployed_at": format!("2026-02-0{}T00:00:00Z", i + 1)}),
            )
            .unwrap();
            assert!(write(&r, false).unwrap().changed);
            records.push(r.record.clone());
        }
        assert_eq!(read_history(&first.path).unwrap(), records[2..].to_vec());
        assert_eq!(read_record(&first.path).unwrap().unwrap(), records[3]);

        let forced = request(root, json!({"history_limit": 2, "digest": D2, "force": true})).unwrap();
        assert!(write(&forced, false).unwrap().changed);
        assert_eq!(
            read_history(&first.path).unwrap(),
            vec![records[3].clone(), forced.record.clone()]
        );
    }

    #[test]
    fn history_limit_zero_leaves_history_alone_and_a_missing_history_is_seeded() {
        let dir = tempfile::tempdir().unwrap();
        let a = request(dir.path(), json!({"history_limit": 0})).unwrap();
        write(&a, false).unwrap();
        assert!(!history_path(&a.path).exists());
        let b = request(dir.path(), json!({"digest": D2})).unwrap();
        let out = write(&b, false).unwrap();
        assert_eq!(out.history, vec![a.record.clone(), b.record.clone()]);
        assert_eq!(read_history(&a.path).unwrap(), out.history);
    }

    #[test]
    fn symlinks_out_of_the_app_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = request(dir.path(), json!({})).unwrap();
        let app = r.path.parent().unwrap();
        fs::create_dir_all(app).unwrap();
        let outside = dir.path().join("passwd");
        fs::write(&outside, "root:x:0:0\n").unwrap();
        std::os::unix::fs::symlink(&outside, &r.path).unwrap();
        let e = write(&r, false).unwrap_err();
        assert!(matches!(e, DeployInfoError::SymlinkOutside { .. }), "{e}");
        assert!(write(&r, true).is_err(), "check mode predicts the failure");
        assert_eq!(fs::read_to_string(&outside).unwrap(), "root:x:0:0\n");
        // A dangling link out of the directory is refused as well.
        fs::remove_file(&r.path).unwrap();
        std::os::unix::fs::symlink("../../../elsewhere.yml", &r.path).unwrap();
        assert!(matches!(
            write(&r, false).unwrap_err(),
            DeployInfoError::SymlinkOutside { .. }
        ));
        assert!(!dir.path().join("elsewhere.yml").exists());
        // A link within it is followed and kept.
        fs::remove_file(&r.path).unwrap();
        fs::create_dir(app.join("releases")).unwrap();
        std::os::unix::fs::symlink("releases/current.yml", &r.path).unwrap();
        write(&r, false).unwrap();
        assert!(fs::symlink_metadata(&r.path).unwrap().file_type().is_symlink());
        assert_eq!(
            read_record(&app.join("releases/current.yml")).unwrap().unwrap(),
            r.record
        );
    }

    #[test]
    fn an_app_or_org_directory_linked_out_of_the_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("opt");
        let elsewhere = dir.path().join("etc");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&elsewhere).unwrap();
        let r = request(&root, json!({})).unwrap();
        let org = root.join("rednaw");
        let app = org.join("hello-world");
        // The app directory, then the org directory, as a link out.
        fs::create_dir_all(&org).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &app).unwrap();
        for check_mode in [true, false] {
            let e = write(&r, check_mode).unwrap_err();
            assert!(matches!(e, DeployInfoError::DirOutside { .. }), "{e}");
            assert!(e.to_string().contains("outside the root"), "{e}");
            assert_eq!(e.path(), Some(app.as_path()));
        }
        fs::remove_file(&app).unwrap();
        fs::remove_dir(&org).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &org).unwrap();
        let e = write(&r, false).unwrap_err();
        assert!(matches!(e, DeployInfoError::DirOutside { .. }), "{e}");
        // A dangling link would be followed by mkdir: refused too.
        fs::remove_file(&org).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &org).unwrap();
        assert!(matches!(
            write(&r, false).unwrap_err(),
            DeployInfoError::DirOutside { .. }
        ));
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0, "nothing written outside");
        assert!(!dir.path().join("nowhere").exists());
        // A link that stays under the root is followed.
        fs::remove_file(&org).unwrap();
        fs::create_dir_all(root.join("shared/rednaw")).unwrap();
        std::os::unix::fs::symlink("shared/rednaw", &org).unwrap();
        write(&r, false).unwrap();
        assert_eq!(
            read_record(&root.join("shared/rednaw/hello-world/deploy-info.yml"))
                .unwrap()
                .unwrap(),
            r.record
        );
        // The root itself may be a link (/opt -> /srv/opt is common).
        let linked_root = dir.path().join("linked");
        std::os::unix::fs::symlink(&root, &linked_root).unwrap();
        let r = request(&linked_root, json!({"app": "api"})).unwrap();
        write(&r, false).unwrap();
        assert!(root.join("shared/rednaw/api/deploy-info.yml").is_file());
    }

    #[test]
    fn directories_swapped_after_the_lock_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("opt");
        let elsewhere = dir.path().join("etc");
        fs::create_dir_all(elsewhere.join("rednaw/hello-world")).unwrap();
        let r = request(&root, json!({})).unwrap();
        write(&r, false).unwrap();
        let org = root.join("rednaw");
        // The org directory renamed (still under the root) and a link out
        // put in its place: the write goes on in the directory it locked.
        let (o, moved, e) = (org.clone(), root.join("rednaw.moved"), elsewhere.join("rednaw"));
        after_lock(move || {
            fs::rename(&o, &moved).unwrap();
            std::os::unix::fs::symlink(&e, &o).unwrap();
        });
        let r2 = request(&root, json!({"digest": D2})).unwrap();
        let outcome = write(&r2, false).unwrap();
        assert_eq!(outcome.path, r2.path, "reported as asked");
        let record = read_record(&root.join("rednaw.moved/hello-world/deploy-info.yml"))
            .unwrap()
            .unwrap();
        assert_eq!(record.digest.to_string(), D2);
        assert_eq!(fs::read_dir(elsewhere.join("rednaw/hello-world")).unwrap().count(), 0);
        // The app directory itself moved out of the root after the lock:
        // refused, nothing written there.
        fs::remove_file(&org).unwrap();
        fs::rename(root.join("rednaw.moved"), &org).unwrap();
        let (a, out) = (org.join("hello-world"), elsewhere.join("moved-app"));
        let out2 = out.clone();
        after_lock(move || fs::rename(&a, &out2).unwrap());
        let r3 = request(&root, json!({"digest": D1, "force": true})).unwrap();
        let e = write(&r3, false).unwrap_err();
        assert!(matches!(e, DeployInfoError::DirOutside { .. }), "{e}");
        assert_eq!(e.path(), Some(org.join("hello-world").as_path()), "{e}");
        let moved_record = read_record(&out.join("deploy-info.yml")).unwrap().unwrap();
        assert_eq!(moved_record.digest.to_string(), D2, "the moved directory is untouched");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 2, "no temp file left: {out:?}");
    }

    #[test]
    fn a_malformed_current_file_fails_naming_it_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let r = request(dir.path(), json!({})).unwrap();
        fs::create_dir_all(r.path.parent().unwrap()).unwrap();
        fs::write(&r.path, "app: [unclosed\n").unwrap();
        let e = Failure::from(write(&r, false).unwrap_err());
        assert!(
            e.msg.contains("deploy-info.yml` is not a valid deploy-info file"),
            "{}",
            e.msg
        );
        assert_eq!(e.fields["path"], json!(r.path.display().to_string()));
        assert_eq!(fs::read_to_string(&r.path).unwrap(), "app: [unclosed\n");
    }

    #[test]
    fn finds_records_filters_and_reports_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (org, app) in [("acme", "web"), ("acme", "api"), ("other", "web")] {
            let r = request(root, json!({"org": org, "app": app})).unwrap();
            write(&r, false).unwrap();
        }
        fs::create_dir_all(root.join("containerd/bin")).unwrap();
        let mut req = ReadRequest {
            root: root.into(),
            org: None,
            app: None,
            path: None,
            history: true,
            strict: true,
        };
        let mut warnings = Vec::new();
        let all = find_records(&req, &mut warnings).unwrap();
        let apps: Vec<_> = all
            .iter()
            .map(|f| f.path.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            apps,
            [
                "acme/api/deploy-info.yml",
                "acme/web/deploy-info.yml",
                "other/web/deploy-info.yml"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(all[0].history.as_ref().unwrap(), &vec![all[0].record.clone()]);
        req.app = Some("web".into());
        assert_eq!(find_records(&req, &mut warnings).unwrap().len(), 2);
        req.org = Some("acme".into());
        assert_eq!(find_records(&req, &mut warnings).unwrap().len(), 1);
        req.org = Some("nobody".into());
        assert!(find_records(&req, &mut warnings).unwrap().is_empty());
        assert!(warnings.is_empty());

        fs::write(root.join("acme/api/deploy-history.yml"), "- not: a record\n").unwrap();
        req.org = None;
        req.app = None;
        let e = find_records(&req, &mut warnings).unwrap_err();
        assert!(e.to_string().contains("acme/api/deploy-history.yml"), "{e}");
        req.history = false;
        assert_eq!(find_records(&req, &mut warnings).unwrap().len(), 3);
        req.history = true;
        req.strict = false;
        // Not strict, a damaged history loses only itself: the app's
        // current record still says what runs.
        let all = find_records(&req, &mut warnings).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].record.app, "api");
        assert_eq!(all[0].history.as_deref(), Some(&[][..]));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("skipped: `") && warnings[0].contains("acme/api/deploy-history.yml"),
            "{}",
            warnings[0]
        );
        fs::write(root.join("acme/api/deploy-info.yml"), "- not: a record\n").unwrap();
        warnings.clear();
        assert_eq!(find_records(&req, &mut warnings).unwrap().len(), 2);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("acme/api/deploy-info.yml"), "{}", warnings[0]);

        // A root that is a file is a mistake, not a host without deploys.
        let file = root.join("acme/web/deploy-info.yml");
        req.root = file.clone();
        warnings.clear();
        assert!(find_records(&req, &mut warnings).unwrap().is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(&format!("cannot list `{}`", file.display())),
            "{}",
            warnings[0]
        );
        req.strict = true;
        let e = find_records(&req, &mut warnings).unwrap_err();
        assert!(
            e.to_string().contains(&format!("cannot list `{}`", file.display())),
            "{e}"
        );
        req.org = Some("acme".into());
        assert!(find_records(&req, &mut warnings).is_err(), "with `org` too");
        // A missing root is a host with nothing deployed; a symlink to
        // nothing (an unmounted volume) is not.
        req.root = root.join("absent");
        req.org = None;
        assert!(find_records(&req, &mut warnings).unwrap().is_empty());
        let dangling = root.join("dangling");
        std::os::unix::fs::symlink(root.join("unmounted"), &dangling).unwrap();
        req.root = dangling.clone();
        let e = find_records(&req, &mut warnings).unwrap_err();
        assert!(
            e.to_string().contains(&format!("cannot list `{}`", dangling.display())),
            "{e}"
        );
        fs::remove_file(&dangling).unwrap();
        // An `org` that is a file is not an org without apps, with or
        // without `app`.
        req.root = root.to_path_buf();
        req.app = None;
        fs::write(root.join("acme-file"), "x").unwrap();
        req.org = Some("acme-file".into());
        let e = find_records(&req, &mut warnings).unwrap_err();
        assert!(e.to_string().contains("acme-file"), "{e}");
        req.app = Some("web".into());
        let e = find_records(&req, &mut warnings).unwrap_err();
        assert!(e.to_string().contains("acme-file/web/deploy-info.yml"), "{e}");
        fs::remove_file(root.join("acme-file")).unwrap();
        // An org or app directory that is a symlink to nothing (a volume
        // not mounted), named or found walking the root.
        std::os::unix::fs::symlink(root.join("unmounted"), root.join("gone-org")).unwrap();
        req.org = Some("gone-org".into());
        req.app = None;
        let e = find_records(&req, &mut warnings).unwrap_err();
        assert!(e.to_string().contains("gone-org"), "{e}");
        req.org = None;
        let e = find_records(&req, &mut warnings).unwrap_err();
        assert!(e.to_string().contains("cannot follow the symlink"), "{e}");
        assert!(e.to_string().contains("gone-org"), "{e}");
        // Named with `app`, the link is not taken for "no file" either.
        req.org = Some("gone-org".into());
        req.app = Some("web".into());
        let e = find_records(&req, &mut warnings).unwrap_err();
        assert!(e.to_string().contains("cannot follow the symlink"), "{e}");
        req.app = None;
        req.org = None;
        // Not strict: only that entry is skipped, with one warning.
        req.strict = false;
        warnings.clear();
        let all = find_records(&req, &mut warnings).unwrap();
        // (acme/api's record was broken above: skipped too.)
        assert_eq!(all.len(), 2, "the other apps are read: {all:?}");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!(
                "skipped: cannot follow the symlink `{}`",
                root.join("gone-org").display()
            )),
            "{warnings:?}"
        );
        req.strict = true;
        fs::remove_file(root.join("gone-org")).unwrap();
        std::os::unix::fs::symlink(root.join("unmounted"), root.join("acme/gone-app")).unwrap();
        let e = find_records(&req, &mut warnings).unwrap_err();
        assert!(e.to_string().contains("acme/gone-app"), "{e}");
        req.org = Some("acme".into());
        req.app = Some("gone-app".into());
        let e = find_records(&req, &mut warnings).unwrap_err();
        assert!(e.to_string().contains("acme/gone-app"), "{e}");
        // Symlinks to a directory or a file are followed or passed over.
        fs::remove_file(root.join("acme/gone-app")).unwrap();
        std::os::unix::fs::symlink(root.join("acme/web"), root.join("acme/web-link")).unwrap();
        std::os::unix::fs::symlink(root.join("acme-notes"), root.join("notes-link")).unwrap();
        fs::write(root.join("acme-notes"), "x").unwrap();
        req.org = None;
        req.app = None;
        req.strict = false; // acme/api's record is still broken
        warnings.clear();
        let names: Vec<String> = find_records(&req, &mut warnings)
            .unwrap()
            .iter()
            .map(|f| f.path.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert!(
            names.contains(&"acme/web-link/deploy-info.yml".to_string()),
            "{names:?}"
        );
        assert_eq!(warnings.len(), 1, "only the broken record: {warnings:?}");
    }

    #[test]
    fn oversized_files_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("deploy-info.yml");
        let f = File::create(&p).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let e = read_record(&p).unwrap_err();
        assert!(matches!(e, DeployInfoError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("deploy-info.yml` is larger than"), "{e}");
    }
}
