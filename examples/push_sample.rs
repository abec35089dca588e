//! Pushes a small labelled sample image (or a multi-platform index) to a
//! registry reached over plain HTTP on loopback; prints its digest. Used by
//! the demo and the benchmarks in place of a CI build.
//!
//! ```text
//! push_sample HOST:PORT/REPO:TAG [--label K=V]... [--annotation K=V]...
//!             [--platform OS/ARCH]... [--docker] [--layer TEXT]
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;

use image_lifecycle::fixture::{ImageSpec, oci_client, push_image, push_index};
use image_lifecycle::image::Platform;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut target = None;
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    let mut platforms: Vec<Platform> = Vec::new();
    let mut docker = false;
    let mut layer = None;
    let kv = |s: Option<String>| -> Option<(String, String)> {
        let s = s?;
        let (k, v) = s.split_once('=')?;
        Some((k.to_string(), v.to_string()))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--label" => match kv(args.next()) {
                Some((k, v)) => drop(labels.insert(k, v)),
                None => return usage("--label takes KEY=VALUE"),
            },
            "--annotation" => match kv(args.next()) {
                Some((k, v)) => drop(annotations.insert(k, v)),
                None => return usage("--annotation takes KEY=VALUE"),
            },
            "--platform" => match args.next().map(|p| p.parse()) {
                Some(Ok(p)) => platforms.push(p),
                _ => return usage("--platform takes OS/ARCH"),
            },
            "--docker" => docker = true,
            "--layer" => layer = args.next(),
            s if s.starts_with('-') => return usage(&format!("unknown option `{s}`")),
            s => target = Some(s.to_string()),
        }
    }
    let Some(target) = target else {
        return usage("missing HOST:PORT/REPO:TAG");
    };
    let layer = layer.unwrap_or_else(|| format!("{target}\n{labels:?}\n")).into_bytes();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = oci_client();
    let result = rt.block_on(async {
        if platforms.len() > 1 {
            let children: Vec<ImageSpec> = platforms
                .iter()
                .map(|p| ImageSpec {
                    labels: labels.clone(),
                    layer: [layer.as_slice(), p.to_string().as_bytes()].concat(),
                    platform: p.clone(),
                    ..Default::default()
                })
                .collect();
            push_index(&client, &target, &children, &annotations, docker).await
        } else {
            let spec = ImageSpec {
                labels,
                annotations,
                docker,
                layer,
                platform: platforms.pop().unwrap_or_default(),
            };
            push_image(&client, &target, &spec).await
        }
    });
    match result {
        Ok(d) => {
            println!("{d}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot push `{target}`: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!(
        "error: {msg}\nusage: push_sample HOST:PORT/REPO:TAG [--label K=V]... [--annotation K=V]... [--platform OS/ARCH]... [--docker] [--layer TEXT]"
    );
    ExitCode::from(2)
}
