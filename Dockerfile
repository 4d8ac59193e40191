# syntax=docker/dockerfile:1
# One image for every service: `vaksin service <name>` (compose `command`, Kubernetes `args`),
# `vaksin migrate` for the migration job. Build from the repository root:
#   docker build -t vaksin-nakes:local .
# The build stage installs the package into a virtualenv; the runtime stage copies only that
# virtualenv onto a fresh slim base, so no compiler, pip cache or source tree ships.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# What `pip install .` reads: the project metadata (readme and license files included) and the code.
COPY pyproject.toml README.md LICENSE ./
COPY services ./services
# The desk app's and the console's browser libraries, pinned by their lockfiles
# (services/ticketing/desk_web.py, services/console/web.py); npm stays in this stage.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends npm \
    && npm ci --prefix services/ticketing/desk --omit=dev --no-audit --no-fund \
    && npm ci --prefix services/console/static --omit=dev --no-audit --no-fund \
    && rm -rf /var/lib/apt/lists/*
RUN /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip uninstall --yes pip \
    && /opt/venv/bin/python -m compileall -q /opt/venv

FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it without a passwd lookup.
RUN groupadd --system --gid 10001 vaksin \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin vaksin
COPY --from=build /opt/venv /opt/venv
# DATA_DIR is the only place a service writes (a generated-secrets file when a secret is missing);
# it lives under /tmp, which compose and Kubernetes mount as tmpfs / emptyDir over a read-only root.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/tmp/vaksin \
    LOG_JSON=true
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["vaksin"]
CMD ["--help"]
