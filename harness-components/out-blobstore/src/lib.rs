//! `out-blobstore`: the `out` part of an `s3` sink, world `etl:platform/out-blobstore`.
//!
//! `deliver(outcomes)` writes the batch's outputs through `wasi:blobstore`, in the container
//! named by the config key `etl.out.container`, under object names rendered from the template
//! `etl.out.key` (default `{key}`), as `etl.out.batch` says:
//!
//! - `none` (the default): each output's payload, in order, as one object; `{key}` is the
//!   record's key, `{seq}` the output's index (0-based) among the outputs of its input record;
//! - `ndjson`: one object per batch, the payloads one per line (a payload holding a line break
//!   must be JSON, whose line breaks become spaces), at most `etl.out.batch-bytes` bytes (default
//!   8 MiB: a larger batch is written as several objects); `{digest}` is the object's SHA-256 in
//!   lowercase hex, `{key}` the key of its first record, `{seq}` its index (0-based) in this
//!   batch. The template must contain `{digest}` (default `{digest}.ndjson`): nothing else tells
//!   one batch's object from another's, and the same records give the same name, so a batch
//!   written again replaces itself.
//!
//! `{id}` is the record's id (docs/harness.md#record-ids) with `none`, and `<first id>+<count>`
//! (its first record's id and its number of records) with `ndjson`; empty without one. It comes
//! as the record's last header `etl-id` (appended by the `in` part); objects carry no headers.
//! `{key}` is the key as is if it is UTF-8, else its bytes in lowercase hex; empty if the record
//! has no key. Any other `{…}` in the template is an error, as is an empty object name; every
//! name is rendered before anything is written. An existing object of the same name is
//! replaced. It stops at the first object not written, with an error naming it. A rejected
//! input is an error: an object-store sink has no dead-letter destination. (In a sink the
//! transform is `identity`, which never rejects a record, so it is not reached.)

etl_harness_bindings::generate!("etl:platform/out-blobstore");
etl_harness_bindings::config_error_text!();

use etl_harness_bindings::{BATCH, BATCH_BYTES, batch_bytes, id, mode, ndjson_line, pack};
use exports::etl::platform::emit::Guest;
use exports::etl::platform::emit::Outcome;
use sha2::{Digest, Sha256};
use wasi::blobstore::blobstore::get_container;
use wasi::blobstore::types::OutgoingValue;
use wasi::config::runtime;

/// Config key: the container every object is written to.
const CONTAINER: &str = "etl.out.container";
/// Config key: the object-name template.
const KEY: &str = "etl.out.key";
/// `etl.out.key` when it is not set.
const DEFAULT_KEY: &str = "{key}";
/// `etl.out.key` when it is not set and objects are NDJSON batches.
const DEFAULT_BATCH_KEY: &str = "{digest}.ndjson";
/// The placeholder a batch object's name must contain.
const DIGEST: &str = "{digest}";
/// The most `blocking-write-and-flush` accepts at once.
const WRITE_CHUNK: usize = 4096;
/// `etl.out.batch-bytes` when it is not set: 8 MiB.
const DEFAULT_BATCH_BYTES: usize = 8 << 20;

struct OutBlobstore;

impl Guest for OutBlobstore {
    fn deliver(outcomes: Vec<Outcome>) -> Result<(), String> {
        // Each output with its index among its input record's outputs.
        let mut outputs = Vec::new();
        for outcome in outcomes {
            match outcome {
                Outcome::Outputs(list) => outputs.extend(list.into_iter().enumerate()),
                Outcome::Invalid(rejected) => {
                    return Err(format!(
                        "etl out-blobstore: no dead-letter destination for blobstore sinks (reason: {})",
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
            .map(|(_, o)| id::take(&mut o.headers))
            .collect();
        let name = config(CONTAINER)?.filter(|c| !c.is_empty()).ok_or_else(|| {
            format!("etl out-blobstore: config `{CONTAINER}` is not set: {count} output(s) not written")
        })?;
        let ndjson = mode(BATCH, config(BATCH)?.as_deref(), &["none", "ndjson"])
            .map_err(|why| format!("etl out-blobstore: {why}"))?
            == "ndjson";
        let default = if ndjson {
            DEFAULT_BATCH_KEY
        } else {
            DEFAULT_KEY
        };
        let template = config(KEY)?.unwrap_or_else(|| default.to_string());
        if ndjson && !template.contains(DIGEST) {
            return Err(format!(
                "etl out-blobstore: config `{KEY}` = `{template}` has no {DIGEST}, so every NDJSON \
                 batch object could get the same name and replace the one before: {count} \
                 output(s) not written"
            ));
        }
        let bad_template =
            |why: String| format!("etl out-blobstore: config `{KEY}` = `{template}`: {why}");
        // Every object (name and bytes) is made first: a bad template writes nothing.
        let objects: Vec<(String, Vec<u8>)> = if ndjson {
            let max = batch_bytes(config(BATCH_BYTES)?.as_deref(), DEFAULT_BATCH_BYTES)
                .map_err(|why| format!("etl out-blobstore: {why}"))?;
            let lines = outputs
                .iter()
                .enumerate()
                .map(|(i, (_, o))| {
                    ndjson_line(&o.payload, is_json).map_err(|why| {
                        format!(
                            "etl out-blobstore: output {} of {count} cannot be written as NDJSON: {why}; nothing was written",
                            i + 1
                        )
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            pack(lines.iter().map(|l| l.len() + 1), 0, max)
                .into_iter()
                .enumerate()
                .map(|(seq, run)| {
                    let mut data = Vec::new();
                    for l in &lines[run.clone()] {
                        data.extend_from_slice(l);
                        data.push(b'\n');
                    }
                    let digest = hex(&Sha256::digest(&data));
                    let template = template.replace(DIGEST, &digest);
                    let first = Record {
                        key: outputs[run.start].1.key.as_deref(),
                        seq,
                        id: ids[run.start]
                            .as_deref()
                            .map(|first| id::batch(first, run.len())),
                    };
                    let object = render(&template, &first).map_err(bad_template)?;
                    Ok((object, data))
                })
                .collect::<Result<_, String>>()?
        } else {
            outputs
                .into_iter()
                .zip(ids)
                .map(|((seq, o), id)| {
                    let record = Record {
                        key: o.key.as_deref(),
                        seq,
                        id,
                    };
                    Ok((render(&template, &record)?, o.payload))
                })
                .collect::<Result<_, String>>()
                .map_err(bad_template)?
        };
        let container = get_container(&name)
            .map_err(|e| format!("etl out-blobstore: cannot open container `{name}`: {e}"))?;
        let total = objects.len();
        for (i, (object, data)) in objects.iter().enumerate() {
            write(&container, object, data).map_err(|why| {
                format!(
                    "etl out-blobstore: writing object {} of {total} to `{name}/{object}` failed: {why}",
                    i + 1
                )
            })?;
        }
        Ok(())
    }
}

/// Whether `payload` is one JSON document.
fn is_json(payload: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok()
}

/// What an object's name is rendered from.
struct Record<'a> {
    /// `{key}`: the record's key (of an NDJSON object, its first record's).
    key: Option<&'a [u8]>,
    /// `{seq}`.
    seq: usize,
    /// `{id}`: the record's id (of an NDJSON object, `<first id>+<count>`).
    id: Option<String>,
}

/// The object name for one output: `template` with `{key}`, `{seq}` and `{id}` replaced.
fn render(template: &str, record: &Record<'_>) -> Result<String, String> {
    let mut name = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        name.push_str(&rest[..open]);
        let after = &rest[open..];
        let close = after
            .find('}')
            .ok_or_else(|| "a `{` is not closed".to_string())?;
        match &after[..=close] {
            "{key}" => name.push_str(&key_text(record.key.unwrap_or_default())),
            "{seq}" => name.push_str(&record.seq.to_string()),
            "{id}" => name.push_str(record.id.as_deref().unwrap_or_default()),
            other => {
                return Err(format!(
                    "unknown placeholder `{other}` (only {{key}}, {{seq}} and {{id}} are defined)"
                ));
            }
        }
        rest = &after[close + 1..];
    }
    name.push_str(rest);
    if name.is_empty() {
        return Err("the object name is empty (a record without a key or an id?)".to_string());
    }
    Ok(name)
}

/// A record key as text: itself if UTF-8, else lowercase hex.
fn key_text(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) => text.to_string(),
        Err(_) => hex(key),
    }
}

/// `bytes` in lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes one object. The host starts the upload in `write-data` and reads the stream while it
/// is written, so `write-data` comes before the body; `finish` waits for the upload.
fn write(
    container: &wasi::blobstore::container::Container,
    object: &str,
    payload: &[u8],
) -> Result<(), String> {
    let value = OutgoingValue::new_outgoing_value();
    let stream = value
        .outgoing_value_write_body()
        .map_err(|()| "the value's stream is not available".to_string())?;
    container.write_data(object, &value)?;
    for chunk in payload.chunks(WRITE_CHUNK) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| format!("writing the object failed: {e:?}"))?;
    }
    // The stream is a child of the value: drop it (ending the data) before finishing.
    drop(stream);
    OutgoingValue::finish(value)
}

/// A platform setting; a failure to read the settings is an error naming the key.
fn config(key: &str) -> Result<Option<String>, String> {
    runtime::get(key).map_err(|e| {
        let text = config_error_text(&e);
        format!("etl out-blobstore: cannot read config `{key}` ({text})")
    })
}

export!(OutBlobstore);

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, key: Option<&[u8]>, seq: usize) -> Result<String, String> {
        super::render(template, &Record { key, seq, id: None })
    }

    #[test]
    fn the_template_renders_key_and_seq() {
        assert_eq!(
            render("readings/{key}/{seq}.json", Some(b"t-1"), 3).unwrap(),
            "readings/t-1/3.json"
        );
        assert_eq!(
            render("{key}", Some(&[0xff, 0x00, 0x1a]), 0).unwrap(),
            "ff001a"
        );
        assert_eq!(render("x-{key}", None, 0).unwrap(), "x-");
        assert_eq!(render("fixed", Some(b"k"), 1).unwrap(), "fixed");
    }

    #[test]
    fn the_template_renders_the_id() {
        let record = |id: Option<&str>| Record {
            key: Some(b"t-1"),
            seq: 0,
            id: id.map(str::to_owned),
        };
        assert_eq!(
            super::render("readings/{id}.json", &record(Some("order-17-0.0.0"))).unwrap(),
            "readings/order-17-0.0.0.json"
        );
        assert_eq!(
            super::render("{key}/{id}", &record(Some("r-0+3"))).unwrap(),
            "t-1/r-0+3"
        );
        // Without an id: empty.
        assert_eq!(super::render("{key}-{id}", &record(None)).unwrap(), "t-1-");
        assert!(
            super::render("{id}", &record(None))
                .unwrap_err()
                .contains("empty")
        );
    }

    #[test]
    fn bad_templates_and_empty_names_are_errors() {
        assert!(
            render("{key", Some(b"k"), 0)
                .unwrap_err()
                .contains("not closed")
        );
        assert!(
            render("{date}/{key}", Some(b"k"), 0)
                .unwrap_err()
                .contains("`{date}`")
        );
        assert!(render("{key}", None, 0).unwrap_err().contains("empty"));
        assert!(render("", Some(b"k"), 0).unwrap_err().contains("empty"));
    }
}
