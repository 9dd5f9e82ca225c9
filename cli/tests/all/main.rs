//! The tests that run the `etl` binary (`CARGO_BIN_EXE_etl` exists only in this package), in one
//! test binary (`cargo test -p etl-cli --test all`): each module is one subject, and may also call
//! the library and the runtime directly.

#[path = "../../../compiler/tests/common/mod.rs"]
mod common;
// Not tests: a real OCI registry for the tests that push, pull and promote.
#[path = "../../../compiler/tests/common/registry.rs"]
mod registry;

mod claims;
mod cli;
mod compile;
// Not tests: a scripted etl-controller for status, top and dlq.
mod controller;
mod diagram;
mod diff;
mod dlq;
mod golden;
mod output;
mod promote;
mod pull;
mod push;
mod registry_signatures;
mod run;
mod secrets;
mod sign;
mod status;
mod sub_pipelines;
mod top;
mod workflow;
