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

/// An error and its causes, each once: `a: b: c`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let message = s.to_string();
        if !text.contains(&message) {
            text = format!("{text}: {message}");
        }
        source = s.source();
    }
    text
}
