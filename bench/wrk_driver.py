"""Run wrk with one of the workload scripts in ``bench/wrk/`` and parse its result.

The Lua scripts print one ``WRK_RESULT {json}`` line from wrk's ``done()`` hook
(requests, duration, error counts, latency percentiles from wrk's own histogram,
the same one ``--latency`` prints); ``parse_wrk_output`` turns it into a
``WrkResult``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

SCRIPTS: Final = Path(__file__).resolve().parent / "wrk"
WORKLOADS: Final = ("read", "write", "mixed")
MARKER: Final = "WRK_RESULT "
INSTALL_HINT: Final = (
    "wrk is not installed. Install it with `sudo apt-get update && sudo apt-get install -y wrk` "
    "(Debian/Ubuntu) or `brew install wrk` (macOS), then run the benchmark again."
)


class WrkError(RuntimeError):
    """wrk failed or printed no result line."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    duration_s: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def find_wrk() -> str | None:
    """Path of the wrk executable, or None."""
    return shutil.which("wrk")


def parse_wrk_output(text: str) -> WrkResult:
    """Read the ``WRK_RESULT`` line our scripts print; ``WrkError`` when there is none."""
    for line in text.splitlines():
        if line.startswith(MARKER):
            data: dict[str, Any] = orjson.loads(line[len(MARKER) :])
            break
    else:
        raise WrkError(f"wrk printed no {MARKER.strip()} line:\n{text[-2000:]}")
    errors = data["errors"]
    latency = data["latency_us"]
    # wrk counts responses with status > 399 as "status" errors; 3xx never occur here.
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        non_2xx=int(errors["status"]),
        socket_errors=sum(int(errors[k]) for k in ("connect", "read", "write", "timeout")),
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )


def wrk_command(
    wrk: str,
    workload: str,
    url: str,
    *,
    duration_s: int,
    connections: int,
    threads: int,
    collection: str,
    keys: int,
    value_bytes: int,
    prefer_minimal: bool = False,
) -> list[str]:
    """The wrk command line for one workload run; with ``prefer_minimal`` every PUT
    sends ``Prefer: return=minimal``."""
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, not {workload!r}")
    return [
        wrk,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={duration_s}s",
        "--timeout=5s",
        "--latency",
        f"--script={SCRIPTS / f'{workload}.lua'}",
        url,
        "--",
        collection,
        str(keys),
        str(value_bytes),
        *(["minimal"] if prefer_minimal else []),
    ]


def run_wrk(argv: list[str], duration_s: int) -> tuple[WrkResult, str]:
    """Run wrk to completion (bounded: duration + 30 s); returns the result and raw output."""
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=duration_s + 30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish within {duration_s + 30}s") from exc
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise WrkError(f"wrk exited with code {done.returncode}:\n{output[-2000:]}")
    return parse_wrk_output(output), output
