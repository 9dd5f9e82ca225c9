//! `etl push` and signing figures.
//!
//! ```text
//! cargo bench -p etl-cli --bench push                   # full figures (release)
//! ETL_BENCH_QUICK=1 cargo test -p etl-cli --bench push  # smoke test for CI
//! ```
//!
//! - **push**: the example's artifacts (compiled here with fixed provenance) to Debian's
//!   `docker-registry` on a free loopback port, started by the bench. *Cold*: an empty registry
//!   (fresh storage and process each run). *Warm*: everything already there, so only HEADs and
//!   the GETs that verify the tags; the warm push's report counts are printed and checked.
//! - **signing**: a synthetic in-memory OCI layout of 1,000 small artifacts (`etl::oci`),
//!   signed with `etl::oci::sign::sign_layout`; total and per artifact (target: 1,000 under 1 s).
//!
//! Quick mode (`ETL_BENCH_QUICK=1`, or no `--bench` argument): one cold and two warm pushes,
//! 100 artifacts signed once.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etl::oci::registry::{Credentials, Retry};
use etl::ops::push::{Options, Report};
use support::{machine, median, ms};

/// A `docker-registry serve` on 127.0.0.1 with its own storage; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs (scripts/setup.sh installs it)");
        let registry = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                    return registry;
                }
            }
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:<port>/etl`: where the example is compiled for and pushed to.
    fn name(&self) -> String {
        format!("127.0.0.1:{}/etl", self.port)
    }

    fn options(&self) -> Options {
        Options {
            registry: self.name().parse().unwrap(),
            insecure: Vec::new(),
            credentials: Credentials::Anonymous,
            retry: Retry::default(),
            environments: ["dev", "staging", "prod"].map(String::from).to_vec(),
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the directory tree `from` into `to`.
fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The example compiled for the registry `registry` (an output is pushed only to the registry
/// it was compiled for) into `dir/<n>/dist`, with fixed provenance and the cache `dir/cache`.
fn compile_example(dir: &Path, registry: &str) -> PathBuf {
    let n = std::fs::read_dir(dir).unwrap().count();
    let repo = dir.join(n.to_string()).join("repo");
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/iot-sensors"),
        &repo,
    );
    let project = repo.join("etl.yaml");
    let text = std::fs::read_to_string(&project).unwrap();
    let moved = text.replace(
        "registry: registry.acme.example/etl",
        &format!("registry: {registry}"),
    );
    assert_ne!(moved, text, "the example's registry moved");
    std::fs::write(&project, moved).unwrap();
    let out = repo.with_file_name("dist");
    let compilation = etl::ops::compile::compile(
        &repo,
        &etl::ops::compile::Options {
            out: out.clone(),
            cache: Some(etl::store::Cache::new(dir.join("cache"))),
            provenance: etl::oci::layout::Provenance {
                created: 1_700_000_000,
                source: Some("https://example.com/iot-sensors.git".to_owned()),
                revision: None,
            },
        },
    )
    .expect("the example compiles");
    assert!(compilation.plan.is_some(), "the example compiles");
    out
}

fn timed_push(dist: &Path, options: &Options) -> (Duration, Report) {
    let t = Instant::now();
    let report = etl::ops::push::push(dist, options).expect("push");
    (t.elapsed(), report)
}

/// A layout of `n` small synthetic artifacts, by path under `oci/`.
fn synthetic_layout(n: usize) -> BTreeMap<String, Vec<u8>> {
    let wasm: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("\0asm synthetic component {i:05}").into_bytes())
        .collect();
    let imports = vec!["wasi:io/streams@0.2.0".to_owned()];
    let exports = vec!["etl:pipeline/transform@0.1.0".to_owned()];
    let names: Vec<String> = (0..n).map(|i| format!("artifact-{i:05}")).collect();
    let artifacts: Vec<_> = names
        .iter()
        .zip(&wasm)
        .map(|(name, wasm)| {
            etl::oci::layout::artifact(&etl::oci::layout::ArtifactInput {
                name,
                wasm,
                imports: &imports,
                exports: &exports,
            })
            .unwrap()
        })
        .collect();
    let by_digest: BTreeMap<String, &[u8]> = artifacts
        .iter()
        .zip(&wasm)
        .map(|(a, w)| (a.layer_digest.clone(), w.as_slice()))
        .collect();
    etl::oci::layout::layout(&artifacts, &by_digest, &[])
        .unwrap()
        .into_iter()
        .map(|(path, bytes)| (format!("oci/{path}"), bytes))
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary (unoptimized)
    // without it, and then only the smoke test makes sense. `ETL_BENCH_QUICK` decides when set.
    let quick = match std::env::var("ETL_BENCH_QUICK") {
        Ok(v) if !v.is_empty() => v != "0",
        _ => !std::env::args().any(|a| a == "--bench"),
    };
    let (cold_runs, warm_runs, signed, sign_runs) = if quick {
        (1, 2, 100, 1)
    } else {
        (5, 11, 1000, 5)
    };
    println!("{}", machine());
    println!(
        "mode: {}",
        if quick { "quick (smoke test)" } else { "full" }
    );

    // Push.
    let dir = tempfile::tempdir().unwrap();
    let mut cold = Vec::new();
    let mut first = Report::default();
    for _ in 0..cold_runs {
        let registry = Registry::start();
        let dist = compile_example(dir.path(), &registry.name());
        let (t, report) = timed_push(&dist, &registry.options());
        assert_eq!(report.blobs_skipped, 0, "a cold push finds nothing");
        cold.push(t);
        first = report;
    }
    let artifacts = first.pushed.len();
    let registry = Registry::start();
    let options = registry.options();
    let dist = compile_example(dir.path(), &registry.name());
    timed_push(&dist, &options);
    let mut warm = Vec::new();
    let mut again = Report::default();
    for _ in 0..warm_runs {
        let (t, report) = timed_push(&dist, &options);
        warm.push(t);
        again = report;
    }
    assert_eq!(
        (
            again.blobs_uploaded,
            again.manifests_uploaded,
            again.tags_set
        ),
        (0, 0, 0),
        "a warm push sends nothing: {again:?}"
    );
    println!(
        "push, cold ({artifacts} artifacts; {} blobs, {} manifests, {} tags PUT; {} HEAD, {} tags \
         verified): median {:.0} ms of {cold_runs} (min {:.0}, max {:.0})",
        first.blobs_uploaded,
        first.manifests_uploaded,
        first.tags_set,
        first.head_requests,
        first.verified,
        ms(median(&mut cold)),
        ms(cold[0]),
        ms(cold[cold.len() - 1]),
    );
    println!(
        "push, warm (nothing new): median {:.0} ms of {warm_runs} (min {:.0}, max {:.0}); \
         {} HEAD requests ({} blobs skipped, {} manifests skipped, {} tags unchanged), \
         {} verification GETs, 0 uploads",
        ms(median(&mut warm)),
        ms(warm[0]),
        ms(warm[warm.len() - 1]),
        again.head_requests,
        again.blobs_skipped,
        again.manifests_skipped,
        again.tags_unchanged,
        again.verified,
    );

    // Signing.
    let t = Instant::now();
    let layout = synthetic_layout(signed);
    let built = t.elapsed();
    let pair = etl::oci::sign::keygen(None).unwrap();
    let key = etl::oci::sign::SigningKey::from_pem(&pair.private_pem, None).unwrap();
    let mut times = Vec::new();
    for _ in 0..sign_runs {
        let mut files = layout.clone();
        let t = Instant::now();
        etl::oci::sign::sign_layout(&mut files, "oci/", &key, "registry.example/etl").unwrap();
        times.push(t.elapsed());
        assert_eq!(
            files.len(),
            layout.len() + 3 * signed,
            "three blobs per signature"
        );
    }
    let total = median(&mut times);
    println!(
        "sign_layout, {signed} artifacts (layout built in {:.0} ms): median {:.1} ms of \
         {sign_runs}, {:.0} µs/artifact{}",
        ms(built),
        ms(total),
        total.as_secs_f64() * 1e6 / signed as f64,
        if quick {
            String::new()
        } else {
            format!(
                " — target 1,000 under 1 s: {}",
                if signed >= 1000 && total < Duration::from_secs(1) {
                    "met"
                } else {
                    "NOT met"
                }
            )
        }
    );
}
