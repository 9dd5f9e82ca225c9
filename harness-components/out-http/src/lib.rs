//! `out-http`: the `out` part of an `http` sink, world `etl:platform/out-http`.
//!
//! `emit(outputs)` POSTs each output's payload, in order, to the URL in the config key
//! `etl.out.url` through `wasi:http/outgoing-handler`, with the record's headers and a
//! `content-type`. It stops at the first output that is not delivered: a request that fails or
//! is answered with a status other than 2xx is an error naming the output and the status.
//!
//! `content-type`: `etl.out.content-type` if set, else the record's own `content-type` header,
//! else `application/json` when the payload is a JSON object or array, else
//! `application/octet-stream`.
//!
//! `dead-letter` is always an error: an HTTP sink has no dead-letter destination. (In a sink the
//! transform is `identity`, which never rejects a record, so it is not reached.)

etl_harness_bindings::generate!("etl:platform/out-http");
etl_harness_bindings::config_error_text!();

use etl::pipeline::types::Message;
use exports::etl::platform::emit::Guest;
use wasi::config::runtime;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

/// Config key: the URL every output is POSTed to.
const URL: &str = "etl.out.url";
/// Config key: the `content-type` of every request (overrides the record's own).
const CONTENT_TYPE: &str = "etl.out.content-type";
/// `content-type` when neither the config nor the record names one and the payload is JSON.
const JSON_CONTENT_TYPE: &str = "application/json";
/// `content-type` when neither the config nor the record names one and the payload is not JSON.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// The most `blocking-write-and-flush` accepts at once.
const WRITE_CHUNK: usize = 4096;

struct OutHttp;

impl Guest for OutHttp {
    fn emit(outputs: Vec<Message>) -> Result<(), String> {
        let url = config(URL)?.ok_or_else(|| {
            format!(
                "etl out-http: config `{URL}` is not set: {} output(s) not delivered",
                outputs.len()
            )
        })?;
        let target = Target::parse(&url).map_err(|why| {
            format!("etl out-http: config `{URL}` = `{url}` is not a usable URL: {why}")
        })?;
        let content_type = config(CONTENT_TYPE)?;
        let count = outputs.len();
        for (i, output) in outputs.iter().enumerate() {
            post(&target, content_type.as_deref(), output).map_err(|why| {
                format!(
                    "etl out-http: POST {url} of output {} of {count} failed: {why}",
                    i + 1
                )
            })?;
        }
        Ok(())
    }

    fn dead_letter(_input: Message, reason: String) -> Result<(), String> {
        Err(format!(
            "etl out-http: no dead-letter destination for http sinks (reason: {reason})"
        ))
    }
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

/// The request's headers: the record's, in order, except `content-type`; then `content-type`:
/// the configured one, else the record's first, else `application/json` when `payload` is a
/// JSON object or array, else `application/octet-stream`.
fn request_headers<'a>(
    record: &'a [(String, String)],
    configured: Option<&'a str>,
    payload: &[u8],
) -> Vec<(&'a str, &'a str)> {
    let is_content_type = |name: &str| name.eq_ignore_ascii_case("content-type");
    let own = record
        .iter()
        .find(|(name, _)| is_content_type(name))
        .map(|(_, value)| value.as_str());
    let mut headers: Vec<(&str, &str)> = record
        .iter()
        .filter(|(name, _)| !is_content_type(name))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let content_type = configured.or(own).unwrap_or_else(|| {
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

/// POSTs one output; `Err` says why it was not delivered.
fn post(target: &Target, content_type: Option<&str>, output: &Message) -> Result<(), String> {
    let headers = Fields::new();
    for (name, value) in request_headers(&output.headers, content_type, &output.payload) {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| format!("the header `{name}` cannot be sent ({e:?})"))?;
    }

    let request = OutgoingRequest::new(headers);
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
    let body = request
        .body()
        .map_err(|()| "the request body is not available".to_string())?;

    // Send first, then stream the body: the host reads it while it is written.
    let response = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    {
        let stream = body
            .write()
            .map_err(|()| "the request body stream is not available".to_string())?;
        for chunk in output.payload.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("writing the body failed: {e:?}"))?;
        }
        // The stream is a child of the body: dropped here, before the body is finished.
    }
    OutgoingBody::finish(body, None).map_err(|e| format!("finishing the body failed: {e:?}"))?;

    response.subscribe().block();
    let response = match response.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(format!("{e:?}")),
        Some(Err(())) | None => return Err("no response".to_string()),
    };
    let status = response.status();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("the server answered {status}"))
    }
}

/// A platform setting; a failure to read the settings is an error naming the key.
fn config(key: &str) -> Result<Option<String>, String> {
    runtime::get(key).map_err(|e| {
        let text = config_error_text(&e);
        format!("etl out-http: cannot read config `{key}` ({text})")
    })
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

    #[test]
    fn content_type_is_configured_else_the_records_else_octet_stream() {
        let record = [
            header("traceparent", "t"),
            header("Content-Type", "application/json"),
            header("x", "1"),
        ];
        let json = br#"{"sensor": "t-1"}"#;
        assert_eq!(
            request_headers(&record, Some("text/csv"), json),
            [
                ("traceparent", "t"),
                ("x", "1"),
                ("content-type", "text/csv")
            ]
        );
        assert_eq!(
            request_headers(&record, None, json),
            [
                ("traceparent", "t"),
                ("x", "1"),
                ("content-type", "application/json")
            ]
        );
        assert_eq!(
            request_headers(&[], None, b"t-101;82.5"),
            [("content-type", "application/octet-stream")]
        );
    }

    #[test]
    fn a_json_object_or_array_without_a_content_type_is_sent_as_json() {
        let ct = |payload: &[u8]| request_headers(&[], None, payload)[0].1;
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
        assert_eq!(request_headers(&csv, None, b"[1]")[0].1, "text/csv");
    }
}
