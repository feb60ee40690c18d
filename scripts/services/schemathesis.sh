#!/usr/bin/env bash
# Not a server: schemathesis (PyPI, pinned) in its own venv, which generates requests from the
# worker's OpenAPI document and checks the answers against it (tests/worker_openapi.rs).
# `start` installs it once and exports the command as SLUICE_TEST_SCHEMATHESIS; `stop` has
# nothing to stop.
#   bash scripts/services/schemathesis.sh start|stop
name=schemathesis
. "$(dirname "$0")/../services-lib.sh"

case "${1:-start}" in
  start)
    venv=$(pypi_tool schemathesis 4.32.5)
    "$venv/bin/schemathesis" --version >&2
    echo "export SLUICE_TEST_SCHEMATHESIS=$venv/bin/schemathesis"
    ;;
  stop) ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
