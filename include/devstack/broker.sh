#!/usr/bin/env bash
# Start/stop the local broker on 127.0.0.1:$BROKER_PORT: BROKER=kafka (Apache Kafka from its Maven
# artifacts, the default when `java` is on the PATH) or BROKER=tansu (light embedded broker, no JDK).
# Set OUTBOX_KAFKA_BOOTSTRAP to another host:port to use an external broker and start nothing.
set -euo pipefail
COMPONENT=broker
HERE="$(dirname "$0")"
source "$HERE/lib.sh"
ROOT="$(cd "$HERE/../.." && pwd)"
PORT="${BROKER_PORT:-19092}"
if [[ -z "${BROKER:-}" ]]; then
  if command -v java >/dev/null 2>&1; then BROKER=kafka; else BROKER=tansu; fi
fi
case "$BROKER" in kafka|tansu) ;; *) die "BROKER=$BROKER is not known: use kafka or tansu" ;; esac
KIND_FILE="$ROOT/.run/broker-$PORT.kind"
mkdir -p "$ROOT/.run"

case "${1:-start}" in
  start)
    if [[ -n "${OUTBOX_KAFKA_BOOTSTRAP:-}" && "${OUTBOX_KAFKA_BOOTSTRAP}" != "127.0.0.1:$PORT" ]]; then
      say "using the external broker ${OUTBOX_KAFKA_BOOTSTRAP}"; exit 0
    fi
    if listening "$PORT"; then
      running="$(cat "$KIND_FILE" 2>/dev/null || true)"
      if [[ "$running" == "$BROKER" ]]; then say "$BROKER already listening on 127.0.0.1:$PORT"; exit 0; fi
      # Not this checkout's broker of that kind: use it if it is a healthy Kafka-compatible broker (another
      # checkout's, a worktree's), refuse only a port held by something that does not answer as one.
      if answer="$("$ROOT/.venv/bin/python" "$HERE/kafka_probe.py" "$PORT" 10)"; then
        say "a Kafka-compatible broker already answers on 127.0.0.1:$PORT ($answer), started elsewhere: using it as it is"
        exit 0
      fi
      die "127.0.0.1:$PORT is held by something that is not a working Kafka broker ($answer): free the port or set BROKER_PORT"
    fi
    bash "$HERE/$BROKER.sh" start
    echo "$BROKER" >"$KIND_FILE" ;;
  stop)
    for kind in kafka tansu; do bash "$HERE/$kind.sh" stop; done
    rm -f "$KIND_FILE" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
