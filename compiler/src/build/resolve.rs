//! Stage `resolve`: every step's component reference → a verified, componentized component,
//! checked against the contract and the capability policy.
//!
//! Bytes come from the [`crate::store`]: repo paths and `oci://` references by digest,
//! through its cache, so a pulled component needs the network only once. They must hash to the
//! step's `digest:`, and must be WebAssembly: a component, or a core module with embedded
//! component-type metadata (a `wit-bindgen` build), which is componentized deterministically and
//! kept in the content-addressed cache. Then the contract and the capability policy are checked
//! on the component's own types ([`contract`]), before anything is composed with it.

use std::collections::HashMap;

use crate::build::contract::{self, ContractReport};
use crate::diag::{Code, Diagnostic};
use crate::spec::egress;
use crate::spec::load::Repo;
use crate::spec::model::{Allow, Grant};
use crate::store::fetch::{Fetch, RepoFiles};
use crate::store::{self, Cache, MAX_COMPONENT_BYTES, ResolveError, Verified, check_header};
use crate::util::digest::sha256;

/// What a component reference was as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Fetches, verifies and componentizes one component, then checks it against the contract.
pub fn resolve(
    reference: &str,
    expected: &str,
    fetch: &dyn Fetch,
    cache: Option<&Cache>,
) -> Result<Resolved, ResolveError> {
    let bytes = fetch.fetch(reference, expected, MAX_COMPONENT_BYTES)?;
    let bytes = store::check_pinned(reference, expected, bytes)?;
    prepare_digested(reference, bytes, expected.to_owned(), cache)
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
    let contract = contract::inspect(&component).map_err(invalid)?;
    let component_digest = sha256(&component);
    Ok(Resolved {
        digest,
        origin,
        component,
        component_digest,
        contract,
    })
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
        let _ = cache.store_componentized(digest, &component);
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
    /// The hosts its outbound HTTP may reach: those of every grant (the project's, then the
    /// step's) that covers its `wasi:http/outgoing-handler` import; empty when it has none.
    pub egress: Vec<String>,
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
    let project_grants: Vec<&Allow> = repo
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
                    out.push(store::diagnostic(&p.file, at, digest_at, &step.name, e));
                    continue;
                }
            };
            let allowed: Vec<&Allow> = project_grants.iter().copied().chain(&step.allow).collect();
            let granted: Vec<&Grant> = allowed.iter().map(|a| &a.interface).collect();
            out.extend(contract_diagnostics(
                &p.file,
                at,
                &step.name,
                &resolved.contract,
                &granted,
            ));
            let mut egress: Vec<String> = Vec::new();
            for import in &resolved.contract.imports {
                for host in egress::hosts_for(allowed.iter().copied(), import) {
                    if !egress.contains(&host) {
                        egress.push(host);
                    }
                }
            }
            steps.push(ResolvedStep {
                pipeline: p.spec.metadata.name.to_string(),
                step: step.name.to_string(),
                resolved,
                egress,
            });
        }
    }
    (steps, out)
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
        } else if let Some(http) = forbidden
            .iter()
            .find(|i| i.split('@').next() == Some(crate::spec::model::OUTGOING_HANDLER))
        {
            d.help(format!(
                "grant it with the hosts the step may call: `allow: [{{interface: {}, hosts: [api.acme.example]}}]` on the step (or `policy.allow` in etl.yaml)",
                http.split('@').next().unwrap_or(http)
            ))
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
