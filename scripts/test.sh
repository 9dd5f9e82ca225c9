#!/usr/bin/env bash
# Runs the whole test suite: unit, integration, snapshot and property tests, and a quick smoke
# run of the benchmark binaries (`--all-targets` runs them; figures come from `cargo bench` and
# are never asserted in tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export INSTA_UPDATE=no ETL_BENCH_QUICK=1
cargo test --workspace --all-targets
# The harness components' own unit tests (their workspace is separate; they run on the host).
cargo test --locked --manifest-path harness-components/Cargo.toml
