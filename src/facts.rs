//! Deploy facts: what `resolve_digest` hands to Ansible. Task resolves a tag
//! (or checks a digest) once, before the deploy; Ansible receives these
//! facts and never asks the registry.

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::image::{Platform, describe};
use crate::reference::{Digest, Reference};
use crate::registry::{Client, RegistryError};

/// The deploy facts, a JSON object `ansible-playbook -e @FILE` takes as is.
/// Field order is the documented one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployFacts {
    /// App name: `--app`, default the last path segment of the repository.
    pub app: String,
    /// Workspace (inventory) deployed to: `--workspace`, else `null`.
    pub workspace: Option<String>,
    /// `registry/repository`, without tag or digest.
    pub image: String,
    /// The tag deployed: as given, or (deploy by digest) the tag pointing to
    /// the digest, preferring `revision[:7]`; `null` if none does.
    pub tag: Option<String>,
    /// The digest the tag points to (the index digest for a multi-arch tag).
    pub digest: Digest,
    /// `org.opencontainers.image.description` (commit subject).
    pub description: Option<String>,
    /// `org.opencontainers.image.created`, RFC 3339 UTC when parseable.
    pub built_at: Option<String>,
    /// `org.opencontainers.image.revision` (full git SHA).
    pub revision: Option<String>,
    /// `org.opencontainers.image.source` (repository URL).
    pub source: Option<String>,
    /// Who deploys: `--deployed-by`, default `$USER@<hostname>`.
    pub deployed_by: String,
}

/// What to resolve and how to label it.
#[derive(Debug, Clone)]
pub struct ResolveRequest {
    pub reference: Reference,
    pub workspace: Option<String>,
    pub app: Option<String>,
    pub deployed_by: Option<String>,
    pub platform: Platform,
}

/// Why resolving failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("tag `{tag}` of `{image}` points to `{actual}`, not to the requested `{requested}`")]
    TagMismatch {
        image: String,
        tag: String,
        actual: Box<Digest>,
        requested: Box<Digest>,
    },
    #[error("invalid {what} `{value}`: {why}")]
    Invalid {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("image reference `{0}` has neither a tag nor a digest")]
    NoTagOrDigest(String),
}

impl ResolveError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ResolveError::Registry(e) => e.exit_code(),
            ResolveError::TagMismatch { .. } => crate::cli::EXIT_FAILURE,
            ResolveError::Invalid { .. } | ResolveError::NoTagOrDigest(_) => crate::cli::EXIT_USAGE,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            ResolveError::Registry(e) => e.hint(),
            ResolveError::TagMismatch { .. } => Some(
                "the tag moved, or the digest belongs to another tag; deploy by digest alone (`REPO@DIGEST`) or by tag alone"
                    .into(),
            ),
            ResolveError::NoTagOrDigest(r) => Some(format!("add a tag or a digest, e.g. `{r}:<short sha>`")),
            ResolveError::Invalid { .. } => None,
        }
    }
}

/// A name usable as one directory: `/opt/<org>/<app>`.
pub fn check_path_segment(what: &'static str, value: &str) -> Result<(), ResolveError> {
    let why = if value.is_empty() {
        "it is empty"
    } else if value.contains('/') || value.contains('\0') || value.contains('\\') {
        "it must be a single path segment"
    } else if value.starts_with('.') {
        "it must not start with `.`"
    } else if value.chars().any(char::is_control) {
        "it must not contain control characters"
    } else {
        return Ok(());
    };
    Err(ResolveError::Invalid {
        what,
        value: value.to_string(),
        why,
    })
}

/// `$USER@<hostname>` of this machine (`$LOGNAME`, else the passwd name
/// of the current uid, when `$USER` is unset, as under cron or CI).
pub fn default_deployed_by() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(passwd_name)
        .unwrap_or_else(|| "unknown".into());
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

/// The name of the current uid in `/etc/passwd`.
fn passwd_name() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// Resolves a reference to deploy facts; also returns metadata warnings.
pub async fn resolve(client: &Client, req: &ResolveRequest) -> Result<(DeployFacts, Vec<String>), ResolveError> {
    let r = &req.reference;
    let app = match &req.app {
        Some(a) => a.clone(),
        None => r.repository.rsplit('/').next().unwrap_or(&r.repository).to_string(),
    };
    check_path_segment("app", &app)?;
    if let Some(ws) = &req.workspace {
        check_path_segment("workspace", ws)?;
    }
    let repo = r.repo_only();
    let (manifest, tag) = match (&r.tag, &r.digest) {
        (None, None) => return Err(ResolveError::NoTagOrDigest(r.to_string())),
        (Some(tag), None) => (client.manifest_get(&repo, tag.as_str()).await?, Some(tag.to_string())),
        (Some(tag), Some(digest)) => {
            let m = client.manifest_get(&repo, tag.as_str()).await?;
            if &m.digest != digest {
                return Err(ResolveError::TagMismatch {
                    image: repo.name(),
                    tag: tag.to_string(),
                    actual: Box::new(m.digest),
                    requested: Box::new(digest.clone()),
                });
            }
            (m, Some(tag.to_string()))
        }
        (None, Some(digest)) => {
            // Asked every time, cache or not: the cache knows the content of
            // a digest, not that this repository still holds it (deleted
            // since, or never pushed here).
            client.manifest_head(&repo, &digest.to_string()).await?;
            (client.manifest_get(&repo, &digest.to_string()).await?, None)
        }
    };
    let described = describe(client, &repo, &manifest, &req.platform).await?;
    let meta = described.entry.metadata;
    let tag = match tag {
        Some(t) => Some(t),
        None => tag_for_digest(client, &repo, &manifest.digest, meta.revision.as_deref()).await?,
    };
    let facts = DeployFacts {
        app,
        workspace: req.workspace.clone(),
        image: repo.name(),
        tag,
        digest: manifest.digest,
        description: meta.description,
        built_at: meta.created,
        revision: meta.revision,
        source: meta.source,
        deployed_by: req.deployed_by.clone().unwrap_or_else(default_deployed_by),
    };
    Ok((facts, meta.warnings))
}

/// The tag that points to `digest`: `revision[:7]` if it does, else the
/// first (sorted) of the tags that do, else `None`.
pub async fn tag_for_digest(
    client: &Client,
    repo: &Reference,
    digest: &Digest,
    revision: Option<&str>,
) -> Result<Option<String>, RegistryError> {
    if let Some(short) = revision.and_then(|r| r.get(..7))
        && short.parse::<crate::reference::Tag>().is_ok()
    {
        match client.manifest_head(repo, short).await {
            Ok(d) if &d.digest == digest => return Ok(Some(short.to_string())),
            Ok(_) | Err(RegistryError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let tags = match client.tag_list(repo).await {
        Ok(tags) => tags,
        // A repository of manifests pushed by digest only has no tag list
        // (distribution answers `NAME_UNKNOWN`): no tag points to it.
        Err(RegistryError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let concurrency = client.options().concurrency.max(1);
    let mut heads = futures::stream::iter(tags.into_iter().map(|t| async move {
        let d = client.manifest_head(repo, &t).await;
        (t, d)
    }))
    .buffer_unordered(concurrency);
    let mut matching = Vec::new();
    while let Some((t, d)) = heads.next().await {
        match d {
            Ok(d) if &d.digest == digest => matching.push(t),
            // A tag deleted while we looked is simply not a match.
            Ok(_) | Err(RegistryError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    matching.sort();
    Ok(matching.into_iter().next())
}
