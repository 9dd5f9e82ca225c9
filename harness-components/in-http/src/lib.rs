//! `in-http`: the `in` part of a step fed by the HTTP server provider, world
//! `etl:platform/in-http`.
//!
//! A `POST` request becomes a batch of records (at most `etl.in.max-body` bytes of body). With
//! `etl.in.batch` = `auto` (the default) the request's `content-type` says how:
//!
//! - `application/x-ndjson`, `application/ndjson`, `application/jsonl` or
//!   `application/x-jsonlines`: one record per line (split on `\n`, a trailing `\r` dropped,
//!   blank lines skipped);
//! - `application/json` whose body is a JSON array: one record per element, its exact text;
//! - anything else, or `etl.in.batch` = `none`: the body is one record.
//!
//! Every record carries the request headers named in `etl.in.headers` (a kept `content-type`
//! reads `application/json` on a record split from a batch), then a `traceparent` request
//! header as the last header, `traceparent`. There is no key. The transform runs once per
//! record, in order, and the batch's outcomes go to `deliver` at once:
//!
//! | outcomes | status |
//! | --- | --- |
//! | every record `ok` (or the batch is empty), delivered (and confirmed) | 202 |
//! | some records `invalid`: they are dead-lettered, the rest delivered | 400, a line per rejected record |
//! | `deliver` fails (a publish refused or, with `etl.out.confirm`, not confirmed) | 503 with its error |
//! | a record still `transient` after the retries: nothing of the batch is delivered | 503 with the reason |
//!
//! A record whose transform answers `transient` is transformed again, up to `etl.in.retries`
//! times (default 2) after `etl.in.retry-backoff` ms (default 10), doubled each time. With one
//! record per request the 400 and 503 bodies are the transform's reason alone. Other answers:
//! 405 for a method other than `POST`, 413 for a body over the limit, 400 if the body cannot be
//! read or is not the JSON array or NDJSON its content type says, 500 if the settings cannot be
//! read or are not what they may be. Error answers are `text/plain`.
//!
//! Record ids (docs/harness.md#record-ids): record `i` (from 0) of a request gets the id
//! `<request-key>-<i>`, its output `k` `<request-key>-<i>.<k>`, a rejected record keeps its own
//! (the transform does not see them; the `out` part gets each as the last header `etl-id`). The
//! request key is the request's `Idempotency-Key` header, trimmed, when it has one (1 to 128
//! characters `A`–`Z`, `a`–`z`, `0`–`9`, `.`, `_`, `:`, `-`; anything else, or several, is a
//! 400 naming the header), so a client that sends a request again with the same key gets the
//! same ids; else 32 random lowercase hex digits (`wasi:random/random`). Every answer from then
//! on carries the key in the response header `etl-request-id`.
//!
//! After answering a request that became a batch (any of the first table), it publishes the
//! batch's report to `etl.report.subject`, when set (docs/reporting.md); a report that cannot be
//! published is a line on stderr.

etl_harness_bindings::generate!("etl:platform/in-http");
etl_harness_bindings::config_error_text!();
etl_harness_report::wasi_clock!();
etl_harness_report::publish_report!("etl in-http");

use etl::pipeline::transform::transform;
use etl::pipeline::types::{Error, Message};
use etl::platform::emit::{Outcome, Rejected, deliver};
use etl_harness_bindings::{id, mode};
use etl_harness_report::{Batch, Failure, REPORT_SUBJECT, RETRIES, RETRY_BACKOFF, Retry};
use exports::wasi::http::incoming_handler::Guest;
use wasi::config::runtime;
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io0_2_12::streams::StreamError;

/// Config key: the request headers kept as record headers (comma list, case-insensitive).
const HEADERS: &str = "etl.in.headers";
/// Config key: the largest request body accepted, in bytes.
const MAX_BODY: &str = "etl.in.max-body";
/// Config key: how a request body becomes records (`auto` or `none`).
const BATCH: &str = "etl.in.batch";
/// `etl.in.max-body` when it is not set: 1 MiB.
const DEFAULT_MAX_BODY: u64 = 1 << 20;
/// The trace-context header, always carried.
const TRACEPARENT: &str = "traceparent";
/// Bytes read from the body stream at a time.
const READ_CHUNK: u64 = 64 * 1024;
/// The most `blocking-write-and-flush` accepts at once.
const WRITE_CHUNK: usize = 4096;
/// Where a report says a batch came from.
const FROM: &str = "http";

struct InHttp;

impl Guest for InHttp {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let mut report = Batch::begin(WasiClock);
        let (mut reply, subject, key) = match accept(request) {
            Ok(mut batch) => {
                let subject = batch.report.take();
                let key = batch.key.clone();
                (transform_batch(batch, &mut report), subject, Some(key))
            }
            Err((reply, key)) => (reply, None, key),
        };
        if let Some(key) = key {
            reply.headers.push((id::REQUEST_ID, key));
        }
        // The report's duration ends before the answer is sent, and the answer does not wait
        // for the report.
        let body = subject.map(|subject| (subject, report.report(FROM)));
        respond(response_out, reply);
        if let Some((subject, body)) = body {
            publish_report(subject, body);
        }
    }
}

/// A request accepted as a batch of records, and the settings its call goes on with.
struct Accepted {
    /// The records' payloads.
    payloads: Vec<Vec<u8>>,
    /// Every record's headers.
    headers: Vec<(String, String)>,
    /// The request's key: record `i`'s id is `<key>-<i>`.
    key: String,
    retry: Retry,
    /// Where the batch's report goes, if anywhere.
    report: Option<String>,
}

/// An answer to send: status, extra headers, `text/plain` body (may be empty).
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    text: String,
}

impl Reply {
    fn new(status: u16, text: impl Into<String>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            text: text.into(),
        }
    }
}

/// The request as a batch of records, or the answer that refuses it (and the request's key,
/// once known).
fn accept(request: IncomingRequest) -> Result<Accepted, (Reply, Option<String>)> {
    if !matches!(request.method(), Method::Post) {
        let mut reply = Reply::new(405, "etl in-http: only POST is accepted\n");
        reply.headers.push(("allow", "POST".to_owned()));
        return Err((reply, None));
    }
    let entries = {
        // A child of the request: dropped before the request is consumed.
        let fields = request.headers();
        fields.entries()
    };
    let key = request_key(&entries)
        .map_err(|why| (Reply::new(400, format!("etl in-http: {why}\n")), None))?;
    let key = key.unwrap_or_else(|| {
        id::random_key(
            wasi::random::random::get_random_u64(),
            wasi::random::random::get_random_u64(),
        )
    });
    read(request, &entries, key.clone()).map_err(|reply| (reply, Some(key)))
}

/// The request's key: its `Idempotency-Key` header, if it has one. `Err` says why the header
/// is not one.
fn request_key(entries: &[(String, Vec<u8>)]) -> Result<Option<String>, String> {
    id::request_key(
        entries
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(id::IDEMPOTENCY_KEY))
            .map(|(_, value)| value.as_slice()),
    )
}

/// The request, whose headers are `entries` and key `key`, as a batch of records, or the
/// answer that refuses it.
fn read(
    request: IncomingRequest,
    entries: &[(String, Vec<u8>)],
    key: String,
) -> Result<Accepted, Reply> {
    let max_body = match config(MAX_BODY)? {
        None => DEFAULT_MAX_BODY,
        Some(text) => text.trim().parse::<u64>().map_err(|_| {
            Reply::new(
                500,
                format!("etl in-http: config `{MAX_BODY}` is not a number of bytes: `{text}`\n"),
            )
        })?,
    };
    let keep = header_list(&config(HEADERS)?.unwrap_or_default());
    let retry = Retry::from_settings(
        config(RETRIES)?.as_deref(),
        config(RETRY_BACKOFF)?.as_deref(),
    )
    .map_err(|e| Reply::new(500, format!("etl in-http: {e}\n")))?;
    let report = config(REPORT_SUBJECT)?
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let too_large = || {
        Reply::new(
            413,
            format!("etl in-http: the request body is larger than {max_body} bytes\n"),
        )
    };
    // A declared length over the limit is refused before reading anything.
    if declared_length(entries).is_some_and(|n| n > max_body) {
        return Err(too_large());
    }
    let split = mode(BATCH, config(BATCH)?.as_deref(), &["auto", "none"])
        .map_err(|why| Reply::new(500, format!("etl in-http: {why}\n")))?;
    let framing = if split == "auto" {
        framing(entries)
    } else {
        Framing::One
    };
    let mut headers = record_headers(entries, &keep);

    let body = read_body(request, max_body)?.ok_or_else(too_large)?;
    let (payloads, single) =
        records(body, framing).map_err(|why| Reply::new(400, format!("{why}\n")))?;
    if !single {
        for (name, value) in &mut headers {
            if name == "content-type" {
                *value = JSON.to_string();
            }
        }
    }
    Ok(Accepted {
        payloads,
        headers,
        key,
        retry,
        report,
    })
}

/// Transforms the records of `batch` and delivers their outcomes, counting all of it in
/// `report`; the answer to the request.
fn transform_batch(batch: Accepted, report: &mut Batch<WasiClock>) -> Reply {
    let Accepted {
        payloads,
        headers,
        key,
        retry,
        report: _,
    } = batch;
    let traceparent = headers
        .iter()
        .find(|(name, _)| name == TRACEPARENT)
        .map(|(_, value)| value.as_str());
    for payload in &payloads {
        report.input(payload.len(), traceparent);
    }
    let count = payloads.len();
    let mut outcomes = Vec::with_capacity(count);
    let mut rejected = String::new();
    for (i, payload) in payloads.into_iter().enumerate() {
        let input = Message {
            key: None,
            payload,
            headers: headers.clone(),
        };
        let answer = report.call(
            &retry,
            || transform(&input),
            |answer| matches!(answer, Err(Error::Transient(_))),
        );
        let input_id = id::input(&key, i);
        outcomes.push(match answer {
            Ok(mut outputs) => {
                report.outputs(outputs.iter().map(|o| o.payload.len()));
                for (k, output) in outputs.iter_mut().enumerate() {
                    id::tag(&mut output.headers, Some(id::output(&input_id, k)));
                }
                Outcome::Outputs(outputs)
            }
            Err(Error::Invalid(reason)) => {
                report.dead_lettered(&reason);
                if count == 1 {
                    rejected.push_str(&format!("{reason}\n"));
                } else {
                    rejected.push_str(&format!("record {} of {count}: {reason}\n", i + 1));
                }
                let mut input = input;
                id::tag(&mut input.headers, Some(input_id));
                Outcome::Invalid(Rejected { input, reason })
            }
            Err(Error::Transient(reason)) => {
                report.fail(Failure::Transient);
                return if count == 1 {
                    Reply::new(503, format!("{reason}\n"))
                } else {
                    Reply::new(
                        503,
                        format!(
                            "record {} of {count} (nothing of the batch was delivered): {reason}\n",
                            i + 1
                        ),
                    )
                };
            }
        });
    }
    if outcomes.is_empty() {
        return Reply::new(202, "");
    }
    match deliver(&outcomes) {
        Ok(()) if rejected.is_empty() => Reply::new(202, ""),
        Ok(()) => Reply::new(400, rejected),
        // A publish refused or not confirmed (`etl.out.confirm`): the client's retry sends the
        // batch again, whose outputs before the failure may then be duplicated.
        Err(e) => {
            report.fail(Failure::Delivery);
            Reply::new(503, format!("{rejected}{e}\n"))
        }
    }
}

/// `content-type` of a record split from a batch, when the request's is kept.
const JSON: &str = "application/json";

/// How a request body holds records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// The body is one record.
    One,
    /// One record per line.
    Lines,
    /// A JSON array, one record per element (another JSON body is one record).
    Array,
}

/// The framing the request's `content-type` names (its media type, ASCII case-insensitive).
fn framing(entries: &[(String, Vec<u8>)]) -> Framing {
    let Some((_, value)) = entries
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    else {
        return Framing::One;
    };
    let value = String::from_utf8_lossy(value);
    let media = value.split(';').next().unwrap_or_default().trim();
    let is = |m: &str| media.eq_ignore_ascii_case(m);
    if is("application/x-ndjson")
        || is("application/ndjson")
        || is("application/jsonl")
        || is("application/x-jsonlines")
    {
        Framing::Lines
    } else if is(JSON) {
        Framing::Array
    } else {
        Framing::One
    }
}

/// The payloads of the records `body` holds in `framing`, and whether it is the body whole
/// (not split). `Err` says why the body is not what its content type says (a JSON body that is
/// not an array is one record, not an error).
fn records(body: Vec<u8>, framing: Framing) -> Result<(Vec<Vec<u8>>, bool), String> {
    match framing {
        Framing::One => Ok((vec![body], true)),
        Framing::Lines => Ok((
            body.split(|b| *b == b'\n')
                .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
                .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
                .map(<[u8]>::to_vec)
                .collect(),
            false,
        )),
        Framing::Array => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if first != Some(&b'[') {
                return Ok((vec![body], true));
            }
            let elements: Vec<&serde_json::value::RawValue> = serde_json::from_slice(&body)
                .map_err(|e| format!("etl in-http: the request body is not a JSON array: {e}"))?;
            Ok((
                elements
                    .into_iter()
                    .map(|e| e.get().as_bytes().to_vec())
                    .collect(),
                false,
            ))
        }
    }
}

/// The names in the `etl.in.headers` comma list, lowercase; `traceparent` is always carried
/// (last), so it is left out here, and so is `etl-id` (never carried as a header).
fn header_list(setting: &str) -> Vec<String> {
    setting
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty() && name != TRACEPARENT && name != id::HEADER)
        .collect()
}

/// The `content-length` the request declares, if it declares a number.
fn declared_length(entries: &[(String, Vec<u8>)]) -> Option<u64> {
    let (_, value) = entries
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))?;
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The record's headers: the request headers named in `keep` (lowercase names), in request
/// order, with lowercase names; then the first `traceparent` request header, if any. Values
/// that are not UTF-8 are converted lossily (U+FFFD). An `etl-id` header is never kept: that
/// name is the id's on its way to the `out` part.
fn record_headers(entries: &[(String, Vec<u8>)], keep: &[String]) -> Vec<(String, String)> {
    let value = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut headers: Vec<(String, String)> = entries
        .iter()
        .filter(|(name, _)| keep.iter().any(|k| name.eq_ignore_ascii_case(k)))
        .map(|(name, bytes)| (name.to_ascii_lowercase(), value(bytes)))
        .collect();
    if let Some((_, bytes)) = entries
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(TRACEPARENT))
    {
        headers.push((TRACEPARENT.to_string(), value(bytes)));
    }
    headers
}

/// The whole request body, or `None` if it is longer than `max` bytes (reading stops there).
fn read_body(request: IncomingRequest, max: u64) -> Result<Option<Vec<u8>>, Reply> {
    let unreadable = |why: &str| {
        Reply::new(
            400,
            format!("etl in-http: cannot read the request body: {why}\n"),
        )
    };
    let body = request
        .consume()
        .map_err(|()| unreadable("it was already consumed"))?;
    let stream = body
        .stream()
        .map_err(|()| unreadable("its stream was already taken"))?;
    let mut payload = Vec::new();
    loop {
        // Ask for one byte past the limit, to tell "exactly max" from "more than max".
        let room = max.saturating_sub(payload.len() as u64).saturating_add(1);
        match stream.blocking_read(room.min(READ_CHUNK)) {
            Ok(chunk) => {
                payload.extend_from_slice(&chunk);
                if payload.len() as u64 > max {
                    return Ok(None);
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(unreadable(&e.to_debug_string()));
            }
        }
    }
    // The stream is a child of the body: drop it before finishing the body.
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok(Some(payload))
}

fn respond(response_out: ResponseOutparam, reply: Reply) {
    let headers = Fields::new();
    if !reply.text.is_empty() {
        let _ = headers.append("content-type", b"text/plain; charset=utf-8");
    }
    for (name, value) in &reply.headers {
        let _ = headers.append(name, value.as_bytes());
    }
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(reply.status);
    let Ok(body) = response.body() else {
        ResponseOutparam::set(response_out, Ok(response));
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(stream) = body.write() {
        for chunk in reply.text.as_bytes().chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
}

/// A platform setting; a failure to read the settings is a 500 naming the key.
fn config(key: &str) -> Result<Option<String>, Reply> {
    runtime::get(key).map_err(|e| {
        let text = config_error_text(&e);
        Reply::new(
            500,
            format!("etl in-http: cannot read config `{key}` ({text})\n"),
        )
    })
}

export!(InHttp);

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: &[u8]) -> (String, Vec<u8>) {
        (name.to_string(), value.to_vec())
    }

    fn header(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn the_header_list_is_lowercase_without_traceparent() {
        assert_eq!(
            header_list(" X-Device , content-type,,TraceParent"),
            ["x-device", "content-type"]
        );
        assert!(header_list("").is_empty());
    }

    #[test]
    fn only_listed_headers_are_kept_in_request_order_then_traceparent() {
        let entries = [
            entry("traceparent", b"00-t-s-01"),
            entry("Content-Type", b"application/json"),
            entry("authorization", b"Bearer secret"),
            entry("x-device", b"t-1"),
            entry("x-device", b"t-2"),
            entry("x-bin", b"\xff"),
        ];
        let keep = header_list("x-device,content-type,x-bin");
        assert_eq!(
            record_headers(&entries, &keep),
            [
                header("content-type", "application/json"),
                header("x-device", "t-1"),
                header("x-device", "t-2"),
                header("x-bin", "\u{fffd}"),
                header("traceparent", "00-t-s-01"),
            ]
        );
        assert_eq!(
            record_headers(&entries, &[]),
            [header("traceparent", "00-t-s-01")]
        );
    }

    #[test]
    fn the_declared_length_is_read_when_it_is_a_number() {
        assert_eq!(
            declared_length(&[entry("Content-Length", b" 12 ")]),
            Some(12)
        );
        assert_eq!(declared_length(&[entry("content-length", b"x")]), None);
        assert_eq!(declared_length(&[]), None);
    }

    fn split(content_type: &str, body: &str) -> Result<Vec<String>, String> {
        let framing = framing(&[entry("Content-Type", content_type.as_bytes())]);
        records(body.as_bytes().to_vec(), framing).map(|(r, _)| {
            r.into_iter()
                .map(|p| String::from_utf8(p).expect("test bodies are UTF-8"))
                .collect()
        })
    }

    #[test]
    fn ndjson_is_one_record_per_non_blank_line() {
        let body = "{\"a\":1}\r\n\n  \n{\"a\":2}\nplain text\n";
        for media in [
            "application/x-ndjson",
            "Application/NDJSON; charset=utf-8",
            "application/jsonl",
            "application/x-jsonlines",
        ] {
            assert_eq!(
                split(media, body).unwrap(),
                ["{\"a\":1}", "{\"a\":2}", "plain text"],
                "{media}"
            );
        }
        assert!(split("application/x-ndjson", "\n\n").unwrap().is_empty());
    }

    #[test]
    fn a_json_array_is_one_record_per_element_with_its_exact_text() {
        assert_eq!(
            split(
                "application/json",
                " [ {\"t\": 1.50}, [1, 2] ,\"s\", null ] "
            )
            .unwrap(),
            ["{\"t\": 1.50}", "[1, 2]", "\"s\"", "null"]
        );
        assert!(split("application/json", "[]").unwrap().is_empty());
        // Any other JSON body is one record, as is any other content type.
        assert_eq!(
            split("application/json", "{\"a\":[1]}").unwrap(),
            ["{\"a\":[1]}"]
        );
        assert_eq!(split("text/plain", "[1,2]").unwrap(), ["[1,2]"]);
        assert_eq!(framing(&[]), Framing::One);
    }

    #[test]
    fn a_broken_json_array_is_refused_saying_where() {
        let why = split("application/json", "[{\"a\":1},\n{\"a\":]").unwrap_err();
        assert!(
            why.contains("not a JSON array") && why.contains("line 2"),
            "{why}"
        );
    }

    #[test]
    fn the_request_key_is_the_idempotency_key_header() {
        assert_eq!(request_key(&[entry("x", b"1")]), Ok(None));
        assert_eq!(
            request_key(&[entry("Idempotency-Key", b" order-17 ")]),
            Ok(Some("order-17".to_owned()))
        );
        let e = request_key(&[entry("idempotency-key", b"a b")]).unwrap_err();
        assert!(e.contains("`Idempotency-Key`"), "{e}");
        let e = request_key(&[
            entry("idempotency-key", b"a"),
            entry("IDEMPOTENCY-KEY", b"b"),
        ])
        .unwrap_err();
        assert!(e.contains("more than one"), "{e}");
    }

    #[test]
    fn an_etl_id_request_header_is_never_a_record_header() {
        assert_eq!(header_list("etl-id, ETL-ID,x"), ["x"]);
        let entries = [entry("etl-id", b"forged"), entry("x", b"1")];
        assert_eq!(
            record_headers(&entries, &header_list("etl-id,x")),
            [header("x", "1")]
        );
    }
}
