"""The access keys, kept in the backend itself and cached by each worker.

Keys are items of one reserved collection, ``KEYS_COLLECTION``, whose name
the public collection-name pattern can never address (it holds a ':'): they
are read and written through the ordinary store and backend protocol, so
every replica on one DynamoDB table sees the same keys, and no backend needs
to know about them.

Each worker holds every key in memory (a token is checked without a backend
call, the same way whether its id is known or not) and reloads them every
``refresh`` seconds: a key created or revoked on another worker or replica
takes effect here within ``refresh`` seconds plus one listing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ..errors import ItemNotFound, ItemstoreError, KeyNotFound
from ..store import Store
from .scopes import Grant, Scope, pattern_regex
from .tokens import DECOY, Secret, issue, new_key_id, split

KEYS_COLLECTION: Final = "itemstore:access-keys"
REFRESH_SECONDS: Final = 2.0
_PAGE: Final = 1000

log = logging.getLogger("itemstore.access")


@dataclass(frozen=True, slots=True)
class AccessKey:
    """A stored key, without its secret: what ``GET /keys`` lists."""

    id: str
    name: str
    scope: Scope
    collections: tuple[str, ...] | None
    """Names and ``*`` patterns; None: every collection."""
    rate_limit: float | None
    """Requests per second; None: unlimited."""
    burst: int | None
    """Requests allowed at once (the bucket's size); by default one second's worth."""
    created_at: int

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope.name.lower(),
            "collections": None if self.collections is None else list(self.collections),
            "rate_limit": self.rate_limit,
            "burst": self.burst,
            "created_at": self.created_at,
        }

    def grant(self) -> Grant:
        patterns = None if self.collections is None else pattern_regex(self.collections)
        return Grant(self.id, self.scope, patterns, self.rate_limit, self.burst)


@dataclass(frozen=True, slots=True)
class _Entry:
    key: AccessKey
    secret: Secret
    grant: Grant


def _encode(key: AccessKey, secret: Secret) -> bytes:
    return orjson.dumps(key.public() | {"salt": secret.salt.hex(), "digest": secret.digest.hex()})


def _decode(raw: bytes) -> _Entry:
    doc = orjson.loads(raw)
    collections = doc["collections"]
    key = AccessKey(
        id=doc["id"],
        name=doc["name"],
        scope=Scope[doc["scope"].upper()],
        collections=None if collections is None else tuple(collections),
        rate_limit=doc["rate_limit"],
        burst=doc["burst"],
        created_at=doc["created_at"],
    )
    secret = Secret(bytes.fromhex(doc["salt"]), bytes.fromhex(doc["digest"]))
    return _Entry(key, secret, key.grant())


class KeyRing:
    """Every access key of the store, cached, with the calls that change them."""

    def __init__(self, store: Store, *, refresh: float = REFRESH_SECONDS) -> None:
        self._store = store
        self._refresh = refresh
        self._entries: dict[str, _Entry] = {}
        self._changes: list[tuple[float, str, _Entry | None]] = []
        """Keys made (entry) or revoked (None) here, with when: a reload whose
        listing began before a change must not undo it."""
        self.loaded = False
        """Whether the keys were read from storage at least once."""

    def __bool__(self) -> bool:
        """Whether any key exists (as last loaded)."""
        return bool(self._entries)

    def authenticate(self, token: str) -> Grant | None:
        """The grant of the key ``token`` names, if its secret matches."""
        parts = split(token)
        key_id, secret = parts if parts else ("", token)
        entry = self._entries.get(key_id)
        matched = (entry.secret if entry else DECOY).matches(secret)
        return entry.grant if entry and matched else None

    async def reload(self) -> list[AccessKey]:
        """Read every key from storage (all pages) and cache them; return them."""
        started = time.monotonic()
        entries: dict[str, _Entry] = {}
        cursor: str | None = None
        while True:
            page = await self._store.list_items(KEYS_COLLECTION, limit=_PAGE, cursor=cursor)
            for _, record in page.items:
                try:
                    entry = _decode(record.value)
                except (ValueError, KeyError, TypeError):
                    log.error("an access key record cannot be read; it is ignored")
                    continue
                entries[entry.key.id] = entry
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        self._changes = [change for change in self._changes if change[0] >= started]
        for _, key_id, made in self._changes:  # made or revoked here meanwhile
            if made is None:
                entries.pop(key_id, None)
            else:
                entries[key_id] = made
        self._entries = entries
        self.loaded = True
        return [entry.key for entry in entries.values()]

    async def create(
        self,
        *,
        name: str,
        scope: Scope,
        collections: Sequence[str] | None,
        rate_limit: float | None,
        burst: int | None,
    ) -> tuple[AccessKey, str]:
        """Store a new key; return it and its token (the only time the token exists)."""
        key = AccessKey(
            id=new_key_id(),
            name=name,
            scope=scope,
            collections=None if collections is None else tuple(collections),
            rate_limit=rate_limit,
            burst=None if rate_limit is None else burst or max(1, math.ceil(rate_limit)),
            created_at=int(time.time()),
        )
        token, secret = issue(key.id)
        await self._store.put(KEYS_COLLECTION, key.id, _encode(key, secret), if_none_match=True)
        entry = _Entry(key, secret, key.grant())
        self._entries[key.id] = entry
        self._changes.append((time.monotonic(), key.id, entry))
        return key, token

    async def revoke(self, key_id: str) -> AccessKey:
        """Remove the key; KeyNotFound when there is none with that id."""
        try:
            record = await self._store.delete(KEYS_COLLECTION, key_id)
        except ItemNotFound:
            raise KeyNotFound(f"no access key has the id {key_id!r}") from None
        self._entries.pop(key_id, None)
        self._changes.append((time.monotonic(), key_id, None))
        return _decode(record.value).key

    async def keep_fresh(self) -> AsyncIterator[None]:
        """Load the keys, then reload them every ``refresh`` seconds until
        the generator is closed (an ``app.cleanup_ctx`` entry's body)."""
        await self._reload_logged()
        task = asyncio.create_task(self._refresh_loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh)
            await self._reload_logged()

    async def _reload_logged(self) -> None:
        try:
            await self.reload()
        except ItemstoreError as error:  # the keys loaded last stay in use
            log.warning("cannot reload the access keys: %s", error.detail)
