//! Stage `emit`: one target-neutral [`Application`] per pipeline and environment, and the
//! manifests written from it: wadm `Application`s for wasmCloud 1.x ([`wadm`]) and
//! `WorkloadDeployment`s for wasmCloud v2 ([`k8s`]).
//!
//! An [`Application`] is built from the wiring plan ([`crate::build::deployment::Deployment`]), the
//! packaged artifacts and the project's providers, replicas and secret backend. It holds every
//! fact both targets need (components by digest, providers, links with direction and interface,
//! content-addressed configs, secrets, scaling), so the emitters only translate shapes, and a
//! pipeline deployed to two environments differs only where the environments differ.

pub mod k8s;
pub mod wadm;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::build::deployment::{Deployment, HTTP_SOURCE_SETTINGS, UnitKind, harness_reads};
use crate::build::generation::Generation;
use crate::build::jetstream::{self, JetStream};
use crate::oci::bundle::{NodeFacts, NodeKind};
use crate::spec::load::Repo;
use crate::spec::model::{Environment, HttpListener, Spread};
use crate::spec::model::{ProviderKind, SinkConnector, SourceConnector};
use crate::util::digest::sha256;

/// A pipeline deployed to one environment: what both manifest formats are written from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Manifest name: the pipeline name.
    pub name: String,
    /// Project name.
    pub project: String,
    /// Environment name.
    pub environment: String,
    /// The environment's lattice.
    pub lattice: String,
    /// The pipeline's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `sha-` and 12 hex digits of the digest of everything else here and of the emitters'
    /// revision: changes exactly when the deployed application or its manifests do.
    pub version: String,
    /// One component per step and sink, steps first, in spec order.
    pub components: Vec<Component>,
    /// The providers the links use, in [`ProviderKind::ALL`] order.
    pub providers: Vec<Provider>,
    /// Every link, grouped by component in component order, inbound first.
    pub links: Vec<Link>,
    /// The secret policy, when a component has secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_policy: Option<SecretPolicy>,
    /// Messages a wasmCloud v2 host hands each step fed over messaging at once (see
    /// [`MessagingLimit`]). Absent from plans of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// A shared application (wadm's `experimental.wasmcloud.dev/shared`): its providers serve
    /// other applications, which reference them ([`Provider::shared`]). Only the environment's
    /// [`listener`] is one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// The pipeline's graph as it runs in the environment, what its bundle gives the controller
    /// (`Facts.pipelines`): the source, then the steps and sinks in spec order, with the subjects
    /// they read, report to and are replayed to. Empty for a shared application, and in plans of
    /// earlier versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeFacts>,
    /// The pipeline's JetStream stream and consumers, in an environment whose delivery is at
    /// least once: `dist/<env>/jetstream/<pipeline>.json`. Not part of [`Application::version`]:
    /// the controller applies it before the manifests whatever their version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<JetStream>,
}

/// A wasmCloud v2 host's instance pool when the environment does not say (wasmtime's default,
/// which `wash host --core-instances` keeps unless set).
pub const DEFAULT_CORE_INSTANCES: u32 = 1000;

/// How many messages a wasmCloud v2 host may hand each step of a pipeline at once.
///
/// Each message instantiates the whole composed component, which takes its core instances
/// from the host's pool; when the pool runs out, the host drops messages. The host's own
/// default reserves two thirds of the pool for messaging and sizes it for components of 5 core
/// instances, while a composed step has 11 to 15: so etl sets `max_in_flight` itself, such that
/// every step of the pipeline fed over messaging, with as many replicas as can land on one host
/// ([`Scale::replicas_per_host`]), each with all its messages in flight, fits in those two
/// thirds. Each replica counts: a replica is a workload of its own, with its own ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagingLimit {
    /// `max_in_flight` of every messaging-fed step: the environment's `maxInFlight`, else two
    /// thirds of its `coreInstances` divided by `demand`, at least 1.
    pub max_in_flight: u32,
    /// The core instances of one message in flight in every messaging-fed step.
    pub demand: u32,
    /// The core instances messaging may take: two thirds of the pool.
    pub budget: u32,
}

impl MessagingLimit {
    /// The limit of a pipeline in `environment` whose messaging-fed steps take `demand` core
    /// instances per message in flight on one host (the sum of their v2 artifacts' core
    /// instances, each times the replicas of its step that can land on one host).
    pub fn new(environment: &Environment, demand: u32) -> MessagingLimit {
        let pool = environment
            .core_instances
            .map_or(DEFAULT_CORE_INSTANCES, |n| n.get());
        let budget = u32::try_from(u64::from(pool) * 2 / 3).expect("two thirds of a u32 fit");
        let max_in_flight = match environment.max_in_flight {
            Some(n) => n.get(),
            None => (budget / demand.max(1)).max(1),
        };
        MessagingLimit {
            max_in_flight,
            demand,
            budget,
        }
    }

    /// The core instances the steps take, all on one host with all their messages in flight.
    pub fn taken(&self) -> u64 {
        u64::from(self.max_in_flight) * u64::from(self.demand)
    }
}

/// One composed component (a step or a sink).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "StoredComponent")]
pub struct Component {
    /// Step or sink name.
    pub name: String,
    /// A step or a sink.
    pub kind: ComponentKind,
    /// The artifact wasmCloud 1.x hosts run, pinned by manifest digest.
    pub artifact: ArtifactRef,
    /// The artifact wasmCloud v2 hosts run. Absent from plans of etl versions that built one
    /// artifact per step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_v2: Option<ArtifactRef>,
    /// Replicas and placement.
    pub scale: Scale,
    /// Its `wasi:config/runtime` configuration (`etl.*`, `step.*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<NamedConfig>,
    /// Secrets it is given, through [`Application::secret_policy`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    /// Imports granted to the customer component beyond the contract (steps only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
    /// The hosts the customer component's outbound HTTP may reach (steps that call out): what
    /// its egress part lets through (`etl.egress.hosts`), its wasmCloud v2 `allowedHosts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<String>,
}

/// Weight of a spread share that sets none (wadm's default).
pub const DEFAULT_WEIGHT: u32 = 100;

/// Replicas of each spread share, in spread order: `replicas` split by weight (absent:
/// [`DEFAULT_WEIGHT`]) with the largest-remainder method, ties going to the earlier share. When
/// every weight is 0 the shares count as equal.
pub(crate) fn split_replicas(replicas: u32, spread: &[Spread]) -> Vec<u32> {
    let mut weights: Vec<u64> = spread
        .iter()
        .map(|s| u64::from(s.weight.unwrap_or(DEFAULT_WEIGHT)))
        .collect();
    if weights.iter().all(|w| *w == 0) {
        weights.iter_mut().for_each(|w| *w = 1);
    }
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return Vec::new();
    }
    let replicas = u64::from(replicas);
    let mut shares: Vec<u64> = weights.iter().map(|w| replicas * w / total).collect();
    let left = replicas - shares.iter().sum::<u64>();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    // Stable: equal remainders keep spread order.
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(replicas * weights[i] % total));
    for &i in by_remainder.iter().take(left as usize) {
        shares[i] += 1;
    }
    shares
        .into_iter()
        .map(|s| u32::try_from(s).expect("a share is at most the replicas"))
        .collect()
}

/// A [`Component`] as plans store it, of this version or an earlier one: those kept the
/// (1.x) artifact's imports on the component, and had no v2 artifact.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredComponent {
    name: String,
    kind: ComponentKind,
    artifact: ArtifactRef,
    #[serde(default)]
    artifact_v2: Option<ArtifactRef>,
    scale: Scale,
    #[serde(default)]
    config: Option<NamedConfig>,
    #[serde(default)]
    secrets: Vec<Secret>,
    #[serde(default)]
    imports: Vec<String>,
    #[serde(default)]
    grants: Vec<String>,
    #[serde(default)]
    egress: Vec<String>,
}

impl From<StoredComponent> for Component {
    fn from(c: StoredComponent) -> Component {
        let mut artifact = c.artifact;
        if artifact.imports.is_empty() {
            artifact.imports = c.imports;
        }
        Component {
            name: c.name,
            kind: c.kind,
            artifact,
            artifact_v2: c.artifact_v2,
            scale: c.scale,
            config: c.config,
            secrets: c.secrets,
            grants: c.grants,
            egress: c.egress,
        }
    }
}

impl Scale {
    /// The most replicas that can land on one host: all of them, or, when every two spread
    /// shares require different values of some host label (`zone: east`, `zone: west`), the
    /// largest share's (shares split as the `WorkloadDeployment`s split them).
    pub fn replicas_per_host(&self) -> u32 {
        let disjoint = self.spread.iter().enumerate().all(|(i, a)| {
            self.spread[i + 1..].iter().all(|b| {
                a.requirements
                    .iter()
                    .any(|(k, v)| b.requirements.get(k).is_some_and(|w| w != v))
            })
        });
        if self.spread.is_empty() || !disjoint {
            return self.replicas;
        }
        split_replicas(self.replicas, &self.spread)
            .into_iter()
            .max()
            .unwrap_or(self.replicas)
    }
}

impl Component {
    /// Its artifact for `generation`, if it has one (plans of earlier versions have no v2 one).
    pub fn artifact_of(&self, generation: Generation) -> Option<&ArtifactRef> {
        match generation {
            Generation::V1 => Some(&self.artifact),
            Generation::V2 => self.artifact_v2.as_ref(),
        }
    }

    /// Every artifact it has, 1.x first.
    pub fn artifacts(&self) -> impl Iterator<Item = &ArtifactRef> {
        std::iter::once(&self.artifact).chain(&self.artifact_v2)
    }
}

/// What a component does in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    /// A step: in-harness, customer transform, out-harness.
    Step,
    /// A sink: in-harness and the connector's out-harness.
    Sink,
}

/// Where a component's artifact is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRef {
    /// `<registry>/<repository>@<manifest digest>`: what hosts pull.
    pub image: String,
    /// Repository under the project's registry: `<pipeline>-<unit>`.
    pub repository: String,
    /// Digest of the OCI manifest.
    pub manifest_digest: String,
    /// Digest of the composed component (the artifact's only layer).
    pub component_digest: String,
    /// Interfaces the composed component imports (what the host must serve). Read as empty
    /// when left out (plans of earlier versions kept them on the component): `etl diff` reads
    /// them from the plan's pipelines.
    #[serde(default)]
    pub imports: Vec<String>,
    /// The digest of the customer component composed in it, as its step's `digest:` pins it
    /// (the artifact's [`crate::oci::layout::CUSTOMER`] annotation); none for a sink, and in
    /// plans of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
}

/// How many replicas run, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scale {
    /// Replicas (wadm `instances`).
    pub replicas: u32,
    /// Shares of the replicas on labelled hosts; empty: anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<Spread>,
}

/// A capability provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// Name in the manifest: [`ProviderKind::name`].
    pub name: String,
    /// Which provider.
    pub kind: ProviderKind,
    /// Its image, from `spec.providers`.
    pub image: String,
    /// Its configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<NamedConfig>,
    /// Replicas and placement: those of the busiest component it serves.
    pub scale: Scale,
    /// The shared application that runs it, when the application only references it (the
    /// environment's HTTP listener, [`listener`]); its links are still the application's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<String>,
}

/// Which way calls go over a link. A wadm link lives on its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// The provider calls the component's export (records in).
    ProviderToComponent,
    /// The component calls the provider through its import (records out).
    ComponentToProvider,
}

/// A link between a component and a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// Which way it goes.
    pub direction: Direction,
    /// The provider's name.
    pub provider: String,
    /// The component's name.
    pub component: String,
    /// WIT namespace, e.g. `wasmcloud`.
    pub namespace: String,
    /// WIT package, e.g. `messaging`.
    pub package: String,
    /// WIT interfaces, e.g. `handler`.
    pub interfaces: Vec<String>,
    /// Link name: set on provider → component links (one provider feeds several components),
    /// unset (wadm's `default`) on component → provider links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Configuration on the source side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_config: Option<NamedConfig>,
    /// Configuration on the target side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_config: Option<NamedConfig>,
    /// Secrets for the provider (its connector's `{secret: KEY}` credentials), on the
    /// provider's side of the link: the source side of a provider → component link, the target
    /// side of a component → provider one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
}

/// A named configuration; the name ends in a hash of the properties, so changed values get a
/// new name and reach running providers and components.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedConfig {
    /// `<owner>-<role>-<12 hex>`; wadm prefixes it with the manifest name.
    pub name: String,
    /// The values.
    pub properties: BTreeMap<String, String>,
}

impl NamedConfig {
    fn new(prefix: &str, properties: BTreeMap<String, String>) -> Option<Self> {
        if properties.is_empty() {
            return None;
        }
        let mut text = String::new();
        for (k, v) in &properties {
            text.push_str(&format!("{}:{k}={}:{v}\n", k.len(), v.len()));
        }
        let hash = sha256(text.as_bytes());
        let hex = hash.trim_start_matches("sha256:");
        Some(Self {
            name: format!("{prefix}-{}", &hex[..12]),
            properties,
        })
    }
}

/// A secret given to a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    /// Name the component knows it by: the setting key.
    pub name: String,
    /// Key in the secret backend.
    pub key: String,
}

/// The wadm secret policy (`policy.secret.wasmcloud.dev/v1alpha1`) secrets resolve through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretPolicy {
    /// Policy name.
    pub name: String,
    /// Backend, e.g. `nats-kv`.
    pub backend: String,
}

/// The first line of every manifest etl writes.
pub const HEADER: &str = "# Generated by etl (`etl compile`): do not edit, edit the pipeline.\n";

/// `value` as one YAML document, ending in a newline. One line per scalar: no folded (`>`) or
/// literal (`|`) block scalars, so a long image reference stays greppable on its line and a
/// multi-line value is one quoted line; strings YAML would read as anything else are quoted.
fn yaml<T: Serialize>(value: &T) -> String {
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    let mut text =
        serde_saphyr::to_string_with_options(value, options).expect("manifests serialize");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Name of the link on which the Kafka provider consumes a `kafka` source for a component.
pub const KAFKA_SOURCE_LINK: &str = "kafka-source";

/// Name of the secret policy in every manifest.
pub const SECRET_POLICY: &str = "etl-secrets";

/// The shared applications the applications `apps` of one environment reference, by name: for
/// each shared provider, an application that runs it alone (configured as the references say),
/// with no links: the applications that use it hold those.
pub fn shared_applications<'a>(
    apps: impl IntoIterator<Item = &'a Application>,
) -> BTreeMap<String, Application> {
    let mut shared: BTreeMap<String, Application> = BTreeMap::new();
    for app in apps {
        for provider in &app.providers {
            let Some(name) = &provider.shared else {
                continue;
            };
            let entry = shared.entry(name.clone()).or_insert_with(|| Application {
                name: name.clone(),
                project: app.project.clone(),
                environment: app.environment.clone(),
                lattice: app.lattice.clone(),
                description: Some(format!(
                    "The HTTP listener every pipeline of {} with an `http` source routed by path shares in {}.",
                    app.project, app.environment
                )),
                shared: true,
                ..Application::default()
            });
            if !entry.providers.iter().any(|p| p.name == provider.name) {
                entry.providers.push(Provider {
                    shared: None,
                    ..provider.clone()
                });
            }
        }
    }
    for app in shared.values_mut() {
        app.stamp_version();
    }
    shared
}

/// A packaged unit: what [`application`] needs to know of its artifacts.
#[derive(Debug, Clone)]
pub struct Packaged {
    /// The artifact of each generation, 1.x first.
    pub artifacts: Vec<(Generation, PackagedArtifact)>,
    /// Imports granted to the customer component (steps).
    pub grants: Vec<String>,
    /// The hosts its outbound HTTP may reach (steps that call out).
    pub egress: Vec<String>,
}

/// One packaged artifact of a unit.
#[derive(Debug, Clone)]
pub struct PackagedArtifact {
    /// Repository under the project's registry.
    pub repository: String,
    /// OCI manifest digest.
    pub manifest_digest: String,
    /// Composed component digest.
    pub component_digest: String,
    /// The composed component's imports.
    pub imports: Vec<String>,
    /// The customer component's digest, as `digest:` pins it (steps).
    pub customer: Option<String>,
}

/// Why an application could not be built or emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// A provider a connector needs is not configured.
    #[error(
        "`{unit}` needs the `{provider}` provider, and `etl.yaml` has no `spec.providers.{provider}`"
    )]
    MissingProvider {
        /// The source, step or sink.
        unit: String,
        /// The provider.
        provider: &'static str,
    },
    /// A unit has no packaged artifact (a bug of the caller).
    #[error("`{unit}` has no packaged artifact")]
    MissingArtifact {
        /// The step or sink.
        unit: String,
    },
    /// A secret is referenced and the environment has no secret backend.
    #[error("`{unit}` has secrets and environment `{environment}` has no secret backend")]
    NoSecretBackend {
        /// The step or sink.
        unit: String,
        /// The environment.
        environment: String,
    },
    /// A name the target cannot use.
    #[error("`{name}` cannot name a {what}: {why}")]
    InvalidName {
        /// The name.
        name: String,
        /// What it would name.
        what: &'static str,
        /// The rule broken.
        why: String,
    },
    /// A unit reads a `kafka` source and writes a `kafka` sink: the Kafka provider keeps one
    /// link per component.
    #[error(
        "`{unit}` reads from a Kafka source and writes to a Kafka sink; the Kafka provider serves one link per component: put a step between them"
    )]
    KafkaToKafka {
        /// The sink.
        unit: String,
    },
    /// The HTTP source feeds more than one unit; a request reaches one component.
    #[error("the HTTP source `{source_name}` feeds {} (`{}`); an HTTP request reaches one component: let one step read the source and the others read that step", .units.len(), .units.join("`, `"))]
    HttpFanOut {
        /// The source.
        source_name: String,
        /// The units it feeds.
        units: Vec<String>,
    },
    /// Every spread share of an environment has weight 0.
    #[error(
        "every spread of environment `{environment}` has weight 0; wadm cannot divide replicas by a zero total"
    )]
    ZeroWeights {
        /// The environment.
        environment: String,
    },
    /// Two things of one manifest would share a name.
    #[error("two {what} of `{application}` would both be named `{name}`")]
    Duplicate {
        /// The application.
        application: String,
        /// What kind of thing.
        what: &'static str,
        /// The name.
        name: String,
    },
}

impl EmitError {
    /// The source, step or sink the error is about, if one.
    pub fn unit(&self) -> Option<&str> {
        match self {
            EmitError::MissingProvider { unit, .. }
            | EmitError::MissingArtifact { unit }
            | EmitError::NoSecretBackend { unit, .. }
            | EmitError::KafkaToKafka { unit } => Some(unit),
            EmitError::HttpFanOut { source_name, .. } => Some(source_name),
            _ => None,
        }
    }
}

/// The project settings an application reads, per environment.
struct Placement {
    replicas: u32,
    spread: Vec<Spread>,
    secret_backend: Option<String>,
}

/// Environment `name` of a repo that was planned (validated, with a project defining it).
pub fn planned_environment<'a>(repo: &'a Repo, name: &str) -> &'a Environment {
    repo.project
        .as_ref()
        .expect("planned repos have a project")
        .spec
        .spec
        .environments
        .iter()
        .find(|(n, _)| ***n == *name)
        .map(|(_, e)| e)
        .expect("planned environments exist")
}

/// The replicas and placement of unit `unit` of `pipeline` in `environment`, as its
/// application gets them.
pub fn scale(repo: &Repo, environment: &str, pipeline: &str, unit: &str) -> Scale {
    let place = placement(repo, environment, pipeline, unit);
    Scale {
        replicas: place.replicas,
        spread: place.spread,
    }
}

/// Where unit `unit` of `pipeline` runs in `environment`: its replicas (the environment file's
/// for the pipeline, else the step's own, else the environment file's, else the environment's),
/// spread and secret backend.
fn placement(repo: &Repo, environment: &str, pipeline: &str, unit: &str) -> Placement {
    let step_replicas = crate::build::deployment::find_pipeline(repo, pipeline)
        .expect("planned pipelines exist")
        .spec
        .spec
        .steps
        .iter()
        .find(|s| *s.name == *unit)
        .and_then(|s| s.replicas)
        .map(|r| r.get());
    let project = &repo
        .project
        .as_ref()
        .expect("planned repos have a project")
        .spec
        .spec;
    let env = planned_environment(repo, environment);
    let files: Vec<_> = repo
        .environments
        .iter()
        .filter(|f| *f.spec.metadata.name == *environment)
        .map(|f| &f.spec.spec)
        .collect();
    let pipeline_replicas = files.iter().find_map(|f| {
        f.pipelines
            .iter()
            .find(|(p, _)| ***p == *pipeline)
            .and_then(|(_, o)| o.replicas)
    });
    let file_replicas = files.iter().find_map(|f| f.replicas);
    let replicas = pipeline_replicas
        .map(|r| r.get())
        .or(step_replicas)
        .or(file_replicas.map(|r| r.get()))
        .unwrap_or(env.replicas.get());
    Placement {
        replicas,
        spread: env.spread.clone(),
        secret_backend: env
            .secrets
            .as_ref()
            .or(project.secrets.as_ref())
            .map(|b| b.backend.clone()),
    }
}

/// Secrets of `settings` (setting → secret key), in setting order.
fn secrets_of(settings: &BTreeMap<String, String>) -> Vec<Secret> {
    settings
        .iter()
        .map(|(name, key)| Secret {
            name: name.clone(),
            key: key.clone(),
        })
        .collect()
}

/// Builds the application of `deployment`, whose units were packaged as `packaged` (by unit
/// name).
pub fn application(
    repo: &Repo,
    deployment: &Deployment,
    packaged: &BTreeMap<String, Packaged>,
    limit: &MessagingLimit,
) -> Result<Application, EmitError> {
    let project = &repo
        .project
        .as_ref()
        .expect("planned repos have a project")
        .spec;
    let spec = &crate::build::deployment::find_pipeline(repo, &deployment.pipeline)
        .expect("planned pipelines exist")
        .spec;
    let pipeline = deployment.pipeline.as_str();
    let environment = deployment.environment.as_str();
    let env = planned_environment(repo, environment);
    // What every link of the messaging-nats provider says about where NATS is.
    let nats_connection: BTreeMap<String, String> = env
        .nats
        .iter()
        .map(|n| ("cluster_uris".to_owned(), n.urls.join(",")))
        .collect();
    let provider_image = |unit: &str, kind: ProviderKind| -> Result<String, EmitError> {
        project
            .spec
            .providers
            .get(&kind)
            .map(|i| i.to_string())
            .ok_or(EmitError::MissingProvider {
                unit: unit.to_owned(),
                provider: kind.name(),
            })
    };
    let source = &deployment.source;
    let source_extra = |skip: &[&str]| -> BTreeMap<String, String> {
        source
            .settings
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };

    let http_units: Vec<String> = deployment
        .units
        .iter()
        .filter(|u| u.http)
        .map(|u| u.name.clone())
        .collect();
    if http_units.len() > 1 {
        return Err(EmitError::HttpFanOut {
            source_name: source.name.clone(),
            units: http_units,
        });
    }
    let mut components = Vec::new();
    let mut links = Vec::new();
    let mut used: BTreeMap<ProviderKind, (String, u32, Vec<Spread>)> = BTreeMap::new();
    let mut secret_backend = None;
    let mut use_provider =
        |kind: ProviderKind, unit: &str, scale: &Scale| -> Result<(), EmitError> {
            let image = provider_image(unit, kind)?;
            let entry = used
                .entry(kind)
                .or_insert_with(|| (image, 0, scale.spread.clone()));
            entry.1 = entry.1.max(scale.replicas);
            Ok(())
        };
    for unit in &deployment.units {
        let place = placement(repo, environment, pipeline, &unit.name);
        if !place.spread.is_empty() && place.spread.iter().all(|s| s.weight == Some(0)) {
            return Err(EmitError::ZeroWeights {
                environment: environment.to_owned(),
            });
        }
        let scale = Scale {
            replicas: place.replicas,
            spread: place.spread.clone(),
        };
        let p = packaged
            .get(&unit.name)
            .ok_or_else(|| EmitError::MissingArtifact {
                unit: unit.name.clone(),
            })?;
        let prefix = unit.name.clone();
        let artifact_ref = |generation: Generation| {
            let (_, a) = p.artifacts.iter().find(|(g, _)| *g == generation)?;
            Some(ArtifactRef {
                image: format!(
                    "{}/{}@{}",
                    project.spec.registry.trim_end_matches('/'),
                    a.repository,
                    a.manifest_digest
                ),
                repository: a.repository.clone(),
                manifest_digest: a.manifest_digest.clone(),
                component_digest: a.component_digest.clone(),
                // Sorted, as an artifact's config lists them (what `etl promote` reads back).
                imports: a
                    .imports
                    .iter()
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                customer: a.customer.clone(),
            })
        };

        // Records in.
        if unit.http {
            use_provider(ProviderKind::HttpServer, &source.name, &scale)?;
            let skip: Vec<&str> = HTTP_SOURCE_SETTINGS.iter().map(|(k, _)| *k).collect();
            let mut config = source_extra(&skip);
            config
                .entry("path".to_owned())
                .or_insert_with(|| "/".to_owned());
            if config.contains_key("address") {
                config.remove("path");
            }
            // A path-routed source is served by the environment's shared listener, whose links
            // come from every pipeline: named after the pipeline too.
            let name = if config.contains_key("path") {
                format!("{pipeline}-{}", unit.name)
            } else {
                unit.name.clone()
            };
            links.push(Link {
                direction: Direction::ProviderToComponent,
                provider: ProviderKind::HttpServer.name().to_owned(),
                component: unit.name.clone(),
                namespace: "wasi".to_owned(),
                package: "http".to_owned(),
                interfaces: vec!["incoming-handler".to_owned()],
                name: Some(name),
                source_config: NamedConfig::new(&format!("{prefix}-http-in"), config),
                target_config: None,
                secrets: secrets_of(&source.secrets),
            });
        }
        let from_kafka: Vec<&String> = unit
            .subscriptions
            .iter()
            .filter(|s| {
                source.connector == SourceConnector::Kafka && source.subject.as_ref() == Some(*s)
            })
            .collect();
        let from_nats: Vec<&String> = unit
            .subscriptions
            .iter()
            .filter(|s| !from_kafka.contains(s))
            .collect();
        let queue = jetstream::queue_group(&deployment.project, pipeline, &unit.name);
        if !from_kafka.is_empty() {
            // The Kafka provider consumes for a component when the component links to it
            // (`consumer`, target config `topic` and `consumer_group`), and then calls the
            // component's `handler`. The unnamed `consumer` link is the unit's output, so this
            // one is named.
            if unit.kind == UnitKind::Sink(SinkConnector::Kafka) {
                return Err(EmitError::KafkaToKafka {
                    unit: unit.name.clone(),
                });
            }
            use_provider(ProviderKind::MessagingKafka, &source.name, &scale)?;
            let mut config = source_extra(&["topic"]);
            config.insert("topic".to_owned(), from_kafka[0].clone());
            config.insert("consumer_group".to_owned(), queue.clone());
            links.push(Link {
                direction: Direction::ComponentToProvider,
                provider: ProviderKind::MessagingKafka.name().to_owned(),
                component: unit.name.clone(),
                namespace: "wasmcloud".to_owned(),
                package: "messaging".to_owned(),
                interfaces: vec!["consumer".to_owned()],
                name: Some(KAFKA_SOURCE_LINK.to_owned()),
                source_config: None,
                target_config: NamedConfig::new(&format!("{}-kafka-in", unit.name), config),
                secrets: secrets_of(&source.secrets),
            });
        }
        if !from_nats.is_empty() {
            use_provider(ProviderKind::MessagingNats, &unit.name, &scale)?;
            // Fed by the `nats` source: directly, or through the consumer of the stream that
            // captures its subject (on the same NATS).
            let from_source = source.connector.reads_nats()
                && unit.inputs.iter().any(|(_, node)| *node == source.name);
            let mut config = if from_source {
                source_extra(source.connector.required_key().as_slice())
            } else {
                BTreeMap::new()
            };
            let subscriptions: Vec<String> =
                from_nats.iter().map(|s| format!("{s}|{queue}")).collect();
            config.insert("subscriptions".to_owned(), subscriptions.join(","));
            config.extend(nats_connection.clone());
            links.push(Link {
                direction: Direction::ProviderToComponent,
                provider: ProviderKind::MessagingNats.name().to_owned(),
                component: unit.name.clone(),
                namespace: "wasmcloud".to_owned(),
                package: "messaging".to_owned(),
                interfaces: vec!["handler".to_owned()],
                name: Some(unit.name.clone()),
                source_config: NamedConfig::new(&format!("{prefix}-nats-in"), config),
                target_config: None,
                secrets: if from_source {
                    secrets_of(&source.secrets)
                } else {
                    Vec::new()
                },
            });
        }

        // Records out.
        let mut extra: BTreeMap<String, String> = unit
            .settings
            .iter()
            .filter(|(k, _)| !harness_reads(unit.kind, k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (kind, namespace, package, interface, role) = match unit.kind {
            UnitKind::Step | UnitKind::Sink(SinkConnector::Nats) => (
                ProviderKind::MessagingNats,
                "wasmcloud",
                "messaging",
                "consumer",
                "nats-out",
            ),
            UnitKind::Sink(SinkConnector::Kafka) => (
                ProviderKind::MessagingKafka,
                "wasmcloud",
                "messaging",
                "consumer",
                "kafka-out",
            ),
            UnitKind::Sink(SinkConnector::Http) => (
                ProviderKind::HttpClient,
                "wasi",
                "http",
                "outgoing-handler",
                "http-out",
            ),
            UnitKind::Sink(SinkConnector::S3) => (
                ProviderKind::BlobstoreS3,
                "wasi",
                "blobstore",
                "blobstore",
                "s3-out",
            ),
        };
        use_provider(kind, &unit.name, &scale)?;
        if kind == ProviderKind::MessagingNats {
            extra.extend(nats_connection.clone());
        }
        links.push(Link {
            direction: Direction::ComponentToProvider,
            provider: kind.name().to_owned(),
            component: unit.name.clone(),
            namespace: namespace.to_owned(),
            package: package.to_owned(),
            interfaces: vec![interface.to_owned()],
            name: None,
            source_config: None,
            target_config: NamedConfig::new(&format!("{prefix}-{role}"), extra),
            secrets: secrets_of(&unit.link_secrets),
        });

        // Reports: the `in` part publishes one per batch through `wasmcloud:messaging/consumer`
        // to NATS. Steps and nats sinks have that link above; a sink whose records go out over
        // HTTP or to a blobstore gets its own. A kafka sink's unnamed consumer link is the Kafka
        // provider's, the one a second would clash with (`docs/manifests.md`).
        if matches!(
            unit.kind,
            UnitKind::Sink(SinkConnector::Http | SinkConnector::S3)
        ) {
            use_provider(ProviderKind::MessagingNats, &unit.name, &scale)?;
            links.push(Link {
                direction: Direction::ComponentToProvider,
                provider: ProviderKind::MessagingNats.name().to_owned(),
                component: unit.name.clone(),
                namespace: "wasmcloud".to_owned(),
                package: "messaging".to_owned(),
                interfaces: vec!["consumer".to_owned()],
                name: None,
                source_config: None,
                target_config: NamedConfig::new(
                    &format!("{prefix}-nats-report"),
                    nats_connection.clone(),
                ),
                secrets: Vec::new(),
            });
        }

        // A customer that calls out: its egress part's import of the host's outgoing handler.
        if !p.egress.is_empty() {
            use_provider(ProviderKind::HttpClient, &unit.name, &scale)?;
            links.push(Link {
                direction: Direction::ComponentToProvider,
                provider: ProviderKind::HttpClient.name().to_owned(),
                component: unit.name.clone(),
                namespace: "wasi".to_owned(),
                package: "http".to_owned(),
                interfaces: vec!["outgoing-handler".to_owned()],
                name: None,
                source_config: None,
                target_config: None,
                secrets: Vec::new(),
            });
        }

        let secrets = secrets_of(&unit.secrets);
        let linked = links
            .iter()
            .any(|l| l.component == unit.name && !l.secrets.is_empty());
        if !secrets.is_empty() || linked {
            secret_backend =
                Some(
                    place
                        .secret_backend
                        .clone()
                        .ok_or_else(|| EmitError::NoSecretBackend {
                            unit: unit.name.clone(),
                            environment: environment.to_owned(),
                        })?,
                );
        }
        components.push(Component {
            name: unit.name.clone(),
            kind: match unit.kind {
                UnitKind::Step => ComponentKind::Step,
                UnitKind::Sink(_) => ComponentKind::Sink,
            },
            artifact: artifact_ref(Generation::V1).ok_or_else(|| EmitError::MissingArtifact {
                unit: unit.name.clone(),
            })?,
            artifact_v2: artifact_ref(Generation::V2),
            scale,
            config: NamedConfig::new(&format!("{prefix}-runtime"), unit.runtime_config(&p.egress)),
            secrets,
            grants: p.grants.clone(),
            egress: p.egress.clone(),
        });
    }
    let providers = used
        .into_iter()
        .map(|(kind, (image, replicas, spread))| {
            let path_routed = kind == ProviderKind::HttpServer
                && links.iter().any(|l| {
                    l.provider == kind.name()
                        && l.source_config
                            .as_ref()
                            .is_some_and(|c| c.properties.contains_key("path"))
                });
            if !path_routed {
                return Provider {
                    name: kind.name().to_owned(),
                    kind,
                    image,
                    config: None,
                    scale: Scale { replicas, spread },
                    shared: None,
                };
            }
            let address = env
                .http
                .as_ref()
                .map_or(HttpListener::DEFAULT_ADDRESS, |h| h.address.as_str());
            let config = BTreeMap::from([
                ("default_address".to_owned(), address.to_owned()),
                ("routing_mode".to_owned(), "path".to_owned()),
            ]);
            // One instance on every host of the environment: pipelines share it.
            Provider {
                name: kind.name().to_owned(),
                kind,
                image,
                config: NamedConfig::new(kind.name(), config),
                scale: Scale {
                    replicas: 1,
                    spread: env.spread.clone(),
                },
                shared: Some(HttpListener::application(&deployment.project)),
            }
        })
        .collect();
    let mut app = Application {
        name: pipeline.to_owned(),
        project: deployment.project.clone(),
        environment: environment.to_owned(),
        lattice: deployment.lattice.clone(),
        description: spec.metadata.description.clone(),
        version: String::new(),
        components,
        providers,
        links,
        secret_policy: secret_backend.map(|backend| SecretPolicy {
            name: SECRET_POLICY.to_owned(),
            backend,
        }),
        max_in_flight: Some(limit.max_in_flight),
        shared: false,
        nodes: Vec::new(),
        jetstream: None,
    };
    app.nodes = nodes(deployment, &app.components);
    let delivery = crate::spec::environments::Environments::of(repo)
        .and_then(|envs| envs.get(environment).map(|e| e.delivery.clone()))
        .unwrap_or_default();
    app.jetstream = jetstream::document(deployment, &delivery);
    check_names(&app)?;
    app.stamp_version();
    Ok(app)
}

/// The graph of `deployment` ([`Application::nodes`]): its source, then its units in order, each
/// with what it reads and the subjects it reports to and is replayed to, and from its component
/// in `components` a step's customer (`digest:`) and grants.
fn nodes(deployment: &Deployment, components: &[Component]) -> Vec<NodeFacts> {
    let source = &deployment.source;
    let mut nodes = vec![NodeFacts {
        name: source.name.clone(),
        kind: NodeKind::Source,
        connector: Some(source.connector.name().to_owned()),
        from: Vec::new(),
        inputs: Vec::new(),
        report: None,
        dead_letter: None,
        replay: None,
        component: None,
        grants: Vec::new(),
    }];
    for unit in &deployment.units {
        let c = components.iter().find(|c| c.name == unit.name);
        let (kind, connector) = match unit.kind {
            UnitKind::Step => (NodeKind::Step, None),
            UnitKind::Sink(c) => (NodeKind::Sink, Some(c.name().to_owned())),
        };
        nodes.push(NodeFacts {
            name: unit.name.clone(),
            kind,
            connector,
            from: unit.inputs.iter().map(|(_, node)| node.clone()).collect(),
            inputs: unit.inputs.clone(),
            report: Some(unit.report.clone()),
            dead_letter: unit.dead_letter.clone(),
            replay: unit.replay.clone(),
            component: c.and_then(|c| c.artifact.customer.clone()),
            grants: c
                .map(|c| grant_lines(&c.grants, &c.egress))
                .unwrap_or_default(),
        });
    }
    nodes
}

/// A customer's grants as readable lines, sorted: each interface granted without its version,
/// and outbound HTTP with the hosts it may reach (`wasi:http/outgoing-handler → api.acme.example,
/// *.acme.example`).
pub fn grant_lines(grants: &[String], egress: &[String]) -> Vec<String> {
    let lines: BTreeSet<String> = grants
        .iter()
        .map(|g| {
            let interface = g.split('@').next().unwrap_or(g);
            if interface == crate::spec::model::OUTGOING_HANDLER && !egress.is_empty() {
                format!("{interface} → {}", egress.join(", "))
            } else {
                interface.to_owned()
            }
        })
        .collect();
    lines.into_iter().collect()
}

/// Revision of the emitters' translation, part of every [`Application::version`]: bumped when
/// either emitter writes the same application differently (2: providers on a wadm
/// `daemonscaler`; 3: a v2 component's own secrets on its `wasi:config` entry, not on the
/// entry its records go out through), so that a changed manifest never reaches a lattice under
/// a version it already knows.
const EMITTERS: &str = "etl-emitters-3";

impl Application {
    /// Sets [`Application::version`] from everything else and [`EMITTERS`].
    fn stamp_version(&mut self) {
        self.version = String::new();
        let jetstream = self.jetstream.take();
        let json = serde_json::to_value(&*self).expect("applications serialize");
        self.jetstream = jetstream;
        let text = format!("{EMITTERS}\n{}", crate::util::json::pretty(&json));
        let digest = sha256(text.as_bytes());
        self.version = format!("sha-{}", &digest.trim_start_matches("sha256:")[..12]);
    }

    /// The same application with each component whose repository `artifacts` names pinned to
    /// that artifact instead (manifest and component digests, and the customer composed in it,
    /// which its graph names too), and its version stamped anew.
    pub fn repinned(&self, artifacts: &BTreeMap<String, ArtifactRef>) -> Application {
        let mut app = self.clone();
        for c in &mut app.components {
            for artifact in std::iter::once(&mut c.artifact).chain(c.artifact_v2.as_mut()) {
                if let Some(pinned) = artifacts.get(&artifact.repository) {
                    *artifact = pinned.clone();
                }
            }
        }
        for node in app.nodes.iter_mut().filter(|n| n.kind == NodeKind::Step) {
            if let Some(c) = app.components.iter().find(|c| c.name == node.name) {
                node.component = c.artifact.customer.clone();
            }
        }
        app.stamp_version();
        app
    }
}

/// An RFC 1123 label: at most 63 lower-case letters, digits and `-`, starting and ending with a
/// letter or digit. Kubernetes object names and OCI repository path components accept it.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The rules both targets impose on names: Kubernetes object and label names (RFC 1123 labels,
/// at most 63 characters) and OCI repository path components, and names unique in a manifest.
pub fn check_names(app: &Application) -> Result<(), EmitError> {
    let label = |name: &str, what: &'static str| -> Result<(), EmitError> {
        if is_dns_label(name) {
            Ok(())
        } else {
            Err(EmitError::InvalidName {
                name: name.to_owned(),
                what,
                why: "use at most 63 lower-case letters, digits and `-`, starting and ending with a letter or digit".to_owned(),
            })
        }
    };
    label(&app.name, "wadm application or Kubernetes object")?;
    let mut names = std::collections::BTreeSet::new();
    for c in &app.components {
        label(
            &c.artifact.repository,
            "OCI repository or Kubernetes object",
        )?;
        let mut spreads = std::collections::BTreeSet::new();
        if let Some(s) = c.scale.spread.iter().find(|s| !spreads.insert(&s.name)) {
            return Err(EmitError::Duplicate {
                application: app.name.clone(),
                what: "spreads of one component (wasmCloud v2 names a workload per spread)",
                name: s.name.clone(),
            });
        }
        if !names.insert(c.name.as_str()) {
            return Err(EmitError::Duplicate {
                application: app.name.clone(),
                what: "components",
                name: c.name.clone(),
            });
        }
    }
    for p in &app.providers {
        if !names.insert(p.name.as_str()) {
            return Err(EmitError::Duplicate {
                application: app.name.clone(),
                what: "components (a step or sink and a provider)",
                name: p.name.clone(),
            });
        }
    }
    let mut link_keys = std::collections::BTreeSet::new();
    for l in &app.links {
        let source = match l.direction {
            Direction::ProviderToComponent => &l.provider,
            Direction::ComponentToProvider => &l.component,
        };
        for interface in &l.interfaces {
            let key = (
                source.as_str(),
                l.name.as_deref().unwrap_or("default"),
                l.namespace.as_str(),
                l.package.as_str(),
                interface.as_str(),
            );
            if !link_keys.insert(key) {
                return Err(EmitError::Duplicate {
                    application: app.name.clone(),
                    what: "links from one source on one interface",
                    name: l.name.clone().unwrap_or_else(|| "default".to_owned()),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(max_in_flight: Option<u32>, core_instances: Option<u32>) -> Environment {
        serde_json::from_value(serde_json::json!({
            "lattice": "l",
            "maxInFlight": max_in_flight,
            "coreInstances": core_instances,
        }))
        .unwrap()
    }

    #[test]
    fn messages_in_flight_fill_two_thirds_of_the_pool_or_are_set() {
        let limit = MessagingLimit::new(&environment(None, None), 48);
        assert_eq!(
            (limit.max_in_flight, limit.budget, limit.taken()),
            (13, 666, 624)
        );
        assert_eq!(
            MessagingLimit::new(&environment(None, Some(3000)), 48).max_in_flight,
            41
        );
        // Never 0, even when one message each is already too many.
        let crowded = MessagingLimit::new(&environment(None, Some(30)), 48);
        assert_eq!(crowded.max_in_flight, 1);
        assert!(crowded.taken() > u64::from(crowded.budget));
        // Set: used as it is.
        let set = MessagingLimit::new(&environment(Some(20), None), 48);
        assert_eq!((set.max_in_flight, set.taken()), (20, 960));
        // No step fed over messaging: nothing taken.
        assert_eq!(MessagingLimit::new(&environment(None, None), 0).taken(), 0);
    }

    fn link(provider: &str, component: &str, direction: Direction, name: Option<&str>) -> Link {
        Link {
            direction,
            provider: provider.to_owned(),
            component: component.to_owned(),
            namespace: "wasmcloud".to_owned(),
            package: "messaging".to_owned(),
            interfaces: vec!["handler".to_owned()],
            name: name.map(str::to_owned),
            source_config: None,
            target_config: None,
            secrets: Vec::new(),
        }
    }

    fn app(components: &[&str], links: Vec<Link>) -> Application {
        Application {
            name: "orders".to_owned(),
            project: "shop".to_owned(),
            environment: "dev".to_owned(),
            lattice: "default".to_owned(),
            description: None,
            version: String::new(),
            components: components
                .iter()
                .map(|c| Component {
                    name: (*c).to_owned(),
                    kind: ComponentKind::Step,
                    artifact: ArtifactRef {
                        image: format!("r.example/orders-{c}@sha256:00"),
                        repository: format!("orders-{c}"),
                        manifest_digest: "sha256:00".to_owned(),
                        component_digest: "sha256:00".to_owned(),
                        imports: Vec::new(),
                        customer: None,
                    },
                    artifact_v2: None,
                    scale: Scale {
                        replicas: 1,
                        spread: Vec::new(),
                    },
                    config: None,
                    secrets: Vec::new(),
                    grants: Vec::new(),
                    egress: Vec::new(),
                })
                .collect(),
            providers: vec![Provider {
                name: "messaging-nats".to_owned(),
                kind: ProviderKind::MessagingNats,
                image: "wasmcloud+builtin://messaging-nats".to_owned(),
                config: None,
                scale: Scale {
                    replicas: 1,
                    spread: Vec::new(),
                },
                shared: None,
            }],
            links,
            secret_policy: None,
            max_in_flight: None,
            shared: false,
            nodes: Vec::new(),
            jetstream: None,
        }
    }

    #[test]
    fn distinct_provider_links_pass() {
        let links = vec![
            link(
                "messaging-nats",
                "a",
                Direction::ProviderToComponent,
                Some("a"),
            ),
            link(
                "messaging-nats",
                "b",
                Direction::ProviderToComponent,
                Some("b"),
            ),
            link("messaging-nats", "a", Direction::ComponentToProvider, None),
            link("messaging-nats", "b", Direction::ComponentToProvider, None),
        ];
        assert_eq!(check_names(&app(&["a", "b"], links)), Ok(()));
    }

    #[test]
    fn duplicate_link_names_on_one_source_are_refused() {
        let links = vec![
            link(
                "messaging-nats",
                "a",
                Direction::ProviderToComponent,
                Some("in"),
            ),
            link(
                "messaging-nats",
                "b",
                Direction::ProviderToComponent,
                Some("in"),
            ),
        ];
        let e = check_names(&app(&["a", "b"], links)).unwrap_err();
        assert!(
            matches!(&e, EmitError::Duplicate { name, .. } if name == "in"),
            "{e}"
        );
        let unnamed = vec![
            link("messaging-nats", "a", Direction::ProviderToComponent, None),
            link("messaging-nats", "b", Direction::ProviderToComponent, None),
        ];
        let e = check_names(&app(&["a", "b"], unnamed)).unwrap_err();
        assert!(e.to_string().contains("`default`"), "{e}");
    }

    #[test]
    fn a_component_named_like_a_provider_is_refused() {
        let e = check_names(&app(&["messaging-nats"], Vec::new())).unwrap_err();
        assert!(
            e.to_string().contains("a step or sink and a provider"),
            "{e}"
        );
    }

    #[test]
    fn a_spread_named_twice_is_refused() {
        let mut a = app(&["a"], Vec::new());
        let east = Spread {
            name: "east".to_owned(),
            requirements: BTreeMap::new(),
            weight: None,
        };
        a.components[0].scale.spread = vec![east.clone(), east];
        let e = check_names(&a).unwrap_err();
        assert!(e.to_string().contains("`east`"), "{e}");
    }

    #[test]
    fn names_kubernetes_and_oci_cannot_use_are_refused() {
        for bad in ["Parse", "under_score", "trail-", &"x".repeat(60)] {
            let e = check_names(&app(&[bad], Vec::new())).unwrap_err();
            assert!(matches!(e, EmitError::InvalidName { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn config_names_follow_their_values() {
        let a = NamedConfig::new("parse-runtime", BTreeMap::from([("k".into(), "1".into())]));
        let b = NamedConfig::new("parse-runtime", BTreeMap::from([("k".into(), "2".into())]));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_ne!(a.name, b.name);
        assert!(
            a.name.starts_with("parse-runtime-") && a.name.len() == "parse-runtime-".len() + 12
        );
        assert_eq!(NamedConfig::new("x", BTreeMap::new()), None);
        // Length-prefixed: moving text between key and value is a different config.
        let c = NamedConfig::new("p", BTreeMap::from([("a=".into(), "b".into())])).unwrap();
        let d = NamedConfig::new("p", BTreeMap::from([("a".into(), "=b".into())])).unwrap();
        assert_ne!(c.name, d.name);
    }
}
