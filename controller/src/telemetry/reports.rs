//! Reports, durably: the stream `ETL_REPORTS_<project>` on the data plane's NATS captures every
//! report of the project (`etl.<project>.*.report.>`); an ordered consumer reads this
//! environment's (`etl.<project>.*.report.*.<environment>`) from the sequence after the last one
//! the snapshot covers, into the [`Store`](super::store::Store). A sequence the stream no longer
//! holds when the consumer comes to it is counted as missed.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::{self, stream};
use futures::StreamExt as _;
use tokio::sync::watch;

use super::Telemetry;
use super::store::Taken;
use crate::jetstream::StreamSpec;

/// The stream's bound in bytes (besides its age, `--report-retention`).
pub const MAX_BYTES: i64 = 256 * 1024 * 1024;
/// How long to wait before reading again after the consumer failed.
const AGAIN: Duration = Duration::from_secs(1);

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

/// Reads `environment`'s reports from `stream` into `telemetry`'s store until `stop`.
pub async fn consume(
    telemetry: Arc<Telemetry>,
    mut stream: stream::Stream,
    project: String,
    environment: String,
    mut stop: watch::Receiver<bool>,
) {
    let filter = filter(&project, &environment);
    loop {
        let from = telemetry.rewind_if_younger(&mut stream).await + 1;
        let config = pull::OrderedConfig {
            filter_subject: filter.clone(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        };
        let messages = match stream.create_consumer(config).await {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(
                    "reading reports from {}: {e}",
                    stream.cached_info().config.name
                );
                if super::pause(&mut stop, AGAIN).await {
                    return;
                }
                continue;
            }
        };
        tracing::info!(subjects = %filter, from, "counting reports");
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                () = super::stopped(&mut stop) => return,
            };
            match next {
                Some(Ok(message)) => take(&telemetry, &mut stream, &message).await,
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
async fn take(telemetry: &Telemetry, stream: &mut stream::Stream, message: &jetstream::Message) {
    let seq = match message.info() {
        Ok(info) => info.stream_sequence,
        Err(e) => {
            tracing::debug!("a report without stream metadata: {e}");
            return;
        }
    };
    let wanted = telemetry.with_store(|s| s.seq()).unwrap_or_default() + 1;
    if seq > wanted {
        // Skipped sequences are other environments' reports, or ones the stream dropped (by
        // age or size) before they were read: those below its first sequence now.
        match stream.info().await {
            Ok(info) if info.state.first_sequence > wanted => {
                let lost = info.state.first_sequence.min(seq) - wanted;
                tracing::warn!(
                    lost,
                    from = wanted,
                    "reports were dropped by the stream before they were counted"
                );
                telemetry.with_store(|s| s.missed(lost, wanted + lost - 1));
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("the report stream's first sequence: {e}"),
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
