"""DynamoDB faults that moto cannot produce: throttled batches and errors.

Real DynamoDB hands back part of a BatchWriteItem / BatchGetItem as
UnprocessedItems / UnprocessedKeys when a partition is throttled, and answers
ProvisionedThroughputExceededException or ThrottlingException under load; moto
always processes everything. So these tests wrap the real client of a moto
server in a thin layer that injects exactly those answers, and otherwise passes
every call through to moto; what ends up stored is then read back from moto.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from itemstore_service.backends import dynamodb
from itemstore_service.backends.base import ConditionFailed, ItemKey, Record
from itemstore_service.backends.dynamodb import DynamoDBBackend, RetryPolicy
from itemstore_service.config import Config
from itemstore_service.errors import BackendUnavailable
from itemstore_service.keys import encode_key
from itemstore_service.observability.instrumented import count_unprocessed_retries
from itemstore_service.observability.metrics import UNPROCESSED_RETRIES

FAST = RetryPolicy(attempts=4, base=0.001, cap=0.004)


class UnprocessedClient:
    """The real client, except that each of the first ``faults`` calls of
    ``operation`` (a batch) sends only its first ``keep`` requests to moto and
    returns the rest as unprocessed, as a throttled DynamoDB does."""

    def __init__(self, real: Any, operation: str, *, faults: float, keep: int) -> None:
        self.real, self.operation, self.faults, self.keep = real, operation, faults, keep
        self.calls = self.injected = 0

    def __getattr__(self, name: str) -> Any:
        if name != self.operation:
            return getattr(self.real, name)
        return self._batch_write if name == "batch_write_item" else self._batch_get

    def _inject(self) -> bool:
        self.calls += 1
        if self.injected < self.faults:
            self.injected += 1
            return True
        return False

    async def _batch_write(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
        if not self._inject():
            return dict(await self.real.batch_write_item(RequestItems=RequestItems))
        ((table, requests),) = RequestItems.items()
        sent, left = requests[: self.keep], requests[self.keep :]
        response: dict[str, Any] = {}
        if sent:
            response = dict(await self.real.batch_write_item(RequestItems={table: sent}))
        response["UnprocessedItems"] = {table: left} if left else {}
        return response

    async def _batch_get(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
        if not self._inject():
            return dict(await self.real.batch_get_item(RequestItems=RequestItems))
        ((table, request),) = RequestItems.items()
        sent, left = request["Keys"][: self.keep], request["Keys"][self.keep :]
        response: dict[str, Any] = {"Responses": {table: []}}
        if sent:
            response = dict(
                await self.real.batch_get_item(RequestItems={table: {**request, "Keys": sent}})
            )
        response["UnprocessedKeys"] = {table: {**request, "Keys": left}} if left else {}
        return response


class FailingClient:
    """The real client, except that ``operation`` raises the given error code."""

    def __init__(self, real: Any, operation: str, code: str, message: str) -> None:
        self.real, self.operation = real, operation
        self.error = {"Error": {"Code": code, "Message": message}}

    def __getattr__(self, name: str) -> Any:
        if name != self.operation:
            return getattr(self.real, name)

        async def fail(**params: Any) -> dict[str, Any]:
            raise ClientError(self.error, name)

        return fail


@pytest.fixture
async def real(dynamodb_config: Config) -> AsyncIterator[DynamoDBBackend]:
    """A backend on a fresh moto table, without injected faults."""
    async with dynamodb.open(dynamodb_config) as backend:
        yield backend


def faulty(real: DynamoDBBackend, client: Any) -> DynamoDBBackend:
    # Retries are counted as the app counts them.
    return DynamoDBBackend(
        client, real.table, real.shards, retry=FAST, on_retry=count_unprocessed_retries
    )


def items(n: int) -> dict[ItemKey, Record]:
    return {("c", encode_key(i)): Record(b"%d" % i, f"v{i}") for i in range(n)}


@pytest.mark.parametrize("keep", [0, 7])
async def test_partly_unprocessed_writes_complete(real: DynamoDBBackend, keep: int) -> None:
    # keep=0: calls that make no progress at all, but fewer than the retry bound.
    client = UnprocessedClient(real.client, "batch_write_item", faults=3, keep=keep)
    puts = items(60)
    retries = UNPROCESSED_RETRIES.labels(kind="write")
    before = retries._value.get()
    assert await faulty(real, client).write_many(puts, []) == {}
    assert client.injected == 3 and client.calls > 3
    # each injected fault leaves at least one request to retry, and the metric counts them
    assert retries._value.get() - before >= client.injected
    assert await real.get_many(list(puts), consistent=True) == puts
    assert await real.list_collections(after=None, limit=10) == ["c"]


@pytest.mark.parametrize("keep", [0, 7])
async def test_partly_unprocessed_reads_complete(real: DynamoDBBackend, keep: int) -> None:
    puts = items(130)
    await real.write_many(puts, [])
    client = UnprocessedClient(real.client, "batch_get_item", faults=3, keep=keep)
    assert await faulty(real, client).get_many(list(puts), consistent=False) == puts
    assert client.injected == 3 and client.calls > 3


async def test_partly_unprocessed_deletes_complete(real: DynamoDBBackend) -> None:
    puts = items(30)
    await real.write_many(puts, [])
    client = UnprocessedClient(real.client, "batch_write_item", faults=3, keep=5)
    assert await faulty(real, client).write_many({}, list(puts)) == puts
    assert client.injected == 3
    assert await real.count("c") == 0


async def test_always_unprocessed_reads_give_up(real: DynamoDBBackend) -> None:
    puts = items(10)
    await real.write_many(puts, [])
    client = UnprocessedClient(real.client, "batch_get_item", faults=float("inf"), keep=0)
    with pytest.raises(BackendUnavailable, match="unprocessed after 4 attempts"):
        await faulty(real, client).get_many(list(puts), consistent=False)
    assert client.calls == FAST.attempts


async def test_always_unprocessed_writes_give_up(real: DynamoDBBackend) -> None:
    client = UnprocessedClient(real.client, "batch_write_item", faults=float("inf"), keep=0)
    with pytest.raises(BackendUnavailable, match="BatchWriteItem: 1 requests still"):
        await faulty(real, client).write_many({("c", "sy"): Record(b"1", "v")}, [])
    assert client.calls == FAST.attempts
    assert await real.get_many([("c", "sy")], consistent=True) == {}


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        ("batch_get_item", "ProvisionedThroughputExceededException"),
        ("batch_write_item", "ThrottlingException"),
        ("batch_write_item", "RequestLimitExceeded"),
    ],
)
async def test_throttling_errors_are_backend_unavailable(
    real: DynamoDBBackend, operation: str, code: str
) -> None:
    backend = faulty(real, FailingClient(real.client, operation, code, "slow down"))
    with pytest.raises(BackendUnavailable) as failed:
        await backend.write_many({("c", "sa"): Record(b"1", "v")}, [])
    assert code in failed.value.detail and "slow down" in failed.value.detail


async def test_conditional_calls_tell_throttling_from_condition(real: DynamoDBBackend) -> None:
    await real.write_many({("c", "sa"): Record(b"1", "v1")}, [])
    code = "ProvisionedThroughputExceededException"
    put_fails = faulty(real, FailingClient(real.client, "put_item", code, "slow down"))
    with pytest.raises(BackendUnavailable, match=code):
        await put_fails.put_if(("c", "sa"), Record(b"2", "v2"), expected="v1")
    delete_fails = faulty(real, FailingClient(real.client, "delete_item", code, "slow down"))
    with pytest.raises(BackendUnavailable, match=code):
        await delete_fails.delete_if(("c", "sa"), expected="v1")
    # Through the real client the same calls meet a real condition.
    with pytest.raises(ConditionFailed):
        await real.delete_if(("c", "sa"), expected="v0")


async def test_validation_error_keeps_its_message(real: DynamoDBBackend) -> None:
    message = "Item size has exceeded the maximum allowed size"
    backend = faulty(
        real, FailingClient(real.client, "batch_write_item", "ValidationException", message)
    )
    with pytest.raises(BackendUnavailable) as failed:
        await backend.write_many({("c", "sa"): Record(b"1", "v")}, [])
    assert "ValidationException" in failed.value.detail and message in failed.value.detail


def test_backoff_is_bounded() -> None:
    policy = RetryPolicy(attempts=6, base=0.02, cap=0.5)
    for stalls in range(12):
        ceiling = min(0.5, 0.02 * 2**stalls)
        assert ceiling / 2 <= policy.delay(stalls) <= ceiling
