//! What a scan of a registry repository found: its tags, the distinct
//! digests they point to, and each digest's metadata and size. The
//! overviews render it; the cleanup planner decides over it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metadata::ImageMetadata;
use crate::reference::Digest;

/// One repository as scanned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryListing {
    /// Registry host as written in references (`HOST[:PORT]`).
    pub registry: String,
    /// Repository path, e.g. `rednaw/hello-world`.
    pub repository: String,
    /// Tag → digest it points to (for a multi-arch tag, the index digest).
    pub tags: BTreeMap<String, Digest>,
    /// Every distinct digest the tags point to, and the children of indexes.
    pub images: BTreeMap<Digest, ImageEntry>,
}

/// The kind of manifest behind a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManifestKind {
    /// OCI image manifest or Docker v2 schema 2 manifest.
    Image,
    /// OCI image index or Docker manifest list.
    Index,
}

/// One manifest (one digest) of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEntry {
    pub digest: Digest,
    /// The manifest's media type as the registry served it.
    pub media_type: String,
    pub kind: ManifestKind,
    /// CI labels (for an index: of the chosen platform child).
    pub metadata: ImageMetadata,
    /// For an index: the digests of its child manifests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Digest>,
    /// For an index nested deeper than [`crate::image::MAX_INDEX_DEPTH`]:
    /// its children were not read, so what it holds is unknown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub children_unknown: bool,
    /// Blobs this manifest references directly (config and layers), with sizes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub blobs: BTreeMap<Digest, u64>,
    /// Size of the manifest body itself.
    pub manifest_size: u64,
}

impl RepositoryListing {
    /// `registry/repository`.
    pub fn image_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tags that point to `digest`, sorted.
    pub fn tags_of(&self, digest: &Digest) -> Vec<&str> {
        self.tags
            .iter()
            .filter(|(_, d)| *d == digest)
            .map(|(t, _)| t.as_str())
            .collect()
    }

    /// Every blob reachable from `digest` (itself, children's blobs
    /// included), with sizes: the storage a digest holds on to.
    pub fn blobs_of(&self, digest: &Digest) -> BTreeMap<Digest, u64> {
        let mut out = BTreeMap::new();
        let mut stack = vec![digest];
        while let Some(d) = stack.pop() {
            if let Some(img) = self.images.get(d) {
                out.insert(img.digest.clone(), img.manifest_size);
                out.extend(img.blobs.iter().map(|(b, s)| (b.clone(), *s)));
                stack.extend(img.children.iter().filter(|c| !out.contains_key(*c)));
            }
        }
        out
    }

    /// Total size of the distinct blobs (manifests included) of all images.
    pub fn size_bytes(&self) -> u64 {
        let mut all = BTreeMap::new();
        for d in self.images.keys() {
            all.extend(self.blobs_of(d));
        }
        all.values().sum()
    }
}
