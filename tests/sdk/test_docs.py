"""docs/sdk.md says what the SDK does: each Python example in it runs on its
own against the running service, emptied first, and again on what it left
plus an item left behind in each collection it uses (the FastAPI one only
when FastAPI is installed)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from itemstore import Client

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
DOC_URL = "http://127.0.0.1:8080"
ADMIN_TOKEN = 'os.environ["ITEMSTORE_TOKEN"]'


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_docs_have_the_promised_examples() -> None:
    blocks = examples()
    assert len(blocks) == 10
    assert any("Depends(users)" in b for b in blocks) and any("@users.handler" in b for b in blocks)


def open_examples() -> list[str]:
    """The examples that run on a service without a token."""
    return [example for example in examples() if ADMIN_TOKEN not in example]


@pytest.mark.parametrize(
    "example", open_examples(), ids=[str(n) for n in range(1, len(open_examples()) + 1)]
)
def test_each_example_runs_on_its_own(
    example: str, service_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "fastapi" in example and importlib.util.find_spec("fastapi") is None:
        pytest.skip("FastAPI is not installed")
    import itemstore.context

    monkeypatch.setenv("ITEMSTORE_URL", service_url)
    monkeypatch.setattr(itemstore.context, "_default", None)
    assert DOC_URL in example or "storage_context(" in example
    code = compile(example.replace(DOC_URL, service_url), str(DOC), "exec")
    used = re.findall(r"(?:collection|session|storage_context)\(\"([\w.-]+)\"", example)
    with Client(service_url) as client:
        for name in list(client.collections()):
            client.collection(name).clear()
        exec(code, {"__name__": "docs"})
        for name in used:  # what another example, or another program, may have left
            client.collection(name)["left-behind"] = "by someone else"
        exec(code, {"__name__": "docs"})
    if itemstore.context._default is not None:
        itemstore.context._default.close()


def test_docs_access_keys_example_runs(
    token_service_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (block,) = [b for b in examples() if ADMIN_TOKEN in b]
    monkeypatch.setenv("ITEMSTORE_TOKEN", "s3cret")  # the token of token_service_url
    code = compile(block.replace(DOC_URL, token_service_url), str(DOC), "exec")
    for _ in range(2):  # on its own, then on what it left
        exec(code, {"__name__": "docs"})
        assert "the read scope" in capsys.readouterr().out
