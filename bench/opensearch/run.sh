#!/usr/bin/env bash
# datagen → OpenSearch benchmark: RECORDS (default 100,000) `datagen` readings (~220 bytes)
# indexed by `sluice run` (datagen source → opensearch sink, default batch: 10,000-record _bulk
# requests, position-derived ids) and by a plain `opensearch` crate bulk loop
# (connectors/opensearch/examples/opensearch_loop.rs: the same records, 10,000 per _bulk, ids from
# positions, every response checked) on the same server, interleaved, TRIALS (default 3) times
# each, in one invocation. Wall time of each process; `_count` is checked after each run.
# Prints a Markdown table of medians (target: Sluice ≥ 0.8 × the loop) and writes it to
# bench/opensearch/results.md.
#   bench/opensearch/run.sh
#   RECORDS=50000 TRIALS=1 bench/opensearch/run.sh
# The server comes from $SLUICE_TEST_OPENSEARCH_URL, or is started by scripts/services/opensearch.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
RECORDS=${RECORDS:-100000}
TRIALS=${TRIALS:-3}

if [ -z "${SLUICE_TEST_OPENSEARCH_URL:-}" ]; then
  eval "$(bash scripts/services/opensearch.sh start)"
fi
url=$SLUICE_TEST_OPENSEARCH_URL
if [ -z "${SLUICE_BENCH_BIN:-}" ]; then
  cargo build --release --locked -p sluice >&2
  SLUICE_BENCH_BIN="$CARGO_TARGET_DIR/release/sluice"
fi
cargo build --release --locked -p sluice-connector-opensearch --example opensearch_loop >&2
bin=$SLUICE_BENCH_BIN
loop_bin="$CARGO_TARGET_DIR/release/examples/opensearch_loop"
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-os.XXXXXX")
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

# check_count INDEX: _count after _refresh must be RECORDS; then the index is deleted.
check_count() {
  python3 - "$url" "$1" "$RECORDS" <<'PY'
import json, sys, urllib.request
url, index, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
def call(method, path):
    req = urllib.request.Request(f"{url}/{path}", method=method)
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)
call("POST", f"{index}/_refresh")
got = call("GET", f"{index}/_count")["count"]
call("DELETE", index)
if got != want:
    sys.exit(f"{index}: _count {got}, want {want}")
PY
}

loops=()
sluices=()
for trial in $(seq 1 "$TRIALS"); do
  index="bench-loop-$run_id-$trial"
  echo "bench: trial $trial: opensearch crate loop" >&2
  loops+=("$(wall "$loop_bin" "$url" "$index" "$RECORDS")")
  check_count "$index"
  index="bench-sluice-$run_id-$trial"
  cat > "$work/job.toml" <<JOB
api_version = 1
name = "bench-os-$run_id-$trial"
[source]
type = "datagen"
count = $RECORDS
batch_size = 10000
[[sinks]]
type = "opensearch"
url = "$url"
index = "$index"
JOB
  echo "bench: trial $trial: sluice" >&2
  sluices+=("$(SLUICE_LOG=warn wall "$bin" run "$work/job.toml" --no-progress --state-dir "$work/state-$trial")")
  check_count "$index"
done

row=$(python3 - "$RECORDS" "${loops[*]}" "${sluices[*]}" <<'PY'
import statistics, sys
n = int(sys.argv[1])
l = statistics.median(float(x) for x in sys.argv[2].split())
s = statistics.median(float(x) for x in sys.argv[3].split())
print(f"| {n} | {n/l:,.0f} | {n/s:,.0f} | {l/s:.2f} |")
PY
)
{
  echo "# datagen → OpenSearch"
  echo
  echo "\`bench/opensearch/run.sh\`, $(date -u +%Y-%m-%d), $TRIALS trial(s), medians of wall time."
  echo "Loop times: ${loops[*]} s; sluice times: ${sluices[*]} s."
  echo
  echo "| records | opensearch crate loop rec/s | sluice rec/s | sluice / loop |"
  echo "| ---: | ---: | ---: | ---: |"
  echo "$row"
} | tee bench/opensearch/results.md
