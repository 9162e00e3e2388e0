#!/usr/bin/env bash
# `make airflow` / `make airflow-stop`: a real local Airflow to open in a browser. api-server, scheduler,
# dag-processor and triggerer (LocalExecutor, PostgreSQL metadata) with the project's DAGs and Outbox page,
# the order service's table in MariaDB (database $AIRFLOW_LOCAL_DB) and live traffic: an order every
# two seconds, an inventory service answering. Logs and pids in $AIRFLOW_LOCAL_HOME.
# Needs MariaDB and the broker running (`make airflow` starts them first).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
COMPONENT=airflow
source "$ROOT/include/devstack/lib.sh"
HOME_DIR="${AIRFLOW_LOCAL_HOME:-$ROOT/.run/airflow-local}"
PORT="${AIRFLOW_PORT:-8080}"
DB="${AIRFLOW_LOCAL_DB:-outbox_local}"
META_DB="${AIRFLOW_LOCAL_META_DB:-airflow_local}"
ADMIN_PASSWORD="${AIRFLOW_ADMIN_PASSWORD:-admin}"
PY="$ROOT/.venv/bin/python"
AIRFLOW="$ROOT/.venv/bin/airflow"
PROCESSES=(api-server scheduler dag-processor triggerer traffic)

stop() {
  local name pid
  for name in "${PROCESSES[@]}"; do
    [[ -f "$HOME_DIR/$name.pid" ]] || continue
    pid="$(cat "$HOME_DIR/$name.pid")"
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    rm -f "$HOME_DIR/$name.pid"
  done
  say "stopped (logs kept in $HOME_DIR)"
}

environment() {
  export AIRFLOW_HOME="$HOME_DIR"
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://postgres@127.0.0.1:5432/$META_DB"
  export AIRFLOW__CORE__EXECUTOR=LocalExecutor AIRFLOW__CORE__LOAD_EXAMPLES=False
  export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags" AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
  export AIRFLOW__API__PORT="$PORT" AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$HOME_DIR/passwords.json"
  export AIRFLOW__API_AUTH__JWT_SECRET="${AIRFLOW__API_AUTH__JWT_SECRET:-$(cat "$HOME_DIR/jwt-secret")}"
  # One Fernet key for every component (each would otherwise make its own: the triggerer could not read
  # the deadline callbacks and approvals the scheduler encrypted).
  export AIRFLOW__CORE__FERNET_KEY="${AIRFLOW__CORE__FERNET_KEY:-$(cat "$HOME_DIR/fernet-key")}"
  export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=10 AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
  export OUTBOX_RELAY_SERVICES_DIR="$ROOT/dags/services" DEMO_DB="$DB" DEMO_STATE="$HOME_DIR/demo-state.json"
  export OUTBOX_KAFKA_BOOTSTRAP="${OUTBOX_KAFKA_BOOTSTRAP:-127.0.0.1:${BROKER_PORT:-19092}}"
  export AIRFLOW_CONN_KAFKA_DEFAULT="{\"conn_type\": \"kafka\", \"extra\": {\"bootstrap.servers\": \"$OUTBOX_KAFKA_BOOTSTRAP\"}}"
  AIRFLOW_CONN_OUTBOX_DB="$("$PY" -c 'import os; from sqlalchemy import make_url
u = make_url(os.environ.get("OUTBOX_TEST_DB_URL", "mysql+pymysql://root@127.0.0.1:3306"))
print(u.set(drivername="mysql", database=os.environ["DEMO_DB"]).render_as_string(hide_password=False))')"
  export AIRFLOW_CONN_OUTBOX_DB PYTHONPATH="$ROOT/include:$ROOT/plugins"
}

launch() {  # launch NAME COMMAND...: in its own process group, output to NAME.log, pid to NAME.pid
  local name="$1"; shift
  setsid "$@" >"$HOME_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$HOME_DIR/$name.pid"
}

start() {
  mkdir -p "$HOME_DIR"
  if listening "$PORT"; then die "port $PORT is taken (AIRFLOW_PORT=... picks another; make airflow-stop ends ours)"; fi
  [[ -s "$HOME_DIR/jwt-secret" ]] || "$PY" -c 'import secrets; print(secrets.token_hex(32))' >"$HOME_DIR/jwt-secret"
  [[ -s "$HOME_DIR/fernet-key" ]] || "$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' >"$HOME_DIR/fernet-key"
  printf '{"admin": "%s"}\n' "$ADMIN_PASSWORD" >"$HOME_DIR/passwords.json"
  environment
  bash "$ROOT/include/devstack/postgres.sh"
  if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$META_DB'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $META_DB" >/dev/null
  fi
  say "migrating the metadata database $META_DB"
  "$AIRFLOW" db migrate >"$HOME_DIR/migrate.log" 2>&1 || { tail -30 "$HOME_DIR/migrate.log"; die "db migrate failed"; }
  local setup=()
  [[ -f "$HOME_DIR/demo-state.json" ]] || setup=(--setup)
  launch traffic "$PY" -m outbox_examples.order_inventory.live "${setup[@]}"
  launch api-server "$AIRFLOW" api-server --port "$PORT"
  launch scheduler "$AIRFLOW" scheduler
  launch dag-processor "$AIRFLOW" dag-processor
  launch triggerer "$AIRFLOW" triggerer
  wait_listening "$PORT" 120 || { tail -20 "$HOME_DIR/api-server.log"; die "the api-server did not listen on $PORT"; }
  "$PY" "$ROOT/include/devstack/api_ready.py" "$PORT" 300 || { tail -20 "$HOME_DIR/api-server.log"; die "the api-server listens on $PORT but does not answer"; }
  say "Airflow is up: http://127.0.0.1:$PORT/  (login admin / $ADMIN_PASSWORD)"
  say "Outbox page:   http://127.0.0.1:$PORT/outbox/  (the 'Outbox' entry in the UI's navigation)"
  say "live traffic: an order every 2 s into database $DB; stop everything with: make airflow-stop"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop" ;;
esac
