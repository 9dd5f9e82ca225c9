//! The wasmCloud v2 applier: brings the hosts of a lattice to a bundle's `k8s/` manifests as the
//! runtime operator would, without Kubernetes — through the hosts' workload API
//! (`runtime.host.<hostId>.workload.start|status|stop`, protojson over NATS request/reply) and
//! their heartbeats (`runtime.operator.heartbeat.<hostId>`). `docs/controller.md` says what
//! it does and how it differs from the operator.
//!
//! [`Workloads::apply`] observes what runs (the workloads this controller started, from its
//! memory and [`ledger`], and the current bundle's, by asking hosts for their deterministic ids),
//! decides ([`plan::decide`], a pure function), starts and stops, and says where each
//! application stands. [`Workloads::observe`] does the same without acting.

mod client;
mod hosts;
mod ledger;
mod manifest;
pub mod plan;
mod proto;
mod request;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use etl::oci::bundle::Bundle;
use futures::StreamExt as _;

use crate::state::{AppState, State};
use client::HostError;
use hosts::Hosts;
use ledger::{Ledger, Record};
use manifest::{Manifest, Map, Resources};
use plan::{Because, Condition, Desired, Inputs, Observed, Owner, Plan, Start, Stop};
use request::{Sources, Template};

pub use hosts::{HEARTBEAT_INTERVAL, HOST_STALE};

/// The annotation each workload carries: its template's hash (the operator's name for it).
pub const HASH_ANNOTATION: &str = "runtime.wasmcloud.dev/workload-replica-set-generation";
/// Ownership annotations each workload carries.
pub const PROJECT_ANNOTATION: &str = "etl.dev/project";
/// See [`PROJECT_ANNOTATION`].
pub const ENVIRONMENT_ANNOTATION: &str = "etl.dev/environment";
/// See [`PROJECT_ANNOTATION`].
pub const DEPLOYMENT_ANNOTATION: &str = "etl.dev/deployment";
/// See [`PROJECT_ANNOTATION`].
pub const APPLICATION_ANNOTATION: &str = "etl.dev/application";
/// See [`PROJECT_ANNOTATION`].
pub const VERSION_ANNOTATION: &str = "etl.dev/version";
/// See [`PROJECT_ANNOTATION`].
pub const REPLICA_ANNOTATION: &str = "etl.dev/replica";
/// The ledger's NATS key-value bucket, by default.
pub const LEDGER_BUCKET: &str = "etl-controller-workloads";
/// How many requests to hosts are in flight at once while observing.
const IN_FLIGHT: usize = 32;

/// The runtime operator's timeouts (`workload_controller.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From `workload.start` to RUNNING (`workloadStartTimeout`).
    pub start: Duration,
    /// One `workload.status` or `heartbeat` request (`workloadStatusTimeout`).
    pub status: Duration,
    /// From `workload.stop` to gone (`workloadStopTimeout`).
    pub stop: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            start: Duration::from_secs(60),
            status: Duration::from_secs(5),
            stop: Duration::from_secs(30),
        }
    }
}

/// How the applier runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Labels the administrator adds to hosts (`--host-label HOST=KEY=VALUE`), by host name
    /// (`wash host --host-name`), friendly name or id; they win over the heartbeat's.
    pub host_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// A YAML file of `v1` `Secret`s (and `ConfigMap`s) the manifests reference (`--secrets`),
    /// read at start and at every apply.
    pub secrets: Option<PathBuf>,
    /// Request timeouts.
    pub timeouts: Timeouts,
    /// The ledger's NATS key-value bucket.
    pub ledger_bucket: String,
    /// How long after start nothing is started, so that every live host has sent a heartbeat
    /// and been asked what it runs (a heartbeat interval and a little) — unless every host the
    /// ledger names for the environment has been heard from ([`plan::starts_held`]).
    pub discovery: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            host_labels: BTreeMap::new(),
            secrets: None,
            timeouts: Timeouts::default(),
            ledger_bucket: LEDGER_BUCKET.to_owned(),
            discovery: HEARTBEAT_INTERVAL + Duration::from_secs(2),
        }
    }
}

/// Why the applier cannot work at all (what concerns one application is its [`AppState`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Host heartbeats cannot be listened to.
    #[error("subscribing to host heartbeats ({subject}) on NATS: {message}")]
    Subscribe {
        /// The subject.
        subject: &'static str,
        /// NATS's error.
        message: String,
    },
    /// The secrets file cannot be read (never says what a value is).
    #[error("the secrets file {}: {reason}", path.display())]
    Secrets {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
}

/// One `WorkloadDeployment` of the bundle, ready to place.
struct Prepared {
    desired: Desired,
    version: String,
    /// The start request's shared part; `None` when `desired.blocked` says why not.
    template: Option<Template>,
    /// The template's annotations and the ownership ones, all but the replica.
    annotations: Map,
}

/// The bundle's deployments, and what could not be read.
struct Wanted {
    owner: Owner,
    deployments: Vec<Prepared>,
    /// Applications whose `k8s/` file could not be read, and why.
    unreadable: BTreeMap<String, String>,
}

/// What one deployment's execution changed and what went wrong.
#[derive(Default)]
struct Outcome {
    added: Vec<Record>,
    removed: Vec<(String, String)>,
    /// (deployment, what went wrong).
    errors: Vec<(String, String)>,
}

/// The v2 applier (see the module's docs).
pub struct Workloads {
    nats: async_nats::Client,
    options: Options,
    hosts: Hosts,
    ledger: Ledger,
    /// The workloads this controller knows of, by (host, id): started, recovered from the
    /// ledger, or found by asking hosts.
    records: BTreeMap<(String, String), Record>,
    /// (host, id) pairs already asked for while looking for the current bundle's workloads.
    probed: BTreeSet<(String, String)>,
    /// The hosts the ledger's entries named at start, by (project, environment): once each
    /// has been heard from, where that owner's workloads run is known, and its starts need not
    /// wait for every host's heartbeat ([`plan::starts_held`]).
    recovered: BTreeMap<(String, String), BTreeSet<String>>,
    started: Instant,
}

impl Workloads {
    /// Listens to host heartbeats, opens the ledger and asks the hosts it names (and any host
    /// the labels name by id) for a heartbeat, and reads the secrets file (to fail now if it is
    /// unreadable).
    pub async fn new(nats: async_nats::Client, options: Options) -> Result<Self, Error> {
        if let Some(path) = &options.secrets {
            read_secrets(path, "")?;
        }
        let started = Instant::now();
        let hosts = Hosts::listen(&nats, options.host_labels.clone())
            .await
            .map_err(|e| Error::Subscribe {
                subject: hosts::HEARTBEAT_SUBJECT,
                message: e.to_string(),
            })?;
        let (ledger, entries) = Ledger::open(&nats, &options.ledger_bucket).await;
        let records: BTreeMap<(String, String), Record> = entries
            .into_iter()
            .map(|r| ((r.host.clone(), r.id.clone()), r))
            .collect();
        let mut recovered: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for r in records.values() {
            recovered
                .entry((r.project.clone(), r.environment.clone()))
                .or_default()
                .insert(r.host.clone());
        }
        let ask: BTreeSet<String> = records
            .keys()
            .map(|(host, _)| host.clone())
            .chain(
                options
                    .host_labels
                    .keys()
                    .filter(|k| subject_token(k))
                    .cloned(),
            )
            .collect();
        let timeout = options.timeouts.status;
        let answers =
            futures::future::join_all(ask.iter().map(|id| hosts.ask(&nats, id, timeout))).await;
        for (id, answer) in ask.iter().zip(answers) {
            match answer {
                Ok(()) => {}
                // A label key that is a host name, not an id.
                Err(HostError::NoResponders { .. }) if !records.keys().any(|(h, _)| h == id) => {}
                Err(e) => tracing::warn!(host = %id, "asking a host for its heartbeat: {e}"),
            }
        }
        Ok(Workloads {
            nats,
            options,
            hosts,
            ledger,
            records,
            probed: BTreeSet::new(),
            recovered,
            started,
        })
    }

    /// Brings the hosts to the bundle's `k8s/` manifests: starts what is missing (each until
    /// RUNNING), rolls changed templates (new ones started, then the old stopped), scales, stops
    /// what the bundle no longer has (only this project's and environment's). Returns one
    /// [`AppState`] per application with a `k8s/` file, in bundle order.
    pub async fn apply(&mut self, bundle: &Bundle) -> Result<Vec<AppState>, Error> {
        let prepared = self.prepare(bundle)?;
        let inputs = self.observe_inputs(&prepared, true).await;
        let plan = plan::decide(&inputs);
        if plan.is_idle() {
            return Ok(app_states(
                bundle,
                &prepared,
                &inputs,
                &plan,
                &BTreeMap::new(),
            ));
        }
        let errors = self.execute(&prepared, &plan).await;
        let inputs = self.observe_inputs(&prepared, true).await;
        let after = plan::decide(&inputs);
        Ok(app_states(bundle, &prepared, &inputs, &after, &errors))
    }

    /// Where each application of the bundle stands on the hosts, without changing anything:
    /// only `workload.status` requests are sent, nothing is written to the ledger.
    pub async fn observe(&mut self, bundle: &Bundle) -> Result<Vec<AppState>, Error> {
        let prepared = self.prepare(bundle)?;
        let inputs = self.observe_inputs(&prepared, false).await;
        let plan = plan::decide(&inputs);
        Ok(app_states(
            bundle,
            &prepared,
            &inputs,
            &plan,
            &BTreeMap::new(),
        ))
    }

    /// Reads the bundle's `k8s/` files and the secrets file into deployments ready to place.
    fn prepare(&self, bundle: &Bundle) -> Result<Wanted, Error> {
        let resources = match &self.options.secrets {
            Some(path) => read_secrets(path, &bundle.facts.environment)?,
            None => Resources::default(),
        };
        Ok(prepare(bundle, &resources))
    }

    /// Asks the hosts about every workload of the owner this controller knows of, and — once
    /// per host and id — about the current bundle's deterministic ids it does not know of
    /// (how a restarted controller without a ledger entry finds them); then the decision's
    /// inputs.
    ///
    /// A workload whose host is not heard from is kept, however long the silence (it counts
    /// for nothing in the decision until its host is back); only its host saying it no longer
    /// has it drops it. When `record` is false (a look while the registry is stale) nothing is
    /// written to the ledger nor remembered: what the hosts answered only makes these inputs.
    async fn observe_inputs(&mut self, prepared: &Wanted, record: bool) -> Inputs {
        let owner = &prepared.owner;
        let hosts = self.hosts.snapshot();
        let reachable: BTreeSet<&str> = hosts
            .iter()
            .filter(|h| !h.stale)
            .map(|h| h.id.as_str())
            .collect();
        // The current bundle's ids not yet asked about, on every reachable host.
        let mut probes: Vec<Record> = Vec::new();
        for p in &prepared.deployments {
            let d = &p.desired;
            for replica in 0..d.replicas {
                let id = plan::workload_id(owner, &d.deployment, &d.hash, replica);
                for host in &reachable {
                    let key = ((*host).to_owned(), id.clone());
                    if !self.records.contains_key(&key) && !self.probed.contains(&key) {
                        probes.push(Record {
                            project: owner.project.clone(),
                            environment: owner.environment.clone(),
                            application: d.application.clone(),
                            deployment: d.deployment.clone(),
                            version: p.version.clone(),
                            hash: d.hash.clone(),
                            replica,
                            host: (*host).to_owned(),
                            id: id.clone(),
                        });
                    }
                }
            }
        }
        // Only the current bundle's ids stay remembered as asked about.
        let current: BTreeSet<(String, String)> = prepared
            .deployments
            .iter()
            .flat_map(|p| {
                let d = &p.desired;
                (0..d.replicas).map(move |r| plan::workload_id(owner, &d.deployment, &d.hash, r))
            })
            .flat_map(|id| reachable.iter().map(move |h| ((*h).to_owned(), id.clone())))
            .collect();
        self.probed.retain(|k| current.contains(k));
        let known: Vec<Record> = self
            .records
            .values()
            .filter(|r| r.project == owner.project && r.environment == owner.environment)
            .cloned()
            .collect();
        let nats = &self.nats;
        let timeout = self.options.timeouts.status;
        let reachable = &reachable;
        let ask = |r: Record| async move {
            let answer = if reachable.contains(r.host.as_str()) {
                Some(client::status(nats, &r.host, &r.id, timeout).await)
            } else {
                None
            };
            (r, answer)
        };
        let known_answers: Vec<_> = futures::stream::iter(known.into_iter().map(ask))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let probe_answers: Vec<_> = futures::stream::iter(probes.into_iter().map(ask))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut observed = Vec::new();
        for (r, answer) in known_answers {
            let key = (r.host.clone(), r.id.clone());
            match answer.map(|a| a.map(|s| condition(&s.workload_state).map(|c| (c, s.message)))) {
                // The host no longer has it: forgotten.
                Some(Ok(None)) if record => {
                    tracing::info!(
                        deployment = %r.deployment, replica = r.replica, host = %r.host,
                        workload = %r.id, "workload no longer on its host"
                    );
                    self.ledger.remove(&r).await;
                    self.records.remove(&key);
                }
                Some(Ok(None)) => {}
                Some(Ok(Some((condition, message)))) => {
                    observed.push(observed_as(&r, condition, message))
                }
                Some(Err(e)) => {
                    tracing::warn!(deployment = %r.deployment, workload = %r.id, "{e}");
                    observed.push(observed_as(&r, Condition::Unknown, e.to_string()));
                }
                // Its host is not heard from: the decision counts it for nothing.
                None => observed.push(observed_as(&r, Condition::Unknown, String::new())),
            }
        }
        for (r, answer) in probe_answers {
            let key = (r.host.clone(), r.id.clone());
            match answer {
                Some(Ok(status)) => match condition(&status.workload_state) {
                    Some(condition) if record => {
                        tracing::info!(
                            deployment = %r.deployment, replica = r.replica, host = %r.host,
                            workload = %r.id, state = %status.workload_state,
                            "found a workload of the bundle on a host"
                        );
                        self.probed.insert(key.clone());
                        self.ledger.put(&r).await;
                        observed.push(observed_as(&r, condition, status.message));
                        self.records.insert(key, r);
                    }
                    // Asked again by the next apply, which records it.
                    Some(condition) => observed.push(observed_as(&r, condition, status.message)),
                    None => {
                        self.probed.insert(key);
                    }
                },
                // Asked again next time.
                Some(Err(e)) => tracing::warn!(deployment = %r.deployment, workload = %r.id, "{e}"),
                None => {}
            }
        }
        // Until every live host has sent a heartbeat, one not heard from yet may run workloads
        // of this environment that only it can tell of: nothing is started then, unless every
        // host the ledger named for this environment has been heard from.
        let discovering = self.started.elapsed() < self.options.discovery;
        // Hosts that answered a status request are among them: only those are asked.
        let heard: BTreeSet<String> = self
            .hosts
            .snapshot()
            .into_iter()
            .filter(|h| !h.stale)
            .map(|h| h.id)
            .collect();
        let starts_held = plan::starts_held(
            discovering,
            self.options.discovery,
            self.recovered
                .get(&(owner.project.clone(), owner.environment.clone()))
                .unwrap_or(&BTreeSet::new()),
            &heard,
        );
        Inputs {
            owner: owner.clone(),
            desired: prepared
                .deployments
                .iter()
                .map(|p| p.desired.clone())
                .collect(),
            observed,
            hosts,
            held: prepared.unreadable.keys().cloned().collect(),
            starts_held,
            discovering,
        }
    }

    /// Carries out a plan: each deployment's steps in order (deployments at once), and the
    /// prune. Returns the errors by deployment (those of the prune by the deployment the
    /// bundle no longer has).
    async fn execute(&mut self, prepared: &Wanted, plan: &Plan) -> BTreeMap<String, String> {
        let by_name: BTreeMap<&str, &Prepared> = prepared
            .deployments
            .iter()
            .map(|p| (p.desired.deployment.as_str(), p))
            .collect();
        let this = &*self;
        let by_name = &by_name;
        let steps = plan
            .steps
            .iter()
            .filter(|s| !s.is_idle())
            .map(|step| async move {
                let p = by_name[step.deployment.as_str()];
                let mut outcome = Outcome::default();
                this.stop_all(&step.stop_first, &mut outcome).await;
                let starts = futures::future::join_all(
                    step.start.iter().map(|s| this.start(&prepared.owner, p, s)),
                )
                .await;
                let mut started = true;
                for (record, result) in starts {
                    outcome.added.extend(record);
                    if let Err(e) = result {
                        started = false;
                        outcome.errors.push((step.deployment.clone(), e));
                    }
                }
                if started {
                    this.stop_all(&step.stop_after, &mut outcome).await;
                }
                (step.deployment.clone(), outcome)
            });
        let prune = async {
            let mut outcome = Outcome::default();
            this.stop_all(&plan.prune, &mut outcome).await;
            outcome
        };
        let (outcomes, pruned) =
            futures::future::join(futures::future::join_all(steps), prune).await;
        let mut errors = BTreeMap::new();
        for (deployment, outcome) in outcomes {
            if !outcome.errors.is_empty() {
                let each: Vec<&str> = outcome.errors.iter().map(|(_, e)| e.as_str()).collect();
                errors.insert(deployment, each.join("; "));
            }
            self.settle(outcome);
        }
        let mut prune_errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (deployment, e) in &pruned.errors {
            tracing::warn!(deployment = %deployment, "pruning: {e}");
            prune_errors
                .entry(deployment.clone())
                .or_default()
                .push(e.clone());
        }
        for (deployment, e) in prune_errors {
            errors.insert(deployment, e.join("; "));
        }
        self.settle(pruned);
        errors
    }

    fn settle(&mut self, outcome: Outcome) {
        for key in outcome.removed {
            self.records.remove(&key);
        }
        for r in outcome.added {
            self.records.insert((r.host.clone(), r.id.clone()), r);
        }
    }

    async fn stop_all(&self, stops: &[Stop], outcome: &mut Outcome) {
        let results = futures::future::join_all(stops.iter().map(|s| self.stop(s))).await;
        for (s, result) in stops.iter().zip(results) {
            match result {
                Ok(true) => outcome.removed.push((s.host.clone(), s.id.clone())),
                Ok(false) => {}
                Err(e) => outcome.errors.push((s.deployment.clone(), e)),
            }
        }
    }

    /// Stops a workload and waits until its host no longer has it; true when gone.
    async fn stop(&self, s: &Stop) -> Result<bool, String> {
        let t = Instant::now();
        let host = self.host_name(&s.host);
        let because = match s.because {
            Because::Failed => "in error",
            Because::Duplicate => "a duplicate",
            Because::Surplus => "surplus",
            Because::Replaced => "of a previous template",
            Because::Removed => "no longer in the bundle",
        };
        let t_ = self.options.timeouts;
        match client::stop(&self.nats, &s.host, &s.id, t_.stop, t_.status).await {
            Ok(client::Stopped::Gone) => {
                tracing::info!(
                    deployment = %s.deployment, host = %host, workload = %s.id,
                    "stopped a workload ({because}) in {:.1?}", t.elapsed()
                );
                if let Some(r) = self.records.get(&(s.host.clone(), s.id.clone())) {
                    self.ledger.remove(r).await;
                }
                Ok(true)
            }
            Ok(client::Stopped::InError(message)) => {
                tracing::warn!(
                    deployment = %s.deployment, host = %host, workload = %s.id,
                    "stopped a workload ({because}); its host keeps it in error: {message}"
                );
                Ok(false)
            }
            Err(e) => Err(format!("stopping workload {} on {host}: {e}", s.id)),
        }
    }

    /// Starts a replica and waits until it runs. Returns the record of a workload the host may
    /// have (kept so that the next observation settles it), and the outcome.
    async fn start(
        &self,
        owner: &Owner,
        p: &Prepared,
        s: &Start,
    ) -> (Option<Record>, Result<(), String>) {
        let d = &p.desired;
        let Some(template) = &p.template else {
            // A blocked deployment gets no start from the decision.
            return (None, Err(d.blocked.clone().unwrap_or_default()));
        };
        let id = plan::workload_id(owner, &d.deployment, &d.hash, s.replica);
        let name = plan::workload_name(&d.deployment, &d.hash, s.replica);
        let host = self.host_name(&s.host);
        let record = Record {
            project: owner.project.clone(),
            environment: owner.environment.clone(),
            application: d.application.clone(),
            deployment: d.deployment.clone(),
            version: p.version.clone(),
            hash: d.hash.clone(),
            replica: s.replica,
            host: s.host.clone(),
            id: id.clone(),
        };
        let mut annotations = p.annotations.clone();
        annotations.insert(REPLICA_ANNOTATION.to_owned(), s.replica.to_string());
        self.ledger.put(&record).await;
        let t = Instant::now();
        let timeouts = self.options.timeouts;
        let body = template.request(&owner.environment, &name, &id, &annotations);
        let fail = |what: String| format!("replica {} on {host}: {what}", s.replica);
        let mut status = match client::start(&self.nats, &s.host, body, timeouts.start).await {
            Ok(status) => status,
            // The host may have it or not: the next observation says.
            Err(e) => return (Some(record), Err(fail(e.to_string()))),
        };
        if status.workload_state == proto::state::ERROR && status.message.contains("already exists")
        {
            // Started before (this controller's earlier life): the next observation says how
            // it is.
            tracing::info!(
                deployment = %d.deployment, replica = s.replica, host = %host, workload = %id,
                "the host already has this workload"
            );
            return (Some(record), Ok(()));
        }
        loop {
            match status.workload_state.as_str() {
                proto::state::RUNNING | proto::state::COMPLETED => {
                    tracing::info!(
                        deployment = %d.deployment, replica = s.replica, host = %host,
                        workload = %id, template = %d.hash,
                        "workload running {:.1?} after workload.start", t.elapsed()
                    );
                    return (Some(record), Ok(()));
                }
                proto::state::ERROR | proto::state::NOT_FOUND => {
                    let reason = fail(format!("{}: {}", status.workload_state, status.message));
                    return (self.clean_up(record).await, Err(reason));
                }
                _ => {}
            }
            if t.elapsed() > timeouts.start {
                let reason = fail(format!(
                    "still {} {:?} after workload.start: {}",
                    status.workload_state, timeouts.start, status.message
                ));
                return (self.clean_up(record).await, Err(reason));
            }
            tokio::time::sleep(client::POLL).await;
            status = match client::status(&self.nats, &s.host, &id, timeouts.status).await {
                Ok(status) => status,
                Err(e) => return (Some(record), Err(fail(e.to_string()))),
            };
        }
    }

    /// Stops a workload that failed to start; its record, if the host may still have it.
    async fn clean_up(&self, record: Record) -> Option<Record> {
        let t = self.options.timeouts;
        match client::stop(&self.nats, &record.host, &record.id, t.stop, t.status).await {
            Ok(client::Stopped::Gone) => {
                self.ledger.remove(&record).await;
                None
            }
            Ok(client::Stopped::InError(_)) => Some(record),
            Err(e) => {
                tracing::warn!(workload = %record.id, "stopping a workload that failed to start: {e}");
                Some(record)
            }
        }
    }

    fn host_name(&self, id: &str) -> String {
        self.hosts
            .snapshot()
            .into_iter()
            .find(|h| h.id == id)
            .map_or_else(
                || id.to_owned(),
                |h| {
                    if h.name.is_empty() {
                        id.to_owned()
                    } else {
                        h.name
                    }
                },
            )
    }
}

/// One [`AppState`] per application with a `k8s/` file, in bundle order: failed if its file is
/// unreadable or a deployment of it failed (or its execution did), reconciling if one is,
/// deployed otherwise. Then, by name, one per application the bundle no longer has of which
/// workloads are left ([`removed`]); a deployment the bundle no longer has of an application it
/// still has counts in that application's state.
fn app_states(
    bundle: &Bundle,
    prepared: &Wanted,
    inputs: &Inputs,
    plan: &Plan,
    errors: &BTreeMap<String, String>,
) -> Vec<AppState> {
    let assessments = plan::assess(inputs, plan);
    let mut leftovers = removed(inputs, errors);
    let mut states: Vec<AppState> = bundle
        .facts
        .applications
        .iter()
        .filter(|app| app.k8s.is_some())
        .map(|app| {
            let version = Some(app.version.clone());
            if let Some(reason) = prepared.unreadable.get(&app.name) {
                return AppState {
                    name: app.name.clone(),
                    version,
                    state: State::Failed,
                    reason: Some(reason.clone()),
                };
            }
            let mut failed = Vec::new();
            let mut reconciling = Vec::new();
            for a in assessments.iter().filter(|a| a.application == app.name) {
                if let Some(e) = errors.get(&a.deployment) {
                    failed.push(format!("{}: {e}", a.deployment));
                    continue;
                }
                let line = format!("{}: {}", a.deployment, a.reason.clone().unwrap_or_default());
                match a.state {
                    State::Failed => failed.push(line),
                    State::Reconciling | State::Undeployed => reconciling.push(line),
                    State::Deployed => {}
                }
            }
            for r in leftovers.remove(&app.name).unwrap_or_default() {
                match r.state {
                    State::Failed => failed.push(format!(
                        "{}: removed from the bundle, but stopping its workloads failed: {}",
                        r.deployment, r.reason
                    )),
                    _ => reconciling.push(format!(
                        "{}: removed from the bundle: being undeployed ({})",
                        r.deployment, r.reason
                    )),
                }
            }
            let (state, reason) = if !failed.is_empty() {
                (State::Failed, Some(failed.join("; ")))
            } else if !reconciling.is_empty() {
                (State::Reconciling, Some(reconciling.join("; ")))
            } else {
                (State::Deployed, None)
            };
            AppState {
                name: app.name.clone(),
                version,
                state,
                reason,
            }
        })
        .collect();
    for (application, deployments) in leftovers {
        let failed = deployments.iter().any(|r| r.state == State::Failed);
        let details: Vec<String> = deployments
            .iter()
            .map(|r| format!("{}: {}", r.deployment, r.reason))
            .collect();
        let reason = if failed {
            format!(
                "removed from the bundle, but stopping its workloads failed: {}",
                details.join("; ")
            )
        } else {
            format!(
                "removed from the bundle: being undeployed ({})",
                details.join("; ")
            )
        };
        states.push(AppState {
            version: deployments.iter().find_map(|r| r.version.clone()),
            name: application,
            state: if failed {
                State::Failed
            } else {
                State::Reconciling
            },
            reason: Some(reason),
        });
    }
    states
}

/// What is left of a deployment the bundle no longer has.
#[derive(Debug)]
struct Leftover {
    deployment: String,
    /// The version its workloads were started at, when known.
    version: Option<String>,
    /// `failed` when stopping one failed, else `reconciling`.
    state: State,
    /// How many workloads are left and where, or what stopping them answered.
    reason: String,
}

/// The workloads of deployments the bundle no longer has, by application and deployment —
/// whether the plan stops them now or their host is not heard from (they are stopped when it
/// is back). Those of an application whose manifest could not be read are left as they run and
/// not counted here (that application is failed already).
fn removed(inputs: &Inputs, errors: &BTreeMap<String, String>) -> BTreeMap<String, Vec<Leftover>> {
    let wanted: BTreeSet<&str> = inputs
        .desired
        .iter()
        .map(|d| d.deployment.as_str())
        .collect();
    let mut by_deployment: BTreeMap<(&str, &str), Vec<&Observed>> = BTreeMap::new();
    for o in inputs.observed.iter().filter(|o| {
        !wanted.contains(o.deployment.as_str()) && !inputs.held.contains(&o.application)
    }) {
        by_deployment
            .entry((o.application.as_str(), o.deployment.as_str()))
            .or_default()
            .push(o);
    }
    let live: BTreeMap<&str, &plan::Host> = inputs
        .hosts
        .iter()
        .filter(|h| !h.stale)
        .map(|h| (h.id.as_str(), h))
        .collect();
    let mut out: BTreeMap<String, Vec<Leftover>> = BTreeMap::new();
    for ((application, deployment), workloads) in by_deployment {
        let version = workloads.iter().find_map(|o| o.version.clone());
        let (state, reason) = match errors.get(deployment) {
            Some(e) => (State::Failed, e.clone()),
            None => {
                let silent: BTreeSet<&str> = workloads
                    .iter()
                    .filter(|o| !live.contains_key(o.host.as_str()))
                    .map(|o| o.host.as_str())
                    .collect();
                let away = workloads
                    .iter()
                    .filter(|o| silent.contains(o.host.as_str()))
                    .count();
                let mut reason = match workloads.len() {
                    1 => "1 workload left".to_owned(),
                    n => format!("{n} workloads left"),
                };
                if away > 0 {
                    let hosts: Vec<String> = silent
                        .iter()
                        .map(|id| {
                            inputs
                                .hosts
                                .iter()
                                .find(|h| h.id == *id && !h.name.is_empty())
                                .map_or_else(|| (*id).to_owned(), |h| h.name.clone())
                        })
                        .collect();
                    reason.push_str(&format!(
                        ", {away} on hosts not heard from ({}): stopped when they are back",
                        hosts.join(", ")
                    ));
                }
                (State::Reconciling, reason)
            }
        };
        out.entry(application.to_owned())
            .or_default()
            .push(Leftover {
                deployment: deployment.to_owned(),
                version,
                state,
                reason,
            });
    }
    out
}

/// The bundle's deployments for its environment, ready to place; `resources` are the secrets
/// file's.
fn prepare(bundle: &Bundle, resources: &Resources) -> Wanted {
    let facts = &bundle.facts;
    let owner = Owner {
        project: facts.project.clone(),
        environment: facts.environment.clone(),
    };
    let namespace = facts.environment.as_str();
    let mut out = Wanted {
        owner,
        deployments: Vec::new(),
        unreadable: BTreeMap::new(),
    };
    for app in &facts.applications {
        let Some(path) = &app.k8s else { continue };
        let bytes = bundle
            .files
            .get(path)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let manifest = match Manifest::read(path, bytes, namespace) {
            Ok(m) => m,
            Err(e) => {
                out.unreadable.insert(app.name.clone(), e.to_string());
                continue;
            }
        };
        if let Some(d) = manifest.deployments.iter().find(|d| {
            out.deployments
                .iter()
                .any(|p| p.desired.deployment == d.metadata.name)
        }) {
            out.unreadable.insert(
                app.name.clone(),
                format!(
                    "{path}: WorkloadDeployment {} is also another application's",
                    d.metadata.name
                ),
            );
            continue;
        }
        let sources = Sources {
            namespace,
            bundle_config_maps: &manifest.config_maps,
            resources,
        };
        for d in &manifest.deployments {
            let spec = d.effective_template();
            let hash = manifest::template_hash(&spec);
            let (template, blocked) = match request::unsupported(d) {
                Some(reason) => (None, Some(reason)),
                None => match Template::new(&spec, &sources) {
                    Ok(t) => (Some(t), None),
                    Err(reason) => (None, Some(reason)),
                },
            };
            let mut annotations = d.spec.template.annotations.clone();
            annotations.extend([
                (PROJECT_ANNOTATION.to_owned(), out.owner.project.clone()),
                (
                    ENVIRONMENT_ANNOTATION.to_owned(),
                    out.owner.environment.clone(),
                ),
                (APPLICATION_ANNOTATION.to_owned(), app.name.clone()),
                (DEPLOYMENT_ANNOTATION.to_owned(), d.metadata.name.clone()),
                (VERSION_ANNOTATION.to_owned(), app.version.clone()),
                (HASH_ANNOTATION.to_owned(), hash.clone()),
            ]);
            let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            out.deployments.push(Prepared {
                desired: Desired {
                    deployment: d.metadata.name.clone(),
                    application: app.name.clone(),
                    hash,
                    replicas: u32::try_from(d.spec.replicas).unwrap_or(0),
                    host_selector: spec.host_selector.clone(),
                    host_id: non_empty(&spec.host_id),
                    environment: non_empty(&spec.environment),
                    recreate: d.recreate(),
                    blocked,
                },
                version: app.version.clone(),
                template,
                annotations,
            });
        }
    }
    out
}

fn observed_as(r: &Record, condition: Condition, message: String) -> Observed {
    Observed {
        id: r.id.clone(),
        host: r.host.clone(),
        deployment: r.deployment.clone(),
        application: r.application.clone(),
        hash: r.hash.clone(),
        replica: r.replica,
        condition,
        message,
        version: Some(r.version.clone()),
    }
}

/// A host's state name as a condition; `None` when the host does not have the workload.
fn condition(state: &str) -> Option<Condition> {
    Some(match state {
        proto::state::RUNNING => Condition::Running,
        proto::state::COMPLETED => Condition::Completed,
        proto::state::STARTING => Condition::Starting,
        proto::state::STOPPING => Condition::Stopping,
        proto::state::ERROR => Condition::Error,
        proto::state::NOT_FOUND => return None,
        // UNSPECIFIED (left out) or a state this controller does not know.
        _ => Condition::Unknown,
    })
}

/// Whether `s` can be one token of a NATS subject.
fn subject_token(s: &str) -> bool {
    !s.is_empty() && !s.contains(['.', '*', '>', ' ', '\t', '\r', '\n'])
}

fn read_secrets(path: &PathBuf, namespace: &str) -> Result<Resources, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Secrets {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Resources::read(&text, namespace).map_err(|reason| Error::Secrets {
        path: path.clone(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compile-time check, never called: the controller runs `apply` and `observe` in tasks
    /// of a multi-threaded runtime, so their futures must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(w: &mut Workloads, b: &Bundle) {
        fn send<T: Send>(_: T) {}
        send(w.apply(b));
    }

    fn app(name: &str, k8s: Option<&str>) -> etl::oci::bundle::ApplicationFacts {
        etl::oci::bundle::ApplicationFacts {
            name: name.to_owned(),
            pipeline: k8s.map(|_| name.to_owned()),
            version: format!("sha-{name}"),
            shared: k8s.is_none(),
            wadm: format!("wadm/{name}.yaml"),
            k8s: k8s.map(|_| format!("k8s/{name}.yaml")),
            artifacts: Vec::new(),
        }
    }

    fn deployment(name: &str, extra: &str) -> String {
        format!(
            "---\napiVersion: runtime.wasmcloud.dev/v1alpha1\nkind: WorkloadDeployment\n\
             metadata:\n  name: {name}\nspec:\n  replicas: 2\n  template:\n    spec:\n      \
             components:\n      - name: c\n        image: r/c@sha256:00\n{extra}"
        )
    }

    /// A bundle of a shared application (no `k8s/`), a pipeline with a deployment that runs and
    /// one whose Secret is missing, and a pipeline whose file holds a Secret.
    fn bundle() -> Bundle {
        let secret_from = "      hostInterfaces:\n      - namespace: wasi\n        package: config\n        \
                           interfaces: [store]\n        secretFrom:\n        - name: gone\n      \
                           hostSelector:\n        zone: lab\n";
        let good = format!(
            "{}{}",
            deployment("p-a", ""),
            deployment("p-b", secret_from)
        );
        let bad = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n";
        Bundle {
            facts: etl::oci::bundle::Facts {
                api_version: etl::oci::bundle::API_VERSION.to_owned(),
                kind: etl::oci::bundle::KIND.to_owned(),
                project: "iot".to_owned(),
                environment: "dev".to_owned(),
                registry: "r".to_owned(),
                lattice: "l".to_owned(),
                revision: None,
                source: None,
                applications: vec![
                    app("listener", None),
                    app("p", Some(&good)),
                    app("q", Some(bad)),
                ],
                pipelines: Vec::new(),
            },
            files: BTreeMap::from([
                ("k8s/p.yaml".to_owned(), good.into_bytes()),
                ("k8s/q.yaml".to_owned(), bad.as_bytes().to_vec()),
            ]),
        }
    }

    #[test]
    fn prepares_each_deployment_and_holds_unreadable_applications() {
        let b = bundle();
        let wanted = prepare(&b, &Resources::default());
        assert_eq!(
            wanted.owner,
            Owner {
                project: "iot".into(),
                environment: "dev".into()
            }
        );
        let names: Vec<&str> = wanted
            .deployments
            .iter()
            .map(|p| p.desired.deployment.as_str())
            .collect();
        assert_eq!(names, ["p-a", "p-b"]);
        let a = &wanted.deployments[0];
        assert_eq!(a.desired.replicas, 2);
        assert_eq!(a.desired.application, "p");
        assert_eq!(a.desired.blocked, None);
        assert_eq!(a.annotations[PROJECT_ANNOTATION], "iot");
        assert_eq!(a.annotations[HASH_ANNOTATION], a.desired.hash);
        let b_ = &wanted.deployments[1];
        assert_eq!(b_.desired.host_selector["zone"], "lab");
        assert!(b_.template.is_none());
        assert_eq!(
            b_.desired.blocked.as_deref(),
            Some(
                "Secret dev/gone not found (secretFrom of host interface wasi:config): give it \
                 in the controller's secrets file"
            )
        );
        assert!(wanted.unreadable["q"].contains("does not belong in a bundle"));

        // Nothing runs, one host: p fails on p-b's Secret (p-a would start), q on its file; the
        // shared listener has no state.
        let inputs = Inputs {
            owner: wanted.owner.clone(),
            desired: wanted
                .deployments
                .iter()
                .map(|p| p.desired.clone())
                .collect(),
            observed: Vec::new(),
            hosts: vec![plan::Host {
                id: "h".into(),
                name: "h-1".into(),
                labels: Map::new(),
                environment: String::new(),
                stale: false,
                workloads: 0,
            }],
            held: wanted.unreadable.keys().cloned().collect(),
            starts_held: None,
            discovering: false,
        };
        let plan = plan::decide(&inputs);
        assert_eq!(plan.steps[0].start.len(), 2);
        let states = app_states(&b, &wanted, &inputs, &plan, &BTreeMap::new());
        let summary: Vec<(&str, State, &str)> = states
            .iter()
            .map(|s| (s.name.as_str(), s.state, s.reason.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(summary.len(), 2, "{summary:?}");
        assert_eq!(summary[0].0, "p");
        assert_eq!(summary[0].1, State::Failed);
        assert!(
            summary[0].2.starts_with("p-b: Secret dev/gone not found"),
            "{summary:?}"
        );
        assert_eq!(summary[1].0, "q");
        assert_eq!(summary[1].1, State::Failed);
        assert!(
            summary[1]
                .2
                .starts_with("k8s/q.yaml: document 1 (v1 Secret s)"),
            "{summary:?}"
        );
        assert!(
            states
                .iter()
                .all(|s| s.version.as_deref() == Some(&format!("sha-{}", s.name)[..]))
        );

        // An execution error wins over what the hosts say.
        let errors = BTreeMap::from([(
            "p-a".to_owned(),
            "replica 0 on h-1: WORKLOAD_STATE_ERROR: no".to_owned(),
        )]);
        let states = app_states(&b, &wanted, &inputs, &plan, &errors);
        assert!(
            states[0]
                .reason
                .as_deref()
                .unwrap()
                .starts_with("p-a: replica 0 on h-1: WORKLOAD_STATE_ERROR: no; p-b: Secret"),
            "{states:?}"
        );
    }

    #[test]
    fn what_is_left_to_prune_has_a_state() {
        let b = bundle();
        let wanted = prepare(&b, &Resources::default());
        let host = |id: &str, stale| plan::Host {
            id: id.into(),
            name: format!("{id}-1"),
            labels: Map::new(),
            environment: String::new(),
            stale,
            workloads: 0,
        };
        let a_hash = wanted.deployments[0].desired.hash.clone();
        let running =
            |deployment: &str, application: &str, hash: &str, replica, host: &str| Observed {
                id: format!("w-{deployment}-{replica}"),
                host: host.into(),
                deployment: deployment.into(),
                application: application.into(),
                hash: hash.into(),
                replica,
                condition: Condition::Running,
                message: String::new(),
                version: Some(format!("sha-{application}")),
            };
        let inputs = Inputs {
            owner: wanted.owner.clone(),
            desired: wanted
                .deployments
                .iter()
                .map(|p| p.desired.clone())
                .collect(),
            observed: vec![
                running("p-a", "p", &a_hash, 0, "h"),
                running("p-a", "p", &a_hash, 1, "h"),
                // A deployment p no longer has.
                running("p-c", "p", "c1", 0, "h"),
                // A pipeline gone from the bundle, on a live host: pruned now.
                running("old-x", "old", "x1", 0, "h"),
                // One gone from the bundle whose host is not heard from: left until it is.
                running("gone-y", "gone", "y1", 0, "g"),
                running("gone-y", "gone", "y1", 1, "h"),
                // q's file is unreadable: what runs of it is left alone, and not counted.
                running("q-z", "q", "z1", 0, "h"),
            ],
            hosts: vec![host("h", false), host("g", true)],
            held: wanted.unreadable.keys().cloned().collect(),
            starts_held: None,
            discovering: false,
        };
        let plan = plan::decide(&inputs);
        let pruned: Vec<(&str, &str)> = plan
            .prune
            .iter()
            .map(|s| (s.deployment.as_str(), s.host.as_str()))
            .collect();
        assert_eq!(pruned, [("gone-y", "h"), ("old-x", "h"), ("p-c", "h")]);

        // Stopping old-x and p-c failed; the rest is under way.
        let errors = BTreeMap::from([
            (
                "old-x".to_owned(),
                "stopping workload w-old-x-0 on h-1: request timed out".to_owned(),
            ),
            (
                "p-c".to_owned(),
                "stopping workload w-p-c-0 on h-1: no".to_owned(),
            ),
        ]);
        let states = app_states(&b, &wanted, &inputs, &plan, &errors);
        let summary: Vec<(&str, State, Option<&str>, &str)> = states
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.state,
                    s.version.as_deref(),
                    s.reason.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(summary.len(), 4, "{summary:#?}");
        assert_eq!(&summary[0].0, &"p");
        assert!(
            summary[0].3.ends_with(
                "; p-c: removed from the bundle, but stopping its workloads failed: \
                     stopping workload w-p-c-0 on h-1: no"
            ),
            "{summary:#?}"
        );
        assert_eq!(summary[1].0, "q");
        assert_eq!(
            summary[2],
            (
                "gone",
                State::Reconciling,
                Some("sha-gone"),
                "removed from the bundle: being undeployed (gone-y: 2 workloads left, 1 on \
                 hosts not heard from (g-1): stopped when they are back)"
            )
        );
        assert_eq!(
            summary[3],
            (
                "old",
                State::Failed,
                Some("sha-old"),
                "removed from the bundle, but stopping its workloads failed: old-x: stopping \
                 workload w-old-x-0 on h-1: request timed out"
            )
        );

        // Only the silent host's workload is left: still not deployed.
        let mut later = inputs.clone();
        later
            .observed
            .retain(|o| o.host == "g" || o.deployment == "p-a" || o.application == "q");
        let plan = plan::decide(&later);
        assert!(plan.prune.is_empty(), "{:?}", plan.prune);
        let states = app_states(&b, &wanted, &later, &plan, &BTreeMap::new());
        let names: Vec<(&str, State)> = states.iter().map(|s| (s.name.as_str(), s.state)).collect();
        assert_eq!(
            names,
            [
                ("p", State::Failed),
                ("q", State::Failed),
                ("gone", State::Reconciling)
            ]
        );
        // Gone everywhere: no line.
        later.observed.retain(|o| o.host != "g");
        let states = app_states(&b, &wanted, &later, &plan::decide(&later), &BTreeMap::new());
        assert_eq!(states.len(), 2, "{states:?}");
    }

    #[test]
    fn host_states_read_as_conditions() {
        assert_eq!(condition(proto::state::RUNNING), Some(Condition::Running));
        assert_eq!(
            condition(proto::state::COMPLETED),
            Some(Condition::Completed)
        );
        assert_eq!(condition(proto::state::STARTING), Some(Condition::Starting));
        assert_eq!(condition(proto::state::STOPPING), Some(Condition::Stopping));
        assert_eq!(condition(proto::state::ERROR), Some(Condition::Error));
        assert_eq!(condition(proto::state::NOT_FOUND), None);
        assert_eq!(condition(""), Some(Condition::Unknown));
    }

    #[test]
    fn only_subject_tokens_are_asked_for_heartbeats() {
        assert!(subject_token("01a250e9-f3b1-7d92-9743-faa7cf3529c1"));
        assert!(subject_token("lab-1"));
        assert!(!subject_token("lab.1"));
        assert!(!subject_token("a b"));
        assert!(!subject_token(""));
    }
}
