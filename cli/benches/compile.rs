//! Benchmark of `etl compile` on a generated repo of 200 pipelines × 5 steps, and of its
//! composition side by side with the `wac plug` CLI.
//!
//! A plain bench binary (no criterion, to keep the build lean):
//!
//! ```sh
//! cargo bench -p etl-cli --bench compile                           # full run: 200 pipelines, wac comparison
//! ETL_BENCH_QUICK=1 cargo bench -p etl-cli --bench compile         # smoke test for CI: 10 pipelines, no wac
//! cargo test -p etl-cli --bench compile                            # also the smoke test (no `--bench` arg)
//! ETL_BENCH_PIPELINES=1000 cargo bench -p etl-cli --bench compile  # another repo size
//! ETL_BENCH_COMPONENTS=100 cargo bench -p etl-cli --bench compile  # more distinct components
//! ETL_BENCH_KEEP=1 cargo bench -p etl-cli --bench compile          # keep the generated repo (to profile)
//! ```
//!
//! The repo: N pipelines, each an `http` (every third) or `nats` source, 5 chained steps and 2
//! sinks (`http`, and `nats` or, for every fourth pipeline, `s3`). The steps draw on 20 distinct
//! customer components, made from the example's three core modules
//! (`examples/iot-sensors/components/*.wasm`) by appending a custom section with distinct content
//! to each, and pinned by their real digests. The benchmark asserts that the repo compiles
//! without a diagnostic, then measures:
//!
//! - **cold**: `etl::ops::compile::compile` with a fresh cache dir and a fresh out dir, so every
//!   distinct composition is built (`Compilation::built`); and the CLI
//!   (`etl compile --repo --out --cache-dir`) likewise;
//! - **no-op**: the same, again, with the cache of an earlier run and the repo unchanged
//!   (`built == 0`), in-process and through the CLI;
//! - **per composition**: `etl::build::compose::compose` alone on each distinct composition (the
//!   same parts `compile` gives it), checked to give the very bytes the plan records;
//! - **where the time goes**: the parts of a compile timed alone (`validate`, `resolve_repo`
//!   with and without the cache, reading the cached compositions as `Cache::composed` does,
//!   `compose::interface_of` on a cold compile), the rest by difference;
//! - **wac**: for a sample of the compositions (up to 50), the same wiring done by the
//!   `wac plug` CLI (wac-cli 0.12), three invocations per step: settings plugged into the
//!   customer, settings plugged into the out part, then both results plugged into the in part.
//!   The output is validated, its exports compared with etl's (imports, size and embedded parts
//!   are reported, not asserted), and the wall time of the three processes compared with etl's
//!   in-process `compose` of the same step.
//!
//! Quick mode (`ETL_BENCH_QUICK=1`, or no `--bench` argument) uses 10 pipelines, takes the first
//! compile as the cold figure, runs one no-op and composes 3 compositions once; it skips the
//! split, the CLI and wac, to stay within seconds unoptimized.
//!
//! `wac` is looked for in `$ETL_BENCH_WAC`, then `~/.cache/etl/tools/bin/wac`, then `PATH`;
//! without it the comparison is skipped with a message. Install it, outside the repo, with:
//!
//! ```sh
//! cargo install wac-cli --version 0.12.0 --locked --root ~/.cache/etl/tools
//! ```
//!
//! See docs/PERFORMANCE.md for figures and targets.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use etl::build::compose::{self, Parts};
use etl::build::dist::Plan;
use etl::build::harness::Part;
use etl::build::resolve;
use etl::ops::compile::{Compilation, Options};
use etl::store::Cache;
use etl::util::digest::sha256;

mod support;
use support::{machine, median, ms, time_etl};

/// Steps per pipeline, in a chain.
const STEPS: usize = 5;
/// Distinct customer components under `components/`, shared across the steps (the default).
const COMPONENTS: usize = 20;
/// Pipelines in the full run and in quick mode.
const FULL_PIPELINES: usize = 200;
const QUICK_PIPELINES: usize = 10;
/// Compositions redone with `wac plug`, at most.
const WAC_SAMPLE: usize = 50;
/// The example's customer modules the 20 components are made from.
const MODULES: [&str; 3] = ["parse", "enrich", "threshold-alert"];
/// Issue targets.
const TARGET_COLD: Duration = Duration::from_secs(10);
const TARGET_NOOP: Duration = Duration::from_secs(1);
const TARGET_RATIO: f64 = 3.0;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary (unoptimized)
    // without it, and then only the smoke test makes sense. `ETL_BENCH_QUICK` decides when set.
    let quick = match std::env::var("ETL_BENCH_QUICK") {
        Ok(v) if !v.is_empty() => v != "0",
        _ => !std::env::args().any(|a| a == "--bench"),
    };
    let n: usize = match std::env::var("ETL_BENCH_PIPELINES") {
        Ok(s) if !s.trim().is_empty() => s.trim().parse().expect("ETL_BENCH_PIPELINES: an integer"),
        _ if quick => QUICK_PIPELINES,
        _ => FULL_PIPELINES,
    };
    let count: usize = match std::env::var("ETL_BENCH_COMPONENTS") {
        Ok(s) if !s.trim().is_empty() => {
            s.trim().parse().expect("ETL_BENCH_COMPONENTS: an integer")
        }
        _ => COMPONENTS,
    };
    let keep = std::env::var("ETL_BENCH_KEEP").is_ok_and(|v| !v.is_empty() && v != "0");

    println!(
        "etl compile benchmark{}",
        if quick { " (quick mode)" } else { "" }
    );
    println!(
        "repo shape: {n} pipelines x {STEPS} steps (chain) + 2 sinks, http or nats source, \
         {count} distinct customer components (from the example's {} core modules)",
        MODULES.len()
    );
    println!("{}", machine());
    println!();

    let tmp = tempfile::Builder::new()
        .prefix("etl-bench-compile-")
        .tempdir()
        .expect("create tempdir");
    let repo = tmp.path().join("repo");
    let components = generate(&repo, n, count);
    let mut fresh = 0;
    let mut fresh_dirs = || {
        fresh += 1;
        (
            tmp.path().join(format!("dist-{fresh}")),
            tmp.path().join(format!("cache-{fresh}")),
        )
    };

    // The first compile asserts the happy path and doubles as the warm-up (in quick mode, it is
    // the cold figure). Its cache serves the no-op runs.
    let (noop_out, noop_cache) = fresh_dirs();
    let t = Instant::now();
    let first = compile(&repo, &noop_out, &noop_cache);
    let first_time = t.elapsed();
    let plan = first.plan.clone().expect("the generated repo compiles");
    assert_eq!(plan.pipelines.len(), n, "every pipeline compiled");
    let units: usize = plan
        .pipelines
        .iter()
        .map(|p| p.steps.len() + p.sinks.len())
        .sum();
    let componentized = componentize(&components);
    let recipes = distinct_compositions(&plan, &componentized);
    assert_eq!(
        first.built,
        recipes.len(),
        "a cold compile builds each distinct composition once"
    );
    drop(first);

    // Cold, in-process: fresh cache and out dirs each run.
    let mut cold = Vec::new();
    if quick {
        cold.push(first_time);
    } else {
        for _ in 0..3 {
            let (out, cache) = fresh_dirs();
            let t = Instant::now();
            let c = compile(&repo, &out, &cache);
            cold.push(t.elapsed());
            assert_eq!(c.built, recipes.len());
        }
    }

    // No-op, in-process: the cache of the first run, the repo unchanged.
    let noop_runs = if quick { 1 } else { 5 };
    let mut noop = Vec::new();
    for _ in 0..noop_runs {
        let t = Instant::now();
        let c = compile(&repo, &noop_out, &noop_cache);
        noop.push(t.elapsed());
        assert_eq!(c.built, 0, "an unchanged repo recompiles from the cache");
    }

    // Per composition: `compose` alone, on exactly the parts `compile` gave it (a few of them, once,
    // in quick mode).
    let (compose_runs, sample) = if quick { (1, 3) } else { (5, usize::MAX) };
    let mut per_composition: BTreeMap<String, Duration> = BTreeMap::new();
    for (digest, recipe) in recipes.iter().take(sample) {
        let mut times = Vec::new();
        for _ in 0..compose_runs {
            let t = Instant::now();
            let bytes = recipe.compose();
            times.push(t.elapsed());
            assert_eq!(
                sha256(&bytes),
                *digest,
                "compose gives the bytes the plan records"
            );
        }
        per_composition.insert(digest.clone(), median(&mut times));
    }
    let mut composition_times: Vec<Duration> = per_composition.values().copied().collect();
    let compose_median = median(&mut composition_times);

    let cold_median = median(&mut cold);
    let noop_median = median(&mut noop);
    println!(
        "{n} pipelines, {units} units ({} steps, {} sinks), {} distinct compositions",
        n * STEPS,
        units - n * STEPS,
        recipes.len()
    );
    println!(
        "cold in-process: median {:.0} ms over {} runs (min {:.0}, max {:.0})",
        ms(cold_median),
        cold.len(),
        ms(cold[0]),
        ms(*cold.last().expect("a run"))
    );
    println!(
        "no-op in-process: median {:.0} ms over {noop_runs} runs (min {:.0}, max {:.0})",
        ms(noop_median),
        ms(noop[0]),
        ms(*noop.last().expect("a run"))
    );
    println!(
        "per composition (etl::build::compose::compose, median of {compose_runs} runs each, {} compositions): \
         median {:.1} ms, min {:.1}, max {:.1}",
        composition_times.len(),
        ms(compose_median),
        ms(composition_times[0]),
        ms(*composition_times.last().expect("a composition")),
    );

    // Where the time goes, and the CLI: full mode only (slow unoptimized, and not a smoke test).
    let mut cli = None;
    if quick {
        println!("stage split, CLI runs and wac plug comparison: skipped in quick mode");
    } else {
        let b = breakdown(&repo, &noop_out, &noop_cache, &plan, &recipes);
        let compose_sum: Duration = per_composition.values().sum();
        let interfaces = b.interfaces;
        println!(
            "  cold:  validate {:.0} ms, resolve {:.0} ms (componentize {count} modules, \
             contract), compose {:.0} ms ({} x {:.1} ms), interface_of {:.0} ms, the rest {:.0} \
             ms (recipe keys, cache writes, plan.json, dist/, freeing)",
            ms(b.validate),
            ms(b.resolve_cold),
            ms(compose_sum),
            recipes.len(),
            ms(compose_median),
            ms(interfaces),
            ms(cold_median.saturating_sub(b.validate + b.resolve_cold + compose_sum + interfaces)),
        );
        println!(
            "  no-op: validate {:.0} ms, resolve {:.0} ms (cached components, revalidated, \
             contract), cache reads {:.0} ms ({} compositions read and checked by sha256), the \
             rest {:.0} ms (recipe keys, plan.json, dist/, freeing)",
            ms(b.validate),
            ms(b.resolve_warm),
            ms(b.cache_reads),
            recipes.len(),
            ms(noop_median.saturating_sub(b.validate + b.resolve_warm + b.cache_reads)),
        );

        let mut cli_cold = Vec::new();
        let mut cli_noop = Vec::new();
        for _ in 0..3 {
            let (out, cache) = fresh_dirs();
            cli_cold.push(cli_compile(&repo, &out, &cache));
            cli_noop.push(cli_compile(&repo, &noop_out, &noop_cache));
        }
        let (cold, noop) = (median(&mut cli_cold), median(&mut cli_noop));
        println!(
            "CLI (`etl compile`, 3 runs each): cold median {:.0} ms, no-op median {:.0} ms",
            ms(cold),
            ms(noop)
        );
        cli = Some((cold, noop));
    }

    let wac = if quick {
        None
    } else {
        match find_wac() {
            Some(wac) => Some(compare_with_wac(
                &wac,
                &recipes,
                &per_composition,
                tmp.path(),
            )),
            None => {
                println!(
                    "wac plug comparison: SKIPPED, no `wac` found (looked in $ETL_BENCH_WAC, \
                     ~/.cache/etl/tools/bin and PATH); install it with \
                     `cargo install wac-cli --version 0.12.0 --locked --root ~/.cache/etl/tools`"
                );
                None
            }
        }
    };

    println!();
    println!(
        "| pipelines | units | distinct compositions | cold in-process s | cold CLI s | no-op in-process ms | no-op CLI ms | etl compose ms/composition | wac plug ms/step | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (wac_ms, etl_ms, ratio) = match &wac {
        Some(w) => (
            format!("{:.1}", ms(w.wac_median)),
            format!(
                "{:.1} ({:.1} on the sample)",
                ms(compose_median),
                ms(w.etl_median)
            ),
            format!("{:.1}×", w.ratio()),
        ),
        None => (
            "—".to_owned(),
            format!("{:.1}", ms(compose_median)),
            "—".to_owned(),
        ),
    };
    let (cli_cold, cli_noop) = match cli {
        Some((c, n)) => (format!("{:.2}", c.as_secs_f64()), format!("{:.0}", ms(n))),
        None => ("—".to_owned(), "—".to_owned()),
    };
    println!(
        "| {n} | {units} | {} | {:.2} | {cli_cold} | {:.0} | {cli_noop} | {etl_ms} | {wac_ms} | {ratio} |",
        recipes.len(),
        cold_median.as_secs_f64(),
        ms(noop_median),
    );

    if n == FULL_PIPELINES && count == COMPONENTS && !quick {
        println!();
        let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };
        let (cli_cold, cli_noop) = cli.expect("measured in full mode");
        println!(
            "target cold < {} s: in-process {:.2} s, CLI {:.2} s: {}",
            TARGET_COLD.as_secs(),
            cold_median.as_secs_f64(),
            cli_cold.as_secs_f64(),
            pass(cold_median < TARGET_COLD && cli_cold < TARGET_COLD)
        );
        println!(
            "target no-op < {} s: in-process {:.0} ms, CLI {:.0} ms: {}",
            TARGET_NOOP.as_secs(),
            ms(noop_median),
            ms(cli_noop),
            pass(noop_median < TARGET_NOOP && cli_noop < TARGET_NOOP)
        );
        match &wac {
            Some(w) => println!(
                "target per composition >= {TARGET_RATIO}x faster than wac plug: {:.1}x: {}",
                w.ratio(),
                pass(w.ratio() >= TARGET_RATIO)
            ),
            None => println!(
                "target per composition >= {TARGET_RATIO}x faster than wac plug: not measured"
            ),
        }
    }

    if keep {
        eprintln!(
            "kept the repo, dist and cache dirs in {}",
            tmp.keep().display()
        );
    }
}

/// The parts of a compile timed alone (medians of 3), to split the cold and no-op figures.
struct Breakdown {
    /// `etl::spec::validate`.
    validate: Duration,
    /// `resolve_repo` without a cache (componentizes every module).
    resolve_cold: Duration,
    /// `resolve_repo` with the no-op run's cache.
    resolve_warm: Duration,
    /// `Cache::composed` for every composition: read it and its description, check its sha256.
    cache_reads: Duration,
    /// `compose::interface_of` on every distinct composition (cold compiles only).
    interfaces: Duration,
}

fn breakdown(
    repo: &Path,
    dist: &Path,
    cache_dir: &Path,
    plan: &Plan,
    recipes: &BTreeMap<String, Recipe>,
) -> Breakdown {
    let cache = Cache::new(cache_dir);
    let composed: Vec<Vec<u8>> = plan
        .pipelines
        .iter()
        .flat_map(|p| p.steps.iter().chain(&p.sinks))
        .flat_map(|u| u.artifacts())
        .map(|(_, a)| (a.digest.clone(), a.path.clone()))
        .collect::<BTreeMap<_, _>>()
        .into_values()
        .map(|path| std::fs::read(dist.join(path)).expect("read a composed component"))
        .collect();
    assert_eq!(composed.len(), recipes.len());
    // Each cached composition is `<key>.wasm` beside its description `<key>.json`.
    let keys: Vec<String> = std::fs::read_dir(cache_dir.join("composed"))
        .expect("the cache has compositions")
        .map(|e| e.expect("a cache entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().expect("named").to_string_lossy().into_owned())
        .collect();
    assert_eq!(keys.len(), recipes.len());

    let mut times: [Vec<Duration>; 5] = Default::default();
    for _ in 0..3 {
        let t = Instant::now();
        let v = etl::spec::validate(repo).expect("validate runs");
        times[0].push(t.elapsed());
        let t = Instant::now();
        let (resolved, problems) = resolve::resolve_repo(&v.repo, Default::default(), None);
        times[1].push(t.elapsed());
        assert!(problems.is_empty());
        drop(resolved);
        let t = Instant::now();
        let (resolved, problems) = resolve::resolve_repo(&v.repo, Default::default(), Some(&cache));
        times[2].push(t.elapsed());
        assert!(problems.is_empty());
        drop(resolved);
        let t = Instant::now();
        for key in &keys {
            std::hint::black_box(cache.composed(key).expect("an intact cached composition"));
        }
        times[3].push(t.elapsed());
        let t = Instant::now();
        for bytes in &composed {
            std::hint::black_box(compose::interface_of(bytes).expect("readable"));
        }
        times[4].push(t.elapsed());
    }
    let [a, b, c, d, e] = times.map(|mut t| median(&mut t));
    Breakdown {
        validate: a,
        resolve_cold: b,
        resolve_warm: c,
        cache_reads: d,
        interfaces: e,
    }
}

/// One in-process compile; panics unless it succeeds without a diagnostic.
fn compile(repo: &Path, out: &Path, cache: &Path) -> Compilation {
    let c = etl::ops::compile::compile(
        repo,
        &Options {
            out: out.to_owned(),
            cache: Some(Cache::new(cache)),
            provenance: Default::default(),
        },
    )
    .expect("compile runs");
    if !c.validation.diagnostics.is_empty() || c.plan.is_none() {
        let text = etl::diag::render::human(
            &c.validation.diagnostics,
            c.validation.sources(),
            &etl::diag::render::Paths::new(&repo.to_string_lossy()),
            false,
        );
        panic!("the generated repo does not compile cleanly:\n{text}");
    }
    c
}

/// `etl compile` through the CLI once; its wall time.
fn cli_compile(repo: &Path, out: &Path, cache: &Path) -> Duration {
    let args = [
        OsStr::new("compile"),
        OsStr::new("--repo"),
        repo.as_os_str(),
    ];
    let more = [
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--cache-dir"),
        cache.as_os_str(),
    ];
    time_etl(args.into_iter().chain(more)).0
}

/// The parts of one composition, as `compile` assembles them.
struct Recipe {
    customer: Vec<u8>,
    inbound: Vec<Part>,
    out: Part,
    /// The generation's settings part.
    settings: Part,
    /// Step or sink, and where, for messages.
    unit: String,
}

impl Recipe {
    fn compose(&self) -> Vec<u8> {
        let inbound: Vec<&[u8]> = self.inbound.iter().map(|p| p.bytes()).collect();
        compose::compose(Parts {
            settings: self.settings.bytes(),
            customer: &self.customer,
            outbound: self.out.bytes(),
            inbound: &inbound,
            egress: None,
            msg_id: None,
        })
        .unwrap_or_else(|e| panic!("composing {}: {e}", self.unit))
    }
}

/// The component each customer digest stands for, componentized as `compile` does.
fn componentize(components: &[Component]) -> BTreeMap<String, Vec<u8>> {
    components
        .iter()
        .map(|c| {
            let r = resolve::prepare(&c.file, c.bytes.clone(), None).expect("a valid component");
            assert_eq!(r.digest, c.digest);
            (r.digest, r.component)
        })
        .collect()
}

/// Every distinct composition of the plan, by artifact digest, with the parts it was made of.
fn distinct_compositions(
    plan: &Plan,
    componentized: &BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Recipe> {
    let part = |name: &str| {
        *Part::ALL
            .iter()
            .find(|p| p.name() == name)
            .unwrap_or_else(|| panic!("no harness part `{name}`"))
    };
    let mut recipes = BTreeMap::new();
    for p in &plan.pipelines {
        for u in p.steps.iter().chain(&p.sinks) {
            let customer = match &u.customer {
                Some(c) => {
                    let bytes = componentized[&c.digest].clone();
                    assert_eq!(sha256(&bytes), c.component_digest);
                    bytes
                }
                None => Part::Identity.bytes().to_vec(),
            };
            for (generation, artifact) in u.artifacts() {
                recipes
                    .entry(artifact.digest.clone())
                    .or_insert_with(|| Recipe {
                        customer: customer.clone(),
                        inbound: u.harness.inbound.iter().map(|n| part(n)).collect(),
                        out: part(&u.harness.out),
                        settings: generation.settings(),
                        unit: format!("{}/{} ({generation})", p.name, u.name),
                    });
            }
        }
    }
    recipes
}

/// The `wac plug` figures.
struct WacFigures {
    /// Median wall time of the three `wac plug` processes of one step.
    wac_median: Duration,
    /// Median of etl's `compose` over the same sample.
    etl_median: Duration,
}

impl WacFigures {
    fn ratio(&self) -> f64 {
        self.wac_median.as_secs_f64() / self.etl_median.as_secs_f64()
    }
}

/// `$ETL_BENCH_WAC`, `~/.cache/etl/tools/bin/wac`, or `wac` on `PATH`.
fn find_wac() -> Option<PathBuf> {
    let explicit = std::env::var_os("ETL_BENCH_WAC").map(PathBuf::from);
    let tools = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/etl/tools/bin/wac"));
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("wac"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    explicit
        .into_iter()
        .chain(tools)
        .chain(on_path)
        .find(|p| p.is_file())
}

/// Redoes a sample of the compositions with `wac plug`, checks what it gives, times it.
fn compare_with_wac(
    wac: &Path,
    recipes: &BTreeMap<String, Recipe>,
    etl_times: &BTreeMap<String, Duration>,
    tmp: &Path,
) -> WacFigures {
    let version = Command::new(wac)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("cannot run: {e}"));
    println!("wac plug comparison: {} ({version})", wac.display());
    let dir = tmp.join("wac");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write a part");
        path
    };
    let settings = write("settings.wasm", Part::Settings.bytes());
    let plug = |socket: &Path, plugs: &[&Path], out: &Path| -> Duration {
        let mut cmd = Command::new(wac);
        cmd.arg("plug").arg(socket);
        for p in plugs {
            cmd.arg("--plug").arg(p);
        }
        cmd.arg("-o").arg(out).stdin(Stdio::null());
        let t = Instant::now();
        let output = cmd.output().expect("spawn wac");
        let wall = t.elapsed();
        assert!(
            output.status.success(),
            "`wac plug {}` failed: {}",
            socket.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        wall
    };

    // The sample: wasmCloud 1.x compositions with a single in part (wac plug cannot share one
    // customer instance between two in parts), every distinct one up to WAC_SAMPLE.
    let sample: Vec<(&String, &Recipe)> = recipes
        .iter()
        .filter(|(_, r)| r.inbound.len() == 1 && r.settings == Part::Settings)
        .take(WAC_SAMPLE)
        .collect();
    let mut wac_times = Vec::new();
    let mut per_plug: [Vec<Duration>; 3] = Default::default();
    let mut etl_sample = Vec::new();
    let mut notes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut etl_bytes, mut wac_bytes) = (0usize, 0usize);
    for (i, (digest, r)) in sample.iter().enumerate() {
        let customer = write(&format!("{i}-customer.wasm"), &r.customer);
        let out = write(&format!("{i}-out.wasm"), r.out.bytes());
        let inbound = write(&format!("{i}-in.wasm"), r.inbound[0].bytes());
        let (c1, o1, fin) = (
            dir.join(format!("{i}-customer+settings.wasm")),
            dir.join(format!("{i}-out+settings.wasm")),
            dir.join(format!("{i}-composed.wasm")),
        );
        let each = [
            plug(&customer, &[&settings], &c1),
            plug(&out, &[&settings], &o1),
            plug(&inbound, &[&c1, &o1], &fin),
        ];
        for (times, t) in per_plug.iter_mut().zip(each) {
            times.push(t);
        }
        wac_times.push(each.iter().sum());
        etl_sample.push(etl_times[*digest]);

        let theirs = std::fs::read(&fin).expect("wac wrote its output");
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&theirs)
            .unwrap_or_else(|e| panic!("wac plug gave an invalid component for {}: {e}", r.unit));
        let ours = r.compose();
        etl_bytes += ours.len();
        wac_bytes += theirs.len();
        let (our_imports, our_exports) = compose::interface_of(&ours).expect("etl's reads");
        let (their_imports, their_exports) = compose::interface_of(&theirs).expect("wac's reads");
        assert_eq!(
            our_exports, their_exports,
            "wac plug and etl export the same for {}",
            r.unit
        );
        *notes
            .entry("byte-identical to etl's".to_owned())
            .or_default() += usize::from(ours == theirs);
        for name in their_imports.iter().filter(|n| !our_imports.contains(n)) {
            *notes
                .entry(format!("only wac's imports `{name}`"))
                .or_default() += 1;
        }
        for name in our_imports.iter().filter(|n| !their_imports.contains(n)) {
            *notes
                .entry(format!("only etl's imports `{name}`"))
                .or_default() += 1;
        }
        let (ours_n, theirs_n) = (
            copies(&ours, Part::Settings.bytes()),
            copies(&theirs, Part::Settings.bytes()),
        );
        if ours_n != theirs_n {
            *notes
                .entry(format!(
                    "copies of the settings part embedded: etl {ours_n}, wac {theirs_n}"
                ))
                .or_default() += 1;
        }
        let (ours_n, theirs_n) = (instances(&ours), instances(&theirs));
        if ours_n != theirs_n {
            *notes
                .entry(format!("component instances: etl {ours_n}, wac {theirs_n}"))
                .or_default() += 1;
        }
    }
    let wac_median = median(&mut wac_times);
    let etl_median = median(&mut etl_sample);
    let [customer_plug, out_plug, in_plug] = per_plug.map(|mut t| median(&mut t));
    let mut startup: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let status = Command::new(wac)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .expect("spawn wac");
            assert!(status.success());
            t.elapsed()
        })
        .collect();
    let startup = median(&mut startup);
    println!(
        "  {} compositions (of {}), 3 `wac plug` processes each: median {:.1} ms per step \
         (min {:.1}, max {:.1}); etl compose on the same: median {:.1} ms; ratio {:.1}x",
        sample.len(),
        recipes.len(),
        ms(wac_median),
        ms(wac_times[0]),
        ms(*wac_times.last().expect("a step")),
        ms(etl_median),
        wac_median.as_secs_f64() / etl_median.as_secs_f64()
    );
    println!(
        "  per invocation (medians): settings into customer {:.1} ms, settings into out {:.1} ms, \
         both into in {:.1} ms; `wac --version` (process start and exit alone) {:.1} ms",
        ms(customer_plug),
        ms(out_plug),
        ms(in_plug),
        ms(startup)
    );
    println!(
        "  outputs: all valid components, same exports as etl's; mean size etl {:.0} KiB, wac {:.0} KiB",
        etl_bytes as f64 / sample.len() as f64 / 1024.0,
        wac_bytes as f64 / sample.len() as f64 / 1024.0
    );
    for (note, count) in &notes {
        println!("  {note}: {count} of {}", sample.len());
    }
    WacFigures {
        wac_median,
        etl_median,
    }
}

/// How many times `part` (its bytes after the 8-byte header) is embedded in `component`.
fn copies(component: &[u8], part: &[u8]) -> usize {
    let body = &part[8..];
    component.windows(body.len()).filter(|w| *w == body).count()
}

/// Component instances in a component, at any depth (instantiations of the parts).
fn instances(component: &[u8]) -> usize {
    wasmparser::Parser::new(0)
        .parse_all(component)
        .filter_map(Result::ok)
        .map(|p| match p {
            wasmparser::Payload::ComponentInstanceSection(s) => s
                .into_iter()
                .filter(|i| matches!(i, Ok(wasmparser::ComponentInstance::Instantiate { .. })))
                .count(),
            _ => 0,
        })
        .sum()
}

/// A generated customer component.
struct Component {
    /// Repo path.
    file: String,
    /// `sha256:` of its bytes.
    digest: String,
    bytes: Vec<u8>,
}

/// Writes a repo of `n` pipelines under `root` that compiles cleanly; its components.
fn generate(root: &Path, n: usize, count: usize) -> Vec<Component> {
    let write = |rel: &str, bytes: &[u8]| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
    };
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/iot-sensors/components");
    let modules: Vec<Vec<u8>> = MODULES
        .iter()
        .map(|m| std::fs::read(example.join(format!("{m}.wasm"))).expect("read an example module"))
        .collect();
    let components: Vec<Component> = (0..count)
        .map(|c| {
            let mut bytes = modules[c % MODULES.len()].clone();
            custom_section(
                &mut bytes,
                "etl-bench-variant",
                format!("customer component {c} of the etl compile benchmark").as_bytes(),
            );
            let file = format!("components/{}-{c:02}.wasm", MODULES[c % MODULES.len()]);
            write(&file, &bytes);
            Component {
                digest: sha256(&bytes),
                file,
                bytes,
            }
        })
        .collect();
    write("etl.yaml", PROJECT.as_bytes());
    for i in 0..n {
        write(
            &format!("pipelines/{}.yaml", pipeline_name(i)),
            pipeline(i, &components).as_bytes(),
        );
    }
    components
}

/// Appends a custom section (id 0, LEB128 size, LEB128-prefixed name, payload) to a module.
fn custom_section(module: &mut Vec<u8>, name: &str, payload: &[u8]) {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    module.push(0);
    leb128(content.len(), module);
    module.extend_from_slice(&content);
}

const PROJECT: &str = "apiVersion: etl/v1alpha1
kind: Project
metadata:
  name: bench-compile
  description: Generated by cli/benches/compile.rs.
spec:
  registry: registry.acme.example/etl
  providers:
    http-server: wasmcloud+builtin://http-server
    http-client: wasmcloud+builtin://http-client
    messaging-nats: wasmcloud+builtin://messaging-nats
    messaging-kafka: ghcr.io/wasmcloud/messaging-kafka:0.6.1@sha256:0000000000000000000000000000000000000000000000000000000000000000
    blobstore-s3: ghcr.io/wasmcloud/blobstore-s3:0.12.1@sha256:0000000000000000000000000000000000000000000000000000000000000000
  environments:
    dev:
      lattice: acme-dev
      replicas: 1
      vars:
        threshold: \"50\"
        site: plant-dev
        alert_url: https://alerts.dev.acme.example/hook
    prod:
      lattice: acme-prod
      replicas: 3
      vars:
        threshold: \"80\"
        site: plant-a
        alert_url: https://alerts.acme.example/hook
  policy:
    allow: []
";

fn pipeline_name(i: usize) -> String {
    format!("sensors-{i:04}")
}

/// Pipeline `i`: an http source every third pipeline (else nats), 5 chained steps drawing on the
/// components so that each is the first step behind both kinds of source somewhere, and 2 sinks
/// (http alerts; the archive on nats, or s3 every fourth pipeline).
fn pipeline(i: usize, components: &[Component]) -> String {
    let name = pipeline_name(i);
    let source = if i.is_multiple_of(3) {
        format!("    connector: http\n    with:\n      path: /{name}\n")
    } else {
        format!("    connector: nats\n    with:\n      subject: sensors.{name}.in\n")
    };
    let mut s = format!(
        "apiVersion: etl/v1alpha1
kind: Pipeline
metadata:
  name: {name}
spec:
  source:
    name: ingest
{source}  steps:
"
    );
    for j in 0..STEPS {
        let from = if j == 0 {
            "ingest".to_owned()
        } else {
            format!("step{}", j - 1)
        };
        let c = &components[(7 * i + 3 * j) % components.len()];
        let _ = write!(
            s,
            "    - name: step{j}
      from: [{from}]
      component: {}
      digest: {}
      config:
        site: \"{{{{ vars.site }}}}\"
        threshold: \"{{{{ vars.threshold }}}}\"
",
            c.file, c.digest
        );
    }
    let archive = if i % 4 == 1 {
        "      connector: s3\n      with:\n        bucket: archive\n".to_owned()
    } else {
        format!("      connector: nats\n      with:\n        subject: sensors.{name}.archive\n")
    };
    let _ = write!(
        s,
        "  sinks:
    - name: alerts
      from: [step{}]
      connector: http
      with:
        url: \"{{{{ vars.alert_url }}}}\"
    - name: archive
      from: [step1]
{archive}",
        STEPS - 1
    );
    s
}
