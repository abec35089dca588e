//! The cleanup planner, without a network: properties over generated
//! registries, deploy state and policies, and examples with exact decisions.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use image_lifecycle::cleanup::{
    Decision, DigestPlan, Plan, Planning, Reason, RepositoryPlan, Reviewed, SkipReason, missing_workspaces, plan,
    plan_within, render_plan,
};
use image_lifecycle::deploy_state::{DeployRecord, DeployState, HistoryEntry};
use image_lifecycle::listing::{ImageEntry, ManifestKind, RepositoryListing};
use image_lifecycle::metadata::{ImageMetadata, format_utc};
use image_lifecycle::policy::Policy;
use image_lifecycle::reference::Digest;
use proptest::prelude::*;

const REGISTRY: &str = "registry.example.test";
const MIB: u64 = 1024 * 1024;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-02-01T12:00:00Z").unwrap().to_utc()
}

fn digest(name: &str) -> Digest {
    Digest::sha256_of(name.as_bytes())
}

/// `created` `hours` before [`now`].
fn hours_ago(hours: i64) -> String {
    format_utc(now() - TimeDelta::hours(hours))
}

fn entry(
    d: &Digest,
    kind: ManifestKind,
    created: Option<String>,
    children: &[Digest],
    blobs: &[(Digest, u64)],
) -> ImageEntry {
    ImageEntry {
        digest: d.clone(),
        media_type: match kind {
            ManifestKind::Image => "application/vnd.oci.image.manifest.v1+json".into(),
            ManifestKind::Index => "application/vnd.oci.image.index.v1+json".into(),
        },
        kind,
        metadata: ImageMetadata {
            created,
            ..Default::default()
        },
        children: children.to_vec(),
        children_unknown: false,
        blobs: blobs.iter().cloned().collect(),
        manifest_size: 1000,
    }
}

fn record(host: &str, app: &str, image: &str, current: &Digest, history: &[&Digest]) -> DeployRecord {
    DeployRecord {
        host: host.into(),
        path: None,
        app: app.into(),
        workspace: "dev".into(),
        image: image.into(),
        tag: None,
        digest: current.clone(),
        description: None,
        deployed_at: None,
        deployed_by: None,
        history: history
            .iter()
            .map(|d| HistoryEntry {
                image: None,
                digest: (*d).clone(),
                tag: None,
                deployed_at: None,
            })
            .collect(),
    }
}

fn state(workspace: &str, records: Vec<DeployRecord>) -> DeployState {
    DeployState {
        workspace: workspace.into(),
        collected_at: None,
        hosts: records.iter().map(|r| r.host.clone()).collect(),
        records: records
            .into_iter()
            .map(|r| DeployRecord {
                workspace: workspace.into(),
                ..r
            })
            .collect(),
    }
}

fn find<'a>(p: &'a Plan, repository: &str, d: &Digest) -> &'a DigestPlan {
    p.repositories
        .iter()
        .find(|r| r.repository == repository)
        .and_then(|r| r.digests.iter().find(|x| &x.digest == d))
        .unwrap_or_else(|| panic!("{d} not planned in {repository}"))
}

// ---------------------------------------------------------------- examples

/// A repository with one digest for each rule, the way the human output
/// should read it.
struct Example {
    listing: RepositoryListing,
    states: Vec<DeployState>,
    policy: Policy,
    d: BTreeMap<&'static str, Digest>,
}

fn example() -> Example {
    let d: BTreeMap<&str, Digest> = [
        "new",
        "latest",
        "current",
        "rollback",
        "old",
        "undated",
        "index",
        "child-x",
        "child-y",
        "index-new",
        "oldest",
        "gone",
    ]
    .into_iter()
    .map(|n| (n, digest(n)))
    .collect();
    let shared = (digest("layer-shared"), 3 * MIB);
    let own = |n: &str| (digest(&format!("layer-{n}")), MIB);
    let mut images = BTreeMap::new();
    let mut add = |e: ImageEntry| {
        images.insert(e.digest.clone(), e);
    };
    add(entry(
        &d["new"],
        ManifestKind::Image,
        Some(hours_ago(24)),
        &[],
        &[shared.clone(), own("new")],
    ));
    add(entry(
        &d["latest"],
        ManifestKind::Image,
        Some(hours_ago(2400)),
        &[],
        &[own("latest")],
    ));
    add(entry(
        &d["current"],
        ManifestKind::Image,
        Some(hours_ago(720)),
        &[],
        &[own("current")],
    ));
    add(entry(
        &d["rollback"],
        ManifestKind::Image,
        Some(hours_ago(960)),
        &[],
        &[own("rollback")],
    ));
    add(entry(
        &d["old"],
        ManifestKind::Image,
        Some(hours_ago(1200)),
        &[],
        &[shared.clone(), own("old")],
    ));
    add(entry(
        &d["oldest"],
        ManifestKind::Image,
        Some(hours_ago(3000)),
        &[],
        &[own("oldest")],
    ));
    add(entry(&d["undated"], ManifestKind::Image, None, &[], &[own("undated")]));
    add(entry(
        &d["index"],
        ManifestKind::Index,
        Some(hours_ago(1440)),
        &[d["child-x"].clone(), d["child-y"].clone()],
        &[],
    ));
    add(entry(
        &d["child-x"],
        ManifestKind::Image,
        Some(hours_ago(1440)),
        &[],
        &[own("child-x")],
    ));
    add(entry(
        &d["child-y"],
        ManifestKind::Image,
        Some(hours_ago(1440)),
        &[],
        &[own("child-y")],
    ));
    add(entry(
        &d["index-new"],
        ManifestKind::Index,
        Some(hours_ago(48)),
        &[d["child-y"].clone()],
        &[],
    ));
    let tags: BTreeMap<String, Digest> = [
        ("a1b2c3d", "new"),
        ("latest", "latest"),
        ("0ld1234", "latest"),
        ("c0ffee1", "current"),
        ("ba5eba1", "rollback"),
        ("01d0001", "old"),
        ("01d0000", "oldest"),
        ("nodate1", "undated"),
        ("1ndex01", "index"),
        ("1ndex02", "index-new"),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_string(), d[n].clone()))
    .collect();
    let listing = RepositoryListing {
        registry: REGISTRY.into(),
        repository: "rednaw/hello-world".into(),
        tags,
        images,
    };
    let image = listing.image_name();
    let states = vec![state(
        "dev",
        vec![
            record(
                "web1",
                "hello-world",
                &image,
                &d["current"],
                &[&d["oldest"], &d["rollback"], &d["current"]],
            ),
            record("web2", "hello-world", &image, &d["gone"], &[]),
        ],
    )];
    let policy: Policy = "workspaces: [dev, prod]
defaults: {keep_last: 2, keep_younger_than: 14d, protect_history: 2}
repositories:
  'rednaw/*': {keep_last: 3}
  rednaw/hello-world: {keep_last: 1}
"
    .parse()
    .unwrap();
    Example {
        listing,
        states,
        policy,
        d,
    }
}

#[test]
fn example_decisions_and_reasons() {
    let Example {
        listing,
        states,
        policy,
        d,
    } = example();
    let p = plan(std::slice::from_ref(&listing), &states, &policy, now());
    let repo = "rednaw/hello-world";
    let decided = |n: &str| {
        let x = find(&p, repo, &d[n]);
        (x.decision, x.reasons.clone())
    };
    use Decision::*;
    assert_eq!(
        decided("new"),
        (
            Keep,
            vec![
                Reason::KeepLast { rank: 1, keep_last: 1 },
                Reason::YoungerThan {
                    keep_younger_than: "14d".parse().unwrap()
                }
            ]
        )
    );
    assert_eq!(
        decided("latest"),
        (
            Keep,
            vec![Reason::KeptTag {
                tag: "latest".into(),
                pattern: "^latest$".into()
            }]
        )
    );
    assert_eq!(
        decided("current"),
        (
            Keep,
            vec![Reason::Deployed {
                workspace: "dev".into(),
                host: "web1".into(),
                app: "hello-world".into()
            }]
        )
    );
    assert_eq!(
        decided("rollback"),
        (
            Keep,
            vec![Reason::RollbackTarget {
                workspace: "dev".into(),
                host: "web1".into(),
                app: "hello-world".into(),
                protect_history: 2
            }]
        )
    );
    // Beyond protect_history 2: the current and `rollback` are the last two.
    let expired = |rank| Reason::Expired {
        keep_younger_than: "14d".parse().unwrap(),
        keep_last: 1,
        rank: Some(rank),
    };
    assert_eq!(decided("oldest"), (Delete, vec![expired(8)]));
    assert_eq!(decided("old"), (Delete, vec![expired(5)]));
    assert_eq!(decided("undated"), (Keep, vec![Reason::Undated]));
    assert_eq!(decided("index"), (Delete, vec![expired(6)]));
    assert_eq!(
        decided("child-x"),
        (
            Delete,
            vec![Reason::OnlyInDeletedIndexes {
                indexes: vec![d["index"].clone()]
            }]
        )
    );
    // Shared with a kept index: stays.
    assert_eq!(
        decided("child-y"),
        (
            Keep,
            vec![Reason::ChildOfKeptIndex {
                index: d["index-new"].clone()
            }]
        )
    );
    assert_eq!(p.delete_count, 4);
    assert_eq!(p.keep_count, 7);
    // old: own layer + manifest (the shared layer stays with `new`);
    // oldest: layer + manifest; index: manifest; child-x: layer + manifest.
    assert_eq!(p.reclaim_bytes, 3 * (MIB + 1000) + 1000);
    assert_eq!(p.repositories[0].reclaim_bytes, p.reclaim_bytes);
    assert_eq!(p.repositories[0].policy_entry.as_deref(), Some("rednaw/hello-world"));
    assert_eq!(
        p.warnings,
        vec![
            format!(
                "deployed digest `{}` of app `hello-world` on host `web2` (workspace `dev`) is not reached by any \
                 tag of its repository: untagged (the cleanup leaves it alone; a `garbage-collect \
                 --delete-untagged` would not) or gone from the registry",
                d["gone"]
            ),
            // The only repository it matches has an exact entry.
            "policy entry `rednaw/*` applies to no listed repository: `rednaw/hello-world` it matches takes an earlier \
             entry or an exact name"
                .to_string(),
        ]
    );
    assert_eq!(missing_workspaces(&policy, &states), vec!["prod".to_string()]);
    assert!(missing_workspaces(&policy, &[state("prod", vec![]), state("dev", vec![])]).is_empty());
}

#[test]
fn example_render_snapshot() {
    let Example {
        listing,
        states,
        policy,
        ..
    } = example();
    let p = plan(&[listing], &states, &policy, now());
    let expected = "\
IMAGE: registry.example.test/rednaw/hello-world   policy: rednaw/hello-world
    DIGEST          TAGS             CREATED              DECISION  REASON
    11507a0e2f5e    a1b2c3d          2026-01-31 12:00:00  keep      newest #1 of keep_last 1; younger than 14d
    cd8094318397    1ndex02          2026-01-30 12:00:00  keep      younger than 14d
    └ 5abd6b8fc460  -                2025-12-03 12:00:00  keep      child of kept index cd8094318397
    97b0560280ed    c0ffee1          2026-01-02 12:00:00  keep      deployed on dev/web1 (hello-world)
    da25480fb483    ba5eba1          2025-12-23 12:00:00  keep      rollback target on dev/web1 (hello-world)
    cba06b5736fa    01d0001          2025-12-13 12:00:00  delete    older than 14d, newest #5 beyond keep_last 1
    1bc04b5291c2    1ndex01          2025-12-03 12:00:00  delete    older than 14d, newest #6 beyond keep_last 1
    └ 1cac085c46f6  -                2025-12-03 12:00:00  delete    only in deleted index 1bc04b5291c2
    5e1e2bcac305    0ld1234, latest  2025-10-24 12:00:00  keep      tag latest matches keep_tags ^latest$
    ee6e80fdce6a    01d0000          2025-09-29 12:00:00  delete    older than 14d, newest #8 beyond keep_last 1
    27873558b00f    nodate1          -                    keep      undated, keep_undated
    4 digests to delete, 7 kept, 3.0 MiB to reclaim

total: 4 digests to delete, 7 kept, 3.0 MiB to reclaim
";
    assert_eq!(render_plan(&p), expected, "\n{}", render_plan(&p));
}

#[test]
fn json_shape() {
    let Example {
        listing,
        states,
        policy,
        d,
    } = example();
    let p = plan(&[listing], &states, &policy, now());
    let v = p.to_json();
    assert_eq!(v["planned_at"], "2026-02-01T12:00:00Z");
    assert_eq!(v["workspaces"], serde_json::json!(["dev"]));
    assert_eq!(v["delete_count"], 4);
    assert_eq!(v["keep_count"], 7);
    let repo = &v["repositories"][0];
    assert_eq!(repo["image"], "registry.example.test/rednaw/hello-world");
    assert_eq!(repo["policy_entry"], "rednaw/hello-world");
    assert_eq!(repo["retention"]["keep_last"], 1);
    assert_eq!(repo["retention"]["keep_younger_than"], "14d");
    let child = repo["digests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["digest"] == d["child-x"].to_string())
        .unwrap();
    assert_eq!(
        child,
        &serde_json::json!({
            "digest": d["child-x"].to_string(), "kind": "image", "tags": [],
            "created": "2025-12-03T12:00:00Z", "parents": [d["index"].to_string()],
            "size_bytes": MIB + 1000, "decision": "delete",
            "reasons": [{"rule": "only_in_deleted_indexes", "indexes": [d["index"].to_string()],
                         "text": format!("only in deleted index {}", d["index"].short(12))}]
        })
    );
    let current = &repo["digests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["digest"] == d["current"].to_string())
        .unwrap()["reasons"][0];
    assert_eq!(
        current,
        &serde_json::json!({"rule": "deployed", "workspace": "dev", "host": "web1", "app": "hello-world",
                            "text": "deployed on dev/web1 (hello-world)"})
    );
}

#[test]
fn deletions_go_index_first_and_recheck_skips_what_changed() {
    let Example {
        listing,
        states,
        policy,
        d,
    } = example();
    let p = plan(std::slice::from_ref(&listing), &states, &policy, now());
    let r = &p.repositories[0];
    let order: Vec<&Digest> = r.deletions().iter().map(|x| &x.digest).collect();
    assert_eq!(order, vec![&d["old"], &d["index"], &d["child-x"], &d["oldest"]]);

    // Nothing changed: everything goes, in that order.
    let same = r.recheck(&listing.tags, &BTreeMap::new());
    assert_eq!(same.delete, order.iter().map(|x| (*x).clone()).collect::<Vec<_>>());
    assert!(same.skipped.is_empty());
    assert!(r.unplanned_digests(&listing.tags).is_empty());

    // A tag added to `old`, and `1ndex01` moved to a new push.
    let mut tags = listing.tags.clone();
    tags.insert("hotfix".into(), d["old"].clone());
    let pushed = digest("pushed");
    tags.insert("1ndex01".into(), pushed.clone());
    assert_eq!(r.unplanned_digests(&tags), vec![pushed.clone()]);
    let rc = r.recheck(&tags, &BTreeMap::new());
    assert_eq!(rc.delete, vec![d["oldest"].clone()]);
    assert_eq!(
        rc.skipped.iter().map(|s| (&s.digest, &s.reason)).collect::<Vec<_>>(),
        vec![
            (
                &d["old"],
                &SkipReason::TagsChanged {
                    planned: vec!["01d0001".into()],
                    now: vec!["01d0001".into(), "hotfix".into()]
                }
            ),
            (
                &d["index"],
                &SkipReason::TagsChanged {
                    planned: vec!["1ndex01".into()],
                    now: vec![]
                }
            ),
            (
                &d["child-x"],
                &SkipReason::IndexSkipped {
                    index: d["index"].clone()
                }
            ),
        ]
    );

    // A new index that holds a planned child keeps it.
    let new_index: BTreeMap<Digest, Vec<Digest>> = [(pushed.clone(), vec![d["child-x"].clone()])].into();
    let rc = r.recheck(&listing.tags, &new_index);
    assert_eq!(
        rc.delete,
        vec![d["old"].clone(), d["index"].clone(), d["oldest"].clone()]
    );
    assert_eq!(rc.skipped[0].reason, SkipReason::InNewIndex { index: pushed });
}

#[test]
fn blobs_shared_with_another_repository_are_not_reclaimed() {
    let layer = (digest("base-layer"), 10 * MIB);
    let a_old = digest("a-old");
    let b_new = digest("b-new");
    let mk = |repo: &str, d: &Digest, hours: i64| RepositoryListing {
        registry: REGISTRY.into(),
        repository: repo.into(),
        tags: [("t".to_string(), d.clone())].into(),
        images: [(
            d.clone(),
            entry(
                d,
                ManifestKind::Image,
                Some(hours_ago(hours)),
                &[],
                std::slice::from_ref(&layer),
            ),
        )]
        .into(),
    };
    let policy: Policy = "workspaces: [dev]\ndefaults: {keep_last: 0}".parse().unwrap();
    let listings = [mk("team/a", &a_old, 5000), mk("team/b", &b_new, 1)];
    let p = plan(&listings, &[], &policy, now());
    assert_eq!(find(&p, "team/a", &a_old).decision, Decision::Delete);
    assert_eq!(find(&p, "team/b", &b_new).decision, Decision::Keep);
    assert_eq!(p.reclaim_bytes, 1000, "only the manifest: the layer is used in team/b");
    // The same layer in a different registry is not shared.
    let mut other = listings[1].clone();
    other.registry = "other.example.test".into();
    let p = plan(&[listings[0].clone(), other], &[], &policy, now());
    assert_eq!(p.reclaim_bytes, 10 * MIB + 1000);
}

/// A repository of images created long ago, each tagged with its short digest.
fn old_images(repo: &str, ds: &[&Digest]) -> RepositoryListing {
    let old = Some(hours_ago(5000));
    RepositoryListing {
        registry: REGISTRY.into(),
        repository: repo.into(),
        tags: ds.iter().map(|d| (d.short(7).to_string(), (*d).clone())).collect(),
        images: ds
            .iter()
            .map(|d| ((*d).clone(), entry(d, ManifestKind::Image, old.clone(), &[], &[])))
            .collect(),
    }
}

/// The app came from another repository before (its history names it):
/// those rollback targets are kept in that repository, and are not
/// "missing" from the current one.
#[test]
fn rollback_targets_from_another_repository_are_kept_there() {
    let (o1, o2, o3, w) = (digest("old-1"), digest("old-2"), digest("old-3"), digest("web"));
    let listing = old_images;
    let listings = [listing("acme/web-old", &[&o1, &o2, &o3]), listing("acme/web", &[&w])];
    let policy: Policy = "workspaces: [dev]\ndefaults: {keep_last: 0, protect_history: 3}"
        .parse()
        .unwrap();
    let before = format!("{REGISTRY}/acme/web-old");
    let mut r = record("h1", "web", &format!("{REGISTRY}/acme/web"), &w, &[&o2, &o3, &w]);
    for h in &mut r.history[..2] {
        h.image = Some(before.clone());
    }
    let p = plan(&listings, &[state("dev", vec![r])], &policy, now());
    assert_eq!(find(&p, "acme/web", &w).decision, Decision::Keep);
    for d in [&o3, &o2] {
        let x = find(&p, "acme/web-old", d);
        assert!(
            x.decision == Decision::Keep && matches!(&x.reasons[..], [Reason::RollbackTarget { .. }]),
            "{d}: {:?}",
            x.reasons
        );
    }
    assert_eq!(find(&p, "acme/web-old", &o1).decision, Decision::Delete);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

/// `protect_history: 1` keeps only what runs: where that deletes the
/// digest `task rollback` would go back to, the plan says so (and only
/// there: a previous deploy another rule keeps, or `protect_history: 2`,
/// gives no warning).
#[test]
fn protect_history_one_warns_where_it_deletes_the_rollback_target() {
    let (a, b, c, kept) = (digest("a"), digest("b"), digest("c"), digest("kept"));
    let listing = old_images;
    let listings = [listing("acme/web", &[&a, &b, &c]), listing("acme/api", &[&kept, &c])];
    let web = format!("{REGISTRY}/acme/web");
    let api = format!("{REGISTRY}/acme/api");
    // web1 runs c after b after a: its rollback target is b. api1's is
    // `kept`, which a tag rule keeps.
    let states = [state(
        "dev",
        vec![
            record("web1", "web", &web, &c, &[&a, &b, &c]),
            record("api1", "api", &api, &c, &[&kept, &c]),
        ],
    )];
    let policy = |n: usize| -> Policy {
        format!(
            "workspaces: [dev]\ndefaults: {{keep_last: 0, protect_history: {n}}}\nrepositories:\n  acme/api: {{keep_tags: ['^{}$']}}",
            kept.short(7)
        )
        .parse()
        .unwrap()
    };
    let p = plan(&listings, &states, &policy(1), now());
    assert_eq!(find(&p, "acme/web", &b).decision, Decision::Delete);
    assert_eq!(find(&p, "acme/api", &kept).decision, Decision::Keep);
    assert_eq!(
        p.warnings,
        [format!(
            "app `web` on host `web1` (workspace `dev`) cannot roll back: its previous deploy `{b}` is deleted, as \
             `protect_history: 1` of `acme/web` keeps only what runs (2 keeps one rollback target)"
        )],
        "{:#?}",
        p.warnings
    );
    let p = plan(&listings, &states, &policy(2), now());
    assert_eq!(find(&p, "acme/web", &b).decision, Decision::Keep);
    assert_eq!(find(&p, "acme/web", &a).decision, Decision::Delete);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

/// A host deployed a platform image by its digest: the old index holding
/// it stays (deleted, it would leave the child unreferenced for a
/// collection of untagged manifests), and with it its other children.
#[test]
fn an_index_holding_a_deployed_platform_image_is_kept() {
    let (idx, amd, arm, other) = (digest("index"), digest("amd64"), digest("arm64"), digest("other"));
    let old = Some(hours_ago(5000));
    let listing = RepositoryListing {
        registry: REGISTRY.into(),
        repository: "acme/multi".into(),
        tags: [
            ("aaaaaaa".to_string(), idx.clone()),
            ("bbbbbbb".to_string(), other.clone()),
        ]
        .into(),
        images: [
            (
                idx.clone(),
                entry(&idx, ManifestKind::Index, old.clone(), &[amd.clone(), arm.clone()], &[]),
            ),
            (amd.clone(), entry(&amd, ManifestKind::Image, old.clone(), &[], &[])),
            (arm.clone(), entry(&arm, ManifestKind::Image, old.clone(), &[], &[])),
            (other.clone(), entry(&other, ManifestKind::Image, old.clone(), &[], &[])),
        ]
        .into(),
    };
    let policy: Policy = "workspaces: [dev]\ndefaults: {keep_last: 0}".parse().unwrap();
    let image = format!("{REGISTRY}/acme/multi");
    let states = [state("dev", vec![record("h1", "multi", &image, &amd, &[])])];
    let p = plan(&[listing], &states, &policy, now());
    let x = find(&p, "acme/multi", &idx);
    assert_eq!(x.decision, Decision::Keep);
    assert_eq!(x.reasons, [Reason::HoldsProtected { digest: amd.clone() }]);
    assert_eq!(find(&p, "acme/multi", &amd).decision, Decision::Keep);
    let arm = find(&p, "acme/multi", &arm);
    assert_eq!(
        (arm.decision, &arm.reasons),
        (Decision::Keep, &vec![Reason::ChildOfKeptIndex { index: idx.clone() }])
    );
    assert_eq!(find(&p, "acme/multi", &other).decision, Decision::Delete);
}

/// `acme/multi` with these tags and manifests (see [`index`], [`image`]).
fn multi(tags: &[(&str, &Digest)], images: Vec<ImageEntry>) -> RepositoryListing {
    RepositoryListing {
        registry: REGISTRY.into(),
        repository: "acme/multi".into(),
        tags: tags.iter().map(|(t, d)| (t.to_string(), (*d).clone())).collect(),
        images: images.into_iter().map(|e| (e.digest.clone(), e)).collect(),
    }
}

/// Only the grace period keeps: `keep_last: 0`, `keep_younger_than: 14d`.
fn grace_only() -> Policy {
    "workspaces: [dev]\ndefaults: {keep_last: 0, keep_younger_than: 14d}"
        .parse()
        .unwrap()
}

/// An index listing `children`, without blobs.
fn index(d: &Digest, created: &Option<String>, children: &[&Digest]) -> ImageEntry {
    let children: Vec<Digest> = children.iter().map(|c| (*c).clone()).collect();
    entry(d, ManifestKind::Index, created.clone(), &children, &[])
}

/// A platform image without blobs.
fn image(d: &Digest, created: &Option<String>) -> ImageEntry {
    entry(d, ManifestKind::Image, created.clone(), &[], &[])
}

/// An index expires by the date of the image it chooses; a newer untagged
/// image beside it (another platform, or an inner index with its own date)
/// is kept by its own grace period. Every index holding it stays with it
/// (`holds_kept`), and the outer index with the inner one: deleted, they
/// would leave it with nothing pointing to it and no later scan seeing it.
/// An index kept by a reason of its own (`other`, young too) lists only
/// that. Tagged, the young image needs no index: the old ones go.
#[test]
fn a_young_untagged_child_keeps_the_indexes_holding_it() {
    let (outer, inner, amd, young, other) = (
        digest("outer"),
        digest("inner"),
        digest("amd64"),
        digest("young"),
        digest("other"),
    );
    let (old, new) = (Some(hours_ago(5000)), Some(hours_ago(2)));
    let listing = |young_tag: Option<&str>, inner_tag: Option<&str>| {
        let tags: Vec<(&str, &Digest)> = [("aaaaaaa", &outer), ("bbbbbbb", &other)]
            .into_iter()
            .chain(young_tag.map(|t| (t, &young)))
            .chain(inner_tag.map(|t| (t, &inner)))
            .collect();
        multi(
            &tags,
            vec![
                index(&outer, &old, &[&inner]),
                index(&inner, &old, &[&amd, &young]),
                image(&amd, &old),
                image(&young, &new),
                index(&other, &new, &[&young]),
            ],
        )
    };
    let policy = grace_only();
    let decisions = |p: &Plan| -> Vec<Decision> {
        [&outer, &inner, &amd, &young, &other]
            .map(|d| find(p, "acme/multi", d).decision)
            .to_vec()
    };
    use Decision::{Delete, Keep};

    let p = plan(&[listing(None, None)], &[], &policy, now());
    assert_eq!(decisions(&p), [Keep, Keep, Keep, Keep, Keep]);
    assert_eq!(
        find(&p, "acme/multi", &inner).reasons,
        [
            Reason::ChildOfKeptIndex { index: outer.clone() },
            Reason::HoldsKept { digest: young.clone() }
        ]
    );
    assert_eq!(
        find(&p, "acme/multi", &outer).reasons,
        [Reason::HoldsKept { digest: inner.clone() }]
    );
    // A young index holding it keeps its own reason only.
    assert_eq!(
        find(&p, "acme/multi", &other).reasons,
        [Reason::YoungerThan {
            keep_younger_than: "14d".parse().unwrap()
        }]
    );
    assert_eq!(
        find(&p, "acme/multi", &amd).reasons,
        [Reason::ChildOfKeptIndex { index: inner.clone() }]
    );
    assert!(
        render_plan(&p).contains(&format!("holds kept untagged {}", young.short(12))),
        "{}",
        render_plan(&p)
    );

    let p = plan(&[listing(Some("ccccccc"), None)], &[], &policy, now());
    assert_eq!(decisions(&p), [Delete, Delete, Delete, Keep, Keep]);

    // The inner index tagged: it stays for the young image, and needs no
    // index itself, so the outer one goes.
    let p = plan(&[listing(None, Some("iiiiiii"))], &[], &policy, now());
    assert_eq!(decisions(&p), [Delete, Keep, Keep, Keep, Keep]);
    assert_eq!(
        find(&p, "acme/multi", &inner).reasons,
        [Reason::HoldsKept { digest: young.clone() }]
    );
}

/// A platform image tagged at review (kept by `keep_tags`) and untagged
/// since: the reviewed plan keeps it, and its index, which that plan
/// deletes, stays with it rather than leave it with nothing pointing to it.
/// Without the reviewed plan both go.
#[test]
fn a_child_a_reviewed_plan_keeps_keeps_its_index() {
    let (idx, amd, arm) = (digest("index"), digest("amd64"), digest("arm64"));
    let old = Some(hours_ago(5000));
    let listing = |latest: bool| {
        let tags: Vec<(&str, &Digest)> = [("aaaaaaa", &idx)]
            .into_iter()
            .chain(latest.then_some(("latest", &amd)))
            .collect();
        multi(
            &tags,
            vec![index(&idx, &old, &[&amd, &arm]), image(&amd, &old), image(&arm, &old)],
        )
    };
    let policy = grace_only();
    let review = plan(&[listing(true)], &[], &policy, now());
    let decisions = |p: &Plan| [&idx, &amd, &arm].map(|d| find(p, "acme/multi", d).decision);
    use Decision::{Delete, Keep};
    assert_eq!(decisions(&review), [Delete, Keep, Delete]);
    let mut reviewed = Reviewed::default();
    for r in &review.repositories {
        for x in r.digests.iter().filter(|x| x.decision == Delete) {
            reviewed.add(&r.image, x.digest.clone(), x.tags.clone());
        }
    }
    assert_eq!(decisions(&plan(&[listing(false)], &[], &policy, now())), [Delete; 3]);
    let within = plan_within(
        &[listing(false)],
        &Planning {
            policy: &policy,
            states: &[],
            now: now(),
            reviewed: Some(&reviewed),
        },
    );
    assert_eq!(decisions(&within), [Keep; 3]);
    assert_eq!(
        find(&within, "acme/multi", &idx).reasons,
        [Reason::HoldsKept { digest: amd.clone() }]
    );
    assert_eq!(
        find(&within, "acme/multi", &arm).reasons,
        [Reason::ChildOfKeptIndex { index: idx.clone() }]
    );
}

/// Just before deleting, an index whose child stays (kept, or skipped as
/// its tags changed) with no tag now, and no other index, is skipped too.
#[test]
fn the_recheck_keeps_an_index_whose_child_lost_its_tag() {
    let (idx, young, old_child, pushed) = (digest("index"), digest("young"), digest("old"), digest("pushed"));
    let (old, new) = (Some(hours_ago(5000)), Some(hours_ago(2)));
    let listing = multi(
        &[("aaaaaaa", &idx), ("ccccccc", &young), ("ddddddd", &old_child)],
        vec![
            index(&idx, &old, &[&young, &old_child]),
            image(&young, &new),
            image(&old_child, &old),
        ],
    );
    let policy = grace_only();
    let p = plan(std::slice::from_ref(&listing), &[], &policy, now());
    let r = &p.repositories[0];
    // Tagged, the young image needs no index: the index goes.
    assert_eq!(find(&p, "acme/multi", &idx).decision, Decision::Delete);
    assert_eq!(find(&p, "acme/multi", &young).decision, Decision::Keep);
    assert_eq!(find(&p, "acme/multi", &old_child).decision, Decision::Delete);

    // The young image's tag moved: the index stays for it, and what it
    // holds with it.
    let mut tags = listing.tags.clone();
    tags.insert("ccccccc".into(), pushed.clone());
    let rc = r.recheck(&tags, &BTreeMap::new());
    assert!(rc.delete.is_empty(), "{rc:?}");
    assert_eq!(
        rc.skipped.iter().map(|s| (&s.digest, &s.reason)).collect::<Vec<_>>(),
        [
            (
                &idx,
                &SkipReason::HoldsUntagged {
                    untagged: young.clone()
                }
            ),
            (&old_child, &SkipReason::IndexSkipped { index: idx.clone() }),
        ]
    );
    assert_eq!(
        rc.skipped[0].reason.to_string(),
        format!("holds {}, which stays and has no tag now", young.short(12))
    );

    // The old image, planned for deletion with its tag, lost it: skipped
    // for its tags, and the index stays for it.
    let mut tags = listing.tags.clone();
    tags.remove("ddddddd");
    let rc = r.recheck(&tags, &BTreeMap::new());
    assert!(rc.delete.is_empty(), "{rc:?}");
    assert_eq!(
        rc.skipped.iter().map(|s| (&s.digest, &s.reason)).collect::<Vec<_>>(),
        [
            (
                &idx,
                &SkipReason::HoldsUntagged {
                    untagged: old_child.clone()
                }
            ),
            (
                &old_child,
                &SkipReason::TagsChanged {
                    planned: vec!["ddddddd".into()],
                    now: vec![]
                }
            ),
        ]
    );
}

/// An index deleted meanwhile (its tags gone, its manifest 404) holds
/// nothing: a kept child of it left without a tag does not make the recheck
/// skip it, and its planned children follow it.
#[test]
fn a_gone_index_holds_nothing_at_the_recheck() {
    let (idx, kept, old_child) = (digest("index"), digest("kept"), digest("old"));
    let old = Some(hours_ago(5000));
    let listing = multi(
        &[("aaaaaaa", &idx), ("latest", &kept)],
        vec![
            index(&idx, &old, &[&kept, &old_child]),
            image(&kept, &old),
            image(&old_child, &old),
        ],
    );
    let policy = grace_only();
    let p = plan(&[listing], &[], &policy, now());
    let r = &p.repositories[0];
    let decisions = [&idx, &kept, &old_child].map(|d| find(&p, "acme/multi", d).decision);
    assert_eq!(decisions, [Decision::Delete, Decision::Keep, Decision::Delete]);
    // No tag left; the index's manifest answers 404 (prune asks).
    let view = r.with_gone(&[idx.clone()].into());
    let rc = view.recheck(&BTreeMap::new(), &BTreeMap::new());
    assert_eq!(rc.delete, [idx.clone(), old_child.clone()]);
    assert!(rc.skipped.is_empty(), "{rc:?}");
    // Not gone, it stays for the kept image, and its child with it.
    let rc = r.recheck(&BTreeMap::new(), &BTreeMap::new());
    assert!(rc.delete.is_empty(), "{rc:?}");
}

/// A tagged manifest that could not be read may be an index holding
/// anything of the repository (tagged platform images too): nothing of the
/// repository goes, and no index goes to leave its children unreferenced.
#[test]
fn nothing_goes_while_a_tagged_manifest_is_unreadable() {
    let (lost, idx, shared, own, platform) = (
        digest("lost"),
        digest("index"),
        digest("shared"),
        digest("own"),
        digest("platform"),
    );
    let old = Some(hours_ago(5000));
    let listing = RepositoryListing {
        registry: REGISTRY.into(),
        repository: "acme/multi".into(),
        tags: [
            ("xxxxxxx".to_string(), lost.clone()),
            ("yyyyyyy".to_string(), idx.clone()),
            ("xxxxxxx-amd64".to_string(), platform.clone()),
        ]
        .into(),
        images: [
            (
                idx.clone(),
                entry(
                    &idx,
                    ManifestKind::Index,
                    old.clone(),
                    &[shared.clone(), own.clone()],
                    &[],
                ),
            ),
            (
                shared.clone(),
                entry(&shared, ManifestKind::Image, old.clone(), &[], &[]),
            ),
            (own.clone(), entry(&own, ManifestKind::Image, old.clone(), &[], &[])),
            (
                platform.clone(),
                entry(&platform, ManifestKind::Image, old.clone(), &[], &[]),
            ),
        ]
        .into(),
    };
    let policy: Policy = "workspaces: [dev]\ndefaults: {keep_last: 0}".parse().unwrap();
    let p = plan(std::slice::from_ref(&listing), &[], &policy, now());
    assert_eq!(find(&p, "acme/multi", &lost).decision, Decision::Keep);
    for d in [&idx, &shared, &own, &platform] {
        let x = find(&p, "acme/multi", d);
        assert_eq!(x.decision, Decision::Keep, "{d}: {:?}", x.reasons);
        assert!(
            x.reasons.contains(&Reason::MaybeInUnreadable {
                indexes: vec![lost.clone()]
            }),
            "{:?}",
            x.reasons
        );
    }
    assert_eq!(p.delete_count, 0);
    // Another repository is not held back by it.
    let mut other = listing.clone();
    other.repository = "acme/other".into();
    other.tags.remove("xxxxxxx");
    let p = plan(&[listing, other], &[], &policy, now());
    assert_eq!(find(&p, "acme/other", &platform).decision, Decision::Delete);
}

/// The scan lists an index nested too deep without its children: what it
/// holds is unknown, so nothing of the repository goes (a tagged platform
/// image it holds would otherwise be expired).
#[test]
fn nothing_goes_while_a_nested_index_hides_its_children() {
    let (outer, nested, platform) = (digest("outer"), digest("nested"), digest("platform"));
    let old = Some(hours_ago(5000));
    let listing = RepositoryListing {
        registry: REGISTRY.into(),
        repository: "acme/nested".into(),
        tags: [
            ("ooooooo".to_string(), outer.clone()),
            ("ppppppp".to_string(), platform.clone()),
        ]
        .into(),
        images: [
            (
                outer.clone(),
                entry(
                    &outer,
                    ManifestKind::Index,
                    old.clone(),
                    std::slice::from_ref(&nested),
                    &[],
                ),
            ),
            (
                nested.clone(),
                ImageEntry {
                    children_unknown: true,
                    ..entry(&nested, ManifestKind::Index, None, &[], &[])
                },
            ),
            (
                platform.clone(),
                entry(&platform, ManifestKind::Image, old.clone(), &[], &[]),
            ),
        ]
        .into(),
    };
    let policy: Policy = "workspaces: [dev]\ndefaults: {keep_last: 0}".parse().unwrap();
    let p = plan(std::slice::from_ref(&listing), &[], &policy, now());
    assert_eq!(p.delete_count, 0, "{:#?}", p.repositories);
    assert_eq!(
        p.warnings,
        [format!(
            "`{REGISTRY}/acme/nested`: index `{nested}` is nested more than 4 levels below a tagged index, so what \
             it holds is not read; nothing of `{REGISTRY}/acme/nested` is deleted while it is there (untag the \
             index that holds it)"
        )]
    );
    let x = find(&p, "acme/nested", &platform);
    assert!(
        x.reasons.contains(&Reason::MaybeInUnreadable {
            indexes: vec![nested.clone()]
        }),
        "{:?}",
        x.reasons
    );
}

/// An empty index holds nothing: it is decided like any other digest, and
/// holds nothing else of its repository.
#[test]
fn an_empty_index_holds_nothing() {
    let (empty, image) = (digest("empty"), digest("image"));
    let old = Some(hours_ago(5000));
    let listing = RepositoryListing {
        registry: REGISTRY.into(),
        repository: "acme/empty".into(),
        tags: [
            ("eeeeeee".to_string(), empty.clone()),
            ("iiiiiii".to_string(), image.clone()),
        ]
        .into(),
        images: [
            (empty.clone(), entry(&empty, ManifestKind::Index, old.clone(), &[], &[])),
            (image.clone(), entry(&image, ManifestKind::Image, old.clone(), &[], &[])),
        ]
        .into(),
    };
    let policy: Policy = "workspaces: [dev]\ndefaults: {keep_last: 0}".parse().unwrap();
    let p = plan(&[listing], &[], &policy, now());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.delete_count, 2, "{:#?}", p.repositories);
}

/// `localhost:5000` and `127.0.0.1:5000` are one registry: a record that
/// names it the other way still keeps what the host runs and may go back
/// to, but a digest of it that is not here is not "missing".
#[test]
fn a_record_naming_the_registry_another_way_still_protects_its_digests() {
    let (run, back, old) = (digest("running"), digest("rollback"), digest("old"));
    let listing = RepositoryListing {
        registry: REGISTRY.into(),
        repository: "acme/web".into(),
        tags: [
            ("aaaaaaa".to_string(), run.clone()),
            ("bbbbbbb".to_string(), back.clone()),
            ("ccccccc".to_string(), old.clone()),
        ]
        .into(),
        images: [&run, &back, &old]
            .into_iter()
            .map(|d| {
                (
                    d.clone(),
                    entry(d, ManifestKind::Image, Some(hours_ago(5000)), &[], &[]),
                )
            })
            .collect(),
    };
    let policy: Policy = "workspaces: [dev]\ndefaults: {keep_last: 0, protect_history: 2}"
        .parse()
        .unwrap();
    let alias = "registry.alias.test/acme/web";
    let states = [state(
        "dev",
        vec![
            record("h1", "web", alias, &run, &[&back]),
            record("h2", "web", alias, &digest("not-here"), &[]),
        ],
    )];
    let p = plan(std::slice::from_ref(&listing), &states, &policy, now());
    let kept = find(&p, "acme/web", &run);
    assert_eq!(kept.decision, Decision::Keep);
    assert!(
        matches!(&kept.reasons[..], [Reason::Deployed { host, .. }] if host == "h1"),
        "{:?}",
        kept.reasons
    );
    let back = find(&p, "acme/web", &back);
    assert_eq!(back.decision, Decision::Keep);
    assert!(
        matches!(&back.reasons[..], [Reason::RollbackTarget { .. }]),
        "{:?}",
        back.reasons
    );
    assert_eq!(find(&p, "acme/web", &old).decision, Decision::Delete);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // Another repository path is another image, whatever the host.
    let other = [state(
        "dev",
        vec![record("h1", "web", "registry.alias.test/acme/api", &run, &[])],
    )];
    let p = plan(&[listing], &other, &policy, now());
    assert_eq!(find(&p, "acme/web", &run).decision, Decision::Delete);
}

/// A glob that every repository it matches takes from an exact name or an
/// earlier glob never applies: said in a warning (one that applies
/// somewhere, and an exact name, are not).
#[test]
fn a_glob_always_beaten_by_earlier_entries_warns() {
    let listing = |repository: &str| RepositoryListing {
        registry: REGISTRY.into(),
        repository: repository.into(),
        tags: BTreeMap::new(),
        images: BTreeMap::new(),
    };
    let listings = [listing("acme/web"), listing("acme/api"), listing("tools/ci")];
    let policy: Policy = "workspaces: [dev]
repositories:
  acme/web: {keep_last: 5}
  'acme/*': {keep_last: 3}
  'acme/w*': {keep_last: 1}
  'a*/api': {keep_last: 2}
  'tools/*': {keep_last: 4}
  'tools/**': {keep_last: 9}"
        .parse()
        .unwrap();
    let p = plan(&listings, &[], &policy, now());
    assert_eq!(
        p.warnings,
        [
            "policy entry `a*/api` applies to no listed repository: `acme/api` it matches takes an earlier entry or an \
             exact name",
            "policy entry `acme/w*` applies to no listed repository: `acme/web` it matches takes an earlier entry or an \
             exact name",
            "policy entry `tools/**` applies to no listed repository: `tools/ci` it matches takes an earlier entry or an \
             exact name",
        ],
        "{:#?}",
        p.warnings
    );
}

#[test]
fn unlisted_tag_target_is_kept_and_unlisted_repository_warns() {
    let d = digest("unreadable");
    let listing = RepositoryListing {
        registry: REGISTRY.into(),
        repository: "x/y".into(),
        tags: [("t".to_string(), d.clone())].into(),
        images: BTreeMap::new(),
    };
    let policy: Policy = "workspaces: [dev]\ndefaults: {keep_last: 0, keep_undated: false}
repositories: {'nothing/*': {}}"
        .parse()
        .unwrap();
    let other = format!("{REGISTRY}/x/other");
    let foreign = "elsewhere.example.test/x/y";
    let states = [state(
        "dev",
        vec![
            record("h1", "other", &other, &digest("o1"), &[&digest("o0")]),
            record("h1", "foreign", foreign, &digest("f"), &[]),
        ],
    )];
    let p = plan(&[listing], &states, &policy, now());
    let x = find(&p, "x/y", &d);
    assert_eq!((x.decision, &x.reasons), (Decision::Keep, &vec![Reason::NotListed]));
    assert_eq!(x.kind, None);
    assert_eq!(p.warnings.len(), 4, "{:#?}", p.warnings);
    assert!(
        p.warnings[0].contains("manifest is not in the listing"),
        "{:?}",
        p.warnings
    );
    assert_eq!(
        p.warnings[1],
        format!(
            "deployed digest `{}` of app `other` on host `h1` (workspace `dev`) is of `x/other`, which the \
             registry's catalog does not list",
            digest("o1")
        )
    );
    assert!(p.warnings[2].contains("`nothing/*` matches no listed repository"));
    assert!(p.warnings[3].starts_with(&format!("rollback digest `{}` of app `other`", digest("o0"))));
    assert!(
        !p.warnings.iter().any(|w| w.contains("foreign")),
        "other registries are not ours"
    );
}

// -------------------------------------------------------------- properties

/// A generated registry: small ids that the builders below turn into
/// listings, deploy state and a policy.
#[derive(Debug, Clone)]
struct World {
    repos: Vec<RepoSpec>,
    records: Vec<RecordSpec>,
    keep_last: usize,
    grace_hours: u32,
    keep_tags: Vec<&'static str>,
    protect_history: usize,
    keep_undated: bool,
    /// A different `keep_last` for the first repository, by exact name.
    override_keep_last: Option<usize>,
}

#[derive(Debug, Clone)]
struct RepoSpec {
    /// Top-level manifests: created, children (as ids into `children`), blobs.
    tops: Vec<ManifestSpec>,
    /// Manifests that indexes can list: platform images, and indexes in
    /// indexes (child `c` lists only children after it, so no cycle).
    children: Vec<ManifestSpec>,
    /// For each name of [`TAG_NAMES`]: which manifest it points to, as an id
    /// into `tops ++ children`, or none.
    tags: Vec<Option<usize>>,
}

#[derive(Debug, Clone)]
struct ManifestSpec {
    created: Created,
    children: Vec<usize>,
    blobs: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Created {
    HoursAgo(i64),
    Missing,
    Raw,
}

#[derive(Debug, Clone)]
struct RecordSpec {
    workspace: usize,
    host: usize,
    repo: usize,
    /// Digest picks into the repository's manifests (or beyond: missing),
    /// the current one first, then the history newest first; a history
    /// pick marked `true` is of the next repository (the app came from
    /// there before).
    picks: Vec<(usize, bool)>,
}

const TAG_NAMES: &[&str] = &["latest", "v1", "v2", "keep-me", "a1b2c3d", "e4f5a6b", "main", "x"];
const TAG_PATTERNS: &[&str] = &["^latest$", "^v", "keep", "^main$"];

fn created_strategy() -> impl Strategy<Value = Created> {
    prop_oneof![
        6 => (-48i64..3000).prop_map(Created::HoursAgo),
        1 => Just(Created::Missing),
        1 => Just(Created::Raw),
    ]
}

fn manifest_strategy(max_children: usize) -> impl Strategy<Value = ManifestSpec> {
    (
        created_strategy(),
        prop::collection::vec(0..5usize, 0..=max_children),
        prop::collection::vec(0..12usize, 0..3),
    )
        .prop_map(|(created, children, blobs)| ManifestSpec {
            created,
            children,
            blobs,
        })
}

fn repo_strategy() -> impl Strategy<Value = RepoSpec> {
    (
        prop::collection::vec(manifest_strategy(3), 0..9),
        prop::collection::vec(prop_oneof![3 => manifest_strategy(0), 1 => manifest_strategy(2)], 5),
        prop::collection::vec(prop::option::weighted(0.6, 0..14usize), TAG_NAMES.len()),
    )
        .prop_map(|(tops, children, tags)| RepoSpec { tops, children, tags })
}

fn world_strategy() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(repo_strategy(), 1..4),
        prop::collection::vec(
            (
                0..2usize,
                0..3usize,
                0..4usize,
                prop::collection::vec((0..16usize, prop::bool::weighted(0.2)), 1..5),
            )
                .prop_map(|(workspace, host, repo, picks)| RecordSpec {
                    workspace,
                    host,
                    repo,
                    picks,
                }),
            0..6,
        ),
        0..5usize,
        prop_oneof![Just(0u32), 1..3000u32],
        prop::sample::subsequence(TAG_PATTERNS, 0..=TAG_PATTERNS.len()),
        1..4usize,
        any::<bool>(),
        prop::option::of(0..5usize),
    )
        .prop_map(
            |(repos, records, keep_last, grace_hours, keep_tags, protect_history, keep_undated, override_keep_last)| {
                World {
                    repos,
                    records,
                    keep_last,
                    grace_hours,
                    keep_tags,
                    protect_history,
                    keep_undated,
                    override_keep_last,
                }
            },
        )
}

fn repo_name(i: usize) -> String {
    format!("team/app{i}")
}

/// The digest of manifest `id` of repository `repo` (`tops ++ children`);
/// made up rather than hashed, which is slow in debug builds.
fn manifest_digest(repo: usize, id: usize) -> Digest {
    format!("sha256:{:064x}", (repo << 16) | id).parse().unwrap()
}

fn blob_digest(b: usize) -> Digest {
    format!("sha256:{:064x}", (1 << 32) | b).parse().unwrap()
}

impl World {
    fn listings(&self) -> Vec<RepositoryListing> {
        self.repos
            .iter()
            .enumerate()
            .map(|(ri, spec)| {
                let ntop = spec.tops.len();
                // What child `c` lists: only children after it.
                let kids = |id: usize, m: &ManifestSpec| -> Vec<usize> {
                    m.children
                        .iter()
                        .copied()
                        .filter(|&c| id < ntop || c > id - ntop)
                        .collect()
                };
                // Children only exist as far as an index lists them.
                let mut listed = vec![false; spec.children.len()];
                for t in &spec.tops {
                    for &c in &t.children {
                        listed[c] = true;
                    }
                }
                for c in 0..spec.children.len() {
                    if listed[c] {
                        for k in kids(ntop + c, &spec.children[c]) {
                            listed[k] = true;
                        }
                    }
                }
                let mut images = BTreeMap::new();
                for (id, m) in spec.tops.iter().chain(&spec.children).enumerate() {
                    let d = manifest_digest(ri, id);
                    let created = match m.created {
                        Created::HoursAgo(h) => Some(hours_ago(h)),
                        Created::Missing => None,
                        Created::Raw => Some("last tuesday".to_string()),
                    };
                    let children: Vec<Digest> = kids(id, m).iter().map(|c| manifest_digest(ri, ntop + c)).collect();
                    let kind = if children.is_empty() {
                        ManifestKind::Image
                    } else {
                        ManifestKind::Index
                    };
                    let blobs: Vec<(Digest, u64)> = m
                        .blobs
                        .iter()
                        .map(|b| (blob_digest(*b), 100 * (*b as u64 + 1)))
                        .collect();
                    if id < ntop || listed[id - ntop] {
                        images.insert(d.clone(), entry(&d, kind, created, &children, &blobs));
                    }
                }
                let tags = TAG_NAMES
                    .iter()
                    .zip(&spec.tags)
                    .filter_map(|(name, target)| {
                        let id = (*target)?;
                        let d = manifest_digest(ri, id % (ntop + spec.children.len()));
                        images.contains_key(&d).then(|| (name.to_string(), d))
                    })
                    .collect();
                RepositoryListing {
                    registry: REGISTRY.into(),
                    repository: repo_name(ri),
                    tags,
                    images,
                }
            })
            .collect()
    }

    fn states(&self) -> Vec<DeployState> {
        ["dev", "prod"]
            .iter()
            .enumerate()
            .map(|(wi, ws)| {
                let records = self
                    .records
                    .iter()
                    .filter(|r| r.workspace == wi)
                    .enumerate()
                    .map(|(i, r)| {
                        let repo = r.repo % (self.repos.len() + 1);
                        let other = (repo + 1) % (self.repos.len() + 1);
                        let (current, _) = r.picks[0];
                        let mut rec = record(
                            &format!("host{}", r.host),
                            &format!("app{i}"),
                            &format!("{REGISTRY}/{}", repo_name(repo)),
                            &manifest_digest(repo, current),
                            &[],
                        );
                        // Oldest first, the current deploy last (as written).
                        rec.history = r.picks[1..]
                            .iter()
                            .rev()
                            .map(|&(pick, elsewhere)| HistoryEntry {
                                image: elsewhere.then(|| format!("{REGISTRY}/{}", repo_name(other))),
                                digest: manifest_digest(if elsewhere { other } else { repo }, pick),
                                tag: None,
                                deployed_at: None,
                            })
                            .chain(std::iter::once(HistoryEntry {
                                image: None,
                                digest: manifest_digest(repo, current),
                                tag: None,
                                deployed_at: None,
                            }))
                            .collect();
                        rec
                    })
                    .collect();
                state(ws, records)
            })
            .collect()
    }

    fn policy(&self) -> Policy {
        let tags: Vec<String> = self.keep_tags.iter().map(|p| format!("'{p}'")).collect();
        let mut yaml = format!(
            "workspaces: [dev, prod]\ndefaults:\n  keep_last: {}\n  keep_younger_than: {}h\n  keep_tags: [{}]\n  protect_history: {}\n  keep_undated: {}\n",
            self.keep_last,
            self.grace_hours,
            tags.join(", "),
            self.protect_history,
            self.keep_undated
        );
        if let Some(k) = self.override_keep_last {
            yaml.push_str(&format!("repositories:\n  {}: {{keep_last: {k}}}\n", repo_name(0)));
        }
        yaml.parse().unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }
}

struct Case {
    listings: Vec<RepositoryListing>,
    states: Vec<DeployState>,
    policy: Policy,
    plan: Plan,
}

fn case(w: &World) -> Case {
    let listings = w.listings();
    let states = w.states();
    let policy = w.policy();
    let plan = plan(&listings, &states, &policy, now());
    Case {
        listings,
        states,
        policy,
        plan,
    }
}

fn repo_plan<'a>(p: &'a Plan, l: &RepositoryListing) -> &'a RepositoryPlan {
    p.repositories.iter().find(|r| r.repository == l.repository).unwrap()
}

fn decision_map(r: &RepositoryPlan) -> HashMap<&Digest, &DigestPlan> {
    r.digests.iter().map(|d| (&d.digest, d)).collect()
}

/// Parents of each digest in a listing.
fn parents(l: &RepositoryListing) -> HashMap<&Digest, Vec<&Digest>> {
    let mut out: HashMap<&Digest, Vec<&Digest>> = HashMap::new();
    for (d, e) in &l.images {
        for c in &e.children {
            out.entry(c).or_default().push(d);
        }
    }
    out
}

/// No kept digest that no tag points to is left with every index holding
/// it deleted: nothing would point to it, and no later scan would see it.
fn no_kept_child_is_stranded(l: &RepositoryListing, m: &HashMap<&Digest, &DigestPlan>) -> Result<(), TestCaseError> {
    for (d, ps) in parents(l) {
        let x = m[d];
        if x.decision == Decision::Keep && x.tags.is_empty() {
            prop_assert!(
                ps.iter().any(|p| m[p].decision == Decision::Keep),
                "{} kept, untagged, and every index holding it deleted",
                d
            );
        }
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn protected_digests_are_never_deleted(w in world_strategy()) {
        let c = case(&w);
        for s in &c.states {
            for r in &s.records {
                // The N of the record's repository, for every image it came from.
                let repository = r.image.strip_prefix(&format!("{REGISTRY}/")).unwrap();
                let ph = c.policy.retention_for(repository).protect_history;
                for (image, d) in r.recent_deploys(ph) {
                    let Some(l) = c.listings.iter().find(|l| l.image_name() == image) else { continue };
                    if let Some(x) = decision_map(repo_plan(&c.plan, l)).get(d) {
                        prop_assert_eq!(x.decision, Decision::Keep, "{} of {} deployed but deleted", d, image);
                        prop_assert!(x.is_protected());
                    }
                }
            }
        }
    }

    #[test]
    fn every_digest_is_decided_once_with_matching_reasons(w in world_strategy()) {
        let c = case(&w);
        prop_assert_eq!(c.plan.repositories.len(), c.listings.len());
        for l in &c.listings {
            let r = repo_plan(&c.plan, l);
            let expected: BTreeSet<&Digest> = l.images.keys().chain(l.tags.values()).collect();
            let planned: Vec<&Digest> = r.digests.iter().map(|d| &d.digest).collect();
            prop_assert_eq!(planned.len(), expected.len(), "a digest planned twice or missed");
            prop_assert_eq!(planned.into_iter().collect::<BTreeSet<_>>(), expected);
            for d in &r.digests {
                prop_assert!(!d.reasons.is_empty(), "{} has no reason", d.digest);
                let keeps = d.reasons.iter().filter(|x| x.keeps()).count();
                match d.decision {
                    Decision::Keep => prop_assert_eq!(keeps, d.reasons.len(), "{:?}", d.reasons),
                    Decision::Delete => prop_assert_eq!(keeps, 0, "{:?}", d.reasons),
                }
                prop_assert_eq!(&d.tags, &l.tags_of(&d.digest).iter().map(|t| t.to_string()).collect::<Vec<_>>());
            }
            let deleted = r.digests.iter().filter(|d| d.decision == Decision::Delete).count();
            prop_assert_eq!(r.delete_count, deleted);
            prop_assert_eq!(r.keep_count, r.digests.len() - deleted);
        }
        prop_assert_eq!(c.plan.delete_count, c.plan.repositories.iter().map(|r| r.delete_count).sum::<usize>());
    }

    #[test]
    fn keep_last_newest_survive(w in world_strategy()) {
        let c = case(&w);
        for l in &c.listings {
            let keep_last = c.policy.retention_for(&l.repository).keep_last;
            let r = repo_plan(&c.plan, l);
            let mut dated: Vec<(DateTime<Utc>, &Digest)> = l
                .images
                .values()
                .filter(|e| !l.tags_of(&e.digest).is_empty())
                .filter_map(|e| Some((e.metadata.created_time()?, &e.digest)))
                .collect();
            dated.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
            let m = decision_map(r);
            for (_, d) in dated.iter().take(keep_last) {
                prop_assert_eq!(m[d].decision, Decision::Keep, "{} is among the newest {}", d, keep_last);
            }
            // Tie-independent: a deleted dated tagged digest has at least
            // keep_last kept ones at least as new.
            for (t, d) in &dated {
                if m[d].decision == Decision::Delete {
                    let newer_kept = dated.iter().filter(|(u, e)| u >= t && m[e].decision == Decision::Keep).count();
                    prop_assert!(newer_kept >= keep_last);
                }
            }
        }
    }

    #[test]
    fn nothing_younger_than_the_grace_period_goes(w in world_strategy()) {
        let c = case(&w);
        for l in &c.listings {
            let grace = c.policy.retention_for(&l.repository).keep_younger_than;
            if grace.as_secs() == 0 {
                continue;
            }
            let cutoff = now() - grace.as_time_delta();
            let m = decision_map(repo_plan(&c.plan, l));
            for e in l.images.values() {
                if e.metadata.created_time().is_some_and(|t| t > cutoff) {
                    prop_assert_eq!(m[&e.digest].decision, Decision::Keep);
                }
            }
        }
    }

    #[test]
    fn a_kept_tag_keeps_the_digest_whatever_its_other_tags(w in world_strategy()) {
        let c = case(&w);
        for l in &c.listings {
            let retention = c.policy.retention_for(&l.repository);
            let m = decision_map(repo_plan(&c.plan, l));
            for (tag, d) in &l.tags {
                if let Some(p) = retention.kept_tag_pattern(tag) {
                    let x = m[d];
                    prop_assert_eq!(x.decision, Decision::Keep, "tag {} matches {}", tag, p);
                    let has_reason = x.reasons.contains(&Reason::KeptTag { tag: tag.clone(), pattern: p.to_string() });
                    prop_assert!(has_reason);
                }
            }
        }
    }

    #[test]
    fn children_go_only_with_their_indexes(w in world_strategy()) {
        let c = case(&w);
        for l in &c.listings {
            let m = decision_map(repo_plan(&c.plan, l));
            let ps = parents(l);
            for (d, x) in &m {
                if x.decision == Decision::Delete {
                    for p in ps.get(d).into_iter().flatten() {
                        prop_assert_eq!(m[p].decision, Decision::Delete, "{} deleted but its index {} is kept", d, p);
                    }
                }
            }
            for e in l.images.values() {
                if m[&e.digest].decision == Decision::Keep {
                    for child in &e.children {
                        prop_assert_eq!(m[child].decision, Decision::Keep);
                    }
                }
            }
            no_kept_child_is_stranded(l, &m)?;
            // An untagged child in its grace period keeps every index holding
            // it, and an untagged index kept so its own.
            let grace = c.policy.retention_for(&l.repository).keep_younger_than;
            for (d, ps) in &ps {
                let x = m[d];
                let young = grace.as_secs() > 0
                    && l.images[*d].metadata.created_time().is_some_and(|t| t > now() - grace.as_time_delta());
                let held = x.reasons.iter().any(|r| matches!(r, Reason::HoldsKept { .. }));
                if x.tags.is_empty() && (young || held) {
                    for p in ps {
                        prop_assert_eq!(m[p].decision, Decision::Keep, "{} holds untagged {}", p, d);
                    }
                }
            }
            // An untagged child no deploy or grace period holds goes with
            // its last index.
            let grace = c.policy.retention_for(&l.repository).keep_younger_than;
            for (d, x) in &m {
                let all_parents_deleted = ps.get(d).is_some_and(|p| p.iter().all(|p| m[p].decision == Decision::Delete));
                let young = grace.as_secs() > 0
                    && l.images[*d].metadata.created_time().is_some_and(|t| t > now() - grace.as_time_delta());
                if x.tags.is_empty() && all_parents_deleted && !x.is_protected() && !young {
                    prop_assert_eq!(x.decision, Decision::Delete);
                }
            }
        }
    }

    #[test]
    fn the_plan_is_deterministic(w in world_strategy()) {
        let c = case(&w);
        let again = plan(&c.listings, &c.states, &c.policy, now());
        prop_assert_eq!(&again, &c.plan);
        let mut listings = c.listings.clone();
        listings.reverse();
        let mut states = c.states.clone();
        states.reverse();
        for s in &mut states {
            s.records.reverse();
        }
        let shuffled = plan(&listings, &states, &c.policy, now());
        prop_assert_eq!(shuffled.to_json(), c.plan.to_json());
        prop_assert_eq!(render_plan(&shuffled), render_plan(&c.plan));
    }

    #[test]
    fn reclaimed_bytes_are_blobs_no_kept_digest_reaches(w in world_strategy()) {
        let c = case(&w);
        let mut kept = HashSet::new();
        let mut deleted = BTreeMap::new();
        for l in &c.listings {
            let m = decision_map(repo_plan(&c.plan, l));
            for d in l.images.keys() {
                match m[d].decision {
                    Decision::Keep => kept.extend(l.blobs_of(d).into_keys()),
                    Decision::Delete => deleted.extend(l.blobs_of(d)),
                }
            }
        }
        let expected: u64 = deleted.iter().filter(|(b, _)| !kept.contains(*b)).map(|(_, s)| s).sum();
        prop_assert_eq!(c.plan.reclaim_bytes, expected);
    }

    /// A plan made with a reviewed plan (any part of what the plan itself
    /// deletes, and digests it keeps) deletes only what both delete, and
    /// stays consistent: a child never goes while an index holding it stays.
    #[test]
    fn a_reviewed_plan_bounds_the_deletions(w in world_strategy(), pick in proptest::collection::vec(any::<bool>(), 64)) {
        let c = case(&w);
        let mut reviewed = Reviewed::default();
        let mut i = 0;
        for r in &c.plan.repositories {
            for d in &r.digests {
                // Every digest may be in the reviewed deletions, kept ones too
                // (the reviewed plan was made when the rules said otherwise).
                // Now and then with tags other than the digest has.
                if pick[i % pick.len()] {
                    let mut tags = d.tags.clone();
                    if pick[(i + 7) % pick.len()] && pick[(i + 13) % pick.len()] {
                        tags.push("retagged".into());
                    }
                    reviewed.add(&r.image, d.digest.clone(), tags);
                }
                i += 1;
            }
        }
        let within = plan_within(
            &c.listings,
            &Planning { policy: &c.policy, states: &c.states, now: now(), reviewed: Some(&reviewed) },
        );
        for l in &c.listings {
            let before = decision_map(repo_plan(&c.plan, l));
            let after = decision_map(repo_plan(&within, l));
            let image = l.image_name();
            for (d, x) in &after {
                let tags: Vec<&str> = x.tags.iter().map(String::as_str).collect();
                let was_reviewed = reviewed.deletes(&image, d, &tags);
                if x.decision == Decision::Delete {
                    prop_assert_eq!(before[d].decision, Decision::Delete, "{} deleted only with the reviewed plan", d);
                    prop_assert!(was_reviewed, "{} not reviewed with these tags", d);
                } else if !was_reviewed {
                    prop_assert!(x.reasons.contains(&Reason::NotInReviewedPlan), "{:?}", x.reasons);
                }
            }
            let ps = parents(l);
            for (d, x) in &after {
                if x.decision == Decision::Delete {
                    for p in ps.get(d).into_iter().flatten() {
                        prop_assert_eq!(after[p].decision, Decision::Delete, "{} deleted, its index {} kept", d, p);
                    }
                }
            }
            no_kept_child_is_stranded(l, &after)?;
        }
        // The plan's own deletions, reviewed, give the same plan's decisions.
        let mut all = Reviewed::default();
        for r in &c.plan.repositories {
            for d in r.digests.iter().filter(|d| d.decision == Decision::Delete) {
                all.add(&r.image, d.digest.clone(), d.tags.clone());
            }
        }
        let same = plan_within(
            &c.listings,
            &Planning { policy: &c.policy, states: &c.states, now: now(), reviewed: Some(&all) },
        );
        prop_assert_eq!(same.delete_count, c.plan.delete_count);
        prop_assert_eq!(same.reclaim_bytes, c.plan.reclaim_bytes);
        for l in &c.listings {
            let (a, b) = (decision_map(repo_plan(&c.plan, l)), decision_map(repo_plan(&same, l)));
            for (d, x) in &a {
                prop_assert_eq!(x.decision, b[d].decision, "{} decided otherwise with its own deletions reviewed", d);
            }
        }
    }

    #[test]
    fn deletions_are_the_deleted_digests_indexes_first(w in world_strategy()) {
        let c = case(&w);
        for l in &c.listings {
            let r = repo_plan(&c.plan, l);
            let order: Vec<&Digest> = r.deletions().iter().map(|d| &d.digest).collect();
            let deleted: BTreeSet<&Digest> =
                r.digests.iter().filter(|d| d.decision == Decision::Delete).map(|d| &d.digest).collect();
            prop_assert_eq!(order.len(), deleted.len());
            prop_assert_eq!(order.iter().copied().collect::<BTreeSet<_>>(), deleted);
            let pos: HashMap<&Digest, usize> = order.iter().enumerate().map(|(i, d)| (*d, i)).collect();
            for (child, ps) in parents(l) {
                for p in ps {
                    if let (Some(pc), Some(pp)) = (pos.get(child), pos.get(p)) {
                        prop_assert!(pp < pc, "index {} after its child {}", p, child);
                    }
                }
            }
            let unchanged = r.recheck(&l.tags, &BTreeMap::new());
            prop_assert!(unchanged.skipped.is_empty());
            prop_assert_eq!(unchanged.delete.iter().collect::<Vec<_>>(), order);
        }
    }

    /// Tags removed between the plan and the recheck: what stays without a
    /// tag keeps an index that stays.
    #[test]
    fn the_recheck_leaves_no_child_stranded(w in world_strategy(), drop in proptest::collection::vec(any::<bool>(), 64)) {
        let c = case(&w);
        for l in &c.listings {
            let r = repo_plan(&c.plan, l);
            let tags: BTreeMap<String, Digest> = l
                .tags
                .iter()
                .enumerate()
                .filter(|(i, _)| !drop[i % drop.len()])
                .map(|(_, (t, d))| (t.clone(), d.clone()))
                .collect();
            let rc = r.recheck(&tags, &BTreeMap::new());
            let deleted: HashSet<&Digest> = rc.delete.iter().collect();
            let tagged: HashSet<&Digest> = tags.values().collect();
            for (child, ps) in parents(l) {
                if !deleted.contains(child) && !tagged.contains(child) {
                    prop_assert!(
                        ps.iter().any(|p| !deleted.contains(p)),
                        "{} stays untagged and every index holding it is deleted: {:?}",
                        child,
                        rc
                    );
                }
            }
        }
    }
}
