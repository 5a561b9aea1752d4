"""Storage backends behind one protocol (``base.Backend``), found by name in
``registry.BACKENDS``."""

from __future__ import annotations

from .registry import BACKENDS, BackendModule, backend_module, open_backend

__all__ = ["BACKENDS", "BackendModule", "backend_module", "open_backend"]
