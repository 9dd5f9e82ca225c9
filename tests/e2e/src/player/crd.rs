//! The Kubernetes resources, as the CRD and core/v1 define them. Unknown fields are errors: the
//! player must not silently drop what the operator would act on. The WorkloadSpec types serialize
//! like the operator's Go structs (field order, `omitempty`) so that the template hash is the
//! operator's.

use serde::{Deserialize, Serialize};

use super::Map;

pub(super) fn is_zero(n: &i32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ObjectMeta {
    pub(super) name: String,
    #[serde(default)]
    pub(super) namespace: Option<String>,
    #[serde(default)]
    pub(super) labels: Map,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) annotations: Map,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct WorkloadDeployment {
    #[allow(dead_code)]
    pub(super) api_version: String,
    #[allow(dead_code)]
    pub(super) kind: String,
    pub(super) metadata: ObjectMeta,
    pub(super) spec: WorkloadDeploymentSpec,
}

fn one() -> i32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct WorkloadDeploymentSpec {
    /// `+kubebuilder:default=1`.
    #[serde(default = "one")]
    pub(super) replicas: i32,
    pub(super) template: WorkloadReplicaTemplate,
    #[serde(default)]
    pub(super) deploy_policy: String,
    #[serde(default)]
    pub(super) artifacts: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub(super) kubernetes: Option<KubernetesSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct WorkloadReplicaTemplate {
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) annotations: Map,
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) labels: Map,
    pub(super) spec: WorkloadSpec,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct WorkloadSpec {
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub(super) host_selector: Map,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) host_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) environment: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) components: Vec<WorkloadComponent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) host_interfaces: Vec<HostInterface>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) service: Option<WorkloadService>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) volumes: Vec<Volume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) kubernetes: Option<KubernetesSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct LocalObjectReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) name: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ConfigLayer {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) config_from: Vec<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) secret_from: Vec<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub(super) config: Map,
}

/// `ConfigLayer` inline, then its own fields (serde's `flatten` cannot deny unknown fields).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct HostInterface {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) config_from: Vec<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) secret_from: Vec<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub(super) config: Map,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) name: String,
    pub(super) namespace: String,
    pub(super) package: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) interfaces: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) version: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct LocalResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) volume_mounts: Option<Vec<VolumeMount>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) environment: Option<ConfigLayer>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub(super) config: Map,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) allowed_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) allowed_ip_name_lookups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) allowed_host_loopback_ports: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct VolumeMount {
    pub(super) name: String,
    pub(super) mount_path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) read_only: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct WorkloadComponent {
    pub(super) name: String,
    pub(super) image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) image_pull_secret: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) image_pull_policy: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) pool_size: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) max_invocations: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) max_concurrency: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) local_resources: Option<LocalResources>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct WorkloadService {
    pub(super) image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) image_pull_secret: Option<LocalObjectReference>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) image_pull_policy: String,
    /// No `omitempty` in the Go struct.
    #[serde(default)]
    pub(super) max_restarts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) local_resources: Option<LocalResources>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Volume {
    pub(super) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ephemeral: Option<Empty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) host_path: Option<HostPathVolume>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Empty {}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HostPathVolume {
    pub(super) path: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KubernetesSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) service: Option<KubernetesServiceRef>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KubernetesServiceRef {
    pub(super) name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Secret {
    #[allow(dead_code)]
    pub(super) api_version: String,
    #[allow(dead_code)]
    pub(super) kind: String,
    pub(super) metadata: ObjectMeta,
    #[serde(default, rename = "type")]
    #[allow(dead_code)]
    pub(super) type_: String,
    #[serde(default)]
    pub(super) immutable: Option<bool>,
    /// Base64 values.
    #[serde(default)]
    pub(super) data: Map,
    /// Plain values; the API server merges them into `data`, over it.
    #[serde(default)]
    pub(super) string_data: Map,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ConfigMap {
    #[allow(dead_code)]
    pub(super) api_version: String,
    #[allow(dead_code)]
    pub(super) kind: String,
    pub(super) metadata: ObjectMeta,
    #[serde(default)]
    pub(super) immutable: Option<bool>,
    #[serde(default)]
    pub(super) data: Map,
    #[serde(default)]
    pub(super) binary_data: Map,
}
