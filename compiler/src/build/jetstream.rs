//! At-least-once delivery: the NATS JetStream stream and consumers of a pipeline deployed to an
//! environment whose `delivery.guarantee` is `at-least-once` (the default).
//!
//! Each pipeline gets one stream, [`stream_name`], capturing its steps' output subjects and a
//! `nats` source's subject (never report, dead-letter or replay subjects); retention `interest`,
//! so a message fanned out to several units stays until each acknowledged it. Each unit fed by
//! subjects of a stream gets one durable push consumer on it, delivering to the unit's
//! [`deliver_subject`] with the unit's queue group, which the unit subscribes to instead of the
//! subjects themselves. A `pipeline` source reading another pipeline's step reads it from that
//! pipeline's stream, through a consumer named `<pipeline>__<unit>`; a `pipeline` source reading
//! a `nats` sink, and `kafka` and `http` sources, stay as they are (no stream captures them).
//! The units' side of it (their subscriptions and `etl.in.*` keys) is wired by
//! [`crate::build::deployment`] ([`Deployment::captured_inputs`]); this module writes the
//! stream and consumers.
//!
//! [`document`] is what `etl compile` writes to `dist/<env>/jetstream/<pipeline>.json` and into
//! the environment's bundle: the stream and consumer configurations with the NATS server API's
//! field names and units (durations in nanoseconds), so a controller deserializes them as they
//! are (`async_nats::jetstream::stream::Config`, `consumer::push::Config`).

use serde::{Deserialize, Serialize};

pub use crate::build::deployment::{
    BACKOFF_KEY, CONFIRM_JETSTREAM, CONFIRM_KEY, IN_DEAD_LETTER_KEY, MAX_DELIVER_KEY, queue_group,
    stream_name,
};
use crate::build::deployment::{Deployment, UnitKind};
use crate::spec::delivery::DeliverySettings;
use crate::spec::subjects::{deliver_subject, step_subject};

/// `apiVersion` of a [`JetStream`] document.
pub const API_VERSION: &str = "etl/v1alpha1";
/// `kind` of a [`JetStream`] document.
pub const KIND: &str = "JetStream";

/// The JetStream definitions of one pipeline in one environment: its stream, and the consumers
/// of its units (on its stream, or on an upstream pipeline's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JetStream {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// The pipeline.
    pub pipeline: String,
    /// The pipeline's stream (one).
    pub streams: Vec<StreamConfig>,
    /// One consumer per unit and stream it reads, units in order.
    pub consumers: Vec<Consumer>,
}

/// A stream, as the NATS server API's `StreamConfig` names its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConfig {
    /// [`stream_name`].
    pub name: String,
    /// The subjects captured.
    pub subjects: Vec<String>,
    /// Always `interest`: kept until every consumer with interest acknowledged it.
    pub retention: String,
    /// Always `file`.
    pub storage: String,
    /// Always `new`: a full stream refuses new messages (the publisher sees it) rather than
    /// dropping old ones unseen.
    pub discard: String,
    /// Oldest message's age, nanoseconds (0: none).
    pub max_age: i64,
    /// Bytes (-1: none).
    pub max_bytes: i64,
    /// Messages: always -1 (none).
    pub max_msgs: i64,
    /// `Nats-Msg-Id` de-duplication window, nanoseconds.
    pub duplicate_window: i64,
    /// Always 1.
    pub num_replicas: u32,
}

/// A consumer and the stream it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    /// The stream's name.
    pub stream: String,
    /// Its configuration.
    pub config: ConsumerConfig,
}

/// A durable push consumer, as the NATS server API's `ConsumerConfig` names its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerConfig {
    /// The unit's name on its own pipeline's stream, `<pipeline>__<unit>` on another's.
    pub durable_name: String,
    /// The unit's [`deliver_subject`].
    pub deliver_subject: String,
    /// The unit's queue group, `etl.<project>.<pipeline>.<unit>`.
    pub deliver_group: String,
    /// The unit's input subjects in the stream.
    pub filter_subjects: Vec<String>,
    /// Always `explicit`.
    pub ack_policy: String,
    /// Nanoseconds unacknowledged before a redelivery.
    pub ack_wait: i64,
    /// Deliveries of one message.
    pub max_deliver: i64,
    /// Unacknowledged messages at once.
    pub max_ack_pending: i64,
    /// Always `all`.
    pub deliver_policy: String,
    /// Always `instant`.
    pub replay_policy: String,
}

/// The JetStream definitions of `deployment` with `settings`; `None` when the environment is
/// at most once.
pub fn document(deployment: &Deployment, settings: &DeliverySettings) -> Option<JetStream> {
    if !settings.at_least_once() {
        return None;
    }
    let project = deployment.project.as_str();
    let pipeline = deployment.pipeline.as_str();
    let own = stream_name(project, pipeline);
    let source = &deployment.source;
    let mut subjects = Vec::new();
    if source.connector.reads_nats() {
        subjects.extend(source.subject.clone());
    }
    for unit in deployment.units.iter().filter(|u| u.kind == UnitKind::Step) {
        let subject = step_subject(project, pipeline, &unit.name);
        if !subjects.contains(&subject) {
            subjects.push(subject);
        }
    }
    let stream = StreamConfig {
        name: own.clone(),
        subjects,
        retention: "interest".to_owned(),
        storage: "file".to_owned(),
        discard: "new".to_owned(),
        max_age: settings.max_age,
        max_bytes: settings.max_bytes,
        max_msgs: -1,
        duplicate_window: settings.duplicate_window,
        num_replicas: 1,
    };
    let mut consumers = Vec::new();
    for unit in &deployment.units {
        let captured = deployment.captured_inputs(unit);
        let mut streams: Vec<&str> = Vec::new();
        for (stream, _) in &captured {
            if !streams.contains(&stream.as_str()) {
                streams.push(stream);
            }
        }
        for stream in streams {
            let durable_name = if stream == own {
                unit.name.clone()
            } else {
                format!("{pipeline}__{}", unit.name)
            };
            consumers.push(Consumer {
                stream: stream.to_owned(),
                config: ConsumerConfig {
                    durable_name,
                    deliver_subject: deliver_subject(project, pipeline, &unit.name),
                    deliver_group: queue_group(project, pipeline, &unit.name),
                    filter_subjects: captured
                        .iter()
                        .filter(|(s, _)| s == stream)
                        .map(|(_, subject)| subject.clone())
                        .collect(),
                    ack_policy: "explicit".to_owned(),
                    ack_wait: settings.ack_wait,
                    max_deliver: i64::from(settings.max_deliver),
                    max_ack_pending: i64::from(settings.max_ack_pending),
                    deliver_policy: "all".to_owned(),
                    replay_policy: "instant".to_owned(),
                },
            });
        }
    }
    Some(JetStream {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        pipeline: pipeline.to_owned(),
        streams: vec![stream],
        consumers,
    })
}

impl JetStream {
    /// The document as `dist/<env>/jetstream/<pipeline>.json` and the bundle hold it: canonical
    /// JSON.
    pub fn to_json(&self) -> Vec<u8> {
        crate::util::json::pretty(self).into_bytes()
    }

    /// Its path under an environment's directory of `dist/` and in the environment's bundle.
    pub fn path(pipeline: &str) -> String {
        crate::oci::bundle::jetstream_path(pipeline)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::build::deployment::{DEAD_LETTER_KEY, UnitDeployment, deploy};
    use crate::spec::load::Repo;
    use crate::spec::model::{Delivery, Guarantee, Scalar, Setting, SourceConnector};

    fn repo(dir: &str) -> Repo {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
        let validation = crate::spec::validate(&root).unwrap();
        assert!(!validation.has_errors(), "{:?}", validation.diagnostics);
        validation.repo
    }

    /// `repo` with the project's `delivery: {guarantee}`.
    fn with_guarantee(mut repo: Repo, guarantee: Guarantee) -> Repo {
        let spec = &mut repo.project.as_mut().unwrap().spec.spec;
        spec.delivery = Some(Delivery {
            guarantee: Some(guarantee),
            ..Delivery::default()
        });
        repo
    }

    fn settings(repo: &Repo, env: &str) -> DeliverySettings {
        crate::spec::environments::Environments::of(repo)
            .unwrap()
            .get(env)
            .unwrap()
            .delivery
            .clone()
    }

    fn unit<'a>(d: &'a Deployment, name: &str) -> &'a UnitDeployment {
        d.units.iter().find(|u| u.name == name).unwrap()
    }

    fn delivery_keys(u: &UnitDeployment) -> Vec<(&str, &str)> {
        u.config
            .iter()
            .filter(|(k, _)| {
                [
                    MAX_DELIVER_KEY,
                    BACKOFF_KEY,
                    IN_DEAD_LETTER_KEY,
                    CONFIRM_KEY,
                ]
                .contains(&k.as_str())
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    const S: &str = "etl.iot-sensors.sensor-ingest";

    #[test]
    fn the_example_fans_out_through_one_stream() {
        let repo = repo("examples/iot-sensors");
        let d = deploy(&repo, "dev", "sensor-ingest").unwrap();
        // `parse` is fed by the HTTP source: no consumer, its replay subscription only; its
        // outputs go to the stream, each publish confirmed.
        let parse = unit(&d, "parse");
        assert!(parse.http && !parse.jetstream_fed());
        assert_eq!(parse.subscriptions, [format!("{S}.replay.parse")]);
        assert_eq!(delivery_keys(parse), [(CONFIRM_KEY, "jetstream")]);
        // `enrich` and the sink `archive` both read `parse`, each through its own consumer;
        // their inputs (what reports and the graph name) stay the subject they read.
        for name in ["enrich", "archive"] {
            let u = unit(&d, name);
            assert!(u.jetstream_fed());
            assert_eq!(
                u.inputs,
                [(format!("{S}.out.parse"), "parse".to_owned())],
                "{name}"
            );
            let dlq = format!("{S}.dlq.{name}");
            let mut keys = vec![
                (IN_DEAD_LETTER_KEY, dlq.as_str()),
                (MAX_DELIVER_KEY, "5"),
                (BACKOFF_KEY, "1000,5000,30000"),
            ];
            if u.kind == UnitKind::Step {
                keys.push((CONFIRM_KEY, "jetstream"));
            }
            keys.sort();
            assert_eq!(delivery_keys(u), keys, "{name}");
            assert_eq!(u.dead_letter.as_deref(), Some(dlq.as_str()));
        }
        let enrich = unit(&d, "enrich");
        assert_eq!(
            enrich.subscriptions,
            [format!("{S}.deliver.enrich"), format!("{S}.replay.enrich")]
        );
        assert_eq!(enrich.config[DEAD_LETTER_KEY], format!("{S}.dlq.enrich"));
        // The HTTP sink gives a request up at half its ack wait (30 s), at most 10 s.
        assert_eq!(
            unit(&d, "alerts").config[crate::build::deployment::REQUEST_TIMEOUT_KEY],
            "10000"
        );
        let archive = unit(&d, "archive");
        assert_eq!(archive.subscriptions, [format!("{S}.deliver.archive")]);
        // A sink's outputs leave the platform: not confirmed by JetStream.
        assert!(!archive.config.contains_key(CONFIRM_KEY));
        assert!(!archive.config.contains_key(DEAD_LETTER_KEY));

        let doc = document(&d, &settings(&repo, "dev")).unwrap();
        let [stream] = doc.streams.as_slice() else {
            panic!("one stream: {doc:?}");
        };
        assert_eq!(stream.name, "ETL_DATA_iot-sensors_sensor-ingest");
        assert_eq!(
            stream.subjects,
            [
                format!("{S}.out.parse"),
                format!("{S}.out.enrich"),
                format!("{S}.out.threshold-alert")
            ]
        );
        let consumers: Vec<(&str, &str, Vec<&str>)> = doc
            .consumers
            .iter()
            .map(|c| {
                assert_eq!(c.stream, stream.name);
                (
                    c.config.durable_name.as_str(),
                    c.config.deliver_subject.as_str(),
                    c.config
                        .filter_subjects
                        .iter()
                        .map(String::as_str)
                        .collect(),
                )
            })
            .collect();
        let (p, e, t) = (
            format!("{S}.out.parse"),
            format!("{S}.out.enrich"),
            format!("{S}.out.threshold-alert"),
        );
        assert_eq!(
            consumers,
            [
                ("enrich", &*format!("{S}.deliver.enrich"), vec![&*p]),
                (
                    "threshold-alert",
                    &*format!("{S}.deliver.threshold-alert"),
                    vec![&*e]
                ),
                ("alerts", &*format!("{S}.deliver.alerts"), vec![&*t]),
                ("archive", &*format!("{S}.deliver.archive"), vec![&*p]),
            ]
        );
        // The group is the one the manifests give the unit's subscription.
        assert_eq!(doc.consumers[0].config.deliver_group, format!("{S}.enrich"));
    }

    #[test]
    fn the_document_has_the_nats_api_names_and_units() {
        let repo = repo("examples/iot-sensors");
        let d = deploy(&repo, "dev", "sensor-ingest").unwrap();
        let doc = document(&d, &settings(&repo, "dev")).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&doc.to_json()).unwrap();
        assert_eq!(
            json["streams"][0],
            serde_json::json!({
                "name": "ETL_DATA_iot-sensors_sensor-ingest",
                "subjects": [
                    format!("{S}.out.parse"),
                    format!("{S}.out.enrich"),
                    format!("{S}.out.threshold-alert")
                ],
                "retention": "interest",
                "storage": "file",
                "discard": "new",
                "max_age": 86_400_000_000_000_i64,
                "max_bytes": -1,
                "max_msgs": -1,
                "duplicate_window": 120_000_000_000_i64,
                "num_replicas": 1
            })
        );
        assert_eq!(
            json["consumers"][3],
            serde_json::json!({
                "stream": "ETL_DATA_iot-sensors_sensor-ingest",
                "config": {
                    "durable_name": "archive",
                    "deliver_subject": format!("{S}.deliver.archive"),
                    "deliver_group": format!("{S}.archive"),
                    "filter_subjects": [format!("{S}.out.parse")],
                    "ack_policy": "explicit",
                    "ack_wait": 30_000_000_000_i64,
                    "max_deliver": 5,
                    "max_ack_pending": 1000,
                    "deliver_policy": "all",
                    "replay_policy": "instant"
                }
            })
        );
        assert_eq!(
            (&json["apiVersion"], &json["kind"], &json["pipeline"]),
            (
                &serde_json::json!("etl/v1alpha1"),
                &serde_json::json!("JetStream"),
                &serde_json::json!("sensor-ingest")
            )
        );
        // Canonical: keys sorted, so the bytes are the same for the same document.
        let text = String::from_utf8(doc.to_json()).unwrap();
        assert!(text.starts_with("{\n  \"apiVersion\": \"etl/v1alpha1\",\n  \"consumers\": ["));
    }

    /// The controller's NATS client reads the document's stream and consumers as they are, and
    /// writes back every field the document sets, with the same value: nothing dropped.
    #[test]
    fn async_nats_reads_the_document_as_written() {
        use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, ReplayPolicy, push};
        use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
        use std::time::Duration;

        let repo = repo("examples/iot-sensors");
        let d = deploy(&repo, "dev", "sensor-ingest").unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&document(&d, &settings(&repo, "dev")).unwrap().to_json())
                .unwrap();
        let written = json["streams"][0].clone();
        let stream: stream::Config = serde_json::from_value(written.clone()).unwrap();
        assert_eq!(stream.name, "ETL_DATA_iot-sensors_sensor-ingest");
        assert_eq!(stream.subjects.len(), 3);
        assert_eq!(stream.retention, RetentionPolicy::Interest);
        assert_eq!(stream.storage, StorageType::File);
        assert_eq!(stream.discard, DiscardPolicy::New);
        assert_eq!(stream.max_age, Duration::from_secs(24 * 3600));
        assert_eq!(stream.duplicate_window, Duration::from_secs(120));
        assert_eq!((stream.max_bytes, stream.max_messages), (-1, -1));
        assert_eq!(stream.num_replicas, 1);
        let back = serde_json::to_value(&stream).unwrap();
        for (key, value) in written.as_object().unwrap() {
            assert_eq!(&back[key], value, "stream {key}");
        }
        for consumer in json["consumers"].as_array().unwrap() {
            let written = consumer["config"].clone();
            let config: push::Config = serde_json::from_value(written.clone()).unwrap();
            let unit = config.durable_name.clone().unwrap();
            assert_eq!(
                config.deliver_subject,
                format!("{S}.deliver.{unit}"),
                "{unit}"
            );
            assert_eq!(config.deliver_group, Some(format!("{S}.{unit}")));
            assert_eq!(config.filter_subjects.len(), 1);
            assert_eq!(config.ack_policy, AckPolicy::Explicit);
            assert_eq!(config.ack_wait, Duration::from_secs(30));
            assert_eq!((config.max_deliver, config.max_ack_pending), (5, 1000));
            assert_eq!(config.deliver_policy, DeliverPolicy::All);
            assert_eq!(config.replay_policy, ReplayPolicy::Instant);
            let back = serde_json::to_value(&config).unwrap();
            for (key, value) in written.as_object().unwrap() {
                assert_eq!(&back[key], value, "{unit} {key}");
            }
        }
    }

    #[test]
    fn a_sub_pipeline_reads_a_step_from_the_upstream_stream() {
        let repo = repo("tests/fixtures/sub-pipelines");
        let audit = deploy(&repo, "dev", "audit").unwrap();
        let doc = document(&audit, &settings(&repo, "dev")).unwrap();
        assert_eq!(doc.streams[0].name, "ETL_DATA_relay_audit");
        // A `pipeline` source's subject is the upstream's: captured by its stream, not this one.
        assert_eq!(doc.streams[0].subjects, ["etl.relay.audit.out.audit"]);
        let consumers: Vec<(&str, &str, &str, Vec<&str>)> = doc
            .consumers
            .iter()
            .map(|c| {
                (
                    c.stream.as_str(),
                    c.config.durable_name.as_str(),
                    c.config.deliver_subject.as_str(),
                    c.config
                        .filter_subjects
                        .iter()
                        .map(String::as_str)
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            consumers,
            [
                (
                    "ETL_DATA_relay_orders",
                    "audit__audit",
                    "etl.relay.audit.deliver.audit",
                    vec!["etl.relay.orders.out.parse"]
                ),
                (
                    "ETL_DATA_relay_audit",
                    "trail",
                    "etl.relay.audit.deliver.trail",
                    vec!["etl.relay.audit.out.audit"]
                ),
            ]
        );
        // The upstream's stream captures the step read.
        let orders = deploy(&repo, "dev", "orders").unwrap();
        let upstream = document(&orders, &settings(&repo, "dev")).unwrap();
        assert_eq!(upstream.streams[0].name, "ETL_DATA_relay_orders");
        assert_eq!(upstream.streams[0].subjects, ["etl.relay.orders.out.parse"]);

        // A `pipeline` source reading a `nats` sink reads core NATS, as before: no stream
        // captures a sink's subject.
        let replay = deploy(&repo, "dev", "replay").unwrap();
        let step = unit(&replay, "replay");
        assert!(!step.jetstream_fed());
        assert_eq!(
            step.subscriptions,
            ["relay.dev.audit.trail", "etl.relay.replay.replay.replay"]
        );
        assert_eq!(delivery_keys(step), [(CONFIRM_KEY, "jetstream")]);
        let doc = document(&replay, &settings(&repo, "dev")).unwrap();
        assert_eq!(doc.streams[0].subjects, ["etl.relay.replay.out.replay"]);
        assert_eq!(doc.consumers.len(), 1);
        assert_eq!(doc.consumers[0].config.durable_name, "out");
    }

    #[test]
    fn a_nats_source_is_captured_and_a_fan_in_is_one_consumer() {
        let repo = repo("tests/fixtures/chaos");
        let d = deploy(&repo, "dev", "diamond").unwrap();
        let feed = d.source.subject.clone().unwrap();
        let doc = document(&d, &settings(&repo, "dev")).unwrap();
        assert_eq!(
            doc.streams[0].subjects,
            [
                feed.clone(),
                "etl.chaos.diamond.out.left".to_owned(),
                "etl.chaos.diamond.out.right".to_owned(),
                "etl.chaos.diamond.out.join".to_owned()
            ]
        );
        let join: Vec<&Consumer> = doc
            .consumers
            .iter()
            .filter(|c| c.config.durable_name == "join")
            .collect();
        assert_eq!(join.len(), 1);
        assert_eq!(
            join[0].config.filter_subjects,
            ["etl.chaos.diamond.out.left", "etl.chaos.diamond.out.right"]
        );
        assert_eq!(
            unit(&d, "join").subscriptions,
            [
                "etl.chaos.diamond.deliver.join",
                "etl.chaos.diamond.replay.join"
            ]
        );
        let left = doc
            .consumers
            .iter()
            .find(|c| c.config.durable_name == "left")
            .unwrap();
        assert_eq!(left.config.filter_subjects, [feed]);
    }

    /// The sub-pipelines fixture, its `orders` reading `topic` through a `connector` source.
    fn orders_reading(connector: SourceConnector, topic: &str) -> Repo {
        let mut repo = repo("tests/fixtures/sub-pipelines");
        let orders = repo
            .pipelines
            .iter_mut()
            .find(|p| *p.spec.metadata.name == *"orders")
            .unwrap();
        let source = &mut orders.spec.spec.source;
        source.connector = connector;
        source.with.clear();
        source.with.insert(
            "topic".to_owned(),
            Setting::Value(Scalar::String(topic.to_owned())),
        );
        repo
    }

    #[test]
    fn a_kafka_source_stays_as_it_is() {
        let repo = orders_reading(SourceConnector::Kafka, "orders-in");
        let d = deploy(&repo, "dev", "orders").unwrap();
        let parse = unit(&d, "parse");
        assert!(!parse.jetstream_fed());
        assert_eq!(
            parse.subscriptions,
            ["orders-in", "etl.relay.orders.replay.parse"]
        );
        assert_eq!(delivery_keys(parse), [(CONFIRM_KEY, "jetstream")]);
        let doc = document(&d, &settings(&repo, "dev")).unwrap();
        assert_eq!(doc.streams[0].subjects, ["etl.relay.orders.out.parse"]);
        let durable: Vec<&str> = doc
            .consumers
            .iter()
            .map(|c| c.config.durable_name.as_str())
            .collect();
        assert_eq!(durable, ["archive"]);
    }

    #[test]
    fn an_mqtt_source_is_the_subject_its_topic_maps_to_captured_by_the_stream() {
        let repo = orders_reading(SourceConnector::Mqtt, "shop/+/orders/#");
        let d = deploy(&repo, "dev", "orders").unwrap();
        assert_eq!(d.source.subject.as_deref(), Some("shop.*.orders.>"));
        let parse = unit(&d, "parse");
        // What devices publish is bytes, not envelopes.
        assert_eq!(
            parse.config[crate::build::deployment::RAW_SUBJECTS_KEY],
            "shop.*.orders.>"
        );
        assert_eq!(
            parse.inputs,
            [("shop.*.orders.>".to_owned(), "ingest".to_owned())]
        );
        // At least once, as a `nats` source: the stream captures the subject and `parse` reads
        // it through its consumer.
        assert!(parse.jetstream_fed());
        assert_eq!(
            parse.subscriptions,
            [
                "etl.relay.orders.deliver.parse",
                "etl.relay.orders.replay.parse"
            ]
        );
        let doc = document(&d, &settings(&repo, "dev")).unwrap();
        assert_eq!(
            doc.streams[0].subjects,
            ["shop.*.orders.>", "etl.relay.orders.out.parse"]
        );
        let parse = doc
            .consumers
            .iter()
            .find(|c| c.config.durable_name == "parse")
            .unwrap();
        assert_eq!(parse.config.filter_subjects, ["shop.*.orders.>"]);
    }

    /// What at-most-once deploys: each unit subscribes to the subjects it reads (once each)
    /// and a step to its replay subject; no delivery keys, no sink dead letters, no document.
    #[test]
    fn at_most_once_deploys_as_before() {
        for (dir, pipelines) in [
            ("examples/iot-sensors", &["sensor-ingest"][..]),
            (
                "tests/fixtures/sub-pipelines",
                &["orders", "audit", "replay"][..],
            ),
            ("tests/fixtures/chaos", &["diamond", "chaos"][..]),
        ] {
            let least = repo(dir);
            let most = with_guarantee(least.clone(), Guarantee::AtMostOnce);
            let env = crate::build::deployment::default_environment(&most).unwrap();
            assert!(!settings(&most, &env).at_least_once());
            for pipeline in pipelines {
                let d = deploy(&most, &env, pipeline).unwrap();
                assert_eq!(document(&d, &settings(&most, &env)), None);
                for u in &d.units {
                    let mut expected: Vec<String> = Vec::new();
                    for (subject, _) in &u.inputs {
                        if subject != crate::build::deployment::HTTP_INPUT
                            && !expected.contains(subject)
                        {
                            expected.push(subject.clone());
                        }
                    }
                    expected.extend(u.replay.clone());
                    assert_eq!(u.subscriptions, expected, "{pipeline}/{}", u.name);
                    assert!(delivery_keys(u).is_empty(), "{pipeline}/{}", u.name);
                    assert!(
                        !u.config
                            .contains_key(crate::build::deployment::REQUEST_TIMEOUT_KEY)
                    );
                    assert!(!u.jetstream_fed());
                    if u.kind != UnitKind::Step {
                        assert_eq!(u.dead_letter, None);
                    }
                }
                // At least once differs exactly by what `apply` changes.
                let mut undone = deploy(&least, &env, pipeline).unwrap();
                for (a, b) in undone.units.iter_mut().zip(&d.units) {
                    for key in [
                        MAX_DELIVER_KEY,
                        BACKOFF_KEY,
                        IN_DEAD_LETTER_KEY,
                        CONFIRM_KEY,
                        crate::build::deployment::REQUEST_TIMEOUT_KEY,
                    ] {
                        a.config.remove(key);
                    }
                    a.subscriptions.clone_from(&b.subscriptions);
                    a.dead_letter.clone_from(&b.dead_letter);
                }
                assert_eq!(undone, d, "{pipeline}");
            }
        }
    }

    #[test]
    fn an_environment_overrides_the_project_field_by_field() {
        let mut repo = repo("tests/fixtures/sub-pipelines");
        let spec = &mut repo.project.as_mut().unwrap().spec.spec;
        let duration = |t: &str| crate::spec::model::DurationText::try_from(t.to_owned()).unwrap();
        spec.delivery = Some(Delivery {
            max_deliver: std::num::NonZeroU32::new(3),
            backoff: Some(vec![duration("250ms"), duration("2s")]),
            max_age: Some(duration("1h")),
            ..Delivery::default()
        });
        let envs = &mut spec.environments;
        envs.get_index_mut(0).unwrap().1.delivery = Some(Delivery {
            ack_wait: Some(duration("5s")),
            max_bytes: Some(1 << 30),
            ..Delivery::default()
        });
        envs.get_index_mut(1).unwrap().1.delivery = Some(Delivery {
            guarantee: Some(Guarantee::AtMostOnce),
            ..Delivery::default()
        });
        let dev = deploy(&repo, "dev", "orders").unwrap();
        let archive = unit(&dev, "archive");
        assert_eq!(archive.config[MAX_DELIVER_KEY], "3");
        assert_eq!(archive.config[BACKOFF_KEY], "250,2000");
        let doc = document(&dev, &settings(&repo, "dev")).unwrap();
        let stream = &doc.streams[0];
        assert_eq!(
            (stream.max_age, stream.max_bytes),
            (3_600_000_000_000, 1 << 30)
        );
        let consumer = &doc.consumers[0].config;
        assert_eq!(
            (consumer.ack_wait, consumer.max_deliver),
            (5_000_000_000, 3)
        );
        // staging is at most once: nothing of the above.
        let staging = deploy(&repo, "staging", "orders").unwrap();
        assert!(staging.units.iter().all(|u| delivery_keys(u).is_empty()));
        assert_eq!(document(&staging, &settings(&repo, "staging")), None);
    }
}
