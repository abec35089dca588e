//! `resolve_digest IMAGE_REF [--workspace WS] [--app APP] [--deployed-by WHO]
//! [--platform OS/ARCH] [--out FILE]` — turns a tag (or a digest) into the
//! immutable deploy facts Ansible receives. See DESIGN.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use image_lifecycle::cli::{self, Failure, RegistryArgs};
use image_lifecycle::facts::{ResolveRequest, resolve};
use image_lifecycle::image::Platform;
use image_lifecycle::reference::Reference;
use image_lifecycle::registry::Client;

/// Resolve an image tag or digest into deploy facts (JSON).
///
/// IMAGE_REF is `registry/repo:tag` (deploy by tag), `registry/repo@sha256:…`
/// (deploy by digest) or `registry/repo:tag@sha256:…` (the tag must point to
/// that digest).
///
/// Exit codes: 0 ok, 1 other failure (e.g. tag and digest disagree), 2 usage
/// or invalid input, 3 not found, 4 authentication refused, 5 registry
/// unreachable or broken.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The image: registry/repo:tag, registry/repo@digest or registry/repo:tag@digest.
    image_ref: String,
    /// Workspace deployed to (recorded in the facts).
    #[arg(long)]
    workspace: Option<String>,
    /// App name [default: last path segment of the repository].
    #[arg(long)]
    app: Option<String>,
    /// Who deploys [default: $USER@<hostname>].
    #[arg(long)]
    deployed_by: Option<String>,
    /// Platform whose labels a multi-arch image is read from.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", default_value = "linux/amd64")]
    platform: Platform,
    /// Write the facts to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

fn main() -> ExitCode {
    cli::main_with::<Args>(run)
}

fn run(args: Args) -> Result<(), Failure> {
    let reference: Reference = Reference::parse_with_host(&args.image_ref).map_err(|e| {
        Failure::from_error(cli::EXIT_USAGE, &e)
            .with_hint("write it as HOST[:PORT]/REPO:TAG or HOST[:PORT]/REPO@sha256:<64 hex>")
    })?;
    let platform = args.platform;
    let req = ResolveRequest {
        reference,
        workspace: args.workspace,
        app: args.app,
        deployed_by: args.deployed_by,
        platform,
    };
    let client = Client::new(args.registry.client_options())?;
    let (facts, warnings) = cli::runtime()?.block_on(resolve(&client, &req)).map_err(|e| {
        let mut f = Failure::from_error(e.exit_code(), &e);
        f.hint = e.hint();
        f
    })?;
    for w in &warnings {
        cli::warn(&format!("{}@{}: {w}", facts.image, facts.digest));
    }
    let mut json = serde_json::to_string_pretty(&facts).map_err(|e| Failure::from_error(cli::EXIT_FAILURE, &e))?;
    json.push('\n');
    match args.out {
        None => cli::print_stdout(&json),
        Some(path) => image_lifecycle::atomic::write_atomic(&path, json.as_bytes(), 0o644).map_err(|e| {
            Failure::new(cli::EXIT_FAILURE, format!("cannot write `{}`", path.display())).with_cause(e.to_string())
        }),
    }
}
