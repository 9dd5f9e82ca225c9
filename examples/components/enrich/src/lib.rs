//! `enrich`: adds the site the reading came from, the step's config `site`.
//!
//! In:  a parsed reading, e.g. `{"sensor_id": "t-101", "celsius": 82.5, "ts": "…"}`
//! Out: the same object plus `"site": <config site>`, one per input.
//!
//! Input that is not a JSON object is `invalid("not a parsed reading: …")`; a missing `site` key is
//! a deployment fault, `transient(…)`, so the record is not dead-lettered.

wit_bindgen::generate!({
    path: "../../../wit/etl-pipeline",
    world: "etl:pipeline/transformer",
});

use etl::pipeline::config;
use etl::pipeline::types::{Error, Message};
use exports::etl::pipeline::transform::Guest;
use serde::Serialize;
use serde_json::{Map, Value};

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

export!(Enrich);
