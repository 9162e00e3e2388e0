#!/usr/bin/env bash
# Sourced by every scenario's demo.sh: Airflow on SQLite in .run/airflow-demo-<scenario>, the
# scenario's own MySQL database ($DEMO_DB), its service configs, and helpers `step` / `dag_test`.
# Needs: ROOT, SCENARIO, DEMO_DB (default outbox_demo_<scenario>), SERVICES_DIR.
set -euo pipefail
export DEMO_DB="${DEMO_DB:-outbox_demo_${SCENARIO}}"
export AIRFLOW_HOME="${DEMO_AIRFLOW_HOME:-$ROOT/.run/airflow-demo-$SCENARIO}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
export OUTBOX_RELAY_SERVICES_DIR="${SERVICES_DIR:?SERVICES_DIR must name the scenario\'s service configs}"
export OUTBOX_KAFKA_BOOTSTRAP="${OUTBOX_KAFKA_BOOTSTRAP:-127.0.0.1:${BROKER_PORT:-19092}}"
export AIRFLOW_CONN_KAFKA_DEFAULT="{\"conn_type\": \"kafka\", \"extra\": {\"bootstrap.servers\": \"${OUTBOX_KAFKA_BOOTSTRAP}\"}}"
export DEMO_STATE="${DEMO_STATE:-$ROOT/.run/demo-state-$SCENARIO.json}"
PY="$ROOT/.venv/bin/python"
AIRFLOW="$ROOT/.venv/bin/airflow"
mkdir -p "$AIRFLOW_HOME"
# The Airflow connection points at the same server as OUTBOX_TEST_DB_URL, database $DEMO_DB.
AIRFLOW_CONN_OUTBOX_DB="$("$PY" -c 'import os; from sqlalchemy import make_url
u = make_url(os.environ.get("OUTBOX_TEST_DB_URL", "mysql+pymysql://root@127.0.0.1:3306"))
print(u.set(drivername="mysql", database=os.environ["DEMO_DB"]).render_as_string(hide_password=False))')"
export AIRFLOW_CONN_OUTBOX_DB

step() { printf '\n--- %s\n' "$*"; }

# A fresh SQLite metadata DB: migrated once per Airflow version into .run/, then copied (a migration
# costs ~10 s of CPU; every demo and every demo test starts from the same empty schema).
airflow_db() {
  local version template
  version="$("$PY" -c 'from importlib.metadata import version; print(version("apache-airflow"))')"
  template="$ROOT/.run/airflow-sqlite-$version.db"
  (
    flock 9
    if [[ ! -s "$template" ]]; then
      local tmp_home; tmp_home="$(mktemp -d)"
      AIRFLOW_HOME="$tmp_home" AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$tmp_home/airflow.db" \
        "$AIRFLOW" db migrate >"$AIRFLOW_HOME/migrate.log" 2>&1 || { tail -30 "$AIRFLOW_HOME/migrate.log"; exit 1; }
      mv "$tmp_home/airflow.db" "$template.tmp" && mv "$template.tmp" "$template"
      rm -rf "$tmp_home"
    fi
  ) 9>"$ROOT/.run/airflow-sqlite.lock"
  cp "$template" "$AIRFLOW_HOME/airflow.db"
}

# Run DAGs one after another through `airflow dags test`; fails if any fails.
dag_tests() {
  local dag
  for dag in "$@"; do dag_test "$dag"; done
}

# `airflow dags test` requests go to one long-lived runner (include/devstack/dag_runner.py), started
# at the first request with the environment of that moment: each run after the first costs a fifth.
dag_runner() {
  if [[ -z "${DAG_RUNNER_PID:-}" ]]; then
    coproc DAG_RUNNER { exec "$PY" "$ROOT/include/devstack/dag_runner.py" "$AIRFLOW_HOME/dag-runner.log"; }
  fi
  local reply=""
  echo "$*" >&"${DAG_RUNNER[1]}"
  read -r reply <&"${DAG_RUNNER[0]}" || true
  [[ $reply == ok ]]
}

# Run one DAG that must end red: its check_health task fails the run (e.g. it gave up on a poison row).
# A green run fails the demo; the red run's reason is printed.
dag_test_red() {
  local log="$AIRFLOW_HOME/$1.log"
  dag_runner "$log" "$@" || true
  if ! grep -q "ServiceUnhealthyError" "$log"; then
    echo "DAG run $1 should have been red (check_health); see $log" >&2; tail -40 "$log" >&2; exit 1
  fi
  grep -oE "(relay run)[^{]*\{[^}]*\}" "$log" | tail -1 || true
  echo "red, as it should be: $(grep -oE 'ServiceUnhealthyError: [^|]*' "$log" | tail -1 | cut -c1-220)"
}

# Run one DAG through `airflow dags test`, fail loudly, and print the task's one-line stats.
dag_test() {
  local log="$AIRFLOW_HOME/$1.log"
  if ! dag_runner "$log" "$@"; then
    echo "airflow dags test $1 failed; last lines of $log:" >&2; tail -40 "$log" >&2; exit 1
  fi
  if grep -qiE "state=failed|Marking run .* failed|dagrun failed" "$log"; then
    echo "DAG run $1 failed; see $log" >&2; grep -iE "error|exception" "$log" | tail -20 >&2; exit 1
  fi
  grep -oE "(relay run|confirmations|retention|reconciliation)[^{]*\{[^}]*\}" "$log" | tail -1 || true
}
