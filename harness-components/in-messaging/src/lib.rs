//! `in-messaging`: the `in` part of a step fed by a broker (the NATS or Kafka provider), world
//! `etl:platform/in-messaging`.
//!
//! For each broker message: decode the platform envelope (`docs/envelope.md`) from its body,
//! call the transform with the record, and hand the outcome to `emit`:
//!
//! - `ok(outputs)` → `emit(outputs)` (an empty list is a filtered record);
//! - `invalid(reason)` → `dead-letter(input, reason)`;
//! - `transient(reason)` → the handler returns the error, so the broker may redeliver.
//!
//! Bytes that are not an envelope are an error returned to the provider, never a trap. The
//! envelope's `traceparent` reaches the transform as the last header, named `traceparent`;
//! `out-messaging` moves the last such header back into the envelope field.

etl_harness_bindings::generate!("etl:platform/in-messaging");

use etl::pipeline::transform::transform;
use etl::pipeline::types::{Error, Message};
use etl::platform::emit::{dead_letter, emit};
use exports::wasmcloud::messaging::handler::Guest;
use wasmcloud::messaging::types::BrokerMessage;

/// The header that carries the envelope's trace context to the transform.
const TRACEPARENT: &str = "traceparent";

struct InMessaging;

impl Guest for InMessaging {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        let envelope = etl_envelope::decode(&msg.body).map_err(|e| {
            format!(
                "etl in-messaging: the message on subject `{}` is not an etl envelope: {e}",
                msg.subject
            )
        })?;
        let input = record(envelope);
        match transform(&input) {
            Ok(outputs) => emit(&outputs),
            Err(Error::Invalid(reason)) => dead_letter(&input, &reason),
            Err(Error::Transient(reason)) => Err(format!(
                "etl in-messaging: transient error in the transform of the message on subject `{}`: {reason}",
                msg.subject
            )),
        }
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
