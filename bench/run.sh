#!/usr/bin/env bash
# Benchmark harness: builds release binaries, then runs each case against its baseline in the
# same invocation, TRIALS times each, and prints the medians (records/s, ratio, peak RSS) as
# Markdown rows; the rows also go to bench/results/<case>.md for bench/REPORT.md.
#   bench/run.sh [CASE...]       cases: file-json wasm-add-field wasm-add-field-2t wasm-jq
#                                (default: these four), wasm-smt
#   RECORDS=2000000 TRIALS=3 bench/run.sh
# The SQL, Kafka and WASM-boundary cases have their own scripts (bench/sql, bench/kafka,
# transforms/benches), listed in bench/REPORT.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
. bench/lib.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
RECORDS=${RECORDS:-2000000}
TRIALS=${TRIALS:-3}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(file-json wasm-add-field wasm-add-field-2t wasm-jq)

command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
bash scripts/build-plugins.sh >&2
cargo build --release --locked -p sluice -p sluice-bench >&2
bin="$CARGO_TARGET_DIR/release"
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p bench/results

datagen_input "$bin/sluice" "$work" "$RECORDS"
bytes=$(stat -c %s "$work/in.jsonl")
echo "input: $RECORDS records, $bytes bytes ($((bytes / RECORDS)) bytes/record)" >&2

# measure NAME CMD... → appends "seconds rss_kb" to $work/NAME.times
measure() {
  local name=$1; shift
  rm -rf "$work/out" "$work/state"; mkdir -p "$work/out"
  sync
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" >/dev/null 2>"$work/$name.log" || {
    cat "$work/$name.log" >&2; exit 1; }
  local lines
  lines=$(cat "$work"/out/* | wc -l)
  [ "$lines" -eq "$RECORDS" ] || { echo "$name wrote $lines records, expected $RECORDS" >&2; exit 1; }
  cat "$work/time.txt" >> "$work/$name.times"
}

maxcol() { awk '{ if ($2 > m) m = $2 } END { print m }'; }

report() {
  local case=$1 base=$2 subject=$3
  local tb ts rb rs
  tb=$(awk '{print $1}' "$work/$base.times" | median)
  ts=$(awk '{print $1}' "$work/$subject.times" | median)
  rb=$(maxcol < "$work/$base.times"); rs=$(maxcol < "$work/$subject.times")
  local row
  row=$(awk -v n="$RECORDS" -v tb="$tb" -v ts="$ts" -v rb="$rb" -v rs="$rs" -v c="$case" -v d="$(date -u +%F)" \
    'BEGIN { printf "| %s | %s | %.0f | %.0f | %.2f | %.0f | %.0f |\n", d, c, n/tb, n/ts, tb/ts, rb/1024, rs/1024 }')
  echo "$row"
  echo "$row" > "bench/results/$case.md"
}

job() { # job NAME [TRANSFORM_TOML]
  cat > "$work/$1.toml" <<JOB
api_version = 1
name = "$1"
[source]
type = "file"
path = "in.jsonl"
$2
[[sinks]]
type = "file"
path = "out/out.jsonl"
JOB
}

echo "| date | case | baseline rec/s | sluice rec/s | sluice / baseline | baseline peak RSS MiB | sluice peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
for case in "${cases[@]}"; do
  case $case in
    file-json)
      job file-json ""
      for _ in $(seq "$TRIALS"); do
        measure loop "$bin/json_loop" "$work/in.jsonl" "$work/out/out.jsonl"
        measure sluice "$bin/sluice" run "$work/file-json.toml" --no-progress --state-dir "$work/state"
      done
      report file-json loop sluice
      rm -f "$work/loop.times" "$work/sluice.times"
      ;;
    wasm-add-field)
      job wasm-add-field "[[transforms]]
plugin = \"$root/plugins/dist/add-field.wasm\"
with = { set = { pipeline = \"sluice\" }, timestamp = \"processed_at\", timestamp_format = \"millis\" }"
      for _ in $(seq "$TRIALS"); do
        measure loop-edit "$bin/json_loop" "$work/in.jsonl" "$work/out/out.jsonl" --add-field
        measure sluice-wasm "$bin/sluice" run "$work/wasm-add-field.toml" --no-progress --state-dir "$work/state"
      done
      report wasm-add-field loop-edit sluice-wasm
      rm -f "$work/loop-edit.times" "$work/sluice-wasm.times"
      ;;
    wasm-add-field-2t)
      # The same job with the chain on two threads (`pipeline.transform_threads`), order kept.
      job wasm-add-field-2t "[[transforms]]
plugin = \"$root/plugins/dist/add-field.wasm\"
with = { set = { pipeline = \"sluice\" }, timestamp = \"processed_at\", timestamp_format = \"millis\" }
[pipeline]
transform_threads = 2"
      for _ in $(seq "$TRIALS"); do
        measure loop-edit "$bin/json_loop" "$work/in.jsonl" "$work/out/out.jsonl" --add-field
        measure sluice-wasm-2t "$bin/sluice" run "$work/wasm-add-field-2t.toml" --no-progress --state-dir "$work/state"
      done
      report wasm-add-field-2t loop-edit sluice-wasm-2t
      rm -f "$work/loop-edit.times" "$work/sluice-wasm-2t.times"
      ;;
    wasm-jq)
      # The wasm-add-field edit written as a jq filter (`now` is the batch time in seconds);
      # its baseline is the add-field plugin's job, not the loop: jq against hand-written Rust.
      job wasm-add-field "[[transforms]]
plugin = \"$root/plugins/dist/add-field.wasm\"
with = { set = { pipeline = \"sluice\" }, timestamp = \"processed_at\", timestamp_format = \"millis\" }"
      job wasm-jq "[[transforms]]
plugin = \"$root/plugins/dist/jq.wasm\"
with = { filter = '.pipeline = \"sluice\" | .processed_at = (now * 1000 | round)' }"
      for _ in $(seq "$TRIALS"); do
        measure sluice-wasm "$bin/sluice" run "$work/wasm-add-field.toml" --no-progress --state-dir "$work/state"
        measure sluice-jq "$bin/sluice" run "$work/wasm-jq.toml" --no-progress --state-dir "$work/state"
      done
      report wasm-jq sluice-wasm sluice-jq
      rm -f "$work/sluice-wasm.times" "$work/sluice-jq.times"
      ;;
    wasm-smt)
      # One static field added by the smt plugin's InsertField (the value parsed into a tree
      # and written back) against add-field's `set` (appended to the JSON text).
      job wasm-add-field-set "[[transforms]]
plugin = \"$root/plugins/dist/add-field.wasm\"
with = { set = { pipeline = \"sluice\" } }"
      job wasm-smt "[[transforms]]
plugin = \"$root/plugins/dist/smt.wasm\"
with = { type = \"InsertField\", static_field = \"pipeline\", static_value = \"sluice\" }"
      for _ in $(seq "$TRIALS"); do
        measure sluice-wasm "$bin/sluice" run "$work/wasm-add-field-set.toml" --no-progress --state-dir "$work/state"
        measure sluice-smt "$bin/sluice" run "$work/wasm-smt.toml" --no-progress --state-dir "$work/state"
      done
      report wasm-smt sluice-wasm sluice-smt
      rm -f "$work/sluice-wasm.times" "$work/sluice-smt.times"
      ;;
    *) echo "unknown case $case" >&2; exit 2 ;;
  esac
done
