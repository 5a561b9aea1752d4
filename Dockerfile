# itemstore service image: `docker build -t itemstore .`
# Stage 1 builds a virtualenv with the server extra; stage 2 carries only that
# virtualenv onto a clean slim base and runs as an unprivileged user.

FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# The package index pip uses, for a machine that must use its own mirror:
# docker build --build-arg PIP_INDEX_URL=... (unset: pip's default index).
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL

WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY pyproject.toml README.md openapi.yaml ./
COPY client ./client
COPY service ./service
COPY wire ./wire
RUN pip install --no-cache-dir "./[server]"


FROM python:3.11-slim-bookworm

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ITEMSTORE_HOST=0.0.0.0 \
    ITEMSTORE_PORT=8080 \
    ITEMSTORE_SQLITE_PATH=/data/itemstore.sqlite3

RUN groupadd --system --gid 10001 itemstore \
    && useradd --system --uid 10001 --gid itemstore --home-dir /data --create-home itemstore

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
WORKDIR /data
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ITEMSTORE_PORT', '8080') + '/healthz', timeout=2)"]

# SIGTERM reaches the server directly (exec form, no shell): it stops taking
# connections, finishes in-flight requests, flushes pending writes, then exits.
STOPSIGNAL SIGTERM
CMD ["itemstore", "serve"]
