#!/usr/bin/env bash
# Kafka Connect (standalone) with the Debezium MySQL connector, for the Debezium peer of `make bench`
# (tests/benchmarks/debezium.py starts and stops the worker). `debezium.sh install` resolves both from
# Maven Central into .run/debezium (once; Maven's local repository caches the jars) and prints that folder.
# Versions and why: debezium/*.pom.xml.
set -euo pipefail
COMPONENT=debezium
source "$(dirname "$0")/lib.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DEST="${DEBEZIUM_HOME:-$ROOT/.run/debezium}"

resolve() {  # resolve POM FOLDER: the POM's dependencies, with theirs, as jars in FOLDER
  local pom=$1 folder=$2
  if [[ -f $folder/.resolved ]] && cmp -s "$pom" "$folder/.resolved"; then return 0; fi
  command -v mvn >/dev/null 2>&1 || die "Maven (mvn) is needed to fetch Kafka Connect and Debezium"
  rm -rf "$folder" && mkdir -p "$folder"
  say "resolving $(basename "$pom" .pom.xml) from Maven Central"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$folder" -DincludeScope=runtime \
    >"$DEST/maven.log" 2>&1 || { tail -20 "$DEST/maven.log" >&2; die "Maven could not resolve $pom (log: $DEST/maven.log)"; }
  cp "$pom" "$folder/.resolved"
}

case "${1:-install}" in
  install)
    command -v java >/dev/null 2>&1 || die "a JDK 17+ is needed for Kafka Connect"
    mkdir -p "$DEST"
    resolve "$HERE/debezium/connect.pom.xml" "$DEST/lib"
    resolve "$HERE/debezium/connector.pom.xml" "$DEST/plugins/debezium-mysql"
    echo "$DEST"
    ;;
  *) die "usage: debezium.sh install" ;;
esac
