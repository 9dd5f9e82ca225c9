//! `etl compile`: validate → build (with wascap claims, given an account key) → sign → `dist/`.
//!
//! `dist/plan.json` says what was built from what; `dist/components/sha256/<hex>.wasm` holds each
//! composed component once, by digest (identical compositions are shared). Nothing is written
//! unless the whole compile succeeds, and then `dist/` is replaced in one rename — only when it is
//! new, empty or an earlier output ([`OutputDir`]).

use std::path::{Path, PathBuf};

use crate::build::dist::Plan;
use crate::build::provenance::{self, ProvenanceError};
use crate::diag::{Code, Diagnostic};
use crate::oci::claims::AccountKey;
use crate::oci::layout::Provenance;
use crate::oci::sign::{self, SigningKey};
use crate::spec::{self, Validation};
use crate::store::Cache;
use crate::util::out_dir::{OutputDir, OutputError};

/// Why a compile could not run or write its output (the repo's own problems are diagnostics).
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The repo cannot be read.
    #[error(transparent)]
    Repo(#[from] spec::Error),
    /// The output could not be written without losing the user's files, or failed to be.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Where to write and what to reuse.
#[derive(Debug, Clone)]
pub struct Options {
    /// The output directory (`dist`): see [`crate::util::out_dir::OutputDir::for_compile`] for what
    /// it may be.
    pub out: PathBuf,
    /// Cache of pulled components, componentized modules and compositions; `None` builds
    /// everything (and pulls into memory).
    pub cache: Option<Cache>,
    /// Commit, source and time recorded in `plan.json` (never in the artifacts).
    pub provenance: Provenance,
}

/// The outcome: diagnostics, and the plan when the compile succeeded and `dist/` was written.
#[derive(Debug)]
pub struct Compilation {
    /// Validation (and its sources, for rendering) with every diagnostic of every stage.
    pub validation: Validation,
    /// The plan written, if any.
    pub plan: Option<Plan>,
    /// Compositions built in this run.
    pub built: usize,
    /// Compositions taken from the cache (0 without one).
    pub from_cache: usize,
}

/// The keys a compile signs with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keys<'a> {
    /// Signs every artifact of `dist/oci/` (cosign, `--sign-key`).
    pub sign: Option<&'a SigningKey>,
    /// Issues the wascap claims embedded in every wasmCloud 1.x artifact (`--claims-key`).
    pub claims: Option<&'a AccountKey>,
}

/// Compiles the repo at `root` into `options.out`, with neither key.
pub fn compile(root: &Path, options: &Options) -> Result<Compilation, CompileError> {
    compile_signed(root, options, Keys::default())
}

/// [`compile`], with the claims of `keys.claims` embedded in every wasmCloud 1.x artifact (see
/// [`crate::build::claims`]; without it, a warning for each unit whose secrets 1.x hosts will
/// therefore not fetch), and every artifact of `dist/oci/` signed with `keys.sign` (see
/// [`crate::oci::sign::sign_layout`]) before anything is written.
pub fn compile_signed(
    root: &Path,
    options: &Options,
    keys: Keys<'_>,
) -> Result<Compilation, CompileError> {
    // Before the work: a place that cannot be written is known now.
    let out = OutputDir::for_compile(&options.out, root)?;
    if let Some(cache) = &options.cache {
        out.check_cache(cache.dir())?;
    }
    let mut build = crate::build::build_with(
        root,
        options.cache.as_ref(),
        &options.provenance,
        keys.claims,
    )?;
    if let Some(plan) = &build.plan {
        let warnings = crate::build::claims::unclaimed_secrets(&build.validation.repo, plan);
        build.validation.diagnostics.extend(warnings);
        crate::diag::sort(&mut build.validation.diagnostics);
    }
    if let (Some(key), Some(plan)) = (keys.sign, &build.plan)
        && let Err(e) = sign::sign_layout(&mut build.files, "oci/", key, &plan.registry)
    {
        build.validation.diagnostics.push(Diagnostic::new(
            Code::Emit,
            format!("the OCI layout cannot be signed: {e}"),
        ));
        build.plan = None;
    }
    if build.plan.is_some() {
        out.write(&build.files)?;
    }
    Ok(Compilation {
        validation: build.validation,
        plan: build.plan,
        built: build.built,
        from_cache: build.from_cache,
    })
}

/// Where a compile comes from, as `plan.json` will record it.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Commit, time and source.
    pub provenance: Provenance,
    /// The repo is a git work tree with uncommitted changes (outside what etl writes), so no
    /// commit is recorded.
    pub uncommitted: bool,
}

/// The provenance of compiling `repo` into `out` with `cache`: its commit (what etl writes there
/// is never a change of the inputs), that commit's time or `source_date_epoch`, and `source`.
pub fn origin(
    repo: &Path,
    out: &Path,
    cache: Option<&Cache>,
    source_date_epoch: Option<&str>,
    source: Option<String>,
) -> Result<Origin, ProvenanceError> {
    let written: Vec<&Path> = std::iter::once(out).chain(cache.map(Cache::dir)).collect();
    let provenance = provenance::discover(repo, &written, source_date_epoch, source)?;
    let uncommitted = provenance.revision.is_none() && provenance::is_dirty(repo, &written);
    Ok(Origin {
        provenance,
        uncommitted,
    })
}
