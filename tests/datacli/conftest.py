"""Fixtures of the data command tests: empty services on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.datacli.running import Service, moto_service, sqlite_service


@pytest.fixture(params=["sqlite", "moto"])
def new_service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Service:
    """Each backend in turn: a function that starts an empty service."""

    def start() -> AbstractContextManager[str]:
        data_dir = tmp_path_factory.mktemp("service")
        if request.param == "sqlite":
            return sqlite_service(data_dir)
        return moto_service(data_dir, request.getfixturevalue("moto_endpoint"))

    return start


@pytest.fixture
def service_url(tmp_path: Path) -> Iterator[str]:
    """An empty SQLite-backed service."""
    with sqlite_service(tmp_path) as url:
        yield url
