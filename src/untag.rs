//! Removing tags without removing the digests they point to.
//!
//! Tags are for humans and may be pruned independently of digests. The
//! registry's own `DELETE /v2/<repo>/manifests/<tag>` is used where it is
//! supported (OCI distribution 1.1, distribution 3); elsewhere (distribution
//! 2.x answers `400 DIGEST_INVALID` or `405`/`UNSUPPORTED`) the tag is
//! pointed at a unique minimal manifest, which is then deleted by digest,
//! taking the tag with it (the method regctl uses). The digest the tag
//! pointed to stays, with its other tags; if none is left it no longer
//! shows in any tag list, and the registry's collection of untagged
//! manifests reclaims it (distribution 3: `garbage-collect --delete-untagged`).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use crate::deploy_state::{DeployState, image_parts};
use crate::reference::{Digest, Reference};
use crate::registry::{Client, Deleted, MEDIA_OCI_MANIFEST, RegistryError};

/// The OCI empty descriptor's content (`application/vnd.oci.empty.v1+json`).
const EMPTY_JSON: &[u8] = b"{}";

/// What untagging one tag does (or did).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UntagOutcome {
    /// `registry/repository:tag`.
    pub reference: String,
    /// The digest the tag pointed to; it is kept.
    pub digest: Digest,
    /// The other tags that still point to that digest; `None` (JSON
    /// `null`) when unknown: the tag list answered 404.
    pub remaining_tags: Option<Vec<String>>,
    /// How the tag was removed: `delete-tag`, `placeholder`, or `null` in a dry run.
    pub method: Option<String>,
    /// Whether anything was changed.
    pub applied: bool,
}

impl UntagOutcome {
    /// One line for people.
    pub fn render(&self) -> String {
        let verb = if self.applied { "untagged" } else { "would untag" };
        let how = match self.method.as_deref() {
            Some("delete-tag") => " (DELETE by tag)",
            Some("placeholder") => " (re-pointed to a placeholder manifest, which was deleted)",
            _ => "",
        };
        let rest = match &self.remaining_tags {
            None => format!(
                "`{}` is kept; its other tags are unknown (the tag list answered 404)",
                self.digest
            ),
            Some(rest) if rest.is_empty() => format!(
                "`{}` is left without tags: it no longer shows in tag lists, and the registry's collection of \
                 untagged manifests reclaims it (distribution 3: `garbage-collect --delete-untagged`)",
                self.digest
            ),
            Some(rest) => format!("`{}` keeps tags: {}", self.digest, rest.join(", ")),
        };
        format!("{verb} {}{how}; {rest}", self.reference)
    }
}

/// Why an untag failed.
#[derive(Debug, thiserror::Error)]
pub enum UntagError {
    /// Before anything changed, or while only reading.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The placeholder could not be deleted, and the tag was put back on
    /// the digest it pointed to: nothing changed but an untagged placeholder
    /// manifest (if the delete did not happen after all).
    #[error(
        "cannot untag `{reference}` (the tag points to `{digest}` again): deleting the placeholder manifest `{placeholder}` failed"
    )]
    Restored {
        reference: String,
        placeholder: Digest,
        digest: Digest,
        #[source]
        delete: RegistryError,
    },
    /// The tag was pushed again while being untagged (found at `digest`,
    /// then at `now`): the new push is left as it is.
    #[error(
        "cannot untag `{reference}`: the tag moved from `{digest}` to `{now}` while being untagged; it was left as it is"
    )]
    Moved {
        reference: String,
        digest: Digest,
        now: Digest,
    },
    /// `--protected`: the tag is the last one of a digest that deploy
    /// state names (or the digest's other tags are unknown), and untagged
    /// it would be left to a collection of untagged manifests.
    #[error("refusing to untag `{reference}`: {}", deployed_why(.digest, .at, *.others_unknown))]
    Deployed {
        reference: String,
        digest: Digest,
        /// `deployed on dev/web1 (web)`, `rollback target on …`.
        at: Vec<String>,
        others_unknown: bool,
    },
    /// The placeholder's delete failed and the tag could not be looked at
    /// again: it may point to the placeholder, or to a push made meanwhile,
    /// so it is not written blind.
    #[error(
        "cannot untag `{reference}`: deleting the placeholder manifest `{placeholder}` failed ({delete}), and the tag could not be read again to put it back on `{digest}`"
    )]
    PlaceholderUnknown {
        reference: String,
        placeholder: Digest,
        digest: Digest,
        delete: RegistryError,
        #[source]
        head: RegistryError,
    },
    /// Neither the delete nor putting the tag back worked: the tag points
    /// to the placeholder.
    #[error(
        "cannot untag `{reference}` (the tag now points to the placeholder `{placeholder}`, not `{digest}`): deleting the placeholder failed ({delete}), and so did putting the tag back"
    )]
    PlaceholderLeft {
        reference: String,
        placeholder: Digest,
        digest: Digest,
        delete: RegistryError,
        #[source]
        restore: RegistryError,
    },
}

impl UntagError {
    /// The exit code (DESIGN.md): the failed delete's own when the tag was
    /// put back (1 for 405/`UNSUPPORTED`, 4 for 401/403, 5 for 5xx or a
    /// timeout); 5 when the registry left it on the placeholder.
    pub fn exit_code(&self) -> u8 {
        match self {
            UntagError::Registry(e) | UntagError::Restored { delete: e, .. } => e.exit_code(),
            UntagError::PlaceholderLeft { .. } | UntagError::PlaceholderUnknown { .. } => 5,
            UntagError::Moved { .. } => 1,
            UntagError::Deployed { .. } => 2,
        }
    }

    /// What to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            UntagError::Registry(e) => e.hint(),
            // It deleted the probe's digest, so deletes are enabled: not the
            // usual hint about `storage.delete.enabled`.
            UntagError::Restored {
                delete: RegistryError::Unsupported { .. },
                ..
            } => Some(
                "the registry deletes some manifests but not this one (a proxy or policy in front of it?); \
                 see its logs; the untagged placeholder is reclaimed by its garbage collection"
                    .into(),
            ),
            UntagError::Restored { delete, .. } => delete.hint(),
            UntagError::Deployed { .. } => Some(
                "keep a tag on what hosts run or may roll back to: untagged, a collection of untagged manifests \
                 (distribution 3: `garbage-collect --delete-untagged`) deletes it; deploy another version first, or \
                 leave out `--protected` to untag it all the same"
                    .into(),
            ),
            UntagError::Moved { .. } => Some(
                "someone pushed to the tag meanwhile; see what it points to now, and run again if it should still go"
                    .into(),
            ),
            UntagError::PlaceholderUnknown {
                reference,
                placeholder,
                digest,
                ..
            } => Some(format!(
                "see what the tag points to (`crane digest {reference}`); if it is the placeholder `{placeholder}`, \
                 point it back: `crane tag {}@{digest} {}`",
                reference.rsplit_once(':').map_or(reference.as_str(), |(name, _)| name),
                reference.rsplit_once(':').map_or("", |(_, tag)| tag),
            )),
            UntagError::PlaceholderLeft { reference, digest, .. } => Some(format!(
                "point the tag back by hand, e.g. `crane tag {}@{digest} {}`, then see the registry's logs",
                reference.rsplit_once(':').map_or(reference.as_str(), |(name, _)| name),
                reference.rsplit_once(':').map_or("", |(_, tag)| tag),
            )),
        }
    }
}

/// What one run has learnt about a repository, so that untagging many of
/// its tags costs one tag list and one HEAD per tag in all, not per tag
/// untagged, and the delete support is probed once.
#[derive(Default)]
struct RepoState {
    /// Every tag and its digest, read at the first untag in the repository
    /// and kept up to date with this run's own untags.
    tags: BTreeMap<String, Digest>,
    /// The tag list answered 404 (it may lag behind the registry): `tags`
    /// holds only the tags named, and the other tags of a digest are unknown.
    unlisted: Option<RegistryError>,
    /// The registry refused a DELETE by tag here: go to the placeholder at once.
    no_delete_by_tag: bool,
    /// A DELETE by digest was probed and the registry accepts them.
    deletes_by_digest: bool,
    /// The placeholders' empty config and layer blob was pushed.
    empty_blob: bool,
}

/// Untags tags one after another, remembering per repository what it has
/// read (see [`RepoState`]). The other tags of a digest are as the
/// repository was at its first untag in this run, less the tags this run
/// removed (or, in a dry run, would remove): a tag pushed meanwhile by
/// someone else is not seen.
pub struct Untagger<'a> {
    client: &'a Client,
    repos: HashMap<String, RepoState>,
}

impl<'a> Untagger<'a> {
    pub fn new(client: &'a Client) -> Untagger<'a> {
        Untagger {
            client,
            repos: Default::default(),
        }
    }

    /// Checks that the tag of `reference` exists, before any is untagged:
    /// reads the repository's tags (once per run); a tag not among them is
    /// asked for, so that a missing one fails with the registry's own
    /// answer (exit 3) and a list that lags behind is not taken for it.
    pub async fn check(&mut self, reference: &Reference) -> Result<(), UntagError> {
        let tag = reference.tag.as_ref().map(|t| t.to_string()).unwrap_or_default();
        let repo = reference.repo_only();
        let state = self.state(&repo).await?;
        if !state.tags.contains_key(&tag) {
            match self.client.manifest_head(&repo, &tag).await {
                Ok(found) => {
                    self.state(&repo).await?.tags.insert(tag, found.digest);
                }
                Err(e @ RegistryError::NotFound { .. }) => {
                    // Neither in the list nor by itself: when the list
                    // answered 404 too, its answer (repository not found)
                    // says it best.
                    let list = self.repos.get_mut(&repo.name()).and_then(|s| s.unlisted.take());
                    return Err(list.unwrap_or(e).into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// What this run knows of `repo`, read at the first call.
    async fn state(&mut self, repo: &Reference) -> Result<&mut RepoState, RegistryError> {
        Ok(match self.repos.entry(repo.name()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let (tags, unlisted) = match tag_digests(self.client, repo).await {
                    Ok(tags) => (tags, None),
                    Err(unlisted @ RegistryError::NotFound { .. }) => (BTreeMap::new(), Some(unlisted)),
                    Err(e) => return Err(e),
                };
                e.insert(RepoState {
                    tags,
                    unlisted,
                    ..Default::default()
                })
            }
        })
    }

    /// Untags `reference` (which must have a tag and no digest); a dry run
    /// unless `apply`.
    pub async fn untag(&mut self, reference: &Reference, apply: bool) -> Result<UntagOutcome, UntagError> {
        let client = self.client;
        let tag = reference.tag.as_ref().map(|t| t.to_string()).unwrap_or_default();
        let repo = reference.repo_only();
        let target = client.manifest_head(&repo, &tag).await?;
        let state = self.state(&repo).await?;
        // This tag as just read, whatever the list said.
        state.tags.insert(tag.clone(), target.digest.clone());
        let remaining_tags: Option<Vec<String>> = state.unlisted.is_none().then(|| {
            state
                .tags
                .iter()
                .filter(|(t, d)| **t != tag && **d == target.digest)
                .map(|(t, _)| t.clone())
                .collect()
        });
        let mut outcome = UntagOutcome {
            reference: reference.to_string(),
            digest: target.digest.clone(),
            remaining_tags,
            method: None,
            applied: false,
        };
        if !apply {
            // As if removed, so that the dry run of several tags of one
            // digest says what the run would leave, as the apply does.
            state.tags.remove(&tag);
            return Ok(outcome);
        }
        let by_tag = if state.no_delete_by_tag {
            None
        } else {
            Some(client.manifest_delete(&repo, &tag).await)
        };
        // A 404 to the DELETE of a tag that was just found: gone only if a
        // HEAD agrees; a registry (or proxy) that answers 404 while the
        // tag stays does not delete by tag, so the placeholder method runs.
        let by_tag = match by_tag {
            Some(Ok(Deleted::AlreadyGone)) => match client.manifest_head(&repo, &tag).await {
                Ok(now) if now.digest != target.digest => {
                    return Err(UntagError::Moved {
                        reference: reference.to_string(),
                        digest: target.digest,
                        now: now.digest,
                    });
                }
                Ok(_) => None,
                Err(RegistryError::NotFound { .. }) => Some(Ok(Deleted::AlreadyGone)),
                Err(e) => return Err(e.into()),
            },
            other => other,
        };
        match by_tag {
            Some(Ok(_)) => {
                // A registry that accepted the DELETE by tag must not have taken the digest with it.
                outcome.method = Some("delete-tag".into());
            }
            None
            | Some(Err(RegistryError::Unsupported { .. }))
            | Some(Err(RegistryError::Status { status: 400, .. })) => {
                state.no_delete_by_tag = true;
                // The tag is about to point at the placeholder: first make sure
                // this registry deletes by digest at all, or the tag would be
                // left on the placeholder. A DELETE of a digest the repository
                // cannot hold answers 404 where deletes are enabled, 405 /
                // `UNSUPPORTED` where they are not (distribution 2.x by default).
                let placeholder = placeholder_manifest(&tag);
                let probe = Digest::sha256_of(&[b"image-lifecycle untag probe ".as_slice(), &placeholder].concat());
                match if state.deletes_by_digest {
                    Ok(Deleted::AlreadyGone)
                } else {
                    client.manifest_delete(&repo, &probe.to_string()).await
                } {
                    Ok(_) => state.deletes_by_digest = true,
                    Err(RegistryError::Unsupported {
                        registry,
                        status,
                        detail,
                        ..
                    }) => {
                        return Err(UntagError::Registry(RegistryError::Unsupported {
                            registry,
                            operation: format!(
                                "deleting manifests of `{}` by digest, which untagging needs",
                                repo.name()
                            ),
                            status,
                            detail,
                        }));
                    }
                    Err(e) => return Err(e.into()),
                }
                // What the tag points to, to put it back if the delete fails anyway.
                let original = client.manifest_get(&repo, &target.digest.to_string()).await?;
                if !state.empty_blob {
                    client.blob_put(&repo, Bytes::from_static(EMPTY_JSON)).await?;
                    state.empty_blob = true;
                }
                // The gap since the first HEAD holds a probe, a GET and a
                // blob PUT: a push to the tag meanwhile is not overwritten.
                let now = client.manifest_head(&repo, &tag).await?;
                if now.digest != target.digest {
                    return Err(UntagError::Moved {
                        reference: reference.to_string(),
                        digest: target.digest,
                        now: now.digest,
                    });
                }
                let d = client
                    .manifest_put(&repo, &tag, MEDIA_OCI_MANIFEST, placeholder)
                    .await?;
                let deleted = match client.manifest_delete(&repo, &d.to_string()).await {
                    // A 404 counts only if the tag no longer points to the
                    // placeholder: a proxy answering 404 to every DELETE
                    // passes the probe, and would leave the tag on it.
                    Ok(Deleted::AlreadyGone) => match client.manifest_head(&repo, &tag).await {
                        Ok(h) if h.digest == d => Err(RegistryError::Status {
                            registry: repo.registry.clone(),
                            status: 404,
                            method: "DELETE".into(),
                            path: format!("/v2/{}/manifests/{d}", repo.repository),
                            detail: Some("yet the tag still points to the placeholder".into()),
                        }),
                        // Someone pushed to the tag meanwhile.
                        Ok(h) => {
                            return Err(UntagError::Moved {
                                reference: reference.to_string(),
                                digest: target.digest,
                                now: h.digest,
                            });
                        }
                        Err(RegistryError::NotFound { .. }) => Ok(()),
                        Err(e) => Err(e),
                    },
                    Ok(Deleted::Deleted) => Ok(()),
                    Err(e) => Err(e),
                };
                match deleted {
                    Ok(()) => {}
                    Err(delete) => {
                        // Put back only over the placeholder: a push to the
                        // tag meanwhile stays, a tag someone removed stays
                        // removed, and a tag that cannot be looked at is
                        // not written blind.
                        let restored = match client.manifest_head(&repo, &tag).await {
                            Ok(now) if now.digest == d => {
                                client
                                    .manifest_put(&repo, &tag, &original.media_type, original.body)
                                    .await
                            }
                            // Back on its digest already (another run put it back).
                            Ok(now) if now.digest == target.digest => Ok(now.digest),
                            Ok(now) => {
                                return Err(UntagError::Moved {
                                    reference: reference.to_string(),
                                    digest: target.digest,
                                    now: now.digest,
                                });
                            }
                            Err(RegistryError::NotFound { .. }) => {
                                state.tags.remove(&tag);
                                outcome.method = Some("placeholder".into());
                                outcome.applied = true;
                                return Ok(outcome);
                            }
                            Err(head) => {
                                return Err(UntagError::PlaceholderUnknown {
                                    reference: reference.to_string(),
                                    placeholder: d,
                                    digest: target.digest,
                                    delete,
                                    head,
                                });
                            }
                        };
                        return Err(match restored {
                            Ok(_) => UntagError::Restored {
                                reference: reference.to_string(),
                                placeholder: d,
                                digest: target.digest,
                                delete,
                            },
                            Err(restore) => UntagError::PlaceholderLeft {
                                reference: reference.to_string(),
                                placeholder: d,
                                digest: target.digest,
                                delete,
                                restore,
                            },
                        });
                    }
                }
                outcome.method = Some("placeholder".into());
            }
            Some(Err(e)) => return Err(e.into()),
        }
        state.tags.remove(&tag);
        outcome.applied = true;
        Ok(outcome)
    }
}

/// `digest` and every manifest it reaches in `repo` (the platform images of
/// an index, and theirs for an index in an index), as
/// [`crate::image::index_children`] reads them: an index that cannot be read
/// is an error, since what it holds is unknown.
async fn reachable(client: &Client, repo: &Reference, digest: &Digest) -> Result<Vec<Digest>, UntagError> {
    let children = crate::image::index_children(client, repo, std::slice::from_ref(digest), &|_| false).await?;
    let mut out = vec![digest.clone()];
    let mut seen: HashSet<&Digest> = HashSet::from([digest]);
    let mut i = 0;
    while i < out.len() {
        for c in children.get(&out[i]).into_iter().flatten() {
            if seen.insert(c) {
                out.push(c.clone());
            }
        }
        i += 1;
    }
    Ok(out)
}

fn deployed_why(digest: &Digest, at: &[String], others_unknown: bool) -> String {
    if others_unknown {
        format!(
            "`{digest}` is {}, and its other tags are unknown (the tag list answered 404)",
            at.join(", ")
        )
    } else {
        format!("it is the last tag of `{digest}`, which is {}", at.join(", "))
    }
}

/// Refuses, before anything changes, to untag `refs` (in the order given)
/// when one would leave a digest that a record of `states` names (what a
/// host runs or may roll back to; for an index, also a platform image of
/// it deployed by digest) without tags, or with its other tags unknown.
/// Records are matched by repository path on any registry host, as the
/// cleanup matches them. A dry run with `dry`: give a dry run's own
/// untagger and print the outcomes returned rather than run it again; an
/// apply's untagger must not be given (the dry run takes the tags from
/// what it knows). Returns the outcomes, in the order of `refs`, and
/// warnings: deploy state that names nothing of this registry protects
/// nothing here (the wrong workspaces?).
pub async fn check_deployed(
    dry: &mut Untagger<'_>,
    refs: &[Reference],
    states: &[DeployState],
) -> Result<(Vec<UntagOutcome>, Vec<String>), UntagError> {
    let client = dry.client;
    let mut warnings = Vec::new();
    let mut outcomes = Vec::with_capacity(refs.len());
    for r in refs {
        let outcome = dry.untag(r, false).await?;
        outcomes.push(outcome.clone());
        let others_unknown = outcome.remaining_tags.is_none();
        if outcome.remaining_tags.as_ref().is_some_and(|t| !t.is_empty()) {
            continue;
        }
        let repo = r.repo_only();
        let digests = reachable(client, &repo, &outcome.digest).await?;
        let mut at = Vec::new();
        for rec in states.iter().flat_map(|s| &s.records) {
            for d in &digests {
                if let Some(where_) = rec.names(&repo.repository, &[d]) {
                    at.push(if *d == outcome.digest {
                        where_
                    } else {
                        format!("{where_} (its platform image `{d}`)")
                    });
                }
            }
        }
        if !at.is_empty() {
            return Err(UntagError::Deployed {
                reference: outcome.reference,
                digest: outcome.digest,
                at,
                others_unknown,
            });
        }
    }
    let hosts: std::collections::BTreeSet<&str> = refs.iter().map(|r| r.registry.as_str()).collect();
    for host in hosts {
        // A record concerns this registry when it names its host, or one of
        // the repositories untagged here (by another name of the host).
        let paths: Vec<&str> = refs
            .iter()
            .filter(|r| r.registry == host)
            .map(|r| r.repository.as_str())
            .collect();
        // History entries count: an app that moved away from this registry
        // still has its rollback targets here.
        let any = states
            .iter()
            .flat_map(|s| &s.records)
            .flat_map(|rec| rec.recent_deploys(usize::MAX))
            .any(|(image, _)| {
                image_parts(image).is_some_and(|(h, path)| h.eq_ignore_ascii_case(host) || paths.contains(&path))
            });
        if !any {
            warnings.push(format!(
                "the deploy state given names nothing in `{host}`: it protects only what its records name by \
                 repository (the wrong workspaces?)"
            ));
        }
    }
    Ok((outcomes, warnings))
}

/// A minimal OCI manifest unique to this tag and moment.
fn placeholder_manifest(tag: &str) -> Bytes {
    let empty = Digest::sha256_of(EMPTY_JSON);
    let nonce = format!(
        "{}-{}-{}",
        tag,
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_MANIFEST,
        "artifactType": "application/vnd.image-lifecycle.untag.v1",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2}],
        "annotations": {"org.opencontainers.image.title": "placeholder for untagging", "vnd.image-lifecycle.nonce": nonce},
    });
    Bytes::from(serde_json::to_vec(&m).unwrap_or_default())
}

/// Every tag of `repo` with the digest it points to (a tag deleted
/// between the list and its HEAD is left out). A list that does not know
/// the repository (404) is an error here; the caller takes it for a list
/// that may lag behind the registry (a cache in front of it, an eventually
/// consistent store) and asks for each named tag by itself.
async fn tag_digests(client: &Client, repo: &Reference) -> Result<BTreeMap<String, Digest>, RegistryError> {
    let tags = client.tag_list(repo).await?;
    let concurrency = client.options().concurrency.max(1);
    let mut heads = futures::stream::iter(tags.into_iter().map(|t| async move {
        let d = client.manifest_head(repo, &t).await;
        (t, d)
    }))
    .buffer_unordered(concurrency);
    let mut out = BTreeMap::new();
    while let Some((t, d)) = heads.next().await {
        match d {
            Ok(d) => {
                out.insert(t, d.digest);
            }
            Err(RegistryError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
