"""Admission control: a worker takes at most ``max_inflight`` requests at once.

Past the bound a new request is answered at once with 503 ``overloaded`` and
``Retry-After: 1``, before its body is read (aiohttp reads a body only when a
handler asks for it), so an overloaded worker spends next to nothing on the
requests it refuses and keeps its latency for the ones it took. Probes
(``/healthz``, ``/readyz``, ``/metrics``) are never refused: an overloaded
worker is alive and ready.

The batch queues behind the store are bounded as well (``Store(max_queued=)``);
``queue_bound`` is the bound the app gives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .errors import Overloaded
from .observability.metrics import REQUESTS_REFUSED

PROBES: Final = frozenset({"/healthz", "/readyz", "/metrics"})
MIN_QUEUED_OPS: Final = 1024


def queue_bound(max_inflight: int, max_batch_ops: int) -> int:
    """Operations a batch queue may hold: every request in flight with a full
    batch of ops, and never fewer than MIN_QUEUED_OPS. Past it, something
    queues ops that no request in flight waits for: a bug, refused early."""
    return max(MIN_QUEUED_OPS, max_inflight * max_batch_ops)


@dataclass(slots=True)
class Admission:
    """A worker's requests in flight and its bound. Mutable on purpose: app
    state cannot be reassigned once the app runs."""

    max_inflight: int
    inflight: int = 0


ADMISSION = web.AppKey("admission", Admission)


def admission_middleware(admission: Admission) -> Middleware:
    """Refuse a request with Overloaded while ``admission.max_inflight``
    requests (probes excepted) are being handled by this worker."""
    refused = REQUESTS_REFUSED.labels(reason="in-flight")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PROBES:
            return await handler(request)
        if admission.inflight >= admission.max_inflight:
            refused.inc()
            raise Overloaded(
                f"this worker is handling {admission.inflight} requests, its limit;"
                " retry after a second; the request was not applied"
            )
        admission.inflight += 1
        try:
            return await handler(request)
        finally:
            admission.inflight -= 1

    return middleware
