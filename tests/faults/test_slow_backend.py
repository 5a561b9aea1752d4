"""A backend that answers, but three times slower than the deadline (latency
on the path back from moto, then dynalite): every request is answered 503
within the deadline, and a write that was applied meanwhile is never
reported as "not applied"."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.faults.conftest import RECOVERED_WITHIN, REQUEST_TIMEOUT, SLACK
from tests.faults.load import (
    COLLECTION,
    CREATE_ONLY,
    MINIMAL,
    Ledger,
    check_failures,
    check_stored,
    item_url,
    seconds_until,
    send,
    serving,
    value_of,
)
from tests.faults.proxy import FaultProxy


async def test_slow_backend_answers_503_within_the_deadline(
    itemstore_on_proxy: str, proxy: FaultProxy
) -> None:
    base, ledger = itemstore_on_proxy, Ledger()
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT + 5)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        def put(key: str, kind: str, headers: dict[str, str]) -> asyncio.Future[object]:
            url = item_url(base, key)
            return asyncio.ensure_future(
                send(session, ledger, kind, (key,), "PUT", url, json=value_of(key), headers=headers)
            )

        batch_keys = tuple(f"batch-{i}" for i in range(10))
        batch = {"ops": [{"op": "put", "key": k, "value": value_of(k)} for k in batch_keys]}
        proxy.latency(3 * REQUEST_TIMEOUT)
        await asyncio.gather(
            put("plain", "put", {}),
            put("blind", "put", MINIMAL),
            put("created", "create", {**MINIMAL, **CREATE_ONLY}),
            send(
                session,
                ledger,
                "batch",
                batch_keys,
                "POST",
                f"{base}/collections/{COLLECTION}/batch",
                json=batch,
                headers=MINIMAL,
            ),
            send(session, ledger, "get", ("absent",), "GET", item_url(base, "absent")),
        )
        proxy.pass_through()

        assert [o.status for o in ledger.outcomes] == [503] * 5, ledger.outcomes
        check_failures(ledger)
        late = ledger.slower_than(REQUEST_TIMEOUT + SLACK)
        assert not late, late
        # The writes reached the backend (only its answers were slow): a 503
        # that said "not applied" would be a lie, which check_stored finds.
        await seconds_until(lambda: serving(session, base), within=RECOVERED_WITHIN)
        lost, applied = await check_stored(session, base, ledger)
        assert lost == [] and applied == []
        slowest = max(o.elapsed for o in ledger.outcomes)
        print(f"\nfigures: latency {3 * REQUEST_TIMEOUT:g} s: slowest 503 {slowest:.2f} s")
