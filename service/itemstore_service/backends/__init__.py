"""Storage backends behind one protocol (``base.Backend``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..config import Config
from .base import Backend


@asynccontextmanager
async def open_backend(config: Config) -> AsyncIterator[Backend]:
    """Open the configured backend for the life of the block."""
    if config.backend == "dynamodb":
        from .dynamodb import open_dynamodb

        async with open_dynamodb(config) as dynamodb:
            yield dynamodb
    else:
        from .sqlite import open_sqlite

        async with open_sqlite(config.sqlite_path) as sqlite:
            yield sqlite
