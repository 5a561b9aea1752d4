"""Storage backends behind one protocol (``base.Backend``), found by name in
``registry.BACKENDS`` and loaded by ``plugin``."""

from __future__ import annotations

from .plugin import BackendModule, backend_module, open_backend
from .registry import BACKENDS

__all__ = ["BACKENDS", "BackendModule", "backend_module", "open_backend"]
