"""The wrk harness: a ``--quick`` run end to end, and that its error counting can fail.

These tests check that the harness runs and reports numbers; they never assert speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bench import dynamodb_local
from bench.payload import key_name, make_value, preload_batches
from bench.procs import Children, free_port
from bench.targets import ROOT, Settings, child_env, dict_server_command
from bench.wrk_driver import WrkError, find_wrk, parse_wrk_output, run_wrk, wrk_command

WRK = find_wrk()
needs_wrk = pytest.mark.skipif(
    WRK is None, reason="wrk is not installed (apt-get install -y wrk); the harness drives it"
)


def test_values_have_the_exact_size_and_batches_hold_100_ops() -> None:
    for size in (40, 1024, 5000):
        assert len(orjson.dumps(make_value(key_name(7), size))) == size
    with pytest.raises(ValueError):
        make_value("k00000", 10)
    batches = [orjson.loads(b)["ops"] for b in preload_batches(250, 100)]
    assert [len(ops) for ops in batches] == [100, 100, 50]
    assert [op["key"] for ops in batches for op in ops] == [key_name(i) for i in range(250)]


def test_parse_wrk_output_reads_the_result_line_and_rejects_its_absence() -> None:
    line = (
        'WRK_RESULT {"requests":5000,"duration_us":2000000,"bytes":1,'
        '"errors":{"connect":1,"read":2,"write":0,"status":7,"timeout":3},'
        '"latency_us":{"mean":900.5,"p50":800,"p90":1500,"p99":4000,"p999":9000,"max":12000}}'
    )
    result = parse_wrk_output("Running 2s test\n" + line + "\nRequests/sec: 2500\n")
    assert result.rps == 2500
    assert (result.non_2xx, result.socket_errors, result.errors) == (7, 6, 13)
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (0.8, 4.0, 12.0)
    with pytest.raises(WrkError):
        parse_wrk_output("Running 2s test\nRequests/sec: 2500\n")


@pytest.fixture
def empty_dict_server(tmp_path: Path) -> Iterator[int]:
    """The dict server with no keys, so every GET of the read workload is a 404."""
    settings = Settings("sqlite", ("read",), ("dict",), 1, 0, 4, 1, 1, 0, 1024)
    port = free_port()
    with Children(tmp_path) as children:
        server = children.start("dict", dict_server_command(settings, port), child_env())
        children.wait_http(server, port, "/", timeout=30)
        yield port


@needs_wrk
def test_wrk_counts_non_2xx_answers_as_errors(empty_dict_server: int) -> None:
    assert WRK is not None
    argv = wrk_command(
        WRK,
        "read",
        f"http://127.0.0.1:{empty_dict_server}",
        duration_s=1,
        connections=4,
        threads=1,
        collection="bench",
        keys=100,
        value_bytes=1024,
    )
    result, _ = run_wrk(argv, 1)
    assert result.requests > 0
    assert result.non_2xx == result.requests
    assert result.errors >= result.requests


@needs_wrk
def test_quick_run_reports_every_target_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    markdown = tmp_path / "bench.md"
    argv = [
        sys.executable, "-m", "bench.run", "--quick", "--backend", "sqlite",
        "--workloads", "mixed", "--workers", "1",
        "--json-out", str(out), "--markdown-out", str(markdown),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    rows = {(m["target"], m["workload"]): m for m in report["measurements"]}
    assert set(rows) == {("dict", "mixed"), ("itemstore", "mixed"), ("nocoalesce", "mixed")}
    for row in rows.values():
        assert row["requests"] > 0
        assert row["errors"] == 0, row
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["peak_rss_mib"] > 0
        # SQLite runs in the service's own processes: no backend process to account.
        assert set(row["cpu_us_per_request"]) == {"server"}
        assert row["cpu_us_per_request"]["server"] > 0
    (ratio,) = report["ratios"]
    assert ratio["itemstore_over_ceiling"] == pytest.approx(
        rows["itemstore", "mixed"]["rps"] / rows["dict", "mixed"]["rps"], rel=1e-2
    )
    assert ratio["coalesced_over_uncoalesced"] > 0
    assert ratio["itemstore_cpu_over_dict"] == pytest.approx(
        rows["itemstore", "mixed"]["cpu_us_per_request"]["server"]
        / rows["dict", "mixed"]["cpu_us_per_request"]["server"],
        rel=1e-2,
    )
    assert ratio["itemstore_over_compare"] is None
    table = markdown.read_text()
    assert "| itemstore --no-coalesce | mixed" in table
    assert table.strip() in done.stdout


@needs_wrk
def test_rounds_alternate_the_targets_and_give_the_median_of_their_ratios(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bench.json"
    argv = [
        sys.executable, "-m", "bench.run", "--quick", "--backend", "sqlite",
        "--workloads", "read", "--workers", "1", "--targets", "dict,itemstore",
        "--rounds", "3", "--json-out", str(out),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    order = [(m["round"], m["target"]) for m in report["measurements"]]
    assert order == [
        (1, "dict"), (1, "itemstore"),
        (2, "itemstore"), (2, "dict"),
        (3, "dict"), (3, "itemstore"),
    ]  # fmt: skip
    rps = {(m["round"], m["target"]): m["rps"] for m in report["measurements"]}
    per_round = [rps[r, "itemstore"] / rps[r, "dict"] for r in (1, 2, 3)]
    (by_round,) = report["ratios_by_round"]
    assert by_round["itemstore_over_ceiling"] == pytest.approx(per_round, rel=1e-2)
    (ratio,) = report["ratios"]
    assert ratio["itemstore_over_ceiling"] == pytest.approx(sorted(per_round)[1], rel=1e-2)
    low, high = min(per_round), max(per_round)
    assert f"{ratio['itemstore_over_ceiling']:.2f}x ({low:.2f}-{high:.2f})" in done.stdout
    assert "| 2     | itemstore" in done.stdout


@needs_wrk
@pytest.mark.skipif(
    dynamodb_local.missing_reason("dynalite") is not None,
    reason=str(dynamodb_local.missing_reason("dynalite")),
)
def test_quick_dynalite_run_accounts_the_backend_and_compares_two_trees(tmp_path: Path) -> None:
    """This checkout against itself as --compare-src: the comparison path end to end."""
    out = tmp_path / "bench.json"
    argv = [
        sys.executable, "-m", "bench.run", "--quick", "--backend", "dynamodb",
        "--dynamodb-impl", "dynalite", "--workloads", "write", "--workers", "1",
        "--targets", "dict,itemstore,compare", "--compare-src", str(ROOT),
        "--prefer-minimal", "--json-out", str(out),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["settings"]["dynamodb_impl"] == "dynalite"
    assert report["settings"]["prefer_minimal"] is True
    rows = {m["target"]: m for m in report["measurements"]}
    assert set(rows) == {"dict", "itemstore", "compare"}
    for row in rows.values():
        assert row["requests"] > 0
        assert row["errors"] == 0, row
    assert set(rows["dict"]["cpu_us_per_request"]) == {"server"}
    for target in ("itemstore", "compare"):
        cpu_us = rows[target]["cpu_us_per_request"]
        assert set(cpu_us) == {"server", "backend"}
        assert cpu_us["server"] > 0 and cpu_us["backend"] > 0
    (ratio,) = report["ratios"]
    assert ratio["itemstore_over_compare"] == pytest.approx(
        rows["itemstore"]["rps"] / rows["compare"]["rps"], rel=1e-2
    )
    assert ratio["itemstore_cpu_over_compare"] > 0
    assert "itemstore / compare req/s" in done.stdout
