#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL server on a private socket: start, run, stop.
#   scripts/with-postgres.sh CMD ARGS...   (CMD sees REGISTRY_DB_URL pointing at the server)
# Uses Debian's postgresql package (installed with apt-get when missing and we are root).
set -euo pipefail

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "with-postgres: installing Debian's postgresql package" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  else
    echo "with-postgres: no PostgreSQL server found (install Debian's postgresql package)" >&2
    exit 3
  fi
fi

dir=$(mktemp -d /tmp/graduation-pg.XXXXXX)
port=$((20000 + RANDOM % 20000))
as_owner=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$dir"
  as_owner=(runuser -u postgres --)
fi

cleanup() {
  "${as_owner[@]}" "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

"${as_owner[@]}" "$pgbin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 >/dev/null
"${as_owner[@]}" "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-k $dir -p $port -c listen_addresses='' -c max_connections=200 -c fsync=off" start >/dev/null

export REGISTRY_DB_URL="postgresql+psycopg://postgres@/postgres?host=$dir&port=$port"
echo "with-postgres: PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on $dir:$port" >&2
"$@"
