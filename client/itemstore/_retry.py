"""When a failed request is sent again, and after how long (no I/O here).

Every request carries a :class:`Replay` class saying what a retry could do:

* ``SAFE`` - reads, unconditional puts, batches of gets and puts: sending them
  twice leaves the same state and the same answer, so they are retried after
  429/503 answers and after any connection failure, even a broken answer.
* ``IF_NOT_APPLIED`` - deletes, conditional puts, batches with deletes, clear:
  replaying one whose first run took effect would report the second run (a pop
  would raise KeyError, a setdefault would not see its own write as created).
  They are retried only when the service surely did not apply them: a 429/503
  that says so (``overloaded``, or a detail saying "not applied"; never one
  saying "may have been applied"), or a connection that could not even be opened.
* ``NEVER`` - ``POST .../items`` (each run makes a new item): the same as
  ``IF_NOT_APPLIED`` (a replay after a first run would make a second item).

Every retry also fits in the policy's ``total`` time budget, counted from the
first attempt: a retry whose pause would end past it is not made.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import orjson

RETRY_STATUSES = frozenset({429, 503})
FailureKind = Literal["connect", "io"]


class Replay(enum.Enum):
    SAFE = "safe"
    IF_NOT_APPLIED = "if-not-applied"
    NEVER = "never"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def surely_not_applied(body: bytes) -> bool:
    """Whether a 429/503 answer says the request was not applied: a problem
    coded ``overloaded``, or one whose detail says "not applied" (and not
    "may have been applied"). An answer that does not say is not taken as one."""
    try:
        problem = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return False
    if not isinstance(problem, dict):
        return False
    if problem.get("code") == "overloaded":
        return True
    detail = problem.get("detail")
    return (
        isinstance(detail, str)
        and "not applied" in detail
        and "may have been applied" not in detail
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter.

    ``retries`` is how many times one request may be sent again. A
    ``Retry-After`` the server gives is honoured as the delay, unless it asks
    for more than ``max_retry_after`` seconds: then the error is raised at once.
    ``total`` is the time budget in seconds, from the first attempt: no retry
    is made whose pause would end past it (the attempts themselves are bounded
    by the client's ``timeout``).
    """

    retries: int = 3
    backoff: float = 0.05
    max_backoff: float = 2.0
    max_retry_after: float = 10.0
    total: float = 5.0

    def backoff_delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt + 1``: 0.5x to 1x of the capped exponential."""
        return min(self.max_backoff, self.backoff * 2.0**attempt) * random.uniform(0.5, 1.0)

    def _within_budget(self, delay: float, elapsed: float) -> float | None:
        return delay if elapsed + delay <= self.total else None

    def after_status(
        self,
        replay: Replay,
        status: int,
        retry_after: str | None,
        attempt: int,
        *,
        body: bytes = b"",
        elapsed: float = 0.0,
    ) -> float | None:
        """The delay before sending again after answer ``status`` (with
        ``body``), ``elapsed`` seconds after the first attempt; None to stop."""
        if status not in RETRY_STATUSES or attempt >= self.retries:
            return None
        if replay is not Replay.SAFE and not surely_not_applied(body):
            return None
        asked = parse_retry_after(retry_after)
        if asked is None:
            return self._within_budget(self.backoff_delay(attempt), elapsed)
        if asked > self.max_retry_after:
            return None
        return self._within_budget(asked, elapsed)

    def after_failure(
        self, replay: Replay, kind: FailureKind, attempt: int, *, elapsed: float = 0.0
    ) -> float | None:
        """The delay before sending again after a connection failure, or None to stop.
        ``kind`` is "connect" when the connection could not be opened (nothing was
        sent) and "io" when it broke later (the request may have been applied)."""
        if attempt >= self.retries:
            return None
        if kind == "io" and replay is not Replay.SAFE:
            return None
        return self._within_budget(self.backoff_delay(attempt), elapsed)
