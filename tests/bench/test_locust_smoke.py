"""A short headless locust run of bench/locustfile.py against a real itemstore service."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.targets import ROOT, child_env


@pytest.mark.parametrize("workload", ["mixed", "read"])
def test_headless_locust_run_makes_requests_without_failures(
    service_port: int, tmp_path: Path, workload: str
) -> None:
    stats_file = tmp_path / "stats.json"
    env = child_env() | {"ITEMSTORE_BENCH_KEYS": "200", "ITEMSTORE_BENCH_WORKLOAD": workload}
    argv = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"),
        "--headless", "-u", "8", "-r", "8", "-t", "3s", "--stop-timeout", "5",
        "--host", f"http://127.0.0.1:{service_port}", "--only-summary",
        "--json-file", str(stats_file.with_suffix("")),
    ]  # fmt: skip
    done = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    # locust exits with 1 when any request failed.
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stats = {entry["method"]: entry for entry in json.loads(stats_file.read_text())}
    expected = {"GET", "PUT"} if workload == "mixed" else {"GET"}
    assert set(stats) == expected
    for entry in stats.values():
        assert entry["num_requests"] > 0
        assert entry["num_failures"] == 0
