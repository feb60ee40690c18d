#!/usr/bin/env bash
# Not a server: kafka-connect-py (PyPI, pinned), a Python client of Kafka Connect's REST API, in
# its own venv. tests/worker_connect.rs drives a worker with it, as a tool written for Kafka
# Connect would. `start` installs it once and exports the venv's python as
# SLUICE_TEST_KAFKA_CONNECT_PY; `stop` has nothing to stop.
#   bash scripts/services/kafka-connect-py.sh start|stop
name=kafka-connect-py
. "$(dirname "$0")/../services-lib.sh"

case "${1:-start}" in
  start)
    venv=$(pypi_tool kafka-connect-py 1.0.0)
    "$venv/bin/python" -c "import kafka_connect" >&2
    echo "export SLUICE_TEST_KAFKA_CONNECT_PY=$venv/bin/python"
    ;;
  stop) ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
