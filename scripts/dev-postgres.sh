#!/usr/bin/env bash
# Start a throwaway PostgreSQL for local development and print its URL.
# Usage: eval "$(scripts/dev-postgres.sh)"   (stop with: pg_ctl -D /tmp/botwarden-dev-pg/data stop)
set -euo pipefail
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PG_PORT=${PG_PORT:-55433}
PG_DIR=/tmp/botwarden-dev-pg
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ ! -d "$PG_DIR/data" ]; then
  mkdir -p "$PG_DIR"; chown postgres:postgres "$PG_DIR" 2>/dev/null || true
  as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync >/dev/null
fi
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1 || \
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres botwarden_test 2>/dev/null || true
echo "export BOTWARDEN_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/botwarden_test"
