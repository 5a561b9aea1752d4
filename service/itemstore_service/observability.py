"""Logs, request ids and Prometheus metrics.

* ``configure_logging(level)``: one JSON object per line on stderr.
* ``observability_middleware(access_log=...)``: the OUTERMOST middleware. It
  takes the request id from ``X-Request-ID`` (or makes one), returns it in the
  response header, counts and times every request by route template and final
  status, and writes one access-log line per request when asked to.
* Metric objects (``REQUESTS``, ``BATCH_SIZE``, ``UNPROCESSED_RETRIES`` ...) that
  the store and backends update, and ``InstrumentedBackend``, which times every
  backend call and counts its errors without the backend knowing.

Several worker processes (``--workers N``) use prometheus-client's multiprocess
mode: ``prepare_multiprocess_metrics()`` (called once by the parent before the
workers start) points every process at one directory of value files, and any
worker's ``/metrics`` answers the sum over all of them. Every metric here has
labels, so no value exists before that call and the switch takes effect.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any, Final

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from .backends.base import Backend, ConditionFailed, ItemKey, Listed, Record

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
REQUEST_ID_HEADER: Final = "X-Request-ID"
UNMATCHED_ROUTE: Final = "unmatched"
_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})
_CLIENT_CLOSED: Final = 499  # the client went away before the answer (nginx's convention)

# -- metrics ---------------------------------------------------------------

# fmt: off
_LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)
# fmt: on
_SIZE_BUCKETS: Final = (1, 2, 3, 5, 10, 25, 50, 100, 250, 500, 1000)

REQUESTS: Final = Counter(
    "itemstore_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
REQUEST_LATENCY: Final = Histogram(
    "itemstore_http_request_duration_seconds",
    "Time from request to answer, by method and route template.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
IN_FLIGHT: Final = Gauge(
    "itemstore_http_requests_in_flight",
    "Requests being handled now, by route template.",
    ["route"],
    multiprocess_mode="livesum",
)
BACKEND_LATENCY: Final = Histogram(
    "itemstore_backend_call_duration_seconds",
    "Duration of backend calls, by backend and operation.",
    ["backend", "op"],
    buckets=_LATENCY_BUCKETS,
)
BACKEND_ERRORS: Final = Counter(
    "itemstore_backend_errors",
    "Backend calls that raised (failed conditions excluded), by error class.",
    ["backend", "op", "error"],
)
BATCH_SIZE: Final = Histogram(
    "itemstore_batch_size",
    "Items per backend call: kind=read (get_many) or write (write_many).",
    ["kind"],
    buckets=_SIZE_BUCKETS,
)
UNPROCESSED_RETRIES: Final = Counter(
    "itemstore_unprocessed_retries",
    "Re-sent UnprocessedItems/UnprocessedKeys, by kind (read|write), counted in items.",
    ["kind"],
)


def prepare_multiprocess_metrics() -> str:
    """Switch this process (and the workers it starts afterwards) to
    multiprocess metrics; call once in the parent before any worker starts.

    Uses ``$PROMETHEUS_MULTIPROC_DIR`` when set (emptied first: values left
    by an earlier run would be added to this one's), else a fresh temporary
    directory that is removed when the parent exits. Returns the directory.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.remove(os.path.join(path, name))
    else:
        path = tempfile.mkdtemp(prefix="itemstore-metrics-")
        os.environ[MULTIPROC_ENV] = path
        atexit.register(_remove_dir, path, os.getpid())
    # prometheus-client picks its value class when first imported; pick again
    # now that the directory is set, so values created from here on are shared.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return path


def _remove_dir(path: str, owner: int) -> None:
    if os.getpid() == owner:  # forked workers inherit atexit hooks; only the parent cleans
        shutil.rmtree(path, ignore_errors=True)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def render_metrics() -> bytes:
    """Every metric in the Prometheus text format (summed over all workers
    in multiprocess mode)."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def mark_process_dead(pid: int | None = None) -> None:
    """Drop a finished worker's live gauges (in-flight requests)."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(os.getpid() if pid is None else pid)  # type: ignore[no-untyped-call]


# -- logging ---------------------------------------------------------------

REQUEST_ID: Final[contextvars.ContextVar[str | None]] = contextvars.ContextVar(
    "itemstore_request_id", default=None
)
ACCESS_LOGGER: Final = logging.getLogger("itemstore.access")

# Attributes every LogRecord has; anything else came in through ``extra=``.
_BLANK_RECORD: Final = logging.LogRecord("", 0, "", 0, "", None, None)
_RECORD_FIELDS: Final = frozenset(_BLANK_RECORD.__dict__) | {"message", "asctime", "taskName"}
_BEARER: Final = re.compile(r"(?i)\bbearer\s+\S+")


def _mask(text: str) -> str:
    return _BEARER.sub("Bearer [redacted]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, request_id (inside
    a request), the record's ``extra`` fields and the exception if any.
    Anything looking like a bearer token is masked."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _mask(record.getMessage()),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            doc["request_id"] = request_id
        for name, value in record.__dict__.items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                doc[name] = (
                    _BEARER.sub("Bearer [redacted]", value) if isinstance(value, str) else value
                )
        if record.exc_info:
            doc["exc"] = _mask(self.formatException(record.exc_info))
        return orjson.dumps(doc, default=str).decode()


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs a request it cannot parse at error level, with the
    offending bytes (which may hold a token or a value): that is the client's
    mistake, so it becomes one info line naming only the kind of error."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.name == "aiohttp.server" and isinstance(error, HttpProcessingError):
            record.msg = f"refused a malformed HTTP request: {type(error).__name__}"
            record.args, record.exc_info, record.exc_text = None, None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger().isEnabledFor(logging.INFO)
        return True


def configure_logging(level: str, stream: IO[str] | None = None) -> None:
    """Send every log record, as JSON lines, to ``stream`` (stderr by default)
    at ``level`` (debug, info, warning, error, critical; any case). Debug is
    for itemstore's own loggers only: the libraries' debug output (botocore's
    above all) holds request bodies, item values and credentials."""
    levels = logging.getLevelNamesMapping()
    if level.upper() not in levels:
        raise ValueError(f"unknown log level {level!r}; use one of debug, info, warning, error")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(MalformedRequestFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(levels[level.upper()], logging.INFO))
    logging.getLogger("itemstore").setLevel(levels[level.upper()])


# -- the middleware ----------------------------------------------------------

_REQUEST_ID_OK: Final = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is a short token, else a fresh one
    (an id is echoed in headers and logs, so nothing else is accepted)."""
    if header is not None and _REQUEST_ID_OK.fullmatch(header):
        return header
    return os.urandom(16).hex()


def route_label(request: web.Request) -> str:
    """The matched route's template (``/collections/{name}/items/{key}``),
    never the raw path, so the label set stays small."""
    resource = request.match_info.route.resource
    return UNMATCHED_ROUTE if resource is None else resource.canonical


# labels() costs a lock and a few allocations per call: look each child up once.
@functools.cache
def _route_metrics(method: str, route: str) -> tuple[Gauge, Histogram]:
    return IN_FLIGHT.labels(route=route), REQUEST_LATENCY.labels(method=method, route=route)


@functools.cache
def _request_counter(method: str, route: str, status: int) -> Counter:
    return REQUESTS.labels(method=method, route=route, status=str(status))


def observability_middleware(*, access_log: bool = False) -> Middleware:
    """The outermost middleware: request id, metrics and (when ``access_log``)
    one ``itemstore.access`` log line per request with method, route, path,
    status and duration; never headers, query strings or bodies."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        token = REQUEST_ID.set(request_id)
        method = request.method if request.method in _METHODS else "other"
        route = route_label(request)
        in_flight, latency = _route_metrics(method, route)
        in_flight.inc()
        status = 500
        start = time.perf_counter()
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = request_id
            raise
        except asyncio.CancelledError:
            status = _CLIENT_CLOSED
            raise
        finally:
            elapsed = time.perf_counter() - start
            in_flight.dec()
            _request_counter(method, route, status).inc()
            latency.observe(elapsed)
            if access_log:
                ACCESS_LOGGER.info(
                    "%s %s %d",
                    request.method,
                    request.path,
                    status,
                    extra={
                        "method": request.method,
                        "route": route,
                        "path": request.path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "remote": request.remote,
                    },
                )
            REQUEST_ID.reset(token)

    return middleware


# -- backend instrumentation -------------------------------------------------


@contextmanager
def backend_call(backend: str, op: str) -> Iterator[None]:
    """Time one backend call and count it as an error when it raises
    (a failed condition is an answer, not an error)."""
    start = time.perf_counter()
    try:
        yield
    except ConditionFailed:
        raise
    except Exception as exc:
        BACKEND_ERRORS.labels(backend=backend, op=op, error=type(exc).__name__).inc()
        raise
    finally:
        BACKEND_LATENCY.labels(backend=backend, op=op).observe(time.perf_counter() - start)


class InstrumentedBackend:
    """A ``Backend`` that forwards every call to ``inner`` and records its
    latency, errors and (for get_many / write_many) batch size."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name

    async def get_many(self, keys: Sequence[ItemKey], *, consistent: bool) -> dict[ItemKey, Record]:
        BATCH_SIZE.labels(kind="read").observe(len(keys))
        with backend_call(self.name, "get_many"):
            return await self.inner.get_many(keys, consistent=consistent)

    async def write_many(
        self, puts: Mapping[ItemKey, Record], deletes: Sequence[ItemKey]
    ) -> dict[ItemKey, Record]:
        BATCH_SIZE.labels(kind="write").observe(len(puts) + len(deletes))
        with backend_call(self.name, "write_many"):
            return await self.inner.write_many(puts, deletes)

    async def put_if(self, key: ItemKey, record: Record, *, expected: str | None) -> Record | None:
        with backend_call(self.name, "put_if"):
            return await self.inner.put_if(key, record, expected=expected)

    async def delete_if(self, key: ItemKey, *, expected: str) -> Record:
        with backend_call(self.name, "delete_if"):
            return await self.inner.delete_if(key, expected=expected)

    async def query(
        self, collection: str, *, after: str | None, prefix: str, limit: int, keys_only: bool
    ) -> list[Listed]:
        with backend_call(self.name, "query"):
            return await self.inner.query(
                collection, after=after, prefix=prefix, limit=limit, keys_only=keys_only
            )

    async def count(self, collection: str) -> int:
        with backend_call(self.name, "count"):
            return await self.inner.count(collection)

    async def delete_collection(self, collection: str) -> int:
        with backend_call(self.name, "delete_collection"):
            return await self.inner.delete_collection(collection)

    async def list_collections(self, *, after: str | None, limit: int) -> list[str]:
        with backend_call(self.name, "list_collections"):
            return await self.inner.list_collections(after=after, limit=limit)

    async def ping(self) -> None:
        with backend_call(self.name, "ping"):
            await self.inner.ping()
