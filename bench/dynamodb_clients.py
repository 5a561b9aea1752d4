"""CPU per call of three DynamoDB clients on the backend's hot calls.

Against one DynamoDB stand-in (dynalite or moto, a process of its own), runs
BatchGetItem of 1 and of 50 keys (1 KiB binary values), BatchWriteItem of 25
items and a conditional PutItem, ``--calls`` times each, ``--concurrency`` at a
time, with: aioboto3's low-level client (aiobotocore, botocore's model-driven
serialization and parsing), ``aiodynamo`` (when importable; not a dependency
of itemstore) and itemstore's own wire client. Prints this process's CPU
microseconds per call (user + system, from getrusage) and the calls per second.

    python -m bench.dynamodb_clients --impl dynalite --calls 2000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import resource
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aioboto3
import aiohttp

from bench import dynamodb_local
from itemstore_service.backends.dynamodb_setup import TABLE_DEFINITION, client_config
from itemstore_service.backends.dynamodb_sigv4 import Credentials
from itemstore_service.backends.dynamodb_wire import DynamoDBWire

VALUE = bytes(range(256)) * 4  # 1 KiB, binary
KEYS = [{"pk": {"S": "c#0"}, "sk": {"S": f"k{i:03}"}} for i in range(50)]
Call = Callable[[], Awaitable[object]]


def item(i: int, version: str = "v1") -> dict[str, Any]:
    return {**KEYS[i % 50], "v": {"B": VALUE}, "ver": {"S": version}}


def wire_item(i: int) -> dict[str, Any]:
    return {**KEYS[i % 50], "v": {"B": base64.b64encode(VALUE).decode()}, "ver": {"S": "v1"}}


CONDITION = {
    "ConditionExpression": "#ver = :ver",
    "ExpressionAttributeNames": {"#ver": "ver"},
    "ExpressionAttributeValues": {":ver": {"S": "v1"}},
    "ReturnValues": "ALL_OLD",
}


def aiobotocore_calls(client: Any, table: str) -> dict[str, Call]:
    def get(n: int) -> Call:
        return lambda: client.batch_get_item(RequestItems={table: {"Keys": KEYS[:n]}})

    return {
        "BatchGetItem 1": get(1),
        "BatchGetItem 50": get(50),
        "BatchWriteItem 25": lambda: client.batch_write_item(
            RequestItems={table: [{"PutRequest": {"Item": item(i)}} for i in range(25)]}
        ),
        "PutItem if": lambda: client.put_item(TableName=table, Item=item(7), **CONDITION),
    }


def wire_calls(wire: DynamoDBWire, table: str) -> dict[str, Call]:
    def get(n: int) -> Call:
        async def call() -> object:
            answer = await wire.request(
                "BatchGetItem", {"RequestItems": {table: {"Keys": KEYS[:n]}}}
            )
            # What the backend does with each item: decode its value.
            return [base64.b64decode(i["v"]["B"]) for i in answer["Responses"][table]]

        return call

    async def put() -> object:
        body = {"TableName": table, "Item": wire_item(7), **CONDITION}
        return await wire.request("PutItem", body, idempotent=False)

    return {
        "BatchGetItem 1": get(1),
        "BatchGetItem 50": get(50),
        "BatchWriteItem 25": lambda: wire.request(
            "BatchWriteItem",
            {"RequestItems": {table: [{"PutRequest": {"Item": wire_item(i)}} for i in range(25)]}},
        ),
        "PutItem if": put,
    }


def aiodynamo_calls(session: aiohttp.ClientSession, endpoint: str, table: str) -> dict[str, Call]:
    from aiodynamo.client import Client  # type: ignore[import-not-found]
    from aiodynamo.credentials import Key, StaticCredentials  # type: ignore[import-not-found]
    from aiodynamo.expressions import F  # type: ignore[import-not-found]
    from aiodynamo.http.aiohttp import AIOHTTP  # type: ignore[import-not-found]
    from aiodynamo.models import (  # type: ignore[import-not-found]
        BatchGetRequest,
        BatchWriteRequest,
        ReturnValues,
    )
    from yarl import URL

    credentials = StaticCredentials(Key("testing", "testing"))
    client = Client(AIOHTTP(session), credentials, "us-east-1", endpoint=URL(endpoint))
    keys = [{"pk": "c#0", "sk": f"k{i:03}"} for i in range(50)]

    def py_item(i: int) -> dict[str, Any]:
        return {**keys[i % 50], "v": VALUE, "ver": "v1"}

    def get(n: int) -> Call:
        return lambda: client.batch_get({table: BatchGetRequest(keys=keys[:n])})

    return {
        "BatchGetItem 1": get(1),
        "BatchGetItem 50": get(50),
        "BatchWriteItem 25": lambda: client.batch_write(
            {table: BatchWriteRequest(items_to_put=[py_item(i) for i in range(25)])}
        ),
        "PutItem if": lambda: client.put_item(
            table, py_item(7), condition=F("ver").equals("v1"), return_values=ReturnValues.all_old
        ),
    }


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """CPU µs per call of this process and calls/s, after a short warm-up."""
    for _ in range(10):
        await call()

    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    share = [calls // concurrency + (i < calls % concurrency) for i in range(concurrency)]
    cpu, wall = cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker(n) for n in share))
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    return cpu / calls * 1e6, calls / wall


async def run(endpoint: str, calls: int, concurrency: int) -> list[tuple[str, str, float, float]]:
    table = f"bench-{uuid.uuid4().hex[:8]}"
    rows: list[tuple[str, str, float, float]] = []
    async with AsyncExitStack() as stack:
        # A local stand-in: fake credentials, never real ones.
        session = aioboto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        boto = await stack.enter_async_context(
            session.client("dynamodb", endpoint_url=endpoint, config=client_config())
        )
        await boto.create_table(TableName=table, **TABLE_DEFINITION)
        await boto.get_waiter("table_exists").wait(TableName=table)
        for start in (0, 25):
            puts = [{"PutRequest": {"Item": item(i)}} for i in range(start, start + 25)]
            await boto.batch_write_item(RequestItems={table: puts})

        async def static() -> Credentials:
            return Credentials("testing", "testing")

        wire = await stack.enter_async_context(
            DynamoDBWire(endpoint.rstrip("/") + "/", "us-east-1", static)
        )
        clients = {"aiobotocore": aiobotocore_calls(boto, table), "wire": wire_calls(wire, table)}
        try:
            http = await stack.enter_async_context(aiohttp.ClientSession())
            clients["aiodynamo"] = aiodynamo_calls(http, endpoint, table)
        except ImportError:
            print("aiodynamo is not installed: skipped", file=sys.stderr)
        for operation in clients["wire"]:
            for name, calls_of in clients.items():
                us, rate = await measure(calls_of[operation], calls, concurrency)
                rows.append((operation, name, us, rate))
                print(f"{operation:18} {name:12} {us:8.0f} µs CPU/call {rate:8.0f} calls/s")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--impl", choices=dynamodb_local.IMPLEMENTATIONS, default="dynalite")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with dynamodb_local.running(args.impl) as (endpoint, _pid):
        asyncio.run(run(endpoint, args.calls, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
