"""Request deadlines: every data request is answered within ``request_timeout``.

The deadline middleware gives each request to a data route (``/collections``
and below) a :class:`Deadline` in a context variable and answers 503
``backend-unavailable`` when it passes. What runs on the request's behalf
reads the deadline to fit inside it: the batchers drop operations still queued
when their caller gives up, a batch call runs until the latest deadline of the
requests it carries, and the DynamoDB wire client cuts its timeouts and
retries to the time left.

A write is "handed over" once it may reach storage: when its batch is taken,
or when its conditional call starts. A write whose deadline passes before that
was not applied, and never will be; the 503 says which of the two it is.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .errors import BackendUnavailable
from .observability.metrics import DEADLINES_EXPIRED

DATA_ROUTES: Final = "/collections"
_READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
MAY_HAVE_BEEN_APPLIED: Final = "the write may have been applied"
NOT_APPLIED: Final = "the write was not applied"


@dataclass(slots=True)
class Deadline:
    """When a request must be answered (``at``, in event-loop time), and
    whether a write of it has been handed to the backend."""

    at: float
    write_handed_over: bool = False

    def time_left(self) -> float:
        return self.at - asyncio.get_running_loop().time()


_CURRENT: Final[contextvars.ContextVar[Deadline | None]] = contextvars.ContextVar(
    "itemstore_deadline", default=None
)


def current() -> Deadline | None:
    """The deadline of the work running now (None: no deadline)."""
    return _CURRENT.get()


def set_current(deadline: Deadline | None) -> contextvars.Token[Deadline | None]:
    """Make ``deadline`` the current one, in this task's context."""
    return _CURRENT.set(deadline)


def time_left() -> float | None:
    """Seconds until the current deadline (negative once past), or None."""
    deadline = _CURRENT.get()
    return None if deadline is None else deadline.time_left()


def hand_over_write() -> None:
    """Mark the current request's write as handed to the backend: from now
    on a failure may have applied it."""
    deadline = _CURRENT.get()
    if deadline is not None:
        deadline.write_handed_over = True


def context_until(deadlines: Iterable[Deadline | None]) -> contextvars.Context:
    """A copy of the current context whose deadline is the latest of
    ``deadlines`` (none when one of them is None): the context of work done
    for several requests at once, such as one batch call."""
    ats = [deadline.at if deadline is not None else None for deadline in deadlines]
    latest = None if not ats or None in ats else max(at for at in ats if at is not None)
    context = contextvars.copy_context()
    context.run(_CURRENT.set, None if latest is None else Deadline(latest))
    return context


def is_data_route(path: str) -> bool:
    return path == DATA_ROUTES or path.startswith(DATA_ROUTES + "/")


def _applied_clause(request: web.Request, deadline: Deadline) -> str:
    if request.method in _READS:
        return ""
    return MAY_HAVE_BEEN_APPLIED if deadline.write_handed_over else NOT_APPLIED


def deadline_middleware(timeout: float) -> Middleware:
    """Answer every data request within ``timeout`` seconds: past it, 503
    ``backend-unavailable``. A write's 503 (at the deadline or from the
    backend) ends with whether it was applied: "the write was not applied"
    when it never reached storage, else "the write may have been applied"."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_data_route(request.path):
            return await handler(request)
        loop = asyncio.get_running_loop()
        deadline = Deadline(loop.time() + timeout)
        token = set_current(deadline)
        try:
            async with asyncio.timeout_at(deadline.at) as scope:
                return await handler(request)
        except TimeoutError:
            if not scope.expired():
                raise
            clause = _applied_clause(request, deadline)
            kind = "read" if not clause else _expiry_kind(deadline)
            DEADLINES_EXPIRED.labels(kind=kind).inc()
            detail = f"no answer from storage within the request timeout of {timeout:g} s"
            raise BackendUnavailable(f"{detail}; {clause}" if clause else detail) from None
        except BackendUnavailable as error:
            clause = _applied_clause(request, deadline)
            if not clause or "applied" in error.detail:
                raise
            # A new error, not the same one changed: a batch shares one error
            # among all the requests it carried.
            raise BackendUnavailable(
                f"{error.detail}; {clause}", retry_after=error.retry_after, **error.extra
            ) from error
        finally:
            _CURRENT.reset(token)

    return middleware


def _expiry_kind(deadline: Deadline) -> str:
    return "write-maybe-applied" if deadline.write_handed_over else "write-not-applied"
