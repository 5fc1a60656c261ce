#!/usr/bin/env bash
# A private PostgreSQL cluster for crm-sync: development, tests and the embedded default.
#
#   scripts/pg.sh ensure         make sure PostgreSQL 15+ server binaries exist (installs Debian's package)
#   scripts/pg.sh start DIR      create the cluster in DIR if needed, start it on a free loopback port,
#                                print its postgres:// URL on stdout (reuses a running cluster)
#   scripts/pg.sh url DIR        print the URL of the running cluster in DIR
#   scripts/pg.sh stop DIR       stop the cluster in DIR (no error when it is not running)
#
# Works as root (the server refuses root, so it runs as the unprivileged `postgres` user, created when
# missing) and as an ordinary user. Diagnostics go to stderr; stdout carries only the URL.
set -euo pipefail

die() { echo "pg.sh: $*" >&2; exit 1; }
say() { echo "pg.sh: $*" >&2; }

find_bindir() {
  local d
  if [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/postgres" ]; then echo "$PG_BINDIR"; return 0; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r); do
    if [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      local major; major=$(basename "$(dirname "$d")")
      if [ "${major%%.*}" -ge 15 ] 2>/dev/null; then echo "$d"; return 0; fi
    fi
  done
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$d" ] && [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
  fi
  return 1
}

ensure() {
  if find_bindir >/dev/null; then return 0; fi
  say "PostgreSQL 15+ server binaries not found; installing Debian's postgresql package"
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; else
      die "PostgreSQL 15+ is not installed and this user cannot install it: run 'sudo apt-get install postgresql' or set PG_BINDIR"
    fi
  else SUDO=""; fi
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL 15+ is not installed and apt-get is not available: install PostgreSQL 15 or newer, or set PG_BINDIR to its bin folder"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2 || die "apt-get update failed"
  # Debian's postinst would create and start a system cluster; we only want the binaries.
  $SUDO mkdir -p /etc/postgresql-common
  if [ ! -f /etc/postgresql-common/createcluster.conf ]; then
    echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  $SUDO apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib >&2 \
    || die "apt-get install postgresql failed"
  find_bindir >/dev/null || die "postgresql installed but no server binaries of version 15+ were found under /usr/lib/postgresql"
}

# Run a server tool as the unprivileged user when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

free_port() {
  python3 - <<'PY' 2>/dev/null || echo $(( 20000 + RANDOM % 20000 ))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

url_for() {
  local dir=$1 port
  port=$(cat "$dir/port")
  echo "postgres://crm_sync@127.0.0.1:${port}/crm_sync?sslmode=disable"
}

is_running() {
  local dir=$1 bindir=$2
  [ -f "$dir/data/postmaster.pid" ] || return 1
  as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

start() {
  local dir bindir
  [ $# -ge 1 ] || die "usage: pg.sh start DIR"
  ensure
  bindir=$(find_bindir)
  dir=$(abs_dir "$1")
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres \
      || die "cannot create the unprivileged 'postgres' user needed to run the server as root"
    # Every parent must be enterable by the server's user.
    local p=$dir
    while [ "$p" != "/" ]; do chmod o+x "$p" 2>/dev/null || true; p=$(dirname "$p"); done
    chown postgres "$dir"
  fi
  if is_running "$dir" "$bindir"; then url_for "$dir"; return 0; fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir/data"
    as_owner mkdir -p "$dir/data" "$dir/socket"
    as_owner "$bindir/initdb" -D "$dir/data" -U crm_sync --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || as_owner "$bindir/initdb" -D "$dir/data" -U crm_sync --auth=trust --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
      || die "initdb failed in $dir/data (see $dir/initdb.log)"
  fi
  local port; port=$(free_port)
  echo "$port" > "$dir/port"
  # Tuned for a development or test cluster; durability settings are the server's defaults unless
  # CRM_SYNC_PG_FAST=1 (tests), where losing the cluster on a crash costs nothing.
  local opts="-c listen_addresses=127.0.0.1 -p $port -k $dir/socket -c max_connections=200 -c shared_buffers=256MB"
  if [ "${CRM_SYNC_PG_FAST:-0}" = "1" ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null \
    || die "the server did not start (see $dir/server.log)"
  # The database the URL names; createdb as the cluster's superuser over TCP.
  if ! "$bindir/psql" -h 127.0.0.1 -p "$port" -U crm_sync -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='crm_sync'" | grep -q 1; then
    "$bindir/createdb" -h 127.0.0.1 -p "$port" -U crm_sync crm_sync || die "createdb crm_sync failed"
  fi
  say "PostgreSQL running in $dir on 127.0.0.1:$port"
  url_for "$dir"
}

stop() {
  [ $# -ge 1 ] || die "usage: pg.sh stop DIR"
  local dir bindir
  [ -d "$1" ] || return 0
  dir=$(cd "$1" && pwd)
  bindir=$(find_bindir) || return 0
  if is_running "$dir" "$bindir"; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || die "pg_ctl stop failed for $dir"
    say "PostgreSQL in $dir stopped"
  fi
}

url() {
  [ $# -ge 1 ] || die "usage: pg.sh url DIR"
  local dir bindir; dir=$(cd "$1" 2>/dev/null && pwd) || die "no cluster in $1"
  bindir=$(find_bindir) || die "PostgreSQL is not installed"
  is_running "$dir" "$bindir" || die "the cluster in $dir is not running"
  url_for "$dir"
}

cmd=${1:-}; shift || true
case "$cmd" in
  ensure) ensure ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  url) url "$@" ;;
  *) echo "usage: scripts/pg.sh ensure | start DIR | url DIR | stop DIR" >&2; exit 2 ;;
esac
