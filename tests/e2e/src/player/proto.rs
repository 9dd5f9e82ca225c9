//! The protojson messages (`proto/wasmcloud/runtime/v2/`), as Go's `protojson.Marshal` writes
//! them: lowerCamelCase names, zero values and empty lists and maps left out, enums by name,
//! 64-bit integers as strings. A v2 host drops (logs, does not answer) a request with a field it
//! does not know, so nothing else may be written.

use serde::{Deserialize, Serialize};

use super::Map;
use super::crd::{Empty, is_zero};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WorkloadStartRequest {
    pub(super) workload: ProtoWorkload,
    pub(super) workload_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProtoWorkload {
    pub(super) namespace: String,
    pub(super) name: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub(super) annotations: Map,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) service: Option<ProtoService>,
    pub(super) wit_world: WitWorld,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) volumes: Vec<ProtoVolume>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WitWorld {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) components: Vec<ProtoComponent>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) host_interfaces: Vec<WitInterface>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WitInterface {
    pub(super) namespace: String,
    pub(super) package: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(super) version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) interfaces: Vec<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub(super) config: Map,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(super) name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProtoComponent {
    pub(super) image: String,
    /// Always present: the operator sends an empty message when the spec has none.
    pub(super) local_resources: ProtoLocalResources,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) pool_size: i32,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) max_invocations: i32,
    pub(super) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) image_pull_policy: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    pub(super) max_concurrency: i32,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProtoLocalResources {
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub(super) config: Map,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub(super) environment: Map,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) volume_mounts: Vec<ProtoVolumeMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) allowed_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) allowed_ip_name_lookups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) allowed_host_loopback_ports: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProtoVolumeMount {
    pub(super) name: String,
    pub(super) mount_path: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) read_only: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProtoService {
    pub(super) image: String,
    pub(super) local_resources: ProtoLocalResources,
    /// uint64: a string in protojson.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_restarts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) image_pull_policy: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProtoVolume {
    pub(super) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) host_path: Option<ProtoHostPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) empty_dir: Option<Empty>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProtoHostPath {
    pub(super) local_path: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StatusReply {
    #[serde(default)]
    pub(super) workload_status: Option<WorkloadStatus>,
}

/// A workload's state on its host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WorkloadStatus {
    #[serde(default)]
    pub(super) workload_id: String,
    /// `WORKLOAD_STATE_…`; absent (UNSPECIFIED) when the host leaves it out.
    #[serde(default)]
    pub(super) workload_state: String,
    #[serde(default)]
    pub(super) message: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Heartbeat {
    pub(super) id: String,
    #[serde(default)]
    pub(super) hostname: String,
    #[serde(default)]
    pub(super) friendly_name: String,
    #[serde(default)]
    pub(super) version: String,
    #[serde(default)]
    pub(super) labels: Map,
    #[serde(default)]
    pub(super) http_port: u32,
    #[serde(default)]
    pub(super) environment: String,
}

/// `translatePullPolicy` (`utils.go`).
pub(super) fn pull_policy(policy: &str) -> Option<&'static str> {
    match policy {
        "Always" => Some("IMAGE_PULL_POLICY_ALWAYS"),
        "IfNotPresent" => Some("IMAGE_PULL_POLICY_IF_NOT_PRESENT"),
        "Never" => Some("IMAGE_PULL_POLICY_NEVER"),
        _ => None,
    }
}
