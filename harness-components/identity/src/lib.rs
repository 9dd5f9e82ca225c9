//! `identity`: the transform of sinks. It passes every record through unchanged, so that a sink
//! has the same `in` → transform → `out` shape as a step (`in-messaging` + `identity` +
//! `out-<connector>`). World `etl:platform/identity`.

etl_harness_bindings::generate!("etl:platform/identity");

use etl::pipeline::types::{Error, Message};
use exports::etl::pipeline::transform::Guest;

struct Identity;

impl Guest for Identity {
    fn transform(input: Message) -> Result<Vec<Message>, Error> {
        Ok(vec![input])
    }
}

export!(Identity);
