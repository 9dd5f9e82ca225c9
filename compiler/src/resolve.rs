//! Stage `resolve`: every step's component reference → verified component bytes.
//!
//! Bytes come from a [`Fetch`]: [`RepoFiles`] reads repo paths and pulls `oci://` references by
//! digest ([`crate::pull`], through the [`Cache`], so a pulled component needs the network only
//! once). They must hash to the step's `digest:`, and must be WebAssembly: a component, or a core
//! module with embedded component-type metadata (a `wit-bindgen` build), which is componentized
//! deterministically and kept in the content-addressed [`Cache`]. Then the contract and the
//! capability policy are checked on the component's own types ([`crate::contract`]), before
//! anything is composed with it.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::contract::{self, ContractReport};
use crate::diag::{Code, Diagnostic};
use crate::load::Repo;
use crate::model::Grant;
use crate::registry;

/// Largest component accepted, in bytes.
pub const MAX_COMPONENT_BYTES: u64 = 32 * 1024 * 1024;

/// Why a component could not be resolved.
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

/// Where component bytes come from.
pub trait Fetch {
    /// The bytes of `reference` (a repo path or `oci://…`), at most `limit` + 1 of them.
    /// `expected` is the digest they must have: a puller checks it before downloading and keys
    /// its cache by it.
    fn fetch(&self, reference: &str, expected: &str, limit: u64) -> Result<Vec<u8>, ResolveError>;
}

/// Fetches repo-relative paths from a repo directory, and pulls `oci://` references
/// ([`crate::pull::pull`]).
pub struct RepoFiles<'a> {
    /// The repo root.
    pub root: &'a Path,
    /// Pulled OCI components, by the digest of their bytes; `None` pulls into memory only.
    pub cache: Option<&'a Cache>,
}

impl Fetch for RepoFiles<'_> {
    fn fetch(&self, reference: &str, expected: &str, limit: u64) -> Result<Vec<u8>, ResolveError> {
        if reference.starts_with("oci://") {
            return crate::pull::pull(reference, expected, limit, self.cache);
        }
        read_limited(&self.root.join(reference), reference, limit)
    }
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
    fn componentized(
        &self,
        input_digest: &str,
        output_digest_check: impl Fn(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let bytes = fs::read(self.componentized_path(input_digest)).ok()?;
        output_digest_check(&bytes).then_some(bytes)
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
        })
    }

    /// Keeps a composition for later runs; a cache that cannot be written only costs time. The
    /// bytes go first and the description last, so an entry is complete or absent.
    pub fn store_composed(&self, key: &str, composed: &Composed) {
        let meta = ComposedMeta {
            digest: composed.digest.clone(),
            imports: composed.imports.clone(),
            exports: composed.exports.clone(),
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
}

/// The description stored beside a cached composition.
#[derive(serde::Serialize, serde::Deserialize)]
struct ComposedMeta {
    digest: String,
    imports: Vec<String>,
    exports: Vec<String>,
}

/// What a component reference was as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A component already.
    Component,
    /// A core module with component-type metadata, componentized by etl.
    CoreModule,
}

/// A resolved customer component.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Digest of the bytes as given (what `digest:` pins).
    pub digest: String,
    /// What the bytes were.
    pub origin: Origin,
    /// The component (the input itself, or the componentized module).
    pub component: Vec<u8>,
    /// Digest of [`Resolved::component`].
    pub component_digest: String,
    /// The contract check.
    pub contract: ContractReport,
}

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Fetches, verifies and componentizes one component, then checks it against the contract.
pub fn resolve(
    reference: &str,
    expected: &str,
    fetch: &dyn Fetch,
    cache: Option<&Cache>,
) -> Result<Resolved, ResolveError> {
    let bytes = fetch.fetch(reference, expected, MAX_COMPONENT_BYTES)?;
    let bytes = check_pinned(reference, expected, bytes)?;
    prepare_digested(reference, bytes, expected.to_owned(), cache)
}

/// What is checked of a component's bytes before anything is built from them: at most
/// [`MAX_COMPONENT_BYTES`] and hashing to `expected` (the Wasm header is [`prepare_digested`]'s),
/// each problem one error, in that order.
fn check_pinned(reference: &str, expected: &str, bytes: Vec<u8>) -> Result<Vec<u8>, ResolveError> {
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

/// Classifies, componentizes and validates bytes, then checks them against the contract.
pub fn prepare(
    reference: &str,
    bytes: Vec<u8>,
    cache: Option<&Cache>,
) -> Result<Resolved, ResolveError> {
    let digest = sha256(&bytes);
    prepare_digested(reference, bytes, digest, cache)
}

/// [`prepare`] of bytes already known to hash to `digest`.
fn prepare_digested(
    reference: &str,
    bytes: Vec<u8>,
    digest: String,
    cache: Option<&Cache>,
) -> Result<Resolved, ResolveError> {
    check_header(reference, &bytes)?;
    let (origin, component) = if wasmparser::Parser::is_component(&bytes) {
        (Origin::Component, bytes)
    } else {
        (
            Origin::CoreModule,
            componentize(reference, &digest, &bytes, cache)?,
        )
    };
    let invalid = |reason: String| ResolveError::Invalid {
        reference: reference.to_owned(),
        reason,
    };
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&component)
        .map_err(|e| invalid(e.to_string()))?;
    let contract = contract::check(&component).map_err(invalid)?;
    let component_digest = sha256(&component);
    Ok(Resolved {
        digest,
        origin,
        component,
        component_digest,
        contract,
    })
}

/// Component bytes `validate` has read and checked (size, digest, Wasm header), by reference and pinned
/// digest, so [`resolve_repo`] neither reads nor hashes them again.
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

    fn take(&mut self, reference: &str, digest: &str) -> Option<Vec<u8>> {
        self.0.remove(&(reference.to_owned(), digest.to_owned()))
    }
}

/// Makes a component of a core module with component-type metadata; the same module always
/// gives the same bytes, so the result is cached by the module's digest.
fn componentize(
    reference: &str,
    digest: &str,
    module: &[u8],
    cache: Option<&Cache>,
) -> Result<Vec<u8>, ResolveError> {
    let has_metadata = wasmparser::Parser::new(0).parse_all(module).any(|payload| {
        matches!(payload, Ok(wasmparser::Payload::CustomSection(s)) if s.name().starts_with("component-type"))
    });
    if !has_metadata {
        return Err(ResolveError::NoMetadata {
            reference: reference.to_owned(),
        });
    }
    let valid = |bytes: &[u8]| {
        wasmparser::Parser::is_component(bytes)
            && wasmparser::Validator::new().validate_all(bytes).is_ok()
    };
    if let Some(bytes) = cache.and_then(|c| c.componentized(digest, valid)) {
        return Ok(bytes);
    }
    let component = wit_component::ComponentEncoder::default()
        .module(module)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| ResolveError::Invalid {
            reference: reference.to_owned(),
            reason: format!("{e:#}"),
        })?;
    if let Some(cache) = cache {
        // A cache that cannot be written only costs time later.
        let _ = cache.store(&cache.componentized_path(digest), &component);
    }
    Ok(component)
}

/// One resolved step of a pipeline.
#[derive(Debug, Clone)]
pub struct ResolvedStep {
    /// Pipeline name.
    pub pipeline: String,
    /// Step name.
    pub step: String,
    /// The component.
    pub resolved: Resolved,
}

/// Resolves every step of every loaded pipeline and checks contract and policy. Each problem is
/// a diagnostic at the step's `component:` (or `digest:`); identical references are resolved
/// once, and bytes in `verified` (read by `validate`) are not read again.
pub fn resolve_repo(
    repo: &Repo,
    mut verified: Verified,
    cache: Option<&Cache>,
) -> (Vec<ResolvedStep>, Vec<Diagnostic>) {
    let fetch = RepoFiles {
        root: &repo.root,
        cache,
    };
    let project_grants: Vec<&Grant> = repo
        .project
        .iter()
        .flat_map(|p| &p.spec.spec.policy.allow)
        .collect();
    let mut done: HashMap<(String, String), Result<Resolved, ResolveError>> = HashMap::new();
    let mut steps = Vec::new();
    let mut out = Vec::new();
    for p in &repo.pipelines {
        for (i, step) in p.spec.spec.steps.iter().enumerate() {
            let at = p.span(&format!("/spec/steps/{i}/component"));
            let key = (step.component.clone(), step.digest.to_string());
            let resolved = match done.entry(key).or_insert_with(|| {
                match verified.take(&step.component, &step.digest) {
                    Some(bytes) => {
                        prepare_digested(&step.component, bytes, step.digest.to_string(), cache)
                    }
                    None => resolve(&step.component, &step.digest, &fetch, cache),
                }
            }) {
                Ok(r) => r.clone(),
                Err(e) => {
                    let digest_at = p.span(&format!("/spec/steps/{i}/digest"));
                    out.push(resolve_diagnostic(&p.file, at, digest_at, &step.name, e));
                    continue;
                }
            };
            let granted: Vec<&Grant> = project_grants.iter().copied().chain(&step.allow).collect();
            out.extend(contract_diagnostics(
                &p.file,
                at,
                &step.name,
                &resolved.contract,
                &granted,
            ));
            steps.push(ResolvedStep {
                pipeline: p.spec.metadata.name.to_string(),
                step: step.name.to_string(),
                resolved,
            });
        }
    }
    (steps, out)
}

/// The diagnostic of a step whose component did not resolve: at its `digest:` (`digest_at`) when
/// bytes at hand hash to another digest than it pins, else at its `component:` (`at`).
pub(crate) fn resolve_diagnostic(
    file: &str,
    at: crate::diag::Span,
    digest_at: crate::diag::Span,
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

fn contract_diagnostics(
    file: &str,
    at: crate::diag::Span,
    step: &str,
    report: &ContractReport,
    granted: &[&Grant],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if report.missing_transform {
        out.push(
            Diagnostic::new(
                Code::ContractExport,
                format!(
                    "the component of step `{step}` does not export `{}`",
                    contract::TRANSFORM_EXPORT
                ),
            )
            .at(file, at)
            .label("no transform export")
            .expected(
                "a component of the world `etl:pipeline/transformer@0.1.0` (wit/etl-pipeline)",
            )
            .note(format!(
                "it exports: {}",
                crate::diag::quoted_list(&report.exports)
            )),
        );
    }
    for (name, reason) in &report.mismatched {
        out.push(
            Diagnostic::new(
                Code::ContractType,
                format!(
                    "the component of step `{step}` has other types for `{name}` than the contract"
                ),
            )
            .at(file, at)
            .label("types differ")
            .expected("exactly the types of wit/etl-pipeline (names of fields and cases included)")
            .note(reason.clone())
            .help("regenerate the bindings from wit/etl-pipeline/pipeline.wit and rebuild"),
        );
    }
    let forbidden = contract::forbidden(&report.extra_imports, granted);
    if !forbidden.is_empty() {
        let mut d = Diagnostic::new(
            Code::ForbiddenImport,
            format!("the component of step `{step}` imports {} the policy does not grant", plural(forbidden.len(), "interface")),
        )
        .at(file, at)
        .label("ungranted imports")
        .expected("imports of `etl:pipeline/types`, `etl:pipeline/config` and what `policy.allow` or the step's `allow` grants");
        for import in &forbidden {
            d = d.note(format!("imports `{import}`"));
        }
        d = if contract::looks_like_wasip2_std(&forbidden) {
            d.help("this looks like a Rust std build for wasm32-wasip2: build for wasm32-unknown-unknown with wit-bindgen, which imports nothing")
        } else {
            d.help(format!(
                "remove the import, or grant it with `allow: [{}]` on the step (or `policy.allow` in etl.yaml)",
                forbidden[0].split('@').next().unwrap_or(forbidden[0])
            ))
        };
        out.push(d);
    }
    out
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
