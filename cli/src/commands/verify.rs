//! `etl verify`: the signatures of artifacts in layouts or registries, one verdict a line.

use std::path::PathBuf;

use crate::args::RegistryArgs;
use crate::exit::{Error, Verdict};

/// The arguments of `etl verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The public key (PEM), from `etl keygen` or `cosign generate-key-pair`.
    #[arg(long, value_name = "PUB")]
    key: PathBuf,
    /// `etl compile` outputs (holding oci/), OCI image layouts (existing directories) or
    /// image references.
    #[arg(default_value = "dist", value_name = "DIST|REF")]
    targets: Vec<String>,
    #[command(flatten)]
    access: RegistryArgs,
}

/// Checks every target; prints a line per artifact on stdout, the count on stderr.
pub fn run(args: Args) -> Result<Verdict, Error> {
    let key = etl::ops::keygen::read_public_key(&args.key)?;
    let report = etl::ops::verify::verify(&args.targets, &key, &args.access.insecure, |host| {
        args.access.credentials(host)
    })?;
    for a in &report.checked {
        match &a.outcome {
            Ok(reference) => println!("ok: `{}` {} signed as {reference}", a.name, a.digest),
            Err(problem) => {
                let digest = if a.digest.is_empty() {
                    String::new()
                } else {
                    format!(" {}", a.digest)
                };
                println!("error: `{}`{digest}: {problem}", a.name);
            }
        }
    }
    let (n, bad) = (report.checked.len(), report.bad());
    let noun = if n == 1 { "artifact" } else { "artifacts" };
    if bad == 0 {
        eprintln!("verified {n} {noun}");
        Ok(Verdict::Success)
    } else {
        eprintln!("{bad} of {n} {noun} not signed and valid");
        Ok(Verdict::Failed)
    }
}
