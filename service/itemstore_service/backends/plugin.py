"""Backend modules, loaded by name.

A backend module is imported only when its backend is used (aioboto3 is heavy;
a SQLite service never imports it). Each module offers what ``BackendModule``
names: ``open(config)``, its batch ``TUNING`` and a one-line ``describe``.
"""

from __future__ import annotations

import importlib
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol, cast

from .registry import BACKENDS

if TYPE_CHECKING:
    from ..batching import Tuning
    from ..config import Config
    from .base import Backend, RetryHook


class BackendModule(Protocol):
    """What a backend module offers the rest of the service."""

    @property
    def TUNING(self) -> Tuning:
        """Batch sizes and calls in flight that suit this backend's costs."""
        ...

    def open(
        self, config: Config, *, on_retry: RetryHook | None = None
    ) -> AbstractAsyncContextManager[Backend]:
        """Open the backend for the life of the block; ``on_retry`` is told of
        every request re-sent because storage left it unprocessed."""
        ...

    def describe(self, config: Config) -> str:
        """Where this backend keeps the items, for the startup line."""
        ...

    async def migrate(self, config: Config) -> int:
        """Convert storage of an older storage format to the current one;
        return how many keys were rewritten."""
        ...


def backend_module(name: str) -> BackendModule:
    """The module of backend ``name``, imported now if not yet."""
    try:
        path = BACKENDS[name]
    except KeyError:
        raise ValueError(f"no backend named {name!r}; known: {', '.join(BACKENDS)}") from None
    return cast("BackendModule", importlib.import_module(path))


def open_backend(
    config: Config, *, on_retry: RetryHook | None = None
) -> AbstractAsyncContextManager[Backend]:
    """Open the backend ``config.backend`` names (see ``BackendModule.open``)."""
    return backend_module(config.backend).open(config, on_retry=on_retry)
