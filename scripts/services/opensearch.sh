#!/usr/bin/env bash
# An OpenSearch-compatible server for tests: osmem-server, an in-memory emulator of the
# OpenSearch REST API (it reports OpenSearch 3.x), whose static binary ships in the PyPI package
# osmem-server (pinned). In memory, 127.0.0.1 only. It is an emulator, not OpenSearch: the tests
# read the endpoint from SLUICE_TEST_OPENSEARCH_URL, so they run against a real cluster too.
#   bash scripts/services/opensearch.sh start   install if needed, start unless a server answers,
#                                               wait until ready, print `export SLUICE_TEST_OPENSEARCH_URL=...`
#   bash scripts/services/opensearch.sh stop    stop the server this script started (by PID)
# Logs go to stderr and target/services/opensearch.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/target/services"
venv="$dir/venv-opensearch"
pidfile="$dir/opensearch.pid"
port="${SLUICE_OPENSEARCH_PORT:-9200}"
addr="127.0.0.1:$port"
version="0.1.6"
mkdir -p "$dir"

# True when `GET /` answers with a version number (an OpenSearch-like server).
answers() {
  python3 - "$port" <<'PY'
import json, sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2) as r:
        sys.exit(0 if json.load(r)["version"]["number"] else 1)
except Exception:
    sys.exit(1)
PY
}

install() {
  if [ ! -x "$venv/bin/python" ]; then
    echo "opensearch: creating venv $venv" >&2
    python3 -m venv "$venv" >&2
  fi
  if ! "$venv/bin/python" -c "import osmem_server, importlib.metadata as m; assert m.version('osmem-server') == '$version'" 2>/dev/null; then
    echo "opensearch: installing osmem-server==$version" >&2
    "$venv/bin/pip" install -q "osmem-server==$version" >&2
  fi
  local bin
  bin=$("$venv/bin/python" -c "import osmem_server; print(osmem_server.resolve_binary())")
  [ -x "$bin" ] || chmod +x "$bin"
  echo "$bin"
}

start() {
  if answers; then
    echo "opensearch: a server already answers on $addr" >&2
  else
    local bin
    bin=$(install)
    echo "opensearch: starting osmem-server on $addr" >&2
    nohup setsid "$bin" -addr "$addr" -no-stdin-watch -no-ja \
      >>"$dir/opensearch.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    local deadline=$((SECONDS + 30))
    until answers; do
      if [ $SECONDS -ge $deadline ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "opensearch: server did not become ready; last log lines:" >&2
        tail -20 "$dir/opensearch.log" >&2 || true
        exit 1
      fi
      sleep 0.2
    done
    echo "opensearch: ready (pid $(cat "$pidfile"))" >&2
  fi
  echo "export SLUICE_TEST_OPENSEARCH_URL=http://$addr"
}

stop() {
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
