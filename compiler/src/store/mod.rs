//! Component bytes by digest: read from the repo with a size limit or pulled from an OCI
//! registry ([`fetch`], [`pull`]), kept in the content-addressed [`Cache`], and checked before
//! anything is built from them (size, digest, Wasm header). `validate` and `build` both take
//! their bytes from here.

pub mod cache;
pub mod fetch;
pub mod pull;

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::Path;

pub use cache::{Cache, Composed};

use crate::diag::{Code, Diagnostic, Span};
use crate::oci::registry;
use crate::util::digest::sha256;

/// Largest component accepted, in bytes.
pub const MAX_COMPONENT_BYTES: u64 = 32 * 1024 * 1024;

/// Why a component's bytes could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The bytes could not be read.
    #[error("cannot read `{reference}`: {source}")]
    Read {
        /// The component reference.
        reference: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The reference names nothing this resolver can fetch.
    #[error("`{reference}` cannot be fetched: {reason}")]
    Unavailable {
        /// The component reference.
        reference: String,
        /// Why.
        reason: String,
    },
    /// Larger than [`MAX_COMPONENT_BYTES`].
    #[error("`{reference}` is {size} bytes; a component may have at most {MAX_COMPONENT_BYTES}")]
    TooLarge {
        /// The component reference.
        reference: String,
        /// Its size.
        size: u64,
    },
    /// The bytes hash to another digest than the spec pins; for an `oci://` reference, the
    /// artifact's layer is another one (found before downloading it).
    #[error(
        "`{reference}` {} {actual}, but `digest:` pins {expected}",
        if *.layer { "is an artifact whose layer is" } else { "hashes to" }
    )]
    DigestMismatch {
        /// The component reference.
        reference: String,
        /// The pinned digest.
        expected: String,
        /// The digest of the bytes, or of the layer the artifact's manifest names.
        actual: String,
        /// Whether `actual` is the digest the artifact's manifest gives its layer.
        layer: bool,
    },
    /// Not WebAssembly at all.
    #[error("`{reference}` is not WebAssembly (it starts with {start})")]
    NotWasm {
        /// The component reference.
        reference: String,
        /// The first bytes, as text.
        start: String,
    },
    /// A core module that says nothing of its component type.
    #[error("`{reference}` is a core module without component-type metadata")]
    NoMetadata {
        /// The component reference.
        reference: String,
    },
    /// Pulling an `oci://` reference failed; the registry error names the registry.
    #[error("cannot pull `{reference}`: {source}")]
    Registry {
        /// The component reference.
        reference: String,
        /// The cause.
        source: registry::Error,
    },
    /// Componentizing or validating failed.
    #[error("`{reference}` is not a valid component: {reason}")]
    Invalid {
        /// The component reference.
        reference: String,
        /// What the encoder or validator said.
        reason: String,
    },
}

/// The bytes of the file at `path` (the component `reference`), at most `limit + 1` of them, so
/// that a caller can tell a file over `limit` without reading all of it.
pub(crate) fn read_limited(
    path: &Path,
    reference: &str,
    limit: u64,
) -> Result<Vec<u8>, ResolveError> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|source| ResolveError::Read {
            reference: reference.to_owned(),
            source,
        })?;
    Ok(bytes)
}

/// What is checked of a component's bytes before anything is built from them: at most
/// [`MAX_COMPONENT_BYTES`] and hashing to `expected` (the Wasm header is [`check_header`]'s),
/// each problem one error, in that order.
pub(crate) fn check_pinned(
    reference: &str,
    expected: &str,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, ResolveError> {
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(ResolveError::TooLarge {
            reference: reference.to_owned(),
            size: bytes.len() as u64,
        });
    }
    let digest = sha256(&bytes);
    if digest != expected {
        return Err(ResolveError::DigestMismatch {
            reference: reference.to_owned(),
            expected: expected.to_owned(),
            actual: digest,
            layer: false,
        });
    }
    Ok(bytes)
}

/// Whether `bytes` start with the header of a Wasm component or core module (magic and a
/// version either has).
pub fn check_header(reference: &str, bytes: &[u8]) -> Result<(), ResolveError> {
    if wasmparser::Parser::is_component(bytes) || wasmparser::Parser::is_core_wasm(bytes) {
        return Ok(());
    }
    let start: String = bytes
        .iter()
        .take(8)
        .map(|b| {
            if b.is_ascii_graphic() {
                *b as char
            } else {
                '.'
            }
        })
        .collect();
    Err(ResolveError::NotWasm {
        reference: reference.to_owned(),
        start: format!("`{start}`"),
    })
}

/// Component bytes `validate` has read and checked (size, digest, Wasm header), by reference and pinned
/// digest, so `build` neither reads nor hashes them again.
#[derive(Debug, Default)]
pub struct Verified(HashMap<(String, String), Vec<u8>>);

impl Verified {
    /// Keeps the bytes of `reference`, which hash to `digest` and are WebAssembly.
    pub(crate) fn insert(&mut self, reference: &str, digest: &str, bytes: Vec<u8>) {
        self.0
            .insert((reference.to_owned(), digest.to_owned()), bytes);
    }

    /// Whether the bytes of `reference` pinned by `digest` were checked.
    pub fn contains(&self, reference: &str, digest: &str) -> bool {
        self.0
            .contains_key(&(reference.to_owned(), digest.to_owned()))
    }

    pub(crate) fn take(&mut self, reference: &str, digest: &str) -> Option<Vec<u8>> {
        self.0.remove(&(reference.to_owned(), digest.to_owned()))
    }
}

/// The diagnostic of a step whose component did not resolve: at its `digest:` (`digest_at`) when
/// bytes at hand hash to another digest than it pins, else at its `component:` (`at`).
pub(crate) fn diagnostic(
    file: &str,
    at: Span,
    digest_at: Span,
    step: &str,
    err: &ResolveError,
) -> Diagnostic {
    let d = |code| Diagnostic::new(code, format!("step `{step}`: {err}")).at(file, at);
    match err {
        // The registry named another layer before anything was downloaded: a problem of the
        // artifact `component:` names. Else the bytes are at hand and `digest:` is what differs.
        ResolveError::DigestMismatch {
            actual,
            layer: true,
            ..
        } => d(Code::DigestMismatch)
            .label("the artifact holds other bytes than `digest:` pins")
            .related(file, digest_at, "the pinned digest")
            .expected(format!("the digest of the artifact's layer: `{actual}`"))
            .help(format!(
                "if the new component is intended, set `digest: {actual}`"
            )),
        ResolveError::DigestMismatch { actual, .. } => {
            Diagnostic::new(Code::DigestMismatch, format!("step `{step}`: {err}"))
                .at(file, digest_at)
                .label("the bytes of `component:` differ from this digest")
                .related(file, at, "the component these bytes are from")
                .expected(format!("the digest of the component's bytes: `{actual}`"))
                .help(format!(
                    "if the new component is intended, set `digest: {actual}`"
                ))
        }
        ResolveError::NotWasm { .. } => d(Code::NotWasm)
            .label("not WebAssembly")
            .expected("a Wasm component, or a core module built with wit-bindgen"),
        ResolveError::NoMetadata { .. } => d(Code::NoMetadata)
            .label("no component type")
            .expected("a component, or a core module with component-type metadata")
            .help("build it with wit-bindgen against wit/etl-pipeline (world `transformer`)"),
        ResolveError::TooLarge { .. }
        | ResolveError::Registry {
            source: registry::Error::TooLarge { .. },
            ..
        } => d(Code::ComponentTooLarge).label("too large"),
        ResolveError::Invalid { .. } => d(Code::InvalidComponent).label("invalid component"),
        ResolveError::Registry {
            source: registry::Error::DigestMismatch { .. },
            ..
        } => d(Code::DigestMismatch)
            .label("the registry serves other bytes")
            .expected("the bytes the manifest and `digest:` name")
            .help("the registry's copy is damaged or was replaced: publish the component again"),
        ResolveError::Registry { .. } => d(Code::ComponentUnavailable).label("cannot be pulled"),
        ResolveError::Read { .. } | ResolveError::Unavailable { .. } => {
            d(Code::ComponentUnavailable).label("cannot be fetched")
        }
    }
}
