//! What the controller does with reports and dead letters, against a real nats-server with
//! JetStream: counts and edges, a restart resuming exactly from the stream, gaps, `/metrics`
//! read by a Prometheus parser (and `promtool`), OTLP read by the OpenTelemetry project's own
//! Python decoder, dead letters listed, shown redacted and replayed with an audit, and the
//! dashboard's login, cookie and CSRF header.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etl::oci::bundle::{
    API_VERSION, ApplicationFacts, ArtifactFacts, Facts, KIND, NodeFacts, PipelineFacts,
};
use etl::ops::status::{
    ControllerStatus, EnvironmentState, PipelineState, PipelineStatus, TagStatus, Token,
};
use etl::ops::telemetry::{
    DeadLetter, Deployment, Flow, Histogram, NodeKind, Overview, PipelineView, REPORT_VERSION,
    Replay, Report,
};
use etl_controller::config::{Otlp, Telemetry as Settings};
use etl_controller::reconcile::Taken;
use etl_controller::serve;
use etl_controller::telemetry::Telemetry;
use etl_envelope::{Batched, Envelope};
use futures::StreamExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::processes::{Nats, venv_binary};

const TOKEN: &str = "t3lemetry-t0ken";

fn node(name: &str, kind: NodeKind, inputs: &[(&str, &str)]) -> NodeFacts {
    NodeFacts {
        name: name.to_owned(),
        kind,
        connector: (kind != NodeKind::Step).then(|| "nats".to_owned()),
        from: inputs.iter().map(|(_, n)| (*n).to_owned()).collect(),
        inputs: inputs
            .iter()
            .map(|(s, n)| ((*s).to_owned(), (*n).to_owned()))
            .collect(),
        report: (kind != NodeKind::Source).then(|| format!("etl.p.pipe.report.{name}.dev")),
        dead_letter: (kind == NodeKind::Step).then(|| format!("etl.p.pipe.dlq.{name}")),
        replay: (kind == NodeKind::Step).then(|| format!("etl.p.pipe.replay.{name}")),
        component: (kind == NodeKind::Step).then(|| format!("sha256:{}", "c".repeat(64))),
        grants: if name == "enrich" {
            vec!["wasi:http/outgoing-handler → api.example.com".to_owned()]
        } else {
            vec![]
        },
    }
}

/// Project `p`, environment `dev`, pipeline `pipe`: source `in` → `parse` → `enrich`, and the
/// sink `store` reading `parse` and `enrich`.
fn facts() -> Facts {
    Facts {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        project: "p".to_owned(),
        environment: "dev".to_owned(),
        registry: "r".to_owned(),
        lattice: "l".to_owned(),
        revision: Some("0123".to_owned()),
        source: Some("https://git.example/p".to_owned()),
        applications: vec![ApplicationFacts {
            name: "pipe".to_owned(),
            pipeline: Some("pipe".to_owned()),
            version: "sha-000000000000".to_owned(),
            shared: false,
            wadm: "wadm/pipe.yaml".to_owned(),
            k8s: None,
            artifacts: vec![ArtifactFacts {
                unit: "parse".to_owned(),
                generation: "v1".to_owned(),
                image: format!("r/p/pipe-parse@sha256:{}", "a".repeat(64)),
                component_digest: format!("sha256:{}", "b".repeat(64)),
            }],
        }],
        pipelines: vec![PipelineFacts {
            name: "pipe".to_owned(),
            nodes: vec![
                node("in", NodeKind::Source, &[]),
                node("parse", NodeKind::Step, &[("etl.p.pipe.in", "in")]),
                node(
                    "enrich",
                    NodeKind::Step,
                    &[("etl.p.pipe.out.parse", "parse")],
                ),
                node(
                    "store",
                    NodeKind::Sink,
                    &[
                        ("etl.p.pipe.out.parse", "parse"),
                        ("etl.p.pipe.out.enrich", "enrich"),
                    ],
                ),
            ],
        }],
    }
}

fn taken(digest: &str) -> Arc<Taken> {
    let facts = facts();
    Arc::new(Taken {
        deployment: Deployment {
            digest: digest.to_owned(),
            revision: facts.revision.clone(),
            source: facts.source.clone(),
            signer: "sha256:0123456789abcdef".to_owned(),
            applied_at: "2026-12-07T14:00:00Z".to_owned(),
        },
        facts,
    })
}

/// A balanced report of `records` from `from`: one filtered, one dead-lettered `not_json`.
fn report(from: &str, records: u64) -> Report {
    let mut process = Histogram::default();
    process.buckets[3] = records;
    process.sum = 0.0004 * records as f64;
    Report {
        v: REPORT_VERSION,
        from: from.to_owned(),
        start: 1_796_650_000_000_000_000,
        duration: 2_000_000,
        input: Flow {
            records,
            bytes: 10 * records,
        },
        out: Flow {
            records: records - 2,
            bytes: 10 * (records - 2),
        },
        produced: records - 2,
        filtered: 1,
        dead_lettered: BTreeMap::from([("not_json".to_owned(), 1)]),
        failed: 0,
        failure: None,
        transient: 0,
        retries: 0,
        process,
        traceparents: vec!["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()],
    }
}

fn settings() -> Settings {
    Settings {
        dead_letters_kept: 3,
        report_retention: Duration::from_secs(3600),
        otlp: None,
    }
}

/// A nats-server with JetStream, a client, and the bundle the controller took.
struct Lab {
    nats: Nats,
    client: async_nats::Client,
    taken: watch::Sender<Option<Arc<Taken>>>,
    _dir: tempfile::TempDir,
}

/// A running telemetry, and how to stop it.
struct Running {
    telemetry: Arc<Telemetry>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops it; the counts are saved on the way out.
    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the telemetry stops")
            .unwrap();
    }
}

impl Lab {
    async fn start() -> Lab {
        // The controller's log, shown for a failing test.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::new("etl_controller=debug"))
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let nats = Nats::start_jetstream(dir.path());
        let client = async_nats::connect(nats.url()).await.unwrap();
        let (taken, _) = watch::channel(Some(taken("sha256:aaaa")));
        Lab {
            nats,
            client,
            taken,
            _dir: dir,
        }
    }

    /// The telemetry of `settings`, running until stopped, once its data plane is set up.
    async fn telemetry(&self, settings: Settings) -> Running {
        let telemetry = Telemetry::new(settings, self.taken.subscribe());
        let (stop, stopped) = watch::channel(false);
        let client = async_nats::connect(self.nats.url()).await.unwrap();
        let task = tokio::spawn(telemetry.clone().run(client, stopped));
        wait("the data plane set up", || telemetry.plane().is_some()).await;
        Running {
            telemetry,
            stop,
            task,
        }
    }

    async fn publish(&self, subject: &str, body: Vec<u8>) {
        self.client
            .publish(subject.to_owned(), body.into())
            .await
            .unwrap();
        self.client.flush().await.unwrap();
    }

    async fn report(&self, unit: &str, report: &Report) {
        self.publish(
            &format!("etl.p.pipe.report.{unit}.dev"),
            serde_json::to_vec(report).unwrap(),
        )
        .await;
    }
}

/// Waits up to 20 s for `done`.
async fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn health(t: &Telemetry) -> (u64, u64, u64) {
    t.with_store(|s| {
        let h = s.health();
        (h.counted, h.refused, h.missed)
    })
    .unwrap_or_default()
}

fn records_in(t: &Telemetry, unit: &str) -> u64 {
    t.with_store(|s| s.counters("pipe", unit).map(|c| c.input.records))
        .flatten()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_counted_per_unit_and_edge_and_a_restart_resumes_exactly() {
    let lab = Lab::start().await;
    let first = lab.telemetry(settings()).await;
    for _ in 0..5 {
        lab.report("parse", &report("etl.p.pipe.in", 10)).await;
    }
    lab.report("store", &report("etl.p.pipe.out.parse", 6))
        .await;
    lab.report("store", &report("etl.p.pipe.out.enrich", 4))
        .await;
    let mut unbalanced = report("etl.p.pipe.in", 10);
    unbalanced.filtered = 5;
    lab.report("parse", &unbalanced).await;
    lab.report("nope", &report("etl.p.pipe.in", 2)).await;
    lab.publish("etl.p.pipe.report.parse.dev", b"{\"v\":1".to_vec())
        .await;
    // Another environment's: not this controller's to count or refuse.
    lab.publish(
        "etl.p.pipe.report.parse.prod",
        serde_json::to_vec(&report("etl.p.pipe.in", 10)).unwrap(),
    )
    .await;
    let t = &first.telemetry;
    wait("7 reports counted, 3 refused", || health(t) == (7, 3, 0)).await;
    let (parse, store, edges) = t
        .with_store(|s| {
            (
                s.counters("pipe", "parse").unwrap().clone(),
                s.counters("pipe", "store").unwrap().clone(),
                [
                    s.edge("pipe", "in", "parse").0,
                    s.edge("pipe", "parse", "store").0,
                    s.edge("pipe", "enrich", "store").0,
                ],
            )
        })
        .unwrap();
    assert_eq!((parse.batches, parse.input.records), (5, 50));
    assert_eq!(parse.dead_lettered["not_json"], 5);
    assert!(parse.balanced() && store.balanced());
    assert_eq!(store.input.records, 10);
    assert_eq!(
        edges.map(|e| (e.records, e.errors)),
        [(50, 5), (6, 1), (4, 1)]
    );
    first.stop().await;

    // While no controller counts, reports wait in the stream.
    for _ in 0..4 {
        lab.report("parse", &report("etl.p.pipe.in", 10)).await;
    }
    let second = lab.telemetry(settings()).await;
    let t = &second.telemetry;
    wait("11 reports counted", || health(t) == (11, 3, 0)).await;
    assert_eq!(records_in(t, "parse"), 90);
    assert_eq!(records_in(t, "store"), 10);
    assert_eq!(
        t.with_store(|s| s.edge("pipe", "in", "parse").0.records),
        Some(90)
    );
    // The stream was taken as it was: the same settings change nothing.
    let js = async_nats::jetstream::new(lab.client.clone());
    let spec = etl_controller::telemetry::reports::stream_spec("p", Duration::from_secs(3600));
    let (_, ensured) = etl_controller::jetstream::ensure_stream(&js, &spec)
        .await
        .unwrap();
    assert_eq!(ensured, etl_controller::jetstream::Ensured::Unchanged);
    let other = etl_controller::telemetry::reports::stream_spec("p", Duration::from_secs(7200));
    let (_, ensured) = etl_controller::jetstream::ensure_stream(&js, &other)
        .await
        .unwrap();
    assert_eq!(ensured, etl_controller::jetstream::Ensured::Updated);
    // The bundles applied survive too; a new one goes in front.
    assert_eq!(t.history().len(), 1);
    lab.taken.send_replace(Some(taken("sha256:bbbb")));
    wait("the new bundle in the history", || t.history().len() == 2).await;
    assert_eq!(t.history()[0].digest, "sha256:bbbb");
    second.stop().await;
    let third = lab.telemetry(settings()).await;
    assert_eq!(
        third
            .telemetry
            .history()
            .iter()
            .map(|d| d.digest.as_str())
            .collect::<Vec<_>>(),
        ["sha256:bbbb", "sha256:aaaa"]
    );
    assert_eq!(health(&third.telemetry), (11, 3, 0));
    third.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_the_stream_dropped_are_counted_as_missed() {
    let lab = Lab::start().await;
    let first = lab.telemetry(settings()).await;
    lab.report("parse", &report("etl.p.pipe.in", 10)).await;
    lab.report("parse", &report("etl.p.pipe.in", 10)).await;
    wait("2 counted", || health(&first.telemetry) == (2, 0, 0)).await;
    first.stop().await;
    for _ in 0..3 {
        lab.report("parse", &report("etl.p.pipe.in", 10)).await;
    }
    // The stream loses them before a controller reads them (as by age or size).
    let js = async_nats::jetstream::new(lab.client.clone());
    js.get_stream("ETL_REPORTS_p")
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();
    lab.report("parse", &report("etl.p.pipe.in", 10)).await;
    let second = lab.telemetry(settings()).await;
    wait("3 counted, 3 missed", || {
        health(&second.telemetry) == (3, 0, 3)
    })
    .await;
    assert_eq!(records_in(&second.telemetry, "parse"), 30);
    second.stop().await;
}

/// A status document of the pipeline, deployed.
fn status_doc() -> ControllerStatus {
    ControllerStatus {
        api_version: etl::ops::status::API_VERSION.to_owned(),
        kind: etl::ops::status::KIND.to_owned(),
        project: Some("p".to_owned()),
        environment: Some("dev".to_owned()),
        generation: "v1".to_owned(),
        lattice: Some("l".to_owned()),
        bundle: "127.0.0.1:5000/etl/bundles/p/dev:dev".to_owned(),
        tag: TagStatus::default(),
        applied: None,
        refused: None,
        state: EnvironmentState::Ready,
        pipelines: vec![PipelineStatus {
            name: "pipe".to_owned(),
            application: "pipe".to_owned(),
            version: Some("sha-000000000000".to_owned()),
            state: PipelineState::Deployed,
            reason: None,
            artifacts: vec![],
            units: vec![],
        }],
    }
}

/// Serves the API of `telemetry` behind [`TOKEN`]; its base URL.
async fn serve_api(telemetry: &Arc<Telemetry>) -> (String, watch::Sender<bool>) {
    serve_api_with(telemetry, Some(TOKEN)).await
}

/// Serves the API of `telemetry`, behind `token` when given; its base URL.
async fn serve_api_with(
    telemetry: &Arc<Telemetry>,
    token: Option<&str>,
) -> (String, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // A receiver keeps the last document when its sender is gone.
    let (_, status) = watch::channel(status_doc());
    let (stop, stopped) = watch::channel(false);
    let token = token.map(|t| Token::new(t, "test").unwrap());
    let api = serve::Api::new(status, token.as_ref()).with_telemetry(telemetry.clone());
    tokio::spawn(serve::http(listener, None, api, stopped));
    (format!("http://127.0.0.1:{port}"), stop)
}

/// A GET of `path` from `base` naming `host` in its `Host` header: the status and the body.
async fn get_as_host(base: &str, host: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(address).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), body.to_owned())
}

fn http() -> reqwest::Client {
    // reqwest is built without a default crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(url: &str) -> (u16, String) {
    let r = http().get(url).bearer_auth(TOKEN).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_api_documents() {
    let lab = Lab::start().await;
    let running = lab.telemetry(settings()).await;
    let t = &running.telemetry;
    for _ in 0..3 {
        lab.report("parse", &report("etl.p.pipe.in", 10)).await;
    }
    lab.report("store", &report("etl.p.pipe.out.parse", 8))
        .await;
    lab.report("nope", &report("etl.p.pipe.in", 8)).await;
    wait("4 counted", || health(t) == (4, 1, 0)).await;
    let (base, _stop) = serve_api(t).await;

    let r = http().get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http()
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/plain; version=0.0.4"
    );
    let text = r.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |name: &str, step: Option<&str>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && step.is_none_or(|u| s.labels.get("etl_step") == Some(u)))
            .map(|s| s.value.clone())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    use prometheus_parse::Value;
    assert_eq!(
        value("messaging_client_consumed_messages_total", Some("parse")),
        Value::Counter(30.0)
    );
    assert_eq!(
        value("messaging_client_sent_messages_total", Some("store")),
        Value::Counter(6.0)
    );
    assert_eq!(
        value("etl_reports_refused_total", None),
        Value::Counter(1.0)
    );
    assert_eq!(
        value("etl_dead_letters_kept", Some("parse")),
        Value::Gauge(0.0)
    );
    assert!(matches!(
        value("messaging_process_duration_seconds", Some("parse")),
        Value::Histogram(_)
    ));
    let store = scrape
        .samples
        .iter()
        .find(|s| s.labels.get("etl_step") == Some("store"))
        .unwrap();
    assert_eq!(
        store.labels.get("messaging_destination_name"),
        Some("etl.p.pipe.out.*")
    );
    // Prometheus's own linter takes it.
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/setup.sh installs it)");
    use std::io::Write as _;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let (code, body) = get(&format!("{base}/api/v1/overview")).await;
    assert_eq!(code, 200, "{body}");
    let overview: Overview = serde_json::from_str(&body).unwrap();
    assert_eq!(overview.deployed.unwrap().digest, "sha256:aaaa");
    assert!(overview.history.is_empty());
    assert_eq!(overview.reports.counted, 4);
    let pipe = &overview.pipelines[0];
    assert_eq!(
        (pipe.records_in, pipe.records_out, pipe.dead_lettered),
        (30, 6, 4)
    );
    assert_eq!(pipe.state.as_deref(), Some("deployed"));

    let (code, body) = get(&format!("{base}/api/v1/pipelines/pipe")).await;
    assert_eq!(code, 200, "{body}");
    let view: PipelineView = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = view.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["in", "parse", "enrich", "store"]);
    let parse = &view.nodes[1];
    assert_eq!(parse.counters.as_ref().unwrap().input.records, 30);
    assert_eq!(
        parse.artifact.as_deref(),
        Some(format!("sha256:{}", "a".repeat(64)).as_str())
    );
    assert!(view.nodes[2].counters.is_none());
    assert_eq!(view.nodes[2].grants.len(), 1);
    let edges: Vec<(&str, &str, u64)> = view
        .edges
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str(), e.records))
        .collect();
    assert_eq!(
        edges,
        [
            ("in", "parse", 30),
            ("parse", "enrich", 0),
            ("parse", "store", 8),
            ("enrich", "store", 0)
        ]
    );
    let (code, _) = get(&format!("{base}/api/v1/pipelines/nope")).await;
    assert_eq!(code, 404);

    let (code, body) = get(&format!("{base}/status")).await;
    assert_eq!(code, 200);
    let status: ControllerStatus = serde_json::from_str(&body).unwrap();
    let units: Vec<(&str, u64)> = status.pipelines[0]
        .units
        .iter()
        .map(|u| (u.name.as_str(), u.counters.input.records))
        .collect();
    assert_eq!(units, [("parse", 30), ("store", 8)]);
    running.stop().await;
}

/// A dead-letter message of `records` (payload, reason), as a step publishes it.
fn dead_letters(records: &[(&str, &str)]) -> Vec<u8> {
    let batch: Vec<Batched> = records
        .iter()
        .enumerate()
        .map(|(i, (payload, reason))| Batched {
            origin: i as u32,
            envelope: Envelope {
                key: Some(b"sensor-7".to_vec()),
                payload: payload.as_bytes().to_vec(),
                headers: vec![
                    ("content-type".to_owned(), "application/json".to_owned()),
                    ("X-Api-Key".to_owned(), "k-123".to_owned()),
                    ("etl-error".to_owned(), (*reason).to_owned()),
                ],
                traceparent: None,
                id: None,
            },
        })
        .collect();
    etl_envelope::encode_batch(&batch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_redacted_and_replayed_with_an_audit() {
    let lab = Lab::start().await;
    // An audit bucket as the first controllers made it: kept forever, full refuses writes.
    let js = async_nats::jetstream::new(lab.client.clone());
    js.create_key_value(async_nats::jetstream::kv::Config {
        bucket: "etl-controller-audit".to_owned(),
        history: 1,
        max_bytes: 16 * 1024 * 1024,
        ..Default::default()
    })
    .await
    .unwrap();
    let running = lab.telemetry(settings()).await;
    let audit_stream = js
        .get_stream("KV_etl-controller-audit")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(audit_stream.max_age, etl_controller::audit::KEPT_FOR);
    assert_eq!(
        audit_stream.discard,
        async_nats::jetstream::stream::DiscardPolicy::Old
    );
    assert_eq!(audit_stream.max_bytes, etl_controller::audit::MAX_BYTES);
    let t = &running.telemetry;
    // Five messages; the stream keeps the newest 3 of the step.
    for i in 0..5 {
        let payload = format!(r#"{{"n":{i},"password":"hunter2","t":21.5}}"#);
        lab.publish(
            "etl.p.pipe.dlq.parse",
            dead_letters(&[
                (&payload, "not JSON: expected value"),
                ("{\"x\":1}", "too cold"),
            ]),
        )
        .await;
    }
    let long = "x".repeat(3000);
    lab.publish(
        "etl.p.pipe.dlq.enrich",
        dead_letters(&[(&long, "egress denied: api")]),
    )
    .await;
    let kept = || t.dead_letters.kept();
    wait("the dead letters indexed", || {
        kept().get(&("pipe".to_owned(), "parse".to_owned())) == Some(&6)
            && kept().get(&("pipe".to_owned(), "enrich".to_owned())) == Some(&1)
    })
    .await;
    let (base, _stop) = serve_api(t).await;

    let (code, body) = get(&format!(
        "{base}/api/v1/dead-letters?pipeline=pipe&step=parse&limit=4"
    ))
    .await;
    assert_eq!(code, 200, "{body}");
    let list: Vec<DeadLetter> = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = list.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["5-1", "5-0", "4-1", "4-0"], "newest first");
    let d = &list[1];
    assert_eq!(d.reason, "not JSON: expected value");
    assert_eq!(d.class, "not_json");
    assert_eq!((d.pipeline.as_str(), d.step.as_str()), ("pipe", "parse"));
    assert_eq!(d.preview, r#"{"n":4,"password":"[redacted]","t":21.5}"#);
    assert!(!d.truncated);
    let payload = r#"{"n":4,"password":"hunter2","t":21.5}"#;
    assert_eq!(
        d.input_digest,
        etl::util::digest::sha256(payload.as_bytes())
    );
    assert_eq!(d.size, payload.len() as u64);
    assert_eq!(
        d.headers,
        [
            ("content-type".to_owned(), "application/json".to_owned()),
            ("X-Api-Key".to_owned(), "[redacted]".to_owned())
        ]
    );
    assert_eq!(d.key.as_deref(), Some("sensor-7"));
    assert!(d.at.ends_with('Z') && d.at.len() >= 20, "{}", d.at);
    assert!(!body.contains("hunter2") && !body.contains("k-123"));

    let (code, body) = get(&format!("{base}/api/v1/dead-letters/6-0")).await;
    assert_eq!(code, 200, "{body}");
    let d: DeadLetter = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (d.step.as_str(), d.class.as_str()),
        ("enrich", "egress_denied")
    );
    assert_eq!((d.preview.len(), d.truncated, d.size), (1024, true, 3000));
    let (_, body) = get(&format!("{base}/api/v1/dead-letters/6-0?preview=5000")).await;
    let d: DeadLetter = serde_json::from_str(&body).unwrap();
    assert_eq!((d.preview.len(), d.truncated), (3000, false));
    // Older than the newest three of the step: gone.
    let (code, _) = get(&format!("{base}/api/v1/dead-letters/1-0")).await;
    assert_eq!(code, 404);
    let (code, _) = get(&format!("{base}/api/v1/dead-letters/x")).await;
    assert_eq!(code, 400);

    let mut replays = lab
        .client
        .subscribe("etl.p.pipe.replay.parse")
        .await
        .unwrap();
    lab.client.flush().await.unwrap();
    let r = http()
        .post(format!("{base}/api/v1/dead-letters/replay"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"ids": ["5-0", "4-1", "1-0", "05-0", "4-1"], "actor": "ann@laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let replay: Replay = r.json().await.unwrap();
    assert_eq!(
        replay.replayed,
        [
            ("5-0".to_owned(), "etl.p.pipe.replay.parse".to_owned()),
            ("4-1".to_owned(), "etl.p.pipe.replay.parse".to_owned())
        ]
    );
    assert_eq!(replay.missing, ["1-0"]);
    assert_eq!(
        replay.credential,
        &etl::util::digest::sha256(TOKEN.as_bytes())["sha256:".len()..][..12]
    );
    assert!(replay.remote.starts_with("127.0.0.1:"), "{}", replay.remote);
    let message = tokio::time::timeout(Duration::from_secs(10), replays.next())
        .await
        .expect("the replay arrives")
        .unwrap();
    let batch = etl_envelope::decode_batch(&message.payload).unwrap();
    assert_eq!(batch.len(), 2, "one batch of both");
    assert_eq!(
        String::from_utf8(batch[0].envelope.payload.clone()).unwrap(),
        r#"{"n":4,"password":"hunter2","t":21.5}"#,
        "replayed as it was, not redacted"
    );
    assert_eq!(batch[1].origin, 1);
    for b in &batch {
        assert!(b.envelope.headers.iter().all(|(n, _)| n != "etl-error"));
        assert_eq!(b.envelope.headers.len(), 2);
    }
    // Everything kept of a step.
    let r = http()
        .post(format!("{base}/api/v1/dead-letters/replay"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"pipeline": "pipe", "step": "enrich", "actor": "bob"}))
        .send()
        .await
        .unwrap();
    let replay: Replay = r.json().await.unwrap();
    assert_eq!(
        replay.replayed,
        [("6-0".to_owned(), "etl.p.pipe.replay.enrich".to_owned())]
    );
    let r = http()
        .post(format!("{base}/api/v1/dead-letters/replay"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"ids": ["5-0"], "actor": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    let (code, body) = get(&format!("{base}/api/v1/audit")).await;
    assert_eq!(code, 200, "{body}");
    let audit: Vec<Replay> = serde_json::from_str(&body).unwrap();
    let actors: Vec<&str> = audit.iter().map(|r| r.actor.as_str()).collect();
    assert_eq!(actors, ["bob", "ann@laptop"], "newest first");
    assert_eq!(audit[1].missing, ["1-0"]);
    assert_eq!(audit[1].replayed.len(), 2);

    // A replay too large for one message is recorded in parts, and read back as one.
    let plane = t.plane().unwrap();
    let large = Replay {
        actor: "carol".to_owned(),
        credential: "none".to_owned(),
        remote: "127.0.0.1:1".to_owned(),
        at: "2026-12-07T14:00:00Z".to_owned(),
        replayed: (0..3000)
            .map(|i| {
                (
                    format!("{}-{}", 100 + i, i % 7),
                    "etl.p.pipe.replay.parse".to_owned(),
                )
            })
            .collect(),
        missing: vec!["1-0".to_owned()],
    };
    let at = etl_controller::telemetry::now().as_nanos();
    plane.audit.record(&large, at, 8 * 1024).await.unwrap();
    let (code, body) = get(&format!("{base}/api/v1/audit?limit=1")).await;
    assert_eq!(code, 200, "{body}");
    let audit: Vec<Replay> = serde_json::from_str(&body).unwrap();
    assert_eq!(audit, [large]);
    let mut keys = js
        .get_key_value("etl-controller-audit")
        .await
        .unwrap()
        .keys()
        .await
        .unwrap();
    let mut parts = 0;
    while let Some(key) = keys.next().await {
        if key.unwrap().starts_with(&format!("p.dev.{at:020}.")) {
            parts += 1;
        }
    }
    assert!(parts > 3, "{parts} parts");
    let (code, _) = get(&format!(
        "{base}/api/v1/dead-letters?limit=100000&preview=100000000"
    ))
    .await;
    assert_eq!(
        code, 200,
        "a limit and a preview larger than allowed are cut to the largest"
    );
    running.stop().await;
}

/// The login form's body.
fn form_token(token: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_sign_in_with_a_cookie_and_post_with_the_csrf_header() {
    let lab = Lab::start().await;
    let running = lab.telemetry(settings()).await;
    let (base, _stop) = serve_api(&running.telemetry).await;
    let client = http();
    for path in ["/", "/api/v1/overview", "/metrics"] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    let page = client
        .get(format!("{base}/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 401);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let login_csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        login_csp.starts_with("default-src 'none'; script-src 'self'; style-src 'self' 'sha256-"),
        "{login_csp}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let page = page.text().await.unwrap();
    assert!(
        page.contains(r#"<form method="post" action="/login">"#),
        "{page}"
    );
    assert!(page.contains(r#"name="token""#));
    let api = client
        .get(format!("{base}/api/v1/overview"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        api.headers()["content-type"].to_str().unwrap(),
        "application/json",
        "the API never answers with the login page"
    );
    let r = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let large = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_token(&"x".repeat(4 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        large.status().as_u16(),
        413,
        "a login form of more than 4 KiB"
    );
    let wrong = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_token("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let right = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_token(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status().as_u16(), 303);
    assert_eq!(right.headers()["location"], "/");
    let set = right.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"));
    assert!(!set.contains(TOKEN));
    let cookie = set.split(';').next().unwrap().to_owned();
    assert!(cookie.starts_with("etl_session="));

    for path in [
        "/",
        "/api/v1/overview",
        "/metrics",
        "/status",
        "/assets/app.js",
    ] {
        let r = client
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        if path == "/" || path.starts_with("/assets/") {
            assert_eq!(
                r.headers()["content-security-policy"],
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
                "{path}"
            );
            assert_eq!(r.headers()["referrer-policy"], "no-referrer", "{path}");
        }
    }
    let replay = serde_json::json!({"ids": ["1-0"], "actor": "ann"});
    let r = client
        .post(format!("{base}/api/v1/dead-letters/replay"))
        .header("cookie", &cookie)
        .json(&replay)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        403,
        "a cookie's POST without the CSRF header"
    );
    let r = client
        .post(format!("{base}/api/v1/dead-letters/replay"))
        .header("cookie", &cookie)
        .header("x-etl-csrf", "1")
        .json(&replay)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r: Replay = r.json().await.unwrap();
    assert_eq!(r.missing, ["1-0"]);

    let out = client
        .post(format!("{base}/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    running.stop().await;
}

/// What a receiver got: (path, body) of each request it took.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A loopback OTLP/HTTP receiver: what it received, by path; it answers 503 to the first
/// `fail` requests.
async fn receiver(fail: usize) -> (String, Received) {
    use http_body_util::BodyExt as _;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let kept = received.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        let seen = seen.clone();
                        async move {
                            let path = request.uri().path().to_owned();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let code = if n < fail {
                                503
                            } else {
                                kept.lock().unwrap().push((path, body.to_vec()));
                                200
                            };
                            let mut response = hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::new(),
                            ));
                            *response.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, received)
}

/// `body` decoded by the OpenTelemetry project's Python classes (PyPI `opentelemetry-proto`,
/// which scripts/setup.sh installs), as protobuf's JSON mapping.
fn decode(kind: &str, body: &[u8]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.pb");
    std::fs::write(&file, body).unwrap();
    let script = r#"
import json, sys
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
message = {"metrics": ExportMetricsServiceRequest, "traces": ExportTraceServiceRequest}[sys.argv[1]]()
message.ParseFromString(open(sys.argv[2], "rb").read())
print(json.dumps(MessageToDict(message)))
"#;
    let out = std::process::Command::new(venv_binary("ETL_PYTHON", "python3"))
        .args(["-c", script, kind, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Python decoder (run scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn attribute<'a>(attributes: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    attributes
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
        .unwrap_or_else(|| panic!("no attribute {key} in {attributes}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_metrics_and_spans_decode_with_the_reference_classes() {
    let lab = Lab::start().await;
    // The collector refuses the first request: the export tries again.
    let (url, received) = receiver(1).await;
    let running = lab
        .telemetry(Settings {
            otlp: Some(Otlp {
                endpoint: url,
                interval: Duration::from_secs(1),
            }),
            ..settings()
        })
        .await;
    lab.report("parse", &report("etl.p.pipe.in", 10)).await;
    let mut failed = report("etl.p.pipe.out.parse", 4);
    failed.produced = 0;
    failed.filtered = 0;
    failed.dead_lettered = BTreeMap::new();
    failed.failed = 4;
    failed.failure = Some(etl::ops::telemetry::Failure::Delivery);
    failed.out = Flow::default();
    lab.report("store", &failed).await;
    wait("2 counted", || health(&running.telemetry) == (2, 0, 0)).await;
    let got = |path: &str| {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect::<Vec<_>>()
    };
    wait("spans received", || !got("/v1/traces").is_empty()).await;
    running.stop().await;

    let metrics = decode("metrics", got("/v1/metrics").last().unwrap());
    let resource = &metrics["resourceMetrics"][0];
    assert_eq!(
        attribute(&resource["resource"]["attributes"], "service.name")["stringValue"],
        "etl-controller"
    );
    let list = resource["scopeMetrics"][0]["metrics"].as_array().unwrap();
    let metric = |name: &str| {
        list.iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let consumed = metric("messaging.client.consumed.messages");
    assert_eq!(
        consumed["sum"]["aggregationTemporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    assert_eq!(consumed["sum"]["isMonotonic"], true);
    let points = consumed["sum"]["dataPoints"].as_array().unwrap();
    let parse = points
        .iter()
        .find(|p| attribute(&p["attributes"], "etl.step")["stringValue"] == "parse")
        .unwrap();
    assert_eq!(parse["asInt"], "10");
    for (key, value) in [
        ("etl.pipeline", "pipe"),
        ("etl.environment", "dev"),
        ("etl.project", "p"),
        ("messaging.system", "nats"),
        ("messaging.destination.name", "etl.p.pipe.in"),
        ("messaging.operation.name", "process"),
    ] {
        assert_eq!(
            attribute(&parse["attributes"], key)["stringValue"],
            value,
            "{key}"
        );
    }
    let failed = metric("etl.records.failed")["sum"]["dataPoints"][0].clone();
    assert_eq!(failed["asInt"], "4");
    assert_eq!(
        attribute(&failed["attributes"], "etl.failure")["stringValue"],
        "delivery"
    );
    let duration = metric("messaging.process.duration");
    assert_eq!(duration["unit"], "s");
    let h = duration["histogram"]["dataPoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| attribute(&p["attributes"], "etl.step")["stringValue"] == "parse")
        .unwrap();
    assert_eq!(h["count"], "10");
    assert_eq!(h["explicitBounds"].as_array().unwrap().len(), 16);
    assert_eq!(h["bucketCounts"][3], "10");

    let spans: Vec<serde_json::Value> = got("/v1/traces")
        .iter()
        .flat_map(|b| {
            decode("traces", b)["resourceSpans"][0]["scopeSpans"][0]["spans"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let parse = spans
        .iter()
        .find(|s| s["name"] == "process etl.p.pipe.in")
        .unwrap();
    assert_eq!(parse["kind"], "SPAN_KIND_CONSUMER");
    assert_eq!(parse["startTimeUnixNano"], "1796650000000000000");
    assert_eq!(parse["endTimeUnixNano"], "1796650000002000000");
    // Trace and span ids are base64 in the JSON mapping.
    let link = &parse["links"][0];
    use base64::Engine as _;
    let trace = base64::engine::general_purpose::STANDARD
        .decode(link["traceId"].as_str().unwrap())
        .unwrap();
    assert_eq!(hex::encode(trace), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        attribute(&parse["attributes"], "etl.step")["stringValue"],
        "parse"
    );
    assert_eq!(
        attribute(&parse["attributes"], "messaging.batch.message_count")["intValue"],
        "10"
    );
    let store = spans
        .iter()
        .find(|s| s["name"] == "process etl.p.pipe.out.parse")
        .unwrap();
    assert_eq!(store["status"]["code"], "STATUS_CODE_ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_loopback_hosts_are_answered() {
    let lab = Lab::start().await;
    let running = lab.telemetry(settings()).await;
    let (base, _stop) = serve_api_with(&running.telemetry, None).await;
    let port = base.rsplit(':').next().unwrap();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]".to_owned(),
    ] {
        let (code, body) = get_as_host(&base, &host, "/api/v1/overview").await;
        assert_eq!(code, 200, "{host}: {body}");
    }
    // A page of evil.example whose name now points at 127.0.0.1 (DNS rebinding).
    for path in [
        "/",
        "/status",
        "/api/v1/overview",
        "/metrics",
        "/assets/app.js",
    ] {
        let (code, body) = get_as_host(&base, &format!("evil.example:{port}"), path).await;
        assert_eq!(code, 403, "{path}");
        assert!(body.contains("loopback host"), "{body}");
    }
    let (code, _) = get_as_host(&base, "evil.example", "/healthz").await;
    assert_eq!(code, 200, "the liveness probe says nothing");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_made_anew_are_read_from_their_start() {
    let lab = Lab::start().await;
    let js = async_nats::jetstream::new(lab.client.clone());
    let first = lab.telemetry(settings()).await;
    for _ in 0..3 {
        lab.report("parse", &report("etl.p.pipe.in", 10)).await;
    }
    wait("3 counted", || health(&first.telemetry) == (3, 0, 0)).await;
    first.stop().await;
    // Deleted and made again (by another environment's controller, say), and it has grown
    // past the sequence the counts cover before this controller starts again.
    js.delete_stream("ETL_REPORTS_p").await.unwrap();
    let spec = etl_controller::telemetry::reports::stream_spec("p", Duration::from_secs(3600));
    etl_controller::jetstream::ensure_stream(&js, &spec)
        .await
        .unwrap();
    for _ in 0..5 {
        lab.report("parse", &report("etl.p.pipe.in", 10)).await;
    }
    let second = lab.telemetry(settings()).await;
    let t = &second.telemetry;
    wait("all 5 of the new stream counted", || health(t) == (8, 0, 0)).await;
    assert_eq!(records_in(t, "parse"), 80);

    // Deleted while it is read: made again, and what arrives then is counted.
    let kept = || {
        t.dead_letters
            .kept()
            .get(&("pipe".to_owned(), "parse".to_owned()))
            .copied()
    };
    for _ in 0..2 {
        lab.publish(
            "etl.p.pipe.dlq.parse",
            dead_letters(&[("{}", "not JSON: x")]),
        )
        .await;
    }
    wait("2 dead letters indexed", || kept() == Some(2)).await;
    js.delete_stream("ETL_REPORTS_p").await.unwrap();
    js.delete_stream("ETL_DLQ_p").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while js.get_stream("ETL_REPORTS_p").await.is_err() || js.get_stream("ETL_DLQ_p").await.is_err()
    {
        assert!(Instant::now() < deadline, "the streams are not made again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lab.report("parse", &report("etl.p.pipe.in", 10)).await;
    wait("the report after counted", || health(t) == (9, 0, 0)).await;
    lab.publish(
        "etl.p.pipe.dlq.parse",
        dead_letters(&[("{}", "not JSON: x")]),
    )
    .await;
    // The index is of the new stream only.
    wait("the new dead letter indexed, the old ones gone", || {
        kept() == Some(1)
    })
    .await;
    second.stop().await;
}
