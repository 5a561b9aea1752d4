"""The embedded default backend: one SQLite file in WAL mode.

Writes run whole on one writer thread with its own connection, so a
``write_many`` is one transaction (group commit) and costs one thread hop, not
one per statement; ``synchronous=FULL`` makes every commit durable before it
returns. Batched point reads (``get_many``) run on the event loop itself: they
are primary-key lookups in the page cache, a few microseconds a key, cheaper
than a thread hop (measured: +17% GET throughput). Listings and counts, which
may scan, run on a reader thread. WAL lets every reader go on while the
writer commits. A batch of patches (``update_many``) reads and writes in one
write transaction, so it is atomic across worker processes too. Expired rows
are filtered out of every read and removed by a periodic sweep, a few hundred
rows per transaction.

Faults of the file or the disk raise BackendUnavailable, never a loss or a wrong answer
(``sqlite_faults``): every COMMIT first checks that the file is still the one
opened, and at open a background ``integrity_check`` reads the whole file
(``ping``, so ``/readyz``, waits for it). Files are read with ``read()``, not
mapped: a mapped file that shrinks or whose storage fails kills the process
with SIGBUS, where ``read()`` returns an error (no measurable read cost).

POSIX only (Linux, macOS): worker processes take turns through ``fcntl.flock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, TypeVar

from ..batching import Tuning
from ..errors import BackendUnavailable
from ..keys import StorageFormatOutdated
from .base import (
    TX_WINDOW_SECONDS,
    ConditionFailed,
    ItemKey,
    Listed,
    Puts,
    Record,
    Records,
    RetryHook,
    Scanned,
    TokenReused,
    TransactionFailed,
    TxOp,
    Update,
)
from .sqlite_faults import SPARE_BYTES, SQLiteFaults, is_busy, is_full, wal_autocheckpoint_pages
from .sqlite_format import convert_legacy_rows, format_problem
from .sqlite_where import scan_rows

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    raise ImportError("the SQLite backend needs fcntl: itemstore runs on Linux and macOS") from None

if TYPE_CHECKING:
    from ..conditions import Where
    from ..config import Config

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    collection TEXT NOT NULL,
    sk BLOB NOT NULL,
    value BLOB NOT NULL,
    version TEXT NOT NULL,
    float_key INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    PRIMARY KEY (collection, sk)
);
CREATE TABLE IF NOT EXISTS tx_tokens (
    token TEXT PRIMARY KEY,
    fingerprint BLOB NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tx_tokens_expires ON tx_tokens (expires);
"""
# A rowid table, not WITHOUT ROWID: with values of a KiB or more, rows kept in
# the key's B-tree make every lookup walk overflow pages (measured 4x slower).

# Files made before items could expire lack the column: added at open.
EXPIRY_COLUMN = "ALTER TABLE items ADD COLUMN expires_at INTEGER"
# Only expiring items are indexed: the sweep finds them without a scan.
EXPIRY_INDEX = (
    "CREATE INDEX IF NOT EXISTS items_expiry ON items (expires_at) WHERE expires_at IS NOT NULL"
)
LIVE = "(expires_at IS NULL OR expires_at > ?)"
"""The condition that a row has not expired, given the time now."""

# Expired rows the sweep removes per transaction: a short one, so writers wait
# little behind it.
SWEEP_CHUNK = 500
SWEEP_EVERY = 60.0  # seconds between sweeps

# SQLite allows 32,766 host parameters per statement.
_MAX_KEYS_PER_SELECT = 500


# Prepared statements kept per connection (sqlite3's default: 128).
_CACHED_STATEMENTS = 1024


# How long the loop waits in ``ping`` for the integrity check of the file.
_PING_WAITS_FOR_CHECK = 0.5


def _connect(
    path: str, busy_ms: int = 30_000, spare_bytes: int = SPARE_BYTES
) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        timeout=30,
        # A batched read of n keys is a statement of its own for each n (up
        # to the read batch, 256): keep them all prepared, not the last 128.
        cached_statements=_CACHED_STATEMENTS,
    )
    # Only a file without tables takes this: deletes on a full disk then give
    # the space back to the file system (``PRAGMA incremental_vacuum``).
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    conn.execute("PRAGMA mmap_size=0")  # see the module docstring
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA cell_size_check=ON")  # finds more damaged pages as they are read
    # Zero deleted rows in their pages, but not whole freed pages: a delete
    # on a nearly full disk writes no more than it must.
    conn.execute("PRAGMA secure_delete=FAST")
    conn.execute(f"PRAGMA wal_autocheckpoint={wal_autocheckpoint_pages(spare_bytes)}")
    return conn


def migrate_file(path: str) -> int:
    """Convert a SQLite file of storage format 1 to the current one in one
    transaction; return how many number keys were rewritten. The file must
    exist; run with the service stopped."""
    if not os.path.exists(path):
        raise BackendUnavailable(f"no SQLite file at {path!r}")
    conn = _connect(path)
    try:
        conn.executescript(SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        converted = convert_legacy_rows(conn)
        conn.execute("COMMIT")
        return converted
    finally:
        conn.close()


def _sk(sk: str) -> bytes:
    # Stored as BLOB so that ordering is by UTF-8 bytes, the same as DynamoDB.
    return sk.encode("utf-8", "surrogatepass")


class SQLiteBackend:
    name = "sqlite"

    def __init__(self, path: str, *, spare_bytes: int = SPARE_BYTES) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        # Worker processes on one file take turns to write through this lock:
        # a blocked flock wakes as soon as it is free, where SQLite's own busy
        # handler sleeps in steps of up to 100 ms (a long write tail).
        self._write_lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        # Workers starting together on a new file would race to switch it to
        # WAL, which SQLite can refuse at once ("database is locked"): one at a time.
        fcntl.flock(self._write_lock, fcntl.LOCK_EX)
        try:
            self._wconn = _connect(path, spare_bytes=spare_bytes)
            self._wconn.executescript(SCHEMA)
            columns = {row[1] for row in self._wconn.execute("PRAGMA table_info(items)")}
            if "expires_at" not in columns:
                self._wconn.execute(EXPIRY_COLUMN)
            self._wconn.execute(EXPIRY_INDEX)
            self._rconn = _connect(path, spare_bytes=spare_bytes)
            # The event loop's own connection never waits for a lock: in WAL mode a
            # reader is blocked only in rare cases (recovery after a crash), and
            # then get_many goes to the reader thread instead.
            self._lconn = _connect(path, busy_ms=0, spare_bytes=spare_bytes)
            outdated = format_problem(self._wconn, path)
        finally:
            fcntl.flock(self._write_lock, fcntl.LOCK_UN)
        if outdated:
            self.close()
            raise StorageFormatOutdated(outdated)
        self.faults = SQLiteFaults(path, spare_bytes=spare_bytes)
        self.faults.reserve_spare()
        self._check_conn: sqlite3.Connection | None = None
        self._integrity_checked: asyncio.Future[None] | None = None

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)
        self._wconn.close()
        self._rconn.close()
        self._lconn.close()
        os.close(self._write_lock)

    async def _run(self, executor: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        self.faults.raise_if_failed()
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn)
        except sqlite3.Error as exc:
            raise self.faults.error(exc) from exc

    async def _read(self, fn: Callable[[], T]) -> T:
        """``fn`` on the reader thread, once the file is known to be the one opened."""
        self.faults.check_file()
        return await self._run(self._reader, fn)

    # -- integrity check at open ------------------------------------------

    def start_integrity_check(self) -> None:
        """Read the whole file in the background (``PRAGMA integrity_check``):
        damage that reads page by page do not notice (a wrong cell count in an
        index page gives a short count, not an error) fails the backend."""
        self._integrity_checked = asyncio.get_running_loop().run_in_executor(
            None, self._check_integrity
        )

    def _check_integrity(self) -> None:
        conn = self._check_conn = _connect(self.path)
        try:
            (verdict,) = conn.execute("PRAGMA integrity_check(1)").fetchone()
            if verdict != "ok":
                self.faults.fail(f"the SQLite file {self.path!r} is damaged ({verdict})")
        except sqlite3.Error as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_INTERRUPT:  # stopped by close
                self.faults.error(exc)
        finally:
            conn.close()

    async def stop_integrity_check(self) -> None:
        if self._integrity_checked is None:
            return
        if self._check_conn is not None:
            with contextlib.suppress(sqlite3.Error):  # closed already: the check is over
                self._check_conn.interrupt()
        await asyncio.wait([self._integrity_checked])

    # -- reads ------------------------------------------------------------

    def _select(self, conn: sqlite3.Connection, keys: Sequence[ItemKey]) -> dict[ItemKey, Record]:
        by_collection: dict[str, list[bytes]] = {}
        for collection, sk in keys:
            by_collection.setdefault(collection, []).append(_sk(sk))
        found: dict[ItemKey, Record] = {}
        for collection, sks in by_collection.items():
            # One "collection = ? AND sk IN (...)" per chunk: a primary key lookup.
            for start in range(0, len(sks), _MAX_KEYS_PER_SELECT):
                chunk = sks[start : start + _MAX_KEYS_PER_SELECT]
                rows = conn.execute(
                    "SELECT sk, value, version, float_key, expires_at FROM items"
                    f" WHERE collection = ? AND sk IN ({','.join('?' * len(chunk))})"
                    f" AND {LIVE}",
                    [collection, *chunk, time.time()],
                )
                for sk, value, version, float_key, expires_at in rows:
                    key = (collection, sk.decode("utf-8", "surrogatepass"))
                    found[key] = Record(value, version, bool(float_key), expires_at)
        return found

    async def get_many(self, keys: Sequence[ItemKey], *, consistent: bool) -> dict[ItemKey, Record]:
        # Every SQLite read sees every committed write: all reads are consistent.
        self.faults.check_file()
        try:
            return self._select(self._lconn, keys)
        except sqlite3.Error as exc:
            if not is_busy(exc):
                raise self.faults.error(exc) from exc
        return await self._read(lambda: self._select(self._rconn, keys))

    # -- writes -----------------------------------------------------------

    def _transaction(self, body: Callable[[sqlite3.Connection], T], *, stores: bool = True) -> T:
        """Run ``body`` in one write transaction. ``stores``: False when it
        only deletes, which a full disk does not refuse (it frees space)."""
        faults = self.faults
        if faults.full and stores and not faults.recheck_room():
            raise faults.full_error()
        fcntl.flock(self._write_lock, fcntl.LOCK_EX)
        try:
            try:
                result = self._commit(body)
            except sqlite3.Error as exc:
                if not is_full(exc):
                    raise
                faults.enter_full()  # frees the spare
                self._checkpoint()
                if stores:
                    raise
                result = self._commit(body)  # a delete, now with the spare's room
            if faults.full and not stores:
                self._give_back_space()
            return result
        finally:
            fcntl.flock(self._write_lock, fcntl.LOCK_UN)

    def _commit(self, body: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._wconn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(conn)
            # A COMMIT to a deleted or replaced file would be lost at restart.
            self.faults.check_file(now=True)
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _checkpoint(self) -> None:
        """Copy the WAL into the file and empty it (best effort: on a full
        disk this may fail, and the next write says so)."""
        with contextlib.suppress(sqlite3.Error):
            self._wconn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _give_back_space(self) -> None:
        """On a full disk, after deletes: return the file's free pages to the
        file system (files made with auto_vacuum, see ``_connect``), then
        check whether writes may resume."""
        with contextlib.suppress(sqlite3.Error):
            # executescript steps it to the end; execute would free one page.
            self._wconn.executescript("PRAGMA incremental_vacuum")
        self._checkpoint()
        self.faults.recheck_room(now=True)

    @staticmethod
    def _upsert(conn: sqlite3.Connection, items: Sequence[tuple[ItemKey, Record]]) -> None:
        conn.executemany(
            "INSERT INTO items (collection, sk, value, version, float_key, expires_at)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT (collection, sk) DO UPDATE SET"
            " value=excluded.value, version=excluded.version, float_key=excluded.float_key,"
            " expires_at=excluded.expires_at",
            [
                (c, _sk(sk), r.value, r.version, int(r.float_key), r.expires_at)
                for (c, sk), r in items
            ],
        )

    @staticmethod
    def _delete(conn: sqlite3.Connection, keys: Sequence[ItemKey]) -> None:
        conn.executemany(
            "DELETE FROM items WHERE collection=? AND sk=?", [(c, _sk(sk)) for c, sk in keys]
        )

    async def write_many(
        self, puts: Puts, deletes: Sequence[ItemKey], *, previous: Collection[ItemKey]
    ) -> Records:
        # The previous records are read in the write's own transaction: exact,
        # and cheap enough that blind keys save little here.
        wanted = list(dict.fromkeys(previous))

        def body(conn: sqlite3.Connection) -> dict[ItemKey, Record]:
            found = self._select(conn, wanted) if wanted else {}
            self._upsert(conn, list(puts.items()))
            self._delete(conn, deletes)
            return found

        return await self._run(self._writer, lambda: self._transaction(body, stores=bool(puts)))

    async def put_if(self, key: ItemKey, record: Record, *, expected: str | None) -> Record | None:
        def body(conn: sqlite3.Connection) -> Record | None:
            current = self._select(conn, [key]).get(key)
            if (current.version if current else None) != expected:
                raise ConditionFailed(current)
            self._upsert(conn, [(key, record)])
            return current

        return await self._run(self._writer, lambda: self._transaction(body))

    async def update_many(self, updates: Mapping[ItemKey, Update]) -> list[ItemKey]:
        # One transaction: the updates read and write under the writer lock,
        # so no other worker process writes in between; never contended.
        def body(conn: sqlite3.Connection) -> list[ItemKey]:
            found = self._select(conn, list(updates))
            changed = [(key, update(found.get(key))) for key, update in updates.items()]
            self._upsert(conn, [(key, record) for key, record in changed if record is not None])
            return []

        return await self._run(self._writer, lambda: self._transaction(body))

    async def delete_if(self, key: ItemKey, *, expected: str) -> Record:
        def body(conn: sqlite3.Connection) -> Record:
            current = self._select(conn, [key]).get(key)
            if current is None or current.version != expected:
                raise ConditionFailed(current)
            self._delete(conn, [key])
            return current

        return await self._run(self._writer, lambda: self._transaction(body, stores=False))

    async def transact(self, ops: Sequence[TxOp], *, token: str | None) -> Records:
        # The token is remembered in the transaction it guards: a transaction
        # and its token are committed together or not at all.
        fingerprint = hashlib.sha256(repr(ops).encode()).digest()

        def body(conn: sqlite3.Connection) -> Records:
            now = time.time()
            current = self._select(conn, [op.key for op in ops])

            def applied_already() -> Records:  # the patched items as they are now
                return {op.key: current[op.key] for op in ops if op.update and op.key in current}

            if token is not None:
                conn.execute("DELETE FROM tx_tokens WHERE expires < ?", (now,))
                seen = conn.execute(
                    "SELECT fingerprint FROM tx_tokens WHERE token = ?", (token,)
                ).fetchone()
                if seen is not None:
                    if seen[0] != fingerprint:
                        raise TokenReused()
                    # Applied already: the patched items as they are now.
                    return {
                        op.key: current[op.key] for op in ops if op.update and op.key in current
                    }
            puts: list[tuple[ItemKey, Record]] = []
            patched: Records = {}
            for index, op in enumerate(ops):
                found = current.get(op.key)
                if op.update is not None:
                    record = op.update(found)
                    if record is None:
                        raise TransactionFailed(index, found)
                    if record is found:  # this transaction was applied already
                        return applied_already()
                    patched[op.key] = record
                    puts.append((op.key, record))
                elif op.conditional and (found.version if found else None) != op.expected:
                    raise TransactionFailed(index, found)
                elif op.record is not None:
                    puts.append((op.key, op.record))
            self._upsert(conn, puts)
            self._delete(conn, [op.key for op in ops if op.kind == "delete"])
            if token is not None:
                conn.execute(
                    "INSERT INTO tx_tokens VALUES (?, ?, ?)",
                    (token, fingerprint, now + TX_WINDOW_SECONDS),
                )
            return patched

        return await self._run(self._writer, lambda: self._transaction(body))

    async def delete_collection(self, collection: str) -> int:
        def body(conn: sqlite3.Connection) -> int:
            sql = f"SELECT count(*) FROM items WHERE collection=? AND {LIVE}"
            (live,) = conn.execute(sql, (collection, time.time())).fetchone()
            conn.execute("DELETE FROM items WHERE collection=?", (collection,))
            return int(live)

        return await self._run(self._writer, lambda: self._transaction(body, stores=False))

    # -- listings ---------------------------------------------------------

    async def query(
        self, collection: str, *, after: str | None, prefix: str, limit: int, keys_only: bool
    ) -> list[Listed]:
        lower = _sk(prefix)
        # No UTF-8 sequence contains 0xFF, so this bounds every sk with the prefix.
        upper = lower + b"\xff"
        op = ">="
        if after is not None and _sk(after) >= lower:
            lower, op = _sk(after), ">"
        value = "x''" if keys_only else "value"
        sql = (
            f"SELECT sk, {value}, version, float_key, expires_at FROM items"
            f" WHERE collection=? AND sk {op} ? AND sk < ? AND {LIVE} ORDER BY sk LIMIT ?"
        )

        def run() -> list[Listed]:
            rows = self._rconn.execute(sql, (collection, lower, upper, time.time(), limit))
            return [
                Listed(sk.decode("utf-8", "surrogatepass"), Record(value, version, bool(fk), exp))
                for sk, value, version, fk, exp in rows
            ]

        return await self._read(run)

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
        return await self._read(
            lambda: scan_rows(
                self._rconn, collection, after, prefix, where, limit, budget, keys_only
            )
        )

    async def count(self, collection: str) -> int:
        def run() -> int:
            sql = f"SELECT count(*) FROM items WHERE collection=? AND {LIVE}"
            return int(self._rconn.execute(sql, (collection, time.time())).fetchone()[0])

        return await self._read(run)

    async def list_collections(self, *, after: str | None, limit: int) -> list[str]:
        def run() -> list[str]:
            rows = self._rconn.execute(
                f"SELECT DISTINCT collection FROM items WHERE collection > ? AND {LIVE}"
                " ORDER BY collection LIMIT ?",
                (after or "", time.time(), limit),
            )
            return [name for (name,) in rows]

        return await self._read(run)

    # -- expiry -----------------------------------------------------------

    async def sweep(self, *, chunk: int = SWEEP_CHUNK) -> int:
        """Remove the rows expired by now, ``chunk`` rows per transaction so
        that writers never wait long behind it; how many were removed."""

        def body(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM items WHERE rowid IN (SELECT rowid FROM items"
                " WHERE expires_at <= ? LIMIT ?)",
                (time.time(), chunk),
            ).rowcount

        removed = 0
        while True:
            count = await self._run(self._writer, lambda: self._transaction(body, stores=False))
            removed += count
            if count < chunk:
                return removed

    async def sweep_forever(self, every: float = SWEEP_EVERY) -> None:
        """Sweep every ``every`` seconds, until cancelled; a failed sweep is
        tried again next time (its error already failed the backend if it was
        the file's)."""
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(BackendUnavailable):
                await self.sweep()

    async def ping(self) -> None:
        """Fails while the file is failed, unchecked yet (for longer than
        ``_PING_WAITS_FOR_CHECK``) or its disk full."""
        self.faults.check_file(now=True)
        if self._integrity_checked is not None:
            await asyncio.wait([self._integrity_checked], timeout=_PING_WAITS_FOR_CHECK)
            if not self._integrity_checked.done():
                raise BackendUnavailable(
                    f"still checking the integrity of the SQLite file {self.path!r} (at startup)"
                )
            self.faults.raise_if_failed()
        if self.faults.full and not await self._run(self._writer, self.faults.recheck_room):
            raise self.faults.full_error()
        await self._run(self._reader, lambda: self._rconn.execute("SELECT 1").fetchone())


# Any number of rows commits in one transaction on one writer thread: big
# batches, few calls in flight.
TUNING: Final = Tuning(read_batch=256, read_in_flight=2, write_batch=256, write_in_flight=1)


def describe(config: Config) -> str:
    """The file, for the startup line."""
    return config.sqlite_path


async def migrate(config: Config) -> int:
    """Convert ``config.sqlite_path`` to the current storage format; return
    how many keys were rewritten."""
    try:
        return await asyncio.to_thread(migrate_file, config.sqlite_path)
    except sqlite3.Error as exc:
        raise BackendUnavailable(f"cannot migrate {config.sqlite_path!r}: {exc}") from exc


@asynccontextmanager
async def open(
    config: Config, *, on_retry: RetryHook | None = None
) -> AsyncIterator[SQLiteBackend]:
    """Open (creating when missing) the SQLite file ``config.sqlite_path``.
    SQLite leaves nothing unprocessed, so ``on_retry`` is never called."""
    path = config.sqlite_path
    try:
        backend = await asyncio.to_thread(SQLiteBackend, path)
    except sqlite3.Error as exc:
        raise BackendUnavailable(f"cannot open SQLite file {path!r}: {exc}") from exc
    backend.start_integrity_check()
    sweeper = asyncio.create_task(backend.sweep_forever())
    try:
        yield backend
    finally:
        sweeper.cancel()
        await asyncio.wait([sweeper])
        await backend.stop_integrity_check()
        await asyncio.to_thread(backend.close)
