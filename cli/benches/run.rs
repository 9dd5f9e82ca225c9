//! Benchmark of `etl run`: the throughput of a composed step against its bare customer
//! component, one record per call and in batches, the whole pipeline at batch sizes 1 to 1000,
//! and the time to the first record of the example pipeline.
//!
//! A plain bench binary (no criterion, to keep the build lean):
//!
//! ```sh
//! cargo bench -p etl-cli --bench run                           # full run
//! ETL_BENCH_QUICK=1 cargo bench -p etl-cli --bench run         # smoke test for CI: a few records, one run
//! cargo test -p etl-cli --bench run                            # also the smoke test (no `--bench` arg)
//! ETL_BENCH_PROFILE=runner cargo bench -p etl-cli --bench run  # loop one variant for 15 s, to
//!     # profile it: bare-1, bare, runner-1, runner, runner-nats-1, runner-nats, runner-msg-id-1,
//!     #   runner-msg-id, pipeline-<batch>
//! ```
//!
//! Everything runs on `examples/iot-sensors`, pipeline `sensor-ingest`, environment `dev`,
//! compiled in memory (`etl_run::artifacts::prepare` with `Origin::Build`) with a cache in a
//! temporary directory (never `~/.cache/etl`), under `Limits::default()`. The inputs are JSON
//! readings (`sensor`, `temp_c`, `ts`) padded with an extra `note` field, which `parse` ignores,
//! to exactly 1 KiB each. Measured, side by side (each repetition runs every variant once, in
//! turn, so a busy spell of the machine hits them all):
//!
//! Every way in runs at batch size 1 (one record per call, a fresh store and instance each: the
//! baseline, as before issue 17) and at [`BATCH`] (one call per batch, a fresh store and
//! instance per batch):
//!
//! - **bare**: the customer component of step `parse` (`components/parse.wasm`, componentized by
//!   `etl::build::resolve::prepare` as `etl compile` does) called directly through wasmtime: the
//!   runner's engine (`etl_run::engine()`), a fresh `Store` per record, or per batch with
//!   `transform` called in a loop in that one instance (the fuel reset before each call), with
//!   the same fuel and memory limit;
//! - **composed, runner**: the composed `parse` unit alone (a deployment that keeps only `parse`;
//!   its outputs go to a subject nothing consumes and are counted as `unconsumed`), through
//!   `etl_run::LoadedPipeline::run` with `Limits::batch`: one `POST` per record, or one NDJSON
//!   `POST` per batch, into `in-http`;
//! - **composed, NATS source**: the same, but `parse` composed here with `in-messaging` instead of
//!   `in-http` (as `etl compile` composes a step behind a `nats` source) and fed the records in
//!   one etl envelope a batch on a subject;
//! - **whole pipeline**: every unit of `sensor-ingest` (parse, enrich, threshold-alert and both
//!   sinks) through a `Session` (outcomes dropped as they come), at batch sizes 1, 10, 100 and
//!   1000, and at 100 with the `alerts` webhook sink sending NDJSON batches instead of one
//!   request per alert;
//! - **time to first record**: `Runtime::new` + `Runtime::load` of the whole pipeline + `run` of
//!   one record, cold (an empty compiled-code cache) and warm (a fresh `Runtime` on a cache an
//!   earlier run filled), plus the `prepare` that `etl run` does before it (validate and compile
//!   in memory, with the composition cache warm); and the CLI, `etl run` of the release binary
//!   on one record (process start to exit), cold (an empty `--cache-dir`) and warm (full mode only).
//!
//! The harness overhead is `1 − composed/bare` in records per second, at the same batch size. Figures are printed, never
//! asserted; what is asserted is that every call succeeds and that the bare component and the
//! composed step give the same reading.
//!
//! See docs/PERFORMANCE.md for figures and targets.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etl::build::deployment::Deployment;
use etl::build::generation::Generation;
use etl::build::harness::Part;
use etl::spec::model::SourceConnector;
use etl_run::artifacts::{self, Origin};
use etl_run::{Artifact, Limits, LoadedPipeline, Record, Runtime};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, ResourceLimiter, Store};

mod support;
use support::{machine, median, ms, time_etl};

/// The customer's side: the `transformer` world every customer component implements.
mod bare {
    wasmtime::component::bindgen!({
        path: "../wit/etl-pipeline",
        world: "transformer",
    });
}

use bare::etl::pipeline::types::{Error as TransformError, Message};

/// The example repo, its pipeline, environment and the step measured.
const EXAMPLE: &str = "../examples/iot-sensors";
const PIPELINE: &str = "sensor-ingest";
const ENVIRONMENT: &str = "dev";
const STEP: &str = "parse";
/// The example's one secret, and the value the runs here give it.
const SECRET: (&str, &str) = ("alerts-webhook-token", "Bearer bench-token");
/// Size of every input record.
const RECORD_BYTES: usize = 1024;

/// The batch size measured against one record per call.
const BATCH: usize = etl_run::DEFAULT_BATCH;
/// Batch sizes of the whole-pipeline sweep.
const SWEEP: [usize; 4] = [1, 10, 100, 1000];

/// Iteration counts.
struct Counts {
    /// Records per repetition through one `parse` variant.
    records: usize,
    /// Repetitions of each variant (the median is reported).
    reps: usize,
    /// Records per repetition through the whole pipeline, in batches.
    pipeline_records: usize,
    /// Records per repetition through the whole pipeline one at a time (the slow baseline).
    pipeline_single: usize,
    /// Warm time-to-first-record runs.
    warm: usize,
    /// Cold time-to-first-record runs (each with an empty compiled-code cache).
    cold: usize,
}

const FULL: Counts = Counts {
    records: 2000,
    reps: 5,
    pipeline_records: 100_000,
    pipeline_single: 2000,
    warm: 10,
    cold: 3,
};
const QUICK: Counts = Counts {
    records: 3,
    reps: 1,
    pipeline_records: 3,
    pipeline_single: 2,
    warm: 1,
    cold: 1,
};

/// One batch of one way into `parse`.
type Variant<'a> = Box<dyn Fn() + 'a>;

/// How long `ETL_BENCH_PROFILE` loops its variant.
const PROFILE_TIME: Duration = Duration::from_secs(15);
/// Issue targets.
const TARGET_OVERHEAD: f64 = 0.15;
const TARGET_PIPELINE: f64 = 50_000.0;
const TARGET_FIRST_RECORD: Duration = Duration::from_millis(300);

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary (unoptimized)
    // without it, and then only the smoke test makes sense. `ETL_BENCH_QUICK` decides when set.
    let quick = match std::env::var("ETL_BENCH_QUICK") {
        Ok(v) if !v.is_empty() => v != "0",
        _ => !std::env::args().any(|a| a == "--bench"),
    };
    let n = if quick { QUICK } else { FULL };
    let limits = Limits::default();
    // The baseline: one record per call.
    let single = Limits { batch: 1, ..limits };
    let sized = |batch: usize| Limits { batch, ..limits };

    println!(
        "etl run benchmark{}",
        if quick { " (quick mode)" } else { "" }
    );
    println!(
        "repo: examples/iot-sensors, pipeline `{PIPELINE}`, environment `{ENVIRONMENT}`; \
         {RECORD_BYTES}-byte JSON records; Limits::default() (fuel {}, memory {} MiB)",
        limits.fuel,
        limits.memory >> 20
    );
    println!("{}", machine());
    println!();

    let tmp = tempfile::Builder::new()
        .prefix("etl-bench-run-")
        .tempdir()
        .expect("create tempdir");
    let cache = tmp.path().join("cache");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE);

    // Compile in memory, as `etl run` does; the first time fills the composition cache.
    let origin = Origin::Build(Some(etl::store::Cache::new(&cache)));
    let t = Instant::now();
    let (validation, built) =
        artifacts::prepare(&example, &origin, Generation::V2).expect("read the example");
    let prepare_cold = t.elapsed();
    assert!(
        !validation.has_errors(),
        "the example validates: {:?}",
        validation.diagnostics
    );
    let mut built = built.expect("the example compiles");
    let (mut prepare_warm, mut validate) = (Vec::new(), Vec::new());
    for _ in 0..if quick { 1 } else { 5 } {
        let t = Instant::now();
        let (v, a) =
            artifacts::prepare(&example, &origin, Generation::V2).expect("read the example");
        prepare_warm.push(t.elapsed());
        assert!(!v.has_errors() && a.is_some());
        let t = Instant::now();
        etl::spec::validate(&example).expect("read the example");
        validate.push(t.elapsed());
    }
    let prepare_warm = median(&mut prepare_warm);
    let validate = median(&mut validate);
    let units = built
        .remove(PIPELINE)
        .expect("the example has the pipeline");
    let deployment = etl::build::deployment::deploy(&validation.repo, ENVIRONMENT, PIPELINE)
        .expect("plan the pipeline");
    let mut parse_only = deployment.clone();
    parse_only.units.retain(|u| u.name == STEP);
    assert_eq!(parse_only.units.len(), 1);

    let inputs = records(n.records.max(n.pipeline_records));
    let parse_inputs = &inputs[..n.records];
    let pipeline_inputs = &inputs[..n.pipeline_records];
    let pipeline_single = &inputs[..n.pipeline_single];

    // `ETL_BENCH_PROFILE=<variant>`: loop one variant (to profile it), nothing else.
    let profile = std::env::var("ETL_BENCH_PROFILE")
        .ok()
        .filter(|v| !v.is_empty());

    // Time to first record: cold runs first, each on an empty compiled-code cache, the last one
    // on `cache` (which it fills), then fresh runtimes start from `cache`.
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    if profile.is_none() {
        for i in 0..n.cold {
            let dir = if i + 1 == n.cold {
                cache.clone()
            } else {
                tmp.path().join(format!("cold-{i}"))
            };
            cold.push(first_record(&dir, &deployment, &units, &inputs[0], &limits));
        }
        for _ in 0..n.warm {
            warm.push(first_record(
                &cache,
                &deployment,
                &units,
                &inputs[0],
                &limits,
            ));
        }
    }

    // The three ways into `parse`.
    let runtime = Runtime::new(Some(&cache)).expect("a runtime");
    let composed = runtime.load(&parse_only, &units).expect("load parse");
    let mut whole = runtime
        .load(&deployment, &units)
        .expect("load the pipeline");
    whole.set_secrets(|key| (key == SECRET.0).then(|| SECRET.1.to_owned()));
    // The same pipeline with its `alerts` webhook sink sending NDJSON batches (`batch: ndjson`)
    // instead of one request per record.
    let mut sink_batches = deployment.clone();
    for unit in sink_batches.units.iter_mut().filter(|u| u.name == "alerts") {
        unit.config
            .insert("etl.out.batch".to_owned(), "ndjson".to_owned());
    }
    let mut whole_sink_batches = runtime
        .load(&sink_batches, &units)
        .expect("load the pipeline");
    whole_sink_batches.set_secrets(|key| (key == SECRET.0).then(|| SECRET.1.to_owned()));
    let customer = {
        let path = example.join("components/parse.wasm");
        let bytes = std::fs::read(&path).expect("read parse.wasm");
        etl::build::resolve::prepare("components/parse.wasm", bytes, None)
            .expect("parse.wasm is a valid component")
            .component
    };
    let bare = Bare::new(&customer);
    let (nats_only, nats_units) = behind_nats(&parse_only, &units, &customer, false);
    let composed_nats = runtime
        .load(&nats_only, &nats_units)
        .expect("load parse (nats)");
    let (msg_id_only, msg_id_units) = behind_nats(&parse_only, &units, &customer, true);
    let composed_msg_id = runtime
        .load(&msg_id_only, &msg_id_units)
        .expect("load parse (nats, msg-id)");

    // Correctness first: the bare component and the composed step give the same reading, and
    // the whole pipeline archives it.
    let expected = bare.fresh(&inputs[0], &limits);
    let report = whole
        .run(&inputs[..1], &limits, &mut |_| {})
        .expect("run one record");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let archived = report
        .sinks
        .iter()
        .find(|s| s.sink == "archive")
        .expect("the reading is archived");
    assert_eq!(archived.record.payload, expected);
    let calls_per_record = run_whole(&whole, pipeline_inputs, &limits);

    let mut variants: Vec<(String, Variant)> = vec![
        (
            "bare-1".into(),
            Box::new(|| {
                for r in parse_inputs {
                    bare.fresh(r, &limits);
                }
            }),
        ),
        (
            "bare".into(),
            Box::new(|| {
                for batch in parse_inputs.chunks(BATCH) {
                    bare.reused(batch, &limits);
                }
            }),
        ),
        (
            "runner-1".into(),
            Box::new(|| run_parse(&composed, parse_inputs, &single)),
        ),
        (
            "runner".into(),
            Box::new(|| run_parse(&composed, parse_inputs, &limits)),
        ),
        (
            "runner-nats-1".into(),
            Box::new(|| run_parse(&composed_nats, parse_inputs, &single)),
        ),
        (
            "runner-nats".into(),
            Box::new(|| run_parse(&composed_nats, parse_inputs, &limits)),
        ),
        (
            "runner-msg-id-1".into(),
            Box::new(|| run_parse(&composed_msg_id, parse_inputs, &single)),
        ),
        (
            "runner-msg-id".into(),
            Box::new(|| run_parse(&composed_msg_id, parse_inputs, &limits)),
        ),
    ];
    {
        let whole = &whole_sink_batches;
        variants.push((
            "pipeline-sink-batches".into(),
            Box::new(move || {
                run_whole(whole, pipeline_inputs, &limits);
            }),
        ));
    }
    for batch in SWEEP {
        let whole = &whole;
        let inputs = if batch == 1 {
            pipeline_single
        } else {
            pipeline_inputs
        };
        let limits = sized(batch);
        variants.push((
            format!("pipeline-{batch}"),
            Box::new(move || {
                run_whole(whole, inputs, &limits);
            }),
        ));
    }
    if let Some(name) = profile {
        let names: Vec<&str> = variants.iter().map(|(n, _)| n.as_str()).collect();
        let (_, f) = variants
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("ETL_BENCH_PROFILE: one of {names:?}"));
        let t = Instant::now();
        let mut batches = 0;
        while t.elapsed() < PROFILE_TIME {
            f();
            batches += 1;
        }
        println!(
            "profiled `{name}`: {batches} batches in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        return;
    }
    let mut times: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for _ in 0..n.reps {
        for (name, f) in &variants {
            let t = Instant::now();
            f();
            times.entry(name.as_str()).or_default().push(t.elapsed());
        }
    }
    let mut med = |name: &str| median(times.get_mut(name).expect("measured"));
    let per_second = |d: Duration, count: usize| count as f64 / d.as_secs_f64();
    let micros = |d: Duration, count: usize| d.as_secs_f64() * 1e6 / count as f64;

    let bare_single = med("bare-1");
    let bare_batch = med("bare");
    let runner_single = med("runner-1");
    let runner = med("runner");
    let nats_single = med("runner-nats-1");
    let runner_nats = med("runner-nats");
    let msg_id_single = med("runner-msg-id-1");
    let runner_msg_id = med("runner-msg-id");
    let records = n.records;
    let overhead = |composed: Duration, bare: Duration| {
        1.0 - per_second(composed, records) / per_second(bare, records)
    };

    println!(
        "step `{STEP}`, {records} records of {RECORD_BYTES} bytes per repetition, median of {} \
         repetitions; one thread",
        n.reps
    );
    println!();
    println!(
        "| path into `{STEP}` | batch 1 (a fresh instance per record): records/s | µs/record | \
         batch {BATCH} (a fresh instance per batch): records/s | µs/record |"
    );
    println!("|---|---:|---:|---:|---:|");
    let row = |name: &str, one: Duration, batched: Duration| {
        println!(
            "| {name} | {:.0} | {:.1} | {:.0} | {:.1} |",
            per_second(one, records),
            micros(one, records),
            per_second(batched, records),
            micros(batched, records)
        );
    };
    row(
        "bare customer component, `transform` called directly (in a loop per batch)",
        bare_single,
        bare_batch,
    );
    row(
        "composed step, `etl_run::LoadedPipeline::run` (HTTP source: a POST per record, or NDJSON per batch)",
        runner_single,
        runner,
    );
    row(
        "composed step, `LoadedPipeline::run`, behind a NATS source (an envelope per record, or per batch)",
        nats_single,
        runner_nats,
    );
    row(
        "the same with `delivery.nats_msg_id` (1.x: the `msg-id` part sets `Nats-Msg-Id`)",
        msg_id_single,
        runner_msg_id,
    );
    println!(
        "| **harness overhead** 1 − composed/bare | **{:.0} %** (HTTP), {:.0} % (NATS) | | \
         **{:.0} %** (HTTP), {:.0} % (NATS) | |",
        100.0 * overhead(runner_single, bare_single),
        100.0 * overhead(nats_single, bare_single),
        100.0 * overhead(runner, bare_batch),
        100.0 * overhead(runner_nats, bare_batch),
    );

    let (bare_shape, composed_shape) = (shape(&customer), shape(&units[STEP].bytes));
    println!();
    println!(
        "what one instantiation sets up (core instances, of modules, linear memories): bare \
         {}, {}, {}; composed {}, {}, {}",
        bare_shape.0,
        bare_shape.1,
        bare_shape.2,
        composed_shape.0,
        composed_shape.1,
        composed_shape.2,
    );

    println!();
    println!(
        "whole pipeline `{PIPELINE}` through a Session ({calls_per_record:.1} unit deliveries per \
         record), fresh instances per call:"
    );
    println!();
    println!("| batch size | records | records/s | µs/record |");
    println!("|---:|---:|---:|---:|");
    let mut pipeline_rate = 0.0;
    for batch in SWEEP {
        let count = if batch == 1 {
            n.pipeline_single
        } else {
            n.pipeline_records
        };
        let d = med(&format!("pipeline-{batch}"));
        if batch == BATCH {
            pipeline_rate = per_second(d, count);
        }
        println!(
            "| {batch} | {count} | {:.0} | {:.1} |",
            per_second(d, count),
            micros(d, count)
        );
    }
    let d = med("pipeline-sink-batches");
    let sink_batches_rate = per_second(d, n.pipeline_records);
    println!(
        "| {BATCH}, `alerts` sending NDJSON batches (`batch: ndjson`) | {} | {sink_batches_rate:.0} | {:.1} |",
        n.pipeline_records,
        micros(d, n.pipeline_records)
    );

    println!();
    println!(
        "time to first record, `{PIPELINE}` ({} units): Runtime::new + load + run of 1 record",
        deployment.units.len()
    );
    println!();
    println!(
        "| path | caches | runs | Runtime::new ms | load ms | run ms | total ms (median) | min | \
         max |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, runs) in [("cold (empty)", &cold), ("warm", &warm)] {
        let pick = |f: fn(&FirstRecord) -> Duration| {
            let mut xs: Vec<Duration> = runs.iter().map(f).collect();
            median(&mut xs)
        };
        let mut totals: Vec<Duration> = runs.iter().map(|r| r.total).collect();
        let total = median(&mut totals);
        println!(
            "| in-process | {name} | {} | {:.1} | {:.1} | {:.1} | **{:.1}** | {:.1} | {:.1} |",
            runs.len(),
            ms(pick(|r| r.new)),
            ms(pick(|r| r.load)),
            ms(pick(|r| r.run)),
            ms(total),
            ms(totals[0]),
            ms(*totals.last().expect("a run")),
        );
    }
    // The CLI, as a user starts it: process start, validate, compile in memory, plan, load, run,
    // print. Full mode only (unoptimized, a cold one takes seconds).
    let mut cli_warm = None;
    if quick {
        println!("| CLI `etl run` | — | skipped in quick mode | | | | | | |");
    } else {
        let input = tmp.path().join("input.jsonl");
        let line = serde_json::json!({
            "payload": String::from_utf8(inputs[0].payload.clone()).expect("JSON text"),
        });
        std::fs::write(&input, format!("{line}\n")).expect("write the input");
        let secrets = tmp.path().join("secrets.yaml");
        std::fs::write(&secrets, format!("{}: {}\n", SECRET.0, SECRET.1))
            .expect("write the secrets");
        let cli_cache = tmp.path().join("cli-cache");
        let mut cold_cli: Vec<Duration> = (0..n.cold)
            .map(|i| {
                let dir = if i + 1 == n.cold {
                    cli_cache.clone()
                } else {
                    tmp.path().join(format!("cli-cold-{i}"))
                };
                cli_run(&example, &input, &secrets, &dir)
            })
            .collect();
        let mut warm_cli: Vec<Duration> = (0..n.warm)
            .map(|_| cli_run(&example, &input, &secrets, &cli_cache))
            .collect();
        for (name, runs) in [
            (
                "cold (empty: componentize, compose, Cranelift)",
                &mut cold_cli,
            ),
            ("warm", &mut warm_cli),
        ] {
            let total = median(runs);
            println!(
                "| CLI `etl run` | {name} | {} | — | — | — | **{:.1}** | {:.1} | {:.1} |",
                runs.len(),
                ms(total),
                ms(runs[0]),
                ms(*runs.last().expect("a run")),
            );
        }
        cli_warm = Some(median(&mut warm_cli));
    }
    println!();
    println!(
        "before Runtime::new, `etl run` validates and compiles the repo in memory \
         (artifacts::prepare): {:.1} ms with the composition cache warm (of which {:.1} ms \
         `etl::spec::validate`), {:.1} ms cold (once)",
        ms(prepare_warm),
        ms(validate),
        ms(prepare_cold)
    );

    println!();
    let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let o = overhead(runner, bare_batch);
    println!(
        "target harness overhead < {:.0} % at batch {BATCH}: {:.0} % (HTTP source), {:.0} % (NATS \
         source): {}",
        100.0 * TARGET_OVERHEAD,
        100.0 * o,
        100.0 * overhead(runner_nats, bare_batch),
        pass(o < TARGET_OVERHEAD),
    );
    println!(
        "target whole pipeline > {TARGET_PIPELINE:.0} records/s at batch {BATCH}: {pipeline_rate:.0} \
         (a request per alert), {sink_batches_rate:.0} (alerts in NDJSON batches): {}",
        pass(pipeline_rate > TARGET_PIPELINE)
    );
    let mut totals: Vec<Duration> = warm.iter().map(|r| r.total).collect();
    let warm_total = median(&mut totals);
    match cli_warm {
        Some(cli) => println!(
            "target time to first record < {} ms (warm): {:.1} ms in-process, {:.1} ms through \
             the CLI: {}",
            TARGET_FIRST_RECORD.as_millis(),
            ms(warm_total),
            ms(cli),
            pass(warm_total < TARGET_FIRST_RECORD && cli < TARGET_FIRST_RECORD)
        ),
        None => println!(
            "target time to first record < {} ms (warm): {:.1} ms in-process: {}",
            TARGET_FIRST_RECORD.as_millis(),
            ms(warm_total),
            pass(warm_total < TARGET_FIRST_RECORD)
        ),
    }
}

/// `n` readings of exactly [`RECORD_BYTES`] bytes, padded by a `note` field `parse` ignores;
/// temperatures from 20 to 79 °C, so some pass the `dev` threshold (50) and some do not.
fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let head = format!(
                r#"{{"sensor":"t-{:03}","temp_c":{}.5,"ts":"2026-11-01T12:{:02}:{:02}Z","note":""#,
                i % 1000,
                20 + i % 60,
                (i / 60) % 60,
                i % 60
            );
            let mut payload = head.into_bytes();
            payload.resize(RECORD_BYTES - 2, b'x');
            payload.extend_from_slice(b"\"}");
            assert_eq!(payload.len(), RECORD_BYTES);
            Record {
                key: None,
                payload,
                headers: Vec::new(),
            }
        })
        .collect()
}

/// The phases of one time-to-first-record run.
struct FirstRecord {
    new: Duration,
    load: Duration,
    run: Duration,
    total: Duration,
}

/// A fresh runtime on the compiled-code cache `cache`, the whole pipeline loaded, one record run.
fn first_record(
    cache: &Path,
    deployment: &Deployment,
    units: &BTreeMap<String, Artifact>,
    record: &Record,
    limits: &Limits,
) -> FirstRecord {
    let t = Instant::now();
    let runtime = Runtime::new(Some(cache)).expect("a runtime");
    let new = t.elapsed();
    let mut pipeline = runtime.load(deployment, units).expect("load the pipeline");
    pipeline.set_secrets(|key| (key == SECRET.0).then(|| SECRET.1.to_owned()));
    let load = t.elapsed() - new;
    let report = pipeline
        .run(std::slice::from_ref(record), limits, &mut |_| {})
        .expect("run one record");
    let total = t.elapsed();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(!report.sinks.is_empty(), "the record reached a sink");
    FirstRecord {
        new,
        load,
        run: total - new - load,
        total,
    }
}

/// Core module instantiations, core modules and the linear memories they define, at any depth
/// of a component: what instantiating it sets up.
fn shape(component: &[u8]) -> (usize, usize, usize) {
    let (mut instantiations, mut modules, mut memories) = (0, 0, 0);
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload.expect("a valid component") {
            wasmparser::Payload::InstanceSection(s) => {
                instantiations += s
                    .into_iter()
                    .filter(|i| matches!(i, Ok(wasmparser::Instance::Instantiate { .. })))
                    .count();
            }
            wasmparser::Payload::ModuleSection { .. } => modules += 1,
            wasmparser::Payload::MemorySection(s) => memories += s.count() as usize,
            _ => {}
        }
    }
    (instantiations, modules, memories)
}

/// The `parse`-only deployment and artifacts, but behind a NATS source: `parse` composed with
/// `in-messaging` instead of `in-http` (as `etl compile` composes it behind a `nats` source), and
/// subscribed to the source's subject.
/// With `msg_id`, the wasmCloud 1.x composition of a project with `delivery.nats_msg_id`: the
/// `msg-id` part between `out-messaging` and the host.
fn behind_nats(
    parse_only: &Deployment,
    units: &BTreeMap<String, Artifact>,
    customer: &[u8],
    msg_id: bool,
) -> (Deployment, BTreeMap<String, Artifact>) {
    let subject = "bench.sensors.in".to_owned();
    let mut deployment = parse_only.clone();
    deployment.source.connector = SourceConnector::Nats;
    deployment.source.subject = Some(subject.clone());
    deployment.source.settings = BTreeMap::from([("subject".to_owned(), subject.clone())]);
    let unit = &mut deployment.units[0];
    unit.http = false;
    unit.subscriptions = vec![subject];
    let bytes = etl::build::compose::compose(etl::build::compose::Parts {
        settings: Part::Settings.bytes(),
        customer,
        outbound: Part::OutMessaging.bytes(),
        inbound: &[Part::InMessaging.bytes()],
        egress: None,
        msg_id: msg_id.then(|| Part::MsgId.bytes()),
    })
    .expect("compose parse behind in-messaging");
    let mut units = units.clone();
    units.insert(
        STEP.to_owned(),
        Artifact {
            digest: etl::util::digest::sha256(&bytes),
            bytes: Arc::from(bytes),
            egress: Vec::new(),
        },
    );
    (deployment, units)
}

/// Wall time of `etl run sensor-ingest --env dev` on one record, with `cache` as its cache
/// and the secret values of the file `secrets`.
fn cli_run(repo: &Path, input: &Path, secrets: &Path, cache: &Path) -> Duration {
    let args = ["run", PIPELINE, "--env", ENVIRONMENT, "--format", "jsonl"].map(OsStr::new);
    let more = [
        OsStr::new("--repo"),
        repo.as_os_str(),
        OsStr::new("--input"),
        input.as_os_str(),
        OsStr::new("--secrets"),
        secrets.as_os_str(),
        OsStr::new("--cache-dir"),
        cache.as_os_str(),
    ];
    let (wall, output) = time_etl(args.into_iter().chain(more));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("archive"),
        "the record reached the archive"
    );
    wall
}

/// Runs `inputs` through the `parse`-only pipeline and checks each gave one reading.
fn run_parse(pipeline: &LoadedPipeline, inputs: &[Record], limits: &Limits) {
    let report = pipeline.run(inputs, limits, &mut |_| {}).expect("run");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let counts = report.counts_of(STEP).expect("parse ran");
    assert_eq!(counts.produced, inputs.len() as u64);
    assert_eq!(report.unconsumed, inputs.len() as u64);
}

/// Runs `inputs` through the whole pipeline in batches of `limits.batch`, dropping each
/// outcome as it comes; the records delivered to units per input record.
fn run_whole(pipeline: &LoadedPipeline, inputs: &[Record], limits: &Limits) -> f64 {
    let mut session = pipeline.session(limits);
    for batch in inputs.chunks(limits.batch) {
        for outcome in session.feed_batch(batch).expect("run") {
            assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
        }
    }
    let summary = session.summary();
    let calls: u64 = summary.counts.iter().map(|(_, c)| c.received).sum();
    calls as f64 / inputs.len() as f64
}

/// The engine of `etl_run::Runtime`, so that every variant runs under the same configuration.
fn engine() -> Engine {
    etl_run::engine().expect("an engine")
}

/// The memory limit of the runner's stores (`runtime/src/host.rs`).
struct Limiter {
    memory: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.memory)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

// --- bare: the customer component alone -----------------------------------------------------

/// The store state of a bare call: the limits, and an empty `etl:pipeline/config`.
struct BareHost {
    limiter: Limiter,
}

impl bare::etl::pipeline::types::Host for BareHost {}

impl bare::etl::pipeline::config::Host for BareHost {
    fn get(&mut self, _key: String) -> Option<String> {
        None
    }

    fn get_all(&mut self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// The customer component, linked and ready to instantiate.
struct Bare {
    engine: Engine,
    pre: bare::TransformerPre<BareHost>,
}

impl Bare {
    fn new(component: &[u8]) -> Self {
        let engine = engine();
        let component = Component::new(&engine, component).expect("compile parse");
        let mut linker = Linker::new(&engine);
        bare::Transformer::add_to_linker::<_, HasSelf<BareHost>>(&mut linker, |h| h).expect("link");
        let pre = bare::TransformerPre::new(linker.instantiate_pre(&component).expect("link"))
            .expect("parse exports transform");
        Bare { engine, pre }
    }

    fn store(&self, limits: &Limits) -> Store<BareHost> {
        let mut store = Store::new(
            &self.engine,
            BareHost {
                limiter: Limiter {
                    memory: limits.memory,
                },
            },
        );
        store.limiter(|h| &mut h.limiter);
        store.set_fuel(limits.fuel).expect("fuel is on");
        store
    }

    /// One record in a fresh store and instance; the reading's payload.
    fn fresh(&self, record: &Record, limits: &Limits) -> Vec<u8> {
        let mut store = self.store(limits);
        let instance = self.pre.instantiate(&mut store).expect("instantiate");
        call_transform(&instance, &mut store, record)
    }

    /// Every record through one instance (`transform` in a loop), the fuel reset before each
    /// call.
    fn reused(&self, records: &[Record], limits: &Limits) {
        let mut store = self.store(limits);
        let instance = self.pre.instantiate(&mut store).expect("instantiate");
        for r in records {
            store.set_fuel(limits.fuel).expect("fuel is on");
            call_transform(&instance, &mut store, r);
        }
    }
}

fn call_transform(
    instance: &bare::Transformer,
    store: &mut Store<BareHost>,
    record: &Record,
) -> Vec<u8> {
    let message = Message {
        key: record.key.clone(),
        payload: record.payload.clone(),
        headers: record.headers.clone(),
    };
    match instance
        .etl_pipeline_transform()
        .call_transform(&mut *store, &message)
        .expect("transform does not trap")
    {
        Ok(mut out) => {
            assert_eq!(out.len(), 1, "parse gives one reading per record");
            out.pop().expect("one").payload
        }
        Err(TransformError::Invalid(e) | TransformError::Transient(e)) => {
            panic!("parse refused a record: {e}")
        }
    }
}
