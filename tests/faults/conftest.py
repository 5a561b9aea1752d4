"""Fixtures of the fault tests: a DynamoDB server in a process of its own
(moto, then dynalite), the fault proxy in front of it, and a live itemstore
that reaches the server only through the proxy; all on 127.0.0.1.

``backend_server`` (module): (URL, pid) of the server, one test module per
implementation in turn. ``proxy``: a FaultProxy to it, in pass mode.
``itemstore_on_proxy``: the URL of an ``itemstore serve`` on a new table
through the proxy, with a ``--request-timeout`` of ``REQUEST_TIMEOUT``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bench import dynamodb_local
from tests.faults.processes import running_itemstore, serve_flags
from tests.faults.proxy import FaultProxy, running_proxy

REQUEST_TIMEOUT = 2.0
"""The deadline the service is started with, in seconds."""
SLACK = 0.75
"""What an answer may take past the deadline, as the client sees it: the
service's own slack (0.25 s) plus a client in the same busy 2-core machine."""
RECOVERED_WITHIN = 10.0
"""The service serves again this soon after the backend is back: the breaker
waits out its interval (1 s doubling while probes fail: 4 s after a 3 s
outage) before its probe, and the probe itself."""


def require_flags(*flags: str) -> None:
    """Skip the test when ``itemstore serve`` does not know every flag (its
    fail-fast side is not there yet)."""
    missing = [flag for flag in flags if flag not in serve_flags()]
    if missing:
        pytest.skip(f"itemstore serve has no {', '.join(missing)} yet")


@pytest.fixture(scope="module", params=["moto", "dynalite"])
def backend_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """A DynamoDB server in a process of its own: (URL, pid)."""
    reason = dynamodb_local.missing_reason(request.param)
    if reason:
        pytest.skip(reason)
    with dynamodb_local.running(request.param) as server:
        yield server


@pytest.fixture
def proxy(backend_server: tuple[str, int]) -> Iterator[FaultProxy]:
    parts = urlsplit(backend_server[0])
    assert parts.hostname is not None and parts.port is not None
    with running_proxy(parts.hostname, parts.port) as proxy:
        yield proxy


@pytest.fixture
def extra_flags() -> list[str]:
    """More flags for ``itemstore_on_proxy``; a test module may override it."""
    return []


@pytest.fixture
def itemstore_on_proxy(proxy: FaultProxy, tmp_path: Path, extra_flags: list[str]) -> Iterator[str]:
    require_flags("--request-timeout")
    flags = [
        "--backend=dynamodb",
        f"--dynamodb-endpoint={proxy.url}",
        f"--dynamodb-table=itemstore-{uuid.uuid4().hex}",
        "--dynamodb-create-table",
        f"--request-timeout={REQUEST_TIMEOUT}",
        *extra_flags,
    ]
    with running_itemstore(flags, tmp_path / "itemstore.log") as url:
        yield url
