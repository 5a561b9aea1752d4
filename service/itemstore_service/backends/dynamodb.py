"""The production backend: one DynamoDB table, reached by the lean client of
``dynamodb_wire`` for every item call; aioboto3 only resolves credentials and
creates or checks the table at open.

Item layout: ``pk = "<collection>#<shard>"`` (S), ``sk`` the encoded key (S),
``v`` the stored JSON bytes (B, exact round trip; base64 text on the wire),
``ver`` the version (S), ``fk`` (BOOL, only when the number key was a float)
and ``exp`` (N, Unix seconds, only on an expiring item: DynamoDB's TTL
attribute; it deletes expired items up to days late, so every read, listing,
count and condition here treats an expired item as absent). A key's shard is
``crc32(sk) % shards``, so a hot collection spreads over several partitions;
listings query every shard concurrently and merge in sk order.

Two bookkeeping partitions sit beside the items (no collection name contains
``#``): ``#meta`` records the shard count the table was made with (checked at
open: another count would hide items), and ``#collections`` names every
collection that ever held items; ``list_collections`` shows those that still do.
Every attribute name in an expression is aliased (``#pk``), so none can collide
with DynamoDB's reserved words.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import zlib
from collections.abc import (
    AsyncIterator,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import aioboto3
import pybase64

from ..batching import Tuning
from ..conditions import needs_values
from ..errors import BackendUnavailable
from ..keys import convert_legacy_sk, is_legacy_number_sk
from .base import (
    ConditionFailed,
    ItemKey,
    Listed,
    Puts,
    Record,
    Records,
    RetryHook,
    Scanned,
    TokenReused,
    TransactionFailed,
    TxOp,
    Update,
)
from .dynamodb_errors import (
    ConditionalCheckFailed,
    DynamoDBError,
    IdempotentParameterMismatch,
    TransactionCanceled,
    Unreachable,
)
from .dynamodb_listing import ShardReader, merge_shards, scan_shards
from .dynamodb_setup import (
    FORMAT_ITEM,
    check_format,
    check_shards,
    client_config,
    ensure_table,
    record_of,
    run_all,
)
from .dynamodb_unprocessed import RetryPolicy, until_done
from .dynamodb_wire import DynamoDBWire, WirePolicy, botocore_credentials, endpoint_of

if TYPE_CHECKING:
    from ..conditions import Where
    from ..config import Config

Item = dict[str, Any]
"""One DynamoDB item or key in the low-level wire shape (``{"pk": {"S": ...}}``)."""

REGISTRY_PK = "#collections"
MAX_BATCH_GET = 100  # DynamoDB's limit per BatchGetItem
MAX_BATCH_WRITE = 25  # DynamoDB's limit per BatchWriteItem
REGISTRY_TTL = 30.0  # seconds a process trusts its own registration of a collection
UPDATE_ATTEMPTS = 8  # conditional writes an update tries before it gives up as contended


def _item_key(item: Item) -> ItemKey:
    return item["pk"]["S"].rpartition("#")[0], item["sk"]["S"]


def _registry_put(collection: str) -> Item:
    return {"PutRequest": {"Item": {"pk": {"S": REGISTRY_PK}, "sk": {"S": collection}}}}


# Reading everything but the value: the 1 KiB+ that dominates a response.
_WITHOUT_VALUE: Final = {
    "ProjectionExpression": "#pk, #sk, #ver, #fk, #exp",
    "ExpressionAttributeNames": {
        "#pk": "pk",
        "#sk": "sk",
        "#ver": "ver",
        "#fk": "fk",
        "#exp": "exp",
    },
}

LIVE_FILTER: Final = "attribute_not_exists(#exp) OR #exp > :now"
"""A condition or filter that holds for items not expired (``:now``: see ``_now``)."""


def _now() -> dict[str, Any]:
    """``:now`` for LIVE_FILTER: an integer ``exp`` is past a time exactly when
    it is past the whole second."""
    return {":now": {"N": str(math.floor(time.time()))}}


def _live(record: Record | None) -> Record | None:
    """``record``, or None when it has expired."""
    return None if record is None or record.expired(time.time()) else record


class DynamoDBBackend:
    """Records in one DynamoDB table (see the module docstring for the layout)."""

    name = "dynamodb"

    def __init__(
        self,
        wire: DynamoDBWire,
        table: str,
        shards: int,
        retry: RetryPolicy | None = None,
        on_retry: RetryHook | None = None,
    ) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self.wire = wire
        self.table = table
        self.shards = shards
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self._registered: dict[str, float] = {}

    # -- plumbing ---------------------------------------------------------

    async def _call(
        self, operation: str, body: dict[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        """One DynamoDB call. A failed condition is raised as the
        ConditionalCheckFailed it is; every other failure (after the wire's
        retries) becomes BackendUnavailable naming the error code."""
        try:
            return await self.wire.request(operation, body, idempotent=idempotent)
        except (ConditionalCheckFailed, TransactionCanceled, IdempotentParameterMismatch):
            raise
        except Unreachable as exc:
            raise BackendUnavailable(f"DynamoDB {operation}: cannot reach DynamoDB: {exc}") from exc
        except DynamoDBError as exc:
            raise BackendUnavailable(f"DynamoDB {operation} failed: {exc}") from exc

    def _pk(self, collection: str, sk: str) -> str:
        shard = zlib.crc32(sk.encode("utf-8", "surrogatepass")) % self.shards
        return f"{collection}#{shard}"

    def _key(self, key: ItemKey) -> Item:
        return {"pk": {"S": self._pk(*key)}, "sk": {"S": key[1]}}

    def _item(self, key: ItemKey, record: Record) -> Item:
        item = self._key(key)
        item["v"] = {"B": pybase64.b64encode_as_string(record.value)}
        item["ver"] = {"S": record.version}
        if record.float_key:
            item["fk"] = {"BOOL": True}
        if record.expires_at is not None:
            item["exp"] = {"N": str(record.expires_at)}
        return item

    async def _batch_write(self, requests: list[Item]) -> None:
        async def send(pending: list[Item]) -> list[Item]:
            response = await self._call("BatchWriteItem", {"RequestItems": {self.table: pending}})
            left: list[Item] = response.get("UnprocessedItems", {}).get(self.table, [])
            return left

        await run_all(
            until_done(
                "BatchWriteItem", requests[i : i + MAX_BATCH_WRITE], send, self.retry, self.on_retry
            )
            for i in range(0, len(requests), MAX_BATCH_WRITE)
        )

    async def _register(self, collections: Iterable[str]) -> None:
        """Name the collections in the registry, unless done here recently. Runs
        before the items are written, so a listed collection is never missed."""
        now = time.monotonic()
        names = sorted(
            {c for c in collections if now - self._registered.get(c, -math.inf) > REGISTRY_TTL}
        )
        if names:
            await self._batch_write([_registry_put(name) for name in names])
            self._registered.update(dict.fromkeys(names, now))

    # -- reads ------------------------------------------------------------

    async def get_many(self, keys: Sequence[ItemKey], *, consistent: bool) -> dict[ItemKey, Record]:
        return await self._get_many(keys, consistent=consistent, values=True)

    async def _get_many(
        self, keys: Sequence[ItemKey], *, consistent: bool, values: bool
    ) -> dict[ItemKey, Record]:
        found: dict[ItemKey, Record] = {}
        projection = {} if values else _WITHOUT_VALUE

        async def send(pending: list[Item]) -> list[Item]:
            request = {self.table: {"Keys": pending, "ConsistentRead": consistent, **projection}}
            response = await self._call("BatchGetItem", {"RequestItems": request})
            now = time.time()
            for item in response.get("Responses", {}).get(self.table, []):
                record = record_of(item)
                if not record.expired(now):
                    found[_item_key(item)] = record
            left: list[Item] = (
                response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
            )
            return left

        wanted = [self._key(key) for key in dict.fromkeys(keys)]
        await run_all(
            until_done(
                "BatchGetItem", wanted[i : i + MAX_BATCH_GET], send, self.retry, self.on_retry
            )
            for i in range(0, len(wanted), MAX_BATCH_GET)
        )
        return found

    # -- writes -----------------------------------------------------------

    async def write_many(
        self, puts: Puts, deletes: Sequence[ItemKey], *, previous: Collection[ItemKey]
    ) -> Records:
        """Read the previous records of the keys of ``previous`` (consistent
        batch reads; values only of the deleted items; no read at all when
        ``previous`` is empty), then write in batches of 25. Unlike SQLite, the
        read and the write are not one atomic step: a concurrent writer may
        slip in between."""
        requests: dict[ItemKey, Item] = {}
        for key in deletes:
            requests[key] = {"DeleteRequest": {"Key": self._key(key)}}
        for key, record in puts.items():
            requests[key] = {"PutRequest": {"Item": self._item(key, record)}}
        if not requests:
            return {}
        wanted = set(previous)
        deleted, replaced = await asyncio.gather(
            self._get_many([k for k in deletes if k in wanted], consistent=True, values=True),
            self._get_many([k for k in puts if k in wanted], consistent=True, values=False),
        )
        await self._register(collection for collection, _ in puts)
        await self._batch_write(list(requests.values()))
        return replaced | deleted

    @staticmethod
    def _conditional(expected: str | None) -> dict[str, Any]:
        """The condition that the stored version is ``expected`` (None: absent
        or expired), on an item not expired."""
        if expected is None:
            return {
                "ConditionExpression": "attribute_not_exists(#pk) OR #exp <= :now",
                "ExpressionAttributeNames": {"#pk": "pk", "#exp": "exp"},
                "ExpressionAttributeValues": _now(),
            }
        return {
            "ConditionExpression": f"#ver = :ver AND ({LIVE_FILTER})",
            "ExpressionAttributeNames": {"#ver": "ver", "#exp": "exp"},
            "ExpressionAttributeValues": {":ver": {"S": expected}, **_now()},
        }

    async def put_if(self, key: ItemKey, record: Record, *, expected: str | None) -> Record | None:
        await self._register([key[0]])
        response = await self._write_if("PutItem", key, expected, Item=self._item(key, record))
        old = response.get("Attributes")
        return _live(record_of(old)) if old else None

    async def update_many(self, updates: Mapping[ItemKey, Update]) -> list[ItemKey]:
        """Per item: a consistent read, then a PutItem conditioned on the
        version read; when another writer came first, the update runs again
        at once on the record the failed condition returns, then after short
        jittered pauses on a fresh read (at most UPDATE_ATTEMPTS writes). Values are opaque orjson
        bytes, so UpdateItem cannot change a field inside them."""
        if not updates:
            return []
        current = await self._get_many(list(updates), consistent=True, values=True)
        done = await run_all(
            self._update(key, update, current.get(key)) for key, update in updates.items()
        )
        return [key for key, ok in zip(updates, done, strict=True) if not ok]

    async def _update(self, key: ItemKey, update: Update, current: Record | None) -> bool:
        for attempt in range(UPDATE_ATTEMPTS):
            record = update(current)
            if record is None:
                return True
            if current is None:
                await self._register([key[0]])
            try:
                await self._write_if(
                    "PutItem",
                    key,
                    None if current is None else current.version,
                    Item=self._item(key, record),
                )
                return True
            except ConditionFailed as failed:
                current = failed.current
            if attempt >= 1:
                # Still losing: step aside a moment, then read what is there
                # (the record the failed write saw is stale by then).
                await asyncio.sleep(self.retry.delay(attempt) / 4)
                current = (await self.get_many([key], consistent=True)).get(key)
        return False

    async def delete_if(self, key: ItemKey, *, expected: str) -> Record:
        response = await self._write_if("DeleteItem", key, expected, Key=self._key(key))
        return record_of(response["Attributes"])

    async def _write_if(
        self, operation: str, key: ItemKey, expected: str | None, **target: Item
    ) -> dict[str, Any]:
        """A PutItem or DeleteItem of ``target`` (its Item or Key) on the
        condition that the version is ``expected``, answering the old item."""
        body = {
            "TableName": self.table,
            **target,
            "ReturnValues": "ALL_OLD",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            **self._conditional(expected),
        }
        try:
            return await self._call(operation, body, idempotent=False)
        except ConditionalCheckFailed as failed:
            raise ConditionFailed(await self._current(key, failed)) from None

    async def _current(self, key: ItemKey, failed: ConditionalCheckFailed) -> Record | None:
        """The record that failed the condition. DynamoDB sends it with the
        error (ReturnValuesOnConditionCheckFailure); an implementation that does
        not (dynalite) costs a consistent read: an item is never assumed absent."""
        if failed.item is not None:
            return _live(record_of(failed.item))
        found = await self.get_many([key], consistent=True)
        return found.get(key)

    async def transact(self, ops: Sequence[TxOp], *, token: str | None) -> Records:
        """One TransactWriteItems; ``token`` becomes its ClientRequestToken
        (DynamoDB's own 10-minute idempotency window). The items of patch ops
        are read first (consistently); each is put on the condition that it
        is still at the version read, so a concurrent write fails the
        transaction at that op rather than being lost."""
        patches = [op for op in ops if op.update is not None]
        read = await self._get_many([op.key for op in patches], consistent=True, values=True)
        patched: Records = {}
        items = []
        for index, op in enumerate(ops):
            condition = self._conditional(op.expected) if op.conditional else {}
            if op.update is not None:
                found = read.get(op.key)
                record = op.update(found)
                if record is None:
                    raise TransactionFailed(index, found)
                if record is found:  # this transaction was applied already
                    return {op.key: read[op.key] for op in patches if op.key in read}
                patched[op.key] = record
                condition = self._conditional(None if found is None else found.version)
                items.append({"Put": {"Item": self._item(op.key, record), **condition}})
            elif op.kind == "put" and op.record is not None:
                items.append({"Put": {"Item": self._item(op.key, op.record), **condition}})
            elif op.kind == "delete":
                items.append({"Delete": {"Key": self._key(op.key), **condition}})
            else:
                items.append({"ConditionCheck": {"Key": self._key(op.key), **condition}})
        for item in items:
            (action,) = item.values()
            action["TableName"] = self.table
            if "ConditionExpression" in action:
                action["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        body: dict[str, Any] = {"TransactItems": items}
        if token is not None:
            # At most 36 characters: a digest of the caller's key.
            body["ClientRequestToken"] = hashlib.sha256(token.encode()).hexdigest()[:36]
        await self._register(op.key[0] for op in ops if op.kind == "put")
        try:
            # Sent again after a lost answer only with a token, which makes it safe.
            await self._call("TransactWriteItems", body, idempotent=token is not None)
        except IdempotentParameterMismatch:
            raise TokenReused() from None
        except TransactionCanceled as canceled:
            for index, reason in enumerate(canceled.reasons):
                if reason.get("Code") == "ConditionalCheckFailed":
                    stored = reason.get("Item")
                    if stored:
                        current: Record | None = _live(record_of(stored))
                    else:
                        current = await self._stored(ops[index].key)
                    raise TransactionFailed(index, current) from None
            raise BackendUnavailable(f"DynamoDB TransactWriteItems canceled: {canceled}") from None
        return patched

    async def _stored(self, key: ItemKey) -> Record | None:
        """The item now, for an implementation that does not send it with a
        failed condition (moto): a consistent read."""
        return (await self.get_many([key], consistent=True)).get(key)

    # -- listings ---------------------------------------------------------

    async def query(
        self, collection: str, *, after: str | None, prefix: str, limit: int, keys_only: bool
    ) -> list[Listed]:
        readers = [
            ShardReader(self._call, self.table, f"{collection}#{shard}", after, prefix, keys_only)
            for shard in range(self.shards)
        ]
        return await merge_shards(readers, limit)

    async def scan(
        self,
        collection: str,
        *,
        after: str | None,
        prefix: str = "",
        where: Where,
        limit: int,
        budget: int,
        keys_only: bool,
    ) -> Scanned:
        """DynamoDB cannot read inside the stored value (one binary
        attribute), so the shards are read whole and filtered here."""
        project = keys_only and not needs_values(where)
        readers = [
            ShardReader(self._call, self.table, f"{collection}#{shard}", after, prefix, project)
            for shard in range(self.shards)
        ]
        return await scan_shards(readers, where, limit=limit, budget=budget, keys_only=keys_only)

    async def _query_all(self, pk: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Every page of one partition's Query, following LastEvaluatedKey."""
        start: Item | None = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            body = {
                "TableName": self.table,
                "KeyConditionExpression": "#pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": pk}},
                "ConsistentRead": True,
                **params,
                **extra,
            }
            response = await self._call("Query", body)
            yield response
            start = response.get("LastEvaluatedKey")
            if not start:
                return

    def _live_counts(self, pk: str, **extra: Any) -> AsyncIterator[dict[str, Any]]:
        """Pages of a shard's Query that count its unexpired items."""
        return self._query_all(
            pk,
            ExpressionAttributeNames={"#pk": "pk", "#exp": "exp"},
            ExpressionAttributeValues={":pk": {"S": pk}, **_now()},
            FilterExpression=LIVE_FILTER,
            Select="COUNT",
            **extra,
        )

    async def count(self, collection: str) -> int:
        async def one(pk: str) -> int:
            return sum([page["Count"] async for page in self._live_counts(pk)])

        return sum(await run_all(one(f"{collection}#{s}") for s in range(self.shards)))

    async def delete_collection(self, collection: str) -> int:
        async def one(pk: str) -> int:
            removed = 0
            names = {"#pk": "pk", "#sk": "sk", "#exp": "exp"}
            async for page in self._query_all(
                pk, ExpressionAttributeNames=names, ProjectionExpression="#pk, #sk, #exp", Limit=500
            ):
                items = page.get("Items", [])
                keys = [{"pk": item["pk"], "sk": item["sk"]} for item in items]
                await self._batch_write([{"DeleteRequest": {"Key": key}} for key in keys])
                now = time.time()
                removed += sum(
                    1 for item in items if "exp" not in item or int(item["exp"]["N"]) > now
                )
            return removed

        # The registry entry stays: another process may have written to this
        # collection a moment ago, trusting its own recent registration.
        return sum(await run_all(one(f"{collection}#{s}") for s in range(self.shards)))

    async def _has_items(self, collection: str) -> bool:
        async def one(pk: str) -> bool:
            # The filter applies after Limit: a page may count none of its
            # items (all expired) and still not be the last.
            async for page in self._live_counts(pk, Limit=10):
                if page["Count"]:
                    return True
            return False

        # A collection with items almost always has some in shard 0: one query
        # instead of one per shard for each listed name.
        if await one(f"{collection}#0"):
            return True
        return any(await run_all(one(f"{collection}#{s}") for s in range(1, self.shards)))

    async def list_collections(self, *, after: str | None, limit: int) -> list[str]:
        names: list[str] = []
        condition, values = "#pk = :pk", {":pk": {"S": REGISTRY_PK}}
        if after:  # every name is non-empty, so "" means from the start
            condition += " AND #sk > :after"
            values[":after"] = {"S": after}
        start: Item | None = None
        while len(names) < limit:
            extra = {"ExclusiveStartKey": start} if start else {}
            body = {
                "TableName": self.table,
                "KeyConditionExpression": condition,
                "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk"} if after else {"#pk": "pk"},
                "ExpressionAttributeValues": values,
                "Limit": min(limit - len(names), 100),  # each name costs a query per shard
                "ConsistentRead": True,
                **extra,
            }
            response = await self._call("Query", body)
            candidates = [item["sk"]["S"] for item in response.get("Items", [])]
            if candidates:
                present = await run_all(self._has_items(name) for name in candidates)
                names += [name for name, ok in zip(candidates, present, strict=True) if ok]
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        return names

    async def ping(self) -> None:
        await self._call("DescribeTable", {"TableName": self.table})

    async def convert_legacy_keys(self) -> int:
        """Rewrite every number key of storage format 1 in the new encoding
        (the item moves to its new key's shard: a put of the new item, then a
        delete of the old); return how many. Old and new sort keys never
        collide, so an interrupted run is finished by running it again."""
        converted = 0
        params: dict[str, Any] = {"TableName": self.table}
        while True:
            page = await self._call("Scan", params)
            old = [
                item
                for item in page.get("Items", [])
                if not item["pk"]["S"].startswith("#") and is_legacy_number_sk(item["sk"]["S"])
            ]
            moved = [{**item, **self._key(self._new_key(item))} for item in old]
            await self._batch_write([{"PutRequest": {"Item": item}} for item in moved])
            await self._batch_write(
                [{"DeleteRequest": {"Key": {"pk": i["pk"], "sk": i["sk"]}}} for i in old]
            )
            converted += len(old)
            if "LastEvaluatedKey" not in page:
                return converted
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    @staticmethod
    def _new_key(item: Item) -> ItemKey:
        collection, sk = _item_key(item)
        return collection, convert_legacy_sk(sk)


# DynamoDB reads 100 keys and writes 25 items per call (a write batch of 100 is
# four calls in parallel). Few calls in flight make big batches: against moto,
# 2 reads / 1 write in flight served 1.6x the requests of 8 / 4 (bench, mixed
# workload).
TUNING: Final = Tuning(read_batch=100, read_in_flight=2, write_batch=100, write_in_flight=1)


def describe(config: Config) -> str:
    """The table, for the startup line."""
    return config.dynamodb_table


@asynccontextmanager
async def open(
    config: Config, *, on_retry: RetryHook | None = None, check_storage_format: bool = True
) -> AsyncIterator[DynamoDBBackend]:
    """Open one client for the backend's lifetime; create the table when missing
    if ``config.dynamodb_create_table``, else check that it exists, and that
    its storage format is this service's. ``on_retry`` is told of every
    unprocessed request re-sent."""
    session = aioboto3.Session()
    table, shards = config.dynamodb_table, config.dynamodb_shards
    where = config.dynamodb_endpoint or f"AWS {config.dynamodb_region}"
    # The table is made and checked through aioboto3, once.
    async with session.client(
        "dynamodb",
        endpoint_url=config.dynamodb_endpoint,
        region_name=config.dynamodb_region,
        config=client_config(),
    ) as client:
        await ensure_table(client, table, create=config.dynamodb_create_table, where=where)
        await check_shards(client, table, shards)
        if check_storage_format:
            await check_format(client, table)
    # Every item call goes through the lean client, signed with the credentials
    # botocore resolves (refreshed when temporary).
    try:
        credentials = await botocore_credentials(session)
    except Unreachable as exc:
        raise BackendUnavailable(f"DynamoDB at {where}: {exc}") from exc
    endpoint = endpoint_of(config.dynamodb_endpoint, config.dynamodb_region)
    async with DynamoDBWire(endpoint, config.dynamodb_region, credentials, WirePolicy()) as wire:
        yield DynamoDBBackend(wire, table, shards, on_retry=on_retry)


async def migrate(config: Config) -> int:
    """Convert the table to the current storage format; return how many keys
    were rewritten."""
    async with open(config, check_storage_format=False) as backend:
        converted = await backend.convert_legacy_keys()
        await backend._call("PutItem", {"TableName": backend.table, "Item": FORMAT_ITEM})
    return converted
