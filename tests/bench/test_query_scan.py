"""The query-scanning benchmark runs end to end (on SQLite, few items) and
reports its figures; it asserts no speed."""

from __future__ import annotations

import re
import subprocess
import sys

from bench.targets import ROOT, child_env


def test_query_scan_reports_items_scanned_per_second() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.query_scan", "--items", "2500", "--seconds", "5"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = re.findall(r"(\d+) items scanned in (\d+) requests, (\d+) matched", done.stdout)
    # Every item read once by the value queries; the key query reads only the
    # last 5%. At most max_query_scan (10,000) a request.
    assert [(int(s), int(r)) for s, r, _ in lines] == [(2500, 1), (2500, 1), (125, 1)]
    assert [int(m) for _, _, m in lines] == [27, 0, 125]
    assert done.stdout.count("items scanned/s") == 3
