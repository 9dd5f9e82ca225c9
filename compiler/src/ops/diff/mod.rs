//! `etl diff`: what a change to a pipeline repo changes in what gets deployed.
//!
//! Each side is a compiled plan: the `plan.json` of an `etl compile` output directory, or a git
//! ref of the pipeline repo, exported into a temporary directory (`git archive`; the work tree
//! and index are never touched) and compiled in memory. Both are [`Plan`]s (a `plan.json` of an
//! earlier etl reads too), compared per pipeline, then per environment: units added and
//! removed, artifacts whose component changed and why, wiring, the delivery guarantee and the
//! JetStream stream and consumers (not part of an application's version, so compared on their
//! own), scaling, runtime and link configuration, secrets (names only), providers. A switch to
//! at-most-once delivery and new capabilities (imports a unit gained, hosts its outbound HTTP
//! may reach) come first in every format, and hosts it may no longer reach with them.
//!
//! The report is rendered as Markdown for a pull-request comment (kept under
//! [`MARKDOWN_LIMIT`] characters), as text for a terminal, or as JSON (docs/diff.md). The same
//! two plans always give the same bytes.

mod load;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::build::dist::{PipelinePlan, Plan, UnitPlan};
use crate::build::emit::{Application, Component, Direction, Link, NamedConfig, Provider};
use crate::build::generation::Generation;
use crate::build::jetstream::JetStream;
use crate::ops::graph::{Graph, Kind, Mark};
use crate::spec::model::Spread;

pub use load::{DiffError, Options, Snapshot, load};

/// Version of the JSON format; bumped only on incompatible changes.
pub const JSON_FORMAT_VERSION: u32 = 1;

/// Most characters of the Markdown report: GitHub refuses comments over 65,536.
pub const MARKDOWN_LIMIT: usize = 60_000;

/// What a value is shown as when its key names a secret.
pub const REDACTED: &str = "•••";

// ------------------------------------------------------------------------------------------
// Reading a plan
// ------------------------------------------------------------------------------------------

/// The harness parts composed into `unit`'s artifact for `generation`, by name.
fn parts(unit: &UnitPlan, generation: Generation) -> Vec<&str> {
    let mut parts: Vec<&str> = unit.harness.inbound.iter().map(String::as_str).collect();
    parts.push(&unit.harness.out);
    parts.push(generation.settings().name());
    if unit.customer.is_none() {
        parts.push("identity");
    }
    if generation == Generation::V1
        && let Some(part) = &unit.harness.msg_id
    {
        parts.push(part);
    }
    parts
}

/// The interfaces granted to `unit`'s customer component.
fn granted(unit: &UnitPlan) -> &[String] {
    unit.customer.as_ref().map_or(&[], |c| &c.grants)
}

/// The hosts `unit`'s customer component may call.
fn egress(unit: &UnitPlan) -> &[String] {
    unit.customer.as_ref().map_or(&[], |c| &c.egress)
}

fn properties(config: Option<&NamedConfig>) -> BTreeMap<String, String> {
    config.map(|c| c.properties.clone()).unwrap_or_default()
}

/// `provider → component (ns:pkg/iface)` or the other way, and its name when it is not the
/// component's.
fn link_label(link: &Link) -> String {
    let (from, to) = match link.direction {
        Direction::ProviderToComponent => (&link.provider, &link.component),
        Direction::ComponentToProvider => (&link.component, &link.provider),
    };
    let mut label = format!(
        "{from} → {to} ({}:{}/{})",
        link.namespace,
        link.package,
        link.interfaces.join(",")
    );
    if let Some(name) = link.name.as_ref().filter(|n| **n != link.component) {
        let _ = write!(label, " [{name}]");
    }
    label
}

impl Snapshot {
    /// The graph of `pipeline` as this plan deploys it (see [`Graph`]), if it has it.
    pub fn graph(&self, pipeline: &str) -> Option<Graph> {
        let p = self.plan.pipelines.iter().find(|p| p.name == pipeline)?;
        Some(plan_graph(&self.plan, p, &BTreeMap::new()))
    }
}

// ------------------------------------------------------------------------------------------
// The report
// ------------------------------------------------------------------------------------------

/// A value before and after; `None` where it does not exist on that side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change<T> {
    /// In BASE.
    pub old: Option<T>,
    /// In HEAD.
    pub new: Option<T>,
}

impl<T: PartialEq> Change<T> {
    fn of(old: Option<T>, new: Option<T>) -> Option<Self> {
        (old != new).then_some(Change { old, new })
    }
}

/// Added, removed or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Only in HEAD.
    Added,
    /// Only in BASE.
    Removed,
    /// In both, different.
    Changed,
}

/// Everything that differs between two plans. Empty when they deploy the same.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`JSON_FORMAT_VERSION`].
    pub version: u32,
    /// The summary line.
    pub summary: String,
    /// Whether anything differs.
    pub changed: bool,
    /// The old side.
    pub base: Side,
    /// The new side.
    pub head: Side,
    /// The counts behind the summary.
    pub counts: Counts,
    /// Units that can import interfaces they could not before.
    pub capabilities: Vec<Capability>,
    /// Environments deployed to only in BASE or only in HEAD.
    pub environments: Environments,
    /// Every pipeline that differs, by name.
    pub pipelines: Vec<PipelineDiff>,
}

/// One side, as given.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// The argument (`dist`, `HEAD~1`).
    pub arg: String,
    /// The commit, when known.
    pub revision: Option<String>,
}

/// How many of each kind of change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Environments whose deployed applications differ.
    pub environments: usize,
    /// Pipelines added, removed or changed.
    pub pipelines: usize,
    /// Pipelines only in HEAD.
    pub pipelines_added: usize,
    /// Pipelines only in BASE.
    pub pipelines_removed: usize,
    /// Environments only in HEAD.
    pub environments_added: usize,
    /// Environments only in BASE.
    pub environments_removed: usize,
    /// Units added to pipelines in both.
    pub units_added: usize,
    /// Units removed from pipelines in both.
    pub units_removed: usize,
    /// Units whose composed component changed.
    pub artifacts: usize,
    /// Units whose OCI manifest changed while their component did not (see [`Restamp`]).
    pub restamped: usize,
    /// Units whose `from` changed.
    pub wiring: usize,
    /// Replicas or spread changes, per environment and unit.
    pub scaling: usize,
    /// Configuration values changed, added or removed, per environment.
    pub config_values: usize,
    /// Secrets changed, added or removed, per environment.
    pub secrets: usize,
    /// Links added or removed, per environment.
    pub links: usize,
    /// Provider images changed, added or removed, per environment.
    pub providers: usize,
    /// Delivery guarantees changed (at least once ↔ at most once), per environment and
    /// pipeline; the stream and consumers they add or remove count with them.
    pub delivery: usize,
    /// JetStream stream and consumer settings changed, and streams and consumers added or
    /// removed, per environment (those of a changed guarantee aside).
    pub jetstream: usize,
    /// New interfaces and hosts, per unit.
    pub capabilities: usize,
    /// Everything else: descriptions, lattices, secret backends, images, and changes to the
    /// deployed application this report does not itemize.
    pub other: usize,
}

/// A unit that gained imports or hosts (or lost hosts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capability {
    /// The pipeline.
    pub pipeline: String,
    /// The step or sink.
    pub unit: String,
    /// Interfaces the composed component imports now and did not before.
    pub imports: Vec<String>,
    /// Interfaces granted to the customer component now and not before.
    pub grants: Vec<String>,
    /// Hosts the customer component's outbound HTTP may reach now and could not before.
    pub hosts: Vec<String>,
    /// Hosts it could reach before and may not now.
    pub removed_hosts: Vec<String>,
}

impl Capability {
    /// Whether it can do something it could not before (not only less than before).
    pub fn is_new(&self) -> bool {
        !self.imports.is_empty() || !self.grants.is_empty() || !self.hosts.is_empty()
    }

    /// Every new interface, once.
    pub fn interfaces(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self
            .imports
            .iter()
            .chain(&self.grants)
            .map(String::as_str)
            .collect();
        set.into_iter().collect()
    }
}

/// Environments only on one side.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Environments {
    /// Only in HEAD.
    pub added: Vec<String>,
    /// Only in BASE.
    pub removed: Vec<String>,
}

/// What differs in one pipeline.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineDiff {
    /// Its name.
    pub name: String,
    /// Added, removed or changed.
    pub status: Status,
    /// Its description (the manifests carry it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Change<String>>,
    /// Units only in HEAD (every unit of an added pipeline).
    pub units_added: Vec<NewUnit>,
    /// Units only in BASE.
    pub units_removed: Vec<String>,
    /// Units whose composed component changed, and why.
    pub artifacts: Vec<ArtifactChange>,
    /// Units whose OCI manifest changed while their component did not (see [`Restamp`]).
    pub restamped: Vec<Restamp>,
    /// Units whose inputs changed.
    pub wiring: Vec<Wiring>,
    /// Per environment, what differs in the deployed application.
    pub deployments: Vec<DeploymentDiff>,
    /// A Mermaid flowchart of the pipeline in HEAD, added and changed units marked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph: Option<String>,
}

/// A unit only in HEAD.
#[derive(Debug, Clone, Serialize)]
pub struct NewUnit {
    /// Its name.
    pub name: String,
    /// What it reads.
    pub from: Vec<String>,
    /// The customer component, as written (steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The composed component's digest (wasmCloud 1.x).
    pub digest: String,
    /// The wasmCloud v2 composed component's digest.
    #[serde(rename = "digestV2", skip_serializing_if = "Option::is_none")]
    pub digest_v2: Option<String>,
}

/// A unit whose composed component differs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactChange {
    /// The step or sink.
    pub unit: String,
    /// Which of its artifacts (`v1`: wasmCloud 1.x, `v2`: wasmCloud v2).
    pub generation: Generation,
    /// The composed component's digest.
    pub component_digest: Change<String>,
    /// What made it differ; at least one.
    pub causes: Vec<Cause>,
}

/// Why a composed component differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Cause {
    /// The customer component changed.
    #[serde(rename_all = "camelCase")]
    Customer {
        /// The reference as written, when it changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        component: Option<Change<String>>,
        /// The digest of its bytes (`digest:`), when it changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        digest: Option<Change<String>>,
        /// The digest of the component composed (componentized), when it changed.
        #[serde(skip_serializing_if = "Option::is_none")]
        component_digest: Option<Change<String>>,
        /// The reference in HEAD.
        reference: String,
    },
    /// A harness part composed into it changed.
    Harness {
        /// The part (`in-http`, `out-messaging`, …).
        part: String,
        /// Its digest.
        digest: Change<String>,
    },
    /// It is composed of other harness parts (its connector or inputs changed).
    HarnessParts {
        /// The parts.
        parts: Change<Vec<String>>,
    },
    /// Its wascap claims (wasmCloud 1.x) are issued by another account, or only one side has
    /// claims (`etl compile --claims-key`).
    Claims {
        /// The issuer's public key (`A…`), none without claims.
        issuer: Change<String>,
    },
    /// Neither the customer component nor a harness part: the composition itself (etl's
    /// recipe, or how the parts are wired).
    Composition,
}

/// A unit whose OCI manifest changed while its component did not: only the packaging differs.
/// Two compiles by the same `etl` never give one (an artifact's bytes depend on its component
/// and name alone); a plan written by an `etl` that stamped the commit and time into artifacts,
/// or by one that packages differently, does.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restamp {
    /// The step or sink.
    pub unit: String,
    /// Which of its artifacts.
    pub generation: Generation,
    /// The manifest digest.
    pub manifest_digest: Change<String>,
}

/// A unit whose `from` changed.
#[derive(Debug, Clone, Serialize)]
pub struct Wiring {
    /// The step or sink.
    pub unit: String,
    /// What it reads.
    pub from: Change<Vec<String>>,
}

/// What differs in one pipeline's application in one environment.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentDiff {
    /// The environment.
    pub environment: String,
    /// Deployed there only in HEAD (added), only in BASE (removed), or in both.
    pub status: Status,
    /// The lattice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lattice: Option<Change<String>>,
    /// The secret backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_backend: Option<Change<String>>,
    /// Messages a wasmCloud v2 host hands each messaging-fed step at once (`max_in_flight`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<Change<u32>>,
    /// The delivery guarantee, [`AT_LEAST_ONCE`] or [`AT_MOST_ONCE`]: when it changed, and in a
    /// deployment only in HEAD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Change<String>>,
    /// Replicas and spread, per unit.
    pub scale: Vec<ScaleChange>,
    /// Configuration values, key by key (secret-like keys redacted).
    pub config: Vec<ConfigChange>,
    /// Secrets: their names and backend keys, never values.
    pub secrets: Vec<SecretChange>,
    /// Links added or removed (their configuration changes are under `config`).
    pub links: Vec<LinkChange>,
    /// Provider images.
    pub providers: Vec<ProviderChange>,
    /// Image references whose manifest digest is unchanged (a registry or repository move).
    pub images: Vec<ImageChange>,
    /// The JetStream stream and consumers (`dist/<env>/jetstream/<pipeline>.json`): those added
    /// or removed, and the settings of the others, field by field.
    pub jetstream: Vec<JetStreamChange>,
    /// The application's version, when it differs and nothing above says why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other: Option<Change<String>>,
}

impl DeploymentDiff {
    fn is_empty(&self) -> bool {
        self.lattice.is_none()
            && self.secret_backend.is_none()
            && self.max_in_flight.is_none()
            && self.delivery.is_none()
            && self.scale.is_empty()
            && self.config.is_empty()
            && self.secrets.is_empty()
            && self.links.is_empty()
            && self.providers.is_empty()
            && self.images.is_empty()
            && self.jetstream.is_empty()
            && self.other.is_none()
    }
}

/// A scaling change of one unit.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleChange {
    /// The step or sink.
    pub unit: String,
    /// Replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Change<u32>>,
    /// Spread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<Change<Vec<Spread>>>,
}

/// Whose configuration a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// A step's or sink's runtime configuration.
    Component,
    /// A link's source or target configuration (`source.`/`target.` prefixed keys).
    Link,
    /// A provider's configuration.
    Provider,
}

/// One configuration value.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigChange {
    /// Whose.
    pub of: Owner,
    /// The component, link (as labelled) or provider.
    pub name: String,
    /// The key.
    pub key: String,
    /// The value (redacted when the key names a secret).
    #[serde(flatten)]
    pub value: Change<String>,
}

/// A secret of one unit.
#[derive(Debug, Clone, Serialize)]
pub struct SecretChange {
    /// The step or sink.
    pub unit: String,
    /// The name the component knows it by.
    pub name: String,
    /// The key in the secret backend.
    #[serde(flatten)]
    pub key: Change<String>,
}

/// A link added or removed.
#[derive(Debug, Clone, Serialize)]
pub struct LinkChange {
    /// `from → to (ns:pkg/interfaces) [name]`.
    pub link: String,
    /// Added or removed.
    pub status: Status,
}

/// A provider's image.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderChange {
    /// The provider.
    pub name: String,
    /// Its image.
    pub image: Change<String>,
}

/// A unit's image reference.
#[derive(Debug, Clone, Serialize)]
pub struct ImageChange {
    /// The step or sink.
    pub unit: String,
    /// Which of its artifacts.
    pub generation: Generation,
    /// `<registry>/<repository>@<digest>`.
    pub image: Change<String>,
}

/// What a JetStream change is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JetStreamKind {
    /// A stream.
    Stream,
    /// A consumer.
    Consumer,
}

/// A stream or consumer added or removed, or one field of its settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JetStreamChange {
    /// A stream or a consumer.
    pub of: JetStreamKind,
    /// The stream's name, or the consumer's durable name.
    pub name: String,
    /// The stream (a consumer's, or the stream itself).
    pub stream: String,
    /// Added, removed, or changed (then `field`, `old` and `new` say how).
    pub status: Status,
    /// The setting, as the NATS server API names it (`max_age`, `max_ack_pending`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Its value, as the JetStream document has it (durations in nanoseconds).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub value: Option<Change<serde_json::Value>>,
}

/// The guarantee of a pipeline's deployment with a JetStream document.
pub const AT_LEAST_ONCE: &str = "at-least-once";
/// The guarantee of a pipeline's deployment without one (core NATS).
pub const AT_MOST_ONCE: &str = "at-most-once";

impl DeploymentDiff {
    /// Whether its delivery guarantee went from at least once to at most once: what is in
    /// flight can now be lost.
    pub fn weakens_delivery(&self) -> bool {
        self.status == Status::Changed
            && self.delivery.as_ref().is_some_and(|d| {
                d.old.as_deref() == Some(AT_LEAST_ONCE) && d.new.as_deref() == Some(AT_MOST_ONCE)
            })
    }
}

impl Report {
    /// Whether anything differs.
    pub fn is_empty(&self) -> bool {
        !self.changed
    }
}

// ------------------------------------------------------------------------------------------
// Comparing
// ------------------------------------------------------------------------------------------

/// Compares `base` with `head`.
pub fn diff(base: &Snapshot, head: &Snapshot) -> Report {
    let (b, h) = (&base.plan, &head.plan);
    let envs = |p: &Plan| -> BTreeSet<String> { p.deployments.keys().cloned().collect() };
    let (base_envs, head_envs) = (envs(b), envs(h));
    let environments = Environments {
        added: head_envs.difference(&base_envs).cloned().collect(),
        removed: base_envs.difference(&head_envs).cloned().collect(),
    };
    let names: BTreeSet<&str> = b
        .pipelines
        .iter()
        .chain(&h.pipelines)
        .map(|p| p.name.as_str())
        .collect();
    // What every unit of BASE imports: an added unit's imports are new only if no unit had them.
    let base_imports: BTreeSet<&str> = b
        .pipelines
        .iter()
        .flat_map(|p| p.units())
        .flat_map(|u| &u.artifact.imports)
        .map(|i| unversioned(i))
        .collect();
    let mut capabilities = Vec::new();
    let mut pipelines = Vec::new();
    for name in names {
        let old = b.pipelines.iter().find(|p| p.name == name);
        let new = h.pipelines.iter().find(|p| p.name == name);
        if let Some(new) = new {
            capabilities.extend(new_capabilities(old, new, &base_imports));
        }
        if let Some(d) = pipeline_diff(b, h, name, old, new) {
            pipelines.push(d);
        }
    }
    let mut counts = Counts {
        environments_added: environments.added.len(),
        environments_removed: environments.removed.len(),
        capabilities: capabilities
            .iter()
            .map(|c| c.interfaces().len() + c.hosts.len())
            .sum(),
        ..Counts::default()
    };
    let mut changed_envs = BTreeSet::new();
    for env in base_envs.union(&head_envs) {
        // An application's version hashes all of it: differing versions, or one missing, is
        // a change.
        let version = |p: &Plan, pipeline: &String| {
            p.deployments
                .get(env)
                .and_then(|apps| apps.get(pipeline))
                .map(|a| a.version.clone())
        };
        let pipelines: BTreeSet<&String> = [b, h]
            .iter()
            .flat_map(|p| p.deployments.get(env).into_iter().flat_map(|a| a.keys()))
            .collect();
        let differ = pipelines
            .into_iter()
            .any(|p| version(b, p) != version(h, p));
        if differ {
            changed_envs.insert(env.clone());
        }
    }
    for p in &pipelines {
        counts.pipelines += 1;
        match p.status {
            Status::Added => counts.pipelines_added += 1,
            Status::Removed => counts.pipelines_removed += 1,
            Status::Changed => {
                counts.units_added += p.units_added.len();
                counts.units_removed += p.units_removed.len();
            }
        }
        counts.artifacts += p.artifacts.len();
        counts.restamped += p.restamped.len();
        counts.wiring += p.wiring.len();
        counts.other += usize::from(p.description.is_some() && p.status == Status::Changed);
        for d in p.deployments.iter().filter(|d| d.status == Status::Changed) {
            changed_envs.insert(d.environment.clone());
            counts.scaling += d.scale.len() + usize::from(d.max_in_flight.is_some());
            counts.config_values += d.config.len();
            counts.secrets += d.secrets.len();
            counts.links += d.links.len();
            counts.providers += d.providers.len();
            counts.delivery += usize::from(d.delivery.is_some());
            if d.delivery.is_none() {
                counts.jetstream += d.jetstream.len();
            }
            counts.other += usize::from(d.lattice.is_some())
                + usize::from(d.secret_backend.is_some())
                + d.images.len()
                + usize::from(d.other.is_some());
        }
    }
    counts.environments = changed_envs.len();
    let changed = counts != Counts::default();
    Report {
        version: JSON_FORMAT_VERSION,
        summary: summary(&counts),
        changed,
        base: Side {
            arg: base.arg.clone(),
            revision: base.revision.clone(),
        },
        head: Side {
            arg: head.arg.clone(),
            revision: head.revision.clone(),
        },
        counts,
        capabilities,
        environments,
        pipelines,
    }
}

/// `wasi:http/outgoing-handler@0.2.2` → `wasi:http/outgoing-handler`: a version bump of an
/// interface already imported is not a new capability.
fn unversioned(interface: &str) -> &str {
    interface.split('@').next().unwrap_or(interface)
}

fn new_capabilities(
    old: Option<&PipelinePlan>,
    new: &PipelinePlan,
    base_imports: &BTreeSet<&str>,
) -> Vec<Capability> {
    let mut out = Vec::new();
    for unit in new.units() {
        let before = old.and_then(|p| p.unit(&unit.name));
        let had = |list: &[String], i: &str| list.iter().any(|x| unversioned(x) == unversioned(i));
        let imports: Vec<String> = unit
            .artifact
            .imports
            .iter()
            .filter(|i| match before {
                Some(b) => !had(&b.artifact.imports, i),
                None => !base_imports.contains(unversioned(i)),
            })
            .cloned()
            .collect();
        let grants: Vec<String> = granted(unit)
            .iter()
            .filter(|g| before.is_none_or(|b| !had(granted(b), g)))
            .cloned()
            .collect();
        let hosts: Vec<String> = egress(unit)
            .iter()
            .filter(|h| before.is_none_or(|b| !egress(b).contains(h)))
            .cloned()
            .collect();
        let removed_hosts: Vec<String> = before
            .map(|b| {
                egress(b)
                    .iter()
                    .filter(|h| !egress(unit).contains(h))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if !imports.is_empty()
            || !grants.is_empty()
            || !hosts.is_empty()
            || !removed_hosts.is_empty()
        {
            out.push(Capability {
                pipeline: new.name.clone(),
                unit: unit.name.clone(),
                imports,
                grants,
                hosts,
                removed_hosts,
            });
        }
    }
    out
}

fn pipeline_diff(
    b: &Plan,
    h: &Plan,
    name: &str,
    old: Option<&PipelinePlan>,
    new: Option<&PipelinePlan>,
) -> Option<PipelineDiff> {
    let apps = |p: &Plan| -> BTreeMap<String, Application> {
        p.deployments
            .iter()
            .filter_map(|(env, apps)| apps.get(name).map(|a| (env.clone(), a.clone())))
            .collect()
    };
    let (old_apps, new_apps) = (apps(b), apps(h));
    let description = Change::of(
        old_apps.values().next().and_then(|a| a.description.clone()),
        new_apps.values().next().and_then(|a| a.description.clone()),
    );
    let empty = PipelinePlan::default();
    let status = match (old, new) {
        (None, None) => return None,
        (None, Some(_)) => Status::Added,
        (Some(_), None) => Status::Removed,
        (Some(_), Some(_)) => Status::Changed,
    };
    let (o, n) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let mut d = PipelineDiff {
        name: name.to_owned(),
        status,
        description,
        units_added: Vec::new(),
        units_removed: Vec::new(),
        artifacts: Vec::new(),
        restamped: Vec::new(),
        wiring: Vec::new(),
        deployments: Vec::new(),
        graph: None,
    };
    for u in n.units().filter(|u| o.unit(&u.name).is_none()) {
        d.units_added.push(NewUnit {
            name: u.name.clone(),
            from: u.from.clone(),
            component: u.customer.as_ref().map(|c| c.component.clone()),
            digest: u.artifact.digest.clone(),
            digest_v2: u.artifact_v2.as_ref().map(|a| a.digest.clone()),
        });
    }
    if status == Status::Removed {
        d.deployments = old_apps
            .keys()
            .map(|env| empty_deployment(env, Status::Removed))
            .collect();
        return Some(d);
    }
    d.units_removed = o
        .units()
        .filter(|u| n.unit(&u.name).is_none())
        .map(|u| u.name.clone())
        .collect();
    for u in n.units() {
        let Some(before) = o.unit(&u.name) else {
            continue;
        };
        for generation in Generation::ALL {
            let (old_digest, new_digest) = (
                before.artifact_of(generation).map(|a| a.digest.clone()),
                u.artifact_of(generation).map(|a| a.digest.clone()),
            );
            if let Some(component_digest) = Change::of(old_digest, new_digest) {
                d.artifacts.push(ArtifactChange {
                    unit: u.name.clone(),
                    generation,
                    component_digest,
                    causes: causes(b, h, before, u, generation),
                });
            } else if let Some((old_manifest, new_manifest)) =
                manifests(&old_apps, &new_apps, &u.name, generation)
                && old_manifest != new_manifest
            {
                d.restamped.push(Restamp {
                    unit: u.name.clone(),
                    generation,
                    manifest_digest: Change {
                        old: Some(old_manifest),
                        new: Some(new_manifest),
                    },
                });
            }
        }
        if before.from != u.from {
            d.wiring.push(Wiring {
                unit: u.name.clone(),
                from: Change {
                    old: Some(before.from.clone()),
                    new: Some(u.from.clone()),
                },
            });
        }
    }
    let envs: BTreeSet<&String> = old_apps.keys().chain(new_apps.keys()).collect();
    let pipeline_level = !d.units_added.is_empty()
        || !d.units_removed.is_empty()
        || !d.artifacts.is_empty()
        || !d.restamped.is_empty()
        || !d.wiring.is_empty()
        || d.description.is_some();
    for env in envs {
        let dep = match (old_apps.get(env), new_apps.get(env)) {
            (None, Some(new)) => added_deployment(env, new),
            (Some(_), None) => empty_deployment(env, Status::Removed),
            (Some(old), Some(new)) => {
                let mut dep = deployment_diff(env, old, new);
                if dep.is_empty() && !pipeline_level && old.version != new.version {
                    dep.other = Change::of(Some(old.version.clone()), Some(new.version.clone()));
                }
                dep
            }
            (None, None) => continue,
        };
        if dep.status != Status::Changed || !dep.is_empty() {
            d.deployments.push(dep);
        }
    }
    if status == Status::Changed && !pipeline_level && d.deployments.is_empty() {
        return None;
    }
    let mut marks = BTreeMap::new();
    for u in &d.units_added {
        marks.insert(u.name.clone(), Mark::Added);
    }
    let touched = d
        .artifacts
        .iter()
        .map(|a| &a.unit)
        .chain(d.wiring.iter().map(|w| &w.unit))
        .chain(d.deployments.iter().flat_map(|dep| {
            dep.scale
                .iter()
                .map(|s| &s.unit)
                .chain(dep.secrets.iter().map(|s| &s.unit))
                .chain(
                    dep.config
                        .iter()
                        .filter(|c| c.of == Owner::Component)
                        .map(|c| &c.name),
                )
        }));
    for unit in touched {
        marks.entry(unit.clone()).or_insert(Mark::Changed);
    }
    if status == Status::Added {
        marks.clear();
    }
    d.graph = Some(plan_graph(h, n, &marks).mermaid());
    Some(d)
}

/// The manifest digests of `unit`'s `generation` artifact in the first environment that
/// deploys it on both sides.
fn manifests(
    old: &BTreeMap<String, Application>,
    new: &BTreeMap<String, Application>,
    unit: &str,
    generation: Generation,
) -> Option<(String, String)> {
    old.iter().find_map(|(env, o)| {
        let n = new.get(env)?;
        let oc = o.components.iter().find(|c| c.name == unit)?;
        let nc = n.components.iter().find(|c| c.name == unit)?;
        Some((
            oc.artifact_of(generation)?.manifest_digest.clone(),
            nc.artifact_of(generation)?.manifest_digest.clone(),
        ))
    })
}

fn causes(
    b: &Plan,
    h: &Plan,
    old: &UnitPlan,
    new: &UnitPlan,
    generation: Generation,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let (Some(oc), Some(nc)) = (&old.customer, &new.customer)
        && (oc.component != nc.component
            || oc.digest != nc.digest
            || oc.component_digest != nc.component_digest)
    {
        let change = |a: &String, b: &String| Change::of(Some(a.clone()), Some(b.clone()));
        let digest = change(&oc.digest, &nc.digest);
        causes.push(Cause::Customer {
            component: change(&oc.component, &nc.component),
            component_digest: if digest.is_none() {
                change(&oc.component_digest, &nc.component_digest)
            } else {
                None
            },
            digest,
            reference: nc.component.clone(),
        });
    }
    if old.customer.is_some() != new.customer.is_some() || old.harness != new.harness {
        // Every composition has its generation's settings part: not worth naming here.
        let named = |unit: &UnitPlan| -> Vec<String> {
            parts(unit, generation)
                .into_iter()
                .filter(|p| *p != generation.settings().name())
                .map(str::to_owned)
                .collect()
        };
        causes.push(Cause::HarnessParts {
            parts: Change {
                old: Some(named(old)),
                new: Some(named(new)),
            },
        });
    }
    let old_parts = parts(old, generation);
    for part in parts(new, generation)
        .into_iter()
        .filter(|p| old_parts.contains(p))
    {
        if let Some(digest) = Change::of(b.harness.get(part).cloned(), h.harness.get(part).cloned())
        {
            causes.push(Cause::Harness {
                part: part.to_owned(),
                digest,
            });
        }
    }
    let issuer = |u: &UnitPlan| {
        u.artifact_of(generation)
            .and_then(|a| a.claims.as_ref())
            .map(|c| c.issuer.clone())
    };
    if let Some(issuer) = Change::of(issuer(old), issuer(new)) {
        causes.push(Cause::Claims { issuer });
    }
    if causes.is_empty() {
        causes.push(Cause::Composition);
    }
    causes
}

fn empty_deployment(env: &str, status: Status) -> DeploymentDiff {
    DeploymentDiff {
        environment: env.to_owned(),
        status,
        lattice: None,
        secret_backend: None,
        max_in_flight: None,
        delivery: None,
        scale: Vec::new(),
        config: Vec::new(),
        secrets: Vec::new(),
        links: Vec::new(),
        providers: Vec::new(),
        images: Vec::new(),
        jetstream: Vec::new(),
        other: None,
    }
}

/// A deployment only in HEAD: its scaling, configuration, secrets and providers as additions.
fn added_deployment(env: &str, new: &Application) -> DeploymentDiff {
    let mut d = deployment_diff(env, &Application::default(), new);
    d.status = Status::Added;
    d.lattice = None;
    d.links.clear();
    d.config.retain(|c| c.of == Owner::Component);
    if !new.shared {
        d.delivery = Some(Change {
            old: None,
            new: Some(guarantee(new).to_owned()),
        });
    }
    d
}

/// The delivery guarantee of `app`: at least once exactly when it has JetStream definitions.
fn guarantee(app: &Application) -> &'static str {
    if app.jetstream.is_some() {
        AT_LEAST_ONCE
    } else {
        AT_MOST_ONCE
    }
}

/// The settings of a stream or consumer configuration, field by field, but its name.
fn settings(config: &impl Serialize, name: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(config) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.remove(name);
            map
        }
        _ => serde_json::Map::new(),
    }
}

/// What differs between two JetStream documents (`None`: at most once): streams, then
/// consumers, each added, removed, or field by field.
fn jetstream_changes(old: Option<&JetStream>, new: Option<&JetStream>) -> Vec<JetStreamChange> {
    let mut out = Vec::new();
    let fields = |out: &mut Vec<JetStreamChange>,
                  of: JetStreamKind,
                  name: &str,
                  stream: &str,
                  o: serde_json::Map<String, serde_json::Value>,
                  n: serde_json::Map<String, serde_json::Value>| {
        let mut keys: Vec<&String> = n.keys().collect();
        keys.extend(o.keys().filter(|k| !n.contains_key(*k)));
        for key in keys {
            if let Some(value) = Change::of(o.get(key).cloned(), n.get(key).cloned()) {
                out.push(JetStreamChange {
                    of,
                    name: name.to_owned(),
                    stream: stream.to_owned(),
                    status: Status::Changed,
                    field: Some(key.clone()),
                    value: Some(value),
                });
            }
        }
    };
    let whole = |of: JetStreamKind, name: &str, stream: &str, status: Status| JetStreamChange {
        of,
        name: name.to_owned(),
        stream: stream.to_owned(),
        status,
        field: None,
        value: None,
    };
    let streams = |d: Option<&JetStream>| d.map(|d| d.streams.clone()).unwrap_or_default();
    let (os, ns) = (streams(old), streams(new));
    let names = ordered(os.iter().map(|s| &s.name), ns.iter().map(|s| &s.name));
    for name in &names {
        match (
            os.iter().find(|s| s.name == *name),
            ns.iter().find(|s| s.name == *name),
        ) {
            (Some(o), Some(n)) => fields(
                &mut out,
                JetStreamKind::Stream,
                name,
                name,
                settings(o, "name"),
                settings(n, "name"),
            ),
            (o, _) => {
                let status = if o.is_some() {
                    Status::Removed
                } else {
                    Status::Added
                };
                out.push(whole(JetStreamKind::Stream, name, name, status));
            }
        }
    }
    let consumers = |d: Option<&JetStream>| d.map(|d| d.consumers.clone()).unwrap_or_default();
    let (oc, nc) = (consumers(old), consumers(new));
    let key =
        |c: &crate::build::jetstream::Consumer| (c.stream.clone(), c.config.durable_name.clone());
    let mut keys: Vec<(String, String)> = nc.iter().map(key).collect();
    for k in oc.iter().map(key) {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (stream, name) in &keys {
        let find = |list: &[crate::build::jetstream::Consumer]| {
            list.iter()
                .find(|c| c.stream == *stream && c.config.durable_name == *name)
                .cloned()
        };
        match (find(&oc), find(&nc)) {
            (Some(o), Some(n)) => fields(
                &mut out,
                JetStreamKind::Consumer,
                name,
                stream,
                settings(&o.config, "durable_name"),
                settings(&n.config, "durable_name"),
            ),
            (o, _) => {
                let status = if o.is_some() {
                    Status::Removed
                } else {
                    Status::Added
                };
                out.push(whole(JetStreamKind::Consumer, name, stream, status));
            }
        }
    }
    out
}

fn deployment_diff(env: &str, old: &Application, new: &Application) -> DeploymentDiff {
    let mut d = empty_deployment(env, Status::Changed);
    d.lattice = Change::of(
        Some(old.lattice.clone()).filter(|l| !l.is_empty()),
        Some(new.lattice.clone()),
    );
    d.secret_backend = Change::of(
        old.secret_policy.as_ref().map(|p| p.backend.clone()),
        new.secret_policy.as_ref().map(|p| p.backend.clone()),
    );
    d.max_in_flight = Change::of(old.max_in_flight, new.max_in_flight);
    d.delivery = Change::of(
        Some(guarantee(old).to_owned()),
        Some(guarantee(new).to_owned()),
    );
    d.jetstream = jetstream_changes(old.jetstream.as_ref(), new.jetstream.as_ref());
    let component = |app: &Application, name: &str| -> Option<Component> {
        app.components.iter().find(|c| c.name == name).cloned()
    };
    let names = ordered(
        old.components.iter().map(|c| &c.name),
        new.components.iter().map(|c| &c.name),
    );
    for name in &names {
        let (o, n) = (component(old, name), component(new, name));
        let replicas = Change::of(
            o.as_ref().map(|c| c.scale.replicas),
            n.as_ref().map(|c| c.scale.replicas),
        );
        let spread = Change::of(
            o.as_ref().map(|c| c.scale.spread.clone()),
            n.as_ref().map(|c| c.scale.spread.clone()),
        )
        .filter(|_| o.is_some() && n.is_some());
        if (replicas.is_some() && n.is_some()) || spread.is_some() {
            d.scale.push(ScaleChange {
                unit: name.clone(),
                replicas: replicas.filter(|_| n.is_some()),
                spread,
            });
        }
        if n.is_none() {
            // A removed unit: listed once, under the pipeline's units.
            continue;
        }
        d.config.extend(config_changes(
            Owner::Component,
            name,
            &properties(o.as_ref().and_then(|c| c.config.as_ref())),
            &properties(n.as_ref().and_then(|c| c.config.as_ref())),
        ));
        // The component's own secrets and its links' (its providers' credentials): names and
        // backend keys, never values (a plan holds none).
        let secrets = |app: &Application, c: &Option<Component>| -> BTreeMap<String, String> {
            let linked = app
                .links
                .iter()
                .filter(|l| c.as_ref().is_some_and(|c| c.name == l.component))
                .flat_map(|l| &l.secrets);
            c.iter()
                .flat_map(|c| &c.secrets)
                .chain(linked)
                .map(|s| (s.name.clone(), s.key.clone()))
                .collect()
        };
        let (os, ns) = (secrets(old, &o), secrets(new, &n));
        for key in os.keys().chain(ns.keys()).collect::<BTreeSet<_>>() {
            if let Some(change) = Change::of(os.get(key).cloned(), ns.get(key).cloned()) {
                d.secrets.push(SecretChange {
                    unit: name.clone(),
                    name: key.clone(),
                    key: change,
                });
            }
        }
        if let (Some(o), Some(n)) = (&o, &n) {
            for generation in Generation::ALL {
                if let (Some(oa), Some(na)) = (o.artifact_of(generation), n.artifact_of(generation))
                    && oa.manifest_digest == na.manifest_digest
                    && let Some(image) = Change::of(Some(oa.image.clone()), Some(na.image.clone()))
                {
                    d.images.push(ImageChange {
                        unit: name.clone(),
                        generation,
                        image,
                    });
                }
            }
        }
    }
    let links = |app: &Application| -> BTreeMap<String, Link> {
        app.links
            .iter()
            .map(|l| (link_label(l), l.clone()))
            .collect()
    };
    let (ol, nl) = (links(old), links(new));
    for label in ordered(
        old.links.iter().map(link_label).collect::<Vec<_>>().iter(),
        new.links.iter().map(link_label).collect::<Vec<_>>().iter(),
    ) {
        match (ol.get(&label), nl.get(&label)) {
            (Some(_), None) => d.links.push(LinkChange {
                link: label,
                status: Status::Removed,
            }),
            (None, Some(_)) => d.links.push(LinkChange {
                link: label,
                status: Status::Added,
            }),
            (Some(o), Some(n)) => {
                let side = |prefix: &str, c: Option<&NamedConfig>| -> BTreeMap<String, String> {
                    properties(c)
                        .into_iter()
                        .map(|(k, v)| (format!("{prefix}.{k}"), v))
                        .collect()
                };
                let mut old_config = side("source", o.source_config.as_ref());
                old_config.extend(side("target", o.target_config.as_ref()));
                let mut new_config = side("source", n.source_config.as_ref());
                new_config.extend(side("target", n.target_config.as_ref()));
                d.config.extend(config_changes(
                    Owner::Link,
                    &label,
                    &old_config,
                    &new_config,
                ));
            }
            (None, None) => {}
        }
    }
    let providers = |app: &Application| -> BTreeMap<String, Provider> {
        app.providers
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect()
    };
    let (op, np) = (providers(old), providers(new));
    for name in ordered(
        old.providers.iter().map(|p| &p.name),
        new.providers.iter().map(|p| &p.name),
    ) {
        let (o, n) = (op.get(&name), np.get(&name));
        if let Some(image) = Change::of(o.map(|p| p.image.clone()), n.map(|p| p.image.clone())) {
            d.providers.push(ProviderChange {
                name: name.clone(),
                image,
            });
        }
        if o.is_some() && n.is_some() {
            d.config.extend(config_changes(
                Owner::Provider,
                &name,
                &properties(o.and_then(|p| p.config.as_ref())),
                &properties(n.and_then(|p| p.config.as_ref())),
            ));
        }
    }
    d
}

/// The names of `new` in their order, then those only in `old`, in theirs.
fn ordered<'a>(
    old: impl Iterator<Item = &'a String>,
    new: impl Iterator<Item = &'a String>,
) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in new.chain(old) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

fn config_changes(
    of: Owner,
    name: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<ConfigChange> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let value = Change::of(old.get(key).cloned(), new.get(key).cloned())?;
            let hide = |v: Option<String>| v.map(|v| redact(key, v));
            Some(ConfigChange {
                of,
                name: name.to_owned(),
                key: key.clone(),
                value: Change {
                    old: hide(value.old),
                    new: hide(value.new),
                },
            })
        })
        .collect()
}

/// Whether a configuration key names something secret: it contains `token`, `password`,
/// `secret` or `key`, in any case.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["token", "password", "secret", "key"]
        .iter()
        .any(|w| key.contains(w))
}

fn redact(key: &str, value: String) -> String {
    if is_secret_key(key) {
        REDACTED.to_owned()
    } else {
        value
    }
}

/// The graph of a planned pipeline: sources are what units read that is not a unit; connector
/// kinds come from the harness parts and the links of the first environment.
fn plan_graph(plan: &Plan, p: &PipelinePlan, marks: &BTreeMap<String, Mark>) -> Graph {
    let app = plan.deployments.values().find_map(|apps| apps.get(&p.name));
    let links = app.map(|a| a.links.as_slice()).unwrap_or_default();
    let units: BTreeSet<&str> = p.units().map(|u| u.name.as_str()).collect();
    let mut g = Graph::new(&p.name);
    let upstream = p
        .upstream
        .as_ref()
        .map(|u| g.upstream(&u.pipeline, &u.from));
    let mut sources: Vec<&str> = Vec::new();
    for u in p.units() {
        for f in &u.from {
            if !units.contains(f.as_str()) && !sources.contains(&f.as_str()) {
                sources.push(f);
            }
        }
    }
    for s in &sources {
        let readers: Vec<&UnitPlan> = p
            .units()
            .filter(|u| u.from.iter().any(|f| f == s))
            .collect();
        let kind = if upstream.is_some() {
            "pipeline"
        } else if readers
            .iter()
            .any(|u| u.harness.inbound.iter().any(|i| i == "in-http"))
        {
            "http"
        } else if links.iter().any(|l| {
            l.name.as_deref() == Some(crate::build::emit::KAFKA_SOURCE_LINK)
                && readers.iter().any(|u| u.name == l.component)
        }) {
            "kafka"
        } else {
            "nats"
        };
        g.node(s, Some(kind), Kind::Source);
    }
    for u in &p.steps {
        g.node(&u.name, None, Kind::Step);
    }
    for u in &p.sinks {
        let kind = match u.harness.out.as_str() {
            "out-http" => "http",
            "out-blobstore" => "s3",
            _ if links.iter().any(|l| {
                l.component == u.name && l.name.is_none() && l.provider == "messaging-kafka"
            }) =>
            {
                "kafka"
            }
            _ => "nats",
        };
        g.node(&u.name, Some(kind), Kind::Sink);
    }
    if let Some(upstream) = &upstream {
        for s in &sources {
            g.edge(upstream, s);
        }
    }
    for u in p.units() {
        for f in &u.from {
            g.edge(f, &u.name);
        }
    }
    for node in &mut g.nodes {
        node.mark = marks.get(&node.name).copied();
    }
    g
}

// ------------------------------------------------------------------------------------------
// The summary
// ------------------------------------------------------------------------------------------

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summary(c: &Counts) -> String {
    if *c == Counts::default() {
        return "no changes to what gets deployed".to_owned();
    }
    let items: Vec<String> = [
        (c.pipelines_added, "new pipeline", "new pipelines"),
        (c.pipelines_removed, "removed pipeline", "removed pipelines"),
        (c.environments_added, "new environment", "new environments"),
        (
            c.environments_removed,
            "removed environment",
            "removed environments",
        ),
        (
            c.delivery,
            "delivery guarantee change",
            "delivery guarantee changes",
        ),
        (c.units_added, "new unit", "new units"),
        (c.units_removed, "removed unit", "removed units"),
        (c.artifacts, "artifact", "artifacts"),
        (c.restamped, "re-stamped artifact", "re-stamped artifacts"),
        (c.wiring, "wiring change", "wiring changes"),
        (c.scaling, "scaling change", "scaling changes"),
        (c.config_values, "config value", "config values"),
        (c.secrets, "secret", "secrets"),
        (c.links, "link", "links"),
        (c.providers, "provider image", "provider images"),
        (c.jetstream, "JetStream change", "JetStream changes"),
        (c.other, "other change", "other changes"),
        (
            c.capabilities,
            "new capability grant",
            "new capability grants",
        ),
    ]
    .into_iter()
    .filter(|(n, _, _)| *n > 0)
    .map(|(n, one, many)| plural(n, one, many))
    .collect();
    format!(
        "{}, {} changed: {}",
        plural(c.environments, "environment", "environments"),
        plural(c.pipelines, "pipeline", "pipelines"),
        items.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::jetstream::{Consumer, ConsumerConfig, StreamConfig};

    fn doc(max_age: i64, consumers: &[(&str, &str, i64)]) -> JetStream {
        JetStream {
            api_version: crate::build::jetstream::API_VERSION.to_owned(),
            kind: crate::build::jetstream::KIND.to_owned(),
            pipeline: "q".to_owned(),
            streams: vec![StreamConfig {
                name: "ETL_DATA_p_q".to_owned(),
                subjects: vec!["etl.p.q.out.a".to_owned()],
                retention: "interest".to_owned(),
                storage: "file".to_owned(),
                discard: "new".to_owned(),
                max_age,
                max_bytes: -1,
                max_msgs: -1,
                duplicate_window: 120_000_000_000,
                num_replicas: 1,
            }],
            consumers: consumers
                .iter()
                .map(|(stream, name, pending)| Consumer {
                    stream: (*stream).to_owned(),
                    config: ConsumerConfig {
                        durable_name: (*name).to_owned(),
                        deliver_subject: format!("etl.p.q.deliver.{name}"),
                        deliver_group: format!("etl.p.q.{name}"),
                        filter_subjects: vec!["etl.p.q.out.a".to_owned()],
                        ack_policy: "explicit".to_owned(),
                        ack_wait: 30_000_000_000,
                        max_deliver: 5,
                        max_ack_pending: *pending,
                        deliver_policy: "all".to_owned(),
                        replay_policy: "instant".to_owned(),
                    },
                })
                .collect(),
        }
    }

    fn brief(changes: &[JetStreamChange]) -> Vec<String> {
        changes
            .iter()
            .map(|c| {
                let value = c
                    .value
                    .as_ref()
                    .map(|v| format!(" {:?} → {:?}", v.old, v.new))
                    .unwrap_or_default();
                format!(
                    "{:?} {} on {} {:?}{}{value}",
                    c.of,
                    c.name,
                    c.stream,
                    c.status,
                    c.field
                        .as_deref()
                        .map(|f| format!(" {f}"))
                        .unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn jetstream_documents_are_compared_stream_then_consumers_field_by_field() {
        let s = "ETL_DATA_p_q";
        let old = doc(
            86_400_000_000_000,
            &[
                (s, "b", 1000),
                (s, "c", 1000),
                ("ETL_DATA_p_o", "q__b", 1000),
            ],
        );
        let new = doc(3_600_000_000_000, &[(s, "a", 1000), (s, "b", 10)]);
        assert_eq!(
            brief(&jetstream_changes(Some(&old), Some(&new))),
            [
                "Stream ETL_DATA_p_q on ETL_DATA_p_q Changed max_age Some(Number(86400000000000)) → Some(Number(3600000000000))",
                "Consumer a on ETL_DATA_p_q Added",
                "Consumer b on ETL_DATA_p_q Changed max_ack_pending Some(Number(1000)) → Some(Number(10))",
                "Consumer c on ETL_DATA_p_q Removed",
                "Consumer q__b on ETL_DATA_p_o Removed",
            ]
        );
        assert!(jetstream_changes(Some(&old), Some(&old)).is_empty());
        assert_eq!(
            brief(&jetstream_changes(Some(&new), None)),
            [
                "Stream ETL_DATA_p_q on ETL_DATA_p_q Removed",
                "Consumer a on ETL_DATA_p_q Removed",
                "Consumer b on ETL_DATA_p_q Removed",
            ]
        );
    }

    #[test]
    fn only_a_change_to_at_most_once_weakens_delivery() {
        let app = |jetstream: Option<JetStream>| Application {
            jetstream,
            ..Application::default()
        };
        let (once, least) = (app(None), app(Some(doc(0, &[]))));
        let weakens =
            |o: &Application, n: &Application| deployment_diff("e", o, n).weakens_delivery();
        assert!(weakens(&least, &once));
        assert!(!weakens(&once, &least));
        assert!(!weakens(&least, &least));
        let added = added_deployment("e", &least);
        assert!(!added.weakens_delivery());
        assert_eq!(added.delivery.unwrap().new.as_deref(), Some(AT_LEAST_ONCE));
    }
}
