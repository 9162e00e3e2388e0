#!/usr/bin/env bash
# `make airflow` / `make airflow-stop`: a real local Airflow to open in a browser. api-server, scheduler,
# dag-processor and triggerer (LocalExecutor, PostgreSQL metadata) with the project's DAGs and Outbox page,
# the order service's table in MariaDB (database $AIRFLOW_LOCAL_DB) and live traffic: an order every
# two seconds, an inventory service answering. Logs and pids in $AIRFLOW_LOCAL_HOME.
# Needs MariaDB and the broker running (`make airflow` starts them first). Every Airflow setting is in
# $AIRFLOW_LOCAL_HOME/airflow.cfg and the connections in its metadata database: a second shell needs only
# `export AIRFLOW_HOME=$AIRFLOW_LOCAL_HOME` (printed at start).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
COMPONENT=airflow
source "$ROOT/include/devstack/lib.sh"
HOME_DIR="${AIRFLOW_LOCAL_HOME:-$ROOT/.run/airflow-local}"
PORT="${AIRFLOW_PORT:-8080}"
# Only this machine reaches the UI unless told otherwise (AIRFLOW_HOST=0.0.0.0).
HOST="${AIRFLOW_HOST:-127.0.0.1}"
DB="${AIRFLOW_LOCAL_DB:-outbox_local}"
META_DB="${AIRFLOW_LOCAL_META_DB:-airflow_local}"
PY="$ROOT/.venv/bin/python"
AIRFLOW="$ROOT/.venv/bin/airflow"
PROCESSES=(api-server scheduler dag-processor triggerer traffic)

alive() { kill -0 -- "-$1" 2>/dev/null || kill -0 "$1" 2>/dev/null; }  # alive PID: its group or itself

# Returns only once every process it started (and what they started, in their process groups) has exited:
# SIGTERM, then up to AIRFLOW_STOP_SECONDS (30) for them to finish, then SIGKILL.
stop() {
  local name pid pids=() deadline=$((SECONDS + ${AIRFLOW_STOP_SECONDS:-30}))
  for name in "${PROCESSES[@]}"; do
    [[ -f "$HOME_DIR/$name.pid" ]] || continue
    pid="$(cat "$HOME_DIR/$name.pid")"
    pids+=("$pid")
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    while alive "$pid"; do
      if ((SECONDS >= deadline)); then
        say "process group $pid did not exit within ${AIRFLOW_STOP_SECONDS:-30}s: killing it"
        kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
      fi
      sleep 0.2
    done
  done
  for name in "${PROCESSES[@]}"; do rm -f "$HOME_DIR/$name.pid"; done
  say "stopped: every process it started has exited (logs kept in $HOME_DIR)"
}

secret() {  # secret FILE COMMAND...: the file's content, made by COMMAND the first time (kept across starts)
  local file="$HOME_DIR/$1"; shift
  [[ -s "$file" ]] || "$@" >"$file"
  cat "$file"
}

# Every setting in $HOME_DIR/airflow.cfg, so that a second shell with only AIRFLOW_HOME set (the CLI,
# `airflow connections list`, `outbox-relay plan orders`) sees the same metadata database, DAG folder,
# connections and Fernet key as the running components.
write_config() {
  local jwt fernet
  jwt="$(secret jwt-secret "$PY" -c 'import secrets; print(secrets.token_hex(32))')"
  # One Fernet key for every component (each would otherwise make its own: the triggerer could not read
  # the deadline callbacks and approvals the scheduler encrypted, nor anyone the connections' passwords).
  fernet="$(secret fernet-key "$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
  cat >"$HOME_DIR/airflow.cfg" <<CFG
# Written by include/devstack/airflow.sh on every start (\`make airflow\`); edit that script instead.
[core]
dags_folder = $ROOT/dags
plugins_folder = $ROOT/plugins
executor = LocalExecutor
load_examples = False
fernet_key = $fernet
execution_api_server_url = http://127.0.0.1:$PORT/execution/
simple_auth_manager_users = admin:admin
simple_auth_manager_passwords_file = $HOME_DIR/passwords.json
test_connection = Enabled

[database]
sql_alchemy_conn = postgresql+psycopg2://postgres@127.0.0.1:5432/$META_DB

[api]
host = $HOST
port = $PORT

[api_auth]
jwt_secret = $jwt

[dag_processor]
refresh_interval = 10

[workers]
# A task process tells the api-server it started; on a small machine under load the default 5 s timed out
# and the task instance then waited for zombie detection (5 minutes) before its run could go on.
execution_api_timeout = 30

[logging]
logging_level = INFO
CFG
}

# The relay's connections, stored in the metadata database (where the UI, the CLI and a second shell
# find them; type outbox for the database, so the UI's connection form and Test button apply).
store_connections() {
  local bootstrap="${OUTBOX_KAFKA_BOOTSTRAP:-127.0.0.1:${BROKER_PORT:-19092}}"
  DEMO_DB="$DB" BOOTSTRAP="$bootstrap" "$PY" -c 'import json, os; from sqlalchemy import make_url
u = make_url(os.environ.get("OUTBOX_TEST_DB_URL", "mysql+pymysql://root@127.0.0.1:3306"))
print(json.dumps({
    "outbox_db": {"conn_type": "outbox", "host": u.host, "port": u.port or 3306, "login": u.username,
                  "password": u.password or "", "schema": os.environ["DEMO_DB"]},
    "kafka_default": {"conn_type": "kafka", "extra": json.dumps({"bootstrap.servers": os.environ["BOOTSTRAP"]})},
}))' >"$HOME_DIR/connections.json"
  "$AIRFLOW" connections import --overwrite "$HOME_DIR/connections.json" >"$HOME_DIR/connections.log" 2>&1 \
    || { tail -20 "$HOME_DIR/connections.log"; die "storing the connections failed"; }
  rm -f "$HOME_DIR/connections.json"
}

launch() {  # launch NAME COMMAND...: in its own process group, output to NAME.log, pid to NAME.pid
  local name="$1"; shift
  setsid "$@" >"$HOME_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$HOME_DIR/$name.pid"
}

start() {
  mkdir -p "$HOME_DIR"
  if listening "$PORT"; then die "port $PORT is taken (AIRFLOW_PORT=... picks another; make airflow-stop ends ours)"; fi
  local password
  if [[ -n "${AIRFLOW_ADMIN_PASSWORD:-}" ]]; then
    password="$AIRFLOW_ADMIN_PASSWORD"
  else
    password="$(secret admin-password "$PY" -c 'import secrets; print(secrets.token_urlsafe(12))')"
  fi
  PASSWORD="$password" "$PY" -c 'import json, os; print(json.dumps({"admin": os.environ["PASSWORD"]}))' \
    >"$HOME_DIR/passwords.json"
  write_config
  export AIRFLOW_HOME="$HOME_DIR"
  # Settings of this shell must not override the file (a second shell would not have them).
  unset $(compgen -e | grep -E '^AIRFLOW__|^AIRFLOW_CONN_' || true)
  export DEMO_DB="$DB" DEMO_STATE="$HOME_DIR/demo-state.json"
  export OUTBOX_KAFKA_BOOTSTRAP="${OUTBOX_KAFKA_BOOTSTRAP:-127.0.0.1:${BROKER_PORT:-19092}}"
  bash "$ROOT/include/devstack/postgres.sh"
  if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$META_DB'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $META_DB" >/dev/null
  fi
  say "migrating the metadata database $META_DB"
  "$AIRFLOW" db migrate >"$HOME_DIR/migrate.log" 2>&1 || { tail -30 "$HOME_DIR/migrate.log"; die "db migrate failed"; }
  store_connections
  local setup=()
  [[ -f "$HOME_DIR/demo-state.json" ]] || setup=(--setup)
  launch traffic "$PY" -m outbox_examples.order_inventory.live "${setup[@]}"
  launch api-server "$AIRFLOW" api-server --host "$HOST" --port "$PORT"
  launch scheduler "$AIRFLOW" scheduler
  launch dag-processor "$AIRFLOW" dag-processor
  launch triggerer "$AIRFLOW" triggerer
  wait_listening "$PORT" 120 || { tail -20 "$HOME_DIR/api-server.log"; die "the api-server did not listen on $PORT"; }
  "$PY" "$ROOT/include/devstack/api_ready.py" "$PORT" 300 || { tail -20 "$HOME_DIR/api-server.log"; die "the api-server listens on $PORT but does not answer"; }
  say "Airflow is up: http://127.0.0.1:$PORT/  (login admin / $password; AIRFLOW_ADMIN_PASSWORD=... sets another)"
  say "Outbox page:   http://127.0.0.1:$PORT/outbox/  (the 'Outbox' entry in the UI's navigation)"
  say "listening on $HOST only (AIRFLOW_HOST=0.0.0.0 opens it to other machines)"
  say "a second shell sees the same Airflow, connections included: export AIRFLOW_HOME=$HOME_DIR"
  say "live traffic: an order every 2 s into database $DB; stop everything with: make airflow-stop"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop" ;;
esac
