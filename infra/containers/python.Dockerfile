# A stand-in for python:3.11-slim-bookworm, built from Debian's own packages (docs/containers.md):
# Debian bookworm's Python 3.11 in a virtual environment at /usr/local/python, first on PATH, so
# `python` and `pip` mean what they mean in the official image. The project's Dockerfile builds on
# it with `--build-arg BASE_IMAGE=bookstore-local/python:3.11-bookworm`.
ARG DEBIAN_IMAGE=bookstore-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
CMD ["python3"]
