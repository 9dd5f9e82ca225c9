//! `lookup`: calls an HTTP API for each record and merges the answer into it. A customer step
//! that calls out (`wasi:http/outgoing-handler`), so its policy grant must name the hosts it may
//! call (docs/spec.md, "Outbound HTTP"); built by `examples/build-components.sh` for
//! `wasm32-unknown-unknown` (it imports the contract, `wasi:http` and `wasi:io`, nothing else).
//!
//! Config (`config:` of the step):
//! - `url` (required): the API, `http[s]://host[:port][/path][?query]`;
//! - `method`: `POST` (default: the record's payload is the body, `content-type:
//!   application/json`) or `GET` (no body);
//! - `field`: when set, the answer goes under this key; otherwise its fields are merged into the
//!   record (the answer's win).
//!
//! In: a JSON object. Out: the object with the answer merged in, key and headers unchanged.
//!
//! What happens to a record (docs/harness.md, "What a denied request does to a record"):
//! - the input is not a JSON object: `invalid` (dead-lettered);
//! - `url` is unset or unusable: `transient` (a deployment fault, like `enrich`'s `site`);
//! - the request is denied by the egress policy (`HTTP-request-denied`: the host is not granted
//!   to the step): `invalid("egress denied: …")`, so the record waits in the step's dead-letter
//!   subject with the reason, to be republished once the grant names the host; retrying could
//!   not help, and on core NATS a `transient` error is not redelivered;
//! - the API answers 4xx (but 408 and 429): `invalid` (it refuses this record);
//! - the API answers 408, 429 or 5xx, or the call fails on the way (connection refused, DNS,
//!   timeout): `transient`;
//! - a 2xx answer that is not a JSON object, or over 1 MiB: `invalid`.

wit_bindgen::generate!({
    inline: "
        package etl:examples;

        world lookup {
            include etl:pipeline/transformer@0.1.0;
            import wasi:http/outgoing-handler@0.2.12;
        }
    ",
    path: [
        "../../../wit/deps/wasi-io-0.2.12",
        "../../../wit/deps/wasi-clocks-0.2.12",
        "../../../wit/deps/wasi-random-0.2.12",
        "../../../wit/deps/wasi-filesystem-0.2.12",
        "../../../wit/deps/wasi-sockets-0.2.12",
        "../../../wit/deps/wasi-cli-0.2.12",
        "../../../wit/deps/wasi-http-0.2.12",
        "../../../wit/etl-pipeline",
    ],
    world: "etl:examples/lookup",
    generate_all,
});

use etl::pipeline::config;
use etl::pipeline::types::{Error, Message};
use exports::etl::pipeline::transform::Guest;
use serde_json::{Map, Value};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasi::io::streams::StreamError;

/// The largest answer read.
const MAX_ANSWER: usize = 1024 * 1024;
/// The most `blocking-write-and-flush` takes at once.
const WRITE_CHUNK: usize = 4096;

struct Lookup;

impl Guest for Lookup {
    fn transform(input: Message) -> Result<Vec<Message>, Error> {
        let mut record: Map<String, Value> = serde_json::from_slice(&input.payload)
            .map_err(|e| Error::Invalid(format!("not a JSON object: {e}")))?;
        let url = config::get("url")
            .ok_or_else(|| Error::Transient("config key `url` is not set".to_string()))?;
        let target = Target::parse(&url)
            .map_err(|why| Error::Transient(format!("config `url` = `{url}`: {why}")))?;
        let post = match config::get("method").as_deref() {
            None => true,
            Some(m) if m.eq_ignore_ascii_case("post") => true,
            Some(m) if m.eq_ignore_ascii_case("get") => false,
            Some(m) => {
                return Err(Error::Transient(format!(
                    "config `method` = `{m}`: `GET` or `POST`"
                )));
            }
        };
        let body = if post { Some(&input.payload[..]) } else { None };
        let answer = call(&target, body).map_err(|failure| failure.into_error(&url))?;
        match config::get("field") {
            Some(field) => {
                record.insert(field, Value::Object(answer));
            }
            None => record.extend(answer),
        }
        let payload = serde_json::to_vec(&record)
            .map_err(|e| Error::Transient(format!("cannot encode the record: {e}")))?;
        Ok(vec![Message {
            key: input.key,
            payload,
            headers: input.headers,
        }])
    }
}

/// Where to call: `http[s]://authority[/path][?query]`.
struct Target {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, &'static str> {
        let (scheme, rest) = url.trim().split_once("://").ok_or("it has no scheme")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err("its scheme is neither http nor https"),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
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

/// Why a call gave no answer to merge.
enum Failure {
    /// The egress policy refused the request.
    Denied,
    /// The API refused the record (4xx) or answered what cannot be merged.
    Refused(String),
    /// Worth another try: 408, 429, 5xx, a transport error.
    Passing(String),
}

impl Failure {
    fn into_error(self, url: &str) -> Error {
        match self {
            Failure::Denied => Error::Invalid(format!(
                "egress denied: the step may not call {url} (its host is not granted)"
            )),
            Failure::Refused(why) => Error::Invalid(format!("{url}: {why}")),
            Failure::Passing(why) => Error::Transient(format!("{url}: {why}")),
        }
    }
}

fn from_code(code: ErrorCode) -> Failure {
    match code {
        ErrorCode::HttpRequestDenied => Failure::Denied,
        other => Failure::Passing(format!("the call failed: {other:?}")),
    }
}

/// Sends one request and reads its answer, a JSON object.
fn call(target: &Target, body: Option<&[u8]>) -> Result<Map<String, Value>, Failure> {
    let local = |what: &str| Failure::Passing(format!("cannot build the request: {what}"));
    let headers = Fields::new();
    headers
        .append("accept", b"application/json")
        .map_err(|_| local("accept"))?;
    if let Some(body) = body {
        headers
            .append("content-type", b"application/json")
            .map_err(|_| local("content-type"))?;
        // Sized rather than chunked: every server reads it.
        headers
            .append("content-length", body.len().to_string().as_bytes())
            .map_err(|_| local("content-length"))?;
    }
    let request = OutgoingRequest::new(headers);
    let method = if body.is_some() {
        Method::Post
    } else {
        Method::Get
    };
    request.set_method(&method).map_err(|()| local("method"))?;
    request
        .set_scheme(Some(&target.scheme))
        .map_err(|()| local("scheme"))?;
    request
        .set_authority(Some(&target.authority))
        .map_err(|()| local("host"))?;
    request
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| local("path"))?;
    let outgoing = request.body().map_err(|()| local("body"))?;

    let response = outgoing_handler::handle(request, None).map_err(from_code)?;
    // A body that cannot be sent (the connection refused, say) is explained by the response's
    // error, when there is one.
    let sent = send_body(outgoing, body.unwrap_or_default());
    response.subscribe().block();
    let response = match response.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(from_code(code)),
        Some(Err(())) | None => return Err(Failure::Passing("no answer".to_string())),
    };
    sent?;
    let status = response.status();
    match status {
        200..=299 => {}
        408 | 429 | 500..=599 => {
            return Err(Failure::Passing(format!("the API answered {status}")));
        }
        _ => return Err(Failure::Refused(format!("the API answered {status}"))),
    }
    let incoming = response
        .consume()
        .map_err(|()| Failure::Passing("the answer has no body".to_string()))?;
    let bytes = read_all(&incoming)?;
    drop(IncomingBody::finish(incoming));
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(answer)) => Ok(answer),
        Ok(_) => Err(Failure::Refused(
            "the API answered JSON that is not an object".to_string(),
        )),
        Err(e) => Err(Failure::Refused(format!(
            "the API answered what is not JSON: {e}"
        ))),
    }
}

/// Writes `bytes` into the request's body and finishes it.
fn send_body(outgoing: OutgoingBody, bytes: &[u8]) -> Result<(), Failure> {
    {
        let stream = outgoing
            .write()
            .map_err(|()| Failure::Passing("the request body is not available".to_string()))?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| Failure::Passing(format!("sending the body failed: {e:?}")))?;
        }
        // The stream is a child of the body: dropped here, before the body is finished.
    }
    OutgoingBody::finish(outgoing, None).map_err(from_code)
}

/// The whole body, at most [`MAX_ANSWER`] bytes.
fn read_all(body: &IncomingBody) -> Result<Vec<u8>, Failure> {
    let stream = body
        .stream()
        .map_err(|()| Failure::Passing("the answer's body stream is not available".to_string()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > MAX_ANSWER {
                    return Err(Failure::Refused(format!(
                        "the answer is larger than {MAX_ANSWER} bytes"
                    )));
                }
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Failure::Passing(format!(
                    "reading the answer failed: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
}

export!(Lookup);
