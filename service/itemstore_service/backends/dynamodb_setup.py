"""The plumbing under the DynamoDB backend: client settings, one call path that
turns every failure into ``BackendUnavailable``, concurrent calls, the record
of an item, and the table checks made once at open (exists or is created, key
schema, shard count)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterable
from typing import Any, Final, TypeVar

import aiohttp
import pybase64
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import BackendUnavailable
from ..keys import STORAGE_FORMAT, StorageFormatOutdated, is_legacy_number_sk
from .base import Record

T = TypeVar("T")
log = logging.getLogger("itemstore.dynamodb")
CONDITION_FAILED = "ConditionalCheckFailedException"
META_PK = "#meta"
_NETWORK_ERRORS = (BotoCoreError, aiohttp.ClientError, OSError)


def client_config(pool: int = 64) -> BotoConfig:
    """botocore settings for the one shared client: a pool sized for concurrent
    batches, standard retries (throttling included), bounded timeouts."""
    return BotoConfig(
        max_pool_connections=pool,
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=5,
        read_timeout=10,
        tcp_keepalive=True,
    )


def unavailable(operation: str, exc: ClientError) -> BackendUnavailable:
    """The BackendUnavailable naming a DynamoDB error code and message."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "Unknown"), error.get("Message", "")
    return BackendUnavailable(f"DynamoDB {operation} failed: {code}: {message}".rstrip(": "))


async def call(client: Any, operation: str, **params: Any) -> dict[str, Any]:
    """One client call. A failed condition check is raised as the ClientError it
    is; every other failure becomes BackendUnavailable naming the error code."""
    try:
        response: dict[str, Any] = await getattr(client, operation)(**params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == CONDITION_FAILED:
            raise
        raise unavailable(operation, exc) from exc
    except _NETWORK_ERRORS as exc:
        raise BackendUnavailable(f"DynamoDB {operation}: cannot reach DynamoDB: {exc}") from exc
    return response


async def run_all(coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run coroutines concurrently; on the first failure cancel the rest and raise it."""
    todo = list(coros)
    if len(todo) == 1:
        return [await todo[0]]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coro) for coro in todo]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


def record_of(item: dict[str, Any]) -> Record:
    """The Record of a stored item in the wire's JSON shape (the value base64
    text; ``b""`` when not projected)."""
    # pybase64 (SIMD) decodes 1 KiB in a sixth of binascii's time.
    value = pybase64.b64decode(item["v"]["B"], validate=True) if "v" in item else b""
    float_key = "fk" in item and item["fk"].get("BOOL") is True
    expires_at = int(item["exp"]["N"]) if "exp" in item else None
    return Record(value, item["ver"]["S"], float_key, expires_at)


# The single table: pk = "<collection>#<shard>", sk = the encoded key; on demand.
TABLE_DEFINITION: Final[dict[str, Any]] = {
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}


TTL_ATTRIBUTE = "exp"
"""The item attribute DynamoDB's own TTL deletes expired items by."""


async def ensure_table(client: Any, table: str, *, create: bool, where: str) -> None:
    """Create the table when ``create`` and missing (a concurrent creator is
    fine), with DynamoDB's TTL on ``exp`` once it is ACTIVE; wait until it is
    ACTIVE, and check its key schema."""
    created = False
    if create:
        try:
            await client.create_table(TableName=table, **TABLE_DEFINITION)
            created = True
        except ClientError as exc:
            # Another worker creating the same table at the same time is fine.
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise unavailable("CreateTable", exc) from exc
        except _NETWORK_ERRORS as exc:
            raise BackendUnavailable(f"cannot reach DynamoDB at {where}: {exc}") from exc
    deadline = time.monotonic() + 120
    while True:
        try:
            described = await call(client, "describe_table", TableName=table)
        except BackendUnavailable as exc:
            if "ResourceNotFoundException" in exc.detail:
                raise BackendUnavailable(
                    f"DynamoDB table {table!r} does not exist at {where}: create it"
                    " (pk S HASH, sk S RANGE) or start with --dynamodb-create-table"
                ) from exc
            raise
        status = described["Table"]["TableStatus"]
        if status == "ACTIVE":
            break
        if time.monotonic() > deadline:
            raise BackendUnavailable(f"DynamoDB table {table!r} is {status}, not ACTIVE")
        await asyncio.sleep(0.5)
    if created:
        await enable_ttl(client, table)
    schema = {k["AttributeName"]: k["KeyType"] for k in described["Table"]["KeySchema"]}
    if schema != {"pk": "HASH", "sk": "RANGE"}:
        raise BackendUnavailable(
            f"DynamoDB table {table!r} has key schema {schema}, expected pk HASH and sk RANGE"
        )


async def enable_ttl(client: Any, table: str) -> None:
    """Turn on DynamoDB's TTL on ``exp``. An implementation without TTL
    (dynalite) is told of in the log: expired items then stay stored, unseen."""
    try:
        await call(
            client,
            "update_time_to_live",
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
    except BackendUnavailable as exc:
        if "UnknownOperationException" not in exc.detail:
            raise
        log.warning("this DynamoDB has no TTL: expired items stay stored (and unseen)")


async def check_shards(client: Any, table: str, shards: int) -> None:
    """Record the shard count in a new table; refuse a table made with another
    count (items would be looked for in the wrong partitions)."""
    meta = {"pk": {"S": META_PK}, "sk": {"S": "shards"}}
    try:
        await call(
            client,
            "put_item",
            TableName=table,
            Item={**meta, "n": {"N": str(shards)}},
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": "pk"},
        )
        return
    except ClientError:
        pass  # already recorded: compare
    response = await call(client, "get_item", TableName=table, Key=meta, ConsistentRead=True)
    stored = int(response["Item"]["n"]["N"])
    if stored != shards:
        raise BackendUnavailable(
            f"DynamoDB table {table!r} was created with {stored} shards per collection;"
            f" start with --dynamodb-shards {stored}"
        )


_FORMAT_KEY: Final = {"pk": {"S": META_PK}, "sk": {"S": "format"}}
FORMAT_ITEM: Final = {**_FORMAT_KEY, "n": {"N": str(STORAGE_FORMAT)}}
"""The bookkeeping item that records the table's storage format."""


async def has_legacy_keys(client: Any, table: str) -> bool:
    """Whether any item has a number key as storage format 1 wrote it (a Scan
    of the whole table: done once, for a table that records no format)."""
    params: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "begins_with(#sk, :n)",
        "ExpressionAttributeNames": {"#sk": "sk", "#pk": "pk"},
        "ExpressionAttributeValues": {":n": {"S": "n"}},
        "ProjectionExpression": "#pk, #sk",
    }
    while True:
        page = await call(client, "scan", **params)
        if any(
            not item["pk"]["S"].startswith("#") and is_legacy_number_sk(item["sk"]["S"])
            for item in page.get("Items", [])
        ):
            return True
        if "LastEvaluatedKey" not in page:
            return False
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def check_format(client: Any, table: str) -> None:
    """Refuse a table of another storage format, saying how to convert it; a
    table that records none is stamped when it holds no number key to convert."""
    response = await call(client, "get_item", TableName=table, Key=_FORMAT_KEY, ConsistentRead=True)
    version = int(response["Item"]["n"]["N"]) if "Item" in response else 1
    if version == STORAGE_FORMAT:
        return
    if version > STORAGE_FORMAT:
        raise StorageFormatOutdated(
            f"DynamoDB table {table!r} is in storage format {version}, newer than this"
            f" itemstore's ({STORAGE_FORMAT}): upgrade itemstore"
        )
    if await has_legacy_keys(client, table):
        raise StorageFormatOutdated(
            f"DynamoDB table {table!r} is in storage format 1, which lists number keys as"
            " text: stop the service and run `itemstore migrate --backend dynamodb"
            f" --dynamodb-table {table}` (with the same endpoint and region flags)"
        )
    await call(client, "put_item", TableName=table, Item=FORMAT_ITEM)
