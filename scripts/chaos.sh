#!/usr/bin/env bash
# The chaos run: every delivery pair under random kill -9s and faults (a sink outage, a slow
# sink, a locked SQLite database, a Kafka broker restart), every record counted at the
# destination by its unique key; prints one table (pair, guarantee, kills, faults, records, lost,
# duplicated, max RSS, time) and, for a full run, writes it to bench/CHAOS.md.
#   scripts/chaos.sh [--kills N] [--pairs a,b] [--quick] [--release] [--parallel K]
#     --kills N     kill -9s per pair (default 50)
#     --pairs a,b   only these pairs: file-alo file-eos datagen-postgres datagen-mariadb
#                   datagen-sqlite kafka-postgres file-s3-parquet datagen-opensearch
#     --quick       the CI size: 3 kills, 4 s faults, nothing written to bench/CHAOS.md
#     --release     run the release build of sluice (default: the debug build)
#     --parallel K  run the pairs in K concurrent groups (default 1: one after the other)
# Faults last SLUICE_CHAOS_OUTAGE_SECS (default 60; --quick 4); the slow proxy adds
# SLUICE_CHAOS_LATENCY_MS (default 100) to every chunk. The runner is tests/chaos.rs (the test
# suite runs it at the CI size).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
kills=50 pairs="" quick=0 profile=() release="" parallel=1
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) kills=$2; shift 2 ;;
    --pairs) pairs=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --release) profile=(--release) release=1; shift ;;
    --parallel) parallel=$2; shift 2 ;;
    *) sed -n '2,17p' "$0" >&2; exit 2 ;;
  esac
done
outage=${SLUICE_CHAOS_OUTAGE_SECS:-60}
if [ "$quick" = 1 ]; then
  kills=3 outage=${SLUICE_CHAOS_OUTAGE_SECS:-4}
fi

# The services (idempotent: what already answers is reused), unless an env file is given.
env_file=${SLUICE_SERVICES_ENV:-}
if [ -z "$env_file" ]; then
  bash scripts/services.sh up postgres mariadb kafka moto opensearch >&2
  env_file="$root/target/services.env"
fi
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a

all_pairs=(file-alo file-eos datagen-postgres datagen-mariadb datagen-sqlite kafka-postgres
  file-s3-parquet datagen-opensearch)
if [ -n "$pairs" ]; then IFS=, read -ra selected <<<"$pairs"; else selected=("${all_pairs[@]}"); fi
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-chaos.XXXXXX")
trap 'rm -rf "$work"' EXIT
report="$work/table.md"
started=$(date -u +%Y-%m-%dT%H:%MZ)
cargo test "${profile[@]}" --locked --test chaos --no-run >&2
# Group g runs pairs g, g+K, g+2K, ... (each group one test process, its pairs in turn).
pids=()
for ((g = 0; g < parallel; g++)); do
  group=""
  for ((i = g; i < ${#selected[@]}; i += parallel)); do group+="${group:+,}${selected[i]}"; done
  [ -n "$group" ] || continue
  SLUICE_CHAOS_KILLS=$kills SLUICE_CHAOS_PAIRS=$group SLUICE_CHAOS_OUTAGE_SECS=$outage \
    SLUICE_CHAOS_REPORT="$work/table.$g" \
    cargo test "${profile[@]}" --locked --test chaos -- --nocapture --test-threads 1 \
    >"$work/log.$g" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
cat "$work"/log.* >&2
# One table, rows in the order of the pairs asked for, then any failures.
tables=("$work"/table.*)
if [ -e "${tables[0]}" ]; then
  head -2 "${tables[0]}" >"$report"
  for p in "${selected[@]}"; do cat "${tables[@]}" | grep "^| $p |" >>"$report" || true; done
  cat "${tables[@]}" | grep -v '^|' | grep . >>"$report" || true
fi
[ -s "$report" ] && { echo; cat "$report"; }

if [ "$quick" = 0 ] && [ -s "$report" ]; then
  cmd="scripts/chaos.sh --kills $kills${pairs:+ --pairs $pairs}${release:+ --release}"
  [ "$parallel" = 1 ] || cmd+=" --parallel $parallel"
  {
    echo "# Chaos run"
    echo
    echo "\`$cmd\` (faults ${outage} s, slow sink +${SLUICE_CHAOS_LATENCY_MS:-100} ms per chunk), $started,"
    echo "$(nproc) cores, $(uname -sr), sluice $(git rev-parse --short HEAD), $([ -n "$release" ] && echo release || echo debug) build."
    echo
    cat "$report"
    echo
    echo "Kills: \`kill -9\` at random moments (every other one once the destination grew in that run)."
    echo "Faults are injected one after the other into the last run, each for the time given: an"
    echo "outage drops and refuses every connection to the sink (a proxy in front of the shared"
    echo "server), a slow sink delays every chunk both ways, a lock holds \`BEGIN EXCLUSIVE\` on the"
    echo "SQLite file, a broker restart kills the job's own Tansu broker (S3-backed) and starts it"
    echo "again 3 s later. Lost: keys never delivered; duplicated: extra copies. Max RSS: the largest"
    echo "peak (VmHWM) of any run of the pair. See tests/chaos_support/."
  } > bench/CHAOS.md
  echo "wrote bench/CHAOS.md" >&2
fi
exit "$status"
