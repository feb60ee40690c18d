#!/usr/bin/env bash
# SQL sink benchmark: the same RECORDS datagen readings (default 1,000,000) as JSON lines, written
# into a table by a plain sqlx loop (connectors/sql/examples/sql_loop.rs: serde struct, multi-row
# INSERTs, one transaction per BATCH rows) and by `sluice run` (file source → sql sink) at least
# once and exactly once, on the same server in the same invocation, TRIALS times each (median).
# Prints records/s, Sluice / loop (target ≥ 0.8) and exactly-once / at-least-once (target ≥ 0.95)
# as Markdown rows and writes them to bench/results/sql.md for bench/REPORT.md.
#   bench/sql/run.sh                        sqlite postgres mariadb
#   RECORDS=200000 TRIALS=3 bench/sql/run.sh sqlite
#   SLUICE_BENCH_BIN=path/to/sluice bench/sql/run.sh   (that binary, no build)
# The servers come from $SLUICE_TEST_POSTGRES_URL / $SLUICE_TEST_MYSQL_URL, or are started by
# scripts/services/{postgres,mariadb}.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
. bench/lib.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SLUICE_CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}}"
RECORDS=${RECORDS:-1000000}
TRIALS=${TRIALS:-3}
BATCH=${BATCH:-10000}
dbs=("$@")
[ ${#dbs[@]} -gt 0 ] || dbs=(sqlite postgres mariadb)

[ -n "${SLUICE_BENCH_BIN:-}" ] || cargo build --release --locked -p sluice >&2
cargo build --release --locked -p sluice-connector-sql --example sql_loop >&2
bin=${SLUICE_BENCH_BIN:-$CARGO_TARGET_DIR/release/sluice}
loop_bin=$CARGO_TARGET_DIR/release/examples/sql_loop
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-sql.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p bench/results

datagen_input "$bin" "$work" "$RECORDS"

server_url() { # server_url postgres|mariadb
  case $1 in
    postgres) [ -n "${SLUICE_TEST_POSTGRES_URL:-}" ] || eval "$(bash scripts/services/postgres.sh start)"
              echo "$SLUICE_TEST_POSTGRES_URL" ;;
    mariadb)  [ -n "${SLUICE_TEST_MYSQL_URL:-}" ] || eval "$(bash scripts/services/mariadb.sh start)"
              echo "$SLUICE_TEST_MYSQL_URL" ;;
  esac
}

# sql DB URL STATEMENT: runs one statement with the database's own client.
sql() {
  case $1 in
    sqlite) python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); r=c.execute(sys.argv[2]).fetchall(); c.commit(); print(r[0][0] if r else '')" "$work/bench.db" "$3" ;;
    postgres) psql -q "$2" -tAc "$3" ;;
    mariadb) mariadb -h 127.0.0.1 -u root -N -B test -e "$3" ;;
  esac
}

# The columns, in each dialect (the timestamp as the sink and the loop write it).
schema() { # schema DB → TOML column list
  local ts=TEXT dbl="DOUBLE PRECISION"
  case $1 in postgres) ts=TIMESTAMPTZ ;; mariadb) ts="VARCHAR(32)"; dbl=DOUBLE ;; esac
  local text=TEXT; [ "$1" = mariadb ] && text="VARCHAR(64)"
  cat <<COLS
  { name = "device_id", type = "$text" },
  { name = "site", type = "$text" },
  { name = "line", type = "$text" },
  { name = "ts", type = "$ts" },
  { name = "seq", type = "BIGINT" },
  { name = "temperature_c", type = "$dbl" },
  { name = "vibration_mm_s", type = "$dbl" },
  { name = "humidity_pct", type = "$dbl" },
  { name = "pressure_kpa", type = "$dbl" },
  { name = "firmware", type = "$text" },
  { name = "status", type = "$text" },
COLS
}

ddl() { # ddl DB → CREATE TABLE statement, from the same column list
  schema "$1" | sed -E 's/.*name = "([a-z_]+)", type = "([^"]+)".*/\1 \2/' | paste -sd, |
    sed 's/^/CREATE TABLE bench_readings (/; s/$/)/'
}

job() { # job NAME GUARANTEE DB URL
  cat > "$work/$1.toml" <<JOB
api_version = 1
name = "bench-$1"
[delivery]
guarantee = "$2"
[source]
type = "file"
path = "in.jsonl"
[[sinks]]
type = "sql"
url = "$4"
table = "bench_readings"
create_table = true
schema = [
$(schema "$3")
]
batch = { max_records = $BATCH, max_bytes = "64MiB", max_wait = "1s" }
JOB
}

reset() { # reset DB URL: an empty table and no checkpoints
  case $1 in
    sqlite) rm -f "$work"/bench.db* ;;
    *) sql "$1" "$2" "DROP TABLE IF EXISTS bench_readings" >/dev/null
       sql "$1" "$2" "DELETE FROM sluice_offsets WHERE job LIKE 'bench-%'" >/dev/null 2>&1 || true ;;
  esac
  sql "$1" "$2" "$(ddl "$1")" >/dev/null
  rm -rf "$work/state"
}

# timed DB URL NAME CMD...: runs CMD, checks the row count, appends the seconds to NAME.times
timed() {
  local db=$1 url=$2 name=$3; shift 3
  reset "$db" "$url"
  sync
  local start end n
  start=$(date +%s.%N)
  "$@" 2>"$work/$name.log" || { cat "$work/$name.log" >&2; exit 1; }
  end=$(date +%s.%N)
  n=$(sql "$db" "$url" "SELECT count(*) FROM bench_readings")
  [ "$n" -eq "$RECORDS" ] || { echo "$db $name wrote $n rows, expected $RECORDS" >&2; exit 1; }
  awk -v s="$start" -v e="$end" 'BEGIN { print e - s }' >> "$work/$name.times"
}


echo "| date | database | records | loop rec/s | at-least-once rec/s | exactly-once rec/s | ALO / loop | EOS / loop | EOS / ALO |"
echo "|---|---|---|---|---|---|---|---|---|"
: > bench/results/sql.md
for db in "${dbs[@]}"; do
  case $db in
    sqlite) url="sqlite://bench.db"; loop_url="sqlite://$work/bench.db"; rows=93 ;;
    postgres|mariadb) url=$(server_url "$db"); loop_url=$url; rows=1000 ;;
    *) echo "unknown database $db (sqlite, postgres, mariadb)" >&2; exit 2 ;;
  esac
  job "$db-alo" at-least-once "$db" "$url"
  job "$db-eos" exactly-once "$db" "$url"
  rm -f "$work"/*.times
  for _ in $(seq "$TRIALS"); do
    # Rows per statement as the sink writes them: 1,000 on the servers, 128 parameters on SQLite.
    timed "$db" "$url" loop "$loop_bin" "$loop_url" bench_readings "$work/in.jsonl" "$BATCH" "$rows"
    for g in alo eos; do
      timed "$db" "$url" "$g" "$bin" run "$work/$db-$g.toml" --no-progress --state-dir "$work/state"
    done
  done
  sql "$db" "$url" "DROP TABLE IF EXISTS bench_readings" >/dev/null
  tl=$(median < "$work/loop.times"); ta=$(median < "$work/alo.times"); te=$(median < "$work/eos.times")
  row=$(awk -v n="$RECORDS" -v tl="$tl" -v ta="$ta" -v te="$te" -v db="$db" -v d="$(date -u +%F)" \
    'BEGIN { printf "| %s | %s | %d | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", d, db, n, n/tl, n/ta, n/te, tl/ta, tl/te, ta/te }')
  echo "$row"
  echo "$row" >> bench/results/sql.md
done
