//! The integration tests of `etl-run`, in one test binary (`cargo test -p etl-run --test all`):
//! composed steps under wasmtime, and the runner's input.

#[path = "../../../compiler/tests/common/mod.rs"]
mod common;
#[path = "../../../compiler/tests/common/edits.rs"]
mod edits;

mod core_instances;
mod fuzz;
mod run_composed;
mod secrets;
