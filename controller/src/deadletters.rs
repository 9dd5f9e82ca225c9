//! Dead letters: the stream `ETL_DLQ_<project>` on the data plane's NATS keeps the newest
//! `--dead-letters-kept` messages of every step's dead-letter subject
//! (`etl.<project>.<pipeline>.dlq.<step>`; each message a batch envelope whose records carry
//! the transform's reason in a last `etl-error` header). An index of what the stream holds,
//! per step, is kept by reading it; a dead letter is shown by fetching its message, and
//! replayed by publishing its record again, without `etl-error`, to the step's replay subject.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{self, RawMessageErrorKind};
use etl::ops::telemetry::{DeadLetter, Replay, ReplayRequest, reason_class, replay_subject};
use etl_envelope::Batched;
use futures::StreamExt as _;
use tokio::sync::watch;

use crate::jetstream::StreamSpec;
use crate::redact;
use crate::telemetry::{Plane, Telemetry};

/// The header a step appends to a dead letter's record: the transform's reason.
pub const ERROR_HEADER: &str = "etl-error";
/// A preview's length unless asked otherwise, in bytes.
pub const PREVIEW: usize = 1024;
/// The longest preview that may be asked for.
pub const MAX_PREVIEW: usize = 1024 * 1024;
/// The stream's bound in bytes (besides its messages per subject).
pub const MAX_BYTES: i64 = 256 * 1024 * 1024;
/// The most records one replay publishes.
pub const MAX_REPLAY: usize = 10_000;
/// How long to wait before reading again after the consumer failed.
const AGAIN: Duration = Duration::from_secs(1);

/// The dead-letter stream of `project`, keeping `kept` messages per step.
pub fn stream_spec(project: &str, kept: u64) -> StreamSpec {
    StreamSpec {
        name: format!("ETL_DLQ_{project}"),
        description: format!("etl: the newest dead letters of project {project}'s steps"),
        subjects: vec![format!("etl.{project}.*.dlq.*")],
        max_age: Duration::ZERO,
        max_bytes: MAX_BYTES,
        max_messages_per_subject: i64::try_from(kept).unwrap_or(i64::MAX),
    }
}

/// A dead-letter subject's pipeline and step.
fn subject_parts(subject: &str) -> Option<(String, String)> {
    match subject.split('.').collect::<Vec<_>>()[..] {
        ["etl", _, pipeline, "dlq", step] => Some((pipeline.to_owned(), step.to_owned())),
        _ => None,
    }
}

/// Why a dead letter cannot be shown or replayed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data plane is not set up yet.
    #[error("dead letters are not available yet: the data plane's NATS is not set up")]
    NotReady,
    /// Not an id.
    #[error("`{0}` is not a dead letter's id: expected <sequence>-<index>")]
    BadId(String),
    /// Not kept (any more).
    #[error("no dead letter `{0}` is kept")]
    NotFound(String),
    /// A request that cannot be done.
    #[error("{0}")]
    BadRequest(String),
    /// The stream or NATS failed.
    #[error("the dead-letter stream: {0}")]
    Nats(String),
    /// The replay could not be recorded, so it was not made.
    #[error("{0}; nothing was replayed")]
    Audit(#[from] crate::audit::AuditError),
}

/// An id: the message's stream sequence and the record's index in its batch.
fn parse_id(id: &str) -> Result<(u64, usize), Error> {
    let bad = || Error::BadId(id.chars().take(64).collect());
    let (seq, index) = id.split_once('-').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(seq) || !digits(index) {
        return Err(bad());
    }
    Ok((
        seq.parse().map_err(|_| bad())?,
        index.parse().map_err(|_| bad())?,
    ))
}

/// Per (pipeline, step): (stream sequence, records) of each message kept, oldest first.
type Index = BTreeMap<(String, String), VecDeque<(u64, usize)>>;

/// What the stream holds, per step.
pub struct DeadLetters {
    kept: u64,
    index: Mutex<Index>,
}

impl DeadLetters {
    /// An empty index of a stream keeping `kept` messages per step.
    pub fn new(kept: u64) -> DeadLetters {
        DeadLetters {
            kept,
            index: Mutex::new(BTreeMap::new()),
        }
    }

    fn add(&self, pipeline: String, step: String, seq: u64, records: usize) {
        let mut index = self.index.lock().expect("the dead-letter index's lock");
        let messages = index.entry((pipeline, step)).or_default();
        if messages.back().is_some_and(|(last, _)| *last >= seq) {
            return;
        }
        messages.push_back((seq, records));
        while messages.len() as u64 > self.kept {
            messages.pop_front();
        }
    }

    fn forget(&self, seq: u64) {
        let mut index = self.index.lock().expect("the dead-letter index's lock");
        for messages in index.values_mut() {
            messages.retain(|(s, _)| *s != seq);
        }
    }

    /// Records kept, per (pipeline, step).
    pub fn kept(&self) -> BTreeMap<(String, String), u64> {
        let index = self.index.lock().expect("the dead-letter index's lock");
        index
            .iter()
            .map(|(k, messages)| (k.clone(), messages.iter().map(|(_, n)| *n as u64).sum()))
            .collect()
    }

    /// Messages kept of `pipeline` (all when none) and `step` (all when none), newest first:
    /// (sequence, pipeline, step, records).
    fn messages(
        &self,
        pipeline: Option<&str>,
        step: Option<&str>,
    ) -> Vec<(u64, String, String, usize)> {
        let index = self.index.lock().expect("the dead-letter index's lock");
        let mut all: Vec<(u64, String, String, usize)> = index
            .iter()
            .filter(|((p, s), _)| {
                pipeline.is_none_or(|want| want == p) && step.is_none_or(|want| want == s)
            })
            .flat_map(|((p, s), messages)| {
                messages
                    .iter()
                    .map(|(seq, n)| (*seq, p.clone(), s.clone(), *n))
            })
            .collect();
        all.sort_unstable_by_key(|m| std::cmp::Reverse(m.0));
        all
    }
}

/// Keeps `telemetry`'s index of `stream` (the dead letters of `project`) until `stop`.
pub async fn index(
    telemetry: Arc<Telemetry>,
    stream: stream::Stream,
    project: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut next = 1;
    loop {
        let config = pull::OrderedConfig {
            filter_subject: format!("etl.{project}.*.dlq.*"),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: next,
            },
            ..Default::default()
        };
        let messages = match stream.create_consumer(config).await {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match messages {
            Ok(mut messages) => loop {
                let message = tokio::select! {
                    message = messages.next() => message,
                    () = crate::telemetry::stopped(&mut stop) => return,
                };
                let message = match message {
                    Some(Ok(message)) => message,
                    Some(Err(e)) => {
                        tracing::debug!("reading dead letters: {e}");
                        break;
                    }
                    None => break,
                };
                let Ok(info) = message.info() else {
                    continue;
                };
                let seq = info.stream_sequence;
                next = seq + 1;
                let Some((pipeline, step)) = subject_parts(&message.subject) else {
                    continue;
                };
                match etl_envelope::decode_batch(&message.payload) {
                    Ok(records) => telemetry
                        .dead_letters
                        .add(pipeline, step, seq, records.len()),
                    Err(e) => tracing::warn!(
                        subject = %message.subject,
                        seq,
                        "a dead-letter message that is no etl envelope: {e}"
                    ),
                }
            },
            Err(e) => tracing::warn!("reading dead letters: {e}"),
        }
        if crate::telemetry::pause(&mut stop, AGAIN).await {
            return;
        }
    }
}

/// The message of stream sequence `seq`, when the stream still has it.
async fn fetch(plane: &Plane, seq: u64) -> Result<Option<StreamMessage>, Error> {
    match plane.dead_letters.get_raw_message(seq).await {
        Ok(message) => Ok(Some(message)),
        Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(Error::Nats(e.to_string())),
    }
}

/// A record's reason (its last `etl-error` header) and its other headers.
fn reason(record: &etl_envelope::Envelope) -> (String, Vec<(String, String)>) {
    let reason = record
        .headers
        .iter()
        .rev()
        .find(|(name, _)| name == ERROR_HEADER)
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let headers = record
        .headers
        .iter()
        .filter(|(name, _)| name != ERROR_HEADER)
        .cloned()
        .collect();
    (reason, headers)
}

/// The dead letter of record `index` of `message`, with a preview of at most `preview` bytes.
fn dead_letter(
    message: &StreamMessage,
    index: usize,
    record: &etl_envelope::Envelope,
    preview: usize,
) -> Option<DeadLetter> {
    let (pipeline, step) = subject_parts(&message.subject)?;
    let (reason, headers) = reason(record);
    let (preview, truncated) = redact::truncate(redact::payload(&record.payload), preview);
    Some(DeadLetter {
        id: format!("{}-{index}", message.sequence),
        pipeline,
        step,
        class: reason_class(&reason),
        reason,
        at: message
            .time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        input_digest: etl::util::digest::sha256(&record.payload),
        size: record.payload.len() as u64,
        preview,
        truncated,
        headers: redact::headers(&headers),
        key: record
            .key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
    })
}

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// This pipeline's only.
    pub pipeline: Option<String>,
    /// This step's only.
    pub step: Option<String>,
    /// At most this many.
    pub limit: usize,
    /// Preview length.
    pub preview: usize,
}

/// The dead letters kept that `query` asks for, newest first.
pub async fn list(telemetry: &Telemetry, query: &Query) -> Result<Vec<DeadLetter>, Error> {
    let plane = telemetry.plane().ok_or(Error::NotReady)?;
    let mut out = Vec::new();
    let messages = telemetry
        .dead_letters
        .messages(query.pipeline.as_deref(), query.step.as_deref());
    for (seq, ..) in messages {
        if out.len() >= query.limit {
            break;
        }
        let Some(message) = fetch(plane, seq).await? else {
            telemetry.dead_letters.forget(seq);
            continue;
        };
        let Ok(records) = etl_envelope::decode_batch(&message.payload) else {
            continue;
        };
        for (index, record) in records.iter().enumerate().rev() {
            if out.len() >= query.limit {
                break;
            }
            out.extend(dead_letter(
                &message,
                index,
                &record.envelope,
                query.preview,
            ));
        }
    }
    Ok(out)
}

/// The dead letter `id`, with a preview of at most `preview` bytes.
pub async fn show(telemetry: &Telemetry, id: &str, preview: usize) -> Result<DeadLetter, Error> {
    let plane = telemetry.plane().ok_or(Error::NotReady)?;
    let (seq, index) = parse_id(id)?;
    let not_found = || Error::NotFound(id.to_owned());
    let message = fetch(plane, seq).await?.ok_or_else(not_found)?;
    let records = etl_envelope::decode_batch(&message.payload).map_err(|_| not_found())?;
    let record = records.get(index).ok_or_else(not_found)?;
    dead_letter(&message, index, &record.envelope, preview).ok_or_else(not_found)
}

/// Who asks for a replay, as the API knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The first 12 hex digits of the SHA-256 of the token they presented, or `none`.
    pub credential: String,
    /// Their address.
    pub remote: String,
}

/// The records `request` names, by id: (id, pipeline, step, record).
async fn resolve(
    telemetry: &Telemetry,
    plane: &Plane,
    request: &ReplayRequest,
) -> Result<
    (
        Vec<(String, String, String, etl_envelope::Envelope)>,
        Vec<String>,
    ),
    Error,
> {
    let wanted: Vec<(u64, Option<usize>)> = if request.ids.is_empty() {
        let Some(pipeline) = request.pipeline.as_deref() else {
            return Err(Error::BadRequest(
                "name the dead letters to replay: `ids`, or `pipeline` (and `step`)".to_owned(),
            ));
        };
        telemetry
            .dead_letters
            .messages(Some(pipeline), request.step.as_deref())
            .into_iter()
            .rev()
            .map(|(seq, ..)| (seq, None))
            .collect()
    } else {
        request
            .ids
            .iter()
            .map(|id| parse_id(id).map(|(seq, index)| (seq, Some(index))))
            .collect::<Result<_, _>>()?
    };
    let mut found = Vec::new();
    let mut missing = Vec::new();
    // Each message fetched once: its pipeline, step and records, when kept (and of the
    // pipeline and step asked for).
    let mut messages: BTreeMap<u64, Option<(String, String, Vec<Batched>)>> = BTreeMap::new();
    for (seq, index) in wanted {
        if let std::collections::btree_map::Entry::Vacant(entry) = messages.entry(seq) {
            let kept = fetch(plane, seq).await?.and_then(|m| {
                let (pipeline, step) = subject_parts(&m.subject)?;
                let asked = request.pipeline.as_deref().is_none_or(|p| p == pipeline)
                    && request.step.as_deref().is_none_or(|s| s == step);
                let records = etl_envelope::decode_batch(&m.payload).ok()?;
                asked.then_some((pipeline, step, records))
            });
            entry.insert(kept);
        }
        let Some(Some((pipeline, step, records))) = messages.get(&seq) else {
            if let Some(index) = index {
                missing.push(format!("{seq}-{index}"));
            }
            continue;
        };
        let indices: Vec<usize> = match index {
            Some(i) => vec![i],
            None => (0..records.len()).collect(),
        };
        for i in indices {
            match records.get(i) {
                Some(record) => found.push((
                    format!("{seq}-{i}"),
                    pipeline.clone(),
                    step.clone(),
                    record.envelope.clone(),
                )),
                None => missing.push(format!("{seq}-{i}")),
            }
        }
        if found.len() > MAX_REPLAY {
            return Err(Error::BadRequest(format!(
                "more than {MAX_REPLAY} dead letters: replay them in parts (by `ids`)"
            )));
        }
    }
    Ok((found, missing))
}

/// Replays what `request` names for `caller`: each record, without its `etl-error` header, to
/// its step's replay subject, several records of one step in one batch envelope (as large as
/// the server's payload limit allows). Recorded in the audit first: a replay that cannot be
/// recorded is not made.
pub async fn replay(
    telemetry: &Telemetry,
    request: &ReplayRequest,
    caller: &Caller,
) -> Result<Replay, Error> {
    let plane = telemetry.plane().ok_or(Error::NotReady)?;
    let actor = request.actor.trim();
    if actor.is_empty() || actor.len() > 200 || actor.chars().any(char::is_control) {
        return Err(Error::BadRequest(
            "`actor` must say who asks (e.g. user@host): 1–200 printable characters".to_owned(),
        ));
    }
    let (found, mut missing) = resolve(telemetry, plane, request).await?;
    let facts = telemetry.taken().map(|t| t.facts.clone());
    let replay_to = |pipeline: &str, step: &str| -> Option<String> {
        let facts = facts.as_ref()?;
        let node = facts
            .pipelines
            .iter()
            .find(|p| p.name == pipeline)?
            .nodes
            .iter()
            .find(|n| n.name == step && n.kind == etl::ops::telemetry::NodeKind::Step)?;
        Some(
            node.replay
                .clone()
                .unwrap_or_else(|| replay_subject(&plane.project, pipeline, step)),
        )
    };
    let mut by_subject: BTreeMap<String, Vec<etl_envelope::Envelope>> = BTreeMap::new();
    let mut replayed = Vec::new();
    for (id, pipeline, step, mut record) in found {
        let Some(subject) = replay_to(&pipeline, &step) else {
            // The bundle applied has no such step: nothing listens.
            missing.push(id);
            continue;
        };
        record.headers.retain(|(name, _)| name != ERROR_HEADER);
        by_subject.entry(subject.clone()).or_default().push(record);
        replayed.push((id, subject));
    }
    let now = crate::telemetry::now();
    let done = Replay {
        actor: actor.to_owned(),
        credential: caller.credential.clone(),
        remote: caller.remote.clone(),
        at: crate::status::now(),
        replayed,
        missing,
    };
    plane.audit.record(&done, now.as_nanos()).await?;
    let max = plane.nats.server_info().max_payload.max(1024);
    for (subject, records) in by_subject {
        for batch in batches(records, max) {
            plane
                .nats
                .publish(subject.clone(), etl_envelope::encode_batch(&batch).into())
                .await
                .map_err(|e| Error::Nats(format!("publishing to `{subject}`: {e}")))?;
        }
    }
    plane
        .nats
        .flush()
        .await
        .map_err(|e| Error::Nats(format!("flushing the replay: {e}")))?;
    Ok(done)
}

/// `records` as batches of at most `max` bytes each (a record larger alone is a batch of its
/// own), each record's origin its index in its batch.
fn batches(records: Vec<etl_envelope::Envelope>, max: usize) -> Vec<Vec<Batched>> {
    // The version byte and the longest record count.
    const HEAD: usize = 1 + 5;
    let mut out: Vec<Vec<Batched>> = Vec::new();
    let mut size = HEAD;
    for envelope in records {
        let mut b = Batched {
            origin: 0,
            envelope,
        };
        let len = etl_envelope::batched_len(&b);
        match out.last_mut() {
            Some(batch) if size + len <= max => {
                b.origin = u32::try_from(batch.len()).unwrap_or(u32::MAX);
                size += len;
                batch.push(b);
            }
            _ => {
                size = HEAD + len;
                out.push(vec![b]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_subjects() {
        assert_eq!(parse_id("12-3").unwrap(), (12, 3));
        for bad in [
            "12",
            "-3",
            "12-",
            "a-1",
            "1-2-3",
            "+1-2",
            "99999999999999999999999-0",
        ] {
            assert!(matches!(parse_id(bad), Err(Error::BadId(_))), "{bad}");
        }
        assert_eq!(
            subject_parts("etl.p.pipe.dlq.parse"),
            Some(("pipe".to_owned(), "parse".to_owned()))
        );
        assert_eq!(subject_parts("etl.p.pipe.report.parse.dev"), None);
    }

    #[test]
    fn the_index_keeps_the_newest_per_step() {
        let d = DeadLetters::new(2);
        for seq in 1..=5 {
            d.add("pipe".into(), "parse".into(), seq, 2);
        }
        d.add("pipe".into(), "enrich".into(), 6, 1);
        d.add("pipe".into(), "enrich".into(), 6, 1);
        assert_eq!(d.kept()[&("pipe".to_owned(), "parse".to_owned())], 4);
        let all: Vec<u64> = d.messages(None, None).iter().map(|m| m.0).collect();
        assert_eq!(all, [6, 5, 4]);
        let parse: Vec<u64> = d
            .messages(Some("pipe"), Some("parse"))
            .iter()
            .map(|m| m.0)
            .collect();
        assert_eq!(parse, [5, 4]);
        d.forget(5);
        assert_eq!(d.kept()[&("pipe".to_owned(), "parse".to_owned())], 2);
    }

    #[test]
    fn batches_stay_under_the_payload_limit() {
        let record = |n: usize| etl_envelope::Envelope {
            payload: vec![b'x'; n],
            ..Default::default()
        };
        let out = batches(
            vec![record(400), record(400), record(400), record(5000)],
            1000,
        );
        let sizes: Vec<usize> = out.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1, 1]);
        assert_eq!(out[0][1].origin, 1);
        for batch in &out[..2] {
            assert!(etl_envelope::batch_len(batch) <= 1000);
        }
    }
}
