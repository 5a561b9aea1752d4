"""The storage protocol every backend implements, and the record it stores.

Backends store bytes under ``(collection, sk)`` and know nothing of HTTP, key
types, batching policy or coalescing. ``sk`` is the encoded sort key from
``itemstore_service.keys``; listings are ordered by the UTF-8 bytes of ``sk``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from ..conditions import Where

ItemKey = tuple[str, str]
"""``(collection, sk)``: where an item lives."""

RetryHook = Callable[[str, int], None]
"""Called as ``hook(kind, n)`` when a backend re-sends ``n`` requests that
storage left unprocessed (``kind``: ``"read"`` or ``"write"``). Backends know
nothing of metrics; whoever opens one turns this into a metric."""


@dataclass(frozen=True, slots=True)
class Record:
    """One stored item: its JSON value as bytes, the version its ETag names,
    whether its number key was written as a float, and when it expires (Unix
    seconds; None: never)."""

    value: bytes
    version: str
    float_key: bool = False
    expires_at: int | None = None

    def expired(self, now: float) -> bool:
        """Whether the item is gone at ``now`` (Unix seconds). Backends treat
        an expired item as absent in every read, listing, count and condition,
        whenever storage itself removes it."""
        return self.expires_at is not None and self.expires_at <= now


Update = Callable[["Record | None"], "Record | None"]
"""Given an item's current record (None when absent), the record to store in
its place, or None to leave the item as it is. Pure and never raising: a
backend may call it more than once (after a concurrent write), and stores
what its last call returned."""

Puts = Mapping[ItemKey, Record]
"""Records to store, by key."""

Records = dict[ItemKey, Record]
"""Records found, by key."""


@dataclass(frozen=True, slots=True)
class Listed:
    """One entry of a listing page (``record.value`` is ``b""`` when keys only)."""

    sk: str
    record: Record


@dataclass(frozen=True, slots=True)
class Scanned:
    """What one bounded scan of a collection found: the matching items in sk
    order, how many items it read, the sk of the last one read (None: none),
    and whether nothing follows it."""

    matches: list[Listed]
    scanned: int
    last_sk: str | None
    done: bool


TX_WINDOW_SECONDS = 600
"""How long a transaction's idempotency token is remembered (DynamoDB's
ClientRequestToken window: 10 minutes)."""


@dataclass(frozen=True, slots=True)
class TxOp:
    """One write (or check) of a transaction. ``record``: what a put stores
    (None for a patch, a delete or a check). ``conditional``: the op holds
    only if the item's version is ``expected`` (None: only if absent).
    ``update``: a patch's, applied to the item as read within the
    transaction; the op holds only if it answers a record, and the write is
    conditioned on the version read. An update that answers the very record
    it was given says this transaction's write is there already (a retry
    of an applied transaction): then nothing is written and the transaction
    succeeds."""

    key: ItemKey
    kind: Literal["put", "patch", "delete", "check"]
    record: Record | None = None
    conditional: bool = False
    expected: str | None = None
    update: Update | None = None


class TransactionFailed(Exception):
    """The condition of op ``index`` did not hold; ``current`` is that item
    now (None when absent). Nothing of the transaction was written."""

    def __init__(self, index: int, current: Record | None) -> None:
        super().__init__(f"condition of op {index} failed")
        self.index, self.current = index, current


class TokenReused(Exception):
    """A transaction's token was used, within ``TX_WINDOW_SECONDS``, for
    another transaction."""


class ConditionFailed(Exception):
    """A conditional write found the item in another state; ``current`` is
    what is stored now (None when absent)."""

    def __init__(self, current: Record | None) -> None:
        super().__init__("condition failed")
        self.current = current


class Backend(Protocol):
    """Async storage of records. Every method may raise
    ``errors.BackendUnavailable`` when storage cannot be reached."""

    name: str

    async def get_many(self, keys: Sequence[ItemKey], *, consistent: bool) -> dict[ItemKey, Record]:
        """The records of the ``keys`` that exist (keys are distinct)."""
        ...

    async def write_many(
        self, puts: Puts, deletes: Sequence[ItemKey], *, previous: Collection[ItemKey]
    ) -> Records:
        """Store ``puts`` and remove ``deletes`` (disjoint key sets); return the
        records that existed before for the keys of ``previous`` (some of the
        keys of ``puts`` and ``deletes``), and for no other key; for keys of
        ``puts`` the value may be left out as ``b""``. The other keys are
        written blind: their previous records need not be read at all.
        Durable on return."""
        ...

    async def put_if(self, key: ItemKey, record: Record, *, expected: str | None) -> Record | None:
        """Store ``record`` only if the item's version is ``expected`` (None:
        only if absent). Return the previous record; raise ConditionFailed."""
        ...

    async def update_many(self, updates: Mapping[ItemKey, Update]) -> list[ItemKey]:
        """Replace each item by what its update makes of its current record,
        atomically per item: no write of another caller lands between the
        read an update sees and the write of its result. Return the keys left
        unchanged because other writers kept changing them (bounded retries);
        every other update is durable on return."""
        ...

    async def delete_if(self, key: ItemKey, *, expected: str) -> Record:
        """Remove the item only if its version is ``expected``; return it.
        Raise ConditionFailed (current=None when absent)."""
        ...

    async def transact(self, ops: Sequence[TxOp], *, token: str | None) -> Records:
        """Apply ``ops`` (on distinct keys) all or none: raise
        TransactionFailed naming the first op that does not hold (the
        record it found). Return the records the patch ops stored.
        ``token``: the same token with the same ops within
        ``TX_WINDOW_SECONDS`` applies them once (the second call changes
        nothing and succeeds); with other ops it raises TokenReused.
        Durable on return."""
        ...

    async def query(
        self, collection: str, *, after: str | None, prefix: str, limit: int, keys_only: bool
    ) -> list[Listed]:
        """Up to ``limit`` items of one collection whose sk starts with
        ``prefix`` and sorts after ``after``, in sk order."""
        ...

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
        """Read the collection's items whose sk starts with ``prefix`` in sk
        order after ``after``, at most ``budget`` of them, keeping those that
        match ``where`` (as ``conditions.matches`` says); stop after ``limit``
        matches. Every backend returns the same ``Scanned`` for the same items."""
        ...

    async def count(self, collection: str) -> int:
        """How many items the collection holds."""
        ...

    async def delete_collection(self, collection: str) -> int:
        """Remove every item of the collection; return how many were removed."""
        ...

    async def list_collections(self, *, after: str | None, limit: int) -> list[str]:
        """Names of collections that hold items, sorted, after ``after``."""
        ...

    async def ping(self) -> None:
        """A cheap call that succeeds when storage answers."""
        ...
