//! The Kubernetes resources a v2 bundle carries (`k8s/<pipeline>.yaml`: `WorkloadDeployment`s of
//! `runtime.wasmcloud.dev/v1alpha1`, and any `ConfigMap`s they read) and the ones an
//! administrator gives the controller (`--secrets`: `Secret`s, and `ConfigMap`s), read as the
//! Kubernetes API server would hold them.
//!
//! Unknown fields are errors: the controller must not silently drop what the runtime operator
//! would act on. The `WorkloadSpec` types serialize like the operator's Go structs (field order,
//! `omitempty`) so that [`template_hash`] is the operator's.
//!
//! A Secret's values never reach an error message or a log: the secrets file is checked by hand
//! ([`Resources::read`]), so that no parser's message can quote a value.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A string map, ordered (as Go's `json.Marshal` orders a map's keys).
pub type Map = BTreeMap<String, String>;

/// `apiVersion` of the resources the operator reconciles.
pub const API_VERSION: &str = "runtime.wasmcloud.dev/v1alpha1";

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// `metadata` of a resource.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// The resource's name.
    pub name: String,
    /// The namespace it is for, when it says.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Its labels (not read: Kubernetes selects with them).
    #[serde(default, rename = "labels")]
    _labels: Map,
    /// Its annotations (not read: the template's go to the workloads).
    #[serde(default, rename = "annotations")]
    _annotations: Map,
}

/// A `WorkloadDeployment` (the CRD's `runtime.wasmcloud.dev/v1alpha1`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadDeployment {
    /// Always [`API_VERSION`] (checked before).
    #[serde(rename = "apiVersion")]
    _api_version: String,
    /// Always `WorkloadDeployment` (checked before).
    #[serde(rename = "kind")]
    _kind: String,
    /// Name, labels, annotations.
    pub metadata: ObjectMeta,
    /// What to run.
    pub spec: WorkloadDeploymentSpec,
}

fn one() -> i32 {
    1
}

/// `WorkloadDeployment.spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadDeploymentSpec {
    /// `+kubebuilder:default=1`.
    #[serde(default = "one")]
    pub replicas: i32,
    /// The workloads' template.
    pub template: WorkloadReplicaTemplate,
    /// `RollingUpdate` (the default) or `Recreate`.
    #[serde(default)]
    pub deploy_policy: String,
    /// Artifact resources (not supported here: refused).
    #[serde(default)]
    pub artifacts: Vec<Value>,
    /// Copied into the template before it is hashed.
    #[serde(default)]
    pub kubernetes: Option<KubernetesSpec>,
}

/// `WorkloadReplicaTemplate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadReplicaTemplate {
    /// Given to every workload.
    #[serde(default)]
    pub annotations: Map,
    /// Not read: hosts have no labels for workloads.
    #[serde(default, rename = "labels")]
    _labels: Map,
    /// The workload.
    pub spec: WorkloadSpec,
}

/// `WorkloadSpec`, fields in the Go struct's order.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Labels a host must have.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub host_selector: Map,
    /// Pins the workload to one host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_id: String,
    /// The environment a host must advertise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub environment: String,
    /// The components.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<WorkloadComponent>,
    /// The host's interfaces the components use, with their config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_interfaces: Vec<HostInterface>,
    /// The long-running service component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<WorkloadService>,
    /// Volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Kubernetes Service wiring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSpec>,
}

/// A reference to a ConfigMap or Secret by name.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    /// The ConfigMap's or Secret's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// `ConfigLayer`: inline config, then ConfigMaps, then Secrets, later keys winning.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigLayer {
    /// ConfigMaps whose data is merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_from: Vec<LocalObjectReference>,
    /// Secrets whose data is merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_from: Vec<LocalObjectReference>,
    /// Inline values.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map,
}

/// `HostInterface`: its `ConfigLayer` inline, then its own fields (serde's `flatten` cannot deny
/// unknown fields).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostInterface {
    /// ConfigMaps whose data is merged into `config`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_from: Vec<LocalObjectReference>,
    /// Secrets whose data is merged into `config`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_from: Vec<LocalObjectReference>,
    /// Inline config.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map,
    /// Instance name, for several backends of one package.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// WIT namespace (`wasi`).
    pub namespace: String,
    /// WIT package (`http`).
    pub package: String,
    /// WIT interfaces (`incoming-handler`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// WIT package version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
}

/// `LocalResources`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalResources {
    /// Mounts of the workload's volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
    /// Environment variables, materialized like a host interface's config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<ConfigLayer>,
    /// The component's runtime config (`wasi:config`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map,
    /// Hosts outgoing connections may reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// Names the component may resolve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_ip_name_lookups: Vec<String>,
    /// Host loopback ports the component may reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_host_loopback_ports: Vec<String>,
}

/// `VolumeMount`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    /// The volume.
    pub name: String,
    /// Where it is mounted.
    pub mount_path: String,
    /// Read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// `WorkloadComponent`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadComponent {
    /// The component's name in the workload.
    pub name: String,
    /// Its OCI image.
    pub image: String,
    /// Registry credentials (not supported here: refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<LocalObjectReference>,
    /// `Always`, `IfNotPresent`, `Never`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_pull_policy: String,
    /// Warm instances.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pool_size: i32,
    /// Invocations per instance.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_invocations: i32,
    /// Concurrent calls per instance.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_concurrency: i32,
    /// Config, environment, egress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_resources: Option<LocalResources>,
}

/// `WorkloadService`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadService {
    /// Its OCI image.
    pub image: String,
    /// Registry credentials (not supported here: refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<LocalObjectReference>,
    /// `Always`, `IfNotPresent`, `Never`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_pull_policy: String,
    /// Restarts before the workload is in error (no `omitempty` in the Go struct).
    #[serde(default)]
    pub max_restarts: i32,
    /// Config, environment, egress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_resources: Option<LocalResources>,
}

/// `Volume`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// An empty directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<Empty>,
    /// A directory of the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolume>,
}

/// An empty message.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `HostPathVolume`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HostPathVolume {
    /// The host's directory.
    pub path: String,
}

/// `KubernetesSpec`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSpec {
    /// The Service whose DNS names the HTTP router accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<KubernetesServiceRef>,
}

/// A Kubernetes Service by name.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesServiceRef {
    /// The Service's name.
    pub name: String,
}

impl WorkloadDeployment {
    /// The template the workloads are made from, as the operator hashes it: the deployment's
    /// `kubernetes` copied in.
    pub fn effective_template(&self) -> WorkloadSpec {
        let mut spec = self.spec.template.spec.clone();
        if let Some(k) = &self.spec.kubernetes {
            spec.kubernetes = Some(k.clone());
        }
        spec
    }

    /// Whether the previous workloads go before the new ones start (`deployPolicy: Recreate`).
    pub fn recreate(&self) -> bool {
        self.spec.deploy_policy == "Recreate"
    }
}

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

/// `WorkloadReplicaTemplate.Hash`: FNV-32a of `json.Marshal(spec)`, safe-encoded. Go's encoder
/// escapes `<`, `>`, `&`, U+2028 and U+2029 in strings; serde_json does not.
pub fn template_hash(spec: &WorkloadSpec) -> String {
    let json = serde_json::to_string(spec).expect("a WorkloadSpec serializes");
    let go = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    safe_encode(&fnv32a(go.as_bytes()).to_string())
}

/// Why a bundle's `k8s/` file cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ManifestError {
    /// The file in the bundle.
    pub path: String,
    /// What is wrong, and where.
    pub reason: String,
}

/// What one `k8s/<pipeline>.yaml` of a bundle holds.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// The `WorkloadDeployment`s, in file order.
    pub deployments: Vec<WorkloadDeployment>,
    /// The `ConfigMap`s' data, by name.
    pub config_maps: BTreeMap<String, Map>,
}

impl Manifest {
    /// Reads a bundle file for `namespace` (the environment): every document a
    /// `WorkloadDeployment` or a `ConfigMap` without a namespace or in this one. A `Secret` is
    /// refused: secrets reach the controller through its own file, never through a bundle.
    pub fn read(path: &str, bytes: &[u8], namespace: &str) -> Result<Manifest, ManifestError> {
        let fail = |reason: String| ManifestError {
            path: path.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8: {e}")))?;
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| fail(format!("not YAML: {e}")))?;
        let mut manifest = Manifest::default();
        for (i, doc) in documents.into_iter().enumerate() {
            if doc.is_null() {
                continue;
            }
            let n = i + 1;
            let (api_version, kind, name) = head(&doc);
            let what = format!("document {n} ({api_version} {kind} {name})");
            match (api_version.as_str(), kind.as_str()) {
                (API_VERSION, "WorkloadDeployment") => {
                    let d: WorkloadDeployment =
                        serde_json::from_value(doc).map_err(|e| fail(format!("{what}: {e}")))?;
                    check_namespace(&d.metadata, namespace)
                        .map_err(|e| fail(format!("{what}: {e}")))?;
                    if manifest
                        .deployments
                        .iter()
                        .any(|o| o.metadata.name == d.metadata.name)
                    {
                        return Err(fail(format!(
                            "{what}: a WorkloadDeployment of that name comes earlier"
                        )));
                    }
                    manifest.deployments.push(d);
                }
                ("v1", "ConfigMap") => {
                    let c: ConfigMap =
                        serde_json::from_value(doc).map_err(|e| fail(format!("{what}: {e}")))?;
                    check_namespace(&c.metadata, namespace)
                        .map_err(|e| fail(format!("{what}: {e}")))?;
                    if !c.binary_data.is_empty() {
                        return Err(fail(format!(
                            "{what}: binaryData is not read by the operator"
                        )));
                    }
                    if manifest
                        .config_maps
                        .insert(c.metadata.name, c.data)
                        .is_some()
                    {
                        return Err(fail(format!(
                            "{what}: a ConfigMap of that name comes earlier"
                        )));
                    }
                }
                ("v1", "Secret") => {
                    return Err(fail(format!(
                        "{what}: a Secret does not belong in a bundle: give it to the controller \
                         in its secrets file (--secrets)"
                    )));
                }
                _ => {
                    return Err(fail(format!(
                        "{what}: expected {API_VERSION} WorkloadDeployment or v1 ConfigMap"
                    )));
                }
            }
        }
        Ok(manifest)
    }
}

/// `apiVersion`, `kind` and `metadata.name` of a document, as far as they are strings.
fn head(doc: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    (
        s(&doc["apiVersion"]),
        s(&doc["kind"]),
        s(&doc["metadata"]["name"]),
    )
}

/// Resources carry no namespace or the one applied to (`kubectl apply -n` refuses others).
fn check_namespace(meta: &ObjectMeta, namespace: &str) -> Result<(), String> {
    match &meta.namespace {
        Some(ns) if ns != namespace => Err(format!(
            "namespace {ns} is not the environment's, {namespace}"
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigMap {
    #[serde(rename = "apiVersion")]
    _api_version: String,
    #[serde(rename = "kind")]
    _kind: String,
    metadata: ObjectMeta,
    #[serde(default, rename = "immutable")]
    _immutable: Option<bool>,
    #[serde(default)]
    data: Map,
    #[serde(default)]
    binary_data: Map,
}

/// The Secrets and ConfigMaps an administrator gave the controller (`--secrets`), for one
/// namespace. Its `Debug` names them and never shows a value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Secrets' data (decoded), by name.
    pub secrets: BTreeMap<String, Map>,
    /// ConfigMaps' data, by name.
    pub config_maps: BTreeMap<String, Map>,
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resources")
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("config_maps", &self.config_maps.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Resources {
    /// Reads a YAML stream of `v1` `Secret`s (`data` base64, `stringData` plain, the latter
    /// winning as the API server merges them) and `ConfigMap`s, keeping those without a
    /// namespace or in `namespace` (one file may serve the controllers of several
    /// environments). A resource named twice for the namespace is an error; one in the
    /// namespace wins over one without. Errors say where, never what a value is.
    pub fn read(text: &str, namespace: &str) -> Result<Resources, String> {
        let documents: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| {
            // The parser's message may quote the text around the error, a value perhaps.
            match e.location() {
                Some(at) => format!("not YAML (line {}, column {})", at.line(), at.column()),
                None => "not YAML".to_owned(),
            }
        })?;
        let mut out = Resources::default();
        // Whether each kept resource came with the namespace (specific) or without.
        let mut specific: BTreeMap<(&'static str, String), bool> = BTreeMap::new();
        for (i, doc) in documents.into_iter().enumerate() {
            if doc.is_null() {
                continue;
            }
            let n = i + 1;
            let Value::Object(fields) = doc else {
                return Err(format!("document {n}: not a mapping"));
            };
            let text_of = |key: &str| fields.get(key).and_then(Value::as_str);
            let (kind, allowed): (&'static str, &[&str]) =
                match (text_of("apiVersion"), text_of("kind")) {
                    (Some("v1"), Some("Secret")) => (
                        "Secret",
                        &[
                            "apiVersion",
                            "kind",
                            "metadata",
                            "type",
                            "immutable",
                            "data",
                            "stringData",
                        ],
                    ),
                    (Some("v1"), Some("ConfigMap")) => (
                        "ConfigMap",
                        &["apiVersion", "kind", "metadata", "immutable", "data"],
                    ),
                    _ => {
                        return Err(format!("document {n}: expected a v1 Secret or ConfigMap"));
                    }
                };
            let meta = fields
                .get("metadata")
                .and_then(Value::as_object)
                .ok_or_else(|| format!("document {n} ({kind}): no metadata"))?;
            let name = meta
                .get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("document {n} ({kind}): no metadata.name"))?
                .to_owned();
            let what = format!("document {n} ({kind} {name})");
            if let Some(key) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(format!("{what}: unknown field `{key}`"));
            }
            let applies = match meta.get("namespace") {
                None | Some(Value::Null) => Some(false),
                Some(Value::String(ns)) if ns == namespace => Some(true),
                Some(Value::String(_)) => None,
                Some(_) => return Err(format!("{what}: metadata.namespace is not a string")),
            };
            let strings = |key: &str| -> Result<Map, String> {
                match fields.get(key) {
                    None | Some(Value::Null) => Ok(Map::new()),
                    Some(Value::Object(map)) => map
                        .iter()
                        .map(|(k, v)| match v {
                            Value::String(s) => Ok((k.clone(), s.clone())),
                            _ => Err(format!("{what}: {key}.{k} is not a string")),
                        })
                        .collect(),
                    Some(_) => Err(format!("{what}: {key} is not a mapping")),
                }
            };
            let data = if kind == "Secret" {
                let mut data = Map::new();
                for (k, v) in strings("data")? {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(v.as_bytes())
                        .map_err(|_| format!("{what}: data.{k} is not base64"))?;
                    let value = String::from_utf8(bytes)
                        .map_err(|_| format!("{what}: data.{k} is not UTF-8 text"))?;
                    data.insert(k, value);
                }
                data.extend(strings("stringData")?);
                data
            } else {
                strings("data")?
            };
            // Checked whatever the namespace: one file serves several environments.
            let Some(in_namespace) = applies else {
                continue;
            };
            let map = if kind == "Secret" {
                &mut out.secrets
            } else {
                &mut out.config_maps
            };
            match specific.get(&(kind, name.clone())) {
                Some(&earlier) if earlier == in_namespace => {
                    return Err(format!("{what}: a {kind} of that name comes earlier"));
                }
                // One for this namespace stays over one for any.
                Some(true) => continue,
                _ => {}
            }
            specific.insert((kind, name.clone()), in_namespace);
            map.insert(name, data);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "\
# Generated by etl
---
apiVersion: runtime.wasmcloud.dev/v1alpha1
kind: WorkloadDeployment
metadata:
  name: p-parse
  labels:
    etl.dev/environment: dev
spec:
  replicas: 2
  template:
    spec:
      components:
      - name: parse
        image: registry.example/parse@sha256:00
        localResources:
          config:
            a: b
      hostInterfaces:
      - namespace: wasi
        package: http
        interfaces: [incoming-handler]
        config:
          host: p-parse
      hostSelector:
        zone: lab
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: shared
data:
  k: v
";

    #[test]
    fn reads_deployments_and_config_maps() {
        let m = Manifest::read("k8s/p.yaml", DEPLOYMENT.as_bytes(), "dev").unwrap();
        assert_eq!(m.deployments.len(), 1);
        let d = &m.deployments[0];
        assert_eq!(d.metadata.name, "p-parse");
        assert_eq!(d.spec.replicas, 2);
        assert_eq!(d.spec.template.spec.host_selector["zone"], "lab");
        assert_eq!(m.config_maps["shared"]["k"], "v");
    }

    #[test]
    fn replicas_default_to_one_and_unknown_fields_are_refused() {
        let one = DEPLOYMENT.replace("  replicas: 2\n", "");
        let m = Manifest::read("k8s/p.yaml", one.as_bytes(), "dev").unwrap();
        assert_eq!(m.deployments[0].spec.replicas, 1);
        let unknown = DEPLOYMENT.replace("  replicas: 2\n", "  replicas: 2\n  paused: true\n");
        let e = Manifest::read("k8s/p.yaml", unknown.as_bytes(), "dev").unwrap_err();
        assert!(e.to_string().contains("unknown field `paused`"), "{e}");
        assert!(
            e.to_string().starts_with(
                "k8s/p.yaml: document 1 (runtime.wasmcloud.dev/v1alpha1 WorkloadDeployment p-parse)"
            ),
            "{e}"
        );
    }

    #[test]
    fn refuses_secrets_other_namespaces_and_other_kinds() {
        let secret =
            format!("{DEPLOYMENT}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n");
        let e = Manifest::read("k8s/p.yaml", secret.as_bytes(), "dev").unwrap_err();
        assert!(e.reason.contains("does not belong in a bundle"), "{e}");
        let e = Manifest::read("k8s/p.yaml", DEPLOYMENT.as_bytes(), "staging");
        assert!(e.is_ok(), "no namespace: any");
        let other = DEPLOYMENT.replace("  name: p-parse\n", "  name: p-parse\n  namespace: prod\n");
        let e = Manifest::read("k8s/p.yaml", other.as_bytes(), "dev").unwrap_err();
        assert!(
            e.reason
                .contains("namespace prod is not the environment's, dev"),
            "{e}"
        );
        let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n";
        let e = Manifest::read("k8s/p.yaml", pod.as_bytes(), "dev").unwrap_err();
        assert!(e.reason.contains("v1 Pod x"), "{e}");
    }

    #[test]
    fn the_template_hash_is_the_operators() {
        // The operator's hash of this template (FNV-32a of Go's json.Marshal, safe-encoded),
        // computed by hand from the JSON below.
        let spec: WorkloadSpec = serde_json::from_str(
            r#"{"components":[{"name":"a","image":"r/a@sha256:00"}],"hostSelector":{"z":"<&>"}}"#,
        )
        .unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            json,
            r#"{"hostSelector":{"z":"<&>"},"components":[{"name":"a","image":"r/a@sha256:00"}]}"#
        );
        let go = r#"{"hostSelector":{"z":"\u003c\u0026\u003e"},"components":[{"name":"a","image":"r/a@sha256:00"}]}"#;
        assert_eq!(
            template_hash(&spec),
            safe_encode(&fnv32a(go.as_bytes()).to_string())
        );
        // FNV-32a's published test vector, and SafeEncodeString's alphabet.
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
        assert_eq!(safe_encode("09"), "4f");
    }

    const SECRETS: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: alerts
type: Opaque
data:
  token: c2VjcmV0LXZhbHVl
stringData:
  plain: also-secret
---
apiVersion: v1
kind: Secret
metadata:
  name: alerts
  namespace: staging
stringData:
  token: staging-value
---
apiVersion: v1
kind: Secret
metadata:
  name: elsewhere
  namespace: prod
stringData:
  token: prod-value
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: site
data:
  site: plant-a
";

    #[test]
    fn reads_secrets_for_a_namespace() {
        let dev = Resources::read(SECRETS, "dev").unwrap();
        assert_eq!(dev.secrets["alerts"]["token"], "secret-value");
        assert_eq!(dev.secrets["alerts"]["plain"], "also-secret");
        assert!(!dev.secrets.contains_key("elsewhere"));
        assert_eq!(dev.config_maps["site"]["site"], "plant-a");
        let staging = Resources::read(SECRETS, "staging").unwrap();
        assert_eq!(staging.secrets["alerts"]["token"], "staging-value");
        let shown = format!("{staging:?}");
        assert!(!shown.contains("value"), "{shown}");
    }

    #[test]
    fn secret_errors_never_quote_values() {
        for (text, want) in [
            (
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\ndata:\n  k: not*base64-hunter2\n",
                "document 1 (Secret a): data.k is not base64",
            ),
            (
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringData:\n  k: [hunter2]\n",
                "document 1 (Secret a): stringData.k is not a string",
            ),
            (
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringdata:\n  k: hunter2\n",
                "document 1 (Secret a): unknown field `stringdata`",
            ),
            (
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringData:\n  k: 'hunter2\n",
                "not YAML",
            ),
            (
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n",
                "document 2 (Secret a): a Secret of that name comes earlier",
            ),
        ] {
            let e = Resources::read(text, "dev").unwrap_err();
            assert!(e.starts_with(want), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
