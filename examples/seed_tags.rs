//! Seeds a repository with many tagged images, fast, for the overview
//! benchmark (`bench/overview.sh`): one layer shared by all, then per tag a
//! config carrying that tag's CI labels (as CI bakes them) and a manifest.
//! Uploads run 16 at a time through the project's registry client.
//!
//! ```text
//! seed_tags HOST:PORT/REPO COUNT [--shared-config]
//! ```
//! Tags are `revision[:7]` of a made-up revision per image; `created` goes
//! back one minute per tag. `--shared-config` pushes one config without CI
//! labels and puts the labels in each manifest's annotations instead (the
//! cheapest seed: only manifests differ). Prints the tags, one a line.

use std::process::ExitCode;

use bytes::Bytes;
use futures::StreamExt;
use image_lifecycle::reference::{Digest, Reference};
use image_lifecycle::registry::{Client, ClientOptions, MEDIA_OCI_MANIFEST};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shared = args.iter().any(|a| a == "--shared-config");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let (Some(target), Some(count)) = (pos.first(), pos.get(1).and_then(|c| c.parse::<usize>().ok())) else {
        eprintln!("usage: seed_tags HOST:PORT/REPO COUNT [--shared-config]");
        return ExitCode::from(2);
    };
    let repo: Reference = match target.parse() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    match rt.block_on(seed(&repo, count, shared)) {
        Ok(tags) => {
            // A closed pipe (`| head`) is not an error.
            use std::io::Write;
            let _ = writeln!(std::io::stdout().lock(), "{}", tags.join("\n"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: seeding `{}` failed: {e}", repo.name());
            ExitCode::from(1)
        }
    }
}

fn revision(i: usize) -> String {
    // A deterministic 40-hex "git SHA" per image.
    let d = Digest::sha256_of(format!("seed revision {i}").as_bytes());
    d.encoded()[..40].to_string()
}

fn labels(i: usize) -> serde_json::Value {
    let created =
        chrono::DateTime::parse_from_rfc3339("2026-01-25T12:00:00Z").unwrap() - chrono::Duration::minutes(i as i64);
    serde_json::json!({
        "org.opencontainers.image.revision": revision(i),
        "org.opencontainers.image.description": format!("change number {i}: benchmark image"),
        "org.opencontainers.image.created": created.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "org.opencontainers.image.source": "https://github.com/acme/bench",
    })
}

async fn seed(repo: &Reference, count: usize, shared: bool) -> Result<Vec<String>, String> {
    let client = Client::new(ClientOptions {
        cache_dir: None,
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let layer = Bytes::from_static(b"benchmark layer: the same for every image\n");
    let layer_digest = client.blob_put(repo, layer.clone()).await.map_err(|e| e.to_string())?;
    let config = |labels: serde_json::Value| {
        Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "config": {"Labels": labels},
                "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
            }))
            .unwrap(),
        )
    };
    let shared_config = config(serde_json::Value::Null);
    if shared {
        client
            .blob_put(repo, shared_config.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    let client = &client;
    let layer_len = layer.len();
    let layer_digest = &layer_digest;
    let shared_config = &shared_config;
    let mut jobs = futures::stream::iter(0..count)
        .map(|i| async move {
            let (cfg, annotations) = if shared {
                (shared_config.clone(), Some(labels(i)))
            } else {
                (config(labels(i)), None)
            };
            let cfg_digest = if shared {
                Digest::sha256_of(&cfg)
            } else {
                client.blob_put(repo, cfg.clone()).await.map_err(|e| e.to_string())?
            };
            let mut manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MEDIA_OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cfg_digest.to_string(), "size": cfg.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": layer_digest.to_string(), "size": layer_len}],
            });
            if let Some(a) = annotations {
                manifest["annotations"] = a;
            }
            let tag = revision(i)[..7].to_string();
            let body = Bytes::from(serde_json::to_vec(&manifest).unwrap());
            client
                .manifest_put(repo, &tag, MEDIA_OCI_MANIFEST, body)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<String, String>(tag)
        })
        .buffer_unordered(16);
    let mut tags = Vec::with_capacity(count);
    while let Some(t) = jobs.next().await {
        tags.push(t?);
    }
    tags.sort();
    Ok(tags)
}
