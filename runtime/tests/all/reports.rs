//! Reports and replays on the local runner. Deployed units report each batch to their
//! `etl.report.subject`, and every step also subscribes to its replay subject; locally nothing
//! collects reports, so the runner configures no report subject (no key, no report), and nothing
//! publishes to a replay subject, so records take the same path as without it.

use etl::build::deployment::{self, REPORT_SUBJECT};
use etl::build::generation::Generation;
use etl_run::artifacts::{self, Origin};
use etl_run::{Limits, Record, Runtime};

use crate::common;

#[test]
fn the_example_runs_without_reports_and_its_replay_subscriptions_stay_quiet() {
    for generation in Generation::ALL {
        let (validation, built) =
            artifacts::prepare(&common::example(), &Origin::Build(None), generation).unwrap();
        assert!(!validation.has_errors(), "{:#?}", validation.diagnostics);
        let built = built.expect("the example compiles");
        let deployment = deployment::deploy(&validation.repo, "dev", "sensor-ingest").unwrap();
        for unit in &deployment.units {
            assert!(unit.config.contains_key(REPORT_SUBJECT), "{}", unit.name);
            assert!(!unit.local_config(&[]).contains_key(REPORT_SUBJECT));
        }
        // `parse`, fed by the HTTP source, subscribes to its replay subject alone.
        let parse = &deployment.units[0];
        assert!(parse.http);
        assert_eq!(parse.subscriptions, [parse.replay.clone().unwrap()]);

        let mut pipeline = Runtime::new(None)
            .unwrap()
            .load(&deployment, &built["sensor-ingest"])
            .unwrap();
        assert!(
            pipeline
                .set_secrets(|_| Some("Bearer local".to_owned()))
                .is_empty()
        );
        let hot = Record {
            payload: br#"{"sensor": "t-101", "temp_c": 82.5, "ts": "2026-11-01T12:00:00Z"}"#
                .to_vec(),
            ..Record::default()
        };
        let report = pipeline
            .run(&[hot], &Limits::default(), &mut |_| {})
            .unwrap();
        assert!(report.failures.is_empty(), "{:#?}", report.failures);
        let sinks: Vec<&str> = report.sinks.iter().map(|s| s.sink.as_str()).collect();
        assert_eq!(sinks.len(), 2, "{sinks:?}");
        assert!(sinks.contains(&"alerts") && sinks.contains(&"archive"));
        // Each unit got the record once, over HTTP or its input's subject; nothing was
        // published that nothing reads (a report would be).
        for (unit, counts) in &report.counts {
            assert_eq!(counts.received, 1, "{generation}: {unit}");
        }
        assert_eq!(report.unconsumed, 0, "{generation}");
    }
}
