//! The failures that stop loading a repo before it can be reported on: usage and environment
//! errors, as opposed to the repo's own problems, which are diagnostics.

use std::path::PathBuf;

use crate::util::io::IoError;

/// Failures that stop a command before it can report on the repo (usage or environment errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repo path is not a directory.
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A file or directory could not be read or written.
    #[error(transparent)]
    Io(#[from] IoError),
}
