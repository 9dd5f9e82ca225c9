//! `etl`: a GitOps compiler for ETL pipelines that run as WebAssembly components on wasmCloud.
//!
//! The compiler is a pipeline of stages, each a module with one job:
//! [`load`] (files → typed specs with source positions, checked against [`schema`]) →
//! [`check`] (graph, references, templates, secrets, paths) → [`resolve`] (component bytes by
//! digest, from the repo or [`pull`]ed from a registry, checked against the [`contract`] and the
//! policy) → later stages.
//! Problems are [`diag::Diagnostic`]s, rendered once at the edge by [`render`].

pub mod check;
pub mod compile;
pub mod compose;
pub mod contract;
pub mod deploy;
pub mod diag;
pub mod diagram;
pub mod diff;
pub mod emit;
pub mod harness;
pub mod init;
pub mod inspect;
pub mod load;
pub mod model;
pub mod oci;
pub mod output;
pub mod promote;
pub mod provenance;
pub mod pull;
pub mod push;
pub mod registry;
pub mod render;
pub mod resolve;
pub mod run;
pub mod schema;
pub mod sign;
pub mod yaml;

use std::path::{Path, PathBuf};

use diag::Diagnostic;
use load::{Repo, Sources};

/// Failures that stop a command before it can report on the repo (usage or environment errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repo path is not a directory.
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A file or directory could not be read or written.
    #[error("`{}`: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An output could not be written without losing the user's files, or failed to be.
    #[error(transparent)]
    Output(#[from] output::OutputError),
}

/// The outcome of validating a repo: the loaded specs and every problem found, sorted.
#[derive(Debug)]
pub struct Validation {
    /// The specs that loaded.
    pub repo: Repo,
    /// Problems, in reporting order.
    pub diagnostics: Vec<Diagnostic>,
    /// Component bytes read and checked against their digests, for [`resolve::resolve_repo`].
    pub components: resolve::Verified,
}

impl Validation {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The text of the files read, for rendering.
    pub fn sources(&self) -> &Sources {
        &self.repo.sources
    }
}

/// Loads and checks the repo at `root`, reporting every problem found in one run.
pub fn validate(root: &Path) -> Result<Validation, Error> {
    validate_with(root, None)
}

/// [`validate`], also checking the copies of `oci://` components that `cache` holds (read only:
/// nothing is pulled).
pub fn validate_with(root: &Path, cache: Option<&resolve::Cache>) -> Result<Validation, Error> {
    let (repo, mut diagnostics) = load::load(root)?;
    let (problems, components) = check::check(&repo, cache);
    diagnostics.extend(problems);
    diag::sort(&mut diagnostics);
    Ok(Validation {
        repo,
        diagnostics,
        components,
    })
}
