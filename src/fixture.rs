//! Small, real images for the demo, the tests and the benchmarks: a config
//! with labels, one layer, pushed with `oci-client` (so the code under test
//! does not make its own fixtures). OCI or Docker v2 media types, single
//! images or two-platform indexes.

use std::collections::BTreeMap;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference as OciReference, RegistryOperation};
use reqwest::header::HeaderValue;

use crate::image::Platform;
use crate::metadata::{LABEL_CREATED, LABEL_DESCRIPTION, LABEL_REVISION, LABEL_SOURCE};
use crate::reference::Digest;
use crate::registry::{MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};

/// One image to push.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Docker v2 schema 2 media types instead of OCI.
    pub docker: bool,
    /// Layer content; distinct content gives a distinct image.
    pub layer: Vec<u8>,
    /// Platform written into the config.
    pub platform: Platform,
}

/// The four CI labels.
pub fn ci_labels(revision: &str, description: &str, created: &str, source: &str) -> BTreeMap<String, String> {
    [
        (LABEL_REVISION, revision),
        (LABEL_DESCRIPTION, description),
        (LABEL_CREATED, created),
        (LABEL_SOURCE, source),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// An `oci-client` client that speaks plain HTTP: fixtures go to local registries only.
pub fn oci_client() -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
}

fn oci_ref(s: &str) -> Result<OciReference, String> {
    s.parse::<OciReference>()
        .map_err(|e| format!("invalid reference `{s}`: {e}"))
}

/// `HOST:PORT/REPO` of `target` without tag or digest.
fn repo_of(target: &str) -> String {
    let no_digest = target.split('@').next().unwrap_or(target);
    match no_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo.to_string(),
        _ => no_digest.to_string(),
    }
}

async fn ensure_auth(client: &Client, r: &OciReference) -> Result<(), String> {
    client
        .auth(r, &RegistryAuth::Anonymous, RegistryOperation::Push)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn push_blob(client: &Client, repo: &OciReference, body: &[u8]) -> Result<Digest, String> {
    let d = Digest::sha256_of(body);
    client
        .push_blob(repo, body.to_vec(), &d.to_string())
        .await
        .map_err(|e| e.to_string())?;
    Ok(d)
}

/// Pushes one image and points `target` (`HOST:PORT/REPO:TAG`, or
/// `HOST:PORT/REPO@DIGEST`-less `HOST:PORT/REPO` to push by digest only) at it.
/// Returns the manifest digest.
pub async fn push_image(client: &Client, target: &str, spec: &ImageSpec) -> Result<Digest, String> {
    let repo = oci_ref(&repo_of(target))?;
    ensure_auth(client, &repo).await?;
    let layer_digest = push_blob(client, &repo, &spec.layer).await?;
    let labels = if spec.labels.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::json!(spec.labels)
    };
    let config = serde_json::json!({
        "architecture": spec.platform.architecture,
        "os": spec.platform.os,
        "config": {"Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
    });
    let config = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let config_digest = push_blob(client, &repo, &config).await?;
    let (mt, config_mt, layer_mt) = if spec.docker {
        (
            MEDIA_DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            MEDIA_OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar",
        )
    };
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": {"mediaType": config_mt, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": layer_mt, "digest": layer_digest.to_string(), "size": spec.layer.len()}],
    });
    if !spec.annotations.is_empty() {
        manifest["annotations"] = serde_json::json!(spec.annotations);
    }
    let body = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    push_manifest(client, target, &body, mt).await
}

/// Pushes an index of `children` (each pushed by digest) and points `target` at it.
pub async fn push_index(
    client: &Client,
    target: &str,
    children: &[ImageSpec],
    annotations: &BTreeMap<String, String>,
    docker: bool,
) -> Result<Digest, String> {
    let repo_name = repo_of(target);
    let mut entries = Vec::new();
    for child in children {
        let child_mt = if docker {
            MEDIA_DOCKER_MANIFEST
        } else {
            MEDIA_OCI_MANIFEST
        };
        let spec = ImageSpec {
            docker,
            ..child.clone()
        };
        let d = push_image(client, &repo_name, &spec).await?;
        let size = {
            // Size of the child manifest as pushed: fetch it back by digest.
            let r = oci_ref(&format!("{repo_name}@{d}"))?;
            let (body, _) = client
                .pull_manifest_raw(&r, &RegistryAuth::Anonymous, &[child_mt])
                .await
                .map_err(|e| e.to_string())?;
            body.len()
        };
        let mut platform = serde_json::json!({"os": child.platform.os, "architecture": child.platform.architecture});
        if let Some(v) = &child.platform.variant {
            platform["variant"] = serde_json::json!(v);
        }
        entries.push(
            serde_json::json!({"mediaType": child_mt, "digest": d.to_string(), "size": size, "platform": platform}),
        );
    }
    let mt = if docker { MEDIA_DOCKER_LIST } else { MEDIA_OCI_INDEX };
    let mut index = serde_json::json!({"schemaVersion": 2, "mediaType": mt, "manifests": entries});
    if !annotations.is_empty() {
        index["annotations"] = serde_json::json!(annotations);
    }
    let body = serde_json::to_vec(&index).map_err(|e| e.to_string())?;
    push_manifest(client, target, &body, mt).await
}

/// Pushes a manifest body under `target`'s tag, or by digest when `target`
/// has no tag.
pub async fn push_manifest(client: &Client, target: &str, body: &[u8], media_type: &str) -> Result<Digest, String> {
    let digest = Digest::sha256_of(body);
    let tagged = target.len() > repo_of(target).len();
    let r = if tagged {
        oci_ref(target)?
    } else {
        oci_ref(&format!("{target}@{digest}"))?
    };
    ensure_auth(client, &r).await?;
    let ct = HeaderValue::from_str(media_type).map_err(|e| e.to_string())?;
    client
        .push_manifest_raw(&r, body.to_vec(), ct)
        .await
        .map_err(|e| e.to_string())?;
    Ok(digest)
}
