#!/usr/bin/env bash
# `make demo SCENARIO=user_coupon`: user registration -> welcome coupon (EventPublish/EventProcess),
# every event delivered twice, the coupon service killed -9 between receiving and processing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$ROOT"
SCENARIO=user_coupon
SERVICES_DIR="$ROOT/include/outbox_examples/user_coupon/services"
source "$ROOT/include/devstack/demo_env.sh"
USERS="${DEMO_USERS:-1000}"
DEMO="$PY -m outbox_examples.user_coupon.demo"

step "fresh database $DEMO_DB: outbox DDL + sql/examples/user_coupon.sql"
$DEMO setup
step "Airflow metadata DB ($AIRFLOW_HOME)"
airflow_db
step "user service registers $USERS users"
$DEMO register "$USERS"
step "relay DAG: outbox_users_relay (EventPublish NEW -> user.events -> PUBLISHED)"
dag_test outbox_users_relay
step "simulated relay crash before marking: every event goes out a second time"
$DEMO redeliver
dag_test outbox_users_relay
step "coupon service records a batch in EventProcess and is killed -9 before processing it"
$DEMO crash
step "coupon service restarts: processes the NEW rows first, then receives (duplicates are deduped)"
$DEMO coupons
step "validate + plan: the users config against the live DB and broker"
"$PY" -m outbox_relay_airflow.cli plan users || true
$DEMO report
