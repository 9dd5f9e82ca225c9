//! `in-http`: the `in` part of a step fed by the HTTP server provider, world
//! `etl:platform/in-http`.
//!
//! A `POST` request becomes one record: the body is the payload (at most `etl.in.max-body`
//! bytes), the request headers named in `etl.in.headers` are its headers, and a `traceparent`
//! request header is carried as the last header, `traceparent`. There is no key. The transform's
//! outcome decides the answer:
//!
//! | outcome | action | status |
//! | --- | --- | --- |
//! | `ok(outputs)` | `emit(outputs)` | 202, or 500 if `emit` fails |
//! | `invalid(reason)` | `dead-letter(input, reason)` | 400 with the reason |
//! | `transient(reason)` | none | 503 with the reason |
//!
//! Other answers: 405 for a method other than `POST`, 413 for a body over the limit, 400 if the
//! body cannot be read, 500 if the settings cannot be read. Error answers are `text/plain`.

etl_harness_bindings::generate!("etl:platform/in-http");
etl_harness_bindings::config_error_text!();

use etl::pipeline::transform::transform;
use etl::pipeline::types::{Error, Message};
use etl::platform::emit::{dead_letter, emit};
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
/// `etl.in.max-body` when it is not set: 1 MiB.
const DEFAULT_MAX_BODY: u64 = 1 << 20;
/// The trace-context header, always carried.
const TRACEPARENT: &str = "traceparent";
/// Bytes read from the body stream at a time.
const READ_CHUNK: u64 = 64 * 1024;
/// The most `blocking-write-and-flush` accepts at once.
const WRITE_CHUNK: usize = 4096;

struct InHttp;

impl Guest for InHttp {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let reply = serve(request).unwrap_or_else(|reply| reply);
        respond(response_out, reply);
    }
}

/// An answer to send: status, extra headers, `text/plain` body (may be empty).
struct Reply {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
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

fn serve(request: IncomingRequest) -> Result<Reply, Reply> {
    if !matches!(request.method(), Method::Post) {
        let mut reply = Reply::new(405, "etl in-http: only POST is accepted\n");
        reply.headers.push(("allow", "POST"));
        return Err(reply);
    }
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
    let entries = {
        // A child of the request: dropped before the request is consumed.
        let fields = request.headers();
        fields.entries()
    };
    let too_large = || {
        Reply::new(
            413,
            format!("etl in-http: the request body is larger than {max_body} bytes\n"),
        )
    };
    // A declared length over the limit is refused before reading anything.
    if declared_length(&entries).is_some_and(|n| n > max_body) {
        return Err(too_large());
    }
    let headers = record_headers(&entries, &keep);

    let payload = read_body(request, max_body)?.ok_or_else(too_large)?;
    let input = Message {
        key: None,
        payload,
        headers,
    };
    Ok(match transform(&input) {
        Ok(outputs) => match emit(&outputs) {
            Ok(()) => Reply::new(202, ""),
            Err(e) => Reply::new(500, format!("{e}\n")),
        },
        Err(Error::Invalid(reason)) => match dead_letter(&input, &reason) {
            Ok(()) => Reply::new(400, format!("{reason}\n")),
            Err(e) => Reply::new(
                400,
                format!("{reason}\n(etl in-http: the record was not dead-lettered: {e})\n"),
            ),
        },
        Err(Error::Transient(reason)) => Reply::new(503, format!("{reason}\n")),
    })
}

/// The names in the `etl.in.headers` comma list, lowercase; `traceparent` is always carried
/// (last), so it is left out here.
fn header_list(setting: &str) -> Vec<String> {
    setting
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty() && name != TRACEPARENT)
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
/// that are not UTF-8 are converted lossily (U+FFFD).
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
        let room = max - payload.len() as u64 + 1;
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
}
