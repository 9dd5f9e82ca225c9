//! `identity`: the transform of sinks. It passes every record through unchanged, so that a sink
//! has the same `in` → transform → `out` shape as a step (`in-messaging` + `identity` +
//! `out-<connector>`). World `etl:platform/identity`.

wit_bindgen::generate!({
    // Every package `etl:platform` refers to, in dependency order (../wit/deps/README.md).
    path: [
        "../../wit/deps/wasi-io-0.2.12",
        "../../wit/deps/wasi-clocks-0.2.12",
        "../../wit/deps/wasi-random-0.2.12",
        "../../wit/deps/wasi-filesystem-0.2.12",
        "../../wit/deps/wasi-sockets-0.2.12",
        "../../wit/deps/wasi-cli-0.2.12",
        "../../wit/deps/wasi-http-0.2.12",
        "../../wit/deps/wasi-config-0.2.0-draft",
        "../../wit/deps/wasmcloud-messaging-0.2.0",
        "../../wit/deps/wasi-io-0.2.6",
        "../../wit/deps/wasi-blobstore-0.2.0-draft",
        "../../wit/etl-pipeline",
        "../../wit/etl-platform",
    ],
    world: "etl:platform/identity",
    // The world uses other packages' interfaces (etl:pipeline, wasi:…): bind them here too.
    generate_all,
});

use etl::pipeline::types::{Error, Message};
use exports::etl::pipeline::transform::Guest;

struct Identity;

impl Guest for Identity {
    fn transform(input: Message) -> Result<Vec<Message>, Error> {
        Ok(vec![input])
    }
}

export!(Identity);
