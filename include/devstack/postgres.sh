#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432 for Airflow's metadata (user postgres, trust on
# loopback). A server that already answers is used as it is. Otherwise, on Debian/Ubuntu as root,
# PostgreSQL is installed when absent, loopback logins are trusted, and the cluster is started.
set -euo pipefail
COMPONENT=postgres
source "$(dirname "$0")/lib.sh"
PORT=5432

if listening "$PORT"; then exit 0; fi

ensure_packages postgresql
command -v pg_lsclusters >/dev/null || die "pg_lsclusters not found after install"
read -r VERSION CLUSTER < <(pg_lsclusters --no-header | awk '{print $1, $2; exit}')
if [[ -z "${VERSION:-}" ]]; then
  VERSION="$(ls /usr/lib/postgresql | sort -V | tail -1)"; CLUSTER=main
  say "creating cluster $VERSION/$CLUSTER"
  pg_createcluster "$VERSION" "$CLUSTER" >/dev/null
fi
HBA="/etc/postgresql/$VERSION/$CLUSTER/pg_hba.conf"
if ! grep -q "outbox-relay devstack" "$HBA"; then
  say "trusting loopback logins in $HBA (dev machine)"
  sed -i '1i # outbox-relay devstack: Airflow metadata logins over loopback need no password\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$HBA"
fi
say "starting PostgreSQL $VERSION/$CLUSTER"
pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" start || true
wait_listening "$PORT" 60 || die "PostgreSQL did not start listening on 127.0.0.1:$PORT (see /var/log/postgresql/)"
say "PostgreSQL ready on 127.0.0.1:$PORT (user postgres, trust)"
