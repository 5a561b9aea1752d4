"""Load on a live itemstore for the fault tests: writers and readers that run
until told to stop, and a ledger of every answer.

Every write puts a key never written before, with a value naming it, so that
what was acknowledged can be checked afterwards one key at a time: an
acknowledged write must be stored; a write answered 503 "... was not applied"
must not be (one that "may have been applied" may be either).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

MINIMAL = {"Prefer": "return=minimal"}
CREATE_ONLY = {"If-None-Match": "*"}
COLLECTION = "faults"
PAUSE_AFTER_FAILURE = 0.05  # a client that backs off a little, as the SDK does
NO_ANSWER = 0  # the status recorded when no HTTP answer came at all


def value_of(key: str) -> dict[str, str]:
    return {"key": key}


def item_url(base: str, key: str) -> str:
    return f"{base}/collections/{COLLECTION}/items/{key}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request and its answer. ``results``: a batch's per-op statuses."""

    kind: str  # "put", "create", "batch", "get"
    keys: tuple[str, ...]
    started: float  # time.monotonic()
    elapsed: float
    status: int
    code: str | None = None
    detail: str = ""
    retry_after: str | None = None
    results: tuple[int, ...] = ()

    @property
    def is_write(self) -> bool:
        return self.kind != "get"

    @property
    def acknowledged(self) -> bool:
        return self.is_write and 200 <= self.status < 300

    @property
    def surely_not_applied(self) -> bool:
        """A failed write whose answer says it was not applied."""
        detail = self.detail.lower()
        return (
            self.is_write
            and self.status >= 500
            and "not applied" in detail
            and "may have been applied" not in detail
        )


@dataclass
class Ledger:
    outcomes: list[Outcome] = field(default_factory=list)
    _serial: Iterator[int] = field(default_factory=itertools.count)

    def new_key(self, writer: str) -> str:
        return f"{writer}-{next(self._serial)}"

    def acknowledged_keys(self) -> list[str]:
        """Keys of acknowledged writes; a batch's once per op that answered 2xx."""
        keys: list[str] = []
        for outcome in self.outcomes:
            if not outcome.acknowledged:
                continue
            if outcome.kind == "batch":
                keys += [k for k, s in zip(outcome.keys, outcome.results, strict=True) if s < 300]
            else:
                keys += outcome.keys
        return keys

    def not_applied_keys(self) -> list[str]:
        return [k for o in self.outcomes if o.surely_not_applied for k in o.keys]

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status >= 300 or o.status == NO_ANSWER]

    def slower_than(self, seconds: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.elapsed > seconds]

    def sent_after(self, start: float) -> list[Outcome]:
        return [o for o in self.outcomes if o.started >= start]


async def send(
    session: aiohttp.ClientSession,
    ledger: Ledger,
    kind: str,
    keys: tuple[str, ...],
    method: str,
    url: str,
    **kwargs: Any,
) -> Outcome:
    """Send one request and record its outcome (``NO_ANSWER`` when the
    connection failed or the client's own timeout passed)."""
    started = time.monotonic()
    try:
        async with session.request(method, url, **kwargs) as response:
            body = await response.read()
            status, headers = response.status, response.headers
    except (aiohttp.ClientError, TimeoutError) as exc:
        elapsed = time.monotonic() - started
        outcome = Outcome(kind, keys, started, elapsed, NO_ANSWER, None, repr(exc))
        ledger.outcomes.append(outcome)
        return outcome
    elapsed = time.monotonic() - started
    code, detail, results = None, "", ()
    if status >= 400 and body:
        problem = _json(body)
        code, detail = problem.get("code"), str(problem.get("detail", ""))
    elif kind == "batch" and status == 200:
        results = tuple(result["status"] for result in _json(body)["results"])
    outcome = Outcome(
        kind, keys, started, elapsed, status, code, detail, headers.get("Retry-After"), results
    )
    ledger.outcomes.append(outcome)
    return outcome


def _json(body: bytes) -> dict[str, Any]:
    import orjson

    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"detail": body[:200].decode("utf-8", "replace")}
    return parsed if isinstance(parsed, dict) else {}


Worker = Callable[[aiohttp.ClientSession, str, Ledger, asyncio.Event], Coroutine[Any, Any, None]]


def single_writer(name: str, *, create_only: bool = False) -> Worker:
    """PUTs of new keys, one a request (blind, or create-only with If-None-Match: *)."""
    kind = "create" if create_only else "put"
    headers = {**MINIMAL, **CREATE_ONLY} if create_only else MINIMAL

    async def run(
        session: aiohttp.ClientSession, base: str, ledger: Ledger, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            key = ledger.new_key(name)
            outcome = await send(
                session,
                ledger,
                kind,
                (key,),
                "PUT",
                item_url(base, key),
                json=value_of(key),
                headers=headers,
            )
            if not outcome.acknowledged:
                await asyncio.sleep(PAUSE_AFTER_FAILURE)

    return run


def batch_writer(name: str, *, ops: int = 10) -> Worker:
    """Batches of ``ops`` puts of new keys."""

    async def run(
        session: aiohttp.ClientSession, base: str, ledger: Ledger, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            keys = tuple(ledger.new_key(name) for _ in range(ops))
            body = {"ops": [{"op": "put", "key": k, "value": value_of(k)} for k in keys]}
            outcome = await send(
                session,
                ledger,
                "batch",
                keys,
                "POST",
                f"{base}/collections/{COLLECTION}/batch",
                json=body,
                headers=MINIMAL,
            )
            if not outcome.acknowledged:
                await asyncio.sleep(PAUSE_AFTER_FAILURE)

    return run


async def reader(
    session: aiohttp.ClientSession, base: str, ledger: Ledger, stop: asyncio.Event
) -> None:
    """GETs of keys already acknowledged; a 200 must hold the value written."""
    while not stop.is_set():
        written = ledger.acknowledged_keys()
        if not written:
            await asyncio.sleep(0.01)
            continue
        key = random.choice(written)
        outcome = await send(session, ledger, "get", (key,), "GET", item_url(base, key))
        if outcome.status != 200:
            await asyncio.sleep(PAUSE_AFTER_FAILURE)


async def check_stored(
    session: aiohttp.ClientSession, base: str, ledger: Ledger
) -> tuple[list[str], list[str]]:
    """Read back every key written (batch gets, which read consistently):
    (acknowledged keys that are missing, keys answered "not applied" that are
    stored). A value found must be the one written."""
    acknowledged, not_applied = ledger.acknowledged_keys(), ledger.not_applied_keys()
    wanted = list(dict.fromkeys(acknowledged + not_applied))
    gate = asyncio.Semaphore(4)

    async def stored(keys: list[str]) -> set[str]:
        ops = {"ops": [{"op": "get", "key": k} for k in keys]}
        url = f"{base}/collections/{COLLECTION}/batch"
        async with gate:
            for _ in range(20):  # an overloaded worker refuses: ask again
                async with session.post(url, json=ops) as answer:
                    if answer.status != 503:
                        assert answer.status == 200, await answer.text()
                        results = (await answer.json())["results"]
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the read-back was refused 20 times")
        for key, result in zip(keys, results, strict=True):
            assert result["status"] == 404 or result["value"] == value_of(key), (key, result)
        return {k for k, r in zip(keys, results, strict=True) if r["status"] == 200}

    found = set().union(
        *await asyncio.gather(*(stored(wanted[i : i + 100]) for i in range(0, len(wanted), 100)))
    )
    return [k for k in acknowledged if k not in found], [k for k in not_applied if k in found]


class Load:
    """Workers running against ``base`` until ``stop()``; ``ledger`` holds the answers."""

    def __init__(
        self, session: aiohttp.ClientSession, base: str, workers: Iterable[Worker]
    ) -> None:
        self.ledger = Ledger()
        self._stop = asyncio.Event()
        self._tasks = [
            asyncio.create_task(worker(session, base, self.ledger, self._stop))
            for worker in workers
        ]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def status_of(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> int:
    """The status ``url`` answers a GET (or ``kwargs["method"]``) with;
    ``NO_ANSWER`` when none came."""
    method = kwargs.pop("method", "GET")
    try:
        async with session.request(method, url, **kwargs) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return NO_ANSWER


async def seconds_until(
    check: Callable[[], Awaitable[bool]], *, within: float, every: float = 0.1
) -> float:
    """Seconds until ``check()`` holds, asked every ``every`` seconds; fails
    the test when it does not hold within ``within`` seconds."""
    started = time.monotonic()
    while not await check():
        waited = time.monotonic() - started
        assert waited < within, f"still not so after {waited:.1f} s"
        await asyncio.sleep(every)
    return time.monotonic() - started


def p99(seconds: list[float]) -> float:
    """The 99th percentile (nearest rank) of ``seconds``."""
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def serving(session: aiohttp.ClientSession, base: str) -> bool:
    """Whether the service is ready and stores a write again."""
    written = await status_of(
        session, item_url(base, "probe"), method="PUT", json=value_of("probe"), headers=MINIMAL
    )
    return written == 204 and await status_of(session, base + "/readyz") == 200


def check_failures(ledger: Ledger, codes: Iterable[str] = ("backend-unavailable",)) -> None:
    """Every failure in ``ledger`` is a 503 of one of ``codes``, with a
    Retry-After of 1 s or more."""
    for failure in ledger.failures():
        assert failure.status == 503 and failure.code in set(codes), failure
        assert failure.retry_after is not None and int(failure.retry_after) >= 1, failure
