"""The hot-counter benchmark: a short run end to end on SQLite with two workers, and its
counter check against a real service, where it must hold and where it must not.

These tests check counts and the report's shape; they never assert speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench.closed_loop import LoadResult, Request, run_closed_loop
from bench.hot_counter import (
    INCREMENT,
    ITEM_PATH,
    CounterCheck,
    Measured,
    check_counter,
    create_counter,
    http_call,
)
from bench.targets import ROOT, child_env


def test_a_short_run_counts_every_increment_and_reports_both_workloads(tmp_path: Path) -> None:
    out = tmp_path / "hot.json"
    argv = [
        sys.executable, "-m", "bench.hot_counter", "--backend", "sqlite", "--workers", "2",
        "--clients", "8", "--seconds", "1", "--warmup", "0.5", "--json-out", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        argv, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = orjson.loads(out.read_bytes())
    rows = {row["workload"]: row for row in report["workloads"]}
    assert list(rows) == ["increment", "put"]
    # SQLite applies increments in the writer transaction: never contended, never refused.
    assert set(rows["increment"]["answers"]) == {"200"}
    assert set(rows["put"]["answers"]) == {"204"}  # Prefer: return=minimal
    for row in rows.values():
        assert row["successes"] == row["requests"] > 0
        assert (row["contended"], row["failures"]) == (0, {})
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["ops_per_s"] == pytest.approx(row["successes"] / row["elapsed_s"], rel=1e-3)
        # SQLite runs inside the service's workers: no DynamoDB process to account.
        assert set(row["cpu_us_per_request"]) == {"itemstore", "client"}
        assert all(us > 0 for us in row["cpu_us_per_request"].values())
    counter = report["counter"]
    # The warm-up's increments count too: at least the timed run's.
    assert counter["increments_answered_200"] >= rows["increment"]["successes"]
    assert counter["value"] == counter["increments_answered_200"]
    assert counter["equal"] is True
    assert report["increments_over_puts"] == pytest.approx(
        rows["increment"]["ops_per_s"] / rows["put"]["ops_per_s"], rel=1e-2
    )
    assert report["settings"]["workers"] == 2
    assert len(report["settings"]["load_average"]["before"]) == 3
    assert "| increment |" in done.stdout and "| put       |" in done.stdout
    assert "increments/s ÷ puts/s: " in done.stdout
    assert (
        f"the counter reads {counter['value']}, increments answered 200: "
        f"{counter['increments_answered_200']:,} (equal)"
    ) in done.stdout


def test_the_check_holds_for_counted_increments_and_fails_for_an_uncounted_one(
    service_port: int,
) -> None:
    create_counter(service_port)
    url = f"http://127.0.0.1:{service_port}"
    result = run_closed_loop(url, INCREMENT, clients=4, seconds=0.3)
    assert result.answers == {"200": result.requests} and result.requests > 0
    assert check_counter(service_port, result.count("200")).equal
    # One increment the load client never saw: the counter is now one ahead.
    status, _ = http_call(service_port, "PATCH", ITEM_PATH, INCREMENT.body)
    assert status == 200
    check = check_counter(service_port, result.count("200"))
    assert check.value == result.count("200") + 1
    assert not check.equal
    assert "DIFFERENT" in check.text()


def test_a_counter_that_is_no_integer_never_passes() -> None:
    assert CounterCheck(3, 3).equal
    for value in (3.0, True, "3", None):
        assert not CounterCheck(value, 3 if value is not True else 1).equal


def test_problem_answers_are_counted_by_status_and_code(service_port: int) -> None:
    absent = Request("PATCH", "/collections/bench/items/absent", INCREMENT.body, INCREMENT.headers)
    result = run_closed_loop(f"http://127.0.0.1:{service_port}", absent, clients=2, seconds=0.2)
    assert result.answers == {"404 item-not-found": result.requests} and result.requests > 0
    assert result.successes == 0
    assert len(result.latencies_ms) == result.requests
    assert Measured("increment", result, {}).failures == result.answers


def test_contended_is_no_failure_and_a_lost_answer_is() -> None:
    answers = {"200": 90, "503 contended": 7, "503 overloaded": 2, "no answer (TimeoutError)": 1}
    measured = Measured("increment", LoadResult(answers, [1.0] * 99, 1.0, 0.1), {})
    assert measured.failures == {"503 overloaded": 2, "no answer (TimeoutError)": 1}
    assert measured.result.successes == 90 and measured.ops_per_s == 90
