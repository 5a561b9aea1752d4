"""Records into a service, through the batch endpoint.

Consecutive records of one collection go out together, ``max_batch_ops`` per
call, a few calls in flight at once (the service commits concurrent batches
together); memory holds those batches whatever the size of the input. Every
write is a put by key, with the record's expiry as ``expire_at``: running an
import again after an interruption writes the same items again (no
duplicates), then the rest (no loss). Items already expired are left out, as
gone.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from itemstore import Client, ValidationError
from itemstore._batch import BatchOp
from itemstore._keys import KeyTag, key_tag
from itemstore_wire.exactjson import dumps

from .progress import Progress
from .records import BadRecord, Record, decode

Mode = Literal["overwrite", "create-only"]
OnError = Literal["skip", "fail"]
IN_FLIGHT = 4
"""Batch calls sent at once: enough for the service to commit several together."""


class ImportFailed(Exception):
    """A bad record with ``--on-error fail``; the message names where it is."""


@dataclass
class Tally:
    written: int = 0
    kept: int = 0
    """Already stored (create-only): left as they were."""
    expired: int = 0
    """Expired before they could be written: not written."""
    skipped: int = 0
    """Bad records skipped (``--on-error skip``)."""


@dataclass(frozen=True, slots=True)
class _Pending:
    where: str
    record: Record
    op: BatchOp


@dataclass
class _Sent:
    """What one batch did: counts, and the records the service refused."""

    records: int
    written: int = 0
    kept: int = 0
    expired: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)


class Importer:
    """Write records, one batch call per ``max_batch_ops`` of one collection,
    up to ``IN_FLIGHT`` calls at once. A batch that writes a key an earlier
    batch in flight writes waits for it: the last record of a key wins, as in
    the input.

    ``mode``: ``overwrite`` replaces stored items; ``create-only`` keeps them
    (an item is read, then written only if it was absent: a write by another
    client in between is overwritten). A bad record is told to ``warn`` and
    skipped, or raises ImportFailed, as ``on_error`` says. ``finish`` sends
    what is left; ``close`` waits for the calls in flight."""

    def __init__(
        self,
        client: Client,
        *,
        mode: Mode,
        on_error: OnError,
        warn: Callable[[str], None],
        progress: Progress,
    ) -> None:
        self._client = client
        self._mode = mode
        self._on_error = on_error
        self._warn = warn
        self._progress = progress
        self._batch_size = client.limits().max_batch_ops
        self._collection = ""
        self._pending: list[_Pending] = []
        self._in_flight: deque[tuple[Future[_Sent], set[tuple[str, KeyTag]]]] = deque()
        self._pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="itemstore-import")
        self.tally = Tally()

    def add_line(self, number: int, line: bytes) -> None:
        """Decode line ``number`` of a dump and add its record."""
        if not line.strip():
            self._progress.advance(1)
            return
        try:
            record = decode(line)
        except BadRecord as exc:
            self._bad(f"line {number}", str(exc))
            self._progress.advance(1)
            return
        self.add(f"line {number}", record)

    def add(self, where: str, record: Record) -> None:
        """Queue ``record`` (``where`` names it in messages); a full batch is sent."""
        try:
            op = BatchOp("put", record.key, dumps(record.value), record.expires_at)
        except (ValidationError, TypeError, ValueError) as exc:
            self._bad(where, str(getattr(exc, "detail", exc)))
            self._progress.advance(1)
            return
        if record.collection != self._collection or len(self._pending) >= self._batch_size:
            self._send_pending()
            self._collection = record.collection
        self._pending.append(_Pending(where, record, op))

    def finish(self) -> Tally:
        """Send what is queued, wait for every call; the tally."""
        self._send_pending()
        while self._in_flight:
            self._settle_oldest()
        return self.tally

    def close(self) -> None:
        """Wait for the calls in flight and end the progress display."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._progress.close()

    def _send_pending(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        keys = {(self._collection, key_tag(p.record.key)) for p in pending}
        while self._in_flight and (
            len(self._in_flight) >= IN_FLIGHT
            or any(not keys.isdisjoint(sent) for _, sent in self._in_flight)
        ):
            self._settle_oldest()
        future = self._pool.submit(self._write, self._collection, pending)
        self._in_flight.append((future, keys))

    def _settle_oldest(self) -> None:
        future, _ = self._in_flight.popleft()
        sent = future.result()
        for where, detail in sent.refused:
            self._bad(where, detail)
        self.tally.written += sent.written
        self.tally.kept += sent.kept
        self.tally.expired += sent.expired
        self._progress.advance(sent.records)

    def _write(self, collection: str, pending: list[_Pending]) -> _Sent:
        """One batch, in a worker thread: its ops the service refuses are left
        out and the rest sent again (with ``--on-error fail``, nothing is). An
        op refused because its item expired meanwhile counts as expired."""
        sent = _Sent(len(pending))
        now = time.time()
        live = [p for p in pending if not _expired(p.record, now)]
        sent.expired = len(pending) - len(live)
        if self._mode == "create-only" and live:
            gets = [BatchOp("get", p.record.key) for p in live]
            results = self._client.batch(collection, gets)
            absent = [p for p, got in zip(live, results, strict=True) if got.status == 404]
            sent.kept = len(live) - len(absent)
            live = absent
        while live:
            try:
                self._client.batch(collection, [p.op for p in live], minimal=True)
            except ValidationError as exc:
                refused = _refused_ops(exc)
                if not refused:
                    raise
                now = time.time()
                expired = {i for i in refused if _expired(live[i].record, now)}
                sent.expired += len(expired)
                sent.refused += [
                    (live[i].where, detail)
                    for i, detail in sorted(refused.items())
                    if i not in expired
                ]
                if self._on_error == "fail" and len(expired) < len(refused):
                    return sent
                live = [p for i, p in enumerate(live) if i not in refused]
            else:
                sent.written = len(live)
                break
        return sent

    def _bad(self, where: str, message: str) -> None:
        if self._on_error == "fail":
            raise ImportFailed(f"{where}: {message}")
        self.tally.skipped += 1
        self._warn(f"{where}: {message}; skipped")


def import_lines(importer: Importer, lines: Iterable[bytes]) -> Tally:
    """Every line of a dump through ``importer``; its tally."""
    for number, line in enumerate(lines, 1):
        importer.add_line(number, line)
    return importer.finish()


def _expired(record: Record, now: float) -> bool:
    return record.expires_at is not None and record.expires_at <= now


def _refused_ops(error: ValidationError) -> dict[int, str]:
    """The ops a refused batch names as bad (``invalid-batch``), by index."""
    refused: dict[int, str] = {}
    entries: Any = error.extras.get("errors") or []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("index"), int):
            refused[entry["index"]] = str(entry.get("detail", error.detail))
    return refused
