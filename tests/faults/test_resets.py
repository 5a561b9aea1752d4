"""Connections to the backend reset in the middle of its answers (RST after
every so many bytes) while batches and create-only PUTs are
written, on moto then dynalite: no acknowledged write is lost, none is
acknowledged twice, and a write is never answered 412 by its own retry."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp

from tests.faults.conftest import RECOVERED_WITHIN, REQUEST_TIMEOUT, SLACK
from tests.faults.load import (
    Load,
    batch_writer,
    check_failures,
    check_stored,
    seconds_until,
    serving,
    single_writer,
)
from tests.faults.proxy import FaultProxy

RESET_EVERY_BYTES = 1000
"""About three answers of the backend: one answer in three or four is cut,
on whichever connection carries it."""
FAULTY = 4.0
"""Seconds of resets."""


async def test_resets_mid_batch_lose_nothing_and_double_nothing(
    itemstore_on_proxy: str, proxy: FaultProxy
) -> None:
    base = itemstore_on_proxy
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT + 5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        workers = [
            batch_writer("b1"),
            batch_writer("b2"),
            batch_writer("b3", ops=25),
            single_writer("c1", create_only=True),
            single_writer("c2", create_only=True),
        ]
        load = Load(session, base, workers)
        try:
            await asyncio.sleep(0.5)
            proxy.reset_every(RESET_EVERY_BYTES)
            await asyncio.sleep(FAULTY)
            proxy.pass_through()
            await seconds_until(lambda: serving(session, base), within=RECOVERED_WITHIN)
            await asyncio.sleep(0.5)
        finally:
            await load.stop()
        ledger = load.ledger

        assert proxy.stats.resets >= 5, proxy.stats
        late = ledger.slower_than(REQUEST_TIMEOUT + SLACK)
        assert not late, f"{len(late)} answers past the deadline, e.g. {late[:3]}"
        # Keys are new: a 412 would be a create that met its own earlier attempt.
        assert not [o for o in ledger.outcomes if o.status == 412]
        check_failures(ledger)
        acknowledged = Counter(ledger.acknowledged_keys())
        assert acknowledged and max(acknowledged.values()) == 1
        lost, applied = await check_stored(session, base, ledger)
        assert lost == [], f"acknowledged but not stored: {lost[:10]}"
        assert applied == [], f"answered 'not applied' but stored: {applied[:10]}"
        print(
            f"\nfigures: resets: {proxy.stats.resets} connections reset,"
            f" requests {len(ledger.outcomes)}, acknowledged writes {len(acknowledged)},"
            f" 503s {len(ledger.failures())}"
        )
