"""Browser fixtures: Playwright driving the system's chromium (headless) against
a real ``itemstore serve`` process with a token.

Playwright is pointed at the ``chromium`` on PATH rather than a browser of its
own download; without chromium or playwright the browser tests skip, saying
which is missing. ``ITEMSTORE_CONSOLE_SCREENSHOTS=docs/console`` makes
the tests that take the documentation's screenshots write them there (they go
to the test's tmp_path otherwise).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from itemstore import Client
from tests.live_service import Served, serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

TOKEN = "console-s3cret"
WIDE: ViewportSize = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One service process per test module; tests use collections of their own."""
    with serve(tmp_path_factory.mktemp("console"), "--token", TOKEN) as served:
        yield served


@pytest.fixture(scope="module")
def dynamodb_service(
    moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """A service process on DynamoDB (moto), with a table of its own."""
    table = f"itemstore-console-{uuid.uuid4().hex}"
    flags = ["--backend", "dynamodb", "--dynamodb-endpoint", moto_endpoint]
    flags += ["--dynamodb-table", table, "--dynamodb-create-table", "--token", TOKEN]
    with serve(tmp_path_factory.mktemp("console-dynamodb"), *flags) as served:
        yield served


@pytest.fixture(params=["sqlite", "dynamodb"])
def any_service(request: pytest.FixtureRequest) -> Served:
    """The SQLite service, then the DynamoDB one."""
    served: Served = request.getfixturevalue(
        "service" if request.param == "sqlite" else "dynamodb_service"
    )
    return served


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab at 1280 by 800. It fails the test when the page reports an
    uncaught error or a Content-Security-Policy violation."""
    context = browser.new_context(viewport=WIDE, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield opened
    context.close()
    assert not problems, problems


@pytest.fixture
def sdk(service: Served) -> Iterator[Client]:
    """The SDK on the same service: what the tests write and read behind the console."""
    with Client(service.url, token=TOKEN) as sdk:
        yield sdk


@pytest.fixture
def collection_name() -> str:
    return f"console-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the documentation's screenshots go."""
    folder = os.environ.get("ITEMSTORE_CONSOLE_SCREENSHOTS")
    if not folder:
        return tmp_path
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder)
