//! What `etl` emits runs on a real wasmCloud 1.x lattice (issue 7).
//!
//! `tests/e2e/run.sh v1` starts NATS (JetStream), a registry (Debian's docker-registry), the
//! `nats-kv` secrets backend (`etl-e2e-secrets`), two wasmCloud hosts (`wasmcloud-host` 0.27.1;
//! lattices `acme-iot-dev` and `acme-iot-staging`, the latter labelled `zone=lab`) and wadm
//! (0.21.1), all on loopback in a network namespace of its own, and runs these tests with their
//! addresses in the environment. The main test:
//!
//! 1. copies `examples/iot-sensors` and points it at the loopback registry, at an HTTP sink it
//!    serves itself, which requires the `alerts` secret as a bearer token, and at the run's
//!    NATS servers (dev's, and staging's data plane; staging's listener on a port of its own);
//! 2. starts dev's `etl-controller` (before anything is pushed: it waits for its tag), then
//!    `etl keygen` (and `--claims`), `etl compile --push --sign-key --claims-key --env dev`,
//!    `etl verify` of the dev bundle and an artifact in the registry; puts the token into the
//!    secrets backend for the `alerts` artifact's claims subject;
//! 3. `etl status --wait` until dev runs the bundle its tag names (the controller put and
//!    deployed the shared HTTP listener, then the pipeline, through wadm), checks the status
//!    against `plan.json`, and sends the first record; then adds three pipelines
//!    (`common::add_pipelines`) and pushes: the controller deploys them without a write naming
//!    the running one;
//! 4. POSTs records at the HTTP source and checks the exact records at the sinks (the `archive`
//!    NATS subject, the `alerts` HTTP sink) and at `parse`'s dead-letter subject: a fan-out, a
//!    filtered record, a dead-lettered one — against literal values from the example's fixtures
//!    and against `etl run` of the same inputs (the in-process runtime is the oracle), each in a
//!    request of its own and then all in one NDJSON batch; every message at a NATS subject is a
//!    batch (envelope version 2), checked record by record;
//! 5. measures records/s through the three steps (500 readings in NDJSON batches of 100, none
//!    lost or duplicated);
//! 6. changes `enrich`'s config, recompiles and pushes: the controller deploys the new version
//!    and records show the new behaviour; a tampered bundle under dev's tag is refused while the
//!    last good one keeps running; two pipelines removed from the repo are undeployed and
//!    deleted, nothing else touched; the controller restarted writes nothing;
//! 7. starts staging's controller, `etl promote --from dev --to staging`: the controller deploys
//!    the re-pinned staging bundle on staging's lattice, beside dev: the same artifacts,
//!    staging's threshold and subjects.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use wadm_types::api::{
    DeployModelResponse, DeployResult, ListModelsResponse, PutModelResponse, PutResult,
    StatusResponse, StatusResult, StatusType,
};

use crate::common::*;
use crate::controller::*;
use crate::delivery;
use crate::reporting;
use crate::secrets::{SecretsBackend, Signed};

/// The dev environment's lattice (`etl.yaml`).
const LATTICE: &str = "acme-iot-dev";
/// staging's lattice.
const STAGING_LATTICE: &str = "acme-iot-staging";
/// The shared listener (the built-in http-server in path mode) listens on the environments'
/// default address; run.sh gives the test its own network namespace, so this is its own port.
const SOURCE_ADDR: &str = "127.0.0.1:8000";

/// The example's one secret (`alerts`' `authorization`) and the value the test gives it.
const ALERTS_SECRET: &str = "alerts-webhook-token";
/// The secret of [`secrets_from_the_backend_reach_the_host`], which shares the backend with
/// the main test.
const PROBE_SECRET: &str = "alerts-webhook-token-probe";
const TOKEN: &str = "Bearer e2e-v1-token";
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etl_output_runs_on_a_wasmcloud_lattice() -> anyhow::Result<()> {
    let mut env = Env::from_env("v1")?;
    let work = env.work.clone();
    let work = &work;
    let source = Source::at(SOURCE_ADDR.parse()?);
    let maintenance = Source {
        path: MAINTENANCE_PATH.to_owned(),
        ..Source::at(SOURCE_ADDR.parse()?)
    };

    // The loopback HTTP server behind the `alerts` sink, and the API `alert-digest` calls.
    let alerts = AlertSink::start().await?;
    let api = LoopbackApi::start().await?;

    // 1. The example, pointed at this lattice's registry, sink and NATS.
    let repo = work.join("repo");
    copy_dir(&env.example, &repo)?;
    configure_example(&repo, &env.registry, alerts.addr)?;
    env.configure_nats(&repo)?;
    env.configure_delivery(&repo)?;
    eprintln!(
        "e2e: dev's NATS {}, staging's {}",
        env.nats_url, env.staging_nats_url
    );

    // 2. Keys, compile, push (the dev tags, the dev bundle's among them), verify.
    let key = work.join("signing");
    env.etl(&["keygen", "--out", path_str(&key)?])?;
    // The 1.x host fetches a component's secrets with the wascap claims in its Wasm.
    let claims = work.join("claims");
    env.etl(&["keygen", "--claims", "--out", path_str(&claims)?])?;
    env.claims_key = Some(claims.with_extension("nk"));
    let dist = work.join("dist");
    let nats = async_nats::connect(&env.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", env.nats_url))?;
    let host = wait_for_host(&nats, LATTICE).await?;
    eprintln!("e2e: host {host} is in lattice {LATTICE}");
    let mut memory = Memory::new();
    memory.report("the hosts up, nothing deployed");
    let mut sinks = Sinks::subscribe(&nats, ARCHIVE_SUBJECT, &alerts).await?;
    alerts.require_authorization(Some(TOKEN));
    let writes = Writes::watch(&nats).await?;

    // 3. dev's controller, started before anything is pushed: it waits for its tag.
    let mut dev = Controller::start(&env, ENV, &key, &[])?;
    dev.wait_for("waiting for the tag", Duration::from_secs(30), |s| {
        s["applied"].is_null() && s["state"] != "ready"
    })
    .await?;
    let t = Instant::now();
    env.compile_and_push(&repo, &dist, &key)?;
    let compile_push = t.elapsed();
    put_alerts_secret(&nats, &dist).await?;
    let bundle = format!("{}/bundles/iot-sensors/{ENV}:{ENV}", env.registry);
    env.verify(&bundle, &key)?;
    env.verify(&format!("{}/{PIPELINE}-parse:{ENV}", env.registry), &key)?;
    let manifests = manifests(&dist.join(ENV).join("wadm"))?;
    let names: Vec<&str> = manifests.iter().map(|(n, _, _)| n.as_str()).collect();
    ensure!(
        names == [LISTENER, PIPELINE],
        "expected the dev manifests of the shared {LISTENER} and {PIPELINE}: {names:?}"
    );
    let (_, manifest_path, manifest) = &manifests[1];
    check_manifest(manifest, &env.registry)?;
    check_nats_address(manifest, &env.nats_url)?;

    // `etl status --wait`: the CI gate, until dev runs the bundle its tag names.
    let ready = dev.wait_ready(Duration::from_secs(180))?;
    let status = dev.status()?;
    check_status(&status, &dist, ENV, &key)?;
    let deployed = t.elapsed();
    eprintln!(
        "e2e: dev's controller applied the bundle: `etl status --wait` returned {ready:.1?} \
         after it started, {deployed:.1?} after `etl compile --push --env dev` began (which took \
         {compile_push:.1?})"
    );
    // The first record through all three steps. `deployed` means wadm has put every component,
    // provider and link; the host applies links to the providers asynchronously, so a probe
    // may find a subscription not yet made: send probes until one arrives at both sinks.
    let first = first_record(&source, &mut sinks.archive, &alerts).await?;
    let first_latency = t.elapsed();
    eprintln!(
        "e2e: first record through the pipeline {first_latency:.1?} after `etl compile --push \
         --env dev` began ({first} probes)"
    );
    memory.report(&format!(
        "{PIPELINE} deployed (and the shared listener), a record through"
    ));
    sinks.drain().await?;

    // The figures of docs/PERFORMANCE.md, with the example alone on the lattice (alert-digest
    // would read every alert of the loads). The bench deploys a variant of the manifest by hand
    // (`alerts` reads a named config the bench changes live, [`BENCH_CONFIG`], and every unit
    // [`BENCH_REPORTS`]), so the controller is stopped meanwhile; started again, it puts dev
    // back to its bundle. The pipeline is undeployed before each switch: wadm 0.21.1's upgrade
    // of a running application to one whose configs differ left nothing delivered.
    if bench_wanted() {
        dev.stop()?;
        undeploy(&nats, LATTICE, PIPELINE, None).await?;
        put_config(&nats, LATTICE, BENCH_CONFIG, "none").await?;
        put_config(&nats, LATTICE, BENCH_REPORTS, "reports-on").await?;
        let path = work.join("bench-sensor-ingest.yaml");
        std::fs::write(&path, with_bench_config(manifest)?)?;
        let version = put_and_deploy(&nats, LATTICE, &path).await?;
        wait_deployed(&nats, LATTICE, PIPELINE, &version).await?;
        first_record(&source, &mut sinks.archive, &alerts).await?;
        sinks.drain().await?;
        bench("v1", &nats, &source, &mut sinks, async |mode: &str| {
            put_config(&nats, LATTICE, BENCH_CONFIG, mode).await
        })
        .await?;
        undeploy(&nats, LATTICE, PIPELINE, None).await?;
        dev.restart(&[])?;
        dev.wait_ready(Duration::from_secs(180))?;
        first_record(&source, &mut sinks.archive, &alerts).await?;
        sinks.drain().await?;
    }

    // Three more pipelines in the repo: pushed, the controller deploys them and leaves the
    // running one alone (no write names it).
    add_pipelines(&repo, &api)?;
    let (before, _) = writes.seen();
    let t = Instant::now();
    env.compile_and_push(&repo, &dist, &key)?;
    dev.wait_ready(Duration::from_secs(180))?;
    eprintln!(
        "e2e: {} pushed and deployed by the controller in {:.1?}",
        ADDED.join(", "),
        t.elapsed()
    );
    let (_, subjects) = writes.seen();
    let touched: Vec<&String> = subjects[before..]
        .iter()
        .filter(|s| s.ends_with(&format!(".{PIPELINE}")))
        .collect();
    ensure!(
        touched.is_empty(),
        "the controller wrote to the unchanged {PIPELINE}: {touched:?}"
    );
    let status = dev.status()?;
    check_status(&status, &dist, ENV, &key)?;
    memory.report(&format!("{} deployed too", ADDED.join(", ")));

    // The other pipelines on the lattice: a second HTTP source on the same listener, and a
    // sub-pipeline that calls out.
    check_more_pipelines(&nats, &source, &maintenance, &api).await?;
    memory.report("a record through each of the four pipelines");
    sinks.drain().await?;

    // 4, 5. Fan-out, filter, dead letter: the exact records; then the load.
    let rates = dev_records_and_load(&env, &nats, &repo, &dist, &source, &mut sinks).await?;
    memory.report("after the load");

    // 6. A new version: enrich's config changes, nothing else; the push is the deployment.
    change_site(&repo)?;
    let t = Instant::now();
    env.compile_and_push(&repo, &dist, &key)?;
    let recompile = t.elapsed();
    let manifest2 = std::fs::read_to_string(manifest_path)?;
    let version2 = check_new_version(manifest, &manifest2)?;
    let switched = wait_for_site(&source, &mut sinks.archive, &alerts, NEW_DEV_SITE).await?;
    let redeploy_latency = t.elapsed();
    dev.wait_ready(Duration::from_secs(120))?;
    let status = dev.status()?;
    check_status(&status, &dist, ENV, &key)?;
    ensure!(
        pipeline_state(&status, PIPELINE)?["version"] == version2.as_str(),
        "dev's status does not say {PIPELINE} {version2}: {status}"
    );
    eprintln!(
        "e2e: {version2}: enrich answers with site {NEW_DEV_SITE} {redeploy_latency:.1?} after \
         `etl compile --push --env dev` began (which took {recompile:.1?}; {switched} probes)"
    );
    check_new_site(&env, &repo, &dist, &source, &mut sinks)
        .await
        .context("after the redeploy")?;

    // A tampered bundle under dev's tag: refused, and the last good one keeps running.
    tampered_bundle_is_refused(
        &env,
        &dev,
        &dist,
        &format!("wadm/{PIPELINE}.yaml"),
        "instances: 1",
        "instances: 3",
        &source,
        &mut sinks,
    )
    .await?;

    // A pipeline removed from the repo is undeployed and deleted; nothing else is touched.
    for pipeline in ADDED {
        std::fs::remove_file(repo.join("pipelines").join(format!("{pipeline}.yaml")))?;
    }
    let (before, _) = writes.seen();
    env.compile_and_push(&repo, &dist, &key)?;
    dev.wait_ready(Duration::from_secs(120))?;
    for pipeline in ADDED {
        wait_gone(&nats, LATTICE, pipeline).await?;
    }
    let (_, subjects) = writes.seen();
    let touched: Vec<&String> = subjects[before..]
        .iter()
        .filter(|s| !ADDED.iter().any(|p| s.ends_with(&format!(".{p}"))))
        .collect();
    ensure!(
        touched.is_empty(),
        "pruning wrote more than the removed pipelines: {touched:?}"
    );
    eprintln!(
        "e2e: {} removed from the repo: undeployed and deleted",
        ADDED.join(", ")
    );

    // Restarting the controller changes nothing: it resumes from what the lattice runs.
    a_restart_writes_nothing(&mut dev, &writes).await?;

    // 7. Promotion: staging's controller (running, its tag not there yet) applies the bundle
    // `etl promote` publishes: dev's exact artifacts, staging's config, on staging's lattice.
    let staging = Controller::start(&env, STAGING, &key, &reporting::staging_flags(&env)?)?;
    let host = wait_for_host(&nats, STAGING_LATTICE).await?;
    eprintln!("e2e: host {host} is in lattice {STAGING_LATTICE}");
    let staging_nats = async_nats::connect(&env.staging_nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", env.staging_nats_url))?;
    let mut staging_sinks =
        Sinks::subscribe(&staging_nats, STAGING_ARCHIVE_SUBJECT, &alerts).await?;
    let staging_source = Source::at(
        STAGING_HTTP_ADDRESS
            .replace("0.0.0.0", "127.0.0.1")
            .parse()?,
    );
    let t = Instant::now();
    env.promote(&dist, &key)?;
    let promote = t.elapsed();
    let promoted = Instant::now();
    env.verify(
        &format!("{}/{PIPELINE}-parse:{STAGING}", env.registry),
        &key,
    )?;
    env.verify(
        &format!("{}/bundles/iot-sensors/{STAGING}:{STAGING}", env.registry),
        &key,
    )?;
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
    let probes = first_record(&staging_source, &mut staging_sinks.archive, &alerts).await?;
    let staging_latency = promoted.elapsed();
    staging.wait_ready(Duration::from_secs(60))?;
    let staging_status = staging.status()?;
    check_status(&staging_status, &dist, STAGING, &key)?;
    ensure!(
        artifacts(&staging_status)? == artifacts(&dev.status()?)?,
        "staging's controller runs other artifacts than dev's"
    );
    eprintln!(
        "e2e: staging: first record at both sinks {staging_latency:.1?} after `etl promote` \
         ({probes} probes)"
    );
    staging_sinks.drain().await?;
    check_cases(
        &env,
        STAGING,
        &repo,
        &dist,
        &staging_source,
        &mut staging_sinks,
        &staging_cases(),
    )
    .await?;
    // 8. What the steps report: exact counts per step, /metrics, dead letters and a replay,
    // and the dashboard in Chromium.
    let screenshot = reporting::screenshot_path(&env);
    reporting::check_reporting(
        &env,
        &staging,
        &staging_source,
        &mut staging_sinks,
        70.5,
        62.0,
        Some(&screenshot),
    )
    .await?;

    // 9. No record lost (issue 20): 10,000 readings each while staging is redeployed, loses
    // one of its two hosts, and while enrich answers `transient` for 1 % of them.
    let registry_addr = env.registry.trim_end_matches("/etl").to_owned();
    let mut extra = delivery::ExtraHost::start(
        "staging-2",
        Path::new(&std::env::var("ETL_E2E_HOST_BIN").context("ETL_E2E_HOST_BIN: run run.sh")?),
        &[
            "--nats-url".to_owned(),
            env.nats_url.clone(),
            "--lattice".to_owned(),
            STAGING_LATTICE.to_owned(),
            "--label".to_owned(),
            "zone=lab".to_owned(),
            // What its heartbeats name it by (delivery::ExtraHost::running).
            "--label".to_owned(),
            "e2e-host=staging-2".to_owned(),
            "--allow-insecure".to_owned(),
            registry_addr,
            "--secrets-topic-prefix".to_owned(),
            std::env::var("ETL_E2E_SECRETS_PREFIX").context("ETL_E2E_SECRETS_PREFIX")?,
        ],
        env.work.join("host-staging-2.log"),
    )?;
    extra
        .wait_for_log("host started", Duration::from_secs(60))
        .await?;
    delivery::check_scenarios(
        &delivery::Staging {
            env: &env,
            repo: &repo,
            key: &key,
            controller: &staging,
            source: staging_source.clone(),
            nats: &staging_nats,
            alerts: &alerts,
        },
        &mut extra,
    )
    .await?;
    ensure!(dev.running(), "dev's controller exited");

    let (requests, authorizations) = alerts.authorizations();
    eprintln!(
        "e2e: the alerts webhook got {requests} requests, {} with an Authorization header, {} \
         answered 401",
        authorizations.len(),
        alerts.unauthorized()
    );
    ensure!(
        alerts.unauthorized() == 0 && authorizations.iter().all(|a| a == TOKEN),
        "alerts: {} requests answered 401",
        alerts.unauthorized()
    );

    eprintln!(
        "e2e timings: compile+sign+push {compile_push:.1?}; compile+push → dev deployed {deployed:.1?}; \
         compile+push → first record at both sinks {first_latency:.1?}; \
         records/s: parse → enrich → threshold-alert {:.0}, → archive {:.0}, → alerts (HTTP) {:.0}; \
         recompile+push {recompile:.1?}; recompile+push → new behaviour {redeploy_latency:.1?}; \
         promote {promote:.1?}; promote → first record on staging {staging_latency:.1?}",
        rates.three_steps.rate, rates.archive.rate, rates.alerts.rate,
    );
    // Leave the lattices as the next test expects them: nothing of the example deployed.
    drop(staging);
    dev.stop()?;
    for (lattice, apps) in [
        (LATTICE, [PIPELINE, LISTENER]),
        (STAGING_LATTICE, [PIPELINE, LISTENER]),
    ] {
        for app in apps {
            undeploy(&nats, lattice, app, None).await?;
        }
    }
    Ok(())
}

/// A secret reaches a 1.x host from the `nats-kv` backend run.sh starts, through wadm's secret
/// policy as etl emits it: the example compiled with its secret, `alerts` (its `secrets:` entry,
/// its config, the `etl-secrets` policy, as written) deployed alone as application
/// `etl-e2e-secrets`, its image the `alerts` artifact from `file://` (the host's
/// `allow_file_load`). The host refuses it while the artifact has no embedded claims (as etl
/// compiles it today), and, signed, while the backend has no such secret — each refusal as wadm
/// reports it; once the secret is put, wadm's next try starts it, and the backend gives the
/// value to a request like the host's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_the_backend_reach_the_host() -> anyhow::Result<()> {
    let env = Env::from_env("v1")?;
    let work = env.work.join("secrets");
    let nats = async_nats::connect(&env.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", env.nats_url))?;
    let backend = SecretsBackend::connect(&nats).await?;

    // The example as etl compiles it, its secret kept; alerts' entry and the policy as emitted.
    let repo = work.join("repo");
    copy_dir(&env.example, &repo)?;
    configure_example(&repo, &env.registry, SocketAddr::from(([127, 0, 0, 1], 9)))?;
    // A secret of its own: the main test's is in the same backend already.
    replace_once(
        &pipeline_file(&repo),
        &format!("{{ secret: {ALERTS_SECRET} }}"),
        &format!("{{ secret: {PROBE_SECRET} }}"),
    )?;
    let dist = work.join("dist");
    env.etl(&[
        "compile",
        "--repo",
        path_str(&repo)?,
        "--out",
        path_str(&dist)?,
    ])?;
    let manifest: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(
        dist.join(ENV).join("wadm").join(format!("{PIPELINE}.yaml")),
    )?)?;
    let alerts = manifest["spec"]["components"]
        .as_sequence()
        .and_then(|c| c.iter().find(|c| c["name"] == "alerts"))
        .context("no component alerts")?;
    let secrets = alerts["properties"]["secrets"].clone();
    let policies = manifest["spec"]["policies"].clone();
    ensure!(
        secrets
            == serde_yaml::from_str::<serde_yaml::Value>(&format!(
                "[{{name: authorization, properties: {{policy: etl-secrets, key: {PROBE_SECRET}}}}}]"
            ))?
            && policies
                == serde_yaml::from_str::<serde_yaml::Value>(
                    "[{name: etl-secrets, type: policy.secret.wasmcloud.dev/v1alpha1, \
                     properties: {backend: nats-kv}}]"
                )?,
        "alerts' secrets {secrets:?}, policies {policies:?}"
    );
    let wasm = v1_artifact(&dist, ENV, "alerts")?;
    let host = wait_for_host(&nats, LATTICE).await?;
    eprintln!("e2e: host {host} is in lattice {LATTICE}");
    // Each try its own application: wadm 0.21.1, upgrading an application whose component
    // changed, deletes the old version's secret references after putting the new version's, and
    // both versions' have the same name (`SECRET_<app>-<name>`): the host then finds none.
    let deploy = |app: &'static str, wasm: Vec<u8>| {
        let (nats, work) = (nats.clone(), work.clone());
        let (config, secrets, policies) = (
            alerts["properties"]["config"].clone(),
            secrets.clone(),
            policies.clone(),
        );
        async move {
            let image = work.join(format!("{app}.wasm"));
            std::fs::write(&image, wasm)?;
            let manifest = serde_json::json!({
                "apiVersion": "core.oam.dev/v1beta1",
                "kind": "Application",
                "metadata": {"name": app, "annotations": {"version": "v1"}},
                "spec": {
                    "components": [{
                        "name": "alerts",
                        "type": "component",
                        "properties": {
                            "image": format!("file://{}", image.display()),
                            "config": config,
                            "secrets": secrets,
                        },
                        "traits": [{"type": "spreadscaler", "properties": {"instances": 1}}],
                    }],
                    "policies": policies,
                },
            });
            let path = work.join(format!("{app}.yaml"));
            std::fs::write(&path, serde_yaml::to_string(&manifest)?)?;
            put_and_deploy(&nats, LATTICE, &path).await
        }
    };

    // As etl compiles it today, the artifact has no claims: no secret can be asked for it.
    let signed = match Signed::embedded(&wasm)? {
        Some(claims) => {
            eprintln!(
                "e2e: the alerts artifact carries claims (subject {})",
                claims.subject
            );
            claims
        }
        None => {
            let app = "etl-e2e-secrets-unsigned";
            let version = deploy(app, wasm.clone()).await?;
            let why = wait_refused(&nats, LATTICE, app, &version, "embedded JWT").await?;
            eprintln!("e2e: alerts without claims refused: {why}");
            undeploy(&nats, LATTICE, app, None).await?;
            Signed::sign("alerts", &wasm)?
        }
    };

    // Signed and allowed, but the secret is not in the backend.
    backend.allow(&signed.subject, &[PROBE_SECRET]).await?;
    let version = deploy(PROBE_APP, signed.wasm.clone()).await?;
    let why = wait_refused(&nats, LATTICE, PROBE_APP, &version, "Secret not found").await?;
    eprintln!("e2e: alerts refused while the backend has no {PROBE_SECRET}: {why}");

    // The secret put: wadm tries again, and the host gets it.
    let put = Instant::now();
    backend.put(PROBE_SECRET, TOKEN).await?;
    wait_deployed(&nats, LATTICE, PROBE_APP, &version).await?;
    let started = put.elapsed();
    ensure!(
        backend
            .get_as_host(&signed, PROBE_APP, PROBE_SECRET)
            .await?
            == TOKEN,
        "the backend gives another value for {PROBE_SECRET}"
    );
    let stranger = Signed::sign("stranger", &wasm)?;
    let refused = backend
        .get_as_host(&stranger, PROBE_APP, PROBE_SECRET)
        .await;
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| format!("{e:#}").contains("unauthorized")),
        "a component without a mapping got {PROBE_SECRET}: {refused:?}"
    );
    eprintln!(
        "e2e: {PROBE_SECRET} put; alerts started {started:.1?} later (wadm's next try); the \
         backend gives its value to a request as the host's, and refuses a component it has no \
         mapping for"
    );
    undeploy(&nats, LATTICE, PROBE_APP, None).await
}

/// The application of [`secrets_from_the_backend_reach_the_host`].
const PROBE_APP: &str = "etl-e2e-secrets";

/// The bytes of `unit`'s 1.x artifact in `dist`, as `plan.json` names them.
fn v1_artifact(dist: &Path, environment: &str, unit: &str) -> anyhow::Result<Vec<u8>> {
    let plan: Value = serde_json::from_slice(&std::fs::read(dist.join("plan.json"))?)?;
    let digest = plan["deployments"][environment][PIPELINE]["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == unit))
        .and_then(|c| c["artifact"]["componentDigest"].as_str())
        .with_context(|| format!("plan.json: no 1.x artifact of {unit} in {environment}"))?;
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("digest {digest}"))?;
    let path = dist
        .join("components")
        .join("sha256")
        .join(format!("{hex}.wasm"));
    std::fs::read(&path).with_context(|| format!("{}", path.display()))
}

/// What 1.x needs before `alerts` can start with its secret: the secret in the backend, and
/// leave for the `alerts` artifact (by its embedded claims' subject) to read it. Staging runs the
/// same artifacts, so this serves both.
async fn put_alerts_secret(nats: &async_nats::Client, dist: &Path) -> anyhow::Result<()> {
    let signed = Signed::embedded(&v1_artifact(dist, ENV, "alerts")?)?.context(
        "the 1.x alerts artifact has no embedded wascap claims: the host fetches no secret for \
         it (tests/lattice/secrets.rs)",
    )?;
    let backend = SecretsBackend::connect(nats).await?;
    backend.allow(&signed.subject, &[ALERTS_SECRET]).await?;
    backend.put(ALERTS_SECRET, TOKEN).await?;
    eprintln!(
        "e2e: {ALERTS_SECRET} in the secrets backend for alerts (subject {})",
        signed.subject
    );
    Ok(())
}

/// Waits until wadm reports `version` of `name` failed with a message containing `why` (the
/// host's error); that message.
async fn wait_refused(
    nats: &async_nats::Client,
    lattice: &str,
    name: &str,
    version: &str,
    why: &str,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        let status = model_status(nats, lattice, name).await?;
        if let Some(st) = status.status {
            let messages: Vec<String> = std::iter::once(&st.info)
                .chain(st.scalers.iter().map(|s| &s.info))
                .filter(|i| i.status_type == StatusType::Failed)
                .map(|i| i.message.clone())
                .collect();
            if let Some(m) = messages.iter().find(|m| m.contains(why)) {
                return Ok(m.clone());
            }
            ensure!(
                st.info.status_type != StatusType::Deployed,
                "{name} {version} deployed; expected it refused ({why})"
            );
            last = format!("{:?}: {messages:?}", st.info.status_type);
        }
        ensure!(
            Instant::now() < deadline,
            "{name} {version} not refused ({why}) within 60 s: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The named config through which the bench sets `alerts`' `etl.out.batch`, live: the host
/// updates a running component's config when a named config of it changes, and wadm, which
/// puts back the content of every config a manifest gives properties (a `config_set` event
/// makes it reconcile), leaves a config named without properties alone. (Deploying `alerts`
/// again with another config made the host fetch its secret anew, which failed — wadm 0.21.1
/// drops the secret reference on such an upgrade — and the messaging provider stopped
/// delivering to `alerts` for good a few seconds later.)
const BENCH_CONFIG: &str = "etl-e2e-bench-alerts";

/// The named config through which the bench turns every unit's reports off and on, live (issue
/// 19's overhead figure): the same mechanism as [`BENCH_CONFIG`], after each unit's own config,
/// so its `etl.report.subject` wins when set.
const BENCH_REPORTS: &str = "etl-e2e-bench-reports";

/// `manifest` (wadm) as version `<its version>-bench`, with [`BENCH_CONFIG`] after the `alerts`
/// sink's own config, and [`BENCH_REPORTS`] after every step's and sink's.
fn with_bench_config(manifest: &str) -> anyhow::Result<String> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(manifest)?;
    // A version of its own: wadm refuses a manifest again under a version it has (the
    // controller put the compiled one).
    let version = doc["metadata"]["annotations"]["version"]
        .as_str()
        .context("no version")?
        .to_owned();
    doc["metadata"]["annotations"]["version"] = format!("{version}-bench").into();
    for component in doc["spec"]["components"]
        .as_sequence_mut()
        .context("no components")?
    {
        let alerts = component["name"] == "alerts";
        // Only where a config list is (steps and sinks; indexing a missing key mutably would
        // add a null one).
        let Some(config) = component
            .get_mut("properties")
            .and_then(|p| p.get_mut("config"))
            .and_then(serde_yaml::Value::as_sequence_mut)
        else {
            continue;
        };
        if alerts {
            config.push(serde_yaml::from_str(&format!("{{name: {BENCH_CONFIG}}}"))?);
        }
        config.push(serde_yaml::from_str(&format!("{{name: {BENCH_REPORTS}}}"))?);
    }
    Ok(serde_yaml::to_string(&doc)?)
}

/// Puts the named config `name` = `{etl.out.batch: <mode>}` ([`BENCH_CONFIG`]), or for the
/// reporting modes `reports-off` and `reports-on` [`BENCH_REPORTS`] = `{etl.report.subject: ""}`
/// (an empty subject: no reports) or `{}` (each unit's own subject), through the lattice's
/// control interface.
async fn put_config(
    nats: &async_nats::Client,
    lattice: &str,
    name: &str,
    mode: &str,
) -> anyhow::Result<()> {
    let (name, properties) = match mode {
        "reports-off" => (BENCH_REPORTS, json!({"etl.report.subject": ""})),
        "reports-on" => (BENCH_REPORTS, json!({})),
        _ => (name, json!({"etl.out.batch": mode})),
    };
    let subject = format!("wasmbus.ctl.v1.{lattice}.config.put.{name}");
    let body = serde_json::to_vec(&properties)?;
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        nats.request(subject.clone(), body.into()),
    )
    .await
    .with_context(|| format!("{subject}: no answer within 10 s"))??;
    let v: Value = serde_json::from_slice(&answer.payload)?;
    ensure!(v["success"] == true, "{subject}: {v}");
    Ok(())
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
        // The shared listener's http-server is a reference, not an image.
        let image = match c["properties"]["application"]["name"].as_str() {
            Some(shared) => format!("shared:{shared}"),
            None => c["properties"]["image"]
                .as_str()
                .context("image")?
                .to_owned(),
        };
        images.insert(name.to_owned(), image);
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
    ensure!(
        images.get("http-server").map(String::as_str) == Some(&format!("shared:{LISTENER}")),
        "http-server is not the shared listener: {images:?}"
    );
    for provider in ["http-client", "messaging-nats"] {
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

/// The manifest tells the messaging-nats provider where NATS is: `cluster_uris` naming this
/// NATS (without it, the provider connects to 127.0.0.1:4222).
fn check_nats_address(text: &str, nats_url: &str) -> anyhow::Result<()> {
    let authority = nats_url.trim_start_matches("nats://");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("cluster_uris"))
        .collect();
    ensure!(
        !lines.is_empty() && lines.iter().all(|l| l.contains(authority)),
        "the manifest does not point messaging-nats at {nats_url}: cluster_uris {lines:?}"
    );
    Ok(())
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

/// Undeploys `name` and waits until wadm reports it undeployed and, given the address of an
/// HTTP listener it runs, that the address no longer accepts connections (the provider has
/// stopped).
async fn undeploy(
    nats: &async_nats::Client,
    lattice: &str,
    name: &str,
    listener: Option<SocketAddr>,
) -> anyhow::Result<()> {
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
        let closed = match listener {
            Some(addr) => TcpStream::connect(addr).await.is_err(),
            None => true,
        };
        if undeployed && closed {
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

/// Every application wadm has in `lattice` (`model.get`, which lists them).
async fn models(nats: &async_nats::Client, lattice: &str) -> anyhow::Result<ListModelsResponse> {
    wadm_request(
        nats,
        format!("wadm.api.{lattice}.model.get"),
        None,
        Bytes::new(),
    )
    .await
}

/// Waits until wadm no longer has application `name` in `lattice` (undeployed and deleted).
async fn wait_gone(nats: &async_nats::Client, lattice: &str, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = models(nats, lattice).await?;
        if list.models.iter().all(|m| m.name != name) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{name} still in {lattice} 60 s after it left the bundle"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How long after wadm first reports an application `failed` [`wait_deployed`] still waits:
/// wadm tries a failed scaler again after a 5 s back-off, on the next host heartbeat (every 5 s
/// here). Seen: the shared listener's provider started before wadm had put its config ("Config
/// … does not exist"), fine on the next try; a component refused until its secret was put.
const FAILED_GRACE: Duration = Duration::from_secs(45);

/// Waits until wadm reports `version` of `name` deployed and every scaler `deployed`; a
/// `failed` status is an error once it has lasted [`FAILED_GRACE`] from the first one.
async fn wait_deployed(
    nats: &async_nats::Client,
    lattice: &str,
    name: &str,
    version: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = String::new();
    let mut failed_since = None;
    loop {
        let status: StatusResponse = model_status(nats, lattice, name).await?;
        ensure!(
            status.result == StatusResult::Ok,
            "status of {name}: {}",
            status.message
        );
        let list = models(nats, lattice).await?;
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
        if st.info.status_type == StatusType::Failed {
            let since = *failed_since.get_or_insert_with(Instant::now);
            ensure!(
                since.elapsed() < FAILED_GRACE,
                "{name} failed to deploy ({FAILED_GRACE:?} after wadm first said so): {last}"
            );
        }
        ensure!(
            Instant::now() < deadline,
            "{name} {version} not deployed within 300 s: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
