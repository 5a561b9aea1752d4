"""Request ids, metrics and JSON logs, seen from outside the real app."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from prometheus_client import REGISTRY

from itemstore_service.app import create_app
from itemstore_service.config import Config
from itemstore_service.observability.logs import configure_logging
from itemstore_service.observability.request_metrics import RequestMetrics

AiohttpClient = Callable[[Application], Awaitable[TestClient[Request, Application]]]
ITEM_ROUTE = "/collections/{name}/items/{key}"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def client(
    sqlite_config: Config, aiohttp_client: AiohttpClient
) -> TestClient[Request, Application]:
    return await aiohttp_client(create_app(sqlite_config))


# -- request ids -----------------------------------------------------------------


async def test_a_given_request_id_comes_back(client: TestClient[Request, Application]) -> None:
    answer = await client.get("/healthz", headers={"X-Request-ID": "trace-42.a:b"})
    assert answer.headers["X-Request-ID"] == "trace-42.a:b"


async def test_a_request_id_is_made_when_none_or_an_unsafe_one_is_given(
    client: TestClient[Request, Application],
) -> None:
    ids = [(await client.get("/healthz")).headers["X-Request-ID"] for _ in range(2)]
    assert len(set(ids)) == 2 and all(len(i) == 32 for i in ids)
    for unsafe in ["two words", "x" * 129, "a\tb"]:
        answer = await client.get("/healthz", headers={"X-Request-ID": unsafe})
        assert answer.headers["X-Request-ID"] != unsafe


async def test_error_answers_carry_the_request_id_too(
    client: TestClient[Request, Application],
) -> None:
    answer = await client.get("/no/such/route", headers={"X-Request-ID": "r-404"})
    assert answer.status == 404
    assert answer.headers["X-Request-ID"] == "r-404"
    assert (await answer.json())["code"] == "not-found"


# -- request metrics -----------------------------------------------------------------


async def test_requests_are_counted_by_route_template_and_final_status(
    client: TestClient[Request, Application],
) -> None:
    created = sample("itemstore_http_requests_total", method="PUT", route=ITEM_ROUTE, status="201")
    missing = sample("itemstore_http_requests_total", method="GET", route=ITEM_ROUTE, status="404")
    timed = sample("itemstore_http_request_duration_seconds_count", method="PUT", route=ITEM_ROUTE)

    for key in ["metrics-key-one", "metrics-key-two"]:
        answer = await client.put(f"/collections/obs/items/{key}", json={"v": 1})
        assert answer.status == 201
    # The 404 is made by the error middleware; it is still what gets counted.
    assert (await client.get("/collections/obs/items/metrics-absent")).status == 404

    assert (
        sample("itemstore_http_requests_total", method="PUT", route=ITEM_ROUTE, status="201")
        == created + 2
    )
    assert (
        sample("itemstore_http_requests_total", method="GET", route=ITEM_ROUTE, status="404")
        == missing + 1
    )
    assert (
        sample("itemstore_http_request_duration_seconds_count", method="PUT", route=ITEM_ROUTE)
        == timed + 2
    )
    assert sample("itemstore_http_requests_in_flight", route=ITEM_ROUTE) == 0
    exposed = await (await client.get("/metrics")).text()
    assert "metrics-key-one" not in exposed and "/collections/obs" not in exposed


async def test_request_metrics_are_written_at_the_end_of_the_loop_turn() -> None:
    route = "/test/turn"
    metrics = RequestMetrics().route("GET", route)
    latency = "itemstore_http_request_duration_seconds"
    for seconds in (0.003, 0.003, 0.005, 0.2):
        metrics.started()
        metrics.finished(200, seconds)
    metrics.started()  # one still running
    assert sample("itemstore_http_requests_total", method="GET", route=route, status="200") == 0

    await asyncio.sleep(0)  # the turn ends: the counts are written
    assert sample("itemstore_http_requests_total", method="GET", route=route, status="200") == 4
    assert sample("itemstore_http_requests_in_flight", route=route) == 1
    buckets = {
        le: sample(f"{latency}_bucket", method="GET", route=route, le=le)
        for le in ("0.0025", "0.005", "0.01", "0.25", "+Inf")
    }
    # Cumulative, with Prometheus' "le": 0.005 falls in the 0.005 bucket.
    assert buckets == {"0.0025": 0, "0.005": 3, "0.01": 3, "0.25": 4, "+Inf": 4}
    assert sample(f"{latency}_sum", method="GET", route=route) == pytest.approx(0.211)

    metrics.finished(503, 0.001)
    await asyncio.sleep(0)
    assert sample("itemstore_http_requests_in_flight", route=route) == 0
    assert sample("itemstore_http_requests_total", method="GET", route=route, status="503") == 1
    assert sample(f"{latency}_count", method="GET", route=route) == 5


async def test_unknown_routes_share_one_label(client: TestClient[Request, Application]) -> None:
    before = sample("itemstore_http_requests_total", method="GET", route="unmatched", status="404")
    for path in ["/nope-1", "/nope-2/deeper", "/collections/c/items/k/extra"]:
        assert (await client.get(path)).status == 404
    after = sample("itemstore_http_requests_total", method="GET", route="unmatched", status="404")
    assert after == before + 3
    assert "nope-1" not in await (await client.get("/metrics")).text()


async def test_odd_methods_share_one_label(client: TestClient[Request, Application]) -> None:
    before = sample(
        "itemstore_http_requests_total", method="other", route="unmatched", status="405"
    )
    answer = await client.request("PROPFIND", "/healthz")
    assert answer.status == 405
    after = sample("itemstore_http_requests_total", method="other", route="unmatched", status="405")
    assert after == before + 1


# -- backend metrics ----------------------------------------------------------------------


async def test_backend_calls_and_batch_sizes_are_measured(
    client: TestClient[Request, Application],
) -> None:
    reads = sample("itemstore_batch_size_count", kind="read")
    writes = sample("itemstore_batch_size_count", kind="write")
    written_items = sample("itemstore_batch_size_sum", kind="write")
    get_calls = sample(
        "itemstore_backend_call_duration_seconds_count", backend="sqlite", op="get_many"
    )

    answer = await client.post(
        "/collections/obs/batch",
        json={"ops": [{"op": "put", "key": f"b{i}", "value": i} for i in range(5)]},
    )
    assert answer.status == 200
    assert (await client.get("/collections/obs/items/b3")).status == 200

    assert sample("itemstore_batch_size_count", kind="write") > writes
    assert sample("itemstore_batch_size_sum", kind="write") >= written_items + 5
    assert sample("itemstore_batch_size_count", kind="read") > reads
    assert (
        sample("itemstore_backend_call_duration_seconds_count", backend="sqlite", op="get_many")
        > get_calls
    )


async def test_a_failed_condition_is_timed_but_not_an_error(
    client: TestClient[Request, Application],
) -> None:
    calls = sample("itemstore_backend_call_duration_seconds_count", backend="sqlite", op="put_if")
    errors = sample(
        "itemstore_backend_errors_total", backend="sqlite", op="put_if", error="ConditionFailed"
    )
    assert (await client.put("/collections/obs/items/cas", json=1)).status == 201
    answer = await client.put(
        "/collections/obs/items/cas", json=2, headers={"If-Match": '"not-the-version"'}
    )
    assert answer.status == 412
    assert (
        sample("itemstore_backend_call_duration_seconds_count", backend="sqlite", op="put_if")
        == calls + 1
    )
    assert (
        sample(
            "itemstore_backend_errors_total", backend="sqlite", op="put_if", error="ConditionFailed"
        )
        == errors
    )


# -- logs ---------------------------------------------------------------------------------


@pytest.fixture
def log_setup() -> Iterator[Callable[[str], io.StringIO]]:
    """The service's JSON log setup at a given level, writing into a buffer;
    the loggers are put back as they were afterwards."""
    root, ours = logging.getLogger(), logging.getLogger("itemstore")
    handlers, level, our_level = list(root.handlers), root.level, ours.level

    def setup(log_level: str) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(log_level, stream)
        return stream

    try:
        yield setup
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        ours.setLevel(our_level)


@pytest.fixture
def log_stream(log_setup: Callable[[str], io.StringIO]) -> io.StringIO:
    return log_setup("info")


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_access_log_is_json_with_request_id_and_without_values_or_tokens(
    sqlite_config: Config, aiohttp_client: AiohttpClient, log_stream: io.StringIO
) -> None:
    config = dataclasses.replace(sqlite_config, access_log=True, token="tok-very-secret")
    client = await aiohttp_client(create_app(config))
    answer = await client.put(
        "/collections/logs/items/k?key_type=str",
        json={"card": "4111-value-never-logged"},
        headers={"Authorization": "Bearer tok-very-secret", "X-Request-ID": "req-7"},
    )
    assert answer.status == 201

    # The test server adds aiohttp's own access logger, which `itemstore serve` turns off.
    ours = [line for line in lines(log_stream) if line["logger"] != "aiohttp.access"]
    text = json.dumps(ours)
    assert "4111-value-never-logged" not in text
    assert "tok-very-secret" not in text
    assert "key_type" not in text  # no query strings
    (access,) = [line for line in ours if line["logger"] == "itemstore.access"]
    assert access["request_id"] == "req-7"
    assert access["method"] == "PUT"
    assert access["route"] == ITEM_ROUTE
    assert access["path"] == "/collections/logs/items/k"
    assert access["status"] == 201
    assert isinstance(access["duration_ms"], float)
    assert access["level"] == "info"


async def test_no_access_log_unless_asked(
    client: TestClient[Request, Application], log_stream: io.StringIO
) -> None:
    assert (await client.get("/healthz")).status == 200
    assert not [line for line in lines(log_stream) if line["logger"] == "itemstore.access"]


def test_log_records_are_json_and_bearer_tokens_are_masked(log_stream: io.StringIO) -> None:
    log = logging.getLogger("itemstore.test")
    log.info(
        "header was %s", "Bearer abc.def", extra={"collection": "users", "path": "/Bearer ghi"}
    )
    log.debug("below the level")
    try:
        raise ValueError("bad Bearer xyz")
    except ValueError:
        log.exception("failed")
    first, second = lines(log_stream)
    assert first["msg"] == "header was Bearer [redacted]"
    assert first["collection"] == "users"
    assert first["path"] == "/Bearer [redacted]"
    assert first["logger"] == "itemstore.test" and first["level"] == "info"
    assert "request_id" not in first  # logged outside any request
    assert second["level"] == "error"
    assert "ValueError" in str(second["exc"]) and "xyz" not in str(second["exc"])


def test_debug_is_for_itemstore_only(log_setup: Callable[[str], io.StringIO]) -> None:
    # botocore's debug lines carry request bodies (item values) and credentials.
    stream = log_setup("debug")
    logging.getLogger("itemstore.test").debug("ours")
    logging.getLogger("botocore.endpoint").debug("Making request: {'body': 'SECRET'}")
    logging.getLogger("botocore.credentials").info("Found credentials")
    assert [line["msg"] for line in lines(stream)] == ["ours", "Found credentials"]


def test_malformed_requests_are_one_info_line_without_their_bytes(
    log_setup: Callable[[str], io.StringIO],
) -> None:
    stream = log_setup("info")
    try:
        raise BadHttpMessage("Invalid header", headers=None)
    except BadHttpMessage as error:
        # as aiohttp logs a request it cannot parse, bytes and all
        logging.getLogger("aiohttp.server").error(
            "Error handling request from 127.0.0.1", exc_info=error
        )
    (line,) = lines(stream)
    assert line["level"] == "info" and "exc" not in line
    assert line["msg"] == "refused a malformed HTTP request: BadHttpMessage"


def test_an_unknown_log_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("loud")


def test_a_preset_multiprocess_directory_is_emptied_of_an_earlier_run(tmp_path: Path) -> None:
    # In a child process: the switch to multiprocess metrics is process-wide.
    stale = tmp_path / "counter_999999.db"
    stale.write_bytes(b"left by an earlier run")
    (tmp_path / "keep.txt").write_text("not a metrics file")
    script = (
        "from itemstore_service.observability import metrics as o\n"
        "o.prepare_multiprocess_metrics()\n"
        "o.REQUESTS.labels(method='GET', route='/x', status='200').inc()\n"
        "print(o.render_metrics().decode())\n"
    )
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    assert (tmp_path / "keep.txt").exists()
    assert (
        'itemstore_http_requests_total{method="GET",route="/x",status="200"} 1.0' in result.stdout
    )
    assert [p.name for p in tmp_path.glob("*.db")], "values are kept in the shared directory"
