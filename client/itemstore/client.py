"""The synchronous SDK: :class:`Client`, its dict-like :class:`Collection` and
:class:`Session`. Every operation is a flow of ``_collection_flows`` /
``_session_flows``, driven here with blocking I/O."""

from __future__ import annotations

from collections.abc import (
    ItemsView,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    Sequence,
    ValuesView,
)
from typing import Any, TypeVar

from itemstore_wire.contract import Key, Limits

from . import _flows as flows
from ._batch import MISSING, BatchOp, operations
from ._client_base import BaseClient
from ._collection_flows import CollectionFlows, pairs_of
from ._protocol import AccessKey, Call, Item, ListedItem, OpResult, expiry
from ._session_flows import SessionFlows
from ._sync_transport import SyncTransport
from ._transaction import TransactionCollection, TransactionOps

T = TypeVar("T")


class Client(BaseClient[SyncTransport]):
    """A connection to one itemstore service: pooled keep-alive connections,
    safe to share between threads. Retries are bounded (see ``RetryPolicy``)."""

    default_pool_size = 32

    def _open_transport(self, **options: Any) -> SyncTransport:
        return SyncTransport(**options)

    def run(self, call: Call[T]) -> T:
        """Send one core call and decode its answer."""
        return self._transport.run(call)

    def run_flow(self, flow: flows.Flow[T]) -> T:
        """Run a flow of calls to its result."""
        return flows.run_flow_sync(flow, self._transport.run)

    def stream(self, steps: flows.Stream[T]) -> Iterator[T]:
        """Iterate a stream's results, sending its calls as they are needed."""
        return flows.stream_sync(steps, self._transport.run)

    def info(self) -> dict[str, Any]:
        """``GET /``: service name, version, backend and limits."""
        return self.run(self._core.info())

    def limits(self) -> Limits:
        """The service's limits, asked once and then remembered."""
        return self.run_flow(flows.limits(self._core))

    def collection(self, name: str) -> Collection:
        return Collection(self, name)

    def session(self, name: str) -> Session:
        """A unit of work on one collection: cached reads, one batch of writes."""
        return Session(self, name)

    @property
    def keys(self) -> Keys:
        """The service's access keys: ``create``, ``list``, ``revoke``."""
        return Keys(self)

    def collections(self) -> Iterator[str]:
        """Names of the collections that hold items, paged lazily."""
        return self.stream(flows.collection_names(self._core))

    def batch(
        self, collection: str, ops: list[BatchOp], *, minimal: bool = False
    ) -> list[OpResult]:
        """Send ops in order, one call per ``max_batch_ops``; the results of
        every op, in order. ``minimal``: blind puts, each answered 204 with
        its ETag (no created-vs-replaced, no read before the write)."""
        return self.run_flow(flows.batch(self._core, collection, ops, minimal=minimal))

    def transaction(self) -> Transaction:
        """Writes across collections sent as ONE transaction (all or none)
        when the ``with`` block ends; nothing is sent after an exception."""
        return Transaction(self)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close()


class Keys:
    """``client.keys``: the service's access keys (an admin key's calls)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        name: str,
        scope: str,
        *,
        collections: Sequence[str] | None = None,
        rate_limit: float | None = None,
        burst: int | None = None,
    ) -> AccessKey:
        """A new key (``scope``: read, write or admin) whose ``token`` is shown
        only here; ``collections``: names and ``*`` patterns (None: all);
        ``rate_limit``: requests per second, in bursts of up to ``burst``."""
        return self._client.run(
            self._client._core.create_key(name, scope, collections, rate_limit, burst)
        )

    def list(self) -> list[AccessKey]:
        """Every key, oldest first, without tokens."""
        return self._client.run(self._client._core.list_keys())

    def revoke(self, key_id: str) -> AccessKey:
        """Revoke the key: at once here, within seconds on every replica.
        Raises ``ItemstoreError`` (404 ``key-not-found``) for an unknown id."""
        return self._client.run(self._client._core.revoke_key(key_id))


class _FlowMapping(MutableMapping[Key, Any]):
    """The dict operations a :class:`Collection` and a :class:`Session` share,
    each one flow of theirs driven by the client."""

    client: Client
    _flows: flows.MappingFlows

    def __getitem__(self, key: Key) -> Any:
        return self.client.run_flow(self._flows.getitem(key))

    def __contains__(self, key: object) -> bool:
        return self.client.run_flow(self._flows.contains(key))

    def __len__(self) -> int:
        return self.client.run_flow(self._flows.count())

    def get(self, key: Key, default: Any = None) -> Any:
        return self.client.run_flow(self._flows.get(key, default))

    def setdefault(self, key: Key, default: Any = None) -> Any:
        return self.client.run_flow(self._flows.setdefault(key, default))

    def pop(self, key: Key, default: Any = MISSING) -> Any:
        return self.client.run_flow(self._flows.pop(key, default))

    def popitem(self) -> tuple[Key, Any]:
        return self.client.run_flow(self._flows.popitem())

    def clear(self) -> None:
        self.client.run_flow(self._flows.clear())

    def keys(self) -> KeysView[Key]:
        return KeysView(self)

    # -- the names both clients share ------------------------------------------------
    def getitem(self, key: Key) -> Any:
        """``c[key]``: the value, KeyError when absent."""
        return self[key]

    def contains(self, key: object) -> bool:
        """``key in c``."""
        return key in self

    def count(self) -> int:
        """``len(c)``."""
        return len(self)


class Collection(_FlowMapping):
    """A remote collection with the dict API. Every operation is one request
    (``update`` one per ``max_batch_ops``); iteration and the views are lazy
    and paged. Keys come back with their type. ``setdefault`` is atomic (one
    conditional PUT), ``pop`` one round trip, ``popitem`` takes the first item
    in key order. The named methods (``getitem``, ``contains``, ``count`` ...)
    are the ``AsyncCollection``'s."""

    _flows: CollectionFlows

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self._flows = CollectionFlows(client._core, name)
        self.name = self._flows.name

    # -- the dict API ----------------------------------------------------------------
    def __setitem__(self, key: Key, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: Key) -> None:
        self.delete(key)

    def __iter__(self) -> Iterator[Key]:
        return self.iter_keys()

    def __bool__(self) -> bool:
        return not self.is_empty()

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Store many items: one batch call per ``max_batch_ops`` (not atomic)."""
        self.client.run_flow(self._flows.update(pairs_of(other, kwargs)))

    def values(self) -> ValuesView[Any]:
        return _Values(self)

    def items(self) -> ItemsView[Key, Any]:
        return _Items(self)

    def copy(self) -> dict[Key, Any]:
        """A plain dict with every item (as ``to_dict``)."""
        return self.to_dict()

    def __ior__(self, other: Any) -> Collection:
        self.update(other)
        return self

    def __repr__(self) -> str:
        return f"<itemstore.Collection {self.name!r} at {self.client.url}>"

    # -- the names both clients share ------------------------------------------------
    def is_empty(self) -> bool:
        """``not c``."""
        return self.client.run_flow(self._flows.is_empty())

    def equals(self, other: Mapping[Key, Any]) -> bool:
        """``c == other``."""
        return self == other

    def get_item(self, key: Key, *, consistent: bool = False) -> Item | None:
        """The value with its ETag (None when absent); ``consistent`` asks for a
        strongly consistent read."""
        return self.client.run_flow(self._flows.get_item(key, consistent))

    def set(
        self,
        key: Key,
        value: Any,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
        expire_in: int | None = None,
        expire_at: int | None = None,
    ) -> str:
        """Store ``value``; return its new ETag. ``if_match`` makes it a
        compare-and-set, ``if_absent`` a create; a failed condition raises
        ``PreconditionFailed`` carrying the current value and ETag. The item
        expires ``expire_in`` seconds from now or at Unix time ``expire_at``;
        without them, never (a write replaces the expiry the item had)."""
        expires = expiry(expire_in, expire_at)
        return self.client.run_flow(self._flows.set(key, value, if_match, if_absent, expires))

    def delete(self, key: Key, *, if_match: str | None = None) -> Item:
        """Remove an item and return it; KeyError when absent."""
        return self.client.run_flow(self._flows.delete(key, if_match))

    def patch(
        self,
        key: Key,
        *,
        set: Mapping[str, Any] | None = None,
        increment: Mapping[str, int | float] | None = None,
        append: Mapping[str, list[Any]] | None = None,
        prepend: Mapping[str, list[Any]] | None = None,
        delete: list[str] | None = None,
        merge: Any = MISSING,
        if_match: str | None = None,
        expire_in: int | None = None,
        expire_at: int | None = None,
    ) -> Any:
        """Change part of an item atomically; return its new value. Paths are
        dotted field names (``"profile.name"``, ``"tags.0"``; ``\\.`` is a dot
        in a name). ``merge`` sends a JSON Merge Patch instead. KeyError when
        absent; ``ValidationError`` when the change does not fit the value;
        ``PreconditionFailed`` when ``if_match`` is not the item's ETag. The
        item keeps its expiry unless ``expire_in`` / ``expire_at`` set one."""
        change = operations(
            set=set, increment=increment, append=append, prepend=prepend, delete=delete
        )
        expires = expiry(expire_in, expire_at)
        return self.client.run_flow(self._flows.patch(key, change, merge, if_match, expires))

    def add(self, value: Any, *, expire_in: int | None = None, expire_at: int | None = None) -> str:
        """Store ``value`` under a new time-ordered key made by the service;
        return the key. Expiry as in ``set``."""
        return self.client.run_flow(self._flows.add(value, expiry(expire_in, expire_at)))

    def to_dict(self) -> dict[Key, Any]:
        return dict(self.iter_items())

    def iter_keys(self, prefix: str | None = None, page_size: int | None = None) -> Iterator[Key]:
        """Every key in key order (``max_page_size`` keys per request unless told)."""
        return self.client.stream(self._flows.keys(prefix, page_size))

    def iter_values(self, prefix: str | None = None, page_size: int | None = None) -> Iterator[Any]:
        return self.client.stream(self._flows.values(prefix, page_size))

    def iter_items(
        self, prefix: str | None = None, page_size: int | None = None, *, keys_only: bool = False
    ) -> Iterator[tuple[Key, Any]]:
        """Every ``(key, value)`` in key order, one page per request; ``prefix``
        selects str keys starting with it; ``keys_only`` leaves values None."""
        return self.client.stream(self._flows.items(prefix, page_size, keys_only))

    def iter_listed(
        self, prefix: str | None = None, page_size: int | None = None
    ) -> Iterator[ListedItem]:
        """Every item as a ``ListedItem`` (key, value and ``expires_at``, Unix
        seconds or None), in key order, one page per request."""
        return self.client.stream(self._flows.listed(prefix, page_size))

    def query(
        self,
        where: Any = None,
        *,
        sort: str | None = None,
        limit: int | None = None,
        page_size: int | None = None,
        keys_only: bool = False,
    ) -> Iterator[tuple[Key, Any]]:
        """The ``(key, value)`` pairs that match ``where`` (``{"age?gte": 30}``,
        or a list of such: any holds), in key order or by ``sort`` (``"age"``,
        ``"-age"``), at most ``limit``; lazy, the pages walked for you."""
        return self.client.stream(self._flows.query(where, sort, limit, page_size, keys_only))

    def count(self, where: Any = None) -> int:
        """``len(c)``; with ``where``, how many items match it."""
        if where is None:
            return len(self)
        return self.client.run_flow(self._flows.count_matching(where))


class _Values(ValuesView[Any]):
    _mapping: Collection

    def __iter__(self) -> Iterator[Any]:
        return self._mapping.iter_values()

    def __contains__(self, value: object) -> bool:
        return any(v is value or v == value for v in self)


class _Items(ItemsView[Key, Any]):
    _mapping: Collection

    def __iter__(self) -> Iterator[tuple[Key, Any]]:
        return self._mapping.iter_items()


class Session(_FlowMapping):
    """A unit of work on one collection: a dict view with cached reads and
    buffered writes, sent as ONE batch call (split only at the service's
    limits) by ``commit()`` or when a ``with`` block ends normally; a block
    that ends with an exception sends nothing. Values handed out are the cached
    objects themselves: in-place changes are saved at commit too (only values
    that really changed are sent). ``len`` and iteration merge the service's
    items with the pending changes. For one task or thread at a time."""

    _flows: SessionFlows

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self._flows = SessionFlows(client._core, name)
        self.name = self._flows.name

    # -- the dict API ----------------------------------------------------------------
    def __setitem__(self, key: Key, value: Any) -> None:
        self._flows.state.assign(key, value)

    def __delitem__(self, key: Key) -> None:
        self.client.run_flow(self._flows.delete(key))

    def __iter__(self) -> Iterator[Key]:
        for key, _ in self.client.stream(self._flows.items(keys_only=True)):
            yield key

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        self._flows.update(pairs_of(other, kwargs))

    def values(self) -> ValuesView[Any]:
        return _SessionValues(self)

    def items(self) -> ItemsView[Key, Any]:
        return _SessionItems(self)

    # -- the names both clients share ------------------------------------------------
    def set(self, key: Key, value: Any) -> None:
        self[key] = value

    def delete(self, key: Key) -> None:
        del self[key]

    def increment(self, key: Key, path: str, by: int | float = 1) -> None:
        """Add ``by`` to the number at ``path`` of the item, at commit, as a
        patch (so concurrent sessions' increments all count); KeyError from
        commit when the item is absent then."""
        self._flows.state.increment(key, path, by)

    def to_dict(self) -> dict[Key, Any]:
        return dict(self._walk())

    def _walk(self) -> Iterator[tuple[Key, Any]]:
        return self.client.stream(self._flows.items(keys_only=False))

    def commit(self, *, atomic: bool = False) -> int:
        """Send every pending change now, as one batch call per ``max_batch_ops``
        (``atomic``: as one transaction, all or none); return how many ops
        were sent. The cache stays valid afterwards."""
        return self.client.run_flow(self._flows.commit(atomic=atomic))

    def rollback(self) -> None:
        """Forget pending changes and cached reads."""
        self._flows.state.reset()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.commit()

    def __repr__(self) -> str:
        return f"<itemstore.Session {self.name!r} at {self.client.url}>"


class _SessionValues(ValuesView[Any]):
    _mapping: Session

    def __iter__(self) -> Iterator[Any]:
        for _, value in self._mapping._walk():
            yield value


class _SessionItems(ItemsView[Key, Any]):
    _mapping: Session

    def __iter__(self) -> Iterator[tuple[Key, Any]]:
        return self._mapping._walk()


class Transaction:
    """``with client.transaction() as tx: tx["users"]["ada"] = {...}``: the
    writes and checks of the block, on any collections, sent as one
    transaction when it ends normally (nothing is sent after an exception).
    A failed condition raises ``PreconditionFailed`` (its ``extras`` name
    the op's ``index``) and nothing is written. ``etags``: what each op wrote."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._ops = TransactionOps()
        self.etags: list[str | None] = []

    def __getitem__(self, collection: str) -> TransactionCollection:
        return TransactionCollection(self._ops, collection)

    def commit(self) -> list[str | None]:
        """Send the ops now; the ETag each put wrote (None for the others)."""
        self.etags = self.client.run_flow(flows.transact(self.client._core, self._ops.ops))
        return self.etags

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.commit()
