#!/usr/bin/env bash
# Make sure the local PostgreSQL answers on 127.0.0.1:5432 (Airflow's metadata DB for scheduler tests).
set -euo pipefail
up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if up; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [[ -d /etc/postgresql ]]; then
  echo "postgres: starting local PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 1 100); do up && exit 0; sleep 0.2; done
fi
echo "postgres: nothing answers on 127.0.0.1:5432 (needed by the Airflow scheduler tests; trust auth, user postgres)" >&2
exit 1
