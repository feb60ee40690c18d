#!/usr/bin/env bash
# PostgreSQL for the test suite: reuse a server already answering on 127.0.0.1:${PGPORT:-5432},
# otherwise install (Debian `postgresql`) and start the cluster, wait until it is ready, make
# sure database `test` exists, and print the endpoint on stdout (logs go to stderr).
#   bash scripts/services/postgres.sh start
set -euo pipefail
port=${SLUICE_PG_PORT:-5432}
log() { echo "postgres: $*" >&2; }
[ "${1:-start}" = start ] || { echo "usage: $0 start" >&2; exit 2; }

if ! pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql postgresql-client >&2
  fi
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if [ -z "$ver" ]; then
    ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
    log "creating cluster $ver/main"
    pg_createcluster "$ver" main --port "$port" >&2
  fi
  conf=/etc/postgresql/$ver/main
  # Loopback only, trust auth for local test connections.
  if ! grep -q '^# sluice-test' "$conf/pg_hba.conf"; then
    { echo '# sluice-test'; echo 'host all all 127.0.0.1/32 trust'; echo 'host all all ::1/128 trust'; cat "$conf/pg_hba.conf"; } > "$conf/pg_hba.conf.new"
    mv "$conf/pg_hba.conf.new" "$conf/pg_hba.conf"
  fi
  log "starting cluster $ver/main"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 || true
  started=$ver
fi

deadline=$((SECONDS + 60))
until pg_isready -q -h 127.0.0.1 -p "$port"; do
  [ $SECONDS -lt $deadline ] || { log "not ready after 60 s"; exit 1; }
  sleep 0.5
done
user=postgres
if ! psql -h 127.0.0.1 -p "$port" -U "$user" -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  # No trust for TCP yet: use the local socket as the postgres OS user.
  runuser -u postgres -- psql -p "$port" -d postgres -tAc "select 1" >/dev/null
fi
run_sql() {
  psql -h 127.0.0.1 -p "$port" -U "$user" -d postgres -tAc "$1" 2>/dev/null \
    || runuser -u postgres -- psql -p "$port" -d postgres -tAc "$1"
}
if [ "$(run_sql "select 1 from pg_database where datname = 'test'")" != 1 ]; then
  log "creating database test"
  run_sql "create database test" >/dev/null
fi
if [ -n "${started:-}" ]; then
  # Record the postmaster so `scripts/services.sh down` stops what this script started.
  root=$(cd "$(dirname "$0")/../.." && pwd)
  mkdir -p "$root/target/services"
  datadir=$(pg_conftool -s "$started" main show data_directory 2>/dev/null || echo "/var/lib/postgresql/$started/main")
  head -1 "$datadir/postmaster.pid" > "$root/target/services/postgres.pid" 2>/dev/null || true
fi
log "ready on 127.0.0.1:$port"
echo "export SLUICE_TEST_POSTGRES_URL=postgres://$user@127.0.0.1:$port/test"
