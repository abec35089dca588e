//! The cleanup planner: from registry listings, deploy state, the retention
//! policy and the current time to a plan that names, for every digest, the
//! decision and why. Pure: no I/O, no clock; `registry_cleanup` lists the
//! registry, calls [`plan`], prints it, and with `--apply` re-reads tags
//! ([`RepositoryPlan::recheck`]) and deletes [`Recheck::delete`] in order.
//!
//! The unit is the digest. Per repository, every digest a tag points to
//! and every child of an index in the listing is decided:
//!
//! * **kept** when a deploy record names it (the current deploy, or one of
//!   the last `protect_history` distinct digests of each image in that
//!   record, so per app, host and image; an index holding such a digest
//!   is kept too), when one
//!   of its tags matches `keep_tags`, when it is among the `keep_last`
//!   newest, when it is younger than `keep_younger_than`, when it is undated
//!   and `keep_undated` is set, when it is a child of a kept index, or when
//!   it is an index holding an untagged child kept so (below);
//! * **deleted** otherwise, with the reason no rule kept it.
//!
//! What holds:
//!
//! * `keep_last` ranks the *tagged, dated* top-level digests of a repository
//!   by `created`, newest first, ties by digest. An undated digest has no
//!   age, so it never takes a `keep_last` place: `keep_undated` decides it.
//!   In listings undated digests sort last.
//! * An index's children are decided with it: an untagged child is kept
//!   only by a kept parent, a deploy record naming it, or its own `created`
//!   within the grace period; a tagged child is also decided as a top-level
//!   digest, and keep wins. So a child goes only when every index that
//!   holds it goes. And no kept untagged child is left without a kept index
//!   (no tag and no index: no later scan would see it): an untagged child
//!   its grace period keeps keeps every index holding it, as a deployed one
//!   does, and one a reviewed plan keeps keeps them when all would go. The
//!   recheck before deleting skips an index whose kept child lost its tags
//!   since the plan ([`SkipReason::HoldsUntagged`]).
//! * A tag that points to a digest missing from the listing (its manifest
//!   could not be read), or an index nested too deep for its children to
//!   be read ([`crate::image::MAX_INDEX_DEPTH`]), keeps every digest of its
//!   repository, with a warning: fail closed, since it may hold any of them.
//! * Bytes to reclaim count each blob (manifests included) reachable from a
//!   deleted digest and from no kept digest of any repository of the same
//!   registry, since registries share layers across repositories. It is an
//!   estimate: untagged manifests outside the listing may hold blobs too.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::deploy_state::{DeployRecord, DeployState};
use crate::listing::{ImageEntry, ManifestKind, RepositoryListing};
use crate::metadata::format_utc;
use crate::policy::{Period, Policy, Retention};
use crate::reference::Digest;

/// What to do with every digest of every listed repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The `now` the plan was made for, RFC 3339 UTC.
    pub planned_at: String,
    /// Workspaces whose deploy state was given, sorted.
    pub workspaces: Vec<String>,
    /// One entry per listing, sorted by registry then repository.
    pub repositories: Vec<RepositoryPlan>,
    /// Digests to delete, over all repositories.
    pub delete_count: usize,
    /// Digests kept, over all repositories.
    pub keep_count: usize,
    /// Bytes the registry's garbage collection can reclaim after the
    /// deletions, each blob counted once per registry.
    pub reclaim_bytes: u64,
    /// Deployed digests not in the registry, tags whose manifest is not in
    /// the listing, indexes nested too deep to read, policy entries that
    /// match no repository; sorted. For
    /// stderr: [`render_plan`] leaves them out.
    pub warnings: Vec<String>,
}

/// The plan of one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryPlan {
    pub registry: String,
    pub repository: String,
    /// `registry/repository`, what deploy records name as `image`.
    pub image: String,
    /// The `repositories` key of the policy that applied, `null` for `defaults`.
    pub policy_entry: Option<String>,
    /// The effective retention rules.
    pub retention: Retention,
    /// Every digest, newest first (undated last, ties by digest), each
    /// untagged index child right after its index.
    pub digests: Vec<DigestPlan>,
    pub delete_count: usize,
    pub keep_count: usize,
    /// Bytes only this repository's deleted digests hold (blobs no kept
    /// digest of the registry reaches). Repositories can share such blobs,
    /// so these can add up to more than [`Plan::reclaim_bytes`].
    pub reclaim_bytes: u64,
}

/// The decision on one digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigestPlan {
    pub digest: Digest,
    /// `image` or `index`; `null` when the listing has no manifest for it.
    pub kind: Option<ManifestKind>,
    /// Tags pointing to it, sorted; empty for an untagged index child.
    pub tags: Vec<String>,
    /// The `created` label as listed (RFC 3339 UTC, or raw when unparseable).
    pub created: Option<String>,
    /// Indexes of this repository that list it as a child, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<Digest>,
    /// Total size of the blobs it reaches (manifests and children included).
    pub size_bytes: u64,
    pub decision: Decision,
    /// Every reason for the decision, at least one; each serialised as
    /// `{"rule": "<snake_case variant>", …fields, "text": "<human text>"}`.
    #[serde(serialize_with = "serialize_reasons")]
    pub reasons: Vec<Reason>,
}

impl DigestPlan {
    /// Whether a deploy record protects it.
    pub fn is_protected(&self) -> bool {
        self.reasons
            .iter()
            .any(|r| matches!(r, Reason::Deployed { .. } | Reason::RollbackTarget { .. }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Keep,
    Delete,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Keep => "keep",
            Decision::Delete => "delete",
        })
    }
}

/// Why a digest is kept (the first variants) or deleted (the last three).
/// Sorted in this order within a digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Reason {
    /// The current deploy of `app` on `host`.
    Deployed {
        workspace: String,
        host: String,
        app: String,
    },
    /// One of the last `protect_history` distinct digests deployed of `app`
    /// on `host`, so a rollback to it still works.
    RollbackTarget {
        workspace: String,
        host: String,
        app: String,
        protect_history: usize,
    },
    /// `tag` matches the `keep_tags` pattern `pattern`.
    KeptTag { tag: String, pattern: String },
    /// `rank`-th newest tagged, dated digest; `rank <= keep_last`.
    KeepLast { rank: usize, keep_last: usize },
    /// Created less than `keep_younger_than` before the plan (or later).
    YoungerThan { keep_younger_than: Period },
    /// No usable `created` date, and `keep_undated` is set.
    Undated,
    /// A child of the kept index `index`.
    ChildOfKeptIndex { index: Digest },
    /// An index holding `digest`, which a deploy record protects: deleting
    /// the index would leave the child untagged and unreferenced, which a
    /// registry's collection of untagged manifests takes.
    HoldsProtected { digest: Digest },
    /// An index without a reason of its own holding the untagged `digest`,
    /// kept by its grace period, or an untagged index that holds one at any
    /// depth, or kept by a reviewed plan while every index holding it would
    /// go: deleted, the last index holding it would leave it with no tag and
    /// no index, which no later scan sees.
    HoldsKept { digest: Digest },
    /// Any digest of a repository where a tagged manifest could not be read
    /// (`indexes`): that one may be an index holding this one (tagged
    /// platform images included), so nothing of the repository goes.
    MaybeInUnreadable { indexes: Vec<Digest> },
    /// The reviewed plan given (`--plan`) did not delete it, or did with
    /// other tags: only what a reviewed dry run deleted, tagged as it was
    /// then, may go.
    NotInReviewedPlan,
    /// A tag points to it but the listing has no manifest for it.
    NotListed,
    /// Dated, older than the grace period, and beyond `keep_last` (`rank`
    /// is its place among the tagged, dated digests; `null` if untagged).
    Expired {
        keep_younger_than: Period,
        keep_last: usize,
        rank: Option<usize>,
    },
    /// No usable `created` date, and `keep_undated` is off.
    UndatedNotKept,
    /// Every index that holds it is deleted.
    OnlyInDeletedIndexes { indexes: Vec<Digest> },
}

impl Reason {
    /// Whether this reason keeps a digest (rather than explain a deletion).
    pub fn keeps(&self) -> bool {
        !matches!(
            self,
            Reason::Expired { .. } | Reason::UndatedNotKept | Reason::OnlyInDeletedIndexes { .. }
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Deployed { workspace, host, app } => write!(f, "deployed on {workspace}/{host} ({app})"),
            Reason::RollbackTarget {
                workspace, host, app, ..
            } => write!(f, "rollback target on {workspace}/{host} ({app})"),
            Reason::KeptTag { tag, pattern } => write!(f, "tag {tag} matches keep_tags {pattern}"),
            Reason::KeepLast { rank, keep_last } => write!(f, "newest #{rank} of keep_last {keep_last}"),
            Reason::YoungerThan { keep_younger_than } => write!(f, "younger than {keep_younger_than}"),
            Reason::Undated => f.write_str("undated, keep_undated"),
            Reason::ChildOfKeptIndex { index } => write!(f, "child of kept index {}", index.short(12)),
            Reason::HoldsProtected { digest } => write!(f, "holds protected {}", digest.short(12)),
            Reason::HoldsKept { digest } => write!(f, "holds kept untagged {}", digest.short(12)),
            Reason::MaybeInUnreadable { indexes } => {
                f.write_str("may be in unreadable ")?;
                let short: Vec<&str> = indexes.iter().map(|d| d.short(12)).collect();
                f.write_str(&short.join(", "))
            }
            Reason::NotInReviewedPlan => f.write_str("not deleted by the reviewed plan"),
            Reason::NotListed => f.write_str("manifest not listed, kept to be safe"),
            Reason::Expired {
                keep_younger_than,
                keep_last,
                rank,
            } => {
                if keep_younger_than.as_secs() > 0 {
                    write!(f, "older than {keep_younger_than}, ")?;
                }
                match rank {
                    Some(r) => write!(f, "newest #{r} beyond keep_last {keep_last}"),
                    None => f.write_str("untagged"),
                }
            }
            Reason::UndatedNotKept => f.write_str("undated, keep_undated is off"),
            Reason::OnlyInDeletedIndexes { indexes } => {
                f.write_str("only in deleted index ")?;
                let short: Vec<&str> = indexes.iter().map(|d| d.short(12)).collect();
                f.write_str(&short.join(", "))
            }
        }
    }
}

fn serialize_reasons<S: Serializer>(reasons: &[Reason], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct WithText<'a> {
        #[serde(flatten)]
        reason: &'a Reason,
        text: String,
    }
    s.collect_seq(reasons.iter().map(|reason| WithText {
        reason,
        text: reason.to_string(),
    }))
}

impl Plan {
    /// The plan as the `--json` output: the fields documented on [`Plan`],
    /// [`RepositoryPlan`], [`DigestPlan`] and [`Reason`].
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a plan serialises")
    }
}

/// The policy workspaces without deploy state among `states`, in policy
/// order: `--apply` refuses to start unless this is empty.
pub fn missing_workspaces(policy: &Policy, states: &[DeployState]) -> Vec<String> {
    let have: HashSet<&str> = states.iter().map(|s| s.workspace.as_str()).collect();
    policy
        .workspaces
        .iter()
        .filter(|w| !have.contains(w.as_str()))
        .cloned()
        .collect()
}

/// Decides every digest of `listings` under `policy`, protecting what the
/// deploy records of `states` name, as of `now`.
pub fn plan(listings: &[RepositoryListing], states: &[DeployState], policy: &Policy, now: DateTime<Utc>) -> Plan {
    plan_within(
        listings,
        &Planning {
            policy,
            states,
            now,
            reviewed: None,
        },
    )
}

/// The deletions of a reviewed plan (a saved dry run): given to
/// [`plan_within`], nothing else is deleted. Made by
/// `prune::load_reviewed_plan`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reviewed {
    /// `registry/repository` → the digests the reviewed plan deleted
    /// there, each with its tags then (sorted).
    pub deletions: HashMap<String, HashMap<Digest, Vec<String>>>,
}

impl Reviewed {
    /// Adds a deletion as the reviewer saw it: `digest` of `image` with
    /// `tags`.
    pub fn add(&mut self, image: &str, digest: Digest, mut tags: Vec<String>) {
        tags.sort();
        tags.dedup();
        self.deletions
            .entry(image.to_string())
            .or_default()
            .insert(digest, tags);
    }

    /// Whether the reviewed plan deleted `digest` of `image` while it had
    /// exactly `tags` (sorted): a digest tagged otherwise since was not
    /// what the reviewer saw.
    pub fn deletes(&self, image: &str, digest: &Digest, tags: &[&str]) -> bool {
        self.deletions
            .get(image)
            .and_then(|d| d.get(digest))
            .is_some_and(|reviewed| reviewed.iter().map(String::as_str).eq(tags.iter().copied()))
    }
}

/// What a plan is made with, besides the listings.
#[derive(Clone, Copy)]
pub struct Planning<'a> {
    pub policy: &'a Policy,
    /// Deploy state: what its records name is protected.
    pub states: &'a [DeployState],
    /// The time the grace period counts back from.
    pub now: DateTime<Utc>,
    /// A reviewed plan: every digest it did not delete is kept
    /// ([`Reason::NotInReviewedPlan`]), with what that keeps in turn (the
    /// children of a kept index), so the plan deletes at most what was
    /// reviewed, and only what the rules still delete now.
    pub reviewed: Option<&'a Reviewed>,
}

/// [`plan`] with everything [`Planning`] holds.
pub fn plan_within(listings: &[RepositoryListing], planning: &Planning) -> Plan {
    let Planning {
        policy, states, now, ..
    } = *planning;
    let mut warnings = BTreeSet::new();
    // What each record protects, by the image each digest was deployed
    // from (a history entry may name another repository than the record).
    let mut by_image: HashMap<&str, Vec<Protection>> = HashMap::new();
    // The same repository named on another registry host: possibly this
    // registry under another name (`localhost:5000`, `127.0.0.1:5000`).
    let mut by_path: HashMap<&str, Vec<(&str, Protection)>> = HashMap::new();
    for r in states.iter().flat_map(|s| &s.records) {
        let protect_history = policy.retention_for(repository_path(&r.image)).protect_history.max(1);
        for (i, (image, digest)) in r.recent_deploys(protect_history).into_iter().enumerate() {
            let p = Protection {
                record: r,
                digest,
                current: i == 0,
                protect_history,
            };
            by_image.entry(image).or_default().push(p);
            by_path.entry(repository_path(image)).or_default().push((image, p));
        }
    }

    let mut order: Vec<&RepositoryListing> = listings.iter().collect();
    order.sort_by(|a, b| (&a.registry, &a.repository).cmp(&(&b.registry, &b.repository)));

    let mut repositories = Vec::with_capacity(order.len());
    let mut blobs_per_repo = Vec::with_capacity(order.len());
    for listing in &order {
        let image = listing.image_name();
        let here = by_image.get(image.as_str()).map_or(&[][..], Vec::as_slice);
        let elsewhere: Vec<Protection> = by_path
            .get(listing.repository.as_str())
            .into_iter()
            .flatten()
            .filter(|(i, _)| *i != image)
            .map(|(_, p)| *p)
            .collect();
        let (repo_plan, blobs) = plan_repository(listing, image, here, &elsewhere, planning, &mut warnings);
        repositories.push(repo_plan);
        blobs_per_repo.push(blobs);
    }

    // Deploy records of a listed registry whose repository is not listed.
    let listed: HashSet<&str> = repositories.iter().map(|r| r.image.as_str()).collect();
    let registries: BTreeSet<&str> = order.iter().map(|l| l.registry.as_str()).collect();
    for (image, protections) in &by_image {
        if listed.contains(image) {
            continue;
        }
        if !registries
            .iter()
            .any(|reg| image.strip_prefix(*reg).is_some_and(|rest| rest.starts_with('/')))
        {
            continue;
        }
        for p in protections {
            warnings.insert(missing_warning(p.record, p.digest, p.current, false));
        }
    }

    for rule in &policy.repositories {
        let matched: Vec<&str> = order
            .iter()
            .map(|l| l.repository.as_str())
            .filter(|r| rule.matches(r))
            .collect();
        if matched.is_empty() {
            warnings.insert(format!("policy entry `{}` matches no listed repository", rule.pattern));
        } else if matched.iter().all(|r| {
            policy
                .rule_for(r)
                .is_some_and(|applied| applied.pattern != rule.pattern)
        }) {
            // A glob always beaten by the exact names and earlier globs.
            let shown: Vec<String> = matched.iter().take(3).map(|r| format!("`{r}`")).collect();
            warnings.insert(format!(
                "policy entry `{}` applies to no listed repository: {}{} it matches take{} an earlier entry or an exact \
                 name",
                rule.pattern,
                shown.join(", "),
                if matched.len() > 3 { ", …" } else { "" },
                if matched.len() == 1 { "s" } else { "" },
            ));
        }
    }

    // `protect_history: 1` protects only what runs: say so where it lets a
    // rollback target go (what `task rollback` without a target picks: the
    // newest earlier digest of the record's own image).
    let deleted: HashSet<(&str, &Digest)> = repositories
        .iter()
        .flat_map(|r| {
            r.digests
                .iter()
                .filter(|d| d.decision == Decision::Delete)
                .map(move |d| (r.image.as_str(), &d.digest))
        })
        .collect();
    for r in states.iter().flat_map(|s| &s.records) {
        let repository = repository_path(&r.image);
        if policy.retention_for(repository).protect_history > 1 {
            continue;
        }
        if let Some(previous) = r.recent_digests(2).get(1)
            && deleted.contains(&(r.image.as_str(), *previous))
        {
            warnings.insert(format!(
                "app `{}` on host `{}` (workspace `{}`) cannot roll back: its previous deploy `{previous}` is deleted, \
                 as `protect_history: 1` of `{repository}` keeps only what runs (2 keeps one rollback target)",
                r.app, r.host, r.workspace
            ));
        }
    }

    // Bytes: per registry, what deleted digests reach and no kept one does.
    let mut reclaim_bytes = 0;
    let mut by_registry: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in repositories.iter().enumerate() {
        by_registry.entry(r.registry.as_str()).or_default().push(i);
    }
    let mut repo_reclaim = vec![0u64; repositories.len()];
    for members in by_registry.values() {
        let mut kept: HashSet<&Digest> = HashSet::new();
        for &i in members {
            for (decision, blobs) in &blobs_per_repo[i] {
                if *decision == Decision::Keep {
                    kept.extend(blobs.keys());
                }
            }
        }
        let mut freed: HashMap<&Digest, u64> = HashMap::new();
        for &i in members {
            let mut repo_freed: HashMap<&Digest, u64> = HashMap::new();
            for (decision, blobs) in &blobs_per_repo[i] {
                if *decision == Decision::Delete {
                    repo_freed.extend(blobs.iter().filter(|(b, _)| !kept.contains(b)).map(|(b, s)| (b, *s)));
                }
            }
            repo_reclaim[i] = repo_freed.values().sum();
            freed.extend(repo_freed);
        }
        reclaim_bytes += freed.values().sum::<u64>();
    }
    for (r, bytes) in repositories.iter_mut().zip(repo_reclaim) {
        r.reclaim_bytes = bytes;
    }

    let mut workspaces: Vec<String> = states.iter().map(|s| s.workspace.clone()).collect();
    workspaces.sort();
    workspaces.dedup();
    Plan {
        planned_at: format_utc(now),
        workspaces,
        delete_count: repositories.iter().map(|r| r.delete_count).sum(),
        keep_count: repositories.iter().map(|r| r.keep_count).sum(),
        reclaim_bytes,
        repositories,
        warnings: warnings.into_iter().collect(),
    }
}

/// A digest a record protects that the plan does not list: in a listed
/// repository no tag reaches it (untagged: the cleanup never touches it;
/// or gone), else its repository is not in the catalog.
fn missing_warning(r: &DeployRecord, digest: &Digest, current: bool, listed: bool) -> String {
    let what = if current { "deployed digest" } else { "rollback digest" };
    let why = if listed {
        "is not reached by any tag of its repository: untagged (the cleanup leaves it alone; a `garbage-collect \
         --delete-untagged` would not) or gone from the registry"
            .to_string()
    } else {
        format!(
            "is of `{}`, which the registry's catalog does not list",
            repository_path(&r.image)
        )
    };
    format!(
        "{what} `{digest}` of app `{}` on host `{}` (workspace `{}`) {why}",
        r.app, r.host, r.workspace
    )
}

/// One digest a deploy record protects.
#[derive(Clone, Copy)]
struct Protection<'a> {
    record: &'a DeployRecord,
    digest: &'a Digest,
    /// The record's current deploy (else a rollback target).
    current: bool,
    /// `protect_history` of the record's repository.
    protect_history: usize,
}

/// `repository` of `registry/repository`.
fn repository_path(image: &str) -> &str {
    crate::deploy_state::image_parts(image).map_or(image, |(_, path)| path)
}

/// One digest while a repository is being decided.
struct Node<'a> {
    digest: &'a Digest,
    entry: Option<&'a ImageEntry>,
    tags: Vec<&'a str>,
    parents: Vec<&'a Digest>,
    created: Option<DateTime<Utc>>,
    /// Tagged, or listed and in no index: decided by its own rules.
    top: bool,
    rank: Option<usize>,
    reasons: Vec<Reason>,
}

type Blobs = BTreeMap<Digest, u64>;

/// `here` are deploys of this repository; `elsewhere` of a repository of
/// the same path on another registry host: they protect the digests of
/// theirs found here (a digest names content, so keeping one of them keeps
/// what such a host runs if the two names are one registry; if they are
/// not, it keeps an identical image), and are never "missing".
fn plan_repository(
    listing: &RepositoryListing,
    image: String,
    here: &[Protection],
    elsewhere: &[Protection],
    planning: &Planning,
    warnings: &mut BTreeSet<String>,
) -> (RepositoryPlan, Vec<(Decision, Blobs)>) {
    let Planning {
        policy, now, reviewed, ..
    } = *planning;
    let rule = policy.rule_for(&listing.repository);
    let retention = rule.map_or(&policy.defaults, |r| &r.retention);

    // Every digest: the listed manifests and whatever a tag points to.
    let mut tags_of: BTreeMap<&Digest, Vec<&str>> = BTreeMap::new();
    for (tag, d) in &listing.tags {
        tags_of.entry(d).or_default().push(tag);
    }
    let all: BTreeSet<&Digest> = listing.images.keys().chain(tags_of.keys().copied()).collect();
    let index: HashMap<&Digest, usize> = all.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    let mut nodes: Vec<Node> = all
        .iter()
        .map(|d| {
            let entry = listing.images.get(*d);
            Node {
                digest: d,
                entry,
                tags: tags_of.remove(d).unwrap_or_default(),
                parents: Vec::new(),
                created: entry.and_then(|e| e.metadata.created_time()),
                top: false,
                rank: None,
                reasons: Vec::new(),
            }
        })
        .collect();
    for (d, e) in &listing.images {
        for c in unique_children(e, &index) {
            nodes[c].parents.push(d);
        }
    }
    for n in &mut nodes {
        n.parents.sort();
        n.parents.dedup();
        n.top = !n.tags.is_empty() || n.parents.is_empty();
    }

    // Deploy records.
    let named_here = here.iter().map(|p| (p, true));
    for (p, named_here) in named_here.chain(elsewhere.iter().map(|p| (p, false))) {
        let r = p.record;
        let Some(&n) = index.get(p.digest) else {
            if named_here {
                warnings.insert(missing_warning(r, p.digest, p.current, true));
            }
            continue;
        };
        nodes[n].reasons.push(if p.current {
            Reason::Deployed {
                workspace: r.workspace.clone(),
                host: r.host.clone(),
                app: r.app.clone(),
            }
        } else {
            Reason::RollbackTarget {
                workspace: r.workspace.clone(),
                host: r.host.clone(),
                app: r.app.clone(),
                protect_history: p.protect_history,
            }
        });
    }

    // Up from what deploy records protect: the indexes holding it, transitively.
    let mut up: Vec<usize> = (0..nodes.len())
        .filter(|&i| {
            nodes[i]
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::Deployed { .. } | Reason::RollbackTarget { .. }))
        })
        .collect();
    let mut holds = vec![false; nodes.len()];
    while let Some(i) = up.pop() {
        let child = nodes[i].digest;
        let parents: Vec<usize> = nodes[i].parents.iter().filter_map(|p| index.get(p).copied()).collect();
        for p in parents {
            nodes[p].reasons.push(Reason::HoldsProtected { digest: child.clone() });
            if !holds[p] {
                holds[p] = true;
                up.push(p);
            }
        }
    }

    // keep_last over the tagged, dated digests.
    let mut ranked: Vec<usize> = (0..nodes.len())
        .filter(|&i| !nodes[i].tags.is_empty() && nodes[i].created.is_some())
        .collect();
    ranked.sort_by_key(|&i| (Reverse(nodes[i].created), nodes[i].digest));
    for (pos, &i) in ranked.iter().enumerate() {
        let rank = pos + 1;
        nodes[i].rank = Some(rank);
        if rank <= retention.keep_last {
            nodes[i].reasons.push(Reason::KeepLast {
                rank,
                keep_last: retention.keep_last,
            });
        }
    }

    // Grace period, tags, undated, missing manifests.
    let grace = retention.keep_younger_than;
    let cutoff = (grace.as_secs() > 0).then(|| now.checked_sub_signed(grace.as_time_delta()));
    for n in &mut nodes {
        if let (Some(cutoff), Some(created)) = (cutoff, n.created)
            && cutoff.is_none_or(|c| created > c)
        {
            n.reasons.push(Reason::YoungerThan {
                keep_younger_than: grace,
            });
        }
        if !n.top {
            continue;
        }
        for tag in &n.tags {
            if let Some(p) = retention.kept_tag_pattern(tag) {
                n.reasons.push(Reason::KeptTag {
                    tag: tag.to_string(),
                    pattern: p.as_str().to_string(),
                });
            }
        }
        if n.entry.is_none() {
            n.reasons.push(Reason::NotListed);
            warnings.insert(format!(
                "`{image}`: tag(s) {} point to `{}`, whose manifest is not in the listing; nothing of `{image}` \
                 is deleted until it can be read (repair or untag it)",
                n.tags.join(", "),
                n.digest
            ));
        } else if n.created.is_none() && retention.keep_undated {
            n.reasons.push(Reason::Undated);
        }
    }

    // A tagged manifest that could not be read may be an index: what it
    // holds is unknown (tagged platform images too, and deleting an index
    // would orphan its children for good), so nothing of this repository goes.
    // An index nested too deep to be read holds unknown ones too.
    let unreadable: Vec<Digest> = nodes
        .iter()
        .filter(|n| match n.entry {
            None => n.top,
            Some(e) => e.children_unknown,
        })
        .map(|n| n.digest.clone())
        .collect();
    for n in nodes.iter().filter(|n| n.entry.is_some_and(|e| e.children_unknown)) {
        warnings.insert(format!(
            "`{image}`: index `{}` is nested more than {} levels below a tagged index, so what it holds is not \
             read; nothing of `{image}` is deleted while it is there (untag the index that holds it)",
            n.digest,
            crate::image::MAX_INDEX_DEPTH
        ));
    }
    if !unreadable.is_empty() {
        for n in nodes.iter_mut().filter(|n| n.entry.is_some()) {
            n.reasons.push(Reason::MaybeInUnreadable {
                indexes: unreadable.clone(),
            });
        }
    }

    // Only what a reviewed plan deleted may go.
    if let Some(reviewed) = reviewed {
        for n in nodes
            .iter_mut()
            .filter(|n| !reviewed.deletes(&image, n.digest, &n.tags))
        {
            n.reasons.push(Reason::NotInReviewedPlan);
        }
    }

    // Up from an untagged child its grace period keeps: every index holding
    // it, transitively through untagged ones. Deleted, the last of them would
    // leave it with no tag and no index, which no later scan sees. Every
    // index, not only one: keeping more never makes the plan delete
    // something else. (Not from what only a reviewed plan keeps: it keeps
    // every digest that plan did not delete, including children of indexes
    // it did, so the plan's own deletions would no longer give the plan.)
    let mut up: Vec<usize> = (0..nodes.len())
        .filter(|&i| !nodes[i].top && nodes[i].reasons.iter().any(|r| matches!(r, Reason::YoungerThan { .. })))
        .collect();
    // An index with a reason of its own is kept anyway: only the others
    // take the reason, so a young multi-arch image does not list one per
    // platform. The walk goes on through every untagged index, with a
    // reason of its own or not: not every such reason passes itself up (a
    // reviewed plan's `NotInReviewedPlan` does not).
    let own: Vec<bool> = nodes.iter().map(|n| !n.reasons.is_empty()).collect();
    let mut held = vec![false; nodes.len()];
    while let Some(i) = up.pop() {
        let child = nodes[i].digest;
        let parents: Vec<usize> = nodes[i].parents.iter().filter_map(|p| index.get(p).copied()).collect();
        for p in parents {
            if !own[p] {
                nodes[p].reasons.push(Reason::HoldsKept { digest: child.clone() });
            }
            if !held[p] && !nodes[p].top {
                held[p] = true;
                up.push(p);
            }
        }
    }

    // Children of kept indexes, transitively; then stranded children.
    let mut kept: Vec<bool> = nodes.iter().map(|n| !n.reasons.is_empty()).collect();
    let mut queue: Vec<usize> = (0..nodes.len()).filter(|&i| kept[i]).collect();
    loop {
        while let Some(i) = queue.pop() {
            let Some(e) = nodes[i].entry else { continue };
            let parent = nodes[i].digest;
            for c in unique_children(e, &index) {
                nodes[c]
                    .reasons
                    .push(Reason::ChildOfKeptIndex { index: parent.clone() });
                if !kept[c] {
                    kept[c] = true;
                    queue.push(c);
                }
            }
        }
        // A kept untagged child every index of which goes keeps them all,
        // and what they hold. Only a reviewed plan leaves one so (its
        // `NotInReviewedPlan` keeps what it did not delete, whose tag may
        // have gone since), so a plan without one is as above.
        let stranded: Vec<usize> = (0..nodes.len())
            .filter(|&i| kept[i] && !nodes[i].top && nodes[i].parents.iter().all(|p| !kept[index[p]]))
            .collect();
        if stranded.is_empty() {
            break;
        }
        for i in stranded {
            let child = nodes[i].digest;
            let ps: Vec<usize> = nodes[i].parents.iter().map(|p| index[p]).collect();
            for p in ps {
                nodes[p].reasons.push(Reason::HoldsKept { digest: child.clone() });
                if !kept[p] {
                    kept[p] = true;
                    queue.push(p);
                }
            }
        }
    }

    // Reasons for the rest.
    for (n, &keep) in nodes.iter_mut().zip(&kept) {
        if keep {
            continue;
        }
        if n.top {
            n.reasons.push(match n.created {
                None => Reason::UndatedNotKept,
                Some(_) => Reason::Expired {
                    keep_younger_than: grace,
                    keep_last: retention.keep_last,
                    rank: n.rank,
                },
            });
        }
        if !n.parents.is_empty() {
            n.reasons.push(Reason::OnlyInDeletedIndexes {
                indexes: n.parents.iter().map(|d| (*d).clone()).collect(),
            });
        }
    }

    // Newest first, each untagged child after its index.
    let mut tops: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].top).collect();
    tops.sort_by_key(|&i| (nodes[i].created.is_none(), Reverse(nodes[i].created), nodes[i].digest));
    let mut emitted = vec![false; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    for t in tops {
        let mut stack = vec![t];
        while let Some(i) = stack.pop() {
            if emitted[i] {
                continue;
            }
            emitted[i] = true;
            order.push(i);
            if let Some(e) = nodes[i].entry {
                let kids: Vec<usize> = unique_children(e, &index)
                    .filter(|&c| !nodes[c].top && !emitted[c])
                    .collect();
                stack.extend(kids.into_iter().rev());
            }
        }
    }
    order.extend((0..nodes.len()).filter(|&i| !emitted[i]));

    let mut digests = Vec::with_capacity(nodes.len());
    let mut blobs = Vec::with_capacity(nodes.len());
    for i in order {
        let n = &mut nodes[i];
        let decision = if kept[i] { Decision::Keep } else { Decision::Delete };
        n.reasons.sort();
        n.reasons.dedup();
        let reached = listing.blobs_of(n.digest);
        digests.push(DigestPlan {
            digest: n.digest.clone(),
            kind: n.entry.map(|e| e.kind),
            tags: n.tags.iter().map(|t| t.to_string()).collect(),
            created: n.entry.and_then(|e| e.metadata.created.clone()),
            parents: n.parents.iter().map(|d| (*d).clone()).collect(),
            size_bytes: reached.values().sum(),
            decision,
            reasons: std::mem::take(&mut n.reasons),
        });
        blobs.push((decision, reached));
    }
    let delete_count = digests.iter().filter(|d| d.decision == Decision::Delete).count();
    let plan = RepositoryPlan {
        registry: listing.registry.clone(),
        repository: listing.repository.clone(),
        image,
        policy_entry: rule.map(|r| r.pattern.clone()),
        retention: retention.clone(),
        keep_count: digests.len() - delete_count,
        delete_count,
        digests,
        reclaim_bytes: 0,
    };
    (plan, blobs)
}

/// The node indexes of an index's children that are listed, each once.
fn unique_children<'a>(e: &'a ImageEntry, index: &'a HashMap<&Digest, usize>) -> impl Iterator<Item = usize> + 'a {
    let mut seen = HashSet::new();
    e.children
        .iter()
        .filter_map(|c| index.get(c).copied())
        .filter(move |c| seen.insert(*c))
}

impl RepositoryPlan {
    /// The digests to delete, in the order to delete them: an index before
    /// its children (an interrupted run leaves no index pointing to deleted
    /// children), otherwise newest first as listed.
    pub fn deletions(&self) -> Vec<&DigestPlan> {
        let pos: HashMap<&Digest, usize> = self
            .digests
            .iter()
            .enumerate()
            .filter(|(_, d)| d.decision == Decision::Delete)
            .map(|(i, d)| (&d.digest, i))
            .collect();
        // Parents of a deleted digest are all deleted (a kept parent keeps
        // its children); count those still to go.
        let mut waiting: HashMap<usize, usize> = HashMap::new();
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
        for &i in pos.values() {
            let ps: Vec<usize> = self.digests[i]
                .parents
                .iter()
                .filter_map(|p| pos.get(p).copied())
                .collect();
            waiting.insert(i, ps.len());
            for p in ps {
                children.entry(p).or_default().push(i);
            }
        }
        let mut ready: BinaryHeap<Reverse<usize>> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(i, _)| Reverse(*i))
            .collect();
        let mut out = Vec::with_capacity(pos.len());
        while let Some(Reverse(i)) = ready.pop() {
            out.push(&self.digests[i]);
            for c in children.get(&i).into_iter().flatten() {
                let n = waiting.get_mut(c).expect("every deleted digest is counted");
                *n -= 1;
                if *n == 0 {
                    ready.push(Reverse(*c));
                }
            }
        }
        out
    }

    /// The digests a tag points to now that the plan does not know: their
    /// manifests should be read, and the children of those that are indexes
    /// (and of the indexes in them the plan does not know either) passed to
    /// [`RepositoryPlan::recheck`].
    pub fn unplanned_digests(&self, current_tags: &BTreeMap<String, Digest>) -> Vec<Digest> {
        let known: HashSet<&Digest> = self.digests.iter().map(|d| &d.digest).collect();
        let out: BTreeSet<&Digest> = current_tags.values().filter(|d| !known.contains(d)).collect();
        out.into_iter().cloned().collect()
    }

    /// The plan as [`RepositoryPlan::recheck`] should see it once the
    /// planned digests `gone` were deleted meanwhile (their tags gone, their
    /// manifests answering 404): planned untagged, so that they count as
    /// already gone and their children follow, and holding nothing, so that
    /// a kept child left without a tag does not keep an index that is gone
    /// (`holds_untagged`).
    pub fn with_gone(&self, gone: &HashSet<Digest>) -> RepositoryPlan {
        let mut view = self.clone();
        for d in &mut view.digests {
            if gone.contains(&d.digest) {
                d.tags.clear();
            }
            d.parents.retain(|p| !gone.contains(p));
        }
        view
    }

    /// Checks the planned deletions against the repository's tags read
    /// again just before deleting. A digest whose set of tags changed is
    /// skipped, as is a child of a skipped index and a child of an index the
    /// plan did not know (`new_index_children`: index digest → its
    /// children, for the digests of [`RepositoryPlan::unplanned_digests`]
    /// and the unknown indexes they hold, at any depth), and an index
    /// holding a digest that stays with no tag now while every index
    /// holding it is planned for deletion ([`SkipReason::HoldsUntagged`]).
    /// The rest is returned in the order of [`RepositoryPlan::deletions`].
    pub fn recheck(
        &self,
        current_tags: &BTreeMap<String, Digest>,
        new_index_children: &BTreeMap<Digest, Vec<Digest>>,
    ) -> Recheck {
        let mut tags_now: HashMap<&Digest, Vec<&str>> = HashMap::new();
        for (t, d) in current_tags {
            tags_now.entry(d).or_default().push(t);
        }
        let mut new_parent: HashMap<&Digest, &Digest> = HashMap::new();
        for (index, kids) in new_index_children {
            for k in kids {
                new_parent.entry(k).or_insert(index);
            }
        }
        // A digest that stays (kept, or skipped below as its tags changed)
        // with no tag now, no new index holding it, and every index holding
        // it planned for deletion: those indexes stay, or nothing would
        // point to it; and so on up, for one of them without a tag now.
        let deletions = self.deletions();
        let planned: HashSet<&Digest> = deletions.iter().map(|d| &d.digest).collect();
        let by_digest: HashMap<&Digest, &DigestPlan> = self.digests.iter().map(|d| (&d.digest, d)).collect();
        let mut holds_untagged: HashMap<&Digest, &Digest> = HashMap::new();
        let mut up: Vec<&DigestPlan> = self
            .digests
            .iter()
            .filter(|d| d.decision == Decision::Keep || !d.tags.is_empty())
            .collect();
        while let Some(d) = up.pop() {
            if tags_now.contains_key(&d.digest)
                || new_parent.contains_key(&d.digest)
                || d.parents.is_empty()
                || !d.parents.iter().all(|p| planned.contains(p))
            {
                continue;
            }
            for p in &d.parents {
                if let Entry::Vacant(e) = holds_untagged.entry(p)
                    && let Some(parent) = by_digest.get(p)
                {
                    e.insert(&d.digest);
                    up.push(parent);
                }
            }
        }
        let mut skipped_set: HashSet<&Digest> = HashSet::new();
        let mut out = Recheck::default();
        for d in deletions {
            let now: Vec<&str> = tags_now.get(&d.digest).cloned().unwrap_or_default();
            let reason = if now != d.tags.iter().map(String::as_str).collect::<Vec<_>>() {
                Some(SkipReason::TagsChanged {
                    planned: d.tags.clone(),
                    now: now.iter().map(|t| t.to_string()).collect(),
                })
            } else if let Some(p) = d.parents.iter().find(|p| skipped_set.contains(p)) {
                Some(SkipReason::IndexSkipped { index: p.clone() })
            } else if let Some(i) = new_parent.get(&d.digest) {
                Some(SkipReason::InNewIndex { index: (*i).clone() })
            } else {
                holds_untagged
                    .get(&d.digest)
                    .map(|c| SkipReason::HoldsUntagged { untagged: (*c).clone() })
            };
            match reason {
                Some(reason) => {
                    skipped_set.insert(&d.digest);
                    out.skipped.push(Skipped {
                        digest: d.digest.clone(),
                        reason,
                    });
                }
                None => out.delete.push(d.digest.clone()),
            }
        }
        out
    }
}

/// What is still to be deleted after [`RepositoryPlan::recheck`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Recheck {
    /// To delete, in this order.
    pub delete: Vec<Digest>,
    /// Planned for deletion but left alone.
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub digest: Digest,
    #[serde(flatten)]
    pub reason: SkipReason,
}

/// Why a planned deletion was skipped; serialised as `{"skip": "<variant>", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "skip", rename_all = "snake_case")]
pub enum SkipReason {
    /// Its tags changed since the plan (sorted lists).
    TagsChanged { planned: Vec<String>, now: Vec<String> },
    /// An index that holds it was skipped.
    IndexSkipped { index: Digest },
    /// An index pushed since the plan holds it.
    InNewIndex { index: Digest },
    /// It holds `untagged`, which stays (kept, or skipped for its tags or
    /// for what it holds) but has no tag now, and every index holding it was
    /// planned for deletion: deleted, they would leave it with nothing
    /// pointing to it. (Not `digest`: a skip is flattened beside the
    /// skipped digest.)
    HoldsUntagged { untagged: Digest },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        match self {
            SkipReason::TagsChanged { planned, now } => {
                write!(f, "tags changed since the plan: {} → {}", list(planned), list(now))
            }
            SkipReason::IndexSkipped { index } => write!(f, "its index {} was skipped", index.short(12)),
            SkipReason::InNewIndex { index } => write!(f, "held by the new index {}", index.short(12)),
            SkipReason::HoldsUntagged { untagged } => {
                write!(f, "holds {}, which stays and has no tag now", untagged.short(12))
            }
        }
    }
}

/// The plan for people: per repository a table (DIGEST as 12 characters,
/// TAGS, CREATED in UTC, DECISION, REASON) and its totals, then the totals
/// of the plan. Warnings are not included; print [`Plan::warnings`] on
/// stderr. Deterministic, for snapshot tests.
pub fn render_plan(plan: &Plan) -> String {
    let mut out = String::new();
    for r in &plan.repositories {
        let policy = r.policy_entry.as_deref().unwrap_or("defaults");
        out.push_str(&format!("IMAGE: {}   policy: {policy}\n", r.image));
        let mut rows = vec![[
            "DIGEST".to_string(),
            "TAGS".to_string(),
            "CREATED".to_string(),
            "DECISION".to_string(),
            "REASON".to_string(),
        ]];
        for d in &r.digests {
            let child = d.tags.is_empty() && !d.parents.is_empty();
            rows.push([
                format!("{}{}", if child { "└ " } else { "" }, d.digest.short(12)),
                if d.tags.is_empty() {
                    "-".into()
                } else {
                    d.tags.join(", ")
                },
                d.created.as_deref().map_or_else(|| "-".into(), created_for_humans),
                d.decision.to_string(),
                reasons_for_humans(&d.reasons),
            ]);
        }
        let mut width = [0usize; 4];
        for row in &rows {
            for (w, cell) in width.iter_mut().zip(row.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in &rows {
            out.push_str("    ");
            for (w, cell) in width.iter().zip(row.iter()) {
                out.push_str(cell);
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
            out.push_str(&row[4]);
            out.push('\n');
        }
        out.push_str(&format!(
            "    {}\n\n",
            totals(r.delete_count, r.keep_count, r.reclaim_bytes)
        ));
    }
    out.push_str(&format!(
        "total: {}\n",
        totals(plan.delete_count, plan.keep_count, plan.reclaim_bytes)
    ));
    out
}

fn totals(delete: usize, keep: usize, bytes: u64) -> String {
    format!(
        "{delete} digest{} to delete, {keep} kept, {} to reclaim",
        if delete == 1 { "" } else { "s" },
        crate::human::bytes(bytes)
    )
}

/// `2026-01-25 01:01:33` for an RFC 3339 time, the raw value otherwise.
fn created_for_humans(created: &str) -> String {
    DateTime::parse_from_rfc3339(created)
        .map(|t| t.with_timezone(&Utc).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| created.to_string())
}

/// At most three reasons in words, then how many more.
fn reasons_for_humans(reasons: &[Reason]) -> String {
    const SHOWN: usize = 3;
    let mut text: Vec<String> = reasons.iter().take(SHOWN).map(Reason::to_string).collect();
    if reasons.len() > SHOWN {
        text.push(format!("+{} more", reasons.len() - SHOWN));
    }
    text.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_texts() {
        let d = Digest::sha256_of(b"index");
        let period: Period = "14d".parse().unwrap();
        let cases = [
            (
                Reason::Deployed {
                    workspace: "dev".into(),
                    host: "web1".into(),
                    app: "hello".into(),
                },
                "deployed on dev/web1 (hello)".to_string(),
            ),
            (
                Reason::RollbackTarget {
                    workspace: "prod".into(),
                    host: "h".into(),
                    app: "a".into(),
                    protect_history: 3,
                },
                "rollback target on prod/h (a)".into(),
            ),
            (
                Reason::KeptTag {
                    tag: "latest".into(),
                    pattern: "^latest$".into(),
                },
                "tag latest matches keep_tags ^latest$".into(),
            ),
            (
                Reason::KeepLast { rank: 2, keep_last: 10 },
                "newest #2 of keep_last 10".into(),
            ),
            (
                Reason::YoungerThan {
                    keep_younger_than: period,
                },
                "younger than 14d".into(),
            ),
            (Reason::Undated, "undated, keep_undated".into()),
            (
                Reason::ChildOfKeptIndex { index: d.clone() },
                format!("child of kept index {}", d.short(12)),
            ),
            (
                Reason::HoldsProtected { digest: d.clone() },
                format!("holds protected {}", d.short(12)),
            ),
            (
                Reason::HoldsKept { digest: d.clone() },
                format!("holds kept untagged {}", d.short(12)),
            ),
            (
                Reason::MaybeInUnreadable {
                    indexes: vec![d.clone()],
                },
                format!("may be in unreadable {}", d.short(12)),
            ),
            (Reason::NotInReviewedPlan, "not deleted by the reviewed plan".into()),
            (Reason::NotListed, "manifest not listed, kept to be safe".into()),
            (
                Reason::Expired {
                    keep_younger_than: period,
                    keep_last: 10,
                    rank: Some(11),
                },
                "older than 14d, newest #11 beyond keep_last 10".into(),
            ),
            (
                Reason::Expired {
                    keep_younger_than: Period::from_secs(0),
                    keep_last: 0,
                    rank: None,
                },
                "untagged".into(),
            ),
            (Reason::UndatedNotKept, "undated, keep_undated is off".into()),
            (
                Reason::OnlyInDeletedIndexes {
                    indexes: vec![d.clone(), Digest::sha256_of(b"other")],
                },
                format!(
                    "only in deleted index {}, {}",
                    d.short(12),
                    Digest::sha256_of(b"other").short(12)
                ),
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
            let keeps = !matches!(
                reason,
                Reason::Expired { .. } | Reason::UndatedNotKept | Reason::OnlyInDeletedIndexes { .. }
            );
            assert_eq!(reason.keeps(), keeps, "{reason:?}");
        }
    }

    #[test]
    fn totals_and_created_for_humans() {
        assert_eq!(totals(1, 0, 0), "1 digest to delete, 0 kept, 0 B to reclaim");
        assert_eq!(
            totals(3, 2, 5 * 1024 * 1024 + 512 * 1024),
            "3 digests to delete, 2 kept, 5.5 MiB to reclaim"
        );
        assert_eq!(created_for_humans("2026-01-25T01:01:33Z"), "2026-01-25 01:01:33");
        assert_eq!(created_for_humans("last tuesday"), "last tuesday");
        assert_eq!(
            reasons_for_humans(&[Reason::Undated, Reason::NotListed, Reason::Undated, Reason::NotListed]),
            "undated, keep_undated; manifest not listed, kept to be safe; undated, keep_undated; +1 more"
        );
    }

    #[test]
    fn empty_plan() {
        let policy: Policy = "workspaces: [dev]".parse().unwrap();
        let now = DateTime::parse_from_rfc3339("2026-02-01T00:00:00Z").unwrap().to_utc();
        let p = plan(&[], &[], &policy, now);
        assert_eq!(p.delete_count + p.keep_count, 0);
        assert_eq!(render_plan(&p), "total: 0 digests to delete, 0 kept, 0 B to reclaim\n");
        assert_eq!(missing_workspaces(&policy, &[]), vec!["dev".to_string()]);
    }
}
