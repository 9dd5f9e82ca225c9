#!/usr/bin/env bash
# Sets up a fresh machine and runs etl's main job on the bundled example repo: validate, compile
# every step into one composed component, packaged as OCI artifacts with wadm and wasmCloud v2
# manifests per environment, then run the repo's fixtures and three sample readings through
# exactly those compiled components.
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
echo "OCI layout: $out/oci ($(grep -o 'image.ref.name' "$out/oci/index.json" | wc -l | tr -d ' ') artifacts)"
echo "manifests:"
(cd "$out" && ls -1 ./*/wadm/*.yaml ./*/k8s/*.yaml)
echo
sed -n '1,/^  - name: enrich/p' "$out/prod/wadm/sensor-ingest.yaml" | head -n -1
echo "  …"
echo
"$etl" test --repo examples/iot-sensors --dist "$out"
echo
# A hot reading (archived and alerted), a malformed one (dead-lettered by parse), a cool one
# (archived, filtered before the alert). The webhook's token is a secret: a made-up value here,
# which the output shows as <secret alerts-webhook-token>.
ETL_SECRET_ALERTS_WEBHOOK_TOKEN="Bearer demo-token" \
  "$etl" run sensor-ingest --repo examples/iot-sensors --dist "$out" --env dev <<'EOF'
{"json": {"sensor": "t-101", "temp_c": 82.5, "ts": "2026-11-01T12:00:00Z"}}
{"payload": "t-102;19.0;2026-11-01T12:00:01Z"}
{"json": {"sensor": "t-103", "temp_c": 21.0, "ts": "2026-11-01T12:00:02Z"}}
EOF
