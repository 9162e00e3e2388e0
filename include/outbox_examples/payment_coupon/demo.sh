#!/usr/bin/env bash
# `make demo SCENARIO=payment_coupon`: payment -> cash-back coupon through the legacy
# t_user_coupon_tran table (registered unchanged), every message delivered twice.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$ROOT"
SCENARIO=payment_coupon
SERVICES_DIR="$ROOT/include/outbox_examples/payment_coupon/services"
source "$ROOT/include/devstack/demo_env.sh"
PAYMENTS="${DEMO_PAYMENTS:-2000}"
DEMO="$PY -m outbox_examples.payment_coupon.demo"

step "fresh database $DEMO_DB: outbox DDL + sql/examples/payment_coupon.sql, users with balances"
$DEMO setup "$PAYMENTS"
step "Airflow metadata DB ($AIRFLOW_HOME)"
airflow_db
step "user service attempts $PAYMENTS payments"
$DEMO pay "$PAYMENTS"
step "relay DAG: outbox_payments_relay (t_user_coupon_tran status 0 -> topic coupon -> status 1)"
dag_test outbox_payments_relay
step "simulated relay crash before marking: every payment goes out a second time"
$DEMO redeliver
dag_test outbox_payments_relay
step "activity service grants coupons; a redelivered tid hits t_coupon_tid_unique_key = already done"
$DEMO activity
step "validate + plan: the payments config against the live DB and broker"
"$PY" -m outbox_relay_airflow.cli plan payments || true
$DEMO report
