//! `registry_overview REGISTRY [--repo REGEX] [--json]` — every repository
//! of a registry with its tags, sizes and CI contract problems. See DESIGN.md.

use std::process::ExitCode;

use clap::Parser;
use image_lifecycle::cli::{self, Failure, RegistryArgs};
use image_lifecycle::image::Platform;
use image_lifecycle::overview::{TextStyle, registry_overview, render_registry};
use image_lifecycle::registry::Client;
use image_lifecycle::scan::{CatalogFilter, Progress, scan_registry_keep_going};
use regex::Regex;

/// Show every repository of a registry: its tags newest first, a summary
/// (tags, distinct digests, size of distinct blobs), and `!` on images that
/// break the CI contract (a missing OCI label, a tag that is not
/// revision[:7]).
///
/// Descriptions are cut to the terminal width when stdout is a terminal
/// (or to $COLUMNS when it is set); piped output is not cut and has no
/// colour.
///
/// A repository that cannot be read (refused, an error status, an invalid
/// tag list) is shown as unreadable and the others are read; the exit code
/// is then that of the first such repository's error, after the output.
/// Content that does not match its digest stops the run instead (exit 5,
/// nothing printed): the registry, or something on the way, cannot be
/// trusted for any repository.
///
/// Exit codes: 0 ok, 1 other failure, 2 usage or invalid input, 3 not
/// found, 4 authentication refused, 5 registry unreachable or broken.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The registry: HOST[:PORT].
    registry: String,
    /// Only repositories whose name matches this regular expression
    /// (unanchored: `^acme/` for a prefix).
    #[arg(long, value_name = "REGEX")]
    repo: Option<String>,
    /// Print JSON instead of the tables.
    #[arg(long)]
    json: bool,
    /// Platform whose labels a multi-arch image is read from.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", default_value = "linux/amd64")]
    platform: Platform,
    #[command(flatten)]
    registry_args: RegistryArgs,
}

fn main() -> ExitCode {
    cli::main_with::<Args>(run)
}

fn run(args: Args) -> Result<(), Failure> {
    let registry = cli::registry_host(&args.registry)?;
    let platform = args.platform;
    let filter = CatalogFilter {
        repo: args.repo.as_deref().map(Regex::new).transpose().map_err(|e| {
            Failure::usage(format!(
                "invalid `--repo` regular expression `{}`: {}",
                args.repo.as_deref().unwrap_or_default(),
                image_lifecycle::policy::regex_problem(&e)
            ))
            .with_hint("`--repo` takes a regular expression (unanchored), e.g. `^acme/` or `web$`")
        })?,
        page_size: None,
    };
    let client = Client::new(args.registry_args.client_options())?;
    let progress = Progress::for_stderr(args.json);
    let scan = cli::runtime()?.block_on(scan_registry_keep_going(
        &client, registry, &filter, &platform, &progress,
    ))?;
    drop(progress);
    let ov = registry_overview(registry, &scan.listings, &scan.unreadable);
    let text = if args.json {
        let mut j = serde_json::to_string_pretty(&ov).map_err(|e| Failure::from_error(cli::EXIT_FAILURE, &e))?;
        j.push('\n');
        j
    } else {
        render_registry(&ov, &TextStyle::for_stdout())
    };
    cli::print_stdout(&text)?;
    match scan.unreadable.into_iter().next() {
        None => Ok(()),
        Some(first) => {
            let n = ov.repositories.iter().filter(|r| r.error.is_some()).count();
            let mut f = Failure::from(first.error);
            f.message = format!(
                "{n} of {} repositories could not be read (shown as unreadable); the first, `{}`: {}",
                ov.repositories.len(),
                first.name,
                f.message
            );
            Err(f)
        }
    }
}
