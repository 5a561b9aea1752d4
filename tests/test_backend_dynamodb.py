"""The backend conformance suite on the DynamoDB backend, on two independent
DynamoDB implementations (a moto server and a dynalite server, a table per
test), and what is particular to DynamoDB: table setup, the stored layout,
shards, the collection registry, unreachable endpoints."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import orjson
import pytest

from itemstore_service.app import create_app
from itemstore_service.backends import dynamodb
from itemstore_service.backends.base import Record
from itemstore_service.backends.dynamodb import DynamoDBBackend
from itemstore_service.backends.dynamodb_sigv4 import Credentials
from itemstore_service.backends.dynamodb_wire import DynamoDBWire, WirePolicy
from itemstore_service.config import Config
from itemstore_service.errors import BackendUnavailable, Contended
from itemstore_service.keys import encode_key
from itemstore_service.patching import parse_operations
from itemstore_service.transactions import TransactionOp, run_transaction
from tests.backend_conformance import BackendConformance, Opener


@pytest.fixture
def dynamodb_config(any_dynamodb_config: Config) -> Config:
    """Every test of this module runs on moto and on dynalite."""
    return any_dynamodb_config


class TestDynamoDBBackend(BackendConformance):
    @pytest.fixture
    def open_backend(self, dynamodb_config: Config) -> Opener:
        return lambda: dynamodb.open(dynamodb_config)


@pytest.fixture
async def raw_client(dynamodb_config: Config) -> AsyncIterator[Any]:
    """A plain client of the test's DynamoDB server, to look at or prepare tables directly."""
    async with aioboto3.Session().client(
        "dynamodb", endpoint_url=dynamodb_config.dynamodb_endpoint, region_name="us-east-1"
    ) as client:
        yield client


async def scan(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    start: dict[str, Any] = {}
    while True:
        page = await client.scan(TableName=table, **start)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


async def test_missing_table_is_reported(dynamodb_config: Config) -> None:
    config = dataclasses.replace(dynamodb_config, dynamodb_create_table=False)
    with pytest.raises(BackendUnavailable) as failed:
        async with dynamodb.open(config):
            pass
    assert config.dynamodb_table in failed.value.detail
    assert "--dynamodb-create-table" in failed.value.detail


async def test_existing_table_is_used_without_create(dynamodb_config: Config) -> None:
    async with dynamodb.open(dynamodb_config) as backend:
        await backend.write_many({("c", "sa"): Record(b"1", "v")}, [], previous=())
    config = dataclasses.replace(dynamodb_config, dynamodb_create_table=False)
    async with dynamodb.open(config) as backend:
        got = await backend.get_many([("c", "sa")], consistent=True)
    assert got == {("c", "sa"): Record(b"1", "v")}


async def test_concurrent_creators_share_the_table(dynamodb_config: Config) -> None:
    async with dynamodb.open(dynamodb_config) as a, dynamodb.open(dynamodb_config) as b:
        await a.write_many({("c", "sk"): Record(b"[]", "v")}, [], previous=())
        assert await b.get_many([("c", "sk")], consistent=True) == {("c", "sk"): Record(b"[]", "v")}
    # Several workers starting at the same instant.
    opened = await asyncio.gather(*(_open_and_ping(dynamodb_config) for _ in range(4)))
    assert opened == [dynamodb_config.dynamodb_table] * 4


async def _open_and_ping(config: Config) -> str:
    async with dynamodb.open(config) as backend:
        await backend.ping()
        return backend.table


async def test_other_shard_count_is_refused(dynamodb_config: Config) -> None:
    async with dynamodb.open(dynamodb_config):
        pass
    config = dataclasses.replace(dynamodb_config, dynamodb_shards=3)
    with pytest.raises(BackendUnavailable, match="created with 8 shards"):
        async with dynamodb.open(config):
            pass


async def test_wrong_key_schema_is_refused(dynamodb_config: Config, raw_client: Any) -> None:
    await raw_client.create_table(
        TableName=dynamodb_config.dynamodb_table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(BackendUnavailable, match="key schema"):
        async with dynamodb.open(dynamodb_config):
            pass


async def test_stored_layout(dynamodb_config: Config, raw_client: Any) -> None:
    """One binary value attribute, a version, fk only for float keys, and
    items spread over the collection's shards by crc32 of the sort key."""
    async with dynamodb.open(dynamodb_config) as backend:
        puts = {("c", encode_key(i)): Record(orjson.dumps([i, "é"]), f"v{i}") for i in range(64)}
        puts[("c", encode_key(0.5))] = Record(b"0.5", "vf", float_key=True)
        await backend.write_many(puts, [], previous=())
    items = await scan(raw_client, dynamodb_config.dynamodb_table)
    stored = {i["sk"]["S"]: i for i in items if i["pk"]["S"].startswith("c#")}
    assert len(stored) == 65
    for (_, sk), record in puts.items():
        item = stored[sk]
        assert item["pk"]["S"] == f"c#{zlib.crc32(sk.encode()) % 8}"
        assert item["v"]["B"] == record.value and item["ver"]["S"] == record.version
        expected = {"pk", "sk", "v", "ver"} | ({"fk"} if record.float_key else set())
        assert set(item) == expected
    assert len({item["pk"]["S"] for item in stored.values()}) == 8
    registry = [i["sk"]["S"] for i in items if i["pk"]["S"] == "#collections"]
    assert registry == ["c"]


async def test_delete_collection_by_another_process(dynamodb_config: Config) -> None:
    """Process A registered "c" a moment ago and writes again; process B has
    cleared "c" in between: "c" must still be listed."""
    async with dynamodb.open(dynamodb_config) as a, dynamodb.open(dynamodb_config) as b:
        await a.write_many({("c", "s1"): Record(b"1", "v")}, [], previous=())
        assert await b.delete_collection("c") == 1
        assert await a.list_collections(after=None, limit=10) == []
        await a.write_many({("c", "s2"): Record(b"2", "v")}, [], previous=())
        assert await b.list_collections(after=None, limit=10) == ["c"]


async def test_list_collections_skips_many_emptied(dynamodb_config: Config) -> None:
    async with dynamodb.open(dynamodb_config) as backend:
        names = [f"c{i:02}" for i in range(12)]
        await backend.write_many({(n, "sx"): Record(b"1", "v") for n in names}, [], previous=())
        await backend.write_many(
            {}, [(n, "sx") for n in names if n not in ("c03", "c10")], previous=()
        )
        assert await backend.list_collections(after=None, limit=1) == ["c03"]
        assert await backend.list_collections(after="c03", limit=5) == ["c10"]


async def test_a_collection_is_listed_whichever_shard_holds_its_items(
    dynamodb_config: Config,
) -> None:
    async with dynamodb.open(dynamodb_config) as backend:

        def shard(sk: str) -> int:
            return zlib.crc32(sk.encode()) % backend.shards

        assert (shard("sc"), shard("sa")) == (0, 4)  # with the default 8 shards
        await backend.write_many({("in0", "sc"): Record(b"1", "v")}, [], previous=())
        await backend.write_many({("in4", "sa"): Record(b"1", "v")}, [], previous=())
        assert await backend.list_collections(after=None, limit=10) == ["in0", "in4"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_endpoint_is_backend_unavailable() -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}/"
    # One attempt and short timeouts keep this test fast; the real settings retry.
    quick = WirePolicy(attempts=1, connect_timeout=1)
    async with DynamoDBWire(endpoint, "us-east-1", static_credentials, quick) as wire:
        backend = DynamoDBBackend(wire, "itemstore", 8)
        with pytest.raises(BackendUnavailable, match="cannot reach DynamoDB"):
            await backend.ping()
        with pytest.raises(BackendUnavailable, match="cannot reach DynamoDB"):
            await backend.get_many([("c", "sa")], consistent=False)


async def static_credentials() -> Credentials:
    return Credentials("testing", "testing")


async def test_created_table_has_ttl_on_exp(
    dynamodb_config: Config, raw_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """DynamoDB itself deletes expired items: TTL on ``exp``, which holds the
    expiry as Unix seconds. dynalite has no TTL: the log says so."""
    async with dynamodb.open(dynamodb_config) as backend:
        expiring = Record(b"1", "v", expires_at=4_000_000_000)
        await backend.write_many({("c", "sk"): expiring}, [], previous=())
    if "no TTL" not in caplog.text:
        ttl = await raw_client.describe_time_to_live(TableName=dynamodb_config.dynamodb_table)
        assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
        assert ttl["TimeToLiveDescription"]["AttributeName"] == "exp"
    items = await scan(raw_client, dynamodb_config.dynamodb_table)
    (item,) = [i for i in items if i["sk"]["S"] == "sk"]
    assert item["exp"] == {"N": "4000000000"}


async def test_readyz_keeps_the_storage_error_out_of_its_answer(
    dynamodb_config: Config, raw_client: Any, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(dynamodb_config))
    assert (await client.get("/readyz")).status == 200
    await raw_client.delete_table(TableName=dynamodb_config.dynamodb_table)
    # dynalite deletes a table in the background (DELETING, then gone).
    waiter = raw_client.get_waiter("table_not_exists")
    await waiter.wait(
        TableName=dynamodb_config.dynamodb_table, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    answer = await client.get("/readyz")  # asked by anyone: no token needed
    assert answer.status == 503
    text = await answer.text()
    assert dynamodb_config.dynamodb_table not in text and "ResourceNotFound" not in text
    assert (await answer.json())["detail"] == (
        "the dynamodb backend failed its check; the cause is in the server log"
    )


async def test_a_write_between_a_transaction_read_and_its_write_fails_it_whole(
    moto_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction's patch is put on the condition that the item is still
    at the version it read: another writer landing in between fails the
    transaction (Contended, retry) rather than being lost. The other writer
    is injected right after the read (a fake around the real read, as no
    real client can be timed into that gap); its write is real."""
    async with dynamodb.open(moto_config) as backend:
        item = ("stats", encode_key("n"))
        await backend.write_many({item: Record(b'{"n":1}', "v1")}, [], previous=())
        read = backend._get_many

        async def read_then_other_writer(*args: Any, **kwargs: Any) -> Any:
            found = await read(*args, **kwargs)
            monkeypatch.undo()  # once
            await backend.write_many({item: Record(b'{"n":10}', "other")}, [], previous=())
            return found

        monkeypatch.setattr(backend, "_get_many", read_then_other_writer)
        ops = [
            TransactionOp("put", "log", "e", b"1"),
            TransactionOp("patch", "stats", "n", change=parse_operations({"increment": {"n": 1}})),
        ]
        with pytest.raises(Contended) as contended:
            await run_transaction(backend, ops, token=None, max_value_bytes=1000)
        assert contended.value.extra == {"index": 1}
        assert "retry" in contended.value.detail
        found = await backend.get_many([item, ("log", encode_key("e"))], consistent=True)
        assert found == {item: Record(b'{"n":10}', "other")}  # the other write, and nothing else
        # Sent again, it applies to what is there now.
        assert await run_transaction(backend, ops, token=None, max_value_bytes=1000)
        assert (await backend.get_many([item], consistent=True))[item].value == b'{"n":11}'
