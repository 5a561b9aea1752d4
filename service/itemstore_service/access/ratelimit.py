"""Token buckets per access key, shared by the worker processes of one host.

The buckets live in one table of shared memory (``multiprocessing``'s
synchronized array, made by the parent before the workers start and handed
to each), so a key gets its rate on the whole host however SO_REUSEPORT
spreads its connections over the workers. A take holds the table's lock for
a few microseconds. Replicas do not share buckets: N replicas let a key
through at up to N times its rate.

A key's bucket holds up to ``burst`` requests and refills at ``rate`` per
second. Slots are found by the key id's hash with linear probing; when every
probed slot is taken, the one idle the longest is reused (a bucket idle for
``burst / rate`` seconds is full again, so reuse changes nothing for it).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import multiprocessing
import time
from dataclasses import dataclass
from typing import Any, Final

SLOTS: Final = 4096
_PROBES: Final = 16


class _Slot(ctypes.Structure):
    _fields_ = (("owner", ctypes.c_uint64), ("tokens", ctypes.c_double), ("stamp", ctypes.c_double))


class BucketTable:
    """Buckets in shared memory. Make it before starting the workers and
    pass it to each (it can be handed over only as a process starts)."""

    def __init__(self, slots: int = SLOTS) -> None:
        context = multiprocessing.get_context("spawn")
        self.array: Any = context.Array(_Slot, slots, lock=True)  # zeroed: every slot free


@dataclass(frozen=True, slots=True)
class Verdict:
    """A take's outcome: allowed or not, what remains, and the seconds until
    the next request would be allowed (``retry_after``) and until the bucket
    is full again (``reset``)."""

    allowed: bool
    remaining: int
    retry_after: float
    reset: float


def _owner(key_id: str) -> int:
    # 0 marks a free slot.
    return int.from_bytes(hashlib.blake2b(key_id.encode(), digest_size=8).digest(), "big") or 1


class RateLimiter:
    """Takes one request from a key's bucket in ``table``."""

    def __init__(self, table: BucketTable) -> None:
        self._table = table.array

    def take(self, key_id: str, rate: float, burst: int, now: float | None = None) -> Verdict:
        now = time.monotonic() if now is None else now  # one clock for every process
        owner = _owner(key_id)
        with self._table.get_lock():
            slots = self._table.get_obj()
            slot = self._slot(slots, owner)
            if slot.owner != owner:
                slot.owner, slot.tokens, slot.stamp = owner, float(burst), now
            tokens = min(float(burst), slot.tokens + (now - slot.stamp) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            slot.tokens, slot.stamp = tokens, now
        retry_after = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
        return Verdict(allowed, math.floor(tokens), retry_after, (burst - tokens) / rate)

    @staticmethod
    def _slot(slots: Any, owner: int) -> _Slot:
        size = len(slots)
        oldest: _Slot | None = None
        for probe in range(min(_PROBES, size)):
            slot: _Slot = slots[(owner + probe) % size]
            if slot.owner in (owner, 0):
                return slot
            if oldest is None or slot.stamp < oldest.stamp:
                oldest = slot
        assert oldest is not None
        return oldest
