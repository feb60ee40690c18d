#!/usr/bin/env bash
# Kafka → Kafka benchmark: RECORDS (default 1,000,000) datagen records of ~220 bytes, moved from
# one topic to another by `sluice run` and by a plain rdkafka consume → produce loop
# (connectors/kafka/examples/kafka_loop.rs) on the same broker, in the same invocation,
# at-least-once and exactly-once. Times run from the member's partition assignment (the group
# join is excluded: on Tansu it waits session.timeout.ms / 2) to the last offset commit.
# Prints a Markdown table (target: Sluice ≥ 0.8 × the loop) and writes it to
# bench/kafka/results.md.
#   bench/kafka/run.sh
#   RECORDS=200000 PARTITIONS=4 bench/kafka/run.sh
# The broker comes from $SLUICE_TEST_KAFKA_BROKERS, or is started by scripts/services/kafka.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
RECORDS=${RECORDS:-1000000}
PARTITIONS=${PARTITIONS:-4}

if [ -z "${SLUICE_TEST_KAFKA_BROKERS:-}" ]; then
  eval "$(bash scripts/services/kafka.sh start)"
fi
brokers=$SLUICE_TEST_KAFKA_BROKERS
if [ -z "${SLUICE_BENCH_BIN:-}" ]; then
  cargo build --release --locked -p sluice >&2
  SLUICE_BENCH_BIN="$CARGO_TARGET_DIR/release/sluice"
fi
cargo build --release --locked -p sluice-connector-kafka --example kafka_loop >&2
bin=$SLUICE_BENCH_BIN
loop_bin="$CARGO_TARGET_DIR/release/examples/kafka_loop"
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-kafka.XXXXXX")
trap 'rm -rf "$work"' EXIT
run_id="$(date +%s)-$$"
input="bench-in-$run_id"

echo "bench: producing $RECORDS records into $input ($PARTITIONS partitions)" >&2
for t in "$input" "bench-out-loop-at-least-once-$run_id" "bench-out-loop-exactly-once-$run_id" \
  "bench-out-sluice-at-least-once-$run_id" "bench-out-sluice-exactly-once-$run_id"; do
  "$loop_bin" create "$brokers" "$t" "$PARTITIONS"
done
cat > "$work/gen.toml" <<JOB
api_version = 1
name = "bench-gen-$run_id"
[source]
type = "datagen"
count = $RECORDS
batch_size = 10000
[[sinks]]
type = "kafka"
brokers = "$brokers"
topic = "$input"
linger = "20ms"
batch = { max_records = 20000, max_bytes = "8MiB" }
JOB
SLUICE_LOG=warn "$bin" run "$work/gen.toml" --no-progress >&2

# sluice_run GUARANTEE → seconds
sluice_run() {
  local g=$1 group="bench-sluice-$1-$run_id" out="bench-out-sluice-$1-$run_id"
  cat > "$work/$g.toml" <<JOB
api_version = 1
name = "bench-$g-$run_id"
[delivery]
guarantee = "$g"
commit_interval = "200ms"
[source]
type = "kafka"
brokers = "$brokers"
topics = ["$input"]
group = "$group"
session_timeout = "6s"
batch_size = 2000
[[sinks]]
type = "kafka"
brokers = "$brokers"
topic = "$out"
$( [ "$g" = exactly-once ] && echo "source_group = \"$group\"" )
batch = { max_records = 10000, max_bytes = "8MiB", max_wait = "100ms" }
JOB
  SLUICE_LOG=warn,sluice_connector_kafka=info SLUICE_LOG_FORMAT=json "$bin" run "$work/$g.toml" --no-progress 2>"$work/$g.log" &
  local pid=$!
  local end
  end=$("$loop_bin" wait "$brokers" "$group" "$input" "$RECORDS")
  kill -TERM "$pid"; wait "$pid" || true
  local start
  start=$(python3 - "$work/$g.log" <<'PY'
import json, sys, datetime
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if "partitions assigned" in json.dumps(e):
        ts = e.get("timestamp")
        print(datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())
        break
PY
)
  python3 -c "print(f'{$end - $start:.3f}')"
}

loop_run() {
  local g=$1 mode=alo
  [ "$g" = exactly-once ] && mode=eos
  "$loop_bin" loop "$brokers" "$input" "bench-out-loop-$g-$run_id" "bench-loop-$g-$run_id" "$RECORDS" "$mode" \
    | sed -n 's/^seconds=\([0-9.]*\).*/\1/p'
}

rows=()
for g in at-least-once exactly-once; do
  echo "bench: $g: plain rdkafka loop" >&2
  l=$(loop_run "$g")
  echo "bench: $g: sluice" >&2
  s=$(sluice_run "$g")
  row=$(python3 - "$g" "$RECORDS" "$l" "$s" <<'PY'
import sys
g, n, l, s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print(f"| {g} | {n} | {n/l:,.0f} | {n/s:,.0f} | {l/s:.2f} |")
PY
)
  echo "$row" >&2
  rows+=("$row")
done

{
  echo "Kafka → Kafka on $(uname -n), $(nproc) cores, Tansu broker at $brokers, $(date -u +%Y-%m-%d):"
  echo
  echo "| guarantee | records | rdkafka loop rec/s | sluice rec/s | sluice / loop |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${rows[@]}"
} | tee bench/kafka/results.md
