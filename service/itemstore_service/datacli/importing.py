"""Records into a service, through the batch endpoint.

Consecutive records of one collection go out together, ``max_batch_ops`` per
call, so memory holds one batch whatever the size of the input. Every write is
a put by key: running an import again after an interruption writes the same
items again (no duplicates), then the rest (no loss).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from itemstore import Client, ValidationError
from itemstore._batch import BatchOp
from itemstore_wire.exactjson import dumps

from .progress import Progress
from .records import BadRecord, Record, decode

Mode = Literal["overwrite", "create-only"]
OnError = Literal["skip", "fail"]


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


class Importer:
    """Write records, one batch call per ``max_batch_ops`` of one collection.

    ``mode``: ``overwrite`` replaces stored items; ``create-only`` keeps them
    (an item is read, then written only if it was absent: a write by another
    client in between is overwritten). A bad record is told to ``warn`` and
    skipped, or raises ImportFailed, as ``on_error`` says."""

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
            op = BatchOp("put", record.key, dumps(record.value))
        except (ValidationError, TypeError) as exc:
            self._bad(where, str(getattr(exc, "detail", exc)))
            self._progress.advance(1)
            return
        if record.collection != self._collection or len(self._pending) >= self._batch_size:
            self.flush()
            self._collection = record.collection
        self._pending.append(_Pending(where, record, op))

    def flush(self) -> None:
        """Send what is queued."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        now = time.time()
        live = [p for p in pending if p.record.expires_at is None or p.record.expires_at > now]
        self.tally.expired += len(pending) - len(live)
        if self._mode == "create-only" and live:
            live = self._absent(live)
        while live:
            try:
                self._client.batch(self._collection, [p.op for p in live], minimal=True)
            except ValidationError as exc:
                refused = _refused_ops(exc)
                if not refused:
                    raise
                for index, detail in sorted(refused.items()):
                    self._bad(live[index].where, detail)
                live = [p for i, p in enumerate(live) if i not in refused]
            else:
                self.tally.written += len(live)
                break
        self._progress.advance(len(pending))

    def close(self) -> None:
        """End the progress display (what is queued is sent by ``flush``)."""
        self._progress.close()

    def _absent(self, entries: list[_Pending]) -> list[_Pending]:
        gets = [BatchOp("get", p.record.key) for p in entries]
        results = self._client.batch(self._collection, gets)
        absent = [p for p, result in zip(entries, results, strict=True) if result.status == 404]
        self.tally.kept += len(entries) - len(absent)
        return absent

    def _bad(self, where: str, message: str) -> None:
        if self._on_error == "fail":
            raise ImportFailed(f"{where}: {message}")
        self.tally.skipped += 1
        self._warn(f"{where}: {message}; skipped")


def import_lines(importer: Importer, lines: Iterable[bytes]) -> Tally:
    """Every line of a dump through ``importer``; its tally."""
    for number, line in enumerate(lines, 1):
        importer.add_line(number, line)
    importer.flush()
    return importer.tally


def _refused_ops(error: ValidationError) -> dict[int, str]:
    """The ops a refused batch names as bad (``invalid-batch``), by index."""
    refused: dict[int, str] = {}
    entries: Any = error.extras.get("errors") or []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("index"), int):
            refused[entry["index"]] = str(entry.get("detail", error.detail))
    return refused
