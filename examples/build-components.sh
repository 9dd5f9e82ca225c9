#!/usr/bin/env bash
# Builds the example's customer components from examples/components/ (its own Cargo workspace)
# and installs them:
#
#   parse, enrich, threshold-alert  wasm32-unknown-unknown  -> examples/iot-sensors/components/<name>.wasm
#   bad-sockets (policy test)       wasm32-wasip2           -> tests/fixtures/components/bad-sockets.wasm
#   chaos (runner tests)            wasm32-unknown-unknown  -> tests/fixtures/chaos/components/chaos.wasm
#                                                              and tests/fixtures/sub-pipelines/components/chaos.wasm
#   passthrough (`etl init`'s step) wasm32-unknown-unknown  -> compiler/assets/passthrough.wasm
#   lookup (calls out over HTTP)    wasm32-unknown-unknown  -> tests/fixtures/egress/components/lookup.wasm
#
# then pins each example step's `digest:` in examples/iot-sensors/pipelines/sensor-ingest.yaml, and
# every chaos step's in tests/fixtures/{chaos,sub-pipelines}/pipelines/*.yaml (lookup's in
# tests/fixtures/egress/pipelines/*.yaml), to the sha256 of its new bytes, and prints the digests. The etl binary embeds passthrough.wasm: rebuild it after running this.
#
# The build is reproducible: the toolchain is pinned by rust-toolchain.toml, dependencies by
# examples/components/Cargo.lock (--locked), and the paths of this machine (the crate registry,
# the sources, the target directory) are remapped so that they do not end up in the bytes. The same
# sources give the same bytes, and so the same digests, on any machine.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
components=$root/examples/components
example=$root/examples/iot-sensors
pipeline=$example/pipelines/sensor-ingest.yaml
fixtures=$root/tests/fixtures/components
chaos=$root/tests/fixtures/chaos
sub_pipelines=$root/tests/fixtures/sub-pipelines
egress=$root/tests/fixtures/egress
assets=$root/compiler/assets

# A CARGO_TARGET_DIR the caller exported (say, for the main workspace) is honoured; otherwise the
# workspace's own target/ (gitignored). Set explicitly either way, so the outputs are found
# wherever a cargo config might point.
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-$components/target}")
export CARGO_TARGET_DIR=$target_dir

cargo_home=$(realpath -m "${CARGO_HOME:-$HOME/.cargo}")
# CARGO_ENCODED_RUSTFLAGS takes precedence over RUSTFLAGS and any cargo config, so a caller's
# flags cannot change the bytes. Fields are separated by 0x1f, so paths may contain spaces. Of
# several matching remappings the last one wins: the target directory may lie inside the sources.
sep=$'\x1f'
flags="--remap-path-prefix=$cargo_home/registry/src=/cargo/registry/src"
flags+="$sep--remap-path-prefix=$cargo_home/git/checkouts=/cargo/git/checkouts"
flags+="$sep--remap-path-prefix=$root=/etl"
flags+="$sep--remap-path-prefix=$target_dir=/target"
export CARGO_ENCODED_RUSTFLAGS=$flags
unset RUSTFLAGS

cd "$components"
cargo build --release --locked --quiet --target wasm32-unknown-unknown \
  -p parse -p enrich -p threshold-alert -p chaos -p passthrough -p lookup
cargo build --release --locked --quiet --target wasm32-wasip2 -p bad-sockets

mkdir -p "$example/components" "$fixtures" "$chaos/components" "$sub_pipelines/components" "$egress/components" "$assets"

# Replaces, in the pipeline file <pipeline>, the `digest:` of every step whose `component:` is
# components/<name>.wasm (the digest line follows the component line within the step), and checks
# that at least one was replaced.
pin_digest() {
  local pipeline=$1 name=$2 digest=$3 tmp
  tmp=$(mktemp)
  awk -v comp="components/$name.wasm" -v digest="$digest" '
    $1 == "component:" { in_step = ($2 == comp) }
    $1 == "-" && $2 == "name:" { in_step = 0 }
    in_step && $1 == "digest:" {
      sub(/sha256:[0-9a-f]+/, "sha256:" digest); in_step = 0; replaced++
    }
    { print }
    END { if (replaced < 1) exit 1 }
  ' "$pipeline" >"$tmp" || {
    rm -f "$tmp"
    echo "build-components: no \`digest:\` for components/$name.wasm in $pipeline" >&2
    exit 1
  }
  cat "$tmp" >"$pipeline"
  rm -f "$tmp"
}

for name in parse enrich threshold-alert; do
  out=$example/components/$name.wasm
  cp "$target_dir/wasm32-unknown-unknown/release/${name//-/_}.wasm" "$out"
  digest=$(sha256sum "$out" | cut -d' ' -f1)
  pin_digest "$pipeline" "$name" "$digest"
  printf '%-16s sha256:%s  %7d bytes  %s\n' "$name" "$digest" "$(wc -c <"$out")" "${out#"$root"/}"
done

out=$fixtures/bad-sockets.wasm
cp "$target_dir/wasm32-wasip2/release/bad_sockets.wasm" "$out"
printf '%-16s sha256:%s  %7d bytes  %s\n' bad-sockets "$(sha256sum "$out" | cut -d' ' -f1)" \
  "$(wc -c <"$out")" "${out#"$root"/}"

for fixture in "$chaos" "$sub_pipelines"; do
  out=$fixture/components/chaos.wasm
  cp "$target_dir/wasm32-unknown-unknown/release/chaos.wasm" "$out"
  digest=$(sha256sum "$out" | cut -d' ' -f1)
  for pipeline_file in "$fixture"/pipelines/*.yaml; do
    pin_digest "$pipeline_file" chaos "$digest"
  done
  printf '%-16s sha256:%s  %7d bytes  %s\n' chaos "$digest" "$(wc -c <"$out")" "${out#"$root"/}"
done

out=$egress/components/lookup.wasm
cp "$target_dir/wasm32-unknown-unknown/release/lookup.wasm" "$out"
digest=$(sha256sum "$out" | cut -d' ' -f1)
for pipeline_file in "$egress"/pipelines/*.yaml; do
  pin_digest "$pipeline_file" lookup "$digest"
done
printf '%-16s sha256:%s  %7d bytes  %s\n' lookup "$digest" "$(wc -c <"$out")" "${out#"$root"/}"

out=$assets/passthrough.wasm
cp "$target_dir/wasm32-unknown-unknown/release/passthrough.wasm" "$out"
printf '%-16s sha256:%s  %7d bytes  %s\n' passthrough "$(sha256sum "$out" | cut -d' ' -f1)" \
  "$(wc -c <"$out")" "${out#"$root"/}"
