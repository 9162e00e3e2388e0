#!/usr/bin/env bash
# Apache Kafka (KRaft, combined broker+controller) on 127.0.0.1 from its own Maven artifacts.
#   kafka.sh fetch   copy the broker jars (include/devstack/kafka/pom.xml) to .run/kafka/lib-<version>/,
#                    then build a class-data archive (AppCDS) once per JDK so brokers start ~40% faster
#   kafka.sh start   one node on 127.0.0.1:${BROKER_PORT:-19092}; waits until it answers a metadata request
#   kafka.sh stop    stop the node this script started on that port
# Env: BROKER_PORT, KAFKA_CONTROLLER_PORT (default BROKER_PORT+1000, or a free one, kept per node),
#      JAVA_HOME, KAFKA_HEAP_OPTS, KAFKA_JVM_OPTS, KAFKA_READY_TIMEOUT (seconds, default 60),
#      KAFKA_CDS=0 (no class-data archive), KAFKA_PYTHON (readiness probe when .venv is missing).
set -euo pipefail
COMPONENT=kafka
source "$(dirname "$0")/lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
POM="$ROOT/include/devstack/kafka/pom.xml"
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
RUN="$ROOT/.run/kafka"
LIB="$RUN/lib-$VERSION"
PORT="${BROKER_PORT:-19092}"
NODE="$RUN/node-$PORT"
LOG="$RUN/node-$PORT.log"
PIDFILE="$RUN/node-$PORT.pid"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
# Small heap, C1 only and SerialGC: on 2 cores this starts in about half the time of C2+G1, and producer
# throughput measured the same (~200k msg/s of 200 B with acks=all; the client was the bottleneck).
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}"
mkdir -p "$RUN"

now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
python_bin() {
  if [[ -x "$ROOT/.venv/bin/python" ]]; then echo "$ROOT/.venv/bin/python"; else echo "${KAFKA_PYTHON:-python3}"; fi
}
free_port() {
  "$(python_bin)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Our pid only if it is still the java process we started for this node (pids get reused).
our_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  [[ -n "$pid" ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "$NODE/server.properties" && echo "$pid"
}

# Sets JAVA_SPEC and CDS (the class-data archive for this JDK build and Kafka version; the JVM ignores an
# archive from another build with a warning, so the name carries the exact runtime version).
check_java() {
  local settings
  settings="$("$JAVA" -XshowSettings:properties -version 2>&1)" || die "cannot run '$JAVA' (set JAVA_HOME to a JDK 17+)"
  JAVA_SPEC="$(sed -n 's/^ *java.specification.version = //p' <<<"$settings")"
  [[ "${JAVA_SPEC%%.*}" -ge 17 ]] 2>/dev/null ||
    die "Kafka $VERSION needs Java 17+, '$JAVA' is Java '${JAVA_SPEC:-unknown}' (set JAVA_HOME)"
  CDS="$RUN/cds-$VERSION-java$(sed -n 's/^ *java.runtime.version = //p' <<<"$settings").jsa"
}

fetch_jars() {
  if [[ -d "$LIB" ]]; then return 0; fi
  command -v mvn >/dev/null || die "mvn not found; install Maven (apt-get install maven) to fetch Kafka $VERSION"
  local start out missing; start="$(now)"; out="$RUN/fetch-$VERSION.out"
  rm -rf "$LIB.partial"
  # Run on a copy under .run/: Maven may leave a target/ folder next to the pom it is given.
  cp "$POM" "$RUN/pom.xml"
  if ! mvn -q -B -f "$RUN/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$LIB.partial" >"$out" 2>&1; then
    sed -i 's/\x1b\[[0-9;]*m//g' "$out"
    missing="$(grep -oE 'could not be resolved: ([^ ,]+, )*[^ ,]+' "$out" | head -n 1 | sed 's/^could not be resolved: //; s/:$//' || true)"
    [[ -n "$missing" ]] || missing="$(grep -oE "(Could not find artifact|Failure to find|Could not transfer artifact) [^ ]+" "$out" | head -n 1 | awk '{print $NF}' || true)"
    echo "kafka: Maven could not resolve ${missing:-the Kafka $VERSION jars} (full output: $out)" >&2
    if grep -q '^\[ERROR\] .' "$out"; then grep -m 1 '^\[ERROR\] .' "$out" | cut -c 1-400 | sed 's/^/kafka:   /' >&2
    else tail -n 15 "$out" | sed 's/^/kafka:   /' >&2; fi
    exit 1
  fi
  rm -rf "$RUN/target"
  mv "$LIB.partial" "$LIB"
  say "fetched Kafka $VERSION ($(find "$LIB" -name '*.jar' | wc -l) jars) into ${LIB#"$ROOT"/} in $(elapsed "$start")s"
}

# write_config PORT CONTROLLER_PORT DIR: a single-node combined broker+controller config in DIR.
write_config() {
  cat >"$3/server.properties" <<EOF
# Written by include/devstack/kafka.sh; rewritten on each start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$2
listeners=PLAINTEXT://127.0.0.1:$1,CONTROLLER://127.0.0.1:$2
advertised.listeners=PLAINTEXT://127.0.0.1:$1
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$3/data
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
}

# Sets JARGV: java with this script's JVM options (and the class-data archive once it exists).
java_argv() {
  # shellcheck disable=SC2206  # the option strings are meant to split
  JARGV=("$JAVA" $HEAP_OPTS $JVM_OPTS)
  if [[ "${KAFKA_CDS:-1}" != 0 && -f "$CDS" ]]; then JARGV+=(-XX:SharedArchiveFile="$CDS"); fi
  JARGV+=(-Dlog4j2.configurationFile="$ROOT/include/devstack/kafka/log4j2.properties" -cp "$LIB/*")
}

# format_once DIR LOG: format DIR/data with a random cluster id, unless already formatted.
format_once() {
  [[ -f "$1/data/meta.properties" ]] && return 0
  local id
  # A Kafka cluster id is 16 random bytes in URL-safe base64 without padding; one starting with '-' would
  # read as an option, so draw again.
  while id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"; [[ "$id" == -* ]]; do :; done
  java_argv
  "${JARGV[@]}" kafka.tools.StorageTool format -t "$id" -c "$1/server.properties" >>"$2" 2>&1 ||
    { tail -n 20 "$2" >&2; die "formatting $1/data failed (log above: $2)"; }
}

# A real Metadata request (confluent_kafka, from the project's venv or KAFKA_PYTHON), answered with this
# broker listed. Exit 0 ready, 2 the JVM died, 1 timed out, 3 no confluent_kafka to ask with.
READY_PY='
import sys, time
port, pid, deadline = int(sys.argv[1]), int(sys.argv[2]), time.monotonic() + float(sys.argv[3])

def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[-1][0] != "Z"
    except FileNotFoundError:
        return False

try:
    from confluent_kafka.admin import AdminClient
except ImportError:
    sys.exit(3)
admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0, "reconnect.backoff.max.ms": 200})

def brokers():
    return len(admin.list_topics(timeout=2).brokers)

while time.monotonic() < deadline:
    if not alive():
        sys.exit(2)
    try:
        if brokers() > 0:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
sys.exit(1)
'
wait_ready() { "$(python_bin)" -c "$READY_PY" "$1" "$2" "$3"; }

# stop_pid PID: SIGTERM, wait up to 20 s, then SIGKILL. Prints "term" or "kill".
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$1" 2>/dev/null || { echo term; return 0; }
    sleep 0.2
  done
  kill -KILL "$1" 2>/dev/null || true
  echo kill
}

# One throw-away broker started with -XX:ArchiveClassesAtExit and stopped with SIGTERM: the JVM writes the
# classes it loaded to $CDS, and later brokers (kafka.sh and tests/kafka_cluster.py) map them instead of
# loading and verifying ~9,000 classes from the jars. Failure only costs the speed-up.
build_cds() {
  [[ "${KAFKA_CDS:-1}" == 0 || -f "$CDS" ]] && return 0
  local t0 dir port cport pid how
  t0="$(now)"; dir="$(mktemp -d "$RUN/cds-train.XXXXXX")"
  port="$(free_port)"; cport="$(free_port)"
  [[ "$port" != "$cport" ]] || cport="$(free_port)"
  write_config "$port" "$cport" "$dir"
  format_once "$dir" "$dir/broker.log"
  java_argv
  setsid "${JARGV[@]}" -XX:ArchiveClassesAtExit="$dir/classes.jsa" kafka.Kafka "$dir/server.properties" \
    >>"$dir/broker.log" 2>&1 </dev/null &
  pid=$!
  # shellcheck disable=SC2064  # expand now: the trap must kill this pid
  trap "kill -KILL $pid 2>/dev/null || true" EXIT
  if wait_ready "$port" "$pid" "${KAFKA_READY_TIMEOUT:-60}"; then
    how="$(stop_pid "$pid")"
    wait "$pid" 2>/dev/null || true
    if [[ "$how" == term && -s "$dir/classes.jsa" ]]; then
      mv "$dir/classes.jsa" "$CDS"
      say "built class-data archive ${CDS#"$ROOT"/} in $(elapsed "$t0")s"
    else
      say "class-data archive not written (broker did not exit cleanly); brokers start without it"
    fi
  else
    kill -KILL "$pid" 2>/dev/null || true
    say "class-data archive skipped: training broker not ready ($(tail -n 1 "$dir/broker.log")); brokers start without it"
  fi
  trap - EXIT
  rm -rf "$dir"
}

# fetch [quiet]: jars, then the class-data archive; quiet says nothing when both are already there.
fetch() {
  exec 9>"$RUN/fetch.lock"
  flock 9
  local had=0; if [[ -d "$LIB" ]]; then had=1; fi
  fetch_jars
  check_java
  if [[ "$had" == 1 && "${1:-}" != quiet && ( "${KAFKA_CDS:-1}" == 0 || -f "$CDS" ) ]]; then
    say "Kafka $VERSION jars already in ${LIB#"$ROOT"/}"
  fi
  build_cds
  exec 9>&-
}

start() {
  local pid
  if pid="$(our_pid)"; then say "already running on 127.0.0.1:$PORT (pid $pid)"; return 0; fi
  if listening "$PORT"; then say "127.0.0.1:$PORT already answers; not starting another broker"; return 0; fi
  fetch quiet
  local t0 cport; t0="$(now)"
  mkdir -p "$NODE"
  if [[ -n "${KAFKA_CONTROLLER_PORT:-}" ]]; then cport="$KAFKA_CONTROLLER_PORT"
  elif [[ -f "$NODE/controller.port" ]]; then cport="$(cat "$NODE/controller.port")"
  else cport=$((PORT + 1000)); if ((cport > 65535)) || listening "$cport"; then cport="$(free_port)"; fi
  fi
  echo "$cport" >"$NODE/controller.port"
  listening "$cport" && die "controller port 127.0.0.1:$cport is taken (set KAFKA_CONTROLLER_PORT or remove $NODE/controller.port)"
  write_config "$PORT" "$cport" "$NODE"
  [[ -f "$NODE/data/meta.properties" ]] || { format_once "$NODE" "$LOG"; say "formatted ${NODE#"$ROOT"/}/data"; }
  echo "=== start $(date -Is) ===" >>"$LOG"
  java_argv
  setsid "${JARGV[@]}" kafka.Kafka "$NODE/server.properties" >>"$LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  local rc=0
  wait_ready "$PORT" "$pid" "${KAFKA_READY_TIMEOUT:-60}" || rc=$?
  case "$rc" in
    0) say "Kafka $VERSION ready on 127.0.0.1:$PORT (controller :$cport, pid $pid) in $(elapsed "$t0")s; log ${LOG#"$ROOT"/}" ;;
    2) tail -n 30 "$LOG" >&2; rm -f "$PIDFILE"; die "broker exited during startup (log tail above: $LOG)" ;;
    3) die "$(python_bin) cannot import confluent_kafka to check readiness: run 'make install' (or set KAFKA_PYTHON)" ;;
    *) tail -n 30 "$LOG" >&2
       die "broker on 127.0.0.1:$PORT not ready after ${KAFKA_READY_TIMEOUT:-60}s (pid $pid still running; log tail above: $LOG)" ;;
  esac
}

stop() {
  local pid
  if ! pid="$(our_pid)"; then rm -f "$PIDFILE"; say "no broker started by this script on port $PORT"; return 0; fi
  if [[ "$(stop_pid "$pid")" == term ]]; then say "stopped broker on 127.0.0.1:$PORT (pid $pid)"
  else say "broker on 127.0.0.1:$PORT (pid $pid) ignored SIGTERM for 20s; killed"; fi
  rm -f "$PIDFILE"
}

case "${1:-start}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 fetch|start|stop" >&2; exit 2 ;;
esac
