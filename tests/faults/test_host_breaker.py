"""Two workers, one breaker state: once one worker's breaker opens, the other
worker refuses at once too, before any of its own calls has failed.

The backend is blackholed (connections accepted, never answered). Reads sent
one after another on one keep-alive connection reach one worker and fail at
their deadline until its breaker (``--breaker-failures=2``) opens. Then reads
on new connections, which SO_REUSEPORT spreads over both workers, are all
refused at once: those reaching the other worker say that another worker of
the host found the backend failing. Without the shared state they would each
wait for the deadline there.
"""

from __future__ import annotations

import time

import aiohttp
import pytest

from tests.faults.conftest import REQUEST_TIMEOUT, SLACK
from tests.faults.proxy import FaultProxy

FRESH_CONNECTIONS = 30
"""Reads on new connections after the breaker opened: each lands on either
worker, so both are reached but with a chance of 2 in 2**30 that one is not."""
FAST = 0.5
"""Seconds within which a refusal of an open breaker is answered."""


@pytest.fixture
def extra_flags() -> list[str]:
    return ["--workers=2", "--breaker-failures=2"]


async def read(session: aiohttp.ClientSession, url: str) -> tuple[int, str, float]:
    """Status, problem detail ("" when none) and seconds taken."""
    started = time.monotonic()
    async with session.get(url) as response:
        body = await response.json(content_type=None) if response.status != 200 else {}
    return response.status, body.get("detail", ""), time.monotonic() - started


async def test_one_workers_open_breaker_makes_every_worker_refuse_at_once(
    itemstore_on_proxy: str, proxy: FaultProxy
) -> None:
    base = itemstore_on_proxy
    url = f"{base}/collections/c/items/k"
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT + 5)
    proxy.blackhole()
    try:
        one = aiohttp.TCPConnector(limit=1)  # one connection: one worker
        async with aiohttp.ClientSession(connector=one, timeout=timeout) as session:
            opened = ""
            for _ in range(4):
                status, detail, elapsed = await read(session, url)
                assert status == 503 and elapsed < REQUEST_TIMEOUT + SLACK, (status, elapsed)
                if "calls in a row" in detail:
                    opened = detail
                    break
            assert opened.startswith("the dynamodb backend failed 2 calls in a row"), opened

        fresh = aiohttp.TCPConnector(force_close=True)  # a new connection for each request
        async with aiohttp.ClientSession(connector=fresh, timeout=timeout) as session:
            answers = [await read(session, url) for _ in range(FRESH_CONNECTIONS)]
            readiness = [await read(session, f"{base}/readyz") for _ in range(10)]
    finally:
        proxy.pass_through()

    assert all(status == 503 and elapsed < FAST for status, _, elapsed in answers), answers
    from_the_other = [d for _, d, _ in answers if d.startswith("another worker of this host")]
    from_the_opener = [d for _, d, _ in answers if "calls in a row" in d]
    assert from_the_other and from_the_opener, answers
    assert all(status == 503 for status, _, _ in readiness), readiness
    print(
        f"\nfigures: host breaker: {len(from_the_other)} of {FRESH_CONNECTIONS} reads refused"
        f" by the other worker, slowest refusal {max(e for _, _, e in answers) * 1000:.0f} ms"
    )
