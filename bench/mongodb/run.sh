#!/usr/bin/env bash
# datagen → MongoDB benchmark: RECORDS (default 50,000) `datagen` readings (~220 bytes) written
# three ways on the same server, interleaved, TRIALS (default 3) times each, in one invocation
# (connectors/mongodb/examples/bench.rs):
#   loop — a plain `mongodb` crate loop: insert_many (unordered) of 10,000 documents at a time;
#   alo  — Sluice's pipeline (datagen source → mongodb sink, insert mode, 10,000-record batches),
#          at-least-once: one unordered insert_many per batch;
#   eos  — the same, exactly-once: one transaction per batch (the insert_many, then the
#          checkpoint document).
# Each run gets a fresh collection; its count is checked (= RECORDS) and the collection dropped.
# Prints a Markdown table of medians (targets: alo ≥ 0.8 × loop, eos ≥ 0.7 × alo) and writes it
# to bench/mongodb/results.md.
#   bench/mongodb/run.sh
#   RECORDS=20000 TRIALS=1 bench/mongodb/run.sh
# The server comes from $SLUICE_TEST_MONGODB_URL, or is started by scripts/services/mongodb.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
RECORDS=${RECORDS:-50000}
TRIALS=${TRIALS:-3}

if [ -z "${SLUICE_TEST_MONGODB_URL:-}" ]; then
  eval "$(bash scripts/services/mongodb.sh start)"
fi
url=$SLUICE_TEST_MONGODB_URL
cargo build --release --locked -p sluice-connector-mongodb --example bench >&2
bin="$CARGO_TARGET_DIR/release/examples/bench"
run_id="$(date +%s)_$$"
db=sluice_bench
python=python3
venv="$root/target/services/venv-mongodb/bin/python"
[ -x "$venv" ] && python=$venv

# count_and_drop COLLECTION: the collection must hold RECORDS documents; then it is dropped.
count_and_drop() {
  "$python" - "$url" "$db" "$1" "$RECORDS" <<'PY'
import sys, pymongo
url, db, coll, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = pymongo.MongoClient(url)
got = c[db][coll].count_documents({})
c[db][coll].drop()
c[db]["_sluice_checkpoints"].delete_many({"job": f"bench-{coll}"})
if got != want:
    sys.exit(f"{coll}: {got} documents, want {want}")
PY
}

declare -A rates
for trial in $(seq 1 "$TRIALS"); do
  for mode in loop alo eos; do
    coll="bench_${mode}_${run_id}_$trial"
    echo "bench: trial $trial: $mode" >&2
    out=$("$bin" "$url" "$db" "$coll" "$RECORDS" "$mode")
    echo "  $out" >&2
    count_and_drop "$coll"
    rates[$mode]+="$(sed -E 's/.*rate=([0-9]+).*/\1/' <<<"$out") "
  done
done

median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
loop=$(median "${rates[loop]}")
alo=$(median "${rates[alo]}")
eos=$(median "${rates[eos]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
table=$(cat <<MD
| $RECORDS records, median of $TRIALS | records/s | ratio |
| --- | ---: | --- |
| plain \`mongodb\` crate \`insert_many\` loop | $loop | 1.00 × loop |
| Sluice, at-least-once (insert_many per batch) | $alo | $(ratio "$alo" "$loop") × loop (target ≥ 0.8) |
| Sluice, exactly-once (transaction per batch) | $eos | $(ratio "$eos" "$alo") × at-least-once (target ≥ 0.7) |
MD
)
echo "$table"
{
  echo "# datagen → MongoDB ($(date -u +%Y-%m-%d), server: $url)"
  echo
  echo "$table"
} > bench/mongodb/results.md
