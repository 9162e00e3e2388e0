#!/usr/bin/env bash
# `make demo` (SCENARIO=order_inventory): order -> inventory with a result topic, through Airflow 3.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$ROOT"
SCENARIO=order_inventory
SERVICES_DIR="$ROOT/dags/services"
DEMO_DB="${DEMO_DB:-outbox_demo}"
source "$ROOT/include/devstack/demo_env.sh"
ORDERS="${DEMO_ORDERS:-2000}"
DEMO="$PY -m outbox_examples.order_inventory.demo"

step "fresh database $DEMO_DB with the outbox DDL and the example tables"
$DEMO setup
step "Airflow metadata DB ($AIRFLOW_HOME)"
airflow_db
step "order service writes $ORDERS orders, each with its outbox row in one transaction"
$DEMO place "$ORDERS"
step "relay DAG: outbox_orders_relay (ensure topics, publish, mark SENT)"
dag_test outbox_orders_relay
step "inventory service consumes with its inbox and answers on orders.results"
$DEMO inventory
step "confirmation DAG: outbox_orders_confirmations"
dag_test outbox_orders_confirmations
step "order service compensates orders whose event FAILED"
$DEMO compensate
step "cleanup DAG: outbox_orders_cleanup"
dag_test outbox_orders_cleanup
step "validate + plan: configs against the live DB and broker, backlog by status"
"$PY" -m outbox_relay_airflow.cli plan orders || true
$DEMO report
