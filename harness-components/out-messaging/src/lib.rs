//! `out-messaging`: the `out` part of a step that publishes to the broker, world
//! `etl:platform/out-messaging`.
//!
//! - `emit(outputs)`: encodes each output as a platform envelope (`docs/envelope.md`) and
//!   publishes it through `wasmcloud:messaging/consumer` to every subject in the config key
//!   `etl.out.subjects` (a comma list), outputs in order, and for each output the subjects in
//!   the order listed.
//! - `dead-letter(input, reason)`: publishes the input's envelope, with the header
//!   `etl-error` = `reason` appended, to the subject in `etl.out.dead-letter`.
//!
//! A record is never dropped silently: a missing setting or a failed publish is an error, which
//! `in-messaging` returns to the broker. The last header named `traceparent` (ASCII
//! case-insensitive) becomes the envelope's `traceparent` field, the inverse of `in-messaging`.

etl_harness_bindings::generate!("etl:platform/out-messaging");
etl_harness_bindings::config_error_text!();

use etl::pipeline::types::Message;
use etl_envelope::Envelope;
use exports::etl::platform::emit::Guest;
use wasi::config::runtime;
use wasmcloud::messaging::consumer::publish;
use wasmcloud::messaging::types::BrokerMessage;

/// Config key: the subjects every output is published to (comma list).
const SUBJECTS: &str = "etl.out.subjects";
/// Config key: the subject invalid inputs are published to.
const DEAD_LETTER: &str = "etl.out.dead-letter";
/// The header of a dead letter that carries the transform's reason.
const ERROR_HEADER: &str = "etl-error";
/// The header whose last occurrence becomes the envelope's `traceparent`.
const TRACEPARENT: &str = "traceparent";

struct OutMessaging;

impl Guest for OutMessaging {
    fn emit(outputs: Vec<Message>) -> Result<(), String> {
        let subjects = config(SUBJECTS)?.unwrap_or_default();
        let subjects = list(&subjects);
        if subjects.is_empty() {
            return Err(format!(
                "etl out-messaging: config `{SUBJECTS}` names no subject: {} output(s) not delivered",
                outputs.len()
            ));
        }
        let count = outputs.len();
        for (i, output) in outputs.into_iter().enumerate() {
            let body = etl_envelope::encode(&envelope(output));
            for subject in &subjects {
                publish(&BrokerMessage {
                    subject: (*subject).to_string(),
                    body: body.clone(),
                    reply_to: None,
                })
                .map_err(|e| {
                    format!(
                        "etl out-messaging: publishing output {} of {count} to `{subject}` failed: {e}",
                        i + 1
                    )
                })?;
            }
        }
        Ok(())
    }

    fn dead_letter(input: Message, reason: String) -> Result<(), String> {
        let subject = config(DEAD_LETTER)?
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                format!(
                    "etl out-messaging: config `{DEAD_LETTER}` is not set, so the invalid record \
                     cannot be dead-lettered (reason: {reason})"
                )
            })?;
        let mut envelope = envelope(input);
        envelope
            .headers
            .push((ERROR_HEADER.to_string(), reason.clone()));
        publish(&BrokerMessage {
            subject: subject.clone(),
            body: etl_envelope::encode(&envelope),
            reply_to: None,
        })
        .map_err(|e| {
            format!(
                "etl out-messaging: dead-lettering to `{subject}` failed: {e} (reason: {reason})"
            )
        })
    }
}

/// The envelope of `message`: its last `traceparent` header moves into the trace-context field.
fn envelope(message: Message) -> Envelope {
    let mut headers = message.headers;
    let traceparent = headers
        .iter()
        .rposition(|(name, _)| name.eq_ignore_ascii_case(TRACEPARENT))
        .map(|i| headers.remove(i).1);
    Envelope {
        key: message.key,
        payload: message.payload,
        headers,
        traceparent,
    }
}

/// The items of a comma list, trimmed, empty ones left out, in order.
fn list(text: &str) -> Vec<&str> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A platform setting; a failure to read the settings is an error naming the key.
fn config(key: &str) -> Result<Option<String>, String> {
    runtime::get(key).map_err(|e| {
        let text = config_error_text(&e);
        format!("etl out-messaging: cannot read config `{key}` ({text})")
    })
}

export!(OutMessaging);

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn subjects_are_a_comma_list_in_order() {
        assert_eq!(list(" b.x , a.y,,c "), ["b.x", "a.y", "c"]);
        assert!(list("").is_empty());
        assert!(list(" , ").is_empty());
    }

    #[test]
    fn the_last_traceparent_header_becomes_the_trace_context() {
        let envelope = envelope(Message {
            key: Some(Vec::new()),
            payload: b"p".to_vec(),
            headers: vec![
                header("traceparent", "first"),
                header("a", "1"),
                header("TraceParent", "last"),
                header("b", "2"),
            ],
        });
        assert_eq!(envelope.key, Some(Vec::new()));
        assert_eq!(envelope.payload, b"p");
        assert_eq!(envelope.traceparent.as_deref(), Some("last"));
        assert_eq!(
            envelope.headers,
            [
                header("traceparent", "first"),
                header("a", "1"),
                header("b", "2")
            ]
        );
    }

    #[test]
    fn without_a_traceparent_header_there_is_no_trace_context() {
        let envelope = envelope(Message {
            key: None,
            payload: Vec::new(),
            headers: vec![header("a", "1")],
        });
        assert_eq!(envelope.traceparent, None);
        assert_eq!(envelope.headers, [header("a", "1")]);
    }
}
