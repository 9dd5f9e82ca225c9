//! The spec: pipeline repo files → typed, positioned specs, and every rule they must keep.
//!
//! [`yaml`] parses with positions, [`schema`] checks each file against its JSON Schema, [`load`]
//! turns files into the [`model`]; [`environments`] and [`templates`] say what a setting renders
//! to in each environment; [`check`] (stage `validate`) applies the rules a schema cannot express.
//! [`validate`] runs them all and reports every problem in one run.

pub mod check;
pub mod environments;
pub mod load;
pub mod model;
pub mod schema;
pub mod templates;
pub mod yaml;

use std::path::{Path, PathBuf};

use crate::diag::{self, Diagnostic, Sources};
use crate::spec::load::Repo;
use crate::store::{Cache, Verified};
use crate::util::io::IoError;
use crate::util::out_dir::OutputError;

/// Failures that stop a command before it can report on the repo (usage or environment errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repo path is not a directory.
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A file or directory could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// An output could not be written without losing the user's files, or failed to be.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// The outcome of validating a repo: the loaded specs and every problem found, sorted.
#[derive(Debug)]
pub struct Validation {
    /// The specs that loaded.
    pub repo: Repo,
    /// Problems, in reporting order.
    pub diagnostics: Vec<Diagnostic>,
    /// Component bytes read and checked against their digests, for [`crate::build::resolve::resolve_repo`].
    pub components: Verified,
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
pub fn validate_with(root: &Path, cache: Option<&Cache>) -> Result<Validation, Error> {
    let (repo, mut diagnostics) = load::load(root)?;
    let (problems, components) = check::check_repo(&repo, cache);
    diagnostics.extend(problems);
    diag::sort(&mut diagnostics);
    Ok(Validation {
        repo,
        diagnostics,
        components,
    })
}
