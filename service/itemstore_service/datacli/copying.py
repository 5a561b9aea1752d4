"""One service's items into another: an export fed straight into an import,
then a count check per collection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from itemstore import Client

from .exporting import export_records
from .importing import Importer


@dataclass(frozen=True, slots=True)
class Counted:
    collection: str
    source: int
    target: int


def copy_items(
    source: Client, importer: Importer, target: Client, names: Sequence[str]
) -> list[Counted]:
    """Copy collections ``names`` from ``source`` through ``importer``; the
    item count of each collection on both sides afterwards (they differ when
    the target held other items, or the source changed)."""
    for record in export_records(source, names):
        importer.add(f"{record.collection} key {record.key!r}", record)
    importer.finish()
    return [
        Counted(name, source.collection(name).count(), target.collection(name).count())
        for name in names
    ]
