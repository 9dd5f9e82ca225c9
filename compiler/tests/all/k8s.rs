//! The wasmCloud v2 `WorkloadDeployment` emitter (`etl::build::emit::k8s`), checked against the
//! v2 CRD.
//!
//! The oracle is the CRD itself: `tests/data/wasmcloud-v2-workloaddeployment.crd.yaml` is a
//! verbatim copy of `../shared/reference/wasmcloud-v2-workloaddeployment.crd.yaml` (the
//! `workloaddeployments.runtime.wasmcloud.dev` CRD of the wasmCloud v2 runtime operator,
//! controller-gen v0.16.4), copied here because CI has no `../shared`. Every emitted resource is
//! validated against its `openAPIV3Schema` with `jsonschema`, and, because a structural schema
//! prunes unknown fields where JSON Schema lets them through, walked against the schema's
//! `properties` so that no field the API server would drop goes unnoticed. The two CEL rules of
//! `hostInterfaces` and the Kubernetes name and label syntax are checked here too.

use crate::common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use etl::build::emit::{
    Application, ArtifactRef, Component, ComponentKind, Direction, Link, NamedConfig, Provider,
    Scale, Secret, SecretPolicy,
};
use etl::spec::model::{ProviderKind, Spread};
use serde_json::{Value, json};

const CRD: &str = include_str!("../data/wasmcloud-v2-workloaddeployment.crd.yaml");

struct Oracle {
    schema: Value,
    validator: jsonschema::Validator,
}

fn oracle() -> &'static Oracle {
    static ORACLE: OnceLock<Oracle> = OnceLock::new();
    ORACLE.get_or_init(|| {
        let crd: Value = serde_saphyr::from_str(CRD).expect("the CRD is YAML");
        assert_eq!(crd["spec"]["names"]["kind"], "WorkloadDeployment");
        assert_eq!(crd["spec"]["group"], "runtime.wasmcloud.dev");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        let schema = version["schema"]["openAPIV3Schema"].clone();
        let validator = jsonschema::draft7::new(&schema).expect("the CRD schema compiles");
        Oracle { schema, validator }
    })
}

/// Everything wrong with one resource, as readable lines; empty when it is valid.
fn problems(doc: &Value) -> Vec<String> {
    let oracle = oracle();
    let mut out: Vec<String> = oracle
        .validator
        .iter_errors(doc)
        .map(|e| format!("schema: {} at {}", e, e.instance_path().as_str()))
        .collect();
    unknown_fields(doc, &oracle.schema, "", &mut out);
    if doc["apiVersion"] != "runtime.wasmcloud.dev/v1alpha1" {
        out.push(format!("apiVersion {}", doc["apiVersion"]));
    }
    if doc["kind"] != "WorkloadDeployment" {
        out.push(format!("kind {}", doc["kind"]));
    }
    if doc["metadata"].get("namespace").is_some() {
        out.push("metadata.namespace is set".to_owned());
    }
    match doc["metadata"]["name"].as_str() {
        Some(name) if is_dns_subdomain(name) => {}
        other => out.push(format!(
            "metadata.name {other:?} is not a DNS-1123 subdomain"
        )),
    }
    for labels in [
        &doc["metadata"]["labels"],
        &doc["spec"]["template"]["labels"],
    ] {
        for (key, value) in labels.as_object().into_iter().flatten() {
            if !is_label_key(key) {
                out.push(format!("label key {key:?}"));
            }
            match value.as_str() {
                Some(v) if is_label_value(v) => {}
                _ => out.push(format!("label {key}: {value}")),
            }
        }
    }
    for key in doc["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if !is_label_key(key) {
            out.push(format!("annotation key {key:?}"));
        }
    }
    // The CEL rules of `hostInterfaces` (x-kubernetes-validations), which jsonschema ignores.
    let interfaces = doc["spec"]["template"]["spec"]["hostInterfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let mut seen = std::collections::BTreeSet::new();
    let mut unnamed = std::collections::BTreeSet::new();
    for i in &interfaces {
        let key = (
            field(i, "namespace"),
            field(i, "package"),
            field(i, "name"),
            field(i, "version"),
        );
        if !seen.insert(key.clone()) {
            out.push(format!("duplicate hostInterface {key:?}"));
        }
        if key.2.is_empty() && !unnamed.insert((key.0.clone(), key.1.clone())) {
            out.push(format!("two unnamed hostInterfaces of {}:{}", key.0, key.1));
        }
    }
    out
}

/// Fields of `value` the schema does not declare (a structural schema would prune them).
fn unknown_fields(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, child) in map {
                let here = format!("{path}/{key}");
                if let Some(s) = properties.and_then(|p| p.get(key)) {
                    unknown_fields(child, s, &here, out);
                } else if let Some(s) = additional.filter(|a| a.is_object()) {
                    unknown_fields(child, s, &here, out);
                } else if properties.is_some() || additional.is_some() {
                    out.push(format!("unknown field {here}"));
                }
                // An object schema with neither (`metadata`) keeps whatever it is given.
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    unknown_fields(item, s, &format!("{path}/{i}"), out);
                }
            }
        }
        _ => {}
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn is_label_value(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| alnum(b) || b == b'-' || b == b'_' || b == b'.')
            && s.bytes().next().is_some_and(alnum)
            && s.bytes().last().is_some_and(alnum))
}

fn is_label_key(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    (prefix.is_empty() || is_dns_subdomain(prefix)) && !name.is_empty() && is_label_value(name)
}

/// The resources of `app`, each checked by the oracle.
fn emit(app: &Application) -> Vec<Value> {
    let text = etl::build::emit::k8s::manifests(app);
    assert!(text.starts_with(etl::build::emit::k8s::HEADER), "{text}");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("the manifests are YAML");
    assert_eq!(
        docs.len(),
        text.matches("\n---\n").count(),
        "one document per `---`:\n{text}"
    );
    for doc in &docs {
        let problems = problems(doc);
        assert!(problems.is_empty(), "{problems:#?}\nin\n{text}");
    }
    let mut names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().expect("named"))
        .collect();
    names.sort_unstable();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "resource names are unique: {names:?}");
    docs
}

fn by_name<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no resource `{name}` in {docs:#?}"))
}

fn host_interface<'a>(doc: &'a Value, namespace: &str, package: &str) -> &'a Value {
    doc["spec"]["template"]["spec"]["hostInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["namespace"] == namespace && i["package"] == package)
        .unwrap_or_else(|| panic!("no {namespace}:{package} in {doc:#}"))
}

// ---- Applications, built by hand in the shape `emit::application` gives them. ----

fn config(name: &str, pairs: &[(&str, &str)]) -> Option<NamedConfig> {
    (!pairs.is_empty()).then(|| NamedConfig {
        name: name.to_owned(),
        properties: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

fn component(
    pipeline: &str,
    name: &str,
    kind: ComponentKind,
    scale: &Scale,
    config_pairs: &[(&str, &str)],
) -> Component {
    let repository = format!("{pipeline}-{name}");
    let digest = format!("sha256:{:0>64}", name.len());
    let digest_v2 = format!("sha256:{:2>64}", name.len());
    Component {
        name: name.to_owned(),
        kind,
        artifact: ArtifactRef {
            image: format!("registry.acme.example/etl/{repository}@{digest}"),
            repository: repository.clone(),
            manifest_digest: digest.clone(),
            component_digest: digest.clone(),
            imports: vec![
                "wasi:config/runtime@0.2.0-draft".to_owned(),
                "wasi:io/streams@0.2.6".to_owned(),
                "wasmcloud:messaging/consumer@0.2.0".to_owned(),
                "wasmcloud:messaging/types@0.2.0".to_owned(),
            ],
            customer: None,
        },
        artifact_v2: Some(ArtifactRef {
            image: format!("registry.acme.example/etl/v2/{repository}@{digest_v2}"),
            repository: format!("v2/{repository}"),
            manifest_digest: digest_v2.clone(),
            component_digest: digest_v2,
            imports: vec![
                "wasi:config/store@0.2.0-rc.1".to_owned(),
                "wasi:io/streams@0.2.6".to_owned(),
                "wasmcloud:messaging/consumer@0.2.0".to_owned(),
                "wasmcloud:messaging/types@0.2.0".to_owned(),
            ],
            customer: None,
        }),
        scale: scale.clone(),
        config: config(&format!("{pipeline}-{name}-runtime"), config_pairs),
        secrets: Vec::new(),
        grants: Vec::new(),
        egress: Vec::new(),
    }
}

fn provider(kind: ProviderKind, scale: &Scale) -> Provider {
    Provider {
        name: kind.name().to_owned(),
        kind,
        image: format!("wasmcloud+builtin://{}", kind.name()),
        config: None,
        scale: scale.clone(),
        shared: None,
    }
}

fn inbound(
    provider: ProviderKind,
    component: &str,
    (namespace, package, interface): (&str, &str, &str),
    source_config: Option<NamedConfig>,
) -> Link {
    Link {
        direction: Direction::ProviderToComponent,
        provider: provider.name().to_owned(),
        component: component.to_owned(),
        namespace: namespace.to_owned(),
        package: package.to_owned(),
        interfaces: vec![interface.to_owned()],
        name: Some(component.to_owned()),
        source_config,
        target_config: None,
        secrets: Vec::new(),
    }
}

fn outbound(
    provider: ProviderKind,
    component: &str,
    (namespace, package, interface): (&str, &str, &str),
    target_config: Option<NamedConfig>,
) -> Link {
    Link {
        direction: Direction::ComponentToProvider,
        provider: provider.name().to_owned(),
        component: component.to_owned(),
        namespace: namespace.to_owned(),
        package: package.to_owned(),
        interfaces: vec![interface.to_owned()],
        name: None,
        source_config: None,
        target_config,
        secrets: Vec::new(),
    }
}

const HTTP_IN: (&str, &str, &str) = ("wasi", "http", "incoming-handler");
const HTTP_OUT: (&str, &str, &str) = ("wasi", "http", "outgoing-handler");
const HANDLER: (&str, &str, &str) = ("wasmcloud", "messaging", "handler");
const CONSUMER: (&str, &str, &str) = ("wasmcloud", "messaging", "consumer");
const BLOBSTORE: (&str, &str, &str) = ("wasi", "blobstore", "blobstore");

fn prod_spread() -> Vec<Spread> {
    vec![
        Spread {
            name: "east".to_owned(),
            requirements: BTreeMap::from([("zone".to_owned(), "east".to_owned())]),
            weight: Some(60),
        },
        Spread {
            name: "west".to_owned(),
            requirements: BTreeMap::from([("zone".to_owned(), "west".to_owned())]),
            weight: Some(40),
        },
    ]
}

/// `examples/iot-sensors`' `sensor-ingest` in `prod`: an HTTP source into `parse`, then
/// `enrich` and `threshold-alert`, an HTTP sink `alerts` (with a secret) and a NATS sink
/// `archive`; 3 replicas spread 60/40 over two zones.
fn iot_sensors(scale: Scale) -> Application {
    let p = "sensor-ingest";
    let queue = |unit: &str| format!("etl.iot-sensors.{p}.{unit}");
    let out = |unit: &str| format!("etl.iot-sensors.{p}.out.{unit}");
    let dlq = |unit: &str| format!("etl.iot-sensors.{p}.dlq.{unit}");
    let subs = |from: &str, unit: &str| format!("{}|{}", out(from), queue(unit));
    let step = |name: &str, extra: &[(&str, &str)]| {
        let (o, d) = (out(name), dlq(name));
        let mut pairs = vec![
            ("etl.out.subjects", o.as_str()),
            ("etl.out.dead-letter", d.as_str()),
        ];
        pairs.extend_from_slice(extra);
        component(p, name, ComponentKind::Step, &scale, &pairs)
    };
    let mut alerts = component(
        p,
        "alerts",
        ComponentKind::Sink,
        &scale,
        &[("etl.out.url", "https://alerts.acme.example/hook")],
    );
    alerts.secrets = vec![Secret {
        name: "authorization".to_owned(),
        key: "alerts-webhook-token".to_owned(),
    }];
    alerts.artifact_v2.as_mut().unwrap().imports = vec![
        "wasi:config/store@0.2.0-rc.1".to_owned(),
        "wasi:http/outgoing-handler@0.2.6".to_owned(),
        "wasi:http/types@0.2.6".to_owned(),
    ];
    let archive = component(
        p,
        "archive",
        ComponentKind::Sink,
        &scale,
        &[("etl.out.subjects", "iot.sensors.archive")],
    );
    let nats_in = |unit: &str, from: &str| {
        inbound(
            ProviderKind::MessagingNats,
            unit,
            HANDLER,
            config(
                &format!("{p}-{unit}-nats-in-0123456789ab"),
                &[("subscriptions", &subs(from, unit))],
            ),
        )
    };
    let nats_out = |unit: &str| outbound(ProviderKind::MessagingNats, unit, CONSUMER, None);
    Application {
        name: p.to_owned(),
        project: "iot-sensors".to_owned(),
        environment: "prod".to_owned(),
        lattice: "acme-iot-prod".to_owned(),
        description: Some(
            "Temperature readings POSTed by plant-floor gateways: every parsed reading is \
             archived on NATS; readings at or above the environment's threshold are enriched \
             with the site and POSTed to the alerting webhook."
                .to_owned(),
        ),
        version: "sha-0123456789ab".to_owned(),
        components: vec![
            step("parse", &[("etl.in.headers", "content-type")]),
            step("enrich", &[("step.site", "plant-a")]),
            step("threshold-alert", &[("step.threshold", "80")]),
            alerts,
            archive,
        ],
        providers: vec![
            provider(ProviderKind::HttpServer, &scale),
            provider(ProviderKind::HttpClient, &scale),
            provider(ProviderKind::MessagingNats, &scale),
        ],
        links: vec![
            inbound(
                ProviderKind::HttpServer,
                "parse",
                HTTP_IN,
                config(
                    &format!("{p}-parse-http-in-0123456789ab"),
                    &[("path", "/sensors")],
                ),
            ),
            nats_out("parse"),
            nats_in("enrich", "parse"),
            nats_out("enrich"),
            nats_in("threshold-alert", "enrich"),
            nats_out("threshold-alert"),
            nats_in("alerts", "threshold-alert"),
            outbound(ProviderKind::HttpClient, "alerts", HTTP_OUT, None),
            nats_in("archive", "parse"),
            nats_out("archive"),
        ],
        secret_policy: Some(SecretPolicy {
            name: "etl-secrets".to_owned(),
            backend: "nats-kv".to_owned(),
        }),
        max_in_flight: Some(13),
        shared: false,
        nodes: Vec::new(),
        jetstream: None,
    }
}

fn prod_scale() -> Scale {
    Scale {
        replicas: 3,
        spread: prod_spread(),
    }
}

fn one_replica() -> Scale {
    Scale {
        replicas: 1,
        spread: Vec::new(),
    }
}

// ---- The oracle can fail. ----

/// A change that breaks a valid resource.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn the_oracle_refuses_broken_resources() {
    let docs = emit(&iot_sensors(one_replica()));
    let good = &docs[0];
    assert!(problems(good).is_empty());
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut doc = good.clone();
        edit(&mut doc);
        problems(&doc)
    };
    let cases: Vec<(&str, Edit)> = vec![
        (
            "unknown spec field",
            Box::new(|d| d["spec"]["template"]["spec"]["hostSelectors"] = json!({})),
        ),
        (
            "unknown component field",
            Box::new(|d| d["spec"]["template"]["spec"]["components"][0]["config"] = json!({})),
        ),
        (
            "replicas as text",
            Box::new(|d| d["spec"]["replicas"] = json!("3")),
        ),
        (
            "config value not a string",
            Box::new(|d| {
                d["spec"]["template"]["spec"]["components"][0]["localResources"]["config"]["x"] =
                    json!(1)
            }),
        ),
        (
            "component without image",
            Box::new(|d| {
                d["spec"]["template"]["spec"]["components"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("image");
            }),
        ),
        (
            "no template",
            Box::new(|d| {
                d["spec"].as_object_mut().unwrap().remove("template");
            }),
        ),
        (
            "interface without interfaces",
            Box::new(|d| {
                d["spec"]["template"]["spec"]["hostInterfaces"][0]["interfaces"] = json!([])
            }),
        ),
        (
            "bad interface name",
            Box::new(|d| {
                d["spec"]["template"]["spec"]["hostInterfaces"][0]["name"] = json!("Not_OK")
            }),
        ),
        (
            "two unnamed entries of a package",
            Box::new(|d| {
                let first = d["spec"]["template"]["spec"]["hostInterfaces"][0].clone();
                let mut second = first.clone();
                second["config"] = json!({"other": "x"});
                second["version"] = json!("9.9.9");
                d["spec"]["template"]["spec"]["hostInterfaces"] = json!([first, second]);
            }),
        ),
        (
            "wrong apiVersion",
            Box::new(|d| d["apiVersion"] = json!("runtime.wasmcloud.dev/v1")),
        ),
        ("wrong kind", Box::new(|d| d["kind"] = json!("Workload"))),
        (
            "name with upper case",
            Box::new(|d| d["metadata"]["name"] = json!("Sensor-Ingest")),
        ),
        (
            "namespace",
            Box::new(|d| d["metadata"]["namespace"] = json!("default")),
        ),
        (
            "label value too long",
            Box::new(|d| d["metadata"]["labels"]["x"] = json!("a".repeat(64))),
        ),
        (
            "template label value with a space",
            Box::new(|d| d["spec"]["template"]["labels"]["x"] = json!("a b")),
        ),
    ];
    for (what, edit) in cases {
        assert!(
            !broken(&*edit).is_empty(),
            "the oracle accepts a resource with {what}"
        );
    }
}

// ---- Cases. ----

#[test]
fn iot_sensors_has_one_resource_per_component() {
    let app = iot_sensors(one_replica());
    let docs = emit(&app);
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "sensor-ingest-parse",
            "sensor-ingest-enrich",
            "sensor-ingest-threshold-alert",
            "sensor-ingest-alerts",
            "sensor-ingest-archive"
        ]
    );
    for (doc, c) in docs.iter().zip(&app.components) {
        assert_eq!(doc["spec"]["replicas"], 1);
        let spec = &doc["spec"]["template"]["spec"];
        assert!(spec.get("hostSelector").is_none());
        assert_eq!(spec["components"].as_array().unwrap().len(), 1);
        let wc = &spec["components"][0];
        assert_eq!(wc["name"], c.name.as_str());
        assert_eq!(wc["image"], c.artifact_v2.as_ref().unwrap().image.as_str());
        assert_eq!(
            wc["localResources"]["config"],
            serde_json::to_value(&c.config.as_ref().unwrap().properties).unwrap()
        );
        let labels = json!({
            "app.kubernetes.io/name": "sensor-ingest",
            "app.kubernetes.io/component": c.name,
            "app.kubernetes.io/part-of": "iot-sensors",
            "app.kubernetes.io/managed-by": "etl",
            "etl.dev/environment": "prod",
        });
        assert_eq!(doc["metadata"]["labels"], labels);
        assert_eq!(doc["spec"]["template"]["labels"], labels);
        assert_eq!(
            doc["metadata"]["annotations"]["etl.dev/version"],
            "sha-0123456789ab"
        );
        assert_eq!(
            doc["metadata"]["annotations"]["etl.dev/description"],
            app.description.as_deref().unwrap()
        );
        // The version is not in the template: a change to one component must not roll the others.
        assert!(doc["spec"]["template"].get("annotations").is_none());
    }

    // HTTP in: routed by host name, with the 1.x path dropped; records out on NATS.
    let parse = by_name(&docs, "sensor-ingest-parse");
    let http = host_interface(parse, "wasi", "http");
    assert_eq!(http["interfaces"], json!(["incoming-handler"]));
    assert_eq!(http["config"], json!({"host": "sensor-ingest-parse"}));
    assert!(http.get("version").is_none());
    let messaging = host_interface(parse, "wasmcloud", "messaging");
    assert_eq!(messaging["interfaces"], json!(["consumer"]));
    assert_eq!(messaging["version"], "0.2.0");
    assert!(messaging.get("config").is_none());
    // The config interface as v2 hosts serve it, which the v2 artifact imports.
    let wasi_config = host_interface(parse, "wasi", "config");
    assert_eq!(wasi_config["interfaces"], json!(["store"]));
    assert_eq!(wasi_config["version"], "0.2.0-rc.1");

    // A step fed by a step: its subjects and the step's queue group as `consumer_group`.
    let enrich = by_name(&docs, "sensor-ingest-enrich");
    let messaging = host_interface(enrich, "wasmcloud", "messaging");
    assert_eq!(messaging["interfaces"], json!(["consumer", "handler"]));
    assert_eq!(
        messaging["config"],
        json!({
            "subscriptions": "etl.iot-sensors.sensor-ingest.out.parse",
            "consumer_group": "etl.iot-sensors.sensor-ingest.enrich",
            "max_in_flight": "13",
        })
    );
    assert_eq!(
        enrich["spec"]["template"]["spec"]["hostInterfaces"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The HTTP sink: may reach its URL's host only; its secret comes from a Kubernetes Secret.
    let alerts = by_name(&docs, "sensor-ingest-alerts");
    assert_eq!(
        alerts["spec"]["template"]["spec"]["components"][0]["localResources"]["allowedHosts"],
        json!(["https://alerts.acme.example"])
    );
    let http = host_interface(alerts, "wasi", "http");
    assert_eq!(http["interfaces"], json!(["outgoing-handler"]));
    assert!(
        http.get("config").is_none(),
        "no host for an outgoing-only entry"
    );
    // `out-http` reads the token itself, from the config store the Secret is layered into;
    // the host's HTTP client reads nothing of it.
    assert!(http.get("secretFrom").is_none());
    assert_eq!(
        host_interface(alerts, "wasi", "config")["secretFrom"],
        json!([{"name": "sensor-ingest-alerts-secrets"}])
    );
    let messaging = host_interface(alerts, "wasmcloud", "messaging");
    assert_eq!(messaging["interfaces"], json!(["handler"]));
    assert_eq!(messaging["config"]["max_in_flight"], "13");
    assert!(messaging.get("secretFrom").is_none());
    assert_eq!(
        alerts["metadata"]["annotations"]["etl.dev/secrets"],
        r#"{"authorization":"alerts-webhook-token"}"#
    );
    assert_eq!(
        alerts["metadata"]["annotations"]["etl.dev/providers"],
        "http-client,messaging-nats"
    );
    // Only the HTTP sink may make requests.
    for doc in &docs {
        let lr = &doc["spec"]["template"]["spec"]["components"][0]["localResources"];
        assert_eq!(lr.get("allowedHosts").is_some(), doc == alerts);
    }
}

#[test]
fn spread_sixty_forty_over_three_replicas_is_two_and_one() {
    let docs = emit(&iot_sensors(prod_scale()));
    assert_eq!(docs.len(), 10, "two shares for each of five components");
    for component in ["parse", "enrich", "threshold-alert", "alerts", "archive"] {
        let east = by_name(&docs, &format!("sensor-ingest-{component}-east"));
        let west = by_name(&docs, &format!("sensor-ingest-{component}-west"));
        assert_eq!(east["spec"]["replicas"], 2);
        assert_eq!(west["spec"]["replicas"], 1);
        assert_eq!(
            east["spec"]["template"]["spec"]["hostSelector"],
            json!({"zone": "east"})
        );
        assert_eq!(
            west["spec"]["template"]["spec"]["hostSelector"],
            json!({"zone": "west"})
        );
        for (doc, share) in [(east, "east"), (west, "west")] {
            assert_eq!(doc["metadata"]["labels"]["etl.dev/spread"], share);
            assert_eq!(doc["spec"]["template"]["labels"]["etl.dev/spread"], share);
            assert_eq!(doc["metadata"]["annotations"]["etl.dev/spread"], share);
        }
        // Both shares are one consumer group and one host name.
        let (mut e, mut w) = (east.clone(), west.clone());
        for d in [&mut e, &mut w] {
            d["spec"]["template"]["spec"]
                .as_object_mut()
                .unwrap()
                .remove("hostSelector");
        }
        assert_eq!(
            e["spec"]["template"]["spec"], w["spec"]["template"]["spec"],
            "the shares of `{component}` differ only in placement"
        );
    }
}

#[test]
fn spread_without_weights_splits_evenly_earlier_shares_first() {
    let mut spread = prod_spread();
    spread.iter_mut().for_each(|s| s.weight = None);
    spread.push(Spread {
        name: "north".to_owned(),
        requirements: BTreeMap::from([("zone".to_owned(), "north".to_owned())]),
        weight: None,
    });
    let docs = emit(&iot_sensors(Scale {
        replicas: 5,
        spread,
    }));
    let replicas = |name: &str| by_name(&docs, name)["spec"]["replicas"].as_u64().unwrap();
    assert_eq!(replicas("sensor-ingest-parse-east"), 2);
    assert_eq!(replicas("sensor-ingest-parse-west"), 2);
    assert_eq!(replicas("sensor-ingest-parse-north"), 1);
}

#[test]
fn a_share_without_replicas_is_left_out() {
    let mut spread = prod_spread();
    spread[0].weight = Some(0);
    spread[1].weight = None;
    let docs = emit(&iot_sensors(Scale {
        replicas: 2,
        spread: spread.clone(),
    }));
    assert_eq!(docs.len(), 5);
    assert!(docs.iter().all(|d| d["spec"]["replicas"] == 2
        && d["spec"]["template"]["spec"]["hostSelector"] == json!({"zone": "west"})));

    // One replica over three equal shares: the first share only.
    spread[0].weight = Some(1);
    spread[1].weight = Some(1);
    let docs = emit(&iot_sensors(Scale {
        replicas: 1,
        spread,
    }));
    assert_eq!(docs.len(), 5);
    assert!(
        docs.iter()
            .all(|d| d["metadata"]["name"].as_str().unwrap().ends_with("-east"))
    );
}

#[test]
fn spread_names_that_are_not_dns_labels_still_make_valid_names() {
    let spread = vec![
        Spread {
            name: "EU_West".to_owned(),
            requirements: BTreeMap::from([("zone".to_owned(), "eu-west".to_owned())]),
            weight: None,
        },
        Spread {
            name: "eu_west".to_owned(),
            requirements: BTreeMap::from([("zone".to_owned(), "eu-west-2".to_owned())]),
            weight: None,
        },
        Spread {
            name: "X".repeat(100),
            requirements: BTreeMap::new(),
            weight: None,
        },
    ];
    // `emit` checks names and labels, and that the names are unique.
    let docs = emit(&iot_sensors(Scale {
        replicas: 3,
        spread,
    }));
    assert_eq!(docs.len(), 15);
    let parse: Vec<&Value> = docs
        .iter()
        .filter(|d| d["metadata"]["labels"]["app.kubernetes.io/component"] == "parse")
        .collect();
    assert_eq!(
        parse[0]["metadata"]["annotations"]["etl.dev/spread"],
        "EU_West"
    );
    assert!(
        parse[0]["metadata"]["labels"]["etl.dev/spread"]
            .as_str()
            .unwrap()
            .starts_with("eu-west-")
    );
    assert!(
        parse
            .iter()
            .all(|d| is_dns_label(d["metadata"]["labels"]["etl.dev/spread"].as_str().unwrap()))
    );
}

#[test]
fn labels_the_syntax_refuses_are_left_out() {
    let mut app = iot_sensors(one_replica());
    app.project = "_Acme_".to_owned();
    app.environment = "Prod_EU".to_owned();
    let docs = emit(&app);
    let labels = docs[0]["metadata"]["labels"].as_object().unwrap();
    assert!(!labels.contains_key("app.kubernetes.io/part-of"));
    assert_eq!(labels["etl.dev/environment"], "Prod_EU");
}

#[test]
fn kafka_source_and_sink_share_the_one_messaging_entry() {
    let p = "orders";
    let scale = one_replica();
    let mut sink = component(p, "to-kafka", ComponentKind::Sink, &scale, &[]);
    sink.artifact_v2.as_mut().unwrap().imports =
        vec!["wasmcloud:messaging/consumer@0.2.0".to_owned()];
    let app = Application {
        name: p.to_owned(),
        project: "shop".to_owned(),
        environment: "dev".to_owned(),
        lattice: "default".to_owned(),
        description: None,
        version: "sha-000000000000".to_owned(),
        components: vec![
            component(
                p,
                "clean",
                ComponentKind::Step,
                &scale,
                &[("etl.out.subjects", "etl.shop.orders.out.clean")],
            ),
            sink,
        ],
        providers: vec![
            provider(ProviderKind::MessagingNats, &scale),
            provider(ProviderKind::MessagingKafka, &scale),
        ],
        links: vec![
            inbound(
                ProviderKind::MessagingKafka,
                "clean",
                HANDLER,
                config(
                    "orders-clean-kafka-in-000000000000",
                    &[
                        ("topic", "orders.raw"),
                        ("consumer_group", "etl.shop.orders.clean"),
                        ("hosts", "kafka:9092"),
                    ],
                ),
            ),
            outbound(ProviderKind::MessagingNats, "clean", CONSUMER, None),
            inbound(
                ProviderKind::MessagingNats,
                "to-kafka",
                HANDLER,
                config(
                    "orders-to-kafka-nats-in-000000000000",
                    &[(
                        "subscriptions",
                        "etl.shop.orders.out.clean|etl.shop.orders.to-kafka",
                    )],
                ),
            ),
            outbound(
                ProviderKind::MessagingKafka,
                "to-kafka",
                CONSUMER,
                config(
                    "orders-to-kafka-kafka-out-000000000000",
                    &[("topic", "orders.clean"), ("hosts", "kafka:9092")],
                ),
            ),
        ],
        secret_policy: None,
        max_in_flight: None,
        shared: false,
        nodes: Vec::new(),
        jetstream: None,
    };
    let docs = emit(&app);
    assert_eq!(docs.len(), 2);
    let clean = by_name(&docs, "orders-clean");
    let entries = clean["spec"]["template"]["spec"]["hostInterfaces"]
        .as_array()
        .unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["package"] == "messaging")
            .count(),
        1
    );
    let messaging = host_interface(clean, "wasmcloud", "messaging");
    assert_eq!(messaging["interfaces"], json!(["consumer", "handler"]));
    assert_eq!(
        messaging["config"],
        json!({"topic": "orders.raw", "consumer_group": "etl.shop.orders.clean", "hosts": "kafka:9092"})
    );
    assert_eq!(
        clean["metadata"]["annotations"]["etl.dev/providers"],
        "messaging-kafka,messaging-nats"
    );
    let to_kafka = by_name(&docs, "orders-to-kafka");
    let messaging = host_interface(to_kafka, "wasmcloud", "messaging");
    assert_eq!(
        messaging["config"],
        json!({
            "subscriptions": "etl.shop.orders.out.clean",
            "consumer_group": "etl.shop.orders.to-kafka",
            "topic": "orders.clean",
            "hosts": "kafka:9092",
        })
    );
    // Neither imports `wasi:config` nor has runtime configuration beyond its own.
    assert!(
        to_kafka["spec"]["template"]["spec"]["components"][0]
            .get("localResources")
            .is_none()
    );
    assert_eq!(
        to_kafka["spec"]["template"]["spec"]["hostInterfaces"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn an_s3_sink_may_use_its_bucket() {
    let p = "archive";
    let scale = one_replica();
    let mut sink = component(
        p,
        "to-s3",
        ComponentKind::Sink,
        &scale,
        &[
            ("etl.out.container", "acme-archive"),
            ("etl.out.key", "{key}.json"),
        ],
    );
    sink.artifact_v2.as_mut().unwrap().imports = vec![
        "wasi:blobstore/blobstore@0.2.0-draft".to_owned(),
        "wasi:blobstore/container@0.2.0-draft".to_owned(),
        "wasi:blobstore/types@0.2.0-draft".to_owned(),
        "wasi:config/store@0.2.0-rc.1".to_owned(),
    ];
    let app = Application {
        name: p.to_owned(),
        project: "acme".to_owned(),
        environment: "prod".to_owned(),
        lattice: "default".to_owned(),
        description: None,
        version: "sha-000000000000".to_owned(),
        components: vec![sink],
        providers: vec![provider(ProviderKind::BlobstoreS3, &scale)],
        links: vec![
            inbound(
                ProviderKind::MessagingNats,
                "to-s3",
                HANDLER,
                config(
                    "archive-to-s3-nats-in-000000000000",
                    &[(
                        "subscriptions",
                        "etl.acme.archive.out.x|etl.acme.archive.to-s3",
                    )],
                ),
            ),
            Link {
                // The S3 connector's credentials: the provider's, on its link.
                secrets: vec![
                    Secret {
                        name: "access_key_id".to_owned(),
                        key: "s3/key".to_owned(),
                    },
                    Secret {
                        name: "secret_access_key".to_owned(),
                        key: "s3/secret".to_owned(),
                    },
                ],
                ..outbound(
                    ProviderKind::BlobstoreS3,
                    "to-s3",
                    BLOBSTORE,
                    config(
                        "archive-to-s3-s3-out-000000000000",
                        &[("region", "eu-west-1")],
                    ),
                )
            },
        ],
        secret_policy: Some(SecretPolicy {
            name: "etl-secrets".to_owned(),
            backend: "nats-kv".to_owned(),
        }),
        max_in_flight: None,
        shared: false,
        nodes: Vec::new(),
        jetstream: None,
    };
    let docs = emit(&app);
    let doc = by_name(&docs, "archive-to-s3");
    let blobstore = host_interface(doc, "wasi", "blobstore");
    assert_eq!(blobstore["interfaces"], json!(["blobstore"]));
    assert_eq!(
        blobstore["config"],
        json!({"buckets": "acme-archive", "region": "eu-west-1"})
    );
    assert!(blobstore.get("version").is_none());
    assert_eq!(
        blobstore["secretFrom"],
        json!([{"name": "archive-to-s3-secrets"}])
    );
    // The component reads no secret itself: none in its config store.
    assert!(
        host_interface(doc, "wasi", "config")
            .get("secretFrom")
            .is_none()
    );
    assert_eq!(
        doc["metadata"]["annotations"]["etl.dev/secrets"],
        r#"{"access_key_id":"s3/key","secret_access_key":"s3/secret"}"#
    );
    assert!(
        doc["spec"]["template"]["spec"]["components"][0]["localResources"]
            .get("allowedHosts")
            .is_none()
    );
}

#[test]
fn an_http_source_address_and_host_setting() {
    let mut app = iot_sensors(one_replica());
    app.links[0].source_config = config(
        "sensor-ingest-parse-http-in-0123456789ab",
        &[("address", "0.0.0.0:8080"), ("host", "ingest.acme.example")],
    );
    let docs = emit(&app);
    let http = host_interface(by_name(&docs, "sensor-ingest-parse"), "wasi", "http");
    assert_eq!(http["config"], json!({"host": "ingest.acme.example"}));
}

#[test]
fn an_http_sink_url_the_egress_list_cannot_hold_allows_nothing() {
    let mut app = iot_sensors(one_replica());
    let alerts = app
        .components
        .iter_mut()
        .find(|c| c.name == "alerts")
        .unwrap();
    alerts.config.as_mut().unwrap().properties.insert(
        "etl.out.url".to_owned(),
        "http://[::1]:8080/hook".to_owned(),
    );
    let docs = emit(&app);
    let lr = &by_name(&docs, "sensor-ingest-alerts")["spec"]["template"]["spec"]["components"][0]["localResources"];
    assert!(lr.get("allowedHosts").is_none());
    assert_eq!(lr["config"]["etl.out.url"], "http://[::1]:8080/hook");
}

/// Those a YAML 1.1 reader (such as `kubectl`'s) would not read as the same string when plain.
const YAML11_AMBIGUOUS: &[&str] = &[
    "yes",
    "no",
    "on",
    "off",
    "y",
    "true",
    "False",
    "null",
    "~",
    "012",
    "0x1F",
    "1e3",
    ".inf",
    "-.NaN",
    "1_000",
    "1:20",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
];

#[test]
fn values_with_yaml_syntax_come_back_literal() {
    let mut app = iot_sensors(one_replica());
    let pairs: BTreeMap<String, String> = common::AWKWARD
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("step.k{i:02}"), (*v).to_owned()))
        .collect();
    app.components[1]
        .config
        .as_mut()
        .unwrap()
        .properties
        .extend(pairs.clone());
    app.description = Some(common::AWKWARD.join(" | "));
    app.links[2]
        .source_config
        .as_mut()
        .unwrap()
        .properties
        .extend(pairs.clone());
    let text = etl::build::emit::k8s::manifests(&app);
    let docs = emit(&app);
    let enrich = by_name(&docs, "sensor-ingest-enrich");
    let config = &enrich["spec"]["template"]["spec"]["components"][0]["localResources"]["config"];
    for (key, value) in &pairs {
        assert_eq!(config[key], value.as_str(), "{key}");
        assert_eq!(
            host_interface(enrich, "wasmcloud", "messaging")["config"][key],
            value.as_str(),
            "{key}"
        );
    }
    assert_eq!(
        enrich["metadata"]["annotations"]["etl.dev/description"],
        common::AWKWARD.join(" | ")
    );
    // Quoted in the text, so that a YAML 1.1 reader agrees.
    for (i, value) in common::AWKWARD.iter().enumerate() {
        if !YAML11_AMBIGUOUS.contains(value) {
            continue;
        }
        let key = format!("step.k{i:02}:");
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&key))
            .unwrap_or_else(|| panic!("no line for {key}"));
        let rest = line.trim_start()[key.len()..].trim_start();
        assert!(
            rest.starts_with('"') || rest.starts_with('\''),
            "{value:?} is written plain: {line:?}"
        );
    }
}

#[test]
fn an_application_without_components_is_just_the_header() {
    let mut app = iot_sensors(one_replica());
    app.components.clear();
    app.links.clear();
    assert_eq!(
        etl::build::emit::k8s::manifests(&app),
        etl::build::emit::k8s::HEADER
    );
}

#[test]
fn the_iot_sensors_manifests() {
    insta::assert_snapshot!(etl::build::emit::k8s::manifests(&iot_sensors(prod_scale())));
}

/// `examples/iot-sensors` compiled: every environment's `k8s/` manifests are what the emitter
/// writes for its application, and pass the oracle.
#[test]
fn the_example_in_every_environment() {
    let (plan, files) = common::compiled_example();
    for (env, apps) in &plan.deployments {
        for (pipeline, app) in apps {
            let text = etl::build::emit::k8s::manifests(app);
            let written = &files[&format!("{env}/k8s/{pipeline}.yaml")];
            assert_eq!(std::str::from_utf8(written).unwrap(), text, "{env}");
            let docs = emit(app);
            for c in &app.components {
                let shares: Vec<&Value> = docs
                    .iter()
                    .filter(|d| {
                        d["metadata"]["labels"]["app.kubernetes.io/component"] == c.name.as_str()
                    })
                    .collect();
                let replicas: u64 = shares
                    .iter()
                    .map(|d| d["spec"]["replicas"].as_u64().unwrap())
                    .sum();
                assert_eq!(replicas, u64::from(c.scale.replicas), "{env}/{}", c.name);
                for d in &shares {
                    let wc = &d["spec"]["template"]["spec"]["components"][0];
                    let v2 = c.artifact_v2.as_ref().expect("a v2 artifact");
                    assert_eq!(wc["image"], v2.image.as_str());
                    assert!(v2.image.contains("/v2/") && v2.image.contains("@sha256:"));
                    assert_eq!(
                        d["metadata"]["annotations"]["etl.dev/version"],
                        app.version.as_str()
                    );
                    assert_eq!(d["metadata"]["labels"]["etl.dev/environment"], env.as_str());
                }
            }
        }
    }
    let prod = etl::build::emit::k8s::manifests(&plan.deployments["prod"]["sensor-ingest"]);
    let prod: Vec<Value> = serde_saphyr::from_multiple(&prod).unwrap();
    assert_eq!(
        by_name(&prod, "sensor-ingest-parse-east")["spec"]["replicas"],
        2
    );
    assert_eq!(
        by_name(&prod, "sensor-ingest-parse-west")["spec"]["replicas"],
        1
    );
    let dev = etl::build::emit::k8s::manifests(&plan.deployments["dev"]["sensor-ingest"]);
    let dev: Vec<Value> = serde_saphyr::from_multiple(&dev).unwrap();
    let alerts = by_name(&dev, "sensor-ingest-alerts");
    assert_eq!(
        alerts["spec"]["template"]["spec"]["components"][0]["localResources"]["allowedHosts"],
        json!(["http://alerts.dev.acme.example"])
    );
    assert_eq!(
        host_interface(alerts, "wasi", "config")["secretFrom"],
        json!([{"name": "sensor-ingest-alerts-secrets"}])
    );
    assert!(
        host_interface(alerts, "wasi", "http")
            .get("secretFrom")
            .is_none()
    );
    let parse = by_name(&dev, "sensor-ingest-parse");
    assert_eq!(
        host_interface(parse, "wasi", "http")["config"],
        json!({"host": "sensor-ingest-parse"})
    );
    // The HTTP-fed step also takes its replay subject's messages; the HTTP sink publishes its
    // reports through the host's messaging too (`consumer`), and is not replayed into.
    let max_in_flight = plan.deployments["dev"]["sensor-ingest"]
        .max_in_flight
        .unwrap()
        .to_string();
    assert_eq!(
        host_interface(parse, "wasmcloud", "messaging"),
        &json!({
            "namespace": "wasmcloud",
            "package": "messaging",
            "version": "0.2.0",
            "interfaces": ["consumer", "handler"],
            "config": {
                "consumer_group": "etl.iot-sensors.sensor-ingest.parse",
                "max_in_flight": max_in_flight,
                "subscriptions": "etl.iot-sensors.sensor-ingest.replay.parse",
            },
        })
    );
    assert_eq!(
        host_interface(alerts, "wasmcloud", "messaging"),
        &json!({
            "namespace": "wasmcloud",
            "package": "messaging",
            "version": "0.2.0",
            "interfaces": ["consumer", "handler"],
            "config": {
                "consumer_group": "etl.iot-sensors.sensor-ingest.alerts",
                "max_in_flight": max_in_flight,
                // Delivery is at least once: what its JetStream consumer delivers.
                "subscriptions": "etl.iot-sensors.sensor-ingest.deliver.alerts",
            },
        })
    );
    assert_eq!(
        alerts["metadata"]["annotations"]["etl.dev/providers"],
        "http-client,messaging-nats"
    );
}

#[test]
fn sub_pipelines_subscribe_to_what_they_read_in_their_own_consumer_group() {
    let apps = common::applications(&common::sub_pipelines());
    for (env, trail) in [
        ("dev", "relay.dev.audit.trail"),
        ("staging", "relay.staging.audit.trail"),
    ] {
        let messaging = |app: &str, resource: &str| {
            let docs = emit(&apps[env][app]);
            host_interface(by_name(&docs, resource), "wasmcloud", "messaging")["config"].clone()
        };
        let archive = messaging("orders", "orders-archive");
        let audit = messaging("audit", "audit-audit");
        // At least once: each reads `parse` through its own consumer of `orders`' stream,
        // delivering to its own subject, which its group is the consumer's `deliver_group` of.
        assert_eq!(archive["subscriptions"], "etl.relay.orders.deliver.archive");
        // A step also listens on its replay subject, in its own group.
        assert_eq!(
            audit["subscriptions"],
            "etl.relay.audit.deliver.audit,etl.relay.audit.replay.audit"
        );
        assert_eq!(audit["consumer_group"], "etl.relay.audit.audit");
        assert_ne!(archive["consumer_group"], audit["consumer_group"]);
        assert_eq!(
            messaging("replay", "replay-replay")["subscriptions"],
            format!("{trail},etl.relay.replay.replay.replay")
        );
    }
}

/// `tests/fixtures/egress` compiled: the step that calls out may reach exactly the hosts its
/// grant names (`allowedHosts`, forms the CRD accepts), through the `wasi:http` entry's
/// `outgoing-handler`; the sink after it may reach none.
#[test]
fn a_step_that_calls_out_may_reach_the_hosts_of_its_grant() {
    let (plan, files) = common::compiled_egress();
    for (env, apps) in &plan.deployments {
        let app = &apps["orders"];
        let text = etl::build::emit::k8s::manifests(app);
        assert_eq!(
            std::str::from_utf8(&files[&format!("{env}/k8s/orders.yaml")]).unwrap(),
            text
        );
        let docs = emit(app);
        let price = by_name(&docs, "orders-price");
        let resources = &price["spec"]["template"]["spec"]["components"][0]["localResources"];
        assert_eq!(
            resources["allowedHosts"],
            json!([
                "api.acme.example",
                "https://x.example:8443",
                "*.acme.example"
            ]),
            "{env}"
        );
        assert_eq!(
            resources["config"]["etl.egress.hosts"],
            "api.acme.example,https://x.example:8443,*.acme.example"
        );
        let http = host_interface(price, "wasi", "http");
        assert_eq!(
            http["interfaces"],
            json!(["incoming-handler", "outgoing-handler"])
        );
        let priced = by_name(&docs, "orders-priced");
        let resources = &priced["spec"]["template"]["spec"]["components"][0]["localResources"];
        assert!(resources.get("allowedHosts").is_none(), "{resources:#}");
    }
    insta::assert_snapshot!(
        "orders_dev",
        common::masked(&etl::build::emit::k8s::manifests(
            &plan.deployments["dev"]["orders"]
        ))
    );
}

#[test]
fn secrets_go_where_their_readers_read_them() {
    let dir = tempfile::tempdir().unwrap();
    common::with_secrets(dir.path());
    let build = etl::build::build(dir.path(), None, &Default::default()).unwrap();
    assert!(
        !build.validation.has_errors(),
        "{:#?}",
        build.validation.diagnostics
    );
    let plan = build.plan.expect("a plan");
    let docs = emit(&plan.deployments["dev"]["sensor-ingest"]);

    // The HTTP sink reads its header secrets itself: its Secret on the config entry only.
    let alerts = by_name(&docs, "sensor-ingest-alerts");
    let secret = json!([{"name": "sensor-ingest-alerts-secrets"}]);
    assert_eq!(
        host_interface(alerts, "wasi", "config")["secretFrom"],
        secret
    );
    assert!(
        host_interface(alerts, "wasi", "http")
            .get("secretFrom")
            .is_none()
    );
    assert_eq!(
        alerts["metadata"]["annotations"]["etl.dev/secrets"],
        r#"{"authorization":"alerts-webhook-token","header.X-Api-Key":"alerts-api-key"}"#
    );
    let config = &alerts["spec"]["template"]["spec"]["components"][0]["localResources"]["config"];
    assert_eq!(config["etl.secrets"], "authorization,header.X-Api-Key");
    assert_eq!(config["etl.out.header.X-Site"], "dev-bench");
    // The step's secret: also in its config store, where its customer's settings are.
    let enrich = by_name(&docs, "sensor-ingest-enrich");
    assert_eq!(
        host_interface(enrich, "wasi", "config")["secretFrom"],
        json!([{"name": "sensor-ingest-enrich-secrets"}])
    );
    assert_eq!(
        enrich["spec"]["template"]["spec"]["components"][0]["localResources"]["config"]["etl.secrets"],
        "step.token"
    );
    // The Kafka sink's password is its provider's: on the messaging entry, not in the config
    // store (the component never reads it).
    let kafka = by_name(&docs, "sensor-ingest-to-kafka");
    assert_eq!(
        host_interface(kafka, "wasmcloud", "messaging")["secretFrom"],
        json!([{"name": "sensor-ingest-to-kafka-secrets"}])
    );
    assert!(
        host_interface(kafka, "wasi", "config")
            .get("secretFrom")
            .is_none()
    );
    assert_eq!(
        kafka["metadata"]["annotations"]["etl.dev/secrets"],
        r#"{"sasl_password":"kafka-password"}"#
    );
    // Steps with no secrets have no Secret.
    let parse = by_name(&docs, "sensor-ingest-parse");
    assert!(
        parse["metadata"]["annotations"]
            .get("etl.dev/secrets")
            .is_none()
    );
    assert!(
        host_interface(parse, "wasi", "config")
            .get("secretFrom")
            .is_none()
    );

    // No value of the fixture's secrets is anywhere in what etl writes.
    for (path, bytes) in &build.files {
        for (_, value) in common::SECRET_VALUES {
            assert!(
                !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "{path} holds a secret value"
            );
        }
    }
}
