//! The two overviews as data and as text: [`images_overview`] (one
//! repository, with one workspace's deploy state) and [`registry_overview`]
//! (every repository, with the CI contract checked). Pure: listings and
//! deploy state in, structures and strings out; the binaries scan and print.
//!
//! What holds:
//!
//! * Rows are sorted newest first by the parsed `created`; undated rows
//!   (missing or unparseable `created`, or an unreadable manifest) come
//!   last; ties (same time, or both undated) by tag, ascending, so the
//!   order never depends on the registry's.
//! * `→` marks every tag whose digest a host of the workspace runs, so two
//!   tags of one digest are both marked, and hosts running different
//!   digests mark several rows. The deploy records are the truth of what
//!   runs: nothing is matched by tag name.
//! * Text from labels is data: control characters are replaced before it
//!   reaches a terminal, and a description shows its first line only.
//! * Human output layout (DESIGN.md), column gaps of 3 and 2 spaces:
//!
//! ```text
//! IMAGE: registry.rednaw.nl/rednaw/hello-world   workspace: dev
//!     TAG       CREATED              DESCRIPTION
//!     6350192   2026-01-25 01:10:00  version 0.0.2
//! →   eb53023   2026-01-25 01:01:33  simple deploy
//! ```

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::deploy_state::{DeployRecord, DeployState};
use crate::listing::{ImageEntry, RepositoryListing};
use crate::metadata::CI_LABELS;
use crate::reference::Digest;
use crate::scan::UnreadableRepository;

/// One tag as both overviews show it (the `tags` objects of `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagInfo {
    pub tag: String,
    /// What the tag points to (for a multi-arch tag, the index digest).
    pub digest: Digest,
    /// RFC 3339 UTC, or the raw label value when it was not a date; `null`
    /// when missing or the manifest could not be read.
    pub created: Option<String>,
    /// The full description label (the text output shows its first line).
    pub description: Option<String>,
    pub revision: Option<String>,
    pub source: Option<String>,
    /// `images_overview` only: whether a host of the workspace runs this
    /// digest. Absent in `registry_overview`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed: Option<bool>,
    /// `images_overview` only: the hosts that run this digest, sorted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// `registry_overview` only: how this tag breaks the CI contract
    /// (missing labels, tag not `revision[:7]`, `created` not a date).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<String>>,
    /// Problems met reading the labels (missing label, legacy `created`,
    /// unreadable manifest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Parsed `created`, for sorting.
    #[serde(skip)]
    pub created_time: Option<DateTime<Utc>>,
}

impl TagInfo {
    fn new(tag: &str, digest: &Digest, entry: Option<&ImageEntry>) -> TagInfo {
        let (meta, warnings) = match entry {
            Some(e) => (e.metadata.clone(), e.metadata.warnings.clone()),
            None => (
                Default::default(),
                vec!["the manifest or config could not be read".to_string()],
            ),
        };
        TagInfo {
            tag: tag.to_string(),
            digest: digest.clone(),
            created_time: meta.created_time(),
            created: meta.created,
            description: meta.description,
            revision: meta.revision,
            source: meta.source,
            deployed: None,
            hosts: None,
            problems: None,
            warnings,
        }
    }
}

/// Newest first by parsed `created`, undated last, ties by tag.
pub fn newest_first(a: &TagInfo, b: &TagInfo) -> Ordering {
    match (a.created_time, b.created_time) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| a.tag.cmp(&b.tag))
}

/// Every tag of `listing`, sorted by [`newest_first`].
pub fn tag_infos(listing: &RepositoryListing) -> Vec<TagInfo> {
    let mut out: Vec<TagInfo> = listing
        .tags
        .iter()
        .map(|(t, d)| TagInfo::new(t, d, listing.images.get(d)))
        .collect();
    out.sort_by(newest_first);
    out
}

/// A deployed digest that no tag points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UntaggedDeploy {
    pub digest: Digest,
    /// Hosts that run it, sorted.
    pub hosts: Vec<String>,
    /// The tags the deploy records name for it (tags since moved or deleted).
    pub recorded_tags: Vec<String>,
}

/// One host's current deploy, when the hosts of a workspace differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostDeploy {
    pub host: String,
    pub digest: Digest,
    /// Tags that point to the digest now, sorted.
    pub tags: Vec<String>,
}

/// `images_overview` as data (its `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImagesOverview {
    /// `registry/repository`.
    pub image: String,
    pub workspace: String,
    /// The deploy records of this image in the workspace, sorted by host.
    pub deployed: Vec<DeployRecord>,
    /// Tags, newest first (at most `--limit` plus deployed ones).
    pub tags: Vec<TagInfo>,
    /// Deployed digests that no tag points to.
    pub untagged_deployed: Vec<UntaggedDeploy>,
    /// When hosts of the workspace run different digests of this image:
    /// every host with its digest, sorted by host; else empty.
    pub hosts_differ: Vec<HostDeploy>,
    /// Tags left out by `--limit`.
    pub omitted_tags: usize,
    /// Whether deploy state was given (without it nothing is marked).
    pub deploy_state: bool,
}

/// The label warnings of an overview, for stderr: once per image (digest),
/// naming its other tags, not once per tag.
pub fn label_warnings(ov: &ImagesOverview) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for t in ov.tags.iter().filter(|t| !t.warnings.is_empty()) {
        if !seen.insert(&t.digest) {
            continue;
        }
        let others: Vec<String> = ov
            .tags
            .iter()
            .filter(|o| o.digest == t.digest && o.tag != t.tag)
            .map(|o| format!("`{}`", o.tag))
            .collect();
        let also = if others.is_empty() {
            String::new()
        } else {
            format!(" (also {})", others.join(", "))
        };
        out.push(format!("`{}:{}`{also}: {}", ov.image, t.tag, t.warnings.join("; ")));
    }
    out
}

/// Builds the `images_overview` of `listing` for `workspace`. `limit` keeps
/// the newest N tags, plus every deployed tag beyond them: what runs now is
/// half of the question the overview answers.
pub fn images_overview(
    listing: &RepositoryListing,
    workspace: &str,
    state: Option<&DeployState>,
    limit: Option<usize>,
) -> ImagesOverview {
    let image = listing.image_name();
    let mut deployed: Vec<DeployRecord> = state
        .map(|s| s.records_for(&image).cloned().collect())
        .unwrap_or_default();
    deployed.sort_by(|a, b| (&a.host, &a.app, &a.path).cmp(&(&b.host, &b.app, &b.path)));
    let mut hosts_of: BTreeMap<&Digest, BTreeSet<String>> = BTreeMap::new();
    for r in &deployed {
        hosts_of.entry(&r.digest).or_default().insert(r.host.clone());
    }
    let mut tags = tag_infos(listing);
    for t in &mut tags {
        let hosts: Vec<String> = hosts_of
            .get(&t.digest)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default();
        t.deployed = Some(!hosts.is_empty());
        t.hosts = Some(hosts);
    }
    let total = tags.len();
    if let Some(n) = limit {
        let mut i = 0;
        tags.retain(|t| {
            i += 1;
            i <= n || t.deployed == Some(true)
        });
    }
    let omitted_tags = total - tags.len();
    let tagged: BTreeSet<&Digest> = listing.tags.values().collect();
    let untagged_deployed = hosts_of
        .iter()
        .filter(|(d, _)| !tagged.contains(*d))
        .map(|(d, hosts)| UntaggedDeploy {
            digest: (*d).clone(),
            hosts: hosts.iter().cloned().collect(),
            recorded_tags: deployed
                .iter()
                .filter(|r| &r.digest == *d)
                .filter_map(|r| r.tag.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        })
        .collect();
    let hosts_differ = if hosts_of.len() > 1 {
        deployed
            .iter()
            .map(|r| HostDeploy {
                host: r.host.clone(),
                digest: r.digest.clone(),
                tags: listing.tags_of(&r.digest).into_iter().map(str::to_string).collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    ImagesOverview {
        image,
        workspace: workspace.to_string(),
        deployed,
        tags,
        untagged_deployed,
        hosts_differ,
        omitted_tags,
        deploy_state: state.is_some(),
    }
}

/// One repository of `registry_overview`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryOverview {
    /// Repository path, e.g. `rednaw/hello-world`.
    pub name: String,
    /// Tags, newest first, each with its `problems`.
    pub tags: Vec<TagInfo>,
    /// Distinct digests the tags point to.
    pub digests: usize,
    /// Total size of the distinct blobs (manifests, configs, layers; index
    /// children included), each counted once.
    pub size_bytes: u64,
    /// Tags that break the CI contract.
    pub flagged: usize,
    /// Why the repository could not be read (it then has no tags); only
    /// present when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `registry_overview` as data (its `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryOverview {
    pub registry: String,
    /// Sorted by name.
    pub repositories: Vec<RepositoryOverview>,
}

/// How `tag` of an image with `info`'s labels breaks the CI contract: one
/// tag, the short SHA, and the four OCI labels, `created` a date.
pub fn contract_problems(info: &TagInfo, entry: Option<&ImageEntry>) -> Vec<String> {
    let Some(entry) = entry else {
        return vec!["manifest or config unreadable".to_string()];
    };
    let m = &entry.metadata;
    let mut out = Vec::new();
    let missing: Vec<&str> = CI_LABELS
        .iter()
        .zip([&m.revision, &m.description, &m.created, &m.source])
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.trim_start_matches("org.opencontainers.image."))
        .collect();
    if m.labels_unreadable && !missing.is_empty() {
        out.push(format!("config unreadable, label {} unknown", missing.join(", ")));
    } else if !missing.is_empty() {
        out.push(format!("missing label {}", missing.join(", ")));
    }
    if let Some(rev) = &m.revision {
        let short: String = rev.chars().take(7).collect();
        if short != info.tag {
            out.push(format!("tag is not revision[:7] (`{}`)", sanitize(&short)));
        }
    }
    if m.created.is_some() && info.created_time.is_none() {
        out.push("created is not a date".to_string());
    }
    out
}

/// Builds `registry_overview` from the scanned repositories and those that
/// could not be read.
pub fn registry_overview(
    registry: &str,
    listings: &[RepositoryListing],
    unreadable: &[UnreadableRepository],
) -> RegistryOverview {
    let mut repositories: Vec<RepositoryOverview> = listings
        .iter()
        .map(|l| {
            let mut tags = tag_infos(l);
            for t in &mut tags {
                t.problems = Some(contract_problems(t, l.images.get(&t.digest)));
            }
            let flagged = tags
                .iter()
                .filter(|t| t.problems.as_ref().is_some_and(|p| !p.is_empty()))
                .count();
            RepositoryOverview {
                name: l.repository.clone(),
                digests: l.tags.values().collect::<BTreeSet<_>>().len(),
                size_bytes: l.size_bytes(),
                flagged,
                tags,
                error: None,
            }
        })
        .chain(unreadable.iter().map(|u| RepositoryOverview {
            name: u.name.clone(),
            tags: Vec::new(),
            digests: 0,
            size_bytes: 0,
            flagged: 0,
            error: Some(u.error.to_string()),
        }))
        .collect();
    repositories.sort_by(|a, b| a.name.cmp(&b.name));
    RegistryOverview {
        registry: registry.to_string(),
        repositories,
    }
}

/// How text output looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextStyle {
    /// Line width to cut descriptions to; `None`: no limit.
    pub width: Option<usize>,
    /// ANSI colour (bold headers, green `→`, yellow `!`).
    pub colour: bool,
}

impl TextStyle {
    /// The style for stdout, the one part of this module that looks at the
    /// environment. Width: when stdout is a terminal, its width (else
    /// `$COLUMNS`, else 80); when it is not, `$COLUMNS` if set (a script
    /// can ask for a width), else no limit, so `| grep` and files get whole
    /// descriptions. Colour: only on a terminal, and not with `NO_COLOR`
    /// set or `TERM=dumb`.
    pub fn for_stdout() -> TextStyle {
        use std::io::IsTerminal;
        let tty = std::io::stdout().is_terminal();
        let columns = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|&c| c > 0);
        let width = if tty {
            console::Term::stdout()
                .size_checked()
                .map(|(_, cols)| cols as usize)
                .or(columns)
                .or(Some(80))
        } else {
            columns
        };
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
            || std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        TextStyle {
            width,
            colour: tty && !no_colour,
        }
    }
}

/// Narrowest a description is cut to, however narrow the terminal.
const MIN_DESCRIPTION: usize = 12;
/// Widest an unparseable `created` is shown.
const MAX_RAW_CREATED: usize = 32;
const CREATED_WIDTH: usize = 19;

/// Replaces control characters (escape sequences in a label must not
/// reach the terminal) and the bidirectional embeddings, overrides and
/// isolates (which would show the row's text in another order than it
/// has), and returns the text.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Line ends a description's first line stops at: `\n`, `\r`, vertical
/// tab, form feed, NEL and the Unicode line and paragraph separators.
fn is_line_end(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{b}' | '\u{c}' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// `created` as shown: `YYYY-MM-DD HH:MM:SS` UTC, the raw text when it is
/// not a date, `-` when missing.
fn created_text(t: &TagInfo) -> String {
    match (&t.created_time, &t.created) {
        (Some(time), _) => time.format("%Y-%m-%d %H:%M:%S").to_string(),
        (None, Some(raw)) => console::truncate_str(&sanitize(raw), MAX_RAW_CREATED, "…").into_owned(),
        (None, None) => "-".to_string(),
    }
}

/// The first line of the description, trimmed; `-` when missing or empty.
fn description_text(t: &TagInfo) -> String {
    let first = t
        .description
        .as_deref()
        .and_then(|d| d.split(is_line_end).map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("-");
    sanitize(first)
}

fn paint(text: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Writes the tag table: a 4-column marker, TAG as wide as the longest tag,
/// CREATED, DESCRIPTION cut to the line width.
fn write_table(out: &mut String, rows: &[(&str, &str, &TagInfo)], style: &TextStyle) {
    let tag_w = rows
        .iter()
        .map(|(_, _, t)| console::measure_text_width(&t.tag))
        .max()
        .unwrap_or(0)
        .max(3);
    let created: Vec<String> = rows.iter().map(|(_, _, t)| created_text(t)).collect();
    let created_w = created
        .iter()
        .map(|c| console::measure_text_width(c))
        .max()
        .unwrap_or(0)
        .max(CREATED_WIDTH);
    let prefix = 4 + tag_w + 3 + created_w + 2;
    let _ = writeln!(out, "    {:tag_w$}   {:created_w$}  DESCRIPTION", "TAG", "CREATED");
    for ((marker, marker_colour, t), created) in rows.iter().zip(&created) {
        let mut desc = description_text(t);
        if let Some(w) = style.width {
            let avail = w.saturating_sub(prefix).max(MIN_DESCRIPTION);
            desc = console::truncate_str(&desc, avail, "…").into_owned();
        }
        let tag_pad = tag_w - console::measure_text_width(&t.tag);
        let created_pad = created_w - console::measure_text_width(created);
        let marker_pad = 4 - console::measure_text_width(marker);
        let _ = writeln!(
            out,
            "{}{}{}{}   {}{}  {}",
            paint(marker, marker_colour, style.colour && !marker.is_empty()),
            " ".repeat(marker_pad),
            t.tag,
            " ".repeat(tag_pad),
            created,
            " ".repeat(created_pad),
            desc
        );
    }
}

/// `images_overview` as text.
pub fn render_images(ov: &ImagesOverview, style: &TextStyle) -> String {
    let mut out = String::new();
    let header = format!("IMAGE: {}   workspace: {}", ov.image, sanitize(&ov.workspace));
    let _ = writeln!(out, "{}", paint(&header, "1", style.colour));
    if ov.tags.is_empty() {
        let _ = writeln!(out, "    (no tags)");
    } else {
        let rows: Vec<(&str, &str, &TagInfo)> = ov
            .tags
            .iter()
            .map(|t| (if t.deployed == Some(true) { "→" } else { "" }, "32", t))
            .collect();
        write_table(&mut out, &rows, style);
    }
    if ov.omitted_tags > 0 {
        let _ = writeln!(out, "    … {} older tags not shown (--limit)", ov.omitted_tags);
    }
    if !ov.untagged_deployed.is_empty() {
        let _ = writeln!(out, "Deployed, but no tag points to the digest:");
        for u in &ov.untagged_deployed {
            let was = if u.recorded_tags.is_empty() {
                String::new()
            } else {
                format!("  (deployed as {})", sanitize(&u.recorded_tags.join(", ")))
            };
            let _ = writeln!(
                out,
                "{}   {}{}  {}",
                paint("→", "32", style.colour),
                sanitize(&u.hosts.join(", ")),
                was,
                u.digest
            );
        }
    }
    if !ov.hosts_differ.is_empty() {
        let _ = writeln!(
            out,
            "Hosts of workspace {} run different digests:",
            sanitize(&ov.workspace)
        );
        let host_w = ov
            .hosts_differ
            .iter()
            .map(|h| console::measure_text_width(&sanitize(&h.host)))
            .max()
            .unwrap_or(0);
        let tags_w = ov
            .hosts_differ
            .iter()
            .map(|h| tags_text(&h.tags).len())
            .max()
            .unwrap_or(0);
        for h in &ov.hosts_differ {
            let host = sanitize(&h.host);
            let pad = host_w - console::measure_text_width(&host);
            let _ = writeln!(
                out,
                "    {host}{}   {:tags_w$}   {}",
                " ".repeat(pad),
                tags_text(&h.tags),
                h.digest
            );
        }
    }
    out
}

fn tags_text(tags: &[String]) -> String {
    if tags.is_empty() {
        "(untagged)".to_string()
    } else {
        tags.join(", ")
    }
}

/// `registry_overview` as text: per repository a header, the tag table
/// (`!` on tags that break the CI contract), a summary line and the
/// problems of the flagged tags.
pub fn render_registry(ov: &RegistryOverview, style: &TextStyle) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        paint(&format!("REGISTRY: {}", ov.registry), "1", style.colour)
    );
    if ov.repositories.is_empty() {
        let _ = writeln!(out, "    (no repositories)");
    }
    for repo in &ov.repositories {
        out.push('\n');
        let header = format!("IMAGE: {}/{}", ov.registry, repo.name);
        let _ = writeln!(out, "{}", paint(&header, "1", style.colour));
        if let Some(error) = &repo.error {
            let _ = writeln!(
                out,
                "{}   cannot be read: {}",
                paint("!", "33", style.colour),
                sanitize(error)
            );
            continue;
        }
        if repo.tags.is_empty() {
            let _ = writeln!(out, "    (no tags)");
        } else {
            let rows: Vec<(&str, &str, &TagInfo)> = repo
                .tags
                .iter()
                .map(|t| {
                    let flagged = t.problems.as_ref().is_some_and(|p| !p.is_empty());
                    (if flagged { "!" } else { "" }, "33", t)
                })
                .collect();
            write_table(&mut out, &rows, style);
        }
        let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut summary = format!(
            "    {}, {}, {} in distinct blobs",
            plural(repo.tags.len(), "tag", "tags"),
            plural(repo.digests, "digest", "digests"),
            crate::human::bytes(repo.size_bytes)
        );
        if repo.flagged > 0 {
            let _ = write!(
                summary,
                ", {} breaking the CI contract",
                plural(repo.flagged, "tag", "tags")
            );
        }
        let _ = writeln!(out, "{summary}");
        for t in &repo.tags {
            for p in t.problems.iter().flatten() {
                let _ = writeln!(out, "{}   {}: {p}", paint("!", "33", style.colour), t.tag);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy_state::HistoryEntry;
    use crate::listing::ManifestKind;
    use crate::metadata::ImageMetadata;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    fn entry(digest: Digest, rev: Option<&str>, desc: Option<&str>, created: Option<&str>) -> ImageEntry {
        let labels: BTreeMap<String, String> = [
            (crate::metadata::LABEL_REVISION, rev),
            (crate::metadata::LABEL_DESCRIPTION, desc),
            (crate::metadata::LABEL_CREATED, created),
            (crate::metadata::LABEL_SOURCE, Some("https://example.com/x")),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string())))
        .collect();
        ImageEntry {
            digest,
            media_type: crate::registry::MEDIA_OCI_MANIFEST.into(),
            kind: ManifestKind::Image,
            metadata: ImageMetadata::from_labels(Some(&labels), None),
            children: Vec::new(),
            children_unknown: false,
            blobs: BTreeMap::new(),
            manifest_size: 100,
        }
    }

    /// The DESIGN.md example plus an undated tag and two tags of one digest.
    fn listing() -> RepositoryListing {
        let mut l = RepositoryListing {
            registry: "registry.rednaw.nl".into(),
            repository: "rednaw/hello-world".into(),
            ..Default::default()
        };
        let e1 = entry(
            d('1'),
            Some("eb53023aaaa"),
            Some("simple deploy\n\nlong body"),
            Some("2026-01-25T01:01:33Z"),
        );
        let e2 = entry(
            d('2'),
            Some("6350192bbbb"),
            Some("version 0.0.2"),
            Some("2026-01-25T01:10:00Z"),
        );
        let e3 = entry(d('3'), None, None, None);
        for e in [e1, e2, e3] {
            l.images.insert(e.digest.clone(), e);
        }
        l.tags.insert("eb53023".into(), d('1'));
        l.tags.insert("6350192".into(), d('2'));
        l.tags.insert("latest".into(), d('2'));
        l.tags.insert("old".into(), d('3'));
        l
    }

    fn record(host: &str, digest: Digest, tag: Option<&str>) -> DeployRecord {
        DeployRecord {
            host: host.into(),
            path: None,
            app: "hello-world".into(),
            workspace: "dev".into(),
            image: "registry.rednaw.nl/rednaw/hello-world".into(),
            tag: tag.map(str::to_string),
            digest,
            description: None,
            deployed_at: None,
            deployed_by: None,
            history: Vec::<HistoryEntry>::new(),
        }
    }

    fn state(records: Vec<DeployRecord>) -> DeployState {
        DeployState {
            workspace: "dev".into(),
            collected_at: None,
            hosts: records.iter().map(|r| r.host.clone()).collect(),
            records,
        }
    }

    #[test]
    fn design_layout_exactly() {
        let mut l = listing();
        l.tags.retain(|t, _| t == "eb53023" || t == "6350192");
        let s = state(vec![record("web1", d('1'), Some("eb53023"))]);
        let ov = images_overview(&l, "dev", Some(&s), None);
        assert_eq!(
            render_images(&ov, &TextStyle::default()),
            "IMAGE: registry.rednaw.nl/rednaw/hello-world   workspace: dev\n\
             \x20   TAG       CREATED              DESCRIPTION\n\
             \x20   6350192   2026-01-25 01:10:00  version 0.0.2\n\
             →   eb53023   2026-01-25 01:01:33  simple deploy\n"
        );
    }

    #[test]
    fn sorting_undated_last_ties_by_tag() {
        let order: Vec<String> = tag_infos(&listing()).into_iter().map(|t| t.tag).collect();
        assert_eq!(order, ["6350192", "latest", "eb53023", "old"]);
    }

    #[test]
    fn hosts_differ_and_untagged_deploys() {
        let s = state(vec![
            record("web2", d('9'), Some("gone123")),
            record("web1", d('2'), Some("6350192")),
        ]);
        let ov = images_overview(&listing(), "dev", Some(&s), None);
        let marked: Vec<&str> = ov
            .tags
            .iter()
            .filter(|t| t.deployed == Some(true))
            .map(|t| t.tag.as_str())
            .collect();
        assert_eq!(marked, ["6350192", "latest"]);
        assert_eq!(ov.untagged_deployed.len(), 1);
        assert_eq!(ov.untagged_deployed[0].hosts, ["web2"]);
        assert_eq!(
            ov.hosts_differ.iter().map(|h| h.host.as_str()).collect::<Vec<_>>(),
            ["web1", "web2"]
        );
        let text = render_images(&ov, &TextStyle::default());
        let tail: Vec<&str> = text.lines().skip(6).collect();
        assert_eq!(
            tail,
            [
                "Deployed, but no tag points to the digest:".to_string(),
                format!("→   web2  (deployed as gone123)  {}", d('9')),
                "Hosts of workspace dev run different digests:".to_string(),
                format!("    web1   6350192, latest   {}", d('2')),
                format!("    web2   (untagged)        {}", d('9')),
            ]
        );
    }

    #[test]
    fn limit_keeps_deployed_rows() {
        let s = state(vec![record("web1", d('3'), None)]);
        let ov = images_overview(&listing(), "dev", Some(&s), Some(1));
        let tags: Vec<&str> = ov.tags.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(tags, ["6350192", "old"]);
        assert_eq!(ov.omitted_tags, 2);
    }

    #[test]
    fn width_cuts_descriptions_and_control_characters_are_replaced() {
        let mut l = listing();
        l.tags.retain(|t, _| t == "eb53023");
        let e = l.images.get_mut(&d('1')).unwrap();
        e.metadata.description = Some("a \x1b[31mred\x1b[0m and very long description".into());
        let ov = images_overview(&l, "dev", None, None);
        let text = render_images(
            &ov,
            &TextStyle {
                width: Some(50),
                colour: false,
            },
        );
        let row = text.lines().nth(2).unwrap();
        assert_eq!(row, "    eb53023   2026-01-25 01:01:33  a \u{fffd}[31mred\u{fffd}[0m…");
        assert_eq!(console::measure_text_width(row), 50);
    }

    #[test]
    fn first_line_stops_at_every_line_end_and_bidi_controls_are_replaced() {
        let mut l = listing();
        l.tags.retain(|t, _| t == "eb53023");
        let style = TextStyle {
            width: None,
            colour: false,
        };
        for (description, shown) in [
            ("first\u{2028}SECOND", "first"),
            ("first\u{2029}SECOND", "first"),
            ("first\u{85}SECOND", "first"),
            ("first\rSECOND", "first"),
            ("\r\n  \u{2028}first\r\nSECOND", "first"),
            (
                "safe \u{202e}deliver evil\u{202c} end",
                "safe \u{fffd}deliver evil\u{fffd} end",
            ),
            ("isolate \u{2067}x\u{2069}", "isolate \u{fffd}x\u{fffd}"),
        ] {
            l.images.get_mut(&d('1')).unwrap().metadata.description = Some(description.into());
            let text = render_images(&images_overview(&l, "dev", None, None), &style);
            let row = text.lines().nth(2).unwrap();
            assert!(row.ends_with(&format!("  {shown}")), "{description:?}: {row:?}");
        }
    }

    #[test]
    fn contract_flags() {
        let ov = registry_overview("r:5000", &[listing()], &[]);
        let repo = &ov.repositories[0];
        let problems: BTreeMap<&str, Vec<String>> = repo
            .tags
            .iter()
            .map(|t| (t.tag.as_str(), t.problems.clone().unwrap()))
            .collect();
        assert!(problems["eb53023"].is_empty());
        assert_eq!(problems["latest"], ["tag is not revision[:7] (`6350192`)"]);
        assert_eq!(problems["old"], ["missing label revision, description, created"]);
        let mut l = listing();
        let old = l.tags["old"].clone();
        l.images.get_mut(&old).unwrap().metadata.labels_unreadable = true;
        let ov = registry_overview("r:5000", &[l], &[]);
        let old = ov.repositories[0].tags.iter().find(|t| t.tag == "old").unwrap();
        assert_eq!(
            old.problems.as_deref().unwrap(),
            ["config unreadable, label revision, description, created unknown"]
        );
        assert_eq!((repo.digests, repo.flagged), (3, 2));
    }
}
