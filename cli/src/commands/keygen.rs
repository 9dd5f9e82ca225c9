//! `etl keygen`: a signing key pair, or (`--claims`) an nkey account key for wascap claims.

use std::path::PathBuf;

use crate::args;
use crate::exit::{Error, Verdict};

/// The arguments of `etl keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path prefix of the two files (default: `etl`, with --claims `etl-claims`).
    #[arg(long, value_name = "PREFIX")]
    out: Option<PathBuf>,
    /// Make an nkey account key for the wascap claims of wasmCloud 1.x artifacts
    /// (`etl compile --claims-key`) instead: PREFIX.nk holds its seed (`SA…`, mode 0600, not
    /// encrypted), PREFIX.pub its public key (`A…`), which is also printed.
    #[arg(long)]
    claims: bool,
}

/// Writes the two files, and says so.
pub fn run(args: Args) -> Result<Verdict, Error> {
    if args.claims {
        let prefix = args.out.unwrap_or_else(|| PathBuf::from("etl-claims"));
        let written = etl::ops::keygen::keygen_claims(&prefix)?;
        println!(
            "wrote `{}` (account seed, not encrypted: keep it secret) and `{}` (public key)",
            written.seed.display(),
            written.public.display()
        );
        println!("account {}", written.public_key);
        return Ok(Verdict::Success);
    }
    let prefix = args.out.unwrap_or_else(|| PathBuf::from("etl"));
    let written = etl::ops::keygen::keygen(&prefix, args::passphrase().as_deref())?;
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
