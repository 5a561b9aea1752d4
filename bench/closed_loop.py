"""A closed-loop HTTP load client: each of N clients sends one request, waits for its
answer, then sends the next, until a deadline.

No request is cut off at the deadline: past it no client starts a new request, and every
request in flight is awaited, so each request sent is counted with its answer. That is
what lets a caller compare what the server did with what it answered (the hot counter's
check). Answers are counted by status, a problem's ``code`` next to its status
(``503 contended``); a request that got no HTTP answer (connection lost, timeout) is
counted as ``no answer (<exception>)``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import orjson
import uvloop

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True, slots=True)
class Request:
    """The one request every client sends, again and again."""

    method: str
    path: str
    body: bytes | None = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one closed-loop run got back."""

    answers: Mapping[str, int]  # label -> count, e.g. "200", "503 contended"
    latencies_ms: Sequence[float]  # of every request that got an HTTP answer, sorted
    elapsed_s: float  # from the first request sent to the last answer received
    client_cpu_s: float  # CPU of this process (the load client) over the run

    @property
    def requests(self) -> int:
        """Requests sent (each one answered or counted as no answer)."""
        return sum(self.answers.values())

    @property
    def successes(self) -> int:
        """Requests answered 2xx."""
        return sum(n for label, n in self.answers.items() if label.startswith("2"))

    def count(self, label: str) -> int:
        return self.answers.get(label, 0)

    def percentile_ms(self, q: float) -> float | None:
        """The nearest-rank ``q`` percentile (0-100] of the latencies; None without any."""
        if not self.latencies_ms:
            return None
        rank = math.ceil(q / 100 * len(self.latencies_ms))
        return self.latencies_ms[max(rank, 1) - 1]


def answer_label(status: int, content_type: str, body: bytes) -> str:
    """``"200"``; for a problem+json answer, its status and ``code``: ``"503 contended"``."""
    if content_type == PROBLEM_JSON:
        try:
            code = orjson.loads(body).get("code")
        except (orjson.JSONDecodeError, AttributeError):
            code = None
        if isinstance(code, str):
            return f"{status} {code}"
    return str(status)


async def _client(
    session: aiohttp.ClientSession,
    url: str,
    request: Request,
    deadline: float,
    answers: Counter[str],
    latencies: list[float],
) -> None:
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            async with session.request(
                request.method, url, data=request.body, headers=request.headers
            ) as response:
                body = await response.read()
                label = answer_label(response.status, response.content_type, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            answers[f"no answer ({type(exc).__name__})"] += 1
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        answers[label] += 1


async def _run(
    base_url: str, request: Request, clients: int, seconds: float, answer_within_s: float
) -> LoadResult:
    answers: Counter[str] = Counter()
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    client_timeout = aiohttp.ClientTimeout(total=answer_within_s)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        url = base_url + request.path
        cpu_before = time.process_time()
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(_client(session, url, request, deadline, answers, latencies) for _ in range(clients))
        )
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - cpu_before
    latencies.sort()
    return LoadResult(dict(answers), latencies, elapsed, client_cpu)


def run_closed_loop(
    base_url: str, request: Request, *, clients: int, seconds: float, answer_within_s: float = 10.0
) -> LoadResult:
    """Run ``clients`` closed loops sending ``request`` to ``base_url`` for ``seconds``,
    then wait for the requests in flight (each at most ``answer_within_s``)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_run(base_url, request, clients, seconds, answer_within_s))
