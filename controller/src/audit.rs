//! The replay audit: every replay of dead letters — who asked (as they said), with which
//! credential, from where, when, which dead letters to which subjects — in the key-value bucket
//! [`BUCKET`] on the data plane's NATS, written before anything is published, and in the log.
//!
//! A replay is kept [`KEPT_FOR`] (90 days), and the bucket at most [`MAX_BYTES`]: when it is
//! full the oldest entries go first, so that a full audit never refuses every replay after it.
//! Each is one entry, key `<project>.<environment>.<nanoseconds>.<part>`, the ids grouped under
//! the subject they went to (each subject once); a replay too large for one NATS message is
//! recorded in several parts (`.0`, `.1`, …), read back as one.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use etl::ops::telemetry::Replay;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::jetstream::{BucketSpec, Error, bucket};

/// The bucket.
pub const BUCKET: &str = "etl-controller-audit";
/// How long a replay's record is kept.
pub const KEPT_FOR: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// The bucket's bound: beyond it, the oldest records go.
pub const MAX_BYTES: i64 = 64 * 1024 * 1024;
/// The format of a record (`v`).
const VERSION: u32 = 2;

/// Why the audit cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[error("the replay audit ({BUCKET}): {0}")]
pub struct AuditError(String);

/// A replay as recorded: [`Replay`] with its ids grouped by the subject they went to, or one
/// part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    v: u32,
    actor: String,
    credential: String,
    remote: String,
    at: String,
    /// Each subject once, with the ids replayed to it, in the order they were.
    replayed: Vec<(String, Vec<String>)>,
    #[serde(default)]
    missing: Vec<String>,
    /// This part's index, and how many the replay has.
    part: u32,
    parts: u32,
}

/// An entry as read: this format, or the first (one [`Replay`] per entry).
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Record(Record),
    Replay(Replay),
}

/// The most bytes one record may take for a server whose payload limit is `max_payload`: room
/// is left for the message's headers.
fn record_limit(max_payload: usize) -> usize {
    max_payload.saturating_sub(1024).max(max_payload / 2)
}

/// The bytes `value` takes in a JSON array, with its comma.
fn json_len(value: &str) -> usize {
    serde_json::to_string(value).map_or(value.len() * 6 + 2, |s| s.len()) + 1
}

/// `replay` as records of at most `limit` bytes each (a record holds one id at least).
fn split(replay: &Replay, limit: usize) -> Vec<Record> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (id, subject) in &replay.replayed {
        match groups.iter_mut().find(|(s, _)| s == subject) {
            Some((_, ids)) => ids.push(id.clone()),
            None => groups.push((subject.clone(), vec![id.clone()])),
        }
    }
    let empty = Record {
        v: VERSION,
        actor: replay.actor.clone(),
        credential: replay.credential.clone(),
        remote: replay.remote.clone(),
        at: replay.at.clone(),
        replayed: Vec::new(),
        missing: Vec::new(),
        part: 0,
        parts: 0,
    };
    // The record without ids, and room for its part numbers.
    let base = serde_json::to_vec(&empty).map_or(1024, |b| b.len()) + 24;
    let mut records = vec![empty.clone()];
    let mut size = base;
    let room = |size: &mut usize, records: &mut Vec<Record>, needs: usize| {
        let current = records.last().expect("one record at least");
        let holds = !current.replayed.is_empty() || !current.missing.is_empty();
        if holds && *size + needs > limit {
            records.push(empty.clone());
            *size = base;
        }
    };
    for (subject, ids) in groups {
        for id in ids {
            let open = records
                .last()
                .and_then(|r| r.replayed.last())
                .is_some_and(|(s, _)| *s == subject);
            // `["subject",[` … `]],` around the first id of a group.
            let group = json_len(&subject) + 4;
            room(
                &mut size,
                &mut records,
                json_len(&id) + if open { 0 } else { group },
            );
            let current = records.last_mut().expect("one record at least");
            match current.replayed.last_mut() {
                Some((s, ids)) if *s == subject => {
                    size += json_len(&id);
                    ids.push(id);
                }
                _ => {
                    size += group + json_len(&id);
                    current.replayed.push((subject.clone(), vec![id]));
                }
            }
        }
    }
    for id in &replay.missing {
        room(&mut size, &mut records, json_len(id));
        size += json_len(id);
        records
            .last_mut()
            .expect("one record at least")
            .missing
            .push(id.clone());
    }
    let parts = u32::try_from(records.len()).unwrap_or(u32::MAX);
    for (i, record) in records.iter_mut().enumerate() {
        record.part = u32::try_from(i).unwrap_or(u32::MAX);
        record.parts = parts;
    }
    records
}

/// The replay of `records`, the parts of one (in order).
fn join(records: Vec<Record>) -> Option<Replay> {
    let first = records.first()?.clone();
    let mut replay = Replay {
        actor: first.actor,
        credential: first.credential,
        remote: first.remote,
        at: first.at,
        replayed: Vec::new(),
        missing: Vec::new(),
    };
    for record in records {
        for (subject, ids) in record.replayed {
            replay
                .replayed
                .extend(ids.into_iter().map(|id| (id, subject.clone())));
        }
        replay.missing.extend(record.missing);
    }
    Some(replay)
}

/// One environment's replay audit.
#[derive(Clone)]
pub struct Audit {
    store: kv::Store,
    prefix: String,
}

impl Audit {
    /// Opens (or creates) the bucket for `project`'s `environment`; a bucket made before
    /// records were kept [`KEPT_FOR`] is updated.
    pub async fn open(
        js: &jetstream::Context,
        project: &str,
        environment: &str,
    ) -> Result<Audit, Error> {
        let store = bucket(
            js,
            &BucketSpec {
                name: BUCKET.to_owned(),
                description: "etl-controller: who replayed which dead letters, per environment"
                    .to_owned(),
                max_bytes: MAX_BYTES,
                max_age: KEPT_FOR,
                discard_old: true,
            },
        )
        .await?;
        Ok(Audit {
            store,
            prefix: format!("{project}.{environment}."),
        })
    }

    /// Records `replay`, made at `nanos` (since the epoch), in records of at most what a
    /// server with payload limit `max_payload` takes, and logs it.
    pub async fn record(
        &self,
        replay: &Replay,
        nanos: u128,
        max_payload: usize,
    ) -> Result<(), AuditError> {
        let records = split(replay, record_limit(max_payload));
        let bytes = |record: &Record| -> Result<bytes::Bytes, AuditError> {
            serde_json::to_vec(record)
                .map(Into::into)
                .map_err(|e| AuditError(e.to_string()))
        };
        let key = |at: u128, part: usize| format!("{}{at:020}.{part}", self.prefix);
        let mut at = nanos;
        // Keys sort by time; the first part takes it, and two replays in one nanosecond take
        // the next.
        let first = bytes(&records[0])?;
        loop {
            match self.store.create(key(at, 0), first.clone()).await {
                Ok(_) => break,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => at += 1,
                Err(e) => return Err(AuditError(e.to_string())),
            }
        }
        for (part, record) in records.iter().enumerate().skip(1) {
            self.store
                .create(key(at, part), bytes(record)?)
                .await
                .map_err(|e| AuditError(format!("part {part} of {}: {e}", records.len())))?;
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
        // By time: the keys of each replay's parts (one key without a part: the first format).
        let mut replays: BTreeMap<u128, Vec<(u32, String)>> = BTreeMap::new();
        let mut listing = self
            .store
            .keys()
            .await
            .map_err(|e| AuditError(e.to_string()))?;
        while let Some(key) = listing.next().await {
            let key = key.map_err(|e| AuditError(e.to_string()))?;
            let Some(rest) = key.strip_prefix(&self.prefix) else {
                continue;
            };
            let (at, part) = rest.split_once('.').unwrap_or((rest, "0"));
            if let (Ok(at), Ok(part)) = (at.parse::<u128>(), part.parse::<u32>()) {
                replays.entry(at).or_default().push((part, key));
            }
        }
        let mut out = Vec::new();
        for (_, mut keys) in replays.into_iter().rev().take(limit) {
            keys.sort_unstable();
            let mut records = Vec::new();
            let mut plain = None;
            for (_, key) in keys {
                match self.store.get(&key).await {
                    Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                        Ok(Stored::Record(record)) => records.push(record),
                        Ok(Stored::Replay(replay)) => plain = Some(replay),
                        Err(e) => tracing::warn!(bucket = BUCKET, key, "an unreadable entry: {e}"),
                    },
                    // Gone meanwhile (by age, or to make room).
                    Ok(None) => {}
                    Err(e) => return Err(AuditError(e.to_string())),
                }
            }
            out.extend(plain.or_else(|| join(records)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(ids: usize) -> Replay {
        Replay {
            actor: "ann@laptop".to_owned(),
            credential: "0123456789ab".to_owned(),
            remote: "127.0.0.1:5555".to_owned(),
            at: "2026-12-07T14:00:00Z".to_owned(),
            replayed: (0..ids)
                .map(|i| {
                    let step = if i % 3 == 0 { "parse" } else { "enrich" };
                    (
                        format!("{}-{}", 1000 + i / 4, i % 4),
                        format!("etl.p.pipe.replay.{step}"),
                    )
                })
                .collect(),
            missing: (0..ids / 10).map(|i| format!("{i}-0")).collect(),
        }
    }

    #[test]
    fn a_replay_is_recorded_with_each_subject_once() {
        let r = replay(9);
        let records = split(&r, record_limit(1024 * 1024));
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0]
                .replayed
                .iter()
                .map(|(s, ids)| (s.as_str(), ids.len()))
                .collect::<Vec<_>>(),
            [
                ("etl.p.pipe.replay.parse", 3),
                ("etl.p.pipe.replay.enrich", 6)
            ]
        );
        let json = serde_json::to_string(&records[0]).unwrap();
        assert_eq!(json.matches("etl.p.pipe.replay.enrich").count(), 1);
        // Read back: the same ids to the same subjects, grouped by subject.
        let back = join(records).unwrap();
        let mut want = r.replayed.clone();
        want.sort_by(|a, b| b.1.cmp(&a.1).then(std::cmp::Ordering::Equal));
        let mut got = back.replayed.clone();
        got.sort_by(|a, b| b.1.cmp(&a.1));
        assert_eq!(got, want);
        assert_eq!(back.missing, r.missing);
        assert_eq!(back.actor, r.actor);
    }

    #[test]
    fn a_large_replay_is_recorded_in_parts_under_the_payload_limit() {
        let r = replay(10_000);
        let max_payload = 64 * 1024;
        let limit = record_limit(max_payload);
        let records = split(&r, limit);
        assert!(records.len() > 1, "{}", records.len());
        for (i, record) in records.iter().enumerate() {
            let len = serde_json::to_vec(record).unwrap().len();
            assert!(len <= limit, "part {i}: {len} > {limit}");
            // Not much wasted either.
            if i + 1 < records.len() {
                assert!(len > limit - 200, "part {i}: {len}");
            }
            assert_eq!(
                (record.part as usize, record.parts as usize),
                (i, records.len())
            );
        }
        let back = join(records).unwrap();
        let mut want = r.replayed.clone();
        want.sort();
        let mut got = back.replayed;
        got.sort();
        assert_eq!(got, want);
        assert_eq!(back.missing, r.missing);
    }

    #[test]
    fn both_formats_read() {
        let r = replay(2);
        let first: Stored = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert!(matches!(first, Stored::Replay(ref x) if *x == r));
        let record = &split(&r, 4096)[0];
        let second: Stored = serde_json::from_slice(&serde_json::to_vec(record).unwrap()).unwrap();
        assert!(matches!(second, Stored::Record(ref x) if x == record));
        let empty = Replay {
            replayed: vec![],
            missing: vec![],
            ..r
        };
        assert_eq!(join(split(&empty, 4096)).unwrap(), empty);
    }
}
