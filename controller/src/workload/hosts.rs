//! The hosts of the lattice, as the runtime operator's Host resources record them
//! (`host_controller.go`): learnt from the heartbeats hosts publish on
//! `runtime.operator.heartbeat.<hostId>` (every 15 s) or give when asked
//! (`runtime.host.<hostId>.heartbeat`), labelled with the heartbeat's labels plus those the
//! administrator adds (`--host-label`, like `kubectl label host`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;

use super::client::{self, HostError};
use super::manifest::Map;
use super::plan;
use super::proto::Heartbeat;

/// A host whose last heartbeat is older than this is not schedulable (hosts beat every 15 s).
pub const HOST_STALE: Duration = Duration::from_secs(45);
/// How often a host sends a heartbeat unasked.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// Where hosts send their heartbeats.
pub const HEARTBEAT_SUBJECT: &str = "runtime.operator.heartbeat.>";

#[derive(Debug, Clone)]
struct Known {
    heartbeat: Heartbeat,
    last_seen: Instant,
}

/// The hosts heard from, kept up to date by a task listening to heartbeats.
pub struct Hosts {
    known: Arc<Mutex<BTreeMap<String, Known>>>,
    /// Labels the administrator adds, by host name or id.
    admin: BTreeMap<String, Map>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl Hosts {
    /// Starts listening to heartbeats.
    pub async fn listen(
        nats: &async_nats::Client,
        admin: BTreeMap<String, Map>,
    ) -> Result<Hosts, async_nats::SubscribeError> {
        let known: Arc<Mutex<BTreeMap<String, Known>>> = Arc::default();
        let mut sub = nats.subscribe(HEARTBEAT_SUBJECT).await?;
        let listener = tokio::spawn({
            let known = Arc::clone(&known);
            async move {
                while let Some(msg) = sub.next().await {
                    match serde_json::from_slice::<Heartbeat>(&msg.payload) {
                        Ok(hb) => record(&known, hb),
                        Err(e) => {
                            tracing::warn!(subject = %msg.subject, "undecodable heartbeat: {e}")
                        }
                    }
                }
            }
        });
        Ok(Hosts {
            known,
            admin,
            listener,
        })
    }

    /// Asks a host for a heartbeat, without waiting for the next one it sends, as the operator
    /// does for the Host resources it has.
    pub async fn ask(
        &self,
        nats: &async_nats::Client,
        host_id: &str,
        timeout: Duration,
    ) -> Result<(), HostError> {
        let hb: Heartbeat = client::request(
            nats,
            client::subject(host_id, "heartbeat"),
            b"{}".to_vec(),
            timeout,
        )
        .await?;
        record(&self.known, hb);
        Ok(())
    }

    /// The hosts as the decision sees them: labels merged, stale or not.
    pub fn snapshot(&self) -> Vec<plan::Host> {
        let known = self.known.lock().expect("hosts lock");
        known
            .values()
            .map(|k| {
                let hb = &k.heartbeat;
                let mut labels = hb.labels.clone();
                for (key, extra) in &self.admin {
                    if key == &hb.id || key == &hb.hostname || key == &hb.friendly_name {
                        labels.extend(extra.clone());
                    }
                }
                plan::Host {
                    id: hb.id.clone(),
                    name: if hb.hostname.is_empty() {
                        hb.friendly_name.clone()
                    } else {
                        hb.hostname.clone()
                    },
                    labels,
                    environment: hb.environment.clone(),
                    stale: k.last_seen.elapsed() >= HOST_STALE,
                    workloads: hb.workload_count,
                }
            })
            .collect()
    }
}

fn record(known: &Mutex<BTreeMap<String, Known>>, heartbeat: Heartbeat) {
    let mut known = known.lock().expect("hosts lock");
    if !known.contains_key(&heartbeat.id) {
        tracing::info!(
            host = %heartbeat.id,
            name = %heartbeat.hostname,
            friendly_name = %heartbeat.friendly_name,
            version = %heartbeat.version,
            labels = ?heartbeat.labels,
            "host heard from"
        );
    }
    known.insert(
        heartbeat.id.clone(),
        Known {
            heartbeat,
            last_seen: Instant::now(),
        },
    );
}
