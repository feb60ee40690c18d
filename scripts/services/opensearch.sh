#!/usr/bin/env bash
# An OpenSearch-compatible server for tests: osmem-server, an in-memory emulator of the
# OpenSearch REST API (it reports OpenSearch 3.x), whose static binary ships in the PyPI package
# osmem-server (pinned). In memory, 127.0.0.1 only. It is an emulator, not OpenSearch: the tests
# read the endpoint from SLUICE_TEST_OPENSEARCH_URL, so they run against a real cluster too.
#   bash scripts/services/opensearch.sh start|stop   (see scripts/services-lib.sh)
name=opensearch
. "$(dirname "$0")/../services-lib.sh"
port="${SLUICE_OPENSEARCH_PORT:-9200}"
addr="127.0.0.1:$port"

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

launch() {
  local venv bin
  venv=$(pypi_tool osmem-server 0.1.6)
  bin=$("$venv/bin/python" -c "import osmem_server; print(osmem_server.resolve_binary())")
  [ -x "$bin" ] || chmod +x "$bin"
  nohup setsid "$bin" -addr "$addr" -no-stdin-watch -no-ja >>"$log" 2>&1 </dev/null &
}

endpoints() { echo "export SLUICE_TEST_OPENSEARCH_URL=http://$addr"; }

service_main "$@"
