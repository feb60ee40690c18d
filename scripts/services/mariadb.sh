#!/usr/bin/env bash
# MariaDB for the test suite: reuse a server already answering on 127.0.0.1:3306, otherwise
# install (Debian `mariadb-server`) and start `mariadbd`, wait until it is ready, make sure
# database `test` exists and root may connect over TCP without a password, and print the
# endpoint on stdout (logs go to stderr).
#   bash scripts/services/mariadb.sh start
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
log() { echo "mariadb: $*" >&2; }
[ "${1:-start}" = start ] || { echo "usage: $0 start" >&2; exit 2; }
ping() { mariadb-admin -h 127.0.0.1 -P 3306 -u root --connect-timeout=2 ping >/dev/null 2>&1; }

if ! ping; then
  if [ ! -x /usr/sbin/mariadbd ]; then
    log "installing mariadb-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq mariadb-server mariadb-client >&2
  fi
  if [ ! -d /var/lib/mysql/mysql ]; then
    log "initialising data directory"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >&2
  fi
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  log "starting mariadbd"
  mkdir -p "$root/target/services"
  start-stop-daemon --start --oknodo --background --make-pidfile \
    --pidfile "$root/target/services/mariadb.pid" \
    --exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1 --port=3306 >&2
fi

deadline=$((SECONDS + 60))
until mariadb-admin -u root ping >/dev/null 2>&1 || ping; do
  [ $SECONDS -lt $deadline ] || { log "not ready after 60 s"; exit 1; }
  sleep 0.5
done
# root over TCP with an empty password (Debian's root uses unix_socket auth by default).
if ! mariadb -h 127.0.0.1 -P 3306 -u root -e 'select 1' >/dev/null 2>&1; then
  log "allowing root@127.0.0.1 without password"
  mariadb -u root -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;" >&2
fi
mariadb -h 127.0.0.1 -P 3306 -u root -e 'CREATE DATABASE IF NOT EXISTS test' >&2
log "ready on 127.0.0.1:3306"
echo "export SLUICE_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306/test"
