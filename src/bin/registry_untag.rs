//! `registry_untag REGISTRY/REPO:TAG... [--apply] [--json] [--protected FILE...]` — removes tags,
//! never the digests they point to. Dry run unless `--apply`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use image_lifecycle::cli::{self, Failure, RegistryArgs};
use image_lifecycle::prune::load_states;
use image_lifecycle::reference::Reference;
use image_lifecycle::registry::Client;
use image_lifecycle::untag::{UntagError, Untagger, check_deployed};

/// Remove tags from a registry, keeping the digests they point to.
///
/// Uses DELETE by tag where the registry supports it (a 404 to it while a
/// HEAD still finds the tag on its digest counts as no support; found on
/// another digest, someone pushed to it: left alone, exit 1); otherwise
/// points the tag at a unique placeholder manifest and deletes that by
/// digest. A digest
/// left without tags is reclaimed by the registry's own collection of
/// untagged manifests (distribution 3: `garbage-collect --delete-untagged`).
///
/// Exit codes: 0 ok, 1 other failure, 2 usage, 3 not found, 4 auth refused,
/// 5 registry unreachable or broken.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Tags to remove, each as registry/repo:tag.
    #[arg(required = true, value_name = "REGISTRY/REPO:TAG")]
    tags: Vec<String>,
    /// Change the registry (default: a dry run that only says what would happen).
    #[arg(long)]
    apply: bool,
    /// Print one JSON array of outcomes on stdout.
    #[arg(long)]
    json: bool,
    /// Deploy state (what playbooks/collect_deploy_info.yml writes), any
    /// number: refuse (exit 2, nothing changed) to leave a digest a record
    /// names, as running or in its history, without tags.
    #[arg(long, value_name = "FILE")]
    protected: Vec<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

fn main() -> ExitCode {
    cli::main_with::<Args>(run)
}

fn run(args: Args) -> Result<(), Failure> {
    let mut refs = Vec::new();
    for t in &args.tags {
        let r: Reference = Reference::parse_with_host(t).map_err(|e| {
            Failure::from_error(cli::EXIT_USAGE, &e).with_hint("write each tag as HOST[:PORT]/REPO:TAG")
        })?;
        if r.tag.is_none() || r.digest.is_some() {
            return Err(Failure::usage(format!("`{t}` is not REGISTRY/REPO:TAG"))
                .with_hint("name tags only; to delete a digest use registry_cleanup"));
        }
        // A tag named twice is untagged once: the second time it would be
        // gone, and the dry run could not say so.
        if !refs.contains(&r) {
            refs.push(r);
        }
    }
    let states =
        load_states(&args.protected).map_err(|e| Failure::from_error(cli::EXIT_USAGE, &e).with_hint(e.hint()))?;
    let client = Client::new(args.registry.client_options())?;
    let rt = cli::runtime()?;
    let mut outcomes = Vec::new();
    let mut untagger = Untagger::new(&client);
    // Every tag must exist before any is touched (or any line printed).
    for r in &refs {
        rt.block_on(untagger.check(r)).map_err(failure)?;
    }
    // A dry run's check is its dry run: the tags are read once.
    let mut checked = None;
    if !states.is_empty() {
        let mut own = Untagger::new(&client);
        let dry = if args.apply { &mut own } else { &mut untagger };
        let (dry_outcomes, warnings) = rt.block_on(check_deployed(dry, &refs, &states)).map_err(failure)?;
        for w in warnings {
            cli::warn(&w);
        }
        checked = (!args.apply).then(|| dry_outcomes.into_iter());
    }
    for r in &refs {
        let o = match checked.as_mut().and_then(Iterator::next) {
            Some(o) => o,
            None => rt.block_on(untagger.untag(r, args.apply)).map_err(failure)?,
        };
        if !args.json {
            cli::print_stdout(&format!("{}\n", o.render()))?;
        }
        outcomes.push(o);
    }
    if args.json {
        let mut s = serde_json::to_string_pretty(&outcomes).map_err(|e| Failure::from_error(cli::EXIT_FAILURE, &e))?;
        s.push('\n');
        cli::print_stdout(&s)?;
    } else if !args.apply {
        cli::print_stdout("dry run: nothing changed; run again with --apply to remove these tags\n")?;
    }
    Ok(())
}

fn failure(e: UntagError) -> Failure {
    let mut f = Failure::from_error(e.exit_code(), &e);
    f.hint = e.hint();
    f
}
