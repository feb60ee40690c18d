#!/usr/bin/env bash
# Kinesis Data Streams emulator for tests: kinesis-local (npm, pinned; kinesis-mock compiled to
# JavaScript), plain HTTP on one port, in memory. It is an emulator, not AWS: streams start
# CREATING, puts are slow (~0.4 s per 500 records). It has no listen-address option and binds
# every interface: kinesis-loopback.cjs, preloaded, keeps it on 127.0.0.1. Stream operations
# (create, split, merge) complete after 100 ms instead of 500 ms, and the shard limit (50 by
# default) is lifted: every test makes its own streams. Tests read the endpoint from
# SLUICE_TEST_KINESIS_ENDPOINT (and the dummy credentials and region below), so they run against
# real AWS or another emulator too.
#   bash scripts/services/kinesis.sh start|stop   (see scripts/services-lib.sh)
name=kinesis
. "$(dirname "$0")/../services-lib.sh"
port="${SLUICE_KINESIS_PORT:-4567}"
tls_port="${SLUICE_KINESIS_TLS_PORT:-4568}"

answers() { python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/healthcheck', timeout=2)" 2>/dev/null; }

launch() {
  local prefix pkg
  prefix=$(npm_tool kinesis-local 0.6.2)
  pkg="$prefix/node_modules/kinesis-local"
  KINESIS_MOCK_PLAIN_PORT="$port" KINESIS_MOCK_TLS_PORT="$tls_port" \
    KINESIS_MOCK_CERT_PATH="$pkg/server.json" LOG_LEVEL=WARN \
    CREATE_STREAM_DURATION=100ms SPLIT_SHARD_DURATION=100ms MERGE_SHARDS_DURATION=100ms \
    UPDATE_SHARD_COUNT_DURATION=100ms REGISTER_STREAM_CONSUMER_DURATION=100ms \
    DELETE_STREAM_DURATION=100ms SHARD_LIMIT=100000 ON_DEMAND_STREAM_COUNT_LIMIT=100000 \
    nohup setsid node -r "$root/scripts/services/kinesis-loopback.cjs" "$pkg/main.js" >>"$log" 2>&1 </dev/null &
}

endpoints() {
  echo "export SLUICE_TEST_KINESIS_ENDPOINT=http://127.0.0.1:$port"
  echo "export SLUICE_TEST_AWS_REGION=\${SLUICE_TEST_AWS_REGION:-us-east-1}"
  echo "export AWS_ACCESS_KEY_ID=\${AWS_ACCESS_KEY_ID:-testing}"
  echo "export AWS_SECRET_ACCESS_KEY=\${AWS_SECRET_ACCESS_KEY:-testing}"
}

service_main "$@"
