"""What the worker processes of one host share: made once, before they start.

Each worker gets it as it starts (shared memory can be handed over only
then): the rate-limit buckets, so that a key gets its rate on the whole host,
and the breaker's state, so that one worker finding the backend failing
stops every worker sending to it. A single process makes its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from .access.ratelimit import BucketTable
from .breaker import HostBreaker


@dataclass(frozen=True, slots=True)
class HostState:
    rate_buckets: BucketTable
    breaker: HostBreaker

    @classmethod
    def make(cls, *, shared: bool) -> HostState:
        """In shared memory when ``shared`` (for several workers)."""
        return cls(BucketTable(shared=shared), HostBreaker(shared=shared))
