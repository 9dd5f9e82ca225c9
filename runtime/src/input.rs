//! Records as text: JSON lines in (`etl run --input`), JSON out, and the fixture format.
//!
//! A record is a JSON object as in `tests/*.yaml`: optional `key` (text), exactly one of
//! `payload` (UTF-8 text), `json` (any JSON value, sent in its compact form) or `base64`
//! (arbitrary bytes), and optional `headers` (an object of text values, in order).

use base64::Engine;
use serde_json::{Map, Value as Json};

use super::Record;
use etl::spec::model;

/// A line of the input that is not a record.
#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}{}", help.as_ref().map(|h| format!("\nhelp: {h}")).unwrap_or_default())]
pub struct InputError {
    /// File name, or `<stdin>`.
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is an obvious way.
    pub help: Option<String>,
}

/// The fields of a record, as in `tests/*.yaml`.
const FIELDS: [&str; 5] = ["key", "payload", "json", "base64", "headers"];

/// What an input line is, said in errors.
const LINE_FORMAT: &str = "each line is a record: an object with one of `payload` (text), `json` (any JSON value) or `base64` (bytes), and optional `key` and `headers`";

/// Reads JSON lines; blank lines are skipped. `origin` names the input in errors.
pub fn parse_lines(origin: &str, text: &str) -> Result<Vec<Record>, InputError> {
    read_lines(origin, text.as_bytes()).collect()
}

/// The records of JSON lines read from `reader` one line at a time, blank lines skipped; an
/// item is the next record or why its line is not one. `origin` names the input in errors.
pub fn read_lines<R: std::io::BufRead>(origin: &str, reader: R) -> Lines<R> {
    Lines {
        origin: origin.to_owned(),
        reader,
        line: 0,
        buffer: Vec::new(),
    }
}

/// The iterator of [`read_lines`]: memory for one line at a time.
pub struct Lines<R> {
    origin: String,
    reader: R,
    line: usize,
    buffer: Vec<u8>,
}

impl<R: std::io::BufRead> Iterator for Lines<R> {
    type Item = Result<Record, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buffer.clear();
            self.line += 1;
            let error = |column: usize, message: String| InputError {
                origin: self.origin.clone(),
                line: self.line,
                column,
                message,
                help: None,
            };
            match self.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(error(1, e.to_string()))),
            }
            let text = match std::str::from_utf8(&self.buffer) {
                Ok(text) => text,
                Err(e) => {
                    let valid = std::str::from_utf8(&self.buffer[..e.valid_up_to()])
                        .expect("valid up to here");
                    return Some(Err(error(
                        valid.chars().count() + 1,
                        "the line is not UTF-8 text".to_owned(),
                    )));
                }
            };
            let text = text.strip_suffix('\n').unwrap_or(text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            if text.trim().is_empty() {
                continue;
            }
            return Some(parse_line(text).map_err(|mut e| {
                e.origin.clone_from(&self.origin);
                e.line = self.line;
                e
            }));
        }
    }
}

/// One non-blank line as a record; the error's origin and line are left for the caller.
fn parse_line(line: &str) -> Result<Record, InputError> {
    let error = |column: usize, message: String, help: Option<String>| InputError {
        origin: String::new(),
        line: 0,
        column,
        message,
        help,
    };
    let value: model::Record = serde_json::from_str(line).map_err(|e| {
        let message = e.to_string();
        // serde_json appends " at line L column C"; the position is reported separately.
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m)
            .to_owned();
        let column = e.column().max(1);
        match not_a_record(line) {
            Some(Hint::Typo(help)) => error(column, message, Some(help)),
            Some(Hint::Wrap(found)) => error(
                column,
                format!("{message}: {LINE_FORMAT}, and this line is {found}"),
                Some(format!(
                    "to send this JSON as the payload, wrap it: {}",
                    wrapped(line)
                )),
            ),
            None => error(
                column,
                format!("{message} (expected a record such as {{\"payload\": \"text\"}})"),
                None,
            ),
        }
    })?;
    from_model(&value).map_err(|m| error(1, m, None))
}

/// Why a line that is valid JSON is not a record.
enum Hint {
    /// A field name is misspelt: the help text.
    Typo(String),
    /// The line is some other JSON value (what it is): the payload itself, most likely.
    Wrap(&'static str),
}

/// What to say about a line that does not decode as a record, when it is valid JSON.
fn not_a_record(line: &str) -> Option<Hint> {
    let value: Json = serde_json::from_str(line).ok()?;
    let Json::Object(map) = &value else {
        return Some(Hint::Wrap(match value {
            Json::Array(_) => "an array",
            Json::String(_) => "a string",
            Json::Number(_) => "a number",
            Json::Bool(_) => "a boolean",
            _ => "null",
        }));
    };
    let unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !FIELDS.contains(k))
        .collect();
    if let Some(help) = unknown
        .iter()
        .find_map(|k| etl::diag::did_you_mean(k, FIELDS))
    {
        return Some(Hint::Typo(help));
    }
    let has_payload = ["payload", "json", "base64"]
        .iter()
        .any(|f| map.contains_key(*f));
    (!unknown.is_empty() && !has_payload).then_some(Hint::Wrap("an object with other fields"))
}

/// `{"json": LINE}`, shortened when the line is long.
fn wrapped(line: &str) -> String {
    let line = line.trim();
    if line.chars().count() <= 60 {
        format!("{{\"json\": {line}}}")
    } else {
        "{\"json\": …}".to_owned()
    }
}

/// A fixture record as bytes.
pub fn from_model(record: &model::Record) -> Result<Record, String> {
    let payload = if let Some(text) = &record.payload {
        text.as_bytes().to_vec()
    } else if let Some(json) = &record.json {
        serde_json::to_vec(json).expect("JSON values serialize")
    } else if let Some(b64) = &record.base64 {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("`base64` is not valid base64: {e}"))?
    } else {
        return Err("a record needs one of `payload`, `json`, `base64`".to_owned());
    };
    Ok(Record {
        key: record.key.as_ref().map(|k| k.as_bytes().to_vec()),
        payload,
        headers: record
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    })
}

/// A record as JSON: `payload` when it is UTF-8 text, else `base64`; the key likewise
/// (`keyBase64` when it is not text); `headers` as an object when there are any.
pub fn to_json(record: &Record) -> Json {
    let mut map = Map::new();
    if let Some(key) = &record.key {
        match std::str::from_utf8(key) {
            Ok(text) => map.insert("key".to_owned(), Json::from(text)),
            Err(_) => map.insert(
                "keyBase64".to_owned(),
                Json::from(base64::engine::general_purpose::STANDARD.encode(key)),
            ),
        };
    }
    match std::str::from_utf8(&record.payload) {
        Ok(text) => map.insert("payload".to_owned(), Json::from(text)),
        Err(_) => map.insert(
            "base64".to_owned(),
            Json::from(base64::engine::general_purpose::STANDARD.encode(&record.payload)),
        ),
    };
    if !record.headers.is_empty() {
        let mut headers = Map::new();
        for (k, v) in &record.headers {
            headers.insert(k.clone(), Json::from(v.as_str()));
        }
        map.insert("headers".to_owned(), Json::Object(headers));
    }
    Json::Object(map)
}

/// Whether `actual` is the record `expected` describes: same key, same payload (`json`
/// compares as JSON values), and — only when `expected` lists any — the same headers in order.
pub fn matches(expected: &model::Record, actual: &Record) -> bool {
    if expected.key.as_ref().map(|k| k.as_bytes()) != actual.key.as_deref() {
        return false;
    }
    let payload = match &expected.json {
        Some(json) => serde_json::from_slice::<Json>(&actual.payload).is_ok_and(|a| a == *json),
        None => from_model(expected).is_ok_and(|e| e.payload == actual.payload),
    };
    let headers = expected.headers.is_empty()
        || expected
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .eq(compared_headers(expected, actual).map(|(k, v)| (k.as_str(), v.as_str())));
    payload && headers
}

/// The headers that carry a record's id in what the runner shows: `etl-id` (a record published
/// to a subject), `nats-msg-id` (its message's, with `delivery.nats_msg_id`) and
/// `idempotency-key` (an `http` sink's request), docs/running.md.
const ID_HEADERS: [&str; 3] = [super::ID_HEADER, "nats-msg-id", "idempotency-key"];

/// The headers of `actual` a fixture's `expected` record is compared with: all of them but the
/// id's ([`ID_HEADERS`]), unless `expected` lists that header itself. Ids depend on where a
/// record came from, not on what a transform did with it, so a fixture checks them only when
/// it names them.
pub fn compared_headers<'a>(
    expected: &'a model::Record,
    actual: &'a Record,
) -> impl Iterator<Item = &'a (String, String)> + 'a {
    actual.headers.iter().filter(move |(name, _)| {
        !ID_HEADERS.iter().any(|id| name.eq_ignore_ascii_case(id))
            || expected
                .headers
                .iter()
                .any(|(listed, _)| listed.eq_ignore_ascii_case(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_errors() {
        let records = parse_lines(
            "in.jsonl",
            "{\"payload\": \"a\", \"headers\": {\"x\": \"1\"}}\n\n{\"json\": {\"t\": 1}, \"key\": \"k\"}\n{\"base64\": \"/w==\"}\n",
        )
        .unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].headers, vec![("x".to_owned(), "1".to_owned())]);
        assert_eq!(records[1].payload, b"{\"t\":1}");
        assert_eq!(records[1].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(records[2].payload, vec![0xff]);

        let e = parse_lines("in.jsonl", "{\"payload\": \"a\"}\n{\"payload\": 1}\n").unwrap_err();
        assert_eq!((e.line, e.origin.as_str()), (2, "in.jsonl"));
        let e = parse_lines("-", "{\"payload\": \"a\", \"json\": 1}").unwrap_err();
        assert!(e.message.contains("exactly one of"), "{e}");
        let e = parse_lines("-", "{\"payload\": \"a\", \"paylod\": 1}").unwrap_err();
        assert!(e.message.contains("paylod"), "{e}");
        let e = parse_lines("-", "{\"payload\": \"\\ud800\\u0041\"}").unwrap_err();
        assert!(e.message.contains("surrogate"), "{e}");
    }

    #[test]
    fn bare_json_is_answered_with_the_line_format_and_a_hint() {
        let e = parse_lines("in.jsonl", "\n{\"sensor\": \"t-1\", \"temp_c\": 90}\n").unwrap_err();
        assert_eq!((e.origin.as_str(), e.line), ("in.jsonl", 2));
        assert!(e.message.starts_with("unknown field `sensor`"), "{e}");
        assert!(e.message.contains("each line is a record"), "{e}");
        assert_eq!(
            e.help.as_deref(),
            Some(
                "to send this JSON as the payload, wrap it: {\"json\": {\"sensor\": \"t-1\", \"temp_c\": 90}}"
            )
        );
        let e = parse_lines("-", "[1, 2]").unwrap_err();
        assert!(e.message.ends_with("and this line is an array"), "{e}");
        assert_eq!(
            e.help.as_deref(),
            Some("to send this JSON as the payload, wrap it: {\"json\": [1, 2]}")
        );
        let long = format!("{{\"text\": \"{}\"}}", "x".repeat(100));
        let e = parse_lines("-", &long).unwrap_err();
        assert!(e.help.unwrap().ends_with("{\"json\": …}"));
        // A misspelt field is a typo, not bare JSON.
        let e = parse_lines("-", "{\"paylod\": \"x\"}").unwrap_err();
        assert_eq!(e.help.as_deref(), Some("did you mean `payload`?"));
        // Broken JSON is a syntax error, with no hint.
        let e = parse_lines("-", "{\"json\": ").unwrap_err();
        assert_eq!(e.help, None);
    }

    #[test]
    fn json_round_trip_and_matching() {
        let r = Record {
            key: Some(vec![0xff]),
            payload: b"{\"a\": 1}".to_vec(),
            headers: vec![("h".to_owned(), "v".to_owned())],
        };
        let j = to_json(&r);
        assert_eq!(j["keyBase64"], "/w==");
        assert_eq!(j["payload"], "{\"a\": 1}");
        let expected: model::Record =
            serde_json::from_value(serde_json::json!({"json": {"a": 1}})).unwrap();
        assert!(!matches(&expected, &r), "keys differ");
        let r = Record { key: None, ..r };
        assert!(matches(&expected, &r), "headers unlisted are not compared");
        let strict: model::Record =
            serde_json::from_value(serde_json::json!({"json": {"a": 1}, "headers": {"h": "w"}}))
                .unwrap();
        assert!(!matches(&strict, &r));
    }
}
