# A stand-in for mariadb:11.4, built from Debian's mariadb-server (10.11 in bookworm). It honours
# MARIADB_ROOT_PASSWORD (root may connect from anywhere with it) and ships a `healthcheck.sh`
# that accepts the official image's `--connect --innodb_initialized` and pings the server.
ARG DEBIAN_IMAGE=bookstore-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends mariadb-server \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/* \
 && mkdir -p /run/mysqld \
 && chown mysql:mysql /run/mysqld /var/lib/mysql
COPY mariadb-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY mariadb-healthcheck.sh /usr/local/bin/healthcheck.sh
ENV LANG=C.UTF-8
VOLUME /var/lib/mysql
EXPOSE 3306
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["mariadbd"]
