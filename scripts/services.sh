#!/usr/bin/env bash
# Start every service the test suite needs (idempotent: what already runs is reused) and write
# the endpoints the tests read to target/services.env. Each scripts/services/<name>.sh, run with
# `start`, installs and starts one service if needed, waits until it is ready, and prints
# `export VAR=value` lines on stdout (logs go to stderr).
#   scripts/services.sh up [NAME...]     start all (or the named) services
#   scripts/services.sh down             stop what these scripts started (by PID)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
env_file="${SLUICE_SERVICES_ENV:-$root/target/services.env}"
mkdir -p "$(dirname "$env_file")" "$root/target/services"
cmd=${1:-up}
shift || true
case "$cmd" in
  up)
    names=("$@")
    if [ ${#names[@]} -eq 0 ]; then
      for f in "$root"/scripts/services/*.sh; do names+=("$(basename "$f" .sh)"); done
    fi
    # One env file per service; services.env is all of them, so `up NAME` keeps the others'.
    for n in "${names[@]}"; do
      echo "services: starting $n" >&2
      bash "$root/scripts/services/$n.sh" start > "$root/target/services/$n.env.tmp"
      mv "$root/target/services/$n.env.tmp" "$root/target/services/$n.env"
    done
    cat "$root"/target/services/*.env > "$env_file.tmp"
    mv "$env_file.tmp" "$env_file"
    echo "services: endpoints in $env_file" >&2
    ;;
  down)
    for pidfile in "$root"/target/services/*.pid; do
      [ -e "$pidfile" ] || continue
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    done
    ;;
  *) echo "usage: $0 up [NAME...] | down" >&2; exit 2 ;;
esac
