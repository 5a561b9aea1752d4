"""The storage format of a SQLite file (``PRAGMA user_version``): checked at
open, and converted from format 1 (number keys as text) by ``itemstore
migrate``."""

from __future__ import annotations

import sqlite3

from ..keys import STORAGE_FORMAT, convert_legacy_sk, is_legacy_number_sk

# Number sort keys of storage format 1: "n" then "-" or a digit.
_LEGACY_NUMBERS = "FROM items WHERE sk >= CAST('n-' AS BLOB) AND sk < CAST('n:' AS BLOB)"


def format_problem(conn: sqlite3.Connection, path: str) -> str | None:
    """Stamp a file with ``STORAGE_FORMAT`` when it has none yet and holds no
    number key to convert; otherwise say why it cannot be opened and how to
    convert it (``itemstore migrate``). None: the file is current."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version == STORAGE_FORMAT:
        return None
    if version > STORAGE_FORMAT:
        return (
            f"the SQLite file {path!r} is in storage format {version}, newer than this"
            f" itemstore's ({STORAGE_FORMAT}): upgrade itemstore"
        )
    if conn.execute(f"SELECT 1 {_LEGACY_NUMBERS} LIMIT 1").fetchone():
        return (
            f"the SQLite file {path!r} is in storage format 1, which lists number keys"
            f" as text: stop the service and run `itemstore migrate --sqlite-path {path}`"
        )
    conn.execute(f"PRAGMA user_version={STORAGE_FORMAT}")
    return None


def convert_legacy_rows(conn: sqlite3.Connection) -> int:
    """In the caller's transaction: give every format-1 number key its new
    sort key and stamp the file; return how many keys changed. Old and new
    sort keys never collide ("n1" is not "np4011"), so each row can take its
    new key in place."""
    rows = conn.execute(f"SELECT rowid, sk {_LEGACY_NUMBERS}").fetchall()
    converted = [
        (convert_legacy_sk(sk.decode()).encode(), rowid)
        for rowid, sk in rows
        if is_legacy_number_sk(sk.decode())
    ]
    conn.executemany("UPDATE items SET sk = ? WHERE rowid = ?", converted)
    conn.execute(f"PRAGMA user_version={STORAGE_FORMAT}")
    return len(converted)
