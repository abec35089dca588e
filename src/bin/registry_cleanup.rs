//! `registry_cleanup REGISTRY --policy FILE --protected FILE [--protected FILE…]
//! [--apply] [--json]` — deletes digests that the retention policy does not
//! keep and no deploy state protects. Dry run unless `--apply`. See
//! DESIGN.md and docs/cleanup.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use image_lifecycle::atomic;
use image_lifecycle::cleanup::{Planning, render_plan};
use image_lifecycle::cli::{self, Failure, RegistryArgs};
use image_lifecycle::image::Platform;
use image_lifecycle::policy::Policy;
use image_lifecycle::prune::{
    CleanupReport, DeleteProgress, Interrupt, apply, check_apply, check_protects_here, foreign_record_warnings,
    load_reviewed_plan, load_states, render_result, scan_and_plan, stale_state_warnings,
};
use image_lifecycle::registry::Client;
use image_lifecycle::scan::Progress;

/// Delete the digests of a registry that the retention policy does not keep
/// and no deploy state protects.
///
/// Every repository of the registry's catalog is planned (the policy's
/// `defaults` apply to all of them). The plan lists every digest with its
/// tags, created date, decision and reasons, and the bytes the registry's
/// garbage collection can reclaim afterwards. Nothing changes unless
/// `--apply` is given; then the tags of each repository are read again
/// just before its deletions, and a digest whose tags changed is skipped.
///
/// Exit codes: 0 ok, 1 other failure (e.g. the registry refuses deletes),
/// 2 usage or invalid input (bad policy or deploy state, a policy for
/// another `registry`, `--apply` without deploy state for every workspace
/// of the policy, or with deploy state that protects nothing in this
/// registry), 3 not found,
/// 4 authentication refused, 5 registry unreachable or broken.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The registry: HOST[:PORT].
    registry: String,
    /// The retention policy (YAML; see docs/cleanup.md).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// A deploy state file (one workspace, as playbooks/collect_deploy_info.yml
    /// writes it); repeat for every workspace.
    #[arg(long, value_name = "FILE", required = true)]
    protected: Vec<PathBuf>,
    /// Delete the planned digests (default: a dry run that changes nothing).
    #[arg(long)]
    apply: bool,
    /// Print one JSON object (plan and result) instead of the tables.
    #[arg(long)]
    json: bool,
    /// Write this dry run's plan to FILE (the `--json` object, atomically)
    /// for review, to give to `--apply --plan FILE` later.
    #[arg(long, value_name = "FILE", conflicts_with = "apply")]
    save_plan: Option<PathBuf>,
    /// A reviewed plan (saved with --save-plan or --json): delete only what
    /// it deleted and the rules still delete now; the rest is kept
    /// (`not_in_reviewed_plan`).
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
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
    let policy = Policy::load(&args.policy).map_err(|e| Failure::from_error(cli::EXIT_USAGE, &e))?;
    if let Some(own) = policy.registry.as_deref()
        && !own.eq_ignore_ascii_case(registry)
    {
        return Err(Failure::usage(format!(
            "the policy `{}` is for registry `{own}`, not `{registry}`",
            args.policy.display()
        ))
        .with_hint(
            "run it against that registry (written the same way: `host:443` is not `host`), or give the policy \
             written for this one; nothing was deleted",
        ));
    }
    let states =
        load_states(&args.protected).map_err(|e| Failure::from_error(cli::EXIT_USAGE, &e).with_hint(e.hint()))?;
    let reviewed = args
        .plan
        .as_deref()
        .map(|p| load_reviewed_plan(p, registry))
        .transpose()
        .map_err(|e| Failure::from_error(cli::EXIT_USAGE, &e).with_hint(e.hint()))?;
    let missing = check_apply(&policy, &states);
    if args.apply
        && let Err(e) = &missing
    {
        return Err(Failure::from_error(cli::EXIT_USAGE, e).with_hint(e.hint()));
    }

    // The runtime outlives the client (dropped after it): the signal
    // handler of --apply stays answered while the cache is flushed.
    let rt = cli::runtime()?;
    let client = Client::new(args.registry_args.client_options())?;
    let progress = Progress::for_stderr(args.json);
    let now = chrono::Utc::now();
    let plan = rt.block_on(scan_and_plan(
        &client,
        registry,
        &platform,
        &progress,
        &Planning {
            policy: &policy,
            states: &states,
            now,
            reviewed: reviewed.as_ref(),
        },
    ))?;
    drop(progress);
    let stale = stale_state_warnings(&states, now);
    for w in stale
        .iter()
        .chain(&foreign_record_warnings(registry, &states))
        .chain(&plan.warnings)
    {
        cli::warn(w);
    }
    if let Err(e) = &missing {
        cli::warn(&format!("{e}; this dry run protects only what the given files name"));
    }
    let here = check_protects_here(registry, &policy, &states, &plan);
    if args.apply
        && let Err(e) = &here
    {
        return Err(Failure::from_error(cli::EXIT_USAGE, e).with_hint(e.hint()));
    }
    if let Err(e) = &here {
        cli::warn(&format!("{e}; {}", e.hint().trim_end_matches("; nothing was deleted")));
    }

    if let Some(path) = &args.save_plan {
        let report = CleanupReport {
            registry,
            applied: false,
            plan: &plan,
            result: None,
        };
        let mut text = serde_json::to_vec_pretty(&report).map_err(|e| Failure::from_error(cli::EXIT_FAILURE, &e))?;
        text.push(b'\n');
        atomic::write_atomic(path, &text, 0o644).map_err(|e| {
            Failure::new(
                cli::EXIT_FAILURE,
                format!("cannot write the plan to `{}`", path.display()),
            )
            .with_cause(e.to_string())
        })?;
    }

    if !args.json {
        cli::print_stdout(&render_plan(&plan))?;
    }
    if !args.apply {
        if args.json {
            print_json(&CleanupReport {
                registry,
                applied: false,
                plan: &plan,
                result: None,
            })?;
        } else {
            cli::print_stdout(&format!(
                "dry run: nothing deleted; run again with --apply to delete {} digest{}\n",
                plan.delete_count,
                if plan.delete_count == 1 { "" } else { "s" }
            ))?;
        }
        return Ok(());
    }

    let bar = DeleteProgress::for_stderr(args.json, plan.delete_count);
    // Ctrl-C during the plan ends the process (nothing is deleted yet);
    // from here on it stops the deletions in good order.
    let interrupt = Interrupt::new();
    let applied = rt.block_on(async {
        interrupt
            .on_signals(&bar)
            .map_err(|e| Failure::from_error(cli::EXIT_FAILURE, &e))?;
        let applied = apply(&client, &plan, &bar, &interrupt).await;
        interrupt.finish();
        Ok::<_, Failure>(applied)
    })?;
    drop(bar);
    if args.json {
        print_json(&CleanupReport {
            registry,
            applied: true,
            plan: &plan,
            result: Some(&applied.result),
        })?;
    } else {
        cli::print_stdout(&render_result(&applied.result))?;
    }
    applied.outcome()
}

fn print_json(report: &CleanupReport<'_>) -> Result<(), Failure> {
    let mut s = serde_json::to_string_pretty(report).map_err(|e| Failure::from_error(cli::EXIT_FAILURE, &e))?;
    s.push('\n');
    cli::print_stdout(&s)
}
