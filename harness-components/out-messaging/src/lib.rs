//! `out-messaging`: the `out` part of a step that publishes to the broker, world
//! `etl:platform/out-messaging`.
//!
//! `deliver(outcomes)` publishes a batch's outputs and dead letters through
//! `wasmcloud:messaging/consumer`, as version-2 platform envelopes (`docs/envelope.md`), each
//! record with its `origin` (the index of the input record it came from):
//!
//! - the outputs, in order, to every subject in the config key `etl.out.subjects` (a comma
//!   list), in the order listed: one message per batch, split into several when it would
//!   exceed `etl.out.batch-bytes` (default 512 KiB; a record larger than that travels alone), or
//!   one message per record when `etl.out.batch` is `none`;
//! - each rejected input, with the header `etl-error` = the reason appended, the same way to
//!   the subject in `etl.out.dead-letter`.
//!
//! With `etl.out.confirm` = `jetstream` every message is a `request`
//! (`etl.out.confirm-timeout` ms, default 5000) whose reply must be the JetStream PubAck of the
//! stream that captures its subject; a reply with an `error` member, another reply, a timeout or
//! "no responders" is a failed publish. Unset: a plain `publish`.
//!
//! Every setting is read and checked before anything is published. A record is never dropped
//! silently: a missing setting or a failed publish is an error, which the `in` part returns to
//! the broker. The last header named `traceparent` (ASCII case-insensitive) becomes the
//! envelope's `traceparent` field, the inverse of `in-messaging`; and the record's id, which
//! the `in` part appended as the last header `etl-id`, becomes the envelope's `id` field (every
//! `etl-id` header is removed: none is published as a header). The ids are in each envelope
//! record (0.2.0 messages have no headers); in a 1.x artifact of a project with
//! `delivery.nats_msg_id` the `msg-id` part adds `Nats-Msg-Id` (docs/harness.md#record-ids).

etl_harness_bindings::generate!("etl:platform/out-messaging");
etl_harness_bindings::config_error_text!();
etl_harness_bindings::publish_to!();

use etl::pipeline::types::Message;
use etl_envelope::{Batched, Envelope};
use etl_harness_bindings::{
    BATCH, BATCH_BYTES, CONFIRM, CONFIRM_TIMEOUT, Confirm, batch_bytes, id, mode, pack,
};
use exports::etl::platform::emit::Guest;
use exports::etl::platform::emit::{Outcome, Rejected};
use wasi::config::runtime;

/// Config key: the subjects every output is published to (comma list).
const SUBJECTS: &str = "etl.out.subjects";
/// Config key: the subject invalid inputs are published to.
const DEAD_LETTER: &str = "etl.out.dead-letter";
/// The header of a dead letter that carries the transform's reason.
const ERROR_HEADER: &str = "etl-error";
/// The header whose last occurrence becomes the envelope's `traceparent`.
const TRACEPARENT: &str = "traceparent";
/// `etl.out.batch-bytes` when it is not set: well inside NATS's default 1 MiB `max_payload`,
/// with room for the host's own framing.
const DEFAULT_BATCH_BYTES: usize = 512 * 1024;

struct OutMessaging;

impl Guest for OutMessaging {
    fn deliver(outcomes: Vec<Outcome>) -> Result<(), String> {
        let count = outcomes.len();
        let mut outputs = Vec::new();
        let mut dead = Vec::new();
        for (origin, outcome) in (0u32..).zip(outcomes) {
            match outcome {
                Outcome::Outputs(list) => outputs.extend(list.into_iter().map(|m| Batched {
                    origin,
                    envelope: envelope(m),
                })),
                Outcome::Invalid(Rejected { input, reason }) => {
                    let mut envelope = envelope(input);
                    envelope.headers.push((ERROR_HEADER.to_string(), reason));
                    dead.push(Batched { origin, envelope });
                }
            }
        }
        // Every setting is checked before the first publish.
        let subjects = config(SUBJECTS)?.unwrap_or_default();
        let subjects = list(&subjects);
        if !outputs.is_empty() && subjects.is_empty() {
            return Err(format!(
                "etl out-messaging: config `{SUBJECTS}` names no subject: {} output(s) of {count} \
                 record(s) not delivered",
                outputs.len()
            ));
        }
        let dead_subject = config(DEAD_LETTER)?
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        if let (Some(first), None) = (dead.first(), &dead_subject) {
            let reason = first
                .envelope
                .headers
                .last()
                .map(|(_, r)| r.as_str())
                .unwrap_or_default();
            return Err(format!(
                "etl out-messaging: config `{DEAD_LETTER}` is not set, so {} invalid record(s) \
                 cannot be dead-lettered (reason of the first: {reason})",
                dead.len()
            ));
        }
        let per_record = mode(BATCH, config(BATCH)?.as_deref(), &["batch", "none"])
            .map_err(|why| format!("etl out-messaging: {why}"))?
            == "none";
        let max = batch_bytes(config(BATCH_BYTES)?.as_deref(), DEFAULT_BATCH_BYTES)
            .map_err(|why| format!("etl out-messaging: {why}"))?;
        let confirm = Confirm::from_settings(
            config(CONFIRM)?.as_deref(),
            config(CONFIRM_TIMEOUT)?.as_deref(),
        )
        .map_err(|why| format!("etl out-messaging: {why}"))?;
        let how = Sending {
            per_record,
            max,
            confirm,
        };
        send(&outputs, &subjects, &how, "output")?;
        if let Some(subject) = dead_subject {
            send(&dead, &[subject.as_str()], &how, "dead letter")?;
        }
        Ok(())
    }
}

/// How a batch's records are published.
struct Sending {
    /// One message per record (`etl.out.batch` = `none`).
    per_record: bool,
    /// The largest message, in bytes (`etl.out.batch-bytes`).
    max: usize,
    /// How each publish is confirmed (`etl.out.confirm`).
    confirm: Confirm,
}

/// Publishes `records` to every subject: one message per record, or as few as `max` bytes a
/// message allows, each confirmed as `how` says. `what` names the records in an error.
fn send(records: &[Batched], subjects: &[&str], how: &Sending, what: &str) -> Result<(), String> {
    let Sending {
        per_record,
        max,
        confirm,
    } = *how;
    let runs = if per_record {
        (0..records.len()).map(|i| i..i + 1).collect()
    } else {
        // 1 version byte and a count of at most 5.
        pack(records.iter().map(etl_envelope::batched_len), 6, max)
    };
    let total = records.len();
    for run in runs {
        let body = etl_envelope::encode_batch(&records[run.clone()]);
        for subject in subjects {
            publish_to(subject, body.clone(), confirm).map_err(|e| {
                format!(
                    "etl out-messaging: publishing {what}(s) {}–{} of {total} to `{subject}` failed: {e}",
                    run.start + 1,
                    run.end
                )
            })?;
        }
    }
    Ok(())
}

/// The envelope of `message`: its last `traceparent` header moves into the trace-context field,
/// its `etl-id` header into the id field.
fn envelope(message: Message) -> Envelope {
    let mut headers = message.headers;
    let id = id::take(&mut headers);
    let traceparent = headers
        .iter()
        .rposition(|(name, _)| name.eq_ignore_ascii_case(TRACEPARENT))
        .map(|i| headers.remove(i).1);
    Envelope {
        key: message.key,
        payload: message.payload,
        headers,
        traceparent,
        id,
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

    #[test]
    fn the_etl_id_header_becomes_the_id() {
        let envelope = envelope(Message {
            key: None,
            payload: Vec::new(),
            headers: vec![
                header("a", "1"),
                header("traceparent", "t"),
                header("etl-id", "order-17-0.0"),
            ],
        });
        assert_eq!(envelope.id.as_deref(), Some("order-17-0.0"));
        assert_eq!(envelope.traceparent.as_deref(), Some("t"));
        assert_eq!(envelope.headers, [header("a", "1")]);
    }

    #[test]
    fn without_an_etl_id_header_there_is_no_id() {
        let envelope = envelope(Message {
            key: None,
            payload: Vec::new(),
            headers: vec![header("a", "1")],
        });
        assert_eq!(envelope.id, None);
    }
}
