//! Scanning registry repositories into [`RepositoryListing`]s: what the
//! overviews render and the cleanup planner decides over.
//!
//! Cost model, which is the point of this module: a repository costs its
//! tag list (paged) and **one manifest request per tag**, plus one config
//! GET per distinct image (and the children of an index). Content fetched
//! by digest is cached on disk by the [`Client`], in one pack file per
//! repository (see [`crate::registry::cache`]), so a second run costs only
//! the tag list and one HEAD per tag, and reads one file.
//!
//! Which request a tag gets: a tag the previous scan of this repository
//! saw is HEADed (its manifest is in the cache, and some registries, Docker
//! Hub among them, do not count HEADs against pull limits); a tag not seen
//! before is read with one GET by tag, which names the digest *and* brings
//! the manifest, instead of a HEAD and then a GET by digest. The tags seen
//! are kept as a hint beside the cache ([`TAG_HINTS_DIR`]): a wrong or
//! stale hint only changes the kind of request, never the result, because
//! the registry's answer (HEAD or GET) always names the digest. Without a
//! cache every tag is read with a GET.
//!
//! All tags go through one pass bounded by the client's concurrency: as soon
//! as a tag names a digest not seen before in this scan, that digest is
//! described by the same task, so the pool stays busy with tags and
//! describes alike instead of waiting for one phase to drain.
//!
//! What is tolerated rather than failed:
//!
//! * a tag deleted between the tag list and its HEAD or GET (404): skipped,
//!   with a warning;
//! * a digest whose manifest or config cannot be read (404, or a manifest
//!   that is not an image or index): the tag stays in
//!   [`RepositoryListing::tags`], the digest is left out of
//!   [`RepositoryListing::images`], with a warning. The cleanup planner
//!   keeps such a digest (fail closed); the overviews show the tag undated.
//!
//! Everything else (unreachable, refused, digest mismatch, timeout) fails
//! the scan: a partial listing must not look complete.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use regex::Regex;

use crate::image::{Described, Platform, describe};
use crate::listing::RepositoryListing;
use crate::reference::{Digest, Reference};
use crate::registry::{Client, RegistryError};

/// Directory under the cache directory holding, per repository, the tags
/// its last scan saw (`<sha256 of registry/repository>.json`, a JSON list).
pub const TAG_HINTS_DIR: &str = "tag-hints";

/// Where the tag hints of `repo` live, when there is a cache.
fn hints_path(client: &Client, repo: &Reference) -> Option<PathBuf> {
    let dir = client.options().cache_dir.as_ref()?;
    let key = Digest::sha256_of(repo.name().as_bytes());
    Some(dir.join(TAG_HINTS_DIR).join(format!("{}.json", key.encoded())))
}

/// The tags the last scan saw; empty when unknown or unreadable.
fn read_hints(path: Option<&Path>) -> HashSet<String> {
    path.and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

/// Best effort, like the cache: a hint that is not written costs a GET
/// instead of a HEAD next time, nothing more.
fn write_hints(path: Option<&Path>, listing: &RepositoryListing) {
    let Some(path) = path else { return };
    let Some(dir) = path.parent() else { return };
    let tags: Vec<&String> = listing
        .tags
        .iter()
        .filter(|(_, d)| listing.images.contains_key(*d))
        .map(|(t, _)| t)
        .collect();
    let Ok(body) = serde_json::to_vec(&tags) else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    if std::fs::write(&tmp, body).is_err() || std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// What a scan reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEvent<'a> {
    /// The tags of `repository` (`registry/repo`) were listed.
    Listed { repository: &'a str, tags: usize },
    /// One tag of `repository` was resolved (and its digest described).
    Scanned { repository: &'a str, tag: &'a str },
    /// Something was skipped; the scan goes on.
    Warning(&'a str),
    /// The scan is over (successfully or not).
    Finished,
}

type Callback = Box<dyn Fn(&ScanEvent<'_>) + Send + Sync>;

enum Sink {
    /// No progress; warnings as `warning: …` lines on stderr.
    Quiet,
    /// A progress bar on stderr; warnings printed above it.
    Bar(ProgressBar),
    /// Every event to a function (tests, embedding).
    Callback(Callback),
}

/// Where a scan reports progress and warnings. The bar is for people only:
/// [`Progress::for_stderr`] shows it when stderr is a terminal and the
/// output is not `--json`; warnings are printed in every mode but
/// [`Progress::callback`], which hands them to the caller instead.
pub struct Progress {
    sink: Sink,
}

impl Progress {
    /// No bar; warnings on stderr.
    pub fn quiet() -> Progress {
        Progress { sink: Sink::Quiet }
    }

    /// A bar on stderr when stderr is a terminal and `json` is false,
    /// otherwise [`Progress::quiet`].
    pub fn for_stderr(json: bool) -> Progress {
        if json || !std::io::stderr().is_terminal() {
            return Progress::quiet();
        }
        // A spinner until the first tag list arrives: a bar of 0/0 would
        // be drawn full.
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} reading the tag list  {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { sink: Sink::Bar(bar) }
    }

    /// Every event to `f`; nothing is printed.
    pub fn callback(f: impl Fn(&ScanEvent<'_>) + Send + Sync + 'static) -> Progress {
        Progress {
            sink: Sink::Callback(Box::new(f)),
        }
    }

    /// Reports one event.
    pub fn report(&self, event: &ScanEvent<'_>) {
        match (&self.sink, event) {
            (Sink::Callback(f), e) => f(e),
            (Sink::Quiet, ScanEvent::Warning(w)) => crate::cli::warn(w),
            (Sink::Quiet, _) => {}
            (Sink::Bar(bar), ScanEvent::Listed { repository, tags }) => {
                let first = bar.length() == Some(0) && *tags > 0;
                bar.set_message(repository.to_string());
                bar.inc_length(*tags as u64);
                if first {
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} [{bar:25}] {pos}/{len} tags, {eta} left  {wide_msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                }
            }
            (Sink::Bar(bar), ScanEvent::Scanned { .. }) => bar.inc(1),
            (Sink::Bar(bar), ScanEvent::Warning(w)) => bar.suspend(|| crate::cli::warn(w)),
            (Sink::Bar(bar), ScanEvent::Finished) => bar.finish_and_clear(),
        }
    }

    fn warn(&self, message: &str) {
        self.report(&ScanEvent::Warning(message));
    }
}

impl Drop for Progress {
    /// A bar left on screen after an error would sit above the error line.
    fn drop(&mut self) {
        if let Sink::Bar(bar) = &self.sink {
            bar.finish_and_clear();
        }
    }
}

/// What one tag's share of the pass found.
enum TagOutcome {
    /// The tag is gone (404 on HEAD).
    Gone(String),
    /// The tag points to `digest`; `described` is set for the first tag of
    /// a digest (an error message if the digest could not be read).
    Found {
        tag: String,
        digest: Digest,
        described: Option<Result<Box<Described>, String>>,
    },
}

/// Errors that concern one digest only: the scan goes on without it.
fn skippable(e: &RegistryError) -> bool {
    matches!(e, RegistryError::NotFound { .. } | RegistryError::Invalid { .. })
}

async fn scan_tag(
    client: &Client,
    repo: &Reference,
    tag: String,
    platform: &Platform,
    seen_before: bool,
    claimed: &Mutex<HashSet<Digest>>,
) -> Result<TagOutcome, RegistryError> {
    // A known tag: HEAD, then (usually from the cache) the manifest by
    // digest. A new tag: one GET by tag gives both.
    let (digest, manifest) = if seen_before {
        match client.manifest_head(repo, &tag).await {
            Ok(h) => (h.digest, None),
            Err(RegistryError::NotFound { .. }) => return Ok(TagOutcome::Gone(tag)),
            Err(e) => return Err(e),
        }
    } else {
        match client.manifest_get(repo, &tag).await {
            Ok(m) => (m.digest.clone(), Some(m)),
            Err(RegistryError::NotFound { .. }) => return Ok(TagOutcome::Gone(tag)),
            Err(e) => return Err(e),
        }
    };
    let first = claimed.lock().unwrap_or_else(|e| e.into_inner()).insert(digest.clone());
    if !first {
        return Ok(TagOutcome::Found {
            tag,
            digest,
            described: None,
        });
    }
    let described = async {
        let manifest = match manifest {
            Some(m) => m,
            None => client.manifest_get(repo, &digest.to_string()).await?,
        };
        describe(client, repo, &manifest, platform).await
    }
    .await;
    let described = match described {
        Ok(d) => Ok(Box::new(d)),
        Err(e) if skippable(&e) => Err(e.to_string()),
        Err(e) => return Err(e),
    };
    Ok(TagOutcome::Found {
        tag,
        digest,
        described: Some(described),
    })
}

/// Scans one repository: its tags, the digest each points to, and the
/// metadata and sizes of every distinct digest (index children included).
/// Any tag or digest in `repo` is ignored. Fails with
/// [`RegistryError::NotFound`] when the repository does not exist.
pub async fn scan_repository(
    client: &Client,
    repo: &Reference,
    platform: &Platform,
    progress: &Progress,
) -> Result<RepositoryListing, RegistryError> {
    let result = scan_one(client, repo, platform, progress).await;
    progress.report(&ScanEvent::Finished);
    result
}

/// The open cache pack of one repository's scan: closed when dropped, and
/// saved only when the scan got to the end.
struct PackGuard<'a> {
    client: &'a Client,
    repo: &'a Reference,
    complete: bool,
}

impl<'a> PackGuard<'a> {
    fn open(client: &'a Client, repo: &'a Reference) -> PackGuard<'a> {
        client.open_pack(repo);
        PackGuard {
            client,
            repo,
            complete: false,
        }
    }
}

impl Drop for PackGuard<'_> {
    fn drop(&mut self) {
        self.client.close_pack(self.repo, self.complete);
    }
}

async fn scan_one(
    client: &Client,
    repo: &Reference,
    platform: &Platform,
    progress: &Progress,
) -> Result<RepositoryListing, RegistryError> {
    let repo = repo.repo_only();
    let name = repo.name();
    let tags = client.tag_list(&repo).await?;
    progress.report(&ScanEvent::Listed {
        repository: &name,
        tags: tags.len(),
    });
    let mut listing = RepositoryListing {
        registry: repo.registry.clone(),
        repository: repo.repository.clone(),
        tags: BTreeMap::new(),
        images: BTreeMap::new(),
    };
    let hints_path = hints_path(client, &repo);
    let hints = read_hints(hints_path.as_deref());
    let mut pack = PackGuard::open(client, &repo);
    let claimed = Mutex::new(HashSet::new());
    let concurrency = client.options().concurrency.max(1);
    let mut pass = futures::stream::iter(tags)
        .map(|tag| {
            let seen = hints.contains(&tag);
            scan_tag(client, &repo, tag, platform, seen, &claimed)
        })
        .buffer_unordered(concurrency);
    while let Some(outcome) = pass.next().await {
        match outcome? {
            TagOutcome::Gone(tag) => {
                progress.warn(&format!(
                    "tag `{tag}` of `{name}` was deleted while the repository was read; skipped"
                ));
                progress.report(&ScanEvent::Scanned {
                    repository: &name,
                    tag: &tag,
                });
            }
            TagOutcome::Found { tag, digest, described } => {
                match described {
                    Some(Ok(d)) => {
                        let d = *d;
                        for child in d.children {
                            // One tree may have met it too deep to read
                            // what it holds, another not: the full one.
                            match listing.images.entry(child.digest.clone()) {
                                std::collections::btree_map::Entry::Vacant(v) => {
                                    v.insert(child);
                                }
                                std::collections::btree_map::Entry::Occupied(mut o) => {
                                    if o.get().children_unknown && !child.children_unknown {
                                        o.insert(child);
                                    }
                                }
                            }
                        }
                        // A digest seen as a child first is replaced by its
                        // own description: same content, same result.
                        listing.images.insert(d.entry.digest.clone(), d.entry);
                    }
                    Some(Err(e)) => progress.warn(&format!(
                        "cannot read `{name}@{digest}` (tag `{tag}`): {e}; shown without metadata"
                    )),
                    None => {}
                }
                progress.report(&ScanEvent::Scanned {
                    repository: &name,
                    tag: &tag,
                });
                listing.tags.insert(tag, digest);
            }
        }
    }
    pack.complete = true;
    drop(pack);
    write_hints(hints_path.as_deref(), &listing);
    Ok(listing)
}

/// Which repositories of a catalog to scan.
#[derive(Debug, Clone, Default)]
pub struct CatalogFilter {
    /// Scan only repositories whose name (e.g. `rednaw/hello-world`)
    /// matches; unanchored, like `grep` (`^…$` to match whole names).
    /// Default: every repository.
    pub repo: Option<Regex>,
    /// `n` of the first catalog request; `None` lets the registry choose
    /// (pages are followed either way). Default: `None`.
    pub page_size: Option<usize>,
}

/// Scans every repository of `registry`'s catalog that `filter` selects,
/// sorted by name. Repositories are scanned concurrently under the
/// client's bound. A repository listed in the catalog whose tag list is
/// gone (404) is returned without tags, with a warning: the catalog of
/// the distribution registry keeps repositories whose tags were all deleted.
/// Any other error fails the scan: what acts on the result (the cleanup)
/// needs every repository.
pub async fn scan_registry(
    client: &Client,
    registry: &str,
    filter: &CatalogFilter,
    platform: &Platform,
    progress: &Progress,
) -> Result<Vec<RepositoryListing>, RegistryError> {
    let result = scan_catalog(client, registry, filter, platform, progress, false).await;
    progress.report(&ScanEvent::Finished);
    result.map(|scan| scan.listings)
}

/// A repository of the catalog that could not be read.
#[derive(Debug)]
pub struct UnreadableRepository {
    /// Repository path.
    pub name: String,
    pub error: RegistryError,
}

/// What [`scan_registry_keep_going`] read, and what it could not.
#[derive(Debug, Default)]
pub struct RegistryScan {
    /// Sorted by name.
    pub listings: Vec<RepositoryListing>,
    /// Sorted by name.
    pub unreadable: Vec<UnreadableRepository>,
}

/// [`scan_registry`] for what only reads (the overview): a repository
/// whose own answers fail — refused (a catalog lists repositories the
/// credentials may not pull), a 4xx status, an invalid tag list — is
/// returned in `unreadable`, with a warning, and the others are read.
/// Errors that are not the repository's (unreachable, deadline passed,
/// credentials unreadable) still fail the scan.
pub async fn scan_registry_keep_going(
    client: &Client,
    registry: &str,
    filter: &CatalogFilter,
    platform: &Platform,
    progress: &Progress,
) -> Result<RegistryScan, RegistryError> {
    let result = scan_catalog(client, registry, filter, platform, progress, true).await;
    progress.report(&ScanEvent::Finished);
    result
}

/// Whether `e` says something about one repository rather than about the
/// registry or the way to it. A 5xx that retries did not cure is not (a
/// registry down behind a catalog that still answers would otherwise cost
/// every repository its own deadline); nor is content that does not match
/// its digest: the registry (or something on the way) cannot be trusted.
fn repository_error(e: &RegistryError) -> bool {
    matches!(
        e,
        RegistryError::Denied { .. }
            | RegistryError::Status { status: 400..=499, .. }
            | RegistryError::Invalid { .. }
            | RegistryError::Unsupported { .. }
    )
}

async fn scan_catalog(
    client: &Client,
    registry: &str,
    filter: &CatalogFilter,
    platform: &Platform,
    progress: &Progress,
    keep_going: bool,
) -> Result<RegistryScan, RegistryError> {
    let names: Vec<String> = client
        .catalog_list(registry, filter.page_size)
        .await?
        .into_iter()
        .filter(|n| filter.repo.as_ref().is_none_or(|r| r.is_match(n)))
        .collect();
    let mut repos = Vec::with_capacity(names.len());
    for n in &names {
        match Reference::repository(registry, n) {
            Ok(r) => repos.push(r),
            Err(e) => progress.warn(&format!("catalog of `{registry}` lists `{n}`: {e}; skipped")),
        }
    }
    // Per-repository passes run side by side so that small repositories do
    // not leave the pool idle; the client's semaphore bounds the requests.
    let concurrency = client.options().concurrency.max(1);
    let mut scans = futures::stream::iter(repos)
        .map(|r| async move {
            match scan_one(client, &r, platform, progress).await {
                Err(RegistryError::NotFound { .. }) => {
                    progress.warn(&format!("repository `{}` has no tags; shown empty", r.name()));
                    Ok(RepositoryListing {
                        registry: r.registry.clone(),
                        repository: r.repository.clone(),
                        ..Default::default()
                    })
                }
                other => other.map_err(|e| (r.repository.clone(), e)),
            }
        })
        .buffered(concurrency);
    let mut out = RegistryScan::default();
    while let Some(result) = scans.next().await {
        match result {
            Ok(listing) => out.listings.push(listing),
            Err((name, error)) if keep_going && repository_error(&error) => {
                progress.warn(&format!(
                    "repository `{name}` cannot be read: {error}; shown as unreadable"
                ));
                out.unreadable.push(UnreadableRepository { name, error });
            }
            Err((_, error)) => return Err(error),
        }
    }
    out.listings.sort_by(|a, b| a.repository.cmp(&b.repository));
    out.unreadable.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
