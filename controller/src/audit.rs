//! The replay audit: every replay of dead letters — who asked (as they said), with which
//! credential, from where, when, which dead letters to which subjects — in the key-value bucket
//! [`BUCKET`] on the data plane's NATS (key `<project>.<environment>.<nanoseconds>`), written
//! before anything is published, and in the log.

use async_nats::jetstream::{self, kv};
use etl::ops::telemetry::Replay;
use futures::StreamExt as _;

use crate::jetstream::{Error, bucket};

/// The bucket.
pub const BUCKET: &str = "etl-controller-audit";
/// The bucket's bound.
const MAX_BYTES: i64 = 16 * 1024 * 1024;

/// Why the audit cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[error("the replay audit ({BUCKET}): {0}")]
pub struct AuditError(String);

/// One environment's replay audit.
#[derive(Clone)]
pub struct Audit {
    store: kv::Store,
    prefix: String,
}

impl Audit {
    /// Opens (or creates) the bucket for `project`'s `environment`.
    pub async fn open(
        js: &jetstream::Context,
        project: &str,
        environment: &str,
    ) -> Result<Audit, Error> {
        let store = bucket(
            js,
            BUCKET,
            "etl-controller: who replayed which dead letters, per environment",
            MAX_BYTES,
        )
        .await?;
        Ok(Audit {
            store,
            prefix: format!("{project}.{environment}."),
        })
    }

    /// Records `replay`, made at `nanos` (since the epoch), and logs it.
    pub async fn record(&self, replay: &Replay, nanos: u128) -> Result<(), AuditError> {
        let bytes: bytes::Bytes = serde_json::to_vec(replay)
            .expect("a replay serializes")
            .into();
        let mut at = nanos;
        // Keys sort by time; two replays in one nanosecond take the next.
        loop {
            let key = format!("{}{at:020}", self.prefix);
            match self.store.create(&key, bytes.clone()).await {
                Ok(_) => break,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => at += 1,
                Err(e) => return Err(AuditError(e.to_string())),
            }
        }
        let ids: Vec<&str> = replay.replayed.iter().map(|(id, _)| id.as_str()).collect();
        tracing::info!(
            actor = %replay.actor,
            credential = %replay.credential,
            remote = %replay.remote,
            replayed = ?ids,
            missing = ?replay.missing,
            "dead letters replayed"
        );
        Ok(())
    }

    /// The newest `limit` replays, newest first.
    pub async fn list(&self, limit: usize) -> Result<Vec<Replay>, AuditError> {
        let mut keys: Vec<String> = Vec::new();
        let mut listing = self
            .store
            .keys()
            .await
            .map_err(|e| AuditError(e.to_string()))?;
        while let Some(key) = listing.next().await {
            let key = key.map_err(|e| AuditError(e.to_string()))?;
            if key.starts_with(&self.prefix) {
                keys.push(key);
            }
        }
        keys.sort_unstable_by(|a, b| b.cmp(a));
        let mut replays = Vec::new();
        for key in keys.into_iter().take(limit) {
            match self.store.get(&key).await {
                Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                    Ok(replay) => replays.push(replay),
                    Err(e) => tracing::warn!(bucket = BUCKET, key, "an unreadable entry: {e}"),
                },
                Ok(None) => {}
                Err(e) => return Err(AuditError(e.to_string())),
            }
        }
        Ok(replays)
    }
}
