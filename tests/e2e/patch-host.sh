#!/usr/bin/env bash
# Makes tests/e2e/patched/wasmcloud-host: the crates.io source of wasmcloud-host 0.27.1 with one
# line added, `#![recursion_limit = "256"]`, without which it does not build on Rust 1.95 (a query
# overflows the default limit of 128). Cargo.toml's [patch.crates-io] points at the copy; nothing
# of it is committed. Safe to run again: an up-to-date copy is left alone.
set -euo pipefail
cd "$(dirname "$0")"

name=wasmcloud-host
version=0.27.1
dest=patched/$name
marker=$dest/.etl-e2e-patched
line='#![recursion_limit = "256"]'

if [ -f "$marker" ] && [ "$(cat "$marker")" = "$version" ]; then
  exit 0
fi

cargo_home=${CARGO_HOME:-$HOME/.cargo}
find_crate() {
  # No cache yet (a fresh CARGO_HOME) is not an error: nothing is found.
  find "$cargo_home/registry/cache" -maxdepth 2 -name "$name-$version.crate" 2>/dev/null \
    | head -n1 || true
}
crate=$(find_crate)
if [ -z "$crate" ]; then
  # Not downloaded yet: let cargo fetch it (and check its checksum against the index) through a
  # throwaway manifest. The e2e workspace itself cannot resolve before the copy exists.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/src"
  : >"$tmp/src/lib.rs"
  cat >"$tmp/Cargo.toml" <<TOML
[package]
name = "fetch-wasmcloud-host"
version = "0.0.0"
edition = "2021"
[dependencies]
$name = "=$version"
TOML
  cargo fetch --quiet --manifest-path "$tmp/Cargo.toml"
  crate=$(find_crate)
  [ -n "$crate" ] || { echo "patch-host: cargo fetch did not leave $name-$version.crate" >&2; exit 1; }
fi

rm -rf "$dest"
mkdir -p patched
tar -xzf "$crate" -C patched
mv "patched/$name-$version" "$dest"
lib=$dest/src/lib.rs
grep -qF "$line" "$lib" && { echo "patch-host: $lib already has the line" >&2; exit 1; }
{ printf '%s\n' "$line"; cat "$lib"; } >"$lib.new"
mv "$lib.new" "$lib"
printf '%s' "$version" >"$marker"
echo "patch-host: $dest ($name $version + $line)"
