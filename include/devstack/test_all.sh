#!/usr/bin/env bash
# `make test`: the static checks (ruff, import contracts, mypy) and, on Apache Kafka, the relay contract
# on Tansu run beside the main suite instead of before and after it; their output follows the suite's.
# Exit status: non-zero if any of the three failed.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
mkdir -p .run
PY=.venv/bin/python

make --no-print-directory lint typecheck >.run/test-checks.log 2>&1 &
checks=$!
tansu=""
if [[ "${BROKER:-kafka}" == kafka ]]; then
  make --no-print-directory test-tansu >.run/test-tansu.log 2>&1 &
  tansu=$!
fi

"$PY" -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-4}" --dist loadgroup --durations=40 --durations-min=10 "$@"
suite=$?

wait "$checks"; checked=$?
echo; echo "--- static checks (ruff, import contracts, mypy): exit $checked"; cat .run/test-checks.log
smoke=0
if [[ -n "$tansu" ]]; then
  wait "$tansu"; smoke=$?
  echo; echo "--- relay contract on Tansu: exit $smoke"; tail -5 .run/test-tansu.log
  [[ $smoke == 0 ]] || cat .run/test-tansu.log
fi
(( suite == 0 && checked == 0 && smoke == 0 ))
