//! `in-messaging`: the `in` part of a step fed by a broker (the NATS or Kafka provider), world
//! `etl:platform/in-messaging`.
//!
//! For each broker message: decode the platform envelope (`docs/envelope.md`: a batch, or one
//! record) from its body, call the transform once per record, in order, and hand the batch's
//! outcomes to `deliver` at once:
//!
//! - `ok(outputs)` → the record's outputs (an empty list is a filtered record);
//! - `invalid(reason)` → the record is rejected: `deliver` dead-letters it;
//! - `transient(reason)` → the record is transformed again, up to `etl.in.retries` times (default
//!   2) after `etl.in.retry-backoff` ms (default 10), doubled each time; still `transient`, the
//!   handler stops and returns the error, naming the record, and delivers **nothing** of the
//!   batch, so a redelivered message cannot duplicate any output.
//!
//! Then, when `etl.report.subject` is set, it publishes the batch's report there
//! (docs/reporting.md); a report that cannot be published is a line on stderr, not an error.
//!
//! Bytes that are not an envelope, and settings that cannot be read or are not numbers, are
//! errors returned to the provider, never a trap; such a message is not reported. The
//! envelope's `traceparent` reaches the transform as the last header, named `traceparent`;
//! `out-messaging` moves the last such header back into the envelope field.

etl_harness_bindings::generate!("etl:platform/in-messaging");
etl_harness_bindings::config_error_text!();
etl_harness_report::wasi_clock!();
etl_harness_report::publish_report!("etl in-messaging");

use etl::pipeline::transform::transform;
use etl::pipeline::types::{Error, Message};
use etl::platform::emit::{Outcome, Rejected, deliver};
use etl_envelope::Batched;
use etl_harness_report::{Batch, Failure, REPORT_SUBJECT, RETRIES, RETRY_BACKOFF, Retry};
use exports::wasmcloud::messaging::handler::Guest;
use wasi::config::runtime;
use wasmcloud::messaging::types::BrokerMessage;

/// The header that carries the envelope's trace context to the transform.
const TRACEPARENT: &str = "traceparent";

struct InMessaging;

impl Guest for InMessaging {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        let mut report = Batch::begin(WasiClock);
        let batch = etl_envelope::decode_batch(&msg.body).map_err(|e| {
            format!(
                "etl in-messaging: the message on subject `{}` is not an etl envelope: {e}",
                msg.subject
            )
        })?;
        let settings = Settings::read(&msg.subject)?;
        let result = handle(batch, &msg.subject, &settings.retry, &mut report);
        if let Some(subject) = settings.report {
            publish_report(subject, report.report(&msg.subject));
        }
        result
    }
}

/// What one call reads from `wasi:config/runtime`.
struct Settings {
    retry: Retry,
    /// Where the batch's report goes, if anywhere.
    report: Option<String>,
}

impl Settings {
    /// The settings, or an error for the message on `subject` if they cannot be read or a
    /// retry setting is not a whole number.
    fn read(subject: &str) -> Result<Settings, String> {
        let get = |key: &str| {
            runtime::get(key).map_err(|e| {
                format!(
                    "etl in-messaging: cannot read config `{key}` ({}): the message on subject \
                     `{subject}` was not handled",
                    config_error_text(&e)
                )
            })
        };
        let retry = Retry::from_settings(get(RETRIES)?.as_deref(), get(RETRY_BACKOFF)?.as_deref())
            .map_err(|e| {
                format!("etl in-messaging: {e}: the message on subject `{subject}` was not handled")
            })?;
        let report = get(REPORT_SUBJECT)?
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        Ok(Settings { retry, report })
    }
}

/// Transforms the records of the batch that came on `subject` and delivers their outcomes,
/// counting all of it in `report`.
fn handle(
    batch: Vec<Batched>,
    subject: &str,
    retry: &Retry,
    report: &mut Batch<WasiClock>,
) -> Result<(), String> {
    for b in &batch {
        report.input(b.envelope.payload.len(), b.envelope.traceparent.as_deref());
    }
    let count = batch.len();
    let mut outcomes = Vec::with_capacity(count);
    for (i, b) in batch.into_iter().enumerate() {
        let input = record(b.envelope);
        let answer = report.call(
            retry,
            || transform(&input),
            |answer| matches!(answer, Err(Error::Transient(_))),
        );
        outcomes.push(match answer {
            Ok(outputs) => {
                report.outputs(outputs.iter().map(|o| o.payload.len()));
                Outcome::Outputs(outputs)
            }
            Err(Error::Invalid(reason)) => {
                report.dead_lettered(&reason);
                Outcome::Invalid(Rejected { input, reason })
            }
            Err(Error::Transient(reason)) => {
                report.fail(Failure::Transient);
                return Err(format!(
                    "etl in-messaging: transient error in the transform of record {} of {count} \
                     of the message on subject `{subject}`{} (nothing of the batch was \
                     delivered): {reason}",
                    i + 1,
                    retried(retry.retries)
                ));
            }
        });
    }
    if outcomes.is_empty() {
        return Ok(());
    }
    deliver(&outcomes).inspect_err(|_| report.fail(Failure::Delivery))
}

/// How a `transient` error says that it was retried: ` after 2 retries`, or nothing.
fn retried(retries: u32) -> String {
    match retries {
        0 => String::new(),
        1 => " after 1 retry".to_owned(),
        n => format!(" after {n} retries"),
    }
}

/// The record an envelope carries: its trace context becomes the last header, `traceparent`.
fn record(envelope: etl_envelope::Envelope) -> Message {
    let mut headers = envelope.headers;
    if let Some(traceparent) = envelope.traceparent {
        headers.push((TRACEPARENT.to_string(), traceparent));
    }
    Message {
        key: envelope.key,
        payload: envelope.payload,
        headers,
    }
}

export!(InMessaging);

#[cfg(test)]
mod tests {
    use super::*;
    use etl_envelope::Envelope;

    fn header(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn the_trace_context_becomes_the_last_header() {
        let message = record(Envelope {
            key: Some(b"k".to_vec()),
            payload: b"p".to_vec(),
            headers: vec![header("a", "1"), header("traceparent", "old")],
            traceparent: Some("00-abc-def-01".to_string()),
        });
        assert_eq!(message.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(message.payload, b"p");
        assert_eq!(
            message.headers,
            [
                header("a", "1"),
                header("traceparent", "old"),
                header("traceparent", "00-abc-def-01")
            ]
        );
    }

    #[test]
    fn a_transient_error_says_how_often_it_was_retried() {
        assert_eq!(retried(0), "");
        assert_eq!(retried(1), " after 1 retry");
        assert_eq!(retried(2), " after 2 retries");
    }

    #[test]
    fn without_trace_context_the_headers_are_kept_as_they_are() {
        let message = record(Envelope {
            key: None,
            payload: Vec::new(),
            headers: vec![header("a", "1")],
            traceparent: None,
        });
        assert_eq!(message.key, None);
        assert_eq!(message.headers, [header("a", "1")]);
    }
}
