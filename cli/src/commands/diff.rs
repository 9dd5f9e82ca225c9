//! `etl diff`: what a change deploys differently.

use std::path::PathBuf;

use clap::ValueEnum;
use etl::ops::diff::DiffError;

use crate::args::{self, Color, Format};
use crate::exit::{Error, Verdict};
use crate::render;

/// The arguments of `etl diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The old side: a directory or a git ref.
    #[arg(value_name = "BASE")]
    base: String,
    /// The new side: a directory or a git ref.
    #[arg(value_name = "HEAD")]
    head: String,
    /// The pipeline repo whose git refs are meant.
    #[arg(long, default_value = ".", value_name = "DIR")]
    repo: PathBuf,
    /// Output format: `markdown` (a pull-request comment, under 60,000 characters),
    /// `text` (everything, for a terminal) or `json` (stable, see docs/diff.md).
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    format: DiffFormat,
    /// Cache of pulled components, componentized modules and compositions (default as for
    /// `etl compile`).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// URL of the pipeline repo recorded in the plans of sides compiled here, as for
    /// `etl compile --source`.
    #[arg(long, env = "ETL_SOURCE_URL", value_name = "URL")]
    source: Option<String>,
    /// The nkey account seed whose wascap claims the wasmCloud 1.x artifacts of sides compiled
    /// here get, as `etl compile --claims-key`: give the one the compared output was compiled
    /// with, or every 1.x artifact differs by its claims.
    #[arg(long, env = "ETL_CLAIMS_KEY_FILE", value_name = "FILE")]
    claims_key: Option<PathBuf>,
}

/// How a diff is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// Markdown for a pull-request comment.
    Markdown,
    /// Lines for a terminal.
    Text,
    /// A stable JSON document.
    Json,
}

/// Loads both sides (rendering the diagnostics of one that does not compile) and prints the
/// diff.
pub fn run(args: Args, color: Color) -> Result<Verdict, Error> {
    let options = etl::ops::diff::Options {
        repo: args.repo,
        cache: Some(etl::store::Cache::new(args::cache_dir(args.cache_dir))),
        source: args.source,
        source_date_epoch: args::source_date_epoch(),
        claims: match &args.claims_key {
            Some(path) => Some(etl::ops::keygen::read_claims_key(path)?),
            None => None,
        },
    };
    let load = |arg: &str| {
        etl::ops::diff::load(arg, &options).inspect_err(|e| {
            if let DiffError::Invalid {
                root, validation, ..
            } = e
            {
                render::diagnostics(validation, root.as_ref(), Format::Human, color, Some(""));
            }
        })
    };
    let (base, head) = (load(&args.base)?, load(&args.head)?);
    render::cache_warning(options.cache.as_ref());
    let diff = etl::ops::diff::diff(&base, &head);
    render::print(&match args.format {
        DiffFormat::Markdown => diff.markdown(),
        DiffFormat::Text => diff.text(),
        DiffFormat::Json => diff.json(),
    });
    Ok(if diff.changed {
        Verdict::Changed
    } else {
        Verdict::Success
    })
}
