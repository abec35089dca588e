//! The registry client: the whole distribution API surface these tools use,
//! in noun-then-verb operations (`manifest_get`, `manifest_head`,
//! `manifest_put`, `manifest_delete`, `blob_get`, `blob_put`, `tag_list`,
//! `tag_delete`, `catalog_list`).
//!
//! Built on `reqwest` (the HTTP client `oci-client` itself uses) rather than on
//! `oci-client`'s `Client`, because these tools need what that client does
//! not expose: response headers (`Link` paging, `Retry-After`,
//! `Docker-Content-Digest`), HEAD and DELETE of manifests, retries within a
//! deadline, and a per-run bound on concurrent requests. `oci-client`'s
//! manifest types are used to read manifests, and its `Client` pushes the
//! test fixtures.
//!
//! Every manifest and blob body is verified against its digest before use;
//! content fetched by digest is cached on disk (see [`cache`]).

pub mod auth;
pub mod cache;
pub mod error;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, LINK, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;

use crate::credentials::{Credential, LookupEnv, Secret};
use crate::reference::{Digest, Reference, api_host, is_plain_http};
use auth::{Challenge, Scheme, TokenCache, TokenResponse};
pub use error::{ErrorBody, RegistryError};

pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The manifest media types asked for, in the `Accept` header.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest accepted (distribution's own limit is 4 MiB).
const MANIFEST_LIMIT: usize = 4 << 20;
/// Largest config blob read for labels.
pub const CONFIG_LIMIT: usize = 16 << 20;
/// The task fetching a blob others wait for (see [`Client::blob_get`]):
/// when it is done, or dropped half-way, its entry is removed (unless
/// another has taken its place), then the blob's lock is released.
struct Leader<'a> {
    client: &'a Client,
    key: String,
    gate: Arc<tokio::sync::Mutex<()>>,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut fetching = self.client.fetching.lock().unwrap_or_else(|e| e.into_inner());
        if fetching.get(&self.key).is_some_and(|g| Arc::ptr_eq(g, &self.gate)) {
            fetching.remove(&self.key);
        }
    }
}

/// Whether a name from a tag list may be used as a tag: the characters of
/// the OCI tag grammar, `[A-Za-z0-9_][A-Za-z0-9._-]*`, safe in a request
/// path and on a terminal. Longer than the grammar's 128 is accepted (ECR
/// allows 300), up to 1024.
fn listable_tag(t: &str) -> bool {
    crate::reference::is_tag_like(t, 1024)
}

/// Largest list page (tags or catalog) accepted.
const LIST_LIMIT: usize = 32 << 20;

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Hosts (`HOST` or `HOST:PORT`) reached over plain HTTP besides loopback.
    pub plain_http: Vec<String>,
    /// Deadline of each operation, retries included.
    pub timeout: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Directory of the content cache; `None` disables it.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Where credentials are looked up.
    pub lookup_env: LookupEnv,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            plain_http: Vec::new(),
            timeout: Duration::from_secs(60),
            concurrency: 16,
            cache_dir: cache::default_dir(),
            lookup_env: LookupEnv::from_process(),
        }
    }
}

/// What a manifest HEAD or GET told about a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A manifest body, verified against its digest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    pub body: Bytes,
}

/// The outcome of a DELETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// 404: it was already gone (an interrupted run may be run again).
    AlreadyGone,
}

/// One HTTP answer, body read in full.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// The pack of one repository while a scan uses it.
struct OpenPack {
    /// How many scans have it open.
    opens: usize,
    /// Whether every scan that closed it so far read the whole repository.
    complete: bool,
    /// Read from disk, not used yet (verified when used).
    loaded: cache::PackEntries,
    /// Used or fetched since opened: the next pack.
    used: cache::PackEntries,
}

/// A registry client for one run: one connection pool, bounded concurrency,
/// credentials and tokens cached per registry.
pub struct Client {
    http: reqwest::Client,
    opts: ClientOptions,
    permits: Semaphore,
    cache: Option<cache::Cache>,
    /// Open packs by repository name (see [`Client::open_pack`]).
    packs: Mutex<HashMap<String, OpenPack>>,
    credentials: Mutex<HashMap<String, Credential>>,
    schemes: Mutex<HashMap<String, Scheme>>,
    tokens: Mutex<TokenCache>,
    /// One lock per blob being fetched (`repo@digest`), while the cache is
    /// on: a second task asking for the same blob, e.g. a config shared by
    /// two manifests, waits and then reads it from the cache instead of
    /// fetching it again.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per registry, once a 404 without a registry's error body came: whether
    /// its API root `/v2/` answers as a registry's does (see
    /// [`Client::confirm_registry`]).
    api_roots: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<bool>>>>,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, RegistryError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("image-lifecycle/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10).min(opts.timeout))
            .pool_max_idle_per_host(opts.concurrency.max(1))
            .build()
            .map_err(|e| RegistryError::Invalid {
                registry: "-".into(),
                what: "client configuration".into(),
                detail: e.to_string(),
            })?;
        let cache = opts.cache_dir.clone().map(cache::Cache::new);
        Ok(Client {
            http,
            permits: Semaphore::new(opts.concurrency.max(1)),
            cache,
            opts,
            packs: Mutex::new(HashMap::new()),
            credentials: Mutex::new(HashMap::new()),
            schemes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(TokenCache::default()),
            fetching: Mutex::new(HashMap::new()),
            api_roots: Mutex::new(HashMap::new()),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    // ---- packs -------------------------------------------------------------

    /// Starts using the cache pack of `repo` (see [`cache`]): manifests and
    /// blobs of the repository are looked up in it first, and what is
    /// fetched or used is kept in memory instead of being written entry by
    /// entry, until [`Client::close_pack`]. A no-op without a cache.
    /// Opening a pack that is open already only counts: the last close
    /// closes it.
    pub fn open_pack(&self, repo: &Reference) {
        let Some(cache) = &self.cache else { return };
        if let Some(pack) = self.lock_packs().get_mut(&repo.name()) {
            pack.opens += 1;
            return;
        }
        let loaded = cache.read_pack(&repo.name());
        self.lock_packs().entry(repo.name()).or_insert(OpenPack {
            opens: 1,
            loaded,
            used: cache::PackEntries::new(),
            complete: true,
        });
    }

    /// Stops using the pack of `repo` and writes it: with `complete` (the
    /// scan read the whole repository), only the entries used since
    /// [`Client::open_pack`], so entries of deleted tags drop out;
    /// otherwise everything it had and fetched, so the work of a scan that
    /// failed half way is kept for the next one.
    pub fn close_pack(&self, repo: &Reference, complete: bool) {
        let pack = {
            let mut packs = self.lock_packs();
            let Some(pack) = packs.get_mut(&repo.name()) else {
                return;
            };
            pack.complete &= complete;
            pack.opens -= 1;
            if pack.opens > 0 {
                return;
            }
            packs.remove(&repo.name())
        };
        let (Some(mut pack), Some(cache)) = (pack, &self.cache) else {
            return;
        };
        if !pack.complete {
            for (k, e) in pack.loaded.drain() {
                pack.used.entry(k).or_insert(e);
            }
        }
        cache.write_pack(&repo.name(), &pack.used);
    }

    fn lock_packs(&self) -> std::sync::MutexGuard<'_, HashMap<String, OpenPack>> {
        self.packs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A verified entry for `digest`: from the open pack of `repo`, else
    /// from the per-entry cache. Either way it is remembered in the pack.
    fn cached(&self, repo: &Reference, kind: cache::Kind, digest: &Digest) -> Option<cache::Entry> {
        let cache = self.cache.as_ref()?;
        let key = (kind, digest.clone());
        {
            let mut packs = self.lock_packs();
            if let Some(pack) = packs.get_mut(&repo.name()) {
                if let Some(e) = pack.used.get(&key) {
                    return Some(e.clone());
                }
                if let Some(e) = pack.loaded.remove(&key)
                    && digest.verifies(&e.body)
                {
                    pack.used.insert(key, e.clone());
                    return Some(e);
                }
            }
        }
        let entry = match kind {
            cache::Kind::Manifest => cache
                .get_manifest(digest)
                .map(|(media_type, body)| cache::Entry { media_type, body }),
            cache::Kind::Blob => cache.get_blob(digest).map(|body| cache::Entry {
                media_type: String::new(),
                body,
            }),
        }?;
        if let Some(pack) = self.lock_packs().get_mut(&repo.name()) {
            pack.used.insert(key, entry.clone());
        }
        Some(entry)
    }

    /// Keeps verified content: in the open pack of `repo`, else as an entry
    /// of its own.
    fn keep(&self, repo: &Reference, kind: cache::Kind, digest: &Digest, media_type: &str, body: &Bytes) {
        let Some(cache) = &self.cache else { return };
        if let Some(pack) = self.lock_packs().get_mut(&repo.name()) {
            let entry = cache::Entry {
                media_type: media_type.to_string(),
                body: body.clone(),
            };
            pack.used.insert((kind, digest.clone()), entry);
            return;
        }
        match kind {
            cache::Kind::Manifest => cache.put_manifest(digest, media_type, body),
            cache::Kind::Blob => cache.put_blob(digest, body),
        }
    }

    fn base_url(&self, registry: &str) -> String {
        let scheme = if is_plain_http(registry, &self.opts.plain_http) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", api_host(registry))
    }

    fn credential(&self, registry: &str) -> Result<Credential, RegistryError> {
        let mut creds = self.credentials.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = creds.get(registry) {
            return Ok(c.clone());
        }
        // A credential helper gets the run's timeout to answer.
        let env = LookupEnv {
            helper_timeout: self.opts.lookup_env.helper_timeout.or(Some(self.opts.timeout)),
            ..self.opts.lookup_env.clone()
        };
        let (c, _source) = crate::credentials::lookup(registry, &env)?;
        creds.insert(registry.to_string(), c.clone());
        Ok(c)
    }

    // ---- manifests -------------------------------------------------------

    /// GET a manifest by tag or digest; the body is verified against the
    /// requested digest, or (by tag) against `Docker-Content-Digest`.
    pub async fn manifest_get(&self, repo: &Reference, reference: &str) -> Result<Manifest, RegistryError> {
        let by_digest = reference.parse::<Digest>().ok();
        if let Some(d) = &by_digest
            && let Some(e) = self.cached(repo, cache::Kind::Manifest, d)
        {
            return Ok(Manifest {
                digest: d.clone(),
                media_type: e.media_type,
                body: e.body,
            });
        }
        let path = format!("/v2/{}/manifests/{}", repo.repository, reference);
        let ans = self
            .request(
                &repo.registry,
                &pull_scope(repo),
                Method::GET,
                &path,
                Some(MANIFEST_ACCEPT),
                None,
                MANIFEST_LIMIT,
            )
            .await?;
        let what = || manifest_what(repo, reference);
        self.check_status(&ans, &repo.registry, "GET", &path, what, "pull")?;
        let media_type = content_type(&ans.headers).unwrap_or_else(|| sniff_media_type(&ans.body));
        let header_digest = header_digest(&ans.headers);
        let digest = match by_digest {
            Some(d) => {
                verify(&repo.registry, &what(), &d, &ans.body)?;
                d
            }
            None => {
                let computed = Digest::sha256_of(&ans.body);
                if let Some(h) = header_digest
                    && h.algorithm() == "sha256"
                    && h != computed
                {
                    return Err(mismatch(&repo.registry, what(), &h, &computed));
                }
                computed
            }
        };
        self.keep(repo, cache::Kind::Manifest, &digest, &media_type, &ans.body);
        Ok(Manifest {
            digest,
            media_type,
            body: ans.body,
        })
    }

    /// HEAD a manifest: its digest, media type and size, without the body.
    /// Falls back to GET when the registry sends no `Docker-Content-Digest`.
    pub async fn manifest_head(&self, repo: &Reference, reference: &str) -> Result<Descriptor, RegistryError> {
        let path = format!("/v2/{}/manifests/{}", repo.repository, reference);
        let ans = self
            .request(
                &repo.registry,
                &pull_scope(repo),
                Method::HEAD,
                &path,
                Some(MANIFEST_ACCEPT),
                None,
                0,
            )
            .await?;
        let what = || manifest_what(repo, reference);
        self.check_status(&ans, &repo.registry, "HEAD", &path, what, "pull")?;
        match header_digest(&ans.headers) {
            Some(digest) => {
                if let Ok(requested) = reference.parse::<Digest>()
                    && requested != digest
                {
                    return Err(mismatch(&repo.registry, what(), &requested, &digest));
                }
                let size = ans
                    .headers
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                Ok(Descriptor {
                    digest,
                    media_type: content_type(&ans.headers).unwrap_or_default(),
                    size,
                })
            }
            None => {
                let m = self.manifest_get(repo, reference).await?;
                Ok(Descriptor {
                    digest: m.digest,
                    media_type: m.media_type,
                    size: m.body.len() as u64,
                })
            }
        }
    }

    /// PUT a manifest under a tag or its digest; returns its digest.
    pub async fn manifest_put(
        &self,
        repo: &Reference,
        reference: &str,
        media_type: &str,
        body: Bytes,
    ) -> Result<Digest, RegistryError> {
        let path = format!("/v2/{}/manifests/{}", repo.repository, reference);
        let digest = Digest::sha256_of(&body);
        let ans = self
            .request(
                &repo.registry,
                &push_scope(repo),
                Method::PUT,
                &path,
                None,
                Some((media_type.to_string(), body)),
                1 << 20,
            )
            .await?;
        let what = || manifest_what(repo, reference);
        self.check_status(&ans, &repo.registry, "PUT", &path, what, "push")?;
        Ok(digest)
    }

    /// DELETE a manifest by digest (or by tag, where the registry allows it).
    pub async fn manifest_delete(&self, repo: &Reference, reference: &str) -> Result<Deleted, RegistryError> {
        let path = format!("/v2/{}/manifests/{}", repo.repository, reference);
        let ans = self
            .request(
                &repo.registry,
                &delete_scope(repo),
                Method::DELETE,
                &path,
                None,
                None,
                1 << 20,
            )
            .await?;
        if ans.status == StatusCode::NOT_FOUND {
            return Ok(Deleted::AlreadyGone);
        }
        let body = ErrorBody::parse(&ans.body);
        if ans.status == StatusCode::METHOD_NOT_ALLOWED || body.has_code("UNSUPPORTED") {
            return Err(RegistryError::Unsupported {
                registry: repo.registry.clone(),
                operation: format!("deleting `{}@{}`", repo.name(), reference),
                status: ans.status.as_u16(),
                detail: self.redact(body.summary()),
            });
        }
        let what = || manifest_what(repo, reference);
        self.check_status(&ans, &repo.registry, "DELETE", &path, what, "delete")?;
        Ok(Deleted::Deleted)
    }

    // ---- blobs -------------------------------------------------------------

    /// GET a blob, verified against its digest (cached on disk).
    pub async fn blob_get(&self, repo: &Reference, digest: &Digest, limit: usize) -> Result<Bytes, RegistryError> {
        if let Some(e) = self.cached(repo, cache::Kind::Blob, digest) {
            return Ok(e.body);
        }
        // The first task to ask fetches (the leader, holding the blob's
        // lock); the others wait for it to finish, then read the cache, and
        // fetch themselves, side by side, only if the leader failed.
        if self.cache.is_some() {
            let key = format!("{}@{digest}", repo.name());
            let gate = self
                .fetching
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key.clone())
                .or_default()
                .clone();
            if let Ok(turn) = gate.clone().try_lock_owned() {
                let _leader = Leader {
                    client: self,
                    key,
                    gate,
                    _turn: turn,
                };
                // A leader that has just finished may have let go between
                // the check above and this lock.
                if let Some(e) = self.cached(repo, cache::Kind::Blob, digest) {
                    return Ok(e.body);
                }
                return self.blob_fetch(repo, digest, limit).await;
            }
            drop(gate.lock().await);
            if let Some(e) = self.cached(repo, cache::Kind::Blob, digest) {
                return Ok(e.body);
            }
        }
        self.blob_fetch(repo, digest, limit).await
    }

    async fn blob_fetch(&self, repo: &Reference, digest: &Digest, limit: usize) -> Result<Bytes, RegistryError> {
        let path = format!("/v2/{}/blobs/{}", repo.repository, digest);
        let ans = self
            .request(&repo.registry, &pull_scope(repo), Method::GET, &path, None, None, limit)
            .await?;
        let what = || format!("blob `{}@{}`", repo.name(), digest);
        self.check_status(&ans, &repo.registry, "GET", &path, what, "pull")?;
        verify(&repo.registry, &what(), digest, &ans.body)?;
        self.keep(repo, cache::Kind::Blob, digest, "", &ans.body);
        Ok(ans.body)
    }

    /// Uploads a blob in one request (POST then PUT) unless it exists.
    pub async fn blob_put(&self, repo: &Reference, body: Bytes) -> Result<Digest, RegistryError> {
        let digest = Digest::sha256_of(&body);
        let head = format!("/v2/{}/blobs/{}", repo.repository, digest);
        let ans = self
            .request(&repo.registry, &push_scope(repo), Method::HEAD, &head, None, None, 0)
            .await?;
        if ans.status.is_success() {
            return Ok(digest);
        }
        let path = format!("/v2/{}/blobs/uploads/", repo.repository);
        let ans = self
            .request(
                &repo.registry,
                &push_scope(repo),
                Method::POST,
                &path,
                None,
                None,
                1 << 20,
            )
            .await?;
        let what = || format!("blob upload to `{}`", repo.name());
        self.check_status(&ans, &repo.registry, "POST", &path, what, "push")?;
        let location = ans
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Invalid {
                registry: repo.registry.clone(),
                what: "upload answer".into(),
                detail: "no Location header".into(),
            })?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let target = format!("{location}{sep}digest={digest}");
        let ans = self
            .request(
                &repo.registry,
                &push_scope(repo),
                Method::PUT,
                &target,
                None,
                Some(("application/octet-stream".into(), body)),
                1 << 20,
            )
            .await?;
        self.check_status(&ans, &repo.registry, "PUT", &path, what, "push")?;
        Ok(digest)
    }

    // ---- lists -------------------------------------------------------------

    /// Every tag of a repository, following `Link` pages (same host only).
    pub async fn tag_list(&self, repo: &Reference) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut out = Vec::new();
        let mut next = Some(format!("/v2/{}/tags/list", repo.repository));
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 100_000 {
                return Err(self.invalid(&repo.registry, "tag list", "more than 100000 pages"));
            }
            let ans = self
                .request(
                    &repo.registry,
                    &pull_scope(repo),
                    Method::GET,
                    &path,
                    None,
                    None,
                    LIST_LIMIT,
                )
                .await?;
            let what = || format!("repository `{}`", repo.name());
            self.check_status(&ans, &repo.registry, "GET", &path, what, "list tags")?;
            let page: Page =
                serde_json::from_slice(&ans.body).map_err(|e| self.invalid(&repo.registry, "tag list", e))?;
            let tags = page.tags.unwrap_or_default();
            // A name outside the tag characters cannot come from a registry
            // that checks pushes; it would reach terminals and request paths
            // (`../`), and leaving it out would make its digest look
            // untagged to the cleanup, so the list is refused.
            if let Some(bad) = tags.iter().find(|t| !listable_tag(t)) {
                let shown: String = bad.chars().take(140).flat_map(char::escape_debug).collect();
                return Err(self.invalid(
                    &repo.registry,
                    "tag list",
                    format!(
                        "`{}` lists `{shown}`, which is not a tag ([A-Za-z0-9_][A-Za-z0-9._-]*)",
                        repo.name()
                    ),
                ));
            }
            out.extend(tags);
            next = self.next_link(&repo.registry, &ans.headers)?;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Every repository of a registry's catalog, following `Link` pages.
    /// `page_size` sets `n` on the first request.
    pub async fn catalog_list(&self, registry: &str, page_size: Option<usize>) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let mut out = Vec::new();
        let mut next = Some(match page_size {
            Some(n) => format!("/v2/_catalog?n={n}"),
            None => "/v2/_catalog".to_string(),
        });
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            if pages > 100_000 {
                return Err(self.invalid(registry, "catalog", "more than 100000 pages"));
            }
            let ans = self
                .request(
                    registry,
                    "registry:catalog:*",
                    Method::GET,
                    &path,
                    None,
                    None,
                    LIST_LIMIT,
                )
                .await?;
            self.check_status(
                &ans,
                registry,
                "GET",
                &path,
                || "catalog".to_string(),
                "list the catalog",
            )?;
            let page: Page = serde_json::from_slice(&ans.body).map_err(|e| self.invalid(registry, "catalog", e))?;
            out.extend(page.repositories.unwrap_or_default());
            next = self.next_link(registry, &ans.headers)?;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The path of the next page from a `Link: <…>; rel="next"` header.
    /// A link to another host is refused: it would not get our credentials
    /// anyway, and a registry has no reason to send one.
    fn next_link(&self, registry: &str, headers: &HeaderMap) -> Result<Option<String>, RegistryError> {
        for value in headers.get_all(LINK) {
            let Ok(value) = value.to_str() else { continue };
            for part in value.split(',') {
                let Some((url, params)) = part.trim().split_once(';') else {
                    continue;
                };
                let is_next = params
                    .split(';')
                    .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
                if !is_next {
                    continue;
                }
                let url = url.trim().trim_start_matches('<').trim_end_matches('>');
                if url.starts_with('/') {
                    return Ok(Some(url.to_string()));
                }
                let base = url::Url::parse(&self.base_url(registry)).map_err(|e| self.invalid(registry, "url", e))?;
                let parsed = url::Url::parse(url).map_err(|e| self.invalid(registry, "Link header", e))?;
                if parsed.host_str() != base.host_str()
                    || parsed.port_or_known_default() != base.port_or_known_default()
                {
                    return Err(self.invalid(
                        registry,
                        "Link header",
                        format!("next page on another host `{}`", parsed.host_str().unwrap_or("")),
                    ));
                }
                let mut p = parsed.path().to_string();
                if let Some(q) = parsed.query() {
                    p.push('?');
                    p.push_str(q);
                }
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    fn invalid(&self, registry: &str, what: &str, detail: impl ToString) -> RegistryError {
        RegistryError::Invalid {
            registry: registry.into(),
            what: what.into(),
            detail: self.redact(Some(detail.to_string())).unwrap_or_default(),
        }
    }

    /// `text` with every secret this client holds replaced by `<redacted>`:
    /// passwords, their `Authorization: Basic` forms, identity and bearer
    /// tokens. Text from a registry goes through here before it can reach
    /// an error message, because a registry or proxy may echo the request's
    /// headers in its error bodies.
    fn redact(&self, text: Option<String>) -> Option<String> {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let mut text = text?;
        let mut secrets: Vec<String> = Vec::new();
        for c in self.credentials.lock().unwrap_or_else(|e| e.into_inner()).values() {
            match c {
                Credential::Basic { username, password } => {
                    let raw = format!("{username}:{}", password.expose());
                    for engine in [&STANDARD, &URL_SAFE] {
                        let encoded = engine.encode(&raw);
                        secrets.push(encoded.trim_end_matches('=').to_string());
                        secrets.push(encoded);
                    }
                    secrets.push(password.expose().to_string());
                }
                Credential::IdentityToken(t) => secrets.push(t.expose().to_string()),
                Credential::Anonymous => {}
            }
        }
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        secrets.extend(tokens.secrets().map(|t| t.expose().to_string()));
        // Longest first, so an encoded form goes before a secret inside it.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        Some(text)
    }

    fn check_status(
        &self,
        ans: &Answer,
        registry: &str,
        method: &str,
        path: &str,
        what: impl Fn() -> String,
        action: &str,
    ) -> Result<(), RegistryError> {
        if ans.status.is_success() {
            return Ok(());
        }
        let body = ErrorBody::parse(&ans.body);
        let detail = self.redact(body.summary());
        Err(match ans.status {
            StatusCode::NOT_FOUND => {
                let what = if body.has_code("NAME_UNKNOWN") {
                    let repo = path.trim_start_matches("/v2/");
                    let repo = repo.split("/manifests/").next().unwrap_or(repo);
                    let repo = repo.split("/tags/").next().unwrap_or(repo);
                    let repo = repo.split("/blobs/").next().unwrap_or(repo);
                    format!("repository `{registry}/{repo}`")
                } else {
                    what()
                };
                RegistryError::NotFound {
                    what,
                    registry: registry.into(),
                    detail,
                }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Denied {
                registry: registry.into(),
                action: format!("to {action} ({})", what()),
                status: ans.status.as_u16(),
                detail,
            },
            s => RegistryError::Status {
                registry: registry.into(),
                status: s.as_u16(),
                method: method.into(),
                path: path.split('?').next().unwrap_or(path).into(),
                detail,
            },
        })
    }

    // ---- transport -----------------------------------------------------------

    /// One request with authentication and retries, body read in full (at
    /// most `limit` bytes). `path` is a path on the registry or, for upload
    /// locations, an absolute URL on the same host.
    #[allow(clippy::too_many_arguments)]
    async fn request(
        &self,
        registry: &str,
        scope: &str,
        method: Method,
        path: &str,
        accept: Option<&str>,
        body: Option<(String, Bytes)>,
        limit: usize,
    ) -> Result<Answer, RegistryError> {
        let base = self.base_url(registry);
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            let same = url::Url::parse(path)
                .ok()
                .map(|u| (u.host_str().map(str::to_string), u.port_or_known_default()));
            let b = url::Url::parse(&base)
                .ok()
                .map(|u| (u.host_str().map(str::to_string), u.port_or_known_default()));
            if same.is_none() || same != b {
                return Err(self.invalid(registry, "upload location", "it points to another host"));
            }
            path.to_string()
        } else {
            format!("{base}{path}")
        };
        // A timeout too large for a deadline (`Duration::MAX`) means none.
        let deadline = Instant::now()
            .checked_add(self.opts.timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| self.invalid(registry, "client", e))?;
        let mut authed_once = false;
        loop {
            let auth = self.auth_header(registry, scope)?;
            let ans = self
                .send_with_retries(
                    registry,
                    &method,
                    &url,
                    accept,
                    body.clone(),
                    auth.as_ref(),
                    limit,
                    deadline,
                )
                .await?;
            if ans.status == StatusCode::UNAUTHORIZED && !authed_once {
                authed_once = true;
                let challenge = ans
                    .headers
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge);
                match challenge {
                    Some(Challenge::Basic) => {
                        self.schemes
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(registry.into(), Scheme::Basic);
                        if matches!(self.credential(registry)?, Credential::Anonymous) {
                            return Ok(ans);
                        }
                        continue;
                    }
                    Some(Challenge::Bearer {
                        realm,
                        service,
                        scope: challenge_scope,
                    }) => {
                        self.schemes
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(registry.into(), Scheme::Bearer);
                        let want = challenge_scope.unwrap_or_else(|| scope.to_string());
                        self.fetch_token(registry, scope, &realm, service.as_deref(), &want, deadline)
                            .await?;
                        continue;
                    }
                    None => return Ok(ans),
                }
            }
            if ans.status == StatusCode::UNAUTHORIZED {
                self.tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(registry, scope);
            }
            if ans.status == StatusCode::NOT_FOUND && ErrorBody::parse(&ans.body).errors.is_empty() {
                self.confirm_registry(registry, &base).await?;
            }
            return Ok(ans);
        }
    }

    /// A 404 without a registry's error body (any 404 to a HEAD) is taken
    /// for "not found" only when the host's API root `/v2/` does not answer
    /// 404 too, as a web server, or a proxy without the registry behind it,
    /// does for every path: else a wrong host or port would read as a
    /// missing tag (exit 3), and a DELETE as "already gone". One GET per
    /// registry and run, its status only (a large 404 page is a 404), within
    /// the run's timeout and at most 10 s; when it gets no answer the 404
    /// stands as it is and the next one asks again.
    async fn confirm_registry(&self, registry: &str, base: &str) -> Result<(), RegistryError> {
        let cell = self
            .api_roots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(registry.to_string())
            .or_default()
            .clone();
        let url = format!("{base}/v2/");
        let wait = self.opts.timeout.min(Duration::from_secs(10));
        let answer = cell
            .get_or_try_init(|| async {
                match tokio::time::timeout(wait, self.http.get(&url).send()).await {
                    Ok(Ok(root)) => Ok(root.status() != StatusCode::NOT_FOUND),
                    _ => Err(()),
                }
            })
            .await;
        match answer {
            Ok(false) => Err(RegistryError::NotARegistry {
                registry: registry.to_string(),
                url,
            }),
            Ok(true) | Err(()) => Ok(()),
        }
    }

    fn auth_header(&self, registry: &str, scope: &str) -> Result<Option<Secret>, RegistryError> {
        let scheme = self
            .schemes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(registry)
            .cloned();
        match scheme {
            None => Ok(None),
            Some(Scheme::Bearer) => Ok(self
                .tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(registry, scope)
                .map(|t| Secret::new(format!("Bearer {}", t.expose())))),
            Some(Scheme::Basic) => Ok(basic_header(&self.credential(registry)?)),
        }
    }

    /// Gets a bearer token for `scope` from the challenge's realm, sending
    /// the registry's credentials only over HTTPS (or to a plain-HTTP host
    /// the user allowed).
    async fn fetch_token(
        &self,
        registry: &str,
        cache_scope: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        deadline: Instant,
    ) -> Result<(), RegistryError> {
        let mut url = url::Url::parse(realm).map_err(|e| self.invalid(registry, "token realm", e))?;
        let realm_host = url.host_str().unwrap_or("").to_string();
        let realm_hostport = match url.port() {
            Some(p) => format!("{realm_host}:{p}"),
            None => realm_host.clone(),
        };
        let secure = url.scheme() == "https"
            || is_plain_http(&realm_hostport, &self.opts.plain_http)
            || is_plain_http(&realm_host, &self.opts.plain_http);
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(self.invalid(registry, "token realm", format!("unsupported scheme in `{realm}`")));
        }
        let cred = self.credential(registry)?;
        let (method, body, auth) = match (&cred, secure) {
            (Credential::Basic { .. }, true) => (Method::GET, None, basic_header(&cred)),
            (Credential::IdentityToken(token), true) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token");
                form.append_pair("refresh_token", token.expose());
                form.append_pair("client_id", "image-lifecycle");
                if let Some(s) = service {
                    form.append_pair("service", s);
                }
                form.append_pair("scope", scope);
                (
                    Method::POST,
                    Some((
                        "application/x-www-form-urlencoded".to_string(),
                        Bytes::from(form.finish()),
                    )),
                    None,
                )
            }
            (Credential::Anonymous, _) => (Method::GET, None, None),
            (_, false) => {
                return Err(RegistryError::Denied {
                    registry: registry.into(),
                    action: format!("credentials over plain HTTP to token realm `{realm_hostport}`"),
                    status: 401,
                    detail: Some("not sent: the realm is not HTTPS".into()),
                });
            }
        };
        if method == Method::GET {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let ans = self
            .send_with_retries(
                registry,
                &method,
                url.as_str(),
                None,
                body,
                auth.as_ref(),
                1 << 20,
                deadline,
            )
            .await?;
        if !ans.status.is_success() {
            return Err(RegistryError::Denied {
                registry: registry.into(),
                action: format!("a token for `{scope}`"),
                status: ans.status.as_u16(),
                detail: self.redact(ErrorBody::parse(&ans.body).summary()),
            });
        }
        let tr: TokenResponse =
            serde_json::from_slice(&ans.body).map_err(|e| self.invalid(registry, "token answer", e))?;
        let token = tr
            .token
            .or(tr.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.invalid(registry, "token answer", "no token in it"))?;
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(
            registry,
            cache_scope,
            Secret::new(token),
            tr.expires_in,
        );
        Ok(())
    }

    /// Sends one request, retrying transient failures (connect errors,
    /// timeouts, broken bodies, 408, 429, 5xx) with backoff and
    /// `Retry-After` until `deadline`.
    #[allow(clippy::too_many_arguments)]
    async fn send_with_retries(
        &self,
        registry: &str,
        method: &Method,
        url: &str,
        accept: Option<&str>,
        body: Option<(String, Bytes)>,
        auth: Option<&Secret>,
        limit: usize,
        deadline: Instant,
    ) -> Result<Answer, RegistryError> {
        let mut attempt: u32 = 0;
        let path_for_msg = || url.split('?').next().unwrap_or(url).to_string();
        loop {
            attempt += 1;
            let now = Instant::now();
            if now >= deadline {
                return Err(RegistryError::Timeout {
                    registry: registry.into(),
                    timeout: self.opts.timeout,
                    what: format!("{method} {}", path_for_msg()),
                });
            }
            let mut req = self.http.request(method.clone(), url).timeout(deadline - now);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(a) = auth {
                req = req.header(AUTHORIZATION, a.expose());
            }
            if let Some((ct, b)) = &body {
                req = req.header(CONTENT_TYPE, ct.as_str()).body(b.clone());
            }
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match read_body(resp, limit).await {
                        Ok(body) => Ok(Answer { status, headers, body }),
                        Err(BodyError::TooLarge) => {
                            return Err(self.invalid(registry, "answer", format!("body larger than {limit} bytes")));
                        }
                        Err(BodyError::Transport(e)) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let retry_after = match outcome {
                Ok(ans) => {
                    let s = ans.status.as_u16();
                    if !(s == 408 || s == 429 || (500..=599).contains(&s) && s != 501 && s != 505) {
                        return Ok(ans);
                    }
                    let ra = retry_after(&ans.headers);
                    let wait = ra.unwrap_or_else(|| backoff(attempt));
                    if wait >= deadline.saturating_duration_since(Instant::now()) {
                        return Err(RegistryError::Status {
                            registry: registry.into(),
                            status: s,
                            method: method.to_string(),
                            path: path_for_msg().replace(&self.base_url(registry), ""),
                            detail: self
                                .redact(ErrorBody::parse(&ans.body).summary())
                                .map(|d| {
                                    format!(
                                        "{d} (gave up after {attempt} attempts within {})",
                                        crate::human::duration(self.opts.timeout)
                                    )
                                })
                                .or_else(|| {
                                    Some(format!(
                                        "gave up after {attempt} attempts within {}",
                                        crate::human::duration(self.opts.timeout)
                                    ))
                                }),
                        });
                    }
                    wait
                }
                Err(e) => {
                    let wait = backoff(attempt);
                    // A TLS failure (a plain-HTTP server, a certificate that
                    // does not verify) is the same next time: say so now
                    // rather than at the deadline.
                    if wait >= deadline.saturating_duration_since(Instant::now()) || is_tls_failure(&e) {
                        if e.is_timeout() {
                            return Err(RegistryError::Timeout {
                                registry: registry.into(),
                                timeout: self.opts.timeout,
                                what: format!("{method} {}", path_for_msg()),
                            });
                        }
                        return Err(RegistryError::Unreachable {
                            registry: registry.into(),
                            url: path_for_msg(),
                            source: e.without_url(),
                        });
                    }
                    wait
                }
            };
            tokio::time::sleep(retry_after).await;
        }
    }
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    if let Some(len) = resp.content_length()
        && len as usize > limit
        && limit > 0
    {
        return Err(BodyError::TooLarge);
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if buf.len() + chunk.len() > limit.max(64 << 10) {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Whether `e` failed in TLS (rustls refused the server or its answer).
/// `io::Error` hides what it wraps from `source()` (and the connector wraps
/// one in another), so each is opened.
fn is_tls_failure(e: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.is::<rustls::Error>() {
            return true;
        }
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

/// Exponential backoff with a little jitter: 100 ms, 200 ms, … capped at 5 s.
fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(6).saturating_sub(1)).min(5_000);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 % (base / 4 + 1))
        .unwrap_or(0);
    Duration::from_millis(base + jitter)
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    Some(Duration::from_millis(secs.max(0) as u64))
}

fn basic_header(cred: &Credential) -> Option<Secret> {
    use base64::Engine;
    match cred {
        Credential::Basic { username, password } => {
            let raw = format!("{username}:{}", password.expose());
            Some(Secret::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )))
        }
        _ => None,
    }
}

/// `tag `x` of `reg/repo`` or `manifest `sha256:…` of `reg/repo``, for messages.
fn manifest_what(repo: &Reference, reference: &str) -> String {
    if reference.contains(':') {
        format!("manifest `{reference}` of `{}`", repo.name())
    } else {
        format!("tag `{reference}` of `{}`", repo.name())
    }
}

fn pull_scope(repo: &Reference) -> String {
    format!("repository:{}:pull", repo.repository)
}

fn push_scope(repo: &Reference) -> String {
    format!("repository:{}:pull,push", repo.repository)
}

fn delete_scope(repo: &Reference) -> String {
    format!("repository:{}:delete", repo.repository)
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let v = v.split(';').next()?.trim();
    (!v.is_empty() && v != "application/json" && v != "text/plain").then(|| v.to_string())
}

fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    headers.get("docker-content-digest")?.to_str().ok()?.trim().parse().ok()
}

/// The media type of a manifest without a useful `Content-Type`: its
/// `mediaType` field, else by shape (`manifests` → index).
pub fn sniff_media_type(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(body) {
        Ok(Probe {
            media_type: Some(m), ..
        }) => m,
        Ok(Probe { manifests: Some(_), .. }) => MEDIA_OCI_INDEX.into(),
        _ => MEDIA_OCI_MANIFEST.into(),
    }
}

fn verify(registry: &str, what: &str, digest: &Digest, body: &[u8]) -> Result<(), RegistryError> {
    if digest.verifies(body) {
        return Ok(());
    }
    let actual = if digest.algorithm() == "sha256" {
        Digest::sha256_of(body).to_string()
    } else {
        format!("unverifiable algorithm `{}`", digest.algorithm())
    };
    Err(mismatch(registry, what.into(), digest, &actual))
}

/// `what` came with digest `actual` where `expected` was asked for or named.
fn mismatch(registry: &str, what: String, expected: &Digest, actual: &dyn std::fmt::Display) -> RegistryError {
    RegistryError::DigestMismatch {
        registry: registry.into(),
        what,
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What reqwest gives for HTTPS to a server that speaks plain HTTP (the
    /// usual mistake: a registry without TLS not named in `--plain-http`)
    /// is a TLS failure, not retried; a refused connection is not one.
    #[tokio::test]
    async fn tls_failures_are_told_from_transient_ones() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
        let http = reqwest::Client::new();
        let e = http.get(format!("https://{addr}/v2/")).send().await.unwrap_err();
        assert!(is_tls_failure(&e), "{e:?}");
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = http.get(format!("https://{closed}/v2/")).send().await.unwrap_err();
        assert!(!is_tls_failure(&e), "{e:?}");
    }

    #[test]
    fn listable_tags() {
        for ok in ["v1", "_x", "1.2.3-rc_1", "a..b", &"a".repeat(300)] {
            assert!(listable_tag(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "-x",
            ".x",
            "a/b",
            "a:b",
            "a b",
            "a\u{1b}[31m",
            "é",
            &"a".repeat(1025),
        ] {
            assert!(!listable_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn packs_keep_what_a_scan_used_and_all_of_an_unfinished_one() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new(ClientOptions {
            cache_dir: Some(dir.path().into()),
            lookup_env: LookupEnv::default(),
            ..ClientOptions::default()
        })
        .unwrap();
        let cache = client.cache.clone().unwrap();
        let repo: Reference = "reg.example/acme/web".parse().unwrap();
        let body = |s: &str| Bytes::from(s.to_string());
        let (a, b, c) = (body("a"), body("b"), body("c"));
        let (da, db, dc) = (Digest::sha256_of(&a), Digest::sha256_of(&b), Digest::sha256_of(&c));
        let entry = |b: &Bytes| cache::Entry {
            media_type: String::new(),
            body: b.clone(),
        };
        let mut old = cache::PackEntries::new();
        old.insert((cache::Kind::Blob, da.clone()), entry(&a));
        old.insert((cache::Kind::Blob, dc.clone()), entry(&c));
        cache.write_pack(&repo.name(), &old);
        cache.flush();
        let keys = |p: &cache::PackEntries| {
            let mut k: Vec<Digest> = p.keys().map(|(_, d)| d.clone()).collect();
            k.sort();
            k
        };
        let sorted = |mut v: Vec<Digest>| {
            v.sort();
            v
        };

        // A scan that fails half way: used a, fetched b; c is kept too.
        client.open_pack(&repo);
        assert_eq!(client.cached(&repo, cache::Kind::Blob, &da).unwrap().body, a);
        client.keep(&repo, cache::Kind::Blob, &db, "", &b);
        client.close_pack(&repo, false);
        cache.flush();
        assert_eq!(
            keys(&cache.read_pack(&repo.name())),
            sorted(vec![da.clone(), db.clone(), dc.clone()])
        );

        // Nested opens: only the last close writes; a complete scan keeps
        // only what it used.
        client.open_pack(&repo);
        client.open_pack(&repo);
        assert!(client.cached(&repo, cache::Kind::Blob, &db).is_some());
        client.close_pack(&repo, true);
        assert!(client.cached(&repo, cache::Kind::Blob, &dc).is_some(), "still open");
        client.close_pack(&repo, true);
        cache.flush();
        assert_eq!(
            keys(&cache.read_pack(&repo.name())),
            sorted(vec![db.clone(), dc.clone()])
        );
        client.open_pack(&repo);
        assert!(client.cached(&repo, cache::Kind::Blob, &db).is_some());
        client.close_pack(&repo, true);
        cache.flush();
        assert_eq!(keys(&cache.read_pack(&repo.name())), vec![db]);
        // A damaged entry is never returned.
        let mut bad = cache::PackEntries::new();
        bad.insert((cache::Kind::Blob, da.clone()), entry(&body("not a")));
        cache.write_pack(&repo.name(), &bad);
        cache.flush();
        client.open_pack(&repo);
        assert!(client.cached(&repo, cache::Kind::Blob, &da).is_none());
        client.close_pack(&repo, true);
    }

    #[test]
    fn echoed_secrets_are_redacted() {
        // Found by tests/test_secrets.rs: a registry answering 400 with
        // `cannot handle Authorization: Basic <base64>` put the credentials
        // on stderr.
        let client = Client::new(ClientOptions {
            cache_dir: None,
            lookup_env: LookupEnv::default(),
            ..ClientOptions::default()
        })
        .unwrap();
        client.credentials.lock().unwrap().insert(
            "r".into(),
            Credential::Basic {
                username: "tester".into(),
                password: Secret::new("s3cr3t-Pa55word"),
            },
        );
        client
            .tokens
            .lock()
            .unwrap()
            .insert("r", "s", Secret::new("bearer-t0ken"), None);
        let echoed = "Basic dGVzdGVyOnMzY3IzdC1QYTU1d29yZA== and dGVzdGVyOnMzY3IzdC1QYTU1d29yZA, \
                      s3cr3t-Pa55word, Bearer bearer-t0ken";
        assert_eq!(
            client.redact(Some(echoed.into())).unwrap(),
            "Basic <redacted> and <redacted>, <redacted>, Bearer <redacted>"
        );
        assert_eq!(client.redact(None), None);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(1) >= Duration::from_millis(100) && backoff(1) < Duration::from_millis(200));
        assert!(backoff(3) >= Duration::from_millis(400));
        assert!(backoff(30) <= Duration::from_millis(6_250));
    }

    #[test]
    fn media_type_sniffing() {
        assert_eq!(
            sniff_media_type(br#"{"mediaType": "application/vnd.docker.distribution.manifest.v2+json"}"#),
            MEDIA_DOCKER_MANIFEST
        );
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion": 2, "manifests": []}"#),
            MEDIA_OCI_INDEX
        );
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion": 2, "config": {}}"#),
            MEDIA_OCI_MANIFEST
        );
    }
}
