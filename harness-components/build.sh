#!/usr/bin/env bash
# Builds the platform harness components (this directory's Cargo workspace) for wasm32-wasip2 and
# prints, for each, its name, sha256 digest, size and path:
#
#   in-messaging  sha256:<hex>  <size> bytes  <target>/wasm32-wasip2/release/in_messaging.wasm
#
# The `etl` crate's build script (compiler/build.rs) runs the same build, with the same flags, and
# embeds the bytes in the `etl` binary; `cargo test -p etl --test all --
# harness::harness_digests_reproduce` runs this script in a fresh target directory and checks that
# it gives the embedded bytes.
#
# The build is reproducible: the toolchain is pinned by ../rust-toolchain.toml, dependencies by
# Cargo.lock (--locked), and the paths of this machine (the crate registry, the sources, the target
# directory) are remapped so that they do not end up in the bytes. The same sources give the same
# bytes, and so the same digests, on any machine and in any target directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
components=$root/harness-components
parts=(in-messaging in-http out-messaging out-http out-blobstore settings settings-v2 identity egress msg-id)

# A CARGO_TARGET_DIR the caller exported is honoured; otherwise the workspace's own target/
# (gitignored). Set explicitly either way, so the outputs are found wherever a cargo config might
# point.
target_dir=$(realpath -m "${CARGO_TARGET_DIR:-$components/target}")
export CARGO_TARGET_DIR=$target_dir

cargo_home=$(realpath -m "${CARGO_HOME:-$HOME/.cargo}")
# CARGO_ENCODED_RUSTFLAGS takes precedence over RUSTFLAGS and any cargo config, so a caller's
# flags cannot change the bytes. Fields are separated by 0x1f, so paths may contain spaces. Of
# several matching remappings the last one wins: the target directory may lie inside the sources.
# compiler/build.rs builds the same list: keep them in step.
sep=$'\x1f'
flags="--remap-path-prefix=$cargo_home/registry/src=/cargo/registry/src"
flags+="$sep--remap-path-prefix=$cargo_home/git/checkouts=/cargo/git/checkouts"
flags+="$sep--remap-path-prefix=$root=/etl"
flags+="$sep--remap-path-prefix=$target_dir=/target"
export CARGO_ENCODED_RUSTFLAGS=$flags
unset RUSTFLAGS CARGO_BUILD_TARGET CARGO_BUILD_RUSTFLAGS RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER

cd "$components"
cargo build --locked --release --quiet --target wasm32-wasip2 --manifest-path "$components/Cargo.toml"

for part in "${parts[@]}"; do
  out=$target_dir/wasm32-wasip2/release/${part//-/_}.wasm
  printf '%-14s sha256:%s  %6d bytes  %s\n' "$part" "$(sha256sum "$out" | cut -d' ' -f1)" \
    "$(wc -c <"$out")" "$out"
done
