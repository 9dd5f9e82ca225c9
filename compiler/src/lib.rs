//! `etl`: a GitOps compiler for ETL pipelines that run as WebAssembly components on wasmCloud.
//!
//! The library is in layers; a module uses only the layers above it in this list (a test,
//! `layering`, keeps it so):
//!
//! 1. [`util`]: digests, canonical JSON, I/O errors, writing outputs safely.
//! 2. [`diag`]: diagnostics with source positions, and their rendering.
//! 3. [`oci`]: the `layout` stage (Wasm OCI artifacts in an image layout), deployment bundles,
//!    typed OCI documents, the registry client, cosign signatures.
//! 4. [`store`]: component bytes by digest: repo files, registry pulls, the cache.
//! 5. [`spec`]: the pipeline repo: YAML, schema, the model, environments, templates; the `load`
//!    and `validate` stages.
//! 6. [`build`]: the stages after `validate`: `resolve`, `compose`, `deployment`, `emit` (which
//!    packages through `oci::layout`), `dist` (`plan.json`) and `bundle` (each environment's
//!    deployment bundle).
//! 7. [`ops`]: what each command does, over a repo or a `dist/`: compile, push, promote, verify,
//!    diff, graph, inspect, init, keygen.
//!
//! The local runtime (`etl run`, `etl test`, the only wasmtime user) is the crate `etl-run`; the
//! `etl` binary is the crate `etl-cli`, which parses arguments, calls one function here and
//! renders the result.

// Declared in layer order (one per group, so that rustfmt keeps the order).
pub mod util;

pub mod diag;

pub mod oci;

pub mod store;

pub mod spec;

pub mod build;

pub mod ops;
