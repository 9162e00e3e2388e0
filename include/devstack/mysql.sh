#!/usr/bin/env bash
# Make sure a MySQL-compatible server answers on 127.0.0.1:3306 with the login the project uses
# (root, empty password, over TCP). A server that already answers is used as it is. Otherwise, on
# Debian/Ubuntu as root, MariaDB is installed when absent, started, and given that TCP login.
# The binary log is on, in row format, as on most production MySQL servers (MySQL 8 turns it on by
# default): every figure `make bench` gives includes its cost, and the Debezium peer reads it. A day's
# logs are kept.
set -euo pipefail
COMPONENT=mysql
source "$(dirname "$0")/lib.sh"
PORT=3306

if listening "$PORT"; then exit 0; fi

ensure_packages mariadb-server mariadb-client
say "starting local MariaDB"
install -d -o mysql -g mysql /run/mysqld
if [[ ! -d /var/lib/mysql/mysql ]]; then
  say "initialising the data directory"
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/tmp/outbox-relay-mariadb-init.log 2>&1 \
    || die "mariadb-install-db failed (log: /tmp/outbox-relay-mariadb-init.log)"
fi
install -d -o mysql -g mysql /var/log/mysql
start-stop-daemon --start --oknodo --background --chuid mysql --exec /usr/sbin/mariadbd -- \
  --user=mysql --bind-address=127.0.0.1 --port="$PORT" --log-error=/var/log/mysql/outbox-relay.err \
  --log-bin=outbox-relay-bin --binlog-format=ROW --binlog-row-image=FULL --server-id=1 \
  --binlog-expire-logs-seconds=86400
wait_listening "$PORT" 60 || die "MariaDB did not start listening on 127.0.0.1:$PORT (see /var/log/mysql/outbox-relay.err)"

# Debian's root logs in over the socket only; the project connects over TCP as root with no password.
# Dev machines only: this is the documented local default (override with OUTBOX_TEST_DB_URL).
mariadb --protocol=socket -uroot <<'SQL' || die "could not set up the TCP login root@127.0.0.1"
ALTER USER IF EXISTS 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
say "MariaDB ready on 127.0.0.1:$PORT (root, no password)"
