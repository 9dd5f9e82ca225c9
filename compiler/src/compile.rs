//! `etl compile`: validate → resolve → compose every step and sink → `dist/`.
//!
//! `dist/plan.json` says what was built from what; `dist/components/sha256/<hex>.wasm` holds each
//! composed component once, by digest (identical compositions are shared). Nothing is written
//! unless the whole compile succeeds, and then `dist/` is replaced in one rename — only when it is
//! new, empty or an earlier output ([`crate::output::OutputDir`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value as Json;

use crate::compose::{self, Parts};
use crate::diag::{Code, Diagnostic};
use crate::emit::{self, Application, Packaged};
use crate::harness::Part;
use crate::load::{Loaded, Repo};
use crate::model::{Pipeline, SinkConnector};
use crate::oci::{self, Provenance};
use crate::resolve::{self, Cache, Composed, ResolvedStep, sha256};
use crate::{Error, Validation};

/// Version of the composition recipe: part of every cache key, bumped when wiring changes.
const RECIPE: &str = "etl-compose-1";

/// Where to write and what to reuse.
#[derive(Debug, Clone)]
pub struct Options {
    /// The output directory (`dist`): see [`crate::output::OutputDir::for_compile`] for what
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

/// `dist/plan.json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Always `etl/v1alpha1`.
    pub api_version: &'static str,
    /// Always `Plan`.
    pub kind: &'static str,
    /// Project name.
    pub project: String,
    /// OCI repository prefix.
    pub registry: String,
    /// Digest of every spec file read, by path.
    pub inputs: BTreeMap<String, String>,
    /// Digest of every harness part, by name.
    pub harness: BTreeMap<&'static str, String>,
    /// One entry per pipeline, by name.
    pub pipelines: Vec<PipelinePlan>,
    /// Where this compile came from: commit, time, source.
    pub provenance: ProvenancePlan,
    /// Every pipeline as deployed to every environment: what the manifests say.
    pub deployments: BTreeMap<String, BTreeMap<String, Application>>,
}

/// Where a compile came from. Only here: the artifacts' bytes depend on what runs alone, so an
/// unchanged step keeps its digest across commits.
#[derive(Debug, Clone, Serialize)]
pub struct ProvenancePlan {
    /// RFC 3339 time: `SOURCE_DATE_EPOCH`, else the commit's time, else the Unix epoch.
    pub created: String,
    /// Where the pipeline repo lives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The pipeline repo's commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// One pipeline of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PipelinePlan {
    /// Pipeline name.
    pub name: String,
    /// Its spec file.
    pub file: String,
    /// Customer steps.
    pub steps: Vec<UnitPlan>,
    /// Sinks.
    pub sinks: Vec<UnitPlan>,
}

/// One composed component: a step or a sink.
#[derive(Debug, Clone, Serialize)]
pub struct UnitPlan {
    /// Step or sink name.
    pub name: String,
    /// What it consumes.
    pub from: Vec<String>,
    /// The customer component (steps only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerPlan>,
    /// The harness parts around it.
    pub harness: HarnessPlan,
    /// The composed artifact.
    pub artifact: ArtifactPlan,
}

/// The customer component as resolved.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerPlan {
    /// The reference as written.
    pub component: String,
    /// Digest of the bytes (`digest:`).
    pub digest: String,
    /// Component or core module.
    pub origin: resolve::Origin,
    /// Digest of the component composed (the componentized module, or the same).
    pub component_digest: String,
    /// Its imports beyond the contract, each granted by the policy: its capabilities.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
}

/// The harness parts of one composition.
#[derive(Debug, Clone, Serialize)]
pub struct HarnessPlan {
    /// Entry parts.
    #[serde(rename = "in")]
    pub inbound: Vec<&'static str>,
    /// Delivery part.
    pub out: &'static str,
}

/// A composed component.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactPlan {
    /// `sha256:` of the composed bytes.
    pub digest: String,
    /// Path under `dist/`.
    pub path: String,
    /// Size in bytes.
    pub size: usize,
    /// Its imports, which the host must provide.
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
}

/// Everything a compile produces, in memory: what [`compile`] writes to `dist/`.
#[derive(Debug)]
pub struct Build {
    /// Validation (and its sources, for rendering) with every diagnostic of every stage.
    pub validation: Validation,
    /// The plan, when the compile succeeded.
    pub plan: Option<Plan>,
    /// The files of `dist/` by relative path (`plan.json`, `components/sha256/…`); empty
    /// unless the compile succeeded.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Compositions built in this run.
    pub built: usize,
    /// Compositions taken from the cache (0 without one).
    pub from_cache: usize,
}

/// An environment name (`--env`, `--from`, `--to`) that a plan does not deploy to.
#[derive(Debug, thiserror::Error)]
#[error("the plan deploys to no environment `{name}` (it has: {known}){help}")]
pub struct UnknownEnvironment {
    /// The name given.
    pub name: String,
    /// The plan's environments.
    pub known: String,
    /// A " (did you mean …?)", if one is close.
    pub help: String,
}

/// The applications a `plan.json` (read as JSON) deploys to `env`, by pipeline.
pub fn deployments_of<'a>(
    plan: &'a Json,
    env: &str,
) -> Result<&'a serde_json::Map<String, Json>, UnknownEnvironment> {
    let deployments = plan["deployments"].as_object();
    deployments
        .and_then(|d| d.get(env))
        .and_then(Json::as_object)
        .ok_or_else(|| {
            let known: Vec<&str> = deployments
                .into_iter()
                .flatten()
                .map(|(name, _)| name.as_str())
                .collect();
            UnknownEnvironment {
                name: env.to_owned(),
                known: known.join(", "),
                help: crate::diag::did_you_mean(env, known.iter().copied())
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default(),
            }
        })
}

/// Compiles the repo at `root` into `options.out`.
pub fn compile(root: &Path, options: &Options) -> Result<Compilation, Error> {
    compile_signed(root, options, None)
}

/// [`compile`], with every artifact of `dist/oci/` signed with `key` when given (see
/// [`crate::sign::sign_layout`]) before anything is written.
pub fn compile_signed(
    root: &Path,
    options: &Options,
    key: Option<&crate::sign::SigningKey>,
) -> Result<Compilation, Error> {
    // Before the work: a place that cannot be written is known now.
    let out = crate::output::OutputDir::for_compile(&options.out, root)?;
    if let Some(cache) = &options.cache {
        out.check_cache(cache.dir())?;
    }
    let mut build = build(root, options.cache.as_ref(), &options.provenance)?;
    if let (Some(key), Some(plan)) = (key, &build.plan)
        && let Err(e) = crate::sign::sign_layout(&mut build.files, "oci/", key, &plan.registry)
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

/// Compiles the repo at `root` in memory: the same bytes [`compile`] writes.
pub fn build(root: &Path, cache: Option<&Cache>, provenance: &Provenance) -> Result<Build, Error> {
    Ok(build_validated(
        crate::validate_with(root, cache)?,
        cache,
        provenance,
    ))
}

/// [`build`] of a repo already validated (`etl test PIPELINE` narrows it to some pipelines).
pub fn build_validated(
    mut validation: crate::Validation,
    cache: Option<&Cache>,
    provenance: &Provenance,
) -> Build {
    let failed = |validation, built| Build {
        validation,
        plan: None,
        files: BTreeMap::new(),
        built,
        from_cache: 0,
    };
    if validation.has_errors() {
        return failed(validation, 0);
    }
    let verified = std::mem::take(&mut validation.components);
    let (resolved, problems) = resolve::resolve_repo(&validation.repo, verified, cache);
    validation.diagnostics.extend(problems);
    crate::diag::sort(&mut validation.diagnostics);
    if validation.has_errors() {
        return failed(validation, 0);
    }
    let mut builder = Builder {
        cache,
        files: BTreeMap::new(),
        built: 0,
        from_cache: 0,
        done: BTreeMap::new(),
    };
    let mut pipelines = Vec::new();
    for p in &validation.repo.pipelines {
        match builder.pipeline(p, &resolved) {
            Ok(plan) => pipelines.push(plan),
            Err(d) => validation.diagnostics.push(*d),
        }
    }
    let (built, from_cache) = (builder.built, builder.from_cache);
    if validation.has_errors() {
        return failed(validation, built);
    }
    let created = match oci::rfc3339(provenance.created) {
        Ok(created) => created,
        Err(e) => {
            validation.diagnostics.push(Diagnostic::new(
                Code::Emit,
                format!("the plan's provenance: {e}"),
            ));
            return failed(validation, built);
        }
    };
    let mut files = builder.files;
    let deployments = match package_and_emit(&validation.repo, &pipelines, &mut files) {
        Ok(deployments) => deployments,
        Err(problems) => {
            validation.diagnostics.extend(problems);
            crate::diag::sort(&mut validation.diagnostics);
            return failed(validation, built);
        }
    };
    let provenance = ProvenancePlan {
        created,
        source: provenance.source.clone(),
        revision: provenance.revision.clone(),
    };
    let plan = plan_of(&validation.repo, pipelines, provenance, deployments);
    files.insert(
        "plan.json".to_owned(),
        canonical_json(&serde_json::to_value(&plan).expect("the plan serializes")).into_bytes(),
    );
    Build {
        validation,
        plan: Some(plan),
        files,
        built,
        from_cache,
    }
}

/// Packages every composed unit as an OCI artifact (`oci/`), then plans every pipeline in every
/// environment and writes its manifests (`<env>/wadm/`, `<env>/k8s/`). Returns the applications
/// by environment and pipeline, or the diagnostics of what cannot be deployed.
fn package_and_emit(
    repo: &Repo,
    pipelines: &[PipelinePlan],
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, BTreeMap<String, Application>>, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let mut artifacts = Vec::new();
    let mut packaged: BTreeMap<&str, BTreeMap<String, Packaged>> = BTreeMap::new();
    for p in pipelines {
        let loaded = crate::deploy::find_pipeline(repo, &p.name).expect("planned pipelines exist");
        for unit in p.steps.iter().chain(&p.sinks) {
            let repository = format!("{}-{}", p.name, unit.name);
            let wasm = &files[&unit.artifact.path];
            let input = oci::ArtifactInput {
                name: &repository,
                wasm,
                imports: &unit.artifact.imports,
                exports: &unit.artifact.exports,
            };
            match oci::artifact(&input) {
                Ok(a) => {
                    packaged.entry(p.name.as_str()).or_default().insert(
                        unit.name.clone(),
                        Packaged {
                            repository: repository.clone(),
                            manifest_digest: a.manifest_digest.clone(),
                            component_digest: unit.artifact.digest.clone(),
                            imports: unit.artifact.imports.clone(),
                            grants: unit
                                .customer
                                .as_ref()
                                .map(|c| c.grants.clone())
                                .unwrap_or_default(),
                        },
                    );
                    artifacts.push(a);
                }
                Err(e) => problems.push(emit_diagnostic(loaded, Some(&unit.name), &e.to_string())),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let wasm: BTreeMap<String, &[u8]> = pipelines
        .iter()
        .flat_map(|p| p.steps.iter().chain(&p.sinks))
        .map(|u| {
            (
                u.artifact.digest.clone(),
                files[&u.artifact.path].as_slice(),
            )
        })
        .collect();
    let layout = oci::layout(&artifacts, &wasm).map_err(|e| {
        vec![Diagnostic::new(
            Code::Emit,
            format!("the OCI layout cannot be written: {e}"),
        )]
    })?;
    let mut out_files: BTreeMap<String, Vec<u8>> = layout
        .into_iter()
        .map(|(path, bytes)| (format!("oci/{path}"), bytes))
        .collect();
    let mut deployments: BTreeMap<String, BTreeMap<String, Application>> = BTreeMap::new();
    let mut refused: indexmap::IndexMap<(&str, Option<String>, String), Vec<&str>> =
        indexmap::IndexMap::new();
    let environments: Vec<String> = repo
        .project
        .iter()
        .flat_map(|p| p.spec.spec.environments.keys().map(|e| e.to_string()))
        .collect();
    for env in &environments {
        for p in pipelines {
            let loaded =
                crate::deploy::find_pipeline(repo, &p.name).expect("planned pipelines exist");
            let deployment = match crate::deploy::plan(repo, env, &p.name) {
                Ok(d) => d,
                Err(e) => {
                    problems.push(emit_diagnostic(loaded, None, &e.to_string()));
                    continue;
                }
            };
            match emit::application(repo, &deployment, &packaged[p.name.as_str()]) {
                Ok(app) => {
                    out_files.insert(
                        format!("{env}/wadm/{}.yaml", p.name),
                        emit::wadm::manifest(&app).into_bytes(),
                    );
                    out_files.insert(
                        format!("{env}/k8s/{}.yaml", p.name),
                        emit::k8s::manifests(&app).into_bytes(),
                    );
                    deployments
                        .entry(env.clone())
                        .or_default()
                        .insert(p.name.clone(), app);
                }
                Err(e) => refused
                    .entry((p.name.as_str(), e.unit().map(str::to_owned), e.to_string()))
                    .or_default()
                    .push(env.as_str()),
            }
        }
    }
    // The same problem in every environment is one diagnostic naming them.
    for ((pipeline, unit, message), envs) in refused {
        let loaded = crate::deploy::find_pipeline(repo, pipeline).expect("planned pipelines exist");
        let envs: Vec<String> = envs.iter().map(|e| format!("`{e}`")).collect();
        let noun = if envs.len() == 1 {
            "environment"
        } else {
            "environments"
        };
        let message = format!("{message} ({noun} {})", envs.join(", "));
        problems.push(emit_diagnostic(loaded, unit.as_deref(), &message));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    files.append(&mut out_files);
    Ok(deployments)
}

/// A diagnostic for a pipeline that cannot be deployed, at the unit it names (or the pipeline).
fn emit_diagnostic(pipeline: &Loaded<Pipeline>, unit: Option<&str>, message: &str) -> Diagnostic {
    let spec = &pipeline.spec.spec;
    let unit = unit.unwrap_or_default();
    let pointer = if *spec.source.name == *unit {
        "/spec/source/name".to_owned()
    } else if let Some(i) = spec.steps.iter().position(|s| *s.name == *unit) {
        format!("/spec/steps/{i}/name")
    } else if let Some(i) = spec.sinks.iter().position(|s| *s.name == *unit) {
        format!("/spec/sinks/{i}/name")
    } else {
        "/metadata/name".to_owned()
    };
    Diagnostic::new(Code::Emit, message.to_owned())
        .at(&pipeline.file, pipeline.span(&pointer))
        .label("cannot be deployed")
}

/// The digest of every spec file of `repo`, by path: the plan's `inputs`.
pub fn input_digests(repo: &Repo) -> BTreeMap<String, String> {
    let mut inputs = BTreeMap::new();
    let files = repo.project.iter().map(|p| p.file.as_str());
    let files = files
        .chain(repo.pipelines.iter().map(|p| p.file.as_str()))
        .chain(repo.environments.iter().map(|e| e.file.as_str()))
        .chain(repo.tests.iter().map(|t| t.file.as_str()));
    for file in files {
        if let Some(text) = repo.sources.get(file) {
            inputs.insert(file.to_owned(), sha256(text.as_bytes()));
        }
    }
    inputs
}

fn plan_of(
    repo: &Repo,
    mut pipelines: Vec<PipelinePlan>,
    provenance: ProvenancePlan,
    deployments: BTreeMap<String, BTreeMap<String, Application>>,
) -> Plan {
    pipelines.sort_by(|a, b| a.name.cmp(&b.name));
    let project = repo.project.as_ref().map(|p| &p.spec);
    let inputs = input_digests(repo);
    Plan {
        api_version: crate::model::API_VERSION,
        kind: "Plan",
        project: project
            .map(|p| p.metadata.name.to_string())
            .unwrap_or_default(),
        registry: project.map(|p| p.spec.registry.clone()).unwrap_or_default(),
        inputs,
        harness: Part::ALL.iter().map(|p| (p.name(), p.digest())).collect(),
        pipelines,
        provenance,
        deployments,
    }
}

/// The entry parts of a unit that reads `from`: http for the http source, messaging for
/// everything that arrives over a subject (steps, nats and kafka sources).
fn inbound_parts(p: &Pipeline, from: &[String]) -> Vec<Part> {
    let http = from.iter().any(|f| p.spec.is_http_source(f));
    let messaging = from.iter().any(|f| !p.spec.is_http_source(f));
    [(http, Part::InHttp), (messaging, Part::InMessaging)]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, part)| part)
        .collect()
}

/// Composes units, each distinct recipe once per run (and once ever, with a cache).
struct Builder<'a> {
    cache: Option<&'a Cache>,
    /// The files of `dist/`.
    files: BTreeMap<String, Vec<u8>>,
    /// Compositions made in this run.
    built: usize,
    /// Compositions taken from the cache.
    from_cache: usize,
    /// Artifacts by recipe key, made earlier in this run.
    done: BTreeMap<String, ArtifactPlan>,
}

impl Builder<'_> {
    fn pipeline(
        &mut self,
        p: &Loaded<Pipeline>,
        resolved: &[ResolvedStep],
    ) -> Result<PipelinePlan, Box<Diagnostic>> {
        let spec = &p.spec;
        let mut steps = Vec::new();
        for (i, step) in spec.spec.steps.iter().enumerate() {
            let r = resolved
                .iter()
                .find(|r| r.pipeline == *spec.metadata.name && r.step == *step.name)
                .map(|r| &r.resolved)
                .expect("every step of a loaded pipeline was resolved");
            let inbound = inbound_parts(spec, &step.from);
            let at = p.span(&format!("/spec/steps/{i}/component"));
            let artifact = self
                .build(
                    &r.component,
                    &r.component_digest,
                    &inbound,
                    Part::OutMessaging,
                )
                .map_err(|e| Box::new(Self::compose_diagnostic(&p.file, at, &step.name, &e)))?;
            steps.push(UnitPlan {
                name: step.name.to_string(),
                from: step.from.clone(),
                customer: Some(CustomerPlan {
                    component: step.component.clone(),
                    digest: r.digest.clone(),
                    origin: r.origin,
                    component_digest: r.component_digest.clone(),
                    grants: r.contract.extra_imports.clone(),
                }),
                harness: HarnessPlan {
                    inbound: inbound.iter().map(|p| p.name()).collect(),
                    out: Part::OutMessaging.name(),
                },
                artifact,
            });
        }
        let mut sinks = Vec::new();
        for (i, sink) in spec.spec.sinks.iter().enumerate() {
            let out = match sink.connector {
                SinkConnector::Http => Part::OutHttp,
                SinkConnector::S3 => Part::OutBlobstore,
                SinkConnector::Nats | SinkConnector::Kafka => Part::OutMessaging,
            };
            let inbound = inbound_parts(spec, &sink.from);
            let at = p.span(&format!("/spec/sinks/{i}/connector"));
            let artifact = self
                .build(
                    Part::Identity.bytes(),
                    &Part::Identity.digest(),
                    &inbound,
                    out,
                )
                .map_err(|e| Box::new(Self::compose_diagnostic(&p.file, at, &sink.name, &e)))?;
            sinks.push(UnitPlan {
                name: sink.name.to_string(),
                from: sink.from.clone(),
                customer: None,
                harness: HarnessPlan {
                    inbound: inbound.iter().map(|p| p.name()).collect(),
                    out: out.name(),
                },
                artifact,
            });
        }
        Ok(PipelinePlan {
            name: spec.metadata.name.to_string(),
            file: p.file.clone(),
            steps,
            sinks,
        })
    }

    fn compose_diagnostic(
        file: &str,
        at: crate::diag::Span,
        unit: &str,
        e: &compose::ComposeError,
    ) -> Diagnostic {
        Diagnostic::new(Code::Compose, format!("`{unit}` cannot be composed: {e}"))
            .at(file, at)
            .label("composition failed")
            .note(
                "the contract check passed, so this is most likely a bug in etl: please report it",
            )
    }

    /// Composes (or takes from this run or the cache) one unit and adds it to `dist/`.
    /// `customer_digest` is the sha256 of `customer`, already known to the caller.
    fn build(
        &mut self,
        customer: &[u8],
        customer_digest: &str,
        inbound: &[Part],
        out: Part,
    ) -> Result<ArtifactPlan, compose::ComposeError> {
        let mut recipe = format!(
            "{RECIPE}\nsettings {}\ncustomer {}\nout {}\n",
            Part::Settings.digest(),
            customer_digest,
            out.digest()
        );
        for part in inbound {
            recipe.push_str(&format!("in {}\n", part.digest()));
        }
        let key = sha256(recipe.as_bytes());
        if let Some(artifact) = self.done.get(&key) {
            return Ok(artifact.clone());
        }
        let composed = match self.cache.and_then(|c| c.composed(&key)) {
            Some(composed) => {
                self.from_cache += 1;
                composed
            }
            None => {
                let inbound_bytes: Vec<&[u8]> = inbound.iter().map(|p| p.bytes()).collect();
                let bytes = compose::compose(Parts {
                    settings: Part::Settings.bytes(),
                    customer,
                    outbound: out.bytes(),
                    inbound: &inbound_bytes,
                })?;
                self.built += 1;
                let (imports, exports) =
                    compose::interface_of(&bytes).map_err(compose::ComposeError::Encode)?;
                let composed = Composed {
                    digest: sha256(&bytes),
                    bytes,
                    imports,
                    exports,
                };
                if let Some(c) = self.cache {
                    c.store_composed(&key, &composed);
                }
                composed
            }
        };
        let Composed {
            bytes,
            digest,
            imports,
            exports,
        } = composed;
        let path = format!(
            "components/sha256/{}.wasm",
            digest.trim_start_matches("sha256:")
        );
        let artifact = ArtifactPlan {
            digest,
            path: path.clone(),
            size: bytes.len(),
            imports,
            exports,
        };
        self.files.entry(path).or_insert(bytes);
        self.done.insert(key, artifact.clone());
        Ok(artifact)
    }
}

/// JSON with object keys sorted at every level, two-space indented, ending in a newline: the
/// same value always gives the same bytes.
pub fn canonical_json(value: &Json) -> String {
    let mut text =
        serde_json::to_string_pretty(&sorted_keys(value)).expect("JSON values serialize");
    text.push('\n');
    text
}

/// The same value with the keys of every object in sorted order.
pub fn sorted_keys(value: &Json) -> Json {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Json::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted_keys(v)))
                    .collect(),
            )
        }
        Json::Array(items) => Json::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}
