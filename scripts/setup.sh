#!/usr/bin/env bash
# Installs what building and testing etl needs on a fresh machine: the pinned Rust toolchain
# (rust-toolchain.toml) and its Wasm targets. Safe to run again.
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
echo "setup: $(rustc --version), targets wasm32-wasip2 wasm32-unknown-unknown"
