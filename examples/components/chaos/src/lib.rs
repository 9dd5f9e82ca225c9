//! `chaos`: a deliberately misbehaving component, a test fixture for the local pipeline runner (it
//! is not part of the example). Built by `examples/build-components.sh` to
//! `tests/fixtures/chaos/components/chaos.wasm`. No config: besides the contract's types it imports
//! only `wasi:logging/logging@0.1.0-draft`, which a pipeline must grant it
//! (`allow: ["wasi:logging/logging"]`). Its world (below) is the contract's `transformer` plus that
//! import; `etl:pipeline/config`, never called, is left out of the component.
//!
//! The input payload, read as UTF-8 text, is a command:
//!
//! | payload            | result                                                                |
//! |--------------------|-----------------------------------------------------------------------|
//! | `loop`             | spins forever (the runner must interrupt it: fuel, epoch, timeout)    |
//! | `bomb`             | allocates and touches 1 MiB chunks until allocation fails: a trap     |
//! | `trap`             | panics (`panic = "abort"`, so an `unreachable` trap)                  |
//! | `many:N`           | N outputs (N decimal); output i has payload `i`, no key, no headers   |
//! | `bad-utf8`         | one output whose header value is not UTF-8 (breaks the canonical ABI) |
//! | `invalid:REASON`   | `invalid(REASON)`                                                     |
//! | `transient:REASON` | `transient(REASON)`                                                   |
//! | `log:MESSAGE`      | logs `info` MESSAGE, then `warn` `second` (context `chaos`); echo     |
//! | `spam:N`           | logs N `info` lines `line i` (i from 0; context `chaos`); echo        |
//! | anything else      | the input, unchanged (echo); so is a payload that is not UTF-8        |

wit_bindgen::generate!({
    inline: "
        package etl-test:chaos;

        world chaos {
            include etl:pipeline/transformer@0.1.0;
            import wasi:logging/logging@0.1.0-draft;
        }
    ",
    path: [
        "../../../wit/etl-pipeline",
        "../../../wit/deps/wasi-logging-0.1.0-draft",
    ],
    world: "etl-test:chaos/chaos",
    // Bind the contract and wasi:logging too: they are other packages than the world's.
    generate_all,
});

use core::hint::black_box;
use etl::pipeline::types::{Error, Message};
use exports::etl::pipeline::transform::Guest;
use wasi::logging::logging::{Level, log};

/// The `context` of every log line.
const CONTEXT: &str = "chaos";

struct Chaos;

impl Guest for Chaos {
    fn transform(input: Message) -> Result<Vec<Message>, Error> {
        let Ok(command) = core::str::from_utf8(&input.payload) else {
            return Ok(vec![input]);
        };
        if let Some(n) = command.strip_prefix("many:")
            && let Ok(n) = n.parse::<u64>()
        {
            return Ok((0..n).map(|i| output(i.to_string())).collect());
        }
        if let Some(message) = command.strip_prefix("log:") {
            log(Level::Info, CONTEXT, message);
            log(Level::Warn, CONTEXT, "second");
            return Ok(vec![input]);
        }
        if let Some(n) = command.strip_prefix("spam:")
            && let Ok(n) = n.parse::<u64>()
        {
            for i in 0..n {
                log(Level::Info, CONTEXT, &format!("line {i}"));
            }
            return Ok(vec![input]);
        }
        if let Some(reason) = command.strip_prefix("invalid:") {
            return Err(Error::Invalid(reason.to_string()));
        }
        if let Some(reason) = command.strip_prefix("transient:") {
            return Err(Error::Transient(reason.to_string()));
        }
        match command {
            "loop" => spin(),
            "bomb" => bomb(),
            "trap" => panic!("chaos: trap requested"),
            "bad-utf8" => {
                let mut out = output("bad-utf8".to_string());
                // SAFETY: none. This deliberately violates the canonical ABI, which requires every
                // `string` crossing the component boundary to be valid UTF-8: the host must reject
                // (trap on) this output rather than pass it on.
                let value = unsafe { String::from_utf8_unchecked(vec![0xff, 0xfe, 0x41]) };
                out.headers.push(("x-bad".to_string(), value));
                Ok(vec![out])
            }
            _ => Ok(vec![input]),
        }
    }
}

/// A message with `payload` and no key or headers.
fn output(payload: String) -> Message {
    Message {
        key: None,
        payload: payload.into_bytes(),
        headers: Vec::new(),
    }
}

/// Never returns; `black_box` keeps the counter, and so the loop, from being optimised away.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Never returns: allocation failure aborts, which in wasm is a trap.
fn bomb() -> ! {
    const CHUNK: usize = 1 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        // Written, not just reserved, so every page is really committed.
        let chunk = black_box(vec![1u8; CHUNK]);
        chunks.push(chunk);
        black_box(&chunks);
    }
}

export!(Chaos);
