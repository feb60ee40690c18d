#!/usr/bin/env bash
# Where the memory of a file → add-field → file job goes, by experiment: the same job on the
# same RECORDS-line input (default 2,000,000) with one knob changed at a time — no transform,
# fewer batches in flight, smaller reads, fewer malloc arenas, two transform threads — each
# run's peak RSS (/usr/bin/time) and, for the default job, the breakdown of its peak by kind of
# mapping (bench/memory/probe.py). Markdown on stdout and in bench/results/memory.md.
#   bench/memory/run.sh
#   RECORDS=500000 bench/memory/run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
. bench/lib.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
RECORDS=${RECORDS:-2000000}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
bash scripts/build-plugins.sh >&2
[ -n "${SLUICE_BENCH_BIN:-}" ] || cargo build --release --locked -p sluice >&2
bin=${SLUICE_BENCH_BIN:-$CARGO_TARGET_DIR/release/sluice}
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-memory.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p bench/results

datagen_input "$bin" "$work" "$RECORDS"

plugin="[[transforms]]
plugin = \"$root/plugins/dist/add-field.wasm\"
with = { set = { pipeline = \"sluice\" }, timestamp = \"processed_at\", timestamp_format = \"millis\" }"

job() { # job NAME SOURCE_EXTRA TRANSFORMS PIPELINE
  cat > "$work/$1.toml" <<JOB
api_version = 1
name = "$1"
[source]
type = "file"
path = "in.jsonl"
$2
$3
[pipeline]
$4
[[sinks]]
type = "file"
path = "out/out.jsonl"
JOB
}

# rss NAME [ENV...]: runs the job, prints its peak RSS in MiB
rss() {
  local name=$1; shift
  rm -rf "$work/out" "$work/state"
  env "$@" /usr/bin/time -f "%M" -o "$work/time.txt" \
    "$bin" run "$work/$name.toml" --no-progress --state-dir "$work/state" 2>"$work/$name.log" ||
    { cat "$work/$name.log" >&2; exit 1; }
  local lines; lines=$(wc -l < "$work/out/out.jsonl")
  [ "$lines" -eq "$RECORDS" ] || { echo "$name wrote $lines lines" >&2; exit 1; }
  awk '{ printf "%.0f", $1 / 1024 }' "$work/time.txt"
}

job plain "" "" ""
job plugin "" "$plugin" ""
job cap1 "" "$plugin" "channel_capacity = 1"
job read1m 'read_size = "1MiB"' "$plugin" ""
job threads2 "" "$plugin" "transform_threads = 2"
job lean "" "$plugin" "channel_capacity = 1"

{
  echo "| $(date -u +%F), $RECORDS lines | peak RSS MiB |"
  echo "|---|---|"
  echo "| file → file | $(rss plain) |"
  echo "| file → add-field → file (defaults: read_size 256 KiB, channel_capacity 4) | $(rss plugin) |"
  echo "| … read_size = 1MiB (the default before 2026-12-03) | $(rss read1m) |"
  echo "| … channel_capacity = 1 | $(rss cap1) |"
  echo "| … MALLOC_ARENA_MAX=1 | $(rss plugin MALLOC_ARENA_MAX=1) |"
  echo "| … channel_capacity = 1, MALLOC_ARENA_MAX=1 | $(rss lean MALLOC_ARENA_MAX=1) |"
  echo "| … transform_threads = 2 | $(rss threads2) |"
  echo
  # The default plugin job's peak, by kind of mapping.
  rm -rf "$work/out" "$work/state"
  "$bin" run "$work/plugin.toml" --no-progress --state-dir "$work/state" 2>/dev/null &
  pid=$!
  breakdown=$(python3 bench/memory/probe.py "$pid" 0.05)
  wait "$pid"
  echo '```'
  echo "file → add-field → file, $breakdown"
  echo '```'
} | tee bench/results/memory.md
