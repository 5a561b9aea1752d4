"""``client.keys`` and the errors of access keys, on both clients, against
the real service started with a bootstrap token."""

from __future__ import annotations

import pytest

from itemstore import (
    AccessKey,
    AsyncClient,
    AsyncKeys,
    Client,
    Forbidden,
    ItemstoreError,
    Keys,
    RateLimited,
    RetryPolicy,
    Unauthorized,
    Unavailable,
)

ADMIN = "s3cret"  # the token of token_service_url


def test_keys_are_made_listed_and_revoked(token_service_url: str) -> None:
    with Client(token_service_url, token=ADMIN) as admin:
        key = admin.keys.create("reports", "read", collections=["users", "orders-*"])
        assert isinstance(key, AccessKey) and key.token is not None
        assert (key.scope, key.collections, key.rate_limit) == ("read", ["users", "orders-*"], None)
        admin.collection("users")["ada"] = 1
        admin.collection("secrets")["x"] = 1
        listed = admin.keys.list()
        assert [k.id for k in listed] == [key.id] and listed[0].token is None
        with Client(token_service_url, token=key.token) as reader:
            assert reader.collection("users")["ada"] == 1
            assert list(reader.collections()) == ["users"]
            with pytest.raises(Forbidden) as refused:
                reader.collection("users")["ada"] = 2
            assert refused.value.status == 403 and refused.value.code == "forbidden"
            with pytest.raises(Forbidden):
                reader.collection("secrets").get("x")
            assert admin.keys.revoke(key.id).id == key.id
            with pytest.raises(Unauthorized, match="not valid"):
                reader.collection("users").get("ada")
        with pytest.raises(ItemstoreError) as unknown:
            admin.keys.revoke(key.id)
        assert (unknown.value.status, unknown.value.code) == (404, "key-not-found")


def test_a_key_over_its_rate_limit_raises_rate_limited(token_service_url: str) -> None:
    with Client(token_service_url, token=ADMIN) as admin:
        key = admin.keys.create("slow", "read", rate_limit=0.01, burst=1)
    assert key.token is not None
    no_retry = RetryPolicy(retries=0)
    with Client(token_service_url, token=key.token, retry=no_retry) as slow:
        assert list(slow.collections()) == []  # the one request of its burst
        with pytest.raises(RateLimited) as limited:
            list(slow.collections())
    assert isinstance(limited.value, Unavailable)  # an `except Unavailable` still catches it
    assert limited.value.status == 429 and limited.value.retry_after is not None
    assert limited.value.retry_after >= 1


def test_a_rate_limited_delete_is_retried_since_it_was_not_applied(
    token_service_url: str,
) -> None:
    with Client(token_service_url, token=ADMIN) as admin:
        key = admin.keys.create("writer", "write", rate_limit=1, burst=1)
    assert key.token is not None
    with Client(token_service_url, token=key.token) as writer:
        writer.collection("c")["k"] = 1  # the one request of its burst
        # A pop is replayed only when surely not applied: a 429 says so, so the
        # SDK waits its Retry-After (1 s) and sends it again.
        assert writer.collection("c").pop("k") == 1


async def test_the_async_client_manages_keys_alike(token_service_url: str) -> None:
    async with AsyncClient(token_service_url, token=ADMIN) as admin:
        key = await admin.keys.create("writer", "write", collections=["w-*"], rate_limit=50)
        assert key.burst == 50 and key.token is not None
        assert key.id in [k.id for k in await admin.keys.list()]
        async with AsyncClient(token_service_url, token=key.token) as writer:
            await writer.collection("w-1").set("k", 1)
            with pytest.raises(Forbidden):
                await writer.collection("other").set("k", 1)
        await admin.keys.revoke(key.id)
        assert key.id not in [k.id for k in await admin.keys.list()]


def test_sync_and_async_keys_have_the_same_names() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(Keys) == public(AsyncKeys) == {"create", "list", "revoke"}
