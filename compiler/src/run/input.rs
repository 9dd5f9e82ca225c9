//! Records as text: JSON lines in (`etl run --input`), JSON out, and the fixture format.
//!
//! A record is a JSON object as in `tests/*.yaml`: optional `key` (text), exactly one of
//! `payload` (UTF-8 text), `json` (any JSON value, sent in its compact form) or `base64`
//! (arbitrary bytes), and optional `headers` (an object of text values, in order).

use base64::Engine;
use serde_json::{Map, Value as Json};

use super::Record;
use crate::model;

/// A line of the input that is not a record.
#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct InputError {
    /// File name, or `<stdin>`.
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

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
    let error = |column: usize, message: String| InputError {
        origin: String::new(),
        line: 0,
        column,
        message,
    };
    let value: model::Record = serde_json::from_str(line).map_err(|e| {
        let message = e.to_string();
        // serde_json appends " at line L column C"; the position is reported separately.
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m)
            .to_owned();
        error(
            e.column().max(1),
            format!("{message} (expected a record such as {{\"payload\": \"text\"}})"),
        )
    })?;
    from_model(&value).map_err(|m| error(1, m))
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
            .eq(actual.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    payload && headers
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
