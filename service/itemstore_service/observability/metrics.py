"""Prometheus metrics: the metric objects, multiprocess mode and rendering.

Several worker processes (``--workers N``) use prometheus-client's multiprocess
mode: ``prepare_multiprocess_metrics()`` (called once by the parent before the
workers start) points every process at one directory of value files, and any
worker's ``/metrics`` answers the sum over all of them. Every metric here has
labels, so no value exists before that call and the switch takes effect.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Final

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

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

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
KEY_REQUESTS: Final = Counter(
    "itemstore_key_requests",
    "Requests sent with a token, by access key id (bootstrap: the service token)"
    " and status class (2xx, 4xx ...).",
    ["key", "status"],
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

# Fail fast: refusals, expired deadlines and the circuit breaker.
REQUESTS_REFUSED: Final = Counter(
    "itemstore_requests_refused",
    "Requests answered 503 overloaded, by what was full: in-flight, read-queue, write-queue"
    " or update-queue.",
    ["reason"],
)
DEADLINES_EXPIRED: Final = Counter(
    "itemstore_deadlines_expired",
    "Data requests answered 503 at their deadline, by kind:"
    " read, write-not-applied or write-maybe-applied.",
    ["kind"],
)
BREAKER_OPEN: Final = Gauge(
    "itemstore_breaker_open",
    "Workers whose circuit breaker around the backend is open (refusing requests).",
    ["backend"],
    multiprocess_mode="livesum",
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
