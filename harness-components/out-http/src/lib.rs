//! `out-http`: the `out` part of an `http` sink, world `etl:platform/out-http`.
//!
//! `deliver(outcomes)` POSTs the batch's outputs, in order, to the URL in the config key
//! `etl.out.url` through `wasi:http/outgoing-handler`, as `etl.out.batch` says:
//!
//! - `none` (the default): one request per output, its payload the body, with the record's
//!   headers and a `content-type`: `etl.out.content-type` if set, else the record's own
//!   `content-type` header, else `application/json` when the payload is a JSON object or
//!   array, else `application/octet-stream`;
//! - `ndjson`: one request per batch, the payloads one per line (`application/x-ndjson`); a
//!   payload that holds a line break must be JSON, whose line breaks are whitespace and become
//!   spaces;
//! - `json-array`: one request per batch, a JSON array of the payloads (`application/json`);
//!   every payload must be a JSON value.
//!
//! A batch's body is at most `etl.out.batch-bytes` (default 1 MiB): a larger batch is sent in
//! several requests, a record larger than that alone. It stops at the first request that is not
//! delivered: a request that fails, is answered with a status other than 2xx, or is not answered
//! within `etl.out.request-timeout` ms (default 10 000; the body written and the answer's head
//! in) is an error naming the records and the status or the wait. Every body is sent with its
//! `content-length`, and as much of it as the host takes at once is written before the request
//! goes out, so the host can send the head and a small body together; and with
//! `expect: 100-continue`, so that a host that sends the head alone anyway (wasmCloud 1.x) does
//! not wait a delayed ACK before the body (see [`post`]).
//!
//! The sink's own headers go on every request, over any record header of the same name: each
//! `etl.out.header.<Name>` config key (the sink's plain `authorization` and `header.<Name>`
//! settings), and each secret setting named `authorization` or `header.<Name>` among those
//! `etl.secrets` lists, read through `etl:platform/secrets`. A secret without a value is an
//! error naming the setting (never a value), before anything is sent.
//!
//! Each request carries the id of what it sends (docs/harness.md#record-ids) as its
//! `idempotency-key` header, so a server can tell a request sent again (a redelivery) from a
//! new one: the record's id for one record per request, `<first id>+<count>` for a batch (its
//! first record's id and its number of records); none when that record has no id. It replaces a
//! record header of that name; a sink's own `idempotency-key` setting replaces it. The id comes
//! as the record's last header `etl-id` (appended by the `in` part), which is never sent.
//!
//! A rejected input is an error: an HTTP sink has no dead-letter destination. (In a sink the
//! transform is `identity`, which never rejects a record, so it is not reached.)

etl_harness_bindings::generate!("etl:platform/out-http");
etl_harness_bindings::config_error_text!();

use etl::platform::secrets;
use etl_harness_bindings::{
    BATCH, BATCH_BYTES, SECRETS, batch_bytes, id, mode, names, ndjson_line, pack,
};
use exports::etl::platform::emit::Guest;
use exports::etl::platform::emit::Outcome;
use wasi::clocks::monotonic_clock;
use wasi::config::runtime;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io0_2_12::poll::{self, Pollable};
use wasi::io0_2_12::streams::{OutputStream, StreamError};

/// Config key: the URL every output is POSTed to.
const URL: &str = "etl.out.url";
/// Config key: the `content-type` of every request (overrides the record's own).
const CONTENT_TYPE: &str = "etl.out.content-type";
/// Config key prefix: `etl.out.header.<Name>` is a header of every request (a plain setting).
const HEADER: &str = "etl.out.header.";
/// The secret setting that is the `authorization` header of every request.
const AUTHORIZATION: &str = "authorization";
/// Secret setting prefix: `header.<Name>` is the header `<Name>` of every request.
const SECRET_HEADER: &str = "header.";
/// `content-type` when neither the config nor the record names one and the payload is JSON.
const JSON_CONTENT_TYPE: &str = "application/json";
/// `content-type` when neither the config nor the record names one and the payload is not JSON.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// `content-type` of an NDJSON batch.
const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";
/// `etl.out.batch-bytes` when it is not set: 1 MiB.
const DEFAULT_BATCH_BYTES: usize = 1 << 20;
/// Config key: the longest one request may take, from its first byte to its answer's head, in
/// milliseconds ([`post`]).
const REQUEST_TIMEOUT: &str = "etl.out.request-timeout";
/// [`REQUEST_TIMEOUT`] when it is not set: 10 s, as long as a wasmCloud 1.x host gives a wRPC
/// call to reach its provider.
const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;

/// How the outputs of a batch become requests (`etl.out.batch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    /// One request per output.
    None,
    /// One request per batch: the payloads one per line.
    Ndjson,
    /// One request per batch: a JSON array of the payloads.
    JsonArray,
}

struct OutHttp;

impl Guest for OutHttp {
    fn deliver(outcomes: Vec<Outcome>) -> Result<(), String> {
        let mut outputs = Vec::new();
        for outcome in outcomes {
            match outcome {
                Outcome::Outputs(list) => outputs.extend(list),
                Outcome::Invalid(rejected) => {
                    return Err(format!(
                        "etl out-http: no dead-letter destination for http sinks (reason: {})",
                        rejected.reason
                    ));
                }
            }
        }
        let count = outputs.len();
        if count == 0 {
            return Ok(());
        }
        // Each output's id, out of its headers.
        let ids: Vec<Option<String>> = outputs
            .iter_mut()
            .map(|o| id::take(&mut o.headers))
            .collect();
        let all = runtime::get_all().map_err(|e| {
            let text = config_error_text(&e);
            format!(
                "etl out-http: cannot read the config ({text}): {count} output(s) not delivered"
            )
        })?;
        let setting = |key: &str| all.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let url = setting(URL).ok_or_else(|| {
            format!("etl out-http: config `{URL}` is not set: {count} output(s) not delivered")
        })?;
        let target = Target::parse(&url).map_err(|why| {
            format!("etl out-http: config `{URL}` = `{url}` is not a usable URL: {why}")
        })?;
        let batch = match mode(
            BATCH,
            setting(BATCH).as_deref(),
            &["none", "ndjson", "json-array"],
        )
        .map_err(|why| format!("etl out-http: {why}"))?
        {
            "ndjson" => Batch::Ndjson,
            "json-array" => Batch::JsonArray,
            _ => Batch::None,
        };
        let max = batch_bytes(setting(BATCH_BYTES).as_deref(), DEFAULT_BATCH_BYTES)
            .map_err(|why| format!("etl out-http: {why}"))?;
        let content_type = setting(CONTENT_TYPE);
        let timeout = request_timeout(setting(REQUEST_TIMEOUT).as_deref())
            .map_err(|why| format!("etl out-http: {why}: {count} output(s) not delivered"))?;
        let own = own_headers(&all, secrets::get)
            .map_err(|why| format!("etl out-http: {why}: {count} output(s) not delivered"))?;
        let fixed = Fixed {
            headers: &own,
            content_type: content_type.as_deref(),
        };
        if batch == Batch::None {
            for (i, output) in outputs.iter().enumerate() {
                let headers =
                    request_headers(&output.headers, &fixed, &output.payload, ids[i].as_deref());
                post(&target, &headers, &output.payload, timeout).map_err(|why| {
                    format!(
                        "etl out-http: POST {url} of output {} of {count} failed: {why}",
                        i + 1
                    )
                })?;
            }
            return Ok(());
        }
        // Every body is built (and every payload checked) before the first request.
        let items =
            outputs
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    item(&o.payload, batch).map_err(|why| {
                    format!(
                        "etl out-http: output {} of {count} cannot be sent in a {} batch: {why}; \
                         nothing was delivered",
                        i + 1,
                        if batch == Batch::Ndjson { "NDJSON" } else { "JSON array" }
                    )
                })
                })
                .collect::<Result<Vec<_>, String>>()?;
        // NDJSON: each line and its `\n`; a JSON array: `[`, `]`, and a `,` before each.
        let runs = pack(items.iter().map(|i| i.len() + 1), 1, max);
        let kind = match batch {
            Batch::Ndjson => NDJSON_CONTENT_TYPE,
            _ => JSON_CONTENT_TYPE,
        };
        for run in runs {
            let body = join(&items[run.clone()], batch);
            let key = ids[run.start]
                .as_deref()
                .map(|first| id::batch(first, run.len()));
            let headers = batch_headers(&fixed, kind, key.as_deref());
            post(&target, &headers, &body, timeout).map_err(|why| {
                format!(
                    "etl out-http: POST {url} of outputs {}–{} of {count} failed: {why}",
                    run.start + 1,
                    run.end
                )
            })?;
        }
        Ok(())
    }
}

/// One output's text in a batch body: its payload, which must be a JSON value in a JSON array,
/// and one line of NDJSON.
fn item(payload: &[u8], batch: Batch) -> Result<std::borrow::Cow<'_, [u8]>, &'static str> {
    let is_json = |p: &[u8]| serde_json::from_slice::<serde::de::IgnoredAny>(p).is_ok();
    match batch {
        Batch::JsonArray if !is_json(payload) => Err("its payload is not JSON"),
        Batch::Ndjson => ndjson_line(payload, is_json),
        _ => Ok(payload.into()),
    }
}

/// The body of a batch request: the items one per line, or as a JSON array.
fn join(items: &[std::borrow::Cow<'_, [u8]>], batch: Batch) -> Vec<u8> {
    let mut body = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 1);
    if batch == Batch::JsonArray {
        body.push(b'[');
    }
    for (i, item) in items.iter().enumerate() {
        if batch == Batch::JsonArray && i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
        if batch == Batch::Ndjson {
            body.push(b'\n');
        }
    }
    if batch == Batch::JsonArray {
        body.push(b']');
    }
    body
}

/// Where to POST: `http[s]://authority[/path][?query]`.
struct Target {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, &'static str> {
        let url = url.trim();
        let (scheme, rest) = url.split_once("://").ok_or("it has no scheme")?;
        let scheme = if scheme.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else if scheme.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else {
            return Err("its scheme is neither http nor https");
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err("it has no host");
        }
        let path_with_query = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Target {
            scheme,
            authority: authority.to_string(),
            path_with_query,
        })
    }
}

/// The sink's own headers, in name order: a header for each `etl.out.header.<Name>` key of
/// `config`, and for each secret setting `authorization` or `header.<Name>` that `etl.secrets`
/// lists, its value from `secret` (which reads `etl:platform/secrets`). `Err` names the secret
/// setting that has no value or cannot be read, never a value.
fn own_headers(
    config: &[(String, String)],
    secret: impl Fn(&str) -> Result<Option<String>, String>,
) -> Result<Vec<(String, String)>, String> {
    let mut headers: Vec<(String, String)> = config
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(HEADER)?.to_string(), v.clone())))
        .collect();
    let listed = config.iter().filter(|(k, _)| k == SECRETS);
    for name in listed.flat_map(|(_, list)| names(list)) {
        let header = match name.strip_prefix(SECRET_HEADER) {
            Some(header) => header,
            None if name == AUTHORIZATION => AUTHORIZATION,
            None => continue,
        };
        let value = match secret(name) {
            Ok(Some(value)) => value,
            Ok(None) => return Err(format!("secret setting `{name}` has no value")),
            Err(why) => return Err(format!("cannot read secret setting `{name}` ({why})")),
        };
        headers.push((header.to_string(), value));
    }
    headers.sort_by(|(a, _), (b, _)| (a.to_ascii_lowercase(), a).cmp(&(b.to_ascii_lowercase(), b)));
    Ok(headers)
}

/// What every request of one `emit` carries besides the record's own headers.
struct Fixed<'a> {
    /// The sink's own headers ([`own_headers`]).
    headers: &'a [(String, String)],
    /// `etl.out.content-type`, if set.
    content_type: Option<&'a str>,
}

/// The headers of a batch request whose id is `key`: the sink's own (`fixed.headers`) but
/// `content-type`, then `idempotency-key` (unless the sink sets one), then `content-type`: the
/// configured one, else `kind`'s.
fn batch_headers<'a>(
    fixed: &Fixed<'a>,
    kind: &'a str,
    key: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut headers: Vec<(&str, &str)> = fixed
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-type"))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if let Some(key) = key.filter(|_| !fixed.sets(id::IDEMPOTENCY_KEY)) {
        headers.push((id::IDEMPOTENCY_KEY, key));
    }
    headers.push(("content-type", fixed.content_type.unwrap_or(kind)));
    headers
}

impl Fixed<'_> {
    /// Whether the sink sets the header `name` itself.
    fn sets(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

/// The request's headers: the record's, in order, except `content-type`, those the sink sets
/// itself and, when the record has an id, `idempotency-key`; then the sink's own
/// (`fixed.headers`); then `idempotency-key` = `id` (unless the sink sets one); then
/// `content-type`: the configured one, else the record's first, else `application/json` when
/// `payload` is a JSON object or array, else `application/octet-stream`.
fn request_headers<'a>(
    record: &'a [(String, String)],
    fixed: &Fixed<'a>,
    payload: &[u8],
    id: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let is_content_type = |name: &str| name.eq_ignore_ascii_case("content-type");
    let is_own = |name: &str| {
        fixed
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let own = record
        .iter()
        .find(|(name, _)| is_content_type(name))
        .map(|(_, value)| value.as_str());
    let is_key = |name: &str| id.is_some() && name.eq_ignore_ascii_case(id::IDEMPOTENCY_KEY);
    let mut headers: Vec<(&str, &str)> = record
        .iter()
        .filter(|(name, _)| !is_content_type(name) && !is_own(name) && !is_key(name))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    headers.extend(
        fixed
            .headers
            .iter()
            .filter(|(name, _)| !is_content_type(name))
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    if let Some(id) = id.filter(|_| !fixed.sets(id::IDEMPOTENCY_KEY)) {
        headers.push((id::IDEMPOTENCY_KEY, id));
    }
    let content_type = fixed.content_type.or(own).unwrap_or_else(|| {
        if is_json_document(payload) {
            JSON_CONTENT_TYPE
        } else {
            DEFAULT_CONTENT_TYPE
        }
    });
    headers.push(("content-type", content_type));
    headers
}

/// Whether `payload` is one JSON object or array (whitespace around it allowed), checked without
/// building it (this runs for every record). Scalars are not taken for JSON: `42` or `true` are
/// as likely plain text.
fn is_json_document(payload: &[u8]) -> bool {
    let start = payload.iter().find(|b| !b.is_ascii_whitespace());
    matches!(start, Some(b'{' | b'['))
        && serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok()
}

/// POSTs `body` with `headers` (and its `content-length`); `Err` says why it was not delivered
/// (naming a header, never its value).
///
/// A request with a body also asks `expect: 100-continue` (unless `headers` set `expect`
/// themselves), so that a server that reads the body answers the head at once. Why: on a
/// wasmCloud 1.x host the request reaches the built-in http-client provider over wRPC, which
/// always sends the body after the head (a deferred stream), and the provider's connections
/// have no `TCP_NODELAY`; the head leaves alone, and Nagle holds the body until the head is
/// acknowledged, which the server delays up to 40 ms (delayed ACK: it has nothing to send
/// until it has the body). That capped one instance of an HTTP sink near 24 requests/s. The
/// interim `100 Continue` carries that acknowledgement, and the body leaves at once. A server
/// that ignores the expectation answers as before; one that refuses it (417) is asked once
/// more without it.
fn post(
    target: &Target,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u64,
) -> Result<(), String> {
    let expects = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("expect"));
    let mut expect = !body.is_empty() && !expects;
    loop {
        let deadline = monotonic_clock::now().saturating_add(timeout_ms.saturating_mul(1_000_000));
        let timed_out = |what: &str| {
            format!("{what} within {timeout_ms} ms (`{REQUEST_TIMEOUT}`); the request is dropped")
        };
        let fields = Fields::new();
        for (name, value) in headers {
            fields
                .append(name, value.as_bytes())
                .map_err(|e| format!("the header `{name}` cannot be sent ({e:?})"))?;
        }
        fields
            .append("content-length", body.len().to_string().as_bytes())
            .map_err(|e| format!("the header `content-length` cannot be sent ({e:?})"))?;
        if expect {
            fields
                .append("expect", b"100-continue")
                .map_err(|e| format!("the header `expect` cannot be sent ({e:?})"))?;
        }

        let request = OutgoingRequest::new(fields);
        let bad = |what: &str| format!("the URL's {what} is not valid");
        request
            .set_method(&Method::Post)
            .map_err(|()| bad("method"))?;
        request
            .set_scheme(Some(&target.scheme))
            .map_err(|()| bad("scheme"))?;
        request
            .set_authority(Some(&target.authority))
            .map_err(|()| bad("host"))?;
        request
            .set_path_with_query(Some(&target.path_with_query))
            .map_err(|()| bad("path"))?;
        let outgoing = request
            .body()
            .map_err(|()| "the request body is not available".to_string())?;
        let stream = outgoing
            .write()
            .map_err(|()| "the request body stream is not available".to_string())?;
        // As much of the body as the host takes without waiting goes in before the request is
        // sent, so that a host that sends the request itself (wasmCloud v2) has the head and a
        // small body together; the rest is streamed after.
        let first = match stream.check_write() {
            Ok(room) => usize::try_from(room).unwrap_or(usize::MAX).min(body.len()),
            Err(e) => return Err(format!("writing the body failed: {e:?}")),
        };
        if first > 0 {
            stream
                .write(&body[..first])
                .map_err(|e| format!("writing the body failed: {e:?}"))?;
        }
        let response = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
        if !body.is_empty() && !write_by(&stream, &body[first..], deadline)? {
            return Err(timed_out("the body was not taken"));
        }
        // The stream is a child of the body: dropped before the body is finished.
        drop(stream);
        OutgoingBody::finish(outgoing, None)
            .map_err(|e| format!("finishing the body failed: {e:?}"))?;

        if !ready_by(&response.subscribe(), deadline) {
            return Err(timed_out("no answer"));
        }
        let response = match response.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(e))) => return Err(format!("{e:?}")),
            Some(Err(())) | None => return Err("no response".to_string()),
        };
        let status = response.status();
        if status == 417 && expect {
            // Expectation Failed: the server does not take `expect`; the same request without.
            expect = false;
            continue;
        }
        return if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("the server answered {status}"))
        };
    }
}

/// Writes `bytes` to `stream` and flushes it, each wait bounded by `deadline` (the monotonic
/// clock's nanoseconds): `Ok(false)` when the deadline came first.
fn write_by(stream: &OutputStream, mut bytes: &[u8], deadline: u64) -> Result<bool, String> {
    let failed = |e| format!("writing the body failed: {e:?}");
    while !bytes.is_empty() {
        let room = stream.check_write().map_err(failed)?;
        if room == 0 {
            if !ready_by(&stream.subscribe(), deadline) {
                return Ok(false);
            }
            continue;
        }
        let n = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        stream.write(&bytes[..n]).map_err(failed)?;
        bytes = &bytes[n..];
    }
    // Once the whole body is in, a closed stream is no error: the host may have sent it all and
    // let go (the answer then says how the request went).
    match stream.flush() {
        Ok(()) => {}
        Err(StreamError::Closed) => return Ok(true),
        Err(e) => return Err(failed(e)),
    }
    if !ready_by(&stream.subscribe(), deadline) {
        return Ok(false);
    }
    match stream.check_write() {
        Ok(_) | Err(StreamError::Closed) => Ok(true),
        Err(e) => Err(failed(e)),
    }
}

/// Waits until `pollable` is ready or the monotonic clock reaches `deadline` (nanoseconds):
/// whether it is ready. Why a deadline: on a wasmCloud 1.x host a request travels to an
/// http-client provider over wRPC, which times only the provider's first answer; when the
/// provider's host dies after that, the answer never comes, and a wait without end would hold
/// the component's instance (and the delivery it handles) for good.
fn ready_by(pollable: &Pollable, deadline: u64) -> bool {
    if pollable.ready() {
        return true;
    }
    let timer = monotonic_clock::subscribe_instant(deadline);
    poll::poll(&[pollable, &timer]).contains(&0)
}

/// The value of [`REQUEST_TIMEOUT`]: unset, [`DEFAULT_REQUEST_TIMEOUT_MS`]; else a positive
/// whole number of milliseconds.
fn request_timeout(value: Option<&str>) -> Result<u64, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_REQUEST_TIMEOUT_MS),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "config `{REQUEST_TIMEOUT}` is not a positive number of milliseconds: `{text}`"
            )),
        },
    }
}

export!(OutHttp);

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    fn parse(url: &str) -> (&'static str, String, String) {
        let t = Target::parse(url).unwrap();
        let scheme = match t.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Other(_) => "other",
        };
        (scheme, t.authority, t.path_with_query)
    }

    #[test]
    fn the_request_timeout_is_a_positive_number_of_milliseconds_else_ten_seconds() {
        assert_eq!(request_timeout(None), Ok(10_000));
        assert_eq!(request_timeout(Some(" ")), Ok(10_000));
        assert_eq!(request_timeout(Some(" 250 ")), Ok(250));
        for bad in ["0", "-5", "10s", "1.5"] {
            assert_eq!(
                request_timeout(Some(bad)),
                Err(format!(
                    "config `etl.out.request-timeout` is not a positive number of milliseconds: `{bad}`"
                ))
            );
        }
    }

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let s = |a: &str, p: &str| (a.to_string(), p.to_string());
        let with = |scheme, (a, p): (String, String)| (scheme, a, p);
        assert_eq!(
            parse("https://alerts.acme.example/hook?x=1#frag"),
            with("https", s("alerts.acme.example", "/hook?x=1"))
        );
        assert_eq!(
            parse("HTTP://127.0.0.1:8080"),
            with("http", s("127.0.0.1:8080", "/"))
        );
        assert_eq!(parse("http://h?q=1"), with("http", s("h", "/?q=1")));
    }

    #[test]
    fn unusable_urls_are_refused() {
        assert!(Target::parse("alerts.acme.example/hook").is_err());
        assert!(Target::parse("ftp://h/x").is_err());
        assert!(Target::parse("https:///x").is_err());
    }

    /// No headers of the sink's own, and `content_type` configured.
    fn plain(content_type: Option<&str>) -> Fixed<'_> {
        Fixed {
            headers: &[],
            content_type,
        }
    }

    #[test]
    fn content_type_is_configured_else_the_records_else_octet_stream() {
        let record = [
            header("traceparent", "t"),
            header("Content-Type", "application/json"),
            header("x", "1"),
        ];
        let json = br#"{"sensor": "t-1"}"#;
        assert_eq!(
            request_headers(&record, &plain(Some("text/csv")), json, None),
            [
                ("traceparent", "t"),
                ("x", "1"),
                ("content-type", "text/csv")
            ]
        );
        assert_eq!(
            request_headers(&record, &plain(None), json, None),
            [
                ("traceparent", "t"),
                ("x", "1"),
                ("content-type", "application/json")
            ]
        );
        assert_eq!(
            request_headers(&[], &plain(None), b"t-101;82.5", None),
            [("content-type", "application/octet-stream")]
        );
    }

    #[test]
    fn a_json_object_or_array_without_a_content_type_is_sent_as_json() {
        let ct = |payload: &[u8]| request_headers(&[], &plain(None), payload, None)[0].1;
        assert_eq!(
            ct(br#"{"sensor": "t-1", "temp_c": 82.5}"#),
            "application/json"
        );
        assert_eq!(ct(b" [1, 2]\n"), "application/json");
        // Not JSON, or a scalar that is as likely plain text.
        assert_eq!(ct(b"{not json"), "application/octet-stream");
        assert_eq!(ct(b"{} trailing"), "application/octet-stream");
        assert_eq!(ct(b"42"), "application/octet-stream");
        assert_eq!(ct(b"\"text\""), "application/octet-stream");
        assert_eq!(ct(b""), "application/octet-stream");
        assert_eq!(ct(&[0xff, 0xfe]), "application/octet-stream");
        // The record's own content-type wins over the payload.
        let csv = [header("content-type", "text/csv")];
        assert_eq!(
            request_headers(&csv, &plain(None), b"[1]", None)[0].1,
            "text/csv"
        );
    }

    /// A secret store holding `pairs`; any other name has no value.
    fn store(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Result<Option<String>, String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| header(k, v)).collect();
        move |name| {
            Ok(pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()))
        }
    }

    #[test]
    fn the_sinks_own_headers_are_its_plain_and_secret_header_settings_in_name_order() {
        let config = [
            header("etl.out.url", "https://hooks.example/x"),
            header("etl.out.header.X-Site", "east"),
            header("etl.out.header.authorization", "Basic plain"),
            header("etl.secrets", "header.X-Api-Key, authorization,other"),
            header("authorization", "not read from config"),
        ];
        let secrets = store(&[
            ("authorization", "Bearer s3cr3t"),
            ("header.X-Api-Key", "k-123"),
            ("other", "a provider credential, not a header"),
        ]);
        assert_eq!(
            own_headers(&config, secrets).unwrap(),
            [
                header("authorization", "Basic plain"),
                header("authorization", "Bearer s3cr3t"),
                header("X-Api-Key", "k-123"),
                header("X-Site", "east"),
            ]
        );
        assert_eq!(own_headers(&[], store(&[])).unwrap(), []);
    }

    #[test]
    fn a_secret_without_a_value_or_unreadable_is_an_error_naming_the_setting_only() {
        let config = [header("etl.secrets", "authorization")];
        let e = own_headers(&config, store(&[])).unwrap_err();
        assert_eq!(e, "secret setting `authorization` has no value");
        let e = own_headers(&config, |_| Err("upstream: backend down".to_string())).unwrap_err();
        assert_eq!(
            e,
            "cannot read secret setting `authorization` (upstream: backend down)"
        );
        // Settings that are not headers are not read at all.
        let config = [header("etl.secrets", "sasl_password")];
        let unread = |_: &str| -> Result<Option<String>, String> { panic!("read") };
        assert_eq!(own_headers(&config, unread).unwrap(), []);
    }

    #[test]
    fn the_sinks_own_headers_replace_the_records_and_precede_content_type() {
        let own = [
            header("Authorization", "Bearer s3cr3t"),
            header("X-Api-Key", "k-123"),
        ];
        let fixed = Fixed {
            headers: &own,
            content_type: Some("application/json"),
        };
        let record = [
            header("traceparent", "t"),
            header("authorization", "from the record"),
            header("x-api-key", "from the record"),
            header("x", "1"),
        ];
        assert_eq!(
            request_headers(&record, &fixed, b"{}", None),
            [
                ("traceparent", "t"),
                ("x", "1"),
                ("Authorization", "Bearer s3cr3t"),
                ("X-Api-Key", "k-123"),
                ("content-type", "application/json"),
            ]
        );
    }

    #[test]
    fn a_record_with_an_id_is_sent_with_it_as_its_idempotency_key() {
        let record = [
            header("Idempotency-Key", "from the record"),
            header("x", "1"),
        ];
        assert_eq!(
            request_headers(&record, &plain(None), b"{}", Some("order-17-0.0.0")),
            [
                ("x", "1"),
                ("idempotency-key", "order-17-0.0.0"),
                ("content-type", "application/json")
            ]
        );
        // Without an id, the record's own header goes as it is.
        assert_eq!(
            request_headers(&record, &plain(None), b"{}", None),
            [
                ("Idempotency-Key", "from the record"),
                ("x", "1"),
                ("content-type", "application/json")
            ]
        );
        // The sink's own setting wins.
        let own = [header("Idempotency-Key", "fixed")];
        let fixed = Fixed {
            headers: &own,
            content_type: None,
        };
        assert_eq!(
            request_headers(&record, &fixed, b"{}", Some("r-0")),
            [
                ("x", "1"),
                ("Idempotency-Key", "fixed"),
                ("content-type", "application/json")
            ]
        );
    }

    #[test]
    fn a_batch_request_is_keyed_by_its_first_id_and_its_count() {
        let key = id::batch("order-17-0.0", 3);
        assert_eq!(
            batch_headers(&plain(None), NDJSON_CONTENT_TYPE, Some(&key)),
            [
                ("idempotency-key", "order-17-0.0+3"),
                ("content-type", "application/x-ndjson")
            ]
        );
        assert_eq!(
            batch_headers(&plain(Some("text/plain")), JSON_CONTENT_TYPE, None),
            [("content-type", "text/plain")]
        );
        let own = [
            header("authorization", "Bearer s"),
            header("content-type", "ignored"),
        ];
        let fixed = Fixed {
            headers: &own,
            content_type: None,
        };
        assert_eq!(
            batch_headers(&fixed, JSON_CONTENT_TYPE, Some("r-0+2")),
            [
                ("authorization", "Bearer s"),
                ("idempotency-key", "r-0+2"),
                ("content-type", "application/json")
            ]
        );
    }
}
