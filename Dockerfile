# The assistd server image: one image for the API and the run worker; the command picks.
#
#   docker build -t assistd .
#   docker run ... assistd assistd serve --no-worker    (the default command: the API only)
#   docker run ... assistd assistd worker               (runs; give it the Docker socket)
#   docker run ... assistd assistd migrate              (one-shot, before the others)
#
# BASE is any Debian-like image with Python 3.11 (and, unless deploy/wheelhouse/ has the wheels,
# pip): a registry image by default, or on machines with no registry a local one, such as
# assistd-sandbox-base:bookworm (sandbox-image/make-base.sh) or the much smaller
# assistd-base:bookworm (deploy/make-base.sh). Python packages come from PyPI, or with no index
# from the wheels that deploy/wheelhouse.sh put in deploy/wheelhouse/ (for builds that have no
# network of their own).
#
# Without ASSISTD_DATABASE_URL, `assistd serve` starts its embedded Postgres under
# /var/lib/assistd (a volume there keeps it): one container is then a whole server.
ARG BASE=python:3.11-slim-bookworm

# --- dependencies: a virtualenv with everything pyproject.toml needs, but not assistd itself,
# so this layer is rebuilt only when pyproject.toml (or the wheelhouse) changes.
FROM ${BASE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
COPY deploy/wheelhouse/ /wheels/
COPY pyproject.toml /src/pyproject.toml
RUN set -eu; \
    if ls /wheels/*.whl >/dev/null 2>&1; then \
      python3 -m venv --without-pip /opt/assistd; \
      pip_wheel=$(ls /wheels/pip-*.whl | sort -V | tail -n1); \
      /opt/assistd/bin/python "$pip_wheel/pip" install --no-index --find-links /wheels pip; \
      echo "--no-index --find-links /wheels" >/wheels/pip-options; \
    else \
      python3 -m venv /opt/assistd; \
      : >/wheels/pip-options; \
    fi; \
    /opt/assistd/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' >/src/requirements.txt; \
    /opt/assistd/bin/pip install $(cat /wheels/pip-options) -r /src/requirements.txt

# --- the assistd wheel, built from the sources (hatchling comes from the same place).
FROM deps AS wheel
COPY README.md alembic.ini /src/
COPY migrations/ /src/migrations/
COPY sandbox-image/ /src/sandbox-image/
COPY src/ /src/src/
RUN /opt/assistd/bin/pip wheel $(cat /wheels/pip-options) --no-deps --wheel-dir /dist /src

# --- the runtime image: the dependencies' layer, then assistd's own small layer.
FROM ${BASE}
RUN groupadd --gid 10001 assistd \
    && useradd --uid 10001 --gid 10001 --home-dir /var/lib/assistd --no-create-home \
       --shell /usr/sbin/nologin assistd \
    && mkdir -p /var/lib/assistd/files \
    && chown -R assistd:assistd /var/lib/assistd
COPY --from=deps /opt/assistd /opt/assistd
COPY --from=wheel /dist/ /tmp/dist/
RUN /opt/assistd/bin/pip install --no-cache-dir --no-index --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && /opt/assistd/bin/assistd --help >/dev/null
ENV PATH=/opt/assistd/bin:$PATH \
    VIRTUAL_ENV=/opt/assistd \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/assistd \
    ASSISTD_DATA_DIR=/var/lib/assistd \
    ASSISTD_STORAGE__DIR=/var/lib/assistd/files \
    ASSISTD_HOST=0.0.0.0 \
    ASSISTD_PORT=8000
USER assistd
WORKDIR /var/lib/assistd
EXPOSE 8000
# Liveness of the API (the worker has no HTTP port: compose disables this check for it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('ASSISTD_PORT', '8000'), timeout=2)"]
LABEL org.opencontainers.image.title="assistd" \
      org.opencontainers.image.description="A self-hosted server for the OpenAI Assistants API (v2)"
CMD ["assistd", "serve", "--no-worker"]
