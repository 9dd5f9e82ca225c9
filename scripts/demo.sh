#!/usr/bin/env bash
# Sets up a fresh machine and runs etl on the bundled example repo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet --bin etl
etl=${CARGO_TARGET_DIR:-target}/release/etl
"$etl" validate --repo examples/iot-sensors
