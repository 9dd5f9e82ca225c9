//! `etl graph`: a pipeline drawn as Mermaid or DOT.

use std::path::PathBuf;

use clap::ValueEnum;

use crate::args::{Color, Format};
use crate::exit::{Error, Verdict};
use crate::render;

/// The arguments of `etl graph`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline to draw.
    #[arg(value_name = "PIPELINE")]
    pipeline: String,
    /// The pipeline repo (the directory holding etl.yaml).
    #[arg(long, default_value = ".", value_name = "DIR")]
    repo: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    format: GraphFormat,
}

/// How a pipeline is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// A Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// Validates the repo (rendering any diagnostics), then draws the pipeline on stdout.
pub fn run(args: Args, color: Color) -> Result<Verdict, Error> {
    let validation = etl::spec::validate(&args.repo)?;
    if !validation.diagnostics.is_empty() {
        let done = (!validation.has_errors()).then_some("");
        render::diagnostics(&validation, &args.repo, Format::Human, color, done);
    }
    if validation.has_errors() {
        return Ok(Verdict::Invalid);
    }
    let p = etl::build::deployment::find_pipeline(&validation.repo, &args.pipeline)?;
    render::print(&match args.format {
        GraphFormat::Mermaid => etl::ops::graph::mermaid(&p.spec),
        GraphFormat::Dot => etl::ops::graph::dot(&p.spec),
    });
    Ok(Verdict::Success)
}
