#!/usr/bin/env bash
# Start a throw-away PostgreSQL + PostGIS cluster on 127.0.0.1 for the server-backed tests.
#
#   bash .ci/postgis.sh          # install if needed, start, print the URL on the last line
#   bash .ci/postgis.sh stop     # stop the cluster
#
# The cluster lives in $RISKMAP_PG_DIR (default /tmp/riskmap-postgis), listens only on
# 127.0.0.1:$RISKMAP_PG_PORT (default 55432) with trust authentication for loopback — a test
# server, not a production one (fsync is off). It creates the database riskmap_test with the
# postgis extension. Idempotent: a running cluster is reused.
set -euo pipefail

DIR=${RISKMAP_PG_DIR:-/tmp/riskmap-postgis}
PORT=${RISKMAP_PG_PORT:-55432}
DB=${RISKMAP_PG_DB:-riskmap_test}
USER_NAME=riskmap
log() { echo "postgis.sh: $*" >&2; }

pg_bindir() {
  local v
  v=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1 || true)
  [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/initdb" ] && echo "/usr/lib/postgresql/$v/bin"
}

apt_install() {
  if ! command -v apt-get >/dev/null; then
    log "apt-get not found; install PostgreSQL and PostGIS yourself"; return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  # Another process may hold the dpkg lock: wait for it rather than fail.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || true
  $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >&2
}

install_if_missing() {
  local bin v
  bin=$(pg_bindir || true)
  if [ -z "$bin" ]; then
    log "installing postgresql"
    apt_install postgresql
    bin=$(pg_bindir)
  fi
  v=$(basename "$(dirname "$bin")")
  if [ ! -f "/usr/share/postgresql/$v/extension/postgis.control" ]; then
    log "installing postgresql-$v-postgis-3"
    apt_install "postgresql-$v-postgis-3"
  fi
  echo "$bin"
}

as_owner() {
  # initdb and postgres refuse to run as root: run them as the postgres system user.
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

BIN=$(install_if_missing)

if [ "${1:-start}" = "stop" ]; then
  as_owner "$BIN/pg_ctl" -D "$DIR" -m fast stop >&2 || true
  exit 0
fi

if [ ! -f "$DIR/PG_VERSION" ]; then
  log "initialising a cluster in $DIR"
  mkdir -p "$DIR"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$DIR"
  chmod 700 "$DIR"
  as_owner "$BIN/initdb" -D "$DIR" -U "$USER_NAME" --auth=trust -E UTF8 --locale=C.UTF-8 >&2
  cat >>"$DIR/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 256MB
work_mem = 64MB
maintenance_work_mem = 256MB
EOF
fi

if ! as_owner "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
  log "starting PostgreSQL on 127.0.0.1:$PORT"
  as_owner "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 start >&2
fi

PSQL=("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -v ON_ERROR_STOP=1 -qAt)
if [ "$("${PSQL[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB" >&2
fi
"${PSQL[@]}" -d "$DB" -c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS postgis" >&2
log "PostGIS $("${PSQL[@]}" -d "$DB" -c 'SELECT postgis_lib_version()') ready"
echo "postgresql://$USER_NAME@127.0.0.1:$PORT/$DB"
