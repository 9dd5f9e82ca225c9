//! What survives a restart, in the key-value bucket [`BUCKET`] on the data plane's NATS: the
//! counts ([`Snapshot`], key `<project>.<environment>`) and the bundles applied
//! (`<project>.<environment>.history`, the last [`HISTORY_KEPT`], newest first).

use async_nats::jetstream::{self, kv};
use etl::ops::telemetry::Deployment;
use serde::de::DeserializeOwned;

use super::store::Snapshot;
use crate::jetstream::{BucketSpec, Error, bucket};

/// The bucket.
pub const BUCKET: &str = "etl-controller-metrics";
/// Bundles applied kept in the history.
pub const HISTORY_KEPT: usize = 20;
/// The bucket's bound.
const MAX_BYTES: i64 = 16 * 1024 * 1024;

/// Why the bucket cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The bucket cannot be had.
    #[error(transparent)]
    Bucket(#[from] Error),
    /// A read or write failed.
    #[error("{BUCKET} `{key}`: {detail}")]
    Io {
        /// The key.
        key: String,
        /// Why.
        detail: String,
    },
}

/// One environment's entries.
#[derive(Clone)]
pub struct Persisted {
    store: kv::Store,
    key: String,
}

impl Persisted {
    /// Opens (or creates) the bucket for `project`'s `environment`.
    pub async fn open(
        js: &jetstream::Context,
        project: &str,
        environment: &str,
    ) -> Result<Persisted, PersistError> {
        let store = bucket(
            js,
            &BucketSpec {
                name: BUCKET.to_owned(),
                description: "etl-controller: report counts and bundles applied, per environment"
                    .to_owned(),
                max_bytes: MAX_BYTES,
                max_age: std::time::Duration::ZERO,
                discard_old: false,
            },
        )
        .await?;
        Ok(Persisted {
            store,
            key: format!("{project}.{environment}"),
        })
    }

    fn history_key(&self) -> String {
        format!("{}.history", self.key)
    }

    async fn get<T: DeserializeOwned>(&self, key: String) -> Result<Option<T>, PersistError> {
        let io = |detail: String| PersistError::Io {
            key: key.clone(),
            detail,
        };
        match self.store.get(key.clone()).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io(format!("unreadable: {e}"))),
            Ok(None) => Ok(None),
            Err(e) => Err(io(e.to_string())),
        }
    }

    async fn put(&self, key: String, bytes: Vec<u8>) -> Result<(), PersistError> {
        self.store
            .put(key.clone(), bytes.into())
            .await
            .map(drop)
            .map_err(|e| PersistError::Io {
                key,
                detail: e.to_string(),
            })
    }

    /// The counts saved last, if any.
    pub async fn snapshot(&self) -> Result<Option<Snapshot>, PersistError> {
        self.get(self.key.clone()).await
    }

    /// Saves the counts.
    pub async fn save(&self, snapshot: &Snapshot) -> Result<(), PersistError> {
        let bytes = serde_json::to_vec(snapshot).expect("a snapshot serializes");
        self.put(self.key.clone(), bytes).await
    }

    /// The bundles applied, newest first.
    pub async fn history(&self) -> Result<Vec<Deployment>, PersistError> {
        Ok(self.get(self.history_key()).await?.unwrap_or_default())
    }

    /// Saves the bundles applied.
    pub async fn save_history(&self, history: &[Deployment]) -> Result<(), PersistError> {
        let bytes = serde_json::to_vec(history).expect("a history serializes");
        self.put(self.history_key(), bytes).await
    }
}

/// `history` with `deployment` in front, unless it is in front already (a restart takes the
/// same bundle again), at most [`HISTORY_KEPT`] long. Whether it changed.
pub fn record(history: &mut Vec<Deployment>, deployment: &Deployment) -> bool {
    if history
        .first()
        .is_some_and(|d| d.digest == deployment.digest)
    {
        return false;
    }
    history.insert(0, deployment.clone());
    history.truncate(HISTORY_KEPT);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(digest: &str) -> Deployment {
        Deployment {
            digest: digest.to_owned(),
            revision: None,
            source: None,
            signer: "k".to_owned(),
            applied_at: "t".to_owned(),
        }
    }

    #[test]
    fn the_history_keeps_the_newest_once() {
        let mut h = vec![];
        assert!(record(&mut h, &deployment("a")));
        assert!(!record(&mut h, &deployment("a")));
        for i in 0..30 {
            record(&mut h, &deployment(&format!("d{i}")));
        }
        assert_eq!(h.len(), HISTORY_KEPT);
        assert_eq!(h[0].digest, "d29");
        // Rolling back to an older bundle is a new entry.
        assert!(record(&mut h, &deployment("d20")));
        assert_eq!(h[0].digest, "d20");
    }
}
