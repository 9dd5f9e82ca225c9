//! What `etl` emits runs on a real wasmCloud 1.x lattice (issue 7).
//!
//! `tests/e2e/run.sh` starts NATS (JetStream), a registry (Debian's docker-registry), two
//! wasmCloud hosts (`wasmcloud-host` 0.27.1; lattices `acme-iot-dev` and `acme-iot-staging`, the
//! latter labelled `zone=lab`) and wadm (0.21.1), all on loopback in a network namespace of its
//! own, and runs this test with their addresses in the environment. The test:
//!
//! 1. copies `examples/iot-sensors` and points it at the loopback registry and at an HTTP sink
//!    it serves itself (and drops the `alerts` secret: no secrets backend here);
//! 2. `etl keygen`, `etl compile --push --sign-key --env dev`, `etl verify` in the registry;
//! 3. puts and deploys `dist/dev/wadm/sensor-ingest.yaml` (the only dev manifest) through
//!    wadm's NATS API, its bytes as emitted, and waits until wadm reports it `deployed`;
//! 4. POSTs records at the HTTP source and checks the exact records at the sinks (the `archive`
//!    NATS subject, the `alerts` HTTP sink) and at `parse`'s dead-letter subject: a fan-out, a
//!    filtered record, a dead-lettered one — against literal values from the example's fixtures
//!    and against `etl run` of the same inputs (the in-process runtime is the oracle);
//! 5. measures records/s through the three steps;
//! 6. changes `enrich`'s config, recompiles, deploys the new version and sees the new
//!    behaviour, with the same artifacts (only a content-addressed config name changed);
//! 7. `etl promote --from dev --to staging`, undeploys dev and deploys the re-pinned staging
//!    manifest on staging's lattice: the same artifacts, staging's threshold and subjects.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use async_nats::Subscriber;
use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};
use wadm_types::api::{
    DeployModelResponse, DeployResult, ListModelsResponse, PutModelResponse, PutResult,
    StatusResponse, StatusResult, StatusType,
};

const PIPELINE: &str = "sensor-ingest";
const ENV: &str = "dev";
/// The dev environment's lattice (`etl.yaml`).
const LATTICE: &str = "acme-iot-dev";
/// The environment promoted to, its lattice, and where it archives (`environments/staging.yaml`).
const STAGING: &str = "staging";
const STAGING_LATTICE: &str = "acme-iot-staging";
const STAGING_ARCHIVE_SUBJECT: &str = "iot.staging.sensors.archive.replay";
/// Where dev archives (`vars.archive_subject`).
const ARCHIVE_SUBJECT: &str = "iot.dev.sensors.archive";
/// `parse`'s dead-letter subject: `etl.<project>.<pipeline>.dlq.<step>`.
const DLQ_SUBJECT: &str = "etl.iot-sensors.sensor-ingest.dlq.parse";
/// Where `threshold-alert`, the last of the three steps, publishes: what the `alerts` sink
/// reads.
const STEPS_OUT_SUBJECT: &str = "etl.iot-sensors.sensor-ingest.out.threshold-alert";
/// The built-in http-server in path mode listens on wasmCloud's default address (etl sets no
/// other); run.sh gives the test its own network namespace, so this is the test's own port.
const SOURCE_URL: &str = "http://127.0.0.1:8000/sensors";

/// How long to wait for records that should not come.
const QUIET: Duration = Duration::from_millis(1500);
/// How long a record may take through the lattice once it is deployed.
const ARRIVAL: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etl_output_runs_on_a_wasmcloud_lattice() -> anyhow::Result<()> {
    let env = Env::from_env()?;
    let work = &env.work;

    // The loopback HTTP server behind the `alerts` sink.
    let alerts = AlertSink::start().await?;

    // 1. The example, pointed at this lattice's registry and sink.
    let repo = work.join("repo");
    copy_dir(&env.example, &repo)?;
    configure_example(&repo, &env.registry, alerts.addr)?;

    // 2. Keys, compile, push, verify.
    let key = work.join("signing");
    env.etl(&["keygen", "--out", path_str(&key)?])?;
    let dist = work.join("dist");
    let t = Instant::now();
    env.compile_and_push(&repo, &dist, &key)?;
    let compile_push = t.elapsed();
    let reference = format!("{}/{PIPELINE}-parse:{ENV}", env.registry);
    env.etl(&[
        "verify",
        "--key",
        path_str(&key.with_extension("pub"))?,
        &reference,
    ])?;
    let manifests = manifests(&dist.join(ENV).join("wadm"))?;
    ensure!(
        manifests.len() == 1 && manifests[0].0 == PIPELINE,
        "expected one dev manifest, {PIPELINE}: {manifests:?}"
    );
    let (_, manifest_path, manifest) = &manifests[0];
    check_manifest(manifest, &env.registry)?;

    // 3. Deploy through wadm.
    let nats = async_nats::connect(&env.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", env.nats_url))?;
    let host = wait_for_host(&nats, LATTICE).await?;
    eprintln!("e2e: host {host} is in lattice {LATTICE}");
    let mut archive = nats.subscribe(ARCHIVE_SUBJECT).await?;
    let mut dlq = nats.subscribe(DLQ_SUBJECT).await?;
    nats.flush().await?;

    let deploy_start = Instant::now();
    let version = put_and_deploy(&nats, LATTICE, manifest_path).await?;
    wait_deployed(&nats, LATTICE, PIPELINE, &version).await?;
    let deployed = deploy_start.elapsed();
    eprintln!("e2e: {PIPELINE} {version} deployed in {deployed:.1?}");

    // The first record through all three steps. `deployed` means wadm has put every component,
    // provider and link; the host applies links to the providers asynchronously, so a probe
    // may find a subscription not yet made: send probes until one arrives at both sinks.
    let first = first_record(&mut archive, &alerts).await?;
    let first_latency = deploy_start.elapsed();
    eprintln!(
        "e2e: first record through the pipeline {first_latency:.1?} after the deploy request \
         ({first} probes)"
    );
    drain(&mut archive, &mut dlq, &alerts).await;

    // 4. Fan-out, filter, dead letter: the exact records, against the fixtures' values and
    // against `etl run` of the same inputs.
    let inputs = [
        // fan-out (tests/fan-out.yaml): dev's threshold is 50, so 82.5 alerts.
        json!({"sensor": "t-101", "temp_c": 82.5, "ts": "2026-11-01T12:00:00Z"}).to_string(),
        // filtered: below dev's threshold, archived only (tests/filtered.yaml, in dev).
        json!({"sensor": "t-204", "temp_c": 45.5, "ts": "2026-11-01T12:00:05Z"}).to_string(),
        // dead letter (tests/bad-record.yaml): not JSON.
        "t-101;82.5;2026-11-01T12:00:00Z".to_owned(),
    ];
    let oracle = env.etl_run(ENV, &repo, &dist, &inputs)?;
    let expected_site = "dev-bench";
    let literal = [
        Expect {
            status: 202,
            archive: vec![
                json!({"sensor_id": "t-101", "celsius": 82.5, "ts": "2026-11-01T12:00:00Z"}),
            ],
            alerts: vec![
                json!({"sensor_id": "t-101", "celsius": 82.5, "ts": "2026-11-01T12:00:00Z", "site": expected_site, "alert": true}),
            ],
            dead: None,
        },
        Expect {
            status: 202,
            archive: vec![
                json!({"sensor_id": "t-204", "celsius": 45.5, "ts": "2026-11-01T12:00:05Z"}),
            ],
            alerts: vec![],
            dead: None,
        },
        Expect {
            status: 400,
            archive: vec![],
            alerts: vec![],
            dead: Some(("not JSON".to_owned(), inputs[2].clone())),
        },
    ];
    for (i, (input, want)) in inputs.iter().zip(&literal).enumerate() {
        let got = send_and_collect(input, &mut archive, &mut dlq, &alerts, want).await?;
        want.check(&got)
            .with_context(|| format!("input {i} {input:?}: the fixture's values"))?;
        oracle[i]
            .check_same(&got)
            .with_context(|| format!("input {i} {input:?}: `etl run` of the same input"))?;
        eprintln!("e2e: input {i} ok: {}", want.describe());
    }

    // 5. Throughput: hot readings, each through parse → enrich → threshold-alert → alerts (and
    // parse → archive), several requests in flight.
    let load = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rates = throughput(
        &nats,
        &mut archive,
        &alerts,
        load("ETL_E2E_LOAD_RECORDS", 400),
        load("ETL_E2E_LOAD_IN_FLIGHT", 8),
    )
    .await?;
    drain(&mut archive, &mut dlq, &alerts).await;

    // 6. A new version: enrich's config changes, nothing else.
    let pipeline_file = repo.join("pipelines").join(format!("{PIPELINE}.yaml"));
    replace_once(
        &pipeline_file,
        "site: \"{{ vars.site }}\"",
        "site: \"{{ vars.site }}-line-2\"",
    )?;
    let t = Instant::now();
    env.compile_and_push(&repo, &dist, &key)?;
    let recompile = t.elapsed();
    let manifest2 = std::fs::read_to_string(manifest_path)?;
    let version2 = check_new_version(manifest, &manifest2)?;
    let redeploy_start = Instant::now();
    let put_version = put_and_deploy(&nats, LATTICE, manifest_path).await?;
    ensure!(
        put_version == version2,
        "wadm stored {put_version}, the manifest says {version2}"
    );
    wait_deployed(&nats, LATTICE, PIPELINE, &version2).await?;
    let new_site = "dev-bench-line-2";
    let switched = wait_for_site(&mut archive, &alerts, new_site).await?;
    let redeploy_latency = redeploy_start.elapsed();
    eprintln!(
        "e2e: {version2} deployed; enrich answers with site {new_site} \
         {redeploy_latency:.1?} after the deploy request ({switched} probes)"
    );
    drain(&mut archive, &mut dlq, &alerts).await;
    let input = &inputs[0];
    let oracle2 = env.etl_run(ENV, &repo, &dist, std::slice::from_ref(input))?;
    let want = Expect {
        status: 202,
        archive: literal[0].archive.clone(),
        alerts: vec![
            json!({"sensor_id": "t-101", "celsius": 82.5, "ts": "2026-11-01T12:00:00Z", "site": new_site, "alert": true}),
        ],
        dead: None,
    };
    let got = send_and_collect(input, &mut archive, &mut dlq, &alerts, &want).await?;
    want.check(&got)
        .context("after the redeploy: the new site")?;
    oracle2[0]
        .check_same(&got)
        .context("after the redeploy: `etl run`")?;

    // 7. Promotion: staging gets exactly the bytes dev runs (`etl promote` checks their
    // signatures in the registry, moves the `staging` tags, re-pins dist/staging), deployed on
    // staging's own lattice, where staging's config applies.
    let t = Instant::now();
    env.etl(&[
        "promote",
        "--from",
        ENV,
        "--to",
        STAGING,
        "--key",
        path_str(&key.with_extension("pub"))?,
        path_str(&dist)?,
    ])?;
    let promote = t.elapsed();
    env.etl(&[
        "verify",
        "--key",
        path_str(&key.with_extension("pub"))?,
        &format!("{}/{PIPELINE}-parse:{STAGING}", env.registry),
    ])?;
    let staging_manifest = dist
        .join(STAGING)
        .join("wadm")
        .join(format!("{PIPELINE}.yaml"));
    let staging_text = std::fs::read_to_string(&staging_manifest)?;
    ensure!(
        images(&staging_text) == images(&manifest2),
        "staging does not run dev's artifacts"
    );
    ensure!(staging_text.contains(&format!("etl.dev/lattice: {STAGING_LATTICE}")));
    ensure!(staging_text.contains(STAGING_ARCHIVE_SUBJECT));

    // dev's path-routed HTTP source holds 0.0.0.0:8000 (the provider's default address), which
    // staging's wants too: undeploy dev first.
    undeploy(&nats, LATTICE, PIPELINE).await?;
    let host = wait_for_host(&nats, STAGING_LATTICE).await?;
    eprintln!("e2e: host {host} is in lattice {STAGING_LATTICE}");
    let mut staging_archive = nats.subscribe(STAGING_ARCHIVE_SUBJECT).await?;
    nats.flush().await?;
    let staging_start = Instant::now();
    let staging_version = put_and_deploy(&nats, STAGING_LATTICE, &staging_manifest).await?;
    wait_deployed(&nats, STAGING_LATTICE, PIPELINE, &staging_version).await?;
    let probes = first_record(&mut staging_archive, &alerts).await?;
    let staging_latency = staging_start.elapsed();
    eprintln!(
        "e2e: staging {staging_version}: first record at both sinks {staging_latency:.1?} after \
         the deploy request ({probes} probes)"
    );
    drain(&mut staging_archive, &mut dlq, &alerts).await;
    let staging_inputs = [
        // Alerts in dev (threshold 50), filtered in staging (65).
        json!({"sensor": "t-301", "temp_c": 62.0, "ts": "2026-11-01T12:00:10Z"}).to_string(),
        json!({"sensor": "t-302", "temp_c": 70.5, "ts": "2026-11-01T12:00:15Z"}).to_string(),
    ];
    let staging_oracle = env.etl_run(STAGING, &repo, &dist, &staging_inputs)?;
    let staging_literal = [
        Expect {
            status: 202,
            archive: vec![
                json!({"sensor_id": "t-301", "celsius": 62.0, "ts": "2026-11-01T12:00:10Z"}),
            ],
            alerts: vec![],
            dead: None,
        },
        Expect {
            status: 202,
            archive: vec![
                json!({"sensor_id": "t-302", "celsius": 70.5, "ts": "2026-11-01T12:00:15Z"}),
            ],
            alerts: vec![
                json!({"sensor_id": "t-302", "celsius": 70.5, "ts": "2026-11-01T12:00:15Z", "site": "plant-a-line-2", "alert": true}),
            ],
            dead: None,
        },
    ];
    for (i, (input, want)) in staging_inputs.iter().zip(&staging_literal).enumerate() {
        let got = send_and_collect(input, &mut staging_archive, &mut dlq, &alerts, want).await?;
        want.check(&got)
            .with_context(|| format!("staging input {i} {input:?}: expected values"))?;
        staging_oracle[i]
            .check_same(&got)
            .with_context(|| format!("staging input {i} {input:?}: `etl run --env staging`"))?;
        eprintln!("e2e: staging input {i} ok: {}", want.describe());
    }

    eprintln!(
        "e2e timings: compile+sign+push {compile_push:.1?}; deploy request → deployed {deployed:.1?}; \
         deploy request → first record at both sinks {first_latency:.1?}; \
         records/s: parse → enrich → threshold-alert {:.0}, → archive {:.0}, → alerts (HTTP) {:.0}; \
         recompile {recompile:.1?}; redeploy → new behaviour {redeploy_latency:.1?}; \
         promote {promote:.1?}; staging deploy request → first record {staging_latency:.1?}",
        rates.three_steps, rates.archive, rates.alerts,
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The environment run.sh sets up

struct Env {
    etl: PathBuf,
    nats_url: String,
    /// `127.0.0.1:<port>/etl`: the project's `spec.registry` in the e2e copy.
    registry: String,
    example: PathBuf,
    work: PathBuf,
}

impl Env {
    fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| {
                format!("{name} is not set: run this test through tests/e2e/run.sh")
            })
        };
        let registry_addr = var("ETL_E2E_REGISTRY")?;
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/iot-sensors");
        Ok(Self {
            etl: PathBuf::from(var("ETL_E2E_ETL")?),
            nats_url: var("ETL_E2E_NATS_URL")?,
            registry: format!("{registry_addr}/etl"),
            example: example.canonicalize().context("examples/iot-sensors")?,
            work: PathBuf::from(var("ETL_E2E_WORK")?),
        })
    }

    /// Runs etl; its output goes to the test's output, a failure is an error.
    fn etl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.etl)
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.etl.display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(
            out.status.success(),
            "etl {} failed ({}):\n{stderr}{stdout}",
            args.join(" "),
            out.status
        );
        eprintln!("e2e: etl {}: ok", args[0]);
        Ok(stdout)
    }

    /// `etl compile --sign-key --push --env dev` of `repo` into `dist`, signed with `key`'s
    /// private half.
    fn compile_and_push(&self, repo: &Path, dist: &Path, key: &Path) -> anyhow::Result<()> {
        self.etl(&[
            "compile",
            "--repo",
            path_str(repo)?,
            "--out",
            path_str(dist)?,
            "--sign-key",
            path_str(&key.with_extension("key"))?,
            "--push",
            "--env",
            ENV,
        ])
        .map(drop)
    }

    /// `etl run` of the same payloads, in-process, from the same compile output: what each
    /// input should deliver.
    fn etl_run(
        &self,
        environment: &str,
        repo: &Path,
        dist: &Path,
        payloads: &[String],
    ) -> anyhow::Result<Vec<Outcome>> {
        let input = self.work.join("run-input.jsonl");
        let lines: Vec<String> = payloads
            .iter()
            .map(|p| json!({"payload": p}).to_string())
            .collect();
        std::fs::write(&input, lines.join("\n") + "\n")?;
        let out = Command::new(&self.etl)
            .args([
                "run",
                PIPELINE,
                "--env",
                environment,
                "--format",
                "jsonl",
                "--repo",
            ])
            .arg(repo)
            .arg("--dist")
            .arg(dist)
            .arg("--input")
            .arg(&input)
            .output()?;
        ensure!(
            out.status.success(),
            "etl run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut outcomes: Vec<Outcome> = payloads.iter().map(|_| Outcome::default()).collect();
        for line in String::from_utf8(out.stdout)?.lines() {
            let v: Value =
                serde_json::from_str(line).with_context(|| format!("etl run: {line}"))?;
            let idx = |v: &Value| v["input"].as_u64().map(|i| i as usize);
            match v["type"].as_str() {
                Some("sink") => {
                    let i = idx(&v).context("sink line without input")?;
                    let payload = json_payload(&v["record"])?;
                    match v["sink"].as_str() {
                        Some("archive") => outcomes[i].archive.push(payload),
                        Some("alerts") => {
                            outcomes[i].alerts.push(payload);
                            outcomes[i].alert_types.push(
                                v["record"]["headers"]["content-type"]
                                    .as_str()
                                    .map(str::to_owned),
                            );
                        }
                        other => bail!("etl run: unknown sink {other:?}"),
                    }
                }
                Some("dead-letter") => {
                    let i = idx(&v).context("dead-letter line without input")?;
                    ensure!(
                        v["step"] == "parse",
                        "etl run: dead letter of {}",
                        v["step"]
                    );
                    outcomes[i].dead.push((
                        v["error"].as_str().unwrap_or_default().to_owned(),
                        v["record"]["payload"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ));
                }
                Some("failure") => bail!("etl run: a failure: {line}"),
                _ => {}
            }
        }
        Ok(outcomes)
    }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

fn json_payload(record: &Value) -> anyhow::Result<Value> {
    let text = record["payload"]
        .as_str()
        .with_context(|| format!("record without a UTF-8 payload: {record}"))?;
    serde_json::from_str(text).with_context(|| format!("payload is not JSON: {text}"))
}

// ---------------------------------------------------------------------------------------------
// The example, configured for this lattice

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn replace_once(file: &Path, from: &str, to: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)?;
    ensure!(
        text.matches(from).count() == 1,
        "{}: expected `{from}` exactly once",
        file.display()
    );
    std::fs::write(file, text.replacen(from, to, 1))?;
    Ok(())
}

/// The deployment-specific changes, and only those: the registry the lattice pulls from, the
/// URL of dev's and staging's alerting webhook (the test's HTTP server), and no `authorization`
/// secret on `alerts` (a secrets backend is out of scope; without one the host could not start
/// `alerts`).
fn configure_example(repo: &Path, registry: &str, alerts: SocketAddr) -> anyhow::Result<()> {
    let project = repo.join("etl.yaml");
    replace_once(
        &project,
        "registry: registry.acme.example/etl",
        &format!("registry: {registry}"),
    )?;
    replace_once(
        &project,
        "alert_url: http://alerts.dev.acme.example/hook",
        &format!("alert_url: http://{alerts}/hook"),
    )?;
    replace_once(
        &project,
        "alert_url: https://alerts.staging.acme.example/hook",
        &format!("alert_url: http://{alerts}/hook"),
    )?;
    replace_once(
        &repo.join("pipelines").join(format!("{PIPELINE}.yaml")),
        "        authorization: { secret: alerts-webhook-token }   # never a literal token\n",
        "",
    )?;
    Ok(())
}

/// `(metadata.name, path, text)` of every manifest in `dir`.
fn manifests(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf, String)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        let doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
        let name = doc["metadata"]["name"]
            .as_str()
            .context("manifest without metadata.name")?
            .to_owned();
        out.push((name, path, text));
    }
    out.sort();
    Ok(out)
}

/// The manifest is what the docs say it is: images pinned by digest in the test's registry,
/// the lattice, the subjects the test listens on.
fn check_manifest(text: &str, registry: &str) -> anyhow::Result<()> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text)?;
    ensure!(
        doc["metadata"]["annotations"]["etl.dev/lattice"] == LATTICE,
        "the manifest is for lattice {:?}",
        doc["metadata"]["annotations"]["etl.dev/lattice"]
    );
    let components = doc["spec"]["components"]
        .as_sequence()
        .context("spec.components")?;
    let mut images = BTreeMap::new();
    for c in components {
        let name = c["name"].as_str().context("component name")?;
        let image = c["properties"]["image"].as_str().context("image")?;
        images.insert(name.to_owned(), image.to_owned());
    }
    for unit in ["parse", "enrich", "threshold-alert", "alerts", "archive"] {
        let image = images
            .get(unit)
            .with_context(|| format!("no component {unit}"))?;
        ensure!(
            image.starts_with(&format!("{registry}/{PIPELINE}-{unit}@sha256:")),
            "{unit}: image {image} is not pinned in {registry}"
        );
    }
    for provider in ["http-server", "http-client", "messaging-nats"] {
        let image = images
            .get(provider)
            .with_context(|| format!("no {provider}"))?;
        ensure!(
            image == &format!("wasmcloud+builtin://{provider}"),
            "{provider}: {image}"
        );
    }
    ensure!(text.contains(ARCHIVE_SUBJECT) && text.contains(DLQ_SUBJECT));
    Ok(())
}

/// The `image:` lines of a manifest, in order.
fn images(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.trim_start().starts_with("image:"))
        .map(str::to_owned)
        .collect()
}

/// The recompiled manifest: a new version, the same images, and only enrich's runtime config
/// (and so its content-addressed name) changed.
fn check_new_version(old: &str, new: &str) -> anyhow::Result<String> {
    let version = |t: &str| -> anyhow::Result<String> {
        let doc: serde_yaml::Value = serde_yaml::from_str(t)?;
        Ok(doc["metadata"]["annotations"]["version"]
            .as_str()
            .context("version annotation")?
            .to_owned())
    };
    let (v1, v2) = (version(old)?, version(new)?);
    ensure!(v1 != v2, "the version did not change: {v1}");
    ensure!(
        images(old) == images(new),
        "the images changed, only a config should have"
    );
    let changed: Vec<(&str, &str)> = old
        .lines()
        .zip(new.lines())
        .filter(|(a, b)| a != b)
        .collect();
    ensure!(
        old.lines().count() == new.lines().count()
            && changed.len() == 3
            && changed.iter().any(|(a, _)| a.contains("version:"))
            && changed
                .iter()
                .any(|(a, b)| a.contains("name: enrich-runtime-")
                    && b.contains("name: enrich-runtime-"))
            && changed
                .iter()
                .any(|(a, b)| a.contains("step.site: dev-bench")
                    && b.contains("step.site: dev-bench-line-2")),
        "expected the version, enrich's config name and its step.site to change, got {changed:#?}"
    );
    Ok(v2)
}

// ---------------------------------------------------------------------------------------------
// wadm and the lattice over NATS

/// The first host that answers a ping in the lattice.
async fn wait_for_host(nats: &async_nats::Client, lattice: &str) -> anyhow::Result<String> {
    let subject = format!("wasmbus.ctl.v1.{lattice}.host.ping");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let inbox = nats.new_inbox();
        let mut sub = nats.subscribe(inbox.clone()).await?;
        nats.publish_with_reply(subject.clone(), inbox, Bytes::new())
            .await?;
        if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
            let v: Value = serde_json::from_slice(&msg.payload)?;
            if let Some(id) = v["response"]["id"].as_str() {
                return Ok(id.to_owned());
            }
            bail!("unexpected host ping answer: {v}");
        }
        ensure!(
            Instant::now() < deadline,
            "no host answered on {subject} within 60 s"
        );
    }
}

/// A request to wadm's API and its JSON answer, retried while wadm is not answering yet.
async fn wadm_request<T: serde::de::DeserializeOwned>(
    nats: &async_nats::Client,
    subject: String,
    headers: Option<async_nats::HeaderMap>,
    payload: Bytes,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let request = async_nats::Request::new()
            .payload(payload.clone())
            .timeout(Some(Duration::from_secs(10)));
        let request = match &headers {
            Some(h) => request.headers(h.clone()),
            None => request,
        };
        match nats.send_request(subject.clone(), request).await {
            Ok(msg) => {
                return serde_json::from_slice(&msg.payload)
                    .with_context(|| format!("{subject}: wadm's answer"));
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("e2e: {subject}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("{subject}: wadm did not answer")),
        }
    }
}

/// Puts the manifest (its exact bytes, as YAML) and deploys the version put; returns it.
async fn put_and_deploy(
    nats: &async_nats::Client,
    lattice: &str,
    manifest: &Path,
) -> anyhow::Result<String> {
    let bytes = std::fs::read(manifest)?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "application/yaml");
    let put: PutModelResponse = wadm_request(
        nats,
        format!("wadm.api.{lattice}.model.put"),
        Some(headers),
        bytes.into(),
    )
    .await?;
    ensure!(
        matches!(put.result, PutResult::Created | PutResult::NewVersion),
        "wadm refused {}: {:?} {}",
        manifest.display(),
        put.result,
        put.message
    );
    let deploy: DeployModelResponse = wadm_request(
        nats,
        format!("wadm.api.{lattice}.model.deploy.{}", put.name),
        None,
        serde_json::to_vec(&json!({"version": put.current_version}))?.into(),
    )
    .await?;
    ensure!(
        deploy.result == DeployResult::Acknowledged,
        "deploying {} {}: {:?} {}",
        put.name,
        put.current_version,
        deploy.result,
        deploy.message
    );
    eprintln!(
        "e2e: put {} {} and deployed it",
        put.name, put.current_version
    );
    Ok(put.current_version)
}

/// wadm's status of application `name` in `lattice`.
async fn model_status(
    nats: &async_nats::Client,
    lattice: &str,
    name: &str,
) -> anyhow::Result<StatusResponse> {
    wadm_request(
        nats,
        format!("wadm.api.{lattice}.model.status.{name}"),
        None,
        Bytes::new(),
    )
    .await
}

/// Undeploys `name` and waits until wadm reports it undeployed and its HTTP source no longer
/// accepts connections (the provider has stopped).
async fn undeploy(nats: &async_nats::Client, lattice: &str, name: &str) -> anyhow::Result<()> {
    let answer: Value = wadm_request(
        nats,
        format!("wadm.api.{lattice}.model.undeploy.{name}"),
        None,
        Bytes::from_static(b"{}"),
    )
    .await?;
    ensure!(
        answer["result"] == "acknowledged",
        "undeploying {name}: {answer}"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status: StatusResponse = model_status(nats, lattice, name).await?;
        let undeployed = status
            .status
            .is_some_and(|s| s.info.status_type == StatusType::Undeployed);
        let url: hyper::Uri = SOURCE_URL.parse()?;
        let addr = format!(
            "{}:{}",
            url.host().unwrap_or_default(),
            url.port_u16().unwrap_or(80)
        );
        if undeployed && TcpStream::connect(&addr).await.is_err() {
            eprintln!("e2e: {name} undeployed from {lattice}");
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{name} not undeployed from {lattice} within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until wadm reports `version` of `name` deployed and every scaler `deployed`.
async fn wait_deployed(
    nats: &async_nats::Client,
    lattice: &str,
    name: &str,
    version: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = String::new();
    loop {
        let status: StatusResponse = model_status(nats, lattice, name).await?;
        ensure!(
            status.result == StatusResult::Ok,
            "status of {name}: {}",
            status.message
        );
        let list: ListModelsResponse = wadm_request(
            nats,
            format!("wadm.api.{lattice}.model.get"),
            None,
            Bytes::new(),
        )
        .await?;
        let deployed_version = list
            .models
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.deployed_version.clone());
        let st = status.status.context("status without a status")?;
        let now = format!(
            "{:?} {} (deployed version {deployed_version:?}); {}",
            st.info.status_type,
            st.info.message,
            st.scalers
                .iter()
                .map(|s| format!(
                    "{} {}: {:?} {}",
                    s.kind, s.name, s.info.status_type, s.info.message
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        if now != last {
            eprintln!("e2e: {name}: {now}");
            last = now;
        }
        if st.info.status_type == StatusType::Deployed
            && deployed_version.as_deref() == Some(version)
        {
            return Ok(());
        }
        ensure!(
            st.info.status_type != StatusType::Failed,
            "{name} failed to deploy: {last}"
        );
        ensure!(
            Instant::now() < deadline,
            "{name} {version} not deployed within 300 s: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Records in and out

/// The `alerts` sink's webhook: every POST body, in arrival order.
struct AlertSink {
    addr: SocketAddr,
    rx: Mutex<mpsc::UnboundedReceiver<Received>>,
}

#[derive(Debug)]
struct Received {
    method: String,
    path: String,
    content_type: Option<String>,
    body: Bytes,
}

impl AlertSink {
    async fn start() -> anyhow::Result<Arc<Self>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().path().to_owned();
                            let content_type = req
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let _ = tx.send(Received {
                                method,
                                path,
                                content_type,
                                body,
                            });
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(Arc::new(Self {
            addr,
            rx: Mutex::new(rx),
        }))
    }

    async fn next(&self, wait: Duration) -> anyhow::Result<Option<Value>> {
        Ok(self.next_with_type(wait).await?.map(|(v, _)| v))
    }

    /// The next POST's JSON body and `content-type`.
    async fn next_with_type(
        &self,
        wait: Duration,
    ) -> anyhow::Result<Option<(Value, Option<String>)>> {
        let mut rx = self.rx.lock().await;
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(r)) => {
                ensure!(
                    r.method == "POST" && r.path == "/hook",
                    "alerts: {} {}, expected POST /hook",
                    r.method,
                    r.path
                );
                let json = serde_json::from_slice(&r.body).with_context(|| {
                    format!(
                        "alerts: body is not JSON: {:?}",
                        String::from_utf8_lossy(&r.body)
                    )
                })?;
                Ok(Some((json, r.content_type)))
            }
            Ok(None) => bail!("the alerts sink stopped"),
            Err(_) => Ok(None),
        }
    }
}

/// The record on a NATS sink: an etl envelope (docs/envelope.md).
fn envelope(msg: &async_nats::Message) -> anyhow::Result<etl_envelope::Envelope> {
    etl_envelope::decode(&msg.payload)
        .map_err(|e| anyhow::anyhow!("{}: not an etl envelope: {e:?}", msg.subject))
}

async fn next_json(sub: &mut Subscriber, wait: Duration) -> anyhow::Result<Option<Value>> {
    match tokio::time::timeout(wait, sub.next()).await {
        Ok(Some(msg)) => {
            let env = envelope(&msg)?;
            Ok(Some(serde_json::from_slice(&env.payload).with_context(
                || format!("{}: payload is not JSON", msg.subject),
            )?))
        }
        Ok(None) => bail!("subscription closed"),
        Err(_) => Ok(None),
    }
}

/// One POST to the HTTP source: the status.
async fn post(body: &str) -> anyhow::Result<u16> {
    let url: hyper::Uri = SOURCE_URL.parse()?;
    let addr = format!(
        "{}:{}",
        url.host().unwrap_or_default(),
        url.port_u16().unwrap_or(80)
    );
    let stream = TcpStream::connect(&addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::post(url.path())
        .header("host", &addr)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))?;
    let res = sender.send_request(req).await?;
    let status = res.status().as_u16();
    let _ = res.into_body().collect().await;
    Ok(status)
}

#[derive(Debug, Default)]
struct Outcome {
    status: Option<u16>,
    archive: Vec<Value>,
    alerts: Vec<Value>,
    /// The `content-type` of each POST to `alerts`.
    alert_types: Vec<Option<String>>,
    /// (error, payload) of each dead letter.
    dead: Vec<(String, String)>,
}

impl Outcome {
    /// The same records as `got` at every sink and dead-letter subject (`self` from `etl run`).
    fn check_same(&self, got: &Outcome) -> anyhow::Result<()> {
        ensure!(
            self.archive == got.archive,
            "archive: etl run {:?}, lattice {:?}",
            self.archive,
            got.archive
        );
        ensure!(
            self.alerts == got.alerts,
            "alerts: etl run {:?}, lattice {:?}",
            self.alerts,
            got.alerts
        );
        ensure!(
            self.alert_types == got.alert_types,
            "alerts content-type: etl run {:?}, lattice {:?}",
            self.alert_types,
            got.alert_types
        );
        ensure!(
            self.dead == got.dead,
            "dead letters: etl run {:?}, lattice {:?}",
            self.dead,
            got.dead
        );
        Ok(())
    }
}

struct Expect {
    status: u16,
    archive: Vec<Value>,
    alerts: Vec<Value>,
    /// A substring of the error, and the payload.
    dead: Option<(String, String)>,
}

impl Expect {
    fn check(&self, got: &Outcome) -> anyhow::Result<()> {
        ensure!(
            got.status == Some(self.status),
            "HTTP status {:?}, expected {}",
            got.status,
            self.status
        );
        ensure!(
            got.archive == self.archive,
            "archive got {:?}, expected {:?}",
            got.archive,
            self.archive
        );
        ensure!(
            got.alerts == self.alerts,
            "alerts got {:?}, expected {:?}",
            got.alerts,
            self.alerts
        );
        match (&self.dead, got.dead.as_slice()) {
            (None, []) => {}
            (Some((error, payload)), [(got_error, got_payload)])
                if got_error.contains(error.as_str()) && got_payload == payload => {}
            _ => bail!("dead letters got {:?}, expected {:?}", got.dead, self.dead),
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "HTTP {}, {} at archive, {} at alerts, {} dead letter(s)",
            self.status,
            self.archive.len(),
            self.alerts.len(),
            usize::from(self.dead.is_some())
        )
    }
}

/// Sends one record and collects everything that arrives for it: what is expected, then
/// anything else within `QUIET`.
async fn send_and_collect(
    input: &str,
    archive: &mut Subscriber,
    dlq: &mut Subscriber,
    alerts: &AlertSink,
    want: &Expect,
) -> anyhow::Result<Outcome> {
    let mut got = Outcome {
        status: Some(post(input).await?),
        ..Outcome::default()
    };
    let deadline = Instant::now() + ARRIVAL;
    let remaining = || deadline.saturating_duration_since(Instant::now());
    while got.archive.len() < want.archive.len() {
        match next_json(archive, remaining()).await? {
            Some(v) => got.archive.push(v),
            None => break,
        }
    }
    while got.alerts.len() < want.alerts.len() {
        match alerts.next_with_type(remaining()).await? {
            Some((v, content_type)) => {
                got.alerts.push(v);
                got.alert_types.push(content_type);
            }
            None => break,
        }
    }
    if want.dead.is_some() {
        if let Ok(Some(msg)) = tokio::time::timeout(remaining(), dlq.next()).await {
            got.dead.push(dead_letter(&msg)?);
        }
    }
    // Nothing more may come.
    tokio::time::sleep(QUIET).await;
    while let Some(v) = next_json(archive, Duration::from_millis(1)).await? {
        got.archive.push(v);
    }
    while let Some((v, content_type)) = alerts.next_with_type(Duration::from_millis(1)).await? {
        got.alerts.push(v);
        got.alert_types.push(content_type);
    }
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(1), dlq.next()).await {
        got.dead.push(dead_letter(&msg)?);
    }
    Ok(got)
}

/// (the `etl-error` header, the payload) of a dead letter.
fn dead_letter(msg: &async_nats::Message) -> anyhow::Result<(String, String)> {
    let env = envelope(msg)?;
    let error = env
        .headers
        .iter()
        .rev()
        .find(|(k, _)| k == "etl-error")
        .map(|(_, v)| v.clone())
        .with_context(|| format!("dead letter without etl-error: {env:?}"))?;
    Ok((error, String::from_utf8(env.payload)?))
}

/// Everything still in flight, dropped (probes that arrived late).
async fn drain(archive: &mut Subscriber, dlq: &mut Subscriber, alerts: &AlertSink) {
    tokio::time::sleep(QUIET).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(1), archive.next()).await {}
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(1), dlq.next()).await {}
    while let Ok(Some(_)) = alerts.next(Duration::from_millis(1)).await {}
}

fn probe(n: usize, temp: f64) -> String {
    json!({"sensor": format!("probe-{n}"), "temp_c": temp, "ts": "2026-11-01T12:00:00Z"})
        .to_string()
}

/// Sends hot probes until one has reached both sinks; returns how many were sent.
async fn first_record(archive: &mut Subscriber, alerts: &AlertSink) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut n = 0;
    let (mut at_archive, mut at_alerts) = (false, false);
    while !(at_archive && at_alerts) {
        ensure!(
            Instant::now() < deadline,
            "no record reached both sinks within 120 s of `deployed`"
        );
        n += 1;
        match post(&probe(n, 99.0)).await {
            Ok(202) => {}
            Ok(status) => eprintln!("e2e: probe {n}: HTTP {status}"),
            Err(e) => eprintln!("e2e: probe {n}: {e}"),
        }
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            tokio::select! {
                v = next_json(archive, left) => if v?.is_some() { at_archive = true },
                v = alerts.next(left) => if v?.is_some() { at_alerts = true },
            }
        }
    }
    Ok(n)
}

/// Sends probes until `alerts` shows `site`: the new config has reached `enrich`.
async fn wait_for_site(
    archive: &mut Subscriber,
    alerts: &AlertSink,
    site: &str,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut n = 0;
    loop {
        ensure!(
            Instant::now() < deadline,
            "enrich did not pick up its new config within 120 s"
        );
        n += 1;
        let _ = post(&probe(n, 99.0)).await;
        let until = Instant::now() + Duration::from_millis(500);
        while let Some(v) = alerts
            .next(until.saturating_duration_since(Instant::now()))
            .await?
        {
            if v["site"] == site {
                return Ok(n);
            }
        }
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(1), archive.next()).await
        {
        }
    }
}

/// What the load phase measured: records/s from the first request until the last record
/// arrived at each point.
struct Rates {
    /// `parse` → `archive` (NATS sink).
    archive: f64,
    /// `parse` → `enrich` → `threshold-alert`: its output subject.
    three_steps: f64,
    /// … → `alerts` (HTTP sink).
    alerts: f64,
}

/// `n` hot readings, `in_flight` requests at a time. Each must arrive exactly once at
/// `archive`, at `threshold-alert`'s output subject (the three steps) and at `alerts`.
async fn throughput(
    nats: &async_nats::Client,
    archive: &mut Subscriber,
    alerts: &Arc<AlertSink>,
    n: usize,
    in_flight: usize,
) -> anyhow::Result<Rates> {
    let mut steps = nats.subscribe(STEPS_OUT_SUBJECT).await?;
    nats.flush().await?;
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let next = Arc::clone(&next);
        senders.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let body = json!({
                    "sensor": format!("load-{i}"),
                    "temp_c": 60.0 + (i % 40) as f64,
                    "ts": "2026-11-01T12:00:00Z",
                })
                .to_string();
                let status = post(&body).await?;
                ensure!(status == 202, "load record {i}: HTTP {status}");
            }
        });
    }
    let mut seen: [BTreeSet<String>; 3] = Default::default();
    let mut done: [Option<Duration>; 3] = [None; 3];
    let names = ["archive", "threshold-alert's output", "alerts"];
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.iter().any(|s| s.len() < n) {
        let left = deadline.saturating_duration_since(Instant::now());
        ensure!(
            !left.is_zero(),
            "load: after 120 s, of {n}: {} at archive, {} at threshold-alert's output, {} at alerts",
            seen[0].len(),
            seen[1].len(),
            seen[2].len()
        );
        let (at, v) = tokio::select! {
            v = next_json(archive, left) => (0, v?),
            v = next_json(&mut steps, left) => (1, v?),
            v = alerts.next(left) => (2, v?),
        };
        let Some(v) = v else { continue };
        if at > 0 {
            ensure!(
                v["alert"] == true && v["site"] == "dev-bench",
                "{}: {v}",
                names[at]
            );
        }
        let id = v["sensor_id"].as_str().unwrap_or_default().to_owned();
        ensure!(seen[at].insert(id.clone()), "{}: {id} twice", names[at]);
        if seen[at].len() == n {
            done[at] = Some(start.elapsed());
        }
    }
    while let Some(r) = senders.join_next().await {
        r??;
    }
    let want: BTreeSet<String> = (0..n).map(|i| format!("load-{i}")).collect();
    for (at, s) in seen.iter().enumerate() {
        ensure!(s == &want, "load: unexpected sensor ids at {}", names[at]);
    }
    let rate = |at: usize| n as f64 / done[at].unwrap_or_default().as_secs_f64();
    let rates = Rates {
        archive: rate(0),
        three_steps: rate(1),
        alerts: rate(2),
    };
    eprintln!(
        "e2e: load: {n} hot readings, {in_flight} requests in flight: archive {:.0} records/s \
         (all in after {:.2?}); parse → enrich → threshold-alert {:.0} records/s ({:.2?}); \
         alerts (HTTP) {:.0} records/s ({:.2?})",
        rates.archive,
        done[0].unwrap_or_default(),
        rates.three_steps,
        done[1].unwrap_or_default(),
        rates.alerts,
        done[2].unwrap_or_default(),
    );
    Ok(rates)
}
