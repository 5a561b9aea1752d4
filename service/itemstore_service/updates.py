"""Patches, batched: concurrent patches become one backend ``update_many``,
which applies each to the record it reads, atomically per item.

The patches of one key in a batch make one update that applies them in order;
a backend may run it again after a concurrent write, and each run answers
every patch afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from itemstore_wire import exactjson

from .backends.base import Backend, ItemKey, Record, Update
from .errors import Contended, PatchConflict, PreconditionFailed, ValueTooLarge
from .operations import OpResult, Outcome, new_version
from .patching import Change, apply


@dataclass(frozen=True, slots=True)
class Patch:
    """One patch of one item, on its storage key."""

    key: ItemKey
    change: Change
    expected: str | None = None  # If-Match: the version the item must have
    expires_at: int | None = None  # None: the item keeps its expiry


async def apply_patches(
    backend: Backend, patches: list[Patch], max_value_bytes: int
) -> list[OpResult]:
    """Apply ``patches`` in order with one ``update_many``; one result each:
    PATCHED, MISSING, or REFUSED with the error to answer."""
    results = [OpResult(Outcome.MISSING)] * len(patches)
    by_key: dict[ItemKey, list[int]] = {}
    for index, patch in enumerate(patches):
        by_key.setdefault(patch.key, []).append(index)

    def update_of(indexes: list[int]) -> Update:
        def update(current: Record | None) -> Record | None:
            record = current
            for index in indexes:
                results[index] = result = patched(patches[index], record, max_value_bytes)
                if result.outcome is Outcome.PATCHED:
                    record = result.record
            return None if record is current else record

        return update

    contended = await backend.update_many(
        {key: update_of(indexes) for key, indexes in by_key.items()}
    )
    for key in contended:
        error = Contended(
            "other writers kept changing the item while this patch was applied;"
            " it was not applied: retry"
        )
        for index in by_key[key]:
            results[index] = OpResult(Outcome.REFUSED, error=error)
    return results


def patched(patch: Patch, current: Record | None, max_value_bytes: int) -> OpResult:
    """What ``patch`` makes of ``current``: PATCHED with the new record,
    MISSING, or REFUSED with the error to answer."""
    if current is None:
        return OpResult(Outcome.MISSING)
    if patch.expected is not None and current.version != patch.expected:
        failed = PreconditionFailed(
            "the item is not in the expected state; its current value and etag are attached",
            current=current,
        )
        return OpResult(Outcome.REFUSED, error=failed)
    try:
        value = exactjson.dumps(apply(exactjson.loads(current.value), patch.change))
    except PatchConflict as conflict:
        return OpResult(Outcome.REFUSED, error=conflict)
    except (TypeError, ValueError):  # nests too deeply for exactjson
        too_deep = PatchConflict("the stored value nests too deeply to patch: PUT it whole")
        return OpResult(Outcome.REFUSED, error=too_deep)
    if len(value) > max_value_bytes:
        too_large = ValueTooLarge(
            f"the patched value would be {len(value)} bytes of JSON; the limit is"
            f" {max_value_bytes} bytes"
        )
        return OpResult(Outcome.REFUSED, error=too_large)
    expires_at = current.expires_at if patch.expires_at is None else patch.expires_at
    return OpResult(Outcome.PATCHED, Record(value, new_version(), current.float_key, expires_at))
