//! At-least-once delivery against a real nats-server with JetStream: a bundle's `jetstream/`
//! files applied (idempotently, updated, pruned, refused with the stream named, an unrelated
//! stream untouched), and a message a consumer gave up on moved to the unit's dead-letter
//! subject by the max-deliveries advisory.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use etl::oci::bundle::Bundle;
use etl_controller::delivery::{Change, Delivery, HOLD_SUFFIX};
use etl_envelope::{Batched, Envelope};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::processes::Nats;

fn facts() -> Value {
    json!({
        "apiVersion": "etl/v1alpha1", "kind": "Bundle", "project": "p", "environment": "dev",
        "registry": "r", "lattice": "l", "applications": [],
        "pipelines": [{"name": "pipe", "nodes": [
            {"name": "parse", "kind": "step", "deadLetter": "etl.p.pipe.dlq.parse"},
            {"name": "store", "kind": "sink", "deadLetter": "etl.p.pipe.dlq.store"}]}]
    })
}

fn stream_config(pipeline: &str, subjects: &[&str]) -> Value {
    json!({"name": format!("ETL_DATA_p_{pipeline}"), "subjects": subjects,
        "retention": "interest", "storage": "file", "discard": "new",
        "max_age": 86_400_000_000_000_u64, "max_bytes": -1, "max_msgs": -1,
        "duplicate_window": 120_000_000_000_u64, "num_replicas": 1})
}

fn consumer_config(pipeline: &str, unit: &str, filters: &[&str]) -> Value {
    json!({"stream": format!("ETL_DATA_p_{pipeline}"), "config": {
        "durable_name": unit, "deliver_subject": format!("etl.p.{pipeline}.deliver.{unit}"),
        "deliver_group": format!("etl.p.{pipeline}.{unit}"), "filter_subjects": filters,
        "ack_policy": "explicit", "ack_wait": 30_000_000_000_u64, "max_deliver": 5,
        "max_ack_pending": 1000, "deliver_policy": "all", "replay_policy": "instant"}})
}

fn file(pipeline: &str, stream: Value, consumers: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "etl/v1alpha1", "kind": "JetStream",
        "pipeline": pipeline, "streams": [stream], "consumers": consumers}))
    .unwrap()
}

fn bundle(files: Vec<(&str, Vec<u8>)>) -> Bundle {
    Bundle {
        facts: serde_json::from_value(facts()).unwrap(),
        files: files
            .into_iter()
            .map(|(p, b)| (format!("jetstream/{p}.json"), b))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// Pipeline `pipe` (steps' outputs `parse`, `enrich`; units `enrich` and `store`) and `other`.
fn two_pipelines(pipe_stream: Value, store: bool) -> Bundle {
    let mut consumers = vec![consumer_config("pipe", "enrich", &["etl.p.pipe.out.parse"])];
    if store {
        consumers.push(consumer_config(
            "pipe",
            "store",
            &["etl.p.pipe.out.parse", "etl.p.pipe.out.enrich"],
        ));
    }
    bundle(vec![
        ("pipe", file("pipe", pipe_stream, consumers)),
        (
            "other",
            file(
                "other",
                stream_config("other", &["etl.p.other.in"]),
                vec![consumer_config("other", "clean", &["etl.p.other.in"])],
            ),
        ),
    ])
}

fn pipe_stream() -> Value {
    stream_config("pipe", &["etl.p.pipe.out.parse", "etl.p.pipe.out.enrich"])
}

async fn names(js: &jetstream::Context) -> Vec<String> {
    let mut names: Vec<String> = js.stream_names().try_collect().await.unwrap();
    names.sort();
    names
}

async fn consumers(js: &jetstream::Context, stream: &str) -> Vec<String> {
    let stream = js.get_stream(stream).await.unwrap();
    let mut names: Vec<String> = stream.consumer_names().try_collect().await.unwrap();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundles_streams_and_consumers_are_applied_updated_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start_jetstream(dir.path());
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    // Not the controller's: another stream, and another project's delivery stream.
    for (name, subject) in [
        ("UNRELATED", "x.>"),
        ("ETL_DATA_q_pipe", "etl.q.pipe.out.a"),
    ] {
        js.create_stream(stream::Config {
            name: name.to_owned(),
            subjects: vec![subject.to_owned()],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let delivery = Delivery::new(client.clone());

    let first = delivery.apply(&two_pipelines(pipe_stream(), true)).await;
    assert_eq!(first.failures, BTreeMap::new());
    assert_eq!(
        first.changes,
        [
            Change::StreamCreated("ETL_DATA_p_other".into()),
            Change::StreamCreated("ETL_DATA_p_pipe".into()),
            Change::StreamCreated("ETL_ADVISORIES_p".into()),
            Change::ConsumerCreated("ETL_ADVISORIES_p".into(), "etl-controller".into()),
            Change::ConsumerCreated("ETL_DATA_p_other".into(), "clean".into()),
            Change::ConsumerCreated("ETL_DATA_p_pipe".into(), "enrich".into()),
            Change::ConsumerCreated("ETL_DATA_p_pipe".into(), "store".into()),
        ]
    );
    // The advisories of exactly the project's delivery streams, each named in full.
    let mut advisories = js.get_stream("ETL_ADVISORIES_p").await.unwrap();
    let config = advisories.info().await.unwrap().config.clone();
    assert_eq!(
        config.subjects,
        [
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ETL_DATA_p_other.*",
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ETL_DATA_p_pipe.*",
        ]
    );
    assert_eq!(config.retention, stream::RetentionPolicy::Limits);
    assert_eq!(config.max_age, Duration::from_secs(7 * 24 * 3600));
    let mut pipe = js.get_stream("ETL_DATA_p_pipe").await.unwrap();
    let config = pipe.info().await.unwrap().config.clone();
    assert_eq!(config.retention, stream::RetentionPolicy::Interest);
    assert_eq!(config.discard, stream::DiscardPolicy::New);
    assert_eq!(config.max_age, Duration::from_secs(86_400));
    let store = pipe.consumer_info("store").await.unwrap();
    assert_eq!(
        store.config.deliver_group.as_deref(),
        Some("etl.p.pipe.store")
    );
    assert_eq!(store.config.filter_subjects.len(), 2);
    assert_eq!(store.config.ack_wait, Duration::from_secs(30));

    // The same bundle again: nothing to change.
    let again = delivery.apply(&two_pipelines(pipe_stream(), true)).await;
    assert_eq!(again, Default::default());

    // A changed limit updates the stream, only that field.
    let mut longer = pipe_stream();
    longer["max_age"] = json!(172_800_000_000_000_u64);
    let updated = delivery.apply(&two_pipelines(longer.clone(), true)).await;
    assert_eq!(updated.failures, BTreeMap::new());
    assert_eq!(
        updated.changes,
        [Change::StreamUpdated(
            "ETL_DATA_p_pipe".into(),
            vec!["max_age".into()]
        )]
    );
    let config = pipe.info().await.unwrap().config.clone();
    assert_eq!(config.max_age, Duration::from_secs(172_800));
    assert_eq!(config.retention, stream::RetentionPolicy::Interest);
    assert_eq!(
        delivery.apply(&two_pipelines(longer.clone(), true)).await,
        Default::default()
    );

    // A changed consumer limit updates the consumer.
    let mut b = two_pipelines(longer.clone(), true);
    let mut f: Value = serde_json::from_slice(&b.files["jetstream/pipe.json"]).unwrap();
    f["consumers"][1]["config"]["max_deliver"] = json!(3);
    b.files.insert(
        "jetstream/pipe.json".into(),
        serde_json::to_vec(&f).unwrap(),
    );
    let updated = delivery.apply(&b).await;
    assert_eq!(
        updated.changes,
        [Change::ConsumerUpdated(
            "ETL_DATA_p_pipe".into(),
            "store".into(),
            vec!["max_deliver".into()]
        )]
    );
    assert_eq!(
        pipe.consumer_info("store")
            .await
            .unwrap()
            .config
            .max_deliver,
        3
    );

    // A changed deliver group: nats-server 2.10+ updates it in place (an older one refuses, and
    // the consumer is recreated); either way no holding consumer is left behind.
    f["consumers"][1]["config"]["deliver_group"] = json!("etl.p.pipe.store-v2");
    b.files.insert(
        "jetstream/pipe.json".into(),
        serde_json::to_vec(&f).unwrap(),
    );
    let regrouped = delivery.apply(&b).await;
    assert_eq!(regrouped.failures, BTreeMap::new());
    eprintln!("a changed deliver group: {:?}", regrouped.changes);
    assert!(matches!(
        &regrouped.changes[..],
        [Change::ConsumerUpdated(_, c, fields) | Change::ConsumerRecreated(_, c, fields)]
            if c == "store" && fields == &["deliver_group"]
    ));
    assert_eq!(
        pipe.consumer_info("store")
            .await
            .unwrap()
            .config
            .deliver_group
            .as_deref(),
        Some("etl.p.pipe.store-v2")
    );
    assert_eq!(delivery.apply(&b).await, Default::default());
    assert_eq!(consumers(&js, "ETL_DATA_p_pipe").await, ["enrich", "store"]);

    // A changed deliver policy cannot be updated by the server: the consumer is recreated.
    f["consumers"][1]["config"]["deliver_policy"] = json!("new");
    b.files.insert(
        "jetstream/pipe.json".into(),
        serde_json::to_vec(&f).unwrap(),
    );
    let recreated = delivery.apply(&b).await;
    assert_eq!(recreated.failures, BTreeMap::new());
    assert_eq!(
        recreated.changes,
        [Change::ConsumerRecreated(
            "ETL_DATA_p_pipe".into(),
            "store".into(),
            vec!["deliver_policy".into()]
        )]
    );
    assert_eq!(
        pipe.consumer_info("store")
            .await
            .unwrap()
            .config
            .deliver_policy,
        consumer::DeliverPolicy::New
    );
    assert_eq!(consumers(&js, "ETL_DATA_p_pipe").await, ["enrich", "store"]);
    assert!(
        !consumers(&js, "ETL_DATA_p_pipe")
            .await
            .iter()
            .any(|c| c.ends_with(HOLD_SUFFIX))
    );

    // A pipeline gone: its stream deleted; a unit gone: its consumer deleted. Nothing else.
    let pruned = delivery
        .apply(&bundle(vec![(
            "pipe",
            file(
                "pipe",
                longer.clone(),
                vec![consumer_config("pipe", "enrich", &["etl.p.pipe.out.parse"])],
            ),
        )]))
        .await;
    assert_eq!(pruned.failures, BTreeMap::new());
    assert_eq!(
        pruned.changes,
        [
            Change::StreamUpdated("ETL_ADVISORIES_p".into(), vec!["subjects".into()]),
            Change::StreamDeleted("ETL_DATA_p_other".into()),
            Change::ConsumerDeleted("ETL_DATA_p_pipe".into(), "store".into()),
        ]
    );
    assert_eq!(
        names(&js).await,
        [
            "ETL_ADVISORIES_p",
            "ETL_DATA_p_pipe",
            "ETL_DATA_q_pipe",
            "UNRELATED"
        ]
    );

    // An update the server refuses: an error naming the stream and the field; nothing else
    // of that pipeline is changed.
    let mut memory = longer.clone();
    memory["storage"] = json!("memory");
    let refused = delivery
        .apply(&bundle(vec![(
            "pipe",
            file(
                "pipe",
                memory,
                vec![consumer_config("pipe", "enrich", &["etl.p.pipe.out.parse"])],
            ),
        )]))
        .await;
    assert_eq!(refused.changes, []);
    let reason = &refused.failures["pipe"];
    assert!(
        reason.contains("JetStream stream `ETL_DATA_p_pipe`"),
        "{reason}"
    );
    assert!(
        reason.contains("storage (\"file\" → \"memory\")"),
        "{reason}"
    );
    assert!(reason.contains("the server refuses"), "{reason}");

    // A bundle without delivery files (at-most-once): every delivery stream of the project
    // goes, the others stay.
    let none = delivery.apply(&bundle(vec![])).await;
    assert_eq!(
        none.changes,
        [
            Change::StreamDeleted("ETL_ADVISORIES_p".into()),
            Change::StreamDeleted("ETL_DATA_p_pipe".into())
        ]
    );
    assert_eq!(names(&js).await, ["ETL_DATA_q_pipe", "UNRELATED"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_jetstream_an_at_most_once_bundle_is_no_error() {
    let nats = Nats::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let delivery = Delivery::new(client.clone());
    assert_eq!(delivery.apply(&bundle(vec![])).await, Default::default());
    // With files, each pipeline fails, named.
    let outcome = delivery
        .apply(&bundle(vec![("pipe", file("pipe", pipe_stream(), vec![]))]))
        .await;
    assert!(
        outcome.failures["pipe"].contains("JetStream stream `ETL_DATA_p_pipe`"),
        "{outcome:?}"
    );
    // The data plane's NATS gone: no request waits out its timeout.
    drop(nats);
    wait_for("the client disconnected", async || {
        client.connection_state() != async_nats::connection::State::Connected
    })
    .await;
    let started = std::time::Instant::now();
    assert_eq!(delivery.apply(&bundle(vec![])).await, Default::default());
    let outcome = delivery
        .apply(&bundle(vec![("pipe", file("pipe", pipe_stream(), vec![]))]))
        .await;
    assert!(
        outcome.failures["pipe"].contains("the data plane's NATS is not connected"),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

fn batch() -> Vec<u8> {
    etl_envelope::encode_batch(&[
        Batched {
            origin: 3,
            envelope: Envelope {
                key: Some(b"d-1".to_vec()),
                payload: br#"{"t":1}"#.to_vec(),
                headers: vec![("content-type".into(), "application/json".into())],
                traceparent: None,
                id: None,
            },
        },
        Batched {
            origin: 4,
            envelope: Envelope {
                payload: br#"{"t":2}"#.to_vec(),
                ..Envelope::default()
            },
        },
    ])
}

/// A pipeline `pipe` whose `parse` is fed by `etl.p.pipe.in`, giving up after 2 deliveries
/// half a second apart; with `store`, a second consumer of the same subject.
fn short_lived(store: bool) -> Bundle {
    let unit = |name: &str| {
        let mut c = consumer_config("pipe", name, &["etl.p.pipe.in"]);
        c["config"]["max_deliver"] = json!(2);
        c["config"]["ack_wait"] = json!(500_000_000_u64);
        c
    };
    let mut consumers = vec![unit("parse")];
    if store {
        consumers.push(unit("store"));
    }
    bundle(vec![(
        "pipe",
        file("pipe", stream_config("pipe", &["etl.p.pipe.in"]), consumers),
    )])
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A nats-server with JetStream in a tempdir, holding the dead-letter stream the telemetry
/// keeps, and a controller's `Delivery` on it; once `listen` is called, its advisories too.
struct Fixture {
    delivery: Delivery,
    js: jetstream::Context,
    client: async_nats::Client,
    advisories: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    _nats: Nats,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// The data plane, and a `Delivery` that applied `bundle` without a failure.
    async fn start(bundle: &Bundle) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let nats = Nats::start_jetstream(dir.path());
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = jetstream::new(client.clone());
        ensure_dead_letters(&js).await;
        let delivery = Delivery::new(client.clone());
        assert_eq!(delivery.apply(bundle).await.failures, BTreeMap::new());
        Fixture {
            delivery,
            js,
            client,
            advisories: None,
            _nats: nats,
            _dir: dir,
        }
    }

    /// Starts reading the max-deliveries advisories.
    fn listen(&mut self) {
        let (stop, stopped) = watch::channel(false);
        let advisories = tokio::spawn(self.delivery.clone().advisories(stopped));
        self.advisories = Some((stop, advisories));
    }

    /// Publishes `batch()` to `etl.p.pipe.in`, confirmed by the stream.
    async fn publish(&self) {
        self.js
            .publish("etl.p.pipe.in", batch().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Stops the advisories and waits until they are done.
    async fn stop(self) {
        let (stop, advisories) = self.advisories.expect("listening");
        let _ = stop.send(true);
        advisories.await.unwrap();
    }
}

/// The dead-letter stream the telemetry keeps.
async fn ensure_dead_letters(js: &jetstream::Context) {
    etl_controller::jetstream::ensure_stream(
        js,
        &etl_controller::deadletters::stream_spec("p", 100),
    )
    .await
    .unwrap();
}

/// Subscribes as `units` that receive every delivery and never acknowledge one.
async fn silent_units(client: &async_nats::Client, units: &[&str]) -> Vec<async_nats::Subscriber> {
    let mut subscribers = Vec::new();
    for unit in units {
        subscribers.push(
            client
                .queue_subscribe(
                    format!("etl.p.pipe.deliver.{unit}"),
                    format!("etl.p.pipe.{unit}"),
                )
                .await
                .unwrap(),
        );
    }
    client.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    subscribers
}

async fn messages(js: &jetstream::Context, stream: &str) -> u64 {
    js.get_stream(stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

/// The dead letters in the dead-letter stream, by subject.
async fn dead_letters(js: &jetstream::Context) -> BTreeMap<String, u64> {
    let info = js
        .get_stream("ETL_DLQ_p")
        .await
        .unwrap()
        .info_with_subjects("etl.>")
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    info.into_iter().map(|(s, n)| (s, n as u64)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_never_acknowledged_goes_to_the_units_dead_letters() {
    let mut f = Fixture::start(&short_lived(false)).await;
    f.listen();
    let mut dead = f.client.subscribe("etl.p.pipe.dlq.parse").await.unwrap();
    // The unit: receives, never acknowledges.
    let mut units = silent_units(&f.client, &["parse"]).await;
    let unit = &mut units[0];
    f.publish().await;
    for delivery in 1..=2 {
        let m = tokio::time::timeout(Duration::from_secs(5), unit.next())
            .await
            .unwrap_or_else(|_| panic!("delivery {delivery}"))
            .unwrap();
        let reply = m.reply.unwrap();
        assert!(
            reply.starts_with("$JS.ACK.ETL_DATA_p_pipe.parse."),
            "{reply}"
        );
    }
    let letter = tokio::time::timeout(Duration::from_secs(10), dead.next())
        .await
        .expect("a dead letter")
        .unwrap();
    let records = etl_envelope::decode_batch(&letter.payload).unwrap();
    assert_eq!(records.len(), 2);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.origin as usize, i);
        assert_eq!(
            r.envelope.headers[r.envelope.headers.len() - 2..],
            [
                (
                    "etl-error".to_owned(),
                    "delivery: not acknowledged after 2 deliveries".to_owned()
                ),
                ("etl-deliveries".to_owned(), "2".to_owned()),
            ]
        );
    }
    assert_eq!(records[0].envelope.key.as_deref(), Some(&b"d-1"[..]));
    assert_eq!(records[0].envelope.headers[0].0, "content-type");
    // Kept by the dead-letter stream, gone from the delivery stream.
    let mut dlq = f.js.get_stream("ETL_DLQ_p").await.unwrap();
    assert_eq!(dlq.info().await.unwrap().state.messages, 1);
    let mut pipe = f.js.get_stream("ETL_DATA_p_pipe").await.unwrap();
    wait_for("the message deleted", async || {
        pipe.info().await.unwrap().state.messages == 0
    })
    .await;
    assert_eq!(
        f.delivery.moved(),
        BTreeMap::from([(("pipe".to_owned(), "parse".to_owned()), 1)])
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_another_consumer_still_needs_stays_for_it() {
    let mut f = Fixture::start(&short_lived(true)).await;
    f.listen();
    let mut dead = f.client.subscribe("etl.p.pipe.dlq.parse").await.unwrap();
    let _parse = silent_units(&f.client, &["parse"]).await;
    f.publish().await;
    tokio::time::timeout(Duration::from_secs(10), dead.next())
        .await
        .expect("a dead letter")
        .unwrap();
    // `store` has not had it yet: the message stays for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut pipe = f.js.get_stream("ETL_DATA_p_pipe").await.unwrap();
    assert_eq!(pipe.info().await.unwrap().state.messages, 1);
    // `store` takes it and acknowledges it.
    let mut store = f
        .client
        .queue_subscribe("etl.p.pipe.deliver.store", "etl.p.pipe.store".to_owned())
        .await
        .unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), store.next())
        .await
        .expect("store's delivery")
        .unwrap();
    f.client
        .publish(m.reply.unwrap(), "+ACK".into())
        .await
        .unwrap();
    wait_for("store's acknowledgement", async || {
        pipe.consumer_info("store")
            .await
            .unwrap()
            .ack_floor
            .stream_sequence
            == 1
    })
    .await;
    // The controller cannot tell an acknowledgement from a give-up whose advisory is not
    // stored yet: the message stays (until its max_age), one dead letter, nothing lost.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(pipe.info().await.unwrap().state.messages, 1);
    assert_eq!(
        f.delivery.moved(),
        BTreeMap::from([(("pipe".to_owned(), "parse".to_owned()), 1)])
    );
    assert_eq!(f.delivery.lost(), BTreeMap::new());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_every_consumer_gave_up_on_is_deleted() {
    let mut f = Fixture::start(&short_lived(true)).await;
    f.listen();
    let mut dead = f.client.subscribe("etl.p.pipe.dlq.*").await.unwrap();
    let _units = silent_units(&f.client, &["parse", "store"]).await;
    f.publish().await;
    let mut subjects = Vec::new();
    for _ in 0..2 {
        let letter = tokio::time::timeout(Duration::from_secs(10), dead.next())
            .await
            .expect("a dead letter per unit")
            .unwrap();
        subjects.push(letter.subject.to_string());
    }
    subjects.sort();
    assert_eq!(subjects, ["etl.p.pipe.dlq.parse", "etl.p.pipe.dlq.store"]);
    let mut pipe = f.js.get_stream("ETL_DATA_p_pipe").await.unwrap();
    wait_for("the message deleted once both gave up", async || {
        pipe.info().await.unwrap().state.messages == 0
    })
    .await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_advisory_sent_while_the_controller_is_down_is_settled_once_it_runs() {
    // A controller applied the bundle, then stopped: nobody listens for advisories.
    let mut f = Fixture::start(&short_lived(false)).await;
    let _units = silent_units(&f.client, &["parse"]).await;
    f.publish().await;
    // The advisory, a core NATS message, is kept by the advisory stream.
    wait_for("the advisory stored", async || {
        messages(&f.js, "ETL_ADVISORIES_p").await == 1
    })
    .await;
    // A new controller: nothing is read before its first apply.
    f.delivery = Delivery::new(f.client.clone());
    f.listen();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(dead_letters(&f.js).await, BTreeMap::new());
    assert_eq!(messages(&f.js, "ETL_DATA_p_pipe").await, 1);
    assert_eq!(
        f.delivery.apply(&short_lived(false)).await,
        Default::default()
    );
    wait_for("the message dead-lettered and deleted", async || {
        messages(&f.js, "ETL_DATA_p_pipe").await == 0
    })
    .await;
    assert_eq!(
        dead_letters(&f.js).await,
        BTreeMap::from([("etl.p.pipe.dlq.parse".to_owned(), 1)])
    );
    // The advisory is acknowledged: read once.
    let advisory_stream = f.js.get_stream("ETL_ADVISORIES_p").await.unwrap();
    wait_for("the advisory acknowledged", async || {
        let c = advisory_stream
            .consumer_info("etl-controller")
            .await
            .unwrap()
            .clone();
        c.num_pending == 0 && c.num_ack_pending == 0
    })
    .await;
    f.stop().await;
}

/// `parse` and `store` both read `etl.p.pipe.in`, giving up after `parse_max` and `store_max`
/// deliveries half a second apart.
fn two_units(parse_max: i64, store_max: i64) -> Bundle {
    let unit = |name: &str, max: i64| {
        let mut c = consumer_config("pipe", name, &["etl.p.pipe.in"]);
        c["config"]["max_deliver"] = json!(max);
        c["config"]["ack_wait"] = json!(500_000_000_u64);
        c
    };
    bundle(vec![(
        "pipe",
        file(
            "pipe",
            stream_config("pipe", &["etl.p.pipe.in"]),
            vec![unit("parse", parse_max), unit("store", store_max)],
        ),
    )])
}

#[tokio::test(flavor = "multi_thread")]
async fn two_consumers_giving_up_at_once_each_get_their_dead_letter() {
    let mut f = Fixture::start(&two_units(2, 2)).await;
    let _units = silent_units(&f.client, &["parse", "store"]).await;
    f.publish().await;
    // Both advisories are there before the first is settled: the race a delete after the
    // first dead letter lost the second unit's copy in.
    wait_for("both advisories stored", async || {
        messages(&f.js, "ETL_ADVISORIES_p").await == 2
    })
    .await;
    f.listen();
    wait_for("the message deleted", async || {
        messages(&f.js, "ETL_DATA_p_pipe").await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        dead_letters(&f.js).await,
        BTreeMap::from([
            ("etl.p.pipe.dlq.parse".to_owned(), 1),
            ("etl.p.pipe.dlq.store".to_owned(), 1)
        ])
    );
    assert_eq!(
        f.delivery.moved(),
        BTreeMap::from([
            (("pipe".to_owned(), "parse".to_owned()), 1),
            (("pipe".to_owned(), "store".to_owned()), 1)
        ])
    );
    assert_eq!(f.delivery.lost(), BTreeMap::new());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_two_consumers_give_up_on_one_after_the_other_is_deleted_after_the_second() {
    let mut f = Fixture::start(&two_units(2, 6)).await;
    f.listen();
    let _units = silent_units(&f.client, &["parse", "store"]).await;
    f.publish().await;
    wait_for("parse's dead letter", async || {
        dead_letters(&f.js)
            .await
            .contains_key("etl.p.pipe.dlq.parse")
    })
    .await;
    // `store` is still at it: the message stays.
    assert_eq!(messages(&f.js, "ETL_DATA_p_pipe").await, 1);
    wait_for(
        "store's dead letter, then the message deleted",
        async || messages(&f.js, "ETL_DATA_p_pipe").await == 0,
    )
    .await;
    assert_eq!(
        dead_letters(&f.js).await,
        BTreeMap::from([
            ("etl.p.pipe.dlq.parse".to_owned(), 1),
            ("etl.p.pipe.dlq.store".to_owned(), 1)
        ])
    );
    assert_eq!(f.delivery.lost(), BTreeMap::new());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_that_cannot_be_published_is_tried_again() {
    let mut f = Fixture::start(&short_lived(false)).await;
    // The dead-letter stream is gone for a while: nothing confirms a dead letter.
    f.js.delete_stream("ETL_DLQ_p").await.unwrap();
    f.listen();
    let _units = silent_units(&f.client, &["parse"]).await;
    f.publish().await;
    wait_for("the advisory stored", async || {
        messages(&f.js, "ETL_ADVISORIES_p").await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(messages(&f.js, "ETL_DATA_p_pipe").await, 1);
    assert_eq!(f.delivery.moved(), BTreeMap::new());
    // Back: the advisory, handed back, is settled.
    ensure_dead_letters(&f.js).await;
    wait_for("the message dead-lettered and deleted", async || {
        messages(&f.js, "ETL_DATA_p_pipe").await == 0
    })
    .await;
    assert_eq!(
        dead_letters(&f.js).await,
        BTreeMap::from([("etl.p.pipe.dlq.parse".to_owned(), 1)])
    );
    assert_eq!(f.delivery.lost(), BTreeMap::new());
    f.stop().await;
}
