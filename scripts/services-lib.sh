# Shared steps of scripts/services/<name>.sh (sourced, not run): each service script sets
# `name`, defines `answers` (true when the service is ready) and `launch` (start it in the
# background, writing its output to "$log"), then calls `service_main "$@"`.
#   pypi_tool PACKAGE VERSION          install PACKAGE==VERSION into target/services/venv-$name
#                                      (once) and print the venv's directory
#   npm_tool PACKAGE VERSION           install PACKAGE@VERSION under target/services/npm-$name
#                                      (once) and print that prefix
#   service_main start|stop            start: unless `answers`, `launch`, record its PID and wait
#                                      up to $ready_timeout s (default 30) for `answers`; stop:
#                                      kill what `start` launched (by PID)
# Logs go to stderr and target/services/$name.log; `start` then calls `endpoints`, which prints
# the `export VAR=value` lines the tests read.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="$root/target/services"
mkdir -p "$dir"

pypi_tool() {
  local package=$1 version=$2 venv="$dir/venv-$name"
  local dist=${package%%[*}
  if [ ! -x "$venv/bin/python" ]; then
    echo "$name: creating venv $venv" >&2
    python3 -m venv "$venv" >&2
  fi
  if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$dist') != '$version')" 2>/dev/null; then
    echo "$name: installing $package==$version" >&2
    "$venv/bin/pip" install -q "$package==$version" >&2
  fi
  echo "$venv"
}

npm_tool() {
  local package=$1 version=$2 prefix="$dir/npm-$name"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "$name: installing nodejs and npm (Debian)" >&2
    (apt-get update -qq && apt-get install -y -qq nodejs npm) >&2
  fi
  if [ "$(node -p "try{require('$prefix/node_modules/$package/package.json').version}catch(e){''}" 2>/dev/null)" != "$version" ]; then
    echo "$name: installing $package@$version (npm)" >&2
    npm install --silent --no-audit --no-fund --prefix "$prefix" "$package@$version" >&2
  fi
  echo "$prefix"
}

service_main() {
  local pidfile="$dir/$name.pid"
  log="$dir/$name.log"
  case "${1:-start}" in
    start)
      if answers; then
        echo "$name: already answering" >&2
      else
        echo "$name: starting" >&2
        launch
        echo $! >"$pidfile"
        local deadline=$((SECONDS + ${ready_timeout:-30}))
        until answers; do
          if [ $SECONDS -ge $deadline ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "$name: did not become ready; last log lines:" >&2
            tail -20 "$log" >&2 || true
            exit 1
          fi
          sleep 0.2
        done
        echo "$name: ready (pid $(cat "$pidfile"))" >&2
      fi
      endpoints
      ;;
    stop)
      if [ -f "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
      fi
      ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
  esac
}
