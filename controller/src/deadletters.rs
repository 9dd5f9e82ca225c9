//! Dead letters: the stream `ETL_DLQ_<project>` on the data plane's NATS keeps the newest
//! `--dead-letters-kept` messages of every step's dead-letter subject
//! (`etl.<project>.<pipeline>.dlq.<step>`; each message a batch envelope whose records carry
//! the transform's reason in a last `etl-error` header). An index of what the stream holds,
//! per step, is kept by reading it (and checked against the stream's state every
//! [`RECONCILE`]; a stream made anew is indexed anew); a dead letter is shown by fetching its
//! message, and replayed by publishing its record again, without `etl-error`, to the step's
//! replay subject.

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

use crate::jetstream::{Checked, Ensured, STREAM_CHECK, StreamSpec, check, ensure_stream};
use crate::redact;
use crate::telemetry::{Plane, Telemetry, lock};

/// The header a step appends to a dead letter's record: the transform's reason.
pub const ERROR_HEADER: &str = "etl-error";
/// A preview's length unless asked otherwise, in bytes.
pub const PREVIEW: usize = 1024;
/// The longest preview that may be asked for (a longer one is cut to it).
pub const MAX_PREVIEW: usize = 16 * 1024;
/// The stream's bound in bytes (besides its messages per subject).
pub const MAX_BYTES: i64 = 256 * 1024 * 1024;
/// The most records one replay publishes.
pub const MAX_REPLAY: usize = 10_000;
/// How long to wait before reading again after the consumer failed.
const AGAIN: Duration = Duration::from_secs(1);
/// How often the index is checked against the stream's state (one request): what the stream
/// dropped besides its messages per subject (by size, a purge, a deletion) leaves the index.
pub const RECONCILE: Duration = Duration::from_secs(60);

/// The dead-letter stream of `project`, keeping `kept` messages per step.
pub fn stream_spec(project: &str, kept: u64) -> StreamSpec {
    StreamSpec {
        name: format!("ETL_DLQ_{project}"),
        description: format!("etl: the newest dead letters of project {project}'s steps"),
        subjects: vec![filter(project)],
        max_age: Duration::ZERO,
        max_bytes: MAX_BYTES,
        max_messages_per_subject: i64::try_from(kept).unwrap_or(i64::MAX),
    }
}

/// The dead-letter subjects of `project`.
pub fn filter(project: &str) -> String {
    format!("etl.{project}.*.dlq.*")
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
        let mut index = crate::telemetry::lock(&self.index);
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
        let mut index = lock(&self.index);
        for messages in index.values_mut() {
            messages.retain(|(s, _)| *s != seq);
        }
    }

    /// Forgets everything (the stream was made anew).
    fn reset(&self) {
        lock(&self.index).clear();
    }

    /// Makes the index agree with the stream's state when it held sequences `first..=last`
    /// and `counts` messages per (pipeline, step): messages below `first` are gone, and of a
    /// step's messages up to `last`, only its newest `counts` can still be there. Messages
    /// indexed after `last` (since the state was asked) stay.
    fn reconcile(&self, first: u64, last: u64, counts: &BTreeMap<(String, String), u64>) {
        let mut index = lock(&self.index);
        for (step, messages) in index.iter_mut() {
            messages.retain(|(seq, _)| *seq >= first);
            let held = counts.get(step).copied().unwrap_or_default();
            let known = messages.iter().filter(|(seq, _)| *seq <= last).count() as u64;
            for _ in held..known {
                messages.pop_front();
            }
        }
        index.retain(|_, messages| !messages.is_empty());
    }

    /// Records kept, per (pipeline, step).
    pub fn kept(&self) -> BTreeMap<(String, String), u64> {
        let index = crate::telemetry::lock(&self.index);
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
        let index = crate::telemetry::lock(&self.index);
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

/// What the stream is: when it was created (RFC 3339), and its last sequence.
async fn state(stream: &mut stream::Stream) -> Option<(String, u64)> {
    match stream.info().await {
        Ok(info) => Some((crate::jetstream::created(info), info.state.last_sequence)),
        Err(e) => {
            tracing::debug!("the dead-letter stream's state: {e}");
            None
        }
    }
}

/// Checks the index against the stream's state ([`DeadLetters::reconcile`]); whether the
/// stream is still the one created at `created`.
async fn reconcile(
    telemetry: &Telemetry,
    stream: &stream::Stream,
    filter: &str,
    created: Option<&str>,
) -> bool {
    let mut info = match stream.info_with_subjects(filter).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!("the dead-letter stream's state: {e}");
            return true;
        }
    };
    let now = crate::jetstream::created(&info.info);
    if created.is_some_and(|c| c != now) {
        return false;
    }
    let (first, last) = (
        info.info.state.first_sequence,
        info.info.state.last_sequence,
    );
    let mut counts = BTreeMap::new();
    while let Some(subject) = info.next().await {
        match subject {
            Ok((subject, n)) => {
                if let Some(step) = subject_parts(&subject) {
                    counts.insert(step, n as u64);
                }
            }
            Err(e) => {
                tracing::debug!("the dead-letter stream's subjects: {e}");
                return true;
            }
        }
    }
    telemetry.dead_letters.reconcile(first, last, &counts);
    true
}

/// Keeps `telemetry`'s index of `stream` (the dead letters of `project`) until `stop`. When the
/// stream cannot be read (it was deleted, say) it is made again (from `js` and `spec`); a
/// stream made anew is indexed from its start.
pub async fn index(
    telemetry: Arc<Telemetry>,
    js: async_nats::jetstream::Context,
    spec: StreamSpec,
    mut stream: stream::Stream,
    project: String,
    mut stop: watch::Receiver<bool>,
) {
    let filter = filter(&project);
    let mut next: u64 = 1;
    let mut created: Option<String> = None;
    let mut said = String::new();
    loop {
        if let Some((now, last)) = state(&mut stream).await {
            // Made anew: another creation time, or it ends before what was indexed.
            if created.as_ref().is_some_and(|c| *c != now) || last.saturating_add(1) < next {
                tracing::warn!(
                    stream = %spec.name,
                    "the dead-letter stream is not the one indexed (made anew): indexing it \
                     from its start"
                );
                telemetry.dead_letters.reset();
                next = 1;
            }
            created = Some(now);
        }
        let config = pull::OrderedConfig {
            filter_subject: filter.clone(),
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
            Ok(mut messages) => {
                said.clear();
                let mut checking = crate::telemetry::every(STREAM_CHECK);
                let mut reconciling = crate::telemetry::every(RECONCILE);
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        _ = checking.tick() => match check(&mut stream).await {
                            // Deleted, or made anew: read again, from the check above.
                            Checked::Gone => break,
                            Checked::Created(now) if created.as_ref().is_some_and(|c| *c != now) => {
                                break;
                            }
                            Checked::Created(_) | Checked::Unknown => continue,
                        },
                        _ = reconciling.tick() => {
                            if reconcile(&telemetry, &stream, &filter, created.as_deref()).await {
                                continue;
                            }
                            // Made anew: read again, from the check above.
                            break;
                        }
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
                    if seq < next {
                        // Sequences went backwards: the stream was made anew.
                        telemetry.dead_letters.reset();
                    }
                    next = seq.saturating_add(1);
                    let Some((pipeline, step)) = subject_parts(&message.subject) else {
                        continue;
                    };
                    match etl_envelope::decode_batch(&message.payload) {
                        Ok(records) => {
                            telemetry
                                .dead_letters
                                .add(pipeline, step, seq, records.len());
                        }
                        Err(e) => tracing::warn!(
                            subject = %message.subject,
                            seq,
                            "a dead-letter message that is no etl envelope: {e}"
                        ),
                    }
                }
            }
            Err(e) => {
                if e != said {
                    tracing::warn!("reading dead letters from {}: {e}", spec.name);
                    said = e;
                }
                // The stream may be gone: made again, rather than failing every second.
                match ensure_stream(&js, &spec).await {
                    Ok((made, ensured)) => {
                        if ensured != Ensured::Unchanged {
                            crate::telemetry::log_ensured(&spec.name, ensured);
                        }
                        stream = made;
                    }
                    Err(e) => tracing::debug!("{e}"),
                }
            }
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
    let (preview, truncated) = redact::payload(&record.payload, preview);
    Some(DeadLetter {
        id: format!("{}-{index}", message.sequence),
        pipeline,
        step,
        class: reason_class(&reason),
        reason: redact::short(&reason, redact::MAX_REASON).0,
        at: message
            .time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        input_digest: etl::util::digest::sha256(&record.payload),
        size: record.payload.len() as u64,
        preview,
        truncated,
        headers: redact::headers(&headers),
        key: record.key.as_ref().map(|k| {
            // A few bytes more than shown: a character cut at the end is decoded whole.
            let k = &k[..k.len().min(redact::MAX_KEY + 4)];
            redact::short(&String::from_utf8_lossy(k), redact::MAX_KEY).0
        }),
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
        // Each id once (`7-0` and `07-0` are one), in the order asked.
        let mut seen = std::collections::BTreeSet::new();
        let mut wanted = Vec::new();
        for id in &request.ids {
            let (seq, index) = parse_id(id)?;
            if seen.insert((seq, index)) {
                wanted.push((seq, Some(index)));
            }
        }
        wanted
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
    let max = plane.nats.server_info().max_payload.max(1024);
    plane.audit.record(&done, now.as_nanos(), max).await?;
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
        // Measured with the origin it gets: an origin of 128 and more takes more bytes.
        let mut b = Batched {
            origin: out
                .last()
                .map_or(0, |batch| u32::try_from(batch.len()).unwrap_or(u32::MAX)),
            envelope,
        };
        let len = etl_envelope::batched_len(&b);
        match out.last_mut() {
            Some(batch) if size.saturating_add(len) <= max => {
                size += len;
                batch.push(b);
            }
            _ => {
                b.origin = 0;
                size = HEAD + etl_envelope::batched_len(&b);
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

    #[test]
    fn batches_of_more_than_128_records_stay_under_the_limit() {
        let record = |i: usize| etl_envelope::Envelope {
            payload: format!("record {i:04}").into_bytes(),
            ..Default::default()
        };
        // The limit: exactly what 200 records take with their origins, whose varints grow to
        // two bytes from 128 on.
        let exact: Vec<Batched> = (0..200)
            .map(|i| Batched {
                origin: i as u32,
                envelope: record(i),
            })
            .collect();
        let max = etl_envelope::encode_batch(&exact).len();
        let out = batches((0..500).map(record).collect(), max);
        assert!(out[0].len() > 190, "{}", out[0].len());
        for batch in &out {
            let encoded = etl_envelope::encode_batch(batch);
            assert!(encoded.len() <= max, "{} > {max}", encoded.len());
            assert_eq!(etl_envelope::decode_batch(&encoded).unwrap(), *batch);
            for (i, b) in batch.iter().enumerate() {
                assert_eq!(b.origin as usize, i);
            }
        }
        assert_eq!(out.iter().map(Vec::len).sum::<usize>(), 500);
    }

    #[test]
    fn the_index_is_reset_and_reconciled_with_the_stream() {
        let d = DeadLetters::new(10);
        let step = |s: &str| ("pipe".to_owned(), s.to_owned());
        for seq in 1..=6 {
            d.add("pipe".into(), "parse".into(), seq, 1);
        }
        d.add("pipe".into(), "enrich".into(), 7, 2);
        d.add("pipe".into(), "enrich".into(), 8, 2);
        // The stream, as asked when it held 3..=7: parse's 3, 5 and 6 (4 was deleted; 1 and 2
        // dropped by size), enrich's 7; 8 came after it was asked.
        let counts = BTreeMap::from([(step("parse"), 3), (step("enrich"), 1)]);
        d.reconcile(3, 7, &counts);
        let kept = d.kept();
        assert_eq!(kept[&step("parse")], 3, "the newest 3 at or after 3");
        assert_eq!(kept[&step("enrich")], 4, "7 and 8 kept");
        // A step the stream holds nothing of any more is gone.
        d.reconcile(3, 8, &BTreeMap::from([(step("enrich"), 2)]));
        assert!(!d.kept().contains_key(&step("parse")));
        d.reset();
        assert!(d.kept().is_empty());
    }

    #[test]
    fn dead_letters_show_their_reason_key_and_headers_redacted_and_cut() {
        let record = etl_envelope::Envelope {
            key: Some(format!("api_key=k-123 {}", "k".repeat(1000)).into_bytes()),
            payload: b"password=hunter2&n=1".to_vec(),
            headers: vec![
                ("x-note".to_owned(), "token=t-456".to_owned()),
                (
                    ERROR_HEADER.to_owned(),
                    format!("bad token: Bearer abc.def {}", "r".repeat(5000)),
                ),
            ],
            traceparent: None,
            id: None,
        };
        let message = StreamMessage {
            subject: "etl.p.pipe.dlq.parse".into(),
            sequence: 4,
            headers: async_nats::HeaderMap::new(),
            payload: etl_envelope::encode_batch(&[]).into(),
            time: time::OffsetDateTime::UNIX_EPOCH,
        };
        let d = dead_letter(&message, 0, &record, 1024).unwrap();
        assert_eq!(d.id, "4-0");
        assert_eq!(d.class, "bad_token");
        assert!(
            d.reason.starts_with("bad token: Bearer [redacted] rrr"),
            "{}",
            d.reason
        );
        assert!(d.reason.len() <= redact::MAX_REASON);
        let key = d.key.clone().unwrap();
        assert!(key.starts_with("api_key=[redacted] kkk") && key.len() <= redact::MAX_KEY);
        assert_eq!(d.preview, "password=[redacted]&n=1");
        assert_eq!(
            d.headers,
            [("x-note".to_owned(), "token=[redacted]".to_owned())]
        );
        let shown = serde_json::to_string(&d).unwrap();
        for secret in ["hunter2", "k-123", "t-456", "abc.def"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
