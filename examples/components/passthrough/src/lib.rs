//! `passthrough`: the step `etl init` scaffolds, so that a new repo compiles, tests and runs
//! before its author has built a component. It returns every record unchanged, key and headers
//! included. Built by `examples/build-components.sh` to `compiler/assets/passthrough.wasm`, which
//! the `etl` binary embeds and `etl init` writes as `components/transform.wasm`.
//!
//! Replace it with your own transform: any component (or wit-bindgen core module) of world
//! `etl:pipeline/transformer@0.1.0`; this crate is the smallest example of one.

wit_bindgen::generate!({
    path: "../../../wit/etl-pipeline",
    world: "etl:pipeline/transformer",
});

use etl::pipeline::types::{Error, Message};
use exports::etl::pipeline::transform::Guest;

struct Passthrough;

impl Guest for Passthrough {
    fn transform(input: Message) -> Result<Vec<Message>, Error> {
        Ok(vec![input])
    }
}

export!(Passthrough);
