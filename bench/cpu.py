"""CPU time of process trees, read from ``/proc``, to give CPU per request.

A snapshot maps every live pid of a tree (a server and all the workers it forked)
to its ``utime + stime`` in clock ticks (fields 14 and 15 of ``/proc/<pid>/stat``,
all threads of the process included). The difference of two snapshots taken around
a timed run, divided by the requests that run completed, is the tree's CPU
microseconds per request. A process that exits between the two snapshots is lost
to the count (its time went to its parent's cutime, which is not read): the
benchmark's servers keep their workers for the whole run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from bench.procs import process_tree

CLOCK_TICKS_PER_SECOND: Final = os.sysconf("SC_CLK_TCK")

CpuSnapshot = dict[int, int]


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of one process in clock ticks; None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after it.
    # What follows starts at field 3 (state), so utime (14) and stime (15) are 11 and 12.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def snapshot(roots: list[int]) -> CpuSnapshot:
    """Ticks of every live process in the trees of ``roots`` (roots included)."""
    ticks: CpuSnapshot = {}
    for root in roots:
        for pid in process_tree(root):
            value = cpu_ticks(pid)
            if value is not None:
                ticks[pid] = value
    return ticks


def cpu_seconds(before: CpuSnapshot, after: CpuSnapshot) -> float:
    """CPU seconds spent between two snapshots by the processes alive at ``after``.

    A process born in between counts from zero.
    """
    ticks = sum(value - before.get(pid, 0) for pid, value in after.items())
    return ticks / CLOCK_TICKS_PER_SECOND


def us_per_request(before: CpuSnapshot, after: CpuSnapshot, requests: int) -> float | None:
    """CPU microseconds per request between two snapshots; None when nothing completed."""
    if requests <= 0:
        return None
    return cpu_seconds(before, after) * 1e6 / requests
