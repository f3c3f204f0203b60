# A stand-in for prom/prometheus:v2.55.1, built from Debian's prometheus (2.42 in bookworm). The
# same entry point, default command, user and paths as the official image, plus the `wget` the
# compose health check calls.
ARG DEBIAN_IMAGE=bookstore-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus \
 && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
