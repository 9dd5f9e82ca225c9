//! `etl keygen`: a signing key pair.

use std::path::PathBuf;

use crate::args;
use crate::exit::{Error, Verdict};

/// The arguments of `etl keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path prefix of the two files.
    #[arg(long, default_value = "etl", value_name = "PREFIX")]
    out: PathBuf,
}

/// Writes PREFIX.key and PREFIX.pub, and says so.
pub fn run(args: Args) -> Result<Verdict, Error> {
    let written = etl::ops::keygen::keygen(&args.out, args::passphrase().as_deref())?;
    println!(
        "wrote `{}` (private{}) and `{}` (public)",
        written.private.display(),
        if written.encrypted {
            ", encrypted with $ETL_KEY_PASSPHRASE"
        } else {
            ", not encrypted"
        },
        written.public.display()
    );
    Ok(Verdict::Success)
}
