#!/usr/bin/env bash
# Debian's chromium and its driver, for the browser test of the Outbox page (selenium drives them).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
COMPONENT=chromium
source "$ROOT/include/devstack/lib.sh"
ensure_packages chromium chromium-driver
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || die "chromium or chromedriver missing after the install"
