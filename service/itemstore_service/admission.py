"""Admission control: a worker takes at most ``max_inflight`` requests at once.

The gate (``gate.py``) asks ``Admission.admit`` first. Past the bound a new
request is answered at once with 503 ``overloaded`` and
``Retry-After: 1``, before its body is read (aiohttp reads a body only when a
handler asks for it), so an overloaded worker spends next to nothing on the
requests it refuses and keeps its latency for the ones it took. Probes
(``/healthz``, ``/readyz``, ``/metrics``) are never refused: an overloaded
worker is alive and ready.

The batch queues behind the store are bounded as well (``Store(max_queued=)``);
``queue_bound`` is the bound the app gives them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from .errors import Overloaded
from .observability.metrics import REQUESTS_REFUSED

PROBES: Final = frozenset({"/healthz", "/readyz", "/metrics"})
MIN_QUEUED_OPS: Final = 1024
LAG_PERIOD: Final = 0.01
LAG_SAMPLES: Final = 5


def queue_bound(max_inflight: int, max_batch_ops: int) -> int:
    """Operations a batch queue may hold: every request in flight with a full
    batch of ops, and never fewer than MIN_QUEUED_OPS. Past it, something
    queues ops that no request in flight waits for: a bug, refused early."""
    return max(MIN_QUEUED_OPS, max_inflight * max_batch_ops)


def _no_queue() -> float:
    return 0.0


@dataclass(slots=True)
class Admission:
    """A worker's requests in flight and its bounds: ``max_inflight``
    requests; ``max_queue_delay`` seconds of work queued past the next round
    of the store's batches (``queue_delay``, set once the store is open);
    ``max_loop_lag`` seconds of event-loop lag. Mutable on purpose: app state
    cannot be reassigned once the app runs."""

    max_inflight: int
    max_queue_delay: float = float("inf")
    max_loop_lag: float = float("inf")
    queue_delay: Callable[[], float] = _no_queue
    inflight: int = 0
    loop_lag: float = 0.0
    """How late the event loop ran its timers, at the least, over the last
    ``LAG_SAMPLES`` of them: what a new request waits for this worker before
    any of its code runs (see ``watch_loop``). The least, so that one long
    stall (a collection, a large body) is not taken for a worker behind."""

    def admit(self) -> None:
        """Count one more request in flight (``release`` when it is done),
        or raise Overloaded when the worker must refuse it now."""
        refusal = self.refusal()
        if refusal is not None:
            reason, detail = refusal
            REQUESTS_REFUSED.labels(reason=reason).inc()
            raise Overloaded(f"{detail}; retry after a second; the request was not applied")
        self.inflight += 1

    def release(self) -> None:
        self.inflight -= 1

    def refusal(self) -> tuple[str, str] | None:
        """Why a new request must be refused now, if it must: a metrics
        reason and the problem's detail; None to take it."""
        if self.inflight >= self.max_inflight:
            return "in-flight", f"this worker is handling {self.inflight} requests, its limit"
        if self.loop_lag > self.max_loop_lag:
            return "loop-lag", f"this worker's event loop is {self.loop_lag * 1000:.0f} ms late"
        queued = self.queue_delay()
        if queued > self.max_queue_delay:
            return "queue-delay", f"this worker is {queued * 1000:.0f} ms of queued work behind"
        return None

    async def watch_loop(self, app: web.Application) -> AsyncIterator[None]:
        """An ``app.cleanup_ctx`` entry that measures ``loop_lag`` every
        ``LAG_PERIOD`` seconds for the life of the app."""

        async def watch() -> None:
            loop = asyncio.get_running_loop()
            samples: deque[float] = deque(maxlen=LAG_SAMPLES)
            while True:
                start = loop.time()
                await asyncio.sleep(LAG_PERIOD)
                samples.append(loop.time() - start - LAG_PERIOD)
                if len(samples) == LAG_SAMPLES:  # one stall (at start-up) is no lag
                    self.loop_lag = min(samples)

        task = asyncio.create_task(watch())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


ADMISSION = web.AppKey("admission", Admission)
