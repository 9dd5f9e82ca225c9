//! Stage `load` then stage `validate`, over a whole repo: every problem found in one run.

use std::path::Path;

use crate::diag::{self, Diagnostic, Sources};
use crate::spec::check;
use crate::spec::error::Error;
use crate::spec::load::{self, Repo};
use crate::store::{Cache, Verified};

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
