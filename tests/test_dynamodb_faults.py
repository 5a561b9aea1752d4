"""DynamoDB faults that moto and dynalite cannot produce: throttled batches and errors.

Real DynamoDB hands back part of a BatchWriteItem / BatchGetItem as
UnprocessedItems / UnprocessedKeys when a partition is throttled, and answers
ProvisionedThroughputExceededException or ThrottlingException under load; the
servers of the suite always process everything. So these tests wrap the
backend's real wire client in a thin layer that injects exactly those answers,
and otherwise passes every call through to the server (moto, then dynalite);
what ends up stored is then read back from it. The wire's own retries of such
answers are tested in test_dynamodb_wire.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from itemstore_service.backends import dynamodb
from itemstore_service.backends.base import ConditionFailed, ItemKey, Record
from itemstore_service.backends.dynamodb import DynamoDBBackend
from itemstore_service.backends.dynamodb_errors import error_of
from itemstore_service.backends.dynamodb_unprocessed import RetryPolicy
from itemstore_service.backends.dynamodb_wire import DynamoDBWire
from itemstore_service.config import Config
from itemstore_service.errors import BackendUnavailable
from itemstore_service.keys import encode_key
from itemstore_service.observability.instrumented import count_unprocessed_retries
from itemstore_service.observability.metrics import UNPROCESSED_RETRIES

FAST = RetryPolicy(attempts=4, base=0.001, cap=0.004)


class UnprocessedWire:
    """The real wire client, except that each of the first ``faults`` calls of
    ``operation`` (a batch) sends only its first ``keep`` requests to moto and
    returns the rest as unprocessed, as a throttled DynamoDB does."""

    def __init__(self, real: DynamoDBWire, operation: str, *, faults: float, keep: int) -> None:
        self.real, self.operation, self.faults, self.keep = real, operation, faults, keep
        self.calls = self.injected = 0

    async def request(
        self, operation: str, body: dict[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        if operation != self.operation:
            return await self.real.request(operation, body, idempotent=idempotent)
        self.calls += 1
        if self.injected >= self.faults:
            return await self.real.request(operation, body)
        self.injected += 1
        ((table, request),) = body["RequestItems"].items()
        if operation == "BatchWriteItem":
            sent, left = request[: self.keep], request[self.keep :]
            response: dict[str, Any] = {}
            if sent:
                response = await self.real.request(operation, {"RequestItems": {table: sent}})
            response["UnprocessedItems"] = {table: left} if left else {}
            return response
        sent, left = request["Keys"][: self.keep], request["Keys"][self.keep :]
        response = {"Responses": {table: []}}
        if sent:
            response = await self.real.request(
                operation, {"RequestItems": {table: {**request, "Keys": sent}}}
            )
        response["UnprocessedKeys"] = {table: {**request, "Keys": left}} if left else {}
        return response


class FailingWire:
    """The real wire client, except that ``operation`` fails with the given
    error code (as it would once the wire's own retries are spent)."""

    def __init__(self, real: DynamoDBWire, operation: str, code: str, message: str) -> None:
        self.real, self.operation = real, operation
        self.answer = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}

    async def request(
        self, operation: str, body: dict[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        if operation == self.operation:
            raise error_of(400, self.answer)
        return await self.real.request(operation, body, idempotent=idempotent)


@pytest.fixture
async def real(any_dynamodb_config: Config) -> AsyncIterator[DynamoDBBackend]:
    """A backend on a fresh table (moto, then dynalite), without injected faults."""
    async with dynamodb.open(any_dynamodb_config) as backend:
        yield backend


def faulty(real: DynamoDBBackend, wire: Any) -> DynamoDBBackend:
    """A backend on the same table whose calls go through ``wire``; retries
    are counted as the app counts them."""
    return DynamoDBBackend(
        wire, real.table, real.shards, retry=FAST, on_retry=count_unprocessed_retries
    )


def items(n: int) -> dict[ItemKey, Record]:
    return {("c", encode_key(i)): Record(b"%d" % i, f"v{i}") for i in range(n)}


@pytest.mark.parametrize("keep", [0, 7])
async def test_partly_unprocessed_writes_complete(real: DynamoDBBackend, keep: int) -> None:
    # keep=0: calls that make no progress at all, but fewer than the retry bound.
    client = UnprocessedWire(real.wire, "BatchWriteItem", faults=3, keep=keep)
    puts = items(60)
    retries = UNPROCESSED_RETRIES.labels(kind="write")
    before = retries._value.get()
    assert await faulty(real, client).write_many(puts, [], previous=puts) == {}
    assert client.injected == 3 and client.calls > 3
    # each injected fault leaves at least one request to retry, and the metric counts them
    assert retries._value.get() - before >= client.injected
    assert await real.get_many(list(puts), consistent=True) == puts
    assert await real.list_collections(after=None, limit=10) == ["c"]


@pytest.mark.parametrize("keep", [0, 7])
async def test_partly_unprocessed_reads_complete(real: DynamoDBBackend, keep: int) -> None:
    puts = items(130)
    await real.write_many(puts, [], previous=())
    client = UnprocessedWire(real.wire, "BatchGetItem", faults=3, keep=keep)
    assert await faulty(real, client).get_many(list(puts), consistent=False) == puts
    assert client.injected == 3 and client.calls > 3


async def test_partly_unprocessed_deletes_complete(real: DynamoDBBackend) -> None:
    puts = items(30)
    await real.write_many(puts, [], previous=())
    client = UnprocessedWire(real.wire, "BatchWriteItem", faults=3, keep=5)
    assert await faulty(real, client).write_many({}, list(puts), previous=puts) == puts
    assert client.injected == 3
    assert await real.count("c") == 0


async def test_always_unprocessed_reads_give_up(real: DynamoDBBackend) -> None:
    puts = items(10)
    await real.write_many(puts, [], previous=())
    client = UnprocessedWire(real.wire, "BatchGetItem", faults=float("inf"), keep=0)
    with pytest.raises(BackendUnavailable, match="unprocessed after 4 attempts"):
        await faulty(real, client).get_many(list(puts), consistent=False)
    assert client.calls == FAST.attempts


async def test_always_unprocessed_writes_give_up(real: DynamoDBBackend) -> None:
    client = UnprocessedWire(real.wire, "BatchWriteItem", faults=float("inf"), keep=0)
    with pytest.raises(BackendUnavailable, match="BatchWriteItem: 1 requests still"):
        await faulty(real, client).write_many({("c", "sy"): Record(b"1", "v")}, [], previous=())
    assert client.calls == FAST.attempts
    assert await real.get_many([("c", "sy")], consistent=True) == {}


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ("BatchGetItem", "ProvisionedThroughputExceededException"),
        ("BatchWriteItem", "ThrottlingException"),
        ("BatchWriteItem", "RequestLimitExceeded"),
    ],
)
async def test_throttling_errors_are_backend_unavailable(
    real: DynamoDBBackend, operation: str, code: str
) -> None:
    backend = faulty(real, FailingWire(real.wire, operation, code, "slow down"))
    with pytest.raises(BackendUnavailable) as failed:
        await backend.write_many({("c", "sa"): Record(b"1", "v")}, [], previous=[("c", "sa")])
    assert code in failed.value.detail and "slow down" in failed.value.detail


async def test_conditional_calls_tell_throttling_from_condition(real: DynamoDBBackend) -> None:
    await real.write_many({("c", "sa"): Record(b"1", "v1")}, [], previous=())
    code = "ProvisionedThroughputExceededException"
    put_fails = faulty(real, FailingWire(real.wire, "PutItem", code, "slow down"))
    with pytest.raises(BackendUnavailable, match=code):
        await put_fails.put_if(("c", "sa"), Record(b"2", "v2"), expected="v1")
    delete_fails = faulty(real, FailingWire(real.wire, "DeleteItem", code, "slow down"))
    with pytest.raises(BackendUnavailable, match=code):
        await delete_fails.delete_if(("c", "sa"), expected="v1")
    # Through the real wire the same calls meet a real condition.
    with pytest.raises(ConditionFailed):
        await real.delete_if(("c", "sa"), expected="v0")


async def test_validation_error_keeps_its_message(real: DynamoDBBackend) -> None:
    message = "Item size has exceeded the maximum allowed size"
    backend = faulty(real, FailingWire(real.wire, "BatchWriteItem", "ValidationException", message))
    with pytest.raises(BackendUnavailable) as failed:
        await backend.write_many({("c", "sa"): Record(b"1", "v")}, [], previous=())
    assert "ValidationException" in failed.value.detail and message in failed.value.detail


def test_backoff_is_bounded() -> None:
    policy = RetryPolicy(attempts=6, base=0.02, cap=0.5)
    for stalls in range(12):
        ceiling = min(0.5, 0.02 * 2**stalls)
        assert ceiling / 2 <= policy.delay(stalls) <= ceiling
