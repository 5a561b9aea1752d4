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
import functools
import hashlib
import math
import multiprocessing
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

SLOTS: Final = 4096
_PROBES: Final = 16
_FIELDS: Final = 3  # per slot: owner, tokens, stamp (as doubles)


class BucketTable:
    """The buckets: in shared memory when ``shared`` (make it before starting
    the workers and pass it to each: it can be handed over only as a process
    starts), else in this process's memory."""

    def __init__(self, slots: int = SLOTS, *, shared: bool = False) -> None:
        self.lock: Any
        cells: Any
        if shared:
            context = multiprocessing.get_context("spawn")
            # A plain lock: a take never re-enters it.
            array = context.Array(ctypes.c_double, slots * _FIELDS, lock=context.Lock())
            self.lock, cells = array.get_lock(), array.get_obj()
            self._array = array  # keeps the shared memory, and pickles with it
        else:  # a multiprocessing lock would start its resource tracker for nothing
            self.lock, cells = threading.Lock(), (ctypes.c_double * (slots * _FIELDS))()
        self.cells = memoryview(cells).cast("B").cast("d")  # zeroed: every slot free

    def __getstate__(self) -> dict[str, Any]:
        return {"array": self._array}

    def __setstate__(self, state: dict[str, Any]) -> None:
        array = state["array"]
        self._array, self.lock = array, array.get_lock()
        self.cells = memoryview(array.get_obj()).cast("B").cast("d")


@dataclass(frozen=True, slots=True)
class Verdict:
    """A take's outcome: allowed or not, what remains, and the seconds until
    the next request would be allowed (``retry_after``) and until the bucket
    is full again (``reset``)."""

    allowed: bool
    remaining: int
    retry_after: float
    reset: float


@functools.lru_cache(maxsize=SLOTS)
def _owner(key_id: str) -> int:
    """A key id's 48-bit hash (exact as a double), never 0: 0 marks a free slot."""
    return int.from_bytes(hashlib.blake2b(key_id.encode(), digest_size=6).digest(), "big") or 1


class RateLimiter:
    """Takes one request from a key's bucket in ``table``."""

    def __init__(self, table: BucketTable) -> None:
        self._lock = table.lock
        self._cells = table.cells
        self._slots = len(self._cells) // _FIELDS

    def take(self, key_id: str, rate: float, burst: int, now: float | None = None) -> Verdict:
        now = time.monotonic() if now is None else now  # one clock for every process
        owner = _owner(key_id)
        cells = self._cells
        with self._lock:
            at = self._slot(owner) * _FIELDS
            if cells[at] != owner:
                cells[at], cells[at + 1], cells[at + 2] = owner, float(burst), now
            tokens = min(float(burst), cells[at + 1] + (now - cells[at + 2]) * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            cells[at + 1], cells[at + 2] = tokens, now
        retry_after = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
        return Verdict(allowed, math.floor(tokens), retry_after, (burst - tokens) / rate)

    def _slot(self, owner: int) -> int:
        """The slot of ``owner``: its own, else a free one, else the one idle longest."""
        cells, size = self._cells, self._slots
        oldest, oldest_stamp = -1, math.inf
        for probe in range(min(_PROBES, size)):
            slot = (owner + probe) % size
            if cells[slot * _FIELDS] in (owner, 0.0):
                return slot
            stamp = cells[slot * _FIELDS + 2]
            if stamp < oldest_stamp:
                oldest, oldest_stamp = slot, stamp
        return oldest
