//! Seeds a registry with many repositories of many tagged images, fast, for
//! the cleanup benchmark (`bench/cleanup.sh`). Unlike `seed_tags` (one
//! repository, the same images in every run), every image here is distinct
//! across repositories, as in a real registry: per repository one layer,
//! per tag a config carrying that tag's CI labels and a manifest. So a plan
//! with a cold cache has to read every config, and deleted images leave
//! blobs for the garbage collection to reclaim. Uploads run 32 at a time
//! through the project's registry client.
//!
//! ```text
//! seed_cleanup HOST:PORT REPOS TAGS [--prefix bench/app]
//! ```
//! Repositories are `<prefix>000`, `<prefix>001`, …; tags are
//! `revision[:7]` of a made-up revision per image; `created` is
//! 2026-01-25T12:00:00Z for tag 0 and one minute older per tag. Prints one
//! line per image, `REPOSITORY INDEX TAG DIGEST`, sorted.

use std::process::ExitCode;

use bytes::Bytes;
use futures::StreamExt;
use image_lifecycle::reference::{Digest, Reference};
use image_lifecycle::registry::{Client, ClientOptions, MEDIA_OCI_MANIFEST};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let prefix = args
        .iter()
        .position(|a| a == "--prefix")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "bench/app".into());
    let pos: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--prefix"))
        .map(|(_, a)| a)
        .collect();
    let (Some(host), Some(repos), Some(tags)) = (
        pos.first(),
        pos.get(1).and_then(|c| c.parse::<usize>().ok()),
        pos.get(2).and_then(|c| c.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: seed_cleanup HOST:PORT REPOS TAGS [--prefix bench/app]");
        return ExitCode::from(2);
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    match rt.block_on(seed(host, &prefix, repos, tags)) {
        Ok(lines) => {
            println!("{}", lines.join("\n"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: seeding `{host}` failed: {e}");
            ExitCode::from(1)
        }
    }
}

fn revision(repo: &str, i: usize) -> String {
    let d = Digest::sha256_of(format!("cleanup seed {repo} {i}").as_bytes());
    d.encoded()[..40].to_string()
}

fn config(repo: &str, i: usize, layer: &Digest) -> Bytes {
    let created =
        chrono::DateTime::parse_from_rfc3339("2026-01-25T12:00:00Z").unwrap() - chrono::Duration::minutes(i as i64);
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": {
                "org.opencontainers.image.revision": revision(repo, i),
                "org.opencontainers.image.description": format!("change number {i} of {repo}"),
                "org.opencontainers.image.created": created.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "org.opencontainers.image.source": "https://github.com/acme/bench",
            }},
            "rootfs": {"type": "layers", "diff_ids": [layer.to_string()]},
        }))
        .unwrap(),
    )
}

async fn seed(host: &str, prefix: &str, repos: usize, tags: usize) -> Result<Vec<String>, String> {
    let client = Client::new(ClientOptions {
        cache_dir: None,
        concurrency: 32,
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let client = &client;
    let mut refs = Vec::with_capacity(repos);
    for r in 0..repos {
        let name = format!("{prefix}{r:03}");
        let repo: Reference = format!("{host}/{name}").parse().map_err(|e| format!("{e}"))?;
        let layer = Bytes::from(format!("benchmark layer of {name}\n").repeat(64));
        let digest = client.blob_put(&repo, layer.clone()).await.map_err(|e| e.to_string())?;
        refs.push((repo, digest, layer.len()));
    }
    let refs = &refs;
    let jobs = (0..repos).flat_map(|r| (0..tags).map(move |i| (r, i)));
    let mut pushes = futures::stream::iter(jobs)
        .map(|(r, i)| async move {
            let (repo, layer, layer_len) = &refs[r];
            let cfg = config(&repo.repository, i, layer);
            let cfg_digest = client.blob_put(repo, cfg.clone()).await.map_err(|e| e.to_string())?;
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MEDIA_OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cfg_digest.to_string(), "size": cfg.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": layer.to_string(), "size": layer_len}],
            });
            let tag = revision(&repo.repository, i)[..7].to_string();
            let body = Bytes::from(serde_json::to_vec(&manifest).unwrap());
            let d = client
                .manifest_put(repo, &tag, MEDIA_OCI_MANIFEST, body)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<String, String>(format!("{} {i:04} {tag} {d}", repo.repository))
        })
        .buffer_unordered(32);
    let mut lines = Vec::with_capacity(repos * tags);
    while let Some(l) = pushes.next().await {
        lines.push(l?);
    }
    lines.sort();
    Ok(lines)
}
