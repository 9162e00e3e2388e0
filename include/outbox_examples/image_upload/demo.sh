#!/usr/bin/env bash
# `make demo SCENARIO=image_upload`: uploads to a local S3 (moto_server) whose notifications go to SQS;
# an Airflow DAG drains the queue into Kafka; the image and part services consume with their inbox.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$ROOT"
SCENARIO=image_upload
SERVICES_DIR="$ROOT/dags/services"
source "$ROOT/include/devstack/demo_env.sh"
# The example's DAG is not part of the product's dags/ folder: Airflow reads it from the example.
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/include/outbox_examples/image_upload/dags"
PARTS="${DEMO_PARTS:-60}"
DEMO="$PY -m outbox_examples.image_upload.demo"
export IMAGE_EVENTS_TOPIC="${IMAGE_EVENTS_TOPIC:-images.uploaded}"
export IMAGE_EVENTS_REJECT_TOPIC="${IMAGE_EVENTS_REJECT_TOPIC:-images.uploaded.rejected}"

MOTO_PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
step "local S3 + SQS: moto_server on $MOTO_ENDPOINT"
"$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$AIRFLOW_HOME/moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "$MOTO_ENDPOINT/moto-api/" >/dev/null 2>&1 && break
  kill -0 "$MOTO_PID" 2>/dev/null || { echo "moto_server exited; see $AIRFLOW_HOME/moto.log" >&2; exit 1; }
  sleep 0.2
done
curl -fs "$MOTO_ENDPOINT/moto-api/" >/dev/null || { echo "moto_server does not answer" >&2; exit 1; }

step "fresh database $DEMO_DB (image + part tables), topics, bucket -> queue notifications"
$DEMO setup
export IMAGE_EVENTS_QUEUE_URL="$($DEMO queue-url)"
export AIRFLOW_CONN_AWS_IMAGE_EVENTS="{\"conn_type\": \"aws\", \"login\": \"local\", \"password\": \"local\", \"extra\": {\"endpoint_url\": \"$MOTO_ENDPOINT\", \"region_name\": \"us-east-1\"}}"
step "Airflow metadata DB ($AIRFLOW_HOME)"
airflow_db
step "part service requests $PARTS images and uploads them (some twice), plus bad and hand-made events"
$DEMO upload "$PARTS"
step "drain pass 1 publishes everything, then its host dies before deleting from SQS"
$DEMO crash
step "drain DAG: image_upload_events (SQS redelivers every notification; same ids published again)"
dag_test image_upload_events
grep -oE "image events drain \{[^}]*\}" "$AIRFLOW_HOME/image_upload_events.log" | tail -1 || true
step "image service and part service consume with their inbox (then read everything again)"
$DEMO consume
$DEMO report
