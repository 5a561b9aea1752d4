"""The backend conformance suite on the SQLite backend (a real file per test)."""

from __future__ import annotations

import pytest

from itemstore_service.backends.sqlite import open_sqlite
from itemstore_service.config import Config
from tests.backend_conformance import BackendConformance, Opener


class TestSQLiteBackend(BackendConformance):
    @pytest.fixture
    def open_backend(self, sqlite_config: Config) -> Opener:
        return lambda: open_sqlite(sqlite_config.sqlite_path)
