//! `etl test`: the repo's fixtures, reported like a test runner.

use std::time::Instant;

use crate::args::{ArtifactArgs, Color, LimitArgs, SecretArgs};
use crate::exit::{Error, Verdict};
use crate::render;

/// The arguments of `etl test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the fixtures of these pipelines (default: all).
    #[arg(value_name = "PIPELINE")]
    pipelines: Vec<String>,
    #[command(flatten)]
    artifacts: ArtifactArgs,
    #[command(flatten)]
    secrets: SecretArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Runs every fixture (of the named pipelines, if any) and reports.
pub fn run(args: Args, color: Color) -> Result<Verdict, Error> {
    let selection = etl_run::artifacts::Selection::only(&args.pipelines);
    let secrets = args.secrets.values()?;
    let Some(prepared) = args.artifacts.prepare(&selection, color)? else {
        return Ok(Verdict::Invalid);
    };
    let started = Instant::now();
    let runtime = etl_run::Runtime::new(Some(&prepared.cache))?;
    let outcomes = etl_run::test::run_fixtures(
        &runtime,
        &prepared.validation.repo,
        &prepared.artifacts,
        &args.pipelines,
        &args.limits.limits(),
        &secrets,
    )?;
    render::print(&etl_run::test::render(&outcomes, started.elapsed()));
    Ok(if outcomes.iter().all(|o| o.mismatches.is_empty()) {
        Verdict::Success
    } else {
        Verdict::Failed
    })
}
