//! A player of wasmCloud's v2 runtime operator, for the end-to-end test on real `wash host`s
//! (issue 15): no Kubernetes, the same messages to the same hosts.
//!
//! It reads what `kubectl apply -n <namespace> -f` would send to the API server — a YAML stream
//! of `WorkloadDeployment`s (`runtime.wasmcloud.dev/v1alpha1`), `Secret`s and `ConfigMap`s — and
//! does what the operator's controllers do with them (`runtime-operator/internal/controller/
//! runtime/` in `wasmCloud/wasmCloud`; the file named on each item below):
//!
//! - **Hosts** (`host_controller.go`): learnt from the heartbeats hosts publish on
//!   `runtime.operator.heartbeat.<hostId>`; a Host's labels are the heartbeat's `labels` plus
//!   any an administrator added (`kubectl label host`, [`Player::label_host`]), which the
//!   operator's server-side apply of the heartbeat leaves in place.
//! - **WorkloadDeployment → WorkloadReplicaSet** (`workload_deployment_controller.go`): a
//!   template whose hash changed gets a new ReplicaSet `<name>-<random>`; the previous one is
//!   kept until the new one is available, then deleted (`deployPolicy: Recreate`: deleted at
//!   once). A change of `replicas` alone scales the current ReplicaSet.
//! - **ReplicaSet → Workloads** (`workload_replicaset_controller.go`): one Workload
//!   `<replicaset>-<random>` per replica, annotated with the template hash; surplus ones are
//!   deleted from the end.
//! - **Workload → host** (`workload_controller.go`): a random available host whose labels match
//!   `hostSelector` (or `hostId`); `hostInterfaces[].config` + `configFrom` (ConfigMaps) +
//!   `secretFrom` (Secrets) merged in that order, later keys winning (`utils.go`,
//!   `MaterializeConfigLayer`); `localResources` passed as they are, with `environment`
//!   materialized the same way; then `runtime.host.<hostId>.workload.start`, `status` until
//!   RUNNING, and `stop` when the Workload is deleted — protojson over NATS request/reply
//!   (`host_client.go`; messages in `proto/wasmcloud/runtime/v2/`), with the operator's
//!   timeouts.
//!
//! Where the operator would retry forever (a missing Secret, no matching host, a workload in
//! ERROR), the player fails at once with the reason: a test wants the error, not a wait.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use base64::Engine as _;
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::Value;

/// `workloadStartTimeout`, `workloadStatusTimeout`, `workloadStopTimeout`
/// (`workload_controller.go`).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// A host whose last heartbeat is older than this is not schedulable (hosts beat every 15 s).
pub const HOST_STALE: Duration = Duration::from_secs(45);
/// The annotation each Workload carries: its ReplicaSet template's hash.
pub const GENERATION_ANNOTATION: &str = "runtime.wasmcloud.dev/workload-replica-set-generation";
const HEARTBEAT_SUBJECT: &str = "runtime.operator.heartbeat.>";
const STATUS_POLL: Duration = Duration::from_millis(100);

type Map = BTreeMap<String, String>;

mod crd;
mod proto;

use crd::*;
use proto::*;

// ---------------------------------------------------------------------------------------------
// Names and hashes as the operator makes them

/// `rand.SafeEncodeString` (k8s.io/apimachinery): each byte to one of 27 unambiguous characters.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// `randHash` (`utils.go`): FNV-32a of a fresh UUID, safe-encoded.
fn rand_hash() -> String {
    safe_encode(&fnv32a(uuid::Uuid::new_v4().to_string().as_bytes()).to_string())
}

/// `WorkloadReplicaTemplate.Hash`: FNV-32a of `json.Marshal(spec)`, safe-encoded. Go's encoder
/// escapes `<`, `>`, `&`, U+2028 and U+2029 in strings; serde_json does not.
fn template_hash(spec: &WorkloadSpec) -> String {
    let json = serde_json::to_string(spec).expect("a WorkloadSpec serializes");
    let go = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    safe_encode(&fnv32a(go.as_bytes()).to_string())
}

// ---------------------------------------------------------------------------------------------
// The player

/// A host as the operator's Host resource records it.
#[derive(Debug, Clone)]
pub struct Host {
    pub id: String,
    /// The Host resource's name.
    pub friendly_name: String,
    pub hostname: String,
    pub version: String,
    /// The heartbeat's labels and any an administrator added.
    pub labels: Map,
    pub http_port: u32,
    pub environment: String,
    last_seen: Instant,
}

/// A Workload the player placed.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    /// The Workload's UID: the `workloadId` on the host.
    pub id: String,
    pub host_id: String,
    pub host_http_port: u32,
    /// The `workload.start` request sent, as JSON.
    pub start_request: Value,
}

#[derive(Debug, Clone)]
struct ReplicaSet {
    name: String,
    hash: String,
    workloads: Vec<Workload>,
}

#[derive(Debug, Clone)]
struct Deployment {
    resource: WorkloadDeployment,
    current: ReplicaSet,
}

/// What an apply did to one WorkloadDeployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created,
    /// A new ReplicaSet replaced the previous one.
    Rolled,
    /// Only the number of replicas changed.
    Scaled,
    Unchanged,
    Deleted,
}

/// The resources of one namespace, as the API server would hold them.
#[derive(Debug, Default)]
struct Namespace {
    config_maps: BTreeMap<String, Map>,
    secrets: BTreeMap<String, Map>,
    deployments: BTreeMap<String, Deployment>,
}

/// Plays the runtime operator against the hosts on one NATS.
pub struct Player {
    nats: async_nats::Client,
    hosts: Arc<Mutex<BTreeMap<String, Host>>>,
    /// Labels added to Host resources, by Host name.
    admin_labels: Arc<Mutex<BTreeMap<String, Map>>>,
    namespaces: BTreeMap<String, Namespace>,
    heartbeats: tokio::task::JoinHandle<()>,
}

impl Drop for Player {
    fn drop(&mut self) {
        self.heartbeats.abort();
    }
}

/// What one replica's placement needs, resolved from the cluster's state.
struct Placement<'a> {
    nats: &'a async_nats::Client,
    namespace: &'a str,
    deployment: &'a str,
    hosts: &'a [Host],
}

impl Player {
    /// Starts listening to host heartbeats.
    pub async fn start(nats: async_nats::Client) -> anyhow::Result<Self> {
        let hosts: Arc<Mutex<BTreeMap<String, Host>>> = Arc::default();
        let admin_labels: Arc<Mutex<BTreeMap<String, Map>>> = Arc::default();
        let mut sub = nats.subscribe(HEARTBEAT_SUBJECT).await?;
        nats.flush().await?;
        let heartbeats = tokio::spawn({
            let hosts = Arc::clone(&hosts);
            let admin_labels = Arc::clone(&admin_labels);
            async move {
                while let Some(msg) = sub.next().await {
                    let hb: Heartbeat = match serde_json::from_slice(&msg.payload) {
                        Ok(hb) => hb,
                        Err(e) => {
                            eprintln!("player: {}: undecodable heartbeat: {e}", msg.subject);
                            continue;
                        }
                    };
                    record(&hosts, &admin_labels, hb);
                }
            }
        });
        Ok(Self {
            nats,
            hosts,
            admin_labels,
            namespaces: BTreeMap::new(),
            heartbeats,
        })
    }

    /// Asks a host for a heartbeat, as the operator does for the Host resources it has
    /// (`reconcileReporting`), without waiting for the next one it sends (every 15 s).
    pub async fn refresh(&self, host_id: &str) -> anyhow::Result<Host> {
        let subject = format!("runtime.host.{host_id}.heartbeat");
        let hb: Heartbeat =
            host_request(&self.nats, &subject, &serde_json::json!({}), STATUS_TIMEOUT).await?;
        Ok(record(&self.hosts, &self.admin_labels, hb))
    }

    /// The hosts heard from, by id.
    pub fn hosts(&self) -> Vec<Host> {
        self.hosts.lock().unwrap().values().cloned().collect()
    }

    /// Waits until `n` hosts have sent a heartbeat (hosts beat every 15 s).
    pub async fn wait_for_hosts(&self, n: usize, timeout: Duration) -> anyhow::Result<Vec<Host>> {
        let deadline = Instant::now() + timeout;
        loop {
            let hosts = self.hosts();
            if hosts.len() >= n {
                return Ok(hosts);
            }
            ensure!(
                Instant::now() < deadline,
                "{} of {n} hosts heard on {HEARTBEAT_SUBJECT} within {timeout:?}",
                hosts.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kubectl label host <name> key=value`: the operator's heartbeat updates leave a label
    /// another field manager set in place, and scheduling matches Host labels.
    pub fn label_host(&self, name: &str, key: &str, value: &str) -> anyhow::Result<()> {
        let mut hosts = self.hosts.lock().unwrap();
        let host = hosts
            .values_mut()
            .find(|h| h.friendly_name == name)
            .with_context(|| format!("no Host named {name}"))?;
        host.labels.insert(key.to_owned(), value.to_owned());
        self.admin_labels
            .lock()
            .unwrap()
            .entry(name.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// The Workloads of a WorkloadDeployment's current ReplicaSet.
    pub fn workloads(&self, namespace: &str, deployment: &str) -> Vec<Workload> {
        self.namespaces
            .get(namespace)
            .and_then(|ns| ns.deployments.get(deployment))
            .map(|d| d.current.workloads.clone())
            .unwrap_or_default()
    }

    /// `kubectl apply -n <namespace> -f -` of a YAML stream, then reconciles until every
    /// WorkloadDeployment it holds is available (its workloads RUNNING, the previous ones
    /// stopped). With `prune`, a label selector, the WorkloadDeployments of the namespace that
    /// match it and are not in the stream are deleted (`kubectl apply --prune -l`).
    pub async fn apply(
        &mut self,
        namespace: &str,
        yaml: &str,
        prune: Option<&Map>,
    ) -> anyhow::Result<BTreeMap<String, Change>> {
        let mut desired = Vec::new();
        {
            let ns = self.namespaces.entry(namespace.to_owned()).or_default();
            for doc in documents(yaml)? {
                let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
                let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_owned();
                match (api_version.as_str(), kind.as_str()) {
                    ("v1", "Secret") => {
                        let s: Secret = serde_yaml::from_value(doc).context("a Secret")?;
                        check_namespace(&s.metadata, namespace)?;
                        let mut data = Map::new();
                        for (k, v) in s.data {
                            let bytes = base64::engine::general_purpose::STANDARD
                                .decode(v.as_bytes())
                                .with_context(|| {
                                    format!("Secret {}: data.{k} is not base64", s.metadata.name)
                                })?;
                            data.insert(k, String::from_utf8_lossy(&bytes).into_owned());
                        }
                        data.extend(s.string_data);
                        check_immutable(&ns.secrets, &s.metadata.name, s.immutable, &data)?;
                        ns.secrets.insert(s.metadata.name, data);
                    }
                    ("v1", "ConfigMap") => {
                        let c: ConfigMap = serde_yaml::from_value(doc).context("a ConfigMap")?;
                        check_namespace(&c.metadata, namespace)?;
                        ensure!(
                            c.binary_data.is_empty(),
                            "ConfigMap {}: binaryData is not read by the operator",
                            c.metadata.name
                        );
                        check_immutable(&ns.config_maps, &c.metadata.name, c.immutable, &c.data)?;
                        ns.config_maps.insert(c.metadata.name, c.data);
                    }
                    ("runtime.wasmcloud.dev/v1alpha1", "WorkloadDeployment") => {
                        let d: WorkloadDeployment = serde_yaml::from_value(doc)
                            .context("a WorkloadDeployment (CRD runtime.wasmcloud.dev/v1alpha1)")?;
                        check_namespace(&d.metadata, namespace)?;
                        ensure!(
                            d.spec.artifacts.is_empty(),
                            "{}: spec.artifacts (Artifact resources) are not played",
                            d.metadata.name
                        );
                        desired.push(d);
                    }
                    _ => bail!("cannot apply {api_version} {kind}"),
                }
            }
        }
        let names: BTreeSet<String> = desired.iter().map(|d| d.metadata.name.clone()).collect();
        ensure!(
            names.len() == desired.len(),
            "a WorkloadDeployment is named twice"
        );
        let mut changes = BTreeMap::new();
        // Every WorkloadDeployment is reconciled at once, as the operator's controllers do.
        let hosts = self.hosts();
        let nats = &self.nats;
        let ns = self.namespaces.get_mut(namespace).expect("created above");
        let work: Vec<(WorkloadDeployment, Option<Deployment>)> = desired
            .into_iter()
            .map(|d| {
                let previous = ns.deployments.remove(&d.metadata.name);
                (d, previous)
            })
            .collect();
        let (config_maps, secrets, hosts) = (&ns.config_maps, &ns.secrets, &hosts);
        let results =
            futures::future::join_all(work.into_iter().map(|(d, mut previous)| async move {
                let name = d.metadata.name.clone();
                let placement = Placement {
                    nats,
                    namespace,
                    deployment: &name,
                    hosts,
                };
                let result = reconcile(&placement, config_maps, secrets, &mut previous, d).await;
                (name, previous, result)
            }))
            .await;
        let mut errors = Vec::new();
        for (name, previous, result) in results {
            match result {
                Ok((deployment, change)) => {
                    ns.deployments.insert(name.clone(), deployment);
                    changes.insert(name, change);
                }
                Err(e) => {
                    // What still runs stays recorded.
                    if let Some(previous) = previous {
                        ns.deployments.insert(name.clone(), previous);
                    }
                    errors.push(format!("{namespace}/{name}: {e:#}"));
                }
            }
        }
        ensure!(errors.is_empty(), "{}", errors.join("\n"));
        // Pruned after the rest is applied, as `kubectl apply --prune` does.
        if let Some(selector) = prune {
            let ns = &self.namespaces[namespace];
            let doomed: Vec<String> = ns
                .deployments
                .iter()
                .filter(|(name, d)| {
                    !names.contains(*name) && matches(selector, &d.resource.metadata.labels)
                })
                .map(|(name, _)| name.clone())
                .collect();
            for name in doomed {
                self.delete(namespace, &name).await?;
                changes.insert(name, Change::Deleted);
            }
        }
        Ok(changes)
    }

    /// `kubectl delete -n <namespace> workloaddeployment <name>`: its Workloads are stopped.
    pub async fn delete(&mut self, namespace: &str, name: &str) -> anyhow::Result<()> {
        let d = self
            .namespaces
            .get_mut(namespace)
            .and_then(|ns| ns.deployments.remove(name))
            .with_context(|| format!("no WorkloadDeployment {namespace}/{name}"))?;
        stop_all(&self.nats, &d.current.workloads).await
    }

    /// Deletes every WorkloadDeployment of a namespace.
    pub async fn delete_all(&mut self, namespace: &str) -> anyhow::Result<()> {
        let names: Vec<String> = self
            .namespaces
            .get(namespace)
            .map(|ns| ns.deployments.keys().cloned().collect())
            .unwrap_or_default();
        for name in names {
            self.delete(namespace, &name).await?;
        }
        Ok(())
    }
}

/// Records a host from its heartbeat: the operator's Host resource.
fn record(
    hosts: &Mutex<BTreeMap<String, Host>>,
    admin_labels: &Mutex<BTreeMap<String, Map>>,
    hb: Heartbeat,
) -> Host {
    let mut labels = hb.labels;
    if let Some(extra) = admin_labels.lock().unwrap().get(&hb.friendly_name) {
        labels.extend(extra.clone());
    }
    let host = Host {
        id: hb.id.clone(),
        friendly_name: hb.friendly_name,
        hostname: hb.hostname,
        version: hb.version,
        labels,
        http_port: hb.http_port,
        environment: hb.environment,
        last_seen: Instant::now(),
    };
    hosts.lock().unwrap().insert(hb.id, host.clone());
    host
}

fn documents(yaml: &str) -> anyhow::Result<Vec<serde_yaml::Value>> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(doc).context("YAML")?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Resources carry no namespace or the one applied to (`kubectl apply -n` refuses others).
fn check_namespace(meta: &ObjectMeta, namespace: &str) -> anyhow::Result<()> {
    match &meta.namespace {
        Some(ns) if ns != namespace => bail!(
            "{}: namespace {ns} does not match the namespace applied to, {namespace}",
            meta.name
        ),
        _ => Ok(()),
    }
}

fn check_immutable(
    existing: &BTreeMap<String, Map>,
    name: &str,
    immutable: Option<bool>,
    data: &Map,
) -> anyhow::Result<()> {
    if immutable == Some(true)
        && let Some(old) = existing.get(name)
    {
        ensure!(old == data, "{name} is immutable");
    }
    Ok(())
}

/// `client.MatchingLabels`: every selector label present with the same value.
fn matches(selector: &Map, labels: &Map) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `MaterializeConfigLayer`: `config`, then each `configFrom` ConfigMap's data, then each
/// `secretFrom` Secret's data, later keys winning.
fn materialize(
    layer: &ConfigLayer,
    config_maps: &BTreeMap<String, Map>,
    secrets: &BTreeMap<String, Map>,
    namespace: &str,
) -> anyhow::Result<Map> {
    let mut out = layer.config.clone();
    for r in &layer.config_from {
        let data = config_maps
            .get(&r.name)
            .with_context(|| format!("ConfigMap {namespace}/{} not found (configFrom)", r.name))?;
        out.extend(data.clone());
    }
    for r in &layer.secret_from {
        let data = secrets
            .get(&r.name)
            .with_context(|| format!("Secret {namespace}/{} not found (secretFrom)", r.name))?;
        out.extend(data.clone());
    }
    Ok(out)
}

/// `materializeLocalResources`.
fn local_resources(
    spec: Option<&LocalResources>,
    config_maps: &BTreeMap<String, Map>,
    secrets: &BTreeMap<String, Map>,
    namespace: &str,
) -> anyhow::Result<ProtoLocalResources> {
    let Some(spec) = spec else {
        return Ok(ProtoLocalResources::default());
    };
    Ok(ProtoLocalResources {
        config: spec.config.clone(),
        environment: match &spec.environment {
            Some(layer) => materialize(layer, config_maps, secrets, namespace)?,
            None => Map::new(),
        },
        volume_mounts: spec
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| ProtoVolumeMount {
                name: m.name.clone(),
                mount_path: m.mount_path.clone(),
                read_only: m.read_only,
            })
            .collect(),
        allowed_hosts: spec.allowed_hosts.clone(),
        allowed_ip_name_lookups: spec.allowed_ip_name_lookups.clone(),
        allowed_host_loopback_ports: spec.allowed_host_loopback_ports.clone(),
    })
}

/// The `workload.start` request for one Workload (`reconcilePlacement`).
fn start_request(
    spec: &WorkloadSpec,
    namespace: &str,
    name: &str,
    id: &str,
    hash: &str,
    config_maps: &BTreeMap<String, Map>,
    secrets: &BTreeMap<String, Map>,
) -> anyhow::Result<WorkloadStartRequest> {
    let mut host_interfaces = Vec::new();
    for hi in &spec.host_interfaces {
        let layer = ConfigLayer {
            config_from: hi.config_from.clone(),
            secret_from: hi.secret_from.clone(),
            config: hi.config.clone(),
        };
        let config = materialize(&layer, config_maps, secrets, namespace).with_context(|| {
            format!(
                "materializing host interface config for {}/{}",
                hi.namespace, hi.package
            )
        })?;
        host_interfaces.push(WitInterface {
            namespace: hi.namespace.clone(),
            package: hi.package.clone(),
            version: hi.version.clone(),
            interfaces: hi.interfaces.clone(),
            config,
            name: hi.name.clone(),
        });
    }
    let mut components = Vec::new();
    for c in &spec.components {
        ensure!(
            c.image_pull_secret.is_none(),
            "component {}: imagePullSecret is not played",
            c.name
        );
        ensure!(
            !c.image.starts_with("artifact://"),
            "component {}: artifact:// images are not played",
            c.name
        );
        components.push(ProtoComponent {
            image: c.image.clone(),
            local_resources: local_resources(
                c.local_resources.as_ref(),
                config_maps,
                secrets,
                namespace,
            )
            .with_context(|| format!("component {:?}", c.name))?,
            pool_size: c.pool_size,
            max_invocations: c.max_invocations,
            name: c.name.clone(),
            image_pull_policy: pull_policy(&c.image_pull_policy),
            max_concurrency: c.max_concurrency,
        });
    }
    // `injectServiceDNSAliases`.
    if let Some(service) = spec.kubernetes.as_ref().and_then(|k| k.service.as_ref()) {
        let aliases = format!("{0}.{namespace},{0}.{namespace}.svc", service.name);
        for hi in &mut host_interfaces {
            if hi.namespace == "wasi"
                && hi.package == "http"
                && hi.interfaces.iter().any(|i| i == "incoming-handler")
            {
                hi.config.insert("host-aliases".to_owned(), aliases.clone());
            }
        }
    }
    let service = match &spec.service {
        Some(s) => {
            ensure!(
                s.image_pull_secret.is_none(),
                "service: imagePullSecret is not played"
            );
            Some(ProtoService {
                image: s.image.clone(),
                local_resources: local_resources(
                    s.local_resources.as_ref(),
                    config_maps,
                    secrets,
                    namespace,
                )
                .context("service")?,
                max_restarts: (s.max_restarts != 0).then(|| s.max_restarts.to_string()),
                image_pull_policy: pull_policy(&s.image_pull_policy),
            })
        }
        None => None,
    };
    let volumes = spec
        .volumes
        .iter()
        .map(|v| ProtoVolume {
            name: v.name.clone(),
            host_path: if v.ephemeral.is_some() {
                None
            } else {
                v.host_path.as_ref().map(|h| ProtoHostPath {
                    local_path: h.path.clone(),
                })
            },
            empty_dir: v.ephemeral.as_ref().map(|_| Empty {}),
        })
        .collect();
    Ok(WorkloadStartRequest {
        workload: ProtoWorkload {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            annotations: Map::from([(GENERATION_ANNOTATION.to_owned(), hash.to_owned())]),
            service,
            wit_world: WitWorld {
                components,
                host_interfaces,
            },
            volumes,
        },
        workload_id: id.to_owned(),
    })
}

/// `findFreeHost`: the hosts whose labels match the selector (and, for a workload that names
/// an environment, whose environment is it; shared hosts allowed, the operator's default), in
/// random order; the first available one. `hostId` pins the host.
fn choose_host<'a>(spec: &WorkloadSpec, hosts: &'a [Host]) -> anyhow::Result<&'a Host> {
    if !spec.host_id.is_empty() {
        return hosts
            .iter()
            .find(|h| h.id == spec.host_id)
            .with_context(|| format!("hostId {} is not a known host", spec.host_id));
    }
    let mut candidates: Vec<&Host> = hosts
        .iter()
        .filter(|h| matches(&spec.host_selector, &h.labels))
        .filter(|h| spec.environment.is_empty() || h.environment == spec.environment)
        .filter(|h| h.last_seen.elapsed() < HOST_STALE)
        .collect();
    // `rand.Shuffle`, then the first: a random one.
    if !candidates.is_empty() {
        let i = (uuid::Uuid::new_v4().as_u128() % candidates.len() as u128) as usize;
        candidates.swap(0, i);
    }
    candidates.first().copied().with_context(|| {
        let known: Vec<String> = hosts
            .iter()
            .map(|h| format!("{} {:?}", h.friendly_name, h.labels))
            .collect();
        format!(
            "no suitable host found: hostSelector {:?} matches none of the hosts heard from \
             within {HOST_STALE:?}: {}",
            spec.host_selector,
            known.join(", ")
        )
    })
}

/// Brings a WorkloadDeployment to its desired state; returns it and what changed. On an error,
/// `previous` is what still runs.
async fn reconcile(
    placement: &Placement<'_>,
    config_maps: &BTreeMap<String, Map>,
    secrets: &BTreeMap<String, Map>,
    previous: &mut Option<Deployment>,
    resource: WorkloadDeployment,
) -> anyhow::Result<(Deployment, Change)> {
    ensure!(
        resource.spec.replicas >= 0,
        "replicas {} is negative",
        resource.spec.replicas
    );
    let replicas = resource.spec.replicas as usize;
    // The deployment's `kubernetes` is copied into the template before it is hashed.
    let mut spec = resource.spec.template.spec.clone();
    if let Some(k) = &resource.spec.kubernetes {
        spec.kubernetes = Some(k.clone());
    }
    let hash = template_hash(&spec);
    let (spec, hash) = (&spec, &hash);
    let start = |rs: &str| {
        let name = format!("{rs}-{}", rand_hash());
        let id = uuid::Uuid::new_v4().to_string();
        let request = start_request(
            spec,
            placement.namespace,
            &name,
            &id,
            hash,
            config_maps,
            secrets,
        );
        async move { start_workload(placement, spec, name, id, request?).await }
    };
    if let Some(old) = previous.as_ref().filter(|d| &d.current.hash == hash) {
        // The same template: only the number of replicas may differ.
        let mut d = old.clone();
        let have = d.current.workloads.len();
        let change = if have == replicas {
            Change::Unchanged
        } else {
            Change::Scaled
        };
        if have < replicas {
            let started = start_all(
                placement.nats,
                (have..replicas).map(|_| start(&d.current.name)),
            )
            .await?;
            d.current.workloads.extend(started);
        } else if have > replicas {
            let surplus = d.current.workloads.split_off(replicas);
            stop_all(placement.nats, &surplus).await?;
        }
        d.resource = resource;
        return Ok((d, change));
    }
    let rs = format!("{}-{}", resource.metadata.name, rand_hash());
    let change = if previous.is_some() {
        Change::Rolled
    } else {
        Change::Created
    };
    if resource.spec.deploy_policy == "Recreate" {
        // The previous ReplicaSet is not kept: deleted before the new one is available.
        if let Some(old) = previous.take() {
            stop_all(placement.nats, &old.current.workloads).await?;
        }
    }
    let workloads = start_all(placement.nats, (0..replicas).map(|_| start(&rs))).await?;
    // Rolling (the default): the previous ReplicaSet goes once the new one is available.
    if let Some(old) = previous.take() {
        stop_all(placement.nats, &old.current.workloads).await?;
    }
    Ok((
        Deployment {
            resource,
            current: ReplicaSet {
                name: rs,
                hash: hash.clone(),
                workloads,
            },
        },
        change,
    ))
}

/// Starts the replicas at once; if any fails, stops those that started.
async fn start_all(
    nats: &async_nats::Client,
    starts: impl Iterator<Item = impl Future<Output = anyhow::Result<Workload>>>,
) -> anyhow::Result<Vec<Workload>> {
    let mut started = Vec::new();
    let mut error = None;
    for result in futures::future::join_all(starts).await {
        match result {
            Ok(w) => started.push(w),
            Err(e) => error = error.or(Some(e)),
        }
    }
    match error {
        None => Ok(started),
        Some(e) => {
            if let Err(stop_error) = stop_all(nats, &started).await {
                eprintln!("player: stopping the replicas that did start: {stop_error:#}");
            }
            Err(e)
        }
    }
}

/// Places one Workload: host selection, `workload.start`, `workload.status` until RUNNING.
async fn start_workload(
    placement: &Placement<'_>,
    spec: &WorkloadSpec,
    name: String,
    id: String,
    request: WorkloadStartRequest,
) -> anyhow::Result<Workload> {
    let host = choose_host(spec, placement.hosts)
        .with_context(|| format!("Workload {name}"))?
        .clone();
    let request = serde_json::to_value(&request)?;
    let t = Instant::now();
    let subject = format!("runtime.host.{}.workload.start", host.id);
    let reply: StatusReply = host_request(placement.nats, &subject, &request, START_TIMEOUT)
        .await
        .with_context(|| format!("Workload {name} on host {}", host.friendly_name))?;
    let mut status = reply.workload_status.unwrap_or_default();
    let workload = Workload {
        name: name.clone(),
        id: if status.workload_id.is_empty() {
            id
        } else {
            status.workload_id.clone()
        },
        host_id: host.id.clone(),
        host_http_port: host.http_port,
        start_request: request,
    };
    // `reconcileSync`: the workload is operational once RUNNING (or COMPLETED).
    loop {
        match status.workload_state.as_str() {
            "WORKLOAD_STATE_RUNNING" | "WORKLOAD_STATE_COMPLETED" => break,
            "WORKLOAD_STATE_ERROR" | "WORKLOAD_STATE_NOT_FOUND" => {
                let _ = stop(placement.nats, &workload).await;
                bail!(
                    "Workload {name} on host {} ({}): {}: {}",
                    host.friendly_name,
                    host.id,
                    status.workload_state,
                    status.message
                );
            }
            _ => {}
        }
        if t.elapsed() > START_TIMEOUT {
            let _ = stop(placement.nats, &workload).await;
            bail!(
                "Workload {name} on host {}: still {} {START_TIMEOUT:?} after workload.start: {}",
                host.friendly_name,
                status.workload_state,
                status.message
            );
        }
        tokio::time::sleep(STATUS_POLL).await;
        status = workload_status(placement.nats, &workload).await?;
    }
    eprintln!(
        "player: {}/{}: Workload {name} (template {}) RUNNING on host {} {:?} in {:.2?}",
        placement.namespace,
        placement.deployment,
        workload.start_request["workload"]["annotations"][GENERATION_ANNOTATION]
            .as_str()
            .unwrap_or_default(),
        host.friendly_name,
        host.labels,
        t.elapsed()
    );
    Ok(workload)
}

async fn workload_status(
    nats: &async_nats::Client,
    w: &Workload,
) -> anyhow::Result<WorkloadStatus> {
    let subject = format!("runtime.host.{}.workload.status", w.host_id);
    let reply: StatusReply = host_request(
        nats,
        &subject,
        &serde_json::json!({"workloadId": w.id}),
        STATUS_TIMEOUT,
    )
    .await
    .with_context(|| format!("status of Workload {}", w.name))?;
    Ok(reply.workload_status.unwrap_or_default())
}

/// `finalize`: `workload.stop`, then (beyond the operator, for a test that must know no old
/// replica still takes messages) `workload.status` until the host no longer has it.
async fn stop(nats: &async_nats::Client, w: &Workload) -> anyhow::Result<()> {
    let subject = format!("runtime.host.{}.workload.stop", w.host_id);
    let _: StatusReply = host_request(
        nats,
        &subject,
        &serde_json::json!({"workloadId": w.id}),
        STOP_TIMEOUT,
    )
    .await
    .with_context(|| format!("stopping Workload {}", w.name))?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        let status = workload_status(nats, w).await?;
        match status.workload_state.as_str() {
            "WORKLOAD_STATE_NOT_FOUND" | "WORKLOAD_STATE_ERROR" | "" => return Ok(()),
            state => ensure!(
                Instant::now() < deadline,
                "Workload {} still {state} {STOP_TIMEOUT:?} after workload.stop",
                w.name
            ),
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

async fn stop_all(nats: &async_nats::Client, workloads: &[Workload]) -> anyhow::Result<()> {
    let results = futures::future::join_all(workloads.iter().map(|w| stop(nats, w))).await;
    for w in workloads {
        eprintln!("player: Workload {} stopped", w.name);
    }
    results.into_iter().collect()
}

/// One protojson request to a host and its answer. A host that cannot decode a request logs
/// the error and does not answer: the timeout says so.
async fn host_request<T: serde::de::DeserializeOwned>(
    nats: &async_nats::Client,
    subject: &str,
    body: &Value,
    timeout: Duration,
) -> anyhow::Result<T> {
    let payload = serde_json::to_vec(body)?;
    let request = async_nats::Request::new()
        .payload(payload.into())
        .timeout(Some(timeout));
    let msg = match nats.send_request(subject.to_owned(), request).await {
        Ok(msg) => msg,
        Err(e) => {
            return Err(match e.kind() {
                async_nats::RequestErrorKind::TimedOut => anyhow!(
                    "{subject}: no answer within {timeout:?} (a wash host logs a request it \
                     cannot decode, e.g. one with a field it does not know, and does not \
                     answer it: see the host's log)"
                ),
                async_nats::RequestErrorKind::NoResponders => {
                    anyhow!("{subject}: no host listens there (gone?)")
                }
                async_nats::RequestErrorKind::Other => anyhow!("{subject}: {e}"),
            });
        }
    };
    serde_json::from_slice(&msg.payload).with_context(|| {
        format!(
            "{subject}: unexpected answer {}",
            String::from_utf8_lossy(&msg.payload)
        )
    })
}
