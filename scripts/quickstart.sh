#!/usr/bin/env bash
# Set up and run the default job (connector.toml): no external service needed.
# Installs the build dependencies and the wasm target, builds the bundled plugins and a release binary, then runs the job.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install-deps.sh
bash scripts/build-plugins.sh
exec cargo run --release --locked --quiet -- run connector.toml "$@"
