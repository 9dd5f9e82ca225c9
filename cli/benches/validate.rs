//! Benchmark of `etl validate` on generated repos of 10, 100 and 1000 pipelines.
//!
//! A plain bench binary (no criterion, to keep the build lean):
//!
//! ```sh
//! cargo bench -p etl-cli --bench validate                               # full run: N = 10, 100, 1000
//! ETL_BENCH_QUICK=1 cargo bench -p etl-cli --bench validate             # smoke test for CI: N = 10, one run
//! cargo test -p etl-cli --bench validate                                # also the smoke test (no `--bench` arg)
//! ETL_BENCH_SIZES=10,1000,5000 cargo bench -p etl-cli --bench validate  # other sizes
//! ETL_BENCH_KEEP=1 cargo bench -p etl-cli --bench validate              # keep the generated repos (to profile)
//! ```
//!
//! For each size it generates a repo in a tempdir, asserts that it validates without errors (so
//! the happy path is what is measured), then:
//!
//! - times `etl::spec::validate` in-process: one warm-up run, then the median and minimum of
//!   several runs, with the median split into its stages (`load::load`, `validate::check_repo`);
//! - runs the real CLI (`etl validate --repo DIR --format json`, stdout to null) and records its
//!   wall time and peak RSS. Each CLI run is spawned by a fresh copy of this binary (re-executed
//!   with `ETL_BENCH_CHILD=DIR`) whose only child is the CLI, so `getrusage(RUSAGE_CHILDREN)`
//!   in that helper is the CLI's own peak RSS and not the maximum over earlier, larger runs.
//!
//! See docs/PERFORMANCE.md for figures and targets.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{machine, median, ms};

/// Steps per pipeline (a chain, plus a fan-out from the second step).
const STEPS: usize = 5;
/// Distinct component files under `components/`, shared across steps.
const COMPONENTS: usize = 20;
/// Environments declared in `etl.yaml`.
const ENVIRONMENTS: [&str; 3] = ["dev", "staging", "prod"];
/// Set in a re-executed copy of this binary: run the CLI once on this repo and report rusage.
const CHILD_ENV: &str = "ETL_BENCH_CHILD";
/// Issue targets for 1,000 pipelines × 5 steps.
const TARGET_TIME: Duration = Duration::from_secs(2);
const TARGET_RSS_MB: f64 = 200.0;

fn main() {
    if let Some(repo) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&repo));
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary (unoptimized)
    // without it, and then only the smoke test makes sense. `ETL_BENCH_QUICK` decides when set.
    let quick = match std::env::var("ETL_BENCH_QUICK") {
        Ok(v) if !v.is_empty() => v != "0",
        _ => !std::env::args().any(|a| a == "--bench"),
    };
    let sizes: Vec<usize> = match std::env::var("ETL_BENCH_SIZES") {
        Ok(s) if !s.trim().is_empty() => s
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("ETL_BENCH_SIZES: comma-separated integers")
            })
            .collect(),
        _ if quick => vec![10],
        _ => vec![10, 100, 1000],
    };

    println!(
        "etl validate benchmark{}",
        if quick { " (quick mode)" } else { "" }
    );
    println!(
        "repo shape: N pipelines x {STEPS} steps (chain + fan-out, 2 sinks), {} environments, \
         1 override file, 1 fixture per pipeline, {COMPONENTS} components",
        ENVIRONMENTS.len()
    );
    println!("{}", machine());
    println!();

    let mut results = Vec::new();
    for &n in &sizes {
        let dir = tempfile::Builder::new()
            .prefix("etl-bench-")
            .tempdir()
            .expect("create tempdir");
        let shape = generate(dir.path(), n);
        let keep = std::env::var("ETL_BENCH_KEEP").is_ok_and(|v| !v.is_empty() && v != "0");

        // The first run asserts the happy path and doubles as the warm-up.
        let v = etl::spec::validate(dir.path()).expect("validate runs");
        if v.has_errors() || !v.diagnostics.is_empty() {
            let text = etl::diag::render::human(
                &v.diagnostics,
                v.sources(),
                &etl::diag::render::Paths::new(&dir.path().to_string_lossy()),
                false,
            );
            panic!("generated repo of {n} pipelines is not clean:\n{text}");
        }
        assert_eq!(v.repo.pipelines.len(), n, "every pipeline loaded");
        assert_eq!(v.repo.tests.len(), n, "every fixture loaded");
        assert_eq!(v.repo.environments.len(), 1, "the override file loaded");
        drop(v);

        let runs = if quick {
            1
        } else if n <= 100 {
            10
        } else {
            5
        };
        let mut total = Vec::with_capacity(runs);
        let mut load = Vec::with_capacity(runs);
        let mut check = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let v = etl::spec::validate(dir.path()).expect("validate runs");
            total.push(t.elapsed());
            assert!(!v.has_errors());
            drop(v);

            let t = Instant::now();
            let (repo, _) = etl::spec::load::load(dir.path()).expect("load runs");
            load.push(t.elapsed());
            let t = Instant::now();
            let (diagnostics, _) = etl::spec::validate::check_repo(&repo, None);
            check.push(t.elapsed());
            assert!(diagnostics.is_empty());
        }

        let cli_runs = if quick { 1 } else { 3 };
        let cli: Vec<(Duration, u64)> = (0..cli_runs).map(|_| cli_run(dir.path())).collect();

        results.push(Row {
            pipelines: n,
            steps: n * STEPS,
            files: shape.files,
            bytes: shape.bytes,
            median: median(&mut total),
            min: *total.iter().min().expect("a run"),
            runs,
            load: median(&mut load),
            check: median(&mut check),
            cli_wall: median(&mut cli.iter().map(|c| c.0).collect::<Vec<_>>()),
            cli_rss_kb: cli.iter().map(|c| c.1).max().expect("a CLI run"),
        });
        print_row_progress(results.last().expect("pushed"));
        if keep {
            eprintln!(
                "  kept the repo of {n} pipelines in {}",
                dir.keep().display()
            );
        }
    }

    println!();
    print!("{}", table(&results));

    if let Some(r) = results.iter().find(|r| r.pipelines == 1000) {
        let time_ok = r.median < TARGET_TIME && r.cli_wall < TARGET_TIME;
        let rss_ok = (r.cli_rss_kb as f64 / 1024.0) < TARGET_RSS_MB;
        println!();
        println!(
            "target 1000 pipelines x {STEPS} steps < {} s: in-process median {:.1} ms, CLI {:.1} ms: {}",
            TARGET_TIME.as_secs(),
            ms(r.median),
            ms(r.cli_wall),
            if time_ok { "PASS" } else { "FAIL" }
        );
        println!(
            "target 1000 pipelines x {STEPS} steps < {TARGET_RSS_MB} MB peak RSS: {:.1} MB: {}",
            r.cli_rss_kb as f64 / 1024.0,
            if rss_ok { "PASS" } else { "FAIL" }
        );
    }
}

/// Figures for one repo size.
struct Row {
    pipelines: usize,
    steps: usize,
    files: usize,
    bytes: u64,
    median: Duration,
    min: Duration,
    runs: usize,
    load: Duration,
    check: Duration,
    cli_wall: Duration,
    cli_rss_kb: u64,
}

fn print_row_progress(r: &Row) {
    eprintln!(
        "  N={:<5} validate median {:>9.2} ms over {} runs, CLI {:>9.2} ms, {:>7.1} MB",
        r.pipelines,
        ms(r.median),
        r.runs,
        ms(r.cli_wall),
        r.cli_rss_kb as f64 / 1024.0
    );
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| pipelines | steps | files | YAML KiB | median ms | min ms | µs/pipeline | load ms | check ms | CLI wall ms | CLI peak RSS MB |"
    );
    let _ = writeln!(
        s,
        "|----------:|------:|------:|---------:|----------:|-------:|------------:|--------:|---------:|------------:|----------------:|"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} |",
            r.pipelines,
            r.steps,
            r.files,
            r.bytes as f64 / 1024.0,
            ms(r.median),
            ms(r.min),
            r.median.as_secs_f64() * 1e6 / r.pipelines as f64,
            ms(r.load),
            ms(r.check),
            ms(r.cli_wall),
            r.cli_rss_kb as f64 / 1024.0,
        );
    }
    s
}

/// Runs the CLI once on `repo` in a fresh helper process; its wall time and peak RSS (KiB).
fn cli_run(repo: &Path) -> (Duration, u64) {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_ENV, repo)
        .stderr(Stdio::inherit())
        .output()
        .expect("spawn the bench helper");
    assert!(out.status.success(), "bench helper failed: {}", out.status);
    let text = String::from_utf8(out.stdout).expect("helper prints UTF-8");
    let mut fields = text.split_whitespace();
    let mut next = |what| -> u64 {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("helper output `{text}` lacks {what}"))
    };
    let wall_ns = next("wall time");
    let rss_kb = next("max RSS");
    (Duration::from_nanos(wall_ns), rss_kb)
}

/// The helper: runs `etl validate --repo DIR --format json` once, prints `WALL_NS MAXRSS_KB`.
/// Its only child is the CLI, so `RUSAGE_CHILDREN` is that run's peak RSS.
fn child(repo: &Path) {
    let start = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_etl"))
        .arg("validate")
        .arg("--repo")
        .arg(repo)
        .args(["--format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("spawn etl");
    let wall = start.elapsed();
    assert!(
        status.success(),
        "`etl validate` on the generated repo: {status}"
    );
    // SAFETY: `getrusage` writes a `rusage` into the pointer it is given, which points to a
    // zeroed, properly aligned `rusage` on our stack.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(
            libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage),
            0,
            "getrusage"
        );
        usage
    };
    // Linux reports ru_maxrss in KiB.
    println!("{} {}", wall.as_nanos(), usage.ru_maxrss);
}

/// What was generated.
struct Shape {
    files: usize,
    bytes: u64,
}

/// Writes a valid repo of `n` pipelines under `root`.
fn generate(root: &Path, n: usize) -> Shape {
    let mut shape = Shape { files: 0, bytes: 0 };
    let mut write = |rel: &str, bytes: &[u8]| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
        shape.files += 1;
        shape.bytes += bytes.len() as u64;
    };

    // Components: tiny files with a Wasm header (all validate checks), each pinned by its real
    // sha256.
    let components: Vec<(String, String)> = (0..COMPONENTS)
        .map(|c| {
            let file = format!("components/{}.wasm", component_name(c));
            let mut bytes = b"\0asm\x01\0\0\0".to_vec();
            bytes.extend(
                format!("placeholder component {c} for the etl validate benchmark\n").bytes(),
            );
            let digest = etl::util::digest::sha256(&bytes);
            write(&file, &bytes);
            (file, digest)
        })
        .collect();

    write("etl.yaml", project().as_bytes());
    write("environments/staging.yaml", staging_override(n).as_bytes());
    for i in 0..n {
        let name = pipeline_name(i);
        write(
            &format!("pipelines/{name}.yaml"),
            pipeline(i, &components).as_bytes(),
        );
        write(&format!("tests/{name}.yaml"), fixture(i).as_bytes());
    }
    // YAML bytes only: component bytes are not parsed.
    shape.bytes -= (0..COMPONENTS)
        .map(|c| format!("placeholder component {c} for the etl validate benchmark\n").len() as u64)
        .sum::<u64>();
    shape
}

fn pipeline_name(i: usize) -> String {
    format!("orders-{i:05}")
}

fn component_name(c: usize) -> &'static str {
    const NAMES: [&str; COMPONENTS] = [
        "parse-json",
        "parse-csv",
        "validate",
        "normalize",
        "dedupe",
        "enrich-geo",
        "enrich-customer",
        "currency",
        "tax",
        "fraud-score",
        "threshold",
        "redact-pii",
        "aggregate",
        "window",
        "route",
        "flatten",
        "mask",
        "classify",
        "sample",
        "format-out",
    ];
    NAMES[c]
}

fn project() -> String {
    let mut s = String::from(
        "# yaml-language-server: $schema=../schema/project.schema.json
apiVersion: etl/v1alpha1
kind: Project
metadata:
  name: bench-orders
  description: Generated by cli/benches/validate.rs.
spec:
  registry: registry.acme.example/etl
  providers:
    http-server: wasmcloud+builtin://http-server
    http-client: wasmcloud+builtin://http-client
    messaging-nats: wasmcloud+builtin://messaging-nats
    messaging-kafka: ghcr.io/wasmcloud/messaging-kafka:0.6.1@sha256:0000000000000000000000000000000000000000000000000000000000000000
    blobstore-s3: ghcr.io/wasmcloud/blobstore-s3:0.12.1@sha256:0000000000000000000000000000000000000000000000000000000000000000
  environments:
",
    );
    for (e, env) in ENVIRONMENTS.iter().enumerate() {
        let replicas = e + 1;
        let _ = write!(
            s,
            "    {env}:
      lattice: acme-orders-{env}
      replicas: {replicas}
"
        );
        match *env {
            "staging" => s.push_str(
                "      spread:
        - name: lab
          requirements: { zone: lab }
",
            ),
            "prod" => s.push_str(
                "      spread:
        - name: east
          requirements: { zone: east, tier: compute }
          weight: 60
        - name: west
          requirements: { zone: west, tier: compute }
          weight: 40
",
            ),
            _ => {}
        }
        let host = if *env == "prod" {
            String::new()
        } else {
            format!("{env}.")
        };
        let _ = write!(
            s,
            "      vars:
        threshold: \"{}\"
        site: plant-{env}
        region: eu-west-{}
        alert_url: https://alerts.{host}acme.example/hook
        archive_subject: orders.{env}.archive
        topic_prefix: orders.{env}
        batch_size: \"{}\"
        window: {}s
",
            50 + 15 * e,
            e + 1,
            100 * (e + 1),
            30 * (e + 1),
        );
    }
    s.push_str(
        "  policy:
    allow: [wasi:logging/logging]
  secrets:
    backend: nats-kv
",
    );
    s
}

/// Overrides staging: replicas, vars, and the archive sink of every tenth pipeline.
fn staging_override(n: usize) -> String {
    let mut s = String::from(
        "# yaml-language-server: $schema=../../schema/environment.schema.json
apiVersion: etl/v1alpha1
kind: Environment
metadata:
  name: staging
  description: Staging burn-in.
spec:
  replicas: 1
  vars:
    threshold: \"60\"
    batch_size: \"50\"
  pipelines:
",
    );
    for i in (0..n).step_by(10) {
        let name = pipeline_name(i);
        let _ = write!(
            s,
            "    {name}:
      replicas: 2
      connectors:
        archive:
          with:
            subject: \"{{{{ vars.archive_subject }}}}.replay.{name}\"
        ingest:
          with:
            topic: {name}.replay
"
        );
    }
    s
}

fn pipeline(i: usize, components: &[(String, String)]) -> String {
    let name = pipeline_name(i);
    let step_names = ["parse", "validate", "enrich", "score", "route"];
    let mut s = format!(
        "# yaml-language-server: $schema=../../schema/pipeline.schema.json
apiVersion: etl/v1alpha1
kind: Pipeline
metadata:
  name: {name}
  description: >-
    Orders from shop {i}: parsed, validated, enriched with the customer, scored for fraud and
    routed; every valid order is archived, routed ones are POSTed to the alerting webhook.
spec:
  source:
    name: ingest
    connector: kafka
    with:
      topic: \"{{{{ vars.topic_prefix }}}}.{name}.in\"
      group: \"etl-{{{{ pipeline.name }}}}-{{{{ env.name }}}}\"
      brokers: kafka-0.acme.example:9092,kafka-1.acme.example:9092
  steps:
"
    );
    for (j, step) in step_names.iter().enumerate() {
        let from = if j == 0 { "ingest" } else { step_names[j - 1] };
        let (component, digest) = &components[(i * STEPS + j) % COMPONENTS];
        let _ = write!(
            s,
            "    - name: {step}
      from: [{from}]
      component: {component}
      digest: {digest}
      config:
        threshold: \"{{{{ vars.threshold }}}}\"
        site: \"{{{{ vars.site }}}}-{{{{ vars.region }}}}\"
        batch: \"{{{{ vars.batch_size }}}}\"
        window: \"{{{{ vars.window }}}}\"
        mode: strict
        max_errors: {}
        emit_metrics: true
",
            10 + j
        );
        if j == 3 {
            s.push_str("      allow: [wasi:clocks/wall-clock]\n      replicas: 2\n");
        }
    }
    let _ = write!(
        s,
        "  sinks:
    - name: alerts
      from: [route]
      connector: http
      with:
        url: \"{{{{ vars.alert_url }}}}\"
        method: POST
        timeout: 5s
        authorization: {{ secret: alerts-webhook-token }}
    # Fan-out: `validate` feeds both `enrich` and the archive.
    - name: archive
      from: [validate]
      connector: nats
      with:
        subject: \"{{{{ vars.archive_subject }}}}.{name}\"
"
    );
    s
}

fn fixture(i: usize) -> String {
    let name = pipeline_name(i);
    let env = ENVIRONMENTS[i % ENVIRONMENTS.len()];
    format!(
        "# yaml-language-server: $schema=../../schema/test.schema.json
apiVersion: etl/v1alpha1
kind: Test
metadata:
  name: {name}-smoke
  description: One good order reaches both sinks; a bad one is dead-lettered by parse.
spec:
  pipeline: {name}
  environment: {env}
  input:
    - key: order-{i}
      json: {{ order_id: {i}, customer: c-{i}, amount: 129.5, currency: EUR }}
      headers: {{ source: shop-{i} }}
    - payload: \"not;json;{i}\"
  expect:
    sinks:
      alerts:
        - key: order-{i}
          json: {{ order_id: {i}, customer: c-{i}, amount: 129.5, currency: EUR, score: 0.91, routed: true }}
          headers: {{ source: shop-{i} }}
      archive:
        - key: order-{i}
          json: {{ order_id: {i}, customer: c-{i}, amount: 129.5, currency: EUR }}
          headers: {{ source: shop-{i} }}
    deadLetters:
      - step: parse
        error: not JSON
        record:
          payload: \"not;json;{i}\"
    counts:
      parse: {{ in: 2, out: 1 }}
      route: {{ in: 1, out: 1 }}
"
    )
}
