#!/usr/bin/env bash
# SQL sink benchmark: datagen → SQLite and → PostgreSQL, RECORDS records (default 1,000,000),
# at-least-once vs exactly-once in the same invocation, TRIALS times each (median). Prints
# records/s and the exactly-once / at-least-once ratio as Markdown rows (target ≥ 0.70) and
# writes them to bench/results/sql.md for bench/REPORT.md.
#   bench/sql/run.sh                      both databases
#   RECORDS=200000 TRIALS=3 bench/sql/run.sh sqlite
# PostgreSQL comes from $SLUICE_TEST_POSTGRES_URL, or is started by scripts/services/postgres.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
RECORDS=${RECORDS:-1000000}
TRIALS=${TRIALS:-1}
BATCH=${BATCH:-10000}
dbs=("$@")
[ ${#dbs[@]} -gt 0 ] || dbs=(sqlite postgres)

if [ -z "${SLUICE_BENCH_BIN:-}" ]; then
  cargo build --release --locked -p sluice >&2
  SLUICE_BENCH_BIN="$CARGO_TARGET_DIR/release/sluice"
fi
bin=$SLUICE_BENCH_BIN
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-sql.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p bench/results

pg_url() {
  if [ -z "${SLUICE_TEST_POSTGRES_URL:-}" ]; then
    eval "$(bash scripts/services/postgres.sh start)"
  fi
  echo "$SLUICE_TEST_POSTGRES_URL"
}

# job NAME GUARANTEE URL TABLE TS_TYPE
job() {
  cat > "$work/$1.toml" <<JOB
api_version = 1
name = "bench-$1"
[delivery]
guarantee = "$2"
[source]
type = "datagen"
count = $RECORDS
batch_size = 1000
[[sinks]]
type = "sql"
url = "$3"
table = "$4"
create_table = true
schema = [
  { name = "device_id", type = "TEXT" },
  { name = "site", type = "TEXT" },
  { name = "line", type = "TEXT" },
  { name = "ts", type = "$5" },
  { name = "seq", type = "BIGINT" },
  { name = "temperature_c", type = "DOUBLE PRECISION" },
  { name = "vibration_mm_s", type = "DOUBLE PRECISION" },
  { name = "humidity_pct", type = "DOUBLE PRECISION" },
  { name = "pressure_kpa", type = "DOUBLE PRECISION" },
  { name = "firmware", type = "TEXT" },
  { name = "status", type = "TEXT" },
]
batch = { max_records = $BATCH, max_bytes = "64MiB", max_wait = "1s" }
JOB
}

# rows DB URL TABLE → row count
rows() {
  case $1 in
    sqlite) python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from \"' + sys.argv[2] + '\"').fetchone()[0])" "$work/bench.db" "$3" ;;
    postgres) psql "$2" -tAc "select count(*) from \"$3\"" ;;
  esac
}

drop() {
  case $1 in
    sqlite) rm -f "$work"/bench.db* ;;
    postgres) psql -q "$2" -c "drop table if exists \"$3\"; delete from sluice_offsets where job like 'bench-%'" 2>/dev/null || psql -q "$2" -c "drop table if exists \"$3\"" ;;
  esac
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| date | database | records | at-least-once rec/s | exactly-once rec/s | exactly-once / at-least-once |"
echo "|---|---|---|---|---|---|"
: > bench/results/sql.md
for db in "${dbs[@]}"; do
  case $db in
    sqlite) url="sqlite://bench.db"; ts=TEXT ;;
    postgres) url=$(pg_url); ts=TIMESTAMPTZ ;;
    *) echo "unknown database $db (sqlite, postgres)" >&2; exit 2 ;;
  esac
  table="bench_readings"
  : > "$work/alo.times"; : > "$work/eos.times"
  for _ in $(seq "$TRIALS"); do
    for g in alo eos; do
      guarantee=at-least-once; [ $g = eos ] && guarantee=exactly-once
      job "$db-$g" "$guarantee" "$url" "$table" "$ts"
      drop "$db" "$url" "$table"
      rm -rf "$work/state"
      start=$(date +%s.%N)
      "$bin" run "$work/$db-$g.toml" --no-progress --state-dir "$work/state" 2>"$work/$g.log" || {
        cat "$work/$g.log" >&2; exit 1; }
      end=$(date +%s.%N)
      n=$(rows "$db" "$url" "$table")
      [ "$n" -eq "$RECORDS" ] || { echo "$db $g wrote $n rows, expected $RECORDS" >&2; exit 1; }
      awk -v s="$start" -v e="$end" "BEGIN { print e - s }" >> "$work/$g.times"
    done
  done
  drop "$db" "$url" "$table"
  ta=$(median < "$work/alo.times"); te=$(median < "$work/eos.times")
  row=$(awk -v n="$RECORDS" -v ta="$ta" -v te="$te" -v db="$db" -v d="$(date -u +%F)" \
    'BEGIN { printf "| %s | %s | %d | %.0f | %.0f | %.2f |\n", d, db, n, n/ta, n/te, ta/te }')
  echo "$row"
  echo "$row" >> bench/results/sql.md
done
