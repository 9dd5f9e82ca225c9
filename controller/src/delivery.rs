//! At-least-once delivery (issue 20): the JetStream streams and durable push consumers a
//! bundle's `jetstream/<pipeline>.json` files describe, kept on the data plane's NATS, and the
//! messages a unit never acknowledged moved to its dead-letter subject.
//!
//! - [`Plan::read`] reads the files (`apiVersion: etl/v1alpha1`, `kind: JetStream`; each stream
//!   a NATS `StreamConfig`, each consumer a NATS `ConsumerConfig`, in the server API's field
//!   names and units), straight into `async_nats`' configs.
//! - [`Delivery::apply`] makes them so, before the manifests are applied: a stream or consumer
//!   missing is created; one whose fields the file names differ is updated (only those fields,
//!   the rest as the server has them); one as wanted is left alone. A consumer field the server
//!   cannot update (its deliver group, deliver subject, policies) is changed by recreating the
//!   consumer behind a holding consumer, so that no message loses its interest meanwhile
//!   ([`HOLD_SUFFIX`]). Streams `ETL_DATA_<project>_*` the bundle no longer has, and consumers
//!   of those streams it no longer has, are deleted; nothing else is touched.
//! - JetStream's max-deliveries advisories (sent once, as core NATS messages) of the project's
//!   delivery streams are kept by a stream of the controller's, `ETL_ADVISORIES_<project>`
//!   (made and kept to the bundle's streams by [`Delivery::apply`]), so that none is missed
//!   while the controller is down, restarting or not yet applied.
//! - [`Delivery::advisories`] reads that stream with a durable pull consumer: the message a
//!   consumer of the bundle gave up on is published to the unit's dead-letter subject (every
//!   record with `etl-error: delivery: not acknowledged after <n> deliveries` and
//!   `etl-deliveries: <n>`), confirmed by the dead-letter stream, before the advisory is
//!   acknowledged (else it is read again after [`RETRY`]). The message is deleted from its
//!   stream only once every consumer that takes its subject gave up on it and each one's copy
//!   is dead-lettered ([`Delivery::settle`]); otherwise it stays until the stream's `max_age`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{self, FromConsumer as _, push};
use async_nats::jetstream::{self, stream};
use etl::oci::bundle::{Bundle, Facts};
use etl_envelope::{Batched, Envelope};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::telemetry::lock;

/// Where a bundle's delivery files are: `jetstream/<pipeline>.json`.
pub const FILE_DIR: &str = "jetstream/";
/// `apiVersion` of a delivery file.
pub const API_VERSION: &str = "etl/v1alpha1";
/// `kind` of a delivery file.
pub const KIND: &str = "JetStream";
/// Every delivery stream's name starts with this, then `<project>_<pipeline>`.
pub const STREAM_PREFIX: &str = "ETL_DATA_";
/// The advisory JetStream publishes when a consumer delivered a message `max_deliver` times
/// without an acknowledgement: `<ADVISORY_PREFIX>.<stream>.<consumer>`, sent once, as a core
/// NATS message.
pub const ADVISORY_PREFIX: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES";
/// The project's advisory stream's name starts with this, then `<project>`: it keeps the
/// max-deliveries advisories of the project's delivery streams, so that none is missed while
/// the controller is down or busy, and none is forgotten until settled.
pub const ADVISORY_STREAM_PREFIX: &str = "ETL_ADVISORIES_";
/// The durable pull consumer the controller reads its advisory stream with.
pub const ADVISORY_CONSUMER: &str = "etl-controller";
/// How long the advisory stream keeps an advisory (settled or not).
pub const ADVISORY_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an advisory that could not be settled (its dead letter not confirmed, its stream
/// not readable) waits before it is read again.
pub const RETRY: Duration = Duration::from_secs(5);
/// How long the controller may take to settle one advisory before the server hands it out
/// again.
const ADVISORY_ACK_WAIT: Duration = Duration::from_secs(60);
/// The header a dead letter's record carries its reason in.
pub const ERROR_HEADER: &str = "etl-error";
/// The header a dead letter's record carries its delivery count in.
pub const DELIVERIES_HEADER: &str = "etl-deliveries";
/// The name of the consumer that holds a stream's messages while a consumer is recreated:
/// `<consumer>__etl_hold`, a pull consumer nobody pulls from, deleted once the consumer is
/// back (and by the server after [`HOLD_INACTIVE`] if the controller died meanwhile).
pub const HOLD_SUFFIX: &str = "__etl_hold";
/// How long a holding consumer left behind outlives its controller.
pub const HOLD_INACTIVE: Duration = Duration::from_secs(3600);

/// The stream name of `pipeline` of `project`.
pub fn stream_name(project: &str, pipeline: &str) -> String {
    format!("{STREAM_PREFIX}{project}_{pipeline}")
}

/// The name of `project`'s advisory stream.
pub fn advisory_stream_name(project: &str) -> String {
    format!("{ADVISORY_STREAM_PREFIX}{project}")
}

/// The max-deliveries advisories of the consumers of `stream`. Each stream is named in full:
/// a wildcard cannot stand for part of a token (`ETL_DATA_<project>_*` is no subject filter).
pub fn advisory_subject(stream: &str) -> String {
    format!("{ADVISORY_PREFIX}.{stream}.*")
}

/// Whether the stream `name` is one of `project`'s delivery streams (the only ones this module
/// ever changes or deletes). Names are `[a-z][-a-z0-9]*`, so `_` ends the project's.
pub fn owned_stream(project: &str, name: &str) -> bool {
    name.strip_prefix(STREAM_PREFIX)
        .and_then(|rest| rest.strip_prefix(project))
        .is_some_and(|rest| rest.starts_with('_') && rest.len() > 1)
}

/// A delivery file as the compiler writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    api_version: String,
    kind: String,
    pipeline: String,
    #[serde(default)]
    streams: Vec<Map<String, Value>>,
    #[serde(default)]
    consumers: Vec<ConsumerEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumerEntry {
    stream: String,
    config: Map<String, Value>,
}

/// A stream a bundle wants.
#[derive(Debug, Clone)]
pub struct WantedStream {
    /// The pipeline whose file names it.
    pub pipeline: String,
    /// Its configuration, as read.
    pub config: stream::Config,
    /// The fields the file sets, as the configuration serializes them: the ones compared.
    owned: Map<String, Value>,
}

/// A consumer a bundle wants.
#[derive(Debug, Clone)]
pub struct WantedConsumer {
    /// The pipeline whose file names it.
    pub pipeline: String,
    /// Its stream.
    pub stream: String,
    /// Its durable name.
    pub name: String,
    /// Its configuration, as read.
    pub config: push::Config,
    owned: Map<String, Value>,
}

/// Where a consumer's dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The unit's pipeline.
    pub pipeline: String,
    /// The unit.
    pub unit: String,
    /// Its dead-letter subject.
    pub dead_letter: String,
}

/// What a bundle's delivery files ask for.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The project.
    pub project: String,
    /// Every stream, in file order.
    pub streams: Vec<WantedStream>,
    /// Every consumer, in file order.
    pub consumers: Vec<WantedConsumer>,
    /// The pipelines whose file cannot be used, and why.
    pub unreadable: BTreeMap<String, String>,
}

/// `value` with the fields its default serialization drops: whether a file's field that does
/// not come back after a round trip is only a default (fine) or unknown (refused).
fn is_default(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Reads `fields` as a `T`, and which of them the controller owns: those the file sets and
/// `T` serializes back. A field `T` does not know, with a value other than its type's zero, is
/// an error (it would be dropped, not applied).
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(
    fields: &Map<String, Value>,
    what: &str,
) -> Result<(T, Map<String, Value>), String> {
    let config: T = serde_json::from_value(Value::Object(fields.clone()))
        .map_err(|e| format!("{what}: {e}"))?;
    let Value::Object(back) = serde_json::to_value(&config).map_err(|e| format!("{what}: {e}"))?
    else {
        return Err(format!("{what}: not an object"));
    };
    let mut owned = Map::new();
    for (key, value) in fields {
        match back.get(key) {
            Some(v) => {
                owned.insert(key.clone(), v.clone());
            }
            None if is_default(value) => {}
            None => {
                return Err(format!(
                    "{what}: field `{key}` is not one this controller knows (async-nats 0.52)"
                ));
            }
        }
    }
    Ok((config, owned))
}

/// The fields of `owned` whose value in `actual` differs, in `owned`'s order.
fn differing(owned: &Map<String, Value>, actual: &Map<String, Value>) -> Vec<String> {
    owned
        .iter()
        .filter(|(k, v)| actual.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

/// `actual` with `owned`'s fields set.
fn merged(actual: &Map<String, Value>, owned: &Map<String, Value>) -> Map<String, Value> {
    let mut config = actual.clone();
    for (k, v) in owned {
        config.insert(k.clone(), v.clone());
    }
    config
}

/// `fields` (a list of names) shown with their values before and after.
fn shown(fields: &[String], actual: &Map<String, Value>, owned: &Map<String, Value>) -> String {
    fields
        .iter()
        .map(|f| {
            let before = actual.get(f).map_or("(unset)".to_owned(), Value::to_string);
            let after = owned.get(f).map_or("(unset)".to_owned(), Value::to_string);
            format!("{f} ({before} → {after})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn object<T: serde::Serialize>(value: &T) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

impl Plan {
    /// The plan of `bundle`'s `jetstream/*.json` files.
    pub fn read(bundle: &Bundle) -> Plan {
        let project = &bundle.facts.project;
        let mut plan = Plan {
            project: project.clone(),
            ..Plan::default()
        };
        for (path, bytes) in &bundle.files {
            let Some(name) = path
                .strip_prefix(FILE_DIR)
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if let Err(e) = plan.add(name, bytes) {
                plan.unreadable
                    .insert(name.to_owned(), format!("{path}: {e}"));
            }
        }
        plan
    }

    fn add(&mut self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let file: File = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if file.api_version != API_VERSION || file.kind != KIND {
            return Err(format!(
                "`{} {}`, expected `{API_VERSION} {KIND}`",
                file.api_version, file.kind
            ));
        }
        if file.pipeline != name {
            return Err(format!("names pipeline `{}`", file.pipeline));
        }
        let mut streams = Vec::new();
        for fields in &file.streams {
            let (config, owned) = typed::<stream::Config>(fields, "a stream")?;
            if !owned_stream(&self.project, &config.name) {
                return Err(format!(
                    "stream `{}` is not named {STREAM_PREFIX}{}_<pipeline>",
                    config.name, self.project
                ));
            }
            if self
                .streams
                .iter()
                .chain(&streams)
                .any(|s: &WantedStream| s.config.name == config.name)
            {
                return Err(format!("stream `{}` is named twice", config.name));
            }
            streams.push(WantedStream {
                pipeline: file.pipeline.clone(),
                config,
                owned,
            });
        }
        let mut consumers = Vec::new();
        for entry in &file.consumers {
            let what = format!("a consumer of stream `{}`", entry.stream);
            let (config, owned) = typed::<push::Config>(&entry.config, &what)?;
            let name = config
                .durable_name
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("{what} has no durable_name"))?;
            if config.deliver_subject.is_empty() {
                return Err(format!("consumer `{name}` has no deliver_subject"));
            }
            if !owned_stream(&self.project, &entry.stream) {
                return Err(format!(
                    "consumer `{name}` is on stream `{}`, not one of {STREAM_PREFIX}{}_*",
                    entry.stream, self.project
                ));
            }
            if name.ends_with(HOLD_SUFFIX) {
                return Err(format!(
                    "consumer `{name}`: names ending `{HOLD_SUFFIX}` are the controller's"
                ));
            }
            if self
                .consumers
                .iter()
                .chain(&consumers)
                .any(|c: &WantedConsumer| c.stream == entry.stream && c.name == name)
            {
                return Err(format!(
                    "consumer `{name}` of stream `{}` is named twice",
                    entry.stream
                ));
            }
            consumers.push(WantedConsumer {
                pipeline: file.pipeline.clone(),
                stream: entry.stream.clone(),
                name,
                config,
                owned,
            });
        }
        self.streams.extend(streams);
        self.consumers.extend(consumers);
        Ok(())
    }

    /// Whether the bundle asks for nothing and every file was read.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty() && self.consumers.is_empty() && self.unreadable.is_empty()
    }

    /// Where each consumer's dead letters go, by `(stream, consumer)`: the unit is named by the
    /// consumer's deliver subject (`etl.<project>.<pipeline>.deliver.<unit>`), else by its
    /// file's pipeline and its name; its dead-letter subject is the bundle's facts', else
    /// `etl.<project>.<pipeline>.dlq.<unit>`.
    pub fn routes(&self, facts: &Facts) -> BTreeMap<(String, String), Route> {
        self.consumers
            .iter()
            .map(|c| {
                let (pipeline, unit) = match c.config.deliver_subject.split('.').collect::<Vec<_>>()
                    [..]
                {
                    ["etl", _, pipeline, "deliver", unit] => (pipeline.to_owned(), unit.to_owned()),
                    _ => {
                        let unit = c
                            .name
                            .strip_prefix(&format!("{}__", c.pipeline))
                            .unwrap_or(&c.name);
                        (c.pipeline.clone(), unit.to_owned())
                    }
                };
                let dead_letter = facts
                    .pipelines
                    .iter()
                    .find(|p| p.name == pipeline)
                    .and_then(|p| p.nodes.iter().find(|n| n.name == unit))
                    .and_then(|n| n.dead_letter.clone())
                    .unwrap_or_else(|| format!("etl.{}.{pipeline}.dlq.{unit}", self.project));
                (
                    (c.stream.clone(), c.name.clone()),
                    Route {
                        pipeline,
                        unit,
                        dead_letter,
                    },
                )
            })
            .collect()
    }
}

/// What [`Delivery::apply`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A stream made.
    StreamCreated(String),
    /// A stream's fields updated.
    StreamUpdated(String, Vec<String>),
    /// A stream of a pipeline gone from the bundle deleted.
    StreamDeleted(String),
    /// A consumer made: stream, consumer.
    ConsumerCreated(String, String),
    /// A consumer's fields updated.
    ConsumerUpdated(String, String, Vec<String>),
    /// A consumer deleted and made again (a field the server cannot update).
    ConsumerRecreated(String, String, Vec<String>),
    /// A consumer the bundle no longer has deleted.
    ConsumerDeleted(String, String),
}

/// What [`Delivery::apply`] did, and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// What changed.
    pub changes: Vec<Change>,
    /// The pipelines whose streams or consumers are not as the bundle wants, and why (naming
    /// the stream, the consumer and the fields). Their manifests must not be applied.
    pub failures: BTreeMap<String, String>,
}

impl Outcome {
    fn fail(&mut self, pipeline: &str, reason: String) {
        tracing::warn!(pipeline, "{reason}");
        let entry = self.failures.entry(pipeline.to_owned()).or_default();
        if !entry.is_empty() {
            entry.push_str("; ");
        }
        entry.push_str(&reason);
    }
}

/// Counts of messages moved to dead-letter subjects after their last delivery, by pipeline and
/// unit.
pub type Moved = BTreeMap<(String, String), u64>;

/// What the last apply said about the consumers: the project, and where each consumer's dead
/// letters go.
#[derive(Debug, Clone)]
struct Routes {
    project: String,
    by_consumer: BTreeMap<(String, String), Route>,
}

/// The delivery streams of one controller, on the data plane's NATS.
#[derive(Clone)]
pub struct Delivery {
    js: jetstream::Context,
    /// `None` until the first apply.
    routes: Arc<watch::Sender<Option<Routes>>>,
    moved: Arc<Mutex<Moved>>,
    lost: Arc<Mutex<Moved>>,
}

fn stream_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

fn consumer_not_found(e: &stream::ConsumerError) -> bool {
    matches!(
        e.kind(),
        stream::ConsumerErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND
    )
}

impl Delivery {
    /// The delivery streams on `nats`.
    pub fn new(nats: async_nats::Client) -> Delivery {
        Delivery {
            js: jetstream::new(nats),
            routes: Arc::new(watch::channel(None).0),
            moved: Arc::new(Mutex::new(Moved::new())),
            lost: Arc::new(Mutex::new(Moved::new())),
        }
    }

    /// The messages moved to dead-letter subjects so far.
    pub fn moved(&self) -> Moved {
        lock(&self.moved).clone()
    }

    /// The messages given up on that were gone from their stream before they could be
    /// dead-lettered (their `max_age`, a purge), so far.
    pub fn lost(&self) -> Moved {
        lock(&self.lost).clone()
    }

    /// Brings the data plane's NATS to `bundle`'s delivery files.
    pub async fn apply(&self, bundle: &Bundle) -> Outcome {
        let plan = Plan::read(bundle);
        let mut outcome = Outcome::default();
        for (pipeline, reason) in &plan.unreadable {
            outcome.fail(pipeline, reason.clone());
        }
        self.routes.send_replace(Some(Routes {
            project: plan.project.clone(),
            by_consumer: plan.routes(&bundle.facts),
        }));
        // Every request would wait out its timeout: say so at once, and hold nothing up that
        // does not need JetStream.
        let connection = self.js.client().connection_state();
        if connection != async_nats::connection::State::Connected {
            for wanted in &plan.streams {
                outcome.fail(
                    &wanted.pipeline,
                    format!(
                        "JetStream stream `{}`: the data plane's NATS is not connected \
                         ({connection})",
                        wanted.config.name
                    ),
                );
            }
            return outcome;
        }
        let mut failed_streams = BTreeSet::new();
        for wanted in &plan.streams {
            if let Err(reason) = self.ensure_stream(wanted, &mut outcome.changes).await {
                failed_streams.insert(wanted.config.name.clone());
                outcome.fail(&wanted.pipeline, reason);
            }
        }
        // Before any consumer can give up on a message: the stream that keeps their advisories.
        if let Err(reason) = self.ensure_advisories(&plan, &mut outcome.changes).await {
            for wanted in &plan.streams {
                outcome.fail(&wanted.pipeline, reason.clone());
            }
        }
        for wanted in &plan.consumers {
            let result = if failed_streams.contains(&wanted.stream) {
                Err(format!(
                    "JetStream consumer `{}` of stream `{}`: not made, the stream is not as wanted",
                    wanted.name, wanted.stream
                ))
            } else if !plan.streams.iter().any(|s| s.config.name == wanted.stream) {
                Err(format!(
                    "JetStream consumer `{}`: its stream `{}` is not in the bundle",
                    wanted.name, wanted.stream
                ))
            } else {
                self.ensure_consumer(wanted, &mut outcome.changes).await
            };
            if let Err(reason) = result {
                outcome.fail(&wanted.pipeline, reason);
            }
        }
        // A file that cannot be read may name streams and consumers still in use: nothing is
        // pruned until every file is read.
        if plan.unreadable.is_empty() {
            self.prune(&plan, &mut outcome.changes).await;
        }
        for change in &outcome.changes {
            tracing::info!("JetStream: {change:?}");
        }
        outcome
    }

    async fn ensure_stream(
        &self,
        wanted: &WantedStream,
        changes: &mut Vec<Change>,
    ) -> Result<(), String> {
        let name = &wanted.config.name;
        let failed = |detail: String| format!("JetStream stream `{name}`: {detail}");
        match self.js.get_stream(name).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(|e| failed(e.to_string()))?;
                let actual = object(&info.config);
                let fields = differing(&wanted.owned, &actual);
                if fields.is_empty() {
                    return Ok(());
                }
                let config: stream::Config =
                    serde_json::from_value(Value::Object(merged(&actual, &wanted.owned)))
                        .map_err(|e| failed(e.to_string()))?;
                self.js.update_stream(config).await.map_err(|e| {
                    failed(format!(
                        "the server refuses to update {}: {e}",
                        shown(&fields, &actual, &wanted.owned)
                    ))
                })?;
                changes.push(Change::StreamUpdated(name.clone(), fields));
                Ok(())
            }
            Err(get) if stream_not_found(&get) => {
                self.js
                    .create_stream(wanted.config.clone())
                    .await
                    .map_err(|e| failed(format!("creating it: {e}")))?;
                changes.push(Change::StreamCreated(name.clone()));
                Ok(())
            }
            Err(get) => Err(failed(get.to_string())),
        }
    }

    /// Makes the project's advisory stream keep the max-deliveries advisories of exactly the
    /// plan's streams (`limits` retention, [`ADVISORY_MAX_AGE`]), and its durable pull consumer
    /// for the controller. Deleted when the plan has no stream (and every file was read).
    async fn ensure_advisories(
        &self,
        plan: &Plan,
        changes: &mut Vec<Change>,
    ) -> Result<(), String> {
        let name = advisory_stream_name(&plan.project);
        let failed = |detail: String| {
            format!(
                "JetStream stream `{name}` (the advisories of messages never acknowledged): \
                 {detail}"
            )
        };
        let mut subjects: Vec<String> = plan
            .streams
            .iter()
            .map(|s| advisory_subject(&s.config.name))
            .collect();
        subjects.sort();
        if subjects.is_empty() {
            if plan.unreadable.is_empty() {
                match self.js.delete_stream(&name).await {
                    Ok(_) => changes.push(Change::StreamDeleted(name.clone())),
                    Err(e) if e.to_string().contains("stream not found") => {}
                    Err(e) => tracing::debug!("JetStream: deleting stream `{name}`: {e}"),
                }
            }
            return Ok(());
        }
        match self.js.get_stream(&name).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(|e| failed(e.to_string()))?;
                let mut actual = info.config.subjects.clone();
                actual.sort();
                if actual != subjects {
                    let mut config = info.config.clone();
                    config.subjects = subjects;
                    self.js
                        .update_stream(config)
                        .await
                        .map_err(|e| failed(format!("updating its subjects: {e}")))?;
                    changes.push(Change::StreamUpdated(name.clone(), vec!["subjects".into()]));
                }
            }
            Err(get) if stream_not_found(&get) => {
                self.js
                    .create_stream(stream::Config {
                        name: name.clone(),
                        description: Some(format!(
                            "etl-controller: max-deliveries advisories of project {}'s delivery \
                             streams, until dead-lettered",
                            plan.project
                        )),
                        subjects,
                        retention: stream::RetentionPolicy::Limits,
                        storage: stream::StorageType::File,
                        discard: stream::DiscardPolicy::Old,
                        max_age: ADVISORY_MAX_AGE,
                        max_bytes: 64 * 1024 * 1024,
                        num_replicas: 1,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| failed(format!("creating it: {e}")))?;
                changes.push(Change::StreamCreated(name.clone()));
            }
            Err(get) => return Err(failed(get.to_string())),
        }
        let stream = self
            .js
            .get_stream_no_info(&name)
            .await
            .map_err(|e| failed(e.to_string()))?;
        match stream.consumer_info(ADVISORY_CONSUMER).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => {
                stream
                    .create_consumer(consumer::pull::Config {
                        durable_name: Some(ADVISORY_CONSUMER.to_owned()),
                        description: Some(
                            "etl-controller: dead-letters what the advisories name".to_owned(),
                        ),
                        deliver_policy: consumer::DeliverPolicy::All,
                        ack_policy: consumer::AckPolicy::Explicit,
                        ack_wait: ADVISORY_ACK_WAIT,
                        max_deliver: -1,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| failed(format!("creating consumer `{ADVISORY_CONSUMER}`: {e}")))?;
                changes.push(Change::ConsumerCreated(
                    name.clone(),
                    ADVISORY_CONSUMER.into(),
                ));
                Ok(())
            }
            Err(e) => Err(failed(e.to_string())),
        }
    }

    /// Drops the advisories of the deleted stream `name` from the advisory stream: a stream
    /// of the same name made later numbers its messages from 1 again.
    async fn forget_advisories(&self, project: &str, name: &str) {
        let advisories = advisory_stream_name(project);
        if let Ok(stream) = self.js.get_stream_no_info(&advisories).await
            && let Err(e) = stream.purge().filter(advisory_subject(name)).await
        {
            tracing::debug!("JetStream: purging `{advisories}` of `{name}`'s advisories: {e}");
        }
    }

    async fn ensure_consumer(
        &self,
        wanted: &WantedConsumer,
        changes: &mut Vec<Change>,
    ) -> Result<(), String> {
        let (stream_name, name) = (&wanted.stream, &wanted.name);
        let failed = |detail: String| {
            format!("JetStream consumer `{name}` of stream `{stream_name}`: {detail}")
        };
        let stream = self
            .js
            .get_stream_no_info(stream_name)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let info = match stream.consumer_info(name).await {
            Ok(info) => info,
            Err(e) if e.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => {
                stream
                    .create_consumer(wanted.config.clone())
                    .await
                    .map_err(|e| failed(format!("creating it: {e}")))?;
                changes.push(Change::ConsumerCreated(stream_name.clone(), name.clone()));
                self.unhold(&stream, name).await;
                return Ok(());
            }
            Err(e) => return Err(failed(e.to_string())),
        };
        let actual = push::Config::try_from_consumer_config(info.config.clone())
            .map(|c| object(&c))
            .unwrap_or_else(|_| object(&info.config));
        let fields = differing(&wanted.owned, &actual);
        if fields.is_empty() {
            self.unhold(&stream, name).await;
            return Ok(());
        }
        let config: push::Config =
            serde_json::from_value(Value::Object(merged(&actual, &wanted.owned)))
                .map_err(|e| failed(e.to_string()))?;
        let refused = match stream.update_consumer(config).await {
            Ok(_) => {
                changes.push(Change::ConsumerUpdated(
                    stream_name.clone(),
                    name.clone(),
                    fields,
                ));
                return Ok(());
            }
            Err(e) => e.to_string(),
        };
        // The server cannot update every field of a consumer (deliver subject and group,
        // policies): such a change is made by recreating it, never for anything else it refuses.
        if !refused.contains("can not be updated") && !refused.contains("cannot be updated") {
            return Err(failed(format!(
                "the server refuses to update {}: {refused}",
                shown(&fields, &actual, &wanted.owned)
            )));
        }
        self.recreate(&stream, wanted, &info).await.map_err(|e| {
            failed(format!(
                "recreating it to change {}: {e}",
                shown(&fields, &actual, &wanted.owned)
            ))
        })?;
        changes.push(Change::ConsumerRecreated(
            stream_name.clone(),
            name.clone(),
            fields,
        ));
        Ok(())
    }

    /// Deletes the consumer of `wanted` and makes it again, a holding consumer keeping the
    /// interest of every message of the old and the new filter in between: with `interest`
    /// retention a message no consumer needs is dropped at once, so without it a message
    /// stored while the consumer is away, or one the old consumer had not acknowledged, would
    /// be lost. The new consumer starts as its `deliver_policy` says (`all`: it redelivers what
    /// the stream still holds of its subjects: duplicates, not losses).
    async fn recreate(
        &self,
        stream: &stream::Stream<()>,
        wanted: &WantedConsumer,
        old: &consumer::Info,
    ) -> Result<(), String> {
        let mut filters: Vec<String> = old.config.filter_subjects.clone();
        filters.extend(wanted.config.filter_subjects.iter().cloned());
        for f in [&old.config.filter_subject, &wanted.config.filter_subject] {
            if !f.is_empty() {
                filters.push(f.clone());
            }
        }
        filters.sort();
        filters.dedup();
        // Overlapping filters are refused: the whole stream then.
        let overlapping = filters
            .iter()
            .any(|a| filters.iter().any(|b| a != b && subject_matches(a, b)));
        if overlapping {
            filters.clear();
        }
        let hold = format!("{}{HOLD_SUFFIX}", wanted.name);
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(hold.clone()),
                description: Some(format!(
                    "etl-controller: holds the messages of `{}` while it is recreated",
                    wanted.name
                )),
                deliver_policy: consumer::DeliverPolicy::All,
                ack_policy: consumer::AckPolicy::Explicit,
                filter_subjects: filters,
                inactive_threshold: HOLD_INACTIVE,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("holding its messages (consumer `{hold}`): {e}"))?;
        stream
            .delete_consumer(&wanted.name)
            .await
            .map_err(|e| format!("deleting it: {e}"))?;
        stream
            .create_consumer(wanted.config.clone())
            .await
            .map_err(|e| {
                format!("creating it again: {e} (consumer `{hold}` holds its messages)")
            })?;
        self.unhold(stream, &wanted.name).await;
        Ok(())
    }

    /// Deletes the holding consumer of `name`, if any: `name` is there again.
    async fn unhold(&self, stream: &stream::Stream<()>, name: &str) {
        let hold = format!("{name}{HOLD_SUFFIX}");
        match stream.delete_consumer(&hold).await {
            Ok(_) => tracing::info!(
                consumer = name,
                "JetStream: holding consumer `{hold}` deleted"
            ),
            Err(e) if consumer_not_found(&e) => {}
            Err(e) => tracing::warn!("JetStream: deleting holding consumer `{hold}`: {e}"),
        }
    }

    /// Deletes the project's delivery streams the plan lacks, and the consumers of its streams
    /// the plan lacks (a holding consumer stays while the consumer it holds for is missing).
    /// Failures are logged and tried again at the next apply.
    async fn prune(&self, plan: &Plan, changes: &mut Vec<Change>) {
        let mut names: Vec<String> = match self.js.stream_names().try_collect().await {
            Ok(names) => names,
            Err(e) => {
                // No JetStream, and nothing wanted: an at-most-once bundle.
                if plan.is_empty() {
                    tracing::debug!("JetStream: listing streams: {e}");
                } else {
                    tracing::warn!(
                        "JetStream: listing streams to delete those of pipelines gone: {e}"
                    );
                }
                return;
            }
        };
        names.sort();
        for name in names.iter().filter(|n| owned_stream(&plan.project, n)) {
            if !plan.streams.iter().any(|s| s.config.name == *name) {
                match self.js.delete_stream(name).await {
                    Ok(_) => {
                        changes.push(Change::StreamDeleted(name.clone()));
                        self.forget_advisories(&plan.project, name).await;
                    }
                    Err(e) => tracing::warn!("JetStream: deleting stream `{name}`: {e}"),
                }
                continue;
            }
            let stream = match self.js.get_stream_no_info(name).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("JetStream: stream `{name}`: {e}");
                    continue;
                }
            };
            let consumers: Vec<String> = match stream.consumer_names().try_collect().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("JetStream: listing the consumers of `{name}`: {e}");
                    continue;
                }
            };
            let wanted = |c: &str| {
                plan.consumers
                    .iter()
                    .any(|w| w.stream == *name && w.name == c)
            };
            for consumer in &consumers {
                let keep = match consumer.strip_suffix(HOLD_SUFFIX) {
                    Some(held) => wanted(held) && !consumers.iter().any(|c| c == held),
                    None => wanted(consumer),
                };
                if keep {
                    continue;
                }
                match stream.delete_consumer(consumer).await {
                    Ok(_) => changes.push(Change::ConsumerDeleted(name.clone(), consumer.clone())),
                    Err(e) => {
                        tracing::warn!("JetStream: deleting consumer `{consumer}` of `{name}`: {e}")
                    }
                }
            }
        }
    }

    /// Reads the project's advisory stream ([`advisory_stream_name`]) until `stop` turns true,
    /// through its durable pull consumer [`ADVISORY_CONSUMER`], and moves each message a
    /// consumer of the bundle gave up on to its unit's dead-letter subject ([`Self::settle`]).
    /// Nothing is read before the first [`Self::apply`]: until then which unit a consumer feeds,
    /// and where its dead letters go, are unknown. An advisory is acknowledged once settled; one
    /// that cannot be yet (the dead-letter stream does not confirm, the stream cannot be read)
    /// is handed back to be read again after [`RETRY`], for as long as the advisory stream keeps
    /// it ([`ADVISORY_MAX_AGE`]).
    pub async fn advisories(self, mut stop: watch::Receiver<bool>) {
        let mut routes = self.routes.subscribe();
        let project = loop {
            if let Some(project) = routes.borrow().as_ref().map(|r| r.project.clone()) {
                break project;
            }
            tokio::select! {
                changed = routes.changed() => if changed.is_err() { return },
                () = crate::telemetry::stopped(&mut stop) => return,
            }
        };
        let name = advisory_stream_name(&project);
        let mut settled = Settled::default();
        loop {
            let consumer = match self
                .js
                .get_consumer_from_stream::<consumer::pull::Config, _, _>(ADVISORY_CONSUMER, &name)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("the advisory consumer of `{name}`: {e} (made by an apply)");
                    if crate::telemetry::pause(&mut stop, RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            loop {
                let batch = consumer
                    .batch()
                    .max_messages(64)
                    .expires(Duration::from_secs(5))
                    .messages()
                    .await;
                let mut batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!("reading the advisories of `{name}`: {e}");
                        break;
                    }
                };
                let mut failed = false;
                loop {
                    tokio::select! {
                        message = batch.next() => match message {
                            None => break,
                            Some(Ok(message)) => self.handle(&message, &mut settled).await,
                            Some(Err(e)) => {
                                tracing::warn!("reading the advisories of `{name}`: {e}");
                                failed = true;
                                break;
                            }
                        },
                        () = crate::telemetry::stopped(&mut stop) => return,
                    }
                }
                if failed {
                    break;
                }
            }
            if crate::telemetry::pause(&mut stop, Duration::from_secs(1)).await {
                return;
            }
        }
    }

    /// Settles one message of the advisory stream: acknowledged once settled, handed back for
    /// [`RETRY`] if not.
    async fn handle(&self, message: &jetstream::Message, settled: &mut Settled) {
        let outcome = match serde_json::from_slice::<Advisory>(&message.payload) {
            Ok(advisory) => self.settle(&advisory, settled).await,
            Err(e) => {
                tracing::warn!(
                    "an advisory on {} that cannot be read: {e}",
                    message.subject
                );
                Ok(())
            }
        };
        let ack = match outcome {
            Ok(()) => message.ack().await,
            Err(()) => message.ack_with(jetstream::AckKind::Nak(Some(RETRY))).await,
        };
        if let Err(e) = ack {
            // Read again after the consumer's ack_wait: settling twice is one dead letter.
            tracing::debug!("acknowledging an advisory: {e}");
        }
    }

    /// Moves the message of `advisory` to its unit's dead-letter subject, when the consumer is
    /// one of the bundle's; then deletes it from its stream if every consumer of the stream that
    /// takes its subject gave up on it too (each with its advisory in the advisory stream) and
    /// each one's copy is dead-lettered, else leaves it there. `Err` when it must be tried again
    /// later (logged): the message is still in its stream, not dead-lettered.
    ///
    /// Deleting only then is what makes deleting safe: a consumer that acknowledged the message
    /// and one that gave up on it a moment ago (its advisory not yet stored) look the same to
    /// JetStream's consumer state (both have their acknowledgement floor past it), so only an
    /// advisory tells. A message some consumer acknowledged and another gave up on stays in the
    /// stream until its `max_age`: storage traded for never losing a copy.
    pub async fn settle(&self, advisory: &Advisory, settled: &mut Settled) -> Result<(), ()> {
        let key = (advisory.stream.clone(), advisory.consumer.clone());
        let Some(route) = self.route(&key) else {
            tracing::debug!(
                stream = %advisory.stream,
                consumer = %advisory.consumer,
                "an advisory of a consumer the bundle does not have: ignored"
            );
            return Ok(());
        };
        let seq = advisory.stream_seq;
        let retry = |what: &str| {
            tracing::warn!(
                pipeline = %route.pipeline,
                unit = %route.unit,
                stream = %advisory.stream,
                seq,
                deliveries = advisory.deliveries,
                "message not acknowledged after {} deliveries: {what}; it stays in the stream, \
                 tried again in {}",
                advisory.deliveries,
                humantime::format_duration(RETRY)
            );
            Err(())
        };
        let stream = match self.js.get_stream_no_info(&advisory.stream).await {
            Ok(s) => s,
            // The pipeline was removed: its messages went with its stream.
            Err(e) if stream_not_found(&e) => return Ok(()),
            Err(e) => return retry(&format!("stream: {e}")),
        };
        let message = match stream.get_raw_message(seq).await {
            Ok(m) => m,
            Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => {
                if settled.contains(&advisory.stream, seq) {
                    // Dead-lettered for this consumer too when it was deleted.
                    tracing::debug!(stream = %advisory.stream, seq, "already dead-lettered");
                } else {
                    *lock(&self.lost)
                        .entry((route.pipeline.clone(), route.unit.clone()))
                        .or_default() += 1;
                    tracing::warn!(
                        pipeline = %route.pipeline,
                        unit = %route.unit,
                        stream = %advisory.stream,
                        seq,
                        deliveries = advisory.deliveries,
                        "message not acknowledged after {} deliveries: gone from the stream \
                         before it was dead-lettered (its max_age, a purge, or dead-lettered \
                         by a controller since restarted)",
                        advisory.deliveries
                    );
                }
                return Ok(());
            }
            Err(e) => return retry(&format!("reading it: {e}")),
        };
        if let Err(e) = self.publish(&route, advisory, &message).await {
            return retry(&format!("publishing it to {}: {e}", route.dead_letter));
        }
        match self.everyone_gave_up(&stream, advisory, &message).await {
            Ok(()) => match stream.delete_message(seq).await {
                Ok(_) => {
                    settled.insert(&advisory.stream, seq);
                    tracing::info!(
                        stream = %advisory.stream,
                        seq,
                        "every consumer gave up on it: deleted from the stream"
                    );
                }
                Err(e) if e.to_string().contains("no message found") => {}
                Err(e) => {
                    tracing::warn!(stream = %advisory.stream, seq, "deleting a message given up on: {e}")
                }
            },
            Err(why) => {
                tracing::debug!(stream = %advisory.stream, seq, "kept in the stream: {why}")
            }
        }
        Ok(())
    }

    fn route(&self, key: &(String, String)) -> Option<Route> {
        self.routes
            .borrow()
            .as_ref()
            .and_then(|r| r.by_consumer.get(key).cloned())
    }

    /// Publishes `message`'s dead letter for the consumer of `advisory`, confirmed by the
    /// dead-letter stream; the same message given up on by the same consumer is one dead letter
    /// (`Nats-Msg-Id`, within the stream's duplicate window).
    async fn publish(
        &self,
        route: &Route,
        advisory: &Advisory,
        message: &jetstream::message::StreamMessage,
    ) -> Result<(), String> {
        let seq = advisory.stream_seq;
        let (body, records) = dead_letter_body(
            &message.payload,
            advisory.deliveries,
            &format!("{}:{seq}", advisory.stream),
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!(
                "etl-max-deliveries.{}.{}.{seq}",
                advisory.stream, advisory.consumer
            )
            .as_str(),
        );
        let ack = self
            .js
            .publish_with_headers(route.dead_letter.clone(), headers, body.into())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        if ack.duplicate {
            return Ok(());
        }
        *lock(&self.moved)
            .entry((route.pipeline.clone(), route.unit.clone()))
            .or_default() += 1;
        tracing::info!(
            pipeline = %route.pipeline,
            unit = %route.unit,
            stream = %advisory.stream,
            seq,
            deliveries = advisory.deliveries,
            records,
            "message not acknowledged after {} deliveries: dead-lettered to {}",
            advisory.deliveries,
            route.dead_letter
        );
        Ok(())
    }

    /// `Ok` when every consumer of `stream` that takes `message`'s subject, other than the
    /// one of `advisory` (dead-lettered already), has an advisory for it in the advisory stream,
    /// newer than the message, and its copy is now dead-lettered too. Else why not: the message
    /// must stay (another consumer may still need it, or one that gave up has no dead letter
    /// yet; its own advisory comes here again).
    async fn everyone_gave_up(
        &self,
        stream: &stream::Stream<()>,
        advisory: &Advisory,
        message: &jetstream::message::StreamMessage,
    ) -> Result<(), String> {
        let project = self
            .routes
            .borrow()
            .as_ref()
            .map(|r| r.project.clone())
            .ok_or("no bundle applied")?;
        let advisories = self
            .js
            .get_stream_no_info(advisory_stream_name(&project))
            .await
            .map_err(|e| format!("the advisory stream: {e}"))?;
        let subject = message.subject.to_string();
        let mut consumers = stream.consumers();
        while let Some(info) = consumers.next().await {
            let info = info.map_err(|e| format!("listing the consumers: {e}"))?;
            if info.name == advisory.consumer {
                continue;
            }
            let c = &info.config;
            let filters: Vec<&String> = c
                .filter_subjects
                .iter()
                .chain((!c.filter_subject.is_empty()).then_some(&c.filter_subject))
                .collect();
            if !filters.is_empty() && !filters.iter().any(|f| subject_matches(f, &subject)) {
                continue;
            }
            let Some(theirs) = find_advisory(
                &advisories,
                &advisory.stream,
                &info.name,
                advisory.stream_seq,
                message.time,
            )
            .await?
            else {
                return Err(format!("consumer `{}` has not given up on it", info.name));
            };
            let route = self
                .route(&(advisory.stream.clone(), info.name.clone()))
                .ok_or_else(|| format!("consumer `{}` is not the bundle's", info.name))?;
            self.publish(&route, &theirs, message)
                .await
                .map_err(|e| format!("dead-lettering `{}`'s copy: {e}", info.name))?;
        }
        Ok(())
    }
}

/// The advisory of `consumer` of `stream` for its message `seq` in the advisory stream, if
/// any, stored at or after `since` (the message's time: an advisory of an earlier stream of
/// the same name is not it).
async fn find_advisory(
    advisories: &stream::Stream<()>,
    stream: &str,
    consumer: &str,
    seq: u64,
    since: time::OffsetDateTime,
) -> Result<Option<Advisory>, String> {
    let subject = format!("{ADVISORY_PREFIX}.{stream}.{consumer}");
    let mut from = 1;
    // Advisories are few (each a message no unit could process): a linear scan of one
    // consumer's, bounded.
    for _ in 0..100_000 {
        let found = advisories
            .raw_message_builder()
            .sequence(from)
            .next_by_subject(subject.clone())
            .send()
            .await;
        let found = match found {
            Ok(m) => m,
            Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(e) => return Err(format!("reading the advisories of `{consumer}`: {e}")),
        };
        from = found.sequence + 1;
        if found.time < since {
            continue;
        }
        if let Ok(a) = serde_json::from_slice::<Advisory>(&found.payload)
            && a.stream_seq == seq
            && a.stream == stream
            && a.consumer == consumer
        {
            return Ok(Some(a));
        }
    }
    Err(format!("too many advisories of `{consumer}`"))
}

/// The messages this controller deleted after dead-lettering every consumer's copy, the
/// newest [`SETTLED_KEPT`]: another consumer's advisory for one of them finds it gone, as it
/// should.
#[derive(Debug, Default)]
pub struct Settled(std::collections::VecDeque<(String, u64)>);

/// How many deleted messages [`Settled`] remembers.
const SETTLED_KEPT: usize = 4096;

impl Settled {
    fn contains(&self, stream: &str, seq: u64) -> bool {
        self.0.iter().any(|(s, q)| s == stream && *q == seq)
    }

    fn insert(&mut self, stream: &str, seq: u64) {
        if self.0.len() >= SETTLED_KEPT {
            self.0.pop_front();
        }
        self.0.push_back((stream.to_owned(), seq));
    }
}

/// A JetStream max-deliveries advisory (`io.nats.jetstream.advisory.v1.max_deliver`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Advisory {
    /// The stream.
    pub stream: String,
    /// The consumer.
    pub consumer: String,
    /// The message's stream sequence.
    pub stream_seq: u64,
    /// How often it was delivered.
    pub deliveries: u64,
}

/// Whether the subject filter `filter` (`*`, `>` wildcards) matches `subject`.
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The dead letter of a message a unit never acknowledged, delivered `deliveries` times: its
/// batch, every record with `etl-error: delivery: not acknowledged after <n> deliveries` and
/// `etl-deliveries: <n>` appended and its index as its origin (the harness's own dead letters'
/// form); a body that is no etl envelope becomes one record of it. A record without an id gets
/// `<id_prefix>-<index>`, `<stream>:<stream-seq>`, the id `in-messaging` gives it on a delivery
/// (docs/harness.md, record ids). And how many records.
pub fn dead_letter_body(body: &[u8], deliveries: u64, id_prefix: &str) -> (Vec<u8>, usize) {
    let records = etl_envelope::decode_batch(body).unwrap_or_else(|_| {
        vec![Batched {
            origin: 0,
            envelope: Envelope {
                payload: body.to_vec(),
                ..Envelope::default()
            },
        }]
    });
    let reason = format!("delivery: not acknowledged after {deliveries} deliveries");
    let batch: Vec<Batched> = records
        .into_iter()
        .zip(0u32..)
        .map(|(mut b, index)| {
            b.origin = index;
            b.envelope
                .id
                .get_or_insert_with(|| format!("{id_prefix}-{index}"));
            b.envelope
                .headers
                .push((ERROR_HEADER.to_owned(), reason.clone()));
            b.envelope
                .headers
                .push((DELIVERIES_HEADER.to_owned(), deliveries.to_string()));
            b
        })
        .collect();
    let count = batch.len();
    (etl_envelope::encode_batch(&batch), count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_projects_delivery_streams_are_owned() {
        assert!(owned_stream("p", "ETL_DATA_p_pipe"));
        assert!(owned_stream("p", "ETL_DATA_p_a-b"));
        assert!(!owned_stream("p", "ETL_DATA_p_"));
        assert!(!owned_stream("p", "ETL_DATA_p"));
        assert!(!owned_stream("p", "ETL_DATA_pq_pipe"));
        assert!(!owned_stream("p", "ETL_DLQ_p"));
        assert!(!owned_stream("p", "OTHER"));
        assert_eq!(stream_name("p", "pipe"), "ETL_DATA_p_pipe");
    }

    #[test]
    fn subject_filters_match_as_nats_does() {
        assert!(subject_matches("etl.p.x.out.a", "etl.p.x.out.a"));
        assert!(subject_matches("etl.p.x.out.*", "etl.p.x.out.a"));
        assert!(subject_matches("etl.>", "etl.p.x.out.a"));
        assert!(!subject_matches("etl.>", "etl"));
        assert!(!subject_matches("etl.p.x.out.*", "etl.p.x.out.a.b"));
        assert!(!subject_matches("etl.p.x.out.a", "etl.p.x.out"));
    }

    #[test]
    fn a_dead_letter_carries_the_reason_and_count_on_every_record() {
        let batch = vec![
            Batched {
                origin: 7,
                envelope: Envelope {
                    key: Some(b"k".to_vec()),
                    payload: b"one".to_vec(),
                    headers: vec![("a".into(), "1".into())],
                    traceparent: None,
                    id: None,
                },
            },
            Batched {
                origin: 7,
                envelope: Envelope {
                    payload: b"two".to_vec(),
                    ..Envelope::default()
                },
            },
        ];
        let (body, count) = dead_letter_body(&etl_envelope::encode_batch(&batch), 5, "S:9");
        assert_eq!(count, 2);
        let out = etl_envelope::decode_batch(&body).unwrap();
        assert_eq!(out[0].origin, 0);
        assert_eq!(out[1].origin, 1);
        assert_eq!(out[0].envelope.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(
            out[0].envelope.headers,
            [
                ("a".to_owned(), "1".to_owned()),
                (
                    "etl-error".to_owned(),
                    "delivery: not acknowledged after 5 deliveries".to_owned()
                ),
                ("etl-deliveries".to_owned(), "5".to_owned()),
            ]
        );
        assert_eq!(out[1].envelope.payload, b"two");
        assert_eq!(out[0].envelope.id.as_deref(), Some("S:9-0"));
        assert_eq!(out[1].envelope.id.as_deref(), Some("S:9-1"));
        // Not an envelope: one record of it.
        let (body, count) = dead_letter_body(b"raw bytes", 2, "S:3");
        assert_eq!(count, 1);
        let out = etl_envelope::decode_batch(&body).unwrap();
        assert_eq!(out[0].envelope.payload, b"raw bytes");
        assert_eq!(
            out[0].envelope.headers[1],
            ("etl-deliveries".into(), "2".into())
        );
    }

    fn bundle(files: &[(&str, Value)]) -> Bundle {
        let mut b = Bundle {
            facts: serde_json::from_value(serde_json::json!({
                "apiVersion": "etl/v1alpha1", "kind": "Bundle", "project": "p",
                "environment": "dev", "registry": "r", "lattice": "l", "applications": [],
                "pipelines": [{"name": "pipe", "nodes": [{"name": "parse", "kind": "step",
                  "deadLetter": "etl.p.pipe.dlq.parse-facts"}]}]
            }))
            .unwrap(),
            files: BTreeMap::new(),
        };
        for (path, value) in files {
            b.files
                .insert((*path).to_owned(), serde_json::to_vec(value).unwrap());
        }
        b
    }

    fn file(pipeline: &str, stream: Value, consumers: Value) -> Value {
        serde_json::json!({"apiVersion": "etl/v1alpha1", "kind": "JetStream",
            "pipeline": pipeline, "streams": [stream], "consumers": consumers})
    }

    fn stream_json() -> Value {
        serde_json::json!({"name": "ETL_DATA_p_pipe", "subjects": ["etl.p.pipe.out.parse"],
            "retention": "interest", "storage": "file", "discard": "new",
            "max_age": 86_400_000_000_000_u64, "max_bytes": -1, "max_msgs": -1,
            "duplicate_window": 120_000_000_000_u64, "num_replicas": 1})
    }

    fn consumer_json(name: &str) -> Value {
        serde_json::json!({"stream": "ETL_DATA_p_pipe", "config": {
            "durable_name": name, "deliver_subject": format!("etl.p.pipe.deliver.{name}"),
            "deliver_group": format!("etl.p.pipe.{name}"),
            "filter_subjects": ["etl.p.pipe.out.parse"], "ack_policy": "explicit",
            "ack_wait": 30_000_000_000_u64, "max_deliver": 5, "max_ack_pending": 1000,
            "deliver_policy": "all", "replay_policy": "instant"}})
    }

    #[test]
    fn a_file_reads_into_the_servers_configs() {
        let b = bundle(&[
            (
                "jetstream/pipe.json",
                file(
                    "pipe",
                    stream_json(),
                    serde_json::json!([consumer_json("parse")]),
                ),
            ),
            ("wadm/pipe.yaml", Value::Null),
        ]);
        let plan = Plan::read(&b);
        assert!(plan.unreadable.is_empty(), "{:?}", plan.unreadable);
        let s = &plan.streams[0];
        assert_eq!(s.config.retention, stream::RetentionPolicy::Interest);
        assert_eq!(s.config.max_age, Duration::from_secs(86_400));
        assert_eq!(s.config.duplicate_window, Duration::from_secs(120));
        assert_eq!(s.config.max_messages, -1);
        let c = &plan.consumers[0];
        assert_eq!(c.config.ack_wait, Duration::from_secs(30));
        assert_eq!(c.config.filter_subjects, ["etl.p.pipe.out.parse"]);
        assert_eq!(c.config.deliver_group.as_deref(), Some("etl.p.pipe.parse"));
        assert_eq!(c.config.deliver_policy, consumer::DeliverPolicy::All);
        // Every field the file sets is compared, none of the others.
        assert_eq!(
            c.owned.keys().collect::<BTreeSet<_>>(),
            consumer_json("parse")["config"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<BTreeSet<_>>()
        );
        let routes = plan.routes(&b.facts);
        assert_eq!(
            routes[&("ETL_DATA_p_pipe".to_owned(), "parse".to_owned())],
            Route {
                pipeline: "pipe".into(),
                unit: "parse".into(),
                dead_letter: "etl.p.pipe.dlq.parse-facts".into()
            }
        );
    }

    #[test]
    fn files_that_cannot_be_applied_as_written_are_refused() {
        let mut unknown = stream_json();
        unknown["allow_everything"] = Value::Bool(true);
        let mut foreign = stream_json();
        foreign["name"] = "OTHER".into();
        let b = bundle(&[
            (
                "jetstream/a.json",
                file("a", unknown, serde_json::json!([])),
            ),
            (
                "jetstream/b.json",
                file("b", foreign, serde_json::json!([])),
            ),
            (
                "jetstream/c.json",
                file("x", stream_json(), serde_json::json!([])),
            ),
            ("jetstream/d.json", serde_json::json!({"kind": "JetStream"})),
        ]);
        let plan = Plan::read(&b);
        assert!(plan.unreadable["a"].contains("`allow_everything` is not one"));
        assert!(plan.unreadable["b"].contains("stream `OTHER` is not named ETL_DATA_p_<pipeline>"));
        assert!(plan.unreadable["c"].contains("names pipeline `x`"));
        assert!(plan.unreadable["d"].starts_with("jetstream/d.json: "));
        assert!(plan.streams.is_empty());
    }

    #[test]
    fn only_the_fields_the_file_sets_are_compared() {
        let owned: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"max_deliver": 5, "ack_wait": 1})).unwrap();
        let actual: Map<String, Value> = serde_json::from_value(
            serde_json::json!({"max_deliver": 5, "ack_wait": 2, "metadata": {"_nats.ver": "2"}}),
        )
        .unwrap();
        assert_eq!(differing(&owned, &actual), ["ack_wait"]);
        let m = merged(&actual, &owned);
        assert_eq!(m["ack_wait"], 1);
        assert_eq!(m["metadata"]["_nats.ver"], "2");
        assert_eq!(
            shown(&["ack_wait".to_owned()], &actual, &owned),
            "ack_wait (2 → 1)"
        );
    }
}
