//! At-least-once delivery over JetStream on the local runner (docs/running.md): a unit whose
//! configuration has `etl.in.max-deliver` gets each message with a `$JS.ACK.` reply-to carrying
//! the delivery count; its `+ACK` ends the message, a `-NAK` or no answer (a trap) delivers it
//! again, and the last delivery dead-letters what still fails. The `chaos` fixture's
//! `transient:REASON` answers `transient` every time.
//!
//! Until `etl compile` writes the delivery keys, these tests set them on the units' configuration
//! themselves, as the compiler will for an environment with `delivery: {max_deliver: 3}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use etl::build::deployment::{self, Deployment, UnitKind};
use etl::build::generation::Generation;
use etl_run::artifacts::{self, Artifacts, Origin};
use etl_run::{FailureKind, Limits, LoadedPipeline, Record, Report, Runtime, UnitCounts};

fn chaos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/chaos")
}

/// The chaos repo, compiled once for every test here: the deployments of `chaos` (a `nats`
/// source) and `chaos-http` (an `http` source), and the artifacts.
fn built_all() -> &'static (Deployment, Deployment, Artifacts) {
    static BUILT: OnceLock<(Deployment, Deployment, Artifacts)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cache =
            etl::store::Cache::new(Path::new(env!("CARGO_TARGET_TMPDIR")).join("jetstream-cache"));
        let (validation, artifacts) =
            artifacts::prepare(&chaos(), &Origin::Build(Some(cache)), Generation::V2).unwrap();
        assert!(!validation.has_errors(), "{:#?}", validation.diagnostics);
        let deployment = deployment::deploy(&validation.repo, "dev", "chaos").unwrap();
        let http = deployment::deploy(&validation.repo, "dev", "chaos-http").unwrap();
        (deployment, http, artifacts.expect("the fixture compiles"))
    })
}

/// The `chaos` deployment and the artifacts.
fn built() -> (&'static Deployment, &'static Artifacts) {
    let (deployment, _, artifacts) = built_all();
    (deployment, artifacts)
}

/// The `chaos` pipeline with `keys` set on every unit (`None`: removed), a step's
/// `etl.in.dead-letter` being its dead-letter subject and a sink's `etl.chaos.chaos.dlq.<sink>`.
fn pipeline(keys: &[(&str, Option<&str>)]) -> LoadedPipeline {
    let (deployment, artifacts) = built();
    let mut deployment = deployment.clone();
    for unit in &mut deployment.units {
        for (key, value) in keys {
            match value {
                Some(v) => unit.config.insert((*key).to_owned(), (*v).to_owned()),
                None => unit.config.remove(*key),
            };
        }
        if unit.config.contains_key("etl.in.max-deliver") {
            let dead_letter = match unit.kind {
                UnitKind::Step => unit.dead_letter.clone().expect("a step has one"),
                UnitKind::Sink(_) => format!("etl.chaos.chaos.dlq.{}", unit.name),
            };
            unit.config
                .insert("etl.in.dead-letter".to_owned(), dead_letter);
            if unit.kind == UnitKind::Step {
                unit.config
                    .insert("etl.out.confirm".to_owned(), "jetstream".to_owned());
            }
        }
    }
    let artifacts: &BTreeMap<String, etl_run::Artifact> = &artifacts["chaos"];
    Runtime::new(None)
        .unwrap()
        .load(&deployment, artifacts)
        .unwrap()
}

/// At-least-once with `max_deliver` deliveries, the NAK delays of an environment's
/// `backoff: [1s, 5s]`.
fn at_least_once(max_deliver: &str) -> LoadedPipeline {
    pipeline(&[
        ("etl.in.max-deliver", Some(max_deliver)),
        ("etl.in.redelivery-backoff", Some("1000,5000")),
    ])
}

fn text(payload: &str) -> Record {
    Record {
        payload: payload.as_bytes().to_vec(),
        ..Record::default()
    }
}

fn run(pipeline: &LoadedPipeline, payloads: &[&str]) -> Report {
    let inputs: Vec<Record> = payloads.iter().map(|p| text(p)).collect();
    let report = pipeline
        .run(&inputs, &Limits::default(), &mut |_| {})
        .unwrap();
    // Every record a unit received ends in exactly one outcome.
    for (unit, c) in &report.counts {
        assert_eq!(
            c.received,
            c.produced + c.filtered + c.dead_lettered + c.failed,
            "{unit}: {c:?}"
        );
    }
    report
}

fn sunk(report: &Report) -> Vec<(usize, String)> {
    report
        .sinks
        .iter()
        .map(|s| {
            (
                s.input,
                String::from_utf8(s.record.payload.clone()).unwrap(),
            )
        })
        .collect()
}

fn counts(report: &Report, unit: &str) -> UnitCounts {
    *report.counts_of(unit).unwrap()
}

#[test]
fn a_permanently_transient_record_is_redelivered_max_deliver_times_then_dead_lettered() {
    let pipeline = at_least_once("3");
    // One batch: the transient record between two that pass, which log on every call of
    // theirs (a call's lines go with the batch's first record).
    let report = run(&pipeline, &["log:first", "transient:busy", "last"]);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);

    // The records that passed were delivered once, though the batch was delivered 3 times.
    assert_eq!(
        sunk(&report),
        [(0, "log:first".to_owned()), (2, "last".to_owned())]
    );
    let out = counts(&report, "out");
    assert_eq!((out.received, out.produced, out.retries), (2, 2, 0));

    // The transient one: a dead letter of the step after the 3rd delivery, as it came, with
    // the delivery count.
    assert_eq!(report.dead_letters.len(), 1, "{:#?}", report.dead_letters);
    let dead = &report.dead_letters[0];
    assert_eq!((dead.step.as_str(), dead.input), ("chaos", 1));
    assert_eq!(dead.reason, "transient: busy");
    assert_eq!(dead.record.payload, b"transient:busy");
    // Its id: record 1 of the message at stream sequence 1 (the runner's JetStream model).
    assert_eq!(
        dead.record.headers,
        [
            ("etl-deliveries".to_owned(), "3".to_owned()),
            ("etl-id".to_owned(), "ETL_DATA_chaos_chaos:1-1".to_owned())
        ]
    );

    // 3 deliveries, so 3 calls: the first record was transformed (and logged) on each.
    let logged: Vec<&str> = report
        .logs
        .iter()
        .filter(|(unit, _, line)| unit == "chaos" && line.message == "first")
        .map(|(_, _, line)| line.message.as_str())
        .collect();
    assert_eq!(logged.len(), 3, "{:#?}", report.logs);
    let chaos = counts(&report, "chaos");
    assert_eq!(
        (
            chaos.received,
            chaos.produced,
            chaos.dead_lettered,
            chaos.failed,
            chaos.retries
        ),
        (3, 2, 1, 0, 2)
    );
}

#[test]
fn a_batch_without_transient_records_is_delivered_at_the_first_delivery() {
    let report = run(&at_least_once("3"), &["a", "invalid:bad: input", "b"]);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(sunk(&report), [(0, "a".to_owned()), (2, "b".to_owned())]);
    // `invalid` stays a dead letter of its own, without a delivery count.
    assert_eq!(report.dead_letters.len(), 1);
    assert_eq!(report.dead_letters[0].reason, "bad: input");
    assert_eq!(
        report.dead_letters[0].record.headers,
        [("etl-id".to_owned(), "ETL_DATA_chaos_chaos:1-1".to_owned())]
    );
    assert_eq!(counts(&report, "chaos").retries, 0);
}

#[test]
fn one_delivery_dead_letters_at_once() {
    let report = run(&at_least_once("1"), &["transient:down", "x"]);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(sunk(&report), [(1, "x".to_owned())]);
    let dead = &report.dead_letters[0];
    assert_eq!(dead.reason, "transient: down");
    assert_eq!(
        dead.record.headers,
        [
            ("etl-deliveries".to_owned(), "1".to_owned()),
            ("etl-id".to_owned(), "ETL_DATA_chaos_chaos:1-0".to_owned())
        ]
    );
    assert_eq!(counts(&report, "chaos").retries, 0);
}

#[test]
fn a_trap_is_not_acknowledged_and_fails_after_max_deliver_deliveries() {
    let report = run(&at_least_once("3"), &["trap"]);
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    let failure = &report.failures[0];
    assert_eq!((failure.kind, failure.attempts), (FailureKind::Trap, 3));
    assert!(
        failure
            .message
            .contains("not acknowledged after 3 deliveries"),
        "{}",
        failure.message
    );
    assert!(report.dead_letters.is_empty() && report.sinks.is_empty());
    assert_eq!(counts(&report, "chaos").retries, 2);
}

#[test]
fn without_max_deliver_a_transient_record_fails_as_before() {
    let report = run(
        &pipeline(&[("etl.in.max-deliver", None)]),
        &["transient:busy", "ok"],
    );
    assert!(report.dead_letters.is_empty());
    assert!(report.sinks.is_empty(), "the whole batch failed");
    let kinds: Vec<(FailureKind, u32)> = report
        .failures
        .iter()
        .map(|f| (f.kind, f.attempts))
        .collect();
    assert_eq!(
        kinds,
        [(FailureKind::Transient, 3), (FailureKind::Transient, 3)],
        "1 + `--retries` (2) attempts of the whole call"
    );
}

/// The id each sink record carries (its `etl-id` header), by input.
fn sunk_ids(report: &Report) -> Vec<(usize, String)> {
    report
        .sinks
        .iter()
        .map(|s| {
            let id = s
                .record
                .headers
                .iter()
                .find(|(name, _)| name == "etl-id")
                .map(|(_, id)| id.clone())
                .unwrap_or_else(|| panic!("no id: {:?}", s.record));
            (s.input, id)
        })
        .collect()
}

#[test]
fn a_redelivered_batch_gives_its_records_the_same_ids_at_the_sink() {
    let pipeline = at_least_once("3");
    // Delivered 3 times (the transient record makes the first two `-NAK`): the records that
    // passed reach the sink from the 3rd delivery.
    let redelivered = run(&pipeline, &["a", "transient:busy", "b"]);
    assert_eq!(counts(&redelivered, "chaos").retries, 2);
    // Delivered once.
    let once = run(&pipeline, &["a", "c", "b"]);
    assert_eq!(counts(&once, "chaos").retries, 0);
    // Record i of the message at stream sequence 1 is `ETL_DATA_chaos_chaos:1-<i>`; its output
    // 0 at the step `.0`, and again at the sink (whose transform is `identity`).
    let expected = [
        (0, "ETL_DATA_chaos_chaos:1-0.0.0".to_owned()),
        (2, "ETL_DATA_chaos_chaos:1-2.0.0".to_owned()),
    ];
    assert_eq!(sunk_ids(&redelivered), expected);
    assert_eq!(sunk_ids(&once)[0], expected[0]);
    assert_eq!(sunk_ids(&once)[2], expected[1]);
    // The next batch's message has its own stream sequence: no id repeats.
    let inputs: Vec<Record> = (0..150).map(|i| text(&format!("r{i}"))).collect();
    let report = pipeline
        .run(&inputs, &Limits::default(), &mut |_| {})
        .unwrap();
    let ids = sunk_ids(&report);
    assert_eq!(ids.len(), 150);
    assert_eq!(ids[100].1, "ETL_DATA_chaos_chaos:101-0.0.0");
    let mut distinct: Vec<&String> = ids.iter().map(|(_, id)| id).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 150);
}

#[test]
fn an_id_given_at_a_messaging_source_is_kept_and_derived_from() {
    let pipeline = at_least_once("3");
    let mut given = text("a");
    given
        .headers
        .push(("etl-id".to_owned(), "order-17".to_owned()));
    let report = pipeline
        .run(&[given, text("b")], &Limits::default(), &mut |_| {})
        .unwrap();
    assert_eq!(
        sunk_ids(&report),
        [
            (0, "order-17.0.0".to_owned()),
            (1, "ETL_DATA_chaos_chaos:1-1.0.0".to_owned())
        ]
    );
}

/// The `chaos-http` pipeline (an `http` source).
fn http_pipeline() -> LoadedPipeline {
    let (_, deployment, artifacts) = built_all();
    Runtime::new(None)
        .unwrap()
        .load(deployment, &artifacts["chaos-http"])
        .unwrap()
}

#[test]
fn records_from_an_http_source_get_ids_from_the_requests_key() {
    let pipeline = http_pipeline();
    // Without an Idempotency-Key the runner sends `run-<first input>`, so runs are
    // reproducible; record i of a request gets `<key>-<i>`.
    let inputs = [text("a"), text("b")];
    let report = pipeline
        .run(&inputs, &Limits::default(), &mut |_| {})
        .unwrap();
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert_eq!(
        sunk_ids(&report),
        [(0, "run-0-0.0.0".to_owned()), (1, "run-0-1.0.0".to_owned())]
    );
    // A client's key: a retry of the request gives the same ids.
    let keyed = |payload: &str| {
        let mut r = text(payload);
        r.headers
            .push(("Idempotency-Key".to_owned(), "order-17".to_owned()));
        r
    };
    for _ in 0..2 {
        let report = pipeline
            .run(&[keyed("a")], &Limits::default(), &mut |_| {})
            .unwrap();
        assert_eq!(sunk_ids(&report), [(0, "order-17-0.0.0".to_owned())]);
    }
    // A key that is not one is refused (400), naming the header.
    let mut bad = text("a");
    bad.headers
        .push(("Idempotency-Key".to_owned(), "not a key".to_owned()));
    let report = pipeline
        .run(&[bad], &Limits::default(), &mut |_| {})
        .unwrap();
    assert_eq!(report.failures.len(), 1, "{report:#?}");
    let message = &report.failures[0].message;
    assert!(
        message.contains("400") && message.contains("`Idempotency-Key`"),
        "{message}"
    );
}

/// `delivery.nats_msg_id` (docs/harness.md#record-ids): a wasmCloud 1.x artifact's `msg-id`
/// part publishes each message through `wasmcloud:messaging@0.3.0` with `Nats-Msg-Id`, which the
/// runner serves as a 1.x host with `wasmcloud-messaging-v3` does and shows after the record's
/// `etl-id`: `<id>@<subject>`, the record's id for a message of one, `<first id>+<count>` for a
/// batch; the same on a redelivery.
#[test]
fn with_nats_msg_id_a_1x_unit_publishes_its_messages_under_their_records_ids() {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("chaos");
    copy(&chaos(), &repo);
    let project = repo.join("etl.yaml");
    let text = std::fs::read_to_string(&project).unwrap();
    let edited = text.replacen(
        "\n  policy:\n",
        "\n  delivery:\n    nats_msg_id: true\n  policy:\n",
        1,
    );
    assert_ne!(edited, text);
    std::fs::write(&project, edited).unwrap();
    let (validation, artifacts) =
        artifacts::prepare(&repo, &Origin::Build(None), Generation::V1).unwrap();
    assert!(!validation.has_errors(), "{:#?}", validation.diagnostics);
    let artifacts = artifacts.expect("the fixture compiles");
    let deployment = deployment::deploy(&validation.repo, "dev", "chaos").unwrap();
    let pipeline = Runtime::new(None)
        .unwrap()
        .load(&deployment, &artifacts["chaos"])
        .unwrap();
    let msg_ids = |report: &Report| -> Vec<Option<String>> {
        report
            .sinks
            .iter()
            .map(|s| {
                s.record
                    .headers
                    .iter()
                    .find(|(name, _)| name == "Nats-Msg-Id")
                    .map(|(_, v)| v.clone())
            })
            .collect()
    };
    // One batch of three, two of which reach the sink, in one message to `chaos.out`:
    // `<first id>+2@chaos.out`, on each of its records. The transient record has the message
    // given back until its last delivery, whose message the sink gets under the same id a first
    // delivery's would have.
    let report = run(&pipeline, &["a", "transient:busy", "b"]);
    let first = "ETL_DATA_chaos_chaos:1-0.0.0";
    let batch = Some(format!("{first}+2@chaos.out"));
    assert_eq!(msg_ids(&report), [batch.clone(), batch]);
    // A message of one record: the record's id.
    let report = run(&pipeline, &["c"]);
    assert_eq!(msg_ids(&report), [Some(format!("{first}@chaos.out"))]);
    // Without the setting, no header (the fixture's own artifacts).
    let report = run(&at_least_once("3"), &["a", "b"]);
    assert_eq!(msg_ids(&report), [None, None]);
}
