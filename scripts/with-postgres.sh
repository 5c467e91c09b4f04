#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server on loopback, exported as
# ADAPTER_TEST_PG_URL. Installs Debian's postgresql package if no server binaries exist.
# If ADAPTER_TEST_PG_URL is already set, that server is used as it is.
set -euo pipefail

if [ -n "${ADAPTER_TEST_PG_URL:-}" ]; then
  exec "$@"
fi

find_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bindir=$(find_bindir || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  if [ "$(id -u)" != "0" ]; then
    echo "PostgreSQL server binaries not found; install Debian's postgresql package" >&2
    exit 1
  fi
  echo "installing PostgreSQL from Debian packages ..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  bindir=$(find_bindir)
fi

port=${ADAPTER_TEST_PG_PORT:-54329}
datadir=$(mktemp -d /tmp/yibao-pg.XXXXXX)
runas=()
if [ "$(id -u)" = "0" ]; then
  chown postgres "$datadir"
  runas=(runuser -u postgres --)
fi
"${runas[@]}" "$bindir/initdb" -D "$datadir" -U postgres --auth=trust -E UTF8 >/dev/null
"${runas[@]}" "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w \
  -o "-p $port -k $datadir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
cleanup() { "${runas[@]}" "$bindir/pg_ctl" -D "$datadir" -m fast stop >/dev/null 2>&1 || true; rm -rf "$datadir"; }
trap cleanup EXIT

export ADAPTER_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
"$@"
