"""The garbage collector of a serving worker.

Each request allocates a few hundred short-lived objects, and CPython's cyclic
collector runs every 700 net allocations, walking the young objects each time
and, now and then, every object of the process: the modules, botocore's service
models and the app loaded at startup. Once startup is done, those are frozen
(``gc.freeze``: never walked again) and the young generation is made larger, so
collections run less often; a request's garbage without cycles is still freed
at once by reference counting.
"""

from __future__ import annotations

import gc
from typing import Final

from aiohttp import web

YOUNG_THRESHOLD: Final = 10_000
"""Net allocations between two collections of the young generation (CPython: 700)."""


async def settle_heap(app: web.Application) -> None:
    """An ``on_startup`` hook, run last: collect once, freeze what survives,
    and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
