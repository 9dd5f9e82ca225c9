//! The one shape of a failed file operation: the path it was on and the OS error.

use std::path::{Path, PathBuf};

/// A file or directory could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("`{}`: {source}", path.display())]
pub struct IoError {
    /// The path.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

impl IoError {
    /// The error of `source` at `path`.
    pub fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError {
            path: path.into(),
            source,
        }
    }

    /// A closure for `map_err` that puts an I/O error at `path`.
    pub fn at(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
        move |source| IoError::new(path, source)
    }
}
