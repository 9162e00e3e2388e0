#!/usr/bin/env bash
# `make demo [SCENARIO=<name>]`: runs include/outbox_examples/<name>/demo.sh (default order_inventory).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SCENARIO="${1:-order_inventory}"
available="$(cd "$ROOT/include/outbox_examples" && ls -d */ | tr -d / | while read -r d; do
  [[ -f "$d/demo.sh" ]] && printf '%s ' "$d"; done)"
if [[ ! "$SCENARIO" =~ ^[a-z_]+$ || ! -f "$ROOT/include/outbox_examples/$SCENARIO/demo.sh" ]]; then
  echo "unknown SCENARIO '$SCENARIO' (available: ${available% })" >&2; exit 2
fi
exec bash "$ROOT/include/outbox_examples/$SCENARIO/demo.sh"
