//! Building blocks with no knowledge of pipelines: digests, canonical JSON, I/O errors that name
//! their path, and writing outputs without losing the user's files.

pub mod digest;
pub mod io;
pub mod json;
pub mod out_dir;
