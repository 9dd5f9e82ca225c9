//! `parse`: normalizes a raw sensor reading.
//!
//! In:  `{"sensor": "t-101", "temp_c": 82.5, "ts": "2026-11-01T12:00:00Z"}` (other fields ignored)
//! Out: `{"sensor_id": "t-101", "celsius": 82.5, "ts": "2026-11-01T12:00:00Z"}`, one per input.
//!
//! A payload that is not JSON is `invalid("payload is not JSON: …")`; JSON that is not a reading is
//! `invalid("not a sensor reading: …")`. Both are dead-lettered by the platform. No config.

wit_bindgen::generate!({
    path: "../../../wit/etl-pipeline",
    world: "etl:pipeline/transformer",
});

use etl::pipeline::types::{Error, Message};
use exports::etl::pipeline::transform::Guest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The reading a gateway POSTs. Fields other than these three are ignored.
#[derive(Deserialize)]
struct Raw {
    sensor: String,
    temp_c: f64,
    ts: String,
}

/// The normalized reading; fields are written in this order.
#[derive(Serialize)]
struct Reading {
    sensor_id: String,
    celsius: f64,
    ts: String,
}

struct Parse;

impl Guest for Parse {
    fn transform(input: Message) -> Result<Vec<Message>, Error> {
        // Syntax (including invalid UTF-8) first, so "not JSON" and "not a reading" stay apart.
        let value: Value = serde_json::from_slice(&input.payload)
            .map_err(|e| Error::Invalid(format!("payload is not JSON: {e}")))?;
        // Checked here because serde would also accept a JSON array as the struct's fields.
        if !value.is_object() {
            return Err(Error::Invalid(format!(
                "not a sensor reading: expected a JSON object, got {}",
                kind(&value)
            )));
        }
        let raw: Raw = serde_json::from_value(value)
            .map_err(|e| Error::Invalid(format!("not a sensor reading: {e}")))?;
        let reading = Reading {
            sensor_id: raw.sensor,
            celsius: raw.temp_c,
            ts: raw.ts,
        };
        let payload = serde_json::to_vec(&reading)
            .map_err(|e| Error::Transient(format!("cannot encode the reading: {e}")))?;
        Ok(vec![Message {
            key: input.key,
            payload,
            headers: input.headers,
        }])
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

export!(Parse);
