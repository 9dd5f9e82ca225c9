//! `threshold-alert`: a filter. Passes a reading whose `celsius` is at or above the step's config
//! `threshold` (a decimal number as text, e.g. `"80"`), marked `"alert": true`; emits nothing for
//! a reading below it.
//!
//! Input that is not a JSON object, or whose `celsius` is missing or not a number, is
//! `invalid("not a parsed reading: …")`; a `threshold` key that is missing or not a number is a
//! deployment fault, `transient("config key `threshold` …")`.

wit_bindgen::generate!({
    path: "../../../wit/etl-pipeline",
    world: "etl:pipeline/transformer",
});

use etl::pipeline::config;
use etl::pipeline::types::{Error, Message};
use exports::etl::pipeline::transform::Guest;
use serde::Serialize;
use serde_json::{Map, Value};

/// The input's fields (in key order: serde_json's map is sorted), then `alert`.
#[derive(Serialize)]
struct Alert {
    #[serde(flatten)]
    reading: Map<String, Value>,
    alert: bool,
}

struct ThresholdAlert;

impl Guest for ThresholdAlert {
    fn transform(input: Message) -> Result<Vec<Message>, Error> {
        let mut reading: Map<String, Value> = serde_json::from_slice(&input.payload)
            .map_err(|e| Error::Invalid(format!("not a parsed reading: {e}")))?;
        let celsius = reading
            .get("celsius")
            .and_then(Value::as_f64)
            .ok_or_else(|| {
                Error::Invalid(
                    "not a parsed reading: `celsius` is missing or not a number".to_string(),
                )
            })?;
        if celsius < threshold()? {
            return Ok(Vec::new());
        }
        reading.remove("alert");
        let payload = serde_json::to_vec(&Alert {
            reading,
            alert: true,
        })
        .map_err(|e| Error::Transient(format!("cannot encode the reading: {e}")))?;
        Ok(vec![Message {
            key: input.key,
            payload,
            headers: input.headers,
        }])
    }
}

/// The config `threshold`, a finite decimal number (surrounding whitespace allowed).
fn threshold() -> Result<f64, Error> {
    let text = config::get("threshold")
        .ok_or_else(|| Error::Transient("config key `threshold` is not set".to_string()))?;
    match text.trim().parse::<f64>() {
        Ok(t) if t.is_finite() => Ok(t),
        _ => Err(Error::Transient(format!(
            "config key `threshold` is not a number: {text:?}"
        ))),
    }
}

export!(ThresholdAlert);
