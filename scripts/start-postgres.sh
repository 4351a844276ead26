#!/usr/bin/env bash
# Installs (if needed) and starts Debian's PostgreSQL on 127.0.0.1 for the integration tests,
# then prints the DATABASE_URL to use. Idempotent: safe to run when the server is already up.
set -euo pipefail

# The caller captures stdout, so only the URL may go there. The tools' chatter goes to stderr, and
# no child (apt's postinst, the postgres daemon) inherits the caller's pipe: it would hold it open.
start_cluster() {
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  fi
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h | grep -q "^${version} main "; then
    pg_createcluster "$version" main
  fi
  if ! pg_lsclusters -h | grep -q "^${version} main .* online"; then
    pg_ctlcluster "$version" main start
  fi
  port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')
  su postgres -c "psql -q -p $port -c \"ALTER USER postgres PASSWORD 'medshare'\""
  su postgres -c "psql -q -p $port -tc \"SELECT 1 FROM pg_database WHERE datname = 'medshare_test'\"" | grep -q 1 \
    || su postgres -c "createdb -p $port medshare_test"
}
start_cluster >&2
if ! [[ $port =~ ^[0-9]+$ ]]; then
  echo "start-postgres: could not read the port of cluster ${version}/main from pg_lsclusters" >&2
  exit 1
fi
echo "postgres://postgres:medshare@127.0.0.1:${port}/medshare_test"
