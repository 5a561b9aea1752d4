"""docs/sdk.md says what the SDK does: every Python example in it runs, in
order, against the running service (the FastAPI one only when FastAPI is installed)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
DOC_URL = "http://127.0.0.1:8080"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_docs_have_the_promised_examples() -> None:
    blocks = examples()
    assert len(blocks) == 8
    assert any("Depends(users)" in b for b in blocks) and any("@users.handler" in b for b in blocks)


def test_docs_examples_run(service_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import itemstore.context

    monkeypatch.setenv("ITEMSTORE_URL", service_url)
    monkeypatch.setattr(itemstore.context, "_default", None)
    ran = 0
    for block in examples():
        if "fastapi" in block and importlib.util.find_spec("fastapi") is None:
            continue
        assert DOC_URL in block or "storage_context(" in block
        exec(compile(block.replace(DOC_URL, service_url), str(DOC), "exec"), {"__name__": "docs"})
        ran += 1
    assert ran >= 7
    if itemstore.context._default is not None:
        itemstore.context._default.close()
