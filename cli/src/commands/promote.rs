//! `etl promote`: an environment's artifacts to the next environment, by tag, and the next
//! environment's deployment bundle.

use std::path::PathBuf;

use crate::args::{self, RegistryArgs};
use crate::exit::{Error, Verdict};

/// The arguments of `etl promote`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment whose artifacts to promote.
    #[arg(long, value_name = "ENV")]
    from: String,
    /// The environment to promote them to.
    #[arg(long, value_name = "ENV")]
    to: String,
    /// The public key (PEM) the artifacts must be signed with.
    #[arg(long, value_name = "PUB")]
    key: PathBuf,
    /// Sign `<to>`'s deployment bundle with this private key (the private half of --key) when
    /// DIST's oci/ holds no signature of exactly that bundle (the re-pinned manifests differ
    /// from DIST's own). An encrypted key's passphrase is read from $ETL_KEY_PASSPHRASE.
    #[arg(long, value_name = "KEY")]
    sign_key: Option<PathBuf>,
    /// Where the artifacts are: HOST[:PORT][/PREFIX] (default: the project's
    /// `spec.registry`, as DIST/plan.json records it); another registry than that is
    /// refused (exit 2), as DIST's manifests pin images there.
    #[arg(long, value_name = "HOST[:PORT]/PREFIX")]
    registry: Option<String>,
    /// The `etl compile` output whose `<to>` manifests to re-pin.
    #[arg(default_value = "dist", value_name = "DIST")]
    dist: PathBuf,
    #[command(flatten)]
    access: RegistryArgs,
}

/// Promotes; prints a line per artifact and one for the bundle on stdout, what was done on
/// stderr.
pub fn run(args: Args) -> Result<Verdict, Error> {
    let key = etl::ops::keygen::read_public_key(&args.key)?;
    let sign_key = match &args.sign_key {
        Some(path) => Some(etl::ops::keygen::read_signing_key(
            path,
            args::passphrase().as_deref(),
        )?),
        None => None,
    };
    let registry = etl::ops::registry::registry_of(args.registry.as_deref(), &args.dist)?;
    let epoch = args::source_date_epoch();
    let time = etl::build::provenance::now(epoch.as_deref())?;
    let credentials = args.access.credentials(&registry.host)?;
    let options = etl::ops::promote::Options {
        from: args.from,
        to: args.to,
        registry,
        insecure: args.access.insecure,
        credentials,
        retry: Default::default(),
        time,
        sign_key,
    };
    let report = etl::ops::promote::promote(&args.dist, &key, &options)?;
    for a in &report.record.artifacts {
        println!(
            "{}/{}@{} {} -> {}",
            options.registry, a.repository, a.digest, options.from, options.to
        );
    }
    let bundle = &report.record.bundle;
    println!(
        "{}/{}@{} bundle -> {}",
        options.registry, bundle.repository, bundle.digest, options.to
    );
    eprintln!(
        "promoted {} artifacts from `{}` to `{}` in `{}` (tags {} set, {} unchanged); bundle \
         `{}` {} {} ({}); rewrote {} files of `{}`",
        report.record.artifacts.len(),
        options.from,
        options.to,
        options.registry,
        report.tags_set,
        report.tags_unchanged,
        bundle.repository,
        bundle.digest,
        if report.bundle_tagged {
            format!("tagged `{}`", options.to)
        } else {
            format!("already tagged `{}`", options.to)
        },
        if report.bundle_signed_now {
            "signed now"
        } else {
            "signature from DIST"
        },
        report.rewritten.len(),
        args.dist.display()
    );
    Ok(Verdict::Success)
}
