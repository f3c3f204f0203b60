# A stand-in for rabbitmq:3.13-management, built from Debian's rabbitmq-server (3.10 in bookworm)
# with the management plugin. The same ports, guest/guest, and `rabbitmq-diagnostics -q ping`
# answers the compose health check. Not the official image: no RABBITMQ_DEFAULT_* handling beyond
# the server's own, no clustering helpers.
ARG DEBIAN_IMAGE=bookstore-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -rf /var/lib/apt/lists/* \
 && rabbitmq-plugins enable --offline rabbitmq_management
COPY rabbitmq.conf /etc/rabbitmq/rabbitmq.conf
ENV LANG=C.UTF-8 HOME=/var/lib/rabbitmq
EXPOSE 5672 15672
# The server runs as its own user; the health check (`docker exec`) then runs as that user too
# and finds the Erlang cookie in its home.
USER rabbitmq
CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
