"""Probes and metrics: ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.

* ``/healthz`` (liveness): 200 while the process answers at all.
* ``/readyz`` (readiness): 200 when the backend's ``ping()`` answers within
  ``ping_timeout`` seconds; a 503 problem otherwise (also while the circuit
  breaker is open: the ping goes through it and is refused), and a 503
  ``shutting-down`` problem from the moment the app begins to shut down, so
  load balancers stop sending traffic while in-flight requests finish.
* ``/metrics``: Prometheus text format (summed over all worker processes).

``/healthz`` and ``/readyz`` need no token and say nothing about storage
beyond up or down; ``/metrics`` needs an admin key, or the ``--metrics-port``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .appkeys import STORE
from .errors import BackendUnavailable, ItemstoreError, ShuttingDown
from .observability.metrics import mark_process_dead, render_metrics
from .observability.request_metrics import REQUEST_METRICS

PING_TIMEOUT: Final = 1.0

log = logging.getLogger("itemstore.health")


@dataclass(slots=True)
class HealthState:
    """Mutable on purpose: app state cannot be reassigned once the app runs."""

    ping_timeout: float = PING_TIMEOUT
    shutting_down: bool = False


HEALTH = web.AppKey("health", HealthState)


def add_health_routes(app: web.Application, *, ping_timeout: float = PING_TIMEOUT) -> None:
    """Add the three routes, the shutdown flag and the metrics clean-up to ``app``."""
    app[HEALTH] = HealthState(ping_timeout=ping_timeout)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.on_shutdown.append(_mark_shutting_down)
    app.on_cleanup.append(_drop_live_metrics)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[HEALTH]
    if state.shutting_down:
        raise ShuttingDown("this instance is shutting down; send requests to another one")
    store = request.app.get(STORE)
    if store is None:
        raise BackendUnavailable("the backend is not open yet; retry shortly")
    backend = store.backend
    retry_after: int | None = None
    try:
        async with asyncio.timeout(state.ping_timeout):
            await backend.ping()
    except TimeoutError:
        raise BackendUnavailable(
            f"the {backend.name} backend did not answer within {state.ping_timeout:g} s"
        ) from None
    except ItemstoreError as error:  # the breaker's Retry-After is kept
        reason, retry_after = error.detail, error.retry_after
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
    else:
        return web.json_response({"status": "ready", "backend": backend.name})
    # Anyone may ask: the storage's own words (a table name, a path) stay in the log.
    log.warning("not ready: the %s backend failed its ping: %s", backend.name, reason)
    raise BackendUnavailable(
        f"the {backend.name} backend failed its check; the cause is in the server log",
        retry_after=retry_after,
    )


async def metrics(request: web.Request) -> web.Response:
    request.app[REQUEST_METRICS].flush()  # this worker's latest answers too
    return web.Response(body=render_metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _mark_shutting_down(app: web.Application) -> None:
    app[HEALTH].shutting_down = True


async def _drop_live_metrics(app: web.Application) -> None:
    mark_process_dead()
