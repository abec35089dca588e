//! The network half of `registry_cleanup`: scan a registry, plan with
//! [`crate::cleanup::plan`], and with `--apply` delete the planned digests
//! without ever deleting one that is kept or protected.
//!
//! Scope: every repository of the registry's catalog is scanned and
//! planned, not only those the policy's `repositories` names, because
//! `defaults` apply to every repository.
//!
//! What holds when applying — it fails closed:
//!
//! * [`check_apply`] refuses to start unless the policy lists workspaces
//!   and every one has deploy state; nothing is read from or sent to the
//!   registry.
//! * Only digests the plan decided to delete are ever deleted; per
//!   repository, just before its deletions, its tags are listed and each
//!   is resolved again ([`recheck_repository`]). A digest whose tags
//!   changed is skipped, as is a child of a skipped index or of an index
//!   pushed since the plan, and an index holding a digest that stays with
//!   no tag now and no other index ([`RepositoryPlan::recheck`]). Any
//!   error while reading the repository again skips **all** its
//!   deletions, with the error as the reason.
//! * Order: a digest is deleted only after every deleted index that holds
//!   it, and right after the last of them, so an interrupted run never
//!   leaves a tagged index pointing to deleted children. When an index's
//!   DELETE fails, its children are kept. The price: a child whose DELETE
//!   fails after its index went is reachable from no tag, so a rerun that
//!   scans again cannot find it; the result marks it (`index_deleted`).
//! * `404` on DELETE counts as already gone once a HEAD of the manifest
//!   answers 404 too (see `confirm_gone`), and a planned digest whose
//!   tags are all gone and whose manifest answers `404` counts as already
//!   gone too (a concurrent or earlier run deleted it): applying the same
//!   plan twice deletes nothing twice and finishes what the first left.
//! * `405` or `UNSUPPORTED` (the registry refuses deletes) stops the run:
//!   nothing new starts, and what was not reached is reported as skipped.
//! * An [`Interrupt`] (Ctrl-C or SIGTERM during `--apply`) stops the run the
//!   same way, except that the children of an index already deleted are
//!   still deleted: no tag reaches them any more, so a rerun could not find
//!   them. A second signal ends the process at once.
//! * Concurrency: a few repositories at a time, each with up to
//!   `--concurrency` deletes in flight; the client's semaphore bounds the
//!   requests of the whole run.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cleanup::{
    DigestPlan, Plan, Planning, Recheck, RepositoryPlan, Reviewed, SkipReason, missing_workspaces, plan_within,
};
use crate::cli::{EXIT_FAILURE, Failure};
use crate::deploy_state::{DeployState, DeployStateError};
use crate::image::Platform;
use crate::policy::Policy;
use crate::reference::{Digest, Reference};
use crate::registry::{Client, Deleted, RegistryError};
use crate::scan::{CatalogFilter, Progress, scan_registry};

/// Why `--apply` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyRefused {
    /// The policy lists workspaces without deploy state.
    #[error("refusing to apply: no deploy state for workspace{} {}", if .workspaces.len() == 1 { "" } else { "s" }, quoted(.workspaces))]
    MissingState {
        /// The workspaces of the policy that no `--protected` file covers,
        /// in policy order.
        workspaces: Vec<String>,
    },
    /// The policy lists no workspaces, so nothing says whose deploy state
    /// must be present.
    #[error("refusing to apply: the policy lists no `workspaces`")]
    NoWorkspaces,
    /// No deploy record names this registry and none of the digests they
    /// name is here (or there are none), while the plan deletes: most
    /// likely the wrong registry or the wrong workspaces, and nothing that
    /// runs would be protected.
    #[error("refusing to apply: the deploy state of {} protects nothing in `{registry}`: {}", quoted(.workspaces), protects_nothing_why(*.records, .hosts))]
    ProtectsNothingHere {
        registry: String,
        /// The workspaces of the state files, sorted.
        workspaces: Vec<String>,
        records: usize,
        /// The registry hosts the records name, sorted.
        hosts: Vec<String>,
    },
}

impl ApplyRefused {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            ApplyRefused::MissingState { .. } => {
                "collect the deploy state of those workspaces (playbooks/collect_deploy_info.yml) and pass each \
                 file with --protected; nothing was deleted"
            }
            ApplyRefused::NoWorkspaces => {
                "list in the policy every workspace whose hosts run images from this registry (`workspaces: [dev, \
                 prod]`), so that their deploy state protects what runs; nothing was deleted"
            }
            ApplyRefused::ProtectsNothingHere { .. } => {
                "check the registry and the workspaces (task cleanup: REGISTRY and WORKSPACES); if these workspaces \
                 really run nothing from this registry, say that the policy is for it with `registry: HOST[:PORT]` \
                 in the policy; nothing was deleted"
            }
        }
    }
}

fn protects_nothing_why(records: usize, hosts: &[String]) -> String {
    match records {
        0 => "it holds no deploy records".to_string(),
        1 => format!(
            "its 1 deploy record names images on {} only, and no digest it names is here",
            quoted(hosts)
        ),
        n => format!(
            "its {n} deploy records name images on {} only, and no digest they name is here",
            quoted(hosts)
        ),
    }
}

fn quoted(items: &[String]) -> String {
    items.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")
}

/// Reads every deploy state file, in order; the first that cannot be read
/// or parsed is the error.
pub fn load_states(paths: &[PathBuf]) -> Result<Vec<DeployState>, DeployStateError> {
    paths.iter().map(|p| DeployState::load(p)).collect()
}

/// Whether `--apply` may start: the policy lists workspaces, and every one
/// has state.
pub fn check_apply(policy: &Policy, states: &[DeployState]) -> Result<(), ApplyRefused> {
    if policy.workspaces.is_empty() {
        return Err(ApplyRefused::NoWorkspaces);
    }
    let workspaces = missing_workspaces(policy, states);
    if workspaces.is_empty() {
        Ok(())
    } else {
        Err(ApplyRefused::MissingState { workspaces })
    }
}

/// Whether the deploy state protects anything in `registry`, checked after
/// planning: a refusal when the plan deletes something, no record of
/// `states` names `registry` and no digest of theirs is in it (the plan
/// protects nothing), records or none. That is the sign of a cleanup
/// pointed at the wrong registry, or given the wrong workspaces' state:
/// `REGISTRY=prod task cleanup` with the demo's workspaces would otherwise
/// delete whatever prod hosts run beyond the retention rules. A policy
/// that names its `registry` (the operator saying these workspaces are the
/// ones for it, or that nothing is deployed from it yet) is not refused.
/// Registry hosts compare without regard to ASCII case.
pub fn check_protects_here(
    registry: &str,
    policy: &Policy,
    states: &[DeployState],
    plan: &Plan,
) -> Result<(), ApplyRefused> {
    if policy
        .registry
        .as_deref()
        .is_some_and(|r| r.eq_ignore_ascii_case(registry))
        || plan.delete_count == 0
    {
        return Ok(());
    }
    let records: Vec<_> = states.iter().flat_map(|s| &s.records).collect();
    if records.iter().any(|r| {
        r.image
            .split('/')
            .next()
            .is_some_and(|h| h.eq_ignore_ascii_case(registry))
    }) || plan
        .repositories
        .iter()
        .flat_map(|r| &r.digests)
        .any(|d| d.is_protected())
    {
        return Ok(());
    }
    let hosts: BTreeSet<String> = records
        .iter()
        .map(|r| r.image.split('/').next().unwrap_or_default().to_string())
        .collect();
    let workspaces: BTreeSet<String> = states.iter().map(|s| s.workspace.clone()).collect();
    Err(ApplyRefused::ProtectsNothingHere {
        registry: registry.to_string(),
        workspaces: workspaces.into_iter().collect(),
        records: records.len(),
        hosts: hosts.into_iter().collect(),
    })
}

/// Deploy state older than this is warned about: `playbooks/cleanup.yml`
/// collects it right before planning, so an older file was collected by
/// hand (or kept), and deploys since then are not in it.
pub const STALE_STATE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Warnings about deploy state files collected more than [`STALE_STATE`]
/// before `now`, or whose `collected_at` is not a time or lies ahead (a
/// file without it is not judged), in the order given.
pub fn stale_state_warnings(states: &[DeployState], now: DateTime<Utc>) -> Vec<String> {
    states
        .iter()
        .filter_map(|s| {
            let at = s.collected_at.as_deref()?;
            let Ok(then) = DateTime::parse_from_rfc3339(at) else {
                return Some(format!(
                    "the deploy state of workspace `{}` has `collected_at` `{at}`, not an RFC 3339 time: how old it \
                     is cannot be told",
                    s.workspace
                ));
            };
            let age = now - then.with_timezone(&Utc);
            if age < -STALE_STATE {
                return Some(format!(
                    "the deploy state of workspace `{}` was collected at {at}, {} from now: how old it is cannot be \
                     told (do the clocks agree?)",
                    s.workspace,
                    rough_duration(-age)
                ));
            }
            (age > STALE_STATE).then(|| {
                format!(
                    "the deploy state of workspace `{}` was collected {} ago ({at}): what was deployed since then \
                     is not protected; collect it again (task cleanup collects it first)",
                    s.workspace,
                    rough_duration(age)
                )
            })
        })
        .collect()
}

/// `age` in its largest whole unit: `3 days`, `1 hour`, `45 minutes`.
fn rough_duration(age: chrono::TimeDelta) -> String {
    let (n, unit) = if age.num_days() > 0 {
        (age.num_days(), "day")
    } else if age.num_hours() > 0 {
        (age.num_hours(), "hour")
    } else {
        (age.num_minutes(), "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Warnings about deploy records that name images on another registry than
/// the one cleaned, which is right for images from elsewhere
/// (`docker.io/library/postgres`) and a mistake when the same registry is
/// named two ways (`localhost:5000` and `127.0.0.1:5000`). They protect
/// the digests they name in a repository of the same path here all the
/// same (see `cleanup::plan`), but a deployed digest that is not there is
/// not reported as missing. One warning per other registry, sorted.
pub fn foreign_record_warnings(registry: &str, states: &[DeployState]) -> Vec<String> {
    let mut other: BTreeMap<&str, usize> = BTreeMap::new();
    for r in states.iter().flat_map(|s| &s.records) {
        let host = r.image.split('/').next().unwrap_or_default();
        if host != registry {
            *other.entry(host).or_default() += 1;
        }
    }
    other
        .into_iter()
        .map(|(host, n)| {
            format!(
                "{n} deploy record{} name{} images on `{host}`, not on `{registry}`: {} only the digests \
                 {} in a repository of the same path here (if `{host}` is this registry under another name, \
                 run with that name)",
                if n == 1 { "" } else { "s" },
                if n == 1 { "s" } else { "" },
                if n == 1 { "it protects" } else { "they protect" },
                if n == 1 { "it names" } else { "they name" },
            )
        })
        .collect()
}

/// A DELETE answered 404 counts as already gone only when the manifest is
/// gone indeed: a proxy that routes DELETEs elsewhere may answer 404 for a
/// manifest the registry still serves, and counting that index as gone
/// would delete its children next (a tagged index left without them). So
/// the manifest is HEADed: 404 confirms; found, it is asked again after a
/// pause (a cache or replica in front may lag behind a delete whose answer
/// was lost and retried), and still found, the digest fails (its children
/// stay with it); any other error fails it too.
async fn confirm_gone(client: &Client, repo: &Reference, digest: &Digest) -> Result<Deleted, RegistryError> {
    for pause in CONFIRM_PAUSES {
        match client.manifest_head(repo, &digest.to_string()).await {
            Err(RegistryError::NotFound { .. }) => return Ok(Deleted::AlreadyGone),
            Err(e) => return Err(e),
            Ok(_) => tokio::time::sleep(pause).await,
        }
    }
    match client.manifest_head(repo, &digest.to_string()).await {
        Err(RegistryError::NotFound { .. }) => Ok(Deleted::AlreadyGone),
        Err(e) => Err(e),
        Ok(_) => Err(RegistryError::Status {
            registry: repo.registry.clone(),
            status: 404,
            method: "DELETE".into(),
            path: format!("/v2/{}/manifests/{digest}", repo.repository),
            detail: Some(
                "yet a HEAD of the manifest still finds it, so it is not counted as gone (a proxy routing DELETEs \
                 elsewhere, credentials that may not delete, or a cache that lags: run again)"
                    .into(),
            ),
        }),
    }
}

/// Pauses between the HEADs of [`confirm_gone`] that still find a manifest
/// a DELETE answered 404 for.
const CONFIRM_PAUSES: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];

/// Scans every repository of `registry`'s catalog and plans over it.
pub async fn scan_and_plan(
    client: &Client,
    registry: &str,
    platform: &Platform,
    progress: &Progress,
    planning: &Planning<'_>,
) -> Result<Plan, RegistryError> {
    let listings = scan_registry(client, registry, &CatalogFilter::default(), platform, progress).await?;
    Ok(plan_within(&listings, planning))
}

/// Why a reviewed plan (`--plan FILE`) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReviewedPlanError {
    #[error("cannot read the reviewed plan `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a plan of registry_cleanup (the output of a dry run with --json or --save-plan)")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the reviewed plan `{path}` is of registry `{found}`, not `{registry}`")]
    OtherRegistry {
        path: PathBuf,
        found: String,
        registry: String,
    },
    #[error("`{path}` is the report of an --apply run, not a dry run's plan")]
    Applied { path: PathBuf },
}

impl ReviewedPlanError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        "save the plan of a dry run with --save-plan FILE (or --json > FILE), review it, and give that file; \
         nothing was deleted"
    }
}

/// The part of a saved dry run (`--save-plan`, `--json`) that
/// [`load_reviewed_plan`] reads; other fields are ignored.
#[derive(serde::Deserialize)]
struct SavedReport {
    registry: String,
    applied: bool,
    plan: SavedPlan,
}

#[derive(serde::Deserialize)]
struct SavedPlan {
    repositories: Vec<SavedRepository>,
}

#[derive(serde::Deserialize)]
struct SavedRepository {
    image: String,
    digests: Vec<SavedDigest>,
}

#[derive(serde::Deserialize)]
struct SavedDigest {
    digest: Digest,
    tags: Vec<String>,
    decision: SavedDecision,
}

#[derive(serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum SavedDecision {
    Keep,
    Delete,
}

/// Reads a reviewed plan: the report of a dry run of `registry` saved with
/// `--save-plan` (or `--json`). Its deletions bound what a plan made with
/// it deletes (see [`plan_within`]).
pub fn load_reviewed_plan(path: &Path, registry: &str) -> Result<Reviewed, ReviewedPlanError> {
    let text = std::fs::read(path).map_err(|source| ReviewedPlanError::Read {
        path: path.into(),
        source,
    })?;
    let report: SavedReport = serde_json::from_slice(&text).map_err(|source| ReviewedPlanError::Parse {
        path: path.into(),
        source,
    })?;
    if report.registry != registry {
        return Err(ReviewedPlanError::OtherRegistry {
            path: path.into(),
            found: report.registry,
            registry: registry.to_string(),
        });
    }
    if report.applied {
        return Err(ReviewedPlanError::Applied { path: path.into() });
    }
    let mut reviewed = Reviewed::default();
    for r in report.plan.repositories {
        for d in r.digests.into_iter().filter(|d| d.decision == SavedDecision::Delete) {
            reviewed.add(&r.image, d.digest, d.tags);
        }
    }
    Ok(reviewed)
}

/// What `--apply` did; the `result` of the `--json` output. Every list is
/// sorted by image, then digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyResult {
    /// Digests deleted now, or found already gone.
    pub deleted: Vec<DeletedDigest>,
    /// Planned for deletion but left alone, each with the reason.
    pub skipped: Vec<SkippedDigest>,
    /// Planned for deletion, but the DELETE failed; they are still there.
    pub failed: Vec<FailedDigest>,
    /// Entries of `deleted` that this run removed.
    pub deleted_count: usize,
    /// Entries of `deleted` that were gone already (404).
    pub already_gone_count: usize,
    pub skipped_count: usize,
    pub failed_count: usize,
    /// Why the run stopped before reaching every planned digest (the
    /// registry refuses deletes); `null` when it did not stop.
    pub stopped: Option<String>,
    /// Whether the run was interrupted (Ctrl-C, SIGTERM): what it did not
    /// start is in `skipped` (`"skip": "interrupted"`).
    pub interrupted: bool,
}

/// A digest that is no longer in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletedDigest {
    /// `registry/repository`.
    pub image: String,
    pub digest: Digest,
    /// True when it was gone before this run's DELETE (404, or its tags and
    /// manifest were already gone when the repository was read again).
    pub already_gone: bool,
}

/// A planned deletion left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedDigest {
    /// `registry/repository`.
    pub image: String,
    pub digest: Digest,
    /// Why, as `{"skip": "<snake_case variant>", …fields}`; see [`SkipCause`].
    #[serde(flatten)]
    pub cause: SkipCause,
    /// The reason in words.
    pub text: String,
}

/// Why a planned deletion was left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "skip", rename_all = "snake_case")]
pub enum SkipCause {
    /// Its tags changed since the plan (sorted lists).
    TagsChanged { planned: Vec<String>, now: Vec<String> },
    /// An index that holds it was skipped.
    IndexSkipped { index: Digest },
    /// An index pushed since the plan holds it.
    InNewIndex { index: Digest },
    /// It holds `untagged`, which stays but has no tag now, and every index
    /// holding it was planned for deletion.
    HoldsUntagged { untagged: Digest },
    /// The repository could not be read again just before deleting, so
    /// none of its deletions was made (fail closed).
    RecheckFailed { error: String },
    /// The DELETE of an index that holds it failed, so it stays with it.
    IndexNotDeleted { index: Digest },
    /// The run stopped (the registry refuses deletes) before reaching it.
    Stopped,
    /// The run was interrupted (Ctrl-C, SIGTERM) before reaching it.
    Interrupted,
}

impl From<SkipReason> for SkipCause {
    fn from(r: SkipReason) -> SkipCause {
        match r {
            SkipReason::TagsChanged { planned, now } => SkipCause::TagsChanged { planned, now },
            SkipReason::IndexSkipped { index } => SkipCause::IndexSkipped { index },
            SkipReason::InNewIndex { index } => SkipCause::InNewIndex { index },
            SkipReason::HoldsUntagged { untagged } => SkipCause::HoldsUntagged { untagged },
        }
    }
}

impl std::fmt::Display for SkipCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipCause::TagsChanged { planned, now } => SkipReason::TagsChanged {
                planned: planned.clone(),
                now: now.clone(),
            }
            .fmt(f),
            SkipCause::IndexSkipped { index } => SkipReason::IndexSkipped { index: index.clone() }.fmt(f),
            SkipCause::InNewIndex { index } => SkipReason::InNewIndex { index: index.clone() }.fmt(f),
            SkipCause::HoldsUntagged { untagged } => SkipReason::HoldsUntagged {
                untagged: untagged.clone(),
            }
            .fmt(f),
            SkipCause::RecheckFailed { error } => {
                write!(
                    f,
                    "the repository could not be read again, nothing of it deleted: {error}"
                )
            }
            SkipCause::IndexNotDeleted { index } => {
                write!(f, "the DELETE of its index {} failed", index.short(12))
            }
            SkipCause::Stopped => f.write_str("the run stopped before reaching it"),
            SkipCause::Interrupted => f.write_str("the run was interrupted before reaching it; run again to delete it"),
        }
    }
}

/// A DELETE that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedDigest {
    /// `registry/repository`.
    pub image: String,
    pub digest: Digest,
    /// The error, one line.
    pub error: String,
    /// An index holding it that this run deleted (or found gone), `null` if
    /// none: no tag reaches it any more, so a rerun that scans again does
    /// not find it; delete it by digest by hand.
    pub index_deleted: Option<Digest>,
}

/// The outcome of [`apply`]: the result, and the error that stopped the run
/// or the first error met (for the exit status and hint).
#[derive(Debug, Default)]
pub struct Applied {
    pub result: ApplyResult,
    /// The registry refused deletes (405/`UNSUPPORTED`): the run stopped.
    pub stopped: Option<RegistryError>,
    /// The first error that failed a DELETE or skipped a repository, if any.
    pub first_error: Option<RegistryError>,
}

impl Applied {
    /// The exit status of the run: a failure when the registry refused
    /// deletes (exit 1, with the `storage.delete.enabled` hint), or when a
    /// DELETE failed or a repository could not be read again (the exit code
    /// of the first error). Skips for changed tags are not failures.
    pub fn outcome(self) -> Result<(), Failure> {
        let r = &self.result;
        if let Some(e) = self.stopped {
            let deleted = r.deleted_count;
            let mut f = Failure::from(e);
            f.causes.push(format!(
                "the run stopped: {deleted} digest{} deleted before it did",
                if deleted == 1 { " was" } else { "s were" }
            ));
            return Err(f);
        }
        let unchecked = r
            .skipped
            .iter()
            .filter(|s| matches!(s.cause, SkipCause::RecheckFailed { .. }))
            .count();
        let left = r.skipped.iter().filter(|s| s.cause == SkipCause::Interrupted).count();
        if r.interrupted && r.failed_count == 0 && unchecked == 0 {
            return Err(Failure::new(
                EXIT_FAILURE,
                format!(
                    "interrupted: {} digest{} deleted, {left} planned deletion{} not started",
                    r.deleted_count,
                    if r.deleted_count == 1 { "" } else { "s" },
                    if left == 1 { "" } else { "s" },
                ),
            )
            .with_hint(
                "nothing kept or protected was touched, and the children of every index deleted went with it; \
                 run again to finish",
            ));
        }
        if r.failed_count == 0 && unchecked == 0 {
            return Ok(());
        }
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let code = self.first_error.as_ref().map_or(EXIT_FAILURE, RegistryError::exit_code);
        let mut f = Failure::new(
            code,
            format!(
                "cleanup incomplete: {} DELETE{} failed, {unchecked} planned deletion{} skipped because the \
                 repository could not be read again",
                r.failed_count,
                plural(r.failed_count),
                plural(unchecked),
            ),
        )
        .with_hint(
            "nothing kept or protected was touched; run again to finish (what is already gone counts as deleted)",
        );
        if let Some(e) = &self.first_error {
            f.causes.push(e.to_string());
        }
        if r.interrupted {
            f.causes.push(format!(
                "the run was interrupted: {left} planned deletion{} not started",
                plural(left)
            ));
        }
        Err(f)
    }
}

/// The whole `--json` output of `registry_cleanup`.
#[derive(Debug, Serialize)]
pub struct CleanupReport<'a> {
    /// The registry cleaned (`HOST[:PORT]`).
    pub registry: &'a str,
    /// Whether `--apply` was given.
    pub applied: bool,
    /// The plan: every digest with its tags, created date, decision and
    /// reasons, and the bytes to reclaim (see [`Plan`]).
    pub plan: &'a Plan,
    /// What `--apply` did; `null` in a dry run.
    pub result: Option<&'a ApplyResult>,
}

/// Progress of the deletions on stderr: a bar for people only.
pub struct DeleteProgress {
    bar: Option<ProgressBar>,
}

impl DeleteProgress {
    /// No bar.
    pub fn quiet() -> DeleteProgress {
        DeleteProgress { bar: None }
    }

    /// A bar over `total` planned deletions when stderr is a terminal and
    /// `json` is false, otherwise [`DeleteProgress::quiet`].
    pub fn for_stderr(json: bool, total: usize) -> DeleteProgress {
        if json || total == 0 || !std::io::stderr().is_terminal() {
            return DeleteProgress::quiet();
        }
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} deleting {msg} [{bar:30}] {pos}/{len} digests ({per_sec}, {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        DeleteProgress { bar: Some(bar) }
    }

    fn repository(&self, image: &str) {
        if let Some(b) = &self.bar {
            b.set_message(image.to_string());
        }
    }

    fn done(&self, n: usize) {
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
    }

    /// Prints `message` as a warning above the bar (or alone).
    fn note(&self) -> impl Fn(&str) + Send + Sync + 'static {
        let bar = self.bar.clone();
        move |message| match &bar {
            Some(b) => b.suspend(|| crate::cli::warn(message)),
            None => crate::cli::warn(message),
        }
    }
}

/// A request to stop [`apply`] early, shared with whatever raises it.
/// Once set, no repository and no DELETE starts, but the children of an
/// index that was deleted still follow it; what was not started is skipped
/// as [`SkipCause::Interrupted`].
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>, Arc<AtomicBool>);

impl Interrupt {
    /// Not set, and set only by [`Interrupt::trigger`].
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Sets it.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Whether a signal arrived after [`Interrupt::finish`]: then it ends
    /// the process at once (the default action, which the handler of
    /// [`Interrupt::on_signals`] replaced for good).
    fn finished(&self) -> bool {
        self.1.load(Ordering::SeqCst)
    }

    /// The deletions are over: from now on a signal ends the process at
    /// once, with status 130.
    pub fn finish(&self) {
        self.1.store(true, Ordering::SeqCst);
    }

    /// Sets it on the first SIGINT or SIGTERM, saying so on stderr (above
    /// `progress`'s bar); the second ends the process at once with status
    /// 130, as the signal would have. Must be called inside a Tokio runtime;
    /// the default action of both signals is replaced from then on.
    pub fn on_signals(&self, progress: &DeleteProgress) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let flag = self.clone();
        let note = progress.note();
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if flag.finished() {
                std::process::exit(130);
            }
            flag.trigger();
            note(
                "interrupted: finishing the DELETEs in flight and the children of indexes already deleted, \
                 starting nothing else (interrupt again to stop at once)",
            );
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            std::process::exit(130);
        });
        Ok(())
    }
}

impl Drop for DeleteProgress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Reads `repo`'s tags again and rechecks `rp`'s planned deletions against
/// them: what may be deleted now, in order, and what is skipped. A planned
/// digest whose tags are all gone and whose manifest answers 404 was
/// deleted meanwhile; it is rechecked as untagged, so it counts as already
/// gone and its children may follow it. Any error is returned: the caller
/// must then delete nothing of the repository.
pub async fn recheck_repository(
    client: &Client,
    repo: &Reference,
    rp: &RepositoryPlan,
) -> Result<(Recheck, HashSet<Digest>), RegistryError> {
    let tags = client.tag_list(repo).await?;
    let concurrency = client.options().concurrency.max(1);
    let mut heads = futures::stream::iter(tags)
        .map(|t| async move {
            let head = client.manifest_head(repo, &t).await;
            (t, head)
        })
        .buffer_unordered(concurrency);
    let mut current: BTreeMap<String, Digest> = BTreeMap::new();
    while let Some((tag, head)) = heads.next().await {
        match head {
            Ok(h) => {
                current.insert(tag, h.digest);
            }
            // Deleted between the list and the HEAD: it points nowhere.
            Err(RegistryError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    drop(heads);

    // New indexes, and the indexes in them the plan does not know (those
    // it knows have their children in the plan).
    let planned: HashSet<&Digest> = rp.digests.iter().map(|d| &d.digest).collect();
    let new_children =
        crate::image::index_children(client, repo, &rp.unplanned_digests(&current), &|d| planned.contains(d)).await?;

    let first = rp.recheck(&current, &new_children);
    let untagged = first.skipped.iter().filter(
        |s| matches!(&s.reason, SkipReason::TagsChanged { planned, now } if !planned.is_empty() && now.is_empty()),
    );
    let mut heads = futures::stream::iter(untagged)
        .map(|s| async move { (s, client.manifest_head(repo, &s.digest.to_string()).await) })
        .buffer_unordered(concurrency);
    let mut gone = HashSet::new();
    while let Some((s, head)) = heads.next().await {
        match head {
            Err(RegistryError::NotFound { .. }) => {
                gone.insert(s.digest.clone());
            }
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    drop(heads);
    if gone.is_empty() {
        return Ok((first, gone));
    }
    Ok((rp.with_gone(&gone).recheck(&current, &new_children), gone))
}

/// What one repository's apply produced.
#[derive(Default)]
struct RepoOutcome {
    deleted: Vec<DeletedDigest>,
    skipped: Vec<SkippedDigest>,
    failed: Vec<FailedDigest>,
    first_error: Option<RegistryError>,
}

impl RepoOutcome {
    fn skip(&mut self, image: &str, digest: Digest, cause: SkipCause) {
        self.skipped.push(SkippedDigest {
            image: image.to_string(),
            text: cause.to_string(),
            digest,
            cause,
        });
    }
}

/// Shared by the repositories of one run.
struct RunState<'a> {
    client: &'a Client,
    progress: &'a DeleteProgress,
    /// Set once the registry refused a delete: nothing new starts.
    stop: Mutex<Option<RegistryError>>,
    /// Set on Ctrl-C: nothing new starts but children of deleted indexes.
    interrupt: &'a Interrupt,
}

impl RunState<'_> {
    fn stopped(&self) -> bool {
        self.stop.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Why nothing new may start, if so.
    fn halted(&self) -> Option<SkipCause> {
        if self.stopped() {
            Some(SkipCause::Stopped)
        } else if self.interrupt.is_set() {
            Some(SkipCause::Interrupted)
        } else {
            None
        }
    }
}

/// Applies `plan`: rechecks and deletes every repository's planned
/// deletions (see the module documentation for what holds), until done or
/// `interrupt` is set.
pub async fn apply(client: &Client, plan: &Plan, progress: &DeleteProgress, interrupt: &Interrupt) -> Applied {
    let run = RunState {
        client,
        progress,
        stop: Mutex::new(None),
        interrupt,
    };
    let repos: Vec<&RepositoryPlan> = plan.repositories.iter().filter(|r| r.delete_count > 0).collect();
    let concurrency = client.options().concurrency.max(1);
    // A few repositories at a time keeps the time between a repository's
    // recheck and its deletions short; the semaphore bounds the requests.
    let side_by_side = (concurrency / 4).max(1);
    let run = &run;
    let mut outcomes: Vec<RepoOutcome> = futures::stream::iter(repos)
        .map(|rp| apply_repository(run, rp))
        .buffer_unordered(side_by_side)
        .collect()
        .await;

    let mut applied = Applied::default();
    let mut r = ApplyResult::default();
    for o in &mut outcomes {
        r.deleted.append(&mut o.deleted);
        r.skipped.append(&mut o.skipped);
        r.failed.append(&mut o.failed);
        if applied.first_error.is_none() {
            applied.first_error = o.first_error.take();
        }
    }
    r.deleted
        .sort_by(|a, b| (&a.image, &a.digest).cmp(&(&b.image, &b.digest)));
    r.skipped
        .sort_by(|a, b| (&a.image, &a.digest).cmp(&(&b.image, &b.digest)));
    r.failed
        .sort_by(|a, b| (&a.image, &a.digest).cmp(&(&b.image, &b.digest)));
    r.already_gone_count = r.deleted.iter().filter(|d| d.already_gone).count();
    r.deleted_count = r.deleted.len() - r.already_gone_count;
    r.skipped_count = r.skipped.len();
    r.failed_count = r.failed.len();
    applied.stopped = run.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
    r.stopped = applied.stopped.as_ref().map(|e| e.to_string());
    r.interrupted = interrupt.is_set();
    applied.result = r;
    applied
}

async fn apply_repository(run: &RunState<'_>, rp: &RepositoryPlan) -> RepoOutcome {
    let image = rp.image.as_str();
    let planned: Vec<&DigestPlan> = rp.deletions();
    let mut out = RepoOutcome::default();
    if let Some(cause) = run.halted() {
        for d in &planned {
            out.skip(image, d.digest.clone(), cause.clone());
        }
        run.progress.done(planned.len());
        return out;
    }
    run.progress.repository(image);
    let checked = match Reference::repository(&rp.registry, &rp.repository) {
        Ok(repo) => recheck_repository(run.client, &repo, rp).await.map(|c| (repo, c)),
        Err(e) => Err(RegistryError::Invalid {
            registry: rp.registry.clone(),
            what: "repository name".into(),
            detail: e.to_string(),
        }),
    };
    let (repo, (recheck, gone)) = match checked {
        Ok(c) => c,
        Err(e) => {
            let error = e.to_string();
            for d in &planned {
                out.skip(
                    image,
                    d.digest.clone(),
                    SkipCause::RecheckFailed { error: error.clone() },
                );
            }
            run.progress.done(planned.len());
            out.first_error = Some(e);
            return out;
        }
    };
    for s in recheck.skipped {
        out.skip(image, s.digest, s.reason.into());
    }
    run.progress.done(out.skipped.len());
    // Interrupted while reading the tags again: nothing of it is deleted yet.
    if let Some(cause) = run.halted() {
        for d in &recheck.delete {
            out.skip(image, d.clone(), cause.clone());
        }
        run.progress.done(recheck.delete.len());
        return out;
    }
    delete_in_order(run, rp, &repo, recheck.delete, &gone, &mut out).await;
    out
}

/// Deletes `order` (an index before its children), up to the client's
/// concurrency at a time: a digest starts once every index of the set that
/// holds it is gone, and ahead of other waiting digests.
async fn delete_in_order(
    run: &RunState<'_>,
    rp: &RepositoryPlan,
    repo: &Reference,
    order: Vec<Digest>,
    gone: &HashSet<Digest>,
    out: &mut RepoOutcome,
) {
    let image = rp.image.as_str();
    let by_digest: HashMap<&Digest, &DigestPlan> = rp.digests.iter().map(|d| (&d.digest, d)).collect();
    let pos: HashMap<&Digest, usize> = order.iter().enumerate().map(|(i, d)| (d, i)).collect();
    let mut waiting = vec![0usize; order.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); order.len()];
    for (i, d) in order.iter().enumerate() {
        for p in by_digest.get(d).map(|x| x.parents.as_slice()).unwrap_or_default() {
            if let Some(&pi) = pos.get(p) {
                waiting[i] += 1;
                children[pi].push(i);
            }
        }
    }
    let mut ready: VecDeque<usize> = (0..order.len()).filter(|&i| waiting[i] == 0).collect();
    // The deleted (or gone) index of each child, for the failure note.
    let mut parent_gone: Vec<Option<usize>> = vec![None; order.len()];
    let mut settled = vec![false; order.len()];
    let limit = run.client.options().concurrency.max(1);
    let mut in_flight = FuturesUnordered::new();

    loop {
        while in_flight.len() < limit && !run.stopped() {
            // Once interrupted, only children of deleted indexes start: no
            // tag reaches them any more.
            let next = if run.interrupt.is_set() {
                // (An index found gone at the recheck counts as deleted:
                // its DELETE is a 404 and its children follow it.)
                ready
                    .iter()
                    .position(|&c| parent_gone[c].is_some() || gone.contains(&order[c]))
                    .and_then(|p| ready.remove(p))
            } else {
                ready.pop_front()
            };
            let Some(i) = next else { break };
            let digest = order[i].clone();
            let gone_before = gone.contains(&digest);
            in_flight.push(async move {
                let r = match run.client.manifest_delete(repo, &digest.to_string()).await {
                    // Found gone at the recheck already (a HEAD said so).
                    Ok(Deleted::AlreadyGone) if gone_before => Ok(Deleted::AlreadyGone),
                    Ok(Deleted::AlreadyGone) => confirm_gone(run.client, repo, &digest).await,
                    other => other,
                };
                (i, r)
            });
        }
        let Some((i, result)) = in_flight.next().await else {
            break;
        };
        settled[i] = true;
        run.progress.done(1);
        let digest = order[i].clone();
        match result {
            Ok(how) => {
                out.deleted.push(DeletedDigest {
                    image: image.to_string(),
                    already_gone: how == Deleted::AlreadyGone || gone.contains(&digest),
                    digest,
                });
                // Children go next, ahead of the rest.
                for &c in children[i].iter().rev() {
                    waiting[c] -= 1;
                    parent_gone[c] = Some(i);
                    if waiting[c] == 0 && !settled[c] {
                        ready.push_front(c);
                    }
                }
            }
            Err(e) => {
                out.failed.push(FailedDigest {
                    image: image.to_string(),
                    error: e.to_string(),
                    index_deleted: parent_gone[i].map(|p| order[p].clone()),
                    digest: digest.clone(),
                });
                // Its children stay with it, and theirs with them.
                let mut stack = children[i].clone();
                while let Some(c) = stack.pop() {
                    if settled[c] {
                        continue;
                    }
                    settled[c] = true;
                    run.progress.done(1);
                    out.skip(
                        image,
                        order[c].clone(),
                        SkipCause::IndexNotDeleted { index: digest.clone() },
                    );
                    stack.extend(children[c].iter().copied());
                }
                if matches!(e, RegistryError::Unsupported { .. }) {
                    let mut stop = run.stop.lock().unwrap_or_else(|p| p.into_inner());
                    if stop.is_none() {
                        *stop = Some(e);
                    }
                } else if out.first_error.is_none() {
                    out.first_error = Some(e);
                }
            }
        }
    }
    // Not reached: the run stopped or was interrupted.
    let cause = run.halted().unwrap_or(SkipCause::Stopped);
    for (i, d) in order.iter().enumerate() {
        if !settled[i] {
            run.progress.done(1);
            out.skip(image, d.clone(), cause.clone());
        }
    }
}

/// The result for people: one line per deleted, skipped or failed digest
/// (the reference last on its line, a reason indented below it), then a
/// summary line.
pub fn render_result(r: &ApplyResult) -> String {
    let mut out = String::new();
    for d in &r.deleted {
        let verb = if d.already_gone { "already gone" } else { "deleted" };
        out.push_str(&format!("{verb:<14}{}@{}\n", d.image, d.digest));
    }
    for s in &r.skipped {
        out.push_str(&format!(
            "{:<14}{}@{}\n{:14}{}\n",
            "skipped", s.image, s.digest, "", s.text
        ));
    }
    for f in &r.failed {
        out.push_str(&format!(
            "{:<14}{}@{}\n{:14}{}\n",
            "failed", f.image, f.digest, "", f.error
        ));
        if let Some(i) = &f.index_deleted {
            out.push_str(&format!(
                "{:14}its index {} is deleted, so no tag reaches it and a rerun will not find it; delete it by digest\n",
                "",
                i.short(12)
            ));
        }
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    out.push_str(&format!(
        "result: {} digest{} deleted, {} already gone, {} skipped, {} failed{}\n",
        r.deleted_count,
        plural(r.deleted_count),
        r.already_gone_count,
        r.skipped_count,
        r.failed_count,
        if r.stopped.is_some() {
            " (stopped early)"
        } else if r.interrupted {
            " (interrupted)"
        } else {
            ""
        },
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy_state::DeployRecord;

    fn state(workspace: &str, images: &[&str]) -> DeployState {
        DeployState {
            workspace: workspace.into(),
            collected_at: None,
            hosts: vec!["h".into()],
            records: images
                .iter()
                .map(|i| DeployRecord {
                    host: "h".into(),
                    path: None,
                    app: "a".into(),
                    workspace: workspace.into(),
                    image: i.to_string(),
                    tag: None,
                    digest: Digest::sha256_of(i.as_bytes()),
                    description: None,
                    deployed_at: None,
                    deployed_by: None,
                    history: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn apply_needs_state_for_every_policy_workspace() {
        let policy: Policy = "workspaces: [dev, prod, test]".parse().unwrap();
        let e = check_apply(&policy, &[state("prod", &[])]).unwrap_err();
        assert_eq!(
            e,
            ApplyRefused::MissingState {
                workspaces: vec!["dev".into(), "test".into()]
            }
        );
        assert_eq!(
            e.to_string(),
            "refusing to apply: no deploy state for workspaces `dev`, `test`"
        );
        let e = check_apply(&policy, &[state("prod", &[]), state("dev", &[])]).unwrap_err();
        assert_eq!(e.to_string(), "refusing to apply: no deploy state for workspace `test`");
        assert!(check_apply(&policy, &[state("test", &[]), state("prod", &[]), state("dev", &[])]).is_ok());
        // A policy without workspaces plans, but never applies.
        let policy: Policy = "defaults: {keep_last: 1}".parse().unwrap();
        assert_eq!(
            check_apply(&policy, &[state("dev", &[])]),
            Err(ApplyRefused::NoWorkspaces)
        );
    }

    #[test]
    fn records_on_other_registries_are_named() {
        let states = [
            state("dev", &["127.0.0.1:5000/acme/web", "docker.io/library/postgres"]),
            state("prod", &["localhost:5000/acme/web", "docker.io/library/redis"]),
        ];
        assert_eq!(
            foreign_record_warnings("127.0.0.1:5000", &states),
            [
                "2 deploy records name images on `docker.io`, not on `127.0.0.1:5000`: they protect only the \
                 digests they name in a repository of the same path here (if `docker.io` is this registry under \
                 another name, run with that name)",
                "1 deploy record names images on `localhost:5000`, not on `127.0.0.1:5000`: it protects only the \
                 digests it names in a repository of the same path here (if `localhost:5000` is this registry \
                 under another name, run with that name)",
            ]
        );
        assert!(foreign_record_warnings("docker.io", &states[..1]).len() == 1);
    }

    #[test]
    fn stale_deploy_state_is_named_with_its_age() {
        let now: DateTime<Utc> = "2026-03-04T12:00:00Z".parse().unwrap();
        let at = |ws: &str, t: Option<&str>| DeployState {
            collected_at: t.map(str::to_string),
            ..state(ws, &[])
        };
        let states = [
            at("fresh", Some("2026-03-04T11:00:00Z")),
            at("none", None),
            at("garbled", Some("yesterday")),
            at("future", Some("2026-03-05T00:00:00Z")),
            at("hours", Some("2026-03-04T09:59:00Z")),
            at("days", Some("2026-03-01T12:00:00Z")),
            at("minutes", Some("2026-03-04T10:59:00+00:00")),
        ];
        let w = stale_state_warnings(&states, now);
        assert_eq!(w.len(), 5, "{w:#?}");
        assert_eq!(
            w[0],
            "the deploy state of workspace `garbled` has `collected_at` `yesterday`, not an RFC 3339 time: how old \
             it is cannot be told"
        );
        assert_eq!(
            w[1],
            "the deploy state of workspace `future` was collected at 2026-03-05T00:00:00Z, 12 hours from now: how \
             old it is cannot be told (do the clocks agree?)"
        );
        let w = &w[2..];
        assert!(
            w[0].starts_with(
                "the deploy state of workspace `hours` was collected 2 hours ago (2026-03-04T09:59:00Z): what was \
                 deployed since then is not protected"
            ),
            "{}",
            w[0]
        );
        assert!(w[1].contains("`days` was collected 3 days ago"), "{}", w[1]);
        assert!(w[2].contains("`minutes` was collected 1 hour ago"), "{}", w[2]);
        assert_eq!(rough_duration(chrono::TimeDelta::minutes(61)), "1 hour");
        assert_eq!(rough_duration(chrono::TimeDelta::minutes(59)), "59 minutes");
    }

    #[test]
    fn protects_nothing_here_only_when_no_record_concerns_the_registry() {
        let policy: Policy = "workspaces: [dev]".parse().unwrap();
        let nothing = crate::cleanup::plan(&[], &[], &policy, Utc::now());
        // What matters of a plan here: it deletes, and protects nothing.
        let deletes = Plan {
            delete_count: 1,
            ..nothing.clone()
        };
        let demo = [state("dev", &["127.0.0.1:5000/acme/web", "127.0.0.1:5000/acme/api"])];
        let e = check_protects_here("registry.example", &policy, &demo, &deletes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "refusing to apply: the deploy state of `dev` protects nothing in `registry.example`: its 2 deploy \
             records name images on `127.0.0.1:5000` only, and no digest they name is here"
        );
        // State without records protects nothing either.
        let e = check_protects_here(
            "registry.example",
            &policy,
            &[state("dev", &[]), state("prod", &[])],
            &deletes,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "refusing to apply: the deploy state of `dev`, `prod` protects nothing in `registry.example`: it holds \
             no deploy records"
        );
        // A record naming this registry (in any case), a plan that deletes
        // nothing, and a policy for this registry are not refused.
        assert!(check_protects_here("127.0.0.1:5000", &policy, &demo, &deletes).is_ok());
        let upper = [state("dev", &["Registry.Example/acme/web"])];
        assert!(check_protects_here("registry.example", &policy, &upper, &deletes).is_ok());
        assert!(check_protects_here("registry.example", &policy, &demo, &nothing).is_ok());
        let own: Policy = "registry: REGISTRY.example\nworkspaces: [dev]".parse().unwrap();
        assert!(check_protects_here("registry.example", &own, &demo, &deletes).is_ok());
        assert!(check_protects_here("registry.example", &own, &[state("dev", &[])], &deletes).is_ok());
    }

    #[test]
    fn skip_causes_serialise_with_their_rule_and_read_as_text() {
        let d = Digest::sha256_of(b"index");
        let s = SkippedDigest {
            image: "r/x".into(),
            digest: d.clone(),
            cause: SkipCause::TagsChanged {
                planned: vec!["a".into()],
                now: vec![],
            },
            text: "t".into(),
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"image": "r/x", "digest": d.to_string(), "skip": "tags_changed",
                               "planned": ["a"], "now": [], "text": "t"})
        );
        assert_eq!(
            SkipCause::TagsChanged {
                planned: vec!["a".into()],
                now: vec![]
            }
            .to_string(),
            "tags changed since the plan: a → none"
        );
        assert_eq!(
            SkipCause::IndexNotDeleted { index: d.clone() }.to_string(),
            format!("the DELETE of its index {} failed", d.short(12))
        );
        assert_eq!(
            serde_json::to_value(SkipCause::Stopped).unwrap(),
            serde_json::json!({"skip": "stopped"})
        );
        // No cause has a field named as one of the skipped digest's own
        // (the JSON would hold `digest` twice, the last one winning).
        let child = Digest::sha256_of(b"child");
        let s = SkippedDigest {
            image: "r/x".into(),
            digest: d.clone(),
            cause: SkipReason::HoldsUntagged {
                untagged: child.clone(),
            }
            .into(),
            text: "t".into(),
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!(r#"{{"image":"r/x","digest":"{d}","skip":"holds_untagged","untagged":"{child}","text":"t"}}"#)
        );
    }

    #[test]
    fn result_for_people() {
        let d = Digest::sha256_of(b"one");
        let i = Digest::sha256_of(b"index");
        let r = ApplyResult {
            deleted: vec![
                DeletedDigest {
                    image: "reg/a".into(),
                    digest: i.clone(),
                    already_gone: false,
                },
                DeletedDigest {
                    image: "reg/a".into(),
                    digest: d.clone(),
                    already_gone: true,
                },
            ],
            skipped: vec![],
            failed: vec![FailedDigest {
                image: "reg/a".into(),
                digest: d.clone(),
                error: "boom".into(),
                index_deleted: Some(i.clone()),
            }],
            deleted_count: 1,
            already_gone_count: 1,
            skipped_count: 0,
            failed_count: 1,
            stopped: None,
            interrupted: false,
        };
        let text = render_result(&r);
        assert_eq!(
            text,
            format!(
                "deleted       reg/a@{i}\nalready gone  reg/a@{d}\nfailed        reg/a@{d}\n              boom\n              \
                 its index {} is deleted, so no tag reaches it and a rerun will not find it; delete it by digest\n\
                 result: 1 digest deleted, 1 already gone, 0 skipped, 1 failed\n",
                i.short(12)
            )
        );
    }

    #[test]
    fn an_interrupted_run_says_so_and_fails() {
        let d = Digest::sha256_of(b"left");
        let r = ApplyResult {
            skipped: vec![SkippedDigest {
                image: "reg/a".into(),
                digest: d.clone(),
                text: SkipCause::Interrupted.to_string(),
                cause: SkipCause::Interrupted,
            }],
            skipped_count: 1,
            interrupted: true,
            ..ApplyResult::default()
        };
        let text = render_result(&r);
        assert!(
            text.contains(&format!(
                "skipped       reg/a@{d}\n              the run was interrupted"
            )),
            "{text}"
        );
        assert!(
            text.ends_with("result: 0 digests deleted, 0 already gone, 1 skipped, 0 failed (interrupted)\n"),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["interrupted"], true);
        assert_eq!(json["skipped"][0]["skip"], "interrupted");
        let f = Applied {
            result: r,
            ..Applied::default()
        }
        .outcome()
        .unwrap_err();
        assert_eq!(f.code, EXIT_FAILURE);
        assert_eq!(
            f.message,
            "interrupted: 0 digests deleted, 1 planned deletion not started"
        );
    }
}
