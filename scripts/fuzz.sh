#!/usr/bin/env bash
# Fuzz harnesses (bolero, stable toolchain): every `fuzz_*` test of the crates below. Under plain
# `cargo test` each runs for about 1 s (bolero's random engine); this runs one for longer.
#
#   scripts/fuzz.sh list                          the harnesses, as `<crate> <harness>`
#   scripts/fuzz.sh <crate> <harness> <seconds>   run one, e.g. `scripts/fuzz.sh core fuzz_check_json_pieces 600`
#
# <crate> is core, file or wire; <harness> a test name or its last part. Inputs are drawn at
# random (the seed corpus in the harness's `__fuzz__/<name>/corpus/` runs first); a failure
# prints `BOLERO_RANDOM_SEED=<n>`: run again with that variable set to reproduce it, then add the
# input as a regression test. `crashes/` directories are ignored by git.
# CARGO_TARGET_DIR and the usual cargo variables apply; FUZZ_PROFILE=release builds optimized.
set -euo pipefail
cd "$(dirname "$0")/.."

target_of() {
  case "$1" in
    core) echo "-p sluice-core --lib" ;;
    file) echo "-p sluice-connector-file --lib" ;;
    wire) echo "-p sluice-wire --test fuzz" ;;
    *) echo "unknown crate '$1' (core, file or wire)" >&2; return 2 ;;
  esac
}

profile=()
[[ "${FUZZ_PROFILE:-}" == release ]] && profile=(--release)

harnesses() { # crate → its fuzz_* tests, one per line
  # shellcheck disable=SC2046
  cargo test --quiet --locked "${profile[@]}" $(target_of "$1") -- --list fuzz_ 2>/dev/null |
    sed -n 's/^\(.*fuzz_[a-z0-9_]*\): test$/\1/p'
}

case "${1:-}" in
  list)
    for crate in core file wire; do
      harnesses "$crate" | sed "s/^/$crate /"
    done
    ;;
  core | file | wire)
    [[ $# -eq 3 && "$3" =~ ^[0-9]+$ ]] || { echo "usage: $0 <crate> <harness> <seconds>" >&2; exit 2; }
    name=$(harnesses "$1" | grep -E "(^|::)$2\$" || true)
    [[ $(grep -c . <<<"$name") -eq 1 ]] || { echo "no single harness '$2' in $1; try: $0 list" >&2; exit 2; }
    echo "fuzzing $1 $name for $3 s" >&2
    # shellcheck disable=SC2046
    BOLERO_RANDOM_TEST_TIME_MS=$(($3 * 1000)) exec cargo test --locked "${profile[@]}" $(target_of "$1") \
      -- --exact "$name" --nocapture
    ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
