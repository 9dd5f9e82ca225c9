//! Reports, durably: the stream `ETL_REPORTS_<project>` on the data plane's NATS captures every
//! report of the project (`etl.<project>.*.report.>`); an ordered consumer reads this
//! environment's (`etl.<project>.*.report.*.<environment>`) from the sequence after the last one
//! the snapshot covers, into the [`Store`](super::store::Store). A sequence the stream no longer
//! holds when the consumer comes to it is counted as missed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::{self, stream};
use futures::StreamExt as _;
use tokio::sync::watch;

use super::Telemetry;
use super::store::Taken;
use crate::jetstream::{Checked, Ensured, STREAM_CHECK, StreamSpec, check, ensure_stream};

/// The stream's bound in bytes (besides its age, `--report-retention`).
pub const MAX_BYTES: i64 = 256 * 1024 * 1024;
/// How long to wait before reading again after the consumer failed.
const AGAIN: Duration = Duration::from_secs(1);
/// How long the stream's first sequence, once asked, is taken as known for judging gaps.
const FIRST_SEQUENCE_KEPT: Duration = Duration::from_secs(1);

/// The report stream of `project`.
pub fn stream_spec(project: &str, retention: Duration) -> StreamSpec {
    StreamSpec {
        name: format!("ETL_REPORTS_{project}"),
        description: format!("etl: the per-batch reports of project {project}'s steps and sinks"),
        subjects: vec![format!("etl.{project}.*.report.>")],
        max_age: retention,
        max_bytes: MAX_BYTES,
        max_messages_per_subject: -1,
    }
}

/// The subjects of `environment`'s reports.
pub fn filter(project: &str, environment: &str) -> String {
    format!("etl.{project}.*.report.*.{environment}")
}

/// Where reports are read from: the stream, and how to make it again when it is gone.
pub struct Source {
    /// The data plane's JetStream.
    pub js: jetstream::Context,
    /// The stream's settings.
    pub spec: StreamSpec,
    /// The stream.
    pub stream: stream::Stream,
}

/// The stream's first sequence as last asked: asking the server for every gap would be a
/// request per report when environments share the stream (every report of another
/// environment is a gap to this one's consumer), so it is asked at most once per
/// [`FIRST_SEQUENCE_KEPT`], and not at all when what is known already covers the gap.
#[derive(Debug, Default)]
struct FirstSequence {
    first: u64,
    asked: Option<Instant>,
}

impl FirstSequence {
    /// Whether to ask again before judging the gap before `seq`: what is known does not reach
    /// `seq`, and was not asked within [`FIRST_SEQUENCE_KEPT`] of `now`.
    fn stale(&self, seq: u64, now: Instant) -> bool {
        self.first < seq
            && self
                .asked
                .is_none_or(|at| now.saturating_duration_since(at) >= FIRST_SEQUENCE_KEPT)
    }

    fn set(&mut self, first: u64, now: Instant) {
        // It only grows, in one stream; a stream made anew starts a new `FirstSequence`.
        self.first = self.first.max(first);
        self.asked = Some(now);
    }

    /// Reports of sequences `wanted..seq` the stream no longer held, as far as is known.
    fn lost(&self, wanted: u64, seq: u64) -> u64 {
        if self.first > wanted {
            self.first.min(seq) - wanted
        } else {
            0
        }
    }
}

/// Reads `environment`'s reports from `source` into `telemetry`'s store until `stop`. When the
/// stream cannot be read (it was deleted, say) it is made again, and read from its start.
pub async fn consume(
    telemetry: Arc<Telemetry>,
    mut source: Source,
    project: String,
    environment: String,
    mut stop: watch::Receiver<bool>,
) {
    let filter = filter(&project, &environment);
    let mut said = String::new();
    loop {
        let from = telemetry.resume_from(&mut source.stream).await + 1;
        let mut first = FirstSequence::default();
        let config = pull::OrderedConfig {
            filter_subject: filter.clone(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        };
        let messages = match source.stream.create_consumer(config).await {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(e) => {
                if e != said {
                    tracing::warn!("reading reports from {}: {e}", source.spec.name);
                    said = e;
                }
                // The stream may be gone: made again, rather than failing every second.
                match ensure_stream(&source.js, &source.spec).await {
                    Ok((stream, ensured)) => {
                        if ensured != Ensured::Unchanged {
                            super::log_ensured(&source.spec.name, ensured);
                        }
                        source.stream = stream;
                    }
                    Err(e) => tracing::debug!("{e}"),
                }
                if super::pause(&mut stop, AGAIN).await {
                    return;
                }
                continue;
            }
        };
        said.clear();
        tracing::info!(subjects = %filter, from, "counting reports");
        let mut checking = super::every(STREAM_CHECK);
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = checking.tick() => {
                    let known = telemetry.with_store(|s| s.stream_created().map(str::to_owned));
                    match check(&mut source.stream).await {
                        // Deleted, or made anew: read again, from the start of what is there.
                        Checked::Gone => break,
                        Checked::Created(now) if known.flatten().is_some_and(|k| k != now) => break,
                        Checked::Created(_) | Checked::Unknown => continue,
                    }
                }
                () = super::stopped(&mut stop) => return,
            };
            match next {
                Some(Ok(message)) => {
                    take(&telemetry, &mut source.stream, &mut first, &message).await;
                }
                Some(Err(e)) => {
                    tracing::debug!("reading reports: {e}");
                    break;
                }
                None => break,
            }
        }
        if super::pause(&mut stop, AGAIN).await {
            return;
        }
    }
}

/// Counts one report message, after counting as missed what the stream dropped before it.
async fn take(
    telemetry: &Telemetry,
    stream: &mut stream::Stream,
    first: &mut FirstSequence,
    message: &jetstream::Message,
) {
    let seq = match message.info() {
        Ok(info) => info.stream_sequence,
        Err(e) => {
            tracing::debug!("a report without stream metadata: {e}");
            return;
        }
    };
    let wanted = telemetry
        .with_store(|s| s.seq())
        .unwrap_or_default()
        .saturating_add(1);
    if seq > wanted {
        // Skipped sequences are other environments' reports, or ones the stream dropped (by
        // age or size) before they were read: those below its first sequence now.
        let now = Instant::now();
        if first.stale(seq, now) {
            match stream.info().await {
                Ok(info) => first.set(info.state.first_sequence, now),
                Err(e) => tracing::debug!("the report stream's first sequence: {e}"),
            }
        }
        let lost = first.lost(wanted, seq);
        if lost > 0 {
            tracing::warn!(
                lost,
                from = wanted,
                "reports were dropped by the stream before they were counted"
            );
            telemetry.with_store(|s| s.missed(lost, wanted + lost - 1));
        }
    }
    let subject = message.subject.as_str();
    let taken = telemetry.with_store(|s| s.take(seq, subject, &message.payload));
    match taken {
        Some(Taken::Counted(unit, report)) => telemetry.spans.push(seq, &unit, &report),
        Some(Taken::Refused(why)) => {
            // Logged at 1, 2, 4, 8, … refusals: a unit that keeps sending bad reports cannot
            // flood the log.
            let refused = telemetry.with_store(|s| s.health().refused).unwrap_or(1);
            if refused.is_power_of_two() {
                tracing::warn!(%subject, seq, refused, "report refused: {why}");
            } else {
                tracing::debug!(%subject, seq, "report refused: {why}");
            }
        }
        Some(Taken::Again) | None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_sequence_is_asked_at_most_once_a_second() {
        let t0 = Instant::now();
        let mut first = FirstSequence::default();
        assert!(first.stale(5, t0), "never asked");
        first.set(3, t0);
        assert_eq!(first.lost(1, 5), 2);
        // Asked within the second: taken as known, for every gap.
        assert!(!first.stale(9, t0 + Duration::from_millis(500)));
        assert_eq!(first.lost(6, 9), 0);
        assert!(first.stale(9, t0 + FIRST_SEQUENCE_KEPT));
        first.set(20, t0 + FIRST_SEQUENCE_KEPT);
        // Known to cover the gap: no need to ask, however long ago.
        assert!(!first.stale(15, t0 + Duration::from_secs(60)));
        assert_eq!(first.lost(10, 15), 5);
        assert_eq!(first.lost(10, 30), 10);
        assert_eq!(first.lost(25, 30), 0);
        // A first sequence only grows.
        first.set(4, t0 + Duration::from_secs(61));
        assert_eq!(first.first, 20);
    }
}
