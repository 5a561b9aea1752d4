"""Listing one collection of the DynamoDB backend: each shard is read in sk
order a page at a time, and the shards are merged into one page."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from itemstore_wire import exactjson

from ..conditions import Where, matches
from ..keys import decode_key
from .base import Listed, Record, Scanned
from .dynamodb_setup import record_of, run_all

MAX_QUERY_PAGE = 1000  # items asked of one shard per Query call while scanning

Send = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""How a reader calls DynamoDB: operation name and JSON body, to the answer."""


class ShardReader:
    """The items of one shard (partition ``pk``) in sk order, fetched a page at
    a time: those whose sk starts with ``prefix`` and sorts after ``after``."""

    def __init__(
        self, send: Send, table: str, pk: str, after: str | None, prefix: str, keys_only: bool
    ) -> None:
        self.send, self.table, self.prefix = send, table, prefix
        self.buffer: deque[Listed] = deque()
        self.fresh, self.done = True, False
        self._start: dict[str, Any] | None = None
        names = {"#pk": "pk"}
        values = {":pk": {"S": pk}}
        condition = "#pk = :pk"
        if after and after >= prefix:  # no sk is "": DynamoDB refuses "" in a key condition
            # Items past ``after`` may leave the prefix: fill() stops at the first.
            condition += " AND #sk > :after"
            values[":after"] = {"S": after}
            names["#sk"] = "sk"
        elif prefix:
            condition += " AND begins_with(#sk, :prefix)"
            values[":prefix"] = {"S": prefix}
            names["#sk"] = "sk"
        if keys_only:
            names.update({"#sk": "sk", "#ver": "ver", "#fk": "fk", "#exp": "exp"})
        self._params: dict[str, Any] = {
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if keys_only:
            self._params["ProjectionExpression"] = "#sk, #ver, #fk, #exp"

    async def fill(self, size: int) -> None:
        """Fetch up to ``size`` more items into ``buffer``; set ``done`` at the end."""
        self.fresh = False
        extra = {"ExclusiveStartKey": self._start} if self._start else {}
        body = {
            "TableName": self.table,
            "Limit": max(1, size),
            "ConsistentRead": True,
            **self._params,
            **extra,
        }
        response = await self.send("Query", body)
        now = time.time()
        for item in response.get("Items", []):
            sk = item["sk"]["S"]
            if not sk.startswith(self.prefix):
                self.done = True
                return
            record = record_of(item)
            if not record.expired(now):  # a page may then hold fewer: merge_shards asks again
                self.buffer.append(Listed(sk, record))
        self._start = response.get("LastEvaluatedKey")
        self.done = self._start is None


async def merge_shards(readers: list[ShardReader], limit: int) -> list[Listed]:
    """The first ``limit`` items of all shards, in sk order. Each shard is first
    asked for about twice its share, then only for what is still missing."""
    first_page = min(limit, max(10, math.ceil(2 * limit / max(1, len(readers)))))
    page: list[Listed] = []
    while len(page) < limit:
        # Every shard must show its next item before the smallest is chosen.
        idle = [r for r in readers if not r.buffer and not r.done]
        if idle:
            await run_all(r.fill(first_page if r.fresh else limit - len(page)) for r in idle)
        live = [r for r in readers if r.buffer]
        if not live:
            break
        # Python orders str by code point, which is the UTF-8 byte order
        # DynamoDB sorts each shard by: merging by str keeps that order.
        best = min(live, key=lambda r: r.buffer[0].sk)
        page.append(best.buffer.popleft())
    return page


async def scan_shards(
    readers: list[ShardReader], where: Where, *, limit: int, budget: int, keys_only: bool
) -> Scanned:
    """Merge the shards in sk order, reading at most ``budget`` items and
    keeping those that match ``where``, until ``limit`` matches. Shards are
    read concurrently, each a page ahead, pages growing fourfold while the
    scan goes on (a few items first: a selective page may end soon)."""
    sizes = dict.fromkeys(
        readers, min(MAX_QUERY_PAGE, max(10, 2 * min(limit, budget) // len(readers)))
    )
    found: list[Listed] = []
    scanned, last = 0, None
    while scanned < budget and len(found) < limit:
        idle = [r for r in readers if not r.buffer and not r.done]
        if idle:
            await run_all(r.fill(min(sizes[r], budget - scanned)) for r in idle)
            for r in idle:
                sizes[r] = min(MAX_QUERY_PAGE, sizes[r] * 4)
        live = [r for r in readers if r.buffer]
        if not live:
            break
        entry = min(live, key=lambda r: r.buffer[0].sk).buffer.popleft()
        scanned, last = scanned + 1, entry.sk
        record = entry.record
        value = exactjson.loads(record.value) if record.value else None
        if matches(where, decode_key(entry.sk, record.float_key), value):
            found.append(
                Listed(entry.sk, Record(b"", record.version, record.float_key))
                if keys_only
                else entry
            )
    # Done only when no shard holds more: a shard whose last page was full
    # may have nothing after it, which one more read tells.
    unsure = [r for r in readers if not r.buffer and not r.done]
    if unsure:
        await run_all(r.fill(1) for r in unsure)
    done = not any(r.buffer for r in readers)
    return Scanned(found, scanned, last, done)
