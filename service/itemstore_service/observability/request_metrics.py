"""Request metrics, counted in plain Python and written to prometheus-client
once per turn of the event loop.

Each write to a prometheus-client series takes a lock, and in multiprocess
mode a write to the series' file: a request touches five (in-flight up and
down, its counter, its histogram's sum and bucket), about 5 µs of a worker's
CPU (docs/performance.md). Here a request only adds to counts of its own;
the first count of a turn schedules ``flush`` (``call_soon``), which writes
each changed series once, before the loop reads its sockets again. So an
answer is counted microseconds after it was sent, for a scrape of any
worker, and ``/metrics`` flushes its own worker before it renders.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from typing import Protocol

from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram

from .metrics import IN_FLIGHT, KEY_REQUESTS, REQUEST_LATENCY, REQUESTS


class _Series(Protocol):
    queued: bool

    def write(self) -> None: ...


class RequestMetrics:
    """The series of one app's requests, by method, route template and
    status, and by access key and status class."""

    def __init__(self) -> None:
        self._queued: list[_Series] = []
        self._in_flight: dict[str, _InFlight] = {}
        self._by_key: dict[tuple[str, int], _Answered] = {}

    def route(self, method: str, route: str) -> RouteMetrics:
        """The series of one method and route (look it up once, keep it)."""
        in_flight = self._in_flight.get(route)
        if in_flight is None:
            in_flight = self._in_flight[route] = _InFlight(IN_FLIGHT.labels(route=route))
        return RouteMetrics(self, method, route, in_flight)

    def key_answered(self, key_id: str, status: int) -> None:
        """Count an answer to a request sent with the access key ``key_id``."""
        index = (key_id, status // 100)
        series = self._by_key.get(index)
        if series is None:
            counter = KEY_REQUESTS.labels(key=key_id, status=f"{status // 100}xx")
            series = self._by_key[index] = _Answered(counter)
        series.count += 1
        if not series.queued:
            self.changed(series)

    def changed(self, series: _Series) -> None:
        """Write ``series`` at the end of this turn of the loop (call it
        while ``series.queued`` is False)."""
        series.queued = True
        if not self._queued:
            asyncio.get_running_loop().call_soon(self.flush)
        self._queued.append(series)

    def flush(self) -> None:
        """Write every changed series to prometheus-client now."""
        queued, self._queued = self._queued, []
        for series in queued:
            series.queued = False
            series.write()


REQUEST_METRICS = web.AppKey("request_metrics", RequestMetrics)


class RouteMetrics:
    """Counts the requests of one method and route: ``started`` when one
    begins, ``finished`` with its status and seconds when it ends."""

    __slots__ = ("_answered", "_in_flight", "_latency", "_method", "_metrics", "queued", "route")

    def __init__(
        self, metrics: RequestMetrics, method: str, route: str, in_flight: _InFlight
    ) -> None:
        self.route = route
        self.queued = False
        self._metrics = metrics
        self._method = method
        self._in_flight = in_flight  # shared by the methods of the route
        self._latency = _Latency(REQUEST_LATENCY.labels(method=method, route=route))
        self._answered: dict[int, _Answered] = {}

    def started(self) -> None:
        self._in_flight.count += 1
        if not self.queued:
            self._metrics.changed(self)

    def finished(self, status: int, seconds: float) -> None:
        self._in_flight.count -= 1
        answered = self._answered.get(status)
        if answered is None:
            child = REQUESTS.labels(method=self._method, route=self.route, status=str(status))
            answered = self._answered[status] = _Answered(child)
        answered.count += 1
        self._latency.observe(seconds)
        if not self.queued:
            self._metrics.changed(self)

    def write(self) -> None:
        self._in_flight.write()
        for answered in self._answered.values():
            if answered.count:
                answered.write()
        self._latency.write()


class _InFlight:
    __slots__ = ("count", "gauge", "written")

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self.count = self.written = 0

    def write(self) -> None:
        if self.count != self.written:
            self.gauge.set(self.count)
            self.written = self.count


class _Answered:
    __slots__ = ("count", "counter", "queued")

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.count = 0
        self.queued = False

    def write(self) -> None:
        self.counter.inc(self.count)
        self.count = 0


class _Latency:
    __slots__ = ("bounds", "counts", "histogram", "observed", "total")

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.bounds = histogram._upper_bounds  # ends with +Inf
        self.counts = [0] * len(self.bounds)
        self.observed = False
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.observed = True

    def write(self) -> None:
        if not self.observed:
            return
        # prometheus-client has no call that adds many observations at once:
        # its values are written directly, as its observe() does (a count
        # per bucket, made cumulative when collected, and the sum).
        buckets = self.histogram._buckets
        for index, count in enumerate(self.counts):
            if count:
                buckets[index].inc(count)
                self.counts[index] = 0
        self.histogram._sum.inc(self.total)
        self.total = 0.0
        self.observed = False
