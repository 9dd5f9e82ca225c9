//! The local runner end to end: the example's fixtures through the artifacts `etl compile`
//! wrote, the adversarial `chaos` component record by record, and the checks that keep a run
//! honest (stale or tampered `dist/`, inputs an HTTP source cannot carry, determinism).
//!
//! Every run is bounded by fuel, so a runner that failed to stop a loop fails its test instead
//! of hanging it; the watchdog turns a hang anywhere else into a failure too.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use etl::build::deployment;
use etl::build::generation::Generation;
use etl_run::artifacts::{self, Artifacts, DistError, Origin};
use etl_run::{FailureKind, Limits, LoadedPipeline, Record, Report, Runtime};

/// The example's one secret: its webhook token, and the test value the runs here give it.
const TOKEN_KEY: &str = "alerts-webhook-token";
const TOKEN: &str = "Bearer cli-test-token";

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chaos() -> PathBuf {
    root().join("tests/fixtures/chaos")
}

/// One cache (compositions, compiled code) for every test of this binary.
pub(crate) fn cache() -> &'static Path {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    CACHE.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

pub(crate) fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(Some(cache())).unwrap())
}

/// Runs `f` on another thread and fails if it takes more than a minute.
fn watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the run finished (a hang is a failure)")
}

/// The validated repo and its artifacts, compiled in memory.
pub(crate) fn build(repo: &Path) -> (etl::spec::Validation, Artifacts) {
    let (validation, artifacts) = artifacts::prepare(
        repo,
        &Origin::Build(Some(etl::store::Cache::new(cache().to_owned()))),
        Generation::V2,
    )
    .unwrap();
    assert!(!validation.has_errors(), "{:?}", validation.diagnostics);
    (validation, artifacts.expect("compiled"))
}

fn load(
    validation: &etl::spec::Validation,
    artifacts: &Artifacts,
    pipeline: &str,
    env: &str,
) -> LoadedPipeline {
    let deployment = deployment::deploy(&validation.repo, env, pipeline).unwrap();
    let mut loaded = runtime().load(&deployment, &artifacts[pipeline]).unwrap();
    loaded.set_secrets(|key| (key == TOKEN_KEY).then(|| TOKEN.to_owned()));
    loaded
}

pub(crate) fn text(payload: &str) -> Record {
    Record {
        payload: payload.as_bytes().to_vec(),
        ..Record::default()
    }
}

/// Every record a unit received ended in exactly one outcome.
pub(crate) fn assert_accounted(report: &Report) {
    for (unit, c) in &report.counts {
        assert_eq!(
            c.received,
            c.produced + c.filtered + c.dead_lettered + c.failed,
            "`{unit}` lost track of a record: {c:?}"
        );
    }
    let failed: u64 = report.counts.iter().map(|(_, c)| c.failed).sum();
    let dead: u64 = report.counts.iter().map(|(_, c)| c.dead_lettered).sum();
    assert_eq!(failed as usize, report.failures.len());
    assert_eq!(dead as usize, report.dead_letters.len());
}

/// The fixtures pass on both artifacts of every step: the bytes wasmCloud 1.x and v2 hosts run
/// behave the same.
#[test]
fn the_example_fixtures_pass_on_the_compiled_dist() {
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    let compiled = etl::ops::compile::compile(
        &common::example(),
        &etl::ops::compile::Options {
            out: dist.clone(),
            cache: Some(etl::store::Cache::new(cache().to_owned())),
            provenance: Default::default(),
        },
    )
    .unwrap();
    assert!(compiled.plan.is_some());
    for generation in Generation::ALL {
        let (validation, artifacts) =
            artifacts::prepare(&common::example(), &Origin::Dist(dist.clone()), generation)
                .unwrap();
        fixtures_pass(&validation, &artifacts.unwrap(), generation);
    }
}

fn fixtures_pass(
    validation: &etl::spec::Validation,
    artifacts: &Artifacts,
    generation: Generation,
) {
    let repo = &validation.repo;
    // bad-record, broken-sensor, fan-out, filtered.
    assert_eq!(repo.tests.len(), 4);
    for fixture in &repo.tests {
        let spec = &fixture.spec.spec;
        let env = spec
            .environment
            .as_ref()
            .map(|e| e.to_string())
            .or_else(|| deployment::default_environment(repo))
            .unwrap();
        let mut pipeline = load(validation, artifacts, &spec.pipeline, &env);
        // The fixture's own secret values, as `etl test` gives them.
        pipeline.set_secrets(|key| spec.secrets.get(key).cloned());
        let inputs: Vec<Record> = spec
            .input
            .iter()
            .map(|r| etl_run::input::from_model(r).unwrap())
            .collect();
        let report = pipeline
            .run(&inputs, &Limits::default(), &mut |_| {})
            .unwrap();
        let mismatches = etl_run::test::mismatches(spec, &pipeline, &report);
        assert!(
            mismatches.is_empty(),
            "{} ({generation}): {mismatches:#?}",
            fixture.file
        );
        assert_accounted(&report);
    }
}

#[test]
fn fan_out_filter_and_dead_letter_in_one_run() {
    let (validation, artifacts) = build(&common::example());
    let pipeline = load(&validation, &artifacts, "sensor-ingest", "dev");
    let reading = |sensor: &str, temp: f64| {
        text(&format!(
            r#"{{"sensor": "{sensor}", "temp_c": {temp}, "ts": "2026-11-01T12:00:00Z"}}"#
        ))
    };
    let inputs = vec![reading("hot", 82.5), text("garbage"), reading("cold", 20.0)];
    let report = pipeline
        .run(&inputs, &Limits::default(), &mut |_| {})
        .unwrap();
    assert_accounted(&report);
    let sinks: Vec<(usize, &str)> = report
        .sinks
        .iter()
        .map(|s| (s.input, s.sink.as_str()))
        .collect();
    // The hot reading fans out to both sinks; the cold one is archived but filtered before
    // the alert; the garbage is dead-lettered by parse and reaches nothing.
    assert_eq!(sinks, [(0, "archive"), (0, "alerts"), (2, "archive")]);
    assert_eq!(report.dead_letters.len(), 1);
    let dead = &report.dead_letters[0];
    assert_eq!((dead.step.as_str(), dead.input), ("parse", 1));
    assert_eq!(dead.record.payload, b"garbage");
    assert!(dead.reason.contains("not JSON"), "{}", dead.reason);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let alerts = report.sinks.iter().find(|s| s.sink == "alerts").unwrap();
    assert_eq!(alerts.target, "http://alerts.dev.acme.example/hook");
    let alert: serde_json::Value = serde_json::from_slice(&alerts.record.payload).unwrap();
    assert_eq!(alert["site"], "dev-bench");
    assert_eq!(alert["alert"], true);
    let archive = report.sinks.iter().find(|s| s.sink == "archive").unwrap();
    assert_eq!(archive.target, "iot.dev.sensors.archive");
    let counts = |u: &str| *report.counts_of(u).unwrap();
    assert_eq!((counts("parse").received, counts("parse").emitted), (3, 2));
    assert_eq!(counts("threshold-alert").filtered, 1);
    assert_eq!(counts("alerts").emitted, 1);
}

#[test]
fn the_environment_decides_the_configuration() {
    let (validation, artifacts) = build(&common::example());
    let hot = text(r#"{"sensor": "t", "temp_c": 75.5, "ts": "2026-11-01T12:00:00Z"}"#);
    let alerts_in = |env: &str| {
        let pipeline = load(&validation, &artifacts, "sensor-ingest", env);
        let report = pipeline
            .run(std::slice::from_ref(&hot), &Limits::default(), &mut |_| {})
            .unwrap();
        let targets: Vec<String> = report.sinks.iter().map(|s| s.target.clone()).collect();
        targets
    };
    // dev alerts at 50, prod at 80; staging's override file sets 65 and a replay subject.
    assert_eq!(
        alerts_in("dev"),
        [
            "iot.dev.sensors.archive",
            "http://alerts.dev.acme.example/hook"
        ]
    );
    assert_eq!(alerts_in("prod"), ["iot.sensors.archive"]);
    assert_eq!(
        alerts_in("staging"),
        [
            "iot.staging.sensors.archive.replay",
            "https://alerts.staging.acme.example/hook"
        ]
    );
}

/// `n` readings of rising temperature (some alert, some not), every seventh not JSON.
fn readings(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            if i % 7 == 3 {
                text("not json")
            } else {
                text(&format!(
                    r#"{{"sensor": "s{i}", "temp_c": {}, "ts": "2026-11-01T12:00:00Z"}}"#,
                    i * 4
                ))
            }
        })
        .collect()
}

#[test]
fn runs_are_deterministic() {
    let (validation, artifacts) = build(&common::example());
    let inputs = readings(20);
    let run = || {
        let pipeline = load(&validation, &artifacts, "sensor-ingest", "dev");
        let r = pipeline
            .run(&inputs, &Limits::default(), &mut |_| {})
            .unwrap();
        (r.sinks, r.dead_letters, r.failures, r.counts)
    };
    assert_eq!(run(), run());
}

/// The chaos fixture's environment that delivers at most once: one delivery per message, so
/// what is tested is the runner's own handling of one call (its limits, `--retries`).
const ONCE: &str = "once";

#[test]
fn every_misbehaviour_fails_only_its_own_record() {
    misbehaviours(1);
}

#[test]
fn a_reused_instance_is_replaced_after_each_failure() {
    // The same outcomes when an instance may serve 100 records: every failure replaces it.
    misbehaviours(100);
}

/// The misbehaviours, one record per call, in `env`, with the runner's limits and 2 retries.
fn misbehave(env: &'static str, calls_per_instance: u32) -> Report {
    watchdog(move || {
        let (validation, artifacts) = build(&chaos());
        let pipeline = load(&validation, &artifacts, "chaos", env);
        let inputs: Vec<Record> = [
            "loop",
            "first",
            "bomb",
            "trap",
            "many:10000",
            "bad-utf8",
            "invalid:no good",
            "transient:busy",
            "many:3",
            "last",
        ]
        .into_iter()
        .map(text)
        .collect();
        let limits = Limits {
            fuel: 200_000_000,
            memory: 64 << 20,
            max_outputs: 1000,
            retries: 2,
            calls_per_instance,
            // One record per call: each hostile record fails alone (a batch fails together).
            batch: 1,
        };
        pipeline.run(&inputs, &limits, &mut |_| {}).unwrap()
    })
}

/// At most once: each failure is the call's, `transient` is retried in place (`--retries`).
fn misbehaviours(calls_per_instance: u32) {
    let report = misbehave(ONCE, calls_per_instance);
    assert_accounted(&report);
    let failures: Vec<(usize, &str, FailureKind, u32)> = report
        .failures
        .iter()
        .map(|f| (f.input, f.unit.as_str(), f.kind, f.attempts))
        .collect();
    assert_eq!(
        failures,
        [
            (0, "chaos", FailureKind::Timeout, 1),
            (2, "chaos", FailureKind::Memory, 1),
            (3, "chaos", FailureKind::Trap, 1),
            (4, "chaos", FailureKind::OutputLimit, 1),
            (5, "chaos", FailureKind::Trap, 1),
            (7, "chaos", FailureKind::Transient, 3),
        ]
    );
    let message = |i: usize| {
        report
            .failures
            .iter()
            .find(|f| f.input == i)
            .unwrap()
            .message
            .as_str()
    };
    assert!(message(0).contains("fuel"), "{}", message(0));
    assert!(message(2).contains("64 MiB"), "{}", message(2));
    assert!(message(3).contains("unreachable"), "{}", message(3));
    assert!(message(5).contains("utf8"), "{}", message(5));
    assert!(message(7).contains("busy"), "{}", message(7));
    // Nothing of the record over the output limit was delivered.
    let delivered: Vec<(usize, &[u8])> = report
        .sinks
        .iter()
        .map(|s| (s.input, s.record.payload.as_slice()))
        .collect();
    assert_eq!(
        delivered,
        [
            (1, &b"first"[..]),
            (8, b"0"),
            (8, b"1"),
            (8, b"2"),
            (9, b"last"),
        ]
    );
    assert_eq!(report.dead_letters.len(), 1);
    assert_eq!(report.dead_letters[0].reason, "no good");
    assert_eq!(report.dead_letters[0].input, 6);
    let chaos = report.counts_of("chaos").unwrap();
    assert_eq!((chaos.received, chaos.retries, chaos.failed), (10, 2, 6));
}

/// The same misbehaviours at least once (`dev`, the default): a call that traps (timeout,
/// memory, trap, bad UTF-8) acknowledges nothing, so its message is delivered again, 5 times
/// (`max_deliver`) in all, then fails; the record still `transient` on the 5th delivery is
/// dead-lettered with the number of deliveries instead of failed (the runner's `--retries` are
/// not used: the deliveries take their place). The others are delivered once.
#[test]
fn at_least_once_every_misbehaviour_is_delivered_again_then_fails_or_is_dead_lettered() {
    for calls_per_instance in [1, 100] {
        let report = misbehave("dev", calls_per_instance);
        assert_accounted(&report);
        let failures: Vec<(usize, &str, FailureKind, u32)> = report
            .failures
            .iter()
            .map(|f| (f.input, f.unit.as_str(), f.kind, f.attempts))
            .collect();
        assert_eq!(
            failures,
            [
                (0, "chaos", FailureKind::Timeout, 5),
                (2, "chaos", FailureKind::Memory, 5),
                (3, "chaos", FailureKind::Trap, 5),
                // The call returned and acknowledged: the runner's output limit fails it once.
                (4, "chaos", FailureKind::OutputLimit, 1),
                (5, "chaos", FailureKind::Trap, 5),
            ],
            "{calls_per_instance} calls per instance"
        );
        for input in [0, 2, 3, 5] {
            let f = report.failures.iter().find(|f| f.input == input).unwrap();
            assert!(
                f.message
                    .contains("not acknowledged after 5 deliveries (`etl.in.max-deliver`)"),
                "{}",
                f.message
            );
        }
        let delivered: Vec<(usize, &[u8])> = report
            .sinks
            .iter()
            .map(|s| (s.input, s.record.payload.as_slice()))
            .collect();
        assert_eq!(
            delivered,
            [
                (1, &b"first"[..]),
                (8, b"0"),
                (8, b"1"),
                (8, b"2"),
                (9, b"last"),
            ]
        );
        let dead: Vec<(usize, &str, &str)> = report
            .dead_letters
            .iter()
            .map(|d| (d.input, d.step.as_str(), d.reason.as_str()))
            .collect();
        assert_eq!(
            dead,
            [(6, "chaos", "no good"), (7, "chaos", "transient: busy")]
        );
        let transient = &report.dead_letters[1];
        assert_eq!(transient.record.payload, b"transient:busy");
        assert!(
            transient
                .record
                .headers
                .contains(&("etl-deliveries".to_owned(), "5".to_owned())),
            "{:?}",
            transient.record.headers
        );
        let chaos = report.counts_of("chaos").unwrap();
        // 4 redeliveries of each of the 4 trapping records and of the transient one.
        assert_eq!(
            (
                chaos.received,
                chaos.retries,
                chaos.failed,
                chaos.dead_lettered
            ),
            (10, 20, 5, 2)
        );
    }
}

#[test]
fn many_outputs_within_the_limit_are_all_delivered() {
    let report = watchdog(|| {
        let (validation, artifacts) = build(&chaos());
        let pipeline = load(&validation, &artifacts, "chaos", "dev");
        let limits = Limits {
            max_outputs: 10_000,
            ..Limits::default()
        };
        pipeline
            .run(&[text("many:10000"), text("next")], &limits, &mut |_| {})
            .unwrap()
    });
    assert_accounted(&report);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.sinks.len(), 10_001);
    assert_eq!(report.sinks[9_999].record.payload, b"9999");
    assert_eq!(report.sinks[10_000].record.payload, b"next");
    assert_eq!(report.counts_of("out").unwrap().received, 10_001);
    assert_eq!(report.counts_of("chaos").unwrap().emitted, 10_001);
}

#[test]
fn no_retries_means_one_attempt() {
    let (validation, artifacts) = build(&chaos());
    let pipeline = load(&validation, &artifacts, "chaos", ONCE);
    let limits = Limits {
        retries: 0,
        ..Limits::default()
    };
    let report = pipeline
        .run(&[text("transient:x")], &limits, &mut |_| {})
        .unwrap();
    assert_eq!(report.failures[0].attempts, 1);
    assert_eq!(report.counts_of("chaos").unwrap().retries, 0);
}

#[test]
fn an_http_source_refuses_what_a_request_cannot_carry() {
    let (validation, artifacts) = build(&common::example());
    let pipeline = load(&validation, &artifacts, "sensor-ingest", "dev");
    let keyed = Record {
        key: Some(b"k".to_vec()),
        ..text("{}")
    };
    let e = pipeline
        .run(&[text("{}"), keyed], &Limits::default(), &mut |_| {})
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "input record 1: it has a key, but source `ingest` is `http`, whose requests carry none"
    );
    let bad_header = Record {
        headers: vec![("bad name".to_owned(), "v".to_owned())],
        ..text("{}")
    };
    let e = pipeline
        .run(&[bad_header], &Limits::default(), &mut |_| {})
        .unwrap_err();
    assert!(
        e.to_string().contains("not a valid HTTP header name"),
        "{e}"
    );
}

#[test]
fn a_stale_or_tampered_dist_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    common::copy(&common::example(), &repo);
    let dist = tmp.path().join("dist");
    let options = etl::ops::compile::Options {
        out: dist.clone(),
        cache: Some(etl::store::Cache::new(cache().to_owned())),
        provenance: Default::default(),
    };
    assert!(
        etl::ops::compile::compile(&repo, &options)
            .unwrap()
            .plan
            .is_some()
    );

    let fixture = repo.join("tests/fan-out.yaml");
    let original = std::fs::read_to_string(&fixture).unwrap();
    std::fs::write(&fixture, format!("{original}# edited\n")).unwrap();
    match artifacts::prepare(&repo, &Origin::Dist(dist.clone()), Generation::V2) {
        Err(artifacts::PrepareError::Dist(DistError::Stale { changed, .. })) => {
            assert_eq!(changed, ["`tests/fan-out.yaml` changed"]);
        }
        other => panic!("expected a stale dist, got {other:?}"),
    }
    std::fs::write(&fixture, original).unwrap();
    assert!(artifacts::prepare(&repo, &Origin::Dist(dist.clone()), Generation::V2).is_ok());

    let plan = etl::build::dist::read(&dist).unwrap();
    let victim = dist.join(
        &plan.pipelines[0].steps[0]
            .artifact_v2
            .as_ref()
            .unwrap()
            .path,
    );
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    match artifacts::prepare(&repo, &Origin::Dist(dist), Generation::V2) {
        Err(artifacts::PrepareError::Dist(DistError::Tampered { path, .. })) => {
            assert_eq!(path, victim);
        }
        other => panic!("expected a tampered dist, got {other:?}"),
    }
}

#[test]
fn deployments_of_the_example() {
    let (validation, _) = build(&common::example());
    let mut plans = BTreeMap::new();
    for env in ["dev", "staging", "prod"] {
        plans.insert(
            env,
            deployment::deploy(&validation.repo, env, "sensor-ingest").unwrap(),
        );
    }
    insta::assert_debug_snapshot!(plans);
    let e = deployment::deploy(&validation.repo, "prd", "sensor-ingest").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown environment `prd` (did you mean `prod`?); the project defines `dev`, `staging`, `prod`"
    );
    let e = deployment::deploy(&validation.repo, "dev", "sensor-ingets").unwrap_err();
    assert!(
        e.to_string().contains("did you mean `sensor-ingest`?"),
        "{e}"
    );
}

// --- the commands -------------------------------------------------------------------------------

/// `etl run sensor-ingest --format jsonl` of the example with `extra` arguments, fed `stdin`.
fn run_example_jsonl(extra: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut args = vec![
        "run",
        "sensor-ingest",
        "--repo",
        "examples/iot-sensors",
        "--format",
        "jsonl",
    ];
    args.extend_from_slice(extra);
    etl(&args, stdin)
}

/// The records `etl run --format jsonl` printed as reaching `sink`.
fn at_sink(stdout: &str, sink: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["sink"] == sink)
        .collect()
}

pub(crate) fn etl(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let out = common::output_with_stdin(
        std::process::Command::new(env!("CARGO_BIN_EXE_etl"))
            .args(args)
            .args(["--cache-dir", cache().to_str().unwrap()])
            .env(etl_run::secrets::env_var(TOKEN_KEY), TOKEN)
            .current_dir(root()),
        stdin,
    );
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Times vary from run to run; everything else in the output must not.
pub(crate) fn without_times(text: &str) -> String {
    let ms = regex_lite(r"[0-9]+\.[0-9]+ ?(ms|s)\b");
    let json_ms = regex_lite(r#""elapsedMs":[0-9.e-]+"#);
    let rate = regex_lite(r"[0-9]+ records/s");
    let json_rate = regex_lite(r#""recordsPerSecond":[0-9.e-]+"#);
    let text = ms.replace_all(text, "[time]");
    let text = rate.replace_all(&text, "[rate] records/s");
    let text = json_rate.replace_all(&text, r#""recordsPerSecond":"[rate]""#);
    json_ms
        .replace_all(&text, r#""elapsedMs":"[time]""#)
        .into_owned()
}

fn regex_lite(re: &str) -> regex::Regex {
    regex::Regex::new(re).unwrap()
}

const READINGS: &str = r#"{"json": {"sensor": "t-101", "temp_c": 82.5, "ts": "2026-11-01T12:00:00Z"}}
{"payload": "t-101;82.5"}

{"json": {"sensor": "t-102", "temp_c": 20, "ts": "2026-11-01T12:00:01Z"}, "headers": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
"#;

#[test]
fn etl_run_prints_sinks_dead_letters_and_a_summary() {
    // From a regular file, whose batches are full, so that the records' ids (`run-<n>-<i>`,
    // record i of the request starting at input n) are the same every run: from stdin a batch is
    // what has arrived, which decides which records share a request to the HTTP source.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("readings.jsonl");
    std::fs::write(&input, READINGS).unwrap();
    let input = input.to_str().unwrap();
    let (code, stdout, stderr) = etl(
        &[
            "run",
            "sensor-ingest",
            "--repo",
            "examples/iot-sensors",
            "--input",
            input,
        ],
        "",
    );
    assert_eq!(code, Some(0), "{stderr}");
    insta::assert_snapshot!("run_text", without_times(&stdout));
    let (code, stdout, stderr) = etl(
        &[
            "run",
            "sensor-ingest",
            "--repo",
            "examples/iot-sensors",
            "--env",
            "prod",
            "--format",
            "jsonl",
            "--input",
            input,
        ],
        "",
    );
    assert_eq!(code, Some(0), "{stderr}");
    for line in stdout.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON");
    }
    insta::assert_snapshot!("run_jsonl", without_times(&stdout));
}

#[test]
fn a_record_the_http_source_splits_stays_one_input() {
    // One input posted alone as a JSON array is two records to `in-http`: both are that
    // input's, whatever the batch size.
    let input = r#"{"json": [{"sensor": "t-1", "temp_c": 20.5, "ts": "2026-11-01T12:00:00Z"}, {"sensor": "t-2", "temp_c": 21.5, "ts": "2026-11-01T12:00:01Z"}], "headers": {"content-type": "application/json"}}
{"json": {"sensor": "t-3", "temp_c": 22.5, "ts": "2026-11-01T12:00:02Z"}}
"#;
    for batch in ["1", "100"] {
        let (code, stdout, stderr) = run_example_jsonl(&["--batch", batch], input);
        assert_eq!(code, Some(0), "{stderr}\n{stdout}");
        let lines: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let archived: Vec<(u64, String)> = lines
            .iter()
            .filter(|l| l["type"] == "sink" && l["sink"] == "archive")
            .map(|l| {
                let payload: serde_json::Value =
                    serde_json::from_str(l["record"]["payload"].as_str().unwrap()).unwrap();
                (
                    l["input"].as_u64().unwrap(),
                    payload["sensor_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            archived,
            [(0, "t-1".into()), (0, "t-2".into()), (1, "t-3".into())],
            "--batch {batch}: {stdout}"
        );
        let summary = lines.last().unwrap();
        assert_eq!(summary["units"]["parse"]["in"], 3, "{summary}");
        assert_eq!(summary["units"]["parse"]["out"], 3, "{summary}");
        assert_eq!(summary["inputs"], 2, "{summary}");
    }
}

#[test]
fn etl_run_reports_bad_input_and_names() {
    let (code, _, stderr) = etl(
        &["run", "sensor-ingest", "--repo", "examples/iot-sensors"],
        "{\"payload\": \"ok\"}\n{\"paylod\": \"typo\"}\n",
    );
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("error: <stdin>:2:"),
        "the line is named: {stderr}"
    );
    assert!(stderr.contains("paylod"), "{stderr}");
    let (code, _, stderr) = etl(
        &["run", "sensor-ingset", "--repo", "examples/iot-sensors"],
        "",
    );
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "error: unknown pipeline `sensor-ingset` (did you mean `sensor-ingest`?); the repo defines `sensor-ingest`\n"
    );
    let (code, _, stderr) = etl(
        &[
            "run",
            "sensor-ingest",
            "--repo",
            "examples/iot-sensors",
            "--env",
            "stage",
        ],
        "",
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("did you mean `staging`?"), "{stderr}");
}

#[test]
fn etl_run_exits_one_when_a_record_fails() {
    let args = [
        "run",
        "chaos",
        "--repo",
        "tests/fixtures/chaos",
        "--fuel",
        "10000000",
    ];
    let input = "{\"payload\": \"loop\"}\n{\"payload\": \"fine\"}\n";
    // One record per call: only the looping one fails, after its 5 deliveries (dev, the
    // default environment, delivers at least once).
    let (code, stdout, _) = etl(&[&args[..], &["--batch", "1"]].concat(), input);
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("record 0 ✗ failed at chaos (timeout, 5 attempts)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("note: not acknowledged after 5 deliveries (`etl.in.max-deliver`)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("record 1 → out (chaos.out): fine"),
        "{stdout}"
    );
    // In one batch (a file's records are read a full batch at a time), the call fails and
    // takes both with it.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("records.jsonl");
    std::fs::write(&file, input).unwrap();
    let file = file.to_str().unwrap();
    let (code, stdout, _) = etl(&[&args[..], &["--input", file]].concat(), "");
    assert_eq!(code, Some(1));
    for record in 0..2 {
        assert!(
            stdout.contains(&format!(
                "record {record} ✗ failed at chaos (timeout, 5 attempts)"
            )),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("note: the whole batch of 2 records failed with it"),
        "{stdout}"
    );
    assert!(!stdout.contains("→ out"), "{stdout}");
    // At most once (`--env once`), one attempt.
    let (code, stdout, _) = etl(
        &[&args[..], &["--batch", "1", "--env", ONCE]].concat(),
        input,
    );
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("record 0 ✗ failed at chaos (timeout, 1 attempt)"),
        "{stdout}"
    );
    assert!(!stdout.contains("not acknowledged"), "{stdout}");
    assert!(
        stdout.contains("record 1 → out (chaos.out): fine"),
        "{stdout}"
    );
}

#[test]
fn etl_test_passes_the_example_and_shows_a_diff_on_failure() {
    let (code, stdout, stderr) = etl(&["test", "--repo", "examples/iot-sensors"], "");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    insta::assert_snapshot!("test_ok", without_times(&stdout));
    // The wasmCloud 1.x artifacts pass the same way; a generation that is not one is refused.
    let args = ["test", "--repo", "examples/iot-sensors", "--generation"];
    let (code, v1, stderr) = etl(&[&args[..], &["v1"]].concat(), "");
    assert_eq!(code, Some(0), "{v1}{stderr}");
    assert_eq!(without_times(&v1), without_times(&stdout));
    let (code, _, stderr) = etl(&[&args[..], &["v3"]].concat(), "");
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("`v3` is not a wasmCloud generation: `v1` (wasmCloud 1.x) or `v2`"),
        "{stderr}"
    );

    let tmp = tempfile::tempdir().unwrap();
    common::copy(&common::example(), tmp.path());
    let fixture = tmp.path().join("tests/fan-out.yaml");
    let text = std::fs::read_to_string(&fixture).unwrap();
    let broken = text
        .replace("site: dev-bench, alert: true", "site: dev-lab, alert: true")
        .replace("enrich: { in: 1, out: 1 }", "enrich: { in: 1, out: 2 }");
    assert_ne!(text, broken);
    std::fs::write(&fixture, broken).unwrap();
    let repo = tmp.path().to_str().unwrap();
    let (code, stdout, stderr) = etl(&["test", "--repo", repo], "");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    insta::assert_snapshot!("test_failed", without_times(&stdout));

    let (code, stdout, _) = etl(&["test", "--repo", repo, "sensor-ingest"], "");
    assert_eq!(code, Some(1));
    assert!(stdout.starts_with("running 4 fixtures"), "{stdout}");
    let (code, _, stderr) = etl(&["test", "--repo", repo, "sensor"], "");
    assert_eq!(code, Some(2));
    assert!(stderr.contains("unknown pipeline `sensor`"), "{stderr}");
}

#[test]
fn fan_out_and_fan_in_over_subjects() {
    let (validation, artifacts) = build(&chaos());
    let pipeline = load(&validation, &artifacts, "diamond", "dev");
    let report = pipeline
        .run(
            &[text("a"), text("invalid:bad")],
            &Limits::default(),
            &mut |_| {},
        )
        .unwrap();
    assert_accounted(&report);
    // `a` reaches left and right; join gets it from both, so it leaves twice.
    let out: Vec<(usize, &[u8])> = report
        .sinks
        .iter()
        .map(|s| (s.input, s.record.payload.as_slice()))
        .collect();
    assert_eq!(out, [(0, &b"a"[..]), (0, b"a")]);
    let counts = |u: &str| report.counts_of(u).unwrap().received;
    assert_eq!(
        [
            counts("left"),
            counts("right"),
            counts("join"),
            counts("out")
        ],
        [2, 2, 2, 2]
    );
    // The bad record is dead-lettered by both branches, each on its own subject.
    let dead: Vec<&str> = report
        .dead_letters
        .iter()
        .map(|d| d.step.as_str())
        .collect();
    assert_eq!(dead, ["left", "right"]);
}

#[test]
fn granted_logging_is_served_and_bounded() {
    let (validation, artifacts) = build(&chaos());
    let pipeline = load(&validation, &artifacts, "chaos", "dev");
    let report = pipeline
        .run(
            &[text("log:hello"), text("spam:150")],
            // One record per call, so that each call's lines are its record's.
            &Limits {
                batch: 1,
                ..Limits::default()
            },
            &mut |_| {},
        )
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.sinks.len(), 2);
    let first: Vec<(usize, &str, &str)> = report
        .logs
        .iter()
        .filter(|(_, i, _)| *i == 0)
        .map(|(u, _, l)| (0, u.as_str(), l.message.as_str()))
        .collect();
    assert_eq!(first, [(0, "chaos", "hello"), (0, "chaos", "second")]);
    assert_eq!(report.logs[0].2.level, "info");
    let second: Vec<&str> = report
        .logs
        .iter()
        .filter(|(_, i, _)| *i == 1)
        .map(|(_, _, l)| l.message.as_str())
        .collect();
    assert_eq!(second.len(), 101);
    assert_eq!(second[99], "line 99");
    assert_eq!(
        second[100],
        "50 more log lines of this call were not kept (at most 100 are)"
    );
}

#[test]
fn http_sinks_are_captured_never_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    common::copy(&common::example(), tmp.path());
    let project = tmp.path().join("etl.yaml");
    let original = std::fs::read_to_string(&project).unwrap();
    let patched = original.replace("http://alerts.dev.acme.example/hook", &url);
    assert_ne!(original, patched);
    std::fs::write(&project, patched).unwrap();
    let (validation, artifacts) = build(tmp.path());
    let pipeline = load(&validation, &artifacts, "sensor-ingest", "dev");
    let hot = text(r#"{"sensor": "t", "temp_c": 99, "ts": "2026-11-01T12:00:00Z"}"#);
    let report = pipeline
        .run(&[hot], &Limits::default(), &mut |_| {})
        .unwrap();
    let alerts: Vec<&str> = report
        .sinks
        .iter()
        .filter(|s| s.sink == "alerts")
        .map(|s| s.target.as_str())
        .collect();
    assert_eq!(alerts, [url.as_str()]);
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the runner connected to the sink's URL: {other:?}"),
    }
}

#[test]
fn behind_an_http_source_the_outcomes_are_the_same() {
    let report = watchdog(|| {
        let (validation, artifacts) = build(&chaos());
        let pipeline = load(&validation, &artifacts, "chaos-http", "dev");
        let tagged = Record {
            headers: vec![
                ("X-Tag".to_owned(), "kept".to_owned()),
                ("x-other".to_owned(), "dropped".to_owned()),
            ],
            ..text("tagged")
        };
        let inputs = vec![
            text("transient:busy"),
            text("invalid:bad"),
            text("trap"),
            text("loop"),
            tagged,
        ];
        let limits = Limits {
            fuel: 100_000_000,
            // One record per call: each record's outcome is its own (a batch fails together).
            batch: 1,
            ..Limits::default()
        };
        pipeline.run(&inputs, &limits, &mut |_| {}).unwrap()
    });
    assert_accounted(&report);
    let failures: Vec<(usize, FailureKind, u32)> = report
        .failures
        .iter()
        .map(|f| (f.input, f.kind, f.attempts))
        .collect();
    assert_eq!(
        failures,
        [
            (0, FailureKind::Transient, 3),
            (2, FailureKind::Trap, 1),
            (3, FailureKind::Timeout, 1),
        ]
    );
    assert!(
        report.failures[0].message.starts_with("503 "),
        "{:?}",
        report.failures[0]
    );
    assert_eq!(report.dead_letters.len(), 1);
    assert_eq!(report.dead_letters[0].reason, "bad");
    // Only the headers `with.headers` names survive the HTTP entry, lowercased; then the
    // record's id: record 0 of the runner's request `run-4`, output 0 at `chaos` and at `out`.
    assert_eq!(report.sinks.len(), 1);
    assert_eq!(report.sinks[0].record.payload, b"tagged");
    assert_eq!(
        report.sinks[0].record.headers,
        [
            ("x-tag".to_owned(), "kept".to_owned()),
            ("etl-id".to_owned(), "run-4-0.0.0".to_owned())
        ]
    );
}

#[test]
fn reusing_instances_gives_the_same_results() {
    let (validation, artifacts) = build(&common::example());
    let inputs = readings(30);
    let run = |calls_per_instance| {
        let pipeline = load(&validation, &artifacts, "sensor-ingest", "dev");
        let limits = Limits {
            calls_per_instance,
            ..Limits::default()
        };
        let r = pipeline.run(&inputs, &limits, &mut |_| {}).unwrap();
        assert_accounted(&r);
        (r.sinks, r.dead_letters, r.failures, r.counts)
    };
    let fresh = run(1);
    assert_eq!(fresh, run(7));
    assert_eq!(fresh, run(1000));
}

/// A copy of the example whose `archive` sink is an `s3` bucket, objects named `{key}{seq}.json`
/// under `archive/` (the readings have no key, so the first is `archive/0.json`).
fn example_with_an_s3_sink() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    common::copy(&common::example(), tmp.path());
    let file = tmp.path().join("pipelines/sensor-ingest.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let patched = text.replace(
        "      connector: nats\n      with:\n        subject: \"{{ vars.archive_subject }}\"",
        "      connector: s3\n      with:\n        bucket: archive\n        key: \"archive/{key}{seq}.json\"",
    );
    assert_ne!(text, patched);
    std::fs::write(&file, patched).unwrap();
    let project = tmp.path().join("etl.yaml");
    let text = std::fs::read_to_string(&project).unwrap();
    let anchor = "  providers:\n";
    assert!(text.contains(anchor));
    let with_s3 = text.replacen(
        anchor,
        "  providers:\n    blobstore-s3: ghcr.io/wasmcloud/blobstore-s3:0.12.1@sha256:0000000000000000000000000000000000000000000000000000000000000000\n",
        1,
    );
    std::fs::write(&project, with_s3).unwrap();
    tmp
}

#[test]
fn an_s3_sink_is_captured_with_object_key_and_bytes() {
    let tmp = example_with_an_s3_sink();
    let (validation, artifacts) = build(tmp.path());
    let pipeline = load(&validation, &artifacts, "sensor-ingest", "dev");
    let reading = r#"{"sensor": "t-101", "temp_c": 20, "ts": "2026-11-01T12:00:00Z"}"#;
    let report = pipeline
        .run(&[text(reading)], &Limits::default(), &mut |_| {})
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let objects: Vec<(&str, Option<&[u8]>, serde_json::Value)> = report
        .sinks
        .iter()
        .filter(|s| s.sink == "archive")
        .map(|s| {
            (
                s.target.as_str(),
                s.record.key.as_deref(),
                serde_json::from_slice(&s.record.payload).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        objects,
        [(
            "s3://archive/archive/0.json",
            Some(&b"archive/0.json"[..]),
            serde_json::json!({"sensor_id": "t-101", "celsius": 20.0, "ts": "2026-11-01T12:00:00Z"})
        )]
    );
    assert_eq!(report.counts_of("archive").unwrap().emitted, 1);
}

#[test]
fn a_repo_with_an_s3_sink_runs_and_its_fixtures_are_checked() {
    let tmp = example_with_an_s3_sink();
    let repo = tmp.path().to_str().unwrap();
    let (code, stdout, stderr) = etl(
        &["run", "sensor-ingest", "--repo", repo, "--format", "jsonl"],
        READINGS,
    );
    assert_eq!(code, Some(0), "{stderr}");
    let objects = at_sink(&stdout, "archive");
    assert_eq!(objects.len(), 2, "{stdout}");
    assert_eq!(objects[0]["target"], "s3://archive/archive/0.json");
    assert_eq!(objects[0]["record"]["key"], "archive/0.json");

    // The fixtures name each object's key; `archive: []` still expects no object. broken-sensor's
    // two readings come in one request, each the first output of its record: both `archive/0.json`.
    let fixture = tmp.path().join("tests/broken-sensor.yaml");
    let text = std::fs::read_to_string(&fixture).unwrap();
    let keyed = text.replace(
        "\n        - json: { sensor_id: broken-7, celsius: 91.5, ts: \"2026-11-01T12:00:00Z\" }\n        - json: { sensor_id: t-101,",
        "\n        - key: archive/0.json\n          json: { sensor_id: broken-7, celsius: 91.5, ts: \"2026-11-01T12:00:00Z\" }\n        - key: archive/0.json\n          json: { sensor_id: t-101,",
    );
    assert_ne!(text, keyed);
    std::fs::write(&fixture, &keyed).unwrap();
    let mut keyed = String::new();
    for name in ["fan-out", "filtered"] {
        let fixture = tmp.path().join(format!("tests/{name}.yaml"));
        let text = std::fs::read_to_string(&fixture).unwrap();
        keyed = text.replace(
            "      archive:\n        - json:",
            "      archive:\n        - key: archive/0.json\n          json:",
        );
        assert_ne!(text, keyed);
        std::fs::write(&fixture, &keyed).unwrap();
    }
    let fixture = tmp.path().join("tests/filtered.yaml");
    let (code, stdout, stderr) = etl(&["test", "--repo", repo], "");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("4 passed; 0 failed"), "{stdout}");

    std::fs::write(&fixture, keyed.replace("archive/0.json", "archive/1.json")).unwrap();
    let (code, stdout, stderr) = etl(&["test", "--repo", repo], "");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("sink `archive`: expected 1 record, got 1 that differ"),
        "{stdout}"
    );
    assert!(
        stdout.contains("-  \"key\": \"archive/1.json\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("+  \"key\": \"archive/0.json\""),
        "{stdout}"
    );
}

/// `etl test PIPELINE` needs only that pipeline's files valid; all of them still reports the
/// broken one.
#[test]
fn etl_test_of_one_pipeline_ignores_another_broken_one() {
    let tmp = tempfile::tempdir().unwrap();
    common::copy(&common::example(), tmp.path());
    // Another pipeline whose schema is wrong, and its fixture.
    std::fs::write(
        tmp.path().join("pipelines/broken.yaml"),
        "apiVersion: etl/v1alpha1\nkind: Pipeline\nmetadata:\n  name: broken\nspec:\n  source: 42\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("tests/broken.yaml"),
        "apiVersion: etl/v1alpha1\nkind: Test\nmetadata:\n  name: broken-case\nspec:\n  pipeline: broken\n  input: []\n  expect: {}\n",
    )
    .unwrap();
    let repo = tmp.path().to_str().unwrap();
    let (code, stdout, stderr) = etl(&["test", "--repo", repo, "sensor-ingest"], "");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("4 passed; 0 failed"), "{stdout}");
    assert!(
        stderr.contains("`pipelines/broken.yaml`") && stderr.contains("etl validate"),
        "the broken file is named: {stderr}"
    );
    let (code, _, stderr) = etl(&["run", "sensor-ingest", "--repo", repo], READINGS);
    assert_eq!(code, Some(0), "{stderr}");

    let (code, stdout, stderr) = etl(&["test", "--repo", repo], "");
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("pipelines/broken.yaml"), "{stderr}");
}

/// An `--input` that can be read only once (here `/dev/stdin`, a pipe) runs as it arrives: checking
/// it whole first would leave nothing to run.
#[cfg(target_os = "linux")]
#[test]
fn etl_run_reads_an_input_that_can_be_read_only_once_in_one_pass() {
    let (code, stdout, stderr) = run_example_jsonl(&["--input", "/dev/stdin"], READINGS);
    assert_eq!(code, Some(0), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(
        summary["inputs"].as_u64(),
        Some(READINGS.lines().filter(|l| !l.trim().is_empty()).count() as u64),
        "{stdout}"
    );
    assert_eq!(at_sink(&stdout, "alerts").len(), 1, "{stdout}");
}

#[test]
fn etl_run_hints_at_json_when_a_line_is_bare_json() {
    let (code, _, stderr) = etl(
        &["run", "sensor-ingest", "--repo", "examples/iot-sensors"],
        "{\"payload\": \"ok\"}\n{\"sensor\": \"t-1\"}\n",
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr,
        "error: <stdin>:2:9: unknown field `sensor`, expected one of `key`, `payload`, `json`, \
         `base64`, `headers`: each line is a record: an object with one of `payload` (text), \
         `json` (any JSON value) or `base64` (bytes), and optional `key` and `headers`, and this \
         line is an object with other fields\n\
         help: to send this JSON as the payload, wrap it: {\"json\": {\"sensor\": \"t-1\"}}\n"
    );
}

#[test]
fn http_sinks_get_a_json_content_type_for_json_records() {
    let (code, stdout, stderr) = run_example_jsonl(&[], READINGS);
    assert_eq!(code, Some(0), "{stderr}");
    let alerts = at_sink(&stdout, "alerts");
    assert_eq!(alerts.len(), 1, "{stdout}");
    assert_eq!(
        alerts[0]["record"]["headers"]["content-type"], "application/json",
        "{stdout}"
    );
}

/// `etl run` prints each record's outcome as soon as the record has gone through, while more
/// input may come: the first outcome is read before stdin is closed. (Before, nothing was
/// printed until the whole input had run, and the report took quadratic time to build.)
#[test]
fn etl_run_streams_each_outcome_before_the_input_ends() {
    use std::io::{BufRead, Write};
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .args([
            "run",
            "sensor-ingest",
            "--repo",
            "examples/iot-sensors",
            "--format",
            "jsonl",
            "--cache-dir",
            cache().to_str().unwrap(),
        ])
        .env(etl_run::secrets::env_var(TOKEN_KEY), TOKEN)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let hot = r#"{"json": {"sensor": "t-101", "temp_c": 82.5, "ts": "2026-11-01T12:00:00Z"}}"#;
    writeln!(stdin, "{hot}").unwrap();
    stdin.flush().unwrap();
    // The compile in memory comes first: a generous bound, only so that a runner that waits for
    // the end of the input fails instead of hanging.
    let Ok(first) = rx.recv_timeout(Duration::from_secs(180)) else {
        let _ = child.kill();
        panic!("no outcome was printed while the input was still open: the output does not stream");
    };
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        (first["type"].as_str(), first["input"].as_u64()),
        (Some("sink"), Some(0))
    );
    writeln!(stdin, "{hot}").unwrap();
    drop(stdin);
    let rest: Vec<serde_json::Value> = rx
        .iter()
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let summary = rest.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(
        (summary["inputs"].as_u64(), summary["delivered"].as_u64()),
        (Some(2), Some(4))
    );
    assert!(rest.iter().any(|l| l["type"] == "sink" && l["input"] == 1));
}
