#!/usr/bin/env bash
# Builds the CSR example into target/csr (static files: index.html and pkg/), with cargo and the
# wasm-bindgen CLI that `.ci/setup` installs. Serve that folder with any static file server.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# cargo-leptos' wasm target dir: the dependencies the demo's browser build made are reused.
target="${CARGO_TARGET_DIR:-$root/target/front}"
cargo build --manifest-path "$here/Cargo.toml" --target wasm32-unknown-unknown --target-dir "$target"
out="$root/target/csr"
rm -rf "$out"
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out/pkg" \
  "$target/wasm32-unknown-unknown/debug/presence_csr.wasm"
cp "$here/index.html" "$out/index.html"
echo "built $out"
