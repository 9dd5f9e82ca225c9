#!/usr/bin/env bash
# Sets up a fresh machine and runs etl's main job on the bundled example repo: validate, then
# compile every step into one composed component (dist/plan.json + components/sha256/…).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet --bin etl
target_dir=${CARGO_TARGET_DIR:-target}
etl=$target_dir/release/etl
out=$target_dir/iot-sensors-dist
"$etl" validate --repo examples/iot-sensors
"$etl" compile --repo examples/iot-sensors --out "$out"
echo
echo "plan: $out/plan.json"
ls -l "$out/components/sha256"
