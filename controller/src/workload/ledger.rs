//! The ledger: which workloads this controller started, where — a NATS JetStream key-value
//! bucket on the lattice's NATS, one entry per workload, written before its start is sent and
//! removed once its host no longer has it.
//!
//! Hosts cannot list their workloads (their API has `workload.start|status|stop` and a
//! heartbeat that only counts them), so this is how a controller that restarts finds the
//! workloads of deployments, templates and hosts its current bundle no longer names: it asks
//! their hosts about each entry. What the hosts answer is the truth; the ledger only says whom
//! to ask. Without JetStream the controller runs without it (see `docs/controller.md`).

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

/// One workload this controller started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Owner: the project.
    pub project: String,
    /// Owner: the environment.
    pub environment: String,
    /// The bundle application.
    pub application: String,
    /// The `WorkloadDeployment`.
    pub deployment: String,
    /// The application's version when started.
    pub version: String,
    /// The template's hash.
    pub hash: String,
    /// Its slot.
    pub replica: u32,
    /// Its host.
    pub host: String,
    /// Its workload id.
    pub id: String,
}

impl Record {
    /// Its key in the bucket: `<project>.<environment>.<host>.<id>`.
    fn key(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            token(&self.project),
            token(&self.environment),
            token(&self.host),
            token(&self.id)
        )
    }
}

/// A key token: as it is when every character is allowed in one, else `x` and its hex.
fn token(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        s.to_owned()
    } else {
        let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x{hex}")
    }
}

/// The bucket, when the lattice's NATS has JetStream.
pub struct Ledger {
    store: Option<async_nats::jetstream::kv::Store>,
    bucket: String,
}

impl Ledger {
    /// Opens (or creates) the bucket and reads every entry. Without JetStream, or if the bucket
    /// cannot be opened, says so in the log and runs without.
    pub async fn open(nats: &async_nats::Client, bucket: &str) -> (Ledger, Vec<Record>) {
        let js = async_nats::jetstream::new(nats.clone());
        let config = async_nats::jetstream::kv::Config {
            bucket: bucket.to_owned(),
            description: "etl-controller: the workloads it started on wasmCloud v2 hosts"
                .to_owned(),
            history: 1,
            ..Default::default()
        };
        let store = match js.get_key_value(bucket).await {
            Ok(store) => Ok(store),
            Err(get) => match js.create_key_value(config).await {
                Ok(store) => Ok(store),
                // Created meanwhile by another controller, or the first look failed.
                Err(create) => js
                    .get_key_value(bucket)
                    .await
                    .map_err(|_| format!("{get}; creating it: {create}")),
            },
        };
        let store = match store {
            Ok(store) => store,
            Err(e) => {
                tracing::warn!(
                    bucket,
                    "no workload ledger (NATS key-value bucket): {e}; a restarted controller \
                     finds the current bundle's workloads by asking hosts, but not those of \
                     deployments or hosts it no longer knows"
                );
                return (
                    Ledger {
                        store: None,
                        bucket: bucket.to_owned(),
                    },
                    Vec::new(),
                );
            }
        };
        let mut records = Vec::new();
        match store.keys().await {
            Ok(mut keys) => {
                while let Some(key) = keys.next().await {
                    let key = match key {
                        Ok(key) => key,
                        Err(e) => {
                            tracing::warn!(bucket, "reading the ledger's keys: {e}");
                            break;
                        }
                    };
                    match store.get(&key).await {
                        Ok(Some(bytes)) => match serde_json::from_slice::<Record>(&bytes) {
                            Ok(r) => records.push(r),
                            Err(e) => tracing::warn!(bucket, key, "ignoring a ledger entry: {e}"),
                        },
                        Ok(None) => {}
                        Err(e) => tracing::warn!(bucket, key, "reading a ledger entry: {e}"),
                    }
                }
            }
            Err(e) => tracing::warn!(bucket, "reading the ledger's keys: {e}"),
        }
        tracing::info!(bucket, entries = records.len(), "workload ledger opened");
        (
            Ledger {
                store: Some(store),
                bucket: bucket.to_owned(),
            },
            records,
        )
    }

    /// Writes an entry (before its start is sent). A failure is logged: the start goes on.
    pub async fn put(&self, record: &Record) {
        if let Some(store) = &self.store {
            let bytes = serde_json::to_vec(record).expect("a record serializes");
            if let Err(e) = store.put(record.key(), bytes.into()).await {
                tracing::warn!(bucket = %self.bucket, workload = %record.id, "writing the ledger: {e}");
            }
        }
    }

    /// Removes an entry (its host no longer has the workload).
    pub async fn remove(&self, record: &Record) {
        if let Some(store) = &self.store
            && let Err(e) = store.purge(record.key()).await
        {
            tracing::warn!(bucket = %self.bucket, workload = %record.id, "removing a ledger entry: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_bucket_keys() {
        let r = Record {
            project: "iot-sensors".into(),
            environment: "dev".into(),
            application: "a".into(),
            deployment: "d".into(),
            version: "sha-0".into(),
            hash: "h".into(),
            replica: 0,
            host: "NAB3 weird.id".into(),
            id: "0a1b2c3d-0000-8000-8000-000000000000".into(),
        };
        assert_eq!(
            r.key(),
            "iot-sensors.dev.x4e4142332077656972642e6964.0a1b2c3d-0000-8000-8000-000000000000"
        );
    }
}
