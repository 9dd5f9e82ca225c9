//! What `etl` emits runs on real wasmCloud hosts: the 1.x lattice (`v1`, issue 7) and a v2 host
//! driven as wasmCloud's runtime operator drives it (`v2`, issue 15). One test binary;
//! `tests/e2e/run.sh v1|v2` starts the stack one of them needs and runs it by name (and
//! `common::`, the loopback servers' own test); `secrets` drives the 1.x secrets backend;
//! `delivery` counts every record through staging while a fault hits it (issue 20).

mod common;
mod controller;
mod delivery;
mod reporting;
mod secrets;
mod v1;
mod v2;
