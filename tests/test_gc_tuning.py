"""The worker's garbage collector settings, applied once startup is done."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from aiohttp import web

from itemstore_service.gc_tuning import YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
async def test_startup_objects_are_frozen_and_young_collections_are_rarer() -> None:
    _, older, oldest = gc.get_threshold()
    await settle_heap(web.Application())
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, older, oldest)
