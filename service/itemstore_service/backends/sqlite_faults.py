"""What the SQLite backend does when its file or its disk fails: raise
``BackendUnavailable``, never a silent loss, a wrong answer or a traceback.

Two states, shared by the event loop and the backend's threads:

* **failed**, for good: the file was deleted or replaced while serving (its
  ``(st_dev, st_ino)`` changed), SQLite found it corrupt (SQLITE_CORRUPT,
  SQLITE_NOTADB) or storage failed (SQLITE_IOERR). Every later call raises
  ``BackendUnavailable`` with the reason, ``ping`` too (so the service is not ready),
  and one line is logged at CRITICAL level, once. Only a restart (after the
  file is restored) recovers.
* **full** (SQLITE_FULL): a spare file reserved beside the database is removed
  so that deletes still find room; writes that store anything are refused
  until the file system has room again (checked at most once a second), when
  the spare is reserved anew. One ERROR line per episode.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from typing import Final

from ..errors import BackendUnavailable

log = logging.getLogger("itemstore.sqlite")

# Seconds between two checks of the file's identity on the read path (a
# write checks before every COMMIT), and between two checks for room when full.
IDENTITY_CHECK_INTERVAL: Final = 0.1
ROOM_CHECK_INTERVAL: Final = 1.0

# Room held back for deletes on a full disk: big enough for the WAL to be
# checkpointed (it holds up to half of this between checkpoints, see
# ``wal_autocheckpoint_pages``) and for a batch of deletes after that.
SPARE_BYTES: Final = 8 * 1024 * 1024

_FATAL_CODES: Final = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_IOERR}
_BUSY_CODES: Final = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def _primary_code(exc: sqlite3.Error) -> int:
    # Extended codes carry the primary code in their low byte.
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF


def is_busy(exc: sqlite3.Error) -> bool:
    """A lock another connection holds: worth trying again elsewhere."""
    return _primary_code(exc) in _BUSY_CODES


def is_full(exc: sqlite3.Error) -> bool:
    """SQLITE_FULL: the disk (or file system quota) is full."""
    return _primary_code(exc) == sqlite3.SQLITE_FULL


def wal_autocheckpoint_pages(spare_bytes: int, page_size: int = 4096) -> int:
    """Checkpoint when the WAL holds half the spare: a full disk then never
    holds a WAL too big to checkpoint into the room the spare leaves."""
    return max(16, spare_bytes // page_size // 2)


class SQLiteFaults:
    """The health of one SQLite file, as seen by every connection to it."""

    def __init__(self, path: str, *, spare_bytes: int = SPARE_BYTES) -> None:
        self.path = path
        stat = os.stat(path)
        self._identity = (stat.st_dev, stat.st_ino)
        self._lock = threading.Lock()
        self._next_identity_check = 0.0
        self.failure: str | None = None
        self.full = False
        self._spare_path = path + ".spare"
        self._spare_bytes = spare_bytes
        self._next_room_check = 0.0

    # -- failed -----------------------------------------------------------

    def fail(self, reason: str) -> BackendUnavailable:
        """Enter the failed state (logging once) and return the error to raise."""
        with self._lock:
            first = self.failure is None
            if first:
                self.failure = f"{reason}; restart the service once the file is restored"
        if first:
            log.critical(
                "SQLite file %s unusable, refusing every call from now on: %s", self.path, reason
            )
        assert self.failure is not None
        return BackendUnavailable(self.failure)

    def raise_if_failed(self) -> None:
        if self.failure is not None:
            raise BackendUnavailable(self.failure)

    def check_file(self, *, now: bool = False) -> None:
        """Raise when failed, or when the file is no longer the one opened
        (checked at most every ``IDENTITY_CHECK_INTERVAL`` unless ``now``)."""
        self.raise_if_failed()
        clock = time.monotonic()
        if not now and clock < self._next_identity_check:
            return
        self._next_identity_check = clock + IDENTITY_CHECK_INTERVAL
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise self.fail(f"the SQLite file {self.path!r} was deleted while serving") from None
        if (stat.st_dev, stat.st_ino) != self._identity:
            raise self.fail(f"the SQLite file {self.path!r} was replaced while serving")

    def error(self, exc: sqlite3.Error) -> BackendUnavailable:
        """The error to raise for ``exc``, entering the state it calls for."""
        if self.failure is not None:
            return BackendUnavailable(self.failure)
        if is_full(exc):
            self.enter_full()
            return self.full_error()
        if _primary_code(exc) in _FATAL_CODES:
            name = getattr(exc, "sqlite_errorname", type(exc).__name__)
            return self.fail(
                f"the SQLite file {self.path!r} is damaged or unreadable ({name}: {exc})"
            )
        return BackendUnavailable(f"SQLite: {exc}")

    # -- full -------------------------------------------------------------

    def reserve_spare(self) -> bool:
        """Hold ``spare_bytes`` of the disk in the spare file; False when there is no room."""
        try:
            fd = os.open(self._spare_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return False
        try:
            os.posix_fallocate(fd, 0, self._spare_bytes)
            return True
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(self._spare_path)
            return False
        finally:
            os.close(fd)

    def enter_full(self) -> None:
        """Enter the full state (logging once an episode) and free the spare."""
        with self._lock:
            first = not self.full
            self.full = True
            self._next_room_check = time.monotonic() + ROOM_CHECK_INTERVAL
        if first:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._spare_path)
            log.error(
                "the disk holding %s is full: writes that store items fail until there is"
                " room; deletes still work",
                self.path,
            )

    def full_error(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"the disk holding the SQLite file {self.path!r} is full: delete items or add"
            " space; writes resume when there is room"
        )

    def recheck_room(self, *, now: bool = False) -> bool:
        """Leave the full state when the file system has room for the spare
        and as much again (checked at most every ``ROOM_CHECK_INTERVAL``
        unless ``now``). True when not full (any more)."""
        if not self.full:
            return True
        clock = time.monotonic()
        if not now and clock < self._next_room_check:
            return False
        self._next_room_check = clock + ROOM_CHECK_INTERVAL
        disk = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        if disk.f_bavail * disk.f_frsize < 2 * self._spare_bytes or not self.reserve_spare():
            return False
        with self._lock:
            self.full = False
        log.warning("the disk holding %s has room again: writes resume", self.path)
        return True
