"""Request deadlines: every data request is answered within ``request_timeout``.

The gate (``gate.py``) runs each request to a data route (``/collections``
and below) in ``DeadlineWatch.answer``, which gives it a :class:`Deadline` in a
context variable and answers 503 ``backend-unavailable`` when it passes.
What runs on the request's behalf reads the deadline to fit inside it: the
batchers drop operations still queued when their caller gives up, a batch
call runs until the latest deadline of the requests it carries, and the
DynamoDB wire client cuts its timeouts and retries to the time left.

A write is "handed over" once it may reach storage: when its batch is taken,
or when its conditional call starts. A write whose deadline passes before that
was not applied, and never will be; the 503 says which of the two it is.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import BackendUnavailable
from .observability.metrics import DEADLINES_EXPIRED

DATA_ROUTES: Final = "/collections"
_READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
MAY_HAVE_BEEN_APPLIED: Final = "the write may have been applied"
NOT_APPLIED: Final = "the write was not applied"


@dataclass(slots=True)
class Deadline:
    """When a request must be answered (``at``, in event-loop time), and
    whether a write of it has been handed to the backend. ``task``,
    ``finished`` and ``expired`` are a :class:`DeadlineWatch`'s, for the
    request it watches."""

    at: float
    write_handed_over: bool = False
    task: asyncio.Task[Any] | None = None
    finished: bool = False
    expired: bool = False

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


class DeadlineWatch:
    """Answers data requests within ``request_timeout`` (``answer``), with one
    timer for all of them rather than one per request (``asyncio.timeout``
    makes and cancels a timer per request: about 4 µs of a worker's CPU each,
    docs/performance.md). Every deadline is its request's arrival plus the
    same timeout, so they fall due in the order they were added: the timer is
    set for the first, and a request past its deadline has its task
    cancelled, as ``asyncio.timeout`` would."""

    def __init__(self, request_timeout: float) -> None:
        self.request_timeout = request_timeout
        self._watched: deque[Deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None

    async def answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """``handler(request)``, answered within ``request_timeout`` seconds:
        past it, 503 ``backend-unavailable``. A write's 503 (at the deadline
        or from the backend) ends with whether it was applied: "the write was
        not applied" when it never reached storage, else "the write may have
        been applied"."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        deadline = Deadline(loop.time() + self.request_timeout, task=task)
        self._watch(deadline, loop)
        token = set_current(deadline)
        try:
            return await handler(request)
        except asyncio.CancelledError:
            if not deadline.expired:
                raise
            deadline.expired = False
            if task.uncancel() > 0:  # cancelled by someone else as well
                raise
            clause = _applied_clause(request, deadline)
            kind = "read" if not clause else _expiry_kind(deadline)
            DEADLINES_EXPIRED.labels(kind=kind).inc()
            detail = (
                f"no answer from storage within the request timeout of {self.request_timeout:g} s"
            )
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
            deadline.finished = True
            deadline.task = None  # the queue may keep the deadline a while, not the task
            if deadline.expired:  # the handler swallowed the cancellation
                task.uncancel()
            _CURRENT.reset(token)

    def _watch(self, deadline: Deadline, loop: asyncio.AbstractEventLoop) -> None:
        queue = self._watched
        while queue and queue[0].finished:
            queue.popleft()
        queue.append(deadline)
        if self._timer is None:
            self._timer = loop.call_at(queue[0].at, self._expire)

    def _expire(self) -> None:
        """The timer fired: cancel every request past its deadline, drop the
        finished ones, and set the timer for the next deadline."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        queue = self._watched
        while queue:
            first = queue[0]
            if not first.finished:
                if first.at > now:
                    self._timer = loop.call_at(first.at, self._expire)
                    return
                first.expired = True
                if first.task is not None:
                    first.task.cancel()
            queue.popleft()


def _expiry_kind(deadline: Deadline) -> str:
    return "write-maybe-applied" if deadline.write_handed_over else "write-not-applied"
