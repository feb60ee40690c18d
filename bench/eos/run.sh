#!/usr/bin/env bash
# Exactly-once against at-least-once for the file sink, on a quiet machine and under load: the
# same RECORDS-line file (default 2,000,000) copied by `sluice run` at least once and exactly
# once, alternating, TRIALS times each (median), while the machine is (1) quiet, (2) busy with
# CPU work (one `sha256sum /dev/zero` per core) and (3) busy with fsync'd writes (a dd loop
# with conv=fsync). Prints records/s and the ratio per condition (target ≥ 0.95) into
# bench/results/eos-load.md.
#   bench/eos/run.sh
#   RECORDS=500000 TRIALS=5 bench/eos/run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
. bench/lib.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
RECORDS=${RECORDS:-2000000}
TRIALS=${TRIALS:-3}
[ -n "${SLUICE_BENCH_BIN:-}" ] || cargo build --release --locked -p sluice >&2
bin=${SLUICE_BENCH_BIN:-$CARGO_TARGET_DIR/release/sluice}
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-eos.XXXXXX")
load_pids=()
stop_load() { for p in "${load_pids[@]}"; do kill "$p" 2>/dev/null || true; done; load_pids=(); }
trap 'stop_load; rm -rf "$work"' EXIT
mkdir -p bench/results

datagen_input "$bin" "$work" "$RECORDS"
for g in at-least-once exactly-once; do
  cat > "$work/$g.toml" <<JOB
api_version = 1
name = "$g"
[delivery]
guarantee = "$g"
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
type = "file"
path = "out/out.jsonl"
JOB
done

seconds() { # seconds GUARANTEE
  rm -rf "$work/out" "$work/state"
  local s e
  s=$(date +%s.%N)
  "$bin" run "$work/$1.toml" --no-progress --state-dir "$work/state" 2>"$work/$1.log" ||
    { cat "$work/$1.log" >&2; exit 1; }
  e=$(date +%s.%N)
  [ "$(wc -l < "$work/out/out.jsonl")" -eq "$RECORDS" ] || { echo "$1 lost records" >&2; exit 1; }
  awk -v s="$s" -v e="$e" 'BEGIN { print e - s }'
}

echo "| date | condition | records | at-least-once rec/s | exactly-once rec/s | EOS / ALO |"
echo "|---|---|---|---|---|---|"
: > bench/results/eos-load.md
for condition in quiet cpu fsync; do
  case $condition in
    cpu) for _ in $(seq "$(nproc)"); do sha256sum /dev/zero >/dev/null & load_pids+=($!); done ;;
    fsync) ( while :; do dd if=/dev/zero of="$work/junk" bs=1M count=64 conv=fsync status=none; done ) &
           load_pids+=($!) ;;
  esac
  : > "$work/alo"; : > "$work/eos"
  for _ in $(seq "$TRIALS"); do
    seconds at-least-once >> "$work/alo"
    seconds exactly-once >> "$work/eos"
  done
  stop_load
  ta=$(median < "$work/alo"); te=$(median < "$work/eos")
  row=$(awk -v n="$RECORDS" -v ta="$ta" -v te="$te" -v c="$condition" -v d="$(date -u +%F)" \
    'BEGIN { printf "| %s | %s | %d | %.0f | %.0f | %.2f |\n", d, c, n, n/ta, n/te, ta/te }')
  echo "$row"
  echo "$row" >> bench/results/eos-load.md
done
