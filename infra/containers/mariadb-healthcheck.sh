#!/bin/sh
# The official image's health check takes options (--connect --innodb_initialized); this one
# accepts and ignores them: a ping over TCP answers once InnoDB is up and connections are taken.
exec mariadb-admin --protocol=tcp --host=127.0.0.1 --user=root \
    --password="${MARIADB_ROOT_PASSWORD}" --silent ping >/dev/null
