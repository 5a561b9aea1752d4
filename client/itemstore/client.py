"""The synchronous SDK: :class:`Client` and its dict-like :class:`Collection`."""

from __future__ import annotations

from collections.abc import (
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    ValuesView,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from itemstore_wire.contract import Key, Limits
from itemstore_wire.exactjson import dumps

from ._keys import check_key
from ._protocol import (
    Call,
    Core,
    Item,
    OpResult,
    Page,
    applied_before,
    check_collection_name,
    encode_op,
    split_ops,
)
from ._retry import RetryPolicy
from ._transport import SyncTransport
from .errors import ItemstoreError, ValidationError

if TYPE_CHECKING:
    from .session import Session

T = TypeVar("T")
_MISSING: Any = object()
DEFAULT_URL = "http://127.0.0.1:8080"


class Client:
    """A connection to one itemstore service: pooled keep-alive connections,
    safe to share between threads. Retries are bounded (see ``RetryPolicy``)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        pool_size: int = 32,
    ) -> None:
        self._core = Core(url, token)
        self._transport = SyncTransport(
            timeout=timeout, retry=retry or RetryPolicy(), pool_size=pool_size
        )
        self._limits: Limits | None = None

    @property
    def url(self) -> str:
        return self._core.base_url

    def run(self, call: Call[T]) -> T:
        """Send one core call and decode its answer."""
        return self._transport.run(call)

    def info(self) -> dict[str, Any]:
        """``GET /``: service name, version, backend and limits."""
        return self.run(self._core.info())

    @property
    def limits(self) -> Limits:
        """The service's limits, asked once and then remembered."""
        if self._limits is None:
            self._limits = Limits.from_info(self.info())
        return self._limits

    def collection(self, name: str) -> Collection:
        return Collection(self, name)

    def session(self, name: str) -> Session:
        """A unit of work on one collection: cached reads, one batch of writes."""
        from .session import Session

        return Session(self, name)

    def collections(self) -> Iterator[str]:
        """Names of the collections that hold items, paged lazily."""
        cursor: str | None = None
        while True:
            page = self.run(self._core.collections_page(cursor, None))
            yield from page.entries
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def batch(self, collection: str, ops: list[bytes]) -> list[OpResult]:
        """Send encoded ops in order, one call per ``max_batch_ops``; the
        results of every op, in order."""
        results: list[OpResult] = []
        limits = self.limits
        for chunk in split_ops(ops, limits.max_batch_ops, limits.max_request_bytes):
            try:
                chunk_results = self.run(self._core.batch(collection, chunk))
            except ItemstoreError as error:
                raise applied_before(error, len(results), len(ops)) from None
            results.extend(chunk_results)
        return results

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"


def lookup_key(key: object) -> Key | None:
    """The key to look up for ``key in c``: None for a hashable value that is no
    key the service takes (as a dict answers False); TypeError for an
    unhashable one."""
    hash(key)
    try:
        return check_key(key)
    except (TypeError, ValidationError):
        return None


def pairs_of(other: Any, kwargs: Mapping[str, Any]) -> Iterator[tuple[Key, Any]]:
    """The ``(key, value)`` pairs of ``dict.update``'s arguments, by dict's rules."""
    if isinstance(other, Mapping):
        yield from other.items()
    elif hasattr(other, "keys"):
        for k in other.keys():  # noqa: SIM118 - dict.update's own rule
            yield k, other[k]
    else:
        for pair in other:
            k, v = pair
            yield k, v
    yield from kwargs.items()


def put_ops(pairs: Iterable[tuple[Key, Any]]) -> list[bytes]:
    return [encode_op("put", check_key(k), dumps(v)) for k, v in pairs]


class Collection(MutableMapping[Key, Any]):
    """A remote collection with the dict API. Every operation is one request
    (``update`` one per ``max_batch_ops``); iteration and the views are lazy
    and paged. Keys come back with their type."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = check_collection_name(name)
        self._core = client._core

    # -- the dict API ----------------------------------------------------------------
    def __getitem__(self, key: Key) -> Any:
        item = self.client.run(self._core.get(self.name, key))
        if item is None:
            raise KeyError(key)
        return item.value

    def __setitem__(self, key: Key, value: Any) -> None:
        self.client.run(self._core.put(self.name, key, dumps(value)))

    def __delitem__(self, key: Key) -> None:
        if self.client.run(self._core.delete(self.name, key)) is None:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        found = lookup_key(key)
        return found is not None and self.client.run(self._core.contains(self.name, found))

    def __iter__(self) -> Iterator[Key]:
        return self.iter_keys()

    def __len__(self) -> int:
        return self.client.run(self._core.count(self.name))

    def __bool__(self) -> bool:
        page = self.client.run(self._core.page(self.name, None, limit=1, keys_only=True))
        return bool(page.entries)

    def get(self, key: Key, default: Any = None) -> Any:
        item = self.client.run(self._core.get(self.name, key))
        return default if item is None else item.value

    def setdefault(self, key: Key, default: Any = None) -> Any:
        """Atomic: creates the item only if absent (one conditional PUT) and
        returns what is stored afterwards."""
        return self.client.run(self._core.setdefault(self.name, key, default))

    def pop(self, key: Key, default: Any = _MISSING) -> Any:
        """Remove and return the value in one round trip."""
        item = self.client.run(self._core.delete(self.name, key))
        if item is not None:
            return item.value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[Key, Any]:
        """Remove and return the first item in key order; KeyError when empty."""
        while True:
            page = self.client.run(self._core.page(self.name, None, limit=1, keys_only=True))
            if not page.entries:
                raise KeyError("popitem(): collection is empty")
            key = page.entries[0][0]
            item = self.client.run(self._core.delete(self.name, key))
            if item is not None:  # else another client took it first: try the next one
                return key, item.value

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Store many items: one batch call per ``max_batch_ops`` (not atomic)."""
        ops = put_ops(pairs_of(other, kwargs))
        if ops:
            self.client.batch(self.name, ops)

    def clear(self) -> None:
        self.client.run(self._core.clear(self.name))

    def keys(self) -> KeysView[Key]:
        return KeysView(self)

    def values(self) -> ValuesView[Any]:
        return _Values(self)

    def items(self) -> ItemsView[Key, Any]:
        return _Items(self)

    def copy(self) -> dict[Key, Any]:
        """A plain dict with every item (as ``to_dict``)."""
        return self.to_dict()

    def to_dict(self) -> dict[Key, Any]:
        return dict(self.iter_items())

    def __ior__(self, other: Any) -> Collection:
        self.update(other)
        return self

    def __repr__(self) -> str:
        return f"<itemstore.Collection {self.name!r} at {self.client.url}>"

    # -- beyond dict -------------------------------------------------------------------
    def get_item(self, key: Key, *, consistent: bool = False) -> Item | None:
        """The value with its ETag (None when absent); ``consistent`` asks for a
        strongly consistent read."""
        return self.client.run(self._core.get(self.name, key, consistent=consistent))

    def set(
        self, key: Key, value: Any, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Store ``value``; return its new ETag. ``if_match`` makes it a
        compare-and-set, ``if_absent`` a create; a failed condition raises
        ``PreconditionFailed`` carrying the current value and ETag."""
        call = self._core.put(self.name, key, dumps(value), if_match=if_match, if_absent=if_absent)
        return self.client.run(call)[1]

    def delete(self, key: Key, *, if_match: str | None = None) -> Item:
        """Remove an item and return it; KeyError when absent."""
        item = self.client.run(self._core.delete(self.name, key, if_match=if_match))
        if item is None:
            raise KeyError(key)
        return item

    def add(self, value: Any) -> str:
        """Store ``value`` under a new time-ordered key made by the service; return the key."""
        return self.client.run(self._core.add(self.name, dumps(value)))[0]

    def iter_keys(self, prefix: str | None = None, page_size: int | None = None) -> Iterator[Key]:
        size = page_size or self.client.limits.max_page_size
        for key, _ in self.iter_items(prefix, size, keys_only=True):
            yield key

    def iter_items(
        self, prefix: str | None = None, page_size: int | None = None, *, keys_only: bool = False
    ) -> Iterator[tuple[Key, Any]]:
        """Every ``(key, value)`` in key order, one page per request; ``prefix``
        selects str keys starting with it; ``keys_only`` leaves values None."""
        return self._walk(prefix, page_size, keys_only)

    def _walk(
        self, prefix: str | None, page_size: int | None, keys_only: bool
    ) -> Iterator[tuple[Key, Any]]:
        cursor: str | None = None
        while True:
            call = self._core.page(
                self.name, cursor, limit=page_size, prefix=prefix, keys_only=keys_only
            )
            page: Page[tuple[Key, Any]] = self.client.run(call)
            yield from page.entries
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


class _Values(ValuesView[Any]):
    _mapping: Collection

    def __iter__(self) -> Iterator[Any]:
        for _, value in self._mapping.iter_items():
            yield value

    def __contains__(self, value: object) -> bool:
        return any(v is value or v == value for v in self)


class _Items(ItemsView[Key, Any]):
    _mapping: Collection

    def __iter__(self) -> Iterator[tuple[Key, Any]]:
        return self._mapping.iter_items()
