//! The integration tests of `etl-run`, in one test binary (`cargo test -p etl-run --test all`):
//! composed steps under wasmtime, the runner's input, and outbound HTTP by policy.

#[path = "../../../compiler/tests/common/mod.rs"]
mod common;
#[path = "../../../compiler/tests/common/edits.rs"]
mod edits;

mod core_instances;
mod egress;
mod fuzz;
mod jetstream;
mod mqtt;
mod reports;
mod run_composed;
mod secrets;
