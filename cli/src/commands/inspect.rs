//! `etl inspect`: a component's imports and exports, and whether it satisfies the contract.

use std::path::PathBuf;

use etl::spec::model::Grant;

use crate::exit::{Error, Verdict};
use crate::render;

/// The arguments of `etl inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `.wasm` file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// An import to grant, as in `policy.allow` (e.g. `wasi:logging/logging`); repeatable.
    #[arg(long = "allow", value_name = "INTERFACE")]
    allow: Vec<String>,
}

/// Describes the component under the `--allow` grants.
pub fn run(args: Args) -> Result<Verdict, Error> {
    let grants = args
        .allow
        .into_iter()
        .map(Grant::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Grant)?;
    let inspection = etl::ops::inspect::inspect(&args.file, &grants)?;
    render::print(&inspection.report);
    Ok(if inspection.satisfied {
        Verdict::Success
    } else {
        Verdict::Failed
    })
}
