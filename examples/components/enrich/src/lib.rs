//! `enrich`: adds the site the reading came from, the step's config `site`.
//!
//! In:  a parsed reading, e.g. `{"sensor_id": "t-101", "celsius": 82.5, "ts": "…"}`
//! Out: the same object plus `"site": <config site>`, one per input.
//!
//! Input that is not a JSON object is `invalid("not a parsed reading: …")`; a missing `site` key is
//! a deployment fault, `transient(…)`, so the record is not dead-lettered.
//!
//! A deterministic passing fault, for the harness's retries: a reading whose `sensor_id` starts
//! with `flaky-` (parse keeps the id; a gateway's `"sensor": "flaky-1"` becomes one) answers `transient("flaky: first attempt")` the first time this instance sees its exact
//! payload, and is enriched as any other when it is transformed again in the same instance (the
//! harness's retry, `etl.in.retries`). The instance remembers up to 1024 such payloads, then
//! forgets them all at once. A fresh instance has seen none: under `etl run`, which turns the
//! harness's retries off and replaces an instance after a failed call, such a reading always
//! fails as `transient`.
//!
//! A lasting passing fault, for redelivery and its limit: a reading whose `sensor_id` starts
//! with `broken-` answers `transient("broken: the sensor's calibration service is down")` every
//! time, so it ends in the dead-letter subject once the platform's deliveries are used up.

wit_bindgen::generate!({
    path: "../../../wit/etl-pipeline",
    world: "etl:pipeline/transformer",
});

use etl::pipeline::config;
use etl::pipeline::types::{Error, Message};
use exports::etl::pipeline::transform::Guest;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

/// The most payloads of flaky readings an instance remembers.
const FLAKY_MEMORY: usize = 1024;

/// Payloads of flaky readings this instance answered `transient`.
static FLAKY_SEEN: Mutex<BTreeSet<Vec<u8>>> = Mutex::new(BTreeSet::new());

/// The input's fields (in key order: serde_json's map is sorted), then `site`.
#[derive(Serialize)]
struct Enriched {
    #[serde(flatten)]
    reading: Map<String, Value>,
    site: String,
}

struct Enrich;

impl Guest for Enrich {
    fn transform(input: Message) -> Result<Vec<Message>, Error> {
        let mut reading: Map<String, Value> = serde_json::from_slice(&input.payload)
            .map_err(|e| Error::Invalid(format!("not a parsed reading: {e}")))?;
        let flaky = reading
            .get("sensor_id")
            .and_then(Value::as_str)
            .is_some_and(|id| id.starts_with("flaky-"));
        let broken = reading
            .get("sensor_id")
            .and_then(Value::as_str)
            .is_some_and(|id| id.starts_with("broken-"));
        if broken {
            return Err(Error::Transient(
                "broken: the sensor's calibration service is down".to_string(),
            ));
        }
        if flaky && first_sight(&input.payload) {
            return Err(Error::Transient("flaky: first attempt".to_string()));
        }
        let site = config::get("site")
            .ok_or_else(|| Error::Transient("config key `site` is not set".to_string()))?;
        // Replaced, not duplicated, if the input already has one.
        reading.remove("site");
        let payload = serde_json::to_vec(&Enriched { reading, site })
            .map_err(|e| Error::Transient(format!("cannot encode the reading: {e}")))?;
        Ok(vec![Message {
            key: input.key,
            payload,
            headers: input.headers,
        }])
    }
}

/// Whether this instance sees the flaky reading `payload` for the first time; remembers it.
fn first_sight(payload: &[u8]) -> bool {
    let mut seen = FLAKY_SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    if seen.contains(payload) {
        return false;
    }
    if seen.len() >= FLAKY_MEMORY {
        seen.clear();
    }
    seen.insert(payload.to_vec());
    true
}

export!(Enrich);
