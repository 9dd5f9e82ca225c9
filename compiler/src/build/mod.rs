//! Building: a validated repo → composed components, OCI artifacts and manifests, in memory.
//!
//! The stages, in order: [`resolve`] (customer components by digest, checked against the
//! [`contract`] and the policy) → [`compose`] (each step between its [`harness`] parts) →
//! [`deployment`] (how each pipeline runs in each environment, with its [`jetstream`] stream and
//! consumers when delivery is at least once) → [`emit`] (wadm applications and
//! v2 `WorkloadDeployment`s, and the OCI artifacts) → [`dist`] (`plan.json`) → [`bundle`] (each
//! environment's deployment bundle, packaged with the artifacts in `oci/`). [`claims`] gives
//! the 1.x artifacts their wascap claims when an account key is given; [`provenance`] finds the
//! commit a build came from. Nothing here writes a file: `etl compile` does.

pub mod bundle;
pub mod claims;
pub mod compose;
pub mod contract;
pub mod deployment;
pub mod dist;
pub mod emit;
pub mod generation;
pub mod harness;
pub mod jetstream;
pub mod provenance;
pub mod resolve;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::build::compose::Parts;
use crate::build::dist::{
    ArtifactPlan, CustomerPlan, HarnessPlan, PipelinePlan, Plan, ProvenancePlan, UnitPlan,
};
use crate::build::emit::{Application, Packaged, PackagedArtifact};
use crate::build::generation::Generation;
use crate::build::harness::Part;
use crate::build::resolve::ResolvedStep;
use crate::diag::{Code, Diagnostic};
use crate::oci::claims::{AccountKey, ClaimsError};
use crate::oci::layout::{self, Provenance};
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::{BUILTIN_PROVIDER, Pipeline, SinkConnector};
use crate::spec::{Error, Validation};
use crate::store::{Cache, Composed};
use crate::util::digest::sha256;

/// Version of the composition recipe: part of every cache key, bumped when wiring changes.
const RECIPE: &str = "etl-compose-2";

/// Everything a compile produces, in memory: what `etl compile` writes to `dist/`.
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

/// Compiles the repo at `root` in memory: the same bytes `etl compile` writes without
/// `--claims-key`.
pub fn build(root: &Path, cache: Option<&Cache>, provenance: &Provenance) -> Result<Build, Error> {
    build_with(root, cache, provenance, None)
}

/// [`build`], with the wascap claims of `claims` (an account key) embedded in every wasmCloud
/// 1.x artifact when given (see [`claims`]).
pub fn build_with(
    root: &Path,
    cache: Option<&Cache>,
    provenance: &Provenance,
    claims: Option<&AccountKey>,
) -> Result<Build, Error> {
    Ok(build_validated_with(
        crate::spec::validate_with(root, cache)?,
        cache,
        provenance,
        claims,
    ))
}

/// [`build`] of a repo already validated (`etl test PIPELINE` narrows it to some pipelines).
pub fn build_validated(
    validation: crate::spec::Validation,
    cache: Option<&Cache>,
    provenance: &Provenance,
) -> Build {
    build_validated_with(validation, cache, provenance, None)
}

/// [`build_with`] of a repo already validated.
pub fn build_validated_with(
    mut validation: crate::spec::Validation,
    cache: Option<&Cache>,
    provenance: &Provenance,
    claims: Option<&AccountKey>,
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
        project: validation
            .repo
            .project
            .as_ref()
            .map(|p| p.spec.metadata.name.to_string())
            .unwrap_or_default(),
        claims,
        msg_id: validation
            .repo
            .project
            .as_ref()
            .and_then(|p| p.spec.spec.delivery.as_ref())
            .and_then(|d| d.nats_msg_id)
            .unwrap_or(false),
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
    // A composition whose every 1.x use got its claims is not an output of its own.
    let used: BTreeSet<&str> = pipelines
        .iter()
        .flat_map(|p| p.units())
        .flat_map(|u| u.artifacts())
        .map(|(_, a)| a.path.as_str())
        .collect();
    builder.files.retain(|path, _| used.contains(path.as_str()));
    let created = match layout::rfc3339(provenance.created) {
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
    let (deployments, artifacts) = match package_and_emit(&validation.repo, &pipelines, &mut files)
    {
        Ok((deployments, warnings, artifacts)) => {
            validation.diagnostics.extend(warnings);
            crate::diag::sort(&mut validation.diagnostics);
            (deployments, artifacts)
        }
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
    match oci_layout(&plan, &artifacts, &files) {
        Ok(layout) => files.extend(layout),
        Err(e) => {
            validation.diagnostics.push(Diagnostic::new(
                Code::Emit,
                format!("the OCI layout cannot be written: {e}"),
            ));
            crate::diag::sort(&mut validation.diagnostics);
            return failed(validation, built);
        }
    }
    files.insert(dist::FILE.to_owned(), plan.to_json().into_bytes());
    Build {
        validation,
        plan: Some(plan),
        files,
        built,
        from_cache,
    }
}

/// The applications by environment and pipeline, the warnings about them, and the artifacts.
type Deployments = (
    BTreeMap<String, BTreeMap<String, Application>>,
    Vec<Diagnostic>,
    Vec<layout::Artifact>,
);

/// The files of `oci/`: the artifacts (their components from `files`, the dist files by path)
/// and the deployment bundle of every environment of `plan`.
fn oci_layout(
    plan: &Plan,
    artifacts: &[layout::Artifact],
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, Vec<u8>>, layout::OciError> {
    let wasm: BTreeMap<String, &[u8]> = plan
        .pipelines
        .iter()
        .flat_map(|p| p.units())
        .flat_map(|u| u.artifacts())
        .map(|(_, a)| (a.digest.clone(), files[&a.path].as_slice()))
        .collect();
    let bundles: Vec<(String, crate::oci::bundle::Packaged)> = bundle::bundles(plan)
        .into_iter()
        .map(|(env, b)| {
            let name = crate::oci::bundle::name(&plan.project, &env);
            let packaged = b.package(&name);
            (name, packaged)
        })
        .collect();
    let packaged: Vec<layout::Prepackaged> = bundles
        .iter()
        .map(|(name, p)| layout::Prepackaged {
            name,
            manifest: &p.manifest,
            blobs: &p.blobs,
        })
        .collect();
    let layout = layout::layout(artifacts, &wasm, &packaged)?;
    Ok(layout
        .into_iter()
        .map(|(path, bytes)| (format!("oci/{path}"), bytes))
        .collect())
}

/// Packages every composed unit as an OCI artifact, then plans every pipeline in every
/// environment and writes its manifests (`<env>/wadm/`, `<env>/k8s/`). Returns the applications
/// by environment and pipeline with the warnings about them and the artifacts, or the
/// diagnostics of what cannot be deployed.
fn package_and_emit(
    repo: &Repo,
    pipelines: &[PipelinePlan],
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<Deployments, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let mut artifacts = Vec::new();
    let mut packaged: BTreeMap<&str, BTreeMap<String, Packaged>> = BTreeMap::new();
    for p in pipelines {
        let loaded = crate::build::deployment::find_pipeline(repo, &p.name)
            .expect("planned pipelines exist");
        for unit in p.steps.iter().chain(&p.sinks) {
            let mut packaged_artifacts = Vec::new();
            for (generation, artifact) in unit.artifacts() {
                let repository = generation.repository(&p.name, &unit.name);
                let input = layout::ArtifactInput {
                    name: &repository,
                    wasm: &files[&artifact.path],
                    imports: &artifact.imports,
                    exports: &artifact.exports,
                };
                let customer = unit.customer.as_ref().map(|c| c.digest.as_str());
                match layout::artifact_of_step(&input, artifact.digest.clone(), customer) {
                    Ok(a) => {
                        packaged_artifacts.push((
                            generation,
                            PackagedArtifact {
                                repository,
                                manifest_digest: a.manifest_digest.clone(),
                                component_digest: artifact.digest.clone(),
                                imports: artifact.imports.clone(),
                                customer: customer.map(str::to_owned),
                            },
                        ));
                        artifacts.push(a);
                    }
                    Err(e) => {
                        problems.push(emit_diagnostic(loaded, Some(&unit.name), &e.to_string()))
                    }
                }
            }
            packaged.entry(p.name.as_str()).or_default().insert(
                unit.name.clone(),
                Packaged {
                    artifacts: packaged_artifacts,
                    grants: unit
                        .customer
                        .as_ref()
                        .map(|c| c.grants.clone())
                        .unwrap_or_default(),
                    egress: unit
                        .customer
                        .as_ref()
                        .map(|c| c.egress.clone())
                        .unwrap_or_default(),
                },
            );
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut out_files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut deployments: BTreeMap<String, BTreeMap<String, Application>> = BTreeMap::new();
    let mut refused: indexmap::IndexMap<(&str, Option<String>, String), Vec<&str>> =
        indexmap::IndexMap::new();
    let environments: Vec<String> = repo
        .project
        .iter()
        .flat_map(|p| p.spec.spec.environments.keys().map(|e| e.to_string()))
        .collect();
    let mut warnings = Vec::new();
    for env in &environments {
        let mut deployed = Vec::new();
        for p in pipelines {
            let loaded = crate::build::deployment::find_pipeline(repo, &p.name)
                .expect("planned pipelines exist");
            match crate::build::deployment::deploy(repo, env, &p.name) {
                Ok(d) => deployed.push((p, d)),
                Err(e) => problems.push(emit_diagnostic(loaded, None, &e.to_string())),
            }
        }
        let limits = messaging_limits(repo, env, &deployed, &mut warnings);
        for ((p, deployment), limit) in deployed.into_iter().zip(limits) {
            match emit::application(repo, &deployment, &packaged[p.name.as_str()], &limit) {
                Ok(app) => {
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
    for (env, apps) in &deployments {
        out_files.extend(dist::manifest_files(env, apps));
    }
    builtin_link_secrets(repo, &deployments, &mut warnings);
    // The same problem in every environment is one diagnostic naming them.
    for ((pipeline, unit, message), envs) in refused {
        let loaded = crate::build::deployment::find_pipeline(repo, pipeline)
            .expect("planned pipelines exist");
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
    Ok((deployments, warnings, artifacts))
}

/// The [`emit::MessagingLimit`] of each pipeline of environment `env` (deployed as
/// `deployed`), sized on the pipeline's own steps, so that adding a pipeline never changes
/// another's manifests; a warning in `warnings` for each pipeline whose steps alone can exhaust
/// the v2 hosts' instance pool.
fn messaging_limits(
    repo: &Repo,
    env: &str,
    deployed: &[(&PipelinePlan, crate::build::deployment::Deployment)],
    warnings: &mut Vec<Diagnostic>,
) -> Vec<emit::MessagingLimit> {
    let project = repo.project.as_ref().expect("planned repos have a project");
    let environment = emit::planned_environment(repo, env);
    let mut limits = Vec::new();
    for (p, d) in deployed {
        let demand = d
            .units
            .iter()
            .filter(|u| !u.subscriptions.is_empty())
            .filter_map(|u| {
                let a = p.unit(&u.name)?.artifact_v2.as_ref()?;
                let scale = emit::scale(repo, env, &p.name, &u.name);
                Some(a.core_instances * scale.replicas_per_host())
            })
            .sum();
        let limit = emit::MessagingLimit::new(environment, demand);
        if limit.taken() > u64::from(limit.budget) {
            let key = if environment.max_in_flight.is_some() {
                "maxInFlight"
            } else {
                "coreInstances"
            };
            let fits = limit.budget / limit.demand.max(1);
            let advice = if fits == 0 {
                "raise the hosts' pool (`wash host --core-instances`) and `coreInstances` with it"
                    .to_owned()
            } else {
                format!(
                    "`maxInFlight: {fits}` fits, or raise the hosts' pool (`wash host \
                     --core-instances`) and `coreInstances` with it"
                )
            };
            warnings.push(
                Diagnostic::new(
                    Code::InstancePool,
                    format!(
                        "pipeline `{}` in environment `{env}`: with every message in flight, its \
                         steps fed over messaging take {} core instances of a wasmCloud v2 host, \
                         more than the {} (two thirds of its pool) a host leaves for messaging; \
                         when the pool runs out, the host drops messages",
                        p.name,
                        limit.taken(),
                        limit.budget
                    ),
                )
                .at(
                    &project.file,
                    project.span(&format!("/spec/environments/{env}/{key}")),
                )
                .label("sized here")
                .note(format!(
                    "its steps take {} core instances per message in flight: {advice}",
                    limit.demand
                )),
            );
        }
        limits.push(limit);
    }
    limits
}

/// A diagnostic for a pipeline that cannot be deployed, at the unit it names (or the pipeline).
/// A warning for each connector secret that goes to a link of a wasmCloud 1.x built-in provider
/// (`wasmcloud+builtin://…`): the host fetches a link's secrets with the provider's claims, and a
/// built-in provider has none, so the secret would reach nothing. Once per setting, naming the
/// environments.
fn builtin_link_secrets(
    repo: &Repo,
    deployments: &BTreeMap<String, BTreeMap<String, Application>>,
    warnings: &mut Vec<Diagnostic>,
) {
    let mut found: BTreeMap<(&str, &str, &str, &str), Vec<&str>> = BTreeMap::new();
    for (env, apps) in deployments {
        for (pipeline, app) in apps {
            for link in &app.links {
                let builtin = app
                    .providers
                    .iter()
                    .any(|p| p.name == link.provider && p.image.starts_with(BUILTIN_PROVIDER));
                for secret in link.secrets.iter().filter(|_| builtin) {
                    found
                        .entry((
                            pipeline.as_str(),
                            link.component.as_str(),
                            secret.name.as_str(),
                            link.provider.as_str(),
                        ))
                        .or_default()
                        .push(env.as_str());
                }
            }
        }
    }
    for ((pipeline, unit, setting, provider), envs) in found {
        let loaded = crate::build::deployment::find_pipeline(repo, pipeline)
            .expect("planned pipelines exist");
        let spec = &loaded.spec.spec;
        let pointer = match spec.sinks.iter().position(|s| *s.name == *unit) {
            Some(i) if spec.sinks[i].with.contains_key(setting) => {
                format!("/spec/sinks/{i}/with/{setting}")
            }
            _ => format!("/spec/source/with/{setting}"),
        };
        let envs: Vec<String> = envs.iter().map(|e| format!("`{e}`")).collect();
        warnings.push(
            Diagnostic::new(
                Code::BuiltinProviderSecret,
                format!(
                    "the secret `{setting}` goes to the `{provider}` provider's link, and a built-in provider gets no secrets (environments {})",
                    envs.join(", ")
                ),
            )
            .at(&loaded.file, loaded.span(&pointer))
            .label("reaches nothing on wasmCloud 1.x")
            .note("a 1.x host fetches a link's secrets with the provider's claims; `wasmcloud+builtin://` providers have none")
            .help(format!(
                "pin the provider's OCI image in `spec.providers.{provider}` (e.g. ghcr.io/wasmcloud/{provider}:<version>@sha256:<digest>)"
            )),
        );
    }
}

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
        api_version: crate::spec::model::API_VERSION.to_owned(),
        kind: dist::KIND.to_owned(),
        project: project
            .map(|p| p.metadata.name.to_string())
            .unwrap_or_default(),
        registry: project.map(|p| p.spec.registry.clone()).unwrap_or_default(),
        inputs,
        harness: Part::ALL
            .iter()
            .map(|p| (p.name().to_owned(), p.digest()))
            .collect(),
        pipelines,
        provenance,
        deployments,
    }
}

/// The entry parts of a unit that reads `from`: http for the http source, messaging for
/// everything that arrives over a subject (steps, nats and kafka sources) and for every step,
/// which also listens on its replay subject (`replay`: the unit is a step).
fn inbound_parts(p: &Pipeline, from: &[String], replay: bool) -> Vec<Part> {
    let http = from.iter().any(|f| p.spec.is_http_source(f));
    let messaging = replay || from.iter().any(|f| !p.spec.is_http_source(f));
    [(http, Part::InHttp), (messaging, Part::InMessaging)]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, part)| part)
        .collect()
}

/// Composes units, each distinct recipe once per run (and once ever, with a cache).
struct Builder<'a> {
    cache: Option<&'a Cache>,
    /// The project's name: part of each unit's claims identity.
    project: String,
    /// The account whose claims every 1.x artifact gets, if any.
    claims: Option<&'a AccountKey>,
    /// Whether the 1.x artifacts that publish over NATS get the `msg-id` part (the project's
    /// `delivery.nats_msg_id`).
    msg_id: bool,
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
            let step_resolved = resolved
                .iter()
                .find(|r| r.pipeline == *spec.metadata.name && r.step == *step.name)
                .expect("every step of a loaded pipeline was resolved");
            let r = &step_resolved.resolved;
            let inbound = inbound_parts(spec, &step.from, true);
            // The guard goes wherever the customer calls out: the policy check passed, so its
            // import of `wasi:http/outgoing-handler` is granted with hosts.
            let egress = r
                .contract
                .imports
                .iter()
                .any(|i| i.split('@').next() == Some(compose::OUTGOING_HANDLER))
                .then_some(Part::Egress);
            let at = p.span(&format!("/spec/steps/{i}/component"));
            let [artifact, artifact_v2] = Generation::ALL.map(|generation| {
                self.build(
                    &r.component,
                    &r.component_digest,
                    &inbound,
                    Part::OutMessaging,
                    egress,
                    generation,
                )
                .map_err(|e| Box::new(Self::compose_diagnostic(&p.file, at, &step.name, &e)))
            });
            let artifact = self
                .claim(artifact?, &spec.metadata.name, &step.name)
                .map_err(|e| Box::new(Self::claims_diagnostic(&p.file, at, &step.name, &e)))?;
            let artifact_v2 = artifact_v2?;
            for (generation, a) in [(Generation::V1, &artifact), (Generation::V2, &artifact_v2)] {
                if let Some(import) = a.imports.iter().find(|i| !generation.serves(i)) {
                    return Err(Box::new(
                        Diagnostic::new(
                            Code::UnservedImport,
                            format!(
                                "`{}` imports `{import}`, which {generation} hosts do not serve: \
                                 they would refuse to start it",
                                step.name
                            ),
                        )
                        .at(&p.file, at)
                        .label("its customer component imports it")
                        .note(format!(
                            "of `wasi:config` and `wasmcloud:secrets`, {generation} hosts serve \
                             {}; the customer's own settings, secret ones too, come through \
                             `etl:pipeline/config`, which every generation serves",
                            crate::diag::quoted_list(generation.served())
                        )),
                    ));
                }
            }
            steps.push(UnitPlan {
                name: step.name.to_string(),
                from: step.from.clone(),
                customer: Some(CustomerPlan {
                    component: step.component.clone(),
                    digest: r.digest.clone(),
                    origin: r.origin,
                    component_digest: r.component_digest.clone(),
                    grants: r.contract.extra_imports.clone(),
                    egress: step_resolved.egress.clone(),
                }),
                harness: HarnessPlan {
                    inbound: inbound.iter().map(|p| p.name().to_owned()).collect(),
                    out: Part::OutMessaging.name().to_owned(),
                    egress: egress.map(|p| p.name().to_owned()),
                    msg_id: self
                        .msg_id_part(Part::OutMessaging, Generation::V1)
                        .map(|p| p.name().to_owned()),
                },
                artifact,
                artifact_v2: Some(artifact_v2),
            });
        }
        let mut sinks = Vec::new();
        for (i, sink) in spec.spec.sinks.iter().enumerate() {
            let out = match sink.connector {
                SinkConnector::Http => Part::OutHttp,
                SinkConnector::S3 => Part::OutBlobstore,
                SinkConnector::Nats | SinkConnector::Kafka => Part::OutMessaging,
            };
            let inbound = inbound_parts(spec, &sink.from, false);
            let at = p.span(&format!("/spec/sinks/{i}/connector"));
            let [artifact, artifact_v2] = Generation::ALL.map(|generation| {
                self.build(
                    Part::Identity.bytes(),
                    &Part::Identity.digest(),
                    &inbound,
                    out,
                    None,
                    generation,
                )
                .map_err(|e| Box::new(Self::compose_diagnostic(&p.file, at, &sink.name, &e)))
            });
            let artifact = self
                .claim(artifact?, &spec.metadata.name, &sink.name)
                .map_err(|e| Box::new(Self::claims_diagnostic(&p.file, at, &sink.name, &e)))?;
            sinks.push(UnitPlan {
                name: sink.name.to_string(),
                from: sink.from.clone(),
                customer: None,
                harness: HarnessPlan {
                    inbound: inbound.iter().map(|p| p.name().to_owned()).collect(),
                    out: out.name().to_owned(),
                    egress: None,
                    msg_id: self
                        .msg_id_part(out, Generation::V1)
                        .map(|p| p.name().to_owned()),
                },
                artifact,
                artifact_v2: Some(artifact_v2?),
            });
        }
        Ok(PipelinePlan {
            name: spec.metadata.name.to_string(),
            file: p.file.clone(),
            steps,
            sinks,
            upstream: spec.spec.source.upstream().map(|u| dist::UpstreamPlan {
                pipeline: u.pipeline.to_owned(),
                from: u.from.to_owned(),
            }),
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

    fn claims_diagnostic(
        file: &str,
        at: crate::diag::Span,
        unit: &str,
        e: &ClaimsError,
    ) -> Diagnostic {
        Diagnostic::new(
            Code::Emit,
            format!("the wasmCloud 1.x component of `{unit}` cannot get its claims: {e}"),
        )
        .at(file, at)
        .label("composed here")
        .note("the composition succeeded, so this is most likely a bug in etl: please report it")
    }

    /// The 1.x `artifact` of unit `unit` of `pipeline` with the claims of [`Self::claims`]
    /// embedded (and added to `dist/`), or as it is without an account key. Its name is the
    /// unit's 1.x repository, its identity `<project>/<pipeline>/<unit>` (see [`claims`]).
    fn claim(
        &mut self,
        artifact: ArtifactPlan,
        pipeline: &str,
        unit: &str,
    ) -> Result<ArtifactPlan, ClaimsError> {
        let Some(key) = self.claims else {
            return Ok(artifact);
        };
        let claimed = key.embed(
            &self.files[&artifact.path],
            &Generation::V1.repository(pipeline, unit),
            &claims::identity(&self.project, pipeline, unit),
        )?;
        let digest = sha256(&claimed.bytes);
        let path = format!(
            "components/sha256/{}.wasm",
            digest.trim_start_matches("sha256:")
        );
        let claimed_artifact = ArtifactPlan {
            digest,
            path: path.clone(),
            size: claimed.bytes.len(),
            claims: Some(claimed.claims),
            ..artifact
        };
        self.files.entry(path).or_insert(claimed.bytes);
        Ok(claimed_artifact)
    }

    /// The `msg-id` part of a `generation` artifact whose out part is `out`: wasmCloud 1.x units
    /// that publish over NATS, when the project sets `delivery.nats_msg_id`.
    fn msg_id_part(&self, out: Part, generation: Generation) -> Option<Part> {
        (self.msg_id && out == Part::OutMessaging && generation == Generation::V1)
            .then_some(Part::MsgId)
    }

    /// Composes (or takes from this run or the cache) one unit for `generation`, with the guard
    /// `egress` when its customer calls out (and the `msg-id` part where [`Self::msg_id_part`]
    /// says), and adds it to `dist/`. `customer_digest` is the
    /// sha256 of `customer`, already known to the caller.
    fn build(
        &mut self,
        customer: &[u8],
        customer_digest: &str,
        inbound: &[Part],
        out: Part,
        egress: Option<Part>,
        generation: Generation,
    ) -> Result<ArtifactPlan, compose::ComposeError> {
        let settings = generation.settings();
        let msg_id = self.msg_id_part(out, generation);
        let mut recipe = format!(
            "{RECIPE}\nsettings {}\ncustomer {}\nout {}\n",
            settings.digest(),
            customer_digest,
            out.digest()
        );
        for part in inbound {
            recipe.push_str(&format!("in {}\n", part.digest()));
        }
        if let Some(part) = egress {
            recipe.push_str(&format!("egress {}\n", part.digest()));
        }
        if let Some(part) = msg_id {
            recipe.push_str(&format!("msg-id {}\n", part.digest()));
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
                    settings: settings.bytes(),
                    customer,
                    outbound: out.bytes(),
                    inbound: &inbound_bytes,
                    egress: egress.map(Part::bytes),
                    msg_id: msg_id.map(Part::bytes),
                })?;
                self.built += 1;
                let (imports, exports) =
                    compose::interface_of(&bytes).map_err(compose::ComposeError::Encode)?;
                let composed = Composed {
                    digest: sha256(&bytes),
                    core_instances: compose::core_instances(&bytes)
                        .map_err(compose::ComposeError::Encode)?,
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
            core_instances,
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
            core_instances,
            claims: None,
        };
        self.files.entry(path).or_insert(bytes);
        self.done.insert(key, artifact.clone());
        Ok(artifact)
    }
}
