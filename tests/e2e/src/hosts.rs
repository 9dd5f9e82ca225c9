//! The wasmCloud v2 hosts of the end-to-end test, as their heartbeats describe them
//! (`runtime.operator.heartbeat.<hostId>`, protojson): which host is which and where each
//! listens for HTTP. The test only looks; `etl-controller` drives the hosts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures::StreamExt as _;
use serde::Deserialize;

const HEARTBEAT_SUBJECT: &str = "runtime.operator.heartbeat.>";

/// A host, from its last heartbeat.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    pub id: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub friendly_name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub http_port: u32,
}

/// The hosts heard from on one NATS.
pub struct Hosts {
    nats: async_nats::Client,
    hosts: Arc<Mutex<BTreeMap<String, Host>>>,
    heartbeats: tokio::task::JoinHandle<()>,
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.heartbeats.abort();
    }
}

impl Hosts {
    /// Starts listening to heartbeats.
    pub async fn watch(nats: async_nats::Client) -> anyhow::Result<Self> {
        let hosts: Arc<Mutex<BTreeMap<String, Host>>> = Arc::default();
        let mut sub = nats.subscribe(HEARTBEAT_SUBJECT).await?;
        nats.flush().await?;
        let heartbeats = tokio::spawn({
            let hosts = Arc::clone(&hosts);
            async move {
                while let Some(msg) = sub.next().await {
                    match serde_json::from_slice::<Host>(&msg.payload) {
                        Ok(host) => {
                            hosts.lock().unwrap().insert(host.id.clone(), host);
                        }
                        Err(e) => eprintln!("e2e: {}: undecodable heartbeat: {e}", msg.subject),
                    }
                }
            }
        });
        Ok(Self {
            nats,
            hosts,
            heartbeats,
        })
    }

    /// Asks host `id` for a heartbeat now, rather than waiting for its next (every 15 s).
    pub async fn refresh(&self, id: &str) -> anyhow::Result<Host> {
        let subject = format!("runtime.host.{id}.heartbeat");
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            self.nats.request(subject.clone(), "{}".into()),
        )
        .await
        .with_context(|| format!("{subject}: no answer within 5 s"))??;
        let host: Host = serde_json::from_slice(&answer.payload).with_context(|| {
            format!(
                "{subject}: unexpected answer {}",
                String::from_utf8_lossy(&answer.payload)
            )
        })?;
        self.hosts
            .lock()
            .unwrap()
            .insert(host.id.clone(), host.clone());
        Ok(host)
    }

    /// The hosts heard from, by id.
    pub fn hosts(&self) -> Vec<Host> {
        self.hosts.lock().unwrap().values().cloned().collect()
    }

    /// Waits until `n` hosts have been heard from.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> anyhow::Result<Vec<Host>> {
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
}
