#!/usr/bin/env bash
# Make sure the local MariaDB/MySQL answers on 127.0.0.1:3306 (starts the machine's MariaDB if stopped).
set -euo pipefail
up() { (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; }
if up; then exit 0; fi
if command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]]; then
  echo "mysql: starting local MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 100); do up && exit 0; sleep 0.2; done
fi
echo "mysql: nothing answers on 127.0.0.1:3306; start MySQL 8 / MariaDB 10.6+ (root, empty password)" >&2
exit 1
