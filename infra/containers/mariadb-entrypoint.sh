#!/bin/sh
# First start: create the system tables. Every start: give root MARIADB_ROOT_PASSWORD, from
# anywhere (an init file the server runs before it accepts connections; idempotent).
set -eu
: "${MARIADB_ROOT_PASSWORD:?set MARIADB_ROOT_PASSWORD}"
if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db \
        --auth-root-authentication-method=normal >/dev/null
fi
init=/run/mysqld/init.sql
cat > "$init" <<SQL
CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '${MARIADB_ROOT_PASSWORD}';
ALTER USER 'root'@'%' IDENTIFIED BY '${MARIADB_ROOT_PASSWORD}';
ALTER USER 'root'@'localhost' IDENTIFIED BY '${MARIADB_ROOT_PASSWORD}';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
chown mysql:mysql "$init"
exec "$@" --user=mysql --bind-address=0.0.0.0 --skip-name-resolve --init-file="$init"
