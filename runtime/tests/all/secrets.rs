//! Secrets on the local runner, as each generation's hosts deliver them, through the composed
//! artifacts of both generations: a 1.x artifact reads them from `wasmcloud:secrets`, a v2 one
//! from its config store, and the runner serves each its own way. An HTTP sink sets its secret
//! and plain headers on every request; a step's secret reaches its customer through
//! `etl:pipeline/config`; a secret without a value fails the record naming the setting and the
//! key, never a value.

use std::collections::BTreeMap;
use std::sync::Arc;

use etl::build::compose::{self, Parts};
use etl::build::deployment::{Deployment, SourceDeployment, UnitDeployment, UnitKind};
use etl::build::generation::Generation;
use etl::build::harness::Part;
use etl::spec::model::{SinkConnector, SourceConnector};
use etl_run::artifacts::{self, Origin};
use etl_run::secrets::SecretValues;
use etl_run::{Artifact, LoadedPipeline, Record, Report, Runtime};

use crate::common;

/// A reading above every environment's threshold.
fn hot() -> Record {
    Record {
        payload: br#"{"sensor": "t-101", "temp_c": 82.5, "ts": "2026-11-01T12:00:00Z"}"#.to_vec(),
        ..Record::default()
    }
}

/// The example with secrets everywhere ([`common::with_secrets`]), compiled for `generation`
/// and loaded for `dev`.
fn with_secrets(
    generation: Generation,
) -> (tempfile::TempDir, etl::spec::Validation, LoadedPipeline) {
    let dir = tempfile::tempdir().unwrap();
    common::with_secrets(dir.path());
    let (validation, built) =
        artifacts::prepare(dir.path(), &Origin::Build(None), generation).unwrap();
    assert!(!validation.has_errors(), "{:#?}", validation.diagnostics);
    let built = built.expect("it compiles");
    let deployment =
        etl::build::deployment::deploy(&validation.repo, "dev", "sensor-ingest").unwrap();
    let pipeline = Runtime::new(None)
        .unwrap()
        .load(&deployment, &built["sensor-ingest"])
        .unwrap();
    (dir, validation, pipeline)
}

fn run(pipeline: &LoadedPipeline) -> Report {
    pipeline
        .run(&[hot()], &etl_run::Limits::default(), &mut |_| {})
        .unwrap()
}

#[test]
fn an_http_sinks_requests_carry_its_secret_and_plain_headers_on_both_generations() {
    for generation in Generation::ALL {
        let (_dir, _, mut pipeline) = with_secrets(generation);
        let values = SecretValues::of(
            common::SECRET_VALUES
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let missing = pipeline.set_secrets(|k| values.get(k));
        assert_eq!(missing, [], "{generation}");
        let report = run(&pipeline);
        assert_eq!(report.failures, [], "{generation}");
        let alerts = report
            .sinks
            .iter()
            .find(|s| s.sink == "alerts")
            .unwrap_or_else(|| panic!("{generation}: nothing at alerts"));
        assert_eq!(
            alerts.record.headers,
            [
                (
                    "authorization".to_owned(),
                    "Bearer fixture-token".to_owned()
                ),
                ("x-api-key".to_owned(), "fixture-api-key".to_owned()),
                ("x-site".to_owned(), "dev-bench".to_owned()),
                // The record's id: record 0 of the runner's request `run-0`, output 0 at each
                // of the steps and at the sink.
                ("idempotency-key".to_owned(), "run-0-0.0.0.0.0".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned()),
            ],
            "{generation}"
        );
        // The Kafka sink's password is its provider's: not needed to run it locally.
        assert!(
            report.sinks.iter().any(|s| s.sink == "to-kafka"),
            "{generation}"
        );
        // What is printed shows the key, never the value.
        let shown = pipeline.redactor().text(&format!("{:?}", alerts.record));
        assert!(
            shown.contains("<secret alerts-webhook-token>") && !shown.contains("fixture-token"),
            "{generation}: {shown}"
        );
    }
}

#[test]
fn the_fixture_checks_the_headers_with_its_own_secret_values_on_both_generations() {
    for generation in Generation::ALL {
        let dir = tempfile::tempdir().unwrap();
        common::with_secrets(dir.path());
        let (validation, built) =
            artifacts::prepare(dir.path(), &Origin::Build(None), generation).unwrap();
        let outcomes = etl_run::test::run_fixtures(
            &Runtime::new(None).unwrap(),
            &validation.repo,
            &built.unwrap(),
            &[],
            &etl_run::Limits::default(),
            &SecretValues::none(),
        )
        .unwrap();
        for o in &outcomes {
            assert_eq!(o.mismatches, [], "{generation}: {}", o.name);
        }
        // bad-record, broken-sensor, fan-out and filtered.
        assert_eq!(outcomes.len(), 4);
    }
}

#[test]
fn a_secret_without_a_value_fails_the_record_naming_the_setting_and_the_key() {
    for generation in Generation::ALL {
        let (_dir, _, mut pipeline) = with_secrets(generation);
        // Every value but the webhook token's.
        let missing = pipeline.set_secrets(|k| {
            common::SECRET_VALUES
                .iter()
                .find(|(key, _)| *key == k && k != "alerts-webhook-token")
                .map(|(_, v)| v.to_string())
        });
        assert_eq!(
            missing.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(),
            ["alerts-webhook-token"]
        );
        let report = run(&pipeline);
        // Fed through JetStream (at least once), the sink's last delivery dead-letters the
        // record it could not deliver; at most once, the record fails.
        let message = match report.failures.iter().find(|f| f.unit == "alerts") {
            Some(failure) => failure.message.clone(),
            None => {
                let dead = report
                    .dead_letters
                    .iter()
                    .find(|d| d.step == "alerts")
                    .unwrap_or_else(|| panic!("{generation}: alerts did not fail"));
                assert!(dead.reason.starts_with("delivery: "), "{}", dead.reason);
                dead.reason.clone()
            }
        };
        assert!(
            message.contains("etl out-http: secret setting `authorization` has no value"),
            "{generation}: {message}"
        );
        assert!(
            message.contains(
                "note: secret `alerts-webhook-token` (setting `authorization` of `alerts`) has no value"
            ),
            "{generation}: {message}"
        );
        for (_, value) in common::SECRET_VALUES {
            assert!(!message.contains(value), "{message}");
        }
        assert!(report.sinks.iter().all(|s| s.sink != "alerts"));
    }
}

/// A one-unit pipeline: the probe customer ([`crate::run_composed::PROBE`]) composed around
/// `generation`'s settings part, fed on `in`, publishing to `out` as a sink, with `step.site`
/// plain and `step.token` secret.
fn probe_pipeline(generation: Generation) -> LoadedPipeline {
    let customer = crate::run_composed::customer_from_wat("probe", crate::run_composed::PROBE);
    let bytes = compose::compose(Parts {
        settings: generation.settings().bytes(),
        customer: &customer,
        outbound: Part::OutMessaging.bytes(),
        inbound: &[Part::InMessaging.bytes()],
        egress: None,
        msg_id: None,
    })
    .unwrap();
    let config = BTreeMap::from([
        ("etl.out.subjects".to_owned(), "out".to_owned()),
        ("etl.secrets".to_owned(), "step.token".to_owned()),
        ("step.site".to_owned(), "plant-7".to_owned()),
    ]);
    let deployment = Deployment {
        project: "p".to_owned(),
        environment: "dev".to_owned(),
        lattice: "l".to_owned(),
        pipeline: "probe".to_owned(),
        source: SourceDeployment {
            name: "in".to_owned(),
            connector: SourceConnector::Nats,
            subject: Some("in".to_owned()),
            settings: BTreeMap::new(),
            secrets: BTreeMap::new(),
            upstream: None,
        },
        units: vec![UnitDeployment {
            name: "probe".to_owned(),
            kind: UnitKind::Sink(SinkConnector::Nats),
            http: false,
            inputs: vec![("in".to_owned(), "in".to_owned())],
            subscriptions: vec!["in".to_owned()],
            publishes: vec!["out".to_owned()],
            dead_letter: None,
            replay: None,
            report: "etl.p.probe.report.probe.dev".to_owned(),
            config,
            settings: BTreeMap::new(),
            secrets: BTreeMap::from([("step.token".to_owned(), "probe-token".to_owned())]),
            link_secrets: BTreeMap::new(),
        }],
    };
    let artifact = Artifact {
        digest: etl::util::digest::sha256(&bytes),
        bytes: Arc::from(bytes),
        egress: Vec::new(),
    };
    Runtime::new(None)
        .unwrap()
        .load(
            &deployment,
            &BTreeMap::from([("probe".to_owned(), artifact)]),
        )
        .unwrap()
}

#[test]
fn a_steps_secret_reaches_its_customer_through_config_on_both_generations() {
    for generation in Generation::ALL {
        let mut pipeline = probe_pipeline(generation);
        pipeline.set_secrets(|k| (k == "probe-token").then(|| "s3cr3t".to_owned()));
        // The probe answers `get(payload)` as the key and `get-all()` as the headers.
        let asked = Record {
            payload: b"token".to_vec(),
            ..Record::default()
        };
        let report = pipeline
            .run(&[asked], &etl_run::Limits::default(), &mut |_| {})
            .unwrap();
        assert_eq!(report.failures, [], "{generation}");
        let out = &report.sinks[0].record;
        assert_eq!(out.key.as_deref(), Some(&b"s3cr3t"[..]), "{generation}");
        assert_eq!(
            out.headers,
            [
                ("site".to_owned(), "plant-7".to_owned()),
                ("token".to_owned(), "s3cr3t".to_owned()),
            ],
            "{generation}: the secret among the step's other settings, and nothing else"
        );

        // Without its value the customer's read traps, naming the setting, not a value.
        let pipeline = probe_pipeline(generation);
        let report = pipeline
            .run(
                &[Record {
                    payload: b"site".to_vec(),
                    ..Record::default()
                }],
                &etl_run::Limits::default(),
                &mut |_| {},
            )
            .unwrap();
        let failure = &report.failures[0];
        assert!(
            failure
                .message
                .contains("the step's secret setting `token` has no value"),
            "{generation}: {}",
            failure.message
        );
        assert!(
            failure.message.contains("secret `probe-token`"),
            "{generation}: {}",
            failure.message
        );
    }
}
