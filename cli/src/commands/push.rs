//! `etl push`: the artifacts of an `etl compile` output to a registry.

use std::path::{Path, PathBuf};

use etl::oci::registry::Registry;
use etl::ops::push::Report;

use crate::args::RegistryArgs;
use crate::exit::{Error, Verdict};

/// The arguments of `etl push`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `etl compile` output.
    #[arg(value_name = "DIST")]
    dist: PathBuf,
    /// Where to push: HOST[:PORT][/PREFIX] (default: the project's `spec.registry`, as
    /// DIST/plan.json records it). Anything else is refused: DIST's manifests and
    /// signatures name the registry it was compiled for.
    #[arg(long, value_name = "HOST[:PORT]/PREFIX")]
    registry: Option<String>,
    /// Also tag the artifacts this environment deploys, and its deployment bundle
    /// (bundles/<project>/<env>), with its name (the start of the promotion chain, e.g. `dev`);
    /// repeatable. Later environments get their tag from `etl promote`.
    #[arg(long = "env", value_name = "ENV")]
    environments: Vec<String>,
    #[command(flatten)]
    access: RegistryArgs,
}

/// Pushes `--registry`'s (else the output's own) artifacts.
pub fn run(args: Args) -> Result<Verdict, Error> {
    push(
        &args.dist,
        args.registry.as_deref(),
        args.environments,
        &args.access,
    )
}

/// Pushes the artifacts of `dist` to `registry` (default: the one it was compiled for), also
/// for `etl compile --push`; prints what was pushed.
pub fn push(
    dist: &Path,
    registry: Option<&str>,
    environments: Vec<String>,
    access: &RegistryArgs,
) -> Result<Verdict, Error> {
    let registry = etl::ops::registry::registry_of(registry, dist)?;
    let credentials = access.credentials(&registry.host)?;
    let options = etl::ops::push::Options {
        registry,
        insecure: access.insecure.clone(),
        credentials,
        retry: Default::default(),
        environments,
    };
    let report = etl::ops::push::push(dist, &options)?;
    print(&report, &options.registry);
    Ok(Verdict::Success)
}

/// What a push did: a line per manifest on stdout, the counts on stderr.
fn print(report: &Report, registry: &Registry) {
    for p in &report.pushed {
        println!("{}@{} {}", p.repository, p.digest, p.tags.join(","));
    }
    eprintln!(
        "pushed {} manifests to `{registry}`: blobs {} uploaded, {} already there ({} HEAD \
         requests); manifests {} uploaded, {} already there; tags {} set, {} unchanged; {} verified",
        report.pushed.len(),
        report.blobs_uploaded,
        report.blobs_skipped,
        report.head_requests,
        report.manifests_uploaded,
        report.manifests_skipped,
        report.tags_set,
        report.tags_unchanged,
        report.verified,
    );
}
