"""The lean DynamoDB client itself: its signature against botocore's, its
retries (botocore's standard mode) and timeouts, its error table, and its
credentials. The faults (throttling, 5xx, a slow or damaged answer) come from
a small scripted HTTP server, since neither moto nor dynalite produce them."""

from __future__ import annotations

import asyncio
import datetime
import socket
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aioboto3
import orjson
import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiohttp import web
from aiohttp.test_utils import TestServer
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from itemstore_service.backends import dynamodb_errors as errors
from itemstore_service.backends.dynamodb_sigv4 import Credentials, sign
from itemstore_service.backends.dynamodb_wire import (
    DynamoDBWire,
    LostAnswer,
    NotConnected,
    WirePolicy,
    botocore_credentials,
)

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
FAST = WirePolicy(attempts=3, base=0.001, cap=0.002, read_timeout=0.3, connect_timeout=1)
BODY = orjson.dumps({"TableName": "items", "Key": {"pk": {"S": "c#0"}, "sk": {"S": "sa"}}})


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEXAMPLETOKEN"])
def test_signature_equals_botocores(token: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    fixed = datetime.datetime(2024, 5, 17, 8, 30, 15)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: fixed)
    headers = {"content-type": "application/x-amz-json-1.0", "x-amz-target": "x.GetItem"}
    request = AWSRequest("POST", "http://127.0.0.1:8000/", data=BODY, headers=dict(headers))
    SigV4Auth(
        BotoCredentials("AKIDEXAMPLE", "secret/KEY+x", token), "dynamodb", "eu-west-1"
    ).add_auth(request)
    ours = sign(
        Credentials("AKIDEXAMPLE", "secret/KEY+x", token),
        region="eu-west-1",
        service="dynamodb",
        host="127.0.0.1:8000",
        headers=headers,
        body=BODY,
        timestamp="20240517T083015Z",
    )
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


def answer(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body))


def throttled() -> web.Response:
    return answer(400, {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException"})


class Script:
    """A DynamoDB stand-in that answers its requests from a list, in order,
    and records what it received; past the list's end it answers ``{}``."""

    def __init__(self, *steps: Callable[[], Awaitable[web.Response]] | web.Response) -> None:
        self.steps, self.received = list(steps), list[web.Request]()

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(request)
        await request.read()
        if not self.steps:
            return answer(200, {"ok": len(self.received)})
        step = self.steps.pop(0)
        return step if isinstance(step, web.Response) else await step()


async def static() -> Credentials:
    return Credentials("testing", "testing")


async def serve(script: Script) -> tuple[TestServer, str]:
    app = web.Application()
    app.router.add_post("/", script.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, str(server.make_url("/"))


async def call(script: Script, *, idempotent: bool = True) -> dict[str, Any]:
    server, url = await serve(script)
    try:
        async with DynamoDBWire(url, "us-east-1", static, FAST) as wire:
            return await wire.request("GetItem", {"TableName": "items"}, idempotent=idempotent)
    finally:
        await server.close()


async def test_throttling_and_5xx_are_retried_up_to_three_attempts() -> None:
    script = Script(throttled(), answer(503, {}))
    assert await call(script) == {"ok": 3}
    target = script.received[0].headers["X-Amz-Target"]
    assert target == "DynamoDB_20120810.GetItem"
    assert script.received[0].headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    script = Script(throttled(), throttled(), throttled(), throttled())
    with pytest.raises(errors.Throttled, match="ThrottlingException"):
        await call(script)
    assert len(script.received) == 3


async def test_client_errors_are_not_retried() -> None:
    message = "Item size has exceeded the maximum allowed size"
    script = Script(answer(400, {"__type": "x#ValidationException", "message": message}))
    with pytest.raises(errors.ValidationError) as failed:
        await call(script)
    assert (failed.value.code, failed.value.message) == ("ValidationException", message)
    item = {"ver": {"S": "v1"}}
    script = Script(answer(400, {"__type": "x#ConditionalCheckFailedException", "Item": item}))
    with pytest.raises(errors.ConditionalCheckFailed) as condition:
        await call(script, idempotent=False)
    assert condition.value.item == item
    assert len(script.received) == 1


async def slow() -> web.Response:
    await asyncio.sleep(FAST.read_timeout * 3)
    return answer(200, {})


async def test_timeouts_are_retried_only_when_idempotent() -> None:
    script = Script(slow)
    assert await call(script) == {"ok": 2}
    script = Script(slow)
    with pytest.raises(LostAnswer):
        await call(script, idempotent=False)
    assert len(script.received) == 1


async def test_damaged_answer_is_retried() -> None:
    damaged = answer(200, {"ok": 0})
    damaged.headers["x-amz-crc32"] = str(zlib.crc32(b"something else"))
    good = answer(200, {"ok": 1})
    good.headers["x-amz-crc32"] = str(zlib.crc32(orjson.dumps({"ok": 1})))
    assert await call(Script(damaged, good)) == {"ok": 1}


async def test_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with DynamoDBWire(f"http://127.0.0.1:{port}/", "us-east-1", static, FAST) as wire:
        with pytest.raises(NotConnected, match="cannot connect"):
            await wire.request("PutItem", {}, idempotent=False)


def test_error_table() -> None:
    assert isinstance(errors.error_of(400, {"__type": "a#RequestLimitExceeded"}), errors.Throttled)
    assert isinstance(errors.error_of(500, {}), errors.TransientError)
    assert isinstance(
        errors.error_of(400, {"__type": "a#ResourceNotFoundException"}), errors.ResourceNotFound
    )
    unknown = errors.error_of(400, {"__type": "a#SomethingNew", "Message": "m"})
    assert type(unknown) is errors.DynamoDBError and not unknown.retryable
    assert str(unknown) == "SomethingNew: m"


async def test_credentials_come_from_the_session_resolver() -> None:
    session = aioboto3.Session(aws_access_key_id="AKIDSESSION", aws_secret_access_key="s3cret")
    current = await botocore_credentials(session)
    assert await current() == Credentials("AKIDSESSION", "s3cret", None)


async def test_temporary_credentials_are_refreshed_before_expiry() -> None:
    """Credentials about to expire (as from a role) are renewed by botocore's
    refresh, and the wire signs with the new ones."""
    issued = 0

    async def refresh() -> dict[str, str]:
        nonlocal issued
        issued += 1
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        return {
            "access_key": f"AKID{issued}",
            "secret_key": "s",
            "token": f"token{issued}",
            "expiry_time": expiry.isoformat(),
        }

    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1)
    expiring = AioRefreshableCredentials.create_from_metadata(
        {"access_key": "AKID0", "secret_key": "s", "token": "t", "expiry_time": soon.isoformat()},
        refresh,
        "assume-role",
    )

    class Session:
        async def get_credentials(self) -> AioRefreshableCredentials:
            return expiring

    current = await botocore_credentials(Session())
    script = Script()
    server, url = await serve(script)
    try:
        async with DynamoDBWire(url, "us-east-1", current, FAST) as wire:
            await wire.request("GetItem", {})
            await wire.request("GetItem", {})
    finally:
        await server.close()
    assert issued == 1
    for request in script.received:
        assert "Credential=AKID1/" in request.headers["Authorization"]
        assert request.headers["X-Amz-Security-Token"] == "token1"
