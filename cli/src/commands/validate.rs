//! `etl validate`: the diagnostics of a repo.

use std::path::PathBuf;

use crate::args::{self, Color, Format};
use crate::exit::{Error, Verdict};
use crate::render;

/// The arguments of `etl validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline repo (the directory holding etl.yaml).
    #[arg(long, default_value = ".", value_name = "DIR")]
    repo: PathBuf,
    /// Cache of pulled components, read only (default: as for `etl compile`).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Output format: `human` (snippets on stderr), `json` (stable document on stdout, see
    /// docs/diagnostics.md) or `github` (workflow annotations on stdout).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

/// Validates the repo and renders its diagnostics.
pub fn run(args: Args, color: Color) -> Result<Verdict, Error> {
    let cache = etl::store::Cache::new(args::cache_dir(args.cache_dir));
    let validation = etl::spec::validate_with(&args.repo, Some(&cache))?;
    render::diagnostics(&validation, &args.repo, args.format, color, None);
    Ok(if validation.has_errors() {
        Verdict::Invalid
    } else {
        Verdict::Success
    })
}
