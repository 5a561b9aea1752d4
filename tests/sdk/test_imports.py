"""How the SDK's modules import each other: one way, and aiohttp only for async code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import aiohttp

import itemstore
from itemstore._async_transport import RETRY_CONNECTION_ATTRIBUTE

PACKAGE = Path(itemstore.__file__).parent


def sdk_imports(path: Path) -> tuple[set[str], list[str]]:
    """The itemstore modules ``path`` imports (at any level) and those it
    imports inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    in_functions = {id(n) for f in functions for n in ast.walk(f)}
    imported: set[str] = set()
    late: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("itemstore."):
            names = [(node.module or "").split(".")[1]]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("itemstore.")]
        imported.update(names)
        if id(node) in in_functions:
            late.extend(names)
    return imported, late


LAYERS = [
    {"errors"},
    {"_retry", "_keys"},
    {"_batch"},
    {"_protocol"},
    {"_session_state", "_transaction", "_sync_transport", "_async_transport", "_client_base"},
    {"_flows"},
    {"_collection_flows"},
    {"_session_flows"},
    {"client", "aio"},
    {"context"},
    {"__init__"},
]
"""The SDK's import chain: a module imports only from the layers above its own."""


def test_modules_import_each_other_one_way_only() -> None:
    layer_of = {module: n for n, layer in enumerate(LAYERS) for module in layer}
    graph = {p.stem: sdk_imports(p)[0] for p in PACKAGE.glob("*.py")}
    assert set(graph) == set(layer_of), "a new module needs its place in LAYERS"
    upward = {
        (module, dep)
        for module, deps in graph.items()
        for dep in deps
        if layer_of[dep] >= layer_of[module]
    }
    assert upward == set()  # so there is no cycle either


def test_no_function_level_imports_of_sdk_modules() -> None:
    late = {p.name: sdk_imports(p)[1] for p in PACKAGE.glob("*.py")}
    assert {name: found for name, found in late.items() if found} == {}
    # the documented exception: __init__ exports the async client and the
    # framework glue lazily, by name, through importlib
    assert set(itemstore.LAZY_EXPORTS.values()) == {"aio", "context"}


def test_import_itemstore_does_not_load_aiohttp() -> None:
    probe = "import itemstore, sys; print('aiohttp' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
    sync_context = "import itemstore, sys; itemstore.storage_context('users'); " + probe[17:]
    out = subprocess.run(
        [sys.executable, "-c", sync_context], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


def test_lazy_exports_resolve() -> None:
    from itemstore.aio import AsyncClient

    assert itemstore.AsyncClient is AsyncClient
    assert set(itemstore.__all__) <= set(dir(itemstore))


async def test_aiohttp_still_has_the_switch_of_its_own_resend() -> None:
    """The async transport turns off aiohttp's resend of dropped idempotent
    requests through a private attribute (see _async_transport); an aiohttp
    upgrade that drops it must be noticed, not silently resend a DELETE."""
    async with aiohttp.ClientSession() as session:
        assert getattr(session, RETRY_CONNECTION_ATTRIBUTE) is True
