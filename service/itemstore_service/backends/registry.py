"""Which storage backends exist: a name for each, and the module that holds it.

A new backend is one new module (offering what ``plugin.BackendModule`` names)
and one line here, plus its settings in ``config.Config``. This module is
plain data, so that ``config`` can check a backend name against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

BACKENDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "sqlite": "itemstore_service.backends.sqlite",
        "dynamodb": "itemstore_service.backends.dynamodb",
    }
)
"""Backend name (the ``--backend`` choices) -> the module that implements it."""
