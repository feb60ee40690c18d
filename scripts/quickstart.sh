#!/usr/bin/env bash
# Set up and run the default job (connector.toml): no external service needed.
# Installs the build dependencies and the wasm target, builds the bundled plugins and a release
# binary (the first build takes several minutes; cargo shows its progress), then runs the job.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n==> %s\n' "$*" >&2; }
step "build dependencies"
bash scripts/install-deps.sh
step "bundled WebAssembly plugins"
bash scripts/build-plugins.sh
step "the sluice binary (release; the first build takes several minutes)"
cargo build --release --locked --bin sluice
bin="${CARGO_TARGET_DIR:-$root/target}/release/sluice"
printf '\nsluice is at %s (install it on your PATH with: cargo install --locked --path .)\n' "$bin" >&2
step "running connector.toml"
exec "$bin" run connector.toml "$@"
