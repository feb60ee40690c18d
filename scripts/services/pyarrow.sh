#!/usr/bin/env bash
# Not a server: pyarrow (PyPI, pinned) in its own venv, the independent Parquet reader of the
# S3 sink's tests (connectors/s3/tests/parquet_pyarrow.rs). `start` installs it once and
# exports the venv's python as SLUICE_TEST_PYARROW_PYTHON; `stop` has nothing to stop.
#   bash scripts/services/pyarrow.sh start|stop
name=pyarrow
. "$(dirname "$0")/../services-lib.sh"

case "${1:-start}" in
  start)
    venv=$(pypi_tool pyarrow 26.0.1)
    "$venv/bin/python" -c 'import pyarrow.parquet' >&2
    echo "export SLUICE_TEST_PYARROW_PYTHON=$venv/bin/python"
    ;;
  stop) ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
