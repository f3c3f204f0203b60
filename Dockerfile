# One image for every bookstore process; the command chooses which one runs:
#   python -m bookstore.services.<user|catalog|inventory|payment|order>     gRPC on BOOKSTORE_PORT
#   python -m bookstore.gateway                                             HTTP on BOOKSTORE_PORT
#   python -m bookstore.messaging.consumers.<notification|analytics|inventory_sync>
#   python -m bookstore.platform.healthcheck [--http /healthz]              the container health check
# Build: docker build -t bookstore:dev .   (docker compose builds it for you)
# Offline (no registry, no index; docs/containers.md): a base built from Debian packages and the
# wheels downloaded beforehand into wheelhouse/, e.g.
#   docker build --network none --build-arg BASE_IMAGE=bookstore-local/python:3.11-bookworm \
#     --build-arg PIP_INSTALL_OPTIONS="--no-index --find-links /tmp/build --ignore-requires-python" \
#     -t bookstore-local/bookstore:dev .
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    BOOKSTORE_HOST=0.0.0.0 \
    BOOKSTORE_WORK_DIR=/data

WORKDIR /app

# The runtime dependencies ([project] dependencies of pyproject.toml, not the dev tools) at the
# versions requirements.txt pins, in a layer of their own: a code change does not reinstall them.
# wheelhous[e]: the folder when it exists (an offline build's wheels), nothing otherwise.
ARG PIP_INSTALL_OPTIONS=""
COPY requirements.txt pyproject.toml wheelhous[e] /tmp/build/
RUN cd /tmp/build \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/runtime.txt \
 && pip install ${PIP_INSTALL_OPTIONS} --constraint requirements.txt --requirement /tmp/runtime.txt \
 && cd /app && rm -rf /tmp/runtime.txt /tmp/build

# The code itself: imported from /app (PYTHONPATH), no build step.
COPY bookstore ./bookstore

# Not root: the SQLite fallback and logs go to /data, the only place it may write.
RUN useradd --system --uid 10001 --home-dir /data --create-home bookstore
USER 10001

EXPOSE 50051 8000 9464
CMD ["python", "-m", "bookstore.gateway"]
