//! wadm manifests (`etl::build::emit::wadm`), each checked by three oracles that share no code with
//! the emitter:
//!
//! 1. wadm-types 0.8.3, wadm's own parser and validator (what `wash app validate` and the wadm
//!    0.21 server run): the manifest must parse, with no error and no warning, and what it parsed
//!    must be what serde-saphyr reads from the same text. wadm-types cannot be a dev-dependency
//!    (its `regex = "~1.10"` and jsonschema's `regex >= 1.11.1` cannot share one lockfile), so it
//!    runs as the command of `tests/wadm-oracle/`, its own workspace, built here on first use.
//! 2. `apiVersion` and `kind`, which wadm-types does not check.
//! 3. wadm's published JSON schema of the manifest: `tests/data/wadm-oam.schema.json`, a copy of
//!    `shared/reference/wadm-oam.schema.json` (the schema in the wadm repository, `oam/oam.schema.json`).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use etl::build::emit::{
    Application, ArtifactRef, Component, ComponentKind, Direction, Link, NamedConfig, Provider,
    Scale, Secret, SecretPolicy, wadm,
};
use etl::spec::model::{ProviderKind, Spread};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Oracles

/// The wadm-types oracle's executable, built once per test run into its own target directory
/// beside this test's (a nested cargo cannot share the running one's build lock).
fn oracle() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::build_oracle("wadm-oracle"))
}

/// What wadm-types said of each manifest: its failures (or why it did not parse) and the
/// manifest as it parsed it.
fn wadm_types(manifests: &[(&str, &str)]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = manifests
        .iter()
        .enumerate()
        .map(|(i, (_, yaml))| {
            let path = dir.path().join(format!("{i}.yaml"));
            std::fs::write(&path, yaml).unwrap();
            path
        })
        .collect();
    let out = Command::new(oracle()).args(&paths).output().unwrap();
    assert!(
        out.status.success(),
        "the wadm-types oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), manifests.len());
    lines
}

fn schema() -> &'static jsonschema::Validator {
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wadm-oam.schema.json");
        let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        jsonschema::validator_for(&schema).expect("the wadm schema compiles")
    })
}

/// `value` without nulls, empty maps and empty lists (wadm-types leaves some out when it
/// serializes what it parsed, and writes others as null).
fn pruned(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), pruned(v)))
                .filter(|(_, v)| match v {
                    Value::Null => false,
                    Value::Object(m) => !m.is_empty(),
                    Value::Array(a) => !a.is_empty(),
                    _ => true,
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(pruned).collect()),
        other => other.clone(),
    }
}

/// Runs the three oracles on every manifest, panicking with every complaint of every one;
/// returns each manifest as wadm-types parsed it.
fn check(manifests: &[(&str, &str)]) -> Vec<Value> {
    let verdicts = wadm_types(manifests);
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for ((label, yaml), verdict) in manifests.iter().zip(&verdicts) {
        let mut mine = Vec::new();
        if let Some(error) = verdict.get("error") {
            mine.push(format!("wadm-types cannot parse it: {error}"));
        }
        for f in verdict["failures"].as_array().unwrap() {
            mine.push(format!(
                "wadm-types [{}] {}",
                f["level"].as_str().unwrap_or_default(),
                f["msg"].as_str().unwrap_or_default()
            ));
        }
        let doc: Value = match serde_saphyr::from_str(yaml) {
            Ok(doc) => doc,
            Err(e) => {
                problems.push(format!(
                    "{label}: serde-saphyr cannot read it back: {e}\n{yaml}"
                ));
                continue;
            }
        };
        if doc["apiVersion"] != "core.oam.dev/v1beta1" {
            mine.push(format!("apiVersion is {}", doc["apiVersion"]));
        }
        if doc["kind"] != "Application" {
            mine.push(format!("kind is {}", doc["kind"]));
        }
        for e in schema().iter_errors(&doc) {
            mine.push(format!("schema: {e} at {}", e.instance_path()));
        }
        if let Some(theirs) = verdict.get("manifest")
            && pruned(theirs) != pruned(&doc)
        {
            mine.push(format!(
                "wadm-types read other values than serde-saphyr:\n  wadm-types:  {}\n  serde-saphyr: {}",
                pruned(theirs),
                pruned(&doc)
            ));
        }
        if mine.is_empty() {
            parsed.push(verdict["manifest"].clone());
        } else {
            problems.push(format!("{label}:\n  {}\n{yaml}", mine.join("\n  ")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    parsed
}

/// Emits and checks one application; returns its YAML and wadm-types' reading of it.
fn emit(app: &Application) -> (String, Value) {
    let yaml = wadm::manifest(app);
    let parsed = check(&[(&app.name, &yaml)]).remove(0);
    (yaml, parsed)
}

// ---------------------------------------------------------------------------------------------
// Hand-built applications, shaped like what `etl::build::emit::application` builds

const REGISTRY: &str = "registry.acme.example/etl";

fn digest(seed: char) -> String {
    format!("sha256:{}", seed.to_string().repeat(64))
}

fn named(name: &str, pairs: &[(&str, &str)]) -> Option<NamedConfig> {
    Some(NamedConfig {
        name: name.to_owned(),
        properties: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

fn scale(replicas: u32) -> Scale {
    Scale {
        replicas,
        spread: Vec::new(),
    }
}

fn base(name: &str) -> Application {
    Application {
        name: name.to_owned(),
        project: "acme-iot".to_owned(),
        environment: "dev".to_owned(),
        lattice: "acme-iot-dev".to_owned(),
        description: None,
        version: "sha-0123456789ab".to_owned(),
        components: Vec::new(),
        providers: Vec::new(),
        links: Vec::new(),
        secret_policy: None,
        max_in_flight: None,
        shared: false,
        nodes: Vec::new(),
        jetstream: None,
    }
}

fn component(app: &mut Application, name: &str, kind: ComponentKind, config: &[(&str, &str)]) {
    let repository = format!("{}-{name}", app.name);
    let seed = char::from(b'a' + app.components.len() as u8);
    app.components.push(Component {
        name: name.to_owned(),
        kind,
        artifact: ArtifactRef {
            image: format!("{REGISTRY}/{repository}@{}", digest(seed)),
            repository: repository.clone(),
            manifest_digest: digest(seed),
            component_digest: digest('0'),
            imports: vec!["wasmcloud:messaging/consumer@0.2.0".to_owned()],
            customer: None,
        },
        artifact_v2: None,
        scale: scale(1),
        config: if config.is_empty() {
            None
        } else {
            named(
                &format!("{name}-runtime-{}", seed.to_string().repeat(12)),
                config,
            )
        },
        secrets: Vec::new(),
        grants: Vec::new(),
        egress: Vec::new(),
    });
}

/// A step, with the runtime configuration the harness reads (`etl.out.*`) and `step`.
fn step(app: &mut Application, name: &str, step: &[(&str, &str)]) {
    let out = format!("etl.{}.{}.out.{name}", app.project, app.name);
    let dlq = format!("etl.{}.{}.dlq.{name}", app.project, app.name);
    let mut config = vec![
        ("etl.out.subjects", out.as_str()),
        ("etl.out.dead-letter", dlq.as_str()),
    ];
    config.extend_from_slice(step);
    component(app, name, ComponentKind::Step, &config);
}

fn provider(app: &mut Application, kind: ProviderKind, image: &str, config: Option<NamedConfig>) {
    app.providers.push(Provider {
        name: kind.name().to_owned(),
        kind,
        image: image.to_owned(),
        config,
        scale: scale(1),
        shared: None,
    });
}

/// A provider → component link (records in), named after the component.
fn inbound(
    app: &mut Application,
    provider: ProviderKind,
    component: &str,
    wit: (&str, &str, &str),
    source: &[(&str, &str)],
    role: &str,
) {
    app.links.push(Link {
        direction: Direction::ProviderToComponent,
        provider: provider.name().to_owned(),
        component: component.to_owned(),
        namespace: wit.0.to_owned(),
        package: wit.1.to_owned(),
        interfaces: vec![wit.2.to_owned()],
        name: Some(component.to_owned()),
        source_config: named(&format!("{component}-{role}-0123456789ab"), source),
        target_config: None,
        secrets: Vec::new(),
    });
}

/// A component → provider link (records out), unnamed.
fn outbound(
    app: &mut Application,
    component: &str,
    provider: ProviderKind,
    wit: (&str, &str, &str),
    target: &[(&str, &str)],
    role: &str,
) {
    app.links.push(Link {
        direction: Direction::ComponentToProvider,
        provider: provider.name().to_owned(),
        component: component.to_owned(),
        namespace: wit.0.to_owned(),
        package: wit.1.to_owned(),
        interfaces: vec![wit.2.to_owned()],
        name: None,
        source_config: None,
        target_config: if target.is_empty() {
            None
        } else {
            named(&format!("{component}-{role}-0123456789ab"), target)
        },
        secrets: Vec::new(),
    });
}

const HANDLER: (&str, &str, &str) = ("wasmcloud", "messaging", "handler");
const CONSUMER: (&str, &str, &str) = ("wasmcloud", "messaging", "consumer");
const INCOMING: (&str, &str, &str) = ("wasi", "http", "incoming-handler");
const OUTGOING: (&str, &str, &str) = ("wasi", "http", "outgoing-handler");
const BLOBSTORE: (&str, &str, &str) = ("wasi", "blobstore", "blobstore");
use ProviderKind::{BlobstoreS3, HttpClient, HttpServer, MessagingKafka, MessagingNats};

fn subscriptions(app: &Application, unit: &str, subject: &str) -> String {
    format!("{subject}|etl.{}.{}.{unit}", app.project, app.name)
}

/// A NATS link into `unit` from the step before it, and `unit`'s NATS link out.
fn nats_hop(app: &mut Application, unit: &str, from: &str) {
    let subject = format!("etl.{}.{}.out.{from}", app.project, app.name);
    let subs = subscriptions(app, unit, &subject);
    inbound(
        app,
        MessagingNats,
        unit,
        HANDLER,
        &[("subscriptions", &subs)],
        "nats-in",
    );
}

/// The shape of examples/iot-sensors: an http source into `parse`, then `enrich` and
/// `threshold-alert`, an http sink `alerts` with a secret, and `archive` on NATS fanned out from
/// `parse`.
fn iot_sensors() -> Application {
    let mut app = base("sensor-ingest");
    app.description = Some(
        "Temperature readings POSTed by plant-floor gateways: every parsed reading is archived on NATS; readings at or above the environment's threshold are enriched with the site and POSTed to the alerting webhook.".to_owned(),
    );
    step(&mut app, "parse", &[]);
    step(&mut app, "enrich", &[("step.site", "dev-bench")]);
    step(&mut app, "threshold-alert", &[("step.threshold", "50")]);
    component(
        &mut app,
        "alerts",
        ComponentKind::Sink,
        &[("etl.out.url", "http://alerts.dev.acme.example/hook")],
    );
    component(
        &mut app,
        "archive",
        ComponentKind::Sink,
        &[("etl.out.subjects", "iot.dev.sensors.archive")],
    );
    app.components[3].secrets = vec![Secret {
        name: "authorization".to_owned(),
        key: "alerts-webhook-token".to_owned(),
    }];
    app.secret_policy = Some(SecretPolicy {
        name: "etl-secrets".to_owned(),
        backend: "nats-kv".to_owned(),
    });
    provider(
        &mut app,
        HttpServer,
        "wasmcloud+builtin://http-server",
        named("http-server-5f0c3a1b2d4e", &[("routing_mode", "path")]),
    );
    provider(
        &mut app,
        HttpClient,
        "wasmcloud+builtin://http-client",
        None,
    );
    provider(
        &mut app,
        MessagingNats,
        "wasmcloud+builtin://messaging-nats",
        None,
    );

    inbound(
        &mut app,
        HttpServer,
        "parse",
        INCOMING,
        &[("path", "/sensors")],
        "http-in",
    );
    outbound(&mut app, "parse", MessagingNats, CONSUMER, &[], "nats-out");
    nats_hop(&mut app, "enrich", "parse");
    outbound(&mut app, "enrich", MessagingNats, CONSUMER, &[], "nats-out");
    nats_hop(&mut app, "threshold-alert", "enrich");
    outbound(
        &mut app,
        "threshold-alert",
        MessagingNats,
        CONSUMER,
        &[],
        "nats-out",
    );
    nats_hop(&mut app, "alerts", "threshold-alert");
    outbound(&mut app, "alerts", HttpClient, OUTGOING, &[], "http-out");
    nats_hop(&mut app, "archive", "parse");
    outbound(
        &mut app,
        "archive",
        MessagingNats,
        CONSUMER,
        &[],
        "nats-out",
    );
    app
}

// ---------------------------------------------------------------------------------------------
// Reading what wadm-types parsed

fn components(parsed: &Value) -> &Vec<Value> {
    parsed["spec"]["components"].as_array().unwrap()
}

fn find<'a>(parsed: &'a Value, name: &str) -> &'a Value {
    components(parsed)
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name}"))
}

/// The link traits of `name`, as (link name, interface, target).
fn links_of(parsed: &Value, name: &str) -> Vec<(String, String, String)> {
    find(parsed, name)["traits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "link")
        .map(|t| {
            let p = &t["properties"];
            (
                p["name"].as_str().unwrap_or("default").to_owned(),
                format!(
                    "{}:{}/{}",
                    p["namespace"].as_str().unwrap(),
                    p["package"].as_str().unwrap(),
                    p["interfaces"][0].as_str().unwrap()
                ),
                p["target"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn link(name: &str, interface: &str, target: &str) -> (String, String, String) {
    (name.to_owned(), interface.to_owned(), target.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn the_iot_sensors_shape_validates_with_links_on_their_sources() {
    let (_, parsed) = emit(&iot_sensors());
    let names: Vec<&str> = components(&parsed)
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "parse",
            "enrich",
            "threshold-alert",
            "alerts",
            "archive",
            "http-server",
            "http-client",
            "messaging-nats"
        ]
    );
    let consumer = "wasmcloud:messaging/consumer";
    assert_eq!(
        links_of(&parsed, "parse"),
        [link("default", consumer, "messaging-nats")]
    );
    assert_eq!(
        links_of(&parsed, "alerts"),
        [link("default", "wasi:http/outgoing-handler", "http-client")]
    );
    assert_eq!(
        links_of(&parsed, "http-server"),
        [link("parse", "wasi:http/incoming-handler", "parse")]
    );
    let handler = "wasmcloud:messaging/handler";
    assert_eq!(
        links_of(&parsed, "messaging-nats"),
        [
            link("enrich", handler, "enrich"),
            link("threshold-alert", handler, "threshold-alert"),
            link("alerts", handler, "alerts"),
            link("archive", handler, "archive"),
        ]
    );
    assert!(links_of(&parsed, "http-client").is_empty());
    assert_eq!(
        find(&parsed, "http-server")["properties"]["config"][0]["properties"],
        json!({"routing_mode": "path"})
    );
}

#[test]
fn a_full_manifest_for_review() {
    let (yaml, _) = emit(&iot_sensors());
    insta::assert_snapshot!("sensor_ingest_dev", yaml);
}

#[test]
fn fan_out_gives_each_branch_its_own_named_link_and_queue_group() {
    let mut app = base("fan");
    component(&mut app, "split", ComponentKind::Step, &[]);
    for branch in ["left", "right", "middle"] {
        component(&mut app, branch, ComponentKind::Step, &[]);
    }
    provider(
        &mut app,
        MessagingNats,
        "ghcr.io/wasmcloud/messaging-nats:0.27.0",
        None,
    );
    let subject = "nats-in-subject";
    let subs = subscriptions(&app, "split", subject);
    inbound(
        &mut app,
        MessagingNats,
        "split",
        HANDLER,
        &[("subscriptions", &subs)],
        "nats-in",
    );
    outbound(&mut app, "split", MessagingNats, CONSUMER, &[], "nats-out");
    for branch in ["left", "right", "middle"] {
        nats_hop(&mut app, branch, "split");
        outbound(&mut app, branch, MessagingNats, CONSUMER, &[], "nats-out");
    }
    let (_, parsed) = emit(&app);
    let nats = find(&parsed, "messaging-nats");
    let queues: BTreeSet<String> = nats["traits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "link")
        .map(|t| {
            let subs = t["properties"]["source"]["config"][0]["properties"]["subscriptions"]
                .as_str()
                .unwrap();
            subs.split_once('|').unwrap().1.to_owned()
        })
        .collect();
    assert_eq!(queues.len(), 4, "one queue group per step: {queues:?}");
    let names: BTreeSet<_> = links_of(&parsed, "messaging-nats")
        .into_iter()
        .map(|l| l.0)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["split", "left", "right", "middle"].map(String::from))
    );
}

#[test]
fn kafka_source_and_kafka_sink() {
    let mut app = base("orders");
    component(
        &mut app,
        "transform",
        ComponentKind::Step,
        &[("step.mode", "strict")],
    );
    component(&mut app, "out", ComponentKind::Sink, &[]);
    provider(
        &mut app,
        MessagingNats,
        "ghcr.io/wasmcloud/messaging-nats:0.27.0",
        None,
    );
    provider(
        &mut app,
        MessagingKafka,
        "ghcr.io/wasmcloud/messaging-kafka:0.6.1",
        None,
    );
    // The Kafka provider consumes for a component that links to it: a named `consumer` link
    // from the step, configured on the target side.
    let group = format!("etl.{}.{}.transform", app.project, app.name);
    outbound(
        &mut app,
        "transform",
        MessagingKafka,
        CONSUMER,
        &[
            ("topic", "orders.raw"),
            ("consumer_group", &group),
            ("hosts", "kafka-1:9092,kafka-2:9092"),
        ],
        "kafka-in",
    );
    app.links.last_mut().unwrap().name = Some(etl::build::emit::KAFKA_SOURCE_LINK.to_owned());
    outbound(
        &mut app,
        "transform",
        MessagingNats,
        CONSUMER,
        &[],
        "nats-out",
    );
    nats_hop(&mut app, "out", "transform");
    outbound(
        &mut app,
        "out",
        MessagingKafka,
        CONSUMER,
        &[("topic", "orders.clean"), ("hosts", "kafka-1:9092")],
        "kafka-out",
    );
    let (_, parsed) = emit(&app);
    assert_eq!(
        links_of(&parsed, "out"),
        [link(
            "default",
            "wasmcloud:messaging/consumer",
            "messaging-kafka"
        )]
    );
    let out = &find(&parsed, "out")["traits"][1]["properties"]["target"];
    assert_eq!(
        out["config"][0]["properties"],
        json!({"hosts": "kafka-1:9092", "topic": "orders.clean"}),
        "a kafka sink is configured on the target (provider) side"
    );
    assert_eq!(
        links_of(&parsed, "transform"),
        [
            link(
                "kafka-source",
                "wasmcloud:messaging/consumer",
                "messaging-kafka"
            ),
            link("default", "wasmcloud:messaging/consumer", "messaging-nats"),
        ],
        "the kafka source is a named link of the step, its output the unnamed one"
    );
    assert_eq!(
        find(&parsed, "transform")["traits"][1]["properties"]["target"]["config"][0]["properties"]
            ["topic"],
        "orders.raw"
    );
    assert!(links_of(&parsed, "messaging-kafka").is_empty());
}

#[test]
fn s3_sink() {
    let mut app = base("lake");
    component(
        &mut app,
        "write",
        ComponentKind::Sink,
        &[
            ("etl.out.container", "acme-archive"),
            ("etl.out.key", "readings/{{ id }}.json"),
        ],
    );
    provider(
        &mut app,
        MessagingNats,
        "ghcr.io/wasmcloud/messaging-nats:0.27.0",
        None,
    );
    provider(
        &mut app,
        BlobstoreS3,
        "ghcr.io/wasmcloud/blobstore-s3:0.12.1",
        None,
    );
    nats_hop(&mut app, "write", "upstream");
    outbound(
        &mut app,
        "write",
        BlobstoreS3,
        BLOBSTORE,
        &[
            ("alias_archive", "acme-archive"),
            ("BUCKET_REGION", "eu-west-1"),
        ],
        "s3-out",
    );
    let (_, parsed) = emit(&app);
    assert_eq!(
        links_of(&parsed, "write"),
        [link("default", "wasi:blobstore/blobstore", "blobstore-s3")]
    );
    assert_eq!(
        find(&parsed, "write")["traits"][1]["properties"]["target"]["config"][0]["properties"],
        json!({"BUCKET_REGION": "eu-west-1", "alias_archive": "acme-archive"})
    );
}

#[test]
fn secrets_resolve_through_the_secret_policy() {
    let app = iot_sensors();
    let (_, parsed) = emit(&app);
    assert_eq!(
        find(&parsed, "alerts")["properties"]["secrets"],
        json!([{"name": "authorization", "properties": {"policy": "etl-secrets", "key": "alerts-webhook-token"}}])
    );
    assert_eq!(
        parsed["spec"]["policies"],
        json!([{"name": "etl-secrets", "type": "policy.secret.wasmcloud.dev/v1alpha1", "properties": {"backend": "nats-kv"}}])
    );

    // The oracle notices a secret without its policy.
    let mut orphan = app.clone();
    orphan.secret_policy = None;
    let verdict = wadm_types(&[("orphan", &wadm::manifest(&orphan))]).remove(0);
    assert!(
        verdict["failures"].to_string().contains("unknown policy"),
        "{verdict}"
    );
}

#[test]
fn spread_with_weights_and_three_replicas() {
    let mut app = iot_sensors();
    let spread = vec![
        Spread {
            name: "east".to_owned(),
            requirements: BTreeMap::from([("zone".to_owned(), "east".to_owned())]),
            weight: Some(60),
        },
        Spread {
            name: "west".to_owned(),
            requirements: BTreeMap::from([
                ("zone".to_owned(), "west".to_owned()),
                ("tier".to_owned(), "edge".to_owned()),
            ]),
            weight: Some(40),
        },
        Spread {
            name: "anywhere".to_owned(),
            requirements: BTreeMap::new(),
            weight: None,
        },
    ];
    for scale in app
        .components
        .iter_mut()
        .map(|c| &mut c.scale)
        .chain(app.providers.iter_mut().map(|p| &mut p.scale))
    {
        scale.replicas = 3;
        scale.spread = spread.clone();
    }
    let (_, parsed) = emit(&app);
    for c in components(&parsed) {
        let scaler = &c["traits"][0];
        if c["type"] == "component" {
            assert_eq!(scaler["type"], "spreadscaler", "{c}");
            assert_eq!(scaler["properties"]["instances"], 3, "{c}");
            assert_eq!(
                pruned(&scaler["properties"]["spread"]),
                json!([
                    {"name": "east", "requirements": {"zone": "east"}, "weight": 60},
                    {"name": "west", "requirements": {"tier": "edge", "zone": "west"}, "weight": 40},
                    {"name": "anywhere"},
                ]),
                "{c}"
            );
        } else {
            // A provider: once on every host a share selects, whatever the replicas.
            assert_eq!(scaler["type"], "daemonscaler", "{c}");
            assert_eq!(scaler["properties"]["instances"], 1, "{c}");
            assert_eq!(
                pruned(&scaler["properties"]["spread"]),
                json!([
                    {"name": "east", "requirements": {"zone": "east"}},
                    {"name": "west", "requirements": {"tier": "edge", "zone": "west"}},
                    {"name": "anywhere"},
                ]),
                "{c}"
            );
        }
    }
}

#[test]
fn yaml_syntax_in_values_comes_back_as_the_same_strings() {
    let mut app = iot_sensors();
    let values: BTreeMap<String, String> = common::AWKWARD
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("step.v{i:02}"), (*v).to_owned()))
        .collect();
    // Keys too: config keys come from the spec.
    let keys: BTreeMap<String, String> = common::AWKWARD
        .iter()
        .filter(|k| !k.is_empty())
        .map(|k| ((*k).to_owned(), "v".to_owned()))
        .collect();
    app.components[0].config.as_mut().unwrap().properties = values.clone();
    app.components[1].config.as_mut().unwrap().properties = keys.clone();
    app.links[0].source_config.as_mut().unwrap().properties = values.clone();
    app.links[1].target_config = Some(NamedConfig {
        name: "parse-nats-out-0123456789ab".to_owned(),
        properties: values.clone(),
    });
    let description = common::AWKWARD.join("\n");
    app.description = Some(description.clone());
    app.components[2].scale.spread = vec![Spread {
        name: "awkward".to_owned(),
        requirements: values.clone(),
        weight: Some(1),
    }];

    let (yaml, parsed) = emit(&app);
    let strings =
        |v: &Value| -> BTreeMap<String, String> { serde_json::from_value(v.clone()).unwrap() };
    assert_eq!(
        parsed["metadata"]["annotations"]["description"],
        description.as_str(),
        "{yaml}"
    );
    assert_eq!(
        strings(&find(&parsed, "parse")["properties"]["config"][0]["properties"]),
        values,
        "{yaml}"
    );
    assert_eq!(
        strings(&find(&parsed, "enrich")["properties"]["config"][0]["properties"]),
        keys,
        "{yaml}"
    );
    assert_eq!(
        strings(
            &find(&parsed, "http-server")["traits"][1]["properties"]["source"]["config"][0]["properties"]
        ),
        values,
        "{yaml}"
    );
    assert_eq!(
        strings(
            &find(&parsed, "parse")["traits"][1]["properties"]["target"]["config"][0]["properties"]
        ),
        values,
        "{yaml}"
    );
    assert_eq!(
        strings(
            &find(&parsed, "threshold-alert")["traits"][0]["properties"]["spread"][0]["requirements"]
        ),
        values,
        "{yaml}"
    );
}

/// The dev application of [`iot_sensors`] deployed to prod: another lattice, replicas,
/// threshold (so another runtime config name) and version.
fn prod(app: &Application) -> Application {
    let mut prod = app.clone();
    prod.environment = "prod".to_owned();
    prod.lattice = "acme-iot-prod".to_owned();
    prod.version = "sha-ba9876543210".to_owned();
    for scale in prod
        .components
        .iter_mut()
        .map(|c| &mut c.scale)
        .chain(prod.providers.iter_mut().map(|p| &mut p.scale))
    {
        scale.replicas = 3;
    }
    let threshold = prod.components[2].config.as_mut().unwrap();
    threshold.name = "threshold-alert-runtime-fedcba987654".to_owned();
    threshold
        .properties
        .insert("step.threshold".to_owned(), "80".to_owned());
    prod
}

#[test]
fn two_environments_differ_only_in_the_lines_that_differ() {
    let dev_app = iot_sensors();
    let prod_app = prod(&dev_app);
    let (dev, prod) = (wadm::manifest(&dev_app), wadm::manifest(&prod_app));
    check(&[("dev", &dev), ("prod", &prod)]);
    assert_eq!(dev.lines().count(), prod.lines().count());
    let set =
        |text: &str| -> BTreeSet<String> { text.lines().map(|l| l.trim().to_owned()).collect() };
    let (dev_lines, prod_lines) = (set(&dev), set(&prod));
    let only_dev: BTreeSet<_> = dev_lines.difference(&prod_lines).cloned().collect();
    let only_prod: BTreeSet<_> = prod_lines.difference(&dev_lines).cloned().collect();
    let expect =
        |lines: &[&str]| -> BTreeSet<String> { lines.iter().map(|l| (*l).to_owned()).collect() };
    assert_eq!(
        only_dev,
        expect(&[
            "version: sha-0123456789ab",
            "etl.dev/environment: dev",
            "etl.dev/lattice: acme-iot-dev",
            "- name: threshold-alert-runtime-cccccccccccc",
            r#"step.threshold: "50""#,
        ]),
        "{dev}"
    );
    assert_eq!(
        only_prod,
        expect(&[
            "version: sha-ba9876543210",
            "etl.dev/environment: prod",
            "etl.dev/lattice: acme-iot-prod",
            "instances: 3",
            "- name: threshold-alert-runtime-fedcba987654",
            r#"step.threshold: "80""#,
        ]),
        "{prod}"
    );
    // Line by line: each differing line is at the same place in both.
    let changed = dev
        .lines()
        .zip(prod.lines())
        .filter(|(d, p)| d != p)
        .count();
    // The components' replicas change; the providers' daemonscalers (one per host) do not.
    let replicas = prod.lines().filter(|l| l.trim() == "instances: 3").count();
    assert_eq!(replicas, prod_app.components.len());
    assert_eq!(changed, 5 + replicas, "only those lines change");
}

/// wadm-types bites: the oracle is not a rubber stamp. Two provider → component links on one
/// interface with the same (default) name are refused, and so is a manifest without
/// annotations.
#[test]
fn the_oracles_refuse_what_wadm_refuses() {
    let mut app = iot_sensors();
    for l in &mut app.links {
        if l.direction == Direction::ProviderToComponent {
            l.name = None;
        }
    }
    let yaml = wadm::manifest(&app);
    let verdict = wadm_types(&[("unnamed", &yaml)]).remove(0);
    assert!(
        verdict["failures"]
            .to_string()
            .contains("Duplicate link found inside component 'messaging-nats'"),
        "{verdict}"
    );

    let mut doc: Value = serde_saphyr::from_str(&wadm::manifest(&iot_sensors())).unwrap();
    doc["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    doc["spec"]["components"][0]["properties"]["imag"] = json!("typo");
    let errors: Vec<String> = schema().iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.len() >= 2, "{errors:?}");
    let verdict = wadm_types(&[("bare", &serde_json::to_string(&doc).unwrap())]).remove(0);
    assert!(
        verdict["error"]
            .as_str()
            .is_some_and(|e| e.contains("annotations")),
        "{verdict}"
    );
}

/// `examples/iot-sensors` compiled: every environment's wadm manifest is what the emitter writes
/// for its application, and passes the three oracles.
#[test]
fn the_example_in_every_environment() {
    let (plan, files) = common::compiled_example();
    let mut manifests = Vec::new();
    for (env, apps) in &plan.deployments {
        for (pipeline, app) in apps {
            let path = format!("{env}/wadm/{pipeline}.yaml");
            let written = std::str::from_utf8(&files[&path]).unwrap();
            assert_eq!(written, wadm::manifest(app), "{path}");
            manifests.push((path, written));
        }
    }
    let labelled: Vec<(&str, &str)> = manifests.iter().map(|(p, y)| (p.as_str(), *y)).collect();
    let parsed = check(&labelled);
    for ((path, _), doc) in manifests.iter().zip(&parsed) {
        let env = path.split('/').next().unwrap();
        let app = &plan.deployments[env]["sensor-ingest"];
        let annotations = &doc["metadata"]["annotations"];
        assert_eq!(annotations["version"], app.version.as_str(), "{path}");
        assert_eq!(annotations["etl.dev/environment"], env, "{path}");
        assert_eq!(
            annotations["etl.dev/lattice"],
            app.lattice.as_str(),
            "{path}"
        );
        for c in &app.components {
            let component = find(doc, &c.name);
            assert_eq!(component["type"], "component", "{path}");
            assert_eq!(component["properties"]["image"], c.artifact.image.as_str());
            assert!(c.artifact.image.contains("@sha256:"), "{path}");
            assert_eq!(
                component["traits"][0]["properties"]["instances"], c.scale.replicas,
                "{path}"
            );
        }
        for p in &app.providers {
            assert_eq!(find(doc, &p.name)["type"], "capability", "{path}");
        }
    }
}

/// Every environment's shared HTTP listener (`<env>/wadm/iot-sensors-http-listener.yaml`) is the shared
/// application its pipelines reference, passes the three oracles, and runs the provider the
/// references name, in path mode on the default address; the pipeline's link from it is named
/// after the pipeline too, since every pipeline's links leave the one listener.
#[test]
fn the_shared_http_listener_in_every_environment() {
    let (plan, files) = common::compiled_example();
    for (env, apps) in &plan.deployments {
        let path = format!("{env}/wadm/iot-sensors-http-listener.yaml");
        let written = std::str::from_utf8(&files[&path]).unwrap();
        let pipeline =
            std::str::from_utf8(&files[&format!("{env}/wadm/sensor-ingest.yaml")]).unwrap();
        let parsed = check(&[(path.as_str(), written), ("pipeline", pipeline)]);
        let (listener, pipeline) = (&parsed[0], &parsed[1]);
        assert_eq!(
            listener["metadata"]["annotations"]["experimental.wasmcloud.dev/shared"], "true",
            "{path}"
        );
        let server = find(listener, "http-server");
        assert_eq!(
            server["properties"]["config"][0]["properties"],
            json!({"default_address": "0.0.0.0:8000", "routing_mode": "path"}),
            "{path}"
        );
        assert_eq!(server["traits"][0]["type"], "daemonscaler", "{path}");
        let reference = find(pipeline, "http-server");
        assert_eq!(
            reference["properties"]["application"],
            json!({"name": "iot-sensors-http-listener", "component": "http-server"}),
            "{path}"
        );
        assert!(reference["properties"].get("image").is_none(), "{path}");
        let links: Vec<&Value> = reference["traits"].as_array().unwrap().iter().collect();
        assert!(links.iter().all(|t| t["type"] == "link"), "{path}");
        assert_eq!(links[0]["properties"]["name"], "sensor-ingest-parse");
        let app = &apps["sensor-ingest"];
        assert_eq!(
            app.providers
                .iter()
                .filter_map(|p| p.shared.as_deref())
                .collect::<Vec<_>>(),
            ["iot-sensors-http-listener"]
        );
    }
}

/// An environment's `nats.urls` reach every link of the messaging-nats provider as
/// `cluster_uris` (each link connects on its own), and its `http.address` becomes the shared
/// listener's `default_address`; environments that set neither keep the defaults.
#[test]
fn an_environments_nats_and_http_listener_reach_the_links() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    common::copy(&common::example(), &repo);
    let etl_yaml = repo.join("etl.yaml");
    let text = std::fs::read_to_string(&etl_yaml).unwrap().replace(
        "      lattice: acme-iot-dev\n",
        "      lattice: acme-iot-dev\n      nats:\n        urls: [nats://10.0.0.5:4223, tls://nats.acme.example:4222]\n      http: { address: 127.0.0.1:18080 }\n",
    );
    std::fs::write(&etl_yaml, text).unwrap();
    let build = etl::build::build(&repo, None, &Default::default()).unwrap();
    assert!(
        build.validation.diagnostics.is_empty(),
        "{:#?}",
        build.validation.diagnostics
    );
    let text = |path: &str| String::from_utf8(build.files[path].clone()).unwrap();
    let (dev, listener) = (
        text("dev/wadm/sensor-ingest.yaml"),
        text("dev/wadm/iot-sensors-http-listener.yaml"),
    );
    let parsed = check(&[("dev", dev.as_str()), ("listener", listener.as_str())]);
    let uris = "nats://10.0.0.5:4223,tls://nats.acme.example:4222";
    let mut nats_links = 0;
    for entry in parsed[0]["spec"]["components"].as_array().unwrap() {
        for t in entry["traits"].as_array().unwrap() {
            let p = &t["properties"];
            if t["type"] != "link" || p["package"] != "messaging" {
                continue;
            }
            let config = if p["interfaces"][0] == "handler" {
                &p["source"]["config"][0]["properties"]
            } else {
                &p["target"]["config"][0]["properties"]
            };
            assert_eq!(config["cluster_uris"], uris, "{t}");
            nats_links += 1;
        }
    }
    // Every step and sink publishes (outputs or reports), and every one is fed over NATS (the
    // HTTP-fed `parse` on its replay subject).
    assert_eq!(nats_links, 10);
    assert_eq!(
        find(&parsed[1], "http-server")["properties"]["config"][0]["properties"]["default_address"],
        "127.0.0.1:18080"
    );
    // wasmCloud v2 hosts use their own NATS connection: nothing of it in the workloads.
    let v2 = text("dev/k8s/sensor-ingest.yaml");
    assert!(!v2.contains("cluster_uris") && !v2.contains("4223"), "{v2}");
    // Staging says neither: no `cluster_uris`, the default listener.
    let staging = text("staging/wadm/sensor-ingest.yaml");
    assert!(!staging.contains("cluster_uris"), "{staging}");
    assert!(
        text("staging/wadm/iot-sensors-http-listener.yaml")
            .contains("default_address: 0.0.0.0:8000")
    );
}

/// Every step and sink can publish its per-batch report to its `etl.report.subject`: steps and
/// nats sinks over the consumer link their records go out on, a sink whose records go out over
/// HTTP over a consumer link of its own to messaging-nats. Every step also subscribes to its
/// replay subject, in its own queue group, even one only the HTTP source feeds.
#[test]
fn every_unit_can_report_and_every_step_is_replayed_into_alone() {
    let (plan, files) = common::compiled_example();
    let app = &plan.deployments["dev"]["sensor-ingest"];
    let yaml = std::str::from_utf8(&files["dev/wadm/sensor-ingest.yaml"]).unwrap();
    let parsed = check(&[("dev", yaml)]).remove(0);
    let consumer = "wasmcloud:messaging/consumer";
    assert_eq!(
        links_of(&parsed, "alerts"),
        [
            link("default", "wasi:http/outgoing-handler", "http-client"),
            link("default", consumer, "messaging-nats"),
        ]
    );
    for c in &app.components {
        assert!(
            links_of(&parsed, &c.name).contains(&link("default", consumer, "messaging-nats")),
            "{}",
            c.name
        );
        assert_eq!(
            find(&parsed, &c.name)["properties"]["config"][0]["properties"]["etl.report.subject"],
            format!("etl.iot-sensors.sensor-ingest.report.{}.dev", c.name).as_str(),
            "{}",
            c.name
        );
    }
    let handler = |unit: &str| {
        app.links
            .iter()
            .find(|l| {
                l.component == unit && l.interfaces == ["handler"] && l.provider == "messaging-nats"
            })
            .and_then(|l| l.source_config.as_ref())
            .map(|c| c.properties["subscriptions"].clone())
    };
    assert_eq!(
        handler("parse").as_deref(),
        Some("etl.iot-sensors.sensor-ingest.replay.parse|etl.iot-sensors.sensor-ingest.parse")
    );
    assert_eq!(
        handler("enrich").as_deref(),
        Some(
            "etl.iot-sensors.sensor-ingest.deliver.enrich|etl.iot-sensors.sensor-ingest.enrich,\
             etl.iot-sensors.sensor-ingest.replay.enrich|etl.iot-sensors.sensor-ingest.enrich"
        )
    );
    // Sinks are not replayed into. (Delivery is at least once: units read what their
    // JetStream consumer delivers to them, in their queue group.)
    assert_eq!(
        handler("archive").as_deref(),
        Some("etl.iot-sensors.sensor-ingest.deliver.archive|etl.iot-sensors.sensor-ingest.archive")
    );
}

/// A sub-pipeline subscribes to the subject of what it reads, in a queue group of its own.
#[test]
fn sub_pipelines_subscribe_to_what_they_read_in_their_own_queue_group() {
    let apps = common::applications(&common::sub_pipelines());
    for (env, trail) in [
        ("dev", "relay.dev.audit.trail"),
        ("staging", "relay.staging.audit.trail"),
    ] {
        let manifests: Vec<(String, String)> = apps[env]
            .values()
            .map(|app| (app.name.clone(), wadm::manifest(app)))
            .collect();
        let refs: Vec<(&str, &str)> = manifests
            .iter()
            .map(|(n, y)| (n.as_str(), y.as_str()))
            .collect();
        check(&refs);
        let subscriptions = |app: &str, unit: &str| {
            let app = &apps[env][app];
            app.links
                .iter()
                .find(|l| l.component == unit && l.direction == Direction::ProviderToComponent)
                .and_then(|l| l.source_config.as_ref())
                .map(|c| c.properties["subscriptions"].clone())
                .unwrap()
        };
        // `orders`' own sink and the sub-pipeline both see every record of `parse`: two
        // consumers of `orders`' stream, each delivering to its unit's own subject, in its own
        // queue group.
        assert_eq!(
            subscriptions("orders", "archive"),
            "etl.relay.orders.deliver.archive|etl.relay.orders.archive"
        );
        // A step also listens on its replay subject, in its own queue group.
        assert_eq!(
            subscriptions("audit", "audit"),
            "etl.relay.audit.deliver.audit|etl.relay.audit.audit,\
             etl.relay.audit.replay.audit|etl.relay.audit.audit"
        );
        assert_eq!(
            subscriptions("replay", "replay"),
            format!(
                "{trail}|etl.relay.replay.replay,\
                 etl.relay.replay.replay.replay|etl.relay.replay.replay"
            )
        );
        // The `pipeline` source's settings configure nothing.
        for app in apps[env].values() {
            for l in &app.links {
                for c in [&l.source_config, &l.target_config].into_iter().flatten() {
                    assert!(
                        !c.properties.contains_key("pipeline")
                            && !c.properties.contains_key("from"),
                        "{c:?}"
                    );
                }
            }
        }
    }
}

/// `tests/fixtures/egress` compiled: the step that calls out links to the HTTP client provider
/// (its egress part's import of the host's outgoing handler), which the application runs; its
/// runtime configuration names the hosts its grant gives.
#[test]
fn a_step_that_calls_out_links_to_the_http_client() {
    let (plan, files) = common::compiled_egress();
    let app = &plan.deployments["dev"]["orders"];
    let yaml = wadm::manifest(app);
    assert_eq!(
        std::str::from_utf8(&files["dev/wadm/orders.yaml"]).unwrap(),
        yaml
    );
    let parsed = check(&[("orders", &yaml)]).remove(0);
    let consumer = "wasmcloud:messaging/consumer";
    assert_eq!(
        links_of(&parsed, "price"),
        [
            link("default", consumer, "messaging-nats"),
            link("default", "wasi:http/outgoing-handler", "http-client")
        ]
    );
    assert_eq!(
        links_of(&parsed, "priced"),
        [link("default", consumer, "messaging-nats")]
    );
    assert_eq!(
        find(&parsed, "http-client")["properties"]["image"],
        "wasmcloud+builtin://http-client"
    );
    assert!(links_of(&parsed, "http-client").is_empty());
    assert_eq!(
        find(&parsed, "price")["properties"]["config"][0]["properties"]["etl.egress.hosts"],
        "api.acme.example,https://x.example:8443,*.acme.example"
    );
    assert!(
        find(&parsed, "priced")["properties"]["config"][0]["properties"]
            .get("etl.egress.hosts")
            .is_none()
    );
    insta::assert_snapshot!("orders_dev", common::masked(&yaml));
}

#[test]
fn secrets_of_components_and_of_provider_links_resolve_through_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    common::with_secrets(dir.path());
    let build = etl::build::build(dir.path(), None, &Default::default()).unwrap();
    assert!(
        !build.validation.has_errors(),
        "{:#?}",
        build.validation.diagnostics
    );
    let plan = build.plan.expect("a plan");
    let (_, parsed) = emit(&plan.deployments["dev"]["sensor-ingest"]);
    let secret = |name: &str, key: &str| json!({"name": name, "properties": {"policy": "etl-secrets", "key": key}});
    // The components read their own through the 1.x host's `wasmcloud:secrets`.
    assert_eq!(
        find(&parsed, "alerts")["properties"]["secrets"],
        json!([
            secret("authorization", "alerts-webhook-token"),
            secret("header.X-Api-Key", "alerts-api-key"),
        ])
    );
    assert_eq!(
        find(&parsed, "enrich")["properties"]["secrets"],
        json!([secret("step.token", "enrich-token")])
    );
    // The Kafka sink's password is the provider's: on the target side of its link.
    let kafka = find(&parsed, "to-kafka");
    assert!(kafka["properties"].get("secrets").is_none());
    let link = &kafka["traits"][1]["properties"];
    assert_eq!(link["target"]["name"], "messaging-kafka");
    assert_eq!(
        link["target"]["secrets"],
        json!([secret("sasl_password", "kafka-password")])
    );
    assert_eq!(
        link["target"]["config"][0]["properties"],
        json!({"hosts": "kafka-1:9092"}),
        "the password is no plain setting of the link"
    );
}

/// A connector secret that goes to a link of a built-in provider is a warning (W0513): a 1.x
/// host fetches a link's secrets with the provider's claims, which a built-in one lacks.
#[test]
fn a_secret_for_a_builtin_providers_link_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    common::copy(&common::example(), &repo);
    let file = repo.join("pipelines/sensor-ingest.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = text.replace(
        "        subject: \"{{ vars.archive_subject }}\"\n",
        "        subject: \"{{ vars.archive_subject }}\"\n        password: { secret: nats-password }\n",
    );
    assert_ne!(edited, text);
    std::fs::write(&file, edited).unwrap();
    let build = etl::build::build(&repo, None, &Default::default()).unwrap();
    let warnings: Vec<_> = build
        .validation
        .diagnostics
        .iter()
        .filter(|d| d.code.as_str() == "W0513")
        .collect();
    assert_eq!(warnings.len(), 1, "{:#?}", build.validation.diagnostics);
    let w = warnings[0];
    assert!(
        w.message.contains("`password`")
            && w.message.contains("messaging-nats")
            && w.message.contains("`dev`, `prod`, `staging`"),
        "{}",
        w.message
    );
    assert!(build.plan.is_some(), "a warning, not an error");
}
