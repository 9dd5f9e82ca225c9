//! Record ids (docs/harness.md#record-ids): every record carries a stable id from the source
//! on, the same on every delivery of the same record, so a consumer can tell a duplicate. The
//! rules, tested on the host:
//!
//! - record `i` (from 0) of a request to `in-http`: `<request-key>-<i>` ([`input`]), the request
//!   key being the client's `Idempotency-Key` header ([`request_key`]), else 32 random lowercase
//!   hex digits ([`random_key`]);
//! - a record without an id that `in-messaging` got from a JetStream consumer:
//!   `<stream>:<stream-seq>-<i>` ([`input`] of `etl_harness_report::ack::id_prefix`);
//! - output `k` (from 0) of a record with id `X`: `X.<k>` ([`output`]); a dead letter keeps its
//!   input's id;
//! - a batched HTTP request (or NDJSON object) of `n` records whose first has id `X`: `X+<n>`
//!   ([`batch`]).
//!
//! The id travels from a step's `in` part to its `out` part as the last header, [`HEADER`],
//! which the `in` part appends to each output and rejected input after the transform (having
//! removed any the transform returned: [`tag`]) and the `out` part removes before anything
//! leaves ([`take`]). The transform never sees it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The header that carries a record's id from the `in` part to the `out` part of a step.
pub const HEADER: &str = "etl-id";
/// The request header whose value is a request's key at `in-http`, and the header an HTTP
/// sink sends each record's (or batch's) id in.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header in which `in-http` returns a request's key.
pub const REQUEST_ID: &str = "etl-request-id";
/// The longest request key a client may send, in bytes.
pub const MAX_REQUEST_KEY: usize = 128;

/// The id of record `i` (from 0) of a request or message whose key is `key`: `<key>-<i>`.
pub fn input(key: &str, i: usize) -> String {
    format!("{key}-{i}")
}

/// The id of output `k` (from 0) of the record whose id is `id`: `<id>.<k>`.
pub fn output(id: &str, k: usize) -> String {
    format!("{id}.{k}")
}

/// The id of a request (or object) that carries `count` records, the first with id `first`:
/// `<first>+<count>`.
pub fn batch(first: &str, count: usize) -> String {
    format!("{first}+{count}")
}

/// The NATS header by which a JetStream stream drops a message published again within its
/// duplicate window: what the `msg-id` part sets to [`message`].
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";

/// The `Nats-Msg-Id` of a message to `subject` that carries records with ids `ids`, in order:
/// `<id>@<subject>`, `<id>` being the one record's id, or `<first>+<count>` ([`batch`]) for
/// several; `None` when it carries none, or one has no id (then no two deliveries of it could be
/// told apart by its id). The subject keeps apart what two units publish of the same records
/// into one stream (two steps reading one input give their outputs the same ids), which a
/// stream's de-duplication, one window per stream, would otherwise drop as one.
pub fn message<'a>(
    ids: impl IntoIterator<Item = Option<&'a str>>,
    subject: &str,
) -> Option<String> {
    let mut ids = ids.into_iter();
    let first = ids.next()??;
    let mut count = 1;
    for id in ids {
        id?;
        count += 1;
    }
    Some(if count == 1 {
        format!("{first}@{subject}")
    } else {
        format!("{}@{subject}", batch(first, count))
    })
}

/// A request key of 32 lowercase hex digits, from two random numbers.
pub fn random_key(high: u64, low: u64) -> String {
    format!("{high:016x}{low:016x}")
}

/// The request key a client sent in its `Idempotency-Key` headers (`values`, each as sent):
/// `Ok(None)` without one; `Ok(Some(key))`, trimmed, when there is exactly one of 1 to
/// [`MAX_REQUEST_KEY`] bytes of `A`–`Z`, `a`–`z`, `0`–`9`, `.`, `_`, `:` and `-`; else `Err`
/// saying what is wrong with it (for a 400 answer, which names the header).
pub fn request_key<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<String>, String> {
    let mut values = values.into_iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!(
            "the request has more than one `Idempotency-Key` header; send one of at most \
             {MAX_REQUEST_KEY} characters A-Z a-z 0-9 . _ : -"
        ));
    }
    let key = value.trim_ascii();
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
    if key.is_empty() || key.len() > MAX_REQUEST_KEY || !key.iter().all(allowed) {
        let why = if key.is_empty() {
            "is empty".into()
        } else if key.len() > MAX_REQUEST_KEY {
            format!("is {} bytes long", key.len())
        } else {
            "holds other characters".into()
        };
        return Err(format!(
            "the request's `Idempotency-Key` header {why}: it must be 1 to {MAX_REQUEST_KEY} \
             characters A-Z a-z 0-9 . _ : -"
        ));
    }
    // Only ASCII passed the check.
    Ok(Some(key.iter().map(|&b| char::from(b)).collect()))
}

/// Whether a header name is [`HEADER`] (ASCII case-insensitive).
fn is_id(name: &str) -> bool {
    name.eq_ignore_ascii_case(HEADER)
}

/// Marks headers of an output or rejected input, after the transform: every [`HEADER`] the
/// transform left or set is removed (so no customer can forge an id), then, if the record has
/// an id, `id` is appended as the last header.
pub fn tag(headers: &mut Vec<(String, String)>, id: Option<String>) {
    headers.retain(|(name, _)| !is_id(name));
    if let Some(id) = id {
        headers.push((HEADER.into(), id));
    }
}

/// The id of a record an `out` part received: every [`HEADER`] is removed (none leaves the
/// platform as a header), the last one's value is the id.
pub fn take(headers: &mut Vec<(String, String)>) -> Option<String> {
    let mut id = None;
    headers.retain(|(name, value)| {
        if is_id(name) {
            id = Some(value.clone());
            false
        } else {
            true
        }
    });
    id
}

/// The id of the output `k` of a record with id `input` (none without).
pub fn of_output(input: Option<&str>, k: usize) -> Option<String> {
    input.map(|id| output(id, k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn h(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn ids_are_derived_by_position() {
        assert_eq!(input("order-17", 0), "order-17-0");
        assert_eq!(input("ETL_DATA_p_orders:42", 3), "ETL_DATA_p_orders:42-3");
        assert_eq!(output("order-17-0", 0), "order-17-0.0");
        assert_eq!(output(&output("order-17-2", 1), 0), "order-17-2.1.0");
        assert_eq!(batch("order-17-0.0", 250), "order-17-0.0+250");
        assert_eq!(of_output(Some("a-1"), 2).as_deref(), Some("a-1.2"));
        assert_eq!(of_output(None, 2), None);
    }

    #[test]
    fn a_random_key_is_32_lowercase_hex_digits() {
        assert_eq!(random_key(0, 1), "00000000000000000000000000000001");
        let key = random_key(u64::MAX, 0xabc);
        assert_eq!(key, "ffffffffffffffff0000000000000abc");
        assert_eq!(key.len(), 32);
    }

    #[test]
    fn a_valid_idempotency_key_is_the_request_key_trimmed() {
        assert_eq!(request_key([]), Ok(None));
        assert_eq!(
            request_key([&b" order-17 "[..]]),
            Ok(Some("order-17".into()))
        );
        let all = b"AZaz09._:-";
        assert_eq!(request_key([&all[..]]), Ok(Some("AZaz09._:-".into())));
        let longest = [b'k'; MAX_REQUEST_KEY];
        assert_eq!(
            request_key([&longest[..]]).unwrap().unwrap().len(),
            MAX_REQUEST_KEY
        );
    }

    #[test]
    fn an_invalid_idempotency_key_is_refused_naming_the_header() {
        let too_long = [b'k'; MAX_REQUEST_KEY + 1];
        for (value, why) in [
            (&b""[..], "is empty"),
            (b"   ", "is empty"),
            (&too_long[..], "is 129 bytes long"),
            (b"a b", "holds other characters"),
            (b"a/b", "holds other characters"),
            (b"a+1", "holds other characters"),
            ("ключ".as_bytes(), "holds other characters"),
            (b"\xff", "holds other characters"),
        ] {
            let e = request_key([value]).unwrap_err();
            assert!(
                e.contains("`Idempotency-Key`") && e.contains(why),
                "{value:?}: {e}"
            );
        }
        let e = request_key([&b"a"[..], b"a"]).unwrap_err();
        assert!(e.contains("more than one `Idempotency-Key`"), "{e}");
    }

    #[test]
    fn tagging_drops_every_id_the_transform_set_then_appends_the_records() {
        let mut headers = vec![
            h("a", "1"),
            h("ETL-ID", "forged"),
            h("etl-id", "forged too"),
        ];
        tag(&mut headers, Some("r-0.1".into()));
        assert_eq!(headers, [h("a", "1"), h("etl-id", "r-0.1")]);
        let mut headers = vec![h("etl-id", "forged"), h("a", "1")];
        tag(&mut headers, None);
        assert_eq!(headers, [h("a", "1")]);
    }

    #[test]
    fn an_out_part_takes_the_id_out_of_the_headers() {
        let mut headers = vec![h("a", "1"), h("traceparent", "t"), h("etl-id", "r-0.0")];
        assert_eq!(take(&mut headers).as_deref(), Some("r-0.0"));
        assert_eq!(headers, [h("a", "1"), h("traceparent", "t")]);
        let mut headers = vec![h("Etl-Id", "x"), h("a", "1"), h("etl-id", "y")];
        assert_eq!(take(&mut headers).as_deref(), Some("y"));
        assert_eq!(headers, [h("a", "1")]);
        let mut headers = vec![h("a", "1")];
        assert_eq!(take(&mut headers), None);
    }

    #[test]
    fn a_message_is_named_by_its_records_ids_and_its_subject() {
        assert_eq!(
            message([Some("k-0.0")], "a.b").as_deref(),
            Some("k-0.0@a.b")
        );
        assert_eq!(
            message([Some("k-0.0"), Some("k-1.0"), Some("k-2.0")], "a.b").as_deref(),
            Some("k-0.0+3@a.b")
        );
        assert_ne!(
            message([Some("k-0.0")], "a.b"),
            message([Some("k-0.0")], "a.c")
        );
        assert_eq!(message([Some("k-0.0"), None], "a.b"), None);
        assert_eq!(message([None, Some("k-1.0")], "a.b"), None);
        assert_eq!(message(Vec::<Option<&str>>::new(), "a.b"), None);
    }
}
