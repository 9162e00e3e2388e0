#!/usr/bin/env bash
# Shared helpers for the dev-stack scripts: port checks and installing Debian packages when absent.
# Sourced, not run. Every message names the script's component (set COMPONENT before sourcing).

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

say() { echo "${COMPONENT:-devstack}: $*"; }
die() { echo "${COMPONENT:-devstack}: $*" >&2; exit 1; }

# wait_listening PORT SECONDS: poll until something accepts connections on 127.0.0.1:PORT.
wait_listening() {
  local deadline=$((SECONDS + $2))
  until listening "$1"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# ensure_packages PKG...: install the Debian packages that are missing (root + apt-get only).
# `apt-get update` runs once per machine boot (marker in /run), since a fresh machine has no lists.
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then return 0; fi
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get here: install them yourself (see README, Quick start)"
  [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}: run as root for the automatic install, or install them yourself (see README, Quick start)"
  say "installing Debian packages: ${missing[*]} (one-time, a minute or two)"
  if [[ ! -f /run/outbox-relay-apt-updated ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
    touch /run/outbox-relay-apt-updated
  fi
  # policy-rc.d 101 keeps the packages' own init scripts from starting servers half-configured;
  # the calling script starts and configures them itself.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1; fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >/tmp/outbox-relay-apt.log 2>&1 || rc=$?
  if ((created_policy)); then rm -f "$policy"; fi
  if ((rc != 0)); then
    tail -20 /tmp/outbox-relay-apt.log >&2
    die "apt-get install ${missing[*]} failed (log: /tmp/outbox-relay-apt.log)"
  fi
}
