"""An outage of the DynamoDB backend in the middle of a load, on moto and on
dynalite, made two ways: the network path blackholed (connections accepted,
never answered) and the server process stopped (SIGSTOP).

While it lasts every request is answered within the deadline, the failures
503 ``backend-unavailable`` with ``Retry-After``, and /readyz turns 503;
once the backend is back the service recovers by itself within seconds; and
every write acknowledged before, during or after is stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import aiohttp
import pytest

from tests.faults.conftest import RECOVERED_WITHIN, REQUEST_TIMEOUT, SLACK
from tests.faults.load import (
    Load,
    batch_writer,
    check_failures,
    check_stored,
    reader,
    seconds_until,
    serving,
    single_writer,
    status_of,
)
from tests.faults.processes import paused
from tests.faults.proxy import FaultProxy

OUTAGE = 3.0
"""How long the backend stays away, in seconds (the load goes on)."""
NOT_READY_WITHIN = REQUEST_TIMEOUT + 2.0
"""/readyz turns 503 this soon after the backend goes away (its ping times out after 1 s)."""


@contextmanager
def blackholed(proxy: FaultProxy) -> Iterator[None]:
    proxy.blackhole()
    try:
        yield
    finally:
        proxy.pass_through()


def outage(kind: str, proxy: FaultProxy, pid: int) -> AbstractContextManager[None]:
    return blackholed(proxy) if kind == "blackhole" else paused(pid)


@pytest.fixture
def extra_flags() -> list[str]:
    """A breaker that surely opens in a 3 s outage (coalesced calls fail few at a
    time), so that recovery is its probe's doing."""
    return ["--breaker-failures=2"]


@pytest.mark.parametrize("kind", ["blackhole", "sigstop"])
async def test_outage_mid_load(
    kind: str, itemstore_on_proxy: str, proxy: FaultProxy, backend_server: tuple[str, int]
) -> None:
    base = itemstore_on_proxy
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT + 5)  # a hang shows as no answer
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def ready(expected: int) -> bool:
            return await status_of(session, base + "/readyz") == expected

        workers = [single_writer("s1"), single_writer("s2"), batch_writer("b1"), reader]
        load = Load(session, base, workers)
        try:
            await asyncio.sleep(1.0)
            began = time.monotonic()
            with outage(kind, proxy, backend_server[1]):
                not_ready_after = await seconds_until(lambda: ready(503), within=NOT_READY_WITHIN)
                await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - began)))
            ended = time.monotonic()
            recovered_after = await seconds_until(
                lambda: serving(session, base), within=RECOVERED_WITHIN
            )
            await asyncio.sleep(0.5)  # and some load after recovery
        finally:
            await load.stop()
        ledger = load.ledger

        slowest = max(o.elapsed for o in ledger.outcomes)
        late = ledger.slower_than(REQUEST_TIMEOUT + SLACK)
        assert not late, f"{len(late)} answers past the deadline, e.g. {late[:3]}"
        failures = ledger.failures()
        assert failures, "the outage failed no request"
        check_failures(ledger)
        assert min(o.elapsed for o in failures) < 0.5, "the breaker never refused at once"
        after = ledger.sent_after(ended + recovered_after)
        assert any(o.acknowledged for o in after), "no write acknowledged after recovery"

        lost, applied = await check_stored(session, base, ledger)
        assert lost == [], f"acknowledged but not stored: {lost[:10]}"
        assert applied == [], f"answered 'not applied' but stored: {applied[:10]}"
        failed_fast = [o.elapsed for o in failures]
        print(
            f"\nfigures: outage {kind}: requests {len(ledger.outcomes)},"
            f" acknowledged writes {len(ledger.acknowledged_keys())}, 503s {len(failures)},"
            f" slowest answer {slowest:.2f} s, slowest 503 {max(failed_fast):.2f} s,"
            f" /readyz 503 after {not_ready_after:.1f} s,"
            f" serving again {recovered_after:.1f} s after the backend came back"
        )
