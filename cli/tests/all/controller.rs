//! Not tests: a scripted etl-controller on a loopback port for `etl status`, `etl top` and
//! `etl dlq` — every request (method, path with its query, body) handed to a function that
//! answers it, behind a bearer token when one is set — and the fixed documents they read.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use etl::ops::status::{
    API_VERSION, Applied, ArtifactStatus, ControllerStatus, EnvironmentState, KIND, PipelineState,
    PipelineStatus, TagStatus, UnitMetrics,
};
use etl::ops::telemetry::{Counters, DeadLetter, Failure, Flow, NodeKind, Rates};

/// One request the controller took (authorized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ….
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The body.
    pub body: String,
}

/// The requests a controller took, in order.
pub type Log = Arc<Mutex<Vec<Request>>>;

/// A controller on a free loopback port answering `answer(request)` (status code and JSON
/// body) to requests bearing `token` when one is set, `401 {"error":"unauthorized"}` to
/// others. Its URL, and the log of what it answered.
pub fn serve(
    token: Option<&'static str>,
    answer: impl Fn(&Request) -> (u16, String) + Send + 'static,
) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log: Log = Arc::default();
    let taken = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                continue;
            }
            let mut parts = request_line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let path = parts.next().unwrap_or_default().to_owned();
            let mut authorization = None;
            let mut length = 0;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("authorization") {
                        authorization = Some(value.trim().to_owned());
                    } else if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let allowed = token.is_none_or(|t| authorization == Some(format!("Bearer {t}")));
            let (code, body) = if allowed {
                let request = Request {
                    method,
                    path,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let answered = answer(&request);
                taken.lock().unwrap().push(request);
                answered
            } else {
                (401, r#"{"error":"unauthorized"}"#.to_owned())
            };
            let reason = match code {
                200 => "OK",
                400 => "Bad Request",
                401 => "Unauthorized",
                404 => "Not Found",
                _ => "Error",
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.flush();
        }
    });
    (url, log)
}

/// `etl ARGS` with `env` and none of the controller variables of the test's environment.
pub fn etl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_etl"));
    command
        .args(args)
        .env_remove("ETL_CONTROLLER_URL")
        .env_remove("ETL_CONTROLLER_URL_DEV")
        .env_remove("ETL_CONTROLLER_TOKEN")
        .env_remove("COLUMNS");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The bundle reference of dev's documents.
pub const BUNDLE: &str = "127.0.0.1:5000/etl/bundles/iot-sensors/dev:dev";
/// The digest of dev's documents.
pub const DIGEST: &str = "sha256:5e1f0a6b3c2d4e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f";

/// dev's controller status: ready, or still reconciling the pipeline.
pub fn document(bundle: &str, applied: &str, ready: bool) -> ControllerStatus {
    ControllerStatus {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        project: Some("iot-sensors".to_owned()),
        environment: Some("dev".to_owned()),
        generation: "v1".to_owned(),
        lattice: Some("acme-iot-dev".to_owned()),
        bundle: bundle.to_owned(),
        tag: TagStatus {
            digest: Some(applied.to_owned()),
            checked_at: Some("2026-12-07T14:00:10Z".to_owned()),
            stale: false,
            error: None,
        },
        applied: Some(Applied {
            digest: applied.to_owned(),
            revision: Some("0123456789abcdef0123456789abcdef01234567".to_owned()),
            signer: "sha256:0123456789abcdef".to_owned(),
            applied_at: "2026-12-07T14:00:00Z".to_owned(),
        }),
        refused: None,
        state: if ready {
            EnvironmentState::Ready
        } else {
            EnvironmentState::Reconciling
        },
        pipelines: vec![PipelineStatus {
            name: "sensor-ingest".to_owned(),
            application: "sensor-ingest".to_owned(),
            version: Some("sha-2ada642ee5de".to_owned()),
            state: if ready {
                PipelineState::Deployed
            } else {
                PipelineState::Reconciling
            },
            reason: (!ready).then(|| "deploying sha-2ada642ee5de".to_owned()),
            artifacts: vec![ArtifactStatus {
                unit: "parse".to_owned(),
                image: format!("127.0.0.1:5000/etl/sensor-ingest-parse@{DIGEST}"),
                component_digest: DIGEST.to_owned(),
            }],
            units: vec![],
        }],
    }
}

/// A unit's counts after `n` records in: a tenth filtered, 3 dead-lettered, 2 failed.
pub fn unit(name: &str, kind: NodeKind, n: u64, rates: Rates) -> UnitMetrics {
    let filtered = n / 10;
    UnitMetrics {
        name: name.to_owned(),
        kind,
        counters: Counters {
            batches: n / 50,
            input: Flow {
                records: n,
                bytes: 120 * n,
            },
            out: Flow {
                records: n - filtered - 5,
                bytes: 100 * (n - filtered - 5),
            },
            produced: n - filtered - 5,
            filtered,
            dead_lettered: [("not_json".to_owned(), 3)].into(),
            failed: [(Failure::Transient, 2)].into(),
            transient: 6,
            retries: 4,
            ..Counters::default()
        },
        rates,
    }
}

/// dev, ready, with two pipelines whose steps and sinks reported: `n` records in at each
/// pipeline's first step, and the controller's rates when `rated` (else none).
pub fn document_with_units(n: u64, rated: bool) -> ControllerStatus {
    let rates = |input: f64| {
        if rated {
            Rates {
                input,
                out: input * 0.9,
                errors: 0.1,
            }
        } else {
            Rates::default()
        }
    };
    let mut doc = document(BUNDLE, DIGEST, true);
    doc.pipelines[0].units = vec![
        unit("warehouse", NodeKind::Sink, n * 9 / 10 - 5, rates(18.0)),
        unit("parse", NodeKind::Step, n, rates(20.0)),
        unit("enrich", NodeKind::Step, n * 9 / 10 - 5, rates(18.0)),
    ];
    let mut alerts = doc.pipelines[0].clone();
    alerts.name = "alerts".to_owned();
    alerts.application = "alerts".to_owned();
    alerts.version = Some("sha-77e0c1a2b3d4".to_owned());
    alerts.artifacts.clear();
    alerts.units = vec![
        unit("threshold", NodeKind::Step, n / 4, rates(5.0)),
        unit("pager", NodeKind::Sink, n / 40, rates(0.5)),
    ];
    doc.pipelines.push(alerts);
    doc
}

/// A dead letter of sensor-ingest's `parse`.
pub fn dead_letter(id: &str, reason: &str, at: &str) -> DeadLetter {
    DeadLetter {
        id: id.to_owned(),
        pipeline: "sensor-ingest".to_owned(),
        step: "parse".to_owned(),
        reason: reason.to_owned(),
        class: etl::ops::telemetry::reason_class(reason),
        at: at.to_owned(),
        input_digest: format!("sha256:{}", "7".repeat(64)),
        size: 4096,
        preview: "{\"device\": \"d-17\", \"apiKey\": \"[redacted]\",\n \"temp\": \"hot\""
            .to_owned(),
        truncated: true,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("authorization".to_owned(), "[redacted]".to_owned()),
        ],
        key: Some("d-17".to_owned()),
    }
}
