//! `image_labels`: the tag and OCI labels CI bakes into an image, from git.
//!
//! Exit codes: 0 ok; 1 git could not be run or failed; 2 usage or invalid
//! input (not a repository, no commit, no `origin` and no `--source`, a
//! source without a web address, a dirty tree with `--require-clean`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use image_lifecycle::ci_metadata::{self, CiMetadataError, DirtyPolicy, Format};
use image_lifecycle::cli::{self, Failure};
use image_lifecycle::reference::Reference;

const AFTER_HELP: &str = "\
Formats:
  json    {\"tag\": SHORT_SHA, \"labels\": {\"org.opencontainers.image.revision\": …, …}}
  args    --tag 'SHORT_SHA' --label 'KEY=VALUE' …, every value single-quoted.
          Use it as:  eval \"set -- $(image_labels --format args --image NAME)\"
                      docker buildx build \"$@\" .
          (the double quotes matter). Without --image the tag is the bare
          short SHA.
  github  name=value lines (tag, revision, description, created, source) for
          $GITHUB_OUTPUT:  image_labels --format github >> \"$GITHUB_OUTPUT\"

A dirty work tree gets a warning on stderr and the labels of HEAD, unless
--require-clean. A detached HEAD is fine.

Exit codes: 0 ok, 1 git failed, 2 usage or invalid input.";

/// Print the image tag (short SHA) and OCI labels for the commit at HEAD.
#[derive(Debug, Parser)]
#[command(name = "image_labels", version, after_help = AFTER_HELP)]
struct Cli {
    /// The git checkout to describe.
    #[arg(long, value_name = "DIR", default_value = ".")]
    repo_dir: PathBuf,

    /// Repository web address for the `source` label, instead of the
    /// `origin` remote (normalised the same way). Parsed after clap, whose
    /// messages would echo a URL's credentials.
    #[arg(long, value_name = "URL")]
    source: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,

    /// With `--format args`: print `--tag NAME:SHORT_SHA` instead of the bare
    /// short SHA. NAME is an image name without tag or digest.
    #[arg(long, value_name = "NAME", value_parser = ci_metadata::parse_image_name)]
    image: Option<Reference>,

    /// Fail (exit 2) instead of warning when the work tree has changes.
    #[arg(long)]
    require_clean: bool,
}

fn main() -> ExitCode {
    cli::main_with::<Cli>(|cli| {
        if cli.image.is_some() && cli.format != Format::Args {
            return Err(Failure::usage("`--image` only applies to `--format args`"));
        }
        run(&cli)
    })
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let dirty = if cli.require_clean {
        DirtyPolicy::Refuse
    } else {
        DirtyPolicy::Warn
    };
    let source = cli
        .source
        .as_deref()
        .map(ci_metadata::parse_source)
        .transpose()
        .map_err(failure)?;
    let report = ci_metadata::labels_from_repo(&cli.repo_dir, source, dirty).map_err(failure)?;
    for warning in &report.warnings {
        cli::warn(warning);
    }
    cli::print_stdout(&report.labels.render(cli.format, cli.image.as_ref()))
}

/// The error, each line of each cause (git's messages span lines), the hint.
fn failure(e: CiMetadataError) -> Failure {
    let code = if e.is_invalid_input() {
        cli::EXIT_USAGE
    } else {
        cli::EXIT_FAILURE
    };
    let mut f = Failure::new(code, e.to_string());
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        for line in c.to_string().lines() {
            f = f.with_cause(line);
        }
        cause = c.source();
    }
    if let Some(hint) = e.hint() {
        f = f.with_hint(hint);
    }
    f
}
