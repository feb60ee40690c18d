#!/usr/bin/env bash
# AWS service emulator for tests: moto server (PyPI, pinned) — Firehose, S3, SNS, DynamoDB, STS
# on one port, 127.0.0.1 only, in memory. It is an emulator, not AWS: tests read the endpoint
# from SLUICE_TEST_AWS_ENDPOINT (and the dummy credentials and region below), so they run
# against real AWS or another emulator too. `POST /moto-api/reset` clears its state.
#   bash scripts/services/moto.sh start|stop   (see scripts/services-lib.sh)
name=moto
. "$(dirname "$0")/../services-lib.sh"
port="${SLUICE_MOTO_PORT:-4566}"

answers() { python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/moto-api/', timeout=2)" 2>/dev/null; }

launch() {
  local venv
  venv=$(pypi_tool 'moto[server]' 5.2.5)
  nohup setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >>"$log" 2>&1 </dev/null &
}

endpoints() {
  echo "export SLUICE_TEST_AWS_ENDPOINT=http://127.0.0.1:$port"
  echo "export SLUICE_TEST_AWS_REGION=\${SLUICE_TEST_AWS_REGION:-us-east-1}"
  echo "export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-testing}"
  echo "export AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-testing}"
}

service_main "$@"
