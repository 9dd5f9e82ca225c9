//! The hosts' workload API messages (`proto/wasmcloud/runtime/v2/`), as Go's `protojson.Marshal`
//! writes them: lowerCamelCase names, zero values and empty lists and maps left out, enums by
//! name, 64-bit integers as strings. A v2 host drops (logs, does not answer) a request with a
//! field it does not know, so nothing else may be written.
//!
//! A start request carries materialized Secrets: its parts have no `Debug`, so that no log line
//! can show one. The request itself is put together in [`super::request`].

use serde::{Deserialize, Serialize};

use super::manifest::{Empty, Map};

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// `WitInterface`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WitInterface {
    pub namespace: String,
    pub package: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub config: Map,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// `Component`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    pub image: String,
    /// Always present: the operator sends an empty message when the spec has none.
    pub local_resources: LocalResources,
    #[serde(skip_serializing_if = "is_zero")]
    pub pool_size: i32,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_invocations: i32,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_concurrency: i32,
}

/// `LocalResources`.
#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalResources {
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub config: Map,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub environment: Map,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_ip_name_lookups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_host_loopback_ports: Vec<String>,
}

/// `VolumeMount`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// `Service`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub image: String,
    pub local_resources: LocalResources,
    /// uint64: a string in protojson.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<&'static str>,
}

/// `Volume`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolume>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<Empty>,
}

/// `HostPathVolume`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPathVolume {
    pub local_path: String,
}

/// `WorkloadStatusRequest` and `WorkloadStopRequest`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdRequest<'a> {
    pub workload_id: &'a str,
}

/// `WorkloadStartResponse`, `WorkloadStatusResponse` and `WorkloadStopResponse`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReply {
    #[serde(default)]
    pub workload_status: Option<WorkloadStatus>,
}

/// `WorkloadStatus`: a workload's state on its host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// `WORKLOAD_STATE_…`; absent (UNSPECIFIED) when the host leaves it out.
    #[serde(default)]
    pub workload_state: String,
    #[serde(default)]
    pub message: String,
}

/// `WorkloadState` names.
pub mod state {
    pub const STARTING: &str = "WORKLOAD_STATE_STARTING";
    pub const RUNNING: &str = "WORKLOAD_STATE_RUNNING";
    pub const COMPLETED: &str = "WORKLOAD_STATE_COMPLETED";
    pub const STOPPING: &str = "WORKLOAD_STATE_STOPPING";
    pub const ERROR: &str = "WORKLOAD_STATE_ERROR";
    pub const NOT_FOUND: &str = "WORKLOAD_STATE_NOT_FOUND";
}

/// `HostHeartbeat`, the fields the controller reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    pub id: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub friendly_name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub labels: Map,
    #[serde(default)]
    pub environment: String,
    /// uint64: a string in protojson (a number is accepted too).
    #[serde(default, deserialize_with = "uint64")]
    pub workload_count: u64,
}

fn uint64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(u64),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(n) => Ok(n),
        Either::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// `translatePullPolicy` (`utils.go`).
pub fn pull_policy(policy: &str) -> Option<&'static str> {
    match policy {
        "Always" => Some("IMAGE_PULL_POLICY_ALWAYS"),
        "IfNotPresent" => Some("IMAGE_PULL_POLICY_IF_NOT_PRESENT"),
        "Never" => Some("IMAGE_PULL_POLICY_NEVER"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_read_as_hosts_write_them() {
        let hb: Heartbeat = serde_json::from_str(
            r#"{"id":"h1","hostname":"lab-1","friendlyName":"brave-fox","version":"2.10.3",
                "labels":{"hostgroup":"lab"},"workloadCount":"3","httpPort":8080,
                "startedAt":"2026-01-01T00:00:00Z","imports":[]}"#,
        )
        .unwrap();
        assert_eq!(hb.hostname, "lab-1");
        assert_eq!(hb.workload_count, 3);
        let hb: Heartbeat = serde_json::from_str(r#"{"id":"h2","workloadCount":2}"#).unwrap();
        assert_eq!(hb.workload_count, 2);
    }

    #[test]
    fn status_requests_are_protojson() {
        let json = serde_json::to_string(&WorkloadIdRequest { workload_id: "w" }).unwrap();
        assert_eq!(json, r#"{"workloadId":"w"}"#);
    }
}
