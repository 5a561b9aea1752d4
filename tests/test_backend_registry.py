"""The backend registry: every backend module offers what the service needs,
is imported only when used, and knows nothing of metrics."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from itemstore_service.backends import BACKENDS, BackendModule, backend_module, dynamodb, sqlite
from itemstore_service.config import Config

BACKENDS_DIR = Path(sqlite.__file__).parent

# mypy checks here that each module has the registry's interface.
MODULES: dict[str, BackendModule] = {"sqlite": sqlite, "dynamodb": dynamodb}


def test_every_registered_name_finds_its_module() -> None:
    assert set(BACKENDS) == set(MODULES)
    for name, module in MODULES.items():
        assert backend_module(name) is module


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no backend named 'postgres'"):
        backend_module("postgres")


def test_describe_names_where_the_items_are() -> None:
    config = Config(sqlite_path="data/items.sqlite3", dynamodb_table="items-prod")
    assert sqlite.describe(config) == "data/items.sqlite3"
    assert dynamodb.describe(config) == "items-prod"


def test_a_sqlite_service_never_imports_aioboto3() -> None:
    # In a fresh interpreter: this one has imported everything already.
    script = (
        "import sys\n"
        "from itemstore_service.app import create_app\n"
        "from itemstore_service.config import Config\n"
        "create_app(Config(backend='sqlite'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aioboto3', 'botocore')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved."""
    package = "itemstore_service.backends"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_no_backend_imports_metrics() -> None:
    # Backends report through hooks (on_retry); metrics are the caller's job.
    sources = sorted(BACKENDS_DIR.glob("*.py"))
    assert len(sources) >= 5
    for source in sources:
        imported = _imported_modules(source)
        assert not {
            name
            for name in imported
            if name.startswith(("itemstore_service.observability", "prometheus_client"))
        }, source.name
