#!/usr/bin/env bash
# datagen → S3 benchmark on moto: RECORDS (default 200,000) `datagen` readings (~220 bytes)
# archived by `sluice run` (datagen source → s3 sink, default batch: 10,000-record objects) and
# by a plain aws-sdk-s3 loop (connectors/s3/examples/s3_loop.rs: the same records, the same
# objects, one PutObject each) on the same server, interleaved, TRIALS (default 3) times each,
# for JSON lines + gzip and for Parquet + zstd. Wall time of each process; after each run every
# object is read back and its records counted. Prints a Markdown table of medians (records/s,
# bytes/s of objects written, sluice / loop; target ≥ 0.8 ×) and writes bench/s3/results.md.
#   bench/s3/run.sh
#   RECORDS=50000 TRIALS=1 bench/s3/run.sh
# With the services already up (SLUICE_TEST_AWS_ENDPOINT and SLUICE_TEST_PYARROW_PYTHON set,
# e.g. from another checkout's target/services.env) nothing is started; boto3 comes from
# SLUICE_BENCH_BOTO_PYTHON (default: this checkout's moto venv). SLUICE_BENCH_BIN skips the
# release build of `sluice`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
RECORDS=${RECORDS:-200000}
TRIALS=${TRIALS:-3}

[ -n "${SLUICE_TEST_AWS_ENDPOINT:-}" ] || eval "$(bash scripts/services/moto.sh start)"
[ -n "${SLUICE_TEST_PYARROW_PYTHON:-}" ] || eval "$(bash scripts/services/pyarrow.sh start)"
endpoint=$SLUICE_TEST_AWS_ENDPOINT
boto="${SLUICE_BENCH_BOTO_PYTHON:-$root/target/services/venv-moto/bin/python}"
if [ -z "${SLUICE_BENCH_BIN:-}" ]; then
  cargo build --release --locked -p sluice >&2
  SLUICE_BENCH_BIN="$CARGO_TARGET_DIR/release/sluice"
fi
cargo build --release --locked -p sluice-connector-s3 --example s3_loop >&2
bin=$SLUICE_BENCH_BIN
loop_bin="$CARGO_TARGET_DIR/release/examples/s3_loop"
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-s3.XXXXXX")
trap 'rm -rf "$work"' EXIT
run_id="$(date +%s)-$$"

# wall COMMAND... → seconds the command took
wall() {
  python3 - "$@" <<'PY'
import subprocess, sys, time
t = time.time()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(f"{time.time() - t:.3f}")
PY
}

# s3 BUCKET create|fetch DIR: make the bucket, or download its data objects into DIR and print
# their total size.
s3() {
  "$boto" - "$endpoint" "$@" <<'PY'
import os, sys, boto3
endpoint, bucket, cmd = sys.argv[1:4]
c = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
if cmd == "create":
    c.create_bucket(Bucket=bucket)
    sys.exit()
out, total = sys.argv[4], 0
os.makedirs(out, exist_ok=True)
for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
    for o in page.get("Contents", []):
        if "_sluice/" in o["Key"]:
            continue
        total += o["Size"]
        c.download_file(bucket, o["Key"], os.path.join(out, o["Key"].replace("/", "_")))
print(total)
PY
}

# check BUCKET: every record there once; prints the bytes of the objects.
check() {
  local dir="$work/check-$1"
  local size
  size=$(s3 "$1" fetch "$dir")
  "$SLUICE_TEST_PYARROW_PYTHON" - "$dir" "$RECORDS" <<'PY'
import glob, gzip, json, sys
import pyarrow.parquet as pq
d, want = sys.argv[1], int(sys.argv[2])
seqs = []
for p in glob.glob(d + "/*"):
    if p.endswith(".parquet"):
        seqs += pq.read_table(p).column("seq").to_pylist()
    else:
        seqs += [json.loads(l)["seq"] for l in gzip.open(p, "rt")]
if len(seqs) != want or len(set(seqs)) != want:
    sys.exit(f"{d}: {len(seqs)} records, {len(set(seqs))} distinct, want {want}")
PY
  rm -rf "$dir"
  echo "$size"
}

rows=()
for format in json-gz parquet; do
  case $format in
    json-gz) sink_format='format = "json"
compression = "gzip"' ;;
    parquet) sink_format='format = "parquet"
compression = "zstd"' ;;
  esac
  loops=(); sluices=(); loop_bytes=0; sluice_bytes=0
  for trial in $(seq 1 "$TRIALS"); do
    bucket="bench-loop-$format-$run_id-$trial"
    s3 "$bucket" create
    echo "bench: $format trial $trial: aws-sdk-s3 loop" >&2
    loops+=("$(wall "$loop_bin" "$endpoint" "$bucket" "$RECORDS" "$format")")
    loop_bytes=$(check "$bucket")
    bucket="bench-sluice-$format-$run_id-$trial"
    s3 "$bucket" create
    cat > "$work/job.toml" <<JOB
api_version = 1
name = "bench-s3-$run_id-$trial"
[source]
type = "datagen"
count = $RECORDS
batch_size = 10000
[[sinks]]
type = "s3"
bucket = "$bucket"
endpoint = "$endpoint"
region = "us-east-1"
force_path_style = true
prefix = "sluice/"
$sink_format
JOB
    echo "bench: $format trial $trial: sluice" >&2
    sluices+=("$(SLUICE_LOG=warn wall "$bin" run "$work/job.toml" --no-progress --state-dir "$work/state-$format-$trial")")
    sluice_bytes=$(check "$bucket")
  done
  rows+=("$(python3 - "$format" "$RECORDS" "${loops[*]}" "${sluices[*]}" "$loop_bytes" "$sluice_bytes" <<'PY'
import statistics, sys
fmt, n = sys.argv[1], int(sys.argv[2])
l = statistics.median(float(x) for x in sys.argv[3].split())
s = statistics.median(float(x) for x in sys.argv[4].split())
lb, sb = int(sys.argv[5]), int(sys.argv[6])
print(f"| {fmt} | {n} | {n/l:,.0f} | {lb/l/1e6:.2f} | {n/s:,.0f} | {sb/s/1e6:.2f} | {l/s:.2f} |")
PY
)")
  echo "bench: $format loop ${loops[*]} s, sluice ${sluices[*]} s" >&2
done
{
  echo "# datagen → S3 (moto)"
  echo
  echo "\`bench/s3/run.sh\`, $(date -u +%Y-%m-%d), $TRIALS trial(s), medians of wall time; MB/s is of the objects written."
  echo
  echo "| format | records | aws-sdk-s3 loop rec/s | loop MB/s | sluice rec/s | sluice MB/s | sluice / loop |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${rows[@]}"
} | tee bench/s3/results.md
