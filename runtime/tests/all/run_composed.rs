//! Composed steps, executed for real under wasmtime 48: the composition `etl compile` builds (and
//! a few composed here with `etl::build::compose`), given a broker message, calls the transform and
//! publishes exactly the expected records.
//!
//! The host is small and real: it serves `wasmcloud:messaging/consumer` by recording every
//! publish (subject, body, reply-to) in the store, `wasi:config/runtime` from a map, and the WASI
//! p2 interfaces the std-built harness parts import through `wasmtime-wasi` (a context that
//! inherits nothing; stderr is captured to explain a trap). Nothing on the component side is
//! mocked. Every test compares the whole list of publishes, so a harness that drops, duplicates
//! or misroutes a record fails it. Fuel bounds every call, so a hung component fails a test
//! instead of hanging it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use etl::build::compose::{self, Parts};
use etl::build::harness::Part;
use etl::ops::telemetry::{Failure, Flow, Report};
use etl_envelope::{Batched, DecodeError, Envelope, decode_batch, encode, encode_batch};

/// The one record of a batch a step published (a version-2 envelope of one record, origin 0).
fn decode(body: &[u8]) -> Result<Envelope, DecodeError> {
    let mut batch = decode_batch(body)?;
    assert_eq!(batch.len(), 1, "a batch of one record");
    let one = batch.pop().expect("one record");
    assert_eq!(one.origin, 0, "the record came from the batch's only input");
    Ok(one.envelope)
}
use serde_json::{Value as Json, json};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable, Val};
use wasmtime::{Config, Engine, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

wasmtime::component::bindgen!({
    inline: "
        package etl-test:host;

        /// What a composed step built on the messaging harness needs from its host (besides
        /// WASI) and what it offers.
        world step {
            import wasmcloud:messaging/consumer@0.2.0;
            import wasi:config/runtime@0.2.0-draft;
            import wasmcloud:secrets/store@0.1.0-draft;
            import wasmcloud:secrets/reveal@0.1.0-draft;
            export wasmcloud:messaging/handler@0.2.0;
        }
    ",
    path: [
        "../wit/deps/wasmcloud-messaging-0.2.0",
        "../wit/deps/wasi-config-0.2.0-draft",
        "../wit/deps/wasmcloud-secrets-0.1.0-draft",
    ],
    with: {
        "wasmcloud:secrets/store.secret": SecretName,
    },
});

/// A `wasmcloud:secrets` handle: the name of its secret, as the 1.x host's is.
pub struct SecretName(String);

use wasi::config::runtime::ConfigError;
use wasmcloud::messaging::types::BrokerMessage;

/// Fuel for one instantiation and call: the largest here uses about 50 000, so this only runs
/// out in a component that loops (which then fails its test in well under a second).
const FUEL: u64 = 50_000_000;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// --- the host ---------------------------------------------------------------------------------

/// The store's state: configuration in, publishes out.
struct Host {
    wasi: WasiCtx,
    /// `wasi:http`, sending requests for real (an HTTP sink's, to a server of the test).
    http: WasiHttpCtx,
    table: ResourceTable,
    /// What `wasi:config/runtime` serves.
    config: BTreeMap<String, String>,
    /// What `wasmcloud:secrets` serves, by name (as the 1.x host does: only the secrets the
    /// component was given).
    secrets: BTreeMap<String, String>,
    /// Subjects whose publishes the broker refuses.
    refuse: BTreeSet<String>,
    /// Every accepted publish, in order.
    published: Vec<BrokerMessage>,
    /// Subjects of every `request` (which the host refuses); the harness never makes one.
    requests: Vec<String>,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: wasmtime_wasi_http::default_hooks(),
        }
    }
}

impl wasmcloud::messaging::types::Host for Host {}

impl wasmcloud::messaging::consumer::Host for Host {
    fn request(
        &mut self,
        subject: String,
        _body: Vec<u8>,
        _timeout_ms: u32,
    ) -> Result<BrokerMessage, String> {
        self.requests.push(subject.clone());
        Err(format!("test host: no request/reply (subject `{subject}`)"))
    }

    fn publish(&mut self, msg: BrokerMessage) -> Result<(), String> {
        if self.refuse.contains(&msg.subject) {
            return Err(format!("test host: broker refuses `{}`", msg.subject));
        }
        self.published.push(msg);
        Ok(())
    }
}

impl wasi::config::runtime::Host for Host {
    fn get(&mut self, key: String) -> Result<Option<String>, ConfigError> {
        Ok(self.config.get(&key).cloned())
    }

    /// In reverse key order, so that what the customer sees is sorted by the settings part.
    fn get_all(&mut self) -> Result<Vec<(String, String)>, ConfigError> {
        Ok(self
            .config
            .iter()
            .rev()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl wasmcloud::secrets::store::Host for Host {
    fn get(
        &mut self,
        key: String,
    ) -> Result<wasmtime::component::Resource<SecretName>, wasmcloud::secrets::store::SecretsError>
    {
        if !self.secrets.contains_key(&key) {
            return Err(wasmcloud::secrets::store::SecretsError::NotFound);
        }
        Ok(self.table.push(SecretName(key)).expect("room in the table"))
    }
}

impl wasmcloud::secrets::store::HostSecret for Host {
    fn drop(&mut self, rep: wasmtime::component::Resource<SecretName>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl wasmcloud::secrets::reveal::Host for Host {
    fn reveal(
        &mut self,
        s: wasmtime::component::Resource<SecretName>,
    ) -> wasmcloud::secrets::store::SecretValue {
        let SecretName(name) = self.table.get(&s).expect("a live secret");
        wasmcloud::secrets::store::SecretValue::String(self.secrets[name].clone())
    }
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.consume_fuel(true);
        // The tests' cranelift is a debug build: skipping its optimizations compiles the five
        // components about a quarter faster, and their code runs fast enough either way.
        config.cranelift_opt_level(wasmtime::OptLevel::None);
        Engine::new(&config).expect("engine")
    })
}

fn linker() -> &'static Linker<Host> {
    static LINKER: OnceLock<Linker<Host>> = OnceLock::new();
    LINKER.get_or_init(|| {
        let mut linker = Linker::new(engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("WASI p2");
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker).expect("wasi:http");
        Step::add_to_linker::<_, HasSelf<Host>>(&mut linker, |host| host).expect("step imports");
        linker
    })
}

/// The outcome of one `handle-message` call.
#[derive(Debug)]
struct Run {
    /// What `handle-message` returned.
    result: Result<(), String>,
    /// Every publish the broker accepted, in order.
    published: Vec<BrokerMessage>,
}

/// A step's configuration, as `(key, value)` pairs.
type Settings<'a> = &'a [(&'a str, &'a str)];

/// Instantiates `component` in a fresh store with `config` and delivers one broker message.
fn run(component: &Component, config: Settings, subject: &str, body: Vec<u8>) -> Run {
    run_refusing(component, config, &[], subject, body)
}

/// [`run`], the host's secrets being `secrets`; `Err` is the trap, with the guest's stderr.
fn run_with_secrets(
    component: &Component,
    config: Settings,
    secrets: Settings,
    subject: &str,
    body: Vec<u8>,
) -> Result<Run, String> {
    let (mut store, stderr) = store(config, &[]);
    store.data_mut().secrets = secrets
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let trapped =
        |e: wasmtime::Error| format!("{e:?}\n{}", String::from_utf8_lossy(&stderr.contents()));
    let step = Step::instantiate(&mut store, component, linker()).map_err(trapped)?;
    let msg = BrokerMessage {
        subject: subject.to_owned(),
        body,
        reply_to: None,
    };
    let result = step
        .wasmcloud_messaging_handler()
        .call_handle_message(&mut store, &msg)
        .map_err(trapped)?;
    Ok(Run {
        result,
        published: store.into_data().published,
    })
}

/// [`run`], with a broker that refuses publishes to the subjects `refuse`.
fn run_refusing(
    component: &Component,
    config: Settings,
    refuse: &[&str],
    subject: &str,
    body: Vec<u8>,
) -> Run {
    let (mut store, stderr) = store(config, refuse);
    let trapped = |what: &str, e: wasmtime::Error, stderr: &MemoryOutputPipe| -> ! {
        panic!(
            "{what} trapped: {e:?}\nguest stderr:\n{}",
            String::from_utf8_lossy(&stderr.contents())
        )
    };
    let step = Step::instantiate(&mut store, component, linker())
        .unwrap_or_else(|e| trapped("instantiation", e, &stderr));
    let msg = BrokerMessage {
        subject: subject.to_owned(),
        body,
        reply_to: None,
    };
    let result = step
        .wasmcloud_messaging_handler()
        .call_handle_message(&mut store, &msg)
        .unwrap_or_else(|e| trapped("handle-message", e, &stderr));
    let host = store.into_data();
    assert_eq!(
        host.requests,
        Vec::<String>::new(),
        "the harness made requests"
    );
    Run {
        result,
        published: host.published,
    }
}

/// A fresh store with `config`, a broker refusing `refuse`, [`FUEL`], and the guest's stderr.
fn store(config: Settings, refuse: &[&str]) -> (Store<Host>, MemoryOutputPipe) {
    let stderr = MemoryOutputPipe::new(64 * 1024);
    let host = Host {
        // Nothing inherited: no environment, arguments, stdin, files or network.
        wasi: WasiCtxBuilder::new().stderr(stderr.clone()).build(),
        http: WasiHttpCtx::new(),
        table: ResourceTable::new(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        secrets: BTreeMap::new(),
        refuse: refuse.iter().map(|s| s.to_string()).collect(),
        published: Vec::new(),
        requests: Vec::new(),
    };
    let mut store = Store::new(engine(), host);
    store.set_fuel(FUEL).expect("fuel is enabled");
    (store, stderr)
}

// --- the components ---------------------------------------------------------------------------

fn repo_path(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The composed artifacts of the example repo, by unit name, as `etl::ops::compile::compile` builds
/// them (compiled once per test binary; `dist/` is a temporary directory, removed afterwards).
fn example_artifacts() -> &'static BTreeMap<String, Vec<u8>> {
    static ARTIFACTS: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("dist");
        let compilation = etl::ops::compile::compile(
            &repo_path("examples/iot-sensors"),
            &etl::ops::compile::Options {
                out: out.clone(),
                cache: None,
                provenance: Default::default(),
            },
        )
        .expect("compile runs");
        let plan = compilation.plan.unwrap_or_else(|| {
            panic!(
                "the example does not compile: {:#?}",
                compilation.validation.diagnostics
            )
        });
        let pipeline = &plan.pipelines[0];
        assert_eq!(pipeline.name, "sensor-ingest");
        let mut artifacts = BTreeMap::new();
        for unit in pipeline.steps.iter().chain(&pipeline.sinks) {
            let bytes = std::fs::read(out.join(&unit.artifact.path)).expect("artifact written");
            let inbound: Vec<&str> = unit.harness.inbound.iter().map(String::as_str).collect();
            let harness = (inbound, unit.harness.out.as_str());
            let expected = match unit.name.as_str() {
                // Fed by HTTP, and over messaging on its replay subject.
                "parse" => (vec!["in-http", "in-messaging"], "out-messaging"),
                "enrich" | "threshold-alert" | "archive" => (vec!["in-messaging"], "out-messaging"),
                "alerts" => (vec!["in-messaging"], "out-http"),
                other => panic!("unexpected unit `{other}`"),
            };
            assert_eq!(harness, expected, "the harness of `{}`", unit.name);
            artifacts.insert(unit.name.clone(), bytes);
        }
        artifacts
    })
}

fn compiled(
    cell: &'static OnceLock<Component>,
    bytes: impl FnOnce() -> Vec<u8>,
) -> &'static Component {
    cell.get_or_init(|| Component::new(engine(), bytes()).expect("wasmtime compiles the component"))
}

/// A unit of the example as `etl compile` composed it.
fn example(unit: &'static str, cell: &'static OnceLock<Component>) -> &'static Component {
    compiled(cell, || example_artifacts()[unit].clone())
}

fn enrich() -> &'static Component {
    static C: OnceLock<Component> = OnceLock::new();
    example("enrich", &C)
}

fn threshold_alert() -> &'static Component {
    static C: OnceLock<Component> = OnceLock::new();
    example("threshold-alert", &C)
}

fn archive() -> &'static Component {
    static C: OnceLock<Component> = OnceLock::new();
    example("archive", &C)
}

fn alerts() -> &'static Component {
    static C: OnceLock<Component> = OnceLock::new();
    example("alerts", &C)
}

/// settings + `customer` + out-messaging + [in-messaging], composed here: `etl compile` gives
/// `parse` the HTTP entry, so its messaging composition (and the probe's) is built directly.
fn composed_on_messaging(customer: &[u8]) -> Vec<u8> {
    compose::compose(Parts {
        settings: Part::Settings.bytes(),
        customer,
        outbound: Part::OutMessaging.bytes(),
        inbound: &[Part::InMessaging.bytes()],
        egress: None,
        msg_id: None,
    })
    .expect("composes")
}

/// A customer component: a core module of the example, componentized as `etl compile` does.
fn customer(name: &str, bytes: Vec<u8>) -> Vec<u8> {
    etl::build::resolve::prepare(name, bytes, None)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .component
}

fn parse_on_messaging() -> &'static Component {
    static C: OnceLock<Component> = OnceLock::new();
    compiled(&C, || {
        let module = std::fs::read(repo_path("examples/iot-sensors/components/parse.wasm"))
            .expect("parse.wasm");
        composed_on_messaging(&customer("components/parse.wasm", module))
    })
}

/// A customer that shows what it can see of its settings. For an input whose payload is the
/// UTF-8 text `k`, its one output is
/// `{ key: config.get(k), payload: the input's payload, headers: config.get-all() }`
/// (`option<string>` and `list<tuple<string, string>>` have the canonical-ABI layout of the
/// message's `key` and `headers`, so the results are stored straight into the output record).
pub(crate) const PROBE: &str = r#"
(module
  (import "etl:pipeline/config@0.1.0" "get" (func $get (param i32 i32 i32)))
  (import "etl:pipeline/config@0.1.0" "get-all" (func $get_all (param i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  ;; A bump allocator over the first page, above the fixed areas below.
  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32)
        (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr
      (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
               (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (global.get $heap) (i32.const 65536)) (then unreachable))
    (local.get $ptr))
  ;; transform(input) -> result<list<message>, error>. The result lives at 0 (tag, list ptr,
  ;; list len), its one message at 32 (key at +0, payload at +12, headers at +20).
  (func (export "etl:pipeline/transform@0.1.0#transform")
        (param $key_tag i32) (param $key_ptr i32) (param $key_len i32)
        (param $payload_ptr i32) (param $payload_len i32)
        (param $headers_ptr i32) (param $headers_len i32)
        (result i32)
    (call $get (local.get $payload_ptr) (local.get $payload_len) (i32.const 32))
    (i32.store (i32.const 44) (local.get $payload_ptr))
    (i32.store (i32.const 48) (local.get $payload_len))
    (call $get_all (i32.const 52))
    (i32.store8 (i32.const 0) (i32.const 0))
    (i32.store (i32.const 4) (i32.const 32))
    (i32.store (i32.const 8) (i32.const 1))
    (i32.const 0)))
"#;

/// A customer component from WAT: a core module for the contract's world `transformer`,
/// componentized (and checked against the contract) as `etl compile` does.
pub(crate) fn customer_from_wat(name: &str, wat: &str) -> Vec<u8> {
    let mut module = wat::parse_str(wat).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut resolve = wit_parser::Resolve::new();
    let contract = resolve
        .push_path(repo_path("wit/etl-pipeline"))
        .expect("the contract parses")
        .0;
    let world = resolve
        .select_world(&[contract], Some("transformer"))
        .expect("the contract's world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .expect("metadata");
    customer(name, module)
}

fn probe() -> &'static Component {
    static C: OnceLock<Component> = OnceLock::new();
    compiled(&C, || {
        composed_on_messaging(&customer_from_wat("probe", PROBE))
    })
}

/// A customer whose transform never returns.
const LOOP: &str = r#"
(module
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
  (func (export "etl:pipeline/transform@0.1.0#transform")
        (param i32 i32 i32 i32 i32 i32 i32) (result i32)
    (loop $forever (br $forever))
    unreachable))
"#;

// --- records ----------------------------------------------------------------------------------

fn header(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// A reading as `parse` emits it, with a key, headers and trace context.
fn parsed_reading(celsius: f64) -> Envelope {
    Envelope {
        key: Some(b"t-101".to_vec()),
        payload: serde_json::to_vec(&json!({
            "sensor_id": "t-101",
            "celsius": celsius,
            "ts": "2026-11-01T12:00:00Z",
        }))
        .unwrap(),
        headers: vec![
            header("content-type", "application/json"),
            header("x-gateway", "gw-3"),
        ],
        traceparent: Some(TRACEPARENT.to_owned()),
        id: None,
    }
}

/// `envelope` with its payload, a JSON object, extended by `fields`.
fn with_fields(envelope: &Envelope, fields: Json) -> Envelope {
    let mut payload: Json = serde_json::from_slice(&envelope.payload).unwrap();
    let object = payload.as_object_mut().unwrap();
    for (k, v) in fields.as_object().unwrap() {
        object.insert(k.clone(), v.clone());
    }
    Envelope {
        payload: serde_json::to_vec(&payload).unwrap(),
        ..envelope.clone()
    }
}

/// A publish, decoded for comparison: JSON payloads compare as JSON (field order is the
/// customer's business), everything else exactly.
#[derive(Debug, PartialEq)]
struct Record {
    subject: String,
    reply_to: Option<String>,
    key: Option<Vec<u8>>,
    payload: Result<Json, Vec<u8>>,
    headers: Vec<(String, String)>,
    traceparent: Option<String>,
}

fn record(subject: &str, envelope: Envelope) -> Record {
    Record {
        subject: subject.to_owned(),
        reply_to: None,
        key: envelope.key,
        payload: serde_json::from_slice(&envelope.payload).map_err(|_| envelope.payload),
        headers: envelope.headers,
        traceparent: envelope.traceparent,
    }
}

/// Every publish of `run`, decoded; a body that is not an envelope fails the test.
fn published(run: &Run) -> Vec<Record> {
    run.published
        .iter()
        .map(|m| {
            let envelope = decode(&m.body).unwrap_or_else(|e| {
                panic!("the publish to `{}` is not an envelope: {e}", m.subject)
            });
            Record {
                reply_to: m.reply_to.clone(),
                ..record(&m.subject, envelope)
            }
        })
        .collect()
}

/// Asserts that `run` succeeded and published exactly `expected`, in order.
fn assert_published(run: &Run, expected: &[(&str, &Envelope)]) {
    assert_eq!(run.result, Ok(()), "handle-message failed");
    let expected: Vec<Record> = expected
        .iter()
        .map(|(subject, envelope)| record(subject, (*envelope).clone()))
        .collect();
    assert_eq!(published(run), expected);
}

const STEP: Settings = &[
    ("etl.out.subjects", "iot.enriched"),
    ("etl.out.dead-letter", "iot.dlq"),
    ("step.site", "plant-7"),
];

// --- the tests --------------------------------------------------------------------------------

#[test]
fn enrich_as_compiled_publishes_the_enriched_record_to_its_subject() {
    let input = parsed_reading(82.5);
    let run = run(enrich(), STEP, "iot.parsed", encode(&input));
    let expected = with_fields(&input, json!({"site": "plant-7"}));
    assert_published(&run, &[("iot.enriched", &expected)]);
    // Key, headers and trace context are carried as they are.
    let out = decode(&run.published[0].body).unwrap();
    assert_eq!(
        (&out.key, &out.headers, &out.traceparent),
        (&input.key, &input.headers, &input.traceparent)
    );
}

/// A message on a subject `etl.in.raw-subjects` matches (an `mqtt` source's) is a device's bytes:
/// one record, the body its payload, nothing else; on any other subject the same bytes are not an
/// envelope.
#[test]
fn a_message_on_a_raw_subject_is_one_record_of_its_bytes() {
    let body = serde_json::to_vec(&json!({"sensor_id": "t-7", "celsius": 31.0})).unwrap();
    let mut config = STEP.to_vec();
    config.push(("etl.in.raw-subjects", "iot.legacy, plant.*.telemetry"));
    let run_raw = run(enrich(), &config, "plant.line-1.telemetry", body.clone());
    let expected = Envelope {
        key: None,
        payload: serde_json::to_vec(
            &json!({"sensor_id": "t-7", "celsius": 31.0, "site": "plant-7"}),
        )
        .unwrap(),
        headers: Vec::new(),
        traceparent: None,
        id: None,
    };
    assert_published(&run_raw, &[("iot.enriched", &expected)]);
    let other = run(enrich(), &config, "plant.line-1.status", body);
    let error = other
        .result
        .expect_err("bytes on another subject are not an envelope");
    assert!(error.contains("is not an etl envelope"), "{error}");
    assert!(other.published.is_empty());
}

#[test]
fn a_record_without_key_headers_or_trace_context_stays_without_them() {
    let input = Envelope {
        key: None,
        headers: Vec::new(),
        traceparent: None,
        id: None,
        ..parsed_reading(20.0)
    };
    let run = run(enrich(), STEP, "iot.parsed", encode(&input));
    let expected = with_fields(&input, json!({"site": "plant-7"}));
    assert_published(&run, &[("iot.enriched", &expected)]);
}

#[test]
fn every_output_is_published_to_every_subject_in_order() {
    let config = &[
        ("etl.out.subjects", " a , b ,"),
        ("etl.out.dead-letter", "iot.dlq"),
        ("step.site", "plant-7"),
    ];
    let input = parsed_reading(82.5);
    let run = run(enrich(), config, "iot.parsed", encode(&input));
    let expected = with_fields(&input, json!({"site": "plant-7"}));
    assert_published(&run, &[("a", &expected), ("b", &expected)]);
    assert_eq!(
        run.published[0].body, run.published[1].body,
        "the same envelope"
    );
}

#[test]
fn a_refused_publish_is_an_error_naming_the_output_and_subject() {
    let config = &[
        ("etl.out.subjects", "a,b,c"),
        ("etl.out.dead-letter", "iot.dlq"),
        ("step.site", "plant-7"),
    ];
    let input = parsed_reading(82.5);
    let run = run_refusing(enrich(), config, &["b"], "iot.parsed", encode(&input));
    let error = run.result.as_ref().expect_err("the publish failed");
    assert!(
        error.contains("publishing output(s) 1–1 of 1 to `b` failed")
            && error.contains("broker refuses `b`"),
        "{error}"
    );
    // At least once: what went out before the failure stays out; nothing after it is tried.
    let expected = with_fields(&input, json!({"site": "plant-7"}));
    assert_eq!(published(&run), [record("a", expected)]);
}

#[test]
fn no_subject_is_an_error_and_nothing_is_published() {
    let config = &[("etl.out.dead-letter", "iot.dlq"), ("step.site", "plant-7")];
    let run = run(
        enrich(),
        config,
        "iot.parsed",
        encode(&parsed_reading(82.5)),
    );
    let error = run.result.expect_err("no subject");
    assert!(
        error.contains("`etl.out.subjects` names no subject"),
        "{error}"
    );
    assert!(run.published.is_empty(), "{:?}", run.published);
}

#[test]
fn threshold_alert_filters_readings_below_the_threshold() {
    let config = &[
        ("etl.out.subjects", "iot.alerts"),
        ("etl.out.dead-letter", "iot.dlq"),
        ("step.threshold", "80"),
    ];
    let enriched = |celsius| with_fields(&parsed_reading(celsius), json!({"site": "plant-7"}));

    let cold = run(
        threshold_alert(),
        config,
        "iot.enriched",
        encode(&enriched(75.0)),
    );
    assert_published(&cold, &[]);

    for celsius in [85.0, 80.0] {
        let input = enriched(celsius);
        let hot = run(threshold_alert(), config, "iot.enriched", encode(&input));
        let expected = with_fields(&input, json!({"alert": true}));
        assert_published(&hot, &[("iot.alerts", &expected)]);
    }
}

#[test]
fn an_invalid_record_is_dead_lettered_with_the_reason() {
    let input = Envelope {
        payload: b"not json".to_vec(),
        ..parsed_reading(0.0)
    };
    let run = run(
        parse_on_messaging(),
        &[
            ("etl.out.subjects", "iot.parsed"),
            ("etl.out.dead-letter", "iot.dlq"),
        ],
        "iot.raw",
        encode(&input),
    );
    assert_eq!(run.result, Ok(()), "dead-lettering succeeded");
    let records = published(&run);
    assert_eq!(records.len(), 1, "{records:#?}");
    let mut dead = decode(&run.published[0].body).unwrap();
    let (name, reason) = dead.headers.pop().expect("the etl-error header");
    assert_eq!(name, "etl-error");
    assert!(reason.contains("payload is not JSON"), "{reason}");
    // Otherwise the input exactly as it came (trace context included), on the dead-letter subject.
    assert_eq!(run.published[0].subject, "iot.dlq");
    assert_eq!(run.published[0].reply_to, None);
    assert_eq!(dead, input);
}

#[test]
fn parse_on_messaging_publishes_a_valid_reading_to_its_subject() {
    // The same direct composition with a good record: it goes to the subject, not the DLQ.
    let input = Envelope {
        payload: br#"{"sensor": "t-101", "temp_c": 82.5, "ts": "2026-11-01T12:00:00Z", "x": 1}"#
            .to_vec(),
        ..parsed_reading(0.0)
    };
    let run = run(
        parse_on_messaging(),
        &[
            ("etl.out.subjects", "iot.parsed"),
            ("etl.out.dead-letter", "iot.dlq"),
        ],
        "iot.raw",
        encode(&input),
    );
    let expected = Envelope {
        payload: serde_json::to_vec(&json!({
            "sensor_id": "t-101", "celsius": 82.5, "ts": "2026-11-01T12:00:00Z"
        }))
        .unwrap(),
        ..input
    };
    assert_published(&run, &[("iot.parsed", &expected)]);
}

#[test]
fn without_a_dead_letter_subject_an_invalid_record_is_an_error_not_a_drop() {
    let input = Envelope {
        payload: b"not json".to_vec(),
        ..parsed_reading(0.0)
    };
    let run = run(
        parse_on_messaging(),
        &[("etl.out.subjects", "iot.parsed")],
        "iot.raw",
        encode(&input),
    );
    let error = run.result.expect_err("not dead-lettered");
    assert!(
        error.contains("`etl.out.dead-letter` is not set") && error.contains("payload is not JSON"),
        "{error}"
    );
    assert!(run.published.is_empty(), "{:?}", run.published);
}

#[test]
fn a_transient_error_is_returned_and_neither_published_nor_dead_lettered() {
    // enrich without its `site`: a deployment fault, so the broker may redeliver.
    let config = &[
        ("etl.out.subjects", "iot.enriched"),
        ("etl.out.dead-letter", "iot.dlq"),
    ];
    let run = run(
        enrich(),
        config,
        "iot.parsed",
        encode(&parsed_reading(82.5)),
    );
    let error = run.result.expect_err("transient");
    assert!(
        error.contains(
            "transient error in the transform of record 1 of 1 of the message on subject `iot.parsed`"
        )
            && error.contains("config key `site` is not set"),
        "{error}"
    );
    assert!(run.published.is_empty(), "{:?}", run.published);
}

#[test]
fn the_customer_sees_only_its_own_step_settings() {
    // `get`: enrich reads `site`, which is `step.site`; the platform's keys and an unprefixed
    // `site` do not leak into it.
    let config = &[
        ("etl.out.subjects", "iot.enriched"),
        ("etl.out.dead-letter", "iot.dlq"),
        ("etl.site", "platform-site"),
        ("site", "unprefixed-site"),
        ("step.site", "plant-7"),
    ];
    let input = parsed_reading(82.5);
    let run1 = run(enrich(), config, "iot.parsed", encode(&input));
    let expected = with_fields(&input, json!({"site": "plant-7"}));
    assert_published(&run1, &[("iot.enriched", &expected)]);

    // Without `step.site`, `site` is unset for the customer, whatever else is set.
    let run2 = run(enrich(), &config[..4], "iot.parsed", encode(&input));
    let error = run2.result.expect_err("`site` is not visible");
    assert!(error.contains("config key `site` is not set"), "{error}");
    assert!(run2.published.is_empty());
}

#[test]
fn get_and_get_all_hide_everything_outside_the_step_namespace() {
    // The probe echoes `get(payload)` as the output key and `get-all()` as its headers.
    let config = &[
        ("etl.out.subjects", "iot.probed"),
        ("etl.out.dead-letter", "iot.dlq"),
        ("site", "unprefixed"),
        ("step.threshold", "80"),
        ("step.site", "plant-7"),
        ("stepx.a", "no"),
        ("STEP.b", "no"),
    ];
    let visible = vec![header("site", "plant-7"), header("threshold", "80")];
    for (asked, answer) in [
        ("site", Some("plant-7")),
        ("threshold", Some("80")),
        ("etl.out.subjects", None),
        ("step.site", None),
        ("a", None),
    ] {
        let input = Envelope {
            key: None,
            payload: asked.as_bytes().to_vec(),
            headers: vec![header("x", "y")],
            traceparent: None,
            id: None,
        };
        let run = run(probe(), config, "iot.in", encode(&input));
        let expected = Envelope {
            key: answer.map(|a| a.as_bytes().to_vec()),
            payload: input.payload.clone(),
            headers: visible.clone(),
            traceparent: None,
            id: None,
        };
        assert_published(&run, &[("iot.probed", &expected)]);
    }
}

#[test]
fn a_steps_secret_settings_reach_the_customer_with_its_other_settings() {
    // On wasmCloud 1.x a secret is not in the configuration: the settings part reads it from
    // the host's `wasmcloud:secrets`, under the setting name `etl.secrets` lists.
    let config = &[
        ("etl.out.subjects", "iot.probed"),
        ("etl.out.dead-letter", "iot.dlq"),
        ("etl.secrets", "step.token"),
        ("step.site", "plant-7"),
    ];
    let secrets = &[("step.token", "s3cr3t-value"), ("other", "never shown")];
    let visible = vec![header("site", "plant-7"), header("token", "s3cr3t-value")];
    for (asked, answer) in [("token", Some("s3cr3t-value")), ("other", None)] {
        let input = Envelope {
            key: None,
            payload: asked.as_bytes().to_vec(),
            headers: Vec::new(),
            traceparent: None,
            id: None,
        };
        let run = run_with_secrets(probe(), config, secrets, "iot.in", encode(&input)).unwrap();
        let expected = Envelope {
            key: answer.map(|a| a.as_bytes().to_vec()),
            payload: input.payload.clone(),
            headers: visible.clone(),
            traceparent: None,
            id: None,
        };
        assert_published(&run, &[("iot.probed", &expected)]);
    }

    // A secret the deployment lists and the host cannot give: the call traps naming the
    // setting, and never answers "not set".
    let input = Envelope {
        key: None,
        payload: b"token".to_vec(),
        headers: Vec::new(),
        traceparent: None,
        id: None,
    };
    let Err(trap) = run_with_secrets(probe(), config, &[], "iot.in", encode(&input)) else {
        panic!("no trap")
    };
    assert!(
        trap.contains("the step's secret setting `token` has no value"),
        "{trap}"
    );
}

#[test]
fn a_body_that_is_not_an_envelope_is_an_error_without_trap_or_publish() {
    let good = encode(&parsed_reading(82.5));
    let mut trailing = good.clone();
    trailing.push(0);
    let bodies: [(&str, Vec<u8>); 5] = [
        ("empty", Vec::new()),
        ("text", b"not an envelope".to_vec()),
        ("version 2", vec![2, 0, 0, 0]),
        ("truncated", good[..good.len() - 3].to_vec()),
        ("trailing byte", trailing),
    ];
    for component in [enrich(), archive()] {
        for (what, body) in &bodies {
            let run = run(component, STEP, "iot.parsed", body.clone());
            let error = run.result.expect_err(what);
            assert!(
                error.contains("the message on subject `iot.parsed` is not an etl envelope"),
                "{what}: {error}"
            );
            assert!(run.published.is_empty(), "{what}: {:?}", run.published);
        }
    }
}

#[test]
fn a_sink_republishes_the_identical_envelope_bytes() {
    let config = &[("etl.out.subjects", "iot.archive")];
    let envelopes = [
        parsed_reading(82.5),
        Envelope::default(),
        Envelope {
            key: None,
            ..parsed_reading(20.0)
        },
        Envelope {
            key: Some(Vec::new()),
            payload: vec![0, 255, 1],
            headers: vec![
                header("traceparent", "an ordinary header of that name"),
                header("", ""),
                header("dup", "1"),
                header("dup", "2 ünïcode"),
            ],
            traceparent: Some(TRACEPARENT.to_owned()),
            id: None,
        },
    ];
    for envelope in envelopes {
        // A one-record envelope (version 1) comes out as the batch of it (version 2); a batch
        // comes out byte for byte.
        let batch = encode_batch(&[Batched {
            origin: 0,
            envelope: envelope.clone(),
        }]);
        let run1 = run(archive(), config, "iot.parsed", encode(&envelope));
        assert_eq!(run1.published[0].body, batch, "{envelope:?}");
        let body = batch;
        let run = run(archive(), config, "iot.parsed", body.clone());
        assert_eq!(run.result, Ok(()));
        let sent: Vec<(&str, &[u8], Option<&str>)> = run
            .published
            .iter()
            .map(|m| (m.subject.as_str(), m.body.as_slice(), m.reply_to.as_deref()))
            .collect();
        assert_eq!(
            sent,
            [("iot.archive", body.as_slice(), None)],
            "{envelope:?}"
        );
    }
}

#[test]
fn a_transform_that_never_returns_runs_out_of_fuel_instead_of_hanging() {
    // The bound itself, on the customer alone (it imports nothing): the composed steps above run
    // in the same engine, under the same fuel.
    let component = Component::new(engine(), customer_from_wat("loop", LOOP)).unwrap();
    let (mut store, _stderr) = store(&[], &[]);
    let instance = linker().instantiate(&mut store, &component).unwrap();
    let interface = instance
        .get_export_index(&mut store, None, compose::TRANSFORM)
        .expect("exports the transform interface");
    let transform = instance
        .get_export_index(&mut store, Some(&interface), "transform")
        .and_then(|f| instance.get_func(&mut store, f))
        .expect("exports transform");
    let input = Val::Record(vec![
        ("key".into(), Val::Option(None)),
        ("payload".into(), Val::List(Vec::new())),
        ("headers".into(), Val::List(Vec::new())),
    ]);
    let mut result = [Val::Bool(false)];
    let error = transform
        .call(&mut store, &[input], &mut result)
        .expect_err("the loop cannot finish");
    assert_eq!(
        error.downcast_ref::<Trap>(),
        Some(&Trap::OutOfFuel),
        "{error:?}"
    );
}

// --- reports (docs/reporting.md) --------------------------------------------------------------

/// Where the tests' steps publish their reports.
const REPORTS: &str = "etl.iot-sensors.sensor-ingest.report.enrich.dev";

/// [`STEP`] with reports to [`REPORTS`] and `more`.
fn reporting(more: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut config = STEP.to_vec();
    config.push(("etl.report.subject", REPORTS));
    config.extend_from_slice(more);
    config
}

/// The batch of `envelopes`, each its own origin.
fn batch_of(envelopes: &[&Envelope]) -> Vec<u8> {
    let batch: Vec<Batched> = envelopes
        .iter()
        .zip(0..)
        .map(|(e, origin)| Batched {
            origin,
            envelope: (*e).clone(),
        })
        .collect();
    encode_batch(&batch)
}

/// The subjects `run` published to, in order.
fn subjects(run: &Run) -> Vec<&str> {
    run.published.iter().map(|m| m.subject.as_str()).collect()
}

/// The report `run` published last, read as the controller reads it (which checks that it
/// balances).
fn report_of(run: &Run) -> Report {
    let last = run.published.last().expect("a publish");
    assert_eq!(last.subject, REPORTS, "the report is the last publish");
    Report::parse(&last.body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&last.body)))
}

/// Payload bytes of every record of the envelope batches in `bodies`.
fn payload_bytes<'a>(bodies: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    bodies
        .into_iter()
        .flat_map(|b| decode_batch(b).expect("a batch"))
        .map(|b| b.envelope.payload.len() as u64)
        .sum()
}

#[test]
fn a_delivered_batch_is_reported_once_after_its_outputs_and_dead_letters() {
    let other_trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let good = parsed_reading(82.5);
    let not_an_object = Envelope {
        payload: b"[1]".to_vec(),
        traceparent: None,
        id: None,
        ..parsed_reading(0.0)
    };
    // enrich answers `transient` the first time it sees a flaky reading, and enriches it when
    // the harness calls it again.
    let flaky = with_fields(&parsed_reading(90.0), json!({"sensor_id": "flaky-101"}));
    let traced = Envelope {
        traceparent: Some(other_trace.to_owned()),
        id: None,
        ..parsed_reading(10.0)
    };
    let inputs = [&good, &not_an_object, &flaky, &traced];
    let config = reporting(&[]);
    let run = run(enrich(), &config, "iot.parsed", batch_of(&inputs));
    assert_eq!(run.result, Ok(()));
    assert_eq!(subjects(&run), ["iot.enriched", "iot.dlq", REPORTS]);

    let report = report_of(&run);
    assert_eq!(report.from, "iot.parsed");
    assert_eq!(
        report.input,
        Flow {
            records: 4,
            bytes: inputs.iter().map(|e| e.payload.len() as u64).sum(),
        }
    );
    assert_eq!(
        report.out,
        Flow {
            records: 3,
            bytes: payload_bytes([run.published[0].body.as_slice()]),
        }
    );
    assert_eq!((report.produced, report.filtered), (3, 0));
    assert_eq!(
        report.dead_lettered,
        BTreeMap::from([("not_a_parsed_reading".to_owned(), 1)])
    );
    assert_eq!((report.failed, report.failure), (0, None));
    assert_eq!((report.transient, report.retries), (1, 1));
    assert_eq!(report.process.count(), 5, "every call of the transform");
    assert_eq!(report.traceparents, [TRACEPARENT, other_trace]);
    // The retry waited the default backoff, 10 ms, within the call.
    assert!(report.duration >= 10_000_000, "{}", report.duration);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(
        report.start <= now && now - report.start < 600_000_000_000,
        "{} is not the wall clock's {now}",
        report.start
    );
}

#[test]
fn without_a_report_subject_nothing_is_reported() {
    let flaky = with_fields(&parsed_reading(90.0), json!({"sensor_id": "flaky-101"}));
    let run = run(enrich(), STEP, "iot.parsed", encode(&flaky));
    assert_eq!(run.result, Ok(()), "the retry succeeded");
    assert_eq!(subjects(&run), ["iot.enriched"]);
}

#[test]
fn a_record_still_transient_after_the_retries_fails_the_batch_and_is_reported() {
    // enrich without its `site` answers `transient` every time.
    let config = [
        ("etl.out.subjects", "iot.enriched"),
        ("etl.out.dead-letter", "iot.dlq"),
        ("etl.report.subject", REPORTS),
        ("etl.in.retries", "3"),
        ("etl.in.retry-backoff", "0"),
    ];
    let inputs = [&parsed_reading(1.0), &parsed_reading(2.0)];
    let retried = run(enrich(), &config, "iot.parsed", batch_of(&inputs));
    let error = retried.result.as_ref().expect_err("transient");
    assert!(
        error.contains(
            "transient error in the transform of record 1 of 2 of the message on subject \
             `iot.parsed` after 3 retries (nothing of the batch was delivered)"
        ),
        "{error}"
    );
    assert_eq!(
        subjects(&retried),
        [REPORTS],
        "nothing of the batch, only its report"
    );
    let report = report_of(&retried);
    assert_eq!(report.failure, Some(Failure::Transient));
    assert_eq!(report.failed, 2, "every record of the batch");
    assert_eq!(report.out, Flow::default());
    assert_eq!((report.produced, report.filtered), (0, 0));
    assert!(report.dead_lettered.is_empty());
    assert_eq!((report.transient, report.retries), (4, 3));
    assert_eq!(
        report.process.count(),
        4,
        "the second record was never called"
    );

    // No retries: the first answer fails the batch.
    let mut config = config.to_vec();
    config.retain(|(k, _)| *k != "etl.in.retries");
    config.push(("etl.in.retries", "0"));
    let once = run(enrich(), &config, "iot.parsed", batch_of(&inputs));
    let error = once.result.as_ref().expect_err("transient");
    assert!(
        error.contains("`iot.parsed` (nothing of the batch"),
        "{error}"
    );
    let report = report_of(&once);
    assert_eq!((report.transient, report.retries), (1, 0));
}

#[test]
fn a_failed_delivery_is_reported_as_every_record_failed() {
    let config = reporting(&[]);
    let run = run_refusing(
        enrich(),
        &config,
        &["iot.enriched"],
        "iot.parsed",
        encode(&parsed_reading(82.5)),
    );
    assert!(run.result.is_err());
    assert_eq!(subjects(&run), [REPORTS]);
    let report = report_of(&run);
    assert_eq!(
        (
            report.failed,
            report.failure,
            report.produced,
            report.out.records
        ),
        (1, Some(Failure::Delivery), 0, 0)
    );
}

#[test]
fn a_report_the_broker_refuses_is_a_line_on_stderr_not_an_error() {
    let config = reporting(&[]);
    let (mut store, stderr) = store(&config, &[REPORTS]);
    let step = Step::instantiate(&mut store, enrich(), linker()).expect("instantiates");
    let msg = BrokerMessage {
        subject: "iot.parsed".to_owned(),
        body: encode(&parsed_reading(82.5)),
        reply_to: None,
    };
    let result = step
        .wasmcloud_messaging_handler()
        .call_handle_message(&mut store, &msg)
        .expect("no trap");
    assert_eq!(result, Ok(()), "the batch was delivered");
    assert_eq!(
        store
            .data()
            .published
            .iter()
            .map(|m| &m.subject)
            .collect::<Vec<_>>(),
        ["iot.enriched"]
    );
    let stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
    assert_eq!(
        stderr,
        format!(
            "etl in-messaging: the batch's report was not published to `{REPORTS}`: test host: \
             broker refuses `{REPORTS}`\n"
        )
    );
}

#[test]
fn retry_settings_that_are_not_whole_numbers_are_errors_before_any_record() {
    for (key, value, says) in [
        (
            "etl.in.retries",
            "two",
            "not a whole number of retries: `two`",
        ),
        (
            "etl.in.retry-backoff",
            "1.5",
            "not a whole number of milliseconds: `1.5`",
        ),
    ] {
        let config = reporting(&[(key, value)]);
        let run = run(
            enrich(),
            &config,
            "iot.parsed",
            encode(&parsed_reading(82.5)),
        );
        let error = run.result.expect_err(key);
        assert!(
            error.contains(&format!("config `{key}` is {says}")),
            "{error}"
        );
        assert!(run.published.is_empty(), "{:?}", run.published);
    }
}

#[test]
fn a_message_that_is_not_an_envelope_is_not_reported() {
    let config = reporting(&[]);
    let run = run(enrich(), &config, "iot.parsed", b"not an envelope".to_vec());
    assert!(run.result.is_err());
    assert!(run.published.is_empty(), "{:?}", run.published);
}

/// A loopback HTTP server whose first connection is taken and never answered (held open), and
/// whose others are each answered `204` once their request (head and `content-length` body) is
/// in; what it got sends the request's body.
fn webhook_that_hangs_once() -> (u16, std::sync::mpsc::Receiver<Vec<u8>>) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    // The thread ends with the test binary; it holds the listener and the unanswered stream.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            if held.is_empty() {
                held.push(stream);
                continue;
            }
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
            let _ = tx.send(body);
        }
    });
    (port, rx)
}

/// An HTTP sink whose request is taken and never answered gives up on it after
/// `etl.out.request-timeout`, as a failed delivery (which JetStream delivers again), instead of
/// waiting for good: on a wasmCloud 1.x host that wait held the sink's instance, and every
/// delivery after it, when the http-client provider's host died mid-request. The next delivery
/// is answered and delivered.
#[test]
fn an_http_sink_gives_up_on_a_request_never_answered_after_its_timeout() {
    let (port, received) = webhook_that_hangs_once();
    let url = format!("http://127.0.0.1:{port}/hook");
    let reading = with_fields(&parsed_reading(91.5), json!({"alert": true}));
    let deliver = move || {
        let (tx, rx) = std::sync::mpsc::channel();
        let (url, body) = (url.clone(), batch_of(&[&reading]));
        // On a thread: a call that waits for good fails the test instead of hanging it.
        std::thread::spawn(move || {
            let config = [
                ("etl.out.url", url.as_str()),
                ("etl.out.request-timeout", "300"),
            ];
            let started = std::time::Instant::now();
            let run = run(alerts(), &config, "iot.alerts", body);
            let _ = tx.send((run.result, started.elapsed()));
        });
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("the sink gave its call up within 30 s")
    };

    let (first, took) = deliver.clone()();
    let error = first.expect_err("an unanswered request is a failed delivery");
    assert!(
        error.contains("no answer within 300 ms (`etl.out.request-timeout`)"),
        "{error}"
    );
    assert!(
        took >= std::time::Duration::from_millis(300) && took < std::time::Duration::from_secs(10),
        "gave up after {took:?}"
    );
    let (second, _) = deliver();
    assert_eq!(second, Ok(()), "the next delivery is answered");
    let body = received
        .recv_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let sent: Json = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["sensor_id"], "t-101");
    assert_eq!(sent["alert"], true);
}
