"""How fast a query scans: items read per second by POST-query's engine on
100,000 items, on SQLite (a file in a temporary folder) and on DynamoDB (a
local moto or dynalite process), through the backends the service opens.

    python -m bench.query_scan [--items 100000] [--backend sqlite|moto|dynalite]

Each run loads the items once (values of about 100 bytes: ``{"i", "age",
"city", "name"}``), then walks a filtered count over every cursor (every item
is read, few match) and a filtered listing, and prints items scanned per second
and the time per request. Bounded: every request reads at most
``max_query_scan`` items; a run stops after ``--seconds`` of walking.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from bench import dynamodb_local
from itemstore_service.backends.base import Backend, Record
from itemstore_service.backends.plugin import open_backend
from itemstore_service.config import Config
from itemstore_service.keys import encode_key
from itemstore_service.queries import parse_query, run_query
from itemstore_wire.contract import Limits

CITIES = ("Paris", "Lyon", "Nice", "Lille", "Nantes")


def queries(items: int) -> list[dict[str, object]]:
    """The queries walked: two on values (every item read), one on the key
    that reads only the last 5% of the collection (``@key?gt`` bounds the scan)."""
    return [
        {"where": {"age?gte": 85, "city": "Nice"}, "count": True},
        {"where": {"name?pfx": "person 9999"}, "limit": 100},
        {"where": {"@key?gt": items - items // 20 - 1}, "count": True},
    ]


async def load(backend: Backend, items: int) -> float:
    """Write ``items`` items in batches of 1,000; the seconds it took."""
    started = time.perf_counter()
    for start in range(0, items, 1000):
        puts = {
            ("people", encode_key(i)): Record(
                orjson.dumps({"i": i, "age": i % 90, "city": CITIES[i % 5], "name": f"person {i}"}),
                "v1",
            )
            for i in range(start, min(items, start + 1000))
        }
        await backend.write_many(puts, [], previous=())
    return time.perf_counter() - started


async def walk(backend: Backend, body: dict[str, object], limits: Limits, seconds: float) -> None:
    scanned = requests = matched = 0
    cursor = None
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        query = parse_query({**body, "cursor": cursor}, limits)
        page = await run_query(backend, "people", query, limits.max_query_scan)
        scanned += page.scanned
        matched += page.count if page.count is not None else len(page.items)
        requests += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    elapsed = time.perf_counter() - started
    print(
        f"  {orjson.dumps(body).decode()}: {scanned} items scanned in {requests} requests,"
        f" {matched} matched, {elapsed:.2f} s: {scanned / elapsed:,.0f} items scanned/s,"
        f" {1000 * elapsed / requests:.1f} ms per request"
        + ("" if cursor is None else " (stopped at --seconds)")
    )


async def run(config: Config, items: int, seconds: float) -> None:
    limits = config.limits
    async with open_backend(config) as backend:
        print(f"{config.backend}: loading {items} items ...", flush=True)
        print(f"  loaded in {await load(backend, items):.1f} s")
        for body in queries(items):
            await walk(backend, body, limits, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "moto", "dynalite"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=10.0, help="longest walk of one query")
    args = parser.parse_args()
    limits = Limits()
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            config = Config(sqlite_path=str(Path(folder) / "items.sqlite3"), limits=limits)
            asyncio.run(run(config, args.items, args.seconds))
        return
    reason = dynamodb_local.missing_reason(args.backend)
    if reason:
        parser.error(reason)
    # The endpoint is a local server: never hand it real credentials.
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN="testing"
    )
    with dynamodb_local.running(args.backend) as (url, _pid):
        config = Config(
            backend="dynamodb",
            dynamodb_endpoint=url,
            dynamodb_table=f"bench-{uuid.uuid4().hex[:8]}",
            dynamodb_create_table=True,
            limits=limits,
        )
        asyncio.run(run(config, args.items, args.seconds))


if __name__ == "__main__":
    main()
