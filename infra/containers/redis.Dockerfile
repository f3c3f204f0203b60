# A stand-in for redis:7.4-alpine, built from Debian's redis-server (7.0 in bookworm). Reserved in
# the compose stack (nothing uses it yet); `redis-cli ping` answers its health check.
ARG DEBIAN_IMAGE=bookstore-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
USER redis
WORKDIR /var/lib/redis
EXPOSE 6379
# Other containers reach it: listen on every interface, without protected mode (no password).
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", ""]
