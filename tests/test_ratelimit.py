"""Token buckets in shared memory (the clock is passed in: no sleeping)."""

from __future__ import annotations

import multiprocessing

from itemstore_service.access.ratelimit import BucketTable, RateLimiter


def test_a_bucket_gives_its_burst_then_its_rate() -> None:
    limiter = RateLimiter(BucketTable())
    verdicts = [limiter.take("k", rate=2, burst=3, now=100.0) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert verdicts[3].retry_after == 0.5  # 2 per second: the next one in half a second
    assert verdicts[3].reset == 1.5  # and full again in 1.5 s
    assert not limiter.take("k", rate=2, burst=3, now=100.4).allowed
    assert limiter.take("k", rate=2, burst=3, now=100.5).allowed
    assert limiter.take("other", rate=2, burst=3, now=100.5).allowed  # a bucket of its own


def test_a_full_table_reuses_the_slot_idle_longest() -> None:
    limiter = RateLimiter(BucketTable(slots=2))
    rate = 0.01  # one request per 100 s, in bursts of 1
    assert limiter.take("a", rate=rate, burst=1, now=0.0).allowed
    assert limiter.take("b", rate=rate, burst=1, now=5.0).allowed
    assert limiter.take("c", rate=rate, burst=1, now=6.0).allowed  # in a's slot, idle longest
    assert not limiter.take("b", rate=rate, burst=1, now=6.0).allowed  # b kept its bucket
    assert not limiter.take("c", rate=rate, burst=1, now=6.0).allowed


def _take_many(table: BucketTable, count: int, allowed: multiprocessing.Queue[int]) -> None:
    limiter = RateLimiter(table)
    allowed.put(sum(limiter.take("k", rate=0.001, burst=50).allowed for _ in range(count)))


def test_processes_share_one_bucket() -> None:
    context = multiprocessing.get_context("spawn")
    table = BucketTable(shared=True)
    allowed: multiprocessing.Queue[int] = context.Queue()
    workers = [context.Process(target=_take_many, args=(table, 40, allowed)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    # 120 takes from three processes, one bucket of 50: exactly 50 allowed.
    assert sum(allowed.get(timeout=5) for _ in workers) == 50
