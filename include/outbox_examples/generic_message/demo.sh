#!/usr/bin/env bash
# `make demo SCENARIO=generic_message`: two subsystems share one generic message table; the ledger
# writes a consumer table in the same transaction as its business change; reconciliation finds what
# went missing and re-delivers it; everything runs through the relay's Airflow DAGs.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$ROOT"
SCENARIO=generic_message
SERVICES_DIR="$ROOT/include/outbox_examples/generic_message/services"
source "$ROOT/include/devstack/demo_env.sh"
INVOICES="${DEMO_ORDERS:-300}"
DEMO="$PY -m outbox_examples.generic_message.demo"
CLI="$PY -m outbox_relay_airflow.cli"

step "fresh database $DEMO_DB: outbox DDL + sql/examples/generic_message.sql"
$DEMO setup
step "Airflow metadata DB ($AIRFLOW_HOME)"
airflow_db
step "billing and shipping write business rows + messages (one transaction each) to message_send"
$DEMO write "$INVOICES"
step "relay DAGs, one per subsystem of the shared table (each its own lock): outbox_billing_relay, outbox_shipping_relay"
echo "(billing's run gives up on the poison row, so its check_health task turns the run red: alerts fire)"
dag_test_red outbox_billing_relay
dag_test outbox_shipping_relay
step "the 'mark sent' update is lost for every row: the relay publishes everything a second time"
$DEMO lose-marks all
dag_tests outbox_billing_relay outbox_shipping_relay
step "ledger consumes both topics (consumer table + ledger entry per transaction); it loses 3 messages"
$DEMO consume --drop 3
step "2 consumed rows lose their 'mark sent' update"
$DEMO lose-marks 2
step "reconciliation (CLI): sent but never consumed, consumed but never marked sent, failures"
$CLI reconcile billing || echo "(exit $?: discrepancies found)"
$CLI reconcile shipping
step "one command re-delivers the missing ones"
$CLI reconcile billing --redeliver | sed -n 1p  # the summary line (ids as above)
dag_test outbox_billing_relay
$DEMO consume
step "reconcile DAGs (daily; fail on discrepancies): clean now"
dag_tests outbox_billing_reconcile outbox_shipping_reconcile
step "cleanup DAGs: history of message_send and message_consume beyond their windows"
dag_tests outbox_billing_cleanup outbox_shipping_cleanup
step "validate + plan: both subsystems of the shared table, each with its own backlog"
$CLI plan billing shipping || true
$DEMO report
