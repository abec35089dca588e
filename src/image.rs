//! Reading an image's CI metadata and sizes from its manifest: the platform
//! child of an index, the config labels, the annotation fallback.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use oci_client::manifest::{OciImageIndex, OciImageManifest};

use crate::listing::{ImageEntry, ManifestKind};
use crate::metadata::ImageMetadata;
use crate::reference::{Digest, Reference};
use crate::registry::{CONFIG_LIMIT, Client, MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX, Manifest, RegistryError};

/// `os/arch[/variant]`, e.g. `linux/amd64`, `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform `{0}`: expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64")]
pub struct PlatformError(String);

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(PlatformError(s.to_string())),
        }
    }
}

/// `os/arch/variant` with the spellings containerd normalises: case aside,
/// `aarch64` is `arm64`, `x86_64`/`x86-64` is `amd64`, `i386` is `386`,
/// `armhf` is `arm/v7` and `armel` `arm/v6`, a bare variant number `8` is
/// `v8`; `arm64` without a variant is `v8`, `arm` without one `v7`, and
/// `amd64/v1` is plain `amd64`.
fn normalised(os: &str, arch: &str, variant: Option<&str>) -> (String, String, Option<String>) {
    let variant = variant.filter(|v| !v.is_empty()).map(str::to_ascii_lowercase).map(|v| {
        if v.bytes().all(|b| b.is_ascii_digit()) {
            format!("v{v}")
        } else {
            v
        }
    });
    let (arch, variant) = match arch.to_ascii_lowercase().as_str() {
        "aarch64" | "arm64" => ("arm64".to_string(), variant.or_else(|| Some("v8".into()))),
        "armhf" => ("arm".to_string(), Some("v7".into())),
        "armel" => ("arm".to_string(), Some("v6".into())),
        "arm" => ("arm".to_string(), variant.or_else(|| Some("v7".into()))),
        "x86_64" | "x86-64" | "amd64" => ("amd64".to_string(), variant.filter(|v| v != "v1")),
        "i386" => ("386".to_string(), variant),
        a => (a.to_string(), variant),
    };
    (os.to_ascii_lowercase(), arch, variant)
}

impl Platform {
    /// Whether an index entry's platform is this one, after
    /// [`normalised`]: `arm64` and `arm` compare their variants (`linux/arm64`
    /// is `v8`, not `v9`); for other architectures a platform asked for
    /// without a variant takes any.
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        let (want_os, want_arch, want_variant) = normalised(&self.os, &self.architecture, self.variant.as_deref());
        let (os, arch, variant) = normalised(os, arch, variant);
        // A variant asked for (`amd64/v1` too) must match; none asked, the
        // architecture's default does (arm64 v8, arm v7), else any.
        let any_variant = self.variant.is_none() && want_variant.is_none();
        want_os == os && want_arch == arch && (any_variant || want_variant == variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A manifest, parsed by kind.
#[derive(Debug, Clone)]
pub enum Parsed {
    Image(Box<OciImageManifest>),
    Index(OciImageIndex),
}

/// Parses a manifest body by its media type (OCI or Docker, image or index).
pub fn parse_manifest(registry: &str, m: &Manifest) -> Result<Parsed, RegistryError> {
    let invalid = |e: serde_json::Error| RegistryError::Invalid {
        registry: registry.into(),
        what: format!("manifest `{}`", m.digest),
        detail: e.to_string(),
    };
    if m.media_type == MEDIA_OCI_INDEX || m.media_type == MEDIA_DOCKER_LIST {
        serde_json::from_slice(&m.body).map(Parsed::Index).map_err(invalid)
    } else {
        serde_json::from_slice(&m.body)
            .map(|x| Parsed::Image(Box::new(x)))
            .map_err(invalid)
    }
}

/// What [`describe`] found: the entry for the digest and, for an index, the
/// entries of its children.
#[derive(Debug, Clone)]
pub struct Described {
    pub entry: ImageEntry,
    pub children: Vec<ImageEntry>,
}

/// The minimal view of an image config that labels need. Read with a
/// struct of our own rather than a full config type so that configs with
/// unusual or missing fields still give their labels.
#[derive(serde::Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    config: Option<ConfigSection>,
}

#[derive(serde::Deserialize)]
struct ConfigSection {
    /// Values other than strings are kept out (and reported): one odd label
    /// must not hide the others.
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, serde_json::Value>>,
}

/// Config labels that are strings, by key.
type Labels = BTreeMap<String, String>;

/// The string labels of an image config; warnings for labels that are not
/// strings; `Err` with the reason when the config is not JSON this can read.
fn config_labels(config: &[u8]) -> Result<(Option<Labels>, Vec<String>), String> {
    let blob = serde_json::from_slice::<ConfigBlob>(config).map_err(|e| e.to_string())?;
    let Some(labels) = blob.config.and_then(|c| c.labels) else {
        return Ok((None, Vec::new()));
    };
    let mut warnings = Vec::new();
    let mut out = BTreeMap::new();
    for (k, v) in labels {
        match v {
            serde_json::Value::String(s) => {
                out.insert(k, s);
            }
            other if crate::metadata::CI_LABELS.contains(&k.as_str()) => {
                let kind = match other {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Bool(_) => "a boolean",
                    serde_json::Value::Number(_) => "a number",
                    serde_json::Value::Array(_) => "an array",
                    _ => "an object",
                };
                warnings.push(format!("label `{k}` is {kind}, not a string; left out"));
            }
            _ => {}
        }
    }
    Ok((Some(out), warnings))
}

/// The metadata of an image from its config (`config_digest`) and its
/// annotations (the fallback per label). A config that cannot be read
/// leaves its labels unknown, not missing: one warning says so, instead of
/// one "is missing" per label.
#[cfg(test)]
fn image_metadata(config: &[u8], config_digest: &Digest, annotations: &BTreeMap<String, String>) -> ImageMetadata {
    metadata_of(&config_labels(config), config_digest, annotations)
}

/// [`image_metadata`] from the config's labels already read.
fn metadata_of(
    config: &Result<(Option<Labels>, Vec<String>), String>,
    config_digest: &Digest,
    annotations: &BTreeMap<String, String>,
) -> ImageMetadata {
    match config {
        Ok((labels, label_warnings)) => {
            let mut metadata = ImageMetadata::from_labels(labels.as_ref(), Some(annotations));
            metadata.warnings.splice(0..0, label_warnings.iter().cloned());
            metadata
        }
        Err(e) => {
            let mut metadata = ImageMetadata::from_labels(None, Some(annotations));
            metadata.warnings.retain(|w| !w.ends_with(crate::metadata::MISSING));
            metadata.warnings.insert(
                0,
                format!("config `{config_digest}` is not JSON that can be read ({e}); its labels are unknown"),
            );
            metadata.labels_unreadable = true;
            metadata
        }
    }
}

fn parse_digest(registry: &str, s: &str) -> Result<Digest, RegistryError> {
    s.parse()
        .map_err(|e: crate::reference::ReferenceError| RegistryError::Invalid {
            registry: registry.into(),
            what: "descriptor".into(),
            detail: e.to_string(),
        })
}

/// How deep [`describe`] follows indexes inside indexes: the tagged index
/// is at level 0, and an index at this level is the deepest whose children
/// are read. A deeper index is listed with its children unknown
/// ([`ImageEntry::children_unknown`]), so the cleanup keeps its whole
/// repository (fail closed). Real images nest one level at most.
pub const MAX_INDEX_DEPTH: usize = 4;

/// Reads the metadata and sizes of `manifest` (in repository `repo`). For an
/// index, the labels come from the `platform` child (else from the first
/// index in it that has one, else from the first child, with a warning);
/// every child manifest is read for sizes, and an index among them is
/// described in turn (to [`MAX_INDEX_DEPTH`]), its entry and its
/// children's all in [`Described::children`], each digest once.
pub async fn describe(
    client: &Client,
    repo: &Reference,
    manifest: &Manifest,
    platform: &Platform,
) -> Result<Described, RegistryError> {
    let top = manifest.digest.clone();
    let mut tree = Tree::default();
    // Level by level, so that each digest is read where it is nearest the
    // top, and once however often indexes list it (a few small indexes that
    // list the one below many times would otherwise cost exponential work).
    let mut level = vec![(top.clone(), Some(manifest.clone()), None, false)];
    for depth in 0..=MAX_INDEX_DEPTH + 1 {
        let mut next = Vec::new();
        let mut queued = HashSet::new();
        for (digest, known, context, chosen) in level {
            if tree.nodes.contains_key(&digest) {
                continue;
            }
            let m = match known {
                Some(m) => m,
                None => client.manifest_get(repo, &digest.to_string()).await?,
            };
            let node = read_node(client, repo, &m, platform, depth, context, chosen).await?;
            if let NodeKind::Index { annotations, direct } = &node.kind {
                // Its own annotations, then those above it.
                let above = Arc::new(ci_annotations(Some(annotations), node.context.as_deref()));
                let pick = direct.unwrap_or(0);
                for (i, c) in node.entry.children.iter().enumerate() {
                    if !tree.nodes.contains_key(c) && queued.insert(c.clone()) {
                        next.push((c.clone(), None, Some(above.clone()), i == pick));
                    }
                }
            }
            if digest != top {
                tree.order.push(digest.clone());
            }
            tree.nodes.insert(digest, node);
        }
        level = next;
    }
    tree.find_platform();
    let children = tree.order.iter().map(|d| tree.entry(d, platform)).collect();
    Ok(Described {
        entry: tree.entry(&top, platform),
        children,
    })
}

/// Annotations, by key.
type Annotations = BTreeMap<String, String>;

/// The CI labels among `own` annotations, then among `above` for those
/// missing: all that labels fall back to, so that what is passed down a
/// tree stays four values however large the annotations.
fn ci_annotations(own: Option<&Annotations>, above: Option<&Annotations>) -> Annotations {
    crate::metadata::CI_LABELS
        .iter()
        .filter_map(|k| {
            let v = own.and_then(|a| a.get(*k)).or_else(|| above.and_then(|a| a.get(*k)))?;
            Some((k.to_string(), v.clone()))
        })
        .collect()
}

/// What [`describe`] read of one digest of an index tree: its entry
/// (metadata not yet filled in) and what its labels are made of. Labels are
/// worked out per use ([`Tree::labels`]): an image's fallback annotations
/// are those of the indexes that chose it, which differ between the
/// indexes that hold it.
struct Node {
    entry: ImageEntry,
    kind: NodeKind,
    /// How many indexes below the tagged one it was read.
    depth: usize,
    /// The annotations of the indexes above it where it was first met
    /// (nearest first), for the labels of its own entry; shared, not copied
    /// per child.
    context: Option<Arc<Annotations>>,
}

enum NodeKind {
    Image {
        config: Result<(Option<Labels>, Vec<String>), String>,
        config_digest: Digest,
        annotations: Annotations,
    },
    Index {
        /// Its own (those above it differ between the indexes holding it).
        annotations: Annotations,
        /// The child of the platform asked for, by its descriptor.
        direct: Option<usize>,
    },
    /// Nested deeper than [`MAX_INDEX_DEPTH`]: its children were not read.
    TooDeep,
}

/// Every digest of one tree, each read once.
#[derive(Default)]
struct Tree {
    nodes: HashMap<Digest, Node>,
    /// The digests below the top, level by level.
    order: Vec<Digest>,
    /// Per index, by `steps`: whether it has a child of the platform asked
    /// for, itself or through indexes in it, within `steps` indexes.
    found: HashMap<Digest, [bool; MAX_INDEX_DEPTH + 2]>,
}

impl Tree {
    /// The entry of `digest` with its labels, in the context it was read in.
    fn entry(&self, digest: &Digest, platform: &Platform) -> ImageEntry {
        let node = &self.nodes[digest];
        let mut entry = node.entry.clone();
        let steps = (MAX_INDEX_DEPTH + 1).saturating_sub(node.depth);
        entry.metadata = self.labels(digest, node.context.as_deref(), platform, steps);
        entry
    }

    /// Fills [`Tree::found`], one number of steps after the other (each
    /// index's answer for `s` steps needs its children's for `s - 1`), so
    /// that it costs the edges of the tree per step, not a walk per path.
    fn find_platform(&mut self) {
        for steps in 1..=MAX_INDEX_DEPTH + 1 {
            let now: Vec<(Digest, bool)> = self
                .nodes
                .iter()
                .filter_map(|(d, n)| match &n.kind {
                    NodeKind::Index { direct, .. } => Some((
                        d.clone(),
                        direct.is_some() || n.entry.children.iter().any(|c| self.found(c, steps - 1)),
                    )),
                    _ => None,
                })
                .collect();
            for (d, f) in now {
                self.found.entry(d).or_insert([false; MAX_INDEX_DEPTH + 2])[steps] = f;
            }
        }
    }

    /// Whether index `digest` has a child of the platform, itself or
    /// through an index in it, within `steps` indexes.
    fn found(&self, digest: &Digest, steps: usize) -> bool {
        self.found
            .get(digest)
            .is_some_and(|f| f[steps.min(MAX_INDEX_DEPTH + 1)])
    }

    /// The labels of `digest` below indexes with `inherited` annotations:
    /// an image's from its config, then its own annotations, then
    /// `inherited`; an index's from the child it chooses, following at
    /// most `steps` indexes (what the index at the end holds is unknown).
    fn labels(
        &self,
        digest: &Digest,
        inherited: Option<&Annotations>,
        platform: &Platform,
        steps: usize,
    ) -> ImageMetadata {
        let node = &self.nodes[digest];
        let with = |own: &Annotations| ci_annotations(Some(own), inherited);
        match &node.kind {
            NodeKind::Image {
                config,
                config_digest,
                annotations,
            } => metadata_of(config, config_digest, &with(annotations)),
            // What it holds is unknown (and the cleanup holds its repository).
            NodeKind::TooDeep => ImageMetadata::default(),
            // Read (nearer the top on another path), but no steps left to
            // follow: the annotations alone.
            NodeKind::Index { annotations, .. } if steps == 0 => {
                ImageMetadata::from_labels(None, Some(&with(annotations)))
            }
            NodeKind::Index { annotations, direct } => {
                let annotations = with(annotations);
                let children = &node.entry.children;
                if children.is_empty() {
                    let mut m = ImageMetadata::from_labels(None, Some(&annotations));
                    m.warnings.insert(0, "index has no child manifests".to_string());
                    return m;
                }
                // The platform's child; else the first index in it that has
                // one; else the first child, with a warning.
                let nested = || children.iter().position(|c| self.found(c, steps - 1));
                let (pick, warn) = match direct.or_else(nested) {
                    Some(i) => (i, false),
                    None => (0, true),
                };
                let mut m = self.labels(&children[pick], Some(&annotations), platform, steps - 1);
                if warn {
                    m.warnings.insert(
                        0,
                        format!("index has no `{platform}` child; labels read from the first child"),
                    );
                    // An index in it without the platform says so as well.
                    m.warnings.dedup();
                }
                m
            }
        }
    }
}

/// Reads `manifest`, `depth` indexes below the tagged one, below indexes
/// with `context` annotations (kept for an index, and for an image its
/// index `chose` for its labels): an image's config, an index's children's
/// digests (an index deeper than [`MAX_INDEX_DEPTH`] is not read further).
async fn read_node(
    client: &Client,
    repo: &Reference,
    manifest: &Manifest,
    platform: &Platform,
    depth: usize,
    context: Option<Arc<Annotations>>,
    chose: bool,
) -> Result<Node, RegistryError> {
    let registry = repo.registry.as_str();
    let index = match parse_manifest(registry, manifest)? {
        Parsed::Image(img) => {
            let mut node = read_image(client, repo, manifest, &img).await?;
            node.depth = depth;
            node.context = context.filter(|_| chose);
            return Ok(node);
        }
        Parsed::Index(index) => index,
    };
    let mut entry = ImageEntry {
        digest: manifest.digest.clone(),
        media_type: manifest.media_type.clone(),
        kind: ManifestKind::Index,
        metadata: ImageMetadata::default(),
        children: Vec::new(),
        children_unknown: false,
        blobs: BTreeMap::new(),
        manifest_size: manifest.body.len() as u64,
    };
    if depth > MAX_INDEX_DEPTH {
        entry.children_unknown = true;
        return Ok(Node {
            entry,
            kind: NodeKind::TooDeep,
            depth,
            context,
        });
    }
    for e in &index.manifests {
        entry.children.push(parse_digest(registry, &e.digest)?);
    }
    let direct = index.manifests.iter().position(|e| {
        e.platform
            .as_ref()
            .is_some_and(|p| platform.matches(&p.os.to_string(), &p.architecture.to_string(), p.variant.as_deref()))
    });
    let annotations = ci_annotations(index.annotations.as_ref(), None);
    Ok(Node {
        entry,
        kind: NodeKind::Index { annotations, direct },
        depth,
        context,
    })
}

/// The children of every index reachable from `roots` in `repo`, by index
/// digest. Each root is read, whatever it is; then every child that its
/// descriptor calls an index and `known` does not (indexes whose children
/// the caller has), to [`MAX_INDEX_DEPTH`] levels. Only indexes are read: a
/// platform image is known by its descriptor, so a sparse index (children
/// not in the registry) reads fine. An index that cannot be read or parsed,
/// or one nested deeper, is an error: what it holds is unknown.
pub async fn index_children(
    client: &Client,
    repo: &Reference,
    roots: &[Digest],
    known: &(dyn Fn(&Digest) -> bool + Sync),
) -> Result<BTreeMap<Digest, Vec<Digest>>, RegistryError> {
    let invalid = |d: &Digest, detail: String| RegistryError::Invalid {
        registry: repo.registry.clone(),
        what: format!("index `{d}`"),
        detail,
    };
    let mut out: BTreeMap<Digest, Vec<Digest>> = BTreeMap::new();
    let mut level: Vec<Digest> = roots.to_vec();
    // Level 0: the roots; an index at level MAX_INDEX_DEPTH is the deepest
    // read, as in `describe`.
    for depth in 0..=MAX_INDEX_DEPTH + 1 {
        let mut next = Vec::new();
        for d in &level {
            if out.contains_key(d) {
                continue;
            }
            let manifest = client.manifest_get(repo, &d.to_string()).await?;
            let Parsed::Index(index) = parse_manifest(&repo.registry, &manifest)? else {
                continue;
            };
            if depth > MAX_INDEX_DEPTH {
                return Err(invalid(d, format!("indexes nested more than {MAX_INDEX_DEPTH} deep")));
            }
            let mut kids = Vec::with_capacity(index.manifests.len());
            for m in &index.manifests {
                let child: Digest = m
                    .digest
                    .parse()
                    .map_err(|e: crate::reference::ReferenceError| invalid(d, e.to_string()))?;
                let media_type = m.media_type.to_string();
                if (media_type == MEDIA_OCI_INDEX || media_type == MEDIA_DOCKER_LIST) && !known(&child) {
                    next.push(child.clone());
                }
                kids.push(child);
            }
            out.insert(d.clone(), kids);
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(out)
}

/// Reads image `manifest`: its entry (metadata to be filled in) and its
/// config, for its labels.
async fn read_image(
    client: &Client,
    repo: &Reference,
    manifest: &Manifest,
    img: &OciImageManifest,
) -> Result<Node, RegistryError> {
    let registry = repo.registry.as_str();
    let config_digest = parse_digest(registry, &img.config.digest)?;
    let mut blobs = BTreeMap::new();
    blobs.insert(config_digest.clone(), img.config.size.max(0) as u64);
    for l in &img.layers {
        blobs.insert(parse_digest(registry, &l.digest)?, l.size.max(0) as u64);
    }
    let config = client.blob_get(repo, &config_digest, CONFIG_LIMIT).await?;
    let annotations = ci_annotations(img.annotations.as_ref(), None);
    Ok(Node {
        entry: ImageEntry {
            digest: manifest.digest.clone(),
            media_type: manifest.media_type.clone(),
            kind: ManifestKind::Image,
            metadata: ImageMetadata::default(),
            children: Vec::new(),
            children_unknown: false,
            blobs,
            manifest_size: manifest.body.len() as u64,
        },
        kind: NodeKind::Image {
            config: config_labels(&config),
            config_digest,
            annotations,
        },
        depth: 0,
        context: None,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn config_labels_keep_the_strings_and_report_the_rest() {
        let (labels, warnings) = config_labels(
            br#"{"config":{"Labels":{"org.opencontainers.image.revision":"abc","org.opencontainers.image.created":7,"other":true}}}"#,
        )
        .unwrap();
        let labels = labels.unwrap();
        assert_eq!(labels.len(), 1);
        assert_eq!(labels["org.opencontainers.image.revision"], "abc");
        assert_eq!(
            warnings,
            ["label `org.opencontainers.image.created` is a number, not a string; left out"]
        );
        assert_eq!(config_labels(br#"{"config":{}}"#).unwrap(), (None, vec![]));
        assert_eq!(config_labels(br#"{}"#).unwrap(), (None, vec![]));
        // A lone surrogate cannot be a Rust string: the config is unreadable,
        // which is not the same as "no labels".
        let e = config_labels(br#"{"config":{"Labels":{"a":"\udc9b"}}}"#).unwrap_err();
        assert!(e.contains("surrogate"), "{e}");
        assert!(config_labels(b"not json").is_err());
    }

    #[test]
    fn an_unreadable_config_leaves_labels_unknown_not_missing() {
        let d = Digest::sha256_of(b"x");
        let annotations = BTreeMap::from([("org.opencontainers.image.revision".to_string(), "abc".to_string())]);
        let m = image_metadata(br#"{"config":{"Labels":{"a":"\udc9b"}}}"#, &d, &annotations);
        assert!(m.labels_unreadable);
        assert_eq!(m.revision.as_deref(), Some("abc"), "annotations still count");
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(m.warnings[0].contains("its labels are unknown"), "{:?}", m.warnings);
        // A readable config without the labels: missing, one warning each.
        let m = image_metadata(br#"{"config":{}}"#, &d, &BTreeMap::new());
        assert!(!m.labels_unreadable);
        assert_eq!(m.warnings.len(), 4, "{:?}", m.warnings);
        assert!(m.warnings.iter().all(|w| w.ends_with(crate::metadata::MISSING)));
    }

    use super::*;

    #[test]
    fn platform_parsing() {
        assert_eq!("linux/amd64".parse::<Platform>().unwrap(), Platform::default());
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//amd64".parse::<Platform>().is_err());
    }

    #[test]
    fn platforms_match_as_containerd_compares_them() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        assert!(p("linux/arm64/v8").matches("linux", "arm64", None));
        assert!(p("linux/arm64").matches("linux", "arm64", Some("v8")));
        assert!(p("linux/arm64/v8").matches("linux", "aarch64", Some("")));
        assert!(p("Linux/ARM64").matches("linux", "arm64", None));
        assert!(p("linux/amd64").matches("linux", "x86_64", None));
        assert!(
            p("linux/arm").matches("linux", "arm", Some("v7")),
            "arm is v7 unless said"
        );
        assert!(!p("linux/arm").matches("linux", "arm", Some("v6")));
        assert!(p("linux/arm/v7").matches("linux", "armhf", None));
        assert!(!p("linux/arm/v6").matches("linux", "arm", Some("v7")));
        assert!(!p("linux/arm64/v9").matches("linux", "arm64", None));
        assert!(
            !p("linux/arm64").matches("linux", "arm64", Some("v9")),
            "arm64 is v8 unless said"
        );
        assert!(p("linux/arm64").matches("linux", "arm64", Some("8")));
        assert!(p("linux/386").matches("linux", "i386", None));
        assert!(
            p("linux/amd64").matches("linux", "amd64", Some("v2")),
            "other variants: any unless asked"
        );
        assert!(!p("linux/amd64/v3").matches("linux", "amd64", Some("v2")));
        assert!(p("linux/amd64/v1").matches("linux", "amd64", None));
        assert!(!p("linux/amd64/v1").matches("linux", "amd64", Some("v3")));
        assert!(!p("linux/amd64").matches("windows", "amd64", None));
        assert!(!p("linux/amd64").matches("linux", "arm64", None));
    }
}
