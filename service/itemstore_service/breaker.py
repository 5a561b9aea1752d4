"""The circuit breaker around the backend: one per worker, and what the host's workers share.

After ``failures`` backend calls in a row failed (BackendUnavailable, or a
call still running at its deadline), the breaker opens: data requests are
answered at once with 503 ``backend-unavailable`` and a ``Retry-After`` of
the seconds until the next probe, and ``/readyz`` answers 503. When the
interval ends one probe is sent (the backend's ``ping``): success closes the
breaker, failure reopens it for twice the interval (1 s at first, 30 s at
most). A failed condition is an answer, not a failure. No one has to act for
the service to recover.

The workers of one host share when a breaker of theirs is open
(``HostBreaker``, in shared memory): while one worker's breaker is open the
others refuse too, at once, rather than each finding out for itself with
``failures`` more calls, each waiting for its deadline when the backend hangs.
Only the worker whose breaker opened probes (the others keep refusing while
the probe runs); when its probe succeeds, every worker takes requests again,
and if it cannot probe (it died), the others take requests again when its
probe was due.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import logging
import math
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from aiohttp import web

from . import deadlines
from .backends.base import Backend, ConditionFailed
from .backends.wrapper import BackendWrapper
from .errors import BackendUnavailable
from .observability.metrics import BREAKER_OPEN

T = TypeVar("T")

FIRST_INTERVAL: Final = 1.0
MAX_INTERVAL: Final = 30.0

log = logging.getLogger("itemstore.breaker")


class HostBreaker:
    """Until when (``time.monotonic()``, one clock for every process of the
    host) a breaker of this host's workers is open; 0.0 while none is. In
    shared memory when ``shared`` (make it before starting the workers and
    hand it to each), else in this process's memory."""

    def __init__(self, *, shared: bool = False) -> None:
        self._until: Any
        if shared:
            self._until = multiprocessing.get_context("spawn").RawValue(ctypes.c_double, 0.0)
        else:
            self._until = ctypes.c_double(0.0)

    def seconds_open(self) -> float:
        """Seconds until the open breaker's next probe (0 or less: none open)."""
        return float(self._until.value) - time.monotonic()

    def is_open(self) -> bool:
        """A breaker of this host is open (the clock read only when one is)."""
        until: float = self._until.value
        return until != 0.0 and until > time.monotonic()

    def open_until(self, until: float) -> None:
        self._until.value = until

    def close(self) -> None:
        self._until.value = 0.0


class Breaker:
    """Counts consecutive failures of backend calls and, while open, refuses
    calls until a probe succeeds. ``probe`` is the backend's ping; it fails
    when it raises or takes over ``probe_timeout`` seconds."""

    def __init__(
        self,
        name: str,
        probe: Callable[[], Awaitable[None]],
        *,
        failures: int,
        probe_timeout: float,
        first_interval: float = FIRST_INTERVAL,
        max_interval: float = MAX_INTERVAL,
        host: HostBreaker | None = None,
    ) -> None:
        self.name = name
        self.host = host or HostBreaker()
        self._probe = probe
        self.failures = failures
        self.probe_timeout = probe_timeout
        self.first_interval = first_interval
        self.max_interval = max_interval
        self.failed_in_a_row = 0
        self.interval = first_interval
        self._next_probe: float | None = None  # loop time; None while closed
        self._prober: asyncio.Task[None] | None = None
        self._gauge = BREAKER_OPEN.labels(backend=name)
        self._gauge.set(0)

    @property
    def is_open(self) -> bool:
        """This worker's breaker is open, or another worker's of this host."""
        return self._next_probe is not None or self.host.is_open()

    def retry_after(self) -> int:
        """Whole seconds until the next probe, at least 1."""
        if self._next_probe is not None:
            left = self._next_probe - asyncio.get_running_loop().time()
        else:
            left = self.host.seconds_open()
        return max(1, math.ceil(left))

    def check(self) -> None:
        """Raise BackendUnavailable (with the seconds until the next probe as
        its ``retry_after``) while the breaker is open, here or in another
        worker of this host."""
        if self._next_probe is not None:
            found = f"the {self.name} backend failed {self.failures} calls in a row"
        elif self.host.is_open():
            found = f"another worker of this host found the {self.name} backend failing"
        else:
            return
        retry_after = self.retry_after()
        raise BackendUnavailable(
            f"{found}; requests are refused until a probe of it succeeds (the next in"
            f" about {retry_after} s); the request was not applied",
            retry_after=retry_after,
        )

    def succeeded(self) -> None:
        if self._next_probe is None:
            self.failed_in_a_row = 0

    def failed(self) -> None:
        """One more failed call; open when there are ``failures`` in a row.
        Calls that end while open change nothing: only the probe decides."""
        if self._next_probe is not None:
            return
        self.failed_in_a_row += 1
        if self.failed_in_a_row >= self.failures:
            log.error(
                "circuit breaker open: the %s backend failed %d calls in a row;"
                " refusing requests, probing in %g s",
                self.name,
                self.failed_in_a_row,
                self.first_interval,
            )
            self._open(self.first_interval)

    def _open(self, interval: float) -> None:
        self.interval = interval
        self._next_probe = asyncio.get_running_loop().time() + interval
        self.host.open_until(time.monotonic() + interval)
        self._gauge.set(1)
        # A context of its own: the task would otherwise copy the request's,
        # deadline included, and every probe would fail before being sent.
        self._prober = asyncio.create_task(
            self._probe_later(interval), context=contextvars.Context()
        )

    def _close(self) -> None:
        self._next_probe = None
        self.host.close()
        self.failed_in_a_row = 0
        self.interval = self.first_interval
        self._gauge.set(0)

    async def _probe_later(self, interval: float) -> None:
        await asyncio.sleep(interval)
        self.host.open_until(time.monotonic() + self.probe_timeout)  # the others wait for it
        try:
            async with asyncio.timeout(self.probe_timeout):
                await self._probe()
        except Exception as exc:
            longer = min(self.max_interval, interval * 2)
            log.warning(
                "circuit breaker probe of the %s backend failed (%s); next probe in %g s",
                self.name,
                type(exc).__name__,
                longer,
            )
            self._open(longer)
        else:
            log.warning("circuit breaker closed: the %s backend answered its probe", self.name)
            self._close()

    async def stop(self) -> None:
        """Cancel a pending probe (on shutdown)."""
        if self._prober is not None:
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)
            self._prober = None
        self._gauge.set(0)


class GuardedBackend(BackendWrapper):
    """A ``Backend`` whose calls go through its ``breaker`` (which probes
    ``inner.ping``): refused while it is open, counted as failed when they
    raise BackendUnavailable or are still running at the deadline of the
    work they serve (``deadlines.current()``), as succeeded otherwise. A call
    is not cancelled at its deadline: the backend's own timeouts end it (a
    write running in a thread cannot be stopped, and the next batch should
    wait for it rather than pile up behind it)."""

    def __init__(
        self,
        inner: Backend,
        *,
        failures: int,
        probe_timeout: float,
        host: HostBreaker | None = None,
    ) -> None:
        super().__init__(inner)
        self.breaker = Breaker(
            inner.name, self._probe, failures=failures, probe_timeout=probe_timeout, host=host
        )

    async def _probe(self) -> None:
        await self.inner.ping()

    async def _call(self, op: str, call: Awaitable[T]) -> T:
        try:
            self.breaker.check()
        except BackendUnavailable:
            if asyncio.iscoroutine(call):
                call.close()  # never awaited: no "was never awaited" warning
            raise
        deadline = deadlines.current()
        late = False

        def timed_out() -> None:
            nonlocal late
            late = True
            self.breaker.failed()

        timer = None
        if deadline is not None:
            timer = asyncio.get_running_loop().call_at(deadline.at, timed_out)
        try:
            result = await call
        except ConditionFailed:
            if not late:
                self.breaker.succeeded()
            raise
        except BackendUnavailable:
            if not late:
                self.breaker.failed()
            raise
        except asyncio.CancelledError:
            # Its request's deadline passed first (the two timers may fire in
            # either order): the call was still running at the deadline.
            if not late and deadline is not None and deadline.expired:
                timed_out()
            raise
        else:
            if not late:
                self.breaker.succeeded()
            return result
        finally:
            if timer is not None:
                timer.cancel()


BREAKER = web.AppKey("breaker", Breaker)
