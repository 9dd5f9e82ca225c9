//! Sub-pipelines run together on one in-memory bus (`tests/fixtures/sub-pipelines`: `orders` →
//! `audit`, which reads step `parse`, → `replay`, which reads `audit`'s `nats` sink `trail`):
//! through the runtime, and through `etl run` and `etl test`.

use crate::common;
use crate::run::{assert_accounted, build, cache, etl, runtime, text, without_times};

use std::path::PathBuf;

use etl::build::deployment::{self, Deployment};
use etl::build::generation::Generation;
use etl_run::artifacts::{self, Artifacts, Origin, Selection};
use etl_run::{LoadedPipeline, Report, RunError};

fn fixture() -> PathBuf {
    common::sub_pipelines()
}

fn deploy(validation: &etl::spec::Validation, env: &str, pipelines: &[&str]) -> Vec<Deployment> {
    pipelines
        .iter()
        .map(|p| deployment::deploy(&validation.repo, env, p).unwrap())
        .collect()
}

fn load(artifacts: &Artifacts, deployments: &[Deployment]) -> Result<LoadedPipeline, RunError> {
    let together: Vec<_> = deployments
        .iter()
        .map(|d| (d, &artifacts[&d.pipeline]))
        .collect();
    runtime().load_together(&together)
}

fn run(pipeline: &LoadedPipeline, inputs: &[&str]) -> Report {
    let inputs: Vec<_> = inputs.iter().map(|p| text(p)).collect();
    let report = pipeline
        .run(&inputs, &etl_run::Limits::default(), &mut |_| {})
        .unwrap();
    assert_accounted(&report);
    report
}

/// (input, sink, target, payload) of every delivery.
fn deliveries(report: &Report) -> Vec<(usize, &str, &str, String)> {
    report
        .sinks
        .iter()
        .map(|s| {
            (
                s.input,
                s.sink.as_str(),
                s.target.as_str(),
                String::from_utf8_lossy(&s.record.payload).into_owned(),
            )
        })
        .collect()
}

#[test]
fn records_entering_a_pipeline_reach_its_sub_pipelines_on_one_bus() {
    let (validation, artifacts) = build(&fixture());
    for (env, trail) in [
        ("dev", "relay.dev.audit.trail"),
        ("staging", "relay.staging.audit.trail"),
    ] {
        let deployments = deploy(&validation, env, &["orders", "audit", "replay"]);
        let pipeline = load(&artifacts, &deployments).unwrap();
        let report = run(&pipeline, &["order-1", "invalid:bad", "many:2"]);
        let o = |i, sink, target, payload: &str| (i, sink, target, payload.to_owned());
        assert_eq!(
            deliveries(&report),
            [
                o(0, "orders/archive", "relay.orders.archive", "order-1"),
                o(0, "audit/trail", trail, "order-1"),
                o(0, "replay/out", "relay.replay.out", "order-1"),
                o(2, "orders/archive", "relay.orders.archive", "0"),
                o(2, "orders/archive", "relay.orders.archive", "1"),
                o(2, "audit/trail", trail, "0"),
                o(2, "audit/trail", trail, "1"),
                o(2, "replay/out", "relay.replay.out", "0"),
                o(2, "replay/out", "relay.replay.out", "1"),
            ],
            "{env}"
        );
        // The dead letter stays in `orders`: nothing reads it.
        let dead: Vec<_> = report
            .dead_letters
            .iter()
            .map(|d| (d.input, d.step.as_str(), d.reason.as_str()))
            .collect();
        assert_eq!(dead, [(1, "orders/parse", "bad")]);
        let counts: Vec<(&str, u64, u64)> = report
            .counts
            .iter()
            .map(|(u, c)| (u.as_str(), c.received, c.emitted))
            .collect();
        assert_eq!(
            counts,
            [
                ("orders/parse", 3, 3),
                ("orders/archive", 3, 3),
                ("audit/audit", 3, 3),
                ("audit/trail", 3, 3),
                ("replay/replay", 3, 3),
                ("replay/out", 3, 3),
            ]
        );
        assert_eq!(report.unconsumed, 0);
    }
}

#[test]
fn alone_a_sub_pipeline_takes_the_input_at_its_source() {
    let (validation, artifacts) = build(&fixture());
    let deployments = deploy(&validation, "dev", &["audit"]);
    assert_eq!(
        deployments[0].source.subject.as_deref(),
        Some("etl.relay.orders.out.parse")
    );
    let pipeline = load(&artifacts, &deployments).unwrap();
    // A key is fine: the source is a subject, not an HTTP request.
    let mut keyed = text("order-1");
    keyed.key = Some(b"k1".to_vec());
    let report = pipeline
        .run(&[keyed], &etl_run::Limits::default(), &mut |_| {})
        .unwrap();
    assert_eq!(
        deliveries(&report),
        [(0, "trail", "relay.dev.audit.trail", "order-1".to_owned())]
    );
    assert_eq!(report.sinks[0].record.key.as_deref(), Some(&b"k1"[..]));
}

#[test]
fn a_pipeline_that_would_receive_nothing_is_refused() {
    let (validation, artifacts) = build(&fixture());
    let refused =
        |pipelines: &[&str]| match load(&artifacts, &deploy(&validation, "dev", pipelines)) {
            Err(e @ RunError::Together { .. }) => e.to_string(),
            Err(e) => panic!("{pipelines:?}: {e}"),
            Ok(_) => panic!("{pipelines:?} loaded"),
        };
    assert_eq!(
        refused(&["orders", "replay"]),
        "pipeline `replay` cannot run with the others: its source `trail` reads \
         `relay.dev.audit.trail`, which none of `orders` publishes (run the pipelines in between \
         too)"
    );
    assert_eq!(
        refused(&["audit", "orders"]),
        "pipeline `orders` cannot run with the others: its source `ingest` is `http`, and records \
         enter `audit` only"
    );
    assert!(refused(&["orders", "audit", "audit"]).contains("it is named twice"));
    // In any order after the first: `replay` reads `audit`, named after it.
    assert!(
        load(
            &artifacts,
            &deploy(&validation, "dev", &["orders", "replay", "audit"])
        )
        .is_ok()
    );
}

/// A pipeline reading another's dead letters (a `nats` source with a wildcard) receives them as
/// on NATS.
#[test]
fn dead_letters_and_wildcard_subscriptions_reach_a_pipeline_run_with_them() {
    let tmp = tempfile::tempdir().unwrap();
    common::copy(&fixture(), tmp.path());
    let replay = std::fs::read_to_string(tmp.path().join("pipelines/replay.yaml")).unwrap();
    let rejects = replay
        .replace("name: replay\n", "name: rejects\n")
        .replace("from: [replay]", "from: [rejects]")
        .replace(
            "    name: trail\n    connector: pipeline\n    with: { pipeline: audit, from: trail }",
            "    name: trail\n    connector: nats\n    with: { subject: \"etl.relay.orders.dlq.*\" }",
        )
        .replace("subject: relay.replay.out", "subject: relay.rejects.out");
    assert_ne!(rejects, replay);
    std::fs::write(tmp.path().join("pipelines/rejects.yaml"), rejects).unwrap();
    let (validation, artifacts) = build(tmp.path());
    let pipeline = load(
        &artifacts,
        &deploy(&validation, "dev", &["orders", "rejects"]),
    )
    .unwrap();
    let report = run(&pipeline, &["order-1", "dead-end"]);
    assert_eq!(report.sinks.len(), 2, "{:?}", report.sinks);
    let report = run(&pipeline, &["invalid:bad"]);
    // `orders` dead-letters it; `rejects` receives the dead letter (and, the chaos component
    // reading the same command, dead-letters it too).
    let dead: Vec<_> = report
        .dead_letters
        .iter()
        .map(|d| d.step.as_str())
        .collect();
    assert_eq!(dead, ["orders/parse", "rejects/rejects"]);
    // What `rejects` received is the dead letter as the subject carries it: the record and
    // `orders`' reason in header `etl-error`.
    let header = report.dead_letters[1]
        .record
        .headers
        .iter()
        .find(|(k, _)| k == "etl-error");
    assert_eq!(header, Some(&("etl-error".to_owned(), "bad".to_owned())));
}

#[test]
fn a_selection_keeps_what_its_pipelines_read_and_adds_what_reads_them() {
    let origin = Origin::Build(Some(etl::store::Cache::new(cache().to_owned())));
    let prepare = |named: &[&str], downstream| {
        let selection = Selection {
            named: named.iter().map(|s| s.to_string()).collect(),
            downstream,
        };
        artifacts::prepare_only(&fixture(), &origin, &selection, Generation::V2).unwrap()
    };
    let names = |p: &artifacts::Prepared| -> Vec<String> {
        p.validation
            .repo
            .pipelines
            .iter()
            .map(|p| p.spec.metadata.name.to_string())
            .collect()
    };
    // `replay` alone is planned with what it reads: `audit`, and `orders` that `audit` reads.
    let replay = prepare(&["replay"], false);
    assert_eq!(replay.pipelines, ["replay"]);
    assert_eq!(names(&replay), ["audit", "orders", "replay"]);
    assert!(replay.validation.repo.tests.is_empty());
    let audit = prepare(&["audit"], false);
    assert_eq!(names(&audit), ["audit", "orders"]);
    let tests: Vec<&str> = audit
        .validation
        .repo
        .tests
        .iter()
        .map(|t| t.spec.metadata.name.as_str())
        .collect();
    assert_eq!(tests, ["audit-echo"]);
    // Downstream: what reads `orders`, then what reads that.
    assert_eq!(
        prepare(&["orders"], true).pipelines,
        ["orders", "audit", "replay"]
    );
    assert_eq!(prepare(&["audit"], true).pipelines, ["audit", "replay"]);
    assert_eq!(prepare(&["replay"], true).pipelines, ["replay"]);
    assert_eq!(
        prepare(&[], false).pipelines,
        ["audit", "orders", "replay"],
        "none named: all, in repo order"
    );
}

// --- the `etl` binary ------------------------------------------------------------------------

const INPUT: &str = "{\"payload\": \"order-1\"}\n{\"payload\": \"invalid:bad\"}\n";

#[test]
fn etl_run_runs_several_pipelines_and_names_each_unit_with_its_pipeline() {
    let repo = "tests/fixtures/sub-pipelines";
    // From a regular file, whose batches are full: both records in one request to `orders`'
    // HTTP source, so their ids (`run-0-<i>`) are the same every run. From stdin a batch is
    // what has arrived, and the second record may start a request of its own (`run-1-0`).
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input.jsonl");
    std::fs::write(&input, INPUT).unwrap();
    let input = input.to_str().unwrap();
    let (code, stdout, stderr) = etl(
        &[
            "run", "orders", "audit", "replay", "--repo", repo, "--input", input,
        ],
        "",
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    insta::assert_snapshot!("run_orders_audit_replay", without_times(&stdout));
    // `--downstream` finds the same pipelines.
    let (code, downstream, _) = etl(
        &[
            "run",
            "orders",
            "--downstream",
            "--repo",
            repo,
            "--input",
            input,
        ],
        "",
    );
    assert_eq!(code, Some(0));
    assert_eq!(without_times(&downstream), without_times(&stdout));
    // JSON lines name the unit the same way; staging's subjects are staging's.
    let (code, jsonl, _) = etl(
        &[
            "run",
            "orders",
            "--downstream",
            "--repo",
            repo,
            "--env",
            "staging",
            "--format",
            "jsonl",
        ],
        INPUT,
    );
    assert_eq!(code, Some(0));
    assert!(
        jsonl.contains(
            r#"{"type":"sink","input":0,"sink":"audit/trail","target":"relay.staging.audit.trail","record":{"payload":"order-1","headers":{"etl-id":"run-0-0.0.0.0"}}}"#
        ),
        "{jsonl}"
    );
    assert!(jsonl.contains(r#""units":{"orders/parse":"#), "{jsonl}");
    // One pipeline alone: names as before, and a sub-pipeline takes the input at its source.
    let (code, alone, _) = etl(&["run", "audit", "--repo", repo], INPUT);
    assert_eq!(code, Some(0));
    // Its id is the one its source gives a message of the stream it reads (`<stream>:<seq>-<i>`).
    assert!(
        alone.starts_with(
            "record 0 → trail (relay.dev.audit.trail): order-1  etl-id: ETL_DATA_relay_"
        ),
        "{alone}"
    );
    assert!(
        alone.contains("record 1 ✗ dead letter at audit: bad"),
        "{alone}"
    );
}

#[test]
fn etl_run_refuses_a_pipeline_that_would_receive_nothing() {
    let repo = "tests/fixtures/sub-pipelines";
    let (code, stdout, stderr) = etl(&["run", "orders", "replay", "--repo", repo], INPUT);
    assert_eq!(code, Some(2), "{stdout}");
    assert_eq!(
        stderr,
        "error: pipeline `replay` cannot run with the others: its source `trail` reads \
         `relay.dev.audit.trail`, which none of `orders` publishes (run the pipelines in between \
         too)\n"
    );
    let (code, _, stderr) = etl(&["run", "orders", "audti", "--repo", repo], INPUT);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("did you mean `audit`?"), "{stderr}");
}

#[test]
fn etl_test_runs_a_sub_pipelines_fixture_at_its_source() {
    let repo = "tests/fixtures/sub-pipelines";
    let (code, stdout, stderr) = etl(&["test", "--repo", repo], "");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("running 2 fixtures\n"), "{stdout}");
    assert!(
        stdout.contains("test audit-echo (audit @ dev) ... ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("test orders-echo (orders @ staging) ... ok"),
        "{stdout}"
    );
    let (code, stdout, _) = etl(&["test", "--repo", repo, "audit"], "");
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("running 1 fixture\n"), "{stdout}");
}
