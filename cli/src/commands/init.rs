//! `etl init`: a new pipeline repo.

use std::path::PathBuf;

use crate::exit::{Error, Verdict};

/// The arguments of `etl init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to create it (created if missing).
    #[arg(default_value = ".", value_name = "DIR")]
    dir: PathBuf,
    /// Project name; defaults to the directory's name, transliterated to a valid name.
    #[arg(long)]
    name: Option<String>,
}

/// Scaffolds the repo and lists the files written.
pub fn run(args: Args) -> Result<Verdict, Error> {
    let files = etl::ops::init::init(&args.dir, args.name.as_deref())?;
    println!("created a pipeline repo in `{}`:", args.dir.display());
    for f in files {
        println!("  {f}");
    }
    println!("next: `etl test --repo {}`", args.dir.display());
    Ok(Verdict::Success)
}
