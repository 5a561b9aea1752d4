"""Every item of some collections, as records, read page by page: memory stays
bounded by one page whatever the size of the store."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import BinaryIO

from itemstore import Client

from .records import Record


def collection_names(client: Client, named: Sequence[str]) -> Sequence[str]:
    """``named``, or every collection of the service when none is named."""
    return named or list(client.collections())


def export_records(client: Client, collections: Sequence[str]) -> Iterator[Record]:
    """The records of ``collections`` (all when empty), in key order per collection."""
    page_size = client.limits().max_page_size
    for name in collection_names(client, collections):
        for item in client.collection(name).iter_listed(page_size=page_size):
            yield Record(name, item.key, item.value, item.expires_at)


def write_records(records: Iterator[Record], out: BinaryIO) -> int:
    """Write ``records`` as JSON Lines; how many were written."""
    count = 0
    for record in records:
        out.write(record.encode())
        count += 1
    out.flush()
    return count
