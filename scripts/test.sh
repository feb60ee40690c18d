#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the build needs, the wasm target,
# builds the plugins, starts the real services the tests talk to (PostgreSQL, MariaDB, a
# Kafka-protocol broker, ...), then runs lint, unit, property, integration and end-to-end tests.
#   scripts/test.sh            everything
#   scripts/test.sh -- ARGS    extra arguments for the test runner (e.g. a test name filter)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# One target dir shared by every checkout on this machine: CI's fresh clone reuses the builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
export SLUICE_PLUGINS_TARGET_DIR="${SLUICE_PLUGINS_TARGET_DIR:-$HOME/.cache/sluice/plugins-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"
# A full disk fails the build half-way with a linker bus error; say how much room there is, and
# start the shared target dir over when what is left would not hold a build of the workspace.
avail_kb=$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print $4 }')
printf 'disk: %d GiB free where the build goes (%s)\n' $((avail_kb / 1048576)) "$CARGO_TARGET_DIR" >&2
if [ "$avail_kb" -lt $((15 * 1048576)) ]; then
  echo "disk: under 15 GiB free: removing the shared target dir $CARGO_TARGET_DIR" >&2
  rm -rf "$CARGO_TARGET_DIR" && mkdir -p "$CARGO_TARGET_DIR"
fi
step() { printf '\n==> %s\n' "$*" >&2; }

step "system dependencies"
for s in scripts/install-deps.sh scripts/install-chromium.sh; do
  [ -x "$s" ] || [ -f "$s" ] && bash "$s"
done

step "wasm plugins"
bash scripts/build-plugins.sh

step "services"
bash scripts/services.sh up
set -a
# shellcheck disable=SC1091
. "$root/target/services.env"
set +a

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The plugins workspace (its own, excluded from the root one): lints for the target it ships
# to, in the plugins' target dir that build-plugins.sh just filled.
plugins=(--manifest-path plugins/Cargo.toml --target-dir "$SLUICE_PLUGINS_TARGET_DIR")
cargo fmt --manifest-path plugins/Cargo.toml --all -- --check
cargo clippy "${plugins[@]}" --workspace --all-targets --locked --target wasm32-wasip2 -- -D warnings

step "connector kit"
# Every connector runs the shared conformance suite from its own test file (docs/writing-a-connector.md).
missing=0
for c in connectors/*/; do
  if ! compgen -G "${c}tests/conformance*.rs" >/dev/null; then
    echo "${c%/} has no tests/conformance*.rs: every connector runs the shared conformance suite" >&2
    missing=1
  fi
done
[ "$missing" = 0 ]

step "tests"
extra=()
if [ "${1:-}" = "--" ]; then shift; extra=("$@"); fi
# The SDK's and the plugins' unit tests run natively (the SDK compiles for the host: only its
# logging calls the host import, and only on wasm32).
cargo test "${plugins[@]}" --workspace --locked --quiet
status=0
if cargo nextest --version >/dev/null 2>&1; then
  # Doc tests first: nextest does not run them, and its summary should be the last word.
  cargo test --workspace --locked --doc --quiet
  cargo nextest run --workspace --locked --no-fail-fast --failure-output final "${extra[@]}" || status=$?
else
  cargo test --workspace --locked --no-fail-fast "${extra[@]}" || status=$?
fi
# On stderr, so the test runner's summary stays the last line of stdout.
printf 'test suite: %d min %d s in all\n' $((SECONDS / 60)) $((SECONDS % 60)) >&2
exit "$status"
