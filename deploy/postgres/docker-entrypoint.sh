#!/bin/sh
# Initialise PGDATA on the first start (like the official postgres image: POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB), then run the server in the foreground as PID 1.
# Arguments after an optional leading "postgres" are passed to the server (e.g. -c k=v).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${PGPORT:=5432}"
: "${LISTEN_ADDRESSES:=*}"
export PGDATA PGPORT

if [ "${1:-}" = "postgres" ]; then
  shift
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "docker-entrypoint: set POSTGRES_PASSWORD to initialise the database" >&2
    exit 1
  fi
  echo "docker-entrypoint: initialising $PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  # Password logins from anywhere the server listens (LISTEN_ADDRESSES decides where).
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != "postgres" ]; then
    printf 'CREATE DATABASE "%s";\n' "$POSTGRES_DB" \
      | postgres --single -D "$PGDATA" -c listen_addresses='' postgres >/dev/null
  fi
  echo "docker-entrypoint: database $POSTGRES_DB ready for user $POSTGRES_USER"
fi

exec postgres -D "$PGDATA" -p "$PGPORT" -c listen_addresses="$LISTEN_ADDRESSES" \
  -c unix_socket_directories=/var/run/postgresql "$@"
