//! Outbound HTTP by policy, run for real: `tests/fixtures/egress` (its step `price` is the
//! `lookup` example component, which POSTs each record to its `url` and merges the answer in)
//! against loopback APIs of this test, with the artifacts of both wasmCloud generations. What
//! the grant names is reached, and the answer merged; any other host is denied by the step's
//! egress part before anything leaves the component (the API sees no request), and the record is
//! dead-lettered as `lookup` documents it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use etl::build::generation::Generation;
use etl_run::artifacts::{self, Origin};
use etl_run::{FailureKind, Limits, Record, Report, Runtime};
use serde_json::{Value as Json, json};

/// One request an API received.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Received {
    method: String,
    path: String,
    host: String,
    body: Vec<u8>,
}

/// A loopback HTTP/1.1 API on a port of its own, one connection at a time: it answers
/// `GET`/`POST /status/<code>` with that status, and anything else with `200` and the JSON
/// object `{"amount": 42, "currency": "EUR"}`; it keeps every request it received.
struct Api {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Api {
    fn start() -> Api {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        // The thread ends with the test binary; it holds nothing but the listener.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &log);
            }
        });
        Api { port, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Reads one request (a `content-length` body), keeps it in `log` and answers it — kept
/// before the answer is written, so that a caller that has the answer finds it kept.
fn serve(stream: TcpStream, log: &Mutex<Vec<Received>>) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let (mut host, mut length) = (String::new(), 0usize);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "host" => host = value.trim().to_owned(),
            "content-length" => length = value.trim().parse().ok()?,
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (status, answer) = match path.strip_prefix("/status/") {
        Some(code) => (code.parse().unwrap_or(500), "{}".to_owned()),
        None => (200u16, r#"{"amount":42,"currency":"EUR"}"#.to_owned()),
    };
    log.lock().unwrap().push(Received {
        method,
        path,
        host,
        body,
    });
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{answer}",
        answer.len()
    );
    Some(())
}

/// A copy of the fixture in `dir` whose step `price` calls `url` and is granted `hosts` (a YAML
/// flow list).
fn fixture(dir: &Path, url: &str, hosts: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/egress");
    for sub in ["components", "pipelines"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
        }
    }
    let original = std::fs::read_to_string(root.join("etl.yaml")).unwrap();
    let project = original.replace("http://api.acme.example/prices", url);
    assert_ne!(project, original, "the fixture's prices_url moved");
    std::fs::write(dir.join("etl.yaml"), project).unwrap();
    let pipeline = dir.join("pipelines/orders.yaml");
    let original = std::fs::read_to_string(&pipeline).unwrap();
    let text = original.replace(
        r#"hosts: [api.acme.example, "https://x.example:8443", "*.acme.example"]"#,
        &format!("hosts: {hosts}"),
    );
    assert_ne!(text, original, "the fixture's hosts moved");
    std::fs::write(pipeline, text).unwrap();
}

/// The order `record` through `orders` in `dev` of the repo at `dir`, on `generation`'s
/// artifacts.
fn run(dir: &Path, generation: Generation, limits: &Limits) -> Report {
    // The edits touch configuration only: every run composes the same components, once.
    let cache = etl::store::Cache::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("egress-cache"));
    let (validation, artifacts) =
        artifacts::prepare(dir, &Origin::Build(Some(cache)), generation).unwrap();
    assert!(!validation.has_errors(), "{:#?}", validation.diagnostics);
    let artifacts = artifacts.expect("the repo compiles");
    let deployment = etl::build::deployment::deploy(&validation.repo, "dev", "orders").unwrap();
    let pipeline = Runtime::new(None)
        .unwrap()
        .load(&deployment, &artifacts["orders"])
        .unwrap();
    pipeline.run(&[order()], limits, &mut |_| {}).unwrap()
}

fn order() -> Record {
    Record {
        key: None,
        payload: br#"{"order":7,"sku":"A-1"}"#.to_vec(),
        headers: Vec::new(),
    }
}

fn json_of(bytes: &[u8]) -> Json {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn a_granted_host_is_called_and_its_answer_merged_on_both_generations() {
    let api = Api::start();
    let dir = tempfile::tempdir().unwrap();
    let port = api.port;
    fixture(
        dir.path(),
        &format!("http://127.0.0.1:{port}/prices?currency=EUR"),
        &format!(r#"["127.0.0.1:{port}"]"#),
    );
    for (i, generation) in Generation::ALL.into_iter().enumerate() {
        let report = run(dir.path(), generation, &Limits::default());
        assert!(
            report.failures.is_empty() && report.dead_letters.is_empty(),
            "{generation}: {report:#?}"
        );
        assert_eq!(report.sinks.len(), 1, "{generation}");
        let sink = &report.sinks[0];
        assert_eq!(sink.sink, "priced");
        assert_eq!(
            json_of(&sink.record.payload),
            json!({"order": 7, "sku": "A-1", "price": {"amount": 42, "currency": "EUR"}}),
            "{generation}"
        );
        // The API got the record, as the step sent it, once per generation.
        let received = api.received();
        assert_eq!(received.len(), i + 1, "{generation}: {received:#?}");
        let last = received.last().unwrap();
        assert_eq!(
            (last.method.as_str(), last.path.as_str()),
            ("POST", "/prices?currency=EUR")
        );
        assert_eq!(last.host, format!("127.0.0.1:{port}"));
        assert_eq!(json_of(&last.body), json!({"order": 7, "sku": "A-1"}));
    }
}

#[test]
fn any_other_host_is_denied_before_it_is_called_and_the_record_dead_lettered() {
    let granted = Api::start();
    let other = Api::start();
    // Another host name for the same API, and another port of the same address: neither is
    // what the grant names.
    let urls = [
        format!("http://localhost:{}/prices", granted.port),
        format!("http://127.0.0.1:{}/prices", other.port),
    ];
    for url in &urls {
        let dir = tempfile::tempdir().unwrap();
        fixture(
            dir.path(),
            url,
            &format!(r#"["127.0.0.1:{}"]"#, granted.port),
        );
        for generation in Generation::ALL {
            let report = run(dir.path(), generation, &Limits::default());
            assert!(
                report.sinks.is_empty() && report.failures.is_empty(),
                "{report:#?}"
            );
            assert_eq!(report.dead_letters.len(), 1, "{generation} {url}");
            let dead = &report.dead_letters[0];
            assert_eq!(dead.step, "price");
            assert_eq!(
                dead.reason,
                format!("egress denied: the step may not call {url} (its host is not granted)")
            );
            // A dead letter keeps its input's id: record 0 of the runner's request `run-0`.
            let mut record = order();
            record
                .headers
                .push(("etl-id".to_owned(), "run-0-0".to_owned()));
            assert_eq!(dead.record, record);
            let counts = report.counts_of("price").unwrap();
            assert_eq!((counts.received, counts.dead_lettered), (1, 1));
        }
    }
    assert!(granted.received().is_empty(), "{:#?}", granted.received());
    assert!(other.received().is_empty(), "{:#?}", other.received());
}

#[test]
fn what_the_api_answers_decides_the_record_as_the_component_documents() {
    let api = Api::start();
    let port = api.port;
    let limits = Limits {
        retries: 1,
        ..Limits::default()
    };
    for generation in Generation::ALL {
        // 503: a passing fault, retried, then a `transient` failure.
        let dir = tempfile::tempdir().unwrap();
        fixture(
            dir.path(),
            &format!("http://127.0.0.1:{port}/status/503"),
            &format!(r#"["http://127.0.0.1:{port}"]"#),
        );
        let before = api.received().len();
        let report = run(dir.path(), generation, &limits);
        assert_eq!(report.failures.len(), 1, "{generation}: {report:#?}");
        let failure = &report.failures[0];
        assert_eq!(
            (failure.kind, failure.attempts),
            (FailureKind::Transient, 2)
        );
        assert!(
            failure.message.contains("the API answered 503"),
            "{failure:?}"
        );
        assert_eq!(api.received().len(), before + 2);

        // 404: the API refuses this record: dead-lettered, not retried.
        let dir = tempfile::tempdir().unwrap();
        fixture(
            dir.path(),
            &format!("http://127.0.0.1:{port}/status/404"),
            r#"["*.nowhere.example", "127.0.0.1"]"#,
        );
        let report = run(dir.path(), generation, &limits);
        assert_eq!(report.dead_letters.len(), 1, "{generation}: {report:#?}");
        assert_eq!(
            report.dead_letters[0].reason,
            format!("http://127.0.0.1:{port}/status/404: the API answered 404")
        );
    }
}
