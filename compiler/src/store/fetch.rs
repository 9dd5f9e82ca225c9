//! Where component bytes come from: the repo's files, or a registry for `oci://` references.

use std::path::Path;

use crate::store::cache::Cache;
use crate::store::{ResolveError, read_limited};

/// Where component bytes come from.
pub trait Fetch {
    /// The bytes of `reference` (a repo path or `oci://…`), at most `limit` + 1 of them.
    /// `expected` is the digest they must have: a puller checks it before downloading and keys
    /// its cache by it.
    fn fetch(&self, reference: &str, expected: &str, limit: u64) -> Result<Vec<u8>, ResolveError>;
}

/// Fetches repo-relative paths from a repo directory, and pulls `oci://` references
/// ([`crate::store::pull::pull`]).
pub struct RepoFiles<'a> {
    /// The repo root.
    pub root: &'a Path,
    /// Pulled OCI components, by the digest of their bytes; `None` pulls into memory only.
    pub cache: Option<&'a Cache>,
}

impl Fetch for RepoFiles<'_> {
    fn fetch(&self, reference: &str, expected: &str, limit: u64) -> Result<Vec<u8>, ResolveError> {
        if reference.starts_with("oci://") {
            return crate::store::pull::pull(reference, expected, limit, self.cache);
        }
        read_limited(&self.root.join(reference), reference, limit)
    }
}
