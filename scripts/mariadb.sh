#!/usr/bin/env bash
# Private MariaDB instance for paygate's tests and demo. Never touches the
# system instance: its own datadir, socket, pid file and port, no defaults
# files read.
#
#   scripts/mariadb.sh start  DIR PORT   initialise DIR/data once, start, wait,
#                                        create database + user (idempotent)
#   scripts/mariadb.sh stop   DIR        stop by pid file, wait for the exit
#   scripts/mariadb.sh status DIR        exit 0 when running and answering
#
# Layout: DIR/data (datadir), DIR/mysqld.sock, DIR/mysqld.pid, DIR/error.log.
# The application account is paygate@127.0.0.1 and paygate@localhost with
# password "paygate" on database "paygate"; override with PAYGATE_DB_NAME,
# PAYGATE_DB_USER, PAYGATE_DB_PASSWORD. root@localhost has no password and is
# reachable through the socket only. Works as root (mariadbd --user=root)
# and as a normal user. PAYGATE_MARIADB_OPTS adds server options (split on
# spaces; bench/ starts with performance_schema for its statement profile).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
port=${3:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop|status DIR [PORT]" >&2
  exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data="$dir/data"
sock="$dir/mysqld.sock"
pidf="$dir/mysqld.pid"
errlog="$dir/error.log"
db_name=${PAYGATE_DB_NAME:-paygate}
db_user=${PAYGATE_DB_USER:-paygate}
db_pass=${PAYGATE_DB_PASSWORD:-paygate}

client=(mariadb --no-defaults -uroot --socket="$sock")
admin=(mariadb-admin --no-defaults -uroot --socket="$sock")

running_pid() {
  local pid
  [ -f "$pidf" ] || return 1
  pid=$(cat "$pidf" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

answers() {
  "${admin[@]}" --connect-timeout=2 ping >/dev/null 2>&1
}

sql_escape() { printf '%s' "$1" | sed "s/'/''/g"; }

create_db() {
  local n u p
  n=$(printf '%s' "$db_name" | sed 's/`/``/g')
  u=$(sql_escape "$db_user")
  p=$(sql_escape "$db_pass")
  "${client[@]}" <<SQL
CREATE DATABASE IF NOT EXISTS \`$n\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$u'@'127.0.0.1' IDENTIFIED BY '$p';
CREATE USER IF NOT EXISTS '$u'@'localhost' IDENTIFIED BY '$p';
ALTER USER '$u'@'127.0.0.1' IDENTIFIED BY '$p';
ALTER USER '$u'@'localhost' IDENTIFIED BY '$p';
GRANT ALL PRIVILEGES ON \`$n\`.* TO '$u'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`$n\`.* TO '$u'@'localhost';
FLUSH PRIVILEGES;
SQL
}

start() {
  if [ -z "$port" ]; then echo "mariadb.sh: start needs a PORT" >&2; exit 2; fi
  local userarg=()
  if [ "$(id -u)" -eq 0 ]; then userarg=(--user=root); fi

  if pid=$(running_pid); then
    if answers; then
      create_db
      echo "mariadb: already running (pid $pid, port $port)"
      return 0
    fi
  fi

  # A tmpdir of its own: a mariadbd starting with tmpdir=/tmp removes the
  # '#sql*' temporary files it finds there -- also those of another server
  # or of a mariadb-install-db running at that moment.
  mkdir -p "$dir/tmp"
  if [ ! -d "$data/mysql" ]; then
    rm -rf "$data"
    mkdir -p "$data"
    if ! mariadb-install-db --no-defaults --auth-root-authentication-method=normal \
        --datadir="$data" --tmpdir="$dir/tmp" --skip-test-db "${userarg[@]}" >"$dir/install.log" 2>&1; then
      echo "mariadb: mariadb-install-db failed, see $dir/install.log" >&2
      tail -n 20 "$dir/install.log" >&2
      exit 1
    fi
  fi

  rm -f "$sock" "$pidf"
  # setsid + nohup: the server outlives the shell (make returns, tests go on).
  setsid nohup mariadbd --no-defaults --datadir="$data" --tmpdir="$dir/tmp" --socket="$sock" \
    --port="$port" --bind-address=127.0.0.1 --pid-file="$pidf" \
    --log-error="$errlog" --skip-log-bin --innodb-buffer-pool-size=64M \
    --skip-name-resolve "${userarg[@]}" ${PAYGATE_MARIADB_OPTS:-} </dev/null >>"$dir/mariadbd.out" 2>&1 &
  local spid=$!

  local i
  for i in $(seq 1 600); do
    if answers; then break; fi
    if ! kill -0 "$spid" 2>/dev/null; then
      echo "mariadb: mariadbd exited during start-up, see $errlog" >&2
      tail -n 30 "$errlog" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.1
  done
  if ! answers; then
    echo "mariadb: no answer after 60 s, see $errlog" >&2
    exit 1
  fi
  create_db
  echo "mariadb: running (pid $(cat "$pidf"), port $port, socket $sock)"
}

stop() {
  local pid i
  if ! pid=$(running_pid); then
    echo "mariadb: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "mariadb: pid $pid still alive after 60 s, killing" >&2
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidf"
  echo "mariadb: stopped"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status)
    if pid=$(running_pid) && answers; then
      echo "mariadb: running (pid $pid)"
    else
      echo "mariadb: not running"
      exit 1
    fi
    ;;
  *) echo "usage: $0 start|stop|status DIR [PORT]" >&2; exit 2 ;;
esac
