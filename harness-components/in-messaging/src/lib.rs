//! `in-messaging`: the `in` part of a step fed by a broker (the NATS or Kafka provider), world
//! `etl:platform/in-messaging`.
//!
//! For each broker message: decode the platform envelope (`docs/envelope.md`: a batch, or one
//! record) from its body, call the transform once per record, in order, and hand the batch's
//! outcomes to `deliver` at once:
//!
//! - `ok(outputs)` → the record's outputs (an empty list is a filtered record);
//! - `invalid(reason)` → the record is rejected: `deliver` dead-letters it;
//! - `transient(reason)` → the handler stops and returns the error, naming the record, and
//!   delivers **nothing** of the batch, so a redelivered message cannot duplicate any output.
//!
//! Bytes that are not an envelope are an error returned to the provider, never a trap. The
//! envelope's `traceparent` reaches the transform as the last header, named `traceparent`;
//! `out-messaging` moves the last such header back into the envelope field.

etl_harness_bindings::generate!("etl:platform/in-messaging");

use etl::pipeline::transform::transform;
use etl::pipeline::types::{Error, Message};
use etl::platform::emit::{Outcome, Rejected, deliver};
use exports::wasmcloud::messaging::handler::Guest;
use wasmcloud::messaging::types::BrokerMessage;

/// The header that carries the envelope's trace context to the transform.
const TRACEPARENT: &str = "traceparent";

struct InMessaging;

impl Guest for InMessaging {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        let batch = etl_envelope::decode_batch(&msg.body).map_err(|e| {
            format!(
                "etl in-messaging: the message on subject `{}` is not an etl envelope: {e}",
                msg.subject
            )
        })?;
        let count = batch.len();
        let mut outcomes = Vec::with_capacity(count);
        for (i, b) in batch.into_iter().enumerate() {
            let input = record(b.envelope);
            outcomes.push(match transform(&input) {
                Ok(outputs) => Outcome::Outputs(outputs),
                Err(Error::Invalid(reason)) => Outcome::Invalid(Rejected { input, reason }),
                Err(Error::Transient(reason)) => {
                    return Err(format!(
                        "etl in-messaging: transient error in the transform of record {} of {count} \
                         of the message on subject `{}` (nothing of the batch was delivered): {reason}",
                        i + 1,
                        msg.subject
                    ));
                }
            });
        }
        if outcomes.is_empty() {
            return Ok(());
        }
        deliver(&outcomes)
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
