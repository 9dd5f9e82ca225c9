//! `etl run` and `etl test`: executes the composed units of one pipeline (or of several on one bus)
//! in-process on wasmtime, wired the way the deployment plan ([`etl::build::deployment`]) wires them
//! on a lattice.
//!
//! - The bytes run are the composed artifacts `etl compile` produced, found by digest; nothing
//!   is re-composed here.
//! - An in-memory bus stands in for NATS: a publish reaches every unit subscribed to its subject
//!   (fan-out; NATS wildcards `*` and `>` match as on NATS), a unit may subscribe to several
//!   (fan-in). Several pipelines loaded together ([`Runtime::load_together`]) share the bus, so a
//!   sub-pipeline receives what the pipeline it reads publishes; records enter the first one.
//!   HTTP sinks are captured, never sent, and so are the objects of S3 sinks (served
//!   `wasi:blobstore` in memory).
//! - Records travel in batches, as on a lattice: the source delivers [`Limits::batch`] input
//!   records at a time (one envelope on a subject, or one NDJSON `POST` where the records allow
//!   it), each unit is called once per batch it receives, and publishes one message per batch.
//!   Every record keeps its input's index: a published record's `origin` (docs/envelope.md)
//!   names the record of the received batch it came from, so outputs, dead letters and counts
//!   stay per record.
//! - Each batch is carried through the whole pipeline before the next one starts, in a fixed
//!   breadth-first order, so a run is deterministic: the same inputs give the same outputs in
//!   the same order.
//! - Isolation: every call (one batch into one unit) gets a fresh store and instance, bounded
//!   by [`Limits`] (or, opted into with [`Limits::calls_per_instance`], an instance serves
//!   several batches in a row, and is replaced after any failure). Whatever a call does wrong
//!   (trap, endless loop, memory bomb, too many outputs) fails the records of that batch at that
//!   unit, is reported with the unit's name and the inputs' indexes, and the run goes on. A
//!   failed call's publishes are dropped, so a retried call cannot deliver twice.
//! - At least once: a unit whose configuration has [`MAX_DELIVER`] receives each message as
//!   from a JetStream consumer, with an ack subject; its `-NAK` or missing answer delivers the
//!   message again (at once), up to that many deliveries, and the last one's dead letters show
//!   like any step's (docs/running.md#at-least-once-delivery).
//!
//! See `docs/running.md` for the user-facing description.

pub mod artifacts;
mod host;
pub mod input;
pub mod output;
pub mod secrets;
pub mod stream;
pub mod test;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Component, Instance, InstancePre};
use wasmtime::{Config, Engine, Store, Trap};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::sync::{Proxy, ProxyIndices};

use etl::build::deployment::{Deployment, UnitKind};
use etl::spec::model::SourceConnector;

use host::{BrokerMessage, Host, Outgoing, Published, Unit, UnitIndices};
pub use host::{CapturedObject, CapturedRequest, LogLine};
use secrets::{MissingSecret, Redactor};

/// Limits of every call into a unit. The defaults suit real transforms with a wide margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (about one unit per WebAssembly instruction) per call, instantiation included. A
    /// call that runs out fails with [`FailureKind::Timeout`]. Fuel rather than a wall-clock
    /// deadline: the same record gives the same outcome on a fast and a slow machine.
    pub fuel: u64,
    /// Largest size of any one linear memory, in bytes; growing past it fails the call with
    /// [`FailureKind::Memory`].
    pub memory: usize,
    /// Most outputs one record may give at a unit; a call (a batch of records) may deliver this
    /// many times its records (publishes, HTTP requests, objects), and one record may have at
    /// most this many outputs. More fail the call with [`FailureKind::OutputLimit`] and deliver
    /// none of them.
    pub max_outputs: usize,
    /// Extra attempts of a call in which a record's transform answered `transient` (the
    /// harness's own retries, `etl.in.retries`, are off: the runner serves 0). Not for a unit
    /// fed over JetStream ([`MAX_DELIVER`]): its consumer's deliveries take their place.
    pub retries: u32,
    /// Calls one instance of a unit may serve before it is replaced: 1 (the default) is a
    /// fresh store and instance for every batch. More trades isolation for throughput: state a
    /// component keeps in its memory then reaches the next records. An instance is replaced
    /// after any failed call, whatever this says.
    pub calls_per_instance: u32,
    /// Input records the source delivers at a time (one envelope, or one `POST` where the
    /// records allow it): 1 is one record per call.
    pub batch: usize,
}

/// [`Limits::batch`] by default: the batch size the end-to-end figures were measured with.
pub const DEFAULT_BATCH: usize = 100;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 1_000_000_000,
            memory: 256 << 20,
            max_outputs: 1000,
            retries: 2,
            calls_per_instance: 1,
            batch: DEFAULT_BATCH,
        }
    }
}

/// A record at the edge of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Key, if any.
    pub key: Option<Vec<u8>>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
}

/// Why one record failed at one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// The transform answered `transient` on every attempt.
    Transient,
    /// The call ran out of fuel: most likely an endless loop.
    Timeout,
    /// A linear memory wanted to grow past the memory limit.
    Memory,
    /// The call tried to deliver more outputs than allowed.
    OutputLimit,
    /// The component trapped (a panic, `unreachable`, a canonical ABI violation, …).
    Trap,
    /// The unit returned an error (its delivery failed, or its input was unusable).
    Error,
}

impl FailureKind {
    /// The kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Timeout => "timeout",
            FailureKind::Memory => "memory",
            FailureKind::OutputLimit => "output-limit",
            FailureKind::Trap => "trap",
            FailureKind::Error => "error",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A record delivered to a sink.
///
/// Units are named by their name when one pipeline runs, and `<pipeline>/<name>` when several
/// run together ([`Runtime::load_together`]): here, in [`DeadLetter`], [`Failure`], the logs and
/// the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRecord {
    /// Sink name.
    pub sink: String,
    /// Where it went: the subject, topic, URL, or `s3://<bucket>/<object>`.
    pub target: String,
    /// Index of the input record it came from.
    pub input: usize,
    /// The record; for an `s3` sink, the object: its name as the key, its bytes as the payload.
    pub record: Record,
}

/// A record a step rejected as `invalid`, or that a step or sink fed over JetStream still
/// failed on its last delivery (docs/running.md#at-least-once-delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The step (or sink).
    pub step: String,
    /// Index of the input record it came from.
    pub input: usize,
    /// The `invalid` reason; `transient: …` or `delivery: …` for the last delivery's.
    pub reason: String,
    /// The rejected record, as the unit received it; the last delivery's also carry the
    /// header `etl-deliveries` (the delivery count), as on a lattice.
    pub record: Record,
}

/// A record that failed at a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The step or sink.
    pub unit: String,
    /// Index of the input record it came from.
    pub input: usize,
    /// What went wrong.
    pub kind: FailureKind,
    /// The details.
    pub message: String,
    /// Calls made (more than one after `transient` answers).
    pub attempts: u32,
}

/// Records through one unit. Every record received ends in exactly one of `produced`,
/// `filtered`, `dead_lettered`, `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnitCounts {
    /// Records received.
    pub received: u64,
    /// Outputs delivered (publishes, HTTP requests).
    pub emitted: u64,
    /// Received records that gave at least one output.
    pub produced: u64,
    /// Received records that gave none.
    pub filtered: u64,
    /// Received records rejected as `invalid`.
    pub dead_lettered: u64,
    /// Received records that failed.
    pub failed: u64,
    /// Extra calls after `transient` answers; for a unit fed over JetStream, redeliveries.
    pub retries: u64,
}

/// Everything one input record caused, as soon as it has gone through the whole pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Index of the input record (0-based).
    pub input: usize,
    /// Its sink deliveries, in order.
    pub sinks: Vec<SinkRecord>,
    /// Its dead letters, in order.
    pub dead_letters: Vec<DeadLetter>,
    /// Its failures, in order.
    pub failures: Vec<Failure>,
    /// Its `wasi:logging` lines: unit, input index, line.
    pub logs: Vec<(String, usize, LogLine)>,
}

/// The totals of a run so far; its size does not depend on the number of records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Input records fed.
    pub inputs: usize,
    /// Sink deliveries.
    pub delivered: usize,
    /// Dead letters.
    pub dead_letters: usize,
    /// Failures by kind.
    pub failures: BTreeMap<FailureKind, usize>,
    /// Counts per unit, in pipeline order.
    pub counts: Vec<(String, UnitCounts)>,
    /// Outputs published to a subject nothing consumes (a step without downstream).
    pub unconsumed: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

impl Summary {
    /// Input records per second of wall-clock time (0 before any time has passed).
    pub fn records_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.inputs as f64 / seconds
        } else {
            0.0
        }
    }

    /// Failed records, of every kind.
    pub fn failed(&self) -> usize {
        self.failures.values().sum()
    }
}

/// What a run did: every [`Outcome`] gathered (for fixtures and tests; `etl run` prints each
/// outcome as it comes instead, see [`Session`]).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Input records fed.
    pub inputs: usize,
    /// Sink deliveries, in order.
    pub sinks: Vec<SinkRecord>,
    /// Dead letters, in order.
    pub dead_letters: Vec<DeadLetter>,
    /// Failures, in order.
    pub failures: Vec<Failure>,
    /// Counts per unit, in pipeline order.
    pub counts: Vec<(String, UnitCounts)>,
    /// `wasi:logging` lines: unit, input index, line.
    pub logs: Vec<(String, usize, LogLine)>,
    /// Outputs published to a subject nothing consumes (a step without downstream).
    pub unconsumed: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

impl Report {
    /// The counts of `unit`.
    pub fn counts_of(&self, unit: &str) -> Option<&UnitCounts> {
        self.counts.iter().find(|(n, _)| n == unit).map(|(_, c)| c)
    }

    /// Failures by kind.
    pub fn failures_by_kind(&self) -> BTreeMap<FailureKind, usize> {
        let mut out = BTreeMap::new();
        for f in &self.failures {
            *out.entry(f.kind).or_default() += 1;
        }
        out
    }
}

/// Why a pipeline could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The engine or linker could not be set up (a bug).
    #[error("the WebAssembly engine could not be set up: {0:#}")]
    Engine(wasmtime::Error),
    /// A unit has no artifact.
    #[error("no composed artifact for `{0}`: compile the repo first")]
    NoArtifact(String),
    /// An artifact did not compile or link.
    #[error("the artifact of `{unit}` ({digest}) cannot be loaded: {source:#}")]
    Load {
        /// The unit.
        unit: String,
        /// The artifact digest.
        digest: String,
        /// Why.
        source: wasmtime::Error,
    },
    /// A record cannot enter the pipeline's source.
    #[error("input record {index}: {message}")]
    Input {
        /// Its index.
        index: usize,
        /// Why.
        message: String,
    },
    /// A pipeline loaded with others would receive nothing.
    #[error("pipeline `{pipeline}` cannot run with the others: {why}")]
    Together {
        /// The pipeline.
        pipeline: String,
        /// Why.
        why: String,
    },
    /// Secrets the pipeline's units read were given no value.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    MissingSecrets(Vec<MissingSecret>),
}

/// The engine every call runs on: fuel metering, and the pooling instance allocator, which
/// keeps memory slots mapped between stores so that a fresh instance per call is cheap (it
/// took the composed `parse` step from about 190 to 115 µs a record). Where the address space
/// cannot be reserved for the pool (a `ulimit -v`, say), the default allocator is used.
pub fn engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.consume_fuel(true);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    // Several runs may share one engine (tests do); each live store of a composed unit holds a
    // few core instances, memories and tables. Any memory may grow to the wasm32 maximum, so
    // that `Limits::memory` alone decides; the slots are reserved address space, not memory.
    pool.total_component_instances(128)
        .total_core_instances(2048)
        .total_memories(512)
        .total_tables(1024)
        .max_memory_size(4 << 30);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).or_else(|_| {
        let mut config = Config::new();
        config.consume_fuel(true);
        Engine::new(&config)
    })
}

/// A composed artifact: its digest and bytes.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// `sha256:` digest of `bytes`.
    pub digest: String,
    /// The component.
    pub bytes: Arc<[u8]>,
    /// The hosts its customer's outbound HTTP may reach (the plan's `customer.egress`): what its
    /// egress part reads from `etl.egress.hosts`. Empty for a unit that does not call out.
    pub egress: Vec<String>,
}

/// The engine, the linker and the compiled-code cache; one per process.
pub struct Runtime {
    engine: Engine,
    linker: wasmtime::component::Linker<Host>,
    code_cache: Option<PathBuf>,
}

impl Runtime {
    /// A runtime that keeps compiled code under `cache` (`<cache>/compiled/…`), if given.
    pub fn new(cache: Option<&Path>) -> Result<Self, RunError> {
        let engine = engine().map_err(RunError::Engine)?;
        let linker = host::linker(&engine).map_err(RunError::Engine)?;
        let code_cache = cache.map(|c| {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            c.join("compiled").join(format!("{:016x}", h.finish()))
        });
        Ok(Runtime {
            engine,
            linker,
            code_cache,
        })
    }

    /// Compiles (or loads from the code cache) every unit's artifact and links it.
    pub fn load(
        &self,
        deployment: &Deployment,
        artifacts: &BTreeMap<String, Artifact>,
    ) -> Result<LoadedPipeline, RunError> {
        self.load_together(&[(deployment, artifacts)])
    }

    /// [`Runtime::load`] of several pipelines (each with its artifacts by unit name) on one
    /// in-memory bus: records enter the first one's source, and each of the others must read
    /// what another of them publishes (a sub-pipeline, or a `nats` source on a sink's subject).
    /// Units are named `<pipeline>/<unit>` when there are several.
    pub fn load_together(
        &self,
        pipelines: &[(&Deployment, &BTreeMap<String, Artifact>)],
    ) -> Result<LoadedPipeline, RunError> {
        let started = Instant::now();
        let deployments: Vec<Deployment> = pipelines.iter().map(|(d, _)| (*d).clone()).collect();
        reached(&deployments)?;
        let several = pipelines.len() > 1;
        let mut wanted: Vec<(
            usize,
            &etl::build::deployment::UnitDeployment,
            String,
            &Artifact,
        )> = Vec::new();
        for (k, (deployment, artifacts)) in pipelines.iter().enumerate() {
            for u in &deployment.units {
                let label = if several {
                    format!("{}/{}", deployment.pipeline, u.name)
                } else {
                    u.name.clone()
                };
                let artifact = artifacts
                    .get(&u.name)
                    .ok_or_else(|| RunError::NoArtifact(label.clone()))?;
                wanted.push((k, u, label, artifact));
            }
        }
        // Distinct artifacts compile in parallel; units sharing one share its code.
        let mut distinct: BTreeMap<&str, (&str, &Artifact)> = BTreeMap::new();
        for (_, _, label, a) in &wanted {
            distinct.entry(a.digest.as_str()).or_insert((label, a));
        }
        let compiled: BTreeMap<&str, Result<Component, RunError>> = std::thread::scope(|s| {
            let handles: Vec<_> = distinct
                .iter()
                .map(|(digest, (unit, a))| {
                    (
                        *digest,
                        s.spawn(move || {
                            self.component(a).map_err(|source| RunError::Load {
                                unit: (*unit).to_owned(),
                                digest: a.digest.clone(),
                                source,
                            })
                        }),
                    )
                })
                .collect();
            handles
                .into_iter()
                .map(|(d, h)| (d, h.join().expect("compiling does not panic")))
                .collect()
        });
        let mut components = BTreeMap::new();
        for (digest, c) in compiled {
            components.insert(digest, c?);
        }
        let mut units = Vec::new();
        for (k, u, label, artifact) in wanted {
            let component = &components[artifact.digest.as_str()];
            let load_error = |source| RunError::Load {
                unit: label.clone(),
                digest: artifact.digest.clone(),
                source,
            };
            let pre = self.linker.instantiate_pre(component).map_err(load_error)?;
            let messaging = if u.subscriptions.is_empty() {
                None
            } else {
                Some(UnitIndices::new(&pre).map_err(load_error)?)
            };
            let http = if u.http {
                Some(ProxyIndices::new(&pre).map_err(load_error)?)
            } else {
                None
            };
            let config = served_config(u.local_config(&artifact.egress));
            let deployment = &pipelines[k].0;
            let jetstream =
                JetStream::of(&config, &deployment.project, &deployment.pipeline, &u.name);
            let mut dead_letters: Vec<String> = u.dead_letter.iter().cloned().collect();
            if let Some(d) = config.get(IN_DEAD_LETTER).map(|d| d.trim())
                && !d.is_empty()
                && !dead_letters.iter().any(|e| e == d)
            {
                dead_letters.push(d.to_owned());
            }
            units.push(LoadedUnit {
                name: label.clone(),
                pipeline: k,
                kind: u.kind,
                pre,
                http,
                messaging,
                config: Arc::new(config),
                calls_out: !artifact.egress.is_empty(),
                secrets: Arc::new(BTreeMap::new()),
                missing: u
                    .secrets
                    .iter()
                    .map(|(setting, key)| MissingSecret {
                        unit: label.clone(),
                        setting: setting.clone(),
                        key: key.clone(),
                    })
                    .collect(),
                subscriptions: local_subscriptions(u),
                dead_letters,
                replay: u.replay.clone(),
                jetstream,
            });
        }
        Ok(LoadedPipeline {
            engine: self.engine.clone(),
            deployments,
            units,
            redactor: Redactor::default(),
            load_time: started.elapsed(),
        })
    }

    /// The compiled component of `artifact`, from the code cache when it has it.
    fn component(&self, artifact: &Artifact) -> wasmtime::Result<Component> {
        let Some(dir) = &self.code_cache else {
            return Component::new(&self.engine, &artifact.bytes);
        };
        let hex = artifact.digest.trim_start_matches("sha256:");
        let path = dir.join(format!("{hex}.cwasm"));
        if path.is_file() {
            // SAFETY: the file is one this function wrote with `Component::serialize` for an
            // engine with the same compatibility hash (part of the directory name); wasmtime
            // checks the header and refuses a file of another version or configuration. The
            // cache directory is the user's own, like the `etl` binary itself.
            if let Ok(c) = unsafe { Component::deserialize_file(&self.engine, &path) } {
                return Ok(c);
            }
        }
        let component = Component::new(&self.engine, &artifact.bytes)?;
        if let Ok(bytes) = component.serialize() {
            // Best effort: a cache that cannot be written only costs the next run time.
            let _ = std::fs::create_dir_all(dir).and_then(|()| {
                let tmp = tempfile::NamedTempFile::new_in(dir)?;
                std::fs::write(tmp.path(), &bytes)?;
                tmp.persist(&path).map(drop).map_err(|e| e.error)
            });
        }
        Ok(component)
    }
}

/// Checks that each pipeline after the first receives what another of `deployments`
/// publishes: records enter the first only.
fn reached(deployments: &[Deployment]) -> Result<(), RunError> {
    let Some((first, others)) = deployments.split_first() else {
        return Ok(());
    };
    for (k, d) in others.iter().enumerate() {
        if deployments[..=k].iter().any(|e| e.pipeline == d.pipeline) {
            return Err(RunError::Together {
                pipeline: d.pipeline.clone(),
                why: "it is named twice".to_owned(),
            });
        }
        let Some(subject) = &d.source.subject else {
            return Err(RunError::Together {
                pipeline: d.pipeline.clone(),
                why: format!(
                    "its source `{}` is `http`, and records enter `{}` only",
                    d.source.name, first.pipeline
                ),
            });
        };
        let published = deployments
            .iter()
            .filter(|e| e.pipeline != d.pipeline)
            .any(|e| {
                e.units
                    .iter()
                    .flat_map(|u| u.publishes.iter().chain(&u.dead_letter))
                    .any(|p| etl::spec::subjects::matches(subject, p))
            });
        if !published {
            let names: Vec<&str> = deployments
                .iter()
                .filter(|e| e.pipeline != d.pipeline)
                .map(|e| e.pipeline.as_str())
                .collect();
            return Err(RunError::Together {
                pipeline: d.pipeline.clone(),
                why: format!(
                    "its source `{}` reads `{subject}`, which none of `{}` publishes (run the \
                     pipelines in between too)",
                    d.source.name,
                    names.join("`, `")
                ),
            });
        }
    }
    Ok(())
}

/// One unit, linked and ready to instantiate.
struct LoadedUnit {
    /// Its name, or `<pipeline>/<name>` when several pipelines run together.
    name: String,
    /// Index of its pipeline in [`LoadedPipeline::deployments`].
    pipeline: usize,
    kind: UnitKind,
    /// The component, linked.
    pre: InstancePre<Host>,
    /// Its `wasi:http/incoming-handler` entry, when the HTTP source feeds it.
    http: Option<ProxyIndices>,
    /// Its `wasmcloud:messaging/handler` entry, when it subscribes to subjects.
    messaging: Option<UnitIndices>,
    config: Arc<BTreeMap<String, String>>,
    /// Whether its customer calls out: its outgoing requests (which its egress part let
    /// through) are sent, where a sink's are captured.
    calls_out: bool,
    /// Its secret values by setting name (those given).
    secrets: Arc<BTreeMap<String, String>>,
    /// Its secrets without a value.
    missing: Vec<MissingSecret>,
    subscriptions: Vec<String>,
    /// Its dead-letter subjects: a step's `etl.out.dead-letter`, and the subject its `in` part
    /// dead-letters the last JetStream delivery's still-failing records to
    /// (`etl.in.dead-letter`, a sink's too).
    dead_letters: Vec<String>,
    /// A step's replay subject: messages there are not JetStream deliveries.
    replay: Option<String>,
    /// How messages reach it over JetStream, when they do.
    jetstream: Option<JetStream>,
}

impl LoadedUnit {
    /// Whether `subject` is one of its dead-letter subjects.
    fn dead_letters_to(&self, subject: &str) -> bool {
        self.dead_letters.iter().any(|d| d == subject)
    }

    /// The JetStream delivery `delivery` is to this unit, if it is one: a message on one of its
    /// input subjects (not its replay subject) when its configuration has
    /// [`MAX_DELIVER`].
    fn jetstream_for(&self, delivery: &Delivery) -> Option<&JetStream> {
        match delivery {
            Delivery::Message { subject, .. } if self.replay.as_ref() != Some(subject) => {
                self.jetstream.as_ref()
            }
            _ => None,
        }
    }
}

/// The subjects a unit receives on the runner's bus: the subjects its inputs reach it on (for
/// an HTTP source none), then its subscriptions. A unit fed through a JetStream consumer
/// subscribes to the consumer's deliver subject instead of its inputs' subjects on a lattice
/// (the stream captures them, the consumer delivers them there); locally there is no stream, and
/// each publish reaches it directly (a deliver subject stays among its subscriptions, where
/// nothing publishes).
fn local_subscriptions(unit: &etl::build::deployment::UnitDeployment) -> Vec<String> {
    let mut subjects: Vec<String> = Vec::new();
    let inputs = unit
        .inputs
        .iter()
        .map(|(subject, _)| subject)
        .filter(|s| *s != etl::build::deployment::HTTP_INPUT);
    for subject in inputs.chain(&unit.subscriptions) {
        if !subjects.contains(subject) {
            subjects.push(subject.clone());
        }
    }
    subjects
}

/// Config key: the deliveries of one message to a unit its JetStream consumer makes; set (by
/// `etl compile`, for at-least-once delivery) on every unit fed by a JetStream stream.
pub const MAX_DELIVER: &str = "etl.in.max-deliver";
/// Config key: where the `in` part dead-letters the last delivery's still-failing records.
pub const IN_DEAD_LETTER: &str = "etl.in.dead-letter";

/// How the runner models a unit's JetStream consumer ([`MAX_DELIVER`], docs/running.md).
#[derive(Debug, Clone, PartialEq, Eq)]
struct JetStream {
    /// Deliveries of one message, at most.
    max_deliver: u32,
    /// The stream and consumer its ack subjects name.
    stream: String,
    consumer: String,
}

impl JetStream {
    /// The model of a unit's consumer, from its configuration: `None` unless [`MAX_DELIVER`] is
    /// a positive whole number (unset, `-1` or anything else: messages reach it as on core
    /// NATS, without an ack subject).
    fn of(
        config: &BTreeMap<String, String>,
        project: &str,
        pipeline: &str,
        unit: &str,
    ) -> Option<Self> {
        let max_deliver = config.get(MAX_DELIVER)?.trim().parse::<u32>().ok()?;
        (max_deliver >= 1).then(|| JetStream {
            max_deliver,
            stream: format!("ETL_DATA_{project}_{pipeline}"),
            consumer: unit.to_owned(),
        })
    }

    /// The ack subject of delivery `n` of the message whose first record is input `first`, in
    /// the 9-token form: `$JS.ACK.<stream>.<consumer>.<n>.<seq>.<seq>.0.0` (the sequences are
    /// the input index + 1, the timestamp and pending count 0, so that runs stay
    /// deterministic).
    fn reply_to(&self, n: u32, first: usize) -> String {
        let seq = first + 1;
        format!(
            "{}{}.{}.{n}.{seq}.{seq}.0.0",
            host::ACK_PREFIX,
            self.stream,
            self.consumer
        )
    }
}

/// A pipeline (or several on one bus) loaded for one environment, ready to run records.
pub struct LoadedPipeline {
    engine: Engine,
    /// The pipeline records enter, then the others loaded with it.
    deployments: Vec<Deployment>,
    units: Vec<LoadedUnit>,
    /// Takes the secret values given out of text.
    redactor: Redactor,
    /// Time [`Runtime::load`] took.
    pub load_time: Duration,
}

/// How a batch arrives at a unit, with the input index of each of its records.
enum Delivery {
    /// A broker message on a subject.
    Message {
        subject: String,
        body: Vec<u8>,
        inputs: Vec<usize>,
    },
    /// One HTTP request from the source: its records (one, or several as NDJSON).
    Http {
        records: Vec<Record>,
        inputs: Vec<usize>,
    },
}

impl Delivery {
    /// The input index of each record, in order.
    fn inputs(&self) -> &[usize] {
        match self {
            Delivery::Message { inputs, .. } | Delivery::Http { inputs, .. } => inputs,
        }
    }
}

/// What one successful call left behind.
struct Delivered {
    published: Vec<Published>,
    requests: Vec<CapturedRequest>,
    objects: Vec<CapturedObject>,
    logs: Vec<LogLine>,
}

/// One failed call.
struct Failed {
    kind: FailureKind,
    message: String,
    logs: Vec<LogLine>,
}

impl LoadedPipeline {
    /// The deployment of the pipeline records enter.
    pub fn deployment(&self) -> &Deployment {
        &self.deployments[0]
    }

    /// The deployments loaded: the pipeline records enter, then the others.
    pub fn deployments(&self) -> &[Deployment] {
        &self.deployments
    }

    /// Gives the units the values of the secrets they read (a step's `config:` secrets, an
    /// HTTP sink's `authorization` and `header.<Name>`), by secret key from `value`, in place
    /// of any given before; returns those with no value. A unit reads a secret without a value
    /// as the hosts' would: it is not there (an HTTP sink fails its records, naming the
    /// setting; a step traps when its customer asks for it), and such a failure says which key
    /// to give. A connector's provider credentials are not needed: no provider runs locally.
    pub fn set_secrets(&mut self, value: impl Fn(&str) -> Option<String>) -> Vec<MissingSecret> {
        let mut missing = Vec::new();
        let mut given = BTreeMap::new();
        for (unit, u) in self
            .units
            .iter_mut()
            .zip(self.deployments.iter().flat_map(|d| &d.units))
        {
            let mut secrets = BTreeMap::new();
            unit.missing.clear();
            for (setting, key) in &u.secrets {
                match value(key) {
                    Some(v) => {
                        secrets.insert(setting.clone(), v.clone());
                        given.insert(key.clone(), v);
                    }
                    None => unit.missing.push(MissingSecret {
                        unit: unit.name.clone(),
                        setting: setting.clone(),
                        key: key.clone(),
                    }),
                }
            }
            missing.extend(unit.missing.iter().cloned());
            unit.secrets = Arc::new(secrets);
        }
        self.redactor = Redactor::new(given.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        missing
    }

    /// What takes the secret values given ([`LoadedPipeline::set_secrets`]) out of text.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Checks that `record` can enter this pipeline's source.
    pub fn check_input(&self, index: usize, record: &Record) -> Result<(), RunError> {
        let source = &self.deployment().source;
        if source.subject.is_some() {
            return Ok(());
        }
        let error = |message: String| RunError::Input { index, message };
        if record.key.is_some() {
            return Err(error(format!(
                "it has a key, but source `{}` is `http`, whose requests carry none",
                source.name
            )));
        }
        for (name, value) in &record.headers {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| error(format!("`{name}` is not a valid HTTP header name")))?;
            http::HeaderValue::from_str(value).map_err(|_| {
                error(format!(
                    "the value of header `{name}` is not a valid HTTP header value"
                ))
            })?;
        }
        Ok(())
    }

    /// Runs `inputs` through the pipeline, calling `progress` after each with the number done.
    /// Every input is checked ([`LoadedPipeline::check_input`]) before the first one runs.
    pub fn run(
        &self,
        inputs: &[Record],
        limits: &Limits,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Report, RunError> {
        for (i, r) in inputs.iter().enumerate() {
            self.check_input(i, r)?;
        }
        let mut session = self.session(limits);
        let mut report = Report::default();
        for batch in inputs.chunks(limits.batch.max(1)) {
            for outcome in session.feed_batch(batch)? {
                report.sinks.extend(outcome.sinks);
                report.dead_letters.extend(outcome.dead_letters);
                report.failures.extend(outcome.failures);
                report.logs.extend(outcome.logs);
            }
            progress(session.summary.inputs);
        }
        let summary = session.summary();
        report.inputs = summary.inputs;
        report.counts = summary.counts;
        report.unconsumed = summary.unconsumed;
        report.elapsed = summary.elapsed;
        Ok(report)
    }

    /// A run that takes records one at a time ([`Session::feed`]), for input that streams in
    /// and output that streams out.
    pub fn session(&self, limits: &Limits) -> Session<'_> {
        Session {
            pipeline: self,
            limits: *limits,
            live: self.units.iter().map(|_| None).collect(),
            summary: Summary {
                counts: self
                    .units
                    .iter()
                    .map(|u| (u.name.clone(), UnitCounts::default()))
                    .collect(),
                ..Summary::default()
            },
            started: Instant::now(),
        }
    }

    /// Carries a batch of records, the inputs from `first` on, through the whole pipeline,
    /// breadth first; one [`Outcome`] per record.
    fn carry(
        &self,
        first: usize,
        records: &[Record],
        limits: &Limits,
        live: &mut [Option<Live>],
        summary: &mut Summary,
    ) -> Vec<Outcome> {
        let mut outcomes: Vec<Outcome> = (first..first + records.len())
            .map(|input| Outcome {
                input,
                ..Outcome::default()
            })
            .collect();
        let mut queue: VecDeque<(usize, Delivery)> = VecDeque::new();
        let source = &self.deployment().source;
        match &source.subject {
            // A device publishes its own bytes, one record per message.
            Some(subject) if source.connector == SourceConnector::Mqtt => {
                let subject = subject.clone();
                for (i, r) in records.iter().enumerate() {
                    self.route(&subject, &r.payload, &[first + i], &mut queue);
                }
            }
            Some(subject) => {
                let batch: Vec<etl_envelope::Batched> = (0u32..)
                    .zip(records)
                    .map(|(origin, r)| etl_envelope::Batched {
                        origin,
                        envelope: envelope_of(r),
                    })
                    .collect();
                let inputs: Vec<usize> = (first..first + records.len()).collect();
                self.route(
                    subject,
                    &etl_envelope::encode_batch(&batch),
                    &inputs,
                    &mut queue,
                );
            }
            None => {
                for unit in (0..self.units.len())
                    .filter(|&u| self.units[u].http.is_some() && self.units[u].pipeline == 0)
                {
                    for run in requests(records, &self.units[unit].config) {
                        queue.push_back((
                            unit,
                            Delivery::Http {
                                records: records[run.clone()].to_vec(),
                                inputs: run.map(|i| first + i).collect(),
                            },
                        ));
                    }
                }
            }
        }
        let mut out = Attributed {
            first,
            outcomes: &mut outcomes,
        };
        while let Some((u, delivery)) = queue.pop_front() {
            let call = Call {
                unit: u,
                live: &mut live[u],
            };
            self.deliver(call, &delivery, limits, &mut queue, &mut out, summary);
        }
        outcomes
    }

    /// Queues `body` for every unit subscribed to `subject`, its records from `inputs`;
    /// whether any unit is subscribed.
    fn route(
        &self,
        subject: &str,
        body: &[u8],
        inputs: &[usize],
        queue: &mut VecDeque<(usize, Delivery)>,
    ) -> bool {
        let mut any = false;
        for (u, unit) in self.units.iter().enumerate() {
            if unit
                .subscriptions
                .iter()
                .any(|s| etl::spec::subjects::matches(s, subject))
            {
                any = true;
                queue.push_back((
                    u,
                    Delivery::Message {
                        subject: subject.to_owned(),
                        body: body.to_vec(),
                        inputs: inputs.to_vec(),
                    },
                ));
            }
        }
        any
    }

    /// Calls a unit with `delivery` (retrying `transient` answers) and routes what it
    /// delivered, record by record.
    fn deliver(
        &self,
        call: Call<'_>,
        delivery: &Delivery,
        limits: &Limits,
        queue: &mut VecDeque<(usize, Delivery)>,
        out: &mut Attributed<'_>,
        summary: &mut Summary,
    ) {
        let Call { unit: u, live } = call;
        let unit = &self.units[u];
        let inputs = delivery.inputs();
        let first_input = inputs.first().copied().unwrap_or(out.first);
        summary.counts[u].1.received += inputs.len() as u64;
        let jetstream = unit.jetstream_for(delivery);
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            // A JetStream delivery carries its ack subject, with the delivery count.
            let reply_to = jetstream.map(|js| js.reply_to(attempts, first_input));
            let (outcome, acks) = self.call(unit, delivery, limits, live, reply_to.as_deref());
            let logs = match &outcome {
                Ok(d) => &d.logs,
                Err(f) => &f.logs,
            };
            // A call's log lines go with the first record of its batch.
            out.get(first_input).logs.extend(
                logs.iter()
                    .map(|l| (unit.name.clone(), first_input, l.clone())),
            );
            let Some(js) = jetstream else {
                match outcome {
                    Err(f) if f.kind == FailureKind::Transient && attempts <= limits.retries => {
                        summary.counts[u].1.retries += 1;
                        continue;
                    }
                    other => break other,
                }
            };
            // `+ACK`: done (delivered, or the last delivery's failures dead-lettered). `-NAK` or
            // no answer at all (a trap): delivered again, up to `max_deliver` deliveries; the
            // NAK's delay is not waited.
            let acked = acks.last().is_some_and(|a| a.trim_ascii() == b"+ACK");
            if acked {
                break outcome;
            }
            if attempts >= js.max_deliver {
                break match outcome {
                    Err(mut f) => {
                        f.message.push_str(&format!(
                            "\nnote: not acknowledged after {attempts} deliveries (`{MAX_DELIVER}`); \
                             on a lattice the controller moves the message to the dead letters"
                        ));
                        Err(f)
                    }
                    Ok(d) => Err(Failed {
                        kind: FailureKind::Error,
                        message: format!(
                            "the call returned without acknowledging its delivery (`+ACK`) \
                             {attempts} times (`{MAX_DELIVER}`)"
                        ),
                        logs: d.logs,
                    }),
                };
            }
            summary.counts[u].1.retries += 1;
        };
        let fail = |out: &mut Attributed<'_>, summary: &mut Summary, kind, message: String| {
            summary.counts[u].1.failed += inputs.len() as u64;
            let mut seen = Vec::new();
            for &input in inputs {
                if seen.contains(&input) {
                    continue;
                }
                seen.push(input);
                out.get(input).failures.push(Failure {
                    unit: unit.name.clone(),
                    input,
                    kind,
                    message: message.clone(),
                    attempts,
                });
            }
        };
        let delivered = match outcome {
            Ok(d) => d,
            Err(f) => {
                let mut message = f.message;
                for m in &unit.missing {
                    message.push_str(&format!("\nnote: {m}"));
                }
                if inputs.len() > 1 {
                    message.push_str(&format!(
                        "\nnote: the whole batch of {} records failed with it",
                        inputs.len()
                    ));
                }
                fail(out, summary, f.kind, message);
                return;
            }
        };
        // One record POSTed alone may be several to `in-http` (a JSON array, NDJSON lines): then
        // every record of the unit's batch is that input's.
        let spread = matches!(delivery, Delivery::Http { .. }) && inputs.len() == 1;
        // Records published on each subject, decoded, with their origins checked.
        let mut messages = Vec::new();
        for msg in &delivered.published {
            match etl_envelope::decode_batch(&msg.body) {
                Ok(batch) => {
                    if let Some(b) = batch
                        .iter()
                        .find(|b| !spread && b.origin as usize >= inputs.len())
                    {
                        let message = format!(
                            "it published a record whose origin {} is not a record of its batch of {}",
                            b.origin,
                            inputs.len()
                        );
                        fail(out, summary, FailureKind::Error, message);
                        return;
                    }
                    messages.push((msg, batch));
                }
                Err(e) => {
                    let what = if unit.dead_letters_to(&msg.subject) {
                        "its dead letter"
                    } else {
                        "its output"
                    };
                    fail(
                        out,
                        summary,
                        FailureKind::Error,
                        format!("{what} is not an etl envelope: {e}"),
                    );
                    return;
                }
            }
        }
        // The records of the unit's batch: the inputs, or those one input was split into.
        let width = messages
            .iter()
            .flat_map(|(_, batch)| batch.iter().map(|b| b.origin as usize + 1))
            .fold(inputs.len(), usize::max);
        summary.counts[u].1.received += (width - inputs.len()) as u64;
        let input_of = |origin: u32| {
            if spread {
                inputs[0]
            } else {
                inputs[origin as usize]
            }
        };
        // What each record of the batch gave: outputs, and whether it was dead-lettered.
        let mut given = vec![0u64; width];
        let mut rejected = vec![false; width];
        for (_, batch) in &messages {
            for b in batch {
                given[b.origin as usize] += 1;
            }
        }
        if given.iter().any(|&n| n > limits.max_outputs as u64) {
            let message = format!(
                "more than {} outputs for one record (the limit is `--max-outputs`); none was delivered",
                limits.max_outputs
            );
            fail(out, summary, FailureKind::OutputLimit, message);
            return;
        }
        let mut outputs = 0u64;
        for (msg, batch) in messages {
            let next: Vec<usize> = batch.iter().map(|b| input_of(b.origin)).collect();
            if unit.dead_letters_to(&msg.subject) {
                for b in batch {
                    rejected[b.origin as usize] = true;
                    let input = input_of(b.origin);
                    let mut record = record_of(b.envelope);
                    let mut reason =
                        take_header(&mut record.headers, "etl-error").unwrap_or_default();
                    // The last JetStream delivery dead-letters what it could not deliver: a
                    // secret without a value is the likely cause locally.
                    if reason.starts_with("delivery: ") {
                        for m in &unit.missing {
                            reason.push_str(&format!("\nnote: {m}"));
                        }
                    }
                    out.get(input).dead_letters.push(DeadLetter {
                        step: unit.name.clone(),
                        input,
                        reason,
                        record,
                    });
                }
                // A pipeline run with this one may read the dead letters.
                self.route(&msg.subject, &msg.body, &next, queue);
                continue;
            }
            outputs += batch.len() as u64;
            let consumed = self.route(&msg.subject, &msg.body, &next, queue);
            if let UnitKind::Sink(_) = unit.kind {
                for (b, input) in batch.into_iter().zip(next) {
                    // Its message's NATS headers (`Nats-Msg-Id`) follow its own.
                    let mut record = record_of(b.envelope);
                    record.headers.extend(msg.headers.iter().cloned());
                    out.get(input).sinks.push(SinkRecord {
                        sink: unit.name.clone(),
                        target: msg.subject.clone(),
                        input,
                        record,
                    });
                }
            } else if !consumed {
                summary.unconsumed += batch.len() as u64;
            }
        }
        // A sink's transform is `identity`: its k-th record delivered is the k-th it received.
        let mut delivered_records = Vec::new();
        for request in delivered.requests {
            for record in request_records(&request, &unit.config) {
                delivered_records.push((request.url.clone(), record));
            }
        }
        for object in delivered.objects {
            for record in object_records(&object, &unit.config) {
                let target = format!("s3://{}/{}", object.container, object.name);
                delivered_records.push((target, record));
            }
        }
        if spread && delivered_records.len() > given.len() {
            summary.counts[u].1.received += (delivered_records.len() - given.len()) as u64;
            given.resize(delivered_records.len(), 0);
            rejected.resize(delivered_records.len(), false);
        }
        for (k, (target, record)) in delivered_records.into_iter().enumerate() {
            outputs += 1;
            let origin = k.min(given.len().saturating_sub(1));
            given[origin] += 1;
            let input = if spread {
                inputs[0]
            } else {
                inputs.get(origin).copied().unwrap_or(first_input)
            };
            out.get(input).sinks.push(SinkRecord {
                sink: unit.name.clone(),
                target,
                input,
                record,
            });
        }
        let counts = &mut summary.counts[u].1;
        counts.emitted += outputs;
        for (n, dead) in given.iter().zip(&rejected) {
            if *dead {
                counts.dead_lettered += 1;
            } else if *n == 0 {
                counts.filtered += 1;
            } else {
                counts.produced += 1;
            }
        }
    }

    /// One call of `unit`, on the instance in `live` or (when there is none) a fresh one, which
    /// is kept there for the next call unless this one failed or used up the instance; a
    /// message carries `reply_to`. Also what the call published to its ack subject.
    fn call(
        &self,
        unit: &LoadedUnit,
        delivery: &Delivery,
        limits: &Limits,
        live: &mut Option<Live>,
        reply_to: Option<&str>,
    ) -> (Result<Delivered, Failed>, Vec<Vec<u8>>) {
        let current = live.get_or_insert_with(|| {
            let outgoing = if unit.calls_out {
                Outgoing::Send
            } else {
                Outgoing::Capture
            };
            let host = Host::new(
                Arc::clone(&unit.config),
                Arc::clone(&unit.secrets),
                outgoing,
                limits.max_outputs,
                limits.memory,
            );
            let mut store = Store::new(&self.engine, host);
            store.limiter(|h| &mut h.limiter);
            Live {
                store,
                instance: None,
                calls: 0,
            }
        });
        current
            .store
            .set_fuel(limits.fuel)
            .expect("the engine consumes fuel");
        current.store.data_mut().begin_call(delivery.inputs().len());
        current.calls += 1;
        let source = &self.deployments[unit.pipeline].source;
        let result = current.enter(unit, delivery, &source.settings, reply_to);
        let outcome = classify(result, current.store.data_mut(), limits);
        let acks = std::mem::take(&mut current.store.data_mut().acks);
        if outcome.is_err() || current.calls >= limits.calls_per_instance {
            *live = None;
        }
        (outcome, acks)
    }
}

/// A run in progress: records go in one at a time, each [`Outcome`] comes back as soon as the
/// record has gone through the whole pipeline, and only the [`Summary`] is kept, so memory does
/// not grow with the number of records.
pub struct Session<'p> {
    pipeline: &'p LoadedPipeline,
    limits: Limits,
    live: Vec<Option<Live>>,
    summary: Summary,
    started: Instant,
}

impl<'p> Session<'p> {
    /// The pipeline the records run through.
    pub fn pipeline(&self) -> &'p LoadedPipeline {
        self.pipeline
    }

    /// Checks every record of `batch` ([`LoadedPipeline::check_input`]), then carries them
    /// through the pipeline as one batch; one [`Outcome`] per record, in order.
    pub fn feed_batch(&mut self, batch: &[Record]) -> Result<Vec<Outcome>, RunError> {
        let first = self.summary.inputs;
        for (i, record) in batch.iter().enumerate() {
            self.pipeline.check_input(first + i, record)?;
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let outcomes = self.pipeline.carry(
            first,
            batch,
            &self.limits,
            &mut self.live,
            &mut self.summary,
        );
        self.summary.inputs += batch.len();
        for outcome in &outcomes {
            self.summary.delivered += outcome.sinks.len();
            self.summary.dead_letters += outcome.dead_letters.len();
            for f in &outcome.failures {
                *self.summary.failures.entry(f.kind).or_default() += 1;
            }
        }
        Ok(outcomes)
    }

    /// Input records fed so far.
    pub fn inputs(&self) -> usize {
        self.summary.inputs
    }

    /// The totals so far, with the time since the session started.
    pub fn summary(&self) -> Summary {
        Summary {
            elapsed: self.started.elapsed(),
            ..self.summary.clone()
        }
    }
}

/// The unit of one delivery, and its live instance (if kept).
struct Call<'a> {
    unit: usize,
    live: &'a mut Option<Live>,
}

/// The outcomes of a batch's records, by input index.
struct Attributed<'a> {
    /// The input index of the first.
    first: usize,
    outcomes: &'a mut [Outcome],
}

impl Attributed<'_> {
    /// The outcome of input `input`.
    fn get(&mut self, input: usize) -> &mut Outcome {
        &mut self.outcomes[input - self.first]
    }
}

/// A store and the unit's instance in it, kept between calls.
struct Live {
    store: Store<Host>,
    /// Made on the first call.
    instance: Option<Instance>,
    /// Calls made on this store.
    calls: u32,
}

impl Live {
    /// Instantiates the unit if needed, then calls the entry `delivery` needs.
    fn enter(
        &mut self,
        unit: &LoadedUnit,
        delivery: &Delivery,
        source: &BTreeMap<String, String>,
        reply_to: Option<&str>,
    ) -> wasmtime::Result<Answer> {
        let instance = match self.instance {
            Some(i) => i,
            None => {
                let i = unit.pre.instantiate(&mut self.store)?;
                self.instance = Some(i);
                i
            }
        };
        match delivery {
            Delivery::Message { subject, body, .. } => {
                let entry = unit
                    .messaging
                    .as_ref()
                    .expect("only subscribed units get messages")
                    .load(&mut self.store, &instance)?;
                call_messaging(&mut self.store, &entry, subject, body, reply_to)
            }
            Delivery::Http { records, inputs } => {
                let entry = unit
                    .http
                    .as_ref()
                    .expect("only http units get requests")
                    .load(&mut self.store, &instance)?;
                let key = request_key(inputs.first().copied().unwrap_or_default());
                call_http(&mut self.store, &entry, records, source, &key)
            }
        }
    }
}

/// What a call's result and the host's record of it mean for the record.
fn classify(
    result: wasmtime::Result<Answer>,
    host: &mut Host,
    limits: &Limits,
) -> Result<Delivered, Failed> {
    let mut logs = std::mem::take(&mut host.logs);
    if host.logs_dropped > 0 {
        logs.push(LogLine {
            level: "warn",
            context: "etl run".to_owned(),
            message: format!(
                "{} more log lines of this call were not kept (at most {} are)",
                host.logs_dropped,
                host::MAX_LOG_LINES
            ),
        });
    }
    let failed = |kind, message| Failed {
        kind,
        message,
        logs: logs.clone(),
    };
    match result {
        Ok(Answer::Done) => {
            let requests = match host.take_requests() {
                Ok(requests) => requests,
                Err(message) => return Err(failed(FailureKind::Error, message)),
            };
            Ok(Delivered {
                published: std::mem::take(&mut host.published),
                requests,
                objects: std::mem::take(&mut host.objects),
                logs,
            })
        }
        Ok(Answer::Error(message)) => {
            let kind = if host.output_limit_hit || host.requests_at_limit() {
                FailureKind::OutputLimit
            } else if message.starts_with(TRANSIENT_PREFIX)
                || message.strip_prefix("503 ").is_some_and(|body| {
                    // `in-http` answers 503 to a failed delivery too: its error is an `out`
                    // part's (`etl out-…`), no `transient` answer.
                    !body.lines().any(|l| l.starts_with("etl out-"))
                })
            {
                FailureKind::Transient
            } else {
                FailureKind::Error
            };
            let message = if kind == FailureKind::OutputLimit {
                format!(
                    "more than {} outputs for one record (the limit is `--max-outputs`); none was delivered",
                    limits.max_outputs
                )
            } else {
                message
            };
            Err(failed(kind, message))
        }
        Err(e) => {
            let (kind, message) = if e.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) {
                (
                    FailureKind::Timeout,
                    format!(
                        "ran out of fuel ({} units, `--fuel`): most likely an endless loop",
                        limits.fuel
                    ),
                )
            } else if host.limiter.memory_hit {
                (
                    FailureKind::Memory,
                    format!(
                        "a memory wanted to grow past {} MiB (`--memory`), then: {}",
                        limits.memory >> 20,
                        e.root_cause()
                    ),
                )
            } else if host.output_limit_hit || host.requests_at_limit() {
                (
                    FailureKind::OutputLimit,
                    format!(
                        "more than {} outputs for one record (`--max-outputs`); none was delivered",
                        limits.max_outputs
                    ),
                )
            } else {
                let mut message = e.root_cause().to_string();
                if let Some(trace) = e.downcast_ref::<wasmtime::WasmBacktrace>() {
                    message.push('\n');
                    message.push_str(trace.to_string().trim_end());
                }
                let output = host.call_output();
                if !output.is_empty() {
                    message.push_str("\ncomponent output:\n");
                    message.push_str(String::from_utf8_lossy(&output).trim_end());
                }
                (FailureKind::Trap, message)
            };
            Err(failed(kind, message))
        }
    }
}

/// The config key of the harness's own retries of a `transient` answer.
const HARNESS_RETRIES: &str = "etl.in.retries";

/// The runtime configuration the runner serves a unit, from its local one (which has no report
/// subject: nothing here reads reports, and every publish is taken for the unit's output): with
/// the harness's own retries off, so that [`Limits::retries`] (or, for a unit fed over
/// JetStream, [`MAX_DELIVER`]) alone says how often a `transient` answer is tried again (the
/// whole call, on a fresh instance).
fn served_config(mut config: BTreeMap<String, String>) -> BTreeMap<String, String> {
    config.insert(HARNESS_RETRIES.to_owned(), "0".to_owned());
    config
}

/// How `in-messaging` begins the error it returns for a `transient` answer (docs/harness.md);
/// `in-http` answers `503` instead.
const TRANSIENT_PREFIX: &str = "etl in-messaging: transient error in the transform";

/// How a call ended without a trap.
enum Answer {
    /// Accepted (delivered, filtered or dead-lettered).
    Done,
    /// Refused, with the reason; HTTP answers start with their status code.
    Error(String),
}

fn call_messaging(
    store: &mut Store<Host>,
    instance: &Unit,
    subject: &str,
    body: &[u8],
    reply_to: Option<&str>,
) -> wasmtime::Result<Answer> {
    let msg = BrokerMessage {
        subject: subject.to_owned(),
        body: body.to_vec(),
        reply_to: reply_to.map(str::to_owned),
    };
    Ok(
        match instance
            .wasmcloud_messaging0_2_0_handler()
            .call_handle_message(&mut *store, &msg)?
        {
            Ok(()) => Answer::Done,
            Err(e) => Answer::Error(e),
        },
    )
}

/// The `Idempotency-Key` of the runner's request to an HTTP source whose first record is input
/// `first`, unless its records carry one: `run-<first>`, so that record `i` of the request
/// gets the id `run-<first>-<i>` and a run is reproducible (in-http would otherwise pick a
/// random key). Sent again with the request (a `transient` retry), it gives the same ids.
pub fn request_key(first: usize) -> String {
    format!("run-{first}")
}

/// The request header `in-http` reads a request's key from.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn call_http(
    store: &mut Store<Host>,
    proxy: &Proxy,
    records: &[Record],
    source: &BTreeMap<String, String>,
    key: &str,
) -> wasmtime::Result<Answer> {
    let path = source.get("path").map_or("/", String::as_str);
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("http://localhost{path}"));
    // The records' own key, if they carry one (all the same: they share their headers).
    if !records[0]
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(IDEMPOTENCY_KEY))
    {
        request = request.header(IDEMPOTENCY_KEY, key);
    }
    let payload = match records {
        [record] => {
            for (name, value) in &record.headers {
                request = request.header(name, value);
            }
            record.payload.clone()
        }
        _ => {
            for (name, value) in &records[0].headers {
                if !name.eq_ignore_ascii_case("content-type") {
                    request = request.header(name, value);
                }
            }
            request = request.header("content-type", NDJSON);
            let mut body = Vec::new();
            for r in records {
                body.extend_from_slice(&r.payload);
                body.push(b'\n');
            }
            body
        }
    };
    let body = Full::new(Bytes::from(payload))
        .map_err(|never| -> wasmtime_wasi_http::Error { match never {} })
        .boxed_unsync();
    let request = request.body(body)?;
    let slot = Arc::new(std::sync::Mutex::new(None));
    let request = store.data_mut().http().new_incoming_request(
        wasmtime_wasi_http::p2::bindings::http::types::Scheme::Http,
        request,
    )?;
    let out = {
        let slot = Arc::clone(&slot);
        store
            .data_mut()
            .http()
            .new_response_outparam_from_callback(move |r| {
                *slot.lock().expect("not poisoned") = Some(r);
            })?
    };
    proxy
        .wasi_http_incoming_handler()
        .call_handle(&mut *store, request, out)?;
    let response = slot.lock().expect("not poisoned").take();
    let Some(response) = response else {
        return Ok(Answer::Error(
            "the component sent no HTTP response".to_owned(),
        ));
    };
    let response = match response {
        Ok(r) => r,
        Err(code) => {
            return Ok(Answer::Error(format!(
                "the component answered an error: {code:?}"
            )));
        }
    };
    let status = response.status();
    let body = wasmtime_wasi::runtime::in_tokio(response.into_body().collect())
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    Ok(match status.as_u16() {
        200..=299 => Answer::Done,
        // The transform rejected the record and it was dead-lettered; the publish shows it.
        400 if !store.data().published.is_empty() => Answer::Done,
        code => Answer::Error(format!("{code} {}", body.trim_end())),
    })
}

/// `content-type` of a request that carries several records, one per line.
const NDJSON: &str = "application/x-ndjson";

/// The requests a batch of `records` goes to an HTTP source in, as runs of records: as many
/// records in one NDJSON `POST` as `in-http` reads back as exactly those records (one line
/// each, the same headers, within `etl.in.max-body`), else one record per request.
fn requests(records: &[Record], config: &BTreeMap<String, String>) -> Vec<std::ops::Range<usize>> {
    let splits = config
        .get("etl.in.batch")
        .is_none_or(|b| b.trim() != "none");
    let max_body = config
        .get("etl.in.max-body")
        .and_then(|m| m.trim().parse::<usize>().ok())
        .unwrap_or(1 << 20);
    let keeps_content_type = config.get("etl.in.headers").is_some_and(|list| {
        list.split(',')
            .any(|n| n.trim().eq_ignore_ascii_case("content-type"))
    });
    // Whether `in-http` reads the record back unchanged from one line of an NDJSON body.
    let one_line = |r: &Record| {
        let p = &r.payload;
        let content_type = r
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str());
        let media = content_type.map(|v| v.split(';').next().unwrap_or_default().trim());
        // A kept `content-type` reads `application/json` on a split record: only that value comes
        // back unchanged.
        let json = content_type == Some("application/json");
        splits
            && !p.iter().all(u8::is_ascii_whitespace)
            && !p.iter().any(|b| matches!(b, b'\n' | b'\r'))
            && p.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[')
            && (json || !keeps_content_type)
            && media.is_none_or(|c| c.eq_ignore_ascii_case("application/json"))
    };
    // Runs of records, each with whether its records are lines of one NDJSON body.
    let mut runs: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
    let mut bytes = 0;
    for (i, r) in records.iter().enumerate() {
        let size = r.payload.len() + 1;
        let line = one_line(r);
        if let Some((last, true)) = runs.last_mut()
            && line
            && records[last.start].headers == r.headers
            && bytes + size <= max_body
        {
            last.end = i + 1;
            bytes += size;
            continue;
        }
        runs.push((i..i + 1, line));
        bytes = size;
    }
    runs.into_iter().map(|(run, _)| run).collect()
}

/// The records an HTTP sink's request carries: its body, or, for a sink that sends batches
/// (`etl.out.batch`), each line (`ndjson`) or element (`json-array`) of it. Each has the
/// request's headers but those of the transfer: `host`, `content-length` and `expect`.
fn request_records(request: &CapturedRequest, config: &BTreeMap<String, String>) -> Vec<Record> {
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "host" | "content-length" | "expect"))
        .cloned()
        .collect();
    let record = |payload: Vec<u8>| Record {
        key: None,
        payload,
        headers: headers.clone(),
    };
    match config.get("etl.out.batch").map(|b| b.trim()) {
        Some("ndjson") => lines(&request.body).map(record).collect(),
        Some("json-array") => {
            match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&request.body) {
                Ok(elements) => elements
                    .into_iter()
                    .map(|e| record(e.get().as_bytes().to_vec()))
                    .collect(),
                Err(_) => vec![record(request.body.clone())],
            }
        }
        _ => vec![record(request.body.clone())],
    }
}

/// The records an S3 sink's object holds: its bytes, or each line of an NDJSON batch object
/// (`etl.out.batch` = `ndjson`); the object's name is the key of each.
fn object_records(object: &CapturedObject, config: &BTreeMap<String, String>) -> Vec<Record> {
    let record = |payload: Vec<u8>| Record {
        key: Some(object.name.clone().into_bytes()),
        payload,
        headers: Vec::new(),
    };
    match config.get("etl.out.batch").map(|b| b.trim()) {
        Some("ndjson") => lines(&object.data).map(record).collect(),
        _ => vec![record(object.data.clone())],
    }
}

/// The lines of an NDJSON body, each without its `\n`.
fn lines(body: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    body.strip_suffix(b"\n")
        .unwrap_or(body)
        .split(|b| *b == b'\n')
        .filter(|_| !body.is_empty())
        .map(<[u8]>::to_vec)
}

/// Removes the last header named `name` (ASCII case-insensitive) and returns its value.
fn take_header(headers: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let i = headers
        .iter()
        .rposition(|(k, _)| k.eq_ignore_ascii_case(name))?;
    Some(headers.remove(i).1)
}

/// The header a record's id shows in, in what the runner shows and takes (docs/running.md).
pub const ID_HEADER: &str = "etl-id";

/// The envelope a record is published in at a messaging source: its last `traceparent` header
/// is the trace context, its last `etl-id` header the id (a record without one gets its id from
/// the first unit's JetStream delivery, if any).
fn envelope_of(record: &Record) -> etl_envelope::Envelope {
    let mut headers = record.headers.clone();
    let id = take_header(&mut headers, ID_HEADER);
    let traceparent = take_header(&mut headers, "traceparent");
    etl_envelope::Envelope {
        key: record.key.clone(),
        payload: record.payload.clone(),
        headers,
        traceparent,
        id,
    }
}

/// The record an envelope carries, its trace context as the last header but one (as
/// `in-messaging` presents it), and its id as the last, [`ID_HEADER`], so that what the runner
/// shows of a record published to a subject (a sink's, a dead letter) includes its id.
fn record_of(envelope: etl_envelope::Envelope) -> Record {
    let mut headers = envelope.headers;
    if let Some(t) = envelope.traceparent {
        headers.push(("traceparent".to_owned(), t));
    }
    if let Some(id) = envelope.id {
        headers.push((ID_HEADER.to_owned(), id));
    }
    Record {
        key: envelope.key,
        payload: envelope.payload,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &str, headers: &[(&str, &str)]) -> Record {
        Record {
            key: None,
            payload: payload.as_bytes().to_vec(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_runner_turns_the_harness_retries_off() {
        let served = served_config(config(&[
            ("etl.in.retries", "5"),
            ("etl.out.subjects", "a"),
        ]));
        assert_eq!(
            served,
            config(&[("etl.in.retries", "0"), ("etl.out.subjects", "a")])
        );
    }

    #[test]
    fn records_share_a_post_only_where_in_http_reads_them_back_unchanged() {
        let json = [("content-type", "application/json")];
        let records = [
            record(r#"{"a":1}"#, &json),
            record(r#"{"a":2}"#, &json),
            // A line break: alone.
            record("{\n\"a\":3}", &json),
            record(r#"{"a":4}"#, &json),
            // Other headers: a request of its own.
            record(
                r#"{"a":5}"#,
                &[("content-type", "application/json"), ("x", "1")],
            ),
            // An array would be split into its elements, a blank payload skipped: alone.
            record("[1,2]", &json),
            record("  ", &json),
            record(r#"{"a":8}"#, &json),
        ];
        assert_eq!(
            requests(&records, &BTreeMap::new()),
            [0..2, 2..3, 3..4, 4..5, 5..6, 6..7, 7..8]
        );
        // `batch: none` on the source: one record per request.
        let none = config(&[("etl.in.batch", "none")]);
        assert_eq!(requests(&records[..2], &none), [0..1, 1..2]);
        // No body over `max-body`: 8 bytes a record (7 and a line break).
        let small = config(&[("etl.in.max-body", "16")]);
        let three = [records[0].clone(), records[1].clone(), records[0].clone()];
        assert_eq!(requests(&three, &small), [0..2, 2..3]);
        // A kept `content-type` other than JSON would read `application/json` once split.
        let plain = [record("a", &[]), record("b", &[])];
        assert_eq!(
            requests(&plain, &BTreeMap::new()),
            std::iter::once(0..2).collect::<Vec<_>>()
        );
        let keeps = config(&[("etl.in.headers", "Content-Type")]);
        assert_eq!(requests(&plain, &keeps), [0..1, 1..2]);
    }

    #[test]
    fn a_sinks_batch_is_read_back_into_its_records() {
        let request = CapturedRequest {
            method: "POST".to_owned(),
            url: "http://hook/x".to_owned(),
            headers: vec![
                ("host".to_owned(), "hook".to_owned()),
                ("content-length".to_owned(), "14".to_owned()),
                ("content-type".to_owned(), NDJSON.to_owned()),
            ],
            body: b"{\"a\":1}\n[2, 3]\n".to_vec(),
        };
        let payloads = |config: &BTreeMap<String, String>| -> Vec<String> {
            request_records(&request, config)
                .into_iter()
                .map(|r| {
                    assert_eq!(r.headers, [("content-type".to_owned(), NDJSON.to_owned())]);
                    String::from_utf8(r.payload).unwrap()
                })
                .collect()
        };
        assert_eq!(
            payloads(&config(&[("etl.out.batch", "ndjson")])),
            ["{\"a\":1}", "[2, 3]"]
        );
        assert_eq!(payloads(&BTreeMap::new()), ["{\"a\":1}\n[2, 3]\n"]);
        let array = CapturedRequest {
            body: b"[{\"a\":1}, [2, 3]]".to_vec(),
            ..request.clone()
        };
        let records = request_records(&array, &config(&[("etl.out.batch", "json-array")]));
        let payloads: Vec<&[u8]> = records.iter().map(|r| &r.payload[..]).collect();
        assert_eq!(payloads, [&b"{\"a\":1}"[..], b"[2, 3]"]);
        let object = CapturedObject {
            container: "c".to_owned(),
            name: "batch-0".to_owned(),
            data: b"x\ny\n".to_vec(),
        };
        let lines = object_records(&object, &config(&[("etl.out.batch", "ndjson")]));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].key.as_deref(), Some(&b"batch-0"[..]));
    }
}
