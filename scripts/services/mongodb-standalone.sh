#!/usr/bin/env bash
# A second SecantusDB, started with `--standalone`: its `hello` reply names no replica set, so
# drivers see a standalone server (no transactions, no change streams). The MongoDB tests use it
# to check that exactly-once is refused there (`sluice validate` and the sink's open). Same
# package, venv and readiness check as mongodb.sh, which this runs in that mode; port 27018
# (SLUICE_MONGODB_STANDALONE_PORT), endpoint SLUICE_TEST_MONGODB_STANDALONE_URL.
#   bash scripts/services/mongodb-standalone.sh start|stop   (see scripts/services-lib.sh)
mongodb_standalone=1
. "$(dirname "$0")/mongodb.sh"
