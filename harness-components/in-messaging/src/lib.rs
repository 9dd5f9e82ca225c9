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
//! A message a JetStream consumer delivered (its `reply-to` is a `$JS.ACK.` subject, parsed by
//! `etl_harness_report::ack`) is answered on that subject (docs/harness.md#delivery): `+ACK`
//! once its outcomes were delivered; `-NAK {"delay":<ns>}` (`etl.in.redelivery-backoff`) when a
//! record stayed `transient` or the delivery failed; on the last delivery
//! (`etl.in.max-deliver`) each record that still fails is published by this part as a dead
//! letter to `etl.in.dead-letter` (headers `etl-error` and `etl-deliveries`), the others
//! delivered, then `+ACK`. Any other message is not answered.
//!
//! Then, when `etl.report.subject` is set, it publishes the batch's report there
//! (docs/reporting.md); a report that cannot be published is a line on stderr, not an error.
//!
//! A message on a subject that `etl.in.raw-subjects` (a comma list of NATS subject patterns, an
//! `mqtt` source's) matches is a device's bytes, not an envelope: one record, the body its
//! payload, without key, headers or trace context.
//!
//! Bytes that are not an envelope, and settings that cannot be read or are not numbers, are
//! errors returned to the provider, never a trap; such a message is not reported. The
//! envelope's `traceparent` reaches the transform as the last header, named `traceparent`;
//! `out-messaging` moves the last such header back into the envelope field.
//!
//! Record ids (docs/harness.md#record-ids): a record's id is the envelope's, else, for a
//! JetStream delivery, `<stream>:<stream-seq>-<i>` (its index `i` in the message), else none.
//! The transform does not see it. Output `k` of a record with id `X` gets `X.<k>`, a rejected
//! record (and a dead letter of the last delivery) keeps `X`: after the transform, every
//! output's and rejected input's `etl-id` headers are removed and the id is appended as the
//! last header `etl-id`, which the `out` part moves into the envelope.

etl_harness_bindings::generate!("etl:platform/in-messaging");
etl_harness_bindings::config_error_text!();
etl_harness_bindings::publish_to!();
etl_harness_report::wasi_clock!();
etl_harness_report::publish_report!("etl in-messaging");

use etl::pipeline::transform::transform;
use etl::pipeline::types::{Error, Message};
use etl::platform::emit::{Outcome, Rejected, deliver};
use etl_envelope::Batched;
use etl_harness_bindings::{
    CONFIRM, CONFIRM_TIMEOUT, Confirm, DEFAULT_CONFIRM_TIMEOUT_MS, RAW_SUBJECTS, id, names, pack,
    subject_matches,
};
use etl_harness_report::ack::{self, Redelivery, Settle};
use etl_harness_report::{Batch, Failure, REPORT_SUBJECT, RETRIES, RETRY_BACKOFF, Retry};
use exports::wasmcloud::messaging::handler::Guest;
use wasi::config::runtime;
use wasmcloud::messaging::types::BrokerMessage;

/// The header that carries the envelope's trace context to the transform.
const TRACEPARENT: &str = "traceparent";
/// The largest message the last delivery's dead letters are packed into, in bytes: well inside
/// NATS's default 1 MiB `max_payload`, as `out-messaging`'s default.
const DEAD_LETTER_BYTES: usize = 512 * 1024;

struct InMessaging;

impl Guest for InMessaging {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        // A JetStream delivery (docs/harness.md#delivery): its ack subject and count.
        let delivery = ack::delivered(msg.reply_to.as_deref()).and_then(|count| {
            Some(Delivery {
                count,
                subject: msg.reply_to.clone()?,
            })
        });
        let mut report = Batch::begin(WasiClock);
        // An envelope that cannot be read, or settings that cannot be, are not acknowledged:
        // JetStream redelivers the message after `ack_wait`, and after `max_deliver` deliveries
        // the controller moves it to the dead letters.
        let settings = Settings::read(&msg.subject, delivery.is_some())?;
        let batch = if settings.raw {
            // A device's bytes (an `mqtt` source): one record, the body its payload.
            vec![Batched {
                origin: 0,
                envelope: etl_envelope::Envelope {
                    key: None,
                    payload: msg.body,
                    headers: Vec::new(),
                    traceparent: None,
                    id: None,
                },
            }]
        } else {
            etl_envelope::decode_batch(&msg.body).map_err(|e| {
                format!(
                    "etl in-messaging: the message on subject `{}` is not an etl envelope: {e}",
                    msg.subject
                )
            })?
        };
        let ids = input_ids(&batch, ack::id_prefix(msg.reply_to.as_deref()).as_deref());
        let result = match &delivery {
            None => handle(batch, ids, &msg.subject, &settings.retry, &mut report),
            Some(delivery) => {
                handle_delivery(batch, ids, &msg.subject, &settings, delivery, &mut report)
            }
        };
        if let Some(subject) = settings.report {
            publish_report(subject, report.report(&msg.subject));
        }
        result
    }
}

/// A message a JetStream consumer delivered.
struct Delivery {
    /// Its delivery count: 1 for the first.
    count: u64,
    /// Its ack subject (`$JS.ACK.…`).
    subject: String,
}

/// What one call reads from `wasi:config/runtime`.
struct Settings {
    retry: Retry,
    /// Where the batch's report goes, if anywhere.
    report: Option<String>,
    /// How often and when a JetStream delivery comes again (defaults for other messages).
    redelivery: Redelivery,
    /// Where the last delivery's still-failing records go.
    dead_letter: Option<String>,
    /// How those dead letters are confirmed.
    confirm: Confirm,
    /// Whether the message's subject is one of `etl.in.raw-subjects`: its body is a record's
    /// payload, not an envelope.
    raw: bool,
}

impl Settings {
    /// The settings, or an error for the message on `subject` if they cannot be read or a
    /// retry setting is not a whole number. The redelivery settings are read for a JetStream
    /// delivery only.
    fn read(subject: &str, jetstream: bool) -> Result<Settings, String> {
        let get = |key: &str| {
            runtime::get(key).map_err(|e| {
                format!(
                    "etl in-messaging: cannot read config `{key}` ({}): the message on subject \
                     `{subject}` was not handled",
                    config_error_text(&e)
                )
            })
        };
        let wrong = |e: &dyn std::fmt::Display| {
            format!("etl in-messaging: {e}: the message on subject `{subject}` was not handled")
        };
        let retry = Retry::from_settings(get(RETRIES)?.as_deref(), get(RETRY_BACKOFF)?.as_deref())
            .map_err(|e| wrong(&e))?;
        let report = get(REPORT_SUBJECT)?
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let raw = get(RAW_SUBJECTS)?
            .is_some_and(|list| names(&list).any(|pattern| subject_matches(pattern, subject)));
        let mut settings = Settings {
            retry,
            report,
            redelivery: Redelivery::default(),
            dead_letter: None,
            confirm: Confirm::None,
            raw,
        };
        if jetstream {
            settings.redelivery = Redelivery::from_settings(
                get(ack::MAX_DELIVER)?.as_deref(),
                get(ack::REDELIVERY_BACKOFF)?.as_deref(),
            )
            .map_err(|e| wrong(&e))?;
            settings.dead_letter = get(ack::DEAD_LETTER)?
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty());
            // Confirmed even where the unit's outputs are not (a sink's, which leave the
            // platform): a last delivery's dead letter is its records' only copy once the
            // message is acknowledged, and the controller's dead-letter stream captures it.
            settings.confirm = match Confirm::from_settings(
                get(CONFIRM)?.as_deref(),
                get(CONFIRM_TIMEOUT)?.as_deref(),
            )
            .map_err(|e| wrong(&e))?
            {
                Confirm::None => Confirm::JetStream {
                    timeout_ms: DEFAULT_CONFIRM_TIMEOUT_MS,
                },
                confirm => confirm,
            };
        }
        Ok(settings)
    }
}

/// The ids of the records of `batch`: each record's own, else, when the message came from a
/// JetStream consumer, `<prefix>-<i>` (`prefix` being `<stream>:<stream-seq>`), else none.
fn input_ids(batch: &[Batched], prefix: Option<&str>) -> Vec<Option<String>> {
    batch
        .iter()
        .enumerate()
        .map(|(i, b)| {
            b.envelope
                .id
                .clone()
                .or_else(|| prefix.map(|p| id::input(p, i)))
        })
        .collect()
}

/// What the transform's answer for a record with id `input_id` becomes, its id as the last
/// header `etl-id` of each output (`X.<k>`) or of the rejected input (`X`), any `etl-id` the
/// transform set removed.
fn outcome(
    input: Message,
    input_id: Option<&str>,
    answer: Result<Vec<Message>, String>,
) -> Outcome {
    match answer {
        Ok(mut outputs) => {
            for (k, output) in outputs.iter_mut().enumerate() {
                id::tag(&mut output.headers, id::of_output(input_id, k));
            }
            Outcome::Outputs(outputs)
        }
        Err(reason) => {
            let mut input = input;
            id::tag(&mut input.headers, input_id.map(str::to_owned));
            Outcome::Invalid(Rejected { input, reason })
        }
    }
}

/// Transforms the records of the batch that came on `subject` and delivers their outcomes,
/// counting all of it in `report`.
fn handle(
    batch: Vec<Batched>,
    ids: Vec<Option<String>>,
    subject: &str,
    retry: &Retry,
    report: &mut Batch<WasiClock>,
) -> Result<(), String> {
    for b in &batch {
        report.input(b.envelope.payload.len(), b.envelope.traceparent.as_deref());
    }
    let count = batch.len();
    let mut outcomes = Vec::with_capacity(count);
    for ((i, b), input_id) in batch.into_iter().enumerate().zip(&ids) {
        let input = record(b.envelope);
        let answer = report.call(
            retry,
            || transform(&input),
            |answer| matches!(answer, Err(Error::Transient(_))),
        );
        let input_id = input_id.as_deref();
        outcomes.push(match answer {
            Ok(outputs) => {
                report.outputs(outputs.iter().map(|o| o.payload.len()));
                outcome(input, input_id, Ok(outputs))
            }
            Err(Error::Invalid(reason)) => {
                report.dead_lettered(&reason);
                outcome(input, input_id, Err(reason))
            }
            Err(Error::Transient(reason)) => {
                report.fail(Failure::Transient);
                return Err(transient_error(i, count, subject, retry, "", &reason));
            }
        });
    }
    if outcomes.is_empty() {
        return Ok(());
    }
    deliver(&outcomes).inspect_err(|_| report.fail(Failure::Delivery))
}

/// [`handle`] for a JetStream delivery: the same, and then the answer to JetStream on the
/// message's ack subject. Delivered: `+ACK`. A record still `transient` (nothing of the batch is
/// delivered) or a failed delivery: `-NAK` with the redelivery delay, unless this is the last
/// delivery; then every record that still fails is published as a dead letter of its own (to
/// `etl.in.dead-letter`, reason `transient: …` or `delivery: …`, with its delivery count), the
/// others' outcomes are delivered, and `+ACK`.
fn handle_delivery(
    batch: Vec<Batched>,
    ids: Vec<Option<String>>,
    subject: &str,
    settings: &Settings,
    delivery: &Delivery,
    report: &mut Batch<WasiClock>,
) -> Result<(), String> {
    for b in &batch {
        report.input(b.envelope.payload.len(), b.envelope.traceparent.as_deref());
    }
    let count = batch.len();
    let n = delivery.count;
    let last = settings.redelivery.is_last(n);
    let mut outcomes = Vec::with_capacity(count);
    // On the last delivery, every input (a dead letter if it still fails) and each still
    // `transient` one's reason.
    let mut inputs = Vec::new();
    let mut transient: Vec<Option<String>> = Vec::new();
    for ((i, b), input_id) in batch.into_iter().enumerate().zip(&ids) {
        let input = record(b.envelope);
        let answer = report.call(
            &settings.retry,
            || transform(&input),
            |answer| matches!(answer, Err(Error::Transient(_))),
        );
        if last {
            inputs.push(input.clone());
            transient.push(None);
        }
        let input_id = input_id.as_deref();
        outcomes.push(match answer {
            Ok(outputs) => {
                report.outputs(outputs.iter().map(|o| o.payload.len()));
                outcome(input, input_id, Ok(outputs))
            }
            Err(Error::Invalid(reason)) => {
                report.dead_lettered(&reason);
                outcome(input, input_id, Err(reason))
            }
            Err(Error::Transient(reason)) if last => {
                // Dead-lettered below; its place in the batch keeps the others' origins.
                report.dead_lettered(&ack::transient_reason(&reason));
                transient[i] = Some(reason);
                Outcome::Outputs(Vec::new())
            }
            Err(Error::Transient(reason)) => {
                report.fail(Failure::Transient);
                let Settle::Nak(delay) = settings.redelivery.settle(n, true) else {
                    unreachable!("not the last delivery");
                };
                let how = redelivered(n, &settings.redelivery, delay);
                let error = transient_error(i, count, subject, &settings.retry, &how, &reason);
                return Err(answer_jetstream(delivery, &ack::nak(delay), error));
            }
        });
    }
    let failed = if outcomes.is_empty() {
        None
    } else {
        deliver(&outcomes).err()
    };
    let still_failing = failed.is_some() || transient.iter().any(Option::is_some);
    match settings.redelivery.settle(n, still_failing) {
        Settle::Ack => answer_jetstream(delivery, ack::ACK, Ok(())),
        Settle::Nak(delay) => {
            report.fail(Failure::Delivery);
            let error = format!(
                "{}{}",
                failed.unwrap_or_default(),
                redelivered(n, &settings.redelivery, delay)
            );
            Err(answer_jetstream(delivery, &ack::nak(delay), error))
        }
        Settle::DeadLetter => {
            let reasons: Vec<Option<String>> = match &failed {
                // Every record: those still transient as such, the others' outcomes undelivered.
                Some(error) => {
                    report.undelivered();
                    transient
                        .into_iter()
                        .map(|t| {
                            let reason = match t {
                                Some(t) => ack::transient_reason(&t),
                                None => ack::delivery_reason(error),
                            };
                            report.dead_lettered(&reason);
                            Some(reason)
                        })
                        .collect()
                }
                None => transient
                    .into_iter()
                    .map(|t| t.map(|t| ack::transient_reason(&t)))
                    .collect(),
            };
            let dead: Vec<Batched> = (0u32..)
                .zip(inputs)
                .zip(reasons)
                .zip(ids)
                .filter_map(|(((origin, input), reason), input_id)| {
                    let mut envelope = envelope(input);
                    // A dead letter keeps its input's id.
                    envelope.id = input_id;
                    envelope
                        .headers
                        .push((ack::ERROR_HEADER.to_string(), reason?));
                    envelope
                        .headers
                        .push((ack::DELIVERIES_HEADER.to_string(), n.to_string()));
                    Some(Batched { origin, envelope })
                })
                .collect();
            match dead_letter(&dead, settings) {
                Ok(()) => answer_jetstream(delivery, ack::ACK, Ok(())),
                Err(e) => {
                    report.fail(Failure::Delivery);
                    let delay = settings.redelivery.delay(n);
                    let error = format!(
                        "etl in-messaging: the last delivery ({n}) of the message on subject \
                         `{subject}` could not dead-letter its {} failing record(s): {e}{}",
                        dead.len(),
                        failed
                            .map(|f| format!(" (its delivery failed: {f})"))
                            .unwrap_or_default()
                    );
                    Err(answer_jetstream(delivery, &ack::nak(delay), error))
                }
            }
        }
    }
}

/// Publishes the last delivery's dead letters to `etl.in.dead-letter`, always confirmed (within
/// `etl.out.confirm-timeout`), in messages of at most [`DEAD_LETTER_BYTES`].
fn dead_letter(dead: &[Batched], settings: &Settings) -> Result<(), String> {
    let Some(subject) = &settings.dead_letter else {
        return Err(format!("config `{}` is not set", ack::DEAD_LETTER));
    };
    let total = dead.len();
    // 1 version byte and a count of at most 5.
    for run in pack(
        dead.iter().map(etl_envelope::batched_len),
        6,
        DEAD_LETTER_BYTES,
    ) {
        let body = etl_envelope::encode_batch(&dead[run.clone()]);
        publish_to(subject, body, settings.confirm).map_err(|e| {
            format!(
                "publishing dead letter(s) {}–{} of {total} to `{subject}` failed: {e}",
                run.start + 1,
                run.end
            )
        })?;
    }
    Ok(())
}

/// Answers JetStream with `body` on the delivery's ack subject, then gives `result`; if the
/// answer cannot be published, an error that says so instead (JetStream redelivers the
/// message after `ack_wait`).
fn answer_jetstream<T>(delivery: &Delivery, body: &[u8], result: T) -> T
where
    T: AckResult,
{
    match publish_to(&delivery.subject, body.to_vec(), Confirm::None) {
        Ok(()) => result,
        Err(e) => result.with_unanswered(format!(
            "etl in-messaging: the answer `{}` to `{}` was not published (the message comes \
             again after the consumer's ack_wait): {e}",
            String::from_utf8_lossy(body),
            delivery.subject
        )),
    }
}

/// What [`answer_jetstream`] gives back: the handler's result, or an error text.
trait AckResult {
    /// This, with the ack that could not be published.
    fn with_unanswered(self, why: String) -> Self;
}

impl AckResult for Result<(), String> {
    fn with_unanswered(self, why: String) -> Self {
        match self {
            Ok(()) => Err(why),
            Err(e) => Err(format!("{e}; {why}")),
        }
    }
}

impl AckResult for String {
    fn with_unanswered(self, why: String) -> Self {
        format!("{self}; {why}")
    }
}

/// The error of a record still `transient` after its retries: record `i` (0-based) of
/// `count` of the message on `subject`, `how` says what comes next.
fn transient_error(
    i: usize,
    count: usize,
    subject: &str,
    retry: &Retry,
    how: &str,
    reason: &str,
) -> String {
    format!(
        "etl in-messaging: transient error in the transform of record {} of {count} of the \
         message on subject `{subject}`{} (nothing of the batch was delivered{how}): {reason}",
        i + 1,
        retried(retry.retries)
    )
}

/// How an error of delivery `n` says it is delivered again: `; delivery 2 of 5, asked again
/// in 1000 ms`.
fn redelivered(n: u64, redelivery: &Redelivery, delay: std::time::Duration) -> String {
    let of = redelivery
        .max_deliver
        .map(|m| format!(" of {m}"))
        .unwrap_or_default();
    format!(
        "; delivery {n}{of}, asked again in {} ms",
        delay.as_millis()
    )
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
/// Its id is not part of it (the transform does not see it), and neither is any header named
/// `etl-id` (reserved for the id on its way to the `out` part).
fn record(envelope: etl_envelope::Envelope) -> Message {
    let mut headers = envelope.headers;
    id::tag(&mut headers, None);
    if let Some(traceparent) = envelope.traceparent {
        headers.push((TRACEPARENT.to_string(), traceparent));
    }
    Message {
        key: envelope.key,
        payload: envelope.payload,
        headers,
    }
}

/// The envelope of a record as it came (the inverse of [`record`]): its last `traceparent`
/// header moves back into the trace-context field; no id (the caller sets it).
fn envelope(message: Message) -> etl_envelope::Envelope {
    let mut headers = message.headers;
    let traceparent = headers
        .iter()
        .rposition(|(name, _)| name.eq_ignore_ascii_case(TRACEPARENT))
        .map(|i| headers.remove(i).1);
    etl_envelope::Envelope {
        key: message.key,
        payload: message.payload,
        headers,
        traceparent,
        id: None,
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
            id: None,
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
            id: None,
        });
        assert_eq!(message.key, None);
        assert_eq!(message.headers, [header("a", "1")]);
    }

    fn batched(id: Option<&str>) -> Batched {
        Batched {
            origin: 0,
            envelope: Envelope {
                id: id.map(str::to_owned),
                ..Envelope::default()
            },
        }
    }

    #[test]
    fn a_record_keeps_its_id_else_gets_one_from_its_jetstream_delivery() {
        let batch = [batched(Some("order-17-0.0")), batched(None), batched(None)];
        assert_eq!(
            input_ids(&batch, Some("ETL_DATA_p_q:1042")),
            [
                Some("order-17-0.0".to_owned()),
                Some("ETL_DATA_p_q:1042-1".to_owned()),
                Some("ETL_DATA_p_q:1042-2".to_owned())
            ]
        );
        // Core NATS, replay: none.
        assert_eq!(
            input_ids(&batch, None),
            [Some("order-17-0.0".to_owned()), None, None]
        );
    }

    fn message(headers: &[(&str, &str)]) -> Message {
        Message {
            key: None,
            payload: b"p".to_vec(),
            headers: headers.iter().map(|(n, v)| header(n, v)).collect(),
        }
    }

    #[test]
    fn outputs_get_their_ids_after_the_transform_which_cannot_forge_one() {
        let outputs = vec![
            message(&[("a", "1"), ("etl-id", "forged")]),
            message(&[("ETL-Id", "forged")]),
        ];
        let Outcome::Outputs(outputs) = outcome(message(&[]), Some("r-3"), Ok(outputs)) else {
            panic!("outputs");
        };
        assert_eq!(
            outputs[0].headers,
            [header("a", "1"), header("etl-id", "r-3.0")]
        );
        assert_eq!(outputs[1].headers, [header("etl-id", "r-3.1")]);
        // Without an id, none, and still no forged one.
        let Outcome::Outputs(outputs) = outcome(
            message(&[]),
            None,
            Ok(vec![message(&[("etl-id", "forged")])]),
        ) else {
            panic!("outputs");
        };
        assert!(outputs[0].headers.is_empty());
    }

    #[test]
    fn a_rejected_record_keeps_its_id() {
        let input = message(&[("a", "1"), ("traceparent", "t")]);
        let Outcome::Invalid(rejected) = outcome(input, Some("r-3"), Err("bad".to_owned())) else {
            panic!("invalid");
        };
        assert_eq!(rejected.reason, "bad");
        assert_eq!(
            rejected.input.headers,
            [
                header("a", "1"),
                header("traceparent", "t"),
                header("etl-id", "r-3")
            ]
        );
    }

    #[test]
    fn the_transform_sees_neither_the_id_nor_an_etl_id_header() {
        let message = record(Envelope {
            headers: vec![header("etl-id", "from a publisher"), header("a", "1")],
            id: Some("r-0".to_owned()),
            ..Envelope::default()
        });
        assert_eq!(message.headers, [header("a", "1")]);
    }
}
