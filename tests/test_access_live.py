"""Access keys on a real ``itemstore serve`` process: what only real worker
processes and a real listening socket show (shared rate limits, revocation
across processes, the metrics port, what the parser answers, the logs)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.live_service import serve

BOOTSTRAP = "live-bootstrap-token"
ENV_TOKEN = {"ITEMSTORE_TOKEN": BOOTSTRAP}


def call(
    url: str, method: str = "GET", token: str | None = None, body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection (so that SO_REUSEPORT spreads them over the workers)."""
    headers = {"Connection": "close"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def new_key(url: str, **settings: Any) -> dict[str, Any]:
    status, _, body = call(url + "/keys", "POST", BOOTSTRAP, settings)
    assert status == 201, body
    key: dict[str, Any] = json.loads(body)
    return key


def test_two_workers_share_rate_limits_and_see_revocations(tmp_path: Path) -> None:
    with serve(tmp_path, "--workers", "2", env=ENV_TOKEN) as served:
        key = new_key(served.url, name="k", scope="read", rate_limit=0.5, burst=4)
        time.sleep(2.5)  # the reload interval: every worker has the key now
        statuses = [call(served.url + "/collections", token=key["token"])[0] for _ in range(16)]
        # One bucket for the host: 4 requests (the burst), not 4 per worker.
        assert statuses.count(200) == 4, statuses
        assert statuses.count(429) == 12
        other = new_key(served.url, name="o", scope="read")
        time.sleep(2.5)
        assert {call(served.url + "/collections", token=other["token"])[0] for _ in range(8)} == {
            200
        }
        assert call(served.url + f"/keys/{other['id']}", "DELETE", BOOTSTRAP)[0] == 200
        time.sleep(2.5)  # the revocation bound: the reload interval (2 s) and one reload
        assert {call(served.url + "/collections", token=other["token"])[0] for _ in range(8)} == {
            401
        }


def test_malformed_requests_and_bad_headers_get_problems_that_echo_nothing(tmp_path: Path) -> None:
    with serve(tmp_path, env=ENV_TOKEN) as served:
        answer = raw(
            served.port,
            b"GET /collections HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer SECRETVALUE\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")
        assert b"SECRETVALUE" not in answer and b"Authorization" not in answer
        assert b"application/problem+json" in answer and b"malformed-request" in answer
        # Invalid UTF-8 in the token: a 401, not a 500.
        answer = raw(
            served.port,
            b"GET /collections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
            b"Connection: close\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b'"code":"unauthorized"' in answer
        status, headers, _ = call(served.url + "/", token=None)
        assert status == 200
        assert headers["Server"] == "itemstore"  # no Python or aiohttp version
        assert b"Server: itemstore\r\n" in answer


def test_the_metrics_port_serves_metrics_alone_without_a_token(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    with serve(tmp_path, "--metrics-port", str(metrics_port), env=ENV_TOKEN) as served:
        metrics = f"http://127.0.0.1:{metrics_port}"
        status, _, body = call(metrics + "/metrics")
        assert status == 200 and b"itemstore_http_requests_total" in body
        assert call(metrics + "/collections", token=BOOTSTRAP)[0] == 404
        assert call(served.url + "/metrics")[0] == 401
        assert call(served.url + "/metrics", token=BOOTSTRAP)[0] == 200


def test_logs_and_metrics_name_the_key_never_its_secret(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    with serve(tmp_path, "--access-log", "--log-level", "info", env=ENV_TOKEN, log=log) as served:
        key = new_key(served.url, name="k", scope="write")
        secret = key["token"].split("_", 2)[2]
        assert call(served.url + "/collections/c/items/a", "PUT", key["token"], 1)[0] == 201
        _, _, body = call(served.url + "/metrics", token=BOOTSTRAP)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "itemstore.access"]
    put = [line for line in access if line["path"] == "/collections/c/items/a"]
    assert [line.get("key_id") for line in put] == [key["id"]]
    assert secret not in log.read_text() and BOOTSTRAP not in log.read_text()
    assert f'itemstore_key_requests_total{{key="{key["id"]}",status="2xx"}}' in body.decode()
    assert secret not in body.decode()
