"""What a session knows, without I/O: cached reads, buffered writes, and the
snapshots that reveal in-place changes to values it handed out."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from itemstore_wire.contract import Key
from itemstore_wire.exactjson import dumps

from ._batch import BatchOp
from ._keys import KeyTag, check_key, key_tag


class Remote(enum.Enum):
    """What the session knows of an item's state on the service."""

    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class Entry:
    key: Key
    present: bool
    value: Any
    remote: Remote
    snapshot: bytes | None = None
    """Encoded value as last read or written remotely (when remote is PRESENT)."""
    written: bool = False
    """Assigned in this session since the last commit."""


@dataclass(frozen=True, slots=True)
class CommitPlan:
    ops: list[BatchOp]
    after: list[tuple[Entry, bytes | None]] = field(default_factory=list)
    """Each changed entry with its new remote encoding (None: deleted)."""
    patches: int = 0
    """How many of the ops, at the end, are the session's increments."""


class SessionState:
    """The cache of one session. Values it hands out are the cached objects
    themselves, so in-place changes are seen at commit time."""

    def __init__(self) -> None:
        self._entries: dict[KeyTag, Entry] = {}
        self._increments: list[tuple[Key, str, int | float]] = []

    def lookup(self, key: Key) -> Entry | None:
        return self._entries.get(key_tag(check_key(key)))

    def loaded(self, key: Key, found: bool, value: Any = None) -> Entry:
        """Record a read from the service (kept if the key was cached meanwhile)."""
        tag = key_tag(check_key(key))
        entry = self._entries.get(tag)
        if entry is None:
            remote = Remote.PRESENT if found else Remote.ABSENT
            snapshot = dumps(value) if found else None
            entry = Entry(key, found, value if found else None, remote, snapshot)
            self._entries[tag] = entry
        return entry

    def assign(self, key: Key, value: Any) -> None:
        """Buffer a write; a key or value the service cannot take fails here,
        not at commit."""
        tag = key_tag(check_key(key))
        dumps(value)
        entry = self._entries.get(tag)
        if entry is None:
            self._entries[tag] = Entry(key, True, value, Remote.UNKNOWN, written=True)
            return
        entry.key, entry.present, entry.value, entry.written = key, True, value, True

    def increment(self, key: Key, path: str, by: int | float) -> None:
        """Buffer an increment, sent as a patch op after the puts and deletes."""
        if not isinstance(by, int | float) or isinstance(by, bool):
            raise TypeError(f"increment takes a number, not {type(by).__name__}")
        self._increments.append((check_key(key), path, by))

    def increments_sent(self) -> None:
        """Forget the buffered increments once a commit sends them: a commit
        that fails midway must not send them again (they may have counted)."""
        self._increments.clear()

    def delete(self, entry: Entry) -> None:
        entry.present, entry.value, entry.written = False, None, False

    def listed(self, key: Key, seen: set[KeyTag]) -> Entry | None:
        """A key a listing page showed: mark it seen; its cached entry, if any
        (the caller skips entries deleted in this session)."""
        tag = key_tag(key)
        seen.add(tag)
        return self._entries.get(tag)

    def walked(
        self, key: Key, value: Any, seen: set[KeyTag], *, keys_only: bool
    ) -> tuple[Key, Any] | None:
        """What a walk yields for one item the service listed, with this
        session's changes applied (None: deleted in the session)."""
        entry = self.listed(key, seen)
        if entry is None:
            if keys_only:
                return key, value
            return key, self.loaded(key, True, value).value
        return (entry.key, entry.value) if entry.present else None

    def removed(self, key: Key) -> None:
        """Delete a key known to exist remotely (from a listing) without reading it."""
        tag = key_tag(check_key(key))
        entry = self._entries.get(tag)
        if entry is None:
            self._entries[tag] = Entry(key, False, None, Remote.PRESENT)
        else:
            self.delete(entry)

    def unseen(self, seen: set[KeyTag]) -> list[Entry]:
        """Locally present entries a listing did not show (added in this session)."""
        return [e for tag, e in self._entries.items() if e.present and tag not in seen]

    def unknown(self) -> list[Entry]:
        """Entries whose remote presence is unknown (assigned without a read)."""
        return [e for e in self._entries.values() if e.remote is Remote.UNKNOWN]

    def resolved(self, entry: Entry, exists: bool) -> None:
        if entry.remote is Remote.UNKNOWN:
            entry.remote = Remote.PRESENT if exists else Remote.ABSENT

    def len_delta(self) -> int:
        """Local size minus remote size over the cached keys (unknowns resolved first)."""
        delta = 0
        for e in self._entries.values():
            if e.present and e.remote is Remote.ABSENT:
                delta += 1
            elif not e.present and e.remote is Remote.PRESENT:
                delta -= 1
        return delta

    def plan(self, *, atomic: bool = False) -> CommitPlan:
        """The ops that make the service match the session: puts for assigned or
        changed values, deletes for removed ones, then the increments (with
        ``atomic``, one per item); untouched reads send nothing."""
        plan = CommitPlan([])
        for e in self._entries.values():
            if e.present:
                data = dumps(e.value)
                if e.written or e.remote is not Remote.PRESENT or data != e.snapshot:
                    plan.ops.append(BatchOp("put", e.key, data))
                    plan.after.append((e, data))
            elif e.remote is not Remote.ABSENT:
                plan.ops.append(BatchOp("delete", e.key))
                plan.after.append((e, None))
        if atomic:  # one op per item in a transaction: each path's increments summed
            changes: dict[KeyTag, tuple[Key, dict[str, int | float]]] = {}
            for key, path, by in self._increments:
                paths = changes.setdefault(key_tag(key), (key, {}))[1]
                paths[path] = paths.get(path, 0) + by
            increments = list(changes.values())
        else:
            increments = [(key, {path: by}) for key, path, by in self._increments]
        plan.ops.extend(
            BatchOp("patch", key, dumps({"increment": paths})) for key, paths in increments
        )
        return dataclasses.replace(plan, patches=len(increments))

    def committed(self, plan: CommitPlan, patched: list[tuple[Key, Any]]) -> None:
        """After a commit; ``patched``: each incremented key with its new value
        as the service answered (None when absent): the cache takes it."""
        for entry, data in plan.after:
            entry.remote = Remote.PRESENT if data is not None else Remote.ABSENT
            entry.snapshot = data
            entry.written = False
        for key, value in patched:
            self._entries.pop(key_tag(key), None)
            self.loaded(key, value is not None, value)

    def forget(self, keys: Iterable[Key]) -> None:
        """Drop these keys from the cache: the next read asks the service."""
        for key in keys:
            self._entries.pop(key_tag(key), None)

    def reset(self) -> None:
        self._entries.clear()
        self.increments_sent()
