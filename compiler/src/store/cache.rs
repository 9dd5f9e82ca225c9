//! The content-addressed cache of pulled components, componentized modules and compositions.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::util::digest::sha256;

/// A content-addressed store: `<dir>/sha256/<hex>` holds the pulled component hashing to
/// `sha256:<hex>`; `<dir>/componentized/<hex>.wasm` the component made from the core module
/// `sha256:<hex>`; `<dir>/composed/<key>.{wasm,json}` a composition and its description.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    /// The first write that failed, if one did: kept to be said once.
    failed: std::sync::OnceLock<(PathBuf, String)>,
}

impl Cache {
    /// A cache rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Cache {
            dir: dir.into(),
            failed: std::sync::OnceLock::new(),
        }
    }

    /// Where the cache is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The first write that failed (the path and the OS error), if one did. A cache that
    /// cannot be written only costs time, so writes never fail a compile; callers say this
    /// once instead.
    pub fn write_failure(&self) -> Option<(&Path, &str)> {
        self.failed
            .get()
            .map(|(path, error)| (path.as_path(), error.as_str()))
    }

    fn pulled_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// The component pulled earlier whose bytes hash to `digest`, if they still do.
    pub(crate) fn pulled(&self, digest: &str) -> Option<Vec<u8>> {
        let bytes = fs::read(self.pulled_path(digest)).ok()?;
        (sha256(&bytes) == digest).then_some(bytes)
    }

    /// Keeps a pulled component, whose bytes hash to `digest`, for offline compiles.
    pub(crate) fn store_pulled(&self, digest: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.store(&self.pulled_path(digest), bytes)
    }

    fn componentized_path(&self, input_digest: &str) -> PathBuf {
        let hex = input_digest.trim_start_matches("sha256:");
        self.dir.join("componentized").join(format!("{hex}.wasm"))
    }

    /// The component made earlier from the core module with this digest, if its bytes are intact.
    pub(crate) fn componentized(
        &self,
        input_digest: &str,
        output_digest_check: impl Fn(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let bytes = fs::read(self.componentized_path(input_digest)).ok()?;
        output_digest_check(&bytes).then_some(bytes)
    }

    /// Keeps the component made from the core module with this digest.
    pub(crate) fn store_componentized(
        &self,
        input_digest: &str,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        self.store(&self.componentized_path(input_digest), bytes)
    }

    fn composed_path(&self, key: &str, extension: &str) -> PathBuf {
        self.dir
            .join("composed")
            .join(format!("{}.{extension}", key.trim_start_matches("sha256:")))
    }

    /// A composition built earlier from the recipe with this key, if its bytes still hash to
    /// the digest stored with them. Hashing is ~15× cheaper than validating the component
    /// again, and the entry was valid when it was stored.
    pub fn composed(&self, key: &str) -> Option<Composed> {
        let meta = fs::read(self.composed_path(key, "json")).ok()?;
        let meta: ComposedMeta = serde_json::from_slice(&meta).ok()?;
        let bytes = fs::read(self.composed_path(key, "wasm")).ok()?;
        (sha256(&bytes) == meta.digest).then_some(Composed {
            bytes,
            digest: meta.digest,
            imports: meta.imports,
            exports: meta.exports,
            core_instances: meta.core_instances,
        })
    }

    /// Keeps a composition for later runs; a cache that cannot be written only costs time. The
    /// bytes go first and the description last, so an entry is complete or absent.
    pub fn store_composed(&self, key: &str, composed: &Composed) {
        let meta = ComposedMeta {
            digest: composed.digest.clone(),
            imports: composed.imports.clone(),
            exports: composed.exports.clone(),
            core_instances: composed.core_instances,
        };
        let meta = serde_json::to_vec(&meta).expect("the description serializes");
        let _ = self
            .store(&self.composed_path(key, "wasm"), &composed.bytes)
            .and_then(|()| self.store(&self.composed_path(key, "json"), &meta));
    }

    /// Stores bytes atomically: written to a temp file beside the target, then renamed, so a
    /// reader never sees half a file.
    /// A failure is remembered for [`Cache::write_failure`].
    fn store(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(&self.dir);
        let written = fs::create_dir_all(dir)
            .map_err(|e| (dir.to_owned(), e))
            .and_then(|()| {
                let mut tmp =
                    tempfile::NamedTempFile::new_in(dir).map_err(|e| (dir.to_owned(), e))?;
                tmp.write_all(bytes)
                    .map_err(|e| (tmp.path().to_owned(), e))?;
                tmp.persist(path).map_err(|e| (path.to_owned(), e.error))?;
                Ok(())
            });
        written.map_err(|(at, e)| {
            let _ = self.failed.set((at, e.to_string()));
            e
        })
    }
}

/// A composed component and what the plan says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    /// The component.
    pub bytes: Vec<u8>,
    /// `sha256:` of `bytes`.
    pub digest: String,
    /// Its imports.
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
    /// Core instances one instantiation takes (`build::compose::core_instances`).
    pub core_instances: u32,
}

/// The description stored beside a cached composition.
#[derive(serde::Serialize, serde::Deserialize)]
struct ComposedMeta {
    digest: String,
    imports: Vec<String>,
    exports: Vec<String>,
    core_instances: u32,
}
