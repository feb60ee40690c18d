#!/usr/bin/env bash
# A MongoDB-compatible server for tests: SecantusDB (PyPI, pinned), which speaks the MongoDB wire
# protocol on WiredTiger and presents itself as a one-node replica set `secantus` (transactions
# and change streams work). It is GPL-2.0: it runs only as a separate process, never linked. In
# memory, 127.0.0.1 only. It is an emulator, not MongoDB: the tests read the endpoint from
# SLUICE_TEST_MONGODB_URL, so they run against a real MongoDB too. Do not add `replicaSet=` to
# the URL: the driver discovers the set from `hello`.
#   bash scripts/services/mongodb.sh start|stop   (see scripts/services-lib.sh)
# mongodb-standalone.sh runs this with `mongodb_standalone=1`: a second server, standalone.
if [ -n "${mongodb_standalone:-}" ]; then
  name=mongodb-standalone
  port="${SLUICE_MONGODB_STANDALONE_PORT:-27018}"
else
  name=mongodb
  port="${SLUICE_MONGODB_PORT:-27017}"
fi
. "$(dirname "${BASH_SOURCE[0]}")/../services-lib.sh"

# True when `{ping: 1}` (an OP_MSG, encoded by hand: no client library needed) answers ok: 1.
answers() {
  python3 - "$port" <<'PY'
import socket, struct, sys
doc = b"\x10ping\x00\x01\x00\x00\x00" + b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
doc = struct.pack("<i", len(doc) + 5) + doc + b"\x00"
body = struct.pack("<I", 0) + b"\x00" + doc
msg = struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2) as s:
        s.settimeout(2)
        s.sendall(msg)
        reply = s.recv(65536)
    sys.exit(0 if b"ok\x00" in reply else 1)
except Exception:
    sys.exit(1)
PY
}

launch() {
  local venv flags=()
  # One install of the package, in mongodb's venv, for both servers.
  venv=$(name=mongodb pypi_tool SecantusDB 0.7.0b3)
  [ -n "${mongodb_standalone:-}" ] && flags+=(--standalone)
  nohup setsid "$venv/bin/secantusd-py" "${flags[@]}" --host 127.0.0.1 --port "$port" \
    --storage-path :memory: >>"$log" 2>&1 </dev/null &
}

endpoints() {
  if [ -n "${mongodb_standalone:-}" ]; then
    echo "export SLUICE_TEST_MONGODB_STANDALONE_URL=mongodb://127.0.0.1:$port"
  else
    echo "export SLUICE_TEST_MONGODB_URL=mongodb://127.0.0.1:$port"
  fi
}

service_main "$@"
