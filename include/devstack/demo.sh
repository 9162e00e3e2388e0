#!/usr/bin/env bash
# `make demo`: order -> inventory through Airflow 3 (`airflow dags test`), the embedded broker and local MySQL.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
SCENARIO="${1:-order_inventory}"
if [[ "$SCENARIO" != "order_inventory" ]]; then
  echo "unknown SCENARIO '$SCENARIO' (available: order_inventory)" >&2; exit 2
fi
ORDERS="${DEMO_ORDERS:-2000}"
export DEMO_DB="${DEMO_DB:-outbox_demo}"
export AIRFLOW_HOME="$ROOT/.run/airflow-demo"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
export OUTBOX_RELAY_SERVICES_DIR="$ROOT/dags/services"
export AIRFLOW_CONN_KAFKA_DEFAULT="{\"conn_type\": \"kafka\", \"extra\": {\"bootstrap.servers\": \"${OUTBOX_KAFKA_BOOTSTRAP}\"}}"
PY="$ROOT/.venv/bin/python"
AIRFLOW="$ROOT/.venv/bin/airflow"
mkdir -p "$AIRFLOW_HOME"
# The Airflow connection points at the same server as OUTBOX_TEST_DB_URL, database $DEMO_DB.
AIRFLOW_CONN_OUTBOX_DB="$("$PY" -c 'import os; from sqlalchemy import make_url
u = make_url(os.environ.get("OUTBOX_TEST_DB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"))
print(u.set(drivername="mysql", database=os.environ["DEMO_DB"]).render_as_string(hide_password=False))')"
export AIRFLOW_CONN_OUTBOX_DB

step() { printf '\n--- %s\n' "$*"; }
dag_test() {
  local log="$AIRFLOW_HOME/$1.log"
  if ! "$AIRFLOW" dags test "$1" >"$log" 2>&1; then
    echo "airflow dags test $1 failed; last lines of $log:" >&2; tail -40 "$log" >&2; exit 1
  fi
  if grep -qiE "state=failed|Marking run .* failed|dagrun failed" "$log"; then
    echo "DAG run $1 failed; see $log" >&2; grep -iE "error|exception" "$log" | tail -20 >&2; exit 1
  fi
  grep -oE "(relay run|confirmations|retention)[^{]*\{[^}]*\}" "$log" | tail -1 || true
}

step "fresh database $DEMO_DB with the outbox DDL and the example tables"
"$PY" -m outbox_examples.order_inventory.demo setup
step "Airflow metadata DB ($AIRFLOW_HOME)"
"$AIRFLOW" db migrate >"$AIRFLOW_HOME/migrate.log" 2>&1 || { tail -30 "$AIRFLOW_HOME/migrate.log"; exit 1; }
step "order service writes $ORDERS orders, each with its outbox row in one transaction"
"$PY" -m outbox_examples.order_inventory.demo place "$ORDERS"
step "relay DAG: outbox_orders_relay (ensure topics, publish, mark SENT)"
dag_test outbox_orders_relay
step "inventory service consumes with its inbox and answers on orders.results"
"$PY" -m outbox_examples.order_inventory.demo inventory
step "confirmation DAG: outbox_orders_confirmations"
dag_test outbox_orders_confirmations
step "order service compensates orders whose event FAILED"
"$PY" -m outbox_examples.order_inventory.demo compensate
step "cleanup DAG: outbox_orders_cleanup"
dag_test outbox_orders_cleanup
step "validate + plan: configs against the live DB and broker, backlog by status"
"$PY" -m outbox_relay_airflow.cli plan orders || true
"$PY" -m outbox_examples.order_inventory.demo report
