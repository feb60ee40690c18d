#!/usr/bin/env bash
# Kinesis benchmark on one endpoint (kinesis-local unless $SLUICE_TEST_KINESIS_ENDPOINT says
# otherwise), both directions against plain aws-sdk-kinesis loops
# (connectors/kinesis/examples/kinesis_loop.rs), interleaved, TRIALS (default 3) times each, in
# one invocation:
#   read:  Kinesis → file. A 2-shard stream holding RECORDS (default 20,000) `datagen` readings
#          (~220 bytes) is read to a JSON-lines file by `sluice run` (kinesis source, 10,000
#          records a GetRecords call → file sink) and by a GetRecords loop (10,000 a call, the
#          shards in turn, ≤ 5 calls/s/shard). The source never ends: each side is timed from
#          its start until the file holds RECORDS lines (Sluice is then stopped).
#   write: file → Kinesis. The same readings from a file into a fresh 2-shard stream by
#          `sluice run` (file source → kinesis sink, partition key = device_id) and by a
#          PutRecords loop (500 a call, one call at a time, failed entries sent again). Wall
#          time of each process; the stream's record count is checked after each run.
# Prints a Markdown table of medians (target: Sluice ≥ 0.8 × each loop) and writes it to
# bench/kinesis/results.md. kinesis-local takes ~0.4 s per 500-record PutRecords: keep RECORDS
# small.
#   bench/kinesis/run.sh
#   RECORDS=5000 TRIALS=1 bench/kinesis/run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
RECORDS=${RECORDS:-20000}
TRIALS=${TRIALS:-3}

if [ -z "${SLUICE_TEST_KINESIS_ENDPOINT:-}" ]; then
  eval "$(bash scripts/services/kinesis.sh start)"
fi
endpoint=$SLUICE_TEST_KINESIS_ENDPOINT
export AWS_REGION=${SLUICE_TEST_AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
# PROFILE=dev measures debug builds of both sides (a quick look; the figures to report come
# from the default release builds).
PROFILE=${PROFILE:-release}
dir=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
if [ -z "${SLUICE_BENCH_BIN:-}" ]; then
  cargo build --profile "$PROFILE" --locked -p sluice >&2
  SLUICE_BENCH_BIN="$CARGO_TARGET_DIR/$dir/sluice"
fi
cargo build --profile "$PROFILE" --locked -p sluice-connector-kinesis --example kinesis_loop >&2
bin=$SLUICE_BENCH_BIN
loop_bin="$CARGO_TARGET_DIR/$dir/examples/kinesis_loop"
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-kinesis.XXXXXX")
streams=()
cleanup() {
  for s in "${streams[@]}"; do "$loop_bin" "$endpoint" delete "$s" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
run_id="$(date +%s)-$$"
export SLUICE_LOG=warn

# wall COMMAND... → seconds the command took
wall() {
  python3 - "$@" <<'PY'
import subprocess, sys, time
t = time.time()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(f"{time.time() - t:.3f}")
PY
}

# until_lines FILE N COMMAND... → seconds from the command's start until FILE holds N lines;
# the command is then stopped with SIGTERM (it must exit 0).
until_lines() {
  python3 - "$@" <<'PY'
import os, signal, subprocess, sys, time
path, want, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
t = time.time()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
def lines():
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0
while lines() < want:
    if p.poll() is not None:
        sys.exit(f"{cmd[0]} stopped ({p.returncode}) with {lines()} of {want} lines")
    if time.time() - t > 900:
        p.kill()
        sys.exit(f"{lines()} of {want} lines after 900 s")
    time.sleep(0.02)
took = time.time() - t
p.send_signal(signal.SIGTERM)
if p.wait(timeout=60) != 0:
    sys.exit(f"{cmd[0]} exited {p.returncode}")
if lines() != want:
    sys.exit(f"{lines()} lines, want {want}")
print(f"{took:.3f}")
PY
}

# new_stream NAME: a fresh 2-shard stream, deleted at the end.
new_stream() {
  "$loop_bin" "$endpoint" create "$1" 2
  streams+=("$1")
}

# check_count STREAM: the stream must hold RECORDS records.
check_count() {
  local got
  got=$("$loop_bin" "$endpoint" count "$1")
  [ "$got" = "$RECORDS" ] || { echo "bench: $1 holds $got records, want $RECORDS" >&2; exit 1; }
}

# The input: RECORDS datagen readings as JSON lines.
cat > "$work/gen.toml" <<JOB
api_version = 1
name = "bench-kinesis-gen"
[source]
type = "datagen"
count = $RECORDS
[[sinks]]
type = "file"
path = "$work/input.jsonl"
fsync = false
JOB
"$bin" run "$work/gen.toml" --no-progress --state-dir "$work/state-gen" >/dev/null

echo "bench: feeding the read stream ($RECORDS records)" >&2
in_stream="bench-read-$run_id"
new_stream "$in_stream"
"$loop_bin" "$endpoint" put "$in_stream" "$work/input.jsonl" >&2
check_count "$in_stream"

read_loops=(); read_sluices=(); write_loops=(); write_sluices=()
for trial in $(seq 1 "$TRIALS"); do
  echo "bench: trial $trial: read, GetRecords loop" >&2
  out="$work/read-loop-$trial.jsonl"
  read_loops+=("$(wall "$loop_bin" "$endpoint" get "$in_stream" "$RECORDS" "$out")")
  [ "$(wc -l < "$out")" = "$RECORDS" ] || { echo "bench: the loop wrote $(wc -l < "$out") lines" >&2; exit 1; }
  rm -f "$out"

  echo "bench: trial $trial: read, sluice" >&2
  out="$work/read-sluice-$trial.jsonl"
  cat > "$work/read-$trial.toml" <<JOB
api_version = 1
name = "bench-kinesis-read-$run_id-$trial"
[source]
type = "kinesis"
stream = "$in_stream"
endpoint = "$endpoint"
region = "$AWS_REGION"
max_records = 10000
[[sinks]]
type = "file"
path = "$out"
JOB
  read_sluices+=("$(until_lines "$out" "$RECORDS" "$bin" run "$work/read-$trial.toml" --no-progress --state-dir "$work/state-read-$trial")")
  rm -f "$out"

  echo "bench: trial $trial: write, PutRecords loop" >&2
  s="bench-write-loop-$run_id-$trial"
  new_stream "$s"
  write_loops+=("$(wall "$loop_bin" "$endpoint" put "$s" "$work/input.jsonl")")
  check_count "$s"

  echo "bench: trial $trial: write, sluice" >&2
  s="bench-write-sluice-$run_id-$trial"
  new_stream "$s"
  cat > "$work/write-$trial.toml" <<JOB
api_version = 1
name = "bench-kinesis-write-$run_id-$trial"
[source]
type = "file"
path = "$work/input.jsonl"
[[sinks]]
type = "kinesis"
stream = "$s"
endpoint = "$endpoint"
region = "$AWS_REGION"
partition_key = { field = "device_id" }
JOB
  write_sluices+=("$(wall "$bin" run "$work/write-$trial.toml" --no-progress --state-dir "$work/state-write-$trial")")
  check_count "$s"
done

rows=$(python3 - "$RECORDS" "${read_loops[*]}" "${read_sluices[*]}" "${write_loops[*]}" "${write_sluices[*]}" <<'PY'
import statistics, sys
n = int(sys.argv[1])
def row(name, loop, sluice):
    l = statistics.median(float(x) for x in loop.split())
    s = statistics.median(float(x) for x in sluice.split())
    return f"| {name} | {n} | {n/l:,.0f} | {n/s:,.0f} | {l/s:.2f} |"
print(row("Kinesis → file (GetRecords loop)", sys.argv[2], sys.argv[3]))
print(row("file → Kinesis (PutRecords loop)", sys.argv[4], sys.argv[5]))
PY
)
{
  echo "# Kinesis ↔ file"
  echo
  echo "\`bench/kinesis/run.sh\`, $(date -u +%Y-%m-%d), $PROFILE build, endpoint $endpoint, $TRIALS trial(s), medians of wall time."
  echo "Read: loop ${read_loops[*]} s, sluice ${read_sluices[*]} s. Write: loop ${write_loops[*]} s, sluice ${write_sluices[*]} s."
  echo
  echo "| case | records | loop rec/s | sluice rec/s | sluice / loop |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  echo "$rows"
} | tee bench/kinesis/results.md
