"""How the console's files are served (no browser needed): from the package,
without a token, under a strict Content-Security-Policy, and not at all with
``--no-console``."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from itemstore_service.app import create_app
from itemstore_service.config import Config
from itemstore_service.console import PAGE_POLICY, WORKER_POLICY
from tests.live_service import serve

Client = TestClient[Request, Application]
STATIC = files("itemstore_service") / "static" / "console"
NAMES = sorted(entry.name for entry in STATIC.iterdir())


@pytest.fixture
async def secured(
    sqlite_config: Config, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    return await aiohttp_client(create_app(replace(sqlite_config, token="t0ken")))


@pytest.mark.parametrize("name", NAMES)
async def test_every_file_is_served_without_a_token_under_a_policy(
    secured: Client, name: str
) -> None:
    response = await secured.get(f"/console/{name}")
    assert response.status == 200
    assert await response.read() == (STATIC / name).read_bytes()
    policy = WORKER_POLICY if name == "script-worker.js" else PAGE_POLICY
    assert response.headers["Content-Security-Policy"] == policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    expected_type = {".js": "text/javascript", ".html": "text/html", ".css": "text/css"}
    suffix = Path(name).suffix
    if suffix in expected_type:
        assert response.content_type == expected_type[suffix]


async def test_the_page_is_served_at_the_folder_and_the_folder_without_slash_redirects(
    secured: Client,
) -> None:
    page = await secured.get("/console/")
    assert page.status == 200 and page.content_type == "text/html"
    redirect = await secured.get("/console", allow_redirects=False)
    assert (redirect.status, redirect.headers["Location"]) == (308, "/console/")
    # The data routes still want the token.
    assert (await secured.get("/collections")).status == 401


def test_the_pages_hold_no_inline_script_or_style() -> None:
    for name in NAMES:
        if not name.endswith(".html"):
            continue
        html = (STATIC / name).read_text(encoding="utf-8")
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert scripts and all(" src=" in tag for tag in scripts), name
        assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=|javascript:", html), name


def test_only_the_script_worker_may_eval() -> None:
    assert "unsafe" not in PAGE_POLICY
    assert "'unsafe-inline'" not in WORKER_POLICY
    assert "script-src 'self' 'unsafe-eval'" in WORKER_POLICY
    for policy in (PAGE_POLICY, WORKER_POLICY):
        assert policy.startswith("default-src 'none';")


def test_item_content_reaches_the_page_only_as_text() -> None:
    """No script of the console writes HTML (the bundled editor builds its DOM node by node)."""
    for name in NAMES:
        if name.endswith(".js") and name != "codemirror.js":
            source = (STATIC / name).read_text(encoding="utf-8")
            assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", source)


def test_no_console_turns_it_off(tmp_path: Path) -> None:
    with serve(tmp_path, "--no-console") as served:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{served.url}/console/")
        refused.value.close()
        assert refused.value.code == 404
        urllib.request.urlopen(f"{served.url}/").close()  # the rest is served
