"""CPU per request from /proc: real numbers of a real process tree (a parent and the
worker it forked, as ``itemstore serve --workers`` is)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench import cpu
from bench.procs import Child, Children, process_tree

BURN_S = 0.3
# Parent and forked worker each: say ready, wait for the file "go" in the folder named
# by argv[1], burn BURN_S of CPU, write "done-<pid>" there, then sleep until stopped.
BURNER = textwrap.dedent(
    f"""
    import os, sys, time
    os.chdir(sys.argv[1])
    os.fork()
    print("ready", os.getpid(), flush=True)
    while not os.path.exists("go"):
        time.sleep(0.02)
    start = time.process_time()
    while time.process_time() - start < {BURN_S}:
        pass
    open(f"done-{{os.getpid()}}", "w").close()
    time.sleep(60)
    """
)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def burner(tmp_path: Path) -> Iterator[Child]:
    """The burner tree, both processes ready and idle; stopped afterwards."""
    with Children(tmp_path) as children:
        child = children.start("burner", [sys.executable, "-c", BURNER, str(tmp_path)], None)
        wait_until(lambda: child.log_path.read_text().count("ready") == 2)
        yield child


def test_a_tree_s_cpu_between_snapshots_is_what_its_processes_burned(
    burner: Child, tmp_path: Path
) -> None:
    tree = process_tree(burner.pid)
    assert len(tree) == 2
    before = cpu.snapshot([burner.pid])
    assert set(before) == set(tree)
    (tmp_path / "go").touch()
    wait_until(lambda: len(list(tmp_path.glob("done-*"))) == 2)
    after = cpu.snapshot([burner.pid])
    spent = cpu.cpu_seconds(before, after)
    # Both processes burned BURN_S each; the 20 ms polling adds a little. One tick of
    # rounding per process and field either way.
    tick = 1 / cpu.CLOCK_TICKS_PER_SECOND
    assert 2 * BURN_S - 4 * tick <= spent <= 2 * BURN_S + 0.3
    per_request = cpu.us_per_request(before, after, 1000)
    assert per_request == pytest.approx(spent * 1e6 / 1000)
    assert cpu.us_per_request(before, after, 0) is None


def test_a_process_born_after_the_first_snapshot_counts_from_zero() -> None:
    # Some work of its own: the kernel samples CPU time at its ticks, and a
    # start-up alone may fall between them on a busy machine.
    work = "import time; sum(range(5_000_000)); time.sleep(30)"
    process = subprocess.Popen([sys.executable, "-c", work])
    try:
        wait_until(lambda: (cpu.cpu_ticks(process.pid) or 0) > 0)
        after = cpu.snapshot([process.pid])
        assert cpu.cpu_seconds({}, after) == after[process.pid] / cpu.CLOCK_TICKS_PER_SECOND
        assert cpu.cpu_seconds({}, after) > 0
    finally:
        process.kill()
        process.wait()
    assert cpu.cpu_ticks(process.pid) is None
    assert cpu.snapshot([process.pid]) == {}
