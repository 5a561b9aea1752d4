"""Operations that take several requests, written once for both clients.

A :data:`Flow` is a generator that yields the sans-I/O :class:`Call` it needs
next and is sent back that call's decoded result (or has its exception thrown
in); what it returns is the operation's result. A :data:`Stream` yields calls
too, and :class:`Emit` batches of results for the caller to iterate. The sync
client drives them with :func:`run_flow_sync` / :func:`stream_sync`, the async
one with :func:`run_flow` / :func:`stream`, the way httpx drives
``Auth.auth_flow``. Flows compose with ``yield from``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from itemstore_wire.contract import Key, Limits

from ._batch import BatchOp, TransactionOp, split_ops
from ._protocol import Call, Core, OpResult, Page, applied_before
from .errors import ItemstoreError

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class Emit(Generic[T]):
    """Results a stream hands to its caller."""

    items: list[T]


Flow: TypeAlias = Generator[Call[Any], Any, T]
Stream: TypeAlias = Generator["Call[Any] | Emit[T]", Any, None]
SyncRun = Callable[[Call[Any]], Any]
AsyncRun = Callable[[Call[Any]], Awaitable[Any]]


class MappingFlows(Protocol):
    """The dict operations a collection's and a session's flows both offer."""

    def getitem(self, key: Key) -> Flow[Any]: ...
    def get(self, key: Key, default: Any) -> Flow[Any]: ...
    def contains(self, key: object) -> Flow[bool]: ...
    def setdefault(self, key: Key, default: Any) -> Flow[Any]: ...
    def pop(self, key: Key, default: Any) -> Flow[Any]: ...
    def popitem(self) -> Flow[tuple[Key, Any]]: ...
    def clear(self) -> Flow[None]: ...
    def count(self) -> Flow[int]: ...


# -- drivers -------------------------------------------------------------------------
def run_flow_sync(flow: Flow[T], run: SyncRun) -> T:
    """Run ``flow`` to its end, sending each call with ``run``."""
    result: Any = None
    error: Exception | None = None
    while True:
        try:
            call = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]  # the flow's T
        try:
            result, error = run(call), None
        except Exception as exc:
            result, error = None, exc


async def run_flow(flow: Flow[T], run: AsyncRun) -> T:
    """:func:`run_flow_sync` for an async ``run``."""
    result: Any = None
    error: Exception | None = None
    while True:
        try:
            call = flow.send(result) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]  # the flow's T
        try:
            result, error = await run(call), None
        except Exception as exc:
            result, error = None, exc


def stream_sync(steps: Stream[T], run: SyncRun) -> Iterator[T]:
    """Iterate what ``steps`` emits, sending its calls with ``run`` (lazily:
    the next call goes out when the results so far are used up)."""
    sent: Any = None
    while True:
        try:
            step = steps.send(sent)
        except StopIteration:
            return
        if isinstance(step, Emit):
            yield from step.items
            sent = None
        else:
            sent = run(step)


async def stream(steps: Stream[T], run: AsyncRun) -> AsyncIterator[T]:
    """:func:`stream_sync` for an async ``run``."""
    sent: Any = None
    while True:
        try:
            step = steps.send(sent)
        except StopIteration:
            return
        if isinstance(step, Emit):
            for item in step.items:
                yield item
            sent = None
        else:
            sent = await run(step)


# -- composing -----------------------------------------------------------------------
def first(steps: Stream[T]) -> Flow[T | None]:
    """The first result ``steps`` emits (None when it emits none); sends no
    call past the one that produced it."""
    sent: Any = None
    while True:
        try:
            step = steps.send(sent)
        except StopIteration:
            return None
        if isinstance(step, Emit):
            if step.items:
                steps.close()
                return step.items[0]
            sent = None
        else:
            sent = yield step


def collect(steps: Stream[T]) -> Flow[list[T]]:
    """Every result ``steps`` emits, as one list."""
    results: list[T] = []
    sent: Any = None
    while True:
        try:
            step = steps.send(sent)
        except StopIteration:
            return results
        if isinstance(step, Emit):
            results.extend(step.items)
            sent = None
        else:
            sent = yield step


def mapped(steps: Stream[T], each_page: Callable[[list[T]], list[U]]) -> Stream[U]:
    """``steps`` with each batch of results passed through ``each_page``."""
    sent: Any = None
    while True:
        try:
            step = steps.send(sent)
        except StopIteration:
            return
        if isinstance(step, Emit):
            yield Emit(each_page(step.items))
            sent = None
        else:
            sent = yield step


def pages(make_call: Callable[[str | None], Call[Page[T]]]) -> Stream[T]:
    """Every entry of a cursor-paged listing, one call per page."""
    cursor: str | None = None
    while True:
        page: Page[T] = yield make_call(cursor)
        yield Emit(page.entries)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


# -- the service ---------------------------------------------------------------------
def limits(core: Core) -> Flow[Limits]:
    """The service's limits: asked once per client, then remembered."""
    if core.limits is None:
        info: dict[str, Any] = yield core.info()
        core.limits = Limits.from_info(info)
    return core.limits


def collection_names(core: Core) -> Stream[str]:
    """Names of the collections that hold items."""
    return pages(lambda cursor: core.collections_page(cursor, None))


def transact(core: Core, ops: list[TransactionOp]) -> Flow[list[str | None]]:
    """Send ``ops`` as one transaction (all or none) under a new
    Idempotency-Key, so that a retry after a lost answer applies it once;
    the ETag each put wrote."""
    if not ops:
        return []
    etags: list[str | None] = yield core.transact(ops, str(uuid.uuid4()))
    return etags


def batch(
    core: Core, collection: str, ops: list[BatchOp], *, minimal: bool = False
) -> Flow[list[OpResult]]:
    """Send ``ops`` in order, one call per ``max_batch_ops`` (and
    ``max_batch_bytes``); the results of every op, in order. An error of a
    later call says how many ops earlier calls applied. ``minimal``: blind
    puts (see ``Core.batch``)."""
    results: list[OpResult] = []
    known = yield from limits(core)
    for chunk in split_ops(ops, known.max_batch_ops, known.max_batch_bytes):
        try:
            chunk_results: list[OpResult] = yield core.batch(collection, chunk, minimal=minimal)
        except ItemstoreError as error:
            raise applied_before(error, len(results), len(ops)) from None
        results.extend(chunk_results)
    return results
