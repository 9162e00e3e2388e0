#!/usr/bin/env bash
# Make sure Redis answers on 127.0.0.1:6379, the Celery broker of the CeleryExecutor runs (tests and
# `docker compose --profile celery` use their own). A server that already answers is used as it is.
# Otherwise, on Debian/Ubuntu as root, redis-server is installed when absent and started in the
# background, bound to loopback, without persistence (it only carries task messages).
set -euo pipefail
COMPONENT=redis
source "$(dirname "$0")/lib.sh"
PORT="${REDIS_PORT:-6379}"

if listening "$PORT"; then exit 0; fi

ensure_packages redis-server
command -v redis-server >/dev/null || die "redis-server not found after install"
DIR="${REDIS_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/.run/redis}"
mkdir -p "$DIR"
say "starting Redis on 127.0.0.1:$PORT (log $DIR/redis.log)"
redis-server --port "$PORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
  --dir "$DIR" --logfile "$DIR/redis.log" --pidfile "$DIR/redis.pid"
wait_listening "$PORT" 30 || die "Redis did not start listening on 127.0.0.1:$PORT (see $DIR/redis.log)"
say "Redis ready on 127.0.0.1:$PORT"
