//! `images_overview WORKSPACE REGISTRY/REPO [--deployed FILE] [--json]
//! [--limit N]` — the tags of one repository, newest first, with `→` on
//! what the workspace runs. See DESIGN.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use image_lifecycle::cli::{self, Failure, RegistryArgs};
use image_lifecycle::deploy_state::DeployState;
use image_lifecycle::image::Platform;
use image_lifecycle::overview::{TextStyle, images_overview, label_warnings, render_images};
use image_lifecycle::reference::Reference;
use image_lifecycle::registry::Client;
use image_lifecycle::scan::{Progress, scan_repository};

/// Show the tags of an image, newest first, marking (→) those whose digest
/// runs on a host of the workspace.
///
/// Descriptions are cut to the terminal width when stdout is a terminal
/// (or to $COLUMNS when it is set); piped output is not cut and has no
/// colour.
///
/// Exit codes: 0 ok, 1 other failure, 2 usage or invalid input (including
/// an unreadable deploy state file), 3 repository not found, 4
/// authentication refused, 5 registry unreachable or broken.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Workspace whose deploy state marks the tags (e.g. dev).
    workspace: String,
    /// The image: REGISTRY/REPO (a tag or digest is ignored, with a warning).
    image: String,
    /// Deploy state JSON of the workspace, as playbooks/collect_deploy_info.yml writes it.
    #[arg(long, value_name = "FILE")]
    deployed: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Show the newest N tags (deployed tags are shown as well).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,
    /// Platform whose labels a multi-arch image is read from.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", default_value = "linux/amd64")]
    platform: Platform,
    #[command(flatten)]
    registry: RegistryArgs,
}

fn main() -> ExitCode {
    cli::main_with::<Args>(run)
}

fn run(args: Args) -> Result<(), Failure> {
    let repo: Reference = Reference::parse_with_host(&args.image).map_err(|e| {
        Failure::from_error(cli::EXIT_USAGE, &e)
            .with_hint("write the image as HOST[:PORT]/REPO, e.g. registry.example.com/acme/web")
    })?;
    if repo.tag.is_some() || repo.digest.is_some() {
        cli::warn(&format!(
            "`{}` names a tag or digest, which is ignored: the overview lists every tag of `{}`",
            args.image,
            repo.name()
        ));
    }
    let platform = args.platform;
    let state = match &args.deployed {
        None => None,
        Some(path) => {
            let s =
                DeployState::load(path).map_err(|e| Failure::from_error(cli::EXIT_USAGE, &e).with_hint(e.hint()))?;
            if s.workspace != args.workspace {
                return Err(Failure::usage(format!(
                    "deploy state file `{}` is for workspace `{}`, not `{}`",
                    path.display(),
                    s.workspace,
                    args.workspace
                ))
                .with_hint("pass the deploy state collected for the workspace named first"));
            }
            Some(s)
        }
    };
    let client = Client::new(args.registry.client_options())?;
    let progress = Progress::for_stderr(args.json);
    let listing = cli::runtime()?.block_on(scan_repository(&client, &repo, &platform, &progress))?;
    drop(progress);
    let ov = images_overview(
        &listing,
        &args.workspace,
        state.as_ref(),
        args.limit.map(|n| n as usize),
    );
    for w in label_warnings(&ov) {
        cli::warn(&w);
    }
    if let (Some(s), Some(path)) = (&state, &args.deployed)
        && let Some(w) = unmatched_state_warning(s, &ov.image, path)
    {
        cli::warn(&w);
    }
    if state.is_none() && !args.json {
        cli::warn("no deploy state given (`--deployed FILE`): no tag is marked as deployed");
    }
    let text = if args.json {
        let mut j = serde_json::to_string_pretty(&ov).map_err(|e| Failure::from_error(cli::EXIT_FAILURE, &e))?;
        j.push('\n');
        j
    } else {
        render_images(&ov, &TextStyle::for_stdout())
    };
    cli::print_stdout(&text)
}

/// A warning when the deploy state records images but none of `image`:
/// nothing is marked, which looks like "nothing deployed" while it is
/// more often the registry named another way than at deploy time
/// (`localhost:5000` and `127.0.0.1:5000`).
fn unmatched_state_warning(state: &DeployState, image: &str, path: &Path) -> Option<String> {
    if state.records.is_empty() || state.records_for(image).next().is_some() {
        return None;
    }
    let images: std::collections::BTreeSet<&str> = state.records.iter().map(|r| r.image.as_str()).collect();
    let mut named: Vec<String> = images.iter().take(3).map(|i| format!("`{i}`")).collect();
    if images.len() > 3 {
        named.push(format!("{} more", images.len() - 3));
    }
    Some(format!(
        "deploy state `{}` has no record of `{image}` (it records {}): no tag is marked; \
         if one of these is this image under another registry name, name the image that way",
        path.display(),
        named.join(", ")
    ))
}
