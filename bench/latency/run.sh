#!/usr/bin/env bash
# End-to-end latency: from a line's creation (wall-clock stamp written into it) to the moment it
# can be read from the sink's file, through `sluice run` (file source following the input,
# `poll_interval = "5ms"` → file sink, `batch.max_wait = "10ms"`), at RATE lines/s for SECONDS.
# One process (bench/latency/probe.py) writes and reads, so both stamps come from one clock.
#   bench/latency/run.sh                 RATE=10000 SECONDS=20, at-least-once and exactly-once
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
RATE=${RATE:-10000}
SECONDS_RUN=${SECONDS_RUN:-20}
cargo build --release --locked -p sluice >&2
bin="$CARGO_TARGET_DIR/release/sluice"
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-latency.XXXXXX")
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
pid=

echo "| guarantee | lines/s | delivered | lost | p50 ms | p90 ms | p99 ms | max ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for guarantee in at-least-once exactly-once; do
  rm -rf "$work/run"; mkdir -p "$work/run"
  : > "$work/run/in.jsonl"
  cat > "$work/run/job.toml" <<JOB
api_version = 1
name = "latency"
[delivery]
guarantee = "$guarantee"
[source]
type = "file"
path = "in.jsonl"
follow = true
poll_interval = "5ms"
[[sinks]]
type = "file"
path = "out.jsonl"
batch = { max_wait = "10ms" }
JOB
  "$bin" run "$work/run/job.toml" --no-progress 2>"$work/run/sluice.log" &
  pid=$!
  sleep 1
  python3 bench/latency/probe.py "$work/run/in.jsonl" "$work/run/out.jsonl" "$RATE" "$SECONDS_RUN" "$guarantee"
  kill -INT "$pid"; wait "$pid" || true
done
