//! What `etl` emits runs on real wasmCloud hosts: the 1.x lattice (`v1`, issue 7). One test
//! binary; `tests/e2e/run.sh` starts the stack it needs and runs it.

mod common;
mod v1;
